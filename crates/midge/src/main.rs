//! `midge`: the broker's executable. Reads the command line and mosquitto.conf, sets up
//! logging, optionally daemonizes, opens the listeners, becomes its `user`, then runs
//! [`midge_server::Server`] until SIGINT or SIGTERM, telling systemd when it is ready.
//! `midge passwd …` is `mosquitto_passwd` instead (the `passwd` module); `midge pub|sub|rr|bench|cluster`
//! are the tools; `midge completions SHELL` and `midge man DIR` write the shell completions and
//! the man pages (the `manual` module).

mod bench;
mod calendar;
mod cli;
mod cluster_status;
mod fd_table;
mod logging;
mod manual;
mod notify;
mod passwd;
mod privileges;
mod reload;
mod settings;
mod tools;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;

use midge_server::Server;

/// jemalloc: fewer bytes per idle connection than glibc's malloc and no slower (measured in
/// docs/performance.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use midge_server::config::Config;
use midge_server::server::Listeners;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn main() -> ExitCode {
    match std::env::args_os()
        .nth(1)
        .and_then(|a| a.into_string().ok())
        .as_deref()
    {
        Some("passwd") => return passwd::main(std::env::args_os().skip(2).collect()),
        Some("bench") => return bench::main(std::env::args_os().skip(2).collect()),
        Some("cluster") => return cluster_status::main(std::env::args_os().skip(2).collect()),
        Some("pub") => return tools::run(tools::Tool::Pub),
        Some("sub") => return tools::run(tools::Tool::Sub),
        Some("rr") => return tools::run(tools::Tool::Rr),
        Some("completions") => return manual::completions_main(std::env::args_os().skip(2).collect()),
        Some("man") => return manual::man_main(std::env::args_os().skip(2).collect()),
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
    // Decided before any file is opened, so that a log file created as root goes to the user.
    let privileges = privileges::Plan::for_user(&config.user)?;
    let log = logging::init(
        &config.log,
        args.verbose,
        privileges.owner(),
        settings.http.as_ref().map(|h| h.ring.clone()),
    )?;

    tracing::info!(event = "broker.starting", "midge version {VERSION} starting");
    match &args.config_file {
        Some(path) => tracing::info!(event = "config.loaded", "Config loaded from {}.", path.display()),
        None => tracing::info!(event = "config.loaded", "Using default config."),
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
    if let Some(warning) = privileges.warning() {
        tracing::warn!("{warning}");
    }

    if args.daemon {
        // Before any thread exists: fork only copies the calling thread.
        nix::unistd::daemon(true, false).context("cannot daemonize")?;
    }
    // Before any client connects: each later growth would stall the thread accepting them.
    if let Some(slots) = fd_table::grow() {
        tracing::debug!("descriptor table grown to {slots} slots");
    }
    // Connected while still root, in case only root may reach the socket.
    let notifier = notify::Notifier::from_env();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let mut pid_file = None;
    let result = runtime.block_on(async {
        // Handlers first: a SIGTERM that arrives once "running" is logged must stop the broker
        // cleanly, not kill it.
        let shutdown = shutdown_signal()?;
        let listeners = Listeners::bind(settings.listeners).await?;
        let http = match settings.http {
            Some(spec) => Some(midge_server::http::HttpServer::bind(spec).await?),
            None => None,
        };
        // The listeners are open and the start-up files read: root is no longer needed. The
        // persistence store is opened after, so its files belong to the user the broker runs
        // as.
        privileges.apply()?;
        let broker = match &settings.persistence {
            None => midge_core::Broker::new(settings.broker, id_seed()),
            Some(persistence) => {
                midge_server::persistence::open_broker(settings.broker, id_seed(), persistence)
                    .context("cannot open the persistence store")?
            }
        };
        let server = Server::new(broker, listeners)
            .with_http(http)
            .with_authenticator(settings.authenticator)
            .with_auth_methods(settings.auth_methods)
            .with_global_max_connections(settings.global_max_connections)
            .with_sys_interval(settings.sys_interval)
            .with_bridges(settings.bridges)
            .with_cluster(settings.cluster);
        // As in Mosquitto, the pid file is written by the user the broker runs as, who must be
        // able to remove it at exit.
        pid_file = config.pid_file.as_deref().map(PidFile::write).transpose()?;
        server.broker().set_access_control(Some(settings.access));
        reload::on_sighup(
            server.broker().clone(),
            settings.password_files,
            settings.scram_files,
            settings.acl_files,
            settings.tls,
            log,
        )?;
        tracing::info!(event = "broker.running", "midge version {VERSION} running");
        notifier.ready();
        server
            .run(async {
                shutdown.await;
                notifier.stopping();
            })
            .await;
        anyhow::Ok(())
    });
    tracing::info!(
        event = "broker.terminating",
        "midge version {VERSION} terminating"
    );
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
            .with_context(|| format!("Unable to write pid file {}", path.display()))?;
        Ok(Self(path.to_owned()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
