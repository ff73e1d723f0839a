//! Load driver for `bench/kinds.sh`: GETs one loopback `/probe` URL at a
//! fixed rate for a fixed time, with a cap on requests in flight, over
//! keep-alive connections. Not part of lookout.
//!
//! ```text
//! bench-kinds-load --url URL [--rate 1000] [--seconds 10] [--concurrency 64]
//! ```
//!
//! Pacing: every millisecond the driver sends what is due by then
//! (`elapsed × rate`, less what it sent), waiting for a slot when
//! `concurrency` are in flight (so an overloaded exporter shows as a rate
//! below the one asked for, not as a growing queue). Prints one JSON line:
//! `sent`, `completed` (an answer came, whatever it said), `non_200`,
//! `not_success` (200, but the body lacks a `probe_success 1` line),
//! `errors` (no answer: connection error or the 10 s request timeout),
//! `secs`, `rate`, and the driver's own CPU (`driver_cpu_ticks`, from
//! /proc/self/stat; not counted against either exporter). Bounded: stops
//! sending after `seconds`, and waits at most 15 s more for answers.
//! Only loopback URLs are accepted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::time::MissedTickBehavior;

fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    // After ")": index 0 is field 3 (state); utime and stime are 14 and 15.
    get(11) + get(12)
}

fn usage() -> ! {
    eprintln!("usage: bench-kinds-load --url URL [--rate 1000] [--seconds 10] [--concurrency 64]");
    std::process::exit(2);
}

#[derive(Default)]
struct Counts {
    completed: AtomicU64,
    non_200: AtomicU64,
    not_success: AtomicU64,
    errors: AtomicU64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut url: Option<String> = None;
    let (mut rate, mut seconds, mut concurrency) = (1000.0_f64, 10.0_f64, 64_usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--url" => url = Some(v),
            "--rate" => rate = v.parse().unwrap_or_else(|_| usage()),
            "--seconds" => seconds = v.parse().unwrap_or_else(|_| usage()),
            "--concurrency" => concurrency = v.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    let url = reqwest::Url::parse(&url.unwrap_or_else(|| usage())).unwrap_or_else(|_| usage());
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    if !loopback {
        eprintln!("bench-kinds-load: only loopback targets are allowed");
        std::process::exit(2);
    }
    if !(rate > 0.0 && rate <= 100_000.0 && seconds > 0.0 && seconds <= 300.0 && concurrency > 0) {
        usage();
    }

    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let counts = Arc::new(Counts::default());
    let limit = Arc::new(Semaphore::new(concurrency));
    let window = Duration::from_secs_f64(seconds);

    let cpu0 = cpu_ticks();
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut tasks = tokio::task::JoinSet::new();
    let mut sent = 0u64;
    'send: loop {
        tick.tick().await;
        let elapsed = start.elapsed();
        if elapsed >= window {
            break;
        }
        let due = (elapsed.as_secs_f64() * rate) as u64;
        while sent < due {
            let Ok(permit) = limit.clone().acquire_owned().await else {
                break 'send;
            };
            if start.elapsed() >= window {
                break 'send;
            }
            sent += 1;
            let (client, url, counts) = (client.clone(), url.clone(), counts.clone());
            tasks.spawn(async move {
                match client.get(url).send().await {
                    Ok(r) => {
                        let status = r.status();
                        let body = r.text().await.unwrap_or_default();
                        counts.completed.fetch_add(1, Ordering::Relaxed);
                        if status != reqwest::StatusCode::OK {
                            counts.non_200.fetch_add(1, Ordering::Relaxed);
                        } else if !body.lines().any(|l| l.trim() == "probe_success 1") {
                            counts.not_success.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        counts.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                drop(permit);
            });
            while tasks.try_join_next().is_some() {}
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(15), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"sent\":{sent},\"completed\":{},\"non_200\":{},\"not_success\":{},\"errors\":{},\"secs\":{secs:.3},\"rate\":{:.1},\"driver_cpu_ticks\":{}}}",
        counts.completed.load(Ordering::Relaxed),
        counts.non_200.load(Ordering::Relaxed),
        counts.not_success.load(Ordering::Relaxed),
        counts.errors.load(Ordering::Relaxed),
        sent as f64 / secs,
        cpu_ticks() - cpu0,
    );
}
