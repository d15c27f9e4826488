//! midge-client against Debian's Mosquitto 2.0.11 broker: every QoS, retained messages, both
//! protocol versions, wills, keep alive, refused connections and persistent sessions.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use midge_client::{Client, ClientError, Direction, Event, LastWill};
use midge_codec::properties::{PublishProperties, SubscribeProperties};
use midge_codec::{ConnectReturnCode, Disconnect, Packet, ProtocolVersion, QoS, ReasonCode, UserProperty};
use support::{CuttableConnector, Mosquitto, WAIT, connect, expect_no_event, next_event, next_publish};

fn no_props() -> PublishProperties {
    PublishProperties::default()
}

async fn round_trip(qos: QoS, protocol: ProtocolVersion) {
    let broker = Mosquitto::start();
    let (sub, mut events) = connect(broker.options("sub").protocol(protocol)).await;
    let granted = sub.subscribe_one("rt/#", qos).await.unwrap();
    assert_eq!(granted.as_u8(), qos.as_u8());
    let (publisher, _) = connect(broker.options("pub").protocol(protocol)).await;
    let outcome = publisher
        .publish("rt/1", "hello", qos, false, no_props())
        .await
        .unwrap();
    assert_eq!(outcome.reason_code, ReasonCode::Success);
    assert_eq!(outcome.packet_id.is_some(), qos != QoS::AtMostOnce);
    let message = next_publish(&mut events).await;
    assert_eq!(message.topic.as_str(), "rt/1");
    assert_eq!(&message.payload[..], b"hello");
    assert_eq!(message.qos, qos);
    assert!(!message.retain);
    expect_no_event(&mut events, Duration::from_millis(300)).await;
    publisher
        .disconnect(Disconnect::new(ReasonCode::Success))
        .await
        .unwrap();
}

#[tokio::test]
async fn qos0_round_trip() {
    round_trip(QoS::AtMostOnce, ProtocolVersion::V311).await;
}

#[tokio::test]
async fn qos1_round_trip_waits_for_puback() {
    round_trip(QoS::AtLeastOnce, ProtocolVersion::V311).await;
}

#[tokio::test]
async fn qos2_round_trip_waits_for_pubcomp_and_delivers_once() {
    round_trip(QoS::ExactlyOnce, ProtocolVersion::V311).await;
}

#[tokio::test]
async fn qos2_round_trip_mqtt5() {
    round_trip(QoS::ExactlyOnce, ProtocolVersion::V5).await;
}

#[tokio::test]
async fn mqtt31_round_trip() {
    round_trip(QoS::AtLeastOnce, ProtocolVersion::V31).await;
}

#[tokio::test]
async fn many_qos1_messages_pipelined_beyond_the_window() {
    let broker = Mosquitto::start();
    let (sub, mut events) = connect(broker.options("sub")).await;
    sub.subscribe_one("many", QoS::AtLeastOnce).await.unwrap();
    let mut options = broker.options("pub");
    options.max_inflight = 5;
    let (publisher, _) = connect(options).await;
    let mut pending = Vec::new();
    for i in 0..100 {
        pending.push(
            publisher
                .start_publish("many", format!("{i}"), QoS::AtLeastOnce, false, no_props())
                .await
                .unwrap(),
        );
    }
    let receiver = tokio::spawn(async move {
        let mut got = Vec::new();
        for _ in 0..100 {
            got.push(String::from_utf8(next_publish(&mut events).await.payload.to_vec()).unwrap());
        }
        got
    });
    for p in pending {
        assert_eq!(p.await.unwrap().reason_code, ReasonCode::Success);
    }
    let got = receiver.await.unwrap();
    let expected: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    assert_eq!(got, expected, "in order, each once");
}

#[tokio::test]
async fn retained_message_is_delivered_with_retain_on_subscribe() {
    let broker = Mosquitto::start();
    let (publisher, _) = connect(broker.options("pub")).await;
    publisher
        .publish("ret/a", "kept", QoS::AtLeastOnce, true, no_props())
        .await
        .unwrap();
    let (sub, mut events) = connect(broker.options("sub")).await;
    sub.subscribe_one("ret/#", QoS::AtLeastOnce).await.unwrap();
    let message = next_publish(&mut events).await;
    assert!(message.retain);
    assert_eq!(&message.payload[..], b"kept");

    // An empty retained message clears it.
    publisher
        .publish("ret/a", "", QoS::AtLeastOnce, true, no_props())
        .await
        .unwrap();
    let (late, mut late_events) = connect(broker.options("late")).await;
    late.subscribe_one("ret/#", QoS::AtLeastOnce).await.unwrap();
    expect_no_event(&mut late_events, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn mqtt5_properties_reach_a_v5_subscriber_and_a_v311_one_gets_the_payload() {
    let broker = Mosquitto::start();
    let (sub5, mut events5) = connect(broker.options("sub5").protocol(ProtocolVersion::V5)).await;
    sub5.subscribe_one("props", QoS::AtLeastOnce).await.unwrap();
    let (sub3, mut events3) = connect(broker.options("sub3")).await;
    sub3.subscribe_one("props", QoS::AtLeastOnce).await.unwrap();

    let options = broker
        .options("pub5")
        .protocol(ProtocolVersion::V5)
        .user_property("connect-key", "connect-value");
    let (publisher, _) = connect(options).await;
    let mut properties = PublishProperties::default();
    properties.user_properties = vec![UserProperty::new("k", "v1"), UserProperty::new("k", "v2")];
    properties.content_type = Some("text/plain".into());
    properties.message_expiry_interval = Some(60);
    let outcome = publisher
        .publish("props", "body", QoS::AtLeastOnce, false, properties)
        .await
        .unwrap();
    assert_eq!(outcome.reason_code, ReasonCode::Success);

    let message = next_publish(&mut events5).await;
    assert_eq!(
        message.properties.user_properties,
        vec![UserProperty::new("k", "v1"), UserProperty::new("k", "v2")]
    );
    assert_eq!(message.properties.content_type.as_deref(), Some("text/plain"));
    assert!(
        message
            .properties
            .message_expiry_interval
            .is_some_and(|e| e <= 60)
    );
    let message = next_publish(&mut events3).await;
    assert_eq!(&message.payload[..], b"body");
    assert!(message.properties.is_empty());
}

#[tokio::test]
async fn mqtt5_no_matching_subscribers_reason_code_is_returned() {
    let broker = Mosquitto::start();
    let (publisher, _) = connect(broker.options("pub").protocol(ProtocolVersion::V5)).await;
    let outcome = publisher
        .publish("nobody/listens", "x", QoS::AtLeastOnce, false, no_props())
        .await
        .unwrap();
    assert_eq!(outcome.reason_code, ReasonCode::NoMatchingSubscribers);
}

#[tokio::test]
async fn will_is_published_when_the_connection_drops_without_disconnect() {
    let broker = Mosquitto::start();
    let (watcher, mut events) = connect(broker.options("watcher")).await;
    watcher.subscribe_one("wills/#", QoS::AtLeastOnce).await.unwrap();

    let connector = CuttableConnector::new(broker.port);
    let mut will = LastWill::new("wills/dying", "gone");
    will.qos = QoS::AtLeastOnce;
    let options = broker.options("dying").will(will);
    let (dying, _dying_events) = Client::connect_with(connector.clone(), options).await.unwrap();
    connector.cut();
    let message = next_publish(&mut events).await;
    assert_eq!(message.topic.as_str(), "wills/dying");
    assert_eq!(&message.payload[..], b"gone");
    drop(dying);
}

#[tokio::test]
async fn close_ends_the_connection_without_disconnect_so_the_will_is_published() {
    let broker = Mosquitto::start();
    let (watcher, mut events) = connect(broker.options("watcher")).await;
    watcher.subscribe_one("wills/#", QoS::AtLeastOnce).await.unwrap();

    let options = broker
        .options("closing")
        .will(LastWill::new("wills/closing", "closed"));
    let (closing, _) = connect(options).await;
    closing.close().await.unwrap();
    assert!(closing.is_closed() || closing.close().await.is_err());
    assert_eq!(&next_publish(&mut events).await.payload[..], b"closed");
}

#[tokio::test]
async fn will_is_not_published_after_a_normal_disconnect_but_is_with_reason_0x04() {
    let broker = Mosquitto::start();
    let (watcher, mut events) = connect(broker.options("watcher")).await;
    watcher.subscribe_one("wills/#", QoS::AtLeastOnce).await.unwrap();

    let options = broker.options("polite").will(LastWill::new("wills/polite", "x"));
    let (polite, _) = connect(options).await;
    polite
        .disconnect(Disconnect::new(ReasonCode::Success))
        .await
        .unwrap();
    expect_no_event(&mut events, Duration::from_millis(300)).await;

    let options = broker
        .options("v5")
        .protocol(ProtocolVersion::V5)
        .will(LastWill::new("wills/v5", "asked"));
    let (v5, _) = connect(options).await;
    v5.disconnect(Disconnect::new(ReasonCode::DisconnectWithWillMessage))
        .await
        .unwrap();
    assert_eq!(&next_publish(&mut events).await.payload[..], b"asked");
}

#[tokio::test]
async fn keep_alive_sends_pingreq_and_the_connection_stays_up() {
    let broker = Mosquitto::start();
    let pings = Arc::new(AtomicUsize::new(0));
    let pongs = Arc::new(AtomicUsize::new(0));
    let (p, q) = (pings.clone(), pongs.clone());
    let options = broker
        .options("idle")
        .keep_alive(1)
        .trace(Arc::new(move |direction, packet| match (direction, packet) {
            (Direction::Sent, Packet::PingReq) => {
                p.fetch_add(1, Ordering::SeqCst);
            }
            (Direction::Received, Packet::PingResp) => {
                q.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }));
    let (client, mut events) = connect(options).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(pings.load(Ordering::SeqCst) >= 2, "pings: {pings:?}");
    assert!(pongs.load(Ordering::SeqCst) >= 2, "pongs: {pongs:?}");
    client.subscribe_one("still/here", QoS::AtMostOnce).await.unwrap();
    expect_no_event(&mut events, Duration::from_millis(100)).await;
}

#[tokio::test]
async fn bad_password_is_refused_with_the_brokers_code() {
    let broker = Mosquitto::start_with("allow_anonymous false\npassword_file pw\n", |dir| {
        let status = std::process::Command::new("mosquitto_passwd")
            .args(["-c", "-b"])
            .arg(dir.join("pw"))
            .args(["alice", "secret"])
            .status()
            .expect("mosquitto_passwd");
        assert!(status.success());
    });
    let good = broker.options("good").credentials("alice", "secret");
    let wrong = broker.options("bad").credentials("alice", "wrong");
    let anonymous = broker.options("anon");
    for (options, expect_ok) in [(good, true), (wrong, false), (anonymous, false)] {
        for protocol in [ProtocolVersion::V311, ProtocolVersion::V5] {
            let result = Client::connect(options.clone().protocol(protocol)).await;
            match (result, expect_ok) {
                (Ok(_), true) => {}
                (Err(e @ ClientError::ConnectionRefused { .. }), false) => {
                    // Mosquitto 2.0.11 answers a wrong password with "not authorised" (5).
                    assert_eq!(e.connack_return_code(), Some(ConnectReturnCode::NotAuthorized));
                    let ClientError::ConnectionRefused { reason, .. } = e else {
                        unreachable!()
                    };
                    assert_eq!(reason, ReasonCode::NotAuthorized, "{protocol:?}");
                }
                (other, _) => panic!("{protocol:?}: unexpected {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn persistent_session_receives_messages_queued_while_offline() {
    for protocol in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let broker = Mosquitto::start();
        let mut options = broker.options("sleeper").protocol(protocol).clean_start(false);
        if protocol.is_v5() {
            options = options.session_expiry_interval(300);
        }
        let (sleeper, _) = connect(options.clone()).await;
        assert!(!sleeper.connack().session_present);
        sleeper.subscribe_one("queued", QoS::AtLeastOnce).await.unwrap();
        sleeper
            .disconnect(Disconnect::new(ReasonCode::Success))
            .await
            .unwrap();

        let (publisher, _) = connect(broker.options("pub")).await;
        for i in 0..3 {
            publisher
                .publish("queued", format!("m{i}"), QoS::AtLeastOnce, false, no_props())
                .await
                .unwrap();
        }
        let (woken, mut events) = connect(options).await;
        assert!(woken.connack().session_present, "{protocol:?}");
        for i in 0..3 {
            let message = next_publish(&mut events).await;
            assert_eq!(message.payload, format!("m{i}").as_bytes(), "{protocol:?}");
            assert_eq!(message.qos, QoS::AtLeastOnce);
        }
    }
}

#[tokio::test]
async fn reconnect_resumes_the_session_after_an_abrupt_close() {
    let broker = Mosquitto::start();
    let connector = CuttableConnector::new(broker.port);
    let options = broker
        .options("phoenix")
        .protocol(ProtocolVersion::V5)
        .clean_start(false)
        .session_expiry_interval(300)
        .reconnect_delay(Duration::from_millis(100));
    let (client, mut events) = Client::connect_with(connector.clone(), options).await.unwrap();
    client.subscribe_one("phoenix/#", QoS::AtLeastOnce).await.unwrap();
    connector.cut();
    assert!(matches!(next_event(&mut events).await, Event::ConnectionLost(_)));
    match next_event(&mut events).await {
        Event::Reconnected(connack) => assert!(connack.session_present),
        other => panic!("expected Reconnected, got {other:?}"),
    }
    // The subscription survived on the server; publish through the same handle.
    client
        .publish("phoenix/1", "again", QoS::AtLeastOnce, false, no_props())
        .await
        .unwrap();
    assert_eq!(&next_publish(&mut events).await.payload[..], b"again");
}

#[tokio::test]
async fn session_takeover_ends_the_first_connection() {
    // Mosquitto 2.0.11 closes the old connection without a DISCONNECT, even for MQTT 5
    // (the DISCONNECT event is tested against the fake server).
    let broker = Mosquitto::start();
    let (_first, mut events) = connect(broker.options("twin").protocol(ProtocolVersion::V5)).await;
    let (_second, _) = connect(broker.options("twin").protocol(ProtocolVersion::V5)).await;
    match next_event(&mut events).await {
        Event::ConnectionLost(error) => assert!(matches!(*error, ClientError::ConnectionClosed), "{error}"),
        other => panic!("expected ConnectionLost, got {other:?}"),
    }
    assert!(tokio::time::timeout(WAIT, events.recv()).await.unwrap().is_none());
}

#[tokio::test]
async fn unsubscribe_stops_delivery_and_subscribe_options_apply() {
    let broker = Mosquitto::start();
    let (client, mut events) = connect(broker.options("self").protocol(ProtocolVersion::V5)).await;
    let no_local = midge_codec::SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        ..Default::default()
    };
    let suback = client
        .subscribe(
            &[("mine", no_local), ("other", Default::default())],
            SubscribeProperties::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        suback.reason_codes,
        vec![ReasonCode::GrantedQos1, ReasonCode::Success]
    );
    client
        .publish("mine", "x", QoS::AtLeastOnce, false, no_props())
        .await
        .unwrap();
    client
        .publish("other", "y", QoS::AtMostOnce, false, no_props())
        .await
        .unwrap();
    assert_eq!(
        next_publish(&mut events).await.topic.as_str(),
        "other",
        "No Local held back 'mine'"
    );
    let unsuback = client.unsubscribe(&["other"], Default::default()).await.unwrap();
    assert_eq!(unsuback.reason_codes, vec![ReasonCode::Success]);
    client
        .publish("other", "z", QoS::AtLeastOnce, false, no_props())
        .await
        .unwrap();
    expect_no_event(&mut events, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn invalid_topics_fail_the_call_not_the_connection() {
    let broker = Mosquitto::start();
    let (client, _) = connect(broker.options("careless")).await;
    assert!(matches!(
        client
            .publish("a/+", "x", QoS::AtMostOnce, false, no_props())
            .await,
        Err(ClientError::InvalidTopic { .. })
    ));
    assert!(matches!(
        client.subscribe_one("a/#/b", QoS::AtMostOnce).await,
        Err(ClientError::InvalidTopic { .. })
    ));
    client.subscribe_one("a/#", QoS::AtMostOnce).await.unwrap();
}

#[tokio::test]
async fn unreachable_broker_is_an_io_error() {
    let port = support::free_port();
    match Client::connect(midge_client::ClientOptions::new("127.0.0.1", port)).await {
        Err(ClientError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
        other => panic!("expected connection refused, got {other:?}"),
    }
}
