//! The transport seam: how the client gets a byte stream to the server.
//!
//! The connection loop is generic over any `AsyncRead + AsyncWrite` stream, so TLS, WebSocket
//! or a test's in-memory pipe plug in by implementing [`Connector`]; this module owns only the
//! plain TCP one. A connector is called again for each reconnect.

use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A byte stream the client can speak MQTT over.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for T {}

/// Opens a new stream to the server; called for the first connection and each reconnect.
pub trait Connector: Send + Sync + 'static {
    /// The stream it opens.
    type Stream: Transport;

    /// Opens one stream.
    fn connect(&self) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// Plain TCP to `host:port`, trying each resolved address in turn.
#[derive(Debug, Clone)]
pub struct TcpConnector {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Disable Nagle's algorithm.
    pub nodelay: bool,
}

impl Connector for TcpConnector {
    type Stream = TcpStream;

    async fn connect(&self) -> io::Result<TcpStream> {
        let stream = TcpStream::connect((self.host.as_str(), self.port)).await?;
        if self.nodelay {
            stream.set_nodelay(true)?;
        }
        Ok(stream)
    }
}
