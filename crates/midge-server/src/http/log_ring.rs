//! The recent log lines the HTTP API serves (`GET /api/v1/logs`): a `tracing` layer that keeps
//! the last N events in memory, with their level, target, message and the `client_id` field
//! when the event has one. Bounded: the oldest line goes when a new one comes.

use std::collections::VecDeque;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

/// One log line kept.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// Counts lines since the start: a client that polls asks for lines after the last it saw.
    pub id: u64,
    /// When it was logged, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Its level.
    pub level: Level,
    /// The module that logged it.
    pub target: String,
    /// The message.
    pub message: String,
    /// The client it is about, when the event says.
    pub client_id: Option<String>,
}

/// The last lines logged, shared by the logging layer and the HTTP API.
#[derive(Debug)]
pub struct LogRing {
    capacity: usize,
    state: Mutex<RingState>,
}

#[derive(Debug, Default)]
struct RingState {
    lines: VecDeque<LogLine>,
    next_id: u64,
}

impl LogRing {
    /// A ring that keeps the last `capacity` lines (0: none).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            state: Mutex::new(RingState::default()),
        }
    }

    /// The `tracing` layer that fills this ring.
    pub fn layer(self: &std::sync::Arc<Self>) -> LogRingLayer {
        LogRingLayer(self.clone())
    }

    fn push(&self, mut line: LogLine) {
        if self.capacity == 0 {
            return;
        }
        let mut state = self.state.lock();
        line.id = state.next_id;
        state.next_id += 1;
        if state.lines.len() >= self.capacity {
            state.lines.pop_front();
        }
        state.lines.push_back(line);
    }

    /// The newest `limit` lines (oldest first) with an id above `after`, at `level` or more
    /// severe, and about `client_id` when given (its `client_id` field, or its message naming
    /// it).
    pub fn query(
        &self,
        level: Level,
        client_id: Option<&str>,
        after: Option<u64>,
        limit: usize,
    ) -> Vec<LogLine> {
        let state = self.state.lock();
        let mut found: Vec<LogLine> = state
            .lines
            .iter()
            .rev()
            .filter(|line| after.is_none_or(|after| line.id > after))
            // tracing orders levels by verbosity: ERROR is the least.
            .filter(|line| line.level <= level)
            .filter(|line| {
                client_id.is_none_or(|id| {
                    line.client_id.as_deref() == Some(id)
                        || (line.client_id.is_none() && line.message.contains(id))
                })
            })
            .take(limit)
            .cloned()
            .collect();
        found.reverse();
        found
    }
}

/// The layer that copies each event into a [`LogRing`].
#[derive(Debug)]
pub struct LogRingLayer(std::sync::Arc<LogRing>);

impl<S: Subscriber> Layer<S> for LogRingLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let metadata = event.metadata();
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.0.push(LogLine {
            id: 0,
            time_ms,
            level: *metadata.level(),
            target: metadata.target().to_owned(),
            message: fields.message,
            client_id: fields.client_id,
        });
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    client_id: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            "client_id" => self.client_id = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            "client_id" => {
                // `%client_id` records Display through Debug; a `?client_id` gets quotes.
                let text = format!("{value:?}");
                self.client_id = Some(text.trim_matches('"').to_owned());
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn keeps_the_last_lines_and_filters_them() {
        let ring = Arc::new(LogRing::new(3));
        let subscriber = tracing_subscriber::registry().with(ring.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("first");
            tracing::warn!(client_id = %"c1", "Client c1 closed its connection.");
            tracing::debug!("chatter");
            tracing::error!("Client c2 did something");
        });
        let all = ring.query(Level::TRACE, None, None, 10);
        let messages: Vec<&str> = all.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "Client c1 closed its connection.",
                "chatter",
                "Client c2 did something"
            ]
        );
        let warnings = ring.query(Level::WARN, None, None, 10);
        assert_eq!(warnings.len(), 2);
        let c1 = ring.query(Level::TRACE, Some("c1"), None, 10);
        assert_eq!(c1.len(), 1);
        assert_eq!(c1[0].client_id.as_deref(), Some("c1"));
        let c2 = ring.query(Level::TRACE, Some("c2"), None, 10);
        assert_eq!(c2[0].message, "Client c2 did something");
        let newest = ring.query(Level::TRACE, None, None, 1);
        assert_eq!(newest[0].message, "Client c2 did something");
        let after = ring.query(Level::TRACE, None, Some(all[1].id), 10);
        assert_eq!(after.len(), 1);
    }
}
