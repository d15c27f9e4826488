//! How a bridge reaches its remote broker: the next of its addresses on each attempt (Mosquitto
//! moves to the next address after every failure and every loss), TCP from
//! `bridge_bind_address` with `bridge_tcp_keepalive` and `bridge_tcp_user_timeout`, then TLS
//! checked against that address's host name. The client (`midge_client`) calls [`connect`]
//! once per connection attempt, its own reconnections included.
//!
//! [`connect`]: midge_client::Connector::connect

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use midge_client::{Connector, TlsConnector, Transport};
use parking_lot::Mutex;
use tokio::net::{TcpSocket, TcpStream};

use crate::config::{BridgeAddress, TcpKeepalive};

/// The socket options every address shares.
#[derive(Debug, Clone, Default)]
pub(crate) struct SocketOptions {
    /// `bridge_bind_address`.
    pub(crate) bind: Option<String>,
    /// `bridge_tcp_keepalive`.
    pub(crate) keepalive: Option<TcpKeepalive>,
    /// `bridge_tcp_user_timeout`.
    pub(crate) user_timeout: Option<Duration>,
}

/// Plain TCP to one address.
#[derive(Debug, Clone)]
pub(crate) struct TcpTarget {
    address: BridgeAddress,
    socket: Arc<SocketOptions>,
}

impl Connector for TcpTarget {
    type Stream = TcpStream;

    async fn connect(&self) -> io::Result<TcpStream> {
        let bind = match &self.socket.bind {
            Some(bind) => Some(resolve_one(bind, 0).await?),
            None => None,
        };
        let mut last_error = None;
        for addr in tokio::net::lookup_host((self.address.host.as_str(), self.address.port)).await? {
            if bind.is_some_and(|bind: SocketAddr| bind.is_ipv4() != addr.is_ipv4()) {
                continue;
            }
            match self.connect_one(addr, bind).await {
                Ok(stream) => return Ok(stream),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no usable address for {}", self.address),
            )
        }))
    }
}

impl TcpTarget {
    async fn connect_one(&self, addr: SocketAddr, bind: Option<SocketAddr>) -> io::Result<TcpStream> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(bind) = bind {
            socket.bind(bind)?;
        }
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        let raw = socket2::SockRef::from(&stream);
        if let Some(keepalive) = self.socket.keepalive {
            let params = socket2::TcpKeepalive::new()
                .with_time(Duration::from_secs(u64::from(keepalive.idle)))
                .with_interval(Duration::from_secs(u64::from(keepalive.interval)))
                .with_retries(keepalive.count);
            raw.set_tcp_keepalive(&params)?;
        }
        if let Some(timeout) = self.socket.user_timeout {
            raw.set_tcp_user_timeout(Some(timeout))?;
        }
        Ok(stream)
    }
}

async fn resolve_one(host: &str, port: u16) -> io::Result<SocketAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    tokio::net::lookup_host((host, port))
        .await?
        .next()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("bridge_bind_address {host} has no address"),
            )
        })
}

/// One address, plain or in TLS.
#[derive(Debug)]
enum Target {
    Plain(TcpTarget),
    Tls(TlsConnector<TcpTarget>),
}

/// Which address comes next.
#[derive(Debug, Default)]
struct Rotation {
    next: usize,
    current: Option<usize>,
}

/// A bridge's addresses, tried in turn.
#[derive(Debug, Clone)]
pub(crate) struct BridgeConnector {
    name: Arc<str>,
    targets: Arc<[(BridgeAddress, Target)]>,
    rotation: Arc<Mutex<Rotation>>,
}

impl BridgeConnector {
    /// Connects to `addresses` in turn, in TLS with `tls` if given.
    pub(crate) fn new(
        name: &str,
        addresses: &[BridgeAddress],
        socket: SocketOptions,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Self, midge_client::TlsSetupError> {
        let socket = Arc::new(socket);
        let mut targets = Vec::with_capacity(addresses.len());
        for address in addresses {
            let tcp = TcpTarget {
                address: address.clone(),
                socket: socket.clone(),
            };
            let target = match &tls {
                Some(config) => Target::Tls(TlsConnector::new(tcp, config.clone(), &address.host)?),
                None => Target::Plain(tcp),
            };
            targets.push((address.clone(), target));
        }
        Ok(Self {
            name: name.into(),
            targets: targets.into(),
            rotation: Arc::default(),
        })
    }

    /// The address of the connection last attempted, and whether it is the first (primary) one.
    pub(crate) fn current(&self) -> Option<(BridgeAddress, bool)> {
        let index = self.rotation.lock().current?;
        let (address, _) = self.targets.get(index)?;
        Some((address.clone(), index == 0))
    }

    /// The first address, for checking whether the primary broker is back.
    pub(crate) fn primary(&self) -> Option<BridgeAddress> {
        self.targets.first().map(|(address, _)| address.clone())
    }

    /// Makes the next attempt go to the first address.
    pub(crate) fn prefer_primary(&self) {
        self.rotation.lock().next = 0;
    }

    /// Whether there is more than one address.
    pub(crate) fn has_alternatives(&self) -> bool {
        self.targets.len() > 1
    }
}

impl Connector for BridgeConnector {
    type Stream = Box<dyn Transport>;

    async fn connect(&self) -> io::Result<Box<dyn Transport>> {
        let index = {
            let mut rotation = self.rotation.lock();
            let index = rotation.next % self.targets.len().max(1);
            rotation.current = Some(index);
            rotation.next = index + 1;
            index
        };
        let Some((address, target)) = self.targets.get(index) else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the bridge has no address",
            ));
        };
        tracing::info!(event = "bridge.connecting", bridge = %self.name, %address, "Connecting bridge {} ({address})", self.name);
        Ok(match target {
            Target::Plain(tcp) => Box::new(tcp.connect().await?),
            Target::Tls(tls) => Box::new(tls.connect().await?),
        })
    }
}

/// Whether a plain TCP connection to `address` can be made now (the primary-address check of a
/// bridge that is not `round_robin`).
pub(crate) async fn reachable(address: &BridgeAddress, socket: &SocketOptions) -> bool {
    let target = TcpTarget {
        address: address.clone(),
        socket: Arc::new(socket.clone()),
    };
    tokio::time::timeout(Duration::from_secs(5), target.connect())
        .await
        .is_ok_and(|result| result.is_ok())
}
