//! What the broker writes to its journal (when persistence is on), and how it is rebuilt from
//! the store at startup.
//!
//! Only sessions that outlive their connection are persistent. Each change to one is written
//! while the session's lock is held, so the journal holds changes in the order they happened;
//! each write's sequence number goes into the outbox of the connection whose reply depends on
//! it ([`crate::Outbox::require_durable`]), and the runtime sends nothing from that outbox
//! before the write is durable. So PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK and CONNACK, and
//! PUBLISH (QoS 2) and PUBREL to subscribers, never run ahead of the store. A QoS 1 PUBLISH
//! to a subscriber is sent at once: a crash can at worst deliver it again, as QoS 1 allows.
//!
//! A message body is stored once, the first time a persistent session queues it, and deleted
//! when the last copy of the message is dropped. QoS 0 messages are not stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use midge_codec::{ProtocolVersion, QoS};
use midge_store::{
    EntryRecord, EntryState, Journal, MessageRecord, Seq, SessionRecord, Snapshot, StoredSession,
    SubscriptionRecord, WallClock, WillRecord,
};

use crate::broker::Broker;
use crate::message::{Delivery, Message};
use crate::session::{Awaiting, Inflight, PendingWill, Session, SessionCell, SessionSubscription};
use crate::topic_index::Subscriber;

/// How many queued messages a persistent session keeps in memory while its client is away;
/// the rest stay in the store only, and are read back as the session drains its queue. A
/// restart reads no more than this many per session either.
pub const OFFLINE_QUEUE_IN_MEMORY: usize = 100;

/// How many paged-out messages are read back at once.
const PAGE_IN_BATCH: usize = 64;

/// A message body in the store; deleting it is left to the last holder: a copy of the message
/// in memory, or a queued delivery paged out to the store.
#[derive(Debug)]
pub(crate) struct StoredBody {
    id: u64,
    /// The journal write that stored it: reading it back waits for that.
    seq: Seq,
    journal: Arc<Journal>,
}

/// A delivery queued for an absent client whose message is kept only in the store.
#[derive(Debug)]
pub(crate) struct PagedDelivery {
    body: Arc<StoredBody>,
    /// The stored body's size, counted against `max_queued_bytes` as a message's size is.
    size: u64,
    qos: QoS,
    retain: bool,
    subscription_ids: Vec<midge_codec::SubscriptionId>,
    /// Its place in the session's stored queue.
    place: u64,
}

impl Drop for StoredBody {
    fn drop(&mut self) {
        self.journal.delete_message(self.id);
    }
}

impl Message {
    /// The message as the store keeps it.
    pub(crate) fn record(&self, clock: &WallClock) -> MessageRecord {
        MessageRecord {
            topic: self.topic.clone(),
            payload: self.payload.clone(),
            qos: self.qos,
            retain: self.retain,
            properties: (*self.properties).clone(),
            expires_at: self.expires_at.map(|at| clock.to_unix_ms(at)),
            publisher: self.publisher.clone(),
        }
    }

    /// A message read back from the store.
    pub(crate) fn from_record(record: MessageRecord, clock: &WallClock) -> Self {
        Self::new(
            record.topic,
            record.payload,
            record.qos,
            record.retain,
            record.properties,
            record.expires_at.map(|ms| clock.to_instant(ms)),
            record.publisher,
        )
    }

    /// This message's stored body, writing the body first if it is not stored yet.
    fn stored_body(&self, journal: &Arc<Journal>) -> &Arc<StoredBody> {
        self.body.get_or_init(|| {
            let id = journal.next_message_id();
            let seq = journal.put_message(id, &self.record(journal.clock()));
            Arc::new(StoredBody {
                id,
                seq,
                journal: journal.clone(),
            })
        })
    }
}

fn entry_state(state: Awaiting) -> EntryState {
    match state {
        Awaiting::PubAck => EntryState::AwaitingPubAck,
        Awaiting::PubRec => EntryState::AwaitingPubRec,
        Awaiting::PubComp => EntryState::AwaitingPubComp,
    }
}

fn entry_record(
    delivery: &Delivery,
    body: u64,
    state: EntryState,
    packet_id: Option<midge_codec::PacketId>,
) -> EntryRecord {
    EntryRecord {
        message_id: body,
        qos: delivery.qos,
        retain: delivery.retain,
        subscription_ids: delivery.subscription_ids.clone(),
        state,
        packet_id,
    }
}

impl Session {
    /// The session's own record.
    pub(crate) fn record(&self, clock: &WallClock) -> SessionRecord {
        SessionRecord {
            expiry_secs: self
                .expiry
                .map(|e| u32::try_from(e.as_secs()).unwrap_or(u32::MAX - 1)),
            version: self.version.unwrap_or(ProtocolVersion::V311),
            username: self.username.clone(),
            listener: u32::try_from(self.listener).unwrap_or(u32::MAX),
            disconnected_at: self.disconnected_at.map(|at| clock.to_unix_ms(at)),
            will: self.will.as_ref().map(|will| WillRecord {
                message: will.message.record(clock),
                delay_secs: u32::try_from(will.delay.as_secs()).unwrap_or(u32::MAX),
            }),
        }
    }

    /// Writes a delivery about to be queued, if this session is persistent and the delivery
    /// is QoS 1 or 2; marks it with its place in the queue. The write's sequence number, or 0.
    pub(crate) fn persist_enqueued(
        &mut self,
        client_id: &str,
        delivery: &mut Delivery,
        journal: Option<&Arc<Journal>>,
    ) -> Seq {
        let Some(journal) = journal.filter(|_| self.persistent && delivery.qos != QoS::AtMostOnce) else {
            return 0;
        };
        let body = delivery.message.stored_body(journal).id;
        self.next_entry += 1;
        delivery.stored = Some(self.next_entry);
        journal.put_entry(
            client_id,
            self.next_entry,
            &entry_record(delivery, body, EntryState::Queued, None),
        )
    }

    /// Writes where a stored delivery in flight stands now. The write's sequence number, or 0.
    pub(crate) fn persist_inflight(
        &self,
        client_id: &str,
        inflight: &Inflight,
        journal: Option<&Arc<Journal>>,
    ) -> Seq {
        match (journal, inflight.delivery.stored) {
            (Some(journal), Some(place)) if self.persistent => {
                let body = inflight.delivery.message.stored_body(journal).id;
                journal.put_entry(
                    client_id,
                    place,
                    &entry_record(
                        &inflight.delivery,
                        body,
                        entry_state(inflight.state),
                        Some(inflight.packet_id),
                    ),
                )
            }
            _ => 0,
        }
    }

    /// Deletes a stored delivery that is done with (acknowledged, expired, refused). The
    /// write's sequence number, or 0.
    pub(crate) fn forget_delivery(
        &self,
        client_id: &str,
        delivery: &Delivery,
        journal: Option<&Arc<Journal>>,
    ) -> Seq {
        match (journal, delivery.stored) {
            (Some(journal), Some(place)) if self.persistent => journal.delete_entry(client_id, place),
            _ => 0,
        }
    }

    /// Whether a delivery just queued should be kept in the store only: it is stored, and
    /// either some before it are paged out already (so it queues behind them, in order, even
    /// once the client is back) or the client is away and enough are in memory already.
    pub(crate) fn should_page_out(&self, online: bool, delivery: &Delivery) -> bool {
        self.persistent
            && delivery.stored.is_some()
            && (!self.paged.is_empty() || (!online && self.queue.len() >= OFFLINE_QUEUE_IN_MEMORY))
    }

    /// Keeps `delivery` in the store only. It must be stored (see [`Session::should_page_out`]).
    pub(crate) fn page_out(&mut self, delivery: Delivery) {
        let (Some(place), Some(body)) = (delivery.stored, delivery.message.body.get()) else {
            self.queued_bytes += delivery.message.size() as u64;
            self.queue.push_back(delivery);
            return;
        };
        let size = delivery.message.size() as u64;
        self.queued_bytes += size;
        self.paged.push_back(PagedDelivery {
            body: body.clone(),
            size,
            qos: delivery.qos,
            retain: delivery.retain,
            subscription_ids: delivery.subscription_ids,
            place,
        });
    }

    /// Reads back up to a batch of paged-out deliveries onto the end of the in-memory queue.
    /// One whose body cannot be read is dropped (and counted).
    pub(crate) fn page_in(&mut self, client_id: &str, journal: Option<&Arc<Journal>>, stats: &crate::Stats) {
        let Some(journal) = journal else {
            self.paged.clear();
            return;
        };
        for _ in 0..PAGE_IN_BATCH {
            let Some(paged) = self.paged.pop_front() else {
                break;
            };
            self.queued_bytes = self.queued_bytes.saturating_sub(paged.size);
            let record = journal.read_message(paged.body.id, paged.body.seq, Duration::from_secs(5));
            let Some(record) = record else {
                journal.delete_entry(client_id, paged.place);
                stats.dropped(crate::stats::DropReason::QueueFull);
                continue;
            };
            let message = Message::from_record(record, journal.clock());
            let _ = message.body.set(paged.body);
            let message = Arc::new(message);
            self.queued_bytes += message.size() as u64;
            self.queue.push_back(Delivery {
                message,
                qos: paged.qos,
                retain: paged.retain,
                subscription_ids: paged.subscription_ids,
                stored: Some(paged.place),
                settles: None,
            });
        }
    }

    /// Writes everything the session holds: for a session that has just become persistent.
    /// The last write's sequence number.
    pub(crate) fn persist_all(&mut self, client_id: &str, journal: &Arc<Journal>) -> Seq {
        journal.delete_session(client_id);
        let mut seq = journal.put_session(client_id, &self.record(journal.clock()));
        for subscription in self.subscriptions.values() {
            seq = journal.put_subscription(client_id, &subscription.record());
        }
        for id in &self.incoming_qos2 {
            seq = journal.put_incoming(client_id, *id);
        }
        let mut inflight = std::mem::take(&mut self.inflight);
        for entry in &mut inflight {
            self.next_entry += 1;
            entry.delivery.stored = Some(self.next_entry);
            seq = seq.max(self.persist_inflight(client_id, entry, Some(journal)));
        }
        self.inflight = inflight;
        let mut queue = std::mem::take(&mut self.queue);
        for delivery in &mut queue {
            seq = seq.max(self.persist_enqueued(client_id, delivery, Some(journal)));
        }
        self.queue = queue;
        seq
    }
}

impl SessionSubscription {
    pub(crate) fn record(&self) -> SubscriptionRecord {
        SubscriptionRecord {
            filter: self.filter.clone(),
            options: self.options,
            id: self.id,
        }
    }
}

/// What [`Broker::restore`] rebuilt, for the startup log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restored {
    /// Sessions.
    pub sessions: usize,
    /// Subscriptions.
    pub subscriptions: usize,
    /// Queued and in-flight messages.
    pub messages: usize,
    /// Retained messages.
    pub retained: usize,
    /// Messages that had expired while the broker was down.
    pub expired: usize,
}

impl Broker {
    /// Rebuilds sessions, subscriptions, queues and retained messages from what the store
    /// held, then acts as if every session's connection had just ended: wills due now are
    /// published and expiry starts (from the time the connection really ended, if known).
    /// Call once, on a new broker made with a journal, before any client connects.
    pub fn restore(self: &Arc<Self>, snapshot: Snapshot, now: Instant) -> Restored {
        let mut restored = Restored::default();
        let Some(journal) = self.journal.clone() else {
            return restored;
        };
        let clock = *journal.clock();
        for cleanup in snapshot.cleanup {
            journal.submit(cleanup);
        }
        for record in snapshot.retained {
            let message = Arc::new(Message::from_record(record, &clock));
            if message.is_expired(now) {
                journal.delete_retained(message.topic.as_str());
                restored.expired += 1;
                continue;
            }
            self.retained.set(message);
            restored.retained += 1;
        }
        let mut bodies: HashMap<u64, Arc<Message>> = HashMap::with_capacity(snapshot.messages.len());
        for (id, record) in snapshot.messages {
            let message = Message::from_record(record, &clock);
            let _ = message.body.set(Arc::new(StoredBody {
                id,
                seq: 0,
                journal: journal.clone(),
            }));
            bodies.insert(id, Arc::new(message));
        }
        // Bodies left in the store: queued deliveries refer to them by these handles.
        let stored: HashMap<u64, (Arc<StoredBody>, u64)> = snapshot
            .stored_bodies
            .into_iter()
            .map(|(id, size)| {
                let body = Arc::new(StoredBody {
                    id,
                    seq: 0,
                    journal: journal.clone(),
                });
                (id, (body, size))
            })
            .collect();
        let mut ended = Vec::with_capacity(snapshot.sessions.len());
        for stored_session in snapshot.sessions {
            let client_id = stored_session.client_id.clone();
            let (cell, counts) = self.restore_session(stored_session, &bodies, &stored, &journal, now);
            restored.sessions += 1;
            restored.subscriptions += counts.0;
            restored.messages += counts.1;
            restored.expired += counts.2;
            self.sessions.lock().insert(client_id, cell.clone());
            ended.push(cell);
        }
        drop(bodies);
        drop(stored);
        for cell in ended {
            self.resume_offline(&cell, now);
        }
        restored
    }

    /// One session from the store; also says how many subscriptions and messages it had and
    /// how many messages had expired.
    fn restore_session(
        &self,
        stored: StoredSession,
        bodies: &HashMap<u64, Arc<Message>>,
        paged: &HashMap<u64, (Arc<StoredBody>, u64)>,
        journal: &Arc<Journal>,
        now: Instant,
    ) -> (Arc<SessionCell>, (usize, usize, usize)) {
        let clock = journal.clock();
        let cell = Arc::new(SessionCell::new(stored.client_id.clone()));
        let record = stored.record;
        let mut counts = (0, 0, 0);
        {
            let mut session = cell.state.lock();
            session.persistent = true;
            session.version = Some(record.version);
            session.username = record.username.clone();
            session.listener = usize::try_from(record.listener).unwrap_or(usize::MAX);
            session.expiry = record.expiry_secs.map(|s| Duration::from_secs(u64::from(s)));
            session.disconnected_at = Some(
                record
                    .disconnected_at
                    .map_or(now, |ms| clock.to_instant(ms).min(now)),
            );
            session.will = record.will.map(|will| {
                Box::new(PendingWill {
                    message: Arc::new(Message::from_record(will.message, clock)),
                    username: record.username.clone(),
                    listener: usize::try_from(record.listener).unwrap_or(usize::MAX),
                    delay: Duration::from_secs(u64::from(will.delay_secs)),
                })
            });
            session.incoming_qos2 = stored.incoming.iter().map(|id| id.get()).collect();
            for subscription in stored.subscriptions {
                let kept = SessionSubscription {
                    filter: subscription.filter.clone(),
                    options: subscription.options,
                    id: subscription.id,
                };
                session
                    .subscriptions
                    .insert(subscription.filter.as_byte_string().clone(), kept);
                self.index.write().subscribe(
                    &subscription.filter,
                    Subscriber {
                        session: cell.clone(),
                        options: subscription.options,
                        id: subscription.id,
                    },
                );
                counts.0 += 1;
            }
            for (place, entry) in stored.entries {
                session.next_entry = session.next_entry.max(place);
                let in_memory = bodies.get(&entry.message_id);
                if entry.state == EntryState::Queued && (in_memory.is_none() || !session.paged.is_empty()) {
                    // Beyond what is read into memory: it stays in the store until its
                    // session drains that far (and so does everything after it, in order).
                    let handle = in_memory
                        .and_then(|m| m.body.get().map(|b| (b.clone(), m.size() as u64)))
                        .or_else(|| paged.get(&entry.message_id).cloned());
                    if let Some((body, size)) = handle {
                        session.queued_bytes += size;
                        session.paged.push_back(PagedDelivery {
                            body,
                            size,
                            qos: entry.qos,
                            retain: entry.retain,
                            subscription_ids: entry.subscription_ids,
                            place,
                        });
                        counts.1 += 1;
                    }
                    continue;
                }
                let Some(message) = in_memory else { continue };
                let delivery = Delivery {
                    message: message.clone(),
                    qos: entry.qos,
                    retain: entry.retain,
                    subscription_ids: entry.subscription_ids,
                    stored: Some(place),
                    settles: None,
                };
                let awaiting = match entry.state {
                    EntryState::Queued => None,
                    EntryState::AwaitingPubAck => Some(Awaiting::PubAck),
                    EntryState::AwaitingPubRec => Some(Awaiting::PubRec),
                    EntryState::AwaitingPubComp => Some(Awaiting::PubComp),
                };
                match (awaiting, entry.packet_id) {
                    (Some(state), Some(packet_id)) => {
                        session.push_inflight(Inflight {
                            packet_id,
                            delivery,
                            state,
                        });
                    }
                    _ if message.is_expired(now) => {
                        journal.delete_entry(&cell.client_id, place);
                        counts.2 += 1;
                        continue;
                    }
                    _ => {
                        session.queued_bytes += message.size() as u64;
                        session.queue.push_back(delivery);
                    }
                }
                counts.1 += 1;
            }
        }
        (cell, counts)
    }
}
