//! Multi-step flows against a small stateful registry of our own, shaped
//! like MLflow's REST API: create returns an id, later routes require it,
//! delete removes it. Knobs make any route fail, stall or leave out a field.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use lookout::config::Config;
use lookout::daemon::Daemon;
use lookout::flow::FlowRunner;
use lookout::outcome::{FailureKind, FlowResult, Outcome, StepRun};
use lookout::probe::Prober;
use lookout::schedule::Tick;
use lookout::template::Templater;
use serde_json::{Value, json};

use crate::support::{TEST_SECRET, assert_table_passed, config, eventually, try_config};

/// What the registry holds, and how it is told to misbehave.
#[derive(Default)]
struct Registry {
    next_id: u64,
    experiments: BTreeMap<String, String>,
    runs: BTreeMap<String, String>,
    models: BTreeMap<String, Vec<String>>,
    /// Route (last two path segments, e.g. "runs/create") → status to answer.
    fail: HashMap<String, u16>,
    /// Routes that sleep this long before answering.
    stall: HashMap<String, Duration>,
    /// Routes that answer 200 without their id field.
    omit_id: Vec<String>,
    /// experiments/create puts the caller's bearer token in its answer.
    echo_token: bool,
    /// Every request: route and the Authorization header.
    log: Vec<(String, String)>,
    in_flight: usize,
    max_in_flight: usize,
}

impl Registry {
    fn is_empty(&self) -> bool {
        self.experiments.is_empty() && self.runs.is_empty() && self.models.is_empty()
    }
}

type Shared = Arc<Mutex<Registry>>;

struct Mlflow {
    addr: SocketAddr,
    state: Shared,
}

impl Mlflow {
    fn set(&self, f: impl FnOnce(&mut Registry)) {
        f(&mut self.state.lock().unwrap());
    }

    fn get<T>(&self, f: impl FnOnce(&Registry) -> T) -> T {
        f(&self.state.lock().unwrap())
    }
}

async fn start_mlflow() -> Mlflow {
    let state = Shared::default();
    let base = "/api/2.0/mlflow";
    let app = Router::new()
        .route(
            &format!("{base}/experiments/create"),
            post(create_experiment),
        )
        .route(
            &format!("{base}/experiments/delete"),
            post(delete_experiment),
        )
        .route(&format!("{base}/runs/create"), post(create_run))
        .route(&format!("{base}/runs/delete"), post(delete_run))
        .route(
            &format!("{base}/registered-models/create"),
            post(create_model),
        )
        .route(
            &format!("{base}/registered-models/delete"),
            axum::routing::delete(delete_model),
        )
        .route(
            &format!("{base}/model-versions/create"),
            post(create_version),
        )
        .route(
            &format!("{base}/model-versions/delete"),
            axum::routing::delete(delete_version),
        )
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state.clone());
    let addr = crate::support::serve(app).await;
    Mlflow { addr, state }
}

fn route_of(path: &str) -> String {
    let parts: Vec<&str> = path.rsplitn(3, '/').collect();
    format!("{}/{}", parts.get(1).unwrap_or(&""), parts[0])
}

/// Logs, checks the token, and applies the fail and stall knobs.
async fn gate(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let route = route_of(req.uri().path());
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let (fail, stall) = {
        let mut r = s.lock().unwrap();
        r.log.push((route.clone(), auth.clone()));
        r.in_flight += 1;
        r.max_in_flight = r.max_in_flight.max(r.in_flight);
        (r.fail.get(&route).copied(), r.stall.get(&route).copied())
    };
    if let Some(d) = stall {
        tokio::time::sleep(d).await;
    }
    s.lock().unwrap().in_flight -= 1;
    if auth != format!("Bearer {TEST_SECRET}") {
        return error(401, "Invalid or expired token");
    }
    if let Some(code) = fail {
        return error(code, &format!("{route} is broken on purpose"));
    }
    next.run(req).await
}

fn error(code: u16, message: &str) -> Response {
    (
        StatusCode::from_u16(code).unwrap(),
        axum::Json(json!({ "error_code": "INTERNAL_ERROR", "message": message })),
    )
        .into_response()
}

fn field<'a>(body: &'a Value, name: &str) -> &'a str {
    body[name].as_str().unwrap_or("")
}

async fn create_experiment(
    State(s): State<Shared>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut r = s.lock().unwrap();
    r.next_id += 1;
    let id = r.next_id.to_string();
    r.experiments
        .insert(id.clone(), field(&body, "name").to_owned());
    if r.omit_id.iter().any(|x| x == "experiments/create") {
        return axum::Json(json!({ "note": "created, id withheld" })).into_response();
    }
    let mut answer = json!({ "experiment_id": id, "name": field(&body, "name") });
    if r.echo_token {
        answer["token"] = json!(
            headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        );
    }
    axum::Json(answer).into_response()
}

async fn delete_experiment(
    State(s): State<Shared>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut r = s.lock().unwrap();
    match r.experiments.remove(field(&body, "experiment_id")) {
        Some(_) => axum::Json(json!({})).into_response(),
        None => error(404, "no such experiment"),
    }
}

async fn create_run(State(s): State<Shared>, axum::Json(body): axum::Json<Value>) -> Response {
    let mut r = s.lock().unwrap();
    let experiment = field(&body, "experiment_id").to_owned();
    if !r.experiments.contains_key(&experiment) {
        return error(404, &format!("experiment {experiment:?} does not exist"));
    }
    r.next_id += 1;
    let id = format!("run{}", r.next_id);
    r.runs.insert(id.clone(), experiment);
    axum::Json(json!({ "run": { "info": { "run_id": id } } })).into_response()
}

async fn delete_run(State(s): State<Shared>, axum::Json(body): axum::Json<Value>) -> Response {
    let mut r = s.lock().unwrap();
    match r.runs.remove(field(&body, "run_id")) {
        Some(_) => axum::Json(json!({})).into_response(),
        None => error(404, "no such run"),
    }
}

async fn create_model(State(s): State<Shared>, axum::Json(body): axum::Json<Value>) -> Response {
    let mut r = s.lock().unwrap();
    let name = field(&body, "name").to_owned();
    r.models.insert(name.clone(), Vec::new());
    axum::Json(json!({ "registered_model": { "name": name } })).into_response()
}

async fn delete_model(State(s): State<Shared>, axum::Json(body): axum::Json<Value>) -> Response {
    let mut r = s.lock().unwrap();
    match r.models.remove(field(&body, "name")) {
        Some(_) => axum::Json(json!({})).into_response(),
        None => error(404, "no such model"),
    }
}

async fn create_version(State(s): State<Shared>, axum::Json(body): axum::Json<Value>) -> Response {
    let mut r = s.lock().unwrap();
    let (name, run) = (field(&body, "name").to_owned(), field(&body, "run_id"));
    if !r.runs.contains_key(run) {
        return error(404, &format!("run {run:?} does not exist"));
    }
    let Some(versions) = r.models.get_mut(&name) else {
        return error(404, &format!("model {name:?} does not exist"));
    };
    let version = (versions.len() + 1).to_string();
    versions.push(version.clone());
    axum::Json(json!({ "model_version": { "name": name, "version": version } })).into_response()
}

async fn delete_version(State(s): State<Shared>, axum::Json(body): axum::Json<Value>) -> Response {
    let mut r = s.lock().unwrap();
    let version = field(&body, "version").to_owned();
    match r.models.get_mut(field(&body, "name")) {
        Some(v) if v.contains(&version) => {
            v.retain(|x| *x != version);
            axum::Json(json!({})).into_response()
        }
        _ => error(404, "no such model version"),
    }
}

/// The four-stage registration from the user reports, with cleanup.
fn registration(addr: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[secrets]
token = {{ env = "PLATFORM_API_KEY" }}

[[flows]]
name = "model-registration"
group = "ml-platform"
interval = "1h"
auth = {{ scheme = "bearer", secret = "token" }}
vars = {{ base = "http://{addr}/api/2.0/mlflow", prefix = "lookout" }}
{extra}

[[flows.steps]]
name = "create-experiment"
method = "POST"
url = "{{{{ base }}}}/experiments/create"
json = {{ name = "{{{{ prefix }}}}-{{{{ run_id }}}}" }}
capture = {{ experiment_id = "/experiment_id" }}

[[flows.steps]]
name = "log-run"
method = "POST"
url = "{{{{ base }}}}/runs/create"
json = {{ experiment_id = "{{{{ experiment_id }}}}", start_time = "{{{{ now_ms }}}}" }}
capture = {{ mlflow_run = "/run/info/run_id" }}

[[flows.steps]]
name = "register-model"
method = "POST"
url = "{{{{ base }}}}/registered-models/create"
json = {{ name = "{{{{ prefix }}}}-model-{{{{ run_id }}}}" }}
capture = {{ model = "/registered_model/name" }}

[[flows.steps]]
name = "create-version"
method = "POST"
url = "{{{{ base }}}}/model-versions/create"
json = {{ name = "{{{{ model }}}}", run_id = "{{{{ mlflow_run }}}}", source = "runs:/{{{{ mlflow_run }}}}/model" }}
capture = {{ version = "/model_version/version" }}

[[flows.cleanup]]
name = "delete-version"
method = "DELETE"
url = "{{{{ base }}}}/model-versions/delete"
json = {{ name = "{{{{ model }}}}", version = "{{{{ version }}}}" }}

[[flows.cleanup]]
name = "delete-model"
method = "DELETE"
url = "{{{{ base }}}}/registered-models/delete"
json = {{ name = "{{{{ model }}}}" }}

[[flows.cleanup]]
name = "delete-run"
method = "POST"
url = "{{{{ base }}}}/runs/delete"
json = {{ run_id = "{{{{ mlflow_run }}}}" }}

[[flows.cleanup]]
name = "delete-experiment"
method = "POST"
url = "{{{{ base }}}}/experiments/delete"
json = {{ experiment_id = "{{{{ experiment_id }}}}" }}
"#
    )
}

async fn run_once(cfg: &Config) -> FlowResult {
    let prober = Prober::new(&cfg.tls_profiles).unwrap();
    let templater = Templater::default();
    let runner = FlowRunner {
        prober: &prober,
        redactor: &cfg.redactor,
        templater: &templater,
    };
    let now = Utc::now();
    let tick = Tick {
        scheduled: now,
        started: now,
        lag: Duration::ZERO,
    };
    // Bounded: every step has a timeout, and so does the test.
    tokio::time::timeout(Duration::from_secs(20), runner.run(&cfg.flows[0], tick))
        .await
        .expect("the flow run ends")
}

fn states(steps: &[lookout::outcome::StepResult]) -> Vec<&'static str> {
    steps
        .iter()
        .map(|s| match &s.run {
            StepRun::Ran(o) if o.is_success() => "passed",
            StepRun::Ran(_) => "failed",
            StepRun::Skipped(_) => "skipped",
        })
        .collect()
}

#[tokio::test]
async fn all_steps_pass_and_cleanup_removes_what_was_made() {
    let mlflow = start_mlflow().await;
    let cfg = config(&registration(mlflow.addr, ""));
    let r = run_once(&cfg).await;
    assert_eq!(states(&r.steps), ["passed"; 4], "{r:#?}");
    assert_eq!(states(&r.cleanup), ["passed"; 4], "{r:#?}");
    assert_eq!(r.passed_steps(), 4);
    assert!(r.summary().outcome.is_success());
    assert!(!r.cleanup_failed());
    assert!(mlflow.get(Registry::is_empty), "cleanup left data behind");
    let captured: Vec<&str> = r.captured.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        captured,
        ["experiment_id", "mlflow_run", "model", "version"]
    );
    // The run's own id made the names unique; every request had the token.
    let log = mlflow.get(|r| r.log.clone());
    assert_eq!(log.len(), 8);
    assert!(
        log.iter()
            .all(|(_, auth)| auth == &format!("Bearer {TEST_SECRET}"))
    );
    let model = &r.captured[2].1;
    assert!(model.starts_with("lookout-model-") && model.len() == "lookout-model-".len() + 12);
}

#[tokio::test]
async fn a_failure_at_each_stage_skips_the_rest_and_cleans_up() {
    let stages = [
        "experiments/create",
        "runs/create",
        "registered-models/create",
        "model-versions/create",
    ];
    // Which cleanup steps can run after a failure at each stage: only
    // those whose values were captured.
    let cleanup_after: [[&str; 4]; 4] = [
        ["skipped", "skipped", "skipped", "skipped"],
        ["skipped", "skipped", "skipped", "passed"],
        ["skipped", "skipped", "passed", "passed"],
        ["skipped", "passed", "passed", "passed"],
    ];
    let mut failures = Vec::new();
    for (stage, route) in stages.iter().enumerate() {
        let mlflow = start_mlflow().await;
        mlflow.set(|r| {
            r.fail.insert(route.to_string(), 404);
        });
        let cfg = config(&registration(mlflow.addr, ""));
        let r = run_once(&cfg).await;
        let mut want = vec!["passed"; stage];
        want.push("failed");
        want.resize(4, "skipped");
        let summary = r.summary();
        let reason = summary.outcome.reason().unwrap_or("").to_owned();
        let expected_reason = format!(
            "step {}/4 {:?}: status 404, expected 2xx: \"{route} is broken on purpose\"",
            stage + 1,
            cfg.flows[0].steps[stage].name
        );
        if states(&r.steps) != want
            || r.passed_steps() != stage
            || states(&r.cleanup) != cleanup_after[stage]
            || reason != expected_reason
            || summary.status != Some(404)
            || !mlflow.get(Registry::is_empty)
        {
            failures.push(format!(
                "stage {stage} ({route}): steps {:?}, cleanup {:?}, reason {reason:?}, left behind: {}",
                states(&r.steps),
                states(&r.cleanup),
                !mlflow.get(Registry::is_empty)
            ));
        }
        // Skipped steps say why, and name the step that broke.
        for s in r.steps.iter().skip(stage + 1) {
            let want = format!("not run: step {:?} failed", cfg.flows[0].steps[stage].name);
            if s.reason() != Some(want.as_str()) {
                failures.push(format!("stage {stage}: {} says {:?}", s.name, s.reason()));
            }
        }
        if stage == 0
            && r.cleanup[3].reason() != Some("not run: needs experiment_id, which was not captured")
        {
            failures.push(format!(
                "stage 0: delete-experiment says {:?}",
                r.cleanup[3].reason()
            ));
        }
    }
    assert_table_passed(&failures, stages.len());
}

#[tokio::test]
async fn a_missing_capture_fails_the_step_that_should_have_produced_it() {
    let mlflow = start_mlflow().await;
    mlflow.set(|r| r.omit_id.push("experiments/create".into()));
    let cfg = config(&registration(mlflow.addr, ""));
    let r = run_once(&cfg).await;
    assert_eq!(
        states(&r.steps),
        ["failed", "skipped", "skipped", "skipped"]
    );
    match &r.steps[0].run {
        StepRun::Ran(Outcome::Failure { kind, reason }) => {
            assert_eq!(*kind, FailureKind::Capture);
            assert_eq!(
                reason,
                "capture experiment_id: no value at /experiment_id in the response body"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.steps[0].status, Some(200));
    assert_eq!(r.summary().outcome.label(), "capture");
}

#[tokio::test]
async fn a_failed_cleanup_is_reported_without_hiding_the_result() {
    let mlflow = start_mlflow().await;
    mlflow.set(|r| {
        r.fail.insert("runs/delete".into(), 500);
    });
    let cfg = config(&registration(mlflow.addr, ""));
    let r = run_once(&cfg).await;
    assert_eq!(states(&r.steps), ["passed"; 4]);
    assert!(r.summary().outcome.is_success(), "the main result stands");
    assert_eq!(states(&r.cleanup), ["passed", "passed", "failed", "passed"]);
    assert!(r.cleanup_failed());
    assert_eq!(
        r.cleanup[2].reason(),
        Some("status 500, expected 2xx: \"runs/delete is broken on purpose\"")
    );
}

#[tokio::test]
async fn the_flow_timeout_bounds_the_steps_but_not_the_cleanup() {
    let mlflow = start_mlflow().await;
    mlflow.set(|r| {
        r.stall.insert("runs/create".into(), Duration::from_secs(5));
    });
    let cfg = config(&registration(mlflow.addr, r#"timeout = "400ms""#));
    let started = std::time::Instant::now();
    let r = run_once(&cfg).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the flow timeout must cut the stalled step"
    );
    assert_eq!(states(&r.steps), ["passed", "failed", "skipped", "skipped"]);
    match &r.steps[1].run {
        StepRun::Ran(Outcome::Failure { kind, reason }) => {
            assert_eq!(*kind, FailureKind::Timeout);
            assert!(
                reason.ends_with("(the flow's timeout of 400ms ran out)"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    // The experiment was captured, so its cleanup ran, after the timeout.
    assert_eq!(
        states(&r.cleanup),
        ["skipped", "skipped", "skipped", "passed"]
    );
    assert!(mlflow.get(|r| r.experiments.is_empty()));
}

#[tokio::test]
async fn a_captured_value_that_cannot_go_in_a_header_fails_without_sending() {
    let mlflow = start_mlflow().await;
    let cfg = config(&format!(
        r#"
[secrets]
token = {{ env = "PLATFORM_API_KEY" }}
[[flows]]
name = "header-injection"
auth = {{ scheme = "bearer", secret = "token" }}
[[flows.steps]]
name = "create"
method = "POST"
url = "http://{addr}/api/2.0/mlflow/experiments/create"
json = {{ name = "line one\nX-Injected: yes" }}
capture = {{ name = "/name" }}
[[flows.steps]]
name = "use"
method = "POST"
url = "http://{addr}/api/2.0/mlflow/runs/create"
headers = {{ "X-Experiment" = "{{{{ name }}}}" }}
json = {{ experiment_id = "{{{{ name }}}}" }}
"#,
        addr = mlflow.addr
    ));
    let r = run_once(&cfg).await;
    match &r.steps[1].run {
        StepRun::Ran(Outcome::Failure { kind, reason }) => {
            assert_eq!(*kind, FailureKind::Template, "{reason}");
            assert_eq!(
                reason,
                "header x-experiment: the value is not valid in a header"
            );
        }
        other => panic!("{other:?}"),
    }
    let routes: Vec<String> =
        mlflow.get(|r| r.log.iter().map(|(route, _)| route.clone()).collect());
    assert_eq!(
        routes,
        ["experiments/create"],
        "the bad request must not be sent"
    );
}

#[test]
fn load_time_errors_name_the_place_and_the_variable() {
    let step = |extra: &str| {
        format!(
            r#"
[[flows]]
name = "f"
vars = {{ base = "http://127.0.0.1:1" }}
[[flows.steps]]
name = "one"
url = "{{{{ base }}}}/one"
capture = {{ id = "/id" }}
{extra}
"#
        )
    };
    let cases: Vec<(String, &str, &str)> = vec![
        (
            step("[[flows.steps]]\nname = \"two\"\nurl = \"{{ base }}/{{ idd }}\""),
            "test.toml:11:7: flows[0].steps[1].url:",
            "unknown template variable \"idd\": this step can use run_id, now_ms, uuid, base, id",
        ),
        (
            step("[[flows.steps]]\nname = \"two\"\nurl = \"{{ base }}/{{ later }}\"\n[[flows.steps]]\nname = \"three\"\nurl = \"{{ base }}\"\ncapture = { later = \"/x\" }"),
            "test.toml:11:7: flows[0].steps[1].url:",
            "\"later\" is captured by flows[0].steps[2] (\"three\"); a step can only use values captured by the steps before it",
        ),
        (
            step("[[flows.steps]]\nname = \"two\"\nurl = \"http://{{ id }}/x\""),
            "test.toml:11:7: flows[0].steps[1].url:",
            "the scheme, host and port must not come from a captured or built-in value",
        ),
        (
            step("[[flows.steps]]\nname = \"two\"\nurl = \"{{ base }}{{ id }}\""),
            "test.toml:11:7: flows[0].steps[1].url:",
            "the URL must be valid whatever the run-time values are; with \"lookout-sentinel-a\" standing in for them it is \"http://127.0.0.1:1lookout-sentinel-a\", which is not",
        ),
        (
            step("[[flows.steps]]\nname = \"two\"\nurl = \"{{ base }}\"\ncapture = { x = \"id\" }"),
            "test.toml:12:17: flows[0].steps[1].capture.x:",
            "\"id\" is not a JSON pointer",
        ),
        (
            step("[[flows.steps]]\nname = \"one\"\nurl = \"{{ base }}\""),
            "test.toml:10:8: flows[0].steps[1].name:",
            "duplicate step name \"one\" in this flow",
        ),
        (
            step("[[flows.steps]]\nname = \"two\"\nurl = \"{{ base }}\"\ncapture = { run_id = \"/x\" }"),
            "test.toml:12:22: flows[0].steps[1].capture.run_id:",
            "cannot be captured into",
        ),
        (
            step("[[flows.steps]]\nname = \"two\"\nurl = \"{{ base }}\"\ncapture = { id = \"/x\" }"),
            "test.toml:12:18: flows[0].steps[1].capture.id:",
            "\"id\" is already captured by an earlier step",
        ),
        (
            step("[[flows.cleanup]]\nname = \"undo\"\nurl = \"{{ base }}/{{ nope }}\""),
            "test.toml:11:7: flows[0].cleanup[0].url:",
            "unknown template variable \"nope\"",
        ),
        (
            "[[flows]]\nname = \"f\"\nsteps = []".to_owned(),
            "test.toml:3:9: flows[0].steps:",
            "a flow needs 1 to 50 steps",
        ),
        (
            "[[checks]]\nname = \"f\"\nurl = \"http://127.0.0.1:1/\"\n[[flows]]\nname = \"f\"\n[[flows.steps]]\nname = \"s\"\nurl = \"http://127.0.0.1:1/\"".to_owned(),
            "test.toml:5:8: flows[0].name:",
            "checks and flows share one name space",
        ),
    ];
    let mut failures = Vec::new();
    for (toml, at, message) in &cases {
        match try_config(toml) {
            Ok(_) => failures.push(format!("accepted, wanted {at} {message}:\n{toml}")),
            Err(e) => {
                let text = e.to_string();
                if !text.starts_with(at) || !text.contains(message) {
                    failures.push(format!("got {text:?}\nwanted {at} … {message}"));
                }
            }
        }
    }
    assert_table_passed(&failures, cases.len());
}

async fn get(url: String) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

/// The daemon runs a flow like a check: metrics, API, page and the health
/// score, and the token the target echoes back is shown nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_reports_flows_step_by_step() {
    let mlflow = start_mlflow().await;
    mlflow.set(|r| {
        r.fail.insert("runs/create".into(), 404);
        r.echo_token = true;
    });
    let toml = registration(mlflow.addr, "")
        + r#"
[[flows.steps]]
name = "show-token"
url = "http://127.0.0.1:1/never"
"#;
    // The token lands in a capture: the page must show it redacted.
    let toml = toml.replace(
        r#"capture = { experiment_id = "/experiment_id" }"#,
        r#"capture = { experiment_id = "/experiment_id", echoed = "/token" }"#,
    );
    let toml = toml.replace(r#"interval = "1h""#, r#"interval = "200ms""#);
    let cfg = config(&toml);
    let daemon = Daemon::start(cfg).await.unwrap();
    let base = format!("http://{}", daemon.addr);
    let status: Value = eventually(Duration::from_secs(10), async || {
        let v: Value = serde_json::from_str(&get(format!("{base}/api/v1/status")).await).ok()?;
        (v["flows"][0]["state"] == "failing").then_some(v)
    })
    .await;
    let metrics = get(format!("{base}/metrics")).await;
    let page = get(format!("{base}/")).await;
    daemon.shutdown().await;

    let flow = &status["flows"][0];
    assert_eq!(flow["steps_passed"], 1);
    assert_eq!(flow["steps_total"], 5);
    assert_eq!(flow["stage_score"], 0.2);
    assert_eq!(flow["failed_step"], "log-run");
    assert_eq!(flow["outcome"], "status");
    assert_eq!(flow["steps"][1]["state"], "failed");
    assert_eq!(flow["steps"][2]["state"], "skipped");
    assert_eq!(flow["cleanup"][3]["state"], "passed");
    // One flow, failing: it counts as one check in the scores.
    assert_eq!(status["overall"]["failing"], 1);
    assert_eq!(status["overall"]["total"], 1);
    assert_eq!(status["groups"][0]["name"], "ml-platform");

    assert!(page.contains("1/5 stages (20%)"), "{page}");
    assert!(page.contains(r#"data-step="log-run""#));
    for text in [&metrics, &page, &status.to_string()] {
        assert!(!text.contains(TEST_SECRET), "the token leaked:\n{text}");
    }
    let echoed = flow["captured"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "echoed")
        .expect("the echoed token is listed, redacted");
    assert!(
        echoed["value"].as_str().unwrap().contains("[redacted"),
        "{echoed}"
    );

    let scrape = crate::daemon::parse(&metrics);
    let value = |name: &str, labels: &[(&str, &str)]| crate::daemon::gauge(&scrape, name, labels);
    let flow_l = [("flow", "model-registration"), ("group", "ml-platform")];
    assert_eq!(value("lookout_flow_success", &flow_l), Some(0.0));
    assert_eq!(value("lookout_flow_steps_passed", &flow_l), Some(1.0));
    assert_eq!(value("lookout_flow_steps", &flow_l), Some(5.0));
    assert_eq!(value("lookout_flow_stage_score", &flow_l), Some(0.2));
    assert!(
        value(
            "lookout_flow_runs_total",
            &[("flow", "model-registration"), ("outcome", "status")]
        )
        .unwrap()
            >= 1.0
    );
    let step = |s: &'static str| [("flow", "model-registration"), ("step", s)];
    assert_eq!(
        value("lookout_flow_step_success", &step("create-experiment")),
        Some(1.0)
    );
    assert_eq!(
        value("lookout_flow_step_status_code", &step("log-run")),
        Some(404.0)
    );
    assert_eq!(
        value("lookout_flow_step_status_code", &step("register-model")),
        Some(0.0)
    );
    assert!(
        value(
            "lookout_flow_step_runs_total",
            &[("step", "register-model"), ("outcome", "skipped")]
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        value(
            "lookout_flow_step_runs_total",
            &[("step", "delete-experiment"), ("outcome", "success")]
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(value("lookout_health_score", &[]), Some(0.0));
    crate::daemon::promtool_check_metrics(&metrics);
}

/// A flow whose run outlasts its interval is not started twice: the ticks
/// in between are skipped and counted, as for checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlapping_flow_run_is_skipped_not_doubled() {
    let mlflow = start_mlflow().await;
    mlflow.set(|r| {
        r.stall
            .insert("experiments/create".into(), Duration::from_millis(450));
    });
    let toml = registration(mlflow.addr, "").replace(r#"interval = "1h""#, r#"interval = "100ms""#);
    let daemon = Daemon::start(config(&toml)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let metrics = get(format!("http://{}/metrics", daemon.addr)).await;
    daemon.shutdown().await;
    assert_eq!(mlflow.get(|r| r.max_in_flight), 1, "one run at a time");
    let skipped = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"lookout_flow_skipped_runs_total{flow="model-registration",group="ml-platform"} "#))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        skipped >= 3.0,
        "skipped ticks are counted: {skipped}\n{metrics}"
    );
}
