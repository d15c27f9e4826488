//! A [`Message`] into bytes. Each message's variable part is described once, as writes to a
//! [`Sink`]: run with a counter it measures the message, run with a buffer it writes it, so the
//! Length field and the bytes cannot disagree. The one-octet length form is used whenever the
//! message fits it (up to 255 octets), the three-octet form (0x01, then 16 bits) above.

use bytes::{BufMut, BytesMut};

use super::decode::{CLEAN_SESSION, DUP, RETAIN, WILL, inner_type};
use super::types::{MsgType, PublishTopic, QoS, ReturnCode, TopicIdType, TopicSpec};
use super::{Message, PROTOCOL_ID, WillTopic};
use crate::error::EncodeError;

/// Where a message's variable part goes.
trait Sink {
    fn u8(&mut self, value: u8);
    fn u16(&mut self, value: u16) {
        let [high, low] = value.to_be_bytes();
        self.u8(high);
        self.u8(low);
    }
    fn bytes(&mut self, value: &[u8]);
}

/// Counts what would be written.
struct Counter(usize);

impl Sink for Counter {
    fn u8(&mut self, _: u8) {
        self.0 += 1;
    }
    fn bytes(&mut self, value: &[u8]) {
        self.0 += value.len();
    }
}

impl Sink for BytesMut {
    fn u8(&mut self, value: u8) {
        self.put_u8(value);
    }
    fn bytes(&mut self, value: &[u8]) {
        self.extend_from_slice(value);
    }
}

/// The largest message the one-octet Length field can describe.
const SHORT_FORM_MAX: usize = 255;

impl Message {
    /// The encoded length in octets, header included.
    pub fn encoded_len(&self) -> Result<usize, EncodeError> {
        self.check()?;
        let (declared, _) = self.declared_len();
        let total = declared + self.trailer().len();
        if total > usize::from(u16::MAX) {
            return Err(EncodeError::TooLong(total));
        }
        Ok(total)
    }

    /// Appends the encoded message to `buf`. On error nothing is written.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let total = self.encoded_len()?;
        let (declared, header) = self.declared_len();
        buf.reserve(total);
        match u8::try_from(declared) {
            Ok(short) if header == 1 => buf.put_u8(short),
            _ => {
                buf.put_u8(0x01);
                buf.put_u16(u16::try_from(declared).map_err(|_| EncodeError::TooLong(declared))?);
            }
        }
        buf.put_u8(self.msg_type().as_u8());
        self.write_body(buf);
        buf.extend_from_slice(self.trailer());
        Ok(())
    }

    /// What the Length field counts (the encapsulation's own header only, for an
    /// encapsulation), and how many octets the Length field takes.
    fn declared_len(&self) -> (usize, usize) {
        let mut counter = Counter(0);
        self.write_body(&mut counter);
        let with_type = counter.0 + 1;
        if with_type < SHORT_FORM_MAX {
            (with_type + 1, 1)
        } else {
            (with_type + 3, 3)
        }
    }

    /// What follows the part the Length field counts: an encapsulation's message.
    fn trailer(&self) -> &[u8] {
        match self {
            Self::Encapsulated(encapsulated) => &encapsulated.inner,
            _ => &[],
        }
    }

    /// Refuses what the wire format cannot say.
    fn check(&self) -> Result<(), EncodeError> {
        match self {
            Self::Publish(publish)
                if matches!(publish.topic, PublishTopic::Name(_)) && publish.qos != QoS::MinusOne =>
            {
                return Err(EncodeError::InlineTopicNeedsQosMinusOne);
            }
            Self::Register(register) if register.topic_name.is_empty() => {
                return Err(EncodeError::EmptyTopicName(self.msg_type()));
            }
            Self::Subscribe(subscribe) => {
                if subscribe.qos == QoS::MinusOne {
                    return Err(EncodeError::QosMinusOneNotAllowed(self.msg_type()));
                }
                check_spec(&subscribe.topic, self)?;
            }
            Self::Unsubscribe(unsubscribe) => check_spec(&unsubscribe.topic, self)?,
            Self::SubAck(ack) if ack.qos == QoS::MinusOne => {
                return Err(EncodeError::QosMinusOneNotAllowed(self.msg_type()));
            }
            Self::WillTopic(Some(will)) | Self::WillTopicUpd(Some(will)) if will.qos == QoS::MinusOne => {
                return Err(EncodeError::QosMinusOneNotAllowed(self.msg_type()));
            }
            Self::Encapsulated(encapsulated) => {
                if encapsulated.node_id.is_empty() {
                    return Err(EncodeError::BadEncapsulation("an empty wireless node id"));
                }
                if encapsulated.inner.is_empty() {
                    return Err(EncodeError::BadEncapsulation("no message inside"));
                }
                if inner_type(&encapsulated.inner) == MsgType::Encapsulated.as_u8() {
                    return Err(EncodeError::BadEncapsulation("another encapsulation inside"));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn write_body(&self, sink: &mut impl Sink) {
        match self {
            Self::Advertise { gw_id, duration } => {
                sink.u8(*gw_id);
                sink.u16(*duration);
            }
            Self::SearchGw { radius } => sink.u8(*radius),
            Self::GwInfo(info) => {
                sink.u8(info.gw_id);
                sink.bytes(&info.gw_addr);
            }
            Self::Connect(connect) => {
                let mut flags = 0;
                if connect.will {
                    flags |= WILL;
                }
                if connect.clean_session {
                    flags |= CLEAN_SESSION;
                }
                sink.u8(flags);
                sink.u8(PROTOCOL_ID);
                sink.u16(connect.duration);
                sink.bytes(connect.client_id.as_bytes());
            }
            Self::ConnAck { return_code }
            | Self::WillTopicResp { return_code }
            | Self::WillMsgResp { return_code } => sink.u8(return_code.as_u8()),
            Self::WillTopicReq | Self::WillMsgReq | Self::PingResp => {}
            Self::WillTopic(will) | Self::WillTopicUpd(will) => write_will(will.as_ref(), sink),
            Self::WillMsg { data } | Self::WillMsgUpd { data } => sink.bytes(data),
            Self::Register(register) => {
                sink.u16(register.topic_id);
                sink.u16(register.msg_id);
                sink.bytes(register.topic_name.as_bytes());
            }
            Self::RegAck(ack) => {
                sink.u16(ack.topic_id);
                sink.u16(ack.msg_id);
                sink.u8(ack.return_code.as_u8());
            }
            Self::Publish(publish) => {
                let (id_type, field, inline): (TopicIdType, u16, &[u8]) = match &publish.topic {
                    PublishTopic::Id(id) => (TopicIdType::Normal, *id, &[]),
                    PublishTopic::Predefined(id) => (TopicIdType::Predefined, *id, &[]),
                    PublishTopic::Short(name) => (TopicIdType::Short, u16::from_be_bytes(*name), &[]),
                    PublishTopic::Name(name) => (
                        TopicIdType::Normal,
                        u16::try_from(name.len()).unwrap_or(u16::MAX),
                        name.as_bytes(),
                    ),
                };
                sink.u8(flags(publish.dup, publish.qos, publish.retain, id_type));
                sink.u16(field);
                sink.u16(publish.msg_id);
                sink.bytes(inline);
                sink.bytes(&publish.data);
            }
            Self::PubAck(ack) => {
                sink.u16(ack.topic_id);
                sink.u16(ack.msg_id);
                sink.u8(ack.return_code.as_u8());
            }
            Self::PubComp { msg_id }
            | Self::PubRec { msg_id }
            | Self::PubRel { msg_id }
            | Self::UnsubAck { msg_id } => sink.u16(*msg_id),
            Self::Subscribe(subscribe) => {
                let id_type = spec_type(&subscribe.topic);
                sink.u8(flags(subscribe.dup, subscribe.qos, false, id_type));
                sink.u16(subscribe.msg_id);
                write_spec(&subscribe.topic, sink);
            }
            Self::SubAck(ack) => {
                sink.u8(flags(false, ack.qos, false, TopicIdType::Normal));
                sink.u16(ack.topic_id);
                sink.u16(ack.msg_id);
                sink.u8(ack.return_code.as_u8());
            }
            Self::Unsubscribe(unsubscribe) => {
                let id_type = spec_type(&unsubscribe.topic);
                sink.u8(id_type as u8);
                sink.u16(unsubscribe.msg_id);
                write_spec(&unsubscribe.topic, sink);
            }
            Self::PingReq { client_id } => {
                if let Some(client_id) = client_id {
                    sink.bytes(client_id.as_bytes());
                }
            }
            Self::Disconnect { duration } => {
                if let Some(duration) = duration {
                    sink.u16(*duration);
                }
            }
            Self::Encapsulated(encapsulated) => {
                sink.u8(encapsulated.radius & 0b11);
                sink.bytes(&encapsulated.node_id);
            }
        }
    }
}

fn flags(dup: bool, qos: QoS, retain: bool, id_type: TopicIdType) -> u8 {
    let mut flags = (qos.bits() << 5) | id_type as u8;
    if dup {
        flags |= DUP;
    }
    if retain {
        flags |= RETAIN;
    }
    flags
}

fn write_will(will: Option<&WillTopic>, sink: &mut impl Sink) {
    if let Some(will) = will {
        sink.u8(flags(false, will.qos, will.retain, TopicIdType::Normal));
        sink.bytes(will.topic.as_bytes());
    }
}

fn spec_type(spec: &TopicSpec) -> TopicIdType {
    match spec {
        TopicSpec::Name(_) => TopicIdType::Normal,
        TopicSpec::Predefined(_) => TopicIdType::Predefined,
        TopicSpec::Short(_) => TopicIdType::Short,
    }
}

fn write_spec(spec: &TopicSpec, sink: &mut impl Sink) {
    match spec {
        TopicSpec::Name(name) => sink.bytes(name.as_bytes()),
        TopicSpec::Predefined(id) => sink.u16(*id),
        TopicSpec::Short(name) => sink.bytes(name),
    }
}

fn check_spec(spec: &TopicSpec, message: &Message) -> Result<(), EncodeError> {
    match spec {
        TopicSpec::Name(name) if name.is_empty() => Err(EncodeError::EmptyTopicName(message.msg_type())),
        _ => Ok(()),
    }
}

impl ReturnCode {
    /// Whether this is [`ReturnCode::Accepted`].
    pub fn is_accepted(self) -> bool {
        self == Self::Accepted
    }
}
