//! DISCONNECT (§3.14): empty before MQTT 5; in MQTT 5 an optional reason code and properties.

use super::{Encode, PacketType, read_reason_and_properties, write_reason_and_properties};
use crate::error::{DecodeError, EncodeError};
use crate::properties::{DisconnectProperties, PropertyBox};
use crate::reason::ReasonCode;
use crate::types::ProtocolVersion;
use crate::wire::{Reader, Sink};

/// The last packet of a connection, from either side (server-sent only in MQTT 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// Why; Success (normal disconnection) before MQTT 5.
    pub reason_code: ReasonCode,
    /// MQTT 5 properties.
    pub properties: PropertyBox<DisconnectProperties>,
}

impl Disconnect {
    /// A DISCONNECT with this reason and no properties.
    pub fn new(reason_code: ReasonCode) -> Self {
        Self {
            reason_code,
            properties: PropertyBox::default(),
        }
    }

    pub(crate) fn decode(reader: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        if !version.is_v5() {
            return Ok(Self::new(ReasonCode::Success));
        }
        let (reason_code, properties) = read_reason_and_properties(reader, PacketType::Disconnect, |r| {
            DisconnectProperties::decode(r, PacketType::Disconnect)
        })?;
        Ok(Self {
            reason_code,
            properties: PropertyBox::new(properties),
        })
    }
}

impl Encode for Disconnect {
    fn first_byte(&self) -> u8 {
        (PacketType::Disconnect as u8) << 4
    }

    fn write_body<S: Sink>(&self, version: ProtocolVersion, sink: &mut S) -> Result<(), EncodeError> {
        if !version.is_v5() {
            return Ok(());
        }
        if self.reason_code != ReasonCode::Success && self.properties.is_empty() {
            // The Property Length may be omitted here (§3.14.2.2.1), but some clients (rumqttc
            // 0.25) then fail to read the reason code; writing the 0 costs one byte per DISCONNECT.
            sink.put_u8(self.reason_code.as_u8());
            sink.put_u8(0);
            return Ok(());
        }
        write_reason_and_properties(sink, self.reason_code, self.properties.is_empty(), |s| {
            self.properties.encode(s)
        })
    }
}
