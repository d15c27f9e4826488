//! Forwards given up: a QoS 1 or 2 message this node forwarded to a node that was taken for
//! gone before it acknowledged it. That node may have been the home of persistent sessions
//! the message was for, and never have written it to the message log; the sessions live on
//! (their clients reconnect elsewhere, or will). So before the publisher is acknowledged, the
//! message is matched against every persistent session's checkpoint in the cluster, written
//! to the log for those it matches (replayed wherever their clients come back), and handed to
//! the node that owns each of them now, this one included, for that session only (a client
//! that moved before the message was logged would otherwise miss it).
//!
//! A session may get such a message twice (it had it already, or it is replayed as well):
//! duplicates, never a loss, as QoS 1 allows. It may also get it after messages published
//! later, since it waited for the grace period.

use std::collections::HashMap;
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
        let mut by_node: HashMap<Arc<str>, Vec<String>> = HashMap::new();
        for client_id in sessions {
            match self.cluster.owner(&client_id) {
                Some((node, _)) if *node == *self.cluster.node_id() => {
                    self.broker
                        .replay_into(&client_id, message.clone(), Instant::now());
                }
                Some((node, _)) if !self.cluster.is_down(&node) => {
                    by_node.entry(node).or_default().push(client_id)
                }
                // Its node is gone too: the log keeps it for wherever the client comes back.
                _ => {}
            }
        }
        let mut waits = Vec::new();
        for (node, client_ids) in by_node {
            for group in LogEntry::split(client_ids) {
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
