//! The limits and switches the broker's logic obeys, in the broker's own terms.
//!
//! The server translates mosquitto.conf into this; the core never parses files. Defaults are
//! Mosquitto 2.0's, so a broker built from `BrokerConfig::default()` behaves like a Mosquitto
//! with an empty configuration (apart from listeners, which are not the core's business).

use std::time::Duration;

use bytestring::ByteString;
use midge_codec::ProtocolVersion;

use midge_codec::QoS;

/// Everything the core needs to decide.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `allow_anonymous`: accept clients that send no user name.
    pub allow_anonymous: bool,
    /// `allow_zero_length_clientid`: assign an identifier to clients that send none.
    pub allow_zero_length_clientid: bool,
    /// `auto_id_prefix`: the prefix of assigned client identifiers.
    pub auto_id_prefix: String,
    /// `max_inflight_messages`: outgoing QoS 1 and 2 messages in flight per client (0: 65535).
    pub max_inflight_messages: u16,
    /// `max_inflight_bytes`: payload bytes in flight per client (0: no limit).
    pub max_inflight_bytes: u64,
    /// `max_queued_messages`: messages queued per client beyond the inflight window (0: no limit).
    pub max_queued_messages: usize,
    /// `max_queued_bytes`: payload bytes queued per client (0: no limit).
    pub max_queued_bytes: u64,
    /// `queue_qos0_messages`: queue QoS 0 messages for offline persistent sessions.
    pub queue_qos0_messages: bool,
    /// The largest packet accepted from clients, fixed header included.
    pub max_packet_size: u32,
    /// `message_size_limit`: the largest PUBLISH payload accepted (0: no limit).
    pub message_size_limit: u32,
    /// `max_keepalive`: the longest keep alive a client may ask for.
    pub max_keepalive: u16,
    /// `global_max_clients`: sessions, connected or not, kept at most; a CONNECT that would
    /// make one more is refused (`None`: no limit).
    pub max_clients: Option<usize>,
    /// `persistent_client_expiration`: how long an MQTT 3.x persistent session outlives its
    /// connection (`None`: forever).
    pub persistent_client_expiration: Option<Duration>,
    /// `retain_available`.
    pub retain_available: bool,
    /// `upgrade_outgoing_qos`: deliver at the subscription's QoS even when the message's is lower.
    pub upgrade_outgoing_qos: bool,
    /// `max_qos`: the highest QoS the broker supports.
    pub max_qos: QoS,
    /// `max_topic_alias`: how many topic aliases an MQTT 5 client may set up towards the broker.
    pub max_topic_alias: u16,
    /// The Receive Maximum announced to MQTT 5 clients: QoS 2 messages a client may have
    /// unacknowledged towards the broker at once.
    pub receive_maximum: u16,
    /// How many bytes of encoded packets a connection may hold waiting for its socket before the
    /// broker stops moving queued messages to it.
    pub outbox_high_water: usize,
    /// `wildcard_subscription_available` (Midge): accept filters with `+` and `#`. When false,
    /// CONNACK says so and an MQTT 5 SUBSCRIBE with one gets DISCONNECT 0xA2.
    pub wildcard_subscriptions: bool,
    /// `subscription_identifier_available` (Midge): accept Subscription Identifiers. When
    /// false, CONNACK says so and a SUBSCRIBE with one gets DISCONNECT 0xA1.
    pub subscription_identifiers: bool,
    /// `shared_subscription_available` (Midge): accept `$share/` filters. When false, CONNACK
    /// says so and an MQTT 5 SUBSCRIBE with one gets DISCONNECT 0x9E.
    pub shared_subscriptions: bool,
    /// `response_information` (Midge): a client that sets Request Response Information gets
    /// this followed by its client identifier as Response Information, the root of the topics
    /// it may take responses on (`None`: no Response Information is sent).
    pub response_information: Option<String>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            allow_anonymous: true,
            allow_zero_length_clientid: true,
            auto_id_prefix: "auto-".to_owned(),
            max_inflight_messages: 20,
            max_inflight_bytes: 0,
            max_queued_messages: 1000,
            max_queued_bytes: 0,
            queue_qos0_messages: false,
            max_packet_size: midge_codec::PROTOCOL_MAX_PACKET_SIZE,
            message_size_limit: 0,
            max_keepalive: 65535,
            max_clients: None,
            persistent_client_expiration: None,
            retain_available: true,
            upgrade_outgoing_qos: false,
            max_qos: QoS::ExactlyOnce,
            max_topic_alias: 10,
            receive_maximum: 20,
            outbox_high_water: 256 * 1024,
            wildcard_subscriptions: true,
            subscription_identifiers: true,
            shared_subscriptions: true,
            response_information: None,
        }
    }
}

/// How a listener admits clients: the security options Mosquitto keeps per listener with
/// `per_listener_settings true` (and broker-wide otherwise).
#[derive(Debug, Clone)]
pub struct ClientRules {
    /// `allow_anonymous`: accept clients that send no user name.
    pub allow_anonymous: bool,
    /// `allow_zero_length_clientid`: assign an identifier to clients that send none.
    pub allow_zero_length_clientid: bool,
    /// `auto_id_prefix`: the prefix of assigned client identifiers.
    pub auto_id_prefix: String,
    /// `mount_point`: a prefix put before every topic and filter of the listener's clients
    /// (and taken off what they receive), which keeps them apart from other listeners'.
    pub mount_point: Option<ByteString>,
    /// `use_username_as_clientid`: the user name replaces the client identifier; clients
    /// without one are refused.
    pub use_username_as_clientid: bool,
    /// `accept_protocol_versions`: the MQTT versions the listener admits (empty: all).
    pub accepted_versions: Vec<ProtocolVersion>,
    /// Which listener this is (its place among the configuration's listeners), passed to
    /// [`AccessControl`](crate::AccessControl) in every [`Identity`](crate::Identity).
    pub listener: usize,
    /// The enhanced authentication methods offered (`scram_file`); `None`: none, and a
    /// CONNECT naming a method is refused with 0x8C.
    pub auth: Option<std::sync::Arc<dyn crate::auth::AuthMethods>>,
    /// `server_reference` (Midge): every client is refused and, in MQTT 5, sent to another
    /// server (§4.11); `None`: clients are served here.
    pub redirect: Option<Redirect>,
}

/// Where a listener sends its clients instead of serving them (§4.11 Server redirection): the
/// building block for draining a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// The Server Reference sent with the refusal: another server's address, or several
    /// separated by spaces (the form §4.11 suggests, not one it requires).
    pub reference: ByteString,
    /// For good (0x9D Server moved) rather than for now (0x9C Use another server).
    pub moved: bool,
}

impl BrokerConfig {
    /// The broker-wide client rules, for connections whose listener has none of its own.
    pub fn client_rules(&self) -> ClientRules {
        ClientRules {
            allow_anonymous: self.allow_anonymous,
            allow_zero_length_clientid: self.allow_zero_length_clientid,
            auto_id_prefix: self.auto_id_prefix.clone(),
            mount_point: None,
            use_username_as_clientid: false,
            accepted_versions: Vec::new(),
            listener: 0,
            auth: None,
            redirect: None,
        }
    }

    /// The inflight window for a client whose own Receive Maximum is `client_receive_maximum`.
    pub(crate) fn inflight_window(&self, client_receive_maximum: u16) -> u16 {
        let ours = match self.max_inflight_messages {
            0 => u16::MAX,
            n => n,
        };
        ours.min(client_receive_maximum)
    }
}
