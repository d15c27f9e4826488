//! Mosquitto password files (`password_file`): reading one the way Mosquitto 2.0 does, and
//! checking a CONNECT's user name and password against it.
//!
//! Reads the file it is given and nothing else; never logs (the problems it skips are returned
//! as [`PasswordFile::warnings`] for the caller to log). The hash formats are in
//! [`crate::password_hash`].
//!
//! How a file is read (Mosquitto 2.0 `pwfile__parse` and `unpwd__decode_passwords` in
//! `src/security_default.c`):
//! - One entry per line, `username:hash`. A line whose first character is `#` is a comment
//!   (only in the first column). A line without `:` is ignored: blank lines, and plain-text
//!   lines that `mosquitto_passwd -U` has not converted yet.
//! - The fields are split like `strtok(line, ":")`: empty fields are skipped, so `:bob:HASH` and
//!   `bob::HASH` both mean user `bob`, and anything after a third `:` is ignored. Each field is
//!   trimmed of C white space (space, tab, CR, LF, VT, FF) at both ends, so a CRLF file or
//!   trailing blanks are harmless.
//! - A user with no hash, an unreadable hash, or a field longer than 65535 bytes is left out and
//!   reported as a warning; the rest of the file still counts (Mosquitto logs and goes on).
//! - A user listed twice: the last line with a usable hash wins (Mosquitto's hash table puts the
//!   newest entry first).
//! - A line that is not UTF-8 is left out with a warning: an MQTT user name is UTF-8, so it could
//!   never match.
//!
//! Checking ([`PasswordFile::check`]): a user not in the file, or a CONNECT with a user name and
//! no password, is refused, as in Mosquitto. A CONNECT without a user name is not this file's
//! business (Mosquitto leaves it to `allow_anonymous`).

use std::collections::HashMap;
use std::fs;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use crate::error::{AuthFileError, Location, Problem, Warning};
use crate::password_hash::{MOSQUITTO_PBKDF2_ITERATIONS, StoredHash};
use crate::text;

/// Mosquitto ignores user names and hashes longer than this.
const MAX_FIELD_LEN: usize = 65535;

/// A password file, read.
#[derive(Debug, Clone)]
pub struct PasswordFile {
    origin: PathBuf,
    users: HashMap<String, StoredHash>,
    /// What an unknown user's password is hashed against, so that a refusal takes as long for
    /// an unknown user as for a known one with a wrong password.
    decoy: StoredHash,
    warnings: Vec<Warning>,
}

impl PasswordFile {
    /// Reads the password file at `path`. Only a file that cannot be read is an error; bad
    /// lines are skipped as Mosquitto skips them and listed in [`PasswordFile::warnings`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, AuthFileError> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(|source| AuthFileError::Read {
            path: path.to_owned(),
            what: "password file",
            source,
        })?;
        Ok(Self::parse_bytes(&bytes, path))
    }

    /// Reads a password file's contents; `origin` names it in warnings. Never fails: bad lines
    /// are skipped and listed in [`PasswordFile::warnings`].
    pub fn parse(text: &str, origin: impl Into<PathBuf>) -> Self {
        Self::parse_bytes(text.as_bytes(), origin)
    }

    /// As [`PasswordFile::parse`], for contents that may not be UTF-8.
    pub fn parse_bytes(bytes: &[u8], origin: impl Into<PathBuf>) -> Self {
        let origin = origin.into();
        let mut users = HashMap::new();
        let mut warnings = Vec::new();
        for (index, raw) in text::lines(bytes).enumerate() {
            let at = || Location {
                file: origin.clone(),
                line: index + 1,
            };
            match parse_line(raw) {
                Ok(Some((user, hash))) => {
                    users.insert(user, hash);
                }
                Ok(None) => {}
                Err(problem) => warnings.push(Warning { at: at(), problem }),
            }
        }
        let decoy = typical_hash(users.values()).decoy();
        Self {
            origin,
            users,
            decoy,
            warnings,
        }
    }

    /// Whether `username` is in the file and `password` is its password. A missing or empty
    /// password is refused, as in Mosquitto 2.0.
    ///
    /// Timing: the hash comparison is constant-time, and an unknown user's password is hashed
    /// against a decoy of the file's most common format and cost, so the answer takes about as
    /// long whether or not the user exists. Slow on purpose: run it off the network threads.
    pub fn check(&self, username: &str, password: Option<&[u8]>) -> bool {
        // Mosquitto 2.0 reads an empty password field as no password at all, so it never
        // matches, not even a hash of "" (recorded in testdata/passwd_quirks.tsv).
        let Some(password) = password.filter(|password| !password.is_empty()) else {
            // The client knows it sent no password: answering fast reveals nothing.
            return false;
        };
        match self.users.get(username) {
            Some(stored) => stored.verify(password),
            None => {
                black_box(self.decoy.verify(black_box(password)));
                false
            }
        }
    }

    /// Whether the file has an entry for `username`.
    pub fn contains_user(&self, username: &str) -> bool {
        self.users.contains_key(username)
    }

    /// How many users the file has.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file has no users (every connection with a user name is then refused).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The lines that were skipped and why, in file order. Mosquitto logs these and starts; so
    /// should the broker.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// The file's name, as given to `load` or `parse`.
    pub fn origin(&self) -> &Path {
        &self.origin
    }
}

/// One line: `Ok(None)` for a line Mosquitto ignores silently, `Err` for one it drops with a
/// message.
fn parse_line(raw: &[u8]) -> Result<Option<(String, StoredHash)>, Problem> {
    if raw.first() == Some(&b'#') {
        return Ok(None);
    }
    if !raw.contains(&b':') {
        if text::c_trim_bytes(raw).is_empty() {
            return Ok(None);
        }
        return Err(Problem::NoColon);
    }
    let (user, hash) = split_line(raw);
    let Some(user) = user else {
        // Only colons: strtok finds no user name.
        return Ok(None);
    };
    let user = std::str::from_utf8(user).map_err(|_| Problem::NotUtf8)?;
    if user.len() > MAX_FIELD_LEN {
        return Err(Problem::TooLong { what: "user name" });
    }
    let missing = || Problem::MissingHash {
        user: user.to_owned(),
    };
    let hash = hash.ok_or_else(missing)?;
    if hash.len() > MAX_FIELD_LEN {
        return Err(Problem::TooLong {
            what: "password hash",
        });
    }
    if hash.is_empty() {
        return Err(missing());
    }
    let hash = std::str::from_utf8(hash).map_err(|_| Problem::NotUtf8)?;
    match StoredHash::parse(hash) {
        Ok(stored) => Ok(Some((user.to_owned(), stored))),
        Err(reason) => Err(Problem::BadHash {
            user: user.to_owned(),
            reason,
        }),
    }
}

/// The user name and password hash fields of one line (without its `\n`), split as every
/// Mosquitto reader of the file splits them: the first two fields of `strtok(line, ":")`, so
/// empty fields are skipped and anything after a third `:` is ignored, each trimmed of C white
/// space. A field strtok does not find is `None`; a field of white space only is empty.
///
/// Shared by the broker's reader ([`PasswordFile::parse`]) and `midge passwd`, which must agree
/// on which user a line belongs to.
pub fn split_line(raw: &[u8]) -> (Option<&[u8]>, Option<&[u8]>) {
    let mut fields = raw
        .split(|&byte| byte == b':')
        .filter(|field| !field.is_empty())
        .map(text::c_trim_bytes);
    (fields.next(), fields.next())
}

/// The most common format and cost among `hashes` (what an unknown user's decoy should cost);
/// Mosquitto 2.0's `$7$` default when there are none.
fn typical_hash<'a>(hashes: impl Iterator<Item = &'a StoredHash>) -> StoredHash {
    let mut counts: Vec<(&StoredHash, usize)> = Vec::new();
    for hash in hashes {
        match counts.iter_mut().find(|(seen, _)| seen.same_cost(hash)) {
            Some((_, count)) => *count += 1,
            None => counts.push((hash, 1)),
        }
    }
    match counts.into_iter().max_by_key(|&(_, count)| count) {
        Some((hash, _)) => hash.clone(),
        None => StoredHash::pbkdf2_template(
            NonZeroU32::new(MOSQUITTO_PBKDF2_ITERATIONS).unwrap_or(NonZeroU32::MIN),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::password_hash::{HashKind, hash_password};

    fn pbkdf2(password: &str) -> String {
        let iterations = NonZeroU32::new(MOSQUITTO_PBKDF2_ITERATIONS).unwrap();
        hash_password(password.as_bytes(), HashKind::Sha512Pbkdf2 { iterations }).unwrap()
    }

    fn messages(file: &PasswordFile) -> Vec<String> {
        file.warnings().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn users_are_checked_against_their_hash() {
        let text = format!("alice:{}\nbob:{}\n", pbkdf2("wonderland"), pbkdf2("builder"));
        let file = PasswordFile::parse(&text, "pw");
        assert_eq!(file.len(), 2);
        assert!(file.check("alice", Some(b"wonderland")));
        assert!(file.check("bob", Some(b"builder")));
        assert!(!file.check("alice", Some(b"builder")));
        assert!(!file.check("alice", None));
        assert!(!file.check("alice", Some(b"")));
        assert!(!file.check("carol", Some(b"wonderland")));
        assert!(!file.check("Alice", Some(b"wonderland")));
        assert!(file.warnings().is_empty());
    }

    #[test]
    fn comments_blank_lines_and_lines_without_colon_are_ignored() {
        let text = format!(
            "# a comment: with a colon\n\n   \nplain text line\nalice:{}\n",
            pbkdf2("a")
        );
        let file = PasswordFile::parse(&text, "pw");
        assert_eq!(file.len(), 1);
        assert!(file.check("alice", Some(b"a")));
        assert_eq!(
            messages(&file),
            ["pw:4: no ':' between user name and password hash; line ignored"]
        );
    }

    #[test]
    fn only_a_hash_in_the_first_column_starts_a_comment() {
        let text = format!(" #alice:{}\n", pbkdf2("a"));
        let file = PasswordFile::parse(&text, "pw");
        assert!(file.check("#alice", Some(b"a")));
    }

    #[test]
    fn crlf_and_blanks_around_fields_are_trimmed() {
        let text = format!("  alice \t: {} \r\nbob:{}\r\n", pbkdf2("a"), pbkdf2("b"));
        let file = PasswordFile::parse(&text, "pw");
        assert!(file.check("alice", Some(b"a")));
        assert!(file.check("bob", Some(b"b")));
    }

    #[test]
    fn fields_split_like_strtok() {
        let text = format!(":alice:{}\nbob::{}:extra\n", pbkdf2("a"), pbkdf2("b"));
        let file = PasswordFile::parse(&text, "pw");
        assert!(file.check("alice", Some(b"a")));
        assert!(file.check("bob", Some(b"b")));
    }

    #[test]
    fn the_last_usable_entry_for_a_user_wins() {
        let text = format!(
            "alice:{}\nalice:{}\nalice:$9$junk\nalice:\n",
            pbkdf2("old"),
            pbkdf2("new")
        );
        let file = PasswordFile::parse(&text, "pw");
        assert!(file.check("alice", Some(b"new")));
        assert!(!file.check("alice", Some(b"old")));
        assert_eq!(
            messages(&file),
            [
                "pw:3: user \"alice\": unknown password hash type (expected $6$, $7$ or $argon2id$); user ignored",
                "pw:4: user \"alice\" has no password hash; user ignored",
            ]
        );
    }

    #[test]
    fn bad_entries_are_warnings_and_the_rest_still_counts() {
        let text = format!(
            "nohash:\nblank:   \nbad:$7$abc$AAAA$AAAA\nshort:$6$AAAAAAAAAAAAAAAA$AAAA\nok:{}\n",
            pbkdf2("fine")
        );
        let file = PasswordFile::parse(&text, "/etc/mosquitto/pw");
        assert_eq!(file.len(), 1);
        assert!(file.check("ok", Some(b"fine")));
        assert!(!file.contains_user("nohash"));
        assert_eq!(
            messages(&file),
            [
                "/etc/mosquitto/pw:1: user \"nohash\" has no password hash; user ignored",
                "/etc/mosquitto/pw:2: user \"blank\" has no password hash; user ignored",
                "/etc/mosquitto/pw:3: user \"bad\": invalid PBKDF2 iteration count \"abc\"; user ignored",
                "/etc/mosquitto/pw:4: user \"short\": hash is 3 bytes (expected 64); user ignored",
            ]
        );
    }

    #[test]
    fn overlong_fields_are_skipped() {
        let text = format!("{}:{}\n", "u".repeat(65536), pbkdf2("a"));
        let file = PasswordFile::parse(&text, "pw");
        assert!(file.is_empty());
        assert_eq!(
            messages(&file),
            ["pw:1: user name longer than 65535 bytes; line ignored"]
        );
    }

    #[test]
    fn lines_that_are_not_utf8_are_skipped() {
        let mut bytes = b"caf\xe9:".to_vec();
        bytes.extend_from_slice(pbkdf2("a").as_bytes());
        bytes.extend_from_slice(format!("\nok:{}", pbkdf2("b")).as_bytes());
        let file = PasswordFile::parse_bytes(&bytes, "pw");
        assert!(file.check("ok", Some(b"b")), "the last line needs no newline");
        assert_eq!(messages(&file), ["pw:1: line is not valid UTF-8"]);
    }

    #[test]
    fn lines_split_like_strtok_then_trim() {
        assert_eq!(
            split_line(b"alice:$7$x"),
            (Some(&b"alice"[..]), Some(&b"$7$x"[..]))
        );
        assert_eq!(
            split_line(b"::bob:: h :rest"),
            (Some(&b"bob"[..]), Some(&b"h"[..]))
        );
        assert_eq!(split_line(b" carol \r"), (Some(&b"carol"[..]), None));
        assert_eq!(split_line(b"dave: \t"), (Some(&b"dave"[..]), Some(&b""[..])));
        assert_eq!(split_line(b":::"), (None, None));
        assert_eq!(split_line(b""), (None, None));
    }

    #[test]
    fn bytes_after_the_hash_field_need_not_be_utf8() {
        let mut bytes = format!("alice:{}:", pbkdf2("a")).into_bytes();
        bytes.extend_from_slice(b"\xff\xfe");
        let file = PasswordFile::parse_bytes(&bytes, "pw");
        assert!(file.check("alice", Some(b"a")));
        assert!(file.warnings().is_empty());
    }

    #[test]
    fn load_names_the_file_it_cannot_read() {
        let err = PasswordFile::load("/nonexistent/midge/pw").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/nonexistent/midge/pw: cannot read password file: "),
            "{err}"
        );
        assert!(err.location().is_none());
    }

    #[test]
    fn load_reads_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        fs::write(&path, format!("alice:{}\nbroken\n", pbkdf2("a"))).unwrap();
        let file = PasswordFile::load(&path).unwrap();
        assert!(file.check("alice", Some(b"a")));
        assert_eq!(file.origin(), path);
        assert_eq!(file.warnings()[0].at.line, 2);
    }

    #[test]
    fn the_decoy_follows_the_most_common_cost() {
        let slow = hash_password(
            b"x",
            HashKind::Sha512Pbkdf2 {
                iterations: NonZeroU32::new(20_000).unwrap(),
            },
        )
        .unwrap();
        let text = format!("a:{slow}\nb:{slow}\nc:{}\n", pbkdf2("c"));
        let file = PasswordFile::parse(&text, "pw");
        assert!(file.decoy.same_cost(&StoredHash::parse(&slow).unwrap()));
    }

    /// Unknown users must not be refused measurably faster than known users with a wrong
    /// password. Costs are made large (20000 PBKDF2 rounds, ~10 ms) so scheduling noise is
    /// small next to them; the bound is loose (half) so the test does not flake.
    #[test]
    fn unknown_users_take_as_long_as_wrong_passwords() {
        let slow = hash_password(
            b"x",
            HashKind::Sha512Pbkdf2 {
                iterations: NonZeroU32::new(20_000).unwrap(),
            },
        )
        .unwrap();
        let file = PasswordFile::parse(&format!("alice:{slow}\n"), "pw");
        let time = |user: &str| {
            let start = Instant::now();
            for _ in 0..5 {
                assert!(!file.check(user, Some(b"wrong")));
            }
            start.elapsed()
        };
        let known = time("alice").min(time("alice"));
        let unknown = time("mallory").min(time("mallory"));
        assert!(unknown > known / 2, "unknown {unknown:?} vs known {known:?}");
        assert!(known > Duration::from_millis(1));
    }
}
