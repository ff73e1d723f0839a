//! The history store: it survives restarts and kill -9, trims to its
//! limits, and a database that cannot be written degrades the store, never
//! the probing.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use lookout::daemon::Daemon;
use lookout::record::board::State;
use lookout::store::query;
use lookout::store::{ChangeRecord, RunRecord, Store, StorePath, StoreSettings};

use crate::support::{config, eventually, start_target};

fn with_store(toml: &str, db: &std::path::Path) -> String {
    format!("{toml}\n[store]\npath = {:?}\n", db.display().to_string())
}

fn checks(url: &str, interval: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
[[checks]]
name = "up"
group = "g"
url = "{url}"
interval = "{interval}"
[[checks]]
name = "down"
group = "g"
url = "{url}"
interval = "{interval}"
expect = {{ status = [500] }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_history_state_and_since() {
    let target = start_target().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.db");
    let url = target.url("/echo");

    let first = Daemon::start(config(&with_store(&checks(&url, "100ms"), &db)))
        .await
        .unwrap();
    let recorder = first.recorder.clone();
    eventually(Duration::from_secs(10), async || {
        let n = recorder
            .store
            .read(|c| query::recent(c, "up", 100))
            .await
            .ok()?
            .len();
        (n >= 3).then_some(())
    })
    .await;
    let before = &first.recorder.board().entries()[1];
    let (since_before, failure_before) = (before.since, before.last_failure.clone());
    first.shutdown().await;
    drop(recorder);

    // Second start: a long interval, so nothing runs during the test.
    let second = Daemon::start(config(&with_store(&checks(&url, "1h"), &db)))
        .await
        .unwrap();
    let entries = second.recorder.board().entries();
    assert_eq!(entries[0].state, State::Passing, "restored from history");
    assert_eq!(entries[1].state, State::Failing);
    // Exactly: the board keeps the history's precision (milliseconds), so
    // "since" is the same value before and after a restart, not the same
    // value give or take its nanoseconds.
    assert!(since_before.is_some());
    assert_eq!(
        entries[1].since, since_before,
        "failing since the first run, not the restart"
    );
    assert!(entries[0].recent.len() >= 3, "the sparkline comes back");
    let failure = entries[1]
        .last_failure
        .as_ref()
        .expect("the failure comes back");
    assert_eq!(
        failure.reason.as_deref(),
        Some("status 200, expected 500: \"echo ok\"")
    );
    assert_eq!(Some(failure.since), since_before);
    assert_eq!(Some(failure.since), failure_before.map(|f| f.since));
    assert!(entries[0].last_failure.is_none());
    assert!(entries[0].last.is_none(), "no run since the restart");
    let overall = second.recorder.board().overall();
    assert_eq!(
        (overall.passing, overall.failing, overall.pending),
        (1, 1, 0)
    );

    let changes = second
        .recorder
        .store
        .read(|c| query::changes(c, None, 10))
        .await
        .unwrap();
    let mut seen: Vec<(String, String, String)> = changes
        .into_iter()
        .map(|c| (c.name, c.from, c.to))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("down".into(), "pending".into(), "failing".into()),
            ("up".into(), "pending".into(), "passing".into())
        ]
    );
    let uptime = second
        .recorder
        .store
        .read(|c| query::uptime(c, "up", Utc::now().timestamp_millis()))
        .await
        .unwrap()
        .expect("known check");
    assert_eq!(uptime.last_24h.uptime, Some(1.0));
    assert!(uptime.last_1h.runs >= 3);
    assert!(uptime.last_24h.latency_p50_seconds.is_some());
    second.shutdown().await;
}

fn run(name: &str, at_ms: i64, ok: bool) -> RunRecord {
    RunRecord {
        monitor: Arc::from(name),
        kind: "check",
        at_ms,
        ok,
        status: Some(if ok { 200 } else { 500 }),
        duration_s: 0.02,
        outcome: if ok { "success" } else { "status" },
        reason: (!ok).then(|| "status 500, expected 2xx".to_owned()),
        steps: None,
    }
}

#[tokio::test]
async fn retention_and_the_result_limit_trim_the_database() {
    let store = Store::start(StoreSettings {
        path: StorePath::Memory,
        retention: Duration::from_secs(7 * 24 * 3600),
        keep_results: 5,
    });
    let now = Utc::now().timestamp_millis();
    let day = 24 * 3_600_000;
    for i in 0..10 {
        store.run(run("a", now - 40 * day + i, i % 2 == 0));
    }
    for i in 0..10 {
        store.run(run("a", now - 1000 + i, true));
    }
    store.change(ChangeRecord {
        monitor: Arc::from("a"),
        kind: "check",
        at_ms: now - 40 * day,
        from: "pending",
        to: "failing",
        reason: None,
    });
    store.change(ChangeRecord {
        monitor: Arc::from("a"),
        kind: "check",
        at_ms: now - 1000,
        from: "failing",
        to: "passing",
        reason: None,
    });
    store.trim_now();
    let (results, hours, days, changes) = store
        .read(|c| {
            let count = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0));
            Ok((
                count("SELECT COUNT(*) FROM results")?,
                count("SELECT COUNT(*) FROM rollup_hour")?,
                count("SELECT COUNT(*) FROM rollup_day")?,
                count("SELECT COUNT(*) FROM changes")?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(results, 5, "keep_results per check");
    assert_eq!(hours, 1, "hourly rollups older than 8 days are gone");
    assert_eq!(days, 1, "daily rollups older than the retention are gone");
    assert_eq!(changes, 1, "changes older than the retention are gone");
    let recent = store.read(|c| query::recent(c, "a", 100)).await.unwrap();
    assert_eq!(recent.len(), 5);
    assert!(
        recent.windows(2).all(|w| w[0].at_ms > w[1].at_ms),
        "newest first"
    );
    assert_eq!(store.dropped(), 0);
}

/// Paths that cannot hold a database: the store is degraded, the daemon
/// starts, probes and serves /metrics all the same, and /readyz says why.
/// (Tests run as root here, so permission bits would not stop a write; a
/// path under a regular file, or a directory where the file should be,
/// fails for anyone.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_database_degrades_and_probing_goes_on() {
    let target = start_target().await;
    let dir = tempfile::tempdir().unwrap();
    let a_file = dir.path().join("file");
    std::fs::write(&a_file, "not a directory").unwrap();
    let a_dir = dir.path().join("dir.db");
    std::fs::create_dir(&a_dir).unwrap();
    for db in [a_file.join("history.db"), a_dir] {
        let daemon = Daemon::start(config(&with_store(
            &checks(&target.url("/echo"), "100ms"),
            &db,
        )))
        .await
        .unwrap();
        let base = format!("http://{}", daemon.addr);
        let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
        assert_eq!(ready.status(), 200);
        let text = ready.text().await.unwrap();
        assert!(
            text.starts_with("ready\nhistory store degraded: cannot open"),
            "{text}"
        );
        let metrics = eventually(Duration::from_secs(10), async || {
            let m = reqwest::get(format!("{base}/metrics"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            m.contains(r#"probe_success{check="up",group="g"} 1"#)
                .then_some(m)
        })
        .await;
        assert!(metrics.contains("lookout_store_up 0"), "{metrics}");
        let page = reqwest::get(format!("{base}/"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            page.contains("The history store is degraded: cannot open"),
            "the page says so"
        );
        daemon.shutdown().await;
    }
}

/// kill -9 while results are being written leaves a database that opens,
/// passes SQLite's integrity check, and restores on the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_writes_leaves_a_readable_database() {
    let target = start_target().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.db");
    let mut toml = String::from("[server]\nlisten = \"127.0.0.1:0\"\n");
    for i in 0..50 {
        toml.push_str(&format!(
            "[[checks]]\nname = \"c{i}\"\nurl = \"{}\"\ninterval = \"20ms\"\n",
            target.url("/echo")
        ));
    }
    let config_path = dir.path().join("lookout.toml");
    std::fs::write(&config_path, with_store(&toml, &db)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["run", "--config"])
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Until results have been committed, for at most 10 s.
    let count = |path: &std::path::Path| -> i64 {
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row("SELECT COUNT(*) FROM results", [], |r| r.get(0)))
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count(&db) < 200 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // SIGKILL, mid-stream: 2,500 results a second are being written.
    child.kill().unwrap();
    child.wait().unwrap();

    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let results: i64 = conn
        .query_row("SELECT COUNT(*) FROM results", [], |r| r.get(0))
        .unwrap();
    assert!(results >= 200, "committed results survive: {results}");
    drop(conn);

    let cfg = config(&with_store(&toml.replace("20ms", "1h"), &db));
    let daemon = Daemon::start(cfg).await.unwrap();
    assert!(
        daemon
            .recorder
            .board()
            .entries()
            .iter()
            .all(|e| e.state == State::Passing),
        "every check's state comes back"
    );
    daemon.shutdown().await;
}
