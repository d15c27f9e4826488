//! SUBSCRIBE (§3.8): a packet identifier, MQTT 5 properties, and one or more topic filters each
//! with its subscription options.
//!
//! Options are checked to the bit: in 3.1/3.1.1 only the QoS bits may be set [MQTT-3-8.3-4 of
//! 3.1.1]; in 5.0 bits 6 and 7 are reserved [MQTT-3.8.3-5], Retain Handling 3 is a protocol error,
//! and No Local may not be set on a shared subscription [MQTT-3.8.3-4].

use super::{Encode, PacketType, read_packet_id};
use crate::error::{DecodeError, EncodeError};
use crate::properties::SubscribeProperties;
use crate::topic::TopicFilter;
use crate::types::{PacketId, ProtocolVersion, QoS, RetainHandling};
use crate::wire::{Reader, Sink};

const NO_LOCAL: u8 = 0b0000_0100;
const RETAIN_AS_PUBLISHED: u8 = 0b0000_1000;
const RETAIN_HANDLING_SHIFT: u8 = 4;

/// A request for one or more subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet Identifier.
    pub packet_id: PacketId,
    /// The subscriptions, in order; never empty on the wire [MQTT-3.8.3-2].
    pub subscriptions: Vec<Subscription>,
    /// MQTT 5 properties.
    pub properties: SubscribeProperties,
}

/// One topic filter and its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The Topic Filter.
    pub filter: TopicFilter,
    /// The options.
    pub options: SubscriptionOptions,
}

/// Subscription Options (§3.8.3.1). Only `qos` exists before MQTT 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscriptionOptions {
    /// Maximum QoS.
    pub qos: QoS,
    /// No Local: do not send the subscriber's own publications back.
    pub no_local: bool,
    /// Retain As Published: keep the RETAIN flag as the publisher set it.
    pub retain_as_published: bool,
    /// Retain Handling.
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    fn decode(byte: u8, filter: &TopicFilter, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let reserved = if version.is_v5() { 0b1100_0000 } else { 0b1111_1100 };
        if byte & reserved != 0 {
            return Err(DecodeError::SubscriptionOptionsReserved(byte));
        }
        let qos = QoS::from_bits(byte & 0b11).ok_or(DecodeError::InvalidQos {
            field: "subscription QoS",
        })?;
        let retain_handling = RetainHandling::from_bits((byte >> RETAIN_HANDLING_SHIFT) & 0b11)
            .ok_or(DecodeError::InvalidRetainHandling)?;
        let no_local = byte & NO_LOCAL != 0;
        if no_local && filter.shared().is_some() {
            return Err(DecodeError::NoLocalOnSharedSubscription);
        }
        Ok(Self {
            qos,
            no_local,
            retain_as_published: byte & RETAIN_AS_PUBLISHED != 0,
            retain_handling,
        })
    }

    fn encode(self, version: ProtocolVersion) -> u8 {
        let mut byte = self.qos.as_u8();
        if version.is_v5() {
            if self.no_local {
                byte |= NO_LOCAL;
            }
            if self.retain_as_published {
                byte |= RETAIN_AS_PUBLISHED;
            }
            byte |= (self.retain_handling as u8) << RETAIN_HANDLING_SHIFT;
        }
        byte
    }
}

/// Reads topic filters to the end of the packet, each checked against §4.7 and §4.8.2.
pub(crate) fn read_topic_filter(reader: &mut Reader) -> Result<TopicFilter, DecodeError> {
    Ok(TopicFilter::new(reader.string("topic filter")?)?)
}

impl Subscribe {
    pub(crate) fn decode(reader: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = read_packet_id(reader, PacketType::Subscribe)?;
        let properties = if version.is_v5() {
            SubscribeProperties::decode(reader, PacketType::Subscribe)?
        } else {
            SubscribeProperties::default()
        };
        let mut subscriptions = Vec::new();
        while !reader.is_empty() {
            let filter = read_topic_filter(reader)?;
            let options = SubscriptionOptions::decode(reader.u8("subscription options")?, &filter, version)?;
            subscriptions.push(Subscription { filter, options });
        }
        if subscriptions.is_empty() {
            return Err(DecodeError::EmptySubscribe);
        }
        Ok(Self {
            packet_id,
            subscriptions,
            properties,
        })
    }
}

impl Encode for Subscribe {
    fn first_byte(&self) -> u8 {
        (PacketType::Subscribe as u8) << 4 | PacketType::Subscribe.required_flags()
    }

    fn write_body<S: Sink>(&self, version: ProtocolVersion, sink: &mut S) -> Result<(), EncodeError> {
        sink.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.encode(sink)?;
        }
        for subscription in &self.subscriptions {
            sink.put_str("topic filter", &subscription.filter)?;
            sink.put_u8(subscription.options.encode(version));
        }
        Ok(())
    }
}
