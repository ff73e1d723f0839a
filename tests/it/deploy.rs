//! The deployment kit in deploy/: the Dockerfile, the compose stacks (one
//! lookout, and the fleet of compose/fleet/), the Kubernetes manifests (one
//! lookout, and the sharded fleet of kubernetes/fleet/) and the systemd
//! unit, checked offline. For the fleets, lookout's own `check-config` runs
//! with each pod's or service's args, and the ServiceMonitor's relabelings
//! run in Rust and in `promtool check service-discovery`.
//!
//! The Rust checks always run: the files parse, reference files that exist,
//! fit together (ports, labels, names, mounts, secrets, config paths), the
//! Prometheus Operator objects are well formed and their alerts use only
//! metrics from the metrics reference (docs/metrics.md), and the example
//! configs pass `lookout check-config`. The checks by the real tools run where the tool
//! is installed, and otherwise skip that step saying so (`SKIPPED ...: TOOL
//! is not installed (run .ci/setup)`; a failure under
//! `LOOKOUT_REQUIRE_TOOLS=1`, see `support::tool`): kubernetes-validate, hadolint and
//! kubectl (PyPI, in target/ci-venv, or on PATH), promtool, amtool (and a
//! real Alertmanager on loopback for the inhibition rules) and
//! docker-compose (Debian), systemd-analyze. Nothing here uses the network.
//!
//! deploy/kubernetes/prometheusrule.yaml is generated from
//! deploy/prometheus/rules/*.yml; after changing those, regenerate it with
//! `UPDATE_DEPLOY=1 cargo test --test it deploy`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{find_tool, promql_metric_names, skip, tool, tool_any};
use serde::Deserialize as _;
use serde_json::Value;

/// The most any one tool may take.
const TOOL_LIMIT: Duration = Duration::from_secs(90);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn deploy(rel: &str) -> PathBuf {
    repo().join("deploy").join(rel)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One YAML document, as JSON values (every key in these files is a string).
fn yaml(path: &Path) -> Value {
    serde_norway::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

/// Every non-empty document of a multi-document YAML text.
fn yaml_docs(text: &str, what: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{what}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn toml_file(path: &Path) -> toml::Value {
    toml::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn s<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {v}"))
}

fn seq<'a>(v: &'a Value, what: &str) -> &'a Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("{what}: expected a list, got {v}"))
}

fn map<'a>(v: &'a Value, what: &str) -> &'a serde_json::Map<String, Value> {
    v.as_object()
        .unwrap_or_else(|| panic!("{what}: expected a mapping, got {v}"))
}

/// Fails if `v` has a key outside `allowed` (a typo would be ignored by the
/// operator, not rejected).
fn only_keys(v: &Value, allowed: &[&str], what: &str) {
    for key in map(v, what).keys() {
        assert!(
            allowed.contains(&key.as_str()),
            "{what}: unknown field `{key}` (expected one of {allowed:?})"
        );
    }
}

/// A Prometheus duration such as `15s`, `1h30m` or `10m`.
fn prom_duration(text: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let ms = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return None,
        };
        total += n * ms;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_millis(total))
}

// ---------------------------------------------------------------------------
// Running tools

struct Ran {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `cmd` to the end (at most `TOOL_LIMIT`), feeding it `input`.
fn run(cmd: &mut Command, input: Option<&str>) -> Ran {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_owned();
        std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
    }
    let reader = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + TOOL_LIMIT;
    let status = loop {
        match child.try_wait().unwrap() {
            Some(status) => break status,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} did not finish within {TOOL_LIMIT:?}");
            }
        }
    };
    Ran {
        success: status.success(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn lookout() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lookout"));
    cmd.env_remove("PLATFORM_API_KEY").env_remove("LOOKOUT_LOG");
    cmd
}

// ---------------------------------------------------------------------------
// Metric names

/// The metric names in the metrics reference (docs/metrics.md), with
/// `_bucket`, `_sum` and `_count` for histograms.
pub fn documented_metric_names() -> BTreeSet<String> {
    let reference = read(&repo().join("docs/metrics.md"));
    let mut names = BTreeSet::new();
    for line in reference.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(name) = cells
            .get(1)
            .and_then(|c| c.strip_prefix('`'))
            .and_then(|c| c.split('`').next())
        else {
            continue;
        };
        if !(name.starts_with("lookout_") || name.starts_with("probe_")) {
            continue;
        }
        names.insert(name.to_owned());
        if cells.get(2) == Some(&"histogram") {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    assert!(
        names.len() > 20 && names.contains("probe_success"),
        "docs/metrics.md: {names:?}"
    );
    names
}

#[test]
fn promql_metric_names_finds_metrics_only() {
    let expr = r#"histogram_quantile(0.95, sum by (le, check) (rate(lookout_check_duration_seconds_bucket{check!="a b"}[5m])))
      > 1 and on (check) probe_success offset 1h == 0 or label_replace(up{job="x"}, "a", "$1", "b", "(.*)")
      - (lookout_group_health_score offset 1h - lookout:x:y) * 100 > 14 * 86400"#;
    let names: Vec<String> = promql_metric_names(expr).into_iter().collect();
    assert_eq!(
        names,
        [
            "lookout:x:y",
            "lookout_check_duration_seconds_bucket",
            "lookout_group_health_score",
            "probe_success",
            "up",
        ]
    );
}

// ---------------------------------------------------------------------------
// Example configs

#[test]
fn the_example_configs_pass_check_config() {
    for (rel, listen, secret) in [
        ("compose/lookout.toml", "0.0.0.0:9898", true),
        ("kubernetes/config.toml", "0.0.0.0:9898", true),
        ("systemd/config.toml", "127.0.0.1:9898", false),
        ("kubernetes/fleet/config.toml", "0.0.0.0:9898", true),
        ("compose/fleet/lookout.toml", "0.0.0.0:9898", false),
    ] {
        let path = deploy(rel);
        let ran = run(
            lookout()
                .arg("check-config")
                .arg(&path)
                .env("PLATFORM_API_KEY", "dummy-key-for-check-config"),
            None,
        );
        assert!(ran.success, "check-config {rel}:\n{}", ran.text());
        let first = ran.stdout.lines().next().unwrap_or_default();
        assert!(
            first.contains(": OK,") && first.ends_with(&format!("listen {listen}")),
            "{rel}: {first}"
        );
        // The history is on the data volume / state directory, never next
        // to the (read-only) config.
        let cfg = toml_file(&path);
        assert_eq!(
            cfg["store"]["path"].as_str(),
            Some("/var/lib/lookout/lookout.db"),
            "{rel}: [store] path"
        );
        if secret {
            // Without the variable lookout refuses to start: the name in the
            // config is the one compose and the Deployment set.
            let ran = run(lookout().arg("check-config").arg(&path), None);
            assert!(!ran.success, "{rel} without PLATFORM_API_KEY");
            assert!(ran.stderr.contains("PLATFORM_API_KEY"), "{}", ran.text());
        }
    }
}

/// The variables that `{ env = "VAR" }` secrets of a config need.
fn secret_env_vars(config: &Path) -> BTreeSet<String> {
    let cfg = toml_file(config);
    cfg.get("secrets")
        .and_then(toml::Value::as_table)
        .into_iter()
        .flat_map(|t| t.values())
        .filter_map(|v| v.get("env").and_then(toml::Value::as_str))
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------
// Dockerfile

/// The Dockerfile's instructions: (KEYWORD, arguments), continuation lines
/// joined and comments dropped.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (current.is_empty() && trimmed.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (word, args) = current.split_once(' ').unwrap_or((&current, ""));
        out.push((word.to_ascii_uppercase(), args.trim().to_owned()));
        current.clear();
    }
    out
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_runs_the_documented_config() {
    let path = deploy("Dockerfile");
    let text = read(&path);
    let instructions = dockerfile_instructions(&text);
    let stages: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, (w, _))| w == "FROM")
        .map(|(i, _)| i)
        .collect();
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    let builder = &instructions[stages[0]].1;
    assert!(
        builder.starts_with("rust:") && builder.to_ascii_lowercase().ends_with(" as builder"),
        "builder stage: {builder}"
    );
    let runs: Vec<&str> = instructions[stages[0]..stages[stages.len() - 1]]
        .iter()
        .filter(|(w, _)| w == "RUN")
        .map(|(_, a)| a.as_str())
        .collect();
    assert!(
        runs.iter()
            .any(|r| r.contains("cargo build --release --locked")),
        "{runs:?}"
    );
    // The dependency layer comes before the sources are copied.
    let copies: Vec<&str> = instructions
        .iter()
        .filter(|(w, _)| w == "COPY")
        .map(|(_, a)| a.as_str())
        .collect();
    assert_eq!(
        copies.first(),
        Some(&"Cargo.toml Cargo.lock ./"),
        "{copies:?}"
    );

    let runtime = &instructions[stages[stages.len() - 1]..];
    let get = |word: &str| -> Vec<&str> {
        runtime
            .iter()
            .filter(|(w, _)| w == word)
            .map(|(_, a)| a.as_str())
            .collect()
    };
    let image = &runtime[0].1;
    assert!(
        image.contains("distroless") || image.contains("-slim"),
        "a small runtime image: {image}"
    );
    let user = get("USER");
    assert_eq!(user.len(), 1, "one USER in the runtime stage: {user:?}");
    let uid = user[0].split(':').next().unwrap();
    assert!(uid != "0" && uid != "root", "non-root USER: {}", user[0]);
    assert!(
        get("COPY")
            .iter()
            .any(|c| c.starts_with("--from=builder") && c.ends_with("/usr/local/bin/lookout")),
        "the binary comes from the builder"
    );
    assert_eq!(get("EXPOSE"), ["9898"]);
    assert_eq!(get("VOLUME"), [r#"["/var/lib/lookout"]"#]);
    // Exec form, so lookout is PID 1 and gets SIGTERM itself.
    let exec = |word: &str| -> Vec<String> {
        let found = get(word);
        assert_eq!(found.len(), 1, "one {word}: {found:?}");
        serde_json::from_str(found[0]).unwrap_or_else(|e| panic!("{word} in exec form: {e}"))
    };
    let mut argv = exec("ENTRYPOINT");
    argv.extend(exec("CMD"));
    assert_eq!(
        argv,
        [
            "/usr/local/bin/lookout",
            "run",
            "--config",
            "/etc/lookout/config.toml"
        ]
    );
    assert!(
        text.contains("HEALTHCHECK"),
        "the missing HEALTHCHECK is explained"
    );

    // The build context is the repository root; the Dockerfile's own ignore
    // file must let through everything the build copies.
    let ignore = read(&deploy("Dockerfile.dockerignore"));
    let rules: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(rules.first(), Some(&"*"), "an allowlist");
    for copy in &copies {
        if copy.starts_with("--from") {
            continue;
        }
        let parts: Vec<&str> = copy.split_whitespace().collect();
        for source in &parts[..parts.len() - 1] {
            let source = source.trim_end_matches('/');
            assert!(
                rules.contains(&format!("!{source}").as_str())
                    || rules.contains(&format!("!{source}/").as_str()),
                "{source} is copied but excluded by Dockerfile.dockerignore"
            );
            assert!(repo().join(source).exists(), "{source} exists");
        }
    }

    let Some(hadolint) = tool("hadolint", "hadolint deploy/Dockerfile") else {
        return;
    };
    let ran = run(Command::new(hadolint).arg("--no-color").arg(&path), None);
    assert!(ran.success, "hadolint deploy/Dockerfile:\n{}", ran.text());
}

// ---------------------------------------------------------------------------
// docker compose

struct Compose {
    dir: PathBuf,
    doc: Value,
}

impl Compose {
    fn load() -> Compose {
        Compose::load_dir(deploy("compose"))
    }

    /// The compose.yaml of `dir`, with YAML merge keys (`<<: *anchor`)
    /// applied, as compose reads it.
    fn load_dir(dir: PathBuf) -> Compose {
        let path = dir.join("compose.yaml");
        let mut doc: serde_norway::Value = serde_norway::from_str(&read(&path))
            .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
        doc.apply_merge()
            .unwrap_or_else(|e| panic!("{}: merge keys: {e}", path.display()));
        let doc = serde_json::to_value(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Compose { dir, doc }
    }

    fn service(&self, name: &str) -> &Value {
        let service = &self.doc["services"][name];
        assert!(service.is_object(), "compose service {name}");
        service
    }

    /// A service's volumes: (source, target, is a bind mount).
    fn mounts(&self, service: &str) -> Vec<(String, String, bool)> {
        seq(&self.service(service)["volumes"], "volumes")
            .iter()
            .map(|v| {
                let spec = s(v, "a volume (short syntax)");
                let parts: Vec<&str> = spec.split(':').collect();
                assert!((2..=3).contains(&parts.len()), "{service}: volume {spec}");
                let bind = parts[0].starts_with('.') || parts[0].starts_with('/');
                (parts[0].to_owned(), parts[1].to_owned(), bind)
            })
            .collect()
    }

    /// The repository file a service sees at `target`.
    fn source_of(&self, service: &str, target: &str) -> PathBuf {
        let (source, _, _) = self
            .mounts(service)
            .into_iter()
            .find(|(_, t, bind)| *bind && t == target)
            .unwrap_or_else(|| panic!("{service} mounts {target}"));
        self.dir.join(source)
    }

    /// The files a service sees, laid out under a temporary root, for the
    /// tools that check them (paths in the configs stay as in the container).
    fn container_root(&self, service: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (source, target, bind) in self.mounts(service) {
            if !bind {
                continue;
            }
            copy_tree(&self.dir.join(&source), &root.path().join(&target[1..]));
        }
        root
    }
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }
}

/// `host:port` targets of a Prometheus config's static_configs.
fn static_targets(config: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for job in seq(&config["scrape_configs"], "scrape_configs") {
        for sc in seq(&job["static_configs"], "static_configs") {
            for t in seq(&sc["targets"], "targets") {
                out.push(s(t, "target").to_owned());
            }
        }
    }
    out
}

#[test]
fn compose_file_has_the_stack_and_references_files_that_exist() {
    let compose = Compose::load();
    let services = map(&compose.doc["services"], "services");
    for name in ["lookout", "prometheus", "alertmanager", "grafana"] {
        assert!(services.contains_key(name), "service {name}");
    }
    let volumes = map(&compose.doc["volumes"], "volumes");
    for (name, service) in services {
        // Published on loopback only: the page shows internal URLs.
        for port in seq(&service["ports"], "ports") {
            let port = s(port, "port");
            assert!(port.starts_with("127.0.0.1:"), "{name}: port {port}");
        }
        if service.get("image").is_some() && service.get("build").is_none() {
            let image = s(&service["image"], "image");
            let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
            assert!(!tag.is_empty() && tag != "latest", "{name}: pin {image}");
        }
        for (source, target, bind) in compose.mounts(name) {
            if bind {
                let path = compose.dir.join(&source);
                assert!(path.exists(), "{name}: {source} (for {target}) exists");
            } else {
                assert!(
                    volumes.contains_key(&source),
                    "{name}: volume {source} declared"
                );
            }
        }
    }

    // lookout: built from the repository with deploy/Dockerfile.
    let lookout = compose.service("lookout");
    let context = compose.dir.join(s(&lookout["build"]["context"], "context"));
    assert!(
        context.join("Cargo.toml").is_file() && context.join("src/main.rs").is_file(),
        "the build context is the repository root: {}",
        context.display()
    );
    assert!(
        context
            .join(s(&lookout["build"]["dockerfile"], "dockerfile"))
            .is_file()
    );
    let config_path = compose.source_of("lookout", "/etc/lookout/config.toml");
    assert_eq!(config_path, compose.dir.join("./lookout.toml"));
    let config = toml_file(&config_path);
    let store = config["store"]["path"].as_str().unwrap();
    assert!(
        compose
            .mounts("lookout")
            .iter()
            .any(|(_, t, bind)| !bind && store.starts_with(&format!("{t}/"))),
        "the store {store} is on a volume"
    );
    let listen = config["server"]["listen"].as_str().unwrap();
    assert_eq!(listen, "0.0.0.0:9898");
    assert!(
        seq(&lookout["ports"], "ports")
            .iter()
            .any(|p| s(p, "port").ends_with(":9898")),
        "lookout's port is published"
    );
    let env = map(&lookout["environment"], "lookout environment");
    for var in secret_env_vars(&config_path) {
        assert!(env.contains_key(&var), "lookout gets {var}");
    }
    assert_eq!(lookout["read_only"], true);
    assert_eq!(lookout["cap_drop"], serde_json::json!(["ALL"]));

    // Every variable the file uses is in .env.example.
    let text = read(&compose.dir.join("compose.yaml"));
    let example = read(&compose.dir.join(".env.example"));
    let defined: BTreeSet<&str> = example
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
        .collect();
    for part in text.split("${").skip(1) {
        let var: String = part
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(defined.contains(var.as_str()), ".env.example defines {var}");
    }
    assert!(
        read(&compose.dir.join(".gitignore"))
            .lines()
            .any(|l| l.trim() == ".env"),
        ".env is git-ignored"
    );

    // Prometheus: the same scrape config and rules as deploy/prometheus/,
    // plus the compose Alertmanager.
    let prom_cfg_path = compose.source_of("prometheus", "/etc/prometheus/prometheus.yml");
    let prom = yaml(&prom_cfg_path);
    let shared = yaml(&deploy("prometheus/prometheus.yml"));
    assert_eq!(
        prom["scrape_configs"], shared["scrape_configs"],
        "deploy/compose/prometheus.yml scrapes as deploy/prometheus/prometheus.yml"
    );
    assert_eq!(prom["rule_files"], shared["rule_files"]);
    assert_eq!(prom["global"], shared["global"]);
    let rules_dir = compose.source_of("prometheus", "/etc/prometheus/rules");
    for rule_file in seq(&prom["rule_files"], "rule_files") {
        let rel = s(rule_file, "rule file");
        let file = rel
            .strip_prefix("rules/")
            .unwrap_or_else(|| panic!("{rel} is under the mounted rules/"));
        assert!(rules_dir.join(file).is_file(), "{rel} exists");
    }
    assert_eq!(static_targets(&prom), ["lookout:9898"]);
    let alertmanagers = seq(&prom["alerting"]["alertmanagers"], "alertmanagers");
    let am_target = s(
        &alertmanagers[0]["static_configs"][0]["targets"][0],
        "alertmanager target",
    );
    assert_eq!(am_target, "alertmanager:9093");
    assert!(
        seq(&compose.service("prometheus")["command"], "command")
            .contains(&Value::from("--config.file=/etc/prometheus/prometheus.yml"))
    );
    compose.source_of("alertmanager", "/etc/alertmanager/alertmanager.yml");
    assert!(
        seq(&compose.service("alertmanager")["command"], "command").contains(&Value::from(
            "--config.file=/etc/alertmanager/alertmanager.yml"
        ))
    );

    // Grafana: the datasource points at the prometheus service, and the
    // dashboard provider's folder is mounted with the dashboards in it.
    let grafana = compose.container_root("grafana");
    let datasources = yaml(
        &grafana
            .path()
            .join("etc/grafana/provisioning/datasources/lookout.yaml"),
    );
    let url = s(&datasources["datasources"][0]["url"], "datasource url");
    assert_eq!(url, "http://prometheus:9090");
    let providers = yaml(
        &grafana
            .path()
            .join("etc/grafana/provisioning/dashboards/lookout.yaml"),
    );
    for provider in seq(&providers["providers"], "providers") {
        let folder = s(&provider["options"]["path"], "provider path");
        let inside = grafana.path().join(&folder[1..]);
        let dashboards = std::fs::read_dir(&inside)
            .unwrap_or_else(|e| panic!("grafana sees {folder}: {e}"))
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "json")
            })
            .count();
        assert!(dashboards >= 1, "dashboards in {folder}");
    }
    let home = s(
        &compose.service("grafana")["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"],
        "home dashboard",
    );
    assert!(grafana.path().join(&home[1..]).is_file(), "{home}");
}

#[test]
fn compose_configs_pass_their_own_checkers() {
    let compose = Compose::load();

    if let Some(promtool) = tool("promtool", "promtool check config (compose prometheus.yml)") {
        let root = compose.container_root("prometheus");
        let ran = run(
            Command::new(promtool)
                .arg("check")
                .arg("config")
                .arg(root.path().join("etc/prometheus/prometheus.yml")),
            None,
        );
        assert!(ran.success, "promtool check config:\n{}", ran.text());
        assert!(
            ran.text().contains("SUCCESS: 3 rule files found"),
            "{}",
            ran.text()
        );
    }

    if let Some(amtool) = tool("amtool", "amtool check-config (compose alertmanager.yml)") {
        let root = compose.container_root("alertmanager");
        let ran = run(
            Command::new(amtool)
                .arg("check-config")
                .arg(root.path().join("etc/alertmanager/alertmanager.yml")),
            None,
        );
        assert!(ran.success, "amtool check-config:\n{}", ran.text());
    }

    compose_config_validates(&compose.dir);
}

/// Compose's own validation of `dir`/compose.yaml: the v2 plugin if there
/// is one, else Debian's docker-compose 1.29, which knows every key used
/// here but the top-level `name` (added to the Compose Specification later).
fn compose_config_validates(dir: &Path) {
    let text = read(&dir.join("compose.yaml"));
    let plugin = find_tool("docker")
        .filter(|docker| run(Command::new(docker).args(["compose", "version"]), None).success);
    let (mut cmd, input) = if let Some(docker) = plugin {
        let mut cmd = Command::new(docker);
        cmd.args(["compose", "-f", "compose.yaml", "config", "--quiet"]);
        (cmd, None)
    } else if let Some(v1) = tool("docker-compose", "docker compose config") {
        let without_name: String = text
            .lines()
            .filter(|l| !l.starts_with("name:"))
            .map(|l| format!("{l}\n"))
            .collect();
        let mut cmd = Command::new(v1);
        cmd.args(["-f", "-", "config", "--quiet"]);
        (cmd, Some(without_name))
    } else {
        return;
    };
    let ran = run(
        cmd.current_dir(dir)
            .env("PLATFORM_API_KEY", "dummy")
            .env("GRAFANA_ADMIN_PASSWORD", "dummy"),
        input.as_deref(),
    );
    assert!(
        ran.success,
        "docker compose config ({}):\n{}",
        dir.display(),
        ran.text()
    );
}

// ---------------------------------------------------------------------------
// docker compose: two locations (deploy/compose/fleet/)

fn compose_fleet() -> Compose {
    Compose::load_dir(deploy("compose/fleet"))
}

impl Compose {
    fn service_names(&self) -> Vec<String> {
        map(&self.doc["services"], "services")
            .keys()
            .cloned()
            .collect()
    }

    /// A service's command, in exec form.
    fn command(&self, service: &str) -> Vec<String> {
        seq(&self.service(service)["command"], "command")
            .iter()
            .map(|a| s(a, "command arg").to_owned())
            .collect()
    }

    /// The networks a service joins (a list or a mapping).
    fn networks(&self, service: &str) -> BTreeSet<String> {
        match &self.service(service)["networks"] {
            Value::Array(names) => names.iter().map(|n| s(n, "network").to_owned()).collect(),
            Value::Object(names) => names.keys().cloned().collect(),
            _ => BTreeSet::from(["default".to_owned()]),
        }
    }

    /// Whether `from` can reach the service `to` by name.
    fn reaches(&self, from: &str, to: &str) -> bool {
        from == to || !self.networks(from).is_disjoint(&self.networks(to))
    }

    fn image(&self, service: &str) -> &str {
        s(&self.service(service)["image"], "image")
    }
}

/// One lookout prober of the fleet's compose file.
struct ComposeProber {
    service: String,
    location: String,
    /// `--shard i/n`, or the only shard.
    shard: (u32, u32),
    cluster_args: Vec<String>,
}

fn compose_probers(compose: &Compose) -> Vec<ComposeProber> {
    compose
        .service_names()
        .into_iter()
        .filter(|name| compose.image(name) == "lookout:local")
        .filter(|name| compose.command(name).first().is_some_and(|c| c == "run"))
        .map(|service| {
            let what = format!("compose service {service}");
            let cluster = cluster_args(&compose.command(&service), &what);
            let shard = match flag_value(&cluster, "--shard", &what) {
                None => (0, 1),
                Some(text) => {
                    let (i, n) = text.split_once('/').expect("--shard i/n");
                    (i.parse().unwrap(), n.parse().unwrap())
                }
            };
            assert_eq!(flag_value(&cluster, "--shard-count", &what), None, "{what}");
            ComposeProber {
                location: flag_value(&cluster, "--location", &what)
                    .unwrap_or_else(|| panic!("{what}: --location"))
                    .to_owned(),
                shard,
                cluster_args: cluster,
                service,
            }
        })
        .collect()
}

/// The Prometheus agents of the fleet's compose file, by service.
fn compose_agents(compose: &Compose) -> Vec<String> {
    compose
        .service_names()
        .into_iter()
        .filter(|name| compose.image(name).starts_with("prom/prometheus:"))
        .filter(|name| {
            compose
                .command(name)
                .iter()
                .any(|a| a == "--agent" || a == "--enable-feature=agent")
        })
        .collect()
}

/// `.env.example` in the compose file's folder defines every `${VAR}` the
/// file uses, and `.env` is git-ignored there.
fn env_example_defines_every_variable(compose: &Compose) {
    let text = read(&compose.dir.join("compose.yaml"));
    let example = read(&compose.dir.join(".env.example"));
    let defined: BTreeSet<&str> = example
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
        .collect();
    for part in text.split("${").skip(1) {
        let var: String = part
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(defined.contains(var.as_str()), ".env.example defines {var}");
    }
    // A `.env` line (no slash) in a .gitignore here or above ignores it
    // here too.
    let ignored = compose
        .dir
        .ancestors()
        .take_while(|d| d.starts_with(repo()))
        .filter_map(|d| std::fs::read_to_string(d.join(".gitignore")).ok())
        .any(|text| text.lines().any(|l| l.trim() == ".env"));
    assert!(ignored, "{}/.env is git-ignored", compose.dir.display());
}

#[test]
fn compose_fleet_has_two_locations_and_references_files_that_exist() {
    let compose = compose_fleet();
    let volumes = map(&compose.doc["volumes"], "volumes");
    let networks = map(&compose.doc["networks"], "networks");
    for name in compose.service_names() {
        let service = compose.service(&name);
        for port in service.get("ports").map_or(&[][..], |p| seq(p, "ports")) {
            let port = s(port, "port");
            assert!(port.starts_with("127.0.0.1:"), "{name}: port {port}");
        }
        if service.get("build").is_none() {
            let image = compose.image(&name);
            let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
            assert!(!tag.is_empty() && tag != "latest", "{name}: pin {image}");
        }
        for (source, target, bind) in compose.mounts(&name) {
            if bind {
                let path = compose.dir.join(&source);
                assert!(path.exists(), "{name}: {source} (for {target}) exists");
            } else {
                assert!(volumes.contains_key(&source), "{name}: volume {source}");
            }
        }
        for network in compose.networks(&name) {
            assert!(networks.contains_key(&network), "{name}: network {network}");
        }
    }
    env_example_defines_every_variable(&compose);

    // Every lookout container, prober or view: built from the repository,
    // hardened, the config from ./lookout.toml.
    let config_path = compose.dir.join("lookout.toml");
    let config = toml_file(&config_path);
    assert!(
        secret_env_vars(&config_path).is_empty(),
        "the fleet example needs no .env"
    );
    let listen: std::net::SocketAddr = config["server"]["listen"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut data_volumes = BTreeSet::new();
    for name in compose.service_names() {
        if compose.image(&name) != "lookout:local" {
            continue;
        }
        let service = compose.service(&name);
        let context = compose.dir.join(s(&service["build"]["context"], "context"));
        assert!(
            context.join("Cargo.toml").is_file(),
            "{name}: the repository"
        );
        assert!(
            context
                .join(s(&service["build"]["dockerfile"], "dockerfile"))
                .is_file()
        );
        assert_eq!(service["read_only"], true, "{name}");
        assert_eq!(service["cap_drop"], serde_json::json!(["ALL"]), "{name}");
        assert_eq!(
            compose.source_of(&name, "/etc/lookout/config.toml"),
            compose.dir.join("./lookout.toml"),
            "{name}"
        );
        let command = compose.command(&name);
        assert_eq!(
            flag_value(&command, "--config", &name),
            Some("/etc/lookout/config.toml")
        );
        if command[0] == "run" {
            // The history on a volume of its own.
            let store = config["store"]["path"].as_str().unwrap();
            let volume = compose
                .mounts(&name)
                .into_iter()
                .find(|(_, t, bind)| !bind && store.starts_with(&format!("{t}/")))
                .unwrap_or_else(|| panic!("{name}: the store {store} is on a volume"));
            assert!(
                data_volumes.insert(volume.0.clone()),
                "{name} shares {}",
                volume.0
            );
            assert!(
                seq(&service["ports"], "ports")
                    .iter()
                    .any(|p| s(p, "port").ends_with(&format!(":{}", listen.port()))),
                "{name}: its own page is published"
            );
        }
    }

    // Locations: at least two, one of them in several shards, each shard
    // of a location exactly once.
    let probers = compose_probers(&compose);
    let mut locations: BTreeMap<&str, Vec<&ComposeProber>> = BTreeMap::new();
    for p in &probers {
        locations.entry(&p.location).or_default().push(p);
    }
    assert!(locations.len() >= 2, "{:?}", locations.keys());
    assert!(
        locations.values().any(|ps| ps.len() >= 2),
        "a location in several shards"
    );
    for (location, ps) in &locations {
        let n = ps[0].shard.1;
        let mut indices: Vec<u32> = ps
            .iter()
            .map(|p| {
                assert_eq!(p.shard.1, n, "{}: {location} has {n} shards", p.service);
                p.shard.0
            })
            .collect();
        indices.sort();
        assert_eq!(indices, (0..n).collect::<Vec<_>>(), "{location}'s shards");
    }

    // One agent per location: its external label is the location of what
    // it scrapes, each prober scraped by exactly one agent with its shard
    // as a target label, and everything remote-written to the central
    // Prometheus.
    let agents = compose_agents(&compose);
    assert_eq!(
        agents.len(),
        locations.len(),
        "one agent per location: {agents:?}"
    );
    let mut scraped: BTreeMap<String, usize> = BTreeMap::new();
    let mut receivers = BTreeSet::new();
    for agent in &agents {
        // Prometheus 3 runs as an agent with --agent and ignores
        // --enable-feature=agent (and 2.x knows only the latter), which
        // would leave a full server that forwards nothing it should not.
        let tag = compose.image(agent).rsplit_once(":v").unwrap().1;
        let major: u32 = tag.split('.').next().unwrap().parse().unwrap();
        let flag = if major >= 3 {
            "--agent"
        } else {
            "--enable-feature=agent"
        };
        assert!(
            compose.command(agent).iter().any(|a| a == flag),
            "{agent}: {flag} for Prometheus {tag}"
        );
        let cfg = yaml(&compose.source_of(agent, "/etc/prometheus/prometheus.yml"));
        let location = s(&cfg["global"]["external_labels"]["location"], "location");
        assert!(
            locations.contains_key(location),
            "{agent}: location {location}"
        );
        let jobs = seq(&cfg["scrape_configs"], "scrape_configs");
        assert_eq!(jobs.len(), 1, "{agent}");
        assert_eq!(jobs[0]["job_name"], "lookout", "{agent}: LookoutDown's job");
        for sc in seq(&jobs[0]["static_configs"], "static_configs") {
            for target in seq(&sc["targets"], "targets") {
                let target = s(target, "target");
                let (host, port) = target.rsplit_once(':').unwrap();
                let prober = probers
                    .iter()
                    .find(|p| p.service == host)
                    .unwrap_or_else(|| panic!("{agent} scrapes {host}, not a prober"));
                assert_eq!(port, listen.port().to_string(), "{agent}: {target}");
                assert_eq!(prober.location, location, "{agent}: {host}'s location");
                assert_eq!(
                    sc["labels"]["shard"],
                    prober.shard.0.to_string(),
                    "{agent}: {host}'s shard label"
                );
                assert!(compose.reaches(agent, host), "{agent} reaches {host}");
                *scraped.entry(host.to_owned()).or_default() += 1;
            }
        }
        for rw in seq(&cfg["remote_write"], "remote_write") {
            let url = reqwest::Url::parse(s(&rw["url"], "remote_write url")).unwrap();
            let host = url.host_str().unwrap().to_owned();
            assert_eq!(url.path(), "/api/v1/write", "{agent}");
            assert!(compose.reaches(agent, &host), "{agent} reaches {host}");
            receivers.insert(host);
        }
    }
    for p in &probers {
        assert_eq!(
            scraped.get(&p.service),
            Some(&1),
            "{} scraped once",
            p.service
        );
    }

    // The central Prometheus: takes remote writes, and loads the rules of
    // deploy/prometheus/prometheus.yml, all of them.
    assert_eq!(receivers.len(), 1, "one central Prometheus: {receivers:?}");
    let central = receivers.into_iter().next().unwrap();
    assert!(
        compose
            .command(&central)
            .contains(&"--web.enable-remote-write-receiver".to_owned()),
        "{central} takes remote writes"
    );
    assert!(
        compose
            .command(&central)
            .contains(&"--config.file=/etc/prometheus/prometheus.yml".to_owned())
    );
    let prom = yaml(&compose.source_of(&central, "/etc/prometheus/prometheus.yml"));
    let shared = yaml(&deploy("prometheus/prometheus.yml"));
    assert_eq!(prom["rule_files"], shared["rule_files"]);
    assert_eq!(prom["global"], shared["global"]);
    let rules_dir = compose.source_of(&central, "/etc/prometheus/rules");
    for rule_file in seq(&prom["rule_files"], "rule_files") {
        let file = s(rule_file, "rule file").strip_prefix("rules/").unwrap();
        assert!(rules_dir.join(file).is_file(), "{file}");
    }
    assert!(prom.get("scrape_configs").is_none(), "the agents scrape");
    let am = s(
        &prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0],
        "alertmanager",
    );
    let am_host = am.split(':').next().unwrap();
    assert!(compose.reaches(&central, am_host), "{central} reaches {am}");
    // The single-instance stack's Alertmanager config, inhibitions and all.
    assert_eq!(
        read(&compose.source_of(am_host, "/etc/alertmanager/alertmanager.yml")),
        read(&deploy("compose/alertmanager.yml"))
    );

    // The view reads the central Prometheus.
    let views: Vec<String> = compose
        .service_names()
        .into_iter()
        .filter(|n| compose.image(n) == "lookout:local" && compose.command(n)[0] == "view")
        .collect();
    assert_eq!(views.len(), 1, "{views:?}");
    let view = &views[0];
    let command = compose.command(view);
    let url = reqwest::Url::parse(flag_value(&command, "--prometheus", view).unwrap()).unwrap();
    assert_eq!(
        url.host_str(),
        Some(central.as_str()),
        "{view} reads {central}"
    );
    assert!(compose.reaches(view, &central));
    let view_listen: std::net::SocketAddr = flag_value(&command, "--listen", view)
        .expect("--listen")
        .parse()
        .unwrap();
    assert!(view_listen.ip().is_unspecified());
    assert!(
        seq(&compose.service(view)["ports"], "ports")
            .iter()
            .any(|p| s(p, "port").ends_with(&format!(":{}", view_listen.port()))),
        "{view}'s page is published"
    );

    // Grafana's dashboards read the central Prometheus too.
    let grafana = compose.container_root("grafana");
    let datasources = yaml(
        &grafana
            .path()
            .join("etc/grafana/provisioning/datasources/lookout.yaml"),
    );
    let url = reqwest::Url::parse(s(&datasources["datasources"][0]["url"], "url")).unwrap();
    assert_eq!(url.host_str(), Some(central.as_str()));
    assert!(compose.reaches("grafana", &central));
    let home = s(
        &compose.service("grafana")["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"],
        "home dashboard",
    );
    assert!(grafana.path().join(&home[1..]).is_file(), "{home}");
}

/// Each location's probers run what lookout says the location runs, each
/// check once, every check runs somewhere, and each prober can reach what
/// it checks on the networks it joins.
#[test]
fn compose_fleet_probers_reach_what_they_check() {
    let compose = compose_fleet();
    let config = compose.dir.join("lookout.toml");
    let urls: BTreeMap<String, reqwest::Url> = toml_file(&config)["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                reqwest::Url::parse(c["url"].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    let probers = compose_probers(&compose);
    let (_, all) = instance_runs(&config, None, &[]);
    let mut anywhere = BTreeSet::new();
    let locations: BTreeSet<&str> = probers.iter().map(|p| p.location.as_str()).collect();
    for location in locations {
        let (_, expected) = instance_runs(
            &config,
            None,
            &["--location".to_owned(), location.to_owned()],
        );
        anywhere.extend(expected.iter().cloned());
        let mut runs: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for p in probers.iter().filter(|p| p.location == location) {
            let (placement, names) = instance_runs(&config, None, &p.cluster_args);
            let want = format!("shard {}/{} (location {location},", p.shard.0, p.shard.1);
            assert!(placement.starts_with(&want), "{}: {placement}", p.service);
            for name in names {
                let url = &urls[&name];
                let host = url.host_str().unwrap();
                assert!(
                    host == "127.0.0.1" || compose.reaches(&p.service, host),
                    "{} checks {name} ({url}), but shares no network with {host}",
                    p.service
                );
                runs.entry(name).or_default().push(&p.service);
            }
        }
        assert_eq!(
            runs.keys().cloned().collect::<BTreeSet<_>>(),
            expected,
            "{location}: its probers run the location's checks"
        );
        for (check, services) in &runs {
            assert_eq!(services.len(), 1, "{check} runs on {services:?}");
        }
    }
    assert_eq!(anywhere, all, "every check runs in some location");
}

#[test]
fn compose_fleet_configs_pass_their_own_checkers() {
    let compose = compose_fleet();
    if let Some(promtool) = tool("promtool", "promtool check config (compose fleet)") {
        // The central Prometheus, with its rules as the container sees them.
        let root = compose.container_root("prometheus");
        let ran = run(
            Command::new(&promtool)
                .args(["check", "config"])
                .arg(root.path().join("etc/prometheus/prometheus.yml")),
            None,
        );
        assert!(ran.success, "promtool check config:\n{}", ran.text());
        assert!(
            ran.text().contains("SUCCESS: 3 rule files found"),
            "{}",
            ran.text()
        );
        // The agents, as agents (no rules, no alerting, no local storage).
        for agent in compose_agents(&compose) {
            let file = compose.source_of(&agent, "/etc/prometheus/prometheus.yml");
            let ran = run(
                Command::new(&promtool)
                    .args(["check", "config", "--agent"])
                    .arg(&file),
                None,
            );
            assert!(
                ran.success,
                "promtool check config --agent {agent}:\n{}",
                ran.text()
            );
        }
    }
    compose_config_validates(&compose.dir);
}

/// The Prometheus configs in deploy/README.md marked
/// `<!-- promtool check config -->` (or `... --agent -->`) say what the
/// text says and pass that check, with deploy/prometheus/rules/ beside
/// them as `rules/`.
#[test]
fn deploy_readme_prometheus_configs_pass_promtool() {
    let readme = read(&deploy("README.md"));
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let Some(flags) = line
            .trim()
            .strip_prefix("<!-- promtool check config")
            .and_then(|rest| rest.strip_suffix("-->"))
        else {
            continue;
        };
        let agent = match flags.trim() {
            "" => false,
            "--agent" => true,
            other => panic!("deploy/README.md: promtool marker with {other:?}"),
        };
        assert_eq!(
            lines.next().map(str::trim),
            Some("```yaml"),
            "a yaml block after the marker"
        );
        let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        blocks.push((agent, body.join("\n") + "\n"));
    }
    assert!(
        blocks.len() >= 3 && blocks.iter().any(|(agent, _)| *agent),
        "the agent, central and federation configs: {blocks:?}"
    );
    let shared = yaml(&deploy("prometheus/prometheus.yml"));
    for (agent, body) in &blocks {
        let config: Value = serde_norway::from_str(body).unwrap_or_else(|e| panic!("{e}:\n{body}"));
        if *agent {
            assert!(
                config["global"]["external_labels"]["location"].is_string(),
                "{body}"
            );
            for rw in seq(&config["remote_write"], "remote_write") {
                let url = reqwest::Url::parse(s(&rw["url"], "url")).unwrap();
                assert_eq!(url.path(), "/api/v1/write", "the receiver's path");
            }
            assert_eq!(config["scrape_configs"][0]["job_name"], "lookout");
        } else {
            assert_eq!(config["rule_files"], shared["rule_files"], "{body}");
        }
        for job in config
            .get("scrape_configs")
            .map_or(&[][..], |j| seq(j, "scrape_configs"))
        {
            if job["metrics_path"] == "/federate" {
                assert_eq!(job["honor_labels"], true, "{body}");
                assert_eq!(
                    job["params"]["match[]"],
                    serde_json::json!(["{job=\"lookout\"}"])
                );
            }
        }
    }

    let Some(promtool) = tool("promtool", "promtool check config (deploy/README.md)") else {
        return;
    };
    for (agent, body) in &blocks {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&deploy("prometheus/rules"), &dir.path().join("rules"));
        let file = dir.path().join("prometheus.yml");
        std::fs::write(&file, body).unwrap();
        let mut cmd = Command::new(&promtool);
        cmd.args(["check", "config"]);
        if *agent {
            cmd.arg("--agent");
        }
        let ran = run(cmd.arg(&file), None);
        assert!(
            ran.success,
            "promtool check config:\n{body}\n{}",
            ran.text()
        );
        if !agent {
            assert!(
                ran.text().contains("SUCCESS: 3 rule files found"),
                "{}",
                ran.text()
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Kubernetes

fn k8s(rel: &str) -> Value {
    yaml(&deploy(&format!("kubernetes/{rel}")))
}

fn kustomization() -> Value {
    k8s("kustomization.yaml")
}

fn manifest_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(deploy("kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    files.sort();
    files
}

const CRD_KINDS: &[&str] = &["ServiceMonitor", "PrometheusRule"];

#[test]
fn kubernetes_manifests_validate_against_the_schemas() {
    let Some(validate) = tool(
        "kubernetes-validate",
        "kubernetes-validate deploy/kubernetes",
    ) else {
        return;
    };
    // The Prometheus Operator's CRDs are not in the core schemas: they are
    // checked by servicemonitor_and_prometheusrule_are_well_formed.
    let core: Vec<PathBuf> = manifest_files()
        .iter()
        .map(|f| deploy(&format!("kubernetes/{f}")))
        .filter(|p| !CRD_KINDS.contains(&s(&yaml(p)["kind"], "kind")))
        .collect();
    assert!(core.len() >= 4, "{core:?}");
    let ran = run(Command::new(validate).arg("--strict").args(&core), None);
    assert!(ran.success, "kubernetes-validate --strict:\n{}", ran.text());
    let passed = ran.text().matches(" passed for resource ").count();
    assert_eq!(passed, core.len(), "{}", ran.text());
}

#[test]
fn kustomization_lists_every_manifest_and_renders() {
    let kz = kustomization();
    only_keys(
        &kz,
        &[
            "apiVersion",
            "kind",
            "labels",
            "resources",
            "configMapGenerator",
            "images",
            "namespace",
        ],
        "kustomization.yaml",
    );
    assert_eq!(kz["kind"], "Kustomization");
    let resources: BTreeSet<&str> = seq(&kz["resources"], "resources")
        .iter()
        .map(|r| s(r, "resource"))
        .collect();
    for file in manifest_files() {
        if file == "secret.example.yaml" {
            // Never applied: it would overwrite the real key.
            assert!(!resources.contains(file.as_str()));
        } else {
            assert!(
                resources.contains(file.as_str()),
                "kustomization lists {file}"
            );
        }
    }
    for r in &resources {
        assert!(deploy(&format!("kubernetes/{r}")).is_file(), "{r} exists");
    }
    for generator in seq(&kz["configMapGenerator"], "configMapGenerator") {
        for file in seq(&generator["files"], "files") {
            assert!(deploy(&format!("kubernetes/{}", s(file, "file"))).is_file());
        }
    }

    let Some(kubectl) = tool("kubectl", "kubectl kustomize deploy/kubernetes") else {
        return;
    };
    let ran = run(
        Command::new(kubectl)
            .arg("kustomize")
            .arg(deploy("kubernetes")),
        None,
    );
    assert!(ran.success, "kubectl kustomize:\n{}", ran.text());
    let docs = yaml_docs(&ran.stdout, "kubectl kustomize output");
    let kinds: BTreeSet<&str> = docs.iter().map(|d| s(&d["kind"], "kind")).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ConfigMap",
            "Deployment",
            "PersistentVolumeClaim",
            "PrometheusRule",
            "Service",
            "ServiceMonitor"
        ])
    );
    for doc in &docs {
        assert_eq!(
            doc["metadata"]["labels"]["app.kubernetes.io/part-of"], "lookout",
            "{}",
            doc["kind"]
        );
    }
    let by_kind = |kind: &str| docs.iter().find(|d| d["kind"] == kind).unwrap();
    // The generated ConfigMap carries config.toml as it is, under a hashed
    // name that the Deployment's volume follows.
    let cm = by_kind("ConfigMap");
    let cm_name = s(&cm["metadata"]["name"], "configmap name");
    assert!(cm_name.starts_with("lookout-config-"), "{cm_name}");
    assert_eq!(
        s(&cm["data"]["config.toml"], "config.toml"),
        read(&deploy("kubernetes/config.toml"))
    );
    let volumes = seq(
        &by_kind("Deployment")["spec"]["template"]["spec"]["volumes"],
        "volumes",
    );
    assert!(
        volumes.iter().any(|v| v["configMap"]["name"] == cm_name),
        "the Deployment mounts {cm_name}"
    );

    // And what would be applied validates, the generated ConfigMap included.
    let Some(validate) = tool(
        "kubernetes-validate",
        "kubernetes-validate of the kustomize output",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rendered = dir.path().join("rendered.yaml");
    std::fs::write(&rendered, &ran.stdout).unwrap();
    let ran = run(Command::new(validate).arg("--strict").arg(&rendered), None);
    assert!(ran.success, "kubernetes-validate --strict:\n{}", ran.text());
    let passed = ran.text().matches(" passed for resource ").count();
    assert_eq!(passed, docs.len() - CRD_KINDS.len(), "{}", ran.text());
}

/// `sub` ⊆ `sup`, for label maps.
fn labels_within(sub: &Value, sup: &Value, what: &str) {
    let sup = map(sup, what);
    for (k, v) in map(sub, what) {
        assert_eq!(sup.get(k), Some(v), "{what}: label {k}");
    }
}

/// The hardening every lookout pod in the kits has: non-root, RuntimeDefault
/// seccomp, no service-account token, one container with a read-only root
/// filesystem, no privilege escalation, no capabilities, and requests and
/// limits. Returns the container.
fn assert_hardened<'a>(pod_spec: &'a Value, what: &str) -> &'a Value {
    let psc = &pod_spec["securityContext"];
    assert_eq!(psc["runAsNonRoot"], true, "{what}: runAsNonRoot");
    assert!(
        psc["runAsUser"].as_u64().is_some_and(|uid| uid != 0),
        "{what}: runAsUser {}",
        psc["runAsUser"]
    );
    assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault", "{what}");
    assert_eq!(pod_spec["automountServiceAccountToken"], false, "{what}");
    let containers = seq(&pod_spec["containers"], "containers");
    assert_eq!(containers.len(), 1, "{what}: one container");
    let c = &containers[0];
    let csc = &c["securityContext"];
    assert_eq!(csc["readOnlyRootFilesystem"], true, "{what}");
    assert_eq!(csc["allowPrivilegeEscalation"], false, "{what}");
    assert_eq!(
        csc["capabilities"]["drop"],
        serde_json::json!(["ALL"]),
        "{what}"
    );
    for kind in ["requests", "limits"] {
        for r in ["cpu", "memory"] {
            assert!(
                c["resources"][kind][r].is_string(),
                "{what}: resources.{kind}.{r}"
            );
        }
    }
    c
}

#[test]
fn kubernetes_objects_fit_together() {
    let deployment = k8s("deployment.yaml");
    let service = k8s("service.yaml");
    let monitor = k8s("servicemonitor.yaml");
    let pvc = k8s("pvc.yaml");
    let secret = k8s("secret.example.yaml");
    let config_path = deploy("kubernetes/config.toml");
    let config = toml_file(&config_path);

    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 1, "one writer per history file");
    assert_eq!(spec["strategy"]["type"], "Recreate");
    let pod = &spec["template"];
    labels_within(
        &spec["selector"]["matchLabels"],
        &pod["metadata"]["labels"],
        "Deployment selector",
    );
    labels_within(
        &service["spec"]["selector"],
        &pod["metadata"]["labels"],
        "Service selector",
    );
    labels_within(
        &monitor["spec"]["selector"]["matchLabels"],
        &service["metadata"]["labels"],
        "ServiceMonitor selector",
    );

    let pod_spec = &pod["spec"];
    let c = assert_hardened(pod_spec, "Deployment lookout");

    // Ports: the config's listen port, named, and what the Service, the
    // probes and the ServiceMonitor use.
    let listen = config["server"]["listen"].as_str().unwrap();
    assert_eq!(listen, "0.0.0.0:9898");
    let ports = seq(&c["ports"], "ports");
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0]["containerPort"], 9898);
    let port_name = s(&ports[0]["name"], "port name");
    assert!(port_name.len() <= 15);
    let svc_port = &seq(&service["spec"]["ports"], "service ports")[0];
    assert_eq!(svc_port["port"], 9898);
    assert_eq!(svc_port["targetPort"], port_name);
    assert!(
        ["http-metrics", "metrics"].contains(&s(&svc_port["name"], "service port name")),
        "{svc_port}"
    );
    let endpoints = seq(&monitor["spec"]["endpoints"], "endpoints");
    assert_eq!(endpoints[0]["port"], svc_port["name"]);
    assert_eq!(endpoints[0]["path"], "/metrics");
    for (probe, path) in [
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/healthz"),
    ] {
        assert_eq!(c[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(c[probe]["httpGet"]["port"], port_name, "{probe}");
    }

    // Volumes: the config from the generated ConfigMap at the path the args
    // name; the history on the PVC, where [store] path points.
    let volumes: BTreeMap<&str, &Value> = seq(&pod_spec["volumes"], "volumes")
        .iter()
        .map(|v| (s(&v["name"], "volume name"), v))
        .collect();
    let mounts: BTreeMap<&str, &str> = seq(&c["volumeMounts"], "volumeMounts")
        .iter()
        .map(|m| (s(&m["mountPath"], "mountPath"), s(&m["name"], "mount name")))
        .collect();
    for name in mounts.values() {
        assert!(volumes.contains_key(name), "volume {name}");
    }
    let args: Vec<&str> = seq(&c["args"], "args")
        .iter()
        .map(|a| s(a, "arg"))
        .collect();
    let at = args
        .iter()
        .position(|a| *a == "--config")
        .expect("--config");
    assert_eq!(args[at + 1], "/etc/lookout/config.toml");
    assert!(args.contains(&"run"));
    let config_volume = volumes[mounts["/etc/lookout"]];
    let kz = kustomization();
    let generated = seq(&kz["configMapGenerator"], "generators");
    assert_eq!(config_volume["configMap"]["name"], generated[0]["name"]);
    assert_eq!(generated[0]["files"], serde_json::json!(["config.toml"]));
    let data_volume = volumes[mounts["/var/lib/lookout"]];
    assert_eq!(
        data_volume["persistentVolumeClaim"]["claimName"],
        pvc["metadata"]["name"]
    );
    assert!(
        config["store"]["path"]
            .as_str()
            .unwrap()
            .starts_with("/var/lib/lookout/")
    );
    assert!(mounts.contains_key("/tmp"), "a writable /tmp for SQLite");

    // Secrets: every variable the config needs comes from the Secret, whose
    // example has the same name and key.
    let env = seq(&c["env"], "env");
    let secret_keys = map(&secret["stringData"], "stringData");
    for var in secret_env_vars(&config_path) {
        let entry = env
            .iter()
            .find(|e| e["name"] == var.as_str())
            .unwrap_or_else(|| panic!("the container sets {var}"));
        let key_ref = &entry["valueFrom"]["secretKeyRef"];
        assert_eq!(key_ref["name"], secret["metadata"]["name"], "{var}");
        assert!(
            secret_keys.contains_key(s(&key_ref["key"], "key")),
            "{var}: the example Secret has {}",
            key_ref["key"]
        );
    }

    // lookout gets its whole shutdown grace before the kubelet kills it.
    let grace =
        humantime::parse_duration(config["scheduler"]["shutdown_grace"].as_str().unwrap()).unwrap();
    let termination = pod_spec["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(Duration::from_secs(termination) > grace);
}

// ---------------------------------------------------------------------------
// Kubernetes: the fleet (deploy/kubernetes/fleet/)

fn fleet_dir() -> PathBuf {
    deploy("kubernetes/fleet")
}

/// The fleet's manifests (every .yaml but the kustomization) by file name.
fn fleet_manifests() -> BTreeMap<String, Value> {
    std::fs::read_dir(fleet_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .map(|n| {
            let doc = yaml(&fleet_dir().join(&n));
            (n, doc)
        })
        .collect()
}

fn of_kind<'a>(objects: &'a BTreeMap<String, Value>, kind: &str) -> Vec<&'a Value> {
    objects.values().filter(|o| o["kind"] == kind).collect()
}

fn name_of(object: &Value) -> &str {
    s(&object["metadata"]["name"], "metadata.name")
}

fn pod_labels(workload: &Value) -> &Value {
    &workload["spec"]["template"]["metadata"]["labels"]
}

/// Whether a selector's labels are all among `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let labels = map(labels, "labels");
    map(selector, "selector")
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
}

/// The one container's args.
fn args_of(pod_spec: &Value, what: &str) -> Vec<String> {
    let containers = seq(&pod_spec["containers"], what);
    assert_eq!(containers.len(), 1, "{what}: one container");
    seq(&containers[0]["args"], what)
        .iter()
        .map(|a| s(a, "arg").to_owned())
        .collect()
}

/// The value after `flag` in `args`, if the flag is there (once at most).
fn flag_value<'a>(args: &'a [String], flag: &str, what: &str) -> Option<&'a str> {
    let at: Vec<usize> = args
        .iter()
        .enumerate()
        .filter(|(_, a)| *a == flag)
        .map(|(i, _)| i)
        .collect();
    assert!(at.len() <= 1, "{what}: {flag} is given {} times", at.len());
    at.first().map(|&i| {
        args.get(i + 1)
            .unwrap_or_else(|| panic!("{what}: {flag} has no value"))
            .as_str()
    })
}

/// The args after `run`, without `--config` and its value: where this
/// instance stands (`--shard`, `--shard-count`, `--location`, `--replica`).
fn cluster_args(args: &[String], what: &str) -> Vec<String> {
    let run = args
        .iter()
        .position(|a| a == "run")
        .unwrap_or_else(|| panic!("{what}: `run` in {args:?}"));
    let mut out = Vec::new();
    let mut rest = args[run + 1..].iter();
    while let Some(a) = rest.next() {
        if a == "--config" || a == "-c" {
            rest.next();
        } else {
            out.push(a.clone());
        }
    }
    out
}

/// One prober StatefulSet of the fleet, as its manifest says.
struct Prober {
    name: String,
    replicas: u32,
    /// `--location`.
    location: String,
    /// `--replica`.
    replica: Option<String>,
    /// `--shard-count`.
    shard_count: u32,
    cluster_args: Vec<String>,
    /// The pod template's labels.
    labels: Value,
}

impl Prober {
    /// Its pods' names: the StatefulSet's name and the ordinal.
    fn pods(&self) -> Vec<(u32, String)> {
        (0..self.replicas)
            .map(|i| (i, format!("{}-{i}", self.name)))
            .collect()
    }
}

fn probers(objects: &BTreeMap<String, Value>) -> Vec<Prober> {
    of_kind(objects, "StatefulSet")
        .into_iter()
        .map(|sts| {
            let name = name_of(sts).to_owned();
            let what = format!("StatefulSet {name}");
            let args = args_of(&sts["spec"]["template"]["spec"], &what);
            let cluster = cluster_args(&args, &what);
            let shard_count = flag_value(&cluster, "--shard-count", &what)
                .unwrap_or_else(|| panic!("{what}: --shard-count (the shard from the pod's name)"))
                .parse()
                .unwrap_or_else(|e| panic!("{what}: --shard-count: {e}"));
            Prober {
                replicas: sts["spec"]["replicas"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{what}: replicas"))
                    .try_into()
                    .unwrap(),
                location: flag_value(&cluster, "--location", &what)
                    .unwrap_or_else(|| panic!("{what}: --location"))
                    .to_owned(),
                replica: flag_value(&cluster, "--replica", &what).map(str::to_owned),
                shard_count,
                cluster_args: cluster,
                labels: pod_labels(sts).clone(),
                name,
            }
        })
        .collect()
}

/// What Prometheus' Kubernetes discovery gives a pod's target before
/// relabelling: its name, and each label under
/// `__meta_kubernetes_pod_label_` with the name made a valid label name.
fn discovered_pod_labels(pod_name: &str, labels: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::from([("__meta_kubernetes_pod_name".to_owned(), pod_name.to_owned())]);
    for (k, v) in map(labels, "pod labels") {
        let sanitized: String = k
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        out.insert(
            format!("__meta_kubernetes_pod_label_{sanitized}"),
            s(v, "label").to_owned(),
        );
    }
    out
}

/// One relabelling of a ServiceMonitor endpoint, applied as Prometheus
/// does: the source labels joined by `separator` (`;`), matched against
/// the regex anchored at both ends (`(.*)`), and on a match the target
/// label set to the expanded replacement (`$1`), or removed when that is
/// empty. Only `replace`, the one action the kit uses.
fn relabel(labels: &mut BTreeMap<String, String>, step: &Value) {
    let action = step.get("action").map_or("replace", |a| s(a, "action"));
    assert!(
        action.eq_ignore_ascii_case("replace"),
        "only `replace` is simulated here: {step}"
    );
    let separator = step.get("separator").map_or(";", |v| s(v, "separator"));
    let value = seq(&step["sourceLabels"], "sourceLabels")
        .iter()
        .map(|l| {
            labels
                .get(s(l, "source label"))
                .cloned()
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(separator);
    let regex = step.get("regex").map_or("(.*)", |v| s(v, "regex"));
    let re = regex::Regex::new(&format!("^(?:{regex})$"))
        .unwrap_or_else(|e| panic!("regex {regex:?}: {e}"));
    let Some(caps) = re.captures(&value) else {
        return;
    };
    let mut out = String::new();
    caps.expand(
        step.get("replacement")
            .map_or("$1", |v| s(v, "replacement")),
        &mut out,
    );
    let target = s(&step["targetLabel"], "targetLabel").to_owned();
    if out.is_empty() {
        labels.remove(&target);
    } else {
        labels.insert(target, out);
    }
}

/// The target labels the fleet's ServiceMonitor gives a pod (only those it
/// adds: not `__`-prefixed).
fn fleet_target_labels(pod_name: &str, labels: &Value) -> BTreeMap<String, String> {
    let monitor = yaml(&fleet_dir().join("servicemonitor.yaml"));
    let endpoints = seq(&monitor["spec"]["endpoints"], "endpoints");
    assert_eq!(endpoints.len(), 1, "one endpoint");
    let mut target = discovered_pod_labels(pod_name, labels);
    for step in seq(&endpoints[0]["relabelings"], "relabelings") {
        relabel(&mut target, step);
    }
    target.retain(|k, _| !k.starts_with("__"));
    target
}

#[test]
fn fleet_manifests_validate_against_the_schemas() {
    let Some(validate) = tool(
        "kubernetes-validate",
        "kubernetes-validate deploy/kubernetes/fleet",
    ) else {
        return;
    };
    let core: Vec<PathBuf> = fleet_manifests()
        .iter()
        .filter(|(_, o)| !CRD_KINDS.contains(&s(&o["kind"], "kind")))
        .map(|(f, _)| fleet_dir().join(f))
        .collect();
    assert!(core.len() >= 6, "{core:?}");
    let ran = run(Command::new(validate).arg("--strict").args(&core), None);
    assert!(ran.success, "kubernetes-validate --strict:\n{}", ran.text());
    let passed = ran.text().matches(" passed for resource ").count();
    assert_eq!(passed, core.len(), "{}", ran.text());
}

#[test]
fn fleet_kustomization_lists_every_manifest_and_renders() {
    let kz = yaml(&fleet_dir().join("kustomization.yaml"));
    only_keys(
        &kz,
        &[
            "apiVersion",
            "kind",
            "labels",
            "resources",
            "configMapGenerator",
            "images",
            "namespace",
        ],
        "fleet/kustomization.yaml",
    );
    let resources: BTreeSet<&str> = seq(&kz["resources"], "resources")
        .iter()
        .map(|r| s(r, "resource"))
        .collect();
    let files: BTreeSet<String> = fleet_manifests().into_keys().collect();
    assert_eq!(
        resources,
        files.iter().map(String::as_str).collect(),
        "fleet/kustomization.yaml lists every manifest in fleet/"
    );
    let generators = seq(&kz["configMapGenerator"], "configMapGenerator");
    assert_eq!(generators.len(), 1);
    assert_eq!(generators[0]["files"], serde_json::json!(["config.toml"]));
    // The rules are evaluated where every location meets, which need not be
    // where the probers run: not part of the fleet kit (deploy/README.md).
    for object in fleet_manifests().values() {
        assert_ne!(object["kind"], "PrometheusRule");
    }

    let Some(kubectl) = tool("kubectl", "kubectl kustomize deploy/kubernetes/fleet") else {
        return;
    };
    let ran = run(
        Command::new(kubectl).arg("kustomize").arg(fleet_dir()),
        None,
    );
    assert!(ran.success, "kubectl kustomize:\n{}", ran.text());
    let docs = yaml_docs(&ran.stdout, "kubectl kustomize output");
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for doc in &docs {
        *kinds.entry(s(&doc["kind"], "kind")).or_default() += 1;
        assert_eq!(
            doc["metadata"]["labels"]["app.kubernetes.io/part-of"], "lookout",
            "{} {}",
            doc["kind"], doc["metadata"]["name"]
        );
    }
    assert_eq!(
        kinds,
        BTreeMap::from([
            ("ConfigMap", 1),
            ("Deployment", 1),
            ("PodDisruptionBudget", 1),
            ("Service", 2),
            ("ServiceMonitor", 1),
            ("StatefulSet", 3),
        ])
    );
    let cm = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let cm_name = name_of(cm);
    assert!(cm_name.starts_with("lookout-config-"), "{cm_name}");
    assert_eq!(
        s(&cm["data"]["config.toml"], "config.toml"),
        read(&fleet_dir().join("config.toml"))
    );
    // Every prober and the view mount the hashed ConfigMap, so a changed
    // config rolls them all.
    for workload in docs
        .iter()
        .filter(|d| d["kind"] == "StatefulSet" || d["kind"] == "Deployment")
    {
        let volumes = seq(&workload["spec"]["template"]["spec"]["volumes"], "volumes");
        assert!(
            volumes.iter().any(|v| v["configMap"]["name"] == cm_name),
            "{} mounts {cm_name}",
            name_of(workload)
        );
    }

    let Some(validate) = tool(
        "kubernetes-validate",
        "kubernetes-validate of the fleet's kustomize output",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rendered = dir.path().join("rendered.yaml");
    std::fs::write(&rendered, &ran.stdout).unwrap();
    let ran = run(Command::new(validate).arg("--strict").arg(&rendered), None);
    assert!(ran.success, "kubernetes-validate --strict:\n{}", ran.text());
    let passed = ran.text().matches(" passed for resource ").count();
    assert_eq!(
        passed,
        docs.len() - 1,
        "all but the ServiceMonitor:\n{}",
        ran.text()
    );
}

/// A StatefulSet's pod template with what differs between locations and
/// replicas by design taken out: its name, location and replica labels,
/// and its cluster args. What is left must be the same for every prober.
fn prober_template_without_placement(sts: &Value, prober: &Prober) -> Value {
    let mut spec = sts["spec"].clone();
    for key in ["replicas", "selector"] {
        spec.as_object_mut().unwrap().remove(key);
    }
    let pod = spec["template"].as_object_mut().unwrap();
    let labels = pod["metadata"]["labels"].as_object_mut().unwrap();
    for key in [
        "app.kubernetes.io/instance",
        "lookout.dev/location",
        "lookout.dev/replica",
    ] {
        labels.remove(key);
    }
    let pod_spec = pod["spec"].as_object_mut().unwrap();
    if let Some(Value::Array(spread)) = pod_spec.get_mut("topologySpreadConstraints") {
        for constraint in spread {
            let m = &mut constraint["labelSelector"]["matchLabels"];
            assert_eq!(
                m["lookout.dev/location"], prober.location,
                "{}: spreads its own location's pods",
                prober.name
            );
            m.as_object_mut().unwrap().remove("lookout.dev/location");
        }
    }
    let container = &mut pod_spec["containers"][0];
    let mut args = Vec::new();
    let mut all = seq(&container["args"], "args").iter();
    while let Some(a) = all.next() {
        if ["--shard-count", "--location", "--replica"].contains(&s(a, "arg")) {
            all.next();
        } else {
            args.push(a.clone());
        }
    }
    container["args"] = Value::Array(args);
    spec
}

#[test]
fn fleet_statefulsets_fit_together() {
    let objects = fleet_manifests();
    let probers = probers(&objects);
    let statefulsets = of_kind(&objects, "StatefulSet");
    let deployments = of_kind(&objects, "Deployment");
    let config_path = fleet_dir().join("config.toml");
    let config = toml_file(&config_path);
    let secret = k8s("secret.example.yaml");
    let kz = yaml(&fleet_dir().join("kustomization.yaml"));
    let generated = &kz["configMapGenerator"][0]["name"];

    // What the kit shows: more than one location, a location in several
    // shards, and one whose shards run twice.
    let locations: BTreeSet<&str> = probers.iter().map(|p| p.location.as_str()).collect();
    assert!(locations.len() >= 2, "locations: {locations:?}");
    assert!(
        probers.iter().any(|p| p.shard_count >= 2),
        "a sharded location"
    );
    assert!(
        locations
            .iter()
            .any(|l| probers.iter().filter(|p| p.location == *l).count() >= 2),
        "a location with HA replicas"
    );

    let headless: Vec<&Value> = of_kind(&objects, "Service")
        .into_iter()
        .filter(|svc| svc["spec"]["clusterIP"] == "None")
        .collect();
    assert_eq!(headless.len(), 1, "one headless Service for the probers");
    let service = headless[0];

    let mut reference: Option<Value> = None;
    for (sts, prober) in statefulsets.iter().zip(&probers) {
        let what = format!("StatefulSet {}", prober.name);
        let spec = &sts["spec"];
        let labels = &prober.labels;

        // Sharded by ordinal: as many shards as pods, the index from the
        // pod's name (POD_NAME), and labels that say the same as the args.
        assert_eq!(
            prober.shard_count, prober.replicas,
            "{what}: --shard-count is `replicas`"
        );
        assert_eq!(flag_value(&prober.cluster_args, "--shard", &what), None);
        assert_eq!(labels["lookout.dev/location"], prober.location, "{what}");
        assert_eq!(
            labels.get("lookout.dev/replica").and_then(Value::as_str),
            prober.replica.as_deref(),
            "{what}: the replica label is --replica"
        );
        assert_eq!(labels["app.kubernetes.io/instance"], prober.name, "{what}");
        assert_eq!(sts["metadata"]["labels"], *labels, "{what}: its own labels");
        let pod_spec = &spec["template"]["spec"];
        let c = assert_hardened(pod_spec, &what);
        let pod_name = seq(&c["env"], "env")
            .iter()
            .find(|e| e["name"] == "POD_NAME")
            .unwrap_or_else(|| panic!("{what}: POD_NAME"));
        assert_eq!(
            pod_name["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name",
            "{what}: POD_NAME from the downward API"
        );
        let args = args_of(pod_spec, &what);
        assert_eq!(
            flag_value(&args, "--config", &what),
            Some("/etc/lookout/config.toml")
        );
        assert_eq!(spec["podManagementPolicy"], "Parallel", "{what}");

        // Its own pods only: no other workload's pods match its selector.
        let selector = &spec["selector"]["matchLabels"];
        assert!(selects(selector, labels), "{what}: selects its pods");
        for other in statefulsets.iter().chain(&deployments) {
            if name_of(other) != prober.name {
                assert!(
                    !selects(selector, pod_labels(other)),
                    "{what}'s selector also matches {}'s pods",
                    name_of(other)
                );
            }
        }
        assert_eq!(spec["serviceName"], service["metadata"]["name"], "{what}");
        assert!(
            selects(&service["spec"]["selector"], labels),
            "{what}: behind the headless Service"
        );

        // The config from the generated ConfigMap; the history on a volume
        // of each pod's own, where [store] path points; /tmp for SQLite.
        let volumes: BTreeMap<&str, &Value> = seq(&pod_spec["volumes"], "volumes")
            .iter()
            .map(|v| (s(&v["name"], "volume name"), v))
            .collect();
        let claims: BTreeSet<&str> = seq(&spec["volumeClaimTemplates"], "volumeClaimTemplates")
            .iter()
            .map(name_of)
            .collect();
        let mounts: BTreeMap<&str, &str> = seq(&c["volumeMounts"], "volumeMounts")
            .iter()
            .map(|m| (s(&m["mountPath"], "mountPath"), s(&m["name"], "mount name")))
            .collect();
        assert_eq!(
            volumes[mounts["/etc/lookout"]]["configMap"]["name"],
            *generated
        );
        assert!(
            claims.contains(mounts["/var/lib/lookout"]),
            "{what}: the history on a volumeClaimTemplate"
        );
        assert!(
            config["store"]["path"]
                .as_str()
                .unwrap()
                .starts_with("/var/lib/lookout/")
        );
        assert!(volumes.contains_key(mounts["/tmp"]), "{what}: /tmp");
        assert_eq!(
            spec["persistentVolumeClaimRetentionPolicy"]["whenScaled"], "Delete",
            "{what}: a removed shard's volume goes with it"
        );

        // Probes on the named port, as in the single-instance kit.
        let port = &seq(&c["ports"], "ports")[0];
        assert_eq!(port["containerPort"], 9898);
        assert_eq!(config["server"]["listen"].as_str(), Some("0.0.0.0:9898"));
        for (probe, path) in [
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
            ("startupProbe", "/healthz"),
        ] {
            assert_eq!(c[probe]["httpGet"]["path"], path, "{what}: {probe}");
            assert_eq!(c[probe]["httpGet"]["port"], port["name"], "{what}: {probe}");
        }
        let svc_port = &seq(&service["spec"]["ports"], "ports")[0];
        assert_eq!(svc_port["targetPort"], port["name"]);

        // Secrets from the Secret of ../secret.example.yaml.
        let secret_keys = map(&secret["stringData"], "stringData");
        for var in secret_env_vars(&config_path) {
            let entry = seq(&c["env"], "env")
                .iter()
                .find(|e| e["name"] == var.as_str())
                .unwrap_or_else(|| panic!("{what} sets {var}"));
            let key_ref = &entry["valueFrom"]["secretKeyRef"];
            assert_eq!(key_ref["name"], secret["metadata"]["name"], "{what}: {var}");
            assert!(secret_keys.contains_key(s(&key_ref["key"], "key")));
        }
        let grace =
            humantime::parse_duration(config["scheduler"]["shutdown_grace"].as_str().unwrap())
                .unwrap();
        let termination = pod_spec["terminationGracePeriodSeconds"].as_u64().unwrap();
        assert!(Duration::from_secs(termination) > grace, "{what}");

        // Every prober's pod is the same but for its placement.
        let template = prober_template_without_placement(sts, prober);
        match &reference {
            None => reference = Some(template),
            Some(first) => assert_eq!(
                &template, first,
                "{what} differs from {} beyond location, replica and shards",
                probers[0].name
            ),
        }
    }

    // HA copies of a location: the same shards, told apart by --replica.
    for location in &locations {
        let copies: Vec<&Prober> = probers.iter().filter(|p| p.location == *location).collect();
        let counts: BTreeSet<u32> = copies.iter().map(|p| p.shard_count).collect();
        assert_eq!(counts.len(), 1, "{location}: one shard count: {counts:?}");
        if copies.len() > 1 {
            let replicas: BTreeSet<Option<&str>> =
                copies.iter().map(|p| p.replica.as_deref()).collect();
            assert_eq!(
                replicas.len(),
                copies.len(),
                "{location}: distinct replicas"
            );
            assert!(
                !replicas.contains(&None),
                "{location}: every copy has --replica"
            );
        }
    }

    // The disruption budget covers one location's pods, every copy of
    // them, and no other's.
    for pdb in of_kind(&objects, "PodDisruptionBudget") {
        let selector = &pdb["spec"]["selector"]["matchLabels"];
        let covered: BTreeSet<&str> = probers
            .iter()
            .filter(|p| selects(selector, &p.labels))
            .map(|p| p.location.as_str())
            .collect();
        assert_eq!(
            covered.len(),
            1,
            "{}: one location: {covered:?}",
            name_of(pdb)
        );
        let location = covered.into_iter().next().unwrap();
        for p in probers.iter().filter(|p| p.location == location) {
            assert!(
                selects(selector, &p.labels),
                "{} covers {}",
                name_of(pdb),
                p.name
            );
        }
        assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    }

    // The ServiceMonitor scrapes the probers' Service, not the view's
    // (which has no /metrics).
    let monitor = &objects["servicemonitor.yaml"];
    let sm_selector = &monitor["spec"]["selector"]["matchLabels"];
    for svc in of_kind(&objects, "Service") {
        let is_probers = svc["metadata"]["name"] == service["metadata"]["name"];
        assert_eq!(
            selects(sm_selector, &svc["metadata"]["labels"]),
            is_probers,
            "the ServiceMonitor selects {}: {}",
            name_of(svc),
            is_probers
        );
    }
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], service["spec"]["ports"][0]["name"]);
    // The job is the Service's name, which LookoutDown expects.
    assert_eq!(service["metadata"]["name"], "lookout");
    assert!(monitor["spec"].get("jobLabel").is_none());
}

#[test]
fn fleet_servicemonitor_labels_each_pod_with_its_location_replica_and_shard() {
    use lookout::cluster::Shard;

    // The shard regex against lookout's own reading of a pod's name.
    let monitor = yaml(&fleet_dir().join("servicemonitor.yaml"));
    let shard_step = seq(
        &monitor["spec"]["endpoints"][0]["relabelings"],
        "relabelings",
    )
    .iter()
    .find(|r| r["targetLabel"] == "shard")
    .expect("a relabelling to `shard`")
    .clone();
    assert_eq!(
        shard_step["sourceLabels"],
        serde_json::json!(["__meta_kubernetes_pod_name"])
    );
    for (pod, want) in [
        ("lookout-edge-a-2", Some("2")),
        ("lookout-edge-a-0", Some("0")),
        ("lookout-internal-0", Some("0")),
        ("lookout-edge-b-11", Some("11")),
        ("lookout-2", Some("2")),
        ("lookout-edge-a", None),
        ("lookout", None),
        ("lookout-view-7d9f8b6c4-x2x9q", None),
    ] {
        let mut labels =
            BTreeMap::from([("__meta_kubernetes_pod_name".to_owned(), pod.to_owned())]);
        relabel(&mut labels, &shard_step);
        assert_eq!(labels.get("shard").map(String::as_str), want, "{pod}");
        let lookout_says = Shard::from_pod_name(pod, 64)
            .ok()
            .map(|s| s.index().to_string());
        assert_eq!(
            lookout_says.as_deref(),
            want,
            "{pod}: lookout's shard from the pod's name"
        );
    }

    // Every pod the kit creates gets its location, replica and shard.
    let objects = fleet_manifests();
    let mut expected = BTreeMap::new();
    for prober in probers(&objects) {
        for (ordinal, pod) in prober.pods() {
            let mut want = BTreeMap::from([
                ("location".to_owned(), prober.location.clone()),
                ("shard".to_owned(), ordinal.to_string()),
            ]);
            if let Some(r) = &prober.replica {
                want.insert("replica".to_owned(), r.clone());
            }
            let got = fleet_target_labels(&pod, &prober.labels);
            assert_eq!(got, want, "{pod}");
            let shard = Shard::from_pod_name(&pod, prober.shard_count).unwrap();
            assert_eq!(shard.index(), ordinal, "{pod}");
            expected.insert(
                pod.clone(),
                (discovered_pod_labels(&pod, &prober.labels), want),
            );
        }
    }
    assert!(expected.len() >= 5, "{expected:?}");

    // And Prometheus' own relabelling of those pods, with the endpoint's
    // relabelings as the operator writes them into the scrape config.
    let Some(promtool) = tool(
        "promtool",
        "promtool check service-discovery (the ServiceMonitor's relabelings)",
    ) else {
        return;
    };
    let relabel_configs: Vec<Value> = seq(
        &monitor["spec"]["endpoints"][0]["relabelings"],
        "relabelings",
    )
    .iter()
    .map(|step| {
        let mut out = serde_json::Map::new();
        for (k, v) in map(step, "relabeling") {
            let key = match k.as_str() {
                "sourceLabels" => "source_labels",
                "targetLabel" => "target_label",
                other => other,
            };
            out.insert(key.to_owned(), v.clone());
        }
        Value::Object(out)
    })
    .collect();
    let static_configs: Vec<Value> = expected
        .iter()
        .map(|(pod, (discovered, _))| {
            serde_json::json!({ "targets": [format!("{pod}.lookout:9898")], "labels": discovered })
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prometheus.yml");
    std::fs::write(
        &file,
        serde_json::json!({ "scrape_configs": [{
            "job_name": "lookout",
            "static_configs": static_configs,
            "relabel_configs": relabel_configs,
        }]})
        .to_string(),
    )
    .unwrap();
    let ran = run(
        Command::new(promtool)
            .args(["check", "service-discovery", "--timeout=2s"])
            .arg(&file)
            .arg("lookout"),
        None,
    );
    assert!(
        ran.success,
        "promtool check service-discovery:\n{}",
        ran.text()
    );
    let targets: Vec<Value> =
        serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {}", ran.stdout));
    assert_eq!(targets.len(), expected.len(), "{}", ran.stdout);
    for t in &targets {
        let instance = s(&t["labels"]["instance"], "instance");
        let pod = instance.split('.').next().unwrap();
        let (_, want) = expected
            .get(pod)
            .unwrap_or_else(|| panic!("a target for no pod: {t}"));
        let got: BTreeMap<String, String> = map(&t["labels"], "labels")
            .iter()
            .filter(|(k, _)| ["location", "replica", "shard"].contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), s(v, "label").to_owned()))
            .collect();
        assert_eq!(&got, want, "{pod}: Prometheus' relabelling");
    }
}

/// What `lookout check-config` says one instance runs: the line that names
/// its shard, location and replica, and the names of its checks and flows.
fn instance_runs(
    config: &Path,
    pod_name: Option<&str>,
    cluster_args: &[String],
) -> (String, BTreeSet<String>) {
    let mut cmd = lookout();
    cmd.arg("check-config")
        .arg(config)
        .args(cluster_args)
        .env("PLATFORM_API_KEY", "dummy-key-for-check-config")
        .env_remove("POD_NAME")
        .env_remove("HOSTNAME");
    if let Some(pod) = pod_name {
        cmd.env("POD_NAME", pod);
    }
    let ran = run(&mut cmd, None);
    assert!(
        ran.success,
        "check-config {} {cluster_args:?} (POD_NAME {pod_name:?}):\n{}",
        config.display(),
        ran.text()
    );
    let placement = ran.stdout.lines().nth(1).unwrap_or_default().to_owned();
    let names = ran
        .stdout
        .lines()
        .filter(|l| l.contains('\t'))
        .map(|l| l.split('\t').next().unwrap().to_owned())
        .collect();
    (placement, names)
}

/// Each location's StatefulSets, pod by pod, run what lookout says that
/// location runs, each check exactly once per copy; every check runs in
/// some location of the kit.
#[test]
fn fleet_pods_run_each_check_once_per_location() {
    let config = fleet_dir().join("config.toml");
    let objects = fleet_manifests();
    let probers = probers(&objects);
    let (_, all) = instance_runs(&config, None, &[]);
    assert!(all.len() >= 3, "{all:?}");
    let mut anywhere = BTreeSet::new();
    for prober in &probers {
        let location_args = ["--location".to_owned(), prober.location.clone()];
        let (_, expected) = instance_runs(&config, None, &location_args);
        assert!(!expected.is_empty(), "{} runs something", prober.location);
        anywhere.extend(expected.iter().cloned());
        let mut runs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (ordinal, pod) in prober.pods() {
            let (placement, names) = instance_runs(&config, Some(&pod), &prober.cluster_args);
            // Of as many shards as the StatefulSet has pods.
            let want = format!(
                "shard {ordinal}/{} (location {}, replica {}):",
                prober.replicas,
                prober.location,
                prober.replica.as_deref().unwrap_or("-")
            );
            assert!(placement.starts_with(&want), "{pod}: {placement}");
            for name in names {
                runs.entry(name).or_default().push(pod.clone());
            }
        }
        assert_eq!(
            runs.keys().cloned().collect::<BTreeSet<_>>(),
            expected,
            "{}: its pods run the location's checks",
            prober.name
        );
        for (check, pods) in &runs {
            assert_eq!(pods.len(), 1, "{check} runs on {pods:?}");
        }
    }
    assert_eq!(anywhere, all, "every check runs in some location");
}

#[test]
fn fleet_view_reads_the_fleet_from_a_prometheus_the_docs_name() {
    let objects = fleet_manifests();
    let view = of_kind(&objects, "Deployment");
    assert_eq!(view.len(), 1);
    let view = view[0];
    let what = format!("Deployment {}", name_of(view));
    let pod_spec = &view["spec"]["template"]["spec"];
    let c = assert_hardened(pod_spec, &what);
    let args = args_of(pod_spec, &what);
    assert!(args.contains(&"view".to_owned()), "{what}: {args:?}");
    assert!(!args.contains(&"run".to_owned()), "{what}: {args:?}");

    // The Prometheus it reads: a Service of this kit, or one the docs name
    // (the operator's `prometheus-operated`).
    let url_text = flag_value(&args, "--prometheus", &what).expect("--prometheus");
    let url = reqwest::Url::parse(url_text).unwrap();
    let host = url.host_str().unwrap();
    let service = host.split('.').next().unwrap();
    assert!(
        host.ends_with(".svc") || host.ends_with(".svc.cluster.local") || !host.contains('.'),
        "{what}: --prometheus names a Service: {host}"
    );
    let in_kit = of_kind(&objects, "Service")
        .iter()
        .any(|svc| name_of(svc) == service);
    let readme = read(&deploy("README.md"));
    assert!(
        in_kit || readme.contains(url_text),
        "{what}: --prometheus {url_text} is neither in the kit nor in deploy/README.md"
    );
    // The kit watches the Prometheus the view reads.
    let config_path = fleet_dir().join("config.toml");
    let config = toml_file(&config_path);
    let watched = config["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["url"].as_str())
        .filter_map(|u| reqwest::Url::parse(u).ok())
        .any(|u| u.origin() == url.origin());
    assert!(watched, "a check of {url_text} in config.toml");

    // Listens where its port, probes and Service say.
    let listen: std::net::SocketAddr = flag_value(&args, "--listen", &what)
        .expect("--listen (the config's [server] listen is the probers')")
        .parse()
        .unwrap();
    assert!(listen.ip().is_unspecified(), "{what}: {listen}");
    let port = &seq(&c["ports"], "ports")[0];
    assert_eq!(port["containerPort"], listen.port());
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
        assert_eq!(c[probe]["httpGet"]["port"], port["name"], "{probe}");
    }
    let labels = pod_labels(view);
    assert!(selects(&view["spec"]["selector"]["matchLabels"], labels));
    let services: Vec<&Value> = of_kind(&objects, "Service")
        .into_iter()
        .filter(|svc| selects(&svc["spec"]["selector"], labels))
        .collect();
    assert_eq!(services.len(), 1, "one Service in front of the view");
    let svc_port = &services[0]["spec"]["ports"][0];
    assert_eq!(svc_port["targetPort"], port["name"]);
    assert_eq!(svc_port["port"], listen.port());
    for prober in probers(&objects) {
        assert!(
            !selects(&services[0]["spec"]["selector"], &prober.labels),
            "the view's Service does not pick {}",
            prober.name
        );
    }
    // The view's own checks in config.toml reach it through that Service.
    let view_url = format!("http://{}:{}/", name_of(services[0]), listen.port());
    assert!(
        read(&config_path).contains(&view_url),
        "config.toml checks {view_url}"
    );

    // The config it loads, and the secrets that config needs.
    assert_eq!(
        flag_value(&args, "--config", &what),
        Some("/etc/lookout/config.toml")
    );
    let mounts = seq(&c["volumeMounts"], "volumeMounts");
    let config_mount = mounts
        .iter()
        .find(|m| m["mountPath"] == "/etc/lookout")
        .expect("the config mounted");
    let volume = seq(&pod_spec["volumes"], "volumes")
        .iter()
        .find(|v| v["name"] == config_mount["name"])
        .unwrap();
    let kz = yaml(&fleet_dir().join("kustomization.yaml"));
    assert_eq!(
        volume["configMap"]["name"],
        kz["configMapGenerator"][0]["name"]
    );
    for var in secret_env_vars(&config_path) {
        assert!(
            seq(&c["env"], "env")
                .iter()
                .any(|e| e["name"] == var.as_str()
                    && e["valueFrom"]["secretKeyRef"]["name"] == "lookout-secrets"),
            "{what}: {var} from the Secret"
        );
    }
}

fn generated_prometheusrule(rule_files: &[PathBuf]) -> String {
    const HEADER: &[&str] = &[
        "# GENERATED from deploy/prometheus/rules/*.yml by tests/it/deploy.rs: do not",
        "# edit. After changing those rules, regenerate it with",
        "#   UPDATE_DEPLOY=1 cargo test --test it deploy",
        "# (the test fails while the two differ).",
        "#",
        "# For the Prometheus Operator (monitoring.coreos.com/v1). Prometheus selects",
        "# PrometheusRules by label (its ruleSelector): kube-prometheus-stack, for",
        "# one, wants `release: <its release name>`. LookoutDown expects",
        "# job=\"lookout\", the job the ServiceMonitor gives (the Service's name).",
        "apiVersion: monitoring.coreos.com/v1",
        "kind: PrometheusRule",
        "metadata:",
        "  name: lookout",
        "  labels:",
        "    app.kubernetes.io/name: lookout",
        "spec:",
        "  groups:",
    ];
    let mut out = HEADER.join("\n") + "\n";
    for (i, file) in rule_files.iter().enumerate() {
        let text = read(file);
        let doc = yaml(file);
        assert_eq!(
            map(&doc, "rules").keys().collect::<Vec<_>>(),
            ["groups"],
            "{}: only `groups`",
            file.display()
        );
        let body = text
            .strip_prefix("groups:\n")
            .or_else(|| text.split_once("\ngroups:\n").map(|(_, b)| b))
            .unwrap_or_else(|| panic!("{}: `groups:` at the top level", file.display()));
        if i > 0 {
            out.push('\n');
        }
        let name = file.file_name().unwrap().to_string_lossy();
        out.push_str(&format!("    # deploy/prometheus/rules/{name}\n"));
        for line in body.trim_end().lines() {
            if !line.is_empty() {
                out.push_str("  ");
                out.push_str(line);
            }
            out.push('\n');
        }
    }
    out
}

fn rule_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy("prometheus/rules"))
        .expect("deploy/prometheus/rules")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
}

#[test]
fn prometheusrule_carries_the_rules_of_deploy_prometheus() {
    let files = rule_files();
    let expected = generated_prometheusrule(&files);
    let path = deploy("kubernetes/prometheusrule.yaml");
    if std::env::var_os("UPDATE_DEPLOY").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    // The generator is sound: the same groups, value for value.
    let generated: Value = serde_norway::from_str(&expected).unwrap();
    let mut groups = Vec::new();
    for file in &files {
        groups.extend(seq(&yaml(file)["groups"], "groups").iter().cloned());
    }
    assert_eq!(generated["spec"]["groups"], Value::Array(groups));
    assert!(
        read(&path) == expected,
        "deploy/kubernetes/prometheusrule.yaml differs from deploy/prometheus/rules/*.yml: \
         regenerate it with `UPDATE_DEPLOY=1 cargo test --test it deploy`"
    );
}

/// A ServiceMonitor (monitoring.coreos.com/v1) with only the fields the
/// operator knows (a typo would be ignored, not rejected), durations that
/// parse, and relabelings whose actions and regexes Prometheus takes.
fn assert_servicemonitor_well_formed(sm: &Value) {
    only_keys(
        sm,
        &["apiVersion", "kind", "metadata", "spec"],
        "ServiceMonitor",
    );
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["kind"], "ServiceMonitor");
    assert!(!s(&sm["metadata"]["name"], "name").is_empty());
    only_keys(
        &sm["spec"],
        &[
            "selector",
            "endpoints",
            "namespaceSelector",
            "jobLabel",
            "targetLabels",
            "podTargetLabels",
            "sampleLimit",
        ],
        "ServiceMonitor spec",
    );
    assert!(!map(&sm["spec"]["selector"]["matchLabels"], "matchLabels").is_empty());
    let endpoints = seq(&sm["spec"]["endpoints"], "endpoints");
    assert!(!endpoints.is_empty());
    for e in endpoints {
        only_keys(
            e,
            &[
                "port",
                "targetPort",
                "path",
                "scheme",
                "interval",
                "scrapeTimeout",
                "honorLabels",
                "honorTimestamps",
                "relabelings",
                "metricRelabelings",
                "params",
            ],
            "ServiceMonitor endpoint",
        );
        assert!(e["port"].is_string() || e["targetPort"].is_string());
        let interval = prom_duration(s(&e["interval"], "interval")).expect("interval");
        let timeout = prom_duration(s(&e["scrapeTimeout"], "scrapeTimeout")).expect("timeout");
        assert!(timeout <= interval, "scrapeTimeout <= interval");
        for r in e
            .get("relabelings")
            .map_or(&[][..], |r| seq(r, "relabelings"))
        {
            only_keys(
                r,
                &[
                    "sourceLabels",
                    "separator",
                    "targetLabel",
                    "regex",
                    "modulus",
                    "replacement",
                    "action",
                ],
                "relabeling",
            );
            let action = r.get("action").map_or("replace", |a| s(a, "action"));
            assert!(
                [
                    "replace",
                    "keep",
                    "drop",
                    "hashmod",
                    "labelmap",
                    "labeldrop",
                    "labelkeep",
                    "lowercase",
                    "uppercase",
                    "keepequal",
                    "dropequal",
                ]
                .contains(&action.to_ascii_lowercase().as_str()),
                "relabeling action {action}"
            );
            if let Some(regex) = r.get("regex") {
                regex::Regex::new(&format!("^(?:{})$", s(regex, "regex")))
                    .unwrap_or_else(|e| panic!("relabeling regex {regex}: {e}"));
            }
            if action.eq_ignore_ascii_case("replace") {
                assert!(
                    r["targetLabel"].is_string(),
                    "replace needs targetLabel: {r}"
                );
                assert!(!seq(&r["sourceLabels"], "sourceLabels").is_empty());
            }
        }
    }
}

#[test]
fn servicemonitor_and_prometheusrule_are_well_formed() {
    assert_servicemonitor_well_formed(&k8s("servicemonitor.yaml"));
    assert_servicemonitor_well_formed(&yaml(&fleet_dir().join("servicemonitor.yaml")));

    // PrometheusRule (monitoring.coreos.com/v1).
    let pr = k8s("prometheusrule.yaml");
    only_keys(
        &pr,
        &["apiVersion", "kind", "metadata", "spec"],
        "PrometheusRule",
    );
    assert_eq!(pr["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(pr["kind"], "PrometheusRule");
    assert!(!s(&pr["metadata"]["name"], "name").is_empty());
    only_keys(&pr["spec"], &["groups"], "PrometheusRule spec");
    let groups = seq(&pr["spec"]["groups"], "groups");
    assert!(!groups.is_empty());
    let mut group_names = BTreeSet::new();
    let mut recorded = BTreeSet::new();
    let mut exprs = Vec::new();
    let mut alerts = 0;
    for g in groups {
        only_keys(
            g,
            &[
                "name",
                "interval",
                "rules",
                "limit",
                "partial_response_strategy",
                "query_offset",
                "labels",
            ],
            "rule group",
        );
        let name = s(&g["name"], "group name");
        assert!(group_names.insert(name), "group {name} is unique");
        let rules = seq(&g["rules"], "rules");
        assert!(!rules.is_empty(), "group {name} has rules");
        for r in rules {
            only_keys(
                r,
                &[
                    "alert",
                    "record",
                    "expr",
                    "for",
                    "keep_firing_for",
                    "labels",
                    "annotations",
                ],
                "rule",
            );
            let expr = s(&r["expr"], "expr");
            assert!(!expr.trim().is_empty());
            match (r.get("alert"), r.get("record")) {
                (Some(alert), None) => {
                    alerts += 1;
                    let alert = s(alert, "alert");
                    if let Some(d) = r.get("for") {
                        assert!(prom_duration(s(d, "for")).is_some(), "{alert}: for {d}");
                    }
                    let severity = s(&r["labels"]["severity"], "severity");
                    assert!(
                        ["critical", "warning", "info"].contains(&severity),
                        "{alert}: severity {severity}"
                    );
                    assert!(r["annotations"]["summary"].is_string(), "{alert}: summary");
                    for (k, v) in map(&r["annotations"], "annotations") {
                        assert!(v.is_string(), "{alert}: annotation {k}");
                    }
                    exprs.push((alert.to_owned(), expr.to_owned()));
                }
                (None, Some(record)) => {
                    let record = s(record, "record");
                    assert!(
                        record
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                        "record {record}"
                    );
                    recorded.insert(record.to_owned());
                    exprs.push((record.to_owned(), expr.to_owned()));
                }
                _ => panic!("a rule is exactly one of alert and record: {r}"),
            }
        }
    }
    assert!(alerts >= 3, "alerts: {alerts}");
    assert!(
        exprs.iter().any(|(_, e)| e.contains("up{job=\"lookout\"}")),
        "an alert for lookout itself being down"
    );

    // Only metrics that lookout exports (docs/metrics.md), that the rules
    // record, or Prometheus' own `up`.
    let known = documented_metric_names();
    for (rule, expr) in &exprs {
        for name in promql_metric_names(expr) {
            assert!(
                known.contains(&name) || recorded.contains(&name) || name == "up",
                "{rule}: `{name}` is not in docs/metrics.md"
            );
        }
    }

    // And Prometheus' own rule checker on the groups as they are embedded.
    let Some(promtool) = tool("promtool", "promtool check rules (PrometheusRule)") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yml");
    std::fs::write(&file, serde_json::json!({ "groups": groups }).to_string()).unwrap();
    let ran = run(
        Command::new(promtool).arg("check").arg("rules").arg(&file),
        None,
    );
    assert!(ran.success, "promtool check rules:\n{}", ran.text());
}

// ---------------------------------------------------------------------------
// systemd

/// The unit's `Key=value` lines by section.
fn unit_entries(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (k, v) = line.split_once('=').expect("Key=value");
        out.push((section.clone(), k.trim().to_owned(), v.trim().to_owned()));
    }
    out
}

#[test]
fn systemd_unit_is_hardened_and_passes_systemd_analyze() {
    let path = deploy("systemd/lookout.service");
    let text = read(&path);
    let entries = unit_entries(&text);
    let service = |key: &str| -> Vec<&str> {
        entries
            .iter()
            .filter(|(s, k, _)| s == "Service" && k == key)
            .map(|(_, _, v)| v.as_str())
            .collect()
    };
    let one = |key: &str| -> &str {
        let v = service(key);
        assert_eq!(v.len(), 1, "{key}: {v:?}");
        v[0]
    };
    assert_eq!(
        one("ExecStart"),
        "/usr/local/bin/lookout run --config /etc/lookout/config.toml"
    );
    // SIGHUP reloads the config.
    assert_eq!(one("ExecReload"), "/bin/kill -HUP $MAINPID");
    for (key, value) in [
        ("Restart", "on-failure"),
        ("KillSignal", "SIGTERM"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "lookout"),
        ("ConfigurationDirectory", "lookout"),
        ("EnvironmentFile", "-/etc/lookout/secrets.env"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("SystemCallFilter", "@system-service"),
        ("MemoryDenyWriteExecute", "yes"),
        ("LockPersonality", "yes"),
    ] {
        assert_eq!(one(key), value, "{key}");
    }
    // The unit waits longer than lookout drains, and the history is in the
    // StateDirectory.
    let config = toml_file(&deploy("systemd/config.toml"));
    let grace =
        humantime::parse_duration(config["scheduler"]["shutdown_grace"].as_str().unwrap()).unwrap();
    let stop = humantime::parse_duration(one("TimeoutStopSec")).unwrap();
    assert!(
        stop > grace,
        "TimeoutStopSec {stop:?} > shutdown_grace {grace:?}"
    );
    assert!(
        config["store"]["path"]
            .as_str()
            .unwrap()
            .starts_with("/var/lib/lookout/")
    );

    let Some(analyze) = tool(
        "systemd-analyze",
        "systemd-analyze verify lookout.service (Debian's systemd package)",
    ) else {
        return;
    };
    // verify wants ExecStart's binary to exist: point a copy at the one
    // cargo built.
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("lookout.service");
    std::fs::write(
        &unit,
        text.replace("/usr/local/bin/lookout", env!("CARGO_BIN_EXE_lookout")),
    )
    .unwrap();
    let ran = run(Command::new(&analyze).arg("verify").arg(&unit), None);
    // Warnings (an unknown key, a bad value) do not change the exit code:
    // any line about this unit fails the test. Lines about other units on
    // the machine are only shown.
    let output = ran.text();
    let ours: Vec<&str> = output.lines().filter(|l| l.contains("lookout")).collect();
    assert!(
        ran.success && ours.is_empty(),
        "systemd-analyze verify:\n{output}"
    );
    if !output.trim().is_empty() {
        eprintln!("systemd-analyze verify (other units):\n{output}");
    }

    // The overall exposure from `systemd-analyze security`: at most 2.0
    // ("OK"; --threshold is in tenths).
    let ran = run(
        Command::new(&analyze)
            .args(["security", "--offline=yes", "--threshold=20"])
            .arg(&unit),
        None,
    );
    // --offline came with systemd 250; an older one is a tool missing a
    // feature, and skips (or fails under LOOKOUT_REQUIRE_TOOLS) like a
    // missing tool.
    if ran.stderr.contains("--offline") || ran.stderr.contains("unrecognized option") {
        return skip(
            "systemd-analyze security --offline",
            "not supported by this systemd (250 or later has it)",
        );
    }
    assert!(
        ran.success,
        "systemd-analyze security: exposure above 2.0:\n{}",
        ran.text()
    );
}

/// A running process, killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The compose stack's Alertmanager config, loaded by a real Alertmanager
/// on loopback: alerts posted to it are inhibited exactly as the comments
/// say (a down lookout instance's own per-instance alerts; the 14-day
/// certificate alert under the 3-day one for the same check), and nothing
/// else is: not the fleet-wide check, flow and location alerts, which carry
/// no `instance`, and not a check's "somewhere" warning under its page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_inhibits_as_documented() {
    let Some(binary) = tool_any(
        &["prometheus-alertmanager", "alertmanager"],
        "Alertmanager inhibition",
    ) else {
        return;
    };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let data = tempfile::tempdir().unwrap();
    let _am = Child(
        Command::new(binary)
            .arg(format!(
                "--config.file={}",
                deploy("compose/alertmanager.yml").display()
            ))
            .arg(format!("--storage.path={}", data.path().display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // No cluster: no gossip port, no peers.
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(
        http.get(format!("{base}/-/ready")).send().await,
        Ok(r) if r.status().is_success()
    ) {
        assert!(Instant::now() < deadline, "Alertmanager did not get ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // (labels, whether it must be inhibited), with the labels the rules in
    // deploy/prometheus/rules/lookout-alerts.yml give each alert.
    let cases: [(&[(&str, &str)], bool); 14] = [
        (
            &[
                ("alertname", "LookoutDown"),
                ("job", "lookout"),
                ("instance", "a"),
            ],
            false,
        ),
        // The down instance's own alerts say nothing new.
        (
            &[
                ("alertname", "LookoutScheduleLagging"),
                ("job", "lookout"),
                ("instance", "a"),
            ],
            true,
        ),
        // Another instance's: it is up.
        (
            &[
                ("alertname", "LookoutStoreDegraded"),
                ("job", "lookout"),
                ("instance", "b"),
            ],
            false,
        ),
        // Fleet-wide: one check failing by quorum, whichever instance is
        // down; the other replicas and locations still see it.
        (
            &[
                ("alertname", "LookoutCheckFailing"),
                ("group", "g"),
                ("check", "x"),
            ],
            false,
        ),
        // Exclusive with LookoutCheckFailing by construction (the same
        // verdict series), so no rule hides one under the other.
        (
            &[
                ("alertname", "LookoutCheckFailingSomewhere"),
                ("group", "g"),
                ("check", "x"),
            ],
            false,
        ),
        (
            &[
                ("alertname", "LookoutCheckSlow"),
                ("job", "lookout"),
                ("location", "eu"),
                ("group", "g"),
                ("check", "x"),
            ],
            false,
        ),
        // A prober that is up but cut off, elsewhere than instance a.
        (
            &[("alertname", "LookoutLocationDown"), ("location", "ap")],
            false,
        ),
        (
            &[("alertname", "LookoutGroupHealthLow"), ("group", "g")],
            false,
        ),
        (
            &[
                ("alertname", "LookoutCertificateExpiringVerySoon"),
                ("group", "g"),
                ("check", "z"),
            ],
            false,
        ),
        (
            &[
                ("alertname", "LookoutCertificateExpiringSoon"),
                ("group", "g"),
                ("check", "z"),
            ],
            true,
        ),
        (
            &[
                ("alertname", "LookoutCertificateExpiringSoon"),
                ("group", "g"),
                ("check", "w"),
            ],
            false,
        ),
        (
            &[
                ("alertname", "LookoutCredentialExpiresVerySoon"),
                ("group", "g"),
                ("check", "z"),
                ("credential", "sha256:11111111"),
            ],
            false,
        ),
        (
            &[
                ("alertname", "LookoutCredentialExpiresSoon"),
                ("group", "g"),
                ("check", "z"),
                ("credential", "sha256:11111111"),
            ],
            true,
        ),
        (
            &[
                ("alertname", "LookoutCredentialExpiresSoon"),
                ("group", "g"),
                ("check", "z"),
                ("credential", "sha256:22222222"),
            ],
            false,
        ),
    ];
    let alerts: Vec<Value> = cases
        .iter()
        .map(|(labels, _)| {
            let mut l: serde_json::Map<String, Value> = labels
                .iter()
                .map(|(k, v)| (k.to_string(), Value::from(*v)))
                .collect();
            l.insert("severity".into(), "warning".into());
            serde_json::json!({ "labels": l })
        })
        .collect();
    let posted = http
        .post(format!("{base}/api/v2/alerts"))
        .header("content-type", "application/json")
        .body(serde_json::to_string(&alerts).unwrap())
        .send()
        .await
        .unwrap();
    assert!(posted.status().is_success(), "{}", posted.status());

    // The inhibitor sees new alerts a moment after the API takes them.
    // An alert by its labels, severity aside: `alertname{k=v,...}`.
    let key = |labels: &Value| {
        let mut pairs: Vec<String> = labels
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| *k != "alertname" && *k != "severity")
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        pairs.sort();
        format!(
            "{}{{{}}}",
            labels["alertname"].as_str().unwrap_or(""),
            pairs.join(",")
        )
    };
    let mut failures = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = http
            .get(format!("{base}/api/v2/alerts"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let got: Vec<Value> = serde_json::from_str(&text).unwrap();
        let inhibited: BTreeMap<String, bool> = got
            .iter()
            .map(|a| {
                let by = a["status"]["inhibitedBy"].as_array().map_or(0, Vec::len);
                (key(&a["labels"]), by > 0)
            })
            .collect();
        failures.clear();
        for (labels, want) in &cases {
            let mut l = serde_json::Map::new();
            for (k, v) in labels.iter() {
                l.insert(k.to_string(), Value::from(*v));
            }
            let k = key(&Value::Object(l));
            match inhibited.get(&k) {
                Some(got) if got == want => {}
                got => failures.push(format!("{k}: inhibited {got:?}, wanted {want}")),
            }
        }
        if failures.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    crate::support::assert_table_passed(&failures, cases.len());
}
