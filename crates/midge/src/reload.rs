//! SIGHUP: re-read the password and ACL files, as Mosquitto does, but never silently.
//!
//! Each file is read whole before anything changes. A file that fails to read or parse leaves
//! the rules in force untouched and is reported as an error naming the file and line; a file
//! that reads is swapped in at once (existing connections are judged by it from their next
//! operation) and the swap is logged with what it now holds.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use midge_core::Broker;
use midge_server::security::{self, Authenticator};
use tokio::signal::unix::{SignalKind, signal};

/// Installs the SIGHUP handler and starts the task that reloads on each signal.
pub(crate) fn on_sighup(
    broker: Arc<Broker>,
    password_files: Vec<(PathBuf, Arc<Authenticator>)>,
    acl_file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let mut hangups = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("Reloading config.");
            reload(&broker, &password_files, acl_file.as_ref());
        }
    });
    Ok(())
}

fn reload(broker: &Broker, password_files: &[(PathBuf, Arc<Authenticator>)], acl_file: Option<&PathBuf>) {
    for (path, authenticator) in password_files {
        match security::load_password_file(path) {
            Ok((file, skipped)) => {
                for line in skipped {
                    tracing::warn!("Warning: {line}");
                }
                let users = file.len();
                authenticator.replace(Some(file));
                tracing::info!("Reloaded password file {} ({users} users).", path.display());
            }
            Err(error) => tracing::error!(
                "Error: reloading {} failed, the previous passwords stay in force: {error}",
                path.display()
            ),
        }
    }
    if let Some(path) = acl_file {
        match security::load_acl_file(path) {
            Ok((rules, notes)) => {
                for line in notes {
                    tracing::warn!("Warning: {line}");
                }
                broker.set_access_control(Some(rules));
                tracing::info!("Reloaded ACL file {}.", path.display());
            }
            Err(error) => tracing::error!(
                "Error: reloading {} failed, the previous rules stay in force: {error}",
                path.display()
            ),
        }
    }
}
