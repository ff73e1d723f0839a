//! `lookout report`: every check and flow run once, written up the way
//! people write their test reports by hand (an executive summary, scores by
//! group, what changed since last time, then every check and every flow
//! stage by stage).
//!
//! [`Report::build`] turns a config and one set of results ([`Once`]) into a
//! plain [`Report`]; it touches no network and no clock, so tests build one
//! from fixed results. [`markdown::render`] writes it as Markdown, and the
//! JSON format is the serde form of [`Report`] itself, which is also what
//! `--against` reads back to compute the changes.
//!
//! Every string in a [`Report`] that came from a target or a config (names,
//! URLs, reasons) has been through the config's [`Redactor`], including the
//! strings taken from a previous report; credentials appear only as their
//! fingerprint.
//!
//! # JSON format (`report_version` 1)
//!
//! ```json
//! {
//!   "report_version": 1,
//!   "generated_at": "2026-11-23T10:00:00Z",
//!   "config": "lookout.toml",
//!   "overall": { "status": "degraded", "score": 0.5454545454545454, "passing": 6, "failing": 5, "total": 11 },
//!   "groups": [ { "name": "authentication", "status": "down", "score": 0.0, "passing": 0, "failing": 1, "total": 1 } ],
//!   "checks": [ { "name": "validate-key", "group": "authentication", "ok": false, "method": "POST",
//!                 "url": "https://…", "status": 401, "duration_seconds": 0.095, "outcome": "status",
//!                 "reason": "status 401, expected 2xx: \"…\"",
//!                 "auth": { "scheme": "api_key", "placement": "header x-api-key",
//!                           "key_fingerprint": "sha256:0fbad04f", "secret_name": "platform_key" } } ],
//!   "flows": [ { "name": "model-registration", "group": "ml-platform", "ok": false, "outcome": "status",
//!                "status": 404, "duration_seconds": 0.061, "steps_passed": 1, "steps_total": 4,
//!                "stage_score": 0.25, "failed_step": "log-run", "reason": "step 2/4 \"log-run\": …",
//!                "cleanup_failed": false, "steps": [ … ], "cleanup": [ … ] } ],
//!   "comparison": null
//! }
//! ```
//!
//! - `score` is passing over total, 0 to 1, where a flow counts as one
//!   check that passes only when all its steps pass; it is `null` only when
//!   the config has nothing to run. `status` is `healthy` (score 1),
//!   `degraded` (at least 0.5), `down` (below 0.5) or `empty` (no score).
//! - `auth` is `null` for a check without a credential; `secret_name` is
//!   `null` for a literal `value`.
//! - A step's `result` is `passed`, `failed` or `skipped`; its `outcome` is
//!   `success`, a failure kind or `skipped`.
//! - `comparison` is `null` unless the report was made `--against` a
//!   previous one; see [`Comparison`]. When a report is read back as the
//!   previous one, its own `comparison` is ignored.

pub mod markdown;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{Auth, Config, Step};
use crate::outcome::{CheckResult, FlowResult, StepResult, StepRun};
use crate::run::Once;
use crate::secret::{Redactor, SecretOrigin};
use crate::serve::grid::{self, Grid, Verdict};
use crate::serve::view::{AuthView, GridCell, StatusView};

fn view_auth(a: &AuthView) -> AuthEntry {
    AuthEntry {
        scheme: a.scheme.to_owned(),
        placement: a.placement.clone(),
        key_fingerprint: a.key_fingerprint.clone(),
        secret_name: a.secret_name.clone(),
    }
}

/// The version of the JSON format written in `report_version`. It changes
/// only when a field is removed or changes meaning.
pub const REPORT_VERSION: u32 = 1;

/// A report on one run of every check and flow of a config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`REPORT_VERSION`].
    pub report_version: u32,
    pub generated_at: DateTime<Utc>,
    /// The config file, as given.
    pub config: String,
    pub overall: Score,
    /// In alphabetical order.
    pub groups: Vec<GroupScore>,
    /// In config order.
    pub checks: Vec<CheckEntry>,
    /// In config order.
    pub flows: Vec<FlowEntry>,
    /// The checks of each entry with a matrix or routes, as a table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grids: Vec<Grid<GridMark>>,
    /// The changes since a previous report, when there was one.
    #[serde(default)]
    pub comparison: Option<Comparison>,
    /// A global report (`--prometheus`): the score from each location.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<LocationScore>,
}

/// A location's own score in a global report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocationScore {
    pub name: String,
    #[serde(flatten)]
    pub score: Score,
    /// Every check fails from here while others pass: the prober is cut off.
    pub down: bool,
}

/// Passing over total, where a flow counts as one check.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub status: Health,
    /// 0 to 1; `null` when there was nothing to run.
    pub score: Option<f64>,
    pub passing: u64,
    pub failing: u64,
    pub total: u64,
}

/// What a score amounts to: the word at the top of the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Everything passed.
    Healthy,
    /// At least half passed.
    Degraded,
    /// Less than half passed.
    Down,
    /// There was nothing to run.
    Empty,
}

impl Health {
    pub fn of(score: Option<f64>) -> Health {
        match score {
            None => Health::Empty,
            Some(s) if s >= 1.0 => Health::Healthy,
            Some(s) if s >= 0.5 => Health::Degraded,
            Some(_) => Health::Down,
        }
    }

    /// "HEALTHY", "DEGRADED", "DOWN" or "EMPTY".
    pub fn as_upper(self) -> &'static str {
        match self {
            Health::Healthy => "HEALTHY",
            Health::Degraded => "DEGRADED",
            Health::Down => "DOWN",
            Health::Empty => "EMPTY",
        }
    }
}

impl Score {
    fn from_counts(passing: u64, total: u64) -> Score {
        let score = (total > 0).then(|| passing as f64 / total as f64);
        Score {
            status: Health::of(score),
            score,
            passing,
            failing: total - passing,
            total,
        }
    }

    /// "54.5%", or "–" without a score.
    pub fn percent(&self) -> String {
        percent(self.score)
    }
}

/// "54.5%", or "–" for no score.
pub fn percent(score: Option<f64>) -> String {
    score.map_or_else(|| "–".to_owned(), |s| format!("{:.1}%", s * 100.0))
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupScore {
    pub name: String,
    #[serde(flatten)]
    pub score: Score,
}

/// Which credential a request sent: never the value, only its fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthEntry {
    /// `api_key`, `bearer`, `basic` or `query`.
    pub scheme: String,
    /// Where the credential goes, e.g. `header x-api-key`.
    pub placement: String,
    /// `sha256:` and 8 hex digits of the key's SHA-256.
    pub key_fingerprint: String,
    /// The `[secrets]` entry, or `null` for a literal value.
    pub secret_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckEntry {
    pub name: String,
    pub group: String,
    pub ok: bool,
    pub method: String,
    /// The configured URL, redacted.
    pub url: String,
    /// The final response's status, when one arrived.
    pub status: Option<u16>,
    pub duration_seconds: f64,
    /// `success` or the failure kind.
    pub outcome: String,
    /// Why it failed; `null` when it passed.
    pub reason: Option<String>,
    pub auth: Option<AuthEntry>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlowEntry {
    pub name: String,
    pub group: String,
    /// Every main step passed (a failed cleanup does not change this).
    pub ok: bool,
    /// `success` or the failure kind of the first step that failed.
    pub outcome: String,
    /// The failed step's status, else the last step's.
    pub status: Option<u16>,
    /// The whole run, cleanup included.
    pub duration_seconds: f64,
    pub steps_passed: usize,
    pub steps_total: usize,
    /// `steps_passed / steps_total`: "1/4 stages" is 0.25.
    pub stage_score: f64,
    /// The first main step that did not pass.
    pub failed_step: Option<String>,
    /// `step 2/4 "log-run": …`; `null` when the flow passed.
    pub reason: Option<String>,
    pub cleanup_failed: bool,
    pub steps: Vec<StepEntry>,
    pub cleanup: Vec<StepEntry>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Passed,
    Failed,
    Skipped,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Passed => "passed",
            StepState::Failed => "failed",
            StepState::Skipped => "skipped",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepEntry {
    pub name: String,
    pub result: StepState,
    /// `success`, a failure kind or `skipped`.
    pub outcome: String,
    pub status: Option<u16>,
    pub duration_seconds: f64,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
    pub auth: Option<AuthEntry>,
}

/// How this report differs from a previous one. Checks and flows are
/// matched by kind and name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub previous_generated_at: DateTime<Utc>,
    pub previous_config: String,
    pub overall: ScoreDelta,
    /// Every group of either report, in alphabetical order.
    pub groups: Vec<GroupDelta>,
    /// Failing before, passing now.
    pub fixed: Vec<Change>,
    /// Passing before, failing now.
    pub broken: Vec<Change>,
    /// Only in this report.
    pub new: Vec<Change>,
    /// Only in the previous report.
    pub removed: Vec<Change>,
    /// Failing in both.
    pub still_failing: Vec<Change>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreDelta {
    pub previous: Option<f64>,
    pub current: Option<f64>,
    /// `(current - previous) * 100`; `null` unless both are known.
    pub delta_points: Option<f64>,
}

impl ScoreDelta {
    fn new(previous: Option<f64>, current: Option<f64>) -> ScoreDelta {
        let delta_points = previous.zip(current).map(|(p, c)| (c - p) * 100.0);
        ScoreDelta {
            previous,
            current,
            delta_points,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupDelta {
    pub name: String,
    /// Whether the group is in the previous report and in this one.
    pub in_previous: bool,
    pub in_current: bool,
    #[serde(flatten)]
    pub delta: ScoreDelta,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Check,
    Flow,
}

/// One check or flow in a comparison: how it was, and how it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub kind: Kind,
    pub name: String,
    /// The current group, or the previous one for a removed entry.
    pub group: String,
    pub before: Option<Brief>,
    pub after: Option<Brief>,
}

/// The gist of one result, for comparisons.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Brief {
    pub ok: bool,
    pub status: Option<u16>,
    pub outcome: String,
    pub reason: Option<String>,
    /// Flows only.
    pub steps_passed: Option<usize>,
    pub steps_total: Option<usize>,
}

impl Brief {
    /// The short form used in "502 → 200": the status code, else the
    /// outcome (`timeout`, `connect`, …); for flows "1/4 stages".
    pub fn short(&self) -> String {
        match (self.steps_passed, self.steps_total) {
            (Some(p), Some(t)) => format!("{p}/{t} stages"),
            _ => match self.status {
                Some(s) => s.to_string(),
                None => self.outcome.clone(),
            },
        }
    }
}

impl CheckEntry {
    fn brief(&self) -> Brief {
        Brief {
            ok: self.ok,
            status: self.status,
            outcome: self.outcome.clone(),
            reason: self.reason.clone(),
            steps_passed: None,
            steps_total: None,
        }
    }
}

impl FlowEntry {
    fn brief(&self) -> Brief {
        Brief {
            ok: self.ok,
            status: self.status,
            outcome: self.outcome.clone(),
            reason: self.reason.clone(),
            steps_passed: Some(self.steps_passed),
            steps_total: Some(self.steps_total),
        }
    }
}

impl Report {
    /// The report on `once`, a run of `config`'s checks and flows, compared
    /// with `previous` when given. Pure: no network, no clock.
    pub fn build(
        config: &Config,
        once: &Once,
        generated_at: DateTime<Utc>,
        previous: Option<&Report>,
    ) -> Report {
        let r = &config.redactor;
        let checks: Vec<CheckEntry> = once
            .checks
            .iter()
            .map(|(check, result)| check_entry(check, result, r))
            .collect();
        let flows: Vec<FlowEntry> = once
            .flows
            .iter()
            .map(|(flow, result)| flow_entry(flow, result, r))
            .collect();
        let grids = grid::layout(
            once.checks
                .iter()
                .zip(&checks)
                .map(|((check, _), entry)| (check.as_ref(), GridMark::of(entry))),
        )
        .into_iter()
        .map(|g| redact_grid(g, r))
        .collect();
        let mut tallies: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let all = checks
            .iter()
            .map(|c| (&c.group, c.ok))
            .chain(flows.iter().map(|f| (&f.group, f.ok)));
        let (mut passing, mut total) = (0, 0);
        for (group, ok) in all {
            let t = tallies.entry(group.clone()).or_default();
            t.0 += u64::from(ok);
            t.1 += 1;
            passing += u64::from(ok);
            total += 1;
        }
        let groups = tallies
            .into_iter()
            .map(|(name, (p, t))| GroupScore {
                name,
                score: Score::from_counts(p, t),
            })
            .collect();
        let mut report = Report {
            report_version: REPORT_VERSION,
            generated_at,
            config: red(r, &config.source.display().to_string()),
            overall: Score::from_counts(passing, total),
            groups,
            checks,
            flows,
            grids,
            comparison: None,
            locations: Vec::new(),
        };
        report.comparison = previous.map(|p| compare(p, &report, r));
        report
    }

    /// The global report: the fleet as `lookout view` shows it (`view` read
    /// from Prometheus), in the same form, with each location's score. A
    /// check passes unless it fails by quorum; its reason is the diagnosis
    /// ("fails from edge (404), passes from internal (200)"). `source`
    /// names where the results came from, in place of a config file.
    /// `redactor` is the config's, when there is one: text taken from the
    /// previous report is redacted again with it, as `build` does.
    pub fn from_view(
        view: &StatusView,
        source: &str,
        previous: Option<&Report>,
        redactor: &Redactor,
    ) -> Report {
        let r = redactor;
        let passed =
            |state: crate::record::board::State| state == crate::record::board::State::Passing;
        let outcome = |ok: bool| if ok { "success" } else { "quorum" }.to_owned();
        let checks = view
            .checks
            .iter()
            .filter(|c| c.state != crate::record::board::State::Pending)
            .map(|c| CheckEntry {
                name: c.name.clone(),
                group: c.group.clone(),
                ok: passed(c.state),
                method: c.method.clone(),
                url: c.url.clone(),
                status: c.status_code,
                duration_seconds: c.duration_seconds.unwrap_or(0.0),
                outcome: outcome(passed(c.state)),
                reason: c.reason.clone(),
                auth: c.auth.as_ref().map(view_auth),
            })
            .collect();
        let flows = view
            .flows
            .iter()
            .filter(|f| f.state != crate::record::board::State::Pending)
            .map(|f| FlowEntry {
                name: f.name.clone(),
                group: f.group.clone(),
                ok: passed(f.state),
                outcome: outcome(passed(f.state)),
                status: f
                    .steps
                    .iter()
                    .find(|s| s.state == "failed")
                    .and_then(|s| s.status_code),
                duration_seconds: f.duration_seconds.unwrap_or(0.0),
                steps_passed: f.steps_passed.unwrap_or(0),
                steps_total: f.steps_total,
                stage_score: f.stage_score.unwrap_or(0.0),
                failed_step: f.failed_step.clone(),
                reason: f.reason.clone(),
                cleanup_failed: false,
                steps: f
                    .steps
                    .iter()
                    .map(|s| StepEntry {
                        name: s.name.clone(),
                        result: match s.state {
                            "passed" => StepState::Passed,
                            "failed" => StepState::Failed,
                            _ => StepState::Skipped,
                        },
                        outcome: s.state.to_owned(),
                        status: s.status_code,
                        duration_seconds: s.duration_seconds.unwrap_or(0.0),
                        reason: s.reason.clone(),
                        auth: s.auth.as_ref().map(view_auth),
                    })
                    .collect(),
                cleanup: Vec::new(),
            })
            .collect();
        let score = |v: &crate::serve::view::ScoreView| {
            Score::from_counts(v.passing, v.passing + v.failing)
        };
        let mut report = Report {
            report_version: REPORT_VERSION,
            generated_at: view.generated_at,
            config: source.to_owned(),
            overall: score(&view.overall),
            groups: view
                .groups
                .iter()
                .map(|g| GroupScore {
                    name: g.name.clone(),
                    score: score(&g.score),
                })
                .collect(),
            checks,
            flows,
            grids: view.grids.iter().map(GridMark::grid_of_view).collect(),
            comparison: None,
            locations: view
                .locations
                .iter()
                .map(|l| LocationScore {
                    name: l.name.clone(),
                    score: score(&l.score),
                    down: l.down,
                })
                .collect(),
        };
        report.comparison = previous.map(|p| compare(p, &report, r));
        report
    }

    /// Reads a report written by `lookout report --format json`.
    pub fn from_json(text: &str) -> Result<Report, PreviousError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let report: Report = serde_path_to_error::deserialize(de).map_err(|e| {
            let inner = e.inner();
            let (line, column) = (inner.line(), inner.column());
            let message = inner.to_string();
            // serde_json ends its message with the place, which comes first here.
            let message = message
                .strip_suffix(&format!(" at line {line} column {column}"))
                .unwrap_or(&message)
                .to_owned();
            PreviousError::Parse {
                line,
                column,
                path: e.path().to_string(),
                message,
            }
        })?;
        if report.report_version != REPORT_VERSION {
            return Err(PreviousError::Version(report.report_version));
        }
        Ok(report)
    }

    /// Reads the previous report for `--against`.
    pub fn load(path: &Path) -> Result<Report, ReportFileError> {
        let file = path.display().to_string();
        let text = crate::file::read_to_string(path, crate::file::Kind::Report).map_err(|e| {
            ReportFileError {
                file: file.clone(),
                error: PreviousError::Read(e),
            }
        })?;
        Report::from_json(&text).map_err(|error| ReportFileError { file, error })
    }

    /// The report as pretty JSON, ending in a newline.
    pub fn to_json(&self) -> String {
        // Plain data with string keys: serializing cannot fail.
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Whether the overall score is below `threshold` (0 to 1). A report
    /// with nothing in it has no score and counts as below any threshold:
    /// nothing was verified.
    pub fn below(&self, threshold: f64) -> bool {
        match self.overall.score {
            // A hair of tolerance so 0.9 is not "below" 9/10.
            Some(s) => s + 1e-9 < threshold,
            None => true,
        }
    }
}

/// Why a previous report could not be read.
#[derive(Debug)]
pub enum PreviousError {
    Read(crate::file::ReadError),
    Parse {
        line: usize,
        column: usize,
        path: String,
        message: String,
    },
    Version(u32),
}

impl fmt::Display for PreviousError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PreviousError::Read(e) => write!(f, "cannot read the previous report: {e}"),
            PreviousError::Parse {
                line,
                column,
                path,
                message,
            } => {
                write!(f, "{line}:{column}: ")?;
                if !path.is_empty() && path != "." {
                    write!(f, "{path}: ")?;
                }
                write!(
                    f,
                    "not a lookout JSON report (write one with `lookout report --format json`): {message}"
                )
            }
            PreviousError::Version(v) => write!(
                f,
                "report_version {v} is not supported (this lookout reads version {REPORT_VERSION})"
            ),
        }
    }
}

/// A [`PreviousError`] with the file it came from.
#[derive(Debug)]
pub struct ReportFileError {
    pub file: String,
    pub error: PreviousError,
}

impl fmt::Display for ReportFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            PreviousError::Read(_) => write!(f, "{}: {}", self.file, self.error),
            _ => write!(f, "{}:{}", self.file, self.error),
        }
    }
}

impl std::error::Error for ReportFileError {}

fn red(r: &Redactor, text: &str) -> String {
    r.redact(text).into_owned()
}

fn red_opt(r: &Redactor, text: Option<&str>) -> Option<String> {
    text.map(|t| red(r, t))
}

fn auth_entry(auth: &Auth, r: &Redactor) -> Option<AuthEntry> {
    auth.secret().map(|s| AuthEntry {
        scheme: auth.scheme().to_owned(),
        placement: red(r, &auth.placement().unwrap_or_default()),
        key_fingerprint: s.fingerprint().to_owned(),
        secret_name: match s.origin() {
            SecretOrigin::Named(n) => Some(red(r, n)),
            SecretOrigin::Literal => None,
        },
    })
}

/// A check's cell in a report's grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GridMark {
    pub check: String,
    pub ok: bool,
    pub status: Option<u16>,
    /// `success` or the failure kind.
    pub outcome: String,
}

impl GridMark {
    fn of(c: &CheckEntry) -> GridMark {
        GridMark {
            check: c.name.clone(),
            ok: c.ok,
            status: c.status,
            outcome: c.outcome.clone(),
        }
    }

    /// A page's grid in a report: a check with no result yet is left out,
    /// as the report leaves it out of its checks.
    fn grid_of_view(g: &Grid<GridCell>) -> Grid<GridMark> {
        let mark = |c: &GridCell| {
            (c.state != crate::record::board::State::Pending).then(|| GridMark {
                check: c.check.clone(),
                ok: c.state == crate::record::board::State::Passing,
                status: c.status_code,
                outcome: c.outcome.unwrap_or("").to_owned(),
            })
        };
        Grid {
            title: g.title.clone(),
            group: g.group.clone(),
            row_keys: g.row_keys.clone(),
            column_key: g.column_key.clone(),
            columns: g.columns.clone(),
            routes: g.routes,
            rows: g
                .rows
                .iter()
                .map(|row| grid::Row {
                    label: row.label.clone(),
                    cells: row
                        .cells
                        .iter()
                        .map(|c| c.as_ref().and_then(mark))
                        .collect(),
                    diagnosis: row.diagnosis.clone(),
                })
                .collect(),
        }
    }
}

impl Verdict for GridMark {
    fn passing(&self) -> Option<bool> {
        Some(self.ok)
    }

    fn shown(&self) -> String {
        self.status
            .map_or_else(|| self.outcome.clone(), |s| s.to_string())
    }
}

/// A grid's text from the config (its title, matrix values), redacted
/// like the checks' names.
fn redact_grid(mut g: Grid<GridMark>, r: &Redactor) -> Grid<GridMark> {
    g.title = red(r, &g.title);
    g.group = red(r, &g.group);
    for c in &mut g.columns {
        *c = red(r, c);
    }
    for row in &mut g.rows {
        row.label = red(r, &row.label);
        row.diagnosis = red_opt(r, row.diagnosis.as_deref());
    }
    g
}

fn check_entry(check: &crate::config::Check, result: &CheckResult, r: &Redactor) -> CheckEntry {
    CheckEntry {
        name: red(r, &check.name),
        group: red(r, &check.group),
        ok: result.outcome.is_success(),
        method: check.probe.verb(),
        url: red(r, &check.probe.address()),
        status: result.status,
        duration_seconds: result.duration.as_secs_f64(),
        outcome: result.outcome.label().to_owned(),
        reason: red_opt(r, result.outcome.reason()),
        auth: check.probe.auth().and_then(|a| auth_entry(a, r)),
    }
}

fn flow_entry(flow: &crate::config::Flow, result: &FlowResult, r: &Redactor) -> FlowEntry {
    let summary = result.summary();
    let steps_total = result.steps.len();
    let steps_passed = result.passed_steps();
    FlowEntry {
        name: red(r, &flow.name),
        group: red(r, &flow.group),
        ok: summary.outcome.is_success(),
        outcome: summary.outcome.label().to_owned(),
        status: summary.status,
        duration_seconds: result.duration.as_secs_f64(),
        steps_passed,
        steps_total,
        stage_score: if steps_total == 0 {
            0.0
        } else {
            steps_passed as f64 / steps_total as f64
        },
        failed_step: result.first_failure().map(|(_, s)| red(r, &s.name)),
        reason: red_opt(r, summary.outcome.reason()),
        cleanup_failed: result.cleanup_failed(),
        steps: step_entries(&result.steps, &flow.steps, r),
        cleanup: step_entries(&result.cleanup, &flow.cleanup, r),
    }
}

/// Results matched to their configured steps by position, or by name when
/// the positions disagree.
fn step_entries(results: &[StepResult], configured: &[Step], r: &Redactor) -> Vec<StepEntry> {
    results
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let step = configured
                .get(i)
                .filter(|c| c.name == s.name)
                .or_else(|| configured.iter().find(|c| c.name == s.name));
            let result = match &s.run {
                StepRun::Ran(o) if o.is_success() => StepState::Passed,
                StepRun::Ran(_) => StepState::Failed,
                StepRun::Skipped(_) => StepState::Skipped,
            };
            StepEntry {
                name: red(r, &s.name),
                result,
                outcome: s.label().to_owned(),
                status: s.status,
                duration_seconds: s.duration.as_secs_f64(),
                reason: red_opt(r, s.reason()),
                auth: step.and_then(|c| auth_entry(&c.request.auth, r)),
            }
        })
        .collect()
}

/// One check or flow of a report, for matching across reports.
struct Item {
    group: String,
    brief: Brief,
}

fn items(report: &Report) -> Vec<((Kind, String), Item)> {
    let checks = report.checks.iter().map(|c| {
        (
            (Kind::Check, c.name.clone()),
            Item {
                group: c.group.clone(),
                brief: c.brief(),
            },
        )
    });
    let flows = report.flows.iter().map(|f| {
        (
            (Kind::Flow, f.name.clone()),
            Item {
                group: f.group.clone(),
                brief: f.brief(),
            },
        )
    });
    checks.chain(flows).collect()
}

fn redact_brief(mut b: Brief, r: &Redactor) -> Brief {
    b.outcome = red(r, &b.outcome);
    b.reason = b.reason.map(|t| red(r, &t));
    b
}

fn compare(previous: &Report, current: &Report, r: &Redactor) -> Comparison {
    let before: HashMap<(Kind, String), Item> = items(previous).into_iter().collect();
    let now = items(current);
    let mut c = Comparison {
        previous_generated_at: previous.generated_at,
        previous_config: red(r, &previous.config),
        overall: ScoreDelta::new(previous.overall.score, current.overall.score),
        groups: Vec::new(),
        fixed: Vec::new(),
        broken: Vec::new(),
        new: Vec::new(),
        removed: Vec::new(),
        still_failing: Vec::new(),
    };
    for (key, item) in &now {
        let was = before.get(key).map(|i| redact_brief(i.brief.clone(), r));
        let change = Change {
            kind: key.0,
            name: key.1.clone(),
            group: item.group.clone(),
            before: was.clone(),
            after: Some(item.brief.clone()),
        };
        match was {
            None => c.new.push(change),
            Some(was) => match (was.ok, item.brief.ok) {
                (false, true) => c.fixed.push(change),
                (true, false) => c.broken.push(change),
                (false, false) => c.still_failing.push(change),
                (true, true) => {}
            },
        }
    }
    let current_keys: std::collections::HashSet<&(Kind, String)> =
        now.iter().map(|(k, _)| k).collect();
    // Previous order, so the list reads like the previous report.
    for (key, item) in items(previous) {
        if !current_keys.contains(&key) {
            c.removed.push(Change {
                kind: key.0,
                name: red(r, &key.1),
                group: red(r, &item.group),
                before: Some(redact_brief(item.brief, r)),
                after: None,
            });
        }
    }
    let mut groups: BTreeMap<String, (Option<f64>, Option<f64>, bool, bool)> = BTreeMap::new();
    for g in &previous.groups {
        let e = groups.entry(red(r, &g.name)).or_default();
        e.0 = g.score.score;
        e.2 = true;
    }
    for g in &current.groups {
        let e = groups.entry(g.name.clone()).or_default();
        e.1 = g.score.score;
        e.3 = true;
    }
    c.groups = groups
        .into_iter()
        .map(|(name, (p, n, in_previous, in_current))| GroupDelta {
            name,
            in_previous,
            in_current,
            delta: ScoreDelta::new(p, n),
        })
        .collect();
    c
}

/// Parses `--fail-under`: a fraction from 0 to 1 (`0.9`) or a percentage
/// from 0 to 100 (`90%`).
pub fn parse_threshold(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (number, scale, range) = match t.strip_suffix('%') {
        Some(p) => (p.trim(), 100.0, "0% and 100%"),
        None => (t, 1.0, "0 and 1"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a score: write a fraction such as 0.9, or 90%"))?;
    if !value.is_finite() || value < 0.0 || value > scale {
        let hint = if scale == 1.0 && value > 1.0 && value <= 100.0 {
            format!(" (for a percentage write {value}%)")
        } else {
            String::new()
        };
        return Err(format!("{text:?} is not between {range}{hint}"));
    }
    Ok(value / scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        assert_eq!(parse_threshold("0.9"), Ok(0.9));
        assert_eq!(parse_threshold("90%"), Ok(0.9));
        assert_eq!(parse_threshold(" 54.5 % "), Ok(0.545));
        assert_eq!(parse_threshold("1"), Ok(1.0));
        assert_eq!(parse_threshold("0"), Ok(0.0));
        let e = parse_threshold("90").unwrap_err();
        assert!(e.contains("90%"), "{e}");
        assert!(parse_threshold("101%").is_err());
        assert!(parse_threshold("-0.1").is_err());
        assert!(parse_threshold("NaN").is_err());
        assert!(parse_threshold("ninety").is_err());
    }

    #[test]
    fn health_thresholds() {
        assert_eq!(Health::of(Some(1.0)), Health::Healthy);
        assert_eq!(Health::of(Some(0.5)), Health::Degraded);
        assert_eq!(Health::of(Some(0.4999)), Health::Down);
        assert_eq!(Health::of(None), Health::Empty);
    }

    #[test]
    fn nine_of_ten_is_not_below_ninety_percent() {
        let s = Score::from_counts(9, 10);
        let report = Report {
            report_version: REPORT_VERSION,
            generated_at: DateTime::UNIX_EPOCH,
            config: String::new(),
            overall: s,
            groups: Vec::new(),
            checks: Vec::new(),
            flows: Vec::new(),
            grids: Vec::new(),
            comparison: None,
            locations: Vec::new(),
        };
        assert!(!report.below(0.9));
        assert!(report.below(0.91));
    }
}
