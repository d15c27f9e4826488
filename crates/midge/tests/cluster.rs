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

/// A new client of `node` subscribing to `filter`: the retained messages it is sent, within
/// `quiet` of the SUBACK.
async fn retained_at(node: &support::cluster::Node, id: &str, filter: &str, quiet: Duration) -> Vec<Publish> {
    let mut reader = client(node, id).await;
    reader.client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    reader.acked().await;
    let mut got = Vec::new();
    while let Ok(publish) = tokio::time::timeout(quiet, reader.publish()).await {
        assert!(publish.retain, "only retained messages are published here");
        got.push(publish);
    }
    got
}

/// Issue 14, test 8: a retained message set on one node reaches a new subscriber on another
/// within a second, survives `kill -9` of the node it was set on (a node restarted without
/// persistence gets it from the cluster), and a clear on any node clears it everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_are_the_same_on_every_node_and_outlive_one() {
    let mut cluster = TestCluster::start(3, "");
    let mut publisher = client(cluster.node(1), "retainer").await;
    let properties = PublishProperties {
        user_properties: vec![("origin".into(), "n1".into())],
        ..PublishProperties::default()
    };
    publisher
        .client
        .publish_with_properties("r/a", QoS::AtLeastOnce, true, "v1", properties)
        .await
        .unwrap();
    publisher.acked().await;
    let set_at = Instant::now();
    let mut attempt = 0;
    let found = loop {
        attempt += 1;
        let got = retained_at(
            cluster.node(3),
            &format!("n3-{attempt}"),
            "r/#",
            Duration::from_millis(100),
        )
        .await;
        if let Some(publish) = got.into_iter().next() {
            break publish;
        }
        assert!(
            set_at.elapsed() < Duration::from_secs(1),
            "not on n3 within a second"
        );
    };
    let within = set_at.elapsed();
    assert!(within < Duration::from_secs(1), "on n3 after {within:?}");
    assert_eq!(
        (found.topic.as_ref(), found.payload.as_ref()),
        (&b"r/a"[..], &b"v1"[..])
    );
    let origin = found.properties.expect("properties").user_properties;
    assert_eq!(origin, vec![("origin".to_owned(), "n1".to_owned())]);
    drop(publisher);

    // n1, where it was set, dies; n3 starts again with nothing of its own.
    cluster.kill(1);
    cluster.restart(3);
    let mut found = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while found.is_empty() && Instant::now() < deadline {
        found = retained_at(cluster.node(3), "n3-after", "r/#", Duration::from_millis(300)).await;
    }
    assert_eq!(
        found.len(),
        1,
        "the restarted n3 has the retained message from the cluster"
    );
    assert_eq!(found[0].payload.as_ref(), b"v1");

    // Cleared on n2: gone on n3 too.
    let mut clearer = client(cluster.node(2), "clearer").await;
    clearer
        .client
        .publish("r/a", QoS::AtLeastOnce, true, "")
        .await
        .unwrap();
    clearer.acked().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = retained_at(cluster.node(3), "n3-cleared", "r/#", Duration::from_millis(300)).await;
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the clear did not reach n3");
    }
}
