//! The bytes one connection has to send, already encoded for its protocol version.
//!
//! The core writes packets here; the runtime writes the buffer to the socket and drops the
//! capacity once it is empty, so an idle connection holds no buffer.
//!
//! A large payload is not copied: the PUBLISH's head goes in as bytes and the payload as a
//! reference to the message's own buffer, and the runtime sends both with one vectored write
//! ([`Outbox::io_slices`]). Copying a 16 KB payload into every receiver's outbox was the
//! broker's largest cost of its own on large messages.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use midge_codec::{Packet, PacketId, ProtocolVersion, PublishParts, PublishTemplate};

/// Payloads of at least this many bytes are sent from the message's buffer, not copied.
pub const SHARE_PAYLOAD_FROM: usize = 2048;

/// Encoded packets waiting for one connection's socket.
#[derive(Debug)]
pub struct Outbox {
    /// What goes out before `buf`, in order: heads taken from `buf` and the large payloads
    /// that follow them.
    ahead: VecDeque<Bytes>,
    /// Bytes in `ahead`.
    ahead_len: usize,
    buf: BytesMut,
    version: ProtocolVersion,
    /// Packets encoded since the runtime last took the count.
    packets: u32,
    /// The journal sequence number that must be durable before anything here is sent.
    durable_after: u64,
    /// The cluster log's ticket that must be settled before anything here is sent.
    logged_after: u64,
}

impl Outbox {
    /// An empty outbox for a connection speaking `version` (CONNECT decides it).
    pub fn new(version: ProtocolVersion) -> Self {
        Self {
            ahead: VecDeque::new(),
            ahead_len: 0,
            buf: BytesMut::new(),
            version,
            packets: 0,
            durable_after: 0,
            logged_after: 0,
        }
    }

    /// The version packets are encoded in.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    pub(crate) fn set_version(&mut self, version: ProtocolVersion) {
        self.version = version;
    }

    /// Encodes `packet` onto the end. A packet the broker built itself always encodes; if one
    /// ever does not, it is logged and skipped rather than taking the connection down.
    pub fn send(&mut self, packet: &Packet) {
        match packet.encode(self.version, &mut self.buf) {
            Ok(()) => self.packets = self.packets.wrapping_add(1),
            Err(error) => {
                tracing::error!(%error, packet = ?packet.packet_type(), "could not encode a packet; skipped");
            }
        }
    }

    /// Appends a PUBLISH encoded from borrowed parts: nothing of the message is cloned.
    pub(crate) fn send_publish(&mut self, publish: &PublishParts<'_>) {
        match publish.encode(self.version, &mut self.buf) {
            Ok(()) => self.packets = self.packets.wrapping_add(1),
            Err(error) => {
                tracing::error!(%error, "could not encode a PUBLISH; skipped");
            }
        }
    }

    /// Appends a pre-encoded PUBLISH for this receiver: its packet identifier and DUP are
    /// patched in as the head is copied, with no intermediate buffer. A payload of
    /// [`SHARE_PAYLOAD_FROM`] bytes or more is shared with the message, not copied.
    pub(crate) fn send_template(
        &mut self,
        template: &PublishTemplate,
        packet_id: Option<PacketId>,
        dup: bool,
    ) {
        let payload = template.payload();
        if payload.len() >= SHARE_PAYLOAD_FROM {
            template.write_head_to(packet_id, dup, &mut self.buf);
            let head = self.buf.split().freeze();
            self.ahead_len += head.len() + payload.len();
            self.ahead.push_back(head);
            self.ahead.push_back(payload.clone());
        } else {
            template.write_to(packet_id, dup, &mut self.buf);
        }
        self.packets = self.packets.wrapping_add(1);
    }

    /// Holds everything in the outbox (and anything added later) until journal write `seq`
    /// is durable: the reply being queued acknowledges it (`persist.rs`). 0 holds nothing.
    pub fn require_durable(&mut self, seq: u64) {
        self.durable_after = self.durable_after.max(seq);
    }

    /// The journal sequence number that must be durable before the runtime writes any of
    /// this outbox to the socket; 0 if none. It only grows.
    pub fn durable_after(&self) -> u64 {
        self.durable_after
    }

    /// Holds everything in the outbox (and anything added later) until the cluster's message
    /// log has settled `ticket` ([`crate::routes::DurableLog`]). 0 holds nothing.
    pub fn require_logged(&mut self, ticket: u64) {
        self.logged_after = self.logged_after.max(ticket);
    }

    /// The cluster log's ticket that must be settled before the runtime writes any of this
    /// outbox to the socket; 0 if none. It only grows.
    pub fn logged_after(&self) -> u64 {
        self.logged_after
    }

    /// The packets encoded since the last call, for the broker's counters.
    pub fn take_packet_count(&mut self) -> u64 {
        u64::from(std::mem::take(&mut self.packets))
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.ahead_len + self.buf.len()
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.ahead.is_empty() && self.buf.is_empty()
    }

    /// Everything waiting as one buffer (shared payloads are copied in first), for readers
    /// that decode what the core sent (bridges, the MQTT-SN gateway, tests).
    pub fn buffer(&mut self) -> &mut BytesMut {
        if !self.ahead.is_empty() {
            let mut all = BytesMut::with_capacity(self.len());
            for segment in self.ahead.drain(..) {
                all.extend_from_slice(&segment);
            }
            all.extend_from_slice(&self.buf);
            self.buf = all;
            self.ahead_len = 0;
        }
        &mut self.buf
    }

    /// The bytes waiting, in order, as up to `slices.len()` slices for one vectored write;
    /// returns how many it filled. Then [`Outbox::advance`] by what was written.
    pub fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let segments = self
            .ahead
            .iter()
            .map(|segment| &segment[..])
            .chain(std::iter::once(&self.buf[..]))
            .filter(|segment| !segment.is_empty());
        let mut filled = 0;
        for (slot, segment) in slices.iter_mut().zip(segments) {
            *slot = IoSlice::new(segment);
            filled += 1;
        }
        filled
    }

    /// Drops the first `written` bytes, which the socket took.
    pub fn advance(&mut self, mut written: usize) {
        while written > 0 {
            let Some(front) = self.ahead.front_mut() else {
                self.buf.advance(written.min(self.buf.len()));
                return;
            };
            let taken = written.min(front.len());
            front.advance(taken);
            self.ahead_len -= taken;
            written -= taken;
            if front.is_empty() {
                self.ahead.pop_front();
            }
        }
        while self.ahead.front().is_some_and(Bytes::is_empty) {
            self.ahead.pop_front();
        }
    }

    /// Frees the buffers' memory once everything was written.
    pub fn release_if_empty(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
        if self.ahead.is_empty() && self.ahead.capacity() > 0 {
            self.ahead = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail by panicking")]

    use midge_codec::{Decoder, Publish, QoS, TopicName};

    use super::*;

    fn template(payload: Vec<u8>, qos: QoS) -> PublishTemplate {
        let mut publish = Publish::new(TopicName::new("big/t").unwrap(), payload);
        publish.qos = qos;
        publish.packet_id = PacketId::new(1);
        publish.template(ProtocolVersion::V311).unwrap()
    }

    /// Writes the outbox through `io_slices`/`advance` in writes of at most `step` bytes, as a
    /// socket taking a little at a time would.
    fn drain_in_steps(out: &mut Outbox, step: usize) -> Vec<u8> {
        let mut wire = Vec::new();
        while !out.is_empty() {
            let mut slices = [IoSlice::new(&[]); 4];
            let count = out.io_slices(&mut slices);
            let mut taken = 0;
            for slice in &slices[..count] {
                let room = step - taken;
                let part = &slice[..slice.len().min(room)];
                wire.extend_from_slice(part);
                taken += part.len();
                if taken == step {
                    break;
                }
            }
            out.advance(taken);
        }
        wire
    }

    fn packets_of() -> (Outbox, usize) {
        let mut out = Outbox::new(ProtocolVersion::V311);
        out.send(&Packet::PingResp);
        let big = template(vec![7; SHARE_PAYLOAD_FROM * 3], QoS::AtLeastOnce);
        out.send_template(&big, PacketId::new(9), false);
        out.send(&Packet::PingResp);
        let small = template(vec![1; 10], QoS::AtMostOnce);
        out.send_template(&small, None, false);
        out.send_template(&big, PacketId::new(10), true);
        (out, big.len())
    }

    #[test]
    fn large_payloads_are_shared_not_copied_and_go_out_in_order() {
        let (out, big) = packets_of();
        let total = 2 + big + 2 + 19 + big;
        assert_eq!(out.len(), total);
        let mut slices = [IoSlice::new(&[]); 8];
        // [PINGRESP + head], payload, [PINGRESP + small + head], payload.
        assert_eq!(out.io_slices(&mut slices), 4);
        for step in [1, 7, 1000, total] {
            let (mut out, _) = packets_of();
            let mut wire = BytesMut::from(&drain_in_steps(&mut out, step)[..]);
            assert_eq!(out.len(), 0);
            let decoder = Decoder::new(ProtocolVersion::V311, u32::MAX);
            let mut ids = Vec::new();
            while let Some(packet) = decoder.decode(&mut wire).unwrap() {
                match packet {
                    Packet::Publish(p) => ids.push((p.packet_id.map(|id| id.get()), p.dup, p.payload.len())),
                    Packet::PingResp => ids.push((None, false, 0)),
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert_eq!(
                ids,
                [
                    (None, false, 0),
                    (Some(9), false, SHARE_PAYLOAD_FROM * 3),
                    (None, false, 0),
                    (None, false, 10),
                    (Some(10), true, SHARE_PAYLOAD_FROM * 3),
                ],
                "written {step} bytes at a time"
            );
            assert!(wire.is_empty());
        }
    }

    #[test]
    fn the_contiguous_buffer_holds_the_same_bytes() {
        let (mut shared, _) = packets_of();
        let wire = drain_in_steps(&mut shared, usize::MAX);
        let (mut flattened, _) = packets_of();
        assert_eq!(&flattened.buffer()[..], &wire[..]);
        assert_eq!(flattened.io_slices(&mut [IoSlice::new(&[]); 4]), 1);
    }
}
