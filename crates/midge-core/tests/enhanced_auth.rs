//! Enhanced authentication's protocol rules in the core, packet by packet, with a toy method
//! ("ECHO": the client says hello, the server asks who, the client's answer is its name) so
//! that what is checked is the AUTH exchange, not SCRAM (which `midge-auth` and the binary's
//! tests cover).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use midge_codec::properties::AuthProperties;
use midge_codec::{Auth, Connect, Packet, QoS, ReasonCode};
use midge_core::{
    Admitted, After, AuthExchange, AuthMethods, AuthStep, Broker, BrokerConfig, ClientRules, Connection,
    Credentials, Outbox,
};

mod support;

use support::*;

#[derive(Debug)]
struct Echo;

#[derive(Debug)]
struct EchoExchange {
    greeted: bool,
}

impl AuthMethods for Echo {
    fn start(&self, method: &str) -> Option<Box<dyn AuthExchange>> {
        (method == "ECHO").then(|| Box::new(EchoExchange { greeted: false }) as Box<dyn AuthExchange>)
    }
}

impl AuthExchange for EchoExchange {
    fn step(&mut self, data: &[u8]) -> AuthStep {
        match (self.greeted, data) {
            (false, b"hello") => {
                self.greeted = true;
                AuthStep::Continue(Bytes::from_static(b"who?"))
            }
            (true, b"mallory") | (false, _) => AuthStep::Failure {
                reason: ReasonCode::BadUserNameOrPassword,
                detail: "not welcome".into(),
            },
            (true, name) => AuthStep::Success {
                username: String::from_utf8(name.to_vec()).unwrap().into(),
                data: Some(Bytes::from_static(b"welcome")),
            },
        }
    }
}

fn rules() -> ClientRules {
    ClientRules {
        auth: Some(Arc::new(Echo)),
        ..BrokerConfig::default().client_rules()
    }
}

fn echo_connect(id: &str) -> Connect {
    let mut connect = Connect::new(V5, id);
    connect.properties.authentication_method = Some("ECHO".into());
    connect.properties.authentication_data = Some(Bytes::from_static(b"hello"));
    connect
}

fn auth(reason: ReasonCode, data: &'static [u8]) -> Packet {
    let mut properties = AuthProperties::default();
    properties.authentication_method = Some("ECHO".into());
    properties.authentication_data = Some(Bytes::from_static(data));
    Packet::Auth(Auth {
        reason_code: reason,
        properties: properties.into(),
    })
}

/// CONNECT, the challenge, and the answer `name`: the connection and what was sent.
fn log_in(
    broker: &Arc<Broker>,
    id: &str,
    name: &'static [u8],
    now: Instant,
) -> (Option<Connection>, Vec<Packet>, Outbox) {
    let link = Arc::new(TestLink::default());
    let mut out = Outbox::new(V5);
    let admitted = broker.admit(
        echo_connect(id),
        Credentials::Invalid,
        &rules(),
        link,
        now,
        &mut out,
    );
    let Ok(Admitted::Authenticating(handshake)) = admitted else {
        panic!("expected a challenge, got {admitted:?}")
    };
    let mut sent = decode_all(&mut out);
    let admitted = handshake.handle(auth(ReasonCode::ContinueAuthentication, name), now, &mut out);
    sent.extend(decode_all(&mut out));
    match admitted {
        Ok(Admitted::Connected(connection)) => (Some(connection), sent, out),
        Ok(Admitted::Authenticating(_)) => panic!("still authenticating"),
        Err(_) => (None, sent, out),
    }
}

#[test]
fn mqtt_4_12_0_5_the_exchange_and_connack_carry_the_method_and_the_user_is_the_methods() {
    let now = Instant::now();
    let broker = broker(BrokerConfig::default());
    let (connection, sent, _) = log_in(&broker, "c", b"alice", now);
    // [MQTT-4.12.0-2] AUTH 0x18 with the method; then CONNACK with the method and the data.
    assert!(
        matches!(&sent[..], [Packet::Auth(a), Packet::ConnAck(c)]
            if a.reason_code == ReasonCode::ContinueAuthentication
            && a.properties.authentication_method.as_deref() == Some("ECHO")
            && a.properties.authentication_data.as_deref() == Some(&b"who?"[..])
            && c.reason_code == ReasonCode::Success
            && c.properties.authentication_method.as_deref() == Some("ECHO")
            && c.properties.authentication_data.as_deref() == Some(&b"welcome"[..])),
        "{sent:?}"
    );
    // `Credentials::Invalid` was not consulted: the method decided, and named the user.
    let connection = connection.unwrap();
    assert_eq!(connection.username().map(|u| &**u), Some("alice"));
}

#[test]
fn mqtt_4_12_0_4_a_refusal_at_any_step_is_a_connack_with_the_methods_reason() {
    let now = Instant::now();
    let broker = broker(BrokerConfig::default());
    let (connection, sent, _) = log_in(&broker, "c", b"mallory", now);
    assert!(connection.is_none());
    assert!(
        matches!(&sent[..], [Packet::Auth(_), Packet::ConnAck(c)] if c.reason_code == ReasonCode::BadUserNameOrPassword),
        "{sent:?}"
    );
    // A CONNECT without the greeting is refused at once, with no AUTH.
    let mut out = Outbox::new(V5);
    let mut connect = echo_connect("d");
    connect.properties.authentication_data = None;
    let refused = broker.admit(
        connect,
        Credentials::Unchecked,
        &rules(),
        Arc::new(TestLink::default()),
        now,
        &mut out,
    );
    assert!(refused.is_err());
    assert!(
        matches!(&decode_all(&mut out)[..], [Packet::ConnAck(c)] if c.reason_code == ReasonCode::BadUserNameOrPassword)
    );
}

#[test]
fn mqtt_3_1_2_30_packets_other_than_auth_before_connack_are_a_protocol_error() {
    let now = Instant::now();
    let broker = broker(BrokerConfig::default());
    let mut out = Outbox::new(V5);
    let admitted = broker.admit(
        echo_connect("c"),
        Credentials::Unchecked,
        &rules(),
        Arc::new(TestLink::default()),
        now,
        &mut out,
    );
    let Ok(Admitted::Authenticating(handshake)) = admitted else {
        panic!("{admitted:?}")
    };
    decode_all(&mut out);
    let refused = handshake.handle(publish("t", "x", QoS::AtMostOnce, 0), now, &mut out);
    assert!(refused.is_err());
    assert!(
        matches!(&decode_all(&mut out)[..], [Packet::ConnAck(c)] if c.reason_code == ReasonCode::ProtocolError)
    );
    // No session was made.
    assert_eq!(broker.session_count(), 0);
}

#[test]
fn mqtt_4_12_1_2_reauthentication_succeeds_as_the_same_user_and_fails_with_0x87() {
    let now = Instant::now();
    let broker = broker(BrokerConfig::default());
    let (connection, _, mut out) = log_in(&broker, "c", b"alice", now);
    let mut connection = connection.unwrap();
    let mut step = |packet| {
        let after = connection.handle(packet, now, &mut out);
        (after, decode_all(&mut out))
    };
    let (after, got) = step(auth(ReasonCode::ReAuthenticate, b"hello"));
    assert_eq!(after, After::Continue);
    assert!(
        matches!(&got[..], [Packet::Auth(a)] if a.reason_code == ReasonCode::ContinueAuthentication),
        "{got:?}"
    );
    let (after, got) = step(auth(ReasonCode::ContinueAuthentication, b"alice"));
    assert_eq!(after, After::Continue);
    assert!(
        matches!(&got[..], [Packet::Auth(a)] if a.reason_code == ReasonCode::Success
            && a.properties.authentication_data.as_deref() == Some(&b"welcome"[..])),
        "{got:?}"
    );
    // Another user, whom the method would admit, is not this connection's: 0x87.
    step(auth(ReasonCode::ReAuthenticate, b"hello"));
    let (after, got) = step(auth(ReasonCode::ContinueAuthentication, b"bob"));
    assert!(matches!(after, After::Close { .. }));
    assert!(
        matches!(&got[..], [Packet::Disconnect(d)] if d.reason_code == ReasonCode::NotAuthorized),
        "{got:?}"
    );
}
