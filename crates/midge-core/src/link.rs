//! How the core reaches a connection it does not own: the runtime gives each connection a
//! [`Link`], and the core calls it when that connection has new work.
//!
//! This keeps the core free of I/O and of any async runtime: waking is a callback, and what the
//! connection then does is the runtime's business.

use std::time::Instant;

use midge_codec::ReasonCode;

/// The runtime's handle on one live connection.
pub trait Link: Send + Sync + std::fmt::Debug {
    /// Messages were queued for this connection's session: call `Connection::drain` soon.
    fn wake(&self);
    /// The broker ends this connection: send an MQTT 5 DISCONNECT with `reason` if the client
    /// speaks 5.0, then close the socket. The session was already detached; the connection's
    /// `end` will find nothing left to do.
    fn close(&self, reason: ReasonCode);
    /// Called a few times a second on the link of every connected client
    /// ([`Broker::tick_links`](crate::Broker::tick_links)), for what the runtime checks by the
    /// clock, such as the keep-alive deadline: one pass over every client instead of a timer
    /// in each.
    fn tick(&self, _now: Instant) {}
    /// Whether the connection was woken and has not run since: what it has not taken from its
    /// queue then waits for the broker (a busy thread), not for the client. Flow control does
    /// not take such a subscriber for stalled (`backpressure.rs`).
    fn wake_pending(&self) -> bool {
        false
    }
}
