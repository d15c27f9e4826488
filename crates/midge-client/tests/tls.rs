//! midge-client over TLS against Debian's Mosquitto 2.0.11: a trusted server, a server from
//! another CA, a certificate for another host name with and without `insecure`, a listener
//! that requires a client certificate, ALPN; and TLS 1.3 as a minimum and cipher lists
//! against a bare rustls server offering TLS 1.2 only. Certificates are
//! made fresh for each test with rcgen.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use midge_client::{
    Client, ClientError, ClientOptions, Connector, TcpConnector, TlsConnector, TlsOptions, TlsVersion,
};
use midge_codec::properties::PublishProperties;
use midge_codec::{Disconnect, ProtocolVersion, QoS, ReasonCode};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::{AlertDescription, CertificateError};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use support::{Mosquitto, connect, next_publish};
use tokio::io::AsyncReadExt;

/// A CA and the certificates signed by it, as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

fn authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

impl Pki {
    /// `ca.pem`; `server.*` for 127.0.0.1 and localhost; `elsewhere.*` for another host name;
    /// `client.*` for client authentication; `other-ca.pem` and `rogue.*`, a server
    /// certificate for 127.0.0.1 from that other CA.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = authority("Client Test CA");
        let other = authority("Other CA");
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.pem", &ca.pem());
        write("other-ca.pem", &other.pem());
        let leaf = |issuer: &CertifiedIssuer<'static, KeyPair>,
                    name: &str,
                    sans: &[&str],
                    usage: ExtendedKeyUsagePurpose| {
            let mut params =
                CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, issuer).unwrap();
            write(&format!("{name}.pem"), &cert.pem());
            write(&format!("{name}.key"), &key.serialize_pem());
        };
        let server = ExtendedKeyUsagePurpose::ServerAuth;
        leaf(&ca, "server", &["127.0.0.1", "localhost"], server.clone());
        leaf(&ca, "elsewhere", &["elsewhere.example"], server.clone());
        leaf(&other, "rogue", &["127.0.0.1"], server);
        leaf(&ca, "client", &[], ExtendedKeyUsagePurpose::ClientAuth);
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A Mosquitto TLS listener serving `cert` (`server`, `elsewhere`, `rogue`), plus `extra`.
    fn broker(&self, cert: &str, extra: &str) -> Mosquitto {
        Mosquitto::start_with(
            &format!(
                "allow_anonymous true\ncafile {}\ncertfile {}\nkeyfile {}\n{extra}",
                self.path("ca.pem").display(),
                self.path(&format!("{cert}.pem")).display(),
                self.path(&format!("{cert}.key")).display(),
            ),
            |_| {},
        )
    }

    fn options(&self) -> TlsOptions {
        TlsOptions::with_ca_file(self.path("ca.pem"))
    }
}

fn client_options(broker: &Mosquitto, host: &str, tls: &TlsOptions) -> ClientOptions {
    let mut options = ClientOptions::new(host, broker.port).protocol(ProtocolVersion::V5);
    options.tls = Some(tls.client_config().unwrap());
    options
}

/// The connection attempt's error, which must be a TLS one.
async fn tls_failure(options: ClientOptions) -> (rustls::Error, bool) {
    match Client::connect(options).await {
        Err(ClientError::Tls { error, handshake }) => (error, handshake),
        Err(other) => panic!("expected a TLS error, got {other:?}"),
        Ok(_) => panic!("expected a TLS error, got a connection"),
    }
}

#[tokio::test]
async fn messages_go_both_ways_over_tls_to_an_address_and_a_host_name() {
    let pki = Pki::new();
    let broker = pki.broker("server", "");
    for host in ["127.0.0.1", "localhost"] {
        let (client, mut events) = connect(client_options(&broker, host, &pki.options())).await;
        client.subscribe_one("tls/#", QoS::ExactlyOnce).await.unwrap();
        let outcome = client
            .publish(
                "tls/a",
                "secret",
                QoS::ExactlyOnce,
                false,
                PublishProperties::default(),
            )
            .await
            .unwrap();
        assert_eq!(outcome.reason_code, ReasonCode::Success);
        assert_eq!(&next_publish(&mut events).await.payload[..], b"secret");
        client
            .disconnect(Disconnect::new(ReasonCode::Success))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_server_from_another_ca_fails_the_handshake() {
    let pki = Pki::new();
    let broker = pki.broker("rogue", "");
    let (error, handshake) = tls_failure(client_options(&broker, "127.0.0.1", &pki.options())).await;
    assert!(handshake);
    assert_eq!(
        error,
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
    // `insecure` forgives the name only, never the chain.
    let mut insecure = pki.options();
    insecure.insecure = true;
    let (error, _) = tls_failure(client_options(&broker, "127.0.0.1", &insecure)).await;
    assert_eq!(
        error,
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
    // Trusting the other CA (from a directory of CA files) lets it in.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(pki.path("other-ca.pem"), dir.path().join("anything.crt")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a certificate").unwrap();
    let by_dir = TlsOptions {
        ca_path: Some(dir.path().to_owned()),
        ..TlsOptions::default()
    };
    let (client, _) = connect(client_options(&broker, "127.0.0.1", &by_dir)).await;
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_certificate_for_another_host_is_refused_unless_insecure() {
    let pki = Pki::new();
    let broker = pki.broker("elsewhere", "");
    let (error, handshake) = tls_failure(client_options(&broker, "127.0.0.1", &pki.options())).await;
    assert!(handshake);
    assert!(
        matches!(
            error,
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            )
        ),
        "{error:?}"
    );
    let mut insecure = pki.options();
    insecure.insecure = true;
    let (client, _) = connect(client_options(&broker, "127.0.0.1", &insecure)).await;
    client
        .disconnect(Disconnect::new(ReasonCode::Success))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_listener_requiring_a_client_certificate_takes_ours() {
    let pki = Pki::new();
    let broker = pki.broker("server", "require_certificate true\n");
    // In TLS 1.3 the client's handshake is over before the server says what it misses.
    let (error, handshake) = tls_failure(client_options(&broker, "127.0.0.1", &pki.options())).await;
    assert!(!handshake);
    assert_eq!(
        error,
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired)
    );
    let mut with_cert = pki.options();
    with_cert.cert_file = Some(pki.path("client.pem"));
    with_cert.key_file = Some(pki.path("client.key"));
    let (client, _) = connect(client_options(&broker, "127.0.0.1", &with_cert)).await;
    client
        .publish(
            "mtls",
            "ok",
            QoS::AtLeastOnce,
            false,
            PublishProperties::default(),
        )
        .await
        .unwrap();
}

/// A bare rustls server offering TLS 1.2 only (no MQTT behind it): accepts connections and
/// completes handshakes until the test ends.
async fn tls12_only_server(pki: &Pki) -> u16 {
    let chain = CertificateDer::pem_file_iter(pki.path("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(pki.path("server.key")).unwrap();
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(stream).await {
                    let _ = tls.read_u8().await;
                }
            });
        }
    });
    port
}

fn tls_to(port: u16, tls: &TlsOptions) -> TlsConnector<TcpConnector> {
    let tcp = TcpConnector {
        host: "127.0.0.1".into(),
        port,
        nodelay: true,
    };
    TlsConnector::new(tcp, tls.client_config().unwrap(), "127.0.0.1").unwrap()
}

#[tokio::test]
async fn tls_version_is_a_minimum_and_ciphers_limit_tls12_suites() {
    let pki = Pki::new();
    let port = tls12_only_server(&pki).await;
    let stream = tls_to(port, &pki.options()).connect().await.unwrap();
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );

    let mut tls13 = pki.options();
    tls13.min_version = TlsVersion::Tls13;
    let error = tls_to(port, &tls13).connect().await.unwrap_err();
    assert!(
        matches!(
            ClientError::from(error),
            ClientError::Tls {
                error: rustls::Error::AlertReceived(AlertDescription::ProtocolVersion),
                ..
            }
        ),
        "a TLS 1.2 server and a TLS 1.3 minimum have nothing in common"
    );

    let mut one_suite = pki.options();
    one_suite.ciphers = Some("ECDHE-ECDSA-AES256-GCM-SHA384".into());
    let stream = tls_to(port, &one_suite).connect().await.unwrap();
    assert_eq!(
        stream.get_ref().1.negotiated_cipher_suite().map(|s| s.suite()),
        Some(rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)
    );
}

#[tokio::test]
async fn alpn_is_offered() {
    let pki = Pki::new();
    let broker = pki.broker("server", "");
    let mut alpn = pki.options();
    alpn.alpn = vec![b"mqtt".to_vec()];
    let (client, _) = connect(client_options(&broker, "localhost", &alpn)).await;
    client.close().await.unwrap();
}
