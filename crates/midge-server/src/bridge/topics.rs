//! A bridge's topic rules: which filters it subscribes to on each side, and how a topic is
//! renamed when a message crosses, exactly as Mosquitto renames it (`bridge__remap_topic_in`
//! and `send__publish`).
//!
//! The rules, in file order:
//! - Out (here to there): the first `out`/`both` rule *with a prefix* whose local filter
//!   (`LOCAL_PREFIX + PATTERN`) matches the topic renames it: the local prefix is taken off if the
//!   topic starts with it, and the remote prefix put on. With no such rule the topic crosses
//!   unchanged. Midge adds one check: a message no `out`/`both` rule matches at all (left over
//!   from an older configuration's subscriptions in a restored session) is not sent.
//! - In (there to here): the same with the remote filter, the remote prefix taken off and the
//!   local prefix put on.
//! - A pattern of `""` makes the filter the prefix itself, so exactly one topic is mapped.
//!
//! Matching is Mosquitto's `mosquitto_topic_matches_sub` (`midge_auth::topic_match`). Nothing
//! here allocates unless a topic is renamed.

use std::borrow::Cow;

use midge_auth::topic_match::matches;
use midge_codec::QoS;

use crate::config::{BridgeDirection, BridgeTopic};

/// One `topic` line, with its filters worked out.
#[derive(Debug, Clone)]
struct Rule {
    direction: BridgeDirection,
    qos: QoS,
    local_prefix: Option<String>,
    remote_prefix: Option<String>,
    local_filter: String,
    remote_filter: String,
}

/// A bridge's topic rules.
#[derive(Debug, Clone)]
pub(crate) struct TopicMap {
    rules: Vec<Rule>,
}

impl TopicMap {
    pub(crate) fn new(topics: &[BridgeTopic]) -> Self {
        let rules = topics
            .iter()
            .map(|topic| Rule {
                direction: topic.direction,
                qos: topic.qos,
                local_prefix: topic.local_prefix.clone(),
                remote_prefix: topic.remote_prefix.clone(),
                local_filter: topic.local_filter(),
                remote_filter: topic.remote_filter(),
            })
            .collect();
        Self { rules }
    }

    /// The filters to subscribe to here, with their QoS: every `out` and `both` rule.
    pub(crate) fn local_subscriptions(&self) -> Vec<(&str, QoS)> {
        self.rules
            .iter()
            .filter(|rule| rule.direction.outgoing())
            .map(|rule| (rule.local_filter.as_str(), rule.qos))
            .collect()
    }

    /// The filters to subscribe to on the remote broker: every `in` and `both` rule.
    pub(crate) fn remote_subscriptions(&self) -> Vec<(&str, QoS)> {
        self.rules
            .iter()
            .filter(|rule| rule.direction.incoming())
            .map(|rule| (rule.remote_filter.as_str(), rule.qos))
            .collect()
    }

    /// The remote filters of `out`-only rules, which an earlier configuration may have
    /// subscribed to there (`bridge_attempt_unsubscribe`).
    pub(crate) fn remote_unsubscriptions(&self) -> Vec<&str> {
        self.rules
            .iter()
            .filter(|rule| !rule.direction.incoming())
            .map(|rule| rule.remote_filter.as_str())
            .collect()
    }

    /// The remote topic a local message goes to, or `None` if no `out`/`both` rule matches it.
    pub(crate) fn to_remote<'t>(&self, topic: &'t str) -> Option<Cow<'t, str>> {
        let outgoing = || self.rules.iter().filter(|rule| rule.direction.outgoing());
        if !outgoing().any(|rule| matches(&rule.local_filter, topic)) {
            return None;
        }
        Some(
            match outgoing().find(|rule| rule.remaps() && matches(&rule.local_filter, topic)) {
                Some(rule) => rename(topic, rule.local_prefix.as_deref(), rule.remote_prefix.as_deref()),
                None => Cow::Borrowed(topic),
            },
        )
    }

    /// The local topic a message from the remote broker goes to.
    pub(crate) fn to_local<'t>(&self, topic: &'t str) -> Cow<'t, str> {
        match self
            .rules
            .iter()
            .filter(|rule| rule.direction.incoming())
            .find(|rule| rule.remaps() && matches(&rule.remote_filter, topic))
        {
            Some(rule) => rename(topic, rule.remote_prefix.as_deref(), rule.local_prefix.as_deref()),
            None => Cow::Borrowed(topic),
        }
    }
}

impl Rule {
    fn remaps(&self) -> bool {
        self.local_prefix.is_some() || self.remote_prefix.is_some()
    }
}

/// `topic` with `from` taken off its front (if it is there) and `to` put on.
fn rename<'t>(topic: &'t str, from: Option<&str>, to: Option<&str>) -> Cow<'t, str> {
    let rest = from
        .and_then(|prefix| topic.strip_prefix(prefix))
        .unwrap_or(topic);
    match to {
        Some(prefix) => Cow::Owned(format!("{prefix}{rest}")),
        None => Cow::Borrowed(rest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(pattern: &str, direction: BridgeDirection, local: &str, remote: &str) -> BridgeTopic {
        let absent = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        BridgeTopic {
            pattern: absent(pattern),
            direction,
            qos: QoS::AtLeastOnce,
            local_prefix: absent(local),
            remote_prefix: absent(remote),
        }
    }

    use BridgeDirection::{Both, In, Out};

    #[test]
    fn prefixes_are_swapped_both_ways() {
        let map = TopicMap::new(&[rule("sensors/#", Both, "local/", "site1/")]);
        assert_eq!(map.local_subscriptions(), [("local/sensors/#", QoS::AtLeastOnce)]);
        assert_eq!(
            map.remote_subscriptions(),
            [("site1/sensors/#", QoS::AtLeastOnce)]
        );
        assert_eq!(
            map.to_remote("local/sensors/1").as_deref(),
            Some("site1/sensors/1")
        );
        assert_eq!(map.to_local("site1/sensors/1"), "local/sensors/1");
    }

    #[test]
    fn an_empty_pattern_maps_exactly_one_topic() {
        let map = TopicMap::new(&[rule("", Both, "here/state", "there/state")]);
        assert_eq!(map.local_subscriptions(), [("here/state", QoS::AtLeastOnce)]);
        assert_eq!(map.to_remote("here/state").as_deref(), Some("there/state"));
        assert_eq!(map.to_remote("here/state/x"), None);
        assert_eq!(map.to_local("there/state"), "here/state");
    }

    #[test]
    fn one_prefix_only() {
        let map = TopicMap::new(&[rule("cmd/#", In, "", "edge1/"), rule("data/#", Out, "", "edge1/")]);
        assert_eq!(map.to_local("edge1/cmd/reboot"), "cmd/reboot");
        assert_eq!(map.to_remote("data/t").as_deref(), Some("edge1/data/t"));
        assert_eq!(map.remote_unsubscriptions(), ["edge1/data/#"]);
    }

    #[test]
    fn the_first_rule_with_a_prefix_wins_and_plain_rules_leave_topics_alone() {
        let map = TopicMap::new(&[
            rule("#", Out, "", ""),
            rule("a/#", Out, "", "r1/"),
            rule("a/b", Out, "", "r2/"),
        ]);
        // As in Mosquitto: rules without a prefix are passed over when renaming.
        assert_eq!(map.to_remote("a/b").as_deref(), Some("r1/a/b"));
        assert_eq!(map.to_remote("z").as_deref(), Some("z"));
    }

    #[test]
    fn a_topic_no_outgoing_rule_matches_is_not_sent() {
        let map = TopicMap::new(&[rule("a/#", Out, "", ""), rule("b/#", In, "", "")]);
        assert_eq!(map.to_remote("b/1"), None);
        assert_eq!(map.to_remote("a/1").as_deref(), Some("a/1"));
        // Mosquitto's matching: `$` topics need a `$` filter.
        let all = TopicMap::new(&[rule("#", Out, "", "")]);
        assert_eq!(all.to_remote("$SYS/broker/uptime"), None);
    }

    #[test]
    fn incoming_topics_without_a_matching_rule_are_unchanged() {
        let map = TopicMap::new(&[rule("x/#", In, "l/", "r/")]);
        assert_eq!(map.to_local("other/topic"), "other/topic");
    }
}
