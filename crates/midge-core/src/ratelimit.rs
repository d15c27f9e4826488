//! Rate-limited warnings for dropped messages: one line per session and reason per interval,
//! with the number dropped since the last line, so a flood of drops cannot flood the log.
//!
//! The state lives in each session, under the session's lock that the drop already holds: no
//! global lock and no allocation per dropped message, which matters exactly when a stalled
//! subscriber makes every message a drop. Time comes from the caller, like every clock reading
//! in the core.

use std::time::{Duration, Instant};

use crate::stats::DropReason;

const INTERVAL: Duration = Duration::from_secs(10);

/// When each kind of drop was last reported for one session, and how many since.
#[derive(Debug, Default, Clone)]
pub(crate) struct DropReports {
    last: [Option<Instant>; DropReason::ALL.len()],
    suppressed: [u64; DropReason::ALL.len()],
}

impl DropReports {
    /// Notes a message dropped for `client_id`, logging a warning if none was logged for this
    /// reason in the last interval.
    pub(crate) fn note(&mut self, client_id: &str, reason: DropReason, now: Instant) {
        let index = reason as usize;
        let (Some(last), Some(suppressed)) = (self.last.get_mut(index), self.suppressed.get_mut(index))
        else {
            return;
        };
        *suppressed += 1;
        if last.is_none_or(|at| now.duration_since(at) >= INTERVAL) {
            tracing::warn!(
                client_id,
                reason = reason.as_str(),
                dropped = *suppressed,
                "dropped messages for client {client_id}: {} ({} since the last report)",
                reason.as_str(),
                *suppressed
            );
            *last = Some(now);
            *suppressed = 0;
        }
    }
}
