//! MQTT 5 reason codes (MQTT 5.0 §2.4) and the MQTT 3.1.1 CONNACK return codes (§3.2.2.3).
//!
//! One enum for every reason code byte the specification defines. Which codes a given packet may
//! carry is checked by the packet modules through [`ReasonCode::allowed_in`]; this module only
//! knows the values and their names.

use crate::packet::PacketType;

/// A reason code of MQTT 5.0 §2.4. The names follow the specification's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum ReasonCode {
    /// 0x00: Success, Normal disconnection, or Granted QoS 0 (by context).
    Success = 0x00,
    /// 0x01: Granted QoS 1.
    GrantedQos1 = 0x01,
    /// 0x02: Granted QoS 2.
    GrantedQos2 = 0x02,
    /// 0x04: Disconnect with Will Message.
    DisconnectWithWillMessage = 0x04,
    /// 0x10: No matching subscribers.
    NoMatchingSubscribers = 0x10,
    /// 0x11: No subscription existed.
    NoSubscriptionExisted = 0x11,
    /// 0x18: Continue authentication.
    ContinueAuthentication = 0x18,
    /// 0x19: Re-authenticate.
    ReAuthenticate = 0x19,
    /// 0x80: Unspecified error.
    UnspecifiedError = 0x80,
    /// 0x81: Malformed Packet.
    MalformedPacket = 0x81,
    /// 0x82: Protocol Error.
    ProtocolError = 0x82,
    /// 0x83: Implementation specific error.
    ImplementationSpecificError = 0x83,
    /// 0x84: Unsupported Protocol Version.
    UnsupportedProtocolVersion = 0x84,
    /// 0x85: Client Identifier not valid.
    ClientIdentifierNotValid = 0x85,
    /// 0x86: Bad User Name or Password.
    BadUserNameOrPassword = 0x86,
    /// 0x87: Not authorized.
    NotAuthorized = 0x87,
    /// 0x88: Server unavailable.
    ServerUnavailable = 0x88,
    /// 0x89: Server busy.
    ServerBusy = 0x89,
    /// 0x8A: Banned.
    Banned = 0x8A,
    /// 0x8B: Server shutting down.
    ServerShuttingDown = 0x8B,
    /// 0x8C: Bad authentication method.
    BadAuthenticationMethod = 0x8C,
    /// 0x8D: Keep Alive timeout.
    KeepAliveTimeout = 0x8D,
    /// 0x8E: Session taken over.
    SessionTakenOver = 0x8E,
    /// 0x8F: Topic Filter invalid.
    TopicFilterInvalid = 0x8F,
    /// 0x90: Topic Name invalid.
    TopicNameInvalid = 0x90,
    /// 0x91: Packet Identifier in use.
    PacketIdentifierInUse = 0x91,
    /// 0x92: Packet Identifier not found.
    PacketIdentifierNotFound = 0x92,
    /// 0x93: Receive Maximum exceeded.
    ReceiveMaximumExceeded = 0x93,
    /// 0x94: Topic Alias invalid.
    TopicAliasInvalid = 0x94,
    /// 0x95: Packet too large.
    PacketTooLarge = 0x95,
    /// 0x96: Message rate too high.
    MessageRateTooHigh = 0x96,
    /// 0x97: Quota exceeded.
    QuotaExceeded = 0x97,
    /// 0x98: Administrative action.
    AdministrativeAction = 0x98,
    /// 0x99: Payload format invalid.
    PayloadFormatInvalid = 0x99,
    /// 0x9A: Retain not supported.
    RetainNotSupported = 0x9A,
    /// 0x9B: QoS not supported.
    QosNotSupported = 0x9B,
    /// 0x9C: Use another server.
    UseAnotherServer = 0x9C,
    /// 0x9D: Server moved.
    ServerMoved = 0x9D,
    /// 0x9E: Shared Subscriptions not supported.
    SharedSubscriptionsNotSupported = 0x9E,
    /// 0x9F: Connection rate exceeded.
    ConnectionRateExceeded = 0x9F,
    /// 0xA0: Maximum connect time.
    MaximumConnectTime = 0xA0,
    /// 0xA1: Subscription Identifiers not supported.
    SubscriptionIdentifiersNotSupported = 0xA1,
    /// 0xA2: Wildcard Subscriptions not supported.
    WildcardSubscriptionsNotSupported = 0xA2,
}

use ReasonCode as R;

/// Every code, for table-driven conversion and tests.
const ALL: [ReasonCode; 43] = [
    R::Success,
    R::GrantedQos1,
    R::GrantedQos2,
    R::DisconnectWithWillMessage,
    R::NoMatchingSubscribers,
    R::NoSubscriptionExisted,
    R::ContinueAuthentication,
    R::ReAuthenticate,
    R::UnspecifiedError,
    R::MalformedPacket,
    R::ProtocolError,
    R::ImplementationSpecificError,
    R::UnsupportedProtocolVersion,
    R::ClientIdentifierNotValid,
    R::BadUserNameOrPassword,
    R::NotAuthorized,
    R::ServerUnavailable,
    R::ServerBusy,
    R::Banned,
    R::ServerShuttingDown,
    R::BadAuthenticationMethod,
    R::KeepAliveTimeout,
    R::SessionTakenOver,
    R::TopicFilterInvalid,
    R::TopicNameInvalid,
    R::PacketIdentifierInUse,
    R::PacketIdentifierNotFound,
    R::ReceiveMaximumExceeded,
    R::TopicAliasInvalid,
    R::PacketTooLarge,
    R::MessageRateTooHigh,
    R::QuotaExceeded,
    R::AdministrativeAction,
    R::PayloadFormatInvalid,
    R::RetainNotSupported,
    R::QosNotSupported,
    R::UseAnotherServer,
    R::ServerMoved,
    R::SharedSubscriptionsNotSupported,
    R::ConnectionRateExceeded,
    R::MaximumConnectTime,
    R::SubscriptionIdentifiersNotSupported,
    R::WildcardSubscriptionsNotSupported,
];

impl ReasonCode {
    /// The code for a byte, if the specification defines one.
    pub fn from_u8(byte: u8) -> Option<Self> {
        ALL.iter().copied().find(|code| *code as u8 == byte)
    }

    /// The byte on the wire.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// True for codes of 0x80 and above, which report a failure.
    pub fn is_error(self) -> bool {
        self.as_u8() >= 0x80
    }

    /// Whether MQTT 5.0 allows this code in a packet of the given type (§2.4, and the reason code
    /// table of each packet's variable header).
    pub fn allowed_in(self, packet: PacketType) -> bool {
        let code = self;
        match packet {
            PacketType::ConnAck => {
                code == Self::Success
                    || (code.is_error()
                        && !matches!(
                            code,
                            Self::DisconnectWithWillMessage
                                | Self::ServerShuttingDown
                                | Self::KeepAliveTimeout
                                | Self::SessionTakenOver
                                | Self::TopicFilterInvalid
                                | Self::PacketIdentifierInUse
                                | Self::PacketIdentifierNotFound
                                | Self::ReceiveMaximumExceeded
                                | Self::TopicAliasInvalid
                                | Self::MessageRateTooHigh
                                | Self::AdministrativeAction
                                | Self::SharedSubscriptionsNotSupported
                                | Self::MaximumConnectTime
                                | Self::SubscriptionIdentifiersNotSupported
                                | Self::WildcardSubscriptionsNotSupported
                        ))
            }
            PacketType::PubAck | PacketType::PubRec => matches!(
                code,
                Self::Success
                    | Self::NoMatchingSubscribers
                    | Self::UnspecifiedError
                    | Self::ImplementationSpecificError
                    | Self::NotAuthorized
                    | Self::TopicNameInvalid
                    | Self::PacketIdentifierInUse
                    | Self::QuotaExceeded
                    | Self::PayloadFormatInvalid
            ),
            PacketType::PubRel | PacketType::PubComp => {
                matches!(code, Self::Success | Self::PacketIdentifierNotFound)
            }
            PacketType::SubAck => matches!(
                code,
                Self::Success
                    | Self::GrantedQos1
                    | Self::GrantedQos2
                    | Self::UnspecifiedError
                    | Self::ImplementationSpecificError
                    | Self::NotAuthorized
                    | Self::TopicFilterInvalid
                    | Self::PacketIdentifierInUse
                    | Self::QuotaExceeded
                    | Self::SharedSubscriptionsNotSupported
                    | Self::SubscriptionIdentifiersNotSupported
                    | Self::WildcardSubscriptionsNotSupported
            ),
            PacketType::UnsubAck => matches!(
                code,
                Self::Success
                    | Self::NoSubscriptionExisted
                    | Self::UnspecifiedError
                    | Self::ImplementationSpecificError
                    | Self::NotAuthorized
                    | Self::TopicFilterInvalid
                    | Self::PacketIdentifierInUse
            ),
            PacketType::Disconnect => {
                matches!(code, Self::Success | Self::DisconnectWithWillMessage)
                    || (code.is_error()
                        && !matches!(
                            code,
                            Self::UnsupportedProtocolVersion
                                | Self::ClientIdentifierNotValid
                                | Self::BadUserNameOrPassword
                                | Self::ServerUnavailable
                                | Self::Banned
                                | Self::BadAuthenticationMethod
                                | Self::PacketIdentifierInUse
                                | Self::PacketIdentifierNotFound
                        ))
            }
            PacketType::Auth => matches!(
                code,
                Self::Success | Self::ContinueAuthentication | Self::ReAuthenticate
            ),
            _ => false,
        }
    }
}

/// The return code of an MQTT 3.1 / 3.1.1 CONNACK (3.1.1 §3.2.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ConnectReturnCode {
    /// 0x00: Connection Accepted.
    Accepted = 0,
    /// 0x01: unacceptable protocol version.
    UnacceptableProtocolVersion = 1,
    /// 0x02: identifier rejected.
    IdentifierRejected = 2,
    /// 0x03: server unavailable.
    ServerUnavailable = 3,
    /// 0x04: bad user name or password.
    BadUserNameOrPassword = 4,
    /// 0x05: not authorized.
    NotAuthorized = 5,
}

impl ConnectReturnCode {
    /// The return code for a byte, if 3.1.1 defines one.
    pub fn from_u8(byte: u8) -> Option<Self> {
        Some(match byte {
            0 => Self::Accepted,
            1 => Self::UnacceptableProtocolVersion,
            2 => Self::IdentifierRejected,
            3 => Self::ServerUnavailable,
            4 => Self::BadUserNameOrPassword,
            5 => Self::NotAuthorized,
            _ => return None,
        })
    }

    /// The closest 3.1.1 return code for an MQTT 5 CONNACK reason code, as a broker answering a
    /// 3.1.1 client needs it.
    pub fn from_reason(code: ReasonCode) -> Self {
        match code {
            R::Success => Self::Accepted,
            R::UnsupportedProtocolVersion => Self::UnacceptableProtocolVersion,
            R::ClientIdentifierNotValid => Self::IdentifierRejected,
            R::BadUserNameOrPassword | R::BadAuthenticationMethod => Self::BadUserNameOrPassword,
            R::NotAuthorized | R::Banned => Self::NotAuthorized,
            _ => Self::ServerUnavailable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_byte() {
        for code in ALL {
            assert_eq!(ReasonCode::from_u8(code.as_u8()), Some(code));
        }
        let defined = (0..=255u8).filter(|b| ReasonCode::from_u8(*b).is_some()).count();
        assert_eq!(defined, ALL.len());
        assert_eq!(ReasonCode::from_u8(0x03), None);
    }

    #[test]
    fn auth_allows_only_its_three_codes() {
        let allowed: Vec<_> = ALL.iter().filter(|c| c.allowed_in(PacketType::Auth)).collect();
        assert_eq!(allowed.len(), 3);
    }

    #[test]
    fn connack_refuses_disconnect_only_codes() {
        assert!(R::NotAuthorized.allowed_in(PacketType::ConnAck));
        assert!(!R::SessionTakenOver.allowed_in(PacketType::ConnAck));
        assert!(!R::GrantedQos1.allowed_in(PacketType::ConnAck));
    }
}
