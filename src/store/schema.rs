//! The SQLite schema and the pragmas the store runs with.
//!
//! Monitors (checks and flows) are stored by name once, and referred to by
//! a small integer. Results are kept per monitor up to a count; rollups
//! (runs, passes, duration sum and a latency histogram) are kept per hour
//! for a week and per day for the retention period, so uptime over
//! 1h/24h/7d/30d and latency percentiles never scan raw results.

use rusqlite::Connection;

/// Upper bounds (seconds) of the rollups' latency buckets; one more for +Inf.
pub const LATENCY_BOUNDS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
pub const BUCKETS: usize = LATENCY_BOUNDS.len() + 1;

pub const SCHEMA_VERSION: i64 = 1;

pub fn open_pragmas(conn: &Connection) -> rusqlite::Result<()> {
    // WAL: readers (the page, the API) never wait for the writer, and a
    // crash loses at most the last transaction, never the file.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

pub fn create(conn: &Connection) -> rusqlite::Result<()> {
    let buckets: String = (0..BUCKETS)
        .map(|i| format!(", b{i} INTEGER NOT NULL DEFAULT 0"))
        .collect();
    conn.execute_batch(&format!(
        "
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS monitors (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS results (
            monitor INTEGER NOT NULL REFERENCES monitors(id),
            seq INTEGER NOT NULL,
            at_ms INTEGER NOT NULL,
            ok INTEGER NOT NULL,
            status INTEGER,
            duration_s REAL NOT NULL,
            outcome TEXT NOT NULL,
            reason TEXT,
            steps_passed INTEGER,
            steps_total INTEGER,
            PRIMARY KEY (monitor, seq)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS changes (
            id INTEGER PRIMARY KEY,
            monitor INTEGER NOT NULL REFERENCES monitors(id),
            at_ms INTEGER NOT NULL,
            from_state TEXT NOT NULL,
            to_state TEXT NOT NULL,
            reason TEXT
        );
        CREATE INDEX IF NOT EXISTS changes_at ON changes (at_ms);
        CREATE INDEX IF NOT EXISTS changes_monitor ON changes (monitor, at_ms);
        CREATE TABLE IF NOT EXISTS scores (
            at_ms INTEGER NOT NULL,
            scope TEXT NOT NULL,
            score REAL,
            PRIMARY KEY (scope, at_ms)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS rollup_hour (
            monitor INTEGER NOT NULL REFERENCES monitors(id),
            start_ms INTEGER NOT NULL,
            runs INTEGER NOT NULL,
            ok INTEGER NOT NULL,
            duration_sum REAL NOT NULL{buckets},
            PRIMARY KEY (monitor, start_ms)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS rollup_day (
            monitor INTEGER NOT NULL REFERENCES monitors(id),
            start_ms INTEGER NOT NULL,
            runs INTEGER NOT NULL,
            ok INTEGER NOT NULL,
            duration_sum REAL NOT NULL{buckets},
            PRIMARY KEY (monitor, start_ms)
        ) WITHOUT ROWID;
        INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}');
        "
    ))
}

/// `INSERT … ON CONFLICT DO UPDATE` adding a rollup into `table`.
pub fn upsert_rollup_sql(table: &str) -> String {
    let cols: Vec<String> = (0..BUCKETS).map(|i| format!("b{i}")).collect();
    let params: Vec<String> = (0..BUCKETS).map(|i| format!("?{}", i + 6)).collect();
    let adds: Vec<String> = cols
        .iter()
        .map(|c| format!("{c} = {c} + excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO {table} (monitor, start_ms, runs, ok, duration_sum, {cols}) \
         VALUES (?1, ?2, ?3, ?4, ?5, {params}) \
         ON CONFLICT (monitor, start_ms) DO UPDATE SET runs = runs + excluded.runs, \
         ok = ok + excluded.ok, duration_sum = duration_sum + excluded.duration_sum, {adds}",
        cols = cols.join(", "),
        params = params.join(", "),
        adds = adds.join(", ")
    )
}

pub fn bucket_of(seconds: f64) -> usize {
    LATENCY_BOUNDS
        .iter()
        .position(|&b| seconds <= b)
        .unwrap_or(LATENCY_BOUNDS.len())
}

/// The latency below which `q` of the runs fell, interpolated inside the
/// bucket as `histogram_quantile` does; `None` without runs.
pub fn quantile(counts: &[u64; BUCKETS], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, &n) in counts.iter().enumerate() {
        if (below + n) as f64 >= rank && n > 0 {
            let lower = if i == 0 { 0.0 } else { LATENCY_BOUNDS[i - 1] };
            // The +Inf bucket has no upper bound: report its lower one.
            let Some(&upper) = LATENCY_BOUNDS.get(i) else {
                return Some(lower);
            };
            let into = (rank - below as f64) / n as f64;
            return Some(lower + (upper - lower) * into.clamp(0.0, 1.0));
        }
        below += n;
    }
    LATENCY_BOUNDS.last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let mut c = [0u64; BUCKETS];
        assert_eq!(quantile(&c, 0.5), None);
        // 10 runs in (0.05, 0.1], 10 in (0.1, 0.25].
        c[bucket_of(0.07)] = 10;
        c[bucket_of(0.2)] = 10;
        let p50 = quantile(&c, 0.5).unwrap();
        assert!((p50 - 0.1).abs() < 1e-9, "{p50}");
        let p95 = quantile(&c, 0.95).unwrap();
        assert!((p95 - (0.1 + 0.15 * 0.9)).abs() < 1e-9, "{p95}");
        c[BUCKETS - 1] = 100;
        assert_eq!(quantile(&c, 0.99), Some(10.0));
    }

    #[test]
    fn schema_creates_twice_and_rollups_add_up() {
        let conn = Connection::open_in_memory().unwrap();
        create(&conn).unwrap();
        create(&conn).unwrap();
        // The upsert adds into an existing hour.
        let sql = upsert_rollup_sql("rollup_hour");
        conn.execute(
            "INSERT INTO monitors (id, name, kind) VALUES (1, 'a', 'check')",
            [],
        )
        .unwrap();
        for _ in 0..2 {
            let mut values = vec![1i64, 0, 3, 2, 1];
            values.extend([1i64; BUCKETS]);
            conn.execute(&sql, rusqlite::params_from_iter(values))
                .unwrap();
        }
        let (runs, ok, b0): (i64, i64, i64) = conn
            .query_row("SELECT runs, ok, b0 FROM rollup_hour", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!((runs, ok, b0), (6, 4, 2));
    }
}
