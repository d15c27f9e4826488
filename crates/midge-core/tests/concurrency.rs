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
