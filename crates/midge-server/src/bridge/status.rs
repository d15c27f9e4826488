//! What a running bridge shows: whether its link is up, and how many messages it forwarded each
//! way and dropped, counted by its task and read by `$SYS` (`crate::sys`) every `sys_interval`
//! under `$SYS/broker/connection/NAME/`. Queued messages are the broker's to count (the bridge's
//! local session), so `sys` asks the broker for them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// One bridge's state and counters.
#[derive(Debug)]
pub struct BridgeStatus {
    /// The bridge's name (`connection NAME`).
    pub name: String,
    /// The client identifier of its session in this broker.
    pub local_client_id: String,
    connected: AtomicBool,
    forwarded_out: AtomicU64,
    forwarded_in: AtomicU64,
    dropped: AtomicU64,
}

impl BridgeStatus {
    pub(crate) fn new(name: &str, local_client_id: &str) -> Self {
        Self {
            name: name.to_owned(),
            local_client_id: local_client_id.to_owned(),
            connected: AtomicBool::new(false),
            forwarded_out: AtomicU64::new(0),
            forwarded_in: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Whether the link to the remote broker is up.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Messages sent to the remote broker (for QoS 1 and 2: acknowledged by it).
    pub fn forwarded_out(&self) -> u64 {
        self.forwarded_out.load(Ordering::Relaxed)
    }

    /// Messages received from the remote broker and published here.
    pub fn forwarded_in(&self) -> u64 {
        self.forwarded_in.load(Ordering::Relaxed)
    }

    /// Messages the bridge itself did not forward: refused by the remote broker, larger than
    /// `bridge_max_packet_size` or its Maximum Packet Size, or matched by no `topic` rule.
    /// (What the local session's queue limits dropped is counted by the broker.)
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    pub(crate) fn count_out(&self) {
        self.forwarded_out.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_in(&self) {
        self.forwarded_in.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }
}
