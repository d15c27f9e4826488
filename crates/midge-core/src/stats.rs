//! The broker's counters: what happened, how often, and every message dropped by a limit, by
//! reason. They feed logs now and `$SYS` and `/metrics` later.
//!
//! Counters are relaxed atomics: cheap on the hot path, read approximately.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a message was not delivered to a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The session's queue held `max_queued_messages`.
    QueueFull,
    /// The session's queue held `max_queued_bytes`.
    QueueBytesFull,
    /// QoS 0 for an offline session without `queue_qos0_messages`.
    Qos0Offline,
    /// The message expired before it could be sent.
    Expired,
    /// The packet would exceed the client's Maximum Packet Size [MQTT-3.1.2-25].
    TooLargeForClient,
    /// The payload exceeded `message_size_limit` on receipt.
    MessageSizeLimit,
}

impl DropReason {
    /// Every reason, for reporting.
    pub const ALL: [Self; 6] = [
        Self::QueueFull,
        Self::QueueBytesFull,
        Self::Qos0Offline,
        Self::Expired,
        Self::TooLargeForClient,
        Self::MessageSizeLimit,
    ];

    /// A short name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::QueueBytesFull => "queue_bytes_full",
            Self::Qos0Offline => "qos0_offline",
            Self::Expired => "expired",
            Self::TooLargeForClient => "too_large_for_client",
            Self::MessageSizeLimit => "message_size_limit",
        }
    }
}

/// Broker-wide counters.
#[derive(Debug, Default)]
pub struct Stats {
    /// PUBLISH packets received from clients.
    pub publish_received: AtomicU64,
    /// PUBLISH packets sent to clients.
    pub publish_sent: AtomicU64,
    /// Clients that completed CONNECT.
    pub connects: AtomicU64,
    /// Connections refused at CONNECT.
    pub connects_refused: AtomicU64,
    /// Publishes (wills included) refused by the access rules.
    pub denied_write: AtomicU64,
    /// Subscriptions refused by the access rules.
    pub denied_subscribe: AtomicU64,
    /// Deliveries withheld by the access rules.
    pub denied_read: AtomicU64,
    /// MQTT packets of any kind received (counted by the runtime as it decodes them).
    pub packets_received: AtomicU64,
    /// MQTT packets of any kind sent.
    pub packets_sent: AtomicU64,
    /// Bytes read from client sockets (after TLS and WebSocket framing are taken off).
    pub bytes_received: AtomicU64,
    /// Bytes written to client sockets.
    pub bytes_sent: AtomicU64,
    /// Payload bytes of the PUBLISH packets received.
    pub publish_bytes_received: AtomicU64,
    /// Payload bytes of the PUBLISH packets sent.
    pub publish_bytes_sent: AtomicU64,
    /// Sessions ended because their expiry interval passed while disconnected.
    pub sessions_expired: AtomicU64,
    dropped: [AtomicU64; 6],
}

impl Stats {
    /// Adds one to a counter.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to a counter (for the runtime, which counts packets and bytes).
    pub fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The value of a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Counts a dropped message.
    pub(crate) fn dropped(&self, reason: DropReason) {
        if let Some(counter) = self.dropped.get(reason as usize) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Messages dropped for `reason` so far.
    pub fn dropped_count(&self, reason: DropReason) -> u64 {
        self.dropped
            .get(reason as usize)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Messages dropped for any reason so far.
    pub fn dropped_total(&self) -> u64 {
        DropReason::ALL.iter().map(|r| self.dropped_count(*r)).sum()
    }
}
