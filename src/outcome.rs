//! The result of one run of one check: the one plain type that metrics, the
//! status board, the API, the page and the logs all read. Nobody downstream
//! re-derives a verdict.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Why a run failed. Each value is a bounded label value on
/// `lookout_check_runs_total{outcome=...}`, so the set is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The whole probe did not finish within the check's timeout.
    Timeout,
    /// The host name did not resolve.
    Dns,
    /// The TCP connection could not be made.
    Connect,
    /// The TLS handshake failed (bad certificate, wrong host name, protocol).
    Tls,
    /// The connection broke or the target did not speak HTTP.
    Protocol,
    /// More redirects than `max_redirects`, or a redirect without a usable Location.
    Redirect,
    /// The body was larger than `max_body_bytes`.
    BodyTooLarge,
    /// The status code did not match `expect.status`.
    Status,
    /// A body expectation (`body_contains`, `body_not_contains`, `body_regex`) failed.
    Body,
    /// A JSON pointer expectation failed, or the body was not JSON.
    Json,
    /// A response header expectation failed.
    Header,
    /// Everything matched but the probe took longer than `expect.max_latency`.
    Slow,
    /// lookout itself failed while running the probe (a bug); the daemon goes on.
    Internal,
    /// A flow step's response lacked a value it was to capture.
    Capture,
    /// A flow step's request could not be built from the run's values (say,
    /// a captured value made the URL invalid); nothing was sent.
    Template,
    /// A TCP check's `expect` line never arrived.
    Query,
    /// A DNS answer did not match: the response code, the records or their count.
    Answer,
    /// A gRPC health check answered, but not SERVING (or the call failed).
    NotServing,
    /// An ICMP check lost more packets than `expect.max_loss`.
    Loss,
    /// A certificate expectation failed (expires too soon, issuer, name, TLS version).
    Certificate,
    /// lookout lacks a privilege the probe needs (ICMP without CAP_NET_RAW).
    Permission,
    /// The OAuth2 token endpoint gave no usable token; the target was not asked.
    Token,
    /// A burst (`repeat`) took longer than its `within`: the rate limit
    /// was not tested.
    Burst,
}

impl FailureKind {
    pub const ALL: [FailureKind; 23] = [
        FailureKind::Timeout,
        FailureKind::Dns,
        FailureKind::Connect,
        FailureKind::Tls,
        FailureKind::Protocol,
        FailureKind::Redirect,
        FailureKind::BodyTooLarge,
        FailureKind::Status,
        FailureKind::Body,
        FailureKind::Json,
        FailureKind::Header,
        FailureKind::Slow,
        FailureKind::Internal,
        FailureKind::Capture,
        FailureKind::Template,
        FailureKind::Query,
        FailureKind::Answer,
        FailureKind::NotServing,
        FailureKind::Loss,
        FailureKind::Certificate,
        FailureKind::Permission,
        FailureKind::Token,
        FailureKind::Burst,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::Dns => "dns",
            FailureKind::Connect => "connect",
            FailureKind::Tls => "tls",
            FailureKind::Protocol => "protocol",
            FailureKind::Redirect => "redirect",
            FailureKind::BodyTooLarge => "body_too_large",
            FailureKind::Status => "status",
            FailureKind::Body => "body",
            FailureKind::Json => "json",
            FailureKind::Header => "header",
            FailureKind::Slow => "slow",
            FailureKind::Internal => "internal",
            FailureKind::Capture => "capture",
            FailureKind::Template => "template",
            FailureKind::Query => "query",
            FailureKind::Answer => "answer",
            FailureKind::NotServing => "not_serving",
            FailureKind::Loss => "loss",
            FailureKind::Certificate => "certificate",
            FailureKind::Permission => "permission",
            FailureKind::Token => "token",
            FailureKind::Burst => "burst",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure { kind: FailureKind, reason: String },
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure { kind, .. } => kind.as_str(),
        }
    }

    /// Every value of [`Outcome::label`], success first, in the order of
    /// [`Outcome::label_index`].
    pub fn labels() -> impl Iterator<Item = &'static str> {
        std::iter::once("success").chain(FailureKind::ALL.iter().map(|k| k.as_str()))
    }

    /// The position of this outcome's label in [`Outcome::labels`], for
    /// counters kept in a fixed array.
    pub fn label_index(&self) -> usize {
        match self {
            Outcome::Success => 0,
            Outcome::Failure { kind, .. } => 1 + *kind as usize,
        }
    }

    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success)
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Success => None,
            Outcome::Failure { reason, .. } => Some(reason),
        }
    }
}

/// Time spent in each phase of the HTTP exchange, summed over redirects.
/// The names are blackbox_exporter's `probe_http_duration_seconds{phase}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Phases {
    #[serde(with = "seconds")]
    pub resolve: Duration,
    #[serde(with = "seconds")]
    pub connect: Duration,
    #[serde(with = "seconds")]
    pub tls: Duration,
    /// From the connection being ready to the response headers.
    #[serde(with = "seconds")]
    pub processing: Duration,
    /// Reading the body.
    #[serde(with = "seconds")]
    pub transfer: Duration,
}

/// `probe_http_duration_seconds{phase}` values, in [`Phases::by_name`] order.
pub const PHASE_NAMES: [&str; 5] = ["resolve", "connect", "tls", "processing", "transfer"];

impl Phases {
    pub fn by_name(&self) -> [(&'static str, Duration); 5] {
        let d = [
            self.resolve,
            self.connect,
            self.tls,
            self.processing,
            self.transfer,
        ];
        std::array::from_fn(|i| (PHASE_NAMES[i], d[i]))
    }
}

#[derive(Clone, Debug)]
pub struct CheckResult {
    pub started_at: DateTime<Utc>,
    pub duration: Duration,
    /// The final response's status, when one arrived.
    pub status: Option<u16>,
    pub outcome: Outcome,
    pub phases: Phases,
    pub redirects: u32,
    /// `notAfter` of the earliest-expiring certificate the target presented.
    pub tls_not_after: Option<DateTime<Utc>>,
    /// The handshake, for kinds that did one.
    pub tls: Option<crate::seen::TlsSeen>,
    /// What only this check's kind sees (DNS answers, ICMP replies, …).
    pub seen: crate::seen::Seen,
    pub schedule_lag: Duration,
    /// The OAuth2 token this run sent, when it is a JWT with an `exp`.
    pub fetched_credential: Option<FetchedCredential>,
    /// A burst's (`repeat`) statuses in order, `None` for an answer that
    /// never came; empty when the check is no burst. `status` is the last
    /// answer's and `duration` the whole burst's.
    pub burst: Vec<Option<u16>>,
}

/// A fetched token, as far as it may be shown: its fingerprint and when it
/// expires (its JWT `exp`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedCredential {
    /// `sha256:xxxxxxxx`.
    pub fingerprint: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// One step of one flow run.
#[derive(Clone, Debug)]
pub struct StepResult {
    pub name: String,
    pub run: StepRun,
    pub status: Option<u16>,
    pub duration: Duration,
    /// As [`CheckResult::burst`], for a step with `repeat`.
    pub burst: Vec<Option<u16>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepRun {
    Ran(Outcome),
    /// Not run: an earlier step failed, or (cleanup) a value it needs was
    /// never captured. The text says which.
    Skipped(String),
}

impl StepResult {
    pub fn passed(&self) -> bool {
        matches!(&self.run, StepRun::Ran(o) if o.is_success())
    }

    /// `lookout_flow_step_runs_total{outcome}`: success, a failure kind or skipped.
    pub fn label(&self) -> &'static str {
        match &self.run {
            StepRun::Ran(o) => o.label(),
            StepRun::Skipped(_) => "skipped",
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match &self.run {
            StepRun::Ran(o) => o.reason(),
            StepRun::Skipped(why) => Some(why),
        }
    }
}

/// One run of a flow.
#[derive(Clone, Debug)]
pub struct FlowResult {
    pub started_at: DateTime<Utc>,
    pub duration: Duration,
    pub schedule_lag: Duration,
    pub steps: Vec<StepResult>,
    pub cleanup: Vec<StepResult>,
    /// Captured values, already redacted and cut short, for the page.
    pub captured: Vec<(String, String)>,
}

impl FlowResult {
    pub fn passed_steps(&self) -> usize {
        self.steps.iter().filter(|s| s.passed()).count()
    }

    /// The first main step that did not pass, with its position (0-based).
    pub fn first_failure(&self) -> Option<(usize, &StepResult)> {
        self.steps.iter().enumerate().find(|(_, s)| !s.passed())
    }

    pub fn cleanup_failed(&self) -> bool {
        self.cleanup
            .iter()
            .any(|s| matches!(&s.run, StepRun::Ran(o) if !o.is_success()))
    }

    /// The flow as one check: it passes when every main step passes (a
    /// failed cleanup is reported with the steps, not here), and its reason
    /// names the step that broke: `step 2/4 "log-run": status 404, …`.
    pub fn summary(&self) -> CheckResult {
        let failure = self.first_failure();
        let outcome = match failure {
            None => Outcome::Success,
            Some((i, step)) => {
                let (kind, reason) = match &step.run {
                    StepRun::Ran(Outcome::Failure { kind, reason }) => (*kind, reason.as_str()),
                    // A main step is only skipped after an earlier failure,
                    // so the first non-passing one ran; be total anyway.
                    StepRun::Ran(Outcome::Success) => (FailureKind::Internal, ""),
                    StepRun::Skipped(why) => (FailureKind::Internal, why.as_str()),
                };
                Outcome::Failure {
                    kind,
                    reason: format!(
                        "step {}/{} {:?}: {reason}",
                        i + 1,
                        self.steps.len(),
                        step.name
                    ),
                }
            }
        };
        let status = failure
            .map(|(_, s)| s)
            .or(self.steps.last())
            .and_then(|s| s.status);
        CheckResult {
            started_at: self.started_at,
            duration: self.duration,
            status,
            outcome,
            phases: Phases::default(),
            redirects: 0,
            tls_not_after: None,
            tls: None,
            seen: crate::seen::Seen::None,
            schedule_lag: self.schedule_lag,
            fetched_credential: None,
            burst: Vec::new(),
        }
    }
}

pub use crate::seen::seconds;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_index_matches_labels() {
        let labels: Vec<_> = Outcome::labels().collect();
        assert_eq!(labels.len(), 1 + FailureKind::ALL.len());
        assert_eq!(labels[Outcome::Success.label_index()], "success");
        for kind in FailureKind::ALL {
            let o = Outcome::Failure {
                kind,
                reason: String::new(),
            };
            assert_eq!(labels[o.label_index()], kind.as_str());
        }
    }
}
