//! The typed form of one listener (`listener PORT [ADDRESS]` and the options that follow it) and
//! of the security options, which Mosquitto scopes to a listener or to the whole broker
//! (`per_listener_settings`).
//!
//! These are plain values: nothing here opens a socket or resolves a host name.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use midge_codec::{ProtocolVersion, QoS, TopicName};

use super::mqttsn::MqttSnOptions;
use super::{Area, Location};

/// One listening socket and the options that apply to the clients that connect through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Where it listens.
    pub address: ListenerAddress,
    /// Which line made it.
    pub origin: ListenerOrigin,
    /// `protocol`: what is spoken on the socket. Default: MQTT.
    pub protocol: Protocol,
    /// `socket_domain`: listen on IPv4 only or IPv6 only. Default (`None`): both, when the
    /// address allows.
    pub socket_domain: Option<SocketDomain>,
    /// `bind_interface`: bind to this network interface (Linux `SO_BINDTODEVICE`).
    pub bind_interface: Option<String>,
    /// `max_connections`: at most this many clients at once; `None` (`-1`, the default): no limit.
    pub max_connections: Option<u32>,
    /// `max_connection_rate` (Midge): at most this many new connections per second from one
    /// address; `None` (the default): no limit.
    pub max_connection_rate: Option<u32>,
    /// `mount_point`: a prefix added to every topic of the clients of this listener, which
    /// isolates them from the other listeners' clients.
    pub mount_point: Option<TopicName>,
    /// `max_qos` (alias `maximum_qos`): the highest QoS the broker grants. Default: 2.
    pub max_qos: QoS,
    /// `max_topic_alias`: the number of topic aliases a client may use towards the broker
    /// (MQTT 5). Default: 10.
    pub max_topic_alias: u16,
    /// `max_topic_alias_broker` (Mosquitto 2.1): the number of topic aliases the broker may use
    /// towards a client. Default: 10.
    pub max_topic_alias_broker: u16,
    /// `use_username_as_clientid`: replace the client identifier with the username.
    pub use_username_as_clientid: bool,
    /// `server_reference` (Midge): every client is refused, MQTT 5 clients with this Server
    /// Reference (server redirection, §4.11). Default: none.
    pub server_reference: Option<String>,
    /// `server_moved` (Midge): with `server_reference`, refuse with 0x9D Server moved rather
    /// than 0x9C Use another server. Default: false.
    pub server_moved: bool,
    /// `accept_protocol_versions` (Mosquitto 2.1): the MQTT versions accepted, in order. Default:
    /// all three.
    pub accept_protocol_versions: Vec<ProtocolVersion>,
    /// The authentication options in force on this listener: its own with
    /// `per_listener_settings true`, otherwise the broker-wide ones; then `listener_allow_anonymous`
    /// and `listener_auto_id_prefix` (Mosquitto 2.1) override them.
    pub security: SecurityOptions,
    /// The TLS options: the listener speaks TLS when it has a `certfile` and `keyfile`.
    pub tls: TlsOptions,
    /// The `mqttsn_*` options (used with `protocol mqttsn`).
    pub mqttsn: MqttSnOptions,
    /// Feature areas that this listener's options need and Midge does not support yet (TLS
    /// options, `protocol websockets`, per-listener `password_file`, ...), in order, without
    /// repeats. The runtime must not open a listener whose needs it cannot meet, above all TLS:
    /// opening it in plain text would be worse than not opening it.
    pub not_supported_yet: Vec<Area>,
}

impl Listener {
    /// A listener with Mosquitto's defaults at `address`.
    pub(super) fn new(address: ListenerAddress, origin: ListenerOrigin) -> Self {
        Self {
            address,
            origin,
            protocol: Protocol::Mqtt,
            socket_domain: None,
            bind_interface: None,
            max_connections: None,
            max_connection_rate: None,
            mount_point: None,
            max_qos: QoS::ExactlyOnce,
            max_topic_alias: 10,
            max_topic_alias_broker: 10,
            use_username_as_clientid: false,
            server_reference: None,
            server_moved: false,
            accept_protocol_versions: vec![ProtocolVersion::V31, ProtocolVersion::V311, ProtocolVersion::V5],
            security: SecurityOptions::default(),
            tls: TlsOptions::default(),
            mqttsn: MqttSnOptions::default(),
            not_supported_yet: Vec::new(),
        }
    }

    /// The TCP port, `None` for a Unix socket. `Some(0)` asks the system for any free port.
    pub fn port(&self) -> Option<u16> {
        match self.address {
            ListenerAddress::Tcp { port, .. } => Some(port),
            ListenerAddress::Unix { .. } => None,
        }
    }

    /// True if the listener accepts clients of `version`.
    pub fn accepts(&self, version: ProtocolVersion) -> bool {
        self.accept_protocol_versions.contains(&version)
    }
}

/// Where a listener listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListenerAddress {
    /// A TCP socket.
    Tcp {
        /// The port; 0 asks the system for any free port (a Midge extension, for tests: Mosquitto
        /// reserves port 0 for Unix sockets).
        port: u16,
        /// The address to bind; `None`: every interface.
        bind: Option<BindAddress>,
    },
    /// A Unix domain socket: `listener 0 PATH` where PATH is not an IP address.
    Unix {
        /// The socket's path.
        path: PathBuf,
    },
}

impl fmt::Display for ListenerAddress {
    /// As written after `listener`: `1883`, `1883 127.0.0.1`, `0 /run/mqtt.sock`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp { port, bind: None } => write!(f, "{port}"),
            Self::Tcp {
                port,
                bind: Some(bind),
            } => write!(f, "{port} {bind}"),
            Self::Unix { path } => write!(f, "0 {}", path.display()),
        }
    }
}

/// The address a TCP listener binds to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BindAddress {
    /// An IP address.
    Ip(IpAddr),
    /// A host name, resolved when the listener is opened (as Mosquitto does).
    Host(String),
}

impl fmt::Display for BindAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(ip) => write!(f, "{ip}"),
            Self::Host(host) => f.write_str(host),
        }
    }
}

/// Which line of the configuration made a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerOrigin {
    /// A `listener` line.
    Declared(Location),
    /// Mosquitto's default listener: `port`, `bind_address`, or a listener option set before the
    /// first `listener` line; the location is the first such line.
    Default(Location),
    /// Local-only mode: no `listener`, `port` or `bind_address` in the configuration (or no
    /// configuration at all).
    LocalOnly,
}

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// MQTT over TCP or a Unix socket.
    #[default]
    Mqtt,
    /// MQTT over WebSockets.
    Websockets,
    /// Mosquitto 2.1's HTTP API. Not supported yet.
    HttpApi,
    /// An MQTT-SN v1.2 gateway on UDP (the value Mosquitto reserved).
    MqttSn,
}

/// A listener's TLS options, as mosquitto.conf names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// `cafile`: the certificate authorities that client certificates must chain to.
    pub cafile: Option<PathBuf>,
    /// `capath`: a directory of such certificates (every PEM file in it is read).
    pub capath: Option<PathBuf>,
    /// `certfile`: the server's certificate chain (PEM).
    pub certfile: Option<PathBuf>,
    /// `keyfile`: the server's private key (PEM).
    pub keyfile: Option<PathBuf>,
    /// `crlfile`: revoked client certificates (PEM).
    pub crlfile: Option<PathBuf>,
    /// `ciphers`: the TLS 1.2 cipher suites, in OpenSSL's names separated by colons.
    pub ciphers: Option<String>,
    /// `ciphers_tls1.3`: the TLS 1.3 cipher suites, separated by colons.
    pub ciphers_tls13: Option<String>,
    /// `tls_version`: the lowest TLS version accepted. Default (`None`): TLS 1.2.
    pub min_version: Option<TlsVersion>,
    /// `require_certificate`: clients must present a certificate signed by `cafile`/`capath`.
    pub require_certificate: bool,
    /// `use_identity_as_username`: the client certificate's Common Name is the username.
    pub use_identity_as_username: bool,
    /// `use_subject_as_username`: the client certificate's whole subject (RFC 2253) is the
    /// username.
    pub use_subject_as_username: bool,
}

impl TlsOptions {
    /// True when the listener speaks TLS, which Mosquitto decides by `certfile` and `keyfile`
    /// (either one is enough to try, and a missing other is an error at start).
    pub fn enabled(&self) -> bool {
        self.certfile.is_some() || self.keyfile.is_some()
    }
}

/// A TLS protocol version, for `tls_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// `tlsv1`: TLS 1.0 (rustls offers 1.2 at the lowest).
    V1_0,
    /// `tlsv1.1`: TLS 1.1 (rustls offers 1.2 at the lowest).
    V1_1,
    /// `tlsv1.2`.
    V1_2,
    /// `tlsv1.3`.
    V1_3,
}

/// `socket_domain`: restrict a listener to one IP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketDomain {
    /// `ipv4`.
    Ipv4,
    /// `ipv6`.
    Ipv6,
}

/// How clients authenticate and name themselves: the options Mosquitto keeps per listener with
/// `per_listener_settings true` and broker-wide otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityOptions {
    /// `allow_anonymous`: let clients connect without a username. Default: false, except in
    /// local-only mode, where it is true.
    pub allow_anonymous: bool,
    /// `allow_zero_length_clientid`: let MQTT 3.1.1 and 5 clients connect with an empty client
    /// identifier and give them one. Default: true.
    pub allow_zero_length_clientid: bool,
    /// `auto_id_prefix`: the prefix of the identifiers the broker gives. Default: `auto-`.
    pub auto_id_prefix: String,
    /// `password_file`: user names and password hashes, as `mosquitto_passwd` writes them.
    /// Default: none (any user name is accepted; `allow_anonymous` decides for clients without).
    pub password_file: Option<PathBuf>,
    /// `acl_file`: topic access rules in Mosquitto's format. Default: none (no topic rules).
    pub acl_file: Option<PathBuf>,
    /// `scram_file` (Midge's own): SCRAM verifiers, as `midge passwd -H scram` writes them,
    /// for MQTT 5 enhanced authentication with SCRAM-SHA-256 and SCRAM-SHA-512. Default: none
    /// (a CONNECT naming an authentication method is refused with 0x8C).
    pub scram_file: Option<PathBuf>,
}

impl Default for SecurityOptions {
    /// Mosquitto's defaults outside local-only mode.
    fn default() -> Self {
        Self {
            allow_anonymous: false,
            allow_zero_length_clientid: true,
            auto_id_prefix: "auto-".to_owned(),
            password_file: None,
            acl_file: None,
            scram_file: None,
        }
    }
}

/// The two listeners of local-only mode, with the options of the default listener: loopback
/// IPv4 and IPv6 on port 1883 (only one of them if `socket_domain` was given).
pub(super) fn local_only_listeners(template: &Listener) -> Vec<Listener> {
    let loopbacks = [IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)];
    loopbacks
        .into_iter()
        .filter(|ip| match template.socket_domain {
            None => true,
            Some(SocketDomain::Ipv4) => ip.is_ipv4(),
            Some(SocketDomain::Ipv6) => ip.is_ipv6(),
        })
        .map(|ip| Listener {
            address: ListenerAddress::Tcp {
                port: 1883,
                bind: Some(BindAddress::Ip(ip)),
            },
            origin: ListenerOrigin::LocalOnly,
            ..template.clone()
        })
        .collect()
}
