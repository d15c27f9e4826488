//! MQTT 5 properties (§2.2.2): one typed struct per packet, holding exactly the properties that
//! packet may carry.
//!
//! The [`property_set!`] macro writes each struct and its decoder and encoder from one table of
//! (field, type, identifier, name), so the table in §2.2.2.2 is transcribed once. The decoder
//! refuses an identifier the packet may not carry (Malformed Packet), a second copy of a property
//! that may appear once (Protocol Error), and values the specification forbids (0 for Receive
//! Maximum, 2 for a boolean, ...). User Properties keep their order and may repeat [MQTT-3.1.3-10].

use std::fmt;
use std::num::{NonZeroU16, NonZeroU32};
use std::ops::{Deref, DerefMut};

use bytes::Bytes;
use bytestring::ByteString;

use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::topic::{TopicName, read_topic_name};
use crate::types::{PayloadFormat, QoS, SubscriptionId};
use crate::wire::{Counter, Reader, Sink, VARINT_MAX};

/// The identifier of the User Property, which every packet may carry.
const USER_PROPERTY: u8 = 0x26;

/// A User Property (§3.1.2.11.8): a name and value pair; several may share a name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserProperty {
    /// The name.
    pub name: ByteString,
    /// The value.
    pub value: ByteString,
}

impl UserProperty {
    /// A pair from anything that converts into strings.
    pub fn new(name: impl Into<ByteString>, value: impl Into<ByteString>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A property struct the packet types defined here can keep behind a [`PropertyBox`]: it has a
/// shared empty value to read when nothing is set.
pub trait PropertySet: Default + 'static {
    /// The empty set, shared.
    fn empty() -> &'static Self;
    /// True when no property is set.
    fn is_empty(&self) -> bool;
}

/// MQTT 5 properties behind one pointer, allocated only when a property is set.
///
/// The property structs of PUBLISH, CONNACK, DISCONNECT and AUTH are large (up to 248 bytes), and
/// most packets carry none (no packet before MQTT 5 does): kept inline they made every
/// [`Packet`](crate::Packet) 256 bytes, copied each time a packet value moves. Boxed, a packet
/// is under 100 bytes, and an empty box allocates nothing.
///
/// Reading goes through `Deref` and never allocates: an empty box reads as the empty set.
/// Writing through `DerefMut` allocates the set the first time; to clear the properties, assign
/// `PropertyBox::default()`. Equality, `Debug` and `Default` are those of the set itself.
#[derive(Clone, Default)]
pub struct PropertyBox<T>(Option<Box<T>>);

impl<T: PropertySet> PropertyBox<T> {
    /// Boxes `properties`, unless there are none.
    pub fn new(properties: T) -> Self {
        if properties.is_empty() {
            Self(None)
        } else {
            Self(Some(Box::new(properties)))
        }
    }

    /// The set, if one was ever allocated (it may have been emptied since): `None` is the
    /// common case of no properties, told apart without reading the set.
    #[inline]
    pub fn allocated(&self) -> Option<&T> {
        self.0.as_deref()
    }

    /// The properties, moved out of the box.
    pub fn into_inner(self) -> T {
        self.0.map_or_else(T::default, |properties| *properties)
    }
}

impl<T: PropertySet> From<T> for PropertyBox<T> {
    fn from(properties: T) -> Self {
        Self::new(properties)
    }
}

impl<T: PropertySet> Deref for PropertyBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_deref().unwrap_or_else(|| T::empty())
    }
}

impl<T: PropertySet> DerefMut for PropertyBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.get_or_insert_with(Box::default)
    }
}

impl<T: PropertySet + PartialEq> PartialEq for PropertyBox<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: PropertySet + Eq> Eq for PropertyBox<T> {}

impl<T: PropertySet + fmt::Debug> fmt::Debug for PropertyBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

/// The wire form of a property's value.
pub(crate) trait PropertyValue: Sized {
    fn decode(reader: &mut Reader, name: &'static str) -> Result<Self, DecodeError>;
    /// Writes the property: identifier `id`, then the value, in as few writes as the value
    /// allows (one for fixed-size values, two for strings and binary data).
    fn encode<S: Sink>(&self, id: u8, sink: &mut S, name: &'static str) -> Result<(), EncodeError>;
}

impl PropertyValue for bool {
    fn decode(reader: &mut Reader, name: &'static str) -> Result<Self, DecodeError> {
        match reader.u8(name)? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DecodeError::InvalidPropertyValue {
                name,
                value: value.into(),
            }),
        }
    }
    fn encode<S: Sink>(&self, id: u8, sink: &mut S, _: &'static str) -> Result<(), EncodeError> {
        sink.put(&[id, u8::from(*self)]);
        Ok(())
    }
}

/// Maximum QoS (§3.2.2.3.4) is the only QoS property: 0 or 1, since 2 is said by omission.
impl PropertyValue for QoS {
    fn decode(reader: &mut Reader, name: &'static str) -> Result<Self, DecodeError> {
        match reader.u8(name)? {
            0 => Ok(Self::AtMostOnce),
            1 => Ok(Self::AtLeastOnce),
            value => Err(DecodeError::InvalidPropertyValue {
                name,
                value: value.into(),
            }),
        }
    }
    fn encode<S: Sink>(&self, id: u8, sink: &mut S, _: &'static str) -> Result<(), EncodeError> {
        sink.put(&[id, self.as_u8()]);
        Ok(())
    }
}

impl PropertyValue for PayloadFormat {
    fn decode(reader: &mut Reader, name: &'static str) -> Result<Self, DecodeError> {
        match reader.u8(name)? {
            0 => Ok(Self::Unspecified),
            1 => Ok(Self::Utf8),
            value => Err(DecodeError::InvalidPropertyValue {
                name,
                value: value.into(),
            }),
        }
    }
    fn encode<S: Sink>(&self, id: u8, sink: &mut S, _: &'static str) -> Result<(), EncodeError> {
        sink.put(&[id, *self as u8]);
        Ok(())
    }
}

impl PropertyValue for u16 {
    fn decode(reader: &mut Reader, name: &'static str) -> Result<Self, DecodeError> {
        reader.u16(name)
    }
    fn encode<S: Sink>(&self, id: u8, sink: &mut S, _: &'static str) -> Result<(), EncodeError> {
        let [b0, b1] = self.to_be_bytes();
        sink.put(&[id, b0, b1]);
        Ok(())
    }
}

impl PropertyValue for NonZeroU16 {
    fn decode(reader: &mut Reader, name: &'static str) -> Result<Self, DecodeError> {
        Self::new(reader.u16(name)?).ok_or(DecodeError::InvalidPropertyValue { name, value: 0 })
    }
    fn encode<S: Sink>(&self, id: u8, sink: &mut S, _: &'static str) -> Result<(), EncodeError> {
        let [b0, b1] = self.get().to_be_bytes();
        sink.put(&[id, b0, b1]);
        Ok(())
    }
}

impl PropertyValue for u32 {
    fn decode(reader: &mut Reader, name: &'static str) -> Result<Self, DecodeError> {
        reader.u32(name)
    }
    fn encode<S: Sink>(&self, id: u8, sink: &mut S, _: &'static str) -> Result<(), EncodeError> {
        let [b0, b1, b2, b3] = self.to_be_bytes();
        sink.put(&[id, b0, b1, b2, b3]);
        Ok(())
    }
}

impl PropertyValue for NonZeroU32 {
    fn decode(reader: &mut Reader, name: &'static str) -> Result<Self, DecodeError> {
        Self::new(reader.u32(name)?).ok_or(DecodeError::InvalidPropertyValue { name, value: 0 })
    }
    fn encode<S: Sink>(&self, id: u8, sink: &mut S, _: &'static str) -> Result<(), EncodeError> {
        let [b0, b1, b2, b3] = self.get().to_be_bytes();
        sink.put(&[id, b0, b1, b2, b3]);
        Ok(())
    }
}

impl PropertyValue for SubscriptionId {
    fn decode(reader: &mut Reader, name: &'static str) -> Result<Self, DecodeError> {
        let value = reader.varint(name)?;
        Self::new(value).ok_or(DecodeError::InvalidPropertyValue { name, value })
    }
    fn encode<S: Sink>(&self, id: u8, sink: &mut S, _: &'static str) -> Result<(), EncodeError> {
        sink.put_u8(id);
        sink.put_varint(self.get());
        Ok(())
    }
}

impl PropertyValue for ByteString {
    fn decode(reader: &mut Reader, name: &'static str) -> Result<Self, DecodeError> {
        reader.string(name)
    }
    fn encode<S: Sink>(&self, id: u8, sink: &mut S, name: &'static str) -> Result<(), EncodeError> {
        sink.put_tagged_binary(id, name, self.as_bytes())
    }
}

impl PropertyValue for Bytes {
    fn decode(reader: &mut Reader, name: &'static str) -> Result<Self, DecodeError> {
        reader.binary(name)
    }
    fn encode<S: Sink>(&self, id: u8, sink: &mut S, name: &'static str) -> Result<(), EncodeError> {
        sink.put_tagged_binary(id, name, self)
    }
}

/// The Response Topic is a Topic Name [MQTT-3.3.2-13] [MQTT-3.3.2-14].
impl PropertyValue for TopicName {
    fn decode(reader: &mut Reader, name: &'static str) -> Result<Self, DecodeError> {
        read_topic_name(reader, name)
    }
    fn encode<S: Sink>(&self, id: u8, sink: &mut S, name: &'static str) -> Result<(), EncodeError> {
        sink.put_tagged_binary(id, name, self.as_bytes())
    }
}

/// Writes a property struct, its decoder and its encoder from the table of its properties.
/// `repeated` properties may appear more than once and are kept in a `Vec`.
macro_rules! property_set {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$field_meta:meta])* $field:ident : $ty:ty = $id:literal, $label:literal; )*
        }
        $( repeated {
            $( $(#[$rep_meta:meta])* $rep_field:ident : $rep_ty:ty = $rep_id:literal, $rep_label:literal; )*
        } )?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct $name {
            $( $(#[$field_meta])* pub $field: Option<$ty>, )*
            $( $( $(#[$rep_meta])* pub $rep_field: Vec<$rep_ty>, )* )?
            /// User Properties (0x26), in the order they were sent.
            pub user_properties: Vec<UserProperty>,
        }

        impl PropertySet for $name {
            fn empty() -> &'static Self {
                static EMPTY: $name = $name {
                    $( $field: None, )*
                    $( $( $rep_field: Vec::new(), )* )?
                    user_properties: Vec::new(),
                };
                &EMPTY
            }

            fn is_empty(&self) -> bool {
                $name::is_empty(self)
            }
        }

        impl $name {
            /// True when no property is set: the encoding is a single zero length byte.
            pub fn is_empty(&self) -> bool {
                true $( && self.$field.is_none() )*
                    $( $( && self.$rep_field.is_empty() )* )?
                    && self.user_properties.is_empty()
            }

            /// Reads the Property Length and the properties it covers. The properties are
            /// parsed from a reader of their own, so the packet's reader is not shared with
            /// (and can stay in registers around) the out-of-line parsing.
            #[inline]
            pub(crate) fn decode(reader: &mut Reader, packet: PacketType) -> Result<Self, DecodeError> {
                let len = reader.varint("property length")?;
                let reader = reader.sub_reader(len as usize, "properties")?;
                Self::decode_items(reader, packet)
            }

            fn decode_items(mut reader: Reader, packet: PacketType) -> Result<Self, DecodeError> {
                let mut props = Self::default();
                while !reader.is_empty() {
                    let id = reader.varint("property identifier")?;
                    match id {
                        $( $id => {
                            if props.$field.is_some() {
                                return Err(DecodeError::DuplicateProperty { name: $label });
                            }
                            props.$field = Some(<$ty as PropertyValue>::decode(&mut reader, $label)?);
                        } )*
                        $( $( $rep_id => {
                            let value = <$rep_ty as PropertyValue>::decode(&mut reader, $rep_label)?;
                            props.$rep_field.push(value);
                        } )* )?
                        0x26 => {
                            let name = reader.string("user property name")?;
                            let value = reader.string("user property value")?;
                            props.user_properties.push(UserProperty { name, value });
                        }
                        id => return Err(DecodeError::InvalidPropertyId { packet, id }),
                    }
                }
                Ok(props)
            }

            /// Writes the Property Length and the properties.
            #[allow(dead_code, reason = "PUBLISH measures its properties with its other sizes and writes them with encode_items")]
            pub(crate) fn encode<S: Sink>(&self, sink: &mut S) -> Result<(), EncodeError> {
                let len = self.encoded_items_len()?;
                sink.put_varint(len);
                self.encode_items(sink)
            }

            /// The Property Length: what the properties take, without the length itself.
            pub(crate) fn encoded_items_len(&self) -> Result<u32, EncodeError> {
                let mut counter = Counter::default();
                self.encode_items(&mut counter)?;
                if counter.0 > VARINT_MAX as usize {
                    return Err(EncodeError::PacketTooLarge { len: counter.0 });
                }
                Ok(counter.0 as u32)
            }

            /// Writes the properties, without the Property Length.
            pub(crate) fn encode_items<S: Sink>(&self, sink: &mut S) -> Result<(), EncodeError> {
                $( if let Some(value) = &self.$field {
                    value.encode($id, sink, $label)?;
                } )*
                $( $( for value in &self.$rep_field {
                    value.encode($rep_id, sink, $rep_label)?;
                } )* )?
                for pair in &self.user_properties {
                    sink.put_tagged_binary(USER_PROPERTY, "user property name", pair.name.as_bytes())?;
                    sink.put_str("user property value", &pair.value)?;
                }
                Ok(())
            }
        }
    };
}

property_set! {
    /// CONNECT properties (§3.1.2.11).
    ConnectProperties {
        /// Session Expiry Interval in seconds; absent means 0.
        session_expiry_interval: u32 = 0x11, "Session Expiry Interval";
        /// Receive Maximum: QoS 1 and 2 publications the client will process at once.
        receive_maximum: NonZeroU16 = 0x21, "Receive Maximum";
        /// Maximum Packet Size the client accepts.
        maximum_packet_size: NonZeroU32 = 0x27, "Maximum Packet Size";
        /// Topic Alias Maximum the client accepts.
        topic_alias_maximum: u16 = 0x22, "Topic Alias Maximum";
        /// Request Response Information.
        request_response_information: bool = 0x19, "Request Response Information";
        /// Request Problem Information.
        request_problem_information: bool = 0x17, "Request Problem Information";
        /// Authentication Method for enhanced authentication.
        authentication_method: ByteString = 0x15, "Authentication Method";
        /// Authentication Data.
        authentication_data: Bytes = 0x16, "Authentication Data";
    }
}

property_set! {
    /// Will properties of CONNECT (§3.1.3.2).
    WillProperties {
        /// Will Delay Interval in seconds.
        will_delay_interval: u32 = 0x18, "Will Delay Interval";
        /// Payload Format Indicator.
        payload_format_indicator: PayloadFormat = 0x01, "Payload Format Indicator";
        /// Message Expiry Interval in seconds.
        message_expiry_interval: u32 = 0x02, "Message Expiry Interval";
        /// Content Type.
        content_type: ByteString = 0x03, "Content Type";
        /// Response Topic.
        response_topic: TopicName = 0x08, "Response Topic";
        /// Correlation Data.
        correlation_data: Bytes = 0x09, "Correlation Data";
    }
}

property_set! {
    /// CONNACK properties (§3.2.2.3).
    ConnAckProperties {
        /// Session Expiry Interval the server uses.
        session_expiry_interval: u32 = 0x11, "Session Expiry Interval";
        /// Receive Maximum of the server.
        receive_maximum: NonZeroU16 = 0x21, "Receive Maximum";
        /// Maximum QoS the server supports (0 or 1; absent means 2).
        maximum_qos: QoS = 0x24, "Maximum QoS";
        /// Retain Available.
        retain_available: bool = 0x25, "Retain Available";
        /// Maximum Packet Size the server accepts.
        maximum_packet_size: NonZeroU32 = 0x27, "Maximum Packet Size";
        /// Assigned Client Identifier.
        assigned_client_identifier: ByteString = 0x12, "Assigned Client Identifier";
        /// Topic Alias Maximum of the server.
        topic_alias_maximum: u16 = 0x22, "Topic Alias Maximum";
        /// Reason String.
        reason_string: ByteString = 0x1F, "Reason String";
        /// Wildcard Subscription Available.
        wildcard_subscription_available: bool = 0x28, "Wildcard Subscription Available";
        /// Subscription Identifiers Available.
        subscription_identifiers_available: bool = 0x29, "Subscription Identifier Available";
        /// Shared Subscription Available.
        shared_subscription_available: bool = 0x2A, "Shared Subscription Available";
        /// Server Keep Alive, overriding the client's.
        server_keep_alive: u16 = 0x13, "Server Keep Alive";
        /// Response Information.
        response_information: ByteString = 0x1A, "Response Information";
        /// Server Reference.
        server_reference: ByteString = 0x1C, "Server Reference";
        /// Authentication Method.
        authentication_method: ByteString = 0x15, "Authentication Method";
        /// Authentication Data.
        authentication_data: Bytes = 0x16, "Authentication Data";
    }
}

property_set! {
    /// PUBLISH properties (§3.3.2.3).
    PublishProperties {
        /// Payload Format Indicator.
        payload_format_indicator: PayloadFormat = 0x01, "Payload Format Indicator";
        /// Message Expiry Interval in seconds.
        message_expiry_interval: u32 = 0x02, "Message Expiry Interval";
        /// Topic Alias; 0 is refused [MQTT-3.3.2-8].
        topic_alias: NonZeroU16 = 0x23, "Topic Alias";
        /// Response Topic.
        response_topic: TopicName = 0x08, "Response Topic";
        /// Correlation Data.
        correlation_data: Bytes = 0x09, "Correlation Data";
        /// Content Type.
        content_type: ByteString = 0x03, "Content Type";
    }
    repeated {
        /// Subscription Identifiers of the matching subscriptions (server to client only,
        /// [MQTT-3.3.4-6]; the broker checks the direction).
        subscription_identifiers: SubscriptionId = 0x0B, "Subscription Identifier";
    }
}

property_set! {
    /// Properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK: a Reason String and
    /// User Properties.
    AckProperties {
        /// Reason String.
        reason_string: ByteString = 0x1F, "Reason String";
    }
}

property_set! {
    /// SUBSCRIBE properties (§3.8.2.1).
    SubscribeProperties {
        /// Subscription Identifier.
        subscription_identifier: SubscriptionId = 0x0B, "Subscription Identifier";
    }
}

property_set! {
    /// UNSUBSCRIBE properties (§3.10.2.1): User Properties only.
    UnsubscribeProperties {}
}

property_set! {
    /// DISCONNECT properties (§3.14.2.2).
    DisconnectProperties {
        /// Session Expiry Interval (client to server only).
        session_expiry_interval: u32 = 0x11, "Session Expiry Interval";
        /// Reason String.
        reason_string: ByteString = 0x1F, "Reason String";
        /// Server Reference.
        server_reference: ByteString = 0x1C, "Server Reference";
    }
}

property_set! {
    /// AUTH properties (§3.15.2.2).
    AuthProperties {
        /// Authentication Method.
        authentication_method: ByteString = 0x15, "Authentication Method";
        /// Authentication Data.
        authentication_data: Bytes = 0x16, "Authentication Data";
        /// Reason String.
        reason_string: ByteString = 0x1F, "Reason String";
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    fn decode_connect(bytes: &'static [u8]) -> Result<ConnectProperties, DecodeError> {
        ConnectProperties::decode(&mut Reader::new(Bytes::from_static(bytes)), PacketType::Connect)
    }

    #[test]
    fn user_properties_keep_order_and_repeat() {
        let props = PublishProperties {
            user_properties: vec![
                UserProperty::new("b", "1"),
                UserProperty::new("a", "2"),
                UserProperty::new("b", "3"),
            ],
            ..Default::default()
        };
        let mut buf = BytesMut::new();
        props.encode(&mut buf).unwrap();
        let back = PublishProperties::decode(&mut Reader::new(buf.freeze()), PacketType::Publish).unwrap();
        assert_eq!(back, props);
    }

    #[test]
    fn property_box_allocates_only_when_set() {
        let mut props = PropertyBox::<PublishProperties>::default();
        assert!(props.topic_alias.is_none() && props.is_empty());
        assert!(props.0.is_none(), "reading allocated");
        assert!(PropertyBox::new(PublishProperties::default()).0.is_none());
        assert_eq!(
            format!("{props:?}"),
            format!("{:?}", PublishProperties::default())
        );

        props.message_expiry_interval = Some(5);
        assert!(props.0.is_some());
        assert_eq!(props.clone().into_inner().message_expiry_interval, Some(5));
        // Emptied again, it equals a box that never held anything.
        props.message_expiry_interval = None;
        assert_eq!(props, PropertyBox::default());
    }

    #[test]
    fn duplicate_single_property_is_a_protocol_error() {
        let err = decode_connect(&[10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2]).unwrap_err();
        assert_eq!(
            err,
            DecodeError::DuplicateProperty {
                name: "Session Expiry Interval"
            }
        );
    }

    #[test]
    fn property_not_allowed_in_packet_is_malformed() {
        // Topic Alias (0x23) in CONNECT.
        let err = decode_connect(&[3, 0x23, 0, 1]).unwrap_err();
        assert_eq!(
            err,
            DecodeError::InvalidPropertyId {
                packet: PacketType::Connect,
                id: 0x23
            }
        );
    }

    #[test]
    fn forbidden_values() {
        assert_eq!(
            decode_connect(&[3, 0x21, 0, 0]).unwrap_err(),
            DecodeError::InvalidPropertyValue {
                name: "Receive Maximum",
                value: 0
            }
        );
        assert_eq!(
            decode_connect(&[2, 0x17, 2]).unwrap_err(),
            DecodeError::InvalidPropertyValue {
                name: "Request Problem Information",
                value: 2
            }
        );
    }

    #[test]
    fn property_length_past_the_packet_is_truncated() {
        assert_eq!(
            decode_connect(&[9, 0x11, 0, 0]).unwrap_err(),
            DecodeError::Truncated { field: "properties" }
        );
    }
}
