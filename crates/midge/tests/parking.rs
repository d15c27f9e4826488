//! Idle connections are parked off the runtime (`crates/midge-server/src/parking.rs`) after a
//! second without traffic, and a parked client must see no difference: messages reach it, its
//! packets are answered, its keep-alive is enforced, a takeover or a shutdown closes it with
//! the right reason, and its will is published when it dies. `$SYS/broker/connections/parked`
//! shows how many connections are parked, so each test first proves its clients were.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

#[path = "support/rumqttc5.rs"]
mod rumqttc5;
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use midge_codec::{Packet, ProtocolVersion, QoS, ReasonCode};
use rumqttc5::Client5;
use support::{Midge, RawClient, packets};

/// Longer than the idle time after which a connection is parked, plus the broker's tick.
const IDLE: Duration = Duration::from_millis(2_500);

/// Waits until `$SYS/broker/connections/parked` reports at least `at_least`; returns the count.
fn wait_parked(addr: SocketAddr, at_least: u64) -> u64 {
    let mut monitor = RawClient::session(addr, ProtocolVersion::V311, "parking-monitor");
    monitor.subscribe(&[("$SYS/broker/connections/parked", QoS::AtMostOnce)]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let publish = monitor.recv_publish();
        let parked: u64 = std::str::from_utf8(&publish.payload).unwrap().parse().unwrap();
        if parked >= at_least {
            return parked;
        }
        assert!(
            Instant::now() < deadline,
            "only {parked} connections parked, expected {at_least}"
        );
    }
}

#[test]
fn parked_clients_receive_messages_and_are_answered() {
    let midge = Midge::start("sys_interval 1");
    let addr = midge.addr();
    let mut subscriber = RawClient::session(addr, ProtocolVersion::V5, "parked-sub");
    subscriber.subscribe(&[("parked/t", QoS::AtLeastOnce)]);
    let mut publisher = RawClient::session(addr, ProtocolVersion::V311, "parked-pub");
    std::thread::sleep(IDLE);
    wait_parked(addr, 2);

    // A message for the parked subscriber reaches it, and its PUBACK is taken.
    publisher.send(&packets::publish("parked/t", "one", QoS::AtLeastOnce, 1));
    assert!(matches!(publisher.recv(), Packet::PubAck(_)));
    let delivered = subscriber.recv_publish();
    assert_eq!(&delivered.payload[..], b"one");
    let id = delivered.packet_id.expect("QoS 1 has an id");
    subscriber.send(&packets::puback(id));

    // Both park again, then the parked publisher's packets are read and answered.
    std::thread::sleep(IDLE);
    wait_parked(addr, 2);
    publisher.send(&Packet::PingReq);
    assert!(matches!(publisher.recv(), Packet::PingResp));
    publisher.send(&packets::publish("parked/t", "two", QoS::AtLeastOnce, 2));
    assert!(matches!(publisher.recv(), Packet::PubAck(_)));
    assert_eq!(&subscriber.recv_publish().payload[..], b"two");
}

#[tokio::test]
async fn a_parked_rumqttc_client_keeps_its_session() {
    let midge = Midge::start("sys_interval 1");
    let (mut subscriber, _) = Client5::start(&midge, "parked-rumqttc", |_| {}).await;
    subscriber
        .client
        .subscribe("parked/rumqttc", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        .await
        .unwrap();
    subscriber.acked().await;
    tokio::time::sleep(IDLE).await;
    let addr = midge.addr();
    tokio::task::spawn_blocking(move || wait_parked(addr, 1))
        .await
        .unwrap();
    let mut publisher = RawClient::session(addr, ProtocolVersion::V311, "rumqttc-feeder");
    for n in 0..3 {
        publisher.send(&packets::publish(
            "parked/rumqttc",
            format!("m{n}"),
            QoS::AtLeastOnce,
            n + 1,
        ));
        assert!(matches!(publisher.recv(), Packet::PubAck(_)));
        assert_eq!(subscriber.publish().await.payload, format!("m{n}").as_bytes());
    }
}

#[test]
fn keep_alive_is_enforced_on_a_parked_connection_and_its_will_is_published() {
    let midge = Midge::start("sys_interval 1");
    let addr = midge.addr();
    let mut watcher = RawClient::session(addr, ProtocolVersion::V311, "will-watcher");
    watcher.subscribe(&[("parked/will", QoS::AtMostOnce)]);
    // Keep alive 2 s: parked after about a second, closed at 3 s [MQTT-3.1.2-22].
    let (mut silent, ack) = RawClient::connected(
        addr,
        packets::connect_with(ProtocolVersion::V5, "parked-silent", |c| {
            c.keep_alive = 2;
            c.will = Some(packets::will("parked/will", "gone", QoS::AtMostOnce, false));
        }),
    );
    assert_eq!(ack.reason_code, ReasonCode::Success);
    let started = Instant::now();
    wait_parked(addr, 2);
    match silent.expect_close().as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::KeepAliveTimeout),
        other => panic!("expected DISCONNECT 0x8D, got {other:?}"),
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(2_900) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
    assert_eq!(&watcher.recv_publish().payload[..], b"gone");
}

#[test]
fn a_takeover_closes_a_parked_connection_with_0x8e() {
    let midge = Midge::start("sys_interval 1");
    let addr = midge.addr();
    let mut first = RawClient::session(addr, ProtocolVersion::V5, "parked-twin");
    std::thread::sleep(IDLE);
    wait_parked(addr, 1);
    let _second = RawClient::session(addr, ProtocolVersion::V5, "parked-twin");
    match first.expect_close().as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::SessionTakenOver),
        other => panic!("expected DISCONNECT 0x8E, got {other:?}"),
    }
}

#[test]
fn shutdown_closes_parked_connections_with_0x8b() {
    let mut midge = Midge::start("sys_interval 1");
    let addr = midge.addr();
    let mut clients: Vec<RawClient> = (0..20)
        .map(|n| RawClient::session(addr, ProtocolVersion::V5, &format!("parked-{n}")))
        .collect();
    std::thread::sleep(IDLE);
    wait_parked(addr, 20);
    midge.signal("TERM");
    for client in &mut clients {
        match client.expect_close().as_slice() {
            [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::ServerShuttingDown),
            other => panic!("expected DISCONNECT 0x8B, got {other:?}"),
        }
    }
    assert_eq!(midge.wait_exit(), Some(0));
}

#[test]
fn a_parked_client_that_closes_its_socket_is_seen_to_go() {
    let midge = Midge::start("sys_interval 1");
    let addr = midge.addr();
    let mut watcher = RawClient::session(addr, ProtocolVersion::V311, "eof-watcher");
    watcher.subscribe(&[("parked/eof", QoS::AtMostOnce)]);
    let (mut leaving, _) = RawClient::connected(
        addr,
        packets::connect_with(ProtocolVersion::V311, "parked-leaving", |c| {
            c.will = Some(packets::will("parked/eof", "closed", QoS::AtMostOnce, false));
        }),
    );
    std::thread::sleep(IDLE);
    wait_parked(addr, 2);
    leaving.shutdown();
    assert_eq!(&watcher.recv_publish().payload[..], b"closed");
    midge.wait_for_log("Client parked-leaving closed its connection.");
}
