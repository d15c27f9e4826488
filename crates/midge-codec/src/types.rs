//! Small value types shared by every packet: protocol version, QoS, packet identifiers,
//! subscription identifiers and the MQTT 5 payload format indicator.
//!
//! Each type makes an illegal value unrepresentable (QoS 3, packet identifier 0, subscription
//! identifier 0 or above 268,435,455), so code past the decoder never checks them again.

use std::fmt;
use std::num::{NonZeroU16, NonZeroU32};

/// A packet identifier (§2.2.1): never 0 [MQTT-2.2.1-3].
pub type PacketId = NonZeroU16;

/// The protocol versions the codec speaks, by their CONNECT protocol level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProtocolVersion {
    /// MQTT 3.1: protocol name `MQIsdp`, level 3.
    V31,
    /// MQTT 3.1.1: protocol name `MQTT`, level 4.
    V311,
    /// MQTT 5.0: protocol name `MQTT`, level 5.
    V5,
}

impl ProtocolVersion {
    /// The protocol level byte of CONNECT.
    pub fn level(self) -> u8 {
        match self {
            Self::V31 => 3,
            Self::V311 => 4,
            Self::V5 => 5,
        }
    }

    /// The protocol name of CONNECT.
    pub fn protocol_name(self) -> &'static str {
        match self {
            Self::V31 => "MQIsdp",
            Self::V311 | Self::V5 => "MQTT",
        }
    }

    /// True for MQTT 5, the only version with properties and reason codes.
    pub fn is_v5(self) -> bool {
        self == Self::V5
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V31 => "3.1",
            Self::V311 => "3.1.1",
            Self::V5 => "5.0",
        })
    }
}

/// Quality of service (§4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum QoS {
    /// At most once.
    #[default]
    AtMostOnce = 0,
    /// At least once.
    AtLeastOnce = 1,
    /// Exactly once.
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS for the two bits 0..=2; `None` for 3, which every version forbids.
    pub fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            0 => Some(Self::AtMostOnce),
            1 => Some(Self::AtLeastOnce),
            2 => Some(Self::ExactlyOnce),
            _ => None,
        }
    }

    /// The two-bit value.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// A subscription identifier (§3.8.2.1.2): 1 to 268,435,455, sent as a variable byte integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(NonZeroU32);

impl SubscriptionId {
    /// The largest value a variable byte integer can hold.
    pub const MAX: u32 = crate::wire::VARINT_MAX;

    /// A subscription identifier, if `value` is in 1..=268,435,455.
    pub fn new(value: u32) -> Option<Self> {
        if value > Self::MAX {
            return None;
        }
        NonZeroU32::new(value).map(Self)
    }

    /// The value.
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

/// The MQTT 5 Payload Format Indicator (§3.3.2.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadFormat {
    /// 0: unspecified bytes.
    Unspecified = 0,
    /// 1: UTF-8 encoded character data.
    Utf8 = 1,
}

/// Retain Handling of MQTT 5 subscription options (§3.8.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RetainHandling {
    /// 0: send retained messages at the time of the subscribe.
    #[default]
    SendAtSubscribe = 0,
    /// 1: send them only if the subscription did not exist.
    SendIfNew = 1,
    /// 2: do not send retained messages.
    DoNotSend = 2,
}

impl RetainHandling {
    /// The retain handling for the two bits; `None` for 3, a protocol error.
    pub fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            0 => Some(Self::SendAtSubscribe),
            1 => Some(Self::SendIfNew),
            2 => Some(Self::DoNotSend),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_id_range_is_one_to_varint_max() {
        assert!(SubscriptionId::new(0).is_none());
        assert_eq!(SubscriptionId::new(1).map(SubscriptionId::get), Some(1));
        assert!(SubscriptionId::new(268_435_455).is_some());
        assert!(SubscriptionId::new(268_435_456).is_none());
    }

    #[test]
    fn qos_three_is_not_a_qos() {
        assert_eq!(QoS::from_bits(2), Some(QoS::ExactlyOnce));
        assert_eq!(QoS::from_bits(3), None);
    }
}
