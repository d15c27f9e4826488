//! The broker's logic driven packet by packet, with a clock the test controls: no sockets, no
//! runtime, fully deterministic. Each test names the normative statement it checks.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

use std::num::NonZeroU16;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use midge_codec::{
    Ack, Connect, Disconnect, Packet, ProtocolVersion, Publish, QoS, ReasonCode, TopicFilter, TopicName,
    Unsubscribe, Will,
};
use midge_core::{After, Broker, BrokerConfig, DropReason, Outbox};

mod support;

use support::*;

#[test]
fn mqtt_4_3_2_qos1_round_trip_between_two_clients() {
    let now = Instant::now();
    let broker = broker(BrokerConfig::default());
    let mut sub = connect(&broker, V311, "sub", now);
    let (_, got) = sub.send(subscribe(&[("a/+", QoS::AtLeastOnce)], 1), now);
    assert!(matches!(&got[..], [Packet::SubAck(ack)] if ack.reason_codes == [ReasonCode::GrantedQos1]));

    let mut publisher = connect(&broker, V311, "pub", now);
    let (_, got) = publisher.send(publish("a/b", "hello", QoS::AtLeastOnce, 9), now);
    assert!(matches!(&got[..], [Packet::PubAck(ack)] if ack.packet_id == pid(9)));
    assert!(
        sub.link.wakes.load(Ordering::Relaxed) > 0,
        "the subscriber's connection is woken"
    );

    let got = sub.received(now);
    let delivered = publishes(&got);
    assert_eq!(delivered.len(), 1);
    assert_eq!(&delivered[0].payload[..], b"hello");
    assert_eq!(delivered[0].qos, QoS::AtLeastOnce);
    assert!(!delivered[0].retain, "[MQTT-3.3.1-12]");
    let id = delivered[0].packet_id.unwrap();
    sub.send(Packet::PubAck(Ack::new(id)), now);
}

#[test]
fn mqtt_3_3_4_2_overlapping_subscriptions_deliver_once_at_the_highest_qos() {
    let now = Instant::now();
    let broker = broker(BrokerConfig::default());
    let mut sub = connect(&broker, V311, "sub", now);
    sub.send(
        subscribe(
            &[
                ("a/#", QoS::AtMostOnce),
                ("a/b", QoS::ExactlyOnce),
                ("+/b", QoS::AtLeastOnce),
            ],
            1,
        ),
        now,
    );
    let mut publisher = connect(&broker, V311, "pub", now);
    publisher.send(publish("a/b", "x", QoS::ExactlyOnce, 1), now);
    let got = sub.received(now);
    let delivered = publishes(&got);
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].qos, QoS::ExactlyOnce);
}

#[test]
fn mqtt_3_3_1_retained_messages_are_stored_replaced_and_deleted() {
    let now = Instant::now();
    let broker = broker(BrokerConfig::default());
    let mut publisher = connect(&broker, V311, "pub", now);
    publisher.send(retained("r/1", "first"), now);
    publisher.send(retained("r/1", "second"), now);
    publisher.send(retained("r/2", "other"), now);
    assert_eq!(broker.retained_count(), 2);

    let mut sub = connect(&broker, V311, "sub", now);
    let (_, got) = sub.send(subscribe(&[("r/1", QoS::AtLeastOnce)], 1), now);
    assert!(
        matches!(got[0], Packet::SubAck(_)),
        "SUBACK comes before retained messages"
    );
    let delivered = publishes(&got);
    assert_eq!(delivered.len(), 1);
    assert_eq!(&delivered[0].payload[..], b"second", "[MQTT-3.3.1-5]");
    assert!(delivered[0].retain, "§3.3.1.3 (3.1.1: [MQTT-3.3.1-8])");

    publisher.send(retained("r/1", ""), now);
    assert_eq!(broker.retained_count(), 1, "[MQTT-3.3.1-6]");
    let mut late = connect(&broker, V311, "late", now);
    let (_, got) = late.send(subscribe(&[("r/1", QoS::AtMostOnce)], 1), now);
    assert!(publishes(&got).is_empty(), "[MQTT-3.3.1-7]");
}

#[test]
fn mqtt_3_1_4_3_takeover_closes_the_old_connection_and_publishes_its_will() {
    let now = Instant::now();
    let broker = broker(BrokerConfig::default());
    let mut watcher = connect(&broker, V311, "watcher", now);
    watcher.send(subscribe(&[("wills/#", QoS::AtMostOnce)], 1), now);

    let mut first = Connect::new(V5, "dup");
    first.will = Some(Will {
        topic: topic("wills/dup"),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Default::default(),
    });
    let (old, _) = connect_with(&broker, first, now);
    let (mut new, connack) = connect_with(&broker, Connect::new(V5, "dup"), now);
    assert!(matches!(&connack[..], [Packet::ConnAck(_)]));
    assert_eq!(*old.link.closed.lock(), Some(ReasonCode::SessionTakenOver));
    assert_eq!(
        publishes(&watcher.received(now)).len(),
        1,
        "the old connection's will"
    );

    // The old connection's late end changes nothing for the new one.
    old.connection.end(now, true);
    assert_eq!(publishes(&watcher.received(now)).len(), 0);
    let (after, got) = new.send(Packet::PingReq, now);
    assert_eq!(after, After::Continue);
    assert!(matches!(&got[..], [Packet::PingResp]));
}

fn will_connect(version: ProtocolVersion, id: &str, delay: Option<u32>) -> Connect {
    let mut connect = Connect::new(version, id);
    let mut will = Will {
        topic: topic("wills/x"),
        payload: Bytes::from_static(b"bye"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Default::default(),
    };
    will.properties.will_delay_interval = delay;
    connect.will = Some(will);
    connect
}

fn watcher(broker: &Arc<Broker>, now: Instant) -> Client {
    let mut watcher = connect(broker, V311, "watcher", now);
    watcher.send(subscribe(&[("wills/#", QoS::AtLeastOnce)], 1), now);
    watcher
}

#[test]
fn mqtt_3_1_2_8_will_is_published_on_abnormal_end_only() {
    let now = Instant::now();
    let broker = broker(BrokerConfig::default());
    let mut watcher = watcher(&broker, now);

    let (client, _) = connect_with(&broker, will_connect(V311, "a", None), now);
    client.connection.end(now, true);
    assert_eq!(
        publishes(&watcher.received(now)).len(),
        1,
        "socket lost: will sent"
    );

    let (mut client, _) = connect_with(&broker, will_connect(V311, "b", None), now);
    let (after, _) = client.send(Packet::Disconnect(Disconnect::new(ReasonCode::Success)), now);
    let After::Close { publish_will, .. } = after else {
        panic!("DISCONNECT closes")
    };
    client.connection.end(now, publish_will);
    assert!(
        publishes(&watcher.received(now)).is_empty(),
        "[MQTT-3.1.2-10] normal DISCONNECT discards the will"
    );

    let (mut client, _) = connect_with(&broker, will_connect(V5, "c", None), now);
    let (after, _) = client.send(
        Packet::Disconnect(Disconnect::new(ReasonCode::DisconnectWithWillMessage)),
        now,
    );
    let After::Close { publish_will, .. } = after else {
        panic!("DISCONNECT closes")
    };
    client.connection.end(now, publish_will);
    assert_eq!(
        publishes(&watcher.received(now)).len(),
        1,
        "DISCONNECT 0x04 publishes the will"
    );
}

#[test]
fn mqtt_3_1_3_9_will_delay_waits_and_a_reconnect_cancels_it() {
    let start = Instant::now();
    let broker = broker(BrokerConfig::default());
    let mut watcher = watcher(&broker, start);
    let mut connect = will_connect(V5, "delayed", Some(10));
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(3600);

    let (client, _) = connect_with(&broker, connect.clone(), start);
    client.connection.end(start, true);
    assert!(
        publishes(&watcher.received(start)).is_empty(),
        "not before the delay"
    );
    let next = broker.tick(start + Duration::from_secs(5));
    assert!(next.is_some());
    assert!(publishes(&watcher.received(start)).is_empty());
    let at = start + Duration::from_secs(11);
    broker.tick(at);
    assert_eq!(publishes(&watcher.received(at)).len(), 1, "after the delay");

    // Reconnecting within the delay cancels it.
    let (client, _) = connect_with(&broker, connect.clone(), at);
    client.connection.end(at, true);
    let (_back, _) = connect_with(&broker, connect, at + Duration::from_secs(2));
    broker.tick(at + Duration::from_secs(30));
    assert!(
        publishes(&watcher.received(at)).is_empty(),
        "[MQTT-3.1.3-9] cancelled by the reconnect"
    );
}

#[test]
fn mqtt_4_4_0_1_persistent_session_queues_offline_and_resends_inflight_with_dup() {
    let now = Instant::now();
    let broker = broker(BrokerConfig::default());
    let mut persistent = Connect::new(V311, "persistent");
    persistent.clean_start = false;
    let (mut sub, connack) = connect_with(&broker, persistent.clone(), now);
    assert!(matches!(&connack[..], [Packet::ConnAck(a)] if !a.session_present));
    sub.send(subscribe(&[("q/#", QoS::AtLeastOnce)], 1), now);

    let mut publisher = connect(&broker, V311, "pub", now);
    publisher.send(publish("q/1", "one", QoS::AtLeastOnce, 1), now);
    let got = sub.received(now);
    assert_eq!(publishes(&got).len(), 1);
    // The subscriber goes away without acknowledging; two more arrive while it is offline.
    sub.connection.end(now, true);
    publisher.send(publish("q/2", "two", QoS::AtLeastOnce, 2), now);
    publisher.send(publish("q/3", "three", QoS::AtMostOnce, 0), now);
    assert_eq!(broker.stats().dropped_count(DropReason::Qos0Offline), 1);

    let (mut sub, got) = connect_with(&broker, persistent, now);
    assert!(
        matches!(&got[0], Packet::ConnAck(a) if a.session_present),
        "[MQTT-3.2.2-3]"
    );
    let delivered = publishes(&got);
    assert_eq!(delivered.len(), 2);
    assert_eq!(&delivered[0].payload[..], b"one");
    assert!(delivered[0].dup, "the unacknowledged message is resent with DUP");
    assert_eq!(&delivered[1].payload[..], b"two");
    assert!(!delivered[1].dup);
    assert_ne!(delivered[0].packet_id, delivered[1].packet_id, "[MQTT-2.2.1-3]");
    sub.send(Packet::PubAck(Ack::new(delivered[0].packet_id.unwrap())), now);
}

#[test]
fn mqtt_4_3_3_qos2_retransmission_is_delivered_once() {
    let now = Instant::now();
    let broker = broker(BrokerConfig::default());
    let mut sub = connect(&broker, V311, "sub", now);
    sub.send(subscribe(&[("t", QoS::ExactlyOnce)], 1), now);
    let mut publisher = connect(&broker, V311, "pub", now);
    let (_, got) = publisher.send(publish("t", "once", QoS::ExactlyOnce, 5), now);
    assert!(matches!(&got[..], [Packet::PubRec(a)] if a.packet_id == pid(5)));
    let Packet::Publish(mut again) = publish("t", "once", QoS::ExactlyOnce, 5) else {
        unreachable!()
    };
    again.dup = true;
    let (_, got) = publisher.send(Packet::Publish(again), now);
    assert!(matches!(&got[..], [Packet::PubRec(_)]));
    let (_, got) = publisher.send(Packet::PubRel(Ack::new(pid(5))), now);
    assert!(matches!(&got[..], [Packet::PubComp(a)] if a.packet_id == pid(5)));

    let got = sub.received(now);
    assert_eq!(publishes(&got).len(), 1, "[MQTT-4.3.3-3] exactly once");
    let id = publishes(&got)[0].packet_id.unwrap();
    let (_, got) = sub.send(Packet::PubRec(Ack::new(id)), now);
    assert!(matches!(&got[..], [Packet::PubRel(a)] if a.packet_id == id));
    sub.send(Packet::PubComp(Ack::new(id)), now);
}

#[test]
fn queue_limit_drops_are_counted_and_the_window_holds() {
    let now = Instant::now();
    let config = BrokerConfig {
        max_inflight_messages: 2,
        max_queued_messages: 3,
        ..BrokerConfig::default()
    };
    let broker = broker(config);
    let mut sub = connect(&broker, V311, "slow", now);
    sub.send(subscribe(&[("f", QoS::AtLeastOnce)], 1), now);
    let mut publisher = connect(&broker, V311, "pub", now);
    for i in 1..=10 {
        publisher.send(publish("f", "m", QoS::AtLeastOnce, i), now);
    }
    let got = sub.received(now);
    let first = publishes(&got);
    assert_eq!(first.len(), 2, "the inflight window");
    assert_eq!(
        broker.stats().dropped_count(DropReason::QueueFull),
        5,
        "2 in flight, 3 queued, 5 dropped"
    );
    // Each acknowledgement lets one queued message through, in order.
    let ids: Vec<_> = first.iter().map(|p| p.packet_id.unwrap()).collect();
    let (_, got) = sub.send(Packet::PubAck(Ack::new(ids[0])), now);
    assert_eq!(publishes(&got).len(), 1);
}

#[test]
fn session_info_counts_one_sessions_drops() {
    let now = Instant::now();
    let config = BrokerConfig {
        max_inflight_messages: 2,
        max_queued_messages: 3,
        ..BrokerConfig::default()
    };
    let broker = broker(config);
    let mut sub = connect(&broker, V311, "slow", now);
    sub.send(subscribe(&[("f", QoS::AtLeastOnce)], 1), now);
    let mut publisher = connect(&broker, V311, "pub", now);
    for i in 1..=10 {
        publisher.send(publish("f", "m", QoS::AtLeastOnce, i), now);
    }
    sub.received(now);
    let info = broker.session_info("slow").unwrap();
    assert_eq!((info.inflight, info.queued, info.dropped), (2, 3, 5));
    assert_eq!(broker.session_info("pub").unwrap().dropped, 0);
}

/// Mosquitto's bridges set the high bit of the protocol level (`try_private`); such a client
/// is not sent its own messages back and sees RETAIN as published, so two brokers bridged both
/// ways over MQTT 3.1.1 do not echo each other's messages.
#[test]
fn a_3_1_1_bridge_gets_no_local_and_retain_as_published() {
    let now = Instant::now();
    let broker = broker(BrokerConfig::default());
    let mut connect = Connect::new(V311, "edge.bridge");
    connect.bridge = true;
    let (mut bridge, _) = connect_with(&broker, connect, now);
    assert!(bridge.connection.is_bridge());
    bridge.send(subscribe(&[("t/#", QoS::AtLeastOnce)], 1), now);
    let (_, got) = bridge.send(publish("t/own", "from the bridge", QoS::AtLeastOnce, 2), now);
    assert!(publishes(&got).is_empty(), "its own message is not sent back");

    let mut other = connect_as_plain(&broker, "other", now);
    other.send(retained("t/kept", "state"), now);
    let got = bridge.received(now);
    let delivered = publishes(&got);
    assert_eq!(delivered.len(), 1);
    assert!(delivered[0].retain, "RETAIN as published");

    // A plain 3.1.1 client gets neither.
    let mut plain = connect_as_plain(&broker, "plain", now);
    plain.send(subscribe(&[("t/#", QoS::AtLeastOnce)], 1), now);
    plain.received(now);
    let (_, got) = plain.send(publish("t/own", "mine", QoS::AtLeastOnce, 2), now);
    assert_eq!(publishes(&got).len(), 1, "a plain client gets its own message");
    other.send(retained("t/kept", "again"), now);
    assert!(!publishes(&plain.received(now))[0].retain);
}

fn connect_as_plain(broker: &Arc<Broker>, id: &str, now: Instant) -> Client {
    connect(broker, V311, id, now)
}

#[test]
fn session_expiry_removes_the_session_and_its_subscriptions() {
    let start = Instant::now();
    let broker = broker(BrokerConfig::default());
    let mut expiring = Connect::new(V5, "expiring");
    expiring.clean_start = false;
    expiring.properties.session_expiry_interval = Some(60);
    let (mut client, _) = connect_with(&broker, expiring, start);
    client.send(subscribe(&[("x", QoS::AtMostOnce)], 1), start);
    client.connection.end(start, true);
    assert_eq!(broker.session_count(), 1);
    broker.tick(start + Duration::from_secs(59));
    assert_eq!(broker.session_count(), 1);
    broker.tick(start + Duration::from_secs(60));
    assert_eq!(broker.session_count(), 0);
    assert_eq!(broker.subscription_count(), 0);

    // A clean 3.1.1 session ends with its connection.
    let mut client = connect(&broker, V311, "clean", start);
    client.send(subscribe(&[("x", QoS::AtMostOnce)], 1), start);
    client.connection.end(start, true);
    assert_eq!((broker.session_count(), broker.subscription_count()), (0, 0));
}

#[test]
fn shared_subscription_alternates_between_members() {
    let now = Instant::now();
    let broker = broker(BrokerConfig::default());
    let mut a = connect(&broker, V5, "a", now);
    let mut b = connect(&broker, V311, "b", now);
    a.send(subscribe(&[("$share/g/s/#", QoS::AtMostOnce)], 1), now);
    b.send(subscribe(&[("$share/g/s/#", QoS::AtMostOnce)], 1), now);
    let mut publisher = connect(&broker, V311, "pub", now);
    for _ in 0..6 {
        publisher.send(publish("s/1", "x", QoS::AtMostOnce, 0), now);
    }
    assert_eq!(publishes(&a.received(now)).len(), 3);
    assert_eq!(publishes(&b.received(now)).len(), 3);
}

#[test]
fn unsubscribe_reports_what_existed_in_5_0() {
    let now = Instant::now();
    let broker = broker(BrokerConfig::default());
    let mut client = connect(&broker, V5, "u", now);
    client.send(subscribe(&[("a", QoS::AtMostOnce)], 1), now);
    let (_, got) = client.send(
        Packet::Unsubscribe(Unsubscribe {
            packet_id: pid(2),
            filters: vec![
                TopicFilter::try_from("a").unwrap(),
                TopicFilter::try_from("b").unwrap(),
            ],
            properties: Default::default(),
        }),
        now,
    );
    assert!(matches!(&got[..], [Packet::UnsubAck(a)]
        if a.reason_codes == [ReasonCode::Success, ReasonCode::NoSubscriptionExisted]));
    assert_eq!(broker.subscription_count(), 0);
}

#[test]
fn connect_refusals() {
    let now = Instant::now();
    let broker = broker(BrokerConfig {
        allow_anonymous: false,
        ..BrokerConfig::default()
    });
    let mut out = Outbox::new(V311);
    let refused = broker.connect(
        Connect::new(V311, "anon"),
        Arc::new(TestLink::default()),
        now,
        &mut out,
    );
    assert_eq!(refused.unwrap_err().reason, ReasonCode::NotAuthorized);
    assert!(
        matches!(&decode_all(&mut out)[..], [Packet::ConnAck(a)] if a.reason_code == ReasonCode::NotAuthorized)
    );

    let broker = broker_default();
    let mut empty = Connect::new(V311, "");
    empty.clean_start = false;
    let mut out = Outbox::new(V311);
    let refused = broker.connect(empty, Arc::new(TestLink::default()), now, &mut out);
    assert_eq!(
        refused.unwrap_err().reason,
        ReasonCode::ClientIdentifierNotValid,
        "[MQTT-3.1.3-8]"
    );

    let (client, got) = connect_with(&broker, Connect::new(V5, ""), now);
    let Packet::ConnAck(ack) = &got[0] else { panic!() };
    let assigned = ack
        .properties
        .assigned_client_identifier
        .clone()
        .expect("[MQTT-3.2.2-16]");
    assert!(assigned.starts_with("auto-"));
    assert_eq!(client.connection.client_id(), &assigned);
}

fn broker_default() -> Arc<Broker> {
    broker(BrokerConfig::default())
}

#[test]
fn mqtt_3_1_0_2_second_connect_is_a_protocol_error() {
    let now = Instant::now();
    let broker = broker_default();
    let mut client = connect(&broker, V5, "twice", now);
    let (after, got) = client.send(Packet::Connect(Box::new(Connect::new(V5, "twice"))), now);
    assert!(matches!(
        after,
        After::Close {
            publish_will: true,
            ..
        }
    ));
    assert!(matches!(&got[..], [Packet::Disconnect(d)] if d.reason_code == ReasonCode::ProtocolError));
}

#[test]
fn topic_alias_from_client_is_resolved() {
    let now = Instant::now();
    let broker = broker_default();
    let mut sub = connect(&broker, V311, "sub", now);
    sub.send(subscribe(&[("long/topic/name", QoS::AtMostOnce)], 1), now);
    let mut client = connect(&broker, V5, "aliaser", now);
    let Packet::Publish(mut first) = publish("long/topic/name", "1", QoS::AtMostOnce, 0) else {
        unreachable!()
    };
    first.properties.topic_alias = NonZeroU16::new(3);
    client.send(Packet::Publish(first), now);
    let mut second = Publish::new(TopicName::empty(), Bytes::from_static(b"2"));
    second.properties.topic_alias = NonZeroU16::new(3);
    let (after, _) = client.send(Packet::Publish(second), now);
    assert_eq!(after, After::Continue);
    let got = sub.received(now);
    let delivered = publishes(&got);
    assert_eq!(delivered.len(), 2);
    assert_eq!(delivered[1].topic.as_str(), "long/topic/name");

    let mut unknown = Publish::new(TopicName::empty(), Bytes::from_static(b"3"));
    unknown.properties.topic_alias = NonZeroU16::new(4);
    let (after, got) = client.send(Packet::Publish(unknown), now);
    assert!(matches!(after, After::Close { .. }));
    assert!(matches!(&got[..], [Packet::Disconnect(d)] if d.reason_code == ReasonCode::ProtocolError));
}

/// Rules for the access tests: user "admin" may do anything; everyone else may not write
/// under `secret/`, not subscribe to filters under `secret/`, and not read `private/`.
#[derive(Debug)]
struct TestRules;

impl midge_core::AccessControl for TestRules {
    fn allows(&self, who: &midge_core::Identity<'_>, topic: &str, access: midge_core::Access) -> bool {
        if who.username == Some("admin") {
            return true;
        }
        match access {
            midge_core::Access::Write => !topic.starts_with("secret/"),
            midge_core::Access::Subscribe => !topic.starts_with("secret/"),
            midge_core::Access::Read => !topic.starts_with("private/"),
        }
    }
}

fn connect_as(
    broker: &Arc<Broker>,
    version: ProtocolVersion,
    id: &str,
    user: Option<&str>,
    now: Instant,
) -> Client {
    let mut c = Connect::new(version, id);
    c.username = user.map(Into::into);
    connect_with(broker, c, now).0
}

#[test]
fn access_rules_judge_publish_subscribe_delivery_retained_and_wills() {
    let now = Instant::now();
    let broker = broker(BrokerConfig::default());
    broker.set_access_control(Some(Arc::new(TestRules)));
    let mut admin = connect_as(&broker, V5, "admin", Some("admin"), now);
    admin.send(subscribe(&[("#", QoS::AtLeastOnce)], 1), now);

    // Write: v5 gets 0x87 and nothing is routed; 3.1.1 gets a plain PUBACK, nothing routed.
    let mut v5 = connect_as(&broker, V5, "v5", Some("bob"), now);
    let (_, got) = v5.send(publish("secret/x", "no", QoS::AtLeastOnce, 1), now);
    assert!(matches!(&got[..], [Packet::PubAck(a)] if a.reason_code == ReasonCode::NotAuthorized));
    let mut v3 = connect_as(&broker, V311, "v3", None, now);
    let (_, got) = v3.send(publish("secret/x", "no", QoS::AtLeastOnce, 2), now);
    assert!(matches!(&got[..], [Packet::PubAck(a)] if a.reason_code == ReasonCode::Success));
    assert!(
        publishes(&admin.received(now)).is_empty(),
        "denied publishes are not routed"
    );

    // Subscribe: 0x87 in 5.0, 0x80 in 3.1.1; allowed filters in the same packet are granted.
    let (_, got) = v5.send(
        subscribe(&[("secret/#", QoS::AtMostOnce), ("ok/#", QoS::AtMostOnce)], 3),
        now,
    );
    assert!(
        matches!(&got[..], [Packet::SubAck(a)] if a.reason_codes == [ReasonCode::NotAuthorized, ReasonCode::Success])
    );
    let (_, got) = v3.send(
        subscribe(&[("secret/#", QoS::AtMostOnce), ("#", QoS::AtMostOnce)], 4),
        now,
    );
    assert!(
        matches!(&got[..], [Packet::SubAck(a)] if a.reason_codes == [ReasonCode::UnspecifiedError, ReasonCode::Success])
    );

    // Read: the admin's publish to private/ reaches the admin but not v3 (subscribed to #).
    let (_, got) = admin.send(publish("private/x", "eyes only", QoS::AtMostOnce, 0), now);
    assert_eq!(publishes(&got).len(), 1);
    assert!(publishes(&v3.received(now)).is_empty());

    // Retained at subscribe time is judged as a delivery.
    admin.send(retained("private/r", "kept"), now);
    admin.received(now);
    let mut late = connect_as(&broker, V311, "late", None, now);
    let (_, got) = late.send(subscribe(&[("private/#", QoS::AtMostOnce)], 5), now);
    assert!(publishes(&got).is_empty(), "retained message withheld");

    // A will to a topic its client may not write is never published.
    let mut c = Connect::new(V311, "willer");
    c.will = Some(Will {
        topic: topic("secret/will"),
        payload: Bytes::from_static(b"x"),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Default::default(),
    });
    let (willer, _) = connect_with(&broker, c, now);
    willer.connection.end(now, true);
    assert!(publishes(&admin.received(now)).is_empty(), "will withheld");
    assert_eq!(broker.stats().denied_write.load(Ordering::Relaxed), 3);

    // New rules apply to existing connections at once.
    broker.set_access_control(None);
    let (_, got) = v5.send(publish("secret/x", "now allowed", QoS::AtLeastOnce, 6), now);
    assert!(matches!(&got[..], [Packet::PubAck(a)] if a.reason_code == ReasonCode::Success));
    assert_eq!(publishes(&admin.received(now)).len(), 1);
    assert_eq!(
        broker.stats().denied_read.load(Ordering::Relaxed),
        3,
        "v3 twice, late once"
    );
    assert_eq!(broker.stats().denied_subscribe.load(Ordering::Relaxed), 2);
}

/// Rules that judge only `$` topics (as the rules every broker applies without an ACL file):
/// publishing under `$` is refused, everything else allowed.
#[derive(Debug)]
struct DollarOnly;

impl midge_core::AccessControl for DollarOnly {
    fn allows(&self, _: &midge_core::Identity<'_>, topic: &str, _: midge_core::Access) -> bool {
        !topic.starts_with('$')
    }

    fn only_dollar_topics(&self) -> bool {
        true
    }
}

/// The broker skips asking `$`-only rules about other topics, but still asks them about `$`
/// topics, and rules installed after them judge every topic again at once.
#[test]
fn rules_for_dollar_topics_alone_still_judge_dollar_topics_and_give_way_to_full_rules() {
    let now = Instant::now();
    let broker = broker(BrokerConfig::default());
    broker.set_access_control(Some(Arc::new(DollarOnly)));
    let mut watcher = connect_as(&broker, V5, "watcher", Some("admin"), now);
    watcher.send(subscribe(&[("secret/#", QoS::AtMostOnce)], 1), now);
    let mut v5 = connect_as(&broker, V5, "v5", Some("bob"), now);
    let (_, got) = v5.send(publish("$SYS/x", "no", QoS::AtLeastOnce, 1), now);
    assert!(matches!(&got[..], [Packet::PubAck(a)] if a.reason_code == ReasonCode::NotAuthorized));
    let (_, got) = v5.send(publish("secret/x", "yes", QoS::AtLeastOnce, 2), now);
    assert!(matches!(&got[..], [Packet::PubAck(a)] if a.reason_code == ReasonCode::Success));
    assert_eq!(publishes(&watcher.received(now)).len(), 1);

    broker.set_access_control(Some(Arc::new(TestRules)));
    let (_, got) = v5.send(publish("secret/x", "no longer", QoS::AtLeastOnce, 3), now);
    assert!(matches!(&got[..], [Packet::PubAck(a)] if a.reason_code == ReasonCode::NotAuthorized));
    assert!(publishes(&watcher.received(now)).is_empty());

    broker.set_access_control(Some(Arc::new(DollarOnly)));
    let (_, got) = v5.send(publish("secret/x", "again", QoS::AtLeastOnce, 4), now);
    assert!(matches!(&got[..], [Packet::PubAck(a)] if a.reason_code == ReasonCode::Success));
    assert_eq!(publishes(&watcher.received(now)).len(), 1);
}

#[test]
fn invalid_credentials_are_refused_as_not_authorized() {
    let now = Instant::now();
    let broker = broker(BrokerConfig::default());
    for version in [V311, V5] {
        let mut c = Connect::new(version, "intruder");
        c.username = Some("bob".into());
        let link = Arc::new(TestLink::default());
        let mut out = Outbox::new(version);
        let refusal = broker
            .connect_with(c, midge_core::Credentials::Invalid, link, now, &mut out)
            .expect_err("refused");
        assert_eq!(refusal.reason, ReasonCode::NotAuthorized);
        let got = decode_all(&mut out);
        assert!(matches!(&got[..], [Packet::ConnAck(a)] if a.reason_code == ReasonCode::NotAuthorized));
    }
}

// The management interface (`admin.rs`): what the HTTP API asks of the broker.

#[test]
fn admin_disconnect_closes_with_0x98_publishes_the_will_unless_asked_not_to_and_keeps_the_session() {
    let now = Instant::now();
    let broker = broker(BrokerConfig::default());
    let mut watcher = watcher(&broker, now);
    let mut persistent = will_connect(V5, "kicked", None);
    persistent.properties.session_expiry_interval = Some(60);
    let (kicked, _) = connect_with(&broker, persistent, now);

    assert!(broker.disconnect_client("kicked", true, now));
    assert_eq!(*kicked.link.closed.lock(), Some(ReasonCode::AdministrativeAction));
    assert_eq!(publishes(&watcher.received(now)).len(), 1, "the will");
    let info = broker.session_info("kicked").unwrap();
    assert!(!info.connected && info.disconnected_at == Some(now));
    assert!(
        !broker.disconnect_client("kicked", true, now),
        "not connected any more"
    );
    // The connection's own end, when its task notices, changes nothing.
    kicked.connection.end(now, true);
    assert_eq!(publishes(&watcher.received(now)).len(), 0);

    let (quiet, _) = connect_with(&broker, will_connect(V311, "quiet", None), now);
    assert!(broker.disconnect_client("quiet", false, now));
    assert_eq!(publishes(&watcher.received(now)).len(), 0, "no will when asked");
    assert!(
        broker.session_info("quiet").is_none(),
        "a clean session ends with its connection"
    );
    drop(quiet);
    assert!(!broker.disconnect_client("nobody", true, now));
}

#[test]
fn admin_delete_session_drops_subscriptions_queue_and_will() {
    let now = Instant::now();
    let broker = broker(BrokerConfig::default());
    let mut watcher = watcher(&broker, now);
    let mut connect = will_connect(V5, "doomed", Some(30));
    connect.properties.session_expiry_interval = Some(u32::MAX);
    let (mut doomed, _) = connect_with(&broker, connect, now);
    doomed.send(subscribe(&[("jobs/#", QoS::AtLeastOnce)], 1), now);
    assert_eq!(broker.session_info("doomed").unwrap().subscriptions, ["jobs/#"]);
    assert_eq!(broker.client_ids().len(), 2);

    assert!(broker.delete_session("doomed"));
    assert_eq!(*doomed.link.closed.lock(), Some(ReasonCode::AdministrativeAction));
    assert!(broker.session_info("doomed").is_none());
    assert_eq!(broker.subscription_count(), 1, "only the watcher's");
    doomed.connection.end(now, true);
    broker.tick(now + Duration::from_secs(60));
    assert_eq!(
        publishes(&watcher.received(now)).len(),
        0,
        "no will, now or delayed"
    );
    assert!(!broker.delete_session("doomed"));
}

#[test]
fn admin_retained_publish_and_the_topic_tap() {
    let now = Instant::now();
    let broker = broker(BrokerConfig::default());
    let mut sub = connect(&broker, V311, "sub", now);
    sub.send(subscribe(&[("a/#", QoS::AtLeastOnce)], 1), now);
    let mut publisher = connect(&broker, V311, "pub", now);

    // Nothing counted while nobody watches.
    publisher.send(publish("a/1", "x", QoS::AtMostOnce, 0), now);
    assert!(broker.topic_activity().since.is_none());
    broker.watch_topics(Duration::from_secs(60), now);
    publisher.send(publish("a/1", "first", QoS::AtMostOnce, 0), now);
    publisher.send(publish("a/1", "second", QoS::AtMostOnce, 0), now);
    let report = broker.topic_activity();
    assert_eq!(report.topics.len(), 1);
    let (name, seen) = &report.topics[0];
    assert_eq!(
        (name.as_str(), seen.messages, &seen.last_payload[..]),
        ("a/1", 2, &b"second"[..])
    );
    // A minute later without a look, the tap switches itself off and forgets.
    publisher.send(
        publish("a/2", "late", QoS::AtMostOnce, 0),
        now + Duration::from_secs(61),
    );
    assert!(broker.topic_activity().topics.is_empty());

    let mut message = midge_core::Message::new(
        topic("a/state"),
        Bytes::from_static(b"on"),
        QoS::AtLeastOnce,
        true,
        midge_codec::properties::PublishProperties::default(),
        None,
        None,
    );
    assert_eq!(broker.publish_admin(message, now), 1);
    let got = sub.received(now);
    assert_eq!(publishes(&got).last().unwrap().topic.as_str(), "a/state");
    assert_eq!(broker.retained_matching("a/#").len(), 1);
    assert!(broker.delete_retained(&topic("a/state")));
    assert!(!broker.delete_retained(&topic("a/state")));
    assert!(broker.retained_matching("#").is_empty());
    message = midge_core::Message::new(
        topic("b"),
        Bytes::new(),
        QoS::AtMostOnce,
        false,
        midge_codec::properties::PublishProperties::default(),
        None,
        None,
    );
    assert_eq!(broker.publish_admin(message, now), 0);
}

/// The broker's own sessions (the cluster's, named with a leading U+0000 no client can
/// send) size their window by their own Receive Maximum: the limits set for clients would
/// cap all forwarding to other nodes at `max_inflight_messages` per round trip.
#[test]
fn the_brokers_own_sessions_are_not_held_to_the_client_inflight_limits() {
    let now = Instant::now();
    let config = BrokerConfig {
        max_inflight_messages: 2,
        max_inflight_bytes: 1,
        ..BrokerConfig::default()
    };
    let broker = broker(config);
    let mut limited = Connect::new(ProtocolVersion::V5, "client");
    limited.properties.receive_maximum = NonZeroU16::new(100);
    let (mut client, _) = connect_with(&broker, limited, now);
    let mut own = Connect::new(ProtocolVersion::V5, "\0cluster");
    own.properties.receive_maximum = NonZeroU16::new(100);
    let (mut internal, _) = connect_with(&broker, own, now);
    client.send(subscribe(&[("f", QoS::AtLeastOnce)], 1), now);
    internal.send(subscribe(&[("f", QoS::AtLeastOnce)], 1), now);
    let mut publisher = connect(&broker, V311, "pub", now);
    for i in 1..=10 {
        publisher.send(publish("f", "m", QoS::AtLeastOnce, i), now);
    }
    assert_eq!(
        publishes(&client.received(now)).len(),
        1,
        "max_inflight_bytes: one at a time"
    );
    assert_eq!(
        publishes(&internal.received(now)).len(),
        10,
        "its Receive Maximum alone"
    );
}

/// The will a persistent session's checkpoint carries: published by the node that takes the
/// session up because its connection's node was lost [MQTT-3.1.2-8] (at once with no delay;
/// not at all if its client connects again within the Will Delay Interval [MQTT-3.1.3-9]),
/// and never by a node the client itself moved to (its old node publishes it, if it should).
#[test]
fn a_lost_nodes_session_publishes_the_will_its_connection_left_waiting() {
    use midge_core::routes::{CheckpointWill, SessionCheckpoint};

    let now = Instant::now();
    let broker = broker(BrokerConfig::default());
    let mut watcher = connect(&broker, V5, "watcher", now);
    watcher.send(subscribe(&[("status/#", QoS::AtLeastOnce)], 1), now);
    let checkpoint = |client_id: &str, delay: u64| {
        let mut publish = Publish::new(topic(&format!("status/{client_id}")), "lost");
        publish.qos = QoS::AtLeastOnce;
        publish.packet_id = Some(pid(1));
        SessionCheckpoint {
            client_id: client_id.into(),
            expiry: Some(Duration::from_secs(600)),
            subscriptions: Vec::new(),
            will: Some(CheckpointWill {
                publish,
                delay: Duration::from_secs(delay),
                username: None,
                listener: 0,
            }),
        }
    };
    let topics = |watcher: &mut Client, now| -> Vec<String> {
        publishes(&watcher.received(now))
            .iter()
            .map(|p| p.topic.as_str().to_owned())
            .collect()
    };

    assert!(broker.adopt_lost_session(checkpoint("at-once", 0), now));
    assert_eq!(topics(&mut watcher, now), ["status/at-once"]);

    // Lost 10 s ago with a 30 s delay: due in 20 s, unless the client comes back first.
    let lost_at = now - Duration::from_secs(10);
    assert!(broker.adopt_lost_session(checkpoint("delayed", 30), lost_at));
    assert!(broker.adopt_lost_session(checkpoint("back", 30), lost_at));
    assert!(topics(&mut watcher, now).is_empty());
    let mut back = Connect::new(ProtocolVersion::V5, "back");
    back.clean_start = false;
    back.properties.session_expiry_interval = Some(600);
    let (_back, _) = connect_with(&broker, back, now);
    broker.tick(now + Duration::from_secs(21));
    assert_eq!(
        topics(&mut watcher, now + Duration::from_secs(21)),
        ["status/delayed"]
    );

    // A client that moved here: its will is not this node's to publish.
    assert!(broker.adopt_session(checkpoint("moved", 0), now));
    broker.tick(now + Duration::from_secs(60));
    assert!(topics(&mut watcher, now + Duration::from_secs(60)).is_empty());
}
