//! `/probe?target=…&module=…`, the blackbox_exporter drop-in: answers in
//! its format for every kind, refuses what it should, keeps to the
//! scrape's deadline, is scraped by a real Prometheus with blackbox's
//! relabelling, and says what Debian's blackbox_exporter says of the same
//! targets, series by series.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use lookout::daemon::Daemon;

use crate::daemon::{parse, promtool_check_metrics};
use crate::probe_dns::start_dns;
use crate::probe_grpc::health_server;
use crate::probe_tcp::{Behaviour, serve};
use crate::support::{Prometheus, config, start_target, tool, try_config};

const MODULES: &str = r#"
[modules.http_2xx]
prober = "http"
timeout = "5s"

[modules.tcp_connect]
prober = "tcp"
timeout = "10s"

[modules.smtp_banner]
prober = "tcp"
tcp = { query = [{ expect = "^220 " }] }

[modules.dns_a]
prober = "dns"
dns = { name = "registry.example", type = "A" }
expect = { min_answers = 1 }

[modules.grpc_plain]
prober = "grpc"

[modules.icmp]
prober = "icmp"
"#;

async fn get(url: &str, timeout_header: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = timeout_header {
        req = req.header("X-Prometheus-Scrape-Timeout-Seconds", t);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_answers_each_kind_in_blackbox_format() {
    let web = start_target().await;
    let banner = serve(Behaviour::Banner).await;
    let silent = serve(Behaviour::Silent).await;
    let dns = start_dns().await;
    let (grpc, _reporter) = health_server(None).await;
    let daemon = Daemon::start(config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{MODULES}"
    )))
    .await
    .unwrap();
    let base = format!("http://{}/probe", daemon.addr);
    let web_target = web.url("/status/200");
    let cases: Vec<(String, f64, Vec<&str>)> = vec![
        (
            format!("target={web_target}&module=http_2xx"),
            1.0,
            vec![
                "probe_http_status_code 200",
                "probe_http_duration_seconds{phase=\"connect\"}",
            ],
        ),
        (
            format!("target={}", web.url("/status/503")),
            0.0,
            vec!["probe_http_status_code 503"],
        ),
        (
            format!("target=127.0.0.1:{banner}&module=smtp_banner"),
            1.0,
            vec!["probe_failed_due_to_regex 0"],
        ),
        (
            format!("target=127.0.0.1:{banner}&module=tcp_connect"),
            1.0,
            vec!["probe_dns_lookup_time_seconds "],
        ),
        (
            format!("target={}&module=dns_a", dns.addr),
            1.0,
            vec!["probe_dns_answer_rrs 1", "probe_dns_query_succeeded 1"],
        ),
        (
            format!("target=127.0.0.1:{grpc}&module=grpc_plain"),
            1.0,
            vec!["probe_grpc_healthcheck_response{serving_status=\"SERVING\"} 1"],
        ),
    ];
    for (query, success, lines) in cases {
        let (status, text) = get(&format!("{base}?{query}"), None).await;
        assert_eq!(status, 200, "{query}: {text}");
        assert_eq!(
            value(&text, "probe_success"),
            Some(success),
            "{query}:\n{text}"
        );
        assert!(value(&text, "probe_duration_seconds").is_some(), "{text}");
        for line in lines {
            assert!(text.contains(line), "{query}: {line:?} not in\n{text}");
        }
        // Bare series, as blackbox writes them: no check or group label.
        assert!(
            !text.contains("check=") && !text.contains("group="),
            "{text}"
        );
        promtool_check_metrics(&text);
    }

    // The scrape's deadline, less half a second, beats the module's 10 s.
    let (status, text) = get(
        &format!("{base}?target=127.0.0.1:{silent}&module=smtp_banner"),
        Some("1.5"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(value(&text, "probe_success"), Some(0.0));
    let took = value(&text, "probe_duration_seconds").unwrap();
    assert!(
        took < 5.0,
        "the probe kept to the scrape's deadline: {took}"
    );

    // Refusals: 400 with a reason, in plain text that is never sniffed.
    for (query, code, words) in [
        ("module=http_2xx", 400, "target parameter is missing"),
        (
            "target=127.0.0.1:1&module=nope",
            400,
            "unknown module \"nope\"",
        ),
        (
            "target=<script>:x&module=tcp_connect",
            400,
            "invalid target",
        ),
        (
            "target=registry.example&module=dns_a",
            400,
            "the server's address",
        ),
    ] {
        let (status, text) = get(&format!("{base}?{query}"), None).await;
        assert_eq!(status, code, "{query}: {text}");
        assert!(text.contains(words), "{query}: {text}");
    }
    let resp = reqwest::get(format!("{base}?target=<script>:x&module=tcp_connect"))
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        resp.headers()["content-security-policy"],
        lookout::serve::headers::LOCKED_CSP
    );
    let metrics = get(&format!("http://{}/metrics", daemon.addr), None)
        .await
        .1;
    daemon.shutdown().await;
    // /probe runs are not checks: they add no per-check series.
    assert!(!metrics.contains("check=\"http_2xx\""), "{metrics}");
}

#[test]
fn a_module_carries_no_credential() {
    for (module, field) in [
        (
            "[modules.m]\nprober = \"http\"\nauth = { scheme = \"bearer\", secret = \"k\" }",
            "modules.m.auth",
        ),
        (
            "[secrets]\nk = { env = \"PLATFORM_API_KEY\" }\n[modules.m]\nprober = \"tcp\"\ntcp = { query = [{ send = \"AUTH {secret}\", secret = \"k\" }] }",
            "modules.m.tcp.query[0].secret",
        ),
        ("[modules.m]\nprober = \"ftp\"", "modules.m.prober"),
        (
            "[modules.m]\nprober = \"tcp\"\nexpect = { status = [200] }",
            "modules.m.expect.status",
        ),
    ] {
        let err = try_config(module).expect_err(module).to_string();
        assert!(err.contains(&format!("{field}:")), "{module}: {err}");
    }
}

/// The same blackbox.yml, read by lookout (`blackbox_config`) and by
/// Debian's blackbox_exporter, probing the same targets.
const BLACKBOX_YML: &str = r#"modules:
  http_2xx:
    prober: http
    timeout: 5s
  tcp_connect:
    prober: tcp
    timeout: 5s
  dns_a:
    prober: dns
    timeout: 5s
    dns:
      query_name: registry.example
      query_type: A
      transport_protocol: udp
  https_insecure:
    prober: http
    timeout: 5s
    http:
      tls_config:
        insecure_skip_verify: true
  grpc_plain:
    prober: grpc
    timeout: 5s
    grpc:
      tls: false
  icmp:
    prober: icmp
    timeout: 5s
"#;

/// A child process killed when the test ends, failed assertions included.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Family name → the label names its series carry (all series together).
fn families(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let scrape = parse(text);
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in &scrape.samples {
        let entry = out.entry(s.metric.clone()).or_default();
        entry.extend(s.labels.keys().map(|k| k.to_string()));
    }
    out
}

/// What lookout does not export that blackbox_exporter does, by design;
/// docs/metrics.md says why.
const ONLY_BLACKBOX: &[&str] = &[
    "probe_ip_addr_hash",
    "probe_ip_protocol",
    "probe_http_content_length",
    "probe_http_uncompressed_body_length",
    "probe_http_version",
    "probe_http_last_modified_timestamp_seconds",
    "probe_failed_due_to_regex",
    "probe_dns_serial",
    // blackbox writes it for plaintext gRPC too (as 0); lookout only when
    // a certificate was seen.
    "probe_ssl_earliest_cert_expiry",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_probe_and_it_matches_blackbox_exporter() {
    let Some(prometheus) = tool("prometheus", "/probe scraped by Prometheus") else {
        return;
    };
    let Some(blackbox) = tool(
        "prometheus-blackbox-exporter",
        "/probe compared with blackbox_exporter",
    ) else {
        return;
    };
    let web = start_target().await;
    let banner = serve(Behaviour::Banner).await;
    let dns = start_dns().await;
    let (grpc, _reporter) = health_server(None).await;
    let (tls_config, _) =
        crate::support::self_signed_server(&["localhost"], (2020, 1, 1), (2031, 6, 30));
    let https = crate::support::serve_https(tls_config, 8).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("blackbox.yml"), BLACKBOX_YML).unwrap();
    let lookout_cfg = dir.path().join("lookout.toml");
    std::fs::write(
        &lookout_cfg,
        "blackbox_config = \"blackbox.yml\"\n[server]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \":memory:\"\n",
    )
    .unwrap();
    let daemon = Daemon::start(lookout::config::load(&lookout_cfg).unwrap())
        .await
        .unwrap();

    // Debian's blackbox_exporter on the same file.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _exporter = Killed(
        std::process::Command::new(&blackbox)
            .arg(format!(
                "--config.file={}",
                dir.path().join("blackbox.yml").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("blackbox_exporter starts"),
    );
    let bb = format!("http://127.0.0.1:{port}");
    crate::support::eventually(Duration::from_secs(15), async || {
        reqwest::get(format!("{bb}/-/healthy"))
            .await
            .ok()
            .filter(|r| r.status() == 200)
            .map(|_| ())
    })
    .await;

    let targets = [
        ("http_2xx", web.url("/status/200")),
        ("http_2xx", web.url("/status/404")),
        ("tcp_connect", format!("127.0.0.1:{banner}")),
        ("dns_a", dns.addr.to_string()),
        ("https_insecure", format!("https://localhost:{https}/")),
        ("grpc_plain", format!("127.0.0.1:{grpc}")),
        ("icmp", "127.0.0.1".to_owned()),
    ];
    let mut mismatches = Vec::new();
    for (module, target) in &targets {
        let q = format!("target={target}&module={module}");
        let ours = get(&format!("http://{}/probe?{q}", daemon.addr), None)
            .await
            .1;
        let theirs = get(&format!("{bb}/probe?{q}"), None).await.1;
        let (ours_f, theirs_f) = (families(&ours), families(&theirs));
        // Same verdict, on real answers.
        assert!(value(&ours, "probe_success").is_some(), "{q}: {ours}");
        assert!(value(&theirs, "probe_success").is_some(), "{q}: {theirs}");
        assert!(ours_f.len() >= 3 && theirs_f.len() >= 3, "{q}");
        assert_eq!(
            value(&ours, "probe_success"),
            value(&theirs, "probe_success"),
            "{q}\nlookout:\n{ours}\nblackbox:\n{theirs}"
        );
        for (name, labels) in &ours_f {
            match theirs_f.get(name) {
                // lookout's own additions (ICMP's packet counts).
                None if name.starts_with("lookout_") => {}
                None => mismatches.push(format!("{q}: {name} is lookout's only")),
                Some(theirs) if theirs != labels => mismatches.push(format!(
                    "{q}: {name} labels {labels:?}, blackbox {theirs:?}"
                )),
                Some(_) => {}
            }
        }
        for name in theirs_f.keys() {
            if !ours_f.contains_key(name) && !ONLY_BLACKBOX.contains(&name.as_str()) {
                mismatches.push(format!("{q}: {name} is blackbox's only"));
            }
        }
        // Same meaning where the value is deterministic.
        for series in [
            "probe_http_status_code",
            "probe_http_redirects",
            "probe_dns_answer_rrs",
            "probe_grpc_status_code",
            "probe_grpc_healthcheck_response{serving_status=\"SERVING\"}",
            "probe_http_ssl",
            "probe_ssl_earliest_cert_expiry",
            "probe_tls_version_info{version=\"TLS 1.3\"}",
        ] {
            let family = series.split('{').next().unwrap_or(series);
            if value(&ours, series).is_none() && ONLY_BLACKBOX.contains(&family) {
                continue;
            }
            assert_eq!(
                value(&ours, series),
                value(&theirs, series),
                "{q}: {series}"
            );
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");

    // A real Prometheus scrapes /probe with blackbox's relabelling.
    let scrape = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
         scrape_configs:\n  - job_name: blackbox\n    metrics_path: /probe\n    params: {{ module: [tcp_connect] }}\n\
         \x20   static_configs: [{{ targets: [\"127.0.0.1:{banner}\"] }}]\n\
         \x20   relabel_configs:\n\
         \x20     - {{ source_labels: [__address__], target_label: __param_target }}\n\
         \x20     - {{ source_labels: [__param_target], target_label: instance }}\n\
         \x20     - {{ target_label: __address__, replacement: \"{}\" }}\n",
        daemon.addr
    );
    let prom = Prometheus::start(&prometheus, &scrape, &["--storage.tsdb.path=data"]).await;
    let instance = format!("127.0.0.1:{banner}");
    let got = crate::support::eventually(Duration::from_secs(20), async || {
        let rows = prom
            .query(&format!(
                "probe_success{{job=\"blackbox\",instance=\"{instance}\"}}"
            ))
            .await;
        rows.first().map(|(_, v)| *v)
    })
    .await;
    assert_eq!(got, 1.0);
    daemon.shutdown().await;
}

#[test]
fn check_config_lists_the_modules() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lookout.toml");
    std::fs::write(&path, format!("[store]\npath = \":memory:\"\n{MODULES}")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["check-config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "module dns_a\t/probe?module=dns_a\tdns (the target from the scrape), timeout 10s",
        "module tcp_connect\t/probe?module=tcp_connect\ttcp (the target from the scrape), timeout 10s",
        "module http_2xx\t/probe?module=http_2xx\thttp (the target from the scrape), timeout 5s",
    ] {
        assert!(stdout.contains(line), "{line:?} not in\n{stdout}");
    }
}

/// A module inherits no credential from `[defaults]` (auth or headers),
/// and a header that looks like one is refused: a scrape chooses the
/// target, and a credential goes only where the config says.
#[test]
fn a_module_inherits_no_credential() {
    let cfg = try_config(
        "[secrets]\nk = { env = \"PLATFORM_API_KEY\" }\n\
         [defaults]\nauth = { scheme = \"bearer\", secret = \"k\" }\nheaders = { \"X-Team\" = \"sre\" }\n\
         [[checks]]\nname = \"c\"\nurl = \"http://127.0.0.1:1/\"\n\
         [modules.http_2xx]\nprober = \"http\"\n",
    )
    .unwrap();
    let module = cfg.modules["http_2xx"].probe.http().unwrap();
    assert_eq!(module.auth.scheme(), "none");
    assert!(module.headers.is_empty(), "{:?}", module.headers);
    assert_eq!(cfg.checks[0].probe.http().unwrap().auth.scheme(), "bearer");
    for header in [
        "Authorization",
        "X-API-Key",
        "Cookie",
        "X-Auth-Token",
        "Private-Token",
    ] {
        let err = try_config(&format!(
            "[modules.m]\nprober = \"http\"\nheaders = {{ \"{header}\" = \"x\" }}\n"
        ))
        .expect_err(header)
        .to_string();
        assert!(
            err.contains(&format!(
                "modules.m.headers.{header}: a module carries no credential"
            )),
            "{err}"
        );
    }
    // blackbox.yml's headers go through the same door.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("blackbox.yml"),
        "modules:\n  auth_probe:\n    prober: http\n    http:\n      headers:\n        Authorization: Bearer t0ken\n",
    )
    .unwrap();
    let path = dir.path().join("lookout.toml");
    std::fs::write(
        &path,
        "blackbox_config = \"blackbox.yml\"\n[store]\npath = \":memory:\"\n",
    )
    .unwrap();
    let err = lookout::config::load(&path)
        .expect_err("a credential header")
        .to_string();
    assert!(err.contains("a module carries no credential"), "{err}");
    assert!(!err.contains("t0ken"), "{err}");
}
