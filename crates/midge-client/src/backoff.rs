//! How long to wait before the next connection attempt: a fixed delay, or Mosquitto's bridge
//! backoff ("decorrelated jitter": each wait is drawn between the base and three times the last
//! one, never above the cap, and back to the base after a connection succeeds).
//!
//! The jitter needs no cryptographic randomness, only enough that many clients restarted at
//! once do not retry in step: a xorshift generator seeded from the clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The delay between connection attempts.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    cap: Option<Duration>,
    current: Duration,
    state: u64,
}

impl Backoff {
    /// `base` every time, or with a `cap`, jittered from `base` up to `cap`.
    pub(crate) fn new(base: Duration, cap: Option<Duration>) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0x9E37_79B9, |d| d.as_nanos() as u64);
        Self {
            base,
            cap: cap.filter(|cap| *cap > base),
            current: base,
            state: nanos | 1,
        }
    }

    /// The wait before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let Some(cap) = self.cap else {
            return self.base;
        };
        let high = self
            .current
            .saturating_mul(3)
            .max(self.base.saturating_add(Duration::from_millis(1)));
        let span = u64::try_from((high - self.base).as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let drawn = self
            .base
            .saturating_add(Duration::from_millis(self.random() % span));
        self.current = drawn.min(cap);
        self.current
    }

    /// A connection succeeded: the next wait starts from the base again.
    pub(crate) fn reset(&mut self) {
        self.current = self.base;
    }

    fn random(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_cap_the_delay_is_fixed() {
        let mut backoff = Backoff::new(Duration::from_secs(2), None);
        for _ in 0..5 {
            assert_eq!(backoff.next_delay(), Duration::from_secs(2));
        }
    }

    #[test]
    fn with_a_cap_delays_stay_between_base_and_cap_and_grow() {
        let base = Duration::from_secs(5);
        let cap = Duration::from_secs(30);
        let mut backoff = Backoff::new(base, Some(cap));
        let mut reached_cap = false;
        for _ in 0..200 {
            let delay = backoff.next_delay();
            assert!(delay >= base && delay <= cap, "{delay:?}");
            reached_cap |= delay == cap;
        }
        assert!(reached_cap, "repeated failures reach the cap");
        backoff.reset();
        let after_reset = backoff.next_delay();
        assert!(after_reset < base * 3, "{after_reset:?}");
    }

    #[test]
    fn huge_delays_saturate_instead_of_overflowing() {
        let mut backoff = Backoff::new(Duration::from_secs(u64::MAX / 2), Some(Duration::MAX));
        for _ in 0..100 {
            assert!(backoff.next_delay() >= Duration::from_secs(u64::MAX / 2));
        }
    }
}
