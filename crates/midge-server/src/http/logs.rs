//! `GET /api/v1/logs`: the recent log lines kept by the [`LogRing`](super::log_ring::LogRing),
//! filtered by level and client.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use tracing::Level;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiQuery, ErrorBody};
use super::routes::AppState;

/// The least severe level to return.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LevelName {
    Error,
    Warn,
    Info,
    Debug,
    /// Everything kept (the default).
    #[default]
    Trace,
}

impl LevelName {
    fn level(self) -> Level {
        match self {
            Self::Error => Level::ERROR,
            Self::Warn => Level::WARN,
            Self::Info => Level::INFO,
            Self::Debug => Level::DEBUG,
            Self::Trace => Level::TRACE,
        }
    }
}

/// Which lines.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogQuery {
    /// The least severe level: `error`, `warn`, `info`, `debug` or `trace` (everything kept).
    #[serde(default)]
    #[param(inline)]
    level: LevelName,
    /// Only lines about this client identifier.
    client_id: Option<String>,
    /// Only lines after the one with this id (for polling).
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    after: Option<u64>,
    /// The newest lines to return, 1 to 1000. Default 100.
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 1000)]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

/// One log line.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LogLineView {
    /// Its place in the log since the start.
    id: u64,
    /// When, in milliseconds since the Unix epoch.
    time_ms: u64,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    level: String,
    /// The module that logged it.
    target: String,
    /// The message, as the log file has it.
    message: String,
    /// The client it is about, if the line says.
    client_id: Option<String>,
}

/// Recent log lines, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LogLines {
    lines: Vec<LogLineView>,
}

/// The newest log lines kept in memory (`http_log_lines`), oldest first. Info and more
/// severe lines are kept; debug lines too when the broker logs them (`log_type debug`, `-v`).
#[utoipa::path(get, path = "/api/v1/logs", tag = "broker",
    params(LogQuery),
    responses((status = 200, body = LogLines), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> Result<Json<LogLines>, ApiError> {
    if !(1..=1000).contains(&query.limit) {
        return Err(ApiError::bad_request("limit must be from 1 to 1000"));
    }
    if query.after.is_some_and(|after| after > i64::MAX as u64) {
        return Err(ApiError::bad_request("after must be at most 9223372036854775807"));
    }
    let lines = state
        .ring
        .query(
            query.level.level(),
            query.client_id.as_deref(),
            query.after,
            query.limit,
        )
        .into_iter()
        .map(|line| LogLineView {
            id: line.id,
            time_ms: line.time_ms,
            level: line.level.to_string(),
            target: line.target,
            message: line.message,
            client_id: line.client_id,
        })
        .collect();
    Ok(Json(LogLines { lines }))
}
