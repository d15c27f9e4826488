//! PUBLISH (§3.3): the packet that carries application messages, and the hot path of a broker.
//!
//! Decoding keeps the topic and payload as slices of the received buffer: no copy. Encoding comes
//! in two forms: [`Publish::encode`] writes one whole packet, and [`Publish::template`] encodes a
//! message once for fan-out to many receivers, who differ only in packet identifier and DUP
//! (GUIDE §3, "encode once, send many").

use bytes::{Bytes, BytesMut};

use super::{PacketType, read_packet_id};
use crate::error::{DecodeError, EncodeError};
use crate::properties::{PropertyBox, PublishProperties};
use crate::topic::{TopicName, read_topic_name_allowing_empty};
use crate::types::{PacketId, ProtocolVersion, QoS};
use crate::wire::{Reader, VARINT_MAX, encode_varint, varint_len};

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

    /// Appends this PUBLISH, encoded for `version`, to `buf`.
    ///
    /// The sizes are added up rather than counted by a dry run, `buf` grows once, and the fixed
    /// header and topic length go out in one copy.
    pub fn encode(&self, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let layout = self.layout(version)?;
        buf.reserve(layout.packet_len());
        self.write_head(&layout, buf)?;
        buf.extend_from_slice(&self.payload);
        Ok(())
    }

    /// The packet's size on the wire for `version`, fixed header included.
    pub(crate) fn encoded_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        Ok(self.layout(version)?.packet_len())
    }

    /// Encodes everything but the payload once, for sending the same message to many receivers.
    pub fn template(&self, version: ProtocolVersion) -> Result<PublishTemplate, EncodeError> {
        let layout = self.layout(version)?;
        let mut head = BytesMut::with_capacity(layout.packet_len() - self.payload.len());
        self.write_head(&layout, &mut head)?;
        Ok(PublishTemplate {
            head: head.freeze(),
            packet_id_at: layout.packet_id_at(),
            payload: self.payload.clone(),
        })
    }

    /// The first byte: type, DUP, QoS and RETAIN.
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
    fn layout(&self, version: ProtocolVersion) -> Result<Layout, EncodeError> {
        let topic_len = u16::try_from(self.topic.len()).map_err(|_| EncodeError::FieldTooLong {
            field: "topic name",
            len: self.topic.len(),
        })?;
        let packet_id = match self.qos {
            QoS::AtMostOnce => None,
            _ => Some(self.packet_id.ok_or(EncodeError::MissingPacketId)?),
        };
        let v5 = version.is_v5();
        let properties_len = if v5 {
            self.properties.encoded_items_len()?
        } else {
            0
        };
        let body_len = 2
            + usize::from(topic_len)
            + packet_id.map_or(0, |_| 2)
            + if v5 {
                varint_len(properties_len) + properties_len as usize
            } else {
                0
            }
            + self.payload.len();
        if body_len > VARINT_MAX as usize {
            return Err(EncodeError::PacketTooLarge { len: body_len });
        }
        let (remaining, remaining_len) = encode_varint(body_len as u32);
        Ok(Layout {
            body_len: body_len as u32,
            remaining,
            remaining_len,
            topic_len,
            packet_id,
            v5,
            properties_len,
        })
    }

    /// Writes the fixed header, topic, packet identifier and properties: all but the payload.
    /// Inlined for the same reason as [`layout`](Self::layout).
    #[inline(always)]
    fn write_head(&self, layout: &Layout, buf: &mut BytesMut) -> Result<(), EncodeError> {
        // First byte, Remaining Length and the topic's length prefix: put together in a
        // register, written with one fixed-size copy.
        let fixed = u64::from(self.first_byte())
            | u64::from(layout.remaining) << 8
            | u64::from(layout.topic_len.swap_bytes()) << (8 * (1 + layout.remaining_len));
        let [b0, b1, b2, b3, b4, b5, b6, _] = fixed.to_le_bytes();
        match layout.remaining_len {
            1 => buf.extend_from_slice(&[b0, b1, b2, b3]),
            2 => buf.extend_from_slice(&[b0, b1, b2, b3, b4]),
            3 => buf.extend_from_slice(&[b0, b1, b2, b3, b4, b5]),
            _ => buf.extend_from_slice(&[b0, b1, b2, b3, b4, b5, b6]),
        }
        buf.extend_from_slice(self.topic.as_bytes());
        if let Some(packet_id) = layout.packet_id {
            buf.extend_from_slice(&packet_id.get().to_be_bytes());
        }
        if layout.v5 {
            self.properties.encode_with_len(layout.properties_len, buf)?;
        }
        Ok(())
    }
}

/// The sizes of one PUBLISH's encoding, worked out before anything is written.
#[derive(Debug)]
struct Layout {
    /// The Remaining Length, and its encoding and size as a Variable Byte Integer.
    body_len: u32,
    remaining: u32,
    remaining_len: usize,
    topic_len: u16,
    packet_id: Option<PacketId>,
    /// MQTT 5: the properties are written.
    v5: bool,
    /// The Property Length, when `v5`. (Not an `Option<u32>`: its two halves were stored
    /// separately and read back as one word, a store-forwarding stall on every encode.)
    properties_len: u32,
}

impl Layout {
    fn packet_len(&self) -> usize {
        1 + self.remaining_len + self.body_len as usize
    }

    /// Where the packet identifier sits in the head, if there is one.
    fn packet_id_at(&self) -> Option<usize> {
        self.packet_id
            .map(|_| 1 + self.remaining_len + 2 + usize::from(self.topic_len))
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
