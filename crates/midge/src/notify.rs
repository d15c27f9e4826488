//! systemd's readiness protocol (sd_notify(3)) for `Type=notify` units: when `NOTIFY_SOCKET` is
//! set, the broker sends `READY=1` once its listeners are open and it has become its `user`, and
//! `STOPPING=1` when it begins to shut down. Without `NOTIFY_SOCKET` (not under systemd) this
//! does nothing.
//!
//! The socket is connected at start, before the broker gives up root, so that a socket only root
//! may reach still works afterwards. A message that cannot be sent is logged, never fatal:
//! systemd then reports the start as timed out, which says more than a broker that refuses to
//! run.

use std::os::unix::net::UnixDatagram;

/// The connection to the service manager, if there is one.
#[derive(Debug)]
pub(crate) struct Notifier {
    socket: Option<UnixDatagram>,
}

impl Notifier {
    /// Connects to `$NOTIFY_SOCKET`, a path or (starting with `@`) an abstract socket name.
    pub(crate) fn from_env() -> Self {
        let Some(address) = std::env::var_os("NOTIFY_SOCKET") else {
            return Self { socket: None };
        };
        let socket = match connect(address.as_encoded_bytes()) {
            Ok(socket) => Some(socket),
            Err(error) => {
                tracing::warn!(
                    "Warning: cannot reach the service manager at NOTIFY_SOCKET={}: {error}",
                    address.to_string_lossy()
                );
                None
            }
        };
        Self { socket }
    }

    /// `READY=1`: the broker serves.
    pub(crate) fn ready(&self) {
        self.send("READY=1\nSTATUS=Serving MQTT\n");
    }

    /// `STOPPING=1`: the broker is shutting down.
    pub(crate) fn stopping(&self) {
        self.send("STOPPING=1\n");
    }

    fn send(&self, message: &str) {
        if let Some(socket) = &self.socket
            && let Err(error) = socket.send(message.as_bytes())
        {
            tracing::warn!("Warning: cannot notify the service manager: {error}");
        }
    }
}

fn connect(address: &[u8]) -> std::io::Result<UnixDatagram> {
    let socket = UnixDatagram::unbound()?;
    match address.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.connect_addr(&address)?;
        }
        None => {
            use std::os::unix::ffi::OsStrExt;
            socket.connect(std::ffi::OsStr::from_bytes(address))?;
        }
    }
    Ok(socket)
}
