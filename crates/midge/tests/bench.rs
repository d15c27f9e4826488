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
    for qos in ["0", "1", "2"] {
        let json = bench(&[
            "bench", "pairs", "-p", &port, "-c", "3", "-q", qos, "-r", "200", "-d", "2", "-w", "1", "--json",
            "--quiet", "--pid", &pid,
        ]);
        let sent = field(&json, "sent");
        assert!(
            sent >= 3.0 * 200.0 * 2.5,
            "QoS {qos}: sent {sent} in 3 s at 3 x 200/s: {json}"
        );
        assert_eq!(field(&json, "received"), sent, "QoS {qos}: {json}");
        assert_eq!(field(&json, "lost"), 0.0, "QoS {qos}: {json}");
        assert_eq!(field(&json, "duplicated"), 0.0, "QoS {qos}: {json}");
        if qos != "0" {
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
    let port = support::free_port().to_string();
    let (code, output) = run_midge(
        &["bench", "pairs", "-p", &port, "-c", "1"],
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains("cannot connect"), "{output}");
}
