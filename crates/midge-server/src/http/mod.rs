//! The HTTP listener (`http_listener`): the management API under `/api/v1`, Prometheus
//! metrics at `/metrics`, the OpenAPI document, and the web view at `/` — all off unless the
//! configuration opens it. docs/http-api.md is the user's guide.
//!
//! # Layout
//! - this file: binding, the accept loop (plain or TLS, HTTP/1.1 by hyper), connection limits.
//! - `routes`: the router and shared state; `health` and `info`.
//! - `auth`: bearer tokens, basic authentication, anonymous access from loopback.
//! - `sessions`, `publish`, `retained`, `logs`, `topics`: the API's resources.
//! - `metrics`: `/metrics`; `openapi`: the OpenAPI document; `web`: the embedded page.
//! - [`log_ring`]: the `tracing` layer that keeps recent log lines for the API.
//! - `error`: JSON errors, and extractors that answer bad input with them.
//!
//! Nothing here is on the path of MQTT messages: the handlers call the core's admin methods
//! (`midge_core::admin`), which take the broker's locks briefly, in its documented order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower_service::Service;

mod auth;
mod error;
pub mod log_ring;
#[allow(
    unused_qualifications,
    reason = "utoipa's path macro qualifies IntoParams types"
)]
mod logs;
mod metrics;
mod openapi;
mod publish;
#[allow(
    unused_qualifications,
    reason = "utoipa's path macro qualifies IntoParams types"
)]
mod retained;
mod routes;
#[allow(
    unused_qualifications,
    reason = "utoipa's path macro qualifies IntoParams types"
)]
mod sessions;
mod topics;
mod web;

pub use auth::{Anonymous, HttpAuth};
pub use log_ring::LogRing;

use crate::limits::OpenCount;
use crate::tls::TlsListener;

/// HTTP connections open at once at most; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;
/// How long a client has to send a request's headers, and to finish a TLS handshake.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the HTTP listener is to be: where, how it authenticates, and what it encrypts with.
#[derive(Debug, Clone)]
pub struct HttpSpec {
    /// The addresses to bind (IPv4 and IPv6 for "every interface"), all on `port`.
    pub addrs: Vec<std::net::IpAddr>,
    /// The port; 0 asks the system for a free one.
    pub port: u16,
    /// Who may use it.
    pub auth: HttpAuth,
    /// HTTPS with this certificate, when set.
    pub tls: Option<Arc<TlsListener>>,
    /// Where the log lines of `GET /api/v1/logs` come from.
    pub ring: Arc<LogRing>,
}

/// The HTTP listener, bound.
#[derive(Debug)]
pub struct HttpServer {
    sockets: Vec<TcpListener>,
    spec: HttpSpec,
}

/// One MQTT listener, as the API and metrics show it.
#[derive(Debug, Clone)]
pub(crate) struct ListenerInfo {
    pub(crate) index: usize,
    pub(crate) addresses: Vec<String>,
    pub(crate) protocol: &'static str,
    pub(crate) tls: bool,
    pub(crate) open: Arc<OpenCount>,
}

impl HttpServer {
    /// Binds every address of `spec`; fails if none can be bound, like an MQTT listener.
    pub async fn bind(spec: HttpSpec) -> std::io::Result<Self> {
        let sockets = crate::server::bind_tcp_sockets(&spec.addrs, spec.port)?;
        let scheme = if spec.tls.is_some() { "https" } else { "http" };
        for socket in &sockets {
            if let Ok(local) = socket.local_addr() {
                tracing::info!("HTTP API and web view on {scheme}://{local}/");
            }
        }
        Ok(Self { sockets, spec })
    }

    /// The addresses bound (with the port the system chose for port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets.iter().filter_map(|s| s.local_addr().ok()).collect()
    }

    /// Serves until `stop` changes.
    pub(crate) async fn run(
        self,
        broker: Arc<midge_core::Broker>,
        counters: Arc<crate::limits::ConnectionCounters>,
        listeners: Vec<ListenerInfo>,
        cluster: Option<Arc<dyn midge_cluster::Cluster>>,
        stop: watch::Receiver<bool>,
    ) {
        let state = routes::AppState::new(routes::Shared {
            cluster,
            broker,
            counters,
            listeners,
            ring: self.spec.ring.clone(),
            auth: self.spec.auth.clone(),
            started: Instant::now(),
            version: format!("midge version {}", env!("CARGO_PKG_VERSION")),
        });
        let router = routes::router(state);
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut loops = JoinSet::new();
        for socket in self.sockets {
            loops.spawn(accept_loop(
                socket,
                router.clone(),
                self.spec.tls.clone(),
                slots.clone(),
                stop.clone(),
            ));
        }
        while loops.join_next().await.is_some() {}
    }
}

async fn accept_loop(
    socket: TcpListener,
    router: axum::Router,
    tls: Option<Arc<TlsListener>>,
    slots: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            permit = slots.clone().acquire_owned() => {
                let Ok(permit) = permit else { break };
                let accepted = tokio::select! {
                    accepted = socket.accept() => accepted,
                    _ = stop.changed() => break,
                };
                match accepted {
                    Ok((stream, peer)) => {
                        connections.spawn(serve(stream, peer, router.clone(), tls.clone(), permit));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "HTTP accept failed: {error}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    // Dropping the set aborts the connections still open: the broker is stopping.
}

/// One HTTP connection: the TLS handshake if any, then HTTP/1.1 requests until the client
/// closes it.
async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    router: axum::Router,
    tls: Option<Arc<TlsListener>>,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    match tls {
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
            match tokio::time::timeout(REQUEST_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => serve_http(TokioIo::new(stream), peer, router).await,
                Ok(Err(error)) => tracing::info!("HTTPS handshake with {peer} failed: {error}"),
                Err(_) => tracing::info!("HTTPS handshake with {peer} timed out"),
            }
        }
        None => serve_http(TokioIo::new(stream), peer, router).await,
    }
}

async fn serve_http<S>(io: TokioIo<S>, peer: SocketAddr, router: axum::Router)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(auth::Peer(peer));
        let mut router = router.clone();
        async move { router.call(request).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(REQUEST_TIMEOUT);
    if let Err(error) = builder.serve_connection(io, service).await {
        tracing::debug!("HTTP connection from {peer} ended: {error}");
    }
}
