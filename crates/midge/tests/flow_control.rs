//! Flow control from subscribers back to publishers (`midge_core::backpressure`), against the
//! running broker: a publisher faster than its subscriber is slowed to the subscriber's pace
//! instead of the broker dropping what its queue cannot hold.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

mod support;

use std::thread;
use std::time::Duration;

use midge_codec::{Packet, ProtocolVersion, QoS};
use support::packets::{pid, puback, publish};
use support::{Midge, RawClient};

const MESSAGES: u32 = 5000;

/// A QoS 1 publisher sending flat out, without waiting for acknowledgements, to a subscriber
/// that reads about ten thousand messages a second (it pauses 2 ms every 20), with a queue of
/// 100 messages: without flow control the queue overflows within the first hundred messages
/// and the broker drops most of the rest. With it every message arrives, in order, and the
/// broker counts no drop.
#[test]
fn a_fast_publisher_is_paced_to_a_slow_subscriber_and_nothing_is_lost() {
    let midge = Midge::start("max_queued_messages 100\nmax_inflight_messages 20");
    let addr = midge.addr();
    let mut subscriber = RawClient::session(addr, ProtocolVersion::V311, "slow");
    subscriber.subscribe(&[("paced/#", QoS::AtLeastOnce)]);

    let publisher = thread::spawn(move || {
        let mut publisher = RawClient::session(addr, ProtocolVersion::V5, "fast");
        for n in 0..MESSAGES {
            let id = u16::try_from(n % 60_000 + 1).unwrap();
            publisher.send(&publish(
                "paced/x",
                n.to_be_bytes().to_vec(),
                QoS::AtLeastOnce,
                id,
            ));
        }
        // Every PUBACK, with a success code: nothing refused for a full queue.
        let mut acked = 0;
        while acked < MESSAGES {
            match publisher.recv_timeout(Duration::from_secs(10)) {
                Ok(Some(Packet::PubAck(ack))) => {
                    assert!(!ack.reason_code.is_error(), "PUBACK {:?}", ack.reason_code);
                    acked += 1;
                }
                other => panic!("publisher: expected PUBACK {acked}, got {other:?}"),
            }
        }
    });

    for expected in 0..MESSAGES {
        let message = match subscriber.recv_timeout(Duration::from_secs(10)) {
            Ok(Some(Packet::Publish(p))) => p,
            other => panic!("subscriber: expected message {expected}, got {other:?}"),
        };
        let n = u32::from_be_bytes(message.payload[..4].try_into().unwrap());
        assert_eq!(n, expected, "messages lost or out of order");
        subscriber.send(&puback(message.packet_id.unwrap_or(pid(1))));
        if n % 20 == 19 {
            thread::sleep(Duration::from_millis(2));
        }
    }
    publisher.join().expect("publisher");
    assert!(
        midge
            .try_wait_for_log("dropped messages for client", Duration::from_millis(300))
            .is_none(),
        "the broker reported drops: {:?}",
        midge.logs()
    );
}
