//! The gRPC health-check probe against servers started here: tonic-health
//! in plaintext and in TLS (certificates made in the test), and hostile
//! peers that never answer, close, send garbage or speak HTTP/1.1.

use std::sync::Arc;
use std::time::Duration;

use lookout::model::{
    CaFile, CertExpect, Endpoint, Expectations, GrpcTarget, Observation, Seen, ServingStatus,
    Target, TlsOn, TlsSettings, TlsVersion,
};
use lookout::outcome::Outcome;
use lookout::probe::Prober;
use lookout::secret::Redactor;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tonic_health::ServingStatus as Status;
use tonic_health::server::HealthReporter;

/// The most connections any hostile server here accepts.
const ACCEPTS: usize = 8;

/// The indexes of `profiles()`.
const TRUSTED: usize = 0;
const UNTRUSTED: usize = 1;

fn target(port: u16, service: &str, tls: Option<usize>, timeout: Duration) -> Target {
    Target::Grpc(GrpcTarget {
        endpoint: Endpoint {
            host: "127.0.0.1".into(),
            port,
        },
        tls: tls.map(|tls_profile| TlsOn {
            server_name: "localhost".into(),
            tls_profile,
        }),
        service: service.into(),
        timeout,
        expect_cert: CertExpect::default(),
    })
}

async fn run(prober: &Prober, target: &Target) -> (Observation, Outcome) {
    let redactor = Redactor::default();
    let obs = prober.probe(target, &redactor).await;
    let outcome = lookout::judge::judge_target(target, &Expectations::default(), &obs, &redactor);
    (obs, outcome)
}

fn label_and_reason(outcome: &Outcome) -> (&'static str, String) {
    (
        outcome.label(),
        outcome.reason().unwrap_or_default().to_owned(),
    )
}

/// Plain connections from a listener, one at a time.
fn plain(listener: TcpListener) -> impl futures_util::Stream<Item = std::io::Result<TcpStream>> {
    futures_util::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(tcp, _)| tcp);
        Some((accepted, listener))
    })
}

/// A tonic-health server on 127.0.0.1 (TLS with `tls`), and its reporter.
pub async fn health_server(tls: Option<rustls::ServerConfig>) -> (u16, HealthReporter) {
    let (reporter, service) = tonic_health::server::health_reporter();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = tonic::transport::Server::builder().add_service(service);
    match tls {
        None => {
            tokio::spawn(router.serve_with_incoming(plain(listener)));
        }
        Some(mut config) => {
            config.alpn_protocols = vec![b"h2".to_vec()];
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
            // Handshakes that fail (the untrusted case) are skipped.
            let incoming = futures_util::stream::unfold(listener, move |listener| {
                let acceptor = acceptor.clone();
                async move {
                    loop {
                        let Ok((tcp, _)) = listener.accept().await else {
                            return None;
                        };
                        if let Ok(tls) = acceptor.accept(tcp).await {
                            return Some((Ok::<_, std::io::Error>(tls), listener));
                        }
                    }
                }
            });
            tokio::spawn(router.serve_with_incoming(incoming));
        }
    }
    (port, reporter)
}

/// A certificate authority and a `localhost` leaf it signed: the CA's
/// PEM and the server's config.
pub fn ca_and_server(ca_name: &str) -> (String, rustls::ServerConfig) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    ca_params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let mut leaf_params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf_params.distinguished_name = rcgen::DistinguishedName::new();
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "grpc test server");
    leaf_params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    leaf_params.not_after = rcgen::date_time_ymd(2031, 6, 30);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)
    .unwrap();
    (ca_pem, config)
}

/// A `TlsSettings` trusting the CA in `pem`, read back from a file in `dir`.
fn trusting(dir: &std::path::Path, name: &str, pem: &str) -> TlsSettings {
    use rustls::pki_types::pem::PemObject as _;
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .unwrap();
    TlsSettings {
        ca_file: Some(CaFile {
            path,
            certs: certs.into(),
        }),
        insecure_skip_verify: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_are_judged_by_serving_status() {
    let (port, reporter) = health_server(None).await;
    reporter
        .set_service_status("shop.Cart", Status::Serving)
        .await;
    reporter
        .set_service_status("shop.Billing", Status::NotServing)
        .await;
    let prober = Prober::new(&[]).unwrap();
    let timeout = Duration::from_secs(5);
    // (case, service, label, reason contains)
    let cases = [
        ("serving", "shop.Cart", "success", ""),
        (
            "not serving",
            "shop.Billing",
            "not_serving",
            "service \"shop.Billing\" is NOT_SERVING, expected SERVING",
        ),
        (
            "unknown service",
            "shop.Nothing",
            "not_serving",
            "failed with gRPC status 5 (NOT_FOUND)",
        ),
        ("whole server", "", "success", ""),
    ];
    for (case, service, label, needle) in cases {
        let (obs, outcome) = run(&prober, &target(port, service, None, timeout)).await;
        let (got, reason) = label_and_reason(&outcome);
        assert_eq!(got, label, "{case}: {reason} {obs:?}");
        assert!(reason.contains(needle), "{case}: {reason}");
        assert!(obs.tls.is_none(), "{case}");
        assert!(obs.duration > Duration::ZERO, "{case}");
    }

    // The same service, switched between probes.
    let cart = target(port, "shop.Cart", None, timeout);
    for (status, label) in [
        (Status::NotServing, "not_serving"),
        (Status::Serving, "success"),
        (Status::NotServing, "not_serving"),
    ] {
        reporter.set_service_status("shop.Cart", status).await;
        let (obs, outcome) = run(&prober, &cart).await;
        assert_eq!(outcome.label(), label, "{status:?}: {outcome:?}");
        let Seen::Grpc(seen) = &obs.seen else {
            panic!("{status:?}: no GrpcSeen: {obs:?}");
        };
        assert_eq!(seen.status_code, 0);
        let want = if label == "success" {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        assert_eq!(seen.serving, Some(want));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verifies_with_the_configured_ca_and_fills_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, server) = ca_and_server("grpc test CA");
    let (other_pem, _) = ca_and_server("some other CA");
    let (port, reporter) = health_server(Some(server)).await;
    reporter
        .set_service_status("shop.Cart", Status::Serving)
        .await;
    let prober = Prober::new(&[
        trusting(dir.path(), "ca.pem", &ca_pem),
        trusting(dir.path(), "other.pem", &other_pem),
    ])
    .unwrap();
    let timeout = Duration::from_secs(5);
    let cases = [
        ("trusted CA", TRUSTED, "success", ""),
        (
            "untrusted CA",
            UNTRUSTED,
            "tls",
            "TLS handshake with 127.0.0.1:",
        ),
    ];
    for (case, profile, label, needle) in cases {
        let (obs, outcome) = run(&prober, &target(port, "shop.Cart", Some(profile), timeout)).await;
        let (got, reason) = label_and_reason(&outcome);
        assert_eq!(got, label, "{case}: {reason} {obs:?}");
        assert!(reason.contains(needle), "{case}: {reason}");
        // The certificate's expiry is known either way.
        assert_eq!(
            obs.tls_not_after.map(|t| t.to_rfc3339()).as_deref(),
            Some("2031-06-30T00:00:00+00:00"),
            "{case}"
        );
        if profile == UNTRUSTED {
            assert!(
                reason.contains(
                    "certificate issued by \"CN=grpc test CA\", which is not a trusted CA"
                ),
                "{case}: {reason}"
            );
            assert!(obs.tls.is_none(), "{case}");
            continue;
        }
        let tls = obs.tls.as_ref().expect("a handshake");
        assert_eq!(tls.version, Some(TlsVersion::Tls13));
        assert_eq!(tls.subject, "CN=grpc test server");
        assert_eq!(tls.issuer, "CN=grpc test CA");
        assert_eq!(tls.san, ["localhost"]);
        assert_eq!(tls.fingerprint_sha256.len(), 64);
        assert!(tls.leaf_not_after.is_some());
        assert_eq!(tls.chain_not_after, tls.leaf_not_after);
        assert!(obs.phases.connect > Duration::ZERO, "{:?}", obs.phases);
        assert!(obs.phases.tls > Duration::ZERO, "{:?}", obs.phases);
    }
}

/// A TCP server on 127.0.0.1 that treats each of at most `ACCEPTS`
/// connections with `serve`.
async fn hostile<F, Fut>(serve: F) -> u16
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        for _ in 0..ACCEPTS {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(serve(tcp));
        }
    });
    port
}

/// Reads what the client sends, at most a few KiB, until it stops.
async fn drain(tcp: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    for _ in 0..8 {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_that_are_not_grpc_health_servers_fail_by_kind() {
    let silent = hostile(|mut tcp| async move {
        // Holds the connection open, reading, never answering.
        let mut buf = [0u8; 1024];
        for _ in 0..64 {
            if matches!(tcp.read(&mut buf).await, Ok(0) | Err(_)) {
                return;
            }
        }
    })
    .await;
    let closes = hostile(|tcp| async move { drop(tcp) }).await;
    let garbage = hostile(|mut tcp| async move {
        let _ = tcp
            .write_all(b"\x00\x00garbage\xff\xfe not http/2\r\n")
            .await;
        drain(&mut tcp).await;
    })
    .await;
    let http1 = hostile(|mut tcp| async move {
        let mut buf = [0u8; 1024];
        let _ = tcp.read(&mut buf).await;
        let _ = tcp
            .write_all(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            )
            .await;
        // Read on until the client gives up: closing with its request
        // unread would reset the connection, and a reset may discard the
        // answer before the client reads it.
        drain(&mut tcp).await;
        let _ = tcp.shutdown().await;
    })
    .await;
    // A gRPC server without the health service: every method UNIMPLEMENTED.
    let no_health = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tonic::transport::Server::builder()
            .add_routes(tonic::service::Routes::default())
            .serve_with_incoming(plain(listener));
        tokio::spawn(server);
        port
    };
    // A port nothing listens on: bound, then closed.
    let refused = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };

    let prober = Prober::new(&[]).unwrap();
    // (case, port, timeout, label, reason contains)
    let cases = [
        (
            "never answers",
            silent,
            Duration::from_secs(1),
            "timeout",
            "timed out after 1s waiting for the health check's answer",
        ),
        (
            "closes at once",
            closes,
            Duration::from_secs(3),
            "protocol",
            "closed the connection without answering",
        ),
        (
            "garbage",
            garbage,
            Duration::from_secs(3),
            "protocol",
            "does not speak HTTP/2: it sent \"\\x00\\x00garbage",
        ),
        (
            "HTTP/1.1",
            http1,
            Duration::from_secs(3),
            "protocol",
            "answered in HTTP/1, not HTTP/2",
        ),
        (
            "no health service",
            no_health,
            Duration::from_secs(3),
            "not_serving",
            "failed with gRPC status 12 (UNIMPLEMENTED)",
        ),
        (
            "refused",
            refused,
            Duration::from_secs(3),
            "connect",
            "connect to 127.0.0.1:",
        ),
    ];
    for (case, port, timeout, label, needle) in cases {
        let (obs, outcome) = run(&prober, &target(port, "shop.Cart", None, timeout)).await;
        let (got, reason) = label_and_reason(&outcome);
        assert_eq!(got, label, "{case}: {reason} {obs:?}");
        assert!(reason.contains(needle), "{case}: {reason}");
        // A reason is a sentence, not a Debug dump of some crate's type.
        assert!(
            !reason.contains(['{', '}']) && !reason.contains("Kind("),
            "{case}: {reason}"
        );
    }
}
