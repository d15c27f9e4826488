//! Enhanced authentication (MQTT 5 §4.12, the AUTH packet of §3.15): the protocol's rules,
//! with the methods themselves (SCRAM, say) supplied by the runtime behind [`AuthMethods`],
//! as passwords are checked by the runtime and passed in as [`Credentials`](crate::Credentials).
//!
//! At CONNECT ([`Broker::admit`](crate::Broker::admit)):
//! - A CONNECT naming an Authentication Method the listener does not offer is refused with
//!   CONNACK 0x8C Bad authentication method, and the connection closes [MQTT-4.12.0-1].
//! - Otherwise the method takes the CONNECT's Authentication Data and accepts, refuses, or asks
//!   for more with AUTH 0x18 Continue authentication [MQTT-4.12.0-2]. The [`Handshake`] then
//!   takes the client's AUTH 0x18 answers [MQTT-4.12.0-3] until the method decides. Every AUTH
//!   the server sends and the successful CONNACK carry the CONNECT's method [MQTT-4.12.0-5];
//!   the method's last data (SCRAM's server signature) rides on the CONNACK.
//! - Refused at any step: CONNACK with the method's reason (0x86 for a wrong password), then
//!   the connection closes [MQTT-4.12.0-4].
//! - Until CONNACK the client may send only AUTH or DISCONNECT [MQTT-3.1.2-30]. Anything else,
//!   or an AUTH with another method or another reason than 0x18, is a Protocol Error: CONNACK
//!   0x82. A DISCONNECT ends the attempt without an answer.
//! - The user the method authenticated is the connection's user name: a CONNECT that also
//!   names a different user is refused (0x86). CONNECT's password is not checked.
//!
//! On a live connection (`handle/auth.rs`), re-authentication [MQTT-4.12.1-1]: the client sends
//! AUTH 0x19 Re-authenticate with the method it connected with, the exchange runs as at
//! CONNECT with AUTH 0x18 both ways, and ends with AUTH 0x00 Success, while the connection
//! goes on serving other packets. A failure, or a different user, ends the connection with
//! DISCONNECT 0x87 Not authorized [MQTT-4.12.1-2]. A different method, an AUTH 0x19 while an
//! exchange is running, an AUTH 0x18 while none is, an AUTH 0x00 from the client, or any AUTH
//! on a connection that did not authenticate this way [MQTT-4.12.0-7]: DISCONNECT 0x82.
//!
//! Methods run on the thread that handles the packet: they must be quick (SCRAM's server side
//! is a few HMACs; the client does the slow key stretching).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use bytestring::ByteString;
use midge_codec::properties::AuthProperties;
use midge_codec::{Auth, Connect, Packet, PacketType, ReasonCode};

use crate::broker::{Broker, Refusal};
use crate::config::ClientRules;
use crate::connection::Connection;
use crate::link::Link;
use crate::outbox::Outbox;
use crate::stats::Stats;

/// The enhanced authentication methods a listener offers.
pub trait AuthMethods: Send + Sync + Debug {
    /// Starts an exchange for the Authentication Method `method`, or `None` if it is not
    /// offered (the client is refused with 0x8C).
    fn start(&self, method: &str) -> Option<Box<dyn AuthExchange>>;
}

/// One running exchange of one method.
pub trait AuthExchange: Send + Debug {
    /// Takes the client's next Authentication Data (empty when the packet had none): first the
    /// CONNECT's or the AUTH 0x19's, then each AUTH 0x18's.
    fn step(&mut self, data: &[u8]) -> AuthStep;
}

/// What a method says after each step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// Send AUTH 0x18 with this Authentication Data and wait for the client's answer.
    Continue(Bytes),
    /// Authenticated.
    Success {
        /// Who the client is: the connection's user name from now on.
        username: ByteString,
        /// Authentication Data for the CONNACK or the final AUTH, if any.
        data: Option<Bytes>,
    },
    /// Refused.
    Failure {
        /// The CONNACK reason: 0x86 Bad User Name or Password for wrong credentials, 0x87 Not
        /// authorized otherwise. After re-authentication the DISCONNECT says 0x87 whatever
        /// this is, since DISCONNECT cannot carry 0x86.
        reason: ReasonCode,
        /// What to log.
        detail: String,
    },
}

/// What admitting a CONNECT led to.
#[derive(Debug)]
pub enum Admitted {
    /// Accepted: the CONNACK is in the outbox.
    Connected(Connection),
    /// Enhanced authentication goes on: send what is in the outbox (an AUTH 0x18), then pass
    /// the client's next packet to [`Handshake::handle`].
    Authenticating(Handshake),
}

/// A CONNECT whose enhanced authentication is under way: no session is touched and nothing
/// but AUTH and DISCONNECT is accepted until it ends.
#[derive(Debug)]
pub struct Handshake {
    broker: Arc<Broker>,
    connect: Box<Connect>,
    rules: ClientRules,
    link: Arc<dyn Link>,
    method: ByteString,
    exchange: Box<dyn AuthExchange>,
}

/// A connection's enhanced authentication, kept for re-authentication.
#[derive(Debug)]
pub(crate) struct ConnectionAuth {
    pub(crate) method: ByteString,
    pub(crate) methods: Arc<dyn AuthMethods>,
    /// A re-authentication under way.
    pub(crate) exchange: Option<Box<dyn AuthExchange>>,
}

/// An AUTH packet from the server.
pub(crate) fn auth_packet(reason: ReasonCode, method: &ByteString, data: Option<Bytes>) -> Packet {
    let mut properties = AuthProperties::default();
    properties.authentication_method = Some(method.clone());
    properties.authentication_data = data;
    Packet::Auth(Auth {
        reason_code: reason,
        properties: properties.into(),
    })
}

impl Broker {
    /// Accepts, refuses or begins to authenticate a CONNECT: [`Broker::connect_on`] for a
    /// CONNECT without an Authentication Method, and enhanced authentication with
    /// `rules.auth` for one with (see the module's documentation). `credentials` is not
    /// consulted when the CONNECT names a method: the method decides.
    pub fn admit(
        self: &Arc<Self>,
        connect: Connect,
        credentials: crate::Credentials,
        rules: &ClientRules,
        link: Arc<dyn Link>,
        now: Instant,
        out: &mut Outbox,
    ) -> Result<Admitted, Refusal> {
        let method = match &connect.properties.authentication_method {
            // A listener that redirects its clients does not authenticate them first.
            Some(_) if rules.redirect.is_some() => {
                return self
                    .connect_on(connect, credentials, rules, link, now, out)
                    .map(Admitted::Connected);
            }
            Some(method) if connect.protocol.is_v5() => method.clone(),
            _ => {
                return self
                    .connect_on(connect, credentials, rules, link, now, out)
                    .map(Admitted::Connected);
            }
        };
        out.set_version(connect.protocol);
        let Some(exchange) = rules.auth.as_ref().and_then(|methods| methods.start(&method)) else {
            // [MQTT-4.12.0-1]
            return Err(self.refuse_connect(
                &connect,
                rules,
                ReasonCode::BadAuthenticationMethod,
                format!("authentication method \"{method}\" is not offered [MQTT-4.12.0-1]"),
                true,
                out,
            ));
        };
        let data = connect.properties.authentication_data.clone().unwrap_or_default();
        let handshake = Handshake {
            broker: self.clone(),
            connect: Box::new(connect),
            rules: rules.clone(),
            link,
            method,
            exchange,
        };
        handshake.step(&data, now, out)
    }

    /// Counts a refused CONNECT and puts its CONNACK in `out`; `explain`: whether `detail`
    /// may go to the client as the Reason String.
    pub(crate) fn refuse_connect(
        &self,
        connect: &Connect,
        rules: &ClientRules,
        reason: ReasonCode,
        detail: String,
        explain: bool,
        out: &mut Outbox,
    ) -> Refusal {
        let reason = if reason.allowed_in(PacketType::ConnAck) {
            reason
        } else {
            ReasonCode::NotAuthorized
        };
        Stats::bump(&self.stats().connects_refused);
        let refusal = Refusal { reason, detail };
        crate::connack::send_refusal(connect, rules, &refusal, explain, out);
        refusal
    }
}

impl Handshake {
    /// The Authentication Method in use.
    pub fn method(&self) -> &ByteString {
        &self.method
    }

    /// Takes the client's next packet. `Ok(Authenticating)` again while the exchange goes on;
    /// on an error, any CONNACK refusing the client is in the outbox and the connection closes.
    pub fn handle(self, packet: Packet, now: Instant, out: &mut Outbox) -> Result<Admitted, Refusal> {
        match packet {
            Packet::Auth(auth) => {
                if auth.reason_code != ReasonCode::ContinueAuthentication {
                    return Err(self.protocol_error(
                        format!(
                            "AUTH with reason {:#04x} before CONNACK (only 0x18 continues) [MQTT-4.12.0-3]",
                            auth.reason_code.as_u8()
                        ),
                        out,
                    ));
                }
                if auth.properties.authentication_method.as_ref() != Some(&self.method) {
                    return Err(self.protocol_error(
                        "AUTH with another authentication method than CONNECT's [MQTT-4.12.0-5]".into(),
                        out,
                    ));
                }
                let data = auth.properties.authentication_data.clone().unwrap_or_default();
                self.step(&data, now, out)
            }
            Packet::Disconnect(_) => Err(Refusal {
                reason: ReasonCode::Success,
                detail: "disconnected during enhanced authentication".into(),
            }),
            other => Err(self.protocol_error(
                format!(
                    "{:?} before CONNACK during enhanced authentication [MQTT-3.1.2-30]",
                    other.packet_type()
                ),
                out,
            )),
        }
    }

    fn protocol_error(&self, detail: String, out: &mut Outbox) -> Refusal {
        self.broker.refuse_connect(
            &self.connect,
            &self.rules,
            ReasonCode::ProtocolError,
            detail,
            true,
            out,
        )
    }

    fn step(mut self, data: &[u8], now: Instant, out: &mut Outbox) -> Result<Admitted, Refusal> {
        match self.exchange.step(data) {
            AuthStep::Continue(data) => {
                // [MQTT-4.12.0-2], with the CONNECT's method [MQTT-4.12.0-5].
                out.send(&auth_packet(
                    ReasonCode::ContinueAuthentication,
                    &self.method,
                    Some(data),
                ));
                Ok(Admitted::Authenticating(self))
            }
            AuthStep::Failure { reason, detail } => {
                // [MQTT-4.12.0-4]. The detail (an unknown user, say) is for the log only.
                Err(self.broker.refuse_connect(
                    &self.connect,
                    &self.rules,
                    reason,
                    format!("{} authentication failed: {detail}", self.method),
                    false,
                    out,
                ))
            }
            AuthStep::Success { username, data } => {
                let Self {
                    broker,
                    mut connect,
                    rules,
                    link,
                    method,
                    exchange: _,
                } = self;
                if let Some(named) = &connect.username
                    && *named != username
                {
                    return Err(broker.refuse_connect(
                        &connect,
                        &rules,
                        ReasonCode::BadUserNameOrPassword,
                        format!("CONNECT names user \"{named}\" but {method} authenticated \"{username}\""),
                        false,
                        out,
                    ));
                }
                connect.username = Some(username);
                connect.password = None;
                let auth = ConnectionAuth {
                    method,
                    methods: rules.auth.clone().ok_or_else(|| Refusal {
                        reason: ReasonCode::UnspecifiedError,
                        detail: "no authentication methods".into(),
                    })?,
                    exchange: None,
                };
                broker
                    .attach(*connect, &rules, link, now, out, Some((auth, data)))
                    .map(Admitted::Connected)
            }
        }
    }
}
