//! How messages reach subscribers under MQTT 5's rules, on the running broker, packet by
//! packet: subscription options (No Local, Retain As Published), retained messages and wills,
//! Subscription Identifiers on separate copies, QoS exchanges and the packet identifiers they
//! free, refusing acknowledgements, shared subscriptions, message expiry, sessions kept while
//! connected, and packets behind a CONNECT. Each test names the normative statements it checks.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use midge_codec::{
    Ack, Packet, PayloadFormat, ProtocolVersion, Publish, QoS, ReasonCode, SubscriptionId,
    SubscriptionOptions, UserProperty,
};
use support::packets::*;
use support::{Midge, RawClient};

const V311: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;

/// Subscribes to one filter with these options (and an identifier, if any); asserts the grant.
fn subscribe_options(client: &mut RawClient, filter: &str, options: SubscriptionOptions, id: Option<u32>) {
    let Packet::Subscribe(mut s) = subscribe(&[(filter, options.qos)], 1) else {
        unreachable!()
    };
    s.subscriptions[0].options = options;
    s.properties.subscription_identifier = id.and_then(SubscriptionId::new);
    client.send(&Packet::Subscribe(s));
    match client.recv() {
        Packet::SubAck(ack) => assert!(!ack.reason_codes[0].is_error(), "{ack:?}"),
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

fn options(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        ..SubscriptionOptions::default()
    }
}

/// Everything the broker had to do for `client` is done once a PINGRESP comes back: the
/// packets before it are returned (a QoS 0 PUBLISH has no acknowledgement to wait for).
fn until_pingresp(client: &mut RawClient) -> Vec<Packet> {
    client.send(&Packet::PingReq);
    let mut before = Vec::new();
    loop {
        match client.recv() {
            Packet::PingResp => return before,
            other => before.push(other),
        }
    }
}

fn text(p: &Publish) -> String {
    String::from_utf8(p.payload.to_vec()).unwrap()
}

fn persistent(id: &str, expiry: u32) -> Packet {
    connect_with(V5, id, |c| {
        c.clean_start = false;
        c.properties.session_expiry_interval = Some(expiry);
    })
}

// ---------------------------------------------------------------------------------------------
// Subscription options

#[test]
fn mqtt_3_8_3_3_no_local_keeps_a_clients_own_messages_from_it() {
    let midge = Midge::start("");
    let mut own = RawClient::session(midge.addr(), V5, "own");
    let mut other = RawClient::session(midge.addr(), V5, "other");
    let no_local = SubscriptionOptions {
        no_local: true,
        ..options(QoS::AtMostOnce)
    };
    subscribe_options(&mut own, "nl/#", no_local, None);
    subscribe_options(&mut other, "nl/#", no_local, None);
    own.send(&publish("nl/a", "from own", QoS::AtMostOnce, 0));
    assert!(until_pingresp(&mut own).is_empty(), "[MQTT-3.8.3-3]");
    assert_eq!(text(&other.recv_publish()), "from own");
    // No Local is about the publisher, not the topic: the other client's message arrives.
    other.send(&publish("nl/a", "from other", QoS::AtMostOnce, 0));
    assert_eq!(text(&own.recv_publish()), "from other");
    assert!(until_pingresp(&mut other).is_empty());
}

#[test]
fn mqtt_3_3_1_12_and_3_3_1_13_retain_as_published_keeps_the_retain_flag() {
    let midge = Midge::start("");
    let mut as_published = RawClient::session(midge.addr(), V5, "rap");
    let mut plain = RawClient::session(midge.addr(), V5, "plain");
    let keep = SubscriptionOptions {
        retain_as_published: true,
        ..options(QoS::AtMostOnce)
    };
    subscribe_options(&mut as_published, "rap/#", keep, None);
    subscribe_options(&mut plain, "rap/#", options(QoS::AtMostOnce), None);
    let mut publisher = RawClient::session(midge.addr(), V5, "pub");
    publisher.send(&publish_retained("rap/x", "kept", QoS::AtMostOnce, 0));
    publisher.send(&publish("rap/x", "live", QoS::AtMostOnce, 0));
    let got: Vec<(String, bool)> = (0..2)
        .map(|_| as_published.recv_publish())
        .map(|p| (text(&p), p.retain))
        .collect();
    assert_eq!(
        got,
        [("kept".into(), true), ("live".into(), false)],
        "[MQTT-3.3.1-13]"
    );
    let got: Vec<(String, bool)> = (0..2)
        .map(|_| plain.recv_publish())
        .map(|p| (text(&p), p.retain))
        .collect();
    assert_eq!(
        got,
        [("kept".into(), false), ("live".into(), false)],
        "[MQTT-3.3.1-12]"
    );
}

#[test]
fn mqtt_3_8_4_3_and_3_8_4_4_a_repeated_subscription_replaces_the_first_and_loses_nothing() {
    let midge = Midge::start("");
    // One message at a time, so that one waits in flight and one in the queue.
    let (mut sub, _) = RawClient::connected(
        midge.addr(),
        connect_with(V5, "again", |c| {
            c.properties.receive_maximum = std::num::NonZeroU16::new(1)
        }),
    );
    assert_eq!(
        sub.subscribe(&[("rq/x", QoS::AtLeastOnce)]),
        [ReasonCode::GrantedQos1]
    );
    let mut publisher = RawClient::session(midge.addr(), V5, "pub");
    publisher.send(&publish_retained("rq/x", "in flight", QoS::AtLeastOnce, 1));
    publisher.send(&publish("rq/x", "queued", QoS::AtLeastOnce, 2));
    until_pingresp(&mut publisher);
    let in_flight = sub.recv_publish();
    assert_eq!(
        sub.subscribe(&[("rq/x", QoS::ExactlyOnce)]),
        [ReasonCode::GrantedQos2]
    );
    // Retained messages are sent again [MQTT-3.8.4-4] (after the queued one: the window is
    // full until the first is acknowledged).
    sub.send(&puback(in_flight.packet_id.unwrap()));
    let mut got = Vec::new();
    for _ in 0..2 {
        let p = sub.recv_publish();
        got.push((text(&p), p.retain));
        if p.qos == QoS::AtLeastOnce {
            sub.send(&puback(p.packet_id.unwrap()));
        } else {
            sub.send(&pubrec(p.packet_id.unwrap()));
            assert!(matches!(sub.recv(), Packet::PubRel(_)));
            sub.send(&pubcomp(p.packet_id.unwrap()));
        }
    }
    got.sort();
    assert_eq!(
        got,
        [("in flight".into(), true), ("queued".into(), false)],
        "nothing lost by the replacement [MQTT-3.8.4-4]"
    );
    // One subscription, with the new QoS [MQTT-3.8.4-3]: one copy, at QoS 2.
    publisher.send(&publish("rq/x", "two", QoS::ExactlyOnce, 3));
    let p = sub.recv_publish();
    assert_eq!((text(&p).as_str(), p.qos), ("two", QoS::ExactlyOnce));
    sub.send(&pubrec(p.packet_id.unwrap()));
    assert!(matches!(sub.recv(), Packet::PubRel(_)));
    sub.send(&pubcomp(p.packet_id.unwrap()));
    assert!(until_pingresp(&mut sub).is_empty());
}

#[test]
fn mqtt_3_8_4_2_and_3_10_4_5_acknowledgements_carry_the_requests_packet_identifier() {
    let midge = Midge::start("");
    let mut client = RawClient::session(midge.addr(), V5, "ids");
    client.send(&subscribe(&[("a/b", QoS::AtLeastOnce)], 4242));
    match client.recv() {
        Packet::SubAck(ack) => assert_eq!(ack.packet_id.get(), 4242, "[MQTT-3.8.4-2]"),
        other => panic!("{other:?}"),
    }
    // An UNSUBSCRIBE that deletes nothing at all is still answered, with its identifier.
    client.send(&unsubscribe(&["never", "nor/this"], 777));
    match client.recv() {
        Packet::UnsubAck(ack) => {
            assert_eq!(ack.packet_id.get(), 777, "[MQTT-3.10.4-5]");
            assert_eq!(
                ack.reason_codes,
                [
                    ReasonCode::NoSubscriptionExisted,
                    ReasonCode::NoSubscriptionExisted
                ]
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn mqtt_3_10_4_3_a_delivery_begun_before_unsubscribe_is_completed() {
    let midge = Midge::start("");
    let mut sub = RawClient::session(midge.addr(), V5, "leaving");
    sub.subscribe(&[("u/#", QoS::ExactlyOnce)]);
    let mut publisher = RawClient::session(midge.addr(), V5, "pub");
    publisher.send(&publish("u/x", "begun", QoS::ExactlyOnce, 1));
    assert!(matches!(publisher.recv(), Packet::PubRec(_)));
    publisher.send(&pubrel(pid(1)));
    assert!(matches!(publisher.recv(), Packet::PubComp(_)));
    let p = sub.recv_publish();
    sub.send(&unsubscribe(&["u/#"], 2));
    assert!(matches!(sub.recv(), Packet::UnsubAck(_)));
    // The QoS 2 exchange goes on to its end.
    sub.send(&pubrec(p.packet_id.unwrap()));
    match sub.recv() {
        Packet::PubRel(rel) => assert_eq!(rel.reason_code, ReasonCode::Success, "[MQTT-3.10.4-3]"),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    sub.send(&pubcomp(p.packet_id.unwrap()));
    // And nothing new comes.
    publisher.send(&publish("u/x", "after", QoS::AtMostOnce, 0));
    assert!(until_pingresp(&mut publisher).is_empty());
    assert!(until_pingresp(&mut sub).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Retained messages and wills

#[test]
fn mqtt_3_3_1_6_and_3_3_1_8_retained_messages_change_only_with_retain_1() {
    let midge = Midge::start("");
    let mut current = RawClient::session(midge.addr(), V5, "current");
    current.subscribe(&[("r/#", QoS::AtMostOnce)]);
    let mut publisher = RawClient::session(midge.addr(), V5, "pub");
    publisher.send(&publish_retained("r/x", "kept", QoS::AtMostOnce, 0));
    // RETAIN 0: delivered, not stored, and the retained message stays [MQTT-3.3.1-8].
    publisher.send(&publish("r/x", "live", QoS::AtMostOnce, 0));
    publisher.send(&publish("r/y", "never retained", QoS::AtMostOnce, 0));
    until_pingresp(&mut publisher);
    let mut late = RawClient::session(midge.addr(), V5, "late");
    late.subscribe(&[("r/#", QoS::AtMostOnce)]);
    let p = late.recv_publish();
    assert_eq!((&p.topic[..], text(&p).as_str(), p.retain), ("r/x", "kept", true));
    assert!(until_pingresp(&mut late).is_empty(), "[MQTT-3.3.1-8]");
    // An empty retained message reaches current subscribers as usual, then nothing is
    // retained [MQTT-3.3.1-6].
    publisher.send(&publish_retained("r/x", Bytes::new(), QoS::AtMostOnce, 0));
    let got: Vec<String> = (0..4).map(|_| text(&current.recv_publish())).collect();
    assert_eq!(got, ["kept", "live", "never retained", ""]);
    until_pingresp(&mut publisher);
    let mut later = RawClient::session(midge.addr(), V5, "later");
    later.subscribe(&[("r/#", QoS::AtMostOnce)]);
    assert!(until_pingresp(&mut later).is_empty());
}

#[test]
fn mqtt_3_1_2_14_and_3_1_3_10_a_will_without_retain_is_not_retained_and_keeps_its_user_properties() {
    let midge = Midge::start("");
    let mut watcher = RawClient::session(midge.addr(), V5, "watcher");
    watcher.subscribe(&[("will/#", QoS::AtMostOnce)]);
    let order = vec![
        UserProperty::new("b", "1"),
        UserProperty::new("a", "2"),
        UserProperty::new("b", "3"),
    ];
    let (mut dying, _) = RawClient::connected(
        midge.addr(),
        connect_with(V5, "dying", |c| {
            let mut w = will("will/dying", "gone", QoS::AtMostOnce, false);
            w.properties.user_properties = order.clone();
            c.will = Some(w);
        }),
    );
    dying.shutdown();
    let p = watcher.recv_publish();
    assert_eq!(text(&p), "gone");
    assert_eq!(p.properties.user_properties, order, "[MQTT-3.1.3-10]");
    let mut late = RawClient::session(midge.addr(), V5, "late");
    late.subscribe(&[("will/#", QoS::AtMostOnce)]);
    assert!(until_pingresp(&mut late).is_empty(), "[MQTT-3.1.2-14]");
}

#[test]
fn mqtt_3_1_2_8_a_session_that_ends_before_the_will_delay_publishes_the_will_then() {
    let midge = Midge::start("");
    let mut watcher = RawClient::session(midge.addr(), V5, "watcher");
    watcher.subscribe(&[("will/#", QoS::AtMostOnce)]);
    let (mut short, _) = RawClient::connected(
        midge.addr(),
        connect_with(V5, "short", |c| {
            c.properties.session_expiry_interval = Some(1);
            let mut w = will("will/short", "session over", QoS::AtMostOnce, false);
            w.properties.will_delay_interval = Some(30);
            c.will = Some(w);
        }),
    );
    let dropped = Instant::now();
    short.shutdown();
    assert_eq!(text(&watcher.recv_publish()), "session over");
    let waited = dropped.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "at the session's end, not the will delay's: {waited:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// What is forwarded

#[test]
fn mqtt_3_3_1_3_a_forwarded_copy_is_sent_with_dup_0() {
    let midge = Midge::start("");
    let mut sub = RawClient::session(midge.addr(), V5, "sub");
    sub.subscribe(&[("d/#", QoS::AtLeastOnce)]);
    let mut publisher = RawClient::session(midge.addr(), V5, "pub");
    let Packet::Publish(mut p) = publish("d/x", "again?", QoS::AtLeastOnce, 1) else {
        unreachable!()
    };
    p.dup = true;
    publisher.send(&Packet::Publish(p));
    assert!(matches!(publisher.recv(), Packet::PubAck(_)));
    let got = sub.recv_publish();
    assert!(!got.dup, "[MQTT-3.3.1-3]: this send is not a retransmission");
}

#[test]
fn mqtt_3_3_4_5_a_shared_and_a_plain_subscription_each_send_their_own_identifier() {
    let midge = Midge::start("");
    let mut sub = RawClient::session(midge.addr(), V5, "both");
    subscribe_options(&mut sub, "s/x", options(QoS::AtMostOnce), Some(1));
    subscribe_options(&mut sub, "$share/g/s/x", options(QoS::AtMostOnce), Some(2));
    let mut publisher = RawClient::session(midge.addr(), V5, "pub");
    publisher.send(&publish("s/x", "twice", QoS::AtMostOnce, 0));
    let mut ids: Vec<Vec<u32>> = (0..2)
        .map(|_| {
            let p = sub.recv_publish();
            p.properties
                .subscription_identifiers
                .iter()
                .map(|i| i.get())
                .collect()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, [vec![1], vec![2]], "[MQTT-3.3.4-5]");
}

#[test]
fn mqtt_3_3_4_10_and_4_9_0_3_at_the_clients_receive_maximum_other_packets_still_flow() {
    let midge = Midge::start("");
    let (mut sub, _) = RawClient::connected(
        midge.addr(),
        connect_with(V5, "one-at-a-time", |c| {
            c.properties.receive_maximum = std::num::NonZeroU16::new(1)
        }),
    );
    sub.subscribe(&[("rm/#", QoS::AtLeastOnce)]);
    let mut publisher = RawClient::session(midge.addr(), V5, "pub");
    publisher.send(&publish("rm/x", "first", QoS::AtLeastOnce, 1));
    publisher.send(&publish("rm/x", "second", QoS::AtLeastOnce, 2));
    until_pingresp(&mut publisher);
    let first = sub.recv_publish();
    assert_eq!(text(&first), "first");
    // Send quota 0: no PUBLISH, but every other packet is answered at once.
    sub.send(&Packet::PingReq);
    assert!(matches!(sub.recv(), Packet::PingResp), "[MQTT-3.3.4-10]");
    sub.send(&subscribe(&[("more/#", QoS::AtMostOnce)], 5));
    assert!(matches!(sub.recv(), Packet::SubAck(_)), "[MQTT-4.9.0-3]");
    sub.send(&unsubscribe(&["more/#"], 6));
    assert!(matches!(sub.recv(), Packet::UnsubAck(_)));
    sub.send(&publish("elsewhere", "mine", QoS::AtLeastOnce, 7));
    assert!(matches!(sub.recv(), Packet::PubAck(_)));
    sub.send(&puback(first.packet_id.unwrap()));
    assert_eq!(text(&sub.recv_publish()), "second");
}

// ---------------------------------------------------------------------------------------------
// QoS exchanges

#[test]
fn mqtt_4_3_2_5_4_3_3_9_and_4_3_3_12_a_finished_exchange_frees_its_packet_identifier() {
    let midge = Midge::start("");
    let mut sub = RawClient::session(midge.addr(), V5, "sub");
    sub.subscribe(&[("ids/#", QoS::AtMostOnce)]);
    let mut publisher = RawClient::session(midge.addr(), V5, "pub");
    let reason = |packet: Packet| match packet {
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubComp(a) => a.reason_code,
        other => panic!("{other:?}"),
    };
    // QoS 1: after PUBACK, identifier 5 is a new message [MQTT-4.3.2-5].
    for payload in ["one", "two"] {
        publisher.send(&publish("ids/x", payload, QoS::AtLeastOnce, 5));
        assert_eq!(reason(publisher.recv()), ReasonCode::Success);
    }
    // QoS 2: after PUBCOMP, identifier 6 is a new message [MQTT-4.3.3-12].
    for payload in ["three", "four"] {
        publisher.send(&publish("ids/x", payload, QoS::ExactlyOnce, 6));
        assert_eq!(reason(publisher.recv()), ReasonCode::Success);
        publisher.send(&pubrel(pid(6)));
        assert_eq!(reason(publisher.recv()), ReasonCode::Success);
    }
    // QoS 2 refused with PUBREC 0x99: identifier 9 is free at once [MQTT-4.3.3-9].
    let Packet::Publish(mut bad) = publish("ids/x", vec![0xFF], QoS::ExactlyOnce, 9) else {
        unreachable!()
    };
    bad.properties.payload_format_indicator = Some(PayloadFormat::Utf8);
    publisher.send(&Packet::Publish(bad));
    assert_eq!(reason(publisher.recv()), ReasonCode::PayloadFormatInvalid);
    publisher.send(&publish("ids/x", "five", QoS::ExactlyOnce, 9));
    assert_eq!(
        reason(publisher.recv()),
        ReasonCode::Success,
        "not taken for a repeat"
    );
    publisher.send(&pubrel(pid(9)));
    assert_eq!(reason(publisher.recv()), ReasonCode::Success);
    let got: Vec<String> = (0..5).map(|_| text(&sub.recv_publish())).collect();
    assert_eq!(got, ["one", "two", "three", "four", "five"]);
}

#[test]
fn mqtt_4_4_0_2_a_refusing_puback_or_pubrec_ends_the_delivery() {
    let midge = Midge::start("");
    let (mut sub, _) = RawClient::connected(midge.addr(), persistent("refuser", 3600));
    sub.subscribe(&[("no/#", QoS::ExactlyOnce)]);
    let mut publisher = RawClient::session(midge.addr(), V5, "pub");
    publisher.send(&publish("no/1", "refused at QoS 1", QoS::AtLeastOnce, 1));
    publisher.send(&publish("no/2", "refused at QoS 2", QoS::ExactlyOnce, 2));
    let refuse = |p: &Publish| {
        let mut ack = Ack::new(p.packet_id.unwrap());
        ack.reason_code = ReasonCode::UnspecifiedError;
        ack
    };
    let first = sub.recv_publish();
    sub.send(&Packet::PubAck(refuse(&first)));
    let second = sub.recv_publish();
    sub.send(&Packet::PubRec(refuse(&second)));
    // No PUBREL after a refusing PUBREC, and nothing sent again, now or after a reconnect.
    assert!(until_pingresp(&mut sub).is_empty(), "[MQTT-4.4.0-2]");
    sub.shutdown();
    midge.wait_for_log("Client refuser closed its connection");
    let (mut back, ack) = RawClient::connected(midge.addr(), persistent("refuser", 3600));
    assert!(ack.session_present);
    assert!(until_pingresp(&mut back).is_empty(), "[MQTT-4.4.0-2]");
    // The session goes on.
    publisher.send(&publish("no/3", "accepted", QoS::AtMostOnce, 0));
    assert_eq!(text(&back.recv_publish()), "accepted");
}

// ---------------------------------------------------------------------------------------------
// Shared subscriptions

/// The member of `members` the next PUBLISH went to, and the PUBLISH.
fn chosen(members: &mut [&mut RawClient]) -> (usize, Publish) {
    let deadline = Instant::now() + support::WAIT;
    while Instant::now() < deadline {
        for (i, member) in members.iter_mut().enumerate() {
            if let Ok(Some(packet)) = member.recv_timeout(Duration::from_millis(50)) {
                match packet {
                    Packet::Publish(p) => return (i, p),
                    other => panic!("member {i} got {other:?}"),
                }
            }
        }
    }
    panic!("no member got the message")
}

#[test]
fn mqtt_4_8_2_3_a_shared_message_goes_at_the_chosen_members_granted_qos() {
    let midge = Midge::start("");
    let mut low = RawClient::session(midge.addr(), V5, "low");
    let mut high = RawClient::session(midge.addr(), V5, "high");
    low.subscribe(&[("$share/g/q/#", QoS::AtMostOnce)]);
    high.subscribe(&[("$share/g/q/#", QoS::AtLeastOnce)]);
    let mut publisher = RawClient::session(midge.addr(), V5, "pub");
    let mut seen = [0, 0];
    for n in 1..=4u16 {
        publisher.send(&publish("q/x", format!("{n}"), QoS::ExactlyOnce, n));
        assert!(matches!(publisher.recv(), Packet::PubRec(_)));
        publisher.send(&pubrel(pid(n)));
        assert!(matches!(publisher.recv(), Packet::PubComp(_)));
        let (who, p) = chosen(&mut [&mut low, &mut high]);
        seen[who] += 1;
        let granted = [QoS::AtMostOnce, QoS::AtLeastOnce][who];
        assert_eq!(p.qos, granted, "[MQTT-4.8.2-3] member {who}");
        if let Some(id) = p.packet_id {
            high.send(&puback(id));
        }
    }
    assert!(seen[0] > 0 && seen[1] > 0, "both members chosen: {seen:?}");
}

#[test]
fn mqtt_4_8_2_6_a_member_that_refuses_a_message_does_not_pass_it_on() {
    let midge = Midge::start("");
    let mut a = RawClient::session(midge.addr(), V5, "a");
    let mut b = RawClient::session(midge.addr(), V5, "b");
    a.subscribe(&[("$share/g/r/#", QoS::AtLeastOnce)]);
    b.subscribe(&[("$share/g/r/#", QoS::AtLeastOnce)]);
    let mut publisher = RawClient::session(midge.addr(), V5, "pub");
    publisher.send(&publish("r/x", "unwanted", QoS::AtLeastOnce, 1));
    let (who, p) = chosen(&mut [&mut a, &mut b]);
    let mut ack = Ack::new(p.packet_id.unwrap());
    ack.reason_code = ReasonCode::ImplementationSpecificError;
    let (refuser, other) = if who == 0 {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    refuser.send(&Packet::PubAck(ack));
    assert!(until_pingresp(refuser).is_empty());
    assert!(
        until_pingresp(other).is_empty(),
        "[MQTT-4.8.2-6]: not offered to another member"
    );
}

#[test]
fn mqtt_4_8_2_4_and_4_8_2_5_a_qos_2_message_stays_with_its_member() {
    let midge = Midge::start("");
    // Both members keep their sessions an hour: whichever gets the message keeps it.
    let (mut a, _) = RawClient::connected(midge.addr(), persistent("a", 3600));
    let (mut b, _) = RawClient::connected(midge.addr(), persistent("b", 3600));
    a.subscribe(&[("$share/g/t/#", QoS::ExactlyOnce)]);
    b.subscribe(&[("$share/g/t/#", QoS::ExactlyOnce)]);
    let mut publisher = RawClient::session(midge.addr(), V5, "pub");
    publisher.send(&publish("t/x", "for one", QoS::ExactlyOnce, 1));
    let (who, p) = chosen(&mut [&mut a, &mut b]);
    let (gone, stays, name) = if who == 0 {
        (&mut a, &mut b, "a")
    } else {
        (&mut b, &mut a, "b")
    };
    // The chosen member's connection breaks before it answered.
    gone.shutdown();
    midge.wait_for_log(&format!("Client {name} closed its connection"));
    assert!(until_pingresp(stays).is_empty(), "not given to the other member");
    // It reconnects: the delivery is completed to it [MQTT-4.8.2-4].
    let (mut back, ack) = RawClient::connected(midge.addr(), persistent(name, 3600));
    assert!(ack.session_present);
    let again = back.recv_publish();
    assert!(again.dup && again.packet_id == p.packet_id && text(&again) == "for one");
    back.send(&pubrec(p.packet_id.unwrap()));
    assert!(matches!(back.recv(), Packet::PubRel(_)));
    back.send(&pubcomp(p.packet_id.unwrap()));

    // A member whose session ends before it comes back: the message goes to no one else
    // [MQTT-4.8.2-5].
    let (mut brief, _) = RawClient::connected(midge.addr(), persistent("brief", 1));
    brief.subscribe(&[("$share/h/t/#", QoS::ExactlyOnce)]);
    let (mut other, _) = RawClient::connected(midge.addr(), persistent("other", 3600));
    other.subscribe(&[("$share/h/t/#", QoS::ExactlyOnce)]);
    let mut sent = 0;
    // Publish until "brief" gets one (round robin: at most two), then drop it.
    loop {
        sent += 1;
        publisher.send(&publish("t/y", format!("{sent}"), QoS::ExactlyOnce, 10 + sent));
        let (who, p) = chosen(&mut [&mut brief, &mut other]);
        if who == 0 {
            break;
        }
        other.send(&pubrec(p.packet_id.unwrap()));
        assert!(matches!(other.recv(), Packet::PubRel(_)));
        other.send(&pubcomp(p.packet_id.unwrap()));
        assert!(sent < 3, "round robin never chose brief");
    }
    brief.shutdown();
    midge.wait_for_log("Client brief closed its connection");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(until_pingresp(&mut other).is_empty(), "[MQTT-4.8.2-5]");
    let (_brief, ack) = RawClient::connected(midge.addr(), persistent("brief", 1));
    assert!(!ack.session_present, "the session did end");
}

// ---------------------------------------------------------------------------------------------
// Message expiry and sessions

fn expiring(topic: &str, payload: &'static str, qos: QoS, id: u16, seconds: u32, retain: bool) -> Packet {
    let Packet::Publish(mut p) = publish(topic, payload, qos, id) else {
        unreachable!()
    };
    p.retain = retain;
    p.properties.message_expiry_interval = Some(seconds);
    Packet::Publish(p)
}

#[test]
fn mqtt_4_3_3_7_and_4_3_3_13_a_sent_message_does_not_expire() {
    let midge = Midge::start("");
    let (mut sub, _) = RawClient::connected(midge.addr(), persistent("slow", 3600));
    sub.subscribe(&[("x/#", QoS::ExactlyOnce)]);
    let mut publisher = RawClient::session(midge.addr(), V5, "pub");
    publisher.send(&expiring("x/2", "qos 2", QoS::ExactlyOnce, 1, 1, false));
    publisher.send(&expiring("x/1", "qos 1", QoS::AtLeastOnce, 2, 1, false));
    let two = sub.recv_publish();
    let one = sub.recv_publish();
    assert_eq!(two.properties.message_expiry_interval, Some(1));
    std::thread::sleep(Duration::from_millis(1500));
    // Past its expiry, the QoS 2 exchange still runs to its end [MQTT-4.3.3-13].
    sub.send(&pubrec(two.packet_id.unwrap()));
    match sub.recv() {
        Packet::PubRel(rel) => assert_eq!(rel.reason_code, ReasonCode::Success),
        other => panic!("{other:?}"),
    }
    sub.send(&pubcomp(two.packet_id.unwrap()));
    // The unacknowledged QoS 1 message is sent again on the resumed session, expired or not
    // [MQTT-4.3.3-7] (the same rule for QoS 1 in Midge).
    sub.shutdown();
    midge.wait_for_log("Client slow closed its connection");
    let (mut back, _) = RawClient::connected(midge.addr(), persistent("slow", 3600));
    let again = back.recv_publish();
    assert!(again.dup && again.packet_id == one.packet_id, "{again:?}");
}

#[test]
fn queued_and_retained_messages_expire_and_the_time_left_is_sent_on() {
    let midge = Midge::start("");
    let (mut away, _) = RawClient::connected(midge.addr(), persistent("away", 3600));
    away.subscribe(&[("e/#", QoS::AtLeastOnce)]);
    away.shutdown();
    midge.wait_for_log("Client away closed its connection");
    let mut publisher = RawClient::session(midge.addr(), V5, "pub");
    publisher.send(&expiring("e/short", "short", QoS::AtLeastOnce, 1, 1, true));
    publisher.send(&expiring("e/long", "long", QoS::AtLeastOnce, 2, 60, false));
    until_pingresp(&mut publisher);
    std::thread::sleep(Duration::from_millis(1500));
    // Queued: the expired one is gone [MQTT-3.3.2-5]; the other says what is left
    // [MQTT-3.3.2-6].
    let (mut back, _) = RawClient::connected(midge.addr(), persistent("away", 3600));
    let p = back.recv_publish();
    assert_eq!(text(&p), "long");
    let left = p.properties.message_expiry_interval.unwrap();
    assert!((55..60).contains(&left), "{left}");
    back.send(&puback(p.packet_id.unwrap()));
    assert!(until_pingresp(&mut back).is_empty());
    // Retained: expired too.
    let mut late = RawClient::session(midge.addr(), V5, "late");
    late.subscribe(&[("e/#", QoS::AtMostOnce)]);
    assert!(
        until_pingresp(&mut late).is_empty(),
        "the retained message expired"
    );
}

#[test]
fn mqtt_4_1_0_1_a_session_is_kept_while_its_connection_lasts() {
    let midge = Midge::start("");
    let (mut client, _) = RawClient::connected(midge.addr(), persistent("lasting", 1));
    client.subscribe(&[("k/#", QoS::AtMostOnce)]);
    // Connected for longer than its Session Expiry Interval: the session is still there.
    std::thread::sleep(Duration::from_millis(1500));
    let mut publisher = RawClient::session(midge.addr(), V5, "pub");
    publisher.send(&publish("k/x", "still subscribed", QoS::AtMostOnce, 0));
    assert_eq!(text(&client.recv_publish()), "still subscribed");
    client.send(&Packet::Disconnect(midge_codec::Disconnect::new(
        ReasonCode::Success,
    )));
    client.expect_close();
    let (_again, ack) = RawClient::connected(midge.addr(), persistent("lasting", 1));
    assert!(ack.session_present, "the interval counts from the disconnect");
}

#[test]
fn mqtt_3_1_2_25_qos_1_and_2_messages_too_large_for_the_client_are_dropped_as_if_sent() {
    let midge = Midge::start("");
    let small = |id| {
        connect_with(V5, id, |c| {
            c.clean_start = false;
            c.properties.session_expiry_interval = Some(3600);
            c.properties.maximum_packet_size = std::num::NonZeroU32::new(64);
        })
    };
    let (mut sub, _) = RawClient::connected(midge.addr(), small("small"));
    sub.subscribe(&[("big/#", QoS::ExactlyOnce)]);
    let mut publisher = RawClient::session(midge.addr(), V5, "pub");
    publisher.send(&publish("big/x", vec![b'x'; 100], QoS::AtLeastOnce, 1));
    publisher.send(&publish("big/x", vec![b'x'; 100], QoS::ExactlyOnce, 2));
    publisher.send(&publish("big/x", "fits", QoS::AtLeastOnce, 3));
    let p = sub.recv_publish();
    assert_eq!(text(&p), "fits");
    sub.send(&puback(p.packet_id.unwrap()));
    assert!(until_pingresp(&mut sub).is_empty());
    // Not in flight either: nothing is sent again on the resumed session.
    sub.shutdown();
    midge.wait_for_log("Client small closed its connection");
    let (mut back, _) = RawClient::connected(midge.addr(), small("small"));
    assert!(until_pingresp(&mut back).is_empty());
}

// ---------------------------------------------------------------------------------------------
// CONNECT and what follows it

fn encoded(packets: &[Packet], version: ProtocolVersion) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    for p in packets {
        p.encode(version, &mut buf).unwrap();
    }
    buf.to_vec()
}

#[test]
fn mqtt_3_2_0_1_packets_right_behind_connect_are_answered_after_connack() {
    let midge = Midge::start("");
    for version in [V311, V5] {
        let mut client = RawClient::connect(midge.addr(), version);
        client.send_bytes(&encoded(
            &[
                connect(version, "eager"),
                subscribe(&[("p/#", QoS::AtMostOnce)], 1),
                publish("p/x", "mine", QoS::AtMostOnce, 0),
                Packet::PingReq,
            ],
            version,
        ));
        let order: Vec<&str> = (0..4)
            .map(|_| match client.recv() {
                Packet::ConnAck(_) => "CONNACK",
                Packet::SubAck(_) => "SUBACK",
                Packet::Publish(_) => "PUBLISH",
                Packet::PingResp => "PINGRESP",
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(order, ["CONNACK", "SUBACK", "PUBLISH", "PINGRESP"], "{version:?}");
    }
}

#[test]
fn mqtt_3_1_4_6_nothing_behind_a_refused_connect_is_processed() {
    let midge = Midge::start("allow_zero_length_clientid false");
    let mut refused = RawClient::connect(midge.addr(), V5);
    refused.send_bytes(&encoded(
        &[
            connect(V5, ""),
            publish_retained("behind/refusal", "should not exist", QoS::AtMostOnce, 0),
        ],
        V5,
    ));
    let got = refused.expect_close();
    assert!(
        matches!(&got[..], [Packet::ConnAck(a)] if a.reason_code == ReasonCode::ClientIdentifierNotValid),
        "{got:?}"
    );
    let mut look = RawClient::session(midge.addr(), V5, "look");
    look.subscribe(&[("behind/#", QoS::AtMostOnce)]);
    assert!(until_pingresp(&mut look).is_empty(), "[MQTT-3.1.4-6]");
}

#[test]
fn mqtt_3_1_3_6_and_3_2_2_16_assigned_client_identifiers_are_unique() {
    let midge = Midge::start("");
    let (mut first, a) = RawClient::connected(midge.addr(), connect(V5, ""));
    let (mut second, b) = RawClient::connected(midge.addr(), connect(V5, ""));
    let (a, b) = (
        a.properties.assigned_client_identifier.clone().unwrap(),
        b.properties.assigned_client_identifier.clone().unwrap(),
    );
    assert_ne!(a, b);
    // Both are served: the second did not take the first's session over.
    assert!(until_pingresp(&mut first).is_empty());
    assert!(until_pingresp(&mut second).is_empty());
}

/// §3.14.2.2.2: a DISCONNECT may change the Session Expiry Interval, unless CONNECT set 0
/// (then a non-zero value is a Protocol Error, which publishes the will).
#[test]
fn the_session_expiry_interval_set_at_disconnect_is_the_one_that_counts() {
    let midge = Midge::start("");
    let disconnect_with = |seconds: u32| {
        let mut d = midge_codec::Disconnect::new(ReasonCode::Success);
        d.properties.session_expiry_interval = Some(seconds);
        Packet::Disconnect(d)
    };
    // An hour at CONNECT, 0 at DISCONNECT: the session ends with the connection.
    let (mut client, _) = RawClient::connected(midge.addr(), persistent("shortened", 3600));
    client.send(&disconnect_with(0));
    assert!(client.expect_close().is_empty());
    let (_c, ack) = RawClient::connected(midge.addr(), persistent("shortened", 3600));
    assert!(!ack.session_present);
    // A second at CONNECT, an hour at DISCONNECT: still there after two seconds.
    let (mut client, _) = RawClient::connected(midge.addr(), persistent("lengthened", 1));
    client.send(&disconnect_with(3600));
    assert!(client.expect_close().is_empty());
    std::thread::sleep(Duration::from_millis(2000));
    let (_c, ack) = RawClient::connected(midge.addr(), persistent("lengthened", 1));
    assert!(ack.session_present);
    // 0 at CONNECT, then non-zero: a Protocol Error; the will goes out as after any error.
    let mut watcher = RawClient::session(midge.addr(), V5, "watcher");
    watcher.subscribe(&[("will/#", QoS::AtMostOnce)]);
    let (mut client, _) = RawClient::connected(
        midge.addr(),
        connect_with(V5, "zero", |c| {
            c.will = Some(will("will/zero", "protocol error", QoS::AtMostOnce, false))
        }),
    );
    client.send(&disconnect_with(60));
    let got = client.expect_close();
    assert!(
        matches!(&got[..], [Packet::Disconnect(d)] if d.reason_code == ReasonCode::ProtocolError),
        "{got:?}"
    );
    assert_eq!(text(&watcher.recv_publish()), "protocol error");
}

/// [MQTT-3.3.2-4], [MQTT-3.3.2-15], [MQTT-3.3.2-16], [MQTT-3.3.2-17], [MQTT-3.3.2-18],
/// [MQTT-3.3.2-20]: the Payload Format Indicator, Response Topic, Correlation Data, User
/// Properties (in order, a name repeated) and Content Type reach the subscriber as sent, at
/// every QoS.
#[test]
fn mqtt_3_3_2_15_to_3_3_2_20_publish_properties_are_forwarded_unaltered() {
    let midge = Midge::start("");
    let mut sub = RawClient::session(midge.addr(), V5, "sub");
    sub.subscribe(&[("req/#", QoS::ExactlyOnce)]);
    let mut publisher = RawClient::session(midge.addr(), V5, "pub");
    let users = vec![
        UserProperty::new("site", "lab"),
        UserProperty::new("rack", "7"),
        UserProperty::new("site", "roof"),
    ];
    for (n, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        let Packet::Publish(mut p) = publish("req/time", "now?", qos, 1) else {
            unreachable!()
        };
        p.properties.payload_format_indicator = Some(PayloadFormat::Utf8);
        p.properties.response_topic = Some(midge_codec::TopicName::try_from("replies/pub").unwrap());
        p.properties.correlation_data = Some(Bytes::from(vec![0, 0xFF, n as u8]));
        p.properties.user_properties = users.clone();
        p.properties.content_type = Some("text/plain; charset=utf-8".into());
        publisher.send(&Packet::Publish(p.clone()));
        let got = sub.recv_publish();
        assert_eq!(text(&got), "now?");
        let (sent, got) = (&p.properties, &got.properties);
        assert_eq!(
            got.payload_format_indicator, sent.payload_format_indicator,
            "[MQTT-3.3.2-4]"
        );
        assert_eq!(got.response_topic, sent.response_topic, "[MQTT-3.3.2-15]");
        assert_eq!(got.correlation_data, sent.correlation_data, "[MQTT-3.3.2-16]");
        assert_eq!(got.user_properties, users, "[MQTT-3.3.2-17], [MQTT-3.3.2-18]");
        assert_eq!(got.content_type, sent.content_type, "[MQTT-3.3.2-20]");
        if qos == QoS::ExactlyOnce {
            // Complete the exchange so the next one can reuse identifier 1.
            assert!(matches!(publisher.recv(), Packet::PubRec(_)));
            publisher.send(&Packet::PubRel(Ack::new(pid(1))));
        } else if qos == QoS::AtLeastOnce {
            assert!(matches!(publisher.recv(), Packet::PubAck(_)));
        }
    }
}

/// Large payloads go out from the message's own buffer beside their heads (one vectored
/// write, `midge-core`'s `outbox.rs`): each subscriber gets every message whole, byte for
/// byte and in order, also when its socket takes them a piece at a time.
#[test]
fn large_and_small_payloads_reach_slow_subscribers_whole_and_in_order() {
    let midge = Midge::start("");
    let addr = midge.addr();
    let mut at_least_once = RawClient::session(addr, ProtocolVersion::V311, "big-q1");
    at_least_once.subscribe(&[("big/#", QoS::AtLeastOnce)]);
    let mut at_most_once = RawClient::session(addr, ProtocolVersion::V5, "big-q0");
    at_most_once.subscribe(&[("big/#", QoS::AtMostOnce)]);
    let mut publisher = RawClient::session(addr, ProtocolVersion::V311, "big-pub");
    let sizes = [10, 2_047, 2_048, 5_000, 70_000];
    let payload = |n: usize| -> Bytes { (0..sizes[n % sizes.len()]).map(|i| (i + n) as u8).collect() };
    for n in 0..40 {
        publisher.send(&publish(
            &format!("big/{n}"),
            payload(n),
            QoS::AtLeastOnce,
            n as u16 + 1,
        ));
    }
    for _ in 0..40 {
        assert!(matches!(publisher.recv(), Packet::PubAck(_)));
    }
    // Read only now: the broker's writes met full socket buffers on the way.
    for n in 0..40 {
        let p = at_least_once.recv_publish();
        assert_eq!((text_topic(&p), &p.payload), (format!("big/{n}"), &payload(n)));
        at_least_once.send(&puback(p.packet_id.expect("QoS 1")));
        let p = at_most_once.recv_publish();
        assert_eq!((text_topic(&p), &p.payload), (format!("big/{n}"), &payload(n)));
    }
}

fn text_topic(p: &Publish) -> String {
    p.topic.as_str().to_owned()
}
