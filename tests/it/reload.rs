//! Live reload: a valid config swaps in with unchanged checks untouched, an
//! invalid one changes nothing, and no run is lost or counted twice.

use std::path::Path;
use std::time::Duration;

use lookout::daemon::{Daemon, Options};
use lookout::record::board::State;

use crate::daemon::{gauge, parse};
use crate::support::{eventually, start_target};

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn load(path: &Path) -> lookout::config::Config {
    lookout::config::load(path).unwrap_or_else(|e| panic!("{e}"))
}

fn checks(entries: &[(&str, &str)], interval: &str) -> String {
    let mut toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[defaults]\ninterval = \"{interval}\"\ngroup = \"g\"\n[store]\npath = \":memory:\"\n"
    );
    for (name, url) in entries {
        toml.push_str(&format!("[[checks]]\nname = \"{name}\"\nurl = \"{url}\"\n"));
    }
    toml
}

/// The daemon on `path`'s config, with `POST /-/reload` enabled.
async fn start_with_lifecycle(path: &Path) -> Daemon {
    let options = Options {
        enable_lifecycle: true,
    };
    Daemon::start_with(load(path), options).await.unwrap()
}

async fn post(url: &str) -> (u16, String) {
    let r = reqwest::Client::new().post(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn runs(metrics: &str, check: &str) -> f64 {
    parse(metrics)
        .samples
        .iter()
        .filter(|s| s.metric == "lookout_check_runs_total" && s.labels.get("check") == Some(check))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_reload_keeps_unchanged_checks_and_swaps_the_rest() {
    let target = start_target().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lookout.toml");
    let ok = target.url("/echo");
    let bad = target.url("/status/503");
    write(
        &path,
        &checks(&[("keep", &ok), ("change", &ok), ("drop", &ok)], "100ms"),
    );
    let daemon = start_with_lifecycle(&path).await;
    let base = format!("http://{}", daemon.addr);
    let recorder = daemon.recorder.clone();
    eventually(Duration::from_secs(10), async || {
        (recorder.board().overall().pending == 0).then_some(())
    })
    .await;
    let before = recorder.board().find("keep").unwrap();
    let runs_before = runs(&recorder.render_metrics(), "keep");
    assert!(runs_before >= 1.0);

    write(
        &path,
        &checks(&[("keep", &ok), ("change", &bad), ("new", &ok)], "100ms"),
    );
    let (status, body) = post(&format!("{base}/-/reload")).await;
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            "reloaded: 1 added, 1 changed, 1 removed, 1 unchanged\n"
        )
    );

    // The unchanged check carried on: same state, same since, counters go on.
    let after = recorder.board().find("keep").unwrap();
    assert_eq!(after.state, State::Passing);
    assert_eq!(after.since, before.since);
    assert!(runs(&recorder.render_metrics(), "keep") >= runs_before);
    let metrics = eventually(Duration::from_secs(10), async || {
        let m = recorder.render_metrics();
        let changed = recorder.board().find("change")?;
        (changed.state == State::Failing && runs(&m, "new") >= 1.0).then_some(m)
    })
    .await;
    assert!(
        !metrics.contains(r#"check="drop""#),
        "a removed check's series are gone"
    );
    let scrape = parse(&metrics);
    assert_eq!(
        gauge(&scrape, "lookout_config_last_reload_successful", &[]),
        Some(1.0)
    );
    assert_eq!(
        gauge(
            &scrape,
            "lookout_checks",
            &[("group", "g"), ("state", "passing")]
        ),
        Some(2.0)
    );
    assert!(recorder.board().find("drop").is_none());
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_reload_changes_nothing_and_says_where() {
    let target = start_target().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lookout.toml");
    let ok = target.url("/echo");
    write(&path, &checks(&[("a", &ok)], "100ms"));
    let daemon = start_with_lifecycle(&path).await;
    let base = format!("http://{}", daemon.addr);
    let recorder = daemon.recorder.clone();
    eventually(Duration::from_secs(10), async || {
        (runs(&recorder.render_metrics(), "a") >= 1.0).then_some(())
    })
    .await;
    let loaded_at = || {
        gauge(
            &parse(&recorder.render_metrics()),
            "lookout_config_last_reload_success_timestamp_seconds",
            &[],
        )
        .unwrap_or(0.0)
    };
    let started_at = loaded_at();
    assert!(
        started_at > 1.0e9,
        "start-up is the first load: {started_at}"
    );

    // The last line: a field checks do not have.
    let broken = checks(&[("a", &ok), ("b", &ok)], "100ms") + "colour = \"red\"\n";
    write(&path, &broken);
    let (status, body) = post(&format!("{base}/-/reload")).await;
    assert_eq!(status, 500);
    let line = broken.lines().count();
    let where_ = format!("{}:{line}:1: checks[1].colour:", path.display());
    assert!(body.starts_with(&where_), "{body}");
    assert!(body.contains("unknown field `colour`"), "{body}");
    let err = daemon.reload().await.unwrap_err();
    assert!(err.to_string().starts_with(&where_), "{err}");

    let metrics = recorder.render_metrics();
    let scrape = parse(&metrics);
    assert_eq!(
        gauge(&scrape, "lookout_config_last_reload_successful", &[]),
        Some(0.0)
    );
    assert!(
        recorder.board().find("b").is_none(),
        "nothing of the bad config"
    );
    assert_eq!(loaded_at(), started_at, "a failed load is no success");
    let n = runs(&metrics, "a");
    eventually(Duration::from_secs(10), async || {
        (runs(&recorder.render_metrics(), "a") > n).then_some(())
    })
    .await;

    // Fixed: the next reload succeeds and the metric says so.
    write(&path, &checks(&[("a", &ok), ("b", &ok)], "100ms"));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let d = daemon.reload().await.unwrap();
    assert_eq!((d.added.len(), d.unchanged.len()), (1, 1));
    assert!(loaded_at() > started_at, "the success is stamped");
    let scrape = parse(&recorder.render_metrics());
    assert_eq!(
        gauge(&scrape, "lookout_config_last_reload_successful", &[]),
        Some(1.0)
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_is_off_unless_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lookout.toml");
    write(&path, &checks(&[("a", "http://127.0.0.1:9/")], "1h"));
    let daemon = Daemon::start(load(&path)).await.unwrap();
    let (status, body) = post(&format!("http://{}/-/reload", daemon.addr)).await;
    assert_eq!(status, 403, "{body}");
    daemon.shutdown().await;
}

/// Reloads while 60 checks run every 30 ms against a target that takes
/// 40 ms: every request the target saw for a check that stayed unchanged is
/// counted exactly once, and the daemon never stops probing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_lose_and_double_count_nothing() {
    let target = start_target().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lookout.toml");
    let stable: Vec<(String, String)> = (0..50)
        .map(|i| (format!("s{i}"), target.url(&format!("/slow/40?c=s{i}"))))
        .collect();
    let config_with = |extra: usize| {
        let mut entries: Vec<(&str, &str)> = stable
            .iter()
            .map(|(n, u)| (n.as_str(), u.as_str()))
            .collect();
        let churn: Vec<(String, String)> = (0..10)
            .map(|i| {
                (
                    format!("churn{i}"),
                    target.url(&format!("/slow/40?c=churn{i}&v={extra}")),
                )
            })
            .collect();
        entries.extend(churn.iter().map(|(n, u)| (n.as_str(), u.as_str())));
        checks(&entries, "30ms")
    };
    write(&path, &config_with(0));
    let daemon = Daemon::start(load(&path)).await.unwrap();
    let recorder = daemon.recorder.clone();
    for round in 1..=6 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        write(&path, &config_with(round));
        let d = daemon.reload().await.unwrap();
        assert_eq!(
            (d.changed.len(), d.unchanged.len()),
            (10, 50),
            "round {round}"
        );
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    daemon.shutdown().await;

    let metrics = recorder.render_metrics();
    let mut failures = Vec::new();
    for (name, _) in &stable {
        let seen = target
            .seen_on("/slow/40")
            .iter()
            .filter(|s| s.query == format!("c={name}"))
            .count() as f64;
        let counted = runs(&metrics, name);
        if seen != counted || counted < 5.0 {
            failures.push(format!(
                "{name}: target saw {seen}, lookout counted {counted}"
            ));
        }
    }
    crate::support::assert_table_passed(&failures, stable.len());
}

/// The real binary reloads on SIGHUP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_binary() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let target = start_target().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lookout.toml");
    let ok = target.url("/echo");
    write(&path, &checks(&[("a", &ok)], "100ms"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["run", "--log-format", "json", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (log_tx, log_rx) = std::sync::mpsc::channel::<serde_json::Value>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if let Some(addr) = v["fields"]["addr"].as_str() {
                let _ = tx.send(addr.to_owned());
            }
            let _ = log_tx.send(v);
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(15))
        .expect("lookout started");
    write(&path, &checks(&[("a", &ok), ("b", &ok)], "100ms"));
    let pid = child.id().to_string();
    let signal = |name: &str| {
        let sent = Command::new("kill").args([name, &pid]).status().unwrap();
        assert!(sent.success(), "kill {name} {pid}");
    };
    signal("-HUP");
    let metrics_url = format!("http://{addr}/metrics");
    eventually(Duration::from_secs(10), async || {
        let m = reqwest::get(&metrics_url).await.ok()?.text().await.ok()?;
        (runs(&m, "b") >= 1.0).then_some(())
    })
    .await;

    // A broken config on SIGHUP: logged as an error with file:line:col, and
    // the old config keeps probing.
    let broken = checks(&[("a", &ok), ("b", &ok)], "100ms") + "colour = \"red\"\n";
    write(&path, &broken);
    signal("-HUP");
    let where_ = format!(
        "{}:{}:1: checks[1].colour:",
        path.display(),
        broken.lines().count()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let logged = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let v = log_rx
            .recv_timeout(left)
            .expect("the failed reload is logged");
        if v["level"] == "ERROR"
            && v["fields"]["error"]
                .as_str()
                .is_some_and(|e| e.starts_with(&where_))
        {
            break v;
        }
    };
    assert!(
        logged["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("old config keeps running")),
        "{logged}"
    );
    let m = reqwest::get(&metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        gauge(&parse(&m), "lookout_config_last_reload_successful", &[]),
        Some(0.0)
    );
    let n = runs(&m, "b");
    eventually(Duration::from_secs(10), async || {
        let m = reqwest::get(&metrics_url).await.ok()?.text().await.ok()?;
        (runs(&m, "b") > n).then_some(())
    })
    .await;
    signal("-TERM");
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
}

/// How many requests the target saw with `who=NAME` in the query.
fn hits(target: &crate::support::Target, name: &str) -> usize {
    let want = format!("who={name}");
    target.seen().iter().filter(|s| s.query == want).count()
}

/// A removed check stops probing, and a check that becomes a flow of the
/// same name is a removed check and an added flow: the old job stops (the
/// scheduler's jobs are told apart by kind), the flow starts, and an
/// unchanged flow keeps its state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_checks_stop_and_a_check_may_become_a_flow() {
    let target = start_target().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lookout.toml");
    let url = |who: &str| target.url(&format!("/echo?who={who}"));
    let flow = |name: &str, who: &str| {
        format!(
            "[[flows]]\nname = \"{name}\"\n[[flows.steps]]\nname = \"only\"\nurl = \"{}\"\n",
            url(who)
        )
    };
    let before = checks(&[("x", &url("check-x")), ("gone", &url("gone"))], "100ms")
        + &flow("steady", "steady");
    write(&path, &before);
    let daemon = Daemon::start(load(&path)).await.unwrap();
    let recorder = daemon.recorder.clone();
    eventually(Duration::from_secs(10), async || {
        (hits(&target, "check-x") >= 2
            && hits(&target, "steady") >= 2
            && hits(&target, "gone") >= 2)
            .then_some(())
    })
    .await;
    let steady_since = recorder.board().find("steady").unwrap().since;

    write(
        &path,
        &(checks(&[], "100ms") + &flow("x", "flow-x") + &flow("steady", "steady")),
    );
    let d = daemon.reload().await.unwrap();
    use lookout::config::diff::Job;
    let mut removed = d.removed.clone();
    removed.sort_by(|a, b| a.name().cmp(b.name()));
    assert_eq!(removed, [Job::Check("gone".into()), Job::Check("x".into())]);
    assert_eq!(d.added, [Job::Flow("x".into())]);
    assert_eq!(d.unchanged, [Job::Flow("steady".into())]);

    eventually(Duration::from_secs(10), async || {
        (hits(&target, "flow-x") >= 2).then_some(())
    })
    .await;
    // A run in flight at the reload may still arrive; after that, nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (x, gone) = (hits(&target, "check-x"), hits(&target, "gone"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        (hits(&target, "check-x"), hits(&target, "gone")),
        (x, gone),
        "removed checks are no longer probed"
    );
    assert_eq!(recorder.board().find("steady").unwrap().since, steady_since);
    let metrics = recorder.render_metrics();
    assert!(!metrics.contains(r#"check="gone""#), "{metrics}");
    assert!(
        metrics.contains(r#"lookout_flow_runs_total{flow="x""#),
        "{metrics}"
    );
    let discarded: f64 = parse(&metrics)
        .samples
        .iter()
        .filter(|s| s.metric == "lookout_reload_discarded_runs_total")
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum();
    assert!(
        discarded <= 2.0,
        "only runs in flight at the reload: {discarded}"
    );
    daemon.shutdown().await;
}

/// A reload re-reads secret files: a check whose key changed restarts and
/// sends the new key, and a check that did not change scrubs the new value
/// from what its target answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_reread_and_scrubbed_everywhere() {
    const OLD: &str = "old-key-0f3c9a2e7b";
    const NEW: &str = "new-key-5d1b8e4c2a";
    let target = start_target().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lookout.toml");
    let key_file = dir.path().join("key");
    let config = format!(
        "{}[secrets]\nkey = {{ file = \"key\" }}\n\
         [[checks]]\nname = \"keyed\"\nurl = \"{}\"\n\
         auth = {{ scheme = \"api_key\", header = \"X-Key\", secret = \"key\" }}\n\
         [[checks]]\nname = \"talker\"\nurl = \"{}\"\n",
        checks(&[], "100ms"),
        target.url("/echo?who=keyed"),
        // Answers 500 with the new key in its body: a target that leaks.
        target.url(&format!("/status/500?text=leaked:{NEW}")),
    );
    write(&key_file, OLD);
    write(&path, &config);
    let daemon = Daemon::start(load(&path)).await.unwrap();
    let recorder = daemon.recorder.clone();
    let reason = |name: &str| {
        recorder
            .board()
            .find(name)
            .and_then(|e| e.last_failure)
            .and_then(|f| f.reason)
            .unwrap_or_default()
    };
    eventually(Duration::from_secs(10), async || {
        reason("talker").contains(NEW).then_some(())
    })
    .await;

    write(&key_file, NEW);
    let d = daemon.reload().await.unwrap();
    assert_eq!(
        d.changed,
        [lookout::config::diff::Job::Check("keyed".into())]
    );
    assert_eq!(
        d.unchanged,
        [lookout::config::diff::Job::Check("talker".into())]
    );
    eventually(Duration::from_secs(10), async || {
        target
            .seen()
            .iter()
            .any(|s| s.header("x-key") == Some(NEW))
            .then_some(())
    })
    .await;
    let scrubbed = eventually(Duration::from_secs(10), async || {
        let r = reason("talker");
        (!r.contains(NEW) && r.contains("[redacted sha256:")).then_some(r)
    })
    .await;
    assert!(scrubbed.contains("leaked:"), "{scrubbed}");
    daemon.shutdown().await;
}

/// A reload whose config now reads its secret from a FIFO fails at once
/// with the error (the open used to wait for a writer for ever, holding
/// every later reload); the old config keeps running, and fixing the file
/// makes the next reload work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_with_a_secret_on_a_fifo_fails_fast_and_keeps_the_old_config() {
    let target = start_target().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lookout.toml");
    write(&dir.path().join("key"), "key-7c1e9a");
    let fifo = crate::files::fifo(dir.path(), "key.fifo");
    let config = |key_file: &str| {
        format!(
            "{}[secrets]\nkey = {{ file = \"{key_file}\" }}\n\
             [[checks]]\nname = \"a\"\nurl = \"{}\"\n\
             auth = {{ scheme = \"bearer\", secret = \"key\" }}\n",
            checks(&[], "100ms"),
            target.url("/echo")
        )
    };
    write(&path, &config("key"));
    let daemon = start_with_lifecycle(&path).await;
    let base = format!("http://{}", daemon.addr);
    let recorder = daemon.recorder.clone();
    eventually(Duration::from_secs(10), async || {
        (runs(&recorder.render_metrics(), "a") >= 1.0).then_some(())
    })
    .await;

    let broken = config("key.fifo");
    write(&path, &broken);
    // If the read blocks again, a writer lets it return so the test fails
    // instead of hanging (O_NONBLOCK: no reader, no wait).
    let unblock = || {
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo);
    };
    let line = broken
        .lines()
        .position(|l| l.starts_with("key = "))
        .unwrap()
        + 1;
    let want = format!(
        "{}:{line}:7: secrets.key: cannot read secret file {}: not a regular file (it is a FIFO)",
        path.display(),
        fifo.display()
    );
    let Ok((status, body)) =
        tokio::time::timeout(Duration::from_secs(10), post(&format!("{base}/-/reload"))).await
    else {
        unblock();
        panic!("POST /-/reload did not answer within 10 s");
    };
    assert_eq!(status, 500, "{body}");
    assert!(body.starts_with(&want), "{body}");
    // SIGHUP's path, the same bound.
    let Ok(result) = tokio::time::timeout(Duration::from_secs(10), daemon.reload()).await else {
        unblock();
        panic!("the reload did not return within 10 s");
    };
    let err = result.unwrap_err();
    assert!(err.to_string().starts_with(&want), "{err}");
    assert_eq!(
        gauge(
            &parse(&recorder.render_metrics()),
            "lookout_config_last_reload_successful",
            &[]
        ),
        Some(0.0)
    );

    // The old config carries on probing, with its key.
    let n = runs(&recorder.render_metrics(), "a");
    eventually(Duration::from_secs(10), async || {
        (runs(&recorder.render_metrics(), "a") > n).then_some(())
    })
    .await;
    assert!(
        target
            .seen()
            .iter()
            .all(|s| s.header("authorization") == Some("Bearer key-7c1e9a"))
    );

    write(&path, &config("key"));
    let d = daemon.reload().await.unwrap();
    assert_eq!(d.unchanged, [lookout::config::diff::Job::Check("a".into())]);
    daemon.shutdown().await;
}
