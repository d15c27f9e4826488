//! DISCONNECT from a client (§3.14): a normal disconnection discards the will; MQTT 5's
//! "Disconnect with Will Message" (0x04) publishes it; MQTT 5 may also change the session
//! expiry, except from zero (§3.14.2.2.2: a Protocol Error).

use std::time::Duration;

use midge_codec::{Disconnect, ReasonCode};

use crate::connection::{After, Connection};
use crate::outbox::Outbox;

impl Connection {
    pub(crate) fn handle_disconnect(&mut self, disconnect: &Disconnect, out: &mut Outbox) -> After {
        if let Some(seconds) = disconnect.properties.session_expiry_interval {
            if self.connect_expiry_was_zero && seconds != 0 {
                return self.violation(
                    ReasonCode::ProtocolError,
                    "DISCONNECT sets a session expiry after CONNECT set 0 (§3.14.2.2.2)",
                    out,
                );
            }
            let expiry = match seconds {
                u32::MAX => None,
                s => Some(Duration::from_secs(u64::from(s))),
            };
            self.session.state.lock().expiry = expiry;
        }
        let with_will = disconnect.reason_code == ReasonCode::DisconnectWithWillMessage;
        After::Close {
            publish_will: with_will,
            reason: if disconnect.reason_code == ReasonCode::Success {
                "disconnected".into()
            } else {
                format!("disconnected with reason {:#04x}", disconnect.reason_code.as_u8())
            },
        }
    }
}
