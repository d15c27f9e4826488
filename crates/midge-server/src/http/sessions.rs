//! Sessions and clients: list and search them (connected or not), read one, disconnect a
//! client, delete a session. A client is a session with a connection attached, so
//! `/api/v1/clients` is `/api/v1/sessions?connected=true`.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use midge_codec::ProtocolVersion;
use midge_core::SessionInfo;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiPath, ApiQuery, ErrorBody};
use super::routes::{AppState, Paging};

/// One session.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Session {
    /// The client identifier.
    #[schema(example = "sensor-7")]
    client_id: String,
    /// Whether a client is connected to it now.
    connected: bool,
    /// The MQTT version of the last connection: `3.1`, `3.1.1` or `5.0`.
    #[schema(example = "5.0")]
    protocol: Option<&'static str>,
    /// The user name of the last connection.
    username: Option<String>,
    /// The listener (its place in the configuration) of the last connection.
    listener: usize,
    /// Its topic filters, sorted.
    subscriptions: Vec<String>,
    /// Messages queued for it beyond the inflight window.
    queued: usize,
    /// Their topic and payload bytes.
    queued_bytes: u64,
    /// QoS 1 and 2 messages sent and not yet acknowledged.
    inflight: usize,
    /// Their topic and payload bytes.
    inflight_bytes: u64,
    /// Seconds the session outlives its connection; null: forever.
    expiry_seconds: Option<u64>,
    /// Seconds since its client disconnected; null while connected.
    disconnected_seconds: Option<u64>,
    /// Whether a will waits to be published.
    will: bool,
}

impl Session {
    fn from_info(info: SessionInfo, now: Instant) -> Self {
        Self {
            client_id: info.client_id.to_string(),
            connected: info.connected,
            protocol: info.protocol.map(|p| match p {
                ProtocolVersion::V31 => "3.1",
                ProtocolVersion::V311 => "3.1.1",
                ProtocolVersion::V5 => "5.0",
            }),
            username: info.username.map(|u| u.to_string()),
            listener: info.listener,
            subscriptions: info.subscriptions.iter().map(ToString::to_string).collect(),
            queued: info.queued,
            queued_bytes: info.queued_bytes,
            inflight: info.inflight,
            inflight_bytes: info.inflight_bytes,
            expiry_seconds: info.expiry.map(|e| e.as_secs()),
            disconnected_seconds: info
                .disconnected_at
                .map(|at| now.saturating_duration_since(at).as_secs()),
            will: info.will,
        }
    }
}

/// A page of sessions.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionPage {
    /// The sessions of this page, by client identifier.
    items: Vec<Session>,
    /// How many sessions match, on all pages.
    total: usize,
    /// The offset of this page.
    offset: usize,
    /// The page size asked for.
    limit: usize,
}

/// How to narrow a listing of sessions.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SessionQuery {
    /// Only sessions with (true) or without (false) a connected client.
    connected: Option<bool>,
    /// Only client identifiers containing this text.
    search: Option<String>,
    /// Only sessions whose last connection had this user name.
    username: Option<String>,
}

/// Sessions, connected or not, by client identifier; narrowed and paged.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions",
    params(SessionQuery, Paging),
    responses((status = 200, body = SessionPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<SessionQuery>,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Json<SessionPage>, ApiError> {
    listing(&state, query, paging)
}

/// Connected clients, by client identifier; narrowed and paged (`connected` is ignored).
#[utoipa::path(get, path = "/api/v1/clients", tag = "sessions",
    params(SessionQuery, Paging),
    responses((status = 200, body = SessionPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub(crate) async fn clients(
    State(state): State<AppState>,
    ApiQuery(mut query): ApiQuery<SessionQuery>,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Json<SessionPage>, ApiError> {
    query.connected = Some(true);
    listing(&state, query, paging)
}

fn listing(state: &AppState, query: SessionQuery, paging: Paging) -> Result<Json<SessionPage>, ApiError> {
    let paging = paging.checked()?;
    let broker = &state.broker;
    let now = Instant::now();
    let ids: Vec<_> = broker
        .client_ids()
        .into_iter()
        .filter(|(_, online)| query.connected.is_none_or(|want| *online == want))
        .filter(|(id, _)| query.search.as_deref().is_none_or(|s| id.contains(s)))
        .map(|(id, _)| id)
        .collect();
    let (total, items) = match &query.username {
        // The user name is inside each session: look at every candidate.
        Some(username) => {
            let matching: Vec<SessionInfo> = ids
                .iter()
                .filter_map(|id| broker.session_info(id))
                .filter(|info| info.username.as_deref() == Some(username.as_str()))
                .collect();
            (matching.len(), paging.page(matching))
        }
        None => (
            ids.len(),
            paging
                .page(ids)
                .iter()
                .filter_map(|id| broker.session_info(id))
                .collect(),
        ),
    };
    Ok(Json(SessionPage {
        items: items.into_iter().map(|i| Session::from_info(i, now)).collect(),
        total,
        offset: paging.offset,
        limit: paging.limit,
    }))
}

/// One session.
#[utoipa::path(get, path = "/api/v1/sessions/{client_id}", tag = "sessions",
    params(("client_id" = String, Path, description = "The client identifier")),
    responses((status = 200, body = Session), (status = 401, body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub(crate) async fn get_one(
    State(state): State<AppState>,
    ApiPath(client_id): ApiPath<String>,
) -> Result<Json<Session>, ApiError> {
    state
        .broker
        .session_info(&client_id)
        .map(|info| Json(Session::from_info(info, Instant::now())))
        .ok_or_else(|| no_session(&client_id))
}

/// Deletes a session: its client, if connected, is disconnected (MQTT 5: reason 0x98) without
/// its will, and its subscriptions and queued messages are dropped.
#[utoipa::path(delete, path = "/api/v1/sessions/{client_id}", tag = "sessions",
    params(("client_id" = String, Path, description = "The client identifier")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    ApiPath(client_id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if state.broker.delete_session(&client_id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_session(&client_id))
    }
}

/// Whether to publish the will of a client the API disconnects.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DisconnectQuery {
    /// Publish the client's will, as for any connection the server closes. Default true.
    #[serde(default = "yes")]
    will: bool,
}

fn yes() -> bool {
    true
}

/// Disconnects a connected client (MQTT 5: DISCONNECT with reason 0x98, administrative
/// action). Its session stays or ends as its expiry interval says.
#[utoipa::path(post, path = "/api/v1/clients/{client_id}/disconnect", tag = "sessions",
    params(("client_id" = String, Path, description = "The client identifier"), DisconnectQuery),
    responses((status = 204, description = "Disconnected"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No client connected with this identifier", body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub(crate) async fn disconnect(
    State(state): State<AppState>,
    ApiPath(client_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<DisconnectQuery>,
) -> Result<StatusCode, ApiError> {
    if state
        .broker
        .disconnect_client(&client_id, query.will, Instant::now())
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "no client connected with client identifier {client_id:?}"
        )))
    }
}

fn no_session(client_id: &str) -> ApiError {
    ApiError::not_found(format!("no session with client identifier {client_id:?}"))
}
