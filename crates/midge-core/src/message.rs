//! An application message as the broker holds it between receipt and delivery, and one
//! subscriber's copy of it.
//!
//! A [`Message`] is shared (`Arc`) by every queue it sits in; a [`Delivery`] adds what differs
//! per subscriber (QoS, RETAIN, subscription identifiers). The message keeps its expiry as a
//! deadline so that the remaining interval can be sent on (§3.3.2.3.3).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use bytestring::ByteString;
use midge_codec::properties::{PropertyBox, PublishProperties};
use midge_codec::{ProtocolVersion, Publish, PublishTemplate, QoS, SubscriptionId, TopicName};

/// A message accepted from a publisher (or a will), shared by all its deliveries.
#[derive(Debug)]
pub struct Message {
    /// The topic it was published to (never empty: aliases are resolved on receipt).
    pub topic: TopicName,
    /// The payload.
    pub payload: Bytes,
    /// The QoS it was published with.
    pub qos: QoS,
    /// The RETAIN flag it was published with.
    pub retain: bool,
    /// The properties forwarded to subscribers: Topic Alias and Subscription Identifiers removed.
    /// Boxed, and allocated only when there are any (most messages have none).
    pub properties: PropertyBox<PublishProperties>,
    /// When it stops being deliverable, from its Message Expiry Interval.
    pub expires_at: Option<Instant>,
    /// The publishing client, for No Local, where its session is not at hand when the
    /// message is routed (a will). A connected client's PUBLISH leaves it out: routing
    /// compares the publisher's session instead.
    pub publisher: Option<ByteString>,
    /// Encodings shared by every subscriber that gets the message unchanged, one per
    /// (3.x or 5.0, QoS, RETAIN): GUIDE §3 "encode once, send many".
    templates: Templates,
    /// Set by the first send: a shared encoding pays off only from the second receiver on
    /// (most messages have one), so the first is encoded straight into its outbox.
    sent: std::sync::atomic::AtomicBool,
    /// Its body in the store, once a persistent session has queued it (`persist.rs`).
    pub(crate) body: OnceLock<Arc<crate::persist::StoredBody>>,
}

impl Message {
    /// A message with no encodings cached yet.
    pub fn new(
        topic: TopicName,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        properties: impl Into<PropertyBox<PublishProperties>>,
        expires_at: Option<Instant>,
        publisher: Option<ByteString>,
    ) -> Self {
        Self {
            topic,
            payload,
            qos,
            retain,
            properties: properties.into(),
            expires_at,
            publisher,
            templates: Templates::default(),
            sent: std::sync::atomic::AtomicBool::new(false),
            body: OnceLock::new(),
        }
    }

    /// The PUBLISH for a receiver, as `Publish`: properties as forwarded, with the remaining
    /// expiry and the receiver's subscription identifiers.
    pub fn to_publish(
        &self,
        qos: QoS,
        retain: bool,
        subscription_ids: &[SubscriptionId],
        now: Instant,
    ) -> Publish {
        let mut publish = Publish::new(self.topic.clone(), self.payload.clone());
        publish.qos = qos;
        publish.retain = retain;
        publish.properties = self.properties.clone();
        publish.properties.subscription_identifiers = subscription_ids.to_vec();
        if let Some(deadline) = self.expires_at {
            let left = deadline.saturating_duration_since(now).as_secs();
            publish.properties.message_expiry_interval = Some(u32::try_from(left).unwrap_or(u32::MAX).max(1));
        }
        if qos != QoS::AtMostOnce {
            publish.packet_id = midge_codec::PacketId::new(1);
        }
        publish
    }

    /// Whether a receiver got this message before (the first call says false): the shared
    /// encoding is made only for a second receiver, unless the payload is large enough to be
    /// shared rather than copied ([`crate::outbox::SHARE_PAYLOAD_FROM`]).
    pub(crate) fn worth_a_template(&self) -> bool {
        self.payload.len() >= crate::outbox::SHARE_PAYLOAD_FROM
            || self.sent.swap(true, std::sync::atomic::Ordering::Relaxed)
    }

    /// The shared encoding for receivers that get the message without per-receiver properties.
    /// `None` for a message with an expiry, whose remaining interval differs per send.
    pub fn template(
        &self,
        version: ProtocolVersion,
        qos: QoS,
        retain: bool,
        now: Instant,
    ) -> Option<&PublishTemplate> {
        if self.expires_at.is_some() {
            return None;
        }
        let slot = u8::from(version.is_v5()) * 6 + qos.as_u8() * 2 + u8::from(retain);
        self.templates.get_or_init(slot, || {
            let publish = self.to_publish(qos, retain, &[], now);
            publish.template(version).ok()
        })
    }

    /// True once the expiry deadline has passed.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|deadline| now >= deadline)
    }

    /// The size counted against byte limits: topic and payload.
    pub fn size(&self) -> usize {
        self.topic.len() + self.payload.len()
    }
}

/// How many shapes a message can be sent in: (3.x or 5.0) × QoS × RETAIN.
const SHAPES: usize = 12;

/// A message's shared encodings, by shape. Nearly every message is sent in one shape only (its
/// subscribers speak one version at one QoS), so that one is held inline and the table for the
/// others is allocated only when a second shape is asked for: a table of twelve held inline
/// made every message a kilobyte larger, and allocating, zeroing and dropping it showed in
/// profiles.
#[derive(Debug, Default)]
struct Templates {
    /// The first shape asked for, and its encoding: boxed, since most messages are never
    /// encoded this way (one receiver), and a message moved into its `Arc` is copied whole.
    first: OnceLock<(u8, Option<Box<PublishTemplate>>)>,
    /// Every other shape.
    others: OnceLock<Box<[OnceLock<Option<PublishTemplate>>; SHAPES]>>,
}

impl Templates {
    /// The encoding for shape `slot`, made by `encode` the first time it is asked for.
    fn get_or_init(
        &self,
        slot: u8,
        encode: impl FnOnce() -> Option<PublishTemplate>,
    ) -> Option<&PublishTemplate> {
        let mut encode = Some(encode);
        let (first_slot, first) = self
            .first
            .get_or_init(|| (slot, encode.take().and_then(|encode| encode()).map(Box::new)));
        if *first_slot == slot {
            return first.as_deref();
        }
        let encode = encode?;
        self.others
            .get_or_init(Box::default)
            .get(usize::from(slot))?
            .get_or_init(encode)
            .as_ref()
    }
}

/// One subscriber's copy of a message.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The shared message.
    pub message: Arc<Message>,
    /// The QoS this subscriber gets it at.
    pub qos: QoS,
    /// The RETAIN flag this subscriber sees.
    pub retain: bool,
    /// MQTT 5 Subscription Identifiers of the subscriptions it matched.
    pub subscription_ids: Vec<SubscriptionId>,
    /// Its place in the session's stored queue, if it is stored.
    pub(crate) stored: Option<u64>,
    /// Settles a cluster's ticket once this copy is done with (acknowledged, or dropped):
    /// held by copies queued for the cluster's own session, whose acknowledgement says the
    /// other nodes have the message ([`crate::routes::DurableLog::forward_ticket`]).
    pub(crate) settles: Option<Arc<crate::routes::Settlement>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each shape gets its own encoding, whichever is asked for first, and asking again gives
    /// the same one back.
    #[test]
    fn every_shape_is_encoded_on_its_own_and_kept() {
        let message = Message::new(
            TopicName::try_from("a/b").unwrap_or_else(|_| unreachable!()),
            Bytes::from_static(b"payload"),
            QoS::ExactlyOnce,
            true,
            PublishProperties::default(),
            None,
            None,
        );
        let now = Instant::now();
        let shapes = [
            (ProtocolVersion::V5, QoS::AtLeastOnce, false),
            (ProtocolVersion::V311, QoS::AtMostOnce, true),
            (ProtocolVersion::V311, QoS::ExactlyOnce, false),
            (ProtocolVersion::V5, QoS::AtMostOnce, true),
        ];
        for _ in 0..2 {
            for (version, qos, retain) in shapes {
                let template = message.template(version, qos, retain, now);
                let head = template.map(|t| t.head(midge_codec::PacketId::new(7), false));
                let first = head.as_ref().and_then(|h| h.first().copied());
                // Fixed header: PUBLISH (3) with QoS in bits 1-2 and RETAIN in bit 0.
                let expected = 0x30 | (qos.as_u8() << 1) | u8::from(retain);
                assert_eq!(first, Some(expected), "{version:?} {qos:?} retain {retain}");
                let length_differs = matches!(version, ProtocolVersion::V5);
                let len = template.map(|t| t.len()).unwrap_or_default();
                let other = message
                    .template(
                        if length_differs {
                            ProtocolVersion::V311
                        } else {
                            ProtocolVersion::V5
                        },
                        qos,
                        retain,
                        now,
                    )
                    .map(|t| t.len())
                    .unwrap_or_default();
                assert_ne!(
                    len, other,
                    "3.1.1 and 5.0 encodings differ (property length byte)"
                );
            }
        }
    }
}
