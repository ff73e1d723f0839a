//! The status board: each check's latest result and how long it has been in
//! its state, and per-group counts kept up to date as results arrive, so a
//! health score costs nothing to read.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{Check, Flow};
use crate::outcome::{CheckResult, FlowResult};
use crate::schedule::Schedule;

/// What the board tracks: a check, or a flow, which counts as one check.
#[derive(Clone, Debug)]
pub enum Monitor {
    Check(Arc<Check>),
    Flow(Arc<Flow>),
}

impl Monitor {
    pub fn name(&self) -> &str {
        match self {
            Monitor::Check(c) => &c.name,
            Monitor::Flow(f) => &f.name,
        }
    }

    pub fn group(&self) -> &str {
        match self {
            Monitor::Check(c) => &c.group,
            Monitor::Flow(f) => &f.group,
        }
    }

    pub fn thresholds(&self) -> crate::model::Thresholds {
        match self {
            Monitor::Check(c) => c.thresholds,
            Monitor::Flow(f) => f.thresholds,
        }
    }

    pub fn schedule(&self) -> &Schedule {
        match self {
            Monitor::Check(c) => &c.schedule,
            Monitor::Flow(f) => &f.schedule,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// No result yet.
    Pending,
    Passing,
    Failing,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Passing => "passing",
            State::Failing => "failing",
        }
    }
}

/// Counts of checks by state; the score is passing over checks with a result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub passing: u64,
    pub failing: u64,
    pub pending: u64,
}

impl Tally {
    /// `None` while no check has a result: an unknown score is not 0 %.
    pub fn score(&self) -> Option<f64> {
        let judged = self.passing + self.failing;
        (judged > 0).then(|| self.passing as f64 / judged as f64)
    }

    pub fn total(&self) -> u64 {
        self.passing + self.failing + self.pending
    }

    fn slot(&mut self, state: State) -> &mut u64 {
        match state {
            State::Pending => &mut self.pending,
            State::Passing => &mut self.passing,
            State::Failing => &mut self.failing,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub monitor: Monitor,
    pub state: State,
    /// For a flow, its run summed up as one check (see `FlowResult::summary`).
    pub last: Option<Arc<CheckResult>>,
    /// A flow's last run, step by step.
    pub flow: Option<Arc<FlowResult>>,
    /// When the check entered its current state.
    pub since: Option<DateTime<Utc>>,
    pub skipped: u64,
    /// The last few runs, oldest first, for the page's sparkline.
    pub recent: VecDeque<Spark>,
    /// The latest failure episode, kept after the check recovers.
    pub last_failure: Option<Failure>,
    /// Consecutive runs so far that disagree with `state`, while they have
    /// not reached the monitor's threshold ("failing 2/3").
    pub counting: u32,
}

/// A state change under way: `runs` of the `of` consecutive runs that
/// turn the monitor `towards` another state have happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Counting {
    pub towards: State,
    pub runs: u32,
    pub of: u32,
}

impl Entry {
    /// The state change this monitor is counting towards, if any.
    pub fn counting(&self) -> Option<Counting> {
        if self.counting == 0 {
            return None;
        }
        let t = self.monitor.thresholds();
        let (towards, of) = match self.state {
            State::Passing => (State::Failing, t.failure),
            State::Failing => (State::Passing, t.success),
            State::Pending => return None,
        };
        Some(Counting {
            towards,
            runs: self.counting,
            of,
        })
    }
}

/// When a check last turned failing, and the reason of its latest failing run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Failure {
    pub since: DateTime<Utc>,
    pub reason: Option<String>,
}

/// What the history store knew of a monitor before a restart.
#[derive(Clone, Debug, Default)]
pub struct Restored {
    pub recent: Vec<Spark>,
    pub since: Option<DateTime<Utc>>,
    pub last_failure: Option<Failure>,
}

/// Runs kept per check for the sparkline.
pub const SPARK_RUNS: usize = 30;

/// One run, as a sparkline draws it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spark {
    pub at_ms: i64,
    pub ok: bool,
    pub duration_seconds: f64,
}

/// The state after one more run whose own result is `raw`: a first
/// result decides at once, then it takes `failure` failing or `success`
/// passing runs in a row to change it; `counting` carries the runs so far.
fn next_state(
    state: State,
    counting: &mut u32,
    raw: State,
    thresholds: crate::model::Thresholds,
) -> State {
    match state {
        State::Pending => {
            *counting = 0;
            raw
        }
        state if state == raw => {
            *counting = 0;
            state
        }
        state => {
            *counting += 1;
            let needed = if raw == State::Failing {
                thresholds.failure
            } else {
                thresholds.success
            };
            if *counting >= needed {
                *counting = 0;
                raw
            } else {
                state
            }
        }
    }
}

/// A state change, for the log line and (later) the history.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub from: State,
    pub to: State,
}

struct Inner {
    /// Checks by [`Check::id`], then flows by [`Flow::id`].
    entries: Vec<Entry>,
    groups: BTreeMap<String, Tally>,
}

pub struct Board {
    inner: RwLock<Inner>,
    checks: usize,
}

/// A place on the board.
#[derive(Clone, Copy, Debug)]
pub enum Slot {
    Check(usize),
    Flow(usize),
}

impl Board {
    pub fn new(checks: &[Arc<Check>], flows: &[Arc<Flow>]) -> Board {
        let mut groups: BTreeMap<String, Tally> = BTreeMap::new();
        let entries = checks
            .iter()
            .map(|c| Monitor::Check(c.clone()))
            .chain(flows.iter().map(|f| Monitor::Flow(f.clone())))
            .map(|monitor| {
                groups
                    .entry(monitor.group().to_owned())
                    .or_default()
                    .pending += 1;
                Entry {
                    monitor,
                    state: State::Pending,
                    last: None,
                    flow: None,
                    since: None,
                    skipped: 0,
                    recent: VecDeque::new(),
                    last_failure: None,
                    counting: 0,
                }
            })
            .collect();
        Board {
            inner: RwLock::new(Inner { entries, groups }),
            checks: checks.len(),
        }
    }

    fn index(&self, slot: Slot) -> usize {
        match slot {
            Slot::Check(i) => i,
            Slot::Flow(i) => self.checks + i,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a result; returns the state change it caused, if any, and the
    /// group's tally after it.
    pub fn update(
        &self,
        slot: Slot,
        result: CheckResult,
        flow: Option<Arc<FlowResult>>,
    ) -> (Option<Transition>, Tally) {
        let id = self.index(slot);
        let mut inner = self.write();
        if id >= inner.entries.len() {
            return (None, Tally::default());
        }
        let raw = if result.outcome.is_success() {
            State::Passing
        } else {
            State::Failing
        };
        let started = result.started_at;
        let entry = &mut inner.entries[id];
        // The state follows the thresholds: a first result decides at once
        // (nothing to hold it against), then it takes `failure` failing or
        // `success` passing runs in a row to change it.
        let thresholds = entry.monitor.thresholds();
        // A failure episode is consecutive failing runs, whatever the state.
        let previous_failed = entry.recent.back().is_some_and(|s| !s.ok);
        let to = next_state(entry.state, &mut entry.counting, raw, thresholds);
        push_spark(
            &mut entry.recent,
            Spark {
                at_ms: started.timestamp_millis(),
                ok: raw == State::Passing,
                duration_seconds: result.duration.as_secs_f64(),
            },
        );
        let from = entry.state;
        if raw == State::Failing {
            let reason = result.outcome.reason().map(str::to_owned);
            match &mut entry.last_failure {
                Some(f) if previous_failed => f.reason = reason,
                _ => {
                    entry.last_failure = Some(Failure {
                        since: started,
                        reason,
                    })
                }
            }
        }
        entry.last = Some(Arc::new(result));
        entry.flow = flow;
        let group = entry.monitor.group().to_owned();
        if from == to {
            let tally = inner.groups.get(&group).copied().unwrap_or_default();
            return (None, tally);
        }
        entry.state = to;
        entry.since = Some(started);
        let tally = inner.groups.entry(group).or_default();
        *tally.slot(from) = tally.slot(from).saturating_sub(1);
        *tally.slot(to) += 1;
        (Some(Transition { from, to }), *tally)
    }

    /// Restores what the history knows from before a restart: each
    /// monitor's recent runs (oldest first), its state (from the newest) and
    /// since when. Only entries still pending are touched.
    pub fn seed(&self, history: &HashMap<String, Restored>) {
        let mut inner = self.write();
        let Inner { entries, groups } = &mut *inner;
        for entry in entries.iter_mut() {
            let Some(h) = history.get(entry.monitor.name()) else {
                continue;
            };
            if h.recent.is_empty() {
                continue;
            }
            if entry.state != State::Pending {
                continue;
            }
            for s in &h.recent {
                push_spark(&mut entry.recent, *s);
            }
            // The restored runs, replayed under the thresholds: a blip just
            // before a restart is still a blip after it.
            let thresholds = entry.monitor.thresholds();
            let (mut to, mut counting) = (State::Pending, 0);
            for s in &h.recent {
                let raw = if s.ok { State::Passing } else { State::Failing };
                to = next_state(to, &mut counting, raw, thresholds);
            }
            entry.state = to;
            entry.counting = counting;
            entry.since = h.since;
            entry.last_failure = h.last_failure.clone();
            let tally = groups.entry(entry.monitor.group().to_owned()).or_default();
            tally.pending = tally.pending.saturating_sub(1);
            *tally.slot(to) += 1;
        }
    }

    /// After a reload: the entries `keep` names take over their state,
    /// results and history from `old`, and the tallies follow.
    pub fn carry_from(&self, old: &Board, keep: &dyn Fn(&str) -> bool) {
        let old = old.read();
        let by_name: HashMap<&str, &Entry> =
            old.entries.iter().map(|e| (e.monitor.name(), e)).collect();
        let mut inner = self.write();
        let Inner { entries, groups } = &mut *inner;
        for entry in entries.iter_mut() {
            let name = entry.monitor.name();
            let Some(prev) = by_name.get(name).filter(|_| keep(name)) else {
                continue;
            };
            let tally = groups.entry(entry.monitor.group().to_owned()).or_default();
            *tally.slot(entry.state) = tally.slot(entry.state).saturating_sub(1);
            *tally.slot(prev.state) += 1;
            let monitor = entry.monitor.clone();
            *entry = Entry {
                monitor,
                ..(*prev).clone()
            };
        }
    }

    pub fn add_skipped(&self, slot: Slot, count: u64) {
        let id = self.index(slot);
        if let Some(entry) = self.write().entries.get_mut(id) {
            entry.skipped += count;
        }
    }

    pub fn overall(&self) -> Tally {
        self.read()
            .groups
            .values()
            .fold(Tally::default(), |mut acc, t| {
                acc.passing += t.passing;
                acc.failing += t.failing;
                acc.pending += t.pending;
                acc
            })
    }

    pub fn groups(&self) -> Vec<(String, Tally)> {
        self.read()
            .groups
            .iter()
            .map(|(g, t)| (g.clone(), *t))
            .collect()
    }

    /// One entry, by check or flow name.
    pub fn find(&self, name: &str) -> Option<Entry> {
        self.read()
            .entries
            .iter()
            .find(|e| e.monitor.name() == name)
            .cloned()
    }

    /// Every entry, in config order.
    pub fn entries(&self) -> Vec<Entry> {
        self.read().entries.clone()
    }
}

fn push_spark(recent: &mut VecDeque<Spark>, s: Spark) {
    if recent.len() == SPARK_RUNS {
        recent.pop_front();
    }
    recent.push_back(s);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeZone;

    use super::*;
    use crate::outcome::{FailureKind, Outcome, Phases};

    fn result(minute: u32, ok: bool) -> CheckResult {
        CheckResult {
            started_at: Utc.with_ymd_and_hms(2026, 11, 23, 10, minute, 0).unwrap(),
            duration: Duration::from_millis(10),
            status: Some(if ok { 200 } else { 502 }),
            outcome: if ok {
                Outcome::Success
            } else {
                Outcome::Failure {
                    kind: FailureKind::Status,
                    reason: format!("status 502 at minute {minute}"),
                }
            },
            phases: Phases::default(),
            redirects: 0,
            tls_not_after: None,
            tls: None,
            seen: Default::default(),
            schedule_lag: Duration::ZERO,
            fetched_credential: None,
            burst: Vec::new(),
        }
    }

    #[test]
    fn the_last_failure_outlives_the_recovery() {
        let cfg = crate::config::from_str(
            "[[checks]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/\"\n[store]\npath = \":memory:\"\n",
            std::path::Path::new("t.toml"),
            &|_| None,
        )
        .unwrap();
        let board = Board::new(&cfg.checks, &cfg.flows);
        let steps = [(0, true), (1, false), (2, false), (3, true), (4, true)];
        for (minute, ok) in steps {
            board.update(Slot::Check(0), result(minute, ok), None);
        }
        let e = &board.entries()[0];
        assert_eq!(e.state, State::Passing);
        let f = e.last_failure.as_ref().unwrap();
        assert_eq!(
            f.since.format("%M").to_string(),
            "01",
            "when it turned failing"
        );
        assert_eq!(
            f.reason.as_deref(),
            Some("status 502 at minute 2"),
            "its latest reason"
        );
        assert_eq!(e.recent.len(), 5);
        assert!(!e.recent[1].ok && e.recent[3].ok);
    }

    /// The state machine under thresholds: (failure, success thresholds,
    /// runs as pass/fail, the state after each run, the counting after the
    /// last, the transitions seen).
    /// name, failure and success thresholds, runs (`+` passes), the state
    /// after each, the counting after the last, state changes after the first.
    type Case = (
        &'static str,
        u32,
        u32,
        &'static str,
        &'static [State],
        Option<(State, u32, u32)>,
        usize,
    );

    #[test]
    fn thresholds_hold_the_state_through_blips() {
        use State::{Failing as F, Passing as P};
        let cases: [Case; 7] = [
            (
                "no thresholds: every change counts",
                1,
                1,
                "+-+",
                &[P, F, P],
                None,
                2,
            ),
            ("a blip does not page", 2, 1, "+-+", &[P, P, P], None, 0),
            ("two in a row do", 2, 1, "+--", &[P, P, F], None, 1),
            (
                "counting shows",
                3,
                1,
                "+--",
                &[P, P, P],
                Some((F, 2, 3)),
                0,
            ),
            (
                "flapping never settles",
                2,
                2,
                "+-+-+-",
                &[P, P, P, P, P, P],
                Some((F, 1, 2)),
                0,
            ),
            (
                "recovery needs its own run of passes",
                1,
                3,
                "-++-+++",
                &[F, F, F, F, F, F, P],
                None,
                1,
            ),
            ("a first result decides at once", 3, 3, "-", &[F], None, 0),
        ];
        for (name, failure, success, runs, states, counting, transitions) in cases {
            let cfg = crate::config::from_str(
                &format!(
                    "[[checks]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/\"\nfailure_threshold = {failure}\nsuccess_threshold = {success}\n[store]\npath = \":memory:\"\n"
                ),
                std::path::Path::new("t.toml"),
                &|_| None,
            )
            .unwrap();
            let board = Board::new(&cfg.checks, &cfg.flows);
            let mut seen = Vec::new();
            let mut changes = 0;
            for (minute, run) in runs.chars().enumerate() {
                let (change, _) =
                    board.update(Slot::Check(0), result(minute as u32, run == '+'), None);
                changes += usize::from(change.is_some());
                seen.push(board.entries()[0].state);
            }
            assert_eq!(seen, states, "{name}");
            let e = &board.entries()[0];
            assert_eq!(
                e.counting().map(|c| (c.towards, c.runs, c.of)),
                counting,
                "{name}"
            );
            // Pending → first state counts as a change too.
            assert_eq!(changes, transitions + 1, "{name}");
            // The raw runs stay in the sparkline whatever the state.
            let raw: String = e
                .recent
                .iter()
                .map(|s| if s.ok { '+' } else { '-' })
                .collect();
            assert_eq!(raw, runs, "{name}");
        }
    }

    /// A restart replays the restored runs under the thresholds: a blip
    /// before it is still only counted after it.
    #[test]
    fn a_restart_keeps_the_thresholds() {
        let cfg = crate::config::from_str(
            "[[checks]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/\"\nfailure_threshold = 3\n[store]\npath = \":memory:\"\n",
            std::path::Path::new("t.toml"),
            &|_| None,
        )
        .unwrap();
        let board = Board::new(&cfg.checks, &cfg.flows);
        let spark = |at_ms, ok| Spark {
            at_ms,
            ok,
            duration_seconds: 0.01,
        };
        let mut history = HashMap::new();
        history.insert(
            "a".to_owned(),
            Restored {
                recent: vec![spark(1, true), spark(2, true), spark(3, false)],
                since: None,
                last_failure: None,
            },
        );
        board.seed(&history);
        let e = &board.entries()[0];
        assert_eq!(e.state, State::Passing);
        assert_eq!(
            e.counting().map(|c| (c.towards, c.runs, c.of)),
            Some((State::Failing, 1, 3))
        );
        // Two more failures make three in a row.
        board.update(Slot::Check(0), result(10, false), None);
        assert_eq!(board.entries()[0].state, State::Passing);
        board.update(Slot::Check(0), result(11, false), None);
        assert_eq!(board.entries()[0].state, State::Failing);
    }
}
