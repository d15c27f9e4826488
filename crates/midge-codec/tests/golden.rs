//! Golden vectors: packets that real MQTT implementations nobody on this project wrote put on the
//! wire — Debian's `mosquitto_pub` / `mosquitto_sub` 2.0.11 (libmosquitto), Python `paho-mqtt`
//! 2.2 and the Mosquitto 2.0.11 broker answering them — captured by `testdata/capture.py`.
//!
//! Every `testdata/*.bin` file is one whole packet named
//! `<client>-<version>-<scenario>-<nn>-<c2s|s2c>-<packettype>.bin`. Each is decoded in the version
//! its name gives (CONNECT decodes itself), must be the packet type its name gives, and must
//! re-encode to the very same bytes. The few that do not are listed in [`KNOWN_DIFFERENCES`] with
//! the reason; for those the test checks that the re-encoding is a reordering of the captured
//! bytes, that decode → encode → decode gives the same value, and that the bytes still differ, so
//! the list cannot go stale. A value-level test per client follows, so that "it round-trips" cannot
//! hide "it decodes the wrong thing".

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use midge_codec::{
    Packet, PacketType, PayloadFormat, ProtocolVersion, QoS, ReasonCode, RetainHandling, SubscriptionOptions,
    UserProperty, decode_packet,
};

/// Fewer files than this means the captures are missing, not that the test passed.
const MIN_VECTORS: usize = 300;

/// Why the vectors below re-encode differently. MQTT 5 §2.2.2.2 puts no order on the properties
/// in a Property block: the only ordering rules are that User Properties keep their relative
/// order when a message or will is forwarded [MQTT-3.3.2-18] [MQTT-3.1.3-10], and the codec keeps
/// that (they are a `Vec`). The codec writes each packet's properties in one fixed order — the
/// order of its tables in `src/properties.rs`, User Properties last — so a sender that orders them
/// otherwise gets the same value back in a permutation of its bytes. A byte-exact round trip of
/// these would need the codec to remember the order it read, which the specification does not ask
/// for. All 3.1 and 3.1.1 vectors, which have no properties, round-trip exactly.
const BROKER_CONNACK: &str = "Mosquitto 2.0.11's CONNACK sends Topic Alias Maximum (0x22 = 10) before \
     Receive Maximum (0x21 = 20); the codec writes Receive Maximum first: \
     200900000622000a210014 re-encodes as 200900000621001422000a";
const LIBMOSQ_CONNECT: &str = "libmosquitto writes CONNECT properties in the order of the command line \
     (-D, then -x's Session Expiry last), User Properties among them; the codec writes Session Expiry, \
     Receive Maximum, Maximum Packet Size, Topic Alias Maximum, Request Response/Problem Information, \
     then User Properties";
const LIBMOSQ_WILL: &str = "libmosquitto writes the will properties in -D order (Content Type, User \
     Property, Message Expiry, Payload Format); the codec writes Payload Format, Message Expiry, \
     Content Type, then User Properties";
const LIBMOSQ_PUBLISH: &str = "libmosquitto writes PUBLISH properties in -D order (User Properties first); \
     the codec writes Payload Format, Message Expiry, Topic Alias, Response Topic, Correlation Data, \
     Content Type, Subscription Identifiers, then User Properties";
const BROKER_PUBLISH: &str = "Mosquitto 2.0.11 forwards a PUBLISH with a Subscription Identifier first \
     (when the subscription has one), then the publisher's properties in the order it received them \
     except Message Expiry Interval, which it rewrites and moves to the end; the codec's order differs";
const PAHO_CONNECT: &str = "paho-mqtt writes properties sorted by identifier: CONNECT 0x11, 0x21, 0x22, \
     0x26 (User Property), 0x27, and will properties 0x03 (Content Type), 0x18 (Will Delay), 0x26; the \
     codec puts Maximum Packet Size (0x27) before Topic Alias Maximum and User Properties last, and \
     Will Delay first";
const PAHO_PUBLISH: &str = "paho-mqtt writes PUBLISH properties sorted by identifier: Content Type (0x03), \
     Response Topic (0x08), Correlation Data (0x09); the codec writes Content Type after Correlation Data";

/// Vectors whose bytes legitimately differ from the codec's re-encoding, each with the reason. The
/// names change only if `capture.py`'s scenarios change; the test fails on a name with no file.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    ("mosquitto_pub-v5-alias-00-s2c-connack.bin", BROKER_CONNACK),
    ("mosquitto_pub-v5-lines-00-s2c-connack.bin", BROKER_CONNACK),
    ("mosquitto_pub-v5-null-00-s2c-connack.bin", BROKER_CONNACK),
    ("mosquitto_pub-v5-props-00-s2c-connack.bin", BROKER_CONNACK),
    ("mosquitto_pub-v5-qos0-00-s2c-connack.bin", BROKER_CONNACK),
    ("mosquitto_pub-v5-qos1-00-s2c-connack.bin", BROKER_CONNACK),
    ("mosquitto_pub-v5-qos2-00-s2c-connack.bin", BROKER_CONNACK),
    ("mosquitto_pub-v5-retain-00-s2c-connack.bin", BROKER_CONNACK),
    ("mosquitto_sub-v5-sub-00-s2c-connack.bin", BROKER_CONNACK),
    ("mosquittobridge-v5-private-00-s2c-connack.bin", BROKER_CONNACK),
    ("mosquitto_sub-v5-will-00-s2c-connack.bin", BROKER_CONNACK),
    ("paho-v5-session-00-s2c-connack.bin", BROKER_CONNACK),
    ("paho-v5-watch-00-s2c-connack.bin", BROKER_CONNACK),
    ("mosquitto_pub-v5-props-00-c2s-connect.bin", LIBMOSQ_CONNECT),
    ("mosquitto_sub-v5-sub-00-c2s-connect.bin", LIBMOSQ_CONNECT),
    ("mosquitto_pub-v5-qos2-00-c2s-connect.bin", LIBMOSQ_WILL),
    ("mosquitto_pub-v5-props-01-c2s-publish.bin", LIBMOSQ_PUBLISH),
    ("mosquitto_sub-v5-sub-18-s2c-publish.bin", BROKER_PUBLISH),
    ("paho-v5-session-03-s2c-publish.bin", BROKER_PUBLISH),
    ("paho-v5-session-06-s2c-publish.bin", BROKER_PUBLISH),
    ("paho-v5-session-00-c2s-connect.bin", PAHO_CONNECT),
    ("paho-v5-session-05-c2s-publish.bin", PAHO_PUBLISH),
];

/// One captured packet and what its file name says about it.
struct Vector {
    name: String,
    client: String,
    version: ProtocolVersion,
    scenario: String,
    seq: u32,
    direction: String,
    packet_type: PacketType,
    bytes: Bytes,
}

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn version_of(tag: &str) -> ProtocolVersion {
    match tag {
        "v31" => ProtocolVersion::V31,
        "v311" => ProtocolVersion::V311,
        "v5" => ProtocolVersion::V5,
        other => panic!("unknown version tag {other:?}"),
    }
}

fn packet_type_of(name: &str) -> PacketType {
    match name {
        "connect" => PacketType::Connect,
        "connack" => PacketType::ConnAck,
        "publish" => PacketType::Publish,
        "puback" => PacketType::PubAck,
        "pubrec" => PacketType::PubRec,
        "pubrel" => PacketType::PubRel,
        "pubcomp" => PacketType::PubComp,
        "subscribe" => PacketType::Subscribe,
        "suback" => PacketType::SubAck,
        "unsubscribe" => PacketType::Unsubscribe,
        "unsuback" => PacketType::UnsubAck,
        "pingreq" => PacketType::PingReq,
        "pingresp" => PacketType::PingResp,
        "disconnect" => PacketType::Disconnect,
        "auth" => PacketType::Auth,
        other => panic!("unknown packet type {other:?}"),
    }
}

/// Every vector, sorted by file name.
fn vectors() -> Vec<Vector> {
    let dir = testdata();
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut vectors: Vec<Vector> = entries
        .map(|entry| entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display())).path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "bin"))
        .map(|path| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            let stem = name.trim_end_matches(".bin");
            let parts: Vec<&str> = stem.split('-').collect();
            let [client, version, scenario, seq, direction, packet_type] = parts[..] else {
                panic!("{name}: want <client>-<version>-<scenario>-<nn>-<c2s|s2c>-<packettype>.bin");
            };
            assert!(
                matches!(direction, "c2s" | "s2c"),
                "{name}: direction {direction:?}"
            );
            Vector {
                client: client.to_owned(),
                version: version_of(version),
                scenario: scenario.to_owned(),
                seq: seq
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}: sequence number {seq:?}")),
                direction: direction.to_owned(),
                packet_type: packet_type_of(packet_type),
                bytes: Bytes::from(fs::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"))),
                name,
            }
        })
        .collect();
    vectors.sort_by(|a, b| a.name.cmp(&b.name));
    vectors
}

/// The decoded packets one connection of a scenario carried in one direction, in stream order.
fn stream(client: &str, version: ProtocolVersion, scenario: &str, direction: &str) -> Vec<Packet> {
    let mut matching: Vec<Vector> = vectors()
        .into_iter()
        .filter(|v| {
            v.client == client && v.version == version && v.scenario == scenario && v.direction == direction
        })
        .collect();
    assert!(
        !matching.is_empty(),
        "no vectors for {client} {version} {scenario} {direction}"
    );
    matching.sort_by_key(|v| v.seq);
    matching
        .into_iter()
        .map(|v| decode_packet(v.bytes, v.version).unwrap_or_else(|e| panic!("{}: {e}", v.name)))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn encode(packet: &Packet, version: ProtocolVersion) -> Bytes {
    let mut buf = BytesMut::new();
    packet
        .encode(version, &mut buf)
        .unwrap_or_else(|e| panic!("{:?} does not encode: {e}", packet.packet_type()));
    buf.freeze()
}

fn sorted(bytes: &[u8]) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    bytes.sort_unstable();
    bytes
}

fn user(name: &str, value: &str) -> UserProperty {
    UserProperty::new(name, value)
}

#[test]
fn every_vector_decodes_and_reencodes_byte_for_byte() {
    let vectors = vectors();
    assert!(
        vectors.len() >= MIN_VECTORS,
        "only {} vectors in {}; run testdata/capture.py",
        vectors.len(),
        testdata().display()
    );
    let known: BTreeMap<&str, &str> = KNOWN_DIFFERENCES.iter().copied().collect();
    assert_eq!(
        known.len(),
        KNOWN_DIFFERENCES.len(),
        "a known difference is listed twice"
    );
    let mut failures = Vec::new();
    let mut known_seen = BTreeSet::new();

    for v in &vectors {
        let packet = match decode_packet(v.bytes.clone(), v.version) {
            Ok(packet) => packet,
            Err(e) => {
                failures.push(format!(
                    "{}: decode error {e} ({e:?})\n  bytes {}",
                    v.name,
                    hex(&v.bytes)
                ));
                continue;
            }
        };
        if packet.packet_type() != v.packet_type {
            failures.push(format!("{}: decoded as {:?}", v.name, packet.packet_type()));
            continue;
        }
        if let Packet::Connect(connect) = &packet {
            assert_eq!(connect.protocol, v.version, "{}: CONNECT protocol level", v.name);
        }
        let encoded = encode(&packet, v.version);
        if let Some(reason) = known.get(v.name.as_str()) {
            known_seen.insert(v.name.as_str());
            if encoded == v.bytes {
                failures.push(format!(
                    "{}: listed as a known difference but re-encodes exactly",
                    v.name
                ));
                continue;
            }
            // Only the order of the properties may differ: same bytes, same value.
            assert_eq!(
                sorted(&encoded),
                sorted(&v.bytes),
                "{}: more than a reordering ({reason})\n  captured {}\n  encoded  {}",
                v.name,
                hex(&v.bytes),
                hex(&encoded)
            );
            let again = decode_packet(encoded, v.version)
                .unwrap_or_else(|e| panic!("{}: the re-encoding does not decode: {e}", v.name));
            assert_eq!(
                again, packet,
                "{}: decode → encode → decode changed the value",
                v.name
            );
        } else if encoded != v.bytes {
            failures.push(format!(
                "{}: re-encoding differs\n  captured {}\n  encoded  {}",
                v.name,
                hex(&v.bytes),
                hex(&encoded)
            ));
        }
    }
    for name in known.keys() {
        assert!(
            known_seen.contains(name),
            "known difference {name} has no file in testdata/"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        vectors.len(),
        failures.join("\n")
    );
}

#[test]
fn captures_cover_every_client_version_and_packet_type() {
    let vectors = vectors();
    let mut per_client: BTreeMap<(&str, ProtocolVersion), usize> = BTreeMap::new();
    let mut types: BTreeMap<ProtocolVersion, BTreeSet<u8>> = BTreeMap::new();
    for v in &vectors {
        *per_client.entry((v.client.as_str(), v.version)).or_default() += 1;
        types.entry(v.version).or_default().insert(v.packet_type as u8);
    }
    for client in ["mosquitto_pub", "mosquitto_sub", "paho"] {
        for version in [ProtocolVersion::V31, ProtocolVersion::V311, ProtocolVersion::V5] {
            let count = per_client.get(&(client, version)).copied().unwrap_or(0);
            assert!(count >= 20, "{client} {version}: only {count} vectors");
        }
    }
    // Every packet but AUTH, which neither client nor Mosquitto sends without an auth plugin.
    let all_but_auth: BTreeSet<u8> = (1..=14).collect();
    for (version, seen) in &types {
        assert_eq!(seen, &all_but_auth, "packet types captured in MQTT {version}");
    }
}

#[test]
fn mosquitto_pub_connect_carries_the_command_line() {
    for (version, tag) in [(ProtocolVersion::V31, "v31"), (ProtocolVersion::V311, "v311")] {
        let Packet::Connect(connect) = &stream("mosquitto_pub", version, "qos1", "c2s")[0] else {
            panic!("first packet is not CONNECT");
        };
        assert_eq!(connect.protocol, version);
        assert_eq!(&*connect.client_id, format!("g-p1-{tag}")); // -i
        assert_eq!(connect.username.as_deref(), Some("pubuser")); // -u
        assert_eq!(connect.password.as_deref(), Some(&b"pubpass"[..])); // -P
        assert_eq!(connect.keep_alive, 30); // -k 30
        assert!(!connect.clean_start); // -c
        assert_eq!(connect.will, None);
    }

    // --will-topic, --will-payload, --will-qos 1, --will-retain.
    let Packet::Connect(connect) = &stream("mosquitto_pub", ProtocolVersion::V31, "qos2", "c2s")[0] else {
        panic!("first packet is not CONNECT");
    };
    assert_eq!(connect.protocol, ProtocolVersion::V31);
    assert!(connect.clean_start);
    assert_eq!(connect.keep_alive, 60);
    let will = connect.will.as_ref().unwrap();
    assert_eq!(&*will.topic, "golden/v31/will/p2");
    assert_eq!(&will.payload[..], b"gone");
    assert_eq!(will.qos, QoS::AtLeastOnce);
    assert!(will.retain);

    // -D will ... in MQTT 5.
    let Packet::Connect(connect) = &stream("mosquitto_pub", ProtocolVersion::V5, "qos2", "c2s")[0] else {
        panic!("first packet is not CONNECT");
    };
    let will = connect.will.as_ref().unwrap();
    assert_eq!(will.properties.content_type.as_deref(), Some("text/plain"));
    assert_eq!(will.properties.message_expiry_interval, Some(120));
    assert_eq!(
        will.properties.payload_format_indicator,
        Some(PayloadFormat::Utf8)
    );
    assert_eq!(will.properties.user_properties, [user("w", "1")]);

    // -D connect ... in MQTT 5.
    let Packet::Connect(connect) = &stream("mosquitto_pub", ProtocolVersion::V5, "props", "c2s")[0] else {
        panic!("first packet is not CONNECT");
    };
    assert_eq!(connect.properties.session_expiry_interval, Some(30));
    assert_eq!(connect.properties.receive_maximum.map(|n| n.get()), Some(10));
    assert_eq!(connect.properties.request_problem_information, Some(false));
    assert_eq!(connect.properties.request_response_information, Some(true));
    assert_eq!(connect.properties.user_properties, [user("c", "d")]);
}

#[test]
fn mosquitto_pub_v5_publish_has_its_properties() {
    let Packet::Publish(publish) = &stream("mosquitto_pub", ProtocolVersion::V5, "props", "c2s")[1] else {
        panic!("second packet is not PUBLISH");
    };
    assert_eq!(&*publish.topic, "golden/v5/props");
    assert_eq!(publish.qos, QoS::AtLeastOnce);
    assert_eq!(publish.packet_id.map(|id| id.get()), Some(1));
    assert_eq!(&publish.payload[..], br#"{"on":true}"#);
    let props = &publish.properties;
    // Two User Properties with the same name, in the order given [MQTT-3.3.2-18].
    assert_eq!(props.user_properties, [user("a", "b"), user("a", "c")]);
    assert_eq!(props.message_expiry_interval, Some(60));
    assert_eq!(props.content_type.as_deref(), Some("text/plain"));
    assert_eq!(props.response_topic.as_deref(), Some("r/t"));
    // mosquitto_pub takes correlation data as a string, not hex.
    assert_eq!(props.correlation_data.as_deref(), Some(&b"0102"[..]));
    assert_eq!(props.payload_format_indicator, Some(PayloadFormat::Utf8));

    // And the DISCONNECT of -D disconnect ...
    let Some(Packet::Disconnect(disconnect)) =
        stream("mosquitto_pub", ProtocolVersion::V5, "props", "c2s").pop()
    else {
        panic!("last packet is not DISCONNECT");
    };
    assert_eq!(disconnect.reason_code, ReasonCode::Success);
    assert_eq!(disconnect.properties.session_expiry_interval, Some(0));
    assert_eq!(disconnect.properties.user_properties, [user("bye", "now")]);
}

#[test]
fn mosquitto_sub_subscribes_to_its_filters_in_order() {
    for (version, tag) in [
        (ProtocolVersion::V31, "v31"),
        (ProtocolVersion::V311, "v311"),
        (ProtocolVersion::V5, "v5"),
    ] {
        let sent = stream("mosquitto_sub", version, "sub", "c2s");
        let Packet::Subscribe(subscribe) = &sent[1] else {
            panic!("second packet is not SUBSCRIBE");
        };
        let filters: Vec<&str> = subscribe.subscriptions.iter().map(|s| &*s.filter).collect();
        let want = ["+/temp", "#", "retained", "gone/+"].map(|f| format!("golden/{tag}/{f}"));
        assert_eq!(filters, want, "{version}");
        assert!(
            subscribe
                .subscriptions
                .iter()
                .all(|s| s.options.qos == QoS::ExactlyOnce)
        ); // -q 2

        let received = stream("mosquitto_sub", version, "sub", "s2c");
        let Packet::SubAck(suback) = &received[1] else {
            panic!("second packet is not SUBACK");
        };
        assert_eq!(suback.packet_id, subscribe.packet_id);
        assert_eq!(suback.reason_codes, [ReasonCode::GrantedQos2; 4]);

        // The retained message, once per matching filter ('#' and the exact one), at QoS 1.
        let Packet::Publish(retained) = &received[2] else {
            panic!("third packet is not PUBLISH");
        };
        assert!(retained.retain);
        assert_eq!(&*retained.topic, format!("golden/{tag}/retained"));
        assert_eq!(&retained.payload[..], b"retained payload");
        assert_eq!(retained.qos, QoS::AtLeastOnce);

        // Two UNSUBSCRIBEs for the two -U.
        let unsubscribed: Vec<String> = sent
            .iter()
            .filter_map(|p| match p {
                Packet::Unsubscribe(u) => Some(u.filters.iter().map(|f| f.to_string()).collect::<Vec<_>>()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(
            unsubscribed,
            [format!("golden/{tag}/gone/+"), format!("golden/{tag}/never")]
        );
    }
}

#[test]
fn mosquitto_v5_unsuback_and_disconnect_reason_codes() {
    let sent = stream("mosquitto_sub", ProtocolVersion::V5, "sub", "c2s");
    let Packet::Unsubscribe(unsubscribe) = &sent[2] else {
        panic!("third packet is not UNSUBSCRIBE");
    };
    assert_eq!(unsubscribe.properties.user_properties, [user("u", "1")]);
    let codes: Vec<Vec<ReasonCode>> = stream("mosquitto_sub", ProtocolVersion::V5, "sub", "s2c")
        .into_iter()
        .filter_map(|p| match p {
            Packet::UnsubAck(ack) => Some(ack.reason_codes),
            _ => None,
        })
        .collect();
    // One filter it had, one it never had.
    assert_eq!(
        codes,
        [vec![ReasonCode::Success], vec![ReasonCode::NoSubscriptionExisted]]
    );

    // mosquitto_sub 2.0 ends on SIGINT with "Disconnect with Will Message" (0x04).
    let Some(Packet::Disconnect(disconnect)) = sent.last() else {
        panic!("last packet is not DISCONNECT");
    };
    assert_eq!(disconnect.reason_code, ReasonCode::DisconnectWithWillMessage);
    assert_eq!(disconnect.properties.user_properties, [user("bye", "now")]);

    // The broker's PUBACK when no one is subscribed yet.
    let Packet::PubAck(ack) = &stream("mosquitto_pub", ProtocolVersion::V5, "retain", "s2c")[1] else {
        panic!("second packet is not PUBACK");
    };
    assert_eq!(ack.reason_code, ReasonCode::NoMatchingSubscribers);

    let Packet::ConnAck(connack) = &stream("mosquitto_pub", ProtocolVersion::V5, "retain", "s2c")[0] else {
        panic!("first packet is not CONNACK");
    };
    assert_eq!(connack.reason_code, ReasonCode::Success);
    assert_eq!(connack.properties.topic_alias_maximum, Some(10));
    assert_eq!(connack.properties.receive_maximum.map(|n| n.get()), Some(20));
}

#[test]
fn a_killed_clients_will_reaches_the_subscriber() {
    for (version, tag) in [
        (ProtocolVersion::V31, "v31"),
        (ProtocolVersion::V311, "v311"),
        (ProtocolVersion::V5, "v5"),
    ] {
        let will = stream("mosquitto_sub", version, "sub", "s2c")
            .into_iter()
            .find_map(|p| match p {
                Packet::Publish(p) if *p.topic == *format!("golden/{tag}/will/w") => Some(p),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{version}: no will"));
        assert_eq!(&will.payload[..], b"died");
        assert_eq!(will.qos, QoS::ExactlyOnce);
        if version.is_v5() {
            assert_eq!(will.properties.user_properties, [user("why", "killed")]);
        }
    }
}

#[test]
fn paho_v5_subscription_options_and_properties() {
    let sent = stream("paho", ProtocolVersion::V5, "session", "c2s");
    let Packet::Connect(connect) = &sent[0] else {
        panic!("first packet is not CONNECT");
    };
    assert_eq!(&*connect.client_id, "paho-s-v5");
    assert_eq!(connect.username.as_deref(), Some("pahouser"));
    assert_eq!(connect.keep_alive, 3);
    assert_eq!(connect.properties.topic_alias_maximum, Some(5));
    assert_eq!(
        connect.properties.maximum_packet_size.map(|n| n.get()),
        Some(65536)
    );
    let will = connect.will.as_ref().unwrap();
    assert_eq!(will.properties.will_delay_interval, Some(0));
    assert_eq!(will.properties.user_properties, [user("w", "paho")]);

    let Packet::Subscribe(subscribe) = &sent[1] else {
        panic!("second packet is not SUBSCRIBE");
    };
    assert_eq!(
        subscribe.properties.subscription_identifier.map(|id| id.get()),
        Some(7)
    );
    assert_eq!(subscribe.properties.user_properties, [user("sub", "1")]);
    let got: Vec<(&str, SubscriptionOptions)> = subscribe
        .subscriptions
        .iter()
        .map(|s| (&*s.filter, s.options))
        .collect();
    let want = [
        (
            "golden/v5/paho/#",
            SubscriptionOptions {
                qos: QoS::ExactlyOnce,
                no_local: false,
                retain_as_published: true,
                retain_handling: RetainHandling::SendAtSubscribe,
            },
        ),
        (
            "golden/v5/paho/nl/+",
            SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                no_local: true,
                retain_as_published: false,
                retain_handling: RetainHandling::DoNotSend,
            },
        ),
        (
            "golden/v5/paho/new/+",
            SubscriptionOptions {
                qos: QoS::AtMostOnce,
                no_local: false,
                retain_as_published: false,
                retain_handling: RetainHandling::SendIfNew,
            },
        ),
    ];
    assert_eq!(got, want);

    // The broker tags what it sends back with the Subscription Identifier.
    let echoed = stream("paho", ProtocolVersion::V5, "session", "s2c");
    let Packet::Publish(echo) = &echoed[2] else {
        panic!("third packet is not PUBLISH");
    };
    assert_eq!(&*echo.topic, "golden/v5/paho/q0");
    assert_eq!(
        echo.properties
            .subscription_identifiers
            .iter()
            .map(|id| id.get())
            .collect::<Vec<_>>(),
        [7]
    );
}

#[test]
fn paho_v5_topic_alias_then_empty_topic() {
    let publishes: Vec<_> = stream("paho", ProtocolVersion::V5, "session", "c2s")
        .into_iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some(p),
            _ => None,
        })
        .collect();
    let [.., set, used] = &publishes[..] else {
        panic!("fewer than two PUBLISH");
    };
    assert_eq!(&*set.topic, "golden/v5/paho/alias");
    assert_eq!(set.properties.topic_alias.map(|a| a.get()), Some(1));
    assert!(used.topic.is_empty());
    assert_eq!(used.properties.topic_alias.map(|a| a.get()), Some(1));
    assert_eq!(&used.payload[..], b"used");
}

#[test]
fn paho_v5_disconnect_with_will_message() {
    let Some(Packet::Disconnect(disconnect)) = stream("paho", ProtocolVersion::V5, "session", "c2s").pop()
    else {
        panic!("last packet is not DISCONNECT");
    };
    assert_eq!(disconnect.reason_code, ReasonCode::DisconnectWithWillMessage);
    assert_eq!(disconnect.properties.session_expiry_interval, Some(0));
    assert_eq!(disconnect.properties.user_properties, [user("bye", "paho")]);

    // The watcher then receives the will.
    let will = stream("paho", ProtocolVersion::V5, "watch", "s2c")
        .into_iter()
        .find_map(|p| match p {
            Packet::Publish(p) => Some(p),
            _ => None,
        })
        .unwrap();
    assert_eq!(&*will.topic, "golden/v5/paho/will");
    assert_eq!(&will.payload[..], b"paho will");
    assert_eq!(will.properties.content_type.as_deref(), Some("text/plain"));
    assert_eq!(will.properties.user_properties, [user("w", "paho")]);
}

/// A Mosquitto 2.0.11 bridge (`try_private` on, the default) marks its 3.1 and 3.1.1 CONNECT
/// with the protocol level's high bit; its MQTT 5 CONNECT has none, and subscribes with No
/// Local and Retain As Published instead.
#[test]
fn mosquitto_bridge_connect_carries_the_bridge_bit() {
    for version in [ProtocolVersion::V31, ProtocolVersion::V311, ProtocolVersion::V5] {
        let packets = stream("mosquittobridge", version, "private", "c2s");
        let Packet::Connect(connect) = &packets[0] else {
            panic!("first packet is not CONNECT");
        };
        assert_eq!(connect.protocol, version);
        assert_eq!(connect.bridge, !version.is_v5(), "{version}");
        assert!(!connect.clean_start, "cleansession defaults to false");
        assert_eq!(connect.keep_alive, 30);
        let will = connect.will.as_ref().unwrap();
        assert_eq!(
            &*will.topic,
            format!(
                "$SYS/broker/connection/g-bridge-{version_tag}/state",
                version_tag = tag(version)
            )
        );
        assert_eq!(&will.payload[..], b"0");
        assert!(will.retain);
        let Packet::Publish(notification) = &packets[1] else {
            panic!("second packet is not PUBLISH");
        };
        assert_eq!(&notification.payload[..], b"1");
        assert!(notification.retain);
        let Packet::Subscribe(subscribe) = &packets[2] else {
            panic!("third packet is not SUBSCRIBE");
        };
        let options = subscribe.subscriptions[0].options;
        assert_eq!(&*subscribe.subscriptions[0].filter, "golden/bridge/#");
        assert_eq!(options.qos, QoS::AtLeastOnce);
        assert_eq!(options.no_local, version.is_v5());
        assert_eq!(options.retain_as_published, version.is_v5());
    }
}

fn tag(version: ProtocolVersion) -> &'static str {
    match version {
        ProtocolVersion::V31 => "v31",
        ProtocolVersion::V311 => "v311",
        ProtocolVersion::V5 => "v5",
    }
}
