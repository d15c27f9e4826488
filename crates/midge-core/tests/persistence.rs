//! Persistence in the core: what is written to the journal, that replies wait for it, and
//! that a broker rebuilt from the store carries on where the old one stopped — queues,
//! packet identifiers in flight, QoS 2 exchanges, retained messages, wills and expiry.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use midge_codec::properties::WillProperties;
use midge_codec::{Ack, Connect, Packet, QoS, Will};
use midge_core::{Broker, BrokerConfig};
use midge_store::{FsyncPolicy, Journal, MemoryStore, Snapshot, Store};

mod support;

use support::*;

fn persistent_broker(store: &Arc<MemoryStore>) -> Arc<Broker> {
    let snapshot = Snapshot::load(store.as_ref()).unwrap();
    let journal = Journal::start(store.clone(), FsyncPolicy::Never, snapshot.next_message_id);
    let broker = Broker::with_journal(BrokerConfig::default(), 7, journal);
    broker.restore(snapshot, Instant::now());
    broker
}

/// Commits everything written so far and stops the journal, as a crash after the last commit
/// would leave the store.
fn crash(broker: Arc<Broker>) {
    broker.journal().unwrap().close();
}

fn persistent_connect(id: &str) -> Connect {
    let mut connect = Connect::new(V311, id);
    connect.clean_start = false;
    connect
}

fn keys(store: &MemoryStore) -> Vec<String> {
    let mut keys = Vec::new();
    store
        .scan(&mut |key, _| {
            keys.push(String::from_utf8_lossy(key).into_owned());
            Ok(())
        })
        .unwrap();
    keys
}

#[test]
fn replies_wait_for_what_they_acknowledge_and_clean_sessions_cost_nothing() {
    let now = Instant::now();
    let store = Arc::new(MemoryStore::new());
    let broker = persistent_broker(&store);

    let mut clean = connect(&broker, V311, "clean", now);
    clean.send(subscribe(&[("t", QoS::AtLeastOnce)], 1), now);
    assert_eq!(clean.out.durable_after(), 0, "a clean session is never written");
    let mut publisher = connect(&broker, V311, "pub", now);
    publisher.send(publish("t", "x", QoS::AtLeastOnce, 1), now);
    assert_eq!(
        publisher.out.durable_after(),
        0,
        "a message only for clean sessions is not stored"
    );

    let (mut sub, _) = connect_with(&broker, persistent_connect("sub"), now);
    let after_connect = sub.out.durable_after();
    assert!(after_connect > 0, "CONNACK waits for the session record");
    sub.send(subscribe(&[("t", QoS::AtLeastOnce)], 2), now);
    assert!(
        sub.out.durable_after() > after_connect,
        "SUBACK waits for the subscription"
    );

    publisher.send(publish("t", "y", QoS::AtLeastOnce, 2), now);
    let puback_after = publisher.out.durable_after();
    assert!(
        puback_after > sub.out.durable_after(),
        "PUBACK waits for the stored copy"
    );
    let before = sub.out.durable_after();
    let got = sub.received(now);
    assert_eq!(sub.out.durable_after(), before, "a QoS 1 PUBLISH is sent at once");
    let delivered = publishes(&got);
    assert_eq!(delivered.len(), 1);
    sub.send(Packet::PubAck(Ack::new(delivered[0].packet_id.unwrap())), now);
    // At QoS 2 the PUBLISH waits until its packet identifier is stored.
    let (mut exact, _) = connect_with(&broker, persistent_connect("exact"), now);
    exact.send(subscribe(&[("q2", QoS::ExactlyOnce)], 1), now);
    publisher.send(publish("q2", "z", QoS::ExactlyOnce, 3), now);
    let before = exact.out.durable_after();
    let got = exact.received(now);
    assert!(
        exact.out.durable_after() > before,
        "the QoS 2 PUBLISH waits for its packet identifier"
    );
    let id = publishes(&got)[0].packet_id.unwrap();
    exact.send(Packet::PubRec(Ack::new(id)), now);
    exact.send(Packet::PubComp(Ack::new(id)), now);
    publisher.send(Packet::PubRel(Ack::new(pid(3))), now);

    // The body goes once no session holds the message any more.
    for delivered in publishes(&clean.received(now)) {
        clean.send(Packet::PubAck(Ack::new(delivered.packet_id.unwrap())), now);
    }

    crash(broker);
    let keys = keys(&store);
    assert!(
        keys.iter().all(|k| !k.starts_with('M')),
        "an acknowledged body is deleted: {keys:?}"
    );
    assert!(keys.iter().all(|k| !k.contains("clean")), "{keys:?}");
    assert!(keys.iter().all(|k| !k.contains("exactq")), "{keys:?}");
    assert_eq!(
        keys.iter().filter(|k| k.contains("sub")).count(),
        2,
        "session and subscription: {keys:?}"
    );
}

#[test]
fn a_restored_broker_resends_in_flight_with_the_same_ids_then_the_queue_in_order() {
    let now = Instant::now();
    let store = Arc::new(MemoryStore::new());
    let broker = persistent_broker(&store);
    let (mut sub, _) = connect_with(&broker, persistent_connect("sub"), now);
    sub.send(subscribe(&[("q/#", QoS::ExactlyOnce)], 1), now);
    let mut publisher = connect(&broker, V311, "pub", now);
    for (n, payload) in ["one", "two"].into_iter().enumerate() {
        publisher.send(publish("q/a", payload, QoS::AtLeastOnce, n as u16 + 1), now);
    }
    let got = sub.received(now);
    let first: Vec<_> = publishes(&got)
        .iter()
        .map(|p| (p.packet_id, p.payload.clone()))
        .collect();
    assert_eq!(first.len(), 2);
    sub.connection.end(now, true);
    for (n, payload) in ["three", "four", "five"].into_iter().enumerate() {
        publisher.send(publish("q/b", payload, QoS::ExactlyOnce, n as u16 + 10), now);
    }
    publisher.send(retained("r/1", "kept"), now);
    crash(broker);

    let broker = persistent_broker(&store);
    let (mut sub, got) = connect_with(&broker, persistent_connect("sub"), now);
    let Packet::ConnAck(ack) = &got[0] else {
        panic!("{got:?}")
    };
    assert!(ack.session_present, "[MQTT-3.2.2-3]");
    let mut got = got;
    got.extend(sub.received(now));
    let all = publishes(&got);
    let resent: Vec<_> = all
        .iter()
        .take_while(|p| p.dup)
        .map(|p| (p.packet_id, p.payload.clone()))
        .collect();
    assert_eq!(
        resent, first,
        "[MQTT-4.4.0-1] in flight again with DUP, same identifiers"
    );
    let queued: Vec<_> = all[resent.len()..]
        .iter()
        .map(|p| {
            assert!(
                !p.dup && !first.iter().any(|f| f.0 == p.packet_id),
                "[MQTT-2.2.1-3]"
            );
            String::from_utf8(p.payload.to_vec()).unwrap()
        })
        .collect();
    assert_eq!(queued, ["three", "four", "five"], "then the queue, in order");

    let mut late = connect(&broker, V311, "late", now);
    let (_, got) = late.send(subscribe(&[("r/#", QoS::AtMostOnce)], 1), now);
    assert_eq!(publishes(&got).len(), 1, "the retained message survived");
}

#[test]
fn a_qos2_exchange_survives_a_restart_on_both_sides() {
    let now = Instant::now();
    let store = Arc::new(MemoryStore::new());
    let broker = persistent_broker(&store);
    let (mut sub, _) = connect_with(&broker, persistent_connect("sub"), now);
    sub.send(subscribe(&[("t", QoS::ExactlyOnce)], 1), now);
    let (mut publisher, _) = connect_with(&broker, persistent_connect("pub"), now);
    let (_, got) = publisher.send(publish("t", "once", QoS::ExactlyOnce, 7), now);
    assert!(matches!(&got[..], [Packet::PubRec(_)]));
    let got = sub.received(now);
    let id = publishes(&got)[0].packet_id.unwrap();
    let (_, got) = sub.send(Packet::PubRec(Ack::new(id)), now);
    assert!(matches!(&got[..], [Packet::PubRel(_)]));
    crash(broker);

    let broker = persistent_broker(&store);
    // The publisher never saw its PUBREC and sends the message again: acknowledged, not
    // delivered a second time [MQTT-4.3.3-3].
    let (mut publisher, _) = connect_with(&broker, persistent_connect("pub"), now);
    let Packet::Publish(mut again) = publish("t", "once", QoS::ExactlyOnce, 7) else {
        unreachable!()
    };
    again.dup = true;
    let (_, got) = publisher.send(Packet::Publish(again), now);
    assert!(matches!(&got[..], [Packet::PubRec(_)]));
    let (_, got) = publisher.send(Packet::PubRel(Ack::new(pid(7))), now);
    assert!(matches!(&got[..], [Packet::PubComp(a)] if a.reason_code == midge_codec::ReasonCode::Success));

    // The subscriber had sent PUBREC: it gets PUBREL again, not the message.
    let (mut sub, got) = connect_with(&broker, persistent_connect("sub"), now);
    assert!(publishes(&got).is_empty(), "{got:?}");
    assert!(
        matches!(&got[1..], [Packet::PubRel(a)] if a.packet_id == id),
        "{got:?}"
    );
    sub.send(Packet::PubComp(Ack::new(id)), now);
    crash(broker);
    let keys = keys(&store);
    assert!(
        keys.iter()
            .all(|k| !k.starts_with('M') && !k.contains("subq") && !k.contains("pubi")),
        "{keys:?}"
    );
}

#[test]
fn a_delayed_will_and_the_expiry_carry_over_a_restart() {
    let start = Instant::now();
    let store = Arc::new(MemoryStore::new());
    let broker = persistent_broker(&store);
    let mut watcher = connect(&broker, V311, "watcher", start);
    watcher.send(subscribe(&[("wills/#", QoS::AtMostOnce)], 1), start);

    let mut connect = Connect::new(V5, "dev");
    connect.properties.session_expiry_interval = Some(3600);
    let mut properties = WillProperties::default();
    properties.will_delay_interval = Some(600);
    connect.will = Some(Will {
        topic: topic("wills/dev"),
        payload: "gone".into(),
        qos: QoS::AtMostOnce,
        retain: false,
        properties,
    });
    connect_with(&broker, connect, start);
    crash(broker);

    // The broker comes back while the device's connection was still up at the crash: its
    // will waits the delay from now, and is published then.
    let broker = persistent_broker(&store);
    assert_eq!(broker.session_count(), 1);
    let now = Instant::now();
    let mut watcher = support::connect(&broker, V311, "watcher2", now);
    watcher.send(subscribe(&[("wills/#", QoS::AtMostOnce)], 1), now);
    broker.tick(now + Duration::from_secs(599));
    assert!(publishes(&watcher.received(now)).is_empty());
    broker.tick(now + Duration::from_secs(601));
    let got = watcher.received(now);
    assert_eq!(publishes(&got).len(), 1, "{got:?}");
    broker.tick(now + Duration::from_secs(3601));
    assert_eq!(broker.session_count(), 1, "only the watcher is left");
    crash(broker);
    assert!(
        keys(&store).iter().all(|k| !k.contains("dev")),
        "{:?}",
        keys(&store)
    );
}

/// Receives (and acknowledges) until `count` messages came, in as many drains as it takes.
fn collect(client: &mut Client, count: usize, now: Instant, first: Vec<Packet>) -> Vec<String> {
    let mut got = Vec::new();
    let mut packets = first;
    for _ in 0..1000 {
        let mut more = Vec::new();
        for publish in publishes(&packets) {
            got.push(String::from_utf8(publish.payload.to_vec()).unwrap());
            // Each acknowledgement opens the window for what comes next.
            more.extend(
                client
                    .send(Packet::PubAck(Ack::new(publish.packet_id.unwrap())), now)
                    .1,
            );
        }
        if got.len() >= count {
            break;
        }
        more.extend(client.received(now));
        packets = more;
    }
    got
}

#[test]
fn an_absent_clients_long_queue_is_kept_in_the_store_not_in_memory() {
    let now = Instant::now();
    let store = Arc::new(MemoryStore::new());
    let broker = persistent_broker(&store);
    let (mut sub, _) = connect_with(&broker, persistent_connect("away"), now);
    sub.send(subscribe(&[("q", QoS::AtLeastOnce)], 1), now);
    sub.connection.end(now, false);
    let mut publisher = connect(&broker, V311, "pub", now);
    let total = midge_core::OFFLINE_QUEUE_IN_MEMORY + 150;
    let payloads: Vec<String> = (0..total).map(|n| format!("m{n}")).collect();
    for (n, payload) in payloads.iter().enumerate() {
        let Packet::Publish(mut p) = publish("q", "", QoS::AtLeastOnce, (n % 60000 + 1) as u16) else {
            unreachable!()
        };
        p.payload = payload.clone().into();
        publisher.send(Packet::Publish(p), now);
    }
    let census = broker.census();
    assert_eq!(census.queued, total);
    assert_eq!(census.queued_on_disk, 150, "only the first ones stay in memory");

    // Back online, it gets every one in order, read back from the store as it drains; what
    // is published meanwhile queues behind them.
    let (mut sub, got) = connect_with(&broker, persistent_connect("away"), now);
    let mut expected = payloads.clone();
    for n in 0..5u16 {
        let Packet::Publish(mut p) = publish("q", "", QoS::AtLeastOnce, 60_001 + n) else {
            unreachable!()
        };
        p.payload = format!("late{n}").into();
        publisher.send(Packet::Publish(p), now);
        expected.push(format!("late{n}"));
    }
    assert_eq!(collect(&mut sub, total + 5, now, got), expected);
    assert_eq!(broker.census().queued, 0);

    // The same after a restart: the store's long queue is not all read into memory.
    sub.connection.end(now, false);
    for (n, payload) in payloads.iter().enumerate() {
        let Packet::Publish(mut p) = publish("q", "", QoS::AtLeastOnce, (n % 60000 + 1) as u16) else {
            unreachable!()
        };
        p.payload = payload.clone().into();
        publisher.send(Packet::Publish(p), now);
    }
    crash(broker);
    let broker = persistent_broker_bounded(&store);
    let census = broker.census();
    assert_eq!(census.queued, total);
    assert_eq!(census.queued_on_disk, 150);
    let (mut sub, got) = connect_with(&broker, persistent_connect("away"), now);
    assert_eq!(collect(&mut sub, total, now, got), payloads);
    crash(broker);
    assert!(
        keys(&store).iter().all(|k| !k.starts_with('M')),
        "every body deleted once delivered"
    );
}

fn persistent_broker_bounded(store: &Arc<MemoryStore>) -> Arc<Broker> {
    let snapshot = Snapshot::load_bounded(store.as_ref(), midge_core::OFFLINE_QUEUE_IN_MEMORY).unwrap();
    let journal = Journal::start(store.clone(), FsyncPolicy::Never, snapshot.next_message_id);
    let broker = Broker::with_journal(BrokerConfig::default(), 7, journal);
    broker.restore(snapshot, Instant::now());
    broker
}
