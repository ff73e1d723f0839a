//! Every answer of lookout's server carries its security headers: a strict
//! Content-Security-Policy (for HTML, only the served stylesheets; for
//! anything else, nothing at all), `nosniff`, `no-referrer`, and a
//! Cache-Control fit for the route. Table-driven over every route of the
//! router (the table is checked against `src/serve/mod.rs`, so a new route
//! needs a row), each asked with and without credentials, plus 404s, 405s,
//! 400s and a reload that fails.

use std::collections::BTreeSet;

use lookout::daemon::{Daemon, Options};
use reqwest::Method;

use crate::support::{assert_table_passed, config, eventually, start_target};

const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
const LOCKED_CSP: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Body {
    Html,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cache {
    /// Live data and errors.
    NoStore,
    /// Badges.
    Revalidate,
    /// Content-hashed stylesheets.
    Immutable,
}

impl Cache {
    fn header(self) -> &'static str {
        match self {
            Cache::NoStore => "no-store",
            Cache::Revalidate => "no-cache",
            Cache::Immutable => "public, max-age=31536000, immutable",
        }
    }
}

struct Case {
    /// The router's route this row covers (`fallback` for none).
    route: &'static str,
    method: Method,
    path: String,
    status: u16,
    body: Body,
    cache: Cache,
}

fn case(
    route: &'static str,
    method: Method,
    path: impl Into<String>,
    status: u16,
    body: Body,
    cache: Cache,
) -> Case {
    Case {
        route,
        method,
        path: path.into(),
        status,
        body,
        cache,
    }
}

/// The routes `serve::router` declares, read from its source.
fn router_routes() -> BTreeSet<String> {
    let src =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/serve/mod.rs")).unwrap();
    let routes: BTreeSet<String> = src
        .split(".route(\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect();
    assert!(routes.len() >= 10, "{routes:?}");
    routes
}

fn check(case: &Case, r: &reqwest::Response, want_status: u16, cache: Cache) -> Vec<String> {
    let mut problems = Vec::new();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or("<not text>").to_owned())
    };
    if r.status().as_u16() != want_status {
        problems.push(format!("status {} (wanted {want_status})", r.status()));
    }
    let html = header("content-type").is_some_and(|t| t.starts_with("text/html"));
    let body = if html { Body::Html } else { Body::Other };
    if want_status == case.status && body != case.body {
        problems.push(format!("body {body:?} (wanted {:?})", case.body));
    }
    let csp = if html { PAGE_CSP } else { LOCKED_CSP };
    for (name, want) in [
        ("content-security-policy", csp),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", cache.header()),
    ] {
        let got = header(name);
        if got.as_deref() != Some(want) {
            problems.push(format!("{name}: {got:?} (wanted {want:?})"));
        }
    }
    problems
        .into_iter()
        .map(|p| format!("{} {} [{}]: {p}", case.method, case.path, case.route))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_sends_the_security_headers() {
    let target = start_target().await;
    let hash = bcrypt::hash("pw", 4).unwrap();
    let cfg = config(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
basic_auth_users = {{ ops = "{hash}" }}
[defaults]
interval = "100ms"
[[checks]]
name = "up"
group = "g"
url = "{ok}"
[[flows]]
name = "f"
group = "g"
[[flows.steps]]
name = "s"
url = "{ok}"
"#,
        ok = target.url("/echo"),
    ));
    // With the lifecycle API, whose reload fails here (the config was
    // never a file): an error answer.
    let daemon = Daemon::start_with(
        cfg,
        Options {
            enable_lifecycle: true,
        },
    )
    .await
    .unwrap();
    let base = format!("http://{}", daemon.addr);
    let http = reqwest::Client::new();
    let send = |method: Method, path: &str, auth: bool| {
        let mut r = http.request(method, format!("{base}{path}"));
        if auth {
            r = r.basic_auth("ops", Some("pw"));
        }
        r.send()
    };
    // Until the check and the flow have results (and history).
    eventually(std::time::Duration::from_secs(10), async || {
        let r = send(Method::GET, "/api/v1/history/f?limit=1", true)
            .await
            .ok()?;
        let v: serde_json::Value = serde_json::from_str(&r.text().await.ok()?).ok()?;
        (!v.as_array()?.is_empty()).then_some(())
    })
    .await;
    let page = send(Method::GET, "/", true)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let css = page
        .split(r#"<link rel="stylesheet" href=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page links its stylesheet")
        .to_owned();

    use Body::{Html, Other};
    use Cache::{Immutable, NoStore, Revalidate};
    let get = Method::GET;
    let cases = [
        case("/", get.clone(), "/", 200, Html, NoStore),
        case("/metrics", get.clone(), "/metrics", 200, Other, NoStore),
        case(
            "/probe",
            get.clone(),
            "/probe?module=http_2xx",
            400,
            Other,
            NoStore,
        ),
        case(
            "/probe",
            get.clone(),
            "/probe?target=127.0.0.1:1&module=nope",
            400,
            Other,
            NoStore,
        ),
        case("/healthz", get.clone(), "/healthz", 200, Other, NoStore),
        case("/readyz", get.clone(), "/readyz", 200, Other, NoStore),
        case("/-/reload", Method::POST, "/-/reload", 500, Other, NoStore),
        case("/-/reload", Method::PUT, "/-/reload", 500, Other, NoStore),
        case("/-/reload", get.clone(), "/-/reload", 405, Other, NoStore),
        case(
            "/api/v1/status",
            get.clone(),
            "/api/v1/status",
            200,
            Other,
            NoStore,
        ),
        case(
            "/api/v1/checks/{*name}",
            get.clone(),
            "/api/v1/checks/up",
            200,
            Other,
            NoStore,
        ),
        case(
            "/api/v1/checks/{*name}",
            get.clone(),
            "/api/v1/checks/nope",
            404,
            Other,
            NoStore,
        ),
        case(
            "/api/v1/history/{*name}",
            get.clone(),
            "/api/v1/history/up",
            200,
            Other,
            NoStore,
        ),
        case(
            "/api/v1/changes",
            get.clone(),
            "/api/v1/changes",
            200,
            Other,
            NoStore,
        ),
        case(
            "/api/v1/scores",
            get.clone(),
            "/api/v1/scores",
            200,
            Other,
            NoStore,
        ),
        case(
            "/api/v1/scores",
            get.clone(),
            "/api/v1/scores?scope=bogus",
            400,
            Other,
            NoStore,
        ),
        case(
            "/check/{*name}",
            get.clone(),
            "/check/up",
            200,
            Html,
            NoStore,
        ),
        case(
            "/check/{*name}",
            get.clone(),
            "/check/f",
            200,
            Html,
            NoStore,
        ),
        case(
            "/check/{*name}",
            get.clone(),
            "/check/nope",
            404,
            Html,
            NoStore,
        ),
        case(
            "/badge/check/{*name}",
            get.clone(),
            "/badge/check/up",
            200,
            Other,
            Revalidate,
        ),
        case(
            "/badge/check/{*name}",
            get.clone(),
            "/badge/check/nope",
            404,
            Other,
            NoStore,
        ),
        case(
            "/badge/check/{*name}",
            get.clone(),
            "/badge/check/up?show=bogus",
            400,
            Other,
            NoStore,
        ),
        case(
            "/badge/group/{*name}",
            get.clone(),
            "/badge/group/g",
            200,
            Other,
            Revalidate,
        ),
        case(
            "/badge/group/{*name}",
            get.clone(),
            "/badge/group/overall?show=uptime_7d",
            200,
            Other,
            Revalidate,
        ),
        case(
            "/static/{file}",
            get.clone(),
            css.clone(),
            200,
            Other,
            Immutable,
        ),
        case(
            "/static/{file}",
            get.clone(),
            "/static/nope.css",
            404,
            Other,
            NoStore,
        ),
        case("fallback", get.clone(), "/nope", 404, Other, NoStore),
        case("fallback", get.clone(), "/api/v1/nope", 404, Other, NoStore),
        case("fallback", Method::POST, "/", 405, Other, NoStore),
    ];

    // Every route of the router has a row.
    let covered: BTreeSet<String> = cases.iter().map(|c| c.route.to_owned()).collect();
    let missing: Vec<String> = router_routes()
        .into_iter()
        .filter(|r| !covered.contains(r))
        .collect();
    assert!(missing.is_empty(), "routes without a row: {missing:?}");

    let mut failures = Vec::new();
    for c in &cases {
        let r = send(c.method.clone(), &c.path, true).await.unwrap();
        failures.extend(check(c, &r, c.status, c.cache));
        // Without credentials: basic auth's 401 (but /healthz), with the
        // same headers; an error is never stored, what the route caches
        // (a stylesheet, a badge) only once it is served.
        let (status, cache) = match (c.path.as_str(), c.cache) {
            ("/healthz", cache) => (200, cache),
            (_, Immutable | Revalidate) => (401, NoStore),
            (_, cache) => (401, cache),
        };
        let r = send(c.method.clone(), &c.path, false).await.unwrap();
        if status == 401 && r.headers().get("www-authenticate").is_none() {
            failures.push(format!("{} {}: 401 without a challenge", c.method, c.path));
        }
        failures.extend(check(c, &r, status, cache));
    }
    assert_table_passed(&failures, cases.len() * 2);
    daemon.shutdown().await;
}

/// The page's policy allows no script of any kind and no inline style.
#[test]
fn the_page_policy_is_strict() {
    for forbidden in ["unsafe-inline", "unsafe-eval", "script-src", "data:", "*"] {
        assert!(!PAGE_CSP.contains(forbidden), "{forbidden}");
    }
    for directive in [
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ] {
        assert!(PAGE_CSP.contains(directive) && LOCKED_CSP.contains(directive));
    }
}
