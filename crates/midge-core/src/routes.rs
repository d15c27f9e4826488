//! What a cluster watches in this node's broker: its route set, the filters that have at
//! least one subscriber here, told to a [`RouteObserver`] as they come and go (a filter's
//! first subscription, its last one gone), so that other nodes forward only what someone here
//! wants; the retained messages clients set here, told to a [`RetainedObserver`], so that
//! every node keeps the same; and the persistent sessions here, told to a [`SessionObserver`]
//! as [`SessionCheckpoint`]s, so that another node can take a session up; and the QoS 1 and 2
//! messages queued here for persistent sessions, handed to a [`DurableLog`] that keeps them
//! beyond this node before their publisher is acknowledged.
//!
//! Counted under the subscription index's write lock, in step with every change to it, so the
//! observer sees the changes in the order they happened. Nothing is counted on the publish
//! path, and nothing at all until an observer is installed ([`crate::Broker::observe_routes`]).
//!
//! A shared subscription counts as its inner filter (`$share/g/a/#` as `a/#`): the message
//! reaches each node with a member, and each node picks one of its own members. Subscriptions
//! of internal sessions ([`is_internal`], the cluster's own) are not routes.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

/// Client identifiers that begin with this character belong to the broker's own sessions
/// (the cluster's). No client can present one: MQTT strings may not contain U+0000
/// [MQTT-1.5.4-2].
pub const INTERNAL_CLIENT_PREFIX: char = '\0';

/// Whether `client_id` names one of the broker's own sessions.
pub fn is_internal(client_id: &str) -> bool {
    client_id.starts_with(INTERNAL_CLIENT_PREFIX)
}

/// Told of this node's route changes. Called with the subscription index locked: it must
/// only record the change (and wake whoever handles it), never block or call the broker.
pub trait RouteObserver: Send + Sync + Debug {
    /// `filter` got its first subscription on this node.
    fn route_added(&self, filter: &str);
    /// `filter` lost its last subscription on this node.
    fn route_removed(&self, filter: &str);
}

/// Told of each retained message a client (a will, the management API) sets or clears here;
/// not of `$SYS`, nor of what [`crate::Broker::keep_retained`] stores. Called with the
/// topic's retained shard locked: it must only record the message.
pub trait RetainedObserver: Send + Sync + Debug {
    /// `message` is now its topic's retained message (an empty payload clears it).
    fn retained(&self, message: &Arc<crate::Message>);
}

/// A session that outlives its connection, as much of it as another node needs to take it
/// up: its expiry, its subscriptions, and the will its connection left waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCheckpoint {
    /// Its client identifier.
    pub client_id: String,
    /// Its Session Expiry Interval once disconnected; `None`: it never expires.
    pub expiry: Option<std::time::Duration>,
    /// Its subscriptions.
    pub subscriptions: Vec<(
        midge_codec::TopicFilter,
        midge_codec::SubscriptionOptions,
        Option<midge_codec::SubscriptionId>,
    )>,
    /// The will of its connection, while one waits (the connection is open, or it ended and
    /// the Will Delay Interval runs): part of the session's state [MQTT 5 §4.1], published
    /// by the node that takes the session up if the connection's node is lost.
    pub will: Option<CheckpointWill>,
}

/// A will as a [`SessionCheckpoint`] carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointWill {
    /// The will message, as a PUBLISH (its topic, payload, QoS, RETAIN and properties).
    pub publish: midge_codec::Publish,
    /// Its Will Delay Interval.
    pub delay: std::time::Duration,
    /// The user name of the connection that set it, for the access check when it is published.
    pub username: Option<String>,
    /// The listener of that connection, likewise.
    pub listener: usize,
}

/// Told of each change to a session here that outlives its connection (attached,
/// subscribed, unsubscribed) and of its end. Called without locks held, from the thread that
/// made the change; it must only record it.
pub trait SessionObserver: Send + Sync + Debug {
    /// The session is now as `checkpoint` says.
    fn session_changed(&self, checkpoint: SessionCheckpoint);
    /// The session ended (expired, or replaced by a clean one).
    fn session_ended(&self, client_id: &str);
}

/// Keeps QoS 1 and 2 messages queued for persistent sessions beyond this node (a cluster's
/// message log), so that they outlive it.
pub trait DurableLog: Send + Sync + Debug {
    /// Keeps `message`, just queued here for the persistent sessions of `client_ids`. Returns
    /// its ticket: the publisher's acknowledgement waits until the log has settled every
    /// ticket up to it (the runtime watches that mark; 0 holds nothing). Called from the
    /// publisher's thread without locks held; it must only record the message.
    fn append(&self, client_ids: &[bytestring::ByteString], message: &Arc<crate::Message>) -> u64;
    /// A ticket for a QoS 1 or 2 message just queued for the cluster's own session (for
    /// other nodes), and what settles it: the copy queued there holds the settlement and
    /// drops it once the session is done with the copy (the other nodes acknowledged it, or
    /// it was dropped), so a publisher's acknowledgement waits until the nodes its message
    /// goes to have it.
    fn forward_ticket(&self) -> (u64, Settlement);
}

/// Settles a [`DurableLog`] ticket when dropped.
pub struct Settlement(Option<Box<dyn FnOnce() + Send + Sync>>);

impl Settlement {
    /// A settlement that runs `settle` when dropped.
    pub fn new(settle: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self(Some(Box::new(settle)))
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        if let Some(settle) = self.0.take() {
            settle();
        }
    }
}

impl Debug for Settlement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Settlement")
    }
}

/// How many subscriptions each filter has here, and who hears of a change.
#[derive(Debug)]
pub(crate) struct RouteCounts {
    counts: HashMap<Box<str>, u32>,
    observer: Arc<dyn RouteObserver>,
}

impl RouteCounts {
    pub(crate) fn new(observer: Arc<dyn RouteObserver>) -> Self {
        Self {
            counts: HashMap::new(),
            observer,
        }
    }

    /// One more subscription to `filter`, quietly (for the count made when the observer is
    /// installed).
    pub(crate) fn count(&mut self, filter: &str) {
        *self.counts.entry(filter.into()).or_default() += 1;
    }

    /// One more subscription to `filter`.
    pub(crate) fn add(&mut self, filter: &str) {
        let count = self.counts.entry(filter.into()).or_default();
        *count += 1;
        if *count == 1 {
            self.observer.route_added(filter);
        }
    }

    /// One subscription fewer to `filter`.
    pub(crate) fn remove(&mut self, filter: &str) {
        let Some(count) = self.counts.get_mut(filter) else {
            return;
        };
        *count = count.saturating_sub(1);
        if *count == 0 {
            self.counts.remove(filter);
            self.observer.route_removed(filter);
        }
    }

    /// Every filter with a subscription.
    pub(crate) fn filters(&self) -> Vec<String> {
        self.counts.keys().map(|filter| filter.to_string()).collect()
    }
}
