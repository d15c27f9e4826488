//! The Midge broker's logic, without I/O: what a broker must do when a packet arrives, a
//! connection ends or a deadline passes. Events in (a decoded packet, a lost connection, the
//! time), encoded packets out.
//!
//! # Layout
//! - [`broker`]: shared state and cross-session decisions: CONNECT, routing, wills, expiry.
//! - [`connection`]: one client's connection; `handle/` holds the per-packet logic.
//! - `session`: per-client state behind its own lock: subscriptions, queue, inflight window.
//! - [`topic_index`], `retained`: the subscription trie and the retained message tree.
//! - [`topic_alias`]: the topic aliases a connection sends, for clients that allow them.
//! - [`message`]: a message and one subscriber's delivery of it.
//! - [`outbox`]: encoded packets waiting for a connection's socket.
//! - [`link`]: how the core wakes or closes a connection it does not own.
//! - `connack`: what a CONNACK says: capabilities, decisions about the client, refusals and
//!   server redirection.
//! - `problem`: Reason Strings, within Request Problem Information and the client's Maximum
//!   Packet Size.
//! - [`access`]: the authentication verdicts and access rules the runtime supplies.
//! - [`auth`]: enhanced authentication (AUTH, §4.12) at CONNECT and on a live connection,
//!   with the methods the runtime supplies.
//! - `persist`: what is written to the journal when persistence is on, and the rebuild
//!   from the store at startup.
//! - [`routes`]: this node's route set (filters with a subscriber here), for a cluster.
//! - [`backpressure`]: flow control from congested subscriber queues back to publishers.
//! - [`config`], [`stats`]: limits in force and counters.
//! - [`admin`]: what the management interface reads and does (sessions, retained messages,
//!   publishing as the broker, the topic tap).
//!
//! # Rules
//! The core never awaits, spawns, touches a socket or reads the clock: `now` is passed in. It
//! never panics on anything a client sends.

pub mod access;
pub mod admin;
pub mod auth;
pub mod backpressure;
pub mod broker;
pub mod config;
mod connack;
pub mod connection;
mod handle;
pub mod link;
pub mod message;
pub mod outbox;
mod persist;
mod problem;
mod ratelimit;
mod retained;
pub mod routes;
mod session;
pub mod stats;
pub mod topic_alias;
pub mod topic_index;

pub use access::{Access, AccessControl, Credentials, Identity};
pub use admin::{SessionInfo, TopicActivity, TopicReport};
pub use auth::{Admitted, AuthExchange, AuthMethods, AuthStep, Handshake};
pub use broker::{Broker, Census, Refusal, Routed};
pub use config::{BrokerConfig, ClientRules, Redirect};
pub use connection::{After, Connection};
pub use link::Link;
pub use message::{Delivery, Message};
pub use outbox::Outbox;
pub use persist::{OFFLINE_QUEUE_IN_MEMORY, Restored};
pub use session::SessionCell;
pub use stats::{DropReason, Stats};
