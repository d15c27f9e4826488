//! The connection task: one per client, owning the stream, the session and the timers.
//!
//! It connects (CONNECT, CONNACK), then loops on four things at once: bytes from the server,
//! commands from the [`Client`](crate::Client) handles, room in the write buffer, and the keep
//! alive timer. Packets are decoded by `midge-codec` straight off the read buffer; replies are
//! encoded into one write buffer and written as they fit (one syscall for many packets).
//!
//! Memory is bounded everywhere: the command channel and the event queue have fixed capacity,
//! commands are not taken while the in-flight window is full or the write buffer is past its
//! high-water mark, and the socket is not read while an event waits for room in the queue.
//! The server cannot make it panic: a malformed packet or a packet out of place ends the
//! connection with [`ClientError::Decode`] or [`ClientError::Protocol`].
//!
//! Spec: MQTT 5.0 §3.1-§3.2 (connect), §4.3-§4.4 (QoS flows and redelivery), §3.1.2.10 (keep
//! alive), §4.9 (flow control), §3.3.2.3.4 (topic aliases from the server).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use midge_codec::properties::AckProperties;
use midge_codec::{
    Ack, ConnAck, Decoder, Disconnect, Packet, ProtocolVersion, Publish, QoS, ReasonCode, TopicName,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::client::{Command, Event};
use crate::error::ClientError;
use crate::options::{ClientOptions, Direction};
use crate::session::{Awaiting, Outstanding, PublishOutcome, Resend, Session};
use crate::transport::Connector;

/// Stop taking commands while this much is waiting to be written, and write before reading.
const WRITE_HIGH_WATER: usize = 64 * 1024;
/// Read at least this much at a time.
const READ_CHUNK: usize = 4096;
/// Read at most this much at a time: a connection whose reads fill the buffer doubles its
/// next read up to this, and one whose reads come back small goes back to [`READ_CHUNK`].
const READ_CHUNK_MAX: usize = 64 * 1024;
/// Commands taken from the queue in one go before the loop looks at the socket again.
const COMMAND_BATCH: usize = 256;

/// A connected stream with the CONNACK that accepted it and any bytes read past it.
pub(crate) struct Established<S> {
    pub(crate) stream: S,
    pub(crate) connack: ConnAck,
    pub(crate) leftover: BytesMut,
}

impl<S> std::fmt::Debug for Established<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Established")
            .field("connack", &self.connack)
            .finish_non_exhaustive()
    }
}

/// Opens a stream and exchanges CONNECT and CONNACK, within the connect timeout.
pub(crate) async fn establish<C: Connector>(
    connector: &C,
    options: &ClientOptions,
    clean_start: bool,
) -> Result<Established<C::Stream>, ClientError> {
    let connect = options.connect_packet(clean_start)?;
    let work = async {
        let mut stream = connector.connect().await.map_err(ClientError::connecting)?;
        let mut out = BytesMut::new();
        let packet = Packet::Connect(Box::new(connect));
        packet.encode(options.protocol, &mut out)?;
        trace(options, Direction::Sent, &packet);
        stream.write_all(&out).await?;
        stream.flush().await?;
        let decoder = Decoder::new(options.protocol, max_packet_size(options));
        let mut input = BytesMut::with_capacity(READ_CHUNK);
        loop {
            if let Some(packet) = decoder.decode(&mut input)? {
                trace(options, Direction::Received, &packet);
                let Packet::ConnAck(connack) = packet else {
                    return Err(ClientError::Protocol(
                        "the first packet from the server is not CONNACK",
                    ));
                };
                return Ok(Established {
                    stream,
                    connack,
                    leftover: input,
                });
            }
            input.reserve(READ_CHUNK);
            if stream.read_buf(&mut input).await? == 0 {
                return Err(ClientError::ConnectionClosed);
            }
        }
    };
    let established = tokio::time::timeout(options.connect_timeout, work)
        .await
        .map_err(|_| ClientError::ConnectTimeout)??;
    let reason = established.connack.reason_code;
    if reason != ReasonCode::Success {
        return Err(ClientError::ConnectionRefused {
            reason,
            protocol: options.protocol,
            properties: Box::new(established.connack.properties.into_inner()),
        });
    }
    Ok(established)
}

/// [`establish`], and for a bridge CONNECT (`options.bridge`) refused for its protocol level,
/// once more without the bridge bit, which `options` then keeps (Mosquitto's `try_private`).
pub(crate) async fn establish_as_bridge_or_not<C: Connector>(
    connector: &C,
    options: &mut ClientOptions,
    clean_start: bool,
) -> Result<Established<C::Stream>, ClientError> {
    match establish(connector, options, clean_start).await {
        Err(ClientError::ConnectionRefused {
            reason: ReasonCode::UnsupportedProtocolVersion,
            ..
        }) if options.bridge && !options.protocol.is_v5() => {
            tracing::warn!(
                "the server does not accept the bridge protocol level (try_private); connecting without it"
            );
            options.bridge = false;
            establish(connector, options, clean_start).await
        }
        other => other,
    }
}

fn max_packet_size(options: &ClientOptions) -> u32 {
    options.accepted_packet_size()
}

fn trace(options: &ClientOptions, direction: Direction, packet: &Packet) {
    if let Some(trace) = &options.trace {
        trace(direction, packet);
    }
}

/// Whether a reconnect should ask the server to resume the session.
fn resumes_session(options: &ClientOptions) -> bool {
    if options.protocol.is_v5() {
        options.session_expiry_interval.unwrap_or(0) > 0
            || options.connect_properties.session_expiry_interval.unwrap_or(0) > 0
    } else {
        !options.clean_start
    }
}

/// How one connection ended.
enum End {
    /// We disconnected on purpose (DISCONNECT sent, or every handle dropped).
    Closed,
    /// The connection failed.
    Lost(ClientError),
}

/// The task's state across connections.
pub(crate) struct Task<C: Connector> {
    connector: C,
    options: ClientOptions,
    session: Session,
    commands: mpsc::Receiver<Command>,
    /// Commands taken from the queue and not started yet (in-flight window full, no packet
    /// identifier free, or the write buffer past its high-water mark), oldest first. At most
    /// [`COMMAND_BATCH`]; they survive a reconnect, as commands still in the queue do.
    queued: VecDeque<Command>,
    /// Where commands land when taken from the queue, before moving to `queued`.
    taken: Vec<Command>,
    events: mpsc::Sender<Event>,
    backoff: Backoff,
    /// Started in the background ([`Client::spawn_with`](crate::Client::spawn_with)): failed
    /// attempts are reported as events.
    background: bool,
}

impl<C: Connector> Task<C> {
    pub(crate) fn new(
        connector: C,
        options: ClientOptions,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<Event>,
    ) -> Self {
        let backoff = Backoff::new(
            options.reconnect_delay.unwrap_or_default(),
            options.reconnect_delay_max,
        );
        Self {
            connector,
            options,
            session: Session::default(),
            commands,
            queued: VecDeque::new(),
            taken: Vec::new(),
            events,
            backoff,
            background: false,
        }
    }

    /// Runs connections until the client disconnects, or a loss it does not reconnect after.
    /// Without a first connection (a client started in the background), makes it first.
    pub(crate) async fn run(mut self, first: Option<Established<C::Stream>>) {
        self.background = first.is_none();
        let mut established = match first {
            Some(first) => first,
            None => match self.connect_first().await {
                Some(first) => first,
                None => {
                    self.session.fail_all(&ClientError::Disconnected);
                    return;
                }
            },
        };
        loop {
            let end = Connection::new(&mut self, &established.connack)
                .drive(established.stream, established.leftover)
                .await;
            let error = match end {
                End::Closed => {
                    self.session.fail_all(&ClientError::Disconnected);
                    return;
                }
                End::Lost(error) => error,
            };
            tracing::debug!(%error, "connection lost");
            let at_once = matches!(error, ClientError::ReconnectRequested);
            if self.options.reconnect_delay.is_none() {
                self.session.fail_all(&error);
                let _ = self.events.send(Event::ConnectionLost(Arc::new(error))).await;
                return;
            }
            let _ = self.events.send(Event::ConnectionLost(Arc::new(error))).await;
            match self.reconnect(at_once).await {
                Some(next) => established = next,
                None => {
                    self.session.fail_all(&ClientError::Disconnected);
                    return;
                }
            }
        }
    }

    /// The first connection of a client started in the background: tried until it works, with
    /// the reconnect delay between attempts (one attempt without it), each failure reported.
    async fn connect_first(&mut self) -> Option<Established<C::Stream>> {
        let clean_start = self.options.clean_start;
        loop {
            match establish_as_bridge_or_not(&self.connector, &mut self.options, clean_start).await {
                Ok(established) => {
                    self.backoff.reset();
                    let _ = self
                        .events
                        .send(Event::Connected(established.connack.clone()))
                        .await;
                    return Some(established);
                }
                Err(error) => {
                    tracing::debug!(%error, "connect failed");
                    let _ = self.events.send(Event::ConnectFailed(Arc::new(error))).await;
                }
            }
            self.options.reconnect_delay?;
            let delay = self.backoff.next_delay();
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                () = self.commands_closed() => return None,
            }
        }
    }

    /// Tries to connect again until it works, or until every handle is dropped: at once first
    /// if `at_once`, else after the reconnect delay, which grows up to its cap while attempts
    /// fail.
    async fn reconnect(&mut self, at_once: bool) -> Option<Established<C::Stream>> {
        let resume = resumes_session(&self.options);
        let mut wait = !at_once;
        loop {
            if wait {
                let delay = self.backoff.next_delay();
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    () = self.commands_closed() => return None,
                }
            }
            wait = true;
            match establish_as_bridge_or_not(&self.connector, &mut self.options, !resume).await {
                Ok(established) => {
                    self.backoff.reset();
                    if !established.connack.session_present {
                        self.session.discard_publishes();
                    }
                    let _ = self
                        .events
                        .send(Event::Reconnected(established.connack.clone()))
                        .await;
                    return Some(established);
                }
                Err(error) => {
                    tracing::debug!(%error, "reconnect failed");
                    if self.background {
                        let _ = self.events.send(Event::ConnectFailed(Arc::new(error))).await;
                    }
                }
            }
        }
    }

    /// Completes when every [`Client`](crate::Client) handle is gone.
    async fn commands_closed(&self) {
        // Only used while no connection is up; commands sent meanwhile stay queued.
        loop {
            if self.commands.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// What the server allows, from its CONNACK.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Outbound QoS 1 and 2 messages in flight at once.
    window: usize,
    max_packet_size: Option<u32>,
    max_qos: QoS,
    keep_alive: Option<Duration>,
}

/// One connection's worth of state, borrowing the task's session.
struct Connection<'t, C: Connector> {
    task: &'t mut Task<C>,
    version: ProtocolVersion,
    decoder: Decoder,
    limits: Limits,
    out: BytesMut,
    needs_flush: bool,
    last_sent: Instant,
    ping_sent: Option<Instant>,
    /// An event waiting for room in the queue, and the acknowledgement to send once it has it.
    pending_event: Option<(Event, Option<Packet>)>,
    /// Room reserved in the event queue.
    permit: Option<mpsc::OwnedPermit<Event>>,
    /// The events receiver is gone: events are dropped.
    events_closed: bool,
    /// After the pending event is delivered, end the connection with this.
    end_after_event: Option<ClientError>,
    /// Topic aliases the server has set up (bounded by our Topic Alias Maximum).
    aliases: HashMap<u16, TopicName>,
    /// Set once DISCONNECT is queued: flush, then close.
    closing: Option<Option<crate::session::Reply<()>>>,
}

impl<'t, C: Connector> Connection<'t, C> {
    fn new(task: &'t mut Task<C>, connack: &ConnAck) -> Self {
        let options = &task.options;
        let props = &connack.properties;
        let server_receive_max = props.receive_maximum.map_or(u16::MAX, |m| m.get());
        let window = usize::from(options.max_inflight.max(1).min(server_receive_max));
        let keep_alive_secs = props.server_keep_alive.unwrap_or(options.keep_alive);
        let limits = Limits {
            window,
            max_packet_size: props.maximum_packet_size.map(|m| m.get()),
            max_qos: props.maximum_qos.unwrap_or(QoS::ExactlyOnce),
            keep_alive: (keep_alive_secs > 0).then(|| Duration::from_secs(u64::from(keep_alive_secs))),
        };
        let version = options.protocol;
        Self {
            decoder: Decoder::new(version, max_packet_size(options)),
            version,
            limits,
            out: BytesMut::new(),
            needs_flush: false,
            last_sent: Instant::now(),
            ping_sent: None,
            pending_event: None,
            permit: None,
            events_closed: false,
            end_after_event: None,
            aliases: HashMap::new(),
            closing: None,
            task,
        }
    }

    async fn drive(mut self, stream: C::Stream, mut input: BytesMut) -> End {
        let (mut reader, mut writer) = tokio::io::split(stream);
        let result = self.run(&mut reader, &mut writer, &mut input).await;
        match result {
            Ok(end) => end,
            Err(error) => {
                // Best effort: tell an MQTT 5 server why, then close.
                if self.version.is_v5()
                    && let Some(reason) = disconnect_reason(&error)
                {
                    self.out.clear();
                    if self.encode(&Packet::Disconnect(Disconnect::new(reason))).is_ok() {
                        let _ =
                            tokio::time::timeout(Duration::from_secs(1), writer.write_all(&self.out)).await;
                    }
                }
                let _ = writer.shutdown().await;
                End::Lost(error)
            }
        }
    }

    async fn run(
        &mut self,
        reader: &mut ReadHalf<C::Stream>,
        writer: &mut WriteHalf<C::Stream>,
        input: &mut BytesMut,
    ) -> Result<End, ClientError> {
        self.resume()?;
        let mut eof = false;
        let lockstep = self.task.options.one_event_at_a_time;
        let mut read_chunk = READ_CHUNK;
        // The keep alive timer is armed once and moved only when it fires: a write only pushes
        // the real deadline later, and `keep_alive` checks that before acting.
        let mut armed = self.keep_alive_deadline();
        let timer = tokio::time::sleep_until(armed.unwrap_or_else(Instant::now));
        tokio::pin!(timer);
        loop {
            // Everything already read, as far as the event queue allows. In lockstep, a packet
            // is decoded only with room for its event already reserved.
            loop {
                self.deliver_pending_event()?;
                if lockstep {
                    self.try_reserve();
                }
                let gated = lockstep && self.permit.is_none() && !self.events_closed;
                if self.pending_event.is_some() || self.end_after_event.is_some() || gated {
                    break;
                }
                match self.decoder.decode(input)? {
                    Some(packet) => {
                        trace(&self.task.options, Direction::Received, &packet);
                        self.handle_packet(packet)?;
                    }
                    None => break,
                }
            }
            if eof && self.pending_event.is_none() {
                return Err(match self.end_after_event.take() {
                    Some(error) => error,
                    None => ClientError::ConnectionClosed,
                });
            }
            if self.pending_event.is_none()
                && let Some(error) = self.end_after_event.take()
            {
                return Err(error);
            }
            self.start_queued()?;
            if let Some(reply) = self.closing.take_if(|_| self.out.is_empty() && !self.needs_flush) {
                let _ = writer.shutdown().await;
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(()));
                }
                return Ok(End::Closed);
            }

            let can_read = self.pending_event.is_none() && self.closing.is_none() && !eof;
            let spare_before = if can_read {
                input.reserve(read_chunk);
                input.capacity() - input.len()
            } else {
                0
            };
            let want_room =
                self.permit.is_none() && !self.events_closed && (self.pending_event.is_some() || lockstep);
            let can_command =
                self.task.queued.is_empty() && self.closing.is_none() && self.out.len() < WRITE_HIGH_WATER;
            let can_write = !self.out.is_empty() || self.needs_flush;
            // Reading and taking commands come before writing, so that what they produce (the
            // acknowledgements of everything read, the packets of every command queued) leaves
            // in one write when nothing else is ready, not one write per packet. Past the
            // high-water mark the write comes first. The timer comes before both, so that a
            // connection that is never idle still sends its PINGREQ.
            let wake = if self.out.len() < WRITE_HIGH_WATER {
                tokio::select! {
                    biased;
                    () = &mut timer, if armed.is_some() => Wake::Timer,
                    read = reader.read_buf(input), if can_read => Wake::Read(read),
                    permit = self.task.events.clone().reserve_owned(), if want_room => Wake::Room(permit.ok()),
                    taken = self.task.commands.recv_many(&mut self.task.taken, COMMAND_BATCH), if can_command => {
                        Wake::Commands(taken)
                    }
                    written = write_or_flush(writer, &mut self.out), if can_write => Wake::Written(written),
                }
            } else {
                tokio::select! {
                    biased;
                    () = &mut timer, if armed.is_some() => Wake::Timer,
                    written = write_or_flush(writer, &mut self.out) => Wake::Written(written),
                    read = reader.read_buf(input), if can_read => Wake::Read(read),
                    permit = self.task.events.clone().reserve_owned(), if want_room => Wake::Room(permit.ok()),
                }
            };
            match wake {
                Wake::Read(read) => {
                    let read = read?;
                    if read == 0 {
                        eof = true;
                    }
                    // A read that filled the buffer had more behind it: read more next time.
                    read_chunk = if read >= spare_before {
                        (read_chunk * 2).min(READ_CHUNK_MAX)
                    } else if read < read_chunk / 4 {
                        READ_CHUNK
                    } else {
                        read_chunk
                    };
                }
                Wake::Room(Some(permit)) => self.permit = Some(permit),
                // Nobody holds the events receiver: events are discarded from now on.
                Wake::Room(None) => self.events_closed = true,
                Wake::Written(Some(written)) => {
                    if written? == 0 {
                        return Err(ClientError::Io(std::io::ErrorKind::WriteZero.into()));
                    }
                    self.last_sent = Instant::now();
                    self.needs_flush = true;
                }
                Wake::Written(None) => self.needs_flush = false,
                // Everything that was queued goes into the same write.
                Wake::Commands(taken) if taken > 0 => {
                    let Task { queued, taken, .. } = &mut *self.task;
                    queued.extend(taken.drain(..));
                    self.start_queued()?;
                }
                Wake::Commands(_) => {
                    // Every handle dropped: leave cleanly.
                    self.send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))?;
                    self.closing = Some(None);
                }
                Wake::Timer => {
                    self.keep_alive()?;
                    armed = self.keep_alive_deadline();
                    if let Some(deadline) = armed {
                        timer.as_mut().reset(deadline);
                    }
                }
            }
        }
    }

    /// Queues the pending event if there is room reserved for it (or drops it if nobody
    /// listens), sending its acknowledgement first: a trace then shows the acknowledgement
    /// before anything the application does with the event.
    fn deliver_pending_event(&mut self) -> Result<(), ClientError> {
        if self.pending_event.is_none() {
            return Ok(());
        }
        // This task is the queue's only sender, so room seen now is still there at the send
        // below: no permit needs reserving (and no sender cloning) in the common case.
        if self.permit.is_none() && !self.events_closed {
            if self.task.events.is_closed() {
                self.events_closed = true;
            } else if self.task.events.capacity() == 0 {
                return Ok(());
            }
        }
        if let Some((event, ack)) = self.pending_event.take() {
            if let Some(ack) = ack {
                self.send(&ack)?;
            }
            if let Some(permit) = self.permit.take() {
                permit.send(event);
            } else if !self.events_closed
                && let Err(mpsc::error::TrySendError::Closed(_)) = self.task.events.try_send(event)
            {
                self.events_closed = true;
            }
        }
        Ok(())
    }

    /// Reserves room in the event queue without waiting, if there is some: in lockstep, a
    /// packet is decoded only once its event has room.
    fn try_reserve(&mut self) {
        if self.permit.is_some() || self.events_closed {
            return;
        }
        match self.task.events.clone().try_reserve_owned() {
            Ok(permit) => self.permit = Some(permit),
            Err(mpsc::error::TrySendError::Closed(_)) => self.events_closed = true,
            Err(mpsc::error::TrySendError::Full(_)) => {}
        }
    }

    /// On a resumed session, sends again what was unacknowledged [MQTT-4.4.0-1].
    fn resume(&mut self) -> Result<(), ClientError> {
        for resend in self.task.session.resend() {
            let packet = match resend {
                Resend::Publish(publish) => Packet::Publish(publish),
                Resend::PubRel(id) => Packet::PubRel(Ack::new(id)),
                Resend::Subscribe(s) => Packet::Subscribe(s),
                Resend::Unsubscribe(u) => Packet::Unsubscribe(u),
            };
            self.send(&packet)?;
        }
        Ok(())
    }

    /// Encodes a packet into the write buffer and reports it to the trace.
    fn send(&mut self, packet: &Packet) -> Result<(), ClientError> {
        self.encode(packet)?;
        trace(&self.task.options, Direction::Sent, packet);
        Ok(())
    }

    fn encode(&mut self, packet: &Packet) -> Result<(), ClientError> {
        packet.encode(self.version, &mut self.out)?;
        Ok(())
    }

    fn keep_alive_deadline(&self) -> Option<Instant> {
        let keep_alive = self.limits.keep_alive?;
        Some(match self.ping_sent {
            Some(sent) => sent + self.task.options.ping_timeout().max(Duration::from_millis(100)),
            None => self.last_sent + keep_alive,
        })
    }

    /// The keep alive timer fired: send PINGREQ, or give up if the last one went unanswered.
    fn keep_alive(&mut self) -> Result<(), ClientError> {
        let now = Instant::now();
        let due = self.keep_alive_deadline().is_some_and(|deadline| now >= deadline);
        match self.ping_sent {
            Some(_) if due => Err(ClientError::KeepAliveTimeout),
            None if due => {
                self.send(&Packet::PingReq)?;
                self.ping_sent = Some(now);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Starts the commands taken from the queue, in order, while they can start.
    fn start_queued(&mut self) -> Result<(), ClientError> {
        while self.closing.is_none() && self.out.len() < WRITE_HIGH_WATER {
            let Some(command) = self.task.queued.pop_front() else {
                break;
            };
            if let Some(command) = self.handle_command(command)? {
                self.task.queued.push_front(command);
                break;
            }
        }
        Ok(())
    }

    /// Starts one command; gives it back if it cannot start yet (the in-flight window is
    /// full, or no packet identifier is free).
    fn handle_command(&mut self, command: Command) -> Result<Option<Command>, ClientError> {
        match command {
            Command::Publish { mut publish, reply } => {
                let answer = |reply: Option<crate::session::Reply<PublishOutcome>>, outcome| match reply {
                    Some(reply) => {
                        let _ = reply.send(outcome);
                    }
                    None => {
                        if let Err(error) = outcome {
                            tracing::warn!(%error, "a queued PUBLISH was not sent");
                        }
                    }
                };
                if publish.qos > self.limits.max_qos {
                    answer(reply, Err(ClientError::QosNotSupported(publish.qos.as_u8())));
                    return Ok(None);
                }
                if publish.qos != QoS::AtMostOnce {
                    if self.task.session.publishes_in_flight() >= self.limits.window {
                        return Ok(Some(Command::Publish { publish, reply }));
                    }
                    let Some(id) = self.task.session.next_packet_id() else {
                        return Ok(Some(Command::Publish { publish, reply }));
                    };
                    publish.packet_id = Some(id);
                }
                let packet = Packet::Publish(publish);
                if let Some(max) = self.limits.max_packet_size {
                    let size = packet.encoded_len(self.version)?;
                    if size > max as usize {
                        answer(reply, Err(ClientError::PacketTooLarge { size, max }));
                        return Ok(None);
                    }
                }
                if let Err(error) = self.send(&packet) {
                    answer(reply, Err(error));
                    return Ok(None);
                }
                let Packet::Publish(publish) = packet else {
                    return Ok(None);
                };
                if publish.qos == QoS::AtMostOnce {
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(PublishOutcome {
                            packet_id: None,
                            reason_code: ReasonCode::Success,
                            properties: AckProperties::default(),
                        }));
                    }
                } else {
                    self.task.session.insert_publish(publish, reply);
                }
            }
            Command::Subscribe { mut packet, reply } => {
                let Some(id) = self.task.session.next_packet_id() else {
                    return Ok(Some(Command::Subscribe { packet, reply }));
                };
                packet.packet_id = id;
                let wire = Packet::Subscribe(packet);
                if let Err(error) = self.send(&wire) {
                    let _ = reply.send(Err(error));
                    return Ok(None);
                }
                if let Packet::Subscribe(packet) = wire {
                    self.task
                        .session
                        .insert_request(id, Outstanding::Subscribe { packet, reply });
                }
            }
            Command::Unsubscribe { mut packet, reply } => {
                let Some(id) = self.task.session.next_packet_id() else {
                    return Ok(Some(Command::Unsubscribe { packet, reply }));
                };
                packet.packet_id = id;
                let wire = Packet::Unsubscribe(packet);
                if let Err(error) = self.send(&wire) {
                    let _ = reply.send(Err(error));
                    return Ok(None);
                }
                if let Packet::Unsubscribe(packet) = wire {
                    self.task
                        .session
                        .insert_request(id, Outstanding::Unsubscribe { packet, reply });
                }
            }
            Command::Disconnect { disconnect, reply } => {
                let disconnect = Packet::Disconnect(disconnect);
                if let Err(error) = self.send(&disconnect) {
                    let _ = reply.send(Err(error));
                    return Ok(None);
                }
                self.closing = Some(Some(reply));
            }
            Command::Close { reply } => self.closing = Some(Some(reply)),
            Command::Reconnect => return Err(ClientError::ReconnectRequested),
        }
        Ok(None)
    }

    fn handle_packet(&mut self, packet: Packet) -> Result<(), ClientError> {
        match packet {
            Packet::Publish(publish) => self.handle_publish(publish)?,
            Packet::PubAck(ack) => {
                if self.task.session.publish_stage(ack.packet_id) == Some(Awaiting::Ack) {
                    self.task.session.complete_publish(ack.packet_id, outcome(ack));
                }
            }
            Packet::PubRec(ack) => match self.task.session.publish_stage(ack.packet_id) {
                Some(Awaiting::Received) if ack.reason_code.is_error() => {
                    self.task.session.complete_publish(ack.packet_id, outcome(ack));
                }
                Some(Awaiting::Received | Awaiting::Complete) => {
                    self.task.session.released(ack.packet_id);
                    self.send(&Packet::PubRel(Ack::new(ack.packet_id)))?;
                }
                _ => {
                    let mut rel = Ack::new(ack.packet_id);
                    if self.version.is_v5() {
                        rel.reason_code = ReasonCode::PacketIdentifierNotFound;
                    }
                    self.send(&Packet::PubRel(rel))?;
                }
            },
            Packet::PubComp(ack) => {
                if self.task.session.publish_stage(ack.packet_id) == Some(Awaiting::Complete) {
                    self.task.session.complete_publish(ack.packet_id, outcome(ack));
                }
            }
            Packet::PubRel(ack) => {
                let mut comp = Ack::new(ack.packet_id);
                match self.task.session.release_inbound(ack.packet_id) {
                    Some(Some(publish)) => {
                        self.pending_event = Some((Event::Publish(publish), Some(Packet::PubComp(comp))));
                        return Ok(());
                    }
                    Some(None) => {}
                    None if self.version.is_v5() => comp.reason_code = ReasonCode::PacketIdentifierNotFound,
                    None => {}
                }
                self.send(&Packet::PubComp(comp))?;
            }
            Packet::SubAck(suback) => match self.task.session.take_request(suback.packet_id) {
                Some(Outstanding::Subscribe { reply, packet }) => {
                    if suback.reason_codes.len() != packet.subscriptions.len() {
                        let _ = reply.send(Err(ClientError::Protocol(
                            "SUBACK has not one reason code per subscription",
                        )));
                        return Err(ClientError::Protocol(
                            "SUBACK has not one reason code per subscription",
                        ));
                    }
                    let _ = reply.send(Ok(suback));
                }
                _ => return Err(ClientError::Protocol("SUBACK for no SUBSCRIBE")),
            },
            Packet::UnsubAck(unsuback) => match self.task.session.take_request(unsuback.packet_id) {
                Some(Outstanding::Unsubscribe { reply, .. }) => {
                    let _ = reply.send(Ok(unsuback));
                }
                _ => return Err(ClientError::Protocol("UNSUBACK for no UNSUBSCRIBE")),
            },
            Packet::PingResp => self.ping_sent = None,
            Packet::Disconnect(disconnect) => {
                self.end_after_event = Some(ClientError::ServerDisconnect(Box::new(disconnect.clone())));
                self.pending_event = Some((Event::Disconnect(disconnect), None));
            }
            Packet::ConnAck(_) => return Err(ClientError::Protocol("second CONNACK")),
            Packet::Auth(_) => return Err(ClientError::Protocol("AUTH without an authentication method")),
            _ => return Err(ClientError::Protocol("a packet only clients may send")),
        }
        Ok(())
    }

    fn handle_publish(&mut self, mut publish: Publish) -> Result<(), ClientError> {
        if let Some(alias) = publish.properties.topic_alias {
            if alias.get() > self.task.options.announced_topic_alias_maximum() {
                return Err(ClientError::Protocol("topic alias above our Topic Alias Maximum"));
            }
            if publish.topic.is_empty() {
                publish.topic = self
                    .aliases
                    .get(&alias.get())
                    .cloned()
                    .ok_or(ClientError::Protocol("unknown topic alias"))?;
            } else {
                self.aliases.insert(alias.get(), publish.topic.clone());
            }
        }
        let ack = match (publish.qos, publish.packet_id) {
            (QoS::AtMostOnce, _) => None,
            (QoS::AtLeastOnce, Some(id)) => Some(Packet::PubAck(Ack::new(id))),
            (QoS::ExactlyOnce, Some(id)) => {
                if self.task.session.has_inbound_qos2(id) {
                    // A redelivery of a message already received: acknowledge it again only.
                    return self.send(&Packet::PubRec(Ack::new(id)));
                }
                let limit = self.task.options.announced_receive_maximum();
                if self.task.session.inbound_qos2() >= usize::from(limit) {
                    return Err(ClientError::Protocol("Receive Maximum exceeded"));
                }
                if self.task.options.deliver_qos2_on_release {
                    self.task.session.receive_qos2(id, Some(publish));
                    return self.send(&Packet::PubRec(Ack::new(id)));
                }
                self.task.session.receive_qos2(id, None);
                Some(Packet::PubRec(Ack::new(id)))
            }
            _ => {
                return Err(ClientError::Protocol(
                    "QoS 1 or 2 PUBLISH without a packet identifier",
                ));
            }
        };
        // The common case: room in the queue now (this task is its only sender), so the
        // acknowledgement is queued and the event sent at once, without staging.
        if self.permit.is_none() && !self.events_closed && self.task.events.capacity() > 0 {
            if let Some(ack) = ack {
                self.send(&ack)?;
            }
            if let Err(mpsc::error::TrySendError::Closed(_)) =
                self.task.events.try_send(Event::Publish(publish))
            {
                self.events_closed = true;
            }
            return Ok(());
        }
        self.pending_event = Some((Event::Publish(publish), ack));
        Ok(())
    }
}

fn outcome(ack: Ack) -> PublishOutcome {
    PublishOutcome {
        packet_id: Some(ack.packet_id),
        reason_code: ack.reason_code,
        properties: ack.properties,
    }
}

/// The reason an MQTT 5 client gives the server for closing on an error, if it should say one.
fn disconnect_reason(error: &ClientError) -> Option<ReasonCode> {
    match error {
        ClientError::Decode(e) => Some(e.reason_code()),
        ClientError::Protocol(_) => Some(ReasonCode::ProtocolError),
        ClientError::KeepAliveTimeout => Some(ReasonCode::KeepAliveTimeout),
        _ => None,
    }
}

/// What woke the connection loop.
enum Wake {
    Read(std::io::Result<usize>),
    /// Room in the event queue (`None`: the receiver is gone).
    Room(Option<mpsc::OwnedPermit<Event>>),
    /// Bytes written (`Some`), or the stream flushed (`None`).
    Written(Option<std::io::Result<usize>>),
    /// Commands taken from the queue (0: every handle is gone).
    Commands(usize),
    Timer,
}

/// Writes what is buffered, or flushes once it is all written. `None` means flushed; a flush
/// error comes back as a failed write.
async fn write_or_flush<W: tokio::io::AsyncWrite + Unpin>(
    writer: &mut W,
    out: &mut BytesMut,
) -> Option<std::io::Result<usize>> {
    if out.is_empty() {
        match writer.flush().await {
            Ok(()) => None,
            Err(e) => Some(Err(e)),
        }
    } else {
        Some(writer.write_buf(out).await)
    }
}
