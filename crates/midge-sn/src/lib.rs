//! MQTT-SN messages for Midge's gateway: types, strict decoding and encoding. No I/O, no async
//! runtime, no knowledge of the broker.
//!
//! # Layout
//! - [`v12`]: MQTT-SN v1.2 (Stanford-Clark & Truong, IBM, 2013), every message type of its §5.4:
//!   the [`v12::Message`] enum, [`v12::decode`] for one datagram and [`v12::Message::encode`].
//! - [`error`]: every way a datagram fails to decode or a message fails to encode.
//!
//! # Versions
//! MQTT-SN 2.0 (an OASIS draft) renumbers every message type and changes most layouts, so a
//! gateway must know which version a peer speaks before it decodes anything but the CONNECT.
//! Each version lives in a module of its own with its own `Message`; [`Version`] names them and
//! [`Version::of_connect`] tells them apart from a CONNECT datagram. Only 1.2 is implemented.
//!
//! # Rules
//! Decoding never panics, never reads past the datagram and never copies a payload: strings and
//! data are `Bytes` slices of the datagram. One datagram holds exactly one message (the length
//! field must equal the datagram's length), except the forwarder encapsulation, whose inner
//! message follows its header.
//!
//! # Example
//! ```
//! use bytes::{Bytes, BytesMut};
//! use midge_sn::v12::{self, Message, PubAck, ReturnCode};
//!
//! let ack = Message::PubAck(PubAck { topic_id: 7, msg_id: 1, return_code: ReturnCode::Accepted });
//! let mut buf = BytesMut::new();
//! ack.encode(&mut buf).unwrap();
//! assert_eq!(&buf[..], &[0x07, 0x0d, 0x00, 0x07, 0x00, 0x01, 0x00]);
//! assert_eq!(v12::decode(buf.freeze()), Ok(ack));
//! ```

pub mod error;
pub mod v12;

pub use error::{DecodeError, EncodeError};

/// The MQTT-SN protocol versions this crate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Version {
    /// MQTT-SN v1.2 (protocol id 0x01 in CONNECT).
    V1_2,
}

impl Version {
    /// The version a CONNECT datagram asks for, if this crate knows it: v1.2's CONNECT is
    /// message type 0x04 with protocol id 0x01. `None` for anything else (2.0's CONNECT is
    /// type 0x01 with version 0x02, which this crate does not speak yet).
    pub fn of_connect(datagram: &[u8]) -> Option<Self> {
        let body = match datagram {
            [0x01, _, _, rest @ ..] => rest,
            [_, rest @ ..] => rest,
            [] => return None,
        };
        match body {
            [0x04, _flags, 0x01, ..] => Some(Self::V1_2),
            _ => None,
        }
    }

    /// How logs and `$SYS` name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1_2 => "mqtt-sn 1.2",
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
