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
    #[arg(short = 'c', long = "config-file", value_name = "config_file", value_hint = clap::ValueHint::FilePath)]
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

/// The whole command line as the documentation shows it: the broker's flags (those [`Args`]
/// parses) and the subcommands, which parse their own arguments. `midge(8)` and the shell
/// completions are generated from this, so they cannot drift from `--help`.
pub(crate) fn command() -> clap::Command {
    use clap::{Arg, CommandFactory};

    let tool = |name: &'static str, about: &'static str| {
        clap::Command::new(name).about(about).arg(
            Arg::new("arguments")
                .help("The tool's own flags; `midge NAME --help` lists them.")
                .num_args(0..)
                .trailing_var_arg(true)
                .allow_hyphen_values(true),
        )
    };
    Args::command()
        .disable_help_subcommand(true)
        .subcommand(tool(
            "pub",
            "Publish a message, as mosquitto_pub does, with the same flags and output.",
        ))
        .subcommand(tool(
            "sub",
            "Subscribe and print messages, as mosquitto_sub does, with the same flags and output.",
        ))
        .subcommand(tool(
            "rr",
            "Send an MQTT 5 request and print the response, as mosquitto_rr does.",
        ))
        .subcommand(tool(
            "passwd",
            "Manage a password file, as mosquitto_passwd does (-c to create, -b batch, -D delete, -U convert).",
        ))
        .subcommand(crate::bench::command())
        .subcommand(crate::cluster_status::command())
        .subcommand(
            clap::Command::new("completions")
                .about("Print the shell completion script for bash, zsh or fish.")
                .arg(
                    Arg::new("shell")
                        .required(true)
                        .value_parser(["bash", "zsh", "fish"]),
                ),
        )
        .subcommand(
            clap::Command::new("man")
                .about("Write the man pages midge.8 and midge.conf.5 into a directory.")
                .hide(true)
                .arg(
                    Arg::new("dir")
                        .required(true)
                        .value_hint(clap::ValueHint::DirPath),
                ),
        )
}

/// A tool's arguments (`midge NAME ...`), or the exit code after clap printed why there are
/// none: 2 for an error, success for `--help`.
pub(crate) fn tool_args<T: Parser>(
    name: &str,
    args: Vec<std::ffi::OsString>,
) -> Result<T, std::process::ExitCode> {
    T::try_parse_from(std::iter::once(std::ffi::OsString::from(name)).chain(args)).map_err(|error| {
        let _ = error.print();
        if error.use_stderr() {
            std::process::ExitCode::from(2)
        } else {
            std::process::ExitCode::SUCCESS
        }
    })
}
