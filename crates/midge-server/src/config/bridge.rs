//! A bridge block (`connection NAME` and the lines after it), typed: where the remote broker is,
//! what crosses in which direction and under which names, how the link is kept up, and how it
//! is secured. Mosquitto's defaults; `None` where Mosquitto derives the value later (client
//! identifiers from the host name, the notification topic from the remote client identifier).
//!
//! This module holds values and the topic rules' checks; the runtime in `crate::bridge` acts on
//! them. Nothing here resolves a host name or opens a file.

use std::num::{NonZeroU16, NonZeroU32};
use std::path::PathBuf;
use std::time::Duration;

use midge_codec::QoS;

use super::{Location, TlsVersion};

/// One bridge to a remote broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    /// `connection NAME`: the bridge's name, unique in the configuration.
    pub name: String,
    /// The `connection` line.
    pub at: Location,
    /// `address` / `addresses`: the remote broker, `HOST[:PORT]` (port 1883), tried in order.
    pub addresses: Vec<BridgeAddress>,
    /// `round_robin`: after a failure stay on the next address (true), or come back to the
    /// first one as soon as it answers (false, the default).
    pub round_robin: bool,
    /// `topic` lines, in file order.
    pub topics: Vec<BridgeTopic>,
    /// `bridge_protocol_version`. Default: MQTT 3.1.1.
    pub protocol_version: BridgeProtocol,
    /// `cleansession`: start a new session on the remote broker at every connection. Default:
    /// false.
    pub cleansession: bool,
    /// `local_cleansession`: the same for the bridge's session in this broker; `None` follows
    /// `cleansession`.
    pub local_cleansession: Option<bool>,
    /// `keepalive_interval`, in seconds. Default: 60.
    pub keepalive_interval: u16,
    /// `idle_timeout`: a lazy bridge disconnects after this long without a message. Default: 60 s.
    pub idle_timeout: Duration,
    /// `start_type`. Default: automatic.
    pub start_type: StartType,
    /// `threshold`: a lazy bridge connects once this many messages wait for it. Default: 10.
    pub threshold: u32,
    /// `restart_timeout`: how long to wait before connecting again.
    pub restart_timeout: RestartTimeout,
    /// `remote_clientid` (`clientid`). Default (`None`): `HOSTNAME.NAME`.
    pub remote_clientid: Option<String>,
    /// `local_clientid`. Default (`None`): `local.` and the remote client identifier.
    pub local_clientid: Option<String>,
    /// `remote_username` (`username`).
    pub remote_username: Option<String>,
    /// `remote_password` (`password`).
    pub remote_password: Option<String>,
    /// `local_username`: the user name the bridge's local session has for the access rules.
    pub local_username: Option<String>,
    /// `notifications`: publish the link's state, `1` or `0`, retained, here and on the remote
    /// broker (which publishes `0` as the bridge's will). Default: true.
    pub notifications: bool,
    /// `notification_topic`. Default (`None`): `$SYS/broker/connection/REMOTE_CLIENTID/state`.
    pub notification_topic: Option<String>,
    /// `notifications_local_only`: publish the state here only. Default: false.
    pub notifications_local_only: bool,
    /// `try_private`: mark the connection as a bridge's (MQTT 3.1/3.1.1). Default: true.
    pub try_private: bool,
    /// `bridge_attempt_unsubscribe`: unsubscribe on the remote broker from `out`-only topics.
    /// Default: true.
    pub attempt_unsubscribe: bool,
    /// `bridge_outgoing_retain`: keep the RETAIN flag of messages sent to the remote broker.
    /// Default: true.
    pub outgoing_retain: bool,
    /// `bridge_max_packet_size`: larger messages are not sent to the remote broker (counted).
    /// Default: no limit.
    pub max_packet_size: Option<NonZeroU32>,
    /// `bridge_bind_address`: the local address to connect from.
    pub bind_address: Option<String>,
    /// `bridge_receive_maximum` (MQTT 5): QoS 1 and 2 messages the remote may send at once.
    pub receive_maximum: Option<NonZeroU16>,
    /// `bridge_session_expiry_interval` (MQTT 5): how long the remote broker keeps the session.
    /// Default (`None`): forever unless `cleansession` (Mosquitto 2.0 sends none).
    pub session_expiry_interval: Option<u32>,
    /// `bridge_max_topic_alias` (MQTT 5): topic aliases the remote may use. Default: 10.
    pub max_topic_alias: u16,
    /// `bridge_tcp_keepalive IDLE INTERVAL COUNT`: TCP keep-alive probes, in seconds.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// `bridge_tcp_user_timeout`: how long sent data may stay unacknowledged (TCP_USER_TIMEOUT).
    pub tcp_user_timeout: Option<Duration>,
    /// The TLS options; TLS is on when [`BridgeTls::enabled`].
    pub tls: BridgeTls,
}

impl Bridge {
    /// A bridge with Mosquitto's defaults and nothing configured yet.
    pub(crate) fn new(name: String, at: Location) -> Self {
        Self {
            name,
            at,
            addresses: Vec::new(),
            round_robin: false,
            topics: Vec::new(),
            protocol_version: BridgeProtocol::Mqtt311,
            cleansession: false,
            local_cleansession: None,
            keepalive_interval: 60,
            idle_timeout: Duration::from_secs(60),
            start_type: StartType::Automatic,
            threshold: 10,
            restart_timeout: RestartTimeout::default(),
            remote_clientid: None,
            local_clientid: None,
            remote_username: None,
            remote_password: None,
            local_username: None,
            notifications: true,
            notification_topic: None,
            notifications_local_only: false,
            try_private: true,
            attempt_unsubscribe: true,
            outgoing_retain: true,
            max_packet_size: None,
            bind_address: None,
            receive_maximum: None,
            session_expiry_interval: None,
            max_topic_alias: 10,
            tcp_keepalive: None,
            tcp_user_timeout: None,
            tls: BridgeTls::default(),
        }
    }

    /// `local_cleansession`, or `cleansession` when it is not set.
    pub fn local_clean_session(&self) -> bool {
        self.local_cleansession.unwrap_or(self.cleansession)
    }
}

/// One remote address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeAddress {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl std::fmt::Display for BridgeAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Which way a bridge topic's messages go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeDirection {
    /// From this broker to the remote one.
    Out,
    /// From the remote broker to this one.
    In,
    /// Both ways.
    Both,
}

impl BridgeDirection {
    /// Messages go from here to the remote broker.
    pub fn outgoing(self) -> bool {
        matches!(self, Self::Out | Self::Both)
    }

    /// Messages come from the remote broker to here.
    pub fn incoming(self) -> bool {
        matches!(self, Self::In | Self::Both)
    }
}

/// `topic PATTERN [in|out|both [QOS [LOCAL_PREFIX [REMOTE_PREFIX]]]]`.
///
/// The topic is `LOCAL_PREFIX + PATTERN` here and `REMOTE_PREFIX + PATTERN` on the remote
/// broker: a message crossing has the one prefix taken off and the other put on. A pattern of
/// `""` (no pattern) maps exactly one topic, the local prefix, to the remote prefix; it needs
/// both. Prefixes are joined as written: `topic # out 0 local/ remote/` maps `local/a` to
/// `remote/a`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeTopic {
    /// The pattern; `None` for `""`.
    pub pattern: Option<String>,
    /// Default: out.
    pub direction: BridgeDirection,
    /// The QoS of the subscriptions the bridge makes (here for `out`, there for `in`); a
    /// message crosses at the lower of this and its own. Default: 0.
    pub qos: QoS,
    /// Put before the pattern here; `None` for `""` or none.
    pub local_prefix: Option<String>,
    /// Put before the pattern on the remote broker; `None` for `""` or none.
    pub remote_prefix: Option<String>,
}

impl BridgeTopic {
    /// The filter the bridge subscribes to here, for `out` and `both`.
    pub fn local_filter(&self) -> String {
        join(self.local_prefix.as_deref(), self.pattern.as_deref())
    }

    /// The filter the bridge subscribes to on the remote broker, for `in` and `both`.
    pub fn remote_filter(&self) -> String {
        join(self.remote_prefix.as_deref(), self.pattern.as_deref())
    }

    /// Whether a topic is renamed on the way (either prefix is set).
    pub fn remaps(&self) -> bool {
        self.local_prefix.is_some() || self.remote_prefix.is_some()
    }
}

fn join(prefix: Option<&str>, pattern: Option<&str>) -> String {
    format!("{}{}", prefix.unwrap_or_default(), pattern.unwrap_or_default())
}

/// `bridge_protocol_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeProtocol {
    /// `mqttv31`.
    Mqtt31,
    /// `mqttv311`.
    Mqtt311,
    /// `mqttv50`.
    Mqtt5,
}

/// `start_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartType {
    /// Connect at start and reconnect after `restart_timeout` whenever the link drops.
    Automatic,
    /// Connect once `threshold` messages wait; disconnect after `idle_timeout` without traffic.
    Lazy,
    /// Connect at start, never again.
    Once,
}

/// `restart_timeout BASE [CAP]`: with a cap, each wait is drawn between the base and three
/// times the previous wait, up to the cap, and starts over once connected; without one, the
/// wait is always the base. Default: from 5 s up to 30 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartTimeout {
    /// The first (or only) wait.
    pub base: Duration,
    /// The longest wait, for a backoff.
    pub cap: Option<Duration>,
}

impl Default for RestartTimeout {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5),
            cap: Some(Duration::from_secs(30)),
        }
    }
}

/// `bridge_tcp_keepalive IDLE INTERVAL COUNT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpKeepalive {
    /// Seconds of silence before the first probe.
    pub idle: u32,
    /// Seconds between probes.
    pub interval: u32,
    /// Probes unanswered before the connection is dropped.
    pub count: u32,
}

/// The bridge's TLS options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BridgeTls {
    /// `bridge_cafile`.
    pub cafile: Option<PathBuf>,
    /// `bridge_capath`.
    pub capath: Option<PathBuf>,
    /// `bridge_certfile`.
    pub certfile: Option<PathBuf>,
    /// `bridge_keyfile`.
    pub keyfile: Option<PathBuf>,
    /// `bridge_insecure`: do not check the remote certificate's host name.
    pub insecure: bool,
    /// `bridge_alpn`.
    pub alpn: Option<String>,
    /// `bridge_tls_version`: the lowest version offered.
    pub version: Option<TlsVersion>,
    /// `bridge_ciphers`: TLS 1.2 cipher suites.
    pub ciphers: Option<String>,
    /// `bridge_tls_use_os_certs` (Mosquitto 2.1): trust the system's CAs.
    pub use_os_certs: bool,
}

impl BridgeTls {
    /// TLS is on when the bridge has something to trust, as in Mosquitto (`bridge_cafile` or
    /// `bridge_capath`; 2.1 adds `bridge_tls_use_os_certs`).
    pub fn enabled(&self) -> bool {
        self.cafile.is_some() || self.capath.is_some() || self.use_os_certs
    }
}
