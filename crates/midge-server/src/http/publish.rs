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

/// Standard base64 that does not insist the unused bits of the last character be zero (the
/// schema's pattern cannot say so either).
fn base64_decode(text: &str, what: &str) -> Result<Bytes, ApiError> {
    use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    LENIENT
        .decode(text.as_bytes())
        .map(Bytes::from)
        .map_err(|e| ApiError::bad_request(format!("{what} is not base64: {e}")))
}

/// A user property.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserPropertyBody {
    /// The name (no U+0000, at most 65535 bytes).
    #[schema(pattern = "^[^\\u0000]*$")]
    name: String,
    /// The value (no U+0000, at most 65535 bytes).
    #[schema(pattern = "^[^\\u0000]*$")]
    value: String,
}

/// MQTT 5 PUBLISH properties; subscribers on MQTT 3.1.1 do not see them.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishPropertiesBody {
    /// Payload Format Indicator: true for UTF-8 text.
    payload_format_indicator: Option<bool>,
    /// Message Expiry Interval in seconds.
    // Documented as a 64-bit integer with MQTT's bounds: utoipa's default `int32` format for a
    // u32 tells clients (and schemathesis) that values past 2^31 - 1 are invalid.
    #[serde(default, deserialize_with = "optional_whole")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    message_expiry_interval: Option<u32>,
    /// Content Type (no U+0000, at most 65535 bytes).
    #[schema(pattern = "^[^\\u0000]*$")]
    content_type: Option<String>,
    /// Response Topic: a topic name as for `topic`.
    #[schema(pattern = "^[^$+#\\u0000][^+#\\u0000]*$")]
    response_topic: Option<String>,
    /// Correlation Data, in standard base64.
    #[schema(pattern = "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")]
    correlation_data: Option<String>,
    /// User Properties, in order.
    #[serde(default)]
    user_properties: Vec<UserPropertyBody>,
}

/// A message to publish. The payload is `payload` (text) or `payload_base64` (bytes), not
/// both; neither is an empty payload.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishRequest {
    /// The topic: a topic name (no `+` or `#`, no U+0000, at most 65535 bytes), not starting
    /// with `$`.
    #[schema(example = "sensors/7/temperature", pattern = "^[^$+#\\u0000][^+#\\u0000]*$")]
    topic: String,
    /// The payload as text (sent as its UTF-8 bytes).
    #[schema(example = "21.5")]
    payload: Option<String>,
    /// The payload in standard base64, for binary payloads.
    #[schema(pattern = "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")]
    payload_base64: Option<String>,
    /// 0, 1 or 2. Default 0.
    #[serde(default, deserialize_with = "whole")]
    #[schema(minimum = 0, maximum = 2)]
    qos: u8,
    /// Keep as the topic's retained message (an empty payload deletes it). Default false.
    #[serde(default)]
    retain: bool,
    /// MQTT 5 properties.
    #[serde(default)]
    properties: PublishPropertiesBody,
}

/// A whole number as JSON Schema's `integer` has it: `1` or `1.0`, not `1.5`.
fn whole<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::Error;
    let number = serde_json::Number::deserialize(deserializer)?;
    let value = match (number.as_u64(), number.as_f64()) {
        (Some(n), _) => Some(n),
        (None, Some(f)) if f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64 => Some(f as u64),
        _ => None,
    };
    value
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| D::Error::custom(format!("{number} is not a whole number in range")))
}

/// [`whole`], or null.
fn optional_whole<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    #[derive(Deserialize)]
    struct Wrapper<T: TryFrom<u64>>(#[serde(deserialize_with = "whole")] T);
    Ok(Option::<Wrapper<T>>::deserialize(deserializer)?.map(|Wrapper(value)| value))
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
    let payload = match (request.payload, request.payload_base64) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("give payload or payload_base64, not both"));
        }
        (Some(text), None) => Bytes::from(text.into_bytes()),
        (None, Some(encoded)) => base64_decode(&encoded, "payload_base64")?,
        (None, None) => Bytes::new(),
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
        .map(|data| base64_decode(&data, "correlation_data"))
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
