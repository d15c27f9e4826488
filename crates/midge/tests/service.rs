//! Running as a system service: `user` (privileges dropped after the listeners open, checked in
//! /proc/PID/status), the pid file, systemd's readiness notification, `log_format json`, the
//! log file reopened on SIGHUP for logrotate, `log_dest syslog`, `log_timestamp_format`, and the
//! generated completions and man pages.
//!
//! The `user` tests need root (CI runs as root); as another user they say so and pass, since
//! `user` then has no effect, which `user_has_no_effect_without_root` checks instead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use midge_codec::{Disconnect, Packet, ProtocolVersion, ReasonCode};
use nix::unistd::{Uid, User};
use support::{Midge, RawClient, WAIT, free_port, run_midge, wait_for_port};

fn is_root() -> bool {
    Uid::effective().is_root()
}

/// A broker process started on a config written into `dir`, stderr collected.
struct Broker {
    child: Child,
    port: u16,
}

impl Broker {
    fn start(dir: &Path, config: &str, env: &[(&str, &Path)]) -> Self {
        let port = free_port();
        let path = dir.join("midge.conf");
        std::fs::write(
            &path,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\n{config}\n"),
        )
        .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_midge"));
        command
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        // Ready is told the way systemd hears it: the listening socket alone comes before the
        // switch of user, which the tests look at.
        let ready = (!env.iter().any(|(name, _)| *name == "NOTIFY_SOCKET")).then(|| {
            let socket_path = dir.join("ready.sock");
            let socket = UnixDatagram::bind(&socket_path).unwrap();
            socket.set_read_timeout(Some(WAIT)).unwrap();
            command.env("NOTIFY_SOCKET", &socket_path);
            socket
        });
        let child = command.spawn().unwrap();
        wait_for_port(port);
        if let Some(socket) = ready {
            let mut buf = [0u8; 256];
            // A broker that fails to start says nothing; its test reads why from stderr.
            let _ = socket.recv(&mut buf);
        }
        Self { child, port }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Stops the broker with SIGTERM and returns its exit code and standard error.
    fn stop(mut self) -> (Option<i32>, String) {
        self.signal("TERM");
        let deadline = Instant::now() + WAIT;
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "midge did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap())
            .wait_with_output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `Uid:` or `Gid:` line of /proc/PID/status: real, effective, saved and filesystem ids.
fn proc_ids(pid: u32, key: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .unwrap()
        .split_whitespace()
        .map(|id| id.parse().unwrap())
        .collect()
}

/// Connects and disconnects one client, so that the log has a connect and a disconnect.
fn visit(port: u16, client_id: &str) {
    let mut client = RawClient::session(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        ProtocolVersion::V5,
        client_id,
    );
    client.send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)));
    client.expect_close();
}

/// Waits until `path` holds a line containing `needle`.
fn wait_for_line(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Some(line) = text.lines().find(|line| line.contains(needle))
        {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no line with {needle:?} in {}:\n{}",
            path.display(),
            std::fs::read_to_string(path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn json_log_lines_parse_and_carry_the_stable_fields() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("midge.log");
    let broker = Broker::start(
        dir.path(),
        &format!("user root\nlog_format json\nlog_dest file {}\n", log.display()),
        &[],
    );
    visit(broker.port, "json-client");
    wait_for_line(&log, "client.disconnected");
    let (code, _) = broker.stop();
    assert_eq!(code, Some(0));

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    for line in &lines {
        for field in ["time", "level", "event", "client_id", "peer", "reason", "message"] {
            assert!(line.get(field).is_some(), "no {field} in {line}");
        }
        let time = line["time"].as_str().unwrap();
        assert!(
            time.len() == 27 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "{time}"
        );
        assert!(
            ["error", "warning", "info", "debug"].contains(&line["level"].as_str().unwrap()),
            "{line}"
        );
    }
    let find = |event: &str| {
        lines
            .iter()
            .find(|line| line["event"] == event)
            .unwrap_or_else(|| panic!("no {event} line in:\n{text}"))
    };
    assert!(
        find("broker.starting")["message"]
            .as_str()
            .unwrap()
            .starts_with("midge version ")
    );
    assert!(
        find("listener.opened")["message"]
            .as_str()
            .unwrap()
            .contains(&broker_port_text(&text))
    );
    let connected = find("client.connected");
    assert_eq!(connected["client_id"], "json-client");
    assert!(
        connected["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{connected}"
    );
    assert!(
        connected["message"]
            .as_str()
            .unwrap()
            .starts_with("New client connected from 127.0.0.1:")
    );
    let disconnected = find("client.disconnected");
    assert_eq!(disconnected["client_id"], "json-client");
    assert_eq!(disconnected["peer"], connected["peer"]);
    assert_eq!(disconnected["reason"], "disconnected");
    assert!(find("broker.terminating")["reason"].is_null());
}

/// The port as the listener line writes it.
fn broker_port_text(log: &str) -> String {
    let at = log.find("listen socket on port ").unwrap();
    log[at..].split('.').next().unwrap().to_owned()
}

#[test]
fn sighup_reopens_the_log_file_so_logrotate_can_move_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("midge.log");
    let broker = Broker::start(
        dir.path(),
        &format!("user root\nlog_dest file {}\n", log.display()),
        &[],
    );
    wait_for_line(&log, "running");
    // What logrotate does: move the file, then tell the broker (its postrotate).
    let rotated = dir.path().join("midge.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    visit(broker.port, "before-hup");
    wait_for_line(&rotated, "before-hup");
    broker.signal("HUP");
    wait_for_line(&log, "Reloading config.");
    visit(broker.port, "after-hup");
    wait_for_line(&log, "after-hup");
    let (code, _) = broker.stop();
    assert_eq!(code, Some(0));
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(!old.contains("after-hup"), "{old}");
    assert!(!old.contains("Reloading config."), "{old}");
    assert!(std::fs::read_to_string(&log).unwrap().contains("terminating"));
}

#[test]
fn log_timestamp_format_is_applied_in_utc() {
    let midge = Midge::start("log_timestamp_format %Y-%m-%dT%H:%M:%S");
    let line = midge.wait_for_log("running");
    let (stamp, message) = line.split_once(": ").unwrap();
    let bytes = stamp.as_bytes();
    assert!(
        stamp.len() == 19 && bytes[4] == b'-' && bytes[10] == b'T' && bytes[13] == b':',
        "{line}"
    );
    assert!(message.starts_with("midge version"), "{line}");
    let year: i32 = stamp[..4].parse().unwrap();
    assert!(year >= 2024, "{line}");
}

#[test]
fn privileges_drop_to_the_configured_user_once_the_listeners_are_open() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let nobody = User::from_name("nobody").unwrap().expect("a nobody user");
    let dir = tempfile::tempdir().unwrap();
    // The pid file is written as the user, as Mosquitto does: give it a directory it may use.
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    nix::unistd::chown(&run, Some(nobody.uid), Some(nobody.gid)).unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let pid_file = run.join("midge.pid");
    let log = dir.path().join("midge.log");
    let broker = Broker::start(
        dir.path(),
        &format!(
            "user nobody\npid_file {}\nlog_dest file {}\n",
            pid_file.display(),
            log.display()
        ),
        &[],
    );
    wait_for_line(&log, "running");
    let uid = nobody.uid.as_raw();
    let gid = nobody.gid.as_raw();
    assert_eq!(proc_ids(broker.pid(), "Uid:"), [uid; 4]);
    assert_eq!(proc_ids(broker.pid(), "Gid:"), [gid; 4]);
    // The log file was created by root before the switch, and handed to the user.
    let meta = std::fs::metadata(&log).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (uid, gid));
    let written = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(written.trim(), broker.pid().to_string());
    assert_eq!(std::fs::metadata(&pid_file).unwrap().uid(), uid);
    assert!(wait_for_line(&log, "Running as user nobody").contains(&format!("(uid {uid}, gid {gid})")));
    // Still serving.
    visit(broker.port, "as-nobody");
    let (code, _) = broker.stop();
    assert_eq!(code, Some(0));
    assert!(!pid_file.exists(), "the user removes its pid file at exit");
}

#[test]
fn the_default_user_is_mosquitto_or_else_nobody_with_mosquittos_warning() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), "", &[]);
    let expected = match User::from_name("mosquitto").unwrap() {
        Some(user) => user,
        None => User::from_name("nobody").unwrap().expect("a nobody user"),
    };
    assert_eq!(proc_ids(broker.pid(), "Uid:"), [expected.uid.as_raw(); 4]);
    let (_, log) = broker.stop();
    let warned = log.contains(
        "Warning: Unable to drop privileges to 'mosquitto' because this user does not exist. Trying 'nobody' \
         instead.",
    );
    assert_eq!(warned, expected.name == "nobody", "{log}");
}

#[test]
fn user_root_stays_root_with_a_warning() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), "user root", &[]);
    assert_eq!(proc_ids(broker.pid(), "Uid:"), [0; 4]);
    let (_, log) = broker.stop();
    assert!(
        log.contains("Warning: Midge should not be run as root/administrator."),
        "{log}"
    );
}

#[test]
fn an_unknown_user_stops_the_start_with_mosquittos_message() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("midge.conf");
    std::fs::write(&path, "listener 0 127.0.0.1\nuser no-such-midge-user\n").unwrap();
    let (code, output) = run_midge(&["-c", path.to_str().unwrap()], Duration::from_secs(10));
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains(
            "Error: Unable to drop privileges to 'no-such-midge-user' because this user does not exist."
        ),
        "{output}"
    );
}

#[test]
fn user_has_no_effect_without_root() {
    // A user that does not exist, which would stop a broker started as root.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let port = free_port();
    let path = dir.path().join("midge.conf");
    std::fs::write(
        &path,
        format!("listener {port} 127.0.0.1\nuser no-such-midge-user\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let mut command = if is_root() {
        let mut command = Command::new("setpriv");
        command.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]);
        command.arg(env!("CARGO_BIN_EXE_midge"));
        command
    } else {
        Command::new(env!("CARGO_BIN_EXE_midge"))
    };
    let mut child = command
        .arg("-c")
        .arg(&path)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn systemd_hears_ready_once_serving_and_stopping_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path: PathBuf = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let broker = Broker::start(dir.path(), "user root", &[("NOTIFY_SOCKET", &socket_path)]);
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("READY=1 from midge");
    let ready = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    // Ready means serving.
    visit(broker.port, "after-ready");
    broker.signal("TERM");
    let n = socket.recv(&mut buf).expect("STOPPING=1 from midge");
    assert_eq!(&buf[..n], b"STOPPING=1\n");
    let (code, _) = broker.stop();
    assert_eq!(code, Some(0));
}

/// Removes /dev/log when dropped.
struct DevLog(UnixDatagram);

impl Drop for DevLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file("/dev/log");
    }
}

#[test]
fn syslog_lines_carry_the_facility_and_the_program_name() {
    if !is_root() || Path::new("/dev/log").exists() {
        eprintln!("skipped: needs root and no syslog daemon on /dev/log, to stand in for one");
        return;
    }
    let dev_log = DevLog(UnixDatagram::bind("/dev/log").unwrap());
    dev_log.0.set_read_timeout(Some(WAIT)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), "user root\nlog_dest syslog\nlog_facility 3", &[]);
    let pid = broker.pid();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + WAIT;
    let running = loop {
        let n = dev_log.0.recv(&mut buf).expect("a syslog line");
        let line = String::from_utf8_lossy(&buf[..n]).into_owned();
        if line.contains("running") {
            break line;
        }
        assert!(Instant::now() < deadline);
    };
    // local3 (19) * 8 + info (6).
    assert!(running.starts_with("<158>"), "{running}");
    assert!(
        running.contains(&format!("midge[{pid}]: midge version ")),
        "{running}"
    );
    let (code, stderr) = broker.stop();
    assert_eq!(code, Some(0));
    assert!(!stderr.contains("running"), "syslog only: {stderr}");
}

#[test]
fn shell_completions_are_printed_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _midge"),
        ("zsh", "#compdef midge"),
        ("fish", "complete -c midge"),
    ] {
        let (code, output) = run_midge(&["completions", shell], Duration::from_secs(10));
        assert_eq!(code, Some(0), "{shell}: {output}");
        assert!(output.contains(marker), "{shell}: {output}");
        assert!(output.contains("config-file"), "{shell}: {output}");
        assert!(output.contains("passwd"), "{shell}: {output}");
    }
    let (code, output) = run_midge(&["completions", "tcsh"], Duration::from_secs(10));
    assert_eq!(code, Some(1));
    assert!(
        output.contains("Usage: midge completions bash|zsh|fish"),
        "{output}"
    );
}

#[test]
fn man_pages_are_written_and_read_by_man() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man");
    let (code, output) = run_midge(&["man", out.to_str().unwrap()], Duration::from_secs(10));
    assert_eq!(code, Some(0), "{output}");
    for page in ["midge.8", "midge.conf.5"] {
        let path = out.join(page);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(".TH "), "{page}");
        // man(1) formats it without a warning, when it is installed.
        let Ok(formatted) = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&path)
            .env("MANWIDTH", "80")
            .output()
        else {
            continue;
        };
        let warnings = String::from_utf8_lossy(&formatted.stderr);
        assert!(warnings.trim().is_empty(), "{page}: {warnings}");
        // Bold and underline are overstruck: `X\x08X`; keep the last character of each.
        let mut shown = String::new();
        for c in String::from_utf8_lossy(&formatted.stdout).chars() {
            if c == '\u{8}' {
                shown.pop();
            } else {
                shown.push(c);
            }
        }
        let wanted = if page == "midge.8" {
            "SIGNALS"
        } else {
            "max_queued_messages"
        };
        assert!(shown.contains(wanted), "{page}: {shown}");
    }
}
