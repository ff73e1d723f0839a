//! `lookout view`: the fleet's status page and `/api/v1/status`, read from
//! Prometheus every `refresh`. When Prometheus is down or slow, the last
//! picture stays up, marked stale, with the reason. One refresh task and
//! one listener, both stopped by [`Viewer::shutdown`].

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::Snapshot;
use super::query::Source;
use crate::config::{Config, ServerSettings};
use crate::serve::access::Access;
use crate::serve::view::{SourceView, StatusView};
use crate::serve::{self, auth, headers, listen};

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("could not listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the listener's settings: {0}")]
    Access(#[from] bcrypt::BcryptError),
}

/// What `lookout view` needs.
pub struct ViewerOptions {
    pub source: Source,
    pub listen: SocketAddr,
    pub refresh: Duration,
    /// The fleet's config, for URLs, schedules and step order (optional).
    pub config: Option<Config>,
    /// TLS and basic auth of the listener, as `[server]` sets them.
    pub server: ServerSettings,
}

/// The last picture, and how the last read went.
#[derive(Default)]
struct Latest {
    snapshot: Option<Snapshot>,
    fetched_at: Option<DateTime<Utc>>,
    error: Option<String>,
}

/// What the routes answer, made once per read rather than per request.
struct Shown {
    json: bytes::Bytes,
    html: Option<bytes::Bytes>,
}

#[derive(Clone)]
struct ViewState {
    shown: Arc<RwLock<Arc<Shown>>>,
    latest: Arc<RwLock<Latest>>,
}

/// What the refresh task needs to make a [`Shown`].
struct Making {
    latest: Arc<RwLock<Latest>>,
    shown: Arc<RwLock<Arc<Shown>>>,
    config: Arc<Option<Config>>,
    prometheus: Arc<str>,
}

pub struct Viewer {
    pub addr: SocketAddr,
    stop: CancellationToken,
    refresher: tokio::task::JoinHandle<()>,
    server: tokio::task::JoinHandle<()>,
}

impl Viewer {
    pub async fn start(options: ViewerOptions) -> Result<Viewer, ViewError> {
        let access = Arc::new(Access::new(&options.server)?);
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|source| ViewError::Bind {
                addr: options.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ViewError::Bind {
            addr: options.listen,
            source,
        })?;
        let latest: Arc<RwLock<Latest>> = Arc::default();
        let making = Making {
            latest: latest.clone(),
            shown: Arc::new(RwLock::new(Arc::new(Shown {
                json: bytes::Bytes::new(),
                html: None,
            }))),
            config: Arc::new(options.config),
            prometheus: options.source.url().into(),
        };
        // Something to show before the first read answers.
        making.publish().await;
        let state = ViewState {
            shown: making.shown.clone(),
            latest,
        };
        let stop = CancellationToken::new();
        let refresher = tokio::spawn(refresh(
            options.source,
            options.refresh,
            making,
            stop.clone(),
        ));
        let app = Router::new()
            .route("/", get(page))
            .route("/api/v1/status", get(status))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route("/static/{file}", get(serve::assets::serve))
            .fallback(serve::not_found)
            .layer(axum::middleware::from_fn_with_state(
                access.clone(),
                auth::require,
            ))
            .layer(axum::middleware::from_fn(headers::secure))
            .with_state(state);
        let listen = listen::Listen {
            access,
            read_header_timeout: options.server.read_header_timeout,
            max_connections: options.server.max_connections,
        };
        let server = tokio::spawn(listen::serve(listener, app, listen, stop.clone()));
        tracing::info!(%addr, "lookout view is running");
        Ok(Viewer {
            addr,
            stop,
            refresher,
            server,
        })
    }

    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.refresher.await;
        if tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .is_err()
        {
            tracing::warn!("the view's HTTP server did not stop within 10s");
        }
    }
}

/// Reads the fleet at once, then every `every`, until `stop`.
async fn refresh(source: Source, every: Duration, making: Making, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let read = tokio::select! {
            _ = stop.cancelled() => return,
            read = source.snapshot() => read,
        };
        {
            let mut l = making.latest.write().unwrap_or_else(|p| p.into_inner());
            match read {
                Ok(snapshot) => {
                    if l.error.is_some() {
                        tracing::info!("Prometheus answers again");
                    }
                    l.fetched_at = Some(snapshot.at);
                    l.snapshot = Some(snapshot);
                    l.error = None;
                }
                Err(e) => {
                    if l.error.is_none() {
                        tracing::warn!(error = %e, "reading the fleet failed; showing the last picture");
                    }
                    l.error = Some(e.to_string());
                }
            }
        }
        making.publish().await;
    }
}

impl Making {
    /// The view of the latest read, serialized and rendered once, off the
    /// async workers (10k checks take tens of milliseconds).
    async fn publish(&self) {
        let latest = self.latest.clone();
        let config = self.config.clone();
        let prometheus = self.prometheus.clone();
        let made = tokio::task::spawn_blocking(move || {
            let view = current(&latest, config.as_ref().as_ref(), &prometheus);
            let json = serde_json::to_vec(&view).unwrap_or_default();
            Shown {
                json: json.into(),
                html: serve::status_html(view).map(bytes::Bytes::from),
            }
        })
        .await;
        match made {
            Ok(shown) => *self.shown.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(shown),
            Err(e) => tracing::error!(error = %e, "making the fleet's view failed"),
        }
    }
}

fn current(latest: &RwLock<Latest>, config: Option<&Config>, prometheus: &str) -> StatusView {
    let l = latest.read().unwrap_or_else(|p| p.into_inner());
    let mut view = l.snapshot.as_ref().map_or_else(
        || {
            Snapshot {
                at: Utc::now(),
                ..Snapshot::default()
            }
            .view(config)
        },
        |snap| snap.view(config),
    );
    view.source = Some(SourceView {
        prometheus: prometheus.to_owned(),
        fetched_at: l.fetched_at,
        stale: l.error.is_some(),
        error: l.error.clone(),
    });
    view
}

fn shown(s: &ViewState) -> Arc<Shown> {
    s.shown.read().unwrap_or_else(|p| p.into_inner()).clone()
}

async fn page(State(s): State<ViewState>) -> Response {
    match &shown(&s).html {
        Some(html) => axum::response::Html(html.clone()).into_response(),
        None => (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n").into_response(),
    }
}

async fn status(State(s): State<ViewState>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        shown(&s).json.clone(),
    )
        .into_response()
}

/// Ready once a picture has been read.
async fn readyz(State(s): State<ViewState>) -> Response {
    let l = s.latest.read().unwrap_or_else(|p| p.into_inner());
    match (&l.snapshot, &l.error) {
        (Some(_), _) => (StatusCode::OK, "ready\n").into_response(),
        (None, Some(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
        (None, None) => (StatusCode::SERVICE_UNAVAILABLE, "no picture yet\n").into_response(),
    }
}
