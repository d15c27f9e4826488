//! The parsers are total: any bytes give a value or an error, never a panic, and a parsed ACL
//! answers any question. (A cargo-fuzz target can reuse the same entry points.)

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

use midge_auth::{Access, AclFile, ClientIdentity, PasswordFile, StoredHash};
use proptest::prelude::*;

/// Text made mostly of the words and symbols the formats care about, so that random input
/// reaches deep into the parsers instead of failing on the first word.
fn file_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("topic".to_owned()),
        Just("pattern".to_owned()),
        Just("user".to_owned()),
        Just("read".to_owned()),
        Just("write".to_owned()),
        Just("readwrite".to_owned()),
        Just("deny".to_owned()),
        Just(" ".to_owned()),
        Just("\n".to_owned()),
        Just("\t".to_owned()),
        Just("\r".to_owned()),
        Just("#".to_owned()),
        Just("+".to_owned()),
        Just("/".to_owned()),
        Just("%c".to_owned()),
        Just("%u".to_owned()),
        Just("%".to_owned()),
        Just("$".to_owned()),
        Just(":".to_owned()),
        Just("$6$".to_owned()),
        Just("$7$".to_owned()),
        Just("$argon2id$v=19$m=8,t=1,p=1$".to_owned()),
        Just("AAAAAAAAAAAAAAAA".to_owned()),
        Just("$SYS".to_owned()),
        "[a-z0-9=,]{0,6}",
        any::<String>(),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

fn topic() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z/#+$%]{0,12}",
        Just("$SYS/broker/connection/x/state".to_owned()),
        Just("$share/g/t".to_owned()),
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn acl_parse_is_total(text in file_text(), topics in prop::collection::vec(topic(), 0..4),
                          client_id in "[a-z+#/%]{0,6}", username in proptest::option::of("[a-z+#/%]{0,6}")) {
        if let Ok(acl) = AclFile::parse(&text, "acl") {
            let who = ClientIdentity { client_id: &client_id, username: username.as_deref() };
            for topic in &topics {
                for access in [Access::Read, Access::Write, Access::Subscribe] {
                    let decision = acl.decide(&who, topic, access);
                    prop_assert_eq!(decision.allowed(), acl.check(&who, topic, access));
                }
            }
        }
    }

    #[test]
    fn acl_parse_bytes_is_total(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = AclFile::parse_bytes(&bytes, "acl");
    }

    #[test]
    fn password_parse_is_total(text in file_text()) {
        let file = PasswordFile::parse(&text, "pw");
        // Cheap hashes only: random text never makes a costly one (argon2 m=8 t=1 is cheap,
        // PBKDF2 counts come from small random digits). Users are tried with a password.
        prop_assert!(file.len() <= text.lines().count());
    }

    #[test]
    fn password_parse_bytes_is_total(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = PasswordFile::parse_bytes(&bytes, "pw");
    }

    #[test]
    fn hash_parse_is_total(text in file_text()) {
        let _ = StoredHash::parse(&text);
    }
}

/// SCRAM messages made of the attributes RFC 5802 defines, and noise.
fn scram_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("n,".to_owned()),
        Just("y,".to_owned()),
        Just("p=tls,".to_owned()),
        Just(",".to_owned()),
        Just("a=".to_owned()),
        Just("n=".to_owned()),
        Just("r=".to_owned()),
        Just("c=biws".to_owned()),
        Just("p=".to_owned()),
        Just("m=".to_owned()),
        Just("=2C".to_owned()),
        Just("=3D".to_owned()),
        Just("=".to_owned()),
        Just("alice".to_owned()),
        Just("AAAA".to_owned()),
        "[a-zA-Z0-9+/=,]{0,8}",
        any::<String>(),
    ];
    prop::collection::vec(piece, 0..16).prop_map(|pieces| pieces.concat())
}

proptest! {
    #[test]
    fn scram_files_parse_or_fail_without_panicking(text in file_text()) {
        let _ = midge_auth::ScramFile::parse(&text, "scram");
        let _ = midge_auth::Verifier::parse(&text);
    }

    /// Any two client messages get an answer or an error: the broker runs this on whatever a
    /// client sends.
    #[test]
    fn scram_exchanges_take_any_messages(first in scram_text(), last in scram_text(), bytes in any::<Vec<u8>>()) {
        let file = midge_auth::ScramFile::parse("alice:SCRAM-SHA-256$1:c2FsdA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", "scram").unwrap();
        for mechanism in midge_auth::Mechanism::ALL {
            let mut exchange = midge_auth::ServerExchange::new(mechanism, "nonce".into());
            let _ = exchange.step(first.as_bytes(), &file);
            let _ = exchange.step(last.as_bytes(), &file);
            let _ = exchange.step(&bytes, &file);
            let mut exchange = midge_auth::ServerExchange::new(mechanism, "nonce".into());
            let _ = exchange.step(&bytes, &file);
        }
    }
}
