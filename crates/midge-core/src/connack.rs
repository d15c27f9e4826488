//! What a CONNACK tells an MQTT 5 client (§3.2.2.3): the broker's capabilities as configured,
//! what it decided about this client, and, on a refusal, why and where to go instead.
//!
//! - Capabilities, each from configuration and sent only when it differs from what the absent
//!   property means: Receive Maximum (`max_inflight_messages`), Maximum Packet Size
//!   (`max_packet_size`), Topic Alias Maximum (`max_topic_alias`; absent is 0), Maximum QoS
//!   (`max_qos`) [MQTT-3.2.2-9], Retain Available (`retain_available`), Wildcard Subscription,
//!   Subscription Identifiers and Shared Subscription Available (Midge's
//!   `wildcard_subscription_available`, `subscription_identifier_available`,
//!   `shared_subscription_available`).
//! - About the client: Assigned Client Identifier [MQTT-3.2.2-16], Server Keep Alive
//!   (`max_keepalive`), Response Information when the client asked for it and
//!   `response_information` is set (never otherwise [MQTT-3.1.2-28]).
//! - A refusal: Session Present 0 [MQTT-3.2.2-6], a Reason String (`problem.rs`), and for a
//!   listener with `server_reference` the reason 0x9C or 0x9D with the Server Reference (§4.11).
//!
//! Never: send Response Information nobody asked for, or a Server Reference with anything but
//! 0x9C or 0x9D.

use bytestring::ByteString;
use midge_codec::properties::ConnAckProperties;
use midge_codec::{ConnAck, Connect, Packet, QoS, ReasonCode};

use crate::broker::{CheckedConnect, Refusal};
use crate::config::{BrokerConfig, ClientRules};
use crate::outbox::Outbox;
use crate::problem::ProblemInfo;

/// The properties of a successful CONNACK to an MQTT 5 client.
pub(crate) fn accepted(
    config: &BrokerConfig,
    connect: &Connect,
    checked: &CheckedConnect,
) -> ConnAckProperties {
    let mut properties = ConnAckProperties::default();
    if checked.assigned {
        properties.assigned_client_identifier = Some(checked.client_id.clone());
    }
    if checked.keep_alive != connect.keep_alive {
        properties.server_keep_alive = Some(checked.keep_alive);
    }
    properties.receive_maximum = std::num::NonZeroU16::new(config.receive_maximum);
    if config.max_packet_size < midge_codec::PROTOCOL_MAX_PACKET_SIZE {
        properties.maximum_packet_size = std::num::NonZeroU32::new(config.max_packet_size);
    }
    if config.max_topic_alias > 0 {
        properties.topic_alias_maximum = Some(config.max_topic_alias);
    }
    if !config.retain_available {
        properties.retain_available = Some(false);
    }
    if config.max_qos < QoS::ExactlyOnce {
        properties.maximum_qos = Some(config.max_qos);
    }
    if !config.wildcard_subscriptions {
        properties.wildcard_subscription_available = Some(false);
    }
    if !config.subscription_identifiers {
        properties.subscription_identifiers_available = Some(false);
    }
    if !config.shared_subscriptions {
        properties.shared_subscription_available = Some(false);
    }
    if connect.properties.request_response_information == Some(true)
        && let Some(prefix) = &config.response_information
    {
        properties.response_information = Some(ByteString::from(format!("{prefix}{}", checked.client_id)));
    }
    properties
}

/// The refusal a listener with `server_reference` gives every client, before anything else is
/// looked at.
pub(crate) fn redirect(rules: &ClientRules) -> Option<Refusal> {
    let redirect = rules.redirect.as_ref()?;
    let (reason, how) = if redirect.moved {
        (ReasonCode::ServerMoved, "moved")
    } else {
        (ReasonCode::UseAnotherServer, "use another server")
    };
    Some(Refusal {
        reason,
        detail: format!("server {how}: {}", redirect.reference),
    })
}

/// Puts the CONNACK refusing `connect` in the outbox. `explain`: whether the refusal's detail
/// may be its Reason String (not for a failed authentication, whose detail may say more than
/// the client should learn).
pub(crate) fn send_refusal(
    connect: &Connect,
    rules: &ClientRules,
    refusal: &Refusal,
    explain: bool,
    out: &mut Outbox,
) {
    // Session Present is 0 on every refusal [MQTT-3.2.2-6].
    let mut connack = ConnAck::new(refusal.reason);
    if connect.protocol.is_v5()
        && matches!(
            refusal.reason,
            ReasonCode::UseAnotherServer | ReasonCode::ServerMoved
        )
        && let Some(redirect) = &rules.redirect
    {
        connack.properties.server_reference = Some(redirect.reference.clone());
    }
    let explanation = explain.then_some(refusal.detail.as_str());
    ProblemInfo::of(connect).send(Packet::ConnAck(connack), explanation, out);
}
