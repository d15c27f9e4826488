//! The parser's state and the rules that span lines: which listener, bridge and plugin a line
//! belongs to, where security options go (`per_listener_settings`), `include_dir`, and, at the
//! end, Mosquitto's default listener and local-only mode.
//!
//! What each directive does with its value lives in [`super::directives`]; this module only
//! dispatches to it and never interprets a value itself.
//!
//! Scope, as in Mosquitto:
//! - A listener option applies to the listener of the last `listener` line *of the same file*;
//!   before the first one, to Mosquitto's "default listener". Each file starts afresh, so an
//!   included file's options go to its own listeners.
//! - A security option (`allow_anonymous`, `password_file`, ...) applies to the whole broker, or
//!   with `per_listener_settings true` to the current listener.
//! - A bridge option applies to the bridge of the last `connection` line of the same file.
//! - A plugin option applies to the last `plugin` line of the same file.

use std::collections::HashMap;
use std::mem;
use std::path::{Path, PathBuf};

use super::bridge::Bridge;
use super::directives::{self, Directive, Scope, Support};
use super::listener::{
    self, BindAddress, Listener, ListenerAddress, ListenerOrigin, Protocol, SecurityOptions,
};
use super::logging::{LogDestinations, LogTypes};
use super::notice::{Area, Notice, NoticeKind};
use super::source;
use super::value::Args;
use super::{Config, ConfigError, Location, Problem};

/// Why a line failed: a problem with the line itself, or an error in a file it included.
#[derive(Debug)]
pub(super) enum Failure {
    /// The line is wrong.
    Here(Problem),
    /// A file read by `include_dir` is wrong; the error names that file.
    Included(ConfigError),
}

impl From<Problem> for Failure {
    fn from(problem: Problem) -> Self {
        Self::Here(problem)
    }
}

/// The state of a parse: the configuration so far and the scope of the current line.
#[derive(Debug)]
pub(in crate::config) struct Parser {
    /// The broker-wide settings, with Mosquitto's defaults until a line changes them. Its
    /// listeners, log destinations and types and notices are filled in by [`Parser::finish`].
    pub(in crate::config) config: Config,
    /// The broker-wide security options.
    pub(in crate::config) security: SecurityDraft,
    /// Mosquitto's default listener: the target of listener options before a file's first
    /// `listener` line, and of `port` and `bind_address`.
    pub(in crate::config) default_listener: ListenerDraft,
    /// `port`, if given.
    pub(in crate::config) default_port: Option<u16>,
    /// `bind_address`, if given.
    pub(in crate::config) default_bind: Option<BindAddress>,
    /// The first `port` or `bind_address` line, and which of the two it is.
    pub(in crate::config) default_declared_at: Option<(Location, String)>,
    /// The listeners of `listener` lines, in order.
    pub(in crate::config) listeners: Vec<ListenerDraft>,
    /// The bridges of `connection` lines, in order.
    pub(in crate::config) bridges: Vec<BridgeDraft>,
    /// `log_dest` lines so far; `None` until the first.
    pub(in crate::config) log_dest: Option<LogDestinations>,
    /// The first `log_dest file` line: Mosquitto allows only one.
    pub(in crate::config) log_file_at: Option<Location>,
    /// `log_type` lines so far; `None` until the first.
    pub(in crate::config) log_type: Option<LogTypes>,
    /// True until a `listener`, `port` or `bind_address` line.
    pub(in crate::config) local_only: bool,
    /// The first security option: `per_listener_settings true` must come before it.
    pub(in crate::config) first_security_option: Option<Location>,
    /// Where each single-valued string directive was first set, per scope, to report repeats.
    pub(in crate::config) first_set: HashMap<(Target, String), Location>,
    /// What to tell the user.
    pub(in crate::config) notices: Vec<Notice>,
    /// The files read, in order.
    pub(in crate::config) sources: Vec<PathBuf>,
    /// The file being read.
    pub(in crate::config) file: FileState,
    /// The `cluster_*` directives so far.
    pub(in crate::config) cluster: ClusterDraft,
}

/// The `cluster_*` directives, checked together once the file is read.
#[derive(Debug)]
pub(in crate::config) struct ClusterDraft {
    /// What the lines set so far; the name and id are empty until given.
    pub(in crate::config) config: midge_cluster::ClusterConfig,
    /// The supervised server's options; used if `executable` is set.
    pub(in crate::config) server: midge_cluster::NatsServerConfig,
    pub(in crate::config) username: Option<String>,
    pub(in crate::config) password: Option<String>,
    pub(in crate::config) certfile: Option<PathBuf>,
    pub(in crate::config) keyfile: Option<PathBuf>,
    /// The first cluster directive, and where `cluster_name` is.
    pub(in crate::config) first: Option<(Location, String)>,
    pub(in crate::config) name_at: Option<Location>,
}

impl Default for ClusterDraft {
    fn default() -> Self {
        Self {
            config: midge_cluster::ClusterConfig::new("", ""),
            server: midge_cluster::NatsServerConfig {
                executable: PathBuf::new(),
                listen: std::net::SocketAddr::from(([127, 0, 0, 1], 4222)),
                cluster_listen: None,
                routes: Vec::new(),
                store: None,
                monitor: None,
            },
            username: None,
            password: None,
            certfile: None,
            keyfile: None,
            first: None,
            name_at: None,
        }
    }
}

impl ClusterDraft {
    /// The cluster the lines describe, `None` without any cluster line, or the error naming
    /// what a node still needs.
    fn finish(self) -> Result<Option<midge_cluster::ClusterConfig>, ConfigError> {
        let Some((first, directive)) = self.first else {
            return Ok(None);
        };
        let fail = |at: Location, directive: &str, missing: &'static str| ConfigError::Directive {
            at,
            directive: directive.to_owned(),
            problem: Problem::IncompleteCluster(missing),
        };
        let Some(name_at) = self.name_at else {
            return Err(fail(first, &directive, "`cluster_name` line"));
        };
        let mut config = self.config;
        if config.node_id.is_empty() {
            return Err(fail(name_at, "cluster_name", "`cluster_node_id` line"));
        }
        let supervised = !self.server.executable.as_os_str().is_empty();
        if !supervised && config.nats_urls.is_empty() {
            return Err(fail(
                name_at,
                "cluster_name",
                "`cluster_nats_url` or `cluster_nats_server` line",
            ));
        }
        match (self.username, self.password) {
            (Some(user), Some(password)) => config.nats_user = Some((user, password)),
            (None, None) => {}
            _ => {
                return Err(fail(
                    name_at,
                    "cluster_name",
                    "pair of `cluster_nats_username` and `cluster_nats_password` lines",
                ));
            }
        }
        match (self.certfile, self.keyfile) {
            (Some(cert), Some(key)) => config.nats_client_cert = Some((cert, key)),
            (None, None) => {}
            _ => {
                return Err(fail(
                    name_at,
                    "cluster_name",
                    "pair of `cluster_nats_certfile` and `cluster_nats_keyfile` lines",
                ));
            }
        }
        if supervised {
            config.nats_server = Some(self.server);
        }
        Ok(Some(config))
    }
}

/// The scope a single-valued directive was set in, for [`NoticeKind::Repeated`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(in crate::config) enum Target {
    /// The broker.
    Broker,
    /// A listener: `None` for the default listener.
    Listener(Option<usize>),
}

/// What is local to the file being read.
#[derive(Debug)]
pub(in crate::config) struct FileState {
    /// True for a file read by `include_dir`.
    pub(in crate::config) nested: bool,
    /// The listener of this file's last `listener` line; `None`: the default listener.
    pub(in crate::config) listener: Option<usize>,
    /// The bridge of this file's last `connection` line.
    pub(in crate::config) bridge: Option<usize>,
    /// True after a `plugin` line in this file.
    pub(in crate::config) plugin: bool,
    /// The current line.
    pub(in crate::config) at: Location,
    /// The current directive, as written.
    pub(in crate::config) directive: String,
}

impl FileState {
    fn new(nested: bool) -> Self {
        Self {
            nested,
            listener: None,
            bridge: None,
            plugin: false,
            at: Location {
                file: PathBuf::new(),
                line: 0,
            },
            directive: String::new(),
        }
    }
}

/// A listener being read.
#[derive(Debug)]
pub(in crate::config) struct ListenerDraft {
    /// The listener, security options not yet resolved.
    pub(in crate::config) listener: Listener,
    /// Its own security options (used with `per_listener_settings true`).
    pub(in crate::config) security: SecurityDraft,
    /// `listener_allow_anonymous`.
    pub(in crate::config) allow_anonymous: Option<bool>,
    /// `listener_auto_id_prefix`.
    pub(in crate::config) auto_id_prefix: Option<String>,
    /// For the default listener: the first line that set an option on it, and its directive.
    pub(in crate::config) first_option: Option<(Location, String)>,
    /// For the default listener: an option that makes Mosquitto open it whatever its value (a TLS
    /// option, or a per-listener password file, PSK file or plugin).
    pub(in crate::config) forced: bool,
    /// Where `server_moved true` was set, to refuse it if no `server_reference` follows.
    pub(in crate::config) moved_at: Option<Location>,
}

impl ListenerDraft {
    pub(in crate::config) fn new(listener: Listener) -> Self {
        Self {
            listener,
            security: SecurityDraft::default(),
            allow_anonymous: None,
            auto_id_prefix: None,
            first_option: None,
            forced: false,
            moved_at: None,
        }
    }

    /// True if Mosquitto 2.0 would open the default listener because of these options (its
    /// `config__parse_args` compares them with the defaults).
    fn has_non_default_options(&self) -> bool {
        let l = &self.listener;
        self.forced
            || l.protocol != Protocol::Mqtt
            || l.socket_domain.is_some()
            || l.bind_interface.is_some()
            || l.max_connections.is_some()
            || l.max_qos != midge_codec::QoS::ExactlyOnce
            || l.use_username_as_clientid
    }
}

/// Security options being read: `None` where no line set them.
#[derive(Debug, Default)]
pub(in crate::config) struct SecurityDraft {
    pub(in crate::config) allow_anonymous: Option<bool>,
    pub(in crate::config) allow_zero_length_clientid: Option<bool>,
    pub(in crate::config) auto_id_prefix: Option<String>,
    pub(in crate::config) password_file: Option<PathBuf>,
    pub(in crate::config) acl_file: Option<PathBuf>,
    pub(in crate::config) scram_file: Option<PathBuf>,
}

impl SecurityDraft {
    /// The options in force: unset ones take Mosquitto's defaults, where `allow_anonymous`
    /// defaults to true in local-only mode only.
    fn resolve(&self, local_only: bool) -> SecurityOptions {
        let defaults = SecurityOptions::default();
        SecurityOptions {
            allow_anonymous: self.allow_anonymous.unwrap_or(local_only),
            allow_zero_length_clientid: self
                .allow_zero_length_clientid
                .unwrap_or(defaults.allow_zero_length_clientid),
            auto_id_prefix: self.auto_id_prefix.clone().unwrap_or(defaults.auto_id_prefix),
            password_file: self.password_file.clone(),
            acl_file: self.acl_file.clone(),
            scram_file: self.scram_file.clone(),
        }
    }
}

/// A bridge being read.
#[derive(Debug)]
pub(in crate::config) struct BridgeDraft {
    /// The bridge so far.
    pub(in crate::config) bridge: Bridge,
    /// Its `address` line, which may appear once.
    pub(in crate::config) address_at: Option<Location>,
}

impl Parser {
    pub(super) fn new() -> Self {
        let placeholder = ListenerAddress::Tcp {
            port: 1883,
            bind: None,
        };
        Self {
            config: Config::defaults(),
            security: SecurityDraft::default(),
            default_listener: ListenerDraft::new(Listener::new(placeholder, ListenerOrigin::LocalOnly)),
            default_port: None,
            default_bind: None,
            default_declared_at: None,
            listeners: Vec::new(),
            bridges: Vec::new(),
            log_dest: None,
            log_file_at: None,
            log_type: None,
            local_only: true,
            first_security_option: None,
            first_set: HashMap::new(),
            notices: Vec::new(),
            sources: Vec::new(),
            file: FileState::new(false),
            cluster: ClusterDraft::default(),
        }
    }

    /// Reads one file: the main configuration (`nested` false) or one from `include_dir`.
    pub(super) fn parse_file(&mut self, path: &Path, text: &[u8], nested: bool) -> Result<(), ConfigError> {
        self.sources.push(path.to_owned());
        let outer = mem::replace(&mut self.file, FileState::new(nested));
        let result = self.parse_lines(path, text);
        self.file = outer;
        result
    }

    fn parse_lines(&mut self, path: &Path, text: &[u8]) -> Result<(), ConfigError> {
        for (number, raw) in source::lines(text) {
            if source::is_blank_or_comment(raw) {
                continue;
            }
            let at = Location {
                file: path.to_owned(),
                line: number,
            };
            let Ok(line) = std::str::from_utf8(raw) else {
                return Err(ConfigError::NotUtf8 { at });
            };
            let Some((name, rest)) = source::directive(line) else {
                continue;
            };
            self.file.at = at;
            self.file.directive = name.to_owned();
            let mut args = Args::new(rest);
            match self.apply(name, &mut args) {
                Ok(()) => {}
                Err(Failure::Here(problem)) => {
                    return Err(ConfigError::Directive {
                        at: self.file.at.clone(),
                        directive: name.to_owned(),
                        problem,
                    });
                }
                Err(Failure::Included(error)) => return Err(error),
            }
            if let Some(text) = args.leftover() {
                self.notice(NoticeKind::ExtraText {
                    text: text.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Applies one directive line.
    fn apply(&mut self, name: &str, args: &mut Args<'_>) -> Result<(), Failure> {
        let Some(directive) = directives::find(name) else {
            self.notice(NoticeKind::Unknown {
                did_you_mean: directives::suggest(name),
            });
            args.rest_of_line().ok();
            return Ok(());
        };
        self.check_scope(directive)?;
        (directive.apply)(self, args)?;
        match directive.support {
            Support::Supported => {}
            Support::NotYet(area) => {
                self.notice(NoticeKind::NotSupportedYet { area });
                self.mark_unsupported(directive.scope, area);
            }
            Support::NoEffect(reason) => self.notice(NoticeKind::Ignored { reason }),
            Support::Never(reason) => self.notice(NoticeKind::CannotHonour { reason }),
        }
        Ok(())
    }

    /// Refuses a bridge or plugin option outside its block.
    fn check_scope(&self, directive: &Directive) -> Result<(), Problem> {
        match directive.scope {
            Scope::Bridge if self.file.bridge.is_none() => Err(Problem::OutsideBridge),
            Scope::PluginOption if !self.file.plugin => Err(Problem::OutsidePlugin),
            _ => Ok(()),
        }
    }

    /// Records on the listener concerned that an option it was given is not supported yet.
    fn mark_unsupported(&mut self, scope: Scope, area: Area) {
        let on_listener = match scope {
            Scope::Listener => true,
            Scope::Security => self.config.per_listener_settings,
            Scope::Broker | Scope::Bridge | Scope::PluginOption => false,
        };
        if on_listener {
            self.listener_option(area == Area::Tls || scope == Scope::Security);
            let areas = &mut self.current_listener().listener.not_supported_yet;
            if !areas.contains(&area) {
                areas.push(area);
            }
        }
    }

    /// Adds a notice about the current line.
    pub(in crate::config) fn notice(&mut self, kind: NoticeKind) {
        self.notices.push(Notice {
            at: self.file.at.clone(),
            directive: self.file.directive.clone(),
            kind,
        });
    }

    /// Notes that the current directive, single-valued, is set in `target`, with a notice if it
    /// was set there before.
    pub(in crate::config) fn set_once(&mut self, target: Target) {
        let key = (target, self.file.directive.clone());
        match self.first_set.get(&key) {
            Some(first) => {
                let first = first.clone();
                self.notice(NoticeKind::Repeated { first });
            }
            None => {
                self.first_set.insert(key, self.file.at.clone());
            }
        }
    }

    /// A value that runs to the end of the line, with a notice if it seems to hold a comment.
    pub(in crate::config) fn string_value<'a>(&mut self, args: &mut Args<'a>) -> Result<&'a str, Problem> {
        let value = args.rest_of_line()?;
        if value.contains(" #") || value.contains("\t#") {
            self.notice(NoticeKind::HashInValue);
        }
        Ok(value)
    }

    /// The listener that listener options of the current line go to.
    pub(in crate::config) fn current_listener(&mut self) -> &mut ListenerDraft {
        match self.file.listener.and_then(|index| self.listeners.get_mut(index)) {
            Some(draft) => draft,
            None => &mut self.default_listener,
        }
    }

    /// The scope of the current listener, for [`Parser::set_once`].
    pub(in crate::config) fn listener_target(&self) -> Target {
        Target::Listener(self.file.listener)
    }

    /// Notes that the current line sets a listener option; on the default listener, remembers
    /// the first such line and whether the option makes Mosquitto open it regardless of value.
    pub(in crate::config) fn listener_option(&mut self, forces_default_listener: bool) {
        if self.file.listener.is_none() {
            let draft = &mut self.default_listener;
            if draft.first_option.is_none() {
                draft.first_option = Some((self.file.at.clone(), self.file.directive.clone()));
            }
            draft.forced |= forces_default_listener;
        }
    }

    /// Refuses an option that Mosquitto 2.1 accepts only after a `listener` line of the same file.
    pub(in crate::config) fn require_listener(&self) -> Result<(), Problem> {
        if self.file.listener.is_none() {
            Err(Problem::OutsideListener)
        } else {
            Ok(())
        }
    }

    /// Where a security option of the current line goes: the broker, or with
    /// `per_listener_settings true` the current listener.
    pub(in crate::config) fn security(&mut self) -> &mut SecurityDraft {
        if self.first_security_option.is_none() {
            self.first_security_option = Some(self.file.at.clone());
        }
        if self.config.per_listener_settings {
            &mut self.current_listener().security
        } else {
            &mut self.security
        }
    }

    /// The scope of a security option of the current line, for [`Parser::set_once`].
    pub(in crate::config) fn security_target(&self) -> Target {
        if self.config.per_listener_settings {
            self.listener_target()
        } else {
            Target::Broker
        }
    }

    /// Reads the `*.conf` files of `dir`, for `include_dir`.
    pub(in crate::config) fn include_dir(&mut self, dir: &Path) -> Result<(), Failure> {
        let files = source::include_dir_files(dir).map_err(|source| Problem::IncludeDir {
            dir: dir.to_owned(),
            source,
        })?;
        for file in files {
            let text = source::read(&file).map_err(Failure::Included)?;
            self.parse_file(&file, &text, true).map_err(Failure::Included)?;
        }
        Ok(())
    }

    /// Resolves what depends on the whole file (the default listener, local-only mode, security
    /// scope, log sets) and checks bridges.
    pub(super) fn finish(mut self) -> Result<Config, ConfigError> {
        for draft in &self.bridges {
            let bridge = &draft.bridge;
            let missing = if draft.address_at.is_none() {
                Some("`address` line")
            } else if bridge.topics.is_empty() {
                Some("`topic` line")
            } else {
                None
            };
            if let Some(missing) = missing {
                return Err(ConfigError::Directive {
                    at: bridge.at.clone(),
                    directive: "connection".to_owned(),
                    problem: Problem::IncompleteBridge {
                        name: bridge.name.clone(),
                        missing,
                    },
                });
            }
        }
        let bridges: Vec<Bridge> = self.bridges.drain(..).map(|draft| draft.bridge).collect();

        for draft in self.listeners.iter().chain([&self.default_listener]) {
            if let (Some(at), None) = (&draft.moved_at, &draft.listener.server_reference) {
                return Err(ConfigError::Directive {
                    at: at.clone(),
                    directive: "server_moved".to_owned(),
                    problem: Problem::MovedWithoutReference,
                });
            }
        }

        let mut listeners = Vec::new();
        for draft in &self.listeners {
            listeners.push(self.resolve_listener(draft));
        }
        let default = self.resolve_listener(&self.default_listener);
        if self.local_only {
            listeners = listener::local_only_listeners(&default);
        } else if let Some(default) = self.default_listener_to_open(default)? {
            listeners.push(default);
        }

        for listener in &listeners {
            check_mqttsn(listener)?;
        }

        let mut config = self.config;
        config.local_only = self.local_only;
        config.listeners = listeners;
        config.log.log_dest = self.log_dest.unwrap_or_default();
        config.log.log_type = self.log_type.unwrap_or(LogTypes::DEFAULT);
        config.notices = self.notices;
        config.sources = self.sources;
        config.bridges = bridges;
        config.cluster = self.cluster.finish()?;
        Ok(config)
    }

    /// A listener with its security options resolved.
    fn resolve_listener(&self, draft: &ListenerDraft) -> Listener {
        let scoped = if self.config.per_listener_settings {
            &draft.security
        } else {
            &self.security
        };
        let mut security = scoped.resolve(self.local_only);
        if let Some(allow) = draft.allow_anonymous {
            security.allow_anonymous = allow;
        }
        if let Some(prefix) = &draft.auto_id_prefix {
            security.auto_id_prefix.clone_from(prefix);
        }
        Listener {
            security,
            ..draft.listener.clone()
        }
    }

    /// Mosquitto's default listener, if it is to be opened: when `port` or `bind_address` was
    /// given, or an option set before the first `listener` line differs from its default.
    fn default_listener_to_open(&mut self, mut default: Listener) -> Result<Option<Listener>, ConfigError> {
        let (at, directive) = match (&self.default_declared_at, &self.default_listener.first_option) {
            (Some(declared), _) => declared.clone(),
            (None, Some(first)) if self.default_listener.has_non_default_options() => {
                let (at, directive) = first.clone();
                let kind = NoticeKind::DefaultListenerCreated;
                self.notices.push(Notice {
                    at: at.clone(),
                    directive: directive.clone(),
                    kind,
                });
                (at, directive)
            }
            _ => return Ok(None),
        };
        default.address = ListenerAddress::Tcp {
            port: self.default_port.unwrap_or(1883),
            bind: self.default_bind.clone(),
        };
        default.origin = ListenerOrigin::Default(at.clone());
        if let Some(first) = duplicate_of(&default.address, &self.listeners) {
            let problem = Problem::DuplicateListener {
                address: default.address.to_string(),
                first,
            };
            return Err(ConfigError::Directive {
                at,
                directive,
                problem,
            });
        }
        Ok(Some(default))
    }
}

/// Where a listener on `address` is already declared, if one is. TCP port 0 never clashes: each
/// such listener gets its own free port.
pub(in crate::config) fn duplicate_of(
    address: &ListenerAddress,
    listeners: &[ListenerDraft],
) -> Option<Location> {
    if matches!(address, ListenerAddress::Tcp { port: 0, .. }) {
        return None;
    }
    listeners
        .iter()
        .find(|draft| &draft.listener.address == address)
        .and_then(|draft| match &draft.listener.origin {
            ListenerOrigin::Declared(at) | ListenerOrigin::Default(at) => Some(at.clone()),
            ListenerOrigin::LocalOnly => None,
        })
}

/// `mqttsn_*` options need `protocol mqttsn`, and an MQTT-SN listener needs a UDP port and no
/// TLS options (DTLS is not supported yet).
fn check_mqttsn(listener: &Listener) -> Result<(), ConfigError> {
    let fail = |at: &Location, directive: &str, problem| ConfigError::Directive {
        at: at.clone(),
        directive: directive.to_owned(),
        problem,
    };
    if listener.protocol != Protocol::MqttSn {
        return match &listener.mqttsn.first_option {
            Some((at, directive)) => Err(fail(at, directive, Problem::NotMqttSn)),
            None => Ok(()),
        };
    }
    let (ListenerOrigin::Declared(at) | ListenerOrigin::Default(at)) = &listener.origin else {
        return Ok(());
    };
    if matches!(listener.address, ListenerAddress::Unix { .. }) {
        return Err(fail(
            at,
            "listener",
            Problem::BadMqttSnListener("needs a UDP port, not a Unix socket"),
        ));
    }
    if listener.tls.enabled() {
        return Err(fail(
            at,
            "listener",
            Problem::BadMqttSnListener("cannot use TLS options (DTLS is not supported yet)"),
        ));
    }
    Ok(())
}
