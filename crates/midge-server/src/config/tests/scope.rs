//! Where options take effect: listeners and the default listener, security options with and
//! without `per_listener_settings`, local-only mode, files read by `include_dir`.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use midge_codec::ProtocolVersion;

use super::parse;
use crate::config::{BindAddress, ListenerAddress, ListenerOrigin, Location, SocketDomain};

fn addresses(text: &str) -> Vec<String> {
    parse(text)
        .listeners
        .iter()
        .map(|l| l.address.to_string())
        .collect()
}

#[test]
fn security_options_are_broker_wide_by_default() {
    let config = parse("listener 1883\nlistener 1884\nallow_anonymous true\nauto_id_prefix x-\n");
    for listener in &config.listeners {
        assert!(listener.security.allow_anonymous);
        assert_eq!(listener.security.auto_id_prefix, "x-");
    }
}

#[test]
fn security_options_per_listener() {
    let config = parse(
        "per_listener_settings true\n\
         listener 1883\nallow_anonymous true\nauto_id_prefix lan-\n\
         listener 1884\nallow_zero_length_clientid false\n",
    );
    let [lan, other] = &config.listeners[..] else {
        panic!("two listeners")
    };
    assert!(lan.security.allow_anonymous);
    assert_eq!(lan.security.auto_id_prefix, "lan-");
    assert!(lan.security.allow_zero_length_clientid);
    assert!(!other.security.allow_anonymous);
    assert_eq!(other.security.auto_id_prefix, "auto-");
    assert!(!other.security.allow_zero_length_clientid);
}

#[test]
fn listener_overrides_of_mosquitto_2_1() {
    let config = parse(
        "allow_anonymous false\nlistener 1883\nlistener_allow_anonymous true\nlistener_auto_id_prefix lan-\n\
         listener 1884\n",
    );
    let [lan, other] = &config.listeners[..] else {
        panic!("two listeners")
    };
    assert!(lan.security.allow_anonymous);
    assert_eq!(lan.security.auto_id_prefix, "lan-");
    assert!(!other.security.allow_anonymous);
    assert_eq!(other.security.auto_id_prefix, "auto-");
}

#[test]
fn tls_applies_to_its_listener_only() {
    let config = parse("listener 1883\nlistener 8883\ncertfile /etc/ssl/server.crt\nlistener 1884\n");
    let tls: Vec<bool> = config.listeners.iter().map(|l| l.tls.enabled()).collect();
    assert_eq!(tls, [false, true, false]);
}

#[test]
fn password_file_is_per_listener_only_with_per_listener_settings() {
    let config = parse("per_listener_settings true\nlistener 1883\npassword_file /etc/pw\nlistener 1884\n");
    let files: Vec<_> = config
        .listeners
        .iter()
        .map(|l| l.security.password_file.clone())
        .collect();
    assert_eq!(files, [Some(PathBuf::from("/etc/pw")), None]);
    let config = parse("listener 1883\npassword_file /etc/pw\nacl_file /etc/acl\nlistener 1884\n");
    assert!(config.listeners.iter().all(|l| {
        l.security.password_file.as_deref() == Some(Path::new("/etc/pw"))
            && l.security.acl_file.as_deref() == Some(Path::new("/etc/acl"))
    }));
}

#[test]
fn local_only_mode() {
    let config = parse("# nothing but a comment\n");
    assert!(config.local_only);
    assert_eq!(
        config
            .listeners
            .iter()
            .map(|l| l.address.clone())
            .collect::<Vec<_>>(),
        [
            ListenerAddress::Tcp {
                port: 1883,
                bind: Some(BindAddress::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)))
            },
            ListenerAddress::Tcp {
                port: 1883,
                bind: Some(BindAddress::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)))
            },
        ]
    );
    assert!(config.listeners.iter().all(|l| l.security.allow_anonymous));
}

#[test]
fn local_only_mode_honours_an_explicit_allow_anonymous_false() {
    let config = parse("allow_anonymous false\npassword_file /etc/mosquitto/passwd\n");
    assert!(config.local_only);
    assert!(config.listeners.iter().all(|l| !l.security.allow_anonymous));
}

#[test]
fn local_only_mode_keeps_listener_options_on_loopback() {
    let config = parse("max_connections 10\nsocket_domain ipv4\n");
    assert!(config.local_only);
    let [listener] = &config.listeners[..] else {
        panic!("one listener")
    };
    assert_eq!(listener.address.to_string(), "1883 127.0.0.1");
    assert_eq!(listener.max_connections, Some(10));
    assert_eq!(listener.socket_domain, Some(SocketDomain::Ipv4));
    assert!(config.notices.is_empty());
}

#[test]
fn port_and_bind_address_configure_the_default_listener() {
    let config = parse("port 1884\n");
    assert!(!config.local_only);
    let [listener] = &config.listeners[..] else {
        panic!("one listener")
    };
    assert_eq!(
        listener.address,
        ListenerAddress::Tcp {
            port: 1884,
            bind: None
        }
    );
    assert_eq!(
        listener.origin,
        ListenerOrigin::Default(Location {
            file: "test.conf".into(),
            line: 1
        })
    );
    assert!(!listener.security.allow_anonymous);

    assert_eq!(addresses("bind_address 127.0.0.1\n"), ["1883 127.0.0.1"]);
    assert_eq!(
        addresses("max_connections 5\nport 1884\nbind_address ::1\n"),
        ["1884 ::1"]
    );
    assert_eq!(
        parse("max_connections 5\nport 1884\n").listeners[0].max_connections,
        Some(5)
    );
    // The default listener comes after the declared ones, as in Mosquitto.
    assert_eq!(addresses("port 1884\nlistener 8883\n"), ["8883", "1884"]);
    assert_eq!(addresses("listener 8883\nport 1884\n"), ["8883", "1884"]);
    // After a `listener` line, options go to that listener, even after `port`.
    let config = parse("listener 8883\nport 1884\nmax_connections 5\n");
    assert_eq!(config.listeners[0].max_connections, Some(5));
    assert_eq!(config.listeners[1].max_connections, None);
}

#[test]
fn each_file_starts_with_the_default_listener() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("a.conf"),
        "max_qos 1\nlistener 1884\nmax_connections 7\n",
    )
    .unwrap();
    let config = parse(&format!(
        "listener 1882\ninclude_dir {}\nmax_topic_alias 3\n",
        dir.path().display()
    ));
    // `max_qos 1` in a.conf comes before a.conf's first listener: it configures the default
    // listener, which is therefore opened; the main file's listener keeps its current scope
    // after the include.
    let summary: Vec<(String, u8, Option<u32>, u16)> = config
        .listeners
        .iter()
        .map(|l| {
            (
                l.address.to_string(),
                l.max_qos as u8,
                l.max_connections,
                l.max_topic_alias,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("1882".to_owned(), 2, None, 3),
            ("1884".to_owned(), 2, Some(7), 10),
            ("1883".to_owned(), 1, None, 10)
        ]
    );
    assert!(matches!(config.listeners[2].origin, ListenerOrigin::Default(_)));
}

#[test]
fn listener_addresses() {
    assert_eq!(
        parse("listener 1883 ::1").listeners[0].address,
        ListenerAddress::Tcp {
            port: 1883,
            bind: Some(BindAddress::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)))
        }
    );
    assert_eq!(
        parse("listener 1883 [::1]").listeners[0].address,
        ListenerAddress::Tcp {
            port: 1883,
            bind: Some(BindAddress::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)))
        }
    );
    assert_eq!(
        parse("listener 1883 broker.local").listeners[0].address,
        ListenerAddress::Tcp {
            port: 1883,
            bind: Some(BindAddress::Host("broker.local".to_owned()))
        }
    );
    // Port 0: any free TCP port with an IP address or nothing, a Unix socket with a path.
    assert_eq!(
        parse("listener 0 127.0.0.1").listeners[0].address,
        ListenerAddress::Tcp {
            port: 0,
            bind: Some(BindAddress::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)))
        }
    );
    assert_eq!(
        parse("listener 0").listeners[0].address,
        ListenerAddress::Tcp { port: 0, bind: None }
    );
    assert_eq!(
        parse("listener 0 /run/mosquitto.sock").listeners[0].address,
        ListenerAddress::Unix {
            path: PathBuf::from("/run/mosquitto.sock")
        }
    );
    // Several port-0 listeners do not clash.
    assert_eq!(
        parse("listener 0 127.0.0.1\nlistener 0 127.0.0.1\n")
            .listeners
            .len(),
        2
    );
}

#[test]
fn listener_options() {
    let config = parse(
        "listener 1883\nprotocol mqtt\nbind_interface eth0\nmount_point site/\nmaximum_qos 0\n\
         max_topic_alias_broker 0\naccept_protocol_versions 4,5\nmax_connections -5\n",
    );
    let listener = &config.listeners[0];
    assert_eq!(listener.bind_interface.as_deref(), Some("eth0"));
    assert_eq!(listener.mount_point.as_deref(), Some("site/"));
    assert_eq!(listener.max_qos, midge_codec::QoS::AtMostOnce);
    assert_eq!(listener.max_topic_alias_broker, 0);
    assert_eq!(
        listener.accept_protocol_versions,
        [ProtocolVersion::V311, ProtocolVersion::V5]
    );
    assert!(!listener.accepts(ProtocolVersion::V31));
    assert_eq!(listener.max_connections, None);
    assert!(config.notices.is_empty());
}
