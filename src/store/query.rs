//! Reads for the page, the API, badges and reports. Each takes the store's
//! connection (see `Store::read`) and returns plain, serializable rows.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::schema::{BUCKETS, quantile};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

#[derive(Clone, Debug, Serialize)]
pub struct ResultRow {
    pub at_ms: i64,
    pub ok: bool,
    pub status: Option<u16>,
    pub duration_seconds: f64,
    pub outcome: String,
    pub reason: Option<String>,
    pub steps_passed: Option<u32>,
    pub steps_total: Option<u32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ChangeRow {
    pub name: String,
    pub kind: String,
    pub at_ms: i64,
    pub from: String,
    pub to: String,
    pub reason: Option<String>,
}

/// Passing runs over runs in a window; `None` without runs.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Window {
    pub runs: u64,
    pub passed: u64,
    pub uptime: Option<f64>,
    pub latency_p50_seconds: Option<f64>,
    pub latency_p95_seconds: Option<f64>,
    pub latency_p99_seconds: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Uptime {
    pub last_1h: Window,
    pub last_24h: Window,
    pub last_7d: Window,
    pub last_30d: Window,
}

/// The newest `limit` results of one check or flow, newest first.
pub fn recent(conn: &Connection, name: &str, limit: usize) -> rusqlite::Result<Vec<ResultRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.at_ms, r.ok, r.status, r.duration_s, r.outcome, r.reason, r.steps_passed, r.steps_total \
         FROM results r JOIN monitors m ON m.id = r.monitor \
         WHERE m.name = ?1 ORDER BY r.seq DESC LIMIT ?2",
    )?;
    stmt.query_map(params![name, limit as i64], |r| {
        Ok(ResultRow {
            at_ms: r.get(0)?,
            ok: r.get(1)?,
            status: r.get(2)?,
            duration_seconds: r.get(3)?,
            outcome: r.get(4)?,
            reason: r.get(5)?,
            steps_passed: r.get(6)?,
            steps_total: r.get(7)?,
        })
    })?
    .collect()
}

/// State changes, newest first: of one check or flow, or of all.
pub fn changes(
    conn: &Connection,
    name: Option<&str>,
    limit: usize,
) -> rusqlite::Result<Vec<ChangeRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT m.name, m.kind, c.at_ms, c.from_state, c.to_state, c.reason \
         FROM changes c JOIN monitors m ON m.id = c.monitor \
         WHERE ?1 IS NULL OR m.name = ?1 ORDER BY c.at_ms DESC, c.id DESC LIMIT ?2",
    )?;
    stmt.query_map(params![name, limit as i64], |r| {
        Ok(ChangeRow {
            name: r.get(0)?,
            kind: r.get(1)?,
            at_ms: r.get(2)?,
            from: r.get(3)?,
            to: r.get(4)?,
            reason: r.get(5)?,
        })
    })?
    .collect()
}

fn window(conn: &Connection, table: &str, monitor: i64, since_ms: i64) -> rusqlite::Result<Window> {
    let cols: Vec<String> = (0..BUCKETS).map(|i| format!("SUM(b{i})")).collect();
    let sql = format!(
        "SELECT COALESCE(SUM(runs), 0), COALESCE(SUM(ok), 0), {} FROM {table} \
         WHERE monitor = ?1 AND start_ms >= ?2",
        cols.join(", ")
    );
    conn.prepare_cached(&sql)?
        .query_row(params![monitor, since_ms], |r| {
            let runs: i64 = r.get(0)?;
            let passed: i64 = r.get(1)?;
            let mut counts = [0u64; BUCKETS];
            for (i, c) in counts.iter_mut().enumerate() {
                *c = r.get::<_, Option<i64>>(2 + i)?.unwrap_or(0).max(0) as u64;
            }
            Ok(Window {
                runs: runs as u64,
                passed: passed as u64,
                uptime: (runs > 0).then(|| passed as f64 / runs as f64),
                latency_p50_seconds: quantile(&counts, 0.5),
                latency_p95_seconds: quantile(&counts, 0.95),
                latency_p99_seconds: quantile(&counts, 0.99),
            })
        })
}

/// Uptime and latency over the last hour, day, week and 30 days. Hours and
/// days are counted in whole rollup buckets, so "24h" covers the current
/// hour and the 23 before it.
pub fn uptime(conn: &Connection, name: &str, now_ms: i64) -> rusqlite::Result<Option<Uptime>> {
    let id: Option<i64> = conn
        .prepare_cached("SELECT id FROM monitors WHERE name = ?1")?
        .query_row(params![name], |r| r.get(0))
        .optional()?;
    let Some(id) = id else {
        return Ok(None);
    };
    let hour = now_ms - now_ms.rem_euclid(HOUR_MS);
    let day = now_ms - now_ms.rem_euclid(DAY_MS);
    Ok(Some(Uptime {
        last_1h: window(conn, "rollup_hour", id, hour)?,
        last_24h: window(conn, "rollup_hour", id, hour - 23 * HOUR_MS)?,
        last_7d: window(conn, "rollup_hour", id, hour - (7 * 24 - 1) * HOUR_MS)?,
        last_30d: window(conn, "rollup_day", id, day - 29 * DAY_MS)?,
    }))
}

/// 24-hour and 7-day uptime, by check or flow name.
pub type UptimeByName = HashMap<String, (Option<f64>, Option<f64>)>;

/// 24-hour and 7-day uptime of every check and flow, in one pass over the
/// hourly rollups (for the page).
pub fn uptime_all(conn: &Connection, now_ms: i64) -> rusqlite::Result<UptimeByName> {
    let hour = now_ms - now_ms.rem_euclid(HOUR_MS);
    let day_from = hour - 23 * HOUR_MS;
    let week_from = hour - (7 * 24 - 1) * HOUR_MS;
    let mut stmt = conn.prepare_cached(
        "SELECT m.name, \
           SUM(CASE WHEN r.start_ms >= ?1 THEN r.runs ELSE 0 END), \
           SUM(CASE WHEN r.start_ms >= ?1 THEN r.ok ELSE 0 END), \
           SUM(r.runs), SUM(r.ok) \
         FROM rollup_hour r JOIN monitors m ON m.id = r.monitor \
         WHERE r.start_ms >= ?2 GROUP BY r.monitor",
    )?;
    let ratio = |ok: i64, runs: i64| (runs > 0).then(|| ok as f64 / runs as f64);
    stmt.query_map(params![day_from, week_from], |r| {
        let (name, dr, dok, wr, wok): (String, i64, i64, i64, i64) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
        Ok((name, (ratio(dok, dr), ratio(wok, wr))))
    })?
    .collect()
}

/// A score over time: the points since `since_ms`, preceded by the last
/// one before it (the value the window starts with).
pub fn scores(
    conn: &Connection,
    scope: &str,
    since_ms: i64,
) -> rusqlite::Result<Vec<(i64, Option<f64>)>> {
    let before: Option<(i64, Option<f64>)> = conn
        .prepare_cached(
            "SELECT at_ms, score FROM scores WHERE scope = ?1 AND at_ms < ?2 ORDER BY at_ms DESC LIMIT 1",
        )?
        .query_row(params![scope, since_ms], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let mut stmt = conn.prepare_cached(
        "SELECT at_ms, score FROM scores WHERE scope = ?1 AND at_ms >= ?2 ORDER BY at_ms",
    )?;
    let mut points: Vec<(i64, Option<f64>)> = before.into_iter().collect();
    for p in stmt.query_map(params![scope, since_ms], |r| Ok((r.get(0)?, r.get(1)?)))? {
        points.push(p?);
    }
    Ok(points)
}

/// What a restart restores per check or flow.
#[derive(Clone, Debug, Default)]
pub struct Restored {
    /// The newest runs as (at_ms, ok, duration), oldest first.
    pub runs: Vec<(i64, bool, f64)>,
    /// When its state last changed.
    pub since_ms: Option<i64>,
    /// When it last turned failing, and why.
    pub last_failure: Option<(i64, Option<String>)>,
}

pub type Restore = HashMap<String, Restored>;

pub fn restore(conn: &Connection, per: usize) -> rusqlite::Result<Restore> {
    let mut out: Restore = HashMap::new();
    let mut runs = conn.prepare(
        "SELECT m.name, r.at_ms, r.ok, r.duration_s FROM results r \
         JOIN monitors m ON m.id = r.monitor \
         JOIN (SELECT monitor, MAX(seq) AS top FROM results GROUP BY monitor) t ON t.monitor = r.monitor \
         WHERE r.seq > t.top - ?1 ORDER BY r.monitor, r.seq",
    )?;
    let rows = runs.query_map(params![per as i64], |r| {
        Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    for row in rows {
        let (name, at, ok, d) = row?;
        out.entry(name).or_default().runs.push((at, ok, d));
    }
    let mut since = conn.prepare(
        "SELECT m.name, MAX(c.at_ms) FROM changes c JOIN monitors m ON m.id = c.monitor GROUP BY c.monitor",
    )?;
    let rows = since.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (name, at) = row?;
        if let Some(e) = out.get_mut(&name) {
            e.since_ms = Some(at);
        }
    }
    let mut failed = conn.prepare(
        "SELECT m.name, c.at_ms, c.reason FROM changes c JOIN monitors m ON m.id = c.monitor \
         JOIN (SELECT monitor, MAX(id) AS id FROM changes WHERE to_state = 'failing' GROUP BY monitor) t \
         ON t.id = c.id",
    )?;
    let rows = failed.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, Option<String>>(2)?,
        ))
    })?;
    for row in rows {
        let (name, at, reason) = row?;
        if let Some(e) = out.get_mut(&name) {
            e.last_failure = Some((at, reason));
        }
    }
    Ok(out)
}
