//! Mosquitto's configuration file, `mosquitto.conf`, read into a typed [`Config`], so that
//! `midge -c /etc/mosquitto/mosquitto.conf` runs with the settings Mosquitto 2 would use.
//!
//! This module reads files and nothing else: it opens no socket, resolves no host name and
//! creates no file. A bad line is a [`ConfigError`] naming `FILE:LINE`; everything the user
//! should hear about an accepted file (unknown directives, directives Midge does not support
//! yet, deprecated ones) is a [`Notice`] in [`Config::notices`], also with `FILE:LINE`.
//! `docs/configuration.md` lists every directive with its default and its status.
//!
//! # Example
//! ```
//! use midge_server::config::{Config, ListenerAddress};
//!
//! let text = "listener 1883\nallow_anonymous true\nmax_inflight_mesages 10\n";
//! let config = Config::parse_str(text, "mosquitto.conf")?;
//! assert_eq!(config.listeners[0].address, ListenerAddress::Tcp { port: 1883, bind: None });
//! assert!(config.listeners[0].security.allow_anonymous);
//! assert_eq!(
//!     config.notices[0].to_string(),
//!     "mosquitto.conf:3: max_inflight_mesages: unknown directive, ignored \
//!      (did you mean \"max_inflight_messages\"?)"
//! );
//!
//! let error = Config::parse_str("listener 1883\nmax_queued_messages lots\n", "mosquitto.conf");
//! assert_eq!(
//!     error.unwrap_err().to_string(),
//!     "mosquitto.conf:2: max_queued_messages: expected a whole number, got \"lots\""
//! );
//! # Ok::<(), midge_server::config::ConfigError>(())
//! ```
//!
//! # Layout
//! - `parser`: the parse state; scope of listener, security, bridge and plugin
//!   options; `include_dir`; the default listener and local-only mode.
//! - `directives/`: one table per group of directives (general, logging, security, listener,
//!   TLS, persistence, bridge) giving each its scope, its support status and what it does.
//! - `value`: reading values: booleans, numbers, durations, addresses.
//! - `source`: files, lines, comments, `include_dir` listing.
//! - `http`: the HTTP listener's settings ([`HttpConfig`]).
//! - `listener`, `logging`, `bridge`: the typed listener ([`Listener`]), logging
//!   ([`LogConfig`]) and bridge ([`Bridge`]) settings.
//! - `error`, `notice`: [`ConfigError`] and [`Notice`].
//!
//! # Rules (Mosquitto's unless said otherwise)
//! - One directive per line, `name value`; a line starting with `#` is a comment. A value that
//!   is a path or free text runs to the end of the line; after a single value (a number, a
//!   boolean, a port) a `# comment` may follow.
//! - A directive given twice in the same scope: the last value wins. (Mosquitto 2 refuses a
//!   repeated string value such as `pid_file`; Midge accepts it with a
//!   [`NoticeKind::Repeated`].) `log_dest` and `log_type` accumulate instead, and `listener`,
//!   `connection`, `plugin` start a new block each time.
//! - Booleans are `true` or `false` (Mosquitto also takes `1` and `0`, and so does Midge).
//!   Numbers are whole and range-checked; out-of-range values, `lots` or `20abc` are errors
//!   (Mosquitto reads the latter two as 0 and 20).
//! - Listener options apply to the last `listener` line of the same file; before the first one
//!   they configure Mosquitto's *default listener* (also configured by the deprecated `port` and
//!   `bind_address`), which is opened on port 1883 (or `port`) if `port`/`bind_address` is given
//!   or one of those options differs from its default.
//! - Security options (`allow_anonymous`, `allow_zero_length_clientid`, `auto_id_prefix`,
//!   `password_file`, ...) apply to every listener, or with `per_listener_settings true` to the
//!   current listener only; every [`Listener::security`] holds the options in force on it.
//! - **Local-only mode**: with no `listener`, `port` or `bind_address` line (or no configuration
//!   file at all, [`Config::local_only`]), the broker listens on 127.0.0.1 and ::1, port 1883,
//!   and `allow_anonymous` defaults to true. Two deliberate differences from Mosquitto 2.0.11:
//!   an explicit `allow_anonymous false` is honoured (Mosquitto overrides it to true), and
//!   listener options set in this mode configure the loopback listeners (Mosquitto then opens
//!   port 1883 on every interface, with anonymous access).
//! - Unknown directives are notices, not errors (Mosquitto refuses to start on them).
//! - `include_dir DIR` reads DIR's `*.conf` files in Mosquitto's order (by name, ignoring case),
//!   only from the main file (in an included file it is ignored with a notice). A relative DIR is
//!   relative to the working directory, as in Mosquitto.
//! - `listener 0 ADDRESS` with an IP address, or `listener 0` alone, asks for any free TCP port
//!   (a Midge extension for tests); with anything else it is a Unix socket path, as in Mosquitto.

use std::num::{NonZeroU16, NonZeroU32, NonZeroU64};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod bridge;
mod directives;
mod error;
mod http;
mod listener;
mod logging;
mod mqttsn;
mod notice;
mod parser;
mod source;
mod value;

#[cfg(test)]
mod tests;

pub use bridge::{
    Bridge, BridgeAddress, BridgeDirection, BridgeProtocol, BridgeTls, BridgeTopic, RestartTimeout,
    StartType, TcpKeepalive,
};
pub use error::{ConfigError, Location, Problem};
pub use http::{HttpConfig, HttpListener};
pub use listener::{
    BindAddress, Listener, ListenerAddress, ListenerOrigin, Protocol, SecurityOptions, SocketDomain,
    TlsOptions, TlsVersion,
};
pub use logging::{LogConfig, LogDestinations, LogFormat, LogType, LogTypes};
pub use mqttsn::MqttSnOptions;
pub use notice::{Area, Notice, NoticeKind};

/// The broker's configuration: Mosquitto 2.0's defaults, changed by the lines of a
/// mosquitto.conf. Field names are the mosquitto.conf directives; "no limit" is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The files read: the main file, then those of `include_dir` in the order read. Empty for
    /// [`Config::local_only`].
    pub sources: Vec<PathBuf>,
    /// True in local-only mode (no `listener`, `port` or `bind_address`): the listeners are the
    /// loopback ones and anonymous clients are allowed unless the file says otherwise.
    pub local_only: bool,
    /// `per_listener_settings`: security options are per listener. Default: false. Already
    /// applied to each [`Listener::security`]; kept for what follows from it later (which
    /// listener's rules a disconnected durable client is held to).
    pub per_listener_settings: bool,
    /// The listeners, in file order; Mosquitto's default listener (from `port`, `bind_address`,
    /// or options before the first `listener` line) comes last.
    pub listeners: Vec<Listener>,
    /// `max_inflight_messages`: QoS 1 and 2 messages in flight to one client at once. Default: 20;
    /// `None` (0 in the file): no limit.
    pub max_inflight_messages: Option<NonZeroU16>,
    /// `max_inflight_bytes`: bytes of payload in flight to one client. Default: `None`, no limit.
    pub max_inflight_bytes: Option<NonZeroU64>,
    /// `max_queued_messages`: messages queued for one client beyond those in flight. Default:
    /// 1000; `None` (0): no limit. Beyond it messages are dropped (and counted).
    pub max_queued_messages: Option<NonZeroU32>,
    /// `max_queued_bytes`: bytes of payload queued for one client. Default: `None`, no limit.
    pub max_queued_bytes: Option<NonZeroU64>,
    /// `queue_qos0_messages`: queue QoS 0 messages for disconnected persistent clients too.
    /// Default: false.
    pub queue_qos0_messages: bool,
    /// `max_keepalive`: the longest keep alive a client may ask for, in seconds. Default: 65535;
    /// `None` (0, as in Mosquitto 2.1): no limit. Mosquitto 2.0 refuses values below 10.
    pub max_keepalive: Option<NonZeroU16>,
    /// `max_packet_size`: the largest packet accepted, in bytes, at least 20. Default: `None`
    /// (0), the protocol's own limit.
    pub max_packet_size: Option<NonZeroU32>,
    /// `message_size_limit`: the largest PUBLISH payload accepted, in bytes, at most 268435455.
    /// Default: `None` (0), no limit. Mosquitto recommends `max_packet_size` instead.
    pub message_size_limit: Option<NonZeroU32>,
    /// `persistent_client_expiration`: forget a disconnected persistent client after this long.
    /// Default: `None`, never.
    pub persistent_client_expiration: Option<Duration>,
    /// `retain_available`: accept retained messages. Default: true.
    pub retain_available: bool,
    /// `upgrade_outgoing_qos`: deliver at the subscription's QoS even if the message was
    /// published at a lower one. Default: false.
    pub upgrade_outgoing_qos: bool,
    /// `set_tcp_nodelay`: disable Nagle's algorithm on client sockets. Default: true, unlike
    /// Mosquitto: Midge writes all a wake-up produced in one write, so Nagle's algorithm only
    /// holds back the next one until the peer acknowledges (measured in docs/performance.md).
    pub set_tcp_nodelay: bool,
    /// `wildcard_subscription_available` (Midge): accept filters with wildcards. Default: true.
    pub wildcard_subscription_available: bool,
    /// `subscription_identifier_available` (Midge): accept Subscription Identifiers. Default:
    /// true.
    pub subscription_identifier_available: bool,
    /// `shared_subscription_available` (Midge): accept shared subscriptions. Default: true.
    pub shared_subscription_available: bool,
    /// `response_information` (Midge): the prefix of the Response Information sent to MQTT 5
    /// clients that ask for it (followed by the client identifier). Default: none, nothing
    /// sent.
    pub response_information: Option<String>,
    /// `global_max_clients` (Mosquitto 2.1): clients, connected or not, the broker keeps at most.
    /// Default: `None` (-1), no limit.
    pub global_max_clients: Option<u32>,
    /// `global_max_connections` (Mosquitto 2.1): connections across all listeners. Default:
    /// `None` (-1), no limit.
    pub global_max_connections: Option<u32>,
    /// `sys_interval`: how often the `$SYS` topics are published. Default: 10 s; `None` (0):
    /// never. `$SYS` is not supported yet; the value is kept for when it is.
    pub sys_interval: Option<Duration>,
    /// Persistence: `persistence`, `persistence_location`, `persistence_file`,
    /// `persistence_fsync`.
    pub persistence: Persistence,
    /// Logging: `log_dest`, `log_type`, `log_timestamp`, `log_timestamp_format`,
    /// `connection_messages`.
    pub log: LogConfig,
    /// `pid_file`: write the broker's process id to this file. Default: none.
    pub pid_file: Option<PathBuf>,
    /// `user`: when started as root, run as this user (and its primary group) once the
    /// listeners are open. Default: `mosquitto`, as in Mosquitto; `root` keeps root.
    pub user: String,
    /// The bridges (`connection` blocks), in file order.
    pub bridges: Vec<Bridge>,
    /// `http_listener` and the `http_*` directives: the HTTP API, `/metrics` and the web view.
    /// Off by default.
    pub http: HttpConfig,
    /// `cluster_name` and the `cluster_*` directives: this broker is a node of a cluster
    /// (docs/cluster.md). `None` (the default): a single node.
    pub cluster: Option<midge_cluster::ClusterConfig>,
    /// What to tell the user about this configuration (unknown directives, directives not
    /// supported yet, ...), in file order. The broker logs each as a warning.
    pub notices: Vec<Notice>,
}

impl Config {
    /// Reads the configuration file at `path`, and the files its `include_dir` lines name.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = source::read(path)?;
        Self::parse_bytes(&text, path)
    }

    /// Reads configuration text; `origin` names it in errors and notices, as a file would be.
    /// `include_dir` lines read real directories.
    pub fn parse_str(text: &str, origin: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::parse_bytes(text.as_bytes(), origin)
    }

    /// As [`Config::parse_str`], for the bytes of a file, which may not be UTF-8 (a line that
    /// is not, outside a comment, is a [`ConfigError::NotUtf8`]). What [`Config::load`] does
    /// once it has read the file.
    pub fn parse_bytes(text: &[u8], origin: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let mut parser = parser::Parser::new();
        parser.parse_file(origin.as_ref(), text, false)?;
        parser.finish()
    }

    /// Mosquitto 2's local-only mode, the configuration of a broker started without a file:
    /// listeners on `127.0.0.1:1883` and `[::1]:1883`, anonymous clients allowed, every other
    /// setting at its default. The same as an empty file.
    pub fn local_only() -> Self {
        let mut template = Listener::new(
            ListenerAddress::Tcp {
                port: 1883,
                bind: None,
            },
            ListenerOrigin::LocalOnly,
        );
        template.security.allow_anonymous = true;
        Self {
            local_only: true,
            listeners: listener::local_only_listeners(&template),
            ..Self::defaults()
        }
    }

    /// Mosquitto 2.0's defaults, without listeners: where parsing starts.
    fn defaults() -> Self {
        Self {
            sources: Vec::new(),
            local_only: false,
            per_listener_settings: false,
            listeners: Vec::new(),
            max_inflight_messages: NonZeroU16::new(20),
            max_inflight_bytes: None,
            max_queued_messages: NonZeroU32::new(1000),
            max_queued_bytes: None,
            queue_qos0_messages: false,
            max_keepalive: NonZeroU16::new(u16::MAX),
            max_packet_size: None,
            message_size_limit: None,
            persistent_client_expiration: None,
            retain_available: true,
            upgrade_outgoing_qos: false,
            set_tcp_nodelay: true,
            wildcard_subscription_available: true,
            subscription_identifier_available: true,
            shared_subscription_available: true,
            response_information: None,
            global_max_clients: None,
            global_max_connections: None,
            sys_interval: Some(Duration::from_secs(10)),
            persistence: Persistence::default(),
            log: LogConfig::default(),
            pid_file: None,
            user: "mosquitto".to_owned(),
            bridges: Vec::new(),
            http: HttpConfig::defaults(),
            cluster: None,
            notices: Vec::new(),
        }
    }
}

/// Where and how the broker keeps its state on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persistence {
    /// `persistence`: keep sessions, queued messages and retained messages across restarts.
    /// Default: false.
    pub enabled: bool,
    /// `persistence_location`: the directory the store is in. Default: the working directory.
    pub location: Option<PathBuf>,
    /// `persistence_file`: the store's name in that directory (a directory itself, for
    /// Midge). Default: `mosquitto.db`.
    pub file: String,
    /// `persistence_fsync` (Midge): when the store is synced to the disk. Default:
    /// `every_batch`.
    pub fsync: midge_store::FsyncPolicy,
}

impl Default for Persistence {
    fn default() -> Self {
        Self {
            enabled: false,
            location: None,
            file: "mosquitto.db".to_owned(),
            fsync: midge_store::FsyncPolicy::EveryBatch,
        }
    }
}

impl Persistence {
    /// The store's path: `persistence_location` joined with `persistence_file`.
    pub fn path(&self) -> PathBuf {
        match &self.location {
            Some(location) => location.join(&self.file),
            None => PathBuf::from(&self.file),
        }
    }
}
