//! `$SYS/broker/...`: Mosquitto's topic names (checked against Debian's Mosquitto 2.0.11 run
//! beside Midge), values that move as clients come and messages flow, retained as Mosquitto
//! publishes them, and Midge's own counters of drops and refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use midge_codec::{Packet, ProtocolVersion, QoS};
use support::packets::*;
use support::{Midge, RawClient, free_port, wait_for_port};

const V311: ProtocolVersion = ProtocolVersion::V311;

/// The `$SYS` topic names a broker on `port` publishes within three seconds (with
/// `sys_interval 1`), after one retained publication.
fn sys_topics(port: u16) -> BTreeSet<String> {
    let port = port.to_string();
    let published = Command::new("mosquitto_pub")
        .args(["-p", &port, "-t", "a/b", "-m", "x", "-r"])
        .status()
        .unwrap();
    assert!(published.success());
    let output = Command::new("timeout")
        .args([
            "10",
            "mosquitto_sub",
            "-p",
            &port,
            "-t",
            "$SYS/#",
            "-F",
            "%t",
            "-W",
            "3",
        ])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_sys_tree_has_every_topic_mosquitto_publishes() {
    if Command::new("mosquitto_sub").arg("--help").output().is_err()
        || !std::path::Path::new("/usr/sbin/mosquitto").exists()
    {
        eprintln!("Debian's mosquitto and mosquitto-clients are needed (scripts/install-test-deps); skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nsys_interval 1\n"),
    )
    .unwrap();
    let mut mosquitto = Command::new("/usr/sbin/mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port);
    let theirs = sys_topics(port);
    let _ = mosquitto.kill();
    let _ = mosquitto.wait();

    let midge = Midge::start("sys_interval 1");
    let ours = sys_topics(midge.port());
    // Mosquitto's heap figures need its memory tracking; Midge does not publish them.
    let missing: Vec<&String> = theirs
        .iter()
        .filter(|t| !t.starts_with("$SYS/broker/heap/") && !ours.contains(*t))
        .collect();
    assert!(theirs.len() > 40, "Mosquitto published only {theirs:?}");
    assert!(
        missing.is_empty(),
        "Mosquitto publishes these and Midge does not: {missing:?}"
    );
    for own in [
        "$SYS/broker/publish/messages/dropped/queue_full",
        "$SYS/broker/publish/messages/denied",
        "$SYS/broker/connections/refused/max_connections",
    ] {
        assert!(ours.contains(own), "{own} is missing from {ours:?}");
    }
}

/// Waits for a retained or live `$SYS` value on `topic` that satisfies `done`.
fn wait_for_value(client: &mut RawClient, topic: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no value of {topic} came that fits");
        if let Ok(Some(Packet::Publish(p))) = client.recv_timeout(Duration::from_secs(2))
            && p.topic.as_str() == topic
        {
            let value = String::from_utf8_lossy(&p.payload).into_owned();
            if done(&value) {
                return value;
            }
        }
    }
}

#[test]
fn values_move_as_clients_connect_and_messages_flow() {
    let midge = Midge::start("sys_interval 1\nmax_queued_messages 1");
    let mut watcher = RawClient::session(midge.addr(), V311, "watcher");
    watcher.subscribe(&[("$SYS/broker/version", QoS::AtMostOnce)]);
    let version = watcher.recv_publish();
    assert!(String::from_utf8_lossy(&version.payload).starts_with("midge version "));

    // A persistent session that goes away with a queue limit of one, then three messages for it:
    // two are dropped for a full queue.
    let (offline, _) = RawClient::connected(midge.addr(), connect_persistent(V311, "offline"));
    let mut offline = offline;
    offline.subscribe(&[("data/#", QoS::AtLeastOnce)]);
    offline.shutdown();
    midge.wait_for_log("Client offline closed its connection");
    let mut publisher = RawClient::session(midge.addr(), V311, "publisher");
    for i in 1..=3 {
        publisher.send(&publish("data/x", format!("m{i}"), QoS::AtLeastOnce, i));
        assert!(matches!(publisher.recv(), Packet::PubAck(_)));
    }

    watcher.subscribe(&[("$SYS/broker/publish/messages/received", QoS::AtMostOnce)]);
    wait_for_value(&mut watcher, "$SYS/broker/publish/messages/received", |v| {
        v.parse::<u64>().is_ok_and(|n| n >= 3)
    });
    watcher.subscribe(&[("$SYS/broker/clients/connected", QoS::AtMostOnce)]);
    wait_for_value(&mut watcher, "$SYS/broker/clients/connected", |v| v == "2");
    watcher.subscribe(&[("$SYS/broker/clients/disconnected", QoS::AtMostOnce)]);
    wait_for_value(&mut watcher, "$SYS/broker/clients/disconnected", |v| v == "1");
    watcher.subscribe(&[("$SYS/broker/publish/messages/dropped/queue_full", QoS::AtMostOnce)]);
    wait_for_value(
        &mut watcher,
        "$SYS/broker/publish/messages/dropped/queue_full",
        |v| v == "2",
    );
    watcher.subscribe(&[("$SYS/broker/load/publish/received/1min", QoS::AtMostOnce)]);
    wait_for_value(&mut watcher, "$SYS/broker/load/publish/received/1min", |v| {
        v.parse::<f64>().is_ok_and(|x| x > 0.0) && v.split('.').nth(1).is_some_and(|d| d.len() == 2)
    });
    watcher.subscribe(&[("$SYS/broker/uptime", QoS::AtMostOnce)]);
    wait_for_value(&mut watcher, "$SYS/broker/uptime", |v| v.ends_with(" seconds"));

    // Retained, as Mosquitto publishes them: a late subscriber gets them at once.
    let mut late = RawClient::session(midge.addr(), V311, "late");
    late.subscribe(&[("$SYS/broker/version", QoS::AtMostOnce)]);
    assert!(late.recv_publish().retain);
}

#[test]
fn sys_interval_0_publishes_nothing() {
    let midge = Midge::start("sys_interval 0");
    let mut watcher = RawClient::session(midge.addr(), V311, "watcher");
    watcher.subscribe(&[("$SYS/#", QoS::AtMostOnce)]);
    watcher.expect_nothing(Duration::from_millis(1500));
}
