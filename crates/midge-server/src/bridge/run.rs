//! One bridge's task: it keeps the link to the remote broker (through `midge_client`, which
//! reconnects with the bridge's backoff and resumes the remote session), attaches the local
//! session while the link is up, and forwards both ways.
//!
//! Out (here to there): the broker delivers to the local session as to any subscriber; each
//! message is renamed and handed to the client, and a QoS 1 or 2 message is acknowledged to the
//! broker (PUBACK, or PUBREC then PUBCOMP) only once the remote broker acknowledged the copy
//! (PUBACK, or PUBCOMP). Until then the broker keeps it in the session's inflight window and
//! sends it again (DUP) whenever the session is attached again, which this task recognises by
//! its packet identifier and does not forward twice; the client keeps the remote copy and sends
//! it again on a resumed remote session, with the same packet identifier, so the remote broker
//! does not deliver a QoS 2 message twice. If the remote broker forgot the session, the copy is
//! sent anew. A link failure therefore loses nothing the broker accepted.
//!
//! In (there to here): each message from the remote broker is renamed and published through
//! the local session, which the client acknowledges to the remote broker once the broker here
//! has taken it.
//!
//! No loops: local subscriptions have No Local (what the bridge publishes here is not sent back
//! out), remote ones too with MQTT 5, and with 3.x the CONNECT's bridge bit (`try_private`) asks
//! the remote broker for the same.
//!
//! Bounded: at most `FORWARD_WINDOW` messages wait for the remote broker (the local session's
//! Receive Maximum), and no more than [`MAX_PENDING`] client operations are outstanding, so
//! handing one to the client never waits; the rest waits in the broker's queue, under its
//! limits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use midge_client::{Client, ClientError, Event, Events, PublishOutcome};
use midge_codec::properties::{PublishProperties, SubscribeProperties, UnsubscribeProperties};
use midge_codec::{
    Ack, ConnAck, Packet, PacketId, Publish, QoS, ReasonCode, RetainHandling, SubAck, Subscribe,
    Subscription, SubscriptionOptions, TopicFilter, TopicName, Unsubscribe,
};
use midge_core::Broker;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::connector::reachable;
use super::local::Local;
use super::plan::BridgePlan;
use super::status::BridgeStatus;
use crate::config::StartType;

/// Client operations (publications, subscriptions) outstanding at once; below the client's
/// command queue (64), so handing it one never waits.
pub(crate) const MAX_PENDING: usize = 48;
/// How often timers are looked at: lazy start and idle, the primary address.
const TICK: Duration = Duration::from_millis(500);
/// How often a bridge that is not `round_robin` checks whether its first address is back.
const PRIMARY_RETRY: Duration = Duration::from_secs(5);
/// At most one warning about dropped messages per bridge this often.
const DROP_REPORT: Duration = Duration::from_secs(10);

/// Prepares a bridge's session here now (so that messages queue for it from the first
/// client on), and returns the task that runs it until `stop` changes.
pub(crate) fn start(
    plan: BridgePlan,
    broker: Arc<Broker>,
    status: Arc<BridgeStatus>,
    log_settled: Option<watch::Receiver<u64>>,
    mut stop: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    let mut runner = Runner::new(plan, broker, status, log_settled);
    runner.announce(false);
    runner.prepare_local();
    async move { runner.run(&mut stop).await }
}

/// What a client operation was for.
#[derive(Debug)]
enum Work {
    /// A QoS 1 or 2 message the broker delivered with this packet identifier.
    Out(u16),
    /// A QoS 0 message.
    Qos0,
    /// The link state published to the remote broker.
    Notify,
    /// Subscriptions on the remote broker.
    Subscribe(Vec<String>),
    /// Unsubscriptions there.
    Unsubscribe,
}

/// How a client operation ended.
#[derive(Debug)]
enum Done {
    Publish(PublishOutcome),
    SubAck(SubAck),
    Unsubscribed,
}

/// A message from the broker on its way to the remote one.
#[derive(Debug)]
struct Outgoing {
    /// The QoS the broker delivered it at: says which acknowledgement the broker waits for.
    qos: QoS,
    /// The copy for the remote broker, to send anew if the remote session is lost.
    publish: Publish,
    /// The remote broker has it, and the broker here is to be told once the session is back.
    acked: bool,
}

/// Why a session with the remote broker ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The broker is shutting down.
    Stopped,
    /// A lazy bridge was idle.
    Idle,
    /// The client ended (no reconnection: `start_type once`).
    ClientEnded,
}

/// A warning about drops, at most once per interval.
#[derive(Debug, Default)]
struct DropLog {
    last: Option<Instant>,
    suppressed: u64,
}

struct Runner {
    plan: BridgePlan,
    broker: Arc<Broker>,
    status: Arc<BridgeStatus>,
    local: Local,
    /// Messages from the broker not yet acknowledged to it, by packet identifier.
    outgoing: HashMap<u16, Outgoing>,
    /// QoS 1 and 2 messages published here and not yet acknowledged, by packet identifier:
    /// true for QoS 2.
    incoming: HashMap<u16, bool>,
    next_incoming_id: u16,
    pending: JoinSet<(Work, Result<Done, ClientError>)>,
    connected: bool,
    remote_max_qos: QoS,
    remote_retain: bool,
    last_activity: Instant,
    last_primary_check: Instant,
    drops: DropLog,
}

impl Runner {
    fn new(
        plan: BridgePlan,
        broker: Arc<Broker>,
        status: Arc<BridgeStatus>,
        log_settled: Option<watch::Receiver<u64>>,
    ) -> Self {
        let local = Local::new(
            broker.clone(),
            &plan.local_client_id,
            plan.local_username.as_deref(),
            plan.local_clean,
        )
        .with_log(log_settled);
        let now = Instant::now();
        Self {
            plan,
            broker,
            status,
            local,
            outgoing: HashMap::new(),
            incoming: HashMap::new(),
            next_incoming_id: 0,
            pending: JoinSet::new(),
            connected: false,
            remote_max_qos: QoS::ExactlyOnce,
            remote_retain: true,
            last_activity: now,
            last_primary_check: now,
            drops: DropLog::default(),
        }
    }

    async fn run(&mut self, stop: &mut watch::Receiver<bool>) {
        let mut first = true;
        loop {
            let go = match self.plan.start_type {
                StartType::Automatic => true,
                StartType::Once => first,
                StartType::Lazy => self.wait_for_threshold(stop).await,
            };
            if !go {
                let _ = stop.changed().await;
                break;
            }
            first = false;
            let (client, events) = Client::spawn_with(self.plan.connector.clone(), self.plan.client.clone());
            let end = self.session(&client, events, stop).await;
            if end != End::ClientEnded {
                // Without DISCONNECT: the remote broker publishes the bridge's will ("0").
                let _ = tokio::time::timeout(Duration::from_secs(1), client.close()).await;
            }
            drop(client);
            self.link_down(None);
            // What the client still held has failed; the broker has it all in the session.
            self.pending.abort_all();
            while self.pending.join_next().await.is_some() {}
            self.outgoing.clear();
            if end == End::Stopped || *stop.borrow() {
                break;
            }
        }
        self.local.detach(Instant::now());
    }

    /// Creates the local session with its subscriptions before the first connection, so that
    /// messages queue for the bridge from the start (not with `local_cleansession`, whose
    /// session ends with each detach).
    fn prepare_local(&mut self) {
        if self.plan.local_clean {
            return;
        }
        let now = Instant::now();
        if let Err(refusal) = self.local.attach(now) {
            tracing::error!(bridge = %self.plan.name, reason = %refusal.detail, "Bridge {}: the broker refused its local session: {}", self.plan.name, refusal.detail);
            return;
        }
        // Retained messages come at each connection, not now as well. What the broker sent
        // meanwhile stays in the session's inflight window, to be sent again once attached.
        self.subscribe_locally(RetainHandling::DoNotSend, now);
        // A session restored from the store may hold subscriptions of an older configuration:
        // as Mosquitto (which clears them at every connection), they go.
        let wanted: Vec<&str> = self
            .plan
            .topics
            .local_subscriptions()
            .into_iter()
            .map(|(filter, _)| filter)
            .collect();
        let stale: Vec<TopicFilter> = self
            .broker
            .session_info(self.local.client_id())
            .map(|info| info.subscriptions)
            .unwrap_or_default()
            .into_iter()
            .filter(|filter| !wanted.contains(&&**filter))
            .filter_map(|filter| TopicFilter::new(filter).ok())
            .collect();
        if !stale.is_empty() {
            tracing::info!(bridge = %self.plan.name, count = stale.len(), "Bridge {}: removing {} local subscriptions no topic line asks for any more.", self.plan.name, stale.len());
            self.local.send(
                Packet::Unsubscribe(Unsubscribe {
                    packet_id: PacketId::MIN,
                    filters: stale,
                    properties: UnsubscribeProperties::default(),
                }),
                now,
            );
        }
        self.local.detach(now);
    }

    /// A lazy bridge waits until `threshold` messages are queued for it. False if stopped.
    async fn wait_for_threshold(&mut self, stop: &mut watch::Receiver<bool>) -> bool {
        let threshold = usize::try_from(self.plan.threshold).unwrap_or(usize::MAX);
        loop {
            let waiting = self
                .broker
                .session_info(self.local.client_id())
                .map_or(0, |info| info.queued + info.inflight);
            if waiting >= threshold {
                tracing::info!(bridge = %self.plan.name, waiting, "Bridge {}: {waiting} messages waiting, starting (lazy).", self.plan.name);
                return true;
            }
            tokio::select! {
                _ = stop.changed() => return false,
                () = tokio::time::sleep(TICK) => {}
            }
        }
    }

    /// One client's life: connections, losses, and forwarding, until stopped, idle, or the
    /// client ends.
    async fn session(
        &mut self,
        client: &Client,
        mut events: Events,
        stop: &mut watch::Receiver<bool>,
    ) -> End {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.pump(client).await;
            tokio::select! {
                _ = stop.changed() => return End::Stopped,
                event = events.recv() => match event {
                    Some(event) => self.on_event(client, event).await,
                    None => return End::ClientEnded,
                },
                Some(joined) = self.pending.join_next(), if !self.pending.is_empty() => {
                    if let Ok((work, result)) = joined {
                        self.on_done(client, work, result).await;
                    }
                }
                () = self.local.ready(), if self.local.is_attached() => self.check_local(client).await,
                _ = tick.tick() => {
                    if self.on_tick(client).await {
                        return End::Idle;
                    }
                }
            }
        }
    }

    async fn on_event(&mut self, client: &Client, event: Event) {
        match event {
            Event::Connected(connack) | Event::Reconnected(connack) => self.link_up(client, &connack).await,
            Event::ConnectionLost(error) => self.link_down(Some(&error)),
            Event::ConnectFailed(error) => {
                let address = self.address();
                tracing::warn!(event = "bridge.connect_failed", bridge = %self.plan.name, %address, %error, "Bridge {}: cannot connect to {address}: {error}", self.plan.name);
            }
            Event::Publish(publish) => self.forward_in(publish),
            Event::Disconnect(disconnect) => {
                tracing::info!(bridge = %self.plan.name, reason = ?disconnect.reason_code, "Bridge {}: the remote broker disconnected it ({:?})", self.plan.name, disconnect.reason_code);
            }
            _ => {}
        }
    }

    fn address(&self) -> String {
        self.plan
            .connector
            .current()
            .map_or_else(String::new, |(address, _)| address.to_string())
    }

    /// The link is up: attach the local session, subscribe on both sides, tell everyone.
    async fn link_up(&mut self, client: &Client, connack: &ConnAck) {
        let now = Instant::now();
        self.connected = true;
        self.status.set_connected(true);
        self.last_activity = now;
        self.last_primary_check = now;
        self.remote_max_qos = connack.properties.maximum_qos.unwrap_or(QoS::ExactlyOnce);
        self.remote_retain = connack.properties.retain_available.unwrap_or(true);
        let address = self.address();

        if let Some(notifications) = self.plan.notifications.clone().filter(|n| !n.local_only) {
            let qos = if self.remote_max_qos == QoS::AtMostOnce {
                QoS::AtMostOnce
            } else {
                QoS::AtLeastOnce
            };
            let mut publish = Publish::new(notifications.topic, Bytes::from_static(b"1"));
            publish.qos = qos;
            publish.retain = self.remote_retain;
            self.start_publish(client, Work::Notify, publish).await;
        }
        let subscriptions = self.plan.topics.remote_subscriptions();
        if !subscriptions.is_empty() {
            let v5 = self.plan.client.protocol.is_v5();
            let filters: Vec<(&str, SubscriptionOptions)> = subscriptions
                .iter()
                .map(|(filter, qos)| {
                    let options = SubscriptionOptions {
                        qos: (*qos).min(self.remote_max_qos),
                        no_local: v5,
                        retain_as_published: v5,
                        retain_handling: RetainHandling::SendAtSubscribe,
                    };
                    (*filter, options)
                })
                .collect();
            let names = subscriptions.iter().map(|(f, _)| (*f).to_owned()).collect();
            match client
                .start_subscribe(&filters, SubscribeProperties::default())
                .await
            {
                Ok(pending) => {
                    self.pending
                        .spawn(async move { (Work::Subscribe(names), pending.await.map(Done::SubAck)) });
                }
                Err(error) => {
                    tracing::warn!(bridge = %self.plan.name, %error, "Bridge {}: cannot subscribe on the remote broker: {error}", self.plan.name)
                }
            }
        }
        let unsubscriptions = self.plan.topics.remote_unsubscriptions();
        if self.plan.attempt_unsubscribe && !unsubscriptions.is_empty() {
            // As Mosquitto: an `out` topic may have been `in` before; the remote session
            // would otherwise keep sending it.
            if let Ok(pending) = client
                .start_unsubscribe(&unsubscriptions, UnsubscribeProperties::default())
                .await
            {
                self.pending
                    .spawn(async move { (Work::Unsubscribe, pending.await.map(|_| Done::Unsubscribed)) });
            }
        }

        match self.local.attach(now) {
            Ok(()) => {
                // Mosquitto sends the retained messages of `out` topics at every connection.
                self.subscribe_locally(RetainHandling::SendAtSubscribe, now);
                // QoS 2 messages published here whose PUBREL a lost link cut off: released now.
                let unreleased: Vec<u16> = self
                    .incoming
                    .iter()
                    .filter(|(_, qos2)| **qos2)
                    .map(|(id, _)| *id)
                    .collect();
                self.incoming.clear();
                for id in unreleased {
                    if let Some(id) = PacketId::new(id) {
                        self.incoming.insert(id.get(), true);
                        self.local.send(Packet::PubRel(Ack::new(id)), now);
                    }
                }
            }
            Err(refusal) => {
                tracing::error!(bridge = %self.plan.name, reason = %refusal.detail, "Bridge {}: the broker refused its local session: {}", self.plan.name, refusal.detail);
            }
        }
        // Logged once the local subscriptions are in place, so that the line means the bridge
        // carries what is published from now on (and a test can rely on it).
        tracing::info!(event = "bridge.connected", bridge = %self.plan.name, %address, session_present = connack.session_present, "Bridge {} connected to {address} as {} (session present: {}).", self.plan.name, self.plan.client.client_id, connack.session_present);
        self.announce(true);
    }

    /// The link is down (or the client gone): detach the local session, which queues until
    /// the next connection, and tell everyone.
    fn link_down(&mut self, error: Option<&ClientError>) {
        if !self.connected {
            return;
        }
        self.connected = false;
        self.status.set_connected(false);
        match error {
            Some(error) => {
                tracing::warn!(event = "bridge.disconnected", bridge = %self.plan.name, %error, "Bridge {} lost its connection: {error}", self.plan.name);
            }
            None => {
                tracing::info!(event = "bridge.disconnected", bridge = %self.plan.name, "Bridge {} disconnected.", self.plan.name);
            }
        }
        self.local.detach(Instant::now());
        self.announce(false);
    }

    /// Publishes the link's state here: `$SYS/broker/connection/NAME/state` and, with
    /// `notifications`, the notification topic (Mosquitto's), both retained.
    fn announce(&self, up: bool) {
        let payload = Bytes::from_static(if up { b"1" } else { b"0" });
        let now = Instant::now();
        self.broker
            .publish_system(self.plan.state_topic.clone(), payload.clone(), true, now);
        if let Some(notifications) = &self.plan.notifications
            && notifications.topic != self.plan.state_topic
        {
            self.broker
                .publish_system(notifications.topic.clone(), payload, true, now);
        }
    }

    /// Subscribes the local session to every `out` topic: No Local, so that what the bridge
    /// publishes here is not sent back; Retain As Published, so that retained messages stay
    /// retained on the remote broker.
    fn subscribe_locally(&mut self, retain_handling: RetainHandling, now: Instant) {
        let subscriptions: Vec<Subscription> = self
            .plan
            .topics
            .local_subscriptions()
            .into_iter()
            .filter_map(|(filter, qos)| {
                Some(Subscription {
                    filter: TopicFilter::new(filter).ok()?,
                    options: SubscriptionOptions {
                        qos,
                        no_local: true,
                        retain_as_published: true,
                        retain_handling,
                    },
                })
            })
            .collect();
        if subscriptions.is_empty() {
            return;
        }
        self.local.send(
            Packet::Subscribe(Subscribe {
                packet_id: PacketId::MIN,
                subscriptions,
                properties: SubscribeProperties::default(),
            }),
            now,
        );
    }

    /// Reads what the broker has for the bridge, as far as the outstanding operations allow.
    async fn pump(&mut self, client: &Client) {
        while self.pending.len() < MAX_PENDING {
            let now = Instant::now();
            let Some(packet) = self.local.next_packet(now) else {
                break;
            };
            match packet {
                Packet::Publish(publish) => self.forward_out(client, publish).await,
                Packet::PubRel(ack) => {
                    self.local.send(Packet::PubComp(Ack::new(ack.packet_id)), now);
                }
                Packet::PubAck(ack) | Packet::PubComp(ack) => {
                    self.incoming.remove(&ack.packet_id.get());
                    if ack.reason_code.is_error() && ack.reason_code != ReasonCode::PacketIdentifierNotFound {
                        self.dropped(now, "refused here (check the access rules for local_username)");
                    }
                }
                Packet::PubRec(ack) => {
                    if ack.reason_code.is_error() {
                        self.incoming.remove(&ack.packet_id.get());
                        self.dropped(now, "refused here (check the access rules for local_username)");
                    } else {
                        self.local.send(Packet::PubRel(Ack::new(ack.packet_id)), now);
                    }
                }
                Packet::SubAck(suback) => {
                    if let Some(code) = suback.reason_codes.iter().find(|code| code.is_error()) {
                        tracing::warn!(bridge = %self.plan.name, reason = ?code, "Bridge {}: the broker refused a local subscription ({code:?}); check the access rules for {}", self.plan.name, self.plan.local_client_id);
                    }
                }
                Packet::ConnAck(connack) if !connack.session_present => {
                    // A new session here: packet identifiers of the old one mean nothing.
                    self.outgoing.clear();
                    self.incoming.clear();
                }
                _ => {}
            }
        }
    }

    /// A message from the broker: sent on, or acknowledged at once if it is not to go.
    async fn forward_out(&mut self, client: &Client, publish: Publish) {
        let now = Instant::now();
        let id = publish.packet_id.map(PacketId::get);
        if let Some(id) = id
            && let Some(entry) = self.outgoing.get(&id)
        {
            // Sent again by the broker after the session was attached again.
            if entry.acked {
                let qos = entry.qos;
                self.outgoing.remove(&id);
                self.ack_local(id, qos, now);
            }
            return;
        }
        let notification = self
            .plan
            .notifications
            .as_ref()
            .is_some_and(|n| n.topic == publish.topic);
        let Some(remote_topic) = self
            .plan
            .topics
            .to_remote(publish.topic.as_str())
            .filter(|_| !notification && publish.topic != self.plan.state_topic)
        else {
            // Not to be forwarded: the bridge's own state, or left over from an older
            // configuration's subscriptions.
            if let Some(id) = id {
                self.ack_local(id, publish.qos, now);
            }
            return;
        };
        let Ok(topic) = TopicName::new(remote_topic.as_ref()) else {
            self.dropped(now, "the renamed topic is too long");
            if let Some(id) = id {
                self.ack_local(id, publish.qos, now);
            }
            return;
        };
        let mut copy = Publish::new(topic, publish.payload.clone());
        copy.qos = publish.qos.min(self.remote_max_qos);
        copy.retain = publish.retain && self.plan.outgoing_retain && self.remote_retain;
        copy.properties = forwarded_properties(&publish);
        if let Some(max) = self.plan.max_packet_size
            && encoded_len(&copy, self.plan.client.protocol) > max as usize
        {
            self.dropped(now, "larger than bridge_max_packet_size");
            if let Some(id) = id {
                self.ack_local(id, publish.qos, now);
            }
            return;
        }
        self.last_activity = now;
        let work = match id {
            Some(id) => {
                self.outgoing.insert(
                    id,
                    Outgoing {
                        qos: publish.qos,
                        publish: copy.clone(),
                        acked: false,
                    },
                );
                Work::Out(id)
            }
            None => Work::Qos0,
        };
        if !self.start_publish(client, work, copy).await
            && let Some(id) = id
        {
            // The client is gone; the broker keeps the message in the session.
            self.outgoing.remove(&id);
        }
    }

    /// Hands a publication to the client and watches its outcome. False if the client ended.
    async fn start_publish(&mut self, client: &Client, work: Work, publish: Publish) -> bool {
        match client.start_publish_packet(publish).await {
            Ok(pending) => {
                self.pending
                    .spawn(async move { (work, pending.await.map(Done::Publish)) });
                true
            }
            Err(_) => false,
        }
    }

    /// Tells the broker the bridge is done with a message it delivered.
    fn ack_local(&mut self, id: u16, qos: QoS, now: Instant) {
        let Some(id) = PacketId::new(id) else { return };
        let packet = match qos {
            QoS::AtMostOnce => return,
            QoS::AtLeastOnce => Packet::PubAck(Ack::new(id)),
            QoS::ExactlyOnce => Packet::PubRec(Ack::new(id)),
        };
        self.local.send(packet, now);
    }

    /// A client operation ended.
    async fn on_done(&mut self, client: &Client, work: Work, result: Result<Done, ClientError>) {
        let now = Instant::now();
        match work {
            Work::Out(id) => match result {
                Ok(Done::Publish(outcome)) => {
                    if outcome.reason_code.is_error() {
                        self.dropped(now, "refused by the remote broker");
                    } else {
                        self.status.count_out();
                    }
                    self.forwarded(id, now);
                }
                Err(ClientError::SessionLost) => {
                    // The remote broker forgot the session (cleansession, or it lost its
                    // state): the copy goes again, as a new message.
                    if let Some(entry) = self.outgoing.get(&id) {
                        let publish = entry.publish.clone();
                        if !self.start_publish(client, Work::Out(id), publish).await {
                            self.outgoing.remove(&id);
                        }
                    }
                }
                Err(ClientError::PacketTooLarge { .. } | ClientError::QosNotSupported(_)) => {
                    self.dropped(now, "too large for the remote broker");
                    self.forwarded(id, now);
                }
                Err(_) => {
                    // The client ended with it unacknowledged: the broker still has it.
                    self.outgoing.remove(&id);
                }
                Ok(_) => {}
            },
            Work::Qos0 => {
                if result.is_ok() {
                    self.status.count_out();
                }
            }
            Work::Notify => {}
            Work::Subscribe(filters) => match result {
                Ok(Done::SubAck(suback)) => {
                    for (filter, code) in filters.iter().zip(&suback.reason_codes) {
                        if code.is_error() {
                            tracing::warn!(bridge = %self.plan.name, %filter, reason = ?code, "Bridge {}: the remote broker refused the subscription to {filter} ({code:?})", self.plan.name);
                        }
                    }
                }
                Err(error) if !matches!(error, ClientError::Disconnected) => {
                    tracing::debug!(bridge = %self.plan.name, %error, "remote subscription failed");
                }
                _ => {}
            },
            Work::Unsubscribe => {}
        }
    }

    /// The remote broker has a message the broker here delivered: acknowledge it here now, or
    /// once the local session is attached again.
    fn forwarded(&mut self, id: u16, now: Instant) {
        if self.local.is_attached() {
            if let Some(entry) = self.outgoing.remove(&id) {
                self.ack_local(id, entry.qos, now);
            }
        } else if let Some(entry) = self.outgoing.get_mut(&id) {
            entry.acked = true;
        }
    }

    /// A message from the remote broker: published here through the local session.
    fn forward_in(&mut self, publish: Publish) {
        let now = Instant::now();
        self.last_activity = now;
        if !self.local.is_attached() {
            self.dropped(now, "the local session is not attached");
            return;
        }
        let topic = self.plan.topics.to_local(publish.topic.as_str());
        let Ok(topic) = TopicName::new(topic.as_ref()) else {
            self.dropped(now, "the renamed topic is too long");
            return;
        };
        let config = self.broker.config();
        let mut copy = Publish::new(topic, publish.payload.clone());
        copy.qos = publish.qos.min(config.max_qos);
        copy.retain = publish.retain && config.retain_available;
        copy.properties = forwarded_properties(&publish);
        if copy.qos != QoS::AtMostOnce {
            let Some(id) = self.incoming_id() else {
                self.dropped(now, "no packet identifier free");
                return;
            };
            copy.packet_id = Some(id);
            self.incoming.insert(id.get(), copy.qos == QoS::ExactlyOnce);
        }
        if self.local.send(Packet::Publish(copy), now) {
            self.status.count_in();
        }
    }

    /// A packet identifier for a message published here, not in use.
    fn incoming_id(&mut self) -> Option<PacketId> {
        for _ in 0..u16::MAX {
            self.next_incoming_id = self.next_incoming_id.wrapping_add(1);
            if let Some(id) = PacketId::new(self.next_incoming_id)
                && !self.incoming.contains_key(&id.get())
            {
                return Some(id);
            }
        }
        None
    }

    /// The broker woke the local session: more to read, or it was closed.
    async fn check_local(&mut self, client: &Client) {
        if let Some(reason) = self.local.take_closed(Instant::now()) {
            if reason == ReasonCode::ServerShuttingDown {
                return;
            }
            tracing::warn!(bridge = %self.plan.name, client_id = %self.plan.local_client_id, "Bridge {}: another client took over its local session {}; reconnecting to take it back", self.plan.name, self.plan.local_client_id);
            if self.connected {
                let _ = client.reconnect().await;
            }
        }
    }

    /// Timers. True when a lazy bridge has been idle long enough to disconnect.
    async fn on_tick(&mut self, client: &Client) -> bool {
        let now = Instant::now();
        if !self.connected {
            return false;
        }
        if self.plan.start_type == StartType::Lazy
            && now.duration_since(self.last_activity) >= self.plan.idle_timeout
            && self.outgoing.is_empty()
            && self
                .broker
                .session_info(self.local.client_id())
                .is_none_or(|info| info.queued + info.inflight == 0)
        {
            tracing::info!(bridge = %self.plan.name, "Bridge connection {} has exceeded idle timeout, disconnecting.", self.plan.name);
            return true;
        }
        if !self.plan.round_robin
            && self.plan.connector.has_alternatives()
            && now.duration_since(self.last_primary_check) >= PRIMARY_RETRY
            && self.plan.connector.current().is_some_and(|(_, primary)| !primary)
        {
            self.last_primary_check = now;
            if let Some(primary) = self.plan.connector.primary()
                && reachable(&primary, &self.plan.socket).await
            {
                tracing::info!(bridge = %self.plan.name, %primary, "Bridge {}: the primary address {primary} is back, reconnecting to it", self.plan.name);
                self.plan.connector.prefer_primary();
                let _ = client.reconnect().await;
            }
        }
        false
    }

    /// Counts a message the bridge did not forward, with a warning at most every few seconds.
    fn dropped(&mut self, now: Instant, why: &str) {
        self.status.count_dropped();
        self.drops.suppressed += 1;
        if self
            .drops
            .last
            .is_none_or(|at| now.duration_since(at) >= DROP_REPORT)
        {
            tracing::warn!(bridge = %self.plan.name, reason = why, dropped = self.drops.suppressed, "Bridge {}: message not forwarded: {why} ({} since the last report)", self.plan.name, self.drops.suppressed);
            self.drops.last = Some(now);
            self.drops.suppressed = 0;
        }
    }
}

/// The size of `publish` on the wire (with the packet identifier the client will give it).
fn encoded_len(publish: &Publish, version: midge_codec::ProtocolVersion) -> usize {
    let mut sized = publish.clone();
    if sized.qos != QoS::AtMostOnce {
        sized.packet_id = Some(PacketId::MIN);
    }
    Packet::Publish(sized).encoded_len(version).unwrap_or(usize::MAX)
}

/// A message's properties as they cross: without the Topic Alias (the receiving side has its
/// own) and the Subscription Identifiers (of the sending side's subscriptions).
fn forwarded_properties(publish: &Publish) -> midge_codec::properties::PropertyBox<PublishProperties> {
    let mut properties: PublishProperties = (*publish.properties).clone();
    properties.topic_alias = None;
    properties.subscription_identifiers.clear();
    properties.into()
}
