//! SUBSCRIBE and UNSUBSCRIBE (§3.8, §3.10): the subscription index and the session's own record
//! of its subscriptions, SUBACK/UNSUBACK, and the retained messages a new subscription receives.
//!
//! A subscription to a filter the session already has replaces it [MQTT-3.8.4-3]. What the
//! CONNACK said is unavailable (wildcards, Subscription Identifiers, shared subscriptions, by
//! configuration) is a Protocol Error from an MQTT 5 client, DISCONNECT 0xA2, 0xA1 or 0x9E;
//! a 3.x client gets 0x80 for that filter. Retained
//! messages follow the SUBACK, with RETAIN set (§3.3.1.3), as Retain Handling says; shared
//! subscriptions get none (§4.8.2).

use std::time::Instant;

use midge_codec::properties::AckProperties;
use midge_codec::{Packet, QoS, ReasonCode, RetainHandling, SubAck, Subscribe, UnsubAck, Unsubscribe};

use crate::access::Access;
use crate::connection::{After, Connection};
use crate::message::Delivery;
use crate::outbox::Outbox;
use crate::session::SessionSubscription;
use crate::stats::Stats;
use crate::topic_index::Subscriber;

impl Connection {
    pub(crate) fn handle_subscribe(&mut self, subscribe: Subscribe, now: Instant, out: &mut Outbox) -> After {
        let config = &self.broker.config;
        let id = subscribe.properties.subscription_identifier;
        if let Some(refusal) = self.unavailable(&subscribe, out) {
            return refusal;
        }
        let mut reason_codes = Vec::with_capacity(subscribe.subscriptions.len());
        // The Reason String of the SUBACK: why the first refused filter was refused.
        let mut explanation = None;
        let access = self.broker.access_control();
        for subscription in subscribe.subscriptions {
            let mut options = subscription.options;
            options.qos = options.qos.min(config.max_qos);
            if self.bridge {
                // What 3.1.1 cannot say, a bridge's CONNECT did (Mosquitto's `is_bridge`): none
                // of its own messages back, RETAIN as published.
                options.no_local = true;
                options.retain_as_published = true;
            }
            // A 3.x client has no DISCONNECT to hear why: a filter the broker does not
            // support gets the one failure code 3.1.1 has, 0x80 [MQTT-3.9.3-2].
            let unsupported = if !config.wildcard_subscriptions && subscription.filter.has_wildcards() {
                Some("wildcard subscriptions are not available on this broker")
            } else if !config.shared_subscriptions && subscription.filter.shared().is_some() {
                Some("shared subscriptions are not available on this broker")
            } else {
                None
            };
            if let Some(why) = unsupported {
                reason_codes.push(ReasonCode::UnspecifiedError);
                explanation.get_or_insert(why);
                continue;
            }
            let filter = match &self.mount_point {
                None => subscription.filter,
                Some(_) => {
                    match crate::broker::mounted_filter(self.mount_point.as_ref(), &subscription.filter) {
                        Some(filter) => filter,
                        None => {
                            reason_codes.push(if self.version.is_v5() {
                                ReasonCode::TopicFilterInvalid
                            } else {
                                ReasonCode::UnspecifiedError
                            });
                            explanation
                                .get_or_insert("the filter is too long under the listener's mount_point");
                            continue;
                        }
                    }
                }
            };
            if !self.may(filter.as_str(), Access::Subscribe) {
                Stats::bump(&self.broker.stats().denied_subscribe);
                tracing::debug!(client_id = %self.session.client_id, filter = %filter, "SUBSCRIBE denied by the access rules");
                // 3.1.1 has one failure code, 0x80 [MQTT-3.9.3-2]; 5.0 says why.
                reason_codes.push(if self.version.is_v5() {
                    ReasonCode::NotAuthorized
                } else {
                    ReasonCode::UnspecifiedError
                });
                explanation.get_or_insert("the access rules do not let this client subscribe to this filter");
                continue;
            }
            let wanted = |existed: bool| match options.retain_handling {
                RetainHandling::SendAtSubscribe => filter.shared().is_none(),
                RetainHandling::SendIfNew => !existed && filter.shared().is_none(),
                RetainHandling::DoNotSend => false,
            };
            // The retained store (every shard) is held from adding the subscription to queueing its retained
            // messages, so a retained publish at this moment arrives once and in order (see
            // `Broker::publish`). They reach the client after the SUBACK: the queue is drained
            // only once this packet is handled.
            {
                let store = self.broker.retained.read_all();
                let existed = self.broker.index.write().subscribe(
                    &filter,
                    Subscriber {
                        session: self.session.clone(),
                        options,
                        id,
                    },
                );
                if wanted(existed) {
                    let mut messages = Vec::new();
                    store.matching(filter.as_str(), &mut messages);
                    for message in messages.into_iter().filter(|m| !m.is_expired(now)) {
                        let qos = if config.upgrade_outgoing_qos {
                            options.qos
                        } else {
                            message.qos.min(options.qos)
                        };
                        let delivery = Delivery {
                            message,
                            qos,
                            retain: true,
                            subscription_ids: id.into_iter().collect(),
                            stored: None,
                            settles: None,
                        };
                        self.broker.deliver(&self.session, delivery, access.rules(), now);
                    }
                }
            }
            let remembered = SessionSubscription {
                filter: filter.clone(),
                options,
                id,
            };
            {
                let mut session = self.session.state.lock();
                if session.persistent
                    && let Some(journal) = &self.broker.journal
                {
                    out.require_durable(
                        journal.put_subscription(&self.session.client_id, &remembered.record()),
                    );
                }
                session
                    .subscriptions
                    .insert(filter.as_byte_string().clone(), remembered);
            }
            reason_codes.push(match options.qos {
                QoS::AtMostOnce => ReasonCode::Success,
                QoS::AtLeastOnce => ReasonCode::GrantedQos1,
                QoS::ExactlyOnce => ReasonCode::GrantedQos2,
            });
        }
        self.broker.checkpoint(&self.session);
        // The SUBSCRIBE's Packet Identifier [MQTT-3.8.4-2].
        let suback = Packet::SubAck(SubAck {
            packet_id: subscribe.packet_id,
            reason_codes,
            properties: AckProperties::default(),
        });
        self.send_explained(suback, explanation, out);
        After::Continue
    }

    /// An MQTT 5 SUBSCRIBE asking for what the CONNACK said is not available (`connack.rs`):
    /// a Protocol Error, DISCONNECT with the reason of §3.2.2.3.11 to §3.2.2.3.13. A
    /// Subscription Identifier (which 3.x cannot send) is checked first, then each filter.
    fn unavailable(&self, subscribe: &Subscribe, out: &mut Outbox) -> Option<After> {
        let config = &self.broker.config;
        if subscribe.properties.subscription_identifier.is_some() && !config.subscription_identifiers {
            return Some(self.violation(
                ReasonCode::SubscriptionIdentifiersNotSupported,
                "SUBSCRIBE with a Subscription Identifier, which this broker does not support (§3.2.2.3.12)",
                out,
            ));
        }
        if !self.version.is_v5() {
            return None;
        }
        for subscription in &subscribe.subscriptions {
            if !config.wildcard_subscriptions && subscription.filter.has_wildcards() {
                return Some(self.violation(
                    ReasonCode::WildcardSubscriptionsNotSupported,
                    "SUBSCRIBE with a wildcard, which this broker does not support (§3.2.2.3.11)",
                    out,
                ));
            }
            if !config.shared_subscriptions && subscription.filter.shared().is_some() {
                return Some(self.violation(
                    ReasonCode::SharedSubscriptionsNotSupported,
                    "SUBSCRIBE to a shared subscription, which this broker does not support (§3.2.2.3.13)",
                    out,
                ));
            }
        }
        None
    }

    pub(crate) fn handle_unsubscribe(&mut self, unsubscribe: Unsubscribe, out: &mut Outbox) -> After {
        let mut reason_codes = Vec::with_capacity(unsubscribe.filters.len());
        for filter in &unsubscribe.filters {
            let mounted = crate::broker::mounted_filter(self.mount_point.as_ref(), filter);
            let filter = mounted.as_ref().unwrap_or(filter);
            let existed = self.broker.index.write().unsubscribe(filter, &self.session);
            {
                let mut session = self.session.state.lock();
                if session.subscriptions.remove(filter.as_byte_string()).is_some()
                    && session.persistent
                    && let Some(journal) = &self.broker.journal
                {
                    out.require_durable(
                        journal.delete_subscription(&self.session.client_id, filter.as_str()),
                    );
                }
            }
            reason_codes.push(if existed {
                ReasonCode::Success
            } else {
                ReasonCode::NoSubscriptionExisted
            });
        }
        self.broker.checkpoint(&self.session);
        let explanation = reason_codes
            .contains(&ReasonCode::NoSubscriptionExisted)
            .then_some(
                "no subscription to that filter existed (filters are compared character by character)",
            );
        let unsuback = Packet::UnsubAck(UnsubAck {
            packet_id: unsubscribe.packet_id,
            reason_codes: if self.version.is_v5() {
                reason_codes
            } else {
                Vec::new()
            },
            properties: AckProperties::default(),
        });
        self.send_explained(unsuback, explanation, out);
        After::Continue
    }
}
