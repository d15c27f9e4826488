//! Every way a client operation can fail, as one typed enum.
//!
//! The variants say who was at fault: the network ([`ClientError::Io`]), TLS
//! ([`ClientError::Tls`]: a certificate not accepted, an alert from the server), the server refusing
//! us ([`ClientError::ConnectionRefused`]), the server breaking the protocol
//! ([`ClientError::Decode`], [`ClientError::Protocol`]), or the caller ([`ClientError::InvalidTopic`],
//! [`ClientError::InvalidOptions`]). The tools map them to Mosquitto's messages; nothing here
//! formats for a terminal.

use std::io;

use midge_codec::properties::ConnAckProperties;
use midge_codec::{ConnectReturnCode, DecodeError, Disconnect, EncodeError, ProtocolVersion, ReasonCode};

/// Why the client or one of its operations failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Resolving, connecting, reading or writing the socket failed.
    #[error("I/O error: {0}")]
    Io(io::Error),
    /// TLS failed: in the handshake (a server certificate we do not accept, a client
    /// certificate the server does not, nothing in common) or later (an alert, a bad record).
    #[error("TLS error{}: {error}", if *.handshake { " in the handshake" } else { "" })]
    Tls {
        /// What rustls reported.
        error: rustls::Error,
        /// Whether it happened while the connector was opening the stream, before any MQTT
        /// packet was sent.
        handshake: bool,
    },
    /// The server answered CONNECT with a failure reason code.
    #[error("connection refused: {reason:?}")]
    ConnectionRefused {
        /// The reason (for 3.1/3.1.1, the return code mapped to its MQTT 5 equivalent;
        /// [`ClientError::connack_return_code`] gives the original).
        reason: ReasonCode,
        /// The protocol version we spoke.
        protocol: ProtocolVersion,
        /// MQTT 5 CONNACK properties (reason string, server reference, ...).
        properties: Box<ConnAckProperties>,
    },
    /// No CONNACK (or TCP connection) within the connect timeout.
    #[error("timed out connecting to the server")]
    ConnectTimeout,
    /// The server closed the TCP connection.
    #[error("the server closed the connection")]
    ConnectionClosed,
    /// The server sent DISCONNECT (MQTT 5).
    #[error("the server sent DISCONNECT: {:?}", .0.reason_code)]
    ServerDisconnect(Box<Disconnect>),
    /// No PINGRESP came within the ping timeout.
    #[error("keep alive timeout: no PINGRESP from the server")]
    KeepAliveTimeout,
    /// The server sent bytes that are not a valid MQTT packet.
    #[error("malformed packet from the server: {0}")]
    Decode(#[from] DecodeError),
    /// A packet could not be encoded (a field too long for the protocol).
    #[error("cannot encode packet: {0}")]
    Encode(#[from] EncodeError),
    /// The server sent a valid packet at a moment the protocol does not allow.
    #[error("protocol error by the server: {0}")]
    Protocol(&'static str),
    /// A topic name or filter given by the caller is not valid.
    #[error("invalid topic {topic:?}: {reason}")]
    InvalidTopic {
        /// The topic as given.
        topic: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The options cannot make a valid CONNECT.
    #[error("invalid options: {0}")]
    InvalidOptions(&'static str),
    /// A PUBLISH is larger than the server's Maximum Packet Size.
    #[error("packet of {size} bytes exceeds the server's maximum packet size of {max}")]
    PacketTooLarge {
        /// The encoded size.
        size: usize,
        /// The server's limit.
        max: u32,
    },
    /// A PUBLISH asks for a QoS above the server's Maximum QoS.
    #[error("the server does not support QoS {0}")]
    QosNotSupported(u8),
    /// The server did not resume our session after a reconnect; messages that were in flight
    /// are lost to it.
    #[error("the server did not resume the session")]
    SessionLost,
    /// The client was disconnected (by [`crate::Client::disconnect`] or after a fatal error)
    /// before the operation completed.
    #[error("the client is disconnected")]
    Disconnected,
    /// The application asked for a new connection ([`crate::Client::reconnect`]).
    #[error("reconnecting, as asked")]
    ReconnectRequested,
}

impl From<io::Error> for ClientError {
    /// An I/O error, or the TLS error a TLS stream reported through one.
    fn from(error: io::Error) -> Self {
        match crate::tls::rustls_error(&error) {
            Some(tls) => Self::Tls {
                error: tls.clone(),
                handshake: false,
            },
            None => Self::Io(error),
        }
    }
}

impl ClientError {
    /// A connector's failure to open a stream: a TLS error then happened in the handshake.
    pub(crate) fn connecting(error: io::Error) -> Self {
        match Self::from(error) {
            Self::Tls { error, .. } => Self::Tls {
                error,
                handshake: true,
            },
            other => other,
        }
    }

    /// For a refused connection, the MQTT 3.1/3.1.1 CONNACK return code the server sent
    /// (or the nearest, for MQTT 5).
    pub fn connack_return_code(&self) -> Option<ConnectReturnCode> {
        match self {
            Self::ConnectionRefused { reason, .. } => Some(ConnectReturnCode::from_reason(*reason)),
            _ => None,
        }
    }

    /// Copies the error for a second waiter: I/O errors keep their kind and message.
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            Self::Io(e) => Self::Io(io::Error::new(e.kind(), e.to_string())),
            Self::Tls { error, handshake } => Self::Tls {
                error: error.clone(),
                handshake: *handshake,
            },
            Self::ConnectionRefused {
                reason,
                protocol,
                properties,
            } => Self::ConnectionRefused {
                reason: *reason,
                protocol: *protocol,
                properties: properties.clone(),
            },
            Self::ConnectTimeout => Self::ConnectTimeout,
            Self::ConnectionClosed => Self::ConnectionClosed,
            Self::ServerDisconnect(d) => Self::ServerDisconnect(d.clone()),
            Self::KeepAliveTimeout => Self::KeepAliveTimeout,
            Self::Decode(e) => Self::Decode(e.clone()),
            Self::Encode(e) => Self::Encode(e.clone()),
            Self::Protocol(m) => Self::Protocol(m),
            Self::InvalidTopic { topic, reason } => Self::InvalidTopic {
                topic: topic.clone(),
                reason: reason.clone(),
            },
            Self::InvalidOptions(m) => Self::InvalidOptions(m),
            Self::PacketTooLarge { size, max } => Self::PacketTooLarge {
                size: *size,
                max: *max,
            },
            Self::QosNotSupported(q) => Self::QosNotSupported(*q),
            Self::SessionLost => Self::SessionLost,
            Self::Disconnected => Self::Disconnected,
            Self::ReconnectRequested => Self::ReconnectRequested,
        }
    }
}
