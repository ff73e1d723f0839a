//! Wires the pipeline together: config → schedule → probe → judge → record,
//! and the server that shows the result. `main.rs` adds the command line,
//! logging and signals; tests start a `Daemon` directly on 127.0.0.1:0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Check, Config, Flow};
use crate::record::Recorder;
use crate::run::Runner;
use crate::schedule::{Scheduler, Tick};
use crate::serve::{self, AppState};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("TLS setup failed: {0}")]
    Tls(#[from] crate::probe::tls::TlsSetupError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A run and where its result goes.
struct Pipeline {
    runner: Runner,
    recorder: Arc<Recorder>,
}

impl Pipeline {
    async fn run(&self, check: &Arc<Check>, tick: Tick) {
        self.recorder.metrics.in_flight.inc();
        let result = self.runner.check(check, tick).await;
        self.recorder.metrics.in_flight.dec();
        self.recorder.record(check, result);
    }

    /// A flow run holds one slot under the concurrency limit for all its
    /// steps: it sends one request at a time.
    async fn run_flow(&self, flow: &Arc<Flow>, tick: Tick) {
        self.recorder.metrics.in_flight.inc();
        let result = self.runner.flow(flow, tick).await;
        self.recorder.metrics.in_flight.dec();
        self.recorder.record_flow(flow, result);
    }
}

/// A running lookout. Call [`Daemon::shutdown`] to stop it.
pub struct Daemon {
    pub addr: SocketAddr,
    pub recorder: Arc<Recorder>,
    scheduler: Scheduler,
    server: JoinHandle<()>,
    stop_server: CancellationToken,
    grace: Duration,
}

impl Daemon {
    pub async fn start(config: Config) -> Result<Daemon, StartError> {
        let runner = Runner::new(&config)?;
        let recorder = Arc::new(Recorder::new(&config));
        recorder.restore().await;
        let ready = Arc::new(AtomicBool::new(false));
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "listening beyond loopback: the status page and API are open to anyone who can reach this address");
        }

        let app = serve::router(AppState {
            recorder: recorder.clone(),
            redactor: config.redactor.clone(),
            ready: ready.clone(),
            uptime_cache: Default::default(),
        });
        let stop_server = CancellationToken::new();
        let stop = stop_server.clone();
        let server = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the HTTP server stopped");
            }
        });

        let pipeline = Arc::new(Pipeline {
            runner,
            recorder: recorder.clone(),
        });
        let scheduler = Scheduler::new(config.max_concurrent_probes);
        for check in &config.checks {
            let (job_pipeline, job_check) = (pipeline.clone(), check.clone());
            let (skip_recorder, skip_check) = (recorder.clone(), check.clone());
            scheduler.spawn(
                check.schedule.clone(),
                move |tick| {
                    let (p, c) = (job_pipeline.clone(), job_check.clone());
                    async move { p.run(&c, tick).await }
                },
                move |n| skip_recorder.skipped(&skip_check, n),
            );
        }
        for flow in &config.flows {
            let (job_pipeline, job_flow) = (pipeline.clone(), flow.clone());
            let (skip_recorder, skip_flow) = (recorder.clone(), flow.clone());
            scheduler.spawn(
                flow.schedule.clone(),
                move |tick| {
                    let (p, f) = (job_pipeline.clone(), job_flow.clone());
                    async move { p.run_flow(&f, tick).await }
                },
                move |n| skip_recorder.skipped_flow(&skip_flow, n),
            );
        }
        ready.store(true, Ordering::Release);
        tracing::info!(%addr, checks = config.checks.len(), flows = config.flows.len(), config = %config.source.display(), "lookout is running");
        Ok(Daemon {
            addr,
            recorder,
            scheduler,
            server,
            stop_server,
            grace: config.shutdown_grace,
        })
    }

    /// Stops scheduling, lets probes in flight finish within the grace
    /// period, then stops the server.
    pub async fn shutdown(self) {
        let finished = self.scheduler.shutdown(self.grace).await;
        if !finished {
            tracing::warn!(grace = ?self.grace, "probes still running after the grace period were abandoned");
        }
        // Write what the last runs recorded, then close the database.
        let recorder = self.recorder.clone();
        if tokio::task::spawn_blocking(move || recorder.store.shutdown())
            .await
            .is_err()
        {
            tracing::error!("closing the history store failed");
        }
        self.stop_server.cancel();
        if tokio::time::timeout(Duration::from_secs(5), self.server)
            .await
            .is_err()
        {
            tracing::warn!("the HTTP server did not stop within 5s");
        }
    }
}
