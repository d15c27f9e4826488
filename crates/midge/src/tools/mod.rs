//! `midge pub`, `midge sub` and `midge rr`: Mosquitto's `mosquitto_pub`, `mosquitto_sub` and
//! `mosquitto_rr` on `midge-client`, with the same flags, output, error messages and exit
//! codes (2.0.11).
//!
//! # Layout
//! - `args`: the command line both tools share (Mosquitto's `client_shared.c`), parsed by hand
//!   because Mosquitto's tools accept flags in any order and answer mistakes with their own
//!   messages, which clap cannot reproduce.
//! - `properties`: `-D command identifier value`, MQTT 5 properties by Mosquitto's names.
//! - `usage`: the `--help` texts.
//! - `mosquitto_text`: Mosquitto's wording for reason codes, CONNACK codes and errors.
//! - `debug_log`: the `-d` lines, from the client's packet trace.
//! - `connect`: turning the parsed flags into a connection, and its failures into messages.
//! - `publish`, `subscribe`, `request`: the three tools; `format`: `mosquitto_sub -F` (which
//!   `midge rr` prints its response with too).
//!
//! Differences from Mosquitto are listed in docs/client-tools.md.

mod args;
mod connect;
mod debug_log;
mod format;
mod json;
mod mosquitto_text;
mod properties;
mod publish;
mod request;
mod subscribe;
mod usage;

use std::process::ExitCode;

/// Which tool to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tool {
    /// `midge pub`, after `mosquitto_pub`.
    Pub,
    /// `midge sub`, after `mosquitto_sub`.
    Sub,
    /// `midge rr`, after `mosquitto_rr`.
    Rr,
}

impl Tool {
    /// The tool's name as users type it.
    fn name(self) -> &'static str {
        match self {
            Self::Pub => "midge pub",
            Self::Sub => "midge sub",
            Self::Rr => "midge rr",
        }
    }
}

/// Runs a tool with the arguments after its name (`midge pub ...`) and returns its exit
/// status. Arguments that are not UTF-8 are read lossily.
pub(crate) fn run(tool: Tool) -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .skip(2)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("Error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        match tool {
            Tool::Pub => publish::main(args).await,
            Tool::Sub => subscribe::main(args).await,
            Tool::Rr => request::main(args).await,
        }
    });
    // Mosquitto's exit codes are the CONNACK codes (up to 0x9F) and libmosquitto errors: all
    // fit in a byte.
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
