//! Session state (§4.1): what the broker keeps for a client identifier across connections:
//! subscriptions, messages queued and in flight towards the client, QoS 2 messages received from
//! it and not yet released, its will and expiry.
//!
//! Each session sits behind its own lock in a [`SessionCell`], so publishers on different cores
//! contend only when they deliver to the same subscriber. The outgoing queue is bounded by count
//! and bytes; what a bound refuses is counted and logged, never silently lost.

use std::collections::{HashMap, VecDeque};

use rustc_hash::FxHashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytestring::ByteString;
use midge_codec::{PacketId, ProtocolVersion, QoS, SubscriptionId, SubscriptionOptions, TopicFilter};
use midge_store::{Journal, Seq};
use parking_lot::Mutex;

use crate::config::BrokerConfig;
use crate::link::Link;
use crate::message::{Delivery, Message};
use crate::ratelimit::DropReports;
use crate::stats::{DropReason, Stats};

/// A session and the lock around it.
#[derive(Debug)]
pub struct SessionCell {
    /// The client identifier, fixed for the session's life.
    pub client_id: ByteString,
    online: AtomicBool,
    pub(crate) state: Mutex<Session>,
}

impl SessionCell {
    /// A new, empty, offline session.
    pub fn new(client_id: ByteString) -> Self {
        Self {
            client_id,
            online: AtomicBool::new(false),
            state: Mutex::new(Session::default()),
        }
    }

    /// Whether a connection is attached; read without the lock (shared subscription choice).
    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }

    pub(crate) fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::Relaxed);
    }
}

/// Where an outgoing QoS 1 or 2 message stands (§4.3.2, §4.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(
    clippy::enum_variant_names,
    reason = "named for the packet awaited, as the specification names them"
)]
pub(crate) enum Awaiting {
    /// QoS 1 PUBLISH sent, PUBACK awaited.
    PubAck,
    /// QoS 2 PUBLISH sent, PUBREC awaited.
    PubRec,
    /// PUBREL sent, PUBCOMP awaited.
    PubComp,
}

#[derive(Debug, Clone)]
pub(crate) struct Inflight {
    pub(crate) packet_id: PacketId,
    pub(crate) delivery: Delivery,
    pub(crate) state: Awaiting,
}

/// A will waiting for its connection to end badly, or for its delay to pass.
#[derive(Debug, Clone)]
pub(crate) struct PendingWill {
    pub(crate) message: Arc<Message>,
    /// The user name of the connection that set the will, for the access check when it is
    /// published.
    pub(crate) username: Option<ByteString>,
    /// The listener of that connection, likewise.
    pub(crate) listener: usize,
    pub(crate) delay: Duration,
}

/// One of a session's subscriptions, as the session remembers it (the index has its own
/// copy, for matching).
#[derive(Debug, Clone)]
pub(crate) struct SessionSubscription {
    pub(crate) filter: TopicFilter,
    pub(crate) options: SubscriptionOptions,
    pub(crate) id: Option<SubscriptionId>,
}

/// What the broker keeps for one client identifier.
#[derive(Debug, Default)]
pub(crate) struct Session {
    /// The attached connection, if any, and its generation.
    pub(crate) link: Option<Arc<dyn Link>>,
    /// Bumped on every attach, so a stale connection can tell it has been replaced.
    pub(crate) generation: u64,
    pub(crate) version: Option<ProtocolVersion>,
    /// The user name of the last connection, for access decisions on delivery.
    pub(crate) username: Option<ByteString>,
    /// The listener of the last connection, likewise.
    pub(crate) listener: usize,
    /// The session's subscriptions by filter, so they can be removed when it ends (and
    /// stored).
    pub(crate) subscriptions: HashMap<ByteString, SessionSubscription>,
    pub(crate) queue: VecDeque<Delivery>,
    /// Queued deliveries kept only in the store, after those in `queue` (`persist.rs`).
    pub(crate) paged: VecDeque<crate::persist::PagedDelivery>,
    /// Bytes of `queue` and `paged`.
    pub(crate) queued_bytes: u64,
    pub(crate) inflight: VecDeque<Inflight>,
    pub(crate) inflight_bytes: u64,
    next_packet_id: u16,
    /// The current connection's window: min(max_inflight_messages, client Receive Maximum);
    /// for the broker's own sessions, their Receive Maximum alone.
    pub(crate) window: u16,
    /// One of the broker's own sessions (the cluster's): the limits set for clients
    /// (`max_inflight_messages`, `max_inflight_bytes`) do not apply, as its window is sized
    /// for a link to other nodes, where a client's limits would cap the whole cluster's
    /// forwarding at 20 messages per round trip.
    pub(crate) internal: bool,
    /// Packet identifiers of QoS 2 messages received and not yet released by PUBREL.
    pub(crate) incoming_qos2: FxHashSet<u16>,
    pub(crate) will: Option<Box<PendingWill>>,
    /// How long the session outlives its connection; `None` is forever.
    pub(crate) expiry: Option<Duration>,
    /// When the last connection ended, while none is attached.
    pub(crate) disconnected_at: Option<Instant>,
    /// Rate limiting of the warnings about messages dropped for this session; allocated at the
    /// first drop, since most sessions never drop anything.
    pub(crate) drop_reports: Option<Box<DropReports>>,
    /// Whether the session outlives its connection and persistence is on: then every change
    /// to it is written to the journal (`persist.rs`).
    pub(crate) persistent: bool,
    /// The place in the stored queue of the last delivery written.
    pub(crate) next_entry: u64,
    /// Messages a bound refused for this session, since it began (not stored).
    pub(crate) dropped: u64,
    /// Flow control towards the publishers that fill the queue (`backpressure.rs`).
    pub(crate) pressure: crate::backpressure::Pressure,
}

impl Session {
    /// Queues a delivery, or drops it (counted) when a bound says no. `None` if dropped;
    /// otherwise the sequence number of its write to the journal (0 if none was needed).
    #[allow(clippy::too_many_arguments, reason = "one call site, each argument distinct")]
    pub(crate) fn enqueue(
        &mut self,
        mut delivery: Delivery,
        online: bool,
        config: &BrokerConfig,
        stats: &Stats,
        client_id: &str,
        journal: Option<&Arc<Journal>>,
        now: Instant,
    ) -> Option<Seq> {
        let reason = if delivery.qos == QoS::AtMostOnce && !online && !config.queue_qos0_messages {
            Some(DropReason::Qos0Offline)
        } else if config.max_queued_messages != 0
            && self.queue.len() + self.paged.len() >= self.queue_allowance(config, online)
        {
            Some(DropReason::QueueFull)
        } else if config.max_queued_bytes != 0
            && self.queued_bytes + delivery.message.size() as u64 > config.max_queued_bytes
        {
            Some(DropReason::QueueBytesFull)
        } else {
            None
        };
        if let Some(reason) = reason {
            stats.dropped(reason);
            self.dropped += 1;
            // Offline QoS 0 is Mosquitto's normal behaviour, not a warning.
            if reason != DropReason::Qos0Offline {
                self.drop_reports
                    .get_or_insert_with(Box::default)
                    .note(client_id, reason, now);
            }
            return None;
        }
        let seq = self.persist_enqueued(client_id, &mut delivery, journal);
        if self.should_page_out(online, &delivery) {
            self.page_out(delivery);
        } else {
            self.queued_bytes += delivery.message.size() as u64;
            self.queue.push_back(delivery);
            self.note_queued(now);
        }
        Some(seq)
    }

    /// How many deliveries the queue may hold: `max_queued_messages` counts, as in Mosquitto,
    /// only messages beyond the inflight window, so while the client is connected the window's
    /// free slots come on top. While it is away nothing is in flight and, as in Mosquitto,
    /// `max_queued_messages` is the whole allowance.
    fn queue_allowance(&self, config: &BrokerConfig, online: bool) -> usize {
        let free_window = if online {
            usize::from(self.window).saturating_sub(self.inflight.len())
        } else {
            0
        };
        config.max_queued_messages + free_window
    }

    /// Takes the next queued delivery.
    pub(crate) fn dequeue(&mut self) -> Option<Delivery> {
        let delivery = self.queue.pop_front()?;
        self.queued_bytes = self.queued_bytes.saturating_sub(delivery.message.size() as u64);
        Some(delivery)
    }

    /// Whether the inflight window has room for one more QoS 1 or 2 message.
    pub(crate) fn window_open(&self, config: &BrokerConfig, size: usize) -> bool {
        let by_count = self.inflight.len() < usize::from(self.window.max(1));
        let by_bytes = config.max_inflight_bytes == 0
            || self.internal
            || self.inflight.is_empty()
            || self.inflight_bytes + size as u64 <= config.max_inflight_bytes;
        by_count && by_bytes
    }

    /// A packet identifier not in use by any message in flight [MQTT-2.2.1-3].
    pub(crate) fn allocate_packet_id(&mut self) -> PacketId {
        loop {
            self.next_packet_id = self.next_packet_id.wrapping_add(1);
            if let Some(id) = PacketId::new(self.next_packet_id)
                && !self.inflight.iter().any(|i| i.packet_id == id)
            {
                return id;
            }
        }
    }

    pub(crate) fn push_inflight(&mut self, inflight: Inflight) {
        self.inflight_bytes += inflight.delivery.message.size() as u64;
        self.inflight.push_back(inflight);
    }

    /// Finds the message in flight with `packet_id` in `state`.
    pub(crate) fn inflight_mut(&mut self, packet_id: PacketId, state: Awaiting) -> Option<&mut Inflight> {
        self.inflight
            .iter_mut()
            .find(|i| i.packet_id == packet_id && i.state == state)
    }

    /// Removes the message in flight with `packet_id` in `state`, and its stored copy.
    /// Returns the sequence number of the journal write (0 if none), or `None` if no such
    /// message was in flight.
    pub(crate) fn complete(
        &mut self,
        packet_id: PacketId,
        state: Awaiting,
        client_id: &str,
        journal: Option<&Arc<Journal>>,
    ) -> Option<Seq> {
        let index = self
            .inflight
            .iter()
            .position(|i| i.packet_id == packet_id && i.state == state)?;
        let done = self.inflight.remove(index)?;
        self.inflight_bytes = self
            .inflight_bytes
            .saturating_sub(done.delivery.message.size() as u64);
        Some(self.forget_delivery(client_id, &done.delivery, journal))
    }

    /// Forgets everything but the identity: what a clean start does to an existing session.
    pub(crate) fn reset(&mut self) {
        self.release_waiters();
        let generation = self.generation;
        *self = Self {
            generation,
            ..Self::default()
        };
    }
}
