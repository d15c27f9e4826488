//! Property tests: every packet type, in every protocol version where it exists, survives
//! encode → decode unchanged, and its encoded length is what `encoded_len` predicts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

use std::num::{NonZeroU16, NonZeroU32};

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use midge_codec::properties::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, SubscribeProperties, UnsubscribeProperties, WillProperties,
};
use midge_codec::{
    Ack, Auth, ConnAck, Connect, Decoder, Disconnect, Packet, PacketId, PacketType, PayloadFormat,
    ProtocolVersion, Publish, QoS, ReasonCode, RetainHandling, SubAck, Subscribe, Subscription,
    SubscriptionId, SubscriptionOptions, TopicFilter, TopicName, UnsubAck, Unsubscribe, UserProperty, Will,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

const VERSIONS: [ProtocolVersion; 3] = [ProtocolVersion::V31, ProtocolVersion::V311, ProtocolVersion::V5];

fn text() -> impl Strategy<Value = ByteString> {
    "[a-zA-Z0-9 _/é€-]{0,12}".prop_map(ByteString::from)
}

fn binary() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn topic_name() -> impl Strategy<Value = TopicName> {
    "[a-z0-9$]{1,6}(/[a-zA-Z0-9 é]{0,6}){0,3}".prop_map(|s| TopicName::try_from(s.as_str()).unwrap())
}

fn topic_filter() -> impl Strategy<Value = TopicFilter> {
    let level = prop_oneof![Just("+".to_string()), "[a-z0-9]{1,5}", Just(String::new())];
    (vec(level, 1..4), any::<bool>(), option::of("[a-z]{1,4}")).prop_map(|(levels, hash, share)| {
        let mut filter = levels.join("/");
        if filter.is_empty() {
            filter.push('+');
        }
        if hash {
            filter.push_str("/#");
        }
        if let Some(group) = share {
            filter = format!("$share/{group}/{filter}");
        }
        TopicFilter::try_from(filter.as_str()).unwrap()
    })
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn packet_id() -> impl Strategy<Value = PacketId> {
    (1u16..).prop_map(|id| NonZeroU16::new(id).unwrap())
}

fn user_properties() -> impl Strategy<Value = Vec<UserProperty>> {
    vec(
        (text(), text()).prop_map(|(name, value)| UserProperty { name, value }),
        0..3,
    )
}

fn subscription_id() -> impl Strategy<Value = SubscriptionId> {
    (1u32..=SubscriptionId::MAX).prop_map(|id| SubscriptionId::new(id).unwrap())
}

fn payload_format() -> impl Strategy<Value = PayloadFormat> {
    prop_oneof![Just(PayloadFormat::Unspecified), Just(PayloadFormat::Utf8)]
}

/// Every reason code the packet type may carry in MQTT 5.
fn reason_in(packet: PacketType) -> impl Strategy<Value = ReasonCode> {
    let codes: Vec<ReasonCode> = (0..=255u8)
        .filter_map(ReasonCode::from_u8)
        .filter(|code| code.allowed_in(packet))
        .collect();
    proptest::sample::select(codes)
}

fn nz16() -> impl Strategy<Value = NonZeroU16> {
    (1u16..).prop_map(|v| NonZeroU16::new(v).unwrap())
}

fn nz32() -> impl Strategy<Value = NonZeroU32> {
    (1u32..).prop_map(|v| NonZeroU32::new(v).unwrap())
}

fn connect_properties() -> impl Strategy<Value = ConnectProperties> {
    (
        (
            option::of(any::<u32>()),
            option::of(nz16()),
            option::of(nz32()),
            option::of(any::<u16>()),
        ),
        (option::of(any::<bool>()), option::of(any::<bool>())),
        option::of((text(), option::of(binary()))),
        user_properties(),
    )
        .prop_map(
            |((expiry, receive, size, alias), (response, problem), auth, users)| {
                let mut p = ConnectProperties::default();
                p.session_expiry_interval = expiry;
                p.receive_maximum = receive;
                p.maximum_packet_size = size;
                p.topic_alias_maximum = alias;
                p.request_response_information = response;
                p.request_problem_information = problem;
                if let Some((method, data)) = auth {
                    p.authentication_method = Some(method);
                    p.authentication_data = data;
                }
                p.user_properties = users;
                p
            },
        )
}

fn will_properties() -> impl Strategy<Value = WillProperties> {
    (
        (
            option::of(any::<u32>()),
            option::of(payload_format()),
            option::of(any::<u32>()),
        ),
        (option::of(text()), option::of(topic_name()), option::of(binary())),
        user_properties(),
    )
        .prop_map(
            |((delay, format, expiry), (content, response, correlation), users)| {
                let mut p = WillProperties::default();
                p.will_delay_interval = delay;
                p.payload_format_indicator = format;
                p.message_expiry_interval = expiry;
                p.content_type = content;
                p.response_topic = response;
                p.correlation_data = correlation;
                p.user_properties = users;
                p
            },
        )
}

fn connect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let will = (topic_name(), binary(), qos(), any::<bool>(), will_properties()).prop_map(
        move |(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties: if version.is_v5() {
                properties
            } else {
                WillProperties::default()
            },
        },
    );
    (
        (any::<bool>(), any::<u16>(), text()),
        option::of(will),
        (option::of(text()), option::of(binary())),
        connect_properties(),
    )
        .prop_map(
            move |((clean_start, keep_alive, client_id), will, (username, password), properties)| {
                let mut connect = Connect::new(version, client_id);
                connect.clean_start = clean_start;
                connect.keep_alive = keep_alive;
                connect.will = will;
                // Before 5.0 a password needs a user name [MQTT-3.1.2-22].
                connect.username = if password.is_some() && !version.is_v5() {
                    Some(username.unwrap_or_default())
                } else {
                    username
                };
                connect.password = password;
                if version.is_v5() {
                    connect.properties = properties;
                }
                Packet::Connect(Box::new(connect))
            },
        )
}

fn connack(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let v3_codes = proptest::sample::select(vec![
        ReasonCode::Success,
        ReasonCode::UnsupportedProtocolVersion,
        ReasonCode::ClientIdentifierNotValid,
        ReasonCode::ServerUnavailable,
        ReasonCode::BadUserNameOrPassword,
        ReasonCode::NotAuthorized,
    ]);
    let properties = (
        (
            option::of(any::<u32>()),
            option::of(nz16()),
            option::of(prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce)]),
        ),
        (
            option::of(any::<bool>()),
            option::of(nz32()),
            option::of(text()),
            option::of(any::<u16>()),
        ),
        (
            option::of(text()),
            option::of(any::<bool>()),
            option::of(any::<bool>()),
            option::of(any::<bool>()),
        ),
        (
            option::of(any::<u16>()),
            option::of(text()),
            option::of(text()),
            option::of((text(), option::of(binary()))),
        ),
        user_properties(),
    )
        .prop_map(
            |(
                (expiry, receive, max_qos),
                (retain, size, assigned, alias),
                (reason, wildcard, ids, shared),
                (keep_alive, info, reference, auth),
                users,
            )| {
                let mut p = ConnAckProperties::default();
                p.session_expiry_interval = expiry;
                p.receive_maximum = receive;
                p.maximum_qos = max_qos;
                p.retain_available = retain;
                p.maximum_packet_size = size;
                p.assigned_client_identifier = assigned;
                p.topic_alias_maximum = alias;
                p.reason_string = reason;
                p.wildcard_subscription_available = wildcard;
                p.subscription_identifiers_available = ids;
                p.shared_subscription_available = shared;
                p.server_keep_alive = keep_alive;
                p.response_information = info;
                p.server_reference = reference;
                if let Some((method, data)) = auth {
                    p.authentication_method = Some(method);
                    p.authentication_data = data;
                }
                p.user_properties = users;
                p
            },
        );
    (
        any::<bool>(),
        v3_codes,
        reason_in(PacketType::ConnAck),
        properties,
    )
        .prop_map(move |(session_present, v3_code, v5_code, properties)| {
            let mut ack = ConnAck::new(if version.is_v5() { v5_code } else { v3_code });
            ack.session_present = session_present;
            if version.is_v5() {
                ack.properties = properties.into();
            }
            Packet::ConnAck(ack)
        })
}

fn publish(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let properties = (
        (
            option::of(payload_format()),
            option::of(any::<u32>()),
            option::of(nz16()),
        ),
        (option::of(topic_name()), option::of(binary()), option::of(text())),
        vec(subscription_id(), 0..3),
        user_properties(),
    )
        .prop_map(
            |((format, expiry, alias), (response, correlation, content), ids, users)| {
                let mut p = PublishProperties::default();
                p.payload_format_indicator = format;
                p.message_expiry_interval = expiry;
                p.topic_alias = alias;
                p.response_topic = response;
                p.correlation_data = correlation;
                p.content_type = content;
                p.subscription_identifiers = ids;
                p.user_properties = users;
                p
            },
        );
    (
        (any::<bool>(), qos(), any::<bool>()),
        topic_name(),
        any::<bool>(),
        packet_id(),
        properties,
        vec(any::<u8>(), 0..300),
    )
        .prop_map(
            move |((dup, qos, retain), topic, alias_only, id, properties, payload)| {
                let mut publish = Publish::new(topic, payload);
                publish.qos = qos;
                publish.retain = retain;
                if qos != QoS::AtMostOnce {
                    publish.dup = dup;
                    publish.packet_id = Some(id);
                }
                if version.is_v5() {
                    // An empty topic is valid only with a Topic Alias standing in for it.
                    if alias_only && properties.topic_alias.is_some() {
                        publish.topic = TopicName::empty();
                    }
                    publish.properties = properties.into();
                }
                Packet::Publish(publish)
            },
        )
}

fn ack(version: ProtocolVersion, packet: PacketType) -> impl Strategy<Value = Packet> {
    (
        packet_id(),
        reason_in(packet),
        option::of(text()),
        user_properties(),
    )
        .prop_map(move |(id, reason, reason_string, users)| {
            let mut ack = Ack::new(id);
            if version.is_v5() {
                ack.reason_code = reason;
                ack.properties.reason_string = reason_string;
                ack.properties.user_properties = users;
            }
            match packet {
                PacketType::PubAck => Packet::PubAck(ack),
                PacketType::PubRec => Packet::PubRec(ack),
                PacketType::PubRel => Packet::PubRel(ack),
                _ => Packet::PubComp(ack),
            }
        })
}

fn subscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let retain_handling = prop_oneof![
        Just(RetainHandling::SendAtSubscribe),
        Just(RetainHandling::SendIfNew),
        Just(RetainHandling::DoNotSend)
    ];
    let subscription = (
        topic_filter(),
        qos(),
        any::<bool>(),
        any::<bool>(),
        retain_handling,
    )
        .prop_map(move |(filter, qos, no_local, rap, retain_handling)| {
            let mut options = SubscriptionOptions {
                qos,
                ..SubscriptionOptions::default()
            };
            if version.is_v5() {
                options.no_local = no_local && filter.shared().is_none();
                options.retain_as_published = rap;
                options.retain_handling = retain_handling;
            }
            Subscription { filter, options }
        });
    (
        packet_id(),
        vec(subscription, 1..5),
        option::of(subscription_id()),
        user_properties(),
    )
        .prop_map(move |(packet_id, subscriptions, id, users)| {
            let mut properties = SubscribeProperties::default();
            if version.is_v5() {
                properties.subscription_identifier = id;
                properties.user_properties = users;
            }
            Packet::Subscribe(Subscribe {
                packet_id,
                subscriptions,
                properties,
            })
        })
}

fn ack_properties(
    version: ProtocolVersion,
    reason: Option<ByteString>,
    users: Vec<UserProperty>,
) -> AckProperties {
    let mut properties = AckProperties::default();
    if version.is_v5() {
        properties.reason_string = reason;
        properties.user_properties = users;
    }
    properties
}

fn suback(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let v3 = proptest::sample::select(vec![
        ReasonCode::Success,
        ReasonCode::GrantedQos1,
        ReasonCode::GrantedQos2,
        ReasonCode::UnspecifiedError,
    ]);
    let code = if version.is_v5() {
        reason_in(PacketType::SubAck).boxed()
    } else {
        v3.boxed()
    };
    (
        packet_id(),
        vec(code, 1..5),
        option::of(text()),
        user_properties(),
    )
        .prop_map(move |(packet_id, reason_codes, reason, users)| {
            Packet::SubAck(SubAck {
                packet_id,
                reason_codes,
                properties: ack_properties(version, reason, users),
            })
        })
}

fn unsubscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (packet_id(), vec(topic_filter(), 1..5), user_properties()).prop_map(
        move |(packet_id, filters, users)| {
            let mut properties = UnsubscribeProperties::default();
            if version.is_v5() {
                properties.user_properties = users;
            }
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                filters,
                properties,
            })
        },
    )
}

fn unsuback(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        packet_id(),
        vec(reason_in(PacketType::UnsubAck), 1..5),
        option::of(text()),
        user_properties(),
    )
        .prop_map(move |(packet_id, codes, reason, users)| {
            Packet::UnsubAck(UnsubAck {
                packet_id,
                reason_codes: if version.is_v5() { codes } else { Vec::new() },
                properties: ack_properties(version, reason, users),
            })
        })
}

fn disconnect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        reason_in(PacketType::Disconnect),
        option::of(any::<u32>()),
        option::of(text()),
        option::of(text()),
        user_properties(),
    )
        .prop_map(move |(reason, expiry, reason_string, reference, users)| {
            let mut disconnect = Disconnect::new(ReasonCode::Success);
            if version.is_v5() {
                let mut properties = DisconnectProperties::default();
                properties.session_expiry_interval = expiry;
                properties.reason_string = reason_string;
                properties.server_reference = reference;
                properties.user_properties = users;
                disconnect = Disconnect {
                    reason_code: reason,
                    properties: properties.into(),
                };
            }
            Packet::Disconnect(disconnect)
        })
}

fn auth() -> impl Strategy<Value = Packet> {
    (
        reason_in(PacketType::Auth),
        text(),
        option::of(binary()),
        option::of(text()),
        user_properties(),
    )
        .prop_map(|(reason_code, method, data, reason, users)| {
            let mut properties = AuthProperties::default();
            properties.authentication_method = Some(method);
            properties.authentication_data = data;
            properties.reason_string = reason;
            properties.user_properties = users;
            Packet::Auth(Auth {
                reason_code,
                properties: properties.into(),
            })
        })
}

fn any_packet(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let mut choices = vec![
        connect(version).boxed(),
        connack(version).boxed(),
        publish(version).boxed(),
        ack(version, PacketType::PubAck).boxed(),
        ack(version, PacketType::PubRec).boxed(),
        ack(version, PacketType::PubRel).boxed(),
        ack(version, PacketType::PubComp).boxed(),
        subscribe(version).boxed(),
        suback(version).boxed(),
        unsubscribe(version).boxed(),
        unsuback(version).boxed(),
        Just(Packet::PingReq).boxed(),
        Just(Packet::PingResp).boxed(),
        disconnect(version).boxed(),
    ];
    if version.is_v5() {
        choices.push(auth().boxed());
    }
    proptest::strategy::Union::new(choices).boxed()
}

fn versioned_packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    proptest::sample::select(VERSIONS.to_vec()).prop_flat_map(|version| (Just(version), any_packet(version)))
}

/// Encodes, checks the predicted length, decodes through the incremental decoder.
fn round_trip(version: ProtocolVersion, packet: &Packet) -> Packet {
    let mut buf = BytesMut::new();
    packet.encode(version, &mut buf).unwrap();
    assert_eq!(buf.len(), packet.encoded_len(version).unwrap());
    let decoder = Decoder::new(version, u32::MAX);
    let decoded = decoder.decode(&mut buf).unwrap().expect("a whole packet");
    assert!(buf.is_empty(), "the decoder must consume exactly one packet");
    decoded
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn every_packet_round_trips((version, packet) in versioned_packet()) {
        prop_assert_eq!(round_trip(version, &packet), packet);
    }

    /// Splitting the bytes anywhere never yields a packet early, and never an error.
    #[test]
    fn partial_buffers_ask_for_more((version, packet) in versioned_packet(), cut in any::<prop::sample::Index>()) {
        let mut whole = BytesMut::new();
        packet.encode(version, &mut whole).unwrap();
        let cut = cut.index(whole.len());
        let mut partial = BytesMut::from(&whole[..cut]);
        let decoder = Decoder::new(version, u32::MAX);
        prop_assert_eq!(decoder.decode(&mut partial).unwrap(), None);
        prop_assert_eq!(partial.len(), cut, "nothing consumed");
        partial.extend_from_slice(&whole[cut..]);
        prop_assert_eq!(decoder.decode(&mut partial).unwrap(), Some(packet));
    }

    /// Two packets back to back decode as two, the first leaving the second untouched.
    #[test]
    fn back_to_back_packets_decode_separately((version, first) in versioned_packet(), second in any_packet(ProtocolVersion::V5)) {
        let second = if version.is_v5() { second } else { Packet::PingReq };
        let mut buf = BytesMut::new();
        first.encode(version, &mut buf).unwrap();
        second.encode(version, &mut buf).unwrap();
        let decoder = Decoder::new(version, u32::MAX);
        prop_assert_eq!(decoder.decode(&mut buf).unwrap(), Some(first));
        prop_assert_eq!(decoder.decode(&mut buf).unwrap(), Some(second));
        prop_assert!(buf.is_empty());
    }

    /// A template patched for a receiver equals a full encode with that packet id and DUP.
    #[test]
    fn publish_template_matches_full_encode(packet in publish(ProtocolVersion::V5), version in proptest::sample::select(VERSIONS.to_vec()), id in packet_id(), dup in any::<bool>()) {
        let Packet::Publish(mut publish) = packet else { unreachable!() };
        if !version.is_v5() {
            publish.properties = PublishProperties::default().into();
            if publish.topic.is_empty() {
                publish.topic = TopicName::try_from("t").unwrap();
            }
        }
        let template = publish.template(version).unwrap();
        if publish.qos != QoS::AtMostOnce {
            publish.packet_id = Some(id);
            publish.dup = dup;
        }
        let mut expected = BytesMut::new();
        publish.encode(version, &mut expected).unwrap();
        let mut patched = BytesMut::new();
        let dup = dup && publish.qos != QoS::AtMostOnce;
        template.write_to(Some(id), dup, &mut patched);
        prop_assert_eq!(&patched[..], &expected[..]);
        prop_assert_eq!(template.len(), expected.len());
        // The head alone, as a shared buffer and appended after bytes already queued.
        let head = template.head(Some(id), dup);
        prop_assert_eq!(&head[..], &expected[..expected.len() - publish.payload.len()]);
        let mut queued = BytesMut::from(&b"queued"[..]);
        template.write_head_to(Some(id), dup, &mut queued);
        queued.extend_from_slice(template.payload());
        prop_assert_eq!(&queued[b"queued".len()..], &expected[..]);
    }
}

#[test]
fn every_version_and_packet_type_is_generated() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    for version in VERSIONS {
        let mut seen = std::collections::HashSet::new();
        let strategy = any_packet(version);
        for _ in 0..3000 {
            seen.insert(strategy.new_tree(&mut runner).unwrap().current().packet_type());
        }
        let expected = if version.is_v5() { 15 } else { 14 };
        assert_eq!(seen.len(), expected, "{version}: {seen:?}");
    }
}

#[test]
fn quarter_gigabyte_payload_round_trips() {
    // 256 MB is the protocol's limit on a whole packet; the payload gets the rest after the header.
    let topic = TopicName::try_from("big").unwrap();
    let overhead = 2 + topic.len() + 2;
    let payload = Bytes::from(vec![0xA5u8; midge_codec::VARINT_MAX as usize - overhead]);
    let mut publish = Publish::new(topic, payload.clone());
    publish.qos = QoS::AtLeastOnce;
    publish.packet_id = NonZeroU16::new(7);
    let decoded = round_trip(ProtocolVersion::V311, &Packet::Publish(publish));
    let Packet::Publish(decoded) = decoded else {
        panic!("not a publish")
    };
    assert_eq!(decoded.payload.len(), payload.len());
    assert!(decoded.payload == payload);

    // One byte more does not fit in a Remaining Length.
    let too_big = Publish::new(
        TopicName::try_from("big").unwrap(),
        vec![0u8; midge_codec::VARINT_MAX as usize],
    );
    assert!(matches!(
        Packet::Publish(too_big).encode(ProtocolVersion::V311, &mut BytesMut::new()),
        Err(midge_codec::EncodeError::PacketTooLarge { .. })
    ));
}

/// A v5 DISCONNECT with a reason code and no properties carries an explicit Property Length of
/// 0, which §3.14.2.2.1 allows and which clients such as rumqttc 0.25 need to read the reason.
#[test]
fn v5_disconnect_with_a_reason_writes_the_property_length() {
    let mut buf = BytesMut::new();
    Packet::Disconnect(Disconnect::new(ReasonCode::SessionTakenOver))
        .encode(ProtocolVersion::V5, &mut buf)
        .unwrap();
    assert_eq!(&buf[..], [0xE0, 0x02, 0x8E, 0x00]);
    buf.clear();
    Packet::Disconnect(Disconnect::new(ReasonCode::Success))
        .encode(ProtocolVersion::V5, &mut buf)
        .unwrap();
    assert_eq!(&buf[..], [0xE0, 0x00]);
}
