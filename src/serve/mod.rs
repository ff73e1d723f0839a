//! The HTTP server: `/metrics`, `/healthz`, `/readyz`, `/api/v1/status` and
//! the status page at `/`. Handlers only read the recorder; they never
//! block on a probe. Every answer carries the headers of [`headers`].

pub mod access;
pub(crate) mod assets;
pub mod auth;
mod detail;
pub mod grid;
pub mod headers;
pub mod listen;
pub mod probe;
pub mod svg;
pub mod view;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::record::Recorder;
use crate::store::query;

#[derive(Clone)]
pub struct AppState {
    pub recorder: Arc<Recorder>,
    /// Set once the config is loaded and every check is scheduled.
    pub ready: Arc<AtomicBool>,
    pub uptime_cache: UptimeCache,
    /// Set when `POST /-/reload` is enabled.
    pub reloader: Option<Arc<dyn Reloader>>,
    /// `[server]`'s TLS and basic auth users, as last (re)loaded.
    pub access: Arc<access::Access>,
    /// `/probe`'s runner: the daemon's modules and limits.
    pub prober: Option<Arc<dyn probe::ProbeOnce>>,
}

/// Re-reads the config: the daemon's, behind `POST /-/reload`.
pub trait Reloader: Send + Sync {
    /// A one-line answer, or the config error.
    fn reload(&self) -> futures_util::future::BoxFuture<'_, Result<String, String>>;
}

/// Uptime of every check, and when it was read.
pub type UptimeCache = Arc<Mutex<Option<(Instant, Arc<query::UptimeByName>)>>>;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics))
        .route("/probe", get(probe::probe))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/-/reload", axum::routing::post(reload).put(reload))
        .route("/api/v1/status", get(status))
        .route("/api/v1/checks/{*name}", get(detail::api_detail))
        .route("/api/v1/history/{*name}", get(detail::api_history))
        .route("/api/v1/changes", get(detail::api_changes))
        .route("/api/v1/scores", get(detail::api_scores))
        .route("/check/{*name}", get(detail::page_detail))
        .route("/badge/check/{*name}", get(detail::badge_check))
        .route("/badge/group/{*name}", get(detail::badge_group))
        .route("/static/{file}", get(assets::serve))
        .fallback(not_found)
        // Only /-/reload takes a body, and it reads none.
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .layer(axum::middleware::from_fn_with_state(
            state.access.clone(),
            auth::require,
        ))
        // Outermost: basic auth's 401s and the fallback's 404s get them too.
        .layer(axum::middleware::from_fn(headers::secure))
        .with_state(state)
}

pub(crate) async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

async fn metrics(State(s): State<AppState>) -> Response {
    // Rendering 10k checks takes a few hundred ms of CPU; on a runtime
    // worker it would stall the schedule for that long (see BENCHMARKS.md).
    let recorder = s.recorder.clone();
    let store = &recorder.store;
    recorder
        .metrics
        .observe_store(store.degraded().is_none(), store.written(), store.dropped());
    match tokio::task::spawn_blocking(move || recorder.render_metrics()).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering /metrics failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n").into_response()
        }
    }
}

/// Like Prometheus: only with `--web.enable-lifecycle`; a config that does
/// not load answers 500 with the error and changes nothing.
async fn reload(State(s): State<AppState>) -> Response {
    match &s.reloader {
        None => (
            StatusCode::FORBIDDEN,
            "lifecycle APIs are not enabled (start with --web.enable-lifecycle)\n",
        )
            .into_response(),
        Some(r) => match r.reload().await {
            Ok(text) => (StatusCode::OK, text).into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
        },
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<AppState>) -> Response {
    if s.ready.load(Ordering::Acquire) {
        // A degraded store costs history, not probing or /metrics: still
        // ready, but it says so.
        match s.recorder.store.degraded() {
            None => (StatusCode::OK, "ready\n").into_response(),
            Some(why) => (
                StatusCode::OK,
                format!("ready\nhistory store degraded: {why}\n"),
            )
                .into_response(),
        }
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    }
}

/// Uptime per check is a scan of a week of hourly rollups: at 10,000
/// checks, worth reusing for this long.
const UPTIME_TTL: Duration = Duration::from_secs(30);
const CACHE_FROM: usize = 1000;
const CHANGES_SHOWN: usize = 20;

/// The board's view plus what the history store knows. Without the store
/// (degraded, or a query failing) the view is still whole, minus history.
pub(crate) async fn status_view(s: &AppState) -> view::StatusView {
    let mut v = view::build(&s.recorder.board(), &s.recorder.redactor());
    v.store_degraded = s.recorder.store.degraded();
    let (cluster, total) = s.recorder.placement();
    v.instance = view::InstanceView::new(&cluster, total, v.checks.len(), v.flows.len());
    // Below a thousand checks the scan is cheap enough to do every time.
    let cached = if v.checks.len() + v.flows.len() < CACHE_FROM {
        None
    } else {
        let c = s.uptime_cache.lock().unwrap_or_else(|p| p.into_inner());
        c.as_ref()
            .filter(|(at, _)| at.elapsed() < UPTIME_TTL)
            .map(|(_, u)| u.clone())
    };
    let now = v.now_ms();
    let scopes: Vec<String> = std::iter::once("overall".to_owned())
        .chain(v.groups.iter().map(|g| format!("group:{}", g.name)))
        .collect();
    let read = s
        .recorder
        .store
        .read(move |c| {
            let uptime = match cached {
                Some(u) => (u, false),
                None => (Arc::new(query::uptime_all(c, now)?), true),
            };
            let mut scores = HashMap::new();
            for scope in scopes {
                let points = query::scores(c, &scope, now - 7 * 24 * 3_600_000)?;
                scores.insert(scope, points);
            }
            let changes = query::changes(c, None, CHANGES_SHOWN)?;
            Ok((uptime, scores, changes))
        })
        .await;
    match read {
        Ok(((uptime, fresh), scores, changes)) => {
            if fresh {
                *s.uptime_cache.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((Instant::now(), uptime.clone()));
            }
            v.apply(view::History {
                uptime,
                scores,
                changes,
            });
        }
        Err(e) => tracing::debug!(error = %e, "status without history"),
    }
    v
}

async fn status(State(s): State<AppState>) -> Response {
    axum::Json(status_view(&s).await).into_response()
}

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    view: view::StatusView,
    version: &'static str,
    css: &'static str,
}

async fn page(State(s): State<AppState>) -> Response {
    status_page(status_view(&s).await)
}

/// The status page of a view: this instance's, or the fleet's (`lookout view`).
pub fn status_page(view: view::StatusView) -> Response {
    match status_html(view) {
        Some(html) => Html(html).into_response(),
        None => (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n").into_response(),
    }
}

/// The status page's HTML; `None` (logged) if rendering failed.
pub fn status_html(view: view::StatusView) -> Option<String> {
    let page = StatusPage {
        view,
        version: env!("CARGO_PKG_VERSION"),
        css: assets::status_css(),
    };
    page.render()
        .map_err(|e| tracing::error!(error = %e, "rendering the status page failed"))
        .ok()
}
