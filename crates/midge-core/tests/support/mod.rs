//! What the core's tests share: a link that records wakes and closes, a client that feeds
//! packets to its connection and decodes what comes back, and packet builders.

#![allow(dead_code, unreachable_pub, reason = "each test file uses part of it")]

use std::num::NonZeroU16;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use midge_codec::{
    Connect, Decoder, Packet, PacketId, ProtocolVersion, Publish, QoS, ReasonCode, Subscribe, Subscription,
    SubscriptionOptions, TopicFilter, TopicName,
};
use midge_core::{After, Broker, BrokerConfig, Connection, Link, Outbox};
use parking_lot::Mutex;

pub const V311: ProtocolVersion = ProtocolVersion::V311;
pub const V5: ProtocolVersion = ProtocolVersion::V5;

#[derive(Debug, Default)]
pub struct TestLink {
    pub wakes: AtomicUsize,
    pub closed: Mutex<Option<ReasonCode>>,
    /// What `wake_pending` says: the test plays a runtime that has not run the connection yet.
    pub pending: AtomicBool,
}

impl Link for TestLink {
    fn wake(&self) {
        self.wakes.fetch_add(1, Ordering::Relaxed);
    }
    fn wake_pending(&self) -> bool {
        self.pending.load(Ordering::Relaxed)
    }
    fn close(&self, reason: ReasonCode) {
        *self.closed.lock() = Some(reason);
    }
}

/// A client as the tests see it: its connection, link and what it has been sent.
pub struct Client {
    pub connection: Connection,
    pub link: Arc<TestLink>,
    pub out: Outbox,
}

impl Client {
    /// Sends one packet and returns every packet the broker has for this client afterwards.
    pub fn send(&mut self, packet: Packet, now: Instant) -> (After, Vec<Packet>) {
        let after = self.connection.handle(packet, now, &mut self.out);
        (after, self.received(now))
    }

    /// Drains the session (as a woken runtime would) and decodes the outbox.
    pub fn received(&mut self, now: Instant) -> Vec<Packet> {
        self.connection.drain(now, &mut self.out);
        decode_all(&mut self.out)
    }
}

pub fn decode_all(out: &mut Outbox) -> Vec<Packet> {
    let decoder = Decoder::new(out.version(), u32::MAX);
    let mut packets = Vec::new();
    while let Some(packet) = decoder
        .decode(out.buffer())
        .expect("the broker sends valid packets")
    {
        packets.push(packet);
    }
    packets
}

pub fn broker(config: BrokerConfig) -> Arc<Broker> {
    Broker::new(config, 7)
}

pub fn connect_with(broker: &Arc<Broker>, connect: Connect, now: Instant) -> (Client, Vec<Packet>) {
    let link = Arc::new(TestLink::default());
    let mut out = Outbox::new(connect.protocol);
    let connection = broker
        .connect(connect, link.clone(), now, &mut out)
        .expect("connect accepted");
    let packets = decode_all(&mut out);
    (
        Client {
            connection,
            link,
            out,
        },
        packets,
    )
}

pub fn connect(broker: &Arc<Broker>, version: ProtocolVersion, id: &str, now: Instant) -> Client {
    connect_with(broker, Connect::new(version, id), now).0
}

pub fn topic(name: &str) -> TopicName {
    TopicName::try_from(name).unwrap()
}

pub fn pid(n: u16) -> PacketId {
    NonZeroU16::new(n).unwrap()
}

/// A subscriber's PUBACK for packet id `n`.
pub fn puback(n: u16) -> Packet {
    Packet::PubAck(midge_codec::Ack::new(pid(n)))
}

pub fn publish(name: &str, payload: &'static str, qos: QoS, id: u16) -> Packet {
    let mut publish = Publish::new(topic(name), Bytes::from_static(payload.as_bytes()));
    publish.qos = qos;
    if qos != QoS::AtMostOnce {
        publish.packet_id = Some(pid(id));
    }
    Packet::Publish(publish)
}

pub fn retained(name: &str, payload: &'static str) -> Packet {
    let Packet::Publish(mut p) = publish(name, payload, QoS::AtMostOnce, 0) else {
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
                filter: TopicFilter::try_from(*f).unwrap(),
                options: SubscriptionOptions {
                    qos: *qos,
                    ..SubscriptionOptions::default()
                },
            })
            .collect(),
        properties: Default::default(),
    })
}

pub fn publishes(packets: &[Packet]) -> Vec<&Publish> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some(p),
            _ => None,
        })
        .collect()
}
