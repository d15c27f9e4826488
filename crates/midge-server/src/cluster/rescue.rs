//! Forwards given up: a QoS 1 or 2 message this node forwarded to a node that was taken for
//! gone before it acknowledged it. That node may have been the home of persistent sessions
//! the message was for, and never have written it to the message log; the sessions live on
//! (their clients reconnect elsewhere, or will). So before the publisher is acknowledged, the
//! message is matched against every persistent session's checkpoint in the cluster, written
//! to the log for those it matches (replayed wherever their clients come back), and then
//! handed, for those sessions only, to every node that is up, this one included: each queues
//! it for the ones it holds. A client that moved before the message was logged has already
//! read its log on its new node, so it gets the message from there.
//!
//! Every node is told rather than the owner this node knows of: that knowledge (a watch of
//! the owners bucket) can lag by seconds while JetStream elects new leaders for what the
//! lost node led, which is exactly when rescues happen; a node that adopted the session in
//! that time would be missed. Telling every node needs no read that could be stale: a node
//! that adopts a session claims it before reading its log, so it either read the log after
//! the message was written there, or held the session when the message arrived.
//!
//! A session may get such a message twice (it had it already, or it is replayed as well):
//! duplicates, never a loss, as QoS 1 allows. It may also get it after messages published
//! later, since it waited for the grace period.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use midge_cluster::Cluster;
use midge_cluster::log::LogEntry;
use midge_core::Broker;
use midge_core::routes::SessionCheckpoint;

use super::{checkpoint, message_from};

/// How long checkpoints read for one given-up forward serve the next ones: a node's
/// forwards are given up all at once.
const FRESH_FOR: Duration = Duration::from_secs(1);

/// How long the checkpoints are read again while JetStream does not answer.
const READ_WITHIN: Duration = Duration::from_secs(60);

/// Finds the sessions a given-up forward was for, and sees that they get it.
#[derive(Debug)]
pub(super) struct Rescue {
    cluster: Arc<dyn Cluster>,
    broker: Arc<Broker>,
    /// The checkpoints read last, and when.
    read: tokio::sync::Mutex<Option<(Instant, Arc<Vec<SessionCheckpoint>>)>>,
}

impl Rescue {
    pub(super) fn new(cluster: Arc<dyn Cluster>, broker: Arc<Broker>) -> Self {
        Self {
            cluster,
            broker,
            read: tokio::sync::Mutex::new(None),
        }
    }

    /// `packet` (an MQTT 5 PUBLISH of QoS 1 or 2) was forwarded to a node that is gone:
    /// returns once the log has it for every persistent session it matches, and the nodes
    /// that own those sessions now have it (or were given up too).
    pub(super) async fn given_up(&self, packet: Bytes) {
        let message = match message_from(packet.clone(), None, Duration::ZERO, Instant::now()) {
            Ok(message) => Arc::new(message),
            Err(_) => return,
        };
        let sessions = self.sessions_matching(message.topic.as_str()).await;
        if sessions.is_empty() {
            return;
        }
        let _ = self.cluster.log(sessions.clone(), packet.clone()).await;
        for client_id in &sessions {
            self.broker
                .replay_into(client_id, message.clone(), Instant::now());
        }
        let mut waits = Vec::new();
        for node in self.cluster.peers_up() {
            for group in LogEntry::split(sessions.clone()) {
                waits.push(self.cluster.deliver(&node, group, packet.clone()));
            }
        }
        for wait in waits {
            let _ = wait.await;
        }
        tracing::debug!(
            event = "cluster.forward_rescued",
            topic = message.topic.as_str(),
            "a message forwarded to a node that is gone was logged and handed on for the persistent sessions it matches"
        );
    }

    /// Every persistent session's checkpoint, read again while JetStream does not answer (it
    /// may be electing new leaders for what the lost node led) for up to [`READ_WITHIN`].
    async fn read_checkpoints(&self) -> Vec<SessionCheckpoint> {
        let give_up = Instant::now() + READ_WITHIN;
        loop {
            match self.cluster.checkpoints().await {
                Ok(found) => {
                    return found
                        .into_iter()
                        .filter_map(|bytes| checkpoint::decode(bytes).ok())
                        .collect();
                }
                Err(error) if Instant::now() >= give_up => {
                    tracing::warn!(event = "cluster.rescue_failed", %error, "the sessions a message forwarded to a node that is gone was for cannot be read ({error}); it is not kept for them");
                    return Vec::new();
                }
                Err(error) => {
                    tracing::debug!(event = "cluster.rescue_retry", %error, "cannot read the sessions' checkpoints yet ({error}); trying again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// The persistent sessions, anywhere in the cluster, with a subscription `topic` matches.
    async fn sessions_matching(&self, topic: &str) -> Vec<String> {
        let checkpoints = {
            let mut read = self.read.lock().await;
            match &*read {
                Some((at, checkpoints)) if at.elapsed() < FRESH_FOR => checkpoints.clone(),
                _ => {
                    let checkpoints = Arc::new(self.read_checkpoints().await);
                    *read = Some((Instant::now(), checkpoints.clone()));
                    checkpoints
                }
            }
        };
        checkpoints
            .iter()
            .filter(|checkpoint| {
                checkpoint
                    .subscriptions
                    .iter()
                    .any(|(filter, _, _)| filter.matches(topic))
            })
            .map(|checkpoint| checkpoint.client_id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use midge_cluster::{ClaimError, ClusterStatus};
    use midge_codec::{Packet, ProtocolVersion, Publish, QoS, SubscriptionOptions, TopicFilter, TopicName};
    use parking_lot::Mutex;
    use tokio::sync::oneshot;

    /// n1 as it was in a run of the frozen-node test: its view of the owners still names
    /// n2, which is gone, while the session's client has already moved to n3 and read its
    /// log there.
    #[derive(Debug, Default)]
    struct StaleView {
        logged: Mutex<Vec<Vec<String>>>,
        delivered: Mutex<Vec<(Arc<str>, Vec<String>)>>,
    }

    impl Cluster for StaleView {
        fn node_id(&self) -> &str {
            "n1"
        }
        fn route_added(&self, _filter: &str) {}
        fn route_removed(&self, _filter: &str) {}
        fn retained_changed(&self, _topic: &str, _packet: Bytes) {}
        fn forward(&self, _nodes: &[Arc<str>], _packet: Bytes, _qos: QoS) -> Vec<oneshot::Receiver<bool>> {
            Vec::new()
        }
        fn deliver(
            &self,
            node: &Arc<str>,
            client_ids: Vec<String>,
            _packet: Bytes,
        ) -> oneshot::Receiver<bool> {
            self.delivered.lock().push((node.clone(), client_ids));
            let (done, wait) = oneshot::channel();
            let _ = done.send(true);
            wait
        }
        fn is_down(&self, node: &str) -> bool {
            node == "n2"
        }
        fn peers_up(&self) -> Vec<Arc<str>> {
            vec![Arc::from("n3")]
        }
        fn claim<'a>(&'a self, _client_id: &'a str) -> midge_cluster::Claiming<'a> {
            Box::pin(std::future::ready(Err(ClaimError::Contended)))
        }
        fn owner(&self, _client_id: &str) -> Option<(Arc<str>, u64)> {
            Some((Arc::from("n2"), 7))
        }
        fn session_changed(&self, _client_id: &str, _checkpoint: Bytes) {}
        fn session_ended(&self, _client_id: &str) {}
        fn checkpoint<'a>(&'a self, _client_id: &'a str) -> midge_cluster::Fetching<'a> {
            Box::pin(std::future::ready(Ok(None)))
        }
        fn checkpoints(&self) -> midge_cluster::FetchingAll<'_> {
            let session = |client_id: &str, filter: &str| {
                checkpoint::encode(&SessionCheckpoint {
                    client_id: client_id.into(),
                    expiry: None,
                    subscriptions: vec![(
                        TopicFilter::try_from(filter).unwrap(),
                        SubscriptionOptions {
                            qos: QoS::AtLeastOnce,
                            ..SubscriptionOptions::default()
                        },
                        None,
                    )],
                    will: None,
                })
            };
            Box::pin(std::future::ready(Ok(vec![
                session("mover", "hung/#"),
                session("elsewhere", "other/#"),
            ])))
        }
        fn log(&self, client_ids: Vec<String>, _packet: Bytes) -> oneshot::Receiver<bool> {
            self.logged.lock().push(client_ids);
            let (done, wait) = oneshot::channel();
            let _ = done.send(true);
            wait
        }
        fn status(&self) -> ClusterStatus {
            ClusterStatus::default()
        }
    }

    /// A forward given up is logged for the sessions it matches and handed to every node
    /// that is up, not only to the owner this node knows of: that view may be stale (here it
    /// names the lost node) and the session already adopted elsewhere, its log read before
    /// the message was written there.
    #[tokio::test]
    async fn a_rescued_message_reaches_a_session_adopted_while_the_owners_view_was_stale() {
        let cluster = Arc::new(StaleView::default());
        let broker = Broker::new(midge_core::BrokerConfig::default(), 1);
        let rescue = Rescue::new(cluster.clone(), broker);
        let mut packet = BytesMut::new();
        let mut publish = Publish::new(
            TopicName::try_from("hung/x").unwrap(),
            Bytes::from_static(b"during:0"),
        );
        publish.qos = QoS::AtLeastOnce;
        publish.packet_id = midge_codec::PacketId::new(1);
        Packet::Publish(publish)
            .encode(ProtocolVersion::V5, &mut packet)
            .unwrap();
        rescue.given_up(packet.freeze()).await;
        assert_eq!(*cluster.logged.lock(), vec![vec!["mover".to_owned()]]);
        assert_eq!(
            *cluster.delivered.lock(),
            vec![(Arc::from("n3"), vec!["mover".to_owned()])]
        );
    }
}
