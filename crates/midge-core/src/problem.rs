//! Reason Strings on what the broker sends a client, and the two limits on them.
//!
//! Midge explains a refusal in words where MQTT 5 lets it: a refused CONNECT (CONNACK), a
//! refused PUBLISH (PUBACK, PUBREC), a PUBREL or PUBCOMP for an unknown packet identifier, a
//! refused subscription (SUBACK), an UNSUBSCRIBE of a subscription that did not exist (UNSUBACK),
//! and every DISCONNECT it sends. A Reason String is left out, the packet still sent, when:
//! - the client's CONNECT said Request Problem Information 0 and the packet is neither CONNACK,
//!   PUBLISH nor DISCONNECT [MQTT-3.1.2-29];
//! - it would make the packet larger than the client's Maximum Packet Size [MQTT-3.2.2-19],
//!   [MQTT-3.4.2-2], [MQTT-3.5.2-2], [MQTT-3.6.2-2], [MQTT-3.7.2-2], [MQTT-3.9.2-1],
//!   [MQTT-3.11.2-1], [MQTT-3.14.2-3].
//!
//! Midge adds no User Properties of its own to these packets, so the matching statements on
//! User Properties ([MQTT-3.2.2-20], [MQTT-3.4.2-3], ...) hold by construction; should one ever
//! be added it goes through here and is dropped by the same rules.
//!
//! Never: change a reason code, or hold a packet back. Reason Strings are written for people;
//! they never say more than the client may know (a failed password gets none).

use bytestring::ByteString;
use midge_codec::{Connect, Packet, PacketType, ProtocolVersion};

use crate::outbox::Outbox;

/// What one client's CONNECT allows the broker to add to its packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProblemInfo {
    version: ProtocolVersion,
    /// Request Problem Information (absent means 1).
    requested: bool,
    /// The client's Maximum Packet Size, if it set one.
    max_packet_size: Option<u32>,
}

impl ProblemInfo {
    /// What `connect` allows.
    pub(crate) fn of(connect: &Connect) -> Self {
        Self {
            version: connect.protocol,
            requested: connect.properties.request_problem_information.unwrap_or(true),
            max_packet_size: connect.properties.maximum_packet_size.map(|m| m.get()),
        }
    }

    /// Puts `packet` in the outbox with `reason` as its Reason String, where the rules above
    /// let it have one.
    pub(crate) fn send(&self, mut packet: Packet, reason: Option<&str>, out: &mut Outbox) {
        if self.version.is_v5()
            && let Some(reason) = reason
            && self.may_explain(packet.packet_type())
        {
            set_reason_string(&mut packet, Some(ByteString::from(reason)));
            if !self.fits(&packet) {
                set_reason_string(&mut packet, None);
            }
        }
        if !self.fits(&packet) {
            // Only a packet Midge would never build this large: a client whose Maximum Packet
            // Size cannot hold a bare acknowledgement. Sent anyway (the spec has no way to
            // drop an acknowledgement), and said.
            tracing::debug!(packet = ?packet.packet_type(), "packet exceeds the client's Maximum Packet Size even without a Reason String");
        }
        out.send(&packet);
    }

    fn may_explain(&self, packet: PacketType) -> bool {
        self.requested
            || matches!(
                packet,
                PacketType::ConnAck | PacketType::Disconnect | PacketType::Publish
            )
    }

    fn fits(&self, packet: &Packet) -> bool {
        match self.max_packet_size {
            None => true,
            Some(max) => packet
                .encoded_len(self.version)
                .is_ok_and(|len| len <= max as usize),
        }
    }
}

/// Sets (or with `None` clears, along with any User Properties) the Reason String of a packet
/// that can carry one; other packets are left alone.
fn set_reason_string(packet: &mut Packet, reason: Option<ByteString>) {
    let clear_users = reason.is_none();
    match packet {
        Packet::PubAck(ack) | Packet::PubRec(ack) | Packet::PubRel(ack) | Packet::PubComp(ack) => {
            ack.properties.reason_string = reason;
            if clear_users {
                ack.properties.user_properties.clear();
            }
        }
        Packet::SubAck(ack) => {
            ack.properties.reason_string = reason;
            if clear_users {
                ack.properties.user_properties.clear();
            }
        }
        Packet::UnsubAck(ack) => {
            ack.properties.reason_string = reason;
            if clear_users {
                ack.properties.user_properties.clear();
            }
        }
        Packet::ConnAck(ack) => {
            if reason.is_some() || ack.properties.reason_string.is_some() {
                ack.properties.reason_string = reason;
            }
            if clear_users && !ack.properties.user_properties.is_empty() {
                ack.properties.user_properties.clear();
            }
        }
        Packet::Disconnect(disconnect) => {
            if reason.is_some() || disconnect.properties.reason_string.is_some() {
                disconnect.properties.reason_string = reason;
            }
            if clear_users && !disconnect.properties.user_properties.is_empty() {
                disconnect.properties.user_properties.clear();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail by panicking")]

    use std::num::{NonZeroU16, NonZeroU32};

    use bytes::BytesMut;
    use midge_codec::{Ack, Decoder, Disconnect, ReasonCode};

    use super::*;

    fn client(requested: Option<bool>, max: Option<u32>) -> ProblemInfo {
        let mut connect = Connect::new(ProtocolVersion::V5, "c");
        connect.properties.request_problem_information = requested;
        connect.properties.maximum_packet_size = max.and_then(NonZeroU32::new);
        ProblemInfo::of(&connect)
    }

    fn sent(info: ProblemInfo, packet: Packet, reason: &str) -> Packet {
        let mut out = Outbox::new(ProtocolVersion::V5);
        info.send(packet, Some(reason), &mut out);
        let mut buf = BytesMut::from(&out.buffer()[..]);
        Decoder::new(ProtocolVersion::V5, u32::MAX)
            .decode(&mut buf)
            .unwrap()
            .unwrap()
    }

    fn puback() -> Packet {
        let mut ack = Ack::new(NonZeroU16::new(1).unwrap());
        ack.reason_code = ReasonCode::NotAuthorized;
        Packet::PubAck(ack)
    }

    fn reason_of(packet: &Packet) -> Option<&str> {
        match packet {
            Packet::PubAck(ack) => ack.properties.reason_string.as_deref(),
            Packet::Disconnect(d) => d.properties.reason_string.as_deref(),
            _ => None,
        }
    }

    #[test]
    fn mqtt_3_1_2_29_only_connack_publish_and_disconnect_explain_without_problem_information() {
        let quiet = client(Some(false), None);
        assert_eq!(reason_of(&sent(quiet, puback(), "no")), None);
        let disconnect = Packet::Disconnect(Disconnect::new(ReasonCode::ProtocolError));
        assert_eq!(reason_of(&sent(quiet, disconnect, "why")), Some("why"));
        assert_eq!(reason_of(&sent(client(None, None), puback(), "yes")), Some("yes"));
    }

    #[test]
    fn mqtt_3_4_2_2_a_reason_string_that_does_not_fit_is_left_out() {
        // A PUBACK with a reason code is 6 bytes; with a Reason String of n bytes, 6 + 3 + n.
        let reason = "0123456789";
        assert_eq!(
            reason_of(&sent(client(None, Some(19)), puback(), reason)),
            Some(reason)
        );
        let packet = sent(client(None, Some(18)), puback(), reason);
        assert_eq!(reason_of(&packet), None);
        let Packet::PubAck(ack) = packet else {
            panic!("{packet:?}")
        };
        assert_eq!(ack.reason_code, ReasonCode::NotAuthorized, "the ack still goes");
    }
}
