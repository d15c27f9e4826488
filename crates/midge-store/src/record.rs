//! The records the store keeps and their encodings.
//!
//! Every value starts with [`FORMAT`], the record format version, so that a later Midge can
//! read (or knowingly refuse) what this one wrote. Message bodies and subscriptions are kept
//! as MQTT 5 packets encoded by `midge-codec`: topic, payload and every property go through
//! the one fuzzed codec rather than a second hand-written format. The few fields no packet
//! has (wall-clock times, the publisher, queue state) are a fixed header before the packet.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use midge_codec::properties::{PublishProperties, SubscribeProperties};
use midge_codec::{
    Packet, PacketId, ProtocolVersion, Publish, QoS, Subscribe, SubscriptionId, SubscriptionOptions,
    TopicFilter, TopicName, decode_packet,
};

/// The record format this build writes and reads.
pub const FORMAT: u8 = 1;

/// A stored value that cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The value ends before the record does.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// Written by a format this build does not read.
    #[error("record format {0}, this build reads {FORMAT}")]
    Format(u8),
    /// A field holds a value no writer produces.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// The embedded packet does not decode.
    #[error("embedded packet: {0}")]
    Packet(String),
}

/// An application message: a retained message, a will, or a body shared by queue entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// Topic.
    pub topic: TopicName,
    /// Payload.
    pub payload: Bytes,
    /// The QoS it was published with.
    pub qos: QoS,
    /// The RETAIN flag it was published with.
    pub retain: bool,
    /// The properties forwarded with it.
    pub properties: PublishProperties,
    /// When it expires, in milliseconds since the Unix epoch.
    pub expires_at: Option<u64>,
    /// The client that published it, for No Local.
    pub publisher: Option<ByteString>,
}

/// A will waiting for its connection to end badly or for its delay to pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WillRecord {
    /// The will message.
    pub message: MessageRecord,
    /// Will Delay Interval, seconds.
    pub delay_secs: u32,
}

/// What a session keeps besides its subscriptions and queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Session Expiry Interval in seconds; `None` never expires.
    pub expiry_secs: Option<u32>,
    /// The protocol of the last connection.
    pub version: ProtocolVersion,
    /// The user name of the last connection, for access decisions on delivery.
    pub username: Option<ByteString>,
    /// The listener of the last connection, likewise.
    pub listener: u32,
    /// When the last connection ended; `None` while one was attached.
    pub disconnected_at: Option<u64>,
    /// The will, if one is pending.
    pub will: Option<WillRecord>,
}

/// One subscription of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    /// The filter, `$share/...` included.
    pub filter: TopicFilter,
    /// Its options.
    pub options: SubscriptionOptions,
    /// Its MQTT 5 Subscription Identifier.
    pub id: Option<SubscriptionId>,
}

/// Where a stored delivery stands (§4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    /// Queued, not sent yet.
    Queued,
    /// QoS 1 PUBLISH sent, PUBACK awaited.
    AwaitingPubAck,
    /// QoS 2 PUBLISH sent, PUBREC awaited.
    AwaitingPubRec,
    /// PUBREL sent, PUBCOMP awaited.
    AwaitingPubComp,
}

/// One subscriber's delivery of a stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRecord {
    /// The message body's key.
    pub message_id: u64,
    /// The QoS the subscriber gets it at.
    pub qos: QoS,
    /// The RETAIN flag the subscriber sees.
    pub retain: bool,
    /// Subscription identifiers of the subscriptions it matched.
    pub subscription_ids: Vec<SubscriptionId>,
    /// Where it stands.
    pub state: EntryState,
    /// The packet identifier it was sent with, once sent.
    pub packet_id: Option<PacketId>,
}

/// A topic id of an MQTT-SN client (MQTT-SN 1.2 §6.5), kept with its persistent session so
/// that the client can go on publishing on it after the broker restarts; the id is in the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnTopicRecord {
    /// The topic the id stands for.
    pub topic: TopicName,
}

fn header(buf: &mut BytesMut) {
    buf.put_u8(FORMAT);
}

fn read_header(buf: &mut &[u8]) -> Result<(), RecordError> {
    match take_u8(buf, "format")? {
        FORMAT => Ok(()),
        other => Err(RecordError::Format(other)),
    }
}

fn take_u8(buf: &mut &[u8], field: &'static str) -> Result<u8, RecordError> {
    if buf.remaining() < 1 {
        return Err(RecordError::Truncated(field));
    }
    Ok(buf.get_u8())
}

fn take_u16(buf: &mut &[u8], field: &'static str) -> Result<u16, RecordError> {
    if buf.remaining() < 2 {
        return Err(RecordError::Truncated(field));
    }
    Ok(buf.get_u16())
}

fn take_u32(buf: &mut &[u8], field: &'static str) -> Result<u32, RecordError> {
    if buf.remaining() < 4 {
        return Err(RecordError::Truncated(field));
    }
    Ok(buf.get_u32())
}

fn take_u64(buf: &mut &[u8], field: &'static str) -> Result<u64, RecordError> {
    if buf.remaining() < 8 {
        return Err(RecordError::Truncated(field));
    }
    Ok(buf.get_u64())
}

fn put_text(buf: &mut BytesMut, text: Option<&ByteString>) {
    match text {
        None => buf.put_u8(0),
        Some(text) => {
            buf.put_u8(1);
            let bytes = text.as_bytes();
            buf.put_u16(u16::try_from(bytes.len()).unwrap_or(u16::MAX));
            buf.put_slice(bytes.get(..usize::from(u16::MAX)).unwrap_or(bytes));
        }
    }
}

fn take_text(buf: &mut &[u8], field: &'static str) -> Result<Option<ByteString>, RecordError> {
    match take_u8(buf, field)? {
        0 => Ok(None),
        1 => {
            let len = usize::from(take_u16(buf, field)?);
            if buf.remaining() < len {
                return Err(RecordError::Truncated(field));
            }
            let text = std::str::from_utf8(&buf[..len]).map_err(|_| RecordError::Invalid(field))?;
            let text = ByteString::from(text);
            buf.advance(len);
            Ok(Some(text))
        }
        _ => Err(RecordError::Invalid(field)),
    }
}

fn put_optional_u64(buf: &mut BytesMut, value: Option<u64>) {
    match value {
        None => buf.put_u8(0),
        Some(value) => {
            buf.put_u8(1);
            buf.put_u64(value);
        }
    }
}

fn take_optional_u64(buf: &mut &[u8], field: &'static str) -> Result<Option<u64>, RecordError> {
    match take_u8(buf, field)? {
        0 => Ok(None),
        1 => Ok(Some(take_u64(buf, field)?)),
        _ => Err(RecordError::Invalid(field)),
    }
}

fn qos_from(bits: u8, field: &'static str) -> Result<QoS, RecordError> {
    QoS::from_bits(bits).ok_or(RecordError::Invalid(field))
}

impl MessageRecord {
    /// The value stored for this message.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.topic.len() + self.payload.len() + 32);
        header(&mut buf);
        self.encode_into(&mut buf);
        buf.freeze()
    }

    fn encode_into(&self, buf: &mut BytesMut) {
        put_optional_u64(buf, self.expires_at);
        put_text(buf, self.publisher.as_ref());
        let mut publish = Publish::new(self.topic.clone(), self.payload.clone());
        publish.qos = self.qos;
        publish.retain = self.retain;
        publish.properties = self.properties.clone().into();
        if self.qos != QoS::AtMostOnce {
            publish.packet_id = PacketId::new(1);
        }
        // A message the broker accepted always encodes; a failure leaves a record that
        // will not decode, reported when read.
        if let Err(error) = Packet::Publish(publish).encode(ProtocolVersion::V5, buf) {
            tracing::error!(%error, topic = %self.topic, "could not encode a message for the store");
        }
    }

    /// Reads a value written by [`MessageRecord::encode`].
    pub fn decode(value: &[u8]) -> Result<Self, RecordError> {
        let mut buf = value;
        read_header(&mut buf)?;
        Self::decode_from(&mut buf)
    }

    fn decode_from(buf: &mut &[u8]) -> Result<Self, RecordError> {
        let expires_at = take_optional_u64(buf, "expiry")?;
        let publisher = take_text(buf, "publisher")?;
        let packet = decode_packet(Bytes::copy_from_slice(buf), ProtocolVersion::V5)
            .map_err(|e| RecordError::Packet(e.to_string()))?;
        buf.advance(buf.remaining());
        let Packet::Publish(publish) = packet else {
            return Err(RecordError::Invalid("message packet type"));
        };
        Ok(Self {
            topic: publish.topic,
            payload: publish.payload,
            qos: publish.qos,
            retain: publish.retain,
            properties: publish.properties.into_inner(),
            expires_at,
            publisher,
        })
    }
}

impl SessionRecord {
    /// The value stored for this session.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(64);
        header(&mut buf);
        match self.expiry_secs {
            None => buf.put_u8(0),
            Some(seconds) => {
                buf.put_u8(1);
                buf.put_u32(seconds);
            }
        }
        buf.put_u8(self.version.level());
        put_text(&mut buf, self.username.as_ref());
        buf.put_u32(self.listener);
        put_optional_u64(&mut buf, self.disconnected_at);
        match &self.will {
            None => buf.put_u8(0),
            Some(will) => {
                buf.put_u8(1);
                buf.put_u32(will.delay_secs);
                will.message.encode_into(&mut buf);
            }
        }
        buf.freeze()
    }

    /// Reads a value written by [`SessionRecord::encode`].
    pub fn decode(value: &[u8]) -> Result<Self, RecordError> {
        let mut buf = value;
        read_header(&mut buf)?;
        let expiry_secs = match take_u8(&mut buf, "expiry")? {
            0 => None,
            1 => Some(take_u32(&mut buf, "expiry")?),
            _ => return Err(RecordError::Invalid("expiry")),
        };
        let version = match take_u8(&mut buf, "protocol version")? {
            3 => ProtocolVersion::V31,
            4 => ProtocolVersion::V311,
            5 => ProtocolVersion::V5,
            _ => return Err(RecordError::Invalid("protocol version")),
        };
        let username = take_text(&mut buf, "user name")?;
        let listener = take_u32(&mut buf, "listener")?;
        let disconnected_at = take_optional_u64(&mut buf, "disconnection time")?;
        let will = match take_u8(&mut buf, "will")? {
            0 => None,
            1 => {
                let delay_secs = take_u32(&mut buf, "will delay")?;
                Some(WillRecord {
                    delay_secs,
                    message: MessageRecord::decode_from(&mut buf)?,
                })
            }
            _ => return Err(RecordError::Invalid("will")),
        };
        if buf.has_remaining() {
            return Err(RecordError::Invalid("trailing bytes"));
        }
        Ok(Self {
            expiry_secs,
            version,
            username,
            listener,
            disconnected_at,
            will,
        })
    }
}

impl SubscriptionRecord {
    /// The value stored for this subscription: an MQTT 5 SUBSCRIBE carrying it.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.filter.len() + 16);
        header(&mut buf);
        let mut properties = SubscribeProperties::default();
        properties.subscription_identifier = self.id;
        let subscribe = Subscribe {
            packet_id: PacketId::MIN,
            subscriptions: vec![midge_codec::Subscription {
                filter: self.filter.clone(),
                options: self.options,
            }],
            properties,
        };
        if let Err(error) = Packet::Subscribe(subscribe).encode(ProtocolVersion::V5, &mut buf) {
            tracing::error!(%error, filter = %self.filter, "could not encode a subscription for the store");
        }
        buf.freeze()
    }

    /// Reads a value written by [`SubscriptionRecord::encode`].
    pub fn decode(value: &[u8]) -> Result<Self, RecordError> {
        let mut buf = value;
        read_header(&mut buf)?;
        let packet = decode_packet(Bytes::copy_from_slice(buf), ProtocolVersion::V5)
            .map_err(|e| RecordError::Packet(e.to_string()))?;
        let Packet::Subscribe(subscribe) = packet else {
            return Err(RecordError::Invalid("subscription packet type"));
        };
        let id = subscribe.properties.subscription_identifier;
        let mut subscriptions = subscribe.subscriptions.into_iter();
        match (subscriptions.next(), subscriptions.next()) {
            (Some(subscription), None) => Ok(Self {
                filter: subscription.filter,
                options: subscription.options,
                id,
            }),
            _ => Err(RecordError::Invalid("subscription count")),
        }
    }
}

impl SnTopicRecord {
    /// The value stored for this topic id: the format, then the topic name.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.topic.len() + 1);
        header(&mut buf);
        buf.put_slice(self.topic.as_bytes());
        buf.freeze()
    }

    /// Reads a value written by [`SnTopicRecord::encode`].
    pub fn decode(value: &[u8]) -> Result<Self, RecordError> {
        let mut buf = value;
        read_header(&mut buf)?;
        let text = std::str::from_utf8(buf).map_err(|_| RecordError::Invalid("topic"))?;
        let topic = TopicName::try_from(text).map_err(|_| RecordError::Invalid("topic"))?;
        Ok(Self { topic })
    }
}

impl EntryState {
    fn as_u8(self) -> u8 {
        match self {
            Self::Queued => 0,
            Self::AwaitingPubAck => 1,
            Self::AwaitingPubRec => 2,
            Self::AwaitingPubComp => 3,
        }
    }

    fn from_u8(value: u8) -> Result<Self, RecordError> {
        Ok(match value {
            0 => Self::Queued,
            1 => Self::AwaitingPubAck,
            2 => Self::AwaitingPubRec,
            3 => Self::AwaitingPubComp,
            _ => return Err(RecordError::Invalid("entry state")),
        })
    }
}

impl EntryRecord {
    /// The value stored for this delivery.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(16 + 4 * self.subscription_ids.len());
        header(&mut buf);
        buf.put_u64(self.message_id);
        buf.put_u8(self.qos.as_u8() | u8::from(self.retain) << 2 | self.state.as_u8() << 3);
        buf.put_u16(self.packet_id.map_or(0, PacketId::get));
        // At most one identifier per subscription of the session, far below this.
        let ids = self
            .subscription_ids
            .get(..usize::from(u16::MAX))
            .unwrap_or(&self.subscription_ids);
        buf.put_u16(u16::try_from(ids.len()).unwrap_or(u16::MAX));
        for id in ids {
            buf.put_u32(id.get());
        }
        buf.freeze()
    }

    /// Reads a value written by [`EntryRecord::encode`].
    pub fn decode(value: &[u8]) -> Result<Self, RecordError> {
        let mut buf = value;
        read_header(&mut buf)?;
        let message_id = take_u64(&mut buf, "message id")?;
        let flags = take_u8(&mut buf, "flags")?;
        if flags & 0b1110_0000 != 0 {
            return Err(RecordError::Invalid("flags"));
        }
        let qos = qos_from(flags & 0b11, "QoS")?;
        let retain = flags & 0b100 != 0;
        let state = EntryState::from_u8(flags >> 3)?;
        let packet_id = PacketId::new(take_u16(&mut buf, "packet id")?);
        let count = take_u16(&mut buf, "subscription identifiers")?;
        let mut subscription_ids = Vec::with_capacity(usize::from(count).min(buf.remaining() / 4));
        for _ in 0..count {
            let id = take_u32(&mut buf, "subscription identifier")?;
            subscription_ids
                .push(SubscriptionId::new(id).ok_or(RecordError::Invalid("subscription identifier"))?);
        }
        if buf.has_remaining() {
            return Err(RecordError::Invalid("trailing bytes"));
        }
        if (state != EntryState::Queued) != packet_id.is_some() || qos == QoS::AtMostOnce {
            return Err(RecordError::Invalid("entry state"));
        }
        Ok(Self {
            message_id,
            qos,
            retain,
            subscription_ids,
            state,
            packet_id,
        })
    }
}

#[cfg(test)]
mod tests;
