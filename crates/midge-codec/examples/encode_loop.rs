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
//! The cases are those of `encode/publish-16B/…` in the bench (same packets, same reused buffer,
//! cleared before each encode): `midge-3.1.1`, `rumqttc-3.1.1`, `packet-3.1.1` (ours through
//! `Packet::encode`), and the same three for `5.0`. Only `run` is counted: the instructions per
//! encode are the collected total over the count given.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use midge_codec::{Packet, PacketId, ProtocolVersion, Publish, QoS, TopicName, UserProperty};
use rumqttc::mqttbytes::v4 as r4;
use rumqttc::v5::mqttbytes::v5 as r5;

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

/// Runs `encode` `n` times into one reused buffer, cleared each time, as the bench does.
/// Not inlined, so that Callgrind can count just this.
#[inline(never)]
fn run(n: u64, buf: &mut BytesMut, encode: impl Fn(&mut BytesMut)) {
    for _ in 0..n {
        buf.clear();
        encode(buf);
        black_box(&mut *buf);
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().expect("a case, such as midge-3.1.1");
    let n: u64 = args.next().map_or(100_000, |n| n.parse().expect("a count"));
    let size = 16;
    let mut buf = BytesMut::with_capacity(4096);
    let v311 = ProtocolVersion::V311;
    let v5 = ProtocolVersion::V5;
    match case.as_str() {
        "midge-3.1.1" => {
            let p = ours(v311, size);
            run(n, &mut buf, |buf| p.encode(v311, buf).unwrap());
        }
        "packet-3.1.1" => {
            let p = Packet::Publish(ours(v311, size));
            run(n, &mut buf, |buf| p.encode(v311, buf).unwrap());
        }
        "rumqttc-3.1.1" => {
            let mut p = r4::Publish::from_bytes(TOPIC, rumqttc::mqttbytes::QoS::AtLeastOnce, payload(size));
            p.pkid = PACKET_ID;
            run(n, &mut buf, |buf| {
                p.write(buf).unwrap();
            });
        }
        "midge-5.0" => {
            let p = ours(v5, size);
            run(n, &mut buf, |buf| p.encode(v5, buf).unwrap());
        }
        "packet-5.0" => {
            let p = Packet::Publish(ours(v5, size));
            run(n, &mut buf, |buf| p.encode(v5, buf).unwrap());
        }
        "rumqttc-5.0" => {
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
            run(n, &mut buf, |buf| {
                p.write(buf).unwrap();
            });
        }
        other => panic!("unknown case {other}"),
    }
    black_box(&buf);
}
