//! The ACL file reader on arbitrary bytes, as the broker reads `acl_file`: every input is a set
//! of rules or an error naming a line of the input, never a panic. Accepted rules are then asked
//! about a few clients and topics, which runs the pattern substitution and topic matching on
//! whatever filters the input wrote.

#![no_main]

use libfuzzer_sys::fuzz_target;
use midge_auth::{Access, AclFile, ClientIdentity};

const ORIGIN: &str = "fuzz.acl";

fuzz_target!(|data: &[u8]| {
    let lines = data.split(|&b| b == b'\n').count();
    match AclFile::parse_bytes(data, ORIGIN) {
        Ok(acl) => {
            for warning in acl.warnings() {
                assert!((1..=lines).contains(&warning.at.line), "{warning}");
            }
            // The input's last line doubles as a topic and as a client's names.
            let last = data.rsplit(|&b| b == b'\n').next().unwrap_or_default();
            let text = String::from_utf8_lossy(last);
            let clients = [
                ClientIdentity {
                    client_id: "c",
                    username: None,
                },
                ClientIdentity {
                    client_id: "c",
                    username: Some("u"),
                },
                ClientIdentity {
                    client_id: &text,
                    username: Some(&text),
                },
            ];
            for client in &clients {
                for topic in ["a/b", "$SYS/broker/load", "", "/", &text] {
                    for access in [Access::Read, Access::Write, Access::Subscribe] {
                        let decision = acl.decide(client, topic, access);
                        assert_eq!(decision.allowed(), acl.check(client, topic, access));
                    }
                }
            }
        }
        Err(error) => {
            let at = error.location().expect("an error reading text names its line");
            assert!((1..=lines).contains(&at.line), "{error}");
            assert_eq!(at.file.to_str(), Some(ORIGIN));
            let _ = error.to_string();
        }
    }
});
