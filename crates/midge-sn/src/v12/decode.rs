//! One datagram into one [`Message`] (§5.2 framing, §5.4 layouts).
//!
//! Strict where the specification is: the Length field must equal the datagram's length, each
//! fixed-layout message must have exactly its size, reserved message types, topic id types,
//! return codes and QoS -1 outside PUBLISH are refused. Lenient where it is silent: flag bits a
//! message does not use are ignored, and the three-octet length form is accepted for short
//! messages too. Text fields must be UTF-8; topic syntax (wildcards) is the gateway's to judge.

use bytes::Bytes;
use bytestring::ByteString;

use super::types::{MsgType, PublishTopic, QoS, ReturnCode, TopicSpec};
use super::{
    Connect, Encapsulated, GwInfo, Message, PROTOCOL_ID, PubAck, Publish, RegAck, Register, SubAck,
    Subscribe, Unsubscribe, WillTopic,
};
use crate::error::DecodeError;

/// Decodes the one message a datagram holds. The payload and text fields are slices of
/// `datagram`, not copies.
pub fn decode(datagram: Bytes) -> Result<Message, DecodeError> {
    let actual = datagram.len();
    let (declared, header) = match datagram.as_ref() {
        [0x01, high, low, _, ..] => (usize::from(u16::from_be_bytes([*high, *low])), 3),
        [0x01, ..] => return Err(DecodeError::TooShort(actual)),
        [len, _, ..] => (usize::from(*len), 1),
        _ => return Err(DecodeError::TooShort(actual)),
    };
    let code = datagram.get(header).copied().unwrap_or_default();
    let msg_type = MsgType::from_u8(code).ok_or(DecodeError::ReservedMsgType(code))?;
    // Only an encapsulation is followed by more: the message it carries.
    let fits = if msg_type == MsgType::Encapsulated {
        declared > header && declared < actual
    } else {
        declared == actual
    };
    if !fits {
        return Err(DecodeError::LengthMismatch { declared, actual });
    }
    let mut body = Body {
        msg_type,
        bytes: datagram.slice(header + 1..declared),
    };
    let message = match msg_type {
        MsgType::Advertise => body.exact(3, |b| Message::Advertise {
            gw_id: b.u8(),
            duration: b.u16(),
        })?,
        MsgType::SearchGw => body.exact(1, |b| Message::SearchGw { radius: b.u8() })?,
        MsgType::GwInfo => {
            body.at_least(1)?;
            Message::GwInfo(GwInfo {
                gw_id: body.u8(),
                gw_addr: body.rest(),
            })
        }
        MsgType::Connect => {
            body.at_least(4)?;
            let flags = body.u8();
            let protocol_id = body.u8();
            if protocol_id != PROTOCOL_ID {
                return Err(DecodeError::UnsupportedProtocolId(protocol_id));
            }
            let duration = body.u16();
            Message::Connect(Connect {
                will: flags & WILL != 0,
                clean_session: flags & CLEAN_SESSION != 0,
                duration,
                client_id: body.text("ClientId")?,
            })
        }
        MsgType::ConnAck => Message::ConnAck {
            return_code: body.return_code_only()?,
        },
        MsgType::WillTopicReq => body.exact(0, |_| Message::WillTopicReq)?,
        MsgType::WillMsgReq => body.exact(0, |_| Message::WillMsgReq)?,
        MsgType::WillTopic => Message::WillTopic(body.will_topic()?),
        MsgType::WillTopicUpd => Message::WillTopicUpd(body.will_topic()?),
        MsgType::WillMsg => Message::WillMsg { data: body.rest() },
        MsgType::WillMsgUpd => Message::WillMsgUpd { data: body.rest() },
        MsgType::Register => {
            body.at_least(4)?;
            let topic_id = body.u16();
            let msg_id = body.u16();
            let topic_name = body.text("TopicName")?;
            if topic_name.is_empty() {
                return Err(DecodeError::EmptyTopicName(msg_type));
            }
            Message::Register(Register {
                topic_id,
                msg_id,
                topic_name,
            })
        }
        MsgType::RegAck => {
            body.len_is(5)?;
            let topic_id = body.u16();
            let msg_id = body.u16();
            Message::RegAck(RegAck {
                topic_id,
                msg_id,
                return_code: body.return_code()?,
            })
        }
        MsgType::Publish => Message::Publish(body.publish()?),
        MsgType::PubAck => {
            body.len_is(5)?;
            let topic_id = body.u16();
            let msg_id = body.u16();
            Message::PubAck(PubAck {
                topic_id,
                msg_id,
                return_code: body.return_code()?,
            })
        }
        MsgType::PubComp => body.exact(2, |b| Message::PubComp { msg_id: b.u16() })?,
        MsgType::PubRec => body.exact(2, |b| Message::PubRec { msg_id: b.u16() })?,
        MsgType::PubRel => body.exact(2, |b| Message::PubRel { msg_id: b.u16() })?,
        MsgType::Subscribe => {
            body.at_least(3)?;
            let flags = body.u8();
            let qos = body.qos(flags)?;
            let msg_id = body.u16();
            Message::Subscribe(Subscribe {
                dup: flags & DUP != 0,
                qos,
                msg_id,
                topic: body.topic_spec(flags)?,
            })
        }
        MsgType::SubAck => {
            body.len_is(6)?;
            let flags = body.u8();
            let qos = body.qos(flags)?;
            let topic_id = body.u16();
            let msg_id = body.u16();
            Message::SubAck(SubAck {
                qos,
                topic_id,
                msg_id,
                return_code: body.return_code()?,
            })
        }
        MsgType::Unsubscribe => {
            body.at_least(3)?;
            let flags = body.u8();
            let msg_id = body.u16();
            Message::Unsubscribe(Unsubscribe {
                msg_id,
                topic: body.topic_spec(flags)?,
            })
        }
        MsgType::UnsubAck => body.exact(2, |b| Message::UnsubAck { msg_id: b.u16() })?,
        MsgType::PingReq => {
            let client_id = body.text("ClientId")?;
            Message::PingReq {
                client_id: (!client_id.is_empty()).then_some(client_id),
            }
        }
        MsgType::PingResp => body.exact(0, |_| Message::PingResp)?,
        MsgType::Disconnect => match body.bytes.len() {
            0 => Message::Disconnect { duration: None },
            _ => body.exact(2, |b| Message::Disconnect {
                duration: Some(b.u16()),
            })?,
        },
        MsgType::WillTopicResp => Message::WillTopicResp {
            return_code: body.return_code_only()?,
        },
        MsgType::WillMsgResp => Message::WillMsgResp {
            return_code: body.return_code_only()?,
        },
        MsgType::Encapsulated => {
            body.at_least(1)?;
            let ctrl = body.u8();
            let inner = datagram.slice(declared..);
            if MsgType::from_u8(inner_type(&inner)) == Some(MsgType::Encapsulated) {
                return Err(DecodeError::BadEncapsulation("another encapsulation inside"));
            }
            let node_id = body.rest();
            if node_id.is_empty() {
                // The id is how replies find their node (§5.5): without one there is no node.
                return Err(DecodeError::BadEncapsulation("an empty wireless node id"));
            }
            Message::Encapsulated(Encapsulated {
                radius: ctrl & 0b11,
                node_id,
                inner,
            })
        }
    };
    Ok(message)
}

/// The message type octet of an undecoded message (0xFF, reserved, if it has none).
pub(super) fn inner_type(message: &[u8]) -> u8 {
    let at = if message.first() == Some(&0x01) { 3 } else { 1 };
    message.get(at).copied().unwrap_or(0xFF)
}

pub(super) const DUP: u8 = 0b1000_0000;
pub(super) const RETAIN: u8 = 0b0001_0000;
pub(super) const WILL: u8 = 0b0000_1000;
pub(super) const CLEAN_SESSION: u8 = 0b0000_0100;

/// A message's variable part, read front to back. Each read is preceded by a length check
/// (`exact`, `len_is`, `at_least`), so the readers below never run short; if one ever did it
/// would read zeros rather than panic.
struct Body {
    msg_type: MsgType,
    bytes: Bytes,
}

impl Body {
    fn bad_length(&self) -> DecodeError {
        DecodeError::BadBodyLength {
            msg_type: self.msg_type,
            len: self.bytes.len(),
        }
    }

    fn len_is(&self, len: usize) -> Result<(), DecodeError> {
        if self.bytes.len() == len {
            Ok(())
        } else {
            Err(self.bad_length())
        }
    }

    fn at_least(&self, len: usize) -> Result<(), DecodeError> {
        if self.bytes.len() >= len {
            Ok(())
        } else {
            Err(self.bad_length())
        }
    }

    fn exact(&mut self, len: usize, read: impl FnOnce(&mut Self) -> Message) -> Result<Message, DecodeError> {
        self.len_is(len)?;
        Ok(read(self))
    }

    fn u8(&mut self) -> u8 {
        let Some((&first, _)) = self.bytes.split_first() else {
            return 0;
        };
        bytes::Buf::advance(&mut self.bytes, 1);
        first
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    fn take(&mut self, len: usize) -> Bytes {
        self.bytes.split_to(len.min(self.bytes.len()))
    }

    fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.bytes)
    }

    fn text(&mut self, field: &'static str) -> Result<ByteString, DecodeError> {
        let bytes = self.rest();
        self.utf8(bytes, field)
    }

    fn utf8(&self, bytes: Bytes, field: &'static str) -> Result<ByteString, DecodeError> {
        ByteString::try_from(bytes).map_err(|_| DecodeError::InvalidUtf8 {
            msg_type: self.msg_type,
            field,
        })
    }

    fn return_code(&mut self) -> Result<ReturnCode, DecodeError> {
        let code = self.u8();
        ReturnCode::from_u8(code).ok_or(DecodeError::ReservedReturnCode(code))
    }

    fn return_code_only(&mut self) -> Result<ReturnCode, DecodeError> {
        self.len_is(1)?;
        self.return_code()
    }

    /// QoS 0–2 from a flags octet; -1 belongs to PUBLISH alone.
    fn qos(&self, flags: u8) -> Result<QoS, DecodeError> {
        match QoS::from_bits(flags >> 5) {
            QoS::MinusOne => Err(DecodeError::QosMinusOneNotAllowed(self.msg_type)),
            qos => Ok(qos),
        }
    }

    /// WILLTOPIC and WILLTOPICUPD: empty (or flags alone) deletes the will.
    fn will_topic(&mut self) -> Result<Option<WillTopic>, DecodeError> {
        if self.bytes.len() <= 1 {
            return Ok(None);
        }
        let flags = self.u8();
        let qos = self.qos(flags)?;
        Ok(Some(WillTopic {
            qos,
            retain: flags & RETAIN != 0,
            topic: self.text("WillTopic")?,
        }))
    }

    fn topic_spec(&mut self, flags: u8) -> Result<TopicSpec, DecodeError> {
        match flags & 0b11 {
            0b00 => {
                let name = self.text("TopicName")?;
                if name.is_empty() {
                    return Err(DecodeError::EmptyTopicName(self.msg_type));
                }
                Ok(TopicSpec::Name(name))
            }
            0b01 => {
                self.len_is(2)?;
                Ok(TopicSpec::Predefined(self.u16()))
            }
            0b10 => {
                self.len_is(2)?;
                Ok(TopicSpec::Short([self.u8(), self.u8()]))
            }
            _ => Err(DecodeError::ReservedTopicIdType(self.msg_type)),
        }
    }

    fn publish(&mut self) -> Result<Publish, DecodeError> {
        self.at_least(5)?;
        let flags = self.u8();
        let qos = QoS::from_bits(flags >> 5);
        let topic_field = self.u16();
        let msg_id = self.u16();
        let topic = match flags & 0b11 {
            0b00 if qos == QoS::MinusOne => {
                let len = usize::from(topic_field);
                self.at_least(len)?;
                let name = self.take(len);
                PublishTopic::Name(self.utf8(name, "TopicName")?)
            }
            0b00 => PublishTopic::Id(topic_field),
            0b01 => PublishTopic::Predefined(topic_field),
            0b10 => PublishTopic::Short(topic_field.to_be_bytes()),
            _ => return Err(DecodeError::ReservedTopicIdType(self.msg_type)),
        };
        Ok(Publish {
            dup: flags & DUP != 0,
            qos,
            retain: flags & RETAIN != 0,
            topic,
            msg_id,
            data: self.rest(),
        })
    }
}
