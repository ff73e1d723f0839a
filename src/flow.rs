//! Running a flow: its steps in order on one run's variables, then its
//! cleanup steps.
//!
//! Each step is an ordinary probe and verdict (`probe::http`, `judge`); what
//! this module adds is the run's context: rendering each step's request from
//! the variables known so far, capturing values from responses, skipping
//! the rest after a failure, and keeping the whole run inside the flow's
//! timeout. Cleanup steps always get their turn, each only if every value
//! it uses was captured.

use std::time::{Duration, Instant};

use crate::config::{CaptureFrom, Flow, Step};
use crate::judge::{clean, judge, judge_burst};
use crate::outcome::{FailureKind, FlowResult, Outcome, StepResult, StepRun};
use crate::probe::{Observation, Prober};
use crate::schedule::Tick;
use crate::secret::Redactor;
use crate::template::{Templater, Vars};

/// Captured values longer than this fail the step: they end up in URLs,
/// headers and on the page.
pub const MAX_CAPTURE_BYTES: usize = 4096;

/// What every flow run needs, shared by all runs.
pub struct FlowRunner<'a> {
    pub prober: &'a Prober,
    pub redactor: &'a Redactor,
    pub templater: &'a Templater,
}

impl FlowRunner<'_> {
    pub async fn run(&self, flow: &Flow, tick: Tick) -> FlowResult {
        let started = Instant::now();
        let deadline = started + flow.timeout;
        let mut vars = flow.vars.clone();
        let id = uuid::Uuid::new_v4();
        vars.insert("uuid".to_owned(), id.to_string());
        // Short enough for resource names, unique enough for one flow's runs.
        vars.insert(
            "run_id".to_owned(),
            id.simple().to_string()[..12].to_owned(),
        );
        vars.insert(
            "now_ms".to_owned(),
            tick.started.timestamp_millis().to_string(),
        );
        let mut captured = Vec::new();

        let mut steps = Vec::with_capacity(flow.steps.len());
        let mut broken: Option<&str> = None;
        for step in &flow.steps {
            if let Some(failed) = broken {
                steps.push(skipped(step, format!("not run: step {failed:?} failed")));
                continue;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let result = if remaining.is_zero() {
                StepResult {
                    name: step.name.clone(),
                    run: StepRun::Ran(Outcome::Failure {
                        kind: FailureKind::Timeout,
                        reason: format!(
                            "the flow's timeout of {} was used up before this step",
                            humantime::format_duration(flow.timeout)
                        ),
                    }),
                    status: None,
                    duration: Duration::ZERO,
                    burst: Vec::new(),
                }
            } else {
                self.step(
                    step,
                    &mut vars,
                    &mut captured,
                    Some((remaining, flow.timeout)),
                )
                .await
            };
            if !result.passed() {
                broken = Some(&step.name);
            }
            steps.push(result);
        }

        let mut cleanup = Vec::with_capacity(flow.cleanup.len());
        for step in &flow.cleanup {
            let missing: Vec<&str> = step
                .uses
                .iter()
                .filter(|v| !vars.contains_key(*v))
                .map(String::as_str)
                .collect();
            if missing.is_empty() {
                cleanup.push(self.step(step, &mut vars, &mut captured, None).await);
            } else {
                cleanup.push(skipped(
                    step,
                    format!(
                        "not run: needs {}, which {} not captured",
                        missing.join(", "),
                        if missing.len() == 1 { "was" } else { "were" }
                    ),
                ));
            }
        }

        FlowResult {
            started_at: tick.started,
            duration: started.elapsed(),
            schedule_lag: tick.lag,
            steps,
            cleanup,
            captured,
        }
    }

    /// Runs one step; on success, adds its captures to `vars`. `budget` is
    /// what is left of the flow's timeout, and the timeout itself.
    async fn step(
        &self,
        step: &Step,
        vars: &mut Vars,
        captured: &mut Vec<(String, String)>,
        budget: Option<(Duration, Duration)>,
    ) -> StepResult {
        let mut statuses: Vec<Option<u16>> = Vec::new();
        let finish = |run: StepRun, obs: &Observation, burst: &[Option<u16>]| StepResult {
            name: step.name.clone(),
            run,
            status: obs.status,
            duration: obs.duration,
            burst: burst.to_vec(),
        };
        let mut request = match step.request.render(self.templater, vars) {
            Ok(r) => r,
            Err(e) => {
                let reason = self.redactor.redact(&e).into_owned();
                let obs = Observation::default();
                return finish(StepRun::Ran(fail(FailureKind::Template, reason)), &obs, &[]);
            }
        };
        let flow_bound = budget.filter(|(remaining, _)| *remaining < request.timeout);
        if let Some((remaining, _)) = flow_bound {
            request.timeout = remaining;
        }
        let (obs, mut outcome) = match step.burst {
            // Captures come from the last answer.
            Some(burst) => {
                let seen = self
                    .prober
                    .burst(&request, burst.repeat, self.redactor)
                    .await;
                let outcome = judge_burst(&step.expect, burst, &seen, self.redactor);
                let (obs, all) = seen.into_last();
                statuses = all;
                (obs, outcome)
            }
            None => {
                let obs = match self.prober.profile(request.tls_profile) {
                    Some(profile) => self.prober.http(&request, profile, self.redactor).await,
                    None => {
                        Observation::failed(FailureKind::Internal, "no TLS profile for this step")
                    }
                };
                let outcome = judge(&step.expect, &obs, self.redactor);
                (obs, outcome)
            }
        };
        if let (Outcome::Failure { kind, reason }, Some((_, flow_timeout))) =
            (&mut outcome, flow_bound)
            && *kind == FailureKind::Timeout
        {
            reason.push_str(&format!(
                " (the flow's timeout of {} ran out)",
                humantime::format_duration(flow_timeout)
            ));
        }
        if outcome.is_success() {
            let mut json: Option<Option<serde_json::Value>> = None;
            for capture in &step.captures {
                match capture_value(&capture.from, &obs, &mut json) {
                    Ok(value) => {
                        // Shown on the page: redacted, cut short.
                        captured.push((capture.var.clone(), clean(&value, self.redactor)));
                        vars.insert(capture.var.clone(), value);
                    }
                    Err(why) => {
                        let reason = format!("capture {}: {why}", capture.var);
                        return finish(
                            StepRun::Ran(fail(FailureKind::Capture, reason)),
                            &obs,
                            &statuses,
                        );
                    }
                }
            }
        }
        finish(StepRun::Ran(outcome), &obs, &statuses)
    }
}

fn fail(kind: FailureKind, reason: String) -> Outcome {
    Outcome::Failure { kind, reason }
}

fn skipped(step: &Step, why: String) -> StepResult {
    StepResult {
        name: step.name.clone(),
        run: StepRun::Skipped(why),
        status: None,
        duration: Duration::ZERO,
        burst: Vec::new(),
    }
}

/// The text of one capture. `json` caches the parsed body across captures.
fn capture_value(
    from: &CaptureFrom,
    obs: &Observation,
    json: &mut Option<Option<serde_json::Value>>,
) -> Result<String, String> {
    let value = match from {
        CaptureFrom::Header(name) => obs
            .headers
            .get(name)
            .ok_or_else(|| format!("the response has no {name} header"))?
            .to_str()
            .map_err(|_| format!("the {name} header is not text"))?
            .to_owned(),
        CaptureFrom::Json(pointer) => {
            let body = json
                .get_or_insert_with(|| serde_json::from_slice(&obs.body).ok())
                .as_ref()
                .ok_or("the response body is not JSON")?;
            match body.pointer(pointer) {
                None | Some(serde_json::Value::Null) => {
                    return Err(format!("no value at {pointer} in the response body"));
                }
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            }
        }
    };
    if value.is_empty() {
        return Err("the value is empty".to_owned());
    }
    if value.len() > MAX_CAPTURE_BYTES {
        return Err(format!(
            "the value is {} bytes, more than {MAX_CAPTURE_BYTES}",
            value.len()
        ));
    }
    Ok(value)
}
