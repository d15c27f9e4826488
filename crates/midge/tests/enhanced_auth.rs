//! MQTT 5 enhanced authentication (AUTH, §3.15 and §4.12) with SCRAM-SHA-256 and SCRAM-SHA-512
//! on the running broker: users written by `midge passwd -H scram` into a `scram_file`, logging
//! in and re-authenticating through a SCRAM client written here from RFC 5802 (the broker's own
//! SCRAM code is the server side only), and every protocol error of the exchange. Each test
//! asserts what the client sees: AUTH, CONNACK and DISCONNECT packets with their reason codes
//! and properties, and whether the connection closes. `interop/test_scram.py` does the same
//! with Python's `scramp` as the client.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

mod support;

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use hmac::{Hmac, KeyInit as _, Mac as _};
use midge_codec::properties::AuthProperties;
use midge_codec::{Auth, ConnAck, Packet, ProtocolVersion, QoS, ReasonCode};
use sha2::{Digest as _, Sha256, Sha512};
use support::packets::*;
use support::{Midge, RawClient, run_midge};

const V5: ProtocolVersion = ProtocolVersion::V5;
const SHA256: &str = "SCRAM-SHA-256";
const SHA512: &str = "SCRAM-SHA-512";

/// The client's side of SCRAM (RFC 5802 §3), from the password.
struct Scram {
    mechanism: &'static str,
    password: String,
    nonce: String,
    first_bare: String,
    server_signature: Vec<u8>,
}

impl Scram {
    fn new(mechanism: &'static str, user: &str, password: &str) -> Self {
        // Unique enough for a test; the server adds its own random half.
        let nonce = format!("{:x}{}", std::process::id(), rand_suffix());
        Self {
            mechanism,
            password: password.to_owned(),
            first_bare: format!("n={user},r={nonce}"),
            nonce,
            server_signature: Vec::new(),
        }
    }

    fn hmac(&self, key: &[u8], data: &[u8]) -> Vec<u8> {
        if self.mechanism == SHA256 {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        } else {
            let mut mac = Hmac::<Sha512>::new_from_slice(key).unwrap();
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
    }

    fn hash(&self, data: &[u8]) -> Vec<u8> {
        if self.mechanism == SHA256 {
            Sha256::digest(data).to_vec()
        } else {
            Sha512::digest(data).to_vec()
        }
    }

    /// `client-first-message`.
    fn first(&self) -> Bytes {
        Bytes::from(format!("n,,{}", self.first_bare))
    }

    /// `client-final-message` for the server's challenge.
    fn last(&mut self, server_first: &[u8]) -> Bytes {
        let server_first = std::str::from_utf8(server_first).unwrap();
        let mut nonce = "";
        let mut salt = Vec::new();
        let mut iterations = 0;
        for field in server_first.split(',') {
            match field.split_at(2) {
                ("r=", value) => nonce = value,
                ("s=", value) => salt = STANDARD.decode(value).unwrap(),
                ("i=", value) => iterations = value.parse().unwrap(),
                _ => {}
            }
        }
        assert!(
            nonce.starts_with(&self.nonce) && nonce.len() > self.nonce.len(),
            "{server_first}"
        );
        let mut salted = vec![0u8; if self.mechanism == SHA256 { 32 } else { 64 }];
        if self.mechanism == SHA256 {
            pbkdf2::pbkdf2_hmac::<Sha256>(self.password.as_bytes(), &salt, iterations, &mut salted);
        } else {
            pbkdf2::pbkdf2_hmac::<Sha512>(self.password.as_bytes(), &salt, iterations, &mut salted);
        }
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let client_key = self.hmac(&salted, b"Client Key");
        let signature = self.hmac(&self.hash(&client_key), auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
        self.server_signature = self.hmac(&self.hmac(&salted, b"Server Key"), auth_message.as_bytes());
        Bytes::from(format!("{without_proof},p={}", STANDARD.encode(proof)))
    }

    /// Whether `server-final-message` proves the server knows the user's verifier.
    fn server_proved(&self, server_final: &[u8]) -> bool {
        server_final == format!("v={}", STANDARD.encode(&self.server_signature)).as_bytes()
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .elapsed()
            .map_or(0, |d| d.as_nanos() as u64),
    );
    hasher.finish()
}

fn auth(reason: ReasonCode, method: &str, data: Option<Bytes>) -> Packet {
    let mut properties = AuthProperties::default();
    properties.authentication_method = Some(method.into());
    properties.authentication_data = data;
    Packet::Auth(Auth {
        reason_code: reason,
        properties: properties.into(),
    })
}

fn scram_connect(id: &str, scram: &Scram) -> Packet {
    let (method, data) = (scram.mechanism, scram.first());
    connect_with(V5, id, move |c| {
        c.properties.authentication_method = Some(method.into());
        c.properties.authentication_data = Some(data);
    })
}

/// Expects AUTH 0x18 with `method` and returns its data.
fn expect_challenge(client: &mut RawClient, method: &str) -> Bytes {
    match client.recv() {
        // [MQTT-4.12.0-2] 0x18; [MQTT-4.12.0-5] the CONNECT's method; [MQTT-3.15.2-2],
        // [MQTT-3.15.2-3]: no Reason String or User Property.
        Packet::Auth(auth) => {
            assert_eq!(auth.reason_code, ReasonCode::ContinueAuthentication);
            assert_eq!(auth.properties.authentication_method.as_deref(), Some(method));
            assert!(auth.properties.reason_string.is_none());
            assert!(auth.properties.user_properties.is_empty());
            auth.properties
                .authentication_data
                .clone()
                .expect("challenge data")
        }
        other => panic!("expected AUTH 0x18, got {other:?}"),
    }
}

fn expect_connack(client: &mut RawClient) -> ConnAck {
    match client.recv() {
        Packet::ConnAck(ack) => ack,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

/// Runs the whole exchange at CONNECT and returns the client and the CONNACK.
fn scram_login(midge: &Midge, id: &str, scram: &mut Scram) -> (RawClient, ConnAck) {
    let mut client = RawClient::connect(midge.addr(), V5);
    client.send(&scram_connect(id, scram));
    let challenge = expect_challenge(&mut client, scram.mechanism);
    client.send(&auth(
        ReasonCode::ContinueAuthentication,
        scram.mechanism,
        Some(scram.last(&challenge)),
    ));
    let ack = expect_connack(&mut client);
    (client, ack)
}

/// `midge passwd` with these arguments, which must succeed.
fn passwd(dir: &Path, args: &[&str]) {
    let mut full = vec!["passwd"];
    full.extend_from_slice(args);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_midge"))
        .args(&full)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "midge passwd {args:?}: {output:?}");
}

/// A broker whose `scram_file` has alice (both mechanisms, password "wonderland") and bob
/// (SCRAM-SHA-256 only, "builder"), written by `midge passwd`, with anonymous clients allowed
/// unless `extra` says otherwise.
fn broker(extra: &str) -> (Midge, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    passwd(
        dir.path(),
        &["-H", "scram", "-c", "-b", "scram", "alice", "wonderland"],
    );
    passwd(
        dir.path(),
        &["-H", "scram-sha-256", "-b", "scram", "bob", "builder"],
    );
    let midge = Midge::start_with_config(&format!(
        "listener 0 127.0.0.1\n{extra}\nscram_file {}\n",
        dir.path().join("scram").display()
    ));
    (midge, dir)
}

#[test]
fn mqtt_4_12_0_2_scram_sha_256_and_sha_512_log_in_and_the_server_proves_itself() {
    let (midge, _dir) = broker("allow_anonymous false");
    for mechanism in [SHA256, SHA512] {
        let mut scram = Scram::new(mechanism, "alice", "wonderland");
        let (mut client, ack) = scram_login(&midge, "alice-phone", &mut scram);
        assert_eq!(ack.reason_code, ReasonCode::Success, "{mechanism}");
        // [MQTT-4.12.0-5]: the successful CONNACK names the method; its data is the server's
        // signature, which only a holder of the verifier can make.
        assert_eq!(ack.properties.authentication_method.as_deref(), Some(mechanism));
        let server_final = ack.properties.authentication_data.clone().unwrap();
        assert!(
            scram.server_proved(&server_final),
            "{mechanism}: {server_final:?}"
        );
        // The client is in, as alice.
        assert_eq!(client.subscribe(&[("t", QoS::AtMostOnce)]), [ReasonCode::Success]);
        client.send(&publish("t", "hello", QoS::AtMostOnce, 0));
        assert_eq!(&client.recv_publish().payload[..], b"hello");
        let line = midge.wait_for_log("as alice-phone (p5");
        assert!(line.contains("u'alice'"), "{line}");
        client.send(&Packet::Disconnect(midge_codec::Disconnect::new(
            ReasonCode::Success,
        )));
        client.expect_close();
    }
    // bob has a SCRAM-SHA-256 verifier only.
    let (_bob, ack) = scram_login(&midge, "bob", &mut Scram::new(SHA256, "bob", "builder"));
    assert_eq!(ack.reason_code, ReasonCode::Success);
}

#[test]
fn mqtt_4_12_0_4_wrong_passwords_and_unknown_users_get_connack_0x86_and_are_closed() {
    let (midge, _dir) = broker("allow_anonymous false");
    for (mechanism, user, password) in [
        (SHA256, "alice", "Wonderland"),
        (SHA512, "alice", "wonderland!"),
        (SHA256, "nobody", "wonderland"),
        // bob has no SCRAM-SHA-512 verifier: as if unknown.
        (SHA512, "bob", "builder"),
    ] {
        let (mut client, ack) = scram_login(&midge, "c", &mut Scram::new(mechanism, user, password));
        assert_eq!(
            ack.reason_code,
            ReasonCode::BadUserNameOrPassword,
            "{mechanism} {user}"
        );
        assert!(ack.properties.authentication_method.is_none());
        // Nothing that tells a wrong password from an unknown user.
        assert_eq!(ack.properties.reason_string, None, "{mechanism} {user}");
        client.expect_close();
    }
    // An unknown user is answered with a salt all the same, so that it cannot be told apart
    // from a known one by the challenge; the same salt each time, as a real user's would be.
    let salt = |user: &str| {
        let mut client = RawClient::connect(midge.addr(), V5);
        client.send(&scram_connect("c", &Scram::new(SHA256, user, "x")));
        let challenge = String::from_utf8(expect_challenge(&mut client, SHA256).to_vec()).unwrap();
        let salt = challenge
            .split(',')
            .find(|f| f.starts_with("s="))
            .unwrap()
            .to_owned();
        client.shutdown();
        salt
    };
    assert_eq!(salt("nobody"), salt("nobody"));
    assert_ne!(salt("nobody"), salt("somebody"));
    midge.wait_for_log("unknown user \"nobody\"");
}

#[test]
fn mqtt_4_12_0_1_an_authentication_method_not_offered_gets_connack_0x8c() {
    let (midge, _dir) = broker("allow_anonymous true");
    for method in ["PLAIN", "SCRAM-SHA-1", "scram-sha-256"] {
        let connect = connect_with(V5, "c", |c| {
            c.properties.authentication_method = Some(method.into());
        });
        let (mut client, ack) = RawClient::connected(midge.addr(), connect);
        assert_eq!(ack.reason_code, ReasonCode::BadAuthenticationMethod, "{method}");
        client.expect_close();
    }
    // A broker without a scram_file offers no method at all.
    let plain = Midge::start("");
    let (mut client, ack) = RawClient::connected(
        plain.addr(),
        scram_connect("c", &Scram::new(SHA256, "alice", "x")),
    );
    assert_eq!(ack.reason_code, ReasonCode::BadAuthenticationMethod);
    client.expect_close();
}

#[test]
fn mqtt_4_12_0_6_without_a_method_no_auth_either_way() {
    let (midge, _dir) = broker("allow_anonymous true");
    // [MQTT-4.12.0-6]: a CONNECT without a method gets no AUTH and no method in CONNACK.
    let (mut client, ack) = RawClient::connected(midge.addr(), connect(V5, "plain"));
    assert_eq!(ack.reason_code, ReasonCode::Success);
    assert!(ack.properties.authentication_method.is_none());
    assert!(ack.properties.authentication_data.is_none());
    client.expect_nothing(Duration::from_millis(200));
    // [MQTT-4.12.0-7]: and such a client may send no AUTH: DISCONNECT 0x82.
    let scram = Scram::new(SHA256, "alice", "wonderland");
    client.send(&auth(ReasonCode::ReAuthenticate, SHA256, Some(scram.first())));
    let closing = client.expect_close();
    assert!(
        matches!(&closing[..], [Packet::Disconnect(d)] if d.reason_code == ReasonCode::ProtocolError),
        "{closing:?}"
    );
}

#[test]
fn mqtt_3_1_2_30_before_connack_only_auth_0x18_with_the_same_method_is_accepted() {
    let (midge, _dir) = broker("allow_anonymous true");
    let scram = Scram::new(SHA256, "alice", "wonderland");
    let other_method = auth(
        ReasonCode::ContinueAuthentication,
        SHA512,
        Some(Bytes::from_static(b"c=biws")),
    );
    let reauth = auth(ReasonCode::ReAuthenticate, SHA256, Some(scram.first()));
    let success = auth(ReasonCode::Success, SHA256, None);
    for (what, packet) in [
        ("PUBLISH", publish("t", "early", QoS::AtMostOnce, 0)),
        ("SUBSCRIBE", subscribe(&[("t", QoS::AtMostOnce)], 1)),
        ("PINGREQ", Packet::PingReq),
        // [MQTT-4.12.0-5]: the client's AUTH repeats the method too.
        ("AUTH of another method", other_method),
        // [MQTT-4.12.0-3]: the answer to AUTH 0x18 carries 0x18.
        ("AUTH 0x19", reauth),
        ("AUTH 0x00", success),
    ] {
        let mut client = RawClient::connect(midge.addr(), V5);
        client.send(&scram_connect("c", &scram));
        expect_challenge(&mut client, SHA256);
        client.send(&packet);
        let closing = client.expect_close();
        assert!(
            matches!(&closing[..], [Packet::ConnAck(a)] if a.reason_code == ReasonCode::ProtocolError),
            "{what}: {closing:?}"
        );
    }
    // A DISCONNECT ends the attempt quietly.
    let mut client = RawClient::connect(midge.addr(), V5);
    client.send(&scram_connect("c", &scram));
    expect_challenge(&mut client, SHA256);
    client.send(&Packet::Disconnect(midge_codec::Disconnect::new(
        ReasonCode::Success,
    )));
    assert!(client.expect_close().is_empty());
}

#[test]
fn a_connect_naming_another_user_than_the_one_authenticated_is_refused() {
    let (midge, _dir) = broker("allow_anonymous true");
    let mut scram = Scram::new(SHA256, "alice", "wonderland");
    let mut client = RawClient::connect(midge.addr(), V5);
    let (method, data) = (scram.mechanism, scram.first());
    client.send(&connect_with(V5, "c", move |c| {
        c.username = Some("bob".into());
        c.properties.authentication_method = Some(method.into());
        c.properties.authentication_data = Some(data);
    }));
    let challenge = expect_challenge(&mut client, SHA256);
    client.send(&auth(
        ReasonCode::ContinueAuthentication,
        SHA256,
        Some(scram.last(&challenge)),
    ));
    assert_eq!(
        expect_connack(&mut client).reason_code,
        ReasonCode::BadUserNameOrPassword
    );
    client.expect_close();
}

#[test]
fn mqtt_4_12_1_1_reauthentication_runs_while_the_connection_goes_on() {
    let (midge, _dir) = broker("allow_anonymous false");
    let (mut client, ack) = scram_login(&midge, "c", &mut Scram::new(SHA512, "alice", "wonderland"));
    assert_eq!(ack.reason_code, ReasonCode::Success);
    assert_eq!(client.subscribe(&[("t", QoS::AtMostOnce)]), [ReasonCode::Success]);
    for round in 0..2 {
        let mut scram = Scram::new(SHA512, "alice", "wonderland");
        client.send(&auth(ReasonCode::ReAuthenticate, SHA512, Some(scram.first())));
        let challenge = expect_challenge(&mut client, SHA512);
        // Other packets are served in the middle of the exchange.
        client.send(&publish("t", "during", QoS::AtMostOnce, 0));
        assert_eq!(&client.recv_publish().payload[..], b"during");
        client.send(&auth(
            ReasonCode::ContinueAuthentication,
            SHA512,
            Some(scram.last(&challenge)),
        ));
        match client.recv() {
            Packet::Auth(done) => {
                assert_eq!(done.reason_code, ReasonCode::Success, "round {round}");
                assert_eq!(done.properties.authentication_method.as_deref(), Some(SHA512));
                assert!(scram.server_proved(done.properties.authentication_data.as_ref().unwrap()));
            }
            other => panic!("expected AUTH 0x00, got {other:?}"),
        }
    }
    midge.wait_for_log("Client c re-authenticated as alice (SCRAM-SHA-512).");
    client.send(&publish("t", "after", QoS::AtMostOnce, 0));
    assert_eq!(&client.recv_publish().payload[..], b"after");
}

#[test]
fn mqtt_4_12_1_1_reauthentication_protocol_errors_get_disconnect_0x82() {
    let (midge, _dir) = broker("allow_anonymous false");
    let start = |midge: &Midge| {
        let (client, ack) = scram_login(midge, "c", &mut Scram::new(SHA256, "alice", "wonderland"));
        assert_eq!(ack.reason_code, ReasonCode::Success);
        client
    };
    let scram = Scram::new(SHA256, "alice", "wonderland");
    let first = scram.first();
    let cases: Vec<(&str, Vec<Packet>)> = vec![
        // [MQTT-4.12.1-1]: the method the connection authenticated with.
        (
            "another method",
            vec![auth(ReasonCode::ReAuthenticate, SHA512, Some(first.clone()))],
        ),
        (
            "0x18 with nothing under way",
            vec![auth(
                ReasonCode::ContinueAuthentication,
                SHA256,
                Some(first.clone()),
            )],
        ),
        (
            "0x00 from the client",
            vec![auth(ReasonCode::Success, SHA256, None)],
        ),
        (
            "0x19 twice",
            vec![
                auth(ReasonCode::ReAuthenticate, SHA256, Some(first.clone())),
                auth(ReasonCode::ReAuthenticate, SHA256, Some(first)),
            ],
        ),
    ];
    for (what, packets) in cases {
        let mut client = start(&midge);
        let mut got = Vec::new();
        for packet in &packets {
            client.send(packet);
        }
        got.extend(client.expect_close());
        let last = got.last();
        assert!(
            matches!(last, Some(Packet::Disconnect(d)) if d.reason_code == ReasonCode::ProtocolError),
            "{what}: {got:?}"
        );
    }
}

#[test]
fn mqtt_4_12_1_2_failed_reauthentication_gets_disconnect_0x87_and_the_connection_closes() {
    let (midge, _dir) = broker("allow_anonymous false");
    // A wrong password; then the right password of another user (bob), who is not the
    // connection's user.
    for (user, password) in [("alice", "not wonderland"), ("bob", "builder")] {
        let (mut client, ack) = scram_login(&midge, "c", &mut Scram::new(SHA256, "alice", "wonderland"));
        assert_eq!(ack.reason_code, ReasonCode::Success);
        let mut scram = Scram::new(SHA256, user, password);
        client.send(&auth(ReasonCode::ReAuthenticate, SHA256, Some(scram.first())));
        let challenge = expect_challenge(&mut client, SHA256);
        client.send(&auth(
            ReasonCode::ContinueAuthentication,
            SHA256,
            Some(scram.last(&challenge)),
        ));
        let closing = client.expect_close();
        assert!(
            matches!(&closing[..], [Packet::Disconnect(d)] if d.reason_code == ReasonCode::NotAuthorized),
            "{user}: {closing:?}"
        );
        // A wrong password is not told apart from anything else; bob proved who he is, and
        // may hear that it is the wrong user.
        let Packet::Disconnect(d) = &closing[0] else {
            unreachable!()
        };
        let why = d.properties.reason_string.as_deref().unwrap_or_default();
        match user {
            "alice" => assert_eq!(why, "re-authentication failed"),
            _ => assert!(why.contains("not as the connection's user"), "{why}"),
        }
    }
}

#[test]
fn scram_file_is_reloaded_on_sighup_and_a_bad_one_stops_the_start() {
    let (midge, dir) = broker("allow_anonymous false");
    let (mut client, ack) = scram_login(&midge, "c", &mut Scram::new(SHA256, "carol", "x"));
    assert_eq!(ack.reason_code, ReasonCode::BadUserNameOrPassword);
    client.expect_close();
    passwd(dir.path(), &["-H", "scram", "-b", "scram", "carol", "x"]);
    midge.signal("HUP");
    midge.wait_for_log("Reloaded SCRAM file");
    let (_client, ack) = scram_login(&midge, "c", &mut Scram::new(SHA256, "carol", "x"));
    assert_eq!(ack.reason_code, ReasonCode::Success);

    // A broken line: the broker names it and does not start.
    let broken = dir.path().join("broken");
    std::fs::write(&broken, "alice:SCRAM-SHA-256$4096:c2FsdA==\n").unwrap();
    let config = dir.path().join("broken.conf");
    std::fs::write(
        &config,
        format!("listener 0 127.0.0.1\nscram_file {}\n", broken.display()),
    )
    .unwrap();
    let (status, output) = run_midge(&["-c", config.to_str().unwrap()], Duration::from_secs(10));
    assert_ne!(status, Some(0));
    assert!(
        output.contains(&format!("{}:1: user \"alice\"", broken.display())),
        "{output}"
    );
}
