//! Whole configurations as people write them: a busy production file with includes, Debian's
//! stock file, and the minimal files of tutorials.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::{NonZeroU16, NonZeroU32, NonZeroU64};
use std::path::PathBuf;
use std::time::Duration;

use midge_codec::{ProtocolVersion, QoS};

use super::parse;
use crate::config::{
    BindAddress, BridgeAddress, BridgeDirection, BridgeTopic, Config, ListenerAddress, ListenerOrigin,
    Location, LogDestinations, LogType, LogTypes, Protocol, SecurityOptions, SocketDomain,
};

/// A production broker: plain MQTT on the LAN, a loopback listener for local agents with its own
/// topic tree, TLS and WebSocket listeners, a Unix socket, authentication, logging to a file, and
/// an `include_dir` with one more listener and a bridge.
const MAIN: &str = "\
# /etc/mosquitto/mosquitto.conf for the plant gateway.
# Local additions go in conf.d/.

pid_file /run/mosquitto/mosquitto.pid

persistence true
persistence_location /var/lib/mosquitto/

log_dest file /var/log/mosquitto/mosquitto.log
log_dest stdout
log_type error
log_type warning
log_type notice
log_timestamp_format %Y-%m-%dT%H:%M:%S
connection_messages true

# =================================================================
# Limits
# =================================================================
max_inflight_messages 40
max_queued_messages 5000
max_queued_bytes 10485760
max_packet_size 1048576
persistent_client_expiration 14d
max_keepalive 300
upgrade_outgoing_qos false
set_tcp_nodelay true
allow_zero_length_clientid false
auto_id_prefix gw-

# Plain MQTT for the LAN.
listener 1883 0.0.0.0
max_connections 500

# Loopback only, for the local agents, in their own topic tree.
listener 1884 127.0.0.1
max_qos 1
mount_point agents/

# TLS for the field devices.
listener 8883
cafile /etc/mosquitto/ca_certificates/ca.crt
certfile /etc/mosquitto/certs/server.crt
keyfile /etc/mosquitto/certs/server.key
require_certificate true

# Dashboards.
listener 9001
protocol websockets

listener 0 /run/mosquitto/mqtt.sock

password_file /etc/mosquitto/passwd
allow_anonymous false

include_dir CONF_D
";

const SENSORS: &str = "\
# IPv6 sensors log in with their serial number as username.
listener 1885 ::1
socket_domain ipv6
use_username_as_clientid true
max_topic_alias 32
sys_interval 30
";

const BRIDGE: &str = "\
# Forward the sensor readings to the cloud broker.
connection cloud
address mqtt.example.com:8883
topic sensors/# out 1 \"\" site1/
bridge_cafile /etc/mosquitto/ca_certificates/cloud.crt
remote_username site1
cleansession false
";

#[test]
fn production_file_with_includes() {
    let dir = tempfile::tempdir().unwrap();
    let conf_d = dir.path().join("conf.d");
    fs::create_dir(&conf_d).unwrap();
    fs::write(conf_d.join("20-bridge.conf"), BRIDGE).unwrap();
    fs::write(conf_d.join("10-sensors.conf"), SENSORS).unwrap();
    fs::write(conf_d.join("README"), "not a configuration file\n").unwrap();
    fs::write(conf_d.join("old.conf.dpkg-old"), "listener 1\n").unwrap();
    let main = dir.path().join("mosquitto.conf");
    fs::write(&main, MAIN.replace("CONF_D", &conf_d.display().to_string())).unwrap();

    let config = Config::load(&main).unwrap();

    let sensors = conf_d.join("10-sensors.conf");
    let bridge = conf_d.join("20-bridge.conf");
    assert_eq!(
        config.sources,
        vec![main.clone(), sensors.clone(), bridge.clone()]
    );
    assert!(!config.local_only);
    assert!(!config.per_listener_settings);

    // Broker-wide settings.
    assert_eq!(
        config.pid_file,
        Some(PathBuf::from("/run/mosquitto/mosquitto.pid"))
    );
    assert_eq!(config.max_inflight_messages, NonZeroU16::new(40));
    assert_eq!(config.max_inflight_bytes, None);
    assert_eq!(config.max_queued_messages, NonZeroU32::new(5000));
    assert_eq!(config.max_queued_bytes, NonZeroU64::new(10_485_760));
    assert_eq!(config.max_packet_size, NonZeroU32::new(1_048_576));
    assert_eq!(config.message_size_limit, None);
    assert_eq!(
        config.persistent_client_expiration,
        Some(Duration::from_secs(14 * 86_400))
    );
    assert_eq!(config.max_keepalive, NonZeroU16::new(300));
    assert!(!config.upgrade_outgoing_qos);
    assert!(config.set_tcp_nodelay);
    assert!(!config.queue_qos0_messages);
    assert!(config.retain_available);
    assert_eq!(config.sys_interval, Some(Duration::from_secs(30)));

    // Logging.
    let dest = LogDestinations {
        stdout: true,
        file: Some(PathBuf::from("/var/log/mosquitto/mosquitto.log")),
        ..LogDestinations::NONE
    };
    assert_eq!(config.log.log_dest, dest);
    assert_eq!(
        config.log.log_type,
        [LogType::Error, LogType::Warning, LogType::Notice]
            .into_iter()
            .collect()
    );
    assert!(config.log.log_timestamp);
    assert_eq!(
        config.log.log_timestamp_format.as_deref(),
        Some("%Y-%m-%dT%H:%M:%S")
    );
    assert!(config.log.connection_messages);

    // Listeners, in file order; security options are broker-wide and the same on each.
    let security = SecurityOptions {
        allow_anonymous: false,
        allow_zero_length_clientid: false,
        auto_id_prefix: "gw-".to_owned(),
        password_file: Some(PathBuf::from("/etc/mosquitto/passwd")),
        acl_file: None,
        scram_file: None,
    };
    let addresses: Vec<String> = config.listeners.iter().map(|l| l.address.to_string()).collect();
    assert_eq!(
        addresses,
        [
            "1883 0.0.0.0",
            "1884 127.0.0.1",
            "8883",
            "9001",
            "0 /run/mosquitto/mqtt.sock",
            "1885 ::1"
        ]
    );
    for listener in &config.listeners {
        assert_eq!(listener.security, security, "{}", listener.address);
    }
    let [lan, agents, tls, websockets, unix, sensors_listener] = &config.listeners[..] else {
        panic!("expected six listeners");
    };

    assert_eq!(
        lan.address,
        ListenerAddress::Tcp {
            port: 1883,
            bind: Some(BindAddress::Ip(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
        }
    );
    assert_eq!(
        lan.origin,
        ListenerOrigin::Declared(Location { file: main, line: 32 })
    );
    assert_eq!(lan.max_connections, Some(500));
    assert_eq!(lan.max_qos, QoS::ExactlyOnce);
    assert_eq!(lan.protocol, Protocol::Mqtt);
    assert!(lan.not_supported_yet.is_empty());

    assert_eq!(agents.max_qos, QoS::AtLeastOnce);
    assert_eq!(agents.mount_point.as_deref(), Some("agents/"));
    assert_eq!(agents.max_connections, None);

    assert_eq!(
        tls.address,
        ListenerAddress::Tcp {
            port: 8883,
            bind: None
        }
    );
    assert!(tls.not_supported_yet.is_empty());
    assert!(tls.tls.enabled());

    assert_eq!(websockets.protocol, Protocol::Websockets);
    assert!(websockets.not_supported_yet.is_empty());

    assert_eq!(
        unix.address,
        ListenerAddress::Unix {
            path: PathBuf::from("/run/mosquitto/mqtt.sock")
        }
    );
    assert_eq!(unix.port(), None);

    assert_eq!(
        sensors_listener.address,
        ListenerAddress::Tcp {
            port: 1885,
            bind: Some(BindAddress::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)))
        }
    );
    assert_eq!(
        sensors_listener.origin,
        ListenerOrigin::Declared(Location {
            file: sensors,
            line: 2
        })
    );
    assert_eq!(sensors_listener.socket_domain, Some(SocketDomain::Ipv6));
    assert!(sensors_listener.use_username_as_clientid);
    assert_eq!(sensors_listener.max_topic_alias, 32);
    assert!(sensors_listener.accepts(ProtocolVersion::V31));

    // Nothing for the broker to warn about.
    let notices: Vec<String> = config.notices.iter().map(ToString::to_string).collect();
    assert_eq!(notices, Vec::<String>::new());

    // The bridge from the included file, typed.
    let [cloud] = &config.bridges[..] else {
        panic!("one bridge: {:?}", config.bridges);
    };
    assert_eq!(cloud.name, "cloud");
    assert_eq!(
        cloud.at,
        Location {
            file: bridge,
            line: 2
        }
    );
    assert_eq!(
        cloud.addresses,
        [BridgeAddress {
            host: "mqtt.example.com".into(),
            port: 8883
        }]
    );
    assert_eq!(
        cloud.topics,
        [BridgeTopic {
            pattern: Some("sensors/#".into()),
            direction: BridgeDirection::Out,
            qos: QoS::AtLeastOnce,
            local_prefix: None,
            remote_prefix: Some("site1/".into()),
        }]
    );
    assert_eq!(cloud.topics[0].local_filter(), "sensors/#");
    assert_eq!(cloud.topics[0].remote_filter(), "site1/sensors/#");
    assert!(cloud.tls.enabled());
    assert_eq!(cloud.remote_username.as_deref(), Some("site1"));
    assert!(!cloud.cleansession && !cloud.local_clean_session());
}

/// Debian's `/etc/mosquitto/mosquitto.conf`: no listener, so local-only mode.
#[test]
fn debian_stock_file_is_local_only() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "# Place your local configuration in /etc/mosquitto/conf.d/\n\
         #\n\
         # A full description of the configuration file is at\n\
         # /usr/share/doc/mosquitto/examples/mosquitto.conf.example\n\
         \n\
         pid_file /run/mosquitto/mosquitto.pid\n\
         \n\
         persistence true\n\
         persistence_location /var/lib/mosquitto/\n\
         \n\
         log_dest file /var/log/mosquitto/mosquitto.log\n\
         \n\
         include_dir {}\n",
        dir.path().display()
    );
    let config = parse(&text);
    assert!(config.local_only);
    let addresses: Vec<String> = config.listeners.iter().map(|l| l.address.to_string()).collect();
    assert_eq!(addresses, ["1883 127.0.0.1", "1883 ::1"]);
    assert!(config.listeners.iter().all(|l| l.security.allow_anonymous));
    assert!(
        config
            .listeners
            .iter()
            .all(|l| l.origin == ListenerOrigin::LocalOnly)
    );
    assert_eq!(
        config.log.log_dest,
        LogDestinations {
            file: Some("/var/log/mosquitto/mosquitto.log".into()),
            ..LogDestinations::NONE
        }
    );
    assert!(config.notices.is_empty(), "{:?}", config.notices);
    assert!(config.persistence.enabled);
    assert_eq!(
        config.persistence.path(),
        std::path::Path::new("/var/lib/mosquitto/mosquitto.db")
    );
}

/// The file of every "secure your broker" tutorial.
#[test]
fn tutorial_file() {
    let config = parse("listener 1883\nallow_anonymous true\n");
    assert!(!config.local_only);
    let [listener] = &config.listeners[..] else {
        panic!("one listener")
    };
    assert_eq!(
        listener.address,
        ListenerAddress::Tcp {
            port: 1883,
            bind: None
        }
    );
    assert!(listener.security.allow_anonymous);
    assert!(config.notices.is_empty());
}

/// No file at all, and an empty one, give the same configuration.
#[test]
fn local_only_is_an_empty_file() {
    let mut empty = parse("");
    assert_eq!(empty.sources, [PathBuf::from("test.conf")]);
    empty.sources.clear();
    assert_eq!(Config::local_only(), empty);
    let config = Config::local_only();
    assert!(config.local_only);
    assert_eq!(config.max_inflight_messages, NonZeroU16::new(20));
    assert_eq!(config.max_queued_messages, NonZeroU32::new(1000));
    assert_eq!(config.max_keepalive, NonZeroU16::new(65535));
    assert_eq!(config.sys_interval, Some(Duration::from_secs(10)));
    assert_eq!(config.log.log_dest, LogDestinations::default());
    assert_eq!(config.log.log_type, LogTypes::DEFAULT);
    assert!(
        config
            .listeners
            .iter()
            .all(|l| l.security.auto_id_prefix == "auto-")
    );
}
