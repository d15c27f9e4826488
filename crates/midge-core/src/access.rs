//! Who may connect, publish, subscribe and receive: the decisions the core asks for and the
//! runtime supplies (from a password file and an ACL file, in Mosquitto's formats).
//!
//! The core does not read files or hash passwords. The runtime checks a CONNECT's credentials
//! (off the network threads: hashing is slow on purpose) and passes the verdict to
//! [`Broker::connect_with`](crate::Broker::connect_with) as [`Credentials`]; topic decisions go
//! through the [`AccessControl`] installed with
//! [`Broker::set_access_control`](crate::Broker::set_access_control), which can be replaced
//! at any time (a reload) and applies to every connection's next operation.
//!
//! Where access is checked, as in Mosquitto:
//! - PUBLISH from a client: [`Access::Write`]. Refused: MQTT 3.x drops the message after
//!   acknowledging it; MQTT 5 acknowledges with 0x87 Not authorized.
//! - SUBSCRIBE: [`Access::Subscribe`] per filter. Refused: SUBACK 0x80 (3.1.1) or 0x87 (5.0).
//! - Delivery to a subscriber, retained messages sent at subscribe time included:
//!   [`Access::Read`] for the subscriber. Refused: not delivered.
//! - A will: [`Access::Write`] for its client when it is published, so a will to a topic the
//!   client may not write is never published, even if the rules changed since CONNECT.

use std::fmt::Debug;

/// What a client wants to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Receive a message published to the topic.
    Read,
    /// Publish to the topic.
    Write,
    /// Subscribe with the filter.
    Subscribe,
}

/// The client a decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity<'a> {
    /// Its client identifier.
    pub client_id: &'a str,
    /// Its user name, if it gave one.
    pub username: Option<&'a str>,
    /// The listener it connected through (its place in the configuration, from
    /// [`ClientRules::listener`](crate::ClientRules::listener)), for rules that differ by
    /// listener (`per_listener_settings`).
    pub listener: usize,
}

/// Topic access rules. Implementations must be cheap: they run on the publish path.
pub trait AccessControl: Send + Sync + Debug {
    /// Whether `who` may use `topic` (a topic name, or a filter for [`Access::Subscribe`]).
    fn allows(&self, who: &Identity<'_>, topic: &str, access: Access) -> bool;

    /// True for rules that judge only topics beginning with `$` and allow every other: the
    /// broker then does not ask about the others at all (the rules every broker applies
    /// without an ACL file are such rules).
    fn only_dollar_topics(&self) -> bool {
        false
    }
}

/// The verdict on a CONNECT's user name and password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    /// Nothing to check against (no password file): only `allow_anonymous` applies.
    Unchecked,
    /// The user name and password match.
    Valid,
    /// They do not (or the user is unknown): the client is refused as Mosquitto refuses it,
    /// with "not authorized" (3.1.1 return code 5, MQTT 5 reason code 0x87).
    Invalid,
}
