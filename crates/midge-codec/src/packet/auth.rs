//! AUTH (§3.15, MQTT 5 only): one step of an enhanced authentication exchange.
//!
//! Apart from the bare form (Success, no properties), an AUTH must name its Authentication
//! Method (§3.15.2.2.2), and Authentication Data never comes without one.

use super::{Encode, PacketType, read_reason_and_properties, write_reason_and_properties};
use crate::error::{DecodeError, EncodeError};
use crate::properties::{AuthProperties, PropertyBox};
use crate::reason::ReasonCode;
use crate::types::ProtocolVersion;
use crate::wire::{Reader, Sink};

/// One step of enhanced authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// Success, Continue authentication, or Re-authenticate.
    pub reason_code: ReasonCode,
    /// The method and data of this step.
    pub properties: PropertyBox<AuthProperties>,
}

impl Auth {
    pub(crate) fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
        let bare = reader.is_empty();
        let (reason_code, properties) = read_reason_and_properties(reader, PacketType::Auth, |r| {
            AuthProperties::decode(r, PacketType::Auth)
        })?;
        if properties.authentication_data.is_some() && properties.authentication_method.is_none() {
            return Err(DecodeError::AuthDataWithoutMethod);
        }
        if !bare && properties.authentication_method.is_none() {
            return Err(DecodeError::MissingAuthenticationMethod);
        }
        Ok(Self {
            reason_code,
            properties: PropertyBox::new(properties),
        })
    }
}

impl Encode for Auth {
    fn first_byte(&self) -> u8 {
        (PacketType::Auth as u8) << 4
    }

    fn write_body<S: Sink>(&self, version: ProtocolVersion, sink: &mut S) -> Result<(), EncodeError> {
        if !version.is_v5() {
            return Err(EncodeError::NotInVersion {
                packet: PacketType::Auth,
                version,
            });
        }
        write_reason_and_properties(sink, self.reason_code, self.properties.is_empty(), |s| {
            self.properties.encode(s)
        })
    }
}
