//! The options of an MQTT-SN gateway listener (`listener PORT [ADDRESS]` with `protocol mqttsn`
//! and the `mqttsn_*` directives that follow it). Plain values: the predefined topic file is
//! named here and read when the listener is opened.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use midge_codec::TopicName;

use super::Location;

/// What an MQTT-SN listener does beyond the options every listener has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSnOptions {
    /// `mqttsn_gateway_id`: the GwId in GWINFO and ADVERTISE. Default: 1.
    pub gateway_id: u8,
    /// `mqttsn_advertise`: seconds between ADVERTISE messages; `None` (0, the default): none.
    pub advertise: Option<Duration>,
    /// `mqttsn_advertise_address`: where ADVERTISE goes. Default: the broadcast address on the
    /// listener's port.
    pub advertise_address: Option<SocketAddr>,
    /// `mqttsn_predefined_topic ID TOPIC`, in order: topic ids every client may use without
    /// REGISTER.
    pub predefined_topics: Vec<(u16, TopicName)>,
    /// `mqttsn_predefined_topic_file`: Paho's CSV of `ClientID,TopicName,TopicID` lines (`*`
    /// for every client).
    pub predefined_topic_file: Option<PathBuf>,
    /// `mqttsn_qos_neg1`: accept QoS -1 PUBLISH from clients that never connected. Default: off.
    pub qos_neg1: bool,
    /// `mqttsn_qos_neg1_username`: the user name QoS -1 messages are published as, for the
    /// access rules.
    pub qos_neg1_username: Option<String>,
    /// `mqttsn_username`: the user name every client of the listener gets (MQTT-SN CONNECT
    /// carries none), for `allow_anonymous` and the access rules.
    pub username: Option<String>,
    /// `mqttsn_max_packet_size`: larger datagrams from clients are dropped, larger messages to
    /// them are not sent; both are counted. Default: 1024.
    pub max_packet_size: u16,
    /// `mqttsn_max_registered_topics`: topic ids per client, predefined ones not counted.
    /// Default: 1024.
    pub max_registered_topics: u16,
    /// `mqttsn_max_sleep`: the longest sleep a DISCONNECT may ask for. Default: one day.
    pub max_sleep: Duration,
    /// `mqttsn_retry_interval`: how long the gateway waits for a REGACK, PUBACK, PUBREC or
    /// PUBCOMP before sending again (§6.13 Tretry). Default: 10 s.
    pub retry_interval: Duration,
    /// `mqttsn_retry_count`: how many times it sends again before it takes the client for lost
    /// (§6.13 Nretry). Default: 3.
    pub retry_count: u8,
    /// `mqttsn_forwarders`: serve clients behind MQTT-SN forwarders (encapsulated messages,
    /// §5.5), each (forwarder address, wireless node id) a client address of its own. Default:
    /// off, because one source address then speaks for any number of clients.
    pub forwarders: bool,
    /// Where the first `mqttsn_*` line of this listener is, for the error when the listener
    /// turns out not to speak MQTT-SN.
    pub(crate) first_option: Option<(Location, String)>,
}

impl Default for MqttSnOptions {
    fn default() -> Self {
        Self {
            gateway_id: 1,
            advertise: None,
            advertise_address: None,
            predefined_topics: Vec::new(),
            predefined_topic_file: None,
            qos_neg1: false,
            qos_neg1_username: None,
            username: None,
            max_packet_size: 1024,
            max_registered_topics: 1024,
            max_sleep: Duration::from_secs(86_400),
            retry_interval: Duration::from_secs(10),
            retry_count: 3,
            forwarders: false,
            first_option: None,
        }
    }
}
