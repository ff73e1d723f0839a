//! The daemon as a whole: scheduling, scores, /metrics, the API, the page,
//! and the secret sweep through the real binary.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use lookout::daemon::Daemon;
use prometheus_parse::{Scrape, Value};

use crate::support::{TEST_SECRET, config, eventually, start_target, tool};

async fn get(url: String) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

/// Waits (10 s at most) until every check of `daemon` has a result, then
/// reads `/metrics`, `/api/v1/status` and the page.
pub async fn once_judged(daemon: &Daemon) -> (String, serde_json::Value, String) {
    let recorder = daemon.recorder.clone();
    eventually(Duration::from_secs(10), async || {
        (recorder.board().overall().pending == 0).then_some(())
    })
    .await;
    let base = format!("http://{}", daemon.addr);
    let metrics = get(format!("{base}/metrics")).await;
    let status = serde_json::from_str(&get(format!("{base}/api/v1/status")).await).unwrap();
    let page = get(format!("{base}/")).await;
    (metrics, status, page)
}

pub fn gauge(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            Value::Gauge(v) | Value::Counter(v) | Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

pub fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("metrics parse")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_runs_are_skipped_not_doubled() {
    let target = start_target().await;
    let cfg = config(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
[[checks]]
name = "slow"
url = "{}"
interval = "100ms"
timeout = "2s"
"#,
        target.url("/slow/450")
    ));
    let daemon = Daemon::start(cfg).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let metrics = get(format!("http://{}/metrics", daemon.addr)).await;
    daemon.shutdown().await;
    assert_eq!(
        target.shared.max_in_flight.load(Ordering::SeqCst),
        1,
        "a check must never run twice at once"
    );
    let scrape = parse(&metrics);
    let skipped = gauge(
        &scrape,
        "lookout_check_skipped_runs_total",
        &[("check", "slow")],
    )
    .unwrap_or(0.0);
    let runs = gauge(
        &scrape,
        "lookout_check_runs_total",
        &[("check", "slow"), ("outcome", "success")],
    )
    .unwrap_or(0.0);
    assert!(skipped >= 3.0, "skipped {skipped}, runs {runs}");
    assert!((1.0..=4.0).contains(&runs), "runs {runs}");
}

/// 6 of 11 checks pass, as in the user's report: "54.5% (6/11 checks)".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_metrics_api_and_page_agree() {
    let target = start_target().await;
    let mut toml =
        String::from("[server]\nlisten = \"127.0.0.1:0\"\n[defaults]\ninterval = \"150ms\"\n");
    // (name prefix, how many, how many of them in "infrastructure", path)
    // Failing checks' target answers with markup, which must show as text.
    let evil = "%3Cscript%3Ealert(1)%3C%2Fscript%3E";
    let batches = [
        ("ok", 6, 4, "/echo".to_owned()),
        ("bad", 5, 1, format!("/status/401?detail={evil}")),
    ];
    for (prefix, count, infrastructure, path) in batches {
        for i in 0..count {
            let group = if i < infrastructure {
                "infrastructure"
            } else {
                "authentication"
            };
            toml.push_str(&format!(
                "[[checks]]\nname = \"{prefix}-{i}\"\ngroup = \"{group}\"\nurl = \"{}\"\n",
                target.url(&path)
            ));
        }
    }
    let daemon = Daemon::start(config(&toml)).await.unwrap();
    let (metrics, status, page) = once_judged(&daemon).await;
    let base = format!("http://{}", daemon.addr);
    let ready = reqwest::get(format!("{base}/readyz"))
        .await
        .unwrap()
        .status();
    let health = reqwest::get(format!("{base}/healthz"))
        .await
        .unwrap()
        .status();
    daemon.shutdown().await;

    assert_eq!(ready, 200);
    assert_eq!(health, 200);

    // JSON API
    let score = status["overall"]["score"].as_f64().unwrap();
    assert!((score - 6.0 / 11.0).abs() < 1e-9, "{score}");
    assert_eq!(status["overall"]["passing"], 6);
    assert_eq!(status["overall"]["failing"], 5);
    let groups = status["groups"].as_array().unwrap();
    let infra = groups
        .iter()
        .find(|g| g["name"] == "infrastructure")
        .unwrap();
    assert!((infra["score"].as_f64().unwrap() - 0.8).abs() < 1e-9);
    let auth = groups
        .iter()
        .find(|g| g["name"] == "authentication")
        .unwrap();
    assert!((auth["score"].as_f64().unwrap() - 2.0 / 6.0).abs() < 1e-9);
    let bad = status["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "bad-0")
        .unwrap();
    assert_eq!(bad["state"], "failing");
    assert_eq!(bad["status_code"], 401);
    assert_eq!(bad["outcome"], "status");
    assert_eq!(
        bad["reason"],
        "status 401, expected 2xx: \"<script>alert(1)</script>\""
    );

    // /metrics, parsed back
    let scrape = parse(&metrics);
    let overall = gauge(&scrape, "lookout_health_score", &[]).unwrap();
    assert!((overall - 6.0 / 11.0).abs() < 1e-9, "{overall}");
    assert_eq!(
        gauge(
            &scrape,
            "lookout_group_health_score",
            &[("group", "infrastructure")]
        ),
        Some(0.8)
    );
    assert_eq!(
        gauge(&scrape, "probe_success", &[("check", "ok-0")]),
        Some(1.0)
    );
    assert_eq!(
        gauge(&scrape, "probe_success", &[("check", "bad-0")]),
        Some(0.0)
    );
    assert_eq!(
        gauge(&scrape, "probe_http_status_code", &[("check", "bad-0")]),
        Some(401.0)
    );
    assert_eq!(
        gauge(
            &scrape,
            "lookout_checks",
            &[("group", "authentication"), ("state", "failing")]
        ),
        Some(4.0)
    );
    for phase in ["resolve", "connect", "tls", "processing", "transfer"] {
        assert!(
            gauge(
                &scrape,
                "probe_http_duration_seconds",
                &[("check", "ok-0"), ("phase", phase)]
            )
            .is_some(),
            "{phase}"
        );
    }
    assert!(
        gauge(
            &scrape,
            "lookout_check_runs_total",
            &[("check", "bad-0"), ("outcome", "status")]
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(gauge(&scrape, "lookout_build_info", &[]), Some(1.0));
    // No label carries a URL, a query string or target text.
    for s in &scrape.samples {
        for (k, v) in s.labels.iter() {
            assert!(
                !v.contains("http") && !v.contains('?') && !v.contains('<'),
                "{}: {k}={v}",
                s.metric
            );
        }
    }
    promtool_check_metrics(&metrics);

    // The page: scores shown, target text escaped.
    assert!(page.contains("54.5%"), "overall score on the page");
    assert!(
        page.contains("80.0%") && page.contains("33.3%"),
        "group scores on the page"
    );
    assert!(
        !page.contains("<script>alert"),
        "target markup must be escaped"
    );
    assert!(
        page.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            || page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "and shown as text:\n{page}"
    );
}

/// `promtool check metrics` must report nothing. Skipped, loudly, where
/// promtool is not installed (`.ci/setup` installs it; see
/// `support::tool`).
pub fn promtool_check_metrics(text: &str) {
    let Some(promtool) = tool("promtool", "promtool check metrics") else {
        return;
    };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics:\n{report}"
    );
}

/// With secrets configured every way, no output of the real binary (logs at
/// debug level, /metrics, the API, the page) contains them, and SIGTERM
/// stops it with exit code 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_leave_through_any_output() {
    let target = start_target().await;
    let dir = tempfile::tempdir().unwrap();
    let file_secret = "file_secret_Xy7Qw2Er5Ty8Ui1Op";
    std::fs::write(dir.path().join("key.txt"), format!("{file_secret}\n")).unwrap();
    let config_path = dir.path().join("lookout.toml");
    std::fs::write(
        &config_path,
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
[defaults]
interval = "200ms"
[secrets]
env_key = {{ env = "PLATFORM_API_KEY" }}
file_key = {{ file = "key.txt" }}
[[checks]]
name = "header-echoed"
url = "{echo_key}"
auth = {{ scheme = "api_key", secret = "env_key" }}
[[checks]]
name = "query-echoed"
url = "{echo_key}"
auth = {{ scheme = "query", secret = "file_key" }}
[[checks]]
name = "bearer"
url = "{echo}"
auth = {{ scheme = "bearer", secret = "env_key" }}
[[checks]]
name = "basic"
url = "{echo}"
auth = {{ scheme = "basic", username = "svc", secret = "file_key" }}
# A flow captures the echoed key and sends it on: captures, step reasons
# and the flow's logs must not show it either.
[[flows]]
name = "flow-echo"
auth = {{ scheme = "api_key", secret = "env_key" }}
[[flows.steps]]
name = "echo"
url = "{echo_key}"
expect = {{ status = [401] }}
capture = {{ echoed = "/detail" }}
[[flows.steps]]
name = "reuse"
url = "{echo_key}?seen={{{{ echoed | urlencode }}}}"
expect = {{ status = [200] }}
[[flows.cleanup]]
name = "undo"
url = "{echo_key}?undo={{{{ echoed | urlencode }}}}"
expect = {{ status = [200] }}
"#,
            echo_key = target.url("/echo-key"),
            echo = target.url("/echo"),
        ),
    )
    .unwrap();

    let lookout = crate::support::Running::start(
        &config_path,
        &[("PLATFORM_API_KEY", TEST_SECRET), ("LOOKOUT_LOG", "debug")],
    );
    let addr = lookout.addr.clone();
    let base = format!("http://{addr}");
    let api = base.clone();
    let status = eventually(Duration::from_secs(10), async || {
        let text = get(format!("{api}/api/v1/status")).await;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        (v["overall"]["pending"] == 0).then_some(text)
    })
    .await;
    let metrics = get(format!("{base}/metrics")).await;
    let page = get(format!("{base}/")).await;
    // The flow ran and did meet the secret: in its capture and its reasons.
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    let flow = &v["flows"][0];
    for shown in [
        &flow["captured"][0]["value"],
        &flow["steps"][1]["reason"],
        &flow["cleanup"][0]["reason"],
    ] {
        let text = shown.as_str().unwrap_or_default();
        assert!(text.contains("[redacted sha256:"), "{flow}");
    }

    let (exit, stdout, logs) = lookout.stop().await;
    assert_eq!(exit.code(), Some(0), "SIGTERM exits 0; logs:\n{logs}");

    // The targets really did get and echo the secrets...
    assert!(
        target
            .seen_on("/echo-key")
            .iter()
            .any(|s| s.all_text().contains(TEST_SECRET))
    );
    assert!(
        target
            .seen_on("/echo-key")
            .iter()
            .any(|s| s.all_text().contains(file_secret))
    );
    // ...and nothing lookout shows or writes contains them.
    for (what, text) in [
        ("status API", &status),
        ("metrics", &metrics),
        ("page", &page),
        ("logs", &logs),
        ("stdout", &stdout),
    ] {
        for secret in [TEST_SECRET, file_secret] {
            assert!(!text.contains(secret), "{what} leaks a secret");
        }
    }
    assert!(
        logs.contains("state changed"),
        "state changes are logged:\n{logs}"
    );
    assert!(
        status.contains("[redacted sha256:"),
        "echoed keys show as redacted"
    );
    let fingerprint = lookout::secret::Secret::new(
        TEST_SECRET.to_owned(),
        lookout::secret::SecretOrigin::Named("env_key".into()),
    );
    assert!(
        status.contains(fingerprint.fingerprint()),
        "the API names the key by fingerprint"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_probes_in_flight_finish() {
    let target = start_target().await;
    let cfg = config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[scheduler]\nshutdown_grace = \"5s\"\n\
         [[checks]]\nname = \"slow\"\nurl = \"{}\"\ninterval = \"10s\"\n",
        target.url("/slow/400")
    ));
    let daemon = Daemon::start(cfg).await.unwrap();
    let recorder = daemon.recorder.clone();
    let in_flight = target.shared.in_flight.clone();
    eventually(Duration::from_secs(12), async || {
        (in_flight.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    daemon.shutdown().await;
    let entry = &recorder.board().entries()[0];
    let last = entry.last.as_ref().expect("the run in flight was recorded");
    assert!(last.outcome.is_success(), "{:?}", last.outcome);
}

#[test]
fn every_command_has_help() {
    let help = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{args:?}");
        assert!(text.contains("Usage:"), "{args:?}: {text}");
        text
    };
    // The subcommands as the top-level help lists them, so a new one is
    // covered without touching this test.
    let top = help(&["--help"]);
    let commands: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect();
    for known in ["run", "check-config", "hash-password", "report"] {
        assert!(
            commands.iter().any(|c| c == known),
            "{known} in {commands:?}:\n{top}"
        );
    }
    for command in &commands {
        let text = help(&[command, "--help"]);
        assert!(
            text.contains(&format!("Usage: lookout {command}")),
            "{command}: {text}"
        );
        help(&["help", command]);
    }
}

/// With one slot, three slow checks take turns, and the wait shows up as
/// schedule lag instead of as extra load on the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_limit_holds_and_waiting_counts_as_lag() {
    let target = start_target().await;
    let mut toml = String::from(
        // Only the cron ticks, which fire together: no at-start runs.
        "[server]\nlisten = \"127.0.0.1:0\"\n[scheduler]\nmax_concurrent_probes = 1\n[defaults]\nrun_at_start = false\n",
    );
    for i in 0..3 {
        toml.push_str(&format!(
            "[[checks]]\nname = \"slow-{i}\"\nurl = \"{}\"\nschedule = \"* * * * * *\"\n",
            target.url("/slow/300")
        ));
    }
    let daemon = Daemon::start(config(&toml)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let metrics = get(format!("http://{}/metrics", daemon.addr)).await;
    daemon.shutdown().await;
    assert_eq!(target.shared.max_in_flight.load(Ordering::SeqCst), 1);
    let scrape = parse(&metrics);
    let lag = scrape
        .samples
        .iter()
        .find(|s| s.metric == "lookout_schedule_lag_seconds")
        .expect("lag histogram");
    let Value::Histogram(buckets) = &lag.value else {
        panic!("histogram")
    };
    // Cron ticks fire together each second; with one slot, at least one run
    // per second waited for another (about 300 ms or more).
    let waited =
        buckets.last().unwrap().count - buckets.iter().find(|b| b.less_than >= 0.25).unwrap().count;
    assert!(waited >= 1.0, "{buckets:?}");
}

/// Checks against a target that never answers hold at most the per-target
/// share of the global limit, so a healthy check elsewhere keeps its
/// schedule. (With only the global limit of 8, the ten hung checks would
/// hold every slot for their whole 2 s timeout.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_target_does_not_starve_other_checks() {
    let target = start_target().await;
    let other = start_target().await;
    let mut toml = String::from(
        "[server]\nlisten = \"127.0.0.1:0\"\n[scheduler]\nmax_concurrent_probes = 8\nmax_concurrent_per_target = 2\n[defaults]\ninterval = \"100ms\"\ntimeout = \"2s\"\n",
    );
    for i in 0..10 {
        toml.push_str(&format!(
            "[[checks]]\nname = \"hung{i}\"\nurl = \"{}\"\n",
            target.url("/hang")
        ));
    }
    toml.push_str(&format!(
        "[[checks]]\nname = \"healthy\"\nurl = \"{}\"\n",
        other.url("/echo")
    ));
    let daemon = Daemon::start(config(&toml)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let metrics = get(format!("http://{}/metrics", daemon.addr)).await;
    let healthy = gauge(
        &parse(&metrics),
        "lookout_check_runs_total",
        &[("check", "healthy"), ("outcome", "success")],
    )
    .unwrap_or(0.0);
    assert!(
        healthy >= 10.0,
        "the healthy check ran {healthy} times in 1.5 s"
    );
    assert!(
        target.seen_on("/hang").len() <= 2,
        "at most 2 at once against the hung target"
    );
    daemon.shutdown().await;
}
