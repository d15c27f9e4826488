//! Starting and stopping `midge` as Mosquitto users do: the command line, mosquitto.conf errors
//! and warnings, local-only mode, pid files, signals.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

mod support;

use std::time::Duration;

use midge_codec::{Connect, Packet, ProtocolVersion, ReasonCode};
use support::{Midge, RawClient, run_midge};

#[test]
fn help_lists_mosquittos_flags() {
    for flag in ["-h", "--help"] {
        let (code, output) = run_midge(&[flag], Duration::from_secs(10));
        assert_eq!(code, Some(0), "{output}");
        for option in ["-c", "-d", "-p", "-v"] {
            assert!(output.contains(option), "{flag}: no {option} in\n{output}");
        }
    }
    let (code, output) = run_midge(&["--version"], Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert!(output.contains(env!("CARGO_PKG_VERSION")), "{output}");
}

#[test]
fn local_only_mode_serves_loopback_with_anonymous_clients() {
    let port = support::free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_midge"))
        .args(["-p", &port.to_string()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut client = RawClient::connect(support::wait_for_port(port), ProtocolVersion::V311);
    client.send(&Packet::Connect(Box::new(Connect::new(
        ProtocolVersion::V311,
        "local",
    ))));
    let Packet::ConnAck(connack) = client.recv() else {
        panic!("expected CONNACK")
    };
    assert_eq!(connack.reason_code, ReasonCode::Success);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_bad_line_stops_the_start_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.conf");
    std::fs::write(&path, "listener 0 127.0.0.1\nmax_queued_messages lots\n").unwrap();
    let (code, output) = run_midge(&["-c", path.to_str().unwrap()], Duration::from_secs(10));
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains(&format!(
            "{}:2: max_queued_messages: expected a whole number, got \"lots\"",
            path.display()
        )),
        "{output}"
    );
}

#[test]
fn a_missing_file_is_an_error() {
    let (code, output) = run_midge(&["-c", "/nonexistent/midge.conf"], Duration::from_secs(10));
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains("/nonexistent/midge.conf"), "{output}");
}

#[test]
fn unknown_directives_warn_with_file_and_line() {
    let midge = Midge::start("max_inflight_mesages 10");
    let line = midge.wait_for_log("max_inflight_mesages");
    assert!(line.contains("mosquitto.conf:3:"), "{line}");
    assert!(line.contains("did you mean \"max_inflight_messages\""), "{line}");
}

#[test]
fn sigterm_disconnects_v5_clients_with_0x8b_and_exits_cleanly() {
    let mut midge = Midge::start("");
    let mut v5 = RawClient::connect(midge.addr(), ProtocolVersion::V5);
    v5.send(&Packet::Connect(Box::new(Connect::new(
        ProtocolVersion::V5,
        "v5",
    ))));
    assert!(matches!(v5.recv(), Packet::ConnAck(_)));
    let mut v311 = RawClient::connect(midge.addr(), ProtocolVersion::V311);
    v311.send(&Packet::Connect(Box::new(Connect::new(
        ProtocolVersion::V311,
        "v311",
    ))));
    assert!(matches!(v311.recv(), Packet::ConnAck(_)));

    midge.signal("TERM");
    match v5.recv() {
        Packet::Disconnect(d) => assert_eq!(d.reason_code, ReasonCode::ServerShuttingDown),
        other => panic!("expected DISCONNECT 0x8B, got {other:?}"),
    }
    assert!(v5.expect_close().is_empty());
    // MQTT 3.1.1 has no server DISCONNECT: the socket just closes.
    assert!(v311.expect_close().is_empty());
    assert_eq!(midge.wait_exit(), Some(0));
}

#[test]
fn sigint_stops_too() {
    let mut midge = Midge::start("");
    midge.signal("INT");
    assert_eq!(midge.wait_exit(), Some(0));
    assert!(midge.logs().iter().any(|l| l.contains("terminating")));
}

#[test]
fn pid_file_is_written_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let pid_path = dir.path().join("midge.pid");
    let mut midge = Midge::start(&format!("pid_file {}", pid_path.display()));
    let written = std::fs::read_to_string(&pid_path).unwrap();
    assert_eq!(written.trim(), midge.pid().to_string());
    midge.signal("TERM");
    assert_eq!(midge.wait_exit(), Some(0));
    assert!(!pid_path.exists());
}

#[test]
fn daemon_mode_detaches_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let pid_path = dir.path().join("midge.pid");
    let port = support::free_port();
    let conf = dir.path().join("d.conf");
    std::fs::write(
        &conf,
        format!(
            "user root\nlistener {port} 127.0.0.1\nallow_anonymous true\npid_file {}\n",
            pid_path.display()
        ),
    )
    .unwrap();
    // `-d` returns at once; the daemon writes its pid file.
    let (code, output) = run_midge(&["-c", conf.to_str().unwrap(), "-d"], Duration::from_secs(10));
    assert_eq!(code, Some(0), "{output}");
    let deadline = std::time::Instant::now() + support::WAIT;
    let pid = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_path)
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
        {
            break pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no pid file from the daemon"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut client = RawClient::connect(support::wait_for_port(port), ProtocolVersion::V311);
    client.send(&Packet::Connect(Box::new(Connect::new(
        ProtocolVersion::V311,
        "d",
    ))));
    assert!(matches!(client.recv(), Packet::ConnAck(_)));
    let status = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
    while pid_path.exists() {
        assert!(
            std::time::Instant::now() < deadline + support::WAIT,
            "daemon did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn unix_socket_listeners_serve_mqtt_and_replace_a_stale_socket() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mqtt.sock");
    // A stale socket file from an earlier run.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let midge = Midge::start_with_config(&format!(
        "listener 0 127.0.0.1\nlistener 0 {}\nallow_anonymous true\n",
        path.display()
    ));
    midge.wait_for_log("Opening unix listen socket");
    let mut stream = std::os::unix::net::UnixStream::connect(&path).unwrap();
    stream.set_read_timeout(Some(support::WAIT)).unwrap();
    let mut connect = bytes::BytesMut::new();
    Packet::Connect(Box::new(Connect::new(ProtocolVersion::V311, "over-unix")))
        .encode(ProtocolVersion::V311, &mut connect)
        .unwrap();
    stream.write_all(&connect).unwrap();
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).unwrap();
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00]);
    midge.wait_for_log("New client connected from unix socket as over-unix");
}

#[test]
fn a_bad_port_on_the_command_line_is_refused_with_usage() {
    let (code, output) = run_midge(&["-p", "notaport"], Duration::from_secs(10));
    assert_eq!(code, Some(2), "{output}");
    assert!(output.contains("notaport"), "{output}");
}

#[test]
fn a_missing_password_file_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("midge.conf");
    std::fs::write(&conf, "listener 0 127.0.0.1\npassword_file /nonexistent/passwd\n").unwrap();
    let (code, output) = run_midge(&["-c", conf.to_str().unwrap()], Duration::from_secs(10));
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains("/nonexistent/passwd"), "{output}");
}

/// A number from a line of a /proc file: the first field after `label`.
fn proc_field(path: &str, label: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|line| line.starts_with(label))?;
    line[label.len()..].split_whitespace().next().map(str::to_owned)
}

/// A burst of connections must not wait for the kernel to grow the descriptor table (each
/// growth in a threaded process waits for an RCU grace period): the broker grows it before its
/// threads start, to its open-files limit (at most 65,536 slots).
#[test]
fn the_descriptor_table_is_grown_before_clients_arrive() {
    let midge = Midge::start("");
    let pid = midge.pid();
    let soft = proc_field(&format!("/proc/{pid}/limits"), "Max open files").unwrap();
    let wanted = soft.parse::<u64>().map_or(65_536, |soft| soft.min(65_536));
    let slots: u64 = proc_field(&format!("/proc/{pid}/status"), "FDSize:")
        .unwrap()
        .parse()
        .unwrap();
    // Without the growth the table holds 64 slots plus the few the start opened.
    assert!(slots >= wanted, "FDSize {slots}, open-files limit {soft}");
}
