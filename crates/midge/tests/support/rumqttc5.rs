//! rumqttc's MQTT 5 client as the tests drive it: `Client5` runs rumqttc's event loop in a task
//! and hands every incoming packet (or the error that ended the loop) to the test on a channel;
//! `Wire5` sends packets that rumqttc's client API cannot send (a DISCONNECT with properties)
//! with rumqttc's own v5 encoder and reads the answers with its decoder.
//!
//! Included with `#[path = "support/rumqttc5.rs"] mod rumqttc5;` by the files that use it, after
//! `mod support;`, so that the other test binaries do not compile it.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, Connect, ConnectProperties, DisconnectReasonCode, LastWill, Packet, PubAck, Publish,
};
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, StateError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::support::{Midge, WAIT};

/// An MQTT 5 rumqttc client whose event loop runs in its own task.
pub struct Client5 {
    pub client: AsyncClient,
    pub events: mpsc::UnboundedReceiver<Result<Packet, ConnectionError>>,
    pub eventloop: tokio::task::JoinHandle<()>,
}

impl Client5 {
    /// Connects with rumqttc's defaults (keep alive 30 s) changed by `configure`; returns the
    /// CONNACK, or fails the test if the connection is refused.
    pub async fn start(midge: &Midge, id: &str, configure: impl FnOnce(&mut MqttOptions)) -> (Self, ConnAck) {
        Self::start_with(midge, id, configure, |_| {}).await
    }

    /// As `start`, running `after_connack` on the event loop once the CONNACK is in, before the
    /// loop sends anything else: where a test makes rumqttc misbehave through its public state.
    pub async fn start_with(
        midge: &Midge,
        id: &str,
        configure: impl FnOnce(&mut MqttOptions),
        after_connack: impl FnOnce(&mut EventLoop) + Send + 'static,
    ) -> (Self, ConnAck) {
        Self::start_at(
            SocketAddr::from(([127, 0, 0, 1], midge.port())),
            id,
            configure,
            after_connack,
        )
        .await
    }

    /// As `start_with`, to a broker at `addr`.
    pub async fn start_at(
        addr: SocketAddr,
        id: &str,
        configure: impl FnOnce(&mut MqttOptions),
        after_connack: impl FnOnce(&mut EventLoop) + Send + 'static,
    ) -> (Self, ConnAck) {
        match Self::try_start_at(addr, id, configure, after_connack).await {
            Ok(started) => started,
            Err(error) => panic!("connection failed: {error}"),
        }
    }

    /// As `start_at`, saying why the connection failed (refused, or no CONNACK in time)
    /// rather than failing the test.
    pub async fn try_start_at(
        addr: SocketAddr,
        id: &str,
        configure: impl FnOnce(&mut MqttOptions),
        after_connack: impl FnOnce(&mut EventLoop) + Send + 'static,
    ) -> Result<(Self, ConnAck), String> {
        let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
        options.set_keep_alive(Duration::from_secs(30));
        configure(&mut options);
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let (tx, mut events) = mpsc::unbounded_channel();
        let eventloop = tokio::spawn(async move {
            let mut after_connack = Some(after_connack);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(packet)) => {
                        let connack = matches!(packet, Packet::ConnAck(_));
                        if tx.send(Ok(packet)).is_err() {
                            return;
                        }
                        if connack && let Some(hook) = after_connack.take() {
                            hook(&mut eventloop);
                        }
                    }
                    Ok(Event::Outgoing(_)) => {}
                    // Stop at the first error: rumqttc would otherwise reconnect.
                    Err(error) => {
                        let _ = tx.send(Err(error));
                        return;
                    }
                }
            }
        });
        let connack = loop {
            match timeout(WAIT, events.recv()).await {
                Ok(Some(Ok(Packet::ConnAck(ack)))) => break ack,
                Ok(Some(Ok(_))) => {}
                other => {
                    eventloop.abort();
                    return Err(format!("{other:?}"));
                }
            }
        };
        Ok((
            Self {
                client,
                events,
                eventloop,
            },
            connack,
        ))
    }

    /// Ends the event loop: the socket closes without DISCONNECT, as when a device dies.
    pub fn kill(self) {
        self.eventloop.abort();
    }

    /// The next PUBLISH received (other packets are skipped).
    pub async fn publish(&mut self) -> Publish {
        loop {
            match timeout(WAIT, self.events.recv())
                .await
                .expect("a PUBLISH in time")
            {
                Some(Ok(Packet::Publish(p))) => return p,
                Some(Ok(_)) => {}
                other => panic!("no PUBLISH: {other:?}"),
            }
        }
    }

    /// Asserts that no PUBLISH arrives for `quiet`.
    pub async fn no_publish(&mut self, quiet: Duration) {
        let deadline = tokio::time::Instant::now() + quiet;
        while let Ok(event) = tokio::time::timeout_at(deadline, self.events.recv()).await {
            match event {
                Some(Ok(Packet::Publish(p))) => panic!("unexpected PUBLISH {p:?}"),
                Some(Ok(_)) => {}
                other => panic!("the connection ended: {other:?}"),
            }
        }
    }

    /// Waits for the acknowledgement of what was just sent (SUBACK, UNSUBACK, PUBACK, PUBCOMP).
    pub async fn acked(&mut self) {
        loop {
            match timeout(WAIT, self.events.recv()).await.expect("an ack in time") {
                Some(Ok(
                    Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PubAck(_) | Packet::PubComp(_),
                )) => return,
                Some(Ok(_)) => {}
                other => panic!("no ack: {other:?}"),
            }
        }
    }

    /// The first incoming packet `pick` takes (it returns `Some`); the others are skipped.
    pub async fn next<T>(&mut self, what: &str, mut pick: impl FnMut(Packet) -> Option<T>) -> T {
        loop {
            match timeout(WAIT, self.events.recv()).await {
                Ok(Some(Ok(packet))) => {
                    if let Some(found) = pick(packet) {
                        return found;
                    }
                }
                Ok(other) => panic!("no {what}: {other:?}"),
                Err(_) => panic!("no {what} in time"),
            }
        }
    }

    /// The next PUBACK, with its reason code and properties.
    pub async fn puback(&mut self) -> PubAck {
        loop {
            match timeout(WAIT, self.events.recv()).await.expect("a PUBACK in time") {
                Some(Ok(Packet::PubAck(ack))) => return ack,
                Some(Ok(_)) => {}
                other => panic!("no PUBACK: {other:?}"),
            }
        }
    }

    /// The reason code of the DISCONNECT the broker sends (rumqttc reports it as an error),
    /// or `None` if the connection ends without one.
    pub async fn disconnected(&mut self) -> Option<DisconnectReasonCode> {
        loop {
            match timeout(WAIT, self.events.recv()).await.expect("an end in time") {
                Some(Ok(Packet::Disconnect(d))) => return Some(d.reason_code),
                Some(Err(ConnectionError::MqttState(StateError::ServerDisconnect {
                    reason_code, ..
                }))) => return Some(reason_code),
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    }

    /// The error that ended the event loop (packets before it are skipped).
    pub async fn ended(&mut self) -> ConnectionError {
        loop {
            match timeout(WAIT, self.events.recv()).await.expect("an end in time") {
                Some(Ok(_)) => {}
                Some(Err(error)) => return error,
                None => panic!("the event loop ended without an error"),
            }
        }
    }
}

/// Connects an MQTT 5 client that the broker refuses; returns rumqttc's error.
pub async fn refused5(midge: &Midge, id: &str) -> ConnectionError {
    let options = MqttOptions::new(id, "127.0.0.1", midge.port());
    let (_client, mut eventloop) = AsyncClient::new(options, 10);
    loop {
        match timeout(WAIT, eventloop.poll()).await.expect("an answer in time") {
            Ok(_) => {}
            Err(error) => return error,
        }
    }
}

/// rumqttc's v5 packet encoder and decoder over a socket, for what its client will not send.
pub struct Wire5 {
    stream: TcpStream,
    buffer: BytesMut,
}

impl Wire5 {
    /// Sends a CONNECT built by rumqttc with `properties` and `will`; returns the CONNACK.
    pub async fn connect(
        midge: &Midge,
        id: &str,
        properties: ConnectProperties,
        will: Option<LastWill>,
    ) -> (Self, ConnAck) {
        let stream = TcpStream::connect(midge.addr()).await.expect("connect");
        let mut wire = Self {
            stream,
            buffer: BytesMut::new(),
        };
        let connect = Connect {
            keep_alive: 30,
            client_id: id.to_owned(),
            clean_start: false,
            properties: Some(properties),
        };
        wire.send(&Packet::Connect(connect, will, None)).await;
        match wire.recv().await {
            Some(Packet::ConnAck(ack)) => (wire, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    pub async fn send(&mut self, packet: &Packet) {
        let mut out = BytesMut::new();
        packet.write(&mut out, None).expect("rumqttc encodes it");
        self.stream.write_all(&out).await.expect("send");
    }

    /// The next packet, or `None` once the broker closes the connection.
    pub async fn recv(&mut self) -> Option<Packet> {
        loop {
            match Packet::read(&mut self.buffer, None) {
                Ok(packet) => return Some(packet),
                Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(error) => panic!("rumqttc cannot decode what the broker sent: {error}"),
            }
            let read = timeout(WAIT, self.stream.read_buf(&mut self.buffer))
                .await
                .expect("a packet or the close in time");
            match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }
}
