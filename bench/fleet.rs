//! Benchmarks for many probers (`bench/fleet.sh`):
//!
//! 1. Placement: how long rendezvous hashing takes to place N checks over
//!    1 to 8 shards (what every instance does at each load and reload).
//! 2. The fleet's view: three synthetic "locations" (exporters serving the
//!    per-check series N lookouts would, 5 % failing in each, a different
//!    5 %, and 2 % failing everywhere), a real Prometheus scraping them with the kit's rules, and
//!    `lookout view` reading it: one read of the fleet (`Source::snapshot`,
//!    all queries), building the view, and `/api/v1/status` and `/` over
//!    HTTP.
//!
//!     cargo run --release --example bench-fleet -- N RUNS
//!
//! Prints Markdown rows on stdout. Needs `prometheus` on PATH (or
//! PROMETHEUS=path). Everything listens on 127.0.0.1 and is stopped at the end.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lookout::cluster::{Shard, check_identity};

fn arg(args: &[String], i: usize, what: &str) -> usize {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or_else(|| {
        eprintln!("usage: bench-fleet N RUNS ({what} missing or invalid)");
        std::process::exit(2)
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The series one location's lookouts export for N checks; check i fails
/// here when `(i + location) % 20 == 0` (one location of three at most),
/// and from everywhere when `i % 50 == 0` (2 %, failing by quorum).
fn exposition(n: usize, location: usize) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut out = String::with_capacity(n * 420);
    for i in 0..n {
        let labels = format!("check=\"c{i:05}\",group=\"g{:02}\"", i % 20);
        let ok = (i + location) % 20 != 0 && i % 50 != 0;
        out.push_str(&format!(
            "probe_success{{{labels}}} {}\nprobe_http_status_code{{{labels}}} {}\n\
             probe_duration_seconds{{{labels}}} 0.0{}\nlookout_check_last_run_timestamp_seconds{{{labels}}} {now}\n",
            u8::from(ok),
            if ok { 200 } else { 503 },
            10 + i % 80,
        ));
    }
    out
}

async fn serve_text(text: String) -> std::net::SocketAddr {
    let text = std::sync::Arc::new(text);
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let text = text.clone();
            async move { (*text).clone() }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn placement(n: usize, runs: usize) {
    let ids: Vec<String> = (0..n)
        .map(|i| check_identity(&format!("c{i:05}")))
        .collect();
    println!("| shards | placing {n} checks, median of {runs}, ms | per check, µs |");
    println!("| ---: | ---: | ---: |");
    for count in [1u32, 2, 3, 4, 8] {
        let shard = Shard::new(0, count).unwrap();
        let times: Vec<f64> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                let owned = ids.iter().filter(|id| shard.owns(id)).count();
                std::hint::black_box(owned);
                ms(t.elapsed())
            })
            .collect();
        let m = median(times);
        println!("| {count} | {m:.2} | {:.3} |", m * 1000.0 / n as f64);
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n = arg(&args, 1, "N");
    let runs = arg(&args, 2, "RUNS").max(1);
    placement(n, runs.max(20));
    println!();

    let mut targets = String::new();
    for (i, location) in ["a", "b", "c"].iter().enumerate() {
        let addr = serve_text(exposition(n, i)).await;
        targets.push_str(&format!(
            "      - targets: [\"{addr}\"]\n        labels: {{ location: \"{location}\" }}\n"
        ));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules: Vec<String> = ["lookout-global.yml", "lookout-recording.yml"]
        .iter()
        .map(|f| {
            format!(
                "  - {:?}",
                root.join("deploy/prometheus/rules")
                    .join(f)
                    .display()
                    .to_string()
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 5s\n  scrape_timeout: 5s\n  evaluation_interval: 5s\n\
             rule_files:\n{}\nscrape_configs:\n  - job_name: lookout\n    static_configs:\n{targets}",
            rules.join("\n")
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bin = std::env::var("PROMETHEUS").unwrap_or_else(|_| "prometheus".into());
    let mut prometheus = Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus starts (install Debian's prometheus, or set PROMETHEUS)");
    let base = format!("http://127.0.0.1:{port}");
    let url = url::Url::parse(&base).unwrap();
    let source = lookout::fleet::query::Source::new(&url, Duration::from_secs(60)).unwrap();

    // Until the rules have judged every check from every location.
    let deadline = Instant::now() + Duration::from_secs(180);
    let snapshot = loop {
        if let Ok(s) = source.snapshot().await
            && s.checks.len() == n
            && s.checks
                .iter()
                .all(|c| c.seen.len() == 3 && c.quorum_failing.is_some())
        {
            break s;
        }
        if Instant::now() > deadline {
            let _ = prometheus.kill();
            eprintln!("Prometheus did not judge {n} checks from 3 locations within 180 s");
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let (overall, _) = snapshot.scores();

    let mut read = Vec::new();
    let mut build = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let s = source.snapshot().await.unwrap();
        read.push(ms(t.elapsed()));
        let t = Instant::now();
        let view = s.view(None);
        let json = serde_json::to_vec(&view).unwrap();
        std::hint::black_box(json.len());
        build.push(ms(t.elapsed()));
    }

    let viewer = lookout::fleet::server::Viewer::start(lookout::fleet::server::ViewerOptions {
        source: source.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
        refresh: Duration::from_secs(3600),
        config: None,
        server: lookout::config::ServerSettings {
            tls: None,
            basic_auth_users: Default::default(),
            read_header_timeout: Duration::from_secs(10),
            max_connections: 16,
        },
    })
    .await
    .unwrap();
    let client = reqwest::Client::new();
    let view_base = format!("http://{}", viewer.addr);
    for _ in 0..600 {
        let ready = client.get(format!("{view_base}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let timed = |path: &'static str| {
        let client = client.clone();
        let url = format!("{view_base}{path}");
        async move {
            let mut times = Vec::new();
            let mut bytes = 0;
            for _ in 0..runs {
                let t = Instant::now();
                let body = client
                    .get(&url)
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                times.push(ms(t.elapsed()));
                bytes = body.len();
            }
            (median(times), bytes)
        }
    };
    let (api_ms, api_bytes) = timed("/api/v1/status").await;
    let (page_ms, page_bytes) = timed("/").await;
    viewer.shutdown().await;
    let _ = prometheus.kill();
    let _ = prometheus.wait();

    println!(
        "| what ({n} checks × 3 locations, {} passing of {}) | median of {runs}, ms | size |",
        overall.passing, overall.total
    );
    println!("| --- | ---: | ---: |");
    println!(
        "| one read of the fleet from Prometheus (18 queries) | {:.1} | |",
        median(read)
    );
    println!("| the view built and serialized | {:.1} | |", median(build));
    println!(
        "| `GET /api/v1/status` of `lookout view` | {api_ms:.1} | {:.1} MB |",
        api_bytes as f64 / 1e6
    );
    println!(
        "| `GET /` of `lookout view` | {page_ms:.1} | {:.1} MB |",
        page_bytes as f64 / 1e6
    );
}
