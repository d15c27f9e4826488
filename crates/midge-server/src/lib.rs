//! The Midge broker's runtime: everything between the operating system and the sans-I/O core.
//!
//! # Layout
//! - [`config`]: reading `mosquitto.conf` (with `include_dir`) into a typed [`config::Config`].
//! - [`bridge`]: Mosquitto's bridges (`connection` blocks), one task each.
//! - [`server`]: binding listeners, accepting connections, driving the core's timers, shutdown.
//! - `connection`: one task per client connection, moving bytes between a socket and the core.
//! - [`persistence`]: opening the store at startup and rebuilding the broker from it.
//! - [`mqttsn`]: the MQTT-SN gateway: UDP listeners whose clients are sessions of the core.
//! - [`limits`]: connection limits (`max_connections`, `global_max_connections`,
//!   `max_connection_rate`) and the counts of refusals.
//! - `sys`: the `$SYS/broker/...` topics, published every `sys_interval`.
//! - [`tls`]: TLS listener configuration from mosquitto.conf options, reloads, certificate
//!   usernames; `transport` moves the bytes.
//! - [`http`]: the HTTP listener: the management API, `/metrics`, the OpenAPI document and the
//!   web view (`http_listener`).
//! - [`security`]: the password file (checked at CONNECT, off the network threads) and the ACL
//!   file (installed in the core).

mod accept_spin;
pub mod bridge;
pub mod cluster;
pub mod config;
mod connection;
pub mod http;
pub mod limits;
pub mod mqttsn;
mod parking;
pub mod persistence;
pub mod security;
pub mod server;
mod sys;
pub mod tls;
mod transport;

pub use server::{ListenerClientOptions, ListenerSecurity, ListenerSpec, Server};
