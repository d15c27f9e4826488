//! CONNECT (§3.1): protocol name and level, connect flags, keep alive, properties, and the
//! payload of client identifier, will, user name and password.
//!
//! The decoder works out the protocol version from the packet itself: `MQIsdp` level 3 is
//! MQTT 3.1, `MQTT` level 4 is 3.1.1 and `MQTT` level 5 is 5.0. Anything else is an error the
//! broker answers with CONNACK 0x01 (3.1.1) or 0x84 (5.0) [MQTT-3.1.2-2]. Client identifier rules
//! that depend on configuration (length, zero-length with a persistent session) are the broker's.
//!
//! Mosquitto's bridges mark themselves by setting the high bit of a 3.1 or 3.1.1 protocol level
//! (`MQIsdp` 0x83, `MQTT` 0x84; its `try_private` option). The decoder reads that as the version
//! with [`Connect::bridge`] set, as Mosquitto does; MQTT 5 bridges use No Local instead.

use bytes::Bytes;
use bytestring::ByteString;

use super::{Encode, PacketType};
use crate::error::{DecodeError, EncodeError};
use crate::properties::{ConnectProperties, WillProperties};
use crate::topic::{TopicName, read_topic_name};
use crate::types::{ProtocolVersion, QoS};
use crate::wire::{Reader, Sink};

const RESERVED: u8 = 0b0000_0001;
const CLEAN_START: u8 = 0b0000_0010;
const WILL: u8 = 0b0000_0100;
const WILL_QOS_SHIFT: u8 = 3;
const WILL_RETAIN: u8 = 0b0010_0000;
const PASSWORD: u8 = 0b0100_0000;
const USERNAME: u8 = 0b1000_0000;

/// A client's request to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The protocol version the client speaks.
    pub protocol: ProtocolVersion,
    /// Clean Start (5.0) or Clean Session (3.1, 3.1.1).
    pub clean_start: bool,
    /// Keep Alive in seconds; 0 turns the mechanism off.
    pub keep_alive: u16,
    /// The Client Identifier; may be empty.
    pub client_id: ByteString,
    /// The Will Message, if the Will Flag is set.
    pub will: Option<Will>,
    /// User Name.
    pub username: Option<ByteString>,
    /// Password: binary data, not a string.
    pub password: Option<Bytes>,
    /// MQTT 5 properties; empty for earlier versions.
    pub properties: ConnectProperties,
    /// Mosquitto's bridge flag: the high bit of a 3.1 or 3.1.1 protocol level, set by a bridge
    /// that asks to be treated as one (not sent its own messages back, RETAIN as published).
    /// Never encoded for MQTT 5.
    pub bridge: bool,
}

/// A Will Message (§3.1.2.5, §3.1.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// Will Topic.
    pub topic: TopicName,
    /// Will Payload.
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will Retain.
    pub retain: bool,
    /// MQTT 5 will properties; empty for earlier versions.
    pub properties: WillProperties,
}

impl Connect {
    /// A CONNECT with the given version and client identifier and every option at its default:
    /// clean start, keep alive 60, no will, no credentials, no properties.
    pub fn new(protocol: ProtocolVersion, client_id: impl Into<ByteString>) -> Self {
        Self {
            protocol,
            clean_start: true,
            keep_alive: 60,
            client_id: client_id.into(),
            will: None,
            username: None,
            password: None,
            properties: ConnectProperties::default(),
            bridge: false,
        }
    }

    pub(crate) fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
        let (protocol, bridge) = read_protocol(reader)?;
        let flags = reader.u8("connect flags")?;
        if flags & RESERVED != 0 {
            return Err(DecodeError::ConnectReservedFlag);
        }
        let will_qos_bits = (flags >> WILL_QOS_SHIFT) & 0b11;
        let has_will = flags & WILL != 0;
        if !has_will && (will_qos_bits != 0 || flags & WILL_RETAIN != 0) {
            return Err(DecodeError::WillFlagsWithoutWill);
        }
        let will_qos = QoS::from_bits(will_qos_bits).ok_or(DecodeError::InvalidQos { field: "will QoS" })?;
        if !protocol.is_v5() && flags & PASSWORD != 0 && flags & USERNAME == 0 {
            return Err(DecodeError::PasswordWithoutUsername);
        }
        let keep_alive = reader.u16("keep alive")?;
        let properties = if protocol.is_v5() {
            let properties = ConnectProperties::decode(reader, PacketType::Connect)?;
            if properties.authentication_data.is_some() && properties.authentication_method.is_none() {
                return Err(DecodeError::AuthDataWithoutMethod);
            }
            properties
        } else {
            ConnectProperties::default()
        };
        let client_id = reader.string("client identifier")?;
        let will = if has_will {
            let properties = if protocol.is_v5() {
                WillProperties::decode(reader, PacketType::Connect)?
            } else {
                WillProperties::default()
            };
            let topic = read_topic_name(reader, "will topic")?;
            let payload = reader.binary("will payload")?;
            Some(Will {
                topic,
                payload,
                qos: will_qos,
                retain: flags & WILL_RETAIN != 0,
                properties,
            })
        } else {
            None
        };
        let username = if flags & USERNAME != 0 {
            Some(reader.string("user name")?)
        } else {
            None
        };
        let password = if flags & PASSWORD != 0 {
            Some(reader.binary("password")?)
        } else {
            None
        };
        Ok(Self {
            protocol,
            clean_start: flags & CLEAN_START != 0,
            keep_alive,
            client_id,
            will,
            username,
            password,
            properties,
            bridge,
        })
    }

    fn flags(&self) -> u8 {
        let mut flags = 0;
        if self.clean_start {
            flags |= CLEAN_START;
        }
        if let Some(will) = &self.will {
            flags |= WILL | (will.qos.as_u8() << WILL_QOS_SHIFT);
            if will.retain {
                flags |= WILL_RETAIN;
            }
        }
        if self.password.is_some() {
            flags |= PASSWORD;
        }
        if self.username.is_some() {
            flags |= USERNAME;
        }
        flags
    }
}

/// The bit of the protocol level a Mosquitto bridge sets (`try_private`).
const BRIDGE_BIT: u8 = 0x80;

/// Reads the protocol name and level and names the version they select, and whether the level
/// carries the bridge bit.
fn read_protocol(reader: &mut Reader) -> Result<(ProtocolVersion, bool), DecodeError> {
    let name = reader.binary("protocol name")?;
    let level = reader.u8("protocol level")?;
    match (&name[..], level) {
        (b"MQTT", 4) => Ok((ProtocolVersion::V311, false)),
        (b"MQTT", 5) => Ok((ProtocolVersion::V5, false)),
        (b"MQIsdp", 3) => Ok((ProtocolVersion::V31, false)),
        (b"MQTT", 0x84) => Ok((ProtocolVersion::V311, true)),
        (b"MQIsdp", 0x83) => Ok((ProtocolVersion::V31, true)),
        (b"MQTT" | b"MQIsdp", level) => Err(DecodeError::UnsupportedProtocolLevel(level)),
        (name, level) => Err(DecodeError::UnsupportedProtocolName {
            name: String::from_utf8_lossy(name).into_owned(),
            level,
        }),
    }
}

impl Encode for Connect {
    fn first_byte(&self) -> u8 {
        (PacketType::Connect as u8) << 4
    }

    fn write_body<S: Sink>(&self, _: ProtocolVersion, sink: &mut S) -> Result<(), EncodeError> {
        // CONNECT always speaks its own version, whatever the caller's.
        let version = self.protocol;
        sink.put_str("protocol name", version.protocol_name())?;
        let bridge = if self.bridge && !version.is_v5() {
            BRIDGE_BIT
        } else {
            0
        };
        sink.put_u8(version.level() | bridge);
        sink.put_u8(self.flags());
        sink.put_u16(self.keep_alive);
        if version.is_v5() {
            self.properties.encode(sink)?;
        }
        sink.put_str("client identifier", &self.client_id)?;
        if let Some(will) = &self.will {
            if version.is_v5() {
                will.properties.encode(sink)?;
            }
            sink.put_str("will topic", &will.topic)?;
            sink.put_binary("will payload", &will.payload)?;
        }
        if let Some(username) = &self.username {
            sink.put_str("user name", username)?;
        }
        if let Some(password) = &self.password {
            sink.put_binary("password", password)?;
        }
        Ok(())
    }
}
