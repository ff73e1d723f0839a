//! Every check and flow runs once at start (unless `run_at_start = false`),
//! and `failure_threshold`/`success_threshold` hold a state through blips:
//! the raw result still goes to `probe_success` and the sparkline, the
//! state and the scores wait for the threshold, and the page and API say
//! "failing 2/3" while it counts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use lookout::daemon::Daemon;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::daemon::{gauge, parse};
use crate::support::{config, eventually, start_target};

async fn get(url: String) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_and_flows_run_at_start_unless_told_not_to() {
    let target = start_target().await;
    let ok = target.url("/status/200");
    let daemon = Daemon::start(config(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
[defaults]
# A schedule that never comes during the test (an hourly interval would,
# once an hour, at its phase).
schedule = "0 0 0 1 1 * 2099"
[[checks]]
name = "eager"
url = "{ok}"
[[checks]]
name = "lazy"
url = "{ok}"
run_at_start = false
[[flows]]
name = "walk"
[[flows.steps]]
name = "one"
url = "{ok}"
"#
    )))
    .await
    .unwrap();
    let recorder = daemon.recorder.clone();
    // No scheduled tick: only the at-start run can have happened, within
    // the start-up spread (5 s).
    eventually(Duration::from_secs(10), async || {
        let entries = recorder.board().entries();
        let done = |n: &str| {
            entries
                .iter()
                .any(|e| e.monitor.name() == n && e.last.is_some())
        };
        (done("eager") && done("walk")).then_some(())
    })
    .await;
    let entries = recorder.board().entries();
    let lazy = entries.iter().find(|e| e.monitor.name() == "lazy").unwrap();
    assert!(
        lazy.last.is_none(),
        "run_at_start = false waits for its schedule"
    );
    daemon.shutdown().await;
}

/// A target whose status the test sets.
async fn switchable() -> (u16, Arc<AtomicU16>) {
    let status = Arc::new(AtomicU16::new(200));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let current = status.clone();
    tokio::spawn(async move {
        for _ in 0..2000 {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let code = current.load(Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf)).await;
                let reply =
                    format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = tcp.write_all(reply.as_bytes()).await;
            });
        }
    });
    (port, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_threshold_counts_before_the_state_changes() {
    let (port, status) = switchable().await;
    let daemon = Daemon::start(config(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
[[checks]]
name = "api"
group = "g"
url = "http://127.0.0.1:{port}/"
interval = "300ms"
failure_threshold = 4
success_threshold = 2
"#
    )))
    .await
    .unwrap();
    let base = format!("http://{}", daemon.addr);
    let api = |base: String| async move {
        let v: serde_json::Value =
            serde_json::from_str(&get(format!("{base}/api/v1/status")).await).unwrap();
        v["checks"][0].clone()
    };
    eventually(Duration::from_secs(10), async || {
        (api(base.clone()).await["state"] == "passing").then_some(())
    })
    .await;

    status.store(500, Ordering::SeqCst);
    // While it counts: the raw result fails, the state holds, and the page,
    // the API and the state gauge say so.
    let (check, page, metrics) = eventually(Duration::from_secs(10), async || {
        let check = api(base.clone()).await;
        let counting = &check["counting"];
        if counting["towards"] != "failing" || counting["of"] != 4 {
            return None;
        }
        let page = get(format!("{base}/")).await;
        let metrics = get(format!("{base}/metrics")).await;
        // Still counting the same run after both reads: they saw it too.
        let again = api(base.clone()).await;
        (again["counting"] == check["counting"]).then_some((check, page, metrics))
    })
    .await;
    assert_eq!(check["state"], "passing", "{check}");
    assert_eq!(check["outcome"], "status", "the raw result: {check}");
    assert!(
        page.contains("passing (failing ") && page.contains("/4)"),
        "the page shows the count"
    );
    let scrape = parse(&metrics);
    let passing = gauge(
        &scrape,
        "lookout_checks",
        &[("group", "g"), ("state", "passing")],
    );
    // The raw result fails, the state (and so the score) still passes.
    assert_eq!(
        gauge(&scrape, "probe_success", &[("check", "api")]),
        Some(0.0)
    );
    assert_eq!(passing, Some(1.0));
    assert_eq!(
        gauge(&scrape, "lookout_group_health_score", &[("group", "g")]),
        Some(1.0)
    );

    // After the 4th failing run it turns failing.
    eventually(Duration::from_secs(10), async || {
        (api(base.clone()).await["state"] == "failing").then_some(())
    })
    .await;
    // And it takes 2 passing runs to come back, counting again meanwhile.
    status.store(200, Ordering::SeqCst);
    eventually(Duration::from_secs(10), async || {
        let check = api(base.clone()).await;
        (check["state"] == "passing").then_some(())
    })
    .await;
    let history: serde_json::Value =
        serde_json::from_str(&get(format!("{base}/api/v1/history/api?limit=1000")).await).unwrap();
    let runs = history.as_array().unwrap();
    let failed = runs.iter().filter(|r| r["ok"] == false).count();
    assert!(
        failed >= 4,
        "every raw run is in the history: {failed} failed"
    );
    daemon.shutdown().await;
}

#[test]
fn thresholds_are_checked() {
    for (toml, field) in [
        ("failure_threshold = 0", "checks[0].failure_threshold"),
        ("success_threshold = 101", "checks[0].success_threshold"),
    ] {
        let err = crate::support::try_config(&format!(
            "[[checks]]\nname = \"c\"\nurl = \"http://127.0.0.1:1/\"\n{toml}\n"
        ))
        .expect_err(toml)
        .to_string();
        assert!(err.contains(&format!("{field}: must be 1 to 100")), "{err}");
    }
    let err = crate::support::try_config("[defaults]\nfailure_threshold = 0\n[[checks]]\nname = \"c\"\nurl = \"http://127.0.0.1:1/\"\n")
        .expect_err("defaults")
        .to_string();
    assert!(
        err.contains("defaults.failure_threshold: must be 1 to 100"),
        "{err}"
    );
}
