//! Opening the persistence store at startup and rebuilding the broker from it: the one place
//! the runtime meets `midge-store`.
//!
//! A store that cannot be read is moved aside by `midge_store::open`; this module says so in
//! the log, loudly, with what was lost, and starts empty. A store that is locked by another
//! process, or in a directory the broker may not write, stops the start with a clear error.

use std::sync::Arc;
use std::time::Instant;

use midge_core::{Broker, BrokerConfig};
use midge_store::{Journal, StoreError};

use crate::config::Persistence;

/// Opens the store `persistence` names, starts its journal, and returns a broker rebuilt from
/// what it held.
pub fn open_broker(
    config: BrokerConfig,
    id_seed: u64,
    persistence: &Persistence,
) -> Result<Arc<Broker>, StoreError> {
    let path = persistence.path();
    let opened = midge_store::open_bounded(&path, midge_core::OFFLINE_QUEUE_IN_MEMORY)?;
    if let Some(moved) = &opened.moved_aside {
        tracing::error!(
            path = %path.display(),
            moved_to = %moved.to.display(),
            reason = %moved.reason,
            "Error: the persistence store {} could not be read ({}); it was moved to {} and the broker starts with an empty store: sessions, queued messages and retained messages in it are not restored.",
            path.display(),
            moved.reason,
            moved.to.display(),
        );
    }
    let snapshot = opened.snapshot;
    for problem in snapshot.unreadable.iter().take(20) {
        tracing::warn!(path = %path.display(), "Warning: unreadable record in the persistence store, skipped: {problem}.");
    }
    if snapshot.unreadable.len() > 20 {
        tracing::warn!(
            "Warning: {} more unreadable records in the persistence store skipped.",
            snapshot.unreadable.len() - 20
        );
    }
    let journal = Journal::start(opened.store, persistence.fsync, snapshot.next_message_id);
    let broker = Broker::with_journal(config, id_seed, journal);
    let restored = broker.restore(snapshot, Instant::now());
    tracing::info!(
        path = %path.display(),
        "Restored from {}: {} sessions, {} subscriptions, {} queued messages, {} retained messages{}.",
        path.display(),
        restored.sessions,
        restored.subscriptions,
        restored.messages,
        restored.retained,
        if restored.expired > 0 {
            format!(" ({} expired while the broker was down)", restored.expired)
        } else {
            String::new()
        },
    );
    Ok(broker)
}
