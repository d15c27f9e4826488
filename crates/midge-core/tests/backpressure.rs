//! Flow control from subscribers to publishers (`midge_core::backpressure`), driven packet by
//! packet with a clock the test controls: a publisher that fills a connected subscriber's queue
//! is not read until the queue drains, a stalled subscriber holds nobody for long, and offline
//! sessions exert no pressure.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use midge_codec::{Connect, QoS};
use midge_core::backpressure::{STALLED_AFTER, STALLED_AFTER_BUSY};
use midge_core::{BrokerConfig, DropReason};
use support::{V5, V311, broker, connect, connect_with, puback, publish, publishes, subscribe};

/// A queue of 10 (pressure from 5 queued messages, released at 2).
fn config() -> BrokerConfig {
    BrokerConfig {
        max_queued_messages: 10,
        max_inflight_messages: 1,
        ..BrokerConfig::default()
    }
}

#[test]
fn a_publisher_that_fills_a_subscribers_queue_waits_until_it_drains() {
    let broker = broker(config());
    let now = Instant::now();
    let mut subscriber = connect(&broker, V311, "subscriber", now);
    subscriber.send(subscribe(&[("t", QoS::AtLeastOnce)], 1), now);
    let mut publisher = connect(&broker, V5, "publisher", now);

    // Nothing is taken from the subscriber's queue: it fills up to the pressure mark.
    let mut sent = 0;
    while publisher.connection.read_paused(now).is_none() {
        sent += 1;
        assert!(sent <= 5, "the publisher was never paused");
        publisher.send(publish("t", "m", QoS::AtLeastOnce, sent), now);
    }
    assert_eq!(sent, 5, "paused at half of max_queued_messages");
    let deadline = publisher.connection.read_paused(now).unwrap();
    assert_eq!(
        deadline,
        now + STALLED_AFTER,
        "asks again when the queue would count as stalled"
    );

    // The subscriber takes one message (its window is one): still congested.
    let later = now + Duration::from_millis(10);
    let wakes = publisher.link.wakes.load(Ordering::SeqCst);
    let got = subscriber.received(later);
    assert_eq!(publishes(&got).len(), 1);
    assert!(publisher.connection.read_paused(later).is_some());

    // It acknowledges its way down to two queued: the publisher is woken and read again.
    for id in 1..=3 {
        let (_, got) = subscriber.send(puback(id), later);
        assert_eq!(publishes(&got).len(), 1);
    }
    assert!(
        publisher.link.wakes.load(Ordering::SeqCst) > wakes,
        "the drained subscriber woke the publisher"
    );
    assert_eq!(publisher.connection.read_paused(later), None);
    assert_eq!(broker.stats().dropped_total(), 0, "nothing was dropped");
}

/// A paused publisher woken by a drain, but read only after another publisher filled the queue
/// again, is woken by the next drain too: it does not wait for the stall deadline, which every
/// drain pushes back (seen under load: one publisher of eight held for five seconds).
#[test]
fn a_publisher_woken_too_late_is_woken_again_by_the_next_drain() {
    let broker = broker(config());
    let now = Instant::now();
    let mut subscriber = connect(&broker, V311, "subscriber", now);
    subscriber.send(subscribe(&[("t", QoS::AtLeastOnce)], 1), now);
    let mut slow = connect(&broker, V5, "slow", now);
    let mut fast = connect(&broker, V5, "fast", now);
    for id in 1..=5 {
        slow.send(publish("t", "m", QoS::AtLeastOnce, id), now);
    }
    assert!(slow.connection.read_paused(now).is_some(), "slow paused");

    // The subscriber drains to two queued: `slow` is woken. Before it is read, `fast` fills
    // the queue up to the mark again.
    let later = now + Duration::from_millis(10);
    let mut acked = 0;
    let mut ack = |subscriber: &mut support::Client, at| {
        acked += 1;
        subscriber.send(puback(acked), at)
    };
    subscriber.received(later);
    for _ in 1..=3 {
        ack(&mut subscriber, later);
    }
    let mut id = 0;
    while fast.connection.read_paused(later).is_none() {
        id += 1;
        assert!(id <= 5, "fast was never paused");
        fast.send(publish("t", "m", QoS::AtLeastOnce, id), later);
    }
    assert!(
        slow.connection.read_paused(later).is_some(),
        "slow is read, finds the queue congested again, and waits"
    );

    // The next drain wakes both.
    let wakes = slow.link.wakes.load(Ordering::SeqCst);
    let then = later + Duration::from_millis(10);
    for _ in 1..=3 {
        ack(&mut subscriber, then);
    }
    assert!(
        slow.link.wakes.load(Ordering::SeqCst) > wakes,
        "the second drain woke the publisher it had woken too early before"
    );
    assert_eq!(slow.connection.read_paused(then), None);
    assert_eq!(fast.connection.read_paused(then), None);
}

#[test]
fn a_stalled_subscriber_holds_its_publisher_once_and_then_drops_counted() {
    let broker = broker(config());
    let now = Instant::now();
    let mut stalled = connect(&broker, V311, "stalled", now);
    stalled.send(subscribe(&[("t", QoS::AtLeastOnce)], 1), now);
    let mut publisher = connect(&broker, V5, "publisher", now);
    for id in 1..=5 {
        publisher.send(publish("t", "m", QoS::AtLeastOnce, id), now);
    }
    assert!(publisher.connection.read_paused(now).is_some());

    // Nothing taken for STALLED_AFTER: the publisher is read again, and is not paused again
    // by that subscriber while it stays stalled; its queue limit drops the excess, counted.
    let later = now + STALLED_AFTER;
    assert_eq!(publisher.connection.read_paused(later), None);
    for id in 6..=30 {
        publisher.send(publish("t", "m", QoS::AtLeastOnce, id), later);
        assert_eq!(
            publisher.connection.read_paused(later),
            None,
            "paused again at message {id}"
        );
    }
    // 10 queued plus the one free window slot; the rest dropped.
    assert_eq!(broker.stats().dropped_count(DropReason::QueueFull), 30 - 11);

    // Once it drains, its queue exerts pressure again.
    let mut id = 1;
    let mut drained = stalled.received(later);
    while !publishes(&drained).is_empty() {
        drained = stalled.send(puback(id), later).1;
        id += 1;
    }
    for id in 31..=35 {
        publisher.send(publish("t", "m", QoS::AtLeastOnce, id), later);
    }
    assert!(
        publisher.connection.read_paused(later).is_some(),
        "pressure again after draining"
    );
}

/// A subscriber whose connection was woken and has not run since waits for the broker, not
/// for its client: it is not taken for stalled after `STALLED_AFTER` (its messages would be
/// dropped), only after `STALLED_AFTER_BUSY`; meanwhile the publisher is looked at again
/// shortly, never at once.
#[test]
fn a_subscriber_the_broker_has_not_run_yet_is_not_taken_for_stalled() {
    let broker = broker(config());
    let now = Instant::now();
    let mut busy = connect(&broker, V311, "busy", now);
    busy.send(subscribe(&[("t", QoS::AtLeastOnce)], 1), now);
    let mut publisher = connect(&broker, V5, "publisher", now);
    for id in 1..=5 {
        publisher.send(publish("t", "m", QoS::AtLeastOnce, id), now);
    }
    busy.link.pending.store(true, Ordering::Relaxed);
    let later = now + STALLED_AFTER;
    let again = publisher
        .connection
        .read_paused(later)
        .expect("still held: the wait is the broker's");
    assert!(again > later, "looked at again later, not at once");
    assert!(
        again <= later + Duration::from_millis(50),
        "and soon: {:?}",
        again - later
    );
    assert_eq!(broker.stats().dropped_count(DropReason::QueueFull), 0);

    // A connection that never runs holds nobody for ever.
    assert_eq!(publisher.connection.read_paused(now + STALLED_AFTER_BUSY), None);

    // Once its connection has run and still took nothing, the usual rule applies at once.
    let mut fresh = connect(&broker, V311, "fresh", now);
    fresh.send(subscribe(&[("u", QoS::AtLeastOnce)], 1), now);
    for id in 1..=5 {
        publisher.send(publish("u", "m", QoS::AtLeastOnce, 100 + id), now);
    }
    assert!(publisher.connection.read_paused(now).is_some());
    assert_eq!(
        publisher.connection.read_paused(later),
        None,
        "stalled: its connection ran"
    );
}

#[test]
fn an_offline_session_exerts_no_pressure_and_a_disconnect_releases_its_publishers() {
    let broker = broker(config());
    let now = Instant::now();
    let mut connect_away = Connect::new(V311, "away");
    connect_away.clean_start = false;
    let (mut away, _) = connect_with(&broker, connect_away, now);
    away.send(subscribe(&[("t", QoS::AtLeastOnce)], 1), now);
    let mut leaving = connect(&broker, V311, "leaving", now);
    leaving.send(subscribe(&[("u", QoS::AtLeastOnce)], 1), now);
    away.connection.end(now, false);

    let mut publisher = connect(&broker, V5, "publisher", now);
    for id in 1..=20 {
        publisher.send(publish("t", "m", QoS::AtLeastOnce, id), now);
        assert_eq!(
            publisher.connection.read_paused(now),
            None,
            "offline queue paused at {id}"
        );
    }

    for id in 1..=5 {
        publisher.send(publish("u", "m", QoS::AtLeastOnce, id), now);
    }
    assert!(publisher.connection.read_paused(now).is_some());
    let wakes = publisher.link.wakes.load(Ordering::SeqCst);
    leaving.connection.end(now, false);
    assert!(
        publisher.link.wakes.load(Ordering::SeqCst) > wakes,
        "the disconnect woke the publisher"
    );
    assert_eq!(publisher.connection.read_paused(now), None);
}

#[test]
fn a_client_that_takes_no_messages_for_now_holds_no_publisher() {
    let broker = broker(config());
    let now = Instant::now();
    let mut sleeper = connect(&broker, V311, "sleeper", now);
    sleeper.send(subscribe(&[("t", QoS::AtLeastOnce)], 1), now);
    let mut publisher = connect(&broker, V5, "publisher", now);
    for id in 1..=5 {
        publisher.send(publish("t", "m", QoS::AtLeastOnce, id), now);
    }
    assert!(publisher.connection.read_paused(now).is_some());

    // It goes to sleep (MQTT-SN): the waiting publisher is released and not held again.
    let wakes = publisher.link.wakes.load(Ordering::SeqCst);
    sleeper.connection.set_taking_messages(false);
    assert!(publisher.link.wakes.load(Ordering::SeqCst) > wakes);
    assert_eq!(publisher.connection.read_paused(now), None);
    for id in 6..=9 {
        publisher.send(publish("t", "m", QoS::AtLeastOnce, id), now);
        assert_eq!(
            publisher.connection.read_paused(now),
            None,
            "held by a sleeper at {id}"
        );
    }
    assert_eq!(
        broker.stats().dropped_total(),
        0,
        "its queue buffers within its limit"
    );

    // Awake again, its full queue holds publishers as any other.
    sleeper.connection.set_taking_messages(true);
    publisher.send(publish("t", "m", QoS::AtLeastOnce, 10), now);
    assert!(publisher.connection.read_paused(now).is_some());
}
