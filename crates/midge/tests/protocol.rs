//! The broker's protocol behaviour over real sockets, packet by packet: what a client sends, and
//! exactly what comes back. Raw packets (encoded by midge-codec) are used where client libraries
//! would hide the detail being checked or refuse to send the violation; `interop/` covers the same
//! ground with paho-mqtt and mosquitto_pub/sub. Each test names the normative statement it checks.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

mod support;

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use bytes::Bytes;
use midge_codec::{Disconnect, Packet, ProtocolVersion, QoS, ReasonCode};
use support::packets::*;
use support::{Midge, RawClient};

const V311: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;

// ---------------------------------------------------------------------------------------------
// CONNECT

#[test]
fn mqtt_3_1_0_1_the_first_packet_must_be_connect() {
    let midge = Midge::start("");
    let mut client = RawClient::connect(midge.addr(), V311);
    client.send_bytes(&[0xC0, 0x00]); // PINGREQ
    assert!(client.expect_close().is_empty(), "no PINGRESP before CONNECT");
    midge.wait_for_log("before CONNECT");
}

#[test]
fn mqtt_3_1_0_2_a_second_connect_closes_the_connection() {
    let midge = Midge::start("");
    let mut v311 = RawClient::session(midge.addr(), V311, "twice-311");
    v311.send(&connect(V311, "twice-311"));
    assert!(v311.expect_close().is_empty());

    let mut v5 = RawClient::session(midge.addr(), V5, "twice-5");
    v5.send(&connect(V5, "twice-5"));
    let before = v5.expect_close();
    assert!(
        matches!(&before[..], [Packet::Disconnect(d)] if d.reason_code == ReasonCode::ProtocolError),
        "{before:?}"
    );
}

#[test]
fn mqtt_3_1_2_2_an_unsupported_protocol_level_gets_connack_0x01() {
    let midge = Midge::start("");
    let mut client = RawClient::connect(midge.addr(), V311);
    // CONNECT "MQTT" level 6.
    client.send_bytes(&[
        0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x06, 0x02, 0x00, 0x3C, 0x00, 0x00,
    ]);
    let before = client.expect_close();
    assert!(
        matches!(&before[..], [Packet::ConnAck(a)] if a.reason_code == ReasonCode::UnsupportedProtocolVersion),
        "{before:?}"
    );
}

#[test]
fn mqtt_3_1_and_3_1_1_and_5_are_all_served() {
    let midge = Midge::start("");
    for (version, marker) in [(ProtocolVersion::V31, "p1"), (V311, "p2"), (V5, "p5")] {
        let id = format!("version-{marker}");
        let mut client = RawClient::session(midge.addr(), version, &id);
        assert_eq!(
            client.subscribe(&[("v/#", QoS::AtLeastOnce)]),
            [ReasonCode::GrantedQos1]
        );
        client.send(&publish("v/x", "hi", QoS::AtLeastOnce, 7));
        let mut got_ack = false;
        let mut got_msg = false;
        while !(got_ack && got_msg) {
            match client.recv() {
                Packet::PubAck(a) if a.packet_id == pid(7) => got_ack = true,
                Packet::Publish(p) => {
                    assert_eq!(&p.payload[..], b"hi");
                    client.send(&puback(p.packet_id.unwrap()));
                    got_msg = true;
                }
                other => panic!("{other:?}"),
            }
        }
        // The log names the protocol the way Mosquitto does.
        midge.wait_for_log(&format!("as {id} ({marker}, c1, k60)"));
    }
}

#[test]
fn mqtt_3_1_3_8_zero_length_client_id_rules() {
    let midge = Midge::start("");
    // 3.1.1 with clean session: accepted, an identifier is assigned [MQTT-3.1.3-6].
    let (_c, ack) = RawClient::connected(midge.addr(), connect(V311, ""));
    assert_eq!(ack.reason_code, ReasonCode::Success);
    midge.wait_for_log("as auto-");
    // 3.1.1 without clean session: identifier rejected (0x02) [MQTT-3.1.3-8].
    let (mut c, ack) = RawClient::connected(midge.addr(), connect_persistent(V311, ""));
    assert_eq!(ack.reason_code, ReasonCode::ClientIdentifierNotValid);
    assert!(c.expect_close().is_empty());
    // 5.0: the assigned identifier is returned [MQTT-3.2.2-16].
    let (_c, ack) = RawClient::connected(midge.addr(), connect(V5, ""));
    assert_eq!(ack.reason_code, ReasonCode::Success);
    let assigned = ack
        .properties
        .assigned_client_identifier
        .clone()
        .expect("Assigned Client Identifier");
    assert!(assigned.starts_with("auto-"), "{assigned}");
}

#[test]
fn allow_zero_length_clientid_false_and_auto_id_prefix() {
    let midge = Midge::start("allow_zero_length_clientid false");
    let (mut c, ack) = RawClient::connected(midge.addr(), connect(V311, ""));
    assert_eq!(ack.reason_code, ReasonCode::ClientIdentifierNotValid);
    assert!(c.expect_close().is_empty());
    let (_c, ack) = RawClient::connected(midge.addr(), connect(V5, ""));
    assert_eq!(ack.reason_code, ReasonCode::ClientIdentifierNotValid);
    midge.wait_for_log("Client refused from 127.0.0.1");

    let midge = Midge::start("auto_id_prefix sensor-");
    let (_c, ack) = RawClient::connected(midge.addr(), connect(V5, ""));
    assert!(
        ack.properties
            .assigned_client_identifier
            .as_deref()
            .unwrap()
            .starts_with("sensor-")
    );
}

#[test]
fn allow_anonymous_false_refuses_clients_without_a_user_name() {
    let midge = Midge::start_with_config("listener 0 127.0.0.1\nallow_anonymous false\n");
    let (mut c, ack) = RawClient::connected(midge.addr(), connect(V311, "anon"));
    assert_eq!(ack.reason_code, ReasonCode::NotAuthorized, "3.1.1 return code 5");
    assert!(c.expect_close().is_empty());
    let (_c, ack) = RawClient::connected(midge.addr(), connect(V5, "anon5"));
    assert_eq!(ack.reason_code, ReasonCode::NotAuthorized);
}

#[test]
fn mqtt_3_1_4_3_takeover_closes_the_first_connection_and_publishes_its_will() {
    let midge = Midge::start("");
    let mut watcher = RawClient::session(midge.addr(), V311, "watcher");
    watcher.subscribe(&[("wills/#", QoS::AtLeastOnce)]);

    let (mut first, ack) = RawClient::connected(
        midge.addr(),
        connect_with(V5, "dup", |c| {
            c.clean_start = false;
            c.properties.session_expiry_interval = Some(60);
            c.will = Some(will("wills/dup", "gone", QoS::AtLeastOnce, false));
        }),
    );
    assert!(!ack.session_present);
    first.subscribe(&[("kept/#", QoS::AtLeastOnce)]);

    let (mut second, ack) = RawClient::connected(midge.addr(), connect_persistent(V5, "dup"));
    assert!(ack.session_present, "the session continues [MQTT-3.2.2-3]");
    let before = first.expect_close();
    assert!(
        matches!(&before[..], [Packet::Disconnect(d)] if d.reason_code == ReasonCode::SessionTakenOver),
        "{before:?}"
    );
    let will = watcher.recv_publish();
    assert_eq!((&will.topic[..], &will.payload[..]), ("wills/dup", &b"gone"[..]));
    // The subscription made on the first connection serves the second.
    watcher.send(&publish("kept/x", "still here", QoS::AtMostOnce, 0));
    assert_eq!(&second.recv_publish().payload[..], b"still here");
}

#[test]
fn a_connection_that_sends_no_connect_is_closed_after_ten_seconds() {
    let midge = Midge::start("");
    let mut silent = RawClient::connect(midge.addr(), V311);
    let started = Instant::now();
    match silent.recv_timeout(Duration::from_secs(15)) {
        Ok(None) => {}
        other => panic!("expected the broker to close, got {other:?}"),
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(14),
        "{waited:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Sessions and queues

#[test]
fn mqtt_3_2_2_session_present_and_queued_messages_for_a_persistent_client() {
    let midge = Midge::start("");
    for version in [V311, V5] {
        let id = format!("persist-{version:?}");
        let (mut sub, ack) = RawClient::connected(midge.addr(), connect_persistent(version, &id));
        assert!(!ack.session_present);
        sub.subscribe(&[("q/#", QoS::AtLeastOnce)]);
        sub.send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)));
        sub.expect_close();

        let mut publisher = RawClient::session(midge.addr(), V311, "publisher");
        for n in 1..=3u16 {
            publisher.send(&publish("q/x", format!("m{n}"), QoS::AtLeastOnce, n));
            assert!(matches!(publisher.recv(), Packet::PubAck(_)));
        }
        publisher.send(&publish("q/x", "qos0 is not queued", QoS::AtMostOnce, 0));
        // PINGRESP comes after the broker has handled the QoS 0 PUBLISH.
        publisher.send(&Packet::PingReq);
        assert!(matches!(publisher.recv(), Packet::PingResp));

        let (mut sub, ack) = RawClient::connected(midge.addr(), connect_persistent(version, &id));
        assert!(ack.session_present, "[MQTT-3.2.2-3]");
        for n in 1..=3 {
            let p = sub.recv_publish();
            assert_eq!(p.payload, Bytes::from(format!("m{n}")));
            sub.send(&puback(p.packet_id.unwrap()));
        }
        sub.expect_nothing(Duration::from_millis(300));
        // A clean start discards the session [MQTT-3.1.2-4].
        sub.shutdown();
        let (_s, ack) = RawClient::connected(midge.addr(), connect(version, &id));
        assert!(!ack.session_present);
    }
}

#[test]
fn mqtt_4_4_0_1_unacknowledged_messages_are_resent_with_dup_in_order() {
    let midge = Midge::start("");
    let (mut sub, _) = RawClient::connected(midge.addr(), connect_persistent(V311, "redeliver"));
    sub.subscribe(&[("r/#", QoS::ExactlyOnce)]);
    let mut publisher = RawClient::session(midge.addr(), V5, "p");
    for n in 1..=3u16 {
        publisher.send(&publish("r/x", format!("m{n}"), QoS::ExactlyOnce, n));
        assert!(matches!(publisher.recv(), Packet::PubRec(_)));
        publisher.send(&pubrel(pid(n)));
        assert!(matches!(publisher.recv(), Packet::PubComp(_)));
    }
    let first: Vec<_> = (0..3).map(|_| sub.recv_publish()).collect();
    assert!(first.iter().all(|p| !p.dup));
    // Acknowledge nothing: PUBREC for the second only, then drop the connection.
    sub.send(&pubrec(first[1].packet_id.unwrap()));
    assert!(matches!(sub.recv(), Packet::PubRel(_)));
    sub.shutdown();

    let (mut sub, ack) = RawClient::connected(midge.addr(), connect_persistent(V311, "redeliver"));
    assert!(ack.session_present);
    // m1 and m3 again with DUP and their packet identifiers; m2 continues at PUBREL [MQTT-4.4.0-1].
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(sub.recv());
    }
    let summary: Vec<String> = got
        .iter()
        .map(|p| match p {
            Packet::Publish(p) => format!("PUBLISH {} dup={}", String::from_utf8_lossy(&p.payload), p.dup),
            Packet::PubRel(a) => format!("PUBREL {}", a.packet_id),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "PUBLISH m1 dup=true".to_owned(),
            format!("PUBREL {}", first[1].packet_id.unwrap()),
            "PUBLISH m3 dup=true".to_owned()
        ]
    );
    for p in &got {
        if let Packet::Publish(p) = p {
            let original = first.iter().find(|f| f.payload == p.payload).unwrap();
            assert_eq!(p.packet_id, original.packet_id, "the same packet identifier");
        }
    }
}

#[test]
fn max_queued_messages_drops_the_excess_counts_and_warns() {
    let midge = Midge::start("max_queued_messages 3");
    let (mut sub, _) = RawClient::connected(midge.addr(), connect_persistent(V311, "small-queue"));
    sub.subscribe(&[("d/#", QoS::AtLeastOnce)]);
    sub.shutdown();
    midge.wait_for_log("Client small-queue closed its connection");
    let mut publisher = RawClient::session(midge.addr(), V311, "p");
    for n in 1..=10u16 {
        publisher.send(&publish("d/x", format!("m{n}"), QoS::AtLeastOnce, n));
        assert!(matches!(publisher.recv(), Packet::PubAck(_)));
    }
    midge.wait_for_log("dropped messages for client small-queue");
    let (mut sub, _) = RawClient::connected(midge.addr(), connect_persistent(V311, "small-queue"));
    let payloads: Vec<Bytes> = (0..3)
        .map(|_| {
            let p = sub.recv_publish();
            sub.send(&puback(p.packet_id.unwrap()));
            p.payload
        })
        .collect();
    assert_eq!(
        payloads,
        ["m1", "m2", "m3"].map(|s| Bytes::from_static(s.as_bytes()))
    );
    sub.expect_nothing(Duration::from_millis(300));
    // Seven drops, one warning line (rate limited).
    let warnings = midge
        .logs()
        .iter()
        .filter(|l| l.contains("dropped messages for client small-queue"))
        .count();
    assert_eq!(warnings, 1);
}

#[test]
fn queue_qos0_messages_queues_qos0_for_offline_clients() {
    for (setting, expected) in [("false", 0), ("true", 2)] {
        let midge = Midge::start(&format!("queue_qos0_messages {setting}"));
        let (mut sub, _) = RawClient::connected(midge.addr(), connect_persistent(V311, "q0"));
        sub.subscribe(&[("z/#", QoS::AtMostOnce)]);
        sub.shutdown();
        midge.wait_for_log("Client q0 closed its connection");
        let mut publisher = RawClient::session(midge.addr(), V311, "p");
        publisher.send(&publish("z/1", "a", QoS::AtMostOnce, 0));
        publisher.send(&publish("z/2", "b", QoS::AtMostOnce, 0));
        publisher.send(&Packet::PingReq);
        assert!(matches!(publisher.recv(), Packet::PingResp));
        let (mut sub, _) = RawClient::connected(midge.addr(), connect_persistent(V311, "q0"));
        let mut got = 0;
        while let Ok(Some(Packet::Publish(_))) = sub.recv_timeout(Duration::from_millis(400)) {
            got += 1;
        }
        assert_eq!(got, expected, "queue_qos0_messages {setting}");
    }
}

#[test]
fn mqtt_3_1_2_23_v5_session_expiry_zero_ends_the_session_with_the_connection() {
    let midge = Midge::start("");
    let (mut c, _) = RawClient::connected(
        midge.addr(),
        connect_with(V5, "short", |c| {
            c.clean_start = false;
            c.properties.session_expiry_interval = Some(0);
        }),
    );
    c.subscribe(&[("s/#", QoS::AtLeastOnce)]);
    c.shutdown();
    midge.wait_for_log("Client short closed its connection");
    let (_c, ack) = RawClient::connected(midge.addr(), connect_persistent(V5, "short"));
    assert!(!ack.session_present);
}

// ---------------------------------------------------------------------------------------------
// QoS

#[test]
fn mqtt_4_3_3_qos2_inbound_is_delivered_once_even_when_retransmitted() {
    let midge = Midge::start("");
    let mut sub = RawClient::session(midge.addr(), V311, "sub");
    sub.subscribe(&[("e/#", QoS::ExactlyOnce)]);
    let mut publisher = RawClient::session(midge.addr(), V311, "pub");
    publisher.send(&publish("e/x", "once", QoS::ExactlyOnce, 5));
    assert!(matches!(publisher.recv(), Packet::PubRec(a) if a.packet_id == pid(5)));
    // Retransmit with DUP before PUBREL.
    let Packet::Publish(mut again) = publish("e/x", "once", QoS::ExactlyOnce, 5) else {
        unreachable!()
    };
    again.dup = true;
    publisher.send(&Packet::Publish(again));
    assert!(matches!(publisher.recv(), Packet::PubRec(a) if a.packet_id == pid(5)));
    publisher.send(&pubrel(pid(5)));
    assert!(matches!(publisher.recv(), Packet::PubComp(a) if a.packet_id == pid(5)));

    let delivered = sub.recv_publish();
    assert_eq!(delivered.qos, QoS::ExactlyOnce);
    let id = delivered.packet_id.unwrap();
    sub.send(&pubrec(id));
    assert!(matches!(sub.recv(), Packet::PubRel(a) if a.packet_id == id));
    sub.send(&pubcomp(id));
    sub.expect_nothing(Duration::from_millis(300));
}

#[test]
fn max_inflight_messages_bounds_the_window_and_ids_are_not_reused_while_in_flight() {
    let midge = Midge::start("max_inflight_messages 2");
    let mut sub = RawClient::session(midge.addr(), V311, "slow");
    sub.subscribe(&[("w/#", QoS::AtLeastOnce)]);
    let mut publisher = RawClient::session(midge.addr(), V311, "pub");
    for n in 1..=5u16 {
        publisher.send(&publish("w/x", format!("m{n}"), QoS::AtLeastOnce, n));
        assert!(matches!(publisher.recv(), Packet::PubAck(_)));
    }
    let a = sub.recv_publish();
    let b = sub.recv_publish();
    assert_ne!(a.packet_id, b.packet_id, "[MQTT-2.2.1-3]");
    sub.expect_nothing(Duration::from_millis(300));
    sub.send(&puback(a.packet_id.unwrap()));
    let c = sub.recv_publish();
    assert_eq!(&c.payload[..], b"m3");
    assert_ne!(c.packet_id, b.packet_id);
    sub.expect_nothing(Duration::from_millis(200));
    sub.send(&puback(b.packet_id.unwrap()));
    sub.send(&puback(c.packet_id.unwrap()));
    assert_eq!(&sub.recv_publish().payload[..], b"m4");
    assert_eq!(&sub.recv_publish().payload[..], b"m5");
}

#[test]
fn messages_to_one_subscriber_keep_publish_order() {
    let midge = Midge::start("");
    let mut sub = RawClient::session(midge.addr(), V5, "ordered");
    sub.subscribe(&[("o/#", QoS::AtLeastOnce)]);
    let mut publisher = RawClient::session(midge.addr(), V311, "pub");
    for n in 1..=500u16 {
        let qos = if n % 2 == 0 {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        };
        publisher.send(&publish("o/x", format!("{n}"), qos, n));
    }
    for n in 1..=500u32 {
        let p = sub.recv_publish();
        assert_eq!(p.payload, Bytes::from(n.to_string()));
        if let Some(id) = p.packet_id {
            sub.send(&puback(id));
        }
    }
}

#[test]
fn upgrade_outgoing_qos_delivers_at_the_subscription_qos() {
    for (setting, expected) in [("false", QoS::AtMostOnce), ("true", QoS::ExactlyOnce)] {
        let midge = Midge::start(&format!("upgrade_outgoing_qos {setting}"));
        let mut sub = RawClient::session(midge.addr(), V311, "sub");
        sub.subscribe(&[("u/#", QoS::ExactlyOnce)]);
        let mut publisher = RawClient::session(midge.addr(), V311, "pub");
        publisher.send(&publish("u/x", "up", QoS::AtMostOnce, 0));
        assert_eq!(sub.recv_publish().qos, expected, "upgrade_outgoing_qos {setting}");
    }
}

// ---------------------------------------------------------------------------------------------
// Subscriptions

#[test]
fn mqtt_4_7_2_1_wildcards_do_not_match_dollar_topics() {
    let midge = Midge::start("");
    let mut wild = RawClient::session(midge.addr(), V311, "wild");
    wild.subscribe(&[("#", QoS::AtMostOnce), ("+/x", QoS::AtMostOnce)]);
    let mut dollar = RawClient::session(midge.addr(), V311, "dollar");
    dollar.subscribe(&[("$test/#", QoS::AtMostOnce)]);
    let mut publisher = RawClient::session(midge.addr(), V311, "pub");
    publisher.send(&publish("$test/x", "hidden", QoS::AtMostOnce, 0));
    publisher.send(&publish("plain/x", "seen", QoS::AtMostOnce, 0));
    assert_eq!(&dollar.recv_publish().payload[..], b"hidden");
    assert_eq!(&wild.recv_publish().payload[..], b"seen");
    wild.expect_nothing(Duration::from_millis(300));
}

#[test]
fn wildcards_plus_and_hash() {
    let midge = Midge::start("");
    let mut sub = RawClient::session(midge.addr(), V311, "sub");
    sub.subscribe(&[("a/+/c", QoS::AtMostOnce), ("x/#", QoS::AtMostOnce)]);
    let mut publisher = RawClient::session(midge.addr(), V311, "pub");
    for t in ["a/b/c", "a/b/d", "a/c", "a//c", "x", "x/y/z", "y/x"] {
        publisher.send(&publish(t, t.to_owned(), QoS::AtMostOnce, 0));
    }
    let mut got = Vec::new();
    while let Ok(Some(Packet::Publish(p))) = sub.recv_timeout(Duration::from_millis(400)) {
        got.push(String::from_utf8(p.payload.to_vec()).unwrap());
    }
    // "x/#" matches "x" itself [MQTT-4.7.1-2].
    assert_eq!(got, ["a/b/c", "a//c", "x", "x/y/z"]);
}

#[test]
fn mqtt_3_3_4_2_overlapping_subscriptions_deliver_once_at_the_highest_qos() {
    let midge = Midge::start("");
    let mut sub = RawClient::session(midge.addr(), V311, "overlap");
    sub.subscribe(&[("a/#", QoS::AtMostOnce), ("a/+", QoS::AtLeastOnce)]);
    let mut publisher = RawClient::session(midge.addr(), V311, "pub");
    publisher.send(&publish("a/b", "one", QoS::ExactlyOnce, 1));
    let p = sub.recv_publish();
    assert_eq!(p.qos, QoS::AtLeastOnce);
    sub.send(&puback(p.packet_id.unwrap()));
    sub.expect_nothing(Duration::from_millis(300));
}

#[test]
fn v5_overlapping_subscriptions_carry_every_subscription_identifier() {
    let midge = Midge::start("");
    let mut sub = RawClient::session(midge.addr(), V5, "ids");
    for (filter, id) in [("a/#", 1u32), ("a/+", 2)] {
        let Packet::Subscribe(mut s) = subscribe(&[(filter, QoS::AtMostOnce)], 1) else {
            unreachable!()
        };
        s.properties.subscription_identifier = midge_codec::SubscriptionId::new(id);
        sub.send(&Packet::Subscribe(s));
        assert!(matches!(sub.recv(), Packet::SubAck(_)));
    }
    let mut publisher = RawClient::session(midge.addr(), V311, "pub");
    publisher.send(&publish("a/b", "x", QoS::AtMostOnce, 0));
    let p = sub.recv_publish();
    let mut ids: Vec<u32> = p
        .properties
        .subscription_identifiers
        .iter()
        .map(|i| i.get())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2], "[MQTT-3.3.4-3]");
    sub.expect_nothing(Duration::from_millis(300));
}

#[test]
fn unsubscribe_stops_delivery_and_unsuback_says_what_existed() {
    let midge = Midge::start("");
    let mut sub = RawClient::session(midge.addr(), V5, "unsub");
    sub.subscribe(&[("u/#", QoS::AtMostOnce)]);
    sub.send(&unsubscribe(&["u/#", "never/subscribed"], 3));
    match sub.recv() {
        Packet::UnsubAck(ack) => {
            assert_eq!(ack.packet_id, pid(3));
            assert_eq!(
                ack.reason_codes,
                [ReasonCode::Success, ReasonCode::NoSubscriptionExisted]
            );
        }
        other => panic!("{other:?}"),
    }
    let mut publisher = RawClient::session(midge.addr(), V311, "pub");
    publisher.send(&publish("u/x", "gone", QoS::AtMostOnce, 0));
    sub.expect_nothing(Duration::from_millis(300));
}

#[test]
fn shared_subscriptions_round_robin_and_skip_absent_members() {
    let midge = Midge::start("");
    let mut m1 = RawClient::session(midge.addr(), V5, "m1");
    let mut m2 = RawClient::session(midge.addr(), V311, "m2");
    let mut all = RawClient::session(midge.addr(), V311, "all");
    m1.subscribe(&[("$share/g/jobs/#", QoS::AtLeastOnce)]);
    m2.subscribe(&[("$share/g/jobs/#", QoS::AtLeastOnce)]);
    all.subscribe(&[("jobs/#", QoS::AtMostOnce)]);
    let mut publisher = RawClient::session(midge.addr(), V311, "pub");
    for n in 0..10u16 {
        publisher.send(&publish("jobs/x", format!("{n}"), QoS::AtLeastOnce, n + 1));
    }
    let mut counts = [0, 0];
    for (i, member) in [&mut m1, &mut m2].into_iter().enumerate() {
        while let Ok(Some(Packet::Publish(p))) = member.recv_timeout(Duration::from_millis(400)) {
            member.send(&puback(p.packet_id.unwrap()));
            counts[i] += 1;
        }
    }
    assert_eq!(counts, [5, 5], "round robin");
    for _ in 0..10 {
        all.recv_publish();
    }
    // An absent member's share goes to the one still there.
    m2.shutdown();
    midge.wait_for_log("Client m2 closed its connection");
    for n in 0..4u16 {
        publisher.send(&publish("jobs/y", format!("{n}"), QoS::AtLeastOnce, n + 20));
    }
    for _ in 0..4 {
        let p = m1.recv_publish();
        m1.send(&puback(p.packet_id.unwrap()));
    }
}

#[test]
fn max_qos_caps_granted_qos() {
    let midge = Midge::start_with_config("listener 0 127.0.0.1\nallow_anonymous true\nmax_qos 1\n");
    let mut sub = RawClient::session(midge.addr(), V311, "capped");
    assert_eq!(
        sub.subscribe(&[("c/#", QoS::ExactlyOnce)]),
        [ReasonCode::GrantedQos1]
    );
    let (_c, ack) = RawClient::connected(midge.addr(), connect(V5, "capped5"));
    assert_eq!(
        ack.properties.maximum_qos,
        Some(QoS::AtLeastOnce),
        "[MQTT-3.2.2-9]"
    );
}

// ---------------------------------------------------------------------------------------------
// Retained messages

#[test]
fn mqtt_3_3_1_5_retained_messages_are_stored_replaced_and_deleted() {
    let midge = Midge::start("");
    let mut publisher = RawClient::session(midge.addr(), V311, "pub");
    publisher.send(&publish_retained("ret/a", "first", QoS::AtLeastOnce, 1));
    publisher.recv();
    publisher.send(&publish_retained("ret/a", "second", QoS::AtLeastOnce, 2));
    publisher.recv();
    publisher.send(&publish_retained("ret/b", "b", QoS::AtMostOnce, 0));
    // QoS 0 has no ack: a PINGRESP says the broker has handled what came before.
    publisher.send(&Packet::PingReq);
    assert!(matches!(publisher.recv(), Packet::PingResp));

    let mut sub = RawClient::session(midge.addr(), V5, "sub");
    sub.subscribe(&[("ret/#", QoS::AtLeastOnce)]);
    let mut got: Vec<(String, String, bool)> = (0..2)
        .map(|_| {
            let p = sub.recv_publish();
            if let Some(id) = p.packet_id {
                sub.send(&puback(id));
            }
            (
                p.topic.to_string(),
                String::from_utf8(p.payload.to_vec()).unwrap(),
                p.retain,
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("ret/a".into(), "second".into(), true),
            ("ret/b".into(), "b".into(), true)
        ]
    );
    // A live message to an existing subscriber has retain 0: [MQTT-3.3.1-9] (3.1.1), and
    // [MQTT-3.3.1-12] in 5.0 without Retain As Published.
    publisher.send(&publish_retained("ret/b", "live", QoS::AtMostOnce, 0));
    assert!(!sub.recv_publish().retain);
    // An empty retained payload deletes [MQTT-3.3.1-6].
    publisher.send(&publish_retained("ret/a", Bytes::new(), QoS::AtMostOnce, 0));
    publisher.send(&Packet::PingReq);
    assert!(matches!(publisher.recv(), Packet::PingResp));
    let mut late = RawClient::session(midge.addr(), V311, "late");
    late.subscribe(&[("ret/#", QoS::AtMostOnce)]);
    let p = late.recv_publish();
    assert_eq!((&p.topic[..], &p.payload[..]), ("ret/b", &b"live"[..]));
    late.expect_nothing(Duration::from_millis(300));
}

#[test]
fn retain_available_false_refuses_retained_publishes() {
    let midge = Midge::start("retain_available false");
    let (mut v5, ack) = RawClient::connected(midge.addr(), connect(V5, "r5"));
    assert_eq!(ack.properties.retain_available, Some(false), "§3.2.2.3.5");
    v5.send(&publish_retained("r/x", "no", QoS::AtMostOnce, 0));
    let before = v5.expect_close();
    assert!(
        matches!(&before[..], [Packet::Disconnect(d)] if d.reason_code == ReasonCode::RetainNotSupported),
        "[MQTT-3.2.2-14] {before:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Will and keep alive

#[test]
fn mqtt_3_1_2_8_the_will_is_published_on_abrupt_close_but_not_after_disconnect() {
    let midge = Midge::start("");
    let mut watcher = RawClient::session(midge.addr(), V311, "watcher");
    watcher.subscribe(&[("will/#", QoS::AtLeastOnce)]);

    let with_will = |id: &str| {
        connect_with(V311, id, |c| {
            c.will = Some(will(&format!("will/{id}"), "bye", QoS::AtLeastOnce, true))
        })
    };
    let (mut polite, _) = RawClient::connected(midge.addr(), with_will("polite"));
    polite.send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)));
    polite.expect_close();
    let (mut abrupt, _) = RawClient::connected(midge.addr(), with_will("abrupt"));
    abrupt.shutdown();

    let p = watcher.recv_publish();
    assert_eq!(
        &p.topic[..],
        "will/abrupt",
        "[MQTT-3.14.4-3]: no will after DISCONNECT"
    );
    watcher.send(&puback(p.packet_id.unwrap()));
    // The will was retained [MQTT-3.1.2-15].
    let mut late = RawClient::session(midge.addr(), V311, "late");
    late.subscribe(&[("will/#", QoS::AtMostOnce)]);
    let p = late.recv_publish();
    assert!(p.retain);
    assert_eq!(&p.topic[..], "will/abrupt");
}

#[test]
fn v5_disconnect_with_will_message_publishes_the_will() {
    let midge = Midge::start("");
    let mut watcher = RawClient::session(midge.addr(), V311, "watcher");
    watcher.subscribe(&[("will/#", QoS::AtMostOnce)]);
    let (mut c, _) = RawClient::connected(
        midge.addr(),
        connect_with(V5, "w5", |c| {
            c.will = Some(will("will/w5", "0x04", QoS::AtMostOnce, false))
        }),
    );
    c.send(&Packet::Disconnect(Disconnect::new(
        ReasonCode::DisconnectWithWillMessage,
    )));
    assert_eq!(&watcher.recv_publish().payload[..], b"0x04");
}

#[test]
fn keep_alive_timeout_closes_after_one_and_a_half_times_and_publishes_the_will() {
    let midge = Midge::start("");
    let mut watcher = RawClient::session(midge.addr(), V311, "watcher");
    watcher.subscribe(&[("will/#", QoS::AtMostOnce)]);
    let (mut quiet, _) = RawClient::connected(
        midge.addr(),
        connect_with(V311, "quiet", |c| {
            c.keep_alive = 1;
            c.will = Some(will("will/quiet", "timed out", QoS::AtMostOnce, false));
        }),
    );
    let started = Instant::now();
    assert!(quiet.expect_close().is_empty());
    let waited = started.elapsed();
    // [MQTT-3.1.2-22]: within one and a half keep alive periods (plus scheduling slack).
    assert!(
        waited >= Duration::from_millis(1400) && waited < Duration::from_millis(3000),
        "{waited:?}"
    );
    assert_eq!(&watcher.recv_publish().payload[..], b"timed out");
    midge.wait_for_log("Client quiet has exceeded timeout, disconnecting.");
}

#[test]
fn pingreq_keeps_a_connection_alive() {
    let midge = Midge::start("");
    let (mut c, _) = RawClient::connected(midge.addr(), connect_with(V311, "pinger", |c| c.keep_alive = 1));
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(700));
        c.send(&Packet::PingReq);
        assert!(matches!(c.recv(), Packet::PingResp), "[MQTT-3.12.4-1]");
    }
}

#[test]
fn max_keepalive_is_announced_to_v5_clients_and_refuses_3_1_1_clients_beyond_it() {
    let midge = Midge::start("max_keepalive 10");
    let (_c, ack) = RawClient::connected(midge.addr(), connect_with(V5, "k5", |c| c.keep_alive = 60));
    assert_eq!(ack.reason_code, ReasonCode::Success);
    assert_eq!(ack.properties.server_keep_alive, Some(10), "[MQTT-3.2.2-21]");
    // Mosquitto refuses a 3.1.1 client whose keep alive exceeds max_keepalive.
    let (_c, ack) = RawClient::connected(midge.addr(), connect_with(V311, "k3", |c| c.keep_alive = 60));
    assert_eq!(ack.reason_code, ReasonCode::ClientIdentifierNotValid);
}

#[test]
fn v5_will_delay_publishes_late_and_a_reconnect_cancels_it() {
    let midge = Midge::start("");
    let mut watcher = RawClient::session(midge.addr(), V311, "watcher");
    watcher.subscribe(&[("will/#", QoS::AtMostOnce)]);
    let delayed = |id: &str| {
        connect_with(V5, id, |c| {
            c.clean_start = false;
            c.properties.session_expiry_interval = Some(60);
            let mut w = will(&format!("will/{id}"), "late", QoS::AtMostOnce, false);
            w.properties.will_delay_interval = Some(2);
            c.will = Some(w);
        })
    };
    let (mut late, _) = RawClient::connected(midge.addr(), delayed("late"));
    let (mut back, _) = RawClient::connected(midge.addr(), delayed("back"));
    let dropped = Instant::now();
    late.shutdown();
    back.shutdown();
    midge.wait_for_log("Client back closed its connection");
    // "back" returns within the delay: its will is cancelled [MQTT-3.1.3-9].
    let (_back, ack) = RawClient::connected(midge.addr(), connect_persistent(V5, "back"));
    assert!(ack.session_present);
    let p = watcher.recv_publish();
    assert_eq!(&p.topic[..], "will/late");
    let waited = dropped.elapsed();
    assert!(
        waited >= Duration::from_millis(1900),
        "published after the delay, not {waited:?}"
    );
    watcher.expect_nothing(Duration::from_millis(2500));
}

// ---------------------------------------------------------------------------------------------
// Limits and bad input

#[test]
fn max_packet_size_is_announced_and_enforced_both_ways() {
    let midge = Midge::start("max_packet_size 100");
    let (mut big, ack) = RawClient::connected(midge.addr(), connect(V5, "big"));
    assert_eq!(
        ack.properties.maximum_packet_size,
        NonZeroU32::new(100),
        "[MQTT-3.2.2-15]"
    );
    big.send(&publish("m/x", vec![b'x'; 200], QoS::AtMostOnce, 0));
    let before = big.expect_close();
    assert!(
        matches!(&before[..], [Packet::Disconnect(d)] if d.reason_code == ReasonCode::PacketTooLarge),
        "{before:?}"
    );
    // A client's own Maximum Packet Size: larger messages are not sent to it [MQTT-3.1.2-25].
    let midge = Midge::start("");
    let (mut small, _) = RawClient::connected(
        midge.addr(),
        connect_with(V5, "small", |c| {
            c.properties.maximum_packet_size = NonZeroU32::new(64)
        }),
    );
    small.subscribe(&[("m/#", QoS::AtMostOnce)]);
    let mut publisher = RawClient::session(midge.addr(), V311, "pub");
    publisher.send(&publish("m/x", vec![b'x'; 100], QoS::AtMostOnce, 0));
    publisher.send(&publish("m/x", "fits", QoS::AtMostOnce, 0));
    assert_eq!(&small.recv_publish().payload[..], b"fits");
}

#[test]
fn message_size_limit_drops_larger_payloads() {
    let midge = Midge::start("message_size_limit 10");
    let mut sub = RawClient::session(midge.addr(), V311, "sub");
    sub.subscribe(&[("s/#", QoS::AtMostOnce)]);
    let mut publisher = RawClient::session(midge.addr(), V311, "pub");
    publisher.send(&publish("s/x", "this is longer than ten", QoS::AtLeastOnce, 1));
    // 3.1.1 has no way to refuse a PUBLISH: Mosquitto acknowledges and drops it.
    assert!(matches!(publisher.recv(), Packet::PubAck(_)));
    publisher.send(&publish("s/x", "short", QoS::AtMostOnce, 0));
    assert_eq!(&sub.recv_publish().payload[..], b"short");
    midge.wait_for_log("dropped messages for client pub: message_size_limit");
}

#[test]
fn malformed_packets_close_the_connection_v5_with_a_reason_code() {
    let midge = Midge::start("");
    let mut v5 = RawClient::session(midge.addr(), V5, "bad5");
    // PUBLISH QoS 3 is malformed [MQTT-3.3.1-4].
    v5.send_bytes(&[0x36, 0x05, 0x00, 0x01, b'a', 0x00, 0x01]);
    let before = v5.expect_close();
    assert!(
        matches!(&before[..], [Packet::Disconnect(d)] if d.reason_code == ReasonCode::MalformedPacket),
        "{before:?}"
    );
    let mut v311 = RawClient::session(midge.addr(), V311, "bad311");
    // SUBSCRIBE with reserved flags 0000 [MQTT-3.8.1-1].
    v311.send_bytes(&[0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00]);
    assert!(v311.expect_close().is_empty());
    midge.wait_for_log("Client bad311 sent a bad packet");
    // Other clients carry on.
    let _ok = RawClient::session(midge.addr(), V311, "fine");
}

#[test]
fn the_will_is_published_after_a_protocol_error_with_its_qos() {
    let midge = Midge::start("");
    let mut watcher = RawClient::session(midge.addr(), V311, "watcher");
    watcher.subscribe(&[("will/#", QoS::ExactlyOnce)]);
    let (mut bad, _) = RawClient::connected(
        midge.addr(),
        connect_with(V5, "violator", |c| {
            c.will = Some(will("will/violator", "broke the rules", QoS::AtLeastOnce, false))
        }),
    );
    // PUBLISH QoS 1 with packet identifier 0 is malformed [MQTT-2.2.1-3].
    bad.send_bytes(&[0x32, 0x05, 0x00, 0x01, b'a', 0x00, 0x00]);
    let before = bad.expect_close();
    assert!(
        matches!(&before[..], [Packet::Disconnect(d)] if d.reason_code.is_error()),
        "{before:?}"
    );
    let p = watcher.recv_publish();
    assert_eq!(&p.payload[..], b"broke the rules");
    assert_eq!(p.qos, QoS::AtLeastOnce, "§3.1.2.6: the will's QoS");
}
