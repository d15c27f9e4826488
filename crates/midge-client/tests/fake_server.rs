//! midge-client against a scripted server, for what a real broker will not do on demand:
//! lose an acknowledgement across a reconnect, send garbage, ignore PINGREQ, hold a small
//! Receive Maximum.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

mod support;

use std::num::NonZeroU16;
use std::time::Duration;

use midge_client::{Client, ClientError, ClientOptions, Event};
use midge_codec::properties::PublishProperties;
use midge_codec::{Ack, ConnAck, Packet, ProtocolVersion, QoS, ReasonCode};
use support::{Peer, fake_server, next_event};

fn accepted(session_present: bool) -> ConnAck {
    let mut connack = ConnAck::new(ReasonCode::Success);
    connack.session_present = session_present;
    connack
}

#[tokio::test]
async fn mqtt_4_4_0_1_unacknowledged_publish_is_resent_with_dup_on_a_resumed_session() {
    let (listener, port) = fake_server().await;
    let server = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener, ProtocolVersion::V311).await;
        let connect = peer.handshake(accepted(false)).await;
        assert!(!connect.clean_start);
        let Packet::Publish(first) = peer.expect().await else {
            panic!("no PUBLISH")
        };
        assert!(!first.dup);
        let Packet::Publish(second) = peer.expect().await else {
            panic!("no PUBLISH")
        };
        // Acknowledge the QoS 2 message's PUBREC, then drop the connection with both unfinished.
        peer.send(&Packet::PubRec(Ack::new(second.packet_id.unwrap())))
            .await;
        assert_eq!(
            peer.expect().await,
            Packet::PubRel(Ack::new(second.packet_id.unwrap()))
        );
        drop(peer);

        let mut peer = Peer::accept(&listener, ProtocolVersion::V311).await;
        let connect = peer.handshake(accepted(true)).await;
        assert!(!connect.clean_start, "a reconnect resumes the session");
        let Packet::Publish(again) = peer.expect().await else {
            panic!("no PUBLISH")
        };
        assert!(again.dup, "resent with DUP");
        assert_eq!(again.packet_id, first.packet_id);
        assert_eq!(again.payload, first.payload);
        assert_eq!(
            peer.expect().await,
            Packet::PubRel(Ack::new(second.packet_id.unwrap()))
        );
        peer.send(&Packet::PubAck(Ack::new(first.packet_id.unwrap())))
            .await;
        peer.send(&Packet::PubComp(Ack::new(second.packet_id.unwrap())))
            .await;
        peer.expect().await // the DISCONNECT
    });
    let options = ClientOptions::new("127.0.0.1", port)
        .client_id("resumer")
        .clean_start(false)
        .reconnect_delay(Duration::from_millis(50));
    let (client, mut events) = Client::connect(options).await.unwrap();
    let first = client
        .start_publish("t", "one", QoS::AtLeastOnce, false, PublishProperties::default())
        .await
        .unwrap();
    let second = client
        .start_publish("t", "two", QoS::ExactlyOnce, false, PublishProperties::default())
        .await
        .unwrap();
    assert!(matches!(next_event(&mut events).await, Event::ConnectionLost(_)));
    assert!(matches!(next_event(&mut events).await, Event::Reconnected(c) if c.session_present));
    assert_eq!(first.await.unwrap().reason_code, ReasonCode::Success);
    assert_eq!(second.await.unwrap().reason_code, ReasonCode::Success);
    client
        .disconnect(midge_codec::Disconnect::new(ReasonCode::Success))
        .await
        .unwrap();
    assert!(matches!(server.await.unwrap(), Packet::Disconnect(_)));
}

#[tokio::test]
async fn publishes_fail_with_session_lost_when_the_server_forgot_the_session() {
    let (listener, port) = fake_server().await;
    tokio::spawn(async move {
        let mut peer = Peer::accept(&listener, ProtocolVersion::V311).await;
        peer.handshake(accepted(false)).await;
        peer.expect().await;
        drop(peer);
        let mut peer = Peer::accept(&listener, ProtocolVersion::V311).await;
        peer.handshake(accepted(false)).await;
        peer.recv().await
    });
    let options = ClientOptions::new("127.0.0.1", port)
        .client_id("amnesia")
        .clean_start(false)
        .reconnect_delay(Duration::from_millis(50));
    let (client, _events) = Client::connect(options).await.unwrap();
    let result = client
        .publish("t", "x", QoS::AtLeastOnce, false, PublishProperties::default())
        .await;
    assert!(matches!(result, Err(ClientError::SessionLost)), "{result:?}");
}

#[tokio::test]
async fn malformed_packet_from_the_server_is_an_error_not_a_panic() {
    for garbage in [
        &[0x00, 0x00][..],                     // reserved packet type 0
        &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F], // five-byte remaining length
        &[0x32, 0x03, 0x00, 0x01, b'a'],       // QoS 1 PUBLISH cut before its packet id
        &[0x90, 0x03, 0x00, 0x00, 0x00],       // SUBACK with packet id 0
        &[0x20, 0x02, 0x00, 0x00],             // a second CONNACK
    ] {
        let (listener, port) = fake_server().await;
        let server = tokio::spawn(async move {
            let mut peer = Peer::accept(&listener, ProtocolVersion::V311).await;
            peer.handshake(accepted(false)).await;
            peer.send_bytes(garbage).await;
            while peer.recv().await.is_some() {}
        });
        let (_client, mut events) = Client::connect(ClientOptions::new("127.0.0.1", port))
            .await
            .unwrap();
        match next_event(&mut events).await {
            Event::ConnectionLost(error) => assert!(
                matches!(*error, ClientError::Decode(_) | ClientError::Protocol(_)),
                "{garbage:?}: {error}"
            ),
            other => panic!("{garbage:?}: expected ConnectionLost, got {other:?}"),
        }
        server.await.unwrap();
    }
}

#[tokio::test]
async fn mqtt_3_1_2_22_unanswered_pingreq_ends_the_connection() {
    let (listener, port) = fake_server().await;
    let server = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener, ProtocolVersion::V311).await;
        peer.handshake(accepted(false)).await;
        let mut pings = 0;
        while let Some(packet) = peer.recv().await {
            assert_eq!(packet, Packet::PingReq);
            pings += 1;
        }
        pings
    });
    let options = ClientOptions::new("127.0.0.1", port).keep_alive(1);
    let started = tokio::time::Instant::now();
    let (_client, mut events) = Client::connect(options).await.unwrap();
    match next_event(&mut events).await {
        Event::ConnectionLost(error) => assert!(matches!(*error, ClientError::KeepAliveTimeout), "{error}"),
        other => panic!("expected ConnectionLost, got {other:?}"),
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
    assert_eq!(server.await.unwrap(), 1);
}

#[tokio::test]
async fn mqtt_4_9_0_2_no_more_than_receive_maximum_publishes_in_flight() {
    let (listener, port) = fake_server().await;
    let server = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener, ProtocolVersion::V5).await;
        let mut connack = accepted(false);
        connack.properties.receive_maximum = NonZeroU16::new(2);
        peer.handshake(connack).await;
        let mut seen = 0;
        while seen < 6 {
            // Two arrive, then nothing until one is acknowledged.
            let mut batch = Vec::new();
            for _ in 0..2 {
                let Packet::Publish(p) = peer.expect().await else {
                    panic!("no PUBLISH")
                };
                batch.push(p.packet_id.unwrap());
            }
            let quiet = tokio::time::timeout(Duration::from_millis(200), peer.recv()).await;
            assert!(
                quiet.is_err(),
                "a third PUBLISH exceeded Receive Maximum: {quiet:?}"
            );
            for id in batch {
                peer.send(&Packet::PubAck(Ack::new(id))).await;
            }
            seen += 2;
        }
    });
    let options = ClientOptions::new("127.0.0.1", port).protocol(ProtocolVersion::V5);
    let (client, _events) = Client::connect(options).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..6 {
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
    for p in pending {
        p.await.unwrap();
    }
    server.await.unwrap();
}

#[tokio::test]
async fn inbound_qos2_is_delivered_once_and_completed() {
    let (listener, port) = fake_server().await;
    let server = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener, ProtocolVersion::V311).await;
        peer.handshake(accepted(false)).await;
        let mut publish = midge_codec::Publish::new("q2".try_into().unwrap(), "once");
        publish.qos = QoS::ExactlyOnce;
        publish.packet_id = midge_codec::PacketId::new(7);
        peer.send(&Packet::Publish(publish.clone())).await;
        assert_eq!(
            peer.expect().await,
            Packet::PubRec(Ack::new(publish.packet_id.unwrap()))
        );
        publish.dup = true;
        peer.send(&Packet::Publish(publish.clone())).await;
        assert_eq!(
            peer.expect().await,
            Packet::PubRec(Ack::new(publish.packet_id.unwrap()))
        );
        peer.send(&Packet::PubRel(Ack::new(publish.packet_id.unwrap())))
            .await;
        assert_eq!(
            peer.expect().await,
            Packet::PubComp(Ack::new(publish.packet_id.unwrap()))
        );
        peer
    });
    let (_client, mut events) = Client::connect(ClientOptions::new("127.0.0.1", port))
        .await
        .unwrap();
    assert!(matches!(next_event(&mut events).await, Event::Publish(p) if p.payload == "once"));
    let _peer = server.await.unwrap();
    support::expect_no_event(&mut events, Duration::from_millis(200)).await;
}

#[tokio::test]
async fn connect_timeout_when_no_connack_comes() {
    let (listener, port) = fake_server().await;
    let _server = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener, ProtocolVersion::V311).await;
        peer.expect().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let mut options = ClientOptions::new("127.0.0.1", port);
    options.connect_timeout = Duration::from_millis(300);
    assert!(matches!(
        Client::connect(options).await,
        Err(ClientError::ConnectTimeout)
    ));
}

#[tokio::test]
async fn server_disconnect_is_an_event_then_the_connection_ends() {
    let (listener, port) = fake_server().await;
    tokio::spawn(async move {
        let mut peer = Peer::accept(&listener, ProtocolVersion::V5).await;
        peer.handshake(accepted(false)).await;
        let mut disconnect = midge_codec::Disconnect::new(ReasonCode::ServerShuttingDown);
        disconnect.properties.reason_string = Some("maintenance".into());
        peer.send(&Packet::Disconnect(disconnect)).await;
        peer.recv().await
    });
    let options = ClientOptions::new("127.0.0.1", port).protocol(ProtocolVersion::V5);
    let (client, mut events) = Client::connect(options).await.unwrap();
    match next_event(&mut events).await {
        Event::Disconnect(d) => {
            assert_eq!(d.reason_code, ReasonCode::ServerShuttingDown);
            assert_eq!(d.properties.reason_string.as_deref(), Some("maintenance"));
        }
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    match next_event(&mut events).await {
        Event::ConnectionLost(error) => {
            assert!(matches!(*error, ClientError::ServerDisconnect(_)), "{error}")
        }
        other => panic!("expected ConnectionLost, got {other:?}"),
    }
    assert!(events.recv().await.is_none());
    assert!(matches!(
        client.subscribe_one("t", QoS::AtMostOnce).await,
        Err(ClientError::Disconnected)
    ));
}

#[tokio::test]
async fn inbound_qos2_can_be_passed_on_at_pubrel_as_libmosquitto_does() {
    let (listener, port) = fake_server().await;
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener, ProtocolVersion::V311).await;
        peer.handshake(accepted(false)).await;
        let mut publish = midge_codec::Publish::new("q2".try_into().unwrap(), "held");
        publish.qos = QoS::ExactlyOnce;
        publish.packet_id = midge_codec::PacketId::new(9);
        peer.send(&Packet::Publish(publish.clone())).await;
        assert_eq!(
            peer.expect().await,
            Packet::PubRec(Ack::new(publish.packet_id.unwrap()))
        );
        release_rx.await.unwrap();
        peer.send(&Packet::PubRel(Ack::new(publish.packet_id.unwrap())))
            .await;
        assert_eq!(
            peer.expect().await,
            Packet::PubComp(Ack::new(publish.packet_id.unwrap()))
        );
        peer
    });
    let mut options = ClientOptions::new("127.0.0.1", port);
    options.deliver_qos2_on_release = true;
    let (_client, mut events) = Client::connect(options).await.unwrap();
    support::expect_no_event(&mut events, Duration::from_millis(300)).await;
    release_tx.send(()).unwrap();
    assert!(matches!(next_event(&mut events).await, Event::Publish(p) if p.payload == "held"));
    let _peer = server.await.unwrap();
}

/// Mosquitto's `try_private`: a bridge CONNECT carries the level's high bit; a server that
/// refuses that level (CONNACK 0x01) is asked again with the plain level, which then sticks.
#[tokio::test]
async fn a_bridge_connect_falls_back_to_the_plain_protocol_level_when_refused() {
    let (listener, port) = fake_server().await;
    let server = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener, ProtocolVersion::V311).await;
        let connect = peer
            .handshake(ConnAck::new(ReasonCode::UnsupportedProtocolVersion))
            .await;
        assert!(connect.bridge, "first try with the bridge bit");
        drop(peer);
        let mut peer = Peer::accept(&listener, ProtocolVersion::V311).await;
        let connect = peer.handshake(accepted(false)).await;
        assert!(!connect.bridge, "then without");
        drop(peer);
        let mut peer = Peer::accept(&listener, ProtocolVersion::V311).await;
        let connect = peer.handshake(accepted(false)).await;
        assert!(!connect.bridge, "and without from then on");
        peer.expect().await
    });
    let mut options = ClientOptions::new("127.0.0.1", port)
        .client_id("edge")
        .reconnect_delay(Duration::from_millis(20));
    options.bridge = true;
    let (client, mut events) = Client::connect(options).await.unwrap();
    assert!(matches!(next_event(&mut events).await, Event::ConnectionLost(_)));
    assert!(matches!(next_event(&mut events).await, Event::Reconnected(_)));
    client
        .disconnect(midge_codec::Disconnect::new(ReasonCode::Success))
        .await
        .unwrap();
    assert!(matches!(server.await.unwrap(), Packet::Disconnect(_)));
}

/// A client started in the background reports each failed attempt, then its first connection;
/// a publication handed to it meanwhile goes out once connected. `reconnect` drops the
/// connection and resumes the session on a new one at once.
#[tokio::test]
async fn a_background_client_keeps_trying_and_reconnects_on_request() {
    let (listener, port) = fake_server().await;
    // Nothing listens at first: the listener is dropped and bound again later on the same port.
    drop(listener);
    let mut options = ClientOptions::new("127.0.0.1", port)
        .client_id("patient")
        .clean_start(false)
        .reconnect_delay(Duration::from_millis(50));
    options.reconnect_delay_max = Some(Duration::from_millis(200));
    let (client, mut events) = Client::spawn_with(
        midge_client::TcpConnector {
            host: "127.0.0.1".into(),
            port,
            nodelay: true,
        },
        options,
    );
    assert!(matches!(next_event(&mut events).await, Event::ConnectFailed(_)));
    assert!(matches!(next_event(&mut events).await, Event::ConnectFailed(_)));
    let pending = client
        .start_publish(
            "t",
            "waited",
            QoS::AtLeastOnce,
            false,
            PublishProperties::default(),
        )
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let server = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener, ProtocolVersion::V311).await;
        peer.handshake(accepted(false)).await;
        let Packet::Publish(first) = peer.expect().await else {
            panic!("no PUBLISH")
        };
        assert_eq!(&first.payload[..], b"waited");
        // The client drops this connection on request, before the acknowledgement.
        assert_eq!(peer.recv().await, None);
        let mut peer = Peer::accept(&listener, ProtocolVersion::V311).await;
        let connect = peer.handshake(accepted(true)).await;
        assert!(!connect.clean_start);
        let Packet::Publish(again) = peer.expect().await else {
            panic!("no PUBLISH")
        };
        assert!(again.dup);
        peer.send(&Packet::PubAck(Ack::new(again.packet_id.unwrap())))
            .await;
        peer.expect().await
    });
    loop {
        match next_event(&mut events).await {
            Event::Connected(connack) => {
                assert!(!connack.session_present);
                break;
            }
            Event::ConnectFailed(_) => {}
            other => panic!("{other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.reconnect().await.unwrap();
    assert!(matches!(
        next_event(&mut events).await,
        Event::ConnectionLost(error) if matches!(*error, ClientError::ReconnectRequested)
    ));
    assert!(matches!(next_event(&mut events).await, Event::Reconnected(c) if c.session_present));
    assert_eq!(pending.await.unwrap().reason_code, ReasonCode::Success);
    client
        .disconnect(midge_codec::Disconnect::new(ReasonCode::Success))
        .await
        .unwrap();
    assert!(matches!(server.await.unwrap(), Packet::Disconnect(_)));
}
