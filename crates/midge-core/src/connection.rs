//! One connected client, as its connection task holds it: packets in, encoded packets out.
//!
//! The runtime calls [`Connection::handle`] for each packet the client sends, [`Connection::drain`]
//! when the session's link was woken, and [`Connection::end`] once the socket is gone. Per-packet
//! logic lives in `handle/`, one file per packet family, in Mosquitto's `handle_*.c` spirit.

use rustc_hash::FxHashMap;
use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use bytestring::ByteString;
use midge_codec::{
    Connect, Disconnect, Packet, PacketId, PacketType, ProtocolVersion, PublishParts, QoS, ReasonCode,
    TopicName,
};

use crate::auth::ConnectionAuth;
use crate::broker::{Broker, CheckedConnect, RouteCache};
use crate::message::Delivery;
use crate::outbox::Outbox;
use crate::problem::ProblemInfo;
use crate::session::{Awaiting, Inflight, SessionCell};
use crate::stats::{DropReason, Stats};
use crate::topic_alias::{AliasPlan, OutboundAliases};

/// What the runtime does after a packet was handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    /// Keep reading.
    Continue,
    /// Write what is in the outbox, then close the connection and call [`Connection::end`]
    /// with `publish_will`.
    Close {
        /// Whether the will is published (everything but a normal DISCONNECT).
        publish_will: bool,
        /// What to log.
        reason: String,
    },
}

/// A client connection's state in the broker.
#[derive(Debug)]
pub struct Connection {
    pub(crate) broker: Arc<Broker>,
    pub(crate) session: Arc<SessionCell>,
    pub(crate) generation: u64,
    pub(crate) version: ProtocolVersion,
    pub(crate) username: Option<ByteString>,
    pub(crate) clean_start: bool,
    pub(crate) keep_alive: u16,
    /// Topic aliases the client set up (MQTT 5, client to server).
    pub(crate) topic_aliases: FxHashMap<u16, TopicName>,
    /// The client's Maximum Packet Size.
    pub(crate) client_max_packet_size: Option<u32>,
    /// Whether the session expiry was 0 at CONNECT, which DISCONNECT may not change (§3.14.2.2.2).
    pub(crate) connect_expiry_was_zero: bool,
    /// The listener's `mount_point`: put before the client's topics and filters, taken off
    /// what it receives.
    pub(crate) mount_point: Option<ByteString>,
    /// The listener it came through, for the access rules.
    pub(crate) listener: usize,
    /// A Mosquitto bridge (the bridge bit of a 3.x CONNECT): its subscriptions get No Local and
    /// Retain As Published, as Mosquitto treats bridges, so two brokers bridged both ways do
    /// not echo each other's messages.
    pub(crate) bridge: bool,
    /// The enhanced authentication the connection was admitted by, for re-authentication.
    pub(crate) auth: Option<Box<ConnectionAuth>>,
    /// Topic aliases this connection sends (`topic_alias.rs`): only when the client allows
    /// them. A lock only because PUBLISHes are written under the session's lock, through
    /// `&self`; nothing else ever takes it.
    pub(crate) outbound_aliases: Option<Box<Mutex<OutboundAliases>>>,
    /// Subscribers' queues this client's messages congested: it is not read until they drain
    /// (`backpressure.rs`).
    pub(crate) waiting_on: Vec<Arc<SessionCell>>,
    /// What the client lets the broker explain in Reason Strings (`problem.rs`).
    pub(crate) problem: ProblemInfo,
    /// Messages counted but not yet added to the broker's counters.
    pub(crate) unreported: Unreported,
    /// The subscribers of the topic this client published to last (`broker.rs`).
    pub(crate) route_cache: Option<Box<RouteCache>>,
    /// An acknowledgement of this batch opened the window: drain before the next packet or
    /// at the batch's end ([`Connection::handle_in_batch`]).
    drain_due: bool,
}

/// A connection's message counts since it last reported them: added to the broker-wide
/// [`Stats`] once per batch of packets rather than once per message, where every worker thread
/// updating the same counters cost two locked instructions per message and a cache line
/// bouncing between cores. `Cell`s, because PUBLISHes are written through `&self`.
#[derive(Debug, Default)]
pub(crate) struct Unreported {
    pub(crate) received: Cell<u64>,
    pub(crate) received_bytes: Cell<u64>,
    pub(crate) sent: Cell<u64>,
    pub(crate) sent_bytes: Cell<u64>,
}

impl Unreported {
    /// Counts one PUBLISH received with `bytes` of payload.
    pub(crate) fn received(&self, bytes: usize) {
        self.received.set(self.received.get() + 1);
        self.received_bytes.set(self.received_bytes.get() + bytes as u64);
    }

    /// Counts one PUBLISH sent with `bytes` of payload.
    pub(crate) fn sent(&self, bytes: usize) {
        self.sent.set(self.sent.get() + 1);
        self.sent_bytes.set(self.sent_bytes.get() + bytes as u64);
    }

    /// Adds the counts to `stats` and starts again from zero.
    fn report(&self, stats: &Stats) {
        Stats::add(&stats.publish_received, self.received.take());
        Stats::add(&stats.publish_bytes_received, self.received_bytes.take());
        Stats::add(&stats.publish_sent, self.sent.take());
        Stats::add(&stats.publish_bytes_sent, self.sent_bytes.take());
    }
}

impl Connection {
    pub(crate) fn new(
        broker: Arc<Broker>,
        session: Arc<SessionCell>,
        generation: u64,
        connect: &Connect,
        checked: CheckedConnect,
        expiry: Option<Duration>,
    ) -> Self {
        Self {
            broker,
            session,
            generation,
            version: connect.protocol,
            mount_point: checked.mount_point,
            listener: checked.listener,
            username: connect.username.as_deref().map(ByteString::from),
            clean_start: connect.clean_start,
            keep_alive: checked.keep_alive,
            topic_aliases: FxHashMap::default(),
            client_max_packet_size: connect.properties.maximum_packet_size.map(|m| m.get()),
            connect_expiry_was_zero: expiry.is_some_and(|e| e.is_zero()) && connect.protocol.is_v5(),
            bridge: connect.bridge && !connect.protocol.is_v5(),
            auth: None,
            outbound_aliases: connect
                .properties
                .topic_alias_maximum
                .filter(|_| connect.protocol.is_v5())
                .and_then(OutboundAliases::new)
                .map(|table| Box::new(Mutex::new(table))),
            waiting_on: Vec::new(),
            problem: ProblemInfo::of(connect),
            unreported: Unreported::default(),
            route_cache: None,
            drain_due: false,
        }
    }

    /// The client identifier (assigned by the broker if the client sent none).
    pub fn client_id(&self) -> &ByteString {
        &self.session.client_id
    }

    /// The protocol version.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// The user name the client connected with.
    pub fn username(&self) -> Option<&ByteString> {
        self.username.as_ref()
    }

    /// The keep alive in force, in seconds (0: none). The runtime closes the connection after
    /// one and a half times this without a packet [MQTT-3.1.2-22].
    pub fn keep_alive(&self) -> u16 {
        self.keep_alive
    }

    /// Whether CONNECT asked for a clean start (clean session).
    pub fn clean_start(&self) -> bool {
        self.clean_start
    }

    /// Whether the client is a Mosquitto bridge (the bridge bit of a 3.x CONNECT).
    pub fn is_bridge(&self) -> bool {
        self.bridge
    }

    /// Handles one packet from the client.
    pub fn handle(&mut self, packet: Packet, now: Instant, out: &mut Outbox) -> After {
        let after = self.handle_in_batch(packet, now, out);
        self.finish_batch(now, out);
        after
    }

    /// Handles one packet of several read together; [`finish_batch`](Self::finish_batch)
    /// must follow the last. An acknowledgement that opens the in-flight window leaves the
    /// drain it calls for to the next packet or the end of the batch: a subscriber acking ten
    /// messages in one write gets the next ten in one drain, not ten drains of one (each a
    /// lock of the session and a write of its own). What goes out keeps its order: a pending
    /// drain runs before any other packet is handled.
    pub fn handle_in_batch(&mut self, packet: Packet, now: Instant, out: &mut Outbox) -> After {
        if !self.is_current() {
            return After::Close {
                publish_will: false,
                reason: "session taken over".into(),
            };
        }
        let ack = matches!(packet, Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubComp(_));
        if !ack && std::mem::take(&mut self.drain_due) {
            self.drain(now, out);
        }
        // A PUBLISH from the client needs no drain unless its own session got the message,
        // which `handle_publish` sees and drains for; its counts wait for the end of the
        // batch ([`Connection::report`]).
        let drains = !matches!(packet, Packet::Publish(_));
        let after = match packet {
            Packet::Publish(publish) => self.handle_publish(publish, now, out),
            Packet::PubAck(ack) => self.handle_puback(&ack, now, out),
            Packet::PubRec(ack) => self.handle_pubrec(&ack, now, out),
            Packet::PubRel(ack) => self.handle_pubrel(&ack, out),
            Packet::PubComp(ack) => self.handle_pubcomp(&ack, now, out),
            Packet::Subscribe(subscribe) => self.handle_subscribe(subscribe, now, out),
            Packet::Unsubscribe(unsubscribe) => self.handle_unsubscribe(unsubscribe, out),
            Packet::PingReq => {
                out.send(&Packet::PingResp);
                After::Continue
            }
            Packet::Disconnect(disconnect) => self.handle_disconnect(&disconnect, out),
            // [MQTT-3.1.0-2]: a second CONNECT is a protocol violation.
            Packet::Connect(_) => {
                self.violation(ReasonCode::ProtocolError, "second CONNECT [MQTT-3.1.0-2]", out)
            }
            Packet::Auth(auth) => self.handle_auth(&auth, out),
            other => self.violation(
                ReasonCode::ProtocolError,
                &format!("{:?} may only be sent by a server", other.packet_type()),
                out,
            ),
        };
        if drains && after == After::Continue {
            if ack {
                self.drain_due = true;
            } else {
                self.drain(now, out);
            }
        }
        after
    }

    /// Ends a batch of [`handle_in_batch`](Self::handle_in_batch): the drain an
    /// acknowledgement left pending, and the batch's counts.
    pub fn finish_batch(&mut self, now: Instant, out: &mut Outbox) {
        if std::mem::take(&mut self.drain_due) {
            self.drain(now, out);
        } else {
            self.report();
        }
    }

    /// Adds the messages this connection received and sent since the last report to the
    /// broker's counters: at the end of every batch of packets ([`finish_batch`](Self::finish_batch)),
    /// every drain, and the connection's end.
    pub fn report(&self) {
        self.unreported.report(self.broker.stats());
    }

    /// Ends the connection for a protocol violation: MQTT 5 clients get DISCONNECT with the
    /// reason first [MQTT-4.13.1-1].
    pub(crate) fn violation(&self, reason: ReasonCode, detail: &str, out: &mut Outbox) -> After {
        self.send_disconnect(reason, Some(detail), out);
        After::Close {
            publish_will: true,
            reason: format!("{detail} (reason {:#04x})", reason.as_u8()),
        }
    }

    /// Puts a DISCONNECT with `reason` in the outbox if the client speaks MQTT 5 (earlier
    /// versions have no server DISCONNECT). A reason DISCONNECT may not carry (0x84, say, from
    /// a second CONNECT of an unknown protocol) is sent as 0x82 Protocol Error (§3.14.2.1).
    /// `explanation` becomes its Reason String (by default, a few words for the reason code),
    /// unless it would not fit the client's Maximum Packet Size (`problem.rs`). The server's
    /// DISCONNECT never carries a Session Expiry Interval [MQTT-3.14.2-2].
    pub fn send_disconnect(&self, reason: ReasonCode, explanation: Option<&str>, out: &mut Outbox) {
        if self.version.is_v5() {
            let reason = if reason.allowed_in(PacketType::Disconnect) {
                reason
            } else {
                ReasonCode::ProtocolError
            };
            let explanation = explanation.or_else(|| default_explanation(reason));
            self.problem
                .send(Packet::Disconnect(Disconnect::new(reason)), explanation, out);
        }
    }

    /// Whether this connection still owns its session (not taken over).
    pub(crate) fn is_current(&self) -> bool {
        self.session.state.lock().generation == self.generation
    }

    /// Moves queued messages into the outbox while the inflight window and the outbox's high
    /// water mark allow, in queue order.
    pub fn drain(&mut self, now: Instant, out: &mut Outbox) {
        self.drain_queue(now, out);
        self.report();
    }

    fn drain_queue(&mut self, now: Instant, out: &mut Outbox) {
        let config = &self.broker.config;
        let stats = self.broker.stats();
        let journal = self.broker.journal.as_ref();
        let mut session = self.session.state.lock();
        if session.generation != self.generation || session.link.is_none() {
            return;
        }
        let queued_before = session.queue.len() + session.paged.len();
        while out.len() < config.outbox_high_water {
            if session.queue.is_empty() && !session.paged.is_empty() {
                session.page_in(&self.session.client_id, journal, stats);
            }
            let Some(front) = session.queue.front() else { break };
            if front.message.is_expired(now) {
                if let Some(expired) = session.dequeue() {
                    session.forget_delivery(&self.session.client_id, &expired, journal);
                }
                stats.dropped(DropReason::Expired);
                continue;
            }
            if front.qos != QoS::AtMostOnce && !session.window_open(config, front.message.size()) {
                break;
            }
            let Some(delivery) = session.dequeue() else { break };
            if delivery.qos == QoS::AtMostOnce {
                self.write_publish(&delivery, None, false, now, out);
                continue;
            }
            let packet_id = session.allocate_packet_id();
            if !self.write_publish(&delivery, Some(packet_id), false, now, out) {
                session.forget_delivery(&self.session.client_id, &delivery, journal);
                continue;
            }
            let state = if delivery.qos == QoS::AtLeastOnce {
                Awaiting::PubAck
            } else {
                Awaiting::PubRec
            };
            let inflight = Inflight {
                packet_id,
                delivery,
                state,
            };
            // Stored with its packet identifier, so that a restart resends it with the same one
            // [MQTT-4.4.0-1]. A QoS 2 PUBLISH waits until that is durable: sent earlier, a
            // crash could make the broker send it again under a new identifier, and the client
            // would take it for a second message. A QoS 1 PUBLISH need not wait: the worst a
            // crash can do is send it again, which QoS 1 allows.
            let stored = session.persist_inflight(&self.session.client_id, &inflight, journal);
            if inflight.delivery.qos == QoS::ExactlyOnce {
                out.require_durable(stored);
            }
            session.push_inflight(inflight);
        }
        if session.queue.len() + session.paged.len() < queued_before {
            session.note_progress(config, now);
        }
    }

    /// Resends everything in flight, in order, as a resumed session requires [MQTT-4.4.0-1]:
    /// PUBLISH with DUP, or PUBREL where PUBREC already came.
    pub(crate) fn resend_inflight(&mut self, now: Instant, out: &mut Outbox) {
        let inflight: Vec<Inflight> = self.session.state.lock().inflight.iter().cloned().collect();
        for entry in inflight {
            match entry.state {
                Awaiting::PubComp => {
                    out.send(&Packet::PubRel(midge_codec::Ack::new(entry.packet_id)));
                }
                _ => {
                    self.write_publish(&entry.delivery, Some(entry.packet_id), true, now, out);
                }
            }
        }
    }

    /// Encodes one PUBLISH for this client. False if it was dropped because it exceeds the
    /// client's Maximum Packet Size [MQTT-3.1.2-25].
    pub(crate) fn write_publish(
        &self,
        delivery: &Delivery,
        packet_id: Option<PacketId>,
        dup: bool,
        now: Instant,
        out: &mut Outbox,
    ) -> bool {
        let message = &delivery.message;
        let limit = self.client_max_packet_size.unwrap_or(u32::MAX) as usize;
        // A mounted client sees topics without the mount point: no shared encoding.
        let unmounted = match &self.mount_point {
            None => None,
            Some(mount) => match message.topic.as_str().strip_prefix(mount.as_ref() as &str) {
                Some(rest) if !rest.is_empty() => Some(rest),
                // Not under the mount point: never for this client (as Mosquitto, silently).
                _ => return false,
            },
        };
        // Topic aliases: what to send for the topic as this client sees it.
        let mut aliases = self.outbound_aliases.as_deref().map(|table| table.lock());
        let alias = aliases
            .as_ref()
            .map(|table| table.plan(unmounted.unwrap_or(message.topic.as_str())));
        let by_name = matches!(alias, None | Some(AliasPlan::Name { .. }));
        let shared = if delivery.subscription_ids.is_empty()
            && unmounted.is_none()
            && by_name
            && message.worth_a_template()
        {
            message.template(self.version, delivery.qos, delivery.retain, now)
        } else {
            None
        };
        if let Some(template) = shared {
            if template.len() > limit {
                return self.too_large();
            }
            out.send_template(template, packet_id, dup);
        } else if delivery.subscription_ids.is_empty()
            && unmounted.is_none()
            && alias.is_none()
            && message.expires_at.is_none()
        {
            // The message as it is, encoded from its own fields: the common single receiver.
            let publish = PublishParts {
                dup,
                qos: delivery.qos,
                retain: delivery.retain,
                topic: &message.topic,
                packet_id,
                properties: message.properties.allocated(),
                payload: &message.payload,
            };
            if self.client_max_packet_size.is_some()
                && publish.encoded_len(self.version).is_ok_and(|len| len > limit)
            {
                return self.too_large();
            }
            out.send_publish(&publish);
        } else {
            let mut publish =
                message.to_publish(delivery.qos, delivery.retain, &delivery.subscription_ids, now);
            publish.packet_id = packet_id;
            publish.dup = dup;
            if let Some(topic) = unmounted {
                match TopicName::new(topic) {
                    Ok(topic) => publish.topic = topic,
                    Err(_) => return false,
                }
            }
            if !self.version.is_v5() {
                publish.properties = Default::default();
            }
            match alias {
                Some(AliasPlan::Known(known)) => {
                    publish.topic = TopicName::empty();
                    publish.properties.topic_alias = Some(known);
                }
                Some(AliasPlan::New { alias, .. }) => publish.properties.topic_alias = Some(alias),
                Some(AliasPlan::Name { .. }) | None => {}
            }
            let packet = Packet::Publish(publish);
            if packet.encoded_len(self.version).is_ok_and(|len| len > limit) {
                return self.too_large();
            }
            out.send(&packet);
        }
        if let (Some(table), Some(plan)) = (aliases.as_mut(), alias) {
            table.commit(unmounted.unwrap_or(message.topic.as_str()), plan);
        }
        self.unreported.sent(message.payload.len());
        true
    }

    fn too_large(&self) -> bool {
        self.broker.stats().dropped(DropReason::TooLargeForClient);
        false
    }

    /// Puts an acknowledgement in the outbox with `explanation` as its Reason String, where the
    /// client allows it and it fits (`problem.rs`).
    pub(crate) fn send_explained(&self, packet: Packet, explanation: Option<&str>, out: &mut Outbox) {
        self.problem.send(packet, explanation, out);
    }

    /// The connection is gone (socket closed, keep alive expired, protocol error, or the client
    /// disconnected). Detaches the session, publishing or scheduling the will if asked to.
    pub fn end(self, now: Instant, publish_will: bool) {
        self.report();
        self.broker
            .detach(&self.session, self.generation, publish_will, now);
    }
}

/// The Reason String of a DISCONNECT the broker sends for a reason of its own, not a client's
/// violation (which is explained by what the client did).
fn default_explanation(reason: ReasonCode) -> Option<&'static str> {
    Some(match reason {
        ReasonCode::ServerShuttingDown => "the broker is shutting down",
        ReasonCode::KeepAliveTimeout => "nothing received for one and a half times the keep alive",
        ReasonCode::SessionTakenOver => {
            "another connection with this client identifier took over the session"
        }
        ReasonCode::AdministrativeAction => "disconnected by an administrator",
        _ => return None,
    })
}
