//! SCRAM, the Salted Challenge Response Authentication Mechanism (RFC 5802), with SHA-256
//! (RFC 7677) and SHA-512: the server's side of one exchange, and the verifiers it checks
//! against (what `midge passwd -H scram` writes and `scram_file` holds).
//!
//! The server never sees or stores a password. A [`Verifier`] holds the salt, the iteration
//! count, `StoredKey = H(HMAC(SaltedPassword, "Client Key"))` and
//! `ServerKey = HMAC(SaltedPassword, "Server Key")`; the client does the slow PBKDF2 work, and
//! checking its proof costs the server three HMACs and a hash, so the exchange can run on the
//! threads that move packets.
//!
//! What a [`ServerExchange`] accepts: a `client-first-message` without channel binding (`n`, or
//! `y` since no `-PLUS` mechanism is offered), with no authorization identity other than the
//! user name itself and no mandatory extension (`m=`), then a `client-final-message` whose
//! channel binding repeats the GS2 header and whose nonce is the combined one. A user unknown
//! to the file gets a decoy salt and iteration count, stable for that name, so that whether a
//! user exists cannot be learned from the server's first message; the proof then fails as a
//! wrong password does.
//!
//! Why the message layer is ours: the cryptography is RustCrypto's (`sha2`, `hmac`, `pbkdf2`,
//! `subtle` for the constant-time comparison), and what is left is a few hundred lines of
//! message parsing. The published SCRAM crates did not fit: `scram` and its fork `scram-2` do
//! SHA-256 only and sit on an old `ring`, `scram-rs` is not under an open-source licence, and
//! `rsasl` is a whole SASL framework. The broker needs a sans-I/O server that takes stored
//! verifiers rather than passwords, answers unknown users with decoys, and fails with typed
//! reasons that map to MQTT reason codes.
//!
//! Passwords are normalised with SASLprep (RFC 4013, the `stringprep` crate) before hashing,
//! as RFC 5802 §2.2 requires and every SCRAM client does. User names are compared as sent.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use pbkdf2::pbkdf2_hmac;
use sha2::{Digest as _, Sha256, Sha512};
use subtle::ConstantTimeEq as _;

/// The salt length `midge passwd` writes, in bytes.
pub const SALT_LEN: usize = 16;

/// The largest iteration count a verifier may carry (the client pays for each one).
pub const MAX_ITERATIONS: u32 = 10_000_000;

/// A SCRAM mechanism: the hash it is built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mechanism {
    /// `SCRAM-SHA-256` (RFC 7677).
    Sha256,
    /// `SCRAM-SHA-512`.
    Sha512,
}

impl Mechanism {
    /// Both mechanisms, in the order they are written.
    pub const ALL: [Self; 2] = [Self::Sha256, Self::Sha512];

    /// The mechanism with this SASL name (`SCRAM-SHA-256`, `SCRAM-SHA-512`), which is also its
    /// MQTT Authentication Method.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "SCRAM-SHA-256" => Some(Self::Sha256),
            "SCRAM-SHA-512" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// The SASL name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The iteration count `midge passwd` uses unless told otherwise: RFC 7677's minimum for
    /// SHA-256, and the 10,000 the SCRAM-SHA-512 draft recommends.
    pub fn default_iterations(self) -> u32 {
        match self {
            Self::Sha256 => 4096,
            Self::Sha512 => 10_000,
        }
    }

    /// The length of the hash and of every key, in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length, so `new_from_slice` cannot fail; were it ever to, the
        // empty result matches no stored key and the proof is refused.
        match self {
            Self::Sha256 => Hmac::<Sha256>::new_from_slice(key)
                .map(|mac| mac.chain_update(data).finalize().into_bytes().to_vec())
                .unwrap_or_default(),
            Self::Sha512 => Hmac::<Sha512>::new_from_slice(key)
                .map(|mac| mac.chain_update(data).finalize().into_bytes().to_vec())
                .unwrap_or_default(),
        }
    }

    /// `Hi(password, salt, i)`: PBKDF2 with this hash's HMAC.
    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0; self.key_len()];
        match self {
            Self::Sha256 => pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out),
            Self::Sha512 => pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out),
        }
        out
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the server keeps of one user's password for one mechanism.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    mechanism: Mechanism,
    iterations: u32,
    salt: Vec<u8>,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The keys stay out of logs: they let anyone impersonate the server.
        f.debug_struct("Verifier")
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Why a verifier as written in a file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifierError {
    /// Not `SCRAM-SHA-256$…` or `SCRAM-SHA-512$…`.
    #[error("unknown SCRAM mechanism \"{0}\" (expected SCRAM-SHA-256 or SCRAM-SHA-512)")]
    UnknownMechanism(String),
    /// Not `MECHANISM$ITERATIONS:SALT$STOREDKEY:SERVERKEY`.
    #[error("a verifier is MECHANISM$ITERATIONS:SALT$STOREDKEY:SERVERKEY; the {0} is missing")]
    MissingField(&'static str),
    /// The iteration count is not a whole number from 1 to [`MAX_ITERATIONS`].
    #[error("iteration count \"{0}\" is not a whole number from 1 to 10000000")]
    BadIterations(String),
    /// A field is not padded standard base64.
    #[error("the {0} is not valid base64")]
    BadBase64(&'static str),
    /// An empty salt.
    #[error("the salt is empty")]
    EmptySalt,
    /// A key whose length is not the hash's.
    #[error("the {what} is {got} bytes ({mechanism} keys are {expected})")]
    KeyLength {
        /// "stored key" or "server key".
        what: &'static str,
        /// The mechanism.
        mechanism: Mechanism,
        /// Its hash length.
        expected: usize,
        /// The length found.
        got: usize,
    },
}

/// Why a password cannot be made into a verifier.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// SASLprep refuses the password (a control character, say, or unassigned code points).
    #[error("the password is not allowed by SASLprep (RFC 4013)")]
    Saslprep,
    /// No random salt could be had from the system.
    #[error("no random salt: {0}")]
    Random(#[from] getrandom::Error),
}

impl Verifier {
    /// The verifier of `password` for `mechanism` with this salt and count. The password is
    /// normalised with SASLprep first.
    pub fn from_password(
        mechanism: Mechanism,
        password: &str,
        salt: Vec<u8>,
        iterations: u32,
    ) -> Result<Self, PasswordError> {
        let password = stringprep::saslprep(password).map_err(|_| PasswordError::Saslprep)?;
        let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
        let client_key = mechanism.hmac(&salted, b"Client Key");
        Ok(Self {
            mechanism,
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(&salted, b"Server Key"),
            salt,
        })
    }

    /// A verifier of `password` with a new random salt of [`SALT_LEN`] bytes.
    pub fn generate(mechanism: Mechanism, password: &str, iterations: u32) -> Result<Self, PasswordError> {
        let mut salt = vec![0; SALT_LEN];
        getrandom::fill(&mut salt)?;
        Self::from_password(mechanism, password, salt, iterations)
    }

    /// Reads `SCRAM-SHA-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY` (the layout PostgreSQL also
    /// uses), each binary field in padded standard base64.
    pub fn parse(text: &str) -> Result<Self, VerifierError> {
        let (name, rest) = text
            .split_once('$')
            .ok_or(VerifierError::MissingField("iteration count"))?;
        let mechanism =
            Mechanism::from_name(name).ok_or_else(|| VerifierError::UnknownMechanism(name.to_owned()))?;
        let (parameters, keys) = rest.split_once('$').ok_or(VerifierError::MissingField("keys"))?;
        let (iterations, salt) = parameters
            .split_once(':')
            .ok_or(VerifierError::MissingField("salt"))?;
        let (stored_key, server_key) = keys
            .split_once(':')
            .ok_or(VerifierError::MissingField("server key"))?;
        let iterations = iterations
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_ITERATIONS).contains(n) && iterations.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| VerifierError::BadIterations(iterations.to_owned()))?;
        let decode = |field: &str, what| STANDARD.decode(field).map_err(|_| VerifierError::BadBase64(what));
        let salt = decode(salt, "salt")?;
        if salt.is_empty() {
            return Err(VerifierError::EmptySalt);
        }
        let stored_key = decode(stored_key, "stored key")?;
        let server_key = decode(server_key, "server key")?;
        for (what, key) in [("stored key", &stored_key), ("server key", &server_key)] {
            if key.len() != mechanism.key_len() {
                return Err(VerifierError::KeyLength {
                    what,
                    mechanism,
                    expected: mechanism.key_len(),
                    got: key.len(),
                });
            }
        }
        Ok(Self {
            mechanism,
            iterations,
            salt,
            stored_key,
            server_key,
        })
    }

    /// The mechanism.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The iteration count.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// A decoy for a user the server does not know: salt and keys derived from `secret` and the
    /// name, so that asking twice gives the same salt, as it would for a real user.
    pub(crate) fn decoy(mechanism: Mechanism, secret: &[u8], username: &str) -> Self {
        let seed = |label: &str| {
            let mut data = Vec::with_capacity(label.len() + mechanism.name().len() + username.len() + 2);
            data.extend_from_slice(label.as_bytes());
            data.push(0);
            data.extend_from_slice(mechanism.name().as_bytes());
            data.push(0);
            data.extend_from_slice(username.as_bytes());
            mechanism.hmac(secret, &data)
        };
        let mut salt = seed("salt");
        salt.truncate(SALT_LEN);
        Self {
            mechanism,
            iterations: mechanism.default_iterations(),
            salt,
            stored_key: seed("stored key"),
            server_key: seed("server key"),
        }
    }
}

impl fmt::Display for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}${}:{}${}:{}",
            self.mechanism.name(),
            self.iterations,
            STANDARD.encode(&self.salt),
            STANDARD.encode(&self.stored_key),
            STANDARD.encode(&self.server_key)
        )
    }
}

/// Why an exchange failed. The server refuses the client either way; the variant is for the
/// log and for choosing the reason code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScramError {
    /// A message that does not follow RFC 5802's grammar.
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    /// The client asked for channel binding (`p=`), which no offered mechanism has.
    #[error("the client asked for channel binding, which is not offered")]
    ChannelBinding,
    /// An authorization identity other than the user name itself.
    #[error("authorization identity \"{0}\" is not the user name")]
    Authzid(String),
    /// A mandatory extension (`m=`) the server does not know.
    #[error("the client requires an extension the server does not know")]
    MandatoryExtension,
    /// The final message's channel binding is not the first message's GS2 header.
    #[error("the channel binding of the final message does not match the first")]
    ChannelBindingMismatch,
    /// The final message's nonce is not the combined nonce.
    #[error("the nonce of the final message is not the one agreed")]
    NonceMismatch,
    /// The user is not in the file (the client was answered with a decoy).
    #[error("unknown user \"{0}\"")]
    UnknownUser(String),
    /// The proof is wrong: a wrong password.
    #[error("wrong proof (wrong password) for user \"{0}\"")]
    InvalidProof(String),
    /// A message after the exchange ended, or after it failed.
    #[error("SCRAM message after the exchange ended")]
    Finished,
}

/// What the exchange says after a client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerStep {
    /// Send this `server-first-message` and wait for the client's final message.
    Challenge(String),
    /// The proof is right: `username` is authenticated; send this `server-final-message`.
    Authenticated {
        /// The user, as in the file.
        username: String,
        /// `v=` and the server's signature, which proves to the client that the server
        /// holds its verifier.
        server_final: String,
    },
}

/// Where the verifiers come from: a user's verifier for a mechanism, or `None` if there is
/// none (the exchange then answers with [`VerifierLookup::decoy`]).
pub trait VerifierLookup {
    /// The verifier of `username` for `mechanism`, if there is one.
    fn verifier(&self, username: &str, mechanism: Mechanism) -> Option<Verifier>;
    /// The decoy to answer an unknown `username` with.
    fn decoy(&self, username: &str, mechanism: Mechanism) -> Verifier;
}

/// The state between the two client messages.
#[derive(Debug)]
struct Pending {
    username: String,
    known: bool,
    verifier: Verifier,
    gs2_header: String,
    nonce: String,
    /// `client-first-message-bare "," server-first-message`, the start of AuthMessage.
    auth_message_start: String,
}

#[derive(Debug)]
enum State {
    First,
    Final(Box<Pending>),
    Done,
}

/// The server's side of one SCRAM exchange: feed it the client's messages in turn.
#[derive(Debug)]
pub struct ServerExchange {
    mechanism: Mechanism,
    server_nonce: String,
    state: State,
}

impl ServerExchange {
    /// A new exchange for `mechanism`. `server_nonce` is the server's half of the nonce:
    /// printable ASCII without `,`, fresh and unpredictable for every exchange
    /// ([`ServerExchange::random_nonce`]).
    pub fn new(mechanism: Mechanism, server_nonce: String) -> Self {
        Self {
            mechanism,
            server_nonce,
            state: State::First,
        }
    }

    /// 18 random bytes in base64, for [`ServerExchange::new`].
    pub fn random_nonce() -> Result<String, getrandom::Error> {
        let mut bytes = [0u8; 18];
        getrandom::fill(&mut bytes)?;
        Ok(STANDARD.encode(bytes))
    }

    /// The mechanism.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Takes the client's next message: the first gets the server's challenge, the final one
    /// the verdict. Any failure ends the exchange.
    pub fn step(&mut self, message: &[u8], lookup: &dyn VerifierLookup) -> Result<ServerStep, ScramError> {
        let state = std::mem::replace(&mut self.state, State::Done);
        if matches!(state, State::Done) {
            return Err(ScramError::Finished);
        }
        let message = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        match state {
            State::First => {
                let (pending, server_first) = self.client_first(message, lookup)?;
                self.state = State::Final(Box::new(pending));
                Ok(ServerStep::Challenge(server_first))
            }
            State::Final(pending) => self.client_final(message, &pending),
            State::Done => Err(ScramError::Finished),
        }
    }

    fn client_first(
        &self,
        message: &str,
        lookup: &dyn VerifierLookup,
    ) -> Result<(Pending, String), ScramError> {
        // gs2-header: cbind-flag "," [authzid] ","
        let (flag, rest) = message
            .split_once(',')
            .ok_or(ScramError::Malformed("no GS2 header"))?;
        match flag {
            "n" | "y" => {}
            _ if flag.starts_with("p=") => return Err(ScramError::ChannelBinding),
            _ => return Err(ScramError::Malformed("bad channel binding flag")),
        }
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or(ScramError::Malformed("no GS2 header"))?;
        let gs2_header = format!("{flag},{authzid},");
        let mut attributes = bare.split(',');
        let mut first = attributes.next().unwrap_or_default();
        if first.starts_with("m=") {
            return Err(ScramError::MandatoryExtension);
        }
        let username = attribute(first, 'n').ok_or(ScramError::Malformed("no user name"))?;
        let username = decode_saslname(username)?;
        first = attributes.next().unwrap_or_default();
        let client_nonce = attribute(first, 'r').ok_or(ScramError::Malformed("no nonce"))?;
        if client_nonce.is_empty() || !client_nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(ScramError::Malformed("bad nonce"));
        }
        if !authzid.is_empty() {
            let authzid =
                attribute(authzid, 'a').ok_or(ScramError::Malformed("bad authorization identity"))?;
            let authzid = decode_saslname(authzid)?;
            if authzid != username {
                return Err(ScramError::Authzid(authzid));
            }
        }
        let (verifier, known) = match lookup.verifier(&username, self.mechanism) {
            Some(verifier) if verifier.mechanism == self.mechanism => (verifier, true),
            _ => (lookup.decoy(&username, self.mechanism), false),
        };
        let nonce = format!("{client_nonce}{}", self.server_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            STANDARD.encode(&verifier.salt),
            verifier.iterations
        );
        let pending = Pending {
            username,
            known,
            verifier,
            gs2_header,
            nonce,
            auth_message_start: format!("{bare},{server_first}"),
        };
        Ok((pending, server_first))
    }

    fn client_final(&self, message: &str, pending: &Pending) -> Result<ServerStep, ScramError> {
        let (without_proof, proof) = message
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let mut attributes = without_proof.split(',');
        let binding = attribute(attributes.next().unwrap_or_default(), 'c')
            .ok_or(ScramError::Malformed("no channel binding"))?;
        let nonce =
            attribute(attributes.next().unwrap_or_default(), 'r').ok_or(ScramError::Malformed("no nonce"))?;
        let binding = STANDARD
            .decode(binding)
            .map_err(|_| ScramError::Malformed("channel binding is not base64"))?;
        if binding != pending.gs2_header.as_bytes() {
            return Err(ScramError::ChannelBindingMismatch);
        }
        if nonce != pending.nonce {
            return Err(ScramError::NonceMismatch);
        }
        let proof = STANDARD
            .decode(proof)
            .map_err(|_| ScramError::Malformed("proof is not base64"))?;
        let mechanism = self.mechanism;
        let auth_message = format!("{},{without_proof}", pending.auth_message_start);
        let verifier = &pending.verifier;
        let signature = mechanism.hmac(&verifier.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(ScramError::InvalidProof(pending.username.clone()));
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        let matches = bool::from(mechanism.hash(&client_key).ct_eq(&verifier.stored_key));
        if !pending.known {
            return Err(ScramError::UnknownUser(pending.username.clone()));
        }
        if !matches {
            return Err(ScramError::InvalidProof(pending.username.clone()));
        }
        let server_signature = mechanism.hmac(&verifier.server_key, auth_message.as_bytes());
        Ok(ServerStep::Authenticated {
            username: pending.username.clone(),
            server_final: format!("v={}", STANDARD.encode(server_signature)),
        })
    }
}

/// The value of `attr=value` when the attribute is `name`.
fn attribute(field: &str, name: char) -> Option<&str> {
    let mut chars = field.chars();
    (chars.next() == Some(name) && chars.next() == Some('=')).then(|| &field[2..])
}

/// A `saslname`: `=2C` is `,` and `=3D` is `=`; any other `=` is an error (RFC 5802 §5.1).
fn decode_saslname(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3);
        match escape {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in a name")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(ScramError::Malformed("empty user name"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail by panicking")]

    use super::*;

    /// One user, "user", with the verifier of RFC 7677 §3's example.
    struct OneUser(Verifier);

    impl VerifierLookup for OneUser {
        fn verifier(&self, username: &str, mechanism: Mechanism) -> Option<Verifier> {
            (username == "user" && mechanism == self.0.mechanism).then(|| self.0.clone())
        }
        fn decoy(&self, username: &str, mechanism: Mechanism) -> Verifier {
            Verifier::decoy(mechanism, b"secret", username)
        }
    }

    fn rfc7677_user() -> OneUser {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        OneUser(Verifier::from_password(Mechanism::Sha256, "pencil", salt, 4096).unwrap())
    }

    #[test]
    fn rfc_7677_example_exchange() {
        let lookup = rfc7677_user();
        let mut server = ServerExchange::new(Mechanism::Sha256, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into());
        let first = server.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", &lookup).unwrap();
        assert_eq!(
            first,
            ServerStep::Challenge(
                "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
                    .into()
            )
        );
        let last = server
            .step(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                &lookup,
            )
            .unwrap();
        assert_eq!(
            last,
            ServerStep::Authenticated {
                username: "user".into(),
                server_final: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".into(),
            }
        );
        assert_eq!(server.step(b"c=biws", &lookup), Err(ScramError::Finished));
    }

    #[test]
    fn a_wrong_proof_and_an_unknown_user_fail_alike() {
        let lookup = rfc7677_user();
        let mut server = ServerExchange::new(Mechanism::Sha256, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into());
        server.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", &lookup).unwrap();
        let wrong = server.step(
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            &lookup,
        );
        assert_eq!(wrong, Err(ScramError::InvalidProof("user".into())));

        // An unknown user gets a salt, the same one each time, and then fails.
        let challenge = |name: &str| {
            let mut server = ServerExchange::new(Mechanism::Sha256, "xyz".into());
            match server
                .step(format!("n,,n={name},r=abc").as_bytes(), &lookup)
                .unwrap()
            {
                ServerStep::Challenge(text) => (server, text),
                other => panic!("{other:?}"),
            }
        };
        let (_, once) = challenge("nobody");
        let (mut server, twice) = challenge("nobody");
        assert_eq!(once, twice);
        assert!(once.contains(",s=") && once.ends_with(",i=4096"), "{once}");
        assert_ne!(challenge("somebody").1, once);
        let proof = STANDARD.encode([0u8; 32]);
        let result = server.step(format!("c=biws,r=abcxyz,p={proof}").as_bytes(), &lookup);
        assert_eq!(result, Err(ScramError::UnknownUser("nobody".into())));
    }

    #[test]
    fn malformed_and_unsupported_first_messages_are_refused() {
        let lookup = rfc7677_user();
        for (message, expected) in [
            (&b"p=tls-unique,,n=user,r=abc"[..], ScramError::ChannelBinding),
            (b"n,a=admin,n=user,r=abc", ScramError::Authzid("admin".into())),
            (b"n,,m=ext,n=user,r=abc", ScramError::MandatoryExtension),
            (b"n,,n=user", ScramError::Malformed("no nonce")),
            (b"n,,r=abc", ScramError::Malformed("no user name")),
            (
                b"n,,n=us=3er,r=abc",
                ScramError::Malformed("bad escape in a name"),
            ),
            (
                b"x,,n=user,r=abc",
                ScramError::Malformed("bad channel binding flag"),
            ),
            (b"", ScramError::Malformed("no GS2 header")),
            (b"\xff", ScramError::Malformed("not UTF-8")),
        ] {
            let mut server = ServerExchange::new(Mechanism::Sha256, "xyz".into());
            assert_eq!(server.step(message, &lookup), Err(expected), "{message:?}");
            // A failed exchange takes nothing more.
            assert_eq!(server.step(message, &lookup), Err(ScramError::Finished));
        }
        // `y` (the client could bind but thinks we cannot) and an authzid that is the user.
        let mut server = ServerExchange::new(Mechanism::Sha256, "xyz".into());
        assert!(server.step(b"y,a=user,n=user,r=abc", &lookup).is_ok());
    }

    #[test]
    fn the_final_message_must_bind_the_same_header_and_nonce() {
        let lookup = rfc7677_user();
        let proof = STANDARD.encode([0u8; 32]);
        for (last, expected) in [
            (
                format!("c=eSws,r=abcxyz,p={proof}"),
                ScramError::ChannelBindingMismatch,
            ),
            (format!("c=biws,r=abcxyZ,p={proof}"), ScramError::NonceMismatch),
            ("c=biws,r=abcxyz".to_owned(), ScramError::Malformed("no proof")),
            (
                "c=biws,r=abcxyz,p=???".to_owned(),
                ScramError::Malformed("proof is not base64"),
            ),
            (
                "c=biws,r=abcxyz,p=AAAA".to_owned(),
                ScramError::InvalidProof("user".into()),
            ),
        ] {
            let mut server = ServerExchange::new(Mechanism::Sha256, "xyz".into());
            server.step(b"n,,n=user,r=abc", &lookup).unwrap();
            assert_eq!(server.step(last.as_bytes(), &lookup), Err(expected), "{last}");
        }
    }

    #[test]
    fn verifiers_round_trip_and_bad_ones_are_named() {
        let verifier = Verifier::generate(Mechanism::Sha512, "pass word", 2).unwrap();
        let text = verifier.to_string();
        assert!(text.starts_with("SCRAM-SHA-512$2:"), "{text}");
        assert_eq!(Verifier::parse(&text).unwrap(), verifier);
        let rfc = rfc7677_user().0.to_string();
        assert!(
            rfc.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"),
            "{rfc}"
        );
        assert_eq!(Verifier::parse(&rfc).unwrap(), rfc7677_user().0);
        for (text, expected) in [
            (
                "SCRAM-SHA-1$4096:c2FsdA==$a:b",
                VerifierError::UnknownMechanism("SCRAM-SHA-1".into()),
            ),
            ("SCRAM-SHA-256", VerifierError::MissingField("iteration count")),
            ("SCRAM-SHA-256$4096:c2FsdA==", VerifierError::MissingField("keys")),
            (
                "SCRAM-SHA-256$0:c2FsdA==$a:b",
                VerifierError::BadIterations("0".into()),
            ),
            (
                "SCRAM-SHA-256$+5:c2FsdA==$a:b",
                VerifierError::BadIterations("+5".into()),
            ),
            ("SCRAM-SHA-256$5:!!$a:b", VerifierError::BadBase64("salt")),
            ("SCRAM-SHA-256$5:$a:b", VerifierError::EmptySalt),
            (
                "SCRAM-SHA-256$5:c2FsdA==$c2FsdA==:c2FsdA==",
                VerifierError::KeyLength {
                    what: "stored key",
                    mechanism: Mechanism::Sha256,
                    expected: 32,
                    got: 4,
                },
            ),
        ] {
            assert_eq!(Verifier::parse(text), Err(expected), "{text}");
        }
    }

    #[test]
    fn passwords_are_saslprepped() {
        // U+00AD SOFT HYPHEN maps to nothing; U+2168 ROMAN NUMERAL NINE to "IX" (NFKC).
        let salt = b"salt".to_vec();
        let plain = Verifier::from_password(Mechanism::Sha256, "IX", salt.clone(), 2).unwrap();
        let fancy = Verifier::from_password(Mechanism::Sha256, "I\u{ad}X", salt.clone(), 2).unwrap();
        let numeral = Verifier::from_password(Mechanism::Sha256, "\u{2168}", salt.clone(), 2).unwrap();
        assert_eq!(plain, fancy);
        assert_eq!(plain, numeral);
        assert!(matches!(
            Verifier::from_password(Mechanism::Sha256, "a\u{7}", salt, 2),
            Err(PasswordError::Saslprep)
        ));
    }
}
