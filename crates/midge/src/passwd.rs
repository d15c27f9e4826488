//! `midge passwd`: Mosquitto's `mosquitto_passwd` (2.0.11) built into the binary. Adds, changes
//! and deletes users of a password file, or hashes a file of plain-text passwords:
//!
//! ```text
//! midge passwd [-H sha512 | -H sha512-pbkdf2 | -H argon2id | -H scram] [-c | -D] passwordfile username
//! midge passwd [-H ...] [-c] -b passwordfile username password
//! midge passwd -U passwordfile
//! ```
//!
//! This module owns the command line, the order of the steps and every message and exit
//! status, which are `mosquitto_passwd`'s (its arguments are read the same way, hidden `-I
//! iterations` included), so scripts written for it work unchanged. The edits themselves are in
//! `edit`, the terminal in `prompt`, the file on disk in `file`; the hashes are
//! [`midge_auth::hash_password`]'s, the same code the broker verifies with.
//!
//! Extensions and deliberate differences (each also noted where it is made):
//! - `-H argon2id` writes Mosquitto 2.1's `$argon2id$` hashes (Mosquitto 2.0 cannot read them).
//! - `-H scram` writes SCRAM verifiers for a `scram_file` (MQTT 5 enhanced authentication):
//!   SCRAM-SHA-256 and SCRAM-SHA-512 on one line, or one of them with `-H scram-sha-256` or
//!   `-H scram-sha-512` (`midge_auth::scram_file` has the format). The password must be UTF-8
//!   and is normalised with SASLprep; `-I` sets the iteration count (default 4096 for SHA-256,
//!   10,000 for SHA-512) and is honoured by `-U` too.
//! - The file is replaced atomically, keeping its mode and owner (`file`).
//! - A file with a line `mosquitto_passwd` calls corrupt is never rewritten (2.0.11 drops the
//!   lines after it when adding a user), and an added user never joins the last line (`edit`).
//! - An empty user name is refused (2.0.11 writes a `:HASH` line that makes the file corrupt
//!   to itself).

mod edit;
mod file;
mod prompt;

use std::ffi::{OsStr, OsString};
use std::io::{self, Write as _};
use std::num::NonZeroU32;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use midge_auth::password_hash::parse_iterations;
use midge_auth::scram::{MAX_ITERATIONS, Mechanism, PasswordError, Verifier};
use midge_auth::{HashKind, MOSQUITTO_PBKDF2_ITERATIONS, hash_password};

use edit::EditError;
use file::WriteError;

/// The longest user name and password `mosquitto_passwd` accepts, in bytes.
const MAX_LEN: usize = 65535;

/// Runs `midge passwd` with the arguments after `passwd`.
pub(crate) fn main(args: Vec<OsString>) -> ExitCode {
    match Command::parse(&args) {
        Ok(command) => command.run(),
        Err(exit) => exit,
    }
}

/// The hash `-H` chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha512,
    Sha512Pbkdf2,
    Argon2id,
    /// SCRAM verifiers for these mechanisms, on one line.
    Scram(&'static [Mechanism]),
}

/// What to do to the file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    /// `-c`: a new file holding one user.
    Create {
        user: OsString,
        password: Option<OsString>,
    },
    /// No mode flag: add the user or change their password.
    Set {
        user: OsString,
        password: Option<OsString>,
    },
    /// `-D`.
    Delete { user: OsString },
    /// `-U`.
    HashAll,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Command {
    hash: Hash,
    iterations: NonZeroU32,
    /// `-I` as given, for SCRAM (whose default depends on the mechanism).
    iterations_given: Option<NonZeroU32>,
    file: PathBuf,
    action: Action,
}

/// `mosquitto_passwd`'s usage text, naming this command. Printed on stdout.
fn usage() -> ExitCode {
    // Not print!: a closed stdout must not panic.
    let _ = io::stdout().lock().write_all(
        b"\
midge passwd is a tool for managing password files for mosquitto.

Usage: midge passwd [-H sha512 | -H sha512-pbkdf2] [-c | -D] passwordfile username
       midge passwd [-H sha512 | -H sha512-pbkdf2] [-c] -b passwordfile username password
       midge passwd -U passwordfile
 -b : run in batch mode to allow passing passwords on the command line.
 -c : create a new password file. This will overwrite existing files.
 -D : delete the username rather than adding/updating its password.
 -H : specify the hashing algorithm. Defaults to sha512-pbkdf2, which is recommended.
      Mosquitto 1.6 and earlier defaulted to sha512.
      -H argon2id writes Mosquitto 2.1's hashes, which Mosquitto 2.0 cannot read.
      -H scram writes SCRAM-SHA-256 and SCRAM-SHA-512 verifiers for a scram_file.
 -U : update a plain text password file to use hashed passwords.

See https://mosquitto.org/ for more information.

",
    );
    ExitCode::from(1)
}

/// Prints `Error: …`-style lines on stderr and returns status 1. Bytes, because user names and
/// paths need not be UTF-8 and are printed as given.
fn fail(parts: &[&[u8]]) -> ExitCode {
    let mut stderr = io::stderr().lock();
    for part in parts {
        let _ = stderr.write_all(part);
    }
    let _ = stderr.write_all(b"\n");
    ExitCode::from(1)
}

/// What C's `strerror` says for an error.
fn strerror(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_owned(),
        None => error.to_string(),
    }
}

impl Command {
    /// Reads the arguments as `mosquitto_passwd` 2.0.11 does: options first, in any order,
    /// until the first argument that is not one; then the mode decides how many must follow.
    fn parse(args: &[OsString]) -> Result<Self, ExitCode> {
        if args.is_empty() {
            return Err(usage());
        }
        let mut hash = Hash::Sha512Pbkdf2;
        let mut iterations = NonZeroU32::new(MOSQUITTO_PBKDF2_ITERATIONS).unwrap_or(NonZeroU32::MIN);
        let mut iterations_given = None;
        let (mut batch, mut create, mut delete, mut hash_all) = (false, false, false, false);
        let mut idx = 0;
        while let Some(arg) = args.get(idx) {
            match arg.as_bytes() {
                b"-H" => {
                    let Some(value) = args.get(idx + 1) else {
                        return Err(fail(&[
                            b"Error: -H argument given but not enough other arguments.",
                        ]));
                    };
                    hash = match value.as_bytes() {
                        b"sha512" => Hash::Sha512,
                        b"sha512-pbkdf2" => Hash::Sha512Pbkdf2,
                        b"argon2id" => Hash::Argon2id,
                        b"scram" => Hash::Scram(&Mechanism::ALL),
                        b"scram-sha-256" => Hash::Scram(&[Mechanism::Sha256]),
                        b"scram-sha-512" => Hash::Scram(&[Mechanism::Sha512]),
                        other => return Err(fail(&[b"Error: Unknown hash type '", other, b"'"])),
                    };
                    idx += 1;
                }
                b"-b" => batch = true,
                b"-c" => create = true,
                b"-D" => delete = true,
                b"-I" => {
                    let Some(value) = args.get(idx + 1) else {
                        return Err(fail(&[
                            b"Error: -I argument given but not enough other arguments.",
                        ]));
                    };
                    iterations = parse_iterations(&value.to_string_lossy())
                        .ok()
                        .and_then(NonZeroU32::new)
                        .ok_or_else(|| fail(&[b"Error: Number of iterations must be > 0."]))?;
                    iterations_given = Some(iterations);
                    idx += 1;
                }
                b"-U" => hash_all = true,
                _ => break,
            }
            idx += 1;
        }

        for (a, b, flags) in [
            (create, delete, "-c and -D"),
            (create, hash_all, "-c and -U"),
            (delete, hash_all, "-D and -U"),
            (delete, batch, "-b and -D"),
        ] {
            if a && b {
                return Err(fail(&[
                    b"Error: ",
                    flags.as_bytes(),
                    b" cannot be used together.",
                ]));
            }
        }

        let rest = args.get(idx..).unwrap_or_default();
        let arg = |i: usize| rest.get(i).cloned().unwrap_or_default();
        let action = if create {
            let needed = if batch { 3 } else { 2 };
            if rest.len() < needed {
                return Err(fail(&[if batch {
                    b"Error: -c argument given but password file, username, or password missing."
                } else {
                    b"Error: -c argument given but password file or username missing."
                }]));
            }
            Action::Create {
                user: arg(1),
                password: batch.then(|| arg(2)),
            }
        } else if delete {
            if rest.len() < 2 {
                return Err(fail(&[
                    b"Error: -D argument given but password file or username missing.",
                ]));
            }
            Action::Delete { user: arg(1) }
        } else if hash_all {
            if rest.len() != 1 {
                return Err(fail(&[b"Error: -U argument given but password file missing."]));
            }
            Action::HashAll
        } else if batch && rest.len() == 3 {
            Action::Set {
                user: arg(1),
                password: Some(arg(2)),
            }
        } else if !batch && rest.len() == 2 {
            Action::Set {
                user: arg(1),
                password: None,
            }
        } else {
            return Err(usage());
        };

        let (user, password) = match &action {
            Action::Create { user, password } | Action::Set { user, password } => {
                (Some(user), password.as_ref())
            }
            Action::Delete { user } => (Some(user), None),
            Action::HashAll => (None, None),
        };
        if let Some(user) = user {
            check_user(user.as_bytes())?;
        }
        if password.is_some_and(|password| password.len() > MAX_LEN) {
            return Err(fail(&[
                b"Error: Password must be less than 65536 characters long.",
            ]));
        }
        if matches!(hash, Hash::Scram(_)) && iterations.get() > MAX_ITERATIONS {
            return Err(fail(&[
                b"Error: SCRAM iteration counts must be at most 10000000.",
            ]));
        }
        Ok(Self {
            hash,
            iterations,
            iterations_given,
            file: PathBuf::from(arg(0)),
            action,
        })
    }

    fn run(self) -> ExitCode {
        let path = match file::resolve(&self.file) {
            Ok(path) => path,
            Err(error) => {
                return fail(&[b"Error reading password file: ", strerror(&error).as_bytes()]);
            }
        };
        let result = match &self.action {
            Action::Create { user, password } => self.create(&path, user, password.as_deref()),
            Action::Set { user, password } => self.edit(&path, |text| {
                let password = match password {
                    Some(password) => password.as_bytes().to_vec(),
                    None => prompt::new_password().map_err(Failure::Prompt)?,
                };
                let hash = self.hash(&password, self.iterations)?;
                Ok(edit::set_password::<Failure>(text, user.as_bytes(), &hash)?)
            }),
            Action::Delete { user } => self.edit(&path, |text| {
                Ok(edit::delete_user::<Failure>(text, user.as_bytes())?)
            }),
            // `-U` ignores `-I`: mosquitto_passwd 2.0.11 hashes with its default count.
            Action::HashAll => self.edit(&path, |text| {
                let iterations = NonZeroU32::new(MOSQUITTO_PBKDF2_ITERATIONS).unwrap_or(self.iterations);
                Ok(edit::hash_all(text, |password| self.hash(password, iterations))?)
            }),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(failure) => failure.report(&path, &self.action),
        }
    }

    /// `-c`: asks for the password first (unless `-b`), then writes a file with one user.
    fn create(&self, path: &Path, user: &OsStr, password: Option<&OsStr>) -> Result<(), Failure> {
        let password = match password {
            Some(password) => password.as_bytes().to_vec(),
            None => prompt::new_password().map_err(Failure::Prompt)?,
        };
        let old = file::existing_for_create(path).map_err(Failure::OpenForCreate)?;
        let hash = self.hash(&password, self.iterations)?;
        let mut line = user.as_bytes().to_vec();
        line.push(b':');
        line.extend_from_slice(hash.as_bytes());
        line.push(b'\n');
        file::replace(path, &line, old.as_ref()).map_err(|error| match error {
            WriteError::Create(error) => Failure::OpenForCreate(error),
            error => Failure::Write(error),
        })
    }

    /// Every mode but `-c`: reads the file (before any prompt, as Mosquitto does), makes the
    /// new contents with `change`, and replaces the file.
    fn edit(
        &self,
        path: &Path,
        change: impl FnOnce(&[u8]) -> Result<Vec<u8>, Failure>,
    ) -> Result<(), Failure> {
        let old = file::read_existing(path).map_err(Failure::Open)?;
        let contents = change(&old.contents)?;
        file::replace(path, &contents, Some(&old)).map_err(Failure::Write)
    }

    fn hash(&self, password: &[u8], iterations: NonZeroU32) -> Result<String, Failure> {
        let kind = match self.hash {
            Hash::Sha512 => HashKind::Sha512,
            Hash::Sha512Pbkdf2 => HashKind::Sha512Pbkdf2 { iterations },
            Hash::Argon2id => HashKind::Argon2id,
            Hash::Scram(mechanisms) => return self.scram_verifiers(password, mechanisms),
        };
        hash_password(password, kind).map_err(|_| Failure::Hash)
    }
}

impl Command {
    /// The SCRAM verifiers of `password`, separated by spaces.
    fn scram_verifiers(&self, password: &[u8], mechanisms: &[Mechanism]) -> Result<String, Failure> {
        let password = std::str::from_utf8(password).map_err(|_| Failure::Saslprep)?;
        let mut verifiers = Vec::with_capacity(mechanisms.len());
        for &mechanism in mechanisms {
            let iterations = self
                .iterations_given
                .map_or(mechanism.default_iterations(), NonZeroU32::get);
            let verifier =
                Verifier::generate(mechanism, password, iterations).map_err(|error| match error {
                    PasswordError::Saslprep => Failure::Saslprep,
                    _ => Failure::Hash,
                })?;
            verifiers.push(verifier.to_string());
        }
        Ok(verifiers.join(" "))
    }
}

/// `mosquitto_passwd`'s checks on a user name, in its order, and then ours: not empty.
fn check_user(user: &[u8]) -> Result<(), ExitCode> {
    if user.len() > MAX_LEN {
        return Err(fail(&[
            b"Error: Username must be less than 65536 characters long.",
        ]));
    }
    if user.iter().any(|&byte| byte < 0x20 || byte == 0x7f) {
        return Err(fail(&[b"Error: Username must not contain control characters."]));
    }
    if user.contains(&b':') {
        return Err(fail(&[b"Error: Username must not contain the ':' character."]));
    }
    if user.is_empty() {
        return Err(fail(&[b"Error: Username must not be empty."]));
    }
    Ok(())
}

/// Why a command failed after its arguments were accepted.
#[derive(Debug)]
enum Failure {
    /// `-c`: the file cannot be written.
    OpenForCreate(io::Error),
    /// The file to edit cannot be opened.
    Open(io::Error),
    Prompt(prompt::PromptError),
    Hash,
    /// A SCRAM password that is not UTF-8 or that SASLprep refuses.
    Saslprep,
    Edit(EditError<()>),
    Write(WriteError),
}

impl From<EditError<Self>> for Failure {
    fn from(error: EditError<Self>) -> Self {
        match error {
            EditError::Hash(failure) => failure,
            EditError::Corrupt { line, user_seen } => Self::Edit(EditError::Corrupt { line, user_seen }),
            EditError::UserNotFound => Self::Edit(EditError::UserNotFound),
            EditError::Empty => Self::Edit(EditError::Empty),
        }
    }
}

impl Failure {
    /// Prints what `mosquitto_passwd` prints for this failure and returns its exit status.
    fn report(self, path: &Path, action: &Action) -> ExitCode {
        let path = path.as_os_str().as_bytes();
        let not_found = |user: &OsStr| {
            fail(&[
                b"Warning: User ",
                user.as_bytes(),
                b" not found in password file.",
            ])
        };
        match self {
            Self::OpenForCreate(error) => fail(&[
                b"Error: Unable to open file ",
                path,
                b" for writing. ",
                strerror(&error).as_bytes(),
                b".",
            ]),
            Self::Open(error) => fail(&[
                b"Error: Unable to open password file ",
                path,
                b". ",
                strerror(&error).as_bytes(),
                b".",
            ]),
            Self::Prompt(error) => error.report(),
            Self::Hash => fail(&[b"Error: Unable to hash password."]),
            Self::Saslprep => {
                fail(&[b"Error: A SCRAM password must be UTF-8 text that SASLprep (RFC 4013) accepts."])
            }
            Self::Edit(EditError::Corrupt { line, user_seen }) => {
                let status = fail(&[format!("Error: Corrupt password file at line {line}.").as_bytes()]);
                // mosquitto_passwd -D also says the user was not found in the lines it read.
                match action {
                    Action::Delete { user } if !user_seen => not_found(user),
                    _ => status,
                }
            }
            Self::Edit(EditError::UserNotFound) => match action {
                Action::Delete { user } => not_found(user),
                _ => ExitCode::from(1),
            },
            // mosquitto_passwd -U on an empty file fails without a word.
            Self::Edit(EditError::Empty | EditError::Hash(())) => ExitCode::from(1),
            Self::Write(WriteError::Create(error)) => fail(&[
                b"Error: Unable to create a temporary file beside ",
                path,
                b". ",
                strerror(&error).as_bytes(),
                b".",
            ]),
            Self::Write(WriteError::Owner(error)) => fail(&[
                b"Error: Unable to give the new password file the owner of ",
                path,
                b". ",
                strerror(&error).as_bytes(),
                b". Nothing was changed.",
            ]),
            Self::Write(WriteError::Write(error)) => fail(&[
                b"Error: Unable to write password file ",
                path,
                b". ",
                strerror(&error).as_bytes(),
                b". Nothing was changed.",
            ]),
        }
    }
}
