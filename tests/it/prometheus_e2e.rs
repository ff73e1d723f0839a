//! The Grafana dashboards (`dashboards/`) and the Prometheus config and
//! rules (`deploy/prometheus/`), proven against a real Prometheus that
//! scrapes a real lookout: every PromQL expression in them parses and
//! returns series, the alerts that should fire do (and the others don't),
//! and promtool accepts the rules, their unit tests and the config.
//!
//! Grafana itself is not available here, so the dashboards are checked as
//! JSON (structure, variables, panel ids) and through their queries.
//! Needs `prometheus` and `promtool` (Debian's `prometheus` package, which
//! `.ci/setup` installs); without them those tests say SKIPPED and pass,
//! or fail under `LOOKOUT_REQUIRE_TOOLS=1` (`support::tool`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Datelike;
use lookout::daemon::Daemon;
use serde_json::Value;

use crate::support::promql_metric_names;
use crate::support::{Prometheus, config, start_target, tool};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files in `dir` whose names end with `suffix`, sorted.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no {suffix} files in {}", dir.display());
    out
}

fn dashboards() -> Vec<(String, Value)> {
    files(&repo().join("dashboards"), ".json")
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("dashboards/{name} is not JSON: {e}"));
            (name, json)
        })
        .collect()
}

fn rule_files() -> Vec<PathBuf> {
    files(&repo().join("deploy/prometheus/rules"), ".yml")
}

fn rule_tests() -> Vec<PathBuf> {
    files(&repo().join("deploy/prometheus/tests"), ".yml")
}

/// `(kind, name)` of every rule in the rule files, `kind` being `alert` or
/// `record`, read from the `- alert: X` / `- record: X` lines.
fn rule_names() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for path in rule_files() {
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            for kind in ["alert", "record"] {
                if let Some(name) = line.trim().strip_prefix(&format!("- {kind}:")) {
                    out.insert((kind.to_owned(), name.trim().to_owned()));
                }
            }
        }
    }
    assert!(out.len() >= 10, "rules found: {out:?}");
    out
}

/// Runs a command to completion within `limit`, its output going to a file
/// (no pipe to fill up); returns whether it exited 0, and the output.
fn run_bounded(cmd: &mut Command, limit: Duration) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("out.log");
    let out = File::create(&log).unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let deadline = Instant::now() + limit;
    let mut status = None;
    for _ in 0..=limit.as_millis() / 20 {
        status = child.try_wait().unwrap();
        if status.is_some() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    match status {
        Some(status) => (status.success(), text),
        None => (false, format!("timed out after {limit:?}\n{text}")),
    }
}

// ---------------------------------------------------------------------------
// Dashboards as JSON

/// Every panel, rows' nested panels included.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in panels.as_array().into_iter().flatten() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

fn variables(dashboard: &Value) -> &Vec<Value> {
    dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
}

/// The query of a templating variable, in either form Grafana saves.
fn variable_query(var: &Value) -> &str {
    var["query"]
        .as_str()
        .or_else(|| var["query"]["query"].as_str())
        .unwrap_or("")
}

fn is_prometheus_datasource_var(ds: &Value) -> bool {
    ds["type"] == "prometheus" && ds["uid"] == "${datasource}"
}

#[test]
fn dashboards_are_importable_grafana_json() {
    let dashboards = dashboards();
    let names: Vec<&str> = dashboards.iter().map(|(n, _)| n.as_str()).collect();
    for expected in ["lookout-check.json", "lookout-overview.json"] {
        assert!(
            names.contains(&expected),
            "dashboards/{expected}: {names:?}"
        );
    }
    let mut uids = BTreeSet::new();
    let mut failures = Vec::new();
    for (name, d) in &dashboards {
        let mut fail = |what: String| failures.push(format!("{name}: {what}"));
        let uid = d["uid"].as_str().unwrap_or("");
        if uid.is_empty() || !uids.insert(uid.to_owned()) {
            fail(format!("uid {uid:?} is empty or not unique"));
        }
        if d["title"].as_str().unwrap_or("").is_empty() {
            fail("no title".into());
        }
        if d["schemaVersion"].as_u64().is_none_or(|v| v < 36) {
            fail(format!("schemaVersion {}", d["schemaVersion"]));
        }
        // Importable anywhere: the datasource is a variable, never a fixed uid.
        let vars = variables(d);
        let var = |n: &str| vars.iter().find(|v| v["name"] == n);
        match var("datasource") {
            Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
            other => fail(format!("datasource variable: {other:?}")),
        }
        for n in ["location", "group", "check"] {
            match var(n) {
                Some(v)
                    if v["type"] == "query"
                        && v["multi"] == true
                        && v["includeAll"] == true
                        && is_prometheus_datasource_var(&v["datasource"])
                        && variable_query(v).starts_with("label_values(") => {}
                other => fail(format!("variable {n}: {other:?}")),
            }
        }
        // All locations must match a single lookout with no location label
        // too: `location=~".*"` matches the empty value, `.+` would not.
        if let Some(v) = var("location") {
            if v["allValue"] != ".*" {
                fail(format!("variable location: allValue {}", v["allValue"]));
            }
        }
        let var_names: BTreeSet<&str> = vars.iter().filter_map(|v| v["name"].as_str()).collect();
        let mut ids = BTreeSet::new();
        let mut exprs = 0;
        for panel in all_panels(d) {
            let id = panel["id"].as_u64();
            let title = panel["title"].as_str().unwrap_or("");
            if !id.is_some_and(|id| ids.insert(id)) {
                fail(format!("panel {title:?}: id {:?} missing or repeated", id));
            }
            let pos = &panel["gridPos"];
            if !(pos["w"].as_u64().is_some_and(|w| (1..=24).contains(&w))
                && pos["h"].as_u64().is_some()
                && pos["x"].as_u64().is_some()
                && pos["y"].as_u64().is_some())
            {
                fail(format!("panel {title:?}: gridPos {pos}"));
            }
            if panel["type"] == "row" {
                continue;
            }
            if !is_prometheus_datasource_var(&panel["datasource"]) {
                fail(format!(
                    "panel {title:?}: datasource {}",
                    panel["datasource"]
                ));
            }
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            if targets.is_empty() {
                fail(format!("panel {title:?}: no targets"));
            }
            let mut refs = BTreeSet::new();
            for t in &targets {
                exprs += 1;
                let expr = t["expr"].as_str().unwrap_or("");
                if expr.trim().is_empty() || !refs.insert(t["refId"].to_string()) {
                    fail(format!("panel {title:?}: target {t}"));
                }
                if !t["datasource"].is_null() && !is_prometheus_datasource_var(&t["datasource"]) {
                    fail(format!(
                        "panel {title:?}: target datasource {}",
                        t["datasource"]
                    ));
                }
                // Every `$name` is one of the dashboard's variables or a
                // Grafana built-in the e2e test knows how to substitute.
                for used in dollar_names(expr) {
                    if !var_names.contains(used.as_str())
                        && !BUILTINS.iter().any(|(b, _)| *b == used)
                    {
                        fail(format!(
                            "panel {title:?}: unknown variable ${used} in {expr}"
                        ));
                    }
                }
                for problem in fleet_problems(&substitute(expr, vars)) {
                    fail(format!("panel {title:?}: {problem} in {expr}"));
                }
            }
        }
        if exprs < 10 {
            fail(format!("only {exprs} queries"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let provisioning = repo().join("dashboards/provisioning");
    let providers = std::fs::read_to_string(provisioning.join("dashboards.yaml")).unwrap();
    for needle in ["apiVersion: 1", "providers:", "type: file", "path: "] {
        assert!(providers.contains(needle), "dashboards.yaml: {needle}");
    }
    let datasource = std::fs::read_to_string(provisioning.join("datasource.yaml")).unwrap();
    for needle in [
        "datasources:",
        "type: prometheus",
        "url: http://prometheus:9090",
    ] {
        assert!(datasource.contains(needle), "datasource.yaml: {needle}");
    }
}

/// Grafana's built-in variables that the queries use, and what they stand
/// for here (Prometheus scrapes every 1 s in the e2e test).
const BUILTINS: [(&str, &str); 3] = [
    ("__rate_interval", "1m"),
    ("__range", "5m"),
    ("__interval", "15s"),
];

/// Per-process scores: with shards, each covers only its own process's
/// checks, so the dashboards show the global rules' scores instead.
const PER_PROCESS_SCORES: [&str; 3] = [
    "lookout_health_score",
    "lookout_group_health_score",
    "lookout_checks",
];

/// What keeps a dashboard query from showing the fleet: a per-process
/// score, or a selector that ignores the `location` variable. Every
/// selector carries a `location` matcher but those of the global rules
/// (`lookout:…`, `lookout_group:…`), which have no location.
fn fleet_problems(expr: &str) -> Vec<String> {
    use promql_parser::parser::Expr;
    use promql_parser::util::{ExprVisitor, walk_expr};

    struct Selectors(Vec<(String, bool)>);
    impl ExprVisitor for Selectors {
        type Error = std::convert::Infallible;
        fn pre_visit(&mut self, e: &Expr) -> Result<bool, Self::Error> {
            let vs = match e {
                Expr::VectorSelector(v) => v,
                Expr::MatrixSelector(m) => &m.vs,
                _ => return Ok(true),
            };
            let has_location = vs.matchers.matchers.iter().any(|m| m.name == "location");
            self.0
                .push((vs.name.clone().unwrap_or_default(), has_location));
            Ok(true)
        }
    }
    let parsed =
        promql_parser::parser::parse(expr).unwrap_or_else(|e| panic!("not PromQL ({e}): {expr}"));
    let mut found = Selectors(Vec::new());
    let Ok(_) = walk_expr(&mut found, &parsed);
    let mut out = Vec::new();
    for (name, has_location) in found.0 {
        if PER_PROCESS_SCORES.contains(&name.as_str()) {
            out.push(format!("{name} is one process's score, not the fleet's"));
        }
        let global = name.starts_with("lookout:") || name.starts_with("lookout_group:");
        if !global && !has_location {
            out.push(format!("{name} without the location matcher"));
        }
    }
    out
}

/// The names after `$` (or inside `${…}`) in a query.
fn dollar_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find('$') {
        rest = &rest[i + 1..];
        let braced = rest.starts_with('{');
        let body = if braced { &rest[1..] } else { rest };
        let name: String = body
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        out.push(name);
    }
    out
}

/// A dashboard query as Prometheus would get it with "All" selected: each
/// variable becomes its `allValue` (the regex Grafana sends), each
/// built-in its value above.
fn substitute(expr: &str, vars: &[Value]) -> String {
    substitute_with(expr, vars, &[])
}

/// The same, with some variables set to one value instead of "All".
fn substitute_with(expr: &str, vars: &[Value], given: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = BUILTINS
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    for v in vars {
        if v["type"] == "query" {
            let name = v["name"].as_str().unwrap();
            let value = given.iter().find(|(n, _)| *n == name).map_or_else(
                || v["allValue"].as_str().unwrap_or(".*"),
                |(_, value)| value,
            );
            pairs.push((name.to_owned(), value.to_owned()));
        }
    }
    // Longest names first, so `$__range` never eats the start of a longer name.
    pairs.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    let mut out = expr.to_owned();
    for (name, value) in pairs {
        out = out
            .replace(&format!("${{{name}}}"), &value)
            .replace(&format!("${name}"), &value);
    }
    out
}

// ---------------------------------------------------------------------------
// promtool

#[test]
fn promtool_checks_the_rules_their_unit_tests_and_the_config() {
    let Some(promtool) = tool("promtool", "promtool check rules/test rules/check config") else {
        return;
    };
    let limit = Duration::from_secs(60);
    let mut check_rules = Command::new(&promtool);
    check_rules.args(["check", "rules"]).args(rule_files());
    let mut test_rules = Command::new(&promtool);
    test_rules.args(["test", "rules"]).args(rule_tests());
    // Relative rule_files in the config resolve against its own directory,
    // wherever promtool is run from.
    let mut check_config = Command::new(&promtool);
    check_config
        .args(["check", "config"])
        .arg(repo().join("deploy/prometheus/prometheus.yml"))
        .current_dir(std::env::temp_dir());
    for (what, cmd) in [
        ("promtool check rules", &mut check_rules),
        ("promtool test rules", &mut test_rules),
        ("promtool check config", &mut check_config),
    ] {
        let (ok, out) = run_bounded(cmd, limit);
        assert!(ok, "{what} failed:\n{out}");
        assert!(out.contains("SUCCESS"), "{what}:\n{out}");
    }

    // Every alert has a unit test in which it fires and one in which it
    // stays quiet; every recording rule has a test of its value.
    let tests: String = rule_tests()
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for chunk in tests.split("alertname: ").skip(1) {
        let name = chunk.split_whitespace().next().unwrap_or("").to_owned();
        if chunk.contains("exp_alerts: []") {
            quiet.insert(name.clone());
        }
        if chunk.contains("exp_labels:") {
            fires.insert(name);
        }
    }
    let mut untested = Vec::new();
    for (kind, name) in rule_names() {
        let covered = match kind.as_str() {
            "alert" => fires.contains(&name) && quiet.contains(&name),
            _ => tests.contains(&format!("expr: {name}\n")),
        };
        if !covered {
            untested.push(format!("{kind} {name}"));
        }
    }
    assert!(
        untested.is_empty(),
        "rules without unit tests: {untested:?}"
    );
}

// ---------------------------------------------------------------------------
// A real Prometheus scraping a real lookout

/// [`Prometheus`] (support's: a child process, killed when dropped), read
/// through the HTTP API with the test's client.
impl Prometheus {
    async fn get(&self, client: &reqwest::Client, path: &str, params: &[(&str, &str)]) -> Value {
        let url = url::Url::parse_with_params(&format!("{}{path}", self.base), params).unwrap();
        let body = client
            .get(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}\n{}", self.log_tail()))
            .text()
            .await
            .unwrap();
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }

    /// The number of series (or 1 for a scalar) an instant query returns,
    /// or Prometheus' error.
    async fn count(&self, client: &reqwest::Client, q: &str) -> Result<usize, String> {
        let answer = self.get(client, "/api/v1/query", &[("query", q)]).await;
        if answer["status"] != "success" {
            return Err(format!("{}: {}", answer["errorType"], answer["error"]));
        }
        let data = &answer["data"];
        Ok(match data["resultType"].as_str() {
            Some("vector" | "matrix") => data["result"].as_array().map_or(0, Vec::len),
            _ => 1,
        })
    }
}

impl Prometheus {
    /// An instant query's values by label set, the `location` label left
    /// out (a scalar is one value with no labels).
    async fn samples(
        &self,
        client: &reqwest::Client,
        q: &str,
    ) -> Result<BTreeMap<BTreeMap<String, String>, f64>, String> {
        let answer = self.get(client, "/api/v1/query", &[("query", q)]).await;
        if answer["status"] != "success" {
            return Err(format!("{}: {}", answer["errorType"], answer["error"]));
        }
        let number = |v: &Value| v[1].as_str().and_then(|s| s.parse::<f64>().ok());
        let data = &answer["data"];
        if data["resultType"] == "scalar" {
            let value = number(&data["result"]).ok_or("scalar without a value")?;
            return Ok(BTreeMap::from([(BTreeMap::new(), value)]));
        }
        let mut out = BTreeMap::new();
        for r in data["result"].as_array().into_iter().flatten() {
            let labels: BTreeMap<String, String> = r["metric"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| *k != "location")
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                .collect();
            let value = number(&r["value"]).ok_or_else(|| format!("no value: {r}"))?;
            if out.insert(labels.clone(), value).is_some() {
                return Err(format!("two series for {labels:?}"));
            }
        }
        Ok(out)
    }

    /// The label sets of an instant query's series.
    async fn label_sets(
        &self,
        client: &reqwest::Client,
        q: &str,
    ) -> Result<BTreeSet<BTreeMap<String, String>>, String> {
        let answer = self.get(client, "/api/v1/query", &[("query", q)]).await;
        if answer["status"] != "success" {
            return Err(format!("{}: {}", answer["errorType"], answer["error"]));
        }
        Ok(answer["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                r["metric"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                    .collect()
            })
            .collect())
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A bearer key that is a JWT expiring in a day, so both credential
/// alerts (14 days and 2 days) have something to see.
fn expiring_jwt() -> String {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let exp = chrono::Utc::now().timestamp() + 86_400;
    format!(
        "{}.{}.{}",
        b64(r#"{"alg":"HS256"}"#),
        b64(&format!(r#"{{"sub":"svc","exp":{exp}}}"#)),
        b64("sig")
    )
}

/// An HTTPS target on 127.0.0.1 whose self-signed certificate expires at
/// the start of the day after tomorrow (UTC): between 1 and 2 days away,
/// so both certificate alerts (14 days and 3 days) have something to see.
async fn start_expiring_tls_target() -> u16 {
    let expiry = chrono::Utc::now() + chrono::Duration::days(2);
    let (server_config, _) = crate::support::self_signed_server(
        &["127.0.0.1"],
        (2020, 1, 1),
        (expiry.year(), expiry.month() as u8, expiry.day() as u8),
    );
    // Bounded: a check every 500 ms makes about 120 connections a minute.
    crate::support::serve_https(server_config, 2000).await
}

#[test]
fn promql_metric_names_finds_the_selectors_only() {
    let names = promql_metric_names(
        r#"histogram_quantile(0.95, sum by (le, group) (rate(lookout_check_duration_seconds_bucket{group=~"a|b", x="}"}[5m]))) > 1"#,
    );
    assert_eq!(
        names,
        BTreeSet::from(["lookout_check_duration_seconds_bucket".to_owned()])
    );
    let names = promql_metric_names(
        "(lookout_group_health_score offset 1h - lookout_group_health_score) * 100 > 10 and on (group) up == 0",
    );
    assert_eq!(
        names,
        BTreeSet::from(["lookout_group_health_score".to_owned(), "up".to_owned()])
    );
    assert_eq!(
        substitute(
            r#"rate(x{g=~"$group", c=~"${check}"}[$__rate_interval]) + y[$__range]"#,
            &[
                serde_json::json!({"type": "query", "name": "group", "allValue": ".+"}),
                serde_json::json!({"type": "query", "name": "check"})
            ]
        ),
        r#"rate(x{g=~".+", c=~".*"}[1m]) + y[5m]"#
    );
}

/// Rules whose expression may return nothing in this scenario, and why.
/// For these the test checks that the expression parses and that every
/// metric it selects has series; their unit tests make them fire.
const MAY_BE_EMPTY: [(&str, &str); 2] = [
    (
        "LookoutGroupHealthDropped",
        "compares with `offset 1h`: this Prometheus holds seconds of data",
    ),
    (
        "LookoutScheduleLagging",
        "fires only if runs start over 1 s late, which depends on the machine's load",
    ),
];

/// Rules that must return nothing here: lookout is healthy (scraped, store
/// up in memory, nothing dropped, config loaded). Their metrics must have series.
/// The "somewhere" warnings are quiet too: every check and flow that fails
/// here fails from every usable location (east and west; cut-off is down
/// and does not vote), which is a quorum.
const QUIET: [&str; 7] = [
    "LookoutTargetMissing",
    "LookoutLocationSilent",
    "LookoutStoreDegraded",
    "LookoutStoreDroppingRecords",
    "LookoutConfigReloadFailed",
    "LookoutCheckFailingSomewhere",
    "LookoutFlowFailingSomewhere",
];

/// The alerts about one lookout process, labelled with its `instance`.
/// Every other alert is fleet-wide: one per check, flow, group or location,
/// whatever the replicas, so it must carry none of the per-process labels.
const PER_INSTANCE: [&str; 6] = [
    "LookoutDown",
    "LookoutTargetMissing",
    "LookoutScheduleLagging",
    "LookoutStoreDegraded",
    "LookoutStoreDroppingRecords",
    "LookoutConfigReloadFailed",
];

/// Labels that differ between the processes behind one location.
const PER_PROCESS_LABELS: [&str; 4] = ["instance", "pod", "replica", "shard"];

/// An alert the e2e scenario must raise.
struct Expected {
    alert: &'static str,
    /// The label that picks the alert, and its value.
    label: &'static str,
    value: String,
    /// How many of it must be active.
    count: usize,
    /// Words its description must hold.
    names: &'static [&'static str],
}

/// One PromQL expression from a dashboard or a rule.
struct Query {
    source: String,
    expr: String,
    /// For rules: the rule name, to look up in MAY_BE_EMPTY and QUIET.
    rule: Option<String>,
}

/// Checks every query once; returns what is wrong.
async fn check_queries(
    prom: &Prometheus,
    client: &reqwest::Client,
    queries: &[Query],
) -> Vec<String> {
    let mut wrong = Vec::new();
    for q in queries {
        let rule = q.rule.as_deref().unwrap_or("");
        let may_be_empty = MAY_BE_EMPTY.iter().any(|(r, _)| *r == rule);
        let quiet = QUIET.contains(&rule);
        match prom.count(client, &q.expr).await {
            Err(e) => wrong.push(format!("{}: {e}\n    {}", q.source, q.expr)),
            Ok(n) if quiet && n > 0 => wrong.push(format!(
                "{}: {n} series, but lookout is healthy here\n    {}",
                q.source, q.expr
            )),
            Ok(0) if !quiet && !may_be_empty => {
                wrong.push(format!("{}: no series\n    {}", q.source, q.expr))
            }
            Ok(_) => {}
        }
        if quiet || may_be_empty {
            for name in promql_metric_names(&q.expr) {
                if !matches!(prom.count(client, &name).await, Ok(n) if n > 0) {
                    wrong.push(format!("{}: selects {name}, which has no series", q.source));
                }
            }
        }
    }
    wrong
}

/// The dashboards' variable queries (`label_values(selector, label)`) find
/// values, through the series API as Grafana does.
async fn check_variables(prom: &Prometheus, client: &reqwest::Client) -> Vec<String> {
    let mut wrong = Vec::new();
    let start = (chrono::Utc::now().timestamp() - 300).to_string();
    for (name, d) in dashboards() {
        let vars = variables(&d);
        for v in vars.iter().filter(|v| v["type"] == "query") {
            let q = substitute(variable_query(v), vars);
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|s| s.strip_suffix(')'))
                .unwrap_or_else(|| panic!("{name}: variable query {q}"));
            let (selector, label) = inner.rsplit_once(',').unwrap();
            let (selector, label) = (selector.trim(), label.trim());
            let answer = prom
                .get(
                    client,
                    "/api/v1/series",
                    &[("match[]", selector), ("start", start.as_str())],
                )
                .await;
            let found = answer["data"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s[label].as_str().is_some_and(|l| !l.is_empty()));
            if !found {
                wrong.push(format!(
                    "{name}: variable {}: no values for {q}: {answer}",
                    v["name"]
                ));
            }
        }
    }
    wrong
}

/// Active alerts (pending or firing), as (alertname, labels, annotations).
async fn active_alerts(
    prom: &Prometheus,
    client: &reqwest::Client,
) -> Vec<(String, BTreeMap<String, String>, BTreeMap<String, String>)> {
    let answer = prom.get(client, "/api/v1/alerts", &[]).await;
    let to_map = |v: &Value| -> BTreeMap<String, String> {
        v.as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
            .collect()
    };
    answer["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let labels = to_map(&a["labels"]);
            (
                labels["alertname"].clone(),
                labels,
                to_map(&a["annotations"]),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_and_rules_work_against_a_real_prometheus() {
    let Some(prometheus) = tool("prometheus", "prometheus_e2e") else {
        return;
    };
    let started = Instant::now();
    let target = start_target().await;
    let tls_port = start_expiring_tls_target().await;
    let t = |path: &str| target.url(path);
    // Passing and failing checks in "web", a slow one (histogram above the
    // 1 s budget) in "api", a certificate about to expire in "edge", and a
    // flow whose second of three steps fails in "accounts". The slow check
    // and the flow outlast their interval, so runs are skipped: the skipped
    // counters only appear once something was skipped.
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[scheduler]
shutdown_grace = "2s"
[defaults]
interval = "200ms"
timeout = "5s"

[[checks]]
name = "ok-echo"
group = "web"
url = "{echo}"

[[checks]]
name = "fails-503"
group = "web"
url = "{s503}"

[[checks]]
name = "slow-1200"
group = "api"
url = "{slow}"

[[checks]]
name = "tls-expiring"
group = "edge"
url = "https://127.0.0.1:{tls_port}/"
interval = "500ms"
tls = {{ insecure_skip_verify = true }}

[[checks]]
name = "key-expiring"
group = "edge"
url = "{echo}"
interval = "500ms"
auth = {{ scheme = "bearer", value = "{expiring_jwt}" }}

[[flows]]
name = "signup"
group = "accounts"

[[flows.steps]]
name = "open-form"
url = "{slow600}"

[[flows.steps]]
name = "submit"
method = "POST"
url = "{s500}"

[[flows.steps]]
name = "confirm"
url = "{echo}"
"#,
        echo = t("/echo"),
        s503 = t("/status/503"),
        s500 = t("/status/500"),
        slow = t("/slow/1200"),
        slow600 = t("/slow/600"),
        expiring_jwt = expiring_jwt(),
    );
    let daemon = Daemon::start(config(&toml)).await.unwrap();
    let lookout = daemon.addr.to_string();
    // A prober whose network is down: the same two "web" checks, against a
    // port nothing listens on, so every check it runs fails.
    let nowhere = format!("http://127.0.0.1:{}/", free_port());
    let cut_off = Daemon::start(config(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
[scheduler]
shutdown_grace = "2s"
[defaults]
interval = "200ms"
timeout = "1s"

[[checks]]
name = "ok-echo"
group = "web"
url = "{nowhere}"

[[checks]]
name = "fails-503"
group = "web"
url = "{nowhere}"
"#
    )))
    .await
    .unwrap();
    // A second "lookout" that is not running: LookoutDown must fire for it.
    let dead = format!("127.0.0.1:{}", free_port());

    let rules: Vec<String> = rule_files()
        .iter()
        .map(|p| format!("  - {:?}", p.display().to_string()))
        .collect();
    // Three locations as Prometheus labels them: "east" runs the daemon as
    // two HA replicas (two targets, one process: the same results twice),
    // "west" once, and "cut-off" is the prober that reaches nothing. The
    // dead target is in west.
    let targets = [
        (
            lookout.as_str(),
            "location: east, replica: r1, instance: east-r1",
        ),
        (
            lookout.as_str(),
            "location: east, replica: r2, instance: east-r2",
        ),
        (lookout.as_str(), "location: west, instance: west-1"),
        (
            &cut_off.addr.to_string(),
            "location: cut-off, instance: cut-off-1",
        ),
        (dead.as_str(), "location: west"),
    ]
    .map(|(addr, labels)| format!("      - targets: [{addr:?}]\n        labels: {{{labels}}}\n"))
    .concat();
    let prom_config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n{}\n\
         scrape_configs:\n  - job_name: lookout\n    static_configs:\n{targets}",
        rules.join("\n")
    );
    let prom = Prometheus::start(&prometheus, &prom_config, &["--storage.tsdb.path=data"]).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    // Every target (the dead one answers up == 0) scraped three times.
    let scraped = r#"count(count_over_time(up{job="lookout"}[1m]) >= 3) == 5"#;
    let deadline = Instant::now() + Duration::from_secs(20);
    for _ in 0..100 {
        if prom.count(&client, scraped).await == Ok(1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no three scrapes:\n{}",
            prom.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Every expression: the dashboards' targets (nested panels included),
    // with variables at "All", and the rules as Prometheus loaded them.
    let mut queries = Vec::new();
    // Tables that merge several queries into one row per series.
    let mut merged: Vec<(String, Vec<String>)> = Vec::new();
    // The per-check and per-flow queries, once for each location.
    let mut by_location: Vec<ByLocation> = Vec::new();
    for (name, d) in dashboards() {
        for panel in all_panels(&d) {
            let merges = panel["transformations"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| t["id"] == "merge");
            if merges {
                let exprs = panel["targets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| substitute(t["expr"].as_str().unwrap_or(""), variables(&d)))
                    .collect();
                merged.push((format!("{name} panel {}", panel["id"]), exprs));
            }
            for target in panel["targets"].as_array().into_iter().flatten() {
                let raw = target["expr"].as_str().unwrap();
                let expr = substitute(raw, variables(&d));
                assert!(
                    !expr.contains('$'),
                    "{name}: unsubstituted variable in {expr}"
                );
                let source = format!(
                    "{name} panel {} {:?} {}",
                    panel["id"], panel["title"], target["refId"]
                );
                let about_lookout_itself = promql_metric_names(&expr)
                    .iter()
                    .all(|m| PROCESS_METRICS.contains(&m.as_str()));
                if raw.contains("$location") && !about_lookout_itself {
                    let at =
                        |location| substitute_with(raw, variables(&d), &[("location", location)]);
                    by_location.push(ByLocation {
                        source: source.clone(),
                        east: at("east"),
                        west: at("west"),
                        values: panel["fieldConfig"]["defaults"]["unit"] != "s",
                    });
                }
                queries.push(Query {
                    source,
                    expr,
                    rule: None,
                });
            }
        }
    }
    let rules_answer = prom.get(&client, "/api/v1/rules", &[]).await;
    let loaded: Vec<Value> = rules_answer["data"]["groups"]
        .as_array()
        .expect("rule groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect();
    let loaded_names: BTreeSet<(String, String)> = loaded
        .iter()
        .map(|r| {
            let kind = if r["type"] == "alerting" {
                "alert"
            } else {
                "record"
            };
            (kind.to_owned(), r["name"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(
        loaded_names,
        rule_names(),
        "Prometheus loaded other rules than the files hold"
    );
    let mut wrong = Vec::new();
    for r in &loaded {
        let name = r["name"].as_str().unwrap().to_owned();
        let expr = r["query"].as_str().unwrap().to_owned();
        if r["type"] == "alerting" {
            let severity = r["labels"]["severity"].as_str().unwrap_or("");
            if !["critical", "warning", "info"].contains(&severity) {
                wrong.push(format!("alert {name}: severity {severity:?}"));
            }
            for a in ["summary", "description"] {
                if r["annotations"][a].as_str().unwrap_or("").is_empty() {
                    wrong.push(format!("alert {name}: no {a} annotation"));
                }
            }
        } else {
            // The recorded series itself, once the rule has run.
            queries.push(Query {
                source: format!("recorded series {name}"),
                expr: name.clone(),
                rule: None,
            });
        }
        queries.push(Query {
            source: format!("rule {name}"),
            expr,
            rule: Some(name),
        });
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // The alerts this scenario must raise (pending or firing: most have a
    // `for` longer than the test), by alert name and the label that picks
    // the series; how many of each (one, whatever the replicas; LookoutCheckSlow
    // once per location); what the description must name and must not
    // (cut-off is down: its failures do not vote, so it is not named).
    // And some it must not raise.
    let one = |alert, label, value: &str, names: &'static [&'static str]| Expected {
        alert,
        label,
        value: value.to_owned(),
        count: 1,
        names,
    };
    let expected: Vec<Expected> = vec![
        one(
            "LookoutCheckFailing",
            "check",
            "fails-503",
            &["from 2 of its 2 locations", "503 from east, 503 from west"],
        ),
        one(
            "LookoutFlowFailing",
            "flow",
            "signup",
            &["from 2 of its 2 locations (east, west)"],
        ),
        one("LookoutGroupHealthLow", "group", "web", &[]),
        one("LookoutGroupHealthLow", "group", "accounts", &[]),
        Expected {
            count: 2,
            ..one("LookoutCheckSlow", "check", "slow-1200", &[])
        },
        one(
            "LookoutCertificateExpiringSoon",
            "check",
            "tls-expiring",
            &[],
        ),
        one(
            "LookoutCertificateExpiringVerySoon",
            "check",
            "tls-expiring",
            &[],
        ),
        one("LookoutCredentialExpiresSoon", "check", "key-expiring", &[]),
        one(
            "LookoutCredentialExpiresVerySoon",
            "check",
            "key-expiring",
            &[],
        ),
        one(
            "LookoutLocationDown",
            "location",
            "cut-off",
            &["its network, DNS or egress is down, not the targets"],
        ),
        one("LookoutDown", "instance", &dead, &[]),
    ];
    let unexpected: Vec<(&str, &str, String)> = vec![
        ("LookoutCheckFailing", "check", "ok-echo".into()),
        ("LookoutCheckFailing", "check", "slow-1200".into()),
        ("LookoutCheckSlow", "check", "ok-echo".into()),
        ("LookoutGroupHealthLow", "group", "api".into()),
        ("LookoutGroupHealthLow", "group", "edge".into()),
        ("LookoutLocationDown", "location", "east".into()),
        ("LookoutLocationDown", "location", "west".into()),
        ("LookoutDown", "instance", "east-r1".into()),
        ("LookoutDown", "instance", "east-r2".into()),
        ("LookoutDown", "instance", "west-1".into()),
        ("LookoutDown", "instance", "cut-off-1".into()),
        ("LookoutStoreDegraded", "instance", "east-r1".into()),
        ("LookoutConfigReloadFailed", "instance", "west-1".into()),
    ];

    // Rates need a few scrapes and recorded series an evaluation, so check
    // everything until it all holds, for at most 30 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut rounds = 0;
    loop {
        rounds += 1;
        let mut wrong = check_queries(&prom, &client, &queries).await;
        wrong.extend(check_variables(&prom, &client).await);
        wrong.extend(check_merged(&prom, &client, &merged).await);
        wrong.extend(check_by_location(&prom, &client, &by_location).await);
        let alerts = active_alerts(&prom, &client).await;
        let active = |alert: &str, label: &str, value: &str| {
            alerts
                .iter()
                .filter(|(n, l, _)| n == alert && l.get(label).is_some_and(|v| v == value))
                .collect::<Vec<_>>()
        };
        for e in &expected {
            let found = active(e.alert, e.label, &e.value);
            if found.len() != e.count {
                wrong.push(format!(
                    "alert {} for {}={}: {} active, wanted {}: {found:?}",
                    e.alert,
                    e.label,
                    e.value,
                    found.len(),
                    e.count
                ));
            }
            // The templates render with real labels: summary and
            // description both name the check, flow, group, location or
            // instance (a misspelt `$labels.x` renders as nothing), and no
            // query or value is missing ("<no value>"). The description
            // names what it must, and never the down location unless it
            // is about it.
            for (_, _, annotations) in found {
                let rendered = |a: &str| annotations.get(a).map_or("", String::as_str);
                let description = rendered("description");
                let ok = ["summary", "description"]
                    .iter()
                    .all(|a| rendered(a).contains(&e.value) && !rendered(a).contains("<no value>"))
                    && e.names.iter().all(|n| description.contains(n))
                    && (e.value == "cut-off" || !description.contains("cut-off"));
                if !ok {
                    wrong.push(format!("alert {} annotations: {annotations:?}", e.alert));
                }
            }
        }
        for (alert, label, value) in &unexpected {
            if !active(alert, label, value).is_empty() {
                wrong.push(format!("alert {alert} for {label}={value} is active"));
            }
        }
        // Fleet-wide alerts carry no per-process label, so the two east
        // replicas raise each of them once.
        for (name, labels, _) in &alerts {
            if !PER_INSTANCE.contains(&name.as_str()) {
                for l in PER_PROCESS_LABELS {
                    if labels.contains_key(l) {
                        wrong.push(format!(
                            "alert {name} has the per-process label {l}: {labels:?}"
                        ));
                    }
                }
            }
        }
        wrong.extend(rules_health(&prom, &client).await);
        if wrong.is_empty() {
            break;
        }
        if Instant::now() >= deadline || rounds >= 30 {
            panic!(
                "after {rounds} rounds, {} problems:\n{}\n\nPrometheus log:\n{}",
                wrong.len(),
                wrong.join("\n"),
                prom.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    eprintln!(
        "prometheus_e2e: {} queries ({} also per location) and {} alerts checked in {rounds} rounds, {:?} in all",
        queries.len(),
        by_location.len(),
        expected.len() + unexpected.len(),
        started.elapsed()
    );
    drop(prom);
    daemon.shutdown().await;
    cut_off.shutdown().await;
}

/// The metrics about one lookout process rather than its checks: the
/// panels about lookout itself show them per instance, on purpose.
const PROCESS_METRICS: [&str; 8] = [
    "lookout_schedule_lag_seconds_bucket",
    "lookout_probes_in_flight",
    "lookout_max_concurrent_probes",
    "lookout_store_up",
    "lookout_store_written_records_total",
    "lookout_store_dropped_records_total",
    "lookout_config_last_reload_successful",
    "lookout_build_info",
];

/// A dashboard query about checks or flows, with the location variable set
/// to east (the daemon scraped as two HA replicas) and to west (the same
/// daemon, scraped once).
struct ByLocation {
    source: String,
    east: String,
    west: String,
    /// Whether to compare values too, not just series: not for durations
    /// and times since a run (unit `s`), which two scrapes of the same
    /// daemon a moment apart see differently.
    values: bool,
}

/// Two replicas must not double-count: east's answer, location aside, has
/// the same series as west's, none with a per-process label, and the same
/// values within a third (a double count is twice as much) or 0.05 (for
/// sub-second durations, which two scrapes see from different runs).
async fn check_by_location(
    prom: &Prometheus,
    client: &reqwest::Client,
    queries: &[ByLocation],
) -> Vec<String> {
    let mut wrong = Vec::new();
    for q in queries {
        let (east, west) = match (
            prom.samples(client, &q.east).await,
            prom.samples(client, &q.west).await,
        ) {
            (Ok(e), Ok(w)) => (e, w),
            (e, w) => {
                wrong.push(format!("{}: {e:?} {w:?}\n    {}", q.source, q.east));
                continue;
            }
        };
        if east.is_empty() {
            wrong.push(format!("{}: no series for east\n    {}", q.source, q.east));
        }
        if east.keys().ne(west.keys()) {
            wrong.push(format!(
                "{}: two replicas (east) give other series than one (west): {:?} vs {:?}\n    {}",
                q.source,
                east.keys().collect::<Vec<_>>(),
                west.keys().collect::<Vec<_>>(),
                q.east
            ));
            continue;
        }
        for (labels, e) in &east {
            if let Some(l) = PER_PROCESS_LABELS.iter().find(|l| labels.contains_key(**l)) {
                wrong.push(format!(
                    "{}: keeps the per-process label {l}: {labels:?}",
                    q.source
                ));
            }
            let w = west[labels];
            let near = (e.is_nan() && w.is_nan())
                || (e - w).abs() <= (e.abs().max(w.abs()) / 3.0).max(0.05);
            if q.values && !near {
                wrong.push(format!(
                    "{}: {labels:?} is {e} with two replicas (east), {w} with one (west)\n    {}",
                    q.source, q.east
                ));
            }
        }
    }
    wrong
}

/// Grafana's merge joins rows whose common columns are all equal: the
/// queries of a merged table must return the same label sets, without
/// `__name__` (which differs per metric and would split every row in
/// three).
async fn check_merged(
    prom: &Prometheus,
    client: &reqwest::Client,
    merged: &[(String, Vec<String>)],
) -> Vec<String> {
    let mut wrong = Vec::new();
    for (source, exprs) in merged {
        let mut first: Option<BTreeSet<BTreeMap<String, String>>> = None;
        for expr in exprs {
            let sets = match prom.label_sets(client, expr).await {
                Ok(sets) => sets,
                Err(e) => {
                    wrong.push(format!("{source}: {e}\n    {expr}"));
                    continue;
                }
            };
            if sets.iter().any(|l| l.contains_key("__name__")) {
                wrong.push(format!(
                    "{source}: keeps __name__, rows will not merge\n    {expr}"
                ));
            }
            if sets.is_empty() {
                wrong.push(format!("{source}: no series\n    {expr}"));
            }
            match &first {
                None => first = Some(sets),
                Some(f) if *f != sets => wrong.push(format!(
                    "{source}: other label sets than the first query\n    {expr}"
                )),
                Some(_) => {}
            }
        }
    }
    wrong
}

/// Rules Prometheus could not evaluate.
async fn rules_health(prom: &Prometheus, client: &reqwest::Client) -> Vec<String> {
    let answer = prom.get(client, "/api/v1/rules", &[]).await;
    answer["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter(|r| r["health"] != "ok")
        .map(|r| {
            format!(
                "rule {}: health {} {}",
                r["name"], r["health"], r["lastError"]
            )
        })
        .collect()
}
