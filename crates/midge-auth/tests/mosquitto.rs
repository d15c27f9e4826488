//! midge-auth against real Mosquitto 2.0.11.
//!
//! Two kinds of test:
//! - Recorded: `testdata/*.tsv` hold what Mosquitto decided (recorded by
//!   `testdata/record_mosquitto.py`); these tests make the same decisions with our parser and
//!   compare every one. They need nothing installed.
//! - Live: when `mosquitto_passwd`, `mosquitto` and `mosquitto_pub` are installed (CI installs
//!   them), hashes go both ways: `mosquitto_passwd` writes, we read; we write, `mosquitto`
//!   accepts. Without them these print a notice and pass.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::num::NonZeroU32;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use midge_auth::{
    Access, AclFile, ClientIdentity, HashKind, MOSQUITTO_PBKDF2_ITERATIONS, PasswordFile, hash_password,
};

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(name)
}

/// The data rows of a recorded TSV file, unescaped (`\t`, `\r`, `\n`, `\\`).
fn rows(name: &str) -> Vec<Vec<String>> {
    let text = fs::read_to_string(testdata(name)).unwrap();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| line.split('\t').map(unescape).collect())
        .collect()
}

fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

// ---- recorded ----

#[test]
fn acl_decisions_match_mosquitto_2_0_11() {
    let acl = AclFile::load(testdata("acl_matrix.acl")).unwrap();
    let rows = rows("acl_matrix.tsv");
    assert!(
        rows.len() > 1000,
        "the matrix should be large, got {}",
        rows.len()
    );
    let mut mismatches = Vec::new();
    for row in &rows {
        let [client_id, username, access, topic, decision] = row.as_slice() else {
            panic!("bad row {row:?}");
        };
        let who = ClientIdentity {
            client_id,
            username: (username != "-").then_some(username.as_str()),
        };
        let access = match access.as_str() {
            "read" => Access::Read,
            "write" => Access::Write,
            "subscribe" => Access::Subscribe,
            other => panic!("bad access {other}"),
        };
        let ours = acl.decide(&who, topic, access);
        if ours.allowed() != (decision == "allow") {
            mismatches.push(format!(
                "{client_id} {username} {access:?} {topic:?}: mosquitto {decision}, ours {ours}"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    // The matrix must exercise both answers for each kind of access it can deny.
    for access in ["read", "write"] {
        for decision in ["allow", "deny"] {
            assert!(
                rows.iter().any(|r| r[2] == access && r[4] == decision),
                "{access} {decision}"
            );
        }
    }
}

#[test]
fn acl_lines_are_accepted_and_refused_as_mosquitto_2_0_11_does() {
    let mut mismatches = Vec::new();
    for row in rows("acl_lines.tsv") {
        let [line, outcome] = row.as_slice() else {
            panic!("bad row {row:?}");
        };
        let ours = AclFile::parse(&format!("{line}\n"), "acl");
        if ours.is_ok() != (outcome == "starts") {
            mismatches.push(format!("{line:?}: mosquitto {outcome}, ours {ours:?}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// Lines where we follow Mosquitto 2.1 rather than 2.0: 2.1 writes (and reads) 64-byte salts
/// for `$6$` and `$7$`, 2.0 refuses them. Accepting them lets a 2.1 file work.
fn has_2_1_salt(line: &str) -> bool {
    let hash = line.split(':').nth(1).unwrap_or_default();
    let fields: Vec<&str> = hash.split('$').filter(|f| !f.is_empty()).collect();
    let salt = match fields.first() {
        Some(&"6") => fields.get(1),
        Some(&"7") => fields.get(2),
        _ => None,
    };
    salt.is_some_and(|salt| salt.len() == 88)
}

#[test]
fn password_file_quirks_match_mosquitto_2_0_11() {
    let mut mismatches = Vec::new();
    let mut divergences = 0;
    for row in rows("passwd_quirks.tsv") {
        let [content, user, password, outcome] = row.as_slice() else {
            panic!("bad row {row:?}");
        };
        assert_ne!(
            outcome, "no-start",
            "every recorded file should start mosquitto: {content:?}"
        );
        let content = match content.strip_suffix('|') {
            Some(without_newline) => without_newline.to_owned(),
            None => format!("{content}\n"),
        };
        let file = PasswordFile::parse(&content, "pw");
        let ours = file.check(user, Some(password.as_bytes()));
        let theirs = outcome == "accepted";
        if ours != theirs {
            if ours && has_2_1_salt(&content) {
                divergences += 1;
            } else {
                mismatches.push(format!(
                    "{content:?} as {user:?}/{password:?}: mosquitto {outcome}, ours {ours}"
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert_eq!(divergences, 2, "the two 64-byte-salt lines");
}

#[test]
fn a_file_written_by_mosquitto_passwd_2_0_11_is_read() {
    let file = PasswordFile::load(testdata("passwd_mosquitto.txt")).unwrap();
    assert!(file.warnings().is_empty(), "{:?}", file.warnings());
    let users = rows("passwd_mosquitto.tsv");
    assert_eq!(file.len(), users.len());
    for row in users {
        let [user, password] = row.as_slice() else {
            panic!("bad row {row:?}");
        };
        assert!(file.check(user, Some(password.as_bytes())), "{user}");
        assert!(
            !file.check(user, Some(format!("{password}x").as_bytes())),
            "{user}"
        );
    }
}

// ---- live ----

const MOSQUITTO: &str = "/usr/sbin/mosquitto";
const MOSQUITTO_PASSWD: &str = "/usr/bin/mosquitto_passwd";
const MOSQUITTO_PUB: &str = "/usr/bin/mosquitto_pub";

fn installed(tools: &[&str]) -> bool {
    let missing: Vec<&&str> = tools.iter().filter(|tool| !Path::new(tool).exists()).collect();
    if !missing.is_empty() {
        eprintln!(
            "NOTICE: skipping, not installed: {missing:?} (apt-get install mosquitto mosquitto-clients)"
        );
    }
    missing.is_empty()
}

/// A directory Mosquitto can read after it drops root for its own user.
fn readable_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[test]
fn live_mosquitto_passwd_output_is_read() {
    if !installed(&[MOSQUITTO_PASSWD]) {
        return;
    }
    let dir = readable_tempdir();
    let path = dir.path().join("pw");
    let users = [("alice", "correct horse"), ("bob", "b$:x"), ("émile", "ünïcode")];
    for (i, (user, password)) in users.iter().enumerate() {
        let mut command = Command::new(MOSQUITTO_PASSWD);
        command.arg("-b");
        if i == 0 {
            command.arg("-c");
        }
        let status = command.arg(&path).arg(user).arg(password).status().unwrap();
        assert!(status.success());
    }
    let file = PasswordFile::load(&path).unwrap();
    assert!(file.warnings().is_empty(), "{:?}", file.warnings());
    for (user, password) in users {
        assert!(file.check(user, Some(password.as_bytes())), "{user}");
        assert!(!file.check(user, Some(b"wrong")), "{user}");
    }
}

struct Broker {
    child: Child,
    port: u16,
}

impl Broker {
    fn start(dir: &Path, password_file: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = dir.join("mosquitto.conf");
        fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\npassword_file {}\n",
                password_file.display()
            ),
        )
        .unwrap();
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut broker = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(broker.child.try_wait().unwrap().is_none(), "mosquitto exited");
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        broker
    }

    fn accepts(&self, user: &str, password: &str) -> bool {
        Command::new(MOSQUITTO_PUB)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-t",
                "t",
                "-m",
                "m",
            ])
            .args(["-u", user, "-P", password])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn live_mosquitto_accepts_our_hashes() {
    if !installed(&[MOSQUITTO, MOSQUITTO_PUB]) {
        return;
    }
    let dir = readable_tempdir();
    let iterations = NonZeroU32::new(MOSQUITTO_PBKDF2_ITERATIONS).unwrap();
    let seven = hash_password(b"seven pw", HashKind::Sha512Pbkdf2 { iterations }).unwrap();
    let many = hash_password(
        b"many",
        HashKind::Sha512Pbkdf2 {
            iterations: NonZeroU32::new(20_000).unwrap(),
        },
    )
    .unwrap();
    let six = hash_password(b"six pw", HashKind::Sha512).unwrap();
    let path = dir.path().join("pw");
    fs::write(&path, format!("seven:{seven}\nmany:{many}\nsix:{six}\n")).unwrap();
    let broker = Broker::start(dir.path(), &path);
    assert!(broker.accepts("seven", "seven pw"));
    assert!(!broker.accepts("seven", "seven pW"));
    assert!(broker.accepts("many", "many"));
    assert!(broker.accepts("six", "six pw"));
    assert!(!broker.accepts("six", "six"));
    assert!(!broker.accepts("nobody", "six pw"));
}
