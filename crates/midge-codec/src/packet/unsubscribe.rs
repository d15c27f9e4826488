//! UNSUBSCRIBE (§3.10): a packet identifier, MQTT 5 properties, and one or more topic filters.

use super::subscribe::read_topic_filter;
use super::{Encode, PacketType, read_packet_id};
use crate::error::{DecodeError, EncodeError};
use crate::properties::UnsubscribeProperties;
use crate::topic::TopicFilter;
use crate::types::{PacketId, ProtocolVersion};
use crate::wire::{Reader, Sink};

/// A request to remove subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet Identifier.
    pub packet_id: PacketId,
    /// The filters to remove; never empty on the wire [MQTT-3.10.3-2].
    pub filters: Vec<TopicFilter>,
    /// MQTT 5 properties.
    pub properties: UnsubscribeProperties,
}

impl Unsubscribe {
    pub(crate) fn decode(reader: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = read_packet_id(reader, PacketType::Unsubscribe)?;
        let properties = if version.is_v5() {
            UnsubscribeProperties::decode(reader, PacketType::Unsubscribe)?
        } else {
            UnsubscribeProperties::default()
        };
        let mut filters = Vec::new();
        while !reader.is_empty() {
            filters.push(read_topic_filter(reader)?);
        }
        if filters.is_empty() {
            return Err(DecodeError::EmptyUnsubscribe);
        }
        Ok(Self {
            packet_id,
            filters,
            properties,
        })
    }
}

impl Encode for Unsubscribe {
    fn first_byte(&self) -> u8 {
        (PacketType::Unsubscribe as u8) << 4 | PacketType::Unsubscribe.required_flags()
    }

    fn write_body<S: Sink>(&self, version: ProtocolVersion, sink: &mut S) -> Result<(), EncodeError> {
        sink.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.encode(sink)?;
        }
        for filter in &self.filters {
            sink.put_str("topic filter", filter)?;
        }
        Ok(())
    }
}
