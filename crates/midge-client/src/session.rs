//! The client's half of the session state (MQTT 5.0 §4.1): what survives a reconnect.
//!
//! It owns packet identifier allocation, the outbound QoS 1 and 2 messages awaiting
//! acknowledgement (with the caller waiting on each), pending SUBSCRIBE and UNSUBSCRIBE, and the
//! inbound QoS 2 packet identifiers awaiting PUBREL. Every collection is bounded: outbound
//! publications by the in-flight window, inbound QoS 2 by our Receive Maximum, and everything
//! by the 65,535 packet identifiers. It never touches a socket.

use std::collections::HashMap;

use midge_codec::properties::AckProperties;
use midge_codec::{PacketId, Publish, QoS, ReasonCode, SubAck, UnsubAck};
use rustc_hash::FxHashMap;
use tokio::sync::oneshot;

use crate::error::ClientError;

/// How a publication ended: for QoS 0 once written to the socket buffer, for QoS 1 with the
/// PUBACK, for QoS 2 with the PUBCOMP (or a PUBREC carrying a failure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishOutcome {
    /// The packet identifier used (none at QoS 0).
    pub packet_id: Option<PacketId>,
    /// The server's reason code; always Success before MQTT 5.
    pub reason_code: ReasonCode,
    /// MQTT 5 properties of the acknowledgement (reason string, user properties).
    pub properties: AckProperties,
}

/// Where an outbound QoS 1 or 2 publication is in its flow (§4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Awaiting {
    /// QoS 1 sent, waiting for PUBACK.
    Ack,
    /// QoS 2 sent, waiting for PUBREC.
    Received,
    /// PUBREL sent, waiting for PUBCOMP.
    Complete,
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T, ClientError>>;

/// One packet identifier's worth of outstanding work.
#[derive(Debug)]
pub(crate) enum Outstanding {
    Publish {
        publish: Publish,
        stage: Awaiting,
        /// Order of sending, so that a resumed session resends in the original order
        /// [MQTT-4.4.0-1].
        seq: u64,
        reply: Option<Reply<PublishOutcome>>,
    },
    Subscribe {
        packet: midge_codec::Subscribe,
        reply: Reply<SubAck>,
    },
    Unsubscribe {
        packet: midge_codec::Unsubscribe,
        reply: Reply<UnsubAck>,
    },
}

/// The client side of an MQTT session.
#[derive(Debug, Default)]
pub(crate) struct Session {
    last_id: u16,
    seq: u64,
    /// By packet identifier: ours, allocated in sequence, so a fast hash is safe here.
    outstanding: FxHashMap<u16, Outstanding>,
    /// Outbound QoS 1 and 2 publications in `outstanding`.
    publishes: usize,
    /// Inbound QoS 2 packet identifiers for which PUBREC was sent and PUBREL not yet received,
    /// with the message itself when it is passed on only at PUBREL (§4.3.3 method B).
    inbound_qos2: HashMap<u16, Option<Publish>>,
}

impl Session {
    /// QoS 1 and 2 publications awaiting acknowledgement.
    pub(crate) fn publishes_in_flight(&self) -> usize {
        self.publishes
    }

    /// A packet identifier not in use, or `None` when all 65,535 are.
    pub(crate) fn next_packet_id(&self) -> Option<PacketId> {
        if self.outstanding.len() >= usize::from(u16::MAX) {
            return None;
        }
        let mut id = self.last_id;
        loop {
            id = id.wrapping_add(1);
            if id == 0 {
                id = 1;
            }
            if !self.outstanding.contains_key(&id) {
                return PacketId::new(id);
            }
        }
    }

    /// Records a publication just sent; `publish` carries its packet identifier.
    pub(crate) fn insert_publish(&mut self, publish: Publish, reply: Option<Reply<PublishOutcome>>) {
        let Some(id) = publish.packet_id else { return };
        let stage = if publish.qos == QoS::ExactlyOnce {
            Awaiting::Received
        } else {
            Awaiting::Ack
        };
        self.last_id = id.get();
        self.seq += 1;
        self.publishes += 1;
        self.outstanding.insert(
            id.get(),
            Outstanding::Publish {
                publish,
                stage,
                seq: self.seq,
                reply,
            },
        );
    }

    /// Records a SUBSCRIBE or UNSUBSCRIBE just sent under `id`.
    pub(crate) fn insert_request(&mut self, id: PacketId, entry: Outstanding) {
        self.last_id = id.get();
        self.outstanding.insert(id.get(), entry);
    }

    /// The stage of an outbound publication, if `id` is one.
    pub(crate) fn publish_stage(&self, id: PacketId) -> Option<Awaiting> {
        match self.outstanding.get(&id.get()) {
            Some(Outstanding::Publish { stage, .. }) => Some(*stage),
            _ => None,
        }
    }

    /// Moves a QoS 2 publication to waiting for PUBCOMP.
    pub(crate) fn released(&mut self, id: PacketId) {
        if let Some(Outstanding::Publish { stage, .. }) = self.outstanding.get_mut(&id.get()) {
            *stage = Awaiting::Complete;
        }
    }

    /// Ends a publication's flow and tells its caller.
    pub(crate) fn complete_publish(&mut self, id: PacketId, outcome: PublishOutcome) {
        if let Some(Outstanding::Publish { reply, .. }) = self.outstanding.remove(&id.get()) {
            self.publishes -= 1;
            if let Some(reply) = reply {
                let _ = reply.send(Ok(outcome));
            }
        }
    }

    /// Takes the SUBSCRIBE or UNSUBSCRIBE waiting under `id`, if that is what it is.
    pub(crate) fn take_request(&mut self, id: PacketId) -> Option<Outstanding> {
        match self.outstanding.get(&id.get()) {
            Some(Outstanding::Subscribe { .. } | Outstanding::Unsubscribe { .. }) => {
                self.outstanding.remove(&id.get())
            }
            _ => None,
        }
    }

    /// True if an inbound QoS 2 PUBLISH with this identifier awaits PUBREL: a PUBLISH with it
    /// now is a redelivery.
    pub(crate) fn has_inbound_qos2(&self, id: PacketId) -> bool {
        self.inbound_qos2.contains_key(&id.get())
    }

    /// Records an inbound QoS 2 PUBLISH, holding the message if it is to be passed on at PUBREL.
    pub(crate) fn receive_qos2(&mut self, id: PacketId, held: Option<Publish>) {
        self.inbound_qos2.insert(id.get(), held);
    }

    /// Inbound QoS 2 messages awaiting PUBREL.
    pub(crate) fn inbound_qos2(&self) -> usize {
        self.inbound_qos2.len()
    }

    /// Forgets an inbound QoS 2 packet identifier on PUBREL: `None` if it was unknown, else the
    /// message held for delivery now, if any.
    pub(crate) fn release_inbound(&mut self, id: PacketId) -> Option<Option<Publish>> {
        self.inbound_qos2.remove(&id.get())
    }

    /// What to send again on a resumed session, in the original order: PUBLISH with DUP for
    /// messages not yet acknowledged (PUBREC), PUBREL for those past it, and pending SUBSCRIBE
    /// and UNSUBSCRIBE.
    pub(crate) fn resend(&self) -> Vec<Resend> {
        let mut publishes: Vec<(u64, Resend)> = Vec::new();
        let mut requests = Vec::new();
        for (&id, entry) in &self.outstanding {
            match entry {
                Outstanding::Publish {
                    publish, stage, seq, ..
                } => {
                    let resend = match stage {
                        Awaiting::Complete => match PacketId::new(id) {
                            Some(id) => Resend::PubRel(id),
                            None => continue,
                        },
                        _ => {
                            let mut again = publish.clone();
                            again.dup = true;
                            Resend::Publish(again)
                        }
                    };
                    publishes.push((*seq, resend));
                }
                Outstanding::Subscribe { packet, .. } => requests.push(Resend::Subscribe(packet.clone())),
                Outstanding::Unsubscribe { packet, .. } => requests.push(Resend::Unsubscribe(packet.clone())),
            }
        }
        publishes.sort_by_key(|(seq, _)| *seq);
        publishes.into_iter().map(|(_, r)| r).chain(requests).collect()
    }

    /// The server has no session for us: outbound publications fail with
    /// [`ClientError::SessionLost`] and inbound QoS 2 state is forgotten. Pending SUBSCRIBE and
    /// UNSUBSCRIBE stay, to be sent again.
    pub(crate) fn discard_publishes(&mut self) {
        let ids: Vec<u16> = self
            .outstanding
            .iter()
            .filter(|(_, e)| matches!(e, Outstanding::Publish { .. }))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(Outstanding::Publish {
                reply: Some(reply), ..
            }) = self.outstanding.remove(&id)
            {
                let _ = reply.send(Err(ClientError::SessionLost));
            }
        }
        self.publishes = 0;
        self.inbound_qos2.clear();
    }

    /// Fails everything outstanding with `error` (the client is ending).
    pub(crate) fn fail_all(&mut self, error: &ClientError) {
        for (_, entry) in self.outstanding.drain() {
            match entry {
                Outstanding::Publish { reply, .. } => {
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(error.duplicate()));
                    }
                }
                Outstanding::Subscribe { reply, .. } => {
                    let _ = reply.send(Err(error.duplicate()));
                }
                Outstanding::Unsubscribe { reply, .. } => {
                    let _ = reply.send(Err(error.duplicate()));
                }
            }
        }
        self.publishes = 0;
        self.inbound_qos2.clear();
    }
}

/// A packet to send again when a session resumes.
#[derive(Debug)]
pub(crate) enum Resend {
    Publish(Publish),
    PubRel(PacketId),
    Subscribe(midge_codec::Subscribe),
    Unsubscribe(midge_codec::Unsubscribe),
}

#[cfg(test)]
mod tests {
    use super::*;
    use midge_codec::TopicName;

    fn publish(id: u16, qos: QoS) -> Publish {
        let mut p = Publish::new(TopicName::try_from("t").unwrap(), "x");
        p.qos = qos;
        p.packet_id = PacketId::new(id);
        p
    }

    #[test]
    fn packet_ids_skip_those_in_use_and_wrap_past_zero() {
        let mut s = Session::default();
        assert_eq!(s.next_packet_id().map(PacketId::get), Some(1));
        s.insert_publish(publish(1, QoS::AtLeastOnce), None);
        s.insert_publish(publish(2, QoS::AtLeastOnce), None);
        assert_eq!(s.next_packet_id().map(PacketId::get), Some(3));
        s.last_id = u16::MAX;
        assert_eq!(s.next_packet_id().map(PacketId::get), Some(3));
    }

    #[test]
    fn resend_keeps_order_sets_dup_and_releases_past_pubrec() {
        let mut s = Session::default();
        s.insert_publish(publish(9, QoS::ExactlyOnce), None);
        s.insert_publish(publish(3, QoS::AtLeastOnce), None);
        s.released(PacketId::new(9).unwrap());
        let resend = s.resend();
        assert!(matches!(resend[0], Resend::PubRel(id) if id.get() == 9));
        assert!(
            matches!(&resend[1], Resend::Publish(p) if p.dup && p.packet_id.map(PacketId::get) == Some(3))
        );
    }

    #[test]
    fn inbound_qos2_redelivery_is_recognised() {
        let mut s = Session::default();
        let id = PacketId::new(5).unwrap();
        assert!(!s.has_inbound_qos2(id));
        s.receive_qos2(id, Some(publish(5, QoS::ExactlyOnce)));
        assert!(s.has_inbound_qos2(id));
        assert!(matches!(s.release_inbound(id), Some(Some(_))));
        assert!(s.release_inbound(id).is_none());
    }
}
