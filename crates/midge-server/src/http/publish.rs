//! `POST /api/v1/publish`: a message published by the broker itself, with the QoS, RETAIN
//! flag and MQTT 5 properties of the request, delivered like any other (subscribers' read
//! rules apply). Topics starting with `$` are the broker's and are refused.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use bytes::Bytes;
use bytestring::ByteString;
use midge_codec::properties::{PublishProperties, UserProperty};
use midge_codec::{PayloadFormat, QoS, TopicName};
use midge_core::Message;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiJson, ErrorBody};
use super::routes::AppState;

/// How the payload is written in the request.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PayloadEncoding {
    /// The payload is the text itself (UTF-8).
    #[default]
    Utf8,
    /// The payload is standard base64 (binary payloads).
    Base64,
}

/// A user property.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserPropertyBody {
    /// The name.
    name: String,
    /// The value.
    value: String,
}

/// MQTT 5 PUBLISH properties; subscribers on MQTT 3.1.1 do not see them.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishPropertiesBody {
    /// Payload Format Indicator: true for UTF-8 text.
    payload_format_indicator: Option<bool>,
    /// Message Expiry Interval in seconds.
    message_expiry_interval: Option<u32>,
    /// Content Type.
    content_type: Option<String>,
    /// Response Topic (a topic name, no wildcards).
    response_topic: Option<String>,
    /// Correlation Data, in standard base64.
    correlation_data: Option<String>,
    /// User Properties, in order.
    #[serde(default)]
    user_properties: Vec<UserPropertyBody>,
}

/// A message to publish.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishRequest {
    /// The topic: a topic name (no `+` or `#`), not starting with `$`.
    #[schema(example = "sensors/7/temperature")]
    topic: String,
    /// The payload, as `encoding` says. Default: empty.
    #[serde(default)]
    #[schema(example = "21.5")]
    payload: String,
    /// How `payload` is written. Default: utf8.
    #[serde(default)]
    encoding: PayloadEncoding,
    /// 0, 1 or 2. Default 0.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2)]
    qos: u8,
    /// Keep as the topic's retained message (an empty payload deletes it). Default false.
    #[serde(default)]
    retain: bool,
    /// MQTT 5 properties.
    #[serde(default)]
    properties: PublishPropertiesBody,
}

/// What became of a published message.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Published {
    /// Sessions it was queued for.
    delivered: usize,
}

/// Publishes a message as the broker.
#[utoipa::path(post, path = "/api/v1/publish", tag = "messages",
    request_body = PublishRequest,
    responses((status = 200, body = Published),
        (status = 400, description = "A bad topic, QoS, payload or property", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 413, description = "The payload exceeds message_size_limit", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody)),
    security(("bearer" = []), ("basic" = [])))]
pub(crate) async fn publish(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<PublishRequest>,
) -> Result<Json<Published>, ApiError> {
    let config = state.broker.config();
    let topic = topic_name(&request.topic, "topic")?;
    let qos = QoS::from_bits(request.qos).ok_or_else(|| ApiError::bad_request("qos must be 0, 1 or 2"))?;
    if qos > config.max_qos {
        return Err(ApiError::bad_request(format!(
            "qos {} is above the broker's max_qos {}",
            request.qos,
            config.max_qos.as_u8()
        )));
    }
    if request.retain && !config.retain_available {
        return Err(ApiError::bad_request(
            "retained messages are off (retain_available false)",
        ));
    }
    let payload = match request.encoding {
        PayloadEncoding::Utf8 => Bytes::from(request.payload.into_bytes()),
        PayloadEncoding::Base64 => Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(request.payload.as_bytes())
                .map_err(|e| ApiError::bad_request(format!("payload is not base64: {e}")))?,
        ),
    };
    if config.message_size_limit != 0 && payload.len() > config.message_size_limit as usize {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the payload exceeds message_size_limit ({} bytes)",
                config.message_size_limit
            ),
        ));
    }
    let now = Instant::now();
    let (properties, expires_at) = properties(request.properties, now)?;
    let message = Message::new(topic, payload, qos, request.retain, properties, expires_at, None);
    let delivered = state.broker.publish_admin(message, now);
    tracing::debug!("HTTP API published to {}.", request.topic);
    Ok(Json(Published { delivered }))
}

/// A topic name a client could publish to, not a `$` topic.
fn topic_name(text: &str, what: &str) -> Result<TopicName, ApiError> {
    if text.starts_with('$') {
        return Err(ApiError::bad_request(format!(
            "{what}: topics starting with $ are reserved for the broker"
        )));
    }
    TopicName::new(text).map_err(|e| ApiError::bad_request(format!("{what}: {e}")))
}

/// A string MQTT can carry: at most 65535 bytes, no U+0000 [MQTT-1.5.4-2].
fn mqtt_string(text: String, what: &str) -> Result<ByteString, ApiError> {
    if text.len() > usize::from(u16::MAX) || text.contains('\0') {
        return Err(ApiError::bad_request(format!(
            "{what}: at most 65535 bytes, without U+0000"
        )));
    }
    Ok(ByteString::from(text))
}

fn properties(
    body: PublishPropertiesBody,
    now: Instant,
) -> Result<(PublishProperties, Option<Instant>), ApiError> {
    let mut properties = PublishProperties::default();
    properties.payload_format_indicator = body.payload_format_indicator.map(|utf8| {
        if utf8 {
            PayloadFormat::Utf8
        } else {
            PayloadFormat::Unspecified
        }
    });
    properties.message_expiry_interval = body.message_expiry_interval;
    properties.content_type = body
        .content_type
        .map(|c| mqtt_string(c, "content_type"))
        .transpose()?;
    properties.response_topic = body
        .response_topic
        .map(|t| topic_name(&t, "response_topic"))
        .transpose()?;
    properties.correlation_data = body
        .correlation_data
        .map(|data| {
            base64::engine::general_purpose::STANDARD
                .decode(data.as_bytes())
                .map(Bytes::from)
                .map_err(|e| ApiError::bad_request(format!("correlation_data is not base64: {e}")))
        })
        .transpose()?;
    for pair in body.user_properties {
        let name = mqtt_string(pair.name, "user property name")?;
        let value = mqtt_string(pair.value, "user property value")?;
        properties.user_properties.push(UserProperty::new(name, value));
    }
    let expires_at = body
        .message_expiry_interval
        .map(|seconds| now + Duration::from_secs(u64::from(seconds)));
    Ok((properties, expires_at))
}
