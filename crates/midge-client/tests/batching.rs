//! How the client moves many messages cheaply, against a scripted server: everything queued
//! leaves in one write, events are taken in batches, a client that is never idle still sends
//! its PINGREQ, and commands taken but not yet sent survive a reconnect.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

mod support;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use midge_client::{Client, ClientOptions, Connector, Event};
use midge_codec::properties::PublishProperties;
use midge_codec::{Ack, ConnAck, Decoder, Packet, ProtocolVersion, Publish, QoS, ReasonCode, TopicName};
use support::{Peer, fake_server, next_event};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

fn accepted(session_present: bool) -> ConnAck {
    let mut connack = ConnAck::new(ReasonCode::Success);
    connack.session_present = session_present;
    connack
}

/// TCP that counts the writes that carried bytes.
#[derive(Clone)]
struct CountingConnector {
    port: u16,
    writes: Arc<AtomicUsize>,
}

struct CountingStream {
    inner: TcpStream,
    writes: Arc<AtomicUsize>,
}

impl Connector for CountingConnector {
    type Stream = CountingStream;

    async fn connect(&self) -> io::Result<CountingStream> {
        Ok(CountingStream {
            inner: TcpStream::connect(("127.0.0.1", self.port)).await?,
            writes: self.writes.clone(),
        })
    }
}

impl AsyncRead for CountingStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountingStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn publications_queued_together_leave_in_one_write() {
    let (listener, port) = fake_server().await;
    let server = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener, ProtocolVersion::V311).await;
        peer.handshake(accepted(false)).await;
        let mut payloads = Vec::new();
        while let Some(packet) = peer.recv().await {
            match packet {
                Packet::Publish(publish) => payloads.push(publish.payload),
                Packet::Disconnect(_) => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        payloads
    });
    let writes = Arc::new(AtomicUsize::new(0));
    let connector = CountingConnector {
        port,
        writes: writes.clone(),
    };
    let (client, _events) = Client::connect_with(connector, ClientOptions::new("127.0.0.1", port))
        .await
        .unwrap();
    let before = writes.load(Ordering::SeqCst);
    // On this one-thread runtime the client's task does not run until the test waits, so all
    // fifty are queued when it looks.
    let mut pending = Vec::new();
    for i in 0..50 {
        let message = format!("{i}");
        pending.push(
            client
                .start_publish("t", message, QoS::AtMostOnce, false, PublishProperties::default())
                .await
                .unwrap(),
        );
    }
    for p in pending {
        p.await.unwrap();
    }
    let publishing = writes.load(Ordering::SeqCst) - before;
    client
        .disconnect(midge_codec::Disconnect::new(ReasonCode::Success))
        .await
        .unwrap();
    let payloads = server.await.unwrap();
    let expected: Vec<String> = (0..50).map(|i| format!("{i}")).collect();
    assert_eq!(payloads, expected, "every message, in order");
    assert_eq!(
        publishing, 1,
        "fifty queued PUBLISH packets took {publishing} writes"
    );
}

#[tokio::test]
async fn recv_many_takes_every_queued_event_at_once() {
    let (listener, port) = fake_server().await;
    tokio::spawn(async move {
        let mut peer = Peer::accept(&listener, ProtocolVersion::V311).await;
        peer.handshake(accepted(false)).await;
        let mut out = BytesMut::new();
        for i in 0..20u8 {
            let publish = Publish::new(TopicName::new("t").unwrap(), vec![i]);
            Packet::Publish(publish)
                .encode(ProtocolVersion::V311, &mut out)
                .unwrap();
        }
        peer.send_bytes(&out).await;
        while peer.recv().await.is_some() {}
    });
    let (_client, mut events) = Client::connect(ClientOptions::new("127.0.0.1", port))
        .await
        .unwrap();
    // Let all twenty arrive and be queued.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut batch = Vec::new();
    assert_eq!(events.recv_many(&mut batch, 5).await, 5, "no more than the limit");
    assert_eq!(
        events.recv_many(&mut batch, 100).await,
        15,
        "the rest in one call"
    );
    let payloads: Vec<u8> = batch
        .iter()
        .map(|event| match event {
            Event::Publish(publish) => publish.payload[0],
            other => panic!("expected a PUBLISH, got {other:?}"),
        })
        .collect();
    assert_eq!(payloads, (0..20).collect::<Vec<u8>>());
}

#[tokio::test]
async fn mqtt_3_1_2_22_a_client_flooded_with_messages_still_sends_pingreq() {
    let (listener, port) = fake_server().await;
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let decoder = Decoder::new(ProtocolVersion::V311, midge_codec::PROTOCOL_MAX_PACKET_SIZE);
        let mut input = BytesMut::new();
        let mut next = async || loop {
            if let Some(packet) = decoder.decode(&mut input).unwrap() {
                return Some(packet);
            }
            if reader.read_buf(&mut input).await.unwrap() == 0 {
                return None;
            }
        };
        assert!(matches!(next().await, Some(Packet::Connect(_))));
        let mut flood = BytesMut::new();
        Packet::ConnAck(accepted(false))
            .encode(ProtocolVersion::V311, &mut flood)
            .unwrap();
        writer.write_all(&flood).await.unwrap();
        flood.clear();
        for _ in 0..200 {
            let publish = Publish::new(TopicName::new("flood").unwrap(), vec![0u8; 64]);
            Packet::Publish(publish)
                .encode(ProtocolVersion::V311, &mut flood)
                .unwrap();
        }
        // QoS 0 messages without a pause for 3 s: the client has bytes to read at every turn
        // and nothing of its own to send, until its keep alive (1 s) is due.
        let until = tokio::time::Instant::now() + Duration::from_secs(3);
        let mut sent = 0u64;
        loop {
            tokio::select! {
                packet = next() => return (packet, sent),
                written = writer.write_all(&flood) => {
                    written.unwrap();
                    sent += 200;
                }
                () = tokio::time::sleep_until(until) => return (None, sent),
            }
        }
    });
    let options = ClientOptions::new("127.0.0.1", port).keep_alive(1);
    let started = tokio::time::Instant::now();
    let (_client, mut events) = Client::connect(options).await.unwrap();
    let reading = tokio::spawn(async move {
        let mut batch = Vec::new();
        let mut received = 0u64;
        while events.recv_many(&mut batch, 1024).await > 0 {
            received += batch.len() as u64;
            batch.clear();
        }
        received
    });
    let (packet, sent) = server.await.unwrap();
    assert_eq!(packet, Some(Packet::PingReq), "after {:?}", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "PINGREQ after {:?}",
        started.elapsed()
    );
    assert!(sent > 1000, "the server sent only {sent} messages: not a flood");
    reading.abort();
}

#[tokio::test]
async fn publications_waiting_for_the_window_survive_a_reconnect() {
    let (listener, port) = fake_server().await;
    let server = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener, ProtocolVersion::V311).await;
        peer.handshake(accepted(false)).await;
        let Packet::Publish(first) = peer.expect().await else {
            panic!("no PUBLISH")
        };
        assert_eq!(&first.payload[..], b"0");
        // The window is one message: nothing more comes until this one is acknowledged, and
        // it never is on this connection.
        let quiet = tokio::time::timeout(Duration::from_millis(200), peer.recv()).await;
        assert!(quiet.is_err(), "a second PUBLISH beyond the window: {quiet:?}");
        drop(peer);

        let mut peer = Peer::accept(&listener, ProtocolVersion::V311).await;
        peer.handshake(accepted(true)).await;
        let mut payloads = Vec::new();
        for _ in 0..3 {
            let Packet::Publish(publish) = peer.expect().await else {
                panic!("no PUBLISH")
            };
            payloads.push(publish.payload.clone());
            peer.send(&Packet::PubAck(Ack::new(publish.packet_id.unwrap())))
                .await;
        }
        peer.expect().await; // the DISCONNECT
        payloads
    });
    let options = ClientOptions::new("127.0.0.1", port)
        .client_id("patient")
        .clean_start(false)
        .reconnect_delay(Duration::from_millis(50));
    let mut options = options;
    options.max_inflight = 1;
    let (client, mut events) = Client::connect(options).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..3 {
        pending.push(
            client
                .start_publish(
                    "t",
                    format!("{i}"),
                    QoS::AtLeastOnce,
                    false,
                    PublishProperties::default(),
                )
                .await
                .unwrap(),
        );
    }
    assert!(matches!(next_event(&mut events).await, Event::ConnectionLost(_)));
    assert!(matches!(next_event(&mut events).await, Event::Reconnected(c) if c.session_present));
    for p in pending {
        assert_eq!(p.await.unwrap().reason_code, ReasonCode::Success);
    }
    client
        .disconnect(midge_codec::Disconnect::new(ReasonCode::Success))
        .await
        .unwrap();
    assert_eq!(server.await.unwrap(), vec!["0", "1", "2"]);
}
