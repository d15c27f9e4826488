//! `protocol websockets`: MQTT in WebSocket binary frames, with a raw WebSocket client
//! (tungstenite) so the framing is under the test's control: a packet split across frames,
//! several packets in one frame, the `mqtt` subprotocol, text frames refused, and a TCP client
//! on the same broker seeing the same messages.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

mod support;

use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use midge_codec::{Decoder, Packet, ProtocolVersion, QoS, ReasonCode};
use support::packets::*;
use support::{Midge, RawClient};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

const V311: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;

/// A broker with a TCP listener (first, for the harness) and a WebSocket listener.
fn broker() -> (Midge, u16) {
    let midge = Midge::start("listener 0 127.0.0.1\nprotocol websockets");
    let line = midge.wait_for_log("Opening websockets listen socket on port");
    let port = line
        .rsplit(' ')
        .next()
        .and_then(|p| p.trim_end_matches('.').parse().ok())
        .expect("port");
    (midge, port)
}

struct WsClient {
    socket: WebSocket<TcpStream>,
    decoder: Decoder,
    input: BytesMut,
    version: ProtocolVersion,
}

impl WsClient {
    fn open(port: u16, subprotocol: Option<&str>) -> Result<(Self, Option<String>), tungstenite::Error> {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut request = format!("ws://127.0.0.1:{port}/mqtt")
            .into_client_request()
            .unwrap();
        if let Some(protocol) = subprotocol {
            request
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
        }
        let (socket, response) = tungstenite::client(request, stream).map_err(|e| match e {
            tungstenite::HandshakeError::Failure(e) => e,
            tungstenite::HandshakeError::Interrupted(_) => panic!("blocking handshake interrupted"),
        })?;
        let chosen = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .map(|v| v.to_str().unwrap().to_owned());
        Ok((
            Self {
                socket,
                decoder: Decoder::new(V311, 1 << 20),
                input: BytesMut::new(),
                version: V311,
            },
            chosen,
        ))
    }

    fn bytes(&self, packet: &Packet) -> Vec<u8> {
        let mut buf = BytesMut::new();
        packet.encode(self.version, &mut buf).unwrap();
        buf.to_vec()
    }

    fn send_frame(&mut self, bytes: Vec<u8>) {
        self.socket.send(Message::Binary(Bytes::from(bytes))).unwrap();
    }

    fn recv(&mut self) -> Option<Packet> {
        loop {
            if let Some(packet) = self.decoder.decode(&mut self.input).expect("a valid packet") {
                return Some(packet);
            }
            match self.socket.read() {
                Ok(Message::Binary(data)) => self.input.extend_from_slice(&data),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(other) => panic!("unexpected frame {other:?}"),
            }
        }
    }

    fn set_version(&mut self, version: ProtocolVersion) {
        self.version = version;
        self.decoder.set_version(version);
    }
}

#[test]
fn a_packet_split_across_frames_and_packets_sharing_a_frame_are_read_as_a_byte_stream() {
    let (midge, port) = broker();
    let (mut ws, chosen) = WsClient::open(port, Some("mqtt")).unwrap();
    assert_eq!(chosen.as_deref(), Some("mqtt"), "the mqtt subprotocol is chosen");

    // CONNECT in three frames, cut inside the fixed header and inside the client id.
    let connect = ws.bytes(&connect(V311, "ws-client"));
    ws.send_frame(connect[..1].to_vec());
    ws.send_frame(connect[1..7].to_vec());
    ws.send_frame(connect[7..].to_vec());
    let Some(Packet::ConnAck(ack)) = ws.recv() else {
        panic!("no CONNACK")
    };
    assert_eq!(ack.reason_code, ReasonCode::Success);

    // SUBSCRIBE and a QoS 1 PUBLISH to itself, in one frame.
    let mut both = ws.bytes(&subscribe(&[("ws/#", QoS::AtLeastOnce)], 1));
    both.extend(ws.bytes(&publish("ws/echo", "one frame, two packets", QoS::AtLeastOnce, 2)));
    ws.send_frame(both);
    let mut seen = Vec::new();
    while seen.len() < 3 {
        seen.push(ws.recv().expect("a packet"));
    }
    assert!(seen.iter().any(|p| matches!(p, Packet::SubAck(_))), "{seen:?}");
    assert!(seen.iter().any(|p| matches!(p, Packet::PubAck(_))), "{seen:?}");
    let echoed = seen
        .iter()
        .find_map(|p| match p {
            Packet::Publish(p) => Some(p.clone()),
            _ => None,
        })
        .expect("the PUBLISH back");
    assert_eq!(&echoed.payload[..], b"one frame, two packets");
    if let Some(id) = echoed.packet_id {
        ws.send_frame(ws.bytes(&puback(id)));
    }

    // A TCP client and the WebSocket client see each other's messages, large ones included.
    let mut tcp = RawClient::session(midge.addr(), V311, "tcp-client");
    tcp.subscribe(&[("ws/#", QoS::AtMostOnce)]);
    let big = Bytes::from(vec![b'x'; 300_000]);
    let packet = publish("ws/big", big.clone(), QoS::AtMostOnce, 0);
    let bytes = ws.bytes(&packet);
    // In 4 KiB frames, as a browser might send a large message.
    for chunk in bytes.chunks(4096) {
        ws.send_frame(chunk.to_vec());
    }
    assert_eq!(tcp.recv_publish().payload, big);
    let Some(Packet::Publish(back)) = ws.recv() else {
        panic!("no PUBLISH over WebSocket")
    };
    assert_eq!(back.payload.len(), big.len());
    tcp.send(&publish("ws/from-tcp", "hello websocket", QoS::AtMostOnce, 0));
    let Some(Packet::Publish(from_tcp)) = ws.recv() else {
        panic!("no PUBLISH from TCP")
    };
    assert_eq!(&from_tcp.payload[..], b"hello websocket");
    midge.wait_for_log("as ws-client");
}

#[test]
fn subprotocols_other_than_mqtt_are_refused_and_none_is_tolerated() {
    let (midge, port) = broker();
    let refused = WsClient::open(port, Some("chat"));
    assert!(refused.is_err(), "a chat client was upgraded");
    midge.wait_for_log("WebSocket upgrade from 127.0.0.1");

    let (mut ws, chosen) = WsClient::open(port, Some("mqttv3.1")).unwrap();
    assert_eq!(chosen.as_deref(), Some("mqttv3.1"));
    ws.send_frame(ws.bytes(&connect(ProtocolVersion::V31, "old")));
    assert!(matches!(ws.recv(), Some(Packet::ConnAck(_))));

    let (mut ws, chosen) = WsClient::open(port, None).unwrap();
    assert_eq!(chosen, None);
    ws.set_version(V5);
    ws.send_frame(ws.bytes(&connect(V5, "no-subprotocol")));
    let Some(Packet::ConnAck(ack)) = ws.recv() else {
        panic!("no CONNACK")
    };
    assert_eq!(ack.reason_code, ReasonCode::Success);
}

#[test]
fn a_text_frame_or_plain_mqtt_closes_the_connection_and_nothing_else() {
    let (midge, port) = broker();
    let (mut ws, _) = WsClient::open(port, Some("mqtt")).unwrap();
    ws.send_frame(ws.bytes(&connect(V311, "texter")));
    assert!(matches!(ws.recv(), Some(Packet::ConnAck(_))));
    ws.socket.send(Message::Text("SUBSCRIBE #".into())).unwrap();
    assert!(
        ws.recv().is_none(),
        "the connection stays open after a text frame"
    );
    midge.wait_for_log("Socket error on client texter");

    // MQTT without the upgrade: no CONNACK, the socket closes.
    let mut plain = RawClient::connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)), V311);
    plain.send(&connect(V311, "plain"));
    plain.expect_close();
    let (mut ws, _) = WsClient::open(port, Some("mqtt")).unwrap();
    ws.send_frame(ws.bytes(&connect(V311, "after")));
    assert!(matches!(ws.recv(), Some(Packet::ConnAck(_))));
}
