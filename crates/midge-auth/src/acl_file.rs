//! Mosquitto ACL files (`acl_file`): reading one the way Mosquitto 2.0 does, and deciding
//! whether a client may publish to a topic, receive a message, or subscribe.
//!
//! Reads the file it is given and nothing else; never logs. Topic matching is
//! [`crate::topic_match`].
//!
//! # The file (Mosquitto 2.0 `aclfile__parse`, `src/security_default.c`)
//! - Trailing white space (including a CR) is removed from each line. A line whose *first
//!   character* is `#` is a comment; an indented `#` is an error. Blank lines are ignored.
//! - Words are separated by spaces only (a tab is part of a word).
//! - `topic [read|write|readwrite|deny] FILTER`: a rule for the current section. With one word
//!   after `topic`, that word is the filter and the access is `readwrite` (so `topic read`
//!   grants read *and* write on the topic `read`). FILTER is the rest of the line, trimmed, and
//!   may contain spaces.
//! - `user NAME`: starts the section of the user named NAME (the rest of the line, trimmed; it
//!   may contain spaces). Sections with the same name are merged. Rules before the first
//!   `user` line form the section for clients *without* a user name: they never apply to a
//!   client that gave one.
//! - `pattern [read|write|readwrite|deny] FILTER`: a rule for every client, wherever it appears
//!   in the file. In FILTER, `%c` is replaced by the client identifier and `%u` by the user
//!   name; a pattern with `%u` is skipped for clients without a user name.
//! - Filters must be valid subscription filters (`+` and `#` whole levels, `#` last). Any other
//!   line is an error: the broker must not start with the file.
//!
//! # Decisions (Mosquitto 2.0 `acl__check_dollar` in `src/security.c`, then
//! `mosquitto_acl_check_default`)
//! For [`Access::Read`] (a message about to be delivered, checked against its topic name) and
//! [`Access::Write`] (a PUBLISH), in this order; the first step that decides wins:
//! 1. `$SYS` (any topic starting with those four characters): writing is refused, except to
//!    `$SYS/broker/connection/+/state` (bridge notifications), which goes on to the rules.
//!    Reading goes on to the rules. A topic starting with `$share` can be neither read nor
//!    written. See [`dollar_topic_allows`]: the broker applies these even without an ACL file.
//! 2. The client's own section (its user's, or the anonymous one): if any `deny` rule matches,
//!    refused; else if any rule granting this access matches, allowed. Rules granting only the
//!    other access are passed over.
//! 3. Only if the file has any `pattern`: a client whose user name or client identifier
//!    contains `+` or `#` is refused (it could otherwise widen a pattern).
//! 4. Patterns: if any `deny` pattern matches, refused; else if any pattern granting this
//!    access matches, allowed.
//! 5. Otherwise refused.
//!
//! So a `deny` beats a grant in the same tier, but a user's own grant beats a `deny` pattern,
//! and the order of lines within a tier does not matter. Filters match as MQTT subscriptions
//! do, except that `#` and `+` at the start of a filter never match a topic starting with `$`:
//! `$SYS` topics need rules that start with `$SYS`.
//!
//! [`Access::Subscribe`] is always allowed: Mosquitto 2.0's ACL file does not check
//! SUBSCRIBE filters at all (`/* FIXME - implement ACL subscription strings. */`), not even
//! `$SYS` or `$share` ones. What a subscriber may receive is still decided per message by
//! [`Access::Read`], retained messages included. Recorded against Mosquitto 2.0.11 in
//! `testdata/acl_matrix.tsv`.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{AuthFileError, Location, Problem, Warning};
use crate::text;
use crate::topic_match::{check_filter, matches};

/// What a client wants to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Receive a message published to the topic (checked per message, at delivery).
    Read,
    /// Publish to the topic.
    Write,
    /// Subscribe with the filter.
    Subscribe,
}

/// The client a decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIdentity<'a> {
    /// Its client identifier.
    pub client_id: &'a str,
    /// Its user name, if it gave one. `Some("")` is treated as a user named "" (not
    /// anonymous). Mosquitto 2.0 reads a zero-length password as absent; whether it does the
    /// same for a zero-length user name is not recorded yet, so the caller decides.
    pub username: Option<&'a str>,
}

/// The access an ACL line gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grant {
    /// `read`.
    Read,
    /// `write`.
    Write,
    /// `readwrite`, or no access word.
    ReadWrite,
    /// `deny`: neither, and no later grant in the same tier can give it back.
    Deny,
}

impl Grant {
    fn allows(self, access: Access) -> bool {
        matches!(
            (self, access),
            (Self::Read | Self::ReadWrite, Access::Read) | (Self::Write | Self::ReadWrite, Access::Write)
        )
    }
}

/// Why [`AclFile::decide`] answered as it did: for debug logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// SUBSCRIBE is not checked by Mosquitto's ACL file: allowed.
    SubscribeUnchecked,
    /// Writing to a `$SYS` topic other than a bridge state topic: refused.
    SysWrite,
    /// Reading or writing a `$share/…` topic: refused.
    SharePrefix,
    /// A `topic` rule on this line allowed it.
    AllowedByTopic {
        /// The line of the rule.
        line: usize,
    },
    /// A `topic … deny` rule on this line refused it.
    DeniedByTopic {
        /// The line of the rule.
        line: usize,
    },
    /// The user name or client identifier contains `+` or `#` and the file has patterns.
    DangerousIdentity,
    /// A `pattern` rule on this line allowed it.
    AllowedByPattern {
        /// The line of the rule.
        line: usize,
    },
    /// A `pattern … deny` rule on this line refused it.
    DeniedByPattern {
        /// The line of the rule.
        line: usize,
    },
    /// No rule grants it: refused.
    NoMatchingRule,
}

impl Decision {
    /// Whether the access is allowed.
    pub fn allowed(self) -> bool {
        matches!(
            self,
            Self::SubscribeUnchecked | Self::AllowedByTopic { .. } | Self::AllowedByPattern { .. }
        )
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SubscribeUnchecked => f.write_str("allowed: subscriptions are not checked"),
            Self::SysWrite => f.write_str("denied: $SYS topics cannot be published to"),
            Self::SharePrefix => f.write_str("denied: $share topics cannot be published to or read"),
            Self::AllowedByTopic { line } => write!(f, "allowed by the topic rule on line {line}"),
            Self::DeniedByTopic { line } => write!(f, "denied by the topic rule on line {line}"),
            Self::DangerousIdentity => f.write_str("denied: user name or client identifier contains + or #"),
            Self::AllowedByPattern { line } => write!(f, "allowed by the pattern on line {line}"),
            Self::DeniedByPattern { line } => write!(f, "denied by the pattern on line {line}"),
            Self::NoMatchingRule => f.write_str("denied: no rule grants it"),
        }
    }
}

/// Mosquitto's rules for topics starting with `$`, applied to every client whether or not an
/// ACL file is in use (step 1 of the decision order): `false` means refused outright, `true`
/// means the other rules decide.
pub fn dollar_topic_allows(topic: &str, access: Access) -> bool {
    dollar_rule(topic, access).is_none()
}

fn dollar_rule(topic: &str, access: Access) -> Option<Decision> {
    if topic.starts_with("$SYS") {
        let bridge_state = matches("$SYS/broker/connection/+/state", topic);
        (access == Access::Write && !bridge_state).then_some(Decision::SysWrite)
    } else if topic.starts_with("$share") {
        (access != Access::Subscribe).then_some(Decision::SharePrefix)
    } else {
        None
    }
}

/// One `topic` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TopicRule {
    grant: Grant,
    filter: String,
    line: usize,
}

/// One `pattern` rule, split at its `%c` and `%u`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PatternRule {
    grant: Grant,
    pieces: Vec<Piece>,
    needs_username: bool,
    line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    ClientId,
    Username,
}

impl PatternRule {
    fn new(grant: Grant, pattern: &str, line: usize) -> Self {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            let piece = match (c, chars.peek()) {
                ('%', Some('c')) => Piece::ClientId,
                ('%', Some('u')) => Piece::Username,
                _ => {
                    literal.push(c);
                    continue;
                }
            };
            chars.next();
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(piece);
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Self {
            grant,
            needs_username: pattern.contains("%u"),
            pieces,
            line,
        }
    }

    /// Whether the pattern, filled in for `client`, matches `topic`. `None` when the pattern
    /// does not apply to the client (it has `%u` and the client has no user name).
    fn matches(&self, client: &ClientIdentity<'_>, topic: &str) -> Option<bool> {
        if self.needs_username && client.username.is_none() {
            return None;
        }
        if let [Piece::Text(filter)] = self.pieces.as_slice() {
            return Some(matches(filter, topic));
        }
        let mut filter = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => filter.push_str(text),
                Piece::ClientId => filter.push_str(client.client_id),
                Piece::Username => filter.push_str(client.username.unwrap_or_default()),
            }
        }
        Some(matches(&filter, topic))
    }
}

/// An ACL file, read. Cheap to query; replace the whole value to reload.
#[derive(Debug, Clone)]
pub struct AclFile {
    origin: PathBuf,
    /// Rules before the first `user` line: for clients without a user name.
    anonymous: Vec<TopicRule>,
    users: HashMap<String, Vec<TopicRule>>,
    patterns: Vec<PatternRule>,
    warnings: Vec<Warning>,
}

impl AclFile {
    /// Reads the ACL file at `path`. Any bad line is an error naming the file and line.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, AuthFileError> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(|source| AuthFileError::Read {
            path: path.to_owned(),
            what: "ACL file",
            source,
        })?;
        Self::parse_bytes(&bytes, path)
    }

    /// Reads an ACL file's contents; `origin` names it in errors.
    pub fn parse(text: &str, origin: impl Into<PathBuf>) -> Result<Self, AuthFileError> {
        Self::parse_bytes(text.as_bytes(), origin)
    }

    /// As [`AclFile::parse`], for contents that may not be UTF-8 (a line that is not is an
    /// error, unless it is a comment).
    pub fn parse_bytes(bytes: &[u8], origin: impl Into<PathBuf>) -> Result<Self, AuthFileError> {
        let mut file = Self {
            origin: origin.into(),
            anonymous: Vec::new(),
            users: HashMap::new(),
            patterns: Vec::new(),
            warnings: Vec::new(),
        };
        let mut section: Option<String> = None;
        for (index, raw) in text::lines(bytes).enumerate() {
            let line = index + 1;
            let at = |origin: &Path| Location {
                file: origin.to_owned(),
                line,
            };
            match parse_line(raw) {
                Ok(Line::Nothing) => {}
                Ok(Line::User(name)) => section = Some(name),
                Ok(Line::Topic { grant, filter }) => {
                    let rule = TopicRule { grant, filter, line };
                    match &section {
                        Some(user) => file.users.entry(user.clone()).or_default().push(rule),
                        None => file.anonymous.push(rule),
                    }
                }
                Ok(Line::Pattern { grant, pattern }) => {
                    if !pattern.contains("%c") && !pattern.contains("%u") {
                        let problem = Problem::PatternWithoutSubstitution {
                            pattern: pattern.clone(),
                        };
                        file.warnings.push(Warning {
                            at: at(&file.origin),
                            problem,
                        });
                    }
                    file.patterns.push(PatternRule::new(grant, &pattern, line));
                }
                Err(problem) => {
                    return Err(AuthFileError::Line {
                        at: at(&file.origin),
                        problem,
                    });
                }
            }
        }
        Ok(file)
    }

    /// Whether `client` may do `access` on `topic` (a topic name, or a filter for
    /// [`Access::Subscribe`]). See the module documentation for the order of the rules.
    pub fn check(&self, client: &ClientIdentity<'_>, topic: &str, access: Access) -> bool {
        self.decide(client, topic, access).allowed()
    }

    /// As [`AclFile::check`], saying which rule decided.
    pub fn decide(&self, client: &ClientIdentity<'_>, topic: &str, access: Access) -> Decision {
        if let Some(decision) = dollar_rule(topic, access) {
            return decision;
        }
        if access == Access::Subscribe {
            return Decision::SubscribeUnchecked;
        }

        let own = match client.username {
            Some(user) => self.users.get(user).map(Vec::as_slice).unwrap_or_default(),
            None => &self.anonymous,
        };
        let matching = || own.iter().filter(|rule| matches(&rule.filter, topic));
        if let Some(rule) = matching().find(|rule| rule.grant == Grant::Deny) {
            return Decision::DeniedByTopic { line: rule.line };
        }
        if let Some(rule) = matching().find(|rule| rule.grant.allows(access)) {
            return Decision::AllowedByTopic { line: rule.line };
        }

        if self.patterns.is_empty() {
            return Decision::NoMatchingRule;
        }
        let dangerous = |s: &str| s.contains(['+', '#']);
        if client.username.is_some_and(dangerous) || dangerous(client.client_id) {
            return Decision::DangerousIdentity;
        }
        let matching = || {
            self.patterns
                .iter()
                .filter(|rule| rule.matches(client, topic) == Some(true))
        };
        if let Some(rule) = matching().find(|rule| rule.grant == Grant::Deny) {
            return Decision::DeniedByPattern { line: rule.line };
        }
        if let Some(rule) = matching().find(|rule| rule.grant.allows(access)) {
            return Decision::AllowedByPattern { line: rule.line };
        }
        Decision::NoMatchingRule
    }

    /// Lines that are valid but probably not what was meant (a `pattern` without `%c` or
    /// `%u`); Mosquitto warns about these too.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// The file's name, as given to `load` or `parse`.
    pub fn origin(&self) -> &Path {
        &self.origin
    }
}

/// What one line says.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Nothing,
    User(String),
    Topic { grant: Grant, filter: String },
    Pattern { grant: Grant, pattern: String },
}

fn parse_line(raw: &[u8]) -> Result<Line, Problem> {
    if raw.first() == Some(&b'#') {
        return Ok(Line::Nothing);
    }
    let line = std::str::from_utf8(raw).map_err(|_| Problem::NotUtf8)?;
    let mut rest = text::c_trim_end(line);
    let Some(keyword) = next_word(&mut rest) else {
        return Ok(Line::Nothing);
    };
    match keyword {
        "topic" | "pattern" => {
            let keyword = if keyword == "topic" { "topic" } else { "pattern" };
            let Some(first) = next_word(&mut rest) else {
                return Err(Problem::MissingTopic { keyword });
            };
            let (grant, filter) = if rest.is_empty() {
                (Grant::ReadWrite, first)
            } else {
                let grant = match first {
                    "read" => Grant::Read,
                    "write" => Grant::Write,
                    "readwrite" => Grant::ReadWrite,
                    "deny" => Grant::Deny,
                    other => {
                        return Err(Problem::UnknownAccess {
                            keyword,
                            got: other.to_owned(),
                        });
                    }
                };
                (grant, text::c_trim(rest))
            };
            check_filter(filter).map_err(|reason| Problem::BadFilter {
                keyword,
                filter: filter.to_owned(),
                reason,
            })?;
            let filter = filter.to_owned();
            Ok(if keyword == "topic" {
                Line::Topic { grant, filter }
            } else {
                Line::Pattern {
                    grant,
                    pattern: filter,
                }
            })
        }
        "user" => {
            if rest.is_empty() {
                return Err(Problem::MissingUsername);
            }
            Ok(Line::User(text::c_trim(rest).to_owned()))
        }
        other if other.starts_with('#') => Err(Problem::IndentedComment),
        other => Err(Problem::UnknownKeyword {
            got: other.to_owned(),
        }),
    }
}

/// The next space-separated word of `rest`, like `strtok_r(…, " ", …)`: leading spaces are
/// skipped, and `rest` is left just after the one space that ended the word.
fn next_word<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let text = rest.trim_start_matches(' ');
    if text.is_empty() {
        *rest = text;
        return None;
    }
    let (word, after) = match text.split_once(' ') {
        Some((word, after)) => (word, after),
        None => (text, ""),
    };
    *rest = after;
    Some(word)
}

#[cfg(test)]
mod tests;
