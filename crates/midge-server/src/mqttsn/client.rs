//! One MQTT-SN client of the gateway: its session in the broker's core, driven in process as a
//! connection task drives an MQTT client's (`crate::connection`, and the bridge's `local.rs`):
//! MQTT-SN messages are translated into MQTT 5 packets for [`Connection::handle`], and what the
//! core puts in the outbox is decoded and translated back.
//!
//! What MQTT-SN adds on the way out, and this file owns:
//! - topic ids: a message on a topic the client has no id for waits for REGISTER → REGACK
//!   (one REGISTER outstanding); a refused REGACK drops that message, counted, and nothing is
//!   ever sent on the refused id;
//! - one QoS 1/2 PUBLISH in flight towards the client (§6.10): the core's window is 1 (Receive
//!   Maximum 1), and messages behind an unanswered one wait in order;
//! - retransmission (§6.13): after `mqttsn_retry_interval` without an answer the message goes
//!   again (PUBLISH with DUP), and after `mqttsn_retry_count` tries the client is lost;
//! - sleep (§6.14): the session stays attached while the client sleeps but nothing is taken
//!   from its queue, so the core buffers for it under `max_queued_messages`; a wake sends what
//!   waited, through the same one-at-a-time flow, then PINGRESP;
//! - what a persistent client keeps between connections besides its session (topic ids, will):
//!   written to the store as it changes, so that it survives a broker restart.

use std::collections::{HashMap, HashSet, VecDeque};
use std::num::NonZeroU16;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use bytestring::ByteString;
use midge_codec::{
    Ack, Decoder, Packet, PacketId, ProtocolVersion, QoS, ReasonCode, RetainHandling, Subscribe,
    Subscription, SubscriptionOptions, TopicFilter, TopicName, Unsubscribe, Will,
};
use midge_core::{After, Connection, Link, Outbox};
use midge_sn::v12::{self, Message, PubAck, PublishTopic, RegAck, Register, ReturnCode, SubAck, TopicSpec};
use parking_lot::Mutex;

use super::registry::{Change, Registry};
use super::{Context, Peer, SnCounters, Wakes};

/// Requests (SUBSCRIBE, UNSUBSCRIBE) and inbound QoS 1/2 PUBLISHes remembered at once per
/// client; an MQTT-SN client has one of each in flight, so more is abuse and the oldest goes.
const REMEMBERED: usize = 16;
/// Messages taken from the outbox ahead of the one in flight.
const PENDING_MAX: usize = 64;

/// The runtime's side of [`Link`] for one MQTT-SN client.
#[derive(Debug)]
pub(crate) struct SnLink {
    slot: u64,
    wakes: Arc<Wakes>,
    queued: AtomicBool,
    closed: Mutex<Option<ReasonCode>>,
}

impl SnLink {
    pub(crate) fn new(slot: u64, wakes: Arc<Wakes>) -> Arc<Self> {
        Arc::new(Self {
            slot,
            wakes,
            queued: AtomicBool::new(false),
            closed: Mutex::new(None),
        })
    }

    /// Ready to be queued again: the gateway is handling this wake-up.
    pub(crate) fn rearm(&self) {
        self.queued.store(false, Ordering::Release);
    }

    /// Why the broker closed the session's connection, if it did.
    pub(crate) fn closed(&self) -> Option<ReasonCode> {
        *self.closed.lock()
    }
}

impl Link for SnLink {
    fn wake(&self) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.wakes.push(self.slot);
        }
    }

    fn close(&self, reason: ReasonCode) {
        *self.closed.lock() = Some(reason);
        self.queued.store(true, Ordering::Release);
        self.wakes.push(self.slot);
    }
}

/// Where a client is in MQTT-SN's state machine (§6.14).
#[derive(Debug, Clone)]
pub(crate) enum State {
    /// Connected.
    Active,
    /// Asleep until the deadline (duration and tolerance); messages are buffered.
    Asleep { until: Instant, duration: Duration },
    /// Woken by PINGREQ: the buffer is being sent, then PINGRESP and asleep again.
    Awake { duration: Duration },
}

/// What the client must answer before the next message may go.
#[derive(Debug, Clone)]
enum Waiting {
    /// REGACK for a REGISTER the gateway sent, with the message it is for.
    RegAck {
        msg_id: u16,
        topic_id: u16,
        publish: midge_codec::Publish,
    },
    /// PUBACK (QoS 1), PUBREC or PUBCOMP (QoS 2) for this packet identifier.
    PubAck(PacketId),
    PubRec(PacketId),
    PubComp(PacketId),
}

#[derive(Debug, Clone)]
struct Flight {
    waiting: Waiting,
    /// What to send again.
    message: Message,
    /// The core's PUBLISH it carries, to send again after a new REGISTER.
    source: Option<midge_codec::Publish>,
    sent_at: Instant,
    tries: u8,
}

/// What a SUBSCRIBE or UNSUBSCRIBE sent to the core answers with.
#[derive(Debug, Clone, Copy)]
struct Request {
    msg_id: u16,
    topic_id: u16,
}

/// What the gateway does with the client after a message or an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Continue,
    /// The session's connection ended (detached already); forget the client.
    Ended {
        reason: String,
    },
}

/// One connected (or sleeping) MQTT-SN client.
#[derive(Debug)]
pub(crate) struct Client {
    /// Where the client is: its address, or its forwarder's and its node id.
    pub(crate) peer: Peer,
    pub(crate) client_id: ByteString,
    pub(crate) state: State,
    pub(crate) clean_session: bool,
    pub(crate) link: Arc<SnLink>,
    connection: Option<Connection>,
    out: Outbox,
    decoder: Decoder,
    keep_alive: Option<Duration>,
    pub(crate) last_heard: Instant,
    pub(crate) registry: Registry,
    /// The will as last set, kept for a clean-session-off reconnect without a will (§6.3).
    pub(crate) will: Option<Will>,
    /// The will changed since it was last written to the store.
    will_changed: bool,
    pending: VecDeque<Packet>,
    flight: Option<Flight>,
    inbound_topics: VecDeque<(u16, u16)>,
    requests: HashMap<u16, Request>,
    request_order: VecDeque<u16>,
    next_packet_id: u16,
    next_msg_id: u16,
    /// QoS 2 deliveries dropped here: the core's PUBREL for them is answered here too.
    swallow_pubrel: HashSet<PacketId>,
    /// The outbox waits for a journal write to be durable, or for the cluster's log.
    pub(crate) held: bool,
}

impl Client {
    #[allow(clippy::too_many_arguments, reason = "a client's parts, from CONNECT")]
    pub(crate) fn new(
        peer: Peer,
        connection: Connection,
        out: Outbox,
        link: Arc<SnLink>,
        clean_session: bool,
        registry: Registry,
        will: Option<Will>,
        now: Instant,
    ) -> Self {
        let keep_alive = match connection.keep_alive() {
            0 => None,
            // §6.11 leaves the tolerance to the gateway; 1.5 times, as MQTT's [MQTT-3.1.2-22].
            seconds => Some(Duration::from_millis(u64::from(seconds) * 1500)),
        };
        Self {
            peer,
            client_id: connection.client_id().clone(),
            state: State::Active,
            clean_session,
            link,
            connection: Some(connection),
            out,
            decoder: Decoder::new(ProtocolVersion::V5, u32::MAX),
            keep_alive,
            last_heard: now,
            registry,
            will,
            will_changed: false,
            pending: VecDeque::new(),
            flight: None,
            inbound_topics: VecDeque::new(),
            requests: HashMap::new(),
            request_order: VecDeque::new(),
            next_packet_id: 0,
            next_msg_id: 0,
            swallow_pubrel: HashSet::new(),
            held: false,
        }
    }

    /// Writes everything a persistent client keeps besides its session (topic ids, will) to the
    /// store, replacing what was there: on CONNECT, when the core may just have made the
    /// session anew (and with it deleted what the store had).
    pub(crate) fn persist_all(&mut self, ctx: &Context) {
        self.registry.take_changes();
        self.will_changed = false;
        if let Some(journal) = ctx.journal.as_ref().filter(|_| !self.clean_session) {
            journal.put_mqttsn(
                &self.client_id,
                &midge_store::SnSession {
                    topics: self.registry.entries(),
                    will: self.will.as_ref().map(will_record),
                },
            );
        }
    }

    /// Writes what changed of the topic ids and the will to the store, for a persistent client
    /// (MQTT-SN 1.2 §6.3: both outlive the connection); for others, forgets the changes.
    pub(crate) fn persist(&mut self, ctx: &Context) {
        let changes = self.registry.take_changes();
        let will_changed = std::mem::take(&mut self.will_changed);
        let Some(journal) = ctx.journal.as_ref().filter(|_| !self.clean_session) else {
            return;
        };
        for change in changes {
            match change {
                Change::Added(id, topic) => {
                    journal.put_mqttsn_topic(&self.client_id, id, &midge_store::SnTopicRecord { topic });
                }
                Change::Removed(id) => {
                    journal.delete_mqttsn_topic(&self.client_id, id);
                }
            }
        }
        if will_changed {
            journal.put_mqttsn_will(&self.client_id, self.will.as_ref().map(will_record).as_ref());
        }
    }

    /// The first moment something must happen for this client without a datagram: keep alive,
    /// the end of a sleep, a retransmission.
    pub(crate) fn deadline(&self, ctx: &Context) -> Option<Instant> {
        let idle = match &self.state {
            State::Asleep { until, .. } => Some(*until),
            _ => self.keep_alive.map(|k| self.last_heard + k),
        };
        let retry = self
            .flight
            .as_ref()
            .map(|f| f.sent_at + ctx.options.retry_interval);
        match (idle, retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Acts on deadlines that passed.
    pub(crate) fn on_timer(&mut self, ctx: &Context, now: Instant) -> Outcome {
        match &self.state {
            State::Asleep { until, .. } if now >= *until => {
                return self.end(now, true, "sleep deadline missed".to_owned());
            }
            State::Asleep { .. } => {}
            _ => {
                if self.keep_alive.is_some_and(|k| now >= self.last_heard + k) {
                    return self.end(now, true, "exceeded timeout".to_owned());
                }
            }
        }
        let due = self
            .flight
            .as_ref()
            .is_some_and(|f| now >= f.sent_at + ctx.options.retry_interval);
        if due
            && !matches!(self.state, State::Asleep { .. })
            && let Some(flight) = &mut self.flight
        {
            if flight.tries >= ctx.options.retry_count {
                return self.end(now, true, "did not answer retransmissions".to_owned());
            }
            flight.tries += 1;
            flight.sent_at = now;
            if let Message::Publish(publish) = &mut flight.message {
                publish.dup = true;
            }
            let message = flight.message.clone();
            ctx.send(&self.peer, &message);
        }
        Outcome::Continue
    }

    /// Ends the session's connection: detaches it (publishing the will if asked) and forgets
    /// what was waiting to be sent.
    pub(crate) fn end(&mut self, now: Instant, publish_will: bool, reason: String) -> Outcome {
        if let Some(connection) = self.connection.take() {
            connection.end(now, publish_will);
        }
        self.pending.clear();
        self.flight = None;
        Outcome::Ended { reason }
    }

    /// One message from the client (already known to come from its address, or its forwarder
    /// and node id).
    pub(crate) fn on_message(&mut self, message: Message, ctx: &Context, now: Instant) -> Outcome {
        self.last_heard = now;
        let outcome = match message {
            Message::Register(register) => {
                self.on_register(&register, ctx);
                Outcome::Continue
            }
            Message::RegAck(ack) => self.on_regack(&ack, ctx, now),
            Message::Publish(publish) => self.on_publish(publish, ctx, now),
            Message::PubAck(ack) => self.on_puback(&ack, now),
            Message::PubRec { msg_id } => self.on_ack(msg_id, AckKind::PubRec, now),
            Message::PubComp { msg_id } => self.on_ack(msg_id, AckKind::PubComp, now),
            Message::PubRel { msg_id } => match NonZeroU16::new(msg_id) {
                Some(id) => self.handle(Packet::PubRel(Ack::new(id)), now),
                None => Outcome::Continue,
            },
            Message::Subscribe(subscribe) => self.on_subscribe(subscribe, ctx, now),
            Message::Unsubscribe(unsubscribe) => self.on_unsubscribe(unsubscribe, ctx, now),
            Message::PingReq { client_id } => self.on_pingreq(client_id, ctx),
            Message::Disconnect { duration } => self.on_disconnect(duration, ctx, now),
            Message::WillTopicUpd(topic) => self.on_will_topic_update(topic, ctx),
            Message::WillMsgUpd { data } => self.on_will_message_update(data, ctx),
            other => {
                SnCounters::bump(&ctx.counters.unexpected);
                tracing::debug!(client_id = %self.client_id, message = ?other.msg_type(), "MQTT-SN client {} sent an unexpected {:?}, ignored.", self.client_id, other.msg_type());
                Outcome::Continue
            }
        };
        if outcome == Outcome::Continue {
            self.pump(ctx, now)
        } else {
            outcome
        }
    }

    /// Hands a packet to the core.
    fn handle(&mut self, packet: Packet, now: Instant) -> Outcome {
        let Some(connection) = &mut self.connection else {
            return Outcome::Continue;
        };
        match connection.handle(packet, now, &mut self.out) {
            After::Continue => Outcome::Continue,
            After::Close { publish_will, reason } => self.end(now, publish_will, reason),
        }
    }

    fn on_register(&mut self, register: &Register, ctx: &Context) {
        let (topic_id, return_code) = match TopicName::new(register.topic_name.clone()) {
            Ok(topic) => match ctx.predefined.id(&self.client_id, &topic) {
                Some(id) => (id, ReturnCode::Accepted),
                None => {
                    match self
                        .registry
                        .register(&topic, ctx.first_free_id, ctx.options.max_registered_topics)
                    {
                        Some(id) => (id, ReturnCode::Accepted),
                        None => {
                            SnCounters::bump(&ctx.counters.register_refused);
                            (0, ReturnCode::Congestion)
                        }
                    }
                }
            },
            Err(_) => {
                SnCounters::bump(&ctx.counters.register_refused);
                (0, ReturnCode::NotSupported)
            }
        };
        ctx.send(
            &self.peer,
            &Message::RegAck(RegAck {
                topic_id,
                msg_id: register.msg_id,
                return_code,
            }),
        );
    }

    /// The topic a client's PUBLISH names, or `None` if the id is not known.
    fn inbound_topic(&self, topic: &PublishTopic, ctx: &Context) -> Option<TopicName> {
        match topic {
            PublishTopic::Id(id) => self.registry.topic(*id).cloned(),
            PublishTopic::Predefined(id) => ctx.predefined.topic(&self.client_id, *id).cloned(),
            PublishTopic::Short(name) => short_topic(*name),
            PublishTopic::Name(name) => TopicName::new(name.clone()).ok(),
        }
    }

    fn on_publish(&mut self, publish: v12::Publish, ctx: &Context, now: Instant) -> Outcome {
        let topic_id = topic_field(&publish.topic);
        let Some(topic) = self.inbound_topic(&publish.topic, ctx) else {
            SnCounters::bump(&ctx.counters.publish_unknown_topic);
            ctx.send(
                &self.peer,
                &Message::PubAck(PubAck {
                    topic_id,
                    msg_id: publish.msg_id,
                    return_code: ReturnCode::InvalidTopicId,
                }),
            );
            return Outcome::Continue;
        };
        let qos = match publish.qos {
            v12::QoS::MinusOne | v12::QoS::AtMostOnce => QoS::AtMostOnce,
            v12::QoS::AtLeastOnce => QoS::AtLeastOnce,
            v12::QoS::ExactlyOnce => QoS::ExactlyOnce,
        };
        let packet_id = if qos == QoS::AtMostOnce {
            None
        } else {
            match NonZeroU16::new(publish.msg_id) {
                Some(id) => Some(id),
                None => {
                    SnCounters::bump(&ctx.counters.unexpected);
                    return Outcome::Continue;
                }
            }
        };
        if let Some(id) = packet_id {
            remember(&mut self.inbound_topics, (id.get(), topic_id));
        }
        let mut mqtt = midge_codec::Publish::new(topic, publish.data);
        mqtt.qos = qos;
        mqtt.retain = publish.retain;
        mqtt.dup = publish.dup && qos != QoS::AtMostOnce;
        mqtt.packet_id = packet_id;
        self.handle(Packet::Publish(mqtt), now)
    }

    fn on_puback(&mut self, ack: &PubAck, now: Instant) -> Outcome {
        let Some(Flight {
            waiting: Waiting::PubAck(id),
            message,
            source,
            ..
        }) = &self.flight
        else {
            return Outcome::Continue;
        };
        if id.get() != ack.msg_id {
            return Outcome::Continue;
        }
        let id = *id;
        if ack.return_code == ReturnCode::InvalidTopicId
            && let Message::Publish(sent) = message
            && let PublishTopic::Id(topic_id) = sent.topic
            && let Some(source) = source.clone()
        {
            // The client does not know the id (it restarted, say): register again, resend.
            self.registry.forget(topic_id);
            self.flight = None;
            self.pending.push_front(Packet::Publish(source));
            return Outcome::Continue;
        }
        self.flight = None;
        self.handle(Packet::PubAck(Ack::new(id)), now)
    }

    fn on_ack(&mut self, msg_id: u16, kind: AckKind, now: Instant) -> Outcome {
        let matches = match (&self.flight, kind) {
            (
                Some(Flight {
                    waiting: Waiting::PubRec(id),
                    ..
                }),
                AckKind::PubRec,
            ) => id.get() == msg_id,
            (
                Some(Flight {
                    waiting: Waiting::PubComp(id),
                    ..
                }),
                AckKind::PubComp,
            ) => id.get() == msg_id,
            _ => false,
        };
        let Some(id) = NonZeroU16::new(msg_id).filter(|_| matches) else {
            return Outcome::Continue;
        };
        self.flight = None;
        match kind {
            AckKind::PubRec => self.handle(Packet::PubRec(Ack::new(id)), now),
            AckKind::PubComp => self.handle(Packet::PubComp(Ack::new(id)), now),
        }
    }

    fn on_regack(&mut self, ack: &RegAck, ctx: &Context, now: Instant) -> Outcome {
        let Some(Flight {
            waiting:
                Waiting::RegAck {
                    msg_id,
                    topic_id,
                    publish,
                },
            ..
        }) = &self.flight
        else {
            return Outcome::Continue;
        };
        if *msg_id != ack.msg_id {
            return Outcome::Continue;
        }
        let (topic_id, publish) = (*topic_id, publish.clone());
        self.flight = None;
        if ack.return_code.is_accepted() {
            self.send_publish(publish, PublishTopic::Id(topic_id), ctx, now)
        } else {
            // Never sent on a refused id (paho #230): the message is dropped, and counted.
            self.registry.forget(topic_id);
            SnCounters::bump(&ctx.counters.register_rejected);
            tracing::debug!(client_id = %self.client_id, "MQTT-SN client {} refused topic id {topic_id} ({:?}); message dropped.", self.client_id, ack.return_code);
            self.drop_delivery(&publish, ctx, now)
        }
    }

    fn next_packet_id(&mut self) -> PacketId {
        self.next_packet_id = self.next_packet_id.wrapping_add(1);
        NonZeroU16::new(self.next_packet_id).unwrap_or(NonZeroU16::MIN)
    }

    fn remember_request(&mut self, packet_id: PacketId, request: Request) {
        if self.request_order.len() >= REMEMBERED
            && let Some(old) = self.request_order.pop_front()
        {
            self.requests.remove(&old);
        }
        self.requests.insert(packet_id.get(), request);
        self.request_order.push_back(packet_id.get());
    }

    /// The filter a SUBSCRIBE or UNSUBSCRIBE names and the topic id SUBACK carries; `Err` with
    /// the return code to refuse it with.
    fn filter_of(&mut self, spec: &TopicSpec, ctx: &Context) -> Result<(TopicFilter, u16), ReturnCode> {
        match spec {
            TopicSpec::Name(name) => {
                let filter = TopicFilter::new(name.clone()).map_err(|_| ReturnCode::NotSupported)?;
                if filter.has_wildcards() || filter.shared().is_some() {
                    return Ok((filter, 0));
                }
                let topic = TopicName::new(name.clone()).map_err(|_| ReturnCode::NotSupported)?;
                let id = match ctx.predefined.id(&self.client_id, &topic) {
                    Some(id) => id,
                    None => self
                        .registry
                        .register(&topic, ctx.first_free_id, ctx.options.max_registered_topics)
                        .ok_or(ReturnCode::Congestion)?,
                };
                Ok((filter, id))
            }
            TopicSpec::Predefined(id) => {
                let topic = ctx
                    .predefined
                    .topic(&self.client_id, *id)
                    .ok_or(ReturnCode::InvalidTopicId)?;
                let filter = TopicFilter::new(topic.as_byte_string().clone())
                    .map_err(|_| ReturnCode::InvalidTopicId)?;
                Ok((filter, *id))
            }
            TopicSpec::Short(name) => {
                let text = std::str::from_utf8(name).map_err(|_| ReturnCode::NotSupported)?;
                let filter = TopicFilter::new(text.to_owned()).map_err(|_| ReturnCode::NotSupported)?;
                Ok((filter, 0))
            }
        }
    }

    fn on_subscribe(&mut self, subscribe: v12::Subscribe, ctx: &Context, now: Instant) -> Outcome {
        let (filter, topic_id) = match self.filter_of(&subscribe.topic, ctx) {
            Ok(found) => found,
            Err(return_code) => {
                ctx.send(
                    &self.peer,
                    &Message::SubAck(SubAck {
                        qos: v12::QoS::AtMostOnce,
                        topic_id: 0,
                        msg_id: subscribe.msg_id,
                        return_code,
                    }),
                );
                return Outcome::Continue;
            }
        };
        let qos = match subscribe.qos {
            v12::QoS::AtLeastOnce => QoS::AtLeastOnce,
            v12::QoS::ExactlyOnce => QoS::ExactlyOnce,
            _ => QoS::AtMostOnce,
        };
        let packet_id = self.next_packet_id();
        self.remember_request(
            packet_id,
            Request {
                msg_id: subscribe.msg_id,
                topic_id,
            },
        );
        let options = SubscriptionOptions {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::SendAtSubscribe,
        };
        self.handle(
            Packet::Subscribe(Subscribe {
                packet_id,
                subscriptions: vec![Subscription { filter, options }],
                properties: Default::default(),
            }),
            now,
        )
    }

    fn on_unsubscribe(&mut self, unsubscribe: v12::Unsubscribe, ctx: &Context, now: Instant) -> Outcome {
        let filter = match &unsubscribe.topic {
            TopicSpec::Name(name) => TopicFilter::new(name.clone()).ok(),
            TopicSpec::Predefined(id) => ctx
                .predefined
                .topic(&self.client_id, *id)
                .and_then(|t| TopicFilter::new(t.as_byte_string().clone()).ok()),
            TopicSpec::Short(name) => std::str::from_utf8(name)
                .ok()
                .and_then(|t| TopicFilter::new(t.to_owned()).ok()),
        };
        let Some(filter) = filter else {
            // Nothing can be subscribed under such a name: done.
            ctx.send(
                &self.peer,
                &Message::UnsubAck {
                    msg_id: unsubscribe.msg_id,
                },
            );
            return Outcome::Continue;
        };
        let packet_id = self.next_packet_id();
        self.remember_request(
            packet_id,
            Request {
                msg_id: unsubscribe.msg_id,
                topic_id: 0,
            },
        );
        self.handle(
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                filters: vec![filter],
                properties: Default::default(),
            }),
            now,
        )
    }

    fn on_pingreq(&mut self, client_id: Option<ByteString>, ctx: &Context) -> Outcome {
        match (&self.state, client_id) {
            (State::Asleep { duration, .. }, Some(id)) if id == self.client_id => {
                self.state = State::Awake { duration: *duration };
                self.set_taking_messages(true);
                SnCounters::bump(&ctx.counters.wakes);
                Outcome::Continue
            }
            (State::Asleep { .. }, _) => {
                // A PINGREQ without (or with another) client id does not wake a sleeper.
                Outcome::Continue
            }
            _ => {
                ctx.send(&self.peer, &Message::PingResp);
                Outcome::Continue
            }
        }
    }

    /// Tells the core whether this client takes messages now: asleep it does not, and its
    /// queue must not hold the publishers filling it (`midge_core::backpressure`).
    fn set_taking_messages(&self, taking: bool) {
        if let Some(connection) = &self.connection {
            connection.set_taking_messages(taking);
        }
    }

    fn on_disconnect(&mut self, duration: Option<u16>, ctx: &Context, now: Instant) -> Outcome {
        ctx.send(&self.peer, &Message::Disconnect { duration: None });
        match duration {
            Some(seconds) if seconds > 0 => {
                let duration = Duration::from_secs(u64::from(seconds)).min(ctx.options.max_sleep);
                self.state = State::Asleep {
                    until: now + sleep_tolerance(duration),
                    duration,
                };
                self.set_taking_messages(false);
                SnCounters::bump(&ctx.counters.sleeps);
                Outcome::Continue
            }
            _ => {
                self.handle(
                    Packet::Disconnect(midge_codec::Disconnect::new(ReasonCode::Success)),
                    now,
                );
                self.end(now, false, "disconnected".to_owned())
            }
        }
    }

    fn on_will_topic_update(&mut self, topic: Option<v12::WillTopic>, ctx: &Context) -> Outcome {
        let return_code = match topic {
            None => {
                self.will = None;
                ReturnCode::Accepted
            }
            Some(topic) => match TopicName::new(topic.topic.clone()) {
                Ok(name) => {
                    let payload = self.will.as_ref().map(|w| w.payload.clone()).unwrap_or_default();
                    self.will = Some(will(name, payload, topic.qos, topic.retain));
                    ReturnCode::Accepted
                }
                Err(_) => ReturnCode::NotSupported,
            },
        };
        if return_code.is_accepted() {
            self.will_changed = true;
            if let Some(connection) = &mut self.connection {
                connection.replace_will(self.will.as_ref());
            }
        }
        ctx.send(&self.peer, &Message::WillTopicResp { return_code });
        Outcome::Continue
    }

    fn on_will_message_update(&mut self, data: Bytes, ctx: &Context) -> Outcome {
        let return_code = match &mut self.will {
            Some(will) => {
                will.payload = data;
                self.will_changed = true;
                if let Some(connection) = &mut self.connection {
                    connection.replace_will(Some(will));
                }
                ReturnCode::Accepted
            }
            // No will topic to go with it.
            None => ReturnCode::NotSupported,
        };
        ctx.send(&self.peer, &Message::WillMsgResp { return_code });
        Outcome::Continue
    }

    /// Moves what the core has for the client towards it, as far as the flow allows: answers at
    /// once, messages one at a time; then, for a client woken from sleep with nothing left,
    /// PINGRESP and back to sleep.
    pub(crate) fn pump(&mut self, ctx: &Context, now: Instant) -> Outcome {
        if let Some(reason) = self.link.closed() {
            let reason = match reason {
                ReasonCode::SessionTakenOver => "session taken over".to_owned(),
                other => format!("closed by the broker ({:#04x})", other.as_u8()),
            };
            return self.end(now, false, reason);
        }
        if matches!(self.state, State::Asleep { .. }) || self.connection.is_none() {
            return Outcome::Continue;
        }
        loop {
            if let Outcome::Ended { reason } = self.collect(ctx, now) {
                return Outcome::Ended { reason };
            }
            if self.flight.is_some() || self.held {
                break;
            }
            match self.pending.pop_front() {
                Some(Packet::Publish(publish)) => {
                    if let Outcome::Ended { reason } = self.start_publish(publish, ctx, now) {
                        return Outcome::Ended { reason };
                    }
                }
                Some(Packet::PubRel(ack)) => {
                    if self.swallow_pubrel.remove(&ack.packet_id) {
                        if let Outcome::Ended { reason } =
                            self.handle(Packet::PubComp(Ack::new(ack.packet_id)), now)
                        {
                            return Outcome::Ended { reason };
                        }
                    } else {
                        let message = Message::PubRel {
                            msg_id: ack.packet_id.get(),
                        };
                        self.send_in_flight(Waiting::PubComp(ack.packet_id), message, ctx, now);
                    }
                }
                Some(_) => {}
                None => {
                    if !self.out.is_empty() {
                        continue;
                    }
                    if let Some(connection) = &mut self.connection {
                        connection.drain(now, &mut self.out);
                    }
                    if self.out.is_empty() {
                        break;
                    }
                }
            }
        }
        if let State::Awake { duration } = self.state
            && self.flight.is_none()
            && self.pending.is_empty()
            && self.out.is_empty()
        {
            ctx.send(&self.peer, &Message::PingResp);
            self.state = State::Asleep {
                until: now + sleep_tolerance(duration),
                duration,
            };
            self.set_taking_messages(false);
        }
        self.out.release_if_empty();
        Outcome::Continue
    }

    /// Decodes what the outbox holds (unless it waits for the journal): answers go out at once,
    /// messages join the pending queue.
    fn collect(&mut self, ctx: &Context, now: Instant) -> Outcome {
        self.held = ctx
            .durable
            .as_ref()
            .is_some_and(|durable| self.out.durable_after() > *durable.borrow())
            || ctx
                .logged
                .as_ref()
                .is_some_and(|settled| self.out.logged_after() > *settled.borrow());
        if self.held {
            return Outcome::Continue;
        }
        while self.pending.len() < PENDING_MAX {
            let packet = match self.decoder.decode(self.out.buffer()) {
                Ok(Some(packet)) => packet,
                Ok(None) => break,
                Err(error) => {
                    tracing::error!(client_id = %self.client_id, %error, "cannot decode what the broker sent an MQTT-SN client");
                    self.out.buffer().clear();
                    break;
                }
            };
            match packet {
                Packet::Publish(_) | Packet::PubRel(_) => self.pending.push_back(packet),
                Packet::ConnAck(_) => {
                    ctx.send(
                        &self.peer,
                        &Message::ConnAck {
                            return_code: ReturnCode::Accepted,
                        },
                    );
                }
                Packet::PubAck(ack) => {
                    let topic_id = self.inbound_topic_id(ack.packet_id);
                    let return_code = publish_return_code(ack.reason_code);
                    ctx.send(
                        &self.peer,
                        &Message::PubAck(PubAck {
                            topic_id,
                            msg_id: ack.packet_id.get(),
                            return_code,
                        }),
                    );
                }
                Packet::PubRec(ack) => {
                    ctx.send(
                        &self.peer,
                        &Message::PubRec {
                            msg_id: ack.packet_id.get(),
                        },
                    );
                }
                Packet::PubComp(ack) => {
                    self.inbound_topic_id(ack.packet_id);
                    ctx.send(
                        &self.peer,
                        &Message::PubComp {
                            msg_id: ack.packet_id.get(),
                        },
                    );
                }
                Packet::SubAck(ack) => {
                    let Some(request) = self.requests.remove(&ack.packet_id.get()) else {
                        continue;
                    };
                    let reason = ack
                        .reason_codes
                        .first()
                        .copied()
                        .unwrap_or(ReasonCode::UnspecifiedError);
                    let (qos, return_code) = match reason.as_u8() {
                        0 => (v12::QoS::AtMostOnce, ReturnCode::Accepted),
                        1 => (v12::QoS::AtLeastOnce, ReturnCode::Accepted),
                        2 => (v12::QoS::ExactlyOnce, ReturnCode::Accepted),
                        _ => (v12::QoS::AtMostOnce, ReturnCode::NotSupported),
                    };
                    let topic_id = if return_code.is_accepted() {
                        request.topic_id
                    } else {
                        0
                    };
                    ctx.send(
                        &self.peer,
                        &Message::SubAck(SubAck {
                            qos,
                            topic_id,
                            msg_id: request.msg_id,
                            return_code,
                        }),
                    );
                }
                Packet::UnsubAck(ack) => {
                    if let Some(request) = self.requests.remove(&ack.packet_id.get()) {
                        ctx.send(
                            &self.peer,
                            &Message::UnsubAck {
                                msg_id: request.msg_id,
                            },
                        );
                    }
                }
                Packet::Disconnect(disconnect) => {
                    let reason = format!("closed by the broker ({:#04x})", disconnect.reason_code.as_u8());
                    ctx.send(&self.peer, &Message::Disconnect { duration: None });
                    return self.end(now, false, reason);
                }
                _ => {}
            }
        }
        Outcome::Continue
    }

    fn inbound_topic_id(&mut self, packet_id: PacketId) -> u16 {
        match self
            .inbound_topics
            .iter()
            .position(|(id, _)| *id == packet_id.get())
        {
            Some(at) => self.inbound_topics.remove(at).map_or(0, |(_, topic)| topic),
            None => 0,
        }
    }

    /// Sends a message from the core: on its predefined id, as a short name, on its registered
    /// id, or after a REGISTER.
    fn start_publish(&mut self, publish: midge_codec::Publish, ctx: &Context, now: Instant) -> Outcome {
        let topic = publish.topic.as_str();
        if let Some(id) = ctx.predefined.id(&self.client_id, topic) {
            return self.send_publish(publish, PublishTopic::Predefined(id), ctx, now);
        }
        if let Ok(short) = <[u8; 2]>::try_from(topic.as_bytes()) {
            return self.send_publish(publish, PublishTopic::Short(short), ctx, now);
        }
        if let Some(id) = self.registry.id(topic) {
            return self.send_publish(publish, PublishTopic::Id(id), ctx, now);
        }
        let Some(topic_id) = self.registry.register(
            &publish.topic,
            ctx.first_free_id,
            ctx.options.max_registered_topics,
        ) else {
            SnCounters::bump(&ctx.counters.registry_full);
            return self.drop_delivery(&publish, ctx, now);
        };
        self.next_msg_id = self.next_msg_id.wrapping_add(1).max(1);
        let msg_id = self.next_msg_id;
        let register = Message::Register(Register {
            topic_id,
            msg_id,
            topic_name: publish.topic.as_byte_string().clone(),
        });
        self.send_in_flight(
            Waiting::RegAck {
                msg_id,
                topic_id,
                publish,
            },
            register,
            ctx,
            now,
        );
        Outcome::Continue
    }

    fn send_publish(
        &mut self,
        publish: midge_codec::Publish,
        topic: PublishTopic,
        ctx: &Context,
        now: Instant,
    ) -> Outcome {
        let qos = match publish.qos {
            QoS::AtMostOnce => v12::QoS::AtMostOnce,
            QoS::AtLeastOnce => v12::QoS::AtLeastOnce,
            QoS::ExactlyOnce => v12::QoS::ExactlyOnce,
        };
        let message = Message::Publish(v12::Publish {
            dup: publish.dup,
            qos,
            retain: publish.retain,
            topic,
            msg_id: publish.packet_id.map_or(0, NonZeroU16::get),
            data: publish.payload.clone(),
        });
        if !ctx.fits(&self.peer, &message) {
            SnCounters::bump(&ctx.counters.too_large_for_client);
            return self.drop_delivery(&publish, ctx, now);
        }
        match (publish.qos, publish.packet_id) {
            (QoS::AtLeastOnce, Some(id)) => {
                self.send_in_flight(Waiting::PubAck(id), message, ctx, now);
                if let Some(flight) = &mut self.flight {
                    flight.source = Some(publish);
                }
            }
            (QoS::ExactlyOnce, Some(id)) => self.send_in_flight(Waiting::PubRec(id), message, ctx, now),
            _ => ctx.send(&self.peer, &message),
        }
        Outcome::Continue
    }

    fn send_in_flight(&mut self, waiting: Waiting, message: Message, ctx: &Context, now: Instant) {
        ctx.send(&self.peer, &message);
        self.flight = Some(Flight {
            waiting,
            message,
            source: None,
            sent_at: now,
            tries: 0,
        });
    }

    /// A message that cannot reach the client: acknowledged to the core so the flow goes on.
    fn drop_delivery(&mut self, publish: &midge_codec::Publish, ctx: &Context, now: Instant) -> Outcome {
        SnCounters::bump(&ctx.counters.messages_dropped);
        match (publish.qos, publish.packet_id) {
            (QoS::AtLeastOnce, Some(id)) => self.handle(Packet::PubAck(Ack::new(id)), now),
            (QoS::ExactlyOnce, Some(id)) => {
                self.swallow_pubrel.insert(id);
                self.handle(Packet::PubRec(Ack::new(id)), now)
            }
            _ => Outcome::Continue,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum AckKind {
    PubRec,
    PubComp,
}

/// A sleep's deadline: the duration and a tolerance (§7.2 suggests +50 % for short periods,
/// +10 % for long ones), at least a second.
fn sleep_tolerance(duration: Duration) -> Duration {
    let extra = if duration < Duration::from_secs(60) {
        duration / 2
    } else {
        duration / 10
    };
    duration + extra.max(Duration::from_secs(1))
}

/// A two-character short topic name as a topic, if it is one (no wildcards).
pub(crate) fn short_topic(name: [u8; 2]) -> Option<TopicName> {
    let text = std::str::from_utf8(&name).ok()?;
    TopicName::new(text.to_owned()).ok()
}

/// The TopicId field of a PUBLISH, for its PUBACK.
pub(crate) fn topic_field(topic: &PublishTopic) -> u16 {
    match topic {
        PublishTopic::Id(id) | PublishTopic::Predefined(id) => *id,
        PublishTopic::Short(name) => u16::from_be_bytes(*name),
        PublishTopic::Name(_) => 0,
    }
}

/// The MQTT-SN return code for the core's answer to a PUBLISH. Refused by the access rules,
/// the message is acknowledged and dropped, as Mosquitto does for MQTT 3.1.1 clients, so a
/// device does not retry forever; a full queue is congestion.
fn publish_return_code(reason: ReasonCode) -> ReturnCode {
    match reason {
        r if !r.is_error() => ReturnCode::Accepted,
        ReasonCode::NotAuthorized => ReturnCode::Accepted,
        ReasonCode::QuotaExceeded | ReasonCode::ServerBusy => ReturnCode::Congestion,
        _ => ReturnCode::NotSupported,
    }
}

fn remember(list: &mut VecDeque<(u16, u16)>, entry: (u16, u16)) {
    list.retain(|(id, _)| *id != entry.0);
    if list.len() >= REMEMBERED {
        list.pop_front();
    }
    list.push_back(entry);
}

/// A will as the store keeps it.
fn will_record(will: &Will) -> midge_store::MessageRecord {
    midge_store::MessageRecord {
        topic: will.topic.clone(),
        payload: will.payload.clone(),
        qos: will.qos,
        retain: will.retain,
        properties: Default::default(),
        expires_at: None,
        publisher: None,
    }
}

/// A will read back from the store.
pub(crate) fn will_from_record(record: midge_store::MessageRecord) -> Will {
    Will {
        topic: record.topic,
        payload: record.payload,
        qos: record.qos,
        retain: record.retain,
        properties: Default::default(),
    }
}

/// An MQTT will from MQTT-SN's parts.
pub(crate) fn will(topic: TopicName, payload: Bytes, qos: v12::QoS, retain: bool) -> Will {
    Will {
        topic,
        payload,
        qos: match qos {
            v12::QoS::AtLeastOnce => QoS::AtLeastOnce,
            v12::QoS::ExactlyOnce => QoS::ExactlyOnce,
            _ => QoS::AtMostOnce,
        },
        retain,
        properties: Default::default(),
    }
}
