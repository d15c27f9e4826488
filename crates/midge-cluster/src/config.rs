//! What a node of a cluster is told by its configuration file (the `cluster_*` directives,
//! read by `midge-server`'s configuration module). Plain values; nothing here opens a socket
//! or a file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A node's cluster settings. Present only when `cluster_name` is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `cluster_name`: names the cluster's subjects, buckets and streams; every node of one
    /// cluster has the same.
    pub name: String,
    /// `cluster_node_id`: this node, stable across restarts and unique in the cluster.
    pub node_id: String,
    /// `cluster_nats_url`: the NATS servers to connect to, tried in turn. Empty with
    /// `cluster_nats_server`: the supervised server's listen address.
    pub nats_urls: Vec<String>,
    /// `cluster_nats_username` and `cluster_nats_password`.
    pub nats_user: Option<(String, String)>,
    /// `cluster_nats_credentials`: a NATS `.creds` file (JWT and nkey seed).
    pub nats_credentials: Option<PathBuf>,
    /// `cluster_nats_cafile`: the CA that signs the NATS servers' certificates (turns TLS on).
    pub nats_cafile: Option<PathBuf>,
    /// `cluster_nats_certfile` and `cluster_nats_keyfile`: this node's client certificate.
    pub nats_client_cert: Option<(PathBuf, PathBuf)>,
    /// `cluster_nats_server` and the `cluster_nats_*` options of a server Midge runs itself.
    pub nats_server: Option<NatsServerConfig>,
    /// `cluster_replicas`: JetStream replicas of Midge's streams and buckets. Default: 3.
    pub replicas: usize,
    /// `cluster_queue_shards`: message-log streams for persistent sessions. Default: 8.
    /// Fixed when the cluster is first formed: a session's messages are in the shard its
    /// client identifier hashes to.
    pub queue_shards: u16,
    /// `cluster_queue_max_age`: how long the message log keeps a message. Default: 7 days.
    pub queue_max_age: Duration,
    /// `cluster_checkpoint_interval`: how often the sessions' positions in the message log
    /// are written. Default: 1 s.
    pub checkpoint_interval: Duration,
    /// `cluster_sync`: when the NATS servers Midge runs sync JetStream writes to disk.
    pub sync: SyncPolicy,
    /// `cluster_node_down_grace`: how long a node may miss its heartbeats before the others
    /// take it for gone. Default: 30 s.
    pub node_down_grace: Duration,
    /// `cluster_heartbeat_interval`: how often this node says it is alive. Default: 1 s.
    pub heartbeat_interval: Duration,
    /// `cluster_peer_window`: QoS 1 and 2 messages in flight to other nodes at once, waiting
    /// for their acknowledgement. Default: 4096.
    pub peer_window: u16,
    /// `cluster_netsplit_allow`: what a node cut off from the cluster's majority still does.
    pub netsplit_allow: NetsplitAllow,
}

impl ClusterConfig {
    /// A cluster with every setting at its default.
    pub fn new(name: &str, node_id: &str) -> Self {
        Self {
            name: name.to_owned(),
            node_id: node_id.to_owned(),
            nats_urls: Vec::new(),
            nats_user: None,
            nats_credentials: None,
            nats_cafile: None,
            nats_client_cert: None,
            nats_server: None,
            replicas: 3,
            queue_shards: 8,
            queue_max_age: Duration::from_secs(7 * 86_400),
            checkpoint_interval: Duration::from_secs(1),
            sync: SyncPolicy::Always,
            node_down_grace: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(1),
            peer_window: 4096,
            netsplit_allow: NetsplitAllow::Publish,
        }
    }

    /// The URLs to connect to: the configured ones, else the supervised server's.
    pub fn urls(&self) -> Vec<String> {
        if !self.nats_urls.is_empty() {
            return self.nats_urls.clone();
        }
        self.nats_server
            .iter()
            .map(|server| format!("nats://{}", server.listen))
            .collect()
    }
}

/// Whether a name may be a cluster name or node id: it becomes part of NATS subjects, stream
/// and bucket names, which allow few characters.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A `nats-server` that Midge starts, watches and stops with itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsServerConfig {
    /// `cluster_nats_server`: the executable (version 2.14 or later).
    pub executable: PathBuf,
    /// `cluster_nats_listen`: where it serves clients (this node among them). Default:
    /// 127.0.0.1:4222.
    pub listen: SocketAddr,
    /// `cluster_nats_cluster_listen`: where it meets the other nodes' servers.
    pub cluster_listen: Option<SocketAddr>,
    /// `cluster_nats_routes`: the other nodes' cluster addresses.
    pub routes: Vec<String>,
    /// `cluster_nats_store`: JetStream's directory. Default: `midge-jetstream` under the
    /// persistence location, else the working directory.
    pub store: Option<PathBuf>,
    /// `cluster_nats_monitor`: its HTTP monitoring port (`/varz`, `/healthz`), if any.
    pub monitor: Option<SocketAddr>,
}

/// When JetStream writes reach the disk before they are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Every write (NATS `sync_interval: always`): the only setting that keeps an
    /// acknowledged message through a power cut.
    Always,
    /// Every so often.
    Every(Duration),
}

/// What a node without the cluster's majority still does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetsplitAllow {
    /// Nothing that needs the cluster: persistent sessions are refused.
    None,
    /// Local publishing and clean sessions go on; persistent sessions are refused.
    Publish,
}
