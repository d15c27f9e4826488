//! How long an accept loop keeps polling after a connection instead of sleeping.
//!
//! Connections come in bursts (a fleet reconnecting after a restart or a network outage). With
//! one worker thread, each time the broker runs out of work in a burst it sleeps in
//! `epoll_wait`, and the next connection has to wake it: on a virtual machine that wake-up is
//! an inter-processor interrupt and a VM exit paid by the client's side, and the broker sleeps
//! and wakes a few thousand times per 5,000 connections. For [`WINDOW`] after each accepted
//! connection the accept loop yields instead of waiting for the listener; a tokio worker that
//! runs a yielded task first polls its I/O driver without blocking, so nothing sleeps, and every
//! event that comes in meanwhile (the next connection, the CONNECT of the last one) is handled
//! at once. Measured in docs/performance.md ("Connection rate").
//!
//! Only with one worker: with more, an idle worker sleeps on the driver and is woken for
//! events however busy the spinning one is, so spinning would burn a core for nothing.
//! Between bursts nothing spins; during one, at most one core does.

use std::time::{Duration, Instant};

/// How long after the last accepted connection the loop keeps polling.
pub(crate) const WINDOW: Duration = Duration::from_micros(300);

/// The spin of one accept loop.
#[derive(Debug)]
pub(crate) struct AcceptSpin {
    /// Zero where the loop never spins.
    window: Duration,
    until: Option<Instant>,
}

impl AcceptSpin {
    /// For an accept loop on a runtime with `workers` worker threads.
    pub(crate) fn new(workers: usize) -> Self {
        Self::with_window(if workers == 1 { WINDOW } else { Duration::ZERO })
    }

    pub(crate) fn with_window(window: Duration) -> Self {
        Self { window, until: None }
    }

    /// A connection was accepted: keep polling for a while.
    pub(crate) fn accepted(&mut self) {
        if !self.window.is_zero() {
            self.until = Some(Instant::now() + self.window);
        }
    }

    /// Whether the loop should yield and look again rather than wait for the listener.
    pub(crate) fn active(&mut self) -> bool {
        match self.until {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                self.until = None;
                false
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_worker_spins_for_the_window_after_an_accept_and_then_sleeps() {
        let mut spin = AcceptSpin::with_window(Duration::from_millis(50));
        assert!(!spin.active(), "nothing accepted yet");
        spin.accepted();
        assert!(spin.active());
        std::thread::sleep(Duration::from_millis(60));
        assert!(!spin.active(), "the window has passed");
        assert!(!spin.active());
        assert_eq!(AcceptSpin::new(1).window, WINDOW);
    }

    #[test]
    fn several_workers_never_spin() {
        let mut spin = AcceptSpin::new(2);
        spin.accepted();
        assert!(!spin.active());
    }
}
