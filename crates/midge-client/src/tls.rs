//! TLS for the client: [`TlsOptions`] (what Mosquitto's tools take as `--cafile`, `--capath`,
//! `--tls-use-os-certs`, `--cert`, `--key`, `--insecure`, `--tls-version`, `--ciphers` and
//! `--tls-alpn`) built into a rustls [`ClientConfig`], and [`TlsConnector`], which wraps any
//! other [`Connector`] (TCP, a Unix socket, a test's pipe) in TLS.
//!
//! What it must never do: accept a server whose certificate does not chain to a trusted CA.
//! `insecure` skips the host name check only, as libmosquitto's `tls_insecure` does; the chain,
//! the validity dates and the key usage are still checked.
//!
//! Files are read when the configuration is built, once: a reconnect uses the same
//! configuration. Every configuration is built with the aws-lc-rs provider named explicitly,
//! like the server's, so moving to rustls 0.24 (providers in crates of their own) touches the
//! two `tls.rs` files only.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{
    CertificateError, CipherSuite, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    SupportedCipherSuite,
};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::transport::Connector;

/// The lowest TLS version the client offers (`--tls-version`, which in libmosquitto 2.0 sets
/// the minimum, not the only version). rustls has nothing older than TLS 1.2.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// Where trust and the client's identity come from, and what to negotiate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// A PEM file of CA certificates to trust.
    pub ca_file: Option<PathBuf>,
    /// A directory of PEM files of CA certificates to trust. Every file in it is read,
    /// whatever its name (OpenSSL reads only the `<hash>.0` names `openssl rehash` makes); one
    /// that cannot be read, or holds no certificate, is skipped, and so is a directory that
    /// cannot be read.
    pub ca_path: Option<PathBuf>,
    /// Also trust the operating system's CAs: the bundle `SSL_CERT_FILE` names, or the first of
    /// the usual bundle files that exists, and the directory `SSL_CERT_DIR` names.
    pub os_certificates: bool,
    /// The client certificate chain (PEM), if the server asks for one.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1, not encrypted).
    pub key_file: Option<PathBuf>,
    /// Accept a server certificate issued for another host name (still checked in every
    /// other way). Insecure: anyone with a certificate from the same CA can pose as the server.
    pub insecure: bool,
    /// The lowest TLS version offered.
    pub min_version: TlsVersion,
    /// An OpenSSL cipher list limiting the TLS 1.2 cipher suites (TLS 1.3 suites are not
    /// affected, as with OpenSSL's `SSL_CTX_set_cipher_list`); see [`tls12_cipher_suites`].
    pub ciphers: Option<String>,
    /// ALPN protocols to offer, most preferred first.
    pub alpn: Vec<Vec<u8>>,
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// A file could not be read (missing, no permission).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A certificate file holds no PEM certificate.
    #[error("{}: no PEM certificate in it", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A PEM file is damaged.
    #[error("{}: {source}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: pem::Error,
    },
    /// A CA certificate could not be used as a trust anchor.
    #[error("{}: not a usable CA certificate: {source}", path.display())]
    BadCaCertificate {
        /// The file.
        path: PathBuf,
        /// Why.
        source: rustls::Error,
    },
    /// No CA certificate was found anywhere, so no server could be trusted.
    #[error("no CA certificate to check the server's certificate against")]
    NoTrustAnchors,
    /// The key file holds no usable private key.
    #[error("{}: no usable private key (PEM PKCS#8, PKCS#1 or SEC1, not encrypted): {source}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        source: pem::Error,
    },
    /// A certificate file without a key file, or the other way round.
    #[error("a client certificate needs both a certificate file and a key file")]
    CertificateWithoutKey,
    /// The client certificate and key do not fit together (or rustls cannot use the key).
    #[error("the client certificate and key cannot be used: {0}")]
    ClientCertificate(rustls::Error),
    /// The cipher list leaves no TLS 1.2 suite rustls offers.
    #[error("cipher list {0:?} leaves no TLS 1.2 cipher suite that rustls offers")]
    Ciphers(String),
    /// The versions and suites chosen cannot make a configuration.
    #[error("the TLS versions and cipher suites chosen do not fit together: {0}")]
    Versions(rustls::Error),
    /// The server certificate verifier could not be built.
    #[error("cannot check server certificates: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
    /// The host cannot be used as a TLS server name.
    #[error("{0:?} is not a host name or address TLS can check a certificate against")]
    ServerName(String),
}

impl TlsOptions {
    /// Options trusting the CAs in `ca_file`, with every other setting at its default.
    pub fn with_ca_file(ca_file: impl Into<PathBuf>) -> Self {
        Self {
            ca_file: Some(ca_file.into()),
            ..Self::default()
        }
    }

    /// Reads the files and builds the rustls configuration.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsSetupError> {
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        if let Some(list) = &self.ciphers {
            let tls12 = tls12_cipher_suites(list, &provider.cipher_suites);
            if tls12.is_empty() {
                return Err(TlsSetupError::Ciphers(list.clone()));
            }
            provider.cipher_suites.retain(|s| s.tls13().is_some());
            provider.cipher_suites.extend(tls12);
        }
        let provider: Arc<CryptoProvider> = Arc::new(provider);
        let roots = self.roots()?;
        if roots.is_empty() {
            return Err(TlsSetupError::NoTrustAnchors);
        }
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
        let versions: &[&'static rustls::SupportedProtocolVersion] = match self.min_version {
            TlsVersion::Tls13 => &[&rustls::version::TLS13],
            TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(TlsSetupError::Versions)?;
        let builder = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyHostName(webpki)))
        } else {
            builder.with_webpki_verifier(webpki)
        };
        let mut config = match (&self.cert_file, &self.key_file) {
            (Some(cert_file), Some(key_file)) => {
                let chain = read_certificates(cert_file)?;
                let key = read_key(key_file)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(TlsSetupError::ClientCertificate)?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(TlsSetupError::CertificateWithoutKey),
        };
        config.alpn_protocols = self.alpn.clone();
        Ok(Arc::new(config))
    }

    /// The trust anchors from `ca_file`, `ca_path` and the operating system.
    fn roots(&self) -> Result<RootCertStore, TlsSetupError> {
        let mut roots = RootCertStore::empty();
        if let Some(ca_file) = &self.ca_file {
            for cert in read_certificates(ca_file)? {
                roots
                    .add(cert)
                    .map_err(|source| TlsSetupError::BadCaCertificate {
                        path: ca_file.clone(),
                        source,
                    })?;
            }
        }
        if let Some(ca_path) = &self.ca_path {
            add_directory(&mut roots, ca_path);
        }
        if self.os_certificates {
            add_os_certificates(&mut roots);
        }
        Ok(roots)
    }
}

/// Bundle files of the common Linux and BSD distributions, where OpenSSL's default paths
/// usually lead.
const OS_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/usr/local/share/certs/ca-root-nss.crt",
];

fn add_os_certificates(roots: &mut RootCertStore) {
    let bundle = std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .or_else(|| OS_BUNDLES.iter().map(PathBuf::from).find(|p| p.is_file()));
    if let Some(bundle) = bundle {
        add_file_leniently(roots, &bundle);
    }
    if let Some(dir) = std::env::var_os("SSL_CERT_DIR") {
        add_directory(roots, Path::new(&dir));
    }
}

/// Every certificate in every file of `dir`; what cannot be read or used is skipped.
fn add_directory(roots: &mut RootCertStore, dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths.iter().filter(|p| p.is_file()) {
        add_file_leniently(roots, path);
    }
}

fn add_file_leniently(roots: &mut RootCertStore, path: &Path) {
    if let Ok(bytes) = std::fs::read(path) {
        for cert in CertificateDer::pem_slice_iter(&bytes).flatten() {
            let _ = roots.add(cert);
        }
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsSetupError> {
    std::fs::read(path).map_err(|source| TlsSetupError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let bytes = read_file(path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|source| TlsSetupError::Pem {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    let bytes = read_file(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|source| TlsSetupError::Key {
        path: path.to_owned(),
        source,
    })
}

/// The server certificate verifier of `insecure`: webpki's, with a certificate for another
/// name accepted. webpki checks the name last, after the chain to a trusted CA, the dates and
/// the key usage, so "not valid for this name" comes only from a certificate that passed the
/// rest (the tests hold it to that).
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// What a TLS 1.2 suite is made of, for OpenSSL's cipher-list keywords.
#[derive(Debug, Clone, Copy)]
struct SuiteTraits {
    suite: CipherSuite,
    openssl: &'static str,
    ecdsa: bool,
    cipher: Cipher,
    sha384: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cipher {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20,
}

/// The TLS 1.2 suites rustls offers, by their OpenSSL names.
const TLS12_SUITES: &[SuiteTraits] = &[
    SuiteTraits {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        openssl: "ECDHE-ECDSA-AES256-GCM-SHA384",
        ecdsa: true,
        cipher: Cipher::Aes256Gcm,
        sha384: true,
    },
    SuiteTraits {
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        openssl: "ECDHE-RSA-AES256-GCM-SHA384",
        ecdsa: false,
        cipher: Cipher::Aes256Gcm,
        sha384: true,
    },
    SuiteTraits {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        openssl: "ECDHE-ECDSA-CHACHA20-POLY1305",
        ecdsa: true,
        cipher: Cipher::ChaCha20,
        sha384: false,
    },
    SuiteTraits {
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        openssl: "ECDHE-RSA-CHACHA20-POLY1305",
        ecdsa: false,
        cipher: Cipher::ChaCha20,
        sha384: false,
    },
    SuiteTraits {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        openssl: "ECDHE-ECDSA-AES128-GCM-SHA256",
        ecdsa: true,
        cipher: Cipher::Aes128Gcm,
        sha384: false,
    },
    SuiteTraits {
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        openssl: "ECDHE-RSA-AES128-GCM-SHA256",
        ecdsa: false,
        cipher: Cipher::Aes128Gcm,
        sha384: false,
    },
];

/// Whether one word of an OpenSSL cipher list (`ECDHE-RSA-AES128-GCM-SHA256`, `HIGH`,
/// `aECDSA`, `AES256`, ...) selects a suite. Words for suites rustls lacks (`AES128-SHA`,
/// `3DES`, `PSK`, `kRSA`) and typos select none.
fn word_matches(word: &str, traits: &SuiteTraits) -> bool {
    let iana = format!("{:?}", traits.suite);
    if word.eq_ignore_ascii_case(traits.openssl) || word.eq_ignore_ascii_case(&iana) {
        return true;
    }
    match word.to_ascii_uppercase().as_str() {
        "ALL" | "DEFAULT" | "HIGH" | "ECDHE" | "EECDH" | "KECDHE" | "KEECDH" | "AEAD" | "TLSV1.2" => true,
        "AECDSA" | "ECDSA" => traits.ecdsa,
        "ARSA" => !traits.ecdsa,
        "AESGCM" | "AES" => traits.cipher != Cipher::ChaCha20,
        "AES128" => traits.cipher == Cipher::Aes128Gcm,
        "AES256" => traits.cipher == Cipher::Aes256Gcm,
        "CHACHA20" => traits.cipher == Cipher::ChaCha20,
        "SHA256" => !traits.sha384,
        "SHA384" => traits.sha384,
        _ => false,
    }
}

/// The TLS 1.2 suites of `offered` an OpenSSL cipher list selects, in the list's order.
///
/// Words are separated by `:`, `,` or spaces; `A+B` selects what both select; `!A` and `-A`
/// remove what `A` selects (`!` for good, `-` until selected again); a leading `+` and the
/// `@STRENGTH` and `@SECLEVEL=n` directives change nothing here. Suites rustls lacks (CBC,
/// static RSA, DSS, PSK, ...) cannot be selected, so a list naming only those selects nothing.
pub fn tls12_cipher_suites(list: &str, offered: &[SupportedCipherSuite]) -> Vec<SupportedCipherSuite> {
    let mut picked: Vec<CipherSuite> = Vec::new();
    let mut banned: Vec<CipherSuite> = Vec::new();
    for item in list.split([':', ',', ' ']).filter(|s| !s.is_empty()) {
        if item.starts_with('@') {
            continue;
        }
        let (remove, ban, expression) = match item.as_bytes()[0] {
            b'!' => (true, true, &item[1..]),
            b'-' => (true, false, &item[1..]),
            b'+' => (false, false, &item[1..]),
            _ => (false, false, item),
        };
        let selected: Vec<CipherSuite> = TLS12_SUITES
            .iter()
            .filter(|traits| {
                expression
                    .split('+')
                    .filter(|w| !w.is_empty())
                    .all(|w| word_matches(w, traits))
            })
            .map(|traits| traits.suite)
            .collect();
        for suite in selected {
            if remove {
                picked.retain(|s| *s != suite);
                if ban {
                    banned.push(suite);
                }
            } else if !picked.contains(&suite) && !banned.contains(&suite) {
                picked.push(suite);
            }
        }
    }
    picked
        .iter()
        .filter_map(|suite| offered.iter().find(|s| s.suite() == *suite).copied())
        .collect()
}

/// TLS over the streams another connector opens: the handshake is part of connecting, so a
/// certificate the client does not accept fails [`Connector::connect`], before any MQTT.
pub struct TlsConnector<C> {
    inner: C,
    tls: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
}

impl<C> fmt::Debug for TlsConnector<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl<C: Connector> TlsConnector<C> {
    /// TLS with `config` over `inner`'s streams, checking the server's certificate against
    /// `host` (a DNS name or an IP address).
    pub fn new(inner: C, config: Arc<ClientConfig>, host: &str) -> Result<Self, TlsSetupError> {
        let server_name =
            ServerName::try_from(host.to_owned()).map_err(|_| TlsSetupError::ServerName(host.to_owned()))?;
        Ok(Self {
            inner,
            tls: tokio_rustls::TlsConnector::from(config),
            server_name,
        })
    }
}

impl<C: Connector> Connector for TlsConnector<C> {
    type Stream = tokio_rustls::client::TlsStream<C::Stream>;

    async fn connect(&self) -> io::Result<Self::Stream> {
        let stream = self.inner.connect().await?;
        self.tls.connect(self.server_name.clone(), stream).await
    }
}

/// The rustls error inside an I/O error from a TLS stream, if that is what it is.
pub(crate) fn rustls_error(error: &io::Error) -> Option<&rustls::Error> {
    error.get_ref()?.downcast_ref::<rustls::Error>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &str) -> Vec<String> {
        let offered = rustls::crypto::aws_lc_rs::default_provider().cipher_suites;
        tls12_cipher_suites(list, &offered)
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect()
    }

    #[test]
    fn cipher_lists_select_like_openssl() {
        assert_eq!(
            names("ECDHE-RSA-AES128-GCM-SHA256"),
            ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]
        );
        assert_eq!(
            names("ECDHE-RSA-AES256-GCM-SHA384:TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
            [
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
            ]
        );
        assert_eq!(names("HIGH:!aNULL:!MD5").len(), 6);
        assert_eq!(names("ECDHE+aRSA+AESGCM").len(), 2);
        assert_eq!(names("HIGH:!CHACHA20:!aECDSA").len(), 2);
        assert_eq!(names("ALL:-AES128:AES128+aRSA").len(), 5);
        assert!(names("bogus").is_empty());
        assert!(names("AES128-SHA:DES-CBC3-SHA").is_empty());
        assert!(
            names("TLS_AES_128_GCM_SHA256").is_empty(),
            "a TLS 1.3 name is no TLS 1.2 suite"
        );
    }

    #[test]
    fn a_cipher_list_selecting_nothing_is_refused() {
        let mut options = TlsOptions::with_ca_file("/nonexistent");
        options.ciphers = Some("bogus".into());
        assert!(matches!(options.client_config(), Err(TlsSetupError::Ciphers(_))));
    }

    #[test]
    fn missing_files_and_half_a_client_certificate_are_refused() {
        let missing = TlsOptions::with_ca_file("/nonexistent/ca.crt");
        assert!(matches!(missing.client_config(), Err(TlsSetupError::Read { .. })));
        let nothing = TlsOptions {
            ca_path: Some("/nonexistent".into()),
            ..TlsOptions::default()
        };
        assert!(matches!(
            nothing.client_config(),
            Err(TlsSetupError::NoTrustAnchors)
        ));
    }
}
