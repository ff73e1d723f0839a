//! HTTPS targets with certificates made in the test: custom CA, unknown
//! issuer, skip-verify, expiry, and the TLS phase.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use lookout::outcome::{FailureKind, Outcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{config, probe};

struct TlsTarget {
    port: u16,
    cert_pem: String,
}

/// A minimal HTTPS server for `localhost` whose certificate expires at
/// `not_after` (year, month, day); it answers every request with 200.
async fn start_tls_target(not_after: (i32, u8, u8)) -> TlsTarget {
    let (server_config, cert_pem) =
        crate::support::self_signed_server(&["localhost"], (2020, 1, 1), not_after);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        // Bounded: no test makes more than a handful of connections.
        for _ in 0..32 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\ntls ok\n")
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    TlsTarget { port, cert_pem }
}

fn https_check(port: u16, tls: &str) -> String {
    format!(
        "[[checks]]\nname = \"c\"\nurl = \"https://localhost:{port}/\"\ntimeout = \"5s\"\n{tls}\n"
    )
}

#[tokio::test]
async fn custom_ca_verifies_and_records_tls_phase_and_expiry() {
    let target = start_tls_target((2031, 6, 30)).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &target.cert_pem).unwrap();
    let cfg = config(&https_check(
        target.port,
        &format!("tls = {{ ca_file = \"{}\" }}", ca.display()),
    ));
    let (obs, outcome) = probe(&cfg, "c").await;
    assert_eq!(outcome, Outcome::Success, "{obs:?}");
    assert!(obs.phases.tls > Duration::ZERO, "{:?}", obs.phases);
    assert!(obs.phases.connect > Duration::ZERO, "{:?}", obs.phases);
    assert_eq!(
        obs.tls_not_after,
        Some(Utc.with_ymd_and_hms(2031, 6, 30, 0, 0, 0).unwrap())
    );
}

#[tokio::test]
async fn certificate_problems_are_tls_failures_with_the_reason() {
    let valid = start_tls_target((2031, 6, 30)).await;
    let expired = start_tls_target((2021, 1, 1)).await;
    let dir = tempfile::tempdir().unwrap();
    let expired_ca = dir.path().join("expired.pem");
    std::fs::write(&expired_ca, &expired.cert_pem).unwrap();
    let cases = [
        ("unknown issuer", valid.port, String::new(), "UnknownIssuer"),
        (
            "expired",
            expired.port,
            format!("tls = {{ ca_file = \"{}\" }}", expired_ca.display()),
            "certificate expired",
        ),
    ];
    for (name, port, tls, needle) in cases {
        let cfg = config(&https_check(port, &tls));
        let (obs, outcome) = probe(&cfg, "c").await;
        match outcome {
            Outcome::Failure { kind, reason } => {
                assert_eq!(kind, FailureKind::Tls, "{name}: {reason}");
                assert!(
                    reason.contains("TLS handshake with localhost"),
                    "{name}: {reason}"
                );
                assert!(reason.contains(needle), "{name}: {reason}");
            }
            Outcome::Success => panic!("{name}: must fail"),
        }
        // The expiry is known even when verification fails: that is when it matters.
        assert!(obs.tls_not_after.is_some(), "{name}");
    }
}

#[tokio::test]
async fn insecure_skip_verify_accepts_a_self_signed_certificate() {
    let target = start_tls_target((2031, 6, 30)).await;
    let cfg = config(&https_check(
        target.port,
        "tls = { insecure_skip_verify = true }",
    ));
    let (obs, outcome) = probe(&cfg, "c").await;
    assert_eq!(outcome, Outcome::Success, "{obs:?}");
    assert!(obs.tls_not_after.is_some());
}
