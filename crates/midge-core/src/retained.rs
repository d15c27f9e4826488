//! Retained messages (§3.3.1.3): at most one per topic, found by topic filter when a client
//! subscribes.
//!
//! A trie over topic levels, the mirror of the subscription index: here the stored keys are
//! topic names and the query is a filter, so `+` visits every child and `#` a whole subtree.
//! First-level wildcards skip `$` topics [MQTT-4.7.2-1].
//!
//! The store is split into [`SHARDS`] tries by a hash of the topic, each behind its own lock
//! ([`RetainedStore`]): a retained PUBLISH locks only its topic's shard, so publishers on
//! different cores do not queue behind one lock; a SUBSCRIBE (rarer) reads every shard.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::message::Message;

/// How many independently locked tries the store is split into.
pub(crate) const SHARDS: usize = 16;

/// The retained messages of every topic, in [`SHARDS`] locked tries.
#[derive(Debug, Default)]
pub(crate) struct RetainedStore {
    shards: [RwLock<Retained>; SHARDS],
}

/// Every shard of the store, read-locked together (in shard order, so two holders never wait
/// on each other crosswise).
pub(crate) struct AllShards<'a>([RwLockReadGuard<'a, Retained>; SHARDS]);

impl RetainedStore {
    /// The shard that holds `topic`'s retained message, write-locked.
    pub(crate) fn shard(&self, topic: &str) -> RwLockWriteGuard<'_, Retained> {
        self.shards[shard_of(topic)].write()
    }

    /// Every shard, read-locked: what a SUBSCRIBE looks through.
    pub(crate) fn read_all(&self) -> AllShards<'_> {
        AllShards(std::array::from_fn(|i| self.shards[i].read()))
    }

    /// Stores (or, for an empty payload, deletes) `message` for its topic.
    pub(crate) fn set(&self, message: Arc<Message>) {
        self.shard(message.topic.as_str()).set(message);
    }

    /// How many retained messages are stored, and their topic and payload bytes.
    pub(crate) fn totals(&self) -> (usize, u64) {
        self.shards.iter().fold((0, 0), |(count, bytes), shard| {
            let shard = shard.read();
            (count + shard.len(), bytes + shard.bytes())
        })
    }
}

impl AllShards<'_> {
    /// Every retained message whose topic matches `filter`, as [`Retained::matching`].
    pub(crate) fn matching(&self, filter: &str, out: &mut Vec<Arc<Message>>) {
        for shard in &self.0 {
            shard.matching(filter, out);
        }
    }
}

/// The shard of `topic`: FNV-1a over its bytes, cheap for the short strings topics are.
fn shard_of(topic: &str) -> usize {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in topic.bytes() {
        hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
    }
    hash as usize % SHARDS
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Self>,
    message: Option<Arc<Message>>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.message.is_none()
    }
}

/// One shard of the retained messages.
#[derive(Debug, Default)]
pub(crate) struct Retained {
    root: Node,
    count: usize,
    /// Topic and payload bytes of the messages stored.
    bytes: u64,
}

impl Retained {
    /// Stores `message` for its topic, replacing any; an empty payload deletes instead
    /// [MQTT-3.3.1-6] [MQTT-3.3.1-7].
    pub(crate) fn set(&mut self, message: Arc<Message>) {
        let topic = message.topic.as_str().to_owned();
        let levels: Vec<&str> = topic.split('/').collect();
        if message.payload.is_empty() {
            if let Some(old) = remove(&mut self.root, &levels) {
                self.count -= 1;
                self.bytes = self.bytes.saturating_sub(old.size() as u64);
            }
            return;
        }
        let mut node = &mut self.root;
        for level in levels {
            node = node.children.entry(level.into()).or_default();
        }
        self.bytes += message.size() as u64;
        match node.message.replace(message) {
            None => self.count += 1,
            Some(old) => self.bytes = self.bytes.saturating_sub(old.size() as u64),
        }
    }

    /// Topic and payload bytes of the messages stored.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// How many retained messages are stored.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Every retained message whose topic matches `filter` (a plain filter, not `$share/...`).
    pub(crate) fn matching(&self, filter: &str, out: &mut Vec<Arc<Message>>) {
        let levels: Vec<&str> = filter.split('/').collect();
        walk(&self.root, &levels, true, out);
    }
}

fn remove(node: &mut Node, levels: &[&str]) -> Option<Arc<Message>> {
    let Some((level, rest)) = levels.split_first() else {
        return node.message.take();
    };
    let child = node.children.get_mut(*level)?;
    let removed = remove(child, rest);
    if child.is_empty() {
        node.children.remove(*level);
    }
    removed
}

fn walk(node: &Node, levels: &[&str], first: bool, out: &mut Vec<Arc<Message>>) {
    let Some((level, rest)) = levels.split_first() else {
        out.extend(node.message.iter().cloned());
        return;
    };
    let visible = |name: &str| !(first && name.starts_with('$'));
    match *level {
        "#" => {
            // "a/#" matches "a" itself as well as everything below it.
            if !first {
                out.extend(node.message.iter().cloned());
            }
            for (name, child) in &node.children {
                if visible(name) {
                    everything(child, out);
                }
            }
        }
        "+" => {
            for (name, child) in &node.children {
                if visible(name) {
                    walk(child, rest, false, out);
                }
            }
        }
        literal => {
            if let Some(child) = node.children.get(literal) {
                walk(child, rest, false, out);
            }
        }
    }
}

fn everything(node: &Node, out: &mut Vec<Arc<Message>>) {
    out.extend(node.message.iter().cloned());
    for child in node.children.values() {
        everything(child, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use midge_codec::properties::PublishProperties;
    use midge_codec::{QoS, TopicName};

    fn message(topic: &str, payload: &'static str) -> Arc<Message> {
        Arc::new(Message::new(
            TopicName::try_from(topic).unwrap(),
            Bytes::from_static(payload.as_bytes()),
            QoS::AtMostOnce,
            true,
            PublishProperties::default(),
            None,
            None,
        ))
    }

    fn topics(store: &Retained, filter: &str) -> Vec<String> {
        let mut out = Vec::new();
        store.matching(filter, &mut out);
        let mut names: Vec<String> = out.iter().map(|m| m.topic.to_string()).collect();
        names.sort();
        names
    }

    #[test]
    fn set_replace_delete() {
        let mut store = Retained::default();
        store.set(message("a/b", "1"));
        store.set(message("a/b", "2"));
        assert_eq!(store.len(), 1);
        let mut out = Vec::new();
        store.matching("a/b", &mut out);
        assert_eq!(&out[0].payload[..], b"2");
        store.set(message("a/b", ""));
        assert_eq!(store.len(), 0);
        assert!(store.root.is_empty());
    }

    #[test]
    fn wildcards_and_dollar_topics() {
        let mut store = Retained::default();
        for t in ["a", "a/b", "a/b/c", "x/b", "$SYS/up", "/lead"] {
            store.set(message(t, "p"));
        }
        assert_eq!(topics(&store, "#"), ["/lead", "a", "a/b", "a/b/c", "x/b"]);
        assert_eq!(topics(&store, "a/#"), ["a", "a/b", "a/b/c"]);
        assert_eq!(topics(&store, "+/b"), ["a/b", "x/b"]);
        assert_eq!(topics(&store, "+"), ["a"]);
        assert_eq!(topics(&store, "+/+"), ["/lead", "a/b", "x/b"]);
        assert_eq!(topics(&store, "$SYS/#"), ["$SYS/up"]);
    }

    #[test]
    fn the_sharded_store_finds_topics_of_every_shard_and_counts_them_all() {
        let store = RetainedStore::default();
        let names: Vec<String> = (0..200).map(|n| format!("room/{n}/temp")).collect();
        for name in &names {
            store.set(Arc::new(Message::new(
                TopicName::try_from(name.as_str()).unwrap(),
                Bytes::from(name.clone().into_bytes()),
                QoS::AtMostOnce,
                true,
                PublishProperties::default(),
                None,
                None,
            )));
        }
        let used: std::collections::HashSet<usize> = names.iter().map(|n| shard_of(n)).collect();
        assert_eq!(used.len(), SHARDS, "200 topics spread over every shard");
        let mut found = Vec::new();
        store.read_all().matching("room/+/temp", &mut found);
        assert_eq!(found.len(), 200);
        let (count, bytes) = store.totals();
        assert_eq!(count, 200);
        assert!(bytes > 200 * 2 * "room/0/temp".len() as u64);
        store.set(message("room/7/temp", ""));
        assert_eq!(
            store.totals().0,
            199,
            "an empty payload deletes from the right shard"
        );
    }
}
