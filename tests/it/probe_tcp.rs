//! `tcp://` and `tls://` checks from config to verdict, against servers the
//! test starts on 127.0.0.1: a banner, a PING/+PONG dialogue, an echo (for
//! the secret in a send line), TLS on top with certificates made here, and
//! the hostile ones: silent, reset, refused, garbage.

use std::time::Duration;

use lookout::model::Seen;
use lookout::outcome::{FailureKind, Outcome};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use crate::support::{TEST_SECRET, config, probe, try_config};

/// What a test server does with each connection.
#[derive(Clone, Copy)]
pub enum Behaviour {
    /// Sends `220 mail.test ESMTP ready` and closes.
    Banner,
    /// Answers each `PING` line with `+PONG`, anything else with `-ERR`.
    Redis,
    /// Sends each line back.
    Echo,
    /// Accepts and never sends a byte.
    Silent,
    /// Accepts and resets the connection (SO_LINGER 0).
    Reset,
    /// Sends 1 MiB without a line break.
    Garbage,
}

/// A plain TCP server for at most 64 connections, each served for at most 10 s.
pub async fn serve(behaviour: Behaviour) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        for _ in 0..64 {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(tokio::time::timeout(
                Duration::from_secs(10),
                handle(stream, behaviour),
            ));
        }
    });
    port
}

async fn handle<S>(mut stream: S, behaviour: Behaviour)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static + MaybeLinger,
{
    let mut buf = vec![0u8; 4096];
    match behaviour {
        Behaviour::Banner => {
            let _ = stream.write_all(b"220 mail.test ESMTP ready\r\n").await;
            let _ = stream.shutdown().await;
        }
        Behaviour::Redis | Behaviour::Echo => {
            let mut pending = Vec::new();
            loop {
                let Ok(n) = stream.read(&mut buf).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                pending.extend_from_slice(&buf[..n]);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    let reply = match behaviour {
                        Behaviour::Redis if line.starts_with(b"PING") => b"+PONG\r\n".to_vec(),
                        Behaviour::Redis => b"-ERR unknown command\r\n".to_vec(),
                        _ => line,
                    };
                    if stream.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            }
        }
        Behaviour::Silent => tokio::time::sleep(Duration::from_secs(10)).await,
        Behaviour::Reset => stream.reset(),
        Behaviour::Garbage => {
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..16 {
                if stream.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            let _ = stream.read(&mut buf).await;
        }
    }
}

/// Resetting needs the TCP socket itself.
trait MaybeLinger {
    fn reset(self);
}

impl MaybeLinger for tokio::net::TcpStream {
    fn reset(self) {
        let _ = self.set_zero_linger();
        drop(self);
    }
}

impl MaybeLinger for tokio_rustls::server::TlsStream<tokio::net::TcpStream> {
    fn reset(self) {
        let (tcp, _) = self.into_inner();
        tcp.reset();
    }
}

/// A TLS server for `localhost` (certificate valid 2020-01-01 to
/// 2031-06-30) running `behaviour` inside TLS; returns its port and CA file.
pub async fn serve_tls(behaviour: Behaviour, dir: &std::path::Path) -> (u16, std::path::PathBuf) {
    let (server_config, cert_pem) =
        crate::support::self_signed_server(&["localhost"], (2020, 1, 1), (2031, 6, 30));
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, cert_pem).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server_config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        for _ in 0..64 {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(tokio::time::timeout(Duration::from_secs(10), async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    handle(tls, behaviour).await;
                }
            }));
        }
    });
    (port, ca)
}

/// A failure kind and words its reason holds; `None`: the check passes.
type Expected = Option<(FailureKind, Vec<&'static str>)>;

const SECRETS: &str = "[secrets]\nredis = { env = \"PLATFORM_API_KEY\" }\n";

fn check(body: &str) -> String {
    format!("{SECRETS}[[checks]]\nname = \"c\"\ntimeout = \"2s\"\n{body}\n")
}

fn failure(outcome: &Outcome) -> (FailureKind, &str) {
    match outcome {
        Outcome::Failure { kind, reason } => (*kind, reason.as_str()),
        Outcome::Success => panic!("expected a failure"),
    }
}

#[tokio::test]
async fn tcp_dialogues_pass_and_fail_with_the_line_they_read() {
    let banner = serve(Behaviour::Banner).await;
    let redis = serve(Behaviour::Redis).await;
    // (check body, expected failure kind and words in the reason; None: passes)
    let cases: Vec<(String, Expected)> = vec![
        (format!("url = \"tcp://127.0.0.1:{banner}\""), None),
        (
            format!(
                "url = \"tcp://127.0.0.1:{banner}\"\ntcp = {{ query = [{{ expect = \"^220 \" }}] }}"
            ),
            None,
        ),
        (
            format!(
                "url = \"tcp://127.0.0.1:{banner}\"\ntcp = {{ query = [{{ expect = \"^554\" }}] }}"
            ),
            Some((
                FailureKind::Query,
                vec![
                    "query step 1",
                    "/^554/",
                    "the connection closed",
                    "220 mail.test ESMTP ready",
                ],
            )),
        ),
        (
            format!(
                "url = \"tcp://localhost:{redis}\"\ntcp = {{ query = [{{ send = \"PING\\r\\n\" }}, {{ expect = \"^\\\\+PONG$\" }}] }}"
            ),
            None,
        ),
        (
            format!(
                "url = \"tcp://127.0.0.1:{redis}\"\ntcp = {{ query = [{{ send = \"PING\\r\\n\" }}, {{ expect = \"^\\\\+PONG\" }}, {{ send = \"FLUSHALL\\r\\n\" }}, {{ expect = \"^\\\\+OK\" }}] }}"
            ),
            // The server keeps the connection open: the step waits out the
            // timeout, and the reason shows what it read meanwhile.
            Some((
                FailureKind::Timeout,
                vec!["query step 4/4", "last read \"-ERR unknown command\""],
            )),
        ),
        (
            format!("url = \"tcp://127.0.0.1:{redis}\"\nexpect = {{ max_latency = \"1ns\" }}"),
            Some((FailureKind::Slow, vec!["budget"])),
        ),
    ];
    for (body, want) in cases {
        let cfg = config(&check(&body));
        let (obs, outcome) = probe(&cfg, "c").await;
        match want {
            None => assert_eq!(outcome, Outcome::Success, "{body}\n{obs:?}"),
            Some((kind, words)) => {
                let (got, reason) = failure(&outcome);
                assert_eq!(got, kind, "{body}: {reason}");
                for w in words {
                    assert!(reason.contains(w), "{body}: {w:?} not in {reason:?}");
                }
            }
        }
        assert!(obs.duration > Duration::ZERO);
    }
}

#[tokio::test]
async fn a_secret_in_a_send_line_goes_out_and_is_redacted_in_the_reason() {
    let echo = serve(Behaviour::Echo).await;
    // The echo sends the AUTH line back; it is not "+OK", so the check fails
    // and its reason quotes the line with the secret in it.
    let cfg = config(&check(&format!(
        "url = \"tcp://127.0.0.1:{echo}\"\ntcp = {{ query = [{{ send = \"AUTH {{secret}}\\r\\n\", secret = \"redis\" }}, {{ expect = \"^AUTH \" }}, {{ send = \"AUTH {{secret}}\\r\\n\", secret = \"redis\" }}, {{ expect = \"^\\\\+OK\" }}] }}"
    )));
    let (obs, outcome) = probe(&cfg, "c").await;
    let (kind, reason) = failure(&outcome);
    // The echo keeps the connection open, so step 4 waits out the timeout.
    assert_eq!(kind, FailureKind::Timeout, "{reason}");
    assert!(reason.contains("query step 4/4"), "{reason}");
    // The first expect saw the echoed secret: it was sent.
    assert!(
        matches!(&obs.seen, Seen::Tcp(t) if t.steps_done == 3),
        "{obs:?}"
    );
    assert!(reason.contains("AUTH "), "{reason}");
    assert!(!reason.contains(TEST_SECRET), "{reason}");
    assert!(!reason.contains(&TEST_SECRET[..8]), "{reason}");
}

#[tokio::test]
async fn hostile_tcp_targets_fail_in_time_with_their_kind() {
    let silent = serve(Behaviour::Silent).await;
    let reset = serve(Behaviour::Reset).await;
    let garbage = serve(Behaviour::Garbage).await;
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let expect = "tcp = { query = [{ expect = \"^OK\" }], max_read_bytes = 4096 }";
    let cases = [
        (
            silent,
            FailureKind::Timeout,
            vec!["timed out after 2s", "waiting for a line matching /^OK/"],
        ),
        (
            reset,
            FailureKind::Protocol,
            vec!["reading query step 1", "failed"],
        ),
        (garbage, FailureKind::Query, vec!["read limit", "xxxx"]),
        (
            refused,
            FailureKind::Connect,
            vec!["connect to 127.0.0.1", "refused"],
        ),
    ];
    for (port, kind, words) in cases {
        let cfg = config(&check(&format!(
            "url = \"tcp://127.0.0.1:{port}\"\n{expect}"
        )));
        let (_, outcome) = tokio::time::timeout(Duration::from_secs(10), probe(&cfg, "c"))
            .await
            .expect("the probe keeps to its timeout");
        let (got, reason) = failure(&outcome);
        assert_eq!(got, kind, "port {port}: {reason}");
        for w in words {
            assert!(reason.contains(w), "{w:?} not in {reason:?}");
        }
        assert!(reason.len() < 700, "a bounded reason: {reason}");
    }
}

#[tokio::test]
async fn tcp_with_tls_and_tls_checks_verify_and_judge_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (redis, ca) = serve_tls(Behaviour::Redis, dir.path()).await;
    let ca = ca.display().to_string();
    let tcp_tls = |expect: &str| {
        format!(
            "url = \"tcp://localhost:{redis}\"\ntls = {{ ca_file = \"{ca}\" }}\ntcp = {{ tls = true, query = [{{ send = \"PING\\n\" }}, {{ expect = \"PONG\" }}] }}\n{expect}"
        )
    };
    let tls_only = |tls: &str, expect: &str| {
        format!("url = \"tls://127.0.0.1:{redis}\"\ntls = {{ {tls} }}\n{expect}")
    };
    let with_ca = format!("ca_file = \"{ca}\", server_name = \"localhost\"");
    let cases: Vec<(String, Option<(FailureKind, &str)>)> = vec![
        (tcp_tls(""), None),
        (
            tcp_tls("expect = { min_tls_version = \"1.3\", san = [\"localhost\"] }"),
            None,
        ),
        (
            tcp_tls("expect = { cert_valid_for = \"36500d\" }"),
            Some((FailureKind::Certificate, "expires 2031-06-30")),
        ),
        (
            tcp_tls("expect = { san = [\"registry.example\"] }"),
            Some((
                FailureKind::Certificate,
                "not for \"registry.example\" (it names localhost)",
            )),
        ),
        (
            tcp_tls("expect = { issuer = \"^CN=Corp Root\" }"),
            Some((FailureKind::Certificate, "does not match /^CN=Corp Root/")),
        ),
        (
            tls_only(&with_ca, "expect = { cert_valid_for = \"1d\" }"),
            None,
        ),
        (
            // No server_name: the URL's host, 127.0.0.1, is not on the certificate.
            tls_only(&format!("ca_file = \"{ca}\""), ""),
            Some((FailureKind::Tls, "TLS handshake with 127.0.0.1")),
        ),
        (
            // The system's roots do not know the test's CA.
            format!("url = \"tls://localhost:{redis}\""),
            Some((FailureKind::Tls, "TLS handshake with localhost")),
        ),
    ];
    for (body, want) in cases {
        let cfg = config(&check(&body));
        let (obs, outcome) = probe(&cfg, "c").await;
        match want {
            None => {
                assert_eq!(outcome, Outcome::Success, "{body}\n{obs:?}");
                let tls = obs.tls.as_ref().expect("the handshake is recorded");
                assert_eq!(tls.san, ["localhost"], "{tls:?}");
                assert_eq!(tls.fingerprint_sha256.len(), 64);
                assert!(tls.version.is_some());
                assert!(obs.phases.tls > Duration::ZERO);
                assert_eq!(
                    obs.tls_not_after.map(|t| t.date_naive().to_string()),
                    Some("2031-06-30".to_owned())
                );
            }
            Some((kind, words)) => {
                let (got, reason) = failure(&outcome);
                assert_eq!(got, kind, "{body}: {reason}");
                assert!(
                    reason.contains(words),
                    "{body}: {words:?} not in {reason:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn tls_against_a_plain_server_is_a_tls_failure() {
    let banner = serve(Behaviour::Banner).await;
    let silent = serve(Behaviour::Silent).await;
    for (port, kind) in [(banner, FailureKind::Tls), (silent, FailureKind::Timeout)] {
        let cfg = config(&check(&format!(
            "url = \"tls://localhost:{port}\"\ntls = {{ insecure_skip_verify = true }}"
        )));
        let (_, outcome) = probe(&cfg, "c").await;
        let (got, reason) = failure(&outcome);
        assert_eq!(got, kind, "{reason}");
        if kind == FailureKind::Timeout {
            assert!(reason.contains("in the TLS handshake"), "{reason}");
        }
    }
}

#[test]
fn kind_fields_in_the_wrong_place_are_refused_with_the_field() {
    let cases = [
        (
            "url = \"tcp://127.0.0.1:1\"\nmethod = \"POST\"",
            "checks[0].method",
            "applies to http checks; this is a tcp check",
        ),
        (
            "url = \"tcp://127.0.0.1:1\"\nexpect = { status = [200] }",
            "checks[0].expect.status",
            "applies to http checks",
        ),
        (
            "url = \"tcp://127.0.0.1:1\"\nexpect = { rcode = \"NOERROR\" }",
            "checks[0].expect.rcode",
            "applies to dns checks",
        ),
        (
            "url = \"https://127.0.0.1:1/\"\nexpect = { cert_valid_for = \"14d\" }",
            "checks[0].expect.cert_valid_for",
            "add a tls:// check",
        ),
        (
            "url = \"tcp://127.0.0.1:1\"\nexpect = { cert_valid_for = \"14d\" }",
            "checks[0].expect.cert_valid_for",
            "tcp.tls = true",
        ),
        (
            "url = \"tcp://127.0.0.1:1\"\ndns = { name = \"a\" }",
            "checks[0].dns",
            "applies to dns checks; this is a tcp check",
        ),
        ("url = \"tcp://127.0.0.1\"", "checks[0].url", "needs a port"),
        (
            "url = \"tcp://127.0.0.1:1/path\"",
            "checks[0].url",
            "no path",
        ),
        (
            "url = \"tcp://u:p@127.0.0.1:1\"",
            "checks[0].url",
            "takes no user or password",
        ),
        (
            "url = \"tcp://127.0.0.1:1\"\ntls = { insecure_skip_verify = true }",
            "checks[0].tls",
            "speaks no TLS",
        ),
        (
            "url = \"ftp://127.0.0.1/\"",
            "checks[0].url",
            "lookout probes http://",
        ),
        (
            "url = \"tcp://127.0.0.1:1\"\ntcp = { query = [{ send = \"AUTH {secret}\" }] }",
            "checks[0].tcp.query[0]",
            "needs secret =",
        ),
        (
            "url = \"tcp://127.0.0.1:1\"\ntcp = { query = [{ send = \"AUTH\", secret = \"redis\" }] }",
            "checks[0].tcp.query[0]",
            "must hold {secret}",
        ),
        (
            "url = \"tcp://127.0.0.1:1\"\ntcp = { query = [{ send = \"{secret}\", secret = \"nope\" }] }",
            "checks[0].tcp.query[0]",
            "unknown secret \"nope\"",
        ),
        (
            "url = \"tcp://127.0.0.1:1\"\ntcp = { query = [{ send = \"a\", expect = \"b\" }] }",
            "checks[0].tcp.query[0]",
            "each step is",
        ),
        (
            "url = \"tcp://127.0.0.1:1\"\ntcp = { max_read_bytes = 0 }",
            "checks[0].tcp.max_read_bytes",
            "must be 1 to",
        ),
        (
            "url = \"tls://localhost:1\"\nexpect = { min_tls_version = \"1.1\" }",
            "checks[0].expect.min_tls_version",
            "\"1.2\" and \"1.3\"",
        ),
        (
            "url = \"https://localhost/\"\ntls = { server_name = \"x\" }",
            "checks[0].tls.server_name",
            "uses its URL's host",
        ),
        (
            "url = \"dns://127.0.0.1\"",
            "checks[0].dns",
            "needs dns = {",
        ),
        (
            "url = \"dns://ns.example:53\"\ndns = { name = \"a\" }",
            "checks[0].url",
            "by address",
        ),
        (
            "url = \"dns://127.0.0.1\"\ndns = { name = \"a\", type = \"AXFR\" }",
            "checks[0].dns.type",
            "unknown record type",
        ),
        (
            "url = \"dns://127.0.0.1\"\ndns = { name = \"a\", transport = \"quic\" }",
            "checks[0].dns.transport",
            "\"udp\" or \"tcp\"",
        ),
        (
            "url = \"dns://127.0.0.1\"\ndns = { name = \"a b\" }",
            "checks[0].dns.name",
            "without spaces",
        ),
        (
            "url = \"icmp://127.0.0.1:7\"",
            "checks[0].url",
            "has no port",
        ),
        (
            "url = \"icmp://127.0.0.1\"\nicmp = { count = 0 }",
            "checks[0].icmp.count",
            "must be 1 to 100",
        ),
        (
            "url = \"icmp://127.0.0.1\"\nicmp = { ip_version = 6 }",
            "checks[0].icmp.ip_version",
            "not an IPv6 address",
        ),
        (
            "url = \"icmp://127.0.0.1\"\nicmp = { count = 5 }",
            "checks[0].timeout",
            "longer than the timeout",
        ),
        (
            "url = \"icmp://127.0.0.1\"\nexpect = { max_loss = \"0.2\" }",
            "checks[0].expect.max_loss",
            "percentage",
        ),
        (
            "url = \"grpc://127.0.0.1:1\"\nexpect = { max_loss = \"1%\" }",
            "checks[0].expect.max_loss",
            "applies to icmp checks",
        ),
        (
            "url = \"grpc://127.0.0.1:1\"\nexpect = { san = [\"a\"] }",
            "checks[0].expect.san",
            "applies to tls, grpcs",
        ),
    ];
    for (body, field, words) in cases {
        let err = try_config(&check(body)).expect_err(body).to_string();
        assert!(err.contains(&format!("{field}:")), "{body}: {err}");
        assert!(err.contains(words), "{body}: {words:?} not in {err}");
        assert!(err.starts_with("test.toml:"), "{err}");
        assert!(!err.contains(TEST_SECRET), "{err}");
    }
}

/// A reload keeps a check of another kind when nothing about it changed,
/// and restarts it when anything did (its identity is every field, TLS
/// settings by value, a secret by fingerprint).
#[test]
fn reload_identity_covers_every_kind() {
    let kinds = [
        "url = \"tcp://127.0.0.1:6379\"\ntcp = { query = [{ send = \"PING\\r\\n\" }, { expect = \"PONG\" }] }",
        "url = \"tls://localhost:8443\"\nexpect = { cert_valid_for = \"14d\" }",
        "url = \"dns://127.0.0.1:53\"\ndns = { name = \"a.example\", type = \"MX\" }",
        "url = \"grpc://127.0.0.1:50051\"\ngrpc = { service = \"x\" }",
        "url = \"icmp://127.0.0.1\"\nicmp = { count = 2, interval = \"100ms\" }",
    ];
    let changed = [
        "url = \"tcp://127.0.0.1:6379\"\ntcp = { query = [{ send = \"PING\\r\\n\" }, { expect = \"PANG\" }] }",
        "url = \"tls://localhost:8443\"\nexpect = { cert_valid_for = \"7d\" }",
        "url = \"dns://127.0.0.1:53\"\ndns = { name = \"a.example\", type = \"TXT\" }",
        "url = \"grpcs://127.0.0.1:50051\"\ngrpc = { service = \"x\" }",
        "url = \"icmp://127.0.0.1\"\nicmp = { count = 3, interval = \"100ms\" }",
    ];
    for (same, other) in kinds.iter().zip(changed) {
        let (a, b, c) = (
            config(&check(same)),
            config(&check(same)),
            config(&check(other)),
        );
        let (ca, cb, cc) = (&a.checks[0], &b.checks[0], &c.checks[0]);
        assert!(
            ca.same_as(&a.tls_of_check(ca), cb, &b.tls_of_check(cb)),
            "{same}"
        );
        assert!(
            !ca.same_as(&a.tls_of_check(ca), cc, &c.tls_of_check(cc)),
            "{same} vs {other}"
        );
    }
}

/// A certificate's text becomes labels of `probe_ssl_last_chain_info`:
/// a secret in it is redacted like any target text.
#[tokio::test]
async fn a_secret_in_a_certificate_is_redacted() {
    let (server_config, _) = crate::support::self_signed_server(
        &["localhost", TEST_SECRET],
        (2020, 1, 1),
        (2031, 6, 30),
    );
    let port = crate::support::serve_https(server_config, 4).await;
    let cfg = config(&check(&format!(
        "url = \"tls://localhost:{port}\"\ntls = {{ insecure_skip_verify = true }}"
    )));
    let runner = lookout::run::Runner::new(&cfg).unwrap();
    let result = runner
        .check(&cfg.checks[0], lookout::schedule::Tick::now())
        .await;
    assert!(result.outcome.is_success(), "{:?}", result.outcome);
    let tls = result.tls.expect("the handshake is recorded");
    assert_eq!(tls.san.len(), 2, "{tls:?}");
    assert_eq!(tls.san[0], "localhost");
    let shown = format!("{tls:?}");
    assert!(
        !shown.contains(TEST_SECRET) && !shown.contains(&TEST_SECRET[..8]),
        "{shown}"
    );
}

/// The other kinds' failure reasons are redacted too: a TLS failure names
/// the certificate's names, and one of them is the secret.
#[tokio::test]
async fn a_secret_in_a_failing_handshake_is_redacted() {
    let (server_config, pem) = crate::support::self_signed_server(
        &[TEST_SECRET, "localhost"],
        (2020, 1, 1),
        (2031, 6, 30),
    );
    let port = crate::support::serve_https(server_config, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    // Trusted, but for other names: the reason lists the names it is for.
    let cfg = config(&check(&format!(
        "url = \"tls://localhost:{port}\"\ntls = {{ ca_file = \"{}\", server_name = \"other.example\" }}",
        ca.display()
    )));
    let runner = lookout::run::Runner::new(&cfg).unwrap();
    let result = runner
        .check(&cfg.checks[0], lookout::schedule::Tick::now())
        .await;
    let reason = result.outcome.reason().unwrap_or_default().to_owned();
    assert_eq!(result.outcome.label(), "tls", "{reason}");
    assert!(
        reason.contains("localhost"),
        "the names are shown: {reason}"
    );
    assert!(
        !reason.contains(TEST_SECRET) && !reason.contains(&TEST_SECRET[..8]),
        "{reason}"
    );
}
