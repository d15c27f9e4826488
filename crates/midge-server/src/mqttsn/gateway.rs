//! One UDP socket of an MQTT-SN listener and every client on it, in one task: datagrams are
//! decoded and dispatched by source address (for an encapsulated one from a forwarder, by the
//! forwarder's address and the wireless node id, see `peer`); CONNECT (with its will prompts),
//! SEARCHGW and QoS -1 PUBLISH are the only messages an unknown address may send; timers (keep
//! alive, sleep, retransmission, ADVERTISE) run on one tick.
//!
//! One task per socket keeps every client's state free of locks; the broker's work (routing,
//! persistence) runs in the core as for any connection. Sessions are keyed by a slot number
//! that the session's link reports on wake-up.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use bytestring::ByteString;
use midge_codec::{Connect, Packet, ProtocolVersion, ReasonCode, TopicName, Will};
use midge_core::{Broker, ClientRules, Connection, Credentials, Link, Outbox};
use midge_sn::DecodeError;
use midge_sn::v12::{self, Message, PublishTopic, ReturnCode};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::client::{Client, Outcome, SnLink, State, short_topic, will, will_from_record};
use super::peer::{Peer, RateKey};
use super::registry::Registry;
use super::{Context, GatewaySpec, SnCounters, Wakes};
use crate::limits::{LogThrottle, RateLimit};

/// How often deadlines are checked: keep alive has a 50 % tolerance, so a fifth of a second is
/// plenty.
const TICK: Duration = Duration::from_millis(200);
/// Persistent clients' registries and wills kept between connections, at most.
const KEPT_MAX: usize = 65_536;
/// Replies to unknown peers (GWINFO, DISCONNECT) per second, for the whole socket.
const UNKNOWN_REPLIES_PER_SECOND: u32 = 100;

/// A CONNECT with Will set, waiting for its will topic and message (§6.2).
#[derive(Debug)]
struct Prompt {
    connect: v12::Connect,
    topic: Option<v12::WillTopic>,
    since: Instant,
}

/// What a persistent session keeps of its MQTT-SN side between connections: here while the
/// gateway runs, and (with persistence) in the store, where it is found after a restart.
#[derive(Debug)]
struct Kept {
    registry: Registry,
    will: Option<Will>,
}

/// One socket's gateway.
struct Gateway {
    ctx: Context,
    broker: Arc<Broker>,
    rules: Arc<ClientRules>,
    port: u16,
    max_connections: Option<usize>,
    connect_rate: Option<RateLimit<RateKey>>,
    unknown_replies: (Instant, u32),
    peers: HashMap<Peer, u64>,
    clients: HashMap<u64, Client>,
    by_id: HashMap<ByteString, u64>,
    prompts: HashMap<Peer, Prompt>,
    kept: HashMap<ByteString, Kept>,
    next_slot: u64,
    wakes: Arc<Wakes>,
    qos_neg1: Option<(Connection, Outbox)>,
    refusal_log: LogThrottle,
    malformed_log: LogThrottle,
    forwarder_log: LogThrottle,
}

/// Serves one MQTT-SN socket until `stop` changes.
#[allow(clippy::too_many_arguments, reason = "the listener's parts")]
pub(crate) async fn run(
    socket: UdpSocket,
    spec: Arc<GatewaySpec>,
    rules: Arc<ClientRules>,
    max_connections: Option<usize>,
    max_connection_rate: Option<u32>,
    broker: Arc<Broker>,
    counters: Arc<SnCounters>,
    logged: Option<watch::Receiver<u64>>,
    mut stop: watch::Receiver<bool>,
) {
    let port = socket.local_addr().map_or(0, |a| a.port());
    let socket = Arc::new(socket);
    let journal = broker.journal().cloned();
    let durable = journal.as_ref().map(|journal| journal.watch());
    let mut durable_changes = durable.clone();
    let mut logged_changes = logged.clone();
    let first_free_id = spec.predefined.highest().saturating_add(1);
    let mut gateway = Gateway {
        ctx: Context {
            socket: socket.clone(),
            options: spec.options.clone(),
            predefined: spec.predefined.clone(),
            first_free_id,
            counters,
            durable,
            logged,
            journal,
        },
        broker,
        rules,
        port,
        max_connections,
        connect_rate: max_connection_rate.map(RateLimit::new),
        unknown_replies: (Instant::now(), 0),
        peers: HashMap::new(),
        clients: HashMap::new(),
        by_id: HashMap::new(),
        prompts: HashMap::new(),
        kept: HashMap::new(),
        next_slot: 0,
        wakes: Arc::default(),
        qos_neg1: None,
        refusal_log: LogThrottle::default(),
        malformed_log: LogThrottle::default(),
        forwarder_log: LogThrottle::default(),
    };
    let wakes = gateway.wakes.clone();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut advertise = spec.options.advertise.map(|period| {
        let mut every = tokio::time::interval(period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every
    });
    let mut buf = vec![0u8; usize::from(spec.options.max_packet_size) + 1];
    loop {
        let any_held = gateway.clients.values().any(|c| c.held);
        tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((len, from)) => {
                    let datagram = buf.get(..len).unwrap_or_default();
                    gateway.on_datagram(datagram, from, Instant::now());
                }
                Err(error) => {
                    // ICMP errors for earlier sends surface here on some systems: not fatal.
                    tracing::debug!(%error, "MQTT-SN socket error: {error}");
                }
            },
            () = wakes.notify.notified() => gateway.on_wakes(Instant::now()),
            _ = tick.tick() => gateway.on_tick(Instant::now()),
            () = async {
                match advertise.as_mut() {
                    Some(every) => { every.tick().await; }
                    None => std::future::pending().await,
                }
            } => gateway.advertise(),
            moved = async {
                match durable_changes.as_mut() {
                    Some(durable) => durable.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            }, if any_held => {
                if moved {
                    gateway.pump_held(Instant::now());
                }
            }
            moved = async {
                match logged_changes.as_mut() {
                    Some(settled) => settled.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            }, if any_held => {
                if moved {
                    gateway.pump_held(Instant::now());
                }
            }
            _ = stop.changed() => {
                gateway.shutdown(Instant::now());
                return;
            }
        }
    }
}

impl Gateway {
    fn on_datagram(&mut self, datagram: &[u8], from: SocketAddr, now: Instant) {
        let counters = self.ctx.counters.clone();
        SnCounters::bump(&counters.datagrams_received);
        if datagram.len() > usize::from(self.ctx.options.max_packet_size) {
            SnCounters::bump(&counters.dropped_too_large);
            return;
        }
        let (peer, message) = match v12::decode(Bytes::copy_from_slice(datagram)) {
            Ok(Message::Encapsulated(encapsulated)) => {
                if !self.ctx.options.forwarders {
                    SnCounters::bump(&counters.dropped_forwarders_off);
                    if let Some(more) = self.forwarder_log.should_log(now) {
                        tracing::info!(event = "mqttsn.forwarder_refused", %from, "MQTT-SN encapsulated datagram from {from} dropped: mqttsn_forwarders is off.{}", more_since(more));
                    }
                    return;
                }
                match Peer::open(from, encapsulated) {
                    Ok(opened) => {
                        SnCounters::bump(&counters.forwarded);
                        opened
                    }
                    Err(error) => {
                        self.drop_malformed(from, "encapsulated message", &error, now);
                        return;
                    }
                }
            }
            Ok(message) => (Peer::direct(from), message),
            Err(error) => {
                self.drop_malformed(from, "datagram", &error, now);
                return;
            }
        };
        self.on_message(peer, message, datagram.len(), now);
    }

    /// A datagram (or the message a forwarder encapsulated) that does not decode: dropped,
    /// counted, never answered.
    fn drop_malformed(&mut self, from: SocketAddr, what: &str, error: &DecodeError, now: Instant) {
        SnCounters::bump(&self.ctx.counters.dropped_malformed);
        // One line a second at most, whatever the flood.
        if let Some(more) = self.malformed_log.should_log(now) {
            tracing::info!(event = "mqttsn.malformed", %from, kind = error.kind(), "MQTT-SN {what} from {from} dropped: {error}.{}", more_since(more));
        }
    }

    /// One message from `peer`, in a datagram of `request_len` bytes.
    fn on_message(&mut self, peer: Peer, message: Message, request_len: usize, now: Instant) {
        let counters = self.ctx.counters.clone();
        if let Some(&slot) = self.peers.get(&peer) {
            if let Message::Connect(connect) = message {
                // The client starts over from the same address: its old connection ends
                // without its will (it is back), and the new CONNECT is served.
                self.finish(slot, now, false, "reconnected".to_owned());
                self.on_connect(connect, &peer, now);
                return;
            }
            let outcome = match self.clients.get_mut(&slot) {
                Some(client) => client.on_message(message, &self.ctx, now),
                None => return,
            };
            self.after(slot, outcome);
            return;
        }
        if self.prompts.contains_key(&peer) {
            self.on_prompt_answer(message, &peer, now);
            return;
        }
        match message {
            Message::Connect(connect) => self.on_connect(connect, &peer, now),
            Message::SearchGw { radius } => {
                let gw_info = Message::GwInfo(v12::GwInfo {
                    gw_id: self.ctx.options.gateway_id,
                    gw_addr: Bytes::new(),
                });
                // Through a forwarder, with the radius the client searched with (§5.5).
                self.reply_to_unknown(&peer, &gw_info, radius, request_len, now);
            }
            Message::Publish(publish) if publish.qos == v12::QoS::MinusOne => {
                self.on_qos_neg1(publish, &peer, now);
            }
            Message::PingReq { client_id: Some(id) } if self.by_id.contains_key(&id) => {
                // A sleeping (or connected) client's identifier from another address (or
                // forwarder, or node id): a forged or moved source gets nothing, not even an
                // answer.
                SnCounters::bump(&counters.wakes_refused);
                tracing::info!(event = "mqttsn.wake_refused", from = %peer, client_id = %id, "MQTT-SN PINGREQ for {id} from {peer}, which is not its address; ignored.");
            }
            // Never answer other gateways' discovery messages.
            Message::Advertise { .. } | Message::GwInfo(_) | Message::Disconnect { .. } => {
                SnCounters::bump(&counters.dropped_unknown_peer);
            }
            _ => {
                // A client the gateway does not know (it restarted, or the client's address
                // changed): DISCONNECT tells it to connect again. Two bytes (and the same
                // encapsulation as the request), never more than the datagram, rate-limited.
                SnCounters::bump(&counters.dropped_unknown_peer);
                let disconnect = Message::Disconnect { duration: None };
                self.reply_to_unknown(&peer, &disconnect, 0, request_len, now);
            }
        }
    }

    /// Answers a peer without a session: within the socket's budget, and never with a datagram
    /// larger than the one it answers (encapsulation counted on both sides), so that a forged
    /// source cannot make the gateway an amplifier.
    fn reply_to_unknown(&mut self, to: &Peer, reply: &Message, radius: u8, request_len: usize, now: Instant) {
        if !to.encoded_len(reply).is_ok_and(|len| len <= request_len) {
            tracing::debug!(%to, message = ?reply.msg_type(), "MQTT-SN {:?} to {to} not sent: larger than the datagram it answers", reply.msg_type());
            return;
        }
        if self.may_reply_to_unknown(now) {
            self.ctx.send_with_radius(to, reply, radius);
        }
    }

    /// The global budget for answers to addresses without a session.
    fn may_reply_to_unknown(&mut self, now: Instant) -> bool {
        let (since, count) = &mut self.unknown_replies;
        if now.duration_since(*since) >= Duration::from_secs(1) {
            *since = now;
            *count = 0;
        }
        *count += 1;
        if *count > UNKNOWN_REPLIES_PER_SECOND {
            SnCounters::bump(&self.ctx.counters.dropped_rate_limited);
            return false;
        }
        true
    }

    fn refuse(&mut self, from: &Peer, return_code: ReturnCode, why: &str, now: Instant) {
        SnCounters::bump(&self.ctx.counters.connects_refused);
        self.ctx.send(from, &Message::ConnAck { return_code });
        if let Some(more) = self.refusal_log.should_log(now) {
            let more = if more > 0 {
                format!(" ({more} more refused since the last such line)")
            } else {
                String::new()
            };
            tracing::info!(event = "client.refused", peer = %from, reason = %why, "MQTT-SN client refused from {from}: {why}.{more}");
        }
    }

    fn on_connect(&mut self, connect: v12::Connect, from: &Peer, now: Instant) {
        if connect.client_id.is_empty() {
            // MQTT-SN 1.2 has no assigned identifiers: the client could not learn one.
            self.refuse(from, ReturnCode::NotSupported, "empty client identifier", now);
            return;
        }
        if let Some(rate) = &mut self.connect_rate
            && !rate.admit(from.rate_key(), now)
        {
            SnCounters::bump(&self.ctx.counters.dropped_rate_limited);
            self.refuse(from, ReturnCode::Congestion, "max_connection_rate exceeded", now);
            return;
        }
        if self
            .max_connections
            .is_some_and(|max| self.clients.len() + self.prompts.len() >= max)
        {
            self.refuse(from, ReturnCode::Congestion, "max_connections reached", now);
            return;
        }
        if connect.will {
            self.prompts.insert(
                from.clone(),
                Prompt {
                    connect,
                    topic: None,
                    since: now,
                },
            );
            self.ctx.send(from, &Message::WillTopicReq);
            return;
        }
        // No Will flag: a persistent client keeps the will it had (§6.3).
        self.connect(connect, None, from, now);
    }

    /// WILLTOPIC and WILLMSG after a CONNECT with Will set.
    fn on_prompt_answer(&mut self, message: Message, from: &Peer, now: Instant) {
        let Some(prompt) = self.prompts.get_mut(from) else {
            return;
        };
        match message {
            Message::WillTopic(None) => {
                // An empty WILLTOPIC: no will after all.
                if let Some(prompt) = self.prompts.remove(from) {
                    self.connect(prompt.connect, Some(None), from, now);
                }
            }
            Message::WillTopic(Some(topic)) if prompt.topic.is_none() => {
                if TopicName::new(topic.topic.clone()).is_err() {
                    self.prompts.remove(from);
                    self.refuse(from, ReturnCode::NotSupported, "invalid will topic", now);
                    return;
                }
                prompt.topic = Some(topic);
                self.ctx.send(from, &Message::WillMsgReq);
            }
            Message::WillMsg { data } if prompt.topic.is_some() => {
                let Some(prompt) = self.prompts.remove(from) else {
                    return;
                };
                let will = prompt.topic.and_then(|topic| {
                    let name = TopicName::new(topic.topic).ok()?;
                    Some(will(name, data, topic.qos, topic.retain))
                });
                self.connect(prompt.connect, Some(will), from, now);
            }
            Message::Connect(connect) => {
                self.prompts.remove(from);
                self.on_connect(connect, from, now);
            }
            _ => SnCounters::bump(&self.ctx.counters.unexpected),
        }
    }

    /// What a persistent client kept from its last connection: from memory, or after a
    /// restart from the store.
    fn recall(&mut self, client_id: &ByteString) -> Option<Kept> {
        if let Some(kept) = self.kept.remove(client_id) {
            return Some(kept);
        }
        let stored = self.ctx.journal.as_ref()?.read_mqttsn(client_id);
        if stored.is_empty() {
            return None;
        }
        Some(Kept {
            registry: Registry::restore(stored.topics, self.ctx.options.max_registered_topics),
            will: stored.will.map(will_from_record),
        })
    }

    /// Admits the client into the core (CONNACK follows from the core's answer). `new_will` is
    /// what the will prompts gave, `None` if the CONNECT had no Will flag: then a persistent
    /// client keeps its will (§6.3).
    fn connect(&mut self, sn: v12::Connect, new_will: Option<Option<Will>>, from: &Peer, now: Instant) {
        let kept = if sn.clean_session {
            self.kept.remove(&sn.client_id);
            None
        } else {
            self.recall(&sn.client_id)
        };
        let (registry, kept_will) = match &kept {
            Some(kept) => (kept.registry.clone(), kept.will.clone()),
            None => (Registry::default(), None),
        };
        let will = match new_will {
            Some(will) => will,
            None if sn.clean_session => None,
            None => kept_will,
        };
        let mut connect = Connect::new(ProtocolVersion::V5, sn.client_id.clone());
        connect.clean_start = sn.clean_session;
        connect.keep_alive = sn.duration;
        connect.will = will.clone();
        connect.username = self.ctx.options.username.as_deref().map(ByteString::from);
        connect.properties.session_expiry_interval = Some(if sn.clean_session {
            0
        } else {
            self.broker
                .config()
                .persistent_client_expiration
                .map_or(u32::MAX, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        });
        // One QoS 1/2 message in flight towards the client (§6.10).
        connect.properties.receive_maximum = NonZeroU16::new(1);
        // The client cannot send a password: a configured mqttsn_username is the
        // operator's word for it; without one, only allow_anonymous decides.
        let credentials = if connect.username.is_some() {
            Credentials::Valid
        } else {
            Credentials::Unchecked
        };
        let slot = self.next_slot;
        self.next_slot += 1;
        let link = SnLink::new(slot, self.wakes.clone());
        let core_link: Arc<dyn Link> = link.clone();
        let mut out = Outbox::new(ProtocolVersion::V5);
        let connection =
            match self
                .broker
                .connect_on(connect, credentials, &self.rules, core_link, now, &mut out)
            {
                Ok(connection) => connection,
                Err(refusal) => {
                    let return_code = match refusal.reason {
                        ReasonCode::QuotaExceeded
                        | ReasonCode::ServerBusy
                        | ReasonCode::ServerUnavailable => ReturnCode::Congestion,
                        _ => ReturnCode::NotSupported,
                    };
                    self.refuse(from, return_code, &refusal.detail, now);
                    // Refused, the client keeps what it had for its next try.
                    if let Some(kept) = kept {
                        self.kept.insert(sn.client_id.clone(), kept);
                    }
                    return;
                }
            };
        let client_id = connection.client_id().clone();
        tracing::info!(
            event = "client.connected",
            client_id = %client_id,
            peer = %from,
            "New client connected from {from} as {client_id} ({}, c{}, k{}{}).",
            midge_sn::Version::V1_2,
            u8::from(sn.clean_session),
            sn.duration,
            self.ctx.options.username.as_ref().map(|u| format!(", u'{u}'")).unwrap_or_default(),
        );
        let mut client = Client::new(
            from.clone(),
            connection,
            out,
            link,
            sn.clean_session,
            registry,
            will,
            now,
        );
        client.persist_all(&self.ctx);
        if let Some(old) = self.by_id.insert(client_id, slot) {
            // The same client from another address: the core took the session over and closes
            // the old link; its address is forgotten at once.
            if let Some(old_client) = self.clients.get(&old) {
                self.peers.remove(&old_client.peer);
            }
        }
        self.peers.insert(from.clone(), slot);
        self.clients.insert(slot, client);
        self.pump(slot, now);
    }

    fn pump(&mut self, slot: u64, now: Instant) {
        let outcome = match self.clients.get_mut(&slot) {
            Some(client) => client.pump(&self.ctx, now),
            None => return,
        };
        self.after(slot, outcome);
    }

    fn after(&mut self, slot: u64, outcome: Outcome) {
        if let Some(client) = self.clients.get_mut(&slot) {
            client.persist(&self.ctx);
        }
        if let Outcome::Ended { reason } = outcome {
            self.forget(slot, &reason);
        }
    }

    /// Ends a client's connection and forgets it.
    fn finish(&mut self, slot: u64, now: Instant, publish_will: bool, reason: String) {
        if let Some(client) = self.clients.get_mut(&slot) {
            let Outcome::Ended { reason } = client.end(now, publish_will, reason) else {
                return;
            };
            self.forget(slot, &reason);
        }
    }

    fn forget(&mut self, slot: u64, reason: &str) {
        let Some(mut client) = self.clients.remove(&slot) else {
            return;
        };
        client.persist(&self.ctx);
        if self.peers.get(&client.peer) == Some(&slot) {
            self.peers.remove(&client.peer);
        }
        let current = self.by_id.get(&client.client_id) == Some(&slot);
        if current {
            self.by_id.remove(&client.client_id);
            if !client.clean_session {
                if self.kept.len() >= KEPT_MAX
                    && let Some(any) = self.kept.keys().next().cloned()
                {
                    self.kept.remove(&any);
                }
                self.kept.insert(
                    client.client_id.clone(),
                    Kept {
                        registry: client.registry,
                        will: client.will,
                    },
                );
            }
        }
        let id = &client.client_id;
        if reason == "disconnected" {
            tracing::info!(event = "client.disconnected", client_id = %id, peer = %client.peer, reason, "Client {id} disconnected.");
        } else {
            tracing::info!(event = "client.disconnected", client_id = %id, peer = %client.peer, reason, "Client {id} disconnected: {reason}.");
        }
    }

    fn on_wakes(&mut self, now: Instant) {
        for slot in self.wakes.take() {
            if let Some(client) = self.clients.get(&slot) {
                client.link.rearm();
            }
            self.pump(slot, now);
        }
    }

    fn pump_held(&mut self, now: Instant) {
        let held: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| c.held)
            .map(|(slot, _)| *slot)
            .collect();
        for slot in held {
            self.pump(slot, now);
        }
    }

    fn on_tick(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, client)| client.deadline(&self.ctx).is_some_and(|d| d <= now))
            .map(|(slot, _)| *slot)
            .collect();
        for slot in due {
            let outcome = match self.clients.get_mut(&slot) {
                Some(client) => client.on_timer(&self.ctx, now),
                None => continue,
            };
            self.after(slot, outcome);
        }
        // A will prompt left unanswered for two retry intervals is abandoned (§4.5 of the
        // design notes: no state held for a client that went away mid-CONNECT).
        let patience = self.ctx.options.retry_interval * 2;
        self.prompts
            .retain(|_, prompt| now.duration_since(prompt.since) < patience);
        let asleep = self
            .clients
            .values()
            .filter(|c| matches!(c.state, State::Asleep { .. }))
            .count() as u64;
        let counters = &self.ctx.counters;
        counters
            .clients_asleep
            .store(asleep, std::sync::atomic::Ordering::Relaxed);
        counters.clients_active.store(
            self.clients.len() as u64 - asleep,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn advertise(&self) {
        let Some(period) = self.ctx.options.advertise else {
            return;
        };
        let to = self
            .ctx
            .options
            .advertise_address
            .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::BROADCAST), self.port));
        let duration = u16::try_from(period.as_secs()).unwrap_or(u16::MAX);
        self.ctx.send(
            &Peer::direct(to),
            &Message::Advertise {
                gw_id: self.ctx.options.gateway_id,
                duration,
            },
        );
    }

    /// A QoS -1 PUBLISH (§6.8): no connection, no answer. Published at QoS 0 as the
    /// listener's own session, `mqttsn_qos_neg1_username` for the access rules.
    fn on_qos_neg1(&mut self, publish: v12::Publish, from: &Peer, now: Instant) {
        let counters = self.ctx.counters.clone();
        if !self.ctx.options.qos_neg1 {
            SnCounters::bump(&counters.qos_neg1_dropped);
            return;
        }
        if let Some(rate) = &mut self.connect_rate
            && !rate.admit(from.rate_key(), now)
        {
            SnCounters::bump(&counters.dropped_rate_limited);
            return;
        }
        let topic = match &publish.topic {
            PublishTopic::Predefined(id) => self.ctx.predefined.topic("", *id).cloned(),
            PublishTopic::Short(name) => short_topic(*name),
            PublishTopic::Name(name) => TopicName::new(name.clone()).ok(),
            PublishTopic::Id(_) => None,
        };
        let Some(topic) = topic else {
            SnCounters::bump(&counters.qos_neg1_dropped);
            return;
        };
        if self.qos_neg1.is_none() {
            self.qos_neg1 = self.qos_neg1_session(now);
        }
        let Some((connection, out)) = &mut self.qos_neg1 else {
            SnCounters::bump(&counters.qos_neg1_dropped);
            return;
        };
        let mut mqtt = midge_codec::Publish::new(topic, publish.data);
        mqtt.retain = publish.retain;
        let after = connection.handle(Packet::Publish(mqtt), now, out);
        out.buffer().clear();
        if after == midge_core::After::Continue {
            SnCounters::bump(&counters.qos_neg1_received);
        } else {
            SnCounters::bump(&counters.qos_neg1_dropped);
            self.qos_neg1 = None;
        }
    }

    /// The session QoS -1 messages are published through: client identifier
    /// `mqttsn-qos-1-PORT`, user name `mqttsn_qos_neg1_username`.
    fn qos_neg1_session(&self, now: Instant) -> Option<(Connection, Outbox)> {
        let mut connect = Connect::new(ProtocolVersion::V5, format!("mqttsn-qos-1-{}", self.port));
        connect.keep_alive = 0;
        connect.username = self
            .ctx
            .options
            .qos_neg1_username
            .as_deref()
            .map(ByteString::from);
        let credentials = if connect.username.is_some() {
            Credentials::Valid
        } else {
            Credentials::Unchecked
        };
        let link: Arc<dyn Link> = SnLink::new(u64::MAX, Arc::default());
        let mut out = Outbox::new(ProtocolVersion::V5);
        match self
            .broker
            .connect_on(connect, credentials, &self.rules, link, now, &mut out)
        {
            Ok(connection) => {
                out.buffer().clear();
                Some((connection, out))
            }
            Err(refusal) => {
                tracing::warn!(reason = %refusal.detail, "MQTT-SN QoS -1 messages cannot be published: {} (set mqttsn_qos_neg1_username, or allow_anonymous true).", refusal.detail);
                None
            }
        }
    }

    fn shutdown(&mut self, now: Instant) {
        let slots: Vec<u64> = self.clients.keys().copied().collect();
        for slot in slots {
            self.finish(slot, now, false, "server shutting down".to_owned());
        }
        if let Some((connection, _)) = self.qos_neg1.take() {
            connection.end(now, false);
        }
    }
}

/// The tail of a throttled log line: how many were not logged since the last one.
fn more_since(more: u64) -> String {
    if more > 0 {
        format!(" ({more} more since the last such line)")
    } else {
        String::new()
    }
}
