//! The subscription index: which sessions want a message published to a given topic (§4.7).
//!
//! A trie over topic levels. Each node holds the subscriptions whose filter ends there, the
//! subscriptions whose filter ends with `#` below it, and children for literal levels and `+`.
//! Matching a topic walks at most two branches per level, so its cost follows the topic's depth
//! and the number of matches, not the number of subscriptions. Wildcards in the first level do
//! not match topics beginning with `$` [MQTT-4.7.2-1].
//!
//! Shared subscriptions (§4.8.2) sit in groups at the node of their inner filter; matching yields
//! one member per group, round robin, preferring members whose session is online.
//!
//! Written here rather than taken from a crate because its shape (per-level wildcard slots,
//! shared groups, `$` rule) is the broker's hot path and its semantics are MQTT's own.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use midge_codec::{SubscriptionId, SubscriptionOptions, TopicFilter};

use crate::routes::{RouteCounts, RouteObserver, is_internal};
use crate::session::SessionCell;

/// One session's subscription as the index holds it.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// The subscribing session.
    pub session: Arc<SessionCell>,
    /// The subscription's options.
    pub options: SubscriptionOptions,
    /// Its Subscription Identifier (MQTT 5).
    pub id: Option<SubscriptionId>,
}

#[derive(Debug, Default)]
struct SharedGroup {
    name: Box<str>,
    members: Vec<Subscriber>,
    cursor: AtomicUsize,
}

#[derive(Debug, Default)]
struct Slot {
    plain: Vec<Subscriber>,
    shared: Vec<SharedGroup>,
}

impl Slot {
    fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.shared.is_empty()
    }

    fn members(&mut self, group: Option<&str>) -> Option<&mut Vec<Subscriber>> {
        match group {
            None => Some(&mut self.plain),
            Some(name) => self
                .shared
                .iter_mut()
                .find(|g| &*g.name == name)
                .map(|g| &mut g.members),
        }
    }

    fn insert(&mut self, group: Option<&str>, subscriber: Subscriber) -> bool {
        if self.members(group).is_none()
            && let Some(name) = group
        {
            self.shared.push(SharedGroup {
                name: name.into(),
                ..SharedGroup::default()
            });
        }
        let Some(members) = self.members(group) else {
            return false;
        };
        let existing = members
            .iter()
            .position(|s| Arc::ptr_eq(&s.session, &subscriber.session));
        match existing {
            Some(index) => {
                if let Some(slot) = members.get_mut(index) {
                    *slot = subscriber;
                }
                true
            }
            None => {
                members.push(subscriber);
                false
            }
        }
    }

    fn remove(&mut self, group: Option<&str>, session: &Arc<SessionCell>) -> bool {
        let Some(members) = self.members(group) else {
            return false;
        };
        let before = members.len();
        members.retain(|s| !Arc::ptr_eq(&s.session, session));
        let removed = members.len() != before;
        self.shared.retain(|g| !g.members.is_empty());
        removed
    }

    fn collect(&self, out: &mut Matches) {
        out.plain.extend(self.plain.iter().cloned());
        for group in &self.shared {
            if let Some(member) = group.pick() {
                out.shared.push(member.clone());
            }
        }
    }
}

impl SharedGroup {
    /// The next member in round robin order, skipping offline ones when any member is online.
    fn pick(&self) -> Option<&Subscriber> {
        let count = self.members.len();
        if count == 0 {
            return None;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        let online = (0..count)
            .map(|step| (start + step) % count)
            .find(|&i| self.members.get(i).is_some_and(|m| m.session.is_online()));
        let index = online.unwrap_or(start % count);
        if let Some(i) = online {
            // Continue after the member picked, so an offline one does not pull the cursor back.
            self.cursor.store(i + 1, Ordering::Relaxed);
        }
        self.members.get(index)
    }
}

#[derive(Debug, Default)]
struct Node {
    /// Children by literal level. The levels are chosen by clients, so the hasher is seeded
    /// at random per map (foldhash: a fraction of SipHash's cost on short strings).
    literal: HashMap<Box<str>, Self, foldhash::fast::RandomState>,
    plus: Option<Box<Self>>,
    /// Filters ending here.
    exact: Slot,
    /// Filters ending with `#` right below here.
    hash: Slot,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.literal.is_empty() && self.plus.is_none() && self.exact.is_empty() && self.hash.is_empty()
    }

    fn child_mut(&mut self, level: &str) -> &mut Self {
        if level == "+" {
            self.plus.get_or_insert_with(Box::default)
        } else {
            self.literal.entry(level.into()).or_default()
        }
    }
}

/// Subscriptions found for one topic.
#[derive(Debug, Default)]
pub struct Matches {
    /// Ordinary subscriptions; a session may appear more than once (overlapping filters).
    pub plain: Vec<Subscriber>,
    /// One chosen member per matching shared group.
    pub shared: Vec<Subscriber>,
}

/// The subscription trie.
#[derive(Debug, Default)]
pub struct TopicIndex {
    root: Node,
    count: usize,
    /// Per-filter counts for a cluster's route set, once someone observes them.
    routes: Option<RouteCounts>,
}

/// A filter split into its group (for shared subscriptions) and levels.
fn split(filter: &TopicFilter) -> (Option<&str>, &str) {
    match filter.shared() {
        Some(shared) => (Some(shared.group), shared.filter),
        None => (None, filter.as_str()),
    }
}

impl TopicIndex {
    /// Adds or replaces `subscriber`'s subscription to `filter`. True if it replaced one.
    pub fn subscribe(&mut self, filter: &TopicFilter, subscriber: Subscriber) -> bool {
        let (group, inner) = split(filter);
        let mut node = &mut self.root;
        let mut levels = inner.split('/').peekable();
        let mut slot = None;
        while let Some(level) = levels.next() {
            if level == "#" && levels.peek().is_none() {
                slot = Some(&mut node.hash);
                break;
            }
            node = node.child_mut(level);
        }
        let slot = slot.unwrap_or(&mut node.exact);
        let internal = is_internal(&subscriber.session.client_id);
        let replaced = slot.insert(group, subscriber);
        if !replaced {
            self.count += 1;
            if let Some(routes) = &mut self.routes
                && !internal
            {
                routes.add(inner);
            }
        }
        replaced
    }

    /// Removes `session`'s subscription to `filter`. True if there was one.
    pub fn unsubscribe(&mut self, filter: &TopicFilter, session: &Arc<SessionCell>) -> bool {
        let (group, inner) = split(filter);
        let levels: Vec<&str> = inner.split('/').collect();
        let removed = remove_at(&mut self.root, &levels, group, session);
        if removed {
            self.count -= 1;
            if let Some(routes) = &mut self.routes
                && !is_internal(&session.client_id)
            {
                routes.remove(inner);
            }
        }
        removed
    }

    /// Tells `observer` of every route change from now on, and returns the filters that have
    /// a subscription now (internal sessions' not counted).
    pub fn observe_routes(&mut self, observer: Arc<dyn RouteObserver>) -> Vec<String> {
        let mut routes = RouteCounts::new(observer);
        let mut path = String::new();
        count_routes(&self.root, &mut path, &mut routes);
        let filters = routes.filters();
        self.routes = Some(routes);
        filters
    }

    /// How many subscriptions the index holds.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the index holds no subscription.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Every subscription matching `topic`.
    pub fn matches(&self, topic: &str, out: &mut Matches) {
        let dollar = topic.starts_with('$');
        collect(&self.root, Some(topic), true, dollar, out);
    }
}

/// Collects the subscriptions under `node` that match `rest`, the topic's levels below it
/// (`None` past the last level). The topic is walked in place: splitting it into a list of
/// levels first cost an allocation per message.
fn collect(node: &Node, rest: Option<&str>, first: bool, dollar: bool, out: &mut Matches) {
    let Some(rest) = rest else {
        node.exact.collect(out);
        // "sport/#" also matches "sport" itself (§4.7.1.2).
        node.hash.collect(out);
        return;
    };
    let (level, below) = match rest.bytes().position(|b| b == b'/') {
        Some(at) => (rest.get(..at).unwrap_or_default(), rest.get(at + 1..)),
        None => (rest, None),
    };
    if !(first && dollar) {
        node.hash.collect(out);
        if let Some(plus) = &node.plus {
            collect(plus, below, false, dollar, out);
        }
    }
    if let Some(child) = node.literal.get(level) {
        collect(child, below, false, dollar, out);
    }
}

/// Counts every non-internal subscription under `node`, whose filter levels so far are
/// `path` (empty at the root; otherwise ending with `/`).
fn count_routes(node: &Node, path: &mut String, routes: &mut RouteCounts) {
    let filter_here = path.strip_suffix('/').unwrap_or(path);
    for subscriber in slot_members(&node.exact) {
        if !is_internal(&subscriber.session.client_id) {
            routes.count(filter_here);
        }
    }
    let hash = format!("{path}#");
    for subscriber in slot_members(&node.hash) {
        if !is_internal(&subscriber.session.client_id) {
            routes.count(&hash);
        }
    }
    let len = path.len();
    for (level, child) in &node.literal {
        path.push_str(level);
        path.push('/');
        count_routes(child, path, routes);
        path.truncate(len);
    }
    if let Some(plus) = &node.plus {
        path.push_str("+/");
        count_routes(plus, path, routes);
        path.truncate(len);
    }
}

/// Every subscription in a slot, shared groups' members included.
fn slot_members(slot: &Slot) -> impl Iterator<Item = &Subscriber> {
    slot.plain
        .iter()
        .chain(slot.shared.iter().flat_map(|group| group.members.iter()))
}

fn remove_at(node: &mut Node, levels: &[&str], group: Option<&str>, session: &Arc<SessionCell>) -> bool {
    match levels {
        [] => node.exact.remove(group, session),
        ["#"] => node.hash.remove(group, session),
        [level, rest @ ..] => {
            let child = if *level == "+" {
                node.plus.as_deref_mut()
            } else {
                node.literal.get_mut(*level)
            };
            let Some(child) = child else {
                return false;
            };
            let removed = remove_at(child, rest, group, session);
            if child.is_empty() {
                if *level == "+" {
                    node.plus = None;
                } else {
                    node.literal.remove(*level);
                }
            }
            removed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn session(name: &str) -> Arc<SessionCell> {
        Arc::new(SessionCell::new(name.into()))
    }

    fn sub(session: &Arc<SessionCell>) -> Subscriber {
        Subscriber {
            session: session.clone(),
            options: SubscriptionOptions::default(),
            id: None,
        }
    }

    fn filter(text: &str) -> TopicFilter {
        TopicFilter::try_from(text).unwrap()
    }

    fn matched(index: &TopicIndex, topic: &str) -> Vec<String> {
        let mut out = Matches::default();
        index.matches(topic, &mut out);
        let mut names: Vec<String> = out
            .plain
            .iter()
            .map(|s| s.session.client_id.to_string())
            .collect();
        names.sort();
        names
    }

    #[derive(Debug, Default)]
    struct Heard(parking_lot::Mutex<Vec<String>>);

    impl RouteObserver for Heard {
        fn route_added(&self, filter: &str) {
            self.0.lock().push(format!("+{filter}"));
        }

        fn route_removed(&self, filter: &str) {
            self.0.lock().push(format!("-{filter}"));
        }
    }

    /// A cluster hears of a filter's first subscriber and its last one gone, not of those in
    /// between; shared subscriptions count as their filter; internal sessions do not count.
    #[test]
    fn route_observers_hear_first_and_last_subscriptions_only() {
        let mut index = TopicIndex::default();
        let (a, b, internal) = (session("a"), session("b"), session("\0cluster"));
        index.subscribe(&filter("x/#"), sub(&a));
        index.subscribe(&filter("$share/g/y/+"), sub(&b));
        let heard = Arc::new(Heard::default());
        let mut now = index.observe_routes(heard.clone());
        now.sort();
        assert_eq!(now, ["x/#", "y/+"]);

        index.subscribe(&filter("x/#"), sub(&b));
        index.subscribe(&filter("x/#"), sub(&b));
        index.subscribe(&filter("z"), sub(&internal));
        index.subscribe(&filter("$share/h/z"), sub(&a));
        index.unsubscribe(&filter("x/#"), &a);
        index.unsubscribe(&filter("x/#"), &b);
        index.unsubscribe(&filter("$share/h/z"), &a);
        index.unsubscribe(&filter("z"), &internal);
        index.unsubscribe(&filter("nothing"), &a);
        assert_eq!(*heard.0.lock(), ["+z", "-x/#", "-z"]);
    }

    /// The specification's matching rule, written as plainly as possible (§4.7).
    fn naive_matches(filter: &str, topic: &str) -> bool {
        if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
            return false;
        }
        let f: Vec<&str> = filter.split('/').collect();
        let t: Vec<&str> = topic.split('/').collect();
        let mut i = 0;
        loop {
            match (f.get(i), t.get(i)) {
                (Some(&"#"), _) => return true,
                (Some(&"+"), Some(_)) => {}
                (Some(a), Some(b)) if a == b => {}
                (None, None) => return true,
                _ => return false,
            }
            i += 1;
        }
    }

    #[test]
    fn mqtt_4_7_1_wildcards() {
        let mut index = TopicIndex::default();
        for (name, f) in [
            ("all", "#"),
            ("sport", "sport/#"),
            ("tennis", "sport/tennis/+"),
            ("plus", "+/+"),
            ("exact", "sport/tennis/player1"),
            ("leading", "/+"),
        ] {
            index.subscribe(&filter(f), sub(&session(name)));
        }
        assert_eq!(matched(&index, "sport"), ["all", "sport"]);
        assert_eq!(
            matched(&index, "sport/tennis/player1"),
            ["all", "exact", "sport", "tennis"]
        );
        assert_eq!(matched(&index, "sport/tennis"), ["all", "plus", "sport"]);
        assert_eq!(matched(&index, "/finance"), ["all", "leading", "plus"]);
        assert_eq!(matched(&index, "$SYS/x"), Vec::<String>::new(), "[MQTT-4.7.2-1]");
        assert_eq!(index.len(), 6);
    }

    #[test]
    fn replace_and_remove() {
        let mut index = TopicIndex::default();
        let a = session("a");
        assert!(!index.subscribe(&filter("x/+"), sub(&a)));
        assert!(index.subscribe(&filter("x/+"), sub(&a)));
        assert_eq!(index.len(), 1);
        assert!(index.unsubscribe(&filter("x/+"), &a));
        assert!(!index.unsubscribe(&filter("x/+"), &a));
        assert!(index.root.is_empty(), "removal prunes empty nodes");
    }

    #[test]
    fn shared_groups_round_robin() {
        let mut index = TopicIndex::default();
        let (a, b) = (session("a"), session("b"));
        a.set_online(true);
        b.set_online(true);
        index.subscribe(&filter("$share/g/t/#"), sub(&a));
        index.subscribe(&filter("$share/g/t/#"), sub(&b));
        let picks: Vec<String> = (0..4)
            .map(|_| {
                let mut out = Matches::default();
                index.matches("t/1", &mut out);
                assert_eq!(out.shared.len(), 1);
                out.shared[0].session.client_id.to_string()
            })
            .collect();
        assert_eq!(picks, ["a", "b", "a", "b"]);
        b.set_online(false);
        for _ in 0..3 {
            let mut out = Matches::default();
            index.matches("t/1", &mut out);
            assert_eq!(
                &*out.shared[0].session.client_id, "a",
                "an offline member is skipped"
            );
        }
        assert!(index.unsubscribe(&filter("$share/g/t/#"), &a));
        assert!(index.unsubscribe(&filter("$share/g/t/#"), &b));
        assert!(index.root.is_empty());
    }

    fn level() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just(String::new()),
            Just("$x".to_string())
        ]
    }

    fn topic() -> impl Strategy<Value = String> {
        proptest::collection::vec(level(), 1..5).prop_map(|l| match l.join("/") {
            t if t.is_empty() => "a".to_string(),
            t => t,
        })
    }

    fn filter_text() -> impl Strategy<Value = String> {
        let level = prop_oneof![level(), Just("+".to_string())];
        (proptest::collection::vec(level, 1..5), any::<bool>()).prop_map(|(mut l, hash)| {
            if hash {
                l.push("#".into());
            }
            match l.join("/") {
                f if f.is_empty() => "+".to_string(),
                f => f,
            }
        })
    }

    proptest! {
        #[test]
        fn trie_agrees_with_the_naive_matcher(filters in proptest::collection::vec(filter_text(), 1..12), topics in proptest::collection::vec(topic(), 1..12)) {
            let mut index = TopicIndex::default();
            for (i, f) in filters.iter().enumerate() {
                index.subscribe(&filter(f), sub(&session(&i.to_string())));
            }
            for t in &topics {
                let mut expected: Vec<String> = filters.iter().enumerate()
                    .filter(|(_, f)| naive_matches(f, t))
                    .map(|(i, _)| i.to_string())
                    .collect();
                expected.sort();
                prop_assert_eq!(matched(&index, t), expected, "topic {}", t);
            }
        }
    }
}
