//! The deployment kit in deploy/: the Dockerfile, the compose stack, the
//! Kubernetes manifests and the systemd unit, checked offline.
//!
//! The Rust checks always run: the files parse, reference files that exist,
//! fit together (ports, labels, names, mounts, secrets, config paths), the
//! Prometheus Operator objects are well formed and their alerts use only
//! metrics from README's "Metrics reference", and the example configs pass
//! `lookout check-config`. The checks by the real tools run where the tool
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

/// The metric names in README's "Metrics reference", with `_bucket`, `_sum`
/// and `_count` for histograms.
fn readme_metric_names() -> BTreeSet<String> {
    let readme = read(&repo().join("README.md"));
    let start = readme
        .find("\n## Metrics reference")
        .expect("README has a Metrics reference");
    let rest = &readme[start + 1..];
    let section = &rest[..rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3)];
    let mut names = BTreeSet::new();
    for line in section.lines() {
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
        "README's metrics reference: {names:?}"
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
        let dir = deploy("compose");
        let doc = yaml(&dir.join("compose.yaml"));
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

    // Compose's own validation: the v2 plugin if there is one, else
    // Debian's docker-compose 1.29, which knows every key used here but the
    // top-level `name` (added to the Compose Specification later).
    let text = read(&compose.dir.join("compose.yaml"));
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
        cmd.current_dir(&compose.dir)
            .env("PLATFORM_API_KEY", "dummy")
            .env("GRAFANA_ADMIN_PASSWORD", "dummy"),
        input.as_deref(),
    );
    assert!(ran.success, "docker compose config:\n{}", ran.text());
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
    let psc = &pod_spec["securityContext"];
    assert_eq!(psc["runAsNonRoot"], true);
    assert_ne!(psc["runAsUser"], 0);
    assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(pod_spec["automountServiceAccountToken"], false);
    let containers = seq(&pod_spec["containers"], "containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let csc = &c["securityContext"];
    assert_eq!(csc["readOnlyRootFilesystem"], true);
    assert_eq!(csc["allowPrivilegeEscalation"], false);
    assert_eq!(csc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    for kind in ["requests", "limits"] {
        for r in ["cpu", "memory"] {
            assert!(c["resources"][kind][r].is_string(), "resources.{kind}.{r}");
        }
    }

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

#[test]
fn servicemonitor_and_prometheusrule_are_well_formed() {
    // ServiceMonitor (monitoring.coreos.com/v1).
    let sm = k8s("servicemonitor.yaml");
    only_keys(
        &sm,
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
    }

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

    // Only metrics that lookout exports (README), that the rules record, or
    // Prometheus' own `up`.
    let known = readme_metric_names();
    for (rule, expr) in &exprs {
        for name in promql_metric_names(expr) {
            assert!(
                known.contains(&name) || recorded.contains(&name) || name == "up",
                "{rule}: `{name}` is not in README's Metrics reference"
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
    let cases: [(&[(&str, &str)], bool); 11] = [
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
