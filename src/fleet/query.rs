//! Reading the fleet from Prometheus' HTTP API: a fixed set of instant
//! queries over the global rules and the raw per-location series, run
//! together, each answer read with a byte cap and all of them within one
//! timeout. prometheus-http-query builds the requests and holds the
//! answers' types; the body is read here, so its size is bounded.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::try_join_all;
use prometheus_http_query::response::{Data, PromqlResult};
use url::Url;

use super::{Monitor, Place, Seen, Snapshot};
use crate::probe::http::root_cause;
use crate::secret::Redactor;
use crate::secret::clean;

/// The largest answer one query may return: 10,000 checks in 3 locations
/// come to about 4 MB.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// The most all of one read's answers may hold together.
const MAX_READ_BYTES: usize = 256 * 1024 * 1024;

/// The most series one answer may hold (10,000 checks in 3 locations is
/// 30,000; a flow's steps multiply that).
const MAX_SERIES: usize = 2_000_000;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("Prometheus at {url} did not answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("Prometheus at {url}: {message}")]
    Failed { url: String, message: String },
    #[error(
        "Prometheus at {url} has no `{series}`: load deploy/prometheus/rules/lookout-global.yml \
         there (or no lookout has been scraped yet)"
    )]
    NoRules { url: String, series: &'static str },
}

/// A Prometheus to read the fleet from.
#[derive(Clone)]
pub struct Source {
    client: prometheus_http_query::Client,
    /// For messages: the base URL, which holds no credentials.
    url: String,
    timeout: Duration,
}

/// The series `lookout view` reads, by what they feed.
mod q {
    pub const CHECK_OK: &str = "lookout_location:check_success:max";
    pub const CHECK_QUORUM: &str = "lookout:check_quorum_failing:bool";
    pub const CHECK_STATUS: &str =
        "max by (location, group, check) (probe_http_status_code{check!=\"\"})";
    pub const CHECK_DURATION: &str =
        "max by (location, group, check) (probe_duration_seconds{check!=\"\"})";
    pub const CHECK_LAST_RUN: &str =
        "max by (location, group, check) (lookout_check_last_run_timestamp_seconds)";
    pub const CHECK_TLS: &str =
        "min by (group, check) (probe_ssl_earliest_cert_expiry{check!=\"\"})";
    pub const CHECK_UPTIME: &str =
        "avg by (group, check) (lookout:probe_success:avg_over_time_24h)";
    pub const FLOW_OK: &str = "lookout_location:flow_success:max";
    pub const FLOW_QUORUM: &str = "lookout:flow_quorum_failing:bool";
    pub const FLOW_DURATION: &str =
        "max by (location, group, flow) (lookout_flow_duration_seconds)";
    pub const FLOW_LAST_RUN: &str =
        "max by (location, group, flow) (lookout_flow_last_run_timestamp_seconds)";
    pub const FLOW_STEPS: &str = "max by (location, group, flow) (lookout_flow_steps)";
    pub const FLOW_PASSED: &str = "max by (location, group, flow) (lookout_flow_steps_passed)";
    pub const STEP_OK: &str = "max by (location, group, flow, step) (lookout_flow_step_success)";
    pub const STEP_STATUS: &str =
        "max by (location, group, flow, step) (lookout_flow_step_status_code)";
    pub const FLOW_UPTIME: &str = "avg by (group, flow) (lookout:flow_success:avg_over_time_24h)";
    pub const PLACE_SCORE: &str = "lookout_location:health_score:ratio";
    pub const PLACE_DOWN: &str = "lookout_location:down:bool";

    pub const ALL: [&str; 18] = [
        CHECK_OK,
        CHECK_QUORUM,
        CHECK_STATUS,
        CHECK_DURATION,
        CHECK_LAST_RUN,
        CHECK_TLS,
        CHECK_UPTIME,
        FLOW_OK,
        FLOW_QUORUM,
        FLOW_DURATION,
        FLOW_LAST_RUN,
        FLOW_STEPS,
        FLOW_PASSED,
        STEP_OK,
        STEP_STATUS,
        FLOW_UPTIME,
        PLACE_SCORE,
        PLACE_DOWN,
    ];
}

type Labels = BTreeMap<String, String>;

/// One series of an answer: its labels and value.
type Series = (Labels, f64);

/// One answer: each series' labels and value.
type Answer = Vec<Series>;

/// The API's answer: a plain struct, so serde reads `data` straight into
/// its type (an internally tagged enum would buffer the whole document).
#[derive(serde::Deserialize)]
struct Envelope {
    status: String,
    data: Option<PromqlResult>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
}

impl Source {
    pub fn new(url: &Url, timeout: Duration) -> Result<Source, QueryError> {
        let shown = url.as_str().trim_end_matches('/').to_owned();
        let failed = |message: String| QueryError::Failed {
            url: shown.clone(),
            message,
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .user_agent(concat!("lookout/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| failed(format!("could not build the HTTP client: {e}")))?;
        let client = prometheus_http_query::Client::from(http, url.as_str())
            .map_err(|e| failed(e.to_string()))?;
        Ok(Source {
            client,
            url: shown,
            timeout,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every query once, together, within the timeout.
    pub async fn snapshot(&self) -> Result<Snapshot, QueryError> {
        let at = chrono::Utc::now();
        let budget = AtomicUsize::new(MAX_READ_BYTES);
        let all = try_join_all(q::ALL.iter().map(|query| self.instant(query, &budget)));
        let answers = match tokio::time::timeout(self.timeout, all).await {
            Ok(answers) => answers?,
            Err(_) => {
                return Err(QueryError::Timeout {
                    url: self.url.clone(),
                    timeout: self.timeout,
                });
            }
        };
        let by: BTreeMap<&str, Answer> = q::ALL.iter().copied().zip(answers).collect();
        let get = |name: &str| by.get(name).map_or(&[][..], Vec::as_slice);
        if get(q::CHECK_OK).is_empty() && get(q::FLOW_OK).is_empty() {
            return Err(QueryError::NoRules {
                url: self.url.clone(),
                series: q::CHECK_OK,
            });
        }
        Ok(assemble(at, &get))
    }

    async fn instant(&self, query: &str, budget: &AtomicUsize) -> Result<Answer, QueryError> {
        let failed = |message: String| QueryError::Failed {
            url: self.url.clone(),
            message,
        };
        let response = self
            .client
            .query(query)
            .timeout(self.timeout.as_millis() as i64)
            .get_raw()
            .await
            .map_err(|e| failed(root_cause(&e)))?;
        let body = capped(response, MAX_ANSWER_BYTES, budget)
            .await
            .map_err(&failed)?;
        let envelope: Envelope = serde_json::from_slice(&body).map_err(|e| {
            failed(format!(
                "the answer to {query:?} is not the API's JSON: {e}"
            ))
        })?;
        let data = match envelope {
            Envelope {
                status,
                data: Some(data),
                ..
            } if status == "success" => data,
            Envelope {
                error_type, error, ..
            } => {
                // Prometheus' own words, cut short like any remote text.
                let said = clean(
                    &format!(
                        "{}: {}",
                        error_type.as_deref().unwrap_or("error"),
                        error.as_deref().unwrap_or("no reason given")
                    ),
                    &Redactor::default(),
                );
                return Err(failed(format!("{query:?}: {said}")));
            }
        };
        let Data::Vector(vector) = data.data() else {
            return Err(failed(format!(
                "{query:?} did not answer an instant vector"
            )));
        };
        if vector.len() > MAX_SERIES {
            return Err(failed(format!(
                "{query:?} answered {} series, more than {MAX_SERIES}",
                vector.len()
            )));
        }
        Ok(vector
            .iter()
            .map(|v| {
                let labels = v
                    .metric()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                (labels, v.sample().value())
            })
            .collect())
    }
}

/// The body, or an error once it passes `cap` bytes or what is left of
/// the read's `budget`.
async fn capped(
    mut response: reqwest::Response,
    cap: usize,
    budget: &AtomicUsize,
) -> Result<Vec<u8>, String> {
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the answer failed: {}", root_cause(&e)))?
    {
        if body.len() + chunk.len() > cap {
            return Err(format!("an answer was larger than {cap} bytes"));
        }
        let taken = budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            left.checked_sub(chunk.len())
        });
        if taken.is_err() {
            return Err(format!(
                "the answers of one read came to more than {MAX_READ_BYTES} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() && !status.is_client_error() && body.is_empty() {
        return Err(format!("status {status}"));
    }
    Ok(body)
}

fn label<'a>(labels: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    labels.get(name).map_or("", String::as_str)
}

/// The snapshot from the answers, by query.
fn assemble<'a>(at: chrono::DateTime<chrono::Utc>, get: &dyn Fn(&str) -> &'a [Series]) -> Snapshot {
    let monitors = |kind: &str,
                    ok: &str,
                    quorum: &str,
                    duration: &str,
                    last_run: &str,
                    uptime: &str|
     -> BTreeMap<(String, String), Monitor> {
        let mut out: BTreeMap<(String, String), Monitor> = BTreeMap::new();
        let key = |l: &BTreeMap<String, String>| {
            (label(l, "group").to_owned(), label(l, kind).to_owned())
        };
        for (l, v) in get(ok) {
            let m = out.entry(key(l)).or_insert_with(|| Monitor {
                name: label(l, kind).to_owned(),
                group: label(l, "group").to_owned(),
                ..Monitor::default()
            });
            m.seen
                .entry(label(l, "location").to_owned())
                .or_default()
                .ok = *v >= 1.0;
        }
        let mut seen_at = |query: &str, set: &dyn Fn(&mut Seen, f64)| {
            for (l, v) in get(query) {
                if let Some(m) = out.get_mut(&key(l))
                    && let Some(s) = m.seen.get_mut(label(l, "location"))
                {
                    set(s, *v);
                }
            }
        };
        seen_at(duration, &|s, v| s.duration = Some(v));
        seen_at(last_run, &|s, v| s.last_run = Some(v));
        for (l, v) in get(quorum) {
            if let Some(m) = out.get_mut(&key(l)) {
                m.quorum_failing = Some(*v >= 1.0);
            }
        }
        for (l, v) in get(uptime) {
            if let Some(m) = out.get_mut(&key(l))
                && v.is_finite()
            {
                m.uptime_24h = Some(*v);
            }
        }
        out
    };
    let mut checks = monitors(
        "check",
        q::CHECK_OK,
        q::CHECK_QUORUM,
        q::CHECK_DURATION,
        q::CHECK_LAST_RUN,
        q::CHECK_UPTIME,
    );
    for (l, v) in get(q::CHECK_STATUS) {
        if let Some(s) = checks
            .get_mut(&(label(l, "group").to_owned(), label(l, "check").to_owned()))
            .and_then(|m| m.seen.get_mut(label(l, "location")))
        {
            s.status = u16::try_from(*v as i64).ok();
        }
    }
    for (l, v) in get(q::CHECK_TLS) {
        if let Some(m) =
            checks.get_mut(&(label(l, "group").to_owned(), label(l, "check").to_owned()))
        {
            m.tls_not_after = Some(*v);
        }
    }
    let mut flows = monitors(
        "flow",
        q::FLOW_OK,
        q::FLOW_QUORUM,
        q::FLOW_DURATION,
        q::FLOW_LAST_RUN,
        q::FLOW_UPTIME,
    );
    let mut in_flow = |query: &str, set: &dyn Fn(&mut Seen, &Labels, f64)| {
        for (l, v) in get(query) {
            if let Some(s) = flows
                .get_mut(&(label(l, "group").to_owned(), label(l, "flow").to_owned()))
                .and_then(|m| m.seen.get_mut(label(l, "location")))
            {
                set(s, l, *v);
            }
        }
    };
    in_flow(q::FLOW_STEPS, &|s, _, v| s.steps_total = Some(v));
    in_flow(q::FLOW_PASSED, &|s, _, v| s.steps_passed = Some(v));
    in_flow(q::STEP_OK, &|s, l, v| {
        s.steps.entry(label(l, "step").to_owned()).or_default().0 = v >= 1.0;
    });
    in_flow(q::STEP_STATUS, &|s, l, v| {
        s.steps.entry(label(l, "step").to_owned()).or_default().1 = u16::try_from(v as i64).ok();
    });
    let mut locations: BTreeMap<String, Place> = BTreeMap::new();
    for (l, v) in get(q::PLACE_SCORE) {
        locations
            .entry(label(l, "location").to_owned())
            .or_default()
            .score = v.is_finite().then_some(*v);
    }
    for (l, v) in get(q::PLACE_DOWN) {
        locations
            .entry(label(l, "location").to_owned())
            .or_default()
            .down = *v >= 1.0;
    }
    Snapshot {
        at,
        checks: checks.into_values().collect(),
        flows: flows.into_values().collect(),
        locations,
    }
}
