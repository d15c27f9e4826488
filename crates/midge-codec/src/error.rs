//! Every way a packet can fail to decode or encode, and the one place where a decode failure is
//! mapped to the MQTT 5 reason code a broker sends before closing the connection.
//!
//! Each variant's message names the normative statement it breaks (`[MQTT-x.y.z-n]`, MQTT 5.0
//! numbering unless it says 3.1.1), or the section when the specification states the rule without
//! a number. The messages are for logs; code matches on the variants.

use crate::packet::PacketType;
use crate::reason::ReasonCode;

/// Why a byte sequence is not an acceptable MQTT packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The Remaining Length (or another Variable Byte Integer) runs past four bytes.
    #[error("[MQTT-1.5.5-1] variable byte integer longer than four bytes")]
    VarIntTooLong,
    /// A Variable Byte Integer does not use the fewest bytes that can hold its value.
    #[error("[MQTT-1.5.5-1] variable byte integer not encoded in the minimum number of bytes")]
    VarIntNotMinimal,
    /// The packet is larger than the receiver accepts; known from the fixed header alone.
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes [MQTT-3.1.2-24]")]
    PacketTooLarge {
        /// Total size the fixed header declares, fixed header included.
        size: u64,
        /// The configured limit.
        max: u32,
    },
    /// Control packet type 0, or 15 (AUTH) before MQTT 5.
    #[error("reserved control packet type {0} (§2.1.2)")]
    ReservedPacketType(u8),
    /// Fixed header flag bits that the packet type reserves are not as specified.
    #[error("[MQTT-2.1.3-1] invalid fixed header flags {flags:#06b} for {packet:?}")]
    InvalidHeaderFlags {
        /// The packet whose flags were wrong.
        packet: PacketType,
        /// The low nibble of the first byte.
        flags: u8,
    },
    /// A QoS field holds 3.
    #[error("QoS 3 in {field} [MQTT-3.3.1-4]")]
    InvalidQos {
        /// Which QoS field.
        field: &'static str,
    },
    /// DUP is set on a QoS 0 PUBLISH.
    #[error("[MQTT-3.3.1-2] DUP flag set on a QoS 0 PUBLISH")]
    DupOnQos0,
    /// The packet ends before a field does.
    #[error("packet ends inside the {field} field (§1.5)")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// Bytes are left after the last field of the packet.
    #[error(
        "{extra} unexpected bytes after the end of the {packet:?} packet (§2.1.4: the Remaining Length must cover exactly the packet)"
    )]
    TrailingBytes {
        /// The packet that was decoded.
        packet: PacketType,
        /// How many bytes were left over.
        extra: usize,
    },
    /// A UTF-8 Encoded String is not well-formed UTF-8 (this also covers UTF-16 surrogates).
    #[error("[MQTT-1.5.4-1] {field} is not well-formed UTF-8")]
    InvalidUtf8 {
        /// The field holding the string.
        field: &'static str,
    },
    /// A UTF-8 Encoded String contains U+0000.
    #[error("[MQTT-1.5.4-2] {field} contains the null character U+0000")]
    NullCharacter {
        /// The field holding the string.
        field: &'static str,
    },
    /// CONNECT names a protocol this codec does not speak.
    #[error("[MQTT-3.1.2-1] unsupported protocol name {name:?} with level {level}")]
    UnsupportedProtocolName {
        /// The name as sent, lossily decoded.
        name: String,
        /// The level that followed it, if any.
        level: u8,
    },
    /// CONNECT carries a protocol level other than 3 (with `MQIsdp`), 4 or 5 (with `MQTT`).
    #[error("[MQTT-3.1.2-2] unsupported protocol level {0}")]
    UnsupportedProtocolLevel(u8),
    /// The CONNECT flags' reserved bit 0 is set.
    #[error("[MQTT-3.1.2-3] reserved CONNECT flag is set")]
    ConnectReservedFlag,
    /// Will QoS or Will Retain is set although the Will Flag is not.
    #[error("[MQTT-3.1.2-11] will QoS or will retain set without the will flag")]
    WillFlagsWithoutWill,
    /// MQTT 3.1/3.1.1 CONNECT has the Password Flag without the User Name Flag.
    #[error("[MQTT-3.1.2-22] (3.1.1) password flag set without the user name flag")]
    PasswordWithoutUsername,
    /// A packet identifier that must be non-zero is zero.
    #[error("[MQTT-2.2.1-3] packet identifier is 0 in {packet:?}")]
    ZeroPacketId {
        /// The packet carrying it.
        packet: PacketType,
    },
    /// A Topic Name contains `+` or `#`.
    #[error("[MQTT-3.3.2-2] topic name contains a wildcard character")]
    WildcardInTopicName,
    /// A Topic Name is empty (and, in MQTT 5, no Topic Alias stands in for it).
    #[error("[MQTT-4.7.3-1] topic name is empty and no topic alias is given")]
    EmptyTopicName,
    /// A Topic Filter breaks the wildcard or shared subscription rules.
    #[error("invalid topic filter: {0}")]
    InvalidTopicFilter(#[from] crate::topic::TopicFilterError),
    /// SUBSCRIBE carries no topic filter.
    #[error("[MQTT-3.8.3-2] SUBSCRIBE contains no topic filter")]
    EmptySubscribe,
    /// UNSUBSCRIBE carries no topic filter.
    #[error("[MQTT-3.10.3-2] UNSUBSCRIBE contains no topic filter")]
    EmptyUnsubscribe,
    /// SUBSCRIBE options have reserved bits set.
    #[error("[MQTT-3.8.3-5] reserved bits set in subscription options {0:#04x}")]
    SubscriptionOptionsReserved(u8),
    /// Retain Handling is 3.
    #[error("retain handling 3 in subscription options is a protocol error (§3.8.3.1)")]
    InvalidRetainHandling,
    /// No Local is set on a shared subscription.
    #[error("[MQTT-3.8.3-4] No Local set on a shared subscription")]
    NoLocalOnSharedSubscription,
    /// A property identifier the packet may not carry, or one the specification does not define.
    #[error("property identifier {id:#04x} is not valid in {packet:?} (§2.2.2.2)")]
    InvalidPropertyId {
        /// The packet (or `Connect` for the will properties).
        packet: PacketType,
        /// The identifier as sent.
        id: u32,
    },
    /// A property that may appear once appears again.
    #[error("property {name} included more than once (§2.2.2.2)")]
    DuplicateProperty {
        /// The property's name in the specification.
        name: &'static str,
    },
    /// A property holds a value the specification forbids (0 where it must be non-zero, a
    /// boolean other than 0 or 1, ...).
    #[error("property {name} has the invalid value {value} (see the property in §2.2.2.2)")]
    InvalidPropertyValue {
        /// The property's name in the specification.
        name: &'static str,
        /// The value as sent.
        value: u32,
    },
    /// An AUTH packet beyond the bare Success form without an Authentication Method.
    #[error("AUTH without an authentication method (§3.15.2.2.2)")]
    MissingAuthenticationMethod,
    /// Authentication Data without an Authentication Method.
    #[error("authentication data without an authentication method (§3.1.2.11.10)")]
    AuthDataWithoutMethod,
    /// A reason code the packet may not carry.
    #[error("reason code {code:#04x} is not valid in {packet:?} (§2.4)")]
    InvalidReasonCode {
        /// The packet carrying it.
        packet: PacketType,
        /// The byte as sent.
        code: u8,
    },
    /// CONNACK acknowledge flags have reserved bits set.
    #[error("[MQTT-3.2.2-1] reserved CONNACK acknowledge flags set")]
    ConnAckReservedFlags,
}

impl DecodeError {
    /// The MQTT 5 reason code a server sends (in DISCONNECT, or CONNACK while connecting) for this
    /// failure. Every mapping from decode failure to reason code lives here.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Self::PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            Self::UnsupportedProtocolName { .. } | Self::UnsupportedProtocolLevel(_) => {
                ReasonCode::UnsupportedProtocolVersion
            }
            Self::InvalidTopicFilter(_) => ReasonCode::TopicFilterInvalid,
            // [MQTT-3.3.2-8]: a Topic Alias of 0.
            Self::InvalidPropertyValue {
                name: "Topic Alias", ..
            } => ReasonCode::TopicAliasInvalid,
            Self::ZeroPacketId { .. }
            | Self::EmptyTopicName
            | Self::EmptySubscribe
            | Self::EmptyUnsubscribe
            | Self::InvalidRetainHandling
            | Self::NoLocalOnSharedSubscription
            | Self::DuplicateProperty { .. }
            | Self::InvalidPropertyValue { .. }
            | Self::AuthDataWithoutMethod
            | Self::MissingAuthenticationMethod
            | Self::InvalidReasonCode { .. } => ReasonCode::ProtocolError,
            Self::VarIntTooLong
            | Self::VarIntNotMinimal
            | Self::ReservedPacketType(_)
            | Self::InvalidHeaderFlags { .. }
            | Self::InvalidQos { .. }
            | Self::DupOnQos0
            | Self::Truncated { .. }
            | Self::TrailingBytes { .. }
            | Self::InvalidUtf8 { .. }
            | Self::NullCharacter { .. }
            | Self::ConnectReservedFlag
            | Self::WillFlagsWithoutWill
            | Self::PasswordWithoutUsername
            | Self::WildcardInTopicName
            | Self::SubscriptionOptionsReserved(_)
            | Self::InvalidPropertyId { .. }
            | Self::ConnAckReservedFlags => ReasonCode::MalformedPacket,
        }
    }
}

/// Why a packet value cannot be put on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A string or binary field is longer than its two-byte length prefix can say.
    #[error("{field} is {len} bytes long; the limit is 65535")]
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// The packet's Remaining Length would exceed 268,435,455 bytes.
    #[error("packet body of {len} bytes exceeds the protocol maximum of 268435455")]
    PacketTooLarge {
        /// The Remaining Length it would need.
        len: usize,
    },
    /// A QoS 1 or 2 PUBLISH has no packet identifier.
    #[error("QoS 1 and 2 PUBLISH packets need a packet identifier")]
    MissingPacketId,
    /// The packet does not exist in the protocol version asked for (AUTH before MQTT 5).
    #[error("{packet:?} does not exist in MQTT {version}")]
    NotInVersion {
        /// The packet.
        packet: PacketType,
        /// The version asked for.
        version: crate::types::ProtocolVersion,
    },
}
