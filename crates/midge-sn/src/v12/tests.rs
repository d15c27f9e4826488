//! Every message type against the bytes §5.4 gives it, both ways; the malformed datagrams a
//! gateway must drop; and property tests: encode then decode gives the message back, and no
//! byte sequence makes the decoder panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use proptest::prelude::*;

use super::*;
use crate::error::DecodeError;

fn encode(message: &Message) -> Vec<u8> {
    let mut buf = BytesMut::new();
    message.encode(&mut buf).unwrap();
    assert_eq!(buf.len(), message.encoded_len().unwrap());
    buf.to_vec()
}

/// `message` encodes to `wire` and `wire` decodes to `message`.
fn golden(message: Message, wire: &[u8]) {
    assert_eq!(encode(&message), wire, "encoding {message:?}");
    assert_eq!(
        decode(Bytes::copy_from_slice(wire)),
        Ok(message),
        "decoding {wire:02x?}"
    );
}

#[test]
fn advertise() {
    golden(
        Message::Advertise {
            gw_id: 5,
            duration: 900,
        },
        &[5, 0x00, 5, 0x03, 0x84],
    );
}

#[test]
fn searchgw() {
    golden(Message::SearchGw { radius: 1 }, &[3, 0x01, 1]);
}

#[test]
fn gwinfo_with_and_without_address() {
    golden(
        Message::GwInfo(GwInfo {
            gw_id: 9,
            gw_addr: Bytes::new(),
        }),
        &[3, 0x02, 9],
    );
    golden(
        Message::GwInfo(GwInfo {
            gw_id: 9,
            gw_addr: Bytes::from_static(&[127, 0, 0, 1]),
        }),
        &[7, 0x02, 9, 127, 0, 0, 1],
    );
}

#[test]
fn connect() {
    golden(
        Message::Connect(Connect {
            will: true,
            clean_session: true,
            duration: 60,
            client_id: "c1".into(),
        }),
        &[8, 0x04, 0b0000_1100, 0x01, 0, 60, b'c', b'1'],
    );
    golden(
        Message::Connect(Connect {
            will: false,
            clean_session: false,
            duration: 0,
            client_id: "".into(),
        }),
        &[6, 0x04, 0, 0x01, 0, 0],
    );
}

#[test]
fn connack_and_will_responses() {
    golden(
        Message::ConnAck {
            return_code: ReturnCode::Accepted,
        },
        &[3, 0x05, 0],
    );
    golden(
        Message::ConnAck {
            return_code: ReturnCode::NotSupported,
        },
        &[3, 0x05, 3],
    );
    golden(
        Message::WillTopicResp {
            return_code: ReturnCode::Congestion,
        },
        &[3, 0x1B, 1],
    );
    golden(
        Message::WillMsgResp {
            return_code: ReturnCode::InvalidTopicId,
        },
        &[3, 0x1D, 2],
    );
}

#[test]
fn will_prompts() {
    golden(Message::WillTopicReq, &[2, 0x06]);
    golden(Message::WillMsgReq, &[2, 0x08]);
}

#[test]
fn willtopic_and_update_including_empty() {
    let will = WillTopic {
        qos: QoS::AtLeastOnce,
        retain: true,
        topic: "w/t".into(),
    };
    golden(
        Message::WillTopic(Some(will.clone())),
        &[6, 0x07, 0b0011_0000, b'w', b'/', b't'],
    );
    golden(Message::WillTopic(None), &[2, 0x07]);
    golden(
        Message::WillTopicUpd(Some(will)),
        &[6, 0x1A, 0b0011_0000, b'w', b'/', b't'],
    );
    golden(Message::WillTopicUpd(None), &[2, 0x1A]);
    // Flags without a topic also delete the will.
    assert_eq!(
        decode(Bytes::from_static(&[3, 0x07, 0])),
        Ok(Message::WillTopic(None))
    );
}

#[test]
fn willmsg_and_update() {
    golden(
        Message::WillMsg {
            data: Bytes::from_static(b"bye"),
        },
        &[5, 0x09, b'b', b'y', b'e'],
    );
    golden(Message::WillMsg { data: Bytes::new() }, &[2, 0x09]);
    golden(
        Message::WillMsgUpd {
            data: Bytes::from_static(b"x"),
        },
        &[3, 0x1C, b'x'],
    );
}

#[test]
fn register_and_regack() {
    golden(
        Message::Register(Register {
            topic_id: 0,
            msg_id: 1,
            topic_name: "a/b".into(),
        }),
        &[9, 0x0A, 0, 0, 0, 1, b'a', b'/', b'b'],
    );
    golden(
        Message::RegAck(RegAck {
            topic_id: 0x102,
            msg_id: 1,
            return_code: ReturnCode::Accepted,
        }),
        &[7, 0x0B, 1, 2, 0, 1, 0],
    );
}

#[test]
fn publish_every_topic_form() {
    golden(
        Message::Publish(Publish {
            dup: true,
            qos: QoS::AtLeastOnce,
            retain: true,
            topic: PublishTopic::Id(3),
            msg_id: 7,
            data: Bytes::from_static(b"hi"),
        }),
        &[9, 0x0C, 0b1011_0000, 0, 3, 0, 7, b'h', b'i'],
    );
    golden(
        Message::Publish(Publish {
            dup: false,
            qos: QoS::ExactlyOnce,
            retain: false,
            topic: PublishTopic::Short(*b"ab"),
            msg_id: 1,
            data: Bytes::new(),
        }),
        &[7, 0x0C, 0b0100_0010, b'a', b'b', 0, 1],
    );
    // What mqtt-sn-12 sent for `mqtt_sn_pub -q -1 -T 7 -m hi` (shared/reference/mqtt-sn.md).
    golden(
        Message::Publish(Publish {
            dup: false,
            qos: QoS::MinusOne,
            retain: false,
            topic: PublishTopic::Predefined(7),
            msg_id: 0,
            data: Bytes::from_static(b"hi"),
        }),
        &[0x09, 0x0c, 0x61, 0x00, 0x07, 0x00, 0x00, 0x68, 0x69],
    );
    // QoS -1 with the topic name inline: length in the TopicId field, name after MsgId.
    golden(
        Message::Publish(Publish {
            dup: false,
            qos: QoS::MinusOne,
            retain: false,
            topic: PublishTopic::Name("a/bc".into()),
            msg_id: 0,
            data: Bytes::from_static(b"z"),
        }),
        &[12, 0x0C, 0b0110_0000, 0, 4, 0, 0, b'a', b'/', b'b', b'c', b'z'],
    );
}

#[test]
fn puback_and_qos2_flow() {
    golden(
        Message::PubAck(PubAck {
            topic_id: 3,
            msg_id: 7,
            return_code: ReturnCode::InvalidTopicId,
        }),
        &[7, 0x0D, 0, 3, 0, 7, 2],
    );
    golden(Message::PubRec { msg_id: 0x1234 }, &[4, 0x0F, 0x12, 0x34]);
    golden(Message::PubRel { msg_id: 2 }, &[4, 0x10, 0, 2]);
    golden(Message::PubComp { msg_id: 3 }, &[4, 0x0E, 0, 3]);
}

#[test]
fn subscribe_every_topic_form() {
    golden(
        Message::Subscribe(Subscribe {
            dup: false,
            qos: QoS::AtLeastOnce,
            msg_id: 2,
            topic: TopicSpec::Name("x/+".into()),
        }),
        &[8, 0x12, 0b0010_0000, 0, 2, b'x', b'/', b'+'],
    );
    golden(
        Message::Subscribe(Subscribe {
            dup: true,
            qos: QoS::ExactlyOnce,
            msg_id: 2,
            topic: TopicSpec::Predefined(9),
        }),
        &[7, 0x12, 0b1100_0001, 0, 2, 0, 9],
    );
    golden(
        Message::Subscribe(Subscribe {
            dup: false,
            qos: QoS::AtMostOnce,
            msg_id: 2,
            topic: TopicSpec::Short(*b"tt"),
        }),
        &[7, 0x12, 0b0000_0010, 0, 2, b't', b't'],
    );
}

#[test]
fn suback() {
    golden(
        Message::SubAck(SubAck {
            qos: QoS::AtLeastOnce,
            topic_id: 0,
            msg_id: 2,
            return_code: ReturnCode::Accepted,
        }),
        &[8, 0x13, 0b0010_0000, 0, 0, 0, 2, 0],
    );
}

#[test]
fn unsubscribe_and_unsuback() {
    golden(
        Message::Unsubscribe(Unsubscribe {
            msg_id: 4,
            topic: TopicSpec::Name("a".into()),
        }),
        &[6, 0x14, 0, 0, 4, b'a'],
    );
    golden(
        Message::Unsubscribe(Unsubscribe {
            msg_id: 4,
            topic: TopicSpec::Predefined(1),
        }),
        &[7, 0x14, 1, 0, 4, 0, 1],
    );
    golden(Message::UnsubAck { msg_id: 4 }, &[4, 0x15, 0, 4]);
}

#[test]
fn pingreq_with_and_without_client_id_and_pingresp() {
    golden(Message::PingReq { client_id: None }, &[2, 0x16]);
    golden(
        Message::PingReq {
            client_id: Some("s".into()),
        },
        &[3, 0x16, b's'],
    );
    golden(Message::PingResp, &[2, 0x17]);
}

#[test]
fn disconnect_with_and_without_duration() {
    golden(Message::Disconnect { duration: None }, &[2, 0x18]);
    golden(
        Message::Disconnect { duration: Some(300) },
        &[4, 0x18, 0x01, 0x2C],
    );
}

#[test]
fn encapsulated_carries_its_message_after_its_header() {
    let inner = encode(&Message::PingReq { client_id: None });
    golden(
        Message::Encapsulated(Encapsulated {
            radius: 1,
            node_id: Bytes::from_static(&[0xAA, 0xBB]),
            inner: Bytes::from(inner),
        }),
        &[5, 0xFE, 1, 0xAA, 0xBB, 2, 0x16],
    );
}

#[test]
fn long_messages_use_the_three_octet_length() {
    let data = Bytes::from(vec![7u8; 300]);
    let message = Message::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: PublishTopic::Id(1),
        msg_id: 0,
        data,
    });
    let wire = encode(&message);
    assert_eq!(wire.len(), 3 + 1 + 5 + 300);
    assert_eq!(&wire[..4], &[0x01, 0x01, 0x35, 0x0C]);
    assert_eq!(decode(Bytes::from(wire)), Ok(message));
    // The boundary: 255 octets in the short form, 256 in the long one.
    for (payload, first) in [(248, 255u8), (249, 0x01)] {
        let wire = encode(&Message::WillMsg {
            data: Bytes::from(vec![0; payload + 5]),
        });
        assert_eq!(wire[0], first, "payload {payload}");
    }
}

#[test]
fn too_long_is_an_encode_error() {
    let message = Message::WillMsg {
        data: Bytes::from(vec![0; 65_535]),
    };
    assert!(matches!(
        message.encoded_len(),
        Err(crate::EncodeError::TooLong(_))
    ));
    let mut buf = BytesMut::new();
    assert!(message.encode(&mut buf).is_err());
    assert!(buf.is_empty());
}

#[test]
fn encode_refuses_what_the_wire_cannot_say() {
    let inline_at_qos1 = Message::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: PublishTopic::Name("a".into()),
        msg_id: 1,
        data: Bytes::new(),
    });
    assert_eq!(
        inline_at_qos1.encoded_len(),
        Err(crate::EncodeError::InlineTopicNeedsQosMinusOne)
    );
    let subscribe = Message::Subscribe(Subscribe {
        dup: false,
        qos: QoS::MinusOne,
        msg_id: 1,
        topic: TopicSpec::Short(*b"ab"),
    });
    assert!(subscribe.encoded_len().is_err());
    let register = Message::Register(Register {
        topic_id: 0,
        msg_id: 1,
        topic_name: "".into(),
    });
    assert!(register.encoded_len().is_err());
}

/// A gateway encodes replies to forwarders with the node id the forwarder sent: what it could
/// not decode, it must not send either.
#[test]
fn encode_refuses_an_encapsulation_without_node_or_message_or_around_another() {
    let ping = Bytes::from(encode(&Message::PingReq { client_id: None }));
    let wrap = |node_id: &'static [u8], inner: Bytes| {
        Message::Encapsulated(Encapsulated {
            radius: 0,
            node_id: Bytes::from_static(node_id),
            inner,
        })
    };
    let bad = crate::EncodeError::BadEncapsulation;
    assert_eq!(
        wrap(b"", ping.clone()).encoded_len(),
        Err(bad("an empty wireless node id"))
    );
    assert_eq!(
        wrap(b"n", Bytes::new()).encoded_len(),
        Err(bad("no message inside"))
    );
    let nested = Bytes::from(encode(&wrap(b"n", ping.clone())));
    assert_eq!(
        wrap(b"m", nested).encoded_len(),
        Err(bad("another encapsulation inside"))
    );
    // Length, 0xFE, Ctrl, the node id, then the two-octet PINGREQ.
    assert_eq!(wrap(b"n", ping).encoded_len(), Ok(6));
}

#[test]
fn an_encapsulated_message_decodes_to_its_node_and_inner_message() {
    // A forwarder relays a CONNECT for node 0x0102 with radius 2 in its Ctrl octet.
    let connect = encode(&Message::Connect(Connect {
        will: false,
        clean_session: true,
        duration: 30,
        client_id: "n1".into(),
    }));
    let mut wire = vec![5, 0xFE, 0b1111_1110, 0x01, 0x02];
    wire.extend_from_slice(&connect);
    let Ok(Message::Encapsulated(outer)) = decode(Bytes::from(wire)) else {
        panic!("not an encapsulation");
    };
    // Reserved Ctrl bits are ignored; the radius is bits 1-0.
    assert_eq!(outer.radius, 2);
    assert_eq!(&outer.node_id[..], &[0x01, 0x02]);
    assert_eq!(&outer.inner[..], &connect[..]);
    assert!(matches!(decode(outer.inner), Ok(Message::Connect(c)) if c.client_id == "n1"));
}

/// Datagrams a gateway must drop, each with the error that says why.
#[test]
fn malformed_datagrams_are_refused_with_their_reason() {
    use DecodeError as E;
    type Expected = fn(&DecodeError) -> bool;
    let cases: &[(&[u8], Expected)] = &[
        (&[], |e| matches!(e, E::TooShort(0))),
        (&[2], |e| matches!(e, E::TooShort(1))),
        (&[1, 0, 4], |e| matches!(e, E::TooShort(3))),
        (&[3, 0x16], |e| {
            matches!(
                e,
                E::LengthMismatch {
                    declared: 3,
                    actual: 2
                }
            )
        }),
        (&[2, 0x16, 0], |e| matches!(e, E::LengthMismatch { .. })),
        (&[1, 0, 9, 0x16, 0], |e| {
            matches!(
                e,
                E::LengthMismatch {
                    declared: 9,
                    actual: 5
                }
            )
        }),
        (&[0, 0x16], |e| matches!(e, E::LengthMismatch { .. })),
        (&[2, 0x03], |e| matches!(e, E::ReservedMsgType(0x03))),
        (&[2, 0x11], |e| matches!(e, E::ReservedMsgType(0x11))),
        (&[2, 0x19], |e| matches!(e, E::ReservedMsgType(0x19))),
        (&[2, 0x1E], |e| matches!(e, E::ReservedMsgType(0x1E))),
        (&[2, 0xFF], |e| matches!(e, E::ReservedMsgType(0xFF))),
        (&[4, 0x00, 1, 0], |e| matches!(e, E::BadBodyLength { .. })),
        (&[2, 0x01], |e| matches!(e, E::BadBodyLength { .. })),
        (&[5, 0x04, 0, 1, 0], |e| matches!(e, E::BadBodyLength { .. })),
        (&[7, 0x04, 0, 2, 0, 9, b'c'], |e| {
            matches!(e, E::UnsupportedProtocolId(2))
        }),
        (&[7, 0x04, 0, 1, 0, 9, 0xFF], |e| {
            matches!(e, E::InvalidUtf8 { .. })
        }),
        (&[3, 0x05, 4], |e| matches!(e, E::ReservedReturnCode(4))),
        (&[4, 0x05, 0, 0], |e| matches!(e, E::BadBodyLength { .. })),
        (&[3, 0x06, 0], |e| matches!(e, E::BadBodyLength { .. })),
        (&[5, 0x07, 0b0110_0000, b'a', b'b'], |e| {
            matches!(e, E::QosMinusOneNotAllowed(_))
        }),
        (&[6, 0x0A, 0, 0, 0, 1], |e| matches!(e, E::EmptyTopicName(_))),
        (&[5, 0x0A, 0, 0, 0], |e| matches!(e, E::BadBodyLength { .. })),
        (&[7, 0x0A, 0, 0, 0, 1, 0xC0], |e| {
            matches!(e, E::InvalidUtf8 { .. })
        }),
        (&[6, 0x0B, 0, 1, 0, 1], |e| matches!(e, E::BadBodyLength { .. })),
        (&[6, 0x0C, 0, 0, 1, 0], |e| matches!(e, E::BadBodyLength { .. })),
        (&[7, 0x0C, 0b0000_0011, 0, 1, 0, 0], |e| {
            matches!(e, E::ReservedTopicIdType(_))
        }),
        (&[8, 0x0C, 0b0110_0000, 0, 9, 0, 0, b'a'], |e| {
            matches!(e, E::BadBodyLength { .. })
        }),
        (&[8, 0x0C, 0b0110_0000, 0, 1, 0, 0, 0xFF], |e| {
            matches!(e, E::InvalidUtf8 { .. })
        }),
        (&[7, 0x0D, 0, 1, 0, 1, 9], |e| {
            matches!(e, E::ReservedReturnCode(9))
        }),
        (&[3, 0x0E, 0], |e| matches!(e, E::BadBodyLength { .. })),
        (&[5, 0x0F, 0, 0, 0], |e| matches!(e, E::BadBodyLength { .. })),
        (&[7, 0x12, 0b0110_0000, 0, 1, b'a', b'b'], |e| {
            matches!(e, E::QosMinusOneNotAllowed(_))
        }),
        (&[7, 0x12, 0b0000_0011, 0, 1, b'a', b'b'], |e| {
            matches!(e, E::ReservedTopicIdType(_))
        }),
        (&[5, 0x12, 0, 0, 1], |e| matches!(e, E::EmptyTopicName(_))),
        (&[8, 0x12, 0b0000_0001, 0, 1, 0, 1, 0], |e| {
            matches!(e, E::BadBodyLength { .. })
        }),
        (&[6, 0x12, 0b0000_0010, 0, 1, b'a'], |e| {
            matches!(e, E::BadBodyLength { .. })
        }),
        (&[8, 0x13, 0b0110_0000, 0, 0, 0, 1, 0], |e| {
            matches!(e, E::QosMinusOneNotAllowed(_))
        }),
        (&[5, 0x14, 3, 0, 1], |e| matches!(e, E::ReservedTopicIdType(_))),
        (&[4, 0x16, 0xFF, 0xFE], |e| matches!(e, E::InvalidUtf8 { .. })),
        (&[3, 0x17, 0], |e| matches!(e, E::BadBodyLength { .. })),
        (&[3, 0x18, 0], |e| matches!(e, E::BadBodyLength { .. })),
        (&[5, 0x18, 0, 0, 0], |e| matches!(e, E::BadBodyLength { .. })),
        (&[3, 0xFE, 0], |e| matches!(e, E::LengthMismatch { .. })),
        (&[2, 0xFE, 2, 0x16], |e| matches!(e, E::BadBodyLength { .. })),
        (&[3, 0xFE, 0, 3, 0xFE, 0], |e| matches!(e, E::BadEncapsulation(_))),
        (&[4, 0xFE, 0, 7, 4, 0xFE, 0, 7, 2, 0x16], |e| {
            matches!(e, E::BadEncapsulation(_))
        }),
        (&[3, 0xFE, 0, 2, 0x16], |e| {
            *e == E::BadEncapsulation("an empty wireless node id")
        }),
    ];
    assert!(cases.len() >= 30);
    for (wire, expected) in cases {
        let result = decode(Bytes::copy_from_slice(wire));
        match &result {
            Err(error) if expected(error) => assert!(!error.kind().is_empty()),
            other => panic!("{wire:02x?} decoded as {other:?}"),
        }
    }
}

#[test]
fn unused_flag_bits_are_ignored() {
    // SUBACK's TopicIdType bits and UNSUBSCRIBE's DUP and QoS bits mean nothing: not read.
    assert!(decode(Bytes::from_static(&[8, 0x13, 0b0010_0111, 0, 0, 0, 2, 0])).is_ok());
    assert!(decode(Bytes::from_static(&[6, 0x14, 0b1110_0000, 0, 4, b'a'])).is_ok());
}

#[test]
fn version_of_connect() {
    assert_eq!(
        crate::Version::of_connect(&[6, 0x04, 0, 0x01, 0, 0]),
        Some(crate::Version::V1_2)
    );
    assert_eq!(
        crate::Version::of_connect(&[1, 0, 6, 0x04, 0, 0x01, 0, 0]),
        Some(crate::Version::V1_2)
    );
    assert_eq!(crate::Version::of_connect(&[7, 0x01, 0, 0x02, 0, 0, 0]), None);
    assert_eq!(crate::Version::of_connect(&[]), None);
}

fn text() -> impl Strategy<Value = ByteString> {
    "[a-z/+#]{0,40}".prop_map(Into::into)
}

fn nonempty_text() -> impl Strategy<Value = ByteString> {
    "[a-z/+#]{1,40}".prop_map(Into::into)
}

fn data() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..400).prop_map(Bytes::from)
}

fn nonempty_data() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 1..400).prop_map(Bytes::from)
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn return_code() -> impl Strategy<Value = ReturnCode> {
    prop_oneof![
        Just(ReturnCode::Accepted),
        Just(ReturnCode::Congestion),
        Just(ReturnCode::InvalidTopicId),
        Just(ReturnCode::NotSupported)
    ]
}

fn spec() -> impl Strategy<Value = TopicSpec> {
    prop_oneof![
        nonempty_text().prop_map(TopicSpec::Name),
        any::<u16>().prop_map(TopicSpec::Predefined),
        any::<[u8; 2]>().prop_map(TopicSpec::Short),
    ]
}

fn will() -> impl Strategy<Value = Option<WillTopic>> {
    prop::option::of(
        (qos(), any::<bool>(), nonempty_text()).prop_map(|(qos, retain, topic)| WillTopic {
            qos,
            retain,
            topic,
        }),
    )
}

fn publish() -> impl Strategy<Value = Publish> {
    let topic = prop_oneof![
        any::<u16>().prop_map(PublishTopic::Id),
        any::<u16>().prop_map(PublishTopic::Predefined),
        any::<[u8; 2]>().prop_map(PublishTopic::Short),
    ];
    let normal = (any::<bool>(), qos(), any::<bool>(), topic, any::<u16>(), data()).prop_map(
        |(dup, qos, retain, topic, msg_id, data)| Publish {
            dup,
            qos,
            retain,
            topic,
            msg_id,
            data,
        },
    );
    let minus_one = (text(), data()).prop_map(|(name, data)| Publish {
        dup: false,
        qos: QoS::MinusOne,
        retain: false,
        topic: PublishTopic::Name(name),
        msg_id: 0,
        data,
    });
    prop_oneof![normal, minus_one]
}

fn message() -> impl Strategy<Value = Message> {
    let u16s = any::<u16>();
    prop_oneof![
        (any::<u8>(), any::<u16>()).prop_map(|(gw_id, duration)| Message::Advertise { gw_id, duration }),
        any::<u8>().prop_map(|radius| Message::SearchGw { radius }),
        (any::<u8>(), data()).prop_map(|(gw_id, gw_addr)| Message::GwInfo(GwInfo { gw_id, gw_addr })),
        (any::<bool>(), any::<bool>(), any::<u16>(), text()).prop_map(
            |(will, clean_session, duration, client_id)| {
                Message::Connect(Connect {
                    will,
                    clean_session,
                    duration,
                    client_id,
                })
            }
        ),
        return_code().prop_map(|return_code| Message::ConnAck { return_code }),
        Just(Message::WillTopicReq),
        will().prop_map(Message::WillTopic),
        Just(Message::WillMsgReq),
        data().prop_map(|data| Message::WillMsg { data }),
        (any::<u16>(), any::<u16>(), nonempty_text()).prop_map(|(topic_id, msg_id, topic_name)| {
            Message::Register(Register {
                topic_id,
                msg_id,
                topic_name,
            })
        }),
        (any::<u16>(), any::<u16>(), return_code()).prop_map(|(topic_id, msg_id, return_code)| {
            Message::RegAck(RegAck {
                topic_id,
                msg_id,
                return_code,
            })
        }),
        publish().prop_map(Message::Publish),
        (any::<u16>(), any::<u16>(), return_code()).prop_map(|(topic_id, msg_id, return_code)| {
            Message::PubAck(PubAck {
                topic_id,
                msg_id,
                return_code,
            })
        }),
        u16s.prop_map(|msg_id| Message::PubComp { msg_id }),
        any::<u16>().prop_map(|msg_id| Message::PubRec { msg_id }),
        any::<u16>().prop_map(|msg_id| Message::PubRel { msg_id }),
        (any::<bool>(), qos(), any::<u16>(), spec()).prop_map(
            |(dup, qos, msg_id, topic)| Message::Subscribe(Subscribe {
                dup,
                qos,
                msg_id,
                topic
            })
        ),
        (qos(), any::<u16>(), any::<u16>(), return_code()).prop_map(
            |(qos, topic_id, msg_id, return_code)| {
                Message::SubAck(SubAck {
                    qos,
                    topic_id,
                    msg_id,
                    return_code,
                })
            }
        ),
        (any::<u16>(), spec())
            .prop_map(|(msg_id, topic)| Message::Unsubscribe(Unsubscribe { msg_id, topic })),
        any::<u16>().prop_map(|msg_id| Message::UnsubAck { msg_id }),
        prop::option::of(nonempty_text()).prop_map(|client_id| Message::PingReq { client_id }),
        Just(Message::PingResp),
        prop::option::of(any::<u16>()).prop_map(|duration| Message::Disconnect { duration }),
        will().prop_map(Message::WillTopicUpd),
        return_code().prop_map(|return_code| Message::WillTopicResp { return_code }),
        data().prop_map(|data| Message::WillMsgUpd { data }),
        return_code().prop_map(|return_code| Message::WillMsgResp { return_code }),
        (0u8..4, nonempty_data(), any::<u16>()).prop_map(|(radius, node_id, msg_id)| {
            let mut inner = BytesMut::new();
            Message::PubRel { msg_id }.encode(&mut inner).unwrap();
            Message::Encapsulated(Encapsulated {
                radius,
                node_id,
                inner: inner.freeze(),
            })
        }),
    ]
}

proptest! {
    #[test]
    fn every_message_survives_encode_then_decode(message in message()) {
        let wire = encode(&message);
        prop_assert_eq!(decode(Bytes::from(wire)), Ok(message));
    }

    #[test]
    fn random_datagrams_never_panic_and_what_decodes_reencodes(wire in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(message) = decode(Bytes::from(wire)) {
            let again = encode(&message);
            prop_assert_eq!(decode(Bytes::from(again)), Ok(message));
        }
    }
}
