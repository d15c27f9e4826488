//! The fields MQTT-SN v1.2 messages share: message types (§5.2.2), QoS and the flags octet
//! (§5.3.4), return codes (§5.3.10) and the three ways to name a topic (§5.3.11, §6.7).

use bytestring::ByteString;

/// The MsgType octet (§5.2.2, Table 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs, reason = "the names are the specification's")]
pub enum MsgType {
    Advertise = 0x00,
    SearchGw = 0x01,
    GwInfo = 0x02,
    Connect = 0x04,
    ConnAck = 0x05,
    WillTopicReq = 0x06,
    WillTopic = 0x07,
    WillMsgReq = 0x08,
    WillMsg = 0x09,
    Register = 0x0A,
    RegAck = 0x0B,
    Publish = 0x0C,
    PubAck = 0x0D,
    PubComp = 0x0E,
    PubRec = 0x0F,
    PubRel = 0x10,
    Subscribe = 0x12,
    SubAck = 0x13,
    Unsubscribe = 0x14,
    UnsubAck = 0x15,
    PingReq = 0x16,
    PingResp = 0x17,
    Disconnect = 0x18,
    WillTopicUpd = 0x1A,
    WillTopicResp = 0x1B,
    WillMsgUpd = 0x1C,
    WillMsgResp = 0x1D,
    Encapsulated = 0xFE,
}

impl MsgType {
    /// The type an octet names, or `None` for the reserved values.
    pub fn from_u8(code: u8) -> Option<Self> {
        Some(match code {
            0x00 => Self::Advertise,
            0x01 => Self::SearchGw,
            0x02 => Self::GwInfo,
            0x04 => Self::Connect,
            0x05 => Self::ConnAck,
            0x06 => Self::WillTopicReq,
            0x07 => Self::WillTopic,
            0x08 => Self::WillMsgReq,
            0x09 => Self::WillMsg,
            0x0A => Self::Register,
            0x0B => Self::RegAck,
            0x0C => Self::Publish,
            0x0D => Self::PubAck,
            0x0E => Self::PubComp,
            0x0F => Self::PubRec,
            0x10 => Self::PubRel,
            0x12 => Self::Subscribe,
            0x13 => Self::SubAck,
            0x14 => Self::Unsubscribe,
            0x15 => Self::UnsubAck,
            0x16 => Self::PingReq,
            0x17 => Self::PingResp,
            0x18 => Self::Disconnect,
            0x1A => Self::WillTopicUpd,
            0x1B => Self::WillTopicResp,
            0x1C => Self::WillMsgUpd,
            0x1D => Self::WillMsgResp,
            0xFE => Self::Encapsulated,
            _ => return None,
        })
    }

    /// The octet.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// The QoS field of the flags octet (§5.3.4): the three MQTT levels, and -1, a PUBLISH sent
/// without a connection and never acknowledged (§6.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QoS {
    /// QoS -1 (`0b11`): no connection, no acknowledgement; PUBLISH only.
    MinusOne,
    /// QoS 0 (`0b00`).
    AtMostOnce,
    /// QoS 1 (`0b01`).
    AtLeastOnce,
    /// QoS 2 (`0b10`).
    ExactlyOnce,
}

impl QoS {
    pub(crate) fn from_bits(bits: u8) -> Self {
        match bits & 0b11 {
            0b00 => Self::AtMostOnce,
            0b01 => Self::AtLeastOnce,
            0b10 => Self::ExactlyOnce,
            _ => Self::MinusOne,
        }
    }

    pub(crate) fn bits(self) -> u8 {
        match self {
            Self::AtMostOnce => 0b00,
            Self::AtLeastOnce => 0b01,
            Self::ExactlyOnce => 0b10,
            Self::MinusOne => 0b11,
        }
    }

    /// The level as a number, -1 to 2.
    pub fn level(self) -> i8 {
        match self {
            Self::MinusOne => -1,
            Self::AtMostOnce => 0,
            Self::AtLeastOnce => 1,
            Self::ExactlyOnce => 2,
        }
    }
}

/// The ReturnCode octet (§5.3.10). These four are the whole vocabulary: there is no "not
/// authorized" in MQTT-SN 1.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ReturnCode {
    /// 0x00.
    Accepted = 0x00,
    /// 0x01 Rejected: congestion. The client waits and tries again.
    Congestion = 0x01,
    /// 0x02 Rejected: invalid topic ID. The client registers the topic again.
    InvalidTopicId = 0x02,
    /// 0x03 Rejected: not supported.
    NotSupported = 0x03,
}

impl ReturnCode {
    pub(crate) fn from_u8(code: u8) -> Option<Self> {
        match code {
            0x00 => Some(Self::Accepted),
            0x01 => Some(Self::Congestion),
            0x02 => Some(Self::InvalidTopicId),
            0x03 => Some(Self::NotSupported),
            _ => None,
        }
    }

    /// The octet.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// The TopicIdType bits of the flags octet (§5.3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TopicIdType {
    Normal = 0b00,
    Predefined = 0b01,
    Short = 0b10,
}

/// The topic of a PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PublishTopic {
    /// A topic id the gateway and client agreed on with REGISTER (TopicIdType `00`).
    Id(u16),
    /// A predefined topic id, agreed out of band (TopicIdType `01`, §6.7).
    Predefined(u16),
    /// A two-character short topic name carried in the TopicId field (TopicIdType `10`, §6.7).
    Short([u8; 2]),
    /// A topic name inline, in a QoS -1 PUBLISH only: TopicIdType `00` with the TopicId field
    /// holding the name's length and the name between MsgId and Data. Not in §5.4.12 but what
    /// Paho's QoS -1 sample sends and MQTT-SN 2.0's Annex C describes for 1.2.
    Name(ByteString),
}

/// The topic of a SUBSCRIBE or UNSUBSCRIBE (§5.4.15, §5.4.17).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicSpec {
    /// A topic name or filter (wildcards allowed), TopicIdType `00`.
    Name(ByteString),
    /// A predefined topic id, TopicIdType `01`.
    Predefined(u16),
    /// A two-character short topic name, TopicIdType `10`.
    Short([u8; 2]),
}
