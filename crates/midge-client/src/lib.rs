//! An async MQTT 3.1, 3.1.1 and 5.0 client on `midge-codec`: the one client shared by the
//! `midge pub`/`sub` tools, bridges, the benchmark and the tests.
//!
//! # Layout
//! - [`options`]: what to connect to and what to ask for ([`ClientOptions`], [`LastWill`]).
//! - [`client`]: the [`Client`] handle (publish, subscribe, unsubscribe, disconnect) and the
//!   [`Events`] receiver (incoming PUBLISH, DISCONNECT, connection loss).
//! - `connection`: the task that owns the stream: framing, QoS flows, keep alive, flow control.
//! - `session`: packet identifiers and in-flight state, which survive a reconnect.
//! - `backoff`: the wait between connection attempts (fixed, or jittered up to a cap).
//! - [`transport`]: the [`Connector`] seam, and plain TCP.
//! - [`tls`]: TLS options built into a rustls configuration, and [`TlsConnector`], TLS over any
//!   other connector.
//! - [`error`]: what can go wrong, as the [`ClientError`] enum.
//!
//! # Example
//! ```no_run
//! # async fn run() -> Result<(), midge_client::ClientError> {
//! use midge_client::{Client, ClientOptions, Event};
//! use midge_codec::{QoS, properties::PublishProperties};
//!
//! let (client, mut events) = Client::connect(ClientOptions::new("localhost", 1883)).await?;
//! client.subscribe_one("sensors/#", QoS::AtLeastOnce).await?;
//! client.publish("sensors/1", "21.5", QoS::AtLeastOnce, false, PublishProperties::default()).await?;
//! if let Some(Event::Publish(message)) = events.recv().await {
//!     println!("{} {:?}", message.topic, message.payload);
//! }
//! # Ok(()) }
//! ```

mod backoff;
pub mod client;
mod connection;
pub mod error;
pub mod options;
mod session;
pub mod tls;
pub mod transport;

pub use client::{Client, Event, Events, Pending, PendingPublish};
pub use error::ClientError;
pub use options::{ClientOptions, Direction, LastWill, PacketTrace};
pub use session::PublishOutcome;
pub use tls::{TlsConnector, TlsOptions, TlsSetupError, TlsVersion};
pub use transport::{Connector, TcpConnector, Transport};
