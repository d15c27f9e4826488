//! Asking for a password twice, as `mosquitto_passwd` 2.0 does: `Password: ` and
//! `Reenter password: ` on stdout, each answer a line read from stdin, with echo off when stdin
//! is a terminal.
//!
//! Reads stdin and writes stdout, nothing else. Like Mosquitto it reads stdin even when it is
//! not a terminal, so `printf 'pw\npw\n' | midge passwd FILE USER` works; the trailing CR and LF
//! of each answer are dropped and an empty answer is refused. One difference: on a terminal the
//! line is still edited by the terminal (backspace works), where Mosquitto switches canonical
//! mode off and takes a backspace as part of the password.
//!
//! Ctrl-C or SIGTERM while echo is off restores the terminal and exits with status 0, which is
//! what `mosquitto_passwd` does. The signals are taken by a thread waiting in `sigwait` (no
//! signal handler, so no unsafe code), and only while the prompt is up.

use std::io::{self, BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread::JoinHandle;

use nix::sys::pthread::{Pthread, pthread_kill, pthread_self};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::termios::{self, LocalFlags, SetArg, Termios};

/// Why no password came back. The exit statuses are `mosquitto_passwd`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PromptError {
    /// An empty line, or end of input: `Error: Empty password.`, status 1.
    Empty,
    /// The two answers differ: `Error: Passwords do not match.`, status 2.
    Mismatch,
}

impl PromptError {
    pub(super) fn report(self) -> ExitCode {
        match self {
            Self::Empty => {
                eprintln!("Error: Empty password.");
                ExitCode::from(1)
            }
            Self::Mismatch => {
                eprintln!("Error: Passwords do not match.");
                ExitCode::from(2)
            }
        }
    }
}

/// Asks for the password and asks again to confirm it.
pub(super) fn new_password() -> Result<Vec<u8>, PromptError> {
    let _quiet = QuietTerminal::new();
    let first = ask("Password: ")?;
    let second = ask("Reenter password: ")?;
    if first == second {
        Ok(first)
    } else {
        Err(PromptError::Mismatch)
    }
}

/// Prints `prompt`, reads one line, and ends the prompt's line (the user's Enter was not
/// echoed).
fn ask(prompt: &str) -> Result<Vec<u8>, PromptError> {
    let mut stdout = io::stdout().lock();
    // A closed stdout must not stop the password being read, as it does not stop Mosquitto.
    let _ = stdout.write_all(prompt.as_bytes());
    let _ = stdout.flush();
    let mut line = Vec::new();
    if io::stdin().lock().read_until(b'\n', &mut line).is_err() {
        return Err(PromptError::Empty);
    }
    while line.last().is_some_and(|&byte| byte == b'\n' || byte == b'\r') {
        line.pop();
    }
    if line.is_empty() {
        return Err(PromptError::Empty);
    }
    let _ = stdout.write_all(b"\n");
    let _ = stdout.flush();
    Ok(line)
}

/// While alive: stdin's terminal does not echo, and SIGINT or SIGTERM restore it and exit 0.
/// `None` when stdin is not a terminal.
struct QuietTerminal {
    saved: Termios,
    signals: SigSet,
    /// The thread waiting for the signals, and its id for waking it.
    watcher: Option<(Pthread, JoinHandle<()>)>,
}

/// Wakes the watcher thread when the prompt is over.
const WAKE: Signal = Signal::SIGUSR2;

impl QuietTerminal {
    fn new() -> Option<Self> {
        let stdin = io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let saved = termios::tcgetattr(&stdin).ok()?;
        let mut signals = SigSet::empty();
        for signal in [Signal::SIGINT, Signal::SIGTERM, WAKE] {
            signals.add(signal);
        }
        // Blocked here before the watcher starts, so it inherits the mask and no thread has
        // them unblocked: only the watcher's sigwait takes them.
        signals.thread_block().ok()?;
        let mut quiet = Self {
            saved,
            signals,
            watcher: None,
        };
        let restore = quiet.saved.clone();
        let (id_tx, id_rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("passwd-signals".into())
            .spawn(move || {
                let _ = id_tx.send(pthread_self());
                // A WAKE sent before this wait is pending, so it cannot be missed.
                if let Ok(signal) = signals.wait()
                    && signal != WAKE
                {
                    let _ = termios::tcsetattr(io::stdin(), SetArg::TCSANOW, &restore);
                    std::process::exit(0);
                }
            });
        let handle = spawned.ok()?;
        let id = id_rx.recv().ok()?;
        quiet.watcher = Some((id, handle));
        let mut no_echo = quiet.saved.clone();
        no_echo.local_flags.remove(LocalFlags::ECHO);
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &no_echo).ok()?;
        Some(quiet)
    }
}

impl Drop for QuietTerminal {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(io::stdin(), SetArg::TCSANOW, &self.saved);
        if let Some((id, handle)) = self.watcher.take()
            && pthread_kill(id, WAKE).is_ok()
        {
            let _ = handle.join();
        }
        // A SIGINT that came after the watcher stopped is still pending: unblocking delivers
        // it with its default action, as if the prompt had never been there.
        let _ = self.signals.thread_unblock();
    }
}
