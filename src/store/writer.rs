//! The store's thread: owns the connection, batches writes, trims.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, params};

use super::schema::{self, BUCKETS};
use super::{
    ChangeRecord, Msg, RunRecord, ScoreRecord, Shared, StorePath, StoreSettings, set_degraded,
};

const FLUSH_EVERY: Duration = Duration::from_secs(1);
const TRIM_EVERY: Duration = Duration::from_secs(60);
const REOPEN_EVERY: Duration = Duration::from_secs(10);
/// A batch this large is written at once, not at the next second.
const BATCH_MAX: usize = 20_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Hourly rollups are kept a little over a week (the 7-day uptime).
const HOURLY_KEEP_MS: i64 = 8 * DAY_MS;

#[derive(Default)]
struct Batch {
    runs: Vec<RunRecord>,
    changes: Vec<ChangeRecord>,
    scores: Vec<ScoreRecord>,
}

impl Batch {
    fn len(&self) -> usize {
        self.runs.len() + self.changes.len() + self.scores.len()
    }
}

struct Writer {
    settings: StoreSettings,
    shared: Arc<Shared>,
    conn: Option<Connection>,
    ids: HashMap<Arc<str>, i64>,
    seqs: HashMap<i64, i64>,
    touched: HashSet<i64>,
}

pub(super) fn run(settings: StoreSettings, rx: Receiver<Msg>, shared: Arc<Shared>) {
    let mut w = Writer {
        settings,
        shared,
        conn: None,
        ids: HashMap::new(),
        seqs: HashMap::new(),
        touched: HashSet::new(),
    };
    w.reopen();
    let mut batch = Batch::default();
    let mut next_flush = Instant::now() + FLUSH_EVERY;
    let mut next_trim = Instant::now() + TRIM_EVERY;
    let mut next_reopen = Instant::now() + REOPEN_EVERY;
    loop {
        let wait = next_flush.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(Msg::Run(r)) => batch.runs.push(r),
            Ok(Msg::Change(c)) => batch.changes.push(c),
            Ok(Msg::Score(s)) => batch.scores.push(s),
            Ok(Msg::Read(f)) => {
                // Reads see everything recorded before them.
                w.flush(&mut batch);
                f(w.conn.as_ref());
            }
            Ok(Msg::Trim) => {
                w.flush(&mut batch);
                w.trim();
            }
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => {
                w.flush(&mut batch);
                return;
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        if now >= next_flush || batch.len() >= BATCH_MAX {
            if w.conn.is_none() && now >= next_reopen {
                w.reopen();
                next_reopen = now + REOPEN_EVERY;
            }
            w.flush(&mut batch);
            next_flush = now + FLUSH_EVERY;
        }
        if now >= next_trim {
            w.trim();
            next_trim = now + TRIM_EVERY;
        }
    }
}

impl Writer {
    fn reopen(&mut self) {
        match open(&self.settings.path) {
            Ok(conn) => {
                self.conn = Some(conn);
                self.ids.clear();
                self.seqs.clear();
                set_degraded(&self.shared, None);
            }
            Err(e) => {
                self.conn = None;
                set_degraded(&self.shared, Some(e));
            }
        }
    }

    /// Writes the batch in one transaction. On failure the batch is dropped
    /// (and counted), and the store is degraded until a write succeeds.
    fn flush(&mut self, batch: &mut Batch) {
        if batch.len() == 0 {
            return;
        }
        let n = batch.len() as u64;
        let taken = std::mem::take(batch);
        let Some(conn) = self.conn.as_mut() else {
            self.shared.dropped.fetch_add(n, Ordering::Relaxed);
            return;
        };
        let result = write(
            conn,
            &taken,
            &mut self.ids,
            &mut self.seqs,
            &mut self.touched,
        );
        match result {
            Ok(()) => {
                self.shared.written.fetch_add(n, Ordering::Relaxed);
                set_degraded(&self.shared, None);
            }
            Err(e) => {
                self.shared.dropped.fetch_add(n, Ordering::Relaxed);
                // Ids and sequence numbers may be ahead of what was stored.
                self.ids.clear();
                self.seqs.clear();
                set_degraded(&self.shared, Some(format!("writing history failed: {e}")));
            }
        }
    }

    fn trim(&mut self) {
        let Some(conn) = self.conn.as_ref() else {
            return;
        };
        let now = chrono::Utc::now().timestamp_millis();
        let retention = self.settings.retention.as_millis() as i64;
        let keep = self.settings.keep_results as i64;
        let touched: Vec<i64> = self.touched.drain().collect();
        let trimmed = (|| -> rusqlite::Result<()> {
            let tx = conn.unchecked_transaction()?;
            {
                let mut del =
                    tx.prepare_cached("DELETE FROM results WHERE monitor = ?1 AND seq <= ?2")?;
                for id in touched {
                    if let Some(seq) = self.seqs.get(&id) {
                        del.execute(params![id, seq - keep])?;
                    }
                }
            }
            tx.execute(
                "DELETE FROM rollup_hour WHERE start_ms < ?1",
                params![now - HOURLY_KEEP_MS],
            )?;
            tx.execute(
                "DELETE FROM rollup_day WHERE start_ms < ?1",
                params![now - retention],
            )?;
            tx.execute(
                "DELETE FROM changes WHERE at_ms < ?1",
                params![now - retention],
            )?;
            tx.execute(
                "DELETE FROM scores WHERE at_ms < ?1",
                params![now - retention],
            )?;
            tx.commit()
        })();
        if let Err(e) = trimmed {
            set_degraded(&self.shared, Some(format!("trimming history failed: {e}")));
        }
    }
}

fn open(path: &StorePath) -> Result<Connection, String> {
    // The default place (a state directory) may not exist yet.
    if let StorePath::File(p) = path
        && let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let conn = match path {
        StorePath::Memory => Connection::open_in_memory(),
        StorePath::File(p) => Connection::open_with_flags(
            p,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        ),
    };
    let where_ = match path {
        StorePath::Memory => ":memory:".to_owned(),
        StorePath::File(p) => p.display().to_string(),
    };
    let conn = conn.map_err(|e| format!("cannot open {where_}: {e}"))?;
    schema::open_pragmas(&conn)
        .and_then(|()| schema::create(&conn))
        .map_err(|e| format!("cannot prepare {where_}: {e}"))?;
    Ok(conn)
}

fn monitor_id(
    tx: &rusqlite::Transaction<'_>,
    ids: &mut HashMap<Arc<str>, i64>,
    name: &Arc<str>,
    kind: &str,
) -> rusqlite::Result<i64> {
    if let Some(&id) = ids.get(name) {
        return Ok(id);
    }
    tx.prepare_cached("INSERT OR IGNORE INTO monitors (name, kind) VALUES (?1, ?2)")?
        .execute(params![name.as_ref(), kind])?;
    let id: i64 = tx
        .prepare_cached("SELECT id FROM monitors WHERE name = ?1")?
        .query_row(params![name.as_ref()], |r| r.get(0))?;
    ids.insert(name.clone(), id);
    Ok(id)
}

#[derive(Default)]
struct Rollup {
    runs: i64,
    ok: i64,
    duration_sum: f64,
    buckets: [i64; BUCKETS],
}

fn write(
    conn: &mut Connection,
    batch: &Batch,
    ids: &mut HashMap<Arc<str>, i64>,
    seqs: &mut HashMap<i64, i64>,
    touched: &mut HashSet<i64>,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    let mut hours: HashMap<(i64, i64), Rollup> = HashMap::new();
    let mut days: HashMap<(i64, i64), Rollup> = HashMap::new();
    for r in &batch.runs {
        let id = monitor_id(&tx, ids, &r.monitor, r.kind)?;
        let seq = match seqs.get(&id) {
            Some(s) => s + 1,
            None => {
                let max: Option<i64> = tx
                    .prepare_cached("SELECT MAX(seq) FROM results WHERE monitor = ?1")?
                    .query_row(params![id], |row| row.get(0))?;
                max.unwrap_or(0) + 1
            }
        };
        tx.prepare_cached(
            "INSERT INTO results (monitor, seq, at_ms, ok, status, duration_s, outcome, reason, steps_passed, steps_total) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            id,
            seq,
            r.at_ms,
            r.ok,
            r.status,
            r.duration_s,
            r.outcome,
            r.reason,
            r.steps.map(|s| s.0),
            r.steps.map(|s| s.1),
        ])?;
        seqs.insert(id, seq);
        touched.insert(id);
        let bucket = schema::bucket_of(r.duration_s);
        for (map, width) in [(&mut hours, HOUR_MS), (&mut days, DAY_MS)] {
            let roll = map
                .entry((id, r.at_ms - r.at_ms.rem_euclid(width)))
                .or_default();
            roll.runs += 1;
            roll.ok += i64::from(r.ok);
            roll.duration_sum += r.duration_s;
            roll.buckets[bucket] += 1;
        }
    }
    for (table, map) in [("rollup_hour", &hours), ("rollup_day", &days)] {
        let mut stmt = tx.prepare_cached(&schema::upsert_rollup_sql(table))?;
        for ((id, start), roll) in map {
            let mut values: Vec<rusqlite::types::Value> = vec![
                (*id).into(),
                (*start).into(),
                roll.runs.into(),
                roll.ok.into(),
                roll.duration_sum.into(),
            ];
            values.extend(
                roll.buckets
                    .iter()
                    .map(|&b| rusqlite::types::Value::from(b)),
            );
            stmt.execute(rusqlite::params_from_iter(values))?;
        }
    }
    for c in &batch.changes {
        let id = monitor_id(&tx, ids, &c.monitor, c.kind)?;
        tx.prepare_cached(
            "INSERT INTO changes (monitor, at_ms, from_state, to_state, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![id, c.at_ms, c.from, c.to, c.reason])?;
    }
    for s in &batch.scores {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO scores (at_ms, scope, score) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![s.at_ms, s.scope, s.score])?;
    }
    tx.commit()
}
