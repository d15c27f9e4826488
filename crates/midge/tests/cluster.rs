//! A cluster on NATS JetStream (issue 14, docs/cluster.md): three real `midge` nodes on
//! 127.0.0.1, .2 and .3, each with the nats-server it runs, and rumqttc's v5 client as the
//! applications.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

#[path = "support/rumqttc5.rs"]
mod rumqttc5;
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Publish, PublishProperties, SubscribeProperties};
use rumqttc5::Client5;
use support::cluster::TestCluster;

async fn client(node: &support::cluster::Node, id: &str) -> Client5 {
    Client5::start_at(node.addr(), id, |_| {}, |_| {}).await.0
}

async fn subscribe(client: &mut Client5, filter: &str, id: usize) {
    let properties = SubscribeProperties {
        id: Some(id),
        user_properties: Vec::new(),
    };
    client
        .client
        .subscribe_with_properties(filter, QoS::AtLeastOnce, properties)
        .await
        .unwrap();
    client.acked().await;
}

/// Publishes `topic` from `publisher` until `subscriber` gets one: the subscriber's node has
/// told the others its route. Returns once the probes stop arriving.
async fn await_route(publisher: &mut Client5, subscriber: &mut Client5, topic: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "the route for {topic} never reached the publisher's node"
        );
        publisher
            .client
            .publish(topic, QoS::AtMostOnce, false, "probe")
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_millis(300), subscriber.publish()).await;
        if got.is_ok() {
            break;
        }
    }
    // Later probes still on their way.
    while tokio::time::timeout(Duration::from_millis(500), subscriber.publish())
        .await
        .is_ok()
    {}
}

/// The value of a `$SYS/broker/...` counter on a node, once it is published.
async fn sys_value(node: &support::cluster::Node, name: &str) -> u64 {
    let mut reader = client(node, &format!("sys-{name}-{}", node.ip[3])).await;
    reader
        .client
        .subscribe(format!("$SYS/broker/{name}"), QoS::AtMostOnce)
        .await
        .unwrap();
    let publish = reader.publish().await;
    std::str::from_utf8(&publish.payload).unwrap().parse().unwrap()
}

fn properties() -> PublishProperties {
    PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(300),
        topic_alias: None,
        response_topic: Some("replies/here".into()),
        correlation_data: Some(Bytes::from_static(b"\x00corr\xff")),
        user_properties: vec![("k".into(), "v1".into()), ("k".into(), "v2".into())],
        subscription_identifiers: Vec::new(),
        content_type: Some("text/plain".into()),
    }
}

/// Issue 14, test 1: a message published on one node reaches a subscriber on another at QoS 0
/// and 1, topic and MQTT 5 properties intact, whatever the topic holds (NATS wildcards `*` and
/// `>`, `.`, spaces, empty levels); `$` topics travel too, and `#` does not match them
/// [MQTT-4.7.2-1].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_cross_nodes_byte_exact_with_their_properties() {
    let cluster = TestCluster::start(3, "");
    let mut subscriber = client(cluster.node(1), "sub-n1").await;
    subscribe(&mut subscriber, "#", 1).await;
    subscribe(&mut subscriber, "$foo/#", 2).await;
    let mut publisher = client(cluster.node(2), "pub-n2").await;
    await_route(&mut publisher, &mut subscriber, "probe/x").await;

    let topics = [
        "a",
        "a/b/c",
        "spBv1.0/x",
        "a b/c",
        "a/*",
        "a/>",
        "/x//y/",
        "$foo/x",
    ];
    for (n, topic) in topics.iter().enumerate() {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
            let payload = format!("{n}:{qos:?}");
            publisher
                .client
                .publish_with_properties(*topic, qos, false, payload, properties())
                .await
                .unwrap();
        }
    }
    let mut received: HashMap<String, Publish> = HashMap::new();
    while received.len() < topics.len() * 2 {
        let publish = subscriber.publish().await;
        let payload = String::from_utf8(publish.payload.to_vec()).unwrap();
        assert!(
            received.insert(payload.clone(), publish).is_none(),
            "{payload} twice"
        );
    }
    for (n, topic) in topics.iter().enumerate() {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
            let publish = &received[&format!("{n}:{qos:?}")];
            assert_eq!(publish.topic, topic.as_bytes(), "topic byte for byte");
            assert_eq!(publish.qos, qos);
            let got = publish.properties.clone().expect("properties");
            let want = properties();
            assert_eq!(got.user_properties, want.user_properties, "{topic}");
            assert_eq!(got.content_type, want.content_type);
            assert_eq!(got.response_topic, want.response_topic);
            assert_eq!(got.correlation_data, want.correlation_data);
            assert_eq!(got.payload_format_indicator, want.payload_format_indicator);
            let expiry = got.message_expiry_interval.expect("expiry");
            assert!((295..=300).contains(&expiry), "remaining expiry {expiry}");
            // [MQTT-4.7.2-1]: `#` does not match the `$` topic; `$foo/#` does.
            let want_ids = if topic.starts_with('$') { vec![2] } else { vec![1] };
            assert_eq!(got.subscription_identifiers, want_ids, "{topic}");
        }
    }
    subscriber.no_publish(Duration::from_millis(500)).await;
}

/// Issue 14, test 2: traffic with no subscriber on another node never leaves its node: a
/// thousand QoS 1 messages between two clients of n1 move no message through the cluster,
/// while a message for n2's subscriber does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_traffic_stays_local() {
    let cluster = TestCluster::start(3, "");
    let mut remote = client(cluster.node(2), "remote-n2").await;
    remote
        .client
        .subscribe("remote/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    remote.acked().await;
    let mut local = client(cluster.node(1), "local-n1").await;
    local.client.subscribe("local/#", QoS::AtLeastOnce).await.unwrap();
    local.acked().await;
    let mut publisher = client(cluster.node(1), "pub-n1").await;
    // n2's route is known on n1 before the local run, so the run would cross if it could.
    await_route(&mut publisher, &mut remote, "remote/probe").await;
    // Counters are published every second: wait for a value that counts the probes.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let before = sys_value(cluster.node(1), "cluster/messages/forwarded/out").await;

    for n in 0..1000 {
        publisher
            .client
            .publish(
                format!("local/{}", n % 10),
                QoS::AtLeastOnce,
                false,
                n.to_string(),
            )
            .await
            .unwrap();
    }
    for n in 0..1000 {
        let publish = local.publish().await;
        assert_eq!(publish.payload, n.to_string().as_bytes());
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let after = sys_value(cluster.node(1), "cluster/messages/forwarded/out").await;
    assert_eq!(after, before, "local messages went through the cluster");

    publisher
        .client
        .publish("remote/x", QoS::AtLeastOnce, false, "for n2")
        .await
        .unwrap();
    assert_eq!(remote.publish().await.payload, "for n2".as_bytes());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let crossed = sys_value(cluster.node(1), "cluster/messages/forwarded/out").await;
    assert_eq!(crossed, after + 1, "the message for n2 is counted");
    drop(cluster);
}
