//! When checks run.
//!
//! A [`Schedule`] is a cron expression in a time zone or an interval with a
//! stable per-check phase. The [`Scheduler`] owns one task per scheduled job;
//! each task sleeps until its next tick, waits for a slot under its
//! target's and the global concurrency limit ([`Limits`]), runs the job and
//! measures how late it started. A job still running when its next tick
//! comes is not started twice: the tick is skipped and reported. The
//! scheduler never does I/O itself. `lookout report` takes the same
//! [`Limits`], so a target sees no more at once from a report than from
//! the daemon.

mod cron_spec;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SubsecRound as _, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use cron_spec::CronSpec;

/// At-start runs are spread over at most this long.
pub const STARTUP_SPREAD: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub enum Schedule {
    Cron { spec: CronSpec, tz: chrono_tz::Tz },
    Interval { every: Duration, phase: Duration },
}

impl Schedule {
    /// An interval whose phase is derived from `key` (the check's name), so
    /// that many checks on the same interval are spread over it, and a check
    /// keeps its phase across restarts.
    pub fn interval(every: Duration, key: &str) -> Schedule {
        let every_ms = every.as_millis().max(1) as u64;
        let digest = Sha256::digest(key.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        let phase = Duration::from_millis(u64::from_le_bytes(first) % every_ms);
        Schedule::Interval { every, phase }
    }

    /// How long after start a job's at-start run waits: a stable share of
    /// [`STARTUP_SPREAD`] (or of the interval, when shorter) by `key`, so a
    /// large config does not fire all at once and a restart spreads the
    /// same way.
    pub fn start_delay(&self, key: &str) -> Duration {
        let spread = match self {
            Schedule::Interval { every, .. } => (*every).min(STARTUP_SPREAD),
            Schedule::Cron { .. } => STARTUP_SPREAD,
        };
        let spread_ms = spread.as_millis().max(1) as u64;
        let digest = Sha256::digest(format!("start:{key}").as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        Duration::from_millis(u64::from_le_bytes(first) % spread_ms)
    }

    /// The first tick strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron { spec, tz } => spec
                .after(&t.with_timezone(tz))
                .next()
                .map(|d| d.with_timezone(&Utc)),
            Schedule::Interval { every, phase } => {
                let (e, p) = (every.as_millis().max(1) as i64, phase.as_millis() as i64);
                let k = (t.timestamp_millis() - p).div_euclid(e) + 1;
                DateTime::from_timestamp_millis(k * e + p)
            }
        }
    }

    /// How many ticks fall in `(after, until]`, counting at most `cap`.
    pub fn ticks_between(&self, after: DateTime<Utc>, until: DateTime<Utc>, cap: u64) -> u64 {
        if until <= after {
            return 0;
        }
        match self {
            Schedule::Cron { spec, tz } => spec
                .after(&after.with_timezone(tz))
                .take_while(|t| t.with_timezone(&Utc) <= until)
                .take(cap as usize)
                .count() as u64,
            Schedule::Interval { every, phase } => {
                let (e, p) = (every.as_millis().max(1) as i64, phase.as_millis() as i64);
                let n = (until.timestamp_millis() - p).div_euclid(e)
                    - (after.timestamp_millis() - p).div_euclid(e);
                (n.max(0) as u64).min(cap)
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Schedule::Cron { spec, tz } => format!("cron \"{}\" ({tz})", spec.text),
            Schedule::Interval { every, .. } => {
                format!("every {}", humantime::format_duration(*every))
            }
        }
    }
}

/// One firing of a schedule, as the job sees it.
#[derive(Clone, Copy, Debug)]
pub struct Tick {
    pub scheduled: DateTime<Utc>,
    /// In whole milliseconds (see [`started_at`]).
    pub started: DateTime<Utc>,
    /// How late the run started: waiting for the timer and for a slot under
    /// the concurrency limit.
    pub lag: Duration,
}

impl Tick {
    /// A run starting now, unscheduled (`lookout report`).
    pub fn now() -> Tick {
        let now = started_at(Utc::now());
        Tick {
            scheduled: now,
            started: now,
            lag: Duration::ZERO,
        }
    }
}

/// `t` at the precision the history keeps, whole milliseconds: a run's
/// start time becomes its result's `started_at` and a monitor's `since`,
/// and those must be the same values in memory as after a restart, read
/// back from the store.
pub fn started_at(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(3)
}

/// The most skipped ticks counted after one overlong run; bounds the work of
/// counting a cron schedule's ticks.
const MAX_COUNTED_SKIPS: u64 = 100_000;

/// Stops one job's schedule (a run in flight finishes). Dropping it does
/// not stop the job.
#[derive(Debug)]
pub struct JobHandle {
    cancel: CancellationToken,
}

impl JobHandle {
    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

/// How many runs may go at once: at most `max_concurrent` in all, and at
/// most `max_per_target` against one target (an origin: scheme, host and
/// port). A run takes its target's slot before a global one, so runs
/// waiting on a hung target queue there and do not hold global slots that
/// other targets' checks need.
pub struct Limits {
    global: Arc<Semaphore>,
    per_target: usize,
    targets: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// The map's size after its last sweep.
    swept_at: std::sync::atomic::AtomicUsize,
}

impl Limits {
    pub fn new(max_concurrent: usize, max_per_target: usize) -> Limits {
        Limits {
            global: Arc::new(Semaphore::new(max_concurrent.max(1))),
            per_target: max_per_target.max(1),
            targets: Mutex::new(HashMap::new()),
            swept_at: Default::default(),
        }
    }

    /// The limits a run against `targets` waits for (a check has one, a
    /// flow one per distinct origin of its steps); every run against a
    /// target shares its slots.
    pub fn slot(&self, targets: impl IntoIterator<Item = String>) -> Slot {
        // Taken in one order (by name), so two runs that share targets
        // cannot each hold one the other waits for.
        let names: std::collections::BTreeSet<String> = targets.into_iter().collect();
        let per_target = self.per_target;
        let mut map = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        // Targets nobody holds a slot of any more (a reload removed their
        // checks, a /probe target came once) are forgotten, so the map
        // stays as large as what runs: swept whenever it doubled.
        if map.len()
            >= 2 * self
                .swept_at
                .load(std::sync::atomic::Ordering::Relaxed)
                .max(64)
        {
            map.retain(|_, s| Arc::strong_count(s) > 1);
            self.swept_at
                .store(map.len(), std::sync::atomic::Ordering::Relaxed);
        }
        let targets = names
            .into_iter()
            .map(|name| {
                map.entry(name)
                    .or_insert_with(|| Arc::new(Semaphore::new(per_target)))
                    .clone()
            })
            .collect();
        Slot {
            targets,
            global: self.global.clone(),
        }
    }
}

/// One run's share of [`Limits`].
#[derive(Clone, Debug)]
pub struct Slot {
    targets: Vec<Arc<Semaphore>>,
    global: Arc<Semaphore>,
}

/// Held while a run goes; dropping it frees every slot.
#[derive(Debug)]
pub struct Permits {
    _global: OwnedSemaphorePermit,
    _targets: Vec<OwnedSemaphorePermit>,
}

impl Slot {
    /// Waits for each target's slot, then a global one. `None` only if a
    /// semaphore were closed, which none ever is.
    pub async fn acquire(&self) -> Option<Permits> {
        let mut targets = Vec::with_capacity(self.targets.len());
        for t in &self.targets {
            targets.push(t.clone().acquire_owned().await.ok()?);
        }
        let global = self.global.clone().acquire_owned().await.ok()?;
        Some(Permits {
            _global: global,
            _targets: targets,
        })
    }
}

/// Owns the schedule loops. Dropping it does not stop them; call
/// [`Scheduler::shutdown`].
pub struct Scheduler {
    tracker: TaskTracker,
    cancel: CancellationToken,
    limits: Limits,
}

impl Scheduler {
    pub fn new(limits: Limits) -> Scheduler {
        Scheduler {
            tracker: TaskTracker::new(),
            cancel: CancellationToken::new(),
            limits,
        }
    }

    /// The limits every job's runs wait for.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Runs `job` on `schedule` until shutdown, and first, when `first` is
    /// set, once that long from now. `on_skip` is told how many ticks
    /// passed while a run was still going. Each run first waits for `slot`
    /// (see [`Limits`]).
    pub fn spawn<J, F>(
        &self,
        schedule: Schedule,
        first: Option<Duration>,
        slot: Slot,
        job: J,
        on_skip: impl Fn(u64) + Send + 'static,
    ) -> JobHandle
    where
        J: Fn(Tick) -> F + Send + 'static,
        F: Future<Output = ()> + Send,
    {
        // A child token: shutdown stops every job, a handle stops one.
        let cancel = self.cancel.child_token();
        let handle = JobHandle {
            cancel: cancel.clone(),
        };
        self.tracker.spawn(async move {
            let mut after = Utc::now();
            let mut first = first;
            loop {
                let next = match first.take() {
                    Some(delay) => {
                        Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default()
                    }
                    None => match schedule.next_after(after) {
                        Some(next) => next,
                        None => break,
                    },
                };
                let wait = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                let permits = tokio::select! {
                    _ = cancel.cancelled() => return,
                    permits = slot.acquire() => match permits {
                        Some(p) => p,
                        None => return, // the semaphores are never closed
                    },
                };
                // The lag from the precise clock; the start as the store keeps it.
                let now = Utc::now();
                let lag = (now - next).to_std().unwrap_or(Duration::ZERO);
                let started = started_at(now);
                // Boxed: the loop sleeps almost all the time, and a probe's
                // state is large; inline, every idle task would hold it.
                Box::pin(job(Tick {
                    scheduled: next,
                    started,
                    lag,
                }))
                .await;
                drop(permits);
                let now = Utc::now();
                let missed = schedule.ticks_between(next, now, MAX_COUNTED_SKIPS);
                if missed > 0 {
                    on_skip(missed);
                }
                // Never before `next`: a timer that fires a hair early by the
                // wall clock must not run the same tick twice.
                after = now.max(next);
            }
        });
        handle
    }

    /// Stops scheduling, lets runs in flight finish for at most `grace`, and
    /// says whether they all did.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.cancel.cancel();
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn interval_phase_is_stable_and_spread() {
        let every = Duration::from_secs(30);
        let a = Schedule::interval(every, "check-a");
        let again = Schedule::interval(every, "check-a");
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(a.next_after(t), again.next_after(t));
        let distinct: std::collections::BTreeSet<_> = (0..100)
            .map(|i| Schedule::interval(every, &format!("c{i}")).next_after(t))
            .collect();
        assert!(distinct.len() > 90, "{} distinct phases", distinct.len());
    }

    #[test]
    fn interval_ticks_are_every_apart_and_strictly_after() {
        let s = Schedule::interval(Duration::from_secs(10), "x");
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let first = s.next_after(t).unwrap();
        assert!(first > t && first <= t + chrono::Duration::seconds(10));
        assert_eq!(
            s.next_after(first).unwrap() - first,
            chrono::Duration::seconds(10)
        );
        assert_eq!(
            s.ticks_between(first, first + chrono::Duration::seconds(35), 100),
            3
        );
        assert_eq!(
            s.ticks_between(first, first + chrono::Duration::seconds(35), 2),
            2
        );
    }

    #[test]
    fn cron_respects_time_zone() {
        let spec = CronSpec::parse("0 9 * * *").unwrap();
        let s = Schedule::Cron {
            spec,
            tz: chrono_tz::Europe::Berlin,
        };
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        // 09:00 in Berlin in winter is 08:00 UTC.
        assert_eq!(
            s.next_after(t).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 1, 8, 0, 0).unwrap()
        );
    }

    #[test]
    fn start_times_are_whole_milliseconds() {
        let t = Utc.timestamp_opt(1_800_000_000, 123_456_789).unwrap();
        let s = started_at(t);
        assert_eq!(s.timestamp_subsec_nanos(), 123_000_000);
        assert_eq!(
            DateTime::from_timestamp_millis(s.timestamp_millis()),
            Some(s)
        );
        let tick = Tick::now();
        assert_eq!(tick.started.timestamp_subsec_nanos() % 1_000_000, 0);
    }

    #[tokio::test]
    async fn a_target_gets_its_share_and_the_global_limit_holds() {
        let limits = Limits::new(3, 2);
        let (a, b) = (
            limits.slot(["http://a".to_owned()]),
            limits.slot(["http://b".to_owned()]),
        );
        let a1 = a.acquire().await.unwrap();
        let _a2 = limits
            .slot(["http://a".to_owned()])
            .acquire()
            .await
            .unwrap();
        // The same target shares its two slots.
        let third = tokio::time::timeout(Duration::from_millis(50), a.acquire()).await;
        assert!(third.is_err(), "a third run against a waits");
        // Another target has its own, up to the global three.
        let _b1 = b.acquire().await.unwrap();
        let fourth = tokio::time::timeout(Duration::from_millis(50), b.acquire()).await;
        assert!(fourth.is_err(), "the global limit is 3");
        drop(a1);
        assert!(
            tokio::time::timeout(Duration::from_secs(1), b.acquire())
                .await
                .is_ok()
        );
    }

    /// A flow that calls two origins counts against both.
    #[tokio::test]
    async fn a_run_against_two_targets_takes_a_slot_of_each() {
        let limits = Limits::new(10, 1);
        let flow = limits.slot(["http://auth".to_owned(), "http://api".to_owned()]);
        let held = flow.acquire().await.unwrap();
        for target in ["http://auth", "http://api"] {
            let other = limits.slot([target.to_owned()]);
            let waited = tokio::time::timeout(Duration::from_millis(50), other.acquire()).await;
            assert!(waited.is_err(), "{target} is held by the flow");
        }
        drop(held);
        let other = limits.slot(["http://api".to_owned()]);
        assert!(
            tokio::time::timeout(Duration::from_secs(1), other.acquire())
                .await
                .is_ok()
        );
    }

    #[test]
    fn targets_nobody_holds_are_forgotten() {
        let limits = Limits::new(4, 1);
        let kept = limits.slot(["kept".to_owned()]);
        for i in 0..1000 {
            drop(limits.slot([format!("once-{i}")]));
        }
        let size = limits.targets.lock().unwrap().len();
        assert!(size <= 130, "the map is swept: {size}");
        // A target still held keeps its semaphore, so its limit holds.
        assert!(limits.targets.lock().unwrap().contains_key("kept"));
        drop(kept);
    }
}
