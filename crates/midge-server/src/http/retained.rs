//! Retained messages: list them by topic filter (paged, by topic), read or delete one by
//! topic, delete every one a filter matches.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use midge_codec::{TopicFilter, TopicName};
use midge_core::Message;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiPath, ApiQuery, ErrorBody};
use super::routes::{AppState, Paging};

/// One retained message.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RetainedMessage {
    /// Its topic.
    #[schema(example = "sensors/7/temperature")]
    topic: String,
    /// The payload as text, when it is UTF-8; null otherwise.
    payload: Option<String>,
    /// The payload in standard base64.
    payload_base64: String,
    /// The payload's size in bytes.
    size: usize,
    /// The QoS it was published with.
    qos: u8,
    /// Seconds until it expires (MQTT 5 Message Expiry Interval); null: never.
    expires_in_seconds: Option<u64>,
    /// Its Content Type, if it has one.
    content_type: Option<String>,
}

impl RetainedMessage {
    pub(crate) fn of(message: &Message, now: Instant) -> Self {
        Self {
            topic: message.topic.to_string(),
            payload: std::str::from_utf8(&message.payload).ok().map(str::to_owned),
            payload_base64: base64::engine::general_purpose::STANDARD.encode(&message.payload),
            size: message.payload.len(),
            qos: message.qos.as_u8(),
            expires_in_seconds: message
                .expires_at
                .map(|at| at.saturating_duration_since(now).as_secs()),
            content_type: message.properties.content_type.as_ref().map(ToString::to_string),
        }
    }
}

/// A page of retained messages.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RetainedPage {
    /// The messages of this page, by topic.
    items: Vec<RetainedMessage>,
    /// How many match, on all pages.
    total: usize,
    /// The offset of this page.
    offset: usize,
    /// The page size asked for.
    limit: usize,
}

/// Which retained messages.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FilterQuery {
    /// An MQTT topic filter (`+` and `#` as in a subscription; a `$share/GROUP/` filter stands
    /// for its topic filter). Default `#`, which as in MQTT does not match topics starting with
    /// `$` (ask for `$SYS/#` to see those).
    #[param(
        min_length = 1,
        pattern = "^(#|(\\+|[^+#/\\u0000]*)(/(\\+|[^+#/\\u0000]*))*(/#)?)$"
    )]
    filter: Option<String>,
}

/// Which retained messages to delete.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RequiredFilter {
    /// An MQTT topic filter, as for listing (`#` deletes every retained message but those of
    /// `$` topics).
    #[param(
        min_length = 1,
        pattern = "^(#|(\\+|[^+#/\\u0000]*)(/(\\+|[^+#/\\u0000]*))*(/#)?)$"
    )]
    filter: String,
}

/// One topic, in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct TopicPath {
    /// The topic (no `+`, `#` or U+0000); its slashes may stay as they are or be
    /// percent-encoded.
    #[param(min_length = 1, pattern = "^[^+#\\u0000]+$")]
    topic: String,
}

/// How many messages a bulk delete removed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Deleted {
    /// Messages deleted.
    deleted: usize,
}

fn parse_filter(text: &str) -> Result<TopicFilter, ApiError> {
    let filter = TopicFilter::new(text).map_err(|e| ApiError::bad_request(format!("filter: {e}")))?;
    if filter.shared().is_some() {
        return Err(ApiError::bad_request(
            "filter: a shared subscription is not a topic filter here",
        ));
    }
    Ok(filter)
}

/// The retained messages `filter` matches, sorted by topic.
fn matching(state: &AppState, filter: &TopicFilter) -> Vec<Arc<Message>> {
    let mut found = state.broker.retained_matching(filter.as_str());
    let now = Instant::now();
    found.retain(|m| !m.is_expired(now));
    found.sort_unstable_by(|a, b| a.topic.as_str().cmp(b.topic.as_str()));
    found
}

/// Retained messages whose topics match a filter, by topic, paged.
#[utoipa::path(get, path = "/api/v1/retained", tag = "retained",
    params(FilterQuery, Paging),
    responses((status = 200, body = RetainedPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<FilterQuery>,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Json<RetainedPage>, ApiError> {
    let paging = paging.checked()?;
    let filter = parse_filter(query.filter.as_deref().unwrap_or("#"))?;
    let found = matching(&state, &filter);
    let now = Instant::now();
    let total = found.len();
    Ok(Json(RetainedPage {
        items: paging
            .page(found)
            .iter()
            .map(|m| RetainedMessage::of(m, now))
            .collect(),
        total,
        offset: paging.offset,
        limit: paging.limit,
    }))
}

/// Deletes every retained message a filter matches; the filter is required.
#[utoipa::path(delete, path = "/api/v1/retained", tag = "retained",
    params(RequiredFilter),
    responses((status = 200, body = Deleted), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub(crate) async fn delete_matching(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<RequiredFilter>,
) -> Result<Json<Deleted>, ApiError> {
    let text = query.filter;
    let filter = parse_filter(&text)?;
    let deleted = matching(&state, &filter)
        .iter()
        .filter(|m| state.broker.delete_retained(&m.topic))
        .count();
    tracing::info!("HTTP API deleted {deleted} retained messages matching {text}.");
    Ok(Json(Deleted { deleted }))
}

fn topic(text: &str) -> Result<TopicName, ApiError> {
    TopicName::new(text).map_err(|e| ApiError::bad_request(format!("topic: {e}")))
}

/// The retained message of one topic.
#[utoipa::path(get, path = "/api/v1/retained/{topic}", tag = "retained",
    params(TopicPath),
    responses((status = 200, body = RetainedMessage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No retained message on this topic", body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub(crate) async fn get_one(
    State(state): State<AppState>,
    ApiPath(TopicPath { topic: text }): ApiPath<TopicPath>,
) -> Result<Json<RetainedMessage>, ApiError> {
    let topic = topic(&text)?;
    let now = Instant::now();
    state
        .broker
        .retained_matching(topic.as_str())
        .into_iter()
        .find(|m| m.topic == topic && !m.is_expired(now))
        .map(|m| Json(RetainedMessage::of(&m, now)))
        .ok_or_else(|| ApiError::not_found(format!("no retained message on {text:?}")))
}

/// Deletes the retained message of one topic.
#[utoipa::path(delete, path = "/api/v1/retained/{topic}", tag = "retained",
    params(TopicPath),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No retained message on this topic", body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub(crate) async fn delete_one(
    State(state): State<AppState>,
    ApiPath(TopicPath { topic: text }): ApiPath<TopicPath>,
) -> Result<StatusCode, ApiError> {
    let topic = topic(&text)?;
    if state.broker.delete_retained(&topic) {
        tracing::info!("HTTP API deleted the retained message of {text}.");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no retained message on {text:?}")))
    }
}
