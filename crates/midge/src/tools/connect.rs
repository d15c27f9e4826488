//! From flags to a connected `midge-client`, and from connection failures to Mosquitto's
//! messages and exit codes ("Error: Connection refused", "Unable to connect (Lookup error.).",
//! "Connection error: Connection Refused: not authorised.").
//!
//! It owns the client identifier rules (`-i`, `-I` plus the process id, a random `mosq-…` for
//! MQTT 3.1), the Unix-socket transport of `--unix`, and when TLS is on (`--cafile`,
//! `--capath`, `--tls-use-os-certs`, `mqtts://`, or port 8883, as in libmosquitto 2.0.11)
//! and how its failures read.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use midge_client::{
    Client, ClientError, ClientOptions, Connector, Events, LastWill, TlsConnector, TlsOptions, TlsVersion,
};
use midge_codec::{ConnectReturnCode, ProtocolVersion};
use tokio::net::{TcpStream, UnixStream};

use super::args::Config;
use super::debug_log;
use super::mosquitto_text::connection_error;

/// Why no connection came up.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The message is printed; exit with this code.
    Exit(i32),
    /// The server refused us with this CONNACK code; each tool reports it its own way.
    Refused { v5: bool, code: u8 },
}

impl Failure {
    /// Prints "Connection error: ..." for a refusal (unless `--quiet`) and gives the code.
    pub(crate) fn report_refusal(v5: bool, code: u8, quiet: bool) -> i32 {
        if !quiet {
            eprintln!("Connection error: {}", connection_error(v5, code));
        }
        i32::from(code)
    }
}

/// Prints to stderr unless `--quiet`, like Mosquitto's `err_printf`.
pub(crate) fn err_print(cfg: &Config, text: &str) {
    if !cfg.quiet {
        eprint!("{text}");
    }
}

/// The client identifier the flags ask for; empty lets the server choose.
pub(crate) fn client_id(cfg: &Config) -> String {
    if let Some(id) = &cfg.id {
        return id.clone();
    }
    if let Some(prefix) = &cfg.id_prefix {
        return format!("{prefix}{}", std::process::id());
    }
    if cfg.protocol == ProtocolVersion::V31 {
        // MQTT 3.1 has no empty identifiers: libmosquitto makes one up.
        return random_id();
    }
    String::new()
}

fn random_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut state = nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15;
    let mut id = String::from("mosq-");
    for _ in 0..18 {
        // xorshift64*: an identifier, not a secret.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let n = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        id.push(char::from(ALPHABET[(n >> 58) as usize % ALPHABET.len()]));
    }
    id
}

/// The client options the flags describe.
pub(crate) fn options(cfg: &Config, client_id: &str) -> ClientOptions {
    let mut options = ClientOptions::new(cfg.host.clone().unwrap_or_else(|| "localhost".into()), port(cfg))
        .client_id(client_id)
        .protocol(cfg.protocol)
        .clean_start(cfg.clean_session)
        .keep_alive(cfg.keepalive);
    options.username = cfg.username.clone();
    options.password = cfg
        .password
        .as_ref()
        .map(|p| Bytes::copy_from_slice(p.as_bytes()));
    options.max_inflight = cfg.max_inflight;
    options.nodelay = cfg.nodelay;
    options.connect_properties = cfg.properties.connect.clone();
    if cfg.protocol.is_v5() && cfg.session_expiry > 0 {
        options.session_expiry_interval = u32::try_from(cfg.session_expiry).ok();
    }
    if cfg.msg_count > 0 && cfg.msg_count < 20 {
        // As mosquitto_sub: no more messages in flight to us than we will print.
        options.receive_maximum = u16::try_from(cfg.msg_count)
            .ok()
            .and_then(std::num::NonZeroU16::new);
    }
    if let Some(topic) = &cfg.will_topic {
        let mut will = LastWill::new(
            topic.clone(),
            Bytes::copy_from_slice(cfg.will_payload.as_deref().unwrap_or("").as_bytes()),
        );
        will.qos = cfg.will_qos;
        will.retain = cfg.will_retain;
        will.properties = cfg.properties.will.clone();
        options.will = Some(will);
    }
    // Mosquitto's tools wait as long as the operating system does for a TCP connection.
    options.connect_timeout = Duration::from_secs(120);
    options.deliver_qos2_on_release = true;
    if cfg.debug {
        options = options.trace(debug_log::trace(client_id, cfg.protocol));
    }
    options
}

/// The port: `-p`, else 8883 when a CA source is given (TLS), else 1883.
fn port(cfg: &Config) -> u16 {
    cfg.port.unwrap_or(
        if cfg.cafile.is_some() || cfg.capath.is_some() || cfg.tls_use_os_certs {
            8883
        } else {
            1883
        },
    )
}

/// The TLS configuration the flags ask for, or `None` for plain MQTT. As in libmosquitto
/// 2.0.11, TLS is on with `--cafile`, `--capath` or `--tls-use-os-certs`, and on port 8883
/// even without them (trusting the system's CAs then); `--cert`, `--insecure` and the rest
/// alone do not turn it on.
fn tls_config(cfg: &Config) -> Result<Option<Arc<rustls::ClientConfig>>, Failure> {
    let has_ca = cfg.cafile.is_some() || cfg.capath.is_some();
    let enabled = has_ca || cfg.tls_use_os_certs || cfg.port == Some(8883);
    if has_ca {
        // mosquitto_tls_set opens the files before anything else.
        let files = [&cfg.cafile, &cfg.certfile, &cfg.keyfile];
        if files
            .into_iter()
            .flatten()
            .any(|path| std::fs::File::open(path).is_err())
        {
            err_print(cfg, "Error: Problem setting TLS options: File not found.\n");
            return Err(Failure::Exit(1));
        }
    }
    let min_version = match cfg.tls_version.as_deref() {
        None | Some("tlsv1.2" | "tlsv1.1") => TlsVersion::Tls12,
        Some("tlsv1.3") => TlsVersion::Tls13,
        Some(_) => {
            err_print(
                cfg,
                "Error: Problem setting TLS options, check the options are valid.\n",
            );
            return Err(Failure::Exit(1));
        }
    };
    match cfg.keyform.as_deref() {
        None | Some("pem") => {}
        Some("engine") => {
            err_print(cfg, "Error: --keyform engine is not supported by midge yet.\n");
            return Err(Failure::Exit(1));
        }
        Some(_) => {
            err_print(
                cfg,
                "Error: Problem setting key form, it must be one of 'pem' or 'engine'.\n",
            );
            return Err(Failure::Exit(1));
        }
    }
    if !enabled {
        return Ok(None);
    }
    let options = TlsOptions {
        ca_file: cfg.cafile.as_ref().map(Into::into),
        ca_path: cfg.capath.as_ref().map(Into::into),
        os_certificates: cfg.tls_use_os_certs || !has_ca,
        cert_file: cfg.certfile.as_ref().map(Into::into),
        key_file: cfg.keyfile.as_ref().map(Into::into),
        // libmosquitto checks no host name over a Unix socket.
        insecure: cfg.insecure || cfg.unix_socket.is_some(),
        min_version,
        ciphers: cfg.ciphers.clone(),
        alpn: cfg.tls_alpn.iter().map(|p| p.as_bytes().to_vec()).collect(),
    };
    options.client_config().map(Some).map_err(|_| tls_unable(cfg))
}

/// What libmosquitto says when TLS cannot start: a file it cannot use, a handshake that fails.
fn tls_unable(cfg: &Config) -> Failure {
    err_print(cfg, "Unable to connect (A TLS error occurred.).\n");
    Failure::Exit(1)
}

/// Connects as the flags say, printing Mosquitto's message for any failure but a refusal.
pub(crate) async fn connect(cfg: &Config, options: ClientOptions) -> Result<(Client, Events), Failure> {
    let tls = tls_config(cfg)?;
    let stages = Stages::default();
    let result = match &cfg.unix_socket {
        Some(path) => {
            let unix = UnixConnector(path.clone());
            connect_over(cfg, unix, tls, "localhost", &stages, options).await?
        }
        None => {
            let addresses = match tokio::net::lookup_host((options.host.as_str(), options.port)).await {
                Ok(addresses) => addresses.collect::<Vec<_>>(),
                Err(_) => Vec::new(),
            };
            if addresses.is_empty() {
                err_print(cfg, "Unable to connect (Lookup error.).\n");
                return Err(Failure::Exit(1));
            }
            let connector = AddressConnector {
                addresses,
                nodelay: options.nodelay,
            };
            let host = options.host.clone();
            connect_over(cfg, connector, tls, &host, &stages, options).await?
        }
    };
    result.map_err(|error| match error {
        ClientError::ConnectionRefused { reason, protocol, .. } => {
            let code = if protocol.is_v5() {
                reason.as_u8()
            } else {
                ConnectReturnCode::from_reason(reason) as u8
            };
            Failure::Refused {
                v5: protocol.is_v5(),
                code,
            }
        }
        ClientError::Tls { handshake: true, .. } => tls_unable(cfg),
        // The server refused us after our half of the handshake (a client certificate it
        // wants): libmosquitto reads the alert while sending CONNECT, as EPROTO.
        ClientError::Tls {
            error: rustls::Error::AlertReceived(_),
            ..
        } => {
            err_print(cfg, "Error: Protocol error\n");
            Failure::Exit(1)
        }
        ClientError::Tls { .. } => tls_unable(cfg),
        // The TCP connection was up but the handshake broke off (a server that does not speak
        // TLS): a TLS failure to libmosquitto.
        ClientError::Io(_) if stages.tcp_up() && !stages.tls_up() => tls_unable(cfg),
        ClientError::Io(e) => {
            err_print(cfg, &format!("Error: {}\n", strerror(&e)));
            Failure::Exit(1)
        }
        other => {
            err_print(cfg, &format!("Error: {other}\n"));
            Failure::Exit(1)
        }
    })
}

/// How far the connector got: TCP (or the Unix socket) up, TLS handshake done.
#[derive(Debug, Default, Clone)]
struct Stages {
    tcp: Arc<AtomicBool>,
    tls: Arc<AtomicBool>,
}

impl Stages {
    fn tcp_up(&self) -> bool {
        self.tcp.load(Ordering::Relaxed)
    }

    fn tls_up(&self) -> bool {
        self.tls.load(Ordering::Relaxed)
    }
}

/// A connector that notes when its inner one succeeds.
struct Noting<C> {
    inner: C,
    reached: Arc<AtomicBool>,
}

impl<C: Connector> Connector for Noting<C> {
    type Stream = C::Stream;

    async fn connect(&self) -> io::Result<C::Stream> {
        let stream = self.inner.connect().await?;
        self.reached.store(true, Ordering::Relaxed);
        Ok(stream)
    }
}

/// Connects over `inner`'s streams, in TLS if `tls` is set (checking the certificate against
/// `host`), noting in `stages` how far connecting got.
async fn connect_over<C: Connector>(
    cfg: &Config,
    inner: C,
    tls: Option<Arc<rustls::ClientConfig>>,
    host: &str,
    stages: &Stages,
    options: ClientOptions,
) -> Result<Result<(Client, Events), ClientError>, Failure> {
    let tcp = Noting {
        inner,
        reached: stages.tcp.clone(),
    };
    Ok(match tls {
        Some(config) => {
            let tls = TlsConnector::new(tcp, config, host).map_err(|_| tls_unable(cfg))?;
            let connector = Noting {
                inner: tls,
                reached: stages.tls.clone(),
            };
            Client::connect_with(connector, options).await
        }
        None => Client::connect_with(tcp, options).await,
    })
}

/// The C library's text for an I/O error, without Rust's " (os error N)".
pub(crate) fn strerror(error: &io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// TCP to the first resolved address that answers, as libmosquitto tries them in turn.
struct AddressConnector {
    addresses: Vec<std::net::SocketAddr>,
    nodelay: bool,
}

impl Connector for AddressConnector {
    type Stream = TcpStream;

    async fn connect(&self) -> io::Result<TcpStream> {
        let mut last = io::Error::from(io::ErrorKind::AddrNotAvailable);
        for address in &self.addresses {
            match TcpStream::connect(address).await {
                Ok(stream) => {
                    if self.nodelay {
                        stream.set_nodelay(true)?;
                    }
                    return Ok(stream);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// `--unix path`.
struct UnixConnector(String);

impl Connector for UnixConnector {
    type Stream = UnixStream;

    async fn connect(&self) -> io::Result<UnixStream> {
        UnixStream::connect(&self.0).await
    }
}
