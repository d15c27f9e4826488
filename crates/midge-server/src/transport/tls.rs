//! TLS over a TCP socket, by readiness: rustls's sans-I/O connection fed from the socket's
//! non-blocking reads and drained into its non-blocking writes.
//!
//! The connection loop sees plaintext through the same [`Transport`] calls as on plain TCP.
//! What makes TLS different is hidden here: a read may consume records without yielding any
//! plaintext (a handshake message, a key update), rustls may hold plaintext already decrypted
//! while the socket has nothing more (so readiness is reported from its buffer first), and
//! records may wait to be written while the caller has nothing to send (so readiness includes
//! writability until they are out).

use std::future::Future;
use std::io::{self, Read, Write};

use parking_lot::Mutex;
use rustls::ServerConnection;
use tokio::io::{Interest, Ready};
use tokio::net::TcpStream;

use super::Transport;

/// Encrypted bytes that may wait in rustls for a socket that takes nothing: beyond this a
/// write is refused until the socket drains (the connection's own outbox holds the rest).
const BUFFER_LIMIT: usize = 32 * 1024;

/// A TLS connection accepted on a listener.
#[derive(Debug)]
pub(crate) struct TlsStream {
    tcp: TcpStream,
    // A lock only to give `&self` access as `Transport` asks; one task uses the stream, so it
    // is never contended.
    tls: Mutex<ServerConnection>,
}

/// The socket as rustls's `Read`/`Write`, never blocking.
struct Socket<'a>(&'a TcpStream);

impl Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for Socket<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TlsStream {
    /// Starts a server-side TLS session on `tcp`; [`TlsStream::handshake`] completes it.
    pub(crate) fn new(tcp: TcpStream, config: std::sync::Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let mut tls = ServerConnection::new(config).map_err(io::Error::other)?;
        tls.set_buffer_limit(Some(BUFFER_LIMIT));
        Ok(Self {
            tcp,
            tls: Mutex::new(tls),
        })
    }

    /// Runs the handshake to its end (the caller bounds it in time). Fails with the reason
    /// rustls gives (an unknown CA, an expired certificate, no common version, ...), after
    /// sending the client the matching alert.
    pub(crate) async fn handshake(&self) -> io::Result<()> {
        loop {
            let wants_write = {
                let mut tls = self.tls.lock();
                loop {
                    flush(&mut tls, &self.tcp)?;
                    if !tls.is_handshaking() {
                        return Ok(());
                    }
                    match tls.read_tls(&mut Socket(&self.tcp)) {
                        Ok(0) => {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "the client closed the connection during the TLS handshake",
                            ));
                        }
                        Ok(_) => process(&mut tls, &self.tcp)?,
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                        Err(error) => return Err(error),
                    }
                }
                tls.wants_write()
            };
            let interest = if wants_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            self.tcp.ready(interest).await?;
        }
    }

    /// The client's certificate (the first of its chain), once the handshake verified it.
    pub(crate) fn peer_certificate(&self) -> Option<rustls_pki_types::CertificateDer<'static>> {
        self.tls
            .lock()
            .peer_certificates()
            .and_then(|chain| chain.first().cloned())
    }

    /// The negotiated version and cipher suite, for the log.
    pub(crate) fn describe(&self) -> String {
        let tls = self.tls.lock();
        let version = tls.protocol_version().and_then(|v| v.as_str()).unwrap_or("TLS");
        let suite = tls
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("?");
        format!("{version} {suite}")
    }

    async fn ready_inner(&self, interest: Interest) -> io::Result<Ready> {
        loop {
            let (plaintext, wants_write) = {
                let mut tls = self.tls.lock();
                let plaintext = match tls.process_new_packets() {
                    Ok(state) => state.plaintext_bytes_to_read() > 0 || state.peer_has_closed(),
                    // Let the read report it.
                    Err(_) => true,
                };
                (plaintext, tls.wants_write())
            };
            if interest.is_readable() && plaintext {
                return Ok(Ready::READABLE);
            }
            let wanted = if wants_write {
                interest | Interest::WRITABLE
            } else {
                interest
            };
            let ready = self.tcp.ready(wanted).await?;
            let mut still_pending = false;
            if ready.is_writable() && wants_write {
                let mut tls = self.tls.lock();
                flush(&mut tls, &self.tcp)?;
                still_pending = tls.wants_write();
            }
            let mut reported = Ready::EMPTY;
            if interest.is_readable() {
                reported |= ready & (Ready::READABLE | Ready::READ_CLOSED);
            }
            if interest.is_writable() && ready.is_writable() && !still_pending {
                reported |= Ready::WRITABLE;
            }
            if !reported.is_empty() {
                return Ok(reported);
            }
        }
    }
}

/// Writes the records rustls has ready, as far as the socket takes them.
fn flush(tls: &mut ServerConnection, tcp: &TcpStream) -> io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(&mut Socket(tcp)) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Processes the records read; on a TLS error, tries to send the client its alert first.
fn process(tls: &mut ServerConnection, tcp: &TcpStream) -> io::Result<()> {
    match tls.process_new_packets() {
        Ok(_) => Ok(()),
        Err(error) => {
            let _ = flush(tls, tcp);
            Err(io::Error::new(io::ErrorKind::InvalidData, error))
        }
    }
}

impl Transport for TlsStream {
    fn handshake_over(&self) {
        super::acknowledge_promptly(&self.tcp);
    }

    fn ready(&self, interest: Interest) -> impl Future<Output = io::Result<Ready>> + Send {
        self.ready_inner(interest)
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut tls = self.tls.lock();
        loop {
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                // The socket closed without close_notify: an end like any other to MQTT.
                Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(error) => return Err(error),
            }
            match tls.read_tls(&mut Socket(&self.tcp)) {
                Ok(0) => {
                    process(&mut tls, &self.tcp)?;
                    return match tls.reader().read(buf) {
                        Ok(n) => Ok(n),
                        Err(error)
                            if matches!(
                                error.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::UnexpectedEof
                            ) =>
                        {
                            Ok(0)
                        }
                        Err(error) => Err(error),
                    };
                }
                Ok(_) => {}
                Err(error) => return Err(error),
            }
            process(&mut tls, &self.tcp)?;
            // Handshake messages, key updates and alerts go out as soon as they are made.
            flush(&mut tls, &self.tcp)?;
        }
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut tls = self.tls.lock();
        flush(&mut tls, &self.tcp)?;
        let accepted = tls.writer().write(buf)?;
        flush(&mut tls, &self.tcp)?;
        if accepted == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(accepted)
    }
}
