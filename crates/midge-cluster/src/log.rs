//! Entries of the message log: a QoS 1 or 2 message queued here for persistent sessions,
//! kept in the cluster (replicated, on disk) before it is acknowledged, so that a session
//! whose node is lost is replayed where its client goes next.
//!
//! ```text
//! version (1) | client identifiers (u16 count, each u16 length + UTF-8) | MQTT 5 PUBLISH
//! ```
//!
//! One entry names the sessions of one shard (`keys::log_shard`) the message was queued for,
//! so a message for many sessions is written once per shard, not once per session. The
//! entries are read back from the network's store: one that does not parse is an error,
//! never a panic.

use bytes::{Buf, BufMut, Bytes, BytesMut};

const VERSION: u8 = 1;

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The sessions it was queued for.
    pub client_ids: Vec<String>,
    /// The message, as an MQTT 5 PUBLISH packet.
    pub packet: Bytes,
}

impl LogEntry {
    /// The entry's bytes. Identifiers longer than 65,535 bytes cannot be MQTT client
    /// identifiers, and beyond 65,535 of them the rest go in another entry (see
    /// [`LogEntry::split`]): both are cut here rather than written wrong.
    pub fn encode(&self) -> Bytes {
        let ids: Vec<&str> = self
            .client_ids
            .iter()
            .filter(|id| id.len() <= usize::from(u16::MAX))
            .take(usize::from(u16::MAX))
            .map(String::as_str)
            .collect();
        let size = 3 + ids.iter().map(|id| 2 + id.len()).sum::<usize>() + self.packet.len();
        let mut out = BytesMut::with_capacity(size);
        out.put_u8(VERSION);
        out.put_u16(u16::try_from(ids.len()).unwrap_or(u16::MAX));
        for id in ids {
            out.put_u16(u16::try_from(id.len()).unwrap_or(u16::MAX));
            out.put_slice(id.as_bytes());
        }
        out.put_slice(&self.packet);
        out.freeze()
    }

    /// An entry read from the log.
    pub fn decode(mut bytes: Bytes) -> Result<Self, String> {
        if bytes.remaining() < 3 {
            return Err("a log entry cut short".into());
        }
        let version = bytes.get_u8();
        if version != VERSION {
            return Err(format!("a log entry of version {version}"));
        }
        let count = bytes.get_u16();
        let mut client_ids = Vec::with_capacity(usize::from(count).min(1024));
        for _ in 0..count {
            if bytes.remaining() < 2 {
                return Err("a log entry cut short in its client identifiers".into());
            }
            let len = usize::from(bytes.get_u16());
            if bytes.remaining() < len {
                return Err("a log entry cut short in a client identifier".into());
            }
            let id = bytes.split_to(len);
            let id = String::from_utf8(id.to_vec())
                .map_err(|_| "a log entry with a client identifier that is not UTF-8".to_owned())?;
            client_ids.push(id);
        }
        if bytes.is_empty() {
            return Err("a log entry without its message".into());
        }
        Ok(Self {
            client_ids,
            packet: bytes,
        })
    }

    /// Whether it was queued for `client_id`.
    pub fn names(&self, client_id: &str) -> bool {
        self.client_ids.iter().any(|id| id == client_id)
    }

    /// `client_ids` in groups an entry can hold.
    pub fn split(client_ids: Vec<String>) -> Vec<Vec<String>> {
        let mut groups = Vec::new();
        let mut rest = client_ids;
        while rest.len() > usize::from(u16::MAX) {
            let tail = rest.split_off(usize::from(u16::MAX));
            groups.push(rest);
            rest = tail;
        }
        groups.push(rest);
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_back_as_written() {
        let entry = LogEntry {
            client_ids: vec!["a".into(), String::new(), "sensor \u{1F600}".into()],
            packet: Bytes::from_static(b"\x30\x03\x00\x01t"),
        };
        let decoded = LogEntry::decode(entry.encode()).unwrap();
        assert_eq!(decoded, entry);
        assert!(decoded.names("a") && decoded.names("") && !decoded.names("b"));
    }

    #[test]
    fn bad_entries_are_errors_not_panics() {
        let good = LogEntry {
            client_ids: vec!["abc".into()],
            packet: Bytes::from_static(b"\x30\x03\x00\x01t"),
        }
        .encode();
        // Every truncation is refused, up to the message itself.
        for cut in 0..8 {
            assert!(LogEntry::decode(good.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut other_version = good.to_vec();
        other_version[0] = 9;
        assert!(LogEntry::decode(Bytes::from(other_version)).is_err());
        let mut not_utf8 = good.to_vec();
        not_utf8[5] = 0xff;
        assert!(LogEntry::decode(Bytes::from(not_utf8)).is_err());
        // More identifiers claimed than there are bytes.
        assert!(LogEntry::decode(Bytes::from_static(b"\x01\xff\xff\x00\x01a")).is_err());
    }

    #[test]
    fn many_sessions_are_split_over_entries() {
        let ids: Vec<String> = (0..70_000).map(|n| n.to_string()).collect();
        let groups = LogEntry::split(ids);
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [65_535, 4_465]);
    }
}
