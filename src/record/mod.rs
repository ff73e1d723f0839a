//! Where results go: metrics and the status board, and one log line when a
//! check changes state.

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

pub struct Recorder {
    pub metrics: Metrics,
    pub board: Board,
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
        Recorder { metrics, board }
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
        self.post(
            Slot::Check(check.id),
            &check.name,
            &check.group,
            result,
            None,
        );
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
        let slot = Slot::Flow(flow.id);
        self.post(
            slot,
            &flow.name,
            &flow.group,
            summary,
            Some(Arc::new(result)),
        );
    }

    /// Puts a result on the board and, when the state changed, updates the
    /// group and overall scores and logs one line.
    fn post(
        &self,
        slot: Slot,
        name: &str,
        group: &str,
        result: CheckResult,
        flow: Option<Arc<FlowResult>>,
    ) {
        let reason = result.outcome.reason().map(str::to_owned);
        let (transition, tally) = self.board.update(slot, result, flow);
        if let Some(t) = transition {
            self.metrics.set_group(
                group,
                tally.passing,
                tally.failing,
                tally.pending,
                tally.score(),
            );
            self.metrics.set_overall(self.board.overall().score());
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
