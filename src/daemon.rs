//! Wires the pipeline together: config → schedule → probe → judge → record,
//! and the server that shows the result. `main.rs` adds the command line,
//! logging and signals; tests start a `Daemon` directly on 127.0.0.1:0.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Check, Config, Flow};
use crate::flow::FlowRunner;
use crate::judge::judge;
use crate::outcome::{CheckResult, FailureKind, FlowResult, Outcome, StepResult, StepRun};
use crate::probe::{Observation, Prober, http};
use crate::record::Recorder;
use crate::schedule::{Scheduler, Tick};
use crate::secret::Redactor;
use crate::serve::{self, AppState};
use crate::template::Templater;

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

/// Everything one check run needs, shared by all runs.
struct Pipeline {
    prober: Prober,
    recorder: Arc<Recorder>,
    redactor: Redactor,
    templater: Templater,
}

impl Pipeline {
    async fn run(&self, check: &Arc<Check>, tick: Tick) {
        self.recorder.metrics.in_flight.inc();
        // A panic while probing or judging is a bug, but it must not take the
        // check's schedule (or the daemon) with it: it becomes a failed run.
        let observed = AssertUnwindSafe(async {
            let obs = self.observe(check).await;
            let outcome = judge(&check.expect, &obs, &self.redactor);
            (obs, outcome)
        })
        .catch_unwind()
        .await;
        self.recorder.metrics.in_flight.dec();
        let (obs, outcome) = observed.unwrap_or_else(|_| {
            tracing::error!(check = %check.name, "probe panicked; recorded as an internal failure");
            let reason = "the probe panicked (a bug in lookout; see the log)".to_owned();
            (
                Observation::failed(FailureKind::Internal, reason.clone()),
                Outcome::Failure {
                    kind: FailureKind::Internal,
                    reason,
                },
            )
        });
        let result = CheckResult {
            started_at: tick.started,
            duration: obs.duration,
            status: obs.status,
            outcome,
            phases: obs.phases,
            redirects: obs.redirects,
            tls_not_after: obs.tls_not_after,
            schedule_lag: tick.lag,
        };
        self.recorder.record(check, result);
    }

    /// A flow run holds one slot under the concurrency limit for all its
    /// steps: it sends one request at a time.
    async fn run_flow(&self, flow: &Arc<Flow>, tick: Tick) {
        self.recorder.metrics.in_flight.inc();
        let runner = FlowRunner {
            prober: &self.prober,
            redactor: &self.redactor,
            templater: &self.templater,
        };
        let ran = AssertUnwindSafe(runner.run(flow, tick))
            .catch_unwind()
            .await;
        self.recorder.metrics.in_flight.dec();
        let result = ran.unwrap_or_else(|_| {
            tracing::error!(flow = %flow.name, "flow run panicked; recorded as an internal failure");
            let reason = "the flow run panicked (a bug in lookout; see the log)";
            let steps = flow
                .steps
                .iter()
                .map(|s| StepResult {
                    name: s.name.clone(),
                    run: StepRun::Ran(Outcome::Failure {
                        kind: FailureKind::Internal,
                        reason: reason.to_owned(),
                    }),
                    status: None,
                    duration: Duration::ZERO,
                })
                .collect();
            FlowResult {
                started_at: tick.started,
                duration: Duration::ZERO,
                schedule_lag: tick.lag,
                steps,
                cleanup: Vec::new(),
                captured: Vec::new(),
            }
        });
        self.recorder.record_flow(flow, result);
    }

    async fn observe(&self, check: &Check) -> Observation {
        match self.prober.profile(check.request.tls_profile) {
            Some(profile) => http::probe(&check.request, profile, &self.redactor).await,
            None => Observation::failed(FailureKind::Internal, "no TLS profile for this check"),
        }
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
        let prober = Prober::new(&config)?;
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
            prober,
            recorder: recorder.clone(),
            redactor: config.redactor.clone(),
            templater: Templater::default(),
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
