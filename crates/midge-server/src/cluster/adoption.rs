//! Sessions of a node that is gone: once a node has missed its heartbeats for the grace
//! period, the persistent sessions it owned are taken up by the nodes that are left, without
//! waiting for their clients to come back. Each session goes to one of them, chosen the same
//! way on every node (the highest hash of node and client identifier among the nodes up), so
//! that the work is shared and the nodes do not race for it; the owners bucket's
//! compare-and-set on the gone node's revision settles any disagreement (a client that came
//! back meanwhile, or another node that chose differently, wins).
//!
//! A session taken up here is what it would be had its client connected here: offline,
//! with its subscriptions (so this node's routes draw its messages here, where they are
//! logged for it), the messages the log holds for it past its floor queued, and its expiry
//! timed from when its node was lost (the grace before now). Its client, when it comes back
//! to any node, finds it there (`session_present = 1`). The will its connection left waiting
//! (kept in the checkpoint while it waits) is published here, as for a connection that
//! ended without DISCONNECT when its node was lost: at once, or once what remains of its
//! Will Delay Interval has passed unless the client connects again first.
//!
//! Only persistent sessions (those with a checkpoint) are taken: a client identifier with no
//! session beyond its connection is left to its node, which may only be cut off, and whose
//! clients would otherwise be closed when it is back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use midge_cluster::{ClaimError, Cluster};
use midge_core::Broker;
use tokio::sync::{mpsc, watch};

use super::checkpoint;

/// How long the log of a session taken up is read again while it does not answer.
const REPLAY_WITHIN: Duration = Duration::from_secs(30);

/// Looks for sessions to take up whenever a node is taken for gone (a nudge on `nudges`),
/// and again every grace period while any node is gone (a node chosen for a session may be
/// lost too, or a read may have failed), until `stop` changes.
pub(super) async fn run(
    cluster: Arc<dyn Cluster>,
    broker: Arc<Broker>,
    mut nudges: mpsc::UnboundedReceiver<()>,
    mut stop: watch::Receiver<bool>,
) {
    let every = cluster.node_down_grace().max(Duration::from_secs(1));
    loop {
        tokio::select! {
            nudge = nudges.recv() => if nudge.is_none() { return },
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        if cluster.closing() {
            return;
        }
        let orphans = cluster.orphans();
        if orphans.is_empty() {
            continue;
        }
        // Which of them have a persistent session, from the checkpoints' keys alone: a lost
        // node may have owned many more identifiers of clean sessions, each a read.
        let Ok(persistent) = cluster.checkpoint_keys().await else {
            continue;
        };
        let mut nodes = cluster.peers_up();
        let me: Arc<str> = Arc::from(cluster.node_id());
        nodes.push(me.clone());
        for (client_id, revision) in orphans {
            if chosen(&client_id, &nodes) != Some(&me)
                || !persistent.contains(&midge_cluster::keys::hashed(&client_id))
            {
                continue;
            }
            if *stop.borrow() || cluster.closing() {
                return;
            }
            // Not the others either, this round, if the cluster does not answer (each would
            // wait as long).
            if take_up(cluster.as_ref(), &broker, &client_id, revision).await == Outcome::Unreachable {
                break;
            }
        }
    }
}

/// The node, of `nodes`, that takes up `client_id`'s session: the highest hash of the two
/// (rendezvous hashing: when a node goes, only its own share moves).
fn chosen<'a>(client_id: &str, nodes: &'a [Arc<str>]) -> Option<&'a Arc<str>> {
    nodes
        .iter()
        .max_by_key(|node| midge_cluster::keys::hashed(&format!("{node}\n{client_id}")))
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Taken,
    /// No checkpoint: a client whose session ends with its connection.
    NotPersistent,
    /// Claimed since by another, or it cannot be done now (tried again in the next round,
    /// if it is still the gone node's).
    Left,
    /// The cluster's shared state does not answer (this node may be the one cut off).
    Unreachable,
}

/// Takes up `client_id`'s session, owned at `revision` by a node that is gone.
async fn take_up(cluster: &dyn Cluster, broker: &Broker, client_id: &str, revision: u64) -> Outcome {
    // Read before the claim: its node is gone, so only a claim (which the compare-and-set
    // below would lose to) comes with a newer one.
    let checkpoint = match cluster.checkpoint(client_id).await {
        Ok(Some(bytes)) => match checkpoint::decode(bytes) {
            Ok(checkpoint) if checkpoint.client_id == client_id => checkpoint,
            Ok(_) => return Outcome::Left,
            Err(problem) => {
                tracing::warn!(
                    event = "cluster.adopt_failed",
                    client_id,
                    "the session of {client_id}, whose node is gone, cannot be read ({problem}); it is taken up when its client connects"
                );
                return Outcome::Left;
            }
        },
        Ok(None) => return Outcome::NotPersistent,
        Err(_) => return Outcome::Unreachable,
    };
    if broker.session_info(client_id).is_some() {
        return Outcome::Left;
    }
    match cluster.adopt(client_id, revision).await {
        Ok(_) => {}
        Err(ClaimError::Contended) => return Outcome::Left,
        Err(error) => {
            tracing::debug!(event = "cluster.adopt_retry", client_id, %error, "cannot take over the session of {client_id} yet ({error})");
            return Outcome::Unreachable;
        }
    }
    let now = Instant::now();
    let lost_at = now.checked_sub(cluster.node_down_grace()).unwrap_or(now);
    if !broker.adopt_lost_session(checkpoint, lost_at) {
        return Outcome::Left;
    }
    // The log may not answer while JetStream elects leaders for what the lost node led.
    let give_up = Instant::now() + REPLAY_WITHIN;
    let mut replayed = super::replay_log(cluster, broker, client_id).await;
    while replayed.is_err() && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_secs(1)).await;
        replayed = super::replay_log(cluster, broker, client_id).await;
    }
    if replayed.is_err() {
        // Let go again: its client, when it connects, reads the log itself.
        broker.take_over_client(client_id, Instant::now());
        tracing::warn!(
            event = "cluster.adopt_failed",
            client_id,
            "the messages kept for the session of {client_id}, whose node is gone, cannot be read; it is taken up when its client connects"
        );
        return Outcome::Left;
    }
    cluster.note_adopted();
    tracing::info!(
        event = "cluster.session_adopted",
        client_id,
        "Session of {client_id} taken up here: its node is gone."
    );
    Outcome::Taken
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every node chooses the same one; when a node goes, only the sessions it was chosen
    /// for move, and they spread over the others.
    #[test]
    fn each_session_has_one_chosen_node_and_only_a_lost_nodes_share_moves() {
        let all: Vec<Arc<str>> = ["n1", "n2", "n3", "n4"].into_iter().map(Arc::from).collect();
        let mut reversed = all.clone();
        reversed.reverse();
        let without_n2: Vec<Arc<str>> = all.iter().filter(|node| ***node != *"n2").cloned().collect();
        let mut share = std::collections::HashMap::<&str, usize>::new();
        for n in 0..1000 {
            let client_id = format!("client-{n}");
            let before = chosen(&client_id, &all).unwrap();
            assert_eq!(
                Some(before),
                chosen(&client_id, &reversed),
                "the order of the nodes does not matter"
            );
            let after = chosen(&client_id, &without_n2).unwrap();
            if **before != *"n2" {
                assert_eq!(before, after, "{client_id} moved though its node stayed");
            }
            *share.entry(after.as_ref()).or_default() += 1;
        }
        assert_eq!(share.len(), 3);
        assert!(share.values().all(|&count| count > 200), "{share:?}");
    }
}
