//! The example configs in `examples/` stay valid: `lookout check-config`
//! accepts them and lists their flows and steps without ever printing the
//! secret, fails with the secret's place when its variable is not set, and
//! the library sees the captures, cleanup dependencies and requests that
//! their comments describe.

use std::path::Path;
use std::process::{Command, Output};

use lookout::config::{self, CaptureFrom, Config, Flow, Step};
use lookout::secret::{Secret, SecretOrigin};
use lookout::template::{Templater, Vars};
use serde_json::Value;

use crate::support::assert_table_passed;

/// Stands in for the real token or key; it must never be printed.
const DUMMY_SECRET: &str = "example-token-123";

/// Stand-ins for the built-in variables when a step is rendered here.
const BUILTINS: &[(&str, &str)] = &[
    ("run_id", "0123456789ab"),
    ("now_ms", "1767225600000"),
    ("uuid", "5f0c6a8e-2b1d-4c3e-9a7f-1e2d3c4b5a69"),
];

struct Example {
    path: &'static str,
    /// The environment variable its one secret comes from.
    env: &'static str,
    /// The secret's name in `[secrets]`.
    secret: &'static str,
    listen: &'static str,
    flow: &'static str,
    group: &'static str,
    /// How check-config sums the flow up.
    summary: &'static str,
    /// `Auth::scheme` and `Auth::placement` of every step.
    auth: (&'static str, &'static str),
    steps: &'static [StepSpec],
    cleanup: &'static [StepSpec],
    /// What the target is pretended to answer, for the captures.
    answers: &'static [(&'static str, &'static str)],
}

struct StepSpec {
    name: &'static str,
    method: &'static str,
    /// The URL with `BUILTINS` and `answers` filled in; a bare path is
    /// relative to `MLFLOW_API`.
    url: &'static str,
    /// JSON pointer into the rendered body, and the value there.
    body: &'static [(&'static str, &'static str)],
    /// Variable, and where it comes from: a JSON pointer or "header <name>".
    captures: &'static [(&'static str, &'static str)],
    /// The captured variables the step needs, sorted.
    uses: &'static [&'static str],
}

const MLFLOW_API: &str = "http://127.0.0.1:5000/api/2.0/mlflow";

const EXAMPLES: &[Example] = &[
    Example {
        path: concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/mlflow-registration.toml"
        ),
        env: "MLFLOW_TRACKING_TOKEN",
        secret: "mlflow_token",
        listen: "127.0.0.1:9899",
        flow: "mlflow-model-registration",
        group: "ml-platform",
        summary: "flow, 4 steps + 4 cleanup, timeout 30s\tevery 5m",
        auth: ("bearer", "header authorization"),
        steps: &[
            StepSpec {
                name: "create-experiment",
                method: "POST",
                url: "/experiments/create",
                body: &[("/name", "lookout-synthetic-0123456789ab")],
                captures: &[("experiment_id", "/experiment_id")],
                uses: &[],
            },
            StepSpec {
                name: "create-run",
                method: "POST",
                url: "/runs/create",
                body: &[
                    ("/experiment_id", "7"),
                    ("/run_name", "lookout-synthetic-0123456789ab"),
                    ("/start_time", "1767225600000"),
                ],
                captures: &[("mlflow_run_id", "/run/info/run_id")],
                uses: &["experiment_id"],
            },
            StepSpec {
                name: "register-model",
                method: "POST",
                url: "/registered-models/create",
                body: &[("/name", "lookout-synthetic-model-0123456789ab")],
                captures: &[("model_name", "/registered_model/name")],
                uses: &[],
            },
            StepSpec {
                name: "create-model-version",
                method: "POST",
                url: "/model-versions/create",
                body: &[
                    ("/name", "lookout-synthetic-model-0123456789ab"),
                    ("/source", "runs:/9c1e5b7d3a2f4e6c8b0a1d2e3f4a5b6c/model"),
                    ("/run_id", "9c1e5b7d3a2f4e6c8b0a1d2e3f4a5b6c"),
                ],
                captures: &[("model_version", "/model_version/version")],
                uses: &["mlflow_run_id", "model_name"],
            },
        ],
        cleanup: &[
            StepSpec {
                name: "delete-model-version",
                method: "DELETE",
                url: "/model-versions/delete",
                body: &[
                    ("/name", "lookout-synthetic-model-0123456789ab"),
                    ("/version", "1"),
                ],
                captures: &[],
                uses: &["model_name", "model_version"],
            },
            StepSpec {
                name: "delete-registered-model",
                method: "DELETE",
                url: "/registered-models/delete",
                body: &[("/name", "lookout-synthetic-model-0123456789ab")],
                captures: &[],
                uses: &["model_name"],
            },
            StepSpec {
                name: "delete-run",
                method: "POST",
                url: "/runs/delete",
                body: &[("/run_id", "9c1e5b7d3a2f4e6c8b0a1d2e3f4a5b6c")],
                captures: &[],
                uses: &["mlflow_run_id"],
            },
            StepSpec {
                name: "delete-experiment",
                method: "POST",
                url: "/experiments/delete",
                body: &[("/experiment_id", "7")],
                captures: &[],
                uses: &["experiment_id"],
            },
        ],
        answers: &[
            ("experiment_id", "7"),
            ("mlflow_run_id", "9c1e5b7d3a2f4e6c8b0a1d2e3f4a5b6c"),
            ("model_name", "lookout-synthetic-model-0123456789ab"),
            ("model_version", "1"),
        ],
    },
    Example {
        path: concat!(env!("CARGO_MANIFEST_DIR"), "/examples/crud-flow.toml"),
        env: "CRUD_API_KEY",
        secret: "crud_api_key",
        listen: "127.0.0.1:9900",
        flow: "items-crud",
        group: "inventory-api",
        summary: "flow, 3 steps + 1 cleanup, timeout 30s\tevery 1m",
        auth: ("api_key", "header x-api-key"),
        steps: &[
            StepSpec {
                name: "create-item",
                method: "POST",
                url: "http://127.0.0.1:8080/v1/items",
                body: &[
                    ("/name", "lookout-0123456789ab"),
                    ("/client_request_id", "5f0c6a8e-2b1d-4c3e-9a7f-1e2d3c4b5a69"),
                ],
                captures: &[("item_id", "/id"), ("item_location", "header location")],
                uses: &[],
            },
            StepSpec {
                name: "read-item",
                method: "GET",
                // From the Location header, without a doubled slash.
                url: "http://127.0.0.1:8080/v1/items/42",
                body: &[],
                captures: &[],
                uses: &["item_location"],
            },
            StepSpec {
                name: "update-item",
                method: "PATCH",
                url: "http://127.0.0.1:8080/v1/items/42",
                body: &[],
                captures: &[],
                uses: &["item_id"],
            },
        ],
        cleanup: &[StepSpec {
            name: "delete-item",
            method: "DELETE",
            url: "http://127.0.0.1:8080/v1/items/42",
            body: &[],
            captures: &[],
            uses: &["item_id"],
        }],
        answers: &[("item_id", "42"), ("item_location", "/v1/items/42")],
    },
];

impl Example {
    fn text(&self) -> String {
        std::fs::read_to_string(self.path).unwrap_or_else(|e| panic!("{}: {e}", self.path))
    }

    fn load(&self, text: &str) -> Result<Config, config::ConfigError> {
        config::from_str(text, Path::new(self.path), &|name| {
            (name == self.env).then(|| DUMMY_SECRET.to_owned())
        })
    }

    fn check_config(&self, secret: Option<&str>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lookout"));
        cmd.arg("check-config").arg(self.path).env_remove(self.env);
        if let Some(value) = secret {
            cmd.env(self.env, value);
        }
        cmd.output().expect("lookout runs")
    }

    /// `file:line:column` of the secret's `{ env = ... }` in the file.
    fn secret_location(&self) -> String {
        let text = self.text();
        let prefix = format!("{} = {{", self.secret);
        let (index, line) = text
            .lines()
            .enumerate()
            .find(|(_, l)| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("{}: no line starts with {prefix:?}", self.path));
        let column = line.find('{').unwrap() + 1;
        format!("{}:{}:{column}", self.path, index + 1)
    }

    /// The URL a spec expects: MLflow's are written relative to its API.
    fn url(&self, spec: &StepSpec) -> String {
        if spec.url.starts_with('/') {
            format!("{MLFLOW_API}{}", spec.url)
        } else {
            spec.url.to_owned()
        }
    }
}

/// The table tests' cases: every step and cleanup step of every example.
fn step_count() -> usize {
    EXAMPLES
        .iter()
        .map(|ex| ex.steps.len() + ex.cleanup.len())
        .sum()
}

fn flow<'c>(cfg: &'c Config, ex: &Example) -> &'c Flow {
    assert_eq!(cfg.flows.len(), 1, "{}: one flow", ex.path);
    &cfg.flows[0]
}

fn capture_source(from: &CaptureFrom) -> String {
    match from {
        CaptureFrom::Json(pointer) => pointer.clone(),
        CaptureFrom::Header(name) => format!("header {name}"),
    }
}

/// Every way `step` differs from `spec`, in its load-time shape.
fn step_mismatches(kind: &str, step: &Step, spec: &StepSpec, ex: &Example) -> Vec<String> {
    let mut out = Vec::new();
    let at = format!("{}: {kind} {:?}", ex.path, spec.name);
    if step.name != spec.name {
        out.push(format!("{at}: named {:?}", step.name));
    }
    if step.request.method.as_str() != spec.method {
        out.push(format!("{at}: method {}", step.request.method));
    }
    let mut captures: Vec<(String, String)> = step
        .captures
        .iter()
        .map(|c| (c.var.clone(), capture_source(&c.from)))
        .collect();
    captures.sort();
    let mut want: Vec<(String, String)> = spec
        .captures
        .iter()
        .map(|(v, f)| (v.to_string(), f.to_string()))
        .collect();
    want.sort();
    if captures != want {
        out.push(format!("{at}: captures {captures:?}, want {want:?}"));
    }
    if step.uses != spec.uses {
        out.push(format!("{at}: uses {:?}, want {:?}", step.uses, spec.uses));
    }
    let auth = &step.request.auth;
    let placement = auth.placement().unwrap_or_default();
    if (auth.scheme(), placement.as_str()) != ex.auth {
        out.push(format!(
            "{at}: auth {} ({placement}), want {:?}",
            auth.scheme(),
            ex.auth
        ));
    }
    let want = Secret::new(
        DUMMY_SECRET.to_owned(),
        SecretOrigin::Named(ex.secret.to_owned()),
    );
    match auth.secret() {
        Some(s) if s.fingerprint() == want.fingerprint() && s.origin() == want.origin() => {}
        other => out.push(format!("{at}: secret {other:?}, want {want:?}")),
    }
    out
}

#[test]
fn check_config_lists_each_example_without_its_secret() {
    let mut failures = Vec::new();
    for ex in EXAMPLES {
        let out = ex.check_config(Some(DUMMY_SECRET));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            failures.push(format!(
                "{}: exit {:?}\nstderr: {stderr}",
                ex.path, out.status
            ));
            continue;
        }
        let head = format!("{}: OK, 0 checks, 1 flows, listen {}\n", ex.path, ex.listen);
        if !stdout.starts_with(&head) {
            failures.push(format!("{}: want {head:?} first in:\n{stdout}", ex.path));
        }
        let flow_line = format!("{}\t[{}]\t{}\n", ex.flow, ex.group, ex.summary);
        if !stdout.contains(&flow_line) {
            failures.push(format!("{}: want {flow_line:?} in:\n{stdout}", ex.path));
        }
        let auth = format!("  auth {} ({}) key sha256:", ex.auth.0, ex.auth.1);
        let lines = ex
            .steps
            .iter()
            .map(|s| ("step", s))
            .chain(ex.cleanup.iter().map(|s| ("cleanup", s)));
        for (kind, spec) in lines {
            let start = format!("  {kind} {}\t{} ", spec.name, spec.method);
            let Some(line) = stdout.lines().find(|l| l.starts_with(&start)) else {
                failures.push(format!("{}: no line {start:?} in:\n{stdout}", ex.path));
                continue;
            };
            if !line.contains(&auth) {
                failures.push(format!("{}: want {auth:?} in {line:?}", ex.path));
            }
            for (var, _) in spec.captures {
                if !line.contains(var) {
                    failures.push(format!("{}: capture {var} not in {line:?}", ex.path));
                }
            }
        }
        for (name, text) in [("stdout", &stdout), ("stderr", &stderr)] {
            if text.contains(DUMMY_SECRET) {
                failures.push(format!("{}: the secret is in {name}:\n{text}", ex.path));
            }
        }
    }
    assert_table_passed(&failures, step_count());
}

#[test]
fn check_config_without_the_secret_exits_2_at_the_secret() {
    let mut failures = Vec::new();
    for ex in EXAMPLES {
        let out = ex.check_config(None);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(2) {
            failures.push(format!(
                "{}: exit {:?}, want 2\nstdout: {stdout}\nstderr: {stderr}",
                ex.path, out.status
            ));
        }
        let want = format!(
            "{}: secrets.{}: environment variable {} is not set\n",
            ex.secret_location(),
            ex.secret,
            ex.env
        );
        if !stderr.ends_with(&want) {
            failures.push(format!("{}: want {want:?} in stderr: {stderr}", ex.path));
        }
        if !stdout.is_empty() {
            failures.push(format!("{}: stdout should be empty: {stdout}", ex.path));
        }
    }
    assert_table_passed(&failures, EXAMPLES.len());
}

#[test]
fn examples_load_with_the_documented_steps_captures_and_cleanup() {
    let mut failures = Vec::new();
    for ex in EXAMPLES {
        let cfg = match ex.load(&ex.text()) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{}: {e}", ex.path));
                continue;
            }
        };
        assert!(cfg.checks.is_empty(), "{}: no single checks", ex.path);
        assert_eq!(cfg.listen.to_string(), ex.listen, "{}", ex.path);
        let flow = flow(&cfg, ex);
        assert_eq!(
            (flow.name.as_str(), flow.group.as_str()),
            (ex.flow, ex.group),
            "{}",
            ex.path
        );
        if flow.steps.len() != ex.steps.len() || flow.cleanup.len() != ex.cleanup.len() {
            failures.push(format!(
                "{}: {} steps + {} cleanup, want {} + {}",
                ex.path,
                flow.steps.len(),
                flow.cleanup.len(),
                ex.steps.len(),
                ex.cleanup.len()
            ));
            continue;
        }
        for (step, spec) in flow.steps.iter().zip(ex.steps) {
            failures.extend(step_mismatches("step", step, spec, ex));
        }
        for (step, spec) in flow.cleanup.iter().zip(ex.cleanup) {
            failures.extend(step_mismatches("cleanup", step, spec, ex));
        }
        let debug = format!("{cfg:?}");
        if debug.contains(DUMMY_SECRET) {
            failures.push(format!("{}: the secret is in the config's Debug", ex.path));
        }
    }
    assert_table_passed(&failures, step_count());
}

/// Every request the examples send, rendered with made-up answers: the
/// MLflow field names and the URLs are the ones the comments promise.
#[test]
fn example_requests_render_to_the_documented_calls() {
    let templater = Templater::default();
    let mut failures = Vec::new();
    for ex in EXAMPLES {
        let cfg = ex.load(&ex.text()).unwrap_or_else(|e| panic!("{e}"));
        let flow = flow(&cfg, ex);
        let mut vars: Vars = flow.vars.clone();
        for (k, v) in BUILTINS.iter().chain(ex.answers) {
            vars.insert(k.to_string(), v.to_string());
        }
        let pairs = flow
            .steps
            .iter()
            .zip(ex.steps)
            .chain(flow.cleanup.iter().zip(ex.cleanup));
        for (step, spec) in pairs {
            let at = format!("{}: {:?}", ex.path, spec.name);
            let req = match step.request.render(&templater, &vars) {
                Ok(r) => r,
                Err(e) => {
                    failures.push(format!("{at}: does not render: {e}"));
                    continue;
                }
            };
            let url = ex.url(spec);
            if req.url.as_str() != url {
                failures.push(format!("{at}: URL {}, want {url}", req.url));
            }
            if req.method.as_str() != spec.method {
                failures.push(format!("{at}: method {}", req.method));
            }
            if spec.body.is_empty() {
                continue;
            }
            let body: Value = match req.body.as_deref().map(serde_json::from_slice) {
                Some(Ok(v)) => v,
                other => {
                    failures.push(format!("{at}: the body is not JSON: {other:?}"));
                    continue;
                }
            };
            for (pointer, want) in spec.body {
                if body.pointer(pointer).and_then(Value::as_str) != Some(*want) {
                    failures.push(format!("{at}: {pointer} is not {want:?} in {body}"));
                }
            }
            let content_type = req.headers.get("content-type").map(|v| v.as_bytes());
            if content_type != Some(b"application/json".as_slice()) {
                failures.push(format!("{at}: content-type {content_type:?}"));
            }
        }
    }
    assert_table_passed(&failures, step_count());
}

/// Cleanup deletes what the steps made, newest first: cleanup step `i`
/// needs what main step `n - 1 - i` captured.
#[test]
fn mlflow_cleanup_undoes_the_steps_in_reverse() {
    let ex = &EXAMPLES[0];
    let cfg = ex.load(&ex.text()).unwrap_or_else(|e| panic!("{e}"));
    let flow = flow(&cfg, ex);
    assert_eq!(flow.steps.len(), 4, "a failure shows as n/4 stages");
    assert_eq!(flow.cleanup.len(), flow.steps.len());
    for (i, undo) in flow.cleanup.iter().enumerate() {
        let made = &flow.steps[flow.steps.len() - 1 - i];
        for capture in &made.captures {
            assert!(
                undo.uses.contains(&capture.var),
                "cleanup {:?} should use {} from {:?}; uses {:?}",
                undo.name,
                capture.var,
                made.name,
                undo.uses
            );
        }
    }
    for step in &flow.steps {
        assert!(
            step.request
                .headers
                .iter()
                .any(|(name, value)| name == "x-synthetic" && value == "lookout"),
            "{:?} lacks the X-Synthetic header",
            step.name
        );
    }
}

/// The commented-out `api_key` alternative in the MLflow example is valid
/// as written: swapping it in for the bearer line loads.
#[test]
fn mlflow_api_key_alternative_in_the_comments_loads() {
    let ex = &EXAMPLES[0];
    let text = ex.text();
    let (mut bearer, mut api_key) = (0, 0);
    let swapped: String = text
        .lines()
        .map(|line| {
            if line.starts_with("auth = { scheme = \"bearer\"") {
                bearer += 1;
                format!("# {line}\n")
            } else if let Some(rest) = line.strip_prefix("# auth = { scheme = \"api_key\"") {
                api_key += 1;
                format!("auth = {{ scheme = \"api_key\"{rest}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    assert_eq!((bearer, api_key), (1, 1), "one auth line of each kind");
    let cfg = ex.load(&swapped).unwrap_or_else(|e| panic!("{e}"));
    for step in flow(&cfg, ex).steps.iter().chain(&flow(&cfg, ex).cleanup) {
        let auth = &step.request.auth;
        assert_eq!(
            (auth.scheme(), auth.placement().as_deref()),
            ("api_key", Some("header x-api-key")),
            "{:?}",
            step.name
        );
        assert_eq!(
            auth.secret().map(|s| s.origin()),
            Some(&SecretOrigin::Named(ex.secret.to_owned()))
        );
    }
}
