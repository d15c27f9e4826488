//! Shared by the integration tests: start the real `midge` binary on a free port and talk to it
//! over real sockets, with rumqttc or with raw packets encoded by midge-codec.
//!
//! Each test file includes this with `mod support;`; not every file uses every helper.
#![allow(dead_code, unreachable_pub)]

pub mod cluster;
pub mod http;
pub mod packets;
pub mod pki;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use midge_codec::{Decoder, Packet, ProtocolVersion};

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running broker process, killed when dropped.
pub struct Midge {
    child: Child,
    readers: Vec<std::thread::JoinHandle<()>>,
    port: u16,
    log: Arc<(Mutex<Vec<String>>, Condvar)>,
    _dir: tempfile::TempDir,
    pub config_path: PathBuf,
}

impl Midge {
    /// A broker listening on a free port of 127.0.0.1, anonymous clients allowed, `extra` lines
    /// appended to its mosquitto.conf.
    pub fn start(extra: &str) -> Self {
        Self::start_with_config(&format!("listener 0 127.0.0.1\nallow_anonymous true\n{extra}\n"))
    }

    /// A broker with this mosquitto.conf (it must open a listener on port 0). Unless the file
    /// names a `user`, `user root` is added at the end: tests run as root in CI, and a broker that
    /// dropped to `mosquitto` could not re-read or write the test's private temporary files
    /// (Mosquitto's own tests need the same line; the `service` tests cover `user`).
    pub fn start_with_config(config: &str) -> Self {
        Self::start_with_config_in(None, config)
    }

    /// As `start_with_config`, in network namespace `netns` if one is named (`ip netns
    /// exec`, which runs the broker itself: its PID is the broker's).
    pub fn start_with_config_in(netns: Option<&str>, config: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("mosquitto.conf");
        let names_user = config.lines().any(|line| line.trim_start().starts_with("user "));
        let config = if names_user {
            config.to_owned()
        } else {
            format!("{config}\nuser root\n")
        };
        std::fs::write(&config_path, config).expect("write config");
        let mut command = match netns {
            Some(netns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns, env!("CARGO_BIN_EXE_midge")]);
                command
            }
            None => Command::new(env!("CARGO_BIN_EXE_midge")),
        };
        let mut child = command
            .arg("-c")
            .arg(&config_path)
            .arg("-v")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn midge");
        let log: Arc<(Mutex<Vec<String>>, Condvar)> = Arc::default();
        let mut readers = Vec::new();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let log = log.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if std::env::var_os("MIDGE_TEST_LOG").is_some() {
                        eprintln!("midge| {line}");
                    }
                    log.0.lock().expect("log lock").push(line);
                    log.1.notify_all();
                }
            }));
        }
        let mut midge = Self {
            child,
            readers,
            port: 0,
            log,
            _dir: dir,
            config_path,
        };
        let line = midge.wait_for_log("listen socket on port");
        midge.port = line
            .rsplit(' ')
            .next()
            .and_then(|p| p.trim_end_matches('.').parse().ok())
            .expect("port in the listen line");
        midge.wait_for_log("running");
        midge
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of every listener opened, in the order of the log (the configuration's).
    pub fn listen_ports(&self) -> Vec<u16> {
        self.logs()
            .iter()
            .filter(|l| l.contains("listen socket on port"))
            .filter_map(|l| l.rsplit(' ').next()?.trim_end_matches('.').parse().ok())
            .collect()
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Every line logged so far.
    pub fn logs(&self) -> Vec<String> {
        self.log.0.lock().expect("log lock").clone()
    }

    /// Waits until a log line contains `needle` and returns it; fails the test after [`WAIT`].
    pub fn wait_for_log(&self, needle: &str) -> String {
        self.try_wait_for_log(needle, WAIT).unwrap_or_else(|| {
            panic!(
                "no log line containing {needle:?}; log:\n{}",
                self.logs().join("\n")
            )
        })
    }

    pub fn try_wait_for_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let (lines, changed) = &*self.log;
        let mut lines = lines.lock().expect("log lock");
        loop {
            if let Some(line) = lines.iter().find(|l| l.contains(needle)) {
                return Some(line.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            lines = changed.wait_timeout(lines, left).expect("log lock").0;
        }
    }

    /// Sends a signal to the broker.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code, once every line it wrote has
    /// been read into the log.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return status.code();
            }
            assert!(Instant::now() < deadline, "midge did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The broker's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Midge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port no one listens on right now, for tests that start midge on a known port.
///
/// Taken below Linux's ephemeral range (32768 and up), where brokers started on port 0 by
/// other tests running at the same time get theirs: a port handed out by the system and freed
/// again could be given to one of them before this test's broker binds it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919);
    for _ in 0..1000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + (seed.wrapping_add(n.wrapping_mul(97)) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000")
}

/// Waits until something listens on 127.0.0.1:`port`; fails the test after [`WAIT`]. A
/// connection that reached itself (TCP simultaneous open, possible in the ephemeral range) does
/// not count.
pub fn wait_for_port(port: u16) -> SocketAddr {
    let deadline = Instant::now() + WAIT;
    let listening = || {
        TcpStream::connect(("127.0.0.1", port))
            .is_ok_and(|stream| stream.local_addr().ok() != stream.peer_addr().ok())
    };
    while !listening() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Runs `midge` with `args` to completion (for start-up errors), returning exit code and output.
pub fn run_midge(args: &[&str], timeout: Duration) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_midge"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn midge");
    let deadline = Instant::now() + timeout;
    let code = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut output = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut output);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut output);
    }
    (code, output)
}

/// A client that writes and reads raw MQTT packets, for what real client libraries will not
/// send (malformed packets, protocol violations) and for exact assertions on what comes back.
pub struct RawClient {
    stream: TcpStream,
    decoder: Decoder,
    input: BytesMut,
}

impl RawClient {
    pub fn connect(addr: SocketAddr, version: ProtocolVersion) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream,
            decoder: Decoder::new(version, 268_435_460),
            input: BytesMut::new(),
        }
    }

    /// Connects and sends `connect`; returns the client and the broker's CONNACK (failing the
    /// test if anything else comes back).
    pub fn connected(addr: SocketAddr, connect: Packet) -> (Self, midge_codec::ConnAck) {
        let Packet::Connect(c) = &connect else {
            panic!("not a CONNECT")
        };
        let mut client = Self::connect(addr, c.protocol);
        client.send(&connect);
        match client.recv() {
            Packet::ConnAck(ack) => (client, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Connects with a clean session, asserting success.
    pub fn session(addr: SocketAddr, version: ProtocolVersion, id: &str) -> Self {
        let (client, ack) = Self::connected(addr, packets::connect(version, id));
        assert_eq!(
            ack.reason_code,
            midge_codec::ReasonCode::Success,
            "CONNACK for {id}"
        );
        client
    }

    /// Sends SUBSCRIBE and returns the SUBACK's reason codes.
    pub fn subscribe(&mut self, filters: &[(&str, midge_codec::QoS)]) -> Vec<midge_codec::ReasonCode> {
        self.send(&packets::subscribe(filters, 1));
        match self.recv() {
            Packet::SubAck(ack) => ack.reason_codes,
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// The next PUBLISH, skipping nothing: anything else fails the test.
    pub fn recv_publish(&mut self) -> midge_codec::Publish {
        match self.recv() {
            Packet::Publish(p) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// Encodes and sends a packet.
    pub fn send(&mut self, packet: &Packet) {
        let mut buf = BytesMut::new();
        packet.encode(self.decoder.version(), &mut buf).expect("encode");
        self.stream.write_all(&buf).expect("write");
    }

    /// Sends raw bytes; a write error (the broker already closed) is ignored.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// The next packet, or `None` if the broker closed the connection. Fails the test after
    /// `timeout` without either.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Packet>, &'static str> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(packet) = self
                .decoder
                .decode(&mut self.input)
                .expect("broker sent a bad packet")
            {
                return Ok(Some(packet));
            }
            let left = deadline.checked_duration_since(Instant::now()).ok_or("timeout")?;
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("timeout");
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => self.input.extend_from_slice(&chunk[..n]),
                // A read with a timeout is not restarted after an interruption (seen under
                // load as EINTR with no signal handler installed): read again.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err("timeout");
                }
                Err(_) => return Ok(None),
            }
        }
    }

    /// The next packet; fails the test if the connection closes or nothing comes in [`WAIT`].
    pub fn recv(&mut self) -> Packet {
        match self.recv_timeout(WAIT) {
            Ok(Some(packet)) => packet,
            Ok(None) => panic!("broker closed the connection"),
            Err(e) => panic!("no packet: {e}"),
        }
    }

    /// Asserts that the broker closes the connection (after any packets, which are returned).
    pub fn expect_close(&mut self) -> Vec<Packet> {
        let mut before = Vec::new();
        loop {
            match self.recv_timeout(WAIT) {
                Ok(Some(packet)) => before.push(packet),
                Ok(None) => return before,
                Err(e) => panic!("connection not closed ({e}); got {before:?}"),
            }
        }
    }

    /// Asserts that nothing arrives for `quiet`.
    pub fn expect_nothing(&mut self, quiet: Duration) {
        match self.recv_timeout(quiet) {
            Err(_) => {}
            Ok(other) => panic!("expected silence, got {other:?}"),
        }
    }

    pub fn set_version(&mut self, version: ProtocolVersion) {
        self.decoder.set_version(version);
    }

    pub fn shutdown(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Debian's Mosquitto on a free port of 127.0.0.1, run as root (as root it would switch to the
/// `mosquitto` user, who cannot read the temporary directory), killed when dropped.
pub struct Mosquitto {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Starts it with `extra` after its `listener` line, in a temporary directory that
    /// `prepare` may fill first (certificates, say); the directory is its working directory.
    pub fn start(extra: &str, prepare: impl FnOnce(&std::path::Path)) -> Self {
        let binary = std::path::Path::new("/usr/sbin/mosquitto");
        assert!(
            binary.exists(),
            "these tests need Debian's mosquitto: scripts/install-test-deps"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        prepare(dir.path());
        let port = free_port();
        let config = dir.path().join("mosquitto.conf");
        std::fs::write(
            &config,
            format!("user root\nlistener {port} 127.0.0.1\n{extra}\n"),
        )
        .expect("write config");
        let child = Command::new(binary)
            .arg("-c")
            .arg(&config)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mosquitto");
        wait_for_port(port);
        Self {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
