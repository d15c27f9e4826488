//! `midge`: the broker's executable. Reads the command line and mosquitto.conf, sets up
//! logging, optionally daemonizes, then runs [`midge_server::Server`] until SIGINT or SIGTERM.
//! `midge passwd …` is `mosquitto_passwd` instead (the `passwd` module).

mod bench;
mod cli;
mod logging;
mod passwd;
mod reload;
mod settings;
mod tools;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;

use midge_server::Server;
use midge_server::config::Config;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn main() -> ExitCode {
    match std::env::args_os()
        .nth(1)
        .and_then(|a| a.into_string().ok())
        .as_deref()
    {
        Some("passwd") => return passwd::main(std::env::args_os().skip(2).collect()),
        Some("bench") => return bench::main(std::env::args_os().skip(2).collect()),
        Some("pub") => return tools::run(tools::Tool::Pub),
        Some("sub") => return tools::run(tools::Tool::Sub),
        Some("rr") => return tools::run(tools::Tool::Rr),
        _ => {}
    }
    let args = cli::Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: cli::Args) -> anyhow::Result<()> {
    let mut config = match &args.config_file {
        Some(path) => Config::load(path)?,
        None => Config::local_only(),
    };
    settings::apply_ports(&mut config, &args.ports);
    let settings = settings::from_config(&config)?;
    logging::init(
        &config.log,
        args.verbose,
        settings.http.as_ref().map(|h| h.ring.clone()),
    )?;

    tracing::info!("midge version {VERSION} starting");
    match &args.config_file {
        Some(path) => tracing::info!("Config loaded from {}.", path.display()),
        None => tracing::info!("Using default config."),
    }
    if config.local_only {
        tracing::info!(
            "Starting in local only mode. Connections will only be possible from clients running on this machine."
        );
        tracing::info!("Create a configuration file which defines a listener to allow remote access.");
    }
    for warning in &settings.warnings {
        tracing::warn!("Warning: {warning}");
    }

    if args.daemon {
        // Before any thread exists: fork only copies the calling thread.
        nix::unistd::daemon(true, false).context("cannot daemonize")?;
    }
    let pid_file = config.pid_file.as_deref().map(PidFile::write).transpose()?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let result = runtime.block_on(async {
        // Handlers first: a SIGTERM that arrives once "running" is logged must stop the broker
        // cleanly, not kill it.
        let shutdown = shutdown_signal()?;
        let http = match settings.http {
            Some(spec) => Some(midge_server::http::HttpServer::bind(spec).await?),
            None => None,
        };
        let server = Server::bind(settings.broker, settings.listeners, id_seed())
            .await?
            .with_http(http)
            .with_authenticator(settings.authenticator)
            .with_global_max_connections(settings.global_max_connections)
            .with_sys_interval(settings.sys_interval);
        server.broker().set_access_control(Some(settings.access));
        reload::on_sighup(
            server.broker().clone(),
            settings.password_files,
            settings.acl_files,
            settings.tls,
        )?;
        tracing::info!("midge version {VERSION} running");
        server.run(shutdown).await;
        anyhow::Ok(())
    });
    tracing::info!("midge version {VERSION} terminating");
    drop(pid_file);
    result
}

/// Installs the SIGINT and SIGTERM handlers now, and returns a future that completes when
/// either arrives.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// A seed for the identifiers the broker assigns: different on every start.
fn id_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (nanos as u64) ^ (u64::from(std::process::id()) << 32)
}

/// `pid_file`: written at start, removed at a clean exit.
struct PidFile(PathBuf);

impl PidFile {
    fn write(path: &Path) -> anyhow::Result<Self> {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write pid_file {}", path.display()))?;
        Ok(Self(path.to_owned()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
