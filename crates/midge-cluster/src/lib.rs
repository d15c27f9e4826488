//! Midge's cluster: several nodes that serve as one broker.
//!
//! The broker sees a cluster through the [`Cluster`] trait: it tells the cluster its route
//! set (the filters with a subscriber here, from `midge_core::routes`), hands it the messages
//! other nodes want, and acts on the [`Event`]s the cluster reports (other nodes' routes,
//! messages forwarded here, nodes gone and back).
//!
//! - [`SingleNode`]: no cluster at all; a single node needs nothing else and never pays for
//!   the cluster.
//! - [`NatsCluster`] (`nats.rs`): the NATS JetStream backend (`docs/cluster.md`).
//! - `frame`: the frames nodes send each other; `keys`: subjects, buckets and keys; `log`:
//!   the entries of the message log that keeps persistent sessions' messages.
//! - `supervisor`: a `nats-server` Midge runs beside itself (`cluster_nats_server`).
//! - [`config`]: the settings (`cluster_*` directives).
//!
//! Nothing here knows MQTT beyond carrying PUBLISH packets as bytes: the broker encodes what
//! it forwards and decodes what it receives.

pub mod config;
pub mod frame;
pub mod keys;
pub mod log;
mod nats;
pub mod supervisor;

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use midge_codec::QoS;
use tokio::sync::{mpsc, oneshot, watch};

pub use config::{ClusterConfig, NatsServerConfig, NetsplitAllow, SyncPolicy};
pub use nats::NatsCluster;

/// What the broker asks of a cluster. Every method returns at once: the work is done by the
/// cluster's own tasks.
pub trait Cluster: Send + Sync + Debug {
    /// This node's id.
    fn node_id(&self) -> &str;
    /// `filter` got its first subscriber on this node.
    fn route_added(&self, filter: &str);
    /// `filter` lost its last subscriber on this node.
    fn route_removed(&self, filter: &str);
    /// `topic`'s retained message is now `packet` (an MQTT 5 PUBLISH; an empty payload
    /// clears it): shared with every node.
    fn retained_changed(&self, topic: &str, packet: Bytes);
    /// Sends an MQTT 5 PUBLISH packet to `nodes`. For QoS 1 and 2, one receiver per node
    /// says whether the node acknowledged it (true) or was given up (false: at once for a
    /// node known to be gone, to which nothing is sent).
    fn forward(&self, nodes: &[Arc<str>], packet: Bytes, qos: QoS) -> Vec<oneshot::Receiver<bool>>;
    /// Sends an MQTT 5 PUBLISH of QoS 1 or 2 to `node` for the sessions of `client_ids`
    /// there only (not for its other subscribers); the receiver says as for
    /// [`Cluster::forward`]. Without other nodes: false at once.
    fn deliver(&self, _node: &Arc<str>, _client_ids: Vec<String>, _packet: Bytes) -> oneshot::Receiver<bool> {
        let (done, receiver) = oneshot::channel();
        let _ = done.send(false);
        receiver
    }
    /// Whether `node` is taken for gone (it missed its heartbeats for the grace period).
    fn is_down(&self, _node: &str) -> bool {
        false
    }
    /// The other nodes this node hears from: every one it has heard and not taken for gone.
    fn peers_up(&self) -> Vec<Arc<str>> {
        Vec::new()
    }
    /// Makes this node the owner of `client_id` (compare-and-set in the cluster), so that
    /// a connection with that identifier on any other node is closed. Returns the ownership's
    /// revision, which only grows.
    fn claim<'a>(&'a self, client_id: &'a str) -> Claiming<'a>;
    /// The node that owns `client_id` as far as this node knows, with the revision.
    fn owner(&self, client_id: &str) -> Option<(Arc<str>, u64)>;
    /// The client identifiers owned, as far as this node knows, by nodes taken for gone,
    /// each with the revision of that ownership.
    fn orphans(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
    /// Makes this node the owner of `client_id` if it is still owned at `revision` (by a
    /// node that is gone): `Contended` if it was claimed since.
    fn adopt<'a>(&'a self, _client_id: &'a str, _revision: u64) -> Claiming<'a> {
        Box::pin(std::future::ready(Err(ClaimError::Unavailable(
            "no other nodes".into(),
        ))))
    }
    /// How long a node misses its heartbeats before it is taken for gone.
    fn node_down_grace(&self) -> Duration {
        Duration::from_secs(10)
    }
    /// The persistent session of `client_id` is now as `checkpoint` (opaque bytes) says.
    fn session_changed(&self, client_id: &str, checkpoint: Bytes);
    /// The persistent session of `client_id` ended.
    fn session_ended(&self, client_id: &str);
    /// The last checkpoint of `client_id`'s session, if the cluster has one; an error if the
    /// cluster cannot say.
    fn checkpoint<'a>(&'a self, client_id: &'a str) -> Fetching<'a>;
    /// Every persistent session's last checkpoint the cluster has, wherever it is.
    fn checkpoints(&self) -> FetchingAll<'_> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }
    /// The keys of those checkpoints ([`keys::hashed`] of each client identifier): which
    /// client identifiers have a persistent session, without reading the sessions.
    fn checkpoint_keys(&self) -> ListingKeys<'_> {
        Box::pin(std::future::ready(Ok(std::collections::HashSet::new())))
    }
    /// A connection here was closed because its client was claimed by another node.
    fn note_taken_over(&self) {}
    /// A session another node kept was taken up here.
    fn note_adopted(&self) {}
    /// Keeps `packet` (an MQTT 5 PUBLISH of QoS 1 or 2, just queued here for the persistent
    /// sessions of `client_ids`) in the cluster's message log, in the order of calls, so
    /// that it outlives this node. The receiver says when the log has it (true), or that it
    /// could not be written (false); the message is acknowledged after either. Without a
    /// log: true at once.
    fn log(&self, _client_ids: Vec<String>, _packet: Bytes) -> oneshot::Receiver<bool> {
        let (done, receiver) = oneshot::channel();
        let _ = done.send(true);
        receiver
    }
    /// As [`Cluster::log`], for a client's publish here: returns a ticket, and
    /// [`Cluster::log_settled`] reaches it once this and every earlier ticket is settled.
    /// Without a log: 0 (nothing to wait for).
    fn log_ticket(&self, _client_ids: Vec<String>, _packet: Bytes) -> u64 {
        0
    }
    /// A ticket for a message on its way to other nodes, settled once the returned sender is
    /// used or dropped (when every node it went to acknowledged it, or it was given up); it
    /// settles in turn with [`Cluster::log_ticket`]'s. Without a log: 0.
    fn forward_ticket(&self) -> (u64, oneshot::Sender<bool>) {
        (0, oneshot::channel().0)
    }
    /// The ticket up to which every [`Cluster::log_ticket`] is settled; `None` without a log.
    fn log_settled(&self) -> Option<watch::Receiver<u64>> {
        None
    }
    /// The messages the log holds for `client_id`'s session past its floor: what a node
    /// that lost the session had not seen delivered (replayed where the session is adopted).
    fn replay<'a>(&'a self, _client_id: &'a str) -> Replaying<'a> {
        Box::pin(std::future::ready(None))
    }
    /// Every message logged for `client_id` up to `through` is queued in its session here.
    fn logged_through(&self, _client_id: &str, _through: u64) {}
    /// The sessions whose floor may move, each with the log position it is queued through:
    /// the broker says of each whether it still has messages pending ([`Cluster::floor_reached`]).
    fn floors_due(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
    /// `client_id`'s session here has delivered (and had acknowledged) everything logged
    /// for it up to `floor`; `None`: the session is no longer here.
    fn floor_reached(&self, _client_id: &str, _floor: Option<u64>) {}
    /// How often the broker looks at [`Cluster::floors_due`].
    fn floor_interval(&self) -> Duration {
        Duration::from_secs(1)
    }
    /// Whether a clean session is admitted without a claim while the cluster cannot be
    /// reached (`cluster_netsplit_allow publish`), rather than refused.
    fn admits_unclaimed(&self) -> bool {
        true
    }
    /// The broker stops: from now on no forward is taken or acknowledged here (their
    /// senders look after them as for a node that restarts), so that none is queued for a
    /// session after its connection was closed and its client went to another node.
    fn close(&self) {}
    /// Whether [`Cluster::close`] was called.
    fn closing(&self) -> bool {
        false
    }
    /// The broker has taken in the routes of [`Event::RoutesKnown`].
    fn routes_applied(&self) {}
    /// Turns true once this node knows the other nodes' routes: until then a client's
    /// publish here would not reach their subscribers, so clients are not admitted. `None`
    /// without other nodes.
    fn routes_known(&self) -> Option<watch::Receiver<bool>> {
        None
    }
    /// The cluster as this node sees it.
    fn status(&self) -> ClusterStatus;
}

/// Messages read back from the log for one session.
#[derive(Debug, Default)]
pub struct Replay {
    /// Each MQTT 5 PUBLISH, oldest first, with how long ago it was logged.
    pub messages: Vec<(Bytes, Duration)>,
    /// The log position read up to.
    pub through: u64,
}

/// A replay under way: `None` if the log could not be read.
pub type Replaying<'a> = Pin<Box<dyn Future<Output = Option<Replay>> + Send + 'a>>;

/// A claim of a client identifier under way.
pub type Claiming<'a> = Pin<Box<dyn Future<Output = Result<u64, ClaimError>> + Send + 'a>>;

/// A checkpoint being fetched: `Ok(None)` if there is none, an error if the cluster did not
/// answer.
pub type Fetching<'a> = Pin<Box<dyn Future<Output = Result<Option<Bytes>, String>> + Send + 'a>>;

/// Every checkpoint being fetched: an error if the cluster did not answer.
pub type FetchingAll<'a> = Pin<Box<dyn Future<Output = Result<Vec<Bytes>, String>> + Send + 'a>>;

/// Keys being listed: an error if the cluster did not answer.
pub type ListingKeys<'a> =
    Pin<Box<dyn Future<Output = Result<std::collections::HashSet<String>, String>> + Send + 'a>>;

/// Why a client identifier could not be claimed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// The cluster's shared state cannot be reached (no JetStream majority here).
    #[error("the cluster cannot be reached: {0}")]
    Unavailable(String),
    /// Others claimed the same identifier again and again until the time ran out, or the
    /// cluster (reachable) did not answer in time: admitting the client unclaimed could leave
    /// it connected twice.
    #[error(
        "the client identifier is claimed by others at the same time, or the cluster is too busy to answer"
    )]
    Contended,
}

/// Something the broker must act on.
#[derive(Debug)]
pub enum Event {
    /// `node` has a subscriber to `filter`.
    RouteAdded { node: Arc<str>, filter: String },
    /// `node` no longer has a subscriber to `filter`.
    RouteRemoved { node: Arc<str>, filter: String },
    /// A message for this node's subscribers: an MQTT 5 PUBLISH packet. `ack`, if any, must
    /// be completed once the message is queued (and durable, with persistence).
    Forwarded {
        from: Arc<str>,
        packet: Bytes,
        /// The sessions it is for, if only some ([`Cluster::deliver`]); empty: every
        /// subscriber whose filter matches.
        sessions: Vec<String>,
        ack: Option<Ack>,
    },
    /// A topic's retained message, as set on some node (this one included), `age` ago: an
    /// MQTT 5 PUBLISH packet whose empty payload clears the topic.
    Retained { packet: Bytes, age: Duration },
    /// `node` owns `client_id` since `revision` (this node's own claims included).
    Owner {
        client_id: String,
        node: Arc<str>,
        revision: u64,
    },
    /// Every route the cluster held when this node joined has been told (as
    /// [`Event::RouteAdded`]): once the broker has taken them in, it says
    /// [`Cluster::routes_applied`].
    RoutesKnown,
    /// The node missed its heartbeats for the grace period.
    NodeDown(Arc<str>),
    /// The node was heard again.
    NodeUp(Arc<str>),
}

/// The acknowledgement a received forward owes its sender.
#[derive(Debug)]
pub struct Ack {
    node: Arc<str>,
    epoch: u64,
    seq: u64,
    to: mpsc::UnboundedSender<(Arc<str>, u64, u64)>,
}

impl Ack {
    /// The message is safely here.
    pub fn done(self) {
        let _ = self.to.send((self.node, self.epoch, self.seq));
    }
}

/// A snapshot of the cluster as one node sees it (`midge cluster status`, `$SYS`, metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterStatus {
    /// The cluster's name.
    pub cluster: String,
    /// This node.
    pub node_id: String,
    /// Whether this node reaches JetStream.
    pub connected: bool,
    /// The other nodes heard of.
    pub nodes: Vec<NodeStatus>,
    /// Messages forwarded to other nodes (one per node).
    pub forwarded_out: u64,
    /// Messages received from other nodes.
    pub forwarded_in: u64,
    /// Forwards sent again for want of an ack.
    pub resent: u64,
    /// Forwards given up because their node was gone, and QoS 0 forwards dropped while the
    /// outgoing frames were over their bound.
    pub given_up: u64,
    /// Frames that could not be read.
    pub bad_frames: u64,
    /// Forwards dropped for arriving after a gap (sent again by their node).
    pub out_of_order: u64,
    /// Writes of this node's routes.
    pub route_writes: u64,
    /// Client identifiers this node claimed.
    pub claims: u64,
    /// Claims that failed (cluster unreachable, or contended).
    pub claims_failed: u64,
    /// Connections here closed because another node claimed their client (fencing).
    pub taken_over: u64,
    /// Sessions taken up here from another node's checkpoint.
    pub adopted: u64,
    /// Messages written to the message log (one per shard they went to).
    pub logged: u64,
    /// Messages the log could not take (acknowledged all the same; a warning says so).
    pub log_failed: u64,
    /// Messages replayed from the log into sessions adopted here.
    pub replayed: u64,
}

/// Another node as this one sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// Its id.
    pub id: String,
    /// Heard within the grace period.
    pub up: bool,
    /// Its current epoch (changes when it restarts).
    pub epoch: u64,
    /// Since its last heartbeat.
    pub last_heard: Duration,
    /// QoS 1 and 2 forwards waiting for its ack.
    pub in_flight: usize,
}

/// No cluster: one node on its own.
#[derive(Debug, Default)]
pub struct SingleNode;

impl Cluster for SingleNode {
    fn node_id(&self) -> &str {
        ""
    }

    fn route_added(&self, _filter: &str) {}

    fn route_removed(&self, _filter: &str) {}

    fn retained_changed(&self, _topic: &str, _packet: Bytes) {}

    fn forward(&self, _nodes: &[Arc<str>], _packet: Bytes, _qos: QoS) -> Vec<oneshot::Receiver<bool>> {
        Vec::new()
    }

    fn claim<'a>(&'a self, _client_id: &'a str) -> Claiming<'a> {
        Box::pin(std::future::ready(Ok(0)))
    }

    fn owner(&self, _client_id: &str) -> Option<(Arc<str>, u64)> {
        None
    }

    fn session_changed(&self, _client_id: &str, _checkpoint: Bytes) {}

    fn session_ended(&self, _client_id: &str) {}

    fn checkpoint<'a>(&'a self, _client_id: &'a str) -> Fetching<'a> {
        Box::pin(std::future::ready(Ok(None)))
    }

    fn status(&self) -> ClusterStatus {
        ClusterStatus::default()
    }
}
