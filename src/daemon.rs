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
use std::collections::HashMap;

use crate::config::diff::{Job, Reloaded};
use crate::record::Recorder;
use crate::run::Runner;
use crate::schedule::{JobHandle, Limits, Scheduler, Tick};
use crate::secret::SharedRedactor;
use crate::serve::access::Access;
use crate::serve::{self, AppState};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("TLS setup failed: {0}")]
    Tls(#[from] crate::probe::tls::TlsSetupError),
    #[error("basic auth setup failed: {0}")]
    Auth(#[from] bcrypt::BcryptError),
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

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("TLS setup failed: {0}")]
    Tls(#[from] crate::probe::tls::TlsSetupError),
    #[error("basic auth setup failed: {0}")]
    Auth(#[from] bcrypt::BcryptError),
    #[error("reading the config failed: {0}")]
    Join(String),
}

/// Options of `lookout run` beyond the config file.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Serve `POST /-/reload` (Prometheus' `--web.enable-lifecycle`).
    pub enable_lifecycle: bool,
}

/// What a reload changes: the jobs on the schedule, the secrets runs scrub,
/// and who may connect.
struct Control {
    recorder: Arc<Recorder>,
    scheduler: Scheduler,
    jobs: std::sync::Mutex<HashMap<Job, JobHandle>>,
    redactor: SharedRedactor,
    access: Arc<Access>,
    /// The first load's settings that only a restart applies.
    started: Config,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// `/probe`'s modules and their runner, swapped whole by a reload.
    modules: std::sync::RwLock<Arc<Modules>>,
}

/// One probe in `lookout_probes_in_flight`, for as long as it lives.
struct InFlight<'a>(&'a prometheus::IntGauge);

impl<'a> InFlight<'a> {
    fn new(gauge: &'a prometheus::IntGauge) -> InFlight<'a> {
        gauge.inc();
        InFlight(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The current config's `/probe` modules, with a runner built for them.
struct Modules {
    by_name: std::collections::BTreeMap<String, Arc<Check>>,
    runner: Runner,
}

impl Modules {
    fn new(
        config: &Config,
        redactor: SharedRedactor,
    ) -> Result<Modules, crate::probe::tls::TlsSetupError> {
        Ok(Modules {
            by_name: config.modules.clone(),
            runner: Runner::sharing(config, redactor)?,
        })
    }
}

impl serve::probe::ProbeOnce for Control {
    fn probe<'a>(
        &'a self,
        module: &'a str,
        target: &'a str,
        deadline: Option<Duration>,
    ) -> futures_util::future::BoxFuture<'a, Result<String, serve::probe::ProbeRefused>> {
        use serve::probe::ProbeRefused;
        Box::pin(async move {
            let modules = self
                .modules
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let Some(prototype) = modules.by_name.get(module) else {
                return Err(ProbeRefused::UnknownModule(module.to_owned()));
            };
            let probe = prototype
                .probe
                .retarget(target)
                .map_err(ProbeRefused::BadTarget)?;
            // One deadline for the wait and the probe together.
            let budget = deadline.map_or(probe.timeout(), |d| d.min(probe.timeout()));
            let started = tokio::time::Instant::now();
            let check = Check {
                id: 0,
                name: prototype.name.clone(),
                group: prototype.group.clone(),
                schedule: prototype.schedule.clone(),
                probe,
                expect: prototype.expect.clone(),
                matrix: Vec::new(),
                run_at_start: false,
                thresholds: prototype.thresholds,
                family: None,
                burst: prototype.burst,
            };
            // The daemon's own limits: a /probe waits its turn with the
            // checks against the same target, for at most its budget.
            let slot = self.scheduler.limits().slot([check.target()]);
            let permits = tokio::time::timeout(budget, slot.acquire())
                .await
                .ok()
                .flatten()
                .ok_or(ProbeRefused::Busy)?;
            let left = budget.saturating_sub(started.elapsed());
            if left < Duration::from_millis(100) {
                return Err(ProbeRefused::Busy);
            }
            let mut check = check;
            check.probe.set_timeout(left);
            // Counted while it runs, and uncounted even when the scrape
            // gives up and drops this future.
            let _in_flight = InFlight::new(&self.recorder.metrics.in_flight);
            let result = modules.runner.check(&check, Tick::now()).await;
            drop(permits);
            Ok(crate::record::kinds::probe_exposition(&check, &result))
        })
    }
}

impl Control {
    fn schedule(&self, pipeline: &Arc<Pipeline>, checks: &[Arc<Check>], flows: &[Arc<Flow>]) {
        // One limit per origin, shared by every check and flow against it
        // (and kept across reloads).
        let limits = self.scheduler.limits();
        let check_slots: Vec<_> = checks.iter().map(|c| limits.slot([c.target()])).collect();
        let flow_slots: Vec<_> = flows.iter().map(|f| limits.slot(f.targets())).collect();
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        for (check, slot) in checks.iter().zip(check_slots) {
            let (job_pipeline, job_check) = (pipeline.clone(), check.clone());
            let (skip_recorder, skip_check) = (self.recorder.clone(), check.clone());
            let handle = self.scheduler.spawn(
                check.schedule.clone(),
                check
                    .run_at_start
                    .then(|| check.schedule.start_delay(&check.name)),
                slot,
                move |tick| {
                    let (p, c) = (job_pipeline.clone(), job_check.clone());
                    async move { p.run(&c, tick).await }
                },
                move |n| skip_recorder.skipped(&skip_check, n),
            );
            jobs.insert(Job::Check(check.name.clone()), handle);
        }
        for (flow, slot) in flows.iter().zip(flow_slots) {
            let (job_pipeline, job_flow) = (pipeline.clone(), flow.clone());
            let (skip_recorder, skip_flow) = (self.recorder.clone(), flow.clone());
            let handle = self.scheduler.spawn(
                flow.schedule.clone(),
                flow.run_at_start
                    .then(|| flow.schedule.start_delay(&flow.name)),
                slot,
                move |tick| {
                    let (p, f) = (job_pipeline.clone(), job_flow.clone());
                    async move { p.run_flow(&f, tick).await }
                },
                move |n| skip_recorder.skipped_flow(&skip_flow, n),
            );
            jobs.insert(Job::Flow(flow.name.clone()), handle);
        }
    }

    /// Re-reads the config file. A config that does not load changes
    /// nothing: the old one keeps running, and the metric says so.
    async fn reload(&self) -> Result<Reloaded, ReloadError> {
        let _one = self.reloading.lock().await;
        let result = self.try_reload().await;
        self.recorder.metrics.reloaded(result.is_ok());
        match &result {
            Ok(d) => tracing::info!(
                added = d.added.len(),
                changed = d.changed.len(),
                removed = d.removed.len(),
                unchanged = d.unchanged.len(),
                "config reloaded"
            ),
            Err(e) => {
                tracing::error!(error = %e, "config reload failed; the old config keeps running")
            }
        }
        result
    }

    async fn try_reload(&self) -> Result<Reloaded, ReloadError> {
        let path = self.started.source.clone();
        let overrides = self.started.overrides.clone();
        // Reading files (config, secrets, CA files) blocks.
        let config =
            tokio::task::spawn_blocking(move || crate::config::load_with(&path, &overrides))
                .await
                .map_err(|e| ReloadError::Join(e.to_string()))??;
        // Everything that can fail comes first: past this point the reload
        // happens whole.
        let runner = Runner::sharing(&config, self.redactor.clone())?;
        let modules = Modules::new(&config, self.redactor.clone())?;
        self.access.set(&config.server)?;
        warn_restart_only(&self.started, &config);
        warn_if_open(self.started.listen, &config.server);

        let recorder = self.recorder.clone();
        let new_config = Arc::new(config);
        let for_swap = new_config.clone();
        // Building the new layout costs milliseconds per thousand checks.
        let (checks, flows, diff) = tokio::task::spawn_blocking(move || recorder.reload(&for_swap))
            .await
            .map_err(|e| ReloadError::Join(e.to_string()))?;
        self.redactor.set(new_config.redactor.clone());
        *self.modules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(modules);
        {
            let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
            for job in diff.changed.iter().chain(&diff.removed) {
                if let Some(handle) = jobs.remove(job) {
                    handle.stop();
                }
            }
        }
        let fresh: std::collections::HashSet<&Job> =
            diff.added.iter().chain(&diff.changed).collect();
        let pipeline = Arc::new(Pipeline {
            runner,
            recorder: self.recorder.clone(),
        });
        let new_checks: Vec<Arc<Check>> = checks
            .into_iter()
            .filter(|c| fresh.contains(&Job::Check(c.name.clone())))
            .collect();
        let new_flows: Vec<Arc<Flow>> = flows
            .into_iter()
            .filter(|f| fresh.contains(&Job::Flow(f.name.clone())))
            .collect();
        self.schedule(&pipeline, &new_checks, &new_flows);
        Ok(diff)
    }
}

/// Settings read once at start: a reload that changes them says so.
fn warn_restart_only(old: &Config, new: &Config) {
    if new.cluster != old.cluster {
        tracing::warn!(
            shard = %new.cluster.shard,
            location = new.cluster.location.as_deref().unwrap_or("-"),
            replica = new.cluster.replica.as_deref().unwrap_or("-"),
            "[cluster] changed: the checks are placed anew now; the history file and the \
             per-target limit follow at the next restart"
        );
    }
    for (what, same) in [
        ("server.listen", new.listen == old.listen),
        (
            "server.read_header_timeout",
            new.server.read_header_timeout == old.server.read_header_timeout,
        ),
        (
            "server.max_connections",
            new.server.max_connections == old.server.max_connections,
        ),
        (
            "scheduler.max_concurrent_probes",
            new.max_concurrent_probes == old.max_concurrent_probes,
        ),
        (
            "scheduler.max_concurrent_per_target",
            new.max_concurrent_per_target == old.max_concurrent_per_target,
        ),
        (
            "scheduler.shutdown_grace",
            new.shutdown_grace == old.shutdown_grace,
        ),
        (
            "store",
            format!("{:?}", new.store) == format!("{:?}", old.store),
        ),
    ] {
        if !same {
            tracing::warn!(
                setting = what,
                "changed in the config; it takes effect at the next restart"
            );
        }
    }
}

/// Whether anyone who can reach `addr` can read the page and the API.
pub fn open_to_all(addr: SocketAddr, server: &crate::config::ServerSettings) -> bool {
    !addr.ip().is_loopback() && server.basic_auth_users.is_empty()
}

fn warn_if_open(addr: SocketAddr, server: &crate::config::ServerSettings) {
    if open_to_all(addr, server) {
        tracing::warn!(%addr, "listening beyond loopback without basic_auth_users: the status page and API are open to anyone who can reach this address");
    }
}

impl serve::Reloader for Control {
    fn reload(&self) -> futures_util::future::BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            Control::reload(self)
                .await
                .map(|d| {
                    format!(
                        "reloaded: {} added, {} changed, {} removed, {} unchanged\n",
                        d.added.len(),
                        d.changed.len(),
                        d.removed.len(),
                        d.unchanged.len()
                    )
                })
                .map_err(|e| format!("{e}\n"))
        })
    }
}

/// A running lookout. Call [`Daemon::shutdown`] to stop it.
pub struct Daemon {
    pub addr: SocketAddr,
    pub recorder: Arc<Recorder>,
    control: Arc<Control>,
    server: JoinHandle<()>,
    stop_server: CancellationToken,
    grace: Duration,
}

impl Daemon {
    pub async fn start(config: Config) -> Result<Daemon, StartError> {
        Daemon::start_with(config, Options::default()).await
    }

    pub async fn start_with(config: Config, options: Options) -> Result<Daemon, StartError> {
        // What can fail comes before anything starts.
        let redactor = SharedRedactor::new(config.redactor.clone());
        let runner = Runner::sharing(&config, redactor.clone())?;
        let access = Arc::new(Access::new(&config.server)?);
        let modules = Modules::new(&config, redactor.clone())?;
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
        warn_if_open(addr, &config.server);

        let grace = config.shutdown_grace;
        let control = Arc::new(Control {
            recorder: recorder.clone(),
            scheduler: Scheduler::new(Limits::new(
                config.max_concurrent_probes,
                config.max_concurrent_per_target,
            )),
            jobs: Default::default(),
            redactor,
            access: access.clone(),
            started: config,
            reloading: Default::default(),
            modules: std::sync::RwLock::new(Arc::new(modules)),
        });
        let config = &control.started;
        let reloader: Option<Arc<dyn serve::Reloader>> = options
            .enable_lifecycle
            .then(|| control.clone() as Arc<dyn serve::Reloader>);
        let app = serve::router(AppState {
            recorder: recorder.clone(),
            ready: ready.clone(),
            uptime_cache: Default::default(),
            reloader,
            access: access.clone(),
            prober: Some(control.clone() as Arc<dyn serve::probe::ProbeOnce>),
        });
        let stop_server = CancellationToken::new();
        let stop = stop_server.clone();
        let listen = serve::listen::Listen {
            access,
            read_header_timeout: config.server.read_header_timeout,
            max_connections: config.server.max_connections,
        };
        let server = tokio::spawn(serve::listen::serve(listener, app, listen, stop));

        let pipeline = Arc::new(Pipeline {
            runner,
            recorder: recorder.clone(),
        });
        control.schedule(&pipeline, &config.checks, &config.flows);
        ready.store(true, Ordering::Release);
        tracing::info!(
            %addr,
            checks = config.checks.len(),
            flows = config.flows.len(),
            config = %config.source.display(),
            history = %config.store.path,
            "lookout is running"
        );
        if config.cluster != crate::cluster::Cluster::default() {
            tracing::info!(
                shard = %config.cluster.shard,
                location = config.cluster.location.as_deref().unwrap_or("-"),
                replica = config.cluster.replica.as_deref().unwrap_or("-"),
                "runs {} of {} checks and {} of {} flows",
                config.checks.len(),
                config.total.checks,
                config.flows.len(),
                config.total.flows,
            );
        }
        Ok(Daemon {
            addr,
            recorder,
            control,
            server,
            stop_server,
            grace,
        })
    }

    /// Re-reads the config file (what SIGHUP and `POST /-/reload` do).
    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
        self.control.reload().await
    }

    /// Stops scheduling, lets probes in flight finish within the grace
    /// period, then stops the server.
    pub async fn shutdown(self) {
        let finished = self.control.scheduler.shutdown(self.grace).await;
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
