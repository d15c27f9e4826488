//! What an operator may read and do through the management interface (the HTTP API): a
//! snapshot of sessions, disconnecting a client, deleting a session, reading and deleting
//! retained messages, publishing as the broker, and a topic tap that counts messages per topic
//! while someone watches.
//!
//! Everything here runs on an operator's request, never on the publish path: each call takes
//! the locks in the order `broker.rs` documents (the session map, then one session at a time;
//! the retained store alone) and holds none of them while taking another. The one piece that
//! sits on the path of every message is [`TopicTap::record`], an atomic load that returns at
//! once unless a watcher switched the tap on in the last minute.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use bytestring::ByteString;
use midge_codec::{ProtocolVersion, QoS, ReasonCode, TopicName};
use parking_lot::Mutex;

use crate::broker::{Broker, Keep};
use crate::message::Message;
use crate::session::SessionCell;

/// Topics the tap counts at most; messages to further topics are counted as overflow only.
const TAPPED_TOPICS: usize = 10_000;
/// Bytes of a payload the tap keeps to show as the topic's last value.
const PREVIEW_BYTES: usize = 256;

/// One session as the broker holds it at the moment of the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The client identifier.
    pub client_id: ByteString,
    /// Whether a connection is attached.
    pub connected: bool,
    /// The protocol version of the last connection.
    pub protocol: Option<ProtocolVersion>,
    /// The user name of the last connection.
    pub username: Option<ByteString>,
    /// The listener (its place in the configuration) of the last connection.
    pub listener: usize,
    /// The session's topic filters, sorted.
    pub subscriptions: Vec<ByteString>,
    /// Messages waiting to be sent (beyond the inflight window), in memory or paged out to the
    /// store.
    pub queued: usize,
    /// Their topic and payload bytes.
    pub queued_bytes: u64,
    /// QoS 1 and 2 messages sent and not yet acknowledged.
    pub inflight: usize,
    /// Their topic and payload bytes.
    pub inflight_bytes: u64,
    /// How long the session outlives its connection; `None` is forever.
    pub expiry: Option<Duration>,
    /// When the last connection ended, while none is attached.
    pub disconnected_at: Option<Instant>,
    /// Whether a will waits to be published.
    pub will: bool,
    /// Deliveries refused by `max_queued_messages`, `max_queued_bytes` or because QoS 0 is not
    /// queued while offline, since the session began (not stored).
    pub dropped: u64,
}

impl SessionInfo {
    fn of(cell: &SessionCell) -> Self {
        let session = cell.state.lock();
        let mut subscriptions: Vec<ByteString> = session.subscriptions.keys().cloned().collect();
        subscriptions.sort();
        Self {
            client_id: cell.client_id.clone(),
            connected: session.link.is_some(),
            protocol: session.version,
            username: session.username.clone(),
            listener: session.listener,
            subscriptions,
            queued: session.queue.len() + session.paged.len(),
            queued_bytes: session.queued_bytes,
            inflight: session.inflight.len(),
            inflight_bytes: session.inflight_bytes,
            expiry: session.expiry,
            disconnected_at: session.disconnected_at,
            will: session.will.is_some(),
            dropped: session.dropped,
        }
    }
}

/// What the tap saw on one topic since it was switched on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicActivity {
    /// Messages routed to the topic.
    pub messages: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// The first bytes of the last payload.
    pub last_payload: Bytes,
    /// The last payload's full length.
    pub last_size: usize,
    /// When the last message was routed.
    pub last_at: Instant,
}

/// The tap's counts at one moment (see [`Broker::topic_activity`]).
#[derive(Debug, Clone, Default)]
pub struct TopicReport {
    /// When the tap was switched on; `None` while it is off.
    pub since: Option<Instant>,
    /// Every topic seen, in no particular order.
    pub topics: Vec<(TopicName, TopicActivity)>,
    /// Messages to topics beyond the tap's limit of topics.
    pub overflow: u64,
}

/// Counts of messages per topic, kept only while someone watches (the web view): switched on
/// by [`Broker::watch_topics`] for a while, and off again when that passes.
#[derive(Debug, Default)]
pub(crate) struct TopicTap {
    on: AtomicBool,
    state: Mutex<TapState>,
}

#[derive(Debug, Default)]
struct TapState {
    since: Option<Instant>,
    until: Option<Instant>,
    topics: HashMap<TopicName, TopicActivity>,
    overflow: u64,
}

impl TapState {
    fn clear(&mut self) {
        *self = Self::default();
    }
}

impl TopicTap {
    /// Counts a message being routed, if the tap is on.
    #[inline]
    pub(crate) fn record(&self, message: &Message, now: Instant) {
        if self.on.load(Ordering::Relaxed) {
            self.record_slow(message, now);
        }
    }

    #[cold]
    fn record_slow(&self, message: &Message, now: Instant) {
        let mut state = self.state.lock();
        if state.until.is_none_or(|until| now >= until) {
            self.on.store(false, Ordering::Relaxed);
            state.clear();
            return;
        }
        let payload = &message.payload;
        let size = payload.len();
        if let Some(seen) = state.topics.get_mut(&message.topic) {
            seen.messages += 1;
            seen.bytes += size as u64;
            seen.last_payload = preview(payload);
            seen.last_size = size;
            seen.last_at = now;
        } else if state.topics.len() < TAPPED_TOPICS {
            state.topics.insert(
                message.topic.clone(),
                TopicActivity {
                    messages: 1,
                    bytes: size as u64,
                    last_payload: preview(payload),
                    last_size: size,
                    last_at: now,
                },
            );
        } else {
            state.overflow += 1;
        }
    }
}

/// A copy of the first bytes of a payload: a slice would keep the whole read buffer alive.
fn preview(payload: &Bytes) -> Bytes {
    Bytes::copy_from_slice(payload.get(..PREVIEW_BYTES).unwrap_or(payload))
}

impl Broker {
    /// Every client identifier with a session, and whether it is connected, sorted by
    /// identifier. Takes only the session map's lock.
    pub fn client_ids(&self) -> Vec<(ByteString, bool)> {
        let mut ids: Vec<(ByteString, bool)> = self
            .sessions
            .lock()
            .values()
            .map(|cell| (cell.client_id.clone(), cell.is_online()))
            .collect();
        ids.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        ids
    }

    /// The session of `client_id`, as it is now.
    pub fn session_info(&self, client_id: &str) -> Option<SessionInfo> {
        let cell = self.sessions.lock().get(client_id).cloned()?;
        Some(SessionInfo::of(&cell))
    }

    /// Disconnects the client connected as `client_id`, as the broker would for an
    /// administrative action: MQTT 5 clients get DISCONNECT 0x98. Its will is published if
    /// `publish_will` (the specification's rule for a connection the server closes), and its
    /// session lives on or ends as its expiry says. False if the client is not connected.
    pub fn disconnect_client(&self, client_id: &str, publish_will: bool, now: Instant) -> bool {
        let closed = self.close_client(client_id, ReasonCode::AdministrativeAction, publish_will, now);
        if closed {
            tracing::info!(client_id, "Client {client_id} disconnected by the HTTP API.");
        }
        closed
    }

    /// Deletes the session of `client_id`: its connection, if any, is closed (DISCONNECT 0x98
    /// to MQTT 5 clients, no will), and its subscriptions, queued messages and pending will
    /// are dropped. False if there is no such session.
    pub fn delete_session(&self, client_id: &str) -> bool {
        let Some(cell) = self.sessions.lock().remove(client_id) else {
            return false;
        };
        let link = {
            let mut session = cell.state.lock();
            // A new generation: timers and the connection holding the old one act on nothing.
            session.generation += 1;
            session.will = None;
            cell.set_online(false);
            self.unpersist(client_id, &mut session);
            session.link.take()
        };
        if let Some(link) = link {
            link.close(ReasonCode::AdministrativeAction);
        }
        self.forget_subscriptions(&cell);
        tracing::info!(client_id, "Session of {client_id} deleted by the HTTP API.");
        true
    }

    /// The retained messages whose topics match `filter` (no `$share/`; a first-level
    /// wildcard does not match `$` topics), in no particular order.
    pub fn retained_matching(&self, filter: &str) -> Vec<Arc<Message>> {
        let mut out = Vec::new();
        self.retained.read_all().matching(filter, &mut out);
        out
    }

    /// Deletes the retained message of `topic`. False if there was none.
    pub fn delete_retained(&self, topic: &TopicName) -> bool {
        let mut retained = self.retained.shard(topic.as_str());
        let before = retained.len();
        retained.set(Arc::new(Message::new(
            topic.clone(),
            Bytes::new(),
            QoS::AtMostOnce,
            true,
            midge_codec::properties::PublishProperties::default(),
            None,
            None,
        )));
        if let Some(journal) = &self.journal {
            journal.delete_retained(topic.as_str());
        }
        retained.len() < before
    }

    /// Publishes `message` as the broker itself (the HTTP API): retained if it says so (an
    /// empty retained payload deletes the topic's retained message), and delivered to every
    /// subscriber the access rules let read it. Returns how many sessions it was queued for.
    pub fn publish_admin(&self, message: Message, now: Instant) -> usize {
        let keep = Keep::retained_if(message.retain);
        self.publish(Arc::new(message), keep, now).sessions
    }

    /// Keeps the topic tap on until `now + period` (switching it on if it was off), so that
    /// [`Broker::topic_activity`] counts what flows. The tap switches itself off when the
    /// period passes without another call.
    pub fn watch_topics(&self, period: Duration, now: Instant) {
        let mut state = self.tap.state.lock();
        if state.since.is_none() {
            state.since = Some(now);
        }
        state.until = Some(now + period);
        self.tap.on.store(true, Ordering::Relaxed);
    }

    /// What the topic tap counted since it was switched on.
    pub fn topic_activity(&self) -> TopicReport {
        let state = self.tap.state.lock();
        TopicReport {
            since: state.since,
            topics: state
                .topics
                .iter()
                .map(|(topic, activity)| (topic.clone(), activity.clone()))
                .collect(),
            overflow: state.overflow,
        }
    }
}
