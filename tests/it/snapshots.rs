//! Rendered output for a fixed set of results: any change to a metric name,
//! label, or API field shows up as a snapshot diff.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use lookout::outcome::{CheckResult, FailureKind, Outcome, Phases};
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
            schedule_lag: Duration::from_micros(800),
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
            schedule_lag: Duration::from_millis(3),
        },
    );
    (recorder, cfg)
}

#[test]
fn metrics_text() {
    let (recorder, _) = fixed_recorder();
    insta::assert_snapshot!(recorder.metrics.render());
}

#[test]
fn status_json() {
    let (recorder, cfg) = fixed_recorder();
    let mut v = serde_json::to_value(view::build(&recorder.board, &cfg.redactor)).unwrap();
    v["generated_at"] = "(now)".into();
    insta::assert_snapshot!(serde_json::to_string_pretty(&v).unwrap());
}
