//! Per-flow and per-step metric series, kept like the per-check ones (one
//! slot per flow, written straight into the exposition).

use std::sync::Arc;

use super::exposition::{Exposition, Kind, LabelSet};
use super::series::Slots;
use crate::config::Flow;
use crate::outcome::{FailureKind, FlowResult, Outcome, StepResult};

/// Success, every failure kind, then "skipped" (steps only).
const STEP_OUTCOMES: usize = 2 + FailureKind::ALL.len();
const SKIPPED: usize = STEP_OUTCOMES - 1;

fn step_outcome_labels() -> impl Iterator<Item = &'static str> {
    Outcome::labels().chain(std::iter::once("skipped"))
}

#[derive(Clone, Copy, Default)]
struct LastFlow {
    success: bool,
    duration: f64,
    passed: u64,
    started_at: f64,
}

#[derive(Clone, Copy, Default)]
struct LastStep {
    success: bool,
    status: u16,
    duration: f64,
}

#[derive(Clone, Default)]
struct FlowSlot {
    last: Option<LastFlow>,
    runs: [u64; 1 + FailureKind::ALL.len()],
    skipped: u64,
    /// Main steps, then cleanup steps, in config order.
    steps: Vec<StepSlot>,
}

#[derive(Clone, Default)]
struct StepSlot {
    last: Option<LastStep>,
    runs: [u64; STEP_OUTCOMES],
}

impl StepSlot {
    fn observe(&mut self, r: &StepResult) {
        self.last = Some(LastStep {
            success: r.passed(),
            status: r.status.unwrap_or(0),
            duration: r.duration.as_secs_f64(),
        });
        let i = match &r.run {
            crate::outcome::StepRun::Ran(o) => o.label_index(),
            crate::outcome::StepRun::Skipped(_) => SKIPPED,
        };
        self.runs[i] += 1;
    }
}

pub struct FlowSeries {
    labels: Vec<LabelSet>,
    /// Per flow, per step (main then cleanup).
    step_labels: Vec<Vec<LabelSet>>,
    /// Main steps per flow: `lookout_flow_steps`.
    totals: Vec<u64>,
    slots: Slots<FlowSlot>,
}

impl FlowSeries {
    pub fn new(flows: &[Arc<Flow>]) -> FlowSeries {
        let slots = Slots::new(flows.len());
        for (i, f) in flows.iter().enumerate() {
            slots.with(i, |s: &mut FlowSlot| {
                s.steps = vec![StepSlot::default(); f.steps.len() + f.cleanup.len()];
            });
        }
        FlowSeries {
            labels: flows
                .iter()
                .map(|f| LabelSet::new(&[("flow", &f.name), ("group", &f.group)]))
                .collect(),
            step_labels: flows
                .iter()
                .map(|f| {
                    f.steps
                        .iter()
                        .chain(&f.cleanup)
                        .map(|s| {
                            LabelSet::new(&[
                                ("flow", &f.name),
                                ("group", &f.group),
                                ("step", &s.name),
                            ])
                        })
                        .collect()
                })
                .collect(),
            totals: flows.iter().map(|f| f.steps.len() as u64).collect(),
            slots,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn observe(&self, id: usize, result: &FlowResult) {
        let summary = result.summary();
        self.slots.with(id, |slot| {
            slot.last = Some(LastFlow {
                success: summary.outcome.is_success(),
                duration: result.duration.as_secs_f64(),
                passed: result.passed_steps() as u64,
                started_at: result.started_at.timestamp_millis() as f64 / 1000.0,
            });
            slot.runs[summary.outcome.label_index()] += 1;
            for (step, r) in slot
                .steps
                .iter_mut()
                .zip(result.steps.iter().chain(&result.cleanup))
            {
                step.observe(r);
            }
        });
    }

    pub fn skipped(&self, id: usize, count: u64) {
        self.slots.with(id, |slot| slot.skipped += count);
    }

    /// Like `CheckSeries::carry_from`, for flows.
    pub fn carry_from(&self, old: &FlowSeries, pairs: &[(usize, usize)]) {
        for &(new, from) in pairs {
            if let Some(slot) = old.slots.get(from) {
                self.slots.with(new, |s| *s = slot);
            }
        }
    }

    pub fn render(&self, e: &mut Exposition) {
        let slots = self.slots.snapshot();
        let each = || self.labels.iter().zip(&slots).zip(&self.totals);
        let last = || each().filter_map(|((l, s), t)| s.last.map(|last| (l, last, *t)));
        let steps = || {
            self.step_labels
                .iter()
                .zip(&slots)
                .flat_map(|(labels, s)| labels.iter().zip(&s.steps))
        };
        let last_steps = || steps().filter_map(|(l, s)| s.last.map(|last| (l, last)));

        e.family(
            "lookout_flow_success",
            "Whether the flow's last run passed every step (1) or not (0).",
            Kind::Gauge,
            |f| last().for_each(|(l, x, _)| f.sample(l, u64::from(x.success))),
        );
        e.family(
            "lookout_flow_duration_seconds",
            "How long the flow's last run took, cleanup included.",
            Kind::Gauge,
            |f| last().for_each(|(l, x, _)| f.sample(l, x.duration)),
        );
        e.family(
            "lookout_flow_steps_passed",
            "Steps (not counting cleanup) that passed in the flow's last run.",
            Kind::Gauge,
            |f| last().for_each(|(l, x, _)| f.sample(l, x.passed)),
        );
        e.family(
            "lookout_flow_steps",
            "Steps in the flow, not counting cleanup.",
            Kind::Gauge,
            |f| each().for_each(|((l, _), t)| f.sample(l, *t)),
        );
        e.family(
            "lookout_flow_stage_score",
            "Steps passed over steps in the flow's last run (0..1).",
            Kind::Gauge,
            |f| {
                last().for_each(|(l, x, t)| f.sample(l, x.passed as f64 / t.max(1) as f64));
            },
        );
        e.family(
            "lookout_flow_last_run_timestamp_seconds",
            "Unix time at which the flow's last run started.",
            Kind::Gauge,
            |f| last().for_each(|(l, x, _)| f.sample(l, x.started_at)),
        );
        e.family(
            "lookout_flow_runs_total",
            "Flow runs by outcome: success or the failure kind of the first failing step.",
            Kind::Counter,
            |f| {
                for ((l, s), _) in each() {
                    for (outcome, &n) in Outcome::labels().zip(&s.runs) {
                        if n > 0 {
                            f.sample_with(l, "outcome", outcome, n);
                        }
                    }
                }
            },
        );
        e.family(
            "lookout_flow_skipped_runs_total",
            "Scheduled flow runs skipped because the previous run was still going.",
            Kind::Counter,
            |f| {
                for ((l, s), _) in each().filter(|((_, s), _)| s.skipped > 0) {
                    f.sample(l, s.skipped);
                }
            },
        );
        e.family(
            "lookout_flow_step_success",
            "Whether the step passed in the flow's last run (0 when it failed or was skipped).",
            Kind::Gauge,
            |f| last_steps().for_each(|(l, x)| f.sample(l, u64::from(x.success))),
        );
        e.family(
            "lookout_flow_step_status_code",
            "Status code of the step's last response (0 when none arrived or it was skipped).",
            Kind::Gauge,
            |f| last_steps().for_each(|(l, x)| f.sample(l, u64::from(x.status))),
        );
        e.family(
            "lookout_flow_step_duration_seconds",
            "How long the step took in the flow's last run (0 when skipped).",
            Kind::Gauge,
            |f| last_steps().for_each(|(l, x)| f.sample(l, x.duration)),
        );
        e.family(
            "lookout_flow_step_runs_total",
            "Step runs by outcome: success, the failure kind, or skipped.",
            Kind::Counter,
            |f| {
                for (l, s) in steps() {
                    for (outcome, &n) in step_outcome_labels().zip(&s.runs) {
                        if n > 0 {
                            f.sample_with(l, "outcome", outcome, n);
                        }
                    }
                }
            },
        );
    }
}
