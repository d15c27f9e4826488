//! Mosquitto-compatible password files and ACL files, and SCRAM verifier files, for Midge: reading them (with `FILE:LINE`
//! errors) and the decisions they make. No I/O beyond reading the file it is asked to load, no
//! async runtime, no networking, no logging: the runtime loads the files, logs the warnings and
//! asks the questions.
//!
//! # Layout
//! - [`password_file`]: `password_file`, read as Mosquitto 2.0 reads it; [`PasswordFile::check`].
//! - [`password_hash`]: the `$6$`, `$7$` and `$argon2id$` formats; [`hash_password`] for
//!   `midge passwd`.
//! - [`scram`]: SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677): the server's side of an
//!   exchange ([`ServerExchange`]) and the stored [`Verifier`]s.
//! - [`scram_file`]: `scram_file`, the users who log in with SCRAM, as `midge passwd -H scram`
//!   writes them.
//! - [`acl_file`]: `acl_file`, read as Mosquitto 2.0 reads it; [`AclFile::check`] and the exact
//!   order in which rules win.
//! - [`topic_match`]: Mosquitto's `mosquitto_topic_matches_sub` and `mosquitto_sub_topic_check`.
//! - [`error`]: [`AuthFileError`], always naming the file and line.
//!
//! # Example
//! ```
//! use midge_auth::{Access, AclFile, ClientIdentity, PasswordFile};
//!
//! // A legacy `$6$` line: SHA-512("secret" followed by 12 zero bytes of salt).
//! let passwords = PasswordFile::parse(
//!     "alice:$6$AAAAAAAAAAAAAAAA$O1kgGurTtnitxs7bM2OwFEKK6NAoMCFsepMX4CULB8/W9bSpZLcrQQNQvGCmrPK2aitSZt4gQukxvVcciQD5bw==\n",
//!     "passwd",
//! );
//! assert!(passwords.check("alice", Some(b"secret")));
//! assert!(!passwords.check("alice", Some(b"Secret")));
//! assert!(passwords.warnings().is_empty());
//!
//! let acl = AclFile::parse("user alice\ntopic readwrite home/#\npattern read devices/%c/in\n", "acl")?;
//! let alice = ClientIdentity { client_id: "phone", username: Some("alice") };
//! assert!(acl.check(&alice, "home/kitchen", Access::Write));
//! assert!(acl.check(&alice, "devices/phone/in", Access::Read));
//! assert!(!acl.check(&alice, "devices/phone/in", Access::Write));
//! # Ok::<(), midge_auth::AuthFileError>(())
//! ```

pub mod acl_file;
pub mod error;
pub mod password_file;
pub mod password_hash;
pub mod scram;
pub mod scram_file;
mod text;
pub mod topic_match;

pub use acl_file::{Access, AclFile, ClientIdentity, Decision, Grant, dollar_topic_allows};
pub use error::{AuthFileError, FilterError, HashError, Location, Problem, Warning};
pub use password_file::PasswordFile;
pub use password_hash::{HashKind, MOSQUITTO_PBKDF2_ITERATIONS, StoredHash, hash_password};
pub use scram::{Mechanism, ScramError, ServerExchange, ServerStep, Verifier, VerifierLookup};
pub use scram_file::ScramFile;
