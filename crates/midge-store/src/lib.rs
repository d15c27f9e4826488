//! Durable broker state for Midge: sessions, subscriptions, queued and in-flight messages,
//! QoS 2 packet identifiers awaiting PUBREL, retained messages, and the MQTT-SN gateway's
//! topic ids and wills of persistent clients, kept write-ahead so that an
//! acknowledged message survives `kill -9` (and, with fsync, power loss).
//!
//! # Layout
//! - [`store`]: the [`Store`] trait — an ordered key-value engine with atomic batches — and
//!   its two implementations: [`FjallStore`] on disk, [`MemoryStore`] for tests.
//! - [`journal`]: the [`Journal`] the broker writes through. Writes are queued in memory in
//!   the order the broker's state changed and committed by one writer thread in batches (group
//!   commit); each write gets a sequence number, and [`Journal::durable`] says how far the
//!   store has committed, so the runtime sends an acknowledgement only after what it
//!   acknowledges is stored.
//! - [`record`]: the typed records and their versioned encodings; message bodies are MQTT 5
//!   PUBLISH packets, subscriptions MQTT 5 SUBSCRIBE packets, read back by `midge-codec`.
//! - [`key`]: where each record lives in the key space.
//! - [`open`]: opening a store on startup: a store that cannot be read is moved aside as
//!   `<name>.corrupt-<timestamp>` and an empty one takes its place; what could be read is
//!   returned as a [`Snapshot`].
//! - [`clock`]: broker deadlines (`Instant`) to and from wall-clock milliseconds.
//!
//! # Rules
//! Nothing here panics on what it reads back: a record that does not decode is reported and
//! skipped, a store that does not open is moved aside. Engine choice and measurements:
//! `docs/persistence.md`.

pub mod clock;
pub mod journal;
pub mod key;
pub mod open;
pub mod record;
pub mod store;

mod error;

pub use clock::WallClock;
pub use error::StoreError;
pub use journal::{AtomicWrites, FsyncPolicy, Journal, Seq, SnSession};
pub use open::{MovedAside, Opened, Snapshot, StoredSession, open, open_bounded};
pub use record::{
    EntryRecord, EntryState, MessageRecord, RecordError, SessionRecord, SnTopicRecord, SubscriptionRecord,
    WillRecord,
};
pub use store::{FjallStore, MemoryStore, Store, Write};
