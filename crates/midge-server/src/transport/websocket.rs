//! MQTT over WebSockets (`protocol websockets`), on plain TCP or on TLS, by readiness.
//!
//! tungstenite does the HTTP upgrade and the framing; it runs here over the inner transport's
//! non-blocking reads and writes, so the connection loop sees a byte stream through the same
//! [`Transport`] calls as on TCP. MQTT packets may span frames and a frame may hold several
//! packets: the codec only ever sees bytes. Only binary frames may carry MQTT [MQTT-6.0.0-1];
//! anything else closes the connection.
//!
//! The upgrade request is read whole (up to [`MAX_REQUEST`]) before tungstenite sees it, so its
//! handshake never waits for more bytes and needs no readiness of its own.

use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{Interest, Ready};
use tungstenite::handshake::HandshakeError;
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::http::{HeaderValue, StatusCode};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use super::Transport;

/// The largest upgrade request read (Mosquitto's `websockets_headers_size` default is 4096).
const MAX_REQUEST: usize = 16 * 1024;
/// The most of the outbox put into one frame; larger writes take several frames.
const MAX_FRAME: usize = 64 * 1024;
/// Frames that may wait for a socket that takes nothing before writes are refused.
const MAX_WRITE_BUFFER: usize = 2 * MAX_FRAME + 1024;
/// The WebSocket subprotocols MQTT clients ask for: `mqtt` (3.1.1 and 5.0) and `mqttv3.1`.
const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// The inner transport as tungstenite's `Read`/`Write`, never blocking; it first gives back
/// what was read of the upgrade request.
#[derive(Debug)]
struct Io<T> {
    inner: Arc<T>,
    replay: Bytes,
}

impl<T: Transport> Read for Io<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.replay.is_empty() {
            let n = buf.len().min(self.replay.len());
            buf[..n].copy_from_slice(&self.replay.split_to(n));
            return Ok(n);
        }
        self.inner.try_read(buf)
    }
}

impl<T: Transport> Write for Io<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.try_write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A WebSocket connection carrying MQTT.
#[derive(Debug)]
pub(crate) struct WebSocketStream<T> {
    inner: Arc<T>,
    state: Mutex<State<T>>,
}

#[derive(Debug)]
struct State<T> {
    socket: WebSocket<Io<T>>,
    /// The rest of a binary frame the caller has not read yet.
    pending: Bytes,
    /// Frames (or a pong) wait in tungstenite for the socket to take them.
    unflushed: bool,
}

impl<T: Transport> WebSocketStream<T> {
    /// Reads the upgrade request from `inner` and answers it, choosing the `mqtt`
    /// subprotocol. The caller bounds it in time.
    pub(crate) async fn accept(inner: T, max_message: usize) -> io::Result<Self> {
        let inner = Arc::new(inner);
        let request = read_request(&*inner).await?;
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0)
            .max_write_buffer_size(MAX_WRITE_BUFFER)
            .max_message_size(Some(max_message))
            .max_frame_size(Some(max_message));
        let io = Io {
            inner: inner.clone(),
            replay: request,
        };
        let mut handshake = tungstenite::accept_hdr_with_config(io, choose_subprotocol, Some(config));
        let socket = loop {
            match handshake {
                Ok(socket) => break socket,
                Err(HandshakeError::Interrupted(mid)) => {
                    // Only the reply can be left to write: the request was read whole.
                    inner.writable().await?;
                    handshake = mid.handshake();
                }
                Err(HandshakeError::Failure(error)) => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, error));
                }
            }
        };
        Ok(Self {
            inner,
            state: Mutex::new(State {
                socket,
                pending: Bytes::new(),
                unflushed: false,
            }),
        })
    }

    async fn ready_inner(&self, interest: Interest) -> io::Result<Ready> {
        loop {
            let unflushed = {
                let state = self.state.lock();
                if interest.is_readable() && !state.pending.is_empty() {
                    return Ok(Ready::READABLE);
                }
                state.unflushed
            };
            let wanted = if unflushed {
                interest | Interest::WRITABLE
            } else {
                interest
            };
            let ready = self.inner.ready(wanted).await?;
            let mut still_unflushed = false;
            if ready.is_writable() && unflushed {
                let mut state = self.state.lock();
                flush(&mut state)?;
                still_unflushed = state.unflushed;
            }
            let mut reported = Ready::EMPTY;
            if interest.is_readable() {
                reported |= ready & (Ready::READABLE | Ready::READ_CLOSED);
            }
            if interest.is_writable() && ready.is_writable() && !still_unflushed {
                reported |= Ready::WRITABLE;
            }
            if !reported.is_empty() {
                return Ok(reported);
            }
        }
    }
}

/// Reads the HTTP upgrade request up to its blank line (and whatever came with it).
async fn read_request<T: Transport>(inner: &T) -> io::Result<Bytes> {
    let mut request = BytesMut::new();
    let mut chunk = [0u8; 2048];
    loop {
        inner.readable().await?;
        match inner.try_read(&mut chunk) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the client closed the connection before the WebSocket upgrade",
                ));
            }
            Ok(n) => request.extend_from_slice(&chunk[..n]),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            Err(error) => return Err(error),
        }
        // Anything but an HTTP GET (plain MQTT sent to the WebSocket port, say) is refused at
        // once rather than left to the timeout.
        let start = &request[..request.len().min(4)];
        if !b"GET ".starts_with(start) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not an HTTP upgrade request (plain MQTT on a WebSocket listener?)",
            ));
        }
        if request.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(request.freeze());
        }
        if request.len() > MAX_REQUEST {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the WebSocket upgrade request is longer than {MAX_REQUEST} bytes"),
            ));
        }
    }
}

/// Answers with the first MQTT subprotocol the client offers. A client that offers none is
/// served anyway (some embedded clients omit it); one that offers only others is refused.
/// (The signature is tungstenite's callback's.)
#[allow(clippy::result_large_err, reason = "tungstenite's callback signature")]
fn choose_subprotocol(request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    let offered: Vec<String> = request
        .headers()
        .get_all("Sec-WebSocket-Protocol")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(',').map(|p| p.trim().to_owned()))
        .filter(|p| !p.is_empty())
        .collect();
    if offered.is_empty() {
        return Ok(response);
    }
    match offered
        .iter()
        .find(|p| SUBPROTOCOLS.iter().any(|known| p.eq_ignore_ascii_case(known)))
    {
        Some(chosen) => {
            if let Ok(value) = HeaderValue::from_str(chosen) {
                response.headers_mut().insert("Sec-WebSocket-Protocol", value);
            }
            Ok(response)
        }
        None => {
            let mut refusal = ErrorResponse::new(Some(format!(
                "unsupported WebSocket subprotocol; this is an MQTT listener ({})",
                SUBPROTOCOLS.join(", ")
            )));
            *refusal.status_mut() = StatusCode::BAD_REQUEST;
            Err(refusal)
        }
    }
}

/// Writes what tungstenite holds, as far as the socket takes it.
fn flush<T: Transport>(state: &mut State<T>) -> io::Result<()> {
    match state.socket.flush() {
        Ok(()) => {
            state.unflushed = false;
            Ok(())
        }
        Err(tungstenite::Error::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => {
            state.unflushed = true;
            Ok(())
        }
        Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
            state.unflushed = false;
            Ok(())
        }
        Err(error) => Err(to_io(error)),
    }
}

fn to_io(error: tungstenite::Error) -> io::Error {
    match error {
        tungstenite::Error::Io(error) => error,
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

impl<T: Transport> Transport for WebSocketStream<T> {
    fn handshake_over(&self) {
        self.inner.handshake_over();
    }

    async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.ready_inner(interest).await
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut state = self.state.lock();
        loop {
            if !state.pending.is_empty() {
                let n = buf.len().min(state.pending.len());
                buf[..n].copy_from_slice(&state.pending.split_to(n));
                return Ok(n);
            }
            match state.socket.read() {
                Ok(Message::Binary(data)) => state.pending = data,
                Ok(Message::Text(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a WebSocket text frame: MQTT travels in binary frames [MQTT-6.0.0-1]",
                    ));
                }
                // tungstenite queued the pong (or the close reply): send it along.
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => flush(&mut state)?,
                Ok(Message::Close(_)) => {
                    flush(&mut state)?;
                    return Ok(0);
                }
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return Ok(0);
                }
                Err(error) => return Err(to_io(error)),
            }
        }
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut state = self.state.lock();
        if state.unflushed {
            flush(&mut state)?;
        }
        let n = buf.len().min(MAX_FRAME);
        match state
            .socket
            .write(Message::Binary(Bytes::copy_from_slice(&buf[..n])))
        {
            Ok(()) => {}
            // Queued in tungstenite; it goes out when the socket takes it.
            Err(tungstenite::Error::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => {
                state.unflushed = true;
            }
            Err(tungstenite::Error::WriteBufferFull(_)) => return Err(io::ErrorKind::WouldBlock.into()),
            Err(error) => return Err(to_io(error)),
        }
        flush(&mut state)?;
        Ok(n)
    }
}
