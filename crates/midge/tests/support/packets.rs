//! Short constructors for the packets tests send.

use std::num::NonZeroU16;

use bytes::Bytes;
use midge_codec::{
    Ack, Connect, Packet, PacketId, ProtocolVersion, Publish, QoS, Subscribe, Subscription,
    SubscriptionOptions, TopicFilter, TopicName, Unsubscribe, Will,
};

pub fn pid(n: u16) -> PacketId {
    NonZeroU16::new(n).expect("non-zero packet id")
}

pub fn topic(name: &str) -> TopicName {
    TopicName::try_from(name).expect("valid topic")
}

pub fn connect(version: ProtocolVersion, id: &str) -> Packet {
    Packet::Connect(Box::new(Connect::new(version, id)))
}

/// CONNECT with clean session/start off (and for v5 a session that outlives the connection).
pub fn connect_persistent(version: ProtocolVersion, id: &str) -> Packet {
    let mut c = Connect::new(version, id);
    c.clean_start = false;
    if version == ProtocolVersion::V5 {
        c.properties.session_expiry_interval = Some(3600);
    }
    Packet::Connect(Box::new(c))
}

pub fn connect_with(version: ProtocolVersion, id: &str, f: impl FnOnce(&mut Connect)) -> Packet {
    let mut c = Connect::new(version, id);
    f(&mut c);
    Packet::Connect(Box::new(c))
}

pub fn will(topic_name: &str, payload: &'static str, qos: QoS, retain: bool) -> Will {
    Will {
        topic: topic(topic_name),
        payload: Bytes::from_static(payload.as_bytes()),
        qos,
        retain,
        properties: Default::default(),
    }
}

pub fn publish(name: &str, payload: impl Into<Bytes>, qos: QoS, id: u16) -> Packet {
    let mut publish = Publish::new(topic(name), payload.into());
    publish.qos = qos;
    if qos != QoS::AtMostOnce {
        publish.packet_id = Some(pid(id));
    }
    Packet::Publish(publish)
}

pub fn publish_retained(name: &str, payload: impl Into<Bytes>, qos: QoS, id: u16) -> Packet {
    let Packet::Publish(mut p) = publish(name, payload, qos, id) else {
        unreachable!()
    };
    p.retain = true;
    Packet::Publish(p)
}

pub fn subscribe(filters: &[(&str, QoS)], id: u16) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: pid(id),
        subscriptions: filters
            .iter()
            .map(|(f, qos)| Subscription {
                filter: TopicFilter::try_from(*f).expect("valid filter"),
                options: SubscriptionOptions {
                    qos: *qos,
                    ..SubscriptionOptions::default()
                },
            })
            .collect(),
        properties: Default::default(),
    })
}

pub fn unsubscribe(filters: &[&str], id: u16) -> Packet {
    Packet::Unsubscribe(Unsubscribe {
        packet_id: pid(id),
        filters: filters
            .iter()
            .map(|f| TopicFilter::try_from(*f).expect("valid filter"))
            .collect(),
        properties: Default::default(),
    })
}

pub fn puback(id: PacketId) -> Packet {
    Packet::PubAck(Ack::new(id))
}
pub fn pubrec(id: PacketId) -> Packet {
    Packet::PubRec(Ack::new(id))
}
pub fn pubrel(id: PacketId) -> Packet {
    Packet::PubRel(Ack::new(id))
}
pub fn pubcomp(id: PacketId) -> Packet {
    Packet::PubComp(Ack::new(id))
}
