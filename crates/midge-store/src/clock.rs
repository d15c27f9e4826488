//! The broker reasons in `Instant`s, which mean nothing after a restart; the store keeps
//! wall-clock milliseconds since the Unix epoch. [`WallClock`] converts between the two through
//! one pair of readings taken when it was made.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A fixed correspondence between the monotonic clock and the wall clock.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    instant: Instant,
    unix_ms: u64,
}

impl WallClock {
    /// Reads both clocks now.
    pub fn now() -> Self {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self {
            instant: Instant::now(),
            unix_ms,
        }
    }

    /// A clock where `instant` is `unix_ms`; for tests.
    pub fn at(instant: Instant, unix_ms: u64) -> Self {
        Self { instant, unix_ms }
    }

    /// `at` as milliseconds since the epoch.
    pub fn to_unix_ms(&self, at: Instant) -> u64 {
        if at >= self.instant {
            let ahead = u64::try_from(at.duration_since(self.instant).as_millis()).unwrap_or(u64::MAX);
            self.unix_ms.saturating_add(ahead)
        } else {
            let behind = u64::try_from(self.instant.duration_since(at).as_millis()).unwrap_or(u64::MAX);
            self.unix_ms.saturating_sub(behind)
        }
    }

    /// Milliseconds since the epoch as an `Instant` of this process. A time before the clock's
    /// reading that `Instant` cannot express is clamped to the reading.
    pub fn to_instant(&self, unix_ms: u64) -> Instant {
        if unix_ms >= self.unix_ms {
            self.instant + Duration::from_millis(unix_ms - self.unix_ms)
        } else {
            self.instant
                .checked_sub(Duration::from_millis(self.unix_ms - unix_ms))
                .unwrap_or(self.instant)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_both_ways() {
        let base = Instant::now() + Duration::from_secs(1000);
        let clock = WallClock::at(base, 1_000_000);
        assert_eq!(clock.to_unix_ms(base + Duration::from_secs(5)), 1_005_000);
        assert_eq!(clock.to_unix_ms(base - Duration::from_secs(5)), 995_000);
        assert_eq!(clock.to_instant(1_005_000), base + Duration::from_secs(5));
        assert_eq!(clock.to_instant(995_000), base - Duration::from_secs(5));
    }
}
