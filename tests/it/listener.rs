//! lookout's own listener: TLS, mTLS and basic auth as in Prometheus'
//! exporter-toolkit web config, and limits that bound what a slow or
//! greedy client can take.

use std::path::Path;
use std::time::{Duration, Instant};

use lookout::daemon::Daemon;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Pki {
    ca_pem: String,
    server_cert: String,
    server_key: String,
    client_pem: String,
}

/// A CA, a server certificate for localhost and 127.0.0.1, and a client
/// certificate, all signed by the CA.
fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "lookout test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);

    let server_key = rcgen::KeyPair::generate().unwrap();
    let mut server =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    server.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &issuer).unwrap();

    let client_key = rcgen::KeyPair::generate().unwrap();
    let mut client = rcgen::CertificateParams::new(vec!["prometheus".to_owned()]).unwrap();
    client.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client.signed_by(&client_key, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        client_pem: format!("{}{}", client_cert.pem(), client_key.serialize_pem()),
    }
}

fn start_config(dir: &Path, server: &str) -> lookout::config::Config {
    let path = dir.join("lookout.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{server}\n[store]\npath = \":memory:\"\n[[checks]]\nname = \"a\"\nurl = \"http://127.0.0.1:9/\"\ninterval = \"1h\"\n"
        ),
    )
    .unwrap();
    lookout::config::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn write_pki(dir: &Path, p: &Pki) {
    std::fs::write(dir.join("ca.pem"), &p.ca_pem).unwrap();
    std::fs::write(dir.join("server.crt"), &p.server_cert).unwrap();
    std::fs::write(dir.join("server.key"), &p.server_key).unwrap();
}

fn client(p: &Pki, identity: bool) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(p.ca_pem.as_bytes()).unwrap()]);
    if identity {
        b = b.identity(reqwest::Identity::from_pem(p.client_pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_mtls() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    write_pki(dir.path(), &p);

    // TLS: the page over https, verified against the test CA.
    let cfg = start_config(
        dir.path(),
        "tls_server_config = { cert_file = \"server.crt\", key_file = \"server.key\" }",
    );
    let daemon = Daemon::start(cfg).await.unwrap();
    let url = format!("https://localhost:{}/healthz", daemon.addr.port());
    let r = client(&p, false).get(&url).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "ok\n");
    let plain = reqwest::get(format!("http://127.0.0.1:{}/healthz", daemon.addr.port())).await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "no plain HTTP on a TLS listener"
    );
    daemon.shutdown().await;

    // mTLS: no client certificate, no connection; with one, the page.
    let cfg = start_config(
        dir.path(),
        "tls_server_config = { cert_file = \"server.crt\", key_file = \"server.key\", client_ca_file = \"ca.pem\", client_auth_type = \"RequireAndVerifyClientCert\" }",
    );
    let daemon = Daemon::start(cfg).await.unwrap();
    let url = format!("https://localhost:{}/metrics", daemon.addr.port());
    assert!(
        client(&p, false).get(&url).send().await.is_err(),
        "a client without a certificate is refused"
    );
    let r = client(&p, true).get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("lookout_build_info"));
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_guards_everything_but_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("right horse battery", 4).unwrap();
    let cfg = start_config(
        dir.path(),
        &format!("basic_auth_users = {{ prometheus = \"{hash}\" }}"),
    );
    let daemon = Daemon::start(cfg).await.unwrap();
    let base = format!("http://{}", daemon.addr);
    let http = reqwest::Client::new();
    let get = |path: &str, user: Option<(&str, &str)>| {
        let mut r = http.get(format!("{base}{path}"));
        if let Some((u, p)) = user {
            r = r.basic_auth(u, Some(p));
        }
        r.send()
    };
    let cases = [
        ("/healthz", None, 200),
        ("/metrics", None, 401),
        ("/", None, 401),
        ("/api/v1/status", Some(("prometheus", "wrong")), 401),
        (
            "/api/v1/status",
            Some(("nobody", "right horse battery")),
            401,
        ),
        (
            "/api/v1/status",
            Some(("prometheus", "right horse battery")),
            200,
        ),
        ("/metrics", Some(("prometheus", "right horse battery")), 200),
        ("/readyz", Some(("prometheus", "right horse battery")), 200),
    ];
    let mut failures = Vec::new();
    for (path, user, want) in cases {
        let r = get(path, user).await.unwrap();
        if r.status().as_u16() != want {
            failures.push(format!(
                "{path} as {user:?}: {} (wanted {want})",
                r.status()
            ));
        }
        if want == 401
            && r.headers().get("www-authenticate").map(|v| v.as_bytes())
                != Some(b"Basic realm=\"lookout\"".as_slice())
        {
            failures.push(format!("{path}: no WWW-Authenticate challenge"));
        }
    }
    crate::support::assert_table_passed(&failures, cases.len());
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_greedy_and_oversized_clients_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = start_config(
        dir.path(),
        "read_header_timeout = \"300ms\"\nmax_connections = 4",
    );
    let daemon = Daemon::start(cfg).await.unwrap();
    let addr = daemon.addr;

    // A client that sends half a request line and waits is dropped after
    // the header deadline.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the slow client was not dropped");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // A connection that sends nothing at all is dropped the same way.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "an idle connection was not closed"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    drop(idle);

    // Four idle connections take every slot; a fifth is closed at once,
    // and once they go, the listener serves again.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fifth = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = fifth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), fifth.read_to_end(&mut answer)).await;
    assert!(
        answer.is_empty(),
        "over the limit, no answer: {:?}",
        String::from_utf8_lossy(&answer)
    );
    drop(idle);
    let ok = crate::support::eventually(Duration::from_secs(5), async || {
        reqwest::get(format!("http://{addr}/healthz"))
            .await
            .ok()?
            .text()
            .await
            .ok()
    })
    .await;
    assert_eq!(ok, "ok\n");

    // Headers over 64 KiB are refused.
    let r = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .header("x-big", "a".repeat(100 * 1024))
        .send()
        .await;
    match r {
        Ok(r) => assert_eq!(r.status(), 431),
        Err(e) => assert!(
            e.is_request() || e.is_connect() || e.to_string().contains("connection"),
            "{e}"
        ),
    }
    daemon.shutdown().await;
}

#[test]
fn hash_password_prints_a_bcrypt_hash_of_stdin() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["hash-password", "--cost", "4"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(bcrypt::verify("s3cret", hash.trim()).unwrap(), "{hash}");
    assert!(!hash.contains("s3cret"));
}

/// `[server]`'s users and TLS follow a reload: a removed user is refused
/// from the next request on, and a listener that turns TLS on speaks it to
/// the next connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_tls_follow_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    write_pki(dir.path(), &p);
    let (alice, bob) = (
        bcrypt::hash("alice pw", 4).unwrap(),
        bcrypt::hash("bob pw", 4).unwrap(),
    );
    let cfg = start_config(
        dir.path(),
        &format!("basic_auth_users = {{ alice = \"{alice}\", bob = \"{bob}\" }}"),
    );
    let daemon = Daemon::start(cfg).await.unwrap();
    let port = daemon.addr.port();
    // A fresh client each time: a reload governs new connections.
    let status = |scheme: &str, user: &str, pw: &str| {
        let url = format!("{scheme}://localhost:{port}/metrics");
        let (user, pw) = (user.to_owned(), pw.to_owned());
        let http = client(&p, false);
        async move {
            match http.get(url).basic_auth(user, Some(pw)).send().await {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            }
        }
    };
    assert_eq!(status("http", "bob", "bob pw").await, 200);

    start_config(
        dir.path(),
        &format!(
            "basic_auth_users = {{ alice = \"{alice}\" }}\ntls_server_config = {{ cert_file = \"server.crt\", key_file = \"server.key\" }}"
        ),
    );
    daemon.reload().await.unwrap();
    let cases = [
        ("https", "bob", "bob pw", 401),
        ("https", "alice", "alice pw", 200),
        ("http", "alice", "alice pw", 0),
    ];
    let mut failures = Vec::new();
    for (scheme, user, pw, want) in cases {
        let got = status(scheme, user, pw).await;
        if got != want {
            failures.push(format!("{scheme} as {user}: {got} (wanted {want})"));
        }
    }
    crate::support::assert_table_passed(&failures, cases.len());
    daemon.shutdown().await;
}

/// The warning at start and on reload: beyond loopback without users.
#[test]
fn open_to_all_is_beyond_loopback_without_users() {
    let dir = tempfile::tempdir().unwrap();
    let open = start_config(dir.path(), "");
    let hash = bcrypt::hash("pw", 4).unwrap();
    let guarded = start_config(
        dir.path(),
        &format!("basic_auth_users = {{ u = \"{hash}\" }}"),
    );
    let cases = [
        ("127.0.0.1:9898", &open, false),
        ("[::1]:9898", &open, false),
        ("0.0.0.0:9898", &open, true),
        ("[::]:9898", &open, true),
        ("10.1.2.3:9898", &open, true),
        ("0.0.0.0:9898", &guarded, false),
    ];
    let mut failures = Vec::new();
    for (addr, cfg, want) in cases {
        let got = lookout::daemon::open_to_all(addr.parse().unwrap(), &cfg.server);
        if got != want {
            failures.push(format!("{addr}: {got}"));
        }
    }
    crate::support::assert_table_passed(&failures, cases.len());
}
