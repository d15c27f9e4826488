//! Message expiry, Retain Handling and Clean Start, driven packet by packet with a clock the
//! test controls. Each test names the normative statements of MQTT 5.0 it checks.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

use std::time::{Duration, Instant};

use midge_codec::{
    Connect, Packet, QoS, RetainHandling, Subscribe, Subscription, SubscriptionOptions, TopicFilter,
};
use midge_core::{Broker, BrokerConfig};

mod support;

use support::*;

fn persistent_v5(id: &str) -> Connect {
    let mut connect = Connect::new(V5, id);
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(3600);
    connect
}

fn expiring(topic_name: &str, payload: &'static str, seconds: u32, id: u16) -> Packet {
    let Packet::Publish(mut publish) = publish(topic_name, payload, QoS::AtLeastOnce, id) else {
        unreachable!()
    };
    publish.properties.message_expiry_interval = Some(seconds);
    Packet::Publish(publish)
}

#[test]
fn mqtt_3_3_2_5_and_3_3_2_6_expiry_drops_late_copies_and_forwards_the_time_left() {
    let t0 = Instant::now();
    let broker = Broker::new(BrokerConfig::default(), 7);
    let (mut sub, _) = connect_with(&broker, persistent_v5("away"), t0);
    sub.send(subscribe(&[("e/#", QoS::AtLeastOnce)], 1), t0);
    sub.connection.end(t0, false);

    let mut publisher = connect(&broker, V5, "pub", t0);
    publisher.send(expiring("e/long", "long", 10, 1), t0);
    publisher.send(expiring("e/short", "short", 2, 2), t0);

    // Four seconds later the client is back: the short one expired while it waited, the long
    // one arrives with the six seconds it has left.
    let later = t0 + Duration::from_secs(4);
    let (_, got) = connect_with(&broker, persistent_v5("away"), later);
    let delivered = publishes(&got);
    assert_eq!(
        delivered.len(),
        1,
        "[MQTT-3.3.2-5] the expired copy is not sent: {got:?}"
    );
    assert_eq!(&delivered[0].payload[..], b"long");
    assert_eq!(
        delivered[0].properties.message_expiry_interval,
        Some(6),
        "[MQTT-3.3.2-6] the interval sent on is what is left"
    );
}

fn subscribe_with(filter: &str, handling: RetainHandling, id: u16) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: pid(id),
        subscriptions: vec![Subscription {
            filter: TopicFilter::try_from(filter).unwrap(),
            options: SubscriptionOptions {
                qos: QoS::AtMostOnce,
                retain_handling: handling,
                ..SubscriptionOptions::default()
            },
        }],
        properties: Default::default(),
    })
}

#[test]
fn mqtt_3_3_1_9_to_11_retain_handling_0_1_and_2() {
    let now = Instant::now();
    let broker = Broker::new(BrokerConfig::default(), 7);
    let mut publisher = connect(&broker, V5, "pub", now);
    publisher.send(retained("r/a", "kept"), now);
    let mut client = connect(&broker, V5, "c", now);

    let (_, got) = client.send(subscribe_with("r/#", RetainHandling::SendIfNew, 1), now);
    assert_eq!(
        publishes(&got).len(),
        1,
        "[MQTT-3.3.1-10] a new subscription gets it"
    );
    let (_, got) = client.send(subscribe_with("r/#", RetainHandling::SendIfNew, 2), now);
    assert!(
        publishes(&got).is_empty(),
        "[MQTT-3.3.1-10] not again for an existing one"
    );
    let (_, got) = client.send(subscribe_with("r/#", RetainHandling::SendAtSubscribe, 3), now);
    assert_eq!(
        publishes(&got).len(),
        1,
        "[MQTT-3.3.1-9] [MQTT-3.8.4-4] Retain Handling 0: sent again"
    );
    let (_, got) = client.send(subscribe_with("r/+", RetainHandling::DoNotSend, 4), now);
    assert!(
        publishes(&got).is_empty(),
        "[MQTT-3.3.1-11] Retain Handling 2: never"
    );
}

#[test]
fn mqtt_3_1_2_4_clean_start_discards_the_old_session() {
    let now = Instant::now();
    let broker = Broker::new(BrokerConfig::default(), 7);
    let (mut sub, _) = connect_with(&broker, persistent_v5("c"), now);
    sub.send(subscribe(&[("t", QoS::AtLeastOnce)], 1), now);
    sub.connection.end(now, false);
    let mut publisher = connect(&broker, V5, "pub", now);
    publisher.send(publish("t", "queued", QoS::AtLeastOnce, 1), now);
    assert_eq!(broker.census().queued, 1);

    let mut clean = Connect::new(V5, "c");
    clean.clean_start = true;
    clean.properties.session_expiry_interval = Some(3600);
    let (mut sub, got) = connect_with(&broker, clean, now);
    let Packet::ConnAck(ack) = &got[0] else {
        panic!("{got:?}")
    };
    assert!(!ack.session_present);
    assert!(
        publishes(&got).is_empty(),
        "[MQTT-3.1.2-4] the queued message went with the session"
    );
    assert_eq!(broker.census().queued, 0);
    publisher.send(publish("t", "after", QoS::AtLeastOnce, 2), now);
    assert!(
        publishes(&sub.received(now)).is_empty(),
        "[MQTT-3.1.2-4] and so did the subscription"
    );
}
