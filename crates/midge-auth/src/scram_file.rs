//! SCRAM verifier files (`scram_file`): the users who may log in with enhanced authentication
//! (`SCRAM-SHA-256`, `SCRAM-SHA-512`), as `midge passwd -H scram` writes them.
//!
//! The format follows the password file's: one user per line, `username:VERIFIERS`, where
//! VERIFIERS is one verifier or two separated by a space, each
//! `MECHANISM$ITERATIONS:SALT$STOREDKEY:SERVERKEY` ([`Verifier`]):
//!
//! ```text
//! # midge passwd -H scram -c scram.txt alice
//! alice:SCRAM-SHA-256$4096:…$…:… SCRAM-SHA-512$10000:…$…:…
//! ```
//!
//! A line whose first character is `#` is a comment; blank lines are skipped; the user name
//! runs to the first `:`, and both fields are trimmed of white space. The file is new to
//! Midge, so it is read strictly: a line that cannot be used, a user named twice or a
//! mechanism given twice on one line is an error naming the file and line, and the broker does
//! not start (a reload keeps the file it had), where Mosquitto's password file would skip it.
//!
//! Reads the file it is given and nothing else, never logs.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{AuthFileError, Location, Problem};
use crate::scram::{Mechanism, Verifier, VerifierLookup};
use crate::text;

/// A SCRAM verifier file, read.
#[derive(Debug, Clone)]
pub struct ScramFile {
    origin: PathBuf,
    users: HashMap<String, Vec<Verifier>>,
    /// Keys the decoys answered to unknown users: random for each file read.
    decoy_secret: [u8; 32],
}

impl ScramFile {
    /// Reads the SCRAM file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, AuthFileError> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(|source| AuthFileError::Read {
            path: path.to_owned(),
            what: "SCRAM file",
            source,
        })?;
        Self::parse_bytes(&bytes, path)
    }

    /// Reads a SCRAM file's contents; `origin` names it in errors.
    pub fn parse(text: &str, origin: impl Into<PathBuf>) -> Result<Self, AuthFileError> {
        Self::parse_bytes(text.as_bytes(), origin)
    }

    /// As [`ScramFile::parse`], for contents that may not be UTF-8.
    pub fn parse_bytes(bytes: &[u8], origin: impl Into<PathBuf>) -> Result<Self, AuthFileError> {
        let origin = origin.into();
        let mut users: HashMap<String, Vec<Verifier>> = HashMap::new();
        let mut first_seen: HashMap<String, usize> = HashMap::new();
        for (index, raw) in text::lines(bytes).enumerate() {
            let line = index + 1;
            let fail = |problem| AuthFileError::Line {
                at: Location {
                    file: origin.clone(),
                    line,
                },
                problem,
            };
            let raw = std::str::from_utf8(raw).map_err(|_| fail(Problem::NotUtf8))?;
            if raw.starts_with('#') || text::c_trim(raw).is_empty() {
                continue;
            }
            let (user, verifiers) = raw
                .split_once(':')
                .ok_or_else(|| fail(Problem::NoVerifierColon))?;
            let user = text::c_trim(user);
            if user.is_empty() {
                return Err(fail(Problem::EmptyUsername));
            }
            let mut parsed: Vec<Verifier> = Vec::new();
            for field in text::c_trim(verifiers)
                .split(text::C_SPACE)
                .filter(|f| !f.is_empty())
            {
                let verifier = Verifier::parse(field).map_err(|reason| {
                    fail(Problem::BadVerifier {
                        user: user.to_owned(),
                        reason,
                    })
                })?;
                if parsed.iter().any(|v| v.mechanism() == verifier.mechanism()) {
                    return Err(fail(Problem::DuplicateMechanism {
                        user: user.to_owned(),
                        mechanism: verifier.mechanism().name(),
                    }));
                }
                parsed.push(verifier);
            }
            if parsed.is_empty() {
                return Err(fail(Problem::MissingVerifier {
                    user: user.to_owned(),
                }));
            }
            if let Some(&first) = first_seen.get(user) {
                return Err(fail(Problem::DuplicateUser {
                    user: user.to_owned(),
                    first,
                }));
            }
            first_seen.insert(user.to_owned(), line);
            users.insert(user.to_owned(), parsed);
        }
        let mut decoy_secret = [0u8; 32];
        // Without the system's randomness the decoys are still stable per name, only
        // predictable; logging in is unaffected.
        let _ = getrandom::fill(&mut decoy_secret);
        Ok(Self {
            origin,
            users,
            decoy_secret,
        })
    }

    /// The number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file has no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether `username` has a verifier for some mechanism.
    pub fn contains_user(&self, username: &str) -> bool {
        self.users.contains_key(username)
    }

    /// The file's name, as given to `load` or `parse`.
    pub fn origin(&self) -> &Path {
        &self.origin
    }
}

impl VerifierLookup for ScramFile {
    fn verifier(&self, username: &str, mechanism: Mechanism) -> Option<Verifier> {
        self.users
            .get(username)?
            .iter()
            .find(|verifier| verifier.mechanism() == mechanism)
            .cloned()
    }

    fn decoy(&self, username: &str, mechanism: Mechanism) -> Verifier {
        Verifier::decoy(mechanism, &self.decoy_secret, username)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail by panicking")]

    use super::*;

    fn verifier(mechanism: Mechanism, password: &str) -> String {
        Verifier::generate(mechanism, password, 2).unwrap().to_string()
    }

    #[test]
    fn users_comments_and_both_mechanisms() {
        let text = format!(
            "# users\n\nalice:{} {}\r\n bob : {}\n",
            verifier(Mechanism::Sha256, "a"),
            verifier(Mechanism::Sha512, "a"),
            verifier(Mechanism::Sha512, "b"),
        );
        let file = ScramFile::parse(&text, "scram").unwrap();
        assert_eq!(file.len(), 2);
        assert!(file.verifier("alice", Mechanism::Sha256).is_some());
        assert!(file.verifier("alice", Mechanism::Sha512).is_some());
        assert!(file.verifier("bob", Mechanism::Sha256).is_none());
        assert!(file.verifier("bob", Mechanism::Sha512).is_some());
        assert!(file.verifier("carol", Mechanism::Sha512).is_none());
        // Decoys are stable per name and differ between names.
        let decoy = file.decoy("carol", Mechanism::Sha512).to_string();
        assert_eq!(decoy, file.decoy("carol", Mechanism::Sha512).to_string());
        assert_ne!(decoy, file.decoy("dave", Mechanism::Sha512).to_string());
    }

    #[test]
    fn bad_lines_are_errors_naming_the_line() {
        let good = verifier(Mechanism::Sha256, "a");
        for (text, line, message) in [
            ("alice\n".to_owned(), 1, "no ':'"),
            (format!("# c\n:{good}\n"), 2, "empty user name"),
            ("alice:\n".to_owned(), 1, "has no SCRAM verifier"),
            (
                "alice:SCRAM-SHA-1$1:c2FsdA==$a:b\n".to_owned(),
                1,
                "unknown SCRAM mechanism",
            ),
            (format!("alice:{good} {good}\n"), 1, "SCRAM-SHA-256 twice"),
            (
                format!("alice:{good}\nbob:{good}\nalice:{good}\n"),
                3,
                "already on line 1",
            ),
        ] {
            let error = ScramFile::parse(&text, "scram").unwrap_err();
            assert_eq!(error.location().unwrap().line, line, "{text}");
            let shown = error.to_string();
            assert!(shown.starts_with(&format!("scram:{line}: ")), "{shown}");
            assert!(shown.contains(message), "{shown}");
        }
        let error = ScramFile::parse_bytes(b"al\xffce:x\n", "scram").unwrap_err();
        assert_eq!(error.problem(), Some(&Problem::NotUtf8));
    }
}
