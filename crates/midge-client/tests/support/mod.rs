//! Shared by the client's integration tests: Debian's Mosquitto broker on a free port, a
//! scripted fake server for what a real broker will not do (drop an acknowledgement, send
//! garbage, ignore PINGREQ), and a connector whose socket a test can cut.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpStream as StdTcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use midge_client::{Client, ClientOptions, Connector, Event, Events};
use midge_codec::{Decoder, Packet, ProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// Mosquitto's broker, killed when dropped.
pub struct Mosquitto {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    /// A broker on a free port of 127.0.0.1 allowing anonymous clients.
    pub fn start() -> Self {
        Self::start_with("allow_anonymous true\n", |_| {})
    }

    /// A broker whose configuration is `listener PORT 127.0.0.1` followed by `extra`; `prepare`
    /// may write files into the broker's directory (its working directory) first.
    pub fn start_with(extra: &str, prepare: impl FnOnce(&Path)) -> Self {
        let binary = Path::new("/usr/sbin/mosquitto");
        assert!(
            binary.exists(),
            "these tests need Debian's mosquitto: apt-get install -y mosquitto mosquitto-clients"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        prepare(dir.path());
        let port = free_port();
        let config = dir.path().join("mosquitto.conf");
        // As root Mosquitto drops to user `mosquitto`, who cannot read files in our temp dir.
        std::fs::write(&config, format!("user root\nlistener {port} 127.0.0.1\n{extra}")).expect("config");
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

    /// Client options for this broker.
    pub fn options(&self, client_id: &str) -> ClientOptions {
        ClientOptions::new("127.0.0.1", self.port).client_id(client_id)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Waits until something listens on 127.0.0.1:`port`. A port from [`free_port`] is in the
/// ephemeral range, where a connection to a port nobody listens on can, now and then, connect
/// to itself (TCP simultaneous open): that one does not count.
pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + WAIT;
    let listening = || {
        StdTcpStream::connect(("127.0.0.1", port))
            .is_ok_and(|stream| stream.local_addr().ok() != stream.peer_addr().ok())
    };
    while !listening() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The next event, failing the test after [`WAIT`].
pub async fn next_event(events: &mut Events) -> Event {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("no event in time")
        .expect("events ended")
}

/// The next PUBLISH event, skipping nothing.
pub async fn next_publish(events: &mut Events) -> midge_codec::Publish {
    match next_event(events).await {
        Event::Publish(p) => p,
        other => panic!("expected a PUBLISH, got {other:?}"),
    }
}

/// Asserts that no event arrives for `quiet`.
pub async fn expect_no_event(events: &mut Events, quiet: Duration) {
    if let Ok(event) = tokio::time::timeout(quiet, events.recv()).await {
        panic!("expected no event, got {event:?}");
    }
}

/// TCP, keeping a clone of each socket so the test can cut the connection without the client
/// knowing (an "abrupt close": no DISCONNECT).
#[derive(Clone, Default)]
pub struct CuttableConnector {
    pub port: u16,
    sockets: Arc<Mutex<Vec<StdTcpStream>>>,
}

impl CuttableConnector {
    pub fn new(port: u16) -> Self {
        Self {
            port,
            sockets: Arc::default(),
        }
    }

    /// Shuts down every socket opened so far.
    pub fn cut(&self) {
        for socket in self.sockets.lock().expect("lock").drain(..) {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Connector for CuttableConnector {
    type Stream = TcpStream;

    async fn connect(&self) -> std::io::Result<TcpStream> {
        let std = StdTcpStream::connect(("127.0.0.1", self.port))?;
        std.set_nonblocking(true)?;
        self.sockets.lock().expect("lock").push(std.try_clone()?);
        TcpStream::from_std(std)
    }
}

/// Connects a client with default handling of the result.
pub async fn connect(options: ClientOptions) -> (Client, Events) {
    Client::connect(options).await.expect("connect")
}

/// One accepted connection on the fake server side, speaking raw packets.
pub struct Peer {
    stream: TcpStream,
    decoder: Decoder,
    input: BytesMut,
    version: ProtocolVersion,
}

impl Peer {
    pub async fn accept(listener: &TcpListener, version: ProtocolVersion) -> Self {
        let (stream, _) = tokio::time::timeout(WAIT, listener.accept())
            .await
            .expect("no connection in time")
            .expect("accept");
        Self {
            stream,
            decoder: Decoder::new(version, midge_codec::PROTOCOL_MAX_PACKET_SIZE),
            input: BytesMut::new(),
            version,
        }
    }

    /// The next packet, or `None` when the client closed the connection.
    pub async fn recv(&mut self) -> Option<Packet> {
        loop {
            if let Some(packet) = self
                .decoder
                .decode(&mut self.input)
                .expect("client sent a bad packet")
            {
                return Some(packet);
            }
            let read = tokio::time::timeout(WAIT, self.stream.read_buf(&mut self.input))
                .await
                .expect("nothing from the client in time")
                .ok()?;
            if read == 0 {
                return None;
            }
        }
    }

    pub async fn expect(&mut self) -> Packet {
        self.recv().await.expect("the client closed the connection")
    }

    pub async fn send(&mut self, packet: &Packet) {
        let mut out = BytesMut::new();
        packet.encode(self.version, &mut out).expect("encode");
        self.send_bytes(&out).await;
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Reads CONNECT and answers with `connack`.
    pub async fn handshake(&mut self, connack: midge_codec::ConnAck) -> Box<midge_codec::Connect> {
        let Packet::Connect(connect) = self.expect().await else {
            panic!("the first packet is not CONNECT");
        };
        self.send(&Packet::ConnAck(connack)).await;
        connect
    }
}

/// A listener for a fake server on a free port.
pub async fn fake_server() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    (listener, port)
}
