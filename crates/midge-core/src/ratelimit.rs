//! Rate-limited warnings for dropped messages: one line per client and reason per interval,
//! with the number dropped since the last line, so a flood of drops cannot flood the log.
//!
//! Time comes from the caller, like every clock reading in the core.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::stats::DropReason;

const INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Window {
    last: Option<Instant>,
    suppressed: u64,
}

fn windows() -> &'static Mutex<HashMap<(String, DropReason), Window>> {
    static WINDOWS: OnceLock<Mutex<HashMap<(String, DropReason), Window>>> = OnceLock::new();
    WINDOWS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Logs that a message for `client_id` was dropped, at most once per interval per reason.
pub(crate) fn warn_dropped(client_id: &str, reason: DropReason, now: Instant) {
    let mut windows = windows().lock();
    if windows.len() > 10_000 {
        windows.retain(|_, w| w.last.is_some_and(|last| now.duration_since(last) < INTERVAL));
    }
    let window = windows.entry((client_id.to_owned(), reason)).or_insert(Window {
        last: None,
        suppressed: 0,
    });
    if window
        .last
        .is_none_or(|last| now.duration_since(last) >= INTERVAL)
    {
        tracing::warn!(
            client_id,
            reason = reason.as_str(),
            dropped = window.suppressed + 1,
            "dropped messages for client {client_id}: {} ({} since the last report)",
            reason.as_str(),
            window.suppressed + 1
        );
        window.last = Some(now);
        window.suppressed = 0;
    } else {
        window.suppressed += 1;
    }
}
