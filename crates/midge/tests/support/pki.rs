//! Certificates for TLS tests, made fresh for each test run: a CA, a server certificate for
//! 127.0.0.1 and localhost, client certificates (valid, expired, revoked, from another CA) and
//! a CRL, written as PEM files into a temporary directory.
#![allow(dead_code, reason = "each test file uses a part")]

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DnType, IsCa,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber, date_time_ymd,
};

/// A certificate authority that signs the others.
pub struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Authority {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        Self {
            issuer: CertifiedIssuer::self_signed(params, key).expect("self-signed CA"),
        }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf certificate and its key (PEM): for a server when `names` are host names or
    /// addresses, for a client when `common_name` is given.
    pub fn issue(
        &self,
        names: &[&str],
        common_name: Option<&str>,
        serial: u64,
        expired: bool,
    ) -> (String, String) {
        let mut params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .expect("params");
        if let Some(cn) = common_name {
            params
                .distinguished_name
                .push(DnType::OrganizationName, "Midge Tests");
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        params.serial_number = Some(SerialNumber::from(serial));
        if expired {
            params.not_before = date_time_ymd(2019, 1, 1);
            params.not_after = date_time_ymd(2020, 1, 1);
        }
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed leaf");
        (cert.pem(), key.serialize_pem())
    }

    /// A CRL revoking `serials`.
    pub fn crl(&self, serials: &[u64]) -> String {
        let params = CertificateRevocationListParams {
            this_update: date_time_ymd(2024, 1, 1),
            next_update: date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: date_time_ymd(2024, 1, 1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.issuer)
            .expect("signed CRL")
            .pem()
            .expect("CRL PEM")
    }
}

/// Every file a TLS test needs, in a temporary directory.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    /// CA `ca.pem`; server `server.pem`/`server.key`; clients `alice.*` (valid), `old.*`
    /// (expired), `mallory.*` (revoked in `crl.pem`), `rogue-client.*` (signed by `rogue-ca.pem`).
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = Authority::new("Midge Test CA");
        let rogue = Authority::new("Rogue CA");
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write PEM");
        write("ca.pem", &ca.pem());
        write("rogue-ca.pem", &rogue.pem());
        let (cert, key) = ca.issue(&["localhost", "127.0.0.1"], None, 1, false);
        write("server.pem", &cert);
        write("server.key", &key);
        for (name, serial, expired, authority) in [
            ("alice", 10, false, &ca),
            ("old", 11, true, &ca),
            ("mallory", 12, false, &ca),
            ("rogue-client", 13, false, &rogue),
        ] {
            let (cert, key) = authority.issue(&[], Some(name), serial, expired);
            write(&format!("{name}.pem"), &cert);
            write(&format!("{name}.key"), &key);
        }
        write("crl.pem", &ca.crl(&[12]));
        // A second server certificate from the rogue CA, to swap in on reload.
        let (cert, key) = rogue.issue(&["localhost", "127.0.0.1"], None, 2, false);
        write("server-rogue.pem", &cert);
        write("server-rogue.key", &key);
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
