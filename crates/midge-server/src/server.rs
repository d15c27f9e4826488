//! The running broker: listening sockets, one task per connection, the timer that drives the
//! core's deadlines, and graceful shutdown.
//!
//! Shape after mini-redis's `server.rs`: bind first (so a bad address fails the start, and port
//! 0 reports the port it got), then accept until the shutdown future completes, then tell every
//! connection to close and give them a moment to say goodbye.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use midge_codec::ReasonCode;
use midge_core::{AuthMethods, Broker, BrokerConfig, ClientRules};
use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::accept_spin::AcceptSpin;
use crate::bridge::BridgePlan;
use crate::connection::{self, Admission, Username};
use crate::limits::{ConnectionCounters, LogThrottle, OpenCount, OpenSlot, RateLimit};
use crate::mqttsn::{GatewaySpec, SnCounters};
use crate::security::Authenticator;
use crate::tls::TlsListener;

/// How often the core's deadlines are checked at the latest.
const TICK: Duration = Duration::from_millis(250);

/// How often every connection's keep-alive deadline and idleness are checked. Each check walks
/// every connected client (a few hundred nanoseconds each, as many as there are clients), so
/// it runs half as often as [`TICK`]: a keep-alive is enforced at most this much late.
const LINK_TICK: Duration = Duration::from_millis(500);
/// How long connections get to close at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Where a listener accepts connections.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// A TCP port on one or more addresses (`listener 1883` is both `0.0.0.0` and `::`, as in
    /// Mosquitto). With port 0 the first address gets a free port from the system and the
    /// others reuse it.
    Tcp {
        /// The addresses to bind, in order.
        addrs: Vec<IpAddr>,
        /// The port; 0 asks the system for a free one.
        port: u16,
    },
    /// A Unix domain socket (`listener 0 /run/mosquitto/mqtt.sock`). A stale socket file at the
    /// path is replaced, as Mosquitto does.
    Unix {
        /// The socket's path.
        path: PathBuf,
    },
}

/// One listener to open.
#[derive(Debug, Clone)]
pub struct ListenerSpec {
    /// Where it listens.
    pub endpoint: Endpoint,
    /// `max_connections`: connections beyond this are closed at once (`None`: no limit).
    pub max_connections: Option<usize>,
    /// `max_connection_rate` (Midge): new connections per second from one address beyond this
    /// are closed at once (`None`: no limit).
    pub max_connection_rate: Option<u32>,
    /// `set_tcp_nodelay`.
    pub tcp_nodelay: bool,
    /// The listener's own client rules and password file (`per_listener_settings true`);
    /// `None`: the broker's.
    pub security: Option<ListenerSecurity>,
    /// TLS: `Some` on a listener with `certfile` and `keyfile` (TCP only).
    pub tls: Option<Arc<TlsListener>>,
    /// `protocol websockets`: MQTT inside WebSocket binary frames (TCP only).
    pub websockets: bool,
    /// `bind_interface`: bind to this network device (`SO_BINDTODEVICE`, needs root or
    /// CAP_NET_RAW, as in Mosquitto).
    pub bind_interface: Option<String>,
    /// `mount_point`, `use_username_as_clientid`, `accept_protocol_versions` and
    /// `server_reference`: the listener's own, laid over the client rules in force.
    pub client: ListenerClientOptions,
    /// `protocol mqttsn`: an MQTT-SN gateway on UDP instead of MQTT on TCP (TCP endpoints only).
    pub mqttsn: Option<Arc<GatewaySpec>>,
}

/// The client rules a listener has whatever `per_listener_settings` says.
#[derive(Debug, Clone, Default)]
pub struct ListenerClientOptions {
    /// `mount_point`.
    pub mount_point: Option<bytestring::ByteString>,
    /// `use_username_as_clientid`.
    pub use_username_as_clientid: bool,
    /// `accept_protocol_versions` (empty: all).
    pub accepted_versions: Vec<midge_codec::ProtocolVersion>,
    /// `server_reference` and `server_moved`: send every client elsewhere.
    pub redirect: Option<midge_core::Redirect>,
}

/// How one listener admits clients.
#[derive(Debug, Clone)]
pub struct ListenerSecurity {
    /// `allow_anonymous`, `allow_zero_length_clientid`, `auto_id_prefix`.
    pub rules: ClientRules,
    /// The listener's password file. (The listener's `scram_file` is in `rules.auth`.)
    pub authenticator: Arc<Authenticator>,
}

/// A bound listening socket.
#[derive(Debug)]
enum Bound {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// A broker with its sockets bound, ready to run.
#[derive(Debug)]
pub struct Server {
    broker: Arc<Broker>,
    authenticator: Arc<Authenticator>,
    /// The broker-wide enhanced authentication methods (`scram_file`).
    auth_methods: Option<Arc<dyn AuthMethods>>,
    /// Each bound socket with its listener, the listener's place in the configuration, and
    /// its count of open connections (shared by its sockets: IPv4 and IPv6 are one listener).
    listeners: Vec<(Bound, ListenerSpec, usize, Arc<OpenCount>)>,
    /// MQTT-SN listeners' sockets.
    datagrams: Vec<(UdpSocket, ListenerSpec, usize)>,
    /// The MQTT-SN gateways' counters.
    sn_counters: Arc<SnCounters>,
    /// `global_max_connections`.
    global_max_connections: Option<usize>,
    counters: Arc<ConnectionCounters>,
    /// `sys_interval`: how often `$SYS` is published (`None`: never).
    sys_interval: Option<Duration>,
    /// The bridges to run.
    bridges: Vec<BridgePlan>,
    /// `http_listener`: the HTTP API, metrics and web view, bound.
    http: Option<crate::http::HttpServer>,
    cluster: Option<midge_cluster::ClusterConfig>,
}

/// The listeners' sockets, bound and not yet accepting.
#[derive(Debug)]
pub struct Listeners {
    streams: Vec<(Bound, ListenerSpec, usize, Arc<OpenCount>)>,
    /// MQTT-SN listeners' UDP sockets, with their listener and its place.
    datagrams: Vec<(UdpSocket, ListenerSpec, usize)>,
}

impl Listeners {
    /// Binds every listener. A listener fails only if none of its addresses can be bound (a
    /// machine without IPv6 still serves `listener 1883` on IPv4); then the whole start fails.
    pub async fn bind(specs: Vec<ListenerSpec>) -> std::io::Result<Self> {
        let mut listeners = Vec::with_capacity(specs.len());
        let mut datagrams = Vec::new();
        for (index, spec) in specs.into_iter().enumerate() {
            let open = Arc::new(OpenCount::default());
            match &spec.endpoint {
                Endpoint::Tcp { addrs, port } if spec.mqttsn.is_some() => {
                    let broadcast = spec
                        .mqttsn
                        .as_ref()
                        .is_some_and(|g| g.options.advertise.is_some());
                    for socket in bind_udp(addrs, *port, broadcast, spec.bind_interface.as_deref())? {
                        datagrams.push((socket, spec.clone(), index));
                    }
                }
                Endpoint::Tcp { addrs, port } => {
                    for listener in bind_tcp(addrs, *port, spec.websockets, spec.bind_interface.as_deref())? {
                        listeners.push((Bound::Tcp(listener), spec.clone(), index, open.clone()));
                    }
                }
                Endpoint::Unix { path } => {
                    let listener = bind_unix(path)?;
                    tracing::info!(event = "listener.opened", path = %path.display(), "Opening unix listen socket on path {}.", path.display());
                    listeners.push((Bound::Unix(listener), spec.clone(), index, open.clone()));
                }
            }
        }
        Ok(Self {
            streams: listeners,
            datagrams,
        })
    }
}

impl Server {
    /// Creates the broker and binds every listener. A listener fails only if none of its
    /// addresses can be bound (a machine without IPv6 still serves `listener 1883` on IPv4);
    /// then the whole start fails.
    pub async fn bind(config: BrokerConfig, specs: Vec<ListenerSpec>, id_seed: u64) -> std::io::Result<Self> {
        Self::bind_broker(Broker::new(config, id_seed), specs).await
    }

    /// Binds every listener for a broker made elsewhere.
    pub async fn bind_broker(broker: Arc<Broker>, specs: Vec<ListenerSpec>) -> std::io::Result<Self> {
        Ok(Self::new(broker, Listeners::bind(specs).await?))
    }

    /// A broker served on listeners bound beforehand (so that the broker, restored from its
    /// store, can be made after privileges are dropped).
    pub fn new(broker: Arc<Broker>, listeners: Listeners) -> Self {
        Self {
            broker,
            authenticator: Arc::new(Authenticator::new(None)),
            auth_methods: None,
            listeners: listeners.streams,
            datagrams: listeners.datagrams,
            sn_counters: Arc::default(),
            global_max_connections: None,
            counters: Arc::default(),
            sys_interval: None,
            bridges: Vec::new(),
            http: None,
            cluster: None,
        }
    }

    /// The TCP addresses actually bound (with the ports the system chose for port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|(l, ..)| match l {
                Bound::Tcp(l) => l.local_addr().ok(),
                Bound::Unix(_) => None,
            })
            .collect()
    }

    /// Checks CONNECT credentials with `authenticator` (by default nothing is checked).
    pub fn with_authenticator(mut self, authenticator: Arc<Authenticator>) -> Self {
        self.authenticator = authenticator;
        self
    }

    /// Offers enhanced authentication with `methods` on listeners without security settings
    /// of their own (by default none is offered).
    pub fn with_auth_methods(mut self, methods: Option<Arc<dyn AuthMethods>>) -> Self {
        self.auth_methods = methods;
        self
    }

    /// `global_max_connections`: connections beyond this many, on all listeners together, are
    /// closed at once.
    pub fn with_global_max_connections(mut self, max: Option<usize>) -> Self {
        self.global_max_connections = max;
        self
    }

    /// `sys_interval`: publish the `$SYS/broker/...` topics this often (`None`: not at all).
    pub fn with_sys_interval(mut self, interval: Option<Duration>) -> Self {
        self.sys_interval = interval.filter(|i| !i.is_zero());
        self
    }

    /// Runs these bridges (started before the listeners accept).
    pub fn with_bridges(mut self, bridges: Vec<BridgePlan>) -> Self {
        self.bridges = bridges;
        self
    }

    /// Joins this node to a cluster (`cluster_name`; `None`: a single node, the default).
    pub fn with_cluster(mut self, cluster: Option<midge_cluster::ClusterConfig>) -> Self {
        self.cluster = cluster;
        self
    }

    /// Serves the HTTP API, metrics and web view on `http` (bound already).
    pub fn with_http(mut self, http: Option<crate::http::HttpServer>) -> Self {
        self.http = http;
        self
    }

    /// The UDP addresses the MQTT-SN listeners actually bound.
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        self.datagrams
            .iter()
            .filter_map(|(socket, ..)| socket.local_addr().ok())
            .collect()
    }

    /// The MQTT-SN gateways' counters.
    pub fn sn_counters(&self) -> &Arc<SnCounters> {
        &self.sn_counters
    }

    /// How often each connection limit was hit.
    pub fn counters(&self) -> &Arc<ConnectionCounters> {
        &self.counters
    }

    /// The broker, for inspection.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Serves until `shutdown` completes, then closes every connection (MQTT 5 clients get
    /// DISCONNECT 0x8B) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let everywhere = Limits {
            open: Arc::default(),
            max: self.global_max_connections,
            counters: self.counters.clone(),
        };
        // The cluster and bridges first: their sessions must exist before the first client
        // publishes.
        let cluster = self
            .cluster
            .map(|config| crate::cluster::start(config, &self.broker, &stop_rx, &mut tasks));
        let closing_cluster = cluster.clone();
        // What bridges and MQTT-SN clients publish for persistent sessions is acknowledged
        // once the cluster's log has it, as a client's publish is.
        let log_settled = cluster.as_ref().and_then(|cluster| cluster.log_settled());
        let bridges = crate::bridge::start(
            self.bridges,
            &self.broker,
            log_settled.as_ref(),
            &stop_rx,
            &mut tasks,
        );
        let infos = listener_infos(&self.listeners);
        for (listener, spec, index, open) in self.listeners {
            tasks.spawn(accept_loop(
                listener,
                spec,
                index,
                open,
                everywhere.clone(),
                self.broker.clone(),
                (
                    self.authenticator.clone(),
                    self.auth_methods.clone(),
                    cluster.clone(),
                ),
                stop_rx.clone(),
            ));
        }
        let sn_counters = (!self.datagrams.is_empty()).then(|| self.sn_counters.clone());
        for (socket, spec, index) in self.datagrams {
            let Some(gateway) = spec.mqttsn.clone() else {
                continue;
            };
            let rules = match &spec.security {
                Some(security) => security.rules.clone(),
                None => self.broker.config().client_rules(),
            };
            let rules = Arc::new(ClientRules {
                mount_point: spec.client.mount_point.clone(),
                use_username_as_clientid: false,
                accepted_versions: Vec::new(),
                listener: index,
                ..rules
            });
            tasks.spawn(crate::mqttsn::run(
                socket,
                gateway,
                rules,
                spec.max_connections,
                spec.max_connection_rate,
                self.broker.clone(),
                self.sn_counters.clone(),
                log_settled.clone(),
                stop_rx.clone(),
            ));
        }
        tasks.spawn(tick_loop(self.broker.clone(), stop_rx.clone()));
        if let Some(http) = self.http {
            tasks.spawn(http.run(
                self.broker.clone(),
                self.counters.clone(),
                infos,
                cluster.clone(),
                stop_rx.clone(),
            ));
        }
        if let Some(interval) = self.sys_interval {
            tasks.spawn(crate::sys::run(
                self.broker.clone(),
                self.counters.clone(),
                crate::sys::Parts {
                    bridges,
                    sn_counters,
                    cluster,
                },
                interval,
                format!("midge version {}", env!("CARGO_PKG_VERSION")),
                stop_rx.clone(),
            ));
        }
        shutdown.await;
        // The cluster takes no more forwards before the clients' connections close.
        if let Some(cluster) = &closing_cluster {
            cluster.close();
        }
        let _ = stop_tx.send(true);
        // Connections hear of it through their links (no per-connection shutdown future): MQTT
        // 5 clients get DISCONNECT 0x8B, and no will is published.
        self.broker.close_all(ReasonCode::ServerShuttingDown);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if let Some(journal) = self.broker.journal() {
            // Everything written so far reaches the store, synced, before the process ends.
            let journal = journal.clone();
            let _ = tokio::task::spawn_blocking(move || journal.close()).await;
        }
    }
}

/// Binds `port` on each of `addrs`. Fails only if none can be bound (a machine without IPv6
/// still serves `listener 1883` on IPv4).
fn bind_tcp(
    addrs: &[IpAddr],
    port: u16,
    websockets: bool,
    interface: Option<&str>,
) -> std::io::Result<Vec<TcpListener>> {
    bind_each(addrs, port, interface, |local| {
        // Mosquitto's words: "websockets" for a WebSocket listener, else the family.
        let family = match (websockets, local.is_ipv4()) {
            (true, _) => "websockets",
            (false, true) => "ipv4",
            (false, false) => "ipv6",
        };
        let port = local.port();
        tracing::info!(event = "listener.opened", port, address = %local.ip(), "Opening {family} listen socket on port {port}.");
    })
}

/// Binds `port` on each of `addrs` for a listener that is not MQTT (the HTTP API): as
/// [`bind_tcp`], without its log lines. Fails only if none can be bound.
pub(crate) fn bind_tcp_sockets(addrs: &[IpAddr], port: u16) -> std::io::Result<Vec<TcpListener>> {
    bind_each(addrs, port, None, |_| {})
}

/// Binds `port` on each of `addrs` (port 0: the port the first one got, for all), calling
/// `bound` with each address bound. Fails only if none can be bound.
fn bind_each(
    addrs: &[IpAddr],
    mut port: u16,
    interface: Option<&str>,
    mut on_bound: impl FnMut(SocketAddr),
) -> std::io::Result<Vec<TcpListener>> {
    let mut bound = Vec::new();
    let mut last_error = None;
    for ip in addrs {
        let addr = SocketAddr::new(*ip, port);
        match bind_one(addr, interface) {
            Ok(listener) => {
                let local = listener.local_addr()?;
                port = local.port();
                on_bound(local);
                bound.push(listener);
            }
            Err(error) => {
                let error = std::io::Error::new(error.kind(), format!("cannot listen on {addr}: {error}"));
                if addrs.len() > 1 {
                    tracing::warn!(%error, "{error}");
                }
                last_error = Some(error);
            }
        }
    }
    if bound.is_empty() {
        return Err(last_error.unwrap_or_else(|| std::io::Error::other("a listener has no address to bind")));
    }
    Ok(bound)
}

/// Binds an MQTT-SN listener's UDP port on each of `addrs`, as `bind_tcp` does for TCP: fails
/// only if none can be bound; with port 0 the first address picks the port for the others.
fn bind_udp(
    addrs: &[IpAddr],
    mut port: u16,
    broadcast: bool,
    interface: Option<&str>,
) -> std::io::Result<Vec<UdpSocket>> {
    let mut bound = Vec::new();
    let mut last_error = None;
    for ip in addrs {
        let addr = SocketAddr::new(*ip, port);
        let socket = (|| {
            let domain = if addr.is_ipv4() {
                Domain::IPV4
            } else {
                Domain::IPV6
            };
            let socket = Socket::new(domain, Type::DGRAM, Some(socket2::Protocol::UDP))?;
            if addr.is_ipv6() {
                socket.set_only_v6(true)?;
            }
            socket.set_reuse_address(true)?;
            if broadcast && addr.is_ipv4() {
                socket.set_broadcast(true)?;
            }
            if let Some(interface) = interface {
                socket.bind_device(Some(interface.as_bytes()))?;
            }
            socket.bind(&addr.into())?;
            socket.set_nonblocking(true)?;
            UdpSocket::from_std(socket.into())
        })();
        match socket {
            Ok(socket) => {
                let local = socket.local_addr()?;
                port = local.port();
                let family = if local.is_ipv4() { "IPv4" } else { "IPv6" };
                tracing::info!(event = "listener.opened", address = %local, "Opening mqttsn {family} listen socket on port {port}.");
                bound.push(socket);
            }
            Err(error) => {
                let error =
                    std::io::Error::new(error.kind(), format!("cannot listen on udp {addr}: {error}"));
                if addrs.len() > 1 {
                    tracing::warn!(%error, "{error}");
                }
                last_error = Some(error);
            }
        }
    }
    if bound.is_empty() {
        return Err(last_error.unwrap_or_else(|| std::io::Error::other("a listener has no address to bind")));
    }
    Ok(bound)
}

/// Each configured listener once, as the HTTP API and metrics show it.
fn listener_infos(
    listeners: &[(Bound, ListenerSpec, usize, Arc<OpenCount>)],
) -> Vec<crate::http::ListenerInfo> {
    let mut infos: Vec<crate::http::ListenerInfo> = Vec::new();
    for (bound, spec, index, open) in listeners {
        let address = match bound {
            Bound::Tcp(socket) => socket
                .local_addr()
                .map_or_else(|_| "?".to_owned(), |a| a.to_string()),
            Bound::Unix(_) => match &spec.endpoint {
                Endpoint::Unix { path } => path.display().to_string(),
                Endpoint::Tcp { .. } => "unix socket".to_owned(),
            },
        };
        match infos.iter_mut().find(|info| info.index == *index) {
            Some(info) => info.addresses.push(address),
            None => infos.push(crate::http::ListenerInfo {
                index: *index,
                addresses: vec![address],
                protocol: if spec.websockets { "websockets" } else { "mqtt" },
                tls: spec.tls.is_some(),
                open: open.clone(),
            }),
        }
    }
    infos
}

/// Binds a Unix socket at `path`, replacing a stale socket file left by an earlier run.
fn bind_unix(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        std::fs::remove_file(path)?;
    }
    UnixListener::bind(path).map_err(|error| {
        std::io::Error::new(
            error.kind(),
            format!("cannot listen on {}: {error}", path.display()),
        )
    })
}

/// Binds one address. IPv6 sockets are IPv6-only, so that `0.0.0.0` and `::` on the same port
/// can both be bound, as Mosquitto does.
fn bind_one(addr: SocketAddr, interface: Option<&str>) -> std::io::Result<TcpListener> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::STREAM, Some(socket2::Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    if let Some(interface) = interface {
        socket.bind_device(Some(interface.as_bytes())).map_err(|error| {
            std::io::Error::new(error.kind(), format!("bind_interface {interface}: {error}"))
        })?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    // Accepted sockets inherit delayed acknowledgements: the client speaks first (CONNECT, a TLS
    // ClientHello, an HTTP upgrade), and its first bytes are acknowledged by the reply (the
    // CONNACK) instead of a packet of their own, one packet less per connection (as HAProxy's
    // `tcp-smart-accept`). After the CONNACK the connection goes back to the kernel's usual
    // acknowledgements (`Transport::handshake_over`). Best effort: nothing depends on it.
    let _ = rustix::net::sockopt::set_tcp_quickack(&socket, false);
    TcpListener::from_std(socket.into())
}

/// The broker-wide limit and counters every listener shares.
#[derive(Debug, Clone)]
struct Limits {
    open: Arc<OpenCount>,
    max: Option<usize>,
    counters: Arc<ConnectionCounters>,
}

/// Who admits a listener's clients: the password file's authenticator, the enhanced
/// authentication methods, and the cluster that must agree to each client identifier.
type Admitters = (
    Arc<Authenticator>,
    Option<Arc<dyn AuthMethods>>,
    Option<Arc<dyn midge_cluster::Cluster>>,
);

#[allow(
    clippy::too_many_arguments,
    reason = "one accept loop per socket, started once"
)]
async fn accept_loop(
    listener: Bound,
    spec: ListenerSpec,
    index: usize,
    open: Arc<OpenCount>,
    everywhere: Limits,
    broker: Arc<Broker>,
    (authenticator, auth_methods, cluster): Admitters,
    mut stop: watch::Receiver<bool>,
) {
    let (rules, authenticator) = match &spec.security {
        Some(security) => (security.rules.clone(), security.authenticator.clone()),
        None => (
            ClientRules {
                auth: auth_methods,
                ..broker.config().client_rules()
            },
            authenticator,
        ),
    };
    let rules = Arc::new(ClientRules {
        mount_point: spec.client.mount_point.clone(),
        use_username_as_clientid: spec.client.use_username_as_clientid,
        accepted_versions: spec.client.accepted_versions.clone(),
        redirect: spec.client.redirect.clone(),
        listener: index,
        ..rules
    });
    let counters = &everywhere.counters;
    let mut rate = spec.max_connection_rate.map(RateLimit::new);
    let (mut full_log, mut broker_full_log, mut rate_log) = (
        LogThrottle::default(),
        LogThrottle::default(),
        LogThrottle::default(),
    );
    // For the log line of each connection: asked once, not per accept.
    let port = listener.port();
    let mut nodelay = NoDelay::new(&listener, spec.tcp_nodelay);
    let mut spin = AcceptSpin::new(tokio::runtime::Handle::current().metrics().num_workers());
    loop {
        tokio::select! {
            accepted = accept(&listener, &mut nodelay, &mut spin) => match accepted {
                Ok(stream) => {
                    ConnectionCounters::bump(&counters.accepted);
                    let peer = stream.peer();
                    let now = std::time::Instant::now();
                    let refusal = if open.is_full(spec.max_connections) {
                        Some((&counters.refused_listener_full, &mut full_log, "max_connections reached"))
                    } else if everywhere.open.is_full(everywhere.max) {
                        Some((&counters.refused_broker_full, &mut broker_full_log, "global_max_connections reached"))
                    } else if let (Some(rate), Some(ip)) = (rate.as_mut(), stream.ip())
                        && !rate.admit(ip, now)
                    {
                        Some((&counters.refused_rate, &mut rate_log, "max_connection_rate exceeded"))
                    } else {
                        None
                    };
                    if let Some((counter, log, why)) = refusal {
                        ConnectionCounters::bump(counter);
                        if let Some(more) = log.should_log(now) {
                            let more = if more > 0 { format!(" ({more} more refused since the last such line)") } else { String::new() };
                            tracing::info!(event = "connection.denied", %peer, reason = %why, "Client connection from {peer} denied: {why}.{more}");
                        }
                        drop(stream);
                        continue;
                    }
                    match port {
                        Some(port) => tracing::info!(target: "midge_server::connection", event = "connection.opened", %peer, "New connection from {peer} on port {port}."),
                        None => tracing::info!(target: "midge_server::connection", event = "connection.opened", "New connection on a unix socket."),
                    }
                    let slot = OpenSlot::take(&open, &everywhere.open);
                    let broker = broker.clone();
                    let admission = Admission {
                        authenticator: authenticator.clone(),
                        rules: rules.clone(),
                        username: Username::FromConnect,
                        counters: counters.clone(),
                        cluster: cluster.clone(),
                    };
                    // Spawned directly, not inside a wrapping block: a wrapper would keep its own
                    // copies of everything moved into the connection's future, for its whole life.
                    match (stream, &spec.tls) {
                        (Accepted::Tcp(stream, _), Some(tls)) => {
                            tokio::spawn(connection::serve_tls(stream, peer, tls.clone(), spec.websockets, broker, admission, slot));
                        }
                        (Accepted::Tcp(stream, _), None) if spec.websockets => {
                            tokio::spawn(connection::serve_websocket(stream, peer, broker, admission, slot));
                        }
                        (Accepted::Tcp(stream, _), None) => {
                            tokio::spawn(connection::serve(stream, peer, broker, admission, slot));
                        }
                        (Accepted::Unix(stream), _) => {
                            tokio::spawn(connection::serve(stream, peer, broker, admission, slot));
                        }
                    }
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = stop.changed() => break,
        }
    }
    // Connections are spawned on their own rather than kept in a JoinSet (whose entry would
    // cost each idle connection 56 bytes); each holds its slot until it has ended.
    while open.get() > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl Bound {
    /// The local TCP port, for log lines.
    fn port(&self) -> Option<u16> {
        match self {
            Self::Tcp(listener) => listener.local_addr().ok().map(|a| a.port()),
            Self::Unix(_) => None,
        }
    }
}

/// A connection just accepted.
enum Accepted {
    Tcp(TcpStream, SocketAddr),
    Unix(UnixStream),
}

impl Accepted {
    fn ip(&self) -> Option<IpAddr> {
        match self {
            Self::Tcp(_, peer) => Some(peer.ip()),
            Self::Unix(_) => None,
        }
    }

    fn peer(&self) -> String {
        match self {
            Self::Tcp(_, peer) => peer.to_string(),
            Self::Unix(_) => "unix socket".to_owned(),
        }
    }
}

/// The next connection: while `spin` is active, looked for between yields to the runtime (see
/// the `accept_spin` module); otherwise waited for.
async fn accept(listener: &Bound, nodelay: &mut NoDelay, spin: &mut AcceptSpin) -> std::io::Result<Accepted> {
    let accepted = loop {
        if !spin.active() {
            break match listener {
                Bound::Tcp(listener) => listener
                    .accept()
                    .await
                    .map(|(stream, peer)| Accepted::Tcp(stream, peer)),
                Bound::Unix(listener) => listener.accept().await.map(|(stream, _)| Accepted::Unix(stream)),
            };
        }
        if let Some(accepted) = try_accept(listener).await {
            break accepted;
        }
        tokio::task::yield_now().await;
    }?;
    if let Accepted::Tcp(stream, _) = &accepted {
        nodelay.apply(stream);
    }
    spin.accepted();
    Ok(accepted)
}

/// One accept without waiting: `None` when no connection is queued.
async fn try_accept(listener: &Bound) -> Option<std::io::Result<Accepted>> {
    std::future::poll_fn(|cx| {
        let polled = match listener {
            Bound::Tcp(listener) => listener
                .poll_accept(cx)
                .map_ok(|(stream, peer)| Accepted::Tcp(stream, peer)),
            Bound::Unix(listener) => listener
                .poll_accept(cx)
                .map_ok(|(stream, _)| Accepted::Unix(stream)),
        };
        std::task::Poll::Ready(match polled {
            std::task::Poll::Ready(result) => Some(result),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

/// `set_tcp_nodelay` for the connections of one listener. Linux gives an accepted socket the
/// listening socket's `TCP_NODELAY`, which saves a system call per connection (a few percent of
/// the connection rate); the first connection shows whether it was inherited, and if it was not,
/// each connection's socket is set on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoDelay {
    /// `set_tcp_nodelay false`: Nagle's algorithm stays on.
    Off,
    /// Set on the listening socket; not yet seen on an accepted one.
    Unchecked,
    /// Accepted sockets come with it.
    Inherited,
    /// Set on every accepted socket.
    PerSocket,
}

impl NoDelay {
    fn new(listener: &Bound, wanted: bool) -> Self {
        match listener {
            _ if !wanted => Self::Off,
            Bound::Tcp(listener) if socket2::SockRef::from(listener).set_tcp_nodelay(true).is_ok() => {
                Self::Unchecked
            }
            _ => Self::PerSocket,
        }
    }

    fn apply(&mut self, stream: &TcpStream) {
        match *self {
            Self::Off | Self::Inherited => {}
            Self::PerSocket => {
                let _ = stream.set_nodelay(true);
            }
            Self::Unchecked => {
                if stream.nodelay().unwrap_or(false) {
                    *self = Self::Inherited;
                } else {
                    *self = Self::PerSocket;
                    let _ = stream.set_nodelay(true);
                }
            }
        }
    }
}

async fn tick_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let mut links_ticked = tokio::time::Instant::now();
    loop {
        let now = tokio::time::Instant::now();
        // Keep-alive deadlines and parking (`connection::ConnectionLink`), every LINK_TICK.
        if now >= links_ticked + LINK_TICK {
            broker.tick_links(now.into_std());
            links_ticked = now;
        }
        let next = broker.tick(now.into_std()).map_or(now + TICK, |at| {
            tokio::time::Instant::from_std(at).min(now + TICK)
        });
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener bound as the broker binds its own, on a free loopback port, and its address.
    fn loopback_listener() -> (Bound, SocketAddr) {
        let listener = bind_one("127.0.0.1:0".parse().expect("address"), None).expect("bind");
        let addr = listener.local_addr().expect("local address");
        (Bound::Tcp(listener), addr)
    }

    /// Accepts one connection on a fresh loopback listener with `set_tcp_nodelay` as given;
    /// returns whether the accepted socket has `TCP_NODELAY`, and what the listener learnt.
    async fn accept_one(wanted: bool, nodelay: Option<NoDelay>) -> (bool, NoDelay) {
        let (listener, addr) = loopback_listener();
        let mut state = nodelay.unwrap_or_else(|| NoDelay::new(&listener, wanted));
        let _client = TcpStream::connect(addr).await.expect("connect");
        match accept(&listener, &mut state, &mut AcceptSpin::new(1))
            .await
            .expect("accept")
        {
            Accepted::Tcp(stream, _) => (stream.nodelay().expect("getsockopt"), state),
            Accepted::Unix(_) => unreachable!(),
        }
    }

    /// The client speaks first, so its first bytes are acknowledged by the broker's reply, not
    /// by a packet of their own (the kernel's "ping-pong" mode, which `TCP_QUICKACK` reads
    /// back as off); once the CONNACK is out the socket acknowledges as usual again.
    #[tokio::test]
    async fn accepted_sockets_delay_acknowledgements_until_the_handshake_is_over() {
        use crate::transport::Transport;
        let (listener, addr) = loopback_listener();
        let _client = TcpStream::connect(addr).await.expect("connect");
        let mut state = NoDelay::new(&listener, true);
        let Accepted::Tcp(stream, _) = accept(&listener, &mut state, &mut AcceptSpin::new(1))
            .await
            .expect("accept")
        else {
            unreachable!()
        };
        assert!(
            !rustix::net::sockopt::tcp_quickack(&stream).expect("getsockopt"),
            "delayed at first"
        );
        stream.handshake_over();
        assert!(
            rustix::net::sockopt::tcp_quickack(&stream).expect("getsockopt"),
            "usual after the CONNACK"
        );
    }

    /// Connections that come while the loop spins after an accept are taken between its yields,
    /// each with its own peer, and the spin goes on from the newest.
    #[tokio::test]
    async fn connections_that_come_while_the_loop_spins_are_accepted() {
        let (listener, addr) = loopback_listener();
        let mut state = NoDelay::new(&listener, true);
        // A window no test machine outlasts: every accept after the first is found by the spin.
        let mut spin = AcceptSpin::with_window(Duration::from_secs(30));
        let mut clients = Vec::new();
        let mut peers = Vec::new();
        for round in 0..3 {
            let client = TcpStream::connect(addr).await.expect("connect");
            peers.push(client.local_addr().expect("client address"));
            clients.push(client);
            assert_eq!(spin.active(), round > 0, "round {round}");
            match accept(&listener, &mut state, &mut spin).await.expect("accept") {
                Accepted::Tcp(_, peer) => assert_eq!(peer, peers[round]),
                Accepted::Unix(_) => unreachable!(),
            }
        }
    }

    #[tokio::test]
    async fn accepted_sockets_have_nagle_off_by_inheritance_and_on_when_asked() {
        let (on, state) = accept_one(true, None).await;
        assert!(on, "set_tcp_nodelay true: TCP_NODELAY on the accepted socket");
        // Linux passes it down from the listening socket: no system call per connection.
        assert_eq!(state, NoDelay::Inherited);

        let (on, state) = accept_one(false, None).await;
        assert!(!on, "set_tcp_nodelay false: Nagle's algorithm stays on");
        assert_eq!(state, NoDelay::Off);

        // Where the listener could not pass it down, each socket gets it on its own.
        let (on, state) = accept_one(false, Some(NoDelay::PerSocket)).await;
        assert!(on);
        assert_eq!(state, NoDelay::PerSocket);
        let (on, state) = accept_one(false, Some(NoDelay::Unchecked)).await;
        assert!(on, "a listener whose first socket lacks it sets it per socket");
        assert_eq!(state, NoDelay::PerSocket);
    }
}
