//! Per-check metric series, kept in one slot per check (indexed by the
//! check's position in the config) and written straight into the exposition.
//!
//! Recording a result locks only that check's slot and hashes nothing; a
//! scrape walks the slots in config order. This replaces one prometheus-crate
//! vector per family, where every result paid ten label-hash lookups and
//! every series kept its own copies of the label strings.

use std::sync::{Mutex, MutexGuard};

use super::exposition::{Exposition, Kind, LabelSet};
use super::kinds::{self, Sample};
use crate::config::Check;
use crate::outcome::{CheckResult, FailureKind, FetchedCredential, Outcome, PHASE_NAMES};

/// Upper bounds of `lookout_check_duration_seconds`. Ten buckets, not the
/// prometheus crate's eleven defaults: the 5 ms one says little about a
/// fresh-connection probe, and each bucket is a series per check.
const DURATION_BOUNDS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const DURATION_LE: [&str; 10] = [
    "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
];
const OUTCOMES: usize = 1 + FailureKind::ALL.len();

/// The last result's gauges.
#[derive(Clone, Copy, Default)]
struct Last {
    success: bool,
    status: u16,
    duration: f64,
    phases: [f64; 5],
    redirects: u32,
    started_at: f64,
}

#[derive(Clone, Default)]
struct Slot {
    last: Option<Last>,
    /// Kept apart from `last`: an http check that once reached TLS keeps its
    /// expiry when a later run fails before the handshake.
    cert_not_after: Option<i64>,
    /// The families the check's kind adds, from the last run.
    kind: Vec<Sample>,
    /// Per bucket, `+Inf` last; not cumulative.
    buckets: [u64; DURATION_BOUNDS.len() + 1],
    duration_sum: f64,
    runs: [u64; OUTCOMES],
    skipped: u64,
    /// The last OAuth2 token sent that is a JWT with an `exp` (kept when
    /// a later fetch fails: it still says when that token expires).
    fetched: Option<FetchedCredential>,
}

impl Slot {
    fn observe(&mut self, result: &CheckResult) {
        let secs = result.duration.as_secs_f64();
        self.last = Some(Last {
            success: result.outcome.is_success(),
            status: result.status.unwrap_or(0),
            duration: secs,
            phases: result.phases.by_name().map(|(_, d)| d.as_secs_f64()),
            redirects: result.redirects,
            started_at: result.started_at.timestamp_millis() as f64 / 1000.0,
        });
        if let Some(t) = result.tls_not_after {
            self.cert_not_after = Some(t.timestamp());
        }
        self.kind = kinds::samples(result);
        if let Some(fetched) = &result.fetched_credential {
            self.fetched = Some(fetched.clone());
        }
        let bucket = DURATION_BOUNDS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(DURATION_BOUNDS.len());
        self.buckets[bucket] += 1;
        self.duration_sum += secs;
        self.runs[result.outcome.label_index()] += 1;
    }
}

/// One lock per check or flow: recording locks only its own.
pub(super) struct Slots<T> {
    slots: Vec<Mutex<T>>,
}

impl<T: Clone + Default> Slots<T> {
    pub(super) fn new(n: usize) -> Slots<T> {
        Slots {
            slots: (0..n).map(|_| Mutex::default()).collect(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Runs `f` on slot `id`; nothing happens for an id from another config.
    pub(super) fn with(&self, id: usize, f: impl FnOnce(&mut T)) {
        if let Some(m) = self.slots.get(id) {
            f(&mut lock(m));
        }
    }

    pub(super) fn get(&self, id: usize) -> Option<T> {
        self.slots.get(id).map(|m| lock(m).clone())
    }

    /// Copies the slots out under their locks, so the text is written
    /// without holding any lock a probe might be waiting for.
    pub(super) fn snapshot(&self) -> Vec<T> {
        self.slots.iter().map(|m| lock(m).clone()).collect()
    }
}

/// A panic elsewhere while holding a slot leaves plain numbers behind; they
/// are still the best we have.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct CheckSeries {
    labels: Vec<LabelSet>,
    slots: Slots<Slot>,
    /// Per check, its configured credentials' expiry (a JWT's `exp`, or
    /// `expires` in `[secrets]`): known at load, so shown before any run.
    configured: Vec<Vec<(LabelSet, i64)>>,
}

/// The `source` label: `configured` (a JWT's own `exp`) or `declared`.
fn configured_expiries(c: &Check) -> Vec<(LabelSet, i64)> {
    let mut out: Vec<(LabelSet, i64)> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for secret in c.probe.secrets() {
        let Some(expiry) = secret.expiry() else {
            continue;
        };
        if seen.contains(&secret.fingerprint()) {
            continue;
        }
        seen.push(secret.fingerprint());
        let source = if expiry.declared {
            "declared"
        } else {
            "configured"
        };
        out.push((
            LabelSet::new(&[
                ("check", &c.name),
                ("group", &c.group),
                ("credential", secret.fingerprint()),
                ("source", source),
            ]),
            expiry.at,
        ));
    }
    out
}

impl CheckSeries {
    pub fn new(checks: &[std::sync::Arc<Check>]) -> CheckSeries {
        CheckSeries {
            labels: checks
                .iter()
                .map(|c| LabelSet::new(&[("check", &c.name), ("group", &c.group)]))
                .collect(),
            slots: Slots::new(checks.len()),
            configured: checks.iter().map(|c| configured_expiries(c)).collect(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn observe(&self, id: usize, result: &CheckResult) {
        self.slots.with(id, |slot| slot.observe(result));
    }

    pub fn skipped(&self, id: usize, count: u64) {
        self.slots.with(id, |slot| slot.skipped += count);
    }

    /// Takes over the series of checks a reload left unchanged: `(new, old)`
    /// positions.
    pub fn carry_from(&self, old: &CheckSeries, pairs: &[(usize, usize)]) {
        for &(new, from) in pairs {
            if let Some(slot) = old.slots.get(from) {
                self.slots.with(new, |s| *s = slot);
            }
        }
    }

    pub fn render(&self, e: &mut Exposition) {
        let slots = self.slots.snapshot();
        let each = || self.labels.iter().zip(&slots);
        let last = || each().filter_map(|(l, s)| s.last.map(|last| (l, last)));

        e.family(
            "probe_success",
            "Whether the check's last run passed (1) or failed (0).",
            Kind::Gauge,
            |f| last().for_each(|(l, x)| f.sample(l, u64::from(x.success))),
        );
        e.family(
            "probe_http_status_code",
            "Status code of the last response (0 when none arrived).",
            Kind::Gauge,
            |f| last().for_each(|(l, x)| f.sample(l, u64::from(x.status))),
        );
        e.family(
            "probe_duration_seconds",
            "How long the last run took.",
            Kind::Gauge,
            |f| last().for_each(|(l, x)| f.sample(l, x.duration)),
        );
        e.family(
            "probe_http_duration_seconds",
            "Duration of each phase of the last run, summed over redirects.",
            Kind::Gauge,
            |f| {
                for (l, x) in last() {
                    for (phase, secs) in PHASE_NAMES.iter().zip(x.phases) {
                        f.sample_with(l, "phase", phase, secs);
                    }
                }
            },
        );
        e.family(
            "probe_http_redirects",
            "Redirects followed in the last run.",
            Kind::Gauge,
            |f| last().for_each(|(l, x)| f.sample(l, u64::from(x.redirects))),
        );
        e.family(
            "probe_ssl_earliest_cert_expiry",
            "Unix time at which the earliest-expiring certificate the target presented expires.",
            Kind::Gauge,
            |f| {
                for (l, s) in each() {
                    if let Some(t) = s.cert_not_after {
                        f.sample(l, t as f64);
                    }
                }
            },
        );
        e.family(
            "lookout_credential_expiry_timestamp_seconds",
            "Unix time at which a credential the check sends expires: a JWT's exp (source configured or fetched) or the expires its [secrets] entry declares (declared).",
            Kind::Gauge,
            |f| {
                for ((l, s), configured) in each().zip(&self.configured) {
                    for (labels, at) in configured {
                        f.sample(labels, *at as f64);
                    }
                    if let Some(fetched) = &s.fetched {
                        f.sample_labels(
                            l,
                            &[
                                ("credential", &fetched.fingerprint),
                                ("source", "fetched"),
                            ],
                            fetched.expires_at as f64,
                        );
                    }
                }
            },
        );
        for &(name, help, kind) in kinds::FAMILIES {
            e.family(name, help, kind, |f| {
                kinds::write_family(f, name, each().map(|(l, s)| (l, s.kind.as_slice())));
            });
        }
        e.family(
            "lookout_check_last_run_timestamp_seconds",
            "Unix time at which the check's last run started.",
            Kind::Gauge,
            |f| last().for_each(|(l, x)| f.sample(l, x.started_at)),
        );
        e.family(
            "lookout_check_duration_seconds",
            "Duration of check runs.",
            Kind::Histogram,
            |f| {
                for (l, s) in each().filter(|(_, s)| s.last.is_some()) {
                    f.histogram(l, &DURATION_LE, &s.buckets, s.duration_sum);
                }
            },
        );
        e.family(
            "lookout_check_runs_total",
            "Check runs by outcome: success or the failure kind.",
            Kind::Counter,
            |f| {
                for (l, s) in each() {
                    // An outcome's series appears with its first run, as
                    // with the prometheus crate's vectors.
                    for (outcome, &n) in Outcome::labels().zip(&s.runs) {
                        if n > 0 {
                            f.sample_with(l, "outcome", outcome, n);
                        }
                    }
                }
            },
        );
        e.family(
            "lookout_check_skipped_runs_total",
            "Scheduled runs skipped because the previous run was still going.",
            Kind::Counter,
            |f| {
                for (l, s) in each().filter(|(_, s)| s.skipped > 0) {
                    f.sample(l, s.skipped);
                }
            },
        );
    }
}
