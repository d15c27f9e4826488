//! Codec benchmarks: our decoder and encoder against rumqttc 0.25's on identical packets.
//!
//! Each group holds one packet in one protocol version, with two functions side by side:
//! `midge` and `rumqttc`. Throughput is the packet's size on the wire.
//! - `decode/…`: both take each packet off the front of a `BytesMut` read buffer that holds it
//!   followed by copies of it (up to 256 KiB), as a connection's read loop does, and end with a
//!   decoded packet value. Filling the buffer and dropping the values happen outside the timing
//!   (`iter_custom`). The bytes are ours, and both decoders are checked at start-up to read them
//!   to the expected values. (A fresh allocation per packet, as `iter_batched` gives, measured the
//!   allocator more than the codec for 64 KB packets: heap trimming and page faults.)
//! - `encode/…`: both write the same value into a reused buffer with room to spare, as a
//!   connection's write buffer would be. Ours is the public API for the packet: `Publish::encode`
//!   for PUBLISH, `Packet::encode` for the others (PUBLISH also shows `Packet::encode`). Each
//!   encoder cycles through 64 such buffers at different offsets within a page: where a single
//!   buffer happened to land moved a small encode's time by up to three times (`WriteBuffers`).
//! - `publish-template/…`: fan-out, our `PublishTemplate` patching a packet identifier into a
//!   pre-encoded head, against encoding the PUBLISH again for every receiver.
//!
//! Packets: CONNECT (will, user name, password), SUBSCRIBE with three filters, and a QoS 1
//! PUBLISH of 16 B, 1 KB and 64 KB; each in 3.1.1, and in 5.0 with properties (user properties,
//! message expiry, content type; session expiry and receive maximum on CONNECT, a subscription
//! identifier on SUBSCRIBE).
//!
//! Run with `cargo bench -p midge-codec --bench codec`; each benchmark measures for about two
//! seconds, so the suite takes a few minutes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::num::{NonZeroU16, NonZeroU32};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use midge_codec::{
    Connect, Decoder, PROTOCOL_MAX_PACKET_SIZE, Packet, PacketId, ProtocolVersion, Publish, QoS,
    RetainHandling, Subscribe, Subscription, SubscriptionId, SubscriptionOptions, TopicFilter, TopicName,
    UserProperty, Will,
};
use rumqttc::mqttbytes::v4 as r4;
use rumqttc::v5::mqttbytes::v5 as r5;

const V311: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;

const TOPIC: &str = "sensors/building-7/floor-3/room-12/temperature";
const CLIENT_ID: &str = "midge-bench-client-0001";
const WILL_TOPIC: &str = "clients/midge-bench-client-0001/status";
const PACKET_ID: u16 = 4242;
const PAYLOAD_SIZES: [(&str, usize); 3] = [("16B", 16), ("1KB", 1024), ("64KB", 64 * 1024)];
const USER_PROPERTIES: [(&str, &str); 3] = [
    ("source", "gateway-17"),
    ("trace-id", "4bf92f3577b34da6a3ce929d0e0e4736"),
    ("unit", "celsius"),
];
const MESSAGE_EXPIRY: u32 = 3600;
const CONTENT_TYPE: &str = "application/octet-stream";
const FILTERS: [(&str, QoS); 3] = [
    ("sensors/+/temperature", QoS::AtLeastOnce),
    ("devices/gw-17/#", QoS::ExactlyOnce),
    ("$SYS/broker/clients/connected", QoS::AtMostOnce),
];

fn payload(len: usize) -> Bytes {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn user_properties() -> Vec<UserProperty> {
    USER_PROPERTIES
        .iter()
        .map(|(name, value)| UserProperty::new(*name, *value))
        .collect()
}

fn user_pairs() -> Vec<(String, String)> {
    USER_PROPERTIES
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

fn packet_id() -> PacketId {
    PacketId::new(PACKET_ID).unwrap()
}

fn r4_qos(qos: QoS) -> rumqttc::mqttbytes::QoS {
    match qos {
        QoS::AtMostOnce => rumqttc::mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::mqttbytes::QoS::ExactlyOnce,
    }
}

fn r5_qos(qos: QoS) -> rumqttc::v5::mqttbytes::QoS {
    match qos {
        QoS::AtMostOnce => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
    }
}

// ---------------------------------------------------------------------------------------------
// The packets, built once in each model.

fn ours_publish(version: ProtocolVersion, size: usize) -> Publish {
    let mut publish = Publish::new(TopicName::try_from(TOPIC).unwrap(), payload(size));
    publish.qos = QoS::AtLeastOnce;
    publish.packet_id = Some(packet_id());
    if version.is_v5() {
        publish.properties.message_expiry_interval = Some(MESSAGE_EXPIRY);
        publish.properties.content_type = Some(CONTENT_TYPE.into());
        publish.properties.user_properties = user_properties();
    }
    publish
}

fn r4_publish(size: usize) -> r4::Publish {
    let mut publish = r4::Publish::from_bytes(TOPIC, r4_qos(QoS::AtLeastOnce), payload(size));
    publish.pkid = PACKET_ID;
    publish
}

fn r5_publish(size: usize) -> r5::Publish {
    let properties = r5::PublishProperties {
        message_expiry_interval: Some(MESSAGE_EXPIRY),
        content_type: Some(CONTENT_TYPE.to_owned()),
        user_properties: user_pairs(),
        ..r5::PublishProperties::default()
    };
    let mut publish = r5::Publish::new(TOPIC, r5_qos(QoS::AtLeastOnce), payload(size), Some(properties));
    publish.pkid = PACKET_ID;
    publish
}

fn ours_connect(version: ProtocolVersion) -> Packet {
    let mut connect = Connect::new(version, CLIENT_ID);
    connect.username = Some("bench-user".into());
    connect.password = Some(Bytes::from_static(b"bench-password"));
    let mut will = Will {
        topic: TopicName::try_from(WILL_TOPIC).unwrap(),
        payload: Bytes::from_static(b"offline"),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: Default::default(),
    };
    if version.is_v5() {
        connect.properties.session_expiry_interval = Some(3600);
        connect.properties.receive_maximum = NonZeroU16::new(100);
        connect.properties.maximum_packet_size = NonZeroU32::new(1 << 20);
        connect.properties.user_properties = user_properties();
        will.properties.message_expiry_interval = Some(MESSAGE_EXPIRY);
        will.properties.content_type = Some("text/plain".into());
        will.properties.user_properties = user_properties();
    }
    connect.will = Some(will);
    Packet::Connect(Box::new(connect))
}

fn r4_connect() -> r4::Connect {
    let mut connect = r4::Connect::new(CLIENT_ID);
    connect.keep_alive = 60;
    connect.last_will = Some(r4::LastWill::new(
        WILL_TOPIC,
        "offline",
        r4_qos(QoS::AtLeastOnce),
        true,
    ));
    connect.set_login("bench-user", "bench-password");
    connect
}

fn r5_connect() -> (r5::Connect, Option<r5::LastWill>, Option<r5::Login>) {
    let mut properties = r5::ConnectProperties::new();
    properties.session_expiry_interval = Some(3600);
    properties.receive_maximum = Some(100);
    properties.max_packet_size = Some(1 << 20);
    properties.user_properties = user_pairs();
    let connect = r5::Connect {
        keep_alive: 60,
        client_id: CLIENT_ID.to_owned(),
        clean_start: true,
        properties: Some(properties),
    };
    let will_properties = r5::LastWillProperties {
        delay_interval: None,
        payload_format_indicator: None,
        message_expiry_interval: Some(MESSAGE_EXPIRY),
        content_type: Some("text/plain".to_owned()),
        response_topic: None,
        correlation_data: None,
        user_properties: user_pairs(),
    };
    let will = r5::LastWill::new(
        WILL_TOPIC,
        "offline",
        r5_qos(QoS::AtLeastOnce),
        true,
        Some(will_properties),
    );
    (
        connect,
        Some(will),
        Some(r5::Login::new("bench-user", "bench-password")),
    )
}

fn ours_subscribe(version: ProtocolVersion) -> Packet {
    let subscriptions = FILTERS
        .iter()
        .enumerate()
        .map(|(i, (filter, qos))| Subscription {
            filter: TopicFilter::try_from(*filter).unwrap(),
            options: if version.is_v5() {
                SubscriptionOptions {
                    qos: *qos,
                    no_local: i == 0,
                    retain_as_published: i == 1,
                    retain_handling: if i == 2 {
                        RetainHandling::SendIfNew
                    } else {
                        RetainHandling::SendAtSubscribe
                    },
                }
            } else {
                SubscriptionOptions {
                    qos: *qos,
                    ..SubscriptionOptions::default()
                }
            },
        })
        .collect();
    let mut subscribe = Subscribe {
        packet_id: packet_id(),
        subscriptions,
        properties: Default::default(),
    };
    if version.is_v5() {
        subscribe.properties.subscription_identifier = SubscriptionId::new(42);
        subscribe.properties.user_properties = user_properties();
    }
    Packet::Subscribe(subscribe)
}

fn r4_subscribe() -> r4::Subscribe {
    r4::Subscribe {
        pkid: PACKET_ID,
        filters: FILTERS
            .iter()
            .map(|(filter, qos)| r4::SubscribeFilter::new((*filter).to_owned(), r4_qos(*qos)))
            .collect(),
    }
}

fn r5_subscribe() -> r5::Subscribe {
    let filters = FILTERS
        .iter()
        .enumerate()
        .map(|(i, (filter, qos))| r5::Filter {
            path: (*filter).to_owned(),
            qos: r5_qos(*qos),
            nolocal: i == 0,
            preserve_retain: i == 1,
            retain_forward_rule: if i == 2 {
                r5::RetainForwardRule::OnNewSubscribe
            } else {
                r5::RetainForwardRule::OnEverySubscribe
            },
        })
        .collect();
    r5::Subscribe {
        pkid: PACKET_ID,
        filters,
        properties: Some(r5::SubscribeProperties {
            id: Some(42),
            user_properties: user_pairs(),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by every group.

fn encode_ours(packet: &Packet, version: ProtocolVersion) -> BytesMut {
    let mut buf = BytesMut::new();
    packet.encode(version, &mut buf).unwrap();
    buf
}

fn r4_bytes(packet: &r4::Packet) -> BytesMut {
    let mut buf = BytesMut::new();
    packet.write(&mut buf, usize::MAX).unwrap();
    buf
}

fn r5_bytes(packet: &r5::Packet) -> BytesMut {
    let mut buf = BytesMut::new();
    packet.write(&mut buf, None).unwrap();
    buf
}

/// Checks that both sides stand for the same packet: our bytes decode in rumqttc to its value,
/// and (in 3.1.1, where there is one encoding) both encoders write the same bytes; in 5.0 the
/// property order differs, so only the sizes must agree.
fn same_packet(version: ProtocolVersion, ours: &Packet, r4: Option<&r4::Packet>, r5: Option<&r5::Packet>) {
    let our_bytes = encode_ours(ours, version);
    let decoded = Decoder::new(version, PROTOCOL_MAX_PACKET_SIZE)
        .decode(&mut our_bytes.clone())
        .unwrap()
        .unwrap();
    assert_eq!(&decoded, ours);
    if let Some(theirs) = r4 {
        assert_eq!(
            &r4::Packet::read(&mut our_bytes.clone(), usize::MAX).unwrap(),
            theirs
        );
        assert_eq!(r4_bytes(theirs), our_bytes, "3.1.1 encodings differ");
    }
    if let Some(theirs) = r5 {
        assert_eq!(&r5::Packet::read(&mut our_bytes.clone(), None).unwrap(), theirs);
        assert_eq!(
            r5_bytes(theirs).len(),
            our_bytes.len(),
            "5.0 encodings differ in size"
        );
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

/// A decode group: both decoders take packets off the front of a read buffer.
fn decode_group<A, B, PA, PB>(c: &mut Criterion, name: &str, bytes: &BytesMut, ours: A, theirs: B)
where
    A: Fn(&mut BytesMut) -> PA,
    B: Fn(&mut BytesMut) -> PB,
{
    let mut group = c.benchmark_group(format!("decode/{name}"));
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("midge", |b| {
        b.iter_custom(|iters| decode_timed(bytes, iters, &ours))
    });
    group.bench_function("rumqttc", |b| {
        b.iter_custom(|iters| decode_timed(bytes, iters, &theirs))
    });
    group.finish();
}

/// Bytes of packets in one read buffer: small enough to stay in cache once written.
const READ_BUFFER_BUDGET: usize = 256 * 1024;

/// The time `decode` takes for `iters` packets, each taken off the front of a `BytesMut` that
/// holds it followed by copies of it, as a connection's read loop takes packets off its read
/// buffer. Filling the buffer, and dropping the decoded values and the buffer, happen outside the
/// timing; the decoded values live until then, so neither decoder's drop cost is counted.
fn decode_timed<P>(packet: &[u8], iters: u64, decode: impl Fn(&mut BytesMut) -> P) -> Duration {
    let per_buffer = (READ_BUFFER_BUDGET / packet.len()).clamp(1, 256);
    let filled: Vec<u8> = packet
        .iter()
        .copied()
        .cycle()
        .take(per_buffer * packet.len())
        .collect();
    let mut decoded = Vec::with_capacity(per_buffer);
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = per_buffer.min(usize::try_from(left).unwrap_or(usize::MAX));
        let mut buf = BytesMut::from(&filled[..n * packet.len()]);
        let start = Instant::now();
        for _ in 0..n {
            decoded.push(decode(&mut buf));
        }
        total += start.elapsed();
        assert!(buf.is_empty());
        black_box(&decoded);
        decoded.clear();
        left -= n as u64;
    }
    total
}

/// An encode group, to which [`encode_fn`] adds the encoders.
fn encode_group<'a>(c: &'a mut Criterion, name: &str, len: usize) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(format!("encode/{name}"));
    group.throughput(Throughput::Bytes(len as u64));
    group
}

/// One encoder writing its value into reused buffers with room for it ([`WriteBuffers`]).
fn encode_fn(group: &mut BenchmarkGroup<'_, WallTime>, id: &str, len: usize, encode: impl Fn(&mut BytesMut)) {
    let mut buf = BytesMut::new();
    encode(&mut buf);
    assert_eq!(buf.len(), len, "{id} wrote {} bytes, not {len}", buf.len());
    let mut buffers = WriteBuffers::new(len);
    group.bench_function(id, |b| {
        b.iter(|| {
            let buf = buffers.next();
            encode(buf);
            black_box(buf);
        })
    });
}

/// Write buffers for one encoder, used in turn: slices of one allocation, each starting at a
/// different offset within a 4 KiB page.
///
/// Where the write buffer sits relative to the packet's topic and payload decides whether the
/// copies' loads wait on earlier stores to addresses a multiple of 4 KiB away (4K aliasing): a
/// 16-byte PUBLISH encode took from 7.5 to 22 ns by buffer offset alone, and which offset a run
/// got depended on the heap's history, down to the length of the filter given on the command
/// line (rumqttc's 16-byte 3.1.1 encode: 12.7 ns under one filter, 36 ns under another). Both
/// encoders cycle through the same offsets, so each is timed at its average placement.
struct WriteBuffers {
    buffers: Vec<BytesMut>,
    next: usize,
}

impl WriteBuffers {
    /// Buffers with room for `len` bytes: 64 of them, at 64 different offsets (multiples of 64
    /// bytes) within a page, for packets small enough that they fit in the L2 cache; one for
    /// larger ones, whose copy costs far more than any placement.
    fn new(len: usize) -> Self {
        // An odd number of 64-byte lines, so that the 64 starts fall on 64 different offsets.
        let mut stride = len.next_multiple_of(64) + 64;
        if stride.is_multiple_of(128) {
            stride += 64;
        }
        let count = if stride * 64 <= 512 * 1024 { 64 } else { 1 };
        let mut all = BytesMut::zeroed(stride * count);
        let buffers = (0..count)
            .map(|_| {
                let mut buffer = all.split_to(stride);
                buffer.clear();
                buffer
            })
            .collect();
        Self { buffers, next: 0 }
    }

    /// The next buffer, cleared.
    #[inline(always)]
    fn next(&mut self) -> &mut BytesMut {
        let at = self.next;
        self.next = (at + 1) & (self.buffers.len() - 1);
        let buffer = &mut self.buffers[at];
        buffer.clear();
        buffer
    }
}

// ---------------------------------------------------------------------------------------------
// The groups.

fn connect(c: &mut Criterion) {
    // 3.1.1
    let ours = ours_connect(V311);
    let theirs = r4_connect();
    let theirs_packet = r4::Packet::Connect(theirs.clone());
    same_packet(V311, &ours, Some(&theirs_packet), None);
    let bytes = encode_ours(&ours, V311);
    let decoder = Decoder::new(V311, PROTOCOL_MAX_PACKET_SIZE);
    decode_group(
        c,
        "connect/3.1.1",
        &bytes,
        |buf| decoder.decode(buf).unwrap().unwrap(),
        |buf| r4::Packet::read(buf, usize::MAX).unwrap(),
    );
    let mut group = encode_group(c, "connect/3.1.1", bytes.len());
    encode_fn(&mut group, "midge", bytes.len(), |buf| {
        ours.encode(V311, buf).unwrap()
    });
    encode_fn(&mut group, "rumqttc", bytes.len(), |buf| {
        theirs.write(buf).unwrap();
    });
    group.finish();

    // 5.0
    let ours = ours_connect(V5);
    let (theirs, will, login) = r5_connect();
    let theirs_packet = r5::Packet::Connect(theirs.clone(), will.clone(), login.clone());
    same_packet(V5, &ours, None, Some(&theirs_packet));
    let bytes = encode_ours(&ours, V5);
    let decoder = Decoder::new(V5, PROTOCOL_MAX_PACKET_SIZE);
    decode_group(
        c,
        "connect/5.0",
        &bytes,
        |buf| decoder.decode(buf).unwrap().unwrap(),
        |buf| r5::Packet::read(buf, None).unwrap(),
    );
    let mut group = encode_group(c, "connect/5.0", bytes.len());
    encode_fn(&mut group, "midge", bytes.len(), |buf| {
        ours.encode(V5, buf).unwrap()
    });
    encode_fn(&mut group, "rumqttc", bytes.len(), |buf| {
        theirs.write(&will, &login, buf).unwrap();
    });
    group.finish();
}

fn subscribe(c: &mut Criterion) {
    // 3.1.1
    let ours = ours_subscribe(V311);
    let theirs = r4_subscribe();
    same_packet(V311, &ours, Some(&r4::Packet::Subscribe(theirs.clone())), None);
    let bytes = encode_ours(&ours, V311);
    let decoder = Decoder::new(V311, PROTOCOL_MAX_PACKET_SIZE);
    decode_group(
        c,
        "subscribe/3.1.1",
        &bytes,
        |buf| decoder.decode(buf).unwrap().unwrap(),
        |buf| r4::Packet::read(buf, usize::MAX).unwrap(),
    );
    let mut group = encode_group(c, "subscribe/3.1.1", bytes.len());
    encode_fn(&mut group, "midge", bytes.len(), |buf| {
        ours.encode(V311, buf).unwrap()
    });
    encode_fn(&mut group, "rumqttc", bytes.len(), |buf| {
        theirs.write(buf).unwrap();
    });
    group.finish();

    // 5.0
    let ours = ours_subscribe(V5);
    let theirs = r5_subscribe();
    same_packet(V5, &ours, None, Some(&r5::Packet::Subscribe(theirs.clone())));
    let bytes = encode_ours(&ours, V5);
    let decoder = Decoder::new(V5, PROTOCOL_MAX_PACKET_SIZE);
    decode_group(
        c,
        "subscribe/5.0",
        &bytes,
        |buf| decoder.decode(buf).unwrap().unwrap(),
        |buf| r5::Packet::read(buf, None).unwrap(),
    );
    let mut group = encode_group(c, "subscribe/5.0", bytes.len());
    encode_fn(&mut group, "midge", bytes.len(), |buf| {
        ours.encode(V5, buf).unwrap()
    });
    encode_fn(&mut group, "rumqttc", bytes.len(), |buf| {
        theirs.write(buf).unwrap();
    });
    group.finish();
}

fn publish(c: &mut Criterion) {
    for (size_name, size) in PAYLOAD_SIZES {
        // 3.1.1
        let ours = ours_publish(V311, size);
        let ours_packet = Packet::Publish(ours.clone());
        let theirs = r4_publish(size);
        same_packet(
            V311,
            &ours_packet,
            Some(&r4::Packet::Publish(theirs.clone())),
            None,
        );
        let bytes = encode_ours(&ours_packet, V311);
        let decoder = Decoder::new(V311, PROTOCOL_MAX_PACKET_SIZE);
        let name = format!("publish-{size_name}/3.1.1");
        decode_group(
            c,
            &name,
            &bytes,
            |buf| decoder.decode(buf).unwrap().unwrap(),
            |buf| r4::Packet::read(buf, usize::MAX).unwrap(),
        );
        let mut group = encode_group(c, &name, bytes.len());
        encode_fn(&mut group, "midge", bytes.len(), |buf| {
            ours.encode(V311, buf).unwrap()
        });
        encode_fn(&mut group, "rumqttc", bytes.len(), |buf| {
            theirs.write(buf).unwrap();
        });
        encode_fn(&mut group, "midge Packet::encode", bytes.len(), |buf| {
            ours_packet.encode(V311, buf).unwrap()
        });
        group.finish();

        // 5.0
        let ours = ours_publish(V5, size);
        let ours_packet = Packet::Publish(ours.clone());
        let theirs = r5_publish(size);
        same_packet(V5, &ours_packet, None, Some(&r5::Packet::Publish(theirs.clone())));
        let bytes = encode_ours(&ours_packet, V5);
        let decoder = Decoder::new(V5, PROTOCOL_MAX_PACKET_SIZE);
        let name = format!("publish-{size_name}/5.0");
        decode_group(
            c,
            &name,
            &bytes,
            |buf| decoder.decode(buf).unwrap().unwrap(),
            |buf| r5::Packet::read(buf, None).unwrap(),
        );
        let mut group = encode_group(c, &name, bytes.len());
        encode_fn(&mut group, "midge", bytes.len(), |buf| {
            ours.encode(V5, buf).unwrap()
        });
        encode_fn(&mut group, "rumqttc", bytes.len(), |buf| {
            theirs.write(buf).unwrap();
        });
        encode_fn(&mut group, "midge Packet::encode", bytes.len(), |buf| {
            ours_packet.encode(V5, buf).unwrap()
        });
        group.finish();
    }
}

/// Fan-out: the per-receiver cost of a QoS 1 PUBLISH whose receivers differ only in packet
/// identifier. `template.head` is what a broker sends with the shared payload (no payload copy);
/// `template.write_to` and `re-encode` both produce the whole packet in a buffer.
fn publish_template(c: &mut Criterion) {
    for version in [V311, V5] {
        for (size_name, size) in PAYLOAD_SIZES {
            let publish = ours_publish(version, size);
            let template = publish.template(version).unwrap();
            let len = template.len();
            let mut group = c.benchmark_group(format!("publish-template/{size_name}/{version}"));
            group.throughput(Throughput::Bytes(len as u64));
            let mut next = 0u16;
            let mut next_id = move || {
                next = next.wrapping_add(1).max(1);
                PacketId::new(next)
            };
            group.bench_function("template.head", |b| {
                b.iter(|| black_box(template.head(next_id(), false)))
            });
            let mut buf = BytesMut::with_capacity(2 * len);
            group.bench_function("template.write_to", |b| {
                b.iter(|| {
                    buf.clear();
                    template.write_to(next_id(), false, &mut buf);
                    black_box(&buf);
                })
            });
            let mut receiver_copy = publish.clone();
            group.bench_function("re-encode", |b| {
                b.iter(|| {
                    receiver_copy.packet_id = next_id();
                    buf.clear();
                    receiver_copy.encode(version, &mut buf).unwrap();
                    black_box(&buf);
                })
            });
            group.finish();
        }
    }
}

criterion_group! {
    name = codec;
    config = config();
    targets = connect, subscribe, publish, publish_template
}
criterion_main!(codec);
