//! The running broker: listening sockets, one task per connection, the timer that drives the
//! core's deadlines, and graceful shutdown.
//!
//! Shape after mini-redis's `server.rs`: bind first (so a bad address fails the start, and port
//! 0 reports the port it got), then accept until the shutdown future completes, then tell every
//! connection to close and give them a moment to say goodbye.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use midge_core::{Broker, BrokerConfig};
use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::connection;

/// How often the core's deadlines are checked at the latest.
const TICK: Duration = Duration::from_millis(250);
/// How long connections get to close at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// One TCP listener to open: a port on one or more addresses (`listener 1883` is both
/// `0.0.0.0` and `::`, as in Mosquitto).
#[derive(Debug, Clone)]
pub struct ListenerSpec {
    /// The addresses to bind, in order. With port 0 the first gets a free port from the system
    /// and the others reuse it.
    pub addrs: Vec<IpAddr>,
    /// The port; 0 asks the system for a free one.
    pub port: u16,
    /// `max_connections`: connections beyond this are closed at once (`None`: no limit).
    pub max_connections: Option<usize>,
    /// `set_tcp_nodelay`.
    pub tcp_nodelay: bool,
}

/// A broker with its sockets bound, ready to run.
#[derive(Debug)]
pub struct Server {
    broker: Arc<Broker>,
    listeners: Vec<(TcpListener, ListenerSpec)>,
}

impl Server {
    /// Creates the broker and binds every listener. A listener fails only if none of its
    /// addresses can be bound (a machine without IPv6 still serves `listener 1883` on IPv4);
    /// then the whole start fails.
    pub async fn bind(config: BrokerConfig, specs: Vec<ListenerSpec>, id_seed: u64) -> std::io::Result<Self> {
        let broker = Broker::new(config, id_seed);
        let mut listeners = Vec::with_capacity(specs.len());
        for spec in specs {
            let mut port = spec.port;
            let mut bound_any = false;
            let mut last_error = None;
            for ip in &spec.addrs {
                let addr = SocketAddr::new(*ip, port);
                match bind_one(addr) {
                    Ok(listener) => {
                        let local = listener.local_addr()?;
                        port = local.port();
                        let family = if local.is_ipv4() { "ipv4" } else { "ipv6" };
                        tracing::info!(port, address = %local.ip(), "Opening {family} listen socket on port {port}.");
                        listeners.push((listener, spec.clone()));
                        bound_any = true;
                    }
                    Err(error) => {
                        let error =
                            std::io::Error::new(error.kind(), format!("cannot listen on {addr}: {error}"));
                        if spec.addrs.len() > 1 {
                            tracing::warn!(%error, "{error}");
                        }
                        last_error = Some(error);
                    }
                }
            }
            if !bound_any {
                return Err(
                    last_error.unwrap_or_else(|| std::io::Error::other("a listener has no address to bind"))
                );
            }
        }
        Ok(Self { broker, listeners })
    }

    /// The addresses actually bound (with the ports the system chose for port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect()
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
        for (listener, spec) in self.listeners {
            tasks.spawn(accept_loop(listener, spec, self.broker.clone(), stop_rx.clone()));
        }
        tasks.spawn(tick_loop(self.broker.clone(), stop_rx.clone()));
        shutdown.await;
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
    }
}

/// Binds one address. IPv6 sockets are IPv6-only, so that `0.0.0.0` and `::` on the same port
/// can both be bound, as Mosquitto does.
fn bind_one(addr: SocketAddr) -> std::io::Result<TcpListener> {
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
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

async fn accept_loop(
    listener: TcpListener,
    spec: ListenerSpec,
    broker: Arc<Broker>,
    mut stop: watch::Receiver<bool>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if spec.max_connections.is_some_and(|max| open.load(Ordering::Relaxed) >= max) {
                        tracing::info!(%peer, "Client connection from {peer} denied: max_connections reached.");
                        drop(stream);
                        continue;
                    }
                    open.fetch_add(1, Ordering::Relaxed);
                    connections.spawn(serve_tcp(stream, peer, spec.tcp_nodelay, broker.clone(), stop.clone(), open.clone()));
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    while connections.join_next().await.is_some() {}
}

async fn serve_tcp(
    stream: TcpStream,
    peer: SocketAddr,
    nodelay: bool,
    broker: Arc<Broker>,
    stop: watch::Receiver<bool>,
    open: Arc<AtomicUsize>,
) {
    if nodelay {
        let _ = stream.set_nodelay(true);
    }
    connection::serve(stream, peer, broker, stop).await;
    open.fetch_sub(1, Ordering::Relaxed);
}

async fn tick_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    loop {
        let now = tokio::time::Instant::now();
        let next = broker.tick(now.into_std()).map_or(now + TICK, |at| {
            tokio::time::Instant::from_std(at).min(now + TICK)
        });
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            _ = stop.changed() => return,
        }
    }
}
