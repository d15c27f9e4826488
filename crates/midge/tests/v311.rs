//! MQTT 3.1.1 clients where 3.1.1 says something 5.0 does not (no server DISCONNECT, return
//! codes instead of reason codes, CleanSession instead of Session Expiry), on the running broker.
//! Statements are cited in 3.1.1 numbering, marked `(3.1.1)`; `docs/conformance.md` lists them
//! beside their 5.0 counterparts.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

mod support;

use bytes::BytesMut;
use midge_codec::{Packet, ProtocolVersion, QoS, ReasonCode};
use support::packets::*;
use support::{Midge, RawClient};

const V311: ProtocolVersion = ProtocolVersion::V311;

fn until_pingresp(client: &mut RawClient) -> Vec<Packet> {
    client.send(&Packet::PingReq);
    let mut before = Vec::new();
    loop {
        match client.recv() {
            Packet::PingResp => return before,
            other => before.push(other),
        }
    }
}

fn encoded(packets: &[Packet]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    for p in packets {
        p.encode(V311, &mut buf).unwrap();
    }
    buf.to_vec()
}

#[test]
fn mqtt_3_1_4_1_3_1_1_a_malformed_connect_is_closed_without_connack() {
    let midge = Midge::start("");
    let mut client = RawClient::connect(midge.addr(), V311);
    // CONNECT with the reserved flag set.
    client.send_bytes(&[0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x03, 0, 60, 0, 0]);
    assert!(client.expect_close().is_empty(), "[MQTT-3.1.4-1] (3.1.1)");
}

#[test]
fn mqtt_3_1_4_2_3_1_1_the_connected_client_is_closed_when_its_identifier_connects_again() {
    let midge = Midge::start("");
    let mut first = RawClient::session(midge.addr(), V311, "twice");
    let _second = RawClient::session(midge.addr(), V311, "twice");
    assert!(
        first.expect_close().is_empty(),
        "[MQTT-3.1.4-2] (3.1.1): closed, nothing sent"
    );
}

#[test]
fn mqtt_3_1_4_5_and_3_2_2_4_3_1_1_a_refused_connect_has_session_present_0_and_nothing_after_it_counts() {
    let midge = Midge::start("max_keepalive 10");
    let persistent = |keep_alive| {
        connect_with(V311, "keeper", |c| {
            c.clean_start = false;
            c.keep_alive = keep_alive;
        })
    };
    let (mut keeper, _) = RawClient::connected(midge.addr(), persistent(5));
    keeper.subscribe(&[("k/#", QoS::AtLeastOnce)]);
    keeper.shutdown();
    midge.wait_for_log("Client keeper closed its connection");
    // A keep alive above max_keepalive: return code 2, Session Present 0 though the session
    // exists [MQTT-3.2.2-4] (3.1.1), and the PUBLISH behind it is not processed [MQTT-3.1.4-5]
    // (3.1.1).
    let mut refused = RawClient::connect(midge.addr(), V311);
    refused.send_bytes(&encoded(&[
        persistent(60),
        publish_retained("k/behind", "should not exist", QoS::AtMostOnce, 0),
    ]));
    let got = refused.expect_close();
    assert!(
        matches!(&got[..], [Packet::ConnAck(a)] if a.reason_code == ReasonCode::ClientIdentifierNotValid && !a.session_present),
        "{got:?}"
    );
    let (mut back, ack) = RawClient::connected(midge.addr(), persistent(5));
    assert!(ack.session_present, "the session is untouched");
    assert!(
        until_pingresp(&mut back).is_empty(),
        "nothing was retained or queued"
    );
}

#[test]
fn mqtt_3_1_2_6_3_1_1_clean_session_1_discards_the_session_and_keeps_none() {
    let midge = Midge::start("");
    let session = |clean| {
        connect_with(V311, "cs", |c| {
            c.clean_start = clean;
        })
    };
    let (mut client, _) = RawClient::connected(midge.addr(), session(false));
    client.subscribe(&[("cs/#", QoS::AtLeastOnce)]);
    client.shutdown();
    midge.wait_for_log("Client cs closed its connection");
    let mut publisher = RawClient::session(midge.addr(), V311, "pub");
    publisher.send(&publish("cs/x", "queued", QoS::AtLeastOnce, 1));
    assert!(matches!(publisher.recv(), Packet::PubAck(_)));
    // CleanSession 1: the old session, its subscription and its queue are gone.
    let (mut clean, ack) = RawClient::connected(midge.addr(), session(true));
    assert!(!ack.session_present);
    assert!(until_pingresp(&mut clean).is_empty());
    publisher.send(&publish("cs/x", "not subscribed", QoS::AtMostOnce, 0));
    assert!(until_pingresp(&mut clean).is_empty());
    clean.shutdown();
    // The second such line: this connection's end, not the first one's.
    let deadline = std::time::Instant::now() + support::WAIT;
    while midge
        .logs()
        .iter()
        .filter(|l| l.contains("Client cs closed its connection"))
        .count()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the clean session's end was not logged"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // ...and the new one lasted only as long as that connection.
    let (_again, ack) = RawClient::connected(midge.addr(), session(false));
    assert!(!ack.session_present, "[MQTT-3.1.2-6] (3.1.1)");
}

#[test]
fn mqtt_3_3_1_9_and_3_3_1_12_3_1_1_retain_0_is_forwarded_as_0_and_never_stored() {
    let midge = Midge::start("");
    let mut current = RawClient::session(midge.addr(), V311, "current");
    current.subscribe(&[("r/#", QoS::AtMostOnce)]);
    let mut publisher = RawClient::session(midge.addr(), V311, "pub");
    publisher.send(&publish_retained("r/x", "kept", QoS::AtMostOnce, 0));
    publisher.send(&publish("r/x", "live", QoS::AtMostOnce, 0));
    // To an established subscription, RETAIN 0 whatever was published [MQTT-3.3.1-9] (3.1.1).
    for payload in ["kept", "live"] {
        let p = current.recv_publish();
        assert_eq!((&p.payload[..], p.retain), (payload.as_bytes(), false));
    }
    until_pingresp(&mut publisher);
    // The RETAIN 0 message replaced nothing [MQTT-3.3.1-12] (3.1.1).
    let mut late = RawClient::session(midge.addr(), V311, "late");
    late.subscribe(&[("r/#", QoS::AtMostOnce)]);
    let p = late.recv_publish();
    assert_eq!((&p.payload[..], p.retain), (&b"kept"[..], true));
    assert!(until_pingresp(&mut late).is_empty());
}

#[test]
fn mqtt_3_1_2_16_3_1_1_a_will_without_retain_is_not_retained() {
    let midge = Midge::start("");
    let mut watcher = RawClient::session(midge.addr(), V311, "watcher");
    watcher.subscribe(&[("will/#", QoS::AtMostOnce)]);
    let (mut dying, _) = RawClient::connected(
        midge.addr(),
        connect_with(V311, "dying", |c| {
            c.will = Some(will("will/dying", "gone", QoS::AtMostOnce, false))
        }),
    );
    dying.shutdown();
    assert_eq!(&watcher.recv_publish().payload[..], b"gone");
    let mut late = RawClient::session(midge.addr(), V311, "late");
    late.subscribe(&[("will/#", QoS::AtMostOnce)]);
    assert!(until_pingresp(&mut late).is_empty(), "[MQTT-3.1.2-16] (3.1.1)");
}

#[test]
fn mqtt_3_10_4_4_and_3_10_4_5_3_1_1_unsuback_carries_the_identifier_even_when_nothing_was_deleted() {
    let midge = Midge::start("");
    let mut client = RawClient::session(midge.addr(), V311, "unsub");
    client.send(&unsubscribe(&["never/subscribed"], 778));
    match client.recv() {
        Packet::UnsubAck(ack) => {
            assert_eq!(ack.packet_id.get(), 778, "[MQTT-3.10.4-4] (3.1.1)");
            assert!(ack.reason_codes.is_empty(), "no payload in 3.1.1");
        }
        other => panic!("[MQTT-3.10.4-5] (3.1.1): {other:?}"),
    }
}
