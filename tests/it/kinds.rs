//! Every probe kind in a running daemon: the blackbox-named families in
//! /metrics (documented, promtool-clean, no target text but the
//! certificate's in labels), the kind and address in the API and on the
//! page, and the kinds' results in the scores.

use std::time::Duration;

use lookout::daemon::Daemon;

use crate::daemon::{gauge, parse, promtool_check_metrics};
use crate::deploy::documented_metric_names;
use crate::probe_tcp::{Behaviour, serve, serve_tls};
use crate::support::{config, eventually};

async fn get(url: String) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_shows_in_metrics_api_and_page() {
    let dir = tempfile::tempdir().unwrap();
    let banner = serve(Behaviour::Banner).await;
    let (redis, ca) = serve_tls(Behaviour::Redis, dir.path()).await;
    let ca = ca.display();
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[defaults]
interval = "1s"
timeout = "3s"
group = "infrastructure"

[[checks]]
name = "smtp banner"
url = "tcp://127.0.0.1:{banner}"
tcp = {{ query = [{{ expect = "^554" }}] }}

[[checks]]
name = "redis over tls"
url = "tcp://localhost:{redis}"
tls = {{ ca_file = "{ca}" }}
tcp = {{ tls = true, query = [{{ send = "PING\r\n" }}, {{ expect = "^\\+PONG" }}] }}

[[checks]]
name = "redis certificate"
url = "tls://localhost:{redis}"
tls = {{ ca_file = "{ca}" }}
expect = {{ cert_valid_for = "1d", san = ["localhost"] }}
"#
    );
    let daemon = Daemon::start(config(&toml)).await.unwrap();
    let recorder = daemon.recorder.clone();
    eventually(Duration::from_secs(10), async || {
        (recorder.board().overall().pending == 0).then_some(())
    })
    .await;
    let base = format!("http://{}", daemon.addr);
    let metrics = get(format!("{base}/metrics")).await;
    let status: serde_json::Value =
        serde_json::from_str(&get(format!("{base}/api/v1/status")).await).unwrap();
    let page = get(format!("{base}/")).await;
    daemon.shutdown().await;

    let scrape = parse(&metrics);
    let success = |check: &str| gauge(&scrape, "probe_success", &[("check", check)]);
    assert_eq!(success("smtp banner"), Some(0.0));
    assert_eq!(success("redis over tls"), Some(1.0));
    assert_eq!(success("redis certificate"), Some(1.0));
    assert_eq!(
        gauge(
            &scrape,
            "probe_failed_due_to_regex",
            &[("check", "smtp banner")]
        ),
        Some(1.0)
    );
    assert_eq!(
        gauge(
            &scrape,
            "probe_failed_due_to_regex",
            &[("check", "redis over tls")]
        ),
        Some(0.0)
    );
    for check in ["redis over tls", "redis certificate"] {
        assert_eq!(
            gauge(
                &scrape,
                "probe_tls_version_info",
                &[("check", check), ("version", "TLS 1.3")]
            ),
            Some(1.0),
            "{check}"
        );
        assert!(
            gauge(
                &scrape,
                "probe_ssl_last_chain_expiry_timestamp_seconds",
                &[("check", check)]
            )
            .is_some_and(|t| t > 1.9e9),
            "{check}"
        );
        let info = scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == "probe_ssl_last_chain_info" && s.labels.get("check") == Some(check)
            })
            .unwrap_or_else(|| panic!("{check}: no probe_ssl_last_chain_info"));
        assert_eq!(info.labels.get("subjectalternative"), Some("localhost"));
        assert_eq!(
            info.labels.get("fingerprint_sha256").map(str::len),
            Some(64)
        );
    }
    assert_eq!(
        gauge(
            &scrape,
            "lookout_group_health_score",
            &[("group", "infrastructure")]
        ),
        Some(2.0 / 3.0)
    );
    // Every family is documented, and the text passes promtool.
    let documented = documented_metric_names();
    let mut families: Vec<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    families.dedup();
    for family in families {
        assert!(
            documented.contains(family),
            "{family} is exported but not in docs/metrics.md"
        );
    }
    promtool_check_metrics(&metrics);

    // The API and the page name the kind and the address.
    let checks = status["checks"].as_array().unwrap();
    let smtp = checks
        .iter()
        .find(|c| c["name"] == "smtp banner")
        .expect("the tcp check in the API");
    assert_eq!(smtp["method"], "TCP", "{smtp}");
    assert_eq!(smtp["url"], format!("tcp://127.0.0.1:{banner}"), "{smtp}");
    assert_eq!(smtp["outcome"], "query", "{smtp}");
    let cert = checks
        .iter()
        .find(|c| c["name"] == "redis certificate")
        .unwrap();
    assert_eq!(cert["method"], "TLS", "{cert}");
    assert!(
        page.contains(&format!("tcp://127.0.0.1:{banner}")),
        "{page}"
    );
    assert!(page.contains("query step 1"), "the reason on the page");
}
