//! Opening the store at startup, and reading it back into a [`Snapshot`].
//!
//! A store that cannot be opened or read — truncated, zero-filled, garbage, a format this
//! build does not read, or a file that is not a Midge store at all (Mosquitto's
//! `mosquitto.db`, say) — never stops the broker: it is renamed `<name>.corrupt-<timestamp>`,
//! the caller logs what happened, and an empty store takes its place. A torn tail from a crash
//! is not damage: the engine recovers up to the last whole batch. Single records that do not
//! decode are skipped, named in [`Snapshot::unreadable`], and deleted.
//!
//! Only what moving aside cannot cure stops the start: another process holding the store,
//! or a directory the broker may not write.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytestring::ByteString;
use midge_codec::PacketId;

use crate::error::StoreError;
use crate::key::{self, Key};
use crate::record::{EntryRecord, FORMAT, MessageRecord, SessionRecord, SnTopicRecord, SubscriptionRecord};
use crate::store::{FjallStore, OpenFailure, Store, Write};

/// One session as read back, with everything under its key prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// Its client identifier.
    pub client_id: ByteString,
    /// Its record.
    pub record: SessionRecord,
    /// Its subscriptions.
    pub subscriptions: Vec<SubscriptionRecord>,
    /// Its queued and in-flight deliveries in queue order, with their places.
    pub entries: Vec<(u64, EntryRecord)>,
    /// QoS 2 packet identifiers it has not released.
    pub incoming: Vec<PacketId>,
}

/// Everything the store held, ready for the broker to rebuild its state from.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Sessions, by client identifier order.
    pub sessions: Vec<StoredSession>,
    /// Message bodies the entries refer to, read into memory: every one, or with
    /// [`Snapshot::load_bounded`] those of in-flight entries and of the first queued ones of
    /// each session.
    pub messages: HashMap<u64, MessageRecord>,
    /// Message bodies left in the store (see [`Snapshot::load_bounded`]), with their stored
    /// sizes: entries that refer to them are paged in when their session drains its queue.
    pub stored_bodies: HashMap<u64, u64>,
    /// Retained messages.
    pub retained: Vec<MessageRecord>,
    /// One past the highest message identifier in use.
    pub next_message_id: u64,
    /// Records that could not be read: what and why, for the log. They are deleted.
    pub unreadable: Vec<String>,
    /// Deletes that tidy the store: unreadable records, and entries, subscriptions or bodies
    /// left without the session or entry that owned them.
    pub cleanup: Vec<Write>,
}

/// A store that was moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedAside {
    /// Where it is now.
    pub to: PathBuf,
    /// Why.
    pub reason: String,
}

/// An open store and what it held.
#[derive(Debug)]
pub struct Opened {
    /// The store.
    pub store: Arc<FjallStore>,
    /// What it held.
    pub snapshot: Snapshot,
    /// Set if the store found at the path could not be used and was moved aside.
    pub moved_aside: Option<MovedAside>,
}

#[derive(Debug, Default)]
struct PartialSession {
    record: Option<SessionRecord>,
    subscriptions: Vec<SubscriptionRecord>,
    entries: Vec<(u64, EntryRecord)>,
    incoming: Vec<PacketId>,
}

impl Snapshot {
    /// Reads every record of `store`. An error means the store itself could not be read.
    pub fn load(store: &dyn Store) -> Result<Self, StoreError> {
        Self::load_bounded(store, usize::MAX)
    }

    /// Reads `store`, leaving on disk the bodies of messages queued beyond the first `hot` of
    /// each session (in-flight ones are always read): a restart does not bring every offline
    /// client's queue into memory.
    pub fn load_bounded(store: &dyn Store, hot: usize) -> Result<Self, StoreError> {
        let mut snapshot = Self {
            next_message_id: 1,
            ..Self::default()
        };
        let mut sessions: BTreeMap<ByteString, PartialSession> = BTreeMap::new();
        // Every client key sorts before every message key, so the entries are all known when
        // the first body is met: which bodies to read is settled then.
        let mut wanted: Option<HashSet<u64>> = None;
        let unreadable = |snapshot: &mut Self, key: &[u8], what: String| {
            snapshot.unreadable.push(what);
            snapshot.cleanup.push(Write::Delete(key.to_vec()));
        };
        store.scan(&mut |raw_key, value| {
            let Some(parsed) = key::parse(raw_key) else {
                unreadable(
                    &mut snapshot,
                    raw_key,
                    format!("unknown key {:?}", String::from_utf8_lossy(raw_key)),
                );
                return Ok(());
            };
            match parsed {
                Key::Version => {}
                Key::Message(id) => {
                    snapshot.next_message_id = snapshot.next_message_id.max(id.saturating_add(1));
                    let wanted = wanted.get_or_insert_with(|| hot_bodies(&sessions, hot));
                    if hot != usize::MAX && !wanted.contains(&id) {
                        snapshot.stored_bodies.insert(id, value.len() as u64);
                        return Ok(());
                    }
                    match MessageRecord::decode(value) {
                        Ok(record) => {
                            snapshot.messages.insert(id, record);
                        }
                        Err(error) => unreadable(&mut snapshot, raw_key, format!("message {id}: {error}")),
                    }
                }
                Key::Retained(topic) => match MessageRecord::decode(value) {
                    Ok(record) if record.topic.as_str() == topic => snapshot.retained.push(record),
                    Ok(_) => unreadable(
                        &mut snapshot,
                        raw_key,
                        format!("retained message of {topic}: topic differs from its key"),
                    ),
                    Err(error) => unreadable(
                        &mut snapshot,
                        raw_key,
                        format!("retained message of {topic}: {error}"),
                    ),
                },
                Key::Session(client) => match SessionRecord::decode(value) {
                    Ok(record) => sessions.entry(client.into()).or_default().record = Some(record),
                    Err(error) => unreadable(&mut snapshot, raw_key, format!("session {client}: {error}")),
                },
                Key::Subscription(client, filter) => match SubscriptionRecord::decode(value) {
                    Ok(record) if record.filter.as_str() == filter => {
                        sessions
                            .entry(client.into())
                            .or_default()
                            .subscriptions
                            .push(record);
                    }
                    Ok(_) => unreadable(
                        &mut snapshot,
                        raw_key,
                        format!("subscription {filter} of {client}: filter differs from its key"),
                    ),
                    Err(error) => unreadable(
                        &mut snapshot,
                        raw_key,
                        format!("subscription {filter} of {client}: {error}"),
                    ),
                },
                Key::Entry(client, seq) => match EntryRecord::decode(value) {
                    Ok(record) => sessions
                        .entry(client.into())
                        .or_default()
                        .entries
                        .push((seq, record)),
                    Err(error) => unreadable(
                        &mut snapshot,
                        raw_key,
                        format!("queued message {seq} of {client}: {error}"),
                    ),
                },
                // The MQTT-SN gateway reads these when the client connects again; here they are
                // only checked, and tied to their session so that they go if it is gone.
                Key::MqttSnTopic(client, id) => match SnTopicRecord::decode(value) {
                    Ok(_) if id != 0 && id != 0xFFFF => {
                        sessions.entry(client.into()).or_default();
                    }
                    Ok(_) => unreadable(
                        &mut snapshot,
                        raw_key,
                        format!("MQTT-SN topic id {id} of {client}: a reserved id"),
                    ),
                    Err(error) => unreadable(
                        &mut snapshot,
                        raw_key,
                        format!("MQTT-SN topic id {id} of {client}: {error}"),
                    ),
                },
                Key::MqttSnWill(client) => match MessageRecord::decode(value) {
                    Ok(_) => {
                        sessions.entry(client.into()).or_default();
                    }
                    Err(error) => unreadable(
                        &mut snapshot,
                        raw_key,
                        format!("MQTT-SN will of {client}: {error}"),
                    ),
                },
                Key::Incoming(client, id) => match PacketId::new(id) {
                    Some(id) if value.is_empty() => {
                        sessions.entry(client.into()).or_default().incoming.push(id)
                    }
                    _ => unreadable(
                        &mut snapshot,
                        raw_key,
                        format!("QoS 2 packet identifier {id} of {client}"),
                    ),
                },
            }
            Ok(())
        })?;

        let mut referenced = HashSet::new();
        for (client_id, partial) in sessions {
            let Some(record) = partial.record else {
                // What a session left behind without its record is of no use to anyone.
                snapshot
                    .cleanup
                    .push(Write::DeletePrefix(key::client_prefix(&client_id)));
                continue;
            };
            let mut entries = Vec::with_capacity(partial.entries.len());
            for (seq, entry) in partial.entries {
                if snapshot.messages.contains_key(&entry.message_id)
                    || snapshot.stored_bodies.contains_key(&entry.message_id)
                {
                    referenced.insert(entry.message_id);
                    entries.push((seq, entry));
                } else {
                    snapshot.unreadable.push(format!(
                        "queued message {seq} of {client_id}: its body {} is missing",
                        entry.message_id
                    ));
                    snapshot.cleanup.push(Write::Delete(key::entry(&client_id, seq)));
                }
            }
            snapshot.sessions.push(StoredSession {
                client_id,
                record,
                subscriptions: partial.subscriptions,
                entries,
                incoming: partial.incoming,
            });
        }
        let orphans: Vec<u64> = snapshot
            .messages
            .keys()
            .chain(snapshot.stored_bodies.keys())
            .filter(|id| !referenced.contains(*id))
            .copied()
            .collect();
        for id in orphans {
            snapshot.messages.remove(&id);
            snapshot.stored_bodies.remove(&id);
            snapshot.cleanup.push(Write::Delete(key::message(id)));
        }
        Ok(snapshot)
    }

    /// How many queued or in-flight deliveries it holds.
    pub fn entry_count(&self) -> usize {
        self.sessions.iter().map(|s| s.entries.len()).sum()
    }
}

/// The bodies to read into memory: those of every in-flight entry and of the first `hot`
/// queued entries of each session.
fn hot_bodies(sessions: &BTreeMap<ByteString, PartialSession>, hot: usize) -> HashSet<u64> {
    let mut wanted = HashSet::new();
    for session in sessions.values() {
        let mut queued = 0;
        for (_, entry) in &session.entries {
            if entry.state == crate::record::EntryState::Queued {
                queued += 1;
                if queued > hot {
                    continue;
                }
            }
            wanted.insert(entry.message_id);
        }
    }
    wanted
}

/// Opens the store at `path` (a directory, created if missing), moving aside whatever is
/// there if it cannot be used, and reads all of it.
pub fn open(path: &Path) -> Result<Opened, StoreError> {
    open_bounded(path, usize::MAX)
}

/// [`open`], reading into memory the bodies of no more than `hot` queued messages per session
/// (see [`Snapshot::load_bounded`]).
pub fn open_bounded(path: &Path, hot: usize) -> Result<Opened, StoreError> {
    let mut moved_aside = None;
    if path.exists() && !path.is_dir() {
        moved_aside = Some(move_aside(
            path,
            "it is a file, not a Midge store directory (a Mosquitto database cannot be read by Midge)".into(),
        )?);
    }
    match try_open(path, hot) {
        Ok((store, snapshot)) => Ok(Opened {
            store,
            snapshot,
            moved_aside,
        }),
        Err(Attempt::Fatal(error)) => Err(error),
        Err(Attempt::Damaged(reason)) => {
            let moved = move_aside(path, reason)?;
            match try_open(path, hot) {
                Ok((store, snapshot)) => Ok(Opened {
                    store,
                    snapshot,
                    moved_aside: Some(moved),
                }),
                Err(Attempt::Fatal(error)) => Err(error),
                // A new, empty store failed too: not the data's fault.
                Err(Attempt::Damaged(reason)) => Err(StoreError::Unusable {
                    path: path.to_path_buf(),
                    reason: format!("a new store could not be made there: {reason}"),
                }),
            }
        }
    }
}

enum Attempt {
    Fatal(StoreError),
    Damaged(String),
}

fn try_open(path: &Path, hot: usize) -> Result<(Arc<FjallStore>, Snapshot), Attempt> {
    let store = match FjallStore::open_dir(path) {
        Ok(store) => store,
        Err(OpenFailure::Locked) => return Err(Attempt::Fatal(StoreError::Locked(path.to_path_buf()))),
        Err(OpenFailure::Environment(reason)) => {
            return Err(Attempt::Fatal(StoreError::Unusable {
                path: path.to_path_buf(),
                reason,
            }));
        }
        Err(OpenFailure::Damaged(reason)) => return Err(Attempt::Damaged(reason)),
    };
    let mut version = None;
    let mut any = false;
    let scanned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.scan(&mut |key, value| {
            any = true;
            if key == key::VERSION {
                version = Some(value.to_vec());
            }
            Ok(())
        })
    }));
    match scanned {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Err(Attempt::Damaged(format!("reading it failed: {error}"))),
        Err(_) => return Err(Attempt::Damaged("the storage engine failed reading it".into())),
    }
    match version.as_deref() {
        Some([FORMAT]) => {}
        None if !any => {
            // A new store (or one that was never written): stamp the format.
            store
                .apply(&[Write::Put(
                    key::VERSION.to_vec(),
                    bytes::Bytes::from_static(&[FORMAT]),
                )])
                .and_then(|()| store.sync())
                .map_err(|error| {
                    Attempt::Fatal(StoreError::Unusable {
                        path: path.to_path_buf(),
                        reason: error.to_string(),
                    })
                })?;
        }
        None => return Err(Attempt::Damaged("it has no format version record".into())),
        Some(other) => {
            return Err(Attempt::Damaged(format!(
                "its format version is {other:?}, and this Midge reads version {FORMAT}"
            )));
        }
    }
    let snapshot = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Snapshot::load_bounded(&store, hot)
    })) {
        Ok(Ok(snapshot)) => snapshot,
        Ok(Err(error)) => return Err(Attempt::Damaged(format!("reading it failed: {error}"))),
        Err(_) => return Err(Attempt::Damaged("the storage engine failed reading it".into())),
    };
    Ok((Arc::new(store), snapshot))
}

/// Renames `path` to `<path>.corrupt-<UTC timestamp>`.
fn move_aside(path: &Path, reason: String) -> Result<MovedAside, StoreError> {
    let stamp = utc_stamp(SystemTime::now());
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".corrupt-{stamp}"));
    let mut to = path.with_file_name(&name);
    let mut n = 1;
    while to.exists() {
        n += 1;
        let mut numbered = name.clone();
        numbered.push(format!("-{n}"));
        to = path.with_file_name(numbered);
    }
    std::fs::rename(path, &to).map_err(|source| StoreError::Io {
        action: "moving aside",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(MovedAside { to, reason })
}

/// `YYYYMMDDTHHMMSSZ` for a time.
fn utc_stamp(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rest = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests;
