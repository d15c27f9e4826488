//! UNSUBACK (§3.11): a packet identifier and, in MQTT 5, properties and one reason code per filter.

use super::{Encode, PacketType, read_packet_id};
use crate::error::{DecodeError, EncodeError};
use crate::properties::AckProperties;
use crate::reason::ReasonCode;
use crate::types::{PacketId, ProtocolVersion};
use crate::wire::{Reader, Sink};

/// The answer to UNSUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// The UNSUBSCRIBE answered.
    pub packet_id: PacketId,
    /// MQTT 5: one code per filter, in order. Empty before MQTT 5, which has none.
    pub reason_codes: Vec<ReasonCode>,
    /// MQTT 5 properties.
    pub properties: AckProperties,
}

impl UnsubAck {
    pub(crate) fn decode(reader: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = read_packet_id(reader, PacketType::UnsubAck)?;
        let mut ack = Self {
            packet_id,
            reason_codes: Vec::new(),
            properties: AckProperties::default(),
        };
        if version.is_v5() {
            ack.properties = AckProperties::decode(reader, PacketType::UnsubAck)?;
            while !reader.is_empty() {
                let code = reader.u8("reason code")?;
                let reason = ReasonCode::from_u8(code)
                    .filter(|reason| reason.allowed_in(PacketType::UnsubAck))
                    .ok_or(DecodeError::InvalidReasonCode {
                        packet: PacketType::UnsubAck,
                        code,
                    })?;
                ack.reason_codes.push(reason);
            }
        }
        Ok(ack)
    }
}

impl Encode for UnsubAck {
    fn first_byte(&self) -> u8 {
        (PacketType::UnsubAck as u8) << 4
    }

    fn write_body<S: Sink>(&self, version: ProtocolVersion, sink: &mut S) -> Result<(), EncodeError> {
        sink.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.encode(sink)?;
            for code in &self.reason_codes {
                sink.put_u8(code.as_u8());
            }
        }
        Ok(())
    }
}
