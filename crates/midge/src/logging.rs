//! Logging as Mosquitto does it: `log_dest` picks standard output, standard error, a file and/or
//! syslog, `log_type` picks which lines, and each line is `<unix seconds>: <message>` (the
//! timestamp can be turned off with `log_timestamp false`, or formatted with
//! `log_timestamp_format`, in UTC). `log_format json`, a Midge extension, writes one JSON object
//! per line instead, for log shippers (the fields are listed at [`json_line`]).
//!
//! `log_type` maps onto levels: `debug` (or `-v`, which is `log_type all`) shows debug lines,
//! `information`/`notice` info, `warning` warnings, `error` errors. With `connection_messages
//! false` the per-client connect and disconnect lines are left out.
//!
//! The log file is opened before the broker gives up root (`user`), and a file it creates then
//! is handed to that user, so that it can reopen it later: [`LogHandle::reopen`] does, on SIGHUP,
//! as Mosquitto does, which is how logrotate's `postrotate` moves the broker to a fresh file.
//! Nothing here may fail once the logger is installed: a line that cannot be written is lost,
//! never a reason to stop the broker.

use std::ffi::CStr;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use midge_server::config::{LogConfig, LogFormat, LogType};
use nix::syslog::{Facility, LogFlags, Severity};
use nix::unistd::{Gid, Uid};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::calendar::Now;

/// The name syslog lines carry, as `midge[PID]`.
const SYSLOG_IDENT: &CStr = c"midge";

/// What the running broker can do with its logger: reopen the log file.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogHandle {
    file: Option<Arc<LogFile>>,
}

impl LogHandle {
    /// Closes and reopens the `log_dest file`, if there is one (after logrotate moved it away).
    /// On failure the old file stays in use and the error says why.
    pub(crate) fn reopen(&self) -> io::Result<()> {
        match &self.file {
            Some(file) => file.reopen(),
            None => Ok(()),
        }
    }

    /// The `log_dest file` path, if any.
    pub(crate) fn file_path(&self) -> Option<&Path> {
        self.file.as_deref().map(|file| file.path.as_path())
    }
}

/// Installs the process's logger. `verbose` is `-v`: every type of line. `owner` is the user
/// the broker will run as (see [`crate::privileges`]): a log file created now is given to it.
/// `ring`: the HTTP API's in-memory log, which keeps info lines and more severe ones whatever
/// `log_type` says (debug lines too when those are logged).
pub(crate) fn init(
    config: &LogConfig,
    verbose: bool,
    owner: Option<(Uid, Gid)>,
    ring: Option<Arc<midge_server::http::LogRing>>,
) -> anyhow::Result<LogHandle> {
    let types = config.log_type;
    let level = if verbose || types.contains(LogType::Debug) {
        LevelFilter::DEBUG
    } else if types.contains(LogType::Information) || types.contains(LogType::Notice) {
        LevelFilter::INFO
    } else if types.contains(LogType::Warning) {
        LevelFilter::WARN
    } else if types.contains(LogType::Error) {
        LevelFilter::ERROR
    } else {
        LevelFilter::OFF
    };
    let mut targets = Targets::new().with_default(level);
    if !config.connection_messages {
        targets = targets.with_target("midge_server::connection", LevelFilter::WARN.min(level));
    }

    let dest = &config.log_dest;
    let file = match &dest.file {
        Some(path) => Some(Arc::new(LogFile::open(path, owner)?)),
        None => None,
    };
    if dest.syslog {
        let facility = match config.log_facility {
            Some(n) => local_facility(n),
            None => Facility::LOG_DAEMON,
        };
        // LOG_NDELAY connects to /dev/log now, while the broker may still read anything.
        nix::syslog::openlog(
            Some(SYSLOG_IDENT),
            LogFlags::LOG_PID | LogFlags::LOG_NDELAY,
            facility,
        )
        .context("cannot open syslog")?;
    }
    let output = Output {
        stdout: dest.stdout,
        stderr: dest.stderr,
        file: file.clone(),
        syslog: dest.syslog,
        format: config.log_format,
        timestamp: match (config.log_timestamp, &config.log_timestamp_format) {
            (false, _) => Timestamp::None,
            (true, None) => Timestamp::UnixSeconds,
            (true, Some(format)) => Timestamp::Strftime(format.clone()),
        },
    };
    let ring = ring.map(|ring| ring.layer().with_filter(level.max(LevelFilter::INFO)));
    // The ring first: whoever reads a line in the log output finds it in the API too.
    tracing_subscriber::registry()
        .with(ring)
        .with(output.with_filter(targets))
        .try_init()
        .context("cannot install the logger")?;
    Ok(LogHandle { file })
}

/// `log_facility N`: syslog's `localN`.
fn local_facility(n: u8) -> Facility {
    match n {
        0 => Facility::LOG_LOCAL0,
        1 => Facility::LOG_LOCAL1,
        2 => Facility::LOG_LOCAL2,
        3 => Facility::LOG_LOCAL3,
        4 => Facility::LOG_LOCAL4,
        5 => Facility::LOG_LOCAL5,
        6 => Facility::LOG_LOCAL6,
        _ => Facility::LOG_LOCAL7,
    }
}

/// `log_dest file`: appended to, and reopened on request.
#[derive(Debug)]
struct LogFile {
    path: PathBuf,
    /// Who a newly created file is given to, while the broker is still root.
    owner: Option<(Uid, Gid)>,
    file: Mutex<File>,
}

impl LogFile {
    fn open(path: &Path, owner: Option<(Uid, Gid)>) -> anyhow::Result<Self> {
        let file =
            open_append(path, owner).with_context(|| format!("cannot open log file {}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            owner,
            file: Mutex::new(file),
        })
    }

    fn reopen(&self) -> io::Result<()> {
        let fresh = open_append(&self.path, self.owner)?;
        *self.file.lock().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }

    fn write_line(&self, line: &[u8]) {
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = file.write_all(line);
    }
}

/// Opens `path` for appending, creating it if needed; a file created by root is handed to
/// `owner`, the user the broker is about to become.
fn open_append(path: &Path, owner: Option<(Uid, Gid)>) -> io::Result<File> {
    match OpenOptions::new().append(true).create_new(true).open(path) {
        Ok(file) => {
            if let Some((uid, gid)) = owner
                && Uid::effective().is_root()
            {
                std::os::unix::fs::fchown(&file, Some(uid.as_raw()), Some(gid.as_raw()))?;
            }
            Ok(file)
        }
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            OpenOptions::new().append(true).open(path)
        }
        Err(error) => Err(error),
    }
}

/// How a text line starts.
#[derive(Debug)]
enum Timestamp {
    None,
    UnixSeconds,
    Strftime(String),
}

/// The layer that writes each event to every `log_dest`.
#[derive(Debug)]
struct Output {
    stdout: bool,
    stderr: bool,
    file: Option<Arc<LogFile>>,
    syslog: bool,
    format: LogFormat,
    timestamp: Timestamp,
}

impl<S: Subscriber> Layer<S> for Output {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if self.format == LogFormat::Text {
            self.text_line(event);
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = *event.metadata().level();
        // Syslog stamps lines itself, but a JSON line keeps its time: it gets the same line.
        let mut line = json_line(&Now::at(SystemTime::now()), level, &fields);
        if self.syslog {
            let _ = nix::syslog::syslog(severity(level), &line);
        }
        line.push('\n');
        self.write_line(line.as_bytes());
    }
}

impl Output {
    /// Writes a whole line (newline included) to standard output, standard error and the log
    /// file, whichever `log_dest` names; syslog is the callers' own.
    fn write_line(&self, line: &[u8]) {
        if self.stdout {
            let _ = io::stdout().lock().write_all(line);
        }
        if self.stderr {
            let _ = io::stderr().lock().write_all(line);
        }
        if let Some(file) = &self.file {
            file.write_line(line);
        }
    }

    /// A text line: the message alone, built in the thread's line buffer (no other field is
    /// formatted and nothing is allocated: a busy broker writes two such lines per connection)
    /// and written with one call per destination.
    fn text_line(&self, event: &Event<'_>) {
        LINE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut line) => {
                self.write_text(event, &mut line);
                if line.capacity() > LINE_KEPT {
                    *line = String::new();
                }
            }
            // Only if writing a line logged another: that one gets a buffer of its own.
            Err(_) => self.write_text(event, &mut String::new()),
        });
    }

    fn write_text(&self, event: &Event<'_>, line: &mut String) {
        use std::fmt::Write as _;
        line.clear();
        let now = SystemTime::now();
        match &self.timestamp {
            Timestamp::None => {}
            Timestamp::UnixSeconds => {
                let seconds = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                let _ = write!(line, "{seconds}: ");
            }
            Timestamp::Strftime(format) => {
                let _ = write!(line, "{}: ", Now::at(now).format(format));
            }
        }
        // Syslog stamps lines itself: it gets the message alone.
        let message_at = line.len();
        event.record(&mut MessageInto(line));
        line.push('\n');
        self.write_line(line.as_bytes());
        if self.syslog {
            let body = &line[message_at..line.len() - 1];
            let _ = nix::syslog::syslog(severity(*event.metadata().level()), body);
        }
    }
}

thread_local! {
    /// Each thread's buffer for text lines, reused from line to line.
    static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// A line buffer that grew past this (a very long message) is freed after its line.
const LINE_KEPT: usize = 4096;

/// Writes an event's message, and nothing else, into a line.
struct MessageInto<'a>(&'a mut String);

impl Visit for MessageInto<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            use std::fmt::Write as _;
            let _ = write!(self.0, "{value:?}");
        }
    }
}

/// Syslog's severity for a level.
fn severity(level: Level) -> Severity {
    match level {
        Level::ERROR => Severity::LOG_ERR,
        Level::WARN => Severity::LOG_WARNING,
        Level::INFO => Severity::LOG_INFO,
        _ => Severity::LOG_DEBUG,
    }
}

/// One JSON object, with these fields always present, in this order:
/// - `time`: RFC 3339 in UTC with microseconds;
/// - `level`: `error`, `warning`, `info`, `debug` or `trace`;
/// - `event`: a stable name for what happened (`client.connected`, `client.disconnected`, ...;
///   `docs/operations.md` lists them), or `log` for a line that has none;
/// - `client_id`, `peer`, `reason`: strings, or `null` where they do not apply;
/// - `message`: the text line Mosquitto's format would show.
fn json_line(now: &Now, level: Level, fields: &Fields) -> String {
    let level = match level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    };
    let text = |value: &Option<String>| {
        value
            .as_deref()
            .map_or(serde_json::Value::Null, serde_json::Value::from)
    };
    let object = serde_json::json!({
        "time": now.rfc3339(),
        "level": level,
        "event": fields.event.as_deref().unwrap_or("log"),
        "client_id": text(&fields.client_id),
        "peer": text(&fields.peer),
        "reason": text(&fields.reason),
        "message": fields.message,
    });
    object.to_string()
}

/// The fields of an event that the formats use.
#[derive(Debug, Default)]
struct Fields {
    message: String,
    event: Option<String>,
    client_id: Option<String>,
    peer: Option<String>,
    /// `reason`, or else `error`.
    reason: Option<String>,
}

impl Fields {
    fn set(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => self.message = value,
            "event" => self.event = Some(value),
            "client_id" => self.client_id = Some(value),
            "peer" => self.peer = Some(value),
            "reason" => self.reason = Some(value),
            "error" => {
                self.reason.get_or_insert(value);
            }
            _ => {}
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field, format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn json_lines_have_every_field_and_escape_text() {
        let now = Now::at(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let fields = Fields {
            message: "New client connected from 127.0.0.1:5 as \"c\\1\"".into(),
            event: Some("client.connected".into()),
            client_id: Some("c\\1\n".into()),
            peer: Some("127.0.0.1:5".into()),
            reason: None,
        };
        let line = json_line(&now, Level::INFO, &fields);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        assert_eq!(value["time"], "2023-11-14T22:13:20.000000Z");
        assert_eq!(value["level"], "info");
        assert_eq!(value["event"], "client.connected");
        assert_eq!(value["client_id"], "c\\1\n");
        assert_eq!(value["peer"], "127.0.0.1:5");
        assert!(value["reason"].is_null());
        assert_eq!(
            value["message"],
            "New client connected from 127.0.0.1:5 as \"c\\1\""
        );
        assert!(!line.contains('\n'), "{line}");

        let line = json_line(&now, Level::WARN, &Fields::default());
        let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        assert_eq!(value["event"], "log");
        assert_eq!(value["level"], "warning");
    }
}
