//! MQTT 3.1, 3.1.1 and 5.0 control packets for the Midge broker: types, strict decoding and
//! encoding. No I/O, no async runtime.
//!
//! # Layout
//! - [`types`]: protocol version, QoS, packet and subscription identifiers.
//! - [`reason`]: MQTT 5 reason codes and 3.1.1 CONNACK return codes.
//! - [`topic`]: validated Topic Names and Topic Filters, shared subscription syntax.
//! - [`properties`]: one typed MQTT 5 property struct per packet.
//! - [`packet`]: the fifteen packets, one module each, and the fixed header.
//! - [`decoder`]: framing packets off a read buffer, with the size limit applied early.
//! - [`error`]: every decode failure, with the normative statement it breaks and its reason code.
//!
//! # Why it is written here and not taken from a crate
//! It is the broker's hottest and most exposed code: we need every MUST of both specifications
//! enforced with a typed error, one type model for all three versions, zero-copy topics and
//! payloads, and encode-once fan-out ([`packet::PublishTemplate`]). No published MQTT crate gives
//! all four (`shared/reference/ecosystem.md` §B1).
//!
//! # Example
//! ```
//! use bytes::BytesMut;
//! use midge_codec::{Decoder, Packet, ProtocolVersion, Publish, TopicName};
//!
//! let publish = Publish::new(TopicName::try_from("sensors/1").unwrap(), "21.5");
//! let mut buf = BytesMut::new();
//! publish.encode(ProtocolVersion::V311, &mut buf).unwrap();
//!
//! let decoder = Decoder::default();
//! assert_eq!(decoder.decode(&mut buf).unwrap(), Some(Packet::Publish(publish)));
//! ```

pub mod decoder;
pub mod error;
pub mod packet;
pub mod properties;
pub mod reason;
pub mod topic;
pub mod types;
mod wire;

pub use decoder::{Decoder, PROTOCOL_MAX_PACKET_SIZE};
pub use error::{DecodeError, EncodeError};
pub use packet::{
    Ack, Auth, ConnAck, Connect, Disconnect, FixedHeader, Packet, PacketType, Publish, PublishParts,
    PublishTemplate, SubAck, Subscribe, Subscription, SubscriptionOptions, UnsubAck, Unsubscribe, Will,
    decode_packet,
};
pub use properties::UserProperty;
pub use reason::{ConnectReturnCode, ReasonCode};
pub use topic::{SharedFilter, TopicFilter, TopicFilterError, TopicName, TopicNameError};
pub use types::{PacketId, PayloadFormat, ProtocolVersion, QoS, RetainHandling, SubscriptionId};
pub use wire::VARINT_MAX;
