//! Where results go: metrics, the status board, the history store, and one
//! log line when a check or flow changes state.

pub mod board;
mod exposition;
mod flow_series;
pub mod kinds;
pub mod metrics;
mod series;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use board::{Board, Slot};
use metrics::Metrics;

use crate::config::diff::{Job, Reloaded, match_up};
use crate::config::{Check, Config, Flow, TlsSettings};
use crate::outcome::{CheckResult, FlowResult, StepRun};
use crate::store::{ChangeRecord, RunRecord, ScoreRecord, Store};

/// Where a result belongs.
struct Post<'a> {
    slot: Slot,
    name: &'a str,
    group: &'a str,
    kind: &'static str,
    steps: Option<(u32, u32)>,
}

/// The parts of the recorder that belong to one load of the config: the
/// board and the per-check series, and which check or flow sits where.
/// A reload builds a new one and swaps it in.
pub struct Layout {
    pub board: Board,
    pub checks: Vec<Arc<Check>>,
    pub flows: Vec<Arc<Flow>>,
    /// Each check's and flow's TLS settings, resolved: what a later reload
    /// compares against (an unchanged check keeps its old profile index).
    check_tls: Vec<TlsSettings>,
    flow_tls: Vec<TlsSettings>,
    pub redactor: crate::secret::Redactor,
    /// This instance's shard and location, and what the file defines in all.
    pub cluster: crate::cluster::Cluster,
    pub total: crate::config::Totals,
    check_series: series::CheckSeries,
    flow_series: flow_series::FlowSeries,
    /// By the address of the `Check` or `Flow`: a run carries its own
    /// `Arc`, so a run that a reload orphaned finds no place.
    slots: HashMap<usize, Slot>,
}

fn key<T>(item: &T) -> usize {
    std::ptr::from_ref(item) as usize
}

impl Layout {
    fn new(
        checks: Vec<Arc<Check>>,
        flows: Vec<Arc<Flow>>,
        (check_tls, flow_tls): (Vec<TlsSettings>, Vec<TlsSettings>),
        config: &Config,
    ) -> Layout {
        let slots = checks
            .iter()
            .enumerate()
            .map(|(i, c)| (key(c.as_ref()), Slot::Check(i)))
            .chain(
                flows
                    .iter()
                    .enumerate()
                    .map(|(i, f)| (key(f.as_ref()), Slot::Flow(i))),
            )
            .collect();
        Layout {
            board: Board::new(&checks, &flows),
            check_series: series::CheckSeries::new(&checks),
            flow_series: flow_series::FlowSeries::new(&flows),
            checks,
            flows,
            check_tls,
            flow_tls,
            redactor: config.redactor.clone(),
            cluster: config.cluster.clone(),
            total: config.total,
            slots,
        }
    }

    fn slot_of_check(&self, check: &Check) -> Option<usize> {
        match self.slots.get(&key(check)) {
            Some(Slot::Check(i)) => Some(*i),
            _ => None,
        }
    }

    fn slot_of_flow(&self, flow: &Flow) -> Option<usize> {
        match self.slots.get(&key(flow)) {
            Some(Slot::Flow(i)) => Some(*i),
            _ => None,
        }
    }
}

/// The board of the current config (see [`Recorder::board`]).
pub struct BoardRef(Arc<Layout>);

impl std::ops::Deref for BoardRef {
    type Target = Board;
    fn deref(&self) -> &Board {
        &self.0.board
    }
}

pub struct Recorder {
    pub metrics: Metrics,
    layout: RwLock<Arc<Layout>>,
    /// One reload at a time.
    reloading: std::sync::Mutex<()>,
    pub store: Store,
}

impl Recorder {
    pub fn new(config: &Config) -> Recorder {
        let tls = (
            config
                .checks
                .iter()
                .map(|c| config.tls_of_check(c))
                .collect(),
            config.flows.iter().map(|f| config.tls_of_flow(f)).collect(),
        );
        let layout = Layout::new(config.checks.clone(), config.flows.clone(), tls, config);
        let metrics = Metrics::new(config.max_concurrent_probes);
        for (group, tally) in layout.board.groups() {
            metrics.set_group(
                &group,
                tally.passing,
                tally.failing,
                tally.pending,
                tally.score(),
            );
        }
        Recorder {
            metrics,
            layout: RwLock::new(Arc::new(layout)),
            reloading: Default::default(),
            store: Store::start(config.store.clone()),
        }
    }

    /// The current config's layout.
    pub fn layout(&self) -> Arc<Layout> {
        self.layout
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The current config's redactor (a reload re-reads the secrets).
    pub fn redactor(&self) -> crate::secret::Redactor {
        self.layout().redactor.clone()
    }

    /// This instance's shard and location, and the file's totals.
    pub fn placement(&self) -> (crate::cluster::Cluster, crate::config::Totals) {
        let layout = self.layout();
        (layout.cluster.clone(), layout.total)
    }

    /// The current config's board.
    pub fn board(&self) -> BoardRef {
        BoardRef(self.layout())
    }

    /// The text exposition of every metric.
    pub fn render_metrics(&self) -> String {
        let layout = self.layout();
        self.metrics
            .render(&layout.check_series, &layout.flow_series)
    }

    /// Swaps in a new config's checks and flows. Unchanged ones (same
    /// definition, see `Check::same_as`) keep their `Arc` (so their
    /// schedule and in-flight runs carry on), their state, history and
    /// metric series; changed ones start afresh; removed ones disappear.
    /// Returns the checks and flows to schedule and what changed.
    pub fn reload(&self, config: &Config) -> (Vec<Arc<Check>>, Vec<Arc<Flow>>, Reloaded) {
        // Building the new layout (board, series) is the costly part, and
        // only needs the old definitions, which no result changes: done
        // before the lock, so probes keep recording meanwhile.
        let _one = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.layout();
        let mut diff = Reloaded::default();
        let (checks, check_tls, check_pairs) = match_up(
            &config.checks,
            &old.checks,
            &old.check_tls,
            |c| config.tls_of_check(c),
            &mut diff,
        );
        let (flows, flow_tls, flow_pairs) = match_up(
            &config.flows,
            &old.flows,
            &old.flow_tls,
            |f| config.tls_of_flow(f),
            &mut diff,
        );
        let layout = Layout::new(checks.clone(), flows.clone(), (check_tls, flow_tls), config);

        // Held from the copy to the swap: a result recorded meanwhile would
        // land in the old layout after its counts were copied, and be lost.
        // Reloads are one at a time, so `old` is still the current layout.
        let mut current = self.layout.write().unwrap_or_else(|p| p.into_inner());
        let old = current.clone();
        let unchanged: std::collections::HashSet<&str> =
            diff.unchanged.iter().map(Job::name).collect();
        layout
            .board
            .carry_from(&old.board, &|name| unchanged.contains(name));
        layout
            .check_series
            .carry_from(&old.check_series, &check_pairs);
        layout.flow_series.carry_from(&old.flow_series, &flow_pairs);

        let new_groups: std::collections::HashSet<String> =
            layout.board.groups().into_iter().map(|(g, _)| g).collect();
        for (group, _) in old.board.groups() {
            if !new_groups.contains(&group) {
                self.metrics.remove_group(&group);
            }
        }
        for (group, tally) in layout.board.groups() {
            self.metrics.set_group(
                &group,
                tally.passing,
                tally.failing,
                tally.pending,
                tally.score(),
            );
        }
        self.metrics.set_overall(layout.board.overall().score());
        *current = Arc::new(layout);
        (checks, flows, diff)
    }

    pub fn record(&self, check: &Arc<Check>, result: CheckResult) {
        // Held while recording, so a reload never copies a half-recorded slot.
        let layout = self.layout.read().unwrap_or_else(|p| p.into_inner());
        let Some(i) = layout.slot_of_check(check) else {
            self.discard(&check.name);
            return;
        };
        layout.check_series.observe(i, &result);
        self.metrics.observe_lag(&check.group, result.schedule_lag);
        tracing::debug!(
            check = %check.name,
            outcome = result.outcome.label(),
            status = result.status,
            duration_ms = result.duration.as_secs_f64() * 1000.0,
            "check ran"
        );
        let post = Post {
            slot: Slot::Check(i),
            name: &check.name,
            group: &check.group,
            kind: "check",
            steps: None,
        };
        self.post(&layout, post, result, None);
    }

    /// A run whose check or flow a reload changed or removed meanwhile.
    fn discard(&self, name: &str) {
        self.metrics.discarded();
        tracing::debug!(
            name,
            "a run finished after a reload changed or removed it; not recorded"
        );
    }

    pub fn record_flow(&self, flow: &Arc<Flow>, result: FlowResult) {
        let layout = self.layout.read().unwrap_or_else(|p| p.into_inner());
        let Some(i) = layout.slot_of_flow(flow) else {
            self.discard(&flow.name);
            return;
        };
        layout.flow_series.observe(i, &result);
        self.metrics.observe_lag(&flow.group, result.schedule_lag);
        let summary = result.summary();
        tracing::debug!(
            flow = %flow.name,
            outcome = summary.outcome.label(),
            steps_passed = result.passed_steps(),
            steps = result.steps.len(),
            cleanup_failed = result.cleanup_failed(),
            duration_ms = result.duration.as_secs_f64() * 1000.0,
            "flow ran"
        );
        if result.cleanup_failed() {
            // Left-over test data is worth a line even when the flow passed.
            for step in result
                .cleanup
                .iter()
                .filter(|s| s.reason().is_some() && !s.passed())
            {
                if let StepRun::Ran(_) = step.run {
                    tracing::warn!(flow = %flow.name, step = %step.name, reason = step.reason().unwrap_or(""), "cleanup step failed");
                }
            }
        }
        let post = Post {
            slot: Slot::Flow(i),
            name: &flow.name,
            group: &flow.group,
            kind: "flow",
            steps: Some((result.passed_steps() as u32, result.steps.len() as u32)),
        };
        self.post(&layout, post, summary, Some(Arc::new(result)));
    }

    /// Puts a result on the board and in the history and, when the state
    /// changed, updates the group and overall scores and logs one line.
    fn post(
        &self,
        layout: &Layout,
        p: Post<'_>,
        result: CheckResult,
        flow: Option<Arc<FlowResult>>,
    ) {
        let Post {
            slot,
            name,
            group,
            kind,
            steps,
        } = p;
        let reason = result.outcome.reason().map(str::to_owned);
        let at_ms = result.started_at.timestamp_millis();
        let monitor: Arc<str> = Arc::from(name);
        self.store.run(RunRecord {
            monitor: monitor.clone(),
            kind,
            at_ms,
            ok: result.outcome.is_success(),
            status: result.status,
            duration_s: result.duration.as_secs_f64(),
            outcome: result.outcome.label(),
            reason: reason.clone(),
            steps,
        });
        let (transition, tally) = layout.board.update(slot, result, flow);
        if let Some(t) = transition {
            self.store.change(ChangeRecord {
                monitor,
                kind,
                at_ms,
                from: t.from.as_str(),
                to: t.to.as_str(),
                reason: reason.clone(),
            });
            let overall = layout.board.overall().score();
            for (scope, score) in [
                (format!("group:{group}"), tally.score()),
                ("overall".to_owned(), overall),
            ] {
                self.store.score(ScoreRecord {
                    at_ms,
                    scope,
                    score,
                });
            }
            self.metrics.set_group(
                group,
                tally.passing,
                tally.failing,
                tally.pending,
                tally.score(),
            );
            self.metrics.set_overall(overall);
            // One info line per state change; the reason says why it failed.
            tracing::info!(
                name,
                group,
                from = t.from.as_str(),
                to = t.to.as_str(),
                reason = reason.as_deref().unwrap_or(""),
                "state changed"
            );
        }
    }

    /// Puts what the history remembers from before a restart on the board:
    /// recent runs for the sparklines, and each monitor's state and since
    /// when, so a restart does not reset "failing since".
    pub async fn restore(&self) {
        let restored = self
            .store
            .read(|conn| crate::store::query::restore(conn, board::SPARK_RUNS))
            .await;
        let history = match restored {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "no history restored");
                return;
            }
        };
        let to_time = |ms: i64| chrono::DateTime::from_timestamp_millis(ms);
        let history: std::collections::HashMap<String, board::Restored> = history
            .into_iter()
            .map(|(name, r)| {
                let recent = r
                    .runs
                    .into_iter()
                    .map(|(at_ms, ok, duration_seconds)| board::Spark {
                        at_ms,
                        ok,
                        duration_seconds,
                    })
                    .collect();
                let since = r.since_ms.and_then(to_time);
                let last_failure = r.last_failure.and_then(|(at, reason)| {
                    to_time(at).map(|since| board::Failure { since, reason })
                });
                (
                    name,
                    board::Restored {
                        recent,
                        since,
                        last_failure,
                    },
                )
            })
            .collect();
        let board = self.board();
        board.seed(&history);
        for (group, tally) in board.groups() {
            self.metrics.set_group(
                &group,
                tally.passing,
                tally.failing,
                tally.pending,
                tally.score(),
            );
        }
        self.metrics.set_overall(board.overall().score());
    }

    pub fn skipped(&self, check: &Check, count: u64) {
        let layout = self.layout.read().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = layout.slot_of_check(check) {
            layout.check_series.skipped(i, count);
            layout.board.add_skipped(Slot::Check(i), count);
        }
        tracing::debug!(check = %check.name, count, "skipped runs: the previous run was still going");
    }

    pub fn skipped_flow(&self, flow: &Flow, count: u64) {
        let layout = self.layout.read().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = layout.slot_of_flow(flow) {
            layout.flow_series.skipped(i, count);
            layout.board.add_skipped(Slot::Flow(i), count);
        }
        tracing::debug!(flow = %flow.name, count, "skipped runs: the previous run was still going");
    }
}
