//! Many probers: `--shard i/n` and `[cluster]` place each check and flow on
//! exactly one shard, `locations` keeps a check to some locations, and each
//! instance says where it stands (log, API, page, check-config) and keeps
//! its own history file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use lookout::cluster::Shard;
use lookout::config::{ClusterOverrides, Config, ConfigError};

use crate::support::assert_table_passed;

fn load(toml: &str, overrides: &ClusterOverrides) -> Result<Config, ConfigError> {
    load_env(toml, overrides, &|_| None)
}

fn load_env(
    toml: &str,
    overrides: &ClusterOverrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    lookout::config::from_str_with(toml, Path::new("/etc/lookout/lookout.toml"), env, overrides)
}

/// `n` checks and two flows, on a port nothing listens on.
fn fleet(n: usize, cluster: &str) -> String {
    let mut out = format!("{cluster}\n[store]\npath = \":memory:\"\n");
    for i in 0..n {
        out.push_str(&format!(
            "[[checks]]\nname = \"c{i}\"\nurl = \"http://127.0.0.1:9/{i}\"\ninterval = \"1h\"\n"
        ));
    }
    for f in ["f1", "f2"] {
        out.push_str(&format!(
            "[[flows]]\nname = \"{f}\"\ninterval = \"1h\"\n[[flows.steps]]\nname = \"s\"\nurl = \"http://127.0.0.1:9/{f}\"\n"
        ));
    }
    out
}

fn shard(text: &str) -> ClusterOverrides {
    ClusterOverrides {
        shard: Some(text.parse().unwrap()),
        ..ClusterOverrides::default()
    }
}

fn names(config: &Config) -> BTreeSet<String> {
    config
        .checks
        .iter()
        .map(|c| c.name.clone())
        .chain(config.flows.iter().map(|f| f.name.clone()))
        .collect()
}

/// Three shards run disjoint sets that cover every check and flow; each
/// knows the file's totals; ids are positions in what the shard runs.
#[test]
fn shards_split_the_file_exactly() {
    let text = fleet(60, "");
    let all = names(&load(&text, &ClusterOverrides::default()).unwrap());
    let mut union = BTreeSet::new();
    for i in 0..3 {
        let config = load(&text, &shard(&format!("{i}/3"))).unwrap();
        assert_eq!(config.total.checks, 60);
        assert_eq!(config.total.flows, 2);
        assert!(
            (12..=28).contains(&config.checks.len()),
            "shard {i}: {}",
            config.checks.len()
        );
        for (pos, c) in config.checks.iter().enumerate() {
            assert_eq!(c.id, pos);
        }
        for (pos, f) in config.flows.iter().enumerate() {
            assert_eq!(f.id, pos);
        }
        for name in names(&config) {
            assert!(union.insert(name.clone()), "{name} on two shards");
        }
    }
    assert_eq!(union, all);
}

/// Shards share the per-target limit: a location's shards together keep to it.
#[test]
fn shards_share_the_per_target_limit() {
    let text = fleet(3, "[scheduler]\nmax_concurrent_per_target = 10");
    for (shard_text, want) in [
        ("0/1", 10),
        ("0/2", 5),
        ("0/3", 4),
        ("2/3", 3),
        ("5/16", 1),
        ("12/16", 1),
    ] {
        let config = load(&text, &shard(shard_text)).unwrap();
        assert_eq!(config.max_concurrent_per_target, want, "{shard_text}");
    }
    // The parts add up to the limit.
    for n in 1..=10u32 {
        let total: usize = (0..n)
            .map(|i| {
                load(&text, &shard(&format!("{i}/{n}")))
                    .unwrap()
                    .max_concurrent_per_target
            })
            .sum();
        assert_eq!(total, 10, "over {n} shards");
    }
}

/// The command line wins over `[cluster]`; the pod's name gives the
/// index with a shard count.
#[test]
fn where_the_shard_comes_from() {
    let text = fleet(4, "[cluster]\nshard = \"1/2\"\nlocation = \"edge\"");
    let from_file = load(&text, &ClusterOverrides::default()).unwrap();
    assert_eq!(from_file.cluster.shard, "1/2".parse::<Shard>().unwrap());
    assert_eq!(from_file.cluster.location.as_deref(), Some("edge"));
    let overridden = load(
        &text,
        &ClusterOverrides {
            shard: Some("0/3".parse().unwrap()),
            location: Some("internal".into()),
            replica: Some("b".into()),
            ..ClusterOverrides::default()
        },
    )
    .unwrap();
    assert_eq!(overridden.cluster.shard.to_string(), "0/3");
    assert_eq!(overridden.cluster.location.as_deref(), Some("internal"));
    assert_eq!(overridden.cluster.replica.as_deref(), Some("b"));

    let pod = |name: &'static str| move |k: &str| (k == "POD_NAME").then(|| name.to_owned());
    let by_count = ClusterOverrides {
        shard_count: Some(3),
        ..ClusterOverrides::default()
    };
    let config = load_env(&fleet(4, ""), &by_count, &pod("lookout-2")).unwrap();
    assert_eq!(config.cluster.shard.to_string(), "2/3");
    let config = load_env(
        &fleet(4, "[cluster]\nshard_count = 4"),
        &ClusterOverrides::default(),
        &pod("lookout-eu-1"),
    )
    .unwrap();
    assert_eq!(config.cluster.shard.to_string(), "1/4");
    let err = load_env(&fleet(4, ""), &by_count, &pod("lookout-5")).unwrap_err();
    assert!(
        err.to_string().starts_with("--shard-count: shard 5/3"),
        "{err}"
    );
    let err = load(
        &fleet(1, ""),
        &ClusterOverrides {
            location: Some("eu west".into()),
            ..ClusterOverrides::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "--location: \"eu west\" is not a location name: 1 to 63 letters, digits, '-', '_' or '.', \
         starting with a letter or digit"
    );
}

#[test]
fn bad_cluster_settings_say_where() {
    let cases = [
        (
            "[cluster]\nshard = \"3/3\"",
            "cluster.shard",
            "the index counts from 0, so it must be below 3",
        ),
        (
            "[cluster]\nshard = \"two\"",
            "cluster.shard",
            "a shard is written i/n",
        ),
        (
            "[cluster]\nlocation = \"eu west\"",
            "cluster.location",
            "is not a location name",
        ),
        (
            "[cluster]\nreplica = \"-a\"",
            "cluster.replica",
            "is not a replica name",
        ),
        (
            "[cluster]\nshard_count = 3",
            "cluster.shard_count",
            "StatefulSet pod",
        ),
        ("[cluster]\nzone = \"x\"", "cluster", "unknown field `zone`"),
        (
            "[view]\nprometheus = \"ftp://prom\"",
            "view.prometheus",
            "is not an http:// or https:// URL",
        ),
        (
            "[view]\nprometheus = \"http://u:p@prom:9090\"",
            "view.prometheus",
            "must not hold credentials",
        ),
        (
            "[view]\nrefresh = \"500ms\"",
            "view.refresh",
            "between 1s and 1h",
        ),
        (
            "[view]\nprometheus = \"ftp://user:pa55w0rd@prom\"",
            "view.prometheus",
            "ftp://…@prom",
        ),
        (
            "[view]\nlisten = \"nowhere\"",
            "view.listen",
            "invalid address",
        ),
    ];
    let mut failures = Vec::new();
    for (cluster, field, needle) in cases {
        match load(&fleet(1, cluster), &ClusterOverrides::default()) {
            Ok(_) => failures.push(format!("{cluster}: accepted")),
            Err(e) => {
                let text = e.to_string();
                if !(text.starts_with("/etc/lookout/lookout.toml:")
                    && text.contains(field)
                    && text.contains(needle))
                {
                    failures.push(format!("{cluster}: {text}"));
                }
            }
        }
    }
    let n = cases.len();
    assert_table_passed(&failures, n);

    let err = load(
        "[[checks]]\nname = \"a\"\nurl = \"http://127.0.0.1:9/\"\nlocations = []\n",
        &ClusterOverrides::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("checks[0].locations"), "{err}");
}

/// `locations` keeps a check or flow to some locations; an instance with
/// no location runs everything.
#[test]
fn locations_pick_what_runs_where() {
    let text = r#"
[store]
path = ":memory:"
[[checks]]
name = "everywhere"
url = "http://127.0.0.1:9/"
[[checks]]
name = "inside"
url = "http://127.0.0.1:9/"
locations = ["internal"]
[[checks]]
name = "outside"
url = "http://127.0.0.1:9/"
locations = ["edge", "eu-west"]
[[flows]]
name = "registration"
locations = ["internal"]
[[flows.steps]]
name = "s"
url = "http://127.0.0.1:9/"
"#;
    let at = |location: Option<&str>| {
        let config = load(
            text,
            &ClusterOverrides {
                location: location.map(str::to_owned),
                ..ClusterOverrides::default()
            },
        )
        .unwrap();
        assert_eq!(config.total.checks, 3);
        names(&config).into_iter().collect::<Vec<_>>()
    };
    assert_eq!(
        at(Some("internal")),
        ["everywhere", "inside", "registration"]
    );
    assert_eq!(at(Some("edge")), ["everywhere", "outside"]);
    assert_eq!(
        at(None),
        ["everywhere", "inside", "outside", "registration"]
    );
}

/// Instances that share a config and a host never share a history file.
#[test]
fn each_instance_has_its_own_history_file() {
    let text = |cluster: &str| {
        format!("{cluster}\n[[checks]]\nname = \"a\"\nurl = \"http://127.0.0.1:9/\"\n")
    };
    let path =
        |cluster: &str, o: &ClusterOverrides| match load(&text(cluster), o).unwrap().store.path {
            lookout::store::StorePath::File(p) => p.display().to_string(),
            other => panic!("{other:?}"),
        };
    let none = ClusterOverrides::default();
    assert_eq!(path("", &none), "./lookout.db");
    assert_eq!(path("", &shard("2/3")), "./lookout-shard=2of3.db");
    assert_eq!(path("", &shard("0/1")), "./lookout.db");
    let everything = ClusterOverrides {
        shard: Some("1/4".parse().unwrap()),
        location: Some("eu-west".into()),
        replica: Some("b".into()),
        ..ClusterOverrides::default()
    };
    assert_eq!(
        path("", &everything),
        "./lookout-location=eu-west-shard=1of4-replica=b.db"
    );
    assert_eq!(
        path("[store]\npath = \"data/history.sqlite\"", &shard("1/2")),
        "/etc/lookout/data/history-shard=1of2.sqlite"
    );
    // A location with a dash and one without a replica stay apart.
    let eu_west = ClusterOverrides {
        location: Some("eu-west".into()),
        ..ClusterOverrides::default()
    };
    let eu_replica_west = ClusterOverrides {
        location: Some("eu".into()),
        replica: Some("west".into()),
        ..ClusterOverrides::default()
    };
    assert_ne!(path("", &eu_west), path("", &eu_replica_west));
    let mut seen = BTreeSet::new();
    for i in 0..3 {
        for replica in ["a", "b"] {
            let o = ClusterOverrides {
                shard: Some(format!("{i}/3").parse().unwrap()),
                replica: Some(replica.into()),
                ..ClusterOverrides::default()
            };
            assert!(seen.insert(path("", &o)));
        }
    }
}

/// `check-config --shard` lists what the shard runs, out of how many.
#[test]
fn check_config_says_which_shard_and_how_much() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lookout.toml");
    std::fs::write(&file, fleet(30, "")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["check-config", "--shard", "1/3", "--location", "edge"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let config = load(
        &fleet(30, ""),
        &ClusterOverrides {
            shard: Some("1/3".parse().unwrap()),
            location: Some("edge".into()),
            ..ClusterOverrides::default()
        },
    )
    .unwrap();
    let summary = format!(
        "shard 1/3 (location edge, replica -): runs {} of 30 checks and {} of 2 flows",
        config.checks.len(),
        config.flows.len()
    );
    assert!(text.contains(&summary), "{text}");
    let listed = text.lines().filter(|l| l.starts_with('c')).count();
    assert_eq!(listed, config.checks.len(), "{text}");

    let bad = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["check-config", "--shard", "3/3"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

/// A running shard says where it stands in the API and on the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_and_page_say_which_shard() {
    let config = load(
        &fleet(9, "[server]\nlisten = \"127.0.0.1:0\"\n[cluster]\nshard = \"2/3\"\nlocation = \"edge\"\nreplica = \"a\""),
        &ClusterOverrides::default(),
    )
    .unwrap();
    let (runs, flows) = (config.checks.len(), config.flows.len());
    let daemon = lookout::daemon::Daemon::start(config).await.unwrap();
    let base = format!("http://{}", daemon.addr);
    let status = json(&format!("{base}/api/v1/status")).await;
    assert_eq!(
        status["instance"],
        serde_json::json!({
            "shard": "2/3", "location": "edge", "replica": "a",
            "checks": runs, "total_checks": 9, "flows": flows, "total_flows": 2,
        })
    );
    let page = reqwest::get(format!("{base}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!(
            "Shard 2/3, location edge, replica a: runs {runs} of 9 checks and {flows} of 2 flows"
        )),
        "{page}"
    );
    daemon.shutdown().await;

    // A lone instance says nothing of shards.
    let lone = lookout::daemon::Daemon::start(
        load(
            &fleet(2, "[server]\nlisten = \"127.0.0.1:0\""),
            &ClusterOverrides::default(),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let status = json(&format!("http://{}/api/v1/status", lone.addr)).await;
    assert!(status["instance"].is_null());
    lone.shutdown().await;
}

async fn json(url: &str) -> serde_json::Value {
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Restarting a location from 3 shards to 4: no check goes unprobed for
/// more than one interval, and once the new shards run, none is probed
/// twice in an interval (each has exactly one owner again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalancing_from_three_shards_to_four() {
    use std::time::{Duration, Instant};
    let target = crate::support::start_target().await;
    let n = 40;
    let mut text =
        String::from("[server]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \":memory:\"\n");
    for i in 0..n {
        text.push_str(&format!(
            "[[checks]]\nname = \"c{i}\"\nurl = \"{}\"\ninterval = \"500ms\"\n",
            target.url(&format!("/status/200?c={i}"))
        ));
    }
    let start = async |count: u32| {
        let mut out = Vec::new();
        for i in 0..count {
            let config = load(&text, &shard(&format!("{i}/{count}"))).unwrap();
            out.push(lookout::daemon::Daemon::start(config).await.unwrap());
        }
        out
    };
    let old = start(3).await;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let restart = Instant::now();
    for d in old {
        d.shutdown().await;
    }
    let new = start(4).await;
    let restarted = Instant::now();
    tokio::time::sleep(Duration::from_millis(2600)).await;
    for d in new {
        d.shutdown().await;
    }

    let interval = Duration::from_millis(500);
    let mut runs: BTreeMap<String, Vec<Instant>> = BTreeMap::new();
    for s in target.seen_on("/status/200") {
        runs.entry(s.query.clone()).or_default().push(s.at);
    }
    assert_eq!(runs.len(), n, "every check ran");
    // What the restart itself took (stopping drains in-flight probes) is
    // not the placement's to answer for.
    let pause = restarted - restart;
    for (check, at) in &runs {
        let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
        let longest = gaps.iter().max().copied().unwrap_or_default();
        assert!(
            longest <= 2 * interval + pause + Duration::from_millis(150),
            "{check} went unprobed for {longest:?} (restart took {pause:?})"
        );
        // Settled: from one interval after the new shards started.
        let settled: Vec<&Instant> = at.iter().filter(|t| **t > restarted + interval).collect();
        for w in settled.windows(2) {
            assert!(
                *w[1] - *w[0] >= interval / 2,
                "{check} probed twice within an interval after the restart"
            );
        }
        assert!(
            settled.len() >= 3,
            "{check} kept running: {}",
            settled.len()
        );
    }
}

/// Without `[store] path`, the history goes to a state directory, never
/// next to the config: systemd's STATE_DIRECTORY, XDG_STATE_HOME, then
/// ~/.local/state, then the working directory.
#[test]
fn the_default_history_file_is_in_a_state_directory() {
    let text = "[[checks]]\nname = \"a\"\nurl = \"http://127.0.0.1:9/\"\n";
    let cases: [(&[(&str, &str)], &str); 6] = [
        (
            &[("STATE_DIRECTORY", "/var/lib/lookout:/var/lib/other")],
            "/var/lib/lookout/lookout.db",
        ),
        (
            &[
                ("STATE_DIRECTORY", "/var/lib/lookout"),
                ("XDG_STATE_HOME", "/x"),
            ],
            "/var/lib/lookout/lookout.db",
        ),
        (
            &[("XDG_STATE_HOME", "/home/u/.state"), ("HOME", "/home/u")],
            "/home/u/.state/lookout/lookout.db",
        ),
        // A relative XDG_STATE_HOME is ignored, as the XDG spec says.
        (
            &[("XDG_STATE_HOME", "state"), ("HOME", "/home/u")],
            "/home/u/.local/state/lookout/lookout.db",
        ),
        (
            &[("HOME", "/home/u")],
            "/home/u/.local/state/lookout/lookout.db",
        ),
        (&[], "./lookout.db"),
    ];
    for (env, want) in cases {
        let lookup = |name: &str| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        };
        let cfg = load_env(text, &ClusterOverrides::default(), &lookup).unwrap();
        assert_eq!(cfg.store.path.to_string(), want, "{env:?}");
    }
}

/// The real binary under systemd's STATE_DIRECTORY: the history lands
/// there (the directory made if missing), and the start-up line says where.
#[tokio::test]
async fn the_daemon_says_where_its_history_goes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lookout.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:0\"\n[[checks]]\nname = \"a\"\nurl = \"http://127.0.0.1:9/\"\n",
    )
    .unwrap();
    let state = dir.path().join("state/lookout");
    let running =
        crate::support::Running::start(&config, &[("STATE_DIRECTORY", state.to_str().unwrap())]);
    let (_, _, log) = running.stop().await;
    let file = state.join("lookout.db");
    assert!(file.exists(), "{log}");
    assert!(
        log.contains(&format!("\"history\":\"{}\"", file.display())),
        "{log}"
    );
    assert!(
        !dir.path().join("lookout.db").exists(),
        "not next to the config"
    );
}
