//! The password file reader on arbitrary bytes, as the broker reads `password_file`: it never
//! fails and never panics. Oracle beyond "no panic": every skipped line is reported once, with
//! a line number within the input, and there are no more users than lines.
//!
//! Passwords are not checked: a hash may ask for billions of PBKDF2 rounds, which is slow, not
//! wrong (`hash` fuzzing is `StoredHash::parse`, reached through every line here).

#![no_main]

use libfuzzer_sys::fuzz_target;
use midge_auth::PasswordFile;

fuzz_target!(|data: &[u8]| {
    let lines = data.split(|&b| b == b'\n').count();
    let file = PasswordFile::parse_bytes(data, "fuzz.pw");
    assert!(file.len() <= lines);
    let mut previous = 0;
    for warning in file.warnings() {
        let line = warning.at.line;
        assert!(
            line > previous && line <= lines,
            "{warning} (previous line {previous}, {lines} lines)"
        );
        previous = line;
        let _ = warning.to_string();
    }
});
