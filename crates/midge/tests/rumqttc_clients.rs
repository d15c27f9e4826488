//! The broker as a Rust application sees it through rumqttc, a client library nobody on this
//! project wrote: MQTT 3.1.1 and 5.0 sessions, QoS 0/1/2 in both directions, retained messages,
//! wills and persistent sessions. Each client's event loop runs in its own task and reports
//! what it received on a channel; the tests assert on those events. The MQTT 5 features of
//! issue 4 one by one are in `rumqttc_v5.rs`; the v5 client helper is `support/rumqttc5.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

#[path = "support/rumqttc5.rs"]
mod rumqttc5;
mod support;

use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode;
use rumqttc5::{Client5, refused5};
use support::{Midge, WAIT};
use tokio::sync::mpsc;
use tokio::time::timeout;

mod v4 {
    pub(crate) use rumqttc::{AsyncClient, ConnAck, Event, LastWill, MqttOptions, Packet, Publish, QoS};
}
mod v5 {
    pub(crate) use rumqttc::v5::mqttbytes::QoS;
    pub(crate) use rumqttc::v5::mqttbytes::v5::{LastWill, Packet, PublishProperties};
}

/// A 3.1.1 client with its event loop running; incoming packets arrive on `events`.
struct Client4 {
    client: v4::AsyncClient,
    events: mpsc::UnboundedReceiver<Result<v4::Packet, String>>,
}

impl Client4 {
    async fn start(
        midge: &Midge,
        id: &str,
        configure: impl FnOnce(&mut v4::MqttOptions),
    ) -> (Self, v4::ConnAck) {
        let mut options = v4::MqttOptions::new(id, "127.0.0.1", midge.port());
        options.set_keep_alive(Duration::from_secs(30));
        configure(&mut options);
        let (client, mut eventloop) = v4::AsyncClient::new(options, 100);
        let (tx, mut events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(v4::Event::Incoming(packet)) => {
                        if tx.send(Ok(packet)).is_err() {
                            return;
                        }
                    }
                    Ok(v4::Event::Outgoing(_)) => {}
                    // Stop at the first error: rumqttc would otherwise reconnect.
                    Err(error) => {
                        let _ = tx.send(Err(error.to_string()));
                        return;
                    }
                }
            }
        });
        let connack = loop {
            match timeout(WAIT, events.recv()).await.expect("CONNACK in time") {
                Some(Ok(v4::Packet::ConnAck(ack))) => break ack,
                Some(Ok(_)) => {}
                other => panic!("connection failed: {other:?}"),
            }
        };
        (Self { client, events }, connack)
    }

    /// The next PUBLISH received (other packets are skipped).
    async fn publish(&mut self) -> v4::Publish {
        loop {
            match timeout(WAIT, self.events.recv())
                .await
                .expect("a PUBLISH in time")
            {
                Some(Ok(v4::Packet::Publish(p))) => return p,
                Some(Ok(_)) => {}
                other => panic!("no PUBLISH: {other:?}"),
            }
        }
    }

    /// Waits for the acknowledgement of what was just sent (SUBACK, PUBACK, PUBCOMP).
    async fn acked(&mut self) {
        loop {
            match timeout(WAIT, self.events.recv()).await.expect("an ack in time") {
                Some(Ok(v4::Packet::SubAck(_) | v4::Packet::PubAck(_) | v4::Packet::PubComp(_))) => return,
                Some(Ok(_)) => {}
                other => panic!("no ack: {other:?}"),
            }
        }
    }

    /// Asserts no PUBLISH arrives for `quiet`.
    async fn no_publish(&mut self, quiet: Duration) {
        let deadline = tokio::time::Instant::now() + quiet;
        while let Ok(event) = tokio::time::timeout_at(deadline, self.events.recv()).await {
            if let Some(Ok(v4::Packet::Publish(p))) = event {
                panic!("unexpected PUBLISH {p:?}");
            }
        }
    }
}

fn text(payload: &[u8]) -> &str {
    std::str::from_utf8(payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_qos_0_1_2_in_both_directions() {
    let midge = Midge::start("");
    let (mut sub, ack) = Client4::start(&midge, "sub", |_| {}).await;
    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
    let (mut publisher, _) = Client4::start(&midge, "pub", |_| {}).await;
    for (filter, qos) in [
        ("q0/#", v4::QoS::AtMostOnce),
        ("q1/#", v4::QoS::AtLeastOnce),
        ("q2/#", v4::QoS::ExactlyOnce),
    ] {
        sub.client.subscribe(filter, qos).await.unwrap();
        sub.acked().await;
    }
    for (topic, qos) in [
        ("q0/a", v4::QoS::AtMostOnce),
        ("q1/a", v4::QoS::AtLeastOnce),
        ("q2/a", v4::QoS::ExactlyOnce),
    ] {
        for pub_qos in [v4::QoS::AtMostOnce, v4::QoS::AtLeastOnce, v4::QoS::ExactlyOnce] {
            let payload = format!("{topic} {pub_qos:?}");
            publisher
                .client
                .publish(topic, pub_qos, false, payload.clone())
                .await
                .unwrap();
            if pub_qos != v4::QoS::AtMostOnce {
                publisher.acked().await;
            }
            let got = sub.publish().await;
            assert_eq!(text(&got.payload), payload);
            // Delivered at min(published QoS, granted QoS) [MQTT-3.8.4-8].
            assert_eq!(got.qos, std::cmp::min_by_key(qos, pub_qos, |q| *q as u8));
        }
    }
    sub.no_publish(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_persistent_session_gets_what_was_published_while_away() {
    let midge = Midge::start("");
    let persistent = |o: &mut v4::MqttOptions| {
        o.set_clean_session(false);
    };
    let (sub, ack) = Client4::start(&midge, "away", persistent).await;
    assert!(!ack.session_present);
    sub.client
        .subscribe("away/#", v4::QoS::ExactlyOnce)
        .await
        .unwrap();
    let mut sub = sub;
    sub.acked().await;
    sub.client.disconnect().await.unwrap();
    midge.wait_for_log("Client away disconnected");

    let (mut publisher, _) = Client4::start(&midge, "pub", |_| {}).await;
    for n in 0..20 {
        publisher
            .client
            .publish("away/x", v4::QoS::ExactlyOnce, false, format!("{n}"))
            .await
            .unwrap();
        publisher.acked().await;
    }
    let (mut sub, ack) = Client4::start(&midge, "away", persistent).await;
    assert!(ack.session_present, "[MQTT-3.2.2-3]");
    for n in 0..20 {
        assert_eq!(text(&sub.publish().await.payload), n.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_retained_message_and_will() {
    let midge = Midge::start("");
    let (mut publisher, _) = Client4::start(&midge, "pub", |_| {}).await;
    publisher
        .client
        .publish("status/lamp", v4::QoS::AtLeastOnce, true, "on")
        .await
        .unwrap();
    publisher.acked().await;

    let (mut watcher, _) = Client4::start(&midge, "watcher", |_| {}).await;
    watcher
        .client
        .subscribe("status/#", v4::QoS::AtLeastOnce)
        .await
        .unwrap();
    let retained = watcher.publish().await;
    assert!(retained.retain, "[MQTT-3.3.1-8] (3.1.1)");
    assert_eq!(text(&retained.payload), "on");

    // A client with a will whose connection dies: the will is published.
    let mut raw = support::RawClient::connect(midge.addr(), midge_codec::ProtocolVersion::V311);
    raw.send(&support::packets::connect_with(
        midge_codec::ProtocolVersion::V311,
        "dying",
        |c| {
            c.will = Some(support::packets::will(
                "status/dying",
                "offline",
                midge_codec::QoS::AtLeastOnce,
                false,
            ));
        },
    ));
    raw.recv();
    drop(raw);
    let will = watcher.publish().await;
    assert_eq!(
        (will.topic.as_str(), text(&will.payload)),
        ("status/dying", "offline")
    );

    // rumqttc's own will, after a keep alive timeout: the client stops polling.
    let (dying, _) = Client4::start(&midge, "rumqttc-dying", |o| {
        o.set_keep_alive(Duration::from_secs(1));
        o.set_last_will(v4::LastWill::new(
            "status/rumqttc",
            "lost",
            v4::QoS::AtMostOnce,
            false,
        ));
    })
    .await;
    drop(dying); // Dropping the client ends its event loop; the socket closes without DISCONNECT.
    let will = watcher.publish().await;
    assert_eq!(will.topic, "status/rumqttc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_qos_flows_properties_and_connack() {
    let midge = Midge::start("");
    let (mut sub, ack) = Client5::start(&midge, "sub5", |_| {}).await;
    let props = ack.properties.expect("CONNACK properties");
    assert_eq!(
        props.topic_alias_max,
        Some(10),
        "Mosquitto's default max_topic_alias"
    );
    let (mut publisher, _) = Client5::start(&midge, "pub5", |_| {}).await;
    sub.client.subscribe("v5/#", v5::QoS::ExactlyOnce).await.unwrap();
    sub.acked().await;

    let properties = v5::PublishProperties {
        user_properties: vec![("site".into(), "lab".into()), ("site".into(), "roof".into())],
        response_topic: Some("v5/replies".into()),
        correlation_data: Some(bytes::Bytes::from_static(b"req-1")),
        content_type: Some("text/plain".into()),
        payload_format_indicator: Some(1),
        ..Default::default()
    };
    for qos in [v5::QoS::AtMostOnce, v5::QoS::AtLeastOnce, v5::QoS::ExactlyOnce] {
        publisher
            .client
            .publish_with_properties("v5/x", qos, false, format!("{qos:?}"), properties.clone())
            .await
            .unwrap();
        if qos != v5::QoS::AtMostOnce {
            publisher.acked().await;
        }
        let got = sub.publish().await;
        assert_eq!(text(&got.payload), format!("{qos:?}"));
        assert_eq!(got.qos, qos);
        let p = got.properties.expect("properties forwarded");
        // [MQTT-3.3.2-17]: user properties forwarded unaltered and in order.
        assert_eq!(p.user_properties, properties.user_properties);
        assert_eq!(p.response_topic, properties.response_topic);
        assert_eq!(p.correlation_data, properties.correlation_data);
        assert_eq!(p.content_type, properties.content_type);
        assert_eq!(p.payload_format_indicator, Some(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_takeover_sends_0x8e_to_the_first_connection() {
    let midge = Midge::start("");
    let (mut first, _) = Client5::start(&midge, "same", |_| {}).await;
    let (_second, _) = Client5::start(&midge, "same", |_| {}).await;
    // [MQTT-3.1.4-3], with reason 0x8E (§3.14.2.1).
    assert_eq!(
        first.disconnected().await,
        Some(DisconnectReasonCode::SessionTakenOver)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_will_with_delay_from_rumqttc() {
    let midge = Midge::start("");
    let (mut watcher, _) = Client5::start(&midge, "watcher", |_| {}).await;
    watcher
        .client
        .subscribe("gone/#", v5::QoS::AtMostOnce)
        .await
        .unwrap();
    watcher.acked().await;
    let (client, _) = Client5::start(&midge, "delayed", |o| {
        o.set_session_expiry_interval(Some(60));
        o.set_last_will(v5::LastWill::new(
            "gone/delayed",
            "after a second",
            v5::QoS::AtMostOnce,
            false,
            Some(rumqttc::v5::mqttbytes::v5::LastWillProperties {
                delay_interval: Some(1),
                payload_format_indicator: None,
                message_expiry_interval: None,
                content_type: None,
                response_topic: None,
                correlation_data: None,
                user_properties: Vec::new(),
            }),
        ));
    })
    .await;
    let dropped = tokio::time::Instant::now();
    client.kill();
    let will = watcher.publish().await;
    assert_eq!(text(&will.payload), "after a second");
    assert!(
        dropped.elapsed() >= Duration::from_millis(900),
        "[MQTT-3.1.2-8] {:?}",
        dropped.elapsed()
    );
}

/// CONNACK capabilities, Response Information and server redirection as rumqttc reads them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_connack_capabilities_response_information_and_redirection() {
    let midge = Midge::start(
        "max_qos 1\nretain_available false\nwildcard_subscription_available false\n\
         subscription_identifier_available false\nshared_subscription_available false\n\
         response_information replies/",
    );
    let (_c, ack) = Client5::start(&midge, "asks", |o| {
        o.set_request_response_info(Some(1));
    })
    .await;
    let p = ack.properties.expect("CONNACK properties");
    assert_eq!(p.max_qos, Some(1));
    assert_eq!(p.retain_available, Some(0));
    assert_eq!(p.wildcard_subscription_available, Some(0));
    assert_eq!(p.subscription_identifiers_available, Some(0));
    assert_eq!(p.shared_subscription_available, Some(0));
    assert_eq!(p.response_information.as_deref(), Some("replies/asks"));

    let midge = Midge::start("server_reference other.example:1883");
    let error = refused5(&midge, "moving").await;
    assert!(
        matches!(
            error,
            rumqttc::v5::ConnectionError::ConnectionRefused(
                rumqttc::v5::mqttbytes::v5::ConnectReturnCode::UseAnotherServer
            )
        ),
        "{error:?}"
    );
    let midge = Midge::start("server_reference other.example:1883\nserver_moved true");
    let error = refused5(&midge, "moved").await;
    assert!(
        matches!(
            error,
            rumqttc::v5::ConnectionError::ConnectionRefused(
                rumqttc::v5::mqttbytes::v5::ConnectReturnCode::ServerMoved
            )
        ),
        "{error:?}"
    );
}

/// No Local, Retain As Published, Subscription Identifiers, and a refused payload format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_subscription_options_identifiers_and_payload_format() {
    use rumqttc::v5::mqttbytes::v5::{Filter, PubAckReason, SubscribeProperties};
    let midge = Midge::start("");
    let (mut me, _) = Client5::start(&midge, "me", |_| {}).await;
    let mut filter = Filter::new("opt/#", v5::QoS::AtLeastOnce);
    filter.nolocal = true;
    filter.preserve_retain = true;
    me.client
        .subscribe_many_with_properties(
            [filter],
            SubscribeProperties {
                id: Some(9),
                user_properties: Vec::new(),
            },
        )
        .await
        .unwrap();
    me.acked().await;
    let (mut other, _) = Client5::start(&midge, "other", |_| {}).await;
    // [MQTT-3.8.3-3]: my own message does not come back; the other's does, RETAIN kept
    // [MQTT-3.3.1-13], with my subscription's identifier [MQTT-3.3.4-3].
    me.client
        .publish("opt/x", v5::QoS::AtLeastOnce, true, "mine")
        .await
        .unwrap();
    me.acked().await;
    other
        .client
        .publish("opt/x", v5::QoS::AtLeastOnce, true, "theirs")
        .await
        .unwrap();
    other.acked().await;
    let got = me.publish().await;
    assert_eq!((text(&got.payload), got.retain), ("theirs", true));
    assert_eq!(got.properties.unwrap().subscription_identifiers, [9]);

    // Payload Format Indicator 1 over a payload that is not UTF-8: PUBACK 0x99 with a reason.
    let properties = v5::PublishProperties {
        payload_format_indicator: Some(1),
        ..Default::default()
    };
    other
        .client
        .publish_with_properties(
            "opt/y",
            v5::QoS::AtLeastOnce,
            false,
            vec![0xFFu8, 0xFE],
            properties,
        )
        .await
        .unwrap();
    let ack = loop {
        match timeout(WAIT, other.events.recv())
            .await
            .expect("a PUBACK in time")
        {
            Some(Ok(v5::Packet::PubAck(ack))) => break ack,
            Some(Ok(_)) => {}
            end => panic!("{end:?}"),
        }
    };
    assert_eq!(ack.reason, PubAckReason::PayloadFormatInvalid);
    assert!(ack.properties.and_then(|p| p.reason_string).is_some());
}
