//! PUBACK, PUBREC, PUBREL and PUBCOMP from a client (§4.3.2, §4.3.3): the receiver's side of
//! QoS 1 and 2 towards the client, and the end of a QoS 2 exchange the client started.
//!
//! With persistence on, each step is written before the reply it leads to is sent: a PUBREL
//! only once the store knows the PUBREC came (so a restart resends PUBREL, not the message),
//! a PUBCOMP only once the released packet identifier is deleted (so a restart cannot take
//! a new message with that identifier for a retransmission and drop it).

use std::time::Instant;

use midge_codec::{Ack, Packet, ReasonCode};

use crate::connection::{After, Connection};
use crate::outbox::Outbox;
use crate::session::Awaiting;

impl Connection {
    pub(crate) fn handle_puback(&mut self, ack: &Ack, _now: Instant, _out: &mut Outbox) -> After {
        // An unknown identifier is ignored, as Mosquitto does: it may answer a message the
        // broker already gave up on.
        self.session.state.lock().complete(
            ack.packet_id,
            Awaiting::PubAck,
            &self.session.client_id,
            self.broker.journal.as_ref(),
        );
        After::Continue
    }

    pub(crate) fn handle_pubrec(&mut self, ack: &Ack, _now: Instant, out: &mut Outbox) -> After {
        let journal = self.broker.journal.as_ref();
        let mut session = self.session.state.lock();
        if ack.reason_code.is_error() {
            // The client refused the message: the exchange ends here (§4.3.3).
            session.complete(ack.packet_id, Awaiting::PubRec, &self.session.client_id, journal);
            return After::Continue;
        }
        let mut release = Ack::new(ack.packet_id);
        let mut stored = 0;
        if let Some(index) = session
            .inflight
            .iter()
            .position(|i| i.packet_id == ack.packet_id && i.state == Awaiting::PubRec)
        {
            if let Some(entry) = session.inflight.get_mut(index) {
                entry.state = Awaiting::PubComp;
            }
            if let Some(entry) = session.inflight.get(index) {
                stored = session.persist_inflight(&self.session.client_id, entry, journal);
            }
        } else if session.inflight_mut(ack.packet_id, Awaiting::PubComp).is_none() && self.version.is_v5() {
            // A PUBREC repeated after a reconnect finds the message already released; one for a
            // message never sent is answered "not found".
            release.reason_code = ReasonCode::PacketIdentifierNotFound;
        }
        drop(session);
        out.require_durable(stored);
        let explanation = (release.reason_code == ReasonCode::PacketIdentifierNotFound)
            .then_some("no message in flight with this packet identifier");
        self.send_explained(Packet::PubRel(release), explanation, out);
        After::Continue
    }

    pub(crate) fn handle_pubrel(&mut self, ack: &Ack, out: &mut Outbox) -> After {
        let (known, stored) = {
            let mut session = self.session.state.lock();
            let known = session.incoming_qos2.remove(&ack.packet_id.get());
            let stored = match &self.broker.journal {
                Some(journal) if known && session.persistent => {
                    journal.delete_incoming(&self.session.client_id, ack.packet_id.get())
                }
                _ => 0,
            };
            (known, stored)
        };
        let mut complete = Ack::new(ack.packet_id);
        let mut explanation = None;
        if !known && self.version.is_v5() {
            complete.reason_code = ReasonCode::PacketIdentifierNotFound;
            explanation = Some("no QoS 2 message awaits release with this packet identifier");
        }
        out.require_durable(stored);
        self.send_explained(Packet::PubComp(complete), explanation, out);
        After::Continue
    }

    pub(crate) fn handle_pubcomp(&mut self, ack: &Ack, _now: Instant, _out: &mut Outbox) -> After {
        self.session.state.lock().complete(
            ack.packet_id,
            Awaiting::PubComp,
            &self.session.client_id,
            self.broker.journal.as_ref(),
        );
        After::Continue
    }
}
