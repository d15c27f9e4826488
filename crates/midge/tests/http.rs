//! The HTTP listener (`http_listener`): every REST endpoint with good and bad input, the
//! credentials it asks for and accepts, `/metrics` read by a Prometheus text parser while
//! rumqttc publishes, HTTPS with the broker's rustls setup, the OpenAPI document and the web
//! view's files. The broker is the real binary; MQTT peers are rumqttc and raw packets.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use midge_codec::{Packet, ProtocolVersion, QoS};
use serde_json::{Value, json};
use support::http::{self, Response, get, request, send_json};
use support::packets::*;
use support::{Midge, RawClient, WAIT};

const V311: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;

/// A broker with an HTTP listener on a free port of 127.0.0.1 and `extra` lines.
fn broker(extra: &str) -> (Midge, SocketAddr) {
    let midge = Midge::start(&format!("http_listener 0 127.0.0.1\n{extra}"));
    let addr = http_addr(&midge);
    (midge, addr)
}

/// The HTTP listener's address, from its log line.
fn http_addr(midge: &Midge) -> SocketAddr {
    let line = midge.wait_for_log("HTTP API and web view on ");
    let url = line.rsplit(' ').next().unwrap();
    url.trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

/// Asserts a JSON error answer with `status` and `code`.
fn assert_error(response: &Response, status: u16, code: &str) {
    assert_eq!(response.status, status, "{}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("application/json"),
        "{}",
        response.text()
    );
    let body = response.json();
    assert_eq!(body["error"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

/// Polls `check` until it holds or [`WAIT`] passes.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn health_info_and_json_errors() {
    let (midge, addr) = broker("");
    let health = get(addr, "/api/v1/health");
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), json!({"status": "ok"}));

    let info = get(addr, "/api/v1/info");
    assert_eq!(info.status, 200);
    let info = info.json();
    assert!(info["version"].as_str().unwrap().starts_with("midge version "));
    let listener = &info["listeners"][0];
    assert_eq!(listener["addresses"][0], format!("127.0.0.1:{}", midge.port()));
    assert_eq!(listener["protocol"], "mqtt");
    assert_eq!(info["limits"]["max_queued_messages"], 1000);

    assert_error(&get(addr, "/api/v1/nothing-here"), 404, "not_found");
    assert_error(
        &request(addr, "PUT", "/api/v1/info", &[], None),
        405,
        "method_not_allowed",
    );
    assert_error(&get(addr, "/api/v1/sessions?limit=0"), 400, "bad_request");
    assert_error(&get(addr, "/api/v1/sessions?limit=lots"), 400, "bad_request");
    assert_error(&get(addr, "/api/v1/sessions?connected=maybe"), 400, "bad_request");
    assert_error(&get(addr, "/api/v1/logs?level=loud"), 400, "bad_request");
    // Not HTTP at all: the connection is closed, the broker carries on.
    let mut raw = std::net::TcpStream::connect(addr).unwrap();
    std::io::Write::write_all(&mut raw, b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\r\n\r\n").unwrap();
    let _ = std::io::Read::read_to_end(&mut raw, &mut Vec::new());
    assert_eq!(get(addr, "/api/v1/health").status, 200);
}

#[test]
fn sessions_are_listed_searched_disconnected_and_deleted() {
    let (midge, addr) = broker("");
    let mut sensor = RawClient::session(midge.addr(), V5, "sensor-1");
    sensor.subscribe(&[("sensors/#", QoS::AtLeastOnce), ("alerts", QoS::AtMostOnce)]);
    let (mut keeper, _) = RawClient::connected(
        midge.addr(),
        connect_with(V311, "keeper", |c| {
            c.clean_start = false;
            c.username = Some("operator".into());
        }),
    );
    keeper.subscribe(&[("jobs/+", QoS::AtLeastOnce)]);
    keeper.shutdown();
    eventually("keeper offline", || {
        get(addr, "/api/v1/sessions/keeper").json()["connected"] == false
    });

    let all = get(addr, "/api/v1/sessions").json();
    assert_eq!(all["total"], 2);
    assert_eq!(all["items"][0]["client_id"], "keeper");
    assert_eq!(all["items"][1]["client_id"], "sensor-1");
    let sensor_view = &all["items"][1];
    assert_eq!(sensor_view["connected"], true);
    assert_eq!(sensor_view["protocol"], "5.0");
    assert_eq!(sensor_view["subscriptions"], json!(["alerts", "sensors/#"]));
    assert_eq!(sensor_view["queued"], 0);
    assert_eq!(sensor_view["inflight"], 0);

    let keeper_view = get(addr, "/api/v1/sessions/keeper").json();
    assert_eq!(keeper_view["protocol"], "3.1.1");
    assert_eq!(keeper_view["username"], "operator");
    assert!(
        keeper_view["expiry_seconds"].is_null(),
        "3.1.1 persistent: forever"
    );
    assert!(keeper_view["disconnected_seconds"].is_u64());

    // Searching and paging.
    assert_eq!(get(addr, "/api/v1/clients").json()["total"], 1);
    assert_eq!(
        get(addr, "/api/v1/sessions?connected=false").json()["items"][0]["client_id"],
        "keeper"
    );
    assert_eq!(get(addr, "/api/v1/sessions?search=sens").json()["total"], 1);
    assert_eq!(
        get(addr, "/api/v1/sessions?username=operator").json()["items"][0]["client_id"],
        "keeper"
    );
    let page = get(addr, "/api/v1/sessions?offset=1&limit=1").json();
    assert_eq!(
        (page["total"].clone(), page["items"].as_array().unwrap().len()),
        (json!(2), 1)
    );
    assert_eq!(page["items"][0]["client_id"], "sensor-1");
    assert_error(&get(addr, "/api/v1/sessions/nobody"), 404, "not_found");

    // A queued message shows in the offline session.
    let mut publisher = RawClient::session(midge.addr(), V311, "pub");
    publisher.send(&publish("jobs/1", "work", QoS::AtLeastOnce, 1));
    assert!(matches!(publisher.recv(), Packet::PubAck(_)));
    eventually("one queued for keeper", || {
        get(addr, "/api/v1/sessions/keeper").json()["queued"] == 1
    });

    // Disconnecting: the MQTT 5 client hears 0x98, the session stays (expiry 0 ends it).
    let done = request(addr, "POST", "/api/v1/clients/sensor-1/disconnect", &[], None);
    assert_eq!(done.status, 204, "{}", done.text());
    let closing = sensor.expect_close();
    assert!(
        closing.iter().any(|p| matches!(p, Packet::Disconnect(d) if d.reason_code == midge_codec::ReasonCode::AdministrativeAction)),
        "{closing:?}"
    );
    midge.wait_for_log("Client sensor-1 disconnected by the HTTP API.");
    assert_error(
        &request(addr, "POST", "/api/v1/clients/sensor-1/disconnect", &[], None),
        404,
        "not_found",
    );
    assert_error(
        &request(addr, "POST", "/api/v1/clients/keeper/disconnect", &[], None),
        404,
        "not_found",
    );
    assert_error(
        &request(
            addr,
            "POST",
            "/api/v1/clients/pub/disconnect?will=perhaps",
            &[],
            None,
        ),
        400,
        "bad_request",
    );
    assert_error(
        &get(addr, "/api/v1/clients/pub/disconnect"),
        405,
        "method_not_allowed",
    );

    // Deleting: gone from the listing, and its client id starts afresh.
    assert_eq!(
        request(addr, "DELETE", "/api/v1/sessions/keeper", &[], None).status,
        204
    );
    assert_error(&get(addr, "/api/v1/sessions/keeper"), 404, "not_found");
    assert_error(
        &request(addr, "DELETE", "/api/v1/sessions/keeper", &[], None),
        404,
        "not_found",
    );
    let (_again, ack) = RawClient::connected(midge.addr(), connect_persistent(V311, "keeper"));
    assert!(!ack.session_present, "the deleted session does not come back");
    // Deleting the session of a connected client closes its connection.
    assert_eq!(
        request(addr, "DELETE", "/api/v1/sessions/pub", &[], None).status,
        204
    );
    publisher.expect_close();
}

#[test]
fn publishing_reaches_subscribers_with_properties() {
    let (midge, addr) = broker("");
    let mut v5 = RawClient::session(midge.addr(), V5, "listener-5");
    v5.subscribe(&[("api/#", QoS::ExactlyOnce)]);
    let mut v3 = RawClient::session(midge.addr(), V311, "listener-3");
    v3.subscribe(&[("api/#", QoS::AtMostOnce)]);

    let body = json!({
        "topic": "api/greeting",
        "payload_base64": "aGVsbG8=",
        "qos": 1,
        "properties": {
            "content_type": "text/plain",
            "response_topic": "api/replies",
            "correlation_data": "AQI=",
            "message_expiry_interval": 60,
            "payload_format_indicator": true,
            "user_properties": [{"name": "origin", "value": "http"}]
        }
    });
    let answer = send_json(addr, "POST", "/api/v1/publish", &body);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json(), json!({"delivered": 2}));

    let got = v5.recv_publish();
    assert_eq!(got.topic.as_str(), "api/greeting");
    assert_eq!(&got.payload[..], b"hello");
    assert_eq!(got.qos, QoS::AtLeastOnce);
    let props = &got.properties;
    assert_eq!(props.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        props.response_topic.as_ref().map(|t| t.as_str()),
        Some("api/replies")
    );
    assert_eq!(props.correlation_data.as_deref(), Some(&[1u8, 2][..]));
    assert!(
        props
            .message_expiry_interval
            .is_some_and(|s| (59..=60).contains(&s))
    );
    assert_eq!(props.user_properties.len(), 1);
    assert_eq!(props.user_properties[0].name, "origin");
    let got = v3.recv_publish();
    assert_eq!((&got.payload[..], got.qos), (&b"hello"[..], QoS::AtMostOnce));

    // Retained: a later subscriber gets it; an empty retained payload deletes it.
    let retained = send_json(
        addr,
        "POST",
        "/api/v1/publish",
        &json!({"topic": "api/state", "payload": "on", "retain": true}),
    );
    assert_eq!(retained.status, 200);
    v5.recv_publish();
    let mut late = RawClient::session(midge.addr(), V311, "late");
    late.subscribe(&[("api/state", QoS::AtMostOnce)]);
    let got = late.recv_publish();
    assert!(got.retain);
    assert_eq!(&got.payload[..], b"on");

    // Bad input: a JSON error each, and nothing published.
    for (body, why) in [
        (json!({"topic": "api/+", "payload": "x"}), "wildcard"),
        (json!({"topic": "", "payload": "x"}), "empty topic"),
        (json!({"topic": "$SYS/broker/fake", "payload": "x"}), "$ topic"),
        (json!({"topic": "api/x", "qos": 3}), "qos 3"),
        (json!({"topic": "api/x", "qos": -1}), "negative qos"),
        (json!({"topic": "api/x", "payload_base64": "%%%"}), "bad base64"),
        (
            json!({"topic": "api/x", "payload": "a", "payload_base64": "YQ=="}),
            "two payloads",
        ),
        (json!({"topic": "api/x", "qos": 1.5}), "fractional qos"),
        (json!({"topic": "api/x", "colour": "blue"}), "unknown field"),
        (json!({"payload": "x"}), "no topic"),
        (
            json!({"topic": "api/x", "properties": {"content_type": "a\u{0}b"}}),
            "NUL",
        ),
        (
            json!({"topic": "api/x", "properties": {"response_topic": "a/#"}}),
            "wildcard response topic",
        ),
        (
            json!({"topic": "api/x", "properties": {"correlation_data": "!"}}),
            "bad correlation data",
        ),
        (
            json!({"topic": "api/x", "properties": {"topic_alias": 3}}),
            "topic alias",
        ),
        (json!(["api/x"]), "not an object"),
    ] {
        let answer = send_json(addr, "POST", "/api/v1/publish", &body);
        assert_eq!(answer.status, 400, "{why}: {}", answer.text());
        assert_error(&answer, 400, "bad_request");
    }
    let not_json = request(
        addr,
        "POST",
        "/api/v1/publish",
        &[("Content-Type", "application/json")],
        Some(b"{topic"),
    );
    assert_error(&not_json, 400, "bad_request");
    let no_type = request(
        addr,
        "POST",
        "/api/v1/publish",
        &[],
        Some(br#"{"topic":"api/x"}"#),
    );
    assert_error(&no_type, 415, "unsupported_media_type");
    v5.expect_nothing(Duration::from_millis(200));
}

#[test]
fn publishing_respects_the_broker_limits() {
    let (_midge, addr) = broker("message_size_limit 4\nretain_available false\nmax_qos 1");
    let answer = send_json(
        addr,
        "POST",
        "/api/v1/publish",
        &json!({"topic": "a", "payload": "12345"}),
    );
    assert_error(&answer, 413, "payload_too_large");
    let answer = send_json(
        addr,
        "POST",
        "/api/v1/publish",
        &json!({"topic": "a", "retain": true}),
    );
    assert_error(&answer, 400, "bad_request");
    let answer = send_json(addr, "POST", "/api/v1/publish", &json!({"topic": "a", "qos": 2}));
    assert_error(&answer, 400, "bad_request");
    let answer = send_json(
        addr,
        "POST",
        "/api/v1/publish",
        &json!({"topic": "a", "qos": 1.0, "payload": "1234"}),
    );
    assert_eq!(answer.json(), json!({"delivered": 0}));
    // A topic no MQTT packet could carry [MQTT-4.7.3-3].
    let long = "t".repeat(65_536);
    let answer = send_json(addr, "POST", "/api/v1/publish", &json!({"topic": long}));
    assert_error(&answer, 400, "bad_request");
}

#[test]
fn retained_messages_are_listed_by_filter_paged_read_and_deleted() {
    let (midge, addr) = broker("");
    let mut client = RawClient::session(midge.addr(), V311, "retainer");
    for (i, topic) in ["home/a", "home/b", "home/c/d", "home/e", "office/x", "/lead"]
        .iter()
        .enumerate()
    {
        client.send(&publish_retained(
            topic,
            format!("v{i}"),
            QoS::AtLeastOnce,
            i as u16 + 1,
        ));
        assert!(matches!(client.recv(), Packet::PubAck(_)));
    }
    client.send(&publish_retained("bin", vec![0xff, 0x00], QoS::AtMostOnce, 0));
    eventually("seven retained", || {
        get(addr, "/api/v1/retained").json()["total"] == 7
    });

    let home = get(addr, "/api/v1/retained?filter=home/%23").json();
    let topics: Vec<&str> = home["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["topic"].as_str().unwrap())
        .collect();
    assert_eq!(topics, ["home/a", "home/b", "home/c/d", "home/e"]);
    assert_eq!(home["items"][0]["payload"], "v0");
    assert_eq!(home["items"][0]["payload_base64"], "djA=");
    assert_eq!(home["items"][0]["qos"], 1);
    let plus = get(addr, "/api/v1/retained?filter=home/%2B").json();
    assert_eq!(plus["total"], 3);
    let page = get(addr, "/api/v1/retained?filter=home/%23&offset=2&limit=1").json();
    assert_eq!(
        (page["total"].clone(), page["items"][0]["topic"].clone()),
        (json!(4), json!("home/c/d"))
    );
    let binary = get(addr, "/api/v1/retained/bin").json();
    assert!(binary["payload"].is_null());
    assert_eq!(binary["payload_base64"], "/wA=");
    // `$SYS` topics only when asked for.
    assert_eq!(
        get(addr, "/api/v1/retained?filter=%24SYS/%23&limit=1").json()["items"][0]["topic"]
            .as_str()
            .map(|t| t.starts_with("$SYS/")),
        Some(true)
    );

    // One topic: slashes as they are, or percent-encoded; a leading slash too.
    assert_eq!(get(addr, "/api/v1/retained/home/c/d").json()["payload"], "v2");
    assert_eq!(get(addr, "/api/v1/retained/home%2Fc%2Fd").json()["payload"], "v2");
    assert_eq!(get(addr, "/api/v1/retained//lead").json()["payload"], "v5");
    assert_error(&get(addr, "/api/v1/retained/home/none"), 404, "not_found");
    assert_error(&get(addr, "/api/v1/retained/home/%23"), 400, "bad_request");
    assert_error(
        &get(addr, "/api/v1/retained?filter=home/%23/x"),
        400,
        "bad_request",
    );
    assert_error(
        &get(addr, "/api/v1/retained?filter=%24share/g/x"),
        400,
        "bad_request",
    );

    assert_eq!(
        request(addr, "DELETE", "/api/v1/retained/home/a", &[], None).status,
        204
    );
    assert_error(
        &request(addr, "DELETE", "/api/v1/retained/home/a", &[], None),
        404,
        "not_found",
    );
    assert_error(
        &request(addr, "DELETE", "/api/v1/retained", &[], None),
        400,
        "bad_request",
    );
    let deleted = request(addr, "DELETE", "/api/v1/retained?filter=home/%23", &[], None);
    assert_eq!(deleted.json(), json!({"deleted": 3}));
    assert_eq!(get(addr, "/api/v1/retained").json()["total"], 3);
    // A subscriber no longer gets the deleted ones.
    let mut late = RawClient::session(midge.addr(), V311, "late");
    late.subscribe(&[("home/#", QoS::AtMostOnce)]);
    late.expect_nothing(Duration::from_millis(200));
}

#[test]
fn recent_log_lines_by_level_and_client() {
    let (midge, addr) = broker("");
    let client = RawClient::session(midge.addr(), V311, "log-watcher");
    drop(client);
    midge.wait_for_log("Client log-watcher closed its connection.");
    let lines = get(addr, "/api/v1/logs?client_id=log-watcher").json()["lines"].clone();
    let messages: Vec<&str> = lines
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("New client connected from ")),
        "{messages:?}"
    );
    assert_eq!(
        messages.last(),
        Some(&"Client log-watcher closed its connection.")
    );
    assert_eq!(lines[0]["level"], "INFO");
    assert!(lines[0]["time_ms"].as_u64().unwrap() > 1_600_000_000_000);

    let everything = get(addr, "/api/v1/logs?limit=1000").json()["lines"]
        .as_array()
        .unwrap()
        .len();
    let warnings = get(addr, "/api/v1/logs?level=warn").json()["lines"]
        .as_array()
        .unwrap()
        .len();
    assert!(everything > 3 && warnings < everything, "{everything} {warnings}");
    let newest = get(addr, "/api/v1/logs?limit=1").json()["lines"].clone();
    let id = newest[0]["id"].as_u64().unwrap();
    assert_eq!(
        get(addr, &format!("/api/v1/logs?after={id}")).json()["lines"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_error(&get(addr, "/api/v1/logs?limit=5000"), 400, "bad_request");
}

/// `/metrics`, parsed by prometheus-parse: the value of `name` with `labels`.
fn metric(addr: SocketAddr, name: &str, labels: &[(&str, &str)]) -> f64 {
    let response = get(addr, "/metrics");
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = response.text();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{text}"));
    match sample.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn metrics_move_when_messages_flow() {
    let (midge, addr) = broker("listener 0 127.0.0.1\nprotocol websockets");
    assert_eq!(metric(addr, "midge_clients_connected", &[]), 0.0);
    let received = metric(addr, "midge_publish_received_total", &[]);
    let sent = metric(addr, "midge_publish_sent_total", &[]);
    assert_eq!(
        metric(
            addr,
            "midge_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    let mut options = rumqttc::MqttOptions::new("metered", "127.0.0.1", midge.port());
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut connection) = rumqttc::Client::new(options, 10);
    client.subscribe("metered/#", rumqttc::QoS::AtLeastOnce).unwrap();
    for i in 0..5 {
        client
            .publish("metered/t", rumqttc::QoS::AtLeastOnce, false, format!("m{i}"))
            .unwrap();
    }
    let mut echoes = 0;
    for event in connection.iter() {
        if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(_)) = event.unwrap() {
            echoes += 1;
            if echoes == 5 {
                break;
            }
        }
    }
    assert_eq!(metric(addr, "midge_clients_connected", &[]), 1.0);
    assert_eq!(metric(addr, "midge_subscriptions", &[]), 1.0);
    assert_eq!(metric(addr, "midge_publish_received_total", &[]), received + 5.0);
    assert_eq!(metric(addr, "midge_publish_sent_total", &[]), sent + 5.0);
    assert!(metric(addr, "midge_bytes_received_total", &[]) > 0.0);
    assert_eq!(
        metric(
            addr,
            "midge_listener_connections",
            &[("listener", "0"), ("protocol", "mqtt")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            addr,
            "midge_listener_connections",
            &[("listener", "1"), ("protocol", "websockets")]
        ),
        0.0
    );
    assert_eq!(
        metric(addr, "midge_messages_dropped_total", &[("reason", "queue_full")]),
        0.0
    );
    assert_eq!(
        metric(
            addr,
            "midge_connections_refused_total",
            &[("limit", "max_connections")]
        ),
        0.0
    );

    client.disconnect().unwrap();
    drop(connection);
    eventually("the client gone", || {
        metric(addr, "midge_clients_connected", &[]) == 0.0
    });
}

#[test]
fn the_topic_tap_counts_what_flows_while_watched() {
    let (midge, addr) = broker("");
    let first = get(addr, "/api/v1/topics").json();
    assert_eq!(first["counting_ms"], 0, "the first look starts the count");
    let mut client = RawClient::session(midge.addr(), V311, "tapped");
    for i in 0..3 {
        client.send(&publish(
            "tap/one",
            format!("reading {i}"),
            QoS::AtLeastOnce,
            i + 1,
        ));
        assert!(matches!(client.recv(), Packet::PubAck(_)));
    }
    let traffic = get(addr, "/api/v1/topics").json();
    let topic = traffic["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["topic"] == "tap/one")
        .unwrap_or_else(|| panic!("tap/one not counted: {traffic}"));
    assert_eq!(topic["topic"], "tap/one");
    assert_eq!(topic["messages"], 3);
    assert_eq!(topic["last_payload"], "reading 2");
    assert_eq!(topic["last_size"], 9);
}

#[test]
fn credentials_are_asked_for_checked_and_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("http.passwd");
    let (code, output) = support::run_midge(
        &[
            "passwd",
            "-c",
            "-b",
            passwd.to_str().unwrap(),
            "admin",
            "s3cret pass",
        ],
        WAIT,
    );
    assert_eq!(code, Some(0), "{output}");
    let token = "a-long-enough-test-token-1234";
    let (_midge, addr) = broker(&format!(
        "http_auth_token {token}\nhttp_password_file {}\nhttp_allow_anonymous false",
        passwd.display()
    ));

    let refused = get(addr, "/api/v1/info");
    assert_error(&refused, 401, "unauthorized");
    let challenge = refused.header("www-authenticate").unwrap();
    assert!(
        challenge.contains("Bearer") && challenge.contains("Basic"),
        "{challenge}"
    );
    assert_error(&get(addr, "/metrics"), 401, "unauthorized");
    assert_error(
        &send_json(addr, "POST", "/api/v1/publish", &json!({"topic": "x"})),
        401,
        "unauthorized",
    );

    let bearer = format!("Bearer {token}");
    let ok = request(addr, "GET", "/api/v1/info", &[("Authorization", &bearer)], None);
    assert_eq!(ok.status, 200, "{}", ok.text());
    let metrics = request(addr, "GET", "/metrics", &[("Authorization", &bearer)], None);
    assert_eq!(metrics.status, 200);
    let wrong = request(
        addr,
        "GET",
        "/api/v1/info",
        &[("Authorization", "Bearer a-long-enough-test-token-1235")],
        None,
    );
    assert_error(&wrong, 401, "unauthorized");

    // "admin:s3cret pass" and "admin:wrong".
    let basic = request(
        addr,
        "GET",
        "/api/v1/info",
        &[("Authorization", "Basic YWRtaW46czNjcmV0IHBhc3M=")],
        None,
    );
    assert_eq!(basic.status, 200, "{}", basic.text());
    let bad = request(
        addr,
        "GET",
        "/api/v1/info",
        &[("Authorization", "Basic YWRtaW46d3Jvbmc=")],
        None,
    );
    assert_error(&bad, 401, "unauthorized");
    let garbage = request(
        addr,
        "GET",
        "/api/v1/info",
        &[("Authorization", "Basic !!!")],
        None,
    );
    assert_error(&garbage, 401, "unauthorized");
    let scheme = request(
        addr,
        "GET",
        "/api/v1/info",
        &[("Authorization", "Digest x")],
        None,
    );
    assert_error(&scheme, 401, "unauthorized");

    // What needs no credentials: health, the OpenAPI document, the web view's files.
    assert_eq!(get(addr, "/api/v1/health").status, 200);
    assert_eq!(get(addr, "/api/v1/openapi.json").status, 200);
    assert_eq!(get(addr, "/").status, 200);
}

#[test]
fn anonymous_requests_only_from_loopback_by_default() {
    let midge = Midge::start("http_listener 0");
    let addr = http_addr(&midge);
    let loopback = SocketAddr::from(([127, 0, 0, 1], addr.port()));
    assert_eq!(get(loopback, "/api/v1/info").status, 200);
    // The machine's own non-loopback address, if it has one (no packet is sent).
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let outside = probe
        .connect("10.255.255.255:9")
        .ok()
        .and_then(|()| probe.local_addr().ok());
    match outside {
        Some(local) if !local.ip().is_loopback() && !local.ip().is_unspecified() => {
            let remote = SocketAddr::new(local.ip(), addr.port());
            assert_error(&get(remote, "/api/v1/info"), 401, "unauthorized");
            assert_eq!(get(remote, "/api/v1/health").status, 200);
        }
        _ => eprintln!("no non-loopback address on this machine; the refusal is covered by unit tests"),
    }
}

#[test]
fn https_with_the_broker_certificate_directives() {
    let pki = support::pki::Pki::new();
    let midge = Midge::start(&format!(
        "http_listener 0 127.0.0.1\nhttp_certfile {}\nhttp_keyfile {}",
        pki.path("server.pem").display(),
        pki.path("server.key").display()
    ));
    let line = midge.wait_for_log("HTTP API and web view on ");
    assert!(line.contains("https://127.0.0.1:"), "{line}");
    let addr = http_addr(&midge);
    let answer = http::request_tls(addr, &pki.path("ca.pem"), "/api/v1/health").unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json(), json!({"status": "ok"}));
    assert!(http::request_tls(addr, &pki.path("rogue-ca.pem"), "/api/v1/health").is_err());
    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    std::io::Write::write_all(&mut stream, b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut raw);
    assert!(!raw.starts_with(b"HTTP/1.1 200"));
}

#[test]
fn bad_http_directives_stop_the_start_with_file_and_line() {
    for (line, needle) in [
        (
            "http_auth_token short",
            "http_auth_token: expected a token of at least 16",
        ),
        ("http_listener lots", "http_listener: expected"),
        ("http_allow_anonymous perhaps", "http_allow_anonymous: expected"),
        ("http_log_lines -1", "http_log_lines: expected"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("m.conf");
        std::fs::write(&conf, format!("listener 0 127.0.0.1\n{line}\n")).unwrap();
        let (code, output) = support::run_midge(&["-c", conf.to_str().unwrap()], WAIT);
        assert_ne!(code, Some(0), "{line}");
        assert!(
            output.contains(&format!("m.conf:2: {needle}")),
            "{line}: {output}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("m.conf");
    std::fs::write(
        &conf,
        "listener 0 127.0.0.1\nhttp_listener 0 127.0.0.1\nhttp_certfile /nonexistent/cert.pem\nhttp_keyfile /nonexistent/key.pem\n",
    )
    .unwrap();
    let (code, output) = support::run_midge(&["-c", conf.to_str().unwrap()], WAIT);
    assert_ne!(code, Some(0));
    assert!(
        output.contains("http_listener 0") && output.contains("/nonexistent/cert.pem"),
        "{output}"
    );
}

#[test]
fn the_openapi_document_covers_every_route_and_the_web_view_is_served() {
    let (_midge, addr) = broker("");
    let doc: Value = get(addr, "/api/v1/openapi.json").json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/health", "get"),
        ("/api/v1/info", "get"),
        ("/api/v1/sessions", "get"),
        ("/api/v1/sessions/{client_id}", "get"),
        ("/api/v1/sessions/{client_id}", "delete"),
        ("/api/v1/clients", "get"),
        ("/api/v1/clients/{client_id}/disconnect", "post"),
        ("/api/v1/publish", "post"),
        ("/api/v1/retained", "get"),
        ("/api/v1/retained", "delete"),
        ("/api/v1/retained/{topic}", "get"),
        ("/api/v1/retained/{topic}", "delete"),
        ("/api/v1/logs", "get"),
        ("/api/v1/topics", "get"),
        ("/metrics", "get"),
    ] {
        let operation = &paths[path][method];
        assert!(operation.is_object(), "{method} {path} missing");
        if path != "/api/v1/health" {
            assert!(
                operation["responses"]["401"].is_object(),
                "{method} {path} has no 401"
            );
        }
    }
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    let page = get(addr, "/");
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    assert!(page.text().contains("<script src=\"/app.js\">"));
    assert!(get(addr, "/app.js").text().contains("/api/v1/topics"));
    assert!(
        get(addr, "/style.css")
            .header("content-type")
            .unwrap()
            .starts_with("text/css")
    );
}
