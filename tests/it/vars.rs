//! `[vars]`, a check's `vars`, `LOOKOUT_VAR_name`, `--var`, and the
//! `[defaults]` a check inherits (base_url, auth, headers, expect) with
//! the ways to opt out.

use std::path::Path;

use lookout::config::{ClusterOverrides, Config, from_str_with};

use crate::support::TEST_SECRET;

/// `NAME=VALUE` pairs, of the environment or the command line.
type Pairs = &'static [(&'static str, &'static str)];

fn load(toml: &str, env: &[(&str, &str)], cli: &[(&str, &str)]) -> Result<Config, String> {
    let toml = format!("{toml}\n[store]\npath = \":memory:\"\n");
    let lookup = |name: &str| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
            .or_else(|| (name == "PLATFORM_API_KEY").then(|| TEST_SECRET.to_owned()))
    };
    let overrides = ClusterOverrides {
        vars: cli
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..ClusterOverrides::default()
    };
    from_str_with(&toml, Path::new("vars.toml"), &lookup, &overrides).map_err(|e| e.to_string())
}

fn url(cfg: &Config, i: usize) -> String {
    cfg.checks[i].probe.address()
}

#[test]
fn the_command_line_beats_the_environment_beats_the_check_beats_vars() {
    let file =
        "[vars]\nhost = \"a.example\"\n[[checks]]\nname = \"c\"\nurl = \"http://{{ host }}/\"\n";
    let own = "[vars]\nhost = \"a.example\"\n[[checks]]\nname = \"c\"\nurl = \"http://{{ host }}/\"\nvars = { host = \"b.example\" }\n";
    let env: Pairs = &[("LOOKOUT_VAR_host", "c.example")];
    let cli: Pairs = &[("host", "d.example")];
    let cases: [(&str, Pairs, Pairs, &str); 5] = [
        (file, &[], &[], "http://a.example/"),
        (own, &[], &[], "http://b.example/"),
        (own, env, &[], "http://c.example/"),
        (own, env, cli, "http://d.example/"),
        (file, &[], cli, "http://d.example/"),
    ];
    for (toml, env, cli, want) in cases {
        let cfg = load(toml, env, cli).unwrap();
        assert_eq!(url(&cfg, 0), want, "{env:?} {cli:?}\n{toml}");
    }
}

#[test]
fn vars_reach_flows_and_matrices_and_base_url() {
    let cfg = load(
        r#"
[vars]
mlflow = "127.0.0.1:5000"
experiment = "lookout-probe"
[defaults]
base_url = "http://{{ mlflow }}/api/2.0/mlflow"
[[checks]]
name = "route {{ path }}"
url = "{{ path }}"
matrix = { path = ["/experiments/search", "/registered-models/search"] }
[[checks]]
name = "elsewhere"
url = "http://other.example:8080/x"
[[flows]]
name = "register"
[[flows.steps]]
name = "create"
url = "/experiments/create?name={{ experiment }}"
"#,
        &[],
        &[("mlflow", "127.0.0.1:5001")],
    )
    .unwrap();
    assert_eq!(
        url(&cfg, 0),
        "http://127.0.0.1:5001/api/2.0/mlflow/experiments/search"
    );
    assert_eq!(
        cfg.checks[0].name,
        "route /experiments/search[path=/experiments/search]"
    );
    assert_eq!(
        cfg.checks[0].matrix,
        [("path".to_owned(), "/experiments/search".to_owned())],
        "vars are not matrix values"
    );
    assert_eq!(
        url(&cfg, 2),
        "http://other.example:8080/x",
        "an absolute URL keeps its own"
    );
    let step = &cfg.flows[0].steps[0].request;
    assert_eq!(
        step.url,
        "http://127.0.0.1:5001/api/2.0/mlflow/experiments/create?name={{ experiment }}"
    );
    assert_eq!(step.origin.ascii_serialization(), "http://127.0.0.1:5001");
    assert_eq!(cfg.flows[0].vars["experiment"], "lookout-probe");
}

#[test]
fn checks_inherit_auth_headers_and_expect_and_can_opt_out() {
    let cfg = load(
        r#"
[secrets]
platform = { env = "PLATFORM_API_KEY" }
[defaults]
base_url = "https://api.example.com"
auth = { scheme = "api_key", header = "X-API-Key", secret = "platform" }
headers = { "X-Team" = "sre", "Accept" = "application/json" }
expect = { status = [200], max_latency = "2s" }
[[checks]]
name = "inherits"
url = "/v1/models"
[[checks]]
name = "opts out"
url = "/v1/health"
auth = { scheme = "none" }
headers = { "Accept" = "text/plain" }
expect = { status = ["!404"] }
"#,
        &[],
        &[],
    )
    .unwrap();
    let http = |i: usize| cfg.checks[i].probe.http().expect("http");
    let (a, b) = (http(0), http(1));
    assert_eq!(a.auth.scheme(), "api_key");
    assert_eq!(a.headers["x-team"], "sre");
    assert_eq!(a.headers["accept"], "application/json");
    assert!(cfg.checks[0].expect.status.matches(200) && !cfg.checks[0].expect.status.matches(201));
    assert_eq!(
        cfg.checks[0].expect.max_latency,
        Some(std::time::Duration::from_secs(2))
    );
    assert_eq!(b.auth.scheme(), "none", "auth = none opts out");
    assert_eq!(b.headers["x-team"], "sre", "headers merge by name");
    assert_eq!(
        b.headers["accept"], "text/plain",
        "the check's own header wins"
    );
    assert!(
        cfg.checks[1].expect.status.matches(401),
        "its own expect replaces the default whole"
    );
    assert_eq!(cfg.checks[1].expect.max_latency, None);
}

#[test]
fn bad_vars_are_refused_with_the_field() {
    let cases: [(&str, Pairs, &str); 6] = [
        (
            "[[checks]]\nname = \"c\"\nurl = \"http://x/\"",
            &[("host", "h")],
            "--var host: no [vars] entry \"host\" to override; [vars] defines: nothing",
        ),
        (
            "[vars]\nrun_id = \"x\"\n[[checks]]\nname = \"c\"\nurl = \"http://x/\"",
            &[],
            "vars.run_id: \"run_id\" cannot be a variable name",
        ),
        (
            "[vars]\npath = \"/x\"\n[[checks]]\nname = \"c\"\nurl = \"http://x{{ path }}\"\nmatrix = { path = [\"/a\"] }",
            &[],
            "checks[0].matrix.path: \"path\" is a matrix key and a variable",
        ),
        (
            "[[checks]]\nname = \"c\"\nurl = \"http://{{ nope }}/\"",
            &[],
            "unknown template variable \"nope\": this check has no matrix and no vars",
        ),
        (
            "[defaults]\nbase_url = \"http://{{ nope }}\"\n[[checks]]\nname = \"c\"\nurl = \"/x\"",
            &[],
            "defaults.base_url: unknown template variable \"nope\"",
        ),
        (
            "[defaults]\nbase_url = \"ftp://x\"\n[[checks]]\nname = \"c\"\nurl = \"/x\"",
            &[],
            "defaults.base_url: \"ftp://x\" is not an http:// or https:// URL",
        ),
    ];
    for (toml, cli, want) in cases {
        let err = load(toml, &[], cli).expect_err(toml);
        assert!(err.contains(want), "{toml}\n{err}");
    }
}

#[test]
fn check_config_takes_var_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lookout.toml");
    std::fs::write(
        &path,
        "[vars]\nmlflow = \"127.0.0.1:5000\"\n[defaults]\nbase_url = \"http://{{ mlflow }}\"\n[[checks]]\nname = \"c\"\nurl = \"/health\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["check-config", "--var", "mlflow=127.0.0.1:6000"])
        .arg(&path)
        .env("LOOKOUT_VAR_mlflow", "127.0.0.1:5500")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("GET http://127.0.0.1:6000/health"),
        "{stdout}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lookout"))
        .arg("check-config")
        .arg(&path)
        .env("LOOKOUT_VAR_mlflow", "127.0.0.1:5500")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("GET http://127.0.0.1:5500/health"));
}

/// `auth` is templated in a check (all but its literal value), so a matrix
/// runs the same paths with each scheme and each key, as the reports do.
#[test]
fn a_matrix_over_the_auth_scheme_and_the_key() {
    let cfg = load(
        r#"
[secrets]
good = { env = "PLATFORM_API_KEY" }
expired = { env = "EXPIRED_KEY" }
[[checks]]
name = "auth"
url = "http://127.0.0.1:9/{{ path }}"
auth = { scheme = "{{ scheme }}", secret = "{{ key }}" }
matrix = { scheme = ["bearer", "api_key"], key = ["good", "expired"], path = ["models", "runs", "experiments"] }
"#,
        &[("EXPIRED_KEY", "hk_expired_0123456789")],
        &[],
    )
    .unwrap();
    assert_eq!(cfg.checks.len(), 12);
    let mut seen = std::collections::BTreeSet::new();
    for c in &cfg.checks {
        let auth = &c.probe.http().unwrap().auth;
        let scheme = c
            .matrix
            .iter()
            .find(|(k, _)| k == "scheme")
            .unwrap()
            .1
            .clone();
        assert_eq!(auth.scheme(), scheme, "{}", c.name);
        seen.insert((scheme, auth.secret().unwrap().fingerprint().to_owned()));
    }
    assert_eq!(seen.len(), 4, "two schemes times two keys: {seen:?}");

    let err = load(
        "[[checks]]\nname = \"a\"\nurl = \"http://x/\"\nauth = { scheme = \"{{ s }}\", value = \"k\" }\nmatrix = { s = [\"bearer\", \"oauth\"] }\n",
        &[],
        &[],
    )
    .expect_err("an unknown scheme after rendering");
    assert!(
        err.contains("checks[0].auth.scheme: unknown auth scheme \"oauth\""),
        "{err}"
    );
}

/// A flow takes a matrix too: one flow per combination, its values
/// variables of every step.
#[test]
fn a_flow_matrix_makes_one_flow_per_combination() {
    let cfg = load(
        r#"
[vars]
api = "127.0.0.1:5000"
[[flows]]
name = "register"
matrix = { model = ["churn", "fraud"], stage = ["Staging"] }
[[flows.steps]]
name = "create"
url = "http://{{ api }}/models/{{ model }}?stage={{ stage }}&run={{ run_id }}"
"#,
        &[],
        &[],
    )
    .unwrap();
    let names: Vec<&str> = cfg.flows.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "register[model=churn,stage=Staging]",
            "register[model=fraud,stage=Staging]"
        ]
    );
    assert_eq!(cfg.flows[1].vars["model"], "fraud");
    assert_eq!(cfg.flows[1].vars["api"], "127.0.0.1:5000");
    assert_ne!(
        format!("{:?}", cfg.flows[0].schedule),
        format!("{:?}", cfg.flows[1].schedule),
        "each has its own phase"
    );
    for (toml, want) in [
        (
            "[vars]\nmodel = \"x\"\n[[flows]]\nname = \"f\"\nmatrix = { model = [\"a\"] }\nsteps = [{ name = \"s\", url = \"http://x/{{ model }}\" }]\n",
            "flows[0].matrix.model: \"model\" is a matrix key and a variable",
        ),
        (
            "[[flows]]\nname = \"f\"\nmatrix = { run_id = [\"a\"] }\nsteps = [{ name = \"s\", url = \"http://x/\" }]\n",
            "flows[0].matrix.run_id: \"run_id\" cannot be a variable name",
        ),
    ] {
        let err = load(toml, &[], &[]).expect_err(toml);
        assert!(err.contains(want), "{err}");
    }
}
