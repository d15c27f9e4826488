//! From a bridge block to what its task runs with: the client identifiers Mosquitto would use,
//! the remote connection's options and addresses (TLS files read now, so a bad file stops the
//! start), the topic rules, and the notification topics. Made once at startup.

use std::time::Duration;

use midge_client::{ClientOptions, LastWill, TlsOptions, TlsSetupError};
use midge_codec::{ProtocolVersion, QoS, TopicName};

use super::connector::{BridgeConnector, SocketOptions};
use super::local::FORWARD_WINDOW;
use super::topics::TopicMap;
use crate::config::{Bridge, BridgeProtocol, StartType, TlsVersion};

/// Why a bridge cannot be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// Its TLS files cannot be used.
    #[error("bridge {bridge} ({at}): {source}")]
    Tls {
        /// The bridge's name.
        bridge: String,
        /// Its `connection` line.
        at: String,
        /// What is wrong.
        source: Box<TlsSetupError>,
    },
    /// Two bridges would share a session here.
    #[error(
        "bridge {bridge}: local_clientid {id:?} is also bridge {other}'s; set local_clientid for one of them"
    )]
    DuplicateLocalClientId {
        /// The bridge's name.
        bridge: String,
        /// The client identifier.
        id: String,
        /// The other bridge.
        other: String,
    },
    /// A client identifier makes a topic that is not valid.
    #[error("bridge {bridge}: {topic:?} is not a valid notification topic")]
    NotificationTopic {
        /// The bridge's name.
        bridge: String,
        /// The topic.
        topic: String,
    },
}

/// What the link's state is published to, and where.
#[derive(Debug, Clone)]
pub(crate) struct Notifications {
    /// `notification_topic`, or `$SYS/broker/connection/REMOTE_CLIENTID/state`.
    pub(crate) topic: TopicName,
    /// `notifications_local_only`.
    pub(crate) local_only: bool,
}

/// Everything a bridge task needs.
#[derive(Debug, Clone)]
pub struct BridgePlan {
    pub(crate) name: String,
    pub(crate) local_client_id: String,
    pub(crate) local_username: Option<String>,
    pub(crate) local_clean: bool,
    pub(crate) topics: TopicMap,
    pub(crate) client: ClientOptions,
    pub(crate) connector: BridgeConnector,
    pub(crate) socket: SocketOptions,
    pub(crate) round_robin: bool,
    pub(crate) start_type: StartType,
    pub(crate) threshold: u32,
    pub(crate) idle_timeout: Duration,
    pub(crate) notifications: Option<Notifications>,
    /// `$SYS/broker/connection/NAME/state`.
    pub(crate) state_topic: TopicName,
    pub(crate) attempt_unsubscribe: bool,
    pub(crate) outgoing_retain: bool,
    pub(crate) max_packet_size: Option<u32>,
}

impl BridgePlan {
    /// The bridge's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client identifier of its session in this broker.
    pub fn local_client_id(&self) -> &str {
        &self.local_client_id
    }

    /// The client identifier it gives the remote broker.
    pub fn remote_client_id(&self) -> &str {
        &self.client.client_id
    }
}

/// The plans of every bridge, with Mosquitto's default client identifiers (`HOSTNAME.NAME` on
/// the remote broker, `local.` and that here), which must not collide here.
pub fn plan_all(bridges: &[Bridge], hostname: &str) -> Result<Vec<BridgePlan>, PlanError> {
    let mut plans: Vec<BridgePlan> = Vec::with_capacity(bridges.len());
    for bridge in bridges {
        let plan = plan(bridge, hostname)?;
        if let Some(other) = plans
            .iter()
            .find(|other| other.local_client_id == plan.local_client_id)
        {
            return Err(PlanError::DuplicateLocalClientId {
                bridge: plan.name,
                id: other.local_client_id.clone(),
                other: other.name.clone(),
            });
        }
        plans.push(plan);
    }
    Ok(plans)
}

/// One bridge's plan.
pub fn plan(bridge: &Bridge, hostname: &str) -> Result<BridgePlan, PlanError> {
    let remote_client_id = bridge
        .remote_clientid
        .clone()
        .unwrap_or_else(|| format!("{hostname}.{}", bridge.name));
    let local_client_id = bridge
        .local_clientid
        .clone()
        .unwrap_or_else(|| format!("local.{remote_client_id}"));
    let notification_topic = bridge
        .notification_topic
        .clone()
        .unwrap_or_else(|| format!("$SYS/broker/connection/{remote_client_id}/state"));
    let topic_error = |topic: &str| PlanError::NotificationTopic {
        bridge: bridge.name.clone(),
        topic: topic.to_owned(),
    };
    let notifications = if bridge.notifications {
        Some(Notifications {
            topic: TopicName::new(notification_topic.as_str())
                .map_err(|_| topic_error(&notification_topic))?,
            local_only: bridge.notifications_local_only,
        })
    } else {
        None
    };
    let state_topic = format!("$SYS/broker/connection/{}/state", bridge.name);
    let state_topic = TopicName::new(state_topic.as_str()).map_err(|_| topic_error(&state_topic))?;

    let protocol = match bridge.protocol_version {
        BridgeProtocol::Mqtt31 => ProtocolVersion::V31,
        BridgeProtocol::Mqtt311 => ProtocolVersion::V311,
        BridgeProtocol::Mqtt5 => ProtocolVersion::V5,
    };
    let mut client = ClientOptions::default()
        .client_id(remote_client_id)
        .protocol(protocol)
        .clean_start(bridge.cleansession)
        .keep_alive(bridge.keepalive_interval);
    client.username = bridge.remote_username.clone();
    client.password = bridge.remote_password.clone().map(Into::into);
    if let Some(notifications) = notifications.as_ref().filter(|n| !n.local_only) {
        client.will = Some(LastWill {
            qos: QoS::AtLeastOnce,
            retain: true,
            ..LastWill::new(notifications.topic.as_str(), "0")
        });
    }
    if protocol.is_v5() {
        // The remote session must outlive the link for nothing to be lost across it.
        client.session_expiry_interval = if bridge.cleansession {
            None
        } else {
            Some(bridge.session_expiry_interval.unwrap_or(u32::MAX))
        };
        client.receive_maximum = bridge.receive_maximum;
        client.topic_alias_maximum = bridge.max_topic_alias;
    }
    client.max_inflight = FORWARD_WINDOW;
    client.bridge = bridge.try_private;
    client.connect_timeout = Duration::from_secs(10);
    client.event_capacity = 64;
    if bridge.start_type != StartType::Once {
        // Between a tenth of a second and a day: a longer wait is a typo, not a plan.
        let sane = |wait: Duration| wait.clamp(Duration::from_millis(100), Duration::from_secs(86_400));
        client.reconnect_delay = Some(sane(bridge.restart_timeout.base));
        client.reconnect_delay_max = bridge.restart_timeout.cap.map(sane);
    }

    let tls_error = |source| PlanError::Tls {
        bridge: bridge.name.clone(),
        at: bridge.at.to_string(),
        source: Box::new(source),
    };
    let tls = if bridge.tls.enabled() {
        let options = TlsOptions {
            ca_file: bridge.tls.cafile.clone(),
            ca_path: bridge.tls.capath.clone(),
            os_certificates: bridge.tls.use_os_certs,
            cert_file: bridge.tls.certfile.clone(),
            key_file: bridge.tls.keyfile.clone(),
            insecure: bridge.tls.insecure,
            min_version: match bridge.tls.version {
                Some(TlsVersion::V1_3) => midge_client::TlsVersion::Tls13,
                _ => midge_client::TlsVersion::Tls12,
            },
            ciphers: bridge.tls.ciphers.clone(),
            alpn: bridge
                .tls
                .alpn
                .iter()
                .map(|protocol| protocol.as_bytes().to_vec())
                .collect(),
        };
        Some(options.client_config().map_err(tls_error)?)
    } else {
        None
    };
    let socket = SocketOptions {
        bind: bridge.bind_address.clone(),
        keepalive: bridge.tcp_keepalive,
        user_timeout: bridge.tcp_user_timeout,
    };
    let connector =
        BridgeConnector::new(&bridge.name, &bridge.addresses, socket.clone(), tls).map_err(tls_error)?;

    Ok(BridgePlan {
        name: bridge.name.clone(),
        local_client_id,
        local_username: bridge.local_username.clone(),
        local_clean: bridge.local_clean_session(),
        topics: TopicMap::new(&bridge.topics),
        client,
        connector,
        socket,
        round_robin: bridge.round_robin,
        start_type: bridge.start_type,
        threshold: bridge.threshold,
        idle_timeout: bridge.idle_timeout,
        notifications,
        state_topic,
        attempt_unsubscribe: bridge.attempt_unsubscribe,
        outgoing_retain: bridge.outgoing_retain,
        max_packet_size: bridge.max_packet_size.map(|n| n.get()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn bridges(text: &str) -> Vec<Bridge> {
        match Config::parse_str(text, "test.conf") {
            Ok(config) => config.bridges,
            Err(error) => panic!("{error}"),
        }
    }

    #[test]
    fn client_identifiers_and_notification_topic_default_as_in_mosquitto() {
        let plans = match plan_all(&bridges("connection cloud\naddress h\ntopic #\n"), "gateway") {
            Ok(plans) => plans,
            Err(error) => panic!("{error}"),
        };
        let plan = &plans[0];
        assert_eq!(plan.remote_client_id(), "gateway.cloud");
        assert_eq!(plan.local_client_id(), "local.gateway.cloud");
        let notifications = plan.notifications.as_ref().map(|n| n.topic.as_str());
        assert_eq!(notifications, Some("$SYS/broker/connection/gateway.cloud/state"));
        assert_eq!(plan.state_topic.as_str(), "$SYS/broker/connection/cloud/state");
        let will = plan
            .client
            .will
            .as_ref()
            .map(|w| (w.topic.as_str(), &w.payload[..], w.retain));
        assert_eq!(
            will,
            Some(("$SYS/broker/connection/gateway.cloud/state", &b"0"[..], true))
        );
        assert!(plan.client.bridge, "try_private");
        assert!(!plan.client.clean_start);
    }

    #[test]
    fn two_bridges_may_not_share_a_local_session() {
        let text = "connection a\naddress h\ntopic #\nlocal_clientid same\n\
                    connection b\naddress h\ntopic #\nlocal_clientid same\n";
        let error = plan_all(&bridges(text), "host").map(|_| ());
        assert!(
            matches!(&error, Err(PlanError::DuplicateLocalClientId { id, .. }) if id == "same"),
            "{error:?}"
        );
    }

    #[test]
    fn a_missing_ca_file_stops_the_start() {
        let text = "connection a\naddress h:8883\ntopic #\nbridge_cafile /nonexistent/ca.crt\n";
        let error = plan_all(&bridges(text), "host").map(|_| ());
        assert!(matches!(error, Err(PlanError::Tls { .. })), "{error:?}");
    }

    #[test]
    fn mqtt5_bridges_keep_their_remote_session_unless_told_otherwise() {
        let text = "connection a\naddress h\ntopic #\nbridge_protocol_version mqttv50\n\
                    connection b\naddress h\ntopic #\nbridge_protocol_version mqttv50\ncleansession true\n";
        let plans = match plan_all(&bridges(text), "host") {
            Ok(plans) => plans,
            Err(error) => panic!("{error}"),
        };
        assert_eq!(plans[0].client.session_expiry_interval, Some(u32::MAX));
        assert_eq!(plans[1].client.session_expiry_interval, None);
    }
}
