//! The status as shown: one view built from the board, serialized as the
//! JSON API and rendered as the page, so the two never disagree.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::outcome::Phases;
use crate::record::board::{Board, State, Tally};
use crate::secret::Redactor;

#[derive(Debug, Serialize)]
pub struct StatusView {
    pub generated_at: DateTime<Utc>,
    pub overall: ScoreView,
    pub groups: Vec<GroupView>,
    pub checks: Vec<CheckView>,
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

pub fn build(board: &Board, redactor: &Redactor) -> StatusView {
    let checks = board
        .entries()
        .into_iter()
        .map(|e| {
            let c = &e.check;
            let auth = c.request.auth.secret().map(|s| AuthView {
                scheme: c.request.auth.scheme(),
                placement: c.request.auth.placement().unwrap_or_default(),
                key_fingerprint: s.fingerprint().to_owned(),
                secret_name: match s.origin() {
                    crate::secret::SecretOrigin::Named(n) => Some(n.clone()),
                    crate::secret::SecretOrigin::Literal => None,
                },
            });
            let last = e.last.as_deref();
            CheckView {
                name: c.name.clone(),
                group: c.group.clone(),
                state: e.state,
                method: c.request.method.to_string(),
                url: redactor.redact(c.request.url.as_str()).into_owned(),
                schedule: c.schedule.describe(),
                auth,
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
        })
        .collect();
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
    }
}
