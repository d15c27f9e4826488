//! Topic aliases from the server to one client (MQTT 5 §3.3.2.3.4): which topic names a
//! connection sends as a two-byte alias instead of the name.
//!
//! Only for a client that allows them: its CONNECT's Topic Alias Maximum above 0 [MQTT-3.1.2-27],
//! and no alias above it [MQTT-3.1.2-26], [MQTT-3.3.2-11]. The table is bounded by that maximum
//! and by [`OUTBOUND_ALIAS_LIMIT`] whichever is smaller, lives as long as the connection (a new
//! connection starts with none, as [MQTT-3.3.2-7] requires of both sides), and copies the topic
//! names it keeps, so that it never holds a publisher's read buffer alive.
//!
//! The policy:
//! - Topics shorter than [`MIN_ALIASED_LEN`] bytes are sent as they are: the alias property
//!   costs three bytes, so they would gain nothing.
//! - The first time a topic is sent while the table has room, it gets the next free alias: the
//!   PUBLISH carries the name and the alias, and later ones the alias and an empty name.
//! - Once the table is full, a new topic is sent by name and remembered as a candidate (the
//!   candidates are bounded like the table). If it comes again while still a candidate, it
//!   takes the alias of the least recently used topic. A stream of topics seen once never
//!   evicts the topics in steady use, and a topic that is back is aliased on its second
//!   sighting.
//!
//! Nothing here is consulted for a client that allows no aliases: its deliveries keep the
//! shared encodings of the message.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU16;

/// The most aliases Midge keeps for one connection, whatever the client allows.
pub const OUTBOUND_ALIAS_LIMIT: u16 = 32;

/// Topics shorter than this are never aliased.
pub const MIN_ALIASED_LEN: usize = 4;

/// What to send for one PUBLISH's topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AliasPlan {
    /// The topic by name, without an alias; `remember`: note it as a candidate once sent.
    Name { remember: bool },
    /// The alias the client already knows, with an empty topic name.
    Known(NonZeroU16),
    /// The topic by name with this alias, which the client maps from now on (replacing the
    /// alias's old topic if `replaces`).
    New { alias: NonZeroU16, replaces: bool },
}

#[derive(Debug)]
struct Entry {
    alias: NonZeroU16,
    last_used: u64,
}

/// One connection's aliases.
#[derive(Debug)]
pub(crate) struct OutboundAliases {
    max: u16,
    by_topic: HashMap<Box<str>, Entry>,
    candidates: VecDeque<Box<str>>,
    clock: u64,
}

impl OutboundAliases {
    /// The table for a client whose Topic Alias Maximum is `client_max`; `None` when it allows
    /// none.
    pub(crate) fn new(client_max: u16) -> Option<Self> {
        let max = client_max.min(OUTBOUND_ALIAS_LIMIT);
        (max > 0).then(|| Self {
            max,
            by_topic: HashMap::new(),
            candidates: VecDeque::new(),
            clock: 0,
        })
    }

    /// What to send for `topic`. Changes nothing: call [`OutboundAliases::commit`] once the
    /// PUBLISH is in the outbox (a PUBLISH dropped as too large must not teach the table an
    /// alias the client never saw).
    pub(crate) fn plan(&self, topic: &str) -> AliasPlan {
        if topic.len() < MIN_ALIASED_LEN {
            return AliasPlan::Name { remember: false };
        }
        if let Some(entry) = self.by_topic.get(topic) {
            return AliasPlan::Known(entry.alias);
        }
        let used = u16::try_from(self.by_topic.len()).unwrap_or(u16::MAX);
        if used < self.max
            && let Some(alias) = NonZeroU16::new(used + 1)
        {
            return AliasPlan::New {
                alias,
                replaces: false,
            };
        }
        if self.candidates.iter().any(|candidate| &**candidate == topic)
            && let Some(entry) = self.least_recently_used()
        {
            return AliasPlan::New {
                alias: entry.alias,
                replaces: true,
            };
        }
        AliasPlan::Name { remember: true }
    }

    /// Records that `plan` was sent for `topic`.
    pub(crate) fn commit(&mut self, topic: &str, plan: AliasPlan) {
        self.clock += 1;
        let now = self.clock;
        match plan {
            AliasPlan::Name { remember: false } => {}
            AliasPlan::Name { remember: true } => {
                if !self.candidates.iter().any(|candidate| &**candidate == topic) {
                    if self.candidates.len() >= usize::from(self.max) {
                        self.candidates.pop_front();
                    }
                    self.candidates.push_back(topic.into());
                }
            }
            AliasPlan::Known(_) => {
                if let Some(entry) = self.by_topic.get_mut(topic) {
                    entry.last_used = now;
                }
            }
            AliasPlan::New { alias, replaces } => {
                if replaces {
                    self.by_topic.retain(|_, entry| entry.alias != alias);
                    self.candidates.retain(|candidate| &**candidate != topic);
                }
                self.by_topic.insert(
                    topic.into(),
                    Entry {
                        alias,
                        last_used: now,
                    },
                );
            }
        }
    }

    fn least_recently_used(&self) -> Option<&Entry> {
        self.by_topic.values().min_by_key(|entry| entry.last_used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(table: &mut OutboundAliases, topic: &str) -> AliasPlan {
        let plan = table.plan(topic);
        table.commit(topic, plan);
        plan
    }

    fn alias(n: u16) -> NonZeroU16 {
        NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN)
    }

    #[test]
    fn none_without_the_clients_permission_and_bounded_by_both_maxima() {
        assert!(OutboundAliases::new(0).is_none());
        assert_eq!(OutboundAliases::new(3).map(|t| t.max), Some(3));
        assert_eq!(
            OutboundAliases::new(u16::MAX).map(|t| t.max),
            Some(OUTBOUND_ALIAS_LIMIT)
        );
    }

    #[test]
    fn new_topics_take_free_aliases_then_reuse_them() {
        let mut table = OutboundAliases::new(2).unwrap_or_else(|| unreachable!());
        assert_eq!(
            send(&mut table, "a/b"),
            AliasPlan::Name { remember: false },
            "too short"
        );
        assert_eq!(
            send(&mut table, "home/one"),
            AliasPlan::New {
                alias: alias(1),
                replaces: false
            }
        );
        assert_eq!(
            send(&mut table, "home/two"),
            AliasPlan::New {
                alias: alias(2),
                replaces: false
            }
        );
        assert_eq!(send(&mut table, "home/one"), AliasPlan::Known(alias(1)));
        // Full: a newcomer is sent by name until it comes back, then takes the least recently
        // used alias (home/two's).
        assert_eq!(send(&mut table, "home/three"), AliasPlan::Name { remember: true });
        assert_eq!(send(&mut table, "home/one"), AliasPlan::Known(alias(1)));
        assert_eq!(
            send(&mut table, "home/three"),
            AliasPlan::New {
                alias: alias(2),
                replaces: true
            }
        );
        assert_eq!(send(&mut table, "home/three"), AliasPlan::Known(alias(2)));
        assert_eq!(send(&mut table, "home/two"), AliasPlan::Name { remember: true });
        assert!(table.by_topic.len() <= 2 && table.candidates.len() <= 2);
    }

    #[test]
    fn one_off_topics_never_evict_the_steady_ones() {
        let mut table = OutboundAliases::new(2).unwrap_or_else(|| unreachable!());
        send(&mut table, "steady/1");
        send(&mut table, "steady/2");
        for n in 0..100 {
            assert_eq!(
                send(&mut table, &format!("once/{n}")),
                AliasPlan::Name { remember: true }
            );
            assert!(matches!(send(&mut table, "steady/1"), AliasPlan::Known(_)));
        }
        assert!(matches!(send(&mut table, "steady/2"), AliasPlan::Known(_)));
        assert!(table.candidates.len() <= 2);
    }
}
