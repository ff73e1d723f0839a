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

/// Runs Chromium headless with `args` and `url`, for at most 60 s.
fn run_chromium(bin: &Path, args: &[&str], url: &str) -> String {
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-extensions",
        ])
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
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
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        use std::io::Read as _;
        let _ = stdout.read_to_string(&mut out);
    }
    out
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
    let dom = tokio::task::spawn_blocking({
        let (bin, url) = (bin.clone(), url.clone());
        move || run_chromium(&bin, &["--dump-dom"], &url)
    })
    .await
    .unwrap();
    let shot_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser");
    std::fs::create_dir_all(&shot_dir).unwrap();
    let shot = shot_dir.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let shot_arg = format!("--screenshot={}", shot.display());
    tokio::task::spawn_blocking({
        let (bin, url) = (bin.clone(), url.clone());
        move || run_chromium(&bin, &[&shot_arg, "--window-size=1400,1000"], &url)
    })
    .await
    .unwrap();
    daemon.shutdown().await;

    // Scores: 1 of 3 passing overall (the flow counts as one check).
    assert!(dom.contains("33.3%"), "overall score:\n{dom}");
    assert!(dom.contains("1/3 checks passing"), "{dom}");
    assert!(dom.contains("50.0%"), "infrastructure group");
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
