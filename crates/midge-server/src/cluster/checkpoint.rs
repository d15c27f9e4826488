//! A persistent session's checkpoint as the cluster keeps it (a value in the JetStream KV
//! bucket `midge-NAME-sessions`): its client identifier, expiry and subscriptions, so that
//! the node its client connects to next can take it up.
//!
//! ```text
//! version (1) | expiry: 0, or 1 and seconds (u32) | client id (u16 length, UTF-8)
//! | count (u32) | each: options byte (as in SUBSCRIBE), subscription id (u32, 0: none),
//! filter (u16 length, UTF-8)
//! ```
//!
//! What is read comes from the network: anything malformed is an error, never a panic.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use midge_codec::{QoS, RetainHandling, SubscriptionId, SubscriptionOptions, TopicFilter};
use midge_core::routes::SessionCheckpoint;

const VERSION: u8 = 1;

/// The checkpoint's bytes.
pub(crate) fn encode(checkpoint: &SessionCheckpoint) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(VERSION);
    match checkpoint.expiry {
        None => out.put_u8(0),
        Some(expiry) => {
            out.put_u8(1);
            out.put_u32(u32::try_from(expiry.as_secs()).unwrap_or(u32::MAX));
        }
    }
    put_text(&mut out, &checkpoint.client_id);
    out.put_u32(u32::try_from(checkpoint.subscriptions.len()).unwrap_or(u32::MAX));
    for (filter, options, id) in &checkpoint.subscriptions {
        let byte = options.qos.as_u8()
            | u8::from(options.no_local) << 2
            | u8::from(options.retain_as_published) << 3
            | (options.retain_handling as u8) << 4;
        out.put_u8(byte);
        out.put_u32(id.map_or(0, SubscriptionId::get));
        put_text(&mut out, filter.as_str());
    }
    out.freeze()
}

fn put_text(out: &mut BytesMut, text: &str) {
    let bytes = text.as_bytes();
    let bytes = &bytes[..bytes.len().min(usize::from(u16::MAX))];
    out.put_u16(u16::try_from(bytes.len()).unwrap_or(u16::MAX));
    out.put_slice(bytes);
}

/// Reads a checkpoint.
pub(crate) fn decode(mut bytes: Bytes) -> Result<SessionCheckpoint, String> {
    let need = |bytes: &Bytes, n: usize| {
        if bytes.remaining() < n {
            Err("truncated".to_owned())
        } else {
            Ok(())
        }
    };
    need(&bytes, 2)?;
    let version = bytes.get_u8();
    if version != VERSION {
        return Err(format!("unknown version {version}"));
    }
    let expiry = match bytes.get_u8() {
        0 => None,
        1 => {
            need(&bytes, 4)?;
            Some(Duration::from_secs(u64::from(bytes.get_u32())))
        }
        other => return Err(format!("bad expiry flag {other}")),
    };
    let client_id = text(&mut bytes)?;
    need(&bytes, 4)?;
    let count = bytes.get_u32();
    let mut subscriptions = Vec::new();
    for _ in 0..count {
        need(&bytes, 5)?;
        let byte = bytes.get_u8();
        let id = SubscriptionId::new(bytes.get_u32());
        let filter = text(&mut bytes)?;
        let filter =
            TopicFilter::try_from(filter.as_str()).map_err(|error| format!("bad filter: {error}"))?;
        let options = SubscriptionOptions {
            qos: QoS::from_bits(byte & 0b11).ok_or("bad QoS")?,
            no_local: byte & 0b100 != 0,
            retain_as_published: byte & 0b1000 != 0,
            retain_handling: RetainHandling::from_bits((byte >> 4) & 0b11).ok_or("bad retain handling")?,
        };
        subscriptions.push((filter, options, id));
    }
    if bytes.has_remaining() {
        return Err(format!("{} bytes too many", bytes.remaining()));
    }
    Ok(SessionCheckpoint {
        client_id,
        expiry,
        subscriptions,
    })
}

fn text(bytes: &mut Bytes) -> Result<String, String> {
    if bytes.remaining() < 2 {
        return Err("truncated".into());
    }
    let len = usize::from(bytes.get_u16());
    if bytes.remaining() < len {
        return Err("truncated".into());
    }
    String::from_utf8(bytes.split_to(len).to_vec()).map_err(|_| "not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint() -> SessionCheckpoint {
        SessionCheckpoint {
            client_id: "sensor-7".into(),
            expiry: Some(Duration::from_secs(3600)),
            subscriptions: vec![
                (
                    TopicFilter::try_from("a/+/c").unwrap(),
                    SubscriptionOptions {
                        qos: QoS::AtLeastOnce,
                        no_local: true,
                        retain_as_published: true,
                        retain_handling: RetainHandling::DoNotSend,
                    },
                    SubscriptionId::new(42),
                ),
                (
                    TopicFilter::try_from("$share/g/x/#").unwrap(),
                    SubscriptionOptions::default(),
                    None,
                ),
            ],
        }
    }

    #[test]
    fn checkpoints_read_back_as_written() {
        let mut never = checkpoint();
        never.expiry = None;
        for checkpoint in [checkpoint(), never] {
            assert_eq!(decode(encode(&checkpoint)), Ok(checkpoint));
        }
    }

    #[test]
    fn every_truncation_and_extra_byte_is_an_error() {
        let bytes = encode(&checkpoint());
        for len in 0..bytes.len() {
            assert!(decode(bytes.slice(..len)).is_err(), "{len}");
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(decode(longer.into()).is_err());
    }

    #[test]
    fn bad_fields_are_errors() {
        let bytes = encode(&checkpoint()).to_vec();
        let mut version = bytes.clone();
        version[0] = 2;
        assert!(decode(version.into()).is_err());
        let mut flag = bytes.clone();
        flag[1] = 7;
        assert!(decode(flag.into()).is_err());
        // The first subscription's options byte: QoS 3.
        let options_at = 1 + 1 + 4 + 2 + "sensor-7".len() + 4;
        let mut qos = bytes.clone();
        qos[options_at] = 0b11;
        assert!(decode(qos.into()).is_err());
        let mut filter = bytes;
        let filter_at = options_at + 1 + 4 + 2;
        filter[filter_at] = b'#';
        assert!(decode(filter.into()).is_err(), "a/+/c became #/+/c");
    }
}
