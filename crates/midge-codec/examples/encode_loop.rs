//! A fixed number of small-PUBLISH encodes, for counting instructions with Callgrind, which the
//! noisy timings of `benches/codec.rs` cannot settle on a shared machine.
//! `scripts/encode-instructions` builds it and prints instructions per encode for each case:
//!
//! ```text
//! cargo build --profile bench -p midge-codec --example encode_loop
//! valgrind --tool=callgrind --toggle-collect='encode_loop::run*' \
//!     target/release/examples/encode_loop midge-3.1.1 100000
//! ```
//!
//! `encode_loop race [payload size]` times ours against rumqttc's instead, in alternating
//! batches of about 20 µs so that both see the same load, and prints the median of the
//! per-round ratios: far steadier than two criterion runs one after the other on a busy machine.
//! Code placement still moves either side by up to 20% from one build to the next (the same
//! rumqttc loop ran in 6.5 ns in one build and 8.1 ns in another), so a difference of a few
//! percent in time means little; the instruction counts do not move.
//!
//! Each encoder is called from exactly one place: given a second, LLVM stopped inlining
//! rumqttc's `write` (157 instructions instead of 130), and the comparison was skewed our way.
//!
//! The cases are those of `encode/publish-16B/…` in the bench (same packets, same reused
//! buffers, cleared before each encode): `midge-3.1.1`, `rumqttc-3.1.1`, `packet-3.1.1` (ours through
//! `Packet::encode`), and the same three for `5.0`. Only `run` is counted: the instructions per
//! encode are the collected total over the count given.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use midge_codec::{Packet, PacketId, ProtocolVersion, Publish, QoS, TopicName, UserProperty};
use rumqttc::mqttbytes::v4 as r4;
use rumqttc::v5::mqttbytes::v5 as r5;

// Constants, as in the bench: a caller that names the version gets the encoder for it.
const V311: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;
const TOPIC: &str = "sensors/building-7/floor-3/room-12/temperature";
const PACKET_ID: u16 = 4242;
const USER_PROPERTIES: [(&str, &str); 3] = [
    ("source", "gateway-17"),
    ("trace-id", "4bf92f3577b34da6a3ce929d0e0e4736"),
    ("unit", "celsius"),
];

fn payload(len: usize) -> Bytes {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn ours(version: ProtocolVersion, size: usize) -> Publish {
    let mut publish = Publish::new(TopicName::try_from(TOPIC).unwrap(), payload(size));
    publish.qos = QoS::AtLeastOnce;
    publish.packet_id = PacketId::new(PACKET_ID);
    if version.is_v5() {
        publish.properties.message_expiry_interval = Some(3600);
        publish.properties.content_type = Some("application/octet-stream".into());
        publish.properties.user_properties = USER_PROPERTIES
            .iter()
            .map(|(name, value)| UserProperty::new(*name, *value))
            .collect();
    }
    publish
}

fn r4_publish(size: usize) -> r4::Publish {
    let mut p = r4::Publish::from_bytes(TOPIC, rumqttc::mqttbytes::QoS::AtLeastOnce, payload(size));
    p.pkid = PACKET_ID;
    p
}

fn r5_publish(size: usize) -> r5::Publish {
    let properties = r5::PublishProperties {
        message_expiry_interval: Some(3600),
        content_type: Some("application/octet-stream".to_owned()),
        user_properties: USER_PROPERTIES
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect(),
        ..r5::PublishProperties::default()
    };
    let mut p = r5::Publish::new(
        TOPIC,
        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        payload(size),
        Some(properties),
    );
    p.pkid = PACKET_ID;
    p
}

/// Runs `encode` `n` times, into the buffers in turn, each cleared first, as the bench does.
/// Not inlined, so that Callgrind can count just this.
#[inline(never)]
fn run(n: u64, buffers: &mut WriteBuffers, encode: impl Fn(&mut BytesMut)) {
    for _ in 0..n {
        let buf = buffers.next();
        encode(buf);
        black_box(buf);
    }
}

/// The bench's write buffers (`benches/codec.rs`): 64 slices of one allocation, starting at 64
/// different offsets within a page, used in turn, so that an encoder is timed at its average
/// placement rather than wherever the heap put a single buffer (one buffer for large packets).
struct WriteBuffers {
    buffers: Vec<BytesMut>,
    next: usize,
}

impl WriteBuffers {
    fn new(len: usize) -> Self {
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

    #[inline(always)]
    fn next(&mut self) -> &mut BytesMut {
        let at = self.next;
        self.next = (at + 1) & (self.buffers.len() - 1);
        let buffer = &mut self.buffers[at];
        buffer.clear();
        buffer
    }
}

fn race<A: Fn(&mut BytesMut), B: Fn(&mut BytesMut)>(name: &str, len: usize, a: &A, b: &B) {
    const ROUNDS: usize = 401;
    // About 20 µs a batch.
    let batch: u64 = if len > 4096 { 20 } else { 2_000 };
    let time = |buffers: &mut WriteBuffers, encode: &dyn Fn(&mut WriteBuffers)| {
        let start = Instant::now();
        encode(buffers);
        start.elapsed().as_secs_f64() * 1e9 / batch as f64
    };
    // Each encoder inlined into its own copy of `run`, as in the bench.
    let run_a = |buffers: &mut WriteBuffers| run(batch, buffers, a);
    let run_b = |buffers: &mut WriteBuffers| run(batch, buffers, b);
    let (mut buf_a, mut buf_b) = (WriteBuffers::new(len), WriteBuffers::new(len));
    // Warm up both.
    for _ in 0..50 {
        time(&mut buf_a, &run_a);
        time(&mut buf_b, &run_b);
    }
    let (mut times_a, mut times_b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (ta, tb) = if round % 2 == 0 {
            let ta = time(&mut buf_a, &run_a);
            (ta, time(&mut buf_b, &run_b))
        } else {
            let tb = time(&mut buf_b, &run_b);
            (time(&mut buf_a, &run_a), tb)
        };
        times_a.push(ta);
        times_b.push(tb);
        ratios.push(tb / ta);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "{name}: midge {:.2} ns, rumqttc {:.2} ns, ratio rumqttc/midge {:.3}",
        median(&mut times_a),
        median(&mut times_b),
        median(&mut ratios)
    );
}

#[allow(
    clippy::needless_borrows_for_generic_args,
    reason = "`run::<&F>` for each encoder, the one `race` uses too: one call site each"
)]
fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().expect("a case, such as midge-3.1.1");
    // `race [payload size]`, or `<case> [count [payload size]]`.
    let mut number = || args.next().map(|n| n.parse::<usize>().expect("a number"));
    let (n, size) = match case.as_str() {
        "race" => (0, number().unwrap_or(16)),
        _ => (number().unwrap_or(100_000) as u64, number().unwrap_or(16)),
    };
    let (ours311, ours5) = (ours(V311, size), ours(V5, size));
    let (packet311, packet5) = (Packet::Publish(ours311.clone()), Packet::Publish(ours5.clone()));
    let (theirs311, theirs5) = (r4_publish(size), r5_publish(size));
    // Each encoder is called from one place in the program, inside `run`: the same for both
    // modes. (With a second call site, LLVM stopped inlining rumqttc's `write`, and the
    // comparison was no longer like for like.)
    let midge311 = |buf: &mut BytesMut| ours311.encode(V311, buf).unwrap();
    let midge_packet311 = |buf: &mut BytesMut| packet311.encode(V311, buf).unwrap();
    let rumqttc311 = |buf: &mut BytesMut| {
        theirs311.write(buf).unwrap();
    };
    let midge5 = |buf: &mut BytesMut| ours5.encode(V5, buf).unwrap();
    let midge_packet5 = |buf: &mut BytesMut| packet5.encode(V5, buf).unwrap();
    let rumqttc5 = |buf: &mut BytesMut| {
        theirs5.write(buf).unwrap();
    };
    let mut buf = WriteBuffers::new(size + 512);
    match case.as_str() {
        "race" => {
            // Room for the packet, with its headers and properties.
            let len = size + 512;
            race(&format!("{size}B 3.1.1"), len, &midge311, &rumqttc311);
            race(&format!("{size}B 5.0"), len, &midge5, &rumqttc5);
        }
        "midge-3.1.1" => run(n, &mut buf, &midge311),
        "packet-3.1.1" => run(n, &mut buf, &midge_packet311),
        "rumqttc-3.1.1" => run(n, &mut buf, &rumqttc311),
        "midge-5.0" => run(n, &mut buf, &midge5),
        "packet-5.0" => run(n, &mut buf, &midge_packet5),
        "rumqttc-5.0" => run(n, &mut buf, &rumqttc5),
        other => panic!("unknown case {other}"),
    }
    black_box(&buf.buffers);
}
