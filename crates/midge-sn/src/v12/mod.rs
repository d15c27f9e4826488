//! MQTT-SN v1.2: every message of §5.4 (and the forwarder encapsulation of §5.5) as one enum,
//! decoded from one datagram by [`decode`] and encoded by [`Message::encode`].
//!
//! - `types`: message types, QoS, return codes and topic references.
//! - `decode`: one datagram into a [`Message`], strictly; never panics.
//! - `encode`: a [`Message`] into bytes, measured and written by one layout description.

mod decode;
mod encode;
mod types;

use bytes::Bytes;
use bytestring::ByteString;

pub use decode::decode;
pub use types::{MsgType, PublishTopic, QoS, ReturnCode, TopicSpec};

/// The value of CONNECT's ProtocolId for v1.2 (§5.3.7).
pub const PROTOCOL_ID: u8 = 0x01;

/// CONNECT (§5.4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The Will flag: the gateway prompts for a will topic and message before CONNACK.
    pub will: bool,
    /// The CleanSession flag; it also covers the will (§6.3).
    pub clean_session: bool,
    /// The keep-alive period in seconds.
    pub duration: u16,
    /// The client identifier (1 to 23 characters by §5.3.1; the codec takes any length).
    pub client_id: ByteString,
}

/// GWINFO (§5.4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GwInfo {
    /// The gateway's id.
    pub gw_id: u8,
    /// The gateway's address, present only when a client answers for a gateway (empty otherwise).
    pub gw_addr: Bytes,
}

/// The will topic of WILLTOPIC and WILLTOPICUPD (§5.4.7, §5.4.22).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WillTopic {
    /// The will's QoS (0, 1 or 2).
    pub qos: QoS,
    /// The will's retain flag.
    pub retain: bool,
    /// The will topic name.
    pub topic: ByteString,
}

/// REGISTER (§5.4.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register {
    /// 0 from a client; the assigned id from the gateway.
    pub topic_id: u16,
    /// The message id REGACK echoes.
    pub msg_id: u16,
    /// The topic name (no wildcards: the gateway checks).
    pub topic_name: ByteString,
}

/// REGACK (§5.4.11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegAck {
    /// The id assigned (from the gateway), or the id acknowledged (from a client).
    pub topic_id: u16,
    /// The REGISTER's message id.
    pub msg_id: u16,
    /// Whether the registration was accepted.
    pub return_code: ReturnCode,
}

/// PUBLISH (§5.4.12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Sent before.
    pub dup: bool,
    /// -1, 0, 1 or 2.
    pub qos: QoS,
    /// The retain flag.
    pub retain: bool,
    /// Which topic.
    pub topic: PublishTopic,
    /// 0 at QoS 0 and -1.
    pub msg_id: u16,
    /// The payload.
    pub data: Bytes,
}

/// PUBACK (§5.4.13); with [`ReturnCode::InvalidTopicId`] it also refuses a PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubAck {
    /// The PUBLISH's topic id.
    pub topic_id: u16,
    /// The PUBLISH's message id.
    pub msg_id: u16,
    /// Accepted, or why not.
    pub return_code: ReturnCode,
}

/// SUBSCRIBE (§5.4.15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Sent before.
    pub dup: bool,
    /// The QoS asked for (0, 1 or 2).
    pub qos: QoS,
    /// The message id SUBACK echoes.
    pub msg_id: u16,
    /// The filter, predefined id or short name.
    pub topic: TopicSpec,
}

/// SUBACK (§5.4.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// The QoS granted.
    pub qos: QoS,
    /// The topic id of a subscription to one topic name; 0 for wildcards and short names.
    pub topic_id: u16,
    /// The SUBSCRIBE's message id.
    pub msg_id: u16,
    /// Accepted, or why not.
    pub return_code: ReturnCode,
}

/// UNSUBSCRIBE (§5.4.17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// The message id UNSUBACK echoes.
    pub msg_id: u16,
    /// The filter, predefined id or short name.
    pub topic: TopicSpec,
}

/// The forwarder encapsulation (§5.5): a message relayed for a wireless node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encapsulated {
    /// The Ctrl octet's broadcast radius (bits 1–0).
    pub radius: u8,
    /// The wireless node's id, which replies must carry back.
    pub node_id: Bytes,
    /// The encapsulated MQTT-SN message, undecoded (decode it with [`decode`]).
    pub inner: Bytes,
}

/// One MQTT-SN v1.2 message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs, reason = "each variant is the message of the same name in §5.4")]
pub enum Message {
    Advertise {
        gw_id: u8,
        duration: u16,
    },
    SearchGw {
        radius: u8,
    },
    GwInfo(GwInfo),
    Connect(Connect),
    ConnAck {
        return_code: ReturnCode,
    },
    WillTopicReq,
    /// `None`: the empty WILLTOPIC, which deletes the will.
    WillTopic(Option<WillTopic>),
    WillMsgReq,
    WillMsg {
        data: Bytes,
    },
    Register(Register),
    RegAck(RegAck),
    Publish(Publish),
    PubAck(PubAck),
    PubComp {
        msg_id: u16,
    },
    PubRec {
        msg_id: u16,
    },
    PubRel {
        msg_id: u16,
    },
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck {
        msg_id: u16,
    },
    /// `client_id` is present when a sleeping client wakes (§6.14).
    PingReq {
        client_id: Option<ByteString>,
    },
    PingResp,
    /// `duration` is present when the client goes to sleep (§6.14).
    Disconnect {
        duration: Option<u16>,
    },
    /// `None`: the empty WILLTOPICUPD, which deletes the will.
    WillTopicUpd(Option<WillTopic>),
    WillTopicResp {
        return_code: ReturnCode,
    },
    WillMsgUpd {
        data: Bytes,
    },
    WillMsgResp {
        return_code: ReturnCode,
    },
    Encapsulated(Encapsulated),
}

impl Message {
    /// The message's type.
    pub fn msg_type(&self) -> MsgType {
        match self {
            Self::Advertise { .. } => MsgType::Advertise,
            Self::SearchGw { .. } => MsgType::SearchGw,
            Self::GwInfo(_) => MsgType::GwInfo,
            Self::Connect(_) => MsgType::Connect,
            Self::ConnAck { .. } => MsgType::ConnAck,
            Self::WillTopicReq => MsgType::WillTopicReq,
            Self::WillTopic(_) => MsgType::WillTopic,
            Self::WillMsgReq => MsgType::WillMsgReq,
            Self::WillMsg { .. } => MsgType::WillMsg,
            Self::Register(_) => MsgType::Register,
            Self::RegAck(_) => MsgType::RegAck,
            Self::Publish(_) => MsgType::Publish,
            Self::PubAck(_) => MsgType::PubAck,
            Self::PubComp { .. } => MsgType::PubComp,
            Self::PubRec { .. } => MsgType::PubRec,
            Self::PubRel { .. } => MsgType::PubRel,
            Self::Subscribe(_) => MsgType::Subscribe,
            Self::SubAck(_) => MsgType::SubAck,
            Self::Unsubscribe(_) => MsgType::Unsubscribe,
            Self::UnsubAck { .. } => MsgType::UnsubAck,
            Self::PingReq { .. } => MsgType::PingReq,
            Self::PingResp => MsgType::PingResp,
            Self::Disconnect { .. } => MsgType::Disconnect,
            Self::WillTopicUpd(_) => MsgType::WillTopicUpd,
            Self::WillTopicResp { .. } => MsgType::WillTopicResp,
            Self::WillMsgUpd { .. } => MsgType::WillMsgUpd,
            Self::WillMsgResp { .. } => MsgType::WillMsgResp,
            Self::Encapsulated(_) => MsgType::Encapsulated,
        }
    }
}

#[cfg(test)]
mod tests;
