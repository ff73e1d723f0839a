//! The status as shown: one view built from the board, serialized as the
//! JSON API and rendered as the page, so the two never disagree.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{Auth, Check, Flow, Step};
use crate::outcome::{FlowResult, Phases, StepResult, StepRun};
use crate::record::board::{Board, Counting, Entry, Failure, Monitor, Spark, State, Tally};
use crate::secret::Redactor;
use crate::serve::grid::{self, Grid, Verdict};
use crate::store::query::{ChangeRow, UptimeByName};

#[derive(Debug, Serialize)]
pub struct StatusView {
    pub generated_at: DateTime<Utc>,
    pub overall: ScoreView,
    pub groups: Vec<GroupView>,
    pub checks: Vec<CheckView>,
    /// The checks of each `[[checks]]` entry with a matrix or routes, as a
    /// table; with routes, which route breaks.
    pub grids: Vec<Grid<GridCell>>,
    pub flows: Vec<FlowView>,
    /// Recent state changes, newest first: what was fixed, what regressed.
    pub changes: Vec<ChangeView>,
    /// Why the history store cannot write, while it cannot.
    pub store_degraded: Option<String>,
    /// This instance's place among many; null for a lone instance.
    pub instance: Option<InstanceView>,
    /// `lookout view`: the score of each location the fleet probes from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<LocationView>,
    /// `lookout view`: where the picture came from, and whether it is current.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceView>,
}

/// One location of a fleet, as Prometheus sees it.
#[derive(Debug, Serialize)]
pub struct LocationView {
    /// `""` when the results carry no `location` label.
    pub name: String,
    #[serde(flatten)]
    pub score: ScoreView,
    /// Every check and flow fails from here while others pass: the prober's
    /// own network is down, not the targets. Its results do not vote.
    pub down: bool,
}

/// A check's or flow's last result from one location.
#[derive(Debug, Serialize)]
pub struct LocationResult {
    pub location: String,
    /// passing, failing, or down (the location's prober is cut off).
    pub state: &'static str,
    pub status_code: Option<u16>,
    pub duration_seconds: Option<f64>,
}

impl LocationResult {
    /// "edge ✓ 200"
    pub fn text(&self) -> String {
        let name = if self.location.is_empty() {
            "–"
        } else {
            &self.location
        };
        let mark = match self.state {
            "passing" => "✓",
            "failing" => "✗",
            _ => "?",
        };
        match self.status_code {
            Some(code) => format!("{name} {mark} {code}"),
            None => format!("{name} {mark}"),
        }
    }
}

/// Where `lookout view` read the picture.
#[derive(Debug, Serialize)]
pub struct SourceView {
    /// The Prometheus HTTP API's base URL.
    pub prometheus: String,
    /// When the picture shown was read.
    pub fetched_at: Option<DateTime<Utc>>,
    /// The last read failed: this is the one before it.
    pub stale: bool,
    pub error: Option<String>,
}

/// Which shard, location and replica this is, and how much of the file it runs.
#[derive(Debug, Serialize)]
pub struct InstanceView {
    /// `i/n`, counted from 0.
    pub shard: String,
    pub location: Option<String>,
    pub replica: Option<String>,
    pub checks: usize,
    pub total_checks: usize,
    pub flows: usize,
    pub total_flows: usize,
}

impl InstanceView {
    pub fn new(
        cluster: &crate::cluster::Cluster,
        total: crate::config::Totals,
        checks: usize,
        flows: usize,
    ) -> Option<InstanceView> {
        (*cluster != crate::cluster::Cluster::default()).then(|| InstanceView {
            shard: cluster.shard.to_string(),
            location: cluster.location.clone(),
            replica: cluster.replica.clone(),
            checks,
            total_checks: total.checks,
            flows,
            total_flows: total.flows,
        })
    }
}

#[derive(Debug, Serialize)]
pub struct ScoreView {
    /// Passing over checks with a result, 0..1; null before any result.
    pub score: Option<f64>,
    pub passing: u64,
    pub failing: u64,
    pub pending: u64,
    pub total: u64,
    /// The score's changes over the last 24 hours and 7 days, oldest first;
    /// the first point may be older (the value the window starts with).
    pub trend_24h: Vec<ScorePoint>,
    pub trend_7d: Vec<ScorePoint>,
    /// The score's latest change: "54.5%, +9.0 points".
    pub last_change: Option<ScoreChange>,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct ScorePoint {
    pub at_ms: i64,
    pub score: Option<f64>,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct ScoreChange {
    pub at: DateTime<Utc>,
    pub from: f64,
    pub to: f64,
    /// `(to - from) * 100`: percentage points.
    pub delta_points: f64,
}

impl ScoreView {
    /// A score of these counts, with no trend.
    pub fn of(passing: u64, failing: u64, pending: u64) -> ScoreView {
        ScoreView::from(Tally {
            passing,
            failing,
            pending,
        })
    }

    fn from(t: Tally) -> ScoreView {
        ScoreView {
            score: t.score(),
            passing: t.passing,
            failing: t.failing,
            pending: t.pending,
            total: t.total(),
            trend_24h: Vec::new(),
            trend_7d: Vec::new(),
            last_change: None,
        }
    }

    /// `points` cover 7 days (and the value they start with); the 24-hour
    /// trend is their tail.
    fn set_trend(&mut self, points: &[(i64, Option<f64>)], now_ms: i64) {
        let as_points = |p: &[(i64, Option<f64>)]| -> Vec<ScorePoint> {
            p.iter()
                .map(|&(at_ms, score)| ScorePoint { at_ms, score })
                .collect()
        };
        self.trend_7d = as_points(points);
        // The last point before the day starts, and everything after it.
        let day_from = now_ms - DAY_MS;
        let first = points
            .iter()
            .rposition(|&(at, _)| at < day_from)
            .unwrap_or(0);
        self.trend_24h = as_points(&points[first..]);
        let known: Vec<(i64, f64)> = points
            .iter()
            .filter_map(|&(at, s)| s.map(|s| (at, s)))
            .collect();
        self.last_change = match known.as_slice() {
            [.., (_, from), (at, to)] => Some(ScoreChange {
                at: DateTime::from_timestamp_millis(*at).unwrap_or_default(),
                from: *from,
                to: *to,
                delta_points: (to - from) * 100.0,
            }),
            _ => None,
        };
    }

    /// "+9.0 points since 14:02 UTC", or "" when it never changed.
    pub fn change_text(&self) -> String {
        self.last_change.map_or_else(String::new, |c| {
            format!(
                "{:+.1} points since {}",
                c.delta_points,
                c.at.format("%Y-%m-%d %H:%M UTC")
            )
        })
    }

    /// The 24-hour trend as an inline SVG (numbers only).
    pub fn trend_svg(&self, now_ms: i64) -> String {
        let points: Vec<(i64, Option<f64>)> =
            self.trend_24h.iter().map(|p| (p.at_ms, p.score)).collect();
        super::svg::trend(&points, now_ms - DAY_MS, now_ms)
    }

    /// The 7-day trend as an inline SVG.
    pub fn trend_7d_svg(&self, now_ms: i64) -> String {
        let points: Vec<(i64, Option<f64>)> =
            self.trend_7d.iter().map(|p| (p.at_ms, p.score)).collect();
        super::svg::trend(&points, now_ms - 7 * DAY_MS, now_ms)
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
    /// When the key expires (its JWT `exp`, or `expires` in `[secrets]`),
    /// and in how many whole days (negative: expired); absent if unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_expires_in_days: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct CheckView {
    pub name: String,
    pub group: String,
    pub state: State,
    /// A state change under way (`failure_threshold`/`success_threshold`):
    /// `{towards: "failing", runs: 2, of: 3}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counting: Option<Counting>,
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
    /// Share of passing runs over the last 24 hours and 7 days (whole
    /// hours), from the history store; null without runs or history.
    pub uptime_24h: Option<f64>,
    pub uptime_7d: Option<f64>,
    /// The last runs, oldest first, as the sparkline draws them.
    pub recent: Vec<Spark>,
    /// The latest failure episode (also after recovering): when it began
    /// and the reason of its latest failing run.
    pub last_failure: Option<Failure>,
    /// The detail page.
    pub link: String,
    /// `lookout view`: the last result from each location.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<LocationResult>,
    /// A burst's (`repeat`) statuses in the last run, null for an answer
    /// that never came; absent for a check that is no burst.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub burst: Vec<Option<u16>>,
}

impl CheckView {
    pub fn latency(&self) -> String {
        self.duration_seconds
            .map_or_else(String::new, |s| format!("{:.0} ms", s * 1000.0))
    }

    pub fn status_text(&self) -> String {
        self.status_code.map_or_else(String::new, |c| c.to_string())
    }

    /// The last burst's statuses: `401 401 401 401 401 429`.
    pub fn burst_text(&self) -> String {
        burst_text(&self.burst)
    }

    pub fn state_text(&self) -> &'static str {
        self.state.as_str()
    }

    /// ` (failing 2/3)` while a state change is counted, else nothing.
    pub fn counting_text(&self) -> String {
        counting_text(self.counting)
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

    pub fn sparkline(&self) -> String {
        super::svg::sparkline(&self.recent)
    }

    pub fn uptime_text(&self) -> String {
        uptime_text(self.uptime_24h, self.uptime_7d)
    }

    /// For a passing check: "last failed 2026-11-23 14:02 UTC: …".
    pub fn last_failure_text(&self) -> String {
        last_failure_text(self.state, self.last_failure.as_ref())
    }

    pub fn auth_text(&self) -> String {
        self.auth.as_ref().map_or_else(String::new, |a| {
            let expires = match (a.key_expires_at, a.key_expires_in_days) {
                (Some(at), Some(days)) => format!(
                    ", expires {} ({})",
                    at.format("%Y-%m-%d %H:%M UTC"),
                    match days {
                        ..0 => "expired".to_owned(),
                        0 => "in less than a day".to_owned(),
                        1 => "in 1 day".to_owned(),
                        n => format!("in {n} days"),
                    }
                ),
                _ => String::new(),
            };
            format!(
                "{} ({}) key {}{expires}",
                a.scheme, a.placement, a.key_fingerprint
            )
        })
    }
}

pub(crate) fn auth_view(auth: &Auth) -> Option<AuthView> {
    auth.secret().map(|s| AuthView {
        scheme: auth.scheme(),
        placement: auth.placement().unwrap_or_default(),
        key_fingerprint: s.fingerprint().to_owned(),
        secret_name: match s.origin() {
            crate::secret::SecretOrigin::Named(n) => Some(n.clone()),
            crate::secret::SecretOrigin::Literal => None,
        },
        key_expires_at: s.expiry().and_then(|e| DateTime::from_timestamp(e.at, 0)),
        key_expires_in_days: s.expiry().map(|e| {
            e.at.saturating_sub(Utc::now().timestamp())
                .div_euclid(86_400)
        }),
    })
}

pub(crate) fn check_view(c: &Check, e: &Entry, redactor: &Redactor) -> CheckView {
    let last = e.last.as_deref();
    CheckView {
        name: c.name.clone(),
        group: c.group.clone(),
        state: e.state,
        counting: e.counting(),
        method: c.probe.verb(),
        url: redactor.redact(&c.probe.address()).into_owned(),
        schedule: c.schedule.describe(),
        auth: c.probe.auth().and_then(auth_view),
        status_code: last.and_then(|r| r.status),
        duration_seconds: last.map(|r| r.duration.as_secs_f64()),
        outcome: last.map(|r| r.outcome.label()),
        reason: last.and_then(|r| r.outcome.reason().map(str::to_owned)),
        last_run: last.map(|r| r.started_at),
        since: e.since,
        phases: last.map(|r| r.phases),
        tls_not_after: last.and_then(|r| r.tls_not_after),
        skipped_runs: e.skipped,
        uptime_24h: None,
        uptime_7d: None,
        recent: e.recent.iter().copied().collect(),
        last_failure: e.last_failure.clone(),
        link: detail_link(&c.name),
        locations: Vec::new(),
        burst: last.map(|r| r.burst.clone()).unwrap_or_default(),
    }
}

const DAY_MS: i64 = 24 * 3_600_000;

/// The detail page of a check or flow; names may hold `/`, `[` or spaces.
pub fn detail_link(name: &str) -> String {
    // Everything but RFC 3986's unreserved characters is encoded.
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    format!(
        "/check/{}",
        percent_encoding::utf8_percent_encode(name, SEGMENT)
    )
}

fn last_failure_text(state: State, f: Option<&Failure>) -> String {
    match (state, f) {
        (State::Passing, Some(f)) => format!(
            "last failed {}: {}",
            f.since.format("%Y-%m-%d %H:%M UTC"),
            f.reason.as_deref().unwrap_or("no reason recorded")
        ),
        _ => String::new(),
    }
}

fn uptime_text(day: Option<f64>, week: Option<f64>) -> String {
    let pct = |u: Option<f64>| u.map_or_else(|| "–".to_owned(), |u| format!("{:.2}%", u * 100.0));
    format!("{} / {}", pct(day), pct(week))
}

/// A state change as the page and the API list it.
#[derive(Debug, Serialize)]
pub struct ChangeView {
    pub name: String,
    pub kind: String,
    pub at: DateTime<Utc>,
    pub from: String,
    pub to: String,
    pub reason: Option<String>,
    pub link: String,
}

impl ChangeView {
    pub fn from_row(row: ChangeRow) -> ChangeView {
        ChangeView {
            link: detail_link(&row.name),
            at: DateTime::from_timestamp_millis(row.at_ms).unwrap_or_default(),
            name: row.name,
            kind: row.kind,
            from: row.from,
            to: row.to,
            reason: row.reason,
        }
    }

    /// "fixed", "regressed" or "first result".
    pub fn verdict(&self) -> &'static str {
        match (self.from.as_str(), self.to.as_str()) {
            ("pending", _) => "first result",
            (_, "passing") => "fixed",
            _ => "regressed",
        }
    }

    pub fn verdict_class(&self) -> &'static str {
        match self.verdict() {
            "first result" => "first-result",
            other => other,
        }
    }

    pub fn at_text(&self) -> String {
        self.at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
    }

    pub fn reason_text(&self) -> &str {
        self.reason.as_deref().unwrap_or("")
    }
}

/// What the history store adds to the board's view.
pub struct History {
    pub uptime: std::sync::Arc<UptimeByName>,
    /// By scope (`overall`, `group:<name>`): the score's points over 7 days.
    pub scores: std::collections::HashMap<String, Vec<(i64, Option<f64>)>>,
    pub changes: Vec<ChangeRow>,
}

impl StatusView {
    pub fn apply(&mut self, h: History) {
        let up = |name: &str| h.uptime.get(name).copied().unwrap_or((None, None));
        for c in &mut self.checks {
            (c.uptime_24h, c.uptime_7d) = up(&c.name);
        }
        for f in &mut self.flows {
            (f.uptime_24h, f.uptime_7d) = up(&f.name);
        }
        let now = self.now_ms();
        if let Some(points) = h.scores.get("overall") {
            self.overall.set_trend(points, now);
        }
        for g in &mut self.groups {
            if let Some(points) = h.scores.get(&format!("group:{}", g.name)) {
                g.score.set_trend(points, now);
            }
        }
        self.changes = h.changes.into_iter().map(ChangeView::from_row).collect();
    }

    pub fn now_ms(&self) -> i64 {
        self.generated_at.timestamp_millis()
    }
}

/// A flow: the summary columns a check has, plus its steps.
#[derive(Debug, Serialize)]
pub struct FlowView {
    pub name: String,
    pub group: String,
    pub state: State,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counting: Option<Counting>,
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
    pub uptime_24h: Option<f64>,
    pub uptime_7d: Option<f64>,
    pub recent: Vec<Spark>,
    pub last_failure: Option<Failure>,
    pub link: String,
    /// `lookout view`: the last result from each location.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<LocationResult>,
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
    /// As [`CheckView::burst`], for a step with `repeat`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub burst: Vec<Option<u16>>,
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

    /// ` (failing 2/3)` while a state change is counted, else nothing.
    pub fn counting_text(&self) -> String {
        counting_text(self.counting)
    }

    pub fn reason_text(&self) -> &str {
        self.reason.as_deref().unwrap_or("")
    }

    pub fn last_run_text(&self) -> String {
        self.last_run.map_or_else(String::new, |t| {
            t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
        })
    }

    pub fn sparkline(&self) -> String {
        super::svg::sparkline(&self.recent)
    }

    pub fn uptime_text(&self) -> String {
        uptime_text(self.uptime_24h, self.uptime_7d)
    }

    pub fn last_failure_text(&self) -> String {
        last_failure_text(self.state, self.last_failure.as_ref())
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
        burst: result.map(|r| r.burst.clone()).unwrap_or_default(),
    }
}

pub(crate) fn flow_view(f: &Flow, e: &Entry, redactor: &Redactor) -> FlowView {
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
        counting: e.counting(),
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
        uptime_24h: None,
        uptime_7d: None,
        recent: e.recent.iter().copied().collect(),
        last_failure: e.last_failure.clone(),
        link: detail_link(&f.name),
        locations: Vec::new(),
    }
}

pub fn build(board: &Board, redactor: &Redactor) -> StatusView {
    let mut checks = Vec::new();
    let mut flows = Vec::new();
    let mut in_grids = Vec::new();
    for e in board.entries() {
        match &e.monitor {
            Monitor::Check(c) => {
                if c.family.is_some() {
                    in_grids.push((c.clone(), checks.len()));
                }
                checks.push(check_view(c, &e, redactor));
            }
            Monitor::Flow(f) => flows.push(flow_view(f, &e, redactor)),
        }
    }
    let grids = grid::layout(
        in_grids
            .iter()
            .map(|(c, i)| (c.as_ref(), GridCell::of(&checks[*i]))),
    );
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
        grids,
        flows,
        changes: Vec::new(),
        store_degraded: None,
        instance: None,
        locations: Vec::new(),
        source: None,
    }
}

/// A check's place in its grid: its state and what it answered.
#[derive(Debug, Serialize)]
pub struct GridCell {
    pub check: String,
    pub state: State,
    pub status_code: Option<u16>,
    /// "success" or the failure kind.
    pub outcome: Option<&'static str>,
    pub reason: Option<String>,
    /// The check's detail page.
    pub link: String,
}

impl GridCell {
    pub fn of(c: &CheckView) -> GridCell {
        GridCell {
            check: c.name.clone(),
            state: c.state,
            status_code: c.status_code,
            outcome: c.outcome,
            reason: c.reason.clone(),
            link: c.link.clone(),
        }
    }

    /// "✓ 200", "✗ 404", "✗ timeout", "…".
    pub fn text(&self) -> String {
        let mark = match self.state {
            State::Passing => "✓",
            State::Failing => "✗",
            State::Pending => return "…".to_owned(),
        };
        format!("{mark} {}", self.shown())
    }
}

impl Verdict for GridCell {
    fn passing(&self) -> Option<bool> {
        match self.state {
            State::Passing => Some(true),
            State::Failing => Some(false),
            State::Pending => None,
        }
    }

    fn shown(&self) -> String {
        match (self.status_code, self.outcome) {
            (Some(code), _) => code.to_string(),
            (None, Some(outcome)) => outcome.to_owned(),
            (None, None) => "no answer".to_owned(),
        }
    }
}

/// A burst's statuses in order, `–` for an answer that never came.
pub fn burst_text(statuses: &[Option<u16>]) -> String {
    statuses
        .iter()
        .map(|s| s.map_or_else(|| "–".to_owned(), |c| c.to_string()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn counting_text(counting: Option<Counting>) -> String {
    counting.map_or_else(String::new, |c| {
        format!(" ({} {}/{})", c.towards.as_str(), c.runs, c.of)
    })
}
