//! Every DISCONNECT Midge sends an MQTT 5 client, with the reason code §3.14.2.1 gives the
//! case, a Reason String saying what happened, and never a Session Expiry Interval
//! [MQTT-3.14.2-2]. Each case provokes the broker over a raw socket and requires exactly one
//! DISCONNECT, then the close [MQTT-3.14.4-1], [MQTT-3.14.4-2].
//!
//! Elsewhere: 0x98 Administrative action (`http.rs`, the HTTP API's disconnect), 0x87 after a
//! failed re-authentication (`enhanced_auth.rs`), 0xA1, 0xA2, 0x9E (`capabilities.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

mod support;

use std::num::NonZeroU16;
use std::time::{Duration, Instant};

use midge_codec::{Disconnect, Packet, ProtocolVersion, Publish, QoS, ReasonCode, TopicName};
use support::packets::*;
use support::{Midge, RawClient};

const V5: ProtocolVersion = ProtocolVersion::V5;

/// The one DISCONNECT before the close; fails on anything else, on a Session Expiry Interval,
/// and on a missing Reason String.
fn the_disconnect(client: &mut RawClient, case: &str) -> Disconnect {
    let before = client.expect_close();
    let [Packet::Disconnect(d)] = &before[..] else {
        panic!("{case}: expected one DISCONNECT then the close, got {before:?}")
    };
    assert_eq!(
        d.properties.session_expiry_interval, None,
        "{case}: [MQTT-3.14.2-2]"
    );
    assert!(
        d.properties.reason_string.as_ref().is_some_and(|r| !r.is_empty()),
        "{case}: no Reason String"
    );
    d.clone()
}

fn aliased(alias: u16) -> Packet {
    let mut p = Publish::new(TopicName::try_from("a").unwrap(), "x");
    p.properties.topic_alias = NonZeroU16::new(alias);
    Packet::Publish(p)
}

fn aliased_empty(alias: u16) -> Packet {
    let mut p = Publish::new(TopicName::empty(), "x");
    p.properties.topic_alias = NonZeroU16::new(alias);
    Packet::Publish(p)
}

/// The client's violations, each with the reason it must hear.
#[test]
fn mqtt_3_14_2_2_each_violation_gets_its_reason_code_and_no_session_expiry() {
    let midge = Midge::start("max_qos 1\nretain_available false\nmax_packet_size 300\nmax_topic_alias 2");
    let cases: Vec<(&str, Vec<u8>, ReasonCode)> = vec![
        // PUBLISH with QoS 3 [MQTT-3.3.1-4].
        (
            "malformed",
            vec![0x36, 0x05, 0x00, 0x01, b'a', 0x00, 0x01],
            ReasonCode::MalformedPacket,
        ),
        (
            "second CONNECT",
            bytes(&connect(V5, "again")),
            ReasonCode::ProtocolError,
        ),
        // No Local on a shared subscription [MQTT-3.8.3-4]: SUBSCRIBE id 1, no properties,
        // "$share/g/a" with options 0x04.
        (
            "no local shared",
            [&[0x82, 16, 0, 1, 0, 0, 10][..], b"$share/g/a", &[0x04]].concat(),
            ReasonCode::ProtocolError,
        ),
        // An alias never set, with an empty topic (§3.3.2.3.4).
        (
            "unknown alias",
            bytes(&aliased_empty(2)),
            ReasonCode::ProtocolError,
        ),
        (
            "qos above max_qos",
            bytes(&publish("a", "2", QoS::ExactlyOnce, 1)),
            ReasonCode::QosNotSupported,
        ),
        (
            "retain unavailable",
            bytes(&publish_retained("a", "r", QoS::AtMostOnce, 0)),
            ReasonCode::RetainNotSupported,
        ),
        (
            "alias above the maximum",
            bytes(&aliased(3)),
            ReasonCode::TopicAliasInvalid,
        ),
        (
            "too large",
            bytes(&publish("a", vec![0u8; 400], QoS::AtMostOnce, 0)),
            ReasonCode::PacketTooLarge,
        ),
    ];
    for (case, bytes, reason) in cases {
        let (mut client, _) = RawClient::connected(midge.addr(), connect(V5, case));
        client.send_bytes(&bytes);
        let d = the_disconnect(&mut client, case);
        assert_eq!(d.reason_code, reason, "{case}");
    }
    // A topic the mount point makes longer than 65,535 bytes: not a topic at all [MQTT-4.7.3-3].
    let midge = Midge::start("mount_point m/");
    let (mut client, _) = RawClient::connected(midge.addr(), connect(V5, "long"));
    client.send(&publish(&"t".repeat(65_534), "x", QoS::AtMostOnce, 0));
    let d = the_disconnect(&mut client, "topic too long under the mount point");
    assert_eq!(d.reason_code, ReasonCode::TopicNameInvalid);
}

fn bytes(packet: &Packet) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    packet.encode(V5, &mut buf).unwrap();
    buf.to_vec()
}

#[test]
fn mqtt_3_3_4_7_more_qos_2_exchanges_than_the_receive_maximum_get_0x93() {
    let midge = Midge::start("max_inflight_messages 1");
    let (mut client, ack) = RawClient::connected(midge.addr(), connect(V5, "greedy"));
    assert_eq!(ack.properties.receive_maximum, NonZeroU16::new(1));
    client.send(&publish("a", "1", QoS::ExactlyOnce, 1));
    assert!(matches!(client.recv(), Packet::PubRec(_)));
    client.send(&publish("a", "2", QoS::ExactlyOnce, 2));
    let d = the_disconnect(&mut client, "receive maximum");
    assert_eq!(d.reason_code, ReasonCode::ReceiveMaximumExceeded);
}

#[test]
fn the_brokers_own_reasons_keep_alive_takeover_and_shutdown() {
    let mut midge = Midge::start("");
    // 0x8D: nothing for one and a half times the keep alive [MQTT-3.1.2-22].
    let (mut quiet, _) = RawClient::connected(midge.addr(), connect_with(V5, "quiet", |c| c.keep_alive = 1));
    let started = Instant::now();
    let d = the_disconnect(&mut quiet, "keep alive");
    assert_eq!(d.reason_code, ReasonCode::KeepAliveTimeout);
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );

    // 0x8E: the same client identifier connects again [MQTT-3.1.4-3].
    let (mut first, _) = RawClient::connected(midge.addr(), connect(V5, "twice"));
    let (_second, _) = RawClient::connected(midge.addr(), connect(V5, "twice"));
    let d = the_disconnect(&mut first, "takeover");
    assert_eq!(d.reason_code, ReasonCode::SessionTakenOver);

    // 0x8B: the broker stops.
    let (mut last, _) = RawClient::connected(midge.addr(), connect(V5, "last"));
    midge.signal("TERM");
    let d = the_disconnect(&mut last, "shutdown");
    assert_eq!(d.reason_code, ReasonCode::ServerShuttingDown);
    assert_eq!(midge.wait_exit(), Some(0));
}
