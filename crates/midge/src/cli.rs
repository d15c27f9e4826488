//! The command line, Mosquitto's: `midge [-c config_file] [-d] [-h] [-p port] [-v]`.
//!
//! clap's own `-h` and `-V` are switched off so the flags mean what they mean to Mosquitto
//! users; `-h`/`--help` and `--version` are declared by hand.

use std::path::PathBuf;

use clap::{ArgAction, Parser};

/// Midge, an MQTT v5.0/v3.1.1/v3.1 broker that reads mosquitto.conf.
#[derive(Debug, Parser)]
#[command(
    name = "midge",
    version,
    disable_help_flag = true,
    disable_version_flag = true,
    after_help = "With no configuration file Midge runs in local only mode: it listens on \
                  127.0.0.1 and ::1, port 1883 (or -p), and allows anonymous clients."
)]
pub(crate) struct Args {
    /// Read the broker configuration from this mosquitto.conf file.
    #[arg(short = 'c', long = "config-file", value_name = "config_file")]
    pub(crate) config_file: Option<PathBuf>,

    /// Put the broker into the background after starting.
    #[arg(short = 'd', long = "daemon")]
    pub(crate) daemon: bool,

    /// Listen on this port (may be given several times). Without -c, on 127.0.0.1 and ::1 only;
    /// with -c, on every interface, besides the listeners of the file.
    #[arg(short = 'p', long = "port", value_name = "port")]
    pub(crate) ports: Vec<u16>,

    /// Verbose mode: enable every type of log line, overriding log_type in the file.
    #[arg(short = 'v', long = "verbose")]
    pub(crate) verbose: bool,

    /// Display this help.
    #[arg(short = 'h', long = "help", action = ArgAction::Help)]
    help: Option<bool>,

    /// Display the version.
    #[arg(long = "version", action = ArgAction::Version)]
    version: Option<bool>,
}
