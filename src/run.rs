//! One run of a check or a flow, from request to result, with panics
//! contained: the daemon's scheduler and `lookout report` both go through
//! here, so a report judges exactly as the daemon does.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;

use crate::config::{Check, Config, Flow};
use crate::flow::FlowRunner;
use crate::judge::{judge_burst, judge_target};
use crate::outcome::{CheckResult, FailureKind, FlowResult, Outcome, StepResult, StepRun};
use crate::probe::tls::TlsSetupError;
use crate::probe::{Observation, Prober};
use crate::schedule::{Limits, Tick};
use crate::secret::SharedRedactor;
use crate::template::Templater;

/// Everything a run needs, built once per config.
pub struct Runner {
    prober: Prober,
    redactor: SharedRedactor,
    templater: Templater,
}

impl Runner {
    pub fn new(config: &Config) -> Result<Runner, TlsSetupError> {
        Runner::sharing(config, SharedRedactor::new(config.redactor.clone()))
    }

    /// A runner that scrubs with `redactor`, which a reload updates.
    pub fn sharing(config: &Config, redactor: SharedRedactor) -> Result<Runner, TlsSetupError> {
        Ok(Runner {
            prober: Prober::learning_into(&config.tls_profiles, redactor.learned())?,
            redactor,
            templater: Templater::default(),
        })
    }

    /// Probes and judges one check. A panic while probing or judging is a
    /// bug, but it must not take the check's schedule (or the daemon) with
    /// it: it becomes a failed result of kind `internal`.
    pub async fn check(&self, check: &Check, tick: Tick) -> CheckResult {
        let redactor = self.redactor.get();
        let probe_and_judge = async {
            injected_panic();
            // A burst (HTTP only): the same request `repeat` times, judged
            // as a sequence; the result keeps the last answer and every status.
            if let (Some(burst), Some(request)) = (check.burst, check.probe.http()) {
                let mut seen = self.prober.burst(request, burst.repeat, &redactor).await;
                for answer in &mut seen.answers {
                    scrub_certificate(answer, &redactor);
                }
                let outcome = judge_burst(&check.expect, burst, &seen, &redactor);
                let (obs, statuses) = seen.into_last();
                return (obs, outcome, statuses);
            }
            let mut obs = self.prober.probe(&check.probe, &redactor).await;
            scrub_certificate(&mut obs, &redactor);
            let outcome = judge_target(&check.probe, &check.expect, &obs, &redactor);
            (obs, outcome, Vec::new())
        };
        let (obs, outcome, burst) = contained(probe_and_judge, || {
            tracing::error!(check = %check.name, "probe panicked; recorded as an internal failure");
            let reason = "the probe panicked (a bug in lookout; see the log)".to_owned();
            (
                Observation::failed(FailureKind::Internal, reason.clone()),
                Outcome::Failure {
                    kind: FailureKind::Internal,
                    reason,
                },
                Vec::new(),
            )
        })
        .await;
        CheckResult {
            started_at: tick.started,
            duration: obs.duration,
            status: obs.status,
            outcome,
            phases: obs.phases,
            redirects: obs.redirects,
            tls_not_after: obs.tls_not_after,
            tls: obs.tls,
            seen: obs.seen,
            schedule_lag: tick.lag,
            fetched_credential: obs.fetched_credential,
            burst,
        }
    }

    /// Runs one flow, panics contained as for checks.
    pub async fn flow(&self, flow: &Flow, tick: Tick) -> FlowResult {
        let redactor = self.redactor.get();
        let runner = FlowRunner {
            prober: &self.prober,
            redactor: &redactor,
            templater: &self.templater,
        };
        let run = async {
            injected_panic();
            runner.run(flow, tick).await
        };
        contained(run, || {
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
                    burst: Vec::new(),
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
        })
        .await
    }
}

/// The certificate's text becomes metric labels and API fields: scrubbed
/// like any other text from a target.
fn scrub_certificate(obs: &mut Observation, redactor: &crate::secret::Redactor) {
    if let Some(tls) = &mut obs.tls {
        for text in [&mut tls.subject, &mut tls.issuer]
            .into_iter()
            .chain(tls.san.iter_mut())
        {
            if let std::borrow::Cow::Owned(clean) = redactor.redact(text) {
                *text = clean;
            }
        }
    }
}

// Unit tests make the next run on their thread panic where a bug would, to
// prove the panic is contained there; outside tests this is nothing.
#[cfg(test)]
thread_local! {
    static INJECT_PANIC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn injected_panic() {
    #[cfg(test)]
    if INJECT_PANIC.with(|p| p.replace(false)) {
        panic!("a panic injected by a test");
    }
}

/// Runs `fut`; a panic inside it becomes `on_panic()`'s value instead of
/// unwinding into the schedule task.
async fn contained<T>(fut: impl Future<Output = T>, on_panic: impl FnOnce() -> T) -> T {
    AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .unwrap_or_else(|_| on_panic())
}

/// Every check and flow of a config, run once.
pub struct Once {
    pub checks: Vec<(Arc<Check>, CheckResult)>,
    pub flows: Vec<(Arc<Flow>, FlowResult)>,
}

/// Runs every check and flow once and returns the results in config order.
/// Runs wait for the daemon's limits ([`Limits`]: `max_concurrent_per_target`
/// against one target, `max_concurrent_probes` in all, a flow holding its
/// slot for all its steps), so a target answers a report as it answers the
/// daemon.
pub async fn run_once(config: &Config) -> Result<Once, TlsSetupError> {
    let runner = Runner::new(config)?;
    let limits = Limits::new(
        config.max_concurrent_probes,
        config.max_concurrent_per_target,
    );
    let checks = config.checks.iter().map(|c| {
        let slot = limits.slot([c.target()]);
        let runner = &runner;
        async move {
            let _permits = slot.acquire().await;
            (c.clone(), runner.check(c, Tick::now()).await)
        }
    });
    let flows = config.flows.iter().map(|f| {
        let slot = limits.slot(f.targets());
        let runner = &runner;
        async move {
            let _permits = slot.acquire().await;
            (f.clone(), runner.flow(f, Tick::now()).await)
        }
    });
    let (checks, flows) = futures_util::future::join(
        futures_util::future::join_all(checks),
        futures_util::future::join_all(flows),
    )
    .await;
    Ok(Once { checks, flows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_the_fallback_value() {
        let fallback = contained(async { panic!("a bug in a probe") }, || 7).await;
        assert_eq!(fallback, 7);
        assert_eq!(contained(async { 1 }, || 7).await, 1);
    }

    fn tick() -> Tick {
        Tick::now()
    }

    fn internal(outcome: &Outcome) -> bool {
        matches!(
            outcome,
            Outcome::Failure {
                kind: FailureKind::Internal,
                ..
            }
        )
    }

    /// A panic in a real run of a check or a flow, where a bug in the probe
    /// would panic, becomes one failed result of kind `internal`, and the
    /// next run is normal again.
    #[tokio::test]
    async fn a_panicking_run_is_an_internal_failure() {
        let config = crate::config::from_str(
            "[store]\npath = \":memory:\"\n\
             [[checks]]\nname = \"c\"\nurl = \"http://127.0.0.1:9/\"\ntimeout = \"1s\"\n\
             [[flows]]\nname = \"f\"\n[[flows.steps]]\nname = \"s\"\nurl = \"http://127.0.0.1:9/\"\ntimeout = \"1s\"\n",
            std::path::Path::new("lookout.toml"),
            &|_| None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let runner = Runner::new(&config).unwrap();
        let (check, flow) = (&config.checks[0], &config.flows[0]);

        INJECT_PANIC.with(|p| p.set(true));
        let result = runner.check(check, tick()).await;
        assert!(internal(&result.outcome), "{:?}", result.outcome);
        let result = runner.check(check, tick()).await;
        assert!(!internal(&result.outcome), "{:?}", result.outcome);

        INJECT_PANIC.with(|p| p.set(true));
        let result = runner.flow(flow, tick()).await;
        assert_eq!(result.steps.len(), 1);
        match &result.steps[0].run {
            StepRun::Ran(outcome) => assert!(internal(outcome), "{outcome:?}"),
            other => panic!("{other:?}"),
        }
    }
}
