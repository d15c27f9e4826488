//! One client connection: the task that moves bytes between a socket and the core.
//!
//! It waits for CONNECT (closing sockets that send anything else, or nothing in time), then
//! loops over three events: bytes from the client, the session's link being signalled (new
//! messages, a close, the keep-alive deadline found passed by the broker's tick), and the
//! socket becoming writable while encoded packets wait. Everything the broker decides happens
//! in `midge-core`; this file only reads, writes, times and logs.
//!
//! With persistence on, an outbox whose packets acknowledge journal writes
//! ([`Outbox::durable_after`]) is held until the journal says they are durable; meanwhile the
//! connection reads nothing more from its client, so a publisher runs at the store's pace.
//!
//! Memory: the connection waits for readability before it allocates a read buffer, the buffer
//! grows to the packet being read and is released whenever it is empty, and the outbox
//! likewise, so an idle connection holds no buffers (see `transport`); and the task's future
//! keeps inline only what waiting while idle needs (see [`serve`] and [`run`]).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use atomic_waker::AtomicWaker;
use bytes::BytesMut;
use midge_codec::{ConnAck, DecodeError, Decoder, Packet, ProtocolVersion, ReasonCode};
use midge_core::{
    Admitted, After, Broker, ClientRules, Connection, Credentials, Link, Outbox, Refusal, Stats,
};
use parking_lot::Mutex;
use tokio::io::Interest;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep, sleep_until};

use crate::limits::{ConnectionCounters, OpenSlot};
use crate::parking::Parked;
use crate::security::Authenticator;
use crate::tls::{CertificateUsername, TlsListener, certificate_username};
use crate::transport::{ParkedSocket, TlsStream, Transport, Unparkable, WebSocketStream};

/// How long a new socket may take to send CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Packets a connection handles per unit of tokio's cooperative budget (128 units a turn).
const PACKETS_PER_BUDGET_UNIT: u64 = 8;
/// How much to read at once through the thread's buffer when no large packet is pending: a
/// publisher streaming small packets is read 64 KB per system call, and the connection keeps
/// only what arrived.
const CHUNK_READ: usize = 64 * 1024;
/// Slices of the outbox written by one vectored write (heads and shared payloads).
const WRITE_SLICES: usize = 64;
/// How long a connection on a plain socket stays idle on the runtime before it is parked
/// (`parking.rs`), in milliseconds. Resuming costs a few microseconds; a client that talks
/// more often than this is never parked.
const PARK_AFTER_MS: u64 = 1_000;

/// The runtime's side of [`Link`]: a notification to drain, or an order to close.
///
/// A flag and a waker rather than a `tokio::sync::Notify`: waiting on it is a poll function a
/// few bytes big, where a `Notified` future takes 64 bytes of every connection's future.
///
/// It also holds the keep-alive deadline, checked for every connection at once by the
/// broker's tick ([`Link::tick`]) rather than by a timer in each connection's future.
#[derive(Debug, Default)]
pub(crate) struct ConnectionLink {
    /// Set by [`Link::wake`] and [`Link::close`], taken by the connection's task.
    signalled: AtomicBool,
    waker: AtomicWaker,
    close: Mutex<Option<ReasonCode>>,
    /// One and a half times the keep alive, in milliseconds; 0 for none.
    keep_alive_ms: AtomicU64,
    /// When the client was last heard from (or reading resumed after a pause), in
    /// milliseconds since [`EPOCH`].
    heard_ms: AtomicU64,
    /// Set by the tick when the keep-alive deadline passed, taken by the connection's task.
    timed_out: AtomicBool,
    /// When the connection last did anything (read, or was woken), in milliseconds since
    /// [`EPOCH`]: idle for [`PARK_AFTER`], it is asked to park.
    active_ms: AtomicU64,
    /// Whether the connection may be parked now (a plain socket, on the runtime).
    parkable: AtomicBool,
    /// Set by the tick when the connection has been idle long enough, taken by its task.
    park_wanted: AtomicBool,
}

/// The origin of [`ConnectionLink`]'s clock.
static EPOCH: LazyLock<std::time::Instant> = LazyLock::new(std::time::Instant::now);

fn millis(at: std::time::Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(*EPOCH).as_millis()).unwrap_or(u64::MAX)
}

impl ConnectionLink {
    /// Starts the keep-alive clock: `limit` without a packet ends the connection.
    fn watch_keep_alive(&self, limit: Option<Duration>, now: Instant) {
        let limit = limit.map_or(0, |l| u64::try_from(l.as_millis()).unwrap_or(u64::MAX));
        self.heard(now);
        self.keep_alive_ms.store(limit, Ordering::Relaxed);
    }

    /// The client was heard from (or is not read by the broker's choice) at `now`.
    fn heard(&self, now: Instant) {
        self.heard_ms.store(millis(now.into_std()), Ordering::Relaxed);
    }

    /// The connection did something at `now`: it is not idle.
    fn active(&self, now: Instant) {
        self.active_ms.store(millis(now.into_std()), Ordering::Relaxed);
    }

    /// Whether the keep-alive deadline passed since this was last asked.
    fn take_timed_out(&self) -> bool {
        self.timed_out.swap(false, Ordering::AcqRel)
    }

    /// Only the signal that raises the flag wakes the task: while it is up, the task has a
    /// wake coming (or will see the flag at its next wait), and a publisher queueing message
    /// after message to one subscriber pays one wake, not one each.
    fn signal(&self) {
        // A plain load first: a flag already up (the common case while a publisher queues
        // message after message) costs no locked instruction.
        if self.signalled.load(Ordering::Acquire) {
            return;
        }
        if !self.signalled.swap(true, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    /// Completes once the link has been signalled since it last completed (at once if it was
    /// signalled meanwhile: nothing is missed between two waits).
    fn signalled(&self) -> impl Future<Output = ()> + Send + '_ {
        std::future::poll_fn(move |cx| {
            if self.signalled.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            if self.signalled.swap(false, Ordering::AcqRel) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

impl Link for ConnectionLink {
    fn wake(&self) {
        self.signal();
    }

    fn wake_pending(&self) -> bool {
        self.signalled.load(Ordering::Acquire)
    }

    fn close(&self, reason: ReasonCode) {
        *self.close.lock() = Some(reason);
        self.signal();
    }

    fn tick(&self, now: std::time::Instant) {
        let limit = self.keep_alive_ms.load(Ordering::Relaxed);
        if limit != 0
            && millis(now).saturating_sub(self.heard_ms.load(Ordering::Relaxed)) > limit
            && !self.timed_out.swap(true, Ordering::AcqRel)
        {
            self.signal();
        }
        if self.parkable.load(Ordering::Relaxed)
            && millis(now).saturating_sub(self.active_ms.load(Ordering::Relaxed)) > PARK_AFTER_MS
            && !self.park_wanted.swap(true, Ordering::AcqRel)
        {
            self.signal();
        }
    }
}

/// Why the loop ended, for the log line and the will.
enum Ending {
    /// The client sent DISCONNECT (or the core closed for a protocol violation).
    Handled { publish_will: bool, reason: String },
    /// The client closed the socket without DISCONNECT.
    Eof,
    /// Reading or writing failed.
    SocketError(std::io::Error),
    /// Keep alive expired.
    Timeout,
    /// A packet could not be decoded.
    Malformed(DecodeError),
    /// The broker ended the connection (takeover).
    ClosedByBroker(ReasonCode),
    /// Idle long enough: the connection is to be parked, not ended.
    Park,
}

/// Where the username of a connection comes from.
#[derive(Debug)]
pub(crate) enum Username {
    /// CONNECT's, checked against the password file.
    FromConnect,
    /// A verified client certificate's (`use_identity_as_username`,
    /// `use_subject_as_username`): CONNECT's username and password are ignored, as Mosquitto
    /// does. `None`: the client gave no certificate with such a name, and is refused.
    FromCertificate(Option<String>),
}

/// What a connection is admitted by: the listener's rules and password file, and where the
/// username comes from.
#[derive(Debug)]
pub(crate) struct Admission {
    pub(crate) authenticator: Arc<Authenticator>,
    pub(crate) rules: Arc<ClientRules>,
    pub(crate) username: Username,
    /// Where refusals and timeouts are counted.
    pub(crate) counters: Arc<ConnectionCounters>,
    /// The cluster this node is in: it must agree to each client identifier.
    pub(crate) cluster: Option<Arc<dyn midge_cluster::Cluster>>,
}

/// Serves one client until its connection ends.
/// `slot` is held for the connection's life: dropping it frees the listener's place.
///
/// Memory: the future of a connection is what an idle client costs, so only the connected
/// loop's waiting is inline. The handshake (CONNECT, authentication) and the ending run in
/// boxes freed when they are done. Everything the connected loop needs goes into the handshake's
/// box and comes back out of it, and the loop's future is made in a scope that ends before it
/// is awaited: a value captured by the task's own future, or a local moved into the awaited
/// one, would keep room of its own beside it for the connection's whole life (#62958; the
/// stream and state alone were a quarter of the task).
pub(crate) fn serve<S: Transport>(
    stream: S,
    peer: String,
    broker: Arc<Broker>,
    admission: Admission,
    slot: OpenSlot,
) -> impl Future<Output = ()> + Send {
    // Made before the task's own future, so that what it needs is moved into the box rather
    // than kept beside it.
    let opening = Box::pin(open(stream, peer, broker, admission, slot));
    async move {
        let serving = match opening.await {
            Some(opened) => opened.serve(),
            None => return,
        };
        serving.await;
    }
}

/// A client admitted by [`open`], with what serving it needs.
struct Opened<S> {
    stream: S,
    live: Live,
    peer: String,
    broker: Arc<Broker>,
    slot: OpenSlot,
}

impl<S: Transport> Opened<S> {
    /// The connected loop's future, watching the keep-alive the client asked for.
    fn serve(self) -> impl Future<Output = ()> + Send {
        let Self {
            stream,
            live,
            peer,
            broker,
            slot,
        } = self;
        let keep_alive = match live.connection.keep_alive() {
            0 => None,
            // [MQTT-3.1.2-22]: one and a half times the keep alive.
            seconds => Some(Duration::from_millis(u64::from(seconds) * 1500)),
        };
        live.link.watch_keep_alive(keep_alive, Instant::now());
        connected(stream, live, peer, broker, slot)
    }
}

/// Serves a connected client (just admitted, or resumed from parking) until its connection
/// ends or is parked.
async fn connected<S: Transport>(
    mut stream: S,
    mut live: Live,
    mut peer: String,
    mut broker: Arc<Broker>,
    mut slot: OpenSlot,
) {
    let parking = if S::PARKABLE {
        ParkedConnection::parking()
    } else {
        None
    };
    loop {
        live.link.active(Instant::now());
        live.link.parkable.store(parking.is_some(), Ordering::Relaxed);
        let ending = run(&stream, &mut live, broker.stats()).await;
        live.link.parkable.store(false, Ordering::Relaxed);
        let Ending::Park = ending else {
            Box::pin(close(Some(&stream), &peer, broker.stats(), live, ending)).await;
            drop(slot);
            return;
        };
        let Some(parking) = parking else { continue };
        match park(parking, stream, live, peer, broker, slot) {
            Parking::Parked => return,
            Parking::Kept(parts) => (stream, live, peer, broker, slot) = *parts,
            Parking::Lost(lost) => {
                let (error, live, peer, broker) = *lost;
                Box::pin(close::<S>(
                    None,
                    &peer,
                    broker.stats(),
                    live,
                    Ending::SocketError(error),
                ))
                .await;
                return;
            }
        }
    }
}

/// What became of a connection asked to park.
enum Parking<S> {
    Parked,
    /// Not parked: it goes on, on the runtime.
    Kept(Box<(S, Live, String, Arc<Broker>, OpenSlot)>),
    /// Taking the socket off the runtime failed: the connection ends.
    Lost(Box<(std::io::Error, Live, String, Arc<Broker>)>),
}

/// Parks an idle connection (`parking.rs`): its task ends, and its state waits, with its
/// plain socket, for the socket to become readable or the link to be woken.
fn park<S: Transport>(
    parking: &'static crate::parking::Parking<ParkedConnection>,
    stream: S,
    live: Live,
    peer: String,
    broker: Arc<Broker>,
    slot: OpenSlot,
) -> Parking<S> {
    let link = live.link.clone();
    // The waker goes in first: a wake from now on reaches the parked state, or resumes it as
    // soon as it is parked.
    let (reservation, waker) = parking.reserve();
    link.waker.register(&waker);
    let socket = match stream.into_parked() {
        Ok(socket) => socket,
        Err(Unparkable::Layered(stream)) => {
            // The task goes on: its next wait registers its own waker again; a wake that went
            // to the reservation meanwhile is in the flag it looks at.
            parking.cancel(reservation);
            return Parking::Kept(Box::new((stream, live, peer, broker, slot)));
        }
        Err(Unparkable::Failed(error)) => {
            parking.cancel(reservation);
            return Parking::Lost(Box::new((error, live, peer, broker)));
        }
    };
    let fd = socket.raw_fd();
    let parked = Box::new(ParkedConnection::new(socket, live, peer, broker, slot));
    if let Err(parked) = parking.park(reservation, fd, parked) {
        // The socket cannot be watched: it goes straight back to the runtime.
        parked.resume();
        return Parking::Parked;
    }
    // A wake that came before the waker was registered set only the flag.
    if link.signalled.load(Ordering::Acquire) {
        waker.wake();
    }
    Parking::Parked
}

/// A parked connection: what its task held, less the (empty) buffers, and the runtime to
/// resume it on.
pub(crate) struct ParkedConnection {
    socket: ParkedSocket,
    connection: Connection,
    link: Arc<ConnectionLink>,
    decoder: Decoder,
    durable: Marks,
    peer: String,
    broker: Arc<Broker>,
    slot: OpenSlot,
    runtime: tokio::runtime::Handle,
}

impl ParkedConnection {
    fn new(socket: ParkedSocket, live: Live, peer: String, broker: Arc<Broker>, slot: OpenSlot) -> Self {
        let Live {
            connection,
            link,
            decoder,
            durable,
            ..
        } = live;
        Self {
            socket,
            connection,
            link,
            decoder,
            durable,
            peer,
            broker,
            slot,
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

/// A parked connection's task: its socket back on the runtime (`from_std` registers it with
/// the reactor, so it runs in the task), then served as before; a socket the reactor refuses
/// ends the connection.
async fn resume_task<T, S: Transport>(
    socket: T,
    from_std: fn(T) -> std::io::Result<S>,
    live: Live,
    peer: String,
    broker: Arc<Broker>,
    slot: OpenSlot,
) {
    match from_std(socket) {
        Ok(stream) => connected(stream, live, peer, broker, slot).await,
        Err(error) => close::<S>(None, &peer, broker.stats(), live, Ending::SocketError(error)).await,
    }
}

/// How many connections are parked now (all listeners; `$SYS` and `/metrics` show it).
pub(crate) fn parked_connections() -> usize {
    PARKING
        .get()
        .and_then(Option::as_ref)
        .map_or(0, |parking| parking.parked())
}

/// The process's parking for connections, started on first use.
static PARKING: std::sync::OnceLock<Option<crate::parking::Parking<ParkedConnection>>> =
    std::sync::OnceLock::new();

impl Parked for ParkedConnection {
    fn parking() -> Option<&'static crate::parking::Parking<Self>> {
        PARKING.get_or_init(crate::parking::Parking::start).as_ref()
    }

    fn resume(self: Box<Self>) {
        let Self {
            socket,
            connection,
            link,
            decoder,
            durable,
            peer,
            broker,
            slot,
            runtime,
        } = *self;
        let out = Outbox::new(connection.version());
        let live = Live {
            connection,
            link,
            decoder,
            input: BytesMut::new(),
            out,
            durable,
        };
        match socket {
            ParkedSocket::Tcp(socket) => {
                runtime.spawn(resume_task(
                    socket,
                    tokio::net::TcpStream::from_std,
                    live,
                    peer,
                    broker,
                    slot,
                ));
            }
            ParkedSocket::Unix(socket) => {
                runtime.spawn(resume_task(
                    socket,
                    tokio::net::UnixStream::from_std,
                    live,
                    peer,
                    broker,
                    slot,
                ));
            }
        }
    }
}

/// A connected client's state, between the handshake and the ending.
struct Live {
    connection: Connection,
    link: Arc<ConnectionLink>,
    decoder: Decoder,
    /// Bytes read and not yet decoded (empty and unallocated while idle).
    input: BytesMut,
    out: Outbox,
    /// The marks its acknowledgements wait for: the journal's, the cluster log's.
    durable: Marks,
}

/// Reads CONNECT, checks the credentials, carries any enhanced authentication through, and
/// logs the new client. `None` if the client was refused or went away (its slot is then free).
async fn open<S: Transport>(
    stream: S,
    peer: String,
    broker: Arc<Broker>,
    admission: Admission,
    slot: OpenSlot,
) -> Option<Opened<S>> {
    let live = admit(&stream, &peer, &broker, admission).await?;
    Some(Opened {
        stream,
        live,
        peer,
        broker,
        slot,
    })
}

/// The handshake of [`open`], on a borrowed stream.
async fn admit<S: Transport>(
    stream: &S,
    peer: &str,
    broker: &Arc<Broker>,
    admission: Admission,
) -> Option<Live> {
    let Admission {
        authenticator,
        rules,
        username: username_source,
        counters,
        cluster,
    } = admission;
    let log_settled = cluster.as_ref().and_then(|cluster| cluster.log_settled());
    let max_packet_size = broker.config().max_packet_size;
    let mut decoder = Decoder::new(ProtocolVersion::V311, max_packet_size);
    let mut input = BytesMut::new();

    let stats = broker.stats();
    let mut connect = read_connect(stream, &mut decoder, &mut input, peer, &counters, stats).await?;
    // With an Authentication Method the method decides (MQTT 5 enhanced authentication), not
    // the password file.
    let enhanced = connect.protocol.is_v5() && connect.properties.authentication_method.is_some();
    let credentials = match username_source {
        Username::FromConnect if enhanced => Credentials::Unchecked,
        Username::FromConnect => {
            authenticator
                .verdict(connect.username.as_ref(), connect.password.as_ref())
                .await
        }
        Username::FromCertificate(name) => {
            connect.password = None;
            match name {
                Some(name) => {
                    connect.username = Some(name.into());
                    Credentials::Valid
                }
                None => {
                    connect.username = None;
                    Credentials::Invalid
                }
            }
        }
    };
    let version = connect.protocol;
    let (keep_alive_asked, clean_start) = (connect.keep_alive, connect.clean_start);
    let claim = cluster.and_then(|cluster| {
        crate::cluster::claim_for(&connect, &credentials, &rules).map(|claim| (cluster, claim))
    });
    // Claimed before the client is attached here (the password is checked already), so that
    // a claim refused leaves the connections here as they were; with enhanced
    // authentication, once the method has accepted the client.
    if let Some((cluster, claim)) = &claim
        && !enhanced
        && let Err(reason) = claim.make(cluster.as_ref(), broker, peer).await
    {
        refuse(stream, version, reason, stats).await;
        return None;
    }
    let link = Arc::new(ConnectionLink::default());
    let mut out = Outbox::new(version);
    // AUTH packets may follow CONNECT, and are read in the CONNECT's version.
    decoder.set_version(version);
    let admitted = broker.admit(
        *connect,
        credentials,
        &rules,
        link.clone(),
        Instant::now().into_std(),
        &mut out,
    );
    let connection = match authenticate(stream, admitted, &mut decoder, &mut input, &mut out, stats).await {
        Ok(connection) => connection,
        Err(refusal) => {
            tracing::info!(event = "client.refused", %peer, reason = %refusal.detail, "Client refused from {peer}: {}.", refusal.detail);
            flush(stream, &mut out, stats, &mut Marks::default()).await;
            return None;
        }
    };
    if let Some((cluster, claim)) = &claim
        && enhanced
        && let Err(reason) = claim.make(cluster.as_ref(), broker, peer).await
    {
        connection.end(Instant::now().into_std(), false);
        refuse(stream, version, reason, stats).await;
        return None;
    }
    let durable = Marks {
        journal: broker.journal().map(|journal| journal.watch()),
        log: log_settled,
    };
    // The CONNACK leaves before the log line is written, so that a slow log destination does
    // not delay the client. One held for the journal, or what the socket did not take, goes
    // from the connected loop; an error here is met again there.
    if !durable.holds(&out) {
        let _ = write_some(stream, &mut out, stats);
    }
    stream.handshake_over();
    if let Some((cluster, claim)) = &claim {
        // Claimed from another node meanwhile, before this connection was here to be closed.
        claim.still_owned(cluster.as_ref(), broker);
    }
    let client_id = connection.client_id();
    // The user name in force: CONNECT's, or the one enhanced authentication proved.
    let username = connection.username();
    tracing::info!(
        event = "client.connected",
        client_id = %client_id,
        %peer,
        "New client connected from {peer} as {client_id} (p{}, c{}, k{}{}).",
        mosquitto_protocol_number(version),
        u8::from(clean_start),
        keep_alive_asked,
        username.map(|u| format!(", u'{u}'")).unwrap_or_default(),
    );
    Some(Live {
        connection,
        link,
        decoder,
        input,
        out,
        durable,
    })
}

/// Refuses a CONNECT before the client is admitted: a CONNACK with `reason` (the nearest
/// 3.1.1 return code to older clients), then the connection closes.
async fn refuse<S: Transport>(stream: &S, version: ProtocolVersion, reason: ReasonCode, stats: &Stats) {
    let mut out = Outbox::new(version);
    out.send(&Packet::ConnAck(ConnAck::new(reason)));
    flush(stream, &mut out, stats, &mut Marks::default()).await;
}

/// Ends a connection: detaches the session (publishing the will if due), logs why, and sends
/// what is still waiting (acknowledgements, a DISCONNECT) for a short while.
async fn close<S: Transport>(stream: Option<&S>, peer: &str, stats: &Stats, live: Live, ending: Ending) {
    let Live {
        connection,
        mut out,
        mut durable,
        ..
    } = live;
    let client_id = connection.client_id().clone();
    // The session is detached before the disconnect is logged, so that anyone reading the log
    // line (a user, or a test) can rely on the client being offline already.
    let publish_will = match &ending {
        Ending::Handled { publish_will, .. } => *publish_will,
        Ending::Eof | Ending::SocketError(_) => true,
        Ending::Timeout => {
            connection.send_disconnect(ReasonCode::KeepAliveTimeout, None, &mut out);
            true
        }
        Ending::Malformed(error) => {
            connection.send_disconnect(error.reason_code(), Some(&error.to_string()), &mut out);
            true
        }
        Ending::ClosedByBroker(reason) => {
            connection.send_disconnect(*reason, None, &mut out);
            false
        }
        Ending::Park => false,
    };
    connection.end(Instant::now().into_std(), publish_will);
    match &ending {
        Ending::Handled { publish_will, reason } => {
            if *publish_will && !reason.starts_with("disconnected") {
                tracing::info!(event = "client.disconnected", client_id = %client_id, %peer, reason = %reason, "Client {client_id} disconnected: {reason}.");
            } else {
                tracing::info!(event = "client.disconnected", client_id = %client_id, %peer, reason = %reason, "Client {client_id} {reason}.");
            }
        }
        Ending::Eof => {
            tracing::info!(event = "client.disconnected", client_id = %client_id, %peer, reason = "closed its connection", "Client {client_id} closed its connection.")
        }
        Ending::SocketError(error) => {
            tracing::info!(event = "client.disconnected", client_id = %client_id, %peer, %error, "Socket error on client {client_id}, disconnecting.");
        }
        Ending::Timeout => {
            tracing::info!(event = "client.disconnected", client_id = %client_id, %peer, reason = "keep alive timeout", "Client {client_id} has exceeded timeout, disconnecting.");
        }
        Ending::Malformed(error) => {
            tracing::info!(event = "client.disconnected", client_id = %client_id, %peer, %error, "Client {client_id} sent a bad packet, disconnecting: {error}.");
        }
        Ending::ClosedByBroker(_) | Ending::Park => {}
    }
    // Best effort: whatever is still waiting (acknowledgements, a DISCONNECT) goes out, briefly.
    if let Some(stream) = stream {
        flush(stream, &mut out, stats, &mut durable).await;
    }
}

/// Upgrades a new connection to a WebSocket (within the CONNECT timeout), then serves MQTT in
/// its binary frames. A failed upgrade is logged and closes the socket.
pub(crate) async fn serve_websocket<T: Transport>(
    inner: T,
    peer: String,
    broker: Arc<Broker>,
    admission: Admission,
    slot: OpenSlot,
) {
    // A whole MQTT packet fits one message, with room for the frame.
    let max_message = usize::try_from(broker.config().max_packet_size)
        .unwrap_or(usize::MAX)
        .saturating_add(16);
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, WebSocketStream::accept(inner, max_message))
        .await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            ConnectionCounters::bump(&admission.counters.websocket_failures);
            tracing::info!(event = "connection.failed", %peer, %error, "WebSocket upgrade from {peer} failed: {error}.");
            return;
        }
        Err(_) => {
            ConnectionCounters::bump(&admission.counters.connect_timeouts);
            tracing::info!(event = "connection.failed", %peer, reason = "WebSocket upgrade timeout", "Connection from {peer} did not complete the WebSocket upgrade in {}s, closing.", CONNECT_TIMEOUT.as_secs());
            return;
        }
    };
    serve(stream, peer, broker, admission, slot).await;
}

/// Runs the TLS handshake on a new TCP connection (within the CONNECT timeout), then serves it,
/// as MQTT or, with `websockets`, as MQTT over WebSockets.
/// A failed handshake is logged with rustls's reason and closes the socket.
pub(crate) async fn serve_tls(
    tcp: tokio::net::TcpStream,
    peer: String,
    tls: Arc<TlsListener>,
    websockets: bool,
    broker: Arc<Broker>,
    mut admission: Admission,
    slot: OpenSlot,
) {
    let stream = match TlsStream::new(tcp, tls.config()) {
        Ok(stream) => stream,
        Err(error) => {
            tracing::warn!(event = "connection.failed", %peer, %error, "Cannot start TLS with {peer}: {error}.");
            return;
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, stream.handshake()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            ConnectionCounters::bump(&admission.counters.tls_failures);
            tracing::info!(event = "connection.failed", %peer, %error, "TLS handshake with {peer} failed: {error}.");
            return;
        }
        Err(_) => {
            ConnectionCounters::bump(&admission.counters.connect_timeouts);
            tracing::info!(event = "connection.failed", %peer, reason = "TLS handshake timeout", "Connection from {peer} did not complete the TLS handshake in {}s, closing.", CONNECT_TIMEOUT.as_secs());
            return;
        }
    }
    tracing::debug!(%peer, "TLS connection from {peer}: {}.", stream.describe());
    let source = tls.username_source();
    if source != CertificateUsername::FromConnect {
        let name = stream
            .peer_certificate()
            .and_then(|certificate| certificate_username(source, &certificate));
        admission.username = Username::FromCertificate(name);
    }
    if websockets {
        Box::pin(serve_websocket(stream, peer, broker, admission, slot)).await;
    } else {
        serve(stream, peer, broker, admission, slot).await;
    }
}

/// Mosquitto's log numbering of protocol versions: p1 is 3.1, p2 is 3.1.1, p5 is 5.0.
fn mosquitto_protocol_number(version: ProtocolVersion) -> u8 {
    match version {
        ProtocolVersion::V31 => 1,
        ProtocolVersion::V311 => 2,
        ProtocolVersion::V5 => 5,
    }
}

/// Reads until the first packet is complete. It must be CONNECT [MQTT-3.1.0-1]; anything else,
/// a decode failure or silence past the timeout closes the socket. An unsupported protocol level
/// is answered with CONNACK 0x01 first [MQTT-3.1.2-2].
async fn read_connect<S: Transport>(
    stream: &S,
    decoder: &mut Decoder,
    input: &mut BytesMut,
    peer: &str,
    counters: &ConnectionCounters,
    stats: &Stats,
) -> Option<Box<midge_codec::Connect>> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        match decoder.decode(input) {
            Ok(Some(Packet::Connect(connect))) => {
                Stats::add(&stats.packets_received, 1);
                return Some(connect);
            }
            Ok(Some(other)) => {
                tracing::info!(event = "connection.failed", %peer, reason = "packet before CONNECT", "Connection from {peer} sent {:?} before CONNECT, closing [MQTT-3.1.0-1].", other.packet_type());
                return None;
            }
            Err(error) => {
                if matches!(
                    error,
                    DecodeError::UnsupportedProtocolLevel(_) | DecodeError::UnsupportedProtocolName { .. }
                ) {
                    let mut out = Outbox::new(ProtocolVersion::V311);
                    out.send(&Packet::ConnAck(ConnAck::new(
                        ReasonCode::UnsupportedProtocolVersion,
                    )));
                    flush(stream, &mut out, stats, &mut Marks::default()).await;
                }
                tracing::info!(event = "connection.failed", %peer, %error, "Bad CONNECT from {peer}: {error}.");
                return None;
            }
            Ok(None) => {}
        }
        match tokio::time::timeout_at(deadline, read_some(stream, decoder, input, stats)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return None,
            Ok(Ok(_)) => {}
            Err(_) => {
                ConnectionCounters::bump(&counters.connect_timeouts);
                tracing::info!(event = "connection.failed", %peer, reason = "no CONNECT in time", "Connection from {peer} sent no CONNECT in {}s, closing.", CONNECT_TIMEOUT.as_secs());
                return None;
            }
        }
    }
}

/// Carries a CONNECT's enhanced authentication to its end: sends each AUTH the core puts in
/// the outbox, and hands the client's answers to the handshake until it accepts or refuses.
/// The whole exchange must end within [`CONNECT_TIMEOUT`].
async fn authenticate<S: Transport>(
    stream: &S,
    mut admitted: Result<Admitted, Refusal>,
    decoder: &mut Decoder,
    input: &mut BytesMut,
    out: &mut Outbox,
    stats: &Stats,
) -> Result<Connection, Refusal> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let ended = |detail: String| Refusal {
        reason: ReasonCode::UnspecifiedError,
        detail,
    };
    loop {
        let handshake = match admitted? {
            Admitted::Connected(connection) => return Ok(connection),
            Admitted::Authenticating(handshake) => handshake,
        };
        flush(stream, out, stats, &mut Marks::default()).await;
        let packet = loop {
            match decoder.decode(input) {
                Ok(Some(packet)) => break packet,
                Ok(None) => {}
                Err(error) => {
                    let reason = error.reason_code();
                    if reason.allowed_in(midge_codec::PacketType::ConnAck) {
                        out.send(&Packet::ConnAck(ConnAck::new(reason)));
                    }
                    return Err(ended(format!(
                        "bad packet during enhanced authentication: {error}"
                    )));
                }
            }
            match tokio::time::timeout_at(deadline, read_some(stream, decoder, input, stats)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    return Err(ended("connection closed during enhanced authentication".into()));
                }
                Ok(Ok(_)) => {}
                Err(_) => {
                    return Err(ended(format!(
                        "enhanced authentication not finished in {}s",
                        CONNECT_TIMEOUT.as_secs()
                    )));
                }
            }
        };
        Stats::add(&stats.packets_received, 1);
        admitted = handshake.handle(packet, Instant::now().into_std(), out);
    }
}

/// Waits for bytes and reads them into `input`, making room first for the rest of the packet
/// being read. Returns 0 at end of stream.
async fn read_some<S: Transport>(
    stream: &S,
    decoder: &Decoder,
    input: &mut BytesMut,
    stats: &Stats,
) -> std::io::Result<usize> {
    loop {
        stream.readable().await?;
        match read_into(stream, decoder, input, stats) {
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
            result => return result,
        }
    }
}

/// Writes as much of the outbox as the socket takes now. Errors other than "would block" end
/// the connection.
fn write_some<S: Transport>(stream: &S, out: &mut Outbox, stats: &Stats) -> std::io::Result<()> {
    Stats::add(&stats.packets_sent, out.take_packet_count());
    let mut written = 0;
    let result = loop {
        if out.is_empty() {
            break Ok(());
        }
        // Heads and the large payloads shared with their messages, in one system call.
        let wrote = {
            let mut slices = [std::io::IoSlice::new(&[]); WRITE_SLICES];
            let count = out.io_slices(&mut slices);
            match count {
                1 => stream.try_write(&slices[0]),
                _ => stream.try_write_vectored(&slices[..count]),
            }
        };
        match wrote {
            Ok(0) => break Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                out.advance(n);
                written += n;
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break Ok(()),
            Err(error) => break Err(error),
        }
    };
    Stats::add(&stats.bytes_sent, written as u64);
    result
}

/// Writes the whole outbox, giving up after a second (the peer may have stopped reading, or
/// the store not caught up: what it has not stored is never acknowledged).
async fn flush<S: Transport>(stream: &S, out: &mut Outbox, stats: &Stats, durable: &mut Marks) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while durable.holds(out) {
            durable.moved().await;
        }
        while !out.is_empty() {
            if stream.writable().await.is_err() || write_some(stream, out, stats).is_err() {
                return;
            }
        }
    })
    .await;
}

/// Reads what the socket has into `input`; `WouldBlock` if nothing.
///
/// When the packet being read is known to need more than [`CHUNK_READ`] bytes, room for all of
/// it is reserved and the socket reads straight into the buffer. Otherwise the bytes go through
/// a buffer of the thread's and `input` grows by exactly what arrived: a 30-byte PINGREQ
/// or small PUBLISH never makes a connection allocate kilobytes it then keeps (freed read
/// buffers fragment the heap, which is what an idle connection's cost was made of).
fn read_into<S: Transport>(
    stream: &S,
    decoder: &Decoder,
    input: &mut BytesMut,
    stats: &Stats,
) -> std::io::Result<usize> {
    let read = read_into_uncounted(stream, decoder, input);
    if let Ok(n) = read {
        Stats::add(&stats.bytes_received, n as u64);
    }
    read
}

fn read_into_uncounted<S: Transport>(
    stream: &S,
    decoder: &Decoder,
    input: &mut BytesMut,
) -> std::io::Result<usize> {
    if let Ok(Some(len)) = decoder.packet_len(input) {
        let missing = len.saturating_sub(input.len());
        if missing > CHUNK_READ {
            input.reserve(missing);
            return stream.try_read_buf(input);
        }
    }
    READ_CHUNK.with_borrow_mut(|chunk| {
        let n = stream.try_read(&mut chunk[..])?;
        let arrived = &chunk[..n];
        if input.is_empty()
            && let Ok(Some(len)) = decoder.packet_len(arrived)
            && len > n
        {
            // The start of a packet larger than what came: room for all of it at once, so
            // the rest is read straight in rather than grown into.
            input.reserve(len);
        }
        input.extend_from_slice(arrived);
        Ok(n)
    })
}

thread_local! {
    /// The buffer small reads go through, one per thread and zeroed once: an array on the
    /// stack was zeroed on every read.
    static READ_CHUNK: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0; CHUNK_READ].into_boxed_slice());
}

/// What an outbox's acknowledgements wait for: the journal's durable mark (with persistence)
/// and the cluster's message log's settled mark (in a cluster).
#[derive(Debug, Default)]
pub(crate) struct Marks {
    journal: Option<watch::Receiver<u64>>,
    log: Option<watch::Receiver<u64>>,
}

impl Marks {
    /// Whether the outbox acknowledges writes not durable (or not settled) yet.
    fn holds(&self, out: &Outbox) -> bool {
        self.journal
            .as_ref()
            .is_some_and(|durable| out.durable_after() > *durable.borrow())
            || self
                .log
                .as_ref()
                .is_some_and(|settled| out.logged_after() > *settled.borrow())
    }

    /// Completes when either mark moves (never, with neither).
    async fn moved(&mut self) {
        async fn changed(mark: Option<&mut watch::Receiver<u64>>) {
            if let Some(mark) = mark
                && mark.changed().await.is_ok()
            {
                return;
            }
            std::future::pending::<()>().await;
        }
        tokio::select! {
            () = changed(self.journal.as_mut()) => {}
            () = changed(self.log.as_mut()) => {}
        }
    }
}

/// The connected loop. While the client is idle (nothing to write, nothing left unhandled, no
/// queue waited on) it waits here for bytes, a wake-up or the keep-alive deadline, which takes
/// little room; everything else happens in [`busy`], whose bigger future lives in a box only
/// while there is such work. Reads made while idle are handled here, so a publisher whose
/// packets need no answer never enters the box.
async fn run<S: Transport>(stream: &S, live: &mut Live, stats: &Stats) -> Ending {
    let mut work = 0;
    // Packets that arrived with CONNECT are handled before the first read.
    if let (Some(ending), _) = handle_input(live, stats) {
        return ending;
    }
    loop {
        if let Some(ending) = Box::pin(busy(stream, live, stats, &mut work)).await {
            return ending;
        }
        tokio::select! {
            ready = stream.idle_readable() => {
                if let Err(error) = ready {
                    return Ending::SocketError(error);
                }
                match read_into(stream, &live.decoder, &mut live.input, stats) {
                    Ok(0) => return Ending::Eof,
                    Ok(_) => {
                        live.link.active(Instant::now());
                        let (ending, packets) = handle_input(live, stats);
                        if let Some(ending) = ending {
                            return ending;
                        }
                        yield_after(&mut work, packets).await;
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(error) => return Ending::SocketError(error),
                }
            }
            () = live.link.signalled() => {
                if live.link.take_timed_out() {
                    return Ending::Timeout;
                }
                if let Some(reason) = live.link.close.lock().take() {
                    return Ending::ClosedByBroker(reason);
                }
                let park = live.link.park_wanted.swap(false, Ordering::AcqRel);
                let now = Instant::now();
                live.connection.drain(now.into_std(), &mut live.out);
                if park && live.out.is_empty() && live.input.is_empty() {
                    return Ending::Park;
                }
                live.link.active(now);
            }
        }
    }
}

/// Fair share: socket readiness does not count toward tokio's cooperative budget, so a client
/// that always has bytes waiting would keep this thread to itself, and the subscribers it feeds
/// would never get to write (seen: a flat-out publisher starved 50 subscribers on one core).
/// One unit per few packets (counted in `work`) yields after about a thousand.
async fn yield_after(work: &mut u64, packets: u64) {
    *work += packets;
    while *work >= PACKETS_PER_BUDGET_UNIT {
        *work -= PACKETS_PER_BUDGET_UNIT;
        tokio::task::coop::consume_budget().await;
    }
}

/// The connected loop while there is more to do than wait for the client's next packet:
/// packets to write, a queue this client's messages filled ([`midge_core::backpressure`]:
/// reading stops until it drains), acknowledgements held for the journal. Returns `None` once
/// the connection is idle again.
async fn busy<S: Transport>(stream: &S, live: &mut Live, stats: &Stats, work: &mut u64) -> Option<Ending> {
    // Whether `input` may hold whole packets left unhandled when a subscriber's queue filled:
    // they are handled before anything more is read.
    let mut unhandled = live.connection.is_waiting();
    let link = live.link.clone();
    // While the client is not read, the time at which to look again at the queues it waits on;
    // boxed and made on first use, since most busy phases never need it.
    let mut resume_timer: Option<Pin<Box<Sleep>>> = None;
    loop {
        let mut paused = live.connection.read_paused(Instant::now().into_std());
        if unhandled && paused.is_none() {
            let (ending, _) = handle_input(live, stats);
            if ending.is_some() {
                return ending;
            }
            unhandled = live.connection.is_waiting();
            paused = live.connection.read_paused(Instant::now().into_std());
        }
        if let Some(at) = paused {
            // Not reading is the broker's doing, not the client's silence.
            link.heard(Instant::now());
            match &mut resume_timer {
                Some(timer) => timer.as_mut().reset(at.into()),
                None => resume_timer = Some(Box::pin(sleep_until(at.into()))),
            }
        }
        if live.input.is_empty() {
            live.input = BytesMut::new();
        }
        live.out.release_if_empty();
        let held = live.durable.holds(&live.out);
        if paused.is_none() && !unhandled && !held && live.out.is_empty() {
            return None;
        }
        let interest = match (paused.is_some(), live.out.is_empty()) {
            (false, true) => Interest::READABLE,
            (false, false) => Interest::READABLE | Interest::WRITABLE,
            (true, _) => Interest::WRITABLE,
        };
        let use_socket = !held && (paused.is_none() || !live.out.is_empty());
        tokio::select! {
            () = live.durable.moved(), if held => {}
            () = resumed(&mut resume_timer), if paused.is_some() => {}
            ready = stream.ready(interest), if use_socket => {
                let ready = match ready {
                    Ok(ready) => ready,
                    Err(error) => return Some(Ending::SocketError(error)),
                };
                if ready.is_writable() && !live.out.is_empty() {
                    if let Err(error) = write_some(stream, &mut live.out, stats) {
                        return Some(Ending::SocketError(error));
                    }
                    if live.out.is_empty() {
                        // Room in the outbox: pull more of what the session has queued.
                        live.connection.drain(Instant::now().into_std(), &mut live.out);
                    }
                }
                if paused.is_none() && (ready.is_readable() || ready.is_read_closed()) {
                    match read_into(stream, &live.decoder, &mut live.input, stats) {
                        Ok(0) => return Some(Ending::Eof),
                        Ok(_) => {
                            let (ending, packets) = handle_input(live, stats);
                            if ending.is_some() {
                                return ending;
                            }
                            unhandled = live.connection.is_waiting();
                            yield_after(work, packets).await;
                        }
                        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(error) => return Some(Ending::SocketError(error)),
                    }
                }
            }
            () = link.signalled() => {
                // Busy is not idle: a request to park waits for the next idle stretch.
                link.park_wanted.store(false, Ordering::Relaxed);
                link.active(Instant::now());
                if link.take_timed_out() {
                    if paused.is_none() {
                        return Some(Ending::Timeout);
                    }
                    // Paused since before the deadline: the silence is the broker's.
                    link.heard(Instant::now());
                }
                if let Some(reason) = link.close.lock().take() {
                    return Some(Ending::ClosedByBroker(reason));
                }
                live.connection.drain(Instant::now().into_std(), &mut live.out);
            }
        }
    }
}

/// Completes when the resume timer fires (never, if there is none).
async fn resumed(timer: &mut Option<Pin<Box<Sleep>>>) {
    match timer {
        Some(timer) => timer.as_mut().await,
        None => std::future::pending().await,
    }
}

/// Decodes and handles the whole packets in `input`, stopping early if one congests a
/// subscriber's queue; also says how many it handled.
fn handle_input(live: &mut Live, stats: &Stats) -> (Option<Ending>, u64) {
    let Live {
        connection,
        decoder,
        input,
        out,
        link,
        ..
    } = live;
    let mut packets = 0;
    // One reading of the clock for the packets of one read: they arrived together.
    let now = Instant::now();
    let ending = loop {
        match decoder.decode(input) {
            Ok(Some(packet)) => {
                packets += 1;
                if let After::Close { publish_will, reason } =
                    connection.handle_in_batch(packet, now.into_std(), out)
                {
                    break Some(Ending::Handled { publish_will, reason });
                }
                if connection.is_waiting() {
                    break None;
                }
            }
            Ok(None) => break None,
            Err(error) => break Some(Ending::Malformed(error)),
        }
    };
    if packets > 0 {
        link.heard(now);
        if ending.is_none() {
            connection.finish_batch(now.into_std(), out);
        } else {
            connection.report();
        }
    }
    Stats::add(&stats.packets_received, packets);
    (ending, packets)
}
