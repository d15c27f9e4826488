//! `midge bench` against a running Midge: the figures it reports add up (everything sent at a
//! rate the broker keeps up with arrives once, with latencies), `conn` opens what it is told,
//! and a bad command line is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

mod support;

use std::time::Duration;

use support::{Midge, run_midge};

/// The value of a numeric field of the one-line JSON summary.
fn field(json: &str, name: &str) -> f64 {
    let key = format!("\"{name}\":");
    let rest = &json[json.find(&key).unwrap_or_else(|| panic!("no {name} in {json}")) + key.len()..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number in {json}"))
}

fn bench(args: &[&str]) -> String {
    let (code, output) = run_midge(args, Duration::from_secs(60));
    assert_eq!(code, Some(0), "midge {args:?}:\n{output}");
    output
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON summary in:\n{output}"))
        .to_owned()
}

#[test]
fn pairs_at_a_steady_rate_deliver_everything_once_with_latencies() {
    let midge = Midge::start("");
    let port = midge.port().to_string();
    let pid = midge.pid().to_string();
    for (engine, qos) in [
        ("raw", "0"),
        ("raw", "1"),
        ("raw", "2"),
        ("client", "0"),
        ("client", "1"),
        ("client", "2"),
    ] {
        let json = bench(&[
            "bench", "pairs", "-p", &port, "-c", "3", "-q", qos, "-r", "200", "-d", "2", "-w", "1", "--json",
            "--quiet", "--pid", &pid, "--engine", engine,
        ]);
        let qos = format!("{qos} ({engine})");
        let sent = field(&json, "sent");
        assert!(
            sent >= 3.0 * 200.0 * 2.5,
            "QoS {qos}: sent {sent} in 3 s at 3 x 200/s: {json}"
        );
        assert_eq!(field(&json, "received"), sent, "QoS {qos}: {json}");
        assert_eq!(field(&json, "lost"), 0.0, "QoS {qos}: {json}");
        assert_eq!(field(&json, "duplicated"), 0.0, "QoS {qos}: {json}");
        if !qos.starts_with('0') {
            assert_eq!(field(&json, "acked"), sent, "QoS {qos}: {json}");
        }
        let rate = field(&json, "received_per_second");
        assert!(
            (500.0..=700.0).contains(&rate),
            "QoS {qos}: 3 x 200 msg/s, measured {rate}: {json}"
        );
        assert!(field(&json, "latency_p50_us") <= field(&json, "latency_p99_us"));
        assert!(field(&json, "latency_max_us") > 0.0);
        assert!(field(&json, "broker_rss_bytes") > 0.0, "{json}");
    }
}

#[test]
fn fanout_counts_every_delivery_and_conn_opens_every_connection() {
    let midge = Midge::start("");
    let port = midge.port().to_string();
    let json = bench(&[
        "bench", "fanout", "-p", &port, "-c", "4", "-q", "1", "-r", "100", "-d", "1", "-w", "0", "--json",
        "--quiet",
    ]);
    assert_eq!(field(&json, "received"), 4.0 * field(&json, "sent"), "{json}");
    assert_eq!(field(&json, "lost"), 0.0, "{json}");

    let json = bench(&[
        "bench",
        "conn",
        "-p",
        &port,
        "-c",
        "200",
        "--parallel",
        "8",
        "-d",
        "0",
        "--json",
    ]);
    assert_eq!(field(&json, "connected"), 200.0, "{json}");
    assert!(field(&json, "connections_per_second") > 0.0);
    assert_eq!(field(&json, "errors"), 0.0);
}

#[test]
fn on_one_thread_shared_and_qos2_flows_deliver_everything_and_the_bench_reports_its_own_cpu() {
    let midge = Midge::start("");
    let port = midge.port().to_string();
    // `--threads 1` is how `taskset -c 1 midge bench` runs: everything on one thread.
    let json = bench(&[
        "bench",
        "pairs",
        "-p",
        &port,
        "-c",
        "4",
        "-q",
        "2",
        "-r",
        "300",
        "-d",
        "1",
        "-w",
        "1",
        "--json",
        "--quiet",
        "--threads",
        "1",
        "--engine",
        "client",
    ]);
    let sent = field(&json, "sent");
    assert!(sent >= 4.0 * 300.0 * 1.5, "{json}");
    assert_eq!(field(&json, "received"), sent, "{json}");
    assert_eq!(field(&json, "acked"), sent, "{json}");
    assert_eq!(
        (field(&json, "lost"), field(&json, "duplicated")),
        (0.0, 0.0),
        "{json}"
    );
    let cpu = field(&json, "bench_cpu_percent");
    assert!((0.0..=150.0).contains(&cpu), "{json}");

    let json = bench(&[
        "bench",
        "shared",
        "-p",
        &port,
        "-c",
        "3",
        "--publishers",
        "2",
        "-q",
        "1",
        "-r",
        "300",
        "-d",
        "1",
        "-w",
        "0",
        "--json",
        "--quiet",
        "--threads",
        "1",
    ]);
    assert_eq!(field(&json, "received"), field(&json, "sent"), "{json}");
    assert_eq!(field(&json, "lost"), 0.0, "{json}");
}

#[test]
fn a_bad_command_line_or_an_absent_broker_fails_clearly() {
    let (code, output) = run_midge(&["bench", "sideways"], Duration::from_secs(10));
    assert_eq!(code, Some(2), "{output}");
    assert!(output.contains("invalid value 'sideways'"), "{output}");
    let (code, output) = run_midge(&["bench", "pairs", "-q", "3"], Duration::from_secs(10));
    assert_eq!(code, Some(2), "{output}");
    let (code, output) = run_midge(&["bench", "pairs", "--engine", "turbo"], Duration::from_secs(10));
    assert_eq!(code, Some(2), "{output}");
    assert!(output.contains("invalid value 'turbo'"), "{output}");
    let port = support::free_port().to_string();
    let (code, output) = run_midge(
        &["bench", "pairs", "-p", &port, "-c", "1"],
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains("cannot connect"), "{output}");
}

#[test]
fn the_raw_engine_delivers_everything_once_flat_out_in_both_versions_and_every_scenario() {
    // No queue limit: flat out, a subscriber slowed by other tests must not see the broker
    // drop what it cannot queue (that loss is the broker's, and real).
    let midge = Midge::start("max_queued_messages 0");
    let port = midge.port().to_string();
    for (scenario, clients, qos, version, copies) in [
        ("pairs", "4", "1", "311", 1.0),
        ("pairs", "4", "2", "5", 1.0),
        ("fanin", "4", "1", "5", 1.0),
        ("fanout", "4", "1", "311", 4.0),
    ] {
        let json = bench(&[
            "bench", scenario, "-p", &port, "-c", clients, "-q", qos, "-V", version, "-d", "1", "-w", "0",
            "--json", "--quiet", "--engine", "raw",
        ]);
        let sent = field(&json, "sent");
        assert!(sent > 1000.0, "{scenario} flat out: {json}");
        assert_eq!(field(&json, "acked"), sent, "{scenario}: {json}");
        assert_eq!(field(&json, "received"), copies * sent, "{scenario}: {json}");
        assert_eq!(
            (
                field(&json, "lost"),
                field(&json, "duplicated"),
                field(&json, "errors")
            ),
            (0.0, 0.0, 0.0),
            "{scenario}: {json}"
        );
    }
    // `sub` only listens, `pub` only sends: both end in time with nothing lost.
    let json = bench(&[
        "bench", "pub", "-p", &port, "-c", "2", "-q", "1", "-d", "1", "-w", "0", "--json", "--quiet",
    ]);
    assert_eq!(field(&json, "acked"), field(&json, "sent"), "{json}");
    let json = bench(&[
        "bench", "sub", "-p", &port, "-c", "2", "-d", "1", "-w", "0", "--json", "--quiet",
    ]);
    assert_eq!(field(&json, "received"), 0.0, "{json}");
}

/// A broker of the test's own for `pairs -c 1 -q 0`: it takes the subscriber's CONNECT and
/// SUBSCRIBE, then the publisher's CONNECT, and forwards the publications to the subscriber,
/// dropping every 10th, sending every 7th twice and writing each in two pieces (so that packets
/// straddle the subscriber's reads). After `close_after` messages, if given, it closes both
/// connections. Returns its port.
fn mischievous_broker(close_after: Option<u64>) -> u16 {
    use std::io::{Read, Write};

    use bytes::BytesMut;
    use midge_codec::{Decoder, Packet};

    fn next(stream: &mut std::net::TcpStream, buf: &mut BytesMut) -> Option<Packet> {
        let decoder = Decoder::default();
        loop {
            if let Some(packet) = decoder.decode(buf).expect("a well-formed packet") {
                return Some(packet);
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut subscriber, mut from_subscriber) = (listener.accept().unwrap().0, BytesMut::new());
        subscriber.set_nodelay(true).unwrap();
        assert!(matches!(
            next(&mut subscriber, &mut from_subscriber),
            Some(Packet::Connect(_))
        ));
        subscriber.write_all(&[0x20, 2, 0, 0]).unwrap();
        let Some(Packet::Subscribe(subscribe)) = next(&mut subscriber, &mut from_subscriber) else {
            panic!("no SUBSCRIBE");
        };
        let [high, low] = subscribe.packet_id.get().to_be_bytes();
        subscriber.write_all(&[0x90, 3, high, low, 0]).unwrap();
        let (mut publisher, mut from_publisher) = (listener.accept().unwrap().0, BytesMut::new());
        assert!(matches!(
            next(&mut publisher, &mut from_publisher),
            Some(Packet::Connect(_))
        ));
        publisher.write_all(&[0x20, 2, 0, 0]).unwrap();
        let mut count = 0u64;
        while let Some(Packet::Publish(publish)) = next(&mut publisher, &mut from_publisher) {
            count += 1;
            if close_after == Some(count) {
                return;
            }
            let mut bytes = BytesMut::new();
            publish
                .encode(midge_codec::ProtocolVersion::V311, &mut bytes)
                .unwrap();
            let copies = if count.is_multiple_of(10) {
                0
            } else if count.is_multiple_of(7) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let cut = (count as usize * 13) % bytes.len();
                if subscriber.write_all(&bytes[..cut]).is_err()
                    || subscriber.write_all(&bytes[cut..]).is_err()
                {
                    return;
                }
            }
        }
    });
    port
}

#[test]
fn the_raw_engine_counts_what_a_broker_drops_or_sends_twice() {
    let port = mischievous_broker(None).to_string();
    let json = bench(&[
        "bench", "pairs", "-p", &port, "-c", "1", "-q", "0", "-r", "500", "-d", "2", "-w", "0", "--json",
        "--quiet", "--engine", "raw",
    ]);
    let sent = field(&json, "sent") as u64;
    assert_eq!(sent, 1000, "{json}");
    assert_eq!(field(&json, "lost") as u64, sent / 10, "every 10th: {json}");
    assert_eq!(
        field(&json, "duplicated") as u64,
        sent / 7 - sent / 70,
        "every 7th that was not dropped: {json}"
    );
    assert_eq!(
        field(&json, "received") as u64,
        sent - sent / 10 + sent / 7 - sent / 70,
        "{json}"
    );
}

#[test]
fn the_raw_engine_ends_with_an_error_when_the_broker_closes_the_connections() {
    let port = mischievous_broker(Some(300)).to_string();
    let started = std::time::Instant::now();
    let (code, output) = run_midge(
        &[
            "bench", "pairs", "-p", &port, "-c", "1", "-q", "0", "-r", "500", "-d", "20", "-w", "0",
            "--quiet", "--engine", "raw",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains("Error: "), "{output}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}: {output}",
        started.elapsed()
    );
}

#[test]
fn the_raw_engine_ends_with_an_error_when_the_broker_dies_mid_run() {
    for qos in ["0", "1"] {
        let midge = Midge::start("");
        let port = midge.port().to_string();
        let started = std::time::Instant::now();
        let bench = std::thread::spawn(move || {
            run_midge(
                &[
                    "bench", "pairs", "-p", &port, "-c", "4", "-q", qos, "-d", "20", "-w", "0", "--quiet",
                    "--engine", "raw",
                ],
                Duration::from_secs(60),
            )
        });
        std::thread::sleep(Duration::from_millis(1500));
        midge.signal("KILL");
        let (code, output) = bench.join().unwrap();
        assert_eq!(code, Some(1), "QoS {qos}: {output}");
        assert!(output.contains("Error: "), "QoS {qos}: {output}");
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "QoS {qos}: {:?}: {output}",
            started.elapsed()
        );
    }
}
