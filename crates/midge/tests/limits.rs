//! The mosquitto.conf limits and logging settings, each checked on the running broker: what a
//! client sees when a limit is reached, and what the log says.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

mod support;

use std::num::NonZeroU16;
use std::time::{Duration, Instant};

use midge_codec::{Disconnect, Packet, ProtocolVersion, QoS, ReasonCode};
use support::packets::*;
use support::{Midge, RawClient};

const V311: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;

#[test]
fn max_connections_closes_connections_beyond_the_limit() {
    let midge = Midge::start_with_config("listener 0 127.0.0.1\nmax_connections 2\nallow_anonymous true\n");
    let _a = RawClient::session(midge.addr(), V311, "a");
    let _b = RawClient::session(midge.addr(), V311, "b");
    let mut c = RawClient::connect(midge.addr(), V311);
    c.send(&connect(V311, "c"));
    assert!(
        c.expect_close().is_empty(),
        "the third connection gets no CONNACK"
    );
    midge.wait_for_log("denied: max_connections reached");
    drop(_a);
    // The slot frees once a's connection task has ended, just after its log line.
    let deadline = Instant::now() + support::WAIT;
    loop {
        let mut c = RawClient::connect(midge.addr(), V311);
        c.send(&connect(V311, "c"));
        if let Ok(Some(Packet::ConnAck(ack))) = c.recv_timeout(Duration::from_secs(1)) {
            assert_eq!(ack.reason_code, ReasonCode::Success);
            break;
        }
        assert!(Instant::now() < deadline, "a's slot was never freed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn max_connection_rate_refuses_an_address_opening_too_many_in_a_second() {
    let midge =
        Midge::start_with_config("listener 0 127.0.0.1\nmax_connection_rate 3\nallow_anonymous true\n");
    // A burst of 20: three in the first second are served, the rest closed without CONNACK.
    let start = Instant::now();
    let mut served = 0;
    for i in 0..20 {
        let mut c = RawClient::connect(midge.addr(), V311);
        c.send(&connect(V311, &format!("burst-{i}")));
        if let Ok(Some(Packet::ConnAck(_))) = c.recv_timeout(Duration::from_secs(2)) {
            served += 1;
        }
    }
    if start.elapsed() < Duration::from_secs(1) {
        assert_eq!(served, 3, "served in the first second");
    } else {
        assert!(
            served < 20,
            "a slow machine spread the burst, but some were refused"
        );
    }
    // One log line for the burst, with the count of the others, not one line each.
    let line = midge.wait_for_log("denied: max_connection_rate exceeded");
    let lines = midge
        .logs()
        .iter()
        .filter(|l| l.contains("max_connection_rate"))
        .count();
    assert!(lines <= 2, "{lines} lines for one burst: {line}");
    // The next second, the address may connect again.
    std::thread::sleep(Duration::from_millis(1100));
    let (_c, ack) = RawClient::connected(midge.addr(), connect(V311, "later"));
    assert_eq!(ack.reason_code, ReasonCode::Success);
}

#[test]
fn global_max_connections_counts_every_listener_and_global_max_clients_counts_sessions() {
    let midge = Midge::start_with_config(
        "global_max_connections 2\nglobal_max_clients 3\nlistener 0 127.0.0.1\nallow_anonymous true\n\
         listener 0 127.0.0.1\n",
    );
    let ports = midge.listen_ports();
    let other = std::net::SocketAddr::from(([127, 0, 0, 1], ports[1]));
    let _a = RawClient::connected(midge.addr(), connect_persistent(V5, "a"));
    let _b = RawClient::connected(other, connect_persistent(V5, "b"));
    let mut c = RawClient::connect(other, V5);
    c.send(&connect(V5, "c"));
    assert!(
        c.expect_close().is_empty(),
        "a third connection, on either listener, is refused"
    );
    midge.wait_for_log("denied: global_max_connections reached");
    drop(_a);
    drop(_b);
    midge.wait_for_log("Client b closed its connection");
    midge.wait_for_log("Client a closed its connection");

    // Sessions a and b live on; one more session fits, a fourth does not.
    let (third, ack) = RawClient::connected(midge.addr(), connect_persistent(V5, "third"));
    assert_eq!(ack.reason_code, ReasonCode::Success);
    drop(third);
    midge.wait_for_log("Client third closed its connection");
    let (_d, ack) = RawClient::connected(midge.addr(), connect_persistent(V5, "fourth"));
    assert_eq!(
        ack.reason_code,
        ReasonCode::QuotaExceeded,
        "MQTT 5: quota exceeded"
    );
    let (_d, ack) = RawClient::connected(midge.addr(), connect(V311, "fourth"));
    assert_eq!(
        ack.reason_code,
        ReasonCode::ServerUnavailable,
        "3.1.1: server unavailable"
    );
    // An existing session may always come back.
    let (_a, ack) = RawClient::connected(midge.addr(), connect_persistent(V5, "a"));
    assert_eq!(ack.reason_code, ReasonCode::Success);
}

#[test]
fn max_queued_bytes_bounds_the_queue_by_payload_size() {
    let midge = Midge::start("max_queued_bytes 1000\nmax_queued_messages 0");
    let (mut sub, _) = RawClient::connected(midge.addr(), connect_persistent(V311, "bytes"));
    sub.subscribe(&[("b/#", QoS::AtLeastOnce)]);
    sub.shutdown();
    midge.wait_for_log("Client bytes closed its connection");
    let mut publisher = RawClient::session(midge.addr(), V311, "pub");
    for n in 1..=10u16 {
        publisher.send(&publish(
            "b/x",
            vec![b'0' + n as u8 % 10; 300],
            QoS::AtLeastOnce,
            n,
        ));
        assert!(matches!(publisher.recv(), Packet::PubAck(_)));
    }
    midge.wait_for_log("dropped messages for client bytes: queue_bytes_full");
    let (mut sub, _) = RawClient::connected(midge.addr(), connect_persistent(V311, "bytes"));
    let mut got = 0;
    while let Ok(Some(Packet::Publish(p))) = sub.recv_timeout(Duration::from_millis(400)) {
        sub.send(&puback(p.packet_id.unwrap()));
        got += 1;
    }
    assert_eq!(got, 3, "three 300-byte payloads fit in 1000 bytes");
}

#[test]
fn persistent_client_expiration_forgets_3_1_1_sessions() {
    let midge = Midge::start("persistent_client_expiration 1");
    let (mut c, _) = RawClient::connected(midge.addr(), connect_persistent(V311, "forgotten"));
    c.subscribe(&[("f/#", QoS::AtLeastOnce)]);
    c.shutdown();
    midge.wait_for_log("Client forgotten closed its connection");
    let (mut kept, _) = RawClient::connected(midge.addr(), connect_persistent(V311, "kept"));
    kept.shutdown();
    let (_again, ack) = RawClient::connected(midge.addr(), connect_persistent(V311, "kept"));
    assert!(ack.session_present, "back within the expiration");

    std::thread::sleep(Duration::from_millis(2000));
    let (_c, ack) = RawClient::connected(midge.addr(), connect_persistent(V311, "forgotten"));
    assert!(!ack.session_present, "expired after persistent_client_expiration");
}

#[test]
fn mqtt_3_1_2_23_v5_session_expiry_interval_is_honoured() {
    let midge = Midge::start("");
    let with_expiry = |id: &str, seconds: u32| {
        connect_with(V5, id, |c| {
            c.clean_start = false;
            c.properties.session_expiry_interval = Some(seconds);
        })
    };
    let (mut short, _) = RawClient::connected(midge.addr(), with_expiry("short", 1));
    let (mut long, _) = RawClient::connected(midge.addr(), with_expiry("long", 60));
    short.shutdown();
    long.shutdown();
    midge.wait_for_log("Client short closed its connection");
    midge.wait_for_log("Client long closed its connection");
    std::thread::sleep(Duration::from_millis(1800));
    let (_s, ack) = RawClient::connected(midge.addr(), with_expiry("short", 1));
    assert!(!ack.session_present, "expired after 1 s");
    let (_l, ack) = RawClient::connected(midge.addr(), with_expiry("long", 60));
    assert!(ack.session_present);
}

#[test]
fn v5_client_receive_maximum_bounds_what_the_broker_sends_unacknowledged() {
    let midge = Midge::start("");
    let (mut sub, _) = RawClient::connected(
        midge.addr(),
        connect_with(V5, "rm1", |c| c.properties.receive_maximum = NonZeroU16::new(1)),
    );
    sub.subscribe(&[("rm/#", QoS::AtLeastOnce)]);
    let mut publisher = RawClient::session(midge.addr(), V311, "pub");
    for n in 1..=3u16 {
        publisher.send(&publish("rm/x", format!("m{n}"), QoS::AtLeastOnce, n));
        assert!(matches!(publisher.recv(), Packet::PubAck(_)));
    }
    for n in 1..=3 {
        let p = sub.recv_publish();
        assert_eq!(p.payload, format!("m{n}"));
        // [MQTT-3.3.4-9]: no more than Receive Maximum unacknowledged.
        sub.expect_nothing(Duration::from_millis(200));
        sub.send(&puback(p.packet_id.unwrap()));
    }
}

#[test]
fn mqtt_3_3_4_7_a_client_exceeding_the_brokers_receive_maximum_is_disconnected() {
    let midge = Midge::start("max_inflight_messages 2");
    let (mut c, ack) = RawClient::connected(midge.addr(), connect(V5, "greedy"));
    assert_eq!(ack.properties.receive_maximum, NonZeroU16::new(2));
    for n in 1..=3u16 {
        c.send(&publish("g/x", "x", QoS::ExactlyOnce, n));
    }
    let got = c.expect_close();
    assert!(
        matches!(got.last(), Some(Packet::Disconnect(d)) if d.reason_code == ReasonCode::ReceiveMaximumExceeded),
        "{got:?}"
    );
}

#[test]
fn log_dest_file_log_timestamp_and_connection_messages() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("midge.log");
    // Both destinations: the harness reads standard error to learn the port.
    let midge = Midge::start(&format!(
        "log_dest file {}\nlog_dest stderr\nlog_timestamp false",
        log.display()
    ));
    let mut c = RawClient::session(midge.addr(), V311, "logged");
    c.send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)));
    c.expect_close();
    let deadline = Instant::now() + support::WAIT;
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("Client logged disconnected.") {
            break text;
        }
        assert!(Instant::now() < deadline, "log file has:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        text.lines()
            .any(|l| l.starts_with("New client connected from 127.0.0.1:")),
        "{text}"
    );

    let quiet = Midge::start("connection_messages false");
    let _c = RawClient::session(quiet.addr(), V311, "unlogged");
    assert!(
        quiet
            .try_wait_for_log("unlogged", Duration::from_millis(500))
            .is_none(),
        "connection_messages false"
    );
}

#[test]
fn include_dir_adds_listeners_and_settings() {
    let dir = tempfile::tempdir().unwrap();
    let conf_d = dir.path().join("conf.d");
    std::fs::create_dir(&conf_d).unwrap();
    std::fs::write(conf_d.join("limits.conf"), "max_queued_messages 1\n").unwrap();
    let midge = Midge::start(&format!("include_dir {}", conf_d.display()));
    let (mut sub, _) = RawClient::connected(midge.addr(), connect_persistent(V311, "one"));
    sub.subscribe(&[("i/#", QoS::AtLeastOnce)]);
    sub.shutdown();
    midge.wait_for_log("Client one closed its connection");
    let mut publisher = RawClient::session(midge.addr(), V311, "pub");
    for n in 1..=3u16 {
        publisher.send(&publish("i/x", "x", QoS::AtLeastOnce, n));
        publisher.recv();
    }
    midge.wait_for_log("dropped messages for client one: queue_full");
}

#[test]
fn deprecated_port_and_bind_address_open_the_default_listener() {
    let port = support::free_port();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("old.conf");
    std::fs::write(
        &conf,
        format!("port {port}\nbind_address 127.0.0.1\nallow_anonymous true\n"),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_midge"))
        .args(["-c", conf.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _c = RawClient::session(support::wait_for_port(port), V311, "old-style");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn log_type_selects_the_lines() {
    // Errors and warnings only: the unknown-directive warning, but no connection lines. (The
    // harness runs with -v, which overrides log_type, so this test starts midge itself.)
    let port = support::free_port();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("quiet.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nlog_type warning\nlog_type error\nno_such_directive 1\n"),
    )
    .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_midge"))
        .args(["-c", conf.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut c = RawClient::session(support::wait_for_port(port), V311, "quiet");
    c.send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)));
    c.expect_close();
    let status = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("no_such_directive"), "{log}");
    assert!(
        !log.contains("New client connected"),
        "log_type warning hides notices:\n{log}"
    );
    assert!(!log.contains("Opening ipv4"), "{log}");
}
