//! The mosquitto.conf reader on arbitrary bytes: every input is a configuration or an error,
//! never a panic. Oracle beyond "no panic": an error names a line of the input (reading the
//! text never fails without one), every notice names a line of the input, and an accepted
//! configuration has a listener to open.
//!
//! Inputs mentioning `include_dir` are skipped: that directive reads real directories, and a
//! fuzz target must not depend on the machine's files.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use midge_server::config::{Config, Location};

const ORIGIN: &str = "fuzz.conf";

fuzz_target!(|data: &[u8]| {
    if data.windows(b"include_dir".len()).any(|w| w == b"include_dir") {
        return;
    }
    // Lines are cut at `\n`; the text after the last one is a line too.
    let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
    let in_input = |at: &Location| at.file == Path::new(ORIGIN) && (1..=lines).contains(&at.line);
    match Config::parse_bytes(data, ORIGIN) {
        Ok(config) => {
            assert!(!config.listeners.is_empty(), "accepted without a listener");
            for notice in &config.notices {
                assert!(in_input(&notice.at), "notice outside the input: {notice}");
                let _ = notice.to_string();
            }
        }
        Err(error) => {
            let at = error.location().expect("an error reading text names its line");
            assert!(in_input(at), "error outside the input: {error}");
            let _ = error.to_string();
        }
    }
});
