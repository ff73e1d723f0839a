//! Many probers, one picture, end to end with real Prometheus servers:
//! location "a" runs 3 shards, location "b" 2 shards with shard 0 run
//! twice (replicas r1 and r2); each location's Prometheus agent scrapes its
//! lookouts and remote-writes to a central Prometheus that evaluates the
//! kit's rules. One check is reachable from "a" and broken from "b": every
//! location runs the same file, and "b" is given its own address for it
//! with `--var` (`ClusterOverrides::vars`), as a real deployment would (the
//! proxy route from outside, the service from inside). `lookout view`
//! and `lookout report --prometheus` read the central one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lookout::config::ClusterOverrides;
use lookout::daemon::Daemon;

use crate::support::{Prometheus, Samples, Target, eventually, start_target, tool};

/// 12 checks and a flow in two groups: 9 checks pass from everywhere,
/// `mlflow-route` passes from "a" only, `down-1` and `down-2` fail from
/// everywhere, and the flow passes. `mlflow_route` is the path the
/// route check takes; location "b" overrides it.
fn fleet_config(target: &Target) -> String {
    let mut out = String::from(
        "[server]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \":memory:\"\n\
         [vars]\nmlflow_route = \"/echo\"\n\
         [defaults]\ninterval = \"1s\"\ntimeout = \"2s\"\n",
    );
    let mut check = |name: &str, group: &str, path: &str| {
        out.push_str(&format!(
            "[[checks]]\nname = \"{name}\"\ngroup = \"{group}\"\nurl = \"{}\"\n",
            target.url(path)
        ));
    };
    for i in 1..=9 {
        check(
            &format!("c{i:02}"),
            if i <= 6 { "web" } else { "ml" },
            "/echo",
        );
    }
    // From inside the service answers; through "b"'s proxy the route is
    // missing (`--var mlflow_route=/status/404` there).
    check("mlflow-route", "ml", "{{ mlflow_route }}");
    check("down-1", "web", "/status/503");
    check("down-2", "ml", "/status/503");
    out.push_str(&format!(
        "[[flows]]\nname = \"flow-ok\"\ngroup = \"ml\"\n\
         [[flows.steps]]\nname = \"first\"\nurl = \"{0}\"\n\
         [[flows.steps]]\nname = \"second\"\nurl = \"{0}\"\n",
        target.url("/echo")
    ));
    out
}

/// One lookout process of the fleet, and the labels its scrape adds.
struct Member {
    daemon: Daemon,
    shard: u32,
    replica: Option<&'static str>,
}

async fn start_location(
    text: &str,
    location: &str,
    vars: &[(&str, &str)],
    shards: &[(u32, u32, Option<&'static str>)],
) -> Vec<Member> {
    let mut out = Vec::new();
    for &(index, count, replica) in shards {
        let overrides = ClusterOverrides {
            shard: Some(lookout::cluster::Shard::new(index, count).unwrap()),
            location: Some(location.to_owned()),
            replica: replica.map(str::to_owned),
            vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..ClusterOverrides::default()
        };
        let config =
            lookout::config::from_str_with(text, Path::new("fleet.toml"), &|_| None, &overrides)
                .unwrap();
        out.push(Member {
            daemon: Daemon::start(config).await.unwrap(),
            shard: index,
            replica,
        });
    }
    out
}

/// A location's Prometheus agent: scrapes its members every second with
/// `location` as an external label, and writes to `central`.
async fn start_agent(bin: &Path, location: &str, members: &[Member], central: &str) -> Prometheus {
    let mut targets = String::new();
    for m in members {
        let replica = m
            .replica
            .map_or_else(String::new, |r| format!(", replica: \"{r}\""));
        targets.push_str(&format!(
            "      - targets: [\"{}\"]\n        labels: {{ shard: \"{}\"{replica} }}\n",
            m.daemon.addr, m.shard
        ));
    }
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  external_labels: {{ location: \"{location}\" }}\n\
         scrape_configs:\n  - job_name: lookout\n    static_configs:\n{targets}\
         remote_write:\n  - url: \"{central}/api/v1/write\"\n    queue_config: {{ batch_send_deadline: 1s }}\n"
    );
    Prometheus::start(
        bin,
        &config,
        &["--enable-feature=agent", "--storage.agent.path=agent"],
    )
    .await
}

fn rule_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/rules");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    files
}

/// The value of the one series whose labels include `want`.
fn value_of(samples: &Samples, want: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(labels, _)| {
            want.iter()
                .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| *v)
}

fn by_label(samples: &Samples, key: &str) -> BTreeMap<String, f64> {
    samples
        .iter()
        .map(|(l, v)| (l.get(key).cloned().unwrap_or_default(), *v))
        .collect()
}

/// `locations` of a status view or a report: each location's score.
fn location_scores(doc: &serde_json::Value) -> BTreeMap<String, f64> {
    doc["locations"]
        .as_array()
        .unwrap_or_else(|| panic!("no locations in {doc}"))
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_owned(),
                l["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

async fn json(url: &str) -> serde_json::Value {
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_locations_and_replicas_make_one_picture() {
    let Some(bin) = tool("prometheus", "fleet end-to-end test") else {
        return;
    };
    let target = start_target().await;
    let text = fleet_config(&target);
    let a = start_location(&text, "a", &[], &[(0, 3, None), (1, 3, None), (2, 3, None)]).await;
    let b = start_location(
        &text,
        "b",
        &[("mlflow_route", "/status/404")],
        &[(0, 2, Some("r1")), (0, 2, Some("r2")), (1, 2, None)],
    )
    .await;

    let rules: Vec<String> = rule_files()
        .iter()
        .map(|p| format!("  - {:?}", p.display().to_string()))
        .collect();
    let central = Prometheus::start(
        &bin,
        &format!(
            "global:\n  evaluation_interval: 1s\nrule_files:\n{}\n",
            rules.join("\n")
        ),
        &[
            "--web.enable-remote-write-receiver",
            "--storage.tsdb.path=data",
        ],
    )
    .await;
    let _agent_a = start_agent(&bin, "a", &a, &central.base).await;
    let _agent_b = start_agent(&bin, "b", &b, &central.base).await;

    // Every check and flow from both locations, and the verdicts evaluated.
    eventually(Duration::from_secs(60), async || {
        let checks = central.query("lookout_location:check_success:max").await;
        let flows = central.query("lookout_location:flow_success:max").await;
        let global = central.query("lookout:health_score:global").await;
        let runs = central
            .query("lookout_check_runs_total{location=\"b\", replica=\"r2\"}")
            .await;
        (checks.len() == 24 && flows.len() == 2 && !global.is_empty() && !runs.is_empty())
            .then_some(())
    })
    .await;
    // A little more, so every series has several samples.
    tokio::time::sleep(Duration::from_secs(5)).await;

    // Placement: in each location every check is on exactly one shard,
    // and location b's shard 0 really runs twice.
    let owners = central
        .query("count by (location, check) (count by (location, check, shard) (probe_success{check!=\"\"}))")
        .await;
    assert_eq!(owners.len(), 24, "{owners:?}");
    assert!(owners.iter().all(|(_, v)| *v == 1.0), "{owners:?}");
    let shards_a = central
        .query("count by (shard) (probe_success{location=\"a\"})")
        .await;
    assert_eq!(
        shards_a.len(),
        3,
        "all three shards of a run checks: {shards_a:?}"
    );
    let twice = central
        .query("count by (check) (probe_success{location=\"b\", shard=\"0\"}) == 2")
        .await;
    assert!(!twice.is_empty(), "b's shard 0 runs on two replicas");
    // Once per interval per location, replicas merged: about 8 runs in 8 s.
    let runs = central
        .query(
            "sum by (location, check) (max by (location, check, shard) \
             (increase(lookout_check_runs_total[8s])))",
        )
        .await;
    assert_eq!(runs.len(), 24, "{runs:?}");
    for (labels, n) in &runs {
        assert!((4.0..=12.0).contains(n), "{labels:?} ran {n} times in 8 s");
    }

    // The rules equal the scores counted by hand: from a, 11 of 13 pass
    // (down-1, down-2 fail); from b, 10 of 13 (mlflow-route too).
    let per_location = by_label(
        &central.query("lookout_location:health_score:ratio").await,
        "location",
    );
    assert_eq!(
        per_location,
        BTreeMap::from([("a".to_owned(), 11.0 / 13.0), ("b".to_owned(), 10.0 / 13.0)])
    );
    let quorum = by_label(
        &central.query("lookout:check_quorum_failing:bool").await,
        "check",
    );
    let failing: Vec<&String> = quorum
        .iter()
        .filter(|(_, v)| **v == 1.0)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(failing, ["down-1", "down-2"], "{quorum:?}");
    let failing_from = central.query("lookout:check_failing_locations:count").await;
    assert_eq!(
        value_of(&failing_from, &[("check", "mlflow-route")]),
        Some(1.0)
    );
    assert_eq!(value_of(&failing_from, &[("check", "down-1")]), Some(2.0));
    let global = central.query("lookout:health_score:global").await;
    assert_eq!(global[0].1, 11.0 / 13.0);
    let groups = by_label(
        &central.query("lookout_group:health_score:global").await,
        "group",
    );
    assert_eq!(
        groups,
        BTreeMap::from([("ml".to_owned(), 5.0 / 6.0), ("web".to_owned(), 6.0 / 7.0)])
    );
    let down = central.query("lookout_location:down:bool == 1").await;
    assert!(down.is_empty(), "no location is down: {down:?}");

    // The alerts (pending: their `for` is minutes): the quorum page on the
    // two checks that fail from everywhere, the warning on the route that
    // fails from b only, and nothing else of the kind.
    let alerts = central.query("ALERTS{alertstate=\"pending\"}").await;
    let named = |name: &str| -> Vec<String> {
        let mut out: Vec<String> = alerts
            .iter()
            .filter(|(l, _)| l.get("alertname").map(String::as_str) == Some(name))
            .map(|(l, _)| l.get("check").cloned().unwrap_or_default())
            .collect();
        out.sort();
        out
    };
    assert_eq!(
        named("LookoutCheckFailing"),
        ["down-1", "down-2"],
        "{alerts:?}"
    );
    assert_eq!(
        named("LookoutCheckFailingSomewhere"),
        ["mlflow-route"],
        "{alerts:?}"
    );
    for quiet in [
        "LookoutLocationDown",
        "LookoutFlowFailing",
        "LookoutFlowFailingSomewhere",
    ] {
        assert!(named(quiet).is_empty(), "{quiet}: {alerts:?}");
    }

    // The view: the same picture, per location, with the diagnosis.
    let source = lookout::fleet::query::Source::new(
        &url::Url::parse(&central.base).unwrap(),
        Duration::from_secs(5),
    )
    .unwrap();
    let whole = lookout::config::from_str_with(
        &text,
        Path::new("fleet.toml"),
        &|_| None,
        &ClusterOverrides::whole_file(),
    )
    .unwrap();
    let viewer = lookout::fleet::server::Viewer::start(lookout::fleet::server::ViewerOptions {
        source,
        listen: "127.0.0.1:0".parse().unwrap(),
        refresh: Duration::from_secs(1),
        config: Some(whole),
        server: lookout::config::ServerSettings {
            tls: None,
            basic_auth_users: Default::default(),
            read_header_timeout: Duration::from_secs(5),
            max_connections: 64,
        },
    })
    .await
    .unwrap();
    let view_base = format!("http://{}", viewer.addr);
    let status = eventually(Duration::from_secs(15), async || {
        let v = json(&format!("{view_base}/api/v1/status")).await;
        // Read from Prometheus (before that, the config's checks show as pending).
        (!v["source"]["fetched_at"].is_null()).then_some(v)
    })
    .await;
    let check = |name: &str| {
        status["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {status}"))
    };
    let route = check("mlflow-route");
    assert_eq!(route["state"], "passing", "not a quorum: {route}");
    assert_eq!(
        route["reason"], "fails from b (404), passes from a (200)",
        "{route}"
    );
    assert_eq!(route["locations"].as_array().map(Vec::len), Some(2));
    assert_eq!(check("down-1")["state"], "failing");
    assert!(
        check("c01")["url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/echo"))
    );
    assert_eq!(status["overall"]["passing"], 11);
    assert_eq!(status["overall"]["failing"], 2);
    assert_eq!(status["overall"]["score"], 11.0 / 13.0);
    assert_eq!(location_scores(&status), per_location);
    assert_eq!(status["source"]["stale"], false);

    // The page, as a browser renders it.
    if let Some(dom) = crate::browser::dump_dom(&format!("{view_base}/")).await {
        for needle in [
            "fails from b (404), passes from a (200)",
            "a ✓ 200",
            "b ✗ 404",
            "from a",
            "84.6%",
        ] {
            assert!(
                dom.contains(needle),
                "the view's page lacks {needle:?}:\n{dom}"
            );
        }
    }

    // The global report: the rules' scores, in the report's form.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["report", "--format", "json", "--prometheus", &central.base])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["overall"]["score"], global[0].1);
    assert_eq!(report["overall"]["passing"], 11);
    assert_eq!(location_scores(&report), per_location);
    // Against the previous global report: the same picture, so no change.
    let dir = tempfile::tempdir().unwrap();
    let previous = dir.path().join("previous.json");
    std::fs::write(&previous, &out.stdout).unwrap();
    let markdown = std::process::Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["report", "--prometheus", &central.base, "--against"])
        .arg(&previous)
        .output()
        .unwrap();
    let markdown = String::from_utf8_lossy(&markdown.stdout);
    assert!(markdown.contains("## Scores by location"), "{markdown}");
    assert!(
        markdown.contains("**Compared with**") && markdown.contains("84.6% → 84.6%"),
        "{markdown}"
    );
    assert!(
        markdown.contains("fails from b (404), passes from a (200)"),
        "{markdown}"
    );

    // Prometheus goes away: the view keeps its last picture, marked stale.
    drop(central);
    let stale = eventually(Duration::from_secs(20), async || {
        let v = json(&format!("{view_base}/api/v1/status")).await;
        (v["source"]["stale"] == true).then_some(v)
    })
    .await;
    assert_eq!(stale["checks"].as_array().map(Vec::len), Some(12));
    assert!(
        stale["source"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("Prometheus at"))
    );
    viewer.shutdown().await;
    for m in a.into_iter().chain(b) {
        m.daemon.shutdown().await;
    }
}
