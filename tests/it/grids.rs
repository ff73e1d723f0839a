//! Route comparison and matrix grids: one request through several routes
//! to a service (a local service, a "proxy" in front of it that drops one
//! path, a "public" front in front of the proxy), each route its own check,
//! and the grid with its diagnosis on the API, the page (also in headless
//! Chromium) and the report; fixed results as snapshots.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{TimeZone, Utc};
use lookout::daemon::Daemon;
use lookout::outcome::{CheckResult, FailureKind, Outcome, Phases};
use lookout::record::Recorder;
use lookout::report::Report;
use lookout::serve::view;
use serde_json::Value;

use crate::support::{config, eventually, serve, try_config};

/// The service itself: every MLflow path answers 200 with its path.
async fn start_service() -> SocketAddr {
    let app = Router::new().fallback(|req: Request| async move {
        axum::Json(serde_json::json!({ "path": req.uri().path() }))
    });
    serve(app).await
}

#[derive(Clone)]
struct Hop {
    /// Where the request goes on: a base URL the rest of the path is put after.
    upstream: String,
    /// The prefix this hop's routes live under.
    prefix: &'static str,
    /// A path (part) this hop has no route for: it answers 404 itself.
    missing: Option<&'static str>,
    client: reqwest::Client,
}

/// A reverse proxy: strips `prefix`, forwards to `upstream`, and answers
/// 404 itself for what it has no route for, as a proxy with a missing
/// route does.
async fn start_hop(
    upstream: String,
    prefix: &'static str,
    missing: Option<&'static str>,
) -> SocketAddr {
    let hop = Hop {
        upstream,
        prefix,
        missing,
        client: reqwest::Client::new(),
    };
    let app = Router::new().fallback(forward).with_state(hop);
    serve(app).await
}

async fn forward(State(hop): State<Hop>, req: Request) -> Response {
    let path = req.uri().path();
    let Some(rest) = path.strip_prefix(hop.prefix) else {
        return (StatusCode::NOT_FOUND, "no route").into_response();
    };
    if hop.missing.is_some_and(|m| rest.contains(m)) {
        return (StatusCode::NOT_FOUND, "no route").into_response();
    }
    match hop
        .client
        .get(format!("{}{rest}", hop.upstream))
        .send()
        .await
    {
        Ok(r) => {
            let status =
                StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            (status, r.bytes().await.unwrap_or_default()).into_response()
        }
        Err(_) => (StatusCode::BAD_GATEWAY, "upstream down").into_response(),
    }
}

/// The reports' set-up: the service, a proxy in front of it with no route
/// for model versions, a public front in front of the proxy. Returns the
/// `routes` table, written outside-in as a request travels.
async fn three_routes() -> String {
    let service = start_service().await;
    let proxy = start_hop(
        format!("http://{service}"),
        "/api/mlflow",
        Some("/model-versions/"),
    )
    .await;
    let public = start_hop(format!("http://{proxy}/api/mlflow"), "/mlflow", None).await;
    format!(
        r#"routes = {{ public = "http://{public}/mlflow", proxy = "http://{proxy}/api/mlflow/", internal = "http://{service}" }}"#
    )
}

const PATHS: &str = r#"matrix = { path = ["/api/2.0/mlflow/experiments/search", "/api/2.0/mlflow/model-versions/search"] }"#;

#[test]
fn routes_expand_to_one_check_per_route_in_the_order_written() {
    let cfg = config(
        r#"
[[checks]]
name = "mlflow"
url = "/api/2.0/mlflow/experiments/search"
routes = { public = "https://api.example.test/mlflow", proxy = "https://registry.example.test/api/mlflow/", internal = "http://mlflow:5000" }
"#,
    );
    let got: Vec<(&str, String)> = cfg
        .checks
        .iter()
        .map(|c| (c.name.as_str(), c.probe.address()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "mlflow[route=public]",
                "https://api.example.test/mlflow/api/2.0/mlflow/experiments/search".to_owned()
            ),
            (
                "mlflow[route=proxy]",
                "https://registry.example.test/api/mlflow/api/2.0/mlflow/experiments/search"
                    .to_owned()
            ),
            (
                "mlflow[route=internal]",
                "http://mlflow:5000/api/2.0/mlflow/experiments/search".to_owned()
            ),
        ]
    );
    let family = cfg.checks[0].family.as_ref().expect("a family");
    assert_eq!(family.routes, ["public", "proxy", "internal"]);
    assert_eq!(family.keys, ["route"]);
    assert_eq!(family.title, "mlflow");
    assert_eq!(cfg.checks[1].route(), Some("proxy"));
    assert!(
        cfg.checks
            .iter()
            .all(|c| std::sync::Arc::ptr_eq(c.family.as_ref().unwrap(), family))
    );

    // With a matrix: each combination through each route, and `route` is a
    // variable of the templates.
    let cfg = config(&format!(
        r#"
[vars]
host = "mlflow"
[[checks]]
name = "mlflow"
url = "{{{{ path }}}}"
headers = {{ X-Via = "{{{{ route }}}}" }}
routes = {{ proxy = "https://registry.example.test/api/mlflow", internal = "http://{{{{ host }}}}:5000" }}
{PATHS}
"#
    ));
    let names: Vec<&str> = cfg.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "mlflow[path=/api/2.0/mlflow/experiments/search,route=proxy]",
            "mlflow[path=/api/2.0/mlflow/experiments/search,route=internal]",
            "mlflow[path=/api/2.0/mlflow/model-versions/search,route=proxy]",
            "mlflow[path=/api/2.0/mlflow/model-versions/search,route=internal]",
        ]
    );
    assert_eq!(
        cfg.checks[1].probe.address(),
        "http://mlflow:5000/api/2.0/mlflow/experiments/search"
    );
    let lookout::model::Target::Http(r) = &cfg.checks[1].probe else {
        panic!("http")
    };
    assert_eq!(r.headers["x-via"], "internal");
    assert_eq!(
        cfg.checks[0].family.as_ref().unwrap().keys,
        ["path", "route"]
    );

    // A plain check has no family; a matrix check has one without routes.
    let cfg = config(
        "[[checks]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/\"\n\
         [[checks]]\nname = \"b\"\nurl = \"http://127.0.0.1:1/{{ p }}\"\nmatrix = { p = [\"x\", \"y\"] }\n",
    );
    assert!(cfg.checks[0].family.is_none());
    let b = cfg.checks[1].family.as_ref().unwrap();
    assert!(b.routes.is_empty() && b.keys == ["p"]);
    assert_eq!(cfg.checks[1].route(), None);
}

/// Sharded, the routes of one row stay together (one instance can make the
/// diagnosis), and the rows spread over the shards.
#[test]
fn the_routes_of_a_row_run_on_one_shard() {
    let paths: Vec<String> = (0..30).map(|i| format!("\"/p{i}\"")).collect();
    let toml = format!(
        "[[checks]]\nname = \"m\"\nurl = \"{{{{ path }}}}\"\n\
         routes = {{ a = \"http://a.test\", b = \"http://b.test\", c = \"http://c.test\" }}\n\
         matrix = {{ path = [{}] }}\n[store]\npath = \":memory:\"\n",
        paths.join(", ")
    );
    let mut seen = std::collections::BTreeMap::new();
    for i in 0..3 {
        let overrides = lookout::config::ClusterOverrides {
            shard: Some(lookout::cluster::Shard::new(i, 3).unwrap()),
            ..Default::default()
        };
        let cfg = lookout::config::from_str_with(
            &toml,
            std::path::Path::new("s.toml"),
            &|_| None,
            &overrides,
        )
        .unwrap();
        let mut rows = std::collections::BTreeMap::<String, usize>::new();
        for c in &cfg.checks {
            let path = c
                .matrix
                .iter()
                .find(|(k, _)| k == "path")
                .unwrap()
                .1
                .clone();
            *rows.entry(path).or_default() += 1;
        }
        assert!(rows.values().all(|&n| n == 3), "shard {i}: {rows:?}");
        assert!(!rows.is_empty(), "shard {i} runs some rows");
        for path in rows.into_keys() {
            assert!(seen.insert(path, i).is_none(), "a row on two shards");
        }
    }
    assert_eq!(seen.len(), 30, "every row runs somewhere");
}

/// A reload that adds a matrix value keeps the unchanged checks (with the
/// old load's family) and adds the new one (with the new load's): still one
/// grid, the new row at the end.
#[test]
fn a_reloaded_entry_stays_one_grid() {
    let entry = |values: &str| {
        config(&format!(
            "[[checks]]\nname = \"e\"\nurl = \"http://127.0.0.1:1/{{{{ p }}}}\"\nmatrix = {{ p = [{values}] }}\n"
        ))
    };
    let (old, new) = (entry(r#""a", "b""#), entry(r#""a", "b", "c""#));
    assert!(old.checks[0].same_as(&Default::default(), &new.checks[0], &Default::default()));
    let running = [&old.checks[0], &old.checks[1], &new.checks[2]];
    let grids = lookout::serve::grid::layout(running.iter().map(|c| (c.as_ref(), Mark)));
    assert_eq!(grids.len(), 1);
    let labels: Vec<&str> = grids[0].rows.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, ["a", "b", "c"]);
}

struct Mark;

impl lookout::serve::grid::Verdict for Mark {
    fn passing(&self) -> Option<bool> {
        Some(true)
    }
    fn shown(&self) -> String {
        "200".to_owned()
    }
}

#[test]
fn bad_routes_are_refused_with_the_field() {
    let cases: &[(&str, &str)] = &[
        (
            r#"url = "http://x.test/a"
routes = { a = "http://a.test" }"#,
            "checks[0].url: \"http://x.test/a\": with routes, url is the path",
        ),
        (
            r#"url = "/a"
routes = { a = "tcp://a.test:1" }"#,
            "checks[0].routes.a: \"tcp://a.test:1\": a route is an http:// or https:// URL",
        ),
        (
            r#"url = "/a"
routes = { a = "https://user:hunter2pass@a.test" }"#,
            "checks[0].routes.a: the route carries a user or password",
        ),
        (
            r#"url = "/a"
routes = { a = "https://a.test/q?k=v" }"#,
            "checks[0].routes.a: \"https://a.test/q?k=v\": a route is where the path goes, without a ?query",
        ),
        (
            r#"url = "https://user:hunter2pass@a.test/""#,
            "checks[0].url: the URL carries a user or password",
        ),
        (
            r#"url = "/a"
routes = { "a b" = "http://a.test" }"#,
            "checks[0].routes.a b: a route name is 1 to 32 letters",
        ),
        (
            r#"url = "/{{ route }}"
matrix = { route = ["x"] }
routes = { a = "http://a.test" }"#,
            "checks[0].routes: \"route\" names the route",
        ),
        (
            r#"url = "/a"
routes = { a = "http://{{ nope }}" }"#,
            "checks[0].routes.a: unknown template variable \"nope\"",
        ),
        (
            r#"url = "/a"
routes = { a = "http://a.test" }
tcp = { tls = true }"#,
            "checks[0].tcp",
        ),
    ];
    let configs: Vec<(String, &str)> = cases
        .iter()
        .map(|(body, want)| (format!("[[checks]]\nname = \"c\"\n{body}\n"), *want))
        .collect();
    assert_refused(&configs);
}

/// The daemon's API and page, and the report, on the local chain: the
/// proxy has no route for model versions, so that row fails via proxy and
/// public and passes via internal, and the diagnosis says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_that_breaks_is_named_on_the_api_page_and_report() {
    let routes = three_routes().await;
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[defaults]
interval = "1h"
[[checks]]
name = "mlflow"
group = "ml-platform"
url = "{{{{ path }}}}"
{routes}
{PATHS}
"#
    );
    let daemon = Daemon::start(config(&toml)).await.unwrap();
    let base = format!("http://{}", daemon.addr);
    let status: Value = eventually(Duration::from_secs(15), async || {
        let v: Value = reqwest::get(format!("{base}/api/v1/status"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (v["overall"]["pending"] == 0).then_some(v)
    })
    .await;
    let grids = status["grids"].as_array().expect("grids");
    assert_eq!(grids.len(), 1, "{grids:#?}");
    let g = &grids[0];
    assert_eq!(g["title"], "mlflow");
    assert_eq!(g["routes"], true);
    assert_eq!(g["column_key"], "route");
    assert_eq!(
        g["columns"],
        serde_json::json!(["public", "proxy", "internal"])
    );
    let rows = g["rows"].as_array().unwrap();
    let row = |label: &str| {
        rows.iter()
            .find(|r| r["label"] == label)
            .unwrap_or_else(|| panic!("row {label}: {rows:#?}"))
    };
    let experiments = row("/api/2.0/mlflow/experiments/search");
    assert_eq!(
        experiments["diagnosis"],
        "passes via every route: public (200), proxy (200), internal (200)"
    );
    let versions = row("/api/2.0/mlflow/model-versions/search");
    assert_eq!(
        versions["diagnosis"],
        "fails via proxy (404), passes via internal (200): the proxy route is missing"
    );
    let states: Vec<(&str, u64)> = versions["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["state"].as_str().unwrap(),
                c["status_code"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [("failing", 404), ("failing", 404), ("passing", 200)]
    );
    // Each route is its own check, with its own result and series.
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (route, success) in [("public", 0), ("proxy", 0), ("internal", 1)] {
        let line = format!(
            "probe_success{{check=\"mlflow[path=/api/2.0/mlflow/model-versions/search,route={route}]\",group=\"ml-platform\"}} {success}"
        );
        assert!(metrics.lines().any(|l| l == line), "{line}\n{metrics}");
    }

    let html = reqwest::get(format!("{base}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<h2>Grids</h2>"), "{html}");
    assert!(
        html.contains(
            "fails via proxy (404), passes via internal (200): the proxy route is missing"
        ),
        "{html}"
    );
    if let Some(dom) = crate::browser::dump_dom(&format!("{base}/")).await {
        let grid = dom
            .split(r#"<table class="grid""#)
            .nth(1)
            .and_then(|t| t.split("</table>").next())
            .unwrap_or_else(|| panic!("no grid in the rendered page: {dom}"));
        for want in [
            "<th>public</th><th>proxy</th><th>internal</th>",
            r#"<td class="state-failing" data-check="mlflow[path=/api/2.0/mlflow/model-versions/search,route=proxy]">"#,
            "✗ 404",
            "✓ 200",
            "the proxy route is missing",
        ] {
            assert!(
                grid.contains(want),
                "{want} not in the rendered grid: {grid}"
            );
        }
    }
    daemon.shutdown().await;

    // The report: the same grid, the same diagnosis.
    let cfg = config(&toml);
    let once = lookout::run::run_once(&cfg).await.unwrap();
    let report = Report::build(&cfg, &once, Utc::now(), None);
    let md = lookout::report::markdown::render(&report);
    assert!(
        md.contains("| `/api/2.0/mlflow/model-versions/search` | ❌ 404 | ❌ 404 | ✅ 200 | fails via proxy (404), passes via internal (200): the proxy route is missing |"),
        "{md}"
    );
    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(
        json["grids"][0]["rows"][1]["diagnosis"],
        versions["diagnosis"]
    );
    // A report read back keeps its grids, for the next run's comparison.
    assert_eq!(
        Report::from_json(&report.to_json()).unwrap().grids,
        report.grids
    );
}

fn result(status: u16, kind: Option<FailureKind>) -> CheckResult {
    CheckResult {
        started_at: Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap(),
        duration: Duration::from_millis(40),
        status: Some(status),
        outcome: match kind {
            None => Outcome::Success,
            Some(kind) => Outcome::Failure {
                kind,
                reason: format!("status {status}, expected 2xx"),
            },
        },
        phases: Phases::default(),
        redirects: 0,
        tls_not_after: None,
        tls: None,
        seen: Default::default(),
        schedule_lag: Duration::ZERO,
        fetched_credential: None,
        burst: Vec::new(),
    }
}

/// The reports' auth table (path × scheme) and a route comparison, with
/// fixed results: the API's grids, the page's grid section and the
/// report's, as snapshots.
#[test]
fn grids_render_as_snapshots() {
    let cfg = config(
        r#"
[secrets]
key = { env = "PLATFORM_API_KEY" }
[defaults]
base_url = "https://auth.example.test"
[[checks]]
name = "auth"
group = "authentication"
url = "{{ path }}"
auth = { scheme = "{{ scheme }}", secret = "key" }
matrix = { path = ["/api/v1/keys", "/api/v1/models"], scheme = ["bearer", "api_key"] }
[[checks]]
name = "validate <service>"
group = "authentication"
url = "https://auth.example.test/api/v1/keys/validate?service={{ service }}"
matrix = { service = ["platform", "ml-platform"] }
[[checks]]
name = "mlflow"
group = "ml-platform"
url = "/api/2.0/mlflow/experiments/search"
routes = { internal = "http://mlflow:5000", proxy = "https://registry.example.test/api/mlflow", public = "https://api.example.test/mlflow" }
"#,
    );
    let recorder = Recorder::new(&cfg);
    let fixed = [
        result(200, None),
        result(401, Some(FailureKind::Status)),
        result(200, None),
        result(200, None),
        result(200, None),
        result(401, Some(FailureKind::Status)),
        result(200, None),
        result(404, Some(FailureKind::Status)),
        result(404, Some(FailureKind::Status)),
    ];
    for (check, r) in cfg.checks.iter().zip(fixed) {
        recorder.record(check, r);
    }
    let status = view::build(&recorder.board(), &cfg.redactor);
    insta::assert_snapshot!(
        "grids_json",
        serde_json::to_string_pretty(&serde_json::to_value(&status.grids).unwrap()).unwrap()
    );
    let html = lookout::serve::status_html(status).unwrap();
    let section = html
        .split("<h2>Grids</h2>")
        .nth(1)
        .and_then(|rest| rest.split("\n<table>").next())
        .expect("a grid section");
    // Text from the config is escaped.
    assert!(
        section.contains("validate &#60;service&#62;")
            || section.contains("validate &lt;service&gt;"),
        "{section}"
    );
    insta::assert_snapshot!("grids_html", section);

    let results: Vec<_> = cfg
        .checks
        .iter()
        .cloned()
        .zip([
            result(200, None),
            result(401, Some(FailureKind::Status)),
            result(200, None),
            result(200, None),
            result(200, None),
            result(401, Some(FailureKind::Status)),
            result(200, None),
            result(404, Some(FailureKind::Status)),
            result(404, Some(FailureKind::Status)),
        ])
        .collect();
    let once = lookout::run::Once {
        checks: results,
        flows: Vec::new(),
    };
    let report = Report::build(
        &cfg,
        &once,
        Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap(),
        None,
    );
    let md = lookout::report::markdown::render(&report);
    let grids = md
        .split("## Grids\n\n")
        .nth(1)
        .and_then(|rest| rest.split("## Checks").next())
        .expect("a grid section");
    insta::assert_snapshot!("grids_markdown", grids);
}

/// However a URL with a password in it fails to load, the error never
/// shows the password (a URL's password is no secret the redactor knows).
#[test]
fn no_config_error_shows_the_password_of_a_url() {
    let cases: &[(&str, &str)] = &[
        (
            "[[checks]]\nname = \"c\"\nurl = \"https://bob:hunter2@a.test:99999/x\"\n",
            "checks[0].url",
        ),
        (
            "[[checks]]\nname = \"c\"\nurl = \"ftp://bob:hunter2@a.test/x\"\n",
            "checks[0].url",
        ),
        (
            "[[checks]]\nname = \"c\"\nurl = \"tcp://bob:hunter2@a.test\"\n",
            "checks[0]",
        ),
        (
            "[[checks]]\nname = \"c\"\nurl = \"/x\"\nroutes = { a = \"ftp://bob:hunter2@a.test\" }\n",
            "checks[0].routes.a",
        ),
        (
            "[defaults]\nbase_url = \"https://bob:hunter2@a.test\"\n[[checks]]\nname = \"c\"\nurl = \"/x\"\n",
            "defaults.base_url: the base URL carries a user or password",
        ),
        (
            "[[flows]]\nname = \"f\"\n[[flows.steps]]\nname = \"s\"\nurl = \"https://bob:hunter2@a.test/items/{{ run_id }}\"\n",
            "the URL carries a user or password",
        ),
        (
            "[secrets]\nidp = { env = \"PLATFORM_API_KEY\" }\n[[checks]]\nname = \"c\"\nurl = \"https://a.test/\"\n\
             auth = { scheme = \"oauth2_client_credentials\", token_url = \"http://bob:hunter2@idp.example/token\", client_id = \"x\", secret = \"idp\" }\n",
            "checks[0].auth",
        ),
    ];
    let configs: Vec<(String, &str)> = cases.iter().map(|(t, w)| ((*t).to_owned(), *w)).collect();
    assert_refused(&configs);
}

/// Each config fails to load with an error holding its expected text, and
/// none shows the password the cases write in URLs (`hunter2`).
fn assert_refused(cases: &[(String, &str)]) {
    let mut failures = Vec::new();
    for (toml, want) in cases {
        match try_config(toml) {
            Ok(_) => failures.push(format!("{toml}: loaded")),
            Err(e) if e.to_string().contains("hunter2") => {
                failures.push(format!("{toml}: the error shows the password: {e}"))
            }
            Err(e) if e.to_string().contains(want) => {}
            Err(e) => failures.push(format!("{toml}:\n  got  {e}\n  want {want}")),
        }
    }
    crate::support::assert_table_passed(&failures, cases.len());
}
