//! The limits on what a client controls before it is even a client: how many connections a
//! listener (`max_connections`) and the broker (`global_max_connections`) hold, how fast one
//! address may open them (`max_connection_rate`, a Midge extension), and the counts of every
//! time a limit was hit, for the logs now and `$SYS` and metrics later.
//!
//! Refusals are logged, but at most one line per listener and limit per second with the number
//! refused since, so a flood of connections cannot flood the log too.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How often a refusal of one kind is logged at most, per listener.
const LOG_EVERY: Duration = Duration::from_secs(1);
/// The window of `max_connection_rate`.
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// Addresses remembered for the rate limit before old ones are forgotten.
const RATE_MEMORY: usize = 16_384;

/// How many times each limit was hit since the start, broker-wide.
#[derive(Debug, Default)]
pub struct ConnectionCounters {
    /// Sockets accepted, refused ones included.
    pub accepted: AtomicU64,
    /// Connections closed at once because a listener's `max_connections` was reached.
    pub refused_listener_full: AtomicU64,
    /// Connections closed at once because `global_max_connections` was reached.
    pub refused_broker_full: AtomicU64,
    /// Connections closed at once because their address opened too many in a second.
    pub refused_rate: AtomicU64,
    /// Connections closed because CONNECT (or the TLS handshake, or the WebSocket upgrade)
    /// did not arrive in time.
    pub connect_timeouts: AtomicU64,
    /// TLS handshakes that failed (untrusted, expired or missing client certificates, plain
    /// MQTT on a TLS port, ...).
    pub tls_failures: AtomicU64,
    /// WebSocket upgrades that failed.
    pub websocket_failures: AtomicU64,
}

impl ConnectionCounters {
    /// Adds one to `counter`.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The value of `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Open connections, for one listener or for the whole broker.
#[derive(Debug, Default)]
pub(crate) struct OpenCount(AtomicUsize);

impl OpenCount {
    /// True when `max` connections or more are open.
    pub(crate) fn is_full(&self, max: Option<usize>) -> bool {
        max.is_some_and(|max| self.0.load(Ordering::Relaxed) >= max)
    }

    /// How many are open now.
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// A connection counted against its listener's and the broker's limits until dropped.
#[derive(Debug)]
pub(crate) struct OpenSlot {
    listener: Arc<OpenCount>,
    broker: Arc<OpenCount>,
}

impl OpenSlot {
    pub(crate) fn take(listener: &Arc<OpenCount>, broker: &Arc<OpenCount>) -> Self {
        listener.0.fetch_add(1, Ordering::Relaxed);
        broker.0.fetch_add(1, Ordering::Relaxed);
        Self {
            listener: listener.clone(),
            broker: broker.clone(),
        }
    }
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.listener.0.fetch_sub(1, Ordering::Relaxed);
        self.broker.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `max_connection_rate`: at most so many new connections per address in a second. The
/// address is an IP address, or for the MQTT-SN gateway what stands for one (a forwarder's IP
/// address and a wireless node id).
#[derive(Debug)]
pub(crate) struct RateLimit<K = IpAddr> {
    per_second: u32,
    seen: HashMap<K, (Instant, u32)>,
}

impl<K: Hash + Eq> RateLimit<K> {
    pub(crate) fn new(per_second: u32) -> Self {
        Self {
            per_second,
            seen: HashMap::new(),
        }
    }

    /// Whether a new connection from `address` is within the limit (and counts it).
    pub(crate) fn admit(&mut self, address: K, now: Instant) -> bool {
        if self.seen.len() >= RATE_MEMORY {
            self.seen
                .retain(|_, (since, _)| now.duration_since(*since) < RATE_WINDOW);
        }
        let (since, count) = self.seen.entry(address).or_insert((now, 0));
        if now.duration_since(*since) >= RATE_WINDOW {
            *since = now;
            *count = 0;
        }
        *count = count.saturating_add(1);
        *count <= self.per_second
    }
}

/// Logs one kind of refusal at most once per [`LOG_EVERY`], with the number since.
#[derive(Debug, Default)]
pub(crate) struct LogThrottle {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogThrottle {
    /// `Some(n)` when a line should be logged now, `n` being the refusals not logged since the
    /// last line; `None` to stay quiet.
    pub(crate) fn should_log(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < LOG_EVERY => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limit_counts_per_address_per_second() {
        let mut limit = RateLimit::new(2);
        let start = Instant::now();
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        assert!(limit.admit(a, start));
        assert!(limit.admit(a, start));
        assert!(!limit.admit(a, start), "a third in the same second");
        assert!(limit.admit(b, start), "another address has its own count");
        assert!(limit.admit(a, start + RATE_WINDOW), "a new second");
    }

    #[test]
    fn refusals_are_logged_once_a_second_with_the_number_in_between() {
        let mut throttle = LogThrottle::default();
        let start = Instant::now();
        assert_eq!(throttle.should_log(start), Some(0));
        assert_eq!(throttle.should_log(start + Duration::from_millis(10)), None);
        assert_eq!(throttle.should_log(start + Duration::from_millis(20)), None);
        assert_eq!(throttle.should_log(start + LOG_EVERY), Some(2));
    }
}
