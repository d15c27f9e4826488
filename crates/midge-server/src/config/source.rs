//! The text layer of mosquitto.conf: reading files, cutting them into lines, skipping blank lines
//! and comments, splitting the directive name from its value, and listing an `include_dir`.
//!
//! Nothing here knows what a directive means.
//!
//! Mosquitto's rules, and where Midge is more lenient (a file Mosquitto accepts means the same
//! thing to Midge):
//! - A line is cut at `\n`; a trailing `\r` is dropped.
//! - A comment is a line whose first character is `#`. Midge also treats a line whose first
//!   non-blank character is `#` as a comment, and ignores leading blanks before a directive
//!   (Mosquitto rejects the former and accepts the latter only with spaces).
//! - The directive and its values are separated by spaces; Midge also accepts tabs.
//! - `include_dir` reads the files of a directory whose names end in `.conf` (and are longer than
//!   that), sorted as Mosquitto sorts them: by name ignoring case, then with upper case first.

use std::cmp::Ordering;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::ConfigError;

/// Reads a whole configuration file.
pub(super) fn read(path: &Path) -> Result<Vec<u8>, ConfigError> {
    fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The lines of a file with their numbers (from 1), without line terminators.
pub(super) fn lines(text: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    // A final newline ends the last line rather than starting an empty one; an empty line at
    // the end would be skipped anyway.
    text.split(|&b| b == b'\n').enumerate().map(|(index, line)| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        (index + 1, line)
    })
}

/// True for a blank line or a comment, which are skipped before anything else: a comment need
/// not be UTF-8 (Mosquitto never looks at it).
pub(super) fn is_blank_or_comment(line: &[u8]) -> bool {
    match line.iter().find(|&&b| b != b' ' && b != b'\t') {
        None => true,
        Some(&first) => first == b'#',
    }
}

/// Splits a line into its directive name and the rest (leading blanks removed), or `None` for a
/// blank line or a comment.
pub(super) fn directive(line: &str) -> Option<(&str, &str)> {
    let line = line.trim_start_matches(is_blank);
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    match line.split_once(is_blank) {
        Some((name, rest)) => Some((name, rest.trim_start_matches(is_blank))),
        None => Some((line, "")),
    }
}

/// The separators between a directive and its values.
pub(super) fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// The `*.conf` files of `dir`, in Mosquitto's order.
pub(super) fn include_dir_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let bytes = name.as_encoded_bytes();
        if bytes.len() > ".conf".len() && bytes.ends_with(b".conf") {
            names.push(name);
        }
    }
    names.sort_by(|a, b| mosquitto_order(a.as_encoded_bytes(), b.as_encoded_bytes()));
    Ok(names.into_iter().map(|name| dir.join(name)).collect())
}

/// Mosquitto's `scmp_p`: at the first differing position, compare ignoring ASCII case, then by
/// byte value (so `A.conf` < `a.conf` < `B.conf`); a prefix sorts first.
fn mosquitto_order(a: &[u8], b: &[u8]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let order = x.to_ascii_uppercase().cmp(&y.to_ascii_uppercase()).then(x.cmp(y));
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_blank_lines_and_separators() {
        assert_eq!(directive(""), None);
        assert_eq!(directive("   \t"), None);
        assert_eq!(directive("# listener 1883"), None);
        assert_eq!(directive("  \t# indented comment"), None);
        assert_eq!(directive("listener 1883"), Some(("listener", "1883")));
        assert_eq!(
            directive("  listener\t 1883 ::1 "),
            Some(("listener", "1883 ::1 "))
        );
        assert_eq!(directive("persistence"), Some(("persistence", "")));
    }

    #[test]
    fn lines_are_numbered_from_one_and_lose_their_terminators() {
        let text = b"a 1\r\nb 2\n\nc 3";
        let got: Vec<_> = lines(text).collect();
        assert_eq!(
            got,
            vec![
                (1, &b"a 1"[..]),
                (2, &b"b 2"[..]),
                (3, &b""[..]),
                (4, &b"c 3"[..])
            ]
        );
    }

    #[test]
    fn include_order_is_mosquittos() {
        let mut names = vec![
            "b.conf", "a.conf", "B.conf", "A.conf", "ab.conf", "a_.conf", "10.conf", "9.conf",
        ];
        names.sort_by(|a, b| mosquitto_order(a.as_bytes(), b.as_bytes()));
        assert_eq!(
            names,
            [
                "10.conf", "9.conf", "A.conf", "a.conf", "ab.conf", "a_.conf", "B.conf", "b.conf"
            ]
        );
    }
}
