//! A persistent session's checkpoint as the cluster keeps it (a value in the JetStream KV
//! bucket `midge-NAME-sessions`): its client identifier, expiry, subscriptions and the will
//! its connection left waiting, so that the node its client connects to next (or that takes
//! it up when its node is lost) can take it up.
//!
//! ```text
//! version (1, or 2 with a will) | expiry: 0, or 1 and seconds (u32)
//! | client id (u16 length, UTF-8) | count (u32) | each: options byte (as in SUBSCRIBE),
//! subscription id (u32, 0: none), filter (u16 length, UTF-8)
//! [version 2: will delay (seconds, u32) | listener (u32) | user name: 0, or 1 and text
//! | the will as an MQTT 5 PUBLISH (u32 length, packet)]
//! ```
//!
//! A checkpoint without a will is written as version 1, which nodes without wills read.
//!
//! What is read comes from the network: anything malformed is an error, never a panic.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use midge_codec::{
    Decoder, Packet, ProtocolVersion, QoS, RetainHandling, SubscriptionId, SubscriptionOptions, TopicFilter,
};
use midge_core::routes::{CheckpointWill, SessionCheckpoint};

const VERSION: u8 = 1;
const VERSION_WITH_WILL: u8 = 2;

/// The checkpoint's bytes.
pub(crate) fn encode(checkpoint: &SessionCheckpoint) -> Bytes {
    let mut out = BytesMut::new();
    let will = checkpoint.will.as_ref().and_then(|will| {
        let mut packet = BytesMut::new();
        Packet::Publish(will.publish.clone())
            .encode(ProtocolVersion::V5, &mut packet)
            .ok()
            .map(|()| (will, packet))
    });
    out.put_u8(if will.is_some() {
        VERSION_WITH_WILL
    } else {
        VERSION
    });
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
    if let Some((will, packet)) = will {
        out.put_u32(u32::try_from(will.delay.as_secs()).unwrap_or(u32::MAX));
        out.put_u32(u32::try_from(will.listener).unwrap_or(u32::MAX));
        match &will.username {
            None => out.put_u8(0),
            Some(username) => {
                out.put_u8(1);
                put_text(&mut out, username);
            }
        }
        out.put_u32(u32::try_from(packet.len()).unwrap_or(u32::MAX));
        out.put_slice(&packet);
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
    if version != VERSION && version != VERSION_WITH_WILL {
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
    let will = if version == VERSION_WITH_WILL {
        Some(will(&mut bytes)?)
    } else {
        None
    };
    if bytes.has_remaining() {
        return Err(format!("{} bytes too many", bytes.remaining()));
    }
    Ok(SessionCheckpoint {
        client_id,
        expiry,
        subscriptions,
        will,
    })
}

fn will(bytes: &mut Bytes) -> Result<CheckpointWill, String> {
    if bytes.remaining() < 9 {
        return Err("truncated".into());
    }
    let delay = Duration::from_secs(u64::from(bytes.get_u32()));
    let listener = usize::try_from(bytes.get_u32()).map_err(|_| "bad listener")?;
    let username = match bytes.get_u8() {
        0 => None,
        1 => Some(text(bytes)?),
        other => return Err(format!("bad user name flag {other}")),
    };
    if bytes.remaining() < 4 {
        return Err("truncated".into());
    }
    let len = usize::try_from(bytes.get_u32()).map_err(|_| "bad will length")?;
    if bytes.remaining() < len {
        return Err("truncated".into());
    }
    let mut packet = BytesMut::from(&bytes.split_to(len)[..]);
    let publish = match Decoder::new(ProtocolVersion::V5, u32::MAX).decode(&mut packet) {
        Ok(Some(Packet::Publish(publish))) if packet.is_empty() => publish,
        Ok(_) => return Err("the will is not one PUBLISH".into()),
        Err(error) => return Err(format!("bad will: {error}")),
    };
    Ok(CheckpointWill {
        publish,
        delay,
        username,
        listener,
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
            will: None,
        }
    }

    fn with_will() -> SessionCheckpoint {
        let mut publish = midge_codec::Publish::new(
            midge_codec::TopicName::try_from("status/sensor-7").unwrap(),
            Bytes::from_static(b"offline"),
        );
        publish.qos = QoS::AtLeastOnce;
        publish.retain = true;
        publish.packet_id = midge_codec::PacketId::new(1);
        publish.properties.message_expiry_interval = Some(3600);
        SessionCheckpoint {
            will: Some(CheckpointWill {
                publish,
                delay: Duration::from_secs(5),
                username: Some("sensor".into()),
                listener: 2,
            }),
            ..checkpoint()
        }
    }

    #[test]
    fn checkpoints_read_back_as_written() {
        let mut never = checkpoint();
        never.expiry = None;
        let mut anonymous = with_will();
        if let Some(will) = &mut anonymous.will {
            will.username = None;
        }
        for checkpoint in [checkpoint(), never, with_will(), anonymous] {
            assert_eq!(decode(encode(&checkpoint)), Ok(checkpoint));
        }
        // Without a will, the version nodes without wills read.
        assert_eq!(encode(&checkpoint())[0], VERSION);
    }

    #[test]
    fn every_truncation_and_extra_byte_is_an_error() {
        for bytes in [encode(&checkpoint()), encode(&with_will())] {
            for len in 0..bytes.len() {
                assert!(decode(bytes.slice(..len)).is_err(), "{len}");
            }
            let mut longer = bytes.to_vec();
            longer.push(0);
            assert!(decode(longer.into()).is_err());
        }
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
