//! Why a password file or an ACL file line cannot be used: [`AuthFileError`], whose message
//! always starts with `FILE:LINE` (or just `FILE` when the file cannot be read) so a user can go
//! straight to it, e.g. `/etc/mosquitto/acl:7: topic: unknown access "raed" (expected read,
//! write, readwrite or deny)`.
//!
//! This module only describes failures; it never decides what is valid.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A line of a file: `FILE:LINE` when displayed. Lines count from 1.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// The file, as it was named: the path given to `load`, or the origin given to `parse`.
    pub file: PathBuf,
    /// The line number, from 1.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A problem with a password file or an ACL file.
///
/// For an ACL file every [`AuthFileError::Line`] is fatal, as in Mosquitto (the broker does not
/// start, a reload keeps the old rules). For a password file Mosquitto skips a bad line and logs
/// it, so [`PasswordFile`](crate::PasswordFile) reports those as [`Warning`]s instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthFileError {
    /// The file could not be read at all.
    #[error("{}: cannot read {what}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Which kind of file: "password file", "ACL file" or "SCRAM file".
        what: &'static str,
        /// What the operating system said.
        source: io::Error,
    },
    /// One line is wrong.
    #[error("{at}: {problem}")]
    Line {
        /// The line.
        at: Location,
        /// What is wrong with it.
        problem: Problem,
    },
}

impl AuthFileError {
    /// Where the error is: `None` for a file that could not be read at all.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::Read { .. } => None,
            Self::Line { at, .. } => Some(at),
        }
    }

    /// What is wrong with the line: `None` for a file that could not be read at all.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Self::Read { .. } => None,
            Self::Line { problem, .. } => Some(problem),
        }
    }
}

/// A line that was skipped (password file) or that is valid but suspicious (ACL file): the
/// broker should log it and carry on, as Mosquitto does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {problem}")]
pub struct Warning {
    /// The line.
    pub at: Location,
    /// What is wrong with it.
    pub problem: Problem,
}

/// What is wrong with one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The line is not valid UTF-8. MQTT user names and topics are UTF-8, so such a line could
    /// never match anything.
    #[error("line is not valid UTF-8")]
    NotUtf8,

    // ---- ACL file ----
    /// `topic` or `pattern` with nothing after it.
    #[error("{keyword}: missing topic")]
    MissingTopic {
        /// `topic` or `pattern`.
        keyword: &'static str,
    },
    /// `topic ACCESS FILTER` with an access that is not one of the four.
    #[error("{keyword}: unknown access \"{got}\" (expected read, write, readwrite or deny)")]
    UnknownAccess {
        /// `topic` or `pattern`.
        keyword: &'static str,
        /// The access as written.
        got: String,
    },
    /// The topic filter is not valid (Mosquitto's `mosquitto_sub_topic_check`).
    #[error("{keyword}: invalid topic filter \"{filter}\": {reason}")]
    BadFilter {
        /// `topic` or `pattern`.
        keyword: &'static str,
        /// The filter as written.
        filter: String,
        /// Why it is not valid.
        reason: FilterError,
    },
    /// `user` with no name after it.
    #[error("user: missing user name")]
    MissingUsername,
    /// A line that starts with spaces and then `#`: Mosquitto only takes `#` in the first column
    /// as a comment and refuses the line.
    #[error("a comment must start in the first column (Mosquitto refuses an indented `#`)")]
    IndentedComment,
    /// A line whose first word is not `topic`, `pattern` or `user`.
    #[error("unknown keyword \"{got}\" (expected topic, pattern or user)")]
    UnknownKeyword {
        /// The first word as written (up to the first space).
        got: String,
    },
    /// A `pattern` line with neither `%c` nor `%u`: legal, but probably meant to be `topic`
    /// (Mosquitto warns about it too). Only ever a warning.
    #[error("pattern \"{pattern}\" contains neither %c nor %u; it applies to every client alike")]
    PatternWithoutSubstitution {
        /// The pattern as written.
        pattern: String,
    },

    // ---- password file (warnings: Mosquitto skips the line) ----
    /// A line with text but no `:`; Mosquitto ignores it.
    #[error("no ':' between user name and password hash; line ignored")]
    NoColon,
    /// `user:` with no hash; Mosquitto drops the user.
    #[error("user \"{user}\" has no password hash; user ignored")]
    MissingHash {
        /// The user name.
        user: String,
    },
    /// A user name or hash longer than 65535 bytes; Mosquitto ignores the line.
    #[error("{what} longer than 65535 bytes; line ignored")]
    TooLong {
        /// "user name" or "password hash".
        what: &'static str,
    },
    /// The hash cannot be decoded; Mosquitto drops the user.
    #[error("user \"{user}\": {reason}; user ignored")]
    BadHash {
        /// The user name.
        user: String,
        /// Why the hash is unusable.
        reason: HashError,
    },

    // ---- SCRAM file (errors: the file is ours, and read strictly) ----
    /// A line with text but no `:`.
    #[error("no ':' between user name and SCRAM verifiers")]
    NoVerifierColon,
    /// `:VERIFIERS`, with no user name.
    #[error("empty user name")]
    EmptyUsername,
    /// `user:` with nothing after it.
    #[error("user \"{user}\" has no SCRAM verifier")]
    MissingVerifier {
        /// The user name.
        user: String,
    },
    /// A verifier that cannot be read.
    #[error("user \"{user}\": {reason}")]
    BadVerifier {
        /// The user name.
        user: String,
        /// Why the verifier is unusable.
        reason: crate::scram::VerifierError,
    },
    /// One line gives a user two verifiers of the same mechanism.
    #[error("user \"{user}\" has {mechanism} twice")]
    DuplicateMechanism {
        /// The user name.
        user: String,
        /// The mechanism's name.
        mechanism: &'static str,
    },
    /// A user named on two lines.
    #[error("user \"{user}\" is already on line {first}")]
    DuplicateUser {
        /// The user name.
        user: String,
        /// The line that named the user first.
        first: usize,
    },
}

/// Why an ACL topic filter is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// `+` is not a whole level, e.g. `a/b+` or `+b`.
    #[error("'+' must be a whole topic level")]
    PlusNotWholeLevel,
    /// `#` is not a whole level, or not the last one, e.g. `a#` or `#/a`.
    #[error("'#' must be a whole topic level and the last one")]
    HashNotLastLevel,
    /// More than 65535 bytes.
    #[error("longer than 65535 bytes")]
    TooLong,
}

/// Why a password hash from a password file is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// Not `$6$…`, `$7$…` or `$argon2id$…`.
    #[error("unknown password hash type (expected $6$, $7$ or $argon2id$)")]
    UnknownType,
    /// A field of the hash is missing.
    #[error("password hash is missing its {0}")]
    MissingField(&'static str),
    /// `$7$` with an iteration count that is not a whole number from 1.
    #[error("invalid PBKDF2 iteration count \"{0}\"")]
    BadIterations(String),
    /// A field is not valid base64.
    #[error("the {0} is not valid base64")]
    BadBase64(&'static str),
    /// A salt whose length Mosquitto does not accept.
    #[error("salt is {0} bytes (expected 12 or 64)")]
    SaltLength(usize),
    /// A hash whose length Mosquitto does not accept.
    #[error("hash is {0} bytes (expected 64)")]
    HashLength(usize),
    /// An argon2id PHC string whose parameters are missing, malformed or out of range.
    #[error("invalid argon2id parameters: {0}")]
    BadArgon2(&'static str),
}
