//! PUBLISH (§3.3): the packet that carries application messages, and the hot path of a broker.
//!
//! Decoding keeps the topic and payload as slices of the received buffer: no copy. Encoding comes
//! in two forms: [`Publish::encode`] writes one whole packet, and [`Publish::template`] encodes a
//! message once for fan-out to many receivers, who differ only in packet identifier and DUP
//! (GUIDE §3, "encode once, send many").

use bytes::{BufMut, Bytes, BytesMut};

use super::{PacketType, read_packet_id};
use crate::error::{DecodeError, EncodeError};
use crate::properties::{PropertyBox, PublishProperties};
use crate::topic::{TopicName, read_topic_name_allowing_empty};
use crate::types::{PacketId, ProtocolVersion, QoS};
use crate::wire::{Filler, Reader, VARINT_MAX, encode_varint};

const DUP: u8 = 0b1000;
const RETAIN: u8 = 0b0001;

/// An application message on its way between client and server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// DUP: this may be a redelivery. Always false at QoS 0 [MQTT-3.3.1-2].
    pub dup: bool,
    /// QoS of this delivery.
    pub qos: QoS,
    /// RETAIN.
    pub retain: bool,
    /// Topic Name; empty only when an MQTT 5 Topic Alias stands in for it.
    pub topic: TopicName,
    /// Packet Identifier, present exactly when QoS is 1 or 2.
    pub packet_id: Option<PacketId>,
    /// MQTT 5 properties; empty for earlier versions. Boxed, and allocated only when set.
    pub properties: PropertyBox<PublishProperties>,
    /// The application message.
    pub payload: Bytes,
}

impl Publish {
    /// A QoS 0, non-retained message with no properties.
    pub fn new(topic: TopicName, payload: impl Into<Bytes>) -> Self {
        Self {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic,
            packet_id: None,
            properties: PropertyBox::default(),
            payload: payload.into(),
        }
    }

    #[inline]
    pub(crate) fn decode(
        flags: u8,
        reader: &mut Reader,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let qos =
            QoS::from_bits((flags >> 1) & 0b11).ok_or(DecodeError::InvalidQos { field: "PUBLISH QoS" })?;
        let dup = flags & DUP != 0;
        if dup && qos == QoS::AtMostOnce {
            return Err(DecodeError::DupOnQos0);
        }
        let topic = read_topic_name_allowing_empty(reader, "topic name")?;
        let packet_id = match qos {
            QoS::AtMostOnce => None,
            _ => Some(read_packet_id(reader, PacketType::Publish)?),
        };
        let properties = if version.is_v5() {
            PropertyBox::new(PublishProperties::decode(reader, PacketType::Publish)?)
        } else {
            PropertyBox::default()
        };
        if topic.is_empty() && properties.topic_alias.is_none() {
            return Err(DecodeError::EmptyTopicName);
        }
        Ok(Self {
            dup,
            qos,
            retain: flags & RETAIN != 0,
            topic,
            packet_id,
            properties,
            payload: reader.rest(),
        })
    }

    /// This PUBLISH's fields, borrowed for encoding.
    #[inline(always)]
    pub fn parts(&self) -> PublishParts<'_> {
        PublishParts {
            dup: self.dup,
            qos: self.qos,
            retain: self.retain,
            topic: &self.topic,
            packet_id: self.packet_id,
            properties: self.properties.allocated(),
            payload: &self.payload,
        }
    }

    /// Appends this PUBLISH, encoded for `version`, to `buf` ([`PublishParts::encode`]).
    #[inline(always)]
    pub fn encode(&self, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
        self.parts().encode(version, buf)
    }

    /// [`encode`](Self::encode) in a function of its own, for callers that must not grow.
    #[inline(never)]
    pub(crate) fn encode_out_of_line(
        &self,
        version: ProtocolVersion,
        buf: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        self.encode(version, buf)
    }

    /// The packet's size on the wire for `version`, fixed header included.
    pub(crate) fn encoded_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        self.parts().encoded_len(version)
    }

    /// Encodes everything but the payload once, for sending the same message to many receivers.
    pub fn template(&self, version: ProtocolVersion) -> Result<PublishTemplate, EncodeError> {
        self.parts().template(version)
    }
}

/// A PUBLISH as borrowed parts: what a broker encodes straight from a message it holds,
/// without cloning topic, payload and properties into a [`Publish`] (reference counts taken
/// and dropped for every receiver) first.
#[derive(Debug, Clone, Copy)]
pub struct PublishParts<'a> {
    /// DUP. Never set at QoS 0 [MQTT-3.3.1-2].
    pub dup: bool,
    /// QoS of this delivery.
    pub qos: QoS,
    /// RETAIN.
    pub retain: bool,
    /// Topic Name (empty only when a Topic Alias among the properties stands in for it).
    pub topic: &'a TopicName,
    /// Packet Identifier, present exactly when QoS is 1 or 2.
    pub packet_id: Option<PacketId>,
    /// MQTT 5 properties, if there are any; ignored before MQTT 5.
    pub properties: Option<&'a PublishProperties>,
    /// The application message.
    pub payload: &'a Bytes,
}

impl PublishParts<'_> {
    /// Appends this PUBLISH, encoded for `version`, to `buf`.
    ///
    /// The sizes are added up rather than counted by a dry run and `buf` grows once. Everything
    /// of fixed size goes out in as few copies as the layout allows: first byte, Remaining Length
    /// and topic length in one; packet identifier and Property Length in another. A packet of
    /// up to 120 bytes without properties is written without any call (`write_small`).
    ///
    /// Always inlined: with MQTT 5 properties out of line it is small, and a call's frame and
    /// returned `Result` were a sixth of a small encode; a caller that names the version also
    /// loses the other version's branches.
    #[inline(always)]
    pub fn encode(&self, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
        match self.properties_for(version) {
            Some(properties) => self.encode_with_properties(properties, buf),
            None => self.encode_parts(version.is_v5(), None, buf),
        }
    }

    /// [`encode`](Self::encode) for an MQTT 5 PUBLISH with properties: the same steps, with the
    /// properties measured and written inline, kept out of the callers of `encode`.
    #[inline(never)]
    fn encode_with_properties(
        &self,
        properties: &PublishProperties,
        buf: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        self.encode_parts(true, Some(properties), buf)
    }

    #[inline(always)]
    fn encode_parts(
        &self,
        v5: bool,
        properties: Option<&PublishProperties>,
        buf: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let layout = self.layout(v5, properties)?;
        if properties.is_none() && layout.packet_len() <= SMALL_PACKET {
            self.write_small(&layout, buf);
            return Ok(());
        }
        buf.reserve(layout.packet_len());
        self.write_head(&layout, buf)?;
        buf.extend_from_slice(self.payload);
        Ok(())
    }

    /// Writes a PUBLISH of at most [`SMALL_PACKET`] bytes without properties (telemetry, most
    /// often) without a call: its stretch of `buf` is zeroed with one fixed-size write (the
    /// price of no `unsafe`), filled through a slice (fixed-size parts as whole words, topic and
    /// payload as two overlapping fixed-size pieces each), and cut to length. Appended piece by
    /// piece, each piece loaded and stored the buffer's length, and the topic and the payload
    /// each cost a call to `memcpy`.
    #[inline(always)]
    fn write_small(&self, layout: &Layout<'_>, buf: &mut BytesMut) {
        let start = buf.len();
        buf.extend_from_slice(&[0; SMALL_PACKET + 8]);
        let mut filler = Filler::new(buf.get_mut(start..).unwrap_or_default());
        filler.put_word(layout.fixed, 3 + layout.remaining_len);
        filler.put_any(self.topic.as_bytes());
        filler.put_word(layout.tail, layout.tail_len);
        filler.put_any(self.payload);
        debug_assert_eq!(filler.written(), layout.packet_len(), "PUBLISH measured wrong");
        buf.truncate(start + layout.packet_len());
    }

    /// The properties to write for `version`: none before MQTT 5, and none when the box is
    /// empty (then MQTT 5 has a zero Property Length and nothing to measure).
    #[inline(always)]
    fn properties_for(&self, version: ProtocolVersion) -> Option<&PublishProperties> {
        if version.is_v5() { self.properties } else { None }
    }

    /// The packet's size on the wire for `version`, fixed header included.
    pub fn encoded_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        Ok(self
            .layout(version.is_v5(), self.properties_for(version))?
            .packet_len())
    }

    /// Encodes everything but the payload once, for sending the same message to many receivers.
    pub fn template(&self, version: ProtocolVersion) -> Result<PublishTemplate, EncodeError> {
        let layout = self.layout(version.is_v5(), self.properties_for(version))?;
        let mut head = BytesMut::with_capacity(layout.packet_len() - self.payload.len());
        self.write_head(&layout, &mut head)?;
        Ok(PublishTemplate {
            head: head.freeze(),
            packet_id_at: layout.packet_id_at(),
            payload: Bytes::clone(self.payload),
        })
    }

    /// The first byte: type, DUP, QoS and RETAIN.
    #[inline]
    fn first_byte(&self) -> u8 {
        // Branch-free: DUP is bit 3 and RETAIN bit 0 (§3.3.1).
        (PacketType::Publish as u8) << 4
            | u8::from(self.dup) << 3
            | self.qos.as_u8() << 1
            | u8::from(self.retain)
    }

    /// Checks the fields that can fail to encode, in wire order, and adds up the sizes.
    /// Inlined so that the layout stays in registers: returned through memory, reading it back
    /// stalled on store forwarding and cost more than the rest of a small encode.
    #[inline(always)]
    fn layout<'a>(
        &self,
        v5: bool,
        properties: Option<&'a PublishProperties>,
    ) -> Result<Layout<'a>, EncodeError> {
        // Not checked again: a Topic Name fits its two-byte length by construction.
        let topic_len = self.topic.wire_len();
        // The packet identifier, big-endian in the low bytes as it goes on the wire.
        let (mut tail, mut tail_len) = match self.qos {
            QoS::AtMostOnce => (0, 0),
            _ => {
                let packet_id = self.packet_id.ok_or(EncodeError::MissingPacketId)?;
                (u64::from(packet_id.get().swap_bytes()), 2)
            }
        };
        let has_packet_id = tail_len != 0;
        // MQTT 5: the Property Length follows, then the properties. Without properties that
        // is a single zero byte, already in `tail`.
        let mut properties_len = 0;
        if v5 {
            if let Some(properties) = properties {
                properties_len = properties.encoded_items_len()?;
            }
            let (encoded, len) = encode_varint(properties_len);
            tail |= u64::from(encoded) << (8 * tail_len);
            tail_len += len;
        }
        let body_len = 2 + usize::from(topic_len) + tail_len + properties_len as usize + self.payload.len();
        if body_len > VARINT_MAX as usize {
            return Err(EncodeError::PacketTooLarge { len: body_len });
        }
        let (remaining, remaining_len) = encode_varint(body_len as u32);
        // First byte, Remaining Length and the topic's length prefix, as they go on the wire.
        let fixed = u64::from(self.first_byte())
            | u64::from(remaining) << 8
            | u64::from(topic_len.swap_bytes()) << (8 * (1 + remaining_len));
        Ok(Layout {
            body_len,
            remaining_len,
            fixed,
            topic_len,
            has_packet_id,
            v5,
            tail,
            tail_len,
            properties,
            properties_len: properties_len as usize,
        })
    }

    /// Writes the fixed header, topic, packet identifier and properties: all but the payload.
    /// Inlined for the same reason as [`layout`](Self::layout).
    #[inline(always)]
    fn write_head(&self, layout: &Layout<'_>, buf: &mut BytesMut) -> Result<(), EncodeError> {
        put_small(buf, layout.fixed, 3 + layout.remaining_len);
        buf.extend_from_slice(self.topic.as_bytes());
        if layout.v5 {
            // Packet identifier and Property Length.
            put_small(buf, layout.tail, layout.tail_len);
        } else if self.qos != QoS::AtMostOnce {
            // Read again rather than taken from `layout`: kept, it was saved and reloaded around
            // the topic's copy, a call to `memcpy`. (`layout` checked it is there.)
            let id = self.packet_id.map_or(0, PacketId::get);
            buf.extend_from_slice(&id.to_be_bytes());
        }
        if let Some(properties) = layout.properties {
            // Measured already: written into their stretch of the buffer, zeroed first.
            let start = buf.len();
            buf.put_bytes(0, layout.properties_len);
            let mut filler = Filler::new(buf.get_mut(start..).unwrap_or_default());
            properties.encode_items(&mut filler)?;
            debug_assert!(filler.finish(), "PUBLISH properties measured wrong");
        }
        Ok(())
    }
}

/// The largest PUBLISH [`PublishParts::write_small`] writes.
const SMALL_PACKET: usize = 120;

/// Appends the low `len` bytes of `bytes`, lowest first: one fixed-size copy, where a slice of
/// variable length would be a call to `memcpy`. `len` is at most 7.
#[inline(always)]
fn put_small(buf: &mut BytesMut, bytes: u64, len: usize) {
    let bytes = bytes.to_le_bytes();
    match len {
        0 => {}
        1 => put_first::<1>(buf, &bytes),
        2 => put_first::<2>(buf, &bytes),
        3 => put_first::<3>(buf, &bytes),
        4 => put_first::<4>(buf, &bytes),
        5 => put_first::<5>(buf, &bytes),
        6 => put_first::<6>(buf, &bytes),
        _ => put_first::<7>(buf, &bytes),
    }
}

/// Appends the first `N` of `bytes`.
#[inline(always)]
fn put_first<const N: usize>(buf: &mut BytesMut, bytes: &[u8; 8]) {
    if let Some(first) = bytes.first_chunk::<N>() {
        buf.extend_from_slice(first);
    }
}

/// The sizes of one PUBLISH's encoding, and its fixed-size parts, worked out before anything is
/// written.
#[derive(Debug)]
struct Layout<'a> {
    /// The Remaining Length, and the size of its encoding as a Variable Byte Integer.
    body_len: usize,
    remaining_len: usize,
    /// First byte, Remaining Length and topic length: `3 + remaining_len` bytes, lowest first.
    fixed: u64,
    topic_len: u16,
    has_packet_id: bool,
    v5: bool,
    /// What follows the topic and has a fixed size: the packet identifier (QoS 1 and 2), then
    /// the Property Length (MQTT 5). `tail_len` bytes (at most 6), lowest first. `write_head`
    /// takes it from here only in MQTT 5 (see there); `write_small` always does.
    tail: u64,
    tail_len: usize,
    /// MQTT 5 properties to write after the Property Length, when there are any.
    properties: Option<&'a PublishProperties>,
    properties_len: usize,
}

impl Layout<'_> {
    fn packet_len(&self) -> usize {
        1 + self.remaining_len + self.body_len
    }

    /// Where the packet identifier sits in the head, if there is one.
    fn packet_id_at(&self) -> Option<usize> {
        self.has_packet_id
            .then(|| 1 + self.remaining_len + 2 + usize::from(self.topic_len))
    }
}

/// A PUBLISH encoded once for many receivers: the head (fixed header, topic, packet identifier,
/// properties) as bytes, and the payload shared, never copied.
///
/// A QoS 0 head is sent as it is; for QoS 1 and 2 each receiver gets a copy of the small head with
/// its own packet identifier (and DUP, for a redelivery) patched in.
#[derive(Debug, Clone)]
pub struct PublishTemplate {
    head: Bytes,
    packet_id_at: Option<usize>,
    payload: Bytes,
}

impl PublishTemplate {
    /// The head for one receiver. `packet_id` is ignored at QoS 0; DUP is never set at QoS 0.
    /// At QoS 1 and 2 this copies the head into a new buffer: a sender that has a write buffer
    /// at hand avoids the allocation with [`write_head_to`](Self::write_head_to).
    pub fn head(&self, packet_id: Option<PacketId>, dup: bool) -> Bytes {
        if self.packet_id_at.is_none() {
            return self.head.clone();
        }
        let mut head = BytesMut::with_capacity(self.head.len());
        self.write_head_to(packet_id, dup, &mut head);
        head.freeze()
    }

    /// Appends the head for one receiver to `buf`, with its packet identifier and DUP patched in:
    /// no allocation beyond `buf` growing. `packet_id` is ignored at QoS 0; DUP is never set at
    /// QoS 0.
    pub fn write_head_to(&self, packet_id: Option<PacketId>, dup: bool, buf: &mut BytesMut) {
        let start = buf.len();
        buf.extend_from_slice(&self.head);
        let Some(at) = self.packet_id_at else {
            return;
        };
        let Some(head) = buf.get_mut(start..) else {
            return;
        };
        if let Some(first) = head.first_mut() {
            *first = if dup { *first | DUP } else { *first & !DUP };
        }
        if let (Some(id), Some(slot)) = (packet_id, head.get_mut(at..at + 2)) {
            slot.copy_from_slice(&id.get().to_be_bytes());
        }
    }

    /// The payload, shared with every receiver.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Appends the whole packet for one receiver to `buf` (copying the payload).
    pub fn write_to(&self, packet_id: Option<PacketId>, dup: bool, buf: &mut BytesMut) {
        buf.reserve(self.len());
        self.write_head_to(packet_id, dup, buf);
        buf.extend_from_slice(&self.payload);
    }

    /// The size of the packet on the wire.
    pub fn len(&self) -> usize {
        self.head.len() + self.payload.len()
    }

    /// Never true: a packet has at least a fixed header.
    pub fn is_empty(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decoder::{Decoder, PROTOCOL_MAX_PACKET_SIZE};
    use crate::packet::Packet;
    use crate::properties::UserProperty;
    use crate::wire::{VarInt, read_varint};

    const VERSIONS: [ProtocolVersion; 3] = [ProtocolVersion::V31, ProtocolVersion::V311, ProtocolVersion::V5];

    /// Encodes `publish` each way there is, checks the ways agree with each other and with the
    /// decoder, and returns the bytes.
    fn encode_every_way(publish: &Publish, version: ProtocolVersion) -> BytesMut {
        let mut buf = BytesMut::new();
        publish.encode(version, &mut buf).unwrap();
        assert_eq!(publish.encoded_len(version).unwrap(), buf.len());
        let template = publish.template(version).unwrap();
        let mut from_template = BytesMut::new();
        template.write_to(publish.packet_id, publish.dup, &mut from_template);
        assert_eq!(from_template, buf);
        let mut through_packet = BytesMut::from(&b"before"[..]);
        let packet = Packet::Publish(publish.clone());
        packet.encode(version, &mut through_packet).unwrap();
        assert_eq!(&through_packet[b"before".len()..], &buf[..]);
        let decoded = Decoder::new(version, PROTOCOL_MAX_PACKET_SIZE)
            .decode(&mut buf.clone())
            .unwrap();
        assert_eq!(decoded, Some(packet));
        buf
    }

    fn qos1(payload_len: usize) -> Publish {
        let mut publish = Publish::new(TopicName::try_from("a/b").unwrap(), vec![7; payload_len]);
        publish.qos = QoS::AtLeastOnce;
        publish.packet_id = PacketId::new(513);
        publish
    }

    /// Every size of Remaining Length (1 to 4 bytes), at both ends, in every version.
    #[test]
    fn remaining_length_boundaries() {
        for version in VERSIONS {
            // The body beyond the payload: topic (2 + 3), packet identifier, and in MQTT 5 a
            // zero Property Length.
            let overhead = 7 + usize::from(version.is_v5());
            for (body_len, remaining_len) in [
                (127, 1),
                (128, 2),
                (16_383, 2),
                (16_384, 3),
                (2_097_151, 3),
                (2_097_152, 4),
            ] {
                let publish = qos1(body_len - overhead);
                let buf = encode_every_way(&publish, version);
                assert_eq!(
                    buf.len(),
                    1 + remaining_len + body_len,
                    "{version} body {body_len}"
                );
            }
        }
    }

    /// Every size of Property Length (1 to 4 bytes), after a packet identifier or none.
    #[test]
    fn property_length_boundaries() {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
            for (properties_len, encoded_len) in [
                (5, 1),
                (127, 1),
                (128, 2),
                (16_383, 2),
                (16_384, 3),
                (2_097_151, 3),
                (2_097_152, 4),
            ] {
                let mut publish = qos1(3);
                publish.qos = qos;
                if qos == QoS::AtMostOnce {
                    publish.packet_id = None;
                }
                // A Message Expiry Interval (5 bytes), then User Properties of up to 65535 +
                // 8 bytes each (identifier, name "k" with its length, value with its length)
                // to make up the rest.
                publish.properties.message_expiry_interval = Some(60);
                let mut rest = properties_len - 5;
                while rest > 0 {
                    let take = rest.min(65_535 + 6);
                    let value_len = if take == rest { take - 6 } else { take - 6 - 7 };
                    publish
                        .properties
                        .user_properties
                        .push(UserProperty::new("k", "v".repeat(value_len).as_str()));
                    rest -= value_len + 6;
                }
                let buf = encode_every_way(&publish, ProtocolVersion::V5);
                // After the first byte, the Remaining Length, the topic and the packet identifier.
                let Ok(VarInt::Complete(_, remaining_len)) = read_varint(&buf[1..]) else {
                    panic!("no Remaining Length");
                };
                let at = 1 + remaining_len + 2 + 3 + if qos == QoS::AtMostOnce { 0 } else { 2 };
                let (value, len) = encode_varint(properties_len as u32);
                assert_eq!(len, encoded_len);
                assert_eq!(
                    &buf[at..at + len],
                    &value.to_le_bytes()[..len],
                    "Property Length {properties_len}"
                );
            }
        }
    }

    /// Small packets (written in one go by `write_small`) come out as the general path writes
    /// them (the template's, which appends piece by piece), for every topic and payload length
    /// around the fixed-size pieces, in every version, with and without a packet identifier,
    /// after bytes already in the buffer.
    #[test]
    fn small_packets_match_the_general_path() {
        let source: String = ('a'..='z').cycle().take(80).collect();
        for version in VERSIONS {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
                for topic_len in (1..=70).step_by(3) {
                    for payload_len in 0..=120 {
                        let mut publish = qos1(payload_len);
                        publish.topic = TopicName::try_from(&source[..topic_len]).unwrap();
                        publish.payload = (0..payload_len).map(|i| i as u8).collect();
                        publish.qos = qos;
                        if qos == QoS::AtMostOnce {
                            publish.packet_id = None;
                        }
                        let mut general = BytesMut::from(&b"queued"[..]);
                        publish
                            .template(version)
                            .unwrap()
                            .write_to(publish.packet_id, false, &mut general);
                        let mut small = BytesMut::from(&b"queued"[..]);
                        publish.encode(version, &mut small).unwrap();
                        assert_eq!(
                            small, general,
                            "{version} topic {topic_len} payload {payload_len}"
                        );
                    }
                }
            }
        }
    }

    /// A property set allocated and then emptied encodes as no properties at all.
    #[test]
    fn emptied_properties_encode_as_none() {
        let mut emptied = qos1(10);
        emptied.properties.content_type = Some("text/plain".into());
        emptied.properties.content_type = None;
        assert!(emptied.properties.allocated().is_some());
        let never = qos1(10);
        assert!(never.properties.allocated().is_none());
        for version in VERSIONS {
            assert_eq!(
                encode_every_way(&emptied, version),
                encode_every_way(&never, version)
            );
        }
    }
}
