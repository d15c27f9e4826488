//! The bytes one connection has to send, already encoded for its protocol version.
//!
//! The core writes packets here; the runtime writes the buffer to the socket and drops the
//! capacity once it is empty, so an idle connection holds no buffer.

use bytes::BytesMut;
use midge_codec::{Packet, PacketId, ProtocolVersion, PublishTemplate};

/// Encoded packets waiting for one connection's socket.
#[derive(Debug)]
pub struct Outbox {
    buf: BytesMut,
    version: ProtocolVersion,
    /// Packets encoded since the runtime last took the count.
    packets: u32,
    /// The journal sequence number that must be durable before anything here is sent.
    durable_after: u64,
}

impl Outbox {
    /// An empty outbox for a connection speaking `version` (CONNECT decides it).
    pub fn new(version: ProtocolVersion) -> Self {
        Self {
            buf: BytesMut::new(),
            version,
            packets: 0,
            durable_after: 0,
        }
    }

    /// The version packets are encoded in.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    pub(crate) fn set_version(&mut self, version: ProtocolVersion) {
        self.version = version;
    }

    /// Encodes `packet` onto the end. A packet the broker built itself always encodes; if one
    /// ever does not, it is logged and skipped rather than taking the connection down.
    pub fn send(&mut self, packet: &Packet) {
        match packet.encode(self.version, &mut self.buf) {
            Ok(()) => self.packets = self.packets.wrapping_add(1),
            Err(error) => {
                tracing::error!(%error, packet = ?packet.packet_type(), "could not encode a packet; skipped");
            }
        }
    }

    /// Appends a pre-encoded PUBLISH for this receiver: its packet identifier and DUP are
    /// patched in as the head is copied, with no intermediate buffer.
    pub(crate) fn send_template(
        &mut self,
        template: &PublishTemplate,
        packet_id: Option<PacketId>,
        dup: bool,
    ) {
        template.write_to(packet_id, dup, &mut self.buf);
        self.packets = self.packets.wrapping_add(1);
    }

    /// Holds everything in the outbox (and anything added later) until journal write `seq`
    /// is durable: the reply being queued acknowledges it (`persist.rs`). 0 holds nothing.
    pub fn require_durable(&mut self, seq: u64) {
        self.durable_after = self.durable_after.max(seq);
    }

    /// The journal sequence number that must be durable before the runtime writes any of
    /// this outbox to the socket; 0 if none. It only grows.
    pub fn durable_after(&self) -> u64 {
        self.durable_after
    }

    /// The packets encoded since the last call, for the broker's counters.
    pub fn take_packet_count(&mut self) -> u64 {
        u64::from(std::mem::take(&mut self.packets))
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The buffer, for the runtime to write from (and advance).
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Frees the buffer's memory once everything was written.
    pub fn release_if_empty(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
    }
}
