//! PUBACK, PUBREC, PUBREL and PUBCOMP (§3.4 to §3.7): a packet identifier and, in MQTT 5, a reason
//! code and properties, both omitted on the wire when they say nothing.

use super::{Encode, PacketType, read_packet_id, read_reason_and_properties, write_reason_and_properties};
use crate::error::{DecodeError, EncodeError};
use crate::properties::AckProperties;
use crate::reason::ReasonCode;
use crate::types::{PacketId, ProtocolVersion};
use crate::wire::{Reader, Sink};

/// The body shared by the four QoS acknowledgement packets; [`super::Packet`] says which it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The PUBLISH (or PUBREL) acknowledged.
    pub packet_id: PacketId,
    /// The outcome; always Success before MQTT 5.
    pub reason_code: ReasonCode,
    /// MQTT 5 properties.
    pub properties: AckProperties,
}

impl Ack {
    /// A successful acknowledgement of `packet_id`.
    pub fn new(packet_id: PacketId) -> Self {
        Self {
            packet_id,
            reason_code: ReasonCode::Success,
            properties: AckProperties::default(),
        }
    }

    pub(crate) fn decode(
        packet: PacketType,
        reader: &mut Reader,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let packet_id = read_packet_id(reader, packet)?;
        let (reason_code, properties) = if version.is_v5() {
            read_reason_and_properties(reader, packet, |r| AckProperties::decode(r, packet))?
        } else {
            (ReasonCode::Success, AckProperties::default())
        };
        Ok(Self {
            packet_id,
            reason_code,
            properties,
        })
    }
}

/// The packet type travels beside the body, since all four share it.
impl Encode for (PacketType, &Ack) {
    fn first_byte(&self) -> u8 {
        (self.0 as u8) << 4 | self.0.required_flags()
    }

    fn write_body<S: Sink>(&self, version: ProtocolVersion, sink: &mut S) -> Result<(), EncodeError> {
        let ack = self.1;
        sink.put_u16(ack.packet_id.get());
        if version.is_v5() {
            write_reason_and_properties(sink, ack.reason_code, ack.properties.is_empty(), |s| {
                ack.properties.encode(s)
            })?;
        }
        Ok(())
    }
}
