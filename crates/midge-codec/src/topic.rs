//! Topic Names and Topic Filters (§4.7), and the `$share/{ShareName}/{filter}` syntax of shared
//! subscriptions (§4.8.2), validated once when they are built so that holders never check again.
//!
//! Both wrap a [`ByteString`], so cloning is a reference-count increment and a decoded topic is a
//! slice of the packet it came in. Matching a name against filters is the broker's job, not the
//! codec's.

use std::fmt;
use std::ops::Deref;

use bytestring::ByteString;

use crate::error::DecodeError;
use crate::wire::Reader;

/// The prefix that marks a shared subscription.
const SHARE_PREFIX: &str = "$share/";

/// A Topic Name: non-empty, no wildcard characters [MQTT-3.3.2-2] [MQTT-4.7.3-1].
///
/// The one exception is [`TopicName::empty`], which an MQTT 5 PUBLISH uses when a Topic Alias
/// stands in for the name (§3.3.2.3.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(ByteString);

/// Why a string is not a Topic Name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicNameError {
    /// Empty.
    #[error("[MQTT-4.7.3-1] topic name is empty")]
    Empty,
    /// Contains `+` or `#`.
    #[error("[MQTT-3.3.2-2] topic name contains a wildcard character")]
    Wildcard,
    /// Contains U+0000.
    #[error("[MQTT-4.7.3-2] topic name contains U+0000")]
    NullCharacter,
    /// Longer than 65535 bytes.
    #[error("[MQTT-4.7.3-3] topic name is longer than 65535 bytes")]
    TooLong,
}

impl TopicName {
    /// Validates `name` as a Topic Name.
    pub fn new(name: impl Into<ByteString>) -> Result<Self, TopicNameError> {
        let name = name.into();
        check_topic_name(&name)?;
        Ok(Self(name))
    }

    /// The zero-length topic an MQTT 5 PUBLISH carries when its Topic Alias names the topic.
    pub fn empty() -> Self {
        Self(ByteString::new())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The underlying shared string.
    pub fn as_byte_string(&self) -> &ByteString {
        &self.0
    }

    /// The length, as the two-byte prefix that goes before the name on the wire. It fits: a
    /// Topic Name is checked to be at most 65535 bytes when it is made, or was read with a
    /// two-byte length, so an encoder need not check again.
    #[inline]
    pub(crate) fn wire_len(&self) -> u16 {
        debug_assert!(self.0.len() <= usize::from(u16::MAX));
        self.0.len() as u16
    }

    /// True for the zero-length placeholder of [`TopicName::empty`].
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What one pass over a topic's bytes found: the characters a Topic Name may not hold.
#[derive(Debug, Clone, Copy)]
struct NameScan {
    /// U+0000 [MQTT-4.7.3-2].
    null: bool,
    /// `+` or `#` [MQTT-3.3.2-2].
    wildcard: bool,
}

/// Looks for U+0000, `+` and `#` in one branch-free pass, which the compiler turns into vector
/// compares: this runs on every PUBLISH received.
fn scan_topic_name(bytes: &[u8]) -> NameScan {
    let mut null = false;
    let mut wildcard = false;
    for &byte in bytes {
        null |= byte == 0;
        wildcard |= (byte == b'+') | (byte == b'#');
    }
    NameScan { null, wildcard }
}

/// The checks of [`TopicName::new`] (the string is already known to be UTF-8).
fn check_topic_name(name: &str) -> Result<(), TopicNameError> {
    if name.is_empty() {
        return Err(TopicNameError::Empty);
    }
    if name.len() > usize::from(u16::MAX) {
        return Err(TopicNameError::TooLong);
    }
    let scan = scan_topic_name(name.as_bytes());
    if scan.wildcard {
        return Err(TopicNameError::Wildcard);
    }
    if scan.null {
        return Err(TopicNameError::NullCharacter);
    }
    Ok(())
}

/// Reads a UTF-8 string that must be a Topic Name: non-empty, no wildcards.
pub(crate) fn read_topic_name(reader: &mut Reader, field: &'static str) -> Result<TopicName, DecodeError> {
    let name = read_topic_name_allowing_empty(reader, field)?;
    if name.is_empty() {
        return Err(DecodeError::EmptyTopicName);
    }
    Ok(name)
}

/// Reads a Topic Name that may be empty, as an MQTT 5 PUBLISH with a Topic Alias may send it.
/// The string is checked once, here: the decoder's hot path. One pass looks for U+0000 and the
/// wildcards, then the UTF-8 check runs; the errors keep the precedence of a plain string read
/// followed by the wildcard check (U+0000, then UTF-8, then wildcards).
#[inline]
pub(crate) fn read_topic_name_allowing_empty(
    reader: &mut Reader,
    field: &'static str,
) -> Result<TopicName, DecodeError> {
    let raw = reader.binary(field)?;
    let scan = scan_topic_name(&raw);
    if scan.null {
        return Err(DecodeError::NullCharacter { field });
    }
    let name = ByteString::try_from(raw).map_err(|_| DecodeError::InvalidUtf8 { field })?;
    if scan.wildcard {
        return Err(DecodeError::WildcardInTopicName);
    }
    Ok(TopicName(name))
}

impl Deref for TopicName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for TopicName {
    type Error = TopicNameError;
    fn try_from(name: &str) -> Result<Self, Self::Error> {
        Self::new(ByteString::from(name))
    }
}

/// A Topic Filter: non-empty, `#` only as the whole last level, `+` only as a whole level
/// [MQTT-4.7.1-1] [MQTT-4.7.1-2] [MQTT-4.7.3-1], and a well-formed shared subscription when it
/// starts with `$share/` [MQTT-4.8.2-1] [MQTT-4.8.2-2].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilter(ByteString);

/// Why a string is not a Topic Filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicFilterError {
    /// Empty.
    #[error("[MQTT-4.7.3-1] topic filter is empty")]
    Empty,
    /// `#` is not alone in the last level.
    #[error("[MQTT-4.7.1-1] '#' must be the last character and occupy a whole level")]
    MultiLevelWildcard,
    /// `+` shares a level with other characters.
    #[error("[MQTT-4.7.1-2] '+' must occupy a whole level")]
    SingleLevelWildcard,
    /// The ShareName of `$share/` is empty or holds `/`, `+` or `#`.
    #[error("[MQTT-4.8.2-1] share name must be at least one character without '/', '+' or '#'")]
    InvalidShareName,
    /// No Topic Filter follows the ShareName.
    #[error("[MQTT-4.8.2-2] shared subscription has no topic filter after the share name")]
    MissingSharedFilter,
    /// Contains U+0000.
    #[error("[MQTT-4.7.3-2] topic filter contains U+0000")]
    NullCharacter,
    /// Longer than 65535 bytes.
    #[error("[MQTT-4.7.3-3] topic filter is longer than 65535 bytes")]
    TooLong,
}

/// A shared subscription's parts: `$share/{group}/{filter}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedFilter<'a> {
    /// The ShareName.
    pub group: &'a str,
    /// The filter the group subscribes to.
    pub filter: &'a str,
}

/// Whether `topic` matches `filter` level by level: `+` one level, `#` the rest (and the
/// parent level). A wildcard first level does not match a topic that starts with `$`
/// [MQTT-4.7.2-1]. For one filter and one topic; the broker's index matches many at once.
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut levels = topic.split('/');
    for part in filter.split('/') {
        match part {
            "#" => return true,
            "+" => {
                if levels.next().is_none() {
                    return false;
                }
            }
            _ => {
                if levels.next() != Some(part) {
                    return false;
                }
            }
        }
    }
    levels.next().is_none()
}

impl TopicFilter {
    /// Validates `filter` as a Topic Filter.
    pub fn new(filter: impl Into<ByteString>) -> Result<Self, TopicFilterError> {
        let filter = filter.into();
        check_topic_filter(&filter)?;
        Ok(Self(filter))
    }

    /// The filter as sent, `$share/` prefix included.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The underlying shared string.
    pub fn as_byte_string(&self) -> &ByteString {
        &self.0
    }

    /// The group and inner filter when this is a shared subscription.
    pub fn shared(&self) -> Option<SharedFilter<'_>> {
        split_shared(&self.0)
    }

    /// Whether `topic` matches the filter (the inner one, for a shared subscription); see
    /// [`filter_matches`].
    pub fn matches(&self, topic: &str) -> bool {
        filter_matches(self.shared().map_or(self.as_str(), |shared| shared.filter), topic)
    }

    /// True if the filter (the inner one, for a shared subscription) holds `+` or `#`.
    pub fn has_wildcards(&self) -> bool {
        let filter = self.shared().map_or(self.as_str(), |s| s.filter);
        filter.bytes().any(|b| b == b'+' || b == b'#')
    }
}

fn split_shared(filter: &str) -> Option<SharedFilter<'_>> {
    let rest = filter.strip_prefix(SHARE_PREFIX)?;
    let (group, filter) = rest.split_once('/').unwrap_or((rest, ""));
    Some(SharedFilter { group, filter })
}

fn check_topic_filter(filter: &str) -> Result<(), TopicFilterError> {
    if filter.len() > usize::from(u16::MAX) {
        return Err(TopicFilterError::TooLong);
    }
    if filter.as_bytes().contains(&0) {
        return Err(TopicFilterError::NullCharacter);
    }
    let inner = match split_shared(filter) {
        Some(shared) => {
            if shared.group.is_empty() || shared.group.contains(['+', '#']) {
                return Err(TopicFilterError::InvalidShareName);
            }
            if shared.filter.is_empty() {
                return Err(TopicFilterError::MissingSharedFilter);
            }
            shared.filter
        }
        None => filter,
    };
    if inner.is_empty() {
        return Err(TopicFilterError::Empty);
    }
    let mut levels = inner.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(TopicFilterError::MultiLevelWildcard);
        }
        if level.contains('+') && level != "+" {
            return Err(TopicFilterError::SingleLevelWildcard);
        }
    }
    Ok(())
}

impl Deref for TopicFilter {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for TopicFilter {
    type Error = TopicFilterError;
    fn try_from(filter: &str) -> Result<Self, Self::Error> {
        Self::new(ByteString::from(filter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_topics_level_by_level() {
        let cases = [
            ("a/b", "a/b", true),
            ("a/b", "a/c", false),
            ("a/+", "a/b", true),
            ("a/+", "a/", true),
            ("a/+", "a", false),
            ("a/+", "a/b/c", false),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("#", "a/b", true),
            ("+/+", "/x", true),
            ("/x//y/", "/x//y/", true),
            ("a b/c", "a b/c", true),
            // [MQTT-4.7.2-1]: wildcards at the first level do not match `$` topics.
            ("#", "$SYS/x", false),
            ("+/x", "$foo/x", false),
            ("$foo/#", "$foo/x", true),
            ("$share/g/a/+", "a/b", true),
            ("$share/g/a/+", "b/b", false),
        ];
        for (filter, topic, expected) in cases {
            assert_eq!(
                TopicFilter::new(filter).unwrap().matches(topic),
                expected,
                "{filter} {topic}"
            );
        }
    }

    #[test]
    fn valid_filters() {
        for ok in [
            "#",
            "+",
            "a/b",
            "a/+/c",
            "a/#",
            "+/+",
            "/",
            "//",
            "a//b",
            "$SYS/#",
            "sport/+",
            "$share/g/a/#",
            "$share/g/#",
            "$share/g//",
        ] {
            assert!(TopicFilter::try_from(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn invalid_filters_name_their_rule() {
        use TopicFilterError as E;
        for (bad, err) in [
            ("", E::Empty),
            ("a/#/b", E::MultiLevelWildcard),
            ("a#", E::MultiLevelWildcard),
            ("sport/tennis#", E::MultiLevelWildcard),
            ("a+", E::SingleLevelWildcard),
            ("+a/b", E::SingleLevelWildcard),
            ("$share//a", E::InvalidShareName),
            ("$share/g+/a", E::InvalidShareName),
            ("$share/g", E::MissingSharedFilter),
            ("$share/g/", E::MissingSharedFilter),
            ("a\0b", E::NullCharacter),
        ] {
            assert_eq!(TopicFilter::try_from(bad), Err(err), "{bad:?}");
        }
    }

    #[test]
    fn shared_parts() {
        let filter = TopicFilter::try_from("$share/grp/a/+/c").unwrap();
        assert_eq!(
            filter.shared(),
            Some(SharedFilter {
                group: "grp",
                filter: "a/+/c"
            })
        );
        assert!(filter.has_wildcards());
        assert!(TopicFilter::try_from("$sharex/a").unwrap().shared().is_none());
    }

    #[test]
    fn topic_names() {
        assert!(TopicName::try_from("a/b/c").is_ok());
        assert!(TopicName::try_from("/").is_ok());
        assert_eq!(TopicName::try_from(""), Err(TopicNameError::Empty));
        assert_eq!(TopicName::try_from("a/+"), Err(TopicNameError::Wildcard));
        assert_eq!(TopicName::try_from("a/#"), Err(TopicNameError::Wildcard));
        assert!(TopicName::empty().is_empty());
    }
}
