//! Failures of the storage engine, as the broker sees them.

use std::path::PathBuf;

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine reported an error (I/O, corruption, a full disk).
    #[error("storage engine: {0}")]
    Engine(String),
    /// Another process holds the store open.
    #[error("{} is in use by another process", .0.display())]
    Locked(PathBuf),
    /// The store could not be opened for a reason that moving it aside would not cure
    /// (permissions, a read-only file system).
    #[error("cannot open {}: {reason}", path.display())]
    Unusable {
        /// The store's path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A file system operation around the store failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}
