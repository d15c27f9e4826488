//! The malformed-input catalogue: byte sequences every decoder entry point must refuse, each
//! with the exact error and the MQTT 5 reason code a broker sends before it closes.
//!
//! Each case names the normative statement it checks. Packets are built from a first byte and a
//! body so the Remaining Length is always right unless a case is about it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

use bytes::BytesMut;
use midge_codec::{
    DecodeError as E, Decoder, PacketType as T, ProtocolVersion, ReasonCode as R, TopicFilterError as F,
};

const V31: ProtocolVersion = ProtocolVersion::V31;
const V311: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;

/// A packet: first byte, Remaining Length, body.
fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// A CONNECT body: protocol name and level, flags, keep alive 60, then `rest`.
fn connect(name: &[u8], level: u8, flags: u8, rest: &[u8]) -> Vec<u8> {
    let mut body = vec![0, name.len() as u8];
    body.extend_from_slice(name);
    body.extend_from_slice(&[level, flags, 0, 60]);
    body.extend_from_slice(rest);
    packet(0x10, &body)
}

/// A 3.1.1 CONNECT with client id "c" and the given flags and payload after the client id.
fn connect4(flags: u8, after_client_id: &[u8]) -> Vec<u8> {
    let mut rest = vec![0, 1, b'c'];
    rest.extend_from_slice(after_client_id);
    connect(b"MQTT", 4, flags, &rest)
}

/// A 5.0 CONNECT with the given CONNECT properties, client id "c", then `after`.
fn connect5(flags: u8, properties: &[u8], after: &[u8]) -> Vec<u8> {
    let mut rest = vec![properties.len() as u8];
    rest.extend_from_slice(properties);
    rest.extend_from_slice(&[0, 1, b'c']);
    rest.extend_from_slice(after);
    connect(b"MQTT", 5, flags, &rest)
}

/// A 5.0 QoS 0 PUBLISH to "a" with the given properties.
fn publish5(properties: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 1, b'a', properties.len() as u8];
    body.extend_from_slice(properties);
    body.extend_from_slice(b"payload");
    packet(0x30, &body)
}

/// A SUBSCRIBE with packet id 1 and one filter with options; v5 gets an empty property list.
fn subscribe(version: ProtocolVersion, filter: &[u8], options: u8) -> Vec<u8> {
    let mut body = vec![0, 1];
    if version == V5 {
        body.push(0);
    }
    body.extend_from_slice(&[0, filter.len() as u8]);
    body.extend_from_slice(filter);
    body.push(options);
    packet(0x82, &body)
}

struct Case {
    name: &'static str,
    version: ProtocolVersion,
    bytes: Vec<u8>,
    error: E,
    reason: R,
}

fn case(name: &'static str, version: ProtocolVersion, bytes: Vec<u8>, error: E, reason: R) -> Case {
    Case {
        name,
        version,
        bytes,
        error,
        reason,
    }
}

fn catalogue() -> Vec<Case> {
    let malformed = R::MalformedPacket;
    let protocol = R::ProtocolError;
    let filter = R::TopicFilterInvalid;
    vec![
        // Fixed header (§2.1, §1.5.5).
        case(
            "§2.1.2 packet type 0 is reserved",
            V311,
            vec![0x00, 0x00],
            E::ReservedPacketType(0),
            malformed,
        ),
        case(
            "§2.1.2 packet type 15 is reserved before 5.0",
            V311,
            vec![0xF0, 0x00],
            E::ReservedPacketType(15),
            malformed,
        ),
        case(
            "§2.1.2 packet type 15 is reserved in 3.1",
            V31,
            vec![0xF0, 0x00],
            E::ReservedPacketType(15),
            malformed,
        ),
        case(
            "[MQTT-1.5.5-1] remaining length of five bytes",
            V311,
            vec![0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
            E::VarIntTooLong,
            malformed,
        ),
        case(
            "[MQTT-1.5.5-1] remaining length not minimal",
            V311,
            vec![0xC0, 0x80, 0x00],
            E::VarIntNotMinimal,
            malformed,
        ),
        case(
            "[MQTT-2.1.3-1] PINGREQ with flags",
            V311,
            vec![0xC1, 0x00],
            E::InvalidHeaderFlags {
                packet: T::PingReq,
                flags: 1,
            },
            malformed,
        ),
        case(
            "[MQTT-2.1.3-1] PUBREL without its 0010 flags",
            V311,
            packet(0x60, &[0, 1]),
            E::InvalidHeaderFlags {
                packet: T::PubRel,
                flags: 0,
            },
            malformed,
        ),
        case(
            "[MQTT-3.8.1-1] SUBSCRIBE without its 0010 flags",
            V311,
            packet(0x80, &[0, 1, 0, 1, b'a', 0]),
            E::InvalidHeaderFlags {
                packet: T::Subscribe,
                flags: 0,
            },
            malformed,
        ),
        case(
            "[MQTT-3.10.1-1] UNSUBSCRIBE without its 0010 flags",
            V311,
            packet(0xA0, &[0, 1, 0, 1, b'a']),
            E::InvalidHeaderFlags {
                packet: T::Unsubscribe,
                flags: 0,
            },
            malformed,
        ),
        case(
            "[MQTT-2.1.3-1] CONNECT with flags",
            V311,
            packet(0x11, &[0, 4]),
            E::InvalidHeaderFlags {
                packet: T::Connect,
                flags: 1,
            },
            malformed,
        ),
        case(
            "[MQTT-3.14.1-1] DISCONNECT with flags",
            V311,
            vec![0xEF, 0x00],
            E::InvalidHeaderFlags {
                packet: T::Disconnect,
                flags: 0xF,
            },
            malformed,
        ),
        case(
            "[MQTT-2.1.3-1] PUBACK with flags",
            V5,
            packet(0x42, &[0, 1]),
            E::InvalidHeaderFlags {
                packet: T::PubAck,
                flags: 2,
            },
            malformed,
        ),
        case(
            "§3.12 PINGREQ with a body",
            V311,
            vec![0xC0, 0x01, 0x00],
            E::TrailingBytes {
                packet: T::PingReq,
                extra: 1,
            },
            malformed,
        ),
        case(
            "§3.13 PINGRESP with a body",
            V5,
            vec![0xD0, 0x02, 0x00, 0x00],
            E::TrailingBytes {
                packet: T::PingResp,
                extra: 2,
            },
            malformed,
        ),
        // PUBLISH (§3.3).
        case(
            "[MQTT-3.3.1-4] PUBLISH QoS 3",
            V311,
            packet(0x36, &[0, 1, b'a', 0, 1]),
            E::InvalidQos { field: "PUBLISH QoS" },
            malformed,
        ),
        case(
            "[MQTT-3.3.1-2] DUP on QoS 0",
            V311,
            packet(0x38, &[0, 1, b'a']),
            E::DupOnQos0,
            malformed,
        ),
        case(
            "§1.5.4 topic longer than the packet",
            V311,
            packet(0x30, &[0, 5, b'a']),
            E::Truncated { field: "topic name" },
            malformed,
        ),
        case(
            "§1.5.4 topic length cut short",
            V311,
            packet(0x30, &[0]),
            E::Truncated { field: "topic name" },
            malformed,
        ),
        case(
            "[MQTT-3.3.2-2] '+' in a topic name",
            V311,
            packet(0x30, &[0, 3, b'a', b'/', b'+']),
            E::WildcardInTopicName,
            malformed,
        ),
        case(
            "[MQTT-3.3.2-2] '#' in a topic name",
            V5,
            packet(0x30, &[0, 2, b'a', b'#', 0]),
            E::WildcardInTopicName,
            malformed,
        ),
        case(
            "[MQTT-4.7.3-1] empty topic name in 3.1.1",
            V311,
            packet(0x30, &[0, 0, b'x']),
            E::EmptyTopicName,
            protocol,
        ),
        case(
            "§3.3.2.1 empty topic without topic alias in 5.0",
            V5,
            packet(0x30, &[0, 0, 0]),
            E::EmptyTopicName,
            protocol,
        ),
        case(
            "[MQTT-2.2.1-3] QoS 1 PUBLISH with packet id 0",
            V311,
            packet(0x32, &[0, 1, b'a', 0, 0]),
            E::ZeroPacketId { packet: T::Publish },
            protocol,
        ),
        case(
            "[MQTT-2.2.1-2] QoS 2 PUBLISH without packet id",
            V311,
            packet(0x34, &[0, 1, b'a']),
            E::Truncated {
                field: "packet identifier",
            },
            malformed,
        ),
        case(
            "[MQTT-1.5.4-1] topic is not UTF-8",
            V311,
            packet(0x30, &[0, 2, 0xC3, 0x28]),
            E::InvalidUtf8 { field: "topic name" },
            malformed,
        ),
        case(
            "[MQTT-1.5.4-2] topic contains U+0000",
            V311,
            packet(0x30, &[0, 2, b'a', 0]),
            E::NullCharacter { field: "topic name" },
            malformed,
        ),
        case(
            "[MQTT-1.5.4-1] topic holds an encoded surrogate",
            V5,
            packet(0x30, &[0, 3, 0xED, 0xA0, 0x80, 0]),
            E::InvalidUtf8 { field: "topic name" },
            malformed,
        ),
        case(
            "[MQTT-1.5.4-1] topic holds an overlong '/'",
            V311,
            packet(0x30, &[0, 2, 0xC0, 0xAF]),
            E::InvalidUtf8 { field: "topic name" },
            malformed,
        ),
        case(
            "[MQTT-1.5.4-1] topic holds a code point past U+10FFFF",
            V311,
            packet(0x30, &[0, 4, 0xF4, 0x90, 0x80, 0x80]),
            E::InvalidUtf8 { field: "topic name" },
            malformed,
        ),
        case(
            "[MQTT-3.3.2-8] topic alias 0",
            V5,
            publish5(&[0x23, 0, 0]),
            E::InvalidPropertyValue {
                name: "Topic Alias",
                value: 0,
            },
            R::TopicAliasInvalid,
        ),
        case(
            "§2.2.2.2 Message Expiry Interval twice",
            V5,
            publish5(&[0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2]),
            E::DuplicateProperty {
                name: "Message Expiry Interval",
            },
            protocol,
        ),
        case(
            "§2.2.2.2 Session Expiry Interval is not a PUBLISH property",
            V5,
            publish5(&[0x11, 0, 0, 0, 1]),
            E::InvalidPropertyId {
                packet: T::Publish,
                id: 0x11,
            },
            malformed,
        ),
        case(
            "§2.2.2.2 undefined property identifier",
            V5,
            publish5(&[0x7F, 0]),
            E::InvalidPropertyId {
                packet: T::Publish,
                id: 0x7F,
            },
            malformed,
        ),
        case(
            "§3.3.2.3.2 Payload Format Indicator 2",
            V5,
            publish5(&[0x01, 2]),
            E::InvalidPropertyValue {
                name: "Payload Format Indicator",
                value: 2,
            },
            protocol,
        ),
        case(
            "§3.3.2.3.8 Subscription Identifier 0",
            V5,
            publish5(&[0x0B, 0]),
            E::InvalidPropertyValue {
                name: "Subscription Identifier",
                value: 0,
            },
            protocol,
        ),
        case(
            "§2.2.2.1 property length past the packet",
            V5,
            packet(0x30, &[0, 1, b'a', 9, 0x01]),
            E::Truncated { field: "properties" },
            malformed,
        ),
        case(
            "[MQTT-3.3.2-14] wildcard in Response Topic",
            V5,
            publish5(&[0x08, 0, 1, b'#']),
            E::WildcardInTopicName,
            malformed,
        ),
        case(
            "[MQTT-3.3.2-13] Response Topic is not UTF-8",
            V5,
            publish5(&[0x08, 0, 2, 0xC3, 0x28]),
            E::InvalidUtf8 {
                field: "Response Topic",
            },
            malformed,
        ),
        case(
            "[MQTT-3.3.2-19] Content Type is not UTF-8",
            V5,
            publish5(&[0x03, 0, 1, 0xFF]),
            E::InvalidUtf8 {
                field: "Content Type",
            },
            malformed,
        ),
        case(
            "[MQTT-1.5.4-1] User Property name is not UTF-8",
            V5,
            publish5(&[0x26, 0, 1, 0xFF, 0, 0]),
            E::InvalidUtf8 {
                field: "user property name",
            },
            malformed,
        ),
        case(
            "[MQTT-1.5.5-1] property length of five bytes",
            V5,
            packet(0x30, &[0, 1, b'a', 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
            E::VarIntTooLong,
            malformed,
        ),
        case(
            "§2.2.2.2 value cut short",
            V5,
            publish5(&[0x02, 0, 0]),
            E::Truncated {
                field: "Message Expiry Interval",
            },
            malformed,
        ),
        // CONNECT (§3.1).
        case(
            "[MQTT-3.1.2-1] unknown protocol name",
            V311,
            connect(b"MQTX", 4, 2, &[0, 0]),
            E::UnsupportedProtocolName {
                name: "MQTX".into(),
                level: 4,
            },
            R::UnsupportedProtocolVersion,
        ),
        case(
            "[MQTT-3.1.2-2] protocol level 6",
            V311,
            connect(b"MQTT", 6, 2, &[0, 0]),
            E::UnsupportedProtocolLevel(6),
            R::UnsupportedProtocolVersion,
        ),
        case(
            "[MQTT-3.1.2-2] MQIsdp with level 4",
            V311,
            connect(b"MQIsdp", 4, 2, &[0, 0]),
            E::UnsupportedProtocolLevel(4),
            R::UnsupportedProtocolVersion,
        ),
        case(
            "[MQTT-3.1.2-3] reserved CONNECT flag",
            V311,
            connect4(0x03, &[]),
            E::ConnectReservedFlag,
            malformed,
        ),
        case(
            "[MQTT-3.1.2-11] will QoS without will flag",
            V311,
            connect4(0x08, &[]),
            E::WillFlagsWithoutWill,
            malformed,
        ),
        case(
            "[MQTT-3.1.2-13] will retain without will flag",
            V311,
            connect4(0x20, &[]),
            E::WillFlagsWithoutWill,
            malformed,
        ),
        case(
            "[MQTT-3.1.2-12] will QoS 3",
            V311,
            connect4(0x1C, &[0, 1, b't', 0, 0]),
            E::InvalidQos { field: "will QoS" },
            malformed,
        ),
        case(
            "[MQTT-3.1.2-22] password without user name in 3.1.1",
            V311,
            connect4(0x40, &[0, 1, b'p']),
            E::PasswordWithoutUsername,
            malformed,
        ),
        case(
            "[MQTT-3.1.2-22] password without user name in 3.1",
            V311,
            connect(b"MQIsdp", 3, 0x40, &[0, 1, b'c', 0, 1, b'p']),
            E::PasswordWithoutUsername,
            malformed,
        ),
        case(
            "[MQTT-1.5.4-1] client id is not UTF-8",
            V311,
            connect(b"MQTT", 4, 2, &[0, 1, 0x80]),
            E::InvalidUtf8 {
                field: "client identifier",
            },
            malformed,
        ),
        case(
            "§3.1.2.10 CONNECT ends before keep alive",
            V311,
            packet(0x10, &[0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0]),
            E::Truncated { field: "keep alive" },
            malformed,
        ),
        case(
            "[MQTT-3.1.3-11] will topic with a wildcard",
            V311,
            connect4(0x06, &[0, 1, b'+', 0, 0]),
            E::WildcardInTopicName,
            malformed,
        ),
        case(
            "[MQTT-4.7.3-1] empty will topic",
            V311,
            connect4(0x06, &[0, 0, 0, 0]),
            E::EmptyTopicName,
            protocol,
        ),
        case(
            "§3.1.3 bytes after the last CONNECT field",
            V311,
            connect4(0x02, &[0]),
            E::TrailingBytes {
                packet: T::Connect,
                extra: 1,
            },
            malformed,
        ),
        case(
            "§3.1.3 missing will payload",
            V311,
            connect4(0x06, &[0, 1, b't']),
            E::Truncated {
                field: "will payload",
            },
            malformed,
        ),
        case(
            "[MQTT-3.1.2-17] user name flag without a user name",
            V311,
            connect4(0x82, &[]),
            E::Truncated { field: "user name" },
            malformed,
        ),
        case(
            "[MQTT-3.1.2-19] password flag without a password",
            V311,
            connect4(0xC2, &[0, 1, b'u']),
            E::Truncated { field: "password" },
            malformed,
        ),
        case(
            "[MQTT-3.1.3-11] will topic is not UTF-8",
            V5,
            connect5(0x06, &[], &[0, 0, 2, 0xC3, 0x28, 0, 0]),
            E::InvalidUtf8 { field: "will topic" },
            malformed,
        ),
        case(
            "[MQTT-3.1.3-12] user name is not UTF-8",
            V311,
            connect4(0x82, &[0, 1, 0x80]),
            E::InvalidUtf8 { field: "user name" },
            malformed,
        ),
        case(
            "[MQTT-1.5.4-2] user name contains U+0000",
            V311,
            connect4(0x82, &[0, 2, b'u', 0]),
            E::NullCharacter { field: "user name" },
            malformed,
        ),
        case(
            "§3.1.2.11.3 Receive Maximum 0",
            V5,
            connect5(0x02, &[0x21, 0, 0], &[]),
            E::InvalidPropertyValue {
                name: "Receive Maximum",
                value: 0,
            },
            protocol,
        ),
        case(
            "§3.1.2.11.4 Maximum Packet Size 0",
            V5,
            connect5(0x02, &[0x27, 0, 0, 0, 0], &[]),
            E::InvalidPropertyValue {
                name: "Maximum Packet Size",
                value: 0,
            },
            protocol,
        ),
        case(
            "§3.1.2.11.7 Request Problem Information 2",
            V5,
            connect5(0x02, &[0x17, 2], &[]),
            E::InvalidPropertyValue {
                name: "Request Problem Information",
                value: 2,
            },
            protocol,
        ),
        case(
            "§3.1.2.11.6 Request Response Information 7",
            V5,
            connect5(0x02, &[0x19, 7], &[]),
            E::InvalidPropertyValue {
                name: "Request Response Information",
                value: 7,
            },
            protocol,
        ),
        case(
            "§3.1.2.11.10 Authentication Data without Method",
            V5,
            connect5(0x02, &[0x16, 0, 1, 9], &[]),
            E::AuthDataWithoutMethod,
            protocol,
        ),
        case(
            "§3.1.2.11.2 Session Expiry Interval twice",
            V5,
            connect5(0x02, &[0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 1], &[]),
            E::DuplicateProperty {
                name: "Session Expiry Interval",
            },
            protocol,
        ),
        case(
            "§3.1.3.2 Topic Alias is not a will property",
            V5,
            connect5(0x06, &[], &[3, 0x23, 0, 1, 0, 1, b't', 0, 0]),
            E::InvalidPropertyId {
                packet: T::Connect,
                id: 0x23,
            },
            malformed,
        ),
        case(
            "§3.1.3.2.3 will Payload Format Indicator 9",
            V5,
            connect5(0x06, &[], &[2, 0x01, 9, 0, 1, b't', 0, 0]),
            E::InvalidPropertyValue {
                name: "Payload Format Indicator",
                value: 9,
            },
            protocol,
        ),
        // SUBSCRIBE (§3.8).
        case(
            "[MQTT-3.8.3-2] SUBSCRIBE with no filter",
            V311,
            packet(0x82, &[0, 1]),
            E::EmptySubscribe,
            protocol,
        ),
        case(
            "[MQTT-2.2.1-3] SUBSCRIBE packet id 0",
            V311,
            packet(0x82, &[0, 0, 0, 1, b'a', 0]),
            E::ZeroPacketId { packet: T::Subscribe },
            protocol,
        ),
        case(
            "[MQTT-3.8.3-4] (3.1.1) requested QoS 3",
            V311,
            subscribe(V311, b"a", 3),
            E::InvalidQos {
                field: "subscription QoS",
            },
            malformed,
        ),
        case(
            "[MQTT-3.8.3-4] (3.1.1) reserved option bits",
            V311,
            subscribe(V311, b"a", 0x04),
            E::SubscriptionOptionsReserved(0x04),
            malformed,
        ),
        case(
            "[MQTT-3.8.3-5] reserved option bits 6-7",
            V5,
            subscribe(V5, b"a", 0xC0),
            E::SubscriptionOptionsReserved(0xC0),
            malformed,
        ),
        case(
            "§3.8.3.1 Retain Handling 3",
            V5,
            subscribe(V5, b"a", 0x30),
            E::InvalidRetainHandling,
            protocol,
        ),
        case(
            "[MQTT-3.8.3-4] No Local on a shared subscription",
            V5,
            subscribe(V5, b"$share/g/a", 0x04),
            E::NoLocalOnSharedSubscription,
            protocol,
        ),
        case(
            "[MQTT-4.7.1-1] '#' not last",
            V311,
            subscribe(V311, b"a/#/b", 0),
            E::InvalidTopicFilter(F::MultiLevelWildcard),
            filter,
        ),
        case(
            "[MQTT-4.7.1-1] '#' sharing a level",
            V311,
            subscribe(V311, b"a/b#", 0),
            E::InvalidTopicFilter(F::MultiLevelWildcard),
            filter,
        ),
        case(
            "[MQTT-4.7.1-2] '+' sharing a level",
            V5,
            subscribe(V5, b"a+/b", 0),
            E::InvalidTopicFilter(F::SingleLevelWildcard),
            filter,
        ),
        case(
            "[MQTT-4.7.3-1] empty topic filter",
            V311,
            subscribe(V311, b"", 0),
            E::InvalidTopicFilter(F::Empty),
            filter,
        ),
        case(
            "[MQTT-4.8.2-2] shared subscription without filter",
            V5,
            subscribe(V5, b"$share/g", 0),
            E::InvalidTopicFilter(F::MissingSharedFilter),
            filter,
        ),
        case(
            "[MQTT-4.8.2-1] empty share name",
            V311,
            subscribe(V311, b"$share//a", 0),
            E::InvalidTopicFilter(F::InvalidShareName),
            filter,
        ),
        case(
            "[MQTT-4.8.2-1] wildcard in share name",
            V5,
            subscribe(V5, b"$share/#/a", 0),
            E::InvalidTopicFilter(F::InvalidShareName),
            filter,
        ),
        case(
            "[MQTT-1.5.4-2] topic filter contains U+0000",
            V311,
            subscribe(V311, b"a\0", 0),
            E::NullCharacter {
                field: "topic filter",
            },
            malformed,
        ),
        case(
            "§3.8.3 filter without its options byte",
            V311,
            packet(0x82, &[0, 1, 0, 1, b'a']),
            E::Truncated {
                field: "subscription options",
            },
            malformed,
        ),
        case(
            "§3.8.2.1.2 Subscription Identifier twice",
            V5,
            packet(0x82, &[0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, b'a', 0]),
            E::DuplicateProperty {
                name: "Subscription Identifier",
            },
            protocol,
        ),
        case(
            "§3.8.2.1.2 Subscription Identifier 0",
            V5,
            packet(0x82, &[0, 1, 2, 0x0B, 0, 0, 1, b'a', 0]),
            E::InvalidPropertyValue {
                name: "Subscription Identifier",
                value: 0,
            },
            protocol,
        ),
        case(
            "[MQTT-1.5.5-1] Subscription Identifier not minimal",
            V5,
            packet(0x82, &[0, 1, 3, 0x0B, 0x81, 0x00, 0, 1, b'a', 0]),
            E::VarIntNotMinimal,
            malformed,
        ),
        // UNSUBSCRIBE (§3.10).
        case(
            "[MQTT-3.10.3-2] UNSUBSCRIBE with no filter",
            V311,
            packet(0xA2, &[0, 1]),
            E::EmptyUnsubscribe,
            protocol,
        ),
        case(
            "[MQTT-3.10.3-1] UNSUBSCRIBE filter is not UTF-8",
            V311,
            packet(0xA2, &[0, 1, 0, 2, 0xC3, 0x28]),
            E::InvalidUtf8 {
                field: "topic filter",
            },
            malformed,
        ),
        case(
            "[MQTT-3.8.3-1] topic filter is not UTF-8",
            V5,
            subscribe(V5, &[0xC3, 0x28], 0),
            E::InvalidUtf8 {
                field: "topic filter",
            },
            malformed,
        ),
        case(
            "[MQTT-4.7.1-1] UNSUBSCRIBE '#' not last",
            V5,
            packet(0xA2, &[0, 1, 0, 0, 3, b'#', b'/', b'a']),
            E::InvalidTopicFilter(F::MultiLevelWildcard),
            filter,
        ),
        case(
            "[MQTT-2.2.1-3] UNSUBSCRIBE packet id 0",
            V311,
            packet(0xA2, &[0, 0, 0, 1, b'a']),
            E::ZeroPacketId {
                packet: T::Unsubscribe,
            },
            protocol,
        ),
        // Acknowledgements (§3.4 to §3.7).
        case(
            "[MQTT-2.2.1-3] PUBACK packet id 0",
            V311,
            packet(0x40, &[0, 0]),
            E::ZeroPacketId { packet: T::PubAck },
            protocol,
        ),
        case(
            "§3.4 (3.1.1) PUBACK with a third byte",
            V311,
            packet(0x40, &[0, 1, 0]),
            E::TrailingBytes {
                packet: T::PubAck,
                extra: 1,
            },
            malformed,
        ),
        case(
            "§3.4.2.1 Granted QoS 1 is not a PUBACK reason",
            V5,
            packet(0x40, &[0, 1, 0x01]),
            E::InvalidReasonCode {
                packet: T::PubAck,
                code: 0x01,
            },
            protocol,
        ),
        case(
            "§3.6.2.1 No matching subscribers is not a PUBREL reason",
            V5,
            packet(0x62, &[0, 1, 0x10]),
            E::InvalidReasonCode {
                packet: T::PubRel,
                code: 0x10,
            },
            protocol,
        ),
        case(
            "§3.7.2.1 undefined PUBCOMP reason 0x03",
            V5,
            packet(0x70, &[0, 1, 0x03]),
            E::InvalidReasonCode {
                packet: T::PubComp,
                code: 0x03,
            },
            protocol,
        ),
        case(
            "§3.4 PUBACK cut short",
            V311,
            packet(0x40, &[0]),
            E::Truncated {
                field: "packet identifier",
            },
            malformed,
        ),
        case(
            "§3.5.2.2 PUBREC property not allowed",
            V5,
            packet(0x50, &[0, 1, 0, 2, 0x23, 1]),
            E::InvalidPropertyId {
                packet: T::PubRec,
                id: 0x23,
            },
            malformed,
        ),
        // CONNACK, SUBACK, UNSUBACK (received by clients and bridges).
        case(
            "[MQTT-3.2.2-1] reserved CONNACK flags",
            V311,
            packet(0x20, &[0x02, 0]),
            E::ConnAckReservedFlags,
            malformed,
        ),
        case(
            "§3.2.2.3 (3.1.1) CONNACK return code 6",
            V311,
            packet(0x20, &[0, 6]),
            E::InvalidReasonCode {
                packet: T::ConnAck,
                code: 6,
            },
            protocol,
        ),
        case(
            "§3.2.2.2 Session taken over is not a CONNACK reason",
            V5,
            packet(0x20, &[0, 0x8E, 0]),
            E::InvalidReasonCode {
                packet: T::ConnAck,
                code: 0x8E,
            },
            protocol,
        ),
        case(
            "§3.2.2.3.4 Maximum QoS 2",
            V5,
            packet(0x20, &[0, 0, 2, 0x24, 2]),
            E::InvalidPropertyValue {
                name: "Maximum QoS",
                value: 2,
            },
            protocol,
        ),
        case(
            "§3.9.3 (3.1.1) SUBACK return code 3",
            V311,
            packet(0x90, &[0, 1, 3]),
            E::InvalidReasonCode {
                packet: T::SubAck,
                code: 3,
            },
            protocol,
        ),
        case(
            "§3.9.3 Disconnect with Will is not a SUBACK reason",
            V5,
            packet(0x90, &[0, 1, 0, 0x04]),
            E::InvalidReasonCode {
                packet: T::SubAck,
                code: 0x04,
            },
            protocol,
        ),
        case(
            "§3.11 (3.1.1) UNSUBACK with a payload",
            V311,
            packet(0xB0, &[0, 1, 0]),
            E::TrailingBytes {
                packet: T::UnsubAck,
                extra: 1,
            },
            malformed,
        ),
        case(
            "§3.11.3 Granted QoS 2 is not an UNSUBACK reason",
            V5,
            packet(0xB0, &[0, 1, 0, 0x02]),
            E::InvalidReasonCode {
                packet: T::UnsubAck,
                code: 0x02,
            },
            protocol,
        ),
        // DISCONNECT and AUTH (§3.14, §3.15).
        case(
            "§3.14 (3.1.1) DISCONNECT with a body",
            V311,
            packet(0xE0, &[0]),
            E::TrailingBytes {
                packet: T::Disconnect,
                extra: 1,
            },
            malformed,
        ),
        case(
            "§3.14.2.1 Granted QoS 1 is not a DISCONNECT reason",
            V5,
            packet(0xE0, &[0x01]),
            E::InvalidReasonCode {
                packet: T::Disconnect,
                code: 0x01,
            },
            protocol,
        ),
        case(
            "§3.14.2.2 Reason String twice",
            V5,
            packet(0xE0, &[0x80, 8, 0x1F, 0, 1, b'a', 0x1F, 0, 1, b'b']),
            E::DuplicateProperty {
                name: "Reason String",
            },
            protocol,
        ),
        case(
            "[MQTT-3.15.1-1] AUTH with flags",
            V5,
            vec![0xF1, 0x00],
            E::InvalidHeaderFlags {
                packet: T::Auth,
                flags: 1,
            },
            malformed,
        ),
        case(
            "§3.15.2.1 Not authorized is not an AUTH reason",
            V5,
            packet(0xF0, &[0x87, 0]),
            E::InvalidReasonCode {
                packet: T::Auth,
                code: 0x87,
            },
            protocol,
        ),
        case(
            "§3.15.2.2.2 AUTH continue without a method",
            V5,
            packet(0xF0, &[0x18]),
            E::MissingAuthenticationMethod,
            protocol,
        ),
        case(
            "§3.15.2.2.3 AUTH data without a method",
            V5,
            packet(0xF0, &[0x18, 4, 0x16, 0, 1, 7]),
            E::AuthDataWithoutMethod,
            protocol,
        ),
    ]
}

#[test]
fn every_catalogued_packet_is_refused_with_its_error_and_reason_code() {
    let cases = catalogue();
    assert!(
        cases.len() >= 60,
        "the catalogue must hold at least 60 cases, has {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let mut buf = BytesMut::from(&case.bytes[..]);
        let got = Decoder::new(case.version, u32::MAX).decode(&mut buf);
        match got {
            Err(error) if error == case.error && error.reason_code() == case.reason => {
                // Through the one-shot entry point too.
                let again = midge_codec::decode_packet(case.bytes.clone().into(), case.version);
                if again.as_ref().err() != Some(&case.error) {
                    failures.push(format!("{}: decode_packet gave {again:?}", case.name));
                }
            }
            Err(error) => failures.push(format!(
                "{}: expected {:?} ({:?}), got {error:?} ({:?})",
                case.name,
                case.error,
                case.reason,
                error.reason_code()
            )),
            Ok(packet) => failures.push(format!("{}: accepted as {packet:?}", case.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_error_message_names_its_rule() {
    for case in catalogue() {
        let message = case.error.to_string();
        assert!(
            message.contains("[MQTT-") || message.contains('§'),
            "{}: {message}",
            case.name
        );
    }
}

#[test]
fn oversized_packet_is_refused_from_the_fixed_header_alone() {
    // [MQTT-3.1.2-24]/[MQTT-3.2.2-15]: only the five header bytes have arrived, declaring 256 MB.
    let decoder = Decoder::new(V311, 1024);
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F][..]);
    let err = decoder.decode(&mut buf).unwrap_err();
    assert_eq!(
        err,
        E::PacketTooLarge {
            size: 268_435_460,
            max: 1024
        }
    );
    assert_eq!(err.reason_code(), R::PacketTooLarge);
    assert_eq!(decoder.packet_len(&buf), Err(err));
    // One byte under the limit is fine and asks for the rest.
    let mut buf = BytesMut::from(&[0x30, 0x80, 0x08, 0, 1, b'a'][..]);
    assert_eq!(buf.len(), 6);
    assert_eq!(Decoder::new(V311, 1027).decode(&mut buf), Ok(None));
    assert_eq!(
        Decoder::new(V311, 1026).decode(&mut buf).unwrap_err(),
        E::PacketTooLarge {
            size: 1027,
            max: 1026
        }
    );
}

#[test]
fn mqtt_3_1_accepts_legacy_flags_on_pubrel_subscribe_unsubscribe() {
    // MQTT 3.1 clients set DUP on retried PUBREL/SUBSCRIBE/UNSUBSCRIBE; Mosquitto accepts them.
    let mut buf = BytesMut::from(&packet(0x6A, &[0, 1])[..]);
    assert!(Decoder::new(V31, u32::MAX).decode(&mut buf).unwrap().is_some());
    let mut buf = BytesMut::from(&packet(0x6A, &[0, 1])[..]);
    assert!(Decoder::new(V311, u32::MAX).decode(&mut buf).is_err());
}

#[test]
fn empty_topic_with_topic_alias_is_accepted_in_5_0() {
    let mut buf = BytesMut::from(&packet(0x30, &[0, 0, 3, 0x23, 0, 4, b'x'])[..]);
    let decoded = Decoder::new(V5, u32::MAX).decode(&mut buf).unwrap().unwrap();
    let midge_codec::Packet::Publish(publish) = decoded else {
        panic!("{decoded:?}")
    };
    assert!(publish.topic.is_empty());
    assert_eq!(publish.properties.topic_alias.map(|a| a.get()), Some(4));
}
