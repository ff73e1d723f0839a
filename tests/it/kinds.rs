//! Every probe kind in a running daemon: the blackbox-named families in
//! /metrics (documented, promtool-clean, no target text but the
//! certificate's in labels), the kind and address in the API and on the
//! page, and the kinds' results in the scores.

use lookout::daemon::Daemon;

use crate::daemon::{gauge, once_judged, parse, promtool_check_metrics};
use crate::deploy::documented_metric_names;
use crate::probe_dns::start_dns;
use crate::probe_grpc::{ca_and_server, health_server};
use crate::probe_tcp::{Behaviour, serve, serve_tls};
use crate::support::config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_shows_in_metrics_api_and_page() {
    let dir = tempfile::tempdir().unwrap();
    let banner = serve(Behaviour::Banner).await;
    let (redis, ca) = serve_tls(Behaviour::Redis, dir.path()).await;
    let ca = ca.display();
    let dns = start_dns().await;
    let dns = dns.addr;
    let (grpc, reporter) = health_server(None).await;
    reporter
        .set_service_status(
            "models.v1.Registry",
            tonic_health::ServingStatus::NotServing,
        )
        .await;
    let (grpc_ca, grpc_tls) = ca_and_server("Corp Root");
    let grpc_ca_file = dir.path().join("grpc-ca.pem");
    std::fs::write(&grpc_ca_file, grpc_ca).unwrap();
    let grpc_ca_file = grpc_ca_file.display();
    let (grpcs, _reporter) = health_server(Some(grpc_tls)).await;
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

[[checks]]
name = "registry resolves"
url = "dns://{dns}"
dns = {{ name = "{{{{ host }}}}.example", type = "A" }}
matrix = {{ host = ["registry", "pool"] }}
expect = {{ answers = ["IN\\s+A\\s+10\\.0\\."], min_answers = 1 }}

[[checks]]
name = "pool over tcp"
url = "dns://{dns}"
dns = {{ name = "pool.example", transport = "tcp" }}
expect = {{ min_answers = 2 }}

[[checks]]
name = "gone"
url = "dns://{dns}"
dns = {{ name = "gone.example" }}
expect = {{ rcode = "NXDOMAIN" }}

[[checks]]
name = "model server"
url = "grpc://127.0.0.1:{grpc}"
grpc = {{ service = "models.v1.Registry" }}

[[checks]]
name = "model server over tls"
url = "grpcs://localhost:{grpcs}"
tls = {{ ca_file = "{grpc_ca_file}" }}
expect = {{ issuer = "CN=Corp Root", min_tls_version = "1.2" }}

[[checks]]
name = "loopback"
url = "icmp://127.0.0.1"
icmp = {{ count = 2, interval = "50ms" }}
expect = {{ max_loss = "0%" }}
"#
    );
    let daemon = Daemon::start(config(&toml)).await.unwrap();
    let (metrics, status, page) = once_judged(&daemon).await;
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
    for check in [
        "registry resolves[host=registry]",
        "registry resolves[host=pool]",
        "pool over tcp",
        "gone",
    ] {
        // prometheus-parse misreads a label value holding `=`: read the text.
        let line = format!("probe_success{{check=\"{check}\",group=\"infrastructure\"}} 1\n");
        assert!(metrics.contains(&line), "{line}");
    }
    assert_eq!(
        gauge(
            &scrape,
            "probe_dns_answer_rrs",
            &[("check", "pool over tcp")]
        ),
        Some(2.0)
    );
    assert!(
        gauge(
            &scrape,
            "probe_dns_duration_seconds",
            &[("check", "gone"), ("phase", "request")]
        )
        .is_some()
    );
    assert_eq!(success("model server"), Some(0.0));
    assert_eq!(success("model server over tls"), Some(1.0));
    assert_eq!(
        gauge(
            &scrape,
            "probe_grpc_ssl",
            &[("check", "model server over tls")]
        ),
        Some(1.0)
    );
    assert_eq!(
        gauge(
            &scrape,
            "probe_grpc_healthcheck_response",
            &[("check", "model server"), ("serving_status", "NOT_SERVING")]
        ),
        Some(1.0)
    );
    assert_eq!(
        gauge(
            &scrape,
            "probe_grpc_status_code",
            &[("check", "model server")]
        ),
        Some(0.0)
    );
    // ICMP needs a raw socket or ping_group_range (root in CI has the
    // first); wherever it runs, the run is judged and its series exist.
    let icmp = success("loopback").expect("the icmp check ran");
    if icmp == 1.0 {
        assert_eq!(
            gauge(
                &scrape,
                "lookout_icmp_packets_received",
                &[("check", "loopback")]
            ),
            Some(2.0)
        );
    }
    // 2 of the 3 TCP/TLS checks, the 4 DNS ones, one of the 2 gRPC ones, and ICMP.
    assert_eq!(
        gauge(
            &scrape,
            "lookout_group_health_score",
            &[("group", "infrastructure")]
        ),
        Some((7.0 + icmp) / 10.0)
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
    let model = checks.iter().find(|c| c["name"] == "model server").unwrap();
    assert_eq!(model["method"], "gRPC", "{model}");
    assert_eq!(model["outcome"], "not_serving", "{model}");
    let gone = checks.iter().find(|c| c["name"] == "gone").unwrap();
    assert_eq!(gone["method"], "DNS A", "{gone}");
}

/// `lookout report` judges the other kinds as the daemon does, and its
/// Markdown shows each one's kind, address and reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_covers_the_other_kinds() {
    let banner = serve(Behaviour::Banner).await;
    let server = start_dns().await;
    let dns = server.addr;
    let cfg = config(&format!(
        r#"
[[checks]]
name = "smtp"
url = "tcp://127.0.0.1:{banner}"
tcp = {{ query = [{{ expect = "^220 " }}] }}

[[checks]]
name = "gone"
url = "dns://{dns}"
dns = {{ name = "gone.example" }}
"#
    ));
    let once = lookout::run::run_once(&cfg).await.unwrap();
    let report = lookout::report::Report::build(&cfg, &once, chrono::Utc::now(), None);
    let md = lookout::report::markdown::render(&report);
    assert!(md.contains(&format!("tcp://127.0.0.1:{banner}")), "{md}");
    assert!(
        md.contains("response code NXDOMAIN, expected NOERROR"),
        "{md}"
    );
    assert!(md.contains("50.0"), "one of two passes:\n{md}");
}
