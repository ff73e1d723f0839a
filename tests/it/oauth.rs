//! OAuth2 client credentials against a token endpoint of our own on
//! 127.0.0.1 (it counts fetches, checks the client's credentials, and can
//! be told to fail), a target that accepts only unexpired tokens it issued,
//! and the credential expiry gauge for configured, declared and fetched
//! credentials.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use lookout::config::Config;
use lookout::outcome::{CheckResult, FailureKind, Outcome};
use lookout::record::Recorder;
use lookout::run::Runner;
use lookout::schedule::Tick;

use crate::daemon::{gauge, parse};
use crate::support::{assert_table_passed, eventually, start_target};

const CLIENT_ID: &str = "lookout probe";
const CLIENT_SECRET: &str = "idp_s3cret/Qw8+Zx4Lp2Nv6";
/// Every issued token ends so; no test output may hold 8 characters of it.
const TOKEN_TAIL: &str = "Hq5Rt2Wm8Kd3Ys6Pb9Lc4";

#[derive(Clone, Copy, Debug, Default, PartialEq)]
enum Mode {
    #[default]
    Ok,
    Unauthorized,
    ServerError,
    Garbage,
    Redirect,
    Silent,
    /// 401 with the Authorization header and the form it got in the body.
    Echo,
}

/// One token request as the endpoint saw it.
#[derive(Clone, Debug)]
struct TokenRequest {
    authorization: Option<String>,
    form: HashMap<String, String>,
}

#[derive(Default)]
struct IdpState {
    fetches: AtomicUsize,
    mode: Mutex<Mode>,
    /// `expires_in` of issued tokens; none: the field is left out.
    expires_in: Mutex<Option<u64>>,
    jwt: AtomicBool,
    delay_ms: AtomicU64,
    /// Token → when it expires.
    issued: Mutex<HashMap<String, Instant>>,
    requests: Mutex<Vec<TokenRequest>>,
}

#[derive(Clone)]
struct Idp {
    addr: SocketAddr,
    state: Arc<IdpState>,
}

impl Idp {
    fn token_url(&self) -> String {
        format!("http://{}/token", self.addr)
    }
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
    fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }
    fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }
    fn tokens(&self) -> Vec<String> {
        self.state.issued.lock().unwrap().keys().cloned().collect()
    }
    fn requests(&self) -> Vec<TokenRequest> {
        self.state.requests.lock().unwrap().clone()
    }
}

/// The token endpoint and the API it guards, on one port: `/token`, `/api`
/// (200 for an issued, unexpired token), `/echo` (rejects the token and
/// quotes it in its body and a header) and `/away?to=` (a redirect).
async fn start_idp(expires_in: Option<u64>) -> Idp {
    let state = Arc::new(IdpState::default());
    *state.expires_in.lock().unwrap() = expires_in;
    let app = Router::new()
        .route("/token", post(token))
        .route("/api", get(api))
        .route("/echo", get(echo))
        .route("/away", get(away))
        .with_state(state.clone());
    let addr = crate::support::serve(app).await;
    Idp { addr, state }
}

fn jwt(claims: &serde_json::Value) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(format!("signature-{TOKEN_TAIL}"))
    )
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn token(State(s): State<Arc<IdpState>>, headers: HeaderMap, body: String) -> Response {
    let n = s.fetches.fetch_add(1, Ordering::SeqCst) + 1;
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap().to_owned());
    s.requests.lock().unwrap().push(TokenRequest {
        authorization: authorization.clone(),
        form: form.clone(),
    });
    let delay = s.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mode = *s.mode.lock().unwrap();
    match mode {
        Mode::Ok => {}
        Mode::Unauthorized => {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({"error": "invalid_client", "error_description": "Client authentication failed"})),
            )
                .into_response();
        }
        Mode::ServerError => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "upstream idp down").into_response();
        }
        Mode::Garbage => return (StatusCode::OK, "<html>sign in</html>").into_response(),
        Mode::Redirect => {
            return (StatusCode::FOUND, [(header::LOCATION, "/elsewhere")]).into_response();
        }
        Mode::Silent => {
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
        Mode::Echo => {
            let got = format!("bad client: {} {}", authorization.unwrap_or_default(), body);
            return (StatusCode::UNAUTHORIZED, got).into_response();
        }
    }
    // RFC 6749 §2.3.1: Basic with the form-encoded id and secret.
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(CLIENT_ID), enc(CLIENT_SECRET)))
    );
    let by_basic = authorization.as_deref() == Some(basic.as_str());
    let by_body = form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
    if form.get("grant_type").map(String::as_str) != Some("client_credentials")
        || !(by_basic || by_body)
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let expires_in = *s.expires_in.lock().unwrap();
    let lifetime = expires_in.unwrap_or(3600);
    let token = if s.jwt.load(Ordering::SeqCst) {
        jwt(&serde_json::json!({"sub": "svc", "jti": n, "exp": now_unix() + lifetime as i64}))
    } else {
        format!("opaque-{n}-{TOKEN_TAIL}")
    };
    s.issued.lock().unwrap().insert(
        token.clone(),
        Instant::now() + Duration::from_secs(lifetime),
    );
    let mut answer = serde_json::json!({"access_token": token, "token_type": "bearer"});
    if let Some(e) = expires_in {
        answer["expires_in"] = e.into();
    }
    axum::Json(answer).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_owned)
}

async fn api(State(s): State<Arc<IdpState>>, headers: HeaderMap) -> Response {
    let fresh = bearer(&headers).is_some_and(|t| {
        s.issued
            .lock()
            .unwrap()
            .get(&t)
            .is_some_and(|until| Instant::now() < *until)
    });
    if fresh {
        "ok".into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"detail": "token missing or expired"})),
        )
            .into_response()
    }
}

/// Rejects the token and hands it back: plain and percent-encoded in the
/// body, plain in a header.
async fn echo(headers: HeaderMap) -> Response {
    let token = bearer(&headers).unwrap_or_default();
    let percent: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    (
        StatusCode::FORBIDDEN,
        [("x-echo", format!("Bearer {token}"))],
        axum::Json(
            serde_json::json!({"detail": format!("token {token} ({percent}) is not allowed")}),
        ),
    )
        .into_response()
}

async fn away(Query(q): Query<HashMap<String, String>>) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, q["to"].clone())]).into_response()
}

fn env(name: &str) -> Option<String> {
    match name {
        "IDP_CLIENT_SECRET" => Some(CLIENT_SECRET.to_owned()),
        "PLAIN_KEY" => Some("plain-key-Zx81Qm4Lk".to_owned()),
        _ => None,
    }
}

fn load(toml: &str) -> Result<Config, lookout::config::ConfigError> {
    let owned = format!("{toml}\n[store]\npath = \":memory:\"\n");
    lookout::config::from_str(&owned, Path::new("lookout.toml"), &env)
}

fn config(toml: &str) -> Config {
    load(toml).unwrap_or_else(|e| panic!("config should load: {e}\n{toml}"))
}

/// One OAuth2 check per `(name, url)`, all with the same client.
fn checks(idp: &Idp, extra: &str, entries: &[(&str, &str)]) -> String {
    let mut out = String::from("[secrets]\nidp = { env = \"IDP_CLIENT_SECRET\" }\n");
    for (name, url) in entries {
        out.push_str(&format!(
            r#"
[[checks]]
name = "{name}"
url = "{url}"
timeout = "3s"
auth = {{ scheme = "oauth2_client_credentials", token_url = "{}", client_id = "{CLIENT_ID}", secret = "idp"{extra} }}
"#,
            idp.token_url()
        ));
    }
    out
}

async fn run(runner: &Runner, cfg: &Config, name: &str) -> CheckResult {
    let check = cfg
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}"));
    runner.check(check, Tick::now()).await
}

fn passed(r: &CheckResult) -> bool {
    r.outcome.is_success()
}

/// Neither the client secret (any 8 of its characters, plain or in Basic's
/// base64) nor any issued token (its shared tail) is in `text`.
fn assert_clean(what: &str, text: &str) {
    let pieces = |s: &str| -> Vec<String> {
        let c: Vec<char> = s.chars().collect();
        c.windows(8).map(|w| w.iter().collect()).collect()
    };
    for piece in pieces(CLIENT_SECRET).iter().chain(&pieces(TOKEN_TAIL)) {
        assert!(
            !text.contains(piece.as_str()),
            "{what} holds {piece:?}: {text}"
        );
    }
    // As written, and form-encoded first, as RFC 6749's Basic sends it.
    let sent = |s: &str| -> String { url::form_urlencoded::byte_serialize(s.as_bytes()).collect() };
    for pair in [
        format!("{CLIENT_ID}:{CLIENT_SECRET}"),
        format!("{}:{}", sent(CLIENT_ID), sent(CLIENT_SECRET)),
    ] {
        let basic = STANDARD.encode(pair);
        for piece in pieces(&basic) {
            assert!(
                !text.contains(piece.as_str()),
                "{what} holds {piece:?} of Basic: {text}"
            );
        }
    }
    for piece in pieces(&sent(CLIENT_SECRET)) {
        assert!(
            !text.contains(piece.as_str()),
            "{what} holds {piece:?} of the form: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_fetched_once_cached_and_sent_as_bearer() {
    let idp = start_idp(Some(3600)).await;
    let cfg = config(&checks(&idp, "", &[("api", &idp.url("/api"))]));
    let runner = Runner::new(&cfg).unwrap();
    for _ in 0..3 {
        let r = run(&runner, &cfg, "api").await;
        assert!(passed(&r), "{:?}", r.outcome);
    }
    assert_eq!(idp.fetches(), 1, "one fetch for three runs");
    assert_eq!(idp.tokens().len(), 1);
    let requests = idp.requests();
    let form = &requests[0].form;
    assert_eq!(
        form.get("grant_type").map(String::as_str),
        Some("client_credentials")
    );
    assert!(
        !form.contains_key("scope") && !form.contains_key("client_secret"),
        "{form:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_fetched_again_before_it_expires() {
    // A 5 s token and a 3 s timeout: reused while it outlives the run's
    // timeout, then fetched again while it is still valid (2.5 s left). The
    // target refuses an expired token, so every run passing means none was
    // sent late.
    let idp = start_idp(Some(5)).await;
    let cfg = config(&checks(&idp, "", &[("api", &idp.url("/api"))]));
    let runner = Runner::new(&cfg).unwrap();
    let first = run(&runner, &cfg, "api").await;
    assert!(passed(&first), "{:?}", first.outcome);
    let again = run(&runner, &cfg, "api").await;
    assert!(passed(&again), "{:?}", again.outcome);
    let early = idp.fetches();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let later = run(&runner, &cfg, "api").await;
    assert!(passed(&later), "{:?}", later.outcome);
    assert_eq!(early, 1, "the second run reused the token");
    assert_eq!(
        idp.fetches(),
        2,
        "the third run, with 2.5 s of the token left but a 3 s timeout, fetched anew"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_checks_of_one_client_share_one_fetch() {
    let idp = start_idp(Some(3600)).await;
    idp.state.delay_ms.store(400, Ordering::SeqCst);
    let cfg = config(&checks(
        &idp,
        "",
        &[
            ("a", &idp.url("/api")),
            ("b", &idp.url("/api")),
            ("c", &idp.url("/api")),
        ],
    ));
    let runner = Runner::new(&cfg).unwrap();
    let (a, b, c) = tokio::join!(
        run(&runner, &cfg, "a"),
        run(&runner, &cfg, "b"),
        run(&runner, &cfg, "c")
    );
    for r in [a, b, c] {
        assert!(passed(&r), "{:?}", r.outcome);
    }
    assert_eq!(idp.fetches(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_token_endpoint_is_a_token_failure_with_its_reason() {
    let idp = start_idp(Some(3600)).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = idp.token_url();
    let cases: Vec<(Mode, Option<String>, String)> = vec![
        (
            Mode::Unauthorized,
            None,
            format!(
                "token endpoint {url} answered 401: invalid_client: Client authentication failed"
            ),
        ),
        (
            Mode::ServerError,
            None,
            format!("token endpoint {url} answered 500: upstream idp down"),
        ),
        (
            Mode::Garbage,
            None,
            format!("token endpoint {url} answered 200: the body is not JSON"),
        ),
        (
            Mode::Redirect,
            None,
            format!("token endpoint {url} answered 302 (a redirect"),
        ),
        (
            Mode::Silent,
            None,
            format!("token endpoint {url}: timed out after 1s"),
        ),
        (
            Mode::Echo,
            None,
            format!("token endpoint {url} answered 401: bad client: Basic "),
        ),
        (
            Mode::Ok,
            Some(format!("http://127.0.0.1:{closed}/token")),
            format!("token endpoint http://127.0.0.1:{closed}/token: connection failed: "),
        ),
    ];
    let mut failures = Vec::new();
    for (mode, token_url, want) in &cases {
        idp.set_mode(*mode);
        let toml = format!(
            r#"[secrets]
idp = {{ env = "IDP_CLIENT_SECRET" }}
[[checks]]
name = "api"
url = "{}"
timeout = "1s"
auth = {{ scheme = "oauth2_client_credentials", token_url = "{}", client_id = "{CLIENT_ID}", secret = "idp" }}
"#,
            idp.url("/api"),
            token_url.clone().unwrap_or_else(|| idp.token_url())
        );
        let cfg = config(&toml);
        let runner = Runner::new(&cfg).unwrap();
        let r = run(&runner, &cfg, "api").await;
        match &r.outcome {
            Outcome::Failure {
                kind: FailureKind::Token,
                reason,
            } if reason.starts_with(want.as_str()) && reason.chars().count() <= 161 => {
                assert_clean("reason", reason);
            }
            other => failures.push(format!(
                "{mode:?}: {other:?}, expected a token failure starting {want:?}"
            )),
        }
    }
    assert_table_passed(&failures, cases.len());

    // With the secret in the form (client_auth = "body"), an endpoint that
    // echoes the form shows none of it either.
    idp.set_mode(Mode::Echo);
    let cfg = config(&checks(
        &idp,
        r#", client_auth = "body""#,
        &[("api", &idp.url("/api"))],
    ));
    let r = run(&Runner::new(&cfg).unwrap(), &cfg, "api").await;
    match &r.outcome {
        Outcome::Failure {
            kind: FailureKind::Token,
            reason,
        } if reason.contains("client_secret=") => assert_clean("reason", reason),
        other => panic!("{other:?}: expected the echoed form in a token failure"),
    }

    // A failure is not remembered: once the endpoint recovers, the next
    // run gets a token.
    idp.set_mode(Mode::Unauthorized);
    let cfg = config(&checks(&idp, "", &[("api", &idp.url("/api"))]));
    let runner = Runner::new(&cfg).unwrap();
    assert!(!passed(&run(&runner, &cfg, "api").await));
    idp.set_mode(Mode::Ok);
    let r = run(&runner, &cfg, "api").await;
    assert!(passed(&r), "{:?}", r.outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_authentication_is_basic_or_in_the_body_as_configured() {
    let idp = start_idp(Some(3600)).await;
    let mut toml = checks(
        &idp,
        r#", scopes = ["read", "write"], audience = "https://api.example/""#,
        &[("basic", &idp.url("/api"))],
    );
    toml.push_str(&format!(
        r#"
[[checks]]
name = "body"
url = "{}"
auth = {{ scheme = "oauth2_client_credentials", token_url = "{}", client_id = "{CLIENT_ID}", secret = "idp", client_auth = "body" }}
"#,
        idp.url("/api"),
        idp.token_url()
    ));
    let cfg = config(&toml);
    let runner = Runner::new(&cfg).unwrap();
    let r = run(&runner, &cfg, "basic").await;
    assert!(passed(&r), "{:?}", r.outcome);
    let r = run(&runner, &cfg, "body").await;
    assert!(passed(&r), "{:?}", r.outcome);
    // Two clients (the scopes and the client auth differ): two fetches.
    let requests = idp.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let (basic, body) = (&requests[0], &requests[1]);
    assert!(
        basic
            .authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Basic ")),
        "{basic:?}"
    );
    assert!(!basic.form.contains_key("client_secret"), "{basic:?}");
    assert_eq!(
        basic.form.get("scope").map(String::as_str),
        Some("read write")
    );
    assert_eq!(
        basic.form.get("audience").map(String::as_str),
        Some("https://api.example/")
    );
    assert_eq!(body.authorization, None, "{body:?}");
    assert_eq!(
        body.form.get("client_id").map(String::as_str),
        Some(CLIENT_ID)
    );
    assert!(!body.form.contains_key("scope"), "{body:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_stays_with_the_endpoint_and_the_token_with_the_origin() {
    let idp = start_idp(Some(3600)).await;
    let other = start_target().await;
    let away = format!("{}?to={}", idp.url("/away"), other.url("/echo"));
    let target = start_target().await;
    let cfg = config(&checks(
        &idp,
        "",
        &[("away", &away), ("plain", &target.url("/echo"))],
    ));
    let runner = Runner::new(&cfg).unwrap();
    let r = run(&runner, &cfg, "away").await;
    assert!(passed(&r), "{:?}", r.outcome);
    assert_eq!(r.redirects, 1);
    let r = run(&runner, &cfg, "plain").await;
    assert!(passed(&r), "{:?}", r.outcome);
    let token = idp.tokens().pop().unwrap();

    let hop = other.seen_on("/echo");
    assert_eq!(hop.len(), 1);
    assert_eq!(hop[0].header("authorization"), None, "{hop:?}");
    assert_clean("the other origin's request", &hop[0].all_text());

    let seen = target.seen_on("/echo");
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );
    // The target got the token and nothing of the client secret.
    let text = seen[0].all_text().replace(&token, "");
    assert_clean("the target's request", &text);
}

/// The reason, the API and the page show no form of a token the target
/// echoes (in its body, percent-encoded, and in a header), nor of the
/// client secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_the_target_echoes_is_redacted_in_the_reason_and_the_api() {
    let idp = start_idp(Some(3600)).await;
    let mut toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[defaults]\ninterval = \"1h\"\nrun_at_start = true\n{}",
        checks(
            &idp,
            "",
            &[
                ("echo-body", &idp.url("/echo")),
                ("echo-header", &idp.url("/echo"))
            ]
        )
    );
    toml = toml.replacen(
        "name = \"echo-header\"",
        "name = \"echo-header\"\nexpect = { status = [403], headers = [{ name = \"x-echo\", equals = \"nothing\" }] }",
        1,
    );
    let daemon = lookout::daemon::Daemon::start(config(&toml)).await.unwrap();
    let api = format!("http://{}/api/v1/status", daemon.addr);
    let status: serde_json::Value = eventually(Duration::from_secs(20), async || {
        let v: serde_json::Value = reqwest::get(&api).await.ok()?.json().await.ok()?;
        let reasons: Vec<&str> = v["checks"]
            .as_array()?
            .iter()
            .filter_map(|c| c["reason"].as_str())
            .collect();
        (reasons.len() == 2).then_some(v.clone())
    })
    .await;
    let token = idp.tokens().pop().unwrap();
    let text = status.to_string();
    for check in status["checks"].as_array().unwrap() {
        let reason = check["reason"].as_str().unwrap();
        assert!(reason.contains("[redacted sha256:"), "{reason}");
        assert_eq!(
            check["outcome"],
            if check["name"] == "echo-body" {
                "status"
            } else {
                "header"
            }
        );
        assert_eq!(check["auth"]["scheme"], "oauth2_client_credentials");
    }
    assert!(!text.contains(&token[..12]), "{text}");
    assert_clean("the API", &text);
    let page = reqwest::get(format!("http://{}/", daemon.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_clean("the page", &page);
    let metrics = daemon.recorder.render_metrics();
    assert_clean("/metrics", &metrics);
    daemon.shutdown().await;
}

// ---------------------------------------------------------------------------
// Credential expiry

fn expiry_samples(metrics: &str) -> Vec<(String, String, String, f64)> {
    parse(metrics)
        .samples
        .iter()
        .filter(|s| s.metric == "lookout_credential_expiry_timestamp_seconds")
        .map(|s| {
            let v = match s.value {
                prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            };
            (
                s.labels.get("check").unwrap_or_default().to_owned(),
                s.labels.get("credential").unwrap_or_default().to_owned(),
                s.labels.get("source").unwrap_or_default().to_owned(),
                v,
            )
        })
        .collect()
}

fn fingerprint(value: &str) -> String {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(value.as_bytes());
    format!(
        "sha256:{}",
        d[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_expiry_is_exported_for_jwts_and_declared_keys_only() {
    let target = start_target().await;
    let exp = 1_900_000_000_i64;
    let good = jwt(&serde_json::json!({"sub": "svc", "exp": exp}));
    let garbage = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode("{}"),
        URL_SAFE_NO_PAD.encode("not json at all"),
        URL_SAFE_NO_PAD.encode("sig")
    );
    let url = target.url("/echo");
    let toml = format!(
        r#"[secrets]
plain = {{ env = "PLAIN_KEY", expires = "2027-03-01T00:00:00Z" }}
[[checks]]
name = "jwt"
url = "{url}"
auth = {{ scheme = "bearer", value = "{good}" }}
[[checks]]
name = "declared"
url = "{url}"
auth = {{ scheme = "api_key", secret = "plain" }}
[[checks]]
name = "opaque"
url = "{url}"
auth = {{ scheme = "bearer", value = "opaque-Zx81Qm4Lk-value" }}
[[checks]]
name = "garbage"
url = "{url}"
auth = {{ scheme = "bearer", value = "{garbage}" }}
"#
    );
    let cfg = config(&toml);
    let recorder = Recorder::new(&cfg);
    let runner = Runner::new(&cfg).unwrap();
    for check in &cfg.checks {
        let r = runner.check(check, Tick::now()).await;
        assert!(passed(&r), "{}: {:?}", check.name, r.outcome);
        recorder.record(check, r);
    }
    let mut got = expiry_samples(&recorder.render_metrics());
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let declared = chrono::DateTime::parse_from_rfc3339("2027-03-01T00:00:00Z")
        .unwrap()
        .timestamp() as f64;
    assert_eq!(
        got,
        vec![
            (
                "declared".into(),
                fingerprint("plain-key-Zx81Qm4Lk"),
                "declared".into(),
                declared
            ),
            (
                "jwt".into(),
                fingerprint(&good),
                "configured".into(),
                exp as f64
            ),
        ]
    );
    // The API says so too, with the days left.
    let view = lookout::serve::view::build(&recorder.board(), &cfg.redactor);
    let jwt_check = view.checks.iter().find(|c| c.name == "jwt").unwrap();
    let auth = jwt_check.auth.as_ref().unwrap();
    assert_eq!(auth.key_expires_at.map(|t| t.timestamp()), Some(exp));
    assert!(auth.key_expires_in_days.is_some_and(|d| d > 0));
    // And the page's auth line.
    let shown = jwt_check.auth_text();
    assert!(
        shown.contains(", expires 2030-03-17 17:46 UTC (in "),
        "{shown}"
    );
    let declared_check = view.checks.iter().find(|c| c.name == "declared").unwrap();
    let shown = declared_check.auth_text();
    assert!(
        shown.contains(", expires 2027-03-01 00:00 UTC ("),
        "{shown}"
    );
    let opaque = view.checks.iter().find(|c| c.name == "opaque").unwrap();
    assert_eq!(opaque.auth.as_ref().unwrap().key_expires_at, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetched_jwt_exports_its_expiry_and_an_opaque_token_none() {
    let idp = start_idp(Some(600)).await;
    idp.state.jwt.store(true, Ordering::SeqCst);
    let cfg = config(&checks(&idp, "", &[("api", &idp.url("/api"))]));
    let recorder = Recorder::new(&cfg);
    let runner = Runner::new(&cfg).unwrap();
    let r = run(&runner, &cfg, "api").await;
    assert!(passed(&r), "{:?}", r.outcome);
    recorder.record(&cfg.checks[0], r);
    let got = expiry_samples(&recorder.render_metrics());
    assert_eq!(got.len(), 1, "{got:?}");
    let (check, credential, source, at) = &got[0];
    assert_eq!((check.as_str(), source.as_str()), ("api", "fetched"));
    // Named by the client, so a refreshed token keeps the series.
    assert_eq!(*credential, fingerprint(CLIENT_SECRET));
    assert!((*at - (now_unix() + 600) as f64).abs() < 120.0, "{at}");

    let idp = start_idp(Some(600)).await;
    let cfg = config(&checks(&idp, "", &[("api", &idp.url("/api"))]));
    let recorder = Recorder::new(&cfg);
    let runner = Runner::new(&cfg).unwrap();
    let r = run(&runner, &cfg, "api").await;
    assert!(passed(&r), "{:?}", r.outcome);
    recorder.record(&cfg.checks[0], r);
    let metrics = recorder.render_metrics();
    assert!(expiry_samples(&metrics).is_empty(), "{metrics}");
    let scrape = parse(&metrics);
    assert_eq!(
        gauge(&scrape, "probe_success", &[("check", "api")]),
        Some(1.0)
    );
}

// ---------------------------------------------------------------------------
// Config errors

#[test]
fn oauth2_config_errors_name_the_field() {
    let head = "[secrets]\nidp = { env = \"IDP_CLIENT_SECRET\" }\n[[checks]]\nname = \"a\"\nurl = \"https://api.example/\"\n";
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "no token_url",
            r#"auth = { scheme = "oauth2_client_credentials", client_id = "c", secret = "idp" }"#,
            "checks[0].auth",
            "needs token_url",
        ),
        (
            "no client_id",
            r#"auth = { scheme = "oauth2_client_credentials", token_url = "https://idp.example/token", secret = "idp" }"#,
            "checks[0].auth",
            "needs client_id",
        ),
        (
            "no secret",
            r#"auth = { scheme = "oauth2_client_credentials", token_url = "https://idp.example/token", client_id = "c" }"#,
            "checks[0].auth",
            "needs secret",
        ),
        (
            "http token_url off loopback",
            r#"auth = { scheme = "oauth2_client_credentials", token_url = "http://idp.example/token", client_id = "c", secret = "idp" }"#,
            "checks[0].auth.token_url",
            "plain http: the client secret would cross the network in clear",
        ),
        (
            "token_url not a URL",
            r#"auth = { scheme = "oauth2_client_credentials", token_url = "idp/token", client_id = "c", secret = "idp" }"#,
            "checks[0].auth.token_url",
            "invalid URL",
        ),
        (
            "unknown secret",
            r#"auth = { scheme = "oauth2_client_credentials", token_url = "https://idp.example/token", client_id = "c", secret = "ipd" }"#,
            "checks[0].auth",
            "unknown secret \"ipd\"; [secrets] defines: idp",
        ),
        (
            "scopes not a list",
            r#"auth = { scheme = "oauth2_client_credentials", token_url = "https://idp.example/token", client_id = "c", secret = "idp", scopes = "read write" }"#,
            "checks[0].auth.scopes",
            "invalid type: string \"read write\", expected a sequence",
        ),
        (
            "a scope with a space",
            r#"auth = { scheme = "oauth2_client_credentials", token_url = "https://idp.example/token", client_id = "c", secret = "idp", scopes = ["read write"] }"#,
            "checks[0].auth.scopes",
            "is not one scope",
        ),
        (
            "client_secret instead of secret",
            r#"auth = { scheme = "oauth2_client_credentials", token_url = "https://idp.example/token", client_id = "c", client_secret = "idp" }"#,
            "checks[0].auth",
            "client_secret is not a field here: name the client secret's [secrets] entry with secret",
        ),
        (
            "unknown client_auth",
            r#"auth = { scheme = "oauth2_client_credentials", token_url = "https://idp.example/token", client_id = "c", secret = "idp", client_auth = "jwt" }"#,
            "checks[0].auth.client_auth",
            "unknown client_auth \"jwt\"",
        ),
        (
            "token_url on another scheme",
            r#"auth = { scheme = "bearer", secret = "idp", token_url = "https://idp.example/token" }"#,
            "checks[0].auth",
            "token_url is only for scheme \"oauth2_client_credentials\", not \"bearer\"",
        ),
        (
            "a template in token_url",
            r#"auth = { scheme = "oauth2_client_credentials", token_url = "https://{{ idp }}/token", client_id = "c", secret = "idp" }"#,
            "checks[0].auth.token_url",
            "auth's scheme, header, param, username and secret",
        ),
    ];
    let mut failures = Vec::new();
    for (name, auth, field, message) in cases {
        match load(&format!("{head}{auth}\n")) {
            Ok(_) => failures.push(format!("{name}: loaded")),
            Err(e) => {
                let text = e.to_string();
                let ok = text.starts_with("lookout.toml:6:")
                    && text.contains(&format!(" {field}: "))
                    && text.contains(message)
                    && !text.contains(CLIENT_SECRET);
                if !ok {
                    failures.push(format!("{name}: {text}"));
                }
            }
        }
    }
    // `expires` that is not RFC 3339.
    match load("[secrets]\nk = { env = \"PLAIN_KEY\", expires = \"next march\" }\n") {
        Err(e)
            if e.to_string().contains("lookout.toml:2:")
                && e.to_string()
                    .contains("secrets.k.expires: \"next march\" is not an RFC 3339 time") => {}
        other => failures.push(format!("expires: {:?}", other.map(|_| ()))),
    }
    assert_table_passed(&failures, cases.len() + 1);
}

#[test]
fn oauth2_loads_on_loopback_http_in_flows_and_defaults() {
    let cfg = config(
        r#"[secrets]
idp = { env = "IDP_CLIENT_SECRET" }
[defaults]
auth = { scheme = "oauth2_client_credentials", token_url = "http://localhost:8080/token", client_id = "c", secret = "idp" }
[[checks]]
name = "a"
url = "https://api.example/"
[[flows]]
name = "f"
[[flows.steps]]
name = "s"
url = "https://api.example/x"
auth = { scheme = "oauth2_client_credentials", token_url = "http://[::1]:8080/token", client_id = "c", value = "literal-client-secret", client_auth = "body" }
"#,
    );
    let auth = cfg.checks[0].probe.auth().unwrap();
    assert_eq!(auth.scheme(), "oauth2_client_credentials");
    assert_eq!(
        auth.placement().unwrap(),
        "header Authorization (OAuth2 token from http://localhost:8080)"
    );
    assert_eq!(
        auth.secret().unwrap().fingerprint(),
        fingerprint(CLIENT_SECRET)
    );
    assert_eq!(
        cfg.flows[0].steps[0].request.auth.scheme(),
        "oauth2_client_credentials"
    );
    // Both client secrets are redacted in whatever a target says.
    let text = format!("{CLIENT_SECRET} literal-client-secret");
    let shown = cfg.redactor.redact(&text);
    assert!(
        !shown.contains("s3cret") && !shown.contains("literal-"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_steps_get_their_token_too() {
    let idp = start_idp(Some(3600)).await;
    let toml = format!(
        r#"[secrets]
idp = {{ env = "IDP_CLIENT_SECRET" }}
[[flows]]
name = "f"
auth = {{ scheme = "oauth2_client_credentials", token_url = "{token_url}", client_id = "{CLIENT_ID}", secret = "idp" }}
[[flows.steps]]
name = "one"
url = "{api}"
[[flows.steps]]
name = "two"
url = "{api}"
"#,
        token_url = idp.token_url(),
        api = idp.url("/api"),
    );
    let cfg = config(&toml);
    let runner = Runner::new(&cfg).unwrap();
    let result = runner.flow(&cfg.flows[0], Tick::now()).await;
    assert!(
        result.steps.iter().all(|s| s.passed()),
        "{:?}",
        result.steps
    );
    assert_eq!(idp.fetches(), 1);

    idp.set_mode(Mode::Unauthorized);
    let cfg = config(&toml);
    let runner = Runner::new(&cfg).unwrap();
    let result = runner.flow(&cfg.flows[0], Tick::now()).await;
    match &result.summary().outcome {
        Outcome::Failure {
            kind: FailureKind::Token,
            reason,
        } => assert!(reason.contains("answered 401: invalid_client"), "{reason}"),
        other => panic!("{other:?}"),
    }
}
