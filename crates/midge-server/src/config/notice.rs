//! What the broker should tell the user about a configuration it accepted: unknown directives,
//! directives Midge knows but does not implement yet, deprecated ones, and surprising but valid
//! constructs. Each [`Notice`] names its `FILE:LINE`; the broker logs them as warnings at start
//! and on reload.
//!
//! Notices never stop the broker; that is what [`ConfigError`](super::ConfigError) is for.

use std::fmt;

use super::Location;

/// One thing to tell the user about an accepted configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The line.
    pub at: Location,
    /// The directive as written.
    pub directive: String,
    /// What there is to say.
    pub kind: NoticeKind,
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.at, self.directive, self.kind)
    }
}

/// What a [`Notice`] says.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoticeKind {
    /// Neither Midge nor Mosquitto (2.0 or 2.1) has this directive. Mosquitto refuses to start on
    /// it; Midge ignores the line.
    Unknown {
        /// A known directive with a similar name.
        did_you_mean: Option<&'static str>,
    },
    /// A Mosquitto directive that Midge reads and checks but does not act on yet; the feature
    /// comes with the issue of its [`Area`].
    NotSupportedYet {
        /// The feature area that will bring it.
        area: Area,
    },
    /// Deprecated by Mosquitto; it still works (or never did anything), with this advice.
    Deprecated {
        /// What to do instead.
        advice: &'static str,
    },
    /// Read but without effect, for this reason.
    Ignored {
        /// Why.
        reason: &'static str,
    },
    /// A directive (or value) Midge will never act on, for this reason; the broker refuses to
    /// start with it rather than run less protected than the file asks.
    CannotHonour {
        /// Why.
        reason: &'static str,
    },
    /// Text after the value that Mosquitto ignores silently (and so does Midge).
    ExtraText {
        /// The text.
        text: String,
    },
    /// A single-valued directive set a second time in the same scope: the last value wins.
    /// (Mosquitto 2 refuses a repeated string value and warns about a repeated `port`.)
    Repeated {
        /// The earlier setting.
        first: Location,
    },
    /// A listener option set before the first `listener` line of a file configures Mosquitto's
    /// default listener, which is then opened on port 1883 besides the declared listeners.
    DefaultListenerCreated,
    /// A value that runs to the end of the line contains ` #`: mosquitto.conf has no end-of-line
    /// comments for such values, so the `#` and what follows are part of the value.
    HashInValue,
}

impl fmt::Display for NoticeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown {
                did_you_mean: Some(name),
            } => {
                write!(f, "unknown directive, ignored (did you mean \"{name}\"?)")
            }
            Self::Unknown { did_you_mean: None } => f.write_str("unknown directive, ignored"),
            Self::NotSupportedYet { area } => write!(f, "not supported yet ({area})"),
            Self::Deprecated { advice } => write!(f, "deprecated: {advice}"),
            Self::Ignored { reason } => write!(f, "ignored: {reason}"),
            Self::CannotHonour { reason } => write!(f, "cannot be honoured: {reason}"),
            Self::ExtraText { text } => write!(f, "extra text \"{text}\" ignored"),
            Self::Repeated { first } => write!(f, "already set at {first}; the last value wins"),
            Self::DefaultListenerCreated => f.write_str(
                "set before the first `listener` line, so it configures the default listener, \
                 which is opened on port 1883 besides the other listeners (as in Mosquitto 2)",
            ),
            Self::HashInValue => f.write_str(
                "the value contains \" #\", which is part of the value: mosquitto.conf has no \
                 end-of-line comments",
            ),
        }
    }
}

/// The feature areas that bring the directives Midge does not support yet. Each is (or will be)
/// an issue of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Area {
    /// Authentication and access control: password and ACL files, plugins, `$CONTROL`.
    Security,
    /// TLS and TLS-PSK on listeners.
    Tls,
    /// Saving state to disk.
    Persistence,
    /// Bridges to other brokers (`connection` blocks).
    Bridges,
    /// MQTT over WebSockets, and the HTTP the WebSocket listener serves.
    Websockets,
    /// The `$SYS/broker/...` topics.
    Sys,
    /// Several nodes serving as one broker (`cluster_*`).
    Cluster,
    /// Everything else: syslog and other log destinations, privilege dropping (`user`), the
    /// memory limit, the PROXY protocol, the HTTP API, retained message expiry.
    Other,
}

impl fmt::Display for Area {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Security => "security",
            Self::Tls => "TLS",
            Self::Persistence => "persistence",
            Self::Bridges => "bridges",
            Self::Websockets => "websockets",
            Self::Sys => "$SYS",
            Self::Cluster => "cluster",
            Self::Other => "unplanned",
        })
    }
}
