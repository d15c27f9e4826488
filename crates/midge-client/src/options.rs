//! What a client asks for when it connects: [`ClientOptions`] and the [`LastWill`].
//!
//! Options are plain data, checked when the CONNECT is built ([`ClientOptions::connect_packet`]),
//! never half-applied. Defaults are those of Mosquitto's own clients (keep alive 60, clean
//! start, MQTT 3.1.1, 20 messages in flight), so the tools need to set only what their flags
//! change.

use std::fmt;
use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use midge_codec::properties::{ConnectProperties, WillProperties};
use midge_codec::{Connect, Packet, ProtocolVersion, QoS, TopicName, UserProperty, Will};

use crate::error::ClientError;

/// Which way a packet went, for [`PacketTrace`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Written to the server.
    Sent,
    /// Read from the server.
    Received,
}

/// Called with every packet sent and received, in order: how `midge pub -d` prints Mosquitto's
/// debug lines. It runs on the connection task, so it must be quick.
pub type PacketTrace = Arc<dyn Fn(Direction, &Packet) + Send + Sync>;

/// The Will Message the server publishes if the connection ends without a DISCONNECT
/// (MQTT 5.0 §3.1.2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    /// Will Topic.
    pub topic: String,
    /// Will Payload.
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will Retain.
    pub retain: bool,
    /// MQTT 5 will properties (delay, expiry, content type, user properties, ...).
    pub properties: WillProperties,
}

impl LastWill {
    /// A QoS 0, non-retained will with no properties.
    pub fn new(topic: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            payload: payload.into(),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: WillProperties::default(),
        }
    }
}

/// How to reach a server and what to ask of it.
#[derive(Clone)]
pub struct ClientOptions {
    /// Host name or address of the server.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Client Identifier; empty asks the server to assign one (3.1.1 needs clean start for that).
    pub client_id: String,
    /// Clean Start (5.0) / Clean Session (3.1, 3.1.1).
    pub clean_start: bool,
    /// Keep Alive in seconds; 0 turns keep-alive off.
    pub keep_alive: u16,
    /// Protocol version spoken.
    pub protocol: ProtocolVersion,
    /// User Name.
    pub username: Option<String>,
    /// Password (binary in MQTT, usually text).
    pub password: Option<Bytes>,
    /// Will Message.
    pub will: Option<LastWill>,
    /// MQTT 5 Session Expiry Interval in seconds (absent means 0).
    pub session_expiry_interval: Option<u32>,
    /// MQTT 5 Receive Maximum: QoS 1 and 2 messages we process at once. Also bounds how many
    /// QoS 2 deliveries from the server may be awaiting PUBREL.
    pub receive_maximum: Option<NonZeroU16>,
    /// Largest packet we accept, fixed header included; sent as Maximum Packet Size in MQTT 5.
    /// Larger packets from the server end the connection with an error.
    pub max_packet_size: Option<NonZeroU32>,
    /// MQTT 5 Topic Alias Maximum we accept from the server (0: none).
    pub topic_alias_maximum: u16,
    /// Other MQTT 5 CONNECT properties (user properties, request problem information,
    /// authentication method, ...). The fields above win over the same fields here.
    pub connect_properties: ConnectProperties,
    /// Our own cap on outbound QoS 1 and 2 messages awaiting acknowledgement; the server's
    /// Receive Maximum lowers it further.
    pub max_inflight: u16,
    /// How long to wait for the TCP connection and the CONNACK.
    pub connect_timeout: Duration,
    /// How long to wait for PINGRESP after a PINGREQ; defaults to the keep alive.
    pub ping_timeout: Option<Duration>,
    /// Reconnect after losing the connection, waiting this long between attempts. The session
    /// resumes when the server still has it (unacknowledged messages are sent again with DUP);
    /// `None` ends the client on the first loss.
    pub reconnect_delay: Option<Duration>,
    /// With a reconnect delay, grow the wait after each failed attempt up to this cap, with
    /// jitter (Mosquitto's bridge `restart_timeout BASE CAP`); back to the delay once connected.
    /// `None`: always the same delay.
    pub reconnect_delay_max: Option<Duration>,
    /// Mark the CONNECT as a Mosquitto bridge's (`try_private`): MQTT 3.1 and 3.1.1 set the
    /// protocol level's high bit, which Mosquitto and Midge answer by not sending the client
    /// its own messages back. A server that refuses that protocol level is tried again without
    /// it, and the client then keeps to the plain level. No effect with MQTT 5.
    pub bridge: bool,
    /// Capacity of the incoming event queue: when it is full the client stops reading from the
    /// socket, so a slow consumer slows the server down instead of growing memory.
    pub event_capacity: usize,
    /// Disable Nagle's algorithm on the TCP socket.
    pub nodelay: bool,
    /// TLS for [`Client::connect`](crate::Client::connect), the server's certificate checked
    /// against `host` (build one with [`TlsOptions::client_config`](crate::TlsOptions::client_config)).
    /// `None` is plain TCP. [`Client::connect_with`](crate::Client::connect_with) ignores it:
    /// wrap the connector in a [`TlsConnector`](crate::TlsConnector) instead.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Pass inbound QoS 2 messages on at PUBREL instead of at PUBLISH (§4.3.3 method B), as
    /// libmosquitto does. Each message waiting for its PUBREL is held in memory, up to
    /// `receive_maximum`.
    pub deliver_qos2_on_release: bool,
    /// Decode the next packet from the server only once the application has taken the
    /// previous event. With `event_capacity` 1 and a single-threaded runtime, the trace lines
    /// and the application's handling of each event then interleave in wire order (how
    /// `midge sub -d` prints like mosquitto_sub). Slower; off by default.
    pub one_event_at_a_time: bool,
    /// Observer of every packet (for debug output).
    pub trace: Option<PacketTrace>,
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("clean_start", &self.clean_start)
            .field("keep_alive", &self.keep_alive)
            .field("protocol", &self.protocol)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("will", &self.will)
            .field("session_expiry_interval", &self.session_expiry_interval)
            .field("receive_maximum", &self.receive_maximum)
            .field("max_packet_size", &self.max_packet_size)
            .field("max_inflight", &self.max_inflight)
            .field("reconnect_delay", &self.reconnect_delay)
            .field("reconnect_delay_max", &self.reconnect_delay_max)
            .field("bridge", &self.bridge)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            host: "localhost".into(),
            port: 1883,
            client_id: String::new(),
            clean_start: true,
            keep_alive: 60,
            protocol: ProtocolVersion::V311,
            username: None,
            password: None,
            will: None,
            session_expiry_interval: None,
            receive_maximum: None,
            max_packet_size: None,
            topic_alias_maximum: 0,
            connect_properties: ConnectProperties::default(),
            max_inflight: 20,
            connect_timeout: Duration::from_secs(30),
            ping_timeout: None,
            reconnect_delay: None,
            reconnect_delay_max: None,
            bridge: false,
            event_capacity: 256,
            nodelay: true,
            tls: None,
            deliver_qos2_on_release: false,
            one_event_at_a_time: false,
            trace: None,
        }
    }
}

impl ClientOptions {
    /// Options for `host:port` with every other setting at its default.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            ..Self::default()
        }
    }

    /// Sets the client identifier.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }

    /// Sets the protocol version.
    pub fn protocol(mut self, protocol: ProtocolVersion) -> Self {
        self.protocol = protocol;
        self
    }

    /// Sets Clean Start / Clean Session.
    pub fn clean_start(mut self, clean: bool) -> Self {
        self.clean_start = clean;
        self
    }

    /// Sets the keep alive, in seconds.
    pub fn keep_alive(mut self, seconds: u16) -> Self {
        self.keep_alive = seconds;
        self
    }

    /// Sets user name and password.
    pub fn credentials(mut self, username: impl Into<String>, password: impl Into<Bytes>) -> Self {
        self.username = Some(username.into());
        self.password = Some(password.into());
        self
    }

    /// Sets the will.
    pub fn will(mut self, will: LastWill) -> Self {
        self.will = Some(will);
        self
    }

    /// Sets the MQTT 5 session expiry interval.
    pub fn session_expiry_interval(mut self, seconds: u32) -> Self {
        self.session_expiry_interval = Some(seconds);
        self
    }

    /// Adds an MQTT 5 user property to CONNECT.
    pub fn user_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.connect_properties
            .user_properties
            .push(UserProperty::new(name.into(), value.into()));
        self
    }

    /// Reconnects after a loss, waiting `delay` between attempts.
    pub fn reconnect_delay(mut self, delay: Duration) -> Self {
        self.reconnect_delay = Some(delay);
        self
    }

    /// Sets the packet observer.
    pub fn trace(mut self, trace: PacketTrace) -> Self {
        self.trace = Some(trace);
        self
    }

    /// The Receive Maximum the server was told (MQTT 5 only; before it, the server was told
    /// nothing and only the protocol's 65,535 packet identifiers bound it).
    pub(crate) fn announced_receive_maximum(&self) -> u16 {
        if !self.protocol.is_v5() {
            return u16::MAX;
        }
        self.receive_maximum
            .or(self.connect_properties.receive_maximum)
            .map_or(u16::MAX, NonZeroU16::get)
    }

    /// The Topic Alias Maximum the server was told (0 before MQTT 5).
    pub(crate) fn announced_topic_alias_maximum(&self) -> u16 {
        if !self.protocol.is_v5() {
            return 0;
        }
        self.topic_alias_maximum
            .max(self.connect_properties.topic_alias_maximum.unwrap_or(0))
    }

    /// The largest packet we accept: ours, or the one set among the CONNECT properties.
    pub(crate) fn accepted_packet_size(&self) -> u32 {
        self.max_packet_size
            .or(self.connect_properties.maximum_packet_size)
            .map_or(midge_codec::PROTOCOL_MAX_PACKET_SIZE, NonZeroU32::get)
    }

    /// How long a PINGREQ may go unanswered.
    pub(crate) fn ping_timeout(&self) -> Duration {
        self.ping_timeout
            .unwrap_or(Duration::from_secs(u64::from(self.keep_alive)))
    }

    /// The CONNECT these options describe. `clean_start` is passed in because a reconnect
    /// that resumes a session sends it false whatever the first connect asked.
    pub fn connect_packet(&self, clean_start: bool) -> Result<Connect, ClientError> {
        let mut connect = Connect::new(self.protocol, self.client_id.as_str());
        connect.clean_start = clean_start;
        connect.keep_alive = self.keep_alive;
        connect.username = self.username.as_deref().map(Into::into);
        connect.password = self.password.clone();
        connect.bridge = self.bridge && !self.protocol.is_v5();
        if self.password.is_some() && self.username.is_none() && !self.protocol.is_v5() {
            return Err(ClientError::InvalidOptions(
                "a password needs a user name before MQTT 5",
            ));
        }
        if let Some(will) = &self.will {
            let topic = TopicName::new(will.topic.as_str()).map_err(|source| ClientError::InvalidTopic {
                topic: will.topic.clone(),
                reason: source.to_string(),
            })?;
            connect.will = Some(Will {
                topic,
                payload: will.payload.clone(),
                qos: will.qos,
                retain: will.retain,
                properties: if self.protocol.is_v5() {
                    will.properties.clone()
                } else {
                    WillProperties::default()
                },
            });
        }
        if self.protocol.is_v5() {
            let mut properties = self.connect_properties.clone();
            if self.session_expiry_interval.is_some() {
                properties.session_expiry_interval = self.session_expiry_interval;
            }
            if self.receive_maximum.is_some() {
                properties.receive_maximum = self.receive_maximum;
            }
            if self.max_packet_size.is_some() {
                properties.maximum_packet_size = self.max_packet_size;
            }
            if self.topic_alias_maximum > 0 {
                properties.topic_alias_maximum = Some(self.topic_alias_maximum);
            }
            connect.properties = properties;
        }
        Ok(connect)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_announced_in_connect_properties_count_and_only_in_mqtt5() {
        let mut options = ClientOptions::new("localhost", 1883).protocol(ProtocolVersion::V5);
        options.connect_properties.receive_maximum = NonZeroU16::new(3);
        options.connect_properties.topic_alias_maximum = Some(5);
        assert_eq!(options.announced_receive_maximum(), 3);
        assert_eq!(options.announced_topic_alias_maximum(), 5);
        let mut v311 = options.protocol(ProtocolVersion::V311);
        v311.receive_maximum = NonZeroU16::new(1);
        assert_eq!(
            v311.announced_receive_maximum(),
            u16::MAX,
            "a 3.1.1 server was told nothing"
        );
        assert_eq!(v311.announced_topic_alias_maximum(), 0);
    }

    #[test]
    fn connect_packet_carries_the_options() {
        let options = ClientOptions::new("localhost", 1883)
            .protocol(ProtocolVersion::V5)
            .client_id("c")
            .clean_start(false)
            .keep_alive(5)
            .credentials("u", "p")
            .session_expiry_interval(60)
            .user_property("k", "v")
            .will(LastWill::new("w", "gone"));
        let connect = options.connect_packet(false).unwrap();
        assert_eq!(connect.client_id, "c");
        assert!(!connect.clean_start);
        assert_eq!(connect.keep_alive, 5);
        assert_eq!(connect.properties.session_expiry_interval, Some(60));
        assert_eq!(
            connect.properties.user_properties,
            vec![UserProperty::new("k", "v")]
        );
        assert_eq!(connect.will.map(|w| w.payload), Some(Bytes::from_static(b"gone")));
        let bad = ClientOptions {
            will: Some(LastWill::new("w/#", "x")),
            ..ClientOptions::default()
        };
        assert!(matches!(
            bad.connect_packet(true),
            Err(ClientError::InvalidTopic { .. })
        ));
    }
}
