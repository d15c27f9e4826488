//! Flow control from subscribers back to publishers: a publisher whose messages fill a
//! connected subscriber's queue stops being read until that queue drains, instead of the broker
//! dropping what no longer fits.
//!
//! A subscriber's queue is *congested* when it holds half of what `max_queued_messages` (or
//! `max_queued_bytes`) allows, or [`PRESSURE_MESSAGES`] ([`PRESSURE_BYTES`]) if that is less. A delivery that leaves it congested is reported in
//! [`Routed`](crate::broker::Routed); the publishing connection then registers its link with
//! that session and the runtime reads nothing more from it ([`Connection::read_paused`]) until
//! the queue is down to half that, when the subscriber's drain wakes every waiting publisher.
//! TCP does the rest: the publisher's socket buffers fill and its client blocks or waits for
//! acknowledgements, so a fast publisher runs at its slowest subscriber's pace and nothing is
//! lost.
//!
//! A subscriber that stops taking messages altogether must not stall anyone: a queue from which
//! nothing was taken for [`STALLED_AFTER`] is *stalled* and exerts no pressure until it drains
//! again; meanwhile the queue limits drop its messages and count them, as without flow control.
//! Not while the subscriber's connection has a wake it has not run yet (the broker is behind,
//! not the client): such a queue stalls only after [`STALLED_AFTER_BUSY`].
//! So a stalled subscriber holds its publishers once, for that long. Offline sessions never
//! exert pressure: their queue limits decide alone; nor do the sessions of clients that are
//! attached but said they take nothing for now (an MQTT-SN client asleep,
//! [`Connection::set_taking_messages`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::BrokerConfig;
use crate::connection::Connection;
use crate::link::Link;
use crate::session::{Session, SessionCell};

/// How long a congested queue may go without a message taken from it before its subscriber
/// counts as stalled. A subscriber that is reading takes messages every few milliseconds; this
/// is short so that a stalled one costs its publishers little. The price: on a machine with
/// more busy processes than cores, a reading subscriber that waits this long for the CPU
/// counts as stalled too, and what overflows its queue meanwhile is dropped (and counted).
/// 250 ms was tried: two stalled subscribers then held a flat-out publisher to a tenth of its
/// rate for half a second (`tests/robustness.rs`).
pub const STALLED_AFTER: Duration = Duration::from_millis(100);

/// How long a congested queue may go without a message taken from it while its subscriber's
/// connection has a wake it has not run yet ([`Link::wake_pending`]). That wait is the broker's
/// (a thread busy with a thousand other subscribers), not the client's, and counting such a
/// subscriber as stalled after [`STALLED_AFTER`] dropped its messages (`fanout` to 1,000
/// subscribers, QoS 1, in docs/performance.md); past this, a subscriber counts as stalled
/// whatever the reason, so that a connection that never runs cannot hold its publishers.
pub const STALLED_AFTER_BUSY: Duration = Duration::from_secs(1);

/// How soon a publisher held by a queue whose subscriber the broker has not run yet looks
/// again (instead of at once, which with one thread would keep that subscriber from running).
const RECHECK_BUSY: Duration = Duration::from_millis(10);

/// Queue length and bytes at which a queue starts to hold its publishers: half what the queue
/// limits allow, and at most [`PRESSURE_MESSAGES`] and [`PRESSURE_BYTES`].
fn pressure_at(config: &BrokerConfig) -> (usize, u64) {
    let messages = match config.max_queued_messages {
        0 => PRESSURE_MESSAGES,
        limit => (limit / 2).clamp(1, PRESSURE_MESSAGES),
    };
    let bytes = match config.max_queued_bytes {
        0 => PRESSURE_BYTES,
        limit => (limit / 2).clamp(1, PRESSURE_BYTES),
    };
    (messages, bytes)
}

/// The most a queue holds before it pushes back, in messages: enough to keep its subscriber
/// busy while a paused publisher is woken and read again, and little enough that messages do
/// not wait long in it (the rest of a burst waits in the publisher's socket, costing the broker
/// nothing). With the default `max_queued_messages` of 1000 the mark is half that, 500: at
/// 100, a subscriber fed flat out by eight publishers got its messages a hundred at a time,
/// one write (and one wake of the reader in the kernel) each, and the pausing and resuming
/// cost more than the messages (`fanin` QoS 0: 2.9M against 3.3M msg/s).
pub const PRESSURE_MESSAGES: usize = 1000;

/// Likewise in bytes, so that large messages do not pile up a hundred deep.
pub const PRESSURE_BYTES: u64 = 1024 * 1024;

/// What a session keeps for flow control.
#[derive(Debug, Default)]
pub(crate) struct Pressure {
    /// When a message was last taken from the queue, or the queue last became non-empty.
    last_progress: Option<Instant>,
    /// No progress for [`STALLED_AFTER`] while congested; cleared when the queue drains.
    stalled: bool,
    /// The client takes no messages for now: the queue buffers without holding anyone.
    resting: bool,
    /// The links of publishers waiting for this queue to drain.
    waiters: Vec<Arc<dyn Link>>,
}

impl Session {
    /// Whether this session's queue should start holding its publishers now: it reached the
    /// pressure mark. Marks it stalled if nothing was taken from it for too long.
    pub(crate) fn congested(&mut self, config: &BrokerConfig, now: Instant) -> bool {
        let (messages, bytes) = pressure_at(config);
        self.pressing(messages, bytes, now)
    }

    /// Whether this session's queue still holds the publishers waiting on it: it has not
    /// drained to half the pressure mark (the hysteresis keeps a publisher from being paused
    /// and resumed on every message).
    fn still_congested(&mut self, config: &BrokerConfig, now: Instant) -> bool {
        let (messages, bytes) = pressure_at(config);
        self.pressing(messages / 2 + 1, bytes / 2 + 1, now)
    }

    /// Whether the queue holds `messages` or `bytes` or more, its client is connected and it
    /// has not stalled.
    fn pressing(&mut self, messages: usize, bytes: u64, now: Instant) -> bool {
        if self.link.is_none() || self.pressure.stalled || self.pressure.resting {
            return false;
        }
        if self.queue.len() < messages && self.queued_bytes < bytes {
            return false;
        }
        let since = *self.pressure.last_progress.get_or_insert(now);
        let waited = now.saturating_duration_since(since);
        if waited >= STALLED_AFTER && !(waited < STALLED_AFTER_BUSY && self.broker_behind()) {
            self.pressure.stalled = true;
            return false;
        }
        true
    }

    /// Whether the subscriber's connection was woken and has not run since.
    fn broker_behind(&self) -> bool {
        self.link.as_ref().is_some_and(|link| link.wake_pending())
    }

    /// When to look again at this congested queue if nobody wakes its publishers: when it will
    /// count as stalled, or, past that while the broker has not run its subscriber, shortly.
    fn stalls_at(&self, now: Instant) -> Instant {
        let at = self.pressure.last_progress.unwrap_or(now) + STALLED_AFTER;
        if at <= now { now + RECHECK_BUSY } else { at }
    }

    /// A delivery was queued: the clock for stalling starts if the queue was empty.
    pub(crate) fn note_queued(&mut self, now: Instant) {
        if self.queue.len() == 1 {
            self.pressure.last_progress = Some(now);
        }
    }

    /// Messages were taken from the queue (the subscriber is alive). Once the queue is down to
    /// half its pressure mark, waiting publishers are woken and a stalled queue exerts
    /// pressure again.
    pub(crate) fn note_progress(&mut self, config: &BrokerConfig, now: Instant) {
        self.pressure.last_progress = Some(now);
        let (messages, bytes) = pressure_at(config);
        if self.queue.len() <= messages / 2 && self.queued_bytes <= bytes / 2 {
            self.pressure.stalled = false;
            self.release_waiters();
        }
    }

    /// A connection attached: it takes messages until it says otherwise, and its queue starts
    /// afresh.
    pub(crate) fn note_attached(&mut self) {
        self.pressure.resting = false;
        self.pressure.stalled = false;
        self.pressure.last_progress = None;
    }

    /// Wakes every publisher waiting on this queue (it drained, or the session went away).
    pub(crate) fn release_waiters(&mut self) {
        for waiter in self.pressure.waiters.drain(..) {
            waiter.wake();
        }
    }
}

impl Connection {
    /// Called with the sessions a publish left congested: this connection will not be read
    /// until they drain or stall.
    pub(crate) fn wait_for(&mut self, congested: Vec<Arc<SessionCell>>, now: Instant) {
        let Some(own_link) = self.session.state.lock().link.clone() else {
            return;
        };
        let config = &self.broker.config;
        for cell in congested {
            if self.waiting_on.iter().any(|c| Arc::ptr_eq(c, &cell)) {
                continue;
            }
            {
                let mut session = cell.state.lock();
                if !session.congested(config, now) {
                    continue;
                }
                if !session.pressure.waiters.iter().any(|w| Arc::ptr_eq(w, &own_link)) {
                    session.pressure.waiters.push(own_link.clone());
                }
            }
            self.waiting_on.push(cell);
        }
    }

    /// Whether the runtime should hold off reading this client's packets: `Some(deadline)`
    /// while a queue its messages filled is still congested, the deadline being when the
    /// runtime must ask again even if nobody wakes it (a queue that stops draining stalls).
    /// Cheap when nothing is congested.
    pub fn read_paused(&mut self, now: Instant) -> Option<Instant> {
        if self.waiting_on.is_empty() {
            return None;
        }
        let config = &self.broker.config;
        let own_link = self.session.state.lock().link.clone();
        let mut deadline: Option<Instant> = None;
        self.waiting_on.retain(|cell| {
            let mut session = cell.state.lock();
            if !session.still_congested(config, now) {
                return false;
            }
            // Woken by a drain that others' messages filled up again before this connection
            // was read: it waits for the next drain too. (Left off the list, it waited for
            // the stall deadline alone, which every drain pushes back: seen, a publisher of
            // eight held for five seconds while the other seven went on.)
            if let Some(own) = &own_link
                && !session.pressure.waiters.iter().any(|w| Arc::ptr_eq(w, own))
            {
                session.pressure.waiters.push(own.clone());
            }
            let at = session.stalls_at(now);
            deadline = Some(deadline.map_or(at, |d| d.min(at)));
            true
        });
        deadline
    }

    /// Says whether the client takes messages now. A client that is attached but takes none
    /// for a while (an MQTT-SN client asleep, whose messages the broker buffers until it wakes)
    /// must not hold the publishers that fill its queue; those waiting are released.
    pub fn set_taking_messages(&self, taking: bool) {
        let mut session = self.session.state.lock();
        session.pressure.resting = !taking;
        if !taking {
            session.release_waiters();
        }
    }

    /// Whether a publish handled since the last [`Connection::read_paused`] congested a
    /// queue: the runtime stops handling the packets it already read.
    pub fn is_waiting(&self) -> bool {
        !self.waiting_on.is_empty()
    }
}
