//! The raw engine: publishers and subscribers on plain TCP streams, with the packets encoded
//! once and patched, and the broker's packets framed by hand.
//!
//! # Why it exists
//! A load generator measures a broker only if it costs far less than the broker per message.
//! On `midge-client` (the `client` engine) the generator spent nearly as much CPU per message
//! as Midge itself: a `Publish` built, queued and encoded per message, an `Event` per message
//! received. Sharing two cores with the broker, it then took almost half of them, and no
//! broker could show that it scales from one core to two. Here a publisher copies a
//! pre-encoded PUBLISH into a 64 KB batch and patches in the send time, publisher, sequence
//! number and packet identifier, one `write` per batch; a subscriber reads 64 KB at a time,
//! finds each PUBLISH's payload from its fixed header, topic length and (MQTT 5) property
//! length alone, reads the clock once per read, and acknowledges everything a read brought in
//! one write.
//!
//! It speaks only what the throughput scenarios need: CONNECT and SUBSCRIBE (encoded with
//! `midge-codec`), PUBLISH at QoS 0, 1 and 2 with their acknowledgements, DISCONNECT. Anything
//! else the broker sends is skipped; what it cannot frame ends the run with an error, never a
//! panic. TLS and the rest of MQTT stay with the `client` engine.

use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use midge_codec::{
    Connect, Decoder, FixedHeader, Packet, PacketId, PacketType, ProtocolVersion, Publish, QoS, ReasonCode,
    Subscribe, Subscription, SubscriptionOptions, TopicFilter, TopicName,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::measure::{HEADER, Tally};
use super::{DRAIN, Live, RecentLatency};

/// Bytes a publisher writes at once (as many whole packets as fit, at least one).
const WRITE_BATCH: usize = 64 * 1024;
/// Bytes a subscriber asks for per read.
const READ_SIZE: usize = 64 * 1024;
/// How long a write may wait for the broker to take it before the run gives up.
const WRITE_STALL: Duration = Duration::from_secs(10);
/// How long CONNECT and SUBSCRIBE may wait for their answers.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// The largest packet accepted from the broker.
const MAX_PACKET: u32 = midge_codec::PROTOCOL_MAX_PACKET_SIZE;

/// A connection whose CONNECT the broker accepted.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: TcpStream,
    /// Bytes read past the last packet taken (a SUBACK may be followed by publications).
    buf: BytesMut,
    version: ProtocolVersion,
    /// The broker's Receive Maximum (MQTT 5): QoS 1 and 2 publications it takes at once.
    receive_maximum: u16,
    /// The keep-alive interval in seconds (the broker's, if an MQTT 5 broker set one).
    keep_alive: u16,
}

impl Connection {
    /// Connects to `host:port` and sends `connect`; returns once CONNACK accepts it.
    pub(crate) async fn open(host: &str, port: u16, connect: &Connect) -> Result<Self, String> {
        let stream = tokio::time::timeout(HANDSHAKE, TcpStream::connect((host, port)))
            .await
            .map_err(|_| "no TCP connection in 10 s".to_owned())?
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let mut connection = Self {
            stream,
            buf: BytesMut::with_capacity(1024),
            version: connect.protocol,
            receive_maximum: u16::MAX,
            keep_alive: connect.keep_alive,
        };
        connection
            .send(&Packet::Connect(Box::new(connect.clone())))
            .await?;
        match connection.handshake_reply().await? {
            Packet::ConnAck(ack) if !ack.reason_code.is_error() => {
                if let Some(maximum) = ack.properties.receive_maximum {
                    connection.receive_maximum = maximum.get();
                }
                if let Some(keep_alive) = ack.properties.server_keep_alive {
                    connection.keep_alive = keep_alive;
                }
                Ok(connection)
            }
            Packet::ConnAck(ack) => Err(format!("CONNACK {:?}", ack.reason_code)),
            other => Err(format!("{:?} instead of CONNACK", other.packet_type())),
        }
    }

    /// Subscribes to `filter` at `qos`; returns once SUBACK grants it.
    pub(crate) async fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<(), String> {
        let filter = TopicFilter::new(filter).map_err(|e| format!("filter {filter:?}: {e}"))?;
        let subscribe = Subscribe {
            packet_id: PacketId::MIN,
            subscriptions: vec![Subscription {
                filter,
                options: SubscriptionOptions {
                    qos,
                    ..SubscriptionOptions::default()
                },
            }],
            properties: Default::default(),
        };
        self.send(&Packet::Subscribe(subscribe)).await?;
        match self.handshake_reply().await? {
            Packet::SubAck(ack) => match ack.reason_codes.first() {
                Some(code) if !code.is_error() => Ok(()),
                code => Err(format!("SUBACK {code:?}")),
            },
            other => Err(format!("{:?} instead of SUBACK", other.packet_type())),
        }
    }

    /// Sends DISCONNECT, giving the broker at most `patience` to take it.
    pub(crate) async fn disconnect(mut self, patience: Duration) {
        let _ = tokio::time::timeout(
            patience,
            self.send(&Packet::Disconnect(midge_codec::Disconnect::new(
                ReasonCode::Success,
            ))),
        )
        .await;
    }

    pub(crate) fn version(&self) -> ProtocolVersion {
        self.version
    }

    async fn send(&mut self, packet: &Packet) -> Result<(), String> {
        let mut bytes = BytesMut::new();
        packet
            .encode(self.version, &mut bytes)
            .map_err(|e| format!("cannot encode {:?}: {e}", packet.packet_type()))?;
        self.stream.write_all(&bytes).await.map_err(|e| e.to_string())
    }

    /// The next packet during the handshake, whole and checked by `midge-codec`.
    async fn handshake_reply(&mut self) -> Result<Packet, String> {
        let decoder = Decoder::new(self.version, MAX_PACKET);
        let deadline = tokio::time::Instant::now() + HANDSHAKE;
        loop {
            if let Some(packet) = decoder.decode(&mut self.buf).map_err(|e| e.to_string())? {
                return Ok(packet);
            }
            let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf))
                .await
                .map_err(|_| "no answer in 10 s".to_owned())?
                .map_err(|e| e.to_string())?;
            if read == 0 {
                return Err("the broker closed the connection".to_owned());
            }
        }
    }

    /// Reads more bytes into the buffer: an error if the broker closed the connection.
    async fn read_more(&mut self) -> Result<(), String> {
        if self.buf.capacity() - self.buf.len() < READ_SIZE / 2 {
            self.buf.reserve(READ_SIZE);
        }
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Err("the broker closed the connection".to_owned()),
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Reads what is already there without waiting: `Ok(false)` if nothing was.
    fn read_ready(&mut self) -> Result<bool, String> {
        if self.buf.capacity() - self.buf.len() < READ_SIZE / 2 {
            self.buf.reserve(READ_SIZE);
        }
        match self.stream.try_read_buf(&mut self.buf) {
            Ok(0) => Err("the broker closed the connection".to_owned()),
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        match tokio::time::timeout(WRITE_STALL, self.stream.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("the broker took nothing for {} s", WRITE_STALL.as_secs())),
        }
    }
}

/// A packet from the broker, as much of it as the engine needs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    Publish {
        qos: u8,
        /// 0 at QoS 0.
        packet_id: u16,
        payload: &'a [u8],
    },
    /// PUBACK, PUBREC or PUBCOMP; `reason` is 0 (success) unless an MQTT 5 broker sent one.
    Ack {
        kind: PacketType,
        packet_id: u16,
        reason: u8,
    },
    PubRel {
        packet_id: u16,
    },
    Disconnect {
        reason: u8,
    },
    /// Anything else (PINGRESP, SUBACK, AUTH...): skipped.
    Other,
}

/// What cannot be framed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Malformed {
    #[error("the broker sent a malformed packet header: {0}")]
    Header(String),
    #[error("the broker sent a PUBLISH with QoS 3")]
    Qos,
    #[error("the broker sent a PUBLISH shorter than its fields")]
    ShortPublish,
    #[error("the broker sent a {0:?} shorter than its packet identifier")]
    ShortAck(PacketType),
}

/// The packet at the front of `buf` and its length; `Ok(None)` until it is whole.
pub(crate) fn next_frame(buf: &[u8], v5: bool) -> Result<Option<(Frame<'_>, usize)>, Malformed> {
    let header = match FixedHeader::parse(buf, MAX_PACKET) {
        Ok(Some(header)) => header,
        Ok(None) => return Ok(None),
        Err(e) => return Err(Malformed::Header(e.to_string())),
    };
    let len = header.packet_len();
    let Some(body) = buf.get(header.header_len..len) else {
        return Ok(None);
    };
    let id = |kind| {
        body.get(..2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or(Malformed::ShortAck(kind))
    };
    let frame = match header.first_byte >> 4 {
        3 => {
            let qos = (header.first_byte >> 1) & 0b11;
            if qos == 3 {
                return Err(Malformed::Qos);
            }
            let topic = body.get(..2).ok_or(Malformed::ShortPublish)?;
            let mut at = 2 + usize::from(u16::from_be_bytes([topic[0], topic[1]]));
            let mut packet_id = 0;
            if qos > 0 {
                let b = body.get(at..at + 2).ok_or(Malformed::ShortPublish)?;
                packet_id = u16::from_be_bytes([b[0], b[1]]);
                at += 2;
            }
            if v5 {
                let (properties, width) =
                    read_varint(body.get(at..).unwrap_or_default()).ok_or(Malformed::ShortPublish)?;
                at += width + properties;
            }
            let payload = body.get(at..).ok_or(Malformed::ShortPublish)?;
            Frame::Publish {
                qos,
                packet_id,
                payload,
            }
        }
        4 | 5 | 7 => {
            let kind = match header.first_byte >> 4 {
                4 => PacketType::PubAck,
                5 => PacketType::PubRec,
                _ => PacketType::PubComp,
            };
            Frame::Ack {
                kind,
                packet_id: id(kind)?,
                reason: body.get(2).copied().unwrap_or(0),
            }
        }
        6 => Frame::PubRel {
            packet_id: id(PacketType::PubRel)?,
        },
        14 => Frame::Disconnect {
            reason: body.first().copied().unwrap_or(0),
        },
        _ => Frame::Other,
    };
    Ok(Some((frame, len)))
}

/// A Variable Byte Integer (§1.5.5) and its width; `None` if cut short or over four bytes.
fn read_varint(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, &byte) in bytes.iter().take(4).enumerate() {
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Appends a two-byte acknowledgement (PUBACK, PUBREC, PUBREL or PUBCOMP: `first_byte`).
fn push_ack(out: &mut Vec<u8>, first_byte: u8, packet_id: u16) {
    let [high, low] = packet_id.to_be_bytes();
    out.extend_from_slice(&[first_byte, 2, high, low]);
}

const PUBACK: u8 = 0x40;
const PUBREC: u8 = 0x50;
const PUBREL: u8 = 0x62;
const PUBCOMP: u8 = 0x70;
const PINGREQ: u8 = 0xc0;

/// A PUBLISH encoded once, with where its packet identifier and payload header go.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    bytes: Vec<u8>,
    /// Offset of the packet identifier (QoS 1 and 2).
    packet_id_at: Option<usize>,
    payload_at: usize,
}

impl Template {
    /// `topic`'s PUBLISH at `qos` for `version`, with a payload of `size` bytes (at least the
    /// bench header), padded as `PayloadMaker` pads it.
    pub(crate) fn new(
        topic: TopicName,
        qos: QoS,
        size: usize,
        version: ProtocolVersion,
    ) -> Result<Self, String> {
        let size = size.max(HEADER);
        let mut payload = vec![b'm'; size];
        payload[..HEADER].fill(0);
        let mut publish = Publish::new(topic, payload);
        publish.qos = qos;
        publish.packet_id = (qos != QoS::AtMostOnce).then_some(PacketId::MIN);
        let mut bytes = BytesMut::new();
        publish
            .encode(version, &mut bytes)
            .map_err(|e| format!("cannot encode the PUBLISH: {e}"))?;
        let header = FixedHeader::parse(&bytes, u32::MAX)
            .ok()
            .flatten()
            .ok_or("the PUBLISH encoded has no header")?;
        let topic_len = usize::from(u16::from_be_bytes([
            bytes[header.header_len],
            bytes[header.header_len + 1],
        ]));
        Ok(Self {
            packet_id_at: publish.packet_id.map(|_| header.header_len + 2 + topic_len),
            payload_at: bytes.len() - size,
            bytes: bytes.to_vec(),
        })
    }

    /// Appends the packet with its fields filled in.
    fn write_to(&self, out: &mut Vec<u8>, sent: Duration, publisher: u64, sequence: u64, packet_id: u16) {
        let at = out.len();
        out.extend_from_slice(&self.bytes);
        let packet = &mut out[at..];
        let payload = &mut packet[self.payload_at..self.payload_at + HEADER];
        payload[..8].copy_from_slice(&(sent.as_nanos() as u64).to_be_bytes());
        payload[8..16].copy_from_slice(&publisher.to_be_bytes());
        payload[16..24].copy_from_slice(&sequence.to_be_bytes());
        if let Some(id_at) = self.packet_id_at {
            packet[id_at..id_at + 2].copy_from_slice(&packet_id.to_be_bytes());
        }
    }
}

/// Packet identifiers of the publications not yet acknowledged.
struct Inflight {
    /// Indexed by packet identifier.
    waiting: Vec<bool>,
    count: usize,
    next: u16,
}

impl Inflight {
    fn new() -> Self {
        Self {
            waiting: vec![false; 1 << 16],
            count: 0,
            next: 0,
        }
    }

    /// A free packet identifier, now taken. There must be one: `count` below 65535.
    fn take(&mut self) -> u16 {
        loop {
            self.next = self.next.wrapping_add(1).max(1);
            if !self.waiting[usize::from(self.next)] {
                self.waiting[usize::from(self.next)] = true;
                self.count += 1;
                return self.next;
            }
        }
    }

    /// Frees `packet_id`: false if it was not taken.
    fn release(&mut self, packet_id: u16) -> bool {
        let slot = &mut self.waiting[usize::from(packet_id)];
        if !*slot {
            return false;
        }
        *slot = false;
        self.count -= 1;
        true
    }
}

/// What one publisher does.
#[derive(Debug, Clone)]
pub(crate) struct Publisher {
    pub(crate) template: Template,
    /// Its number in the payloads, from 1.
    pub(crate) number: u64,
    pub(crate) qos: QoS,
    /// Messages per second; 0 is flat out.
    pub(crate) rate: u64,
    pub(crate) inflight: usize,
}

impl Publisher {
    /// Publishes from sequence 1 until `window.1` after `start` (or until the run fails), then
    /// waits up to [`DRAIN`] for the acknowledgements. Returns the connection and how many it
    /// sent; an error also goes to `live`.
    pub(crate) async fn run(
        &self,
        mut connection: Connection,
        start: Instant,
        window: (Duration, Duration),
        live: &Live,
    ) -> (Connection, u64) {
        let mut sent = 0;
        if let Err(error) = self
            .publish(&mut connection, start, window, live, &mut sent)
            .await
        {
            live.fail(format!("publisher {}: {error}", self.number));
        }
        (connection, sent)
    }

    async fn publish(
        &self,
        connection: &mut Connection,
        start: Instant,
        window: (Duration, Duration),
        live: &Live,
        sequence: &mut u64,
    ) -> Result<(), String> {
        let packet_len = self.template.bytes.len();
        let per_batch = (WRITE_BATCH / packet_len).max(1);
        let mut out = Vec::with_capacity(per_batch * packet_len);
        let acknowledged = self.qos != QoS::AtMostOnce;
        // At most the broker's Receive Maximum, and one identifier always free.
        let window_size = self
            .inflight
            .min(usize::from(connection.receive_maximum))
            .clamp(1, usize::from(u16::MAX) - 1);
        // A full window is refilled a quarter at a time, not one message per acknowledgement.
        let refill = window_size.div_ceil(4);
        let mut inflight = Inflight::new();
        // Messages a rate-limited publisher sends in all: those due before the window ends.
        let total = (window.1.as_secs_f64() * self.rate as f64).ceil() as u64;
        let end = start + window.1;
        loop {
            if live.failed() {
                return Ok(());
            }
            let now = Instant::now();
            // At a rate, every message due before the end is sent, even if late (a publisher
            // woken after the end still sends the last one); flat out, it stops at the end.
            let done = if self.rate > 0 {
                *sequence >= total || now >= end + DRAIN
            } else {
                now >= end
            };
            if done {
                break;
            }
            let elapsed = now.duration_since(start);
            let mut batch = per_batch;
            if self.rate > 0 {
                // Message s is due (s - 1) / rate seconds after the start.
                let due = ((elapsed.as_secs_f64() * self.rate as f64) as u64 + 1).min(total);
                if due <= *sequence {
                    let next = start + Duration::from_secs_f64(*sequence as f64 / self.rate as f64);
                    tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
                    continue;
                }
                batch = batch.min((due - *sequence) as usize);
            }
            if acknowledged {
                let room = window_size - inflight.count;
                if room < refill {
                    self.take_acks(connection, &mut inflight, live, Instant::now() + DRAIN)
                        .await?;
                    continue;
                }
                batch = batch.min(room);
            }
            out.clear();
            for _ in 0..batch {
                *sequence += 1;
                let packet_id = if acknowledged { inflight.take() } else { 0 };
                self.template
                    .write_to(&mut out, elapsed, self.number, *sequence, packet_id);
            }
            connection.write(&out).await?;
            live.sent
                .fetch_add(batch as u64, std::sync::atomic::Ordering::Relaxed);
            if elapsed >= window.0 && elapsed < window.1 {
                live.sent_in_window
                    .fetch_add(batch as u64, std::sync::atomic::Ordering::Relaxed);
            }
            if acknowledged && connection.read_ready()? {
                self.handle_acks(connection, &mut inflight, live).await?;
            }
            // Let the other connections on this thread run.
            tokio::task::yield_now().await;
        }
        let until = Instant::now() + DRAIN;
        while inflight.count > 0 && !live.failed() {
            self.take_acks(connection, &mut inflight, live, until).await?;
        }
        Ok(())
    }

    /// Waits for at least one read from the broker (until `deadline`) and handles its
    /// acknowledgements.
    async fn take_acks(
        &self,
        connection: &mut Connection,
        inflight: &mut Inflight,
        live: &Live,
        deadline: Instant,
    ) -> Result<(), String> {
        tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), connection.read_more())
            .await
            .map_err(|_| {
                format!(
                    "{} publications unacknowledged after {} s",
                    inflight.count,
                    DRAIN.as_secs()
                )
            })??;
        self.handle_acks(connection, inflight, live).await
    }

    /// Handles the whole packets read so far; answers PUBRECs with PUBRELs at once.
    async fn handle_acks(
        &self,
        connection: &mut Connection,
        inflight: &mut Inflight,
        live: &Live,
    ) -> Result<(), String> {
        let v5 = connection.version.is_v5();
        let mut replies = Vec::new();
        let (mut acked, mut refused) = (0, 0);
        let mut taken = 0;
        while let Some((frame, len)) = next_frame(&connection.buf[taken..], v5).map_err(|e| e.to_string())? {
            taken += len;
            let completes = match (frame, self.qos) {
                (
                    Frame::Ack {
                        kind: PacketType::PubAck,
                        packet_id,
                        reason,
                    },
                    QoS::AtLeastOnce,
                )
                | (
                    Frame::Ack {
                        kind: PacketType::PubComp,
                        packet_id,
                        reason,
                    },
                    QoS::ExactlyOnce,
                ) => Some((packet_id, reason)),
                (
                    Frame::Ack {
                        kind: PacketType::PubRec,
                        packet_id,
                        reason,
                    },
                    QoS::ExactlyOnce,
                ) => {
                    if reason >= 0x80 {
                        Some((packet_id, reason))
                    } else {
                        push_ack(&mut replies, PUBREL, packet_id);
                        None
                    }
                }
                (Frame::Disconnect { reason }, _) => {
                    return Err(format!("the broker sent DISCONNECT (reason {reason:#04x})"));
                }
                (Frame::Ack { kind, packet_id, .. }, _) => {
                    return Err(format!("unexpected {kind:?} for {packet_id}"));
                }
                _ => None,
            };
            if let Some((packet_id, reason)) = completes {
                if !inflight.release(packet_id) {
                    return Err(format!("acknowledgement of {packet_id}, which is not in flight"));
                }
                if reason >= 0x80 {
                    refused += 1;
                } else {
                    acked += 1;
                }
            }
        }
        connection.buf.advance(taken);
        live.acked.fetch_add(acked, std::sync::atomic::Ordering::Relaxed);
        live.errors
            .fetch_add(refused, std::sync::atomic::Ordering::Relaxed);
        if !replies.is_empty() {
            connection.write(&replies).await?;
        }
        Ok(())
    }
}

/// One subscriber's loop: records every message until told to stop, reading the clock once
/// per read. An error (the connection lost, a malformed packet) goes to `live` and ends it.
pub(crate) async fn receive(
    mut connection: Connection,
    number: usize,
    start: Instant,
    window: (Duration, Duration),
    live: &Live,
    mut stop: watch::Receiver<bool>,
    show_progress: bool,
) -> (Connection, Tally) {
    let mut tally = Tally::new();
    let mut recent = RecentLatency::new(show_progress);
    let v5 = connection.version.is_v5();
    let mut replies = Vec::new();
    let ping_every = match connection.keep_alive {
        0 => Duration::from_secs(3600),
        seconds => Duration::from_secs(u64::from(seconds)) / 2,
    };
    let mut last_write = Instant::now();
    // Whatever followed the SUBACK is handled before the first read.
    let mut read = Ok(());
    loop {
        if let Err(error) = read {
            live.fail(format!("subscriber {number}: {error}"));
            break;
        }
        let now = Instant::now();
        let received_at = now.duration_since(start);
        let mut received = 0;
        let mut taken = 0;
        loop {
            let (frame, len) = match next_frame(&connection.buf[taken..], v5) {
                Ok(Some(next)) => next,
                Ok(None) => break,
                Err(error) => {
                    live.fail(format!("subscriber {number}: {error}"));
                    return (connection, tally);
                }
            };
            taken += len;
            match frame {
                Frame::Publish {
                    qos,
                    packet_id,
                    payload,
                } => {
                    received += 1;
                    tally.record(payload, received_at, window);
                    recent.record(payload, received_at);
                    match qos {
                        1 => push_ack(&mut replies, PUBACK, packet_id),
                        2 => push_ack(&mut replies, PUBREC, packet_id),
                        _ => {}
                    }
                }
                Frame::PubRel { packet_id } => push_ack(&mut replies, PUBCOMP, packet_id),
                Frame::Disconnect { reason } => {
                    live.fail(format!(
                        "subscriber {number}: the broker sent DISCONNECT (reason {reason:#04x})"
                    ));
                    return (connection, tally);
                }
                Frame::Ack { .. } | Frame::Other => {}
            }
        }
        connection.buf.advance(taken);
        live.received
            .fetch_add(received, std::sync::atomic::Ordering::Relaxed);
        recent.flush(now, live);
        if !replies.is_empty() {
            if let Err(error) = connection.write(&replies).await {
                live.fail(format!("subscriber {number}: {error}"));
                break;
            }
            replies.clear();
        }
        if !replies.is_empty() {
            last_write = now;
        }
        read = tokio::select! {
            biased;
            _ = stop.changed() => break,
            read = connection.read_more() => read,
            // A QoS 0 subscriber writes nothing: it pings within the keep-alive interval.
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(last_write + ping_every)) => {
                last_write = Instant::now();
                connection.write(&[PINGREQ, 0]).await
            }
        };
    }
    (connection, tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(publish: &Publish, version: ProtocolVersion) -> Vec<u8> {
        let mut bytes = BytesMut::new();
        publish
            .encode(version, &mut bytes)
            .unwrap_or_else(|e| panic!("{e}"));
        bytes.to_vec()
    }

    #[test]
    fn a_template_filled_in_decodes_as_the_publish_with_that_payload() {
        for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                let topic = TopicName::new("bench/7").unwrap_or_else(|e| panic!("{e}"));
                let template = Template::new(topic, qos, 64, version).unwrap_or_else(|e| panic!("{e}"));
                let mut out = Vec::new();
                template.write_to(&mut out, Duration::from_nanos(1234), 7, 99, 513);
                let mut buf = BytesMut::from(&out[..]);
                let Ok(Some(Packet::Publish(publish))) = Decoder::new(version, MAX_PACKET).decode(&mut buf)
                else {
                    panic!("{version:?} {qos:?}: not a PUBLISH");
                };
                assert_eq!(publish.qos, qos);
                assert_eq!(
                    publish.packet_id.map(PacketId::get),
                    (qos != QoS::AtMostOnce).then_some(513)
                );
                assert_eq!(publish.payload.len(), 64);
                assert_eq!(
                    super::super::measure::read_header(&publish.payload),
                    Some((1234, 7, 99))
                );
                assert!(publish.payload[HEADER..].iter().all(|&b| b == b'm'));
                let (frame, len) = next_frame(&out, version.is_v5())
                    .unwrap_or_else(|e| panic!("{e}"))
                    .unwrap_or_else(|| panic!("incomplete"));
                assert_eq!(len, out.len());
                assert_eq!(
                    frame,
                    Frame::Publish {
                        qos: qos.as_u8(),
                        packet_id: if qos == QoS::AtMostOnce { 0 } else { 513 },
                        payload: &publish.payload[..],
                    }
                );
            }
        }
    }

    #[test]
    fn publish_properties_are_skipped_to_find_the_payload() {
        let mut publish = Publish::new(TopicName::new("a/b").unwrap_or_else(|e| panic!("{e}")), "payload");
        publish.qos = QoS::AtLeastOnce;
        publish.packet_id = PacketId::new(9);
        publish.properties.message_expiry_interval = Some(60);
        publish.properties.content_type = Some("text/plain".into());
        let bytes = encoded(&publish, ProtocolVersion::V5);
        let (frame, _) = next_frame(&bytes, true)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no frame"));
        assert_eq!(
            frame,
            Frame::Publish {
                qos: 1,
                packet_id: 9,
                payload: b"payload"
            }
        );
    }

    #[test]
    fn a_packet_cut_anywhere_is_incomplete_until_it_is_whole() {
        let publish = Publish::new(
            TopicName::new("t").unwrap_or_else(|e| panic!("{e}")),
            vec![7u8; 300],
        );
        let mut bytes = encoded(&publish, ProtocolVersion::V311);
        bytes.extend_from_slice(&[0x40, 2, 0, 5]);
        let first = bytes.len() - 4;
        for cut in 0..first {
            assert_eq!(next_frame(&bytes[..cut], false), Ok(None), "cut at {cut}");
        }
        let (_, len) = next_frame(&bytes, false)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no frame"));
        assert_eq!(len, first);
        assert_eq!(
            next_frame(&bytes[first..], false),
            Ok(Some((
                Frame::Ack {
                    kind: PacketType::PubAck,
                    packet_id: 5,
                    reason: 0
                },
                4
            )))
        );
    }

    #[test]
    fn malformed_packets_are_errors_not_panics() {
        // QoS 3; a topic longer than the packet; an identifier cut short; a PUBACK without one;
        // MQTT 5 properties longer than the packet; a Remaining Length over four bytes.
        let cases: [&[u8]; 6] = [
            &[0x36, 2, 0, 0],
            &[0x30, 3, 0, 9, b'a'],
            &[0x32, 3, 0, 1, b'a'],
            &[0x40, 1, 0],
            &[0x30, 4, 0, 1, b'a', 0x80],
            &[0x30, 0xff, 0xff, 0xff, 0xff, 0x7f],
        ];
        for bytes in cases {
            assert!(next_frame(bytes, true).is_err(), "{bytes:?}");
        }
        // Every byte string of up to three bytes, and a few longer ones, frame or fail cleanly.
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                for c in [0u8, 1, 2, 0x7f, 0x80, 0xff] {
                    let _ = next_frame(&[a, b, c], true);
                    let _ = next_frame(&[a, b, c, 0, 0, 0, 0], false);
                }
            }
        }
    }

    #[test]
    fn packet_identifiers_in_flight_are_never_handed_out_twice() {
        let mut inflight = Inflight::new();
        let first = inflight.take();
        let taken: Vec<u16> = (0..65534).map(|_| inflight.take()).collect();
        assert!(inflight.release(taken[10]));
        assert!(!inflight.release(taken[10]), "released twice");
        // The only free identifier is the one released, whatever the cursor says.
        assert_eq!(inflight.take(), taken[10]);
        assert!(inflight.release(first));
        assert_eq!(inflight.take(), first);
        assert_eq!(inflight.count, 65535);
    }
}
