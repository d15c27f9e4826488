//! The broker under test, seen from `/proc`: CPU time used over the measured window and
//! resident memory, for `midge bench --pid`; and the same CPU figure for the load generator
//! itself, so a run shows which of the two was the limit.

use std::time::Instant;

/// Linux's USER_HZ: the unit of the CPU times in `/proc/PID/stat`, 100 on every mainstream
/// architecture.
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug)]
pub(crate) struct BrokerProcess {
    pid: u32,
}

/// CPU ticks used so far, read at a moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    at: Instant,
    ticks: Option<u64>,
}

/// What the broker used over a window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Usage {
    /// Percent of one core (200 % is two cores busy).
    pub(crate) cpu_percent: f64,
    pub(crate) rss_bytes: u64,
}

impl BrokerProcess {
    pub(crate) fn new(pid: u32) -> Self {
        Self { pid }
    }

    pub(crate) fn sample(&self) -> Sample {
        Sample {
            at: Instant::now(),
            ticks: self.cpu_ticks(),
        }
    }

    pub(crate) fn report(&self, from: Sample, to: Sample) -> Usage {
        let seconds = to.at.duration_since(from.at).as_secs_f64().max(0.001);
        let ticks = match (from.ticks, to.ticks) {
            (Some(a), Some(b)) => b.saturating_sub(a) as f64,
            _ => 0.0,
        };
        Usage {
            cpu_percent: ticks / TICKS_PER_SECOND / seconds * 100.0,
            rss_bytes: self.rss_bytes().unwrap_or(0),
        }
    }

    /// utime + stime from `/proc/PID/stat` (fields 14 and 15, after the parenthesised name).
    fn cpu_ticks(&self) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        let after_name = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some(utime + stime)
    }

    /// VmRSS from `/proc/PID/status`.
    pub(crate) fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    }
}
