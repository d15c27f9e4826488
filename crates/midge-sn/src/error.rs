//! Every way a datagram fails to decode as an MQTT-SN message, or a message fails to encode.
//!
//! Each variant's message names the section of MQTT-SN v1.2 whose rule was broken. A gateway
//! drops a datagram that does not decode, without replying (a reply to a forged source would
//! make it a reflector), and counts it by [`DecodeError::kind`].

use crate::v12::MsgType;

/// Why a datagram is not an acceptable MQTT-SN message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer than two octets, or a three-octet length form cut short (§5.2.1).
    #[error("datagram of {0} bytes is too short for an MQTT-SN header (§5.2)")]
    TooShort(usize),
    /// The Length field does not equal the datagram's length (§5.2.1).
    #[error("length field says {declared} bytes but the datagram has {actual} (§5.2.1)")]
    LengthMismatch {
        /// What the Length field says.
        declared: usize,
        /// How many bytes arrived.
        actual: usize,
    },
    /// A message type the specification reserves (0x03, 0x11, 0x19, 0x1E–0xFD, 0xFF) (§5.2.2).
    #[error("reserved message type {0:#04x} (§5.2.2)")]
    ReservedMsgType(u8),
    /// A message whose variable part is shorter or longer than its type allows.
    #[error("{msg_type:?} with a variable part of {len} bytes (§5.4)")]
    BadBodyLength {
        /// The message type.
        msg_type: MsgType,
        /// The variable part's length.
        len: usize,
    },
    /// QoS -1 (`0b11`) outside PUBLISH, where it means nothing (§5.3.4).
    #[error("QoS -1 in {0:?}, allowed only in PUBLISH (§5.3.4)")]
    QosMinusOneNotAllowed(MsgType),
    /// TopicIdType `0b11`, which is reserved (§5.3.4).
    #[error("reserved topic id type 0b11 in {0:?} (§5.3.4)")]
    ReservedTopicIdType(MsgType),
    /// A text field (client identifier, topic name) that is not UTF-8.
    #[error("{field} of {msg_type:?} is not valid UTF-8")]
    InvalidUtf8 {
        /// The message type.
        msg_type: MsgType,
        /// Which field.
        field: &'static str,
    },
    /// A topic name field that is empty where a name is required (REGISTER, SUBSCRIBE by name).
    #[error("empty topic name in {0:?}")]
    EmptyTopicName(MsgType),
    /// A return code the specification reserves (0x04–0xFF) (§5.3.10).
    #[error("reserved return code {0:#04x} (§5.3.10)")]
    ReservedReturnCode(u8),
    /// A CONNECT whose ProtocolId is not 0x01 (§5.3.7).
    #[error("unsupported protocol id {0:#04x} in CONNECT (§5.3.7)")]
    UnsupportedProtocolId(u8),
    /// An Encapsulated message that encapsulates nothing, or another encapsulation (§5.5).
    #[error("encapsulated message with {0} (§5.5)")]
    BadEncapsulation(&'static str),
}

impl DecodeError {
    /// A short stable name for counting drops by cause (`$SYS`, metrics).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TooShort(_) => "too_short",
            Self::LengthMismatch { .. } => "length_mismatch",
            Self::ReservedMsgType(_) => "reserved_type",
            Self::BadBodyLength { .. } => "bad_length",
            Self::QosMinusOneNotAllowed(_) => "bad_qos",
            Self::ReservedTopicIdType(_) => "bad_topic_id_type",
            Self::InvalidUtf8 { .. } => "bad_utf8",
            Self::EmptyTopicName(_) => "empty_topic",
            Self::ReservedReturnCode(_) => "bad_return_code",
            Self::UnsupportedProtocolId(_) => "bad_protocol_id",
            Self::BadEncapsulation(_) => "bad_encapsulation",
        }
    }
}

/// Why a message cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The message would be longer than the 65535 octets the Length field can say (§5.2.1).
    #[error("message of {0} bytes exceeds MQTT-SN's 65535-byte limit (§5.2.1)")]
    TooLong(usize),
    /// A topic name carried inline in PUBLISH, which only a QoS -1 PUBLISH may do.
    #[error("an inline topic name needs QoS -1")]
    InlineTopicNeedsQosMinusOne,
    /// A field that must be non-empty is empty (a REGISTER or SUBSCRIBE topic name).
    #[error("empty topic name in {0:?}")]
    EmptyTopicName(MsgType),
    /// QoS -1 where only PUBLISH may carry it.
    #[error("QoS -1 in {0:?}, allowed only in PUBLISH (§5.3.4)")]
    QosMinusOneNotAllowed(MsgType),
    /// An encapsulation without a wireless node id or without a message, or around another
    /// encapsulation (§5.5).
    #[error("encapsulated message with {0} (§5.5)")]
    BadEncapsulation(&'static str),
}
