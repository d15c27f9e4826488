//! The MQTT 5 features of issue 4 as a Rust application sees them through rumqttc's v5 client,
//! a library nobody on this project wrote: the second independent client beside Python
//! paho-mqtt (`interop/test_mqtt5.py`), each feature on its normal path and, where rumqttc can
//! be made to break the rule, its protocol error. `docs/conformance.md` ("MQTT 5 features and
//! their tests") maps each feature to these tests, paho's and the packet-level ones.
//!
//! Where rumqttc's API cannot send what a test needs, the test says how it gets there: through
//! rumqttc's public connection state (`EventLoop::state`), by not polling its event loop for a
//! while, or with rumqttc's own v5 encoder over a socket (`Wire5`, for a DISCONNECT with a
//! Session Expiry Interval, which its client cannot send). Rules rumqttc keeps by itself and
//! cannot be made to break (the server's Receive Maximum and Maximum Packet Size) are shown
//! kept; the broker's refusal of a client that breaks them is checked by paho and the raw-packet
//! tests.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

#[path = "support/rumqttc5.rs"]
mod rumqttc5;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{
    ConnectProperties, Disconnect, DisconnectProperties, DisconnectReasonCode, Filter, LastWill, Packet,
    PubAckReason, PublishProperties, RetainForwardRule, SubscribeProperties, SubscribeReasonCode,
    UnsubscribeProperties,
};
use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions, StateError};
use rumqttc5::{Client5, Wire5};
use support::{Midge, WAIT};
use tokio::time::timeout;

fn text(payload: &[u8]) -> &str {
    std::str::from_utf8(payload).unwrap()
}

fn persistent(seconds: u32) -> impl FnOnce(&mut MqttOptions) {
    move |o| {
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(seconds));
    }
}

/// [MQTT-3.1.2-23]: the session outlives the connection for its Session Expiry Interval, and
/// no longer; [MQTT-3.2.2-3]: Session Present says whether it was found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_session_expiry_interval_keeps_the_session_for_as_long_as_it_says() {
    let midge = Midge::start("");
    let (mut away, ack) = Client5::start(&midge, "away", persistent(60)).await;
    assert!(!ack.session_present);
    away.client.subscribe("away/#", QoS::AtLeastOnce).await.unwrap();
    away.acked().await;
    away.client.disconnect().await.unwrap();
    away.ended().await;

    let (mut publisher, _) = Client5::start(&midge, "pub", |_| {}).await;
    publisher
        .client
        .publish("away/x", QoS::AtLeastOnce, false, "while away")
        .await
        .unwrap();
    publisher.acked().await;
    let (mut back, ack) = Client5::start(&midge, "away", persistent(1)).await;
    assert!(ack.session_present, "[MQTT-3.2.2-3]");
    assert_eq!(text(&back.publish().await.payload), "while away");

    // This time a second: gone two seconds after the connection.
    back.client.disconnect().await.unwrap();
    back.ended().await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let (_again, ack) = Client5::start(&midge, "away", persistent(60)).await;
    assert!(!ack.session_present, "[MQTT-3.1.2-23]: the session expired");
}

fn disconnect_with_expiry(seconds: u32) -> Packet {
    Packet::Disconnect(Disconnect {
        reason_code: DisconnectReasonCode::NormalDisconnection,
        properties: Some(DisconnectProperties {
            session_expiry_interval: Some(seconds),
            reason_string: None,
            user_properties: Vec::new(),
            server_reference: None,
        }),
    })
}

fn expiry(seconds: u32) -> ConnectProperties {
    ConnectProperties {
        session_expiry_interval: Some(seconds),
        ..ConnectProperties::new()
    }
}

/// §3.14.2.2.2: the Session Expiry Interval of a DISCONNECT replaces the CONNECT's, except that
/// 0 at CONNECT then non-zero at DISCONNECT is a Protocol Error (DISCONNECT 0x82, and the will
/// goes out as after any error). rumqttc's client sends no DISCONNECT properties, so the
/// CONNECT and DISCONNECT here are rumqttc's own v5 encoding sent over a socket ([`Wire5`]),
/// and the broker's answer is read with rumqttc's decoder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_session_expiry_changed_at_disconnect_and_the_zero_to_non_zero_protocol_error() {
    let midge = Midge::start("");
    // An hour at CONNECT, 0 at DISCONNECT: the session ends with the connection.
    let (mut wire, _) = Wire5::connect(&midge, "shortened", expiry(3600), None).await;
    wire.send(&disconnect_with_expiry(0)).await;
    assert_eq!(wire.recv().await, None, "closed, nothing sent");
    let (_c, ack) = Client5::start(&midge, "shortened", persistent(3600)).await;
    assert!(!ack.session_present, "0 at DISCONNECT ended the session");

    // A second at CONNECT, an hour at DISCONNECT: still there two seconds later.
    let (mut wire, _) = Wire5::connect(&midge, "lengthened", expiry(1), None).await;
    wire.send(&disconnect_with_expiry(3600)).await;
    assert_eq!(wire.recv().await, None);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let (_c, ack) = Client5::start(&midge, "lengthened", persistent(3600)).await;
    assert!(ack.session_present, "the hour set at DISCONNECT counts");

    // 0 at CONNECT, 60 at DISCONNECT.
    let (mut watcher, _) = Client5::start(&midge, "watcher", |_| {}).await;
    watcher.client.subscribe("will/#", QoS::AtMostOnce).await.unwrap();
    watcher.acked().await;
    let will = LastWill::new("will/zero", "protocol error", QoS::AtMostOnce, false, None);
    let (mut wire, _) = Wire5::connect(&midge, "zero", expiry(0), Some(will)).await;
    wire.send(&disconnect_with_expiry(60)).await;
    match wire.recv().await {
        Some(Packet::Disconnect(d)) => {
            assert_eq!(d.reason_code, DisconnectReasonCode::ProtocolError);
        }
        other => panic!("expected DISCONNECT 0x82, got {other:?}"),
    }
    assert_eq!(wire.recv().await, None, "[MQTT-3.14.4-1]: then the close");
    assert_eq!(text(&watcher.publish().await.payload), "protocol error");
}

/// [MQTT-3.3.2-5]: a message whose Message Expiry Interval passed while it was queued is not
/// sent, retained ones included; [MQTT-3.3.2-6]: the one that is sent carries the time left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_message_expiry_counts_down_and_expired_messages_are_not_sent() {
    let midge = Midge::start("");
    let (mut away, _) = Client5::start(&midge, "away", persistent(300)).await;
    away.client.subscribe("exp/#", QoS::AtLeastOnce).await.unwrap();
    away.acked().await;
    away.client.disconnect().await.unwrap();
    away.ended().await;

    let (mut publisher, _) = Client5::start(&midge, "pub", |_| {}).await;
    let lifetime = |seconds| PublishProperties {
        message_expiry_interval: Some(seconds),
        ..Default::default()
    };
    publisher
        .client
        .publish_with_properties("exp/long", QoS::AtLeastOnce, false, "long", lifetime(60))
        .await
        .unwrap();
    publisher.acked().await;
    publisher
        .client
        .publish_with_properties("exp/short", QoS::AtLeastOnce, true, "short", lifetime(1))
        .await
        .unwrap();
    publisher.acked().await;
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let (mut back, ack) = Client5::start(&midge, "away", persistent(300)).await;
    assert!(ack.session_present);
    let p = back.publish().await;
    assert_eq!(text(&p.payload), "long");
    let left = p.properties.and_then(|p| p.message_expiry_interval);
    assert!(
        matches!(left, Some(1..=58)),
        "[MQTT-3.3.2-6]: the time left, not the 60 s sent: {left:?}"
    );
    back.no_publish(Duration::from_millis(300)).await;

    let (mut late, _) = Client5::start(&midge, "late", |_| {}).await;
    late.client.subscribe("exp/#", QoS::AtLeastOnce).await.unwrap();
    late.acked().await;
    late.no_publish(Duration::from_millis(300)).await;
}

/// [MQTT-3.3.4-9]: the broker never has more unacknowledged QoS 1 and 2 messages at a client
/// than the Receive Maximum it sent; rumqttc holds its PUBACKs (manual acks) to show it. The
/// other way, rumqttc keeps to the broker's Receive Maximum by itself (it reads it from the
/// CONNACK), so a fast rumqttc publisher is never disconnected; a client that exceeds it gets
/// DISCONNECT 0x93 in `interop/test_mqtt5.py::test_paho_ignoring_the_servers_receive_maximum_gets_0x93`
/// and `disconnect_reasons.rs::mqtt_3_3_4_7_more_qos_2_exchanges_than_the_receive_maximum_get_0x93`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_receive_maximum_bounds_what_is_in_flight_both_ways() {
    let midge = Midge::start("");
    let (mut slow, _) = Client5::start(&midge, "slow", |o| {
        o.set_receive_maximum(Some(2));
        o.set_manual_acks(true);
    })
    .await;
    slow.client.subscribe("rm/#", QoS::AtLeastOnce).await.unwrap();
    slow.acked().await;
    let (mut publisher, _) = Client5::start(&midge, "pub", |_| {}).await;
    for n in 0..6 {
        publisher
            .client
            .publish("rm/x", QoS::AtLeastOnce, false, n.to_string())
            .await
            .unwrap();
        publisher.acked().await;
    }
    let mut received = vec![slow.publish().await, slow.publish().await];
    for expected in 2..6 {
        slow.no_publish(Duration::from_millis(300)).await;
        let oldest = received.remove(0);
        slow.client.ack(&oldest).await.unwrap();
        let next = slow.publish().await;
        assert_eq!(text(&next.payload), expected.to_string(), "[MQTT-3.3.4-9]");
        received.push(next);
    }

    // The broker's own Receive Maximum: ten QoS 2 messages as fast as rumqttc sends them, two
    // in flight at a time, as the CONNACK told it; every one completes.
    let midge = Midge::start("max_inflight_messages 2");
    let (mut fast, ack) = Client5::start(&midge, "fast", |_| {}).await;
    assert_eq!(ack.properties.unwrap().receive_max, Some(2));
    for n in 0..10 {
        fast.client
            .publish("rm/x", QoS::ExactlyOnce, false, n.to_string())
            .await
            .unwrap();
    }
    for _ in 0..10 {
        fast.next("PUBCOMP", |p| match p {
            Packet::PubComp(c) => Some(c),
            _ => None,
        })
        .await;
    }
}

/// [MQTT-3.1.2-24], [MQTT-3.1.2-25]: a message larger than the client's Maximum Packet Size is
/// not sent to it (rumqttc would refuse it) and is counted as dropped; the rest flow. [MQTT-3.2.2-15]: the
/// broker's own maximum is in the CONNACK, and rumqttc keeps to it by itself: it refuses to
/// send a larger packet (the broker's DISCONNECT 0x95 for a client that does send one is in
/// `interop/test_mqtt5.py::test_paho_sending_past_the_servers_maximum_gets_0x95` and
/// `protocol.rs::max_packet_size_is_announced_and_enforced_both_ways`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_maximum_packet_size_both_ways() {
    let midge = Midge::start("sys_interval 1");
    let (mut small, _) = Client5::start(&midge, "small", |o| {
        o.set_max_packet_size(Some(128));
    })
    .await;
    small.client.subscribe("mps/#", QoS::AtLeastOnce).await.unwrap();
    small.acked().await;
    let (mut publisher, _) = Client5::start(&midge, "pub", |_| {}).await;
    for payload in [vec![b'x'; 200], b"fits".to_vec()] {
        publisher
            .client
            .publish("mps/x", QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
        let ack = publisher.puback().await;
        assert_eq!(ack.reason, PubAckReason::Success, "the publisher is not told");
    }
    assert_eq!(text(&small.publish().await.payload), "fits");
    small
        .client
        .subscribe(
            "$SYS/broker/publish/messages/dropped/too_large_for_client",
            QoS::AtMostOnce,
        )
        .await
        .unwrap();
    small
        .next("the drop counted in $SYS", |p| match p {
            Packet::Publish(p) if &p.payload[..] == b"1" => Some(()),
            _ => None,
        })
        .await;

    let midge = Midge::start("max_packet_size 100");
    let (mut big, ack) = Client5::start(&midge, "big", |_| {}).await;
    assert_eq!(ack.properties.unwrap().max_packet_size, Some(100));
    big.client
        .publish("mps/x", QoS::AtMostOnce, false, vec![b'x'; 200])
        .await
        .unwrap();
    let error = big.ended().await;
    assert!(
        matches!(
            error,
            ConnectionError::MqttState(StateError::Deserialization(
                rumqttc::v5::mqttbytes::Error::OutgoingPacketTooLarge { max: 100, .. }
            ))
        ),
        "rumqttc refuses by itself: {error:?}"
    );
}

fn alias(n: u16) -> PublishProperties {
    PublishProperties {
        topic_alias: Some(n),
        ..Default::default()
    }
}

/// Topic aliases both ways. Client to server: an alias set with its topic, then used with an
/// empty topic (§3.3.2.3.4); rumqttc refuses an alias above the broker's Topic Alias Maximum
/// by itself, having read it from the CONNACK ([MQTT-3.2.2-17]); raised in rumqttc's state, it
/// sends one and gets DISCONNECT 0x94 [MQTT-3.3.2-9]; alias 0 also 0x94 [MQTT-3.3.2-8]; an
/// alias never set, with an empty topic, 0x82 (§3.3.2.3.4). Server to client: rumqttc allows
/// two aliases, checks the ones the broker sends, and sees none above two [MQTT-3.1.2-26],
/// [MQTT-3.3.2-11].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_topic_aliases_both_ways_and_their_protocol_errors() {
    let midge = Midge::start("max_topic_alias 2");
    let (mut sub, _) = Client5::start(&midge, "aliased", |o| {
        o.set_topic_alias_max(Some(2));
    })
    .await;
    sub.client.subscribe("ta/#", QoS::AtMostOnce).await.unwrap();
    sub.acked().await;
    let (mut publisher, ack) = Client5::start(&midge, "aliaser", |_| {}).await;
    assert_eq!(ack.properties.unwrap().topic_alias_max, Some(2));
    publisher
        .client
        .publish_with_properties("ta/kitchen", QoS::AtLeastOnce, false, "set", alias(1))
        .await
        .unwrap();
    publisher.acked().await;
    for n in 0..4 {
        publisher
            .client
            .publish_with_properties("", QoS::AtLeastOnce, false, format!("used {n}"), alias(1))
            .await
            .unwrap();
        publisher.acked().await;
    }
    // rumqttc checks each alias it receives (an unknown one is a protocol error to it) but hands
    // the application the PUBLISH as it came: the application resolves the topic.
    let mut known = std::collections::HashMap::new();
    let mut aliases = Vec::new();
    for expected in ["set", "used 0", "used 1", "used 2", "used 3"] {
        let p = sub.publish().await;
        let alias = p.properties.and_then(|p| p.topic_alias);
        let topic = match alias {
            Some(a) if p.topic.is_empty() => known.get(&a).cloned().expect("a known alias"),
            Some(a) => {
                known.insert(a, p.topic.clone());
                p.topic
            }
            None => p.topic,
        };
        assert_eq!((text(&topic), text(&p.payload)), ("ta/kitchen", expected));
        aliases.push(alias);
    }
    assert!(
        aliases.iter().all(|a| matches!(a, None | Some(1..=2))),
        "[MQTT-3.3.2-11]: {aliases:?}"
    );
    assert!(
        aliases[1..].iter().all(Option::is_some),
        "the same topic again goes as its alias: {aliases:?}"
    );

    publisher
        .client
        .publish_with_properties("ta/x", QoS::AtMostOnce, false, "3", alias(3))
        .await
        .unwrap();
    let error = publisher.ended().await;
    assert!(
        matches!(
            error,
            ConnectionError::MqttState(StateError::InvalidAlias { alias: 3, max: 2 })
        ),
        "rumqttc keeps to the broker's maximum: {error:?}"
    );

    for (id, topic, n, reason) in [
        ("above", "ta/x", 3, DisconnectReasonCode::TopicAliasInvalid),
        ("zero", "ta/x", 0, DisconnectReasonCode::TopicAliasInvalid),
        ("unknown", "", 2, DisconnectReasonCode::ProtocolError),
    ] {
        let (mut client, _) = Client5::start_with(
            &midge,
            id,
            |_| {},
            |eventloop| eventloop.state.broker_topic_alias_max = 10,
        )
        .await;
        client
            .client
            .publish_with_properties(topic, QoS::AtMostOnce, false, "x", alias(n))
            .await
            .unwrap();
        assert_eq!(client.disconnected().await, Some(reason), "{id}");
    }
    sub.no_publish(Duration::from_millis(200)).await;
}

/// [MQTT-3.3.1-9] Retain Handling 0: retained messages at every SUBSCRIBE; [MQTT-3.3.1-10] 1:
/// only when the subscription is new; [MQTT-3.3.1-11] 2: never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_retain_handling_0_1_and_2() {
    let midge = Midge::start("");
    let (mut publisher, _) = Client5::start(&midge, "pub", |_| {}).await;
    publisher
        .client
        .publish("rh/lamp", QoS::AtLeastOnce, true, "on")
        .await
        .unwrap();
    publisher.acked().await;

    let (mut sub, _) = Client5::start(&midge, "rh", |_| {}).await;
    let filter = |rule| {
        let mut f = Filter::new("rh/#", QoS::AtLeastOnce);
        f.retain_forward_rule = rule;
        f
    };
    for _ in 0..2 {
        sub.client
            .subscribe_many([filter(RetainForwardRule::OnEverySubscribe)])
            .await
            .unwrap();
        sub.acked().await;
        let p = sub.publish().await;
        assert_eq!((text(&p.payload), p.retain), ("on", true), "[MQTT-3.3.1-9]");
    }
    // The subscription exists: 1 sends nothing.
    sub.client
        .subscribe_many([filter(RetainForwardRule::OnNewSubscribe)])
        .await
        .unwrap();
    sub.acked().await;
    sub.no_publish(Duration::from_millis(300)).await;
    sub.client.unsubscribe("rh/#").await.unwrap();
    sub.acked().await;
    sub.client
        .subscribe_many([filter(RetainForwardRule::OnNewSubscribe)])
        .await
        .unwrap();
    sub.acked().await;
    assert_eq!(text(&sub.publish().await.payload), "on", "[MQTT-3.3.1-10]");
    sub.client.unsubscribe("rh/#").await.unwrap();
    sub.acked().await;
    sub.client
        .subscribe_many([filter(RetainForwardRule::Never)])
        .await
        .unwrap();
    sub.acked().await;
    sub.no_publish(Duration::from_millis(300)).await;
    // Yet the subscription is there.
    publisher
        .client
        .publish("rh/lamp", QoS::AtLeastOnce, false, "live")
        .await
        .unwrap();
    assert_eq!(text(&sub.publish().await.payload), "live", "[MQTT-3.3.1-11]");
}

/// `max_qos` and the capabilities the CONNACK says are off, none of which rumqttc checks before
/// sending: a SUBSCRIBE is accepted and granted at most `max_qos` [MQTT-3.2.2-10], a PUBLISH
/// above it gets DISCONNECT 0x9B [MQTT-3.2.2-11]; a retained PUBLISH without Retain Available
/// 0x9A [MQTT-3.2.2-14]; a Subscription Identifier 0xA1, a wildcard 0xA2 and a shared
/// subscription 0x9E where they are unavailable (§3.2.2.3.12–3.2.2.3.14); No Local on a shared
/// subscription, 0x82 [MQTT-3.8.3-4].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_max_qos_and_unavailable_features_get_their_disconnect() {
    let midge = Midge::start(
        "max_qos 1\nretain_available false\nwildcard_subscription_available false\n\
         subscription_identifier_available false\nshared_subscription_available false",
    );
    let (mut ok, ack) = Client5::start(&midge, "ok", |_| {}).await;
    assert_eq!(ack.properties.unwrap().max_qos, Some(1));
    ok.client.subscribe("mq/x", QoS::ExactlyOnce).await.unwrap();
    let granted = ok
        .next("SUBACK", |p| match p {
            Packet::SubAck(ack) => Some(ack.return_codes),
            _ => None,
        })
        .await;
    assert_eq!(granted, [SubscribeReasonCode::Success(QoS::AtLeastOnce)]);

    for (id, reason) in [
        ("qos2", DisconnectReasonCode::QoSNotSupported),
        ("retained", DisconnectReasonCode::RetainNotSupported),
        (
            "identifier",
            DisconnectReasonCode::SubscriptionIdentifiersNotSupported,
        ),
        (
            "wildcard",
            DisconnectReasonCode::WildcardSubscriptionsNotSupported,
        ),
        ("shared", DisconnectReasonCode::SharedSubscriptionNotSupported),
    ] {
        let (mut client, _) = Client5::start(&midge, id, |_| {}).await;
        let c = &client.client;
        match id {
            "qos2" => c.publish("mq/x", QoS::ExactlyOnce, false, "2").await,
            "retained" => c.publish("mq/x", QoS::AtMostOnce, true, "kept").await,
            "identifier" => {
                let with_id = SubscribeProperties {
                    id: Some(7),
                    user_properties: Vec::new(),
                };
                c.subscribe_with_properties("mq/x", QoS::AtMostOnce, with_id)
                    .await
            }
            "wildcard" => c.subscribe("mq/#", QoS::AtMostOnce).await,
            _ => c.subscribe("$share/g/mq/x", QoS::AtMostOnce).await,
        }
        .unwrap();
        assert_eq!(client.disconnected().await, Some(reason), "{id}");
    }

    let midge = Midge::start("");
    let (mut client, _) = Client5::start(&midge, "no-local-shared", |_| {}).await;
    let mut filter = Filter::new("$share/g/mq/x", QoS::AtMostOnce);
    filter.nolocal = true;
    client.client.subscribe_many([filter]).await.unwrap();
    assert_eq!(
        client.disconnected().await,
        Some(DisconnectReasonCode::ProtocolError)
    );
}

/// The HTTP listener's address, from its log line.
fn http_addr(midge: &Midge) -> SocketAddr {
    let line = midge.wait_for_log("HTTP API and web view on ");
    let url = line.rsplit(' ').next().unwrap();
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

/// The DISCONNECTs the broker sends of its own accord: 0x8D after one and a half keep alives
/// of silence [MQTT-3.1.2-22], 0x98 when an administrator disconnects the client through the
/// HTTP API, 0x8B when the broker stops (§3.14.2.1). rumqttc pings on time, so to be silent it
/// is simply not polled for a while; the DISCONNECT waits in the socket until it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_the_brokers_own_disconnects_keep_alive_administrative_action_and_shutdown() {
    let midge = Midge::start("http_listener 0 127.0.0.1\nmax_keepalive 1");
    let api = http_addr(&midge);

    // rumqttc takes no keep alive under 5 s, but adopts the Server Keep Alive (1 s).
    let options = MqttOptions::new("quiet", "127.0.0.1", midge.port());
    let (_quiet, mut eventloop) = AsyncClient::new(options, 10);
    loop {
        let event = timeout(WAIT, eventloop.poll()).await.unwrap().unwrap();
        if matches!(event, Event::Incoming(Packet::ConnAck(_))) {
            break;
        }
    }
    tokio::task::block_in_place(|| midge.wait_for_log("Client quiet has exceeded timeout"));
    let reason = loop {
        match timeout(WAIT, eventloop.poll()).await.unwrap() {
            Ok(Event::Incoming(Packet::Disconnect(d))) => break d.reason_code,
            Err(ConnectionError::MqttState(StateError::ServerDisconnect { reason_code, .. })) => {
                break reason_code;
            }
            Ok(_) => {}
            Err(error) => panic!("no DISCONNECT: {error:?}"),
        }
    };
    assert_eq!(reason, DisconnectReasonCode::KeepAliveTimeout);

    let (mut managed, _) = Client5::start(&midge, "managed", |_| {}).await;
    let response = tokio::task::spawn_blocking(move || {
        support::http::request(api, "POST", "/api/v1/clients/managed/disconnect", &[], None)
    })
    .await
    .unwrap();
    assert_eq!(response.status, 204);
    assert_eq!(
        managed.disconnected().await,
        Some(DisconnectReasonCode::AdministrativeAction)
    );

    let (mut last, _) = Client5::start(&midge, "last", |_| {}).await;
    midge.signal("TERM");
    assert_eq!(
        last.disconnected().await,
        Some(DisconnectReasonCode::ServerShuttingDown)
    );
}

/// [MQTT-3.2.2-21]: rumqttc asks for a keep alive of a minute, the broker's `max_keepalive`
/// makes it one second (Server Keep Alive), and rumqttc pings to that pace: still connected
/// after three seconds. [MQTT-3.2.2-16]: an empty client identifier gets one assigned, in the
/// CONNACK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_server_keep_alive_and_assigned_client_identifier() {
    let midge = Midge::start("max_keepalive 1");
    let (mut c, ack) = Client5::start(&midge, "", |o| {
        o.set_keep_alive(Duration::from_secs(60));
    })
    .await;
    let props = ack.properties.unwrap();
    assert_eq!(props.server_keep_alive, Some(1));
    let id = props.assigned_client_identifier.expect("[MQTT-3.2.2-16]");
    assert!(!id.is_empty());
    midge.wait_for_log(&format!("as {id} (p5"));
    tokio::time::sleep(Duration::from_millis(3000)).await;
    c.client.subscribe("ka/x", QoS::AtMostOnce).await.unwrap();
    c.acked().await;
    c.client
        .publish("ka/x", QoS::AtMostOnce, false, "alive")
        .await
        .unwrap();
    assert_eq!(text(&c.publish().await.payload), "alive");
    assert!(
        midge
            .try_wait_for_log("exceeded timeout", Duration::ZERO)
            .is_none()
    );
}

/// User Properties on every packet rumqttc can give them to (CONNECT, SUBSCRIBE, PUBLISH,
/// UNSUBSCRIBE) are accepted, and a PUBLISH's reach the subscriber unaltered and in order
/// [MQTT-3.3.2-17], [MQTT-3.3.2-18]; a PUBLISH over `message_size_limit` gets PUBACK 0x97 with a
/// Reason String; and a client that asked for no problem information gets its PUBACK 0x99
/// without one [MQTT-3.1.2-29].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_user_properties_quota_and_request_problem_information() {
    let midge = Midge::start("message_size_limit 10");
    let users: Vec<(String, String)> = [("b", "1"), ("a", "2"), ("b", "3")]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let with_users = |o: &mut MqttOptions| {
        o.set_user_properties(users.clone());
    };
    let (mut sub, _) = Client5::start(&midge, "users-sub", with_users).await;
    sub.client
        .subscribe_with_properties(
            "up/#",
            QoS::ExactlyOnce,
            SubscribeProperties {
                id: None,
                user_properties: users.clone(),
            },
        )
        .await
        .unwrap();
    sub.acked().await;
    let (publisher, _) = Client5::start(&midge, "users-pub", with_users).await;
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let properties = PublishProperties {
            user_properties: users.clone(),
            ..Default::default()
        };
        publisher
            .client
            .publish_with_properties("up/x", qos, false, "q", properties)
            .await
            .unwrap();
        let p = sub.publish().await;
        assert_eq!(p.properties.unwrap().user_properties, users, "{qos:?}");
    }
    sub.client
        .unsubscribe_with_properties(
            "up/#",
            UnsubscribeProperties {
                user_properties: users.clone(),
            },
        )
        .await
        .unwrap();
    sub.next("UNSUBACK", |p| matches!(p, Packet::UnsubAck(_)).then_some(()))
        .await;

    let (mut big, _) = Client5::start(&midge, "big", |_| {}).await;
    big.client
        .publish("up/x", QoS::AtLeastOnce, false, "longer than ten bytes")
        .await
        .unwrap();
    let ack = big.puback().await;
    assert_eq!(ack.reason, PubAckReason::QuotaExceeded);
    let why = ack.properties.and_then(|p| p.reason_string).unwrap();
    assert!(why.contains("message_size_limit"), "{why}");

    let (mut quiet, _) = Client5::start(&midge, "quiet", |o| {
        o.set_request_problem_info(Some(0));
    })
    .await;
    let not_utf8 = PublishProperties {
        payload_format_indicator: Some(1),
        ..Default::default()
    };
    quiet
        .client
        .publish_with_properties("up/x", QoS::AtLeastOnce, false, vec![0xFF, 0xFE], not_utf8)
        .await
        .unwrap();
    let ack = quiet.puback().await;
    assert_eq!(ack.reason, PubAckReason::PayloadFormatInvalid);
    assert_eq!(
        ack.properties.and_then(|p| p.reason_string),
        None,
        "[MQTT-3.1.2-29]"
    );
}

/// [MQTT-3.3.4-3], [MQTT-3.3.4-4]: a message matching two of a client's subscriptions carries
/// both their identifiers (Midge sends one copy), and a subscription without one adds none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_every_matching_subscription_identifier_arrives() {
    let midge = Midge::start("");
    let (mut sub, _) = Client5::start(&midge, "ids", |_| {}).await;
    for (filter, id) in [("id/#", Some(1)), ("id/+", Some(2)), ("+/x", None)] {
        sub.client
            .subscribe_with_properties(
                filter,
                QoS::AtMostOnce,
                SubscribeProperties {
                    id,
                    user_properties: Vec::new(),
                },
            )
            .await
            .unwrap();
        sub.acked().await;
    }
    let (publisher, _) = Client5::start(&midge, "pub", |_| {}).await;
    publisher
        .client
        .publish("id/x", QoS::AtMostOnce, false, "all three")
        .await
        .unwrap();
    let p = sub.publish().await;
    let mut ids = p.properties.unwrap().subscription_identifiers;
    ids.sort_unstable();
    assert_eq!(ids, [1, 2]);
    sub.no_publish(Duration::from_millis(300)).await;
}

/// Midge's quotas answer per packet, never with DISCONNECT 0x97: a session over
/// `global_max_clients` gets CONNACK 0x97 (the PUBACK 0x97 of `message_size_limit` is in
/// `v5_user_properties_quota_and_request_problem_information`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_a_session_over_global_max_clients_gets_connack_0x97() {
    let midge = Midge::start("global_max_clients 1");
    let (_first, _) = Client5::start(&midge, "first", |_| {}).await;
    let error = rumqttc5::refused5(&midge, "second").await;
    assert!(
        matches!(
            error,
            ConnectionError::ConnectionRefused(rumqttc::v5::mqttbytes::v5::ConnectReturnCode::QuotaExceeded)
        ),
        "{error:?}"
    );
}
