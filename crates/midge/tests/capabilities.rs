//! What Midge's CONNACK tells an MQTT 5 client, each part driven by configuration, and what
//! happens to a client that asks for what it was told is not there: Maximum QoS, Retain
//! Available, Wildcard / Subscription Identifier / Shared Subscription Available, Receive
//! Maximum, Maximum Packet Size, Topic Alias Maximum, Server Keep Alive, Response Information
//! (`response_information`) and server redirection (`server_reference`, `server_moved`).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

mod support;

use std::num::{NonZeroU16, NonZeroU32};

use midge_codec::properties::ConnAckProperties;
use midge_codec::{ConnAck, Packet, ProtocolVersion, QoS, ReasonCode, SubscriptionId};
use support::packets::*;
use support::{Midge, RawClient};

const V311: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;

fn connack(midge: &Midge, id: &str) -> (RawClient, ConnAck) {
    RawClient::connected(midge.addr(), connect_with(V5, id, |c| c.keep_alive = 60))
}

/// Asserts the connection ends with exactly one DISCONNECT with `reason`.
fn disconnected_with(client: &mut RawClient, reason: ReasonCode, why: &str) {
    let before = client.expect_close();
    assert!(
        matches!(&before[..], [Packet::Disconnect(d)] if d.reason_code == reason),
        "{why}: expected DISCONNECT {reason:?}, got {before:?}"
    );
}

#[test]
fn the_connack_says_what_the_configuration_says() {
    let midge = Midge::start("");
    let (_c, ack) = connack(&midge, "defaults");
    let p: &ConnAckProperties = &ack.properties;
    assert_eq!(p.receive_maximum, NonZeroU16::new(20), "max_inflight_messages 20");
    assert_eq!(p.topic_alias_maximum, Some(10), "max_topic_alias 10");
    // Absent means: no limit beyond the protocol's, QoS 2, retained messages, wildcards,
    // identifiers and shared subscriptions all available, the client's keep alive in force.
    assert_eq!(p.maximum_packet_size, None);
    assert_eq!(p.maximum_qos, None);
    assert_eq!(p.retain_available, None);
    assert_eq!(p.wildcard_subscription_available, None);
    assert_eq!(p.subscription_identifiers_available, None);
    assert_eq!(p.shared_subscription_available, None);
    assert_eq!(p.server_keep_alive, None);

    let midge = Midge::start(
        "max_inflight_messages 5\nmax_packet_size 2000\nmax_topic_alias 0\nretain_available false\n\
         max_qos 1\nwildcard_subscription_available false\nsubscription_identifier_available false\n\
         shared_subscription_available false\nmax_keepalive 30",
    );
    let (_c, ack) = connack(&midge, "configured");
    let p: &ConnAckProperties = &ack.properties;
    assert_eq!(p.receive_maximum, NonZeroU16::new(5));
    assert_eq!(p.maximum_packet_size, NonZeroU32::new(2000));
    assert_eq!(p.topic_alias_maximum, None, "0 is sent as no property");
    assert_eq!(p.retain_available, Some(false));
    assert_eq!(p.maximum_qos, Some(QoS::AtLeastOnce), "[MQTT-3.2.2-9]");
    assert_eq!(p.wildcard_subscription_available, Some(false));
    assert_eq!(p.subscription_identifiers_available, Some(false));
    assert_eq!(p.shared_subscription_available, Some(false));
    assert_eq!(p.server_keep_alive, Some(30), "the client asked for 60");
}

#[test]
fn mqtt_3_2_2_9_and_3_2_2_10_max_qos_0_is_announced_and_subscriptions_are_granted_at_0() {
    let midge = Midge::start("max_qos 0");
    let (mut client, ack) = connack(&midge, "q0");
    assert_eq!(
        ack.properties.maximum_qos,
        Some(QoS::AtMostOnce),
        "[MQTT-3.2.2-9]"
    );
    // [MQTT-3.2.2-10]: SUBSCRIBE at any QoS is accepted, and granted at most 0.
    assert_eq!(
        client.subscribe(&[("a", QoS::ExactlyOnce), ("b", QoS::AtLeastOnce)]),
        [ReasonCode::Success, ReasonCode::Success]
    );
    client.send(&publish("a", "zero", QoS::AtMostOnce, 0));
    assert_eq!(client.recv_publish().qos, QoS::AtMostOnce);
}

#[test]
fn mqtt_3_2_2_11_and_3_2_2_12_max_qos_refuses_a_publish_or_a_will_above_it() {
    let midge = Midge::start("max_qos 1");
    let (mut client, _) = connack(&midge, "over");
    client.send(&publish("q/x", "two", QoS::ExactlyOnce, 1));
    disconnected_with(&mut client, ReasonCode::QosNotSupported, "[MQTT-3.2.2-11]");

    // A session to come back to, then a CONNECT with a will above max_qos: refused with
    // 0x9B [MQTT-3.2.2-12] and Session Present 0 however much a session exists [MQTT-3.2.2-6].
    let (mut keeper, _) = RawClient::connected(midge.addr(), connect_persistent(V5, "keeper"));
    keeper.shutdown();
    midge.wait_for_log("Client keeper closed its connection");
    let (mut refused, ack) = RawClient::connected(
        midge.addr(),
        connect_with(V5, "keeper", |c| {
            c.clean_start = false;
            c.properties.session_expiry_interval = Some(3600);
            c.will = Some(will("w/keeper", "gone", QoS::ExactlyOnce, false));
        }),
    );
    assert_eq!(ack.reason_code, ReasonCode::QosNotSupported, "[MQTT-3.2.2-12]");
    assert!(!ack.session_present, "[MQTT-3.2.2-6]");
    assert!(refused.expect_close().is_empty(), "[MQTT-3.2.2-7]");
    // The session is still there for a CONNECT that is accepted.
    let (_back, ack) = RawClient::connected(midge.addr(), connect_persistent(V5, "keeper"));
    assert!(ack.session_present);
}

#[test]
fn mqtt_3_2_2_13_a_retained_will_without_retain_available_is_refused_with_0x9a() {
    let midge = Midge::start("retain_available false");
    let retained_will = |version, id| {
        connect_with(version, id, |c| {
            c.will = Some(will("w/x", "gone", QoS::AtMostOnce, true))
        })
    };
    let (mut v5, ack) = RawClient::connected(midge.addr(), retained_will(V5, "r5"));
    assert_eq!(ack.reason_code, ReasonCode::RetainNotSupported, "[MQTT-3.2.2-13]");
    assert!(ack.properties.reason_string.is_some());
    assert!(v5.expect_close().is_empty());
    // MQTT 3.1.1 has no such code: "server unavailable", the nearest.
    let (mut v311, ack) = RawClient::connected(midge.addr(), retained_will(V311, "r3"));
    assert_eq!(ack.reason_code, ReasonCode::ServerUnavailable);
    assert!(v311.expect_close().is_empty());
}

fn subscribe_with_id(filter: &str, id: u32) -> Packet {
    let Packet::Subscribe(mut s) = subscribe(&[(filter, QoS::AtMostOnce)], 1) else {
        unreachable!()
    };
    s.properties.subscription_identifier = SubscriptionId::new(id);
    Packet::Subscribe(s)
}

#[test]
fn subscriptions_the_connack_said_are_unavailable_are_refused_with_their_reason_codes() {
    let midge = Midge::start(
        "wildcard_subscription_available false\nsubscription_identifier_available false\n\
         shared_subscription_available false",
    );
    let cases: [(&str, Packet, ReasonCode); 3] = [
        (
            "id",
            subscribe_with_id("a/b", 7),
            ReasonCode::SubscriptionIdentifiersNotSupported,
        ),
        (
            "wild",
            subscribe(&[("a/+", QoS::AtMostOnce)], 1),
            ReasonCode::WildcardSubscriptionsNotSupported,
        ),
        (
            "shared",
            subscribe(&[("$share/g/a", QoS::AtMostOnce)], 1),
            ReasonCode::SharedSubscriptionsNotSupported,
        ),
    ];
    for (id, packet, reason) in cases {
        let (mut client, _) = connack(&midge, id);
        client.send(&packet);
        disconnected_with(&mut client, reason, id);
    }
    // What is available goes on working.
    let (mut plain, _) = connack(&midge, "plain");
    assert_eq!(
        plain.subscribe(&[("a/b", QoS::AtMostOnce)]),
        [ReasonCode::Success]
    );
    plain.send(&publish("a/b", "still here", QoS::AtMostOnce, 0));
    assert_eq!(&plain.recv_publish().payload[..], b"still here");
    // MQTT 3.1.1 has no DISCONNECT to say it: those filters get 0x80, the others are granted.
    let mut v311 = RawClient::session(midge.addr(), V311, "old");
    assert_eq!(
        v311.subscribe(&[
            ("a/#", QoS::AtMostOnce),
            ("$share/g/a", QoS::AtMostOnce),
            ("a/b", QoS::AtLeastOnce)
        ]),
        [
            ReasonCode::UnspecifiedError,
            ReasonCode::UnspecifiedError,
            ReasonCode::GrantedQos1
        ]
    );
}

#[test]
fn mqtt_3_1_2_28_response_information_only_to_clients_that_ask_for_it() {
    let asking = |id| connect_with(V5, id, |c| c.properties.request_response_information = Some(true));
    // Not configured: nothing, even to a client that asks.
    let midge = Midge::start("");
    let (_c, ack) = RawClient::connected(midge.addr(), asking("asks"));
    assert_eq!(ack.properties.response_information, None);

    let midge = Midge::start("response_information replies/");
    let (_c, ack) = RawClient::connected(midge.addr(), asking("asks"));
    assert_eq!(
        ack.properties.response_information.as_deref(),
        Some("replies/asks")
    );
    // [MQTT-3.1.2-28]: Request Response Information 0, or absent.
    let (_c, ack) = RawClient::connected(
        midge.addr(),
        connect_with(V5, "says-no", |c| {
            c.properties.request_response_information = Some(false)
        }),
    );
    assert_eq!(ack.properties.response_information, None);
    let (_c, ack) = connack(&midge, "silent");
    assert_eq!(ack.properties.response_information, None);
    // An assigned identifier is the one the prefix is followed by.
    let (_c, ack) = RawClient::connected(midge.addr(), asking(""));
    let assigned = ack.properties.assigned_client_identifier.clone().unwrap();
    assert_eq!(
        ack.properties.response_information.as_deref(),
        Some(format!("replies/{assigned}").as_str())
    );
}

#[test]
fn a_listener_with_a_server_reference_sends_every_client_elsewhere() {
    let midge = Midge::start("server_reference other.example:1883 [::1]:1884");
    let (mut v5, ack) = connack(&midge, "moving");
    assert_eq!(ack.reason_code, ReasonCode::UseAnotherServer);
    assert_eq!(
        ack.properties.server_reference.as_deref(),
        Some("other.example:1883 [::1]:1884")
    );
    assert!(!ack.session_present);
    assert!(ack.properties.reason_string.is_some());
    assert!(v5.expect_close().is_empty());
    midge.wait_for_log("server use another server: other.example:1883");
    // Before any authentication: a CONNECT naming a method is sent away too, not refused 0x8C.
    let (_c, ack) = RawClient::connected(
        midge.addr(),
        connect_with(V5, "scram", |c| {
            c.properties.authentication_method = Some("SCRAM-SHA-256".into())
        }),
    );
    assert_eq!(ack.reason_code, ReasonCode::UseAnotherServer);
    // MQTT 3.1.1 can only hear "server unavailable".
    let (mut v311, ack) = RawClient::connected(midge.addr(), connect(V311, "old"));
    assert_eq!(ack.reason_code, ReasonCode::ServerUnavailable);
    assert!(v311.expect_close().is_empty());

    let midge = Midge::start("server_reference other.example\nserver_moved true");
    let (_c, ack) = connack(&midge, "moved");
    assert_eq!(ack.reason_code, ReasonCode::ServerMoved);
    assert_eq!(ack.properties.server_reference.as_deref(), Some("other.example"));
}

#[test]
fn quotas_and_payload_formats_are_refused_packet_by_packet() {
    let midge = Midge::start("message_size_limit 10");
    let (mut client, _) = connack(&midge, "sizes");
    // message_size_limit: PUBACK 0x97 Quota exceeded, with a Reason String; the connection goes on.
    client.send(&publish("s/x", "longer than ten bytes", QoS::AtLeastOnce, 1));
    match client.recv() {
        Packet::PubAck(ack) => {
            assert_eq!(ack.reason_code, ReasonCode::QuotaExceeded);
            assert!(
                ack.properties
                    .reason_string
                    .unwrap()
                    .contains("message_size_limit")
            );
        }
        other => panic!("{other:?}"),
    }
    client.send(&Packet::PingReq);
    assert!(matches!(client.recv(), Packet::PingResp));
    // A will whose payload is not the UTF-8 its Payload Format Indicator says: CONNACK 0x99
    // (§3.1.3.2.3).
    let (mut refused, ack) = RawClient::connected(
        midge.addr(),
        connect_with(V5, "bad-will", |c| {
            let mut w = will("w/x", "", QoS::AtMostOnce, false);
            w.payload = bytes::Bytes::from_static(&[0xC3, 0x28]);
            w.properties.payload_format_indicator = Some(midge_codec::PayloadFormat::Utf8);
            c.will = Some(w);
        }),
    );
    assert_eq!(ack.reason_code, ReasonCode::PayloadFormatInvalid);
    assert!(refused.expect_close().is_empty());
}
