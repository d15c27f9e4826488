//! TLS listeners with Debian's `mosquitto_pub` and `mosquitto_sub` (OpenSSL) as the clients:
//! server authentication on TLS 1.2 and 1.3, mutual TLS with certificates that are valid,
//! expired, revoked or from another CA, certificate usernames, configuration errors, and
//! certificates swapped by SIGHUP and by a change of the files.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

mod support;

use std::io::{Read, Write};
use std::process::{Command, Output};
use std::time::Duration;

use support::pki::Pki;
use support::{Midge, run_midge};

fn have_mosquitto_clients() -> bool {
    let found = Command::new("mosquitto_pub").arg("--help").output().is_ok();
    if !found {
        eprintln!("mosquitto_pub not installed (scripts/install-test-deps installs it); skipped");
    }
    found
}

/// Runs a Mosquitto client against 127.0.0.1:`port`, bounded in time.
fn mosquitto(tool: &str, port: u16, args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["20", tool, "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run a mosquitto client")
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn tls_listener(pki: &Pki, extra: &str) -> String {
    format!(
        "listener 0 127.0.0.1\ncertfile {}\nkeyfile {}\n{extra}\n",
        pki.path("server.pem").display(),
        pki.path("server.key").display()
    )
}

#[test]
fn mosquitto_clients_publish_and_subscribe_over_tls() {
    if !have_mosquitto_clients() {
        return;
    }
    let pki = Pki::new();
    let midge = Midge::start_with_config(&tls_listener(&pki, "allow_anonymous true"));
    let ca = pki.path("ca.pem");
    let ca = ca.to_str().unwrap();
    // (--tls-version sets the client's lowest version, so both negotiate TLS 1.3; TLS 1.2 is
    // checked with OpenSSL's s_client below and with paho in interop/.)
    for (version, topic) in [("tlsv1.2", "tls/12"), ("tlsv1.3", "tls/13")] {
        let published = mosquitto(
            "mosquitto_pub",
            midge.port(),
            &[
                "--cafile",
                ca,
                "--tls-version",
                version,
                "-t",
                topic,
                "-m",
                version,
                "-r",
                "-q",
                "1",
            ],
        );
        assert!(published.status.success(), "{version}: {}", text(&published));
    }
    let received = mosquitto(
        "mosquitto_sub",
        midge.port(),
        &["--cafile", ca, "-t", "tls/#", "-v", "-C", "2", "-W", "10"],
    );
    assert!(received.status.success(), "{}", text(&received));
    let mut lines: Vec<String> = String::from_utf8_lossy(&received.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    assert_eq!(lines, ["tls/12 tlsv1.2", "tls/13 tlsv1.3"]);
    assert!(
        !midge
            .logs()
            .iter()
            .any(|l| l.contains("handshake") && l.contains("failed"))
    );
}

#[test]
fn clients_that_do_not_trust_the_server_or_do_not_speak_tls_are_turned_away() {
    if !have_mosquitto_clients() {
        return;
    }
    let pki = Pki::new();
    let midge = Midge::start_with_config(&tls_listener(&pki, "allow_anonymous true"));
    let rogue = pki.path("rogue-ca.pem");
    let refused = mosquitto(
        "mosquitto_pub",
        midge.port(),
        &["--cafile", rogue.to_str().unwrap(), "-t", "t", "-m", "x"],
    );
    assert!(!refused.status.success(), "{}", text(&refused));
    let line = midge.wait_for_log("TLS handshake with 127.0.0.1");
    assert!(line.contains("failed"), "{line}");

    // Plain MQTT on the TLS port: no CONNACK, the socket closes, the broker carries on.
    // The CONNECT is not a TLS record, so the handshake fails at once (well before the 10 s
    // CONNECT timeout, which the wait below would race).
    // What comes back is at most a TLS alert record (content type 21), never a CONNACK.
    let mut plain = std::net::TcpStream::connect(midge.addr()).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = std::time::Instant::now();
    plain
        .write_all(b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04test")
        .unwrap();
    let mut answer = Vec::new();
    plain
        .read_to_end(&mut answer)
        .expect("the broker closes the socket");
    assert!(answer.first().is_none_or(|&kind| kind == 21), "{answer:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed only after {:?}",
        started.elapsed()
    );
    let ca = pki.path("ca.pem");
    let ok = mosquitto(
        "mosquitto_pub",
        midge.port(),
        &["--cafile", ca.to_str().unwrap(), "-t", "t", "-m", "x"],
    );
    assert!(ok.status.success(), "{}", text(&ok));
}

/// A broker that requires client certificates from `ca.pem`, checks `crl.pem`, names clients by
/// their certificate, and lets alice use `alice/#` only.
fn mutual_tls(pki: &Pki, username_from: &str) -> Midge {
    let acl = pki.path("acl");
    std::fs::write(&acl, "user alice\ntopic readwrite alice/#\n").unwrap();
    Midge::start_with_config(&tls_listener(
        pki,
        &format!(
            "cafile {}\ncrlfile {}\nrequire_certificate true\n{username_from} true\nallow_anonymous false\nacl_file {}",
            pki.path("ca.pem").display(),
            pki.path("crl.pem").display(),
            acl.display()
        ),
    ))
}

fn client_args(pki: &Pki, name: &str) -> Vec<String> {
    let mut args = vec!["--cafile".to_owned(), pki.path("ca.pem").display().to_string()];
    if !name.is_empty() {
        args.extend([
            "--cert".to_owned(),
            pki.path(&format!("{name}.pem")).display().to_string(),
            "--key".to_owned(),
            pki.path(&format!("{name}.key")).display().to_string(),
        ]);
    }
    args
}

#[test]
fn mutual_tls_admits_certificates_of_the_ca_and_refuses_expired_revoked_foreign_and_none() {
    if !have_mosquitto_clients() {
        return;
    }
    let pki = Pki::new();
    let midge = mutual_tls(&pki, "use_identity_as_username");
    let publish = |name: &str, topic: &str| {
        let mut args = client_args(&pki, name);
        // A username and password in CONNECT change nothing: the certificate names the client.
        args.extend(
            [
                "-u", "bob", "-P", "wrong", "-t", topic, "-m", name, "-r", "-q", "1",
            ]
            .map(str::to_owned),
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        mosquitto("mosquitto_pub", midge.port(), &args)
    };
    let ok = publish("alice", "alice/x");
    assert!(ok.status.success(), "{}", text(&ok));
    midge.wait_for_log("u'alice'");

    for name in ["old", "mallory", "rogue-client", ""] {
        let refused = publish(name, "alice/x");
        assert!(
            !refused.status.success(),
            "{name:?} was let in: {}",
            text(&refused)
        );
    }
    let failures = midge
        .logs()
        .iter()
        .filter(|l| l.contains("TLS handshake") && l.contains("failed"))
        .count();
    assert_eq!(failures, 4, "{:#?}", midge.logs());

    // The ACL applies to the certificate's name: alice's retained message is there, a
    // publication outside alice/# was dropped.
    let denied = publish("alice", "other/x");
    assert!(denied.status.success(), "{}", text(&denied));
    let mut args = client_args(&pki, "alice");
    args.extend(["-t", "alice/#", "-t", "other/#", "-v", "-W", "2"].map(str::to_owned));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let received = mosquitto("mosquitto_sub", midge.port(), &args);
    assert_eq!(
        String::from_utf8_lossy(&received.stdout),
        "alice/x alice\n",
        "{}",
        text(&received)
    );
}

#[test]
fn use_subject_as_username_gives_the_whole_subject_as_openssl_prints_it() {
    if !have_mosquitto_clients() {
        return;
    }
    let pki = Pki::new();
    let midge = mutual_tls(&pki, "use_subject_as_username");
    let mut args = client_args(&pki, "alice");
    args.extend(["-t", "alice/x", "-m", "hi"].map(str::to_owned));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = mosquitto("mosquitto_pub", midge.port(), &args);
    assert!(output.status.success(), "{}", text(&output));
    // What Mosquitto would use: OpenSSL's RFC 2253 form of the subject.
    let openssl = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
        .arg(pki.path("alice.pem"))
        .output()
        .expect("openssl");
    let printed = String::from_utf8_lossy(&openssl.stdout);
    let subject = printed
        .trim()
        .strip_prefix("subject=")
        .expect("openssl prints subject=");
    assert!(
        subject.contains("CN=alice") && subject.contains("O=Midge Tests"),
        "{subject}"
    );
    midge.wait_for_log(&format!("u'{subject}'"));
}

#[test]
fn tls_settings_that_cannot_work_stop_the_start_with_file_and_reason() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let server = pki.path("server.pem").display().to_string();
    let key = pki.path("server.key").display().to_string();
    let missing = dir.path().join("missing.pem").display().to_string();
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            format!("listener 0 127.0.0.1\ncertfile {missing}\nkeyfile {key}\n"),
            vec![missing, "cannot read".to_owned()],
        ),
        (
            format!("listener 0 127.0.0.1\ncertfile {server}\n"),
            vec!["keyfile is not".to_owned(), ":1)".to_owned()],
        ),
        (
            format!("listener 0 127.0.0.1\ncertfile {server}\nkeyfile {server}\n"),
            vec!["no usable private key".to_owned()],
        ),
        (
            format!("listener 0 127.0.0.1\ncertfile {server}\nkeyfile {key}\nrequire_certificate true\n"),
            vec!["need cafile or capath".to_owned()],
        ),
        (
            format!("listener 0 127.0.0.1\ncertfile {server}\nkeyfile {key}\nciphers RC4-MD5\n"),
            vec!["leaves no cipher suite".to_owned()],
        ),
        (
            "listener 0 127.0.0.1\npsk_hint midge\n".to_owned(),
            vec![
                ":2".to_owned(),
                "TLS-PSK".to_owned(),
                "refusing to start".to_owned(),
            ],
        ),
        (
            format!("listener 0 127.0.0.1\ncertfile {server}\nkeyfile {key}\ntls_engine pkcs11\n"),
            vec![":4".to_owned(), "OpenSSL engines".to_owned()],
        ),
        (
            format!("listener 0 127.0.0.1\ncertfile {server}\nkeyfile {key}\ntls_version tlsv9\n"),
            vec![":4".to_owned(), "tlsv1.3, tlsv1.2".to_owned()],
        ),
    ];
    for (i, (config, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("case{i}.conf"));
        std::fs::write(&path, config).unwrap();
        let (code, output) = run_midge(&["-c", path.to_str().unwrap()], Duration::from_secs(10));
        assert_eq!(code, Some(1), "case {i} started:\n{config}\n{output}");
        for needle in expected {
            assert!(
                output.contains(needle.as_str()),
                "case {i}: {needle:?} not in:\n{output}"
            );
        }
    }
}

#[test]
fn certificates_are_swapped_on_sighup_and_on_change_and_a_broken_file_keeps_the_old() {
    if !have_mosquitto_clients() {
        return;
    }
    let pki = Pki::new();
    let live = tempfile::tempdir().unwrap();
    let (cert, key) = (live.path().join("cert.pem"), live.path().join("key.pem"));
    let install = |from: &str| {
        std::fs::copy(pki.path(&format!("{from}.key")), &key).unwrap();
        std::fs::copy(pki.path(&format!("{from}.pem")), &cert).unwrap();
    };
    install("server");
    let midge = Midge::start_with_config(&format!(
        "listener 0 127.0.0.1\ncertfile {}\nkeyfile {}\nallow_anonymous true\n",
        cert.display(),
        key.display()
    ));
    let trusts = |ca: &str| {
        let ca = pki.path(ca);
        mosquitto(
            "mosquitto_pub",
            midge.port(),
            &["--cafile", ca.to_str().unwrap(), "-t", "t", "-m", "x"],
        )
        .status
        .success()
    };
    assert!(trusts("ca.pem"));
    assert!(!trusts("rogue-ca.pem"));

    // A broken certificate file: the reload fails loudly and the old certificate stays.
    std::fs::write(&cert, "not a certificate\n").unwrap();
    midge.signal("HUP");
    let error = midge.wait_for_log("Error: reloading TLS certificates");
    assert!(
        error.contains("cert.pem") && error.contains("previous ones stay"),
        "{error}"
    );
    assert!(trusts("ca.pem"));

    // A new certificate from another CA, on SIGHUP.
    install("server-rogue");
    midge.signal("HUP");
    midge.wait_for_log(&format!("Reloaded TLS certificates from {}", cert.display()));
    assert!(trusts("rogue-ca.pem"));
    assert!(!trusts("ca.pem"));

    // And back, with no signal: the files are watched (a certbot renewal).
    install("server");
    midge
        .try_wait_for_log("changed: reloaded the TLS certificates", Duration::from_secs(15))
        .expect("the change of the files is noticed");
    assert!(trusts("ca.pem"));
}

#[test]
fn tls_version_ciphers_and_capath_are_honoured() {
    if !have_mosquitto_clients() {
        return;
    }
    let pki = Pki::new();
    let ca = pki.path("ca.pem");
    let ca = ca.to_str().unwrap();
    let publish = |port: u16, extra: &[&str]| {
        let mut args = vec!["--cafile", ca, "-t", "t", "-m", "x"];
        args.extend_from_slice(extra);
        mosquitto("mosquitto_pub", port, &args)
    };

    // tls_version and ciphers, seen by OpenSSL's own client pinned to one version (a
    // mosquitto_pub --tls-version only sets its minimum).
    let handshake = |port: u16, args: &[&str]| {
        let output = Command::new("timeout")
            .args([
                "10",
                "openssl",
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
                "-CAfile",
                ca,
            ])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl s_client");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let midge = Midge::start_with_config(&tls_listener(&pki, "allow_anonymous true\ntls_version tlsv1.3"));
    let (ok, out) = handshake(midge.port(), &["-tls1_3"]);
    assert!(ok && out.contains("TLSv1.3"), "{out}");
    let (ok, out) = handshake(midge.port(), &["-tls1_2"]);
    assert!(!ok, "TLS 1.2 was accepted by a tlsv1.3 listener: {out}");
    drop(midge);

    // ciphers: only the suite named is offered to TLS 1.2 clients (the test keys are ECDSA).
    let midge = Midge::start_with_config(&tls_listener(
        &pki,
        "allow_anonymous true\nciphers ECDHE-ECDSA-AES128-GCM-SHA256",
    ));
    let (ok, out) = handshake(
        midge.port(),
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
    );
    assert!(ok && out.contains("ECDHE-ECDSA-AES128-GCM-SHA256"), "{out}");
    let (ok, out) = handshake(
        midge.port(),
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"],
    );
    assert!(!ok, "a suite not in `ciphers` was accepted: {out}");
    // Without tls_version, TLS 1.2 works too.
    let (ok, out) = handshake(midge.port(), &["-tls1_2"]);
    assert!(ok && out.contains("TLSv1.2"), "{out}");
    drop(midge);

    // capath: a directory of CA certificates (other files in it are skipped).
    let capath = pki.path("capath");
    std::fs::create_dir(&capath).unwrap();
    std::fs::copy(pki.path("ca.pem"), capath.join("5ed36f99.0")).unwrap();
    std::fs::write(capath.join("README"), "not a certificate\n").unwrap();
    let midge = Midge::start_with_config(&tls_listener(
        &pki,
        &format!(
            "allow_anonymous true\nrequire_certificate true\ncapath {}",
            capath.display()
        ),
    ));
    let (cert, key) = (pki.path("alice.pem"), pki.path("alice.key"));
    let with_cert = ["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()];
    assert!(publish(midge.port(), &with_cert).status.success());
    let (cert, key) = (pki.path("rogue-client.pem"), pki.path("rogue-client.key"));
    let foreign = ["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()];
    assert!(!publish(midge.port(), &foreign).status.success());
}
