//! The changes `midge passwd` makes to a password file's contents, as `mosquitto_passwd` 2.0
//! makes them: set one user's hash, delete one user, or hash every plain-text password (`-U`).
//!
//! Pure functions from the old contents to the new ones: no files, no terminal, no hashing of
//! its own (the caller passes the hash, or a function that makes one). Lines are split exactly
//! as the broker splits them ([`midge_auth::password_file::split_line`]), so the tool and the
//! broker always agree on which user a line is.
//!
//! What `mosquitto_passwd` 2.0.11 requires of every line it reads: a user name and a password
//! field, both non-empty once trimmed. Any other line (blank, a comment, a user without a hash)
//! makes the file "corrupt" and nothing is written. Lines that are not changed are copied byte
//! for byte, line ending included.
//!
//! Two deliberate differences from 2.0.11, both where it loses data:
//! - Adding a user to a file with a corrupt line: 2.0.11 reports the line, then writes the lines
//!   before it and the new user, dropping every line after it (and exits 0). Here the file is
//!   left alone and the command fails.
//! - Adding a user to a file whose last line has no `\n`: 2.0.11 glues the new entry onto that
//!   line (`bob:$7$…alice:$7$…`). Here the new entry starts a line of its own.

use midge_auth::password_file::split_line;

/// Why a file cannot be changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum EditError<E> {
    /// A line without both a user name and a password field (`mosquitto_passwd`'s "Corrupt
    /// password file at line N"). `user_seen`: whether the user being deleted or set was on an
    /// earlier line.
    Corrupt { line: usize, user_seen: bool },
    /// `-D` for a user the file does not have.
    UserNotFound,
    /// `-U` on an empty file: `mosquitto_passwd` 2.0.11 fails without a message.
    Empty,
    /// Making a hash failed.
    Hash(E),
}

/// One line of a file: its number (from 1), its bytes with the line ending, and its user name
/// and password fields.
struct Entry<'a> {
    number: usize,
    raw: &'a [u8],
    user: &'a [u8],
    password: &'a [u8],
}

/// The entries of `text` in order, stopping at the first corrupt line.
fn entries(text: &[u8]) -> impl Iterator<Item = Result<Entry<'_>, usize>> {
    text.split_inclusive(|&byte| byte == b'\n')
        .enumerate()
        .map(|(index, raw)| {
            let number = index + 1;
            let line = raw.strip_suffix(b"\n").unwrap_or(raw);
            match split_line(line) {
                (Some(user), Some(password)) if !user.is_empty() && !password.is_empty() => Ok(Entry {
                    number,
                    raw,
                    user,
                    password,
                }),
                _ => Err(number),
            }
        })
}

/// `user:hash\n`, the line `mosquitto_passwd` writes.
fn entry_line(out: &mut Vec<u8>, user: &[u8], hash: &str) {
    out.extend_from_slice(user);
    out.push(b':');
    out.extend_from_slice(hash.as_bytes());
    out.push(b'\n');
}

/// `text` with `user`'s password hash set to `hash`: every line of that user is replaced, or,
/// if there is none, a line is added at the end.
pub(super) fn set_password<E>(text: &[u8], user: &[u8], hash: &str) -> Result<Vec<u8>, EditError<E>> {
    let mut out = Vec::with_capacity(text.len() + user.len() + hash.len() + 2);
    let mut found = false;
    for entry in entries(text) {
        let entry = entry.map_err(|line| EditError::Corrupt {
            line,
            user_seen: found,
        })?;
        if entry.user == user {
            found = true;
            entry_line(&mut out, user, hash);
        } else {
            out.extend_from_slice(entry.raw);
        }
    }
    if !found {
        if out.last().is_some_and(|&byte| byte != b'\n') {
            out.push(b'\n');
        }
        entry_line(&mut out, user, hash);
    }
    Ok(out)
}

/// `text` without `user`'s lines.
pub(super) fn delete_user<E>(text: &[u8], user: &[u8]) -> Result<Vec<u8>, EditError<E>> {
    let mut out = Vec::with_capacity(text.len());
    let mut found = false;
    for entry in entries(text) {
        let entry = entry.map_err(|line| EditError::Corrupt {
            line,
            user_seen: found,
        })?;
        if entry.user == user {
            found = true;
        } else {
            out.extend_from_slice(entry.raw);
        }
    }
    if found {
        Ok(out)
    } else {
        Err(EditError::UserNotFound)
    }
}

/// `text` with every `user:password` line replaced by `user:HASH`, where `hash` hashes the
/// password. Like `mosquitto_passwd -U`, it does not look at what the password field holds:
/// a line that is already hashed gets its hash hashed.
pub(super) fn hash_all<E>(
    text: &[u8],
    mut hash: impl FnMut(&[u8]) -> Result<String, E>,
) -> Result<Vec<u8>, EditError<E>> {
    let mut out = Vec::with_capacity(text.len() * 2);
    let mut lines = 0;
    for entry in entries(text) {
        let entry = entry.map_err(|line| EditError::Corrupt {
            line,
            user_seen: false,
        })?;
        lines = entry.number;
        let hashed = hash(entry.password).map_err(EditError::Hash)?;
        entry_line(&mut out, entry.user, &hashed);
    }
    if lines == 0 {
        return Err(EditError::Empty);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Result<T> = std::result::Result<T, EditError<()>>;

    #[test]
    fn setting_replaces_the_users_line_and_keeps_the_others_byte_for_byte() {
        let text = b"alice:$7$a\r\n bob :$7$b\ncarol:$7$c";
        let out: Result<_> = set_password(text, b"bob", "NEW");
        assert_eq!(out.unwrap(), b"alice:$7$a\r\nbob:NEW\ncarol:$7$c");
    }

    #[test]
    fn setting_a_new_user_appends_on_a_line_of_its_own() {
        let out: Result<_> = set_password(b"alice:x\n", b"bob", "H");
        assert_eq!(out.unwrap(), b"alice:x\nbob:H\n");
        let out: Result<_> = set_password(b"alice:x", b"bob", "H");
        assert_eq!(
            out.unwrap(),
            b"alice:x\nbob:H\n",
            "2.0.11 would write alice:xbob:H"
        );
        let out: Result<_> = set_password(b"", b"bob", "H");
        assert_eq!(out.unwrap(), b"bob:H\n");
    }

    #[test]
    fn every_line_of_a_repeated_user_is_set() {
        let out: Result<_> = set_password(b"a:1\nb:2\na:3\n", b"a", "H");
        assert_eq!(out.unwrap(), b"a:H\nb:2\na:H\n");
    }

    #[test]
    fn user_names_compare_after_trimming_the_file_side_only() {
        let out: Result<_> = set_password(b" a :1\n", b" a", "H");
        assert_eq!(out.unwrap(), b" a :1\n a:H\n");
    }

    #[test]
    fn a_corrupt_line_stops_every_change() {
        for text in [
            &b"a:1\n\nb:2\n"[..],
            b"# comment\na:1\n",
            b"a:1\nb:\n",
            b"a:1\nb: \t\n",
            b"a:1\n:b\n",
            b"a:1\nplain\n",
        ] {
            let set: Result<_> = set_password(text, b"new", "H");
            let delete: Result<_> = delete_user(text, b"a");
            let all: Result<_> = hash_all(text, |_| Ok("H".into()));
            let line = if text.starts_with(b"#") { 1 } else { 2 };
            assert_eq!(
                set,
                Err(EditError::Corrupt {
                    line,
                    user_seen: false
                }),
                "{text:?}"
            );
            assert_eq!(
                delete,
                Err(EditError::Corrupt {
                    line,
                    user_seen: line == 2
                }),
                "{text:?}"
            );
            assert!(
                matches!(all, Err(EditError::Corrupt { line: l, .. }) if l == line),
                "{text:?}"
            );
        }
    }

    #[test]
    fn deleting_removes_every_line_of_the_user() {
        let out: Result<_> = delete_user(b"a:1\nb:2\r\na:3", b"a");
        assert_eq!(out.unwrap(), b"b:2\r\n");
        let out: Result<_> = delete_user(b"a:1\n", b"b");
        assert_eq!(out, Err(EditError::UserNotFound));
        let out: Result<_> = delete_user(b"", b"b");
        assert_eq!(out, Err(EditError::UserNotFound));
    }

    #[test]
    fn hashing_all_takes_the_second_field_trimmed() {
        let mut seen = Vec::new();
        let out: Result<_> = hash_all(b" a : b c \r\nd::e:f", |password| {
            seen.push(password.to_vec());
            Ok(format!("H{}", seen.len()))
        });
        assert_eq!(out.unwrap(), b"a:H1\nd:H2\n");
        assert_eq!(seen, [b"b c".to_vec(), b"e".to_vec()]);
    }

    #[test]
    fn hashing_all_of_an_empty_file_fails_and_hash_errors_pass_through() {
        let out: Result<_> = hash_all(b"", |_| Ok(String::new()));
        assert_eq!(out, Err(EditError::Empty));
        let out = hash_all(b"a:b\n", |_| Err::<String, _>("no entropy"));
        assert_eq!(out, Err(EditError::Hash("no entropy")));
    }
}
