//! The NATS JetStream backend: this node's link to the others.
//!
//! - **Routes**: this node's route set in the KV bucket `midge-CLUSTER-routes` (keys
//!   `NODE.HASH`, values the filters), written only on a filter's first subscription here or
//!   its last one gone, and rewritten whole after each start; the other nodes' sets
//!   are watched into [`Event::RouteAdded`] and [`Event::RouteRemoved`].
//! - **Retained messages**: in `midge-CLUSTER-retained` (keys the hashed topics, values
//!   the MQTT 5 PUBLISH packets, an empty payload for a cleared topic), written in the order
//!   they are set here; every node, this one included, applies the bucket in its order, so all
//!   converge on the last write ([`Event::Retained`]).
//! - **Ownership**: each client identifier's owner node in `midge-CLUSTER-owners` (keys the
//!   hashed identifiers), moved only by compare-and-set on the key's revision, which fences
//!   an older owner: every node watches the bucket and closes its own connection of a client
//!   that a newer revision gives to another node ([`Event::Owner`]).
//! - **Sessions**: each persistent session's checkpoint (expiry and subscriptions, encoded
//!   by the broker) in `midge-CLUSTER-sessions`, written in order as it changes, read by the
//!   node its client connects to next.
//! - **Liveness**: a heartbeat in `midge-CLUSTER-nodes` every `heartbeat_interval`; a node
//!   unheard for `node_down_grace` is [`Event::NodeDown`] until it is heard again.
//! - **Forwarding**: frames (`frame.rs`) to each node's inbox subject. Core NATS may drop
//!   messages, so QoS 1 and 2 forwards carry a sequence number per link, are kept until the
//!   receiver acknowledges them (acks are batched, cumulative) and sent again, oldest first,
//!   when no ack came for a while. The receiver takes them strictly in order and drops what
//!   it has seen.
//! - **Message log**: a QoS 1 or 2 message queued here for persistent sessions is written to
//!   the stream of their shard (`midge-CLUSTER-log-K`, `cluster_queue_shards` of them,
//!   replicated like the buckets) before it is acknowledged (`log.rs`). Each session's
//!   floor (the log position up to which everything for it was delivered and acknowledged)
//!   is written to the sessions bucket every `checkpoint_interval` while it moves; the node
//!   that adopts the session reads the log past the floor into it ([`Cluster::replay`]).
//!   The log is read only then, through a short-lived ordered consumer: delivery itself
//!   goes through the inboxes, and the number of streams and consumers does not grow with
//!   the clients.
//!
//! MQTT topics never become NATS subjects: the topic travels inside the frame.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures_util::StreamExt;
use midge_codec::QoS;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::ClusterConfig;
use crate::frame::{Body, Frame};
use crate::keys;
use crate::log::LogEntry;
use crate::{
    Ack, ClaimError, Claiming, Cluster, ClusterStatus, Event, Fetching, FetchingAll, ListingKeys, NodeStatus,
    Replay, Replaying,
};

/// How long a forward waits for its ack before it (and everything after it on its link) is
/// sent again.
const RESEND_AFTER: Duration = Duration::from_millis(500);
/// How often acknowledgements are sent, at most.
const ACK_EVERY: Duration = Duration::from_millis(2);
/// Between attempts to reach JetStream (a bucket needs a majority of its replicas).
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// How long a claim of a client identifier may take before the CONNECT is refused.
const CLAIM_WITHIN: Duration = Duration::from_secs(3);
/// How long a write to the message log is tried before the message is acknowledged without.
const LOG_WITHIN: Duration = Duration::from_secs(30);
/// How long reading a session's messages back from the log may take.
const REPLAY_WITHIN: Duration = Duration::from_secs(30);
/// How much longer a claim whose write is in doubt may take to settle it.
const SETTLE_WITHIN: Duration = Duration::from_secs(10);
/// How long taking over a session of a node that is gone waits for JetStream.
const ADOPT_WITHIN: Duration = Duration::from_secs(10);
/// Bytes of frames waiting to be handed to NATS beyond which QoS 0 forwards are dropped
/// (counted as dropped): QoS 1 and 2 forwards are bounded by the peer window, QoS 0 ones
/// only by this, so a node offered more than it can forward keeps its memory.
const OUTGOING_QOS0_LIMIT: usize = 32 << 20;

/// A node of a cluster on NATS.
#[derive(Debug)]
pub struct NatsCluster {
    config: ClusterConfig,
    /// Chosen at each start: tells receivers that this node's sequence numbers start over.
    epoch: u64,
    /// Frames to hand to NATS, in order ([`NatsCluster::send_frame`]).
    outgoing: mpsc::UnboundedSender<(String, Bytes)>,
    /// Bytes of the frames in `outgoing`.
    outgoing_bytes: AtomicUsize,
    routes: mpsc::UnboundedSender<(String, bool)>,
    retained: mpsc::UnboundedSender<(String, Bytes)>,
    links: Mutex<HashMap<Arc<str>, LinkOut>>,
    down: Mutex<HashSet<Arc<str>>>,
    /// The owners bucket, once JetStream answered.
    owners_store: watch::Sender<Option<kv::Store>>,
    /// The sessions bucket, once JetStream answered.
    sessions_store: watch::Sender<Option<kv::Store>>,
    /// Writes to the sessions bucket: (key, client identifier, value or deletion).
    sessions: mpsc::UnboundedSender<(String, String, Option<Bytes>)>,
    /// Messages to write to the log.
    log: mpsc::UnboundedSender<LogRequest>,
    /// JetStream, once it answered (for reading the log back).
    jetstream: watch::Sender<Option<jetstream::Context>>,
    /// The last ticket given out ([`Cluster::log_ticket`]), and where each goes to be settled
    /// in order: taken together under this lock, so tickets settle in the order given.
    tickets: Mutex<(u64, mpsc::UnboundedSender<Settling>)>,
    /// The ticket up to which every one is settled.
    settled: watch::Sender<u64>,
    /// Per session with messages in the log: the position it is queued through here, and
    /// the floor last written.
    floors: Mutex<HashMap<String, Floor>>,
    /// Whether the broker has taken in the routes the cluster held when this node joined.
    routes_known: watch::Sender<bool>,
    /// The broker stops ([`Cluster::close`]).
    closing: AtomicBool,
    /// Each client identifier's owner and revision, as far as this node knows.
    owners: Mutex<HashMap<String, (Arc<str>, u64)>>,
    /// This node's id, shared with the owners map.
    me: Arc<str>,
    counters: Counters,
    nodes: Mutex<HashMap<Arc<str>, NodeSeen>>,
}

/// A message for the log: the sessions it was queued for, the PUBLISH, and who waits.
type LogRequest = (Vec<String>, Bytes, oneshot::Sender<bool>);

/// A ticket, and the log's answer it waits for.
type Settling = (u64, oneshot::Receiver<bool>);

/// One entry of the log on its way: where, with which message id (the same if written again),
/// for whom, and the answer awaited (none if it could not be sent).
struct LogWrite {
    subject: String,
    id: String,
    bytes: Bytes,
    client_ids: Vec<String>,
    sent: Option<jetstream::context::PublishAckFuture>,
}

/// A session's place in the message log, on this node.
#[derive(Debug, Default, Clone, Copy)]
struct Floor {
    /// Every message logged for it up to here is queued in its session here.
    through: u64,
    /// The floor last written to the cluster.
    written: u64,
}

#[derive(Debug, Default)]
struct Counters {
    connected: AtomicBool,
    forwarded_out: AtomicU64,
    forwarded_in: AtomicU64,
    resent: AtomicU64,
    given_up: AtomicU64,
    bad_frames: AtomicU64,
    out_of_order: AtomicU64,
    route_writes: AtomicU64,
    claims: AtomicU64,
    claims_failed: AtomicU64,
    /// Claims begun (each one's token).
    claims_started: AtomicU64,
    logged: AtomicU64,
    log_failed: AtomicU64,
    replayed: AtomicU64,
    /// Log entries written (each one's message id, for JetStream to drop a repeated write).
    log_entries: AtomicU64,
    taken_over: AtomicU64,
    adopted: AtomicU64,
}

#[derive(Debug)]
struct NodeSeen {
    epoch: u64,
    at: Instant,
    down: bool,
}

/// What is in flight to one node.
#[derive(Debug)]
struct LinkOut {
    /// The link's epoch: this node's at first, a new one each time the node is given up
    /// (what was in flight then is never sent again, so the receiver, which may still wait
    /// for it, must start the link afresh rather than wait for a gap to be filled).
    epoch: u64,
    next_seq: u64,
    unacked: VecDeque<Pending>,
}

impl LinkOut {
    fn new(epoch: u64) -> Self {
        Self {
            epoch,
            next_seq: 0,
            unacked: VecDeque::new(),
        }
    }
}

#[derive(Debug)]
struct Pending {
    seq: u64,
    /// A forward or a delivery.
    body: Body,
    sent_at: Instant,
    /// Told whether the node acknowledged it; taken (false) if the node started afresh
    /// before it did, and the forward is then only sent again for what it is worth.
    done: Option<oneshot::Sender<bool>>,
}

impl Pending {
    fn answer(&mut self, acknowledged: bool) {
        if let Some(done) = self.done.take() {
            let _ = done.send(acknowledged);
        }
    }
}

/// What a received link expects next.
#[derive(Debug)]
struct LinkIn {
    epoch: u64,
    expected: u64,
    /// When this node last asked the sender to number the link from 1 again.
    reset_at: Option<Instant>,
}

impl LinkIn {
    fn new(epoch: u64) -> Self {
        Self {
            epoch,
            expected: 1,
            reset_at: None,
        }
    }
}

impl NatsCluster {
    /// Starts the node's tasks (they end when `stop` changes) and returns it with the events
    /// the broker must act on.
    pub fn start(
        config: ClusterConfig,
        stop: watch::Receiver<bool>,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Event>) {
        let (events_tx, events) = mpsc::unbounded_channel();
        let (outgoing, outgoing_rx) = mpsc::unbounded_channel();
        let (routes, routes_rx) = mpsc::unbounded_channel();
        let (retained, retained_rx) = mpsc::unbounded_channel();
        let (sessions, sessions_rx) = mpsc::unbounded_channel();
        let (log, log_rx) = mpsc::unbounded_channel();
        let (tickets, tickets_rx) = mpsc::unbounded_channel();
        let epoch = epoch();
        let me: Arc<str> = Arc::from(config.node_id.as_str());
        let cluster = Arc::new(Self {
            config,
            epoch,
            outgoing,
            outgoing_bytes: AtomicUsize::new(0),
            routes,
            retained,
            links: Mutex::default(),
            down: Mutex::default(),
            owners_store: watch::channel(None).0,
            sessions_store: watch::channel(None).0,
            sessions,
            log,
            jetstream: watch::channel(None).0,
            tickets: Mutex::new((0, tickets)),
            settled: watch::channel(0).0,
            floors: Mutex::default(),
            routes_known: watch::channel(false).0,
            closing: AtomicBool::new(false),
            owners: Mutex::default(),
            me,
            counters: Counters::default(),
            nodes: Mutex::default(),
        });
        let channels = Channels {
            outgoing: outgoing_rx,
            routes: routes_rx,
            retained: retained_rx,
            sessions: sessions_rx,
            log: log_rx,
        };
        tokio::spawn(cluster.clone().settle_tickets(tickets_rx));
        tokio::spawn(cluster.clone().run(events_tx, channels, stop));
        (cluster, events)
    }

    fn inbox(&self, node: &str) -> String {
        keys::inbox(&self.config.name, node)
    }

    /// A frame from this node.
    fn frame(&self, epoch: u64, seq: u64, body: Body) -> Bytes {
        Frame {
            from: self.config.node_id.clone(),
            epoch,
            seq,
            body,
        }
        .encode()
    }

    async fn run(
        self: Arc<Self>,
        events: mpsc::UnboundedSender<Event>,
        channels: Channels,
        mut stop: watch::Receiver<bool>,
    ) {
        let client = tokio::select! {
            client = self.connect() => client,
            _ = stop.changed() => return,
        };
        // A short API timeout: while a new cluster elects its JetStream leader a request may
        // go unanswered, and the next one should not wait long.
        let js = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(2))
            .build(client.clone());
        let Buckets {
            routes: routes_kv,
            nodes: nodes_kv,
            retained: retained_kv,
            owners: owners_kv,
            sessions: sessions_kv,
        } = tokio::select! {
            buckets = self.buckets(&js) => buckets,
            _ = stop.changed() => return,
        };
        tokio::select! {
            () = self.log_streams(&js) => {}
            _ = stop.changed() => return,
        }
        tracing::info!(event = "cluster.ready", node = %self.config.node_id, cluster = %self.config.name, "cluster {}: node {} joined", self.config.name, self.config.node_id);
        let (acks_tx, acks_rx) = mpsc::unbounded_channel();
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(self.clone().send_loop(client.clone(), channels.outgoing));
        tasks.spawn(self.clone().ack_loop(acks_rx));
        tasks.spawn(self.clone().inbox_loop(client.clone(), events.clone(), acks_tx));
        tasks.spawn(self.clone().route_writer(routes_kv.clone(), channels.routes));
        tasks.spawn(
            self.clone()
                .retained_writer(retained_kv.clone(), channels.retained),
        );
        tasks.spawn(self.clone().retained_watcher(retained_kv, events.clone()));
        tasks.spawn(self.clone().owner_watcher(owners_kv.clone(), events.clone()));
        self.owners_store.send_replace(Some(owners_kv));
        tasks.spawn(
            self.clone()
                .session_writer(sessions_kv.clone(), channels.sessions),
        );
        self.sessions_store.send_replace(Some(sessions_kv));
        tasks.spawn(self.clone().route_watcher(routes_kv, events.clone()));
        tasks.spawn(self.clone().heartbeat(client.clone(), nodes_kv.clone()));
        tasks.spawn(self.clone().node_watcher(client.clone(), nodes_kv, events));
        tasks.spawn(self.clone().resend_loop());
        tasks.spawn(self.clone().log_writer(js.clone(), channels.log));
        self.jetstream.send_replace(Some(js));
        let _ = stop.changed().await;
        tasks.abort_all();
        let _ = client.flush().await;
    }

    async fn connect(&self) -> async_nats::Client {
        loop {
            match self.options().await {
                Ok(options) => match options.connect(self.config.urls()).await {
                    Ok(client) => return client,
                    Err(error) => {
                        tracing::warn!(event = "cluster.nats.unreachable", %error, "cannot reach NATS: {error}");
                    }
                },
                Err(error) => {
                    tracing::error!(event = "cluster.nats.options", %error, "cluster NATS options: {error}");
                }
            }
            tokio::time::sleep(RETRY_AFTER * 4).await;
        }
    }

    async fn options(&self) -> std::io::Result<async_nats::ConnectOptions> {
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("midge {}/{}", self.config.name, self.config.node_id))
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            .ping_interval(Duration::from_secs(5))
            .max_reconnects(None)
            // The client's own report goes to standard output otherwise.
            .event_callback(|event| async move {
                tracing::debug!(event = "cluster.nats.event", "NATS: {event}");
            });
        if let Some((user, password)) = &self.config.nats_user {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(path) = &self.config.nats_credentials {
            options = options.credentials_file(path).await?;
        }
        if let Some(ca) = &self.config.nats_cafile {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let Some((cert, key)) = &self.config.nats_client_cert {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        Ok(options)
    }

    /// Midge's buckets, created if missing; each retried until JetStream answers (a new
    /// cluster first elects its JetStream leader).
    async fn buckets(&self, js: &jetstream::Context) -> Buckets {
        let mut waiting_said = false;
        let mut bucket = async |name: String| loop {
            let config = kv::Config {
                bucket: name.clone(),
                history: 1,
                num_replicas: self.config.replicas,
                storage: jetstream::stream::StorageType::File,
                ..kv::Config::default()
            };
            match js.create_or_update_key_value(config).await {
                Ok(store) => return store,
                Err(error) => {
                    // A cluster starting up waits for its JetStream leader: said once.
                    if waiting_said {
                        tracing::debug!(event = "cluster.jetstream.waiting", %error, "waiting for JetStream: {error}");
                    } else {
                        waiting_said = true;
                        tracing::info!(event = "cluster.jetstream.waiting", %error, "waiting for JetStream: {error}");
                    }
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        };
        let name = &self.config.name;
        let buckets = Buckets {
            routes: bucket(keys::routes_bucket(name)).await,
            nodes: bucket(keys::nodes_bucket(name)).await,
            retained: bucket(keys::retained_bucket(name)).await,
            owners: bucket(keys::owners_bucket(name)).await,
            sessions: bucket(keys::sessions_bucket(name)).await,
        };
        self.counters.connected.store(true, Ordering::Relaxed);
        buckets
    }

    async fn send_loop(
        self: Arc<Self>,
        client: async_nats::Client,
        mut outgoing: mpsc::UnboundedReceiver<(String, Bytes)>,
    ) {
        while let Some((subject, frame)) = outgoing.recv().await {
            self.outgoing_bytes.fetch_sub(frame.len(), Ordering::Relaxed);
            if let Err(error) = client.publish(subject, frame).await {
                tracing::debug!(event = "cluster.send_failed", %error, "cannot send a frame: {error}");
            }
        }
    }

    /// Queues a frame for [`NatsCluster::send_loop`].
    fn send_frame(&self, subject: String, frame: Bytes) {
        let length = frame.len();
        self.outgoing_bytes.fetch_add(length, Ordering::Relaxed);
        if self.outgoing.send((subject, frame)).is_err() {
            self.outgoing_bytes.fetch_sub(length, Ordering::Relaxed);
        }
    }

    /// Sends each link's highest processed sequence, at most every [`ACK_EVERY`]. A
    /// sequence of 0 asks to say again how far a link is done (a sender repeated a forward
    /// whose ack it missed): what is done, not what arrived, as a forward that arrived may
    /// still wait for the store or the message log.
    async fn ack_loop(self: Arc<Self>, mut done: mpsc::UnboundedReceiver<(Arc<str>, u64, u64)>) {
        let mut highest: HashMap<Arc<str>, (u64, u64)> = HashMap::new();
        let mut due: HashSet<Arc<str>> = HashSet::new();
        let note = |node: Arc<str>,
                    epoch: u64,
                    seq: u64,
                    highest: &mut HashMap<Arc<str>, (u64, u64)>,
                    due: &mut HashSet<Arc<str>>| {
            if seq != 0 {
                let entry = highest.entry(node.clone()).or_insert((epoch, seq));
                if entry.0 != epoch || entry.1 < seq {
                    *entry = (epoch, seq);
                }
            }
            due.insert(node);
        };
        loop {
            let Some((node, epoch, seq)) = done.recv().await else {
                return;
            };
            note(node, epoch, seq, &mut highest, &mut due);
            tokio::time::sleep(ACK_EVERY).await;
            while let Ok((node, epoch, seq)) = done.try_recv() {
                note(node, epoch, seq, &mut highest, &mut due);
            }
            for node in due.drain() {
                if let Some(&(epoch, seq)) = highest.get(&node) {
                    let frame = self.frame(epoch, seq, Body::Ack);
                    self.send_frame(self.inbox(&node), frame);
                }
            }
        }
    }

    async fn inbox_loop(
        self: Arc<Self>,
        client: async_nats::Client,
        events: mpsc::UnboundedSender<Event>,
        acks: mpsc::UnboundedSender<(Arc<str>, u64, u64)>,
    ) {
        let mut inbox = loop {
            match client.subscribe(self.inbox(&self.config.node_id)).await {
                Ok(inbox) => break inbox,
                Err(error) => {
                    tracing::warn!(event = "cluster.inbox_failed", %error, "cannot subscribe to this node's inbox: {error}");
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        };
        let mut links: HashMap<Arc<str>, LinkIn> = HashMap::new();
        let mut names: HashMap<String, Arc<str>> = HashMap::new();
        while let Some(message) = inbox.next().await {
            if self.closing.load(Ordering::Relaxed) {
                continue;
            }
            let frame = match Frame::decode(message.payload) {
                Ok(frame) => frame,
                Err(error) => {
                    self.counters.bad_frames.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(event = "cluster.bad_frame", %error, "dropped a frame this node cannot read: {error}");
                    continue;
                }
            };
            let from = names
                .entry(frame.from.clone())
                .or_insert_with(|| Arc::from(frame.from.as_str()))
                .clone();
            match frame.body {
                Body::Ack => self.acked(&from, frame.epoch, frame.seq),
                Body::Reset => self.renumber(&from, frame.epoch),
                Body::Forward(packet) if frame.seq == 0 => {
                    self.counters.forwarded_in.fetch_add(1, Ordering::Relaxed);
                    let _ = events.send(Event::Forwarded {
                        from,
                        packet,
                        sessions: Vec::new(),
                        ack: None,
                    });
                }
                // A delivery is always numbered (0 is no sequence): one that is not is
                // not from Midge.
                Body::Deliver(_) if frame.seq == 0 => {
                    self.counters.bad_frames.fetch_add(1, Ordering::Relaxed);
                }
                body @ (Body::Forward(_) | Body::Deliver(_)) => {
                    let link = links.entry(from.clone()).or_insert(LinkIn::new(frame.epoch));
                    if link.epoch != frame.epoch {
                        *link = LinkIn::new(frame.epoch);
                    }
                    if frame.seq < link.expected {
                        // Seen before (its ack was lost): say again how far this node is done.
                        let _ = acks.send((from, frame.epoch, 0));
                        continue;
                    }
                    if frame.seq > link.expected {
                        // One before it was lost; the sender goes back to it. On a link this
                        // node has taken nothing from, the sender may be numbering for an
                        // earlier run of this node: ask it to start from 1 (now and then, as
                        // the request may be lost too).
                        self.counters.out_of_order.fetch_add(1, Ordering::Relaxed);
                        let now = Instant::now();
                        if link.expected == 1
                            && link
                                .reset_at
                                .is_none_or(|at| now.duration_since(at) >= RESEND_AFTER)
                        {
                            link.reset_at = Some(now);
                            let reset = self.frame(frame.epoch, 0, Body::Reset);
                            self.send_frame(self.inbox(&from), reset);
                        }
                        continue;
                    }
                    link.expected += 1;
                    self.counters.forwarded_in.fetch_add(1, Ordering::Relaxed);
                    let ack = Ack {
                        node: from.clone(),
                        epoch: frame.epoch,
                        seq: frame.seq,
                        to: acks.clone(),
                    };
                    let (packet, sessions) = match body {
                        Body::Deliver(entry) => match delivery(entry) {
                            Ok(delivery) => delivery,
                            Err(error) => {
                                // Passed on empty, to be refused and acknowledged in its turn
                                // (an ack covers every forward before it): sending it again
                                // would not make it readable.
                                self.counters.bad_frames.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(event = "cluster.bad_frame", node = %from, %error, "a delivery from {from} cannot be read: {error}");
                                (Bytes::new(), Vec::new())
                            }
                        },
                        Body::Forward(packet) => (packet, Vec::new()),
                        Body::Ack | Body::Reset => continue,
                    };
                    let _ = events.send(Event::Forwarded {
                        from,
                        packet,
                        sessions,
                        ack: Some(ack),
                    });
                }
            }
        }
    }

    /// `node` has every forward of this node's `epoch` up to `seq`.
    fn acked(&self, node: &Arc<str>, epoch: u64, seq: u64) {
        let mut links = self.links.lock();
        let Some(link) = links.get_mut(node).filter(|link| link.epoch == epoch) else {
            return;
        };
        while link.unacked.front().is_some_and(|pending| pending.seq <= seq) {
            if let Some(mut pending) = link.unacked.pop_front() {
                pending.answer(true);
            }
        }
    }

    /// `node` started afresh and asks for this node's `epoch` link from 1: what it has not
    /// acknowledged is numbered from 1 again and sent at once.
    fn renumber(&self, node: &Arc<str>, epoch: u64) {
        let mut links = self.links.lock();
        let Some(link) = links.get_mut(node).filter(|link| link.epoch == epoch) else {
            return;
        };
        let subject = self.inbox(node);
        let now = Instant::now();
        let mut seq = 0;
        for pending in &mut link.unacked {
            // Its new run may not have what the old one held (see `restarted`).
            if pending.done.is_some() {
                self.counters.given_up.fetch_add(1, Ordering::Relaxed);
                pending.answer(false);
            }
            seq += 1;
            pending.seq = seq;
            pending.sent_at = now;
            let frame = self.frame(link.epoch, seq, pending.body.clone());
            self.send_frame(subject.clone(), frame);
        }
        link.next_seq = seq;
        tracing::info!(event = "cluster.link_renumbered", node = %node, unacked = seq, "node {node} started afresh: {seq} unacknowledged messages sent again from 1");
    }

    /// Sends again what waited too long for its ack, oldest first.
    async fn resend_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(RESEND_AFTER / 2);
        loop {
            tick.tick().await;
            let now = Instant::now();
            let mut links = self.links.lock();
            for (node, link) in links.iter_mut() {
                if link
                    .unacked
                    .front()
                    .is_none_or(|oldest| now.duration_since(oldest.sent_at) < RESEND_AFTER)
                {
                    continue;
                }
                let subject = self.inbox(node);
                for pending in &mut link.unacked {
                    pending.sent_at = now;
                    self.counters.resent.fetch_add(1, Ordering::Relaxed);
                    let frame = self.frame(link.epoch, pending.seq, pending.body.clone());
                    self.send_frame(subject.clone(), frame);
                }
            }
        }
    }

    /// Writes this node's route changes; after a (re)start, first makes the bucket hold
    /// exactly the set this node has.
    async fn route_writer(
        self: Arc<Self>,
        store: kv::Store,
        mut changes: mpsc::UnboundedReceiver<(String, bool)>,
    ) {
        let node = self.config.node_id.clone();
        let mut mine: HashMap<String, String> = HashMap::new();
        // What the broker had before the link came up is in the channel already; take it
        // all, then reconcile the bucket with it.
        while let Ok((filter, present)) = changes.try_recv() {
            apply(&mut mine, &node, filter, present);
        }
        let prefix = format!("{node}.");
        let mut stale = Vec::new();
        if let Ok(mut keys) = store.keys().await {
            while let Some(Ok(key)) = keys.next().await {
                if key.starts_with(&prefix) && !mine.contains_key(&key) {
                    stale.push(key);
                }
            }
        }
        for key in stale {
            self.write_route(&store, &key, None).await;
        }
        for (key, filter) in mine.clone() {
            self.write_route(&store, &key, Some(filter)).await;
        }
        while let Some((filter, present)) = changes.recv().await {
            let key = keys::route_key(&node, &filter);
            apply(&mut mine, &node, filter.clone(), present);
            self.write_route(&store, &key, present.then_some(filter)).await;
        }

        fn apply(mine: &mut HashMap<String, String>, node: &str, filter: String, present: bool) {
            let key = keys::route_key(node, &filter);
            if present {
                mine.insert(key, filter);
            } else {
                mine.remove(&key);
            }
        }
    }

    async fn write_route(&self, store: &kv::Store, key: &str, filter: Option<String>) {
        loop {
            let result = match &filter {
                Some(filter) => store
                    .put(key, Bytes::from(filter.clone().into_bytes()))
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string()),
                None => store.delete(key).await.map_err(|e| e.to_string()),
            };
            match result {
                Ok(()) => {
                    self.counters.route_writes.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(error) => {
                    tracing::warn!(event = "cluster.route_write_failed", %error, "cannot write a route: {error}; trying again");
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        }
    }

    /// Turns the other nodes' route entries into events, keeping which filter each key held.
    async fn route_watcher(self: Arc<Self>, store: kv::Store, events: mpsc::UnboundedSender<Event>) {
        let own = format!("{}.", self.config.node_id);
        let mut known: HashMap<String, (Arc<str>, String)> = HashMap::new();
        let mut told = false;
        loop {
            let mut watch = watch_bucket(&store, "routes").await;
            if !told && store.status().await.is_ok_and(|status| status.values() == 0) {
                told = true;
                let _ = events.send(Event::RoutesKnown);
            }
            while let Some(entry) = watch.next().await {
                let Ok(entry) = entry else {
                    break;
                };
                // The last of what the bucket held when the watch began (or a later one).
                let caught_up = !told && entry.delta == 0;
                if let Some(event) = route_change(&own, &entry, &mut known) {
                    let _ = events.send(event);
                }
                if caught_up {
                    told = true;
                    let _ = events.send(Event::RoutesKnown);
                }
            }
            // The watch ended (the connection went and came back): watch again; entries
            // already known are not told twice.
            tokio::time::sleep(RETRY_AFTER).await;
        }
    }

    /// Writes the retained messages set here, in the order they were set.
    async fn retained_writer(
        self: Arc<Self>,
        store: kv::Store,
        mut changes: mpsc::UnboundedReceiver<(String, Bytes)>,
    ) {
        while let Some((topic, packet)) = changes.recv().await {
            let key = keys::hashed(&topic);
            loop {
                match store.put(&key, packet.clone()).await {
                    Ok(_) => break,
                    Err(error) => {
                        tracing::warn!(event = "cluster.retained_write_failed", %error, "cannot share the retained message of {topic:?}: {error}; trying again");
                        tokio::time::sleep(RETRY_AFTER).await;
                    }
                }
            }
        }
    }

    /// Turns the retained bucket (its current content, then each change) into events.
    async fn retained_watcher(self: Arc<Self>, store: kv::Store, events: mpsc::UnboundedSender<Event>) {
        loop {
            let mut watch = watch_bucket(&store, "retained messages").await;
            while let Some(Ok(entry)) = watch.next().await {
                if entry.operation != kv::Operation::Put {
                    continue;
                }
                let written = std::time::SystemTime::from(entry.created);
                let age = written.elapsed().unwrap_or_default();
                let _ = events.send(Event::Retained {
                    packet: entry.value,
                    age,
                });
            }
            tokio::time::sleep(RETRY_AFTER).await;
        }
    }

    /// Writes the sessions' checkpoints (or their deletion), in the order they changed.
    async fn session_writer(
        self: Arc<Self>,
        store: kv::Store,
        mut changes: mpsc::UnboundedReceiver<(String, String, Option<Bytes>)>,
    ) {
        while let Some((key, client_id, checkpoint)) = changes.recv().await {
            loop {
                let written = match &checkpoint {
                    Some(bytes) => store
                        .put(&key, bytes.clone())
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string()),
                    None => store.delete(&key).await.map_err(|e| e.to_string()),
                };
                match written {
                    Ok(()) => break,
                    Err(error) => {
                        tracing::warn!(event = "cluster.session_write_failed", %error, "cannot write the session of {client_id:?}: {error}; trying again");
                        tokio::time::sleep(RETRY_AFTER).await;
                    }
                }
            }
        }
    }

    async fn fetch_checkpoint(&self, client_id: &str) -> Result<Option<Bytes>, String> {
        let deadline = tokio::time::Instant::now() + CLAIM_WITHIN;
        let store = once_set(&self.sessions_store, Some(deadline))
            .await
            .ok_or("JetStream has not answered yet")?;
        match tokio::time::timeout_at(deadline, store.get(keys::hashed(client_id))).await {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(error)) => {
                tracing::warn!(event = "cluster.session_read_failed", %error, "cannot read the session of {client_id:?}: {error}");
                Err(error.to_string())
            }
            Err(_) => Err(format!("no answer within {CLAIM_WITHIN:?}")),
        }
    }

    /// The keys of the session checkpoints in the sessions bucket (not of the floors).
    async fn list_checkpoint_keys(&self) -> Result<HashSet<String>, String> {
        let deadline = tokio::time::Instant::now() + REPLAY_WITHIN;
        let store = once_set(&self.sessions_store, Some(deadline))
            .await
            .ok_or("JetStream has not answered yet")?;
        let list = async {
            let mut keys = store.keys().await.map_err(|e| e.to_string())?;
            let mut found = HashSet::new();
            while let Some(key) = keys.next().await {
                let key = key.map_err(|e| e.to_string())?;
                if !key.starts_with(keys::FLOOR_PREFIX) {
                    found.insert(key);
                }
            }
            Ok(found)
        };
        tokio::time::timeout_at(deadline, list)
            .await
            .map_err(|_| format!("no answer within {REPLAY_WITHIN:?}"))?
    }

    /// Every session checkpoint in the sessions bucket (not the floors beside them).
    async fn fetch_checkpoints(&self) -> Result<Vec<Bytes>, String> {
        let deadline = tokio::time::Instant::now() + REPLAY_WITHIN;
        let store = once_set(&self.sessions_store, Some(deadline))
            .await
            .ok_or("JetStream has not answered yet")?;
        let read = async {
            let found = self.list_checkpoint_keys().await?;
            let mut checkpoints = Vec::with_capacity(found.len());
            for key in found {
                if let Some(value) = store.get(&key).await.map_err(|e| e.to_string())? {
                    checkpoints.push(value);
                }
            }
            Ok::<_, String>(checkpoints)
        };
        tokio::time::timeout_at(deadline, read)
            .await
            .map_err(|_| format!("no answer within {REPLAY_WITHIN:?}"))?
    }

    /// Keeps the owners map and reports each change of owner, in the bucket's order.
    async fn owner_watcher(self: Arc<Self>, store: kv::Store, events: mpsc::UnboundedSender<Event>) {
        loop {
            let mut watch = watch_bucket(&store, "client ownership").await;
            while let Some(Ok(entry)) = watch.next().await {
                if entry.operation != kv::Operation::Put {
                    continue;
                }
                let Some((node, _, client_id)) = parse_owner(&entry.value) else {
                    continue;
                };
                let node: Arc<str> = if *node == *self.me {
                    self.me.clone()
                } else {
                    Arc::from(node)
                };
                if self.note_owner(client_id, &node, entry.revision) {
                    let _ = events.send(Event::Owner {
                        client_id: client_id.to_owned(),
                        node,
                        revision: entry.revision,
                    });
                }
            }
            tokio::time::sleep(RETRY_AFTER).await;
        }
    }

    /// Records that `node` owns `client_id` since `revision`, unless a later revision is
    /// known. True if the map changed.
    fn note_owner(&self, client_id: &str, node: &Arc<str>, revision: u64) -> bool {
        let mut owners = self.owners.lock();
        match owners.get_mut(client_id) {
            Some(known) if known.1 >= revision => false,
            Some(known) => {
                *known = (node.clone(), revision);
                true
            }
            None => {
                owners.insert(client_id.to_owned(), (node.clone(), revision));
                true
            }
        }
    }

    /// Claims `client_id` for this node: a compare-and-set of its owner key on the revision
    /// just read. The value carries a token of this claim alone, so that a write whose answer
    /// was lost (a timeout says nothing of whether it landed) is settled by reading the key
    /// again: the token there means it landed; a newer revision without it means it never
    /// will (its expected revision is gone). A write is never abandoned in doubt: after
    /// [`CLAIM_WITHIN`] no new claim starts, but one in doubt is settled first, for up to
    /// [`SETTLE_WITHIN`] more, since a claim that wins in the bucket closes the client's
    /// connections on every other node.
    async fn claim_owner(&self, client_id: &str) -> Result<u64, ClaimError> {
        let deadline = tokio::time::Instant::now() + CLAIM_WITHIN;
        let Some(store) = once_set(&self.owners_store, Some(deadline)).await else {
            return Err(ClaimError::Unavailable("JetStream has not answered yet".into()));
        };
        let key = keys::hashed(client_id);
        let token = format!(
            "{:x}.{:x}",
            self.epoch,
            self.counters.claims_started.fetch_add(1, Ordering::Relaxed)
        );
        let value = Bytes::from(format!("{}\n{token}\n{client_id}", self.me));
        let give_up = deadline + SETTLE_WITHIN;
        let mut pause = Duration::from_millis(1);
        let mut last_error = String::new();
        let mut conflicts = 0_u32;
        // The revision a write in doubt expected, if one is.
        let mut in_doubt: Option<u64> = None;
        loop {
            let now = tokio::time::Instant::now();
            // A node cut off from the cluster (its heartbeats do not go through) does not
            // wait to settle a write in doubt: that write cannot land while it is cut off,
            // and the client goes to a node that can answer.
            let limit = if self.counters.connected.load(Ordering::Relaxed) {
                give_up
            } else {
                deadline
            };
            if now >= limit || (now >= deadline && in_doubt.is_none()) {
                break;
            }
            // Reading may be given up at any time: it changes nothing.
            let read = tokio::time::timeout_at(limit, store.entry(&key)).await;
            let expected = match read {
                Ok(Ok(entry)) => {
                    if let Some(entry) = &entry
                        && entry.operation == kv::Operation::Put
                        && parse_owner(&entry.value).is_some_and(|(_, held, _)| held == token)
                    {
                        self.note_owner(client_id, &self.me, entry.revision);
                        return Ok(entry.revision);
                    }
                    let revision = entry.map_or(0, |entry| entry.revision);
                    if in_doubt.is_some_and(|doubted| revision > doubted) {
                        // That write can no longer land, and did not.
                        in_doubt = None;
                        conflicts += 1;
                        if now >= deadline {
                            break;
                        }
                    }
                    Some(revision)
                }
                Ok(Err(error)) => {
                    last_error = error.to_string();
                    None
                }
                Err(_) => break,
            };
            if let Some(expected) = expected {
                // Awaited to its answer (JetStream's own timeout bounds it), unless this node
                // is cut off: a write given up on here could still land.
                let written =
                    tokio::time::timeout_at(limit, store.update(&key, value.clone(), expected)).await;
                let Ok(written) = written else {
                    last_error = "no answer in time".into();
                    in_doubt = in_doubt.or(Some(expected));
                    continue;
                };
                match written {
                    Ok(revision) => {
                        self.note_owner(client_id, &self.me, revision);
                        return Ok(revision);
                    }
                    Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                        // Someone else claimed it meanwhile; unless a write of ours in doubt
                        // was the one, which the next read tells.
                        if in_doubt.is_none() {
                            conflicts += 1;
                        }
                    }
                    Err(error) => {
                        last_error = error.to_string();
                        in_doubt = in_doubt.or(Some(expected));
                    }
                }
            }
            // Again, after a pause that grows, so that many claimants do not keep colliding.
            tokio::time::sleep(pause.mul_f64(0.5 + jitter())).await;
            pause = (pause * 2).min(Duration::from_millis(64));
        }
        if in_doubt.is_some() {
            tracing::warn!(
                event = "cluster.claim_in_doubt",
                client_id,
                "the claim of {client_id} was not answered and could not be settled in {:?}; if it landed, the client's connections elsewhere are closed",
                CLAIM_WITHIN + SETTLE_WITHIN
            );
        }
        // Unanswered while the heartbeats go through: busy, not cut off.
        if conflicts > 0 || self.counters.connected.load(Ordering::Relaxed) {
            Err(ClaimError::Contended)
        } else {
            Err(ClaimError::Unavailable(if last_error.is_empty() {
                "no answer in time".into()
            } else {
                last_error
            }))
        }
    }

    /// Takes `client_id` over from the node gone that owned it at `revision`: one
    /// compare-and-set on that revision, tried again while JetStream does not answer (it
    /// may be electing leaders for what that node led), for up to [`ADOPT_WITHIN`]. Any
    /// other claim since (the client came back somewhere, or another node took it) wins:
    /// `Contended`. Not tried by a node whose own heartbeats do not get through: cut off, it
    /// may be the one taken for gone, and a write that lands once the cut heals would close
    /// a client that never left its node.
    async fn adopt_owner(&self, client_id: &str, revision: u64) -> Result<u64, ClaimError> {
        if !self.counters.connected.load(Ordering::Relaxed) {
            return Err(ClaimError::Unavailable(
                "this node is cut off from the cluster".into(),
            ));
        }
        let deadline = tokio::time::Instant::now() + ADOPT_WITHIN;
        let Some(store) = once_set(&self.owners_store, Some(deadline)).await else {
            return Err(ClaimError::Unavailable("JetStream has not answered yet".into()));
        };
        let key = keys::hashed(client_id);
        let token = format!(
            "{:x}.{:x}",
            self.epoch,
            self.counters.claims_started.fetch_add(1, Ordering::Relaxed)
        );
        let value = Bytes::from(format!("{}\n{token}\n{client_id}", self.me));
        let mut last_error = String::from("no answer in time");
        let mut expected = revision;
        // Whether a write may have landed without its answer.
        let mut in_doubt = false;
        while tokio::time::Instant::now() < deadline {
            match tokio::time::timeout_at(deadline, store.update(&key, value.clone(), expected)).await {
                Ok(Ok(revision)) => {
                    self.note_owner(client_id, &self.me, revision);
                    return Ok(revision);
                }
                Ok(Err(error)) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    // An earlier try of this one whose answer was lost; or a revision this
                    // node's view had not caught up with, still the gone node's: tried on it.
                    match tokio::time::timeout_at(deadline, store.entry(&key)).await {
                        Ok(Ok(Some(entry))) if entry.operation == kv::Operation::Put => {
                            match parse_owner(&entry.value) {
                                Some((_, held, _)) if held == token => {
                                    self.note_owner(client_id, &self.me, entry.revision);
                                    return Ok(entry.revision);
                                }
                                Some((node, _, _)) if self.is_down(node) && entry.revision != expected => {
                                    expected = entry.revision;
                                    continue;
                                }
                                _ => return Err(ClaimError::Contended),
                            }
                        }
                        Ok(Ok(_)) => return Err(ClaimError::Contended),
                        _ => last_error = "the owner cannot be read".into(),
                    }
                }
                Ok(Err(error)) => {
                    last_error = error.to_string();
                    in_doubt = true;
                }
                Err(_) => {
                    in_doubt = true;
                    break;
                }
            }
            tokio::time::sleep(RETRY_AFTER).await;
        }
        // A write in doubt may have landed: this node would own the identifier without
        // holding its session. Read once more to know.
        if in_doubt
            && let Ok(Ok(Some(entry))) = tokio::time::timeout(ADOPT_WITHIN, store.entry(&key)).await
            && entry.operation == kv::Operation::Put
            && parse_owner(&entry.value).is_some_and(|(_, held, _)| held == token)
        {
            self.note_owner(client_id, &self.me, entry.revision);
            return Ok(entry.revision);
        }
        Err(ClaimError::Unavailable(last_error))
    }

    /// Moves the settled mark over each ticket as it settles, in the order given.
    async fn settle_tickets(self: Arc<Self>, mut tickets: mpsc::UnboundedReceiver<Settling>) {
        while let Some((ticket, settled)) = tickets.recv().await {
            let _ = settled.await;
            self.settled.send_replace(ticket);
        }
    }

    /// The message log's streams, created if missing; retried until JetStream answers.
    async fn log_streams(&self, js: &jetstream::Context) {
        for shard in 0..self.config.queue_shards.max(1) {
            let (name, subject) = keys::log_stream(&self.config.name, shard);
            let config = jetstream::stream::Config {
                name: name.clone(),
                subjects: vec![subject],
                num_replicas: self.config.replicas,
                storage: jetstream::stream::StorageType::File,
                max_age: self.config.queue_max_age,
                duplicate_window: Duration::from_secs(120),
                ..jetstream::stream::Config::default()
            };
            while let Err(error) = js.create_or_update_stream(config.clone()).await {
                tracing::debug!(event = "cluster.jetstream.waiting", %error, "waiting for JetStream to create {name}: {error}");
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }

    /// Writes the log in the order asked; each message's writes are awaited apart, so that
    /// many are in flight at once.
    async fn log_writer(
        self: Arc<Self>,
        js: jetstream::Context,
        mut requests: mpsc::UnboundedReceiver<LogRequest>,
    ) {
        let shards = self.config.queue_shards.max(1);
        while let Some((client_ids, packet, done)) = requests.recv().await {
            let mut by_shard: HashMap<u16, Vec<String>> = HashMap::new();
            for client_id in client_ids {
                by_shard
                    .entry(keys::log_shard(&client_id, shards))
                    .or_default()
                    .push(client_id);
            }
            let mut writes = Vec::new();
            for (shard, ids) in by_shard {
                let subject = keys::log_stream(&self.config.name, shard).1;
                for group in LogEntry::split(ids) {
                    let entry = LogEntry {
                        client_ids: group,
                        packet: packet.clone(),
                    };
                    let id = format!(
                        "{}.{:x}.{:x}",
                        self.me,
                        self.epoch,
                        self.counters.log_entries.fetch_add(1, Ordering::Relaxed)
                    );
                    let bytes = entry.encode();
                    let sent = self.send_log_entry(&js, &subject, &id, bytes.clone()).await;
                    writes.push(LogWrite {
                        subject: subject.clone(),
                        id,
                        bytes,
                        client_ids: entry.client_ids,
                        sent,
                    });
                }
            }
            tokio::spawn(self.clone().settle_log(js.clone(), writes, done));
        }
    }

    async fn send_log_entry(
        &self,
        js: &jetstream::Context,
        subject: &str,
        id: &str,
        entry: Bytes,
    ) -> Option<jetstream::context::PublishAckFuture> {
        let publish = jetstream::message::PublishMessage::build()
            .payload(entry)
            .message_id(id);
        match js.send_publish(subject.to_owned(), publish).await {
            Ok(ack) => Some(ack),
            Err(error) => {
                tracing::debug!(event = "cluster.log_send_failed", %error, "cannot send to the message log: {error}");
                None
            }
        }
    }

    /// Waits for a message's log writes, writing again what failed (the same message id:
    /// JetStream keeps one of repeated writes), for up to [`LOG_WITHIN`].
    async fn settle_log(
        self: Arc<Self>,
        js: jetstream::Context,
        writes: Vec<LogWrite>,
        done: oneshot::Sender<bool>,
    ) {
        let give_up = Instant::now() + LOG_WITHIN;
        let mut all = true;
        for LogWrite {
            subject,
            id,
            bytes,
            client_ids,
            mut sent,
        } in writes
        {
            loop {
                let error = match sent.take() {
                    Some(ack) => match ack.await {
                        Ok(ack) => {
                            self.counters.logged.fetch_add(1, Ordering::Relaxed);
                            let mut floors = self.floors.lock();
                            for client_id in client_ids {
                                let floor = floors.entry(client_id).or_default();
                                floor.through = floor.through.max(ack.sequence);
                            }
                            break;
                        }
                        Err(error) => error.to_string(),
                    },
                    None => "not sent".to_owned(),
                };
                if Instant::now() >= give_up {
                    all = false;
                    self.counters.log_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(event = "cluster.log_failed", %error, "a message for persistent sessions ({}) could not be written to the cluster's message log in {LOG_WITHIN:?} ({error}): it is queued here only and is lost if this node is", client_ids.join(", "));
                    break;
                }
                tokio::time::sleep(RETRY_AFTER).await;
                sent = self.send_log_entry(&js, &subject, &id, bytes.clone()).await;
            }
        }
        let _ = done.send(all);
    }

    /// What the log holds for `client_id` past its floor.
    async fn read_log(&self, client_id: &str) -> Result<Replay, String> {
        let js = once_set(&self.jetstream, None).await.ok_or("no JetStream")?;
        let sessions = once_set(&self.sessions_store, None)
            .await
            .ok_or("no sessions bucket")?;
        let floor = match sessions
            .get(keys::floor_key(client_id))
            .await
            .map_err(|e| e.to_string())?
        {
            None => 0,
            Some(bytes) => parse_floor(&bytes).unwrap_or_else(|| {
                tracing::warn!(
                    event = "cluster.bad_floor",
                    client_id,
                    "the log position of {client_id} cannot be read; its log is replayed whole"
                );
                0
            }),
        };
        let (name, subject) = keys::log_stream(
            &self.config.name,
            keys::log_shard(client_id, self.config.queue_shards),
        );
        let mut stream = js.get_stream(&name).await.map_err(|e| e.to_string())?;
        let state = stream.info().await.map_err(|e| e.to_string())?.state.clone();
        let mut replay = Replay {
            messages: Vec::new(),
            through: floor.max(state.last_sequence),
        };
        if state.last_sequence <= floor || state.messages == 0 {
            return Ok(replay);
        }
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                filter_subject: subject,
                deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: floor + 1,
                },
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
        while let Some(message) = messages.next().await {
            let message = message.map_err(|e| e.to_string())?;
            let (seq, published) = {
                let info = message.info().map_err(|e| e.to_string())?;
                (info.stream_sequence, info.published)
            };
            match LogEntry::decode(message.payload.clone()) {
                Ok(entry) if entry.names(client_id) => {
                    let age = std::time::SystemTime::from(published)
                        .elapsed()
                        .unwrap_or_default();
                    replay.messages.push((entry.packet, age));
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(event = "cluster.bad_log_entry", seq, %error, "log entry {seq} of {name} cannot be read ({error}); skipped");
                }
            }
            if seq >= state.last_sequence {
                break;
            }
        }
        Ok(replay)
    }

    /// Says every `cluster_heartbeat_interval` that this node lives: on a plain NATS subject,
    /// which needs only the servers' routes (so that a JetStream election, which stalls the
    /// buckets for seconds, does not make the nodes take each other for gone), and in the
    /// nodes bucket, which a node that starts reads to learn the others.
    async fn heartbeat(self: Arc<Self>, client: async_nats::Client, store: kv::Store) {
        let mut tick = tokio::time::interval(self.config.heartbeat_interval);
        let value = Bytes::from(self.epoch.to_string());
        let subject = keys::heartbeats(&self.config.name);
        let beat = Bytes::from(format!("{}\n{}", self.config.node_id, self.epoch));
        // The bucket's writes in a loop of their own: one that waits (a JetStream election,
        // a busy moment) must not hold back the plain heartbeats. Their success is what
        // "connected" (JetStream answers) means.
        let writer = {
            let node = self.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(node.config.heartbeat_interval);
                loop {
                    tick.tick().await;
                    match store.put(&node.config.node_id, value.clone()).await {
                        Ok(_) => node.counters.connected.store(true, Ordering::Relaxed),
                        Err(error) => {
                            node.counters.connected.store(false, Ordering::Relaxed);
                            tracing::debug!(event = "cluster.heartbeat_failed", %error, "heartbeat not written: {error}");
                        }
                    }
                }
            })
        };
        let _writer = AbortOnDrop(writer);
        loop {
            tick.tick().await;
            let _ = client.publish(subject.clone(), beat.clone()).await;
        }
    }

    async fn node_watcher(
        self: Arc<Self>,
        client: async_nats::Client,
        store: kv::Store,
        events: mpsc::UnboundedSender<Event>,
    ) {
        let (seen_tx, mut seen) = mpsc::unbounded_channel::<(Arc<str>, u64)>();
        let own = self.config.node_id.clone();
        let listener = {
            let seen_tx = seen_tx.clone();
            let own = own.clone();
            let subject = keys::heartbeats(&self.config.name);
            tokio::spawn(async move {
                loop {
                    if let Ok(mut beats) = client.subscribe(subject.clone()).await {
                        while let Some(beat) = beats.next().await {
                            let Some((node, epoch)) = std::str::from_utf8(&beat.payload)
                                .ok()
                                .and_then(|text| text.split_once('\n'))
                                .and_then(|(node, epoch)| Some((node, epoch.parse::<u64>().ok()?)))
                            else {
                                continue;
                            };
                            if node != own {
                                let _ = seen_tx.send((Arc::from(node), epoch));
                            }
                        }
                    }
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            })
        };
        let watcher = {
            let store = store.clone();
            let grace = self.config.node_down_grace;
            tokio::spawn(async move {
                loop {
                    if let Ok(mut watch) = store.watch_with_history(">").await {
                        while let Some(Ok(entry)) = watch.next().await {
                            if entry.key == own || entry.operation != kv::Operation::Put {
                                continue;
                            }
                            // A heartbeat written before the grace (the last one of a node
                            // that is gone, read again when the watch starts) says nothing
                            // of now.
                            let age = std::time::SystemTime::from(entry.created)
                                .elapsed()
                                .unwrap_or_default();
                            if age > grace {
                                continue;
                            }
                            let epoch = std::str::from_utf8(&entry.value)
                                .ok()
                                .and_then(|text| text.parse().ok())
                                .unwrap_or_default();
                            let _ = seen_tx.send((Arc::from(entry.key.as_str()), epoch));
                        }
                    }
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            })
        };
        let mut tick = tokio::time::interval(self.config.heartbeat_interval);
        loop {
            tokio::select! {
                heard = seen.recv() => {
                    let Some((node, epoch)) = heard else { break };
                    let mut nodes = self.nodes.lock();
                    let entry = nodes.entry(node.clone()).or_insert(NodeSeen { epoch, at: Instant::now(), down: false });
                    if entry.epoch != epoch {
                        tracing::info!(event = "cluster.node_restarted", node = %node, "cluster node {node} started afresh");
                        self.restarted(&node);
                    }
                    entry.epoch = epoch;
                    entry.at = Instant::now();
                    if entry.down {
                        entry.down = false;
                        self.down.lock().remove(&node);
                        tracing::info!(event = "cluster.node_up", node = %node, "cluster node {node} is back");
                        let _ = events.send(Event::NodeUp(node));
                    }
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    let mut gone = Vec::new();
                    for (node, seen) in self.nodes.lock().iter_mut() {
                        if !seen.down && now.duration_since(seen.at) > self.config.node_down_grace {
                            seen.down = true;
                            gone.push(node.clone());
                        }
                    }
                    for node in gone {
                        tracing::warn!(event = "cluster.node_down", node = %node, "cluster node {node} missed its heartbeats for {:?}: taken for gone", self.config.node_down_grace);
                        self.down.lock().insert(node.clone());
                        self.give_up(&node);
                        let _ = events.send(Event::NodeDown(node));
                    }
                }
            }
        }
        watcher.abort();
        listener.abort();
    }

    /// Forwards to a gone node are not waited for any longer.
    fn give_up(&self, node: &Arc<str>) {
        if let Some(link) = self.links.lock().get_mut(node) {
            for mut pending in link.unacked.drain(..) {
                self.counters.given_up.fetch_add(1, Ordering::Relaxed);
                pending.answer(false);
            }
            // Those are not sent again: the node, should it come back, starts the link
            // afresh instead of waiting for them.
            link.epoch = epoch().max(link.epoch + 1);
            link.next_seq = 0;
        }
    }

    /// `node` started afresh (a new epoch): what it had not acknowledged may have been
    /// queued there for sessions it no longer has. Each such forward is answered as given
    /// up (the broker then sees that the persistent sessions it matches get it), and is
    /// still sent again to the node's new run, for its subscribers.
    fn restarted(&self, node: &Arc<str>) {
        if let Some(link) = self.links.lock().get_mut(node) {
            for pending in &mut link.unacked {
                if pending.done.is_some() {
                    self.counters.given_up.fetch_add(1, Ordering::Relaxed);
                    pending.answer(false);
                }
            }
        }
    }
}

impl Cluster for NatsCluster {
    fn node_id(&self) -> &str {
        &self.config.node_id
    }

    fn route_added(&self, filter: &str) {
        let _ = self.routes.send((filter.to_owned(), true));
    }

    fn route_removed(&self, filter: &str) {
        let _ = self.routes.send((filter.to_owned(), false));
    }

    fn retained_changed(&self, topic: &str, packet: Bytes) {
        let _ = self.retained.send((topic.to_owned(), packet));
    }

    fn forward(&self, nodes: &[Arc<str>], packet: Bytes, qos: QoS) -> Vec<oneshot::Receiver<bool>> {
        let mut waits = Vec::new();
        let down = self.down.lock();
        for node in nodes {
            if down.contains(node) {
                // Given up at once: it may have held persistent sessions this message is
                // for, which the broker then looks after (they live on elsewhere).
                if qos != QoS::AtMostOnce {
                    self.counters.given_up.fetch_add(1, Ordering::Relaxed);
                    let (done, wait) = oneshot::channel();
                    let _ = done.send(false);
                    waits.push(wait);
                }
                continue;
            }
            if qos == QoS::AtMostOnce && self.outgoing_bytes.load(Ordering::Relaxed) >= OUTGOING_QOS0_LIMIT {
                self.counters.given_up.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.counters.forwarded_out.fetch_add(1, Ordering::Relaxed);
            let subject = self.inbox(node);
            if qos == QoS::AtMostOnce {
                let frame = self.frame(self.epoch, 0, Body::Forward(packet.clone()));
                self.send_frame(subject, frame);
                continue;
            }
            let mut links = self.links.lock();
            let link = links
                .entry(node.clone())
                .or_insert_with(|| LinkOut::new(self.epoch));
            link.next_seq += 1;
            let frame = self.frame(link.epoch, link.next_seq, Body::Forward(packet.clone()));
            let (done, wait) = oneshot::channel();
            link.unacked.push_back(Pending {
                seq: link.next_seq,
                body: Body::Forward(packet.clone()),
                sent_at: Instant::now(),
                done: Some(done),
            });
            waits.push(wait);
            self.send_frame(subject, frame);
        }
        waits
    }

    fn deliver(&self, node: &Arc<str>, client_ids: Vec<String>, packet: Bytes) -> oneshot::Receiver<bool> {
        let (done, wait) = oneshot::channel();
        if self.down.lock().contains(node) {
            let _ = done.send(false);
            return wait;
        }
        self.counters.forwarded_out.fetch_add(1, Ordering::Relaxed);
        let body = Body::Deliver(LogEntry { client_ids, packet }.encode());
        let mut links = self.links.lock();
        let link = links
            .entry(node.clone())
            .or_insert_with(|| LinkOut::new(self.epoch));
        link.next_seq += 1;
        let frame = self.frame(link.epoch, link.next_seq, body.clone());
        link.unacked.push_back(Pending {
            seq: link.next_seq,
            body,
            sent_at: Instant::now(),
            done: Some(done),
        });
        self.send_frame(self.inbox(node), frame);
        wait
    }

    fn is_down(&self, node: &str) -> bool {
        self.down.lock().contains(node)
    }

    fn peers_up(&self) -> Vec<Arc<str>> {
        self.nodes
            .lock()
            .iter()
            .filter(|(node, seen)| !seen.down && ***node != *self.me)
            .map(|(node, _)| node.clone())
            .collect()
    }

    fn admits_unclaimed(&self) -> bool {
        self.config.netsplit_allow == crate::NetsplitAllow::Publish
    }

    fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }

    fn closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    fn routes_applied(&self) {
        self.routes_known.send_replace(true);
    }

    fn routes_known(&self) -> Option<watch::Receiver<bool>> {
        Some(self.routes_known.subscribe())
    }

    fn checkpoints(&self) -> FetchingAll<'_> {
        Box::pin(self.fetch_checkpoints())
    }

    fn checkpoint_keys(&self) -> ListingKeys<'_> {
        Box::pin(self.list_checkpoint_keys())
    }

    fn claim<'a>(&'a self, client_id: &'a str) -> Claiming<'a> {
        Box::pin(async move {
            let claimed = self.claim_owner(client_id).await;
            let counter = if claimed.is_ok() {
                &self.counters.claims
            } else {
                &self.counters.claims_failed
            };
            counter.fetch_add(1, Ordering::Relaxed);
            claimed
        })
    }

    fn owner(&self, client_id: &str) -> Option<(Arc<str>, u64)> {
        self.owners.lock().get(client_id).cloned()
    }

    fn orphans(&self) -> Vec<(String, u64)> {
        let down = self.down.lock().clone();
        if down.is_empty() {
            return Vec::new();
        }
        self.owners
            .lock()
            .iter()
            .filter(|(_, (node, _))| down.contains(node))
            .map(|(client_id, (_, revision))| (client_id.clone(), *revision))
            .collect()
    }

    fn adopt<'a>(&'a self, client_id: &'a str, revision: u64) -> Claiming<'a> {
        Box::pin(self.adopt_owner(client_id, revision))
    }

    fn node_down_grace(&self) -> Duration {
        self.config.node_down_grace
    }

    fn note_taken_over(&self) {
        self.counters.taken_over.fetch_add(1, Ordering::Relaxed);
    }

    fn note_adopted(&self) {
        self.counters.adopted.fetch_add(1, Ordering::Relaxed);
    }

    fn session_changed(&self, client_id: &str, checkpoint: Bytes) {
        let _ = self
            .sessions
            .send((keys::hashed(client_id), client_id.to_owned(), Some(checkpoint)));
    }

    fn session_ended(&self, client_id: &str) {
        let _ = self
            .sessions
            .send((keys::hashed(client_id), client_id.to_owned(), None));
        let _ = self
            .sessions
            .send((keys::floor_key(client_id), client_id.to_owned(), None));
        self.floors.lock().remove(client_id);
    }

    fn log(&self, client_ids: Vec<String>, packet: Bytes) -> oneshot::Receiver<bool> {
        let (done, receiver) = oneshot::channel();
        let _ = self.log.send((client_ids, packet, done));
        receiver
    }

    fn log_ticket(&self, client_ids: Vec<String>, packet: Bytes) -> u64 {
        let mut tickets = self.tickets.lock();
        tickets.0 += 1;
        let ticket = tickets.0;
        let _ = tickets.1.send((ticket, self.log(client_ids, packet)));
        ticket
    }

    fn forward_ticket(&self) -> (u64, oneshot::Sender<bool>) {
        let (settle, settled) = oneshot::channel();
        let mut tickets = self.tickets.lock();
        tickets.0 += 1;
        let ticket = tickets.0;
        let _ = tickets.1.send((ticket, settled));
        (ticket, settle)
    }

    fn log_settled(&self) -> Option<watch::Receiver<u64>> {
        Some(self.settled.subscribe())
    }

    fn replay<'a>(&'a self, client_id: &'a str) -> Replaying<'a> {
        Box::pin(async move {
            let replay = tokio::time::timeout(REPLAY_WITHIN, self.read_log(client_id)).await;
            match replay {
                Ok(Ok(replay)) => {
                    self.counters
                        .replayed
                        .fetch_add(replay.messages.len() as u64, Ordering::Relaxed);
                    Some(replay)
                }
                Ok(Err(error)) => {
                    tracing::warn!(event = "cluster.replay_failed", client_id, %error, "cannot read the message log for {client_id}: {error}");
                    None
                }
                Err(_) => {
                    tracing::warn!(
                        event = "cluster.replay_failed",
                        client_id,
                        "cannot read the message log for {client_id} in {REPLAY_WITHIN:?}"
                    );
                    None
                }
            }
        })
    }

    fn logged_through(&self, client_id: &str, through: u64) {
        let mut floors = self.floors.lock();
        let floor = floors.entry(client_id.to_owned()).or_default();
        floor.through = floor.through.max(through);
    }

    fn floors_due(&self) -> Vec<(String, u64)> {
        self.floors
            .lock()
            .iter()
            .filter(|(_, floor)| floor.through > floor.written)
            .map(|(client_id, floor)| (client_id.clone(), floor.through))
            .collect()
    }

    fn floor_reached(&self, client_id: &str, reached: Option<u64>) {
        let mut floors = self.floors.lock();
        let Some(reached) = reached else {
            floors.remove(client_id);
            return;
        };
        let Some(floor) = floors.get_mut(client_id) else {
            return;
        };
        if reached > floor.written {
            floor.written = reached;
            let _ = self.sessions.send((
                keys::floor_key(client_id),
                client_id.to_owned(),
                Some(Bytes::from(reached.to_string())),
            ));
        }
    }

    fn floor_interval(&self) -> Duration {
        self.config.checkpoint_interval
    }

    fn checkpoint<'a>(&'a self, client_id: &'a str) -> Fetching<'a> {
        Box::pin(self.fetch_checkpoint(client_id))
    }

    fn status(&self) -> ClusterStatus {
        let now = Instant::now();
        let mut nodes: Vec<NodeStatus> = self
            .nodes
            .lock()
            .iter()
            .map(|(node, seen)| NodeStatus {
                id: node.to_string(),
                up: !seen.down,
                epoch: seen.epoch,
                last_heard: now.duration_since(seen.at),
                in_flight: self.links.lock().get(node).map_or(0, |link| link.unacked.len()),
            })
            .collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        let c = &self.counters;
        ClusterStatus {
            cluster: self.config.name.clone(),
            node_id: self.config.node_id.clone(),
            connected: c.connected.load(Ordering::Relaxed),
            nodes,
            forwarded_out: c.forwarded_out.load(Ordering::Relaxed),
            forwarded_in: c.forwarded_in.load(Ordering::Relaxed),
            resent: c.resent.load(Ordering::Relaxed),
            given_up: c.given_up.load(Ordering::Relaxed),
            bad_frames: c.bad_frames.load(Ordering::Relaxed),
            out_of_order: c.out_of_order.load(Ordering::Relaxed),
            route_writes: c.route_writes.load(Ordering::Relaxed),
            claims: c.claims.load(Ordering::Relaxed),
            claims_failed: c.claims_failed.load(Ordering::Relaxed),
            taken_over: c.taken_over.load(Ordering::Relaxed),
            adopted: c.adopted.load(Ordering::Relaxed),
            logged: c.logged.load(Ordering::Relaxed),
            log_failed: c.log_failed.load(Ordering::Relaxed),
            replayed: c.replayed.load(Ordering::Relaxed),
        }
    }
}

/// Midge's JetStream KV buckets.
struct Buckets {
    routes: kv::Store,
    nodes: kv::Store,
    retained: kv::Store,
    owners: kv::Store,
    sessions: kv::Store,
}

/// What the broker's side hands the node's tasks.
struct Channels {
    outgoing: mpsc::UnboundedReceiver<(String, Bytes)>,
    routes: mpsc::UnboundedReceiver<(String, bool)>,
    retained: mpsc::UnboundedReceiver<(String, Bytes)>,
    sessions: mpsc::UnboundedReceiver<(String, String, Option<Bytes>)>,
    log: mpsc::UnboundedReceiver<LogRequest>,
}

/// A watch of every key of `store` (each key's current value, then each change), retried
/// until JetStream answers; `what` names the bucket's content in the warning.
async fn watch_bucket(store: &kv::Store, what: &str) -> kv::Watch {
    loop {
        match store.watch_with_history(">").await {
            Ok(watch) => return watch,
            Err(error) => {
                tracing::warn!(event = "cluster.watch_failed", %error, "cannot watch {what}: {error}");
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}

/// What a change in the routes bucket tells the broker, if anything: not this node's own
/// routes (`own` is its key prefix), nor what `known` holds already.
fn route_change(
    own: &str,
    entry: &kv::Entry,
    known: &mut HashMap<String, (Arc<str>, String)>,
) -> Option<Event> {
    if entry.key.starts_with(own) {
        return None;
    }
    let (node, _) = entry.key.split_once('.')?;
    match entry.operation {
        kv::Operation::Put => {
            let filter = String::from_utf8(entry.value.to_vec()).ok()?;
            let node: Arc<str> = Arc::from(node);
            if known
                .get(&entry.key)
                .is_some_and(|(n, f)| *n == node && *f == filter)
            {
                return None;
            }
            known.insert(entry.key.clone(), (node.clone(), filter.clone()));
            Some(Event::RouteAdded { node, filter })
        }
        kv::Operation::Delete | kv::Operation::Purge => {
            let (node, filter) = known.remove(&entry.key)?;
            Some(Event::RouteRemoved { node, filter })
        }
    }
}

/// Ends a task when dropped (with the task that owns it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The value of `cell` once it is set; `None` if it is not by `deadline`, or never will be.
async fn once_set<T: Clone>(
    cell: &watch::Sender<Option<T>>,
    deadline: Option<tokio::time::Instant>,
) -> Option<T> {
    let mut ready = cell.subscribe();
    let set = ready.wait_for(Option::is_some);
    let value = match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, set).await.ok()?,
        None => set.await,
    };
    value.ok()?.clone()
}

/// A session's floor in the log, as written: its decimal sequence number.
/// What a delivery frame carries: the PUBLISH and the sessions it is for. One that names no
/// session is an error, never taken for a forward (which would reach every subscriber).
fn delivery(entry: Bytes) -> Result<(Bytes, Vec<String>), String> {
    let entry = LogEntry::decode(entry)?;
    if entry.client_ids.is_empty() {
        return Err("a delivery naming no session".into());
    }
    Ok((entry.packet, entry.client_ids))
}

fn parse_floor(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// An owner value: `NODE\nTOKEN\nCLIENT_ID`, the token naming the claim that wrote it.
fn parse_owner(value: &[u8]) -> Option<(&str, &str, &str)> {
    let mut parts = std::str::from_utf8(value).ok()?.splitn(3, '\n');
    Some((parts.next()?, parts.next()?, parts.next()?))
}

/// A number in [0, 1), different on each call (for spreading retries).
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(epoch());
    (hasher.finish() >> 11) as f64 / (1_u64 << 53) as f64
}

/// A new epoch: the time in nanoseconds, which only grows across restarts of one node.
fn epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |since| u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use midge_codec::QoS;
    use tokio::sync::watch;

    use super::{LogEntry, NatsCluster, OUTGOING_QOS0_LIMIT, delivery, parse_floor, parse_owner};
    use crate::{Cluster, ClusterConfig};

    /// A floor that is not a sequence number is not read as one (the session's shard is then
    /// replayed whole, with a warning: duplicates, never a loss).
    #[test]
    fn a_delivery_names_its_sessions_or_is_refused() {
        let packet = Bytes::from_static(b"\x32\x08\x00\x01a\x00\x01\x00hi");
        let entry = |client_ids: Vec<String>| {
            LogEntry {
                client_ids,
                packet: packet.clone(),
            }
            .encode()
        };
        assert_eq!(
            delivery(entry(vec!["s1".into(), "s2".into()])),
            Ok((packet.clone(), vec!["s1".to_owned(), "s2".to_owned()]))
        );
        assert!(
            delivery(entry(Vec::new())).is_err(),
            "a delivery naming no session"
        );
        // Cut anywhere before its message (a message cut short is the broker's to refuse).
        let whole = entry(vec!["s1".into()]);
        for len in 0..=whole.len() - packet.len() {
            assert!(
                delivery(whole.slice(..len)).is_err(),
                "{len} bytes of {}",
                whole.len()
            );
        }
    }

    #[test]
    fn floors_are_decimal_sequence_numbers() {
        assert_eq!(parse_floor(b"0"), Some(0));
        assert_eq!(parse_floor(b"18446744073709551615"), Some(u64::MAX));
        for bad in [&b""[..], b"-1", b"12a", b" 12", b"18446744073709551616", b"\xff"] {
            assert_eq!(parse_floor(bad), None, "{bad:?}");
        }
    }

    /// A node that cannot hand frames to NATS (none answers here) queues them up to a bound,
    /// then drops QoS 0 forwards and counts them; QoS 1 forwards are never dropped this way
    /// (the peer window bounds them).
    #[tokio::test]
    async fn qos_0_forwards_beyond_the_outgoing_bound_are_dropped_and_counted() {
        let mut config = ClusterConfig::new("test", "n1");
        config.nats_urls = vec!["nats://127.0.0.1:1".to_owned()];
        let (_stop_tx, stop) = watch::channel(false);
        let (cluster, _events) = NatsCluster::start(config, stop);
        let nodes: Vec<Arc<str>> = vec![Arc::from("n2")];
        let packet = Bytes::from(vec![0u8; 64 << 10]);
        let fit = OUTGOING_QOS0_LIMIT / packet.len();
        for _ in 0..fit + 10 {
            cluster.forward(&nodes, packet.clone(), QoS::AtMostOnce);
        }
        let status = cluster.status();
        assert!((9..=10).contains(&status.given_up), "dropped {}", status.given_up);
        assert_eq!(status.forwarded_out, fit as u64 + 10 - status.given_up);
        let waits = cluster.forward(&nodes, packet, QoS::AtLeastOnce);
        assert_eq!(waits.len(), 1, "a QoS 1 forward is queued all the same");
        assert_eq!(cluster.status().given_up, status.given_up);
    }

    #[test]
    fn owner_values_name_node_claim_and_identifier() {
        assert_eq!(parse_owner(b"n1\nabc.1\nsensor"), Some(("n1", "abc.1", "sensor")));
        // The identifier is last and may hold anything, a line break included.
        assert_eq!(parse_owner(b"n1\nabc.1\na\nb"), Some(("n1", "abc.1", "a\nb")));
        assert_eq!(parse_owner(b"n1\nabc.1\n"), Some(("n1", "abc.1", "")));
        // Without a token (or not text): not an owner this node can read.
        assert_eq!(parse_owner(b"n1\nsensor"), None);
        assert_eq!(parse_owner(b"n1\n\xff\nsensor"), None);
    }
}
