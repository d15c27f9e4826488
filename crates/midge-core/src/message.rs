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
use midge_codec::properties::PublishProperties;
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
    pub properties: PublishProperties,
    /// When it stops being deliverable, from its Message Expiry Interval.
    pub expires_at: Option<Instant>,
    /// The publishing client, for No Local.
    pub publisher: Option<ByteString>,
    /// Encodings shared by every subscriber that gets the message unchanged, one per
    /// (3.x or 5.0, QoS, RETAIN): GUIDE §3 "encode once, send many".
    templates: [OnceLock<Option<PublishTemplate>>; 12],
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
        properties: PublishProperties,
        expires_at: Option<Instant>,
        publisher: Option<ByteString>,
    ) -> Self {
        Self {
            topic,
            payload,
            qos,
            retain,
            properties,
            expires_at,
            publisher,
            templates: Default::default(),
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
        publish.properties = self.properties.clone().into();
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
        let slot = usize::from(version.is_v5()) * 6 + usize::from(qos.as_u8()) * 2 + usize::from(retain);
        self.templates
            .get(slot)?
            .get_or_init(|| {
                let publish = self.to_publish(qos, retain, &[], now);
                publish.template(version).ok()
            })
            .as_ref()
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
}
