//! AUTH from a connected client (§3.15, §4.12.1): re-authentication with the method the
//! connection authenticated with, while the connection goes on. The rules are listed in
//! [`crate::auth`]; the exchange at CONNECT is [`crate::auth::Handshake`]'s.

use midge_codec::{Auth, ReasonCode};

use crate::auth::{AuthStep, auth_packet};
use crate::connection::{After, Connection};
use crate::outbox::Outbox;

impl Connection {
    pub(crate) fn handle_auth(&mut self, auth: &Auth, out: &mut Outbox) -> After {
        let Some(state) = self.auth.as_mut() else {
            return self.violation(
                ReasonCode::ProtocolError,
                "AUTH without enhanced authentication at CONNECT [MQTT-4.12.0-7]",
                out,
            );
        };
        if auth.properties.authentication_method.as_ref() != Some(&state.method) {
            return self.violation(
                ReasonCode::ProtocolError,
                "AUTH with another authentication method than the connection's [MQTT-4.12.1-1]",
                out,
            );
        }
        let exchange = match (auth.reason_code, state.exchange.take()) {
            (ReasonCode::ReAuthenticate, None) => match state.methods.start(&state.method) {
                Some(exchange) => state.exchange.insert(exchange),
                None => {
                    return self.violation(
                        ReasonCode::BadAuthenticationMethod,
                        "re-authentication: the method is no longer offered",
                        out,
                    );
                }
            },
            (ReasonCode::ContinueAuthentication, Some(exchange)) => state.exchange.insert(exchange),
            (ReasonCode::ReAuthenticate, Some(_)) => {
                return self.violation(
                    ReasonCode::ProtocolError,
                    "AUTH 0x19 while a re-authentication is under way",
                    out,
                );
            }
            (ReasonCode::ContinueAuthentication, None) => {
                return self.violation(
                    ReasonCode::ProtocolError,
                    "AUTH 0x18 with no authentication under way",
                    out,
                );
            }
            (other, _) => {
                return self.violation(
                    ReasonCode::ProtocolError,
                    &format!("AUTH with reason {:#04x} from a client", other.as_u8()),
                    out,
                );
            }
        };
        let data = auth.properties.authentication_data.clone().unwrap_or_default();
        match exchange.step(&data) {
            AuthStep::Continue(data) => {
                out.send(&auth_packet(
                    ReasonCode::ContinueAuthentication,
                    &state.method,
                    Some(data),
                ));
                After::Continue
            }
            AuthStep::Success { username, data } => {
                state.exchange = None;
                let method = state.method.clone();
                if self.username.as_ref() != Some(&username) {
                    // [MQTT-4.12.1-2]
                    return self.violation(
                        ReasonCode::NotAuthorized,
                        &format!(
                            "re-authenticated as \"{username}\", not as the connection's user [MQTT-4.12.1-2]"
                        ),
                        out,
                    );
                }
                out.send(&auth_packet(ReasonCode::Success, &method, data));
                tracing::info!(event = "client.reauthenticated", client_id = %self.session.client_id, username = %username, "Client {} re-authenticated as {username} ({method}).", self.session.client_id);
                After::Continue
            }
            AuthStep::Failure { detail, .. } => {
                state.exchange = None;
                // [MQTT-4.12.1-2]: 0x87, whatever the method said (DISCONNECT has no 0x86).
                // The method's detail (an unknown user, say) is for the log, not the client.
                let method = state.method.clone();
                self.send_disconnect(ReasonCode::NotAuthorized, Some("re-authentication failed"), out);
                After::Close {
                    publish_will: true,
                    reason: format!(
                        "re-authentication ({method}) failed: {detail} [MQTT-4.12.1-2] (reason 0x87)"
                    ),
                }
            }
        }
    }
}
