//! The users' two hand-written reports, replayed: `examples/seed-replay.toml`
//! against a local mock of their services (the API behind the load
//! balancer, the auth service, MLflow inside the cluster), run by the real
//! binary as the README says (`lookout report --var …`). Before the auth
//! fix and after it, the verdicts are the reports' figures: 45.5 % → 54.5 %
//! of 11, 5 % → 10 % of 20, 1/4 stages, the `ml-platform` detail, and the
//! diagnosis they made by probing from outside and from inside.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::support::{serve, wait_bounded};

const KEY: &str = "fake-seed-replay-key-not-a-real-one-0123";

/// The six routes the API has (they answer 401 without a valid key).
const EXISTING: [&str; 6] = [
    "/api/models/register",
    "/api/models",
    "/api/health/mlflow",
    "/api/health/mlflow/detailed",
    "/api/health",
    "/api/2.0/mlflow/experiments/search",
];

#[derive(Clone, Default)]
struct Mock {
    /// Before the auth service was fixed: it answers 502, and so does the
    /// API's own health route behind it.
    broken_auth: Arc<AtomicBool>,
    /// When the login route was last hit: at most 5 a second.
    logins: Arc<Mutex<Vec<Instant>>>,
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({ "detail": "Invalid or expired API key" })),
    )
        .into_response()
}

fn bad_gateway() -> Response {
    (
        StatusCode::BAD_GATEWAY,
        Html("<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>"),
    )
        .into_response()
}

/// The public API behind the load balancer: its own routes exist and
/// reject the key; `/api/mlflow/*` has no listener rule (404).
async fn api(State(m): State<Mock>, req: Request) -> Response {
    let path = req.uri().path();
    if path == "/api/health" && m.broken_auth.load(Ordering::SeqCst) {
        return bad_gateway();
    }
    if EXISTING.contains(&path) {
        return unauthorized();
    }
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({ "detail": "Not Found" })),
    )
        .into_response()
}

async fn auth_health(State(m): State<Mock>) -> Response {
    if m.broken_auth.load(Ordering::SeqCst) {
        return bad_gateway();
    }
    axum::Json(json!({ "status": "healthy" })).into_response()
}

/// The key is registered for 'platform' only, and (since the update) the
/// key itself is rejected without a service.
async fn validate(headers: HeaderMap, body: String) -> Response {
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(KEY) {
        return unauthorized();
    }
    let service = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["service_id"].as_str().map(str::to_owned));
    match service {
        Some(s) => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "detail": format!(
                "API key does not have access to service '{s}'. This key is registered for service 'platform'. Valid service IDs include: platform, website, prediction-api, ml-platform"
            ) })),
        )
            .into_response(),
        None => unauthorized(),
    }
}

/// Five tries a second, then 429.
async fn login(State(m): State<Mock>) -> Response {
    let now = Instant::now();
    let mut logins = m.logins.lock().unwrap();
    logins.retain(|t| now.duration_since(*t) < Duration::from_secs(1));
    logins.push(now);
    if logins.len() > 5 {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            "slow down",
        )
            .into_response();
    }
    unauthorized()
}

struct Services {
    mock: Mock,
    vars: Vec<String>,
}

async fn start() -> Services {
    let mock = Mock::default();
    let api = serve(Router::new().fallback(api).with_state(mock.clone())).await;
    let auth = serve(
        Router::new()
            .route("/health", get(auth_health))
            .route("/api/v1/keys/validate", post(validate))
            .route("/api/v1/login", post(login))
            .with_state(mock.clone()),
    )
    .await;
    // MLflow itself answers every REST call.
    let mlflow =
        serve(Router::new().fallback(|| async { axum::Json(json!({ "experiments": [] })) })).await;
    Services {
        mock,
        vars: vec![
            format!("api=http://{api}"),
            format!("auth_service=http://{auth}"),
            format!("mlflow=http://{mlflow}"),
        ],
    }
}

/// `lookout report` on the example, as the README runs it.
fn report(dir: &Path, vars: &[String], extra: &[&str]) -> (Option<i32>, String) {
    let mut args = vec!["report".to_owned(), "--config".to_owned(), example()];
    for v in vars {
        args.push("--var".to_owned());
        args.push(v.clone());
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let out = dir.join(format!("out-{}.txt", extra.len()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(&args)
        .env("HOKUSAI_API_KEY", KEY)
        .env("STATE_DIRECTORY", dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("lookout starts");
    let status = wait_bounded(&mut child, Duration::from_secs(60), "lookout report");
    (status.code(), std::fs::read_to_string(out).unwrap())
}

fn example() -> String {
    format!("{}/examples/seed-replay.toml", env!("CARGO_MANIFEST_DIR"))
}

fn group<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name)
        .unwrap_or_else(|| panic!("no group {name}: {report:#}"))
}

fn score(report: &Value, name: &str) -> (u64, u64) {
    let g = group(report, name);
    (g["passing"].as_u64().unwrap(), g["total"].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reports_figures_come_out_of_the_example() {
    let services = start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    let vars = services.vars.clone();

    // Before the auth fix (the first report's "previous test").
    services.mock.broken_auth.store(true, Ordering::SeqCst);
    let (code, before) = {
        let (d, vars) = (d.clone(), vars.clone());
        tokio::task::spawn_blocking(move || report(&d, &vars, &["--format", "json"]))
            .await
            .unwrap()
    };
    assert_eq!(code, Some(0), "{before}");
    let previous = d.join("previous.json");
    std::fs::write(&previous, &before).unwrap();
    let before: Value = serde_json::from_str(&before).unwrap();
    assert_eq!(score(&before, "infrastructure"), (5, 11), "45.5 % of 11");
    assert_eq!(score(&before, "authentication"), (1, 20), "5 % of 20");

    // After it: the second report, compared with the first.
    services.mock.broken_auth.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await; // the login window
    let (code, after) = {
        let (d, vars, previous) = (d.clone(), vars.clone(), previous.display().to_string());
        tokio::task::spawn_blocking(move || {
            report(&d, &vars, &["--format", "json", "--against", &previous])
        })
        .await
        .unwrap()
    };
    assert_eq!(code, Some(0), "{after}");
    let after: Value = serde_json::from_str(&after).unwrap();
    assert_eq!(score(&after, "infrastructure"), (6, 11), "54.5 % of 11");
    assert_eq!(
        group(&after, "infrastructure")["score"]
            .as_f64()
            .map(|s| (s * 1000.0).round()),
        Some(545.0)
    );
    assert_eq!(score(&after, "authentication"), (2, 20), "10 % of 20");
    let passing: Vec<&str> = after["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["group"] == "authentication" && c["ok"] == true)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        passing,
        ["auth health", "login rate limit"],
        "the report's two passes"
    );

    let flow = &after["flows"][0];
    assert_eq!(
        (flow["steps_passed"].as_u64(), flow["steps_total"].as_u64()),
        (Some(1), Some(4)),
        "1/4 stages: {flow:#}"
    );
    let checks = after["checks"].as_array().unwrap();
    let ml_platform = checks
        .iter()
        .find(|c| c["name"] == "key valid for service[service_id=ml-platform]")
        .expect("the ml-platform check");
    assert_eq!(ml_platform["status"], 401);
    assert!(
        ml_platform["reason"]
            .as_str()
            .unwrap()
            .contains("API key does not have access to service 'ml-platform'. This key is registered for service 'platform'"),
        "{ml_platform:#}"
    );
    let mlflow = after["grids"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["title"] == "mlflow experiments")
        .expect("the route comparison");
    assert_eq!(
        mlflow["rows"][0]["diagnosis"],
        "fails via proxy (404), passes via internal (200): the proxy route is missing"
    );
    // The deltas against the previous run, as the second report wrote them.
    let text = serde_json::to_string(&after["comparison"]).unwrap();
    assert!(text.contains("auth health"), "the fix is listed: {text}");

    // The same run as Markdown: the figures as the reports print them.
    let (code, md) = {
        let (d, vars, previous) = (d.clone(), vars.clone(), previous.display().to_string());
        tokio::time::sleep(Duration::from_millis(1100)).await;
        tokio::task::spawn_blocking(move || report(&d, &vars, &["--against", &previous]))
            .await
            .unwrap()
    };
    assert_eq!(code, Some(0), "{md}");
    for want in [
        "| infrastructure | 6/11 | 54.5% | +9.1 points (was 45.5%) |",
        "| authentication | 2/20 | 10.0% | +5.0 points (was 5.0%) |",
        "`model registration` (ml-platform): 1/4 stages (25%)",
        "✅ `auth health` (authentication): 502 → 200, fixed",
        "service 'ml-platform'",
        "the proxy route is missing",
    ] {
        assert!(md.contains(want), "{want:?} not in the report:\n{md}");
    }
    // No key in any form.
    assert!(!md.contains(KEY) && !md.contains(&KEY[..12]), "{md}");
}

/// `check-config` lists the example with its bursts, and without the key.
#[test]
fn check_config_lists_the_example() {
    let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["check-config", "--no-secrets", &example()])
        .output()
        .expect("lookout runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("OK, 33 checks, 1 flows"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("login rate limit\t")
                && l.contains("every 5m, burst of 6 within 1s")),
        "{text}"
    );
}

/// Short, as the issue asks: no base URL or credential written twice.
#[test]
fn the_example_says_each_thing_once() {
    let text = std::fs::read_to_string(example()).unwrap();
    let config: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        config.matches("http://").count(),
        3,
        "one URL per service, in [vars]"
    );
    assert_eq!(
        config.matches("secret = \"hokusai_key\"").count(),
        2,
        "the default auth and the scheme matrix"
    );
    assert!(
        config.lines().count() < 130,
        "{} lines",
        config.lines().count()
    );
}
