//! Fills a lookout history database with synthetic history, for the page
//! and API benchmark (`bench/history.sh`): N checks named like the bench
//! config's (`c00001`…), each with one run per hour for DAYS days (so every
//! hourly and daily rollup row exists, as it would after DAYS days of
//! running), its newest KEEP runs every 10 s, and a state change a day.
//!
//!     cargo run --release --example bench-history -- DB N DAYS KEEP
//!
//! It writes through lookout's own store, so the schema is the real one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lookout::store::{ChangeRecord, RunRecord, Store, StorePath, StoreSettings};

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> T {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or_else(|| {
        eprintln!("usage: bench-history DB N DAYS KEEP ({what} missing or invalid)");
        std::process::exit(2)
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let db: String = arg(&args, 1, "DB");
    let n: usize = arg(&args, 2, "N");
    let days: i64 = arg(&args, 3, "DAYS");
    let keep: usize = arg(&args, 4, "KEEP");
    let store = Store::start(StoreSettings {
        path: StorePath::File(db.into()),
        retention: Duration::from_secs(30 * 24 * 3600),
        keep_results: keep,
    });
    let now = chrono::Utc::now().timestamp_millis();
    let hour = 3_600_000i64;
    let started = Instant::now();
    let mut sent = 0u64;
    for i in 1..=n {
        let name: Arc<str> = Arc::from(format!("c{i:05}"));
        let run = |at_ms: i64, ok: bool| RunRecord {
            monitor: name.clone(),
            kind: "check",
            at_ms,
            ok,
            status: Some(if ok { 200 } else { 503 }),
            duration_s: 0.002 + (at_ms % 7) as f64 / 1000.0,
            outcome: if ok { "success" } else { "status" },
            reason: (!ok).then(|| "status 503, expected 2xx".to_owned()),
            steps: None,
        };
        for h in (1..days * 24).rev() {
            // One failing hour a day.
            enqueue(&store, run(now - h * hour, h % 24 != 5), &mut sent);
        }
        for k in (0..keep as i64).rev() {
            enqueue(&store, run(now - k * 10_000, true), &mut sent);
        }
        for d in (0..days).rev() {
            for (from, to) in [("passing", "failing"), ("failing", "passing")] {
                sent += 1;
                store.change(ChangeRecord {
                    monitor: name.clone(),
                    kind: "check",
                    at_ms: now - d * 24 * hour - 19 * hour + i64::from(to == "passing") * hour,
                    from,
                    to,
                    reason: None,
                });
            }
        }
    }
    store.trim_now();
    store.shutdown();
    eprintln!(
        "bench-history: {sent} runs for {n} checks over {days} days in {:.1}s, dropped {}",
        started.elapsed().as_secs_f64(),
        store.dropped()
    );
}

/// The store drops what its queue cannot take; a filler must not, so it
/// keeps at most 20,000 records unwritten (the queue holds 65,536).
fn enqueue(store: &Store, r: RunRecord, sent: &mut u64) {
    store.run(r);
    *sent += 1;
    if *sent % 1_000 == 0 {
        while sent.saturating_sub(store.written()) > 20_000 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}
