//! Every kind of bad configuration stops the broker with `FILE:LINE: directive: problem`; these
//! tests pin the exact messages users will read.

use std::fs;
use std::path::Path;

use super::{error, load_error, parse};
use crate::config::{Config, ConfigError, Location};

#[test]
fn bad_boolean() {
    assert_eq!(
        error("listener 1883\nallow_anonymous yes\n"),
        "test.conf:2: allow_anonymous: expected true or false, got \"yes\""
    );
    assert_eq!(
        error("persistence maybe"),
        "test.conf:1: persistence: expected true or false, got \"maybe\""
    );
    assert_eq!(
        error("set_tcp_nodelay TRUE"),
        "test.conf:1: set_tcp_nodelay: expected true or false, got \"TRUE\""
    );
}

#[test]
fn bad_number() {
    assert_eq!(
        error("max_queued_messages lots"),
        "test.conf:1: max_queued_messages: expected a whole number, got \"lots\""
    );
    assert_eq!(
        error("max_inflight_messages 20abc"),
        "test.conf:1: max_inflight_messages: expected a whole number, got \"20abc\""
    );
    assert_eq!(
        error("autosave_interval 1.5"),
        "test.conf:1: autosave_interval: expected a whole number, got \"1.5\""
    );
}

#[test]
fn number_out_of_range() {
    assert_eq!(
        error("max_inflight_messages 70000"),
        "test.conf:1: max_inflight_messages: expected a number from 0 to 65535, got \"70000\""
    );
    assert_eq!(
        error("max_packet_size 19"),
        "test.conf:1: max_packet_size: expected 0 (no limit) or a number from 20 to 4294967295, got \"19\"",
    );
    assert_eq!(
        error("message_size_limit 268435456"),
        "test.conf:1: message_size_limit: expected a number from 0 to 268435455, got \"268435456\""
    );
    assert_eq!(
        error("max_keepalive 99999999999999999999999"),
        "test.conf:1: max_keepalive: expected a number from 0 to 65535, got \"99999999999999999999999\""
    );
    assert_eq!(
        error("listener 1883\nmax_qos 3"),
        "test.conf:2: max_qos: expected a number from 0 to 2, got \"3\""
    );
    assert_eq!(
        error("sys_interval -1"),
        "test.conf:1: sys_interval: expected a number from 0 to 65535, got \"-1\""
    );
    assert_eq!(
        error("log_facility 8"),
        "test.conf:1: log_facility: expected a number from 0 to 7, got \"8\""
    );
    assert_eq!(
        error("log_format xml"),
        "test.conf:1: log_format: expected text or json, got \"xml\""
    );
    assert_eq!(error("user"), "test.conf:1: user: missing value");
    assert_eq!(
        error("max_connections 5000000000"),
        "test.conf:1: max_connections: expected a number from -1 to 4294967295, got \"5000000000\""
    );
}

#[test]
fn port_out_of_range() {
    assert_eq!(
        error("listener 70000"),
        "test.conf:1: listener: expected a port number from 0 to 65535, got \"70000\""
    );
    assert_eq!(
        error("listener -1"),
        "test.conf:1: listener: expected a port number from 0 to 65535, got \"-1\""
    );
    assert_eq!(
        error("listener mqtt"),
        "test.conf:1: listener: expected a port number from 0 to 65535, got \"mqtt\""
    );
    assert_eq!(
        error("port 65536"),
        "test.conf:1: port: expected a port number from 0 to 65535, got \"65536\""
    );
}

#[test]
fn missing_value() {
    assert_eq!(error("pid_file"), "test.conf:1: pid_file: missing value");
    assert_eq!(error("pid_file   \t "), "test.conf:1: pid_file: missing value");
    assert_eq!(error("listener"), "test.conf:1: listener: missing value");
    assert_eq!(
        error("max_inflight_messages   # twenty"),
        "test.conf:1: max_inflight_messages: missing value"
    );
    assert_eq!(
        error("listener 1883\nmax_connections"),
        "test.conf:2: max_connections: missing value"
    );
    assert_eq!(error("log_type"), "test.conf:1: log_type: missing value");
    assert_eq!(
        error("log_dest file"),
        "test.conf:1: log_dest: expected a path after \"file\", got \"\""
    );
    assert_eq!(
        error("persistence_location"),
        "test.conf:1: persistence_location: missing value"
    );
    assert_eq!(error("cafile"), "test.conf:1: cafile: missing value");
}

#[test]
fn unknown_choice() {
    assert_eq!(
        error("listener 1883\nprotocol coap\n"),
        "test.conf:2: protocol: expected mqtt, websockets, mqttsn or http_api, got \"coap\""
    );
    assert_eq!(
        error("listener 1883\nsocket_domain ipv5"),
        "test.conf:2: socket_domain: expected ipv4 or ipv6, got \"ipv5\""
    );
    assert_eq!(
        error("log_dest syslogd"),
        "test.conf:1: log_dest: expected stdout, stderr, file PATH, syslog, topic, dlt, android or none, got \
         \"syslogd\""
    );
    assert_eq!(
        error("log_type bogus"),
        "test.conf:1: log_type: expected error, warning, notice, information, debug, subscribe, unsubscribe, \
         websockets, all or none, got \"bogus\""
    );
    assert_eq!(
        error("listener 1883\naccept_protocol_versions 4, 6"),
        "test.conf:2: accept_protocol_versions: expected protocol levels 3, 4 or 5, got \"6\""
    );
}

#[test]
fn bad_duration() {
    let what = "expected a duration such as 3600, 12h, 14d, 2w, 6m or 1y";
    assert_eq!(
        error("persistent_client_expiration 2x"),
        format!("test.conf:1: persistent_client_expiration: {what}, got \"2x\"")
    );
    assert_eq!(
        error("persistent_client_expiration 0d"),
        format!("test.conf:1: persistent_client_expiration: {what}, got \"0d\"")
    );
    assert_eq!(
        error("persistent_client_expiration d"),
        format!("test.conf:1: persistent_client_expiration: {what}, got \"d\"")
    );
    assert_eq!(
        error("persistent_client_expiration 99999999999999y"),
        format!("test.conf:1: persistent_client_expiration: {what}, got \"99999999999999y\"")
    );
}

#[test]
fn listener_with_garbage_address() {
    assert_eq!(
        error("listener 1883 not@valid!"),
        "test.conf:1: listener: expected an IP address or host name, got \"not@valid!\""
    );
    assert_eq!(
        error("listener 1883 999.1.1.1"),
        "test.conf:1: listener: expected an IP address or host name, got \"999.1.1.1\""
    );
    assert_eq!(
        error("listener 1883 /run/mqtt.sock"),
        "test.conf:1: listener: expected an IP address or host name, got \"/run/mqtt.sock\""
    );
    assert_eq!(
        error("bind_address -"),
        "test.conf:1: bind_address: expected an IP address or host name, got \"-\""
    );
}

#[test]
fn duplicate_listener() {
    assert_eq!(
        error("listener 1883\nlistener 8883\nlistener 1883"),
        "test.conf:3: listener: listener 1883 is already defined at test.conf:1"
    );
    assert_eq!(
        error("listener 0 /run/a.sock\nlistener 0 /run/a.sock"),
        "test.conf:2: listener: listener 0 /run/a.sock is already defined at test.conf:1"
    );
    assert_eq!(
        error("port 1883\nlistener 1883"),
        "test.conf:1: port: listener 1883 is already defined at test.conf:2"
    );
}

#[test]
fn listener_options_that_need_a_listener() {
    assert_eq!(
        error("mount_point agents/"),
        "test.conf:1: mount_point: only valid after a `listener` line"
    );
    assert_eq!(
        error("listener_allow_anonymous true"),
        "test.conf:1: listener_allow_anonymous: only valid after a `listener` line"
    );
    assert_eq!(
        error("listener 1883\nmount_point agents/#"),
        "test.conf:2: mount_point: \"agents/#\" is not a valid topic name: [MQTT-3.3.2-2] topic name contains a \
         wildcard character"
    );
}

#[test]
fn per_listener_settings_after_a_security_option() {
    assert_eq!(
        error("allow_anonymous true\nper_listener_settings true\nlistener 1883"),
        "test.conf:2: per_listener_settings: must come before every security setting (the first one is at \
         test.conf:1)"
    );
}

#[test]
fn logging_file_twice() {
    assert_eq!(
        error("log_dest file /var/log/a.log\nlog_dest none\nlog_dest file /var/log/b.log"),
        "test.conf:3: log_dest: \"log_dest file\" is already set at test.conf:1"
    );
}

#[test]
fn bridge_structure() {
    assert_eq!(
        error("listener 1883\ntopic sensors/# out 1"),
        "test.conf:2: topic: only valid inside a bridge block, after a `connection NAME` line"
    );
    assert_eq!(error("connection"), "test.conf:1: connection: missing value");
    assert_eq!(
        error("connection a\naddress h\ntopic #\nconnection a"),
        "test.conf:4: connection: bridge \"a\" is already set at test.conf:1"
    );
    assert_eq!(
        error("connection a\naddress h\n"),
        "test.conf:1: connection: bridge \"a\" has no `topic` line"
    );
    assert_eq!(
        error("connection a\ntopic #\n"),
        "test.conf:1: connection: bridge \"a\" has no `address` line"
    );
    assert_eq!(
        error("connection a\naddress h:1883\naddresses h2\ntopic #"),
        "test.conf:3: addresses: the bridge's address list is already set at test.conf:2"
    );
    assert_eq!(
        error("connection a\naddress h:99999\ntopic #"),
        "test.conf:2: address: expected a port number from 1 to 65535, got \"99999\""
    );
    assert_eq!(
        error("connection a\naddress h\ntopic # out 3"),
        "test.conf:3: topic: expected a number from 0 to 2, got \"3\""
    );
    assert_eq!(
        error("connection a\naddress h\ntopic # sideways"),
        "test.conf:3: topic: expected in, out or both, got \"sideways\""
    );
    assert_eq!(
        error("connection a\naddress h\ntopic #\nrestart_timeout 30 5"),
        "test.conf:4: restart_timeout: the backoff cap (5) is lower than the base (30)"
    );
    assert_eq!(
        error("connection a\naddress h\ntopic #\nstart_type manual"),
        "test.conf:4: start_type: expected automatic, lazy or once, got \"manual\""
    );
}

/// Mosquitto's checks of a topic line's remapping (`bridge__add_topic`): prefixes are topic
/// names, a prefix and the pattern make a filter, and `""` as the pattern needs both prefixes.
#[test]
fn bridge_topic_remapping() {
    assert_eq!(
        error("connection a\naddress h\ntopic \"\" both 0 local/"),
        "test.conf:3: topic: invalid bridge remapping: a topic of \"\" needs both a local and a \
         remote prefix (it maps the one topic to the other)"
    );
    assert_eq!(
        error("connection a\naddress h\ntopic \"\" both 0 \"\" remote/"),
        "test.conf:3: topic: invalid bridge remapping: a topic of \"\" needs both a local and a \
         remote prefix (it maps the one topic to the other)"
    );
    assert_eq!(
        error("connection a\naddress h\ntopic # out 0 local/+/ remote/"),
        "test.conf:3: topic: expected a topic prefix without wildcards, or \"\", got \"local/+/\""
    );
    assert_eq!(
        error("connection a\naddress h\ntopic a/#/b out"),
        "test.conf:3: topic: expected a topic filter ([MQTT-4.7.1-1] '#' must be the last character \
         and occupy a whole level), got \"a/#/b\""
    );
    assert_eq!(
        error("connection a\naddress h\ntopic #x out 0 local"),
        "test.conf:3: topic: expected a topic filter ([MQTT-4.7.1-1] '#' must be the last character \
         and occupy a whole level), got \"#x\""
    );
    assert_eq!(
        error("connection a\naddress h\ntopic # out 0 a b"),
        "test.conf:3: topic: expected a prefix and pattern that make a topic filter ([MQTT-4.7.1-1] \
         '#' must be the last character and occupy a whole level), got \"a#\""
    );
    assert_eq!(
        error("connection a\naddress h\ntopic # out 0 a/ b/\nbridge_protocol_version mqttv6"),
        "test.conf:4: bridge_protocol_version: expected mqttv31, mqttv311 or mqttv50, got \"mqttv6\""
    );
    assert_eq!(
        error("connection a\naddress h\ntopic #\nnotification_topic a/+/state"),
        "test.conf:4: notification_topic: \"a/+/state\" is not a valid topic name: \
         [MQTT-3.3.2-2] topic name contains a wildcard character"
    );
}

#[test]
fn plugin_option_without_plugin() {
    assert_eq!(
        error("plugin_opt_config_file /etc/mosquitto/dynsec.json"),
        "test.conf:1: plugin_opt_config_file: only valid after a `plugin` line in the same file"
    );
    assert_eq!(
        error("plugin /usr/lib/dynsec.so\nplugin_opt_config_file"),
        "test.conf:2: plugin_opt_config_file: missing value"
    );
}

#[test]
fn error_inside_an_included_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.conf"), "listener 1884\n").unwrap();
    fs::write(
        dir.path().join("b.conf"),
        "# listener for the PLCs\nlistener 1885\nmax_qos 3\n",
    )
    .unwrap();
    fs::write(dir.path().join("c.conf"), "this line is never read\n").unwrap();
    let main = dir.path().join("mosquitto.conf");
    fs::write(
        &main,
        format!("listener 1883\ninclude_dir {}\n", dir.path().display()),
    )
    .unwrap();

    let error = load_error(&main);
    let b = dir.path().join("b.conf");
    assert_eq!(
        error.to_string(),
        format!(
            "{}:3: max_qos: expected a number from 0 to 2, got \"3\"",
            b.display()
        )
    );
    assert_eq!(error.location(), Some(&Location { file: b, line: 3 }));
}

#[test]
fn include_dir_that_does_not_exist() {
    assert_eq!(
        error("listener 1883\ninclude_dir /nonexistent/midge-conf.d"),
        "test.conf:2: include_dir: cannot open directory \"/nonexistent/midge-conf.d\": No such file or directory \
         (os error 2)"
    );
}

#[test]
fn included_entry_that_is_not_a_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("old.conf")).unwrap();
    let error = error(&format!("include_dir {}", dir.path().display()));
    let expected = format!(
        "{}: cannot read configuration file: ",
        dir.path().join("old.conf").display()
    );
    assert!(error.starts_with(&expected), "{error}");
}

#[test]
fn missing_config_file_names_the_path() {
    let error = load_error(Path::new("/nonexistent/mosquitto.conf"));
    assert_eq!(
        error.to_string(),
        "/nonexistent/mosquitto.conf: cannot read configuration file: No such file or directory (os error 2)"
    );
    assert!(matches!(error, ConfigError::Read { .. }));
    assert_eq!(error.location(), None);
}

#[test]
fn invalid_utf8_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.conf");
    // A Latin-1 comment is fine, as in Mosquitto; a Latin-1 value is not.
    fs::write(&path, b"listener 1883\n# caf\xe9\nauto_id_prefix caf\xe9-\n").unwrap();
    assert_eq!(
        load_error(&path).to_string(),
        format!("{}:3: line is not valid UTF-8", path.display())
    );
    fs::write(&path, b"listener 1883\n  # caf\xe9\n").unwrap();
    assert!(Config::load(&path).is_ok());
}

#[test]
fn bad_values_of_the_tls_and_limit_directives_name_the_line() {
    assert_eq!(
        error("listener 1883\nmax_connection_rate fast"),
        "test.conf:2: max_connection_rate: expected a whole number, got \"fast\""
    );
    assert_eq!(
        error("listener 8883\ntls_version tlsv9"),
        "test.conf:2: tls_version: expected tlsv1.3, tlsv1.2, tlsv1.1 or tlsv1, got \"tlsv9\""
    );
    assert_eq!(
        error("listener 8883\nrequire_certificate maybe"),
        "test.conf:2: require_certificate: expected true or false, got \"maybe\""
    );
    assert_eq!(
        error("listener 8883\ntls_keyform der"),
        "test.conf:2: tls_keyform: expected pem or engine, got \"der\""
    );
    assert_eq!(
        error("sys_interval soon"),
        "test.conf:1: sys_interval: expected a whole number, got \"soon\""
    );
}

#[test]
fn mqttsn_options_need_an_mqttsn_listener_on_udp_without_tls() {
    assert_eq!(
        error("listener 1883\nmqttsn_gateway_id 3\n"),
        "test.conf:2: mqttsn_gateway_id: only valid on a listener with `protocol mqttsn`"
    );
    assert_eq!(
        error("mqttsn_gateway_id 3\n"),
        "test.conf:1: mqttsn_gateway_id: only valid after a `listener` line"
    );
    assert_eq!(
        error("listener 0 /tmp/sn.sock\nprotocol mqttsn\n"),
        "test.conf:1: listener: an mqttsn listener needs a UDP port, not a Unix socket"
    );
    assert_eq!(
        error("listener 1884\nprotocol mqttsn\nmqttsn_predefined_topic 1 a/b\nmqttsn_predefined_topic 1 c\n"),
        "test.conf:4: mqttsn_predefined_topic: expected a topic id and a topic that no other \
         mqttsn_predefined_topic line of this listener has, got \"1 c\""
    );
    assert_eq!(
        error("listener 1884\nprotocol mqttsn\nmqttsn_predefined_topic 1 a/+\n"),
        "test.conf:3: mqttsn_predefined_topic: \"a/+\" is not a valid topic name: [MQTT-3.3.2-2] topic name contains a wildcard character"
    );
}

#[test]
fn bad_values_of_the_mqtt5_capability_and_redirection_directives_name_the_line() {
    for directive in [
        "wildcard_subscription_available",
        "subscription_identifier_available",
        "shared_subscription_available",
    ] {
        assert_eq!(
            error(&format!("listener 1883\n{directive} no")),
            format!("test.conf:2: {directive}: expected true or false, got \"no\"")
        );
        assert_eq!(
            error(directive),
            format!("test.conf:1: {directive}: missing value")
        );
    }
    assert_eq!(
        error("listener 1883\nresponse_information replies/#"),
        "test.conf:2: response_information: expected a topic prefix without wildcards, got \"replies/#\""
    );
    assert_eq!(
        error("response_information a/+/b"),
        "test.conf:1: response_information: expected a topic prefix without wildcards, got \"a/+/b\""
    );
    assert_eq!(
        error("response_information"),
        "test.conf:1: response_information: missing value"
    );
    assert_eq!(
        error("listener 1883\nserver_reference"),
        "test.conf:2: server_reference: missing value"
    );
    assert_eq!(
        error("listener 1883\nserver_reference other:1883\nserver_moved perhaps"),
        "test.conf:3: server_moved: expected true or false, got \"perhaps\""
    );
    // Alone, server_moved would leave the listener serving clients: a silent mistake.
    assert_eq!(
        error("listener 1883\nserver_moved true\nlistener 1884\nserver_reference b:1883"),
        "test.conf:2: server_moved: has no effect without `server_reference` on the same listener"
    );
    parse("listener 1883\nserver_moved true\nserver_reference b:1883\nlistener 1884\nserver_moved false");
}
