//! A target server of our own on 127.0.0.1:0 that records what it was sent,
//! helpers to load configs and run one probe, and [`tool`]: the one way a
//! test finds an external tool (or skips, or fails under
//! `LOOKOUT_REQUIRE_TOOLS=1`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use lookout::config::Config;
use lookout::judge::judge_target;
use lookout::outcome::Outcome;
use lookout::probe::{Observation, Prober};

/// The secret the tests configure; it must never show up anywhere.
pub const TEST_SECRET: &str = "hk_test_Zq8Xw3Vb9Nc2Lm4Kp7Rt";

/// One request as the target saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub peer_port: u16,
    /// When the request arrived.
    pub at: std::time::Instant,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Everything about the request that could carry a credential.
    pub fn all_text(&self) -> String {
        let mut out = format!("{}?{}\n", self.path, self.query);
        for (k, v) in &self.headers {
            out.push_str(&format!("{k}: {v}\n"));
        }
        out
    }
}

#[derive(Clone, Default)]
pub struct Shared {
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub in_flight: Arc<AtomicUsize>,
    pub max_in_flight: Arc<AtomicUsize>,
}

pub struct Target {
    pub addr: SocketAddr,
    pub shared: Shared,
}

impl Target {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    pub fn seen_on(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }
}

/// Serves `app` on 127.0.0.1:0 (with the peer's address for handlers that
/// ask) until the test ends; its address.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// Waits for `child` at most `limit`, killing it and failing the test
/// past that: no test waits on a process forever.
pub fn wait_bounded(
    child: &mut std::process::Child,
    limit: Duration,
    what: &str,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub async fn start_target() -> Target {
    let shared = Shared::default();
    let app = Router::new()
        .route("/echo", any(echo))
        .route("/status/{code}", any(status))
        .route("/slow/{ms}", get(slow))
        .route("/hang", get(hang))
        .route("/huge", get(huge))
        .route("/redirect", any(redirect))
        .route("/echo-key", get(echo_key))
        .route("/validate", post(validate))
        .layer(middleware::from_fn_with_state(shared.clone(), record))
        .with_state(shared.clone());
    let addr = serve(app).await;
    Target { addr, shared }
}

async fn record(State(shared): State<Shared>, req: Request, next: Next) -> Response {
    let peer_port = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(0, |c| c.0.port());
    let seen = Seen {
        path: req.uri().path().to_owned(),
        query: req.uri().query().unwrap_or("").to_owned(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        peer_port,
        at: std::time::Instant::now(),
    };
    shared.seen.lock().unwrap().push(seen);
    next.run(req).await
}

async fn echo() -> &'static str {
    "echo ok"
}

async fn status(
    UrlPath(code): UrlPath<u16>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT);
    match q.get("detail") {
        Some(detail) => (code, axum::Json(serde_json::json!({ "detail": detail }))).into_response(),
        None => (code, q.get("text").cloned().unwrap_or_default()).into_response(),
    }
}

async fn slow(State(shared): State<Shared>, UrlPath(ms): UrlPath<u64>) -> &'static str {
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    "slow ok"
}

/// Accepts and never answers (within any test's time).
async fn hang() -> &'static str {
    tokio::time::sleep(Duration::from_secs(600)).await;
    "too late"
}

async fn huge() -> Response {
    Body::from(vec![b'x'; 5 * 1024 * 1024]).into_response()
}

async fn redirect(Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
    // `?loop` redirects to itself forever.
    let to = if q.contains_key("loop") {
        "/redirect?loop".to_owned()
    } else {
        q.get("to").cloned().unwrap_or_else(|| "/echo".into())
    };
    // `?status=307` (or 308) keeps the method and body.
    let status = q
        .get("status")
        .and_then(|s| s.parse().ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::FOUND);
    (status, [(header::LOCATION, to)]).into_response()
}

/// Rejects the key and echoes it back, as careless services do.
async fn echo_key(
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let key = headers
        .get("x-api-key")
        .or_else(|| headers.get("authorization"))
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .or_else(|| q.get("api_key").cloned())
        .unwrap_or_default();
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(serde_json::json!({ "detail": format!("key {key} is not valid for service 'ml-platform'") })),
    )
        .into_response()
}

/// Like the auth service in the user reports: the key is registered for
/// service 'platform' only.
async fn validate(headers: HeaderMap, axum::Json(body): axum::Json<serde_json::Value>) -> Response {
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(TEST_SECRET) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({ "detail": "Invalid or expired API key" })),
        )
            .into_response();
    }
    let service = body["service_id"].as_str().unwrap_or("");
    if service == "platform" {
        axum::Json(serde_json::json!({ "service_id": "platform", "valid": true })).into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({ "detail": format!(
                "API key does not have access to service '{service}'. This key is registered for service 'platform'."
            ) })),
        )
            .into_response()
    }
}

/// A config from TOML text; `PLATFORM_API_KEY` is the only environment variable.
pub fn config(toml: &str) -> Config {
    try_config(toml).unwrap_or_else(|e| panic!("config should load: {e}\n{toml}"))
}

pub fn try_config(toml: &str) -> Result<Config, lookout::config::ConfigError> {
    // Tests keep history in memory unless they say otherwise: no test
    // writes a database into the source tree.
    let owned;
    let toml = if toml.contains("[store]") {
        toml
    } else {
        owned = format!("{toml}\n[store]\npath = \":memory:\"\n");
        &owned
    };
    lookout::config::from_str(toml, Path::new("test.toml"), &|name| {
        (name == "PLATFORM_API_KEY").then(|| TEST_SECRET.to_owned())
    })
}

/// Runs the named check once and judges it.
pub async fn probe(config: &Config, name: &str) -> (Observation, Outcome) {
    let prober = Prober::new(&config.tls_profiles).expect("TLS profiles build");
    let check = config
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check named {name}"));
    let obs = prober.probe(&check.probe, &config.redactor).await;
    let outcome = judge_target(&check.probe, &check.expect, &obs, &config.redactor);
    (obs, outcome)
}

/// Polls `f` every 20 ms until it returns Some, for at most `limit`.
pub async fn eventually<T>(limit: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Fails with every failed case of a table at once, not just the first.
pub fn assert_table_passed(failures: &[String], cases: usize) {
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A TLS server config with a fresh self-signed certificate for `names`,
/// valid from `not_before` to `not_after` (year, month, day), and the
/// certificate's PEM for clients that should trust it.
pub fn self_signed_server(
    names: &[&str],
    not_before: (i32, u8, u8),
    not_after: (i32, u8, u8),
) -> (rustls::ServerConfig, String) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
    params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    let cert = params.self_signed(&key).unwrap();
    let der: CertificateDer<'static> = cert.der().clone();
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![der], key_der)
    .unwrap();
    (config, cert.pem())
}

/// The metric names a PromQL expression selects, from promql-parser's
/// syntax tree: every vector and range selector's name, nothing else.
pub fn promql_metric_names(expr: &str) -> std::collections::BTreeSet<String> {
    use promql_parser::parser::Expr;
    use promql_parser::util::{ExprVisitor, walk_expr};

    struct Names(std::collections::BTreeSet<String>);
    impl ExprVisitor for Names {
        type Error = std::convert::Infallible;
        fn pre_visit(&mut self, e: &Expr) -> Result<bool, Self::Error> {
            let name = match e {
                Expr::VectorSelector(v) => v.name.as_ref(),
                Expr::MatrixSelector(m) => m.vs.name.as_ref(),
                _ => None,
            };
            self.0.extend(name.cloned());
            Ok(true)
        }
    }
    let parsed =
        promql_parser::parser::parse(expr).unwrap_or_else(|e| panic!("not PromQL ({e}): {expr}"));
    let mut names = Names(Default::default());
    let Ok(_) = walk_expr(&mut names, &parsed);
    names.0
}

/// Set to `1` (as `.ci/run` does), a test that would skip for a missing tool
/// fails instead: a green run then means every tool really ran.
pub const REQUIRE_TOOLS: &str = "LOOKOUT_REQUIRE_TOOLS";

fn tools_required() -> bool {
    std::env::var_os(REQUIRE_TOOLS).is_some_and(|v| v == "1")
}

fn executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Where `name` is installed: the project's virtualenv (`target/ci-venv`,
/// from `.ci/setup`), then `PATH`. Never skips or fails; for optional
/// alternatives such as the docker compose plugin.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/ci-venv/bin")
        .join(name);
    if executable(&venv) {
        return Some(venv);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| executable(p))
}

/// The tool a test step (`what`) needs, under the first of `names` that is
/// installed. When none is: a panic under `LOOKOUT_REQUIRE_TOOLS=1`,
/// otherwise `SKIPPED {what}: ...` on stderr and `None`.
pub fn tool_any(names: &[&str], what: &str) -> Option<PathBuf> {
    let found = names.iter().find_map(|n| find_tool(n));
    if found.is_none() {
        skip(
            what,
            &format!("{} is not installed (run .ci/setup)", names.join(" or ")),
        );
    }
    found
}

/// [`tool_any`] with one name.
pub fn tool(name: &str, what: &str) -> Option<PathBuf> {
    tool_any(&[name], what)
}

/// Skips the step `what` because of `why` (a tool missing, or one too old
/// for a flag): says so on stderr, or panics under
/// `LOOKOUT_REQUIRE_TOOLS=1`. Every skip in the tests goes through here.
pub fn skip(what: &str, why: &str) {
    decide_skip(tools_required(), what, why);
}

fn decide_skip(required: bool, what: &str, why: &str) {
    if required {
        panic!("{what}: {why}, and {REQUIRE_TOOLS}=1 forbids skipping it");
    }
    eprintln!("SKIPPED {what}: {why}");
}

mod tests {
    use super::*;

    const NO_SUCH_TOOL: &str = "lookout-test-no-such-tool";

    #[test]
    fn a_missing_tool_is_none_when_tools_are_not_required() {
        assert_eq!(find_tool(NO_SUCH_TOOL), None);
        decide_skip(false, "a step", "it is not installed");
    }

    #[test]
    #[should_panic(expected = "LOOKOUT_REQUIRE_TOOLS=1 forbids skipping it")]
    fn a_missing_tool_fails_when_tools_are_required() {
        decide_skip(true, "a step", "it is not installed");
    }

    #[test]
    fn an_installed_tool_is_found() {
        // `sh` is on every machine these tests run on.
        let sh = find_tool("sh").expect("sh on PATH");
        assert!(sh.is_absolute() && executable(&sh), "{sh:?}");
    }

    /// The whole path, as CI meets it: a test that needs Chromium, run with
    /// an empty PATH, skips and passes without the variable and fails with
    /// it.
    #[test]
    fn require_tools_turns_a_skip_into_a_failure() {
        let run = |require: bool| {
            let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
            cmd.args([
                "--exact",
                "browser::the_page_in_chromium_shows_scores_states_reasons_and_flows",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PATH", "")
            .env_remove(REQUIRE_TOOLS);
            if require {
                cmd.env(REQUIRE_TOOLS, "1");
            }
            let out = cmd.output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.success(), text)
        };
        let (passed, text) = run(false);
        assert!(passed, "{text}");
        assert!(text.contains("SKIPPED browser test: chromium or chromium-browser or google-chrome is not installed"), "{text}");
        assert!(text.contains("1 passed"), "{text}");
        let (passed, text) = run(true);
        assert!(!passed, "{text}");
        assert!(
            text.contains("LOOKOUT_REQUIRE_TOOLS=1 forbids skipping it"),
            "{text}"
        );
        assert!(text.contains("1 failed"), "{text}");
    }

    /// `.ci/run` runs exactly the README's test command, with tools
    /// required.
    #[test]
    fn ci_runs_the_readme_test_command_with_tools_required() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        let command = readme
            .split("Run all tests:")
            .nth(1)
            .and_then(|rest| rest.split("```sh\n").nth(1))
            .and_then(|block| block.lines().next())
            .expect("README: a sh block after \"Run all tests:\"");
        let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
        let runs: Vec<&str> = ci.lines().filter(|l| l.contains("cargo test")).collect();
        assert_eq!(
            runs,
            [format!("{REQUIRE_TOOLS}=1 {command} 2>&1 | tee \"$log\"").as_str()],
            "{ci}"
        );
    }
}

/// A real Prometheus on 127.0.0.1 (Debian's `prometheus`), killed on drop.
pub struct Prometheus {
    child: std::process::Child,
    log: std::path::PathBuf,
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Labels and value of each series an instant query answered.
pub type Samples = Vec<(std::collections::BTreeMap<String, String>, f64)>;

impl Prometheus {
    /// Starts `bin` with `config` (YAML; relative paths resolve in a
    /// temporary directory) and `args`, on a free port, and waits (20 s at
    /// most) until it is ready.
    pub async fn start(bin: &Path, config: &str, args: &[&str]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.path().join("prometheus.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(bin)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(args)
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("prometheus starts");
        let mut prom = Prometheus {
            child,
            log,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = prom.child.try_wait().unwrap() {
                panic!("prometheus exited with {status}:\n{}", prom.log_tail());
            }
            let ready = reqwest::get(format!("{}/-/ready", prom.base)).await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return prom;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "prometheus not ready:\n{}",
                prom.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// An instant query's series; panics on an API error.
    pub async fn query(&self, q: &str) -> Samples {
        let url =
            url::Url::parse_with_params(&format!("{}/api/v1/query", self.base), &[("query", q)])
                .unwrap();
        let text = reqwest::get(url).await.unwrap().text().await.unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["status"], "success", "{q}: {v}\n{}", self.log_tail());
        v["data"]["result"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        let labels = r["metric"]
                            .as_object()
                            .map(|m| {
                                m.iter()
                                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                                    .collect()
                            })
                            .unwrap_or_default();
                        let value = r["value"][1].as_str().and_then(|s| s.parse().ok());
                        (labels, value.unwrap_or(f64::NAN))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The real binary running `lookout run --log-format json` on a config,
/// with its stderr (the log) collected.
pub struct Running {
    child: std::process::Child,
    /// `127.0.0.1:PORT`, from the "lookout is running" line.
    pub addr: String,
    log: Option<std::thread::JoinHandle<String>>,
    /// Its STATE_DIRECTORY, so a config without `[store] path` keeps its
    /// history here, not in the user's state directory.
    _state: tempfile::TempDir,
}

impl Running {
    /// Starts it with `env` added, and waits (15 s at most) until it says
    /// where it listens.
    pub fn start(config: &Path, env: &[(&str, &str)]) -> Running {
        use std::io::BufRead as _;
        let state = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lookout"))
            .args(["run", "--log-format", "json", "--config"])
            .arg(config)
            .env("STATE_DIRECTORY", state.path())
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let log = std::thread::spawn(move || {
            let mut all = String::new();
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("lookout is running")
                    && let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && let Some(addr) = v["fields"]["addr"].as_str()
                {
                    let _ = addr_tx.send(addr.to_owned());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        match addr_rx.recv_timeout(Duration::from_secs(15)) {
            Ok(addr) => Running {
                child,
                addr,
                log: Some(log),
                _state: state,
            },
            Err(_) => {
                let _ = child.kill();
                panic!("lookout did not start: {}", log.join().unwrap_or_default());
            }
        }
    }

    /// SIGTERM, then its exit (within 20 s), stdout and log.
    pub async fn stop(mut self) -> (std::process::ExitStatus, String, String) {
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        let exit = eventually(Duration::from_secs(20), async || {
            self.child.try_wait().unwrap()
        })
        .await;
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            std::io::Read::read_to_string(&mut out, &mut stdout).unwrap();
        }
        let log = self
            .log
            .take()
            .map(|l| l.join().unwrap_or_default())
            .unwrap_or_default();
        (exit, stdout, log)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTPS server on 127.0.0.1 with `config`: it reads each request's
/// head (64 reads at most) and answers `200 tls ok`, for `connections`
/// connections, then stops accepting. Returns its port.
pub async fn serve_https(config: rustls::ServerConfig, connections: usize) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        for _ in 0..connections {
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
                for _ in 0..64 {
                    if got.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
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
    port
}
