//! Load driver for `bench/run.sh`: sends a fixed number of GETs at a fixed
//! rate to one loopback URL, with a cap on requests in flight, and reports
//! what happened. Not part of lookout.
//!
//! ```text
//! drive URL COUNT RATE_PER_S MAX_IN_FLIGHT CLK_TCK [--fresh] [--expect TEXT]
//! ```
//!
//! * default: keep-alive connections (used to drive blackbox_exporter's
//!   `/probe`, so the driver's connections cost blackbox as little as possible);
//! * `--fresh`: a new TCP connection per request, from one shared client
//!   (reqwest's `pool_max_idle_per_host(0)`): a reference floor for what a
//!   fresh-connection HTTP/1.1 GET costs a tokio + hyper client here;
//! * `--expect TEXT`: a response counts as ok only if its body contains TEXT.
//!
//! Prints one line of `key=value` pairs, including the driver's own CPU time
//! (from /proc/self/stat, so `CLK_TCK` is passed in by the script).
//! `RATE_PER_S` 0 means no pacing: as fast as `MAX_IN_FLIGHT` allows.
//! Bounded in count and in time: it gives up after `2 * COUNT / RATE + 30` s
//! (120 s unpaced).
//! Only loopback URLs are accepted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::time::MissedTickBehavior;

fn cpu_ticks() -> u64 {
    // Fields 14 and 15 (utime, stime) of /proc/self/stat, after the ")".
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    // After ")": index 0 is field 3 (state), so field 14 is index 11.
    get(11) + get(12)
}

fn usage() -> ! {
    eprintln!("usage: drive URL COUNT RATE_PER_S MAX_IN_FLIGHT CLK_TCK [--fresh] [--expect TEXT]");
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        usage();
    }
    let url = reqwest::Url::parse(&args[0]).unwrap_or_else(|_| usage());
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    if !loopback {
        eprintln!("drive: only loopback targets are allowed");
        std::process::exit(2);
    }
    let count: u64 = args[1].parse().unwrap_or_else(|_| usage());
    let rate: f64 = args[2].parse().unwrap_or_else(|_| usage());
    let max_in_flight: usize = args[3].parse().unwrap_or_else(|_| usage());
    let clk_tck: f64 = args[4].parse().unwrap_or_else(|_| usage());
    let mut fresh = false;
    let mut expect: Option<String> = None;
    let mut rest = args[5..].iter();
    while let Some(a) = rest.next() {
        match a.as_str() {
            "--fresh" => fresh = true,
            "--expect" => expect = Some(rest.next().cloned().unwrap_or_else(|| usage())),
            _ => usage(),
        }
    }

    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10));
    if fresh {
        builder = builder.pool_max_idle_per_host(0);
    }
    let client = builder.build().expect("client");
    let expect = Arc::new(expect);
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let limit = Arc::new(Semaphore::new(max_in_flight.max(1)));
    // RATE 0: no pacing, as fast as MAX_IN_FLIGHT allows (1: back to back).
    let paced = rate > 0.0;
    let deadline = if paced {
        Duration::from_secs_f64(2.0 * count as f64 / rate + 30.0)
    } else {
        Duration::from_secs(120)
    };

    let cpu0 = cpu_ticks();
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(if paced {
        1.0 / rate
    } else {
        1.0
    }));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let mut sent = 0u64;
    while sent < count && start.elapsed() < deadline {
        if paced {
            tick.tick().await;
        }
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break;
        };
        sent += 1;
        let (client, url, ok, failed, expect) = (
            client.clone(),
            url.clone(),
            ok.clone(),
            failed.clone(),
            expect.clone(),
        );
        tasks.spawn(async move {
            let good = match client.get(url).send().await {
                Ok(r) if r.status().is_success() => match r.text().await {
                    Ok(body) => expect.as_deref().is_none_or(|e| body.contains(e)),
                    Err(_) => false,
                },
                _ => false,
            };
            if good { &ok } else { &failed }.fetch_add(1, Ordering::Relaxed);
            drop(permit);
        });
        // Reap finished tasks as we go so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    let left = deadline.saturating_sub(start.elapsed());
    let _ = tokio::time::timeout(left, async { while tasks.join_next().await.is_some() {} }).await;
    let secs = start.elapsed().as_secs_f64();
    let cpu_us = (cpu_ticks() - cpu0) as f64 * 1e6 / clk_tck;
    println!(
        "sent={sent} ok={} failed={} secs={secs:.2} rate={:.1} driver_cpu_us={cpu_us:.0} driver_cpu_us_per_req={:.1}",
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        sent as f64 / secs,
        cpu_us / sent.max(1) as f64,
    );
}
