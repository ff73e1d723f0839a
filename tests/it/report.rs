//! `lookout report`: the Markdown and JSON of a fixed set of results (with
//! a previous report, so the changes show), the secret kept out of a real
//! run's output, and the exit codes a deploy pipeline relies on.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use lookout::config::Config;
use lookout::outcome::{
    CheckResult, FailureKind, FlowResult, Outcome, Phases, StepResult, StepRun,
};
use lookout::report::{Report, markdown};
use lookout::run::Once;

use crate::support::{TEST_SECRET, config, start_target};

/// The checks and flow of both fixed reports; `extra` is the one check
/// that differs between them.
fn fixed_config(extra: &str) -> Config {
    config(&format!(
        r#"
[secrets]
platform_key = {{ env = "PLATFORM_API_KEY" }}
[[checks]]
name = "auth-health"
group = "infrastructure"
url = "https://auth.example.test/health"
[[checks]]
name = "readyz"
group = "infrastructure"
url = "https://auth.example.test/readyz"
[[checks]]
name = "mlflow-proxy"
group = "infrastructure"
url = "https://registry.example.test/api/mlflow/api/2.0/mlflow/experiments/search"
[[checks]]
name = "validate-key"
group = "authentication"
method = "POST"
url = "https://auth.example.test/api/v1/keys/validate"
auth = {{ scheme = "api_key", header = "X-API-Key", secret = "platform_key" }}
json = {{ service_id = "{{{{ service_id }}}}" }}
matrix = {{ service_id = ["ml-platform"] }}
{extra}
[[flows]]
name = "model-registration"
group = "ml-platform"
auth = {{ scheme = "bearer", secret = "platform_key" }}
vars = {{ base = "https://registry.example.test/api/2.0/mlflow" }}
[[flows.steps]]
name = "create-experiment"
method = "POST"
url = "{{{{ base }}}}/experiments/create"
capture = {{ experiment_id = "/experiment_id" }}
[[flows.steps]]
name = "log-run"
method = "POST"
url = "{{{{ base }}}}/runs/create"
json = {{ experiment_id = "{{{{ experiment_id }}}}" }}
capture = {{ mlflow_run = "/run/info/run_id" }}
[[flows.steps]]
name = "register-model"
method = "POST"
url = "{{{{ base }}}}/registered-models/create"
[[flows.steps]]
name = "create-version"
method = "POST"
url = "{{{{ base }}}}/model-versions/create"
json = {{ run_id = "{{{{ mlflow_run }}}}" }}
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
    ))
}

fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, 10, 0, 0).unwrap()
}

fn pass(status: u16, ms: u64) -> CheckResult {
    result(status, ms, Outcome::Success)
}

fn fail(status: Option<u16>, ms: u64, kind: FailureKind, reason: &str) -> CheckResult {
    let mut r = result(
        0,
        ms,
        Outcome::Failure {
            kind,
            reason: reason.into(),
        },
    );
    r.status = status;
    r
}

fn result(status: u16, ms: u64, outcome: Outcome) -> CheckResult {
    CheckResult {
        started_at: at(23),
        duration: Duration::from_millis(ms),
        status: Some(status),
        outcome,
        phases: Phases::default(),
        redirects: 0,
        tls_not_after: None,
        tls: None,
        seen: Default::default(),
        schedule_lag: Duration::ZERO,
        fetched_credential: None,
        burst: Vec::new(),
    }
}

fn step(name: &str, run: StepRun, status: Option<u16>, ms: u64) -> StepResult {
    StepResult {
        name: name.into(),
        run,
        status,
        duration: Duration::from_millis(ms),
        burst: Vec::new(),
    }
}

fn ok() -> StepRun {
    StepRun::Ran(Outcome::Success)
}

fn failed(kind: FailureKind, reason: &str) -> StepRun {
    StepRun::Ran(Outcome::Failure {
        kind,
        reason: reason.into(),
    })
}

fn skipped(why: &str) -> StepRun {
    StepRun::Skipped(why.into())
}

/// Results for `cfg`'s checks by name, and the flow's steps and cleanup.
fn once(
    cfg: &Config,
    checks: &[(&str, CheckResult)],
    steps: Vec<StepResult>,
    cleanup: Vec<StepResult>,
) -> Once {
    let checks = cfg
        .checks
        .iter()
        .map(|c| {
            let (_, r) = checks
                .iter()
                .find(|(n, _)| *n == c.name)
                .unwrap_or_else(|| panic!("no result for {}", c.name));
            (Arc::clone(c), r.clone())
        })
        .collect();
    let flow = FlowResult {
        started_at: at(23),
        duration: Duration::from_millis(87),
        schedule_lag: Duration::ZERO,
        steps,
        cleanup,
        captured: vec![("experiment_id".into(), "7".into())],
    };
    Once {
        checks,
        flows: vec![(Arc::clone(&cfg.flows[0]), flow)],
    }
}

const VALIDATE: &str = "validate-key[service_id=ml-platform]";

/// Yesterday: auth-health down with a 502, the key still accepted, the
/// flow broken at its first step, and a legacy check since removed.
fn previous_report() -> Report {
    let cfg = fixed_config(
        r#"[[checks]]
name = "legacy-endpoint"
group = "legacy"
url = "https://auth.example.test/v0/health""#,
    );
    let results = [
        (
            "auth-health",
            fail(
                Some(502),
                30,
                FailureKind::Status,
                "status 502, expected 2xx: \"Bad Gateway\"",
            ),
        ),
        ("readyz", pass(200, 12)),
        (
            "mlflow-proxy",
            fail(
                Some(404),
                40,
                FailureKind::Status,
                "status 404, expected 2xx: \"Not Found\"",
            ),
        ),
        (VALIDATE, pass(200, 90)),
        (
            "legacy-endpoint",
            fail(
                None,
                10_000,
                FailureKind::Timeout,
                "timed out after 10s waiting for response headers",
            ),
        ),
    ];
    let steps = vec![
        step(
            "create-experiment",
            failed(
                FailureKind::Status,
                "status 401, expected 2xx: \"Invalid or expired API key\"",
            ),
            Some(401),
            25,
        ),
        step(
            "log-run",
            skipped("not run: step \"create-experiment\" failed"),
            None,
            0,
        ),
        step(
            "register-model",
            skipped("not run: step \"create-experiment\" failed"),
            None,
            0,
        ),
        step(
            "create-version",
            skipped("not run: step \"create-experiment\" failed"),
            None,
            0,
        ),
    ];
    let cleanup = vec![
        step(
            "delete-run",
            skipped("not run: needs mlflow_run, which was not captured"),
            None,
            0,
        ),
        step(
            "delete-experiment",
            skipped("not run: needs experiment_id, which was not captured"),
            None,
            0,
        ),
    ];
    Report::build(&cfg, &once(&cfg, &results, steps, cleanup), at(22), None)
}

/// Today: auth-health fixed, the key rejected (and echoed back), the proxy
/// still 404 with a reason full of table-breaking characters, a new check,
/// and the flow one stage further but its cleanup failing.
fn current_report(previous: Option<&Report>) -> Report {
    let cfg = fixed_config(
        r#"[[checks]]
name = "registry-health"
group = "ml-platform"
url = "https://registry.example.test/health""#,
    );
    let results = [
        ("auth-health", pass(200, 120)),
        ("readyz", pass(200, 11)),
        (
            "mlflow-proxy",
            fail(
                Some(404),
                38,
                FailureKind::Status,
                "status 404, expected 2xx: \"no route | try /api/2.0\nsee <docs> for `routes`\"",
            ),
        ),
        (
            VALIDATE,
            fail(
                Some(401),
                95,
                FailureKind::Status,
                &format!(
                    "status 401, expected 2xx: \"key {TEST_SECRET} does not have access to service 'ml-platform'\""
                ),
            ),
        ),
        ("registry-health", pass(200, 48)),
    ];
    let steps = vec![
        step("create-experiment", ok(), Some(200), 20),
        step(
            "log-run",
            failed(
                FailureKind::Status,
                "status 404, expected 2xx: \"experiment '7' does not exist\"",
            ),
            Some(404),
            15,
        ),
        step(
            "register-model",
            skipped("not run: step \"log-run\" failed"),
            None,
            0,
        ),
        step(
            "create-version",
            skipped("not run: step \"log-run\" failed"),
            None,
            0,
        ),
    ];
    let cleanup = vec![
        step(
            "delete-run",
            skipped("not run: needs mlflow_run, which was not captured"),
            None,
            0,
        ),
        step(
            "delete-experiment",
            failed(
                FailureKind::Status,
                "status 500, expected 2xx: \"database is locked\"",
            ),
            Some(500),
            26,
        ),
    ];
    Report::build(
        &cfg,
        &once(&cfg, &results, steps, cleanup),
        at(23),
        previous,
    )
}

#[test]
fn markdown_of_fixed_results() {
    let previous = previous_report();
    let report = current_report(Some(&previous));
    let md = markdown::render(&report);
    assert!(!md.contains(TEST_SECRET), "{md}");
    insta::assert_snapshot!(md);
}

#[test]
fn markdown_without_a_previous_report() {
    let md = markdown::render(&current_report(None));
    assert!(!md.contains("What changed"), "{md}");
    assert!(!md.contains("| change |"), "{md}");
    insta::assert_snapshot!(md);
}

#[test]
fn json_of_fixed_results() {
    let previous = previous_report();
    let report = current_report(Some(&previous));
    let json = report.to_json();
    assert!(!json.contains(TEST_SECRET), "{json}");
    insta::assert_snapshot!(json);
}

#[test]
fn json_reads_back_as_the_same_report() {
    let previous = previous_report();
    let report = current_report(Some(&previous));
    let back = Report::from_json(&report.to_json()).expect("a report reads back");
    assert_eq!(back, report);
    // And a report read back compares as the original did.
    let again = current_report(Some(&Report::from_json(&previous.to_json()).unwrap()));
    assert_eq!(again, report);
}

#[test]
fn scores_count_a_flow_as_one_check() {
    let report = current_report(Some(&previous_report()));
    // 3 passing checks of 5, and the failing flow: 3/6.
    assert_eq!(
        (
            report.overall.passing,
            report.overall.failing,
            report.overall.total
        ),
        (3, 3, 6)
    );
    assert_eq!(report.overall.score, Some(0.5));
    let c = report.comparison.as_ref().expect("a comparison");
    let d = c.overall.delta_points.expect("a delta");
    assert!((d - (50.0 - 100.0 / 3.0)).abs() < 1e-9, "{d}");
    let names = |l: &[lookout::report::Change]| -> Vec<String> {
        l.iter().map(|c| c.name.clone()).collect()
    };
    assert_eq!(names(&c.fixed), ["auth-health"]);
    assert_eq!(names(&c.broken), [VALIDATE]);
    assert_eq!(names(&c.new), ["registry-health"]);
    assert_eq!(names(&c.removed), ["legacy-endpoint"]);
    assert_eq!(
        names(&c.still_failing),
        ["mlflow-proxy", "model-registration"]
    );
}

#[test]
fn a_previous_report_that_is_not_one_is_a_clear_error() {
    let cases = [
        ("not json", "1:2: not a lookout JSON report"),
        ("{\"report_version\": 1}", "not a lookout JSON report"),
        (
            "{\"report_version\": 1, \"generated_at\": \"yesterday\"}",
            "generated_at: not a lookout JSON report",
        ),
    ];
    for (text, want) in cases {
        let err = Report::from_json(text).expect_err(text).to_string();
        assert!(err.contains(want), "{text}: {err}");
    }
    let mut v: serde_json::Value = serde_json::from_str(&previous_report().to_json()).unwrap();
    v["report_version"] = 2.into();
    let err = Report::from_json(&v.to_string()).unwrap_err().to_string();
    assert!(err.contains("report_version 2 is not supported"), "{err}");
}

// ---- the binary ----

/// Runs `lookout` with `args`, at most 60 s, with the test secret in the
/// environment; output goes to files so a big report cannot block it.
fn lookout(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out_path = dir.join("stdout.txt");
    let err_path = dir.join("stderr.txt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(args)
        .env("PLATFORM_API_KEY", TEST_SECRET)
        .env("LOOKOUT_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("lookout starts");
    let status = crate::support::wait_bounded(
        &mut child,
        Duration::from_secs(60),
        &format!("lookout {args:?}"),
    );
    (
        status.code(),
        std::fs::read_to_string(out_path).unwrap(),
        std::fs::read_to_string(err_path).unwrap(),
    )
}

/// A config with a passing check and one whose target echoes the key back
/// in its 401 body: one of two passing.
fn target_config(dir: &Path, name: &str, base: &str, extra: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            r#"[server]
listen = "127.0.0.1:0"
[store]
path = ":memory:"
[defaults]
timeout = "5s"
[secrets]
platform_key = {{ env = "PLATFORM_API_KEY" }}
[[checks]]
name = "echo"
group = "infrastructure"
url = "{base}/echo"
[[checks]]
name = "echo-key"
group = "authentication"
url = "{base}/echo-key"
auth = {{ scheme = "api_key", header = "X-API-Key", secret = "platform_key" }}
{extra}
"#
        ),
    )
    .unwrap();
    path
}

fn fingerprint() -> String {
    lookout::secret::Secret::new(
        TEST_SECRET.to_owned(),
        lookout::secret::SecretOrigin::Literal,
    )
    .fingerprint()
    .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_never_appears_in_a_real_report() {
    let target = start_target().await;
    let base = format!("http://{}", target.addr);
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let cfg = target_config(dir.path(), "lookout.toml", &base, "");
        let cfg = cfg.to_str().unwrap();
        for format in ["markdown", "json"] {
            let (code, stdout, stderr) =
                lookout(dir.path(), &["report", "--config", cfg, "--format", format]);
            assert_eq!(code, Some(0), "{format}: {stderr}");
            for (what, text) in [("stdout", &stdout), ("stderr", &stderr)] {
                assert!(
                    !text.contains(TEST_SECRET),
                    "{format}: the secret is in {what}:\n{text}"
                );
            }
            assert!(
                stdout.contains(&fingerprint()),
                "{format}: no fingerprint:\n{stdout}"
            );
            // The echoed key was there, and was redacted, not dropped.
            assert!(
                stdout.contains(&format!("[redacted {}]", fingerprint()))
                    || stdout.contains(&format!("\\[redacted {}\\]", fingerprint())),
                "{format}: the echoed key is not shown redacted:\n{stdout}"
            );
        }
    })
    .await
    .unwrap();
    assert!(
        target
            .seen_on("/echo-key")
            .iter()
            .all(|s| s.header("x-api-key") == Some(TEST_SECRET)),
        "the key was sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes() {
    let target = start_target().await;
    let base = format!("http://{}", target.addr);
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let good = target_config(d, "lookout.toml", &base, "");
        let good = good.to_str().unwrap();
        let bad = d.join("bad.toml");
        std::fs::write(&bad, "[[checks]]\nname = \"a\"\nurl = \"ftp://x\"\n").unwrap();
        let bad = bad.to_str().unwrap();
        let garbage = d.join("garbage.json");
        std::fs::write(&garbage, "{\"not\": \"a report\"}").unwrap();
        let garbage = garbage.to_str().unwrap();
        let missing = d.join("absent.json");
        let missing = missing.to_str().unwrap();

        // (args, exit code, a piece of stdout, a piece of stderr)
        let cases: &[(&[&str], i32, &str, &str)] = &[
            (&["report", "--config", good], 0, "50.0% (1/2 checks)", ""),
            (&["report", "--config", good, "--fail-under", "0.5"], 0, "DEGRADED", ""),
            (&["report", "--config", good, "--fail-under", "50%"], 0, "DEGRADED", ""),
            (
                &["report", "--config", good, "--fail-under", "0.9"],
                3,
                "DEGRADED",
                "below --fail-under 90.0%",
            ),
            (
                &["report", "--config", good, "--format", "json", "--fail-under", "90%"],
                3,
                "\"passing\": 1",
                "overall score 50.0% is below",
            ),
            (&["report", "--config", good, "--fail-under", "90"], 2, "", "write 90%"),
            (&["report", "--config", bad], 2, "", "bad.toml:3:7: checks[0].url"),
            (&["report", "--config", good, "--against", missing], 2, "", "absent.json: cannot read"),
            (
                &["report", "--config", good, "--against", garbage],
                2,
                "",
                "not a lookout JSON report",
            ),
            (&["report", "--help"], 0, "3  the report was printed, but", ""),
        ];
        let mut failures = Vec::new();
        for (args, code, out, err) in cases {
            let (got, stdout, stderr) = lookout(d, args);
            if got != Some(*code) || !stdout.contains(out) || !stderr.contains(err) {
                failures.push(format!(
                    "{args:?}: exit {got:?} (want {code}), stdout want {out:?}, stderr want {err:?}\n--- stdout\n{stdout}--- stderr\n{stderr}"
                ));
            }
            if *code == 2 && !args.contains(&"--help") && !stdout.is_empty() {
                failures.push(format!("{args:?}: printed a report and failed:\n{stdout}"));
            }
        }
        crate::support::assert_table_passed(&failures, cases.len());
    })
    .await
    .unwrap();
}

/// A JSON report from one run is what the next run compares with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_previous_run_round_trips() {
    let target = start_target().await;
    let base = format!("http://{}", target.addr);
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let first = target_config(d, "first.toml", &base, "");
        let (code, json, stderr) = lookout(
            d,
            &[
                "report",
                "--config",
                first.to_str().unwrap(),
                "--format",
                "json",
            ],
        );
        assert_eq!(code, Some(0), "{stderr}");
        let previous = d.join("previous.json");
        std::fs::write(&previous, &json).unwrap();
        let parsed = Report::from_json(&json).expect("the JSON output is a report");
        assert_eq!(parsed.overall.total, 2);

        // The second run has one more check, which passes.
        let second = target_config(
            d,
            "second.toml",
            &base,
            &format!("[[checks]]\nname = \"teapot\"\nurl = \"{base}/status/200\"\n"),
        );
        let args = [
            "report",
            "--config",
            second.to_str().unwrap(),
            "--against",
            previous.to_str().unwrap(),
        ];
        let (code, md, stderr) = lookout(d, &args);
        assert_eq!(code, Some(0), "{stderr}");
        for want in [
            "**Compared with**: the report of",
            "50.0% → 66.7%, +16.7 points",
            "## What changed",
            "0 fixed, 0 broken, 1 new, 0 removed, 1 still failing",
            "### New\n\n- 🆕 `teapot` (default): ✅ PASS, 200",
            "### Still failing\n\n- ❌ `echo-key` (authentication): 401 → 401",
            "| authentication | 0/1 | 0.0% | no change |",
            "| default | 1/1 | 100.0% | new group |",
        ] {
            assert!(md.contains(want), "want {want:?} in:\n{md}");
        }
        assert!(!md.contains(TEST_SECRET), "{md}");

        // The same with JSON output: the comparison is in it.
        let (code, json, stderr) = lookout(d, &[&args[..], &["--format", "json"]].concat());
        assert_eq!(code, Some(0), "{stderr}");
        let r = Report::from_json(&json).unwrap();
        let c = r.comparison.expect("a comparison");
        assert_eq!(c.new.len(), 1);
        assert_eq!(c.previous_generated_at, parsed.generated_at);
    })
    .await
    .unwrap();
}

// ---- the same limits as the daemon ----

/// A small target: it serves `capacity` connections at once, each held for
/// `hold` before the answer, and closes any connection beyond that at
/// once, as a server with a full worker pool does.
struct Small {
    addr: std::net::SocketAddr,
    refused: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

async fn small_target(capacity: usize, hold: Duration) -> Small {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (refused, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (r, p) = (refused.clone(), peak.clone());
    let slots = Arc::new(tokio::sync::Semaphore::new(capacity));
    let in_flight = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                r.fetch_add(1, Ordering::SeqCst);
                drop(stream);
                continue;
            };
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            let in_flight = in_flight.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                tokio::time::sleep(hold).await;
                // Free before answering: once the client has its answer, the
                // slot is free for its next request.
                in_flight.fetch_sub(1, Ordering::SeqCst);
                drop(slot);
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Small {
        addr,
        refused,
        peak,
    }
}

/// `lookout report` waits for the same per-target and global limits as the
/// daemon: against a target that serves three connections at once, with
/// `max_concurrent_per_target = 3`, both pass every check and the flow
/// (it used to send all thirteen at once and get three passes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_takes_the_daemons_concurrency_limits() {
    let small = small_target(3, Duration::from_millis(100)).await;
    let base = format!("http://{}", small.addr);
    let mut toml = String::from(
        "[server]\nlisten = \"127.0.0.1:0\"\n[scheduler]\nmax_concurrent_probes = 64\n\
         max_concurrent_per_target = 3\n[defaults]\ntimeout = \"10s\"\n\
         schedule = \"* * * * * *\"\n",
    );
    for i in 0..12 {
        toml.push_str(&format!(
            "[[checks]]\nname = \"c{i:02}\"\nurl = \"{base}/c{i}\"\n"
        ));
    }
    toml.push_str(&format!(
        "[[flows]]\nname = \"f\"\n[[flows.steps]]\nname = \"one\"\nurl = \"{base}/f1\"\n\
         [[flows.steps]]\nname = \"two\"\nurl = \"{base}/f2\"\n"
    ));

    // The daemon: every check fires on the same second.
    let daemon = lookout::daemon::Daemon::start(config(&toml)).await.unwrap();
    let recorder = daemon.recorder.clone();
    let from_daemon: Vec<(String, bool)> =
        crate::support::eventually(Duration::from_secs(15), async || {
            let entries = recorder.board().entries();
            entries
                .iter()
                .map(|e| {
                    let last = e.last.as_ref()?;
                    Some((e.monitor.name().to_owned(), last.outcome.is_success()))
                })
                .collect()
        })
        .await;
    daemon.shutdown().await;
    assert_eq!(small.refused.load(Ordering::SeqCst), 0, "the daemon");

    // The report, on the same config.
    let once = lookout::run::run_once(&config(&toml)).await.unwrap();
    let from_report: Vec<(String, bool)> = once
        .checks
        .iter()
        .map(|(c, r)| (c.name.clone(), r.outcome.is_success()))
        .chain(
            once.flows
                .iter()
                .map(|(f, r)| (f.name.clone(), r.summary().outcome.is_success())),
        )
        .collect();
    assert_eq!(from_report, from_daemon, "the same verdicts");
    assert!(from_report.iter().all(|(_, ok)| *ok), "{from_report:?}");
    assert_eq!(small.refused.load(Ordering::SeqCst), 0, "the report");
    assert!(small.peak.load(Ordering::SeqCst) <= 3);
}
