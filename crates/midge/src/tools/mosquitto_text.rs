//! Mosquitto's wording: libmosquitto's `mosquitto_connack_string`, `mosquitto_reason_string`
//! and `mosquitto_strerror`, and the numbers its tools exit with. Scripts match on these
//! strings, so they are copied exactly; nothing else here.

use midge_codec::ReasonCode;

/// libmosquitto error numbers the tools exit with or print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MosqError {
    /// MOSQ_ERR_PROTOCOL (2).
    Protocol = 2,
    /// MOSQ_ERR_NO_CONN (4).
    NoConn = 4,
    /// MOSQ_ERR_CONN_REFUSED (5).
    ConnRefused = 5,
    /// MOSQ_ERR_CONN_LOST (7).
    ConnLost = 7,
    /// MOSQ_ERR_TLS (8).
    Tls = 8,
    /// MOSQ_ERR_PAYLOAD_SIZE (9).
    PayloadSize = 9,
    /// MOSQ_ERR_KEEPALIVE (19).
    Keepalive = 19,
    /// MOSQ_ERR_TIMEOUT (27).
    Timeout = 27,
    /// MOSQ_ERR_QOS_NOT_SUPPORTED (24).
    QosNotSupported = 24,
}

impl MosqError {
    /// `mosquitto_strerror`.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::Protocol => "A network protocol error occurred when communicating with the broker.",
            Self::NoConn => "The client is not currently connected.",
            Self::ConnRefused => "The connection was refused.",
            Self::ConnLost => "The connection was lost.",
            Self::Tls => "A TLS error occurred.",
            Self::PayloadSize => "Payload too large.",
            Self::Keepalive => "Keepalive timeout.",
            Self::Timeout => "Timeout.",
            Self::QosNotSupported => "Requested QoS not supported by server.",
        }
    }
}

/// `mosquitto_connack_string`: the MQTT 3.1/3.1.1 CONNACK return codes.
pub(crate) fn connack_string(code: u8) -> &'static str {
    match code {
        0 => "Connection Accepted.",
        1 => "Connection Refused: unacceptable protocol version.",
        2 => "Connection Refused: identifier rejected.",
        3 => "Connection Refused: broker unavailable.",
        4 => "Connection Refused: bad user name or password.",
        5 => "Connection Refused: not authorised.",
        _ => "Connection Refused: unknown reason.",
    }
}

/// `mosquitto_reason_string`: MQTT 5 reason codes.
pub(crate) fn reason_string(code: u8) -> &'static str {
    match ReasonCode::from_u8(code) {
        None => "Unknown reason",
        Some(reason) => match reason {
            ReasonCode::Success => "Success",
            ReasonCode::GrantedQos1 => "Granted QoS 1",
            ReasonCode::GrantedQos2 => "Granted QoS 2",
            ReasonCode::DisconnectWithWillMessage => "Disconnect with Will Message",
            ReasonCode::NoMatchingSubscribers => "No matching subscribers",
            ReasonCode::NoSubscriptionExisted => "No subscription existed",
            ReasonCode::ContinueAuthentication => "Continue authentication",
            ReasonCode::ReAuthenticate => "Re-authenticate",
            ReasonCode::UnspecifiedError => "Unspecified error",
            ReasonCode::MalformedPacket => "Malformed Packet",
            ReasonCode::ProtocolError => "Protocol Error",
            ReasonCode::ImplementationSpecificError => "Implementation specific error",
            ReasonCode::UnsupportedProtocolVersion => "Unsupported Protocol Version",
            ReasonCode::ClientIdentifierNotValid => "Client Identifier not valid",
            ReasonCode::BadUserNameOrPassword => "Bad User Name or Password",
            ReasonCode::NotAuthorized => "Not authorized",
            ReasonCode::ServerUnavailable => "Server unavailable",
            ReasonCode::ServerBusy => "Server busy",
            ReasonCode::Banned => "Banned",
            ReasonCode::ServerShuttingDown => "Server shutting down",
            ReasonCode::BadAuthenticationMethod => "Bad authentication method",
            ReasonCode::KeepAliveTimeout => "Keep Alive timeout",
            ReasonCode::SessionTakenOver => "Session taken over",
            ReasonCode::TopicFilterInvalid => "Topic Filter invalid",
            ReasonCode::TopicNameInvalid => "Topic Name invalid",
            ReasonCode::PacketIdentifierInUse => "Packet Identifier in use",
            ReasonCode::PacketIdentifierNotFound => "Packet Identifier not found",
            ReasonCode::ReceiveMaximumExceeded => "Receive Maximum exceeded",
            ReasonCode::TopicAliasInvalid => "Topic Alias invalid",
            ReasonCode::PacketTooLarge => "Packet too large",
            ReasonCode::MessageRateTooHigh => "Message rate too high",
            ReasonCode::QuotaExceeded => "Quota exceeded",
            ReasonCode::AdministrativeAction => "Administrative action",
            ReasonCode::PayloadFormatInvalid => "Payload format invalid",
            ReasonCode::RetainNotSupported => "Retain not supported",
            ReasonCode::QosNotSupported => "QoS not supported",
            ReasonCode::UseAnotherServer => "Use another server",
            ReasonCode::ServerMoved => "Server moved",
            ReasonCode::SharedSubscriptionsNotSupported => "Shared Subscriptions not supported",
            ReasonCode::ConnectionRateExceeded => "Connection rate exceeded",
            ReasonCode::MaximumConnectTime => "Maximum connect time",
            ReasonCode::SubscriptionIdentifiersNotSupported => "Subscription identifiers not supported",
            ReasonCode::WildcardSubscriptionsNotSupported => "Wildcard Subscriptions not supported",
            _ => "Unknown reason",
        },
    }
}

/// The message for a refused connection, as both tools print it after "Connection error: ".
pub(crate) fn connection_error(v5: bool, code: u8) -> String {
    if !v5 {
        return connack_string(code).to_owned();
    }
    if code == ReasonCode::UnsupportedProtocolVersion.as_u8() {
        format!(
            "{}. Try connecting to an MQTT v5 broker, or use MQTT v3.x mode.",
            reason_string(code)
        )
    } else {
        reason_string(code).to_owned()
    }
}
