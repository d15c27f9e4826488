//! `password_file` and `acl_file` on the running broker: the password file is one written by
//! Debian's `mosquitto_passwd` (checked in by midge-auth), the ACL rules are Mosquitto's. Each
//! test asserts what the client sees: its CONNACK, its acknowledgements, what it receives.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

mod support;

use std::time::Duration;

use bytes::Bytes;
use midge_codec::{Packet, ProtocolVersion, QoS, ReasonCode};
use support::packets::*;
use support::{Midge, RawClient};

const V311: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;

fn password_file() -> String {
    format!(
        "{}/../midge-auth/testdata/passwd_mosquitto.txt",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn login(version: ProtocolVersion, id: &str, user: &str, password: &str) -> Packet {
    let (user, password) = (user.to_owned(), Bytes::from(password.to_owned()));
    connect_with(version, id, move |c| {
        c.username = Some(user.into());
        c.password = Some(password);
    })
}

#[test]
fn a_mosquitto_passwd_file_admits_its_users_and_refuses_others() {
    let midge = Midge::start_with_config(&format!(
        "listener 0 127.0.0.1\nallow_anonymous false\npassword_file {}\n",
        password_file()
    ));
    for version in [V311, V5] {
        let (_c, ack) = RawClient::connected(midge.addr(), login(version, "a", "alice", "wonderland"));
        assert_eq!(ack.reason_code, ReasonCode::Success);
        let (_c, ack) = RawClient::connected(midge.addr(), login(version, "j", "jürgen", "pässwörd"));
        assert_eq!(ack.reason_code, ReasonCode::Success, "UTF-8 user and password");
        // Wrong password, unknown user, no password: "not authorized", as Mosquitto answers.
        for (user, password) in [("alice", "wrong"), ("mallory", "wonderland"), ("alice", "")] {
            let (mut c, ack) = RawClient::connected(midge.addr(), login(version, "x", user, password));
            assert_eq!(ack.reason_code, ReasonCode::NotAuthorized, "{user}/{password}");
            assert!(c.expect_close().is_empty());
        }
        // No user name at all: allow_anonymous false.
        let (_c, ack) = RawClient::connected(midge.addr(), connect(version, "anon"));
        assert_eq!(ack.reason_code, ReasonCode::NotAuthorized);
    }
    midge.wait_for_log("bad user name or password");
}

#[test]
fn mosquitto_pub_logs_in_with_u_and_capital_p() {
    if std::process::Command::new("mosquitto_pub")
        .arg("--help")
        .output()
        .is_err()
    {
        eprintln!("mosquitto_pub not installed (scripts/install-test-deps installs it); skipped");
        return;
    }
    let midge = Midge::start_with_config(&format!(
        "listener 0 127.0.0.1\nallow_anonymous false\npassword_file {}\n",
        password_file()
    ));
    let mut sub = RawClient::connected(midge.addr(), login(V311, "watch", "alice", "wonderland")).0;
    sub.subscribe(&[("t", QoS::AtMostOnce)]);
    let port = midge.port().to_string();
    let run = |user: &str, password: &str| {
        std::process::Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-t",
                "t",
                "-m",
                user,
                "-u",
                user,
                "-P",
                password,
            ])
            .output()
            .unwrap()
    };
    assert!(run("john smith", "pw with spaces").status.success());
    assert_eq!(&sub.recv_publish().payload[..], b"john smith");
    let refused = run("alice", "nope");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not authori"),
        "{refused:?}"
    );
}

#[test]
fn acl_rules_are_enforced_on_publish_delivery_retained_and_wills() {
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl");
    std::fs::write(
        &acl,
        "# anonymous clients\ntopic read public/#\n\nuser alice\ntopic readwrite public/#\ntopic write alice/#\n\npattern readwrite clients/%c/#\n",
    )
    .unwrap();
    let midge = Midge::start_with_config(&format!(
        "listener 0 127.0.0.1\nallow_anonymous true\npassword_file {}\nacl_file {}\n",
        password_file(),
        acl.display()
    ));
    let mut anon = RawClient::session(midge.addr(), V5, "anon");
    // Mosquitto 2.0 never refuses the SUBSCRIBE itself; what is delivered is checked.
    anon.subscribe(&[("#", QoS::AtLeastOnce)]);
    let (mut alice, _) = RawClient::connected(midge.addr(), login(V5, "alice-1", "alice", "wonderland"));
    alice.subscribe(&[("alice/#", QoS::AtMostOnce)]);

    // Alice may write public/ and alice/; anonymous may read public/ only.
    alice.send(&publish("public/news", "hello", QoS::AtLeastOnce, 1));
    assert!(matches!(alice.recv(), Packet::PubAck(a) if a.reason_code == ReasonCode::Success));
    assert_eq!(&anon.recv_publish().payload[..], b"hello");
    alice.send(&publish("alice/diary", "secret", QoS::AtLeastOnce, 2));
    // Alice may write alice/ but nobody may read it, herself included: the publish is accepted
    // and reaches no one (MQTT 5 says so with 0x10).
    match alice.recv() {
        Packet::PubAck(a) => assert_eq!(a.reason_code, ReasonCode::NoMatchingSubscribers),
        other => panic!("delivered without read access, or no ack: {other:?}"),
    }
    alice.expect_nothing(Duration::from_millis(300));
    anon.expect_nothing(Duration::from_millis(300));

    // An MQTT 5 publish without write access is acknowledged with 0x87.
    anon.send(&publish("public/news", "forged", QoS::AtLeastOnce, 3));
    let ack = loop {
        match anon.recv() {
            Packet::PubAck(a) => break a,
            Packet::Publish(_) => panic!("anonymous may not write public/"),
            _ => {}
        }
    };
    assert_eq!(ack.reason_code, ReasonCode::NotAuthorized);

    // The %c pattern: every client may use clients/<its id>/.
    anon.send(&publish("clients/anon/state", "mine", QoS::AtLeastOnce, 4));
    let mut saw_ack = false;
    let mut saw_msg = false;
    while !(saw_ack && saw_msg) {
        match anon.recv() {
            Packet::PubAck(a) => {
                assert_eq!(a.reason_code, ReasonCode::Success);
                saw_ack = true;
            }
            Packet::Publish(p) => {
                assert_eq!(&p.payload[..], b"mine");
                anon.send(&puback(p.packet_id.unwrap()));
                saw_msg = true;
            }
            other => panic!("{other:?}"),
        }
    }

    // A will to a topic its client may not write is never published.
    let (mut willer, _) = RawClient::connected(
        midge.addr(),
        connect_with(V311, "willer", |c| {
            c.will = Some(will("public/will", "forged will", QoS::AtMostOnce, false))
        }),
    );
    willer.shutdown();
    midge.wait_for_log("Will of willer to public/will not published: not authorized.");
    anon.expect_nothing(Duration::from_millis(300));
}

#[test]
fn a_bad_acl_line_stops_the_start_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl");
    std::fs::write(&acl, "user alice\ntopic raed public/#\n").unwrap();
    let conf = dir.path().join("midge.conf");
    std::fs::write(
        &conf,
        format!("listener 0 127.0.0.1\nacl_file {}\n", acl.display()),
    )
    .unwrap();
    let (code, output) = support::run_midge(&["-c", conf.to_str().unwrap()], Duration::from_secs(10));
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains(&format!("{}:2:", acl.display())), "{output}");
    assert!(output.contains("raed"), "{output}");
}

#[test]
fn without_an_acl_file_sys_topics_cannot_be_published_to() {
    // The broker's own $SYS tree is off here, so anything the watcher gets is the forgery.
    let midge = Midge::start("sys_interval 0");
    let mut watcher = RawClient::session(midge.addr(), V311, "watcher");
    watcher.subscribe(&[("$SYS/#", QoS::AtMostOnce)]);
    let mut c = RawClient::session(midge.addr(), V5, "forger");
    c.send(&publish("$SYS/broker/version", "fake", QoS::AtLeastOnce, 1));
    assert!(matches!(c.recv(), Packet::PubAck(a) if a.reason_code == ReasonCode::NotAuthorized));
    watcher.expect_nothing(Duration::from_millis(300));
}

#[test]
fn per_listener_settings_give_each_listener_its_own_rules_and_password_file() {
    let midge = Midge::start_with_config(&format!(
        "per_listener_settings true\n\
         listener 0 127.0.0.1\nallow_anonymous true\nauto_id_prefix open-\n\
         listener 0 127.0.0.1\nallow_anonymous false\npassword_file {}\n",
        password_file()
    ));
    midge.wait_for_log("running");
    let ports: Vec<u16> = midge
        .logs()
        .iter()
        .filter_map(|l| l.split("listen socket on port ").nth(1))
        .filter_map(|p| p.trim_end_matches('.').parse().ok())
        .collect();
    let [open, closed] = ports[..] else {
        panic!("two listeners: {ports:?}")
    };
    let open_addr = ([127, 0, 0, 1], open).into();
    let closed_addr = ([127, 0, 0, 1], closed).into();
    // The first listener takes anonymous clients and names them with its prefix.
    let (_c, ack) = RawClient::connected(open_addr, connect(V5, ""));
    assert_eq!(ack.reason_code, ReasonCode::Success);
    assert!(
        ack.properties
            .assigned_client_identifier
            .as_deref()
            .unwrap()
            .starts_with("open-")
    );
    // The second wants a user from its password file.
    let (_c, ack) = RawClient::connected(closed_addr, connect(V311, "anon"));
    assert_eq!(ack.reason_code, ReasonCode::NotAuthorized);
    let (_c, ack) = RawClient::connected(closed_addr, login(V311, "alice", "alice", "wonderland"));
    assert_eq!(ack.reason_code, ReasonCode::Success);
    // The first listener has no password file: any user name is accepted there.
    let (_c, ack) = RawClient::connected(open_addr, login(V311, "who", "mallory", "anything"));
    assert_eq!(ack.reason_code, ReasonCode::Success);
}

/// The password-file line for `user` in the checked-in mosquitto_passwd file.
fn passwd_line(user: &str) -> String {
    std::fs::read_to_string(password_file())
        .unwrap()
        .lines()
        .find(|l| l.starts_with(&format!("{user}:")))
        .unwrap()
        .to_owned()
}

#[test]
fn sighup_reloads_the_password_file() {
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    std::fs::write(&passwd, format!("{}\n", passwd_line("alice"))).unwrap();
    let midge = Midge::start_with_config(&format!(
        "listener 0 127.0.0.1\nallow_anonymous false\npassword_file {}\n",
        passwd.display()
    ));
    let (_c, ack) = RawClient::connected(midge.addr(), login(V311, "j1", "john smith", "pw with spaces"));
    assert_eq!(ack.reason_code, ReasonCode::NotAuthorized, "not in the file yet");

    std::fs::write(
        &passwd,
        format!("{}\n{}\n", passwd_line("alice"), passwd_line("john smith")),
    )
    .unwrap();
    midge.signal("HUP");
    midge.wait_for_log("(2 users)");
    let (_c, ack) = RawClient::connected(midge.addr(), login(V311, "j2", "john smith", "pw with spaces"));
    assert_eq!(ack.reason_code, ReasonCode::Success, "added by the reload");
    let (_c, ack) = RawClient::connected(midge.addr(), login(V311, "a", "alice", "wonderland"));
    assert_eq!(ack.reason_code, ReasonCode::Success);
}

#[test]
fn a_broken_acl_file_on_sighup_keeps_the_old_rules_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl");
    std::fs::write(&acl, "topic readwrite open/#\n").unwrap();
    let midge = Midge::start_with_config(&format!(
        "listener 0 127.0.0.1\nallow_anonymous true\nacl_file {}\n",
        acl.display()
    ));
    std::fs::write(&acl, "topic readwrite open/#\ntopic raed closed/#\n").unwrap();
    midge.signal("HUP");
    let line = midge.wait_for_log("previous rules stay in force");
    assert!(line.contains(&format!("{}:2:", acl.display())), "{line}");
    // The old rules still apply: open/ is writable, other topics are not.
    let mut c = RawClient::session(midge.addr(), V5, "c");
    c.send(&publish("open/x", "ok", QoS::AtLeastOnce, 1));
    assert!(matches!(c.recv(), Packet::PubAck(a) if !a.reason_code.is_error()));
    c.send(&publish("closed/x", "no", QoS::AtLeastOnce, 2));
    assert!(matches!(c.recv(), Packet::PubAck(a) if a.reason_code == ReasonCode::NotAuthorized));

    // A good file is taken, and applies to the existing connection at once.
    std::fs::write(&acl, "topic readwrite open/#\ntopic write closed/#\n").unwrap();
    midge.signal("HUP");
    midge.wait_for_log("Reloaded ACL file");
    c.send(&publish("closed/x", "now yes", QoS::AtLeastOnce, 3));
    assert!(matches!(c.recv(), Packet::PubAck(a) if !a.reason_code.is_error()));
}

#[test]
fn a_storm_of_wrong_passwords_does_not_starve_connected_clients() {
    use std::num::NonZeroU32;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;
    // A deliberately slow hash (tens of milliseconds per check), so the storm is real work.
    let hash = midge_auth::hash_password(
        b"right",
        midge_auth::HashKind::Sha512Pbkdf2 {
            iterations: NonZeroU32::new(100_000).unwrap(),
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    std::fs::write(&passwd, format!("victim:{hash}\n")).unwrap();
    let midge = Midge::start_with_config(&format!(
        "listener 0 127.0.0.1\nallow_anonymous true\npassword_file {}\n",
        passwd.display()
    ));
    let addr = midge.addr();

    // The storm: 4 attackers, each trying wrong passwords back to back for 3 seconds.
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let attackers: Vec<_> = (0..4)
        .map(|n| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut tries = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let (_c, ack) =
                        RawClient::connected(addr, login(V311, &format!("x{n}-{tries}"), "victim", "wrong"));
                    assert_eq!(ack.reason_code, ReasonCode::NotAuthorized);
                    tries += 1;
                }
                tries
            })
        })
        .collect();

    // Meanwhile a connected pair keeps exchanging messages; and new anonymous clients (no
    // hash to check) get in at once.
    std::thread::sleep(Duration::from_millis(300));
    let mut sub = RawClient::session(addr, V311, "sub");
    sub.subscribe(&[("ping", QoS::AtMostOnce)]);
    let mut publisher = RawClient::session(addr, V311, "pub");
    let mut worst = Duration::ZERO;
    let started = Instant::now();
    let mut exchanged = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let sent = Instant::now();
        publisher.send(&publish("ping", "x", QoS::AtMostOnce, 0));
        sub.recv_publish();
        worst = worst.max(sent.elapsed());
        exchanged += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    let connect_started = Instant::now();
    let _late = RawClient::session(addr, V5, "late-anonymous");
    let connect_time = connect_started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let tries: u32 = attackers.into_iter().map(|a| a.join().unwrap()).sum();
    eprintln!(
        "password storm: {tries} wrong logins refused in 3 s; {exchanged} round trips, worst {worst:?}; \
         anonymous connect during the storm {connect_time:?}"
    );
    assert!(tries >= 4, "the storm ran");
    assert!(
        worst < Duration::from_millis(250),
        "a connected client waited {worst:?}"
    );
    assert!(
        connect_time < Duration::from_millis(500),
        "an anonymous client waited {connect_time:?}"
    );
}

#[test]
fn per_listener_settings_gives_each_listener_its_own_acl_file() {
    let dir = tempfile::tempdir().unwrap();
    let strict = dir.path().join("strict.acl");
    std::fs::write(&strict, "topic readwrite a/#\n").unwrap();
    let midge = Midge::start_with_config(&format!(
        "per_listener_settings true\nlistener 0 127.0.0.1\nallow_anonymous true\nacl_file {}\n\
         listener 0 127.0.0.1\nallow_anonymous true\n",
        strict.display()
    ));
    let ports = midge.listen_ports();
    let open_addr = std::net::SocketAddr::from(([127, 0, 0, 1], ports[1]));

    let mut strict_client = RawClient::session(midge.addr(), V5, "strict");
    let mut open_client = RawClient::session(open_addr, V5, "open");
    // Writes: the strict listener's file decides for its clients only.
    strict_client.send(&publish("b/x", "no", QoS::AtLeastOnce, 1));
    assert!(matches!(strict_client.recv(), Packet::PubAck(a) if a.reason_code == ReasonCode::NotAuthorized));
    open_client.send(&publish("b/x", "yes", QoS::AtLeastOnce, 1));
    assert!(matches!(open_client.recv(), Packet::PubAck(a) if !a.reason_code.is_error()));

    // Reads: a strict subscriber to everything gets only a/#; an open one gets both.
    strict_client.subscribe(&[("#", QoS::AtMostOnce)]);
    open_client.subscribe(&[("#", QoS::AtMostOnce)]);
    open_client.send(&publish("b/y", "hidden from strict", QoS::AtMostOnce, 0));
    open_client.send(&publish("a/y", "for everyone", QoS::AtMostOnce, 0));
    assert_eq!(strict_client.recv_publish().topic.as_str(), "a/y");
    assert_eq!(open_client.recv_publish().topic.as_str(), "b/y");
    assert_eq!(open_client.recv_publish().topic.as_str(), "a/y");

    // A reload re-reads it, for that listener only.
    std::fs::write(&strict, "topic readwrite a/#\ntopic readwrite b/#\n").unwrap();
    midge.signal("HUP");
    midge.wait_for_log("Reloaded ACL file");
    strict_client.send(&publish("b/x", "now yes", QoS::AtLeastOnce, 2));
    assert!(matches!(strict_client.recv(), Packet::PubAck(a) if !a.reason_code.is_error()));
}
