//! `GET /probe?target=…&module=…`: blackbox_exporter's multi-target
//! endpoint, so a Prometheus scrape config written for it works unchanged.
//! The probe itself is the daemon's ([`ProbeOnce`]): its modules, its
//! runner and its concurrency limits. Bounded like every route: behind
//! `[server]`'s auth, a slot under the daemon's limits, and a deadline from
//! the scrape's `X-Prometheus-Scrape-Timeout-Seconds` (less half a second,
//! as blackbox does) or the module's timeout, whichever is shorter.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;

/// What blackbox_exporter calls a module when the scrape names none.
pub const DEFAULT_MODULE: &str = "http_2xx";
/// Taken off the scrape's timeout, so the answer arrives before Prometheus
/// gives up on it.
const TIMEOUT_OFFSET: Duration = Duration::from_millis(500);
const MIN_TIMEOUT: Duration = Duration::from_millis(100);

/// Why a `/probe` did not run.
#[derive(Debug, thiserror::Error)]
pub enum ProbeRefused {
    #[error("unknown module {0:?}")]
    UnknownModule(String),
    #[error("invalid target: {0}")]
    BadTarget(String),
    #[error("too many probes at once; try again")]
    Busy,
}

/// Runs one probe of a module against a target, and answers in the
/// exposition format.
pub trait ProbeOnce: Send + Sync {
    fn probe<'a>(
        &'a self,
        module: &'a str,
        target: &'a str,
        deadline: Option<Duration>,
    ) -> futures_util::future::BoxFuture<'a, Result<String, ProbeRefused>>;
}

pub(super) async fn probe(
    State(s): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some(prober) = &s.prober else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let Some(target) = params.get("target").filter(|t| !t.trim().is_empty()) else {
        return (StatusCode::BAD_REQUEST, "the target parameter is missing\n").into_response();
    };
    let module = params.get("module").map_or(DEFAULT_MODULE, String::as_str);
    let deadline = scrape_timeout(&headers);
    match prober.probe(module, target, deadline).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e @ ProbeRefused::Busy) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response()
        }
        // The reason may quote the caller's own target: plain text, with
        // nosniff and a nothing-allowed CSP from `headers`, so it is never
        // read as markup.
        Err(e) => (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{e}\n"),
        )
            .into_response(),
    }
}

/// The scrape's own deadline, less the offset; `None` without the header.
pub fn scrape_timeout(headers: &HeaderMap) -> Option<Duration> {
    let secs: f64 = headers
        .get("x-prometheus-scrape-timeout-seconds")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if !secs.is_finite() || secs <= 0.0 {
        return None;
    }
    let whole = Duration::try_from_secs_f64(secs.min(3600.0)).ok()?;
    Some(whole.saturating_sub(TIMEOUT_OFFSET).max(MIN_TIMEOUT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scrape_timeout_leaves_half_a_second() {
        let t = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("x-prometheus-scrape-timeout-seconds", v.parse().unwrap());
            scrape_timeout(&h)
        };
        assert_eq!(t("10"), Some(Duration::from_millis(9500)));
        assert_eq!(t("0.3"), Some(MIN_TIMEOUT));
        assert_eq!(t("1e9"), Some(Duration::from_secs(3600) - TIMEOUT_OFFSET));
        for bad in ["0", "-1", "NaN", "inf", "x"] {
            assert_eq!(t(bad), None, "{bad}");
        }
        assert_eq!(scrape_timeout(&HeaderMap::new()), None);
    }
}
