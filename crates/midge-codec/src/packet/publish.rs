//! PUBLISH (§3.3): the packet that carries application messages, and the hot path of a broker.
//!
//! Decoding keeps the topic and payload as slices of the received buffer: no copy. Encoding comes
//! in two forms: [`Publish::encode`] writes one whole packet, and [`Publish::template`] encodes a
//! message once for fan-out to many receivers, who differ only in packet identifier and DUP
//! (GUIDE §3, "encode once, send many").

use bytes::{Bytes, BytesMut};

use super::{Encode, PacketType, body_len, read_packet_id};
use crate::error::{DecodeError, EncodeError};
use crate::properties::{OutOfLine, PublishProperties};
use crate::topic::{TopicName, read_topic_name_allowing_empty};
use crate::types::{PacketId, ProtocolVersion, QoS};
use crate::wire::{Reader, Sink, VARINT_MAX, varint_len};

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
    /// MQTT 5 properties; empty for earlier versions.
    pub properties: OutOfLine<PublishProperties>,
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
            properties: OutOfLine::default(),
            payload: payload.into(),
        }
    }

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
            PublishProperties::decode(reader, PacketType::Publish)?.into()
        } else {
            OutOfLine::default()
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
    /// The hot path of a broker: the size is computed from the parts (the properties are
    /// measured once), the buffer reserved once, and each part written once.
    #[inline]
    pub fn encode(&self, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let layout = self.layout(version)?;
        buf.reserve(1 + varint_len(layout.body_len) + layout.body_len as usize);
        // Fixed-size pieces go in with BufMut's typed writes, which compile to plain stores;
        // only the topic and the payload are copied with memcpy.
        bytes::BufMut::put_u8(buf, self.first_byte());
        Sink::put_varint(buf, layout.body_len);
        bytes::BufMut::put_u16(buf, self.topic.len() as u16);
        buf.extend_from_slice(self.topic.as_bytes());
        if self.qos != QoS::AtMostOnce {
            let packet_id = self.packet_id.ok_or(EncodeError::MissingPacketId)?;
            bytes::BufMut::put_u16(buf, packet_id.get());
        }
        if version.is_v5() {
            self.properties
                .encode_with_items_len(layout.properties_len, buf)?;
        }
        buf.extend_from_slice(&self.payload);
        Ok(())
    }

    /// The Remaining Length, and the Property Length for MQTT 5.
    #[inline]
    fn layout(&self, version: ProtocolVersion) -> Result<Layout, EncodeError> {
        let too_long = || EncodeError::FieldTooLong {
            field: "topic name",
            len: self.topic.len(),
        };
        if self.topic.len() > usize::from(u16::MAX) {
            return Err(too_long());
        }
        let mut body = 2 + self.topic.len() + self.payload.len();
        if self.qos != QoS::AtMostOnce {
            body += 2;
        }
        let properties_len = if version.is_v5() {
            let len = self.properties.items_len()?;
            body += varint_len(len as u32) + len;
            len
        } else {
            0
        };
        if body > VARINT_MAX as usize {
            return Err(EncodeError::PacketTooLarge { len: body });
        }
        Ok(Layout {
            body_len: body as u32,
            properties_len,
        })
    }

    fn write_body_with<S: Sink>(
        &self,
        version: ProtocolVersion,
        properties_len: usize,
        sink: &mut S,
    ) -> Result<(), EncodeError> {
        sink.put_str("topic name", &self.topic)?;
        if self.qos != QoS::AtMostOnce {
            let packet_id = self.packet_id.ok_or(EncodeError::MissingPacketId)?;
            sink.put_u16(packet_id.get());
        }
        if version.is_v5() {
            self.properties.encode_with_items_len(properties_len, sink)?;
        }
        sink.put(&self.payload);
        Ok(())
    }

    /// Encodes everything but the payload once, for sending the same message to many receivers.
    pub fn template(&self, version: ProtocolVersion) -> Result<PublishTemplate, EncodeError> {
        let body_len = body_len(self, version)?;
        let mut head = BytesMut::with_capacity(5 + body_len as usize - self.payload.len());
        head.put_u8(self.first_byte());
        head.put_varint(body_len);
        head.put_str("topic name", &self.topic)?;
        let packet_id_at = match self.qos {
            QoS::AtMostOnce => None,
            _ => {
                let at = head.len();
                head.put_u16(self.packet_id.map_or(1, PacketId::get));
                Some(at)
            }
        };
        if version.is_v5() {
            self.properties.encode(&mut head)?;
        }
        Ok(PublishTemplate {
            head: head.freeze(),
            packet_id_at,
            payload: self.payload.clone(),
        })
    }
}

impl Encode for Publish {
    fn first_byte(&self) -> u8 {
        let mut byte = (PacketType::Publish as u8) << 4 | self.qos.as_u8() << 1;
        if self.dup {
            byte |= DUP;
        }
        if self.retain {
            byte |= RETAIN;
        }
        byte
    }

    fn write_body<S: Sink>(&self, version: ProtocolVersion, sink: &mut S) -> Result<(), EncodeError> {
        let properties_len = if version.is_v5() {
            self.properties.items_len()?
        } else {
            0
        };
        self.write_body_with(version, properties_len, sink)
    }
}

/// The sizes a PUBLISH's encoding needs before it is written.
struct Layout {
    body_len: u32,
    properties_len: usize,
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
    pub fn head(&self, packet_id: Option<PacketId>, dup: bool) -> Bytes {
        let Some(at) = self.packet_id_at else {
            return self.head.clone();
        };
        let mut head = BytesMut::from(&self.head[..]);
        if let Some(first) = head.first_mut() {
            *first = if dup { *first | DUP } else { *first & !DUP };
        }
        if let (Some(id), Some(slot)) = (packet_id, head.get_mut(at..at + 2)) {
            slot.copy_from_slice(&id.get().to_be_bytes());
        }
        head.freeze()
    }

    /// The payload, shared with every receiver.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Appends the whole packet for one receiver to `buf` (copying the payload).
    pub fn write_to(&self, packet_id: Option<PacketId>, dup: bool, buf: &mut BytesMut) {
        buf.reserve(self.len());
        buf.extend_from_slice(&self.head(packet_id, dup));
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
