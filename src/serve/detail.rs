//! History per check or flow (API and page), state changes, score trends
//! and badges.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::svg::{self, Tone};
use super::view::{self, ChangeView, CheckView, FlowView};
use super::{AppState, status_view};
use crate::record::board::{Monitor, State as BoardState};
use crate::store::query::{self, ResultRow, Uptime};

const RESULTS_SHOWN: usize = 100;
const MAX_LIMIT: usize = 1000;

/// `/api/v1/checks/{name}`: one check or flow with its history.
#[derive(Serialize)]
pub struct Detail {
    pub kind: &'static str,
    pub check: Option<CheckView>,
    pub flow: Option<FlowView>,
    /// null while the history store is unavailable.
    pub uptime: Option<Uptime>,
    /// Newest first.
    pub results: Vec<ResultRow>,
    pub changes: Vec<ChangeView>,
}

async fn detail(s: &AppState, name: &str) -> Option<Detail> {
    // One entry, not the whole board: at 10,000 checks that is the
    // difference between a few and a few dozen milliseconds.
    let entry = s.recorder.board().find(name)?;
    let (mut check, mut flow) = match &entry.monitor {
        Monitor::Check(c) => (
            Some(view::check_view(c, &entry, &s.recorder.redactor())),
            None,
        ),
        Monitor::Flow(f) => (
            None,
            Some(view::flow_view(f, &entry, &s.recorder.redactor())),
        ),
    };
    let owned = name.to_owned();
    let now = Utc::now().timestamp_millis();
    let history = s
        .recorder
        .store
        .read(move |c| {
            Ok((
                query::uptime(c, &owned, now)?,
                query::recent(c, &owned, RESULTS_SHOWN)?,
                query::changes(c, Some(&owned), RESULTS_SHOWN)?,
            ))
        })
        .await;
    let (uptime, results, changes) = history.unwrap_or_default();
    if let Some(u) = &uptime {
        let (day, week) = (u.last_24h.uptime, u.last_7d.uptime);
        if let Some(c) = check.as_mut() {
            (c.uptime_24h, c.uptime_7d) = (day, week);
        }
        if let Some(f) = flow.as_mut() {
            (f.uptime_24h, f.uptime_7d) = (day, week);
        }
    }
    Some(Detail {
        kind: if check.is_some() { "check" } else { "flow" },
        check,
        flow,
        uptime,
        results,
        changes: changes.into_iter().map(ChangeView::from_row).collect(),
    })
}

fn not_found(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({ "error": format!("no check or flow named {name:?}") })),
    )
        .into_response()
}

pub async fn api_detail(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    match detail(&s, &name).await {
        Some(d) => axum::Json(d).into_response(),
        None => not_found(&name),
    }
}

#[derive(Deserialize)]
pub struct LimitQuery {
    limit: Option<usize>,
    name: Option<String>,
}

/// `/api/v1/changes?limit=50&name=…`: state changes, newest first.
pub async fn api_changes(State(s): State<AppState>, Query(q): Query<LimitQuery>) -> Response {
    let limit = q.limit.unwrap_or(50).min(MAX_LIMIT);
    let name = q.name;
    match s
        .recorder
        .store
        .read(move |c| query::changes(c, name.as_deref(), limit))
        .await
    {
        Ok(rows) => {
            let rows: Vec<ChangeView> = rows.into_iter().map(ChangeView::from_row).collect();
            axum::Json(rows).into_response()
        }
        Err(e) => unavailable(e),
    }
}

/// `/api/v1/history/{name}?limit=100`: results, newest first.
pub async fn api_history(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<LimitQuery>,
) -> Response {
    let limit = q.limit.unwrap_or(RESULTS_SHOWN).min(MAX_LIMIT);
    match s
        .recorder
        .store
        .read(move |c| query::recent(c, &name, limit))
        .await
    {
        Ok(rows) => axum::Json(rows).into_response(),
        Err(e) => unavailable(e),
    }
}

#[derive(Deserialize)]
pub struct ScoreQuery {
    /// `overall` (default) or `group:<name>`.
    scope: Option<String>,
    /// A duration: `24h` (default), `7d`, `30d`.
    window: Option<String>,
}

#[derive(Serialize)]
struct ScoreSeries {
    scope: String,
    from_ms: i64,
    to_ms: i64,
    points: Vec<super::view::ScorePoint>,
}

/// The scopes scores are kept for: `overall`, then `group:<name>` for each
/// group of the current config.
fn score_scopes(s: &AppState) -> Vec<String> {
    std::iter::once("overall".to_owned())
        .chain(
            s.recorder
                .board()
                .groups()
                .into_iter()
                .map(|(name, _)| format!("group:{name}")),
        )
        .collect()
}

fn bad_request(error: String, accepted: Option<Vec<String>>) -> Response {
    let body = match accepted {
        Some(accepted) => serde_json::json!({ "error": error, "accepted": accepted }),
        None => serde_json::json!({ "error": error }),
    };
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// `/api/v1/scores?scope=group:auth&window=7d`: a health score over time.
/// A scope that is not `overall` or a configured group's is a 400 that
/// lists the accepted ones: a typo must not look like a score never kept.
pub async fn api_scores(State(s): State<AppState>, Query(q): Query<ScoreQuery>) -> Response {
    let scope = q.scope.unwrap_or_else(|| "overall".to_owned());
    let scopes = score_scopes(&s);
    if !scopes.contains(&scope) {
        return bad_request(
            format!(
                "unknown scope {scope:?}: the accepted scopes are overall and group:<name> for a configured group: {}",
                scopes.join(", ")
            ),
            Some(scopes),
        );
    }
    let window = match humantime::parse_duration(q.window.as_deref().unwrap_or("24h")) {
        Ok(w) => w,
        Err(e) => return bad_request(format!("bad window: {e}"), None),
    };
    let to_ms = Utc::now().timestamp_millis();
    let from_ms = to_ms - window.as_millis().min(i64::MAX as u128) as i64;
    let sc = scope.clone();
    match s
        .recorder
        .store
        .read(move |c| query::scores(c, &sc, from_ms))
        .await
    {
        Ok(points) => axum::Json(ScoreSeries {
            scope,
            from_ms,
            to_ms,
            points: points
                .into_iter()
                .map(|(at_ms, score)| super::view::ScorePoint { at_ms, score })
                .collect(),
        })
        .into_response(),
        Err(e) => unavailable(e),
    }
}

fn unavailable(e: crate::store::ReadError) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(serde_json::json!({ "error": e.to_string() })),
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "detail.html")]
struct DetailPage {
    d: Detail,
    name: String,
    version: &'static str,
    css: &'static str,
}

impl DetailPage {
    fn pct(u: &Option<f64>) -> String {
        u.map_or_else(|| "–".to_owned(), |u| format!("{:.2}%", u * 100.0))
    }

    fn ms(s: &Option<f64>) -> String {
        s.map_or_else(|| "–".to_owned(), |s| format!("{:.0} ms", s * 1000.0))
    }

    fn time(at_ms: &i64) -> String {
        chrono::DateTime::from_timestamp_millis(*at_ms)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default()
    }

    fn burst(statuses: &[Option<u16>]) -> String {
        super::view::burst_text(statuses)
    }

    fn windows(&self) -> Vec<(&'static str, query::Window)> {
        match &self.d.uptime {
            None => Vec::new(),
            Some(u) => vec![
                ("1 hour", u.last_1h),
                ("24 hours", u.last_24h),
                ("7 days", u.last_7d),
                ("30 days", u.last_30d),
            ],
        }
    }
}

pub async fn page_detail(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    let Some(d) = detail(&s, &name).await else {
        return (
            StatusCode::NOT_FOUND,
            Html("<!doctype html><title>not found</title><p>No such check or flow. <a href=\"/\">Back</a></p>"),
        )
            .into_response();
    };
    let page = DetailPage {
        d,
        name,
        version: env!("CARGO_PKG_VERSION"),
        css: super::assets::detail_css(),
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a detail page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n").into_response()
        }
    }
}

#[derive(Deserialize)]
pub struct BadgeQuery {
    /// `state` (default), `uptime_24h` or `uptime_7d`.
    show: Option<String>,
}

/// Badges are embedded elsewhere: their caching (`no-cache`) and their
/// script-free policy are set with every answer's (`super::headers`).
fn svg_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")],
        body,
    )
        .into_response()
}

fn uptime_tone(u: f64) -> Tone {
    if u >= 0.999 {
        Tone::Good
    } else if u >= 0.99 {
        Tone::Warn
    } else {
        Tone::Bad
    }
}

/// `/badge/check/{name}?show=state|uptime_24h|uptime_7d`.
pub async fn badge_check(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<BadgeQuery>,
) -> Response {
    let Some(entry) = s.recorder.board().find(&name) else {
        return svg_response(
            StatusCode::NOT_FOUND,
            svg::badge(&name, "not found", Tone::Unknown),
        );
    };
    let body = match q.show.as_deref().unwrap_or("state") {
        "state" => {
            let tone = match entry.state {
                BoardState::Passing => Tone::Good,
                BoardState::Failing => Tone::Bad,
                BoardState::Pending => Tone::Unknown,
            };
            svg::badge(&name, entry.state.as_str(), tone)
        }
        which @ ("uptime_24h" | "uptime_7d") => {
            let owned = name.clone();
            let now = Utc::now().timestamp_millis();
            let uptime = s
                .recorder
                .store
                .read(move |c| query::uptime(c, &owned, now))
                .await
                .ok()
                .flatten();
            let (u, label) = if which == "uptime_24h" {
                (uptime.and_then(|u| u.last_24h.uptime), "24h")
            } else {
                (uptime.and_then(|u| u.last_7d.uptime), "7d")
            };
            uptime_badge(&format!("{name} {label}"), u)
        }
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                "show must be state, uptime_24h or uptime_7d\n",
            )
                .into_response();
        }
    };
    svg_response(StatusCode::OK, body)
}

/// `/badge/group/{name}`: the group's health score (`overall` for all).
/// `/badge/group/{name}?show=score|uptime_24h|uptime_7d`: the group's
/// health score (`overall` for all groups), or the mean uptime of its
/// checks and flows that have history.
pub async fn badge_group(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<BadgeQuery>,
) -> Response {
    let view = status_view(&s).await;
    let score = if name == "overall" {
        Some(&view.overall)
    } else {
        view.groups
            .iter()
            .find(|g| g.name == name)
            .map(|g| &g.score)
    };
    let Some(score) = score else {
        return svg_response(
            StatusCode::NOT_FOUND,
            svg::badge(&name, "not found", Tone::Unknown),
        );
    };
    let in_group = |group: &str| name == "overall" || group == name;
    // The mean 24-hour (or, with `week`, 7-day) uptime in the group.
    let mean = |week: bool| {
        let values: Vec<f64> = view
            .checks
            .iter()
            .filter(|c| in_group(&c.group))
            .map(|c| (c.uptime_24h, c.uptime_7d))
            .chain(
                view.flows
                    .iter()
                    .filter(|f| in_group(&f.group))
                    .map(|f| (f.uptime_24h, f.uptime_7d)),
            )
            .filter_map(|(day, seven)| if week { seven } else { day })
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    };
    let body = match q.show.as_deref().unwrap_or("score") {
        "score" => {
            let tone = match score.tone() {
                "good" => Tone::Good,
                "warn" => Tone::Warn,
                "bad" => Tone::Bad,
                _ => Tone::Unknown,
            };
            svg::badge(&name, &score.percent(), tone)
        }
        "uptime_24h" => uptime_badge(&format!("{name} 24h"), mean(false)),
        "uptime_7d" => uptime_badge(&format!("{name} 7d"), mean(true)),
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                "show must be score, uptime_24h or uptime_7d\n",
            )
                .into_response();
        }
    };
    svg_response(StatusCode::OK, body)
}

fn uptime_badge(label: &str, uptime: Option<f64>) -> String {
    match uptime {
        Some(u) => svg::badge(label, &format!("{:.2}%", u * 100.0), uptime_tone(u)),
        None => svg::badge(label, "no data", Tone::Unknown),
    }
}
