//! Topic ids (MQTT-SN 1.2 §5.3.11, §6.5, §6.7): the predefined ids the configuration agrees
//! on with every client (or, from Paho's CSV file, with one client), and each client's own
//! registrations, made by its REGISTER or by the gateway's before it publishes on a new topic.
//!
//! Ids 0 and 0xFFFF are never issued. Registered ids are numbered above the predefined ones so
//! a client can never confuse the two, and at most `max_registered_topics` per client exist.
//! A registry notes its changes so that the gateway can write those of a persistent client to
//! the store; it never writes anything itself.

use std::collections::HashMap;
use std::path::Path;

use bytestring::ByteString;
use midge_codec::TopicName;

/// Why a predefined topic file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PredefinedError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// A line is not `ClientID,TopicName,TopicID` with a valid topic and an id of 1 to 65534,
    /// or repeats an id or a topic for the same clients.
    #[error("{path}:{line}: {problem}")]
    Line {
        /// The file.
        path: String,
        /// The line number, from 1.
        line: usize,
        /// What is wrong.
        problem: String,
    },
}

/// The predefined topics of one listener: for every client, and per client id.
#[derive(Debug, Default, Clone)]
pub struct Predefined {
    everyone: Table,
    per_client: HashMap<ByteString, Table>,
}

#[derive(Debug, Default, Clone)]
struct Table {
    by_id: HashMap<u16, TopicName>,
    by_name: HashMap<ByteString, u16>,
}

impl Table {
    fn insert(&mut self, id: u16, topic: TopicName) -> Result<(), String> {
        if self.by_id.contains_key(&id) {
            return Err(format!("topic id {id} is predefined twice"));
        }
        if self.by_name.contains_key(topic.as_str()) {
            return Err(format!("topic \"{topic}\" is predefined twice"));
        }
        self.by_name.insert(topic.as_byte_string().clone(), id);
        self.by_id.insert(id, topic);
        Ok(())
    }
}

impl Predefined {
    /// The topics of `mqttsn_predefined_topic` lines (already checked by the configuration).
    pub fn new(topics: &[(u16, TopicName)]) -> Self {
        let mut predefined = Self::default();
        for (id, topic) in topics {
            // The configuration refused duplicates already.
            let _ = predefined.everyone.insert(*id, topic.clone());
        }
        predefined
    }

    /// Adds the lines of a Paho predefined topic file: `ClientID,TopicName,TopicID`, `*` for
    /// every client; blank lines and lines starting with `#` are skipped.
    pub fn load_file(&mut self, path: &Path) -> Result<(), PredefinedError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PredefinedError::Read {
            path: name.clone(),
            source,
        })?;
        for (index, line) in text.lines().enumerate() {
            let line_error = |problem: String| PredefinedError::Line {
                path: name.clone(),
                line: index + 1,
                problem,
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let [client, topic, id] = fields[..] else {
                return Err(line_error("expected ClientID,TopicName,TopicID".to_owned()));
            };
            let id: u16 = id
                .parse()
                .ok()
                .filter(|id| (1..=0xFFFE).contains(id))
                .ok_or_else(|| line_error(format!("topic id \"{id}\" is not a number from 1 to 65534")))?;
            let topic = TopicName::try_from(topic)
                .map_err(|reason| line_error(format!("\"{topic}\" is not a topic name: {reason}")))?;
            let table = if client == "*" {
                &mut self.everyone
            } else {
                self.per_client.entry(client.into()).or_default()
            };
            table.insert(id, topic).map_err(line_error)?;
        }
        Ok(())
    }

    /// The topic predefined as `id` for `client_id` (its own ids first).
    pub fn topic(&self, client_id: &str, id: u16) -> Option<&TopicName> {
        self.per_client
            .get(client_id)
            .and_then(|table| table.by_id.get(&id))
            .or_else(|| self.everyone.by_id.get(&id))
    }

    /// The id predefined for `topic` for `client_id`, if any.
    pub fn id(&self, client_id: &str, topic: &str) -> Option<u16> {
        self.per_client
            .get(client_id)
            .and_then(|table| table.by_name.get(topic))
            .or_else(|| self.everyone.by_name.get(topic))
            .copied()
    }

    /// The highest predefined id: registered ids start above it.
    pub fn highest(&self) -> u16 {
        self.per_client
            .values()
            .chain(std::iter::once(&self.everyone))
            .flat_map(|table| table.by_id.keys())
            .copied()
            .max()
            .unwrap_or(0)
    }
}

/// A change to a registry, for the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// `id` now stands for the topic.
    Added(u16, TopicName),
    /// `id` is forgotten.
    Removed(u16),
}

/// One client's registered topic ids.
#[derive(Debug, Clone, Default)]
pub(crate) struct Registry {
    by_id: HashMap<u16, TopicName>,
    by_name: HashMap<ByteString, u16>,
    next: u16,
    /// Changes since [`Registry::take_changes`] was last called.
    changes: Vec<Change>,
}

impl Registry {
    /// A registry holding `topics` as read back from the store: ids 0 and 0xFFFF, repeated ids
    /// or topics, and ids beyond `max` are left out. New ids continue above the highest.
    pub(crate) fn restore(topics: impl IntoIterator<Item = (u16, TopicName)>, max: u16) -> Self {
        let mut registry = Self::default();
        for (id, topic) in topics {
            if registry.by_id.len() >= usize::from(max)
                || id == 0
                || id == 0xFFFF
                || registry.by_id.contains_key(&id)
                || registry.by_name.contains_key(topic.as_str())
            {
                continue;
            }
            registry.by_name.insert(topic.as_byte_string().clone(), id);
            registry.by_id.insert(id, topic);
            registry.next = registry.next.max(if id >= 0xFFFE { 0 } else { id + 1 });
        }
        registry
    }

    /// Every registered id and its topic, in id order.
    pub(crate) fn entries(&self) -> Vec<(u16, TopicName)> {
        let mut entries: Vec<(u16, TopicName)> = self
            .by_id
            .iter()
            .map(|(id, topic)| (*id, topic.clone()))
            .collect();
        entries.sort_unstable_by_key(|(id, _)| *id);
        entries
    }

    /// The changes made since the last call.
    pub(crate) fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    /// The topic registered as `id`.
    pub(crate) fn topic(&self, id: u16) -> Option<&TopicName> {
        self.by_id.get(&id)
    }

    /// The id registered for `topic`.
    pub(crate) fn id(&self, topic: &str) -> Option<u16> {
        self.by_name.get(topic).copied()
    }

    /// The id of `topic`, registering it if needed. `None` when `max` ids are in use, or
    /// every id above `first_free - 1` is taken.
    pub(crate) fn register(&mut self, topic: &TopicName, first_free: u16, max: u16) -> Option<u16> {
        if let Some(id) = self.id(topic) {
            return Some(id);
        }
        if self.by_id.len() >= usize::from(max) {
            return None;
        }
        let first = first_free.max(1);
        if self.next < first {
            self.next = first;
        }
        // At most max (< 65534) ids are taken, so a free one is found within the range.
        for _ in 0..=u16::MAX {
            let id = self.next;
            self.next = if self.next >= 0xFFFE { first } else { self.next + 1 };
            if id != 0 && id != 0xFFFF && !self.by_id.contains_key(&id) {
                self.by_id.insert(id, topic.clone());
                self.by_name.insert(topic.as_byte_string().clone(), id);
                self.changes.push(Change::Added(id, topic.clone()));
                return Some(id);
            }
        }
        None
    }

    /// Forgets `id` (a client refused it, or said it does not know it).
    pub(crate) fn forget(&mut self, id: u16) {
        if let Some(topic) = self.by_id.remove(&id) {
            self.by_name.remove(topic.as_str());
            self.changes.push(Change::Removed(id));
        }
    }

    /// Registered ids.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_id.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn topic(name: &str) -> TopicName {
        TopicName::try_from(name).unwrap()
    }

    #[test]
    fn registered_ids_start_above_the_predefined_and_are_reused_per_topic() {
        let mut registry = Registry::default();
        assert_eq!(registry.register(&topic("a"), 8, 10), Some(8));
        assert_eq!(registry.register(&topic("b"), 8, 10), Some(9));
        assert_eq!(registry.register(&topic("a"), 8, 10), Some(8));
        assert_eq!(registry.topic(9), Some(&topic("b")));
        registry.forget(8);
        assert_eq!(registry.id("a"), None);
        assert_eq!(registry.len(), 1);
    }

    #[test]
    fn changes_are_noted_and_a_restored_registry_goes_on_above_its_highest_id() {
        let mut registry = Registry::default();
        registry.register(&topic("a"), 8, 10);
        registry.register(&topic("a"), 8, 10);
        registry.register(&topic("b"), 8, 10);
        registry.forget(8);
        registry.forget(8);
        assert_eq!(
            registry.take_changes(),
            vec![
                Change::Added(8, topic("a")),
                Change::Added(9, topic("b")),
                Change::Removed(8)
            ]
        );
        assert!(registry.take_changes().is_empty());

        let mut restored = Registry::restore(
            [
                (12, topic("x")),
                (0, topic("zero")),
                (0xFFFF, topic("reserved")),
                (12, topic("again")),
                (13, topic("x")),
                (20, topic("y")),
            ],
            10,
        );
        assert_eq!(restored.entries(), vec![(12, topic("x")), (20, topic("y"))]);
        assert!(restored.take_changes().is_empty());
        assert_eq!(restored.register(&topic("z"), 8, 10), Some(21));
        assert_eq!(Registry::restore([(1, topic("a")), (2, topic("b"))], 1).len(), 1);
    }

    #[test]
    fn the_limit_is_kept() {
        let mut registry = Registry::default();
        assert!(registry.register(&topic("a"), 1, 2).is_some());
        assert!(registry.register(&topic("b"), 1, 2).is_some());
        assert_eq!(registry.register(&topic("c"), 1, 2), None);
        assert_eq!(registry.register(&topic("x"), 1, 0), None);
    }

    #[test]
    fn ids_wrap_below_ffff_and_skip_those_in_use() {
        let mut registry = Registry {
            next: 0xFFFD,
            ..Registry::default()
        };
        assert_eq!(registry.register(&topic("a"), 5, 100), Some(0xFFFD));
        assert_eq!(registry.register(&topic("b"), 5, 100), Some(0xFFFE));
        assert_eq!(registry.register(&topic("c"), 5, 100), Some(5));
    }

    #[test]
    fn the_paho_file_gives_ids_per_client_and_to_everyone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("predefined.csv");
        std::fs::write(
            &path,
            "# comment\n*, sensors/t, 7\nnode1,own/topic,7\n\nnode1, x/y, 9\n",
        )
        .unwrap();
        let mut predefined = Predefined::new(&[(1, topic("cfg/one"))]);
        predefined.load_file(&path).unwrap();
        assert_eq!(predefined.topic("other", 7), Some(&topic("sensors/t")));
        assert_eq!(predefined.topic("node1", 7), Some(&topic("own/topic")));
        assert_eq!(predefined.topic("node1", 1), Some(&topic("cfg/one")));
        assert_eq!(predefined.id("node1", "x/y"), Some(9));
        assert_eq!(predefined.id("other", "x/y"), None);
        assert_eq!(predefined.highest(), 9);
    }

    #[test]
    fn bad_lines_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.csv");
        for (text, needle) in [
            ("*,a,1\n*,b,1\n", ":2: topic id 1 is predefined twice"),
            ("*,a/+,1\n", ":1: \"a/+\" is not a topic name"),
            ("*,a,0\n", ":1: topic id \"0\" is not a number"),
            ("*,a\n", ":1: expected ClientID,TopicName,TopicID"),
        ] {
            std::fs::write(&path, text).unwrap();
            let error = Predefined::default().load_file(&path).unwrap_err().to_string();
            assert!(error.contains(needle), "{error}");
        }
    }
}
