//! The HTTP probe against our own target: auth schemes, matrix, failure
//! kinds, redirects, phases and fresh connections.

use std::time::{Duration, Instant};

use base64::Engine as _;
use lookout::outcome::{FailureKind, Outcome};

use crate::support::{TEST_SECRET, config, probe, start_target};

fn one_check(url: &str, extra: &str) -> String {
    format!(
        r#"
[secrets]
key = {{ env = "PLATFORM_API_KEY" }}
[[checks]]
name = "c"
url = "{url}"
{extra}
"#
    )
}

#[tokio::test]
async fn every_auth_scheme_sends_the_credential_where_configured() {
    let target = start_target().await;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("alice:{TEST_SECRET}"))
    );
    // (auth table, header to look at, expected header value, expected query)
    let cases: Vec<(&str, Option<&str>, Option<String>, &str)> = vec![
        (
            r#"{ scheme = "api_key", secret = "key" }"#,
            Some("x-api-key"),
            Some(TEST_SECRET.into()),
            "",
        ),
        (
            r#"{ scheme = "api_key", header = "X-Auth-Token", secret = "key" }"#,
            Some("x-auth-token"),
            Some(TEST_SECRET.into()),
            "",
        ),
        (
            r#"{ scheme = "bearer", secret = "key" }"#,
            Some("authorization"),
            Some(format!("Bearer {TEST_SECRET}")),
            "",
        ),
        (
            r#"{ scheme = "basic", username = "alice", secret = "key" }"#,
            Some("authorization"),
            Some(basic),
            "",
        ),
        (
            r#"{ scheme = "query", secret = "key" }"#,
            None,
            None,
            "api_key=",
        ),
        (
            r#"{ scheme = "query", param = "token", secret = "key" }"#,
            None,
            None,
            "token=",
        ),
        (
            r#"{ scheme = "api_key", value = "wrong-key-on-purpose" }"#,
            Some("x-api-key"),
            Some("wrong-key-on-purpose".into()),
            "",
        ),
        (r#"{ scheme = "none" }"#, Some("authorization"), None, ""),
    ];
    for (auth, header, want, query) in cases {
        let before = target.seen_on("/echo").len();
        let cfg = config(&one_check(&target.url("/echo"), &format!("auth = {auth}")));
        let (_, outcome) = probe(&cfg, "c").await;
        assert_eq!(outcome, Outcome::Success, "{auth}");
        let seen = target.seen_on("/echo");
        assert_eq!(seen.len(), before + 1, "{auth}");
        let req = &seen[before];
        if let Some(h) = header {
            assert_eq!(req.header(h).map(str::to_owned), want, "{auth}");
        }
        if !query.is_empty() {
            assert_eq!(req.query, format!("{query}{TEST_SECRET}"), "{auth}");
        } else {
            assert_eq!(req.query, "", "{auth}");
        }
        if auth.contains("none") {
            assert!(!req.all_text().contains(TEST_SECRET));
        }
    }
}

/// The user report's finding, as a check: the key is registered for
/// service 'platform', so 'ml-platform' is rejected.
#[tokio::test]
async fn matrix_expands_and_reports_the_service_mismatch() {
    let target = start_target().await;
    let cfg = config(&format!(
        r#"
[secrets]
platform_key = {{ env = "PLATFORM_API_KEY" }}
[[checks]]
name = "validate-key"
group = "authentication"
method = "POST"
url = "{}"
auth = {{ scheme = "api_key", header = "X-API-Key", secret = "platform_key" }}
json = {{ service_id = "{{{{service_id}}}}" }}
matrix = {{ service_id = ["platform", "ml-platform"] }}
expect = {{ status = [200], json = [{{ pointer = "/service_id", equals = "platform" }}] }}
"#,
        target.url("/validate")
    ));
    let names: Vec<&str> = cfg.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "validate-key[service_id=platform]",
            "validate-key[service_id=ml-platform]"
        ]
    );
    let (_, ok) = probe(&cfg, "validate-key[service_id=platform]").await;
    assert_eq!(ok, Outcome::Success);
    let (obs, bad) = probe(&cfg, "validate-key[service_id=ml-platform]").await;
    assert_eq!(obs.status, Some(401));
    assert_eq!(
        bad.reason().unwrap(),
        "status 401, expected 200: \"API key does not have access to service 'ml-platform'. \
         This key is registered for service 'platform'.\""
    );
    let bodies: Vec<String> = target
        .seen_on("/validate")
        .iter()
        .map(|s| s.all_text())
        .collect();
    assert_eq!(bodies.len(), 2);
}

#[tokio::test]
async fn failure_kinds_are_distinct_and_bounded_in_time() {
    let target = start_target().await;
    // A port with nothing listening: bind, read the port, close.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // A "server" that does not speak HTTP.
    let garbage = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let garbage_addr = garbage.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        for _ in 0..8 {
            if let Ok((mut s, _)) = garbage.accept().await {
                let _ = s
                    .write_all(b"SSH-2.0-OpenSSH_9.2\r\nnot http at all\r\n")
                    .await;
            }
        }
    });
    let cases: Vec<(&str, String, &str, FailureKind, &str)> = vec![
        (
            "refused",
            format!("http://127.0.0.1:{closed}/"),
            "",
            FailureKind::Connect,
            "connect to 127.0.0.1",
        ),
        (
            "dns",
            "http://lookout-test.invalid/".into(),
            "",
            FailureKind::Dns,
            "could not resolve lookout-test.invalid",
        ),
        (
            "timeout",
            target.url("/hang"),
            r#"timeout = "300ms""#,
            FailureKind::Timeout,
            "timed out after 300ms waiting for response headers",
        ),
        (
            "huge body",
            target.url("/huge"),
            "max_body_bytes = 1024",
            FailureKind::BodyTooLarge,
            "larger than max_body_bytes (1024 bytes)",
        ),
        (
            "status",
            target.url("/status/503?detail=maintenance"),
            "",
            FailureKind::Status,
            "status 503, expected 2xx: \"maintenance\"",
        ),
        (
            "slow",
            target.url("/slow/250"),
            r#"expect = { max_latency = "50ms" }"#,
            FailureKind::Slow,
            "budget 50ms",
        ),
        (
            "not http",
            format!("http://{garbage_addr}/"),
            "",
            FailureKind::Protocol,
            "did not send a valid response",
        ),
        (
            "redirect loop",
            target.url("/redirect?loop"),
            "max_redirects = 3",
            FailureKind::Redirect,
            "more than 3 redirects",
        ),
        (
            "body",
            target.url("/echo"),
            r#"expect = { body_contains = ["nope"] }"#,
            FailureKind::Body,
            "body does not contain \"nope\"",
        ),
    ];
    for (name, url, extra, kind, reason) in cases {
        let cfg = config(&one_check(&url, extra));
        let timeout = cfg.checks[0].probe.http().expect("an HTTP check").timeout;
        let started = Instant::now();
        let (obs, outcome) = probe(&cfg, "c").await;
        let took = started.elapsed();
        match &outcome {
            Outcome::Failure { kind: k, reason: r } => {
                assert_eq!(*k, kind, "{name}: {r}");
                assert!(
                    r.contains(reason),
                    "{name}: {r:?} should contain {reason:?}"
                );
            }
            Outcome::Success => panic!("{name}: expected {kind}, got success"),
        }
        assert!(
            took < timeout + Duration::from_secs(1),
            "{name}: took {took:?} with timeout {timeout:?}"
        );
        assert!(obs.duration <= took, "{name}");
    }
}

#[tokio::test]
async fn same_origin_redirects_keep_credentials() {
    let target = start_target().await;
    let cfg = config(&one_check(
        &target.url("/redirect?to=/echo"),
        r#"auth = { scheme = "api_key", secret = "key" }"#,
    ));
    let (obs, outcome) = probe(&cfg, "c").await;
    assert_eq!(outcome, Outcome::Success);
    assert_eq!(obs.redirects, 1);
    assert_eq!(
        target.seen_on("/echo")[0].header("x-api-key"),
        Some(TEST_SECRET)
    );
}

#[tokio::test]
async fn cross_origin_redirects_drop_every_credential() {
    let first = start_target().await;
    let other = start_target().await;
    // The Location sets lookout's own query parameter (a Location holding
    // the key's value is not followed at all: see the next test).
    let to = format!("{}?api_key=from-the-target&keep=1", other.url("/echo"));
    let redirect = format!(
        "{}?to={}",
        first.url("/redirect"),
        url::form_urlencoded::byte_serialize(to.as_bytes()).collect::<String>()
    );
    for auth in [
        r#"{ scheme = "api_key", header = "X-Custom-Key", secret = "key" }"#,
        r#"{ scheme = "bearer", secret = "key" }"#,
        r#"{ scheme = "basic", username = "u", secret = "key" }"#,
        r#"{ scheme = "query", secret = "key" }"#,
    ] {
        let before = other.seen_on("/echo").len();
        // A credential put in plain `headers` must not follow either.
        let headers =
            r#"headers = { "X-Session-Token" = "session-abc", "Accept" = "application/json" }"#;
        let cfg = config(&one_check(&redirect, &format!("auth = {auth}\n{headers}")));
        let (obs, outcome) = probe(&cfg, "c").await;
        assert_eq!(outcome, Outcome::Success, "{auth}");
        assert_eq!(obs.redirects, 1, "{auth}");
        assert_eq!(
            first
                .seen_on("/redirect")
                .last()
                .unwrap()
                .header("x-session-token"),
            Some("session-abc")
        );
        let seen = other.seen_on("/echo");
        assert_eq!(seen.len(), before + 1, "{auth}");
        let text = seen[before].all_text();
        assert!(
            !text.contains(TEST_SECRET),
            "{auth}: leaked to another origin:\n{text}"
        );
        assert!(
            !text.to_lowercase().contains("authorization"),
            "{auth}:\n{text}"
        );
        assert!(
            !text.to_lowercase().contains("x-custom-key"),
            "{auth}:\n{text}"
        );
        assert!(
            seen[before].query.contains("keep=1"),
            "{auth}: other query kept"
        );
        if auth.contains("query") {
            assert!(
                !seen[before].query.contains("api_key"),
                "{auth}: our parameter is dropped: {}",
                seen[before].query
            );
        }
    }
}

/// A Location to another origin that holds the key, anywhere and in any
/// encoding, is not followed: the other origin never sees the request.
#[tokio::test]
async fn a_cross_origin_redirect_carrying_a_secret_is_not_followed() {
    let first = start_target().await;
    let other = start_target().await;
    let encoded: String = TEST_SECRET.bytes().map(|b| format!("%{b:02x}")).collect();
    let base64 = base64::engine::general_purpose::STANDARD.encode(format!("u:{TEST_SECRET}"));
    let other_host = format!("127.0.0.1:{}", other.addr.port());
    let cases = [
        ("path", format!("http://{other_host}/echo/{TEST_SECRET}")),
        (
            "fragment",
            format!("http://{other_host}/echo#{TEST_SECRET}"),
        ),
        ("query", format!("http://{other_host}/echo?k={TEST_SECRET}")),
        (
            "userinfo",
            format!("http://x:{TEST_SECRET}@{other_host}/echo"),
        ),
        (
            "percent-encoded path",
            format!("http://{other_host}/echo/{encoded}"),
        ),
        (
            "base64 basic pair",
            format!("http://{other_host}/echo?b={base64}"),
        ),
        // Single sign-on's return_to: a URL holding the key, in a URL, in
        // the Location; the key is encoded twice.
        (
            "encoded twice",
            format!("http://{other_host}/login?return_to={}", {
                // Every byte of the key escaped in the inner URL, which is
                // then escaped again as a query value: `%2568%256B…`.
                let inner = format!("https://api.example/x?api_key={encoded}");
                url::form_urlencoded::byte_serialize(inner.as_bytes()).collect::<String>()
            }),
        ),
        (
            "a piece of it",
            format!("http://{other_host}/echo?hint={}", &TEST_SECRET[..12]),
        ),
    ];
    for (auth, user) in [
        (r#"{ scheme = "api_key", secret = "key" }"#, None),
        (
            r#"{ scheme = "basic", username = "u", secret = "key" }"#,
            Some("u"),
        ),
    ] {
        for (what, to) in &cases {
            if what.starts_with("base64") && user.is_none() {
                continue;
            }
            let redirect = format!(
                "{}?to={}",
                first.url("/redirect"),
                url::form_urlencoded::byte_serialize(to.as_bytes()).collect::<String>()
            );
            let cfg = config(&one_check(&redirect, &format!("auth = {auth}")));
            let (obs, outcome) = probe(&cfg, "c").await;
            match &outcome {
                Outcome::Failure { kind, reason } => {
                    assert_eq!(*kind, FailureKind::Redirect, "{what}: {reason}");
                    assert!(
                        reason.contains("credential in its URL")
                            && reason.contains(&other_host)
                            && !reason.contains(TEST_SECRET),
                        "{what}: {reason}"
                    );
                }
                Outcome::Success => panic!("{what}: followed"),
            }
            assert_eq!(obs.status, Some(302), "{what}");
            assert!(
                other.seen().is_empty(),
                "{what}: the other origin was asked"
            );
        }
    }
}

#[tokio::test]
async fn phases_are_measured_and_each_probe_uses_a_fresh_connection() {
    let target = start_target().await;
    let url = format!("http://localhost:{}/echo", target.addr.port());
    let cfg = config(&one_check(&url, ""));
    for _ in 0..3 {
        let (obs, outcome) = probe(&cfg, "c").await;
        assert_eq!(outcome, Outcome::Success);
        let p = obs.phases;
        assert!(
            p.resolve > Duration::ZERO,
            "localhost must be resolved: {p:?}"
        );
        assert!(p.connect > Duration::ZERO, "{p:?}");
        assert!(p.processing > Duration::ZERO, "{p:?}");
        assert_eq!(p.tls, Duration::ZERO, "plain http has no TLS phase");
        let sum = p.resolve + p.connect + p.processing + p.transfer;
        assert!(
            sum <= obs.duration,
            "phases {sum:?} exceed the total {:?}",
            obs.duration
        );
    }
    let ports: std::collections::BTreeSet<u16> = target
        .seen_on("/echo")
        .iter()
        .map(|s| s.peer_port)
        .collect();
    assert_eq!(ports.len(), 3, "each probe must open its own connection");
}

#[tokio::test]
async fn a_secret_echoed_by_the_target_is_redacted_from_the_reason() {
    let target = start_target().await;
    for auth in [
        r#"{ scheme = "api_key", secret = "key" }"#,
        r#"{ scheme = "query", secret = "key" }"#,
        r#"{ scheme = "bearer", secret = "key" }"#,
    ] {
        let cfg = config(&one_check(
            &target.url("/echo-key"),
            &format!("auth = {auth}\nexpect = {{ status = [200] }}"),
        ));
        let (_, outcome) = probe(&cfg, "c").await;
        let reason = outcome.reason().unwrap();
        assert!(!reason.contains(TEST_SECRET), "{auth}: {reason}");
        assert!(reason.contains("[redacted sha256:"), "{auth}: {reason}");
        assert!(
            reason.contains("not valid for service 'ml-platform'"),
            "{auth}: {reason}"
        );
    }
}

#[tokio::test]
async fn status_patterns_express_route_exists() {
    let target = start_target().await;
    // "routes answer 401 (exist) or 404 (missing)"
    let exists = r#"expect = { status = ["!404"] }"#;
    let (_, outcome) = probe(&config(&one_check(&target.url("/status/401"), exists)), "c").await;
    assert_eq!(outcome, Outcome::Success);
    let (_, outcome) = probe(&config(&one_check(&target.url("/status/404"), exists)), "c").await;
    assert_eq!(outcome.reason(), Some("status 404, expected not 404"));
}

/// A 307 or 308 keeps the body, which may hold a credential written in the
/// config: to another origin it is not followed; within the origin it is.
#[tokio::test]
async fn a_redirect_that_keeps_the_body_stays_on_its_origin() {
    let first = start_target().await;
    let other = start_target().await;
    for status in [307, 308] {
        let to = other.url("/echo");
        let away = format!(
            "{}?status={status}&to={}",
            first.url("/redirect"),
            url::form_urlencoded::byte_serialize(to.as_bytes()).collect::<String>()
        );
        let check = "method = \"POST\"\nbody = \"client_secret=literal-s3cret\"";
        let cfg = config(&one_check(&away, check));
        let (obs, outcome) = probe(&cfg, "c").await;
        match &outcome {
            Outcome::Failure { kind, reason } => {
                assert_eq!(*kind, FailureKind::Redirect, "{reason}");
                assert!(reason.contains("would send the request body"), "{reason}");
            }
            Outcome::Success => panic!("{status}: followed to another origin"),
        }
        assert_eq!(obs.status, Some(status));
        assert!(
            other.seen().is_empty(),
            "{status}: the other origin was asked"
        );

        let within = format!("{}?status={status}&to=/echo", first.url("/redirect"));
        let cfg = config(&one_check(&within, check));
        let (obs, outcome) = probe(&cfg, "c").await;
        assert_eq!(outcome, Outcome::Success, "{status} within the origin");
        assert_eq!(obs.redirects, 1);
    }
}
