//! Prometheus metrics. Daemon-wide and per-group metrics live in a
//! prometheus-crate registry owned by the daemon (not the global one), so
//! several lookouts can live in one test process; per-check series are kept
//! by [`CheckSeries`] and written straight into the same exposition.
//!
//! Names follow blackbox_exporter where the meaning is the same
//! (`probe_success`, `probe_http_status_code`, `probe_duration_seconds`,
//! `probe_http_duration_seconds{phase}`, `probe_ssl_earliest_cert_expiry`,
//! `probe_http_redirects`), so its dashboards and alerts carry over. Labels
//! hold only config names and closed enums: never a URL, body or secret.

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use super::exposition::Exposition;
use super::flow_series::FlowSeries;
use super::series::CheckSeries;

pub struct Metrics {
    registry: Registry,
    group_score: GaugeVec,
    /// No labels; a vec so the series can be absent before any result.
    overall_score: GaugeVec,
    checks_by_state: IntGaugeVec,
    /// Per group: a target that hangs shows in its own group's lag, and
    /// the others' stays readable.
    schedule_lag: HistogramVec,
    pub in_flight: IntGauge,
    store_up: IntGauge,
    store_written: IntCounter,
    store_dropped: IntCounter,
    reload_ok: IntGauge,
    reload_at: prometheus::Gauge,
    discarded_runs: IntCounter,
}

fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    // Names are fixed and distinct, so registration cannot collide.
    registry
        .register(Box::new(c.clone()))
        .expect("metric names are unique");
    c
}

impl Metrics {
    pub fn new(max_concurrent: usize) -> Metrics {
        let r = Registry::new();
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            register(
                &r,
                GaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let group_score = gauge(
            "lookout_group_health_score",
            "Passing checks over checks with a result, per group (0..1).",
            &["group"],
        );
        let overall_score = gauge(
            "lookout_health_score",
            "Passing checks over checks with a result, all groups (0..1).",
            &[],
        );
        let checks_by_state = register(
            &r,
            IntGaugeVec::new(
                Opts::new(
                    "lookout_checks",
                    "Checks per group by state (passing, failing, pending).",
                ),
                &["group", "state"],
            )
            .expect("valid metric"),
        );
        let schedule_lag = register(
            &r,
            HistogramVec::new(
                HistogramOpts::new(
                    "lookout_schedule_lag_seconds",
                    "How late runs started after their scheduled time, per group.",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
                &["group"],
            )
            .expect("valid metric"),
        );
        let in_flight = register(
            &r,
            IntGauge::new("lookout_probes_in_flight", "Probes running now.").expect("valid metric"),
        );
        let store_up = register(
            &r,
            IntGauge::new(
                "lookout_store_up",
                "Whether the history store is writing (1) or degraded (0).",
            )
            .expect("valid metric"),
        );
        let store_written = register(
            &r,
            IntCounter::new(
                "lookout_store_written_records_total",
                "Results, state changes and score changes written to the history store.",
            )
            .expect("valid metric"),
        );
        let store_dropped = register(
            &r,
            IntCounter::new(
                "lookout_store_dropped_records_total",
                "Records the history store could not write (queue full or disk failing).",
            )
            .expect("valid metric"),
        );
        // Like Prometheus' own: the last load of the config, and when it
        // last succeeded. Start-up is the first load; live reload will set
        // these again.
        let discarded_runs = register(
            &r,
            IntCounter::new(
                "lookout_reload_discarded_runs_total",
                "Runs that finished after a reload changed or removed their check or flow; not recorded.",
            )
            .expect("valid metric"),
        );
        let reload_ok = register(
            &r,
            IntGauge::new(
                "lookout_config_last_reload_successful",
                "Whether the last attempt to load the config succeeded (1) or not (0).",
            )
            .expect("valid metric"),
        );
        reload_ok.set(1);
        let reload_at = register(
            &r,
            prometheus::Gauge::new(
                "lookout_config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful config load.",
            )
            .expect("valid metric"),
        );
        reload_at.set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
        let limit = register(
            &r,
            IntGauge::new(
                "lookout_max_concurrent_probes",
                "The configured limit on probes running at once.",
            )
            .expect("valid metric"),
        );
        limit.set(max_concurrent as i64);
        let build_info = register(
            &r,
            IntGaugeVec::new(
                Opts::new(
                    "lookout_build_info",
                    "Always 1; labels say which lookout this is.",
                ),
                &["version"],
            )
            .expect("valid metric"),
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Metrics {
            registry: r,
            group_score,
            overall_score,
            checks_by_state,
            schedule_lag,
            in_flight,
            store_up,
            store_written,
            store_dropped,
            reload_ok,
            reload_at,
            discarded_runs,
        }
    }

    pub fn observe_lag(&self, group: &str, lag: std::time::Duration) {
        self.schedule_lag
            .with_label_values(&[group])
            .observe(lag.as_secs_f64());
    }

    /// Brings the store's figures up to date; called before each render.
    pub fn observe_store(&self, up: bool, written: u64, dropped: u64) {
        self.store_up.set(i64::from(up));
        // The store counts; the counters follow its totals.
        self.store_written
            .inc_by(written.saturating_sub(self.store_written.get()));
        self.store_dropped
            .inc_by(dropped.saturating_sub(self.store_dropped.get()));
    }

    /// A reload left a run without a place: its check or flow was changed or
    /// removed while it ran.
    pub fn discarded(&self) {
        self.discarded_runs.inc();
    }

    pub fn reloaded(&self, ok: bool) {
        self.reload_ok.set(i64::from(ok));
        if ok {
            self.reload_at
                .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
        }
    }

    /// Drops the per-group series of a group that no longer exists.
    pub fn remove_group(&self, group: &str) {
        for state in ["passing", "failing", "pending"] {
            let _ = self.checks_by_state.remove_label_values(&[group, state]);
        }
        let _ = self.group_score.remove_label_values(&[group]);
        let _ = self.schedule_lag.remove_label_values(&[group]);
    }

    /// Sets a group's counts and score; `score` is `None` while no check in
    /// the group has a result, and the score series is then absent rather than 0.
    pub fn set_group(
        &self,
        group: &str,
        passing: u64,
        failing: u64,
        pending: u64,
        score: Option<f64>,
    ) {
        for (state, n) in [
            ("passing", passing),
            ("failing", failing),
            ("pending", pending),
        ] {
            self.checks_by_state
                .with_label_values(&[group, state])
                .set(n as i64);
        }
        match score {
            Some(s) => self.group_score.with_label_values(&[group]).set(s),
            None => {
                let _ = self.group_score.remove_label_values(&[group]);
            }
        }
    }

    /// Like [`Metrics::set_group`]: absent, not 0, while nothing has a result.
    pub fn set_overall(&self, score: Option<f64>) {
        match score {
            Some(s) => self.overall_score.with_label_values::<&str>(&[]).set(s),
            None => {
                let _ = self.overall_score.remove_label_values::<&str>(&[]);
            }
        }
    }

    /// The text exposition format: the per-check and per-flow families of
    /// the current config, then the registry's (a few dozen series, so
    /// gathering them is cheap).
    pub fn render(&self, checks: &CheckSeries, flows: &FlowSeries) -> String {
        let mut e = Exposition::with_capacity(checks.len() * 2048 + flows.len() * 4096 + 16 * 1024);
        checks.render(&mut e);
        flows.render(&mut e);
        let mut registry = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec cannot fail; an error would be a bug in the encoder.
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut registry)
            .is_err()
        {
            tracing::error!("encoding metrics failed");
        }
        e.push_raw(&String::from_utf8_lossy(&registry));
        e.finish()
    }
}
