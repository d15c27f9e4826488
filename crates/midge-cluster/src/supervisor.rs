//! `cluster_nats_server`: a `nats-server` that Midge runs beside itself, with a configuration
//! it writes from the `cluster_nats_*` directives, restarts if it exits, and stops (by its
//! PID) when Midge stops. Its log lines are passed on to Midge's log. Its PID is kept in a
//! file beside its store, so that a Midge started after one that was killed (and could not
//! stop its server) stops the server left behind, which still holds the store and the ports.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::config::{ClusterConfig, NatsServerConfig, SyncPolicy};

/// The wait before starting a server that exited again.
const RESTART_AFTER: Duration = Duration::from_secs(1);

/// The server's configuration file, as `nats-server -c` reads it.
pub fn server_config(cluster: &ClusterConfig, server: &NatsServerConfig, store: &Path) -> String {
    let sync = match cluster.sync {
        SyncPolicy::Always => "always".to_owned(),
        SyncPolicy::Every(every) => format!("{}ms", every.as_millis().max(1)),
    };
    // A peer that hangs (rather than dies) keeps its connections open: pings cut it off
    // well within the grace after which its node is taken for gone, so that JetStream moves
    // what it led meanwhile (nats-server's default waits two minutes per ping).
    let ping = (cluster.node_down_grace / 4).max(Duration::from_secs(1));
    let mut text = format!(
        "# Written by Midge from the cluster_nats_* directives; rewritten at each start.\n\
         server_name: \"{node}\"\n\
         listen: \"{listen}\"\n\
         ping_interval: \"{ping}ms\"\n\
         ping_max: 2\n\
         jetstream {{\n  store_dir: \"{store}\"\n  sync_interval: {sync}\n}}\n",
        ping = ping.as_millis(),
        node = cluster.node_id,
        listen = server.listen,
        store = store.display(),
    );
    if let Some(monitor) = server.monitor {
        text.push_str(&format!("http: \"{monitor}\"\n"));
    }
    if let Some(cluster_listen) = server.cluster_listen {
        let routes: Vec<String> = server
            .routes
            .iter()
            .map(|route| {
                if route.contains("://") {
                    format!("    \"{route}\"")
                } else {
                    format!("    \"nats-route://{route}\"")
                }
            })
            .collect();
        text.push_str(&format!(
            "cluster {{\n  name: \"{name}\"\n  listen: \"{cluster_listen}\"\n  routes: [\n{routes}\n  ]\n}}\n",
            name = cluster.name,
            routes = routes.join("\n"),
        ));
    }
    text
}

/// Where the supervised server keeps JetStream's files.
pub fn store_dir(server: &NatsServerConfig, persistence_location: Option<&Path>) -> PathBuf {
    server.store.clone().unwrap_or_else(|| {
        persistence_location
            .unwrap_or_else(|| Path::new("."))
            .join("midge-jetstream")
    })
}

/// Runs the server until `stop` changes, starting it again whenever it exits. `pid` says
/// the running server's process id (0 while none runs).
pub async fn supervise(
    cluster: ClusterConfig,
    server: NatsServerConfig,
    store: PathBuf,
    pid: watch::Sender<u32>,
    mut stop: watch::Receiver<bool>,
) {
    let config_path = store.join("nats-server.conf");
    stop_left_behind(&store, &config_path).await;
    loop {
        let mut child = match start(&cluster, &server, &store, &config_path) {
            Ok(child) => child,
            Err(error) => {
                tracing::error!(event = "cluster.nats_server.failed", executable = %server.executable.display(), %error, "cannot start nats-server: {error}");
                tokio::select! {
                    () = tokio::time::sleep(RESTART_AFTER * 5) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        let id = child.id().unwrap_or_default();
        let _ = pid.send(id);
        if let Err(error) = std::fs::write(pid_path(&store), format!("{id}\n")) {
            tracing::warn!(event = "cluster.nats_server.pid_file", %error, "cannot write {}: {error}", pid_path(&store).display());
        }
        tracing::info!(event = "cluster.nats_server.started", pid = id, listen = %server.listen, "nats-server started (pid {id})");
        tokio::select! {
            status = child.wait() => {
                let _ = pid.send(0);
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                tracing::error!(event = "cluster.nats_server.exited", pid = id, %status, "nats-server (pid {id}) exited: {status}; starting it again");
                tokio::select! {
                    () = tokio::time::sleep(RESTART_AFTER) => {}
                    _ = stop.changed() => return,
                }
            }
            _ = stop.changed() => {
                stop_child(&mut child, id).await;
                let _ = pid.send(0);
                let _ = std::fs::remove_file(pid_path(&store));
                return;
            }
        }
    }
}

fn start(
    cluster: &ClusterConfig,
    server: &NatsServerConfig,
    store: &Path,
    config_path: &Path,
) -> std::io::Result<Child> {
    std::fs::create_dir_all(store)?;
    std::fs::write(config_path, server_config(cluster, server, store))?;
    let mut child = Command::new(&server.executable)
        .arg("-c")
        .arg(config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let node = cluster.node_id.clone();
    if let Some(out) = child.stderr.take() {
        tokio::spawn(pass_on(BufReader::new(out), node.clone()));
    }
    if let Some(out) = child.stdout.take() {
        tokio::spawn(pass_on(BufReader::new(out), node));
    }
    Ok(child)
}

/// Passes the server's log lines on, at debug level (warnings and errors at their own).
async fn pass_on(reader: BufReader<impl tokio::io::AsyncRead + Unpin>, node: String) {
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.contains("[ERR]") || line.contains("[FTL]") {
            tracing::error!(target: "nats_server", node = %node, "{line}");
        } else if line.contains("[WRN]") {
            tracing::warn!(target: "nats_server", node = %node, "{line}");
        } else {
            tracing::debug!(target: "nats_server", node = %node, "{line}");
        }
    }
}

/// The file that holds the running server's PID.
fn pid_path(store: &Path) -> PathBuf {
    store.join("nats-server.pid")
}

/// Stops a server that an earlier run of Midge left running on this store: only a process
/// whose command line names this store's configuration file is touched (a PID may have
/// been reused since).
async fn stop_left_behind(store: &Path, config_path: &Path) {
    let Some(pid) = std::fs::read_to_string(pid_path(store))
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok())
        // Not 0 or below: those name process groups, or every process, to kill(2).
        .filter(|pid| *pid > 0)
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    let runs_this_store = |pid: rustix::process::Pid| {
        std::fs::read(format!("/proc/{}/cmdline", pid.as_raw_nonzero())).is_ok_and(|cmdline| {
            cmdline
                .split(|byte| *byte == 0)
                .any(|arg| arg == config_path.as_os_str().as_encoded_bytes())
        }) && !is_zombie(pid)
    };
    if !runs_this_store(pid) {
        return;
    }
    tracing::warn!(
        event = "cluster.nats_server.left_behind",
        pid = pid.as_raw_nonzero().get(),
        "a nats-server (pid {}) left running by an earlier run holds {}: stopping it",
        pid.as_raw_nonzero(),
        store.display()
    );
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !runs_this_store(pid) {
            return;
        }
    }
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// Whether the process has exited and waits for its parent to collect it.
fn is_zombie(pid: rustix::process::Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero()))
        .ok()
        .and_then(|stat| {
            let after_name = stat.rsplit_once(')')?.1;
            after_name.split_whitespace().next().map(|state| state == "Z")
        })
        .unwrap_or(true)
}

/// SIGTERM (nats-server then shuts down cleanly), then SIGKILL if it takes too long.
async fn stop_child(child: &mut Child, pid: u32) {
    if let Ok(pid) = i32::try_from(pid)
        && let Some(pid) = rustix::process::Pid::from_raw(pid)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    if tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_config_syncs_every_write_and_names_the_routes() {
        let mut cluster = ClusterConfig::new("prod", "n2");
        let server = NatsServerConfig {
            executable: "nats-server".into(),
            listen: "127.0.0.2:4222".parse().unwrap(),
            cluster_listen: Some("127.0.0.2:6222".parse().unwrap()),
            routes: vec!["127.0.0.1:6222".into(), "nats-route://127.0.0.3:6222".into()],
            store: None,
            monitor: None,
        };
        let text = server_config(&cluster, &server, Path::new("/var/lib/js"));
        assert!(text.contains("sync_interval: always"), "{text}");
        assert!(text.contains("server_name: \"n2\""));
        assert!(text.contains("\"nats-route://127.0.0.1:6222\""));
        assert!(text.contains("\"nats-route://127.0.0.3:6222\""));
        assert!(text.contains("name: \"prod\""));
        cluster.sync = SyncPolicy::Every(Duration::from_millis(200));
        let text = server_config(&cluster, &server, Path::new("/var/lib/js"));
        assert!(text.contains("sync_interval: 200ms"), "{text}");
        // A hung peer is cut off within the grace (30 s by default), never less than 1 s.
        assert!(text.contains("ping_interval: \"7500ms\"\nping_max: 2"), "{text}");
        cluster.node_down_grace = Duration::from_secs(2);
        let text = server_config(&cluster, &server, Path::new("/var/lib/js"));
        assert!(text.contains("ping_interval: \"1000ms\""), "{text}");
    }

    /// The PID file beside the store is the broker's own, but what it names is checked: a
    /// file that is not a PID, or a PID now of an unrelated process, leaves everything as it
    /// is; only a process whose command line names the store's configuration is stopped.
    #[tokio::test]
    async fn only_a_server_left_on_this_store_is_stopped() {
        let store = tempfile::tempdir().unwrap();
        let config_path = store.path().join("nats-server.conf");
        for garbage in ["", "not a pid", "-4", "0", "99999999999", "12 13", "\u{0}\u{ff}"] {
            std::fs::write(pid_path(store.path()), garbage).unwrap();
            stop_left_behind(store.path(), &config_path).await;
        }
        let running = |child: &mut std::process::Child| child.try_wait().unwrap().is_none();
        let mut unrelated = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        std::fs::write(pid_path(store.path()), unrelated.id().to_string()).unwrap();
        stop_left_behind(store.path(), &config_path).await;
        assert!(
            running(&mut unrelated),
            "a process that does not run this store was stopped"
        );
        let _ = unrelated.kill();
        let _ = unrelated.wait();

        // Stands in for a nats-server started on this store: its command line names the file.
        let mut left = std::process::Command::new("sh")
            .args(["-c", "while :; do sleep 0.1; done", "nats-server"])
            .arg(&config_path)
            .spawn()
            .unwrap();
        std::fs::write(pid_path(store.path()), format!("{}\n", left.id())).unwrap();
        stop_left_behind(store.path(), &config_path).await;
        let stopped = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            !running(&mut left)
        });
        if !stopped {
            let _ = left.kill();
        }
        let _ = left.wait();
        assert!(stopped, "the server left on this store still runs");
    }
}
