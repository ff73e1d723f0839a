//! Where results go: metrics and the status board, and one log line when a
//! check changes state.

pub mod board;
mod exposition;
pub mod metrics;
mod series;

use std::sync::Arc;

use board::Board;
use metrics::Metrics;

use crate::config::{Check, Config};
use crate::outcome::CheckResult;

pub struct Recorder {
    pub metrics: Metrics,
    pub board: Board,
}

impl Recorder {
    pub fn new(config: &Config) -> Recorder {
        let board = Board::new(&config.checks);
        let metrics = Metrics::new(&config.checks, config.max_concurrent_probes);
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
        let reason = result.outcome.reason().map(str::to_owned);
        let (transition, tally) = self.board.update(check.id, result);
        if let Some(t) = transition {
            self.metrics.set_group(
                &check.group,
                tally.passing,
                tally.failing,
                tally.pending,
                tally.score(),
            );
            self.metrics.set_overall(self.board.overall().score());
            // One info line per state change; the reason says why it failed.
            tracing::info!(
                check = %check.name,
                group = %check.group,
                from = t.from.as_str(),
                to = t.to.as_str(),
                reason = reason.as_deref().unwrap_or(""),
                "check changed state"
            );
        }
    }

    pub fn skipped(&self, check: &Check, count: u64) {
        self.metrics.skipped(check, count);
        self.board.add_skipped(check.id, count);
        tracing::debug!(check = %check.name, count, "skipped runs: the previous run was still going");
    }
}
