//! From a parsed mosquitto.conf to what the runtime needs: the core's [`BrokerConfig`] and the
//! listeners to open.
//!
//! This is also where Midge refuses to start rather than run less safely than the file asks:
//! TLS and authentication settings are not implemented yet, and serving in plaintext or
//! without the password file a user configured would be worse than not starting.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};

use anyhow::bail;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use midge_core::{AccessControl, AuthMethods, BrokerConfig, ClientRules, Redirect};
use midge_server::config::{
    Area, BindAddress, Config, Listener, ListenerAddress, ListenerOrigin, NoticeKind, Protocol, SocketDomain,
    TlsOptions,
};
use midge_server::http::{Anonymous, HttpAuth, HttpSpec, LogRing};
use midge_server::mqttsn::GatewaySpec;
use midge_server::security::{self, Authenticator, ScramMethods};
use midge_server::server::Endpoint;
use midge_server::tls::TlsListener;
use midge_server::{ListenerClientOptions, ListenerSecurity, ListenerSpec};

/// What the runtime starts from.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) broker: BrokerConfig,
    pub(crate) listeners: Vec<ListenerSpec>,
    /// The broker-wide password check (for listeners without rules of their own).
    pub(crate) authenticator: Arc<Authenticator>,
    /// Every password file in use and the authenticator it feeds, for SIGHUP.
    pub(crate) password_files: Vec<(PathBuf, Arc<Authenticator>)>,
    /// The broker-wide enhanced authentication (`scram_file`), for listeners without rules
    /// of their own.
    pub(crate) auth_methods: Option<Arc<dyn AuthMethods>>,
    /// Every SCRAM file in use and the methods it feeds, for SIGHUP.
    pub(crate) scram_files: Vec<(PathBuf, Arc<ScramMethods>)>,
    /// The topic rules: the ACL file's, or the `$`-topic rules every broker applies.
    pub(crate) access: Arc<dyn AccessControl>,
    /// Each listener's ACL file, in the order of `listeners`, for SIGHUP.
    pub(crate) acl_files: Vec<Option<PathBuf>>,
    /// The TLS listeners' configurations, for SIGHUP and the certificate watch.
    pub(crate) tls: Vec<Arc<TlsListener>>,
    /// `global_max_connections`.
    pub(crate) global_max_connections: Option<usize>,
    /// `sys_interval`.
    pub(crate) sys_interval: Option<std::time::Duration>,
    /// `persistence` and where: `None` when off.
    pub(crate) persistence: Option<midge_server::config::Persistence>,
    /// The bridges to run.
    pub(crate) bridges: Vec<midge_server::bridge::BridgePlan>,
    /// `http_listener`: the HTTP API, metrics and web view, to bind.
    pub(crate) http: Option<HttpSpec>,
    /// `cluster_name` and the rest: the cluster this broker is a node of.
    pub(crate) cluster: Option<midge_cluster::ClusterConfig>,
    /// Lines to log as warnings once logging is set up.
    pub(crate) warnings: Vec<String>,
}

/// Applies `-p` ports to the configuration: in local-only mode they replace port 1883 on the
/// loopback listeners; otherwise each adds a listener on every interface.
pub(crate) fn apply_ports(config: &mut Config, ports: &[u16]) {
    if ports.is_empty() {
        return;
    }
    let templates: Vec<Listener> = if config.local_only {
        std::mem::take(&mut config.listeners)
    } else {
        config.listeners.iter().take(1).cloned().collect()
    };
    for &port in ports {
        for template in &templates {
            let mut listener = template.clone();
            listener.address = match &template.address {
                ListenerAddress::Tcp { bind, .. } if config.local_only => ListenerAddress::Tcp {
                    port,
                    bind: bind.clone(),
                },
                _ => ListenerAddress::Tcp { port, bind: None },
            };
            listener.protocol = Protocol::Mqtt;
            listener.not_supported_yet.clear();
            config.listeners.push(listener);
        }
    }
}

/// Translates `config`, or says why Midge must not start with it.
pub(crate) fn from_config(config: &Config) -> anyhow::Result<Settings> {
    let mut warnings = Vec::new();
    for notice in &config.notices {
        if let NoticeKind::CannotHonour { .. } = notice.kind {
            bail!("{notice}: refusing to start rather than run without it");
        }
        if let NoticeKind::NotSupportedYet {
            area: area @ (Area::Security | Area::Tls),
        } = notice.kind
        {
            bail!(
                "{notice}: refusing to start, because ignoring {area} settings would leave the \
                 broker less protected than the configuration asks"
            );
        }
        warnings.push(notice.to_string());
    }

    // With per_listener_settings each listener admits clients by its own rules and password
    // file (files named twice are read once).
    let mut authenticators: HashMap<Option<PathBuf>, Arc<Authenticator>> = HashMap::new();
    let mut scram_files: Vec<(PathBuf, Arc<ScramMethods>)> = Vec::new();
    let mut listeners = Vec::new();
    // The ACL file of each listener opened, in the same order (the core's listener index).
    let mut acl_files = Vec::new();
    let mut tls = Vec::new();
    for listener in &config.listeners {
        match listener_spec(listener, config.set_tcp_nodelay) {
            Ok(Some(mut spec)) => {
                if let Some(listener_tls) = &spec.tls {
                    warnings.extend(
                        listener_tls
                            .notes()
                            .iter()
                            .map(|note| format!("listener {}: {note}", listener.address)),
                    );
                    tls.push(listener_tls.clone());
                }
                if config.per_listener_settings {
                    let path = listener.security.password_file.clone();
                    let authenticator = match authenticators.get(&path) {
                        Some(existing) => existing.clone(),
                        None => {
                            let passwords = match &path {
                                Some(path) => {
                                    let (file, skipped) = security::load_password_file(path)?;
                                    warnings.extend(skipped);
                                    Some(file)
                                }
                                None => None,
                            };
                            let made = Arc::new(Authenticator::new(passwords));
                            authenticators.insert(path, made.clone());
                            made
                        }
                    };
                    spec.security = Some(ListenerSecurity {
                        rules: ClientRules {
                            allow_anonymous: listener.security.allow_anonymous,
                            allow_zero_length_clientid: listener.security.allow_zero_length_clientid,
                            auto_id_prefix: listener.security.auto_id_prefix.clone(),
                            // The listener's own options are laid over these by the server.
                            mount_point: None,
                            use_username_as_clientid: false,
                            accepted_versions: Vec::new(),
                            listener: 0,
                            auth: scram_methods(&listener.security.scram_file, &mut scram_files)?,
                            redirect: None,
                        },
                        authenticator,
                    });
                }
                listeners.push(spec);
                acl_files.push(listener.security.acl_file.clone());
            }
            Ok(None) => warnings.push(format!(
                "listener {} ({:?}) is not supported yet and is not opened",
                listener.address, listener.protocol
            )),
            Err(error) => return Err(error),
        }
    }
    if listeners.is_empty() {
        bail!("no listener that Midge can open is configured");
    }

    // max_qos and max_topic_alias are still broker-wide: those of the first listener, with a
    // warning when listeners differ.
    let first = &config.listeners[0];
    if config
        .listeners
        .iter()
        .any(|l| l.max_qos != first.max_qos || l.max_topic_alias != first.max_topic_alias)
    {
        warnings.push(format!(
            "listeners differ in max_qos or max_topic_alias; Midge applies those of listener {} \
             to all of them for now",
            first.address
        ));
    }

    let defaults = BrokerConfig::default();
    let max_inflight = config.max_inflight_messages.map_or(0, |n| n.get());
    let broker = BrokerConfig {
        allow_anonymous: first.security.allow_anonymous,
        allow_zero_length_clientid: first.security.allow_zero_length_clientid,
        auto_id_prefix: first.security.auto_id_prefix.clone(),
        max_inflight_messages: max_inflight,
        max_inflight_bytes: config.max_inflight_bytes.map_or(0, |n| n.get()),
        max_queued_messages: config
            .max_queued_messages
            .map_or(0, |n| usize::try_from(n.get()).unwrap_or(usize::MAX)),
        max_queued_bytes: config.max_queued_bytes.map_or(0, |n| n.get()),
        queue_qos0_messages: config.queue_qos0_messages,
        max_packet_size: config
            .max_packet_size
            .map_or(midge_codec::PROTOCOL_MAX_PACKET_SIZE, |n| n.get()),
        message_size_limit: config.message_size_limit.map_or(0, |n| n.get()),
        max_keepalive: config.max_keepalive.map_or(u16::MAX, |n| n.get()),
        max_clients: config
            .global_max_clients
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        persistent_client_expiration: config.persistent_client_expiration,
        retain_available: config.retain_available,
        upgrade_outgoing_qos: config.upgrade_outgoing_qos,
        max_qos: first.max_qos,
        max_topic_alias: first.max_topic_alias,
        receive_maximum: if max_inflight == 0 { u16::MAX } else { max_inflight },
        wildcard_subscriptions: config.wildcard_subscription_available,
        subscription_identifiers: config.subscription_identifier_available,
        shared_subscriptions: config.shared_subscription_available,
        response_information: config.response_information.clone(),
        ..defaults
    };
    let mut password_files: Vec<(PathBuf, Arc<Authenticator>)> = authenticators
        .into_iter()
        .filter_map(|(path, authenticator)| path.map(|path| (path, authenticator)))
        .collect();
    let authenticator = if config.per_listener_settings {
        Arc::new(Authenticator::new(None))
    } else {
        let passwords = match &first.security.password_file {
            Some(path) => {
                let (file, skipped) = security::load_password_file(path)?;
                warnings.extend(skipped);
                Some(file)
            }
            None => None,
        };
        let authenticator = Arc::new(Authenticator::new(passwords));
        if let Some(path) = &first.security.password_file {
            password_files.push((path.clone(), authenticator.clone()));
        }
        authenticator
    };
    let auth_methods = if config.per_listener_settings {
        None
    } else {
        scram_methods(&first.security.scram_file, &mut scram_files)?
    };
    let (access, notes) = security::load_listener_rules(&acl_files)?;
    warnings.extend(notes);
    let bridges = midge_server::bridge::plan_all(&config.bridges, &hostname())?;
    let http = http_spec(config, &mut password_files, &mut tls, &mut warnings)?;
    Ok(Settings {
        broker,
        listeners,
        authenticator,
        password_files,
        auth_methods,
        scram_files,
        access,
        acl_files,
        tls,
        global_max_connections: config
            .global_max_connections
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        sys_interval: config.sys_interval,
        persistence: config.persistence.enabled.then(|| config.persistence.clone()),
        bridges,
        http,
        cluster: cluster_config(config),
        warnings,
    })
}

/// The cluster settings, with the supervised NATS server's store beside the persistence
/// files unless `cluster_nats_store` says where.
fn cluster_config(config: &Config) -> Option<midge_cluster::ClusterConfig> {
    let mut cluster = config.cluster.clone()?;
    if let Some(server) = &mut cluster.nats_server
        && server.store.is_none()
    {
        let location = config.persistence.location.as_deref();
        server.store = Some(midge_cluster::supervisor::store_dir(server, location));
    }
    Some(cluster)
}

/// The enhanced authentication methods of a `scram_file` (`None`: no file), each file read
/// once however many listeners name it.
fn scram_methods(
    path: &Option<PathBuf>,
    loaded: &mut Vec<(PathBuf, Arc<ScramMethods>)>,
) -> anyhow::Result<Option<Arc<dyn AuthMethods>>> {
    let Some(path) = path else { return Ok(None) };
    if let Some((_, methods)) = loaded.iter().find(|(loaded, _)| loaded == path) {
        return Ok(Some(methods.clone()));
    }
    let methods = Arc::new(ScramMethods::new(security::load_scram_file(path)?));
    loaded.push((path.clone(), methods.clone()));
    Ok(Some(methods))
}

/// The machine's name, for the bridges' default client identifiers (`HOSTNAME.NAME`, as
/// Mosquitto's `gethostname`).
fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The listener to open for `listener`, `None` for kinds not supported yet.
fn listener_spec(listener: &Listener, tcp_nodelay: bool) -> anyhow::Result<Option<ListenerSpec>> {
    let websockets = match listener.protocol {
        Protocol::Mqtt | Protocol::MqttSn => false,
        Protocol::Websockets => true,
        Protocol::HttpApi => return Ok(None),
    };
    let mqttsn = match listener.protocol {
        Protocol::MqttSn => Some(Arc::new(
            GatewaySpec::load(&listener.mqttsn)
                .map_err(|error| anyhow::anyhow!("{}: {error}", describe(listener)))?,
        )),
        _ => None,
    };
    let max_connections = listener
        .max_connections
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let (port, bind) = match &listener.address {
        ListenerAddress::Tcp { port, bind } => (port, bind),
        ListenerAddress::Unix { path } => {
            if listener.tls.enabled() || websockets {
                bail!(
                    "{}: TLS and WebSockets on a Unix socket are not supported; use a TCP listener",
                    describe(listener)
                );
            }
            return Ok(Some(ListenerSpec {
                endpoint: Endpoint::Unix { path: path.clone() },
                max_connections,
                max_connection_rate: listener.max_connection_rate,
                tcp_nodelay,
                security: None,
                tls: None,
                websockets: false,
                bind_interface: None,
                client: client_options(listener),
                mqttsn: None,
            }));
        }
    };
    let tls = if listener.tls.enabled() {
        let loaded = TlsListener::load(&listener.tls)
            .map_err(|error| anyhow::anyhow!("{}: {error}", describe(listener)))?;
        Some(Arc::new(loaded))
    } else {
        None
    };
    let mut addrs = bind_addresses(bind.as_ref(), *port)
        .map_err(|error| anyhow::anyhow!("listener {}: {error}", listener.address))?;
    match listener.socket_domain {
        Some(SocketDomain::Ipv4) => addrs.retain(IpAddr::is_ipv4),
        Some(SocketDomain::Ipv6) => addrs.retain(IpAddr::is_ipv6),
        None => {}
    }
    if addrs.is_empty() {
        bail!(
            "listener {}: no address of the chosen socket_domain",
            listener.address
        );
    }
    Ok(Some(ListenerSpec {
        endpoint: Endpoint::Tcp { addrs, port: *port },
        max_connections,
        max_connection_rate: listener.max_connection_rate,
        tcp_nodelay,
        security: None,
        tls,
        websockets,
        bind_interface: listener.bind_interface.clone(),
        client: client_options(listener),
        mqttsn,
    }))
}

/// The options of `listener` that shape its clients' sessions.
fn client_options(listener: &Listener) -> ListenerClientOptions {
    ListenerClientOptions {
        mount_point: listener.mount_point.as_ref().map(|m| m.as_byte_string().clone()),
        use_username_as_clientid: listener.use_username_as_clientid,
        accepted_versions: listener.accept_protocol_versions.clone(),
        redirect: listener.server_reference.as_ref().map(|reference| Redirect {
            reference: reference.as_str().into(),
            moved: listener.server_moved,
        }),
    }
}

/// `listener 8883 (FILE:LINE)`, for messages about a listener.
fn describe(listener: &Listener) -> String {
    match &listener.origin {
        ListenerOrigin::Declared(at) | ListenerOrigin::Default(at) => {
            format!("listener {} ({at})", listener.address)
        }
        ListenerOrigin::LocalOnly => format!("listener {}", listener.address),
    }
}

/// The addresses a TCP listener binds: every interface (IPv4 and IPv6) without an address, or
/// the address, or what a host name resolves to.
fn bind_addresses(bind: Option<&BindAddress>, port: u16) -> anyhow::Result<Vec<IpAddr>> {
    Ok(match bind {
        None => vec![
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        ],
        Some(BindAddress::Ip(ip)) => vec![*ip],
        Some(BindAddress::Host(host)) => {
            let mut resolved: Vec<IpAddr> = match (host.as_str(), port).to_socket_addrs() {
                Ok(found) => found.map(|a| a.ip()).collect(),
                Err(error) => bail!("cannot resolve {host}: {error}"),
            };
            resolved.dedup();
            resolved
        }
    })
}

/// The HTTP listener of `http_listener` and the `http_*` directives, if there is one. Its
/// password file and certificate join those SIGHUP reloads.
fn http_spec(
    config: &Config,
    password_files: &mut Vec<(PathBuf, Arc<Authenticator>)>,
    tls: &mut Vec<Arc<TlsListener>>,
    warnings: &mut Vec<String>,
) -> anyhow::Result<Option<HttpSpec>> {
    let http = &config.http;
    let Some(listener) = &http.listener else {
        let configured = !http.auth_tokens.is_empty()
            || http.password_file.is_some()
            || http.allow_anonymous.is_some()
            || http.certfile.is_some()
            || http.keyfile.is_some();
        if configured {
            warnings.push("http_* directives without http_listener have no effect".to_owned());
        }
        return Ok(None);
    };
    let what = format!("http_listener {} ({})", listener.port, listener.at);
    let addrs = bind_addresses(listener.bind.as_ref(), listener.port)
        .map_err(|error| anyhow::anyhow!("{what}: {error}"))?;
    let passwords = match &http.password_file {
        Some(path) => {
            let (file, skipped) = security::load_password_file(path)?;
            warnings.extend(skipped);
            let authenticator = Arc::new(Authenticator::new(Some(file)));
            password_files.push((path.clone(), authenticator.clone()));
            Some(authenticator)
        }
        None => None,
    };
    let https = if http.certfile.is_some() || http.keyfile.is_some() {
        let options = TlsOptions {
            certfile: http.certfile.clone(),
            keyfile: http.keyfile.clone(),
            ..TlsOptions::default()
        };
        let loaded =
            Arc::new(TlsListener::load(&options).map_err(|error| anyhow::anyhow!("{what}: {error}"))?);
        tls.push(loaded.clone());
        Some(loaded)
    } else {
        None
    };
    let anonymous = match http.allow_anonymous {
        None => Anonymous::Loopback,
        Some(true) => Anonymous::Always,
        Some(false) => Anonymous::Never,
    };
    Ok(Some(HttpSpec {
        addrs,
        port: listener.port,
        auth: HttpAuth {
            tokens: http.auth_tokens.clone(),
            passwords,
            anonymous,
        },
        tls: https,
        ring: Arc::new(LogRing::new(http.log_lines)),
    }))
}
