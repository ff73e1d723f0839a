//! The HTTP server: `/metrics`, `/healthz`, `/readyz`, `/api/v1/status` and
//! the status page at `/`. Handlers only read the recorder; they never
//! block on a probe.

pub mod view;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::record::Recorder;
use crate::secret::Redactor;

#[derive(Clone)]
pub struct AppState {
    pub recorder: Arc<Recorder>,
    pub redactor: Redactor,
    /// Set once the config is loaded and every check is scheduled.
    pub ready: Arc<AtomicBool>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/status", get(status))
        .with_state(state)
}

async fn metrics(State(s): State<AppState>) -> Response {
    // Rendering 10k checks takes a few hundred ms of CPU; on a runtime
    // worker it would stall the schedule for that long (see BENCHMARKS.md).
    let recorder = s.recorder.clone();
    let store = &recorder.store;
    recorder
        .metrics
        .observe_store(store.degraded().is_none(), store.written(), store.dropped());
    match tokio::task::spawn_blocking(move || recorder.metrics.render()).await {
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

fn status_view(s: &AppState) -> view::StatusView {
    let mut v = view::build(&s.recorder.board, &s.redactor);
    v.store_degraded = s.recorder.store.degraded();
    v
}

async fn status(State(s): State<AppState>) -> Response {
    axum::Json(status_view(&s)).into_response()
}

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    view: view::StatusView,
    version: &'static str,
}

async fn page(State(s): State<AppState>) -> Response {
    let page = StatusPage {
        view: status_view(&s),
        version: env!("CARGO_PKG_VERSION"),
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering the status page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n").into_response()
        }
    }
}
