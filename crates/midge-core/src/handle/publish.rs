//! PUBLISH from a client (§3.3, §4.3): checks, topic alias resolution, the retained store,
//! routing, and the acknowledgement that closes the sender's side of QoS 1 and 2.
//!
//! A PUBLISH above `max_qos` gets DISCONNECT 0x9B [MQTT-3.2.2-11]; a retained one while
//! `retain_available` is false, 0x9A [MQTT-3.2.2-14]. A refused message (access rules 0x87,
//! a payload that is not the UTF-8 its Payload Format Indicator says 0x99, `message_size_limit`
//! 0x97) is acknowledged with the reason and a Reason String, and goes nowhere.
//!
//! QoS 2 is delivered once on first receipt; the packet identifier is remembered until PUBREL,
//! so a retransmission (DUP) is acknowledged again without being routed again [MQTT-4.3.3-3].
//! With persistence on, the identifier and the stored copies are written as one batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use midge_codec::{Ack, Packet, PayloadFormat, Publish, QoS, ReasonCode};

use crate::access::{Access, Identity};
use crate::broker::Keep;
use crate::connection::{After, Connection};
use crate::message::Message;
use crate::outbox::Outbox;
use crate::stats::{DropReason, Stats};

impl Connection {
    pub(crate) fn handle_publish(&mut self, mut publish: Publish, now: Instant, out: &mut Outbox) -> After {
        let config = &self.broker.config;
        self.unreported.received(publish.payload.len());
        if publish.qos > config.max_qos {
            return self.violation(
                ReasonCode::QosNotSupported,
                "PUBLISH QoS above max_qos [MQTT-3.2.2-11]",
                out,
            );
        }
        if publish.retain && !config.retain_available {
            return self.violation(
                ReasonCode::RetainNotSupported,
                "retained PUBLISH while retain_available is false [MQTT-3.2.2-14]",
                out,
            );
        }
        if !publish.properties.subscription_identifiers.is_empty() {
            return self.violation(
                ReasonCode::ProtocolError,
                "PUBLISH from a client carries a Subscription Identifier [MQTT-3.3.4-6]",
                out,
            );
        }
        // Read before writing: a write through `properties` would allocate the (usually
        // absent) property set.
        if let Some(alias) = publish.properties.topic_alias {
            publish.properties.topic_alias = None;
            if alias.get() > config.max_topic_alias {
                return self.violation(
                    ReasonCode::TopicAliasInvalid,
                    "topic alias above the Topic Alias Maximum [MQTT-3.3.2-9]",
                    out,
                );
            }
            if publish.topic.is_empty() {
                match self.topic_aliases.get(&alias.get()) {
                    Some(topic) => publish.topic = topic.clone(),
                    None => {
                        return self.violation(
                            ReasonCode::ProtocolError,
                            "unknown topic alias (§3.3.2.3.4)",
                            out,
                        );
                    }
                }
            } else {
                self.topic_aliases.insert(alias.get(), publish.topic.clone());
            }
        }

        if self.mount_point.is_some() {
            match crate::broker::mounted_topic(self.mount_point.as_ref(), &publish.topic) {
                Some(topic) => publish.topic = topic,
                None => {
                    return self.violation(
                        ReasonCode::TopicNameInvalid,
                        "topic too long under the listener's mount_point",
                        out,
                    );
                }
            }
        }

        let packet_id = publish.packet_id;
        let qos = publish.qos;
        // A QoS 2 message's copies and the record of its packet identifier reach the store
        // together: after a crash, a retransmission is either recognised with every copy
        // stored, or routed afresh with none (`midge_store::journal`).
        let journal = self.broker.journal.clone();
        let _together = journal
            .as_ref()
            .filter(|_| qos == QoS::ExactlyOnce && packet_id.is_some())
            .map(|journal| journal.atomic());
        if qos == QoS::ExactlyOnce
            && let Some(id) = packet_id
        {
            let mut session = self.session.state.lock();
            if session.incoming_qos2.contains(&id.get()) {
                drop(session);
                out.send(&Packet::PubRec(Ack::new(id)));
                return After::Continue;
            }
            if self.version.is_v5()
                && session.incoming_qos2.len() >= usize::from(config.receive_maximum.max(1))
            {
                drop(session);
                return self.violation(
                    ReasonCode::ReceiveMaximumExceeded,
                    "more QoS 2 messages unacknowledged than Receive Maximum [MQTT-3.3.4-7]",
                    out,
                );
            }
            session.incoming_qos2.insert(id.get());
            if session.persistent
                && let Some(journal) = &self.broker.journal
            {
                out.require_durable(journal.put_incoming(&self.session.client_id, id.get()));
            }
        }

        let oversize =
            config.message_size_limit != 0 && publish.payload.len() > config.message_size_limit as usize;
        // A payload that is not the UTF-8 its Payload Format Indicator promises (§3.3.2.3.2):
        // refused with 0x99, as Mosquitto does (QoS 0: dropped).
        let not_utf8 = publish.properties.payload_format_indicator == Some(PayloadFormat::Utf8)
            && std::str::from_utf8(&publish.payload).is_err();
        let mut explanation = None;
        let mut drain_after = false;
        let reason = if !self.may(&publish.topic, Access::Write) {
            // 3.x: acknowledged and dropped, as Mosquitto does; 5.0: the ack says why.
            Stats::bump(&self.broker.stats().denied_write);
            tracing::debug!(client_id = %self.session.client_id, topic = %publish.topic, "PUBLISH denied by the access rules");
            explanation = Some("the access rules do not let this client publish to this topic");
            ReasonCode::NotAuthorized
        } else if not_utf8 {
            tracing::debug!(client_id = %self.session.client_id, topic = %publish.topic, "PUBLISH payload is not UTF-8 but its Payload Format Indicator says it is");
            explanation = Some("the payload is not UTF-8, as its Payload Format Indicator says it is");
            ReasonCode::PayloadFormatInvalid
        } else if oversize {
            explanation = Some("the payload is larger than the broker's message_size_limit");
            self.broker.stats().dropped(DropReason::MessageSizeLimit);
            self.session
                .state
                .lock()
                .drop_reports
                .get_or_insert_with(Box::default)
                .note(&self.session.client_id, DropReason::MessageSizeLimit, now);
            ReasonCode::QuotaExceeded
        } else {
            let message = self.accept(publish, now);
            let keep = Keep::retained_if(message.retain);
            // Kept for the cluster's log, in a cluster only.
            let logged = self.broker.durable_log().map(|_| message.clone());
            let routed = self
                .broker
                .publish_from(message, keep, now, &self.session, &mut self.route_cache);
            if let Some(message) = logged
                && let Some(log) = self.broker.durable_log()
            {
                // The acknowledgement also waits until the cluster keeps it: the log here, and
                // the nodes it goes to.
                if !routed.durable.is_empty() {
                    out.require_logged(log.append(&routed.durable, &message));
                }
                out.require_logged(routed.forward_ticket);
            }
            // Its own copy follows the acknowledgement at once, as other packets' answers do.
            drain_after = routed.reached_publisher;
            // The acknowledgement below waits until every stored copy is durable.
            out.require_durable(routed.durable_after);
            if !routed.congested.is_empty() {
                self.wait_for(routed.congested, now);
            }
            match routed.sessions {
                0 => ReasonCode::NoMatchingSubscribers,
                _ => ReasonCode::Success,
            }
        };
        if let Some(id) = packet_id {
            let mut ack = Ack::new(id);
            if self.version.is_v5() {
                ack.reason_code = reason;
            }
            if qos == QoS::ExactlyOnce {
                if reason.is_error() {
                    // An error PUBREC ends the exchange: no PUBREL follows (§4.3.3).
                    let mut session = self.session.state.lock();
                    session.incoming_qos2.remove(&id.get());
                    if session.persistent
                        && let Some(journal) = &self.broker.journal
                    {
                        out.require_durable(journal.delete_incoming(&self.session.client_id, id.get()));
                    }
                }
                self.send_explained(Packet::PubRec(ack), explanation, out);
            } else {
                self.send_explained(Packet::PubAck(ack), explanation, out);
            }
        }
        if drain_after {
            self.drain(now, out);
        }
        After::Continue
    }

    /// Whether the access rules in force (if any) let this client use `topic` for `access`.
    pub(crate) fn may(&self, topic: &str, access: Access) -> bool {
        self.broker.access_control_for(topic).rules().is_none_or(|rules| {
            let who = Identity {
                client_id: &self.session.client_id,
                username: self.username.as_deref(),
                listener: self.listener,
            };
            rules.allows(&who, topic, access)
        })
    }

    /// Turns an accepted PUBLISH into the shared message routed to subscribers.
    fn accept(&self, publish: Publish, now: Instant) -> Arc<Message> {
        // `handle_publish` took the Topic Alias out and refused Subscription Identifiers: the
        // properties go on as they came, still boxed (or still absent).
        debug_assert!(publish.properties.topic_alias.is_none());
        let expires_at = publish
            .properties
            .message_expiry_interval
            .map(|seconds| now + Duration::from_secs(u64::from(seconds)));
        Arc::new(Message::new(
            publish.topic,
            publish.payload,
            publish.qos,
            publish.retain,
            publish.properties,
            expires_at,
            // No Local compares the publisher's session (`Broker::publish_from`): no copy of
            // the client identifier per message.
            None,
        ))
    }
}
