//! Rendered output for a fixed set of results: any change to a metric name,
//! label, or API field shows up as a snapshot diff.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use lookout::outcome::{
    CheckResult, FailureKind, FlowResult, Outcome, Phases, StepResult, StepRun,
};
use lookout::record::Recorder;
use lookout::serve::view;

use crate::support::config;

fn fixed_recorder() -> (Recorder, lookout::config::Config) {
    let cfg = config(
        r#"
[secrets]
platform_key = { env = "PLATFORM_API_KEY" }
[[checks]]
name = "auth-health"
group = "infrastructure"
url = "https://auth.example.test/health"
[[checks]]
name = "validate-key"
group = "authentication"
method = "POST"
url = "https://auth.example.test/api/v1/keys/validate"
auth = { scheme = "api_key", secret = "platform_key" }
[[checks]]
name = "mlflow-proxy"
group = "infrastructure"
url = "https://registry.example.test/api/mlflow/api/2.0/mlflow/experiments/search"
[[flows]]
name = "model-registration"
group = "ml-platform"
auth = { scheme = "bearer", secret = "platform_key" }
vars = { base = "https://registry.example.test/api/2.0/mlflow" }
[[flows.steps]]
name = "create-experiment"
method = "POST"
url = "{{ base }}/experiments/create"
capture = { experiment_id = "/experiment_id" }
[[flows.steps]]
name = "log-run"
method = "POST"
url = "{{ base }}/runs/create"
json = { experiment_id = "{{ experiment_id }}" }
[[flows.steps]]
name = "register-model"
method = "POST"
url = "{{ base }}/registered-models/create"
[[flows.cleanup]]
name = "delete-experiment"
method = "POST"
url = "{{ base }}/experiments/delete"
json = { experiment_id = "{{ experiment_id }}" }
"#,
    );
    let recorder = Recorder::new(&cfg);
    let at = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap();
    let phases = Phases {
        resolve: Duration::from_millis(2),
        connect: Duration::from_millis(10),
        tls: Duration::from_millis(30),
        processing: Duration::from_millis(75),
        transfer: Duration::from_millis(3),
    };
    recorder.record(
        &cfg.checks[0],
        CheckResult {
            started_at: at,
            duration: Duration::from_millis(120),
            status: Some(200),
            outcome: Outcome::Success,
            phases,
            redirects: 0,
            tls_not_after: Some(Utc.with_ymd_and_hms(2027, 2, 1, 0, 0, 0).unwrap()),
            tls: None,
            seen: Default::default(),
            schedule_lag: Duration::from_micros(800),
            fetched_credential: None,
            burst: Vec::new(),
        },
    );
    recorder.record(
        &cfg.checks[1],
        CheckResult {
            started_at: at,
            duration: Duration::from_millis(95),
            status: Some(401),
            outcome: Outcome::Failure {
                kind: FailureKind::Status,
                reason: "status 401, expected 2xx: \"API key does not have access to service 'ml-platform'\"".into(),
            },
            phases,
            redirects: 0,
            tls_not_after: None,
            tls: None,
            seen: Default::default(),
            schedule_lag: Duration::from_millis(3),
            fetched_credential: None,
            burst: Vec::new(),
        },
    );
    let step = |name: &str, run: StepRun, status: Option<u16>, ms: u64| StepResult {
        name: name.into(),
        run,
        status,
        duration: Duration::from_millis(ms),
        burst: Vec::new(),
    };
    recorder.record_flow(
        &cfg.flows[0],
        FlowResult {
            started_at: at,
            duration: Duration::from_millis(61),
            schedule_lag: Duration::from_millis(1),
            steps: vec![
                step(
                    "create-experiment",
                    StepRun::Ran(Outcome::Success),
                    Some(200),
                    20,
                ),
                step(
                    "log-run",
                    StepRun::Ran(Outcome::Failure {
                        kind: FailureKind::Status,
                        reason: "status 404, expected 2xx: \"experiment '7' does not exist\""
                            .into(),
                    }),
                    Some(404),
                    15,
                ),
                step(
                    "register-model",
                    StepRun::Skipped("not run: step \"log-run\" failed".into()),
                    None,
                    0,
                ),
            ],
            cleanup: vec![step(
                "delete-experiment",
                StepRun::Ran(Outcome::Success),
                Some(200),
                26,
            )],
            captured: vec![("experiment_id".into(), "7".into())],
        },
    );
    (recorder, cfg)
}

#[test]
fn metrics_text() {
    let (recorder, _) = fixed_recorder();
    // The load time is the one value that is not fixed.
    let text: String = recorder
        .render_metrics()
        .lines()
        .map(
            |l| match l.strip_prefix("lookout_config_last_reload_success_timestamp_seconds ") {
                Some(_) => {
                    "lookout_config_last_reload_success_timestamp_seconds (now)\n".to_owned()
                }
                None => format!("{l}\n"),
            },
        )
        .collect();
    insta::assert_snapshot!(text);
}

#[test]
fn status_json() {
    let (recorder, cfg) = fixed_recorder();
    let mut v = serde_json::to_value(view::build(&recorder.board(), &cfg.redactor)).unwrap();
    v["generated_at"] = "(now)".into();
    insta::assert_snapshot!(serde_json::to_string_pretty(&v).unwrap());
}
