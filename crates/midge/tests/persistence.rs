//! `persistence true` as a user sees it: sessions, queued messages and retained messages come
//! back after a restart (clean or `kill -9`), and a store that cannot be read never stops the
//! broker: it is moved aside, logged, and the broker starts empty. The `kill -9` stress test
//! with paho clients is `interop/test_persistence.py`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use midge_codec::{Ack, Packet, ProtocolVersion, QoS, ReasonCode};
use support::packets::{connect_persistent, publish, publish_retained};
use support::{Midge, RawClient, run_midge};

const V311: ProtocolVersion = ProtocolVersion::V311;

/// The configuration lines for a store in `dir`.
fn persistence(dir: &Path) -> String {
    format!("persistence true\npersistence_location {}/\n", dir.display())
}

/// Leaves a persistent session `keeper` with two queued QoS 1 messages, and a retained
/// message on `kept/topic`, in the store under `dir`; stops the broker with SIGTERM or SIGKILL.
fn fill_store(dir: &Path, kill: bool) {
    let mut midge = Midge::start(&persistence(dir));
    let (mut keeper, ack) = RawClient::connected(midge.addr(), connect_persistent(V311, "keeper"));
    assert!(!ack.session_present);
    assert_eq!(
        keeper.subscribe(&[("queued/#", QoS::AtLeastOnce)]),
        [ReasonCode::GrantedQos1]
    );
    keeper.shutdown();
    midge.wait_for_log("Client keeper closed its connection");
    let mut publisher = RawClient::session(midge.addr(), V311, "publisher");
    for (n, payload) in ["first", "second"].into_iter().enumerate() {
        publisher.send(&publish("queued/a", payload, QoS::AtLeastOnce, n as u16 + 1));
        assert!(matches!(publisher.recv(), Packet::PubAck(_)));
    }
    publisher.send(&publish_retained("kept/topic", "still here", QoS::AtLeastOnce, 3));
    assert!(matches!(publisher.recv(), Packet::PubAck(_)));
    if kill {
        midge.signal("KILL");
        midge.wait_exit();
    } else {
        midge.signal("TERM");
        assert_eq!(midge.wait_exit(), Some(0));
    }
}

/// Checks that the session, its queue and the retained message of [`fill_store`] are back.
fn assert_restored(midge: &Midge) {
    let line = midge.wait_for_log("Restored from");
    assert!(
        line.contains("1 sessions, 1 subscriptions, 2 queued messages, 1 retained messages"),
        "{line}"
    );
    let (mut keeper, ack) = RawClient::connected(midge.addr(), connect_persistent(V311, "keeper"));
    assert!(
        ack.session_present,
        "[MQTT-3.2.2-3] the session survived the restart"
    );
    for expected in ["first", "second"] {
        let message = keeper.recv_publish();
        assert_eq!(&message.payload[..], expected.as_bytes());
        keeper.send(&Packet::PubAck(Ack::new(message.packet_id.unwrap())));
    }
    let mut reader = RawClient::session(midge.addr(), V311, "reader");
    reader.subscribe(&[("kept/#", QoS::AtMostOnce)]);
    let retained = reader.recv_publish();
    assert!(retained.retain);
    assert_eq!(&retained.payload[..], b"still here");
}

#[test]
fn sessions_queues_and_retained_messages_survive_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    fill_store(dir.path(), false);
    let midge = Midge::start(&persistence(dir.path()));
    assert_restored(&midge);
}

#[test]
fn acknowledged_messages_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    fill_store(dir.path(), true);
    let midge = Midge::start(&persistence(dir.path()));
    assert_restored(&midge);
}

#[test]
fn every_fsync_policy_keeps_what_it_acknowledged() {
    for policy in ["every_batch", "interval 50", "never"] {
        let dir = tempfile::tempdir().unwrap();
        let extra = format!("{}persistence_fsync {policy}\n", persistence(dir.path()));
        {
            let mut midge = Midge::start(&extra);
            let mut publisher = RawClient::session(midge.addr(), V311, "p");
            publisher.send(&publish_retained(
                "policy",
                policy.as_bytes().to_vec(),
                QoS::AtLeastOnce,
                1,
            ));
            assert!(matches!(publisher.recv(), Packet::PubAck(_)), "{policy}");
            midge.signal("KILL");
            midge.wait_exit();
        }
        let midge = Midge::start(&extra);
        let mut reader = RawClient::session(midge.addr(), V311, "r");
        reader.subscribe(&[("policy", QoS::AtMostOnce)]);
        assert_eq!(&reader.recv_publish().payload[..], policy.as_bytes(), "{policy}");
    }
}

/// Every file of the store under `dir`, the lock file excepted.
fn store_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.join("mosquitto.db")];
    while let Some(path) = pending.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.file_name().is_some_and(|n| n != "lock") {
                files.push(path);
            }
        }
    }
    assert!(!files.is_empty());
    files
}

/// Starts the broker on a damaged store and checks what a user would see: an error naming the
/// store and where it went, a broker that serves clients, the damaged store kept aside.
fn assert_moved_aside(dir: &Path, damage: &str) {
    let midge = Midge::start(&persistence(dir));
    let line = midge.wait_for_log("could not be read");
    assert!(
        line.contains("mosquitto.db") && line.contains("moved to"),
        "{damage}: {line}"
    );
    assert!(line.contains("starts with an empty store"), "{damage}: {line}");
    let aside: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("mosquitto.db.corrupt-")
        })
        .collect();
    assert_eq!(
        aside.len(),
        1,
        "{damage}: the damaged store is kept for inspection"
    );
    assert!(
        midge.wait_for_log("Restored from").contains("0 sessions"),
        "{damage}"
    );

    // And it works: a persistent session made now survives the next restart.
    let mut publisher = RawClient::session(midge.addr(), V311, "after");
    publisher.send(&publish_retained("after", "ok", QoS::AtLeastOnce, 1));
    assert!(matches!(publisher.recv(), Packet::PubAck(_)), "{damage}");
    drop(midge);
    let midge = Midge::start(&persistence(dir));
    assert!(
        midge
            .try_wait_for_log("could not be read", Duration::from_millis(200))
            .is_none()
    );
    let mut reader = RawClient::session(midge.addr(), V311, "reader");
    reader.subscribe(&[("after", QoS::AtMostOnce)]);
    assert_eq!(&reader.recv_publish().payload[..], b"ok", "{damage}");
}

#[test]
fn a_zero_filled_store_is_moved_aside_and_the_broker_starts() {
    let dir = tempfile::tempdir().unwrap();
    fill_store(dir.path(), false);
    for file in store_files(dir.path()) {
        let len = std::fs::metadata(&file).unwrap().len() as usize;
        std::fs::write(&file, vec![0u8; len]).unwrap();
    }
    assert_moved_aside(dir.path(), "zero-filled");
}

#[test]
fn a_store_of_random_bytes_is_moved_aside_and_the_broker_starts() {
    let dir = tempfile::tempdir().unwrap();
    fill_store(dir.path(), false);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for file in store_files(dir.path()) {
        let len = std::fs::metadata(&file).unwrap().len() as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        std::fs::write(&file, bytes).unwrap();
    }
    assert_moved_aside(dir.path(), "random");
}

#[test]
fn a_truncated_store_never_stops_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    fill_store(dir.path(), false);
    for file in store_files(dir.path()) {
        let bytes = std::fs::read(&file).unwrap();
        std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    }
    // Cut files are damage the engine may recover from (a torn tail) or not: either way the
    // broker comes up and serves.
    let midge = Midge::start(&persistence(dir.path()));
    midge.wait_for_log("Restored from");
    let mut client = RawClient::session(midge.addr(), V311, "c");
    client.send(&publish("t", "x", QoS::AtLeastOnce, 1));
    assert!(matches!(client.recv(), Packet::PubAck(_)));
}

#[test]
fn a_mosquitto_database_in_the_way_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mosquitto.db"),
        b"\x00\xb5\x00mosquitto db\x00\x00\x00\x06",
    )
    .unwrap();
    let midge = Midge::start(&persistence(dir.path()));
    let line = midge.wait_for_log("could not be read");
    assert!(line.contains("not a Midge store"), "{line}");
    midge.wait_for_log("running");
}

#[test]
fn a_store_in_use_by_another_broker_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Midge::start(&persistence(dir.path()));
    let config = dir.path().join("second.conf");
    std::fs::write(
        &config,
        format!("listener 0 127.0.0.1\nuser root\n{}", persistence(dir.path())),
    )
    .unwrap();
    let (code, output) = run_midge(&["-c", config.to_str().unwrap()], Duration::from_secs(10));
    assert_ne!(code, Some(0), "{output}");
    assert!(output.contains("in use by another process"), "{output}");
    assert!(
        !std::fs::read_dir(dir.path()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("corrupt")),
        "a store in use is not damaged"
    );
}

#[test]
fn bad_persistence_lines_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    for (line, message) in [
        (
            "persistence_fsync sometimes",
            "persistence_fsync: expected every_batch, interval MS or never, got \"sometimes\"",
        ),
        (
            "persistence_fsync interval",
            "persistence_fsync: expected a number of milliseconds after \"interval\"",
        ),
        ("persistence_fsync interval 0", "persistence_fsync"),
        ("persistence maybe", "persistence: expected"),
    ] {
        let config = dir.path().join("bad.conf");
        std::fs::write(&config, format!("listener 0 127.0.0.1\n{line}\nuser root\n")).unwrap();
        let (code, output) = run_midge(&["-c", config.to_str().unwrap()], Duration::from_secs(10));
        assert_ne!(code, Some(0), "{line}: {output}");
        assert!(
            output.contains("bad.conf:2: ") && output.contains(message),
            "{line}: {output}"
        );
    }
}

#[test]
fn autosave_directives_are_accepted_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let midge = Midge::start(&format!(
        "{}autosave_interval 1800\nautosave_on_changes false\n",
        persistence(dir.path())
    ));
    let line = midge.wait_for_log("autosave_interval");
    assert!(line.contains("periodic saves are not needed"), "{line}");
}
