//! Topic aliases from the broker to a subscriber (MQTT 5 §3.3.2.3.4) on the running broker:
//! sent only to a client that allows them and never above its Topic Alias Maximum, each alias
//! introduced with its topic name before it is used alone, and forgotten with the connection.
//! The subscriber is a raw client that resolves aliases exactly as §3.3.2.3.4 says and fails
//! on any alias it was never told.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

mod support;

use std::collections::HashMap;

use midge_codec::{Packet, ProtocolVersion, Publish, QoS, ReasonCode};
use support::packets::*;
use support::{Midge, RawClient};

const V5: ProtocolVersion = ProtocolVersion::V5;

/// A subscriber on `#` whose CONNECT allows `maximum` aliases (`None`: no property).
fn subscriber(midge: &Midge, id: &str, maximum: Option<u16>) -> RawClient {
    let connect = connect_with(V5, id, |c| c.properties.topic_alias_maximum = maximum);
    let (mut client, ack) = RawClient::connected(midge.addr(), connect);
    assert_eq!(ack.reason_code, ReasonCode::Success);
    assert_eq!(client.subscribe(&[("#", QoS::AtMostOnce)]), [ReasonCode::Success]);
    client
}

/// A client's side of §3.3.2.3.4: its alias map, and each PUBLISH's topic resolved with it.
#[derive(Default)]
struct Resolver {
    map: HashMap<u16, String>,
    /// (alias carried, whether the topic name came with it) for each PUBLISH.
    seen: Vec<(Option<u16>, bool)>,
}

impl Resolver {
    fn resolve(&mut self, publish: &Publish, maximum: u16) -> String {
        let alias = publish.properties.topic_alias.map(|a| a.get());
        let named = !publish.topic.is_empty();
        self.seen.push((alias, named));
        match alias {
            None => {
                assert!(named, "a PUBLISH with neither topic nor alias");
                publish.topic.to_string()
            }
            Some(alias) => {
                // [MQTT-3.1.2-26], [MQTT-3.3.2-11]
                assert!(alias >= 1 && alias <= maximum, "alias {alias} above {maximum}");
                if named {
                    self.map.insert(alias, publish.topic.to_string());
                }
                self.map
                    .get(&alias)
                    .cloned()
                    .unwrap_or_else(|| panic!("alias {alias} used before it was set"))
            }
        }
    }
}

/// Publishes each topic of `topics` in turn (payload: its index) and returns the topics the
/// subscriber resolves, in order.
fn round(
    midge: &Midge,
    sub: &mut RawClient,
    resolver: &mut Resolver,
    maximum: u16,
    topics: &[&str],
) -> Vec<String> {
    let mut publisher = RawClient::session(midge.addr(), V5, "publisher");
    for (i, topic) in topics.iter().enumerate() {
        publisher.send(&publish(topic, i.to_string(), QoS::AtMostOnce, 0));
    }
    topics
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let got = sub.recv_publish();
            assert_eq!(&got.payload[..], i.to_string().as_bytes(), "messages in order");
            resolver.resolve(&got, maximum)
        })
        .collect()
}

#[test]
fn mqtt_3_1_2_27_a_client_that_allows_no_aliases_gets_none() {
    let midge = Midge::start("");
    for maximum in [None, Some(0)] {
        let mut sub = subscriber(&midge, "sub", maximum);
        let topics = ["sensors/kitchen/temperature"; 3];
        let mut resolver = Resolver::default();
        let got = round(&midge, &mut sub, &mut resolver, 0, &topics);
        assert_eq!(got, topics);
        assert!(
            resolver
                .seen
                .iter()
                .all(|&(alias, named)| alias.is_none() && named),
            "{maximum:?}"
        );
    }
}

#[test]
fn mqtt_3_3_2_11_aliases_stay_within_the_clients_maximum_and_are_introduced_before_use() {
    let midge = Midge::start("");
    let mut sub = subscriber(&midge, "sub", Some(2));
    let (a, b, c) = (
        "sensors/kitchen/temperature",
        "sensors/hall/humidity",
        "sensors/attic/pressure",
    );
    // Two topics fill the table; the third is sent by name until it comes back, then takes the
    // alias of the least recently used one.
    let topics = [a, b, a, b, a, c, a, c, c, b, "s/x", a];
    let mut resolver = Resolver::default();
    let got = round(&midge, &mut sub, &mut resolver, 2, &topics);
    assert_eq!(got, topics, "every topic resolves to the one published");
    let with_name = |alias| (Some(alias), true);
    let alone = |alias| (Some(alias), false);
    assert_eq!(
        resolver.seen,
        [
            with_name(1), // a gets alias 1
            with_name(2), // b gets alias 2
            alone(1),     // a
            alone(2),     // b
            alone(1),     // a
            (None, true), // c: table full, sent by name
            alone(1),     // a
            with_name(2), // c again: takes b's alias (b is least recently used)
            alone(2),     // c
            (None, true), // b: by name now
            (None, true), // too short to alias
            alone(1),     // a still has its alias
        ]
    );
    // The saving: the second copy of a topic carries no topic name.
    assert!(resolver.seen.iter().filter(|(_, named)| !named).count() >= 6);
}

#[test]
fn mqtt_3_3_2_7_aliases_end_with_the_connection() {
    let midge = Midge::start("");
    let topic = "sensors/kitchen/temperature";
    let mut sub = subscriber(&midge, "sub", Some(5));
    let mut resolver = Resolver::default();
    round(&midge, &mut sub, &mut resolver, 5, &[topic, topic]);
    assert_eq!(resolver.seen, [(Some(1), true), (Some(1), false)]);
    sub.send(&Packet::Disconnect(midge_codec::Disconnect::new(
        ReasonCode::Success,
    )));
    sub.expect_close();

    // A new connection: the alias is introduced again, with the name.
    let mut sub = subscriber(&midge, "sub", Some(5));
    let mut resolver = Resolver::default();
    let got = round(&midge, &mut sub, &mut resolver, 5, &[topic, topic]);
    assert_eq!(got, [topic, topic]);
    assert_eq!(resolver.seen, [(Some(1), true), (Some(1), false)]);

    // The other way: an alias a client set on its last connection means nothing on this one.
    let aliased = |named: bool| {
        let mut packet = publish(topic, "x", QoS::AtMostOnce, 0);
        if let Packet::Publish(p) = &mut packet {
            p.properties.topic_alias = std::num::NonZeroU16::new(1);
            if !named {
                p.topic = midge_codec::TopicName::empty();
            }
        }
        packet
    };
    let mut publisher = RawClient::session(midge.addr(), V5, "aliasing");
    publisher.send(&aliased(true));
    publisher.send(&Packet::Disconnect(midge_codec::Disconnect::new(
        ReasonCode::Success,
    )));
    publisher.expect_close();
    let mut publisher = RawClient::session(midge.addr(), V5, "aliasing");
    publisher.send(&aliased(false));
    let closing = publisher.expect_close();
    assert!(
        matches!(&closing[..], [Packet::Disconnect(d)] if d.reason_code == ReasonCode::ProtocolError),
        "{closing:?}"
    );
}

/// A PUBLISH to `topic` (empty: by alias only) with Topic Alias `alias`.
fn aliased(topic: &str, alias: u16, payload: &'static str) -> Packet {
    let mut p = Publish::new(
        if topic.is_empty() {
            midge_codec::TopicName::empty()
        } else {
            midge_codec::TopicName::try_from(topic).unwrap()
        },
        payload,
    );
    p.properties.topic_alias = std::num::NonZeroU16::new(alias);
    Packet::Publish(p)
}

#[test]
fn mqtt_3_3_2_12_every_alias_from_1_to_the_maximum_is_accepted_and_none_above() {
    let midge = Midge::start("max_topic_alias 10");
    let mut watcher = subscriber(&midge, "watcher", None);
    let (mut client, ack) = RawClient::connected(midge.addr(), connect(V5, "aliaser"));
    assert_eq!(ack.properties.topic_alias_maximum, Some(10));
    // Set 1 and 10 with their topics, then use them alone.
    client.send(&aliased("low", 1, "set 1"));
    client.send(&aliased("high", 10, "set 10"));
    client.send(&aliased("", 1, "by 1"));
    client.send(&aliased("", 10, "by 10"));
    let got: Vec<(String, String)> = (0..4)
        .map(|_| {
            let p = watcher.recv_publish();
            (
                p.topic.to_string(),
                String::from_utf8(p.payload.to_vec()).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("low".into(), "set 1".into()),
            ("high".into(), "set 10".into()),
            ("low".into(), "by 1".into()),
            ("high".into(), "by 10".into()),
        ]
    );
    // 11 is above the maximum [MQTT-3.3.2-9]: DISCONNECT 0x94.
    client.send(&aliased("over", 11, "no"));
    let before = client.expect_close();
    assert!(
        matches!(&before[..], [Packet::Disconnect(d)] if d.reason_code == ReasonCode::TopicAliasInvalid),
        "{before:?}"
    );
}

#[test]
fn mqtt_3_2_2_18_max_topic_alias_0_refuses_every_alias() {
    let midge = Midge::start("max_topic_alias 0");
    let (mut client, ack) = RawClient::connected(midge.addr(), connect(V5, "no-aliases"));
    // Absent means 0: the client may send none [MQTT-3.2.2-18].
    assert_eq!(ack.properties.topic_alias_maximum, None);
    client.send(&aliased("t", 1, "no"));
    let before = client.expect_close();
    assert!(
        matches!(&before[..], [Packet::Disconnect(d)] if d.reason_code == ReasonCode::TopicAliasInvalid),
        "{before:?}"
    );
}
