//! A bridge's local side: a session of this broker, driven in process as a connection task
//! drives a client's (`crate::connection`): packets in through [`Connection::handle`], the
//! outbox drained and decoded back into packets, woken through its [`Link`].
//!
//! The session speaks MQTT 5 to the broker, so that its subscriptions can carry No Local (the
//! bridge never takes back what it published here) and Retain As Published, and its expiry can
//! be "never" while the remote broker is unreachable: it is attached only while the link is up,
//! and in between the broker queues for it under its own limits (`max_queued_messages`,
//! `max_queued_bytes`) and, with `persistence true`, in the store.
//!
//! With persistence on, packets the broker held until a journal write is durable are not read
//! from the outbox before it is (as a connection task does not write them to its socket); in
//! a cluster, likewise until the cluster's message log has what the bridge published for
//! persistent sessions ([`Local::with_log`]), so that the remote broker's message is not
//! acknowledged before it would outlive this node.

use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::Instant;

use bytestring::ByteString;
use midge_codec::{Connect, Decoder, Packet, ProtocolVersion, ReasonCode};
use midge_core::{After, Broker, ClientRules, Connection, Credentials, Link, Outbox, Refusal};
use parking_lot::Mutex;
use tokio::sync::{Notify, watch};

/// The QoS 1 and 2 messages the broker may have in flight to the bridge at once: they wait for
/// the remote broker's acknowledgement, so this bounds what the bridge holds. Below the client's
/// command queue, so that handing a message to the client never waits.
pub(crate) const FORWARD_WINDOW: u16 = 32;

/// The runtime's side of [`Link`] for the bridge's session.
#[derive(Debug, Default)]
pub(crate) struct BridgeLink {
    notify: Notify,
    closed: Mutex<Option<ReasonCode>>,
}

impl Link for BridgeLink {
    fn wake(&self) {
        self.notify.notify_one();
    }

    fn close(&self, reason: ReasonCode) {
        *self.closed.lock() = Some(reason);
        self.notify.notify_one();
    }
}

/// The bridge's session in this broker, attached or not.
#[derive(Debug)]
pub(crate) struct Local {
    broker: Arc<Broker>,
    client_id: ByteString,
    username: Option<ByteString>,
    /// `local_cleansession`: the session ends with each detach.
    clean: bool,
    link: Arc<BridgeLink>,
    connection: Option<Connection>,
    out: Outbox,
    decoder: Decoder,
    durable: Option<watch::Receiver<u64>>,
    /// The cluster's message log's settled mark, in a cluster.
    logged: Option<watch::Receiver<u64>>,
    /// QoS 1 and 2 messages the broker may have in flight to the session at once.
    window: u16,
}

impl Local {
    pub(crate) fn new(broker: Arc<Broker>, client_id: &str, username: Option<&str>, clean: bool) -> Self {
        let durable = broker.journal().map(|journal| journal.watch());
        Self {
            broker,
            client_id: client_id.into(),
            username: username.map(Into::into),
            clean,
            link: Arc::default(),
            connection: None,
            out: Outbox::new(ProtocolVersion::V5),
            decoder: Decoder::new(ProtocolVersion::V5, u32::MAX),
            durable,
            logged: None,
            window: FORWARD_WINDOW,
        }
    }

    /// The same session, its acknowledgements held until the cluster's message log has
    /// settled what they acknowledge (`settled`: `Cluster::log_settled`).
    pub(crate) fn with_log(mut self, settled: Option<watch::Receiver<u64>>) -> Self {
        self.logged = settled;
        self
    }

    /// The same session with room for `window` messages in flight (instead of
    /// [`FORWARD_WINDOW`]).
    pub(crate) fn with_window(mut self, window: u16) -> Self {
        self.window = window.max(1);
        self
    }

    /// The session's client identifier.
    pub(crate) fn client_id(&self) -> &str {
        &self.client_id
    }

    pub(crate) fn is_attached(&self) -> bool {
        self.connection.is_some()
    }

    /// Attaches to the session (creating it, or with `local_cleansession` starting it afresh).
    /// What the broker answers (CONNACK, messages in flight again, queued ones) is then read
    /// with [`Local::next_packet`].
    pub(crate) fn attach(&mut self, now: Instant) -> Result<(), Refusal> {
        self.detach(now);
        let mut connect = Connect::new(ProtocolVersion::V5, self.client_id.clone());
        connect.clean_start = self.clean;
        connect.keep_alive = 0;
        connect.username = self.username.clone();
        // Never expires while the bridge is down, unless asked to start clean every time.
        connect.properties.session_expiry_interval = Some(if self.clean { 0 } else { u32::MAX });
        connect.properties.receive_maximum = NonZeroU16::new(self.window);
        let rules = ClientRules {
            // The bridge is part of the broker: no password to check, and its own rules.
            allow_anonymous: true,
            mount_point: None,
            use_username_as_clientid: false,
            accepted_versions: Vec::new(),
            ..self.broker.config().client_rules()
        };
        *self.link.closed.lock() = None;
        self.out = Outbox::new(ProtocolVersion::V5);
        let link: Arc<dyn Link> = self.link.clone();
        let connection =
            self.broker
                .connect_on(connect, Credentials::Valid, &rules, link, now, &mut self.out)?;
        self.connection = Some(connection);
        Ok(())
    }

    /// Leaves the session to the broker, which queues for it until the next attach. What the
    /// outbox still held is dropped: messages in flight are sent again on the next attach
    /// (QoS 0 ones are gone, as for any client that disconnects).
    pub(crate) fn detach(&mut self, now: Instant) {
        if let Some(connection) = self.connection.take() {
            connection.end(now, false);
        }
        self.out = Outbox::new(ProtocolVersion::V5);
    }

    /// Hands one packet to the broker, as from the bridge. False if the broker ended the
    /// session's connection (it is then detached).
    pub(crate) fn send(&mut self, packet: Packet, now: Instant) -> bool {
        let Some(connection) = &mut self.connection else {
            return false;
        };
        match connection.handle(packet, now, &mut self.out) {
            After::Continue => true,
            After::Close { reason, .. } => {
                tracing::warn!(client_id = %self.client_id, %reason, "the broker closed the bridge's local session: {reason}");
                self.detach(now);
                false
            }
        }
    }

    /// The next packet the broker has for the bridge, if any may be read now. Pulls more from
    /// the session's queue once the outbox is empty.
    pub(crate) fn next_packet(&mut self, now: Instant) -> Option<Packet> {
        let connection = self.connection.as_mut()?;
        if self.out.is_empty() {
            connection.drain(now, &mut self.out);
            self.out.release_if_empty();
        }
        if self.held() {
            return None;
        }
        match self.decoder.decode(self.out.buffer()) {
            Ok(packet) => packet,
            Err(error) => {
                // The broker's own encoding: never expected. Drop the rest rather than loop.
                tracing::error!(client_id = %self.client_id, %error, "cannot decode what the broker sent the bridge");
                self.out.buffer().clear();
                None
            }
        }
    }

    /// Whether the outbox waits for a journal write to be durable, or for the cluster's log.
    fn held(&self) -> bool {
        self.durable
            .as_ref()
            .is_some_and(|durable| self.out.durable_after() > *durable.borrow())
            || self
                .logged
                .as_ref()
                .is_some_and(|settled| self.out.logged_after() > *settled.borrow())
    }

    /// Completes when the broker has something for the session (or ended it), or when the
    /// journal's durable mark or the log's settled mark moves while the outbox waits.
    pub(crate) async fn ready(&mut self) {
        if self.held() {
            let moved = async |mark: Option<&mut watch::Receiver<u64>>| {
                if let Some(mark) = mark
                    && mark.changed().await.is_ok()
                {
                    return;
                }
                std::future::pending::<()>().await;
            };
            tokio::select! {
                () = moved(self.durable.as_mut()) => return,
                () = moved(self.logged.as_mut()) => return,
                () = self.link.notify.notified() => return,
            }
        }
        self.link.notify.notified().await;
    }

    /// The reason the broker closed the session's connection (a client took the identifier
    /// over, or the broker is shutting down), once; the session is then detached.
    pub(crate) fn take_closed(&mut self, now: Instant) -> Option<ReasonCode> {
        let reason = self.link.closed.lock().take()?;
        if let Some(connection) = self.connection.take() {
            connection.end(now, false);
        }
        self.out = Outbox::new(ProtocolVersion::V5);
        Some(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use midge_codec::{
        PacketId, Publish, QoS, Subscribe, Subscription, SubscriptionOptions, TopicFilter, TopicName,
    };
    use midge_core::routes::{DurableLog, Settlement};

    /// A cluster log that gives every message for persistent sessions ticket 7.
    #[derive(Debug)]
    struct Ticket7;

    impl DurableLog for Ticket7 {
        fn append(&self, _client_ids: &[ByteString], _message: &Arc<midge_core::Message>) -> u64 {
            7
        }
        fn forward_ticket(&self) -> (u64, Settlement) {
            (0, Settlement::new(|| {}))
        }
    }

    /// In a cluster, a bridge's QoS 1 publish for a persistent session is acknowledged (and
    /// so acknowledged to the remote broker) only once the cluster's message log has it, as
    /// a client's is: a node lost meanwhile would otherwise take the message with it.
    #[test]
    fn a_bridged_message_for_a_persistent_session_waits_for_the_clusters_log() {
        let now = Instant::now();
        let broker = Broker::new(midge_core::BrokerConfig::default(), 1);
        broker.keep_durable_in(Arc::new(Ticket7));
        let mut keeper = Local::new(broker.clone(), "keeper", None, false);
        keeper.attach(now).unwrap();
        assert!(keeper.send(
            Packet::Subscribe(Subscribe {
                packet_id: PacketId::new(1).unwrap(),
                subscriptions: vec![Subscription {
                    filter: TopicFilter::try_from("kept/#").unwrap(),
                    options: SubscriptionOptions {
                        qos: QoS::AtLeastOnce,
                        ..SubscriptionOptions::default()
                    },
                }],
                properties: Default::default(),
            }),
            now
        ));
        keeper.detach(now);

        let (settle, settled) = watch::channel(0_u64);
        let mut bridge = Local::new(broker, "bridge", None, true).with_log(Some(settled));
        bridge.attach(now).unwrap();
        assert!(matches!(bridge.next_packet(now), Some(Packet::ConnAck(_))));
        let mut publish = Publish::new(TopicName::try_from("kept/x").unwrap(), "m");
        publish.qos = QoS::AtLeastOnce;
        publish.packet_id = PacketId::new(9);
        assert!(bridge.send(Packet::Publish(publish), now));
        assert!(
            bridge.next_packet(now).is_none(),
            "acknowledged before the log had it"
        );
        settle.send_replace(6);
        assert!(
            bridge.next_packet(now).is_none(),
            "acknowledged before the log had it"
        );
        settle.send_replace(7);
        assert!(
            matches!(bridge.next_packet(now), Some(Packet::PubAck(ack)) if ack.packet_id.get() == 9),
            "the PUBACK once the log has it"
        );
    }
}
