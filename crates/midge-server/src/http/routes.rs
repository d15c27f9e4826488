//! The router: which path goes to which handler, which routes need credentials, and the
//! shared state the handlers read. Also the small endpoints (`/api/v1/health`,
//! `/api/v1/info`) and the paging every listing shares.
//!
//! Protected: everything under `/api/v1` but `health` and `openapi.json`, and `/metrics`.
//! Public: `/api/v1/health` (for load balancers), the OpenAPI document, and the web view's
//! static files (they hold no data; the page asks the API, with credentials).

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use midge_core::{Broker, DropReason, Stats};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{self, HttpAuth};
use super::error::{ApiError, ErrorBody};
use super::log_ring::LogRing;
use super::{ListenerInfo, logs, metrics, openapi, publish, retained, sessions, topics, web};
use crate::limits::ConnectionCounters;

/// What every handler reads.
#[derive(Debug, Clone)]
pub(crate) struct AppState(Arc<Shared>);

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The broker and its surroundings, as the HTTP API sees them.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) broker: Arc<Broker>,
    pub(crate) counters: Arc<ConnectionCounters>,
    pub(crate) listeners: Vec<ListenerInfo>,
    pub(crate) ring: Arc<LogRing>,
    pub(crate) auth: HttpAuth,
    pub(crate) started: Instant,
    pub(crate) version: String,
    /// The cluster this node is in, if any (`/metrics` reports it).
    pub(crate) cluster: Option<Arc<dyn midge_cluster::Cluster>>,
}

impl AppState {
    pub(crate) fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

/// Every route.
pub(crate) fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/api/v1/info", get(info))
        .route("/api/v1/sessions", get(sessions::list))
        .route(
            "/api/v1/sessions/{client_id}",
            get(sessions::get_one).delete(sessions::delete),
        )
        .route("/api/v1/clients", get(sessions::clients))
        .route(
            "/api/v1/clients/{client_id}/disconnect",
            post(sessions::disconnect),
        )
        .route("/api/v1/publish", post(publish::publish))
        .route(
            "/api/v1/retained",
            get(retained::list).delete(retained::delete_matching),
        )
        .route(
            "/api/v1/retained/{*topic}",
            get(retained::get_one).delete(retained::delete_one),
        )
        .route("/api/v1/logs", get(logs::list))
        .route("/api/v1/topics", get(topics::list))
        .route("/metrics", get(metrics::render))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require));
    let public = Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/", get(web::index))
        .route("/app.js", get(web::script))
        .route("/style.css", get(web::style));
    protected
        .merge(public)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; the API is described at /api/v1/openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "this endpoint does not take that method",
    )
}

/// Where a listing starts and how long it is.
#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Paging {
    /// Items to skip, at most 1000000000. Default 0.
    #[serde(default)]
    #[param(minimum = 0, maximum = 1_000_000_000)]
    pub(crate) offset: usize,
    /// Items to return, 1 to 1000. Default 100.
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 1000)]
    pub(crate) limit: usize,
}

fn default_limit() -> usize {
    100
}

impl Paging {
    /// Checks the bounds.
    pub(crate) fn checked(self) -> Result<Self, ApiError> {
        if !(1..=1000).contains(&self.limit) {
            return Err(ApiError::bad_request("limit must be from 1 to 1000"));
        }
        if self.offset > 1_000_000_000 {
            return Err(ApiError::bad_request("offset must be at most 1000000000"));
        }
        Ok(self)
    }

    /// This page of `items`.
    pub(crate) fn page<T>(&self, items: Vec<T>) -> Vec<T> {
        items.into_iter().skip(self.offset).take(self.limit).collect()
    }
}

/// `{"status": "ok"}` while the broker runs.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok`: an answer at all means the broker is up.
    #[schema(example = "ok")]
    status: &'static str,
}

/// For load balancers: 200 while the broker runs. Needs no credentials.
#[utoipa::path(get, path = "/api/v1/health", tag = "broker",
    responses((status = 200, description = "The broker is running", body = Health)))]
pub(crate) async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// One listener of the broker.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ListenerView {
    /// Its place in the configuration (the `listener` label of the metrics).
    index: usize,
    /// The addresses it is bound to (`127.0.0.1:1883`, a Unix socket path).
    addresses: Vec<String>,
    /// `mqtt` or `websockets`.
    protocol: &'static str,
    /// Whether it speaks TLS.
    tls: bool,
    /// Connections open now.
    connections: usize,
}

/// The limits in force.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Limits {
    max_inflight_messages: u16,
    max_queued_messages: usize,
    max_queued_bytes: u64,
    max_packet_size: u32,
    message_size_limit: u32,
    max_keepalive: u16,
    retain_available: bool,
    max_qos: u8,
}

/// What the broker holds now.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CensusView {
    /// Sessions, connected or not.
    sessions: usize,
    /// Connected clients.
    connected: usize,
    /// Subscriptions, shared ones included.
    subscriptions: usize,
    /// Shared subscriptions.
    shared_subscriptions: usize,
    /// Retained messages.
    retained: usize,
    /// Their topic and payload bytes.
    retained_bytes: u64,
    /// Messages queued or in flight for sessions.
    queued: usize,
    /// Their topic and payload bytes.
    queued_bytes: u64,
}

/// Counters since the start.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CountersView {
    publish_received: u64,
    publish_sent: u64,
    publish_bytes_received: u64,
    publish_bytes_sent: u64,
    packets_received: u64,
    packets_sent: u64,
    bytes_received: u64,
    bytes_sent: u64,
    connects: u64,
    connects_refused: u64,
    sessions_expired: u64,
    denied_publish: u64,
    denied_subscribe: u64,
    denied_read: u64,
    connections_accepted: u64,
    connections_refused_max_connections: u64,
    connections_refused_global_max_connections: u64,
    connections_refused_max_connection_rate: u64,
    connection_timeouts: u64,
    tls_failures: u64,
    websocket_failures: u64,
    /// Messages dropped, by reason (`queue_full`, `queue_bytes_full`, `qos0_offline`,
    /// `expired`, `too_large_for_client`, `message_size_limit`).
    dropped: BTreeMap<String, u64>,
}

/// The broker: version, uptime, listeners, limits, what it holds and its counters.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Info {
    /// `midge version X.Y.Z`.
    version: String,
    /// Seconds since the start.
    uptime_seconds: u64,
    listeners: Vec<ListenerView>,
    limits: Limits,
    census: CensusView,
    counters: CountersView,
}

/// The broker's version, uptime, listeners, limits, what it holds and its counters.
#[utoipa::path(get, path = "/api/v1/info", tag = "broker",
    responses((status = 200, body = Info), (status = 401, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub(crate) async fn info(State(state): State<AppState>) -> impl IntoResponse {
    let broker = &state.broker;
    let config = broker.config();
    let census = broker.census();
    let stats = broker.stats();
    let counters = &state.counters;
    let get = Stats::get;
    Json(Info {
        version: state.version.clone(),
        uptime_seconds: state.started.elapsed().as_secs(),
        listeners: state
            .listeners
            .iter()
            .map(|l| ListenerView {
                index: l.index,
                addresses: l.addresses.clone(),
                protocol: l.protocol,
                tls: l.tls,
                connections: l.open.get(),
            })
            .collect(),
        limits: Limits {
            max_inflight_messages: config.max_inflight_messages,
            max_queued_messages: config.max_queued_messages,
            max_queued_bytes: config.max_queued_bytes,
            max_packet_size: config.max_packet_size,
            message_size_limit: config.message_size_limit,
            max_keepalive: config.max_keepalive,
            retain_available: config.retain_available,
            max_qos: config.max_qos.as_u8(),
        },
        census: CensusView {
            sessions: census.sessions,
            connected: census.connected,
            subscriptions: census.subscriptions,
            shared_subscriptions: census.shared_subscriptions,
            retained: census.retained,
            retained_bytes: census.retained_bytes,
            queued: census.queued,
            queued_bytes: census.queued_bytes,
        },
        counters: CountersView {
            publish_received: get(&stats.publish_received),
            publish_sent: get(&stats.publish_sent),
            publish_bytes_received: get(&stats.publish_bytes_received),
            publish_bytes_sent: get(&stats.publish_bytes_sent),
            packets_received: get(&stats.packets_received),
            packets_sent: get(&stats.packets_sent),
            bytes_received: get(&stats.bytes_received),
            bytes_sent: get(&stats.bytes_sent),
            connects: get(&stats.connects),
            connects_refused: get(&stats.connects_refused),
            sessions_expired: get(&stats.sessions_expired),
            denied_publish: get(&stats.denied_write),
            denied_subscribe: get(&stats.denied_subscribe),
            denied_read: get(&stats.denied_read),
            connections_accepted: ConnectionCounters::get(&counters.accepted),
            connections_refused_max_connections: ConnectionCounters::get(&counters.refused_listener_full),
            connections_refused_global_max_connections: ConnectionCounters::get(
                &counters.refused_broker_full,
            ),
            connections_refused_max_connection_rate: ConnectionCounters::get(&counters.refused_rate),
            connection_timeouts: ConnectionCounters::get(&counters.connect_timeouts),
            tls_failures: ConnectionCounters::get(&counters.tls_failures),
            websocket_failures: ConnectionCounters::get(&counters.websocket_failures),
            dropped: DropReason::ALL
                .iter()
                .map(|r| (r.as_str().to_owned(), stats.dropped_count(*r)))
                .collect(),
        },
    })
}
