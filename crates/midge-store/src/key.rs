//! Where each record lives. Keys sort so that one prefix holds everything of a client (and
//! can be deleted at once), queue entries sort in queue order, and the kind of a record can be
//! told from its key alone.
//!
//! | Key | Record |
//! |---|---|
//! | `V` | the store's format version (one byte) |
//! | `C` len₁₆ client-id `s` | [`SessionRecord`](crate::SessionRecord) |
//! | `C` len₁₆ client-id `u` filter | [`SubscriptionRecord`](crate::SubscriptionRecord) |
//! | `C` len₁₆ client-id `q` seq₆₄ | [`EntryRecord`](crate::EntryRecord): a queued or in-flight delivery |
//! | `C` len₁₆ client-id `i` id₁₆ | a QoS 2 packet identifier awaiting PUBREL (empty value) |
//! | `C` len₁₆ client-id `n` `t` id₁₆ | [`SnTopicRecord`](crate::SnTopicRecord): a topic id of an MQTT-SN client |
//! | `C` len₁₆ client-id `n` `w` | [`MessageRecord`](crate::MessageRecord): an MQTT-SN client's will, kept between its connections |
//! | `M` id₆₄ | [`MessageRecord`](crate::MessageRecord) shared by queue entries |
//! | `R` topic | [`MessageRecord`](crate::MessageRecord): a retained message |
//!
//! Numbers are big-endian so they sort; the client identifier is length-prefixed so that no
//! client's prefix is a prefix of another's. What the MQTT-SN gateway keeps of a client lives
//! under the client's prefix too, so it goes when the session goes; it has a prefix of its own
//! (`C` len₁₆ client-id `n`) so that the gateway can rewrite it at once.

/// The format-version key.
pub const VERSION: &[u8] = b"V";

const CLIENT: u8 = b'C';
const MESSAGE: u8 = b'M';
const RETAINED: u8 = b'R';
const SESSION: u8 = b's';
const SUBSCRIPTION: u8 = b'u';
const ENTRY: u8 = b'q';
const INCOMING: u8 = b'i';
const MQTTSN: u8 = b'n';
const MQTTSN_TOPIC: u8 = b't';
const MQTTSN_WILL: u8 = b'w';

/// Every key of one client: delete this prefix to forget the session.
pub fn client_prefix(client_id: &str) -> Vec<u8> {
    let id = client_id.as_bytes();
    let mut key = Vec::with_capacity(id.len() + 4 + 66);
    key.push(CLIENT);
    // Client identifiers fit: the codec limits strings to 65 535 bytes.
    key.extend_from_slice(&u16::try_from(id.len()).unwrap_or(u16::MAX).to_be_bytes());
    key.extend_from_slice(id);
    key
}

/// A session's own record.
pub fn session(client_id: &str) -> Vec<u8> {
    let mut key = client_prefix(client_id);
    key.push(SESSION);
    key
}

/// One subscription of a session.
pub fn subscription(client_id: &str, filter: &str) -> Vec<u8> {
    let mut key = client_prefix(client_id);
    key.push(SUBSCRIPTION);
    key.extend_from_slice(filter.as_bytes());
    key
}

/// One queued or in-flight delivery of a session, by its place in the queue.
pub fn entry(client_id: &str, seq: u64) -> Vec<u8> {
    let mut key = client_prefix(client_id);
    key.push(ENTRY);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// A QoS 2 packet identifier the client used and has not released.
pub fn incoming(client_id: &str, packet_id: u16) -> Vec<u8> {
    let mut key = client_prefix(client_id);
    key.push(INCOMING);
    key.extend_from_slice(&packet_id.to_be_bytes());
    key
}

/// Everything the MQTT-SN gateway keeps of a client: delete this prefix to forget it.
pub fn mqttsn_prefix(client_id: &str) -> Vec<u8> {
    let mut key = client_prefix(client_id);
    key.push(MQTTSN);
    key
}

/// A topic id an MQTT-SN client has registered (or the gateway registered with it).
pub fn mqttsn_topic(client_id: &str, topic_id: u16) -> Vec<u8> {
    let mut key = mqttsn_prefix(client_id);
    key.push(MQTTSN_TOPIC);
    key.extend_from_slice(&topic_id.to_be_bytes());
    key
}

/// An MQTT-SN client's will, kept for its next connection (MQTT-SN 1.2 §6.3).
pub fn mqttsn_will(client_id: &str) -> Vec<u8> {
    let mut key = mqttsn_prefix(client_id);
    key.push(MQTTSN_WILL);
    key
}

/// A message body shared by queue entries.
pub fn message(id: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(MESSAGE);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// The retained message of a topic.
pub fn retained(topic: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(topic.len() + 1);
    key.push(RETAINED);
    key.extend_from_slice(topic.as_bytes());
    key
}

/// A key read back, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key<'a> {
    /// The format version.
    Version,
    /// A session record.
    Session(&'a str),
    /// A subscription: client and filter.
    Subscription(&'a str, &'a str),
    /// A queue entry: client and place.
    Entry(&'a str, u64),
    /// An incoming QoS 2 packet identifier: client and identifier.
    Incoming(&'a str, u16),
    /// An MQTT-SN client's topic id: client and id.
    MqttSnTopic(&'a str, u16),
    /// An MQTT-SN client's kept will.
    MqttSnWill(&'a str),
    /// A message body.
    Message(u64),
    /// A retained message's topic.
    Retained(&'a str),
}

/// Reads a key; `None` if it is not one this version writes.
pub fn parse(key: &[u8]) -> Option<Key<'_>> {
    let (&kind, rest) = key.split_first()?;
    match kind {
        b'V' if rest.is_empty() => Some(Key::Version),
        MESSAGE => Some(Key::Message(u64::from_be_bytes(rest.try_into().ok()?))),
        RETAINED => Some(Key::Retained(std::str::from_utf8(rest).ok()?)),
        CLIENT => {
            let (len, rest) = rest.split_first_chunk::<2>()?;
            let len = usize::from(u16::from_be_bytes(*len));
            let id = std::str::from_utf8(rest.get(..len)?).ok()?;
            let (&kind, tail) = rest.get(len..)?.split_first()?;
            match kind {
                SESSION if tail.is_empty() => Some(Key::Session(id)),
                SUBSCRIPTION => Some(Key::Subscription(id, std::str::from_utf8(tail).ok()?)),
                ENTRY => Some(Key::Entry(id, u64::from_be_bytes(tail.try_into().ok()?))),
                INCOMING => Some(Key::Incoming(id, u16::from_be_bytes(tail.try_into().ok()?))),
                MQTTSN => match tail.split_first()? {
                    (&MQTTSN_TOPIC, topic_id) => Some(Key::MqttSnTopic(
                        id,
                        u16::from_be_bytes(topic_id.try_into().ok()?),
                    )),
                    (&MQTTSN_WILL, []) => Some(Key::MqttSnWill(id)),
                    _ => None,
                },
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_reads_back() {
        assert_eq!(parse(VERSION), Some(Key::Version));
        assert_eq!(parse(&session("c1")), Some(Key::Session("c1")));
        assert_eq!(
            parse(&subscription("c1", "a/+/#")),
            Some(Key::Subscription("c1", "a/+/#"))
        );
        assert_eq!(parse(&entry("c1", 42)), Some(Key::Entry("c1", 42)));
        assert_eq!(parse(&incoming("c1", 7)), Some(Key::Incoming("c1", 7)));
        assert_eq!(parse(&mqttsn_topic("c1", 300)), Some(Key::MqttSnTopic("c1", 300)));
        assert_eq!(parse(&mqttsn_will("c1")), Some(Key::MqttSnWill("c1")));
        assert_eq!(parse(&message(9)), Some(Key::Message(9)));
        assert_eq!(parse(&retained("a/b")), Some(Key::Retained("a/b")));
        assert_eq!(parse(b""), None);
        assert_eq!(parse(b"Cxx"), None);
        assert_eq!(parse(b"M123"), None);
        assert_eq!(parse(&mqttsn_prefix("c1")), None);
        let mut long_will = mqttsn_will("c1");
        long_will.push(0);
        assert_eq!(parse(&long_will), None);
    }

    #[test]
    fn a_client_prefix_covers_only_that_client() {
        let prefix = client_prefix("ab");
        assert!(entry("ab", 1).starts_with(&prefix));
        assert!(!entry("abc", 1).starts_with(&prefix));
        assert!(!session("a").starts_with(&prefix));
        let sn = mqttsn_prefix("ab");
        assert!(sn.starts_with(&prefix));
        assert!(mqttsn_topic("ab", 1).starts_with(&sn));
        assert!(mqttsn_will("ab").starts_with(&sn));
        assert!(!session("ab").starts_with(&sn));
    }

    #[test]
    fn entries_sort_in_queue_order() {
        assert!(entry("c", 255) < entry("c", 256));
        assert!(entry("c", 1) < entry("c", u64::MAX));
    }
}
