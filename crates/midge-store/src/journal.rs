//! The write-ahead journal the broker writes through, with group commit.
//!
//! The broker calls the typed methods (`put_session`, `put_entry`, ...) while it holds the
//! lock of the state it is changing, so the order writes reach the journal is the order the
//! state changed. Each call is a push onto an in-memory list under a short lock and returns the
//! write's sequence number; one writer thread takes the whole list, applies it to the store as
//! one atomic batch and, per [`FsyncPolicy`], syncs it. Whatever arrives while a batch is being
//! written goes into the next one, so under load one commit (and one fsync) covers many
//! messages. [`Journal::durable`] is the highest sequence number committed: the runtime holds
//! back an acknowledgement until it is at least the acknowledged write's number.
//!
//! Some changes must reach the store together or not at all: a QoS 2 message's copies for its
//! subscribers and the record that it was received, so that after a crash either the sender's
//! retransmission is recognised and every copy is there, or neither and it is routed afresh.
//! Writes made while an [`AtomicWrites`] guard is held are never split between batches: the
//! writer cuts a batch only when no guard is held.
//!
//! If the store fails (a full disk, say), the writer logs it and retries the same batch; the
//! durable mark does not move, so nothing unsaved is ever acknowledged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock, RwLockReadGuard};
use tokio::sync::watch;

use crate::clock::WallClock;
use crate::key;
use crate::record::{EntryRecord, MessageRecord, SessionRecord, SnTopicRecord, SubscriptionRecord};
use crate::store::{Store, Write};

/// A write's place in the journal; writes are durable in this order.
pub type Seq = u64;

/// When the store is made to survive power loss (`persistence_fsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Every batch is synced before it counts as durable: nothing acknowledged is lost even
    /// on power loss.
    EveryBatch,
    /// Batches count as durable once written to the operating system (safe against a crash
    /// of the broker); a sync runs at this interval.
    Interval(Duration),
    /// Never synced by the broker: safe against a crash of the broker, not of the machine.
    Never,
}

/// What the store holds of an MQTT-SN client besides its session: its topic ids and the will
/// kept for its next connection (see [`Journal::read_mqttsn`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnSession {
    /// Topic ids and their topics, in id order.
    pub topics: Vec<(u16, midge_codec::TopicName)>,
    /// The will, if one is kept.
    pub will: Option<MessageRecord>,
}

impl SnSession {
    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty() && self.will.is_none()
    }
}

/// Counters of the journal's work.
#[derive(Debug, Default)]
pub struct JournalStats {
    /// Batches committed.
    pub batches: AtomicU64,
    /// Writes committed.
    pub writes: AtomicU64,
    /// Syncs to the disk.
    pub syncs: AtomicU64,
    /// Store failures (each retried).
    pub failures: AtomicU64,
}

#[derive(Debug, Default)]
struct Pending {
    writes: Vec<Write>,
    last: Seq,
    closing: bool,
}

#[derive(Debug)]
struct Shared {
    store: Arc<dyn Store>,
    policy: FsyncPolicy,
    pending: Mutex<Pending>,
    work: Condvar,
    durable: watch::Sender<Seq>,
    stats: JournalStats,
    /// Held (shared) by writers whose writes must share a batch; taken (exclusive) by the
    /// writer thread to cut one.
    groups: RwLock<()>,
}

/// While held, the writes made go into one batch (see the module doc). Hold it only around
/// the writes of one change; never take a second one while holding one.
#[derive(Debug)]
pub struct AtomicWrites<'a>(#[allow(dead_code, reason = "held for its drop")] RwLockReadGuard<'a, ()>);

/// The broker's handle on the store.
#[derive(Debug)]
pub struct Journal {
    shared: Arc<Shared>,
    clock: WallClock,
    next_message_id: AtomicU64,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Journal {
    /// Starts the writer thread on `store`. Message identifiers continue from
    /// `next_message_id` (one past the highest in the store).
    pub fn start(store: Arc<dyn Store>, policy: FsyncPolicy, next_message_id: u64) -> Arc<Self> {
        let (durable, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            store,
            policy,
            pending: Mutex::new(Pending::default()),
            work: Condvar::new(),
            durable,
            stats: JournalStats::default(),
            groups: RwLock::new(()),
        });
        let for_writer = shared.clone();
        let writer = std::thread::Builder::new()
            .name("midge-journal".into())
            .spawn(move || for_writer.run())
            .map_err(|error| tracing::error!(%error, "could not start the journal writer thread"))
            .ok();
        Arc::new(Self {
            shared,
            clock: WallClock::now(),
            next_message_id: AtomicU64::new(next_message_id.max(1)),
            writer: Mutex::new(writer),
        })
    }

    /// The clock that converts the broker's deadlines for the store.
    pub fn clock(&self) -> &WallClock {
        &self.clock
    }

    /// The fsync policy in force.
    pub fn policy(&self) -> FsyncPolicy {
        self.shared.policy
    }

    /// The counters.
    pub fn stats(&self) -> &JournalStats {
        &self.shared.stats
    }

    /// The highest sequence number committed to the store.
    pub fn durable(&self) -> Seq {
        *self.shared.durable.borrow()
    }

    /// The highest sequence number handed out.
    pub fn last(&self) -> Seq {
        self.shared.pending.lock().last
    }

    /// A receiver that sees [`Journal::durable`] move, for waiting on it.
    pub fn watch(&self) -> watch::Receiver<Seq> {
        self.shared.durable.subscribe()
    }

    /// Waits, blocking the thread, until `seq` is durable or `timeout` passes. True if it is.
    pub fn wait_durable_blocking(&self, seq: Seq, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.durable() < seq {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// Keeps the writes made until the guard is dropped in one batch.
    pub fn atomic(&self) -> AtomicWrites<'_> {
        AtomicWrites(self.shared.groups.read())
    }

    /// Queues one write; returns its sequence number.
    pub fn submit(&self, write: Write) -> Seq {
        let mut pending = self.shared.pending.lock();
        let was_empty = pending.writes.is_empty();
        pending.writes.push(write);
        pending.last += 1;
        let seq = pending.last;
        drop(pending);
        if was_empty {
            self.shared.work.notify_one();
        }
        seq
    }

    /// Commits everything queued, syncs it, and stops the writer. Later writes are
    /// committed by nobody; call this once, at shutdown.
    pub fn close(&self) {
        self.shared.pending.lock().closing = true;
        self.shared.work.notify_one();
        if let Some(writer) = self.writer.lock().take()
            && writer.join().is_err()
        {
            tracing::error!("the journal writer thread panicked");
        }
    }

    /// A fresh identifier for a stored message body.
    pub fn next_message_id(&self) -> u64 {
        self.next_message_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Stores (or replaces) a session's record.
    pub fn put_session(&self, client_id: &str, record: &SessionRecord) -> Seq {
        self.submit(Write::Put(key::session(client_id), record.encode()))
    }

    /// Forgets everything of a session: record, subscriptions, queue, QoS 2 identifiers.
    pub fn delete_session(&self, client_id: &str) -> Seq {
        self.submit(Write::DeletePrefix(key::client_prefix(client_id)))
    }

    /// Stores one subscription of a session.
    pub fn put_subscription(&self, client_id: &str, record: &SubscriptionRecord) -> Seq {
        self.submit(Write::Put(
            key::subscription(client_id, record.filter.as_str()),
            record.encode(),
        ))
    }

    /// Forgets one subscription of a session.
    pub fn delete_subscription(&self, client_id: &str, filter: &str) -> Seq {
        self.submit(Write::Delete(key::subscription(client_id, filter)))
    }

    /// Stores a message body under `id`.
    pub fn put_message(&self, id: u64, record: &MessageRecord) -> Seq {
        self.submit(Write::Put(key::message(id), record.encode()))
    }

    /// Reads back the message body stored under `id` by the write `seq`, waiting (a commit,
    /// at most `timeout`) for that write to be committed if it is not yet. `None` if it is not
    /// there or cannot be read (logged).
    pub fn read_message(&self, id: u64, seq: Seq, timeout: Duration) -> Option<MessageRecord> {
        if !self.wait_durable_blocking(seq, timeout) {
            tracing::error!(
                id,
                "a stored message body was not committed in time to be read back"
            );
            return None;
        }
        match self.shared.store.get(&key::message(id)) {
            Ok(Some(value)) => match MessageRecord::decode(&value) {
                Ok(record) => Some(record),
                Err(error) => {
                    tracing::error!(id, %error, "a stored message body cannot be read; the message is dropped");
                    None
                }
            },
            Ok(None) => None,
            Err(error) => {
                tracing::error!(id, %error, "reading a stored message body failed; the message is dropped");
                None
            }
        }
    }

    /// Forgets a message body.
    pub fn delete_message(&self, id: u64) -> Seq {
        self.submit(Write::Delete(key::message(id)))
    }

    /// Stores (or updates) a queued or in-flight delivery at place `seq` of a session's queue.
    pub fn put_entry(&self, client_id: &str, seq: u64, record: &EntryRecord) -> Seq {
        self.submit(Write::Put(key::entry(client_id, seq), record.encode()))
    }

    /// Forgets a delivery (acknowledged, expired or dropped).
    pub fn delete_entry(&self, client_id: &str, seq: u64) -> Seq {
        self.submit(Write::Delete(key::entry(client_id, seq)))
    }

    /// Remembers a QoS 2 packet identifier awaiting PUBREL.
    pub fn put_incoming(&self, client_id: &str, packet_id: u16) -> Seq {
        self.submit(Write::Put(
            key::incoming(client_id, packet_id),
            bytes::Bytes::new(),
        ))
    }

    /// Forgets a released QoS 2 packet identifier.
    pub fn delete_incoming(&self, client_id: &str, packet_id: u16) -> Seq {
        self.submit(Write::Delete(key::incoming(client_id, packet_id)))
    }

    /// Stores a topic id of an MQTT-SN client.
    pub fn put_mqttsn_topic(&self, client_id: &str, topic_id: u16, record: &SnTopicRecord) -> Seq {
        self.submit(Write::Put(
            key::mqttsn_topic(client_id, topic_id),
            record.encode(),
        ))
    }

    /// Forgets a topic id of an MQTT-SN client.
    pub fn delete_mqttsn_topic(&self, client_id: &str, topic_id: u16) -> Seq {
        self.submit(Write::Delete(key::mqttsn_topic(client_id, topic_id)))
    }

    /// Stores (`Some`) or forgets (`None`) the will kept for an MQTT-SN client.
    pub fn put_mqttsn_will(&self, client_id: &str, will: Option<&MessageRecord>) -> Seq {
        match will {
            Some(record) => self.submit(Write::Put(key::mqttsn_will(client_id), record.encode())),
            None => self.submit(Write::Delete(key::mqttsn_will(client_id))),
        }
    }

    /// Replaces everything kept of an MQTT-SN client with `state`, in one batch.
    pub fn put_mqttsn(&self, client_id: &str, state: &SnSession) -> Seq {
        let _group = self.atomic();
        let mut seq = self.submit(Write::DeletePrefix(key::mqttsn_prefix(client_id)));
        for (topic_id, topic) in &state.topics {
            seq = self.put_mqttsn_topic(client_id, *topic_id, &SnTopicRecord { topic: topic.clone() });
        }
        if let Some(will) = &state.will {
            seq = self.put_mqttsn_will(client_id, Some(will));
        }
        seq
    }

    /// Reads back what is kept of an MQTT-SN client, as far as it is committed. Records that
    /// do not decode are logged and left out; a store that cannot be read gives nothing.
    pub fn read_mqttsn(&self, client_id: &str) -> SnSession {
        let mut state = SnSession::default();
        let read = self
            .shared
            .store
            .scan_prefix(&key::mqttsn_prefix(client_id), &mut |raw_key, value| {
                match key::parse(raw_key) {
                    Some(key::Key::MqttSnTopic(_, topic_id)) => match SnTopicRecord::decode(value) {
                        Ok(record) => state.topics.push((topic_id, record.topic)),
                        Err(error) => {
                            tracing::error!(client_id, topic_id, %error, "a stored MQTT-SN topic id cannot be read; the client registers it again");
                        }
                    },
                    Some(key::Key::MqttSnWill(_)) => match MessageRecord::decode(value) {
                        Ok(record) => state.will = Some(record),
                        Err(error) => {
                            tracing::error!(client_id, %error, "a stored MQTT-SN will cannot be read; it is dropped");
                        }
                    },
                    _ => {}
                }
                Ok(())
            });
        if let Err(error) = read {
            tracing::error!(client_id, %error, "reading what the store keeps of an MQTT-SN client failed");
            return SnSession::default();
        }
        state
    }

    /// Stores the retained message of its topic.
    pub fn put_retained(&self, record: &MessageRecord) -> Seq {
        self.submit(Write::Put(key::retained(record.topic.as_str()), record.encode()))
    }

    /// Forgets the retained message of `topic`.
    pub fn delete_retained(&self, topic: &str) -> Seq {
        self.submit(Write::Delete(key::retained(topic)))
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}

impl Shared {
    /// The writer thread: batch, commit, sync, publish the durable mark; until closed.
    fn run(&self) {
        let mut spare = Vec::new();
        let mut last_sync = Instant::now();
        let mut unsynced = false;
        loop {
            {
                let mut pending = self.pending.lock();
                while pending.writes.is_empty() && !pending.closing {
                    match self.policy {
                        FsyncPolicy::Interval(interval) if unsynced => {
                            let timeout = interval.saturating_sub(last_sync.elapsed());
                            if timeout.is_zero() || self.work.wait_for(&mut pending, timeout).timed_out() {
                                break;
                            }
                        }
                        _ => self.work.wait(&mut pending),
                    }
                }
            }
            let (mut batch, last, closing) = {
                // No group is half written while the batch is cut.
                let _cut = self.groups.write();
                let mut pending = self.pending.lock();
                let batch = std::mem::replace(&mut pending.writes, std::mem::take(&mut spare));
                (batch, pending.last, pending.closing)
            };
            if !batch.is_empty() {
                self.retry("commit", || self.store.apply(&batch));
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                self.stats.writes.fetch_add(batch.len() as u64, Ordering::Relaxed);
                unsynced = true;
                if self.policy == FsyncPolicy::EveryBatch {
                    self.sync();
                    unsynced = false;
                    last_sync = Instant::now();
                }
                self.durable.send_replace(last);
            }
            if let FsyncPolicy::Interval(interval) = self.policy
                && unsynced
                && last_sync.elapsed() >= interval
            {
                self.sync();
                unsynced = false;
                last_sync = Instant::now();
            }
            batch.clear();
            spare = batch;
            if closing && self.pending.lock().writes.is_empty() {
                if unsynced && self.policy != FsyncPolicy::Never {
                    self.sync();
                }
                return;
            }
        }
    }

    fn sync(&self) {
        self.retry("sync", || self.store.sync());
        self.stats.syncs.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs `operation` until it succeeds, logging failures (at most one line a second).
    fn retry(&self, what: &str, mut operation: impl FnMut() -> Result<(), crate::StoreError>) {
        let mut last_log: Option<Instant> = None;
        let mut failures = 0u64;
        loop {
            match operation() {
                Ok(()) => {
                    if failures > 0 {
                        tracing::warn!(
                            "the persistence store works again after {failures} failed attempts to {what}"
                        );
                    }
                    return;
                }
                Err(error) => {
                    failures += 1;
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    if last_log.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                        tracing::error!(%error, "persistence store failed to {what}; acknowledgements wait until it works (attempt {failures})");
                        last_log = Some(Instant::now());
                    }
                    if self.pending.lock().closing && failures >= 20 {
                        tracing::error!(
                            "giving up on the persistence store at shutdown; unsaved changes are lost"
                        );
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn writes_become_durable_in_order_and_in_batches() {
        let store = Arc::new(MemoryStore::new());
        let journal = Journal::start(store.clone(), FsyncPolicy::EveryBatch, 1);
        let mut last = 0;
        for n in 0..1000u64 {
            last = journal.put_retained(&MessageRecord {
                topic: midge_codec::TopicName::new(format!("t/{n}")).unwrap(),
                payload: bytes::Bytes::from_static(b"x"),
                qos: midge_codec::QoS::AtMostOnce,
                retain: true,
                properties: Default::default(),
                expires_at: None,
                publisher: None,
            });
        }
        assert_eq!(last, 1000);
        assert!(journal.wait_durable_blocking(last, Duration::from_secs(10)));
        assert_eq!(store.len(), 1000);
        let batches = journal.stats().batches.load(Ordering::Relaxed);
        assert!((1..=1000).contains(&batches));
        assert_eq!(store.syncs(), journal.stats().syncs.load(Ordering::Relaxed));
        journal.close();
    }

    #[test]
    fn never_policy_does_not_sync_and_close_commits_the_rest() {
        let store = Arc::new(MemoryStore::new());
        let journal = Journal::start(store.clone(), FsyncPolicy::Never, 1);
        journal.put_incoming("c", 1);
        journal.put_incoming("c", 2);
        journal.delete_incoming("c", 1);
        journal.close();
        assert_eq!(store.len(), 1);
        assert_eq!(store.syncs(), 0);
        assert_eq!(journal.durable(), 3);
    }

    #[test]
    fn writes_under_one_guard_share_a_batch() {
        let store = Arc::new(MemoryStore::new());
        let journal = Journal::start(store.clone(), FsyncPolicy::EveryBatch, 1);
        let writers: Vec<_> = (0..4u16)
            .map(|t| {
                let journal = journal.clone();
                std::thread::spawn(move || {
                    for n in 0..200u16 {
                        let _group = journal.atomic();
                        journal.put_incoming(&format!("c{t}"), n * 2 + 1);
                        std::thread::yield_now();
                        journal.put_incoming(&format!("c{t}"), n * 2 + 2);
                    }
                })
            })
            .collect();
        // Whenever the store is looked at, each writer's pairs are whole.
        let mut checks = 0;
        while writers.iter().any(|w| !w.is_finished()) {
            let mut ids: std::collections::HashMap<Vec<u8>, usize> = Default::default();
            store
                .scan(&mut |key, _| {
                    *ids.entry(key[..key.len() - 2].to_vec()).or_default() += 1;
                    Ok(())
                })
                .unwrap();
            assert!(ids.values().all(|n| n % 2 == 0), "{ids:?}");
            checks += 1;
        }
        for writer in writers {
            writer.join().unwrap();
        }
        journal.close();
        assert_eq!(store.len(), 1600);
        assert!(checks > 0);
    }

    #[test]
    fn an_mqttsn_clients_topic_ids_and_will_read_back_and_go_with_its_session() {
        let store = Arc::new(MemoryStore::new());
        let journal = Journal::start(store, FsyncPolicy::EveryBatch, 1);
        let topic = |name: &str| midge_codec::TopicName::new(name.to_owned()).unwrap();
        let will = MessageRecord {
            topic: topic("sensors/gone"),
            payload: bytes::Bytes::from_static(b"bye"),
            qos: midge_codec::QoS::AtLeastOnce,
            retain: true,
            properties: Default::default(),
            expires_at: None,
            publisher: None,
        };
        journal.put_mqttsn_topic("other", 5, &SnTopicRecord { topic: topic("x") });
        journal.put_mqttsn(
            "node",
            &SnSession {
                topics: vec![(8, topic("a/b")), (9, topic("c"))],
                will: Some(will.clone()),
            },
        );
        journal.put_mqttsn_topic("node", 10, &SnTopicRecord { topic: topic("d") });
        let seq = journal.delete_mqttsn_topic("node", 9);
        assert!(journal.wait_durable_blocking(seq, Duration::from_secs(5)));
        assert_eq!(
            journal.read_mqttsn("node"),
            SnSession {
                topics: vec![(8, topic("a/b")), (10, topic("d"))],
                will: Some(will),
            }
        );
        // A rewrite replaces all of it.
        let seq = journal.put_mqttsn(
            "node",
            &SnSession {
                topics: vec![(11, topic("e"))],
                will: None,
            },
        );
        assert!(journal.wait_durable_blocking(seq, Duration::from_secs(5)));
        assert_eq!(journal.read_mqttsn("node").topics, vec![(11, topic("e"))]);
        assert_eq!(journal.read_mqttsn("node").will, None);
        // Deleting the session deletes it too; another client's is untouched.
        let seq = journal.delete_session("node");
        assert!(journal.wait_durable_blocking(seq, Duration::from_secs(5)));
        assert!(journal.read_mqttsn("node").is_empty());
        assert_eq!(journal.read_mqttsn("other").topics, vec![(5, topic("x"))]);
        journal.close();
    }

    #[test]
    fn interval_policy_syncs_when_idle() {
        let store = Arc::new(MemoryStore::new());
        let journal = Journal::start(store.clone(), FsyncPolicy::Interval(Duration::from_millis(20)), 1);
        let seq = journal.put_incoming("c", 1);
        assert!(journal.wait_durable_blocking(seq, Duration::from_secs(5)));
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.syncs() == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(store.syncs(), 1);
        journal.close();
    }
}
