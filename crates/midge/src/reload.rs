//! SIGHUP: reopen the log file (for logrotate), re-read the password, SCRAM and ACL files and the TLS
//! certificates, as Mosquitto does, but never silently. Certificate files are also watched, so a renewal (certbot replacing the
//! files) reaches new connections without a signal.
//!
//! Each file is read whole before anything changes. A file that fails to read or parse leaves
//! the rules in force untouched and is reported as an error naming the file and line; a file
//! that reads is swapped in at once (existing connections are judged by it from their next
//! operation) and the swap is logged with what it now holds.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use midge_core::Broker;
use midge_server::security::{self, Authenticator, ScramMethods};
use midge_server::tls::TlsListener;

use crate::logging::LogHandle;
use tokio::signal::unix::{SignalKind, signal};

/// How often certificate files are looked at for changes.
const CERTIFICATE_WATCH: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the SIGHUP handler and starts the task that reloads on each signal.
pub(crate) fn on_sighup(
    broker: Arc<Broker>,
    password_files: Vec<(PathBuf, Arc<Authenticator>)>,
    scram_files: Vec<(PathBuf, Arc<ScramMethods>)>,
    acl_files: Vec<Option<PathBuf>>,
    tls: Vec<Arc<TlsListener>>,
    log: LogHandle,
) -> anyhow::Result<()> {
    let mut hangups = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    if !tls.is_empty() {
        let tls = tls.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(CERTIFICATE_WATCH);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                for listener in &tls {
                    match listener.reload_if_changed() {
                        Ok(false) => {}
                        Ok(true) => {
                            tracing::info!("{} changed: reloaded the TLS certificates.", name(listener))
                        }
                        Err(error) => tracing::error!(
                            "Error: {} changed but cannot be loaded, the previous certificates stay in force: {error}",
                            name(listener)
                        ),
                    }
                }
            }
        });
    }
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            // First, so that what follows goes to the new file after a rotation.
            if let Err(error) = log.reopen() {
                let path = log
                    .file_path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                tracing::error!(
                    event = "log.reopen_failed",
                    %error,
                    "Error: cannot reopen log file {path}, still writing to the old one: {error}"
                );
            }
            tracing::info!(event = "config.reloading", "Reloading config.");
            reload(&broker, &password_files, &acl_files);
            reload_scram(&scram_files);
            for listener in &tls {
                match listener.reload() {
                    Ok(()) => tracing::info!(
                        event = "config.reloaded",
                        "Reloaded TLS certificates from {}.",
                        name(listener)
                    ),
                    Err(error) => tracing::error!(
                        event = "config.reload_failed",
                        "Error: reloading TLS certificates from {} failed, the previous ones stay in force: {error}",
                        name(listener)
                    ),
                }
            }
        }
    });
    Ok(())
}

fn name(listener: &TlsListener) -> String {
    listener
        .certfile()
        .map_or_else(|| "a TLS listener".to_owned(), |path| path.display().to_string())
}

fn reload(broker: &Broker, password_files: &[(PathBuf, Arc<Authenticator>)], acl_files: &[Option<PathBuf>]) {
    for (path, authenticator) in password_files {
        match security::load_password_file(path) {
            Ok((file, skipped)) => {
                for line in skipped {
                    tracing::warn!("Warning: {line}");
                }
                let users = file.len();
                authenticator.replace(Some(file));
                tracing::info!(
                    event = "config.reloaded",
                    "Reloaded password file {} ({users} users).",
                    path.display()
                );
            }
            Err(error) => tracing::error!(
                event = "config.reload_failed",
                "Error: reloading {} failed, the previous passwords stay in force: {error}",
                path.display()
            ),
        }
    }
    let mut named: Vec<&PathBuf> = acl_files.iter().flatten().collect();
    named.sort();
    named.dedup();
    if named.is_empty() {
        return;
    }
    match security::load_listener_rules(acl_files) {
        Ok((rules, notes)) => {
            for line in notes {
                tracing::warn!("Warning: {line}");
            }
            broker.set_access_control(Some(rules));
            for path in named {
                tracing::info!(event = "config.reloaded", "Reloaded ACL file {}.", path.display());
            }
        }
        // The error names the file and line; every listener keeps its rules.
        Err(error) => {
            tracing::error!(
                event = "config.reload_failed",
                "Error: reloading ACL files failed, the previous rules stay in force: {error}"
            )
        }
    }
}

/// Re-reads each SCRAM file; one that fails keeps its users in force.
fn reload_scram(scram_files: &[(PathBuf, Arc<ScramMethods>)]) {
    for (path, methods) in scram_files {
        match security::load_scram_file(path) {
            Ok(file) => {
                let users = file.len();
                methods.replace(file);
                tracing::info!(
                    event = "config.reloaded",
                    "Reloaded SCRAM file {} ({users} users).",
                    path.display()
                );
            }
            Err(error) => tracing::error!(
                event = "config.reload_failed",
                "Error: reloading {} failed, the previous SCRAM users stay in force: {error}",
                path.display()
            ),
        }
    }
}
