//! The typed settings of the HTTP listener (`http_listener PORT [ADDRESS]` and the `http_*`
//! directives): where the HTTP API, `/metrics` and the web view listen, who may use them, and
//! the TLS certificate they present. Plain values; nothing here opens a socket or a file.

use std::path::PathBuf;

use super::{BindAddress, Location};

/// The HTTP listener's settings. Off (no `http_listener` line) by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpConfig {
    /// `http_listener PORT [ADDRESS]`: where to listen, and the line that said so. `None`: no
    /// HTTP listener. Without an address it listens on every interface, like `listener`.
    pub listener: Option<HttpListener>,
    /// `http_auth_token TOKEN` lines: bearer tokens that may use the API (each line adds one).
    pub auth_tokens: Vec<String>,
    /// `http_password_file`: a Mosquitto password file for HTTP basic authentication. It may
    /// name the broker's own `password_file`, which makes every MQTT user an administrator.
    pub password_file: Option<PathBuf>,
    /// `http_allow_anonymous`: `Some(true)`: requests without credentials are served from
    /// anywhere; `Some(false)`: never; `None` (the default): only from loopback addresses.
    pub allow_anonymous: Option<bool>,
    /// `http_certfile`: the certificate chain (PEM) that makes the listener speak HTTPS.
    pub certfile: Option<PathBuf>,
    /// `http_keyfile`: its private key (PEM).
    pub keyfile: Option<PathBuf>,
    /// `http_log_lines`: how many recent log lines the API keeps in memory. Default: 1000.
    pub log_lines: usize,
}

/// Where the HTTP listener listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpListener {
    /// The TCP port; 0 asks the system for a free one.
    pub port: u16,
    /// The address; `None`: every interface (IPv4 and IPv6).
    pub bind: Option<BindAddress>,
    /// The `http_listener` line.
    pub at: Location,
}

impl HttpConfig {
    /// The settings before any line: no listener, 1000 log lines kept.
    pub(super) fn defaults() -> Self {
        Self {
            log_lines: 1000,
            ..Self::default()
        }
    }
}
