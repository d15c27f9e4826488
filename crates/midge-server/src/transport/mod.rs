//! The sockets a connection runs over, used by readiness rather than through buffered
//! `AsyncRead`/`AsyncWrite`.
//!
//! Waiting for readability first and allocating a read buffer only when bytes are there is what
//! keeps an idle connection near a kilobyte: a connection blocked in `read_buf` must own a
//! buffer for the whole wait. Both halves work on `&self`, so no split (and no lock around the
//! stream) is needed. TLS sits on top of this through rustls's sans-I/O API (`tls`).

use std::future::Future;
use std::io;

use bytes::BytesMut;
use tokio::io::{Interest, Ready};
use tokio::net::{TcpStream, UnixStream};

mod tls;
mod websocket;

pub(crate) use tls::TlsStream;
pub(crate) use websocket::WebSocketStream;

/// A connected stream socket.
pub(crate) trait Transport: Send + Sync + 'static {
    /// Completes when a read may make progress (it can still find nothing: then retry).
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        async move { self.ready(Interest::READABLE).await.map(|_| ()) }
    }
    /// Completes when any of `interest` may make progress: one registration where waiting for
    /// reading and writing separately would take two (and twice the room in the connection's
    /// future).
    fn ready(&self, interest: Interest) -> impl Future<Output = io::Result<Ready>> + Send;
    /// Like [`Transport::readable`], for a connection waiting while idle, where the size of
    /// the future is part of what every idle client costs: a socket's is a poll function over
    /// its readiness (a few bytes); layered transports keep the general one.
    fn idle_readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        self.readable()
    }
    /// Completes when a write may make progress.
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send {
        async move { self.ready(Interest::WRITABLE).await.map(|_| ()) }
    }
    /// Reads what is there into `buf`'s spare capacity (at least a kilobyte of it); `WouldBlock`
    /// if nothing is. Layers over a socket read through [`Transport::try_read`].
    fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let start = buf.len();
        let room = (buf.capacity() - start).max(1024);
        buf.resize(start + room, 0);
        let result = self.try_read(&mut buf[start..]);
        buf.truncate(start + *result.as_ref().unwrap_or(&0));
        result
    }
    /// Reads what is there into `buf`; `WouldBlock` if nothing is.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes what the socket takes now; `WouldBlock` if it takes nothing.
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
    /// Writes what the socket takes now of `bufs`, in order; `WouldBlock` if it takes
    /// nothing. Layered transports write the first slice.
    fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match bufs.iter().find(|buf| !buf.is_empty()) {
            Some(buf) => self.try_write(buf),
            None => Ok(0),
        }
    }
    /// The MQTT handshake is over (the CONNACK is written): a TCP socket, accepted with
    /// delayed acknowledgements so that the CONNACK carries the CONNECT's (see
    /// `server::bind_one`), goes back to the kernel's usual acknowledgements, which keep the
    /// latency of what follows low.
    fn handshake_over(&self) {}
    /// Whether an idle connection on this transport can be parked (`parking.rs`): only a
    /// plain socket, whose whole state is in the kernel, can.
    const PARKABLE: bool = false;
    /// The plain socket under this transport, taken off the runtime for parking.
    fn into_parked(self) -> Result<ParkedSocket, Unparkable<Self>>
    where
        Self: Sized,
    {
        Err(Unparkable::Layered(self))
    }
}

/// A socket taken off the runtime while its connection is parked.
#[derive(Debug)]
pub(crate) enum ParkedSocket {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl ParkedSocket {
    pub(crate) fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        match self {
            Self::Tcp(socket) => socket.as_raw_fd(),
            Self::Unix(socket) => socket.as_raw_fd(),
        }
    }
}

/// Why a transport was not parked.
pub(crate) enum Unparkable<S> {
    /// It keeps state in user space (TLS, WebSocket): it stays on the runtime.
    Layered(S),
    /// Taking the socket off the runtime failed; the socket is gone.
    Failed(io::Error),
}

macro_rules! socket_transport {
    ($socket:ty, $parked:ident, $handshake_over:expr) => {
        impl Transport for $socket {
            const PARKABLE: bool = true;
            fn handshake_over(&self) {
                $handshake_over(self)
            }
            fn into_parked(self) -> Result<ParkedSocket, Unparkable<Self>> {
                self.into_std()
                    .map(ParkedSocket::$parked)
                    .map_err(Unparkable::Failed)
            }
            fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
                <$socket>::readable(self)
            }
            fn writable(&self) -> impl Future<Output = io::Result<()>> + Send {
                <$socket>::writable(self)
            }
            fn idle_readable(&self) -> impl Future<Output = io::Result<()>> + Send {
                std::future::poll_fn(move |cx| <$socket>::poll_read_ready(self, cx))
            }
            fn ready(&self, interest: Interest) -> impl Future<Output = io::Result<Ready>> + Send {
                <$socket>::ready(self, interest)
            }
            fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
                <$socket>::try_read_buf(self, buf)
            }
            fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
                <$socket>::try_read(self, buf)
            }
            fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
                <$socket>::try_write(self, buf)
            }
            fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
                <$socket>::try_write_vectored(self, bufs)
            }
        }
    };
}

socket_transport!(TcpStream, Tcp, acknowledge_promptly);
socket_transport!(UnixStream, Unix, |_: &UnixStream| {});

/// Takes a TCP socket out of delayed acknowledgements (`TCP_QUICKACK` on: the kernel leaves
/// its "ping-pong" mode and acknowledges as it usually does). Best effort.
pub(crate) fn acknowledge_promptly(socket: &TcpStream) {
    let _ = rustix::net::sockopt::set_tcp_quickack(socket, true);
}
