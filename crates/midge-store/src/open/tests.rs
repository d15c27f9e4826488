#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use midge_codec::{QoS, TopicName};

use super::*;
use crate::journal::{FsyncPolicy, Journal};
use crate::record::{EntryState, SessionRecord};
use crate::store::MemoryStore;

fn message(topic: &str) -> MessageRecord {
    MessageRecord {
        topic: TopicName::new(topic.to_owned()).unwrap(),
        payload: Bytes::from_static(b"payload"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Default::default(),
        expires_at: None,
        publisher: None,
    }
}

fn session() -> SessionRecord {
    SessionRecord {
        expiry_secs: Some(60),
        version: midge_codec::ProtocolVersion::V5,
        username: None,
        listener: 0,
        disconnected_at: None,
        will: None,
    }
}

fn entry(message_id: u64) -> EntryRecord {
    EntryRecord {
        message_id,
        qos: QoS::AtLeastOnce,
        retain: false,
        subscription_ids: Vec::new(),
        state: EntryState::Queued,
        packet_id: None,
    }
}

#[test]
fn a_snapshot_holds_what_was_written_and_drops_orphans() {
    let store = Arc::new(MemoryStore::new());
    let journal = Journal::start(store.clone(), FsyncPolicy::Never, 1);
    journal.put_session("c1", &session());
    journal.put_message(7, &message("a"));
    journal.put_message(8, &message("b"));
    journal.put_entry("c1", 1, &entry(7));
    journal.put_entry("c1", 2, &entry(9));
    journal.put_incoming("c1", 5);
    journal.put_entry("ghost", 1, &entry(7));
    journal.put_retained(&message("r/1"));
    journal.close();

    let snapshot = Snapshot::load(store.as_ref()).unwrap();
    assert_eq!(snapshot.sessions.len(), 1);
    let c1 = &snapshot.sessions[0];
    assert_eq!(c1.client_id, "c1");
    assert_eq!(c1.entries, vec![(1, entry(7))]);
    assert_eq!(c1.incoming, vec![PacketId::new(5).unwrap()]);
    assert_eq!(snapshot.messages.keys().copied().collect::<Vec<_>>(), vec![7]);
    assert_eq!(snapshot.retained.len(), 1);
    assert_eq!(snapshot.next_message_id, 9);
    assert_eq!(snapshot.unreadable.len(), 1, "{:?}", snapshot.unreadable);

    // Tidying leaves a store that loads clean.
    store.apply(&snapshot.cleanup).unwrap();
    let again = Snapshot::load(store.as_ref()).unwrap();
    assert!(
        again.unreadable.is_empty() && again.cleanup.is_empty(),
        "{again:?}"
    );
}

#[test]
fn mqttsn_records_stay_with_their_session_and_go_without_it() {
    let store = Arc::new(MemoryStore::new());
    let journal = Journal::start(store.clone(), FsyncPolicy::Never, 1);
    let topic = |name: &str| TopicName::new(name.to_owned()).unwrap();
    journal.put_session("sensor", &session());
    journal.put_mqttsn(
        "sensor",
        &crate::SnSession {
            topics: vec![(8, topic("a/b"))],
            will: Some(message("gone")),
        },
    );
    journal.put_mqttsn_topic("orphan", 9, &SnTopicRecord { topic: topic("x") });
    journal.put_mqttsn_will("orphan", Some(&message("w")));
    journal.close();
    store
        .apply(&[
            Write::Put(key::mqttsn_topic("sensor", 10), Bytes::from_static(b"\x01a/+")),
            Write::Put(key::mqttsn_topic("sensor", 0xFFFF), Bytes::from_static(b"\x01ok")),
        ])
        .unwrap();

    let snapshot = Snapshot::load(store.as_ref()).unwrap();
    assert_eq!(snapshot.sessions.len(), 1);
    assert_eq!(snapshot.unreadable.len(), 2, "{:?}", snapshot.unreadable);
    store.apply(&snapshot.cleanup).unwrap();
    let journal = Journal::start(store, FsyncPolicy::Never, 1);
    assert_eq!(
        journal.read_mqttsn("sensor"),
        crate::SnSession {
            topics: vec![(8, topic("a/b"))],
            will: Some(message("gone")),
        }
    );
    assert!(journal.read_mqttsn("orphan").is_empty());
    journal.close();
}

#[test]
fn an_unreadable_record_is_reported_and_skipped() {
    let store = MemoryStore::new();
    store
        .apply(&[
            Write::Put(key::session("c1"), Bytes::from_static(b"\x01garbage")),
            Write::Put(key::retained("t"), Bytes::from_static(b"\x07")),
            Write::Put(b"Zzz".to_vec(), Bytes::new()),
        ])
        .unwrap();
    let snapshot = Snapshot::load(&store).unwrap();
    assert!(snapshot.sessions.is_empty() && snapshot.retained.is_empty());
    assert_eq!(snapshot.unreadable.len(), 3, "{:?}", snapshot.unreadable);
}

#[test]
fn a_new_store_is_made_and_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("midge.db");
    {
        let opened = open(&path).unwrap();
        assert!(opened.moved_aside.is_none());
        let journal = Journal::start(opened.store, FsyncPolicy::EveryBatch, 1);
        let seq = journal.put_retained(&message("kept"));
        assert!(journal.wait_durable_blocking(seq, Duration::from_secs(10)));
        journal.close();
    }
    let opened = open(&path).unwrap();
    assert!(opened.moved_aside.is_none());
    assert_eq!(opened.snapshot.retained.len(), 1);
}

#[test]
fn a_file_in_the_way_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mosquitto.db");
    std::fs::write(&path, b"not ours").unwrap();
    let opened = open(&path).unwrap();
    let moved = opened.moved_aside.unwrap();
    assert!(
        moved
            .to
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("mosquitto.db.corrupt-")
    );
    assert_eq!(std::fs::read(&moved.to).unwrap(), b"not ours");
    assert!(path.is_dir());
}

#[test]
fn the_timestamp_is_utc() {
    let t = UNIX_EPOCH + Duration::from_secs(1_764_901_845);
    assert_eq!(utc_stamp(t), "20251205T023045Z");
    assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
}

/// A store with some content, closed; returns its path.
fn written_store(dir: &Path) -> PathBuf {
    let path = dir.join("midge.db");
    let opened = open(&path).unwrap();
    let journal = Journal::start(opened.store.clone(), FsyncPolicy::EveryBatch, 1);
    for n in 0..200 {
        journal.put_retained(&message(&format!("r/{n}")));
    }
    journal.put_session("c1", &session());
    journal.close();
    drop(journal);
    drop(opened);
    path
}

fn files(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Opens a damaged store: it must open, be writable, and either have been moved aside or
/// hold a prefix of what was written (a recovered torn tail). Returns whether it was moved.
fn survives(path: &Path, damage: &str) -> bool {
    let opened = open(path).unwrap_or_else(|e| panic!("{damage}: the store did not open: {e}"));
    let moved = opened.moved_aside.is_some();
    if let Some(moved) = &opened.moved_aside {
        assert!(moved.to.exists(), "{damage}: nothing at {}", moved.to.display());
        assert!(!moved.reason.is_empty());
        assert!(opened.snapshot.retained.is_empty() && opened.snapshot.sessions.is_empty());
    } else {
        let kept: Vec<_> = opened
            .snapshot
            .retained
            .iter()
            .map(|m| m.topic.to_string())
            .collect();
        assert!(kept.len() <= 200, "{damage}");
    }
    let journal = Journal::start(
        opened.store.clone(),
        FsyncPolicy::EveryBatch,
        opened.snapshot.next_message_id,
    );
    let seq = journal.put_retained(&message("after"));
    assert!(
        journal.wait_durable_blocking(seq, Duration::from_secs(10)),
        "{damage}: not writable"
    );
    journal.close();
    drop(journal);
    drop(opened);
    let reopened = open(path).unwrap();
    assert!(
        reopened.moved_aside.is_none(),
        "{damage}: moved aside a second time"
    );
    assert!(
        reopened
            .snapshot
            .retained
            .iter()
            .any(|m| m.topic.as_str() == "after"),
        "{damage}"
    );
    moved
}

fn damage_every_file(path: &Path, mut change: impl FnMut(&mut Vec<u8>)) {
    for file in files(path) {
        if file.file_name().is_some_and(|n| n == "lock") {
            continue;
        }
        let mut bytes = std::fs::read(&file).unwrap();
        change(&mut bytes);
        std::fs::write(&file, bytes).unwrap();
    }
}

#[test]
fn a_zero_filled_store_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = written_store(dir.path());
    damage_every_file(&path, |bytes| bytes.fill(0));
    assert!(survives(&path, "zero-filled"));
}

#[test]
fn a_store_of_random_bytes_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = written_store(dir.path());
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    damage_every_file(&path, |bytes| {
        for byte in bytes.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = state as u8;
        }
    });
    assert!(survives(&path, "random"));
}

#[test]
fn a_store_with_every_file_cut_in_half_comes_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = written_store(dir.path());
    damage_every_file(&path, |bytes| bytes.truncate(bytes.len() / 2));
    survives(&path, "truncated");
}

#[test]
fn a_torn_journal_tail_keeps_what_came_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = written_store(dir.path());
    let journal = path.join("0.jnl");
    let bytes = std::fs::read(&journal).unwrap();
    let used = bytes.iter().rposition(|b| *b != 0).unwrap() + 1;
    for cut in [used - 1, used - 10, used / 2] {
        let copy = dir.path().join(format!("cut-{cut}"));
        std::fs::create_dir_all(&copy).unwrap();
        for file in files(&path) {
            let rel = file.strip_prefix(&path).unwrap();
            let target = copy.join(rel);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(&file, &target).unwrap();
        }
        let mut torn = bytes.clone();
        torn[cut..used].fill(0);
        std::fs::write(copy.join("0.jnl"), torn).unwrap();
        // A torn tail is what a crash leaves: recovered, not moved aside.
        assert!(!survives(&copy, &format!("journal torn at {cut} of {used}")));
    }
}
