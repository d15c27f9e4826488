//! TLS for listeners: turning a listener's mosquitto.conf options (`certfile`, `keyfile`,
//! `cafile`, `capath`, `crlfile`, `tls_version`, `ciphers`, `require_certificate`, ...) into a
//! rustls server configuration, swapping it when the files change, and reading the username a
//! client certificate gives (`use_identity_as_username`, `use_subject_as_username`).
//!
//! Every configuration is built with an explicit crypto provider (aws-lc-rs), so moving to
//! rustls 0.24, where providers live in their own crates, touches this file only. The bytes of
//! a TLS connection are moved by `transport::tls`.
//!
//! A reload builds a whole new configuration from the files and swaps it in only if every file
//! reads and fits together; until then, and if it fails, new connections get the old one.
//! Connections already open keep the session they negotiated.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{CipherSuite, RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::config::{TlsOptions, TlsVersion};

/// Why a listener's TLS configuration could not be built, naming the file and the directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError(String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

fn error(message: impl Into<String>) -> TlsError {
    TlsError(message.into())
}

/// Where a client's username comes from on a TLS listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CertificateUsername {
    /// From CONNECT, checked against the password file as usual.
    FromConnect,
    /// `use_identity_as_username`: the certificate's Common Name.
    CommonName,
    /// `use_subject_as_username`: the certificate's subject, RFC 2253 style.
    Subject,
}

/// A TLS listener's configuration: the one new connections get, and how to rebuild it.
#[derive(Debug)]
pub struct TlsListener {
    options: TlsOptions,
    current: ArcSwap<ServerConfig>,
    /// What the files looked like when `current` was built, to notice changes.
    stamps: Mutex<Vec<FileStamp>>,
    username: CertificateUsername,
    /// Lines worth logging once (an old `tls_version`, a cipher rustls lacks).
    notes: Vec<String>,
}

impl TlsListener {
    /// Reads the files `options` name and builds the configuration.
    pub fn load(options: &TlsOptions) -> Result<Self, TlsError> {
        let (config, notes) = build(options)?;
        let username = if options.use_identity_as_username {
            CertificateUsername::CommonName
        } else if options.use_subject_as_username {
            CertificateUsername::Subject
        } else {
            CertificateUsername::FromConnect
        };
        Ok(Self {
            options: options.clone(),
            current: ArcSwap::from_pointee(config),
            stamps: Mutex::new(stamps(options)),
            username,
            notes,
        })
    }

    /// Things the configuration does differently from what the file literally says, to log.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The certificate and key files, for log lines.
    pub fn certfile(&self) -> Option<&Path> {
        self.options.certfile.as_deref()
    }

    /// Rebuilds from the files (SIGHUP). On failure the configuration in force stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = stamps(&self.options);
        let (config, _) = build(&self.options)?;
        self.current.store(Arc::new(config));
        *self.stamps.lock() = fresh;
        Ok(())
    }

    /// Rebuilds if a file changed since the last build (certificate renewals). `Ok(false)`: no
    /// file changed. A failed rebuild is retried at the next change only.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let fresh = stamps(&self.options);
        {
            let mut known = self.stamps.lock();
            if *known == fresh {
                return Ok(false);
            }
            // Remember the change now, so a broken file is reported once, not at every look.
            *known = fresh;
        }
        let (config, _) = build(&self.options)?;
        self.current.store(Arc::new(config));
        Ok(true)
    }

    /// The configuration for a connection accepted now.
    pub(crate) fn config(&self) -> Arc<ServerConfig> {
        self.current.load_full()
    }

    /// Where usernames come from on this listener.
    pub(crate) fn username_source(&self) -> CertificateUsername {
        self.username
    }
}

/// The crypto provider: aws-lc-rs, with the cipher suites `options` allow.
fn provider(options: &TlsOptions, notes: &mut Vec<String>) -> Result<CryptoProvider, TlsError> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    let all = provider.cipher_suites.clone();
    let mut chosen: Vec<SupportedCipherSuite> = Vec::new();
    let tls12: Vec<SupportedCipherSuite> = all.iter().copied().filter(|s| s.tls13().is_none()).collect();
    let tls13: Vec<SupportedCipherSuite> = all.iter().copied().filter(|s| s.tls13().is_some()).collect();
    chosen.extend(match &options.ciphers_tls13 {
        Some(list) => pick_suites(list, "ciphers_tls1.3", &tls13, notes)?,
        None => tls13,
    });
    chosen.extend(match &options.ciphers {
        Some(list) => pick_suites(list, "ciphers", &tls12, notes)?,
        None => tls12,
    });
    provider.cipher_suites = chosen;
    Ok(provider)
}

/// The suites of `offered` that an OpenSSL-style cipher list names, in the list's order.
/// OpenSSL's group keywords (`HIGH`, `DEFAULT`, `ECDHE`, ...) select all of `offered` (rustls
/// offers only strong AEAD suites with forward secrecy, which is what such lists aim at);
/// exclusions (`!aNULL`) of suites rustls never offers change nothing. A list that names only
/// suites rustls lacks is an error: the listener would accept nothing.
fn pick_suites(
    list: &str,
    directive: &str,
    offered: &[SupportedCipherSuite],
    notes: &mut Vec<String>,
) -> Result<Vec<SupportedCipherSuite>, TlsError> {
    let mut picked: Vec<SupportedCipherSuite> = Vec::new();
    let mut excluded: Vec<CipherSuite> = Vec::new();
    let mut unknown = Vec::new();
    for item in list.split([':', ',', ' ']).filter(|s| !s.is_empty()) {
        let (negated, name) = match item.strip_prefix(['!', '-']) {
            Some(name) => (true, name),
            None => (false, item.strip_prefix('+').unwrap_or(item)),
        };
        match suite_by_name(name) {
            Some(suite) if negated => excluded.push(suite),
            Some(suite) => match offered.iter().find(|s| s.suite() == suite) {
                Some(found) if !picked.contains(found) => picked.push(*found),
                Some(_) => {}
                None => unknown.push(name.to_owned()),
            },
            None if negated => {}
            None if is_openssl_keyword(name) => {
                picked.extend(
                    offered
                        .iter()
                        .filter(|s| !picked.contains(s))
                        .copied()
                        .collect::<Vec<_>>(),
                );
            }
            None => unknown.push(name.to_owned()),
        }
    }
    picked.retain(|s| !excluded.contains(&s.suite()));
    if !unknown.is_empty() {
        notes.push(format!(
            "{directive}: {} not offered by rustls, ignored",
            unknown.join(", ")
        ));
    }
    if picked.is_empty() {
        return Err(error(format!(
            "{directive} \"{list}\" leaves no cipher suite that Midge offers; suites: {}",
            offered
                .iter()
                .filter_map(|s| openssl_name(s.suite()))
                .collect::<Vec<_>>()
                .join(":")
        )));
    }
    Ok(picked)
}

/// OpenSSL's and IANA's names for the suites rustls offers.
const SUITE_NAMES: &[(&str, &str, CipherSuite)] = &[
    (
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_128_GCM_SHA256,
    ),
    (
        "TLS_AES_256_GCM_SHA384",
        "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_AES_256_GCM_SHA384,
    ),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

fn suite_by_name(name: &str) -> Option<CipherSuite> {
    SUITE_NAMES
        .iter()
        .find(|(openssl, iana, _)| name.eq_ignore_ascii_case(openssl) || name.eq_ignore_ascii_case(iana))
        .map(|(_, _, suite)| *suite)
}

fn openssl_name(suite: CipherSuite) -> Option<&'static str> {
    SUITE_NAMES
        .iter()
        .find(|(_, _, s)| *s == suite)
        .map(|(name, _, _)| *name)
}

/// OpenSSL cipher-list keywords that stand for groups of suites.
fn is_openssl_keyword(name: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "DEFAULT",
        "ALL",
        "HIGH",
        "MEDIUM",
        "ECDHE",
        "EECDH",
        "kECDHE",
        "ECDH",
        "AESGCM",
        "AES",
        "AES128",
        "AES256",
        "CHACHA20",
        "ECDSA",
        "aECDSA",
        "RSA",
        "aRSA",
        "SHA256",
        "SHA384",
        "TLSv1.2",
        "kEECDH",
        "@STRENGTH",
        "@SECLEVEL=1",
        "@SECLEVEL=2",
        "@SECLEVEL=3",
        "COMPLEMENTOFDEFAULT",
        "FIPS",
    ];
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(name))
}

/// The protocol versions from `tls_version` (the lowest accepted) up.
fn versions(options: &TlsOptions, notes: &mut Vec<String>) -> Vec<&'static SupportedProtocolVersion> {
    match options.min_version {
        Some(TlsVersion::V1_3) => vec![&rustls::version::TLS13],
        Some(old @ (TlsVersion::V1_0 | TlsVersion::V1_1)) => {
            notes.push(format!(
                "tls_version {}: rustls offers TLS 1.2 and 1.3 only, so older clients cannot connect",
                if old == TlsVersion::V1_0 {
                    "tlsv1"
                } else {
                    "tlsv1.1"
                }
            ));
            vec![&rustls::version::TLS13, &rustls::version::TLS12]
        }
        Some(TlsVersion::V1_2) | None => vec![&rustls::version::TLS13, &rustls::version::TLS12],
    }
}

fn build(options: &TlsOptions) -> Result<(ServerConfig, Vec<String>), TlsError> {
    let mut notes = Vec::new();
    let (certfile, keyfile) = match (&options.certfile, &options.keyfile) {
        (Some(cert), Some(key)) => (cert, key),
        (Some(_), None) => {
            return Err(error(
                "certfile is set but keyfile is not: both are needed for TLS",
            ));
        }
        (None, _) => {
            return Err(error(
                "keyfile is set but certfile is not: both are needed for TLS",
            ));
        }
    };
    if (options.require_certificate || options.crlfile.is_some())
        && options.cafile.is_none()
        && options.capath.is_none()
    {
        return Err(error(
            "require_certificate and crlfile need cafile or capath: the certificate authorities \
             that client certificates must chain to",
        ));
    }
    if (options.use_identity_as_username || options.use_subject_as_username) && !options.require_certificate {
        notes.push(
            "use_identity_as_username/use_subject_as_username without require_certificate true: \
             clients are not asked for a certificate, so every client is refused"
                .to_owned(),
        );
    }

    let chain = read_certificates(certfile, "certfile")?;
    let key = read_key(keyfile)?;
    let provider = Arc::new(provider(options, &mut notes)?);
    let versions = versions(options, &mut notes);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| {
            error(format!(
                "the TLS versions and cipher suites chosen do not fit together: {e}"
            ))
        })?;

    let builder = if options.require_certificate {
        let mut roots = RootCertStore::empty();
        if let Some(cafile) = &options.cafile {
            add_roots(&mut roots, cafile, "cafile")?;
        }
        if let Some(capath) = &options.capath {
            let entries = std::fs::read_dir(capath).map_err(|e| {
                error(format!(
                    "capath {}: cannot read the directory: {e}",
                    capath.display()
                ))
            })?;
            let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for path in paths.iter().filter(|p| p.is_file()) {
                // OpenSSL's hashed directories hold links named like `5ed36f99.0`, and often
                // other files; files that hold no certificate are skipped.
                if let Ok(bytes) = std::fs::read(path) {
                    for cert in CertificateDer::pem_slice_iter(&bytes).flatten() {
                        let _ = roots.add(cert);
                    }
                }
            }
        }
        if roots.is_empty() {
            return Err(error(
                "cafile/capath: no CA certificate found to check client certificates against",
            ));
        }
        let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        if let Some(crlfile) = &options.crlfile {
            let bytes = read_file(crlfile, "crlfile")?;
            let crls: Vec<CertificateRevocationListDer<'static>> =
                CertificateRevocationListDer::pem_slice_iter(&bytes)
                    .collect::<Result<_, _>>()
                    .map_err(|e| error(format!("crlfile {}: {e}", crlfile.display())))?;
            if crls.is_empty() {
                return Err(error(format!(
                    "crlfile {}: no certificate revocation list in it",
                    crlfile.display()
                )));
            }
            verifier = verifier.with_crls(crls);
        }
        let verifier = verifier
            .build()
            .map_err(|e| error(format!("cannot check client certificates: {e}")))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        // As Mosquitto: without require_certificate no client certificate is asked for, and
        // `cafile` is only checked to be readable.
        if let Some(cafile) = &options.cafile {
            let mut roots = RootCertStore::empty();
            add_roots(&mut roots, cafile, "cafile")?;
        }
        builder.with_no_client_auth()
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        error(format!(
            "certfile {} and keyfile {keyfile:?} do not fit: {e}",
            certfile.display()
        ))
    })?;
    config.alpn_protocols = Vec::new();
    Ok((config, notes))
}

fn read_file(path: &Path, directive: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| error(format!("{directive} {}: cannot read: {e}", path.display())))
}

fn read_certificates(path: &Path, directive: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_file(path, directive)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            error(format!(
                "{directive} {}: not a PEM certificate file: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(error(format!(
            "{directive} {}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read_file(path, "keyfile")?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        error(format!(
            "keyfile {}: no usable private key (PEM PKCS#8, PKCS#1 or SEC1, not encrypted): {e}",
            path.display()
        ))
    })
}

fn add_roots(roots: &mut RootCertStore, path: &Path, directive: &str) -> Result<(), TlsError> {
    for cert in read_certificates(path, directive)? {
        roots.add(cert).map_err(|e| {
            error(format!(
                "{directive} {}: not a usable CA certificate: {e}",
                path.display()
            ))
        })?;
    }
    Ok(())
}

/// What a file looked like: enough to notice a renewal (a new file renamed over the old one, or
/// a symbolic link pointed elsewhere, as certbot does).
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamps(options: &TlsOptions) -> Vec<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    [
        &options.certfile,
        &options.keyfile,
        &options.cafile,
        &options.crlfile,
    ]
    .into_iter()
    .map(|path| {
        path.as_ref().and_then(|p| std::fs::metadata(p).ok()).map_or(
            FileStamp {
                modified: None,
                len: 0,
                inode: 0,
            },
            |m| FileStamp {
                modified: m.modified().ok(),
                len: m.len(),
                inode: m.ino(),
            },
        )
    })
    .collect()
}

/// The username a verified client certificate gives, by `source`; `None` when there is no
/// certificate or it has no such name.
pub(crate) fn certificate_username(
    source: CertificateUsername,
    certificate: &CertificateDer<'_>,
) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    let subject = parsed.subject();
    match source {
        CertificateUsername::FromConnect => None,
        CertificateUsername::CommonName => subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned),
        CertificateUsername::Subject => Some(rfc2253(subject)),
    }
}

/// A distinguished name as OpenSSL prints it with `XN_FLAG_RFC2253` (what Mosquitto uses for
/// `use_subject_as_username`): the most specific part first, `,` between parts, `+` inside a
/// multi-valued part, and RFC 2253's escapes.
fn rfc2253(name: &x509_parser::x509::X509Name<'_>) -> String {
    let mut parts = Vec::new();
    for rdn in name.iter().collect::<Vec<_>>().into_iter().rev() {
        let attributes: Vec<String> = rdn
            .iter()
            .map(|attribute| {
                let oid = attribute.attr_type();
                let key = x509_parser::objects::oid2abbrev(oid, x509_parser::objects::oid_registry())
                    .map(str::to_owned)
                    .unwrap_or_else(|_| oid.to_id_string());
                let value = attribute.as_str().map(escape_rfc2253).unwrap_or_else(|_| {
                    let hex: String = attribute.as_slice().iter().map(|b| format!("{b:02X}")).collect();
                    format!("#{hex}")
                });
                format!("{key}={value}")
            })
            .collect();
        parts.push(attributes.join("+"));
    }
    parts.join(",")
}

fn escape_rfc2253(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_lists_pick_what_rustls_offers_and_refuse_what_it_does_not() {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let tls12: Vec<_> = provider
            .cipher_suites
            .iter()
            .copied()
            .filter(|s| s.tls13().is_none())
            .collect();
        let mut notes = Vec::new();
        let picked = pick_suites(
            "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256",
            "ciphers",
            &tls12,
            &mut notes,
        )
        .expect("two known suites");
        assert_eq!(
            picked.iter().map(|s| s.suite()).collect::<Vec<_>>(),
            [
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
            ]
        );
        assert!(notes.is_empty());

        let all = pick_suites("HIGH:!aNULL:!MD5", "ciphers", &tls12, &mut notes).expect("a keyword list");
        assert_eq!(all.len(), tls12.len());

        let mut notes = Vec::new();
        let error =
            pick_suites("DES-CBC3-SHA:RC4-MD5", "ciphers", &tls12, &mut notes).expect_err("nothing usable");
        assert!(error.to_string().contains("leaves no cipher suite"), "{error}");
        assert_eq!(
            notes,
            ["ciphers: DES-CBC3-SHA, RC4-MD5 not offered by rustls, ignored"]
        );
    }

    #[test]
    fn rfc2253_escapes_and_orders_like_openssl() {
        assert_eq!(escape_rfc2253("a,b"), "a\\,b");
        assert_eq!(escape_rfc2253(" x "), "\\ x\\ ");
        assert_eq!(escape_rfc2253("#1"), "\\#1");
        assert_eq!(escape_rfc2253("plain"), "plain");
    }
}
