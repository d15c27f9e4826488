//! Reason Strings on what Midge sends, against the running broker: every acknowledgement that
//! refuses something explains itself, unless the client set Request Problem Information 0
//! [MQTT-3.1.2-29] (then only CONNACK and DISCONNECT do) or the explanation would make the
//! packet larger than the client's Maximum Packet Size ([MQTT-3.2.2-19] and the rows of each
//! packet after it). Midge adds no User Property to any of these packets, which the tests check
//! too ([MQTT-3.2.2-20] and the others on User Properties).
//!
//! One script runs for three kinds of client: one that asks for nothing special (every packet
//! of the script carries a Reason String, so the other two could fail), one with Request Problem
//! Information 0, and one with a Maximum Packet Size of 20 bytes.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

mod support;

use std::num::NonZeroU32;

use midge_codec::properties::AckProperties;
use midge_codec::{Ack, Packet, PacketType, PayloadFormat, ProtocolVersion, QoS, ReasonCode};
use support::packets::*;
use support::{Midge, RawClient};

const V5: ProtocolVersion = ProtocolVersion::V5;

/// One kind of client: its Request Problem Information and Maximum Packet Size.
#[derive(Debug, Clone, Copy)]
struct Kind {
    name: &'static str,
    problem_information: Option<bool>,
    max_packet_size: Option<u32>,
}

const ASKS_NOTHING: Kind = Kind {
    name: "plain",
    problem_information: None,
    max_packet_size: None,
};
const NO_PROBLEM_INFORMATION: Kind = Kind {
    name: "quiet",
    problem_information: Some(false),
    max_packet_size: None,
};
const SMALL_PACKETS: Kind = Kind {
    name: "small",
    problem_information: None,
    max_packet_size: Some(20),
};

/// A broker where each step of the script has something to refuse: empty client identifiers
/// are refused, and a `mount_point` makes a long filter too long.
fn broker() -> Midge {
    Midge::start("allow_zero_length_clientid false\nmount_point m/")
}

/// What one packet Midge sent says: its type, reason code, Reason String, whether it had User
/// Properties, and its size on the wire.
#[derive(Debug)]
struct Said {
    packet: PacketType,
    reason: ReasonCode,
    reason_string: Option<String>,
    user_properties: bool,
    size: usize,
}

fn said(packet: &Packet) -> Said {
    let ack = |a: &AckProperties| {
        (
            a.reason_string.as_deref().map(str::to_owned),
            !a.user_properties.is_empty(),
        )
    };
    let (reason, (reason_string, user_properties)) = match packet {
        Packet::ConnAck(p) => (
            p.reason_code,
            (
                p.properties.reason_string.as_deref().map(str::to_owned),
                !p.properties.user_properties.is_empty(),
            ),
        ),
        Packet::PubAck(p) | Packet::PubRec(p) | Packet::PubRel(p) | Packet::PubComp(p) => {
            (p.reason_code, ack(&p.properties))
        }
        Packet::SubAck(p) => (p.reason_codes[0], ack(&p.properties)),
        Packet::UnsubAck(p) => (p.reason_codes[0], ack(&p.properties)),
        Packet::Disconnect(p) => (
            p.reason_code,
            (
                p.properties.reason_string.as_deref().map(str::to_owned),
                !p.properties.user_properties.is_empty(),
            ),
        ),
        other => panic!("not in the script: {other:?}"),
    };
    Said {
        packet: packet.packet_type(),
        reason,
        reason_string,
        user_properties,
        size: packet.encoded_len(V5).unwrap(),
    }
}

fn connect_as(kind: Kind, id: &str) -> Packet {
    connect_with(V5, id, |c| {
        c.properties.request_problem_information = kind.problem_information;
        c.properties.maximum_packet_size = kind.max_packet_size.and_then(NonZeroU32::new);
    })
}

/// A PUBLISH whose Payload Format Indicator says UTF-8 over a payload that is not.
fn not_utf8(qos: QoS, id: u16) -> Packet {
    let Packet::Publish(mut p) = publish("p/x", vec![0xC3, 0x28], qos, id) else {
        unreachable!()
    };
    p.properties.payload_format_indicator = Some(PayloadFormat::Utf8);
    Packet::Publish(p)
}

/// Runs the script for one kind of client and returns what Midge sent, in order.
fn script(midge: &Midge, kind: Kind) -> Vec<Said> {
    let mut sent = Vec::new();
    // CONNACK 0x85: no client identifier, and allow_zero_length_clientid false.
    let (_refused, ack) = RawClient::connected(midge.addr(), connect_as(kind, ""));
    sent.push(said(&Packet::ConnAck(ack)));

    let (mut client, ack) = RawClient::connected(midge.addr(), connect_as(kind, kind.name));
    assert_eq!(ack.reason_code, ReasonCode::Success);
    let mut step = |client: &mut RawClient, packet: Packet| {
        client.send(&packet);
        sent.push(said(&client.recv()));
    };
    // PUBACK and PUBREC 0x99.
    step(&mut client, not_utf8(QoS::AtLeastOnce, 1));
    step(&mut client, not_utf8(QoS::ExactlyOnce, 2));
    // PUBREL 0x92: a PUBREC for nothing Midge sent; PUBCOMP 0x92: a PUBREL for nothing received.
    step(&mut client, Packet::PubRec(Ack::new(pid(7))));
    step(&mut client, Packet::PubRel(Ack::new(pid(8))));
    // SUBACK 0x8F: a filter that the mount point makes longer than a topic may be.
    let long = "f".repeat(65_534);
    step(&mut client, subscribe(&[(long.as_str(), QoS::AtMostOnce)], 3));
    // UNSUBACK 0x11.
    step(&mut client, unsubscribe(&["never/subscribed"], 4));
    // DISCONNECT 0x82: a second CONNECT.
    step(&mut client, connect_as(kind, kind.name));
    assert!(client.expect_close().is_empty(), "nothing after DISCONNECT");
    sent
}

const EXPECTED: [(PacketType, ReasonCode); 8] = [
    (PacketType::ConnAck, ReasonCode::ClientIdentifierNotValid),
    (PacketType::PubAck, ReasonCode::PayloadFormatInvalid),
    (PacketType::PubRec, ReasonCode::PayloadFormatInvalid),
    (PacketType::PubRel, ReasonCode::PacketIdentifierNotFound),
    (PacketType::PubComp, ReasonCode::PacketIdentifierNotFound),
    (PacketType::SubAck, ReasonCode::TopicFilterInvalid),
    (PacketType::UnsubAck, ReasonCode::NoSubscriptionExisted),
    (PacketType::Disconnect, ReasonCode::ProtocolError),
];

/// Checks the packets and reason codes (the same for every kind of client) and that no User
/// Property came; returns which packets had a Reason String.
fn explained(sent: &[Said]) -> Vec<(PacketType, bool)> {
    let got: Vec<(PacketType, ReasonCode)> = sent.iter().map(|s| (s.packet, s.reason)).collect();
    assert_eq!(got, EXPECTED, "{sent:#?}");
    for s in sent {
        assert!(
            !s.user_properties,
            "[MQTT-3.2.2-20] and the User Property rows: {s:?}"
        );
    }
    sent.iter()
        .map(|s| (s.packet, s.reason_string.as_ref().is_some_and(|r| !r.is_empty())))
        .collect()
}

#[test]
fn every_refusal_is_explained_to_a_client_that_does_not_say_otherwise() {
    let midge = broker();
    let sent = script(&midge, ASKS_NOTHING);
    let explained = explained(&sent);
    assert!(explained.iter().all(|(_, why)| *why), "{sent:#?}");
    // A few of the words, so that a Reason String is seen to say what happened.
    assert!(
        sent[0]
            .reason_string
            .as_ref()
            .unwrap()
            .contains("allow_zero_length_clientid")
    );
    assert!(sent[1].reason_string.as_ref().unwrap().contains("UTF-8"));
    assert!(sent[7].reason_string.as_ref().unwrap().contains("second CONNECT"));
}

#[test]
fn mqtt_3_1_2_29_without_problem_information_only_connack_and_disconnect_are_explained() {
    let midge = broker();
    let sent = script(&midge, NO_PROBLEM_INFORMATION);
    for (packet, why) in explained(&sent) {
        let allowed = matches!(packet, PacketType::ConnAck | PacketType::Disconnect);
        assert_eq!(why, allowed, "[MQTT-3.1.2-29] {packet:?}: {sent:#?}");
    }
}

/// [MQTT-3.2.2-19], [MQTT-3.2.2-20], [MQTT-3.4.2-2], [MQTT-3.4.2-3], [MQTT-3.5.2-2],
/// [MQTT-3.5.2-3], [MQTT-3.6.2-2], [MQTT-3.6.2-3], [MQTT-3.7.2-2], [MQTT-3.7.2-3],
/// [MQTT-3.9.2-1], [MQTT-3.9.2-2], [MQTT-3.11.2-1], [MQTT-3.11.2-2], [MQTT-3.14.2-3],
/// [MQTT-3.14.2-4]: the packets still come, with their reason codes, but nothing in them that
/// would pass 20 bytes [MQTT-3.1.2-24].
#[test]
fn mqtt_3_2_2_19_to_3_14_2_4_no_reason_string_past_the_clients_maximum_packet_size() {
    let midge = broker();
    let sent = script(&midge, SMALL_PACKETS);
    for (packet, why) in explained(&sent) {
        assert!(!why, "{packet:?}: {sent:#?}");
    }
    for s in &sent {
        assert!(s.size <= 20, "[MQTT-3.1.2-24] {s:?}");
    }
}
