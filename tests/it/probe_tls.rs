//! HTTPS targets with certificates made in the test: custom CA, unknown
//! issuer, skip-verify, expiry, and the TLS phase.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use lookout::outcome::{FailureKind, Outcome};

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
    // Bounded: no test makes more than a handful of connections.
    let port = crate::support::serve_https(server_config, 32).await;
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
    // The handshake, as for the other kinds: version and certificate.
    let tls = obs
        .tls
        .as_ref()
        .expect("an https probe records its handshake");
    assert!(tls.version.is_some(), "{tls:?}");
    assert_eq!(tls.san, ["localhost"]);
    assert_eq!(tls.fingerprint_sha256.len(), 64);
}

#[tokio::test]
async fn certificate_problems_are_tls_failures_with_the_reason() {
    let valid = start_tls_target((2031, 6, 30)).await;
    let expired = start_tls_target((2021, 1, 1)).await;
    let dir = tempfile::tempdir().unwrap();
    let expired_ca = dir.path().join("expired.pem");
    std::fs::write(&expired_ca, &expired.cert_pem).unwrap();
    let cases = [
        (
            "unknown issuer",
            valid.port,
            String::new(),
            "self-signed certificate, not trusted",
        ),
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

/// A key and certificate parameters named `cn`.
fn params(cn: &str, sans: &[&str], ca: bool) -> rcgen::CertificateParams {
    let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
    let mut p = rcgen::CertificateParams::new(sans).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2031, 1, 1);
    if ca {
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    p
}

/// A CA named `cn` with a key of `alg`: its PEM and an issuer to sign with.
fn ca(cn: &str, key: rcgen::KeyPair) -> (String, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let p = params(cn, &[], true);
    let cert = p.self_signed(&key).unwrap();
    (cert.pem(), rcgen::Issuer::new(p, key))
}

/// An HTTPS server on 127.0.0.1 that shows `chain` (DER, leaf first); with
/// `alpn`, it speaks only that protocol.
async fn serve_chain(
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: &rcgen::KeyPair,
    alpn: Option<Vec<u8>>,
) -> u16 {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = alpn.into_iter().collect();
    crate::support::serve_https(config, 16).await
}

/// Every certificate problem a probe meets gets one sentence a person can
/// act on, never rustls' Debug form; certificates made here, per case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_failures_read_as_sentences() {
    let dir = tempfile::tempdir().unwrap();
    let ca_file = |name: &str, pem: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        format!("tls = {{ ca_file = \"{}\" }}", path.display())
    };
    let (trusted_pem, trusted) = ca("lookout test CA", rcgen::KeyPair::generate().unwrap());
    let (_, untrusted) = ca("Untrusted CA", rcgen::KeyPair::generate().unwrap());
    // The same name as the trusted CA, another key of the same type.
    let (_, twin) = ca("lookout test CA", rcgen::KeyPair::generate().unwrap());

    let leaf = |issuer: &rcgen::Issuer<'_, rcgen::KeyPair>| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params("localhost", &["localhost"], false)
            .signed_by(&key, issuer)
            .unwrap();
        (cert.der().clone(), key)
    };
    let self_signed = |cn: &str| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params(cn, &["localhost"], false).self_signed(&key).unwrap();
        (cert.der().clone(), key)
    };

    let (der, key) = leaf(&untrusted);
    let unknown_issuer = serve_chain(vec![der], &key, None).await;
    let (der, key) = self_signed("selfie");
    let self_signed_port = serve_chain(vec![der], &key, None).await;
    let (der, key) = leaf(&twin);
    let bad_signature = serve_chain(vec![der], &key, None).await;
    // Debian's snakeoil trap, made here: an ECDSA self-signed CN=localhost
    // leaf, and a trusted RSA certificate also named CN=localhost.
    let (der, key) = self_signed("localhost");
    let snakeoil_leaf = serve_chain(vec![der], &key, None).await;
    let rsa = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap();
    let snakeoil_pem = params("localhost", &["localhost"], false)
        .self_signed(&rsa)
        .unwrap()
        .pem();
    // A server that speaks only a protocol of its own refuses the
    // handshake with an alert.
    let (der, key) = leaf(&trusted);
    let alert = serve_chain(vec![der], &key, Some(b"x-private".to_vec())).await;

    let trust = ca_file("trusted.pem", &trusted_pem);
    let cases = [
        (
            "issuer not trusted",
            unknown_issuer,
            trust.clone(),
            "certificate issued by \"CN=Untrusted CA\", which is not a trusted CA",
        ),
        (
            "self-signed",
            self_signed_port,
            trust.clone(),
            "self-signed certificate, not trusted (put it in tls.ca_file to trust it)",
        ),
        (
            "self-signed, system roots",
            self_signed_port,
            String::new(),
            "self-signed certificate, not trusted",
        ),
        (
            "bad signature",
            bad_signature,
            trust.clone(),
            "certificate's signature does not verify with the key of \"CN=lookout test CA\"",
        ),
        (
            "a trusted certificate of the same name, another key type",
            snakeoil_leaf,
            ca_file("snakeoil.pem", &snakeoil_pem),
            "a trusted certificate is also named \"CN=localhost\", with another key type",
        ),
        (
            "handshake alert",
            alert,
            trust.clone(),
            "the server refused the handshake (alert \"no application protocol\"): it speaks \
             neither h2 nor http/1.1",
        ),
    ];
    let mut failures = Vec::new();
    let n = cases.len();
    for (name, port, tls, needle) in cases {
        let cfg = config(&https_check(port, &tls));
        let (_, outcome) = probe(&cfg, "c").await;
        match outcome {
            Outcome::Failure {
                kind: FailureKind::Tls,
                reason,
            } if reason.contains(needle)
                && reason.starts_with("TLS")
                && !reason.contains(['{', '['])
                && !reason.contains("_id")
                && !reason.contains("Context") => {}
            other => failures.push(format!("{name}: wanted {needle:?}, got {other:?}")),
        }
    }
    crate::support::assert_table_passed(&failures, n);
}

/// A failing TLS probe is one result: the daemon logs one line when the
/// check's state changes, and nothing from the TLS libraries, however many
/// times the probe fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_tls_probe_logs_nothing_but_the_state_change() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let target = start_tls_target((2031, 6, 30)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lookout.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \":memory:\"\n\
             [[checks]]\nname = \"self-signed\"\nurl = \"https://localhost:{}/\"\ninterval = \"100ms\"\n",
            target.port
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["run", "--config"])
        .arg(&path)
        .env("STATE_DIRECTORY", path.parent().unwrap())
        .env_remove("LOOKOUT_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    // Twenty or so failed probes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let exit =
        crate::support::eventually(Duration::from_secs(20), async || child.try_wait().unwrap())
            .await;
    assert!(exit.success());
    let lines = reader.join().unwrap();
    let about_check: Vec<&String> = lines.iter().filter(|l| l.contains("self-signed")).collect();
    assert_eq!(
        about_check.len(),
        1,
        "one line for the state change:\n{}",
        lines.join("\n")
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("ERROR") || l.contains("rustls") || l.contains("WARN")),
        "no library logs a probe's failure:\n{}",
        lines.join("\n")
    );
}
