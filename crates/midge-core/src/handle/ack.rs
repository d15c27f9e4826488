//! PUBACK, PUBREC, PUBREL and PUBCOMP from a client (§4.3.2, §4.3.3): the receiver's side of
//! QoS 1 and 2 towards the client, and the end of a QoS 2 exchange the client started.

use std::time::Instant;

use midge_codec::{Ack, Packet, ReasonCode};

use crate::connection::{After, Connection};
use crate::outbox::Outbox;
use crate::session::Awaiting;

impl Connection {
    pub(crate) fn handle_puback(&mut self, ack: &Ack, _now: Instant, _out: &mut Outbox) -> After {
        // An unknown identifier is ignored, as Mosquitto does: it may answer a message the
        // broker already gave up on.
        self.session
            .state
            .lock()
            .complete(ack.packet_id, Awaiting::PubAck);
        After::Continue
    }

    pub(crate) fn handle_pubrec(&mut self, ack: &Ack, _now: Instant, out: &mut Outbox) -> After {
        let mut session = self.session.state.lock();
        if ack.reason_code.is_error() {
            // The client refused the message: the exchange ends here (§4.3.3).
            session.complete(ack.packet_id, Awaiting::PubRec);
            return After::Continue;
        }
        let mut release = Ack::new(ack.packet_id);
        if let Some(entry) = session.inflight_mut(ack.packet_id, Awaiting::PubRec) {
            entry.state = Awaiting::PubComp;
        } else if session.inflight_mut(ack.packet_id, Awaiting::PubComp).is_none() && self.version.is_v5() {
            // A PUBREC repeated after a reconnect finds the message already released; one for a
            // message never sent is answered "not found".
            release.reason_code = ReasonCode::PacketIdentifierNotFound;
        }
        drop(session);
        out.send(&Packet::PubRel(release));
        After::Continue
    }

    pub(crate) fn handle_pubrel(&mut self, ack: &Ack, out: &mut Outbox) -> After {
        let known = self
            .session
            .state
            .lock()
            .incoming_qos2
            .remove(&ack.packet_id.get());
        let mut complete = Ack::new(ack.packet_id);
        if !known && self.version.is_v5() {
            complete.reason_code = ReasonCode::PacketIdentifierNotFound;
        }
        out.send(&Packet::PubComp(complete));
        After::Continue
    }

    pub(crate) fn handle_pubcomp(&mut self, ack: &Ack, _now: Instant, _out: &mut Outbox) -> After {
        self.session
            .state
            .lock()
            .complete(ack.packet_id, Awaiting::PubComp);
        After::Continue
    }
}
