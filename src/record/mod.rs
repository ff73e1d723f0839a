//! Where results go: metrics, the status board, the history store, and one
//! log line when a check or flow changes state.

pub mod board;
mod exposition;
mod flow_series;
pub mod metrics;
mod series;

use std::sync::Arc;

use board::{Board, Slot};
use metrics::Metrics;

use crate::config::{Check, Config, Flow};
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

pub struct Recorder {
    pub metrics: Metrics,
    pub board: Board,
    pub store: Store,
}

impl Recorder {
    pub fn new(config: &Config) -> Recorder {
        let board = Board::new(&config.checks, &config.flows);
        let metrics = Metrics::new(&config.checks, &config.flows, config.max_concurrent_probes);
        for (group, tally) in board.groups() {
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
            board,
            store: Store::start(config.store.clone()),
        }
    }

    pub fn record(&self, check: &Arc<Check>, result: CheckResult) {
        self.metrics.observe(check, &result);
        tracing::debug!(
            check = %check.name,
            outcome = result.outcome.label(),
            status = result.status,
            duration_ms = result.duration.as_secs_f64() * 1000.0,
            "check ran"
        );
        let post = Post {
            slot: Slot::Check(check.id),
            name: &check.name,
            group: &check.group,
            kind: "check",
            steps: None,
        };
        self.post(post, result, None);
    }

    pub fn record_flow(&self, flow: &Arc<Flow>, result: FlowResult) {
        self.metrics.observe_flow(flow, &result);
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
            slot: Slot::Flow(flow.id),
            name: &flow.name,
            group: &flow.group,
            kind: "flow",
            steps: Some((result.passed_steps() as u32, result.steps.len() as u32)),
        };
        self.post(post, summary, Some(Arc::new(result)));
    }

    /// Puts a result on the board and in the history and, when the state
    /// changed, updates the group and overall scores and logs one line.
    fn post(&self, p: Post<'_>, result: CheckResult, flow: Option<Arc<FlowResult>>) {
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
        let (transition, tally) = self.board.update(slot, result, flow);
        if let Some(t) = transition {
            self.store.change(ChangeRecord {
                monitor,
                kind,
                at_ms,
                from: t.from.as_str(),
                to: t.to.as_str(),
                reason: reason.clone(),
            });
            let overall = self.board.overall().score();
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
        self.board.seed(&history);
        for (group, tally) in self.board.groups() {
            self.metrics.set_group(
                &group,
                tally.passing,
                tally.failing,
                tally.pending,
                tally.score(),
            );
        }
        self.metrics.set_overall(self.board.overall().score());
    }

    pub fn skipped(&self, check: &Check, count: u64) {
        self.metrics.skipped(check, count);
        self.board.add_skipped(Slot::Check(check.id), count);
        tracing::debug!(check = %check.name, count, "skipped runs: the previous run was still going");
    }

    pub fn skipped_flow(&self, flow: &Flow, count: u64) {
        self.metrics.skipped_flow(flow, count);
        self.board.add_skipped(Slot::Flow(flow.id), count);
        tracing::debug!(flow = %flow.name, count, "skipped runs: the previous run was still going");
    }
}
