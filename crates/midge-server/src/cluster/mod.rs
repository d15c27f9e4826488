//! The broker's side of a cluster (`cluster_name`): what joins the broker here to the
//! [`Cluster`] that links it to the other nodes (`midge-cluster`, `docs/cluster.md`).
//!
//! - This node's route set (filters with a subscriber here, `midge_core::routes`) is told to
//!   the cluster as it changes.
//! - The other nodes' route sets become subscriptions of one internal session here (client
//!   identifier [`CLUSTER_CLIENT_ID`], which no client can present), one per filter, each with
//!   its own Subscription Identifier. A local publish that matches any of them reaches that
//!   session once, with the identifiers of the filters it matched: from them, the nodes to
//!   forward it to. A publish no other node wants never reaches the session, and costs the
//!   cluster nothing.
//! - The session subscribes with No Local, and messages forwarded here are published as from
//!   it: what another node forwarded is delivered to subscribers here, never forwarded on.
//!   Retain As Published keeps the RETAIN flag for the receivers' own subscriptions.
//! - QoS 1 and 2 deliveries to the session are acknowledged to the broker only once every
//!   node they went to acknowledged them, so the session's receive window bounds what is in
//!   flight to other nodes (`cluster_peer_window`).
//! - A forward received here is acknowledged to its sender once queued here, with
//!   persistence once the store has it, and once the cluster's message log has it if it was
//!   queued for persistent sessions (so that it outlives this node: a session adopted
//!   elsewhere is replayed from the log past its floor). Acknowledgements leave in the order
//!   the forwards came, while the writes they wait for overlap.
//! - Each client identifier is claimed in the cluster ([`claim_for`], [`Claim`]) before its
//!   client is admitted here; a node that hears its client was claimed since by another node
//!   closes the connection here with 0x8E Session taken over. A claim the cluster cannot
//!   make refuses a persistent session with 0x88 Server unavailable (3.1.1: return code 3),
//!   and a claim contended for too long (or unanswered while the cluster is reachable)
//!   refuses any with 0x89 Server busy; a clean session is admitted without a claim while the
//!   cluster cannot be reached.
//! - A QoS 1 or 2 forward given up with its node is logged for the persistent sessions it
//!   matches and handed to every node that is up, for those sessions, before its publisher
//!   is acknowledged ([`rescue`]). The persistent sessions of a node that is gone are taken
//!   up by the others after the grace ([`adoption`]).
//! - A persistent session that moves to another node hands that node what it still held
//!   here, and for a while the messages that match its subscriptions follow it ([`Moved`]):
//!   forwards from senders that do not know its new route yet, and this node's own
//!   publishes, which go to the new node by provisional routes until its own are known
//!   here. The node may have read the session's log before they were queued here.
//! - Retained messages clients set here are handed to the cluster, and every node's (this
//!   one's included, in the cluster's order) are kept here without being delivered: a
//!   subscriber on any node finds the same retained messages.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use midge_cluster::{ClaimError, Cluster, ClusterConfig, Event, NatsCluster};
use midge_codec::{
    Ack, Connect, Packet, PacketId, ProtocolVersion, QoS, ReasonCode, RetainHandling, Subscribe,
    Subscription, SubscriptionId, SubscriptionOptions, TopicFilter, Unsubscribe,
};
use midge_core::routes::{
    DurableLog, RetainedObserver, RouteObserver, SessionCheckpoint, SessionObserver, Settlement,
};
use midge_core::{Broker, ClientRules, Credentials, Message};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::bridge::local::Local;

mod adoption;
mod checkpoint;
mod rescue;

/// The client identifier of the cluster's session here: U+0000 first, which no client can
/// send [MQTT-1.5.4-2], so that it is never taken over and its filters are not routes.
pub const CLUSTER_CLIENT_ID: &str = "\u{0}cluster";

/// Starts the cluster's tasks; they end when `stop` changes. The session and the route
/// observer exist when this returns, so call it before clients are accepted.
pub(crate) fn start(
    config: ClusterConfig,
    broker: &Arc<Broker>,
    stop: &watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) -> Arc<dyn Cluster> {
    if let Some(server) = &config.nats_server {
        let store = midge_cluster::supervisor::store_dir(server, None);
        let (pid, _) = watch::channel(0);
        tasks.spawn(midge_cluster::supervisor::supervise(
            config.clone(),
            server.clone(),
            store,
            pid,
            stop.clone(),
        ));
    }
    let window = config.peer_window;
    let (cluster, events) = NatsCluster::start(config, stop.clone());
    let cluster: Arc<dyn Cluster> = cluster;
    let observer = Arc::new(Observer(cluster.clone()));
    for filter in broker.observe_routes(observer.clone()) {
        cluster.route_added(&filter);
    }
    broker.observe_retained(observer.clone());
    broker.observe_sessions(observer.clone());
    broker.keep_durable_in(observer);
    let mut local = Local::new(broker.clone(), CLUSTER_CLIENT_ID, None, true).with_window(window);
    if let Err(refusal) = local.attach(Instant::now()) {
        tracing::error!(event = "cluster.session_refused", detail = %refusal.detail, "the broker refused the cluster's session: {}", refusal.detail);
    }
    let (acks, acks_rx) = mpsc::unbounded_channel();
    tasks.spawn(acknowledge_in_order(
        acks_rx,
        broker.journal().map(|journal| journal.watch()),
    ));
    let (adopt, nudges) = mpsc::unbounded_channel();
    tasks.spawn(adoption::run(
        cluster.clone(),
        broker.clone(),
        nudges,
        stop.clone(),
    ));
    let glue = Glue::new(broker.clone(), cluster.clone(), local, acks, adopt);
    tasks.spawn(glue.run(events, stop.clone()));
    cluster
}

/// A client identifier a CONNECT must claim in the cluster.
#[derive(Debug)]
pub(crate) struct Claim {
    client_id: String,
    /// Whether the session outlives the connection: such a CONNECT is refused when the
    /// cluster cannot be reached.
    persistent: bool,
    /// Whether the CONNECT asks to resume a session: one another node kept is taken up here.
    resume: bool,
}

/// What `connect` must claim, if anything: not an identifier the broker will assign, nor one
/// of a client the broker will refuse anyway (bad password; anonymous where that is not
/// allowed), which must not be able to close another node's connection.
pub(crate) fn claim_for(connect: &Connect, credentials: &Credentials, rules: &ClientRules) -> Option<Claim> {
    if *credentials == Credentials::Invalid || (!rules.allow_anonymous && connect.username.is_none()) {
        return None;
    }
    let client_id = if rules.use_username_as_clientid {
        connect.username.as_deref()?
    } else {
        &connect.client_id
    };
    if client_id.is_empty() {
        return None;
    }
    let persistent = if connect.protocol.is_v5() {
        connect.properties.session_expiry_interval.unwrap_or(0) > 0
    } else {
        !connect.clean_start
    };
    Some(Claim {
        client_id: client_id.to_owned(),
        persistent,
        resume: persistent && !connect.clean_start,
    })
}

impl Claim {
    /// Claims the identifier, and takes up the session another node kept if the CONNECT
    /// resumes one this node does not have; the reason to refuse the CONNECT with if the claim
    /// fails.
    pub(crate) async fn make(
        &self,
        cluster: &dyn Cluster,
        broker: &Broker,
        peer: &str,
    ) -> Result<(), ReasonCode> {
        let client_id = &self.client_id;
        let seen_before = cluster.owner(client_id).is_some();
        // A node that does not know the others' routes yet would not forward its client's
        // publishes: refused as when the cluster cannot be reached.
        let routes_known = match cluster.routes_known() {
            Some(mut known) => tokio::time::timeout(ROUTES_WITHIN, known.wait_for(|known| *known))
                .await
                .is_ok_and(|known| known.is_ok()),
            None => true,
        };
        let claimed = if routes_known {
            cluster.claim(client_id).await
        } else {
            Err(ClaimError::Unavailable(
                "this node has not learned the other nodes' routes yet".into(),
            ))
        };
        match claimed {
            Ok(_) => {
                // A clean session now: a checkpoint an earlier persistent one left is stale.
                // (A persistent one writes its own once attached.)
                if !self.persistent && seen_before {
                    cluster.session_ended(client_id);
                }
                if self.resume && broker.session_info(client_id).is_none() {
                    let bytes = match cluster.checkpoint(client_id).await {
                        Ok(Some(bytes)) => bytes,
                        Ok(None) => return Ok(()),
                        // Not a new session in its place: the client tries again.
                        Err(error) => {
                            tracing::info!(event = "client.refused", %peer, client_id, %error, "Client {client_id} refused from {peer}: its session cannot be read from the cluster yet ({error}; server unavailable).");
                            return Err(ReasonCode::ServerUnavailable);
                        }
                    };
                    match checkpoint::decode(bytes) {
                        Ok(checkpoint) if checkpoint.client_id == *client_id => {
                            if broker.adopt_session(checkpoint, Instant::now()) {
                                cluster.note_adopted();
                                replay(cluster, broker, client_id, peer).await?;
                            }
                        }
                        Ok(_) => {}
                        Err(problem) => {
                            tracing::warn!(
                                event = "cluster.bad_checkpoint",
                                client_id,
                                "the cluster's checkpoint of {client_id} cannot be read ({problem}); a new session starts"
                            );
                        }
                    }
                }
                Ok(())
            }
            Err(ClaimError::Contended) => {
                tracing::info!(event = "client.refused", %peer, client_id, "Client {client_id} refused from {peer}: others claim the same identifier at the same time, or the cluster is too busy to answer (server busy).");
                Err(ReasonCode::ServerBusy)
            }
            Err(error @ ClaimError::Unavailable(_)) if self.persistent || !cluster.admits_unclaimed() => {
                tracing::info!(event = "client.refused", %peer, client_id, %error, "Client {client_id} refused from {peer}: it needs the cluster ({error}; a persistent session, or cluster_netsplit_allow none).");
                Err(ReasonCode::ServerUnavailable)
            }
            Err(error) => {
                tracing::warn!(event = "cluster.unclaimed", %peer, client_id, %error, "Client {client_id} admitted from {peer} without a claim (clean session; {error}).");
                Ok(())
            }
        }
    }

    /// Closes the connection just admitted if another node claimed its identifier since.
    pub(crate) fn still_owned(&self, cluster: &dyn Cluster, broker: &Broker) {
        if let Some((owner, _)) = cluster.owner(&self.client_id)
            && *owner != *cluster.node_id()
            && broker.take_over_client(&self.client_id, Instant::now())
        {
            cluster.note_taken_over();
        }
    }
}

/// Queues in the session just adopted what the cluster's message log holds for it past its
/// floor: what its last node queued and had not seen delivered. If the log cannot be read,
/// the session is let go again and the CONNECT refused (0x88), so that the client comes
/// back rather than carry on without those messages.
async fn replay(
    cluster: &dyn Cluster,
    broker: &Broker,
    client_id: &str,
    peer: &str,
) -> Result<(), ReasonCode> {
    replay_log(cluster, broker, client_id).await.map_err(|()| {
        broker.take_over_client(client_id, Instant::now());
        tracing::info!(event = "client.refused", %peer, client_id, "Client {client_id} refused from {peer}: the messages kept for its session cannot be read from the cluster yet (server unavailable).");
        ReasonCode::ServerUnavailable
    })
}

/// Queues in `client_id`'s session here what the cluster's message log holds for it past
/// its floor; an error if the log cannot be read.
async fn replay_log(cluster: &dyn Cluster, broker: &Broker, client_id: &str) -> Result<(), ()> {
    let replay = cluster.replay(client_id).await.ok_or(())?;
    let now = Instant::now();
    let mut queued = 0_usize;
    let read = replay.messages.len();
    for (packet, age) in replay.messages {
        match message_from(packet, None, age, now) {
            Ok(message) => queued += usize::from(broker.replay_into(client_id, Arc::new(message), now)),
            Err(problem) => {
                tracing::warn!(
                    event = "cluster.bad_log_entry",
                    client_id,
                    "the message log holds {problem} for {client_id}; skipped"
                );
            }
        }
    }
    cluster.logged_through(client_id, replay.through);
    if read > 0 {
        tracing::info!(
            event = "cluster.replayed",
            client_id,
            read,
            queued,
            through = replay.through,
            "Client {client_id}: {queued} of the {read} messages the cluster's log kept for its session were queued here (log read through {}).",
            replay.through
        );
    }
    Ok(())
}

/// Tells the cluster of this node's route changes.
#[derive(Debug)]
struct Observer(Arc<dyn Cluster>);

impl RouteObserver for Observer {
    fn route_added(&self, filter: &str) {
        self.0.route_added(filter);
    }

    fn route_removed(&self, filter: &str) {
        self.0.route_removed(filter);
    }
}

impl SessionObserver for Observer {
    fn session_changed(&self, checkpoint: SessionCheckpoint) {
        self.0
            .session_changed(&checkpoint.client_id, checkpoint::encode(&checkpoint));
    }

    fn session_ended(&self, client_id: &str) {
        self.0.session_ended(client_id);
    }
}

impl DurableLog for Observer {
    fn append(&self, client_ids: &[bytestring::ByteString], message: &Arc<Message>) -> u64 {
        let publish = message.to_publish(message.qos, message.retain, &[], Instant::now());
        let mut encoded = BytesMut::new();
        if Packet::Publish(publish)
            .encode(ProtocolVersion::V5, &mut encoded)
            .is_err()
        {
            return 0;
        }
        let client_ids = client_ids.iter().map(ToString::to_string).collect();
        self.0.log_ticket(client_ids, encoded.freeze())
    }

    fn forward_ticket(&self) -> (u64, Settlement) {
        let (ticket, settle) = self.0.forward_ticket();
        (ticket, Settlement::new(move || drop(settle)))
    }
}

impl RetainedObserver for Observer {
    fn retained(&self, message: &Arc<Message>) {
        let publish = message.to_publish(message.qos, true, &[], Instant::now());
        let mut encoded = BytesMut::new();
        if Packet::Publish(publish)
            .encode(ProtocolVersion::V5, &mut encoded)
            .is_ok()
        {
            self.0.retained_changed(message.topic.as_str(), encoded.freeze());
        }
    }
}

/// A PUBLISH packet from another node as a message of this broker, published as from
/// `publisher`, its expiry counted from `age` ago.
fn message_from(
    packet: bytes::Bytes,
    publisher: Option<&str>,
    age: Duration,
    now: Instant,
) -> Result<Message, String> {
    let publish = match midge_codec::decode_packet(packet, ProtocolVersion::V5) {
        Ok(Packet::Publish(publish)) => publish,
        Ok(other) => return Err(format!("a {:?} packet, not a PUBLISH", other.packet_type())),
        Err(error) => return Err(format!("a PUBLISH this node cannot read ({error})")),
    };
    let mut properties = publish.properties;
    properties.subscription_identifiers.clear();
    properties.topic_alias = None;
    let expires_at = properties.message_expiry_interval.map(|seconds| {
        (now + Duration::from_secs(u64::from(seconds)))
            .checked_sub(age)
            .unwrap_or(now)
    });
    Ok(Message::new(
        publish.topic,
        publish.payload,
        publish.qos,
        publish.retain,
        properties,
        expires_at,
        publisher.map(Into::into),
    ))
}

/// How long a CONNECT waits for this node to learn the other nodes' routes after it joined.
const ROUTES_WITHIN: Duration = Duration::from_secs(3);

/// How long forwards for a session that moved to another node are sent on after it.
const MOVED_FOR: Duration = Duration::from_secs(60);

/// A persistent session that moved to another node lately.
#[derive(Debug)]
struct Moved {
    node: Arc<str>,
    filters: Vec<TopicFilter>,
    until: Instant,
}

/// A filter some other node has a subscriber to.
#[derive(Debug)]
struct RemoteFilter {
    id: SubscriptionId,
    nodes: HashSet<Arc<str>>,
}

/// A forward's acknowledgement, once the writes it waits for are done.
struct PendingAck {
    ack: midge_cluster::Ack,
    /// The journal write to wait for (0: none).
    durable_after: u64,
    /// Other answers it waits for: the message log's, if it was queued for persistent
    /// sessions; the nodes' that sessions moved to ([`Moved`]).
    waits: Vec<tokio::sync::oneshot::Receiver<bool>>,
}

/// Sends the acknowledgements of received forwards in the order the forwards came (a
/// link's acknowledgement is cumulative), each once its writes are done.
async fn acknowledge_in_order(
    mut pending: mpsc::UnboundedReceiver<PendingAck>,
    mut durable: Option<watch::Receiver<u64>>,
) {
    while let Some(next) = pending.recv().await {
        if next.durable_after > 0
            && let Some(durable) = durable.as_mut()
        {
            let _ = durable.wait_for(|at| *at >= next.durable_after).await;
        }
        for wait in next.waits {
            let _ = wait.await;
        }
        next.ack.done();
    }
}

struct Glue {
    /// Acknowledgements of received forwards, in order ([`acknowledge_in_order`]).
    acks: mpsc::UnboundedSender<PendingAck>,
    /// What becomes of forwards to nodes that are gone.
    rescue: Arc<rescue::Rescue>,
    /// Nudges the taking up of the sessions of nodes that are gone ([`adoption`]).
    adopt: mpsc::UnboundedSender<()>,
    /// Persistent sessions that moved to other nodes lately, by client identifier.
    moved: HashMap<String, Moved>,
    /// Routes taken for a node that a session here moved to, before that node's own are
    /// known here, and until when (then dropped, unless the node told them meanwhile).
    provisional: HashMap<(Arc<str>, String), Instant>,
    broker: Arc<Broker>,
    cluster: Arc<dyn Cluster>,
    local: Local,
    /// The other nodes' filters, by filter.
    remote: HashMap<String, RemoteFilter>,
    /// The same, by Subscription Identifier.
    by_id: HashMap<u32, String>,
    next_id: u32,
    next_packet_id: u16,
}

impl Glue {
    fn new(
        broker: Arc<Broker>,
        cluster: Arc<dyn Cluster>,
        local: Local,
        acks: mpsc::UnboundedSender<PendingAck>,
        adopt: mpsc::UnboundedSender<()>,
    ) -> Self {
        Self {
            acks,
            adopt,
            rescue: Arc::new(rescue::Rescue::new(cluster.clone(), broker.clone())),
            moved: HashMap::new(),
            provisional: HashMap::new(),
            broker,
            cluster,
            local,
            remote: HashMap::new(),
            by_id: HashMap::new(),
            next_id: 0,
            next_packet_id: 0,
        }
    }

    async fn run(mut self, mut events: mpsc::UnboundedReceiver<Event>, mut stop: watch::Receiver<bool>) {
        // Acknowledgements from other nodes, as (packet id, QoS) of the session's deliveries.
        let (acked_tx, mut acked) = mpsc::unbounded_channel::<(PacketId, QoS)>();
        let mut floors = tokio::time::interval(self.cluster.floor_interval());
        floors.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.pump(&acked_tx);
            tokio::select! {
                event = events.recv() => {
                    let Some(event) = event else { return };
                    self.on_event(event);
                    // Take what else arrived before looking at the session again.
                    while let Ok(event) = events.try_recv() {
                        self.on_event(event);
                    }
                }
                _ = floors.tick() => {
                    self.move_floors();
                    self.drop_provisional(Instant::now());
                }
                Some((packet_id, qos)) = acked.recv() => {
                    self.acknowledge(packet_id, qos);
                    while let Ok((packet_id, qos)) = acked.try_recv() {
                        self.acknowledge(packet_id, qos);
                    }
                }
                () = self.local.ready() => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Tells the broker a delivery to the session is done with.
    fn acknowledge(&mut self, packet_id: PacketId, qos: QoS) {
        let now = Instant::now();
        let packet = match qos {
            QoS::ExactlyOnce => Packet::PubRec(Ack::new(packet_id)),
            _ => Packet::PubAck(Ack::new(packet_id)),
        };
        self.local.send(packet, now);
    }

    /// Forwards what the broker has for the session.
    fn pump(&mut self, acked: &mpsc::UnboundedSender<(PacketId, QoS)>) {
        let now = Instant::now();
        if let Some(reason) = self.local.take_closed(now) {
            tracing::warn!(
                event = "cluster.session_closed",
                ?reason,
                "the cluster's session was closed ({reason:?}); attaching again"
            );
            if self.local.attach(now).is_ok() {
                self.resubscribe(now);
            }
        }
        while let Some(packet) = self.local.next_packet(now) {
            match packet {
                Packet::Publish(mut publish) => {
                    let nodes: Vec<Arc<str>> = {
                        let mut nodes = HashSet::new();
                        for id in &publish.properties.subscription_identifiers {
                            if let Some(filter) = self.by_id.get(&id.get())
                                && let Some(remote) = self.remote.get(filter)
                            {
                                nodes.extend(remote.nodes.iter().cloned());
                            }
                        }
                        nodes.into_iter().collect()
                    };
                    publish.properties.subscription_identifiers.clear();
                    let qos = publish.qos;
                    let packet_id = publish.packet_id;
                    let topic = publish.topic.clone();
                    let mut encoded = BytesMut::new();
                    if Packet::Publish(publish)
                        .encode(ProtocolVersion::V5, &mut encoded)
                        .is_err()
                    {
                        continue;
                    }
                    let packet = encoded.freeze();
                    let mut waits = self.cluster.forward(&nodes, packet.clone(), qos);
                    if qos != QoS::AtMostOnce {
                        // A publish here for a session that just moved (its new node may
                        // have read the session's log before it, and may not hold the
                        // session yet when the forward arrives) is logged for it and
                        // handed to it there as well.
                        waits.extend(self.follow_moved(topic.as_str(), &packet, now));
                    }
                    let Some(packet_id) = packet_id.filter(|_| qos != QoS::AtMostOnce) else {
                        continue;
                    };
                    if waits.is_empty() {
                        self.acknowledge(packet_id, qos);
                        continue;
                    }
                    let acked = acked.clone();
                    let rescue = self.rescue.clone();
                    tokio::spawn(async move {
                        let mut given_up = false;
                        for wait in waits {
                            given_up |= !wait.await.unwrap_or(true);
                        }
                        if given_up {
                            rescue.given_up(packet).await;
                        }
                        let _ = acked.send((packet_id, qos));
                    });
                }
                Packet::PubRel(ack) => {
                    self.local.send(Packet::PubComp(Ack::new(ack.packet_id)), now);
                }
                Packet::SubAck(suback) => {
                    if let Some(code) = suback.reason_codes.iter().find(|code| code.is_error()) {
                        tracing::warn!(event = "cluster.subscribe_refused", reason = ?code, "the broker refused a cluster route ({code:?})");
                    }
                }
                _ => {}
            }
        }
    }

    /// Moves the floor of each session here that has nothing pending from the log: read
    /// where the log is queued through first, then whether the session is drained, so the
    /// floor never passes a message not yet delivered.
    fn move_floors(&self) {
        for (client_id, through) in self.cluster.floors_due() {
            match self.broker.session_pending(&client_id) {
                Some(0) => self.cluster.floor_reached(&client_id, Some(through)),
                Some(_) => {}
                None => self.cluster.floor_reached(&client_id, None),
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        let now = Instant::now();
        match event {
            Event::RouteAdded { node, filter } => {
                // Told by the node itself: no longer provisional.
                self.provisional.remove(&(node.clone(), filter.clone()));
                self.add_route(node, filter, now);
            }
            Event::RouteRemoved { node, filter } => {
                self.provisional.remove(&(node.clone(), filter.clone()));
                self.remove_route(&node, &filter, now);
            }
            // Not taken, nor acknowledged: the broker stops (see `Cluster::close`).
            Event::Forwarded { .. } if self.cluster.closing() => {}
            Event::Forwarded {
                from,
                packet,
                sessions,
                ack,
            } => {
                let message = match message_from(packet.clone(), Some(CLUSTER_CLIENT_ID), Duration::ZERO, now)
                {
                    Ok(message) => message,
                    Err(problem) => {
                        tracing::warn!(event = "cluster.bad_forward", node = %from, "node {from} forwarded {problem}; dropped");
                        // In turn: an acknowledgement covers every forward before it.
                        self.acknowledge_in_turn(ack);
                        return;
                    }
                };
                if !sessions.is_empty() {
                    // For these sessions only: a forward its sender gave up on elsewhere, and
                    // wrote to the message log for them itself.
                    let message = Arc::new(message);
                    for client_id in &sessions {
                        self.broker.replay_into(client_id, message.clone(), now);
                    }
                    self.acknowledge_in_turn(ack);
                    return;
                }
                let topic = message.topic.clone();
                let routed = self.broker.publish_forwarded(Arc::new(message), now);
                let mut waits: Vec<_> = (!routed.durable.is_empty())
                    .then(|| {
                        let client_ids = routed.durable.iter().map(ToString::to_string).collect();
                        self.cluster.log(client_ids, packet.clone())
                    })
                    .into_iter()
                    .collect();
                waits.extend(self.follow_moved(topic.as_str(), &packet, now));
                if let Some(ack) = ack {
                    let _ = self.acks.send(PendingAck {
                        ack,
                        durable_after: routed.durable_after,
                        waits,
                    });
                }
            }
            Event::Retained { packet, age } => match message_from(packet, None, age, now) {
                Ok(message) => {
                    self.broker.keep_retained(Arc::new(message));
                }
                Err(problem) => {
                    tracing::warn!(
                        event = "cluster.bad_retained",
                        "the cluster holds a retained message this node cannot read: {problem}; ignored"
                    );
                }
            },
            Event::Owner { client_id, node, .. } => {
                if *node == *self.cluster.node_id() {
                    // Back here: forwards for it are delivered here by their topic.
                    self.moved.remove(&client_id);
                }
                // Looked up again: a claim made here since may have overtaken this one.
                if *node != *self.cluster.node_id()
                    && let Some((owner, _)) = self.cluster.owner(&client_id)
                    && *owner != *self.cluster.node_id()
                {
                    self.hand_over(&client_id, owner, now);
                }
            }
            // Events are taken in order: every route told before this one is in force.
            Event::RoutesKnown => self.cluster.routes_applied(),
            Event::NodeDown(_) => {
                let _ = self.adopt.send(());
            }
            Event::NodeUp(_) => {}
        }
    }

    /// Acknowledges a forward that waits for nothing, in its turn (an acknowledgement covers
    /// every forward before it, and those may still wait).
    fn acknowledge_in_turn(&self, ack: Option<midge_cluster::Ack>) {
        if let Some(ack) = ack {
            let _ = self.acks.send(PendingAck {
                ack,
                durable_after: 0,
                waits: Vec::new(),
            });
        }
    }

    /// `client_id` was claimed by `owner`: its connection here is closed (0x8E) and its
    /// session dropped. If the session outlived connections, what it still held goes to
    /// `owner` (which may have read the session's log before these were queued here), and
    /// for [`MOVED_FOR`] forwards that match its subscriptions follow it there (their
    /// senders may not know its new route yet).
    fn hand_over(&mut self, client_id: &str, owner: Arc<str>, now: Instant) {
        let info = self.broker.session_info(client_id);
        let (closed, held) = self.broker.take_over_client_and_queue(client_id, now);
        if closed {
            self.cluster.note_taken_over();
        }
        let Some(info) = info.filter(|info| info.expiry != Some(Duration::ZERO)) else {
            return;
        };
        for message in held {
            let publish = message.to_publish(message.qos, message.retain, &[], now);
            let mut encoded = BytesMut::new();
            if Packet::Publish(publish)
                .encode(ProtocolVersion::V5, &mut encoded)
                .is_ok()
            {
                // Not waited for: the log has it too, and acknowledged it long ago.
                drop(
                    self.cluster
                        .deliver(&owner, vec![client_id.to_owned()], encoded.freeze()),
                );
            }
        }
        let filters: Vec<TopicFilter> = info
            .subscriptions
            .iter()
            .filter_map(|filter| TopicFilter::try_from(filter.as_ref()).ok())
            .collect();
        // Until `owner`'s own routes are known here, this node's publishes that match the
        // session's subscriptions go there as well (and follow it, see `follow_moved`):
        // they would otherwise match nothing here, and `owner` read the session's log
        // before they were published.
        for filter in &filters {
            let inner = filter.shared().map_or(filter.as_str(), |shared| shared.filter);
            let known = self
                .remote
                .get(inner)
                .is_some_and(|remote| remote.nodes.contains(&owner));
            if !known {
                self.provisional
                    .insert((owner.clone(), inner.to_owned()), now + MOVED_FOR);
                self.add_route(owner.clone(), inner.to_owned(), now);
            }
        }
        self.moved.retain(|_, moved| moved.until > now);
        self.moved.insert(
            client_id.to_owned(),
            Moved {
                node: owner,
                filters,
                until: now + MOVED_FOR,
            },
        );
    }

    /// A forward for `topic` that sessions which moved away lately subscribed to: logged for
    /// them and handed to their new nodes; the answers to wait for before acknowledging it.
    fn follow_moved(
        &self,
        topic: &str,
        packet: &bytes::Bytes,
        now: Instant,
    ) -> Vec<tokio::sync::oneshot::Receiver<bool>> {
        let mut waits = Vec::new();
        for (client_id, moved) in &self.moved {
            if moved.until <= now || !moved.filters.iter().any(|filter| filter.matches(topic)) {
                continue;
            }
            waits.push(self.cluster.log(vec![client_id.clone()], packet.clone()));
            waits.push(
                self.cluster
                    .deliver(&moved.node, vec![client_id.clone()], packet.clone()),
            );
        }
        waits
    }

    /// Drops the provisional routes whose time is up (their node never told them).
    fn drop_provisional(&mut self, now: Instant) {
        let expired: Vec<(Arc<str>, String)> = self
            .provisional
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(route, _)| route.clone())
            .collect();
        for (node, filter) in expired {
            self.provisional.remove(&(node.clone(), filter.clone()));
            self.remove_route(&node, &filter, now);
        }
    }

    fn add_route(&mut self, node: Arc<str>, filter: String, now: Instant) {
        if let Some(remote) = self.remote.get_mut(&filter) {
            remote.nodes.insert(node);
            return;
        }
        let Ok(parsed) = TopicFilter::try_from(filter.as_str()) else {
            tracing::warn!(event = "cluster.bad_route", node = %node, "node {node} has a route that is not a topic filter ({filter:?}); ignored");
            return;
        };
        self.next_id = self.next_id % (SubscriptionId::MAX - 1) + 1;
        let Some(id) = SubscriptionId::new(self.next_id) else {
            return;
        };
        self.by_id.insert(id.get(), filter.clone());
        self.remote.insert(
            filter,
            RemoteFilter {
                id,
                nodes: HashSet::from([node]),
            },
        );
        self.subscribe(parsed, id, now);
    }

    fn remove_route(&mut self, node: &Arc<str>, filter: &str, now: Instant) {
        let Some(remote) = self.remote.get_mut(filter) else {
            return;
        };
        remote.nodes.remove(node);
        if !remote.nodes.is_empty() {
            return;
        }
        if let Some(remote) = self.remote.remove(filter) {
            self.by_id.remove(&remote.id.get());
        }
        if let Ok(parsed) = TopicFilter::try_from(filter) {
            let packet_id = self.packet_id();
            self.local.send(
                Packet::Unsubscribe(Unsubscribe {
                    packet_id,
                    filters: vec![parsed],
                    properties: Default::default(),
                }),
                now,
            );
        }
    }

    fn subscribe(&mut self, filter: TopicFilter, id: SubscriptionId, now: Instant) {
        let packet_id = self.packet_id();
        let mut subscribe = Subscribe {
            packet_id,
            subscriptions: vec![Subscription {
                filter,
                options: SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::DoNotSend,
                },
            }],
            properties: Default::default(),
        };
        subscribe.properties.subscription_identifier = Some(id);
        self.local.send(Packet::Subscribe(subscribe), now);
    }

    /// After the session was attached again (it starts clean): every remote filter again.
    fn resubscribe(&mut self, now: Instant) {
        let filters: Vec<(String, SubscriptionId)> = self
            .remote
            .iter()
            .map(|(filter, remote)| (filter.clone(), remote.id))
            .collect();
        for (filter, id) in filters {
            if let Ok(parsed) = TopicFilter::try_from(filter.as_str()) {
                self.subscribe(parsed, id, now);
            }
        }
    }

    fn packet_id(&mut self) -> PacketId {
        self.next_packet_id = self.next_packet_id.wrapping_add(1).max(1);
        PacketId::new(self.next_packet_id).unwrap_or(PacketId::MIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cluster this node cannot reach: every claim is unavailable.
    #[derive(Debug)]
    struct CutOff {
        netsplit_allow_publish: bool,
    }

    impl Cluster for CutOff {
        fn node_id(&self) -> &str {
            "n3"
        }
        fn route_added(&self, _filter: &str) {}
        fn route_removed(&self, _filter: &str) {}
        fn retained_changed(&self, _topic: &str, _packet: bytes::Bytes) {}
        fn forward(
            &self,
            _nodes: &[Arc<str>],
            _packet: bytes::Bytes,
            _qos: QoS,
        ) -> Vec<tokio::sync::oneshot::Receiver<bool>> {
            Vec::new()
        }
        fn claim<'a>(&'a self, _client_id: &'a str) -> midge_cluster::Claiming<'a> {
            Box::pin(std::future::ready(Err(ClaimError::Unavailable("cut off".into()))))
        }
        fn owner(&self, _client_id: &str) -> Option<(Arc<str>, u64)> {
            None
        }
        fn session_changed(&self, _client_id: &str, _checkpoint: bytes::Bytes) {}
        fn session_ended(&self, _client_id: &str) {}
        fn checkpoint<'a>(&'a self, _client_id: &'a str) -> midge_cluster::Fetching<'a> {
            Box::pin(std::future::ready(Ok(None)))
        }
        fn admits_unclaimed(&self) -> bool {
            self.netsplit_allow_publish
        }
        fn status(&self) -> midge_cluster::ClusterStatus {
            midge_cluster::ClusterStatus::default()
        }
    }

    /// A cluster of which this node is n2, that records what is forwarded, logged and
    /// delivered (each answered at once), and knows "mover" as n3's.
    #[derive(Debug, Default)]
    struct Recorder {
        forwarded: parking_lot::Mutex<Vec<Vec<Arc<str>>>>,
        logged: parking_lot::Mutex<Vec<Vec<String>>>,
        delivered: parking_lot::Mutex<Vec<(Arc<str>, Vec<String>)>>,
    }

    fn answered() -> tokio::sync::oneshot::Receiver<bool> {
        let (done, wait) = tokio::sync::oneshot::channel();
        let _ = done.send(true);
        wait
    }

    impl Cluster for Recorder {
        fn node_id(&self) -> &str {
            "n2"
        }
        fn route_added(&self, _filter: &str) {}
        fn route_removed(&self, _filter: &str) {}
        fn retained_changed(&self, _topic: &str, _packet: bytes::Bytes) {}
        fn forward(
            &self,
            nodes: &[Arc<str>],
            _packet: bytes::Bytes,
            _qos: QoS,
        ) -> Vec<tokio::sync::oneshot::Receiver<bool>> {
            self.forwarded.lock().push(nodes.to_vec());
            nodes.iter().map(|_| answered()).collect()
        }
        fn deliver(
            &self,
            node: &Arc<str>,
            client_ids: Vec<String>,
            _packet: bytes::Bytes,
        ) -> tokio::sync::oneshot::Receiver<bool> {
            self.delivered.lock().push((node.clone(), client_ids));
            answered()
        }
        fn log(
            &self,
            client_ids: Vec<String>,
            _packet: bytes::Bytes,
        ) -> tokio::sync::oneshot::Receiver<bool> {
            self.logged.lock().push(client_ids);
            answered()
        }
        fn claim<'a>(&'a self, _client_id: &'a str) -> midge_cluster::Claiming<'a> {
            Box::pin(std::future::ready(Err(ClaimError::Contended)))
        }
        fn owner(&self, client_id: &str) -> Option<(Arc<str>, u64)> {
            (client_id == "mover").then(|| (Arc::from("n3"), 2))
        }
        fn session_changed(&self, _client_id: &str, _checkpoint: bytes::Bytes) {}
        fn session_ended(&self, _client_id: &str) {}
        fn checkpoint<'a>(&'a self, _client_id: &'a str) -> midge_cluster::Fetching<'a> {
            Box::pin(std::future::ready(Ok(None)))
        }
        fn status(&self) -> midge_cluster::ClusterStatus {
            midge_cluster::ClusterStatus::default()
        }
    }

    /// A persistent session here whose client just connected on n3: n3 read the session's
    /// log before a client here publishes for it, and its own routes are not known here yet.
    /// The publish goes to n3 all the same (a provisional route), and is logged for the
    /// session and handed to it there (n3 may not hold the session yet when the forward
    /// arrives) before it is acknowledged.
    #[tokio::test]
    async fn a_publish_here_just_after_a_session_moved_follows_it_to_its_new_node() {
        let now = Instant::now();
        let broker = Broker::new(midge_core::BrokerConfig::default(), 1);
        let cluster = Arc::new(Recorder::default());
        let mut local = Local::new(broker.clone(), CLUSTER_CLIENT_ID, None, true);
        local.attach(now).unwrap();
        let (acks, _acks) = mpsc::unbounded_channel();
        let (adopt, _nudges) = mpsc::unbounded_channel();
        let mut glue = Glue::new(broker.clone(), cluster.clone(), local, acks, adopt);
        let (acked, _acked) = mpsc::unbounded_channel();
        glue.pump(&acked);

        let mut mover = Local::new(broker.clone(), "mover", None, false);
        mover.attach(now).unwrap();
        let subscribe = Subscribe {
            packet_id: PacketId::MIN,
            subscriptions: vec![Subscription {
                filter: TopicFilter::try_from("moving/#").unwrap(),
                options: SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    ..SubscriptionOptions::default()
                },
            }],
            properties: Default::default(),
        };
        assert!(mover.send(Packet::Subscribe(subscribe), now));
        glue.on_event(Event::Owner {
            client_id: "mover".into(),
            node: Arc::from("n3"),
            revision: 2,
        });
        glue.pump(&acked);
        assert!(
            broker.session_info("mover").is_none(),
            "the session left with its client"
        );

        let mut publisher = Local::new(broker, "publisher", None, true);
        publisher.attach(now).unwrap();
        let mut publish = midge_codec::Publish::new(
            midge_codec::TopicName::try_from("moving/x").unwrap(),
            bytes::Bytes::from_static(b"m"),
        );
        publish.qos = QoS::AtLeastOnce;
        publish.packet_id = PacketId::new(1);
        assert!(publisher.send(Packet::Publish(publish), now));
        glue.pump(&acked);
        assert_eq!(*cluster.forwarded.lock(), vec![vec![Arc::<str>::from("n3")]]);
        assert_eq!(*cluster.logged.lock(), vec![vec!["mover".to_owned()]]);
        assert_eq!(
            *cluster.delivered.lock(),
            vec![(Arc::<str>::from("n3"), vec!["mover".to_owned()])]
        );

        // n3 tells its route: the provisional one is its own now, and outlives the minute.
        glue.on_event(Event::RouteAdded {
            node: Arc::from("n3"),
            filter: "moving/#".into(),
        });
        glue.drop_provisional(now + MOVED_FOR + Duration::from_secs(1));
        assert!(
            glue.remote
                .get("moving/#")
                .is_some_and(|remote| remote.nodes.contains("n3"))
        );
    }

    /// `cluster_netsplit_allow`: a node cut off from the cluster refuses persistent sessions
    /// (0x88) either way; a clean one is admitted with `publish` and refused with `none`.
    #[tokio::test]
    async fn a_node_cut_off_admits_what_cluster_netsplit_allow_says() {
        let broker = Broker::new(midge_core::BrokerConfig::default(), 1);
        let clean = Claim {
            client_id: "c".into(),
            persistent: false,
            resume: false,
        };
        let persistent = Claim {
            client_id: "p".into(),
            persistent: true,
            resume: true,
        };
        for (publish, clean_answer) in [(true, Ok(())), (false, Err(ReasonCode::ServerUnavailable))] {
            let cluster = CutOff {
                netsplit_allow_publish: publish,
            };
            assert_eq!(clean.make(&cluster, &broker, "peer").await, clean_answer);
            assert_eq!(
                persistent.make(&cluster, &broker, "peer").await,
                Err(ReasonCode::ServerUnavailable)
            );
        }
    }

    /// What another node sends is read with the broker's codec: anything that is not a
    /// PUBLISH is refused with a reason, never a panic.
    #[test]
    fn a_forwarded_packet_that_is_not_a_publish_is_refused_with_a_reason() {
        let now = Instant::now();
        for bytes in [
            &b""[..],
            b"\x30",
            b"\x30\x05\x00\x09ab",
            b"\xc0\x00",
            b"\xff\xff\xff\xff",
        ] {
            let refused = message_from(bytes::Bytes::copy_from_slice(bytes), None, Duration::ZERO, now);
            assert!(refused.is_err(), "{bytes:?} was taken for a message");
        }
        let mut good = BytesMut::new();
        let mut publish = midge_codec::Publish::new(
            midge_codec::TopicName::try_from("a/b").unwrap(),
            bytes::Bytes::from_static(b"hi"),
        );
        publish.properties.message_expiry_interval = Some(60);
        Packet::Publish(publish)
            .encode(ProtocolVersion::V5, &mut good)
            .unwrap();
        let message = message_from(good.freeze(), Some("x"), Duration::from_secs(10), now).unwrap();
        assert_eq!(message.topic.as_str(), "a/b");
        // Its expiry counts from when it was written: 60 s then, 50 s from now.
        assert_eq!(message.expires_at, Some(now + Duration::from_secs(50)));
    }
}
