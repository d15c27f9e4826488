#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;

use super::*;

fn message(payload: &'static [u8]) -> MessageRecord {
    let mut properties = PublishProperties::default();
    properties.content_type = Some("text/plain".into());
    properties.message_expiry_interval = Some(60);
    MessageRecord {
        topic: TopicName::try_from("a/b").unwrap(),
        payload: Bytes::from_static(payload),
        qos: QoS::ExactlyOnce,
        retain: true,
        properties,
        expires_at: Some(1_700_000_000_000),
        publisher: Some("pub-1".into()),
    }
}

#[test]
fn a_message_reads_back() {
    let record = message(b"hello");
    assert_eq!(MessageRecord::decode(&record.encode()).unwrap(), record);
    let plain = MessageRecord {
        qos: QoS::AtMostOnce,
        retain: false,
        properties: PublishProperties::default(),
        expires_at: None,
        publisher: None,
        ..record
    };
    assert_eq!(MessageRecord::decode(&plain.encode()).unwrap(), plain);
}

#[test]
fn an_mqttsn_topic_id_reads_back_and_a_bad_one_is_refused() {
    let record = SnTopicRecord {
        topic: TopicName::try_from("sensors/kitchen/temperature").unwrap(),
    };
    assert_eq!(SnTopicRecord::decode(&record.encode()).unwrap(), record);
    assert_eq!(SnTopicRecord::decode(b"\x02a"), Err(RecordError::Format(2)));
    assert_eq!(SnTopicRecord::decode(b""), Err(RecordError::Truncated("format")));
    assert_eq!(
        SnTopicRecord::decode(b"\x01a/#"),
        Err(RecordError::Invalid("topic"))
    );
    assert_eq!(
        SnTopicRecord::decode(b"\x01\xff"),
        Err(RecordError::Invalid("topic"))
    );
}

#[test]
fn a_session_reads_back() {
    let record = SessionRecord {
        expiry_secs: Some(3600),
        version: ProtocolVersion::V5,
        username: Some("alice".into()),
        listener: 2,
        disconnected_at: Some(1_700_000_000_123),
        will: Some(WillRecord {
            message: message(b"gone"),
            delay_secs: 30,
        }),
    };
    assert_eq!(SessionRecord::decode(&record.encode()).unwrap(), record);
    let bare = SessionRecord {
        expiry_secs: None,
        version: ProtocolVersion::V311,
        username: None,
        listener: 0,
        disconnected_at: None,
        will: None,
    };
    assert_eq!(SessionRecord::decode(&bare.encode()).unwrap(), bare);
}

#[test]
fn a_subscription_reads_back() {
    let record = SubscriptionRecord {
        filter: TopicFilter::try_from("$share/g/a/+/#").unwrap(),
        options: SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            no_local: false,
            retain_as_published: true,
            retain_handling: midge_codec::RetainHandling::SendIfNew,
        },
        id: SubscriptionId::new(77),
    };
    assert_eq!(SubscriptionRecord::decode(&record.encode()).unwrap(), record);
}

#[test]
fn an_entry_reads_back() {
    let record = EntryRecord {
        message_id: 99,
        qos: QoS::ExactlyOnce,
        retain: true,
        subscription_ids: vec![
            SubscriptionId::new(1).unwrap(),
            SubscriptionId::new(268_435_455).unwrap(),
        ],
        state: EntryState::AwaitingPubComp,
        packet_id: PacketId::new(513),
    };
    assert_eq!(EntryRecord::decode(&record.encode()).unwrap(), record);
}

#[test]
fn another_format_is_refused_by_name() {
    let mut value = message(b"x").encode().to_vec();
    value[0] = 9;
    assert_eq!(MessageRecord::decode(&value), Err(RecordError::Format(9)));
}

#[test]
fn an_entry_that_says_sent_has_a_packet_id() {
    let mut record = EntryRecord {
        message_id: 1,
        qos: QoS::AtLeastOnce,
        retain: false,
        subscription_ids: Vec::new(),
        state: EntryState::AwaitingPubAck,
        packet_id: None,
    };
    assert!(EntryRecord::decode(&record.encode()).is_err());
    record.state = EntryState::Queued;
    assert!(EntryRecord::decode(&record.encode()).is_ok());
}

#[test]
fn every_truncation_is_an_error() {
    let values = [
        message(b"payload").encode(),
        SessionRecord {
            expiry_secs: Some(1),
            version: ProtocolVersion::V5,
            username: Some("u".into()),
            listener: 1,
            disconnected_at: Some(5),
            will: Some(WillRecord {
                message: message(b"w"),
                delay_secs: 1,
            }),
        }
        .encode(),
        EntryRecord {
            message_id: 1,
            qos: QoS::AtLeastOnce,
            retain: false,
            subscription_ids: vec![SubscriptionId::new(3).unwrap()],
            state: EntryState::Queued,
            packet_id: None,
        }
        .encode(),
    ];
    for value in values {
        for cut in 0..value.len() {
            let short = &value[..cut];
            assert!(
                MessageRecord::decode(short).is_err()
                    && SessionRecord::decode(short).is_err()
                    && EntryRecord::decode(short).is_err()
                    && SubscriptionRecord::decode(short).is_err(),
                "a record cut to {cut} of {} bytes was read",
                value.len()
            );
        }
    }
}

proptest! {
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = MessageRecord::decode(&bytes);
        let _ = SessionRecord::decode(&bytes);
        let _ = SubscriptionRecord::decode(&bytes);
        let _ = EntryRecord::decode(&bytes);
        let _ = crate::key::parse(&bytes);
    }

    #[test]
    fn messages_round_trip(
        topic in "[a-z/]{1,40}",
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        qos in 0u8..3,
        retain in any::<bool>(),
        expires_at in proptest::option::of(any::<u64>()),
        publisher in proptest::option::of("[a-zA-Z0-9]{0,23}"),
    ) {
        let record = MessageRecord {
            topic: TopicName::new(topic).unwrap(),
            payload: Bytes::from(payload),
            qos: QoS::from_bits(qos).unwrap(),
            retain,
            properties: PublishProperties::default(),
            expires_at,
            publisher: publisher.map(ByteString::from),
        };
        prop_assert_eq!(MessageRecord::decode(&record.encode()).unwrap(), record);
    }
}
