//! `midge passwd` beside Debian's `mosquitto_passwd` 2.0.11: the same arguments and files give
//! the same stdout, stderr, exit status and file (hashes aside, which are salted); a file it
//! writes is accepted by Debian's `mosquitto` 2.0.11 broker and by Midge; a file
//! `mosquitto_passwd` wrote is updated without touching the other users' lines. The deliberate
//! differences (no data loss on a corrupt file, atomic replacement, `-H argon2id`) have tests of
//! their own.
//!
//! The side-by-side tests need `mosquitto_passwd`, `mosquitto` and `mosquitto_pub` (CI installs
//! them with scripts/install-test-deps); without them they print a notice and pass.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

mod support;

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use bytes::Bytes;
use midge_auth::PasswordFile;
use midge_codec::{ProtocolVersion, ReasonCode};
use support::packets::connect_with;
use support::{Midge, RawClient};

const MOSQUITTO: &str = "/usr/sbin/mosquitto";
const MOSQUITTO_PASSWD: &str = "/usr/bin/mosquitto_passwd";
const MOSQUITTO_PUB: &str = "/usr/bin/mosquitto_pub";

fn installed(tools: &[&str]) -> bool {
    let missing: Vec<_> = tools.iter().filter(|tool| !Path::new(tool).exists()).collect();
    if !missing.is_empty() {
        eprintln!("NOTICE: skipped, not installed: {missing:?} (scripts/install-test-deps installs them)");
    }
    missing.is_empty()
}

/// What a run printed and returned.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    stdout: String,
    stderr: String,
    status: Option<i32>,
}

/// Runs `program args` in `dir` with `input` on stdin.
fn run_in(dir: &Path, program: &str, args: &[&str], input: &[u8]) -> Run {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // A process that exits before reading closes the pipe: not an error here.
    let _ = stdin.write_all(input);
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    Run {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        status: output.status.code(),
    }
}

fn midge_passwd(dir: &Path, args: &[&str], input: &[u8]) -> Run {
    let mut full = vec!["passwd"];
    full.extend_from_slice(args);
    run_in(dir, env!("CARGO_BIN_EXE_midge"), &full, input)
}

/// `mosquitto_passwd`'s run as `midge passwd` would print it: the program named `midge passwd`,
/// and the usage text's extra lines (about `-H argon2id` and `-H scram`) added.
fn as_midge(mut run: Run, dir: &Path, midge_dir: &Path) -> Run {
    run.stdout = run.stdout.replace("mosquitto_passwd", "midge passwd").replace(
        "      Mosquitto 1.6 and earlier defaulted to sha512.\n",
        "      Mosquitto 1.6 and earlier defaulted to sha512.\n      \
         -H argon2id writes Mosquitto 2.1's hashes, which Mosquitto 2.0 cannot read.\n      \
         -H scram writes SCRAM-SHA-256 and SCRAM-SHA-512 verifiers for a scram_file.\n",
    );
    // Error messages name files by their real path, which differs between the two directories.
    let (from, to) = (dir.to_str().unwrap(), midge_dir.to_str().unwrap());
    run.stderr = run.stderr.replace(from, to);
    run
}

/// A password file's lines with each hash reduced to its type and cost, so that two files
/// written with different salts compare equal when they hold the same users.
fn shape(text: &str) -> Vec<String> {
    text.split_inclusive('\n')
        .map(|line| match line.split_once(":$") {
            Some((user, hash)) => {
                let fields: Vec<&str> = hash.split('$').collect();
                let kind = match fields.first() {
                    Some(&"7") => format!("$7${}", fields.get(1).unwrap_or(&"?")),
                    Some(other) => format!("${other}"),
                    None => "?".into(),
                };
                format!("{user}:{kind}…{}", if line.ends_with('\n') { "\\n" } else { "" })
            }
            None => line.to_owned(),
        })
        .collect()
}

/// Runs both tools on copies of the same starting file, with the same arguments and input, and
/// asserts that they print, return and write the same.
fn same_as_mosquitto(start: Option<&[u8]>, args: &[&str], input: &[u8]) {
    let theirs = tempfile::tempdir().unwrap();
    let ours = tempfile::tempdir().unwrap();
    if let Some(start) = start {
        fs::write(theirs.path().join("pw"), start).unwrap();
        fs::write(ours.path().join("pw"), start).unwrap();
    }
    let expected = as_midge(
        run_in(theirs.path(), MOSQUITTO_PASSWD, args, input),
        theirs.path(),
        ours.path(),
    );
    let got = midge_passwd(ours.path(), args, input);
    assert_eq!(got, expected, "midge passwd {args:?} with {start:?}");
    let written = |dir: &Path| fs::read_to_string(dir.join("pw")).ok().map(|text| shape(&text));
    assert_eq!(
        written(ours.path()),
        written(theirs.path()),
        "file after midge passwd {args:?} with {start:?}"
    );
}

#[test]
fn bad_command_lines_are_refused_as_mosquitto_passwd_refuses_them() {
    if !installed(&[MOSQUITTO_PASSWD]) {
        return;
    }
    let long_user = "u".repeat(65536);
    let long_password = "p".repeat(65536);
    let cases: &[&[&str]] = &[
        &[],
        &["-h"],
        &["--help"],
        &["pw"],
        &["-x", "pw", "u"],
        &["--", "pw", "u"],
        &["-H"],
        &["-H", "md5", "pw", "u"],
        &["-H", "SHA512", "-c", "-b", "pw", "u", "p"],
        &["-H", "-c", "pw", "u"],
        &["-H", "sha512"],
        &["-I"],
        &["-I", "0", "-b", "pw", "u", "p"],
        &["-I", "x", "-b", "pw", "u", "p"],
        &["-c"],
        &["-c", "pw"],
        &["-c", "-b", "pw", "u"],
        &["-D", "pw"],
        &["-U"],
        &["-U", "pw", "extra"],
        &["-b", "pw"],
        &["-b", "pw", "u"],
        &["-b", "pw", "u", "p", "extra"],
        &["pw", "u", "extra"],
        &["-c", "-D", "pw", "u"],
        &["-c", "-U", "pw"],
        &["-D", "-U", "pw"],
        &["-b", "-D", "pw", "u"],
        &["-b", "pw", "a:b", "p"],
        &["-b", "pw", "a\tb", "p"],
        &["-b", "pw", "a\x7fb", "p"],
        &["-c", "-b", "pw", &long_user, "p"],
        &["-b", "pw", "u", &long_password],
    ];
    for args in cases {
        same_as_mosquitto(None, args, b"");
    }
}

#[test]
fn missing_and_unusable_files_are_reported_as_mosquitto_passwd_reports_them() {
    if !installed(&[MOSQUITTO_PASSWD]) {
        return;
    }
    let cases: &[&[&str]] = &[
        &["pw", "u"],
        &["-b", "pw", "u", "p"],
        &["-D", "pw", "u"],
        &["-U", "pw"],
        &["-c", "-b", "no/such/dir", "u", "p"],
        &["-b", "no/such/dir", "u", "p"],
        &["-b", "/", "u", "p"],
        &["-c", "-b", "/", "u", "p"],
        &["-U", "/"],
    ];
    for args in cases {
        same_as_mosquitto(None, args, b"");
    }
    // A path through a regular file.
    same_as_mosquitto(Some(b"a:b\n"), &["-b", "pw/x", "u", "p"], b"");
    same_as_mosquitto(Some(b"a:b\n"), &["-c", "-b", "pw/x", "u", "p"], b"");
}

#[test]
fn edits_match_mosquitto_passwd() {
    if !installed(&[MOSQUITTO_PASSWD]) {
        return;
    }
    let two = b"alice:$7$101$AAAAAAAAAAAAAAAA$x\nbob:$6$BBBBBBBBBBBBBBBB$y\n";
    let cases: &[(Option<&[u8]>, &[&str])] = &[
        (None, &["-c", "-b", "pw", "alice", "pw1"]),
        (None, &["-c", "-b", "-H", "sha512", "pw", "alice", "pw1"]),
        (
            None,
            &["-H", "sha512-pbkdf2", "-I", "7", "-c", "-b", "pw", "a", "p"],
        ),
        (Some(two), &["-c", "-b", "pw", "carol", "pw3"]),
        (Some(two), &["-b", "pw", "carol", "pw3"]),
        (Some(two), &["-b", "pw", "alice", "new"]),
        (Some(two), &["-b", "-H", "sha512", "pw", "bob", "new"]),
        (Some(two), &["-b", "pw", " alice", "new"]),
        (Some(two), &["-b", "pw", "émile", "ünïcode"]),
        (Some(two), &["-b", "pw", "alice", ""]),
        (Some(two), &["-D", "pw", "alice"]),
        (Some(two), &["-D", "pw", "bob"]),
        (Some(two), &["-D", "pw", "carol"]),
        (Some(b""), &["-D", "pw", "carol"]),
        (Some(b""), &["-b", "pw", "carol", "pw"]),
        (Some(b"a:1\na:2\nb:3\n"), &["-D", "pw", "a"]),
        (Some(b"a:1\na:2\nb:3\n"), &["-b", "pw", "a", "x"]),
        (Some(b"a:1\r\n b : 2 \r\n"), &["-b", "pw", "b", "x"]),
        (Some(b"a:1\nb:2"), &["-D", "pw", "b"]),
        (Some(b"a:1\nb:2"), &["-D", "pw", "a"]),
        (Some(b"a:b:c\nd::e\n f : g h \r\n"), &["-U", "pw"]),
        (Some(b"a:b\nc:d"), &["-U", "pw"]),
        (Some(b"a:b\n"), &["-H", "sha512", "-U", "pw"]),
        (Some(b"a:b\n"), &["-I", "5", "-U", "pw"]),
        (Some(b""), &["-U", "pw"]),
        // Lines mosquitto_passwd calls corrupt: nothing is written.
        (Some(b"a:b\n\nc:d\n"), &["-U", "pw"]),
        (Some(b"# comment\na:b\n"), &["-U", "pw"]),
        (Some(b"a:\n"), &["-U", "pw"]),
        (Some(b"a: \n"), &["-U", "pw"]),
        (Some(b":a\n"), &["-U", "pw"]),
        (Some(b"plain\n"), &["-U", "pw"]),
        (Some(b"a:b\n\nc:d\n"), &["-D", "pw", "x"]),
        (Some(b"a:b\n\nc:d\n"), &["-D", "pw", "a"]),
        (Some(b"a:b\n\nc:d\n"), &["-D", "pw", "c"]),
        (Some(b"a:b\n\nc:d\n"), &["-b", "pw", "a", "x"]),
    ];
    for (start, args) in cases {
        same_as_mosquitto(*start, args, b"");
    }
}

#[test]
fn passwords_are_asked_for_on_stdin_as_mosquitto_passwd_asks() {
    if !installed(&[MOSQUITTO_PASSWD]) {
        return;
    }
    let inputs: &[&[u8]] = &[
        b"secret\nsecret\n",
        b"secret\r\nsecret\n",
        b"two words \ntwo words \n",
        b"secret\nsecreT\n",
        b"\nsecret\n",
        b"secret\n\n",
        b"secret\n",
        b"secret",
        b"",
    ];
    for input in inputs {
        same_as_mosquitto(None, &["-c", "pw", "alice"], input);
        same_as_mosquitto(Some(b"bob:x\n"), &["pw", "alice"], input);
    }
    // The file is opened before the prompt: a missing one is reported without asking.
    same_as_mosquitto(None, &["pw", "alice"], b"secret\nsecret\n");
    // And a corrupt one after asking.
    same_as_mosquitto(Some(b"a:b\n\n"), &["pw", "a"], b"secret\nsecret\n");
}

#[test]
fn prompted_passwords_are_the_ones_typed() {
    let dir = tempfile::tempdir().unwrap();
    let run = midge_passwd(
        dir.path(),
        &["-c", "pw", "alice"],
        b"two words \r\ntwo words \r\n",
    );
    assert_eq!(run.status, Some(0), "{run:?}");
    assert_eq!(run.stdout, "Password: \nReenter password: \n");
    let file = PasswordFile::load(dir.path().join("pw")).unwrap();
    assert!(file.check("alice", Some(b"two words ")));
}

/// `mosquitto -c CONF` on a free port with `password_file` and no anonymous access, killed
/// when dropped.
struct Mosquitto {
    child: Child,
    port: u16,
}

impl Mosquitto {
    fn start(dir: &Path, password_file: &Path) -> Self {
        let port = support::free_port();
        let conf = dir.join("mosquitto.conf");
        fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n",
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
        support::wait_for_port(port);
        Self { child, port }
    }

    /// Mosquitto may listen before it has read the password file: waits until `user` gets in.
    fn wait_until_accepts(&self, user: &str, password: &str) {
        let deadline = std::time::Instant::now() + support::WAIT;
        while !self.accepts(user, password) {
            assert!(
                std::time::Instant::now() < deadline,
                "mosquitto never accepted {user}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    fn accepts(&self, user: &str, password: &str) -> bool {
        Command::new(MOSQUITTO_PUB)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-t", "t", "-m", "m", "-u", user, "-P", password])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory Mosquitto can read after it drops root for its own user.
fn readable_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn ok(run: &Run) {
    assert_eq!(run.status, Some(0), "{run:?}");
    assert_eq!((run.stdout.as_str(), run.stderr.as_str()), ("", ""), "{run:?}");
}

#[test]
fn mosquitto_2_0_accepts_a_file_written_by_midge_passwd() {
    if !installed(&[MOSQUITTO, MOSQUITTO_PUB]) {
        return;
    }
    let dir = readable_tempdir();
    let d = dir.path();
    ok(&midge_passwd(d, &["-c", "-b", "pw", "alice", "wonderland"], b""));
    ok(&midge_passwd(d, &["-b", "pw", "bob", "b$:x y"], b""));
    ok(&midge_passwd(
        d,
        &["-H", "sha512", "-b", "pw", "carol", "six"],
        b"",
    ));
    ok(&midge_passwd(d, &["-I", "5000", "-b", "pw", "dave", "many"], b""));
    ok(&midge_passwd(d, &["pw", "émile"], "ünïcode\nünïcode\n".as_bytes()).stdout_only());
    fs::write(d.join("plain"), "frank:plain text\n").unwrap();
    ok(&midge_passwd(d, &["-U", "plain"], b""));
    let mut text = fs::read_to_string(d.join("pw")).unwrap();
    text.push_str(&fs::read_to_string(d.join("plain")).unwrap());
    fs::write(d.join("pw"), text).unwrap();
    // Whatever the umask, Mosquitto (as user mosquitto) must be able to read it.
    fs::set_permissions(d.join("pw"), fs::Permissions::from_mode(0o644)).unwrap();

    let broker = Mosquitto::start(d, &d.join("pw"));
    broker.wait_until_accepts("alice", "wonderland");
    for (user, password) in [
        ("alice", "wonderland"),
        ("bob", "b$:x y"),
        ("carol", "six"),
        ("dave", "many"),
        ("émile", "ünïcode"),
        ("frank", "plain text"),
    ] {
        assert!(broker.accepts(user, password), "{user}");
        assert!(!broker.accepts(user, "wrong"), "{user}");
    }
    assert!(!broker.accepts("nobody", "wonderland"));
}

impl Run {
    /// For a prompted run: the prompts are expected on stdout, nothing else.
    fn stdout_only(mut self) -> Self {
        assert_eq!(self.stdout, "Password: \nReenter password: \n", "{self:?}");
        self.stdout.clear();
        self
    }
}

#[test]
fn midge_passwd_updates_a_mosquitto_passwd_file_keeping_the_other_lines() {
    if !installed(&[MOSQUITTO_PASSWD]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&run_in(
        d,
        MOSQUITTO_PASSWD,
        &["-c", "-b", "pw", "alice", "a"],
        b"",
    ));
    ok(&run_in(d, MOSQUITTO_PASSWD, &["-b", "pw", "bob", "b"], b""));
    ok(&run_in(
        d,
        MOSQUITTO_PASSWD,
        &["-H", "sha512", "-b", "pw", "carol", "c"],
        b"",
    ));
    let before = fs::read_to_string(d.join("pw")).unwrap();
    let lines: Vec<&str> = before.lines().collect();

    ok(&midge_passwd(d, &["-b", "pw", "bob", "new b"], b""));
    ok(&midge_passwd(d, &["-b", "pw", "dave", "d"], b""));
    let after = fs::read_to_string(d.join("pw")).unwrap();
    let after_lines: Vec<&str> = after.lines().collect();
    assert_eq!(after_lines.len(), 4, "{after}");
    assert_eq!(after_lines[0], lines[0], "alice's line is untouched");
    assert_ne!(after_lines[1], lines[1], "bob's line is new");
    assert!(after_lines[1].starts_with("bob:$7$101$"));
    assert_eq!(after_lines[2], lines[2], "carol's line is untouched");
    assert!(after_lines[3].starts_with("dave:$7$101$"));
    assert!(after.ends_with('\n'));

    let file = PasswordFile::load(d.join("pw")).unwrap();
    assert!(file.warnings().is_empty());
    for (user, password) in [("alice", "a"), ("bob", "new b"), ("carol", "c"), ("dave", "d")] {
        assert!(file.check(user, Some(password.as_bytes())), "{user}");
    }
    assert!(!file.check("bob", Some(b"b")));

    // And mosquitto_passwd carries on with the file midge passwd wrote.
    ok(&run_in(d, MOSQUITTO_PASSWD, &["-D", "pw", "bob"], b""));
    ok(&midge_passwd(d, &["-D", "pw", "alice"], b""));
    let left = fs::read_to_string(d.join("pw")).unwrap();
    assert_eq!(left.lines().collect::<Vec<_>>(), [lines[2], after_lines[3]]);
}

#[test]
fn midge_reads_what_midge_passwd_writes_argon2id_included() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&midge_passwd(d, &["-c", "-b", "pw", "alice", "wonderland"], b""));
    ok(&midge_passwd(
        d,
        &["-H", "argon2id", "-b", "pw", "bob", "builder"],
        b"",
    ));
    let text = fs::read_to_string(d.join("pw")).unwrap();
    assert!(text.contains("\nbob:$argon2id$v=19$m=47104,t=1,p=1$"), "{text}");

    let midge = Midge::start_with_config(&format!(
        "listener 0 127.0.0.1\nallow_anonymous false\npassword_file {}\n",
        d.join("pw").display()
    ));
    // A client id per login: the test is about passwords, not session takeover.
    let login = |id: &str, user: &str, password: &str| {
        let (user, password) = (user.to_owned(), Bytes::from(password.to_owned()));
        let connect = connect_with(ProtocolVersion::V311, id, move |c| {
            c.username = Some(user.into());
            c.password = Some(password);
        });
        RawClient::connected(midge.addr(), connect).1.reason_code
    };
    assert_eq!(login("a", "alice", "wonderland"), ReasonCode::Success);
    assert_eq!(login("b", "bob", "builder"), ReasonCode::Success);
    assert_eq!(login("c", "bob", "wonderland"), ReasonCode::NotAuthorized);
}

/// The mode bits a new file gets: 0666 less this process's umask (which a child inherits).
fn umask() -> u32 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let mask = status
        .lines()
        .find_map(|line| line.strip_prefix("Umask:"))
        .unwrap();
    u32::from_str_radix(mask.trim(), 8).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn the_file_is_replaced_atomically_keeping_its_mode() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path: PathBuf = d.join("pw");
    ok(&midge_passwd(d, &["-c", "-b", "pw", "alice", "a"], b""));
    assert_eq!(
        mode(&path),
        0o666 & !umask(),
        "a new file: 0666 less the umask, as Mosquitto"
    );

    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    let inode = fs::metadata(&path).unwrap().ino();
    ok(&midge_passwd(d, &["-b", "pw", "bob", "b"], b""));
    assert_eq!(mode(&path), 0o640);
    assert_ne!(
        fs::metadata(&path).unwrap().ino(),
        inode,
        "replaced, not rewritten in place"
    );
    ok(&midge_passwd(d, &["-c", "-b", "pw", "carol", "c"], b""));
    assert_eq!(mode(&path), 0o640, "-c over a file keeps its mode too");

    // A symbolic link stays a link; its target is replaced.
    std::os::unix::fs::symlink(&path, d.join("link")).unwrap();
    ok(&midge_passwd(d, &["-b", "link", "dave", "d"], b""));
    assert!(
        fs::symlink_metadata(d.join("link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(fs::read_to_string(&path).unwrap().contains("\ndave:"));

    let mut names: Vec<_> = fs::read_dir(d)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["link", "pw"], "no temporary or backup file is left");
}

#[test]
fn a_corrupt_file_is_never_rewritten() {
    // mosquitto_passwd 2.0.11 -b here keeps "a:b", drops "c:d" and exits 0.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let start = b"a:b\n\nc:d\n";
    fs::write(d.join("pw"), start).unwrap();
    let run = midge_passwd(d, &["-b", "pw", "new", "x"], b"");
    assert_eq!(run.stderr, "Error: Corrupt password file at line 2.\n");
    assert_eq!(run.status, Some(1));
    assert_eq!(fs::read(d.join("pw")).unwrap(), start);
}

#[test]
fn an_added_user_gets_a_line_of_its_own() {
    // mosquitto_passwd 2.0.11 writes "c:dn:$7$…" here.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("pw"), "a:b\nc:d").unwrap();
    ok(&midge_passwd(d, &["-b", "pw", "n", "x"], b""));
    let text = fs::read_to_string(d.join("pw")).unwrap();
    assert_eq!(shape(&text), ["a:b\n", "c:d\n", "n:$7$101…\\n"]);
}

#[test]
fn an_empty_user_name_is_refused() {
    // mosquitto_passwd 2.0.11 writes ":$7$…", a line it then calls corrupt.
    let dir = tempfile::tempdir().unwrap();
    let run = midge_passwd(dir.path(), &["-c", "-b", "pw", "", "x"], b"");
    assert_eq!(run.stderr, "Error: Username must not be empty.\n");
    assert_eq!(run.status, Some(1));
    assert!(!dir.path().join("pw").exists());
}

#[test]
fn devices_are_not_password_files() {
    let dir = tempfile::tempdir().unwrap();
    let run = midge_passwd(dir.path(), &["-b", "/dev/null", "u", "x"], b"");
    assert_eq!(
        run.stderr,
        "Error: Unable to open password file /dev/null. Not a regular file.\n"
    );
    assert_eq!(run.status, Some(1));
}

#[test]
fn the_broker_command_line_is_unchanged() {
    // `passwd` only means the tool as the first argument.
    let (code, output) = support::run_midge(&["-p", "passwd"], std::time::Duration::from_secs(10));
    assert_ne!(code, Some(0), "{output}");
    assert!(!output.contains("mosquitto_passwd"), "{output}");
}

#[test]
fn scram_verifiers_are_written_with_their_counts_and_passwords_must_pass_saslprep() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&midge_passwd(
        d,
        &["-H", "scram", "-c", "-b", "scram", "alice", "wonder land"],
        b"",
    ));
    ok(&midge_passwd(
        d,
        &["-H", "scram-sha-512", "-I", "5000", "-b", "scram", "bob", "b"],
        b"",
    ));
    // Prompted, as for any other hash.
    let prompted = midge_passwd(d, &["-H", "scram-sha-256", "scram", "carol"], b"c\nc\n");
    assert_eq!(prompted.status, Some(0), "{prompted:?}");
    let text = fs::read_to_string(d.join("scram")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let fields = |line: &str| -> Vec<String> {
        let (_, verifiers) = line.split_once(':').unwrap();
        verifiers
            .split(' ')
            .map(|v| v.split(':').next().unwrap().to_owned())
            .collect()
    };
    assert!(lines[0].starts_with("alice:"));
    assert_eq!(fields(lines[0]), ["SCRAM-SHA-256$4096", "SCRAM-SHA-512$10000"]);
    assert!(lines[1].starts_with("bob:"));
    assert_eq!(fields(lines[1]), ["SCRAM-SHA-512$5000"]);
    assert!(lines[2].starts_with("carol:"));
    assert_eq!(fields(lines[2]), ["SCRAM-SHA-256$4096"]);
    // The broker reads what was written.
    let file = midge_auth::ScramFile::load(d.join("scram")).unwrap();
    assert_eq!(file.len(), 3);

    // A control character is refused by SASLprep; nothing is written.
    let refused = midge_passwd(d, &["-H", "scram", "-b", "scram", "dave", "a\u{7}b"], b"");
    assert_eq!(refused.status, Some(1));
    assert_eq!(
        refused.stderr,
        "Error: A SCRAM password must be UTF-8 text that SASLprep (RFC 4013) accepts.\n"
    );
    assert_eq!(fs::read_to_string(d.join("scram")).unwrap(), text);
    let refused = midge_passwd(
        d,
        &["-H", "scram", "-I", "20000000", "-b", "scram", "dave", "d"],
        b"",
    );
    assert_eq!(refused.status, Some(1), "{refused:?}");
    assert_eq!(
        refused.stderr,
        "Error: SCRAM iteration counts must be at most 10000000.\n"
    );
}
