//! The bytes one connection has to send, already encoded for its protocol version.
//!
//! The core writes packets here; the runtime writes the buffer to the socket and drops the
//! capacity once it is empty, so an idle connection holds no buffer.

use bytes::BytesMut;
use midge_codec::{Packet, ProtocolVersion};

/// Encoded packets waiting for one connection's socket.
#[derive(Debug)]
pub struct Outbox {
    buf: BytesMut,
    version: ProtocolVersion,
}

impl Outbox {
    /// An empty outbox for a connection speaking `version` (CONNECT decides it).
    pub fn new(version: ProtocolVersion) -> Self {
        Self {
            buf: BytesMut::new(),
            version,
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
        if let Err(error) = packet.encode(self.version, &mut self.buf) {
            tracing::error!(%error, packet = ?packet.packet_type(), "could not encode a packet; skipped");
        }
    }

    pub(crate) fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
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
