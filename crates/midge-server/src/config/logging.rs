//! The typed form of the logging directives: `log_dest`, `log_type`, `log_timestamp`,
//! `log_timestamp_format`, `connection_messages`, `log_facility` and Midge's `log_format`.
//!
//! Only values live here; the broker's logger reads them. `log_dest` and `log_type` accumulate
//! over every line of the configuration, as in Mosquitto: each line adds to the set, `none`
//! empties it, and the defaults apply only if no line names the directive at all.

use std::fmt;
use std::path::PathBuf;

/// Where log lines go and which ones are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `log_dest`: where log lines go. Default: standard error.
    pub log_dest: LogDestinations,
    /// `log_type`: which kinds of lines are written. Default: error, warning, notice, information.
    pub log_type: LogTypes,
    /// `log_timestamp`: start each line with a timestamp. Default: true.
    pub log_timestamp: bool,
    /// `log_timestamp_format`: a strftime format for that timestamp; `None`: Unix seconds, as
    /// Mosquitto prints them.
    pub log_timestamp_format: Option<String>,
    /// `connection_messages`: log each client's connection and disconnection. Default: true.
    pub connection_messages: bool,
    /// `log_facility`: with `log_dest syslog`, log to `local0` to `local7`; `None`: `daemon`.
    pub log_facility: Option<u8>,
    /// `log_format` (a Midge extension): Mosquitto's text lines, or one JSON object per line.
    pub log_format: LogFormat,
}

/// How each log line is written: `log_format text` or `log_format json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Mosquitto's lines: `<timestamp>: <message>`.
    #[default]
    Text,
    /// One JSON object per line, with stable field names, for log shippers.
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            log_dest: LogDestinations::default(),
            log_type: LogTypes::DEFAULT,
            log_timestamp: true,
            log_timestamp_format: None,
            connection_messages: true,
            log_facility: None,
            log_format: LogFormat::Text,
        }
    }
}

/// The destinations of `log_dest`. All false and no file means `log_dest none`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDestinations {
    /// `stdout`.
    pub stdout: bool,
    /// `stderr`.
    pub stderr: bool,
    /// `file PATH`: append to this file.
    pub file: Option<PathBuf>,
    /// `syslog`: the system logger, through `/dev/log`.
    pub syslog: bool,
    /// `topic`: publish to `$SYS/broker/log/...`. Not supported yet.
    pub topic: bool,
    /// `dlt`: the automotive Diagnostic Log and Trace daemon. Not supported yet.
    pub dlt: bool,
    /// `android`: the Android log. Not supported yet.
    pub android: bool,
}

impl LogDestinations {
    /// `log_dest none`.
    pub const NONE: Self = Self {
        stdout: false,
        stderr: false,
        file: None,
        syslog: false,
        topic: false,
        dlt: false,
        android: false,
    };
}

impl Default for LogDestinations {
    /// Standard error only.
    fn default() -> Self {
        Self {
            stderr: true,
            ..Self::NONE
        }
    }
}

/// One kind of log line, as named by `log_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogType {
    /// `error`.
    Error,
    /// `warning`.
    Warning,
    /// `notice`.
    Notice,
    /// `information`.
    Information,
    /// `debug`.
    Debug,
    /// `subscribe`: a line per subscription.
    Subscribe,
    /// `unsubscribe`: a line per unsubscription.
    Unsubscribe,
    /// `websockets`: WebSocket library messages.
    Websockets,
}

impl LogType {
    /// Every kind, in the order above.
    pub const ALL: [Self; 8] = [
        Self::Error,
        Self::Warning,
        Self::Notice,
        Self::Information,
        Self::Debug,
        Self::Subscribe,
        Self::Unsubscribe,
        Self::Websockets,
    ];

    /// The name used by `log_type`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Notice => "notice",
            Self::Information => "information",
            Self::Debug => "debug",
            Self::Subscribe => "subscribe",
            Self::Unsubscribe => "unsubscribe",
            Self::Websockets => "websockets",
        }
    }

    /// The kind `log_type` calls `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for LogType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`LogType`]s.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LogTypes(u16);

impl LogTypes {
    /// `log_type none`.
    pub const NONE: Self = Self(0);
    /// `log_type all`.
    pub const ALL: Self = Self((1 << LogType::ALL.len()) - 1);
    /// Mosquitto's default: error, warning, notice and information.
    pub const DEFAULT: Self = Self(0b1111);

    /// True if `kind` is in the set.
    pub fn contains(self, kind: LogType) -> bool {
        self.0 & kind.bit() != 0
    }

    /// Adds `kind`.
    pub fn insert(&mut self, kind: LogType) {
        self.0 |= kind.bit();
    }

    /// The kinds in the set, in [`LogType::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = LogType> {
        LogType::ALL.into_iter().filter(move |kind| self.contains(*kind))
    }
}

impl fmt::Debug for LogTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl FromIterator<LogType> for LogTypes {
    fn from_iter<I: IntoIterator<Item = LogType>>(iter: I) -> Self {
        let mut set = Self::NONE;
        for kind in iter {
            set.insert(kind);
        }
        set
    }
}
