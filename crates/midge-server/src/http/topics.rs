//! `GET /api/v1/topics`: what flows, per topic, for the web view's live tree. Each call keeps
//! the broker's topic tap on for another minute (it costs one atomic load per message while
//! off, and a short lock per message while on), so the counts exist only while someone looks.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::routes::AppState;

/// How long one look keeps the tap on.
const WATCH: Duration = Duration::from_secs(60);

/// One topic's traffic since the tap was switched on.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TopicView {
    /// The topic.
    topic: String,
    /// Messages routed to it.
    messages: u64,
    /// Their payload bytes.
    bytes: u64,
    /// The start of the last payload (256 bytes at most), as text when it is UTF-8.
    last_payload: Option<String>,
    /// The last payload's size.
    last_size: usize,
    /// Milliseconds since the last message.
    last_ms_ago: u64,
}

/// Traffic per topic.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TopicTraffic {
    /// Milliseconds since the counting started (0 on the first call, which starts it).
    counting_ms: u64,
    /// Every topic seen, by name.
    topics: Vec<TopicView>,
    /// Messages to topics beyond the 10000 the tap follows.
    overflow: u64,
}

/// Messages per topic since counting started; the first call starts counting, and it stops a
/// minute after the last call.
#[utoipa::path(get, path = "/api/v1/topics", tag = "messages",
    responses((status = 200, body = TopicTraffic), (status = 401, body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub(crate) async fn list(State(state): State<AppState>) -> Json<TopicTraffic> {
    let now = Instant::now();
    let report = state.broker.topic_activity();
    state.broker.watch_topics(WATCH, now);
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let mut topics: Vec<TopicView> = report
        .topics
        .into_iter()
        .map(|(topic, seen)| TopicView {
            topic: topic.to_string(),
            messages: seen.messages,
            bytes: seen.bytes,
            last_payload: text(&seen.last_payload),
            last_size: seen.last_size,
            last_ms_ago: millis(now.saturating_duration_since(seen.last_at)),
        })
        .collect();
    topics.sort_unstable_by(|a, b| a.topic.cmp(&b.topic));
    Json(TopicTraffic {
        counting_ms: report
            .since
            .map_or(0, |since| millis(now.saturating_duration_since(since))),
        topics,
        overflow: report.overflow,
    })
}

/// The payload as text if it is UTF-8, allowing for a character cut at the end of a preview.
fn text(bytes: &[u8]) -> Option<String> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Some(text.to_owned()),
        Err(error) if error.error_len().is_none() => bytes
            .get(..error.valid_up_to())
            .and_then(|b| std::str::from_utf8(b).ok())
            .map(str::to_owned),
        Err(_) => None,
    }
}
