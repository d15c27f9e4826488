//! Per-listener options that shape the clients' sessions: `mount_point`,
//! `use_username_as_clientid`, `accept_protocol_versions`, and `bind_interface`. Each test has
//! a plain listener first and the listener under test second, and asserts what clients on
//! each see.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use midge_codec::{ProtocolVersion, QoS, ReasonCode};
use support::packets::*;
use support::{Midge, RawClient, run_midge};

const V311: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;

fn second(midge: &Midge) -> SocketAddr {
    let ports = midge.listen_ports();
    assert_eq!(ports.len(), 2, "two listeners: {ports:?}");
    SocketAddr::from(([127, 0, 0, 1], ports[1]))
}

#[test]
fn a_mount_point_keeps_a_listeners_clients_in_their_own_subtree() {
    let midge = Midge::start("listener 0 127.0.0.1\nmount_point tenant-a/");
    let mounted_addr = second(&midge);

    let mut outside = RawClient::session(midge.addr(), V311, "outside");
    outside.subscribe(&[("#", QoS::AtMostOnce)]);
    let mut mounted = RawClient::session(mounted_addr, V5, "mounted");
    mounted.subscribe(&[("sensors/+", QoS::AtLeastOnce)]);

    // The mounted client publishes under its mount point without knowing it...
    mounted.send(&publish("sensors/t1", "21.5", QoS::AtMostOnce, 0));
    let seen = outside.recv_publish();
    assert_eq!(seen.topic.as_str(), "tenant-a/sensors/t1");
    // ...and receives its own subtree with the mount point taken off.
    let own = mounted.recv_publish();
    assert_eq!(own.topic.as_str(), "sensors/t1");

    // Messages outside its subtree never reach it; inside, they do, retained ones too.
    outside.send(&publish("sensors/t2", "elsewhere", QoS::AtMostOnce, 0));
    outside.send(&publish_retained(
        "tenant-a/sensors/t3",
        "retained",
        QoS::AtMostOnce,
        0,
    ));
    let retained = mounted.recv_publish();
    assert_eq!(
        (retained.topic.as_str(), &retained.payload[..]),
        ("sensors/t3", &b"retained"[..])
    );
    let mut late = RawClient::session(mounted_addr, V311, "late");
    late.subscribe(&[("#", QoS::AtMostOnce)]);
    let first = late.recv_publish();
    assert_eq!(first.topic.as_str(), "sensors/t3", "retained, unmounted");
    late.expect_nothing(Duration::from_millis(300));

    // A will is published under the mount point too.
    let will_client = connect_with(V311, "willing", |c| {
        c.will = Some(will("status", "gone", QoS::AtMostOnce, false));
    });
    let (mut willing, _) = RawClient::connected(mounted_addr, will_client);
    while outside
        .recv_timeout(Duration::from_millis(200))
        .ok()
        .flatten()
        .is_some()
    {}
    willing.shutdown();
    let will_seen = outside.recv_publish();
    assert_eq!(will_seen.topic.as_str(), "tenant-a/status");
}

#[test]
fn use_username_as_clientid_names_the_session_after_the_user_and_refuses_anonymous_clients() {
    let midge = Midge::start("listener 0 127.0.0.1\nuse_username_as_clientid true");
    let addr = second(&midge);
    let login = connect_with(V5, "chosen-by-client", |c| c.username = Some("meter-17".into()));
    let (_client, ack) = RawClient::connected(addr, login);
    assert_eq!(ack.reason_code, ReasonCode::Success);
    midge.wait_for_log("as meter-17 (p5");

    // Two clients with the same user are the same session: the second takes over.
    let again = connect_with(V311, "other-id", |c| c.username = Some("meter-17".into()));
    let (_second, ack) = RawClient::connected(addr, again);
    assert_eq!(ack.reason_code, ReasonCode::Success);
    midge.wait_for_log("Client meter-17 already connected, closing old connection.");

    // Without a user name: not authorised, as Mosquitto answers.
    for version in [V311, V5] {
        let (_c, ack) = RawClient::connected(addr, connect(version, "anonymous"));
        assert_eq!(ack.reason_code, ReasonCode::NotAuthorized);
    }
    // The first listener is unaffected.
    let (_c, ack) = RawClient::connected(midge.addr(), connect(V311, "plain"));
    assert_eq!(ack.reason_code, ReasonCode::Success);
    midge.wait_for_log("as plain (p2");
}

#[test]
fn accept_protocol_versions_refuses_the_others_with_unsupported_version() {
    let midge = Midge::start("listener 0 127.0.0.1\naccept_protocol_versions 5");
    let addr = second(&midge);
    let (_c, ack) = RawClient::connected(addr, connect(V5, "five"));
    assert_eq!(ack.reason_code, ReasonCode::Success);
    // 3.1.1: CONNACK return code 1, "unacceptable protocol version" [MQTT-3.1.2-2].
    let (mut old, ack) = RawClient::connected(addr, connect(V311, "four"));
    assert_eq!(ack.reason_code, ReasonCode::UnsupportedProtocolVersion);
    assert!(old.expect_close().is_empty());
    let (_c, ack) = RawClient::connected(midge.addr(), connect(V311, "four-elsewhere"));
    assert_eq!(ack.reason_code, ReasonCode::Success);
}

#[test]
fn bind_interface_binds_to_the_device_or_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.conf");
    std::fs::write(
        &path,
        "listener 0 127.0.0.1\nbind_interface nosuch0\nallow_anonymous true\n",
    )
    .unwrap();
    let (code, output) = run_midge(&["-c", path.to_str().unwrap()], Duration::from_secs(10));
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains("bind_interface nosuch0"), "{output}");
    if output.contains("Operation not permitted") {
        eprintln!("SO_BINDTODEVICE needs root or CAP_NET_RAW; the loopback case is skipped");
        return;
    }
    let midge = Midge::start("listener 0 127.0.0.1\nbind_interface lo");
    let (_c, ack) = RawClient::connected(second(&midge), connect(V311, "on-lo"));
    assert_eq!(ack.reason_code, ReasonCode::Success);
}
