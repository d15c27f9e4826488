//! The connection limits count what they refuse: a listener's `max_connections`, the rate of
//! one address, and failed TLS handshakes, read from [`Server::counters`] of a server run in
//! this process.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use midge_core::BrokerConfig;
use midge_server::config::TlsOptions;
use midge_server::limits::ConnectionCounters;
use midge_server::server::Endpoint;
use midge_server::tls::TlsListener;
use midge_server::{ListenerClientOptions, ListenerSpec, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn spec(max_connections: Option<usize>, rate: Option<u32>, tls: Option<Arc<TlsListener>>) -> ListenerSpec {
    ListenerSpec {
        endpoint: Endpoint::Tcp {
            addrs: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            port: 0,
        },
        max_connections,
        max_connection_rate: rate,
        tcp_nodelay: true,
        security: None,
        tls,
        websockets: false,
        bind_interface: None,
        client: ListenerClientOptions::default(),
        mqttsn: None,
    }
}

/// A connection the server closes at once reads end-of-stream without having sent anything.
async fn closed_at_once(port: u16) -> bool {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // CONNECT for client "x", MQTT 3.1.1.
    let _ = socket
        .write_all(&[0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'x'])
        .await;
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

fn tls_listener(dir: &std::path::Path) -> Arc<TlsListener> {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    let options = TlsOptions {
        certfile: Some(dir.join("cert.pem")),
        keyfile: Some(dir.join("key.pem")),
        ..TlsOptions::default()
    };
    Arc::new(TlsListener::load(&options).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_failed_handshakes_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig {
        allow_anonymous: true,
        ..BrokerConfig::default()
    };
    let server = Server::bind(
        config,
        vec![
            spec(Some(0), None, None),
            spec(None, Some(2), None),
            spec(None, None, Some(tls_listener(dir.path()))),
        ],
        1,
    )
    .await
    .unwrap();
    let ports: Vec<u16> = server.local_addrs().iter().map(|a| a.port()).collect();
    let counters = server.counters().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    // max_connections 0: every connection is refused.
    for _ in 0..3 {
        assert!(closed_at_once(ports[0]).await);
    }
    // Two a second from one address: the third and fourth are refused.
    let mut refused = 0;
    for _ in 0..4 {
        refused += usize::from(closed_at_once(ports[1]).await);
    }
    assert_eq!(refused, 2);
    // Plain MQTT on the TLS listener: the handshake fails (an alert, then the close).
    let mut socket = TcpStream::connect(("127.0.0.1", ports[2])).await.unwrap();
    socket
        .write_all(&[0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'x'])
        .await
        .unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the TLS listener closed the connection");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while ConnectionCounters::get(&counters.tls_failures) == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ConnectionCounters::get(&counters.refused_listener_full), 3);
    assert_eq!(ConnectionCounters::get(&counters.refused_rate), 2);
    assert_eq!(ConnectionCounters::get(&counters.tls_failures), 1);
    assert_eq!(ConnectionCounters::get(&counters.refused_broker_full), 0);
    let _ = stop.send(());
    running.await.unwrap();
}
