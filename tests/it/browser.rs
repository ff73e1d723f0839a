//! The status page in a real headless Chromium: what a person sees.
//!
//! Skipped, loudly, where Chromium is not installed (`.ci/setup` installs
//! Debian's `chromium`); a failure instead under `LOOKOUT_REQUIRE_TOOLS=1`.
//! The screenshot goes to target/browser/; with `UPDATE_SCREENSHOTS=1` it
//! also replaces docs/status-page.png, which the README shows.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lookout::daemon::Daemon;
use serde_json::Value;

use crate::support::{config, eventually, start_target, tool_any};

fn chromium() -> Option<PathBuf> {
    tool_any(
        &["chromium", "chromium-browser", "google-chrome"],
        "browser test",
    )
}

/// What Chromium printed: the page's DOM (with `--dump-dom`) on stdout, and
/// its log on stderr, console messages included.
struct Ran {
    stdout: String,
    stderr: String,
}

impl Ran {
    /// Console messages and Content-Security-Policy reports in the log: a
    /// page without script has none unless something was refused (a
    /// policy violation, a stylesheet of the wrong type).
    fn console_problems(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.contains(":CONSOLE") || l.contains("Content Security Policy"))
            .collect()
    }
}

/// Runs Chromium headless with `args` and `url`, for at most 60 s. Output
/// goes to files, so a large DOM or log cannot block it.
fn run_chromium(bin: &Path, args: &[&str], url: &str) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            // Console messages (and so policy violations) to stderr.
            "--enable-logging=stderr",
            "--v=0",
        ])
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("chromium starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                let _ = child.kill();
                panic!("chromium did not finish within 60 s");
            }
        }
    }
    Ran {
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
    }
}

async fn chromium_async(bin: &Path, args: Vec<String>, url: String) -> Ran {
    let bin = bin.to_owned();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_chromium(&bin, &args, &url)
    })
    .await
    .unwrap()
}

/// A page that breaks the status page's policy (an inline style element and
/// attribute), served with that policy: the control that shows Chromium
/// does report violations in this log, so their absence means something.
async fn start_violating_page(csp: String) -> String {
    use axum::http::header;
    let page = "<!doctype html><title>control</title><style>p { color: red }</style><p style=\"color: blue\">inline</p>";
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let csp = csp.clone();
            async move {
                (
                    [
                        (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
                        (header::CONTENT_SECURITY_POLICY, csp),
                    ],
                    page,
                )
            }
        }),
    );
    let addr = crate::support::serve(app).await;
    format!("http://{addr}/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_in_chromium_shows_scores_states_reasons_and_flows() {
    let Some(bin) = chromium() else {
        return;
    };
    let target = start_target().await;
    let cfg = config(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
[defaults]
interval = "200ms"
[[checks]]
name = "auth-health"
group = "infrastructure"
url = "{ok}"
[[checks]]
name = "proxy-route"
group = "infrastructure"
url = "{bad}"
[[checks]]
name = "mlflow-experiments"
group = "ml-platform"
url = "/echo"
routes = {{ proxy = "{proxy}", internal = "{internal}" }}
[[flows]]
name = "model-registration"
group = "ml-platform"
[[flows.steps]]
name = "create-experiment"
url = "{ok}"
[[flows.steps]]
name = "log-run"
url = "{missing}"
[[flows.steps]]
name = "register-model"
url = "{ok}"
"#,
        ok = target.url("/echo"),
        bad = target.url("/status/502?detail=%3Cscript%3Ealert(1)%3C/script%3E%20upstream%20down"),
        missing = target.url("/status/404?detail=no%20such%20route"),
        // The target has no route under /api/mlflow: a proxy without it.
        proxy = target.url("/api/mlflow"),
        internal = target.url(""),
    ));
    let daemon = Daemon::start(cfg).await.unwrap();
    let base = format!("http://{}", daemon.addr);
    let api = base.clone();
    eventually(Duration::from_secs(10), async || {
        let text = reqwest::get(format!("{api}/api/v1/status"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        (v["overall"]["pending"] == 0).then_some(())
    })
    .await;

    let url = format!("{base}/");
    let page = reqwest::get(&url).await.unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    let css = html
        .split(r#"<link rel="stylesheet" href=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page links its stylesheet")
        .to_owned();
    let netlog_dir = tempfile::tempdir().unwrap();
    let netlog = netlog_dir.path().join("net.json");
    let status = chromium_async(
        &bin,
        vec![
            "--dump-dom".into(),
            format!("--log-net-log={}", netlog.display()),
        ],
        url.clone(),
    )
    .await;
    let dom = status.stdout.clone();
    let detail = chromium_async(
        &bin,
        vec!["--dump-dom".into()],
        format!("{base}/check/model-registration"),
    )
    .await;
    let shot_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser");
    std::fs::create_dir_all(&shot_dir).unwrap();
    let shot = shot_dir.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let shot_run = chromium_async(
        &bin,
        vec![
            format!("--screenshot={}", shot.display()),
            "--window-size=1400,1000".into(),
        ],
        url.clone(),
    )
    .await;
    let control = chromium_async(
        &bin,
        vec!["--dump-dom".into()],
        start_violating_page(csp.clone()).await,
    )
    .await;
    daemon.shutdown().await;

    // The policy holds without breaking the page: Chromium refused nothing
    // on either page, and fetched the stylesheet the policy allows; the
    // control page, under the same policy, shows refusals are reported.
    for (what, ran) in [
        ("status page", &status),
        ("detail page", &detail),
        ("screenshot", &shot_run),
    ] {
        assert!(
            ran.console_problems().is_empty(),
            "{what}: {:#?}",
            ran.console_problems()
        );
    }
    let control_problems = control.console_problems();
    assert!(
        control_problems.len() >= 2
            && control_problems
                .iter()
                .all(|l| l.contains("violates the following Content Security Policy directive")),
        "the control page's inline style and style attribute are refused: {control_problems:#?}\n{}",
        control.stderr
    );
    let net = std::fs::read_to_string(&netlog).expect("chromium wrote its net log");
    assert!(
        net.contains(&format!("\"url\":\"{base}{css}\"")),
        "Chromium fetched {css}"
    );
    assert!(
        detail.stdout.contains("model-registration") && detail.stdout.contains("log-run"),
        "{}",
        detail.stdout
    );

    // Scores: 2 of 5 passing overall (the flow counts as one check, each
    // route as one).
    assert!(dom.contains("40.0%"), "overall score:\n{dom}");
    assert!(dom.contains("2/5 checks passing"), "{dom}");
    assert!(dom.contains("50.0%"), "infrastructure group");
    // The route comparison's grid and its verdict.
    assert!(
        dom.contains(
            "fails via proxy (404), passes via internal (200): the proxy route is missing"
        ),
        "{dom}"
    );
    // States and reasons.
    assert!(dom.contains(r#"class="state-passing">passing"#), "{dom}");
    assert!(dom.contains(r#"class="state-failing">failing"#), "{dom}");
    assert!(dom.contains("status 502, expected 2xx"), "{dom}");
    // The target's <script> is text on the page, not an element.
    assert!(
        dom.contains("&lt;script&gt;alert(1)&lt;/script&gt; upstream down"),
        "{dom}"
    );
    assert!(!dom.contains("<script>alert(1)"), "{dom}");
    // The flow, stage by stage.
    assert!(dom.contains("1/3 stages (33%)"), "{dom}");
    assert!(
        dom.contains(r#"step 2/3 "log-run": status 404, expected 2xx"#),
        "{dom}"
    );
    assert!(
        dom.contains(r#"class="step step-skipped" data-step="register-model""#),
        "{dom}"
    );

    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot"
    );
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/status-page.png");
        std::fs::copy(&shot, docs).unwrap();
    }
}

/// The DOM of `url` as headless Chromium renders it, for other tests'
/// pages; `None` (having said SKIPPED) where Chromium is missing and tools
/// are not required.
pub async fn dump_dom(url: &str) -> Option<String> {
    let bin = chromium()?;
    let ran = chromium_async(&bin, vec!["--dump-dom".to_owned()], url.to_owned()).await;
    Some(ran.stdout)
}
