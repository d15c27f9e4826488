//! Where an MQTT-SN client is: its UDP address, or, for a client behind a forwarder (MQTT-SN
//! 1.2 §5.5), the forwarder's UDP address and the Wireless Node Id the forwarder relays it
//! for. The pair is the client's address in every respect (session binding, wake check, rate
//! limits), so two nodes behind one forwarder are two clients, and a node is never the
//! forwarder itself.
//!
//! This module owns the forwarder encapsulation: [`Peer::open`] takes a decoded Encapsulated
//! message apart (the inner message decoded by the same strict rules as a datagram of its own;
//! nesting is refused by the codec), and [`Peer::encode`] wraps every message to a forwarded
//! client back up with the node id it came with.
//!
//! The Ctrl octet's radius is "only relevant in direction gateway to forwarder" (§5.5): what
//! the gateway sends to one node goes with radius 0, which leaves the hop count to the
//! forwarder's network (ZigBee's and XBee's "0 = maximum hops"), as Paho's gateway does; a
//! GWINFO answering a SEARCHGW goes with the SEARCHGW's own radius (§5.4.2), since the client
//! asked for answers within that many hops. The radius a forwarder sends is ignored.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use bytes::{Bytes, BytesMut};
use midge_sn::v12::{self, Encapsulated, Message};
use midge_sn::{DecodeError, EncodeError};

/// A client's address: a UDP address, and a wireless node id when a forwarder relays it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Peer {
    addr: SocketAddr,
    node: Option<Bytes>,
}

/// What per-address limits (`max_connection_rate`) count by: the IP address of a direct
/// client (its ports share one count), the IP address and node id of a forwarded one.
pub(crate) type RateKey = (IpAddr, Option<Bytes>);

impl Peer {
    /// A client that sends its datagrams itself.
    pub(crate) fn direct(addr: SocketAddr) -> Self {
        Self { addr, node: None }
    }

    /// The client `encapsulated` names, behind the forwarder at `from`, and the message the
    /// forwarder relays for it. An inner message that does not decode is the error.
    pub(crate) fn open(from: SocketAddr, encapsulated: Encapsulated) -> Result<(Self, Message), DecodeError> {
        let inner = v12::decode(encapsulated.inner)?;
        // A copy of its own: the session keeps the id, not the whole datagram it came in.
        let node = Bytes::copy_from_slice(&encapsulated.node_id);
        Ok((
            Self {
                addr: from,
                node: Some(node),
            },
            inner,
        ))
    }

    /// The UDP address datagrams for this client go to (its forwarder's, if it has one).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The key of this client's per-address limits.
    pub(crate) fn rate_key(&self) -> RateKey {
        (self.addr.ip(), self.node.clone())
    }

    /// Appends `message` as this client must receive it: as it is, or encapsulated for its
    /// forwarder with its node id and the Ctrl octet's `radius`. On error nothing is written.
    pub(crate) fn encode(
        &self,
        message: &Message,
        radius: u8,
        buf: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let Some(node) = &self.node else {
            return message.encode(buf);
        };
        let mut inner = BytesMut::new();
        message.encode(&mut inner)?;
        Message::Encapsulated(Encapsulated {
            radius,
            node_id: node.clone(),
            inner: inner.freeze(),
        })
        .encode(buf)
    }

    /// The size of the datagram [`Peer::encode`] makes of `message`.
    pub(crate) fn encoded_len(&self, message: &Message) -> Result<usize, EncodeError> {
        let inner = message.encoded_len()?;
        let Some(node) = &self.node else {
            return Ok(inner);
        };
        // Length, MsgType, Ctrl and the node id; the three-octet length form above 255.
        let header = 3 + node.len();
        let header = if header > 255 { header + 2 } else { header };
        Ok(header + inner)
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)?;
        if let Some(node) = &self.node {
            f.write_str(" node ")?;
            for byte in node.iter() {
                write!(f, "{byte:02x}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail by panicking")]

    use super::*;

    fn forwarder() -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 7], 40_000))
    }

    fn encapsulate(node: &'static [u8], message: &Message) -> Encapsulated {
        let mut inner = BytesMut::new();
        message.encode(&mut inner).unwrap();
        Encapsulated {
            radius: 3,
            node_id: Bytes::from_static(node),
            inner: inner.freeze(),
        }
    }

    #[test]
    fn a_node_behind_a_forwarder_is_a_peer_of_its_own() {
        let ping = Message::PingReq { client_id: None };
        let (a, inner) = Peer::open(forwarder(), encapsulate(&[0, 1], &ping)).unwrap();
        let (b, _) = Peer::open(forwarder(), encapsulate(&[0, 2], &ping)).unwrap();
        assert_eq!(inner, ping);
        assert_ne!(a, b);
        assert_ne!(a, Peer::direct(forwarder()));
        assert_ne!(a.rate_key(), b.rate_key());
        assert_eq!(a.addr(), forwarder());
        assert_eq!(a.to_string(), "192.0.2.7:40000 node 0001");
    }

    #[test]
    fn a_malformed_inner_message_is_an_error() {
        let bad = Encapsulated {
            radius: 0,
            node_id: Bytes::from_static(b"n"),
            inner: Bytes::from_static(&[3, 0x16]),
        };
        assert!(matches!(
            Peer::open(forwarder(), bad),
            Err(DecodeError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn replies_go_back_encapsulated_with_the_node_id_and_the_radius_asked() {
        let ack = Message::ConnAck {
            return_code: v12::ReturnCode::Accepted,
        };
        let (peer, _) = Peer::open(forwarder(), encapsulate(&[0xAB, 0xCD], &ack)).unwrap();
        let mut buf = BytesMut::new();
        peer.encode(&ack, 0, &mut buf).unwrap();
        assert_eq!(&buf[..], &[5, 0xFE, 0, 0xAB, 0xCD, 3, 0x05, 0]);
        assert_eq!(peer.encoded_len(&ack).unwrap(), buf.len());
        let mut buf = BytesMut::new();
        peer.encode(&ack, 2, &mut buf).unwrap();
        assert_eq!(buf[2], 2);

        let mut direct = BytesMut::new();
        Peer::direct(forwarder()).encode(&ack, 0, &mut direct).unwrap();
        assert_eq!(&direct[..], &[3, 0x05, 0]);
    }

    #[test]
    fn a_long_node_id_is_measured_as_encoded() {
        let node: &'static [u8] = &[7; 300];
        let ping = Message::PingResp;
        let (peer, _) = Peer::open(forwarder(), encapsulate(node, &ping)).unwrap();
        let mut buf = BytesMut::new();
        peer.encode(&ping, 0, &mut buf).unwrap();
        assert_eq!(peer.encoded_len(&ping).unwrap(), buf.len());
    }
}
