//! Names in NATS: subjects, buckets and keys. KV keys allow only `[-/_=.a-zA-Z0-9]`, so what
//! clients choose (filters, client identifiers) is hashed into a key and kept in clear in the
//! value.

use sha2::{Digest, Sha256};

/// A KV-safe key for any text: the first 128 bits of its SHA-256, in hex.
pub fn hashed(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest
        .iter()
        .take(16)
        .fold(String::with_capacity(32), |mut out, byte| {
            use std::fmt::Write;
            let _ = write!(out, "{byte:02x}");
            out
        })
}

/// The subject of `node`'s inbox in `cluster`.
pub fn inbox(cluster: &str, node: &str) -> String {
    format!("midge.{cluster}.n.{node}")
}

/// The plain NATS subject every node's heartbeats go to (`NODE\nEPOCH`).
pub fn heartbeats(cluster: &str) -> String {
    format!("midge.{cluster}.heartbeat")
}

/// The bucket of the nodes' route sets: keys `NODE.HASH`, values the filters.
pub fn routes_bucket(cluster: &str) -> String {
    format!("midge-{cluster}-routes")
}

/// The bucket of the nodes' heartbeats: keys the node ids, values their epochs.
pub fn nodes_bucket(cluster: &str) -> String {
    format!("midge-{cluster}-nodes")
}

/// The bucket of retained messages: keys the hashed topics, values MQTT 5 PUBLISH packets
/// (an empty payload clears the topic).
pub fn retained_bucket(cluster: &str) -> String {
    format!("midge-{cluster}-retained")
}

/// The bucket of client identifier ownership: keys the hashed identifiers, values
/// `NODE\nTOKEN\nCLIENT_ID` (the token names the claim that wrote it); a key's revision is
/// the ownership's fencing token.
pub fn owners_bucket(cluster: &str) -> String {
    format!("midge-{cluster}-owners")
}

/// The bucket of persistent sessions' checkpoints: keys the hashed client identifiers.
pub fn sessions_bucket(cluster: &str) -> String {
    format!("midge-{cluster}-sessions")
}

/// The key, in the sessions bucket, of the position in the message log up to which every
/// message for `client_id`'s session was delivered and acknowledged (its floor).
pub fn floor_key(client_id: &str) -> String {
    format!("{FLOOR_PREFIX}{}", hashed(client_id))
}

/// What the keys of floors start with, beside the checkpoints in the sessions bucket.
pub const FLOOR_PREFIX: &str = "floor.";

/// Shard `shard` of the message log of persistent sessions: its stream, and its one subject.
pub fn log_stream(cluster: &str, shard: u16) -> (String, String) {
    (
        format!("midge-{cluster}-log-{shard}"),
        format!("midge.{cluster}.log.{shard}"),
    )
}

/// The shard of the message log that holds `client_id`'s messages: the same on every node.
pub fn log_shard(client_id: &str, shards: u16) -> u16 {
    let digest = Sha256::digest(client_id.as_bytes());
    let head = u16::from_be_bytes([digest[0], digest[1]]);
    head % shards.max(1)
}

/// The key of `filter` in `node`'s route set.
pub fn route_key(node: &str, filter: &str) -> String {
    format!("{node}.{}", hashed(filter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_use_only_the_characters_kv_allows() {
        for text in ["a/b", "$share/g/#", "spaces and * > .", "", "\u{1F600}"] {
            let key = route_key("n1", text);
            assert!(
                key.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-/_=.".contains(&b)),
                "{key}"
            );
            assert_eq!(hashed(text).len(), 32);
        }
        assert_ne!(hashed("a/b"), hashed("a/c"));
        assert!(floor_key("x").starts_with("floor."));
    }

    #[test]
    fn a_client_identifier_has_one_shard_of_the_log() {
        for id in ["a", "sensor-17", "", "\u{1F600}"] {
            assert_eq!(log_shard(id, 8), log_shard(id, 8));
            assert!(log_shard(id, 8) < 8);
            assert_eq!(log_shard(id, 1), 0);
        }
        let spread: std::collections::HashSet<u16> =
            (0..64).map(|n| log_shard(&format!("c{n}"), 8)).collect();
        assert!(spread.len() > 4, "identifiers spread over the shards: {spread:?}");
    }
}
