//! The frames nodes send each other through their inboxes: a forwarded PUBLISH, or an
//! acknowledgement of the forwarded messages received so far.
//!
//! Written here (a few fixed fields) rather than with a serialisation crate: the body of a
//! forward is the MQTT 5 PUBLISH packet itself, carried as is, so its topic, payload and
//! properties arrive byte for byte and the receiver decodes it with the broker's own codec.
//!
//! ```text
//! version (1) | kind (1: forward, 2: ack, 3: reset, 4: delivery) | sender's node id
//! (u8 length, bytes) | link epoch (u64) | sequence (u64) | forward: the MQTT 5 PUBLISH
//! packet; delivery: a log entry (the sessions it is for and the PUBLISH, `log.rs`)
//! ```
//!
//! A link is (sender, receiver, epoch); the sender picks a new epoch each time it starts, and
//! for one receiver each time it gives that receiver up (what was in flight is not sent
//! again, so the receiver must not wait for it).
//! Sequence numbers start at 1 on each link and count QoS 1 and 2 forwards; a QoS 0 forward
//! has sequence 0 and is neither acknowledged nor sent again. An ack's sequence says every
//! forward up to it arrived. A delivery is a forward for named sessions only, numbered and
//! acknowledged as forwards are: a message that could not reach a node that died, sent on
//! to the node its sessions moved to. A reset asks the sender of `epoch` to number what it has not had
//! acknowledged from 1 again: the receiver started afresh and knows nothing of the link.
//!
//! Everything decoded comes from the network: a frame that does not parse is an error,
//! never a panic.

use bytes::{Buf, BufMut, Bytes, BytesMut};

const VERSION: u8 = 1;
const FORWARD: u8 = 1;
const ACK: u8 = 2;
const RESET: u8 = 3;
const DELIVER: u8 = 4;

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The node that sent it.
    pub from: String,
    /// The sender's link epoch.
    pub epoch: u64,
    /// The forward's sequence number (0: QoS 0), or the highest acknowledged.
    pub seq: u64,
    /// What it carries.
    pub body: Body,
}

/// What a frame carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A message for this node's subscribers: an MQTT 5 PUBLISH packet.
    Forward(Bytes),
    /// Every forward up to `seq` arrived.
    Ack,
    /// The receiver knows nothing of the link `epoch`: number it from 1 again.
    Reset,
    /// A message for some sessions only: an encoded [`crate::log::LogEntry`].
    Deliver(Bytes),
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Shorter than its fields.
    #[error("frame truncated")]
    Truncated,
    /// Made by a version of Midge this one does not speak.
    #[error("unknown frame version {0}")]
    Version(u8),
    /// Not a forward, an ack, a reset or a delivery.
    #[error("unknown frame kind {0}")]
    Kind(u8),
    /// The sender's node id is not UTF-8.
    #[error("node id is not UTF-8")]
    NodeId,
    /// An ack or reset with bytes after its fields.
    #[error("ack or reset frame with {0} bytes too many")]
    Trailing(usize),
}

impl Frame {
    /// The frame's bytes.
    pub fn encode(&self) -> Bytes {
        let from = self.from.as_bytes();
        let from = &from[..from.len().min(usize::from(u8::MAX))];
        let body_len = match &self.body {
            Body::Forward(packet) | Body::Deliver(packet) => packet.len(),
            Body::Ack | Body::Reset => 0,
        };
        let mut out = BytesMut::with_capacity(19 + from.len() + body_len);
        out.put_u8(VERSION);
        out.put_u8(match self.body {
            Body::Forward(_) => FORWARD,
            Body::Ack => ACK,
            Body::Reset => RESET,
            Body::Deliver(_) => DELIVER,
        });
        out.put_u8(u8::try_from(from.len()).unwrap_or(u8::MAX));
        out.put_slice(from);
        out.put_u64(self.epoch);
        out.put_u64(self.seq);
        if let Body::Forward(packet) | Body::Deliver(packet) = &self.body {
            out.put_slice(packet);
        }
        out.freeze()
    }

    /// Reads a frame; the forwarded packet shares `bytes`.
    pub fn decode(mut bytes: Bytes) -> Result<Self, FrameError> {
        if bytes.remaining() < 3 {
            return Err(FrameError::Truncated);
        }
        let version = bytes.get_u8();
        if version != VERSION {
            return Err(FrameError::Version(version));
        }
        let kind = bytes.get_u8();
        if ![FORWARD, ACK, RESET, DELIVER].contains(&kind) {
            return Err(FrameError::Kind(kind));
        }
        let from_len = usize::from(bytes.get_u8());
        if bytes.remaining() < from_len + 16 {
            return Err(FrameError::Truncated);
        }
        let from = bytes.split_to(from_len);
        let from = std::str::from_utf8(&from)
            .map_err(|_| FrameError::NodeId)?
            .to_owned();
        let epoch = bytes.get_u64();
        let seq = bytes.get_u64();
        let body = if kind == FORWARD {
            Body::Forward(bytes)
        } else if kind == DELIVER {
            Body::Deliver(bytes)
        } else if !bytes.is_empty() {
            return Err(FrameError::Trailing(bytes.len()));
        } else if kind == ACK {
            Body::Ack
        } else {
            Body::Reset
        };
        Ok(Self {
            from,
            epoch,
            seq,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward() -> Frame {
        Frame {
            from: "n2".into(),
            epoch: 0x0102_0304_0506_0708,
            seq: 42,
            body: Body::Forward(Bytes::from_static(b"\x30\x05\x00\x01ahi")),
        }
    }

    #[test]
    fn frames_read_back_as_written() {
        let ack = Frame {
            from: "node-1".into(),
            epoch: 7,
            seq: u64::MAX,
            body: Body::Ack,
        };
        let reset = Frame {
            from: "n3".into(),
            epoch: 9,
            seq: 0,
            body: Body::Reset,
        };
        let deliver = Frame {
            from: "n1".into(),
            epoch: 3,
            seq: 5,
            body: Body::Deliver(Bytes::from_static(b"entry")),
        };
        for frame in [forward(), ack, reset, deliver] {
            assert_eq!(Frame::decode(frame.encode()), Ok(frame));
        }
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = forward().encode();
        // Up to the end of the fixed fields every prefix is short; after it the packet is
        // opaque (the codec judges it).
        for len in 0..(3 + 2 + 16) {
            assert_eq!(
                Frame::decode(bytes.slice(..len)),
                Err(FrameError::Truncated),
                "{len}"
            );
        }
    }

    #[test]
    fn unknown_versions_kinds_and_bad_fields_are_refused() {
        let mut bytes = forward().encode().to_vec();
        bytes[0] = 9;
        assert_eq!(Frame::decode(bytes.clone().into()), Err(FrameError::Version(9)));
        bytes[0] = VERSION;
        bytes[1] = 5;
        assert_eq!(Frame::decode(bytes.clone().into()), Err(FrameError::Kind(5)));
        bytes[1] = FORWARD;
        bytes[3] = 0xff;
        assert_eq!(Frame::decode(bytes.into()), Err(FrameError::NodeId));
        let mut ack = Frame {
            from: "n1".into(),
            epoch: 1,
            seq: 1,
            body: Body::Ack,
        }
        .encode()
        .to_vec();
        ack.push(0);
        assert_eq!(Frame::decode(ack.into()), Err(FrameError::Trailing(1)));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for len in 0..512 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed.to_le_bytes()[0] % 4
                })
                .collect();
            let _ = Frame::decode(bytes.into());
        }
    }
}
