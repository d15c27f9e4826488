//! CONNACK (§3.2): the server's answer to CONNECT.
//!
//! One value serves every version: the reason code is an MQTT 5 [`ReasonCode`], mapped to and from
//! the six 3.1.1 return codes at the wire (§3.2.2.3 of 3.1.1).

use super::{Encode, PacketType};
use crate::error::{DecodeError, EncodeError};
use crate::properties::{ConnAckProperties, PropertyBox};
use crate::reason::{ConnectReturnCode, ReasonCode};
use crate::types::ProtocolVersion;
use crate::wire::{Reader, Sink};

/// The server's answer to CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// Session Present.
    pub session_present: bool,
    /// The outcome. For 3.1/3.1.1 it travels as the nearest return code.
    pub reason_code: ReasonCode,
    /// MQTT 5 properties; empty for earlier versions.
    pub properties: PropertyBox<ConnAckProperties>,
}

impl ConnAck {
    /// A CONNACK with this outcome, no session and no properties.
    pub fn new(reason_code: ReasonCode) -> Self {
        Self {
            session_present: false,
            reason_code,
            properties: PropertyBox::default(),
        }
    }

    pub(crate) fn decode(reader: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let flags = reader.u8("connect acknowledge flags")?;
        if flags & 0xFE != 0 {
            return Err(DecodeError::ConnAckReservedFlags);
        }
        let code = reader.u8("connect reason code")?;
        let invalid = DecodeError::InvalidReasonCode {
            packet: PacketType::ConnAck,
            code,
        };
        let (reason_code, properties) = if version.is_v5() {
            let reason = ReasonCode::from_u8(code)
                .filter(|reason| reason.allowed_in(PacketType::ConnAck))
                .ok_or(invalid)?;
            (reason, ConnAckProperties::decode(reader, PacketType::ConnAck)?)
        } else {
            let reason = match ConnectReturnCode::from_u8(code).ok_or(invalid)? {
                ConnectReturnCode::Accepted => ReasonCode::Success,
                ConnectReturnCode::UnacceptableProtocolVersion => ReasonCode::UnsupportedProtocolVersion,
                ConnectReturnCode::IdentifierRejected => ReasonCode::ClientIdentifierNotValid,
                ConnectReturnCode::ServerUnavailable => ReasonCode::ServerUnavailable,
                ConnectReturnCode::BadUserNameOrPassword => ReasonCode::BadUserNameOrPassword,
                ConnectReturnCode::NotAuthorized => ReasonCode::NotAuthorized,
            };
            (reason, ConnAckProperties::default())
        };
        if properties.authentication_data.is_some() && properties.authentication_method.is_none() {
            return Err(DecodeError::AuthDataWithoutMethod);
        }
        Ok(Self {
            session_present: flags & 1 != 0,
            reason_code,
            properties: PropertyBox::new(properties),
        })
    }
}

impl Encode for ConnAck {
    fn first_byte(&self) -> u8 {
        (PacketType::ConnAck as u8) << 4
    }

    fn write_body<S: Sink>(&self, version: ProtocolVersion, sink: &mut S) -> Result<(), EncodeError> {
        sink.put_u8(u8::from(self.session_present));
        if version.is_v5() {
            sink.put_u8(self.reason_code.as_u8());
            self.properties.encode(sink)
        } else {
            sink.put_u8(ConnectReturnCode::from_reason(self.reason_code) as u8);
            Ok(())
        }
    }
}
