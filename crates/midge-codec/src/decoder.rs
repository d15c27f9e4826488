//! Incremental framing: pulls whole packets off the front of a connection's read buffer.
//!
//! The [`Decoder`] holds what decoding depends on between packets: the protocol version (set by
//! the server once CONNECT is accepted, or by a client when it connects) and the largest packet
//! the receiver accepts. Given a partial buffer it answers "not yet" and consumes nothing; a
//! packet whose fixed header declares more than the maximum is refused before its body arrives.

use bytes::{Buf, BytesMut};

use crate::error::DecodeError;
use crate::packet::{FixedHeader, Packet, decode_body};
use crate::types::ProtocolVersion;

/// The largest packet the protocol can express: a five-byte fixed header and the largest
/// Remaining Length.
pub const PROTOCOL_MAX_PACKET_SIZE: u32 = 5 + crate::wire::VARINT_MAX;

/// Decodes packets one at a time from a growing buffer.
#[derive(Debug, Clone)]
pub struct Decoder {
    version: ProtocolVersion,
    max_packet_size: u32,
}

impl Decoder {
    /// A decoder for `version` that refuses packets larger than `max_packet_size` bytes, fixed
    /// header included.
    pub fn new(version: ProtocolVersion, max_packet_size: u32) -> Self {
        Self {
            version,
            max_packet_size,
        }
    }

    /// The protocol version packets other than CONNECT are decoded in.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// Switches version, as a server does once it has accepted a CONNECT.
    pub fn set_version(&mut self, version: ProtocolVersion) {
        self.version = version;
    }

    /// The largest packet accepted.
    pub fn max_packet_size(&self) -> u32 {
        self.max_packet_size
    }

    /// Changes the largest packet accepted.
    pub fn set_max_packet_size(&mut self, max_packet_size: u32) {
        self.max_packet_size = max_packet_size;
    }

    /// How many bytes `buf` must hold for the packet at its front to be whole: `Ok(None)` while
    /// the fixed header itself is incomplete. Lets a reader size its buffer once.
    pub fn packet_len(&self, buf: &[u8]) -> Result<Option<usize>, DecodeError> {
        Ok(FixedHeader::parse(buf, self.max_packet_size)?.map(|header| header.packet_len()))
    }

    /// Takes the next whole packet off the front of `buf`. `Ok(None)`: more bytes are needed,
    /// and `buf` is untouched. The packet's topic and payload share `buf`'s memory.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let Some(header) = FixedHeader::parse(buf, self.max_packet_size)? else {
            return Ok(None);
        };
        if buf.len() < header.packet_len() {
            return Ok(None);
        }
        let mut body = buf.split_to(header.packet_len()).freeze();
        // `advance`, not `slice`: a slice would take a second reference and drop the first.
        body.advance(header.header_len);
        decode_body(header.first_byte, body, self.version).map(Some)
    }
}

impl Default for Decoder {
    /// MQTT 3.1.1 with the protocol's own size limit.
    fn default() -> Self {
        Self::new(ProtocolVersion::V311, PROTOCOL_MAX_PACKET_SIZE)
    }
}
