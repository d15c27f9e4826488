//! The storage engine behind one small trait: ordered keys, atomic batches, an explicit sync.
//!
//! [`FjallStore`] is the engine in use (fjall, an LSM tree with a journal: every committed
//! batch reaches the operating system before `apply` returns, so it survives a crash of the
//! process; [`Store::sync`] makes it survive power loss). [`MemoryStore`] keeps everything in
//! a map, for tests. Why fjall and not redb: `docs/persistence.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::error::StoreError;

/// One change in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Sets `key` to the value.
    Put(Vec<u8>, Bytes),
    /// Removes `key`.
    Delete(Vec<u8>),
    /// Removes every key starting with the prefix (as of the batch's start).
    DeletePrefix(Vec<u8>),
}

/// What [`Store::scan`] calls with each key and value.
pub type Visitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<(), StoreError> + 'a;

/// An ordered key-value engine.
pub trait Store: Send + Sync + fmt::Debug {
    /// Applies `writes` in order, all or none.
    fn apply(&self, writes: &[Write]) -> Result<(), StoreError>;

    /// Makes everything applied so far survive power loss.
    fn sync(&self) -> Result<(), StoreError>;

    /// The value of `key`, if it has one.
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError>;

    /// Calls `visit` with every key and value, in key order; stops at the first error the
    /// visitor or the engine reports.
    fn scan(&self, visit: &mut Visitor<'_>) -> Result<(), StoreError>;

    /// Calls `visit` with every key starting with `prefix` and its value, in key order; stops
    /// as [`Store::scan`] does.
    fn scan_prefix(&self, prefix: &[u8], visit: &mut Visitor<'_>) -> Result<(), StoreError>;
}

/// The name of the one keyspace Midge uses inside a fjall database.
const KEYSPACE: &str = "broker";

/// Roughly what the engine may hold in memory, in bytes (memtables and block cache).
const MEMORY_BUDGET: u64 = 32 * 1024 * 1024;

/// A store on disk in a fjall database directory.
pub struct FjallStore {
    path: PathBuf,
    database: fjall::Database,
    keyspace: fjall::Keyspace,
}

impl fmt::Debug for FjallStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FjallStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Why fjall would not open a database.
#[derive(Debug)]
pub(crate) enum OpenFailure {
    /// Another process has it.
    Locked,
    /// The environment is at fault (permissions, read-only file system); moving the store
    /// aside would not help.
    Environment(String),
    /// What is on disk is not a readable database.
    Damaged(String),
}

impl FjallStore {
    /// Opens (or creates) the database at `path`. Fjall recovers a torn journal tail on its
    /// own; anything it cannot recover is [`OpenFailure::Damaged`]. A panic inside the engine
    /// on damaged files is caught and reported the same way.
    pub(crate) fn open_dir(path: &Path) -> Result<Self, OpenFailure> {
        let owned = path.to_path_buf();
        let opened = std::panic::catch_unwind(move || {
            // Memory: fjall's defaults (64 MiB memtables, a 32 MiB block cache, 512 MiB of
            // journal) suit a database server; a broker's store is a queue whose records mostly
            // live for milliseconds, so small memtables hold the working set and the broker's
            // own memory stays that of a broker.
            let database = fjall::Database::builder(&owned)
                .worker_threads(1)
                .cache_size(MEMORY_BUDGET / 4)
                .max_journaling_size(MEMORY_BUDGET * 4)
                .open()?;
            let keyspace = database.keyspace(KEYSPACE, || {
                fjall::KeyspaceCreateOptions::default().max_memtable_size(MEMORY_BUDGET / 4)
            })?;
            Ok::<_, fjall::Error>((database, keyspace))
        });
        match opened {
            Ok(Ok((database, keyspace))) => Ok(Self {
                path: path.to_path_buf(),
                database,
                keyspace,
            }),
            Ok(Err(error)) => Err(classify(error)),
            Err(panic) => Err(OpenFailure::Damaged(format!(
                "the storage engine failed reading it ({})",
                panic_text(&*panic)
            ))),
        }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned())
}

fn classify(error: fjall::Error) -> OpenFailure {
    use std::io::ErrorKind;
    match error {
        fjall::Error::Locked => OpenFailure::Locked,
        fjall::Error::Io(io)
            if matches!(
                io.kind(),
                ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem | ErrorKind::StorageFull
            ) =>
        {
            OpenFailure::Environment(io.to_string())
        }
        other => OpenFailure::Damaged(engine_text(&other)),
    }
}

fn engine_text(error: &fjall::Error) -> String {
    match error {
        fjall::Error::Io(io) => io.to_string(),
        other => format!("{other:?}"),
    }
}

fn engine(error: fjall::Error) -> StoreError {
    StoreError::Engine(engine_text(&error))
}

impl Store for FjallStore {
    fn apply(&self, writes: &[Write]) -> Result<(), StoreError> {
        // Every item of a fjall batch gets the same sequence number, so two writes to one key
        // in a batch would be ambiguous: the batch is first reduced to the last write per key.
        let mut last: BTreeMap<Vec<u8>, Option<&Bytes>> = BTreeMap::new();
        for write in writes {
            match write {
                Write::Put(key, value) => {
                    last.insert(key.clone(), Some(value));
                }
                Write::Delete(key) => {
                    last.insert(key.clone(), None);
                }
                Write::DeletePrefix(prefix) => {
                    for item in self.keyspace.prefix(prefix) {
                        last.insert(item.key().map_err(engine)?.to_vec(), None);
                    }
                    for (_, value) in last
                        .range_mut(prefix.clone()..)
                        .take_while(|(k, _)| k.starts_with(prefix))
                    {
                        *value = None;
                    }
                }
            }
        }
        let mut batch = self.database.batch();
        for (key, value) in last {
            match value {
                Some(value) => batch.insert(&self.keyspace, key, value.as_ref()),
                None => batch.remove(&self.keyspace, key),
            }
        }
        batch.commit().map_err(engine)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.database
            .persist(fjall::PersistMode::SyncData)
            .map_err(engine)
    }

    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        Ok(self
            .keyspace
            .get(key)
            .map_err(engine)?
            .map(|value| Bytes::copy_from_slice(&value)))
    }

    fn scan(&self, visit: &mut Visitor<'_>) -> Result<(), StoreError> {
        for item in self.keyspace.iter() {
            let (key, value) = item.into_inner().map_err(engine)?;
            visit(&key, &value)?;
        }
        Ok(())
    }

    fn scan_prefix(&self, prefix: &[u8], visit: &mut Visitor<'_>) -> Result<(), StoreError> {
        for item in self.keyspace.prefix(prefix) {
            let (key, value) = item.into_inner().map_err(engine)?;
            visit(&key, &value)?;
        }
        Ok(())
    }
}

/// A store in memory, for tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: Mutex<BTreeMap<Vec<u8>, Bytes>>,
    syncs: std::sync::atomic::AtomicU64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of keys held.
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.map.lock().is_empty()
    }

    /// How many times [`Store::sync`] was called.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Store for MemoryStore {
    fn apply(&self, writes: &[Write]) -> Result<(), StoreError> {
        let mut map = self.map.lock();
        for write in writes {
            match write {
                Write::Put(key, value) => {
                    map.insert(key.clone(), value.clone());
                }
                Write::Delete(key) => {
                    map.remove(key);
                }
                Write::DeletePrefix(prefix) => map.retain(|key, _| !key.starts_with(prefix)),
            }
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.syncs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        Ok(self.map.lock().get(key).cloned())
    }

    fn scan(&self, visit: &mut Visitor<'_>) -> Result<(), StoreError> {
        let map = self.map.lock();
        for (key, value) in map.iter() {
            visit(key, value)?;
        }
        Ok(())
    }

    fn scan_prefix(&self, prefix: &[u8], visit: &mut Visitor<'_>) -> Result<(), StoreError> {
        let map = self.map.lock();
        for (key, value) in map
            .range(prefix.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
        {
            visit(key, value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn exercise(store: &dyn Store) {
        store
            .apply(&[
                Write::Put(b"a1".to_vec(), Bytes::from_static(b"x")),
                Write::Put(b"a2".to_vec(), Bytes::from_static(b"y")),
                Write::Put(b"b1".to_vec(), Bytes::from_static(b"z")),
            ])
            .unwrap();
        store
            .apply(&[
                Write::Put(b"a4".to_vec(), Bytes::from_static(b"v")),
                Write::DeletePrefix(b"a".to_vec()),
                Write::Put(b"a3".to_vec(), Bytes::from_static(b"old")),
                Write::Put(b"a3".to_vec(), Bytes::from_static(b"w")),
                Write::Put(b"b1".to_vec(), Bytes::from_static(b"new")),
                Write::Delete(b"b1".to_vec()),
            ])
            .unwrap();
        store.sync().unwrap();
        let mut seen = Vec::new();
        store
            .scan(&mut |k, v| {
                seen.push((k.to_vec(), v.to_vec()));
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, vec![(b"a3".to_vec(), b"w".to_vec())]);
        store
            .apply(&[
                Write::Put(b"b".to_vec(), Bytes::from_static(b"1")),
                Write::Put(b"ba".to_vec(), Bytes::from_static(b"2")),
                Write::Put(b"c".to_vec(), Bytes::from_static(b"3")),
            ])
            .unwrap();
        let mut under_b = Vec::new();
        store
            .scan_prefix(b"b", &mut |k, _| {
                under_b.push(k.to_vec());
                Ok(())
            })
            .unwrap();
        assert_eq!(under_b, vec![b"b".to_vec(), b"ba".to_vec()]);
        store
            .apply(&[
                Write::Delete(b"b".to_vec()),
                Write::Delete(b"ba".to_vec()),
                Write::Delete(b"c".to_vec()),
            ])
            .unwrap();
    }

    #[test]
    fn memory_store_applies_batches_in_order() {
        exercise(&MemoryStore::new());
    }

    #[test]
    fn fjall_store_applies_batches_in_order_and_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = FjallStore::open_dir(&path).unwrap();
            exercise(&store);
        }
        let store = FjallStore::open_dir(&path).unwrap();
        let mut count = 0;
        store
            .scan(&mut |_, _| {
                count += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(count, 1);
    }
}
