//! Authentication and topic rules from Mosquitto's files: the password file checked at CONNECT
//! and the ACL file installed in the core (see `midge_core::access`); and Midge's own SCRAM
//! file, offered to the core as its enhanced authentication methods (see `midge_core::auth`).
//!
//! SCRAM costs the server a few HMACs per exchange (the client does the key stretching), so
//! unlike password hashes it runs inline, on the thread handling the packet.
//!
//! Password hashes are slow on purpose (PBKDF2, argon2). They are checked on tokio's blocking
//! pool, never on the threads that move packets, and at most one check per two cores runs at
//! once: a storm of CONNECTs with wrong passwords queues behind that limit and slows only the
//! clients sending them, while connected clients keep their latency (a test in
//! `crates/midge/tests/security.rs` shows it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use bytestring::ByteString;
use midge_auth::{
    AclFile, AuthFileError, ClientIdentity, Mechanism, PasswordFile, ScramError, ScramFile, ServerExchange,
    ServerStep,
};
use midge_codec::ReasonCode;
use midge_core::{Access, AccessControl, AuthExchange, AuthMethods, AuthStep, Credentials, Identity};
use parking_lot::RwLock;
use tokio::sync::Semaphore;

/// Checks CONNECT credentials against the password file in force.
#[derive(Debug)]
pub struct Authenticator {
    passwords: RwLock<Option<Arc<PasswordFile>>>,
    checks: Semaphore,
}

impl Authenticator {
    /// An authenticator for `passwords` (`None`: no password file, nothing to check).
    pub fn new(passwords: Option<PasswordFile>) -> Self {
        // Half the cores at most: the other half keeps moving packets however many wrong
        // passwords arrive.
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            passwords: RwLock::new(passwords.map(Arc::new)),
            checks: Semaphore::new(cores.div_ceil(2)),
        }
    }

    /// Replaces the password file (a reload); connections check against it from now on.
    pub fn replace(&self, passwords: Option<PasswordFile>) {
        *self.passwords.write() = passwords.map(Arc::new);
    }

    /// The verdict on a CONNECT's user name and password.
    pub(crate) async fn verdict(
        &self,
        username: Option<&ByteString>,
        password: Option<&Bytes>,
    ) -> Credentials {
        let Some(passwords) = self.passwords.read().clone() else {
            return Credentials::Unchecked;
        };
        // No user name: `allow_anonymous` decides, in the core.
        let Some(username) = username.cloned() else {
            return Credentials::Unchecked;
        };
        let password = password.cloned();
        let Ok(_permit) = self.checks.acquire().await else {
            return Credentials::Invalid;
        };
        let valid = tokio::task::spawn_blocking(move || passwords.check(&username, password.as_deref()))
            .await
            .unwrap_or(false);
        if valid {
            Credentials::Valid
        } else {
            Credentials::Invalid
        }
    }
}

/// An ACL file as the core's [`AccessControl`].
#[derive(Debug)]
pub struct AclRules(AclFile);

impl AclRules {
    /// Rules from a parsed ACL file.
    pub fn new(file: AclFile) -> Self {
        Self(file)
    }
}

impl AccessControl for AclRules {
    fn allows(&self, who: &Identity<'_>, topic: &str, access: Access) -> bool {
        let client = ClientIdentity {
            client_id: who.client_id,
            username: who.username,
        };
        self.0.check(&client, topic, acl_access(access))
    }
}

/// The rules every broker applies without an ACL file, as Mosquitto does: no publishing to
/// `$SYS` (but `$SYS/broker/connection/+/state`, which bridges use), and `$share/...` is not a
/// topic anyone may publish to or receive.
#[derive(Debug)]
pub struct DollarRules;

impl AccessControl for DollarRules {
    fn allows(&self, _: &Identity<'_>, topic: &str, access: Access) -> bool {
        !topic.starts_with('$') || midge_auth::dollar_topic_allows(topic, acl_access(access))
    }

    fn only_dollar_topics(&self) -> bool {
        true
    }
}

fn acl_access(access: Access) -> midge_auth::Access {
    match access {
        Access::Read => midge_auth::Access::Read,
        Access::Write => midge_auth::Access::Write,
        Access::Subscribe => midge_auth::Access::Subscribe,
    }
}

/// Reads a password file; lines Mosquitto would skip come back as warnings (`FILE:LINE: ...`).
pub fn load_password_file(path: &Path) -> Result<(PasswordFile, Vec<String>), AuthFileError> {
    let file = PasswordFile::load(path)?;
    let warnings = file.warnings().iter().map(ToString::to_string).collect();
    Ok((file, warnings))
}

/// Topic rules chosen by the listener a client came through: `per_listener_settings true`
/// with a different `acl_file` (or none) on each listener. A listener without a file gets the
/// `$`-topic rules every broker applies.
#[derive(Debug)]
pub struct ListenerRules(Vec<Arc<dyn AccessControl>>);

impl AccessControl for ListenerRules {
    fn allows(&self, who: &Identity<'_>, topic: &str, access: Access) -> bool {
        match self.0.get(who.listener) {
            Some(rules) => rules.allows(who, topic, access),
            None => DollarRules.allows(who, topic, access),
        }
    }
}

/// The topic rules for listeners whose ACL files are `files` (in listener order; `None`: no
/// file). Each file is read once however many listeners name it; when every listener has the
/// same file the rules are that file's, with no choosing per client. Fails on the first file
/// that does not read, naming it and the line.
pub fn load_listener_rules(
    files: &[Option<PathBuf>],
) -> Result<(Arc<dyn AccessControl>, Vec<String>), AuthFileError> {
    let mut loaded: HashMap<&PathBuf, Arc<dyn AccessControl>> = HashMap::new();
    let mut warnings = Vec::new();
    let mut per_listener: Vec<Arc<dyn AccessControl>> = Vec::with_capacity(files.len());
    for file in files {
        let rules = match file {
            None => Arc::new(DollarRules) as Arc<dyn AccessControl>,
            Some(path) => match loaded.get(path) {
                Some(rules) => rules.clone(),
                None => {
                    let (rules, notes) = load_acl_file(path)?;
                    warnings.extend(notes);
                    loaded.insert(path, rules.clone());
                    rules
                }
            },
        };
        per_listener.push(rules);
    }
    let all_same = files.windows(2).all(|pair| pair[0] == pair[1]);
    let rules: Arc<dyn AccessControl> = match (all_same, per_listener.first()) {
        (true, Some(first)) => first.clone(),
        (true, None) => Arc::new(DollarRules),
        (false, _) => Arc::new(ListenerRules(per_listener)),
    };
    Ok((rules, warnings))
}

/// Reads an ACL file into the core's rules.
pub fn load_acl_file(path: &Path) -> Result<(Arc<dyn AccessControl>, Vec<String>), AuthFileError> {
    let file = AclFile::load(path)?;
    let warnings = file.warnings().iter().map(ToString::to_string).collect();
    Ok((Arc::new(AclRules::new(file)), warnings))
}

/// SCRAM-SHA-256 and SCRAM-SHA-512 against a `scram_file`, as the core's enhanced
/// authentication methods. The file can be replaced (a reload); exchanges under way finish
/// against the file they started with.
#[derive(Debug)]
pub struct ScramMethods {
    file: RwLock<Arc<ScramFile>>,
}

impl ScramMethods {
    /// The methods for the users of `file`.
    pub fn new(file: ScramFile) -> Self {
        Self {
            file: RwLock::new(Arc::new(file)),
        }
    }

    /// Replaces the file (a reload); exchanges started from now on use it.
    pub fn replace(&self, file: ScramFile) {
        *self.file.write() = Arc::new(file);
    }
}

impl AuthMethods for ScramMethods {
    fn start(&self, method: &str) -> Option<Box<dyn AuthExchange>> {
        let mechanism = Mechanism::from_name(method)?;
        let file = self.file.read().clone();
        let exchange = match ServerExchange::random_nonce() {
            Ok(nonce) => Ok(ServerExchange::new(mechanism, nonce)),
            Err(error) => Err(error.to_string()),
        };
        Some(Box::new(ScramAuth { file, exchange }))
    }
}

/// One SCRAM exchange against the file it started with.
#[derive(Debug)]
struct ScramAuth {
    file: Arc<ScramFile>,
    /// The exchange, or why none could start (no randomness for the nonce).
    exchange: Result<ServerExchange, String>,
}

impl AuthExchange for ScramAuth {
    fn step(&mut self, data: &[u8]) -> AuthStep {
        let exchange = match &mut self.exchange {
            Ok(exchange) => exchange,
            Err(error) => {
                return AuthStep::Failure {
                    reason: ReasonCode::UnspecifiedError,
                    detail: format!("no random nonce: {error}"),
                };
            }
        };
        match exchange.step(data, self.file.as_ref()) {
            Ok(ServerStep::Challenge(message)) => AuthStep::Continue(Bytes::from(message)),
            Ok(ServerStep::Authenticated {
                username,
                server_final,
            }) => AuthStep::Success {
                username: username.into(),
                data: Some(Bytes::from(server_final)),
            },
            Err(error) => AuthStep::Failure {
                reason: match error {
                    ScramError::InvalidProof(_) | ScramError::UnknownUser(_) => {
                        ReasonCode::BadUserNameOrPassword
                    }
                    _ => ReasonCode::NotAuthorized,
                },
                detail: error.to_string(),
            },
        }
    }
}

/// Reads a SCRAM file for enhanced authentication.
pub fn load_scram_file(path: &Path) -> Result<ScramFile, AuthFileError> {
    ScramFile::load(path)
}
