//! Prometheus metrics, in a registry owned by the daemon (not the global
//! one), so several lookouts can live in one test process.
//!
//! Names follow blackbox_exporter where the meaning is the same
//! (`probe_success`, `probe_http_status_code`, `probe_duration_seconds`,
//! `probe_http_duration_seconds{phase}`, `probe_ssl_earliest_cert_expiry`,
//! `probe_http_redirects`), so its dashboards and alerts carry over. Labels
//! hold only config names and closed enums: never a URL, body or secret.

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::config::Check;
use crate::outcome::CheckResult;

const CHECK_LABELS: [&str; 2] = ["check", "group"];

pub struct Metrics {
    registry: Registry,
    success: GaugeVec,
    status_code: GaugeVec,
    duration: GaugeVec,
    phase_duration: GaugeVec,
    cert_expiry: GaugeVec,
    redirects: GaugeVec,
    duration_histogram: HistogramVec,
    runs: IntCounterVec,
    last_run: GaugeVec,
    skipped: IntCounterVec,
    group_score: GaugeVec,
    /// No labels; a vec so the series can be absent before any result.
    overall_score: GaugeVec,
    checks_by_state: IntGaugeVec,
    schedule_lag: Histogram,
    pub in_flight: IntGauge,
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
        let success = gauge(
            "probe_success",
            "Whether the check's last run passed (1) or failed (0).",
            &CHECK_LABELS,
        );
        let status_code = gauge(
            "probe_http_status_code",
            "Status code of the last response (0 when none arrived).",
            &CHECK_LABELS,
        );
        let duration = gauge(
            "probe_duration_seconds",
            "How long the last run took.",
            &CHECK_LABELS,
        );
        let phase_duration = gauge(
            "probe_http_duration_seconds",
            "Duration of each phase of the last run, summed over redirects.",
            &["check", "group", "phase"],
        );
        let cert_expiry = gauge(
            "probe_ssl_earliest_cert_expiry",
            "Unix time at which the earliest-expiring certificate the target presented expires.",
            &CHECK_LABELS,
        );
        let redirects = gauge(
            "probe_http_redirects",
            "Redirects followed in the last run.",
            &CHECK_LABELS,
        );
        let last_run = gauge(
            "lookout_check_last_run_timestamp_seconds",
            "Unix time at which the check's last run started.",
            &CHECK_LABELS,
        );
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
        let duration_histogram = register(
            &r,
            HistogramVec::new(
                HistogramOpts::new("lookout_check_duration_seconds", "Duration of check runs."),
                &CHECK_LABELS,
            )
            .expect("valid metric"),
        );
        let runs = register(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "lookout_check_runs_total",
                    "Check runs by outcome: success or the failure kind.",
                ),
                &["check", "group", "outcome"],
            )
            .expect("valid metric"),
        );
        let skipped = register(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "lookout_check_skipped_runs_total",
                    "Scheduled runs skipped because the previous run was still going.",
                ),
                &CHECK_LABELS,
            )
            .expect("valid metric"),
        );
        let schedule_lag = register(
            &r,
            Histogram::with_opts(
                HistogramOpts::new(
                    "lookout_schedule_lag_seconds",
                    "How late runs started after their scheduled time.",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
            )
            .expect("valid metric"),
        );
        let in_flight = register(
            &r,
            IntGauge::new("lookout_probes_in_flight", "Probes running now.").expect("valid metric"),
        );
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
            success,
            status_code,
            duration,
            phase_duration,
            cert_expiry,
            redirects,
            duration_histogram,
            runs,
            last_run,
            skipped,
            group_score,
            overall_score,
            checks_by_state,
            schedule_lag,
            in_flight,
        }
    }

    pub fn observe(&self, check: &Check, result: &CheckResult) {
        let labels = [check.name.as_str(), check.group.as_str()];
        let secs = result.duration.as_secs_f64();
        self.success
            .with_label_values(&labels)
            .set(if result.outcome.is_success() {
                1.0
            } else {
                0.0
            });
        self.status_code
            .with_label_values(&labels)
            .set(f64::from(result.status.unwrap_or(0)));
        self.duration.with_label_values(&labels).set(secs);
        for (phase, d) in result.phases.by_name() {
            self.phase_duration
                .with_label_values(&[labels[0], labels[1], phase])
                .set(d.as_secs_f64());
        }
        if let Some(not_after) = result.tls_not_after {
            self.cert_expiry
                .with_label_values(&labels)
                .set(not_after.timestamp() as f64);
        }
        self.redirects
            .with_label_values(&labels)
            .set(f64::from(result.redirects));
        self.duration_histogram
            .with_label_values(&labels)
            .observe(secs);
        self.runs
            .with_label_values(&[labels[0], labels[1], result.outcome.label()])
            .inc();
        self.last_run
            .with_label_values(&labels)
            .set(result.started_at.timestamp_millis() as f64 / 1000.0);
        self.schedule_lag.observe(result.schedule_lag.as_secs_f64());
    }

    pub fn skipped(&self, check: &Check, count: u64) {
        self.skipped
            .with_label_values(&[check.name.as_str(), check.group.as_str()])
            .inc_by(count);
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

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(64 * 1024);
        let families = self.registry.gather();
        // Encoding into a Vec cannot fail; an error would be a bug in the encoder.
        if TextEncoder::new().encode(&families, &mut out).is_err() {
            tracing::error!("encoding metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
