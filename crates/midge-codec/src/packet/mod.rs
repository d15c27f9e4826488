//! The fifteen MQTT control packets (§2.1, §3): one type model for MQTT 3.1, 3.1.1 and 5.0.
//!
//! Each packet owns a file that decodes its variable header and payload from a [`Reader`] and
//! writes them to a [`Sink`]. This module owns the fixed header: packet type, reserved flag bits
//! (§2.1.3), and framing a complete packet from its Remaining Length. Fields that only MQTT 5 has
//! (properties, reason codes) are present in every version's value and are empty or `Success`
//! when the version has none; encoding for 3.1.1 leaves them out.

mod ack;
mod auth;
mod connack;
mod connect;
mod disconnect;
mod publish;
mod suback;
mod subscribe;
mod unsuback;
mod unsubscribe;

pub use ack::Ack;
pub use auth::Auth;
pub use connack::ConnAck;
pub use connect::{Connect, Will};
pub use disconnect::Disconnect;
pub use publish::{Publish, PublishParts, PublishTemplate};
pub use suback::SubAck;
pub use subscribe::{Subscribe, Subscription, SubscriptionOptions};
pub use unsuback::UnsubAck;
pub use unsubscribe::Unsubscribe;

use bytes::{Buf, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::reason::ReasonCode;
use crate::types::{PacketId, ProtocolVersion};
use crate::wire::{Counter, Reader, Sink, VARINT_MAX, VarInt, read_varint, varint_len};

/// The control packet types of §2.1.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    /// 1: client request to connect.
    Connect = 1,
    /// 2: connect acknowledgement.
    ConnAck = 2,
    /// 3: publish message.
    Publish = 3,
    /// 4: publish acknowledgement (QoS 1).
    PubAck = 4,
    /// 5: publish received (QoS 2 part 1).
    PubRec = 5,
    /// 6: publish release (QoS 2 part 2).
    PubRel = 6,
    /// 7: publish complete (QoS 2 part 3).
    PubComp = 7,
    /// 8: subscribe request.
    Subscribe = 8,
    /// 9: subscribe acknowledgement.
    SubAck = 9,
    /// 10: unsubscribe request.
    Unsubscribe = 10,
    /// 11: unsubscribe acknowledgement.
    UnsubAck = 11,
    /// 12: ping request.
    PingReq = 12,
    /// 13: ping response.
    PingResp = 13,
    /// 14: disconnect notification.
    Disconnect = 14,
    /// 15: authentication exchange (MQTT 5 only).
    Auth = 15,
}

impl PacketType {
    /// The packet type of the first byte's upper nibble, in a given version.
    fn from_nibble(nibble: u8, version: ProtocolVersion) -> Result<Self, DecodeError> {
        Ok(match nibble {
            1 => Self::Connect,
            2 => Self::ConnAck,
            3 => Self::Publish,
            4 => Self::PubAck,
            5 => Self::PubRec,
            6 => Self::PubRel,
            7 => Self::PubComp,
            8 => Self::Subscribe,
            9 => Self::SubAck,
            10 => Self::Unsubscribe,
            11 => Self::UnsubAck,
            12 => Self::PingReq,
            13 => Self::PingResp,
            14 => Self::Disconnect,
            15 if version.is_v5() => Self::Auth,
            other => return Err(DecodeError::ReservedPacketType(other)),
        })
    }

    /// The flag nibble every packet but PUBLISH must carry [MQTT-2.1.3-1].
    fn required_flags(self) -> u8 {
        match self {
            Self::PubRel | Self::Subscribe | Self::Unsubscribe => 0b0010,
            _ => 0,
        }
    }
}

/// A decoded control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Packet {
    /// CONNECT.
    Connect(Box<Connect>),
    /// CONNACK.
    ConnAck(ConnAck),
    /// PUBLISH.
    Publish(Publish),
    /// PUBACK.
    PubAck(Ack),
    /// PUBREC.
    PubRec(Ack),
    /// PUBREL.
    PubRel(Ack),
    /// PUBCOMP.
    PubComp(Ack),
    /// SUBSCRIBE.
    Subscribe(Subscribe),
    /// SUBACK.
    SubAck(SubAck),
    /// UNSUBSCRIBE.
    Unsubscribe(Unsubscribe),
    /// UNSUBACK.
    UnsubAck(UnsubAck),
    /// PINGREQ.
    PingReq,
    /// PINGRESP.
    PingResp,
    /// DISCONNECT.
    Disconnect(Disconnect),
    /// AUTH (MQTT 5).
    Auth(Auth),
}

impl Packet {
    /// The packet's type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Self::Connect(_) => PacketType::Connect,
            Self::ConnAck(_) => PacketType::ConnAck,
            Self::Publish(_) => PacketType::Publish,
            Self::PubAck(_) => PacketType::PubAck,
            Self::PubRec(_) => PacketType::PubRec,
            Self::PubRel(_) => PacketType::PubRel,
            Self::PubComp(_) => PacketType::PubComp,
            Self::Subscribe(_) => PacketType::Subscribe,
            Self::SubAck(_) => PacketType::SubAck,
            Self::Unsubscribe(_) => PacketType::Unsubscribe,
            Self::UnsubAck(_) => PacketType::UnsubAck,
            Self::PingReq => PacketType::PingReq,
            Self::PingResp => PacketType::PingResp,
            Self::Disconnect(_) => PacketType::Disconnect,
            Self::Auth(_) => PacketType::Auth,
        }
    }

    /// Appends the packet, encoded for `version`, to `buf`.
    ///
    /// Inlined, with PUBLISH (the hot path) encoded in place and the other packets in a function
    /// of their own: inlined into one function with all the others, the PUBLISH encoder's small
    /// fixed-size copies were left as calls, and a small PUBLISH took 241 instructions, not 127.
    #[inline]
    pub fn encode(&self, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
        match self {
            Self::Publish(p) => p.encode(version, buf),
            _ => self.encode_other(version, buf),
        }
    }

    /// [`encode`](Self::encode) for the packets other than PUBLISH.
    #[inline(never)]
    fn encode_other(&self, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
        match self {
            Self::Connect(p) => encode(p.as_ref(), version, buf),
            Self::ConnAck(p) => encode(p, version, buf),
            Self::Publish(p) => p.encode_out_of_line(version, buf),
            Self::PubAck(p) => encode(&(PacketType::PubAck, p), version, buf),
            Self::PubRec(p) => encode(&(PacketType::PubRec, p), version, buf),
            Self::PubRel(p) => encode(&(PacketType::PubRel, p), version, buf),
            Self::PubComp(p) => encode(&(PacketType::PubComp, p), version, buf),
            Self::Subscribe(p) => encode(p, version, buf),
            Self::SubAck(p) => encode(p, version, buf),
            Self::Unsubscribe(p) => encode(p, version, buf),
            Self::UnsubAck(p) => encode(p, version, buf),
            Self::PingReq => encode(&PacketType::PingReq, version, buf),
            Self::PingResp => encode(&PacketType::PingResp, version, buf),
            Self::Disconnect(p) => encode(p, version, buf),
            Self::Auth(p) => encode(p, version, buf),
        }
    }

    /// The packet's size on the wire for `version`, fixed header included.
    pub fn encoded_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        match self {
            Self::Connect(p) => encoded_len(p.as_ref(), version),
            Self::ConnAck(p) => encoded_len(p, version),
            Self::Publish(p) => p.encoded_len(version),
            Self::PubAck(p) => encoded_len(&(PacketType::PubAck, p), version),
            Self::PubRec(p) => encoded_len(&(PacketType::PubRec, p), version),
            Self::PubRel(p) => encoded_len(&(PacketType::PubRel, p), version),
            Self::PubComp(p) => encoded_len(&(PacketType::PubComp, p), version),
            Self::Subscribe(p) => encoded_len(p, version),
            Self::SubAck(p) => encoded_len(p, version),
            Self::Unsubscribe(p) => encoded_len(p, version),
            Self::UnsubAck(p) => encoded_len(p, version),
            Self::PingReq => encoded_len(&PacketType::PingReq, version),
            Self::PingResp => encoded_len(&PacketType::PingResp, version),
            Self::Disconnect(p) => encoded_len(p, version),
            Self::Auth(p) => encoded_len(p, version),
        }
    }
}

/// The fixed header of a packet (§2.1): the first byte and the Remaining Length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    /// The first byte: packet type in the upper nibble, flags in the lower.
    pub first_byte: u8,
    /// The Remaining Length.
    pub remaining_len: u32,
    /// Bytes the fixed header itself takes (2 to 5).
    pub header_len: usize,
}

impl FixedHeader {
    /// Reads a fixed header from the front of `buf`. `Ok(None)` means the buffer ends inside the
    /// header. A packet larger than `max_packet_size` (header included) is refused here, before
    /// any of its body is buffered.
    pub fn parse(buf: &[u8], max_packet_size: u32) -> Result<Option<Self>, DecodeError> {
        let Some((&first_byte, rest)) = buf.split_first() else {
            return Ok(None);
        };
        match read_varint(rest)? {
            VarInt::Incomplete => Ok(None),
            VarInt::Complete(remaining_len, len) => {
                let header = Self {
                    first_byte,
                    remaining_len,
                    header_len: 1 + len,
                };
                let size = header.packet_len() as u64;
                if size > u64::from(max_packet_size) {
                    return Err(DecodeError::PacketTooLarge {
                        size,
                        max: max_packet_size,
                    });
                }
                Ok(Some(header))
            }
        }
    }

    /// The whole packet's size: header and Remaining Length.
    pub fn packet_len(&self) -> usize {
        self.header_len + self.remaining_len as usize
    }
}

/// Decodes one complete packet (fixed header included) that is known to be whole, in `version`.
/// CONNECT is decoded whatever `version` says, since it carries its own.
pub fn decode_packet(frame: Bytes, version: ProtocolVersion) -> Result<Packet, DecodeError> {
    let header = FixedHeader::parse(&frame, u32::MAX)?.ok_or(DecodeError::Truncated {
        field: "fixed header",
    })?;
    if frame.len() != header.packet_len() {
        return Err(DecodeError::Truncated { field: "packet" });
    }
    let mut body = frame;
    body.advance(header.header_len);
    decode_body(header.first_byte, body, version)
}

/// Decodes a packet's body given its first byte.
pub(crate) fn decode_body(
    first_byte: u8,
    body: Bytes,
    version: ProtocolVersion,
) -> Result<Packet, DecodeError> {
    let packet_type = PacketType::from_nibble(first_byte >> 4, version)?;
    let flags = first_byte & 0x0F;
    // MQTT 3.1 senders set DUP and QoS bits on PUBREL, SUBSCRIBE and UNSUBSCRIBE retries;
    // Mosquitto accepts them, and so do we. From 3.1.1 on the flags are fixed.
    let lenient = version == ProtocolVersion::V31 && packet_type.required_flags() != 0;
    if packet_type != PacketType::Publish && flags != packet_type.required_flags() && !lenient {
        return Err(DecodeError::InvalidHeaderFlags {
            packet: packet_type,
            flags,
        });
    }
    Ok(match packet_type {
        PacketType::Connect => Packet::Connect(Box::new(read_body(body, packet_type, Connect::decode)?)),
        PacketType::ConnAck => {
            Packet::ConnAck(read_body(body, packet_type, |r| ConnAck::decode(r, version))?)
        }
        PacketType::Publish => Packet::Publish(read_body(body, packet_type, |r| {
            Publish::decode(flags, r, version)
        })?),
        PacketType::PubAck | PacketType::PubRec | PacketType::PubRel | PacketType::PubComp => {
            let ack = read_body(body, packet_type, |r| Ack::decode(packet_type, r, version))?;
            match packet_type {
                PacketType::PubAck => Packet::PubAck(ack),
                PacketType::PubRec => Packet::PubRec(ack),
                PacketType::PubRel => Packet::PubRel(ack),
                _ => Packet::PubComp(ack),
            }
        }
        PacketType::Subscribe => {
            Packet::Subscribe(read_body(body, packet_type, |r| Subscribe::decode(r, version))?)
        }
        PacketType::SubAck => Packet::SubAck(read_body(body, packet_type, |r| SubAck::decode(r, version))?),
        PacketType::Unsubscribe => {
            Packet::Unsubscribe(read_body(body, packet_type, |r| Unsubscribe::decode(r, version))?)
        }
        PacketType::UnsubAck => {
            Packet::UnsubAck(read_body(body, packet_type, |r| UnsubAck::decode(r, version))?)
        }
        PacketType::PingReq => {
            read_body(body, packet_type, |_| Ok(()))?;
            Packet::PingReq
        }
        PacketType::PingResp => {
            read_body(body, packet_type, |_| Ok(()))?;
            Packet::PingResp
        }
        PacketType::Disconnect => {
            Packet::Disconnect(read_body(body, packet_type, |r| Disconnect::decode(r, version))?)
        }
        PacketType::Auth => Packet::Auth(read_body(body, packet_type, Auth::decode)?),
    })
}

/// Decodes one packet's body with `decode` and checks that nothing is left over. Each packet
/// type gets a reader of its own: PUBLISH's, with everything it calls inlined, then lives in
/// registers rather than in memory shared with the other packet types' decoders.
#[inline(always)]
fn read_body<P>(
    body: Bytes,
    packet: PacketType,
    decode: impl FnOnce(&mut Reader) -> Result<P, DecodeError>,
) -> Result<P, DecodeError> {
    let mut reader = Reader::new(body);
    let value = decode(&mut reader)?;
    reader.finish(packet)?;
    Ok(value)
}

/// What each packet type knows about its own wire form; the fixed header is written here.
pub(crate) trait Encode {
    /// The first byte: type and flags.
    fn first_byte(&self) -> u8;
    /// Writes the variable header and payload.
    fn write_body<S: Sink>(&self, version: ProtocolVersion, sink: &mut S) -> Result<(), EncodeError>;
}

/// Appends a packet to `buf`: one dry run measures the body, `buf` grows once, then the packet
/// is written. (PUBLISH, the hot path, adds its sizes up instead: [`Publish::encode`].)
pub(crate) fn encode<P: Encode>(
    packet: &P,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    let body_len = body_len(packet, version)?;
    buf.reserve(1 + varint_len(body_len) + body_len as usize);
    buf.put_u8(packet.first_byte());
    buf.put_varint(body_len);
    packet.write_body(version, buf)
}

/// A packet's size on the wire, fixed header included.
fn encoded_len<P: Encode>(packet: &P, version: ProtocolVersion) -> Result<usize, EncodeError> {
    let body_len = body_len(packet, version)?;
    Ok(1 + varint_len(body_len) + body_len as usize)
}

/// The Remaining Length of a packet, checked against the protocol maximum.
fn body_len<P: Encode>(packet: &P, version: ProtocolVersion) -> Result<u32, EncodeError> {
    let mut counter = Counter::default();
    packet.write_body(version, &mut counter)?;
    if counter.0 > VARINT_MAX as usize {
        return Err(EncodeError::PacketTooLarge { len: counter.0 });
    }
    Ok(counter.0 as u32)
}

/// PINGREQ and PINGRESP: a fixed header and nothing else.
impl Encode for PacketType {
    fn first_byte(&self) -> u8 {
        (*self as u8) << 4
    }
    fn write_body<S: Sink>(&self, _: ProtocolVersion, _: &mut S) -> Result<(), EncodeError> {
        Ok(())
    }
}

/// Reads a packet identifier that must not be 0 [MQTT-2.2.1-3].
pub(crate) fn read_packet_id(reader: &mut Reader, packet: PacketType) -> Result<PacketId, DecodeError> {
    PacketId::new(reader.u16("packet identifier")?).ok_or(DecodeError::ZeroPacketId { packet })
}

/// Reads the optional tail of MQTT 5 acknowledgements, DISCONNECT and AUTH (§3.4.2.1 and
/// alike): nothing means Success with no properties, one byte is a reason code alone.
pub(crate) fn read_reason_and_properties<P: Default>(
    reader: &mut Reader,
    packet: PacketType,
    read_properties: impl FnOnce(&mut Reader) -> Result<P, DecodeError>,
) -> Result<(ReasonCode, P), DecodeError> {
    if reader.is_empty() {
        return Ok((ReasonCode::Success, P::default()));
    }
    let code = reader.u8("reason code")?;
    let reason = ReasonCode::from_u8(code)
        .filter(|reason| reason.allowed_in(packet))
        .ok_or(DecodeError::InvalidReasonCode { packet, code })?;
    if reader.is_empty() {
        return Ok((reason, P::default()));
    }
    Ok((reason, read_properties(reader)?))
}

/// Writes the tail [`read_reason_and_properties`] reads, in its shortest form.
pub(crate) fn write_reason_and_properties<S: Sink>(
    sink: &mut S,
    reason: ReasonCode,
    properties_empty: bool,
    write_properties: impl FnOnce(&mut S) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    if reason == ReasonCode::Success && properties_empty {
        return Ok(());
    }
    sink.put_u8(reason.as_u8());
    if properties_empty {
        return Ok(());
    }
    write_properties(sink)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packets move by value through the decoder and into queues: every move copies the whole
    /// enum. The large MQTT 5 property sets are boxed so that it stays small (it was 256 bytes).
    #[test]
    fn packet_values_stay_small() {
        assert!(
            size_of::<Packet>() <= 96,
            "Packet is {} bytes",
            size_of::<Packet>()
        );
        assert!(
            size_of::<Publish>() <= 80,
            "Publish is {} bytes",
            size_of::<Publish>()
        );
    }
}
