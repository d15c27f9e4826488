//! The broker's logic under clients that act at the same moment from different threads, as
//! the runtime's worker threads do: what one client sees must not depend on how the two
//! interleave.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

mod support;

use std::sync::Barrier;
use std::time::Instant;

use midge_codec::{Packet, QoS};
use midge_core::BrokerConfig;
use support::{V5, V311, broker, connect, publishes, retained, subscribe};

/// A SUBSCRIBE that races a retained PUBLISH on its topic gets that message exactly once (as
/// the retained copy sent after the SUBACK, or live; never both, never neither), and never the
/// value it replaced after it [MQTT-3.3.1-6] [MQTT-3.8.4-4].
#[test]
fn a_subscribe_racing_a_retained_publish_gets_the_message_once_and_last() {
    let broker = broker(BrokerConfig::default());
    let now = Instant::now();
    let mut publisher = connect(&broker, V311, "publisher", now);
    let mut subscriber = connect(&broker, V5, "subscriber", now);
    let rounds = 2000;
    for round in 0..rounds {
        let topic = format!("race/{round}");
        publisher.send(retained(&topic, "old"), now);
        let start = Barrier::new(2);
        let (_, mut seen) = std::thread::scope(|scope| {
            scope.spawn(|| {
                start.wait();
                publisher.send(retained(&topic, "new"), now)
            });
            start.wait();
            subscriber.send(subscribe(&[(&topic, QoS::AtMostOnce)], 1), now)
        });
        seen.extend(subscriber.received(now));
        assert!(
            matches!(seen.first(), Some(Packet::SubAck(_))),
            "round {round}: {seen:?}"
        );
        let values: Vec<&[u8]> = publishes(&seen)
            .iter()
            .filter(|p| p.topic.as_str() == topic)
            .map(|p| &p.payload[..])
            .collect();
        let copies = values.iter().filter(|v| **v == b"new").count();
        assert_eq!(
            copies, 1,
            "round {round}: the new value arrived {copies} times: {values:?}"
        );
        assert_eq!(
            values.last(),
            Some(&&b"new"[..]),
            "round {round}: ends on a stale value: {values:?}"
        );
    }
}

/// CONNECTs with one client identifier from many threads at once, some starting clean and
/// some resuming, while the session is taken over for another node (a cluster's claim) now
/// and then: at most one connection is left open, and it is the one the session holds. A
/// connection that attached between another's look at the session and its own, or to a
/// session just removed, used to stay open with no session to take it over
/// [MQTT-3.1.4-3].
#[test]
fn concurrent_connects_with_one_identifier_leave_at_most_the_sessions_own_connection() {
    use std::sync::Arc;

    use midge_codec::Connect;
    use support::TestLink;

    let broker = broker(BrokerConfig::default());
    let now = Instant::now();
    for round in 0..200 {
        const CONNECTS: usize = 6;
        let barrier = Barrier::new(CONNECTS + 1);
        let accepted: Vec<Option<(Arc<TestLink>, midge_core::Connection)>> = std::thread::scope(|scope| {
            let taking_over = scope.spawn(|| {
                barrier.wait();
                for _ in 0..3 {
                    broker.take_over_client_and_queue("same", now);
                    std::thread::yield_now();
                }
            });
            let connecting: Vec<_> = (0..CONNECTS)
                .map(|n| {
                    let (broker, barrier) = (&broker, &barrier);
                    scope.spawn(move || {
                        let mut connect = Connect::new(if n % 2 == 0 { V5 } else { V311 }, "same");
                        connect.clean_start = n % 3 == 0;
                        if connect.protocol.is_v5() {
                            connect.properties.session_expiry_interval = Some(60);
                        }
                        let link = Arc::new(TestLink::default());
                        let mut out = midge_core::Outbox::new(connect.protocol);
                        barrier.wait();
                        broker
                            .connect(connect, link.clone(), now, &mut out)
                            .ok()
                            .map(|connection| (link, connection))
                    })
                })
                .collect();
            taking_over.join().unwrap();
            connecting
                .into_iter()
                .map(|thread| thread.join().unwrap())
                .collect()
        });
        let open: Vec<&Arc<TestLink>> = accepted
            .iter()
            .flatten()
            .map(|(link, _)| link)
            .filter(|link| link.closed.lock().is_none())
            .collect();
        assert!(open.len() <= 1, "round {round}: {} connections open", open.len());
        if let Some(link) = open.first() {
            let info = broker.session_info("same");
            assert!(
                info.as_ref().is_some_and(|info| info.connected),
                "round {round}: the open connection {link:p} has no session ({info:?}; {} accepted)",
                accepted.iter().flatten().count()
            );
        }
    }
}
