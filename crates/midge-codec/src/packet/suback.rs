//! SUBACK (§3.9): one reason code per requested subscription, in request order [MQTT-3.9.3-1].
//!
//! Before MQTT 5 the codes are the granted QoS or 0x80 for failure; every MQTT 5 failure code is
//! sent to a 3.1.1 client as 0x80.

use super::{Encode, PacketType, read_packet_id};
use crate::error::{DecodeError, EncodeError};
use crate::properties::AckProperties;
use crate::reason::ReasonCode;
use crate::types::{PacketId, ProtocolVersion};
use crate::wire::{Reader, Sink};

/// The 3.1.1 SUBACK failure return code.
const FAILURE: u8 = 0x80;

/// The answer to SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// The SUBSCRIBE answered.
    pub packet_id: PacketId,
    /// One code per subscription: Granted QoS 0/1/2 (Success is QoS 0) or a failure.
    pub reason_codes: Vec<ReasonCode>,
    /// MQTT 5 properties.
    pub properties: AckProperties,
}

impl SubAck {
    pub(crate) fn decode(reader: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = read_packet_id(reader, PacketType::SubAck)?;
        let properties = if version.is_v5() {
            AckProperties::decode(reader, PacketType::SubAck)?
        } else {
            AckProperties::default()
        };
        let mut reason_codes = Vec::with_capacity(reader.remaining());
        while !reader.is_empty() {
            let code = reader.u8("reason code")?;
            let reason = if version.is_v5() {
                ReasonCode::from_u8(code).filter(|reason| reason.allowed_in(PacketType::SubAck))
            } else {
                match code {
                    0 => Some(ReasonCode::Success),
                    1 => Some(ReasonCode::GrantedQos1),
                    2 => Some(ReasonCode::GrantedQos2),
                    FAILURE => Some(ReasonCode::UnspecifiedError),
                    _ => None,
                }
            };
            reason_codes.push(reason.ok_or(DecodeError::InvalidReasonCode {
                packet: PacketType::SubAck,
                code,
            })?);
        }
        Ok(Self {
            packet_id,
            reason_codes,
            properties,
        })
    }
}

impl Encode for SubAck {
    fn first_byte(&self) -> u8 {
        (PacketType::SubAck as u8) << 4
    }

    fn write_body<S: Sink>(&self, version: ProtocolVersion, sink: &mut S) -> Result<(), EncodeError> {
        sink.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.encode(sink)?;
        }
        for code in &self.reason_codes {
            let byte = match code {
                _ if version.is_v5() => code.as_u8(),
                ReasonCode::Success | ReasonCode::GrantedQos1 | ReasonCode::GrantedQos2 => code.as_u8(),
                _ => FAILURE,
            };
            sink.put_u8(byte);
        }
        Ok(())
    }
}
