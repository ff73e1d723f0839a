//! The status as shown: one view built from the board, serialized as the
//! JSON API and rendered as the page, so the two never disagree.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{Auth, Check, Flow, Step};
use crate::outcome::{FlowResult, Phases, StepResult, StepRun};
use crate::record::board::{Board, Entry, Monitor, State, Tally};
use crate::secret::Redactor;

#[derive(Debug, Serialize)]
pub struct StatusView {
    pub generated_at: DateTime<Utc>,
    pub overall: ScoreView,
    pub groups: Vec<GroupView>,
    pub checks: Vec<CheckView>,
    pub flows: Vec<FlowView>,
    /// Why the history store cannot write, while it cannot.
    pub store_degraded: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ScoreView {
    /// Passing over checks with a result, 0..1; null before any result.
    pub score: Option<f64>,
    pub passing: u64,
    pub failing: u64,
    pub pending: u64,
    pub total: u64,
}

impl ScoreView {
    fn from(t: Tally) -> ScoreView {
        ScoreView {
            score: t.score(),
            passing: t.passing,
            failing: t.failing,
            pending: t.pending,
            total: t.total(),
        }
    }

    /// "54.5%", or "–" before any result.
    pub fn percent(&self) -> String {
        self.score
            .map_or_else(|| "–".to_owned(), |s| format!("{:.1}%", s * 100.0))
    }

    /// For the page's colour: "good", "warn", "bad" or "pending".
    pub fn tone(&self) -> &'static str {
        match self.score {
            None => "pending",
            Some(s) if s >= 0.999 => "good",
            Some(s) if s >= 0.5 => "warn",
            Some(_) => "bad",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct GroupView {
    pub name: String,
    #[serde(flatten)]
    pub score: ScoreView,
}

#[derive(Debug, Serialize)]
pub struct AuthView {
    pub scheme: &'static str,
    /// Where the credential is sent, e.g. "header X-API-Key".
    pub placement: String,
    /// `sha256:…` of the key; never the key or a prefix of it.
    pub key_fingerprint: String,
    /// The `[secrets]` entry, or null for a literal value in the check.
    pub secret_name: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CheckView {
    pub name: String,
    pub group: String,
    pub state: State,
    pub method: String,
    pub url: String,
    pub schedule: String,
    pub auth: Option<AuthView>,
    pub status_code: Option<u16>,
    pub duration_seconds: Option<f64>,
    /// "success" or the failure kind.
    pub outcome: Option<&'static str>,
    pub reason: Option<String>,
    pub last_run: Option<DateTime<Utc>>,
    /// When the check entered its current state.
    pub since: Option<DateTime<Utc>>,
    pub phases: Option<Phases>,
    pub tls_not_after: Option<DateTime<Utc>>,
    pub skipped_runs: u64,
}

impl CheckView {
    pub fn latency(&self) -> String {
        self.duration_seconds
            .map_or_else(String::new, |s| format!("{:.0} ms", s * 1000.0))
    }

    pub fn status_text(&self) -> String {
        self.status_code.map_or_else(String::new, |c| c.to_string())
    }

    pub fn state_text(&self) -> &'static str {
        self.state.as_str()
    }

    pub fn last_run_text(&self) -> String {
        self.last_run.map_or_else(String::new, |t| {
            t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
        })
    }

    pub fn since_text(&self) -> String {
        self.since.map_or_else(String::new, |t| {
            t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
        })
    }

    pub fn reason_text(&self) -> &str {
        self.reason.as_deref().unwrap_or("")
    }

    pub fn auth_text(&self) -> String {
        self.auth.as_ref().map_or_else(String::new, |a| {
            format!("{} ({}) key {}", a.scheme, a.placement, a.key_fingerprint)
        })
    }
}

fn auth_view(auth: &Auth) -> Option<AuthView> {
    auth.secret().map(|s| AuthView {
        scheme: auth.scheme(),
        placement: auth.placement().unwrap_or_default(),
        key_fingerprint: s.fingerprint().to_owned(),
        secret_name: match s.origin() {
            crate::secret::SecretOrigin::Named(n) => Some(n.clone()),
            crate::secret::SecretOrigin::Literal => None,
        },
    })
}

fn check_view(c: &Check, e: &Entry, redactor: &Redactor) -> CheckView {
    let last = e.last.as_deref();
    CheckView {
        name: c.name.clone(),
        group: c.group.clone(),
        state: e.state,
        method: c.request.method.to_string(),
        url: redactor.redact(c.request.url.as_str()).into_owned(),
        schedule: c.schedule.describe(),
        auth: auth_view(&c.request.auth),
        status_code: last.and_then(|r| r.status),
        duration_seconds: last.map(|r| r.duration.as_secs_f64()),
        outcome: last.map(|r| r.outcome.label()),
        reason: last.and_then(|r| r.outcome.reason().map(str::to_owned)),
        last_run: last.map(|r| r.started_at),
        since: e.since,
        phases: last.map(|r| r.phases),
        tls_not_after: last.and_then(|r| r.tls_not_after),
        skipped_runs: e.skipped,
    }
}

/// A flow: the summary columns a check has, plus its steps.
#[derive(Debug, Serialize)]
pub struct FlowView {
    pub name: String,
    pub group: String,
    pub state: State,
    pub schedule: String,
    pub timeout_seconds: f64,
    pub duration_seconds: Option<f64>,
    /// "success" or the failure kind of the first failing step.
    pub outcome: Option<&'static str>,
    /// `step 2/4 "log-run": status 404, …`
    pub reason: Option<String>,
    pub last_run: Option<DateTime<Utc>>,
    pub since: Option<DateTime<Utc>>,
    pub skipped_runs: u64,
    /// Main steps that passed in the last run (the reports' "1/4 stages").
    pub steps_passed: Option<usize>,
    pub steps_total: usize,
    /// `steps_passed / steps_total`, 0..1.
    pub stage_score: Option<f64>,
    pub failed_step: Option<String>,
    pub cleanup_failed: bool,
    /// Values captured in the last run, redacted and cut short.
    pub captured: Vec<CapturedView>,
    pub steps: Vec<StepView>,
    pub cleanup: Vec<StepView>,
}

#[derive(Debug, Serialize)]
pub struct CapturedView {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Serialize)]
pub struct StepView {
    pub name: String,
    pub method: String,
    /// The URL template as configured (captured values not filled in).
    pub url: String,
    pub auth: Option<AuthView>,
    /// pending (no run yet), passed, failed or skipped.
    pub state: &'static str,
    /// "success", the failure kind, or "skipped".
    pub outcome: Option<&'static str>,
    pub status_code: Option<u16>,
    pub duration_seconds: Option<f64>,
    pub reason: Option<String>,
}

impl FlowView {
    pub fn stages_text(&self) -> String {
        match (self.steps_passed, self.stage_score) {
            (Some(p), Some(score)) => {
                format!("{p}/{} stages ({:.0}%)", self.steps_total, score * 100.0)
            }
            _ => format!("{} stages", self.steps_total),
        }
    }

    pub fn state_text(&self) -> &'static str {
        self.state.as_str()
    }

    pub fn reason_text(&self) -> &str {
        self.reason.as_deref().unwrap_or("")
    }

    pub fn last_run_text(&self) -> String {
        self.last_run.map_or_else(String::new, |t| {
            t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
        })
    }
}

impl StepView {
    pub fn status_text(&self) -> String {
        self.status_code.map_or_else(String::new, |c| c.to_string())
    }

    pub fn latency(&self) -> String {
        self.duration_seconds
            .map_or_else(String::new, |s| format!("{:.0} ms", s * 1000.0))
    }

    pub fn reason_text(&self) -> &str {
        self.reason.as_deref().unwrap_or("")
    }
}

fn step_view(step: &Step, result: Option<&StepResult>, redactor: &Redactor) -> StepView {
    let state = match result.map(|r| &r.run) {
        None => "pending",
        Some(StepRun::Skipped(_)) => "skipped",
        Some(StepRun::Ran(o)) if o.is_success() => "passed",
        Some(StepRun::Ran(_)) => "failed",
    };
    StepView {
        name: step.name.clone(),
        method: step.request.method.to_string(),
        url: redactor.redact(&step.request.url).into_owned(),
        auth: auth_view(&step.request.auth),
        state,
        outcome: result.map(StepResult::label),
        status_code: result.and_then(|r| r.status),
        duration_seconds: result
            .filter(|r| !matches!(r.run, StepRun::Skipped(_)))
            .map(|r| r.duration.as_secs_f64()),
        reason: result.and_then(|r| r.reason().map(str::to_owned)),
    }
}

fn flow_view(f: &Flow, e: &Entry, redactor: &Redactor) -> FlowView {
    let last = e.last.as_deref();
    let run: Option<&FlowResult> = e.flow.as_deref();
    let steps = |configured: &[Step], results: Option<&Vec<StepResult>>| -> Vec<StepView> {
        configured
            .iter()
            .enumerate()
            .map(|(i, s)| step_view(s, results.and_then(|r| r.get(i)), redactor))
            .collect()
    };
    let passed = run.map(FlowResult::passed_steps);
    FlowView {
        name: f.name.clone(),
        group: f.group.clone(),
        state: e.state,
        schedule: f.schedule.describe(),
        timeout_seconds: f.timeout.as_secs_f64(),
        duration_seconds: last.map(|r| r.duration.as_secs_f64()),
        outcome: last.map(|r| r.outcome.label()),
        reason: last.and_then(|r| r.outcome.reason().map(str::to_owned)),
        last_run: last.map(|r| r.started_at),
        since: e.since,
        skipped_runs: e.skipped,
        steps_passed: passed,
        steps_total: f.steps.len(),
        stage_score: passed.map(|p| p as f64 / f.steps.len().max(1) as f64),
        failed_step: run.and_then(|r| r.first_failure().map(|(_, s)| s.name.clone())),
        cleanup_failed: run.is_some_and(FlowResult::cleanup_failed),
        captured: run.map_or_else(Vec::new, |r| {
            r.captured
                .iter()
                .map(|(name, value)| CapturedView {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect()
        }),
        steps: steps(&f.steps, run.map(|r| &r.steps)),
        cleanup: steps(&f.cleanup, run.map(|r| &r.cleanup)),
    }
}

pub fn build(board: &Board, redactor: &Redactor) -> StatusView {
    let mut checks = Vec::new();
    let mut flows = Vec::new();
    for e in board.entries() {
        match &e.monitor {
            Monitor::Check(c) => checks.push(check_view(c, &e, redactor)),
            Monitor::Flow(f) => flows.push(flow_view(f, &e, redactor)),
        }
    }
    StatusView {
        generated_at: Utc::now(),
        overall: ScoreView::from(board.overall()),
        groups: board
            .groups()
            .into_iter()
            .map(|(name, t)| GroupView {
                name,
                score: ScoreView::from(t),
            })
            .collect(),
        checks,
        flows,
        store_degraded: None,
    }
}
