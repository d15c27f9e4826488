//! Random input never panics: every file is accepted or refused with an error. (`include_dir` is
//! left out of the generated lines so that tests never read random directories.)

use proptest::prelude::*;

use crate::config::Config;
use crate::config::directives;

/// Values that exercise every parser: numbers at and beyond the edges, booleans, durations,
/// addresses, paths, comments, and garbage.
const VALUES: &[&str] = &[
    "",
    "0",
    "1",
    "-1",
    "2",
    "3",
    "19",
    "20",
    "65535",
    "65536",
    "-9223372036854775808",
    "99999999999999999999999",
    "true",
    "false",
    "yes",
    "14d",
    "1y",
    "0d",
    "2x",
    "h",
    "127.0.0.1",
    "::1",
    "[::1]",
    "not@valid!",
    "localhost",
    "/run/mqtt.sock",
    "/tmp/a b",
    "#",
    "# comment",
    "mqtt",
    "websockets",
    "http_api",
    "ipv4",
    "ipv6",
    "none",
    "all",
    "file",
    "stdout",
    "3, 4",
    "sensors/# out 1",
    "in",
    "both 2 a/ b/",
    "é",
    "\u{0}",
    "\t",
    "a:1883",
    "h:0",
];

fn directive_name() -> impl Strategy<Value = String> {
    let known: Vec<&'static str> = directives::all()
        .map(|d| d.name)
        .filter(|name| *name != "include_dir")
        .collect();
    prop_oneof![
        4 => proptest::sample::select(known).prop_map(|name| name.replace('*', "key")),
        1 => "[a-z_]{1,12}",
        1 => "\\PC{0,8}".prop_filter("no include_dir", |name| !name.contains("include_dir")),
    ]
}

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (directive_name(), proptest::collection::vec(proptest::sample::select(VALUES), 0..4))
            .prop_map(|(name, values)| format!("{name} {}", values.join(" "))),
        1 => "\\PC{0,30}".prop_filter("no include_dir", |line| !line.contains("include_dir")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_lines_never_panic(lines in proptest::collection::vec(line(), 0..30)) {
        let text = lines.join("\n");
        if let Ok(config) = Config::parse_str(&text, "random.conf") {
            // Whatever is accepted has listeners, and notices that point into the file.
            prop_assert!(!config.listeners.is_empty());
            for notice in &config.notices {
                prop_assert!(notice.at.line >= 1 && notice.at.line <= lines.len().max(1));
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if !bytes.windows(11).any(|w| w == b"include_dir") {
            let _ = Config::parse_bytes(&bytes, "random.conf");
        }
    }
}
