//! Reading lines as Mosquitto's C code reads them: split at `\n`, trimmed of C white space.
//!
//! Shared by the password file and ACL file readers; knows nothing of either format.

/// C's `isspace` in the C locale: space, tab, LF, VT, FF, CR. Narrower than Rust's
/// `char::is_whitespace`, which would also trim, e.g., a no-break space that Mosquitto keeps.
pub(crate) const C_SPACE: [char; 6] = [' ', '\t', '\n', '\x0b', '\x0c', '\r'];

/// The lines of a file, without their `\n`. A final line needs no `\n`; a `\n` at the very
/// end does not start another line.
pub(crate) fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let empty = bytes.is_empty();
    body.split(|&byte| byte == b'\n').filter(move |_| !empty)
}

/// `s` without C white space at either end (Mosquitto's `misc__trimblanks`).
pub(crate) fn c_trim(s: &str) -> &str {
    s.trim_matches(C_SPACE)
}

/// `s` without C white space at its end (what Mosquitto strips from each ACL line).
pub(crate) fn c_trim_end(s: &str) -> &str {
    s.trim_end_matches(C_SPACE)
}

/// [`c_trim`] for bytes that may not be UTF-8.
pub(crate) fn c_trim_bytes(bytes: &[u8]) -> &[u8] {
    let is_space = |byte: &u8| matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let start = bytes.iter().position(|b| !is_space(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |end| end + 1);
    bytes.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_newlines() {
        let all = |bytes: &'static [u8]| lines(bytes).collect::<Vec<_>>();
        assert!(all(b"").is_empty());
        assert_eq!(all(b"\n"), [b"" as &[u8]]);
        assert_eq!(all(b"a"), [b"a" as &[u8]]);
        assert_eq!(all(b"a\n"), [b"a" as &[u8]]);
        assert_eq!(all(b"a\n\nb"), [b"a" as &[u8], b"", b"b"]);
        assert_eq!(all(b"a\r\nb\r\n"), [b"a\r" as &[u8], b"b\r"]);
    }

    #[test]
    fn trimming_is_c_isspace() {
        assert_eq!(c_trim(" \t\x0b\x0ca b\r\n"), "a b");
        assert_eq!(c_trim("\u{a0}a\u{a0}"), "\u{a0}a\u{a0}");
        assert_eq!(c_trim_end("  a  "), "  a");
        assert_eq!(c_trim_bytes(b" \xff "), b"\xff");
        assert_eq!(c_trim_bytes(b"   "), b"");
    }
}
