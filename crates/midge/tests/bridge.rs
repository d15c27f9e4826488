//! Bridges as a user sees them: two `midge` processes bridged, and `midge` bridged to Debian's
//! Mosquitto; messages out, in and both ways with prefixes at each QoS over MQTT 3.1.1 and 5.0;
//! no echo when bridged both ways; the link's state in `$SYS` and on the remote broker; TLS;
//! lazy start; and the fault test: the remote broker killed and restarted while a publisher
//! sends numbered messages, every acknowledged one arriving, none twice at QoS 2.
//!
//! Set `MIDGE_TEST_LOG=1` to see the brokers' logs.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use midge_client::{Client, ClientOptions, Event, Events};
use midge_codec::properties::PublishProperties;
use midge_codec::{Publish, QoS};
use support::pki::Pki;
use support::{Midge, Mosquitto, free_port};
use tokio::time::{Instant, sleep, timeout};

/// How long a message may take to cross, at most.
const CROSS: Duration = Duration::from_secs(10);
/// Silence that ends a collection of messages.
const QUIET: Duration = Duration::from_millis(400);

/// A broker configuration listening on `port` of 127.0.0.1.
fn broker_conf(port: u16, extra: &str) -> String {
    format!("listener {port} 127.0.0.1\nallow_anonymous true\n{extra}\n")
}

/// A broker on a free port with one bridge, `NAME`, to 127.0.0.1:`remote`, reconnecting
/// every second.
fn bridged(name: &str, remote: u16, lines: &str) -> Midge {
    let local = Midge::start(&format!(
        "connection {name}\naddress 127.0.0.1:{remote}\nrestart_timeout 1\n{lines}"
    ));
    local.wait_for_log(&format!("Bridge {name} connected"));
    local
}

/// A connected client with a clean session.
async fn client(port: u16, id: &str) -> (Client, Events) {
    let options = ClientOptions::new("127.0.0.1", port).client_id(id);
    Client::connect(options).await.unwrap()
}

/// A client subscribed to `filters` at QoS 2.
async fn subscriber(port: u16, id: &str, filters: &[&str]) -> (Client, Events) {
    let (client, events) = client(port, id).await;
    for filter in filters {
        client.subscribe_one(filter, QoS::ExactlyOnce).await.unwrap();
    }
    (client, events)
}

async fn publish(client: &Client, topic: &str, payload: &str, qos: QoS, retain: bool) {
    client
        .publish(
            topic,
            payload.to_owned(),
            qos,
            retain,
            PublishProperties::default(),
        )
        .await
        .unwrap();
}

/// Every message that arrives until nothing more comes for [`QUIET`] (at most [`CROSS`]).
async fn settle(events: &mut Events) -> Vec<Publish> {
    let mut got = Vec::new();
    let deadline = Instant::now() + CROSS;
    while let Ok(Some(event)) = timeout(QUIET, events.recv()).await {
        if let Event::Publish(publish) = event {
            got.push(publish);
        }
        if Instant::now() > deadline {
            break;
        }
    }
    got
}

/// At least `count` messages (waiting up to [`CROSS`] for them), and any that follow within
/// [`QUIET`]: extra ones (echoes, duplicates) are in the result too.
async fn gather(events: &mut Events, count: usize) -> Vec<Publish> {
    let mut got = Vec::new();
    let deadline = Instant::now() + CROSS;
    while got.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, events.recv()).await {
            Ok(Some(Event::Publish(publish))) => got.push(publish),
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    got.extend(settle(events).await);
    got
}

/// Waits for a message on `topic`, skipping others.
async fn expect(events: &mut Events, topic: &str) -> Publish {
    let deadline = Instant::now() + CROSS;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, events.recv()).await {
            Ok(Some(Event::Publish(publish))) if publish.topic.as_str() == topic => return publish,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the client ended waiting for {topic}"),
            Err(_) => panic!("nothing on {topic} within {CROSS:?}"),
        }
    }
}

/// Waits until the last value seen on each topic is the one wanted (retained values and live
/// ones arrive in no set order across topics).
async fn reaches(events: &mut Events, wanted: &[(&str, &str)]) {
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    let deadline = Instant::now() + CROSS;
    while !wanted
        .iter()
        .all(|(topic, value)| last.get(*topic).map(String::as_str) == Some(*value))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, events.recv()).await {
            Ok(Some(Event::Publish(p))) => {
                last.insert(
                    p.topic.as_str().to_owned(),
                    String::from_utf8_lossy(&p.payload).into_owned(),
                );
            }
            Ok(Some(_)) => {}
            _ => panic!("{wanted:?} not reached; last values: {last:?}"),
        }
    }
}

/// (topic, payload) of each message.
fn seen(messages: &[Publish]) -> Vec<(String, String)> {
    let mut seen: Vec<(String, String)> = messages
        .iter()
        .map(|p| {
            (
                p.topic.as_str().to_owned(),
                String::from_utf8_lossy(&p.payload).into_owned(),
            )
        })
        .collect();
    seen.sort();
    seen
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = items
        .iter()
        .map(|(t, p)| ((*t).to_owned(), (*p).to_owned()))
        .collect();
    pairs.sort();
    pairs
}

/// Publishes on `from` until a message arrives on `watch`: the bridge's subscriptions are in
/// place on both sides. Then lets everything settle.
async fn wait_until_bridged(from: &Client, topic: &str, watch: &mut Events, arrives_as: &str) {
    let deadline = Instant::now() + CROSS;
    loop {
        publish(from, topic, "probe", QoS::AtMostOnce, false).await;
        if let Ok(Some(Event::Publish(p))) = timeout(Duration::from_millis(200), watch.recv()).await
            && p.topic.as_str() == arrives_as
        {
            break;
        }
        assert!(Instant::now() < deadline, "{topic} never crossed the bridge");
    }
    settle(watch).await;
}

/// Out with prefixes at QoS 0, 1 and 2, in with prefixes, both ways without, and a `""`
/// pattern mapping one topic to another, through a bridge to the broker on `remote`.
async fn forwards_every_way(remote: u16, protocol: &str) {
    let local = bridged(
        "fwd",
        remote,
        &format!(
            "bridge_protocol_version {protocol}\n\
             topic up/# out 2 local/ remote/\n\
             topic down/# in 2 here/ there/\n\
             topic both/# both 2\n\
             topic \"\" both 1 local/state remote/state\n"
        ),
    );
    let (here, mut here_events) =
        subscriber(local.port(), "here", &["here/#", "both/#", "local/state"]).await;
    let (there, mut there_events) = subscriber(remote, "there", &["remote/#", "both/#"]).await;
    wait_until_bridged(&there, "there/down/probe", &mut here_events, "here/down/probe").await;
    wait_until_bridged(&here, "local/up/probe", &mut there_events, "remote/up/probe").await;

    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let n = qos.as_u8();
        publish(&here, &format!("local/up/q{n}"), "out", qos, false).await;
        let p = expect(&mut there_events, &format!("remote/up/q{n}")).await;
        assert_eq!(
            (p.qos, &p.payload[..]),
            (qos, &b"out"[..]),
            "{protocol} out at QoS {n}"
        );
        publish(&there, &format!("there/down/q{n}"), "in", qos, false).await;
        let p = expect(&mut here_events, &format!("here/down/q{n}")).await;
        assert_eq!(
            (p.qos, &p.payload[..]),
            (qos, &b"in"[..]),
            "{protocol} in at QoS {n}"
        );
    }

    publish(&here, "both/a", "from here", QoS::AtLeastOnce, false).await;
    publish(&there, "both/b", "from there", QoS::AtLeastOnce, false).await;
    publish(&here, "local/state", "on", QoS::AtLeastOnce, false).await;
    publish(&there, "remote/state", "off", QoS::AtLeastOnce, false).await;
    // Each side has each message once: its own, and the other side's through the bridge.
    assert_eq!(
        seen(&gather(&mut here_events, 4).await),
        pairs(&[
            ("both/a", "from here"),
            ("both/b", "from there"),
            ("local/state", "on"),
            ("local/state", "off")
        ]),
        "{protocol}: here"
    );
    assert_eq!(
        seen(&gather(&mut there_events, 4).await),
        pairs(&[
            ("both/a", "from here"),
            ("both/b", "from there"),
            ("remote/state", "on"),
            ("remote/state", "off")
        ]),
        "{protocol}: there"
    );

    // A retained message stays retained on the other side (Retain As Published).
    publish(&here, "both/kept", "state", QoS::AtLeastOnce, true).await;
    expect(&mut there_events, "both/kept").await;
    let (_late, mut late_events) = subscriber(remote, "late", &["both/kept"]).await;
    let p = expect(&mut late_events, "both/kept").await;
    assert!(p.retain, "{protocol}: retained on the remote broker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_midges_forward_out_in_and_both_ways_with_prefixes_at_every_qos() {
    for protocol in ["mqttv311", "mqttv50"] {
        let port = free_port();
        let _remote = Midge::start_with_config(&broker_conf(port, ""));
        forwards_every_way(port, protocol).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn midge_bridged_to_mosquitto_forwards_every_way() {
    for protocol in ["mqttv311", "mqttv50"] {
        let remote = Mosquitto::start("allow_anonymous true", |_| {});
        forwards_every_way(remote.port, protocol).await;
    }
}

/// One message published on each side of a `both` bridge arrives once on each side: the
/// bridge's local subscriptions have No Local, and the remote ones No Local (MQTT 5) or the
/// bridge bit of `try_private` (MQTT 3.1.1), which Midge and Mosquitto both honour.
async fn no_echo(remote: u16, protocol: &str) {
    let local = bridged(
        "loop",
        remote,
        &format!("bridge_protocol_version {protocol}\ntopic loop/# both 2\n"),
    );
    let (here, mut here_events) = subscriber(local.port(), "here", &["loop/#"]).await;
    let (there, mut there_events) = subscriber(remote, "there", &["loop/#"]).await;
    wait_until_bridged(&there, "loop/probe", &mut here_events, "loop/probe").await;
    settle(&mut there_events).await;
    publish(&here, "loop/a", "1", QoS::ExactlyOnce, false).await;
    publish(&there, "loop/b", "2", QoS::AtLeastOnce, false).await;
    let expected = pairs(&[("loop/a", "1"), ("loop/b", "2")]);
    assert_eq!(
        seen(&gather(&mut here_events, 2).await),
        expected,
        "{protocol}: here"
    );
    assert_eq!(
        seen(&gather(&mut there_events, 2).await),
        expected,
        "{protocol}: there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_loops_when_bridged_both_ways() {
    for protocol in ["mqttv311", "mqttv50"] {
        let port = free_port();
        let _remote = Midge::start_with_config(&broker_conf(port, ""));
        no_echo(port, protocol).await;
        let mosquitto = Mosquitto::start("allow_anonymous true", |_| {});
        no_echo(mosquitto.port, protocol).await;
    }
}

/// `$SYS/broker/connection/NAME/state` and the notification topic go 1 → 0 → 1 as the remote
/// broker stops and comes back; the remote broker has the notification too, and publishes the
/// bridge's will (`0`) when the bridge's broker dies; the counters move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_state_follows_the_remote_broker_and_counters_move() {
    let port = free_port();
    let remote = Midge::start_with_config(&broker_conf(port, ""));
    let local = bridged(
        "st",
        port,
        "remote_clientid edge-st\ntopic st/# out 1\nsys_interval 1\n",
    );
    let state = "$SYS/broker/connection/st/state";
    let notification = "$SYS/broker/connection/edge-st/state";
    let (here, mut here_events) = subscriber(local.port(), "watcher", &["$SYS/broker/connection/#"]).await;
    reaches(&mut here_events, &[(state, "1"), (notification, "1")]).await;
    let (_there, mut there_events) = subscriber(port, "there", &[notification, "st/#"]).await;
    reaches(&mut there_events, &[(notification, "1")]).await;

    drop(remote);
    reaches(&mut here_events, &[(state, "0"), (notification, "0")]).await;
    let _remote = Midge::start_with_config(&broker_conf(port, ""));
    reaches(&mut here_events, &[(state, "1"), (notification, "1")]).await;

    // Counters, every sys_interval.
    let (_there, mut there_events) = subscriber(port, "there-again", &[notification, "st/#"]).await;
    reaches(&mut there_events, &[(notification, "1")]).await;
    publish(&here, "st/x", "1", QoS::AtLeastOnce, false).await;
    expect(&mut there_events, "st/x").await;
    reaches(
        &mut here_events,
        &[("$SYS/broker/connection/st/messages/forwarded/out", "1")],
    )
    .await;

    // The bridge's broker dies: the remote broker publishes the bridge's will.
    drop(local);
    reaches(&mut there_events, &[(notification, "0")]).await;
}

/// The fault test: a publisher sends numbered messages to the bridge's broker while the
/// remote broker (persistent) is killed and restarted three times; a persistent subscriber on
/// the remote broker gets every message the bridge's broker acknowledged, and at QoS 2 none
/// twice.
async fn survives_remote_restarts(qos: QoS) {
    const MESSAGES: u32 = 300;
    const KILLS: usize = 3;
    let port = free_port();
    let store = tempfile::tempdir().unwrap();
    let remote_conf = broker_conf(
        port,
        &format!(
            "persistence true\npersistence_location {}/\n",
            store.path().display()
        ),
    );
    let remote = Arc::new(Mutex::new(Some(Midge::start_with_config(&remote_conf))));
    let local = Arc::new(bridged("fault", port, "topic fault/# out 2\n"));

    // The subscriber: a persistent session on the remote broker, reconnecting.
    let options = ClientOptions::new("127.0.0.1", port)
        .client_id(format!("fault-sub-{}", qos.as_u8()))
        .clean_start(false)
        .reconnect_delay(Duration::from_millis(100));
    let (subscriber, mut events) = Client::connect(options).await.unwrap();
    subscriber.subscribe_one("fault/#", qos).await.unwrap();
    let received: Arc<Mutex<Vec<u32>>> = Arc::default();
    let collector = {
        let received = received.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    Event::Publish(p) => {
                        let n = String::from_utf8_lossy(&p.payload).parse().unwrap();
                        received.lock().unwrap().push(n);
                    }
                    Event::Reconnected(connack) => {
                        assert!(connack.session_present, "the remote broker kept the session");
                    }
                    _ => {}
                }
            }
        })
    };

    // Three times, once the bridge is connected: kill -9 the remote broker, start it again on
    // the same port and store.
    let connections = {
        let local = local.clone();
        move || {
            local
                .logs()
                .iter()
                .filter(|l| l.contains("Bridge fault connected"))
                .count()
        }
    };
    let killer = {
        let remote = remote.clone();
        let connections = connections.clone();
        tokio::task::spawn_blocking(move || {
            for kill in 0..KILLS {
                let deadline = std::time::Instant::now() + CROSS;
                while connections() < kill + 1 {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the bridge did not reconnect"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
                std::thread::sleep(Duration::from_millis(300));
                drop(remote.lock().unwrap().take());
                std::thread::sleep(Duration::from_millis(300));
                *remote.lock().unwrap() = Some(Midge::start_with_config(&remote_conf));
            }
        })
    };

    // Numbered messages, every 10 ms, until the faults are over.
    let (publisher, _events) = client(local.port(), "fault-pub").await;
    let mut acknowledged = BTreeSet::new();
    let mut pending = Vec::new();
    let mut n = 0;
    while n < MESSAGES || !killer.is_finished() {
        let started = publisher
            .start_publish("fault/n", n.to_string(), qos, false, PublishProperties::default())
            .await
            .unwrap();
        pending.push((n, started));
        n += 1;
        sleep(Duration::from_millis(10)).await;
    }
    let published = n;
    for (n, started) in pending {
        if started.await.is_ok() {
            acknowledged.insert(n);
        }
    }
    killer.await.unwrap();
    assert_eq!(
        acknowledged.len(),
        published as usize,
        "the bridge's broker acknowledges everything"
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got: BTreeSet<u32> = received.lock().unwrap().iter().copied().collect();
        let missing: Vec<u32> = acknowledged.difference(&got).copied().collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} acknowledged messages never arrived, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        sleep(Duration::from_millis(100)).await;
    }
    if qos == QoS::ExactlyOnce {
        sleep(QUIET).await;
        let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
        for n in received.lock().unwrap().iter() {
            *counts.entry(*n).or_default() += 1;
        }
        let twice: Vec<u32> = counts.iter().filter(|(_, c)| **c > 1).map(|(n, _)| *n).collect();
        assert!(twice.is_empty(), "QoS 2 messages delivered twice: {twice:?}");
    }
    assert!(connections() > KILLS, "the bridge reconnected after each restart");
    collector.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_qos1_message_arrives_while_the_remote_broker_is_killed_and_restarted() {
    survives_remote_restarts(QoS::AtLeastOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_messages_arrive_once_while_the_remote_broker_is_killed_and_restarted() {
    survives_remote_restarts(QoS::ExactlyOnce).await;
}

/// `bridge_cafile`: the remote broker's certificate is checked against the CA; a bridge that
/// trusts another CA does not connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridges_over_tls_check_the_remote_certificate() {
    let pki = Pki::new();
    let tls_port = free_port();
    let plain_port = free_port();
    // Plain for the test's subscriber, TLS for the bridges.
    let _remote = Midge::start_with_config(&format!(
        "listener {plain_port} 127.0.0.1\nallow_anonymous true\n\
         listener {tls_port} 127.0.0.1\ncertfile {}\nkeyfile {}\n",
        pki.path("server.pem").display(),
        pki.path("server.key").display()
    ));
    let (_there, mut there_events) = subscriber(plain_port, "there", &["tls/#"]).await;
    let local = bridged(
        "tls",
        tls_port,
        &format!(
            "topic tls/# out 1\nbridge_cafile {}\n",
            pki.path("ca.pem").display()
        ),
    );
    let (here, _) = client(local.port(), "tls-pub").await;
    let deadline = Instant::now() + CROSS;
    loop {
        publish(&here, "tls/x", "secret", QoS::AtLeastOnce, false).await;
        if let Ok(Some(Event::Publish(p))) = timeout(Duration::from_millis(300), there_events.recv()).await {
            assert_eq!(&p.payload[..], b"secret");
            break;
        }
        assert!(Instant::now() < deadline, "nothing crossed the TLS bridge");
    }

    let rogue = Midge::start(&format!(
        "connection rogue\naddress 127.0.0.1:{tls_port}\nrestart_timeout 1\ntopic tls/# out 1\n\
         bridge_cafile {}\n",
        pki.path("rogue-ca.pem").display()
    ));
    let line = rogue.wait_for_log("Bridge rogue: cannot connect");
    assert!(line.contains("certificate"), "{line}");
}

/// `start_type lazy`: the bridge connects once `threshold` messages wait, sends them, and
/// disconnects after `idle_timeout` without traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_bridge_connects_at_its_threshold_and_leaves_when_idle() {
    let port = free_port();
    let _remote = Midge::start_with_config(&broker_conf(port, ""));
    let (_there, mut there_events) = subscriber(port, "there", &["lazy/#"]).await;
    let local = Midge::start(&format!(
        "connection lazy\naddress 127.0.0.1:{port}\nstart_type lazy\nthreshold 3\nidle_timeout 2\n\
         topic lazy/# out 1\n"
    ));
    let (here, _) = client(local.port(), "lazy-pub").await;
    publish(&here, "lazy/1", "1", QoS::AtLeastOnce, false).await;
    publish(&here, "lazy/2", "2", QoS::AtLeastOnce, false).await;
    sleep(Duration::from_secs(1)).await;
    assert!(
        !local.logs().iter().any(|l| l.contains("Bridge lazy connected")),
        "below the threshold the bridge waits"
    );
    publish(&here, "lazy/3", "3", QoS::AtLeastOnce, false).await;
    local.wait_for_log("Bridge lazy connected");
    assert_eq!(
        seen(&gather(&mut there_events, 3).await),
        pairs(&[("lazy/1", "1"), ("lazy/2", "2"), ("lazy/3", "3")])
    );
    local.wait_for_log("exceeded idle timeout");
}

/// Several addresses: the first does not answer, so the bridge moves on to the second; once
/// the first (primary) answers, a bridge that is not `round_robin` goes back to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_fails_over_to_the_next_address_and_returns_to_the_primary() {
    let primary_port = free_port();
    let backup_port = free_port();
    let _backup = Midge::start_with_config(&broker_conf(backup_port, ""));
    let local = Midge::start(&format!(
        "connection multi\naddress 127.0.0.1:{primary_port} 127.0.0.1:{backup_port}\n\
         restart_timeout 1\ntopic multi/# out 1\n"
    ));
    let line = local.wait_for_log("Bridge multi connected");
    assert!(line.contains(&format!(":{backup_port}")), "{line}");

    let _primary = Midge::start_with_config(&broker_conf(primary_port, ""));
    let (_there, mut there_events) = subscriber(primary_port, "there", &["multi/#"]).await;
    let (here, _) = client(local.port(), "multi-pub").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        publish(&here, "multi/x", "to the primary", QoS::AtLeastOnce, false).await;
        if let Ok(Some(Event::Publish(_))) = timeout(Duration::from_millis(500), there_events.recv()).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bridge did not come back to its primary address"
        );
    }
    local.wait_for_log("primary address");
}

/// What the bridge does not forward is counted: larger than `bridge_max_packet_size`. With
/// `bridge_outgoing_retain false` the remote copy is not retained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_dropped_and_counted_and_retain_can_be_cleared() {
    let port = free_port();
    let _remote = Midge::start_with_config(&broker_conf(port, ""));
    let local = bridged(
        "small",
        port,
        "topic small/# out 1\nbridge_max_packet_size 100\nbridge_outgoing_retain false\nsys_interval 1\n",
    );
    let (_there, mut there_events) = subscriber(port, "there", &["small/#"]).await;
    let (here, mut here_events) = subscriber(
        local.port(),
        "watcher",
        &["$SYS/broker/connection/small/messages/dropped"],
    )
    .await;
    publish(&here, "small/big", &"x".repeat(200), QoS::AtLeastOnce, false).await;
    publish(&here, "small/kept", "fits", QoS::AtLeastOnce, true).await;
    let got = gather(&mut there_events, 1).await;
    assert_eq!(
        seen(&got),
        pairs(&[("small/kept", "fits")]),
        "the large one never came"
    );
    let (_late, mut late_events) = subscriber(port, "late", &["small/#"]).await;
    assert_eq!(
        seen(&settle(&mut late_events).await),
        Vec::new(),
        "bridge_outgoing_retain false: nothing retained on the remote broker"
    );
    let deadline = Instant::now() + CROSS;
    loop {
        let p = expect(&mut here_events, "$SYS/broker/connection/small/messages/dropped").await;
        if &p.payload[..] == b"1" {
            break;
        }
        assert!(Instant::now() < deadline, "the drop was not counted");
    }
    local.wait_for_log("larger than bridge_max_packet_size");
}

/// `start_type once`: one attempt, never another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_once_bridge_tries_only_once() {
    let nobody = free_port();
    let local = Midge::start(&format!(
        "connection once\naddress 127.0.0.1:{nobody}\nstart_type once\nrestart_timeout 1\ntopic a/# out\n"
    ));
    local.wait_for_log("Bridge once: cannot connect");
    sleep(Duration::from_millis(2500)).await;
    let attempts = local
        .logs()
        .iter()
        .filter(|l| l.contains("Connecting bridge once"))
        .count();
    assert_eq!(attempts, 1);
}

/// Bridge settings that cannot work stop the start, naming the bridge and the problem.
#[test]
fn bridge_settings_that_cannot_work_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, expected) in [
        ("bridge_cafile /nonexistent/ca.pem\n", "bridge b (".to_owned()),
        ("bridge_identity me\nbridge_psk 0102\n", "TLS-PSK".to_owned()),
        ("bridge_require_ocsp true\n", "OCSP".to_owned()),
        (
            "local_clientid same\nconnection c\naddress h\ntopic #\nlocal_clientid same\n",
            "local_clientid \"same\"".to_owned(),
        ),
    ] {
        let config = dir.path().join("midge.conf");
        std::fs::write(
            &config,
            format!("listener 0 127.0.0.1\nuser root\nconnection b\naddress 127.0.0.1:1\ntopic #\n{extra}"),
        )
        .unwrap();
        let (code, output) = support::run_midge(&["-c", config.to_str().unwrap()], Duration::from_secs(10));
        assert_eq!(code, Some(1), "{extra}: {output}");
        assert!(output.contains(&expected), "{extra}: {output}");
    }
}

/// `persistence true` on the bridge's broker: messages queued for an unreachable remote broker
/// are in the store, and survive a kill -9 of the bridge's broker; once the remote broker is
/// there, they cross.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_queued_for_the_remote_broker_survive_a_restart_with_persistence() {
    let remote_port = free_port();
    let store = tempfile::tempdir().unwrap();
    let local_conf = format!(
        "listener 0 127.0.0.1\nallow_anonymous true\nuser root\npersistence true\n\
         persistence_location {}/\nconnection keep\naddress 127.0.0.1:{remote_port}\n\
         restart_timeout 1\ntopic keep/# out 1\n",
        store.path().display()
    );
    let local = Midge::start_with_config(&local_conf);
    let (here, _) = client(local.port(), "keep-pub").await;
    for n in 0..20 {
        publish(&here, "keep/n", &n.to_string(), QoS::AtLeastOnce, false).await;
    }
    drop(here);
    drop(local); // kill -9

    let _remote = Midge::start_with_config(&broker_conf(remote_port, ""));
    let (_there, mut there_events) = subscriber(remote_port, "there", &["keep/#"]).await;
    let local = Midge::start_with_config(&local_conf);
    local.wait_for_log("Bridge keep connected");
    let mut got = Vec::new();
    let deadline = Instant::now() + CROSS;
    while got.len() < 20 {
        let p = expect(&mut there_events, "keep/n").await;
        got.push(String::from_utf8_lossy(&p.payload).parse::<u32>().unwrap());
        assert!(Instant::now() < deadline);
    }
    assert_eq!(got, (0..20).collect::<Vec<u32>>(), "all of them, in order");
}

/// `local_username`: the bridge's session here is judged by the access rules under that user
/// name; what they refuse is not published here, and is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_rules_judge_the_bridge_by_its_local_username() {
    let port = free_port();
    let _remote = Midge::start_with_config(&broker_conf(port, ""));
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl");
    std::fs::write(
        &acl,
        "topic read #\ntopic read $SYS/#\nuser edge\ntopic readwrite allowed/#\n",
    )
    .unwrap();
    let local = bridged(
        "acl",
        port,
        &format!(
            "acl_file {}\nlocal_username edge\ntopic allowed/# in 1\ntopic denied/# in 1\n\
             bridge_protocol_version mqttv50\nsys_interval 1\n",
            acl.display()
        ),
    );
    let (_here, mut here_events) = subscriber(
        local.port(),
        "watcher",
        &[
            "allowed/#",
            "denied/#",
            "$SYS/broker/connection/acl/messages/dropped",
        ],
    )
    .await;
    let (there, _) = client(port, "there").await;
    wait_until_bridged(&there, "allowed/probe", &mut here_events, "allowed/probe").await;
    publish(&there, "denied/x", "no", QoS::AtLeastOnce, false).await;
    publish(&there, "allowed/x", "yes", QoS::AtLeastOnce, false).await;
    expect(&mut here_events, "allowed/x").await;
    let deadline = Instant::now() + CROSS;
    loop {
        match timeout(CROSS, here_events.recv()).await {
            Ok(Some(Event::Publish(p))) => {
                assert_ne!(p.topic.as_str(), "denied/x", "the access rules refused it");
                if p.topic.as_str().ends_with("/dropped") && &p.payload[..] == b"1" {
                    break;
                }
            }
            Ok(Some(_)) => {}
            _ => panic!("the refusal was not counted"),
        }
        assert!(Instant::now() < deadline, "the refusal was not counted");
    }
}
