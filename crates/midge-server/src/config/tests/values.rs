//! How values are read through the whole parser: limits, booleans, durations, repeats, logging
//! sets, and the text layer (comments, blanks, line endings).

use std::num::{NonZeroU16, NonZeroU32, NonZeroU64};
use std::time::Duration;

use super::parse;
use crate::config::{LogDestinations, LogFormat, LogType, LogTypes};

#[test]
fn zero_or_negative_limits_mean_no_limit() {
    let config = parse(
        "max_inflight_messages 0\nmax_queued_messages -1\nmax_queued_bytes 0\nmax_inflight_bytes -5\n\
         max_keepalive 0\nmessage_size_limit 0\nglobal_max_connections -1\nmax_packet_size 0\n",
    );
    assert_eq!(config.max_inflight_messages, None);
    assert_eq!(config.max_queued_messages, None);
    assert_eq!(config.max_queued_bytes, None);
    assert_eq!(config.max_inflight_bytes, None);
    assert_eq!(config.max_keepalive, None);
    assert_eq!(config.message_size_limit, None);
    assert_eq!(config.global_max_connections, None);
    assert_eq!(config.max_packet_size, None);
}

#[test]
fn limits() {
    let config = parse(
        "max_inflight_messages 65535\nmax_queued_messages 1\nmax_inflight_bytes 65536\nmax_keepalive 10\n\
         max_packet_size 20\nmessage_size_limit 268435455\nglobal_max_clients 0\nglobal_max_connections 100\n",
    );
    assert_eq!(config.max_inflight_messages, NonZeroU16::new(65535));
    assert_eq!(config.max_queued_messages, NonZeroU32::new(1));
    assert_eq!(config.max_inflight_bytes, NonZeroU64::new(65536));
    assert_eq!(config.max_keepalive, NonZeroU16::new(10));
    assert_eq!(config.max_packet_size, NonZeroU32::new(20));
    assert_eq!(config.message_size_limit, NonZeroU32::new(268_435_455));
    assert_eq!(config.global_max_clients, Some(0));
    assert_eq!(config.global_max_connections, Some(100));
}

#[test]
fn the_last_value_wins() {
    let config = parse("max_inflight_messages 10\nretain_available false\nmax_inflight_messages 30\n");
    assert_eq!(config.max_inflight_messages, NonZeroU16::new(30));
    assert!(!config.retain_available);
    assert!(config.notices.is_empty());
}

#[test]
fn booleans_accept_mosquittos_1_and_0() {
    let config = parse(
        "queue_qos0_messages 1\nupgrade_outgoing_qos true\nlog_timestamp 0\nconnection_messages false\n",
    );
    assert!(config.queue_qos0_messages);
    assert!(config.upgrade_outgoing_qos);
    assert!(!config.log.log_timestamp);
    assert!(!config.log.connection_messages);
}

#[test]
fn persistent_client_expiration_units() {
    for (text, seconds) in [
        ("3600", 3600),
        ("1h", 3600),
        ("2d", 172_800),
        ("1w", 604_800),
        ("1m", 2_592_000),
        ("1y", 31_536_000),
    ] {
        let config = parse(&format!("persistent_client_expiration {text}"));
        assert_eq!(
            config.persistent_client_expiration,
            Some(Duration::from_secs(seconds)),
            "{text}"
        );
    }
}

#[test]
fn sys_interval_zero_disables_sys() {
    assert_eq!(parse("sys_interval 0").sys_interval, None);
    assert_eq!(
        parse("sys_interval 60").sys_interval,
        Some(Duration::from_secs(60))
    );
}

#[test]
fn log_sets_accumulate() {
    let config =
        parse("log_dest stdout\nlog_dest file /var/log/midge.log\nlog_type debug\nlog_type subscribe\n");
    assert_eq!(
        config.log.log_dest,
        LogDestinations {
            stdout: true,
            file: Some("/var/log/midge.log".into()),
            ..LogDestinations::NONE
        }
    );
    assert_eq!(
        config.log.log_type,
        [LogType::Debug, LogType::Subscribe].into_iter().collect()
    );

    let config = parse("log_dest stdout\nlog_dest none\nlog_type all\n");
    assert_eq!(config.log.log_dest, LogDestinations::NONE);
    assert_eq!(config.log.log_type, LogTypes::ALL);
    assert_eq!(config.log.log_type.iter().count(), LogType::ALL.len());

    let config = parse("log_type all\nlog_type none\nlog_type error\n");
    assert_eq!(config.log.log_type, [LogType::Error].into_iter().collect());
    assert_eq!(format!("{:?}", config.log.log_type), "{Error}");
}

#[test]
fn comments_blanks_tabs_and_line_endings() {
    let text = "# comment\r\n\r\n   # indented comment\n\t\n  listener\t1883   0.0.0.0 \r\n\tmax_connections 5 # five\n\
                log_timestamp_format %H:%M:%S %d/%m\n";
    let config = parse(text);
    assert_eq!(config.listeners[0].address.to_string(), "1883 0.0.0.0");
    assert_eq!(config.listeners[0].max_connections, Some(5));
    assert_eq!(config.log.log_timestamp_format.as_deref(), Some("%H:%M:%S %d/%m"));
    assert!(config.notices.is_empty());
}

#[test]
fn paths_keep_their_spaces() {
    let config = parse("pid_file   /var/run/my broker/midge.pid  \n");
    assert_eq!(config.pid_file, Some("/var/run/my broker/midge.pid".into()));
}

#[test]
fn service_settings() {
    let config = parse("");
    assert_eq!(config.user, "mosquitto");
    assert_eq!(config.log.log_format, LogFormat::Text);
    assert_eq!(config.log.log_facility, None);

    let config = parse("user midge\nlog_format json\nlog_facility 5\nlog_dest syslog\n");
    assert_eq!(config.user, "midge");
    assert_eq!(config.log.log_format, LogFormat::Json);
    assert_eq!(config.log.log_facility, Some(5));
    assert!(config.log.log_dest.syslog);
    assert!(config.notices.is_empty(), "{:?}", config.notices);
}

/// Every bridge directive Midge acts on, read into the typed bridge; Mosquitto's defaults for
/// the rest.
#[test]
fn bridge_block_values_and_defaults() {
    use midge_codec::QoS;

    use crate::config::{
        BridgeAddress, BridgeDirection, BridgeProtocol, RestartTimeout, StartType, TcpKeepalive, TlsVersion,
    };

    let config = parse(
        "listener 1883\n\
         connection edge\n\
         address 10.0.0.1 broker.example:8883 [::1]:1884\n\
         topic # out\n\
         topic \"\" both 2 local/state remote/state\n\
         topic cmd/+ in 1 \"\" site1/\n\
         round_robin true\n\
         bridge_protocol_version mqttv50\n\
         cleansession true\n\
         local_cleansession false\n\
         keepalive_interval 20\n\
         idle_timeout 5\n\
         start_type lazy\n\
         threshold 3\n\
         restart_timeout 2 20\n\
         clientid edge-1\n\
         local_clientid edge-local\n\
         username site1\n\
         password s3cret word\n\
         local_username bridge\n\
         notifications false\n\
         notification_topic edge/state\n\
         notifications_local_only true\n\
         try_private false\n\
         bridge_attempt_unsubscribe false\n\
         bridge_outgoing_retain false\n\
         bridge_max_packet_size 4096\n\
         bridge_bind_address 127.0.0.1\n\
         bridge_receive_maximum 5\n\
         bridge_session_expiry_interval 3600\n\
         bridge_max_topic_alias 0\n\
         bridge_tcp_keepalive 30 5 3\n\
         bridge_tcp_user_timeout 2500\n\
         bridge_cafile /etc/ca.crt\n\
         bridge_insecure true\n\
         bridge_tls_version tlsv1.3\n\
         connection plain\n\
         address h\n\
         topic a/#\n",
    );
    let [edge, plain] = &config.bridges[..] else {
        panic!("two bridges: {:?}", config.bridges);
    };
    assert_eq!(
        edge.addresses,
        [
            BridgeAddress {
                host: "10.0.0.1".into(),
                port: 1883
            },
            BridgeAddress {
                host: "broker.example".into(),
                port: 8883
            },
            BridgeAddress {
                host: "::1".into(),
                port: 1884
            },
        ]
    );
    assert_eq!(edge.addresses[2].to_string(), "[::1]:1884");
    assert_eq!(edge.topics.len(), 3);
    assert_eq!(edge.topics[0].direction, BridgeDirection::Out);
    assert_eq!(edge.topics[0].qos, QoS::AtMostOnce);
    assert_eq!(edge.topics[1].pattern, None);
    assert_eq!(edge.topics[1].local_filter(), "local/state");
    assert_eq!(edge.topics[1].remote_filter(), "remote/state");
    assert_eq!(edge.topics[2].local_prefix, None);
    assert_eq!(edge.topics[2].remote_filter(), "site1/cmd/+");
    assert!(edge.round_robin);
    assert_eq!(edge.protocol_version, BridgeProtocol::Mqtt5);
    assert!(edge.cleansession && !edge.local_clean_session());
    assert_eq!(edge.keepalive_interval, 20);
    assert_eq!(edge.idle_timeout, Duration::from_secs(5));
    assert_eq!(edge.start_type, StartType::Lazy);
    assert_eq!(edge.threshold, 3);
    assert_eq!(
        edge.restart_timeout,
        RestartTimeout {
            base: Duration::from_secs(2),
            cap: Some(Duration::from_secs(20))
        }
    );
    assert_eq!(edge.remote_clientid.as_deref(), Some("edge-1"));
    assert_eq!(edge.local_clientid.as_deref(), Some("edge-local"));
    assert_eq!(edge.remote_username.as_deref(), Some("site1"));
    assert_eq!(edge.remote_password.as_deref(), Some("s3cret word"));
    assert_eq!(edge.local_username.as_deref(), Some("bridge"));
    assert!(!edge.notifications && edge.notifications_local_only);
    assert_eq!(edge.notification_topic.as_deref(), Some("edge/state"));
    assert!(!edge.try_private && !edge.attempt_unsubscribe && !edge.outgoing_retain);
    assert_eq!(edge.max_packet_size, NonZeroU32::new(4096));
    assert_eq!(edge.bind_address.as_deref(), Some("127.0.0.1"));
    assert_eq!(edge.receive_maximum, NonZeroU16::new(5));
    assert_eq!(edge.session_expiry_interval, Some(3600));
    assert_eq!(edge.max_topic_alias, 0);
    assert_eq!(
        edge.tcp_keepalive,
        Some(TcpKeepalive {
            idle: 30,
            interval: 5,
            count: 3
        })
    );
    assert_eq!(edge.tcp_user_timeout, Some(Duration::from_millis(2500)));
    assert!(edge.tls.enabled() && edge.tls.insecure);
    assert_eq!(edge.tls.version, Some(TlsVersion::V1_3));

    // Mosquitto's defaults.
    assert_eq!(plain.protocol_version, BridgeProtocol::Mqtt311);
    assert!(!plain.cleansession && !plain.round_robin);
    assert_eq!(plain.keepalive_interval, 60);
    assert_eq!(plain.start_type, StartType::Automatic);
    assert_eq!(plain.restart_timeout, RestartTimeout::default());
    assert!(plain.notifications && plain.try_private && plain.attempt_unsubscribe && plain.outgoing_retain);
    assert_eq!(plain.max_topic_alias, 10);
    assert!(!plain.tls.enabled());
    assert_eq!(plain.remote_clientid, None);
}

#[test]
fn mqttsn_forwarders_are_off_unless_a_listener_says_so() {
    let config =
        parse("listener 1884\nprotocol mqttsn\nlistener 1885\nprotocol mqttsn\nmqttsn_forwarders true\n");
    let forwarders: Vec<bool> = config
        .listeners
        .iter()
        .map(|listener| listener.mqttsn.forwarders)
        .collect();
    assert_eq!(forwarders, [false, true]);
}

#[test]
fn nagle_is_off_unless_set_tcp_nodelay_false_turns_it_on() {
    // Unlike Mosquitto (false): Midge batches its own writes (docs/configuration.md).
    assert!(parse("").set_tcp_nodelay);
    assert!(parse("listener 1883").set_tcp_nodelay);
    assert!(!parse("set_tcp_nodelay false").set_tcp_nodelay);
    assert!(parse("set_tcp_nodelay true").set_tcp_nodelay);
}
