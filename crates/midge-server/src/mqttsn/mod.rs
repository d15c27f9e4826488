//! The MQTT-SN gateway: MQTT-SN v1.2 clients on UDP (`listener PORT [ADDRESS]` with `protocol
//! mqttsn`) become sessions of the broker's core, in the same client-identifier namespace as
//! MQTT clients, so authentication, access rules, retained messages, persistence, `$SYS`,
//! bridges and limits apply to them unchanged (`docs/mqtt-sn.md`).
//!
//! # Layout
//! - `gateway`: one task per UDP socket: datagrams in, dispatch by source address, CONNECT and
//!   its will prompts, discovery (SEARCHGW, ADVERTISE), QoS -1, timers, rate limits.
//! - `client`: one client: MQTT-SN translated to MQTT 5 packets for its core session and
//!   back, topic ids, one message in flight, retransmission, sleep.
//! - `registry`: predefined topic ids (configuration and Paho's CSV file) and each client's
//!   registered ones.
//! - `peer`: a client's address, UDP or a forwarder's UDP address and a wireless node id, and
//!   the forwarder encapsulation (§5.5) both ways.
//!
//! # Rules
//! Plain UDP authenticates nothing: anyone can forge a source address. So a session is bound to
//! the address it connected from (a datagram from elsewhere never acts on it, a wake from
//! another port, another forwarder or another node id gets nothing), no reply to an unknown
//! peer is larger than the datagram it sent, a datagram that does not decode is dropped and
//! counted without a reply, and what an unknown peer can make the gateway hold is bounded by
//! `max_connections`. Encapsulated datagrams are served only with `mqttsn_forwarders true`.

mod client;
mod gateway;
mod peer;
mod registry;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use midge_sn::v12::Message;
use parking_lot::Mutex;
use tokio::net::UdpSocket;
use tokio::sync::{Notify, watch};

pub use crate::config::MqttSnOptions;
pub(crate) use gateway::run;
pub(crate) use peer::Peer;
pub use registry::{Predefined, PredefinedError};

/// What one MQTT-SN listener runs with: its options and its predefined topics, read when the
/// configuration is loaded so that a bad file stops the start.
#[derive(Debug, Clone)]
pub struct GatewaySpec {
    /// The `mqttsn_*` options.
    pub options: MqttSnOptions,
    /// `mqttsn_predefined_topic` lines and the `mqttsn_predefined_topic_file`.
    pub predefined: Predefined,
}

impl GatewaySpec {
    /// The spec for `options`, reading its predefined topic file if it names one.
    pub fn load(options: &MqttSnOptions) -> Result<Self, PredefinedError> {
        let mut predefined = Predefined::new(&options.predefined_topics);
        if let Some(path) = &options.predefined_topic_file {
            predefined.load_file(path)?;
        }
        Ok(Self {
            options: options.clone(),
            predefined,
        })
    }
}

/// The gateway's counters, broker-wide, for `$SYS/broker/mqttsn/...` and the logs.
#[derive(Debug, Default)]
pub struct SnCounters {
    /// Datagrams received.
    pub datagrams_received: AtomicU64,
    /// Datagrams sent.
    pub datagrams_sent: AtomicU64,
    /// Datagrams dropped because they did not decode.
    pub dropped_malformed: AtomicU64,
    /// Datagrams dropped because they exceed `mqttsn_max_packet_size`.
    pub dropped_too_large: AtomicU64,
    /// Datagrams from unknown peers that only a connected client may send.
    pub dropped_unknown_peer: AtomicU64,
    /// Datagrams dropped because the sender exceeded a rate limit.
    pub dropped_rate_limited: AtomicU64,
    /// Encapsulated datagrams from forwarders, served (`mqttsn_forwarders true`).
    pub forwarded: AtomicU64,
    /// Encapsulated datagrams dropped because `mqttsn_forwarders` is off.
    pub dropped_forwarders_off: AtomicU64,
    /// Messages a client did not expect in its state (a CONNACK from a client, say).
    pub unexpected: AtomicU64,
    /// PINGREQ with a sleeping client's identifier from another address: ignored.
    pub wakes_refused: AtomicU64,
    /// Wakes of sleeping clients.
    pub wakes: AtomicU64,
    /// Clients that went to sleep.
    pub sleeps: AtomicU64,
    /// QoS -1 messages published.
    pub qos_neg1_received: AtomicU64,
    /// QoS -1 messages dropped (switched off, or an unknown topic).
    pub qos_neg1_dropped: AtomicU64,
    /// PUBLISH on a topic id the client never registered (answered with PUBACK 0x02).
    pub publish_unknown_topic: AtomicU64,
    /// REGISTERs from clients refused (bad name, `mqttsn_max_registered_topics`).
    pub register_refused: AtomicU64,
    /// REGISTERs of the gateway a client refused; the message it was for is dropped.
    pub register_rejected: AtomicU64,
    /// Messages to clients dropped: too large, registry full, registration refused.
    pub messages_dropped: AtomicU64,
    /// Of those, too large for `mqttsn_max_packet_size`.
    pub too_large_for_client: AtomicU64,
    /// Of those, with no topic id left to register.
    pub registry_full: AtomicU64,
    /// CONNECTs refused (by the broker, or by a limit).
    pub connects_refused: AtomicU64,
    /// Clients connected and awake now.
    pub clients_active: AtomicU64,
    /// Clients asleep now.
    pub clients_asleep: AtomicU64,
}

impl SnCounters {
    /// Adds one to `counter`.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The value of `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Every counter with its `$SYS/broker/mqttsn/` name.
    pub fn named(&self) -> [(&'static str, u64); 23] {
        let get = Self::get;
        [
            ("datagrams/received", get(&self.datagrams_received)),
            ("datagrams/sent", get(&self.datagrams_sent)),
            ("datagrams/dropped/malformed", get(&self.dropped_malformed)),
            ("datagrams/dropped/too_large", get(&self.dropped_too_large)),
            ("datagrams/dropped/unknown_peer", get(&self.dropped_unknown_peer)),
            ("datagrams/dropped/rate_limited", get(&self.dropped_rate_limited)),
            ("datagrams/forwarded", get(&self.forwarded)),
            (
                "datagrams/dropped/forwarders_off",
                get(&self.dropped_forwarders_off),
            ),
            ("datagrams/dropped/unexpected", get(&self.unexpected)),
            ("wakes/refused", get(&self.wakes_refused)),
            ("wakes/accepted", get(&self.wakes)),
            ("sleeps", get(&self.sleeps)),
            ("qos_neg1/received", get(&self.qos_neg1_received)),
            ("qos_neg1/dropped", get(&self.qos_neg1_dropped)),
            ("publish/unknown_topic_id", get(&self.publish_unknown_topic)),
            ("register/refused", get(&self.register_refused)),
            ("register/rejected", get(&self.register_rejected)),
            ("messages/dropped", get(&self.messages_dropped)),
            ("messages/dropped/too_large", get(&self.too_large_for_client)),
            ("messages/dropped/registry_full", get(&self.registry_full)),
            ("connects/refused", get(&self.connects_refused)),
            ("clients/active", get(&self.clients_active)),
            ("clients/asleep", get(&self.clients_asleep)),
        ]
    }
}

/// Clients whose sessions have news (their links were woken or closed), for the gateway task.
#[derive(Debug, Default)]
pub(crate) struct Wakes {
    slots: Mutex<Vec<u64>>,
    notify: Notify,
}

impl Wakes {
    pub(crate) fn push(&self, slot: u64) {
        self.slots.lock().push(slot);
        self.notify.notify_one();
    }

    pub(crate) fn take(&self) -> Vec<u64> {
        std::mem::take(&mut *self.slots.lock())
    }
}

/// What every client's handling reads: the socket to answer on, the options, the counters.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) socket: Arc<UdpSocket>,
    pub(crate) options: MqttSnOptions,
    pub(crate) predefined: Predefined,
    /// The first id a client's registrations may use: above every predefined one.
    pub(crate) first_free_id: u16,
    pub(crate) counters: Arc<SnCounters>,
    /// The journal's durable mark, with persistence.
    pub(crate) durable: Option<watch::Receiver<u64>>,
    /// The cluster's message log's settled mark, in a cluster: what a client published for
    /// persistent sessions is acknowledged once the log has it.
    pub(crate) logged: Option<watch::Receiver<u64>>,
    /// The journal, with persistence: persistent clients' topic ids and wills go there.
    pub(crate) journal: Option<Arc<midge_store::Journal>>,
}

impl Context {
    /// Sends one message (encapsulated for a forwarded client, radius 0). UDP may lose it
    /// anyway: a full socket buffer drops it the same way, and the retransmission of what
    /// needs an answer covers both.
    pub(crate) fn send(&self, to: &Peer, message: &Message) {
        self.send_with_radius(to, message, 0);
    }

    /// Sends one message; a forwarded client's goes with `radius` in the Ctrl octet.
    pub(crate) fn send_with_radius(&self, to: &Peer, message: &Message, radius: u8) {
        let mut buf = BytesMut::new();
        if let Err(error) = to.encode(message, radius, &mut buf) {
            tracing::error!(%error, message = ?message.msg_type(), "could not encode an MQTT-SN message; skipped");
            return;
        }
        match self.socket.try_send_to(&buf, to.addr()) {
            Ok(_) => SnCounters::bump(&self.counters.datagrams_sent),
            Err(error) => {
                tracing::debug!(%to, %error, "MQTT-SN datagram to {to} not sent: {error}");
            }
        }
    }

    /// Whether `message` fits `mqttsn_max_packet_size` as `to` receives it (encapsulation
    /// included).
    pub(crate) fn fits(&self, to: &Peer, message: &Message) -> bool {
        to.encoded_len(message)
            .is_ok_and(|len| len <= usize::from(self.options.max_packet_size))
    }
}
