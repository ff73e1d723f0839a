//! What a check and a flow are, as the config describes them once it is
//! validated: everything downstream reads these.

use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderName;

use super::{Auth, Expectations, HttpRequest, Target, TlsSettings};
use crate::schedule::Schedule;

#[derive(Debug)]
pub struct Check {
    /// The check's position in [`Config::checks`]; the board and the metric
    /// series are indexed by it.
    pub id: usize,
    /// Unique; for matrix checks `name[key=value,…]`.
    pub name: String,
    pub group: String,
    pub schedule: Schedule,
    /// What is probed, and how: one variant per probe kind.
    pub probe: Target,
    /// HTTP's expectations; other kinds keep theirs in their target and
    /// use only `max_latency` here.
    pub expect: Expectations,
    /// The matrix values this check was expanded with, in key order.
    pub matrix: Vec<(String, String)>,
    pub run_at_start: bool,
    pub thresholds: Thresholds,
    /// The `[[checks]]` entry this check was expanded from, when it has a
    /// matrix or routes: shared by its siblings, for grids and route
    /// comparison.
    pub family: Option<std::sync::Arc<Family>>,
    /// `repeat` (2 or more): the request is sent as a burst.
    pub burst: Option<Burst>,
}

/// `repeat = N` (and `within`): the same request N times, one after
/// another, each on a fresh connection, judged as a sequence (a rate
/// limit's path). The check's or step's `timeout` bounds the whole burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Burst {
    /// 2 to 100.
    pub repeat: u32,
    /// From the first send to the last answer read, at most this long, or
    /// the rate limit was not tested.
    pub within: Option<Duration>,
}

impl Burst {
    /// `burst of 6 within 1s`, for listings.
    pub fn describe(&self) -> String {
        match self.within {
            Some(w) => format!(
                "burst of {} within {}",
                self.repeat,
                humantime::format_duration(w)
            ),
            None => format!("burst of {}", self.repeat),
        }
    }
}

/// What the checks expanded from one `[[checks]]` entry share: the grid
/// they are shown in.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Family {
    /// The entry's name before expansion (its own `vars` rendered; a name
    /// templated by the matrix stays as written).
    pub title: String,
    /// The matrix keys in grid order: the last one is the columns (`route`
    /// when the entry has routes), the others make the rows.
    pub keys: Vec<String>,
    /// The route names in the order written (empty without `routes`).
    pub routes: Vec<String>,
}

/// The matrix key a route's name is under, in `Check::matrix`.
pub const ROUTE_KEY: &str = "route";

/// How many consecutive runs must disagree with a monitor's state before
/// it changes: one blip neither pages nor clears.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// Failing runs that turn a passing monitor failing.
    pub failure: u32,
    /// Passing runs that turn a failing monitor passing.
    pub success: u32,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            failure: 1,
            success: 1,
        }
    }
}

#[derive(Debug)]
pub struct Flow {
    /// The flow's position in [`Config::flows`].
    pub id: usize,
    pub name: String,
    pub group: String,
    pub schedule: Schedule,
    /// Bounds the main steps together.
    pub timeout: Duration,
    pub vars: crate::template::Vars,
    pub steps: Vec<Step>,
    /// Run after the steps whatever happened, each only when the values it
    /// uses were captured.
    pub cleanup: Vec<Step>,
    pub run_at_start: bool,
    pub thresholds: Thresholds,
}

/// Variables every flow run has, whatever the config says.
pub const BUILTIN_VARS: [&str; 3] = ["run_id", "now_ms", "uuid"];

#[derive(Debug)]
pub struct Step {
    pub name: String,
    pub request: RequestTemplate,
    pub expect: Expectations,
    pub captures: Vec<Capture>,
    /// Run-time variables (captures) the step's templates use, sorted.
    pub uses: Vec<String>,
    /// `repeat` (2 or more): the step's request is sent as a burst.
    pub burst: Option<Burst>,
}

#[derive(Debug, Clone)]
pub struct Capture {
    pub var: String,
    pub from: CaptureFrom,
}

#[derive(Debug, Clone)]
pub enum CaptureFrom {
    /// A JSON pointer into the response body.
    Json(String),
    Header(HeaderName),
}

/// An [`HttpRequest`] whose URL, header values and body are templates.
#[derive(Debug)]
pub struct RequestTemplate {
    pub method: Method,
    pub url: String,
    /// Scheme, host and port: fixed when the config loads; a rendered URL
    /// with another origin is refused, so a captured value can never send
    /// the step's credential elsewhere.
    pub origin: url::Origin,
    pub headers: Vec<(HeaderName, String)>,
    pub body: BodyTemplate,
    pub auth: Auth,
    pub timeout: Duration,
    pub max_body_bytes: u64,
    pub max_redirects: u32,
    pub tls_profile: usize,
}

#[derive(Debug)]
pub enum BodyTemplate {
    None,
    Text(String),
    /// String leaves are templates; sent as `application/json`.
    Json(serde_json::Value),
}

/// Identity across reloads: every field but a check's position, with TLS
/// settings compared by value (their index differs between loads).
fn request_identity(r: &HttpRequest, tls: &TlsSettings) -> String {
    format!(
        "{:?} {:?} {:?} {:?} {:?} {:?} {} {} {:?}",
        r.method,
        r.url,
        r.headers,
        r.body,
        r.auth,
        r.timeout,
        r.max_body_bytes,
        r.max_redirects,
        tls
    )
}

fn target_identity(t: &Target, tls: &TlsSettings) -> String {
    match t {
        Target::Http(r) => request_identity(r, tls),
        // Every other kind's settings are plain values (TLS by its index,
        // compared by value through `tls`).
        other => format!("{other:?} {tls:?}"),
    }
}

impl Check {
    /// The route this check probes, when its entry has `routes`.
    pub fn route(&self) -> Option<&str> {
        self.family.as_ref().filter(|f| !f.routes.is_empty())?;
        self.matrix
            .iter()
            .find(|(k, _)| k == ROUTE_KEY)
            .map(|(_, v)| v.as_str())
    }

    /// Where the check sends its probe, for the per-target limit.
    pub fn target(&self) -> String {
        self.probe.limit_key()
    }

    /// Whether `other`, from another load of the config, is the same check.
    /// A changed secret value changes the auth's fingerprint, so the check
    /// counts as changed.
    /// `tls` are each side's resolved TLS settings.
    pub fn same_as(&self, tls: &TlsSettings, other: &Check, other_tls: &TlsSettings) -> bool {
        self.identity(tls) == other.identity(other_tls)
    }

    fn identity(&self, tls: &TlsSettings) -> String {
        format!(
            "{:?} {:?} {:?} {} {:?} {:?} {} {:?} {:?} {:?}",
            self.name,
            self.group,
            self.schedule,
            target_identity(&self.probe, tls),
            self.expect,
            self.matrix,
            self.run_at_start,
            self.thresholds,
            self.family,
            self.burst
        )
    }
}

impl Flow {
    /// Every origin the flow's steps (cleanup included) call, for the
    /// per-target limit: a run holds a slot of each.
    pub fn targets(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .steps
            .iter()
            .chain(&self.cleanup)
            .map(|s| s.request.origin.ascii_serialization())
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Like [`Check::same_as`], step by step (a flow's steps share its TLS
    /// settings).
    pub fn same_as(&self, tls: &TlsSettings, other: &Flow, other_tls: &TlsSettings) -> bool {
        self.identity(tls) == other.identity(other_tls)
    }

    fn identity(&self, tls: &TlsSettings) -> String {
        let step = |s: &Step| {
            let r = &s.request;
            format!(
                "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {} {} {:?} {:?} {:?} {:?} {:?}",
                s.name,
                r.method,
                r.url,
                r.headers,
                r.body,
                r.auth,
                r.timeout,
                r.max_body_bytes,
                r.max_redirects,
                tls,
                s.expect,
                s.captures,
                s.uses,
                s.burst
            )
        };
        let steps: Vec<String> = self.steps.iter().chain(&self.cleanup).map(step).collect();
        format!(
            "{:?} {:?} {:?} {:?} {:?} {} {:?} {} {:?}",
            self.name,
            self.group,
            self.schedule,
            self.timeout,
            self.vars,
            self.steps.len(),
            steps,
            self.run_at_start,
            self.thresholds
        )
    }
}
