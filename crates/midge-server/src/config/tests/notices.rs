//! What an accepted configuration tells the user: unknown directives, directives not supported
//! yet, and constructs that are valid but probably not what was meant.

use std::fs;

use super::{notices, parse};
use crate::config::{Location, Notice, NoticeKind};

#[test]
fn unknown_directive_is_a_warning_with_its_line() {
    let config = parse("listener 1883\nfoo_bar 1\n");
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(
        config.notices,
        [Notice {
            at: Location {
                file: "test.conf".into(),
                line: 2
            },
            directive: "foo_bar".to_owned(),
            kind: NoticeKind::Unknown { did_you_mean: None },
        }]
    );
    assert_eq!(
        config.notices[0].to_string(),
        "test.conf:2: foo_bar: unknown directive, ignored"
    );
}

#[test]
fn unknown_directive_close_to_a_known_one() {
    assert_eq!(
        notices("listener 1883\nmax_inflight_mesages 10\nLISTENER 1884\n"),
        [
            "test.conf:2: max_inflight_mesages: unknown directive, ignored (did you mean \"max_inflight_messages\"?)",
            "test.conf:3: LISTENER: unknown directive, ignored (did you mean \"listener\"?)",
        ]
    );
}

#[test]
fn autosave_has_no_effect_and_bridges_are_read_without_notices() {
    let text = "\
listener 8883
certfile /etc/mosquitto/certs/server.crt
persistence true
autosave_interval 600
connection backup
address 10.0.0.2:1883
topic # both 2
";
    assert_eq!(
        notices(text),
        [
            "test.conf:4: autosave_interval: ignored: Midge writes every change to its store before acknowledging it, so periodic saves are not needed",
        ]
    );
    let config = parse(text);
    assert!(config.listeners[0].not_supported_yet.is_empty());
    assert_eq!(
        config.listeners[0].tls.certfile.as_deref(),
        Some(std::path::Path::new("/etc/mosquitto/certs/server.crt"))
    );
}

#[test]
fn what_rustls_cannot_do_is_marked_to_be_refused() {
    assert_eq!(
        notices(
            "listener 8883\npsk_hint midge\ntls_keyform engine\ntls_keyform pem\ndhparamfile /etc/dh.pem\n"
        ),
        [
            "test.conf:2: psk_hint: cannot be honoured: rustls, Midge's TLS library, has no TLS-PSK; use certificates",
            "test.conf:3: tls_keyform: cannot be honoured: rustls, Midge's TLS library, has no OpenSSL engines; keep \
             keys in PEM files",
            "test.conf:5: dhparamfile: ignored: rustls uses only named (EC)DHE groups; DH parameters are not needed",
        ]
    );
}

#[test]
fn tls_options_are_read_into_their_listener() {
    let config = parse(
        "listener 8883\ncafile /ca.pem\ncapath /certs\ncertfile /s.pem\nkeyfile /s.key\ncrlfile /crl.pem\n\
         tls_version tlsv1.3\nciphers HIGH:!aNULL\nciphers_tls1.3 TLS_AES_128_GCM_SHA256\nrequire_certificate true\n\
         use_identity_as_username true\nuse_subject_as_username false\n",
    );
    let tls = &config.listeners[0].tls;
    assert!(tls.enabled());
    assert_eq!(tls.cafile.as_deref(), Some(std::path::Path::new("/ca.pem")));
    assert_eq!(tls.capath.as_deref(), Some(std::path::Path::new("/certs")));
    assert_eq!(tls.keyfile.as_deref(), Some(std::path::Path::new("/s.key")));
    assert_eq!(tls.crlfile.as_deref(), Some(std::path::Path::new("/crl.pem")));
    assert_eq!(tls.min_version, Some(crate::config::TlsVersion::V1_3));
    assert_eq!(tls.ciphers.as_deref(), Some("HIGH:!aNULL"));
    assert_eq!(tls.ciphers_tls13.as_deref(), Some("TLS_AES_128_GCM_SHA256"));
    assert!(tls.require_certificate && tls.use_identity_as_username && !tls.use_subject_as_username);
    assert!(config.notices.is_empty(), "{:?}", config.notices);
}

#[test]
fn security_and_other_areas() {
    assert_eq!(
        notices(
            "password_file /etc/mosquitto/passwd\nacl_file /etc/mosquitto/acl\nplugin /usr/lib/dynsec.so\n\
             plugin_opt_config_file /etc/dynsec.json\nuser mosquitto\nlog_dest syslog\nlog_dest topic\n\
             listener 1883\n"
        ),
        [
            "test.conf:3: plugin: not supported yet (security)",
            "test.conf:4: plugin_opt_config_file: not supported yet (security)",
            "test.conf:7: log_dest: not supported yet ($SYS)",
        ]
    );
}

#[test]
fn deprecated_and_removed_directives() {
    assert_eq!(
        notices("port 1883\nbind_address 127.0.0.1\nretry_interval 20\nallow_duplicate_messages false\n"),
        [
            "test.conf:1: port: deprecated: use `listener PORT` instead",
            "test.conf:2: bind_address: deprecated: use `listener PORT ADDRESS` instead",
            "test.conf:3: retry_interval: ignored: removed in Mosquitto 2.0",
            "test.conf:4: allow_duplicate_messages: ignored: deprecated by Mosquitto 2.0",
        ]
    );
}

#[test]
fn extra_text_after_a_value_is_reported_and_a_comment_is_not() {
    assert_eq!(
        notices("listener 1883 # the LAN\nallow_anonymous true false\nmax_inflight_messages 20 # twenty\n"),
        ["test.conf:2: allow_anonymous: extra text \"false\" ignored"]
    );
    // Mosquitto takes one destination per line: the second is ignored, not added.
    let config = parse("listener 1883\nlog_dest stdout stderr\n");
    assert!(config.log.log_dest.stdout);
    assert!(!config.log.log_dest.stderr);
    assert_eq!(config.notices.len(), 1);
}

#[test]
fn repeated_string_value_last_wins() {
    let config = parse("listener 1883\npid_file /run/a.pid\npid_file /run/b.pid\n");
    assert_eq!(config.pid_file, Some("/run/b.pid".into()));
    assert_eq!(
        config.notices.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["test.conf:3: pid_file: already set at test.conf:2; the last value wins"]
    );
    // In different scopes it is not a repeat.
    assert!(notices("listener 1883\nbind_interface eth0\nlistener 1884\nbind_interface eth1\n").is_empty());
}

#[test]
fn hash_in_a_value_that_runs_to_the_end_of_the_line() {
    let config = parse("listener 1883\npid_file /run/mosquitto.pid # the pid\n");
    assert_eq!(config.pid_file, Some("/run/mosquitto.pid # the pid".into()));
    assert_eq!(config.notices[0].kind, NoticeKind::HashInValue);
}

#[test]
fn listener_option_before_the_first_listener_creates_the_default_listener() {
    let config = parse("max_connections 100\nlistener 8883\n");
    let addresses: Vec<String> = config.listeners.iter().map(|l| l.address.to_string()).collect();
    assert_eq!(addresses, ["8883", "1883"]);
    assert_eq!(config.listeners[1].max_connections, Some(100));
    assert_eq!(config.listeners[0].max_connections, None);
    assert_eq!(
        config.notices.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "test.conf:1: max_connections: set before the first `listener` line, so it configures the default \
             listener, which is opened on port 1883 besides the other listeners (as in Mosquitto 2)"
        ]
    );
    // An option at its default value does not create it (as in Mosquitto).
    let config = parse("max_qos 2\nmax_connections -1\nlistener 8883\n");
    assert_eq!(config.listeners.len(), 1);
    assert!(config.notices.is_empty());
}

#[test]
fn include_dir_in_an_included_file_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("nested");
    fs::create_dir(&nested).unwrap();
    fs::write(nested.join("x.conf"), "listener 9999\n").unwrap();
    fs::write(
        dir.path().join("a.conf"),
        format!("include_dir {}\n", nested.display()),
    )
    .unwrap();
    let config = parse(&format!("listener 1883\ninclude_dir {}\n", dir.path().display()));
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(
        config.notices.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [format!(
            "{}:1: include_dir: ignored: include_dir is only read from the main configuration file (as in Mosquitto)",
            dir.path().join("a.conf").display()
        )]
    );
}

#[test]
fn per_listener_settings_cannot_be_turned_off() {
    let config = parse("per_listener_settings true\nper_listener_settings false\nlistener 1883\n");
    assert!(config.per_listener_settings);
    assert_eq!(
        config.notices.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "test.conf:2: per_listener_settings: ignored: per_listener_settings cannot be turned off once on (as in \
          Mosquitto)"
        ]
    );
}
