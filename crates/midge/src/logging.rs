//! Logging as Mosquitto does it: `log_dest` picks standard output, standard error and/or a file,
//! `log_type` picks which lines, and each line is `<unix seconds>: <message>` (the timestamp can
//! be turned off with `log_timestamp false`).
//!
//! `log_type` maps onto levels: `debug` (or `-v`, which is `log_type all`) shows debug lines,
//! `information`/`notice` info, `warning` warnings, `error` errors. With `connection_messages
//! false` the per-client connect and disconnect lines are left out.

use std::fmt;
use std::fs::OpenOptions;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use midge_server::config::{LogConfig, LogType};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the process's logger. `verbose` is `-v`: every type of line.
/// `ring`: the HTTP API's in-memory log, which keeps info lines and more severe ones whatever
/// `log_type` says (debug lines too when those are logged).
pub(crate) fn init(
    config: &LogConfig,
    verbose: bool,
    ring: Option<std::sync::Arc<midge_server::http::LogRing>>,
) -> anyhow::Result<()> {
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
    let mut writer: Option<BoxMakeWriter> = None;
    let mut add = |next: BoxMakeWriter| {
        writer = Some(match writer.take() {
            Some(existing) => BoxMakeWriter::new(existing.and(next)),
            None => next,
        });
    };
    if dest.stdout {
        add(BoxMakeWriter::new(std::io::stdout));
    }
    if dest.stderr {
        add(BoxMakeWriter::new(std::io::stderr));
    }
    if let Some(path) = &dest.file {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open log file {}", path.display()))?;
        add(BoxMakeWriter::new(Mutex::new(file)));
    }
    let writer = writer.unwrap_or_else(|| BoxMakeWriter::new(std::io::sink));

    let layer = tracing_subscriber::fmt::layer()
        .event_format(MosquittoFormat {
            timestamp: config.log_timestamp,
        })
        .with_writer(writer);
    let ring = ring.map(|ring| ring.layer().with_filter(level.max(LevelFilter::INFO)));
    tracing_subscriber::registry()
        .with(layer.with_filter(targets))
        .with(ring)
        .try_init()
        .context("cannot install the logger")
}

use tracing_subscriber::Layer;

/// `1700000000: message`, the message alone without field dumps.
struct MosquittoFormat {
    timestamp: bool,
}

impl<S, N> FormatEvent<S, N> for MosquittoFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if self.timestamp {
            let seconds = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            write!(writer, "{seconds}: ")?;
        }
        let mut message = MessageOnly(String::new());
        event.record(&mut message);
        writeln!(writer, "{}", message.0)
    }
}

struct MessageOnly(String);

impl Visit for MessageOnly {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            use fmt::Write;
            let _ = write!(self.0, "{value:?}");
        }
    }
}
