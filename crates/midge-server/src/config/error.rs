//! Why a configuration cannot be used: [`ConfigError`], whose message always starts with the file
//! (and, for a bad line, the line number) so a user can go straight to it.
//!
//! This module only describes failures; it never decides what is valid.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::path::PathBuf;

use midge_codec::TopicNameError;

/// A line of a configuration file: `FILE:LINE` when displayed. Lines count from 1.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// The file, as it was named: the path given to [`Config::load`](super::Config::load), the
    /// origin name given to [`Config::parse_str`](super::Config::parse_str), or
    /// `INCLUDE_DIR/NAME.conf` for a file read by `include_dir`.
    pub file: PathBuf,
    /// The line number, from 1.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A configuration that cannot be used. The broker must not start (or, on reload, must keep the
/// configuration it has) and should print this error as it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A configuration file (the main one or one found by `include_dir`) could not be read.
    #[error("{}: cannot read configuration file: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// A line is not valid UTF-8.
    #[error("{at}: line is not valid UTF-8")]
    NotUtf8 {
        /// The line.
        at: Location,
    },
    /// A directive's value is wrong, or the directive is not allowed where it is.
    #[error("{at}: {directive}: {problem}")]
    Directive {
        /// The line.
        at: Location,
        /// The directive as written.
        directive: String,
        /// What is wrong with it.
        problem: Problem,
    },
}

impl ConfigError {
    /// Where the error is: `None` for a file that could not be read at all.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::Read { .. } => None,
            Self::NotUtf8 { at } | Self::Directive { at, .. } => Some(at),
        }
    }
}

/// What is wrong with one directive line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The directive needs a value and has none.
    #[error("missing value")]
    MissingValue,
    /// The value is not of the expected form; `what` says what was expected.
    #[error("expected {what}, got \"{got}\"")]
    Expected {
        /// What the value should look like, e.g. "a whole number" or "true or false".
        what: Cow<'static, str>,
        /// The value as written.
        got: String,
    },
    /// A `mount_point` that is not a valid MQTT topic name.
    #[error("\"{got}\" is not a valid topic name: {reason}")]
    BadTopic {
        /// The value as written.
        got: String,
        /// Why it is not a topic name.
        reason: TopicNameError,
    },
    /// A bridge directive outside a bridge block.
    #[error("only valid inside a bridge block, after a `connection NAME` line")]
    OutsideBridge,
    /// A plugin option before any `plugin` line in the same file.
    #[error("only valid after a `plugin` line in the same file")]
    OutsidePlugin,
    /// A listener option that Mosquitto only accepts after a `listener` line.
    #[error("only valid after a `listener` line")]
    OutsideListener,
    /// `per_listener_settings true` after a security setting, which it would change the scope of.
    #[error("must come before every security setting (the first one is at {first})")]
    PerListenerSettingsTooLate {
        /// The first security setting.
        first: Location,
    },
    /// Something that may appear only once appears again.
    #[error("{what} is already set at {first}")]
    Duplicate {
        /// What is duplicated, e.g. `"log_dest file"` or `bridge "backup"`.
        what: Cow<'static, str>,
        /// Where it was first set.
        first: Location,
    },
    /// Two listeners on the same port and address (or the same Unix socket).
    #[error("listener {address} is already defined at {first}")]
    DuplicateListener {
        /// The listener's address, e.g. `1883 127.0.0.1`.
        address: String,
        /// The first definition.
        first: Location,
    },
    /// A bridge block that lacks something it needs.
    #[error("bridge \"{name}\" has no {missing}")]
    IncompleteBridge {
        /// The bridge's name.
        name: String,
        /// What it lacks, e.g. "`address` line".
        missing: &'static str,
    },
    /// A bridge `topic ""` without both prefixes: nothing to map from or to.
    #[error(
        "invalid bridge remapping: a topic of \"\" needs both a local and a remote prefix \
         (it maps the one topic to the other)"
    )]
    BridgeRemapping,
    /// `restart_timeout BASE CAP` with the cap below the base.
    #[error("the backoff cap ({cap}) is lower than the base ({base})")]
    BackoffCapBelowBase {
        /// The base.
        base: i64,
        /// The cap.
        cap: i64,
    },
    /// `mqttsn_*` options on a listener that does not say `protocol mqttsn`.
    #[error("has no effect without `server_reference` on the same listener")]
    MovedWithoutReference,

    #[error("only valid on a listener with `protocol mqttsn`")]
    NotMqttSn,
    /// A `protocol mqttsn` listener on something other than a UDP port, or with TLS options
    /// (DTLS is not supported yet).
    #[error("an mqttsn listener {0}")]
    BadMqttSnListener(&'static str),
    /// Cluster directives that do not make a node: this one lacks what is named.
    #[error("a cluster node needs a {0}")]
    IncompleteCluster(&'static str),
    /// The directory named by `include_dir` cannot be listed.
    #[error("cannot open directory \"{}\": {source}", dir.display())]
    IncludeDir {
        /// The directory.
        dir: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
}

impl Problem {
    /// A value of the wrong form.
    pub(super) fn expected(what: impl Into<Cow<'static, str>>, got: &str) -> Self {
        Self::Expected {
            what: what.into(),
            got: got.to_owned(),
        }
    }
}
