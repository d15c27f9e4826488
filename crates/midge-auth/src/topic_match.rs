//! Topic matching as Mosquitto's ACL code does it: [`matches`] is `mosquitto_topic_matches_sub`
//! and [`check_filter`] is `mosquitto_sub_topic_check`, the test every ACL line's filter passes
//! when the file is loaded.
//!
//! Never allocates. Knows nothing of ACL rules, users or files.
//!
//! The rules (MQTT 3.1.1 §4.7, with Mosquitto's handling of odd input):
//! - Levels are separated by `/`; empty levels are levels (`a//b` has three).
//! - `+` matches exactly one level, `#` any number of remaining levels *including none*, so
//!   `a/#` matches `a` and `a/+/#` matches `a/b`.
//! - A filter starting with a wildcard never matches a topic starting with `$`, and a filter
//!   starting with `$` only matches topics starting with `$` ([MQTT-4.7.2-1]).
//! - An empty filter or topic, a "topic" containing `+` or `#`, or an invalid filter matches
//!   nothing (Mosquitto reports them as invalid; for a decision that is "no").

use crate::error::FilterError;

/// The longest filter Mosquitto accepts in an ACL file, in bytes.
const MAX_FILTER_LEN: usize = 65535;

/// Whether `topic` (a topic name) matches `filter` (a topic filter that may contain `+` and
/// `#`), exactly as Mosquitto's `mosquitto_topic_matches_sub` decides it.
pub fn matches(filter: &str, topic: &str) -> bool {
    if filter.is_empty() || topic.is_empty() {
        return false;
    }
    if filter.starts_with('$') != topic.starts_with('$') {
        return false;
    }
    if topic.contains(['+', '#']) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    let mut filter_levels = filter.split('/').peekable();
    while let Some(level) = filter_levels.next() {
        match level {
            "#" => return filter_levels.peek().is_none(),
            "+" => {
                if topic_levels.next().is_none() {
                    return false;
                }
            }
            literal => {
                if literal.contains(['+', '#']) {
                    return false;
                }
                if topic_levels.next() != Some(literal) {
                    return false;
                }
            }
        }
    }
    topic_levels.next().is_none()
}

/// Whether `filter` is a valid topic filter for an ACL line (Mosquitto's
/// `mosquitto_sub_topic_check`): `+` and `#` must be whole levels, `#` only the last, at most
/// 65535 bytes. Any other text is accepted, the empty level included.
pub fn check_filter(filter: &str) -> Result<(), FilterError> {
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(FilterError::HashNotLastLevel);
        }
        if level.contains('+') && level != "+" {
            return Err(FilterError::PlusNotWholeLevel);
        }
    }
    if filter.len() > MAX_FILTER_LEN {
        return Err(FilterError::TooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_levels_match_exactly() {
        assert!(matches("a/b", "a/b"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(!matches("a/b/c", "a/b"));
        assert!(!matches("a/b", "a/c"));
        assert!(matches("a//b", "a//b"));
        assert!(!matches("a/b", "a/b/"));
    }

    #[test]
    fn plus_matches_one_level_including_an_empty_one() {
        assert!(matches("a/+", "a/b"));
        assert!(matches("a/+", "a/"));
        assert!(!matches("a/+", "a"));
        assert!(!matches("a/+", "a/b/c"));
        assert!(matches("+/+", "/b"));
        assert!(matches("+", "a"));
        assert!(!matches("+", "/"));
        assert!(matches("a/+/c", "a//c"));
    }

    #[test]
    fn hash_matches_the_parent_and_everything_below() {
        assert!(matches("#", "a"));
        assert!(matches("#", "/"));
        assert!(matches("a/#", "a"));
        assert!(matches("a/#", "a/"));
        assert!(matches("a/#", "a/b/c"));
        assert!(!matches("a/#", "ab"));
        assert!(matches("a/+/#", "a/b"));
        assert!(!matches("a/+/#", "a"));
        assert!(matches("+/#", "a"));
    }

    #[test]
    fn dollar_topics_need_a_dollar_filter() {
        assert!(!matches("#", "$SYS/broker/uptime"));
        assert!(!matches("+/broker/uptime", "$SYS/broker/uptime"));
        assert!(matches("$SYS/#", "$SYS/broker/uptime"));
        assert!(matches("$SYS/#", "$SYS"));
        assert!(!matches("$SYS/#", "SYS/broker"));
    }

    #[test]
    fn odd_input_matches_nothing() {
        assert!(!matches("", "a"));
        assert!(!matches("a", ""));
        assert!(!matches("#", "a/+"));
        assert!(!matches("a/#", "a/#"));
        assert!(!matches("a/b+", "a/b+"));
        assert!(!matches("#/a", "x/a"));
    }

    #[test]
    fn filters_are_checked_as_mosquitto_checks_them() {
        for ok in [
            "a", "a/b", "+", "#", "a/+/b", "a/#", "+/#", "", "/", "a//b", "%c/%u", "$SYS/#",
        ] {
            assert_eq!(check_filter(ok), Ok(()), "{ok:?}");
        }
        assert_eq!(check_filter("a+"), Err(FilterError::PlusNotWholeLevel));
        assert_eq!(check_filter("a/+b"), Err(FilterError::PlusNotWholeLevel));
        assert_eq!(check_filter("a#"), Err(FilterError::HashNotLastLevel));
        assert_eq!(check_filter("#/a"), Err(FilterError::HashNotLastLevel));
        assert_eq!(check_filter("a/#/"), Err(FilterError::HashNotLastLevel));
        assert_eq!(check_filter(&"a".repeat(65536)), Err(FilterError::TooLong));
        assert_eq!(check_filter(&"a".repeat(65535)), Ok(()));
    }
}
