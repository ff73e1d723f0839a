//! The fleet's picture: many lookout processes (shards, locations, HA
//! replicas) joined by Prometheus, read back as one status view.
//!
//! Prometheus does the joining (deploy/prometheus/rules/lookout-global.yml:
//! replicas merged per location, the quorum verdict over locations, down
//! locations); `query` reads those series and the raw per-location details
//! (status codes, durations) into a [`Snapshot`]; [`Snapshot::view`] turns
//! it into the same `StatusView` a single instance serves, with each
//! check's result per location and a diagnosis line such as "fails from
//! edge (404), passes from internal (200)". `server` serves it as
//! `lookout view`. Nothing here probes anything.

pub mod query;
pub mod server;

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::config::{Check, Config, Flow};
use crate::record::board::State;
use crate::serve::view::{
    self, CheckView, FlowView, GroupView, LocationResult, LocationView, ScoreView, StatusView,
    StepView,
};

/// One check's or flow's last result from one location.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Seen {
    pub ok: bool,
    pub status: Option<u16>,
    pub duration: Option<f64>,
    pub last_run: Option<f64>,
    /// Flows: each step's result, by step name.
    pub steps: BTreeMap<String, (bool, Option<u16>)>,
    pub steps_passed: Option<f64>,
    pub steps_total: Option<f64>,
}

/// A check or flow across the fleet.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Monitor {
    pub name: String,
    pub group: String,
    /// By location (`""` without a `location` label).
    pub seen: BTreeMap<String, Seen>,
    /// From the quorum rule: fails from more than half of its usable locations.
    pub quorum_failing: Option<bool>,
    pub uptime_24h: Option<f64>,
    /// Unix seconds.
    pub tls_not_after: Option<f64>,
}

/// A location's own score, from the rules.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Place {
    pub score: Option<f64>,
    pub down: bool,
}

/// Everything `lookout view` shows, as read at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub at: DateTime<Utc>,
    pub checks: Vec<Monitor>,
    pub flows: Vec<Monitor>,
    pub locations: BTreeMap<String, Place>,
}

impl Monitor {
    /// Passing, failing or pending, by the quorum rule.
    pub fn state(&self) -> State {
        match self.quorum_failing {
            _ if self.seen.is_empty() => State::Pending,
            Some(true) => State::Failing,
            Some(false) => State::Passing,
            // No verdict yet (the rules run on Prometheus' next evaluation).
            None => State::Pending,
        }
    }

    /// "fails from edge (404), passes from internal (200)"; `None` while
    /// it passes from everywhere. Down locations are named as such.
    pub fn diagnosis(&self, places: &BTreeMap<String, Place>) -> Option<String> {
        let down = |l: &str| places.get(l).is_some_and(|p| p.down);
        let shown = |l: &str, s: &Seen| {
            let name = if l.is_empty() { "here" } else { l };
            match s.status {
                Some(code) if code > 0 => format!("{name} ({code})"),
                _ => format!("{name} (no answer)"),
            }
        };
        let failing: Vec<String> = self
            .seen
            .iter()
            .filter(|(l, s)| !s.ok && !down(l))
            .map(|(l, s)| shown(l, s))
            .collect();
        if failing.is_empty() {
            return None;
        }
        let passing: Vec<String> = self
            .seen
            .iter()
            .filter(|(l, s)| s.ok && !down(l))
            .map(|(l, s)| shown(l, s))
            .collect();
        let cut_off: Vec<&str> = self
            .seen
            .keys()
            .filter(|l| down(l))
            .map(String::as_str)
            .collect();
        let mut text = format!("fails from {}", failing.join(", "));
        if !passing.is_empty() {
            text.push_str(&format!(", passes from {}", passing.join(", ")));
        }
        if !cut_off.is_empty() {
            text.push_str(&format!(" ({} down)", cut_off.join(", ")));
        }
        Some(text)
    }

    fn location_results(&self, places: &BTreeMap<String, Place>) -> Vec<LocationResult> {
        self.seen
            .iter()
            .map(|(l, s)| LocationResult {
                location: l.clone(),
                state: if places.get(l).is_some_and(|p| p.down) {
                    "down"
                } else if s.ok {
                    "passing"
                } else {
                    "failing"
                },
                status_code: s.status,
                duration_seconds: s.duration,
            })
            .collect()
    }

    /// Where to read a single status or duration: the first failing usable
    /// location, else the first.
    fn representative(&self, places: &BTreeMap<String, Place>) -> Option<&Seen> {
        self.seen
            .iter()
            .find(|(l, s)| !s.ok && !places.get(*l).is_some_and(|p| p.down))
            .or_else(|| self.seen.iter().next())
            .map(|(_, s)| s)
    }

    fn last_run(&self) -> Option<DateTime<Utc>> {
        self.seen
            .values()
            .filter_map(|s| s.last_run)
            .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))))
            .and_then(|t| DateTime::from_timestamp_millis((t * 1000.0) as i64))
    }
}

/// A monitor with no result for each of `configured` (name, group) that
/// `known` does not hold.
fn unseen<'a>(
    known: &[Monitor],
    configured: impl Iterator<Item = (&'a str, &'a str)>,
) -> Vec<Monitor> {
    let known: HashSet<&str> = known.iter().map(|m| m.name.as_str()).collect();
    configured
        .filter(|(name, _)| !known.contains(name))
        .map(|(name, group)| Monitor {
            name: name.to_owned(),
            group: group.to_owned(),
            ..Monitor::default()
        })
        .collect()
}

/// Counts of passing, failing and pending monitors.
fn tally<'a>(monitors: impl Iterator<Item = &'a Monitor>) -> ScoreView {
    let (mut passing, mut failing, mut pending) = (0, 0, 0);
    for m in monitors {
        match m.state() {
            State::Passing => passing += 1,
            State::Failing => failing += 1,
            State::Pending => pending += 1,
        }
    }
    ScoreView::of(passing, failing, pending)
}

impl Snapshot {
    /// The overall and per-group scores: monitors that do not fail by
    /// quorum, over those with a verdict (6 of 11 is 54.5 %).
    pub fn scores(&self) -> (ScoreView, Vec<GroupView>) {
        let all = || self.checks.iter().chain(&self.flows);
        let mut groups: BTreeMap<&str, Vec<&Monitor>> = BTreeMap::new();
        for m in all() {
            groups.entry(&m.group).or_default().push(m);
        }
        let groups = groups
            .into_iter()
            .map(|(name, ms)| GroupView {
                name: name.to_owned(),
                score: tally(ms.into_iter()),
            })
            .collect();
        (tally(all()), groups)
    }

    /// The status view of the fleet. With the config, checks and flows get
    /// their URL, method, schedule and step order from it, and those the
    /// fleet has no result for yet show as pending.
    pub fn view(&self, config: Option<&Config>) -> StatusView {
        let (overall, groups) = self.scores();
        let redactor = config.map(|c| c.redactor.clone()).unwrap_or_default();
        // By name, once: a lookup per monitor would be quadratic at 10k.
        let configured_checks: HashMap<&str, &Check> = config
            .map(|c| {
                c.checks
                    .iter()
                    .map(|c| (c.name.as_str(), c.as_ref()))
                    .collect()
            })
            .unwrap_or_default();
        let configured_flows: HashMap<&str, &Flow> = config
            .map(|c| {
                c.flows
                    .iter()
                    .map(|f| (f.name.as_str(), f.as_ref()))
                    .collect()
            })
            .unwrap_or_default();
        let mut checks: Vec<CheckView> = self
            .checks
            .iter()
            .map(|m| {
                self.check_view(
                    m,
                    configured_checks.get(m.name.as_str()).copied(),
                    &redactor,
                )
            })
            .collect();
        let mut flows: Vec<FlowView> = self
            .flows
            .iter()
            .map(|m| self.flow_view(m, configured_flows.get(m.name.as_str()).copied(), &redactor))
            .collect();
        if let Some(config) = config {
            // What the file defines and the fleet has no result for yet.
            let names = config
                .checks
                .iter()
                .map(|c| (c.name.as_str(), c.group.as_str()));
            for m in unseen(&self.checks, names) {
                let configured = configured_checks.get(m.name.as_str()).copied();
                checks.push(self.check_view(&m, configured, &redactor));
            }
            let names = config
                .flows
                .iter()
                .map(|f| (f.name.as_str(), f.group.as_str()));
            for m in unseen(&self.flows, names) {
                let configured = configured_flows.get(m.name.as_str()).copied();
                flows.push(self.flow_view(&m, configured, &redactor));
            }
        }
        let locations = self
            .locations
            .iter()
            .map(|(name, place)| {
                let here = |m: &&Monitor| m.seen.contains_key(name);
                let monitors: Vec<&Monitor> =
                    self.checks.iter().chain(&self.flows).filter(here).collect();
                let passing = monitors
                    .iter()
                    .filter(|m| m.seen.get(name).is_some_and(|s| s.ok))
                    .count() as u64;
                let mut score = ScoreView::of(passing, monitors.len() as u64 - passing, 0);
                // The rule's figure, where it has one: the same arithmetic.
                if place.score.is_some() {
                    score.score = place.score;
                }
                LocationView {
                    name: name.clone(),
                    score,
                    down: place.down,
                }
            })
            .collect();
        // Prometheus' series name checks; the file says which entry each
        // came from, so with it the fleet's verdicts make the grids (and,
        // by quorum, say which route breaks).
        let grids = match config {
            Some(config) => {
                let by_name: HashMap<&str, &CheckView> =
                    checks.iter().map(|c| (c.name.as_str(), c)).collect();
                let monitors: HashMap<&str, &Monitor> =
                    self.checks.iter().map(|m| (m.name.as_str(), m)).collect();
                crate::serve::grid::layout(config.checks.iter().filter_map(|c| {
                    let seen = by_name.get(c.name.as_str())?;
                    let mut cell = crate::serve::view::GridCell::of(seen);
                    // The status of a location that agrees with the
                    // quorum's verdict: a route passing by quorum shows a
                    // 200, not one location's 503.
                    let passing = cell.state == State::Passing;
                    if let Some(agreeing) = monitors
                        .get(c.name.as_str())
                        .and_then(|m| m.seen.values().find(|s| s.ok == passing))
                    {
                        cell.status_code = agreeing.status.filter(|&s| s != 0);
                    }
                    Some((c.as_ref(), cell))
                }))
            }
            None => Vec::new(),
        };
        StatusView {
            generated_at: self.at,
            overall,
            groups,
            checks,
            grids,
            flows,
            changes: Vec::new(),
            store_degraded: None,
            instance: None,
            locations,
            source: None,
        }
    }

    fn check_view(
        &self,
        m: &Monitor,
        configured: Option<&Check>,
        redactor: &crate::secret::Redactor,
    ) -> CheckView {
        let one = m.representative(&self.locations);
        let state = m.state();
        CheckView {
            name: m.name.clone(),
            group: m.group.clone(),
            state,
            counting: None,
            method: configured.map_or_else(String::new, |c| c.probe.verb()),
            url: configured.map_or_else(String::new, |c| {
                redactor.redact(&c.probe.address()).into_owned()
            }),
            schedule: configured.map_or_else(String::new, |c| c.schedule.describe()),
            auth: configured.and_then(|c| c.probe.auth().and_then(view::auth_view)),
            status_code: one.and_then(|s| s.status).filter(|&c| c > 0),
            duration_seconds: one.and_then(|s| s.duration),
            outcome: match state {
                State::Passing => Some("success"),
                _ => None,
            },
            reason: m.diagnosis(&self.locations),
            last_run: m.last_run(),
            since: None,
            phases: None,
            tls_not_after: m
                .tls_not_after
                .and_then(|t| DateTime::from_timestamp(t as i64, 0)),
            skipped_runs: 0,
            uptime_24h: m.uptime_24h,
            uptime_7d: None,
            recent: Vec::new(),
            last_failure: None,
            link: "/api/v1/status".to_owned(),
            locations: m.location_results(&self.locations),
            burst: Vec::new(),
        }
    }

    fn flow_view(
        &self,
        m: &Monitor,
        configured: Option<&Flow>,
        redactor: &crate::secret::Redactor,
    ) -> FlowView {
        // Step order from the config; without it, by name (Prometheus
        // keeps no order, and a step that was skipped reads as failed).
        let names: Vec<String> = match configured {
            Some(f) => f.steps.iter().map(|s| s.name.clone()).collect(),
            None => {
                let mut all: Vec<String> = m
                    .seen
                    .values()
                    .flat_map(|s| s.steps.keys().cloned())
                    .collect();
                all.sort();
                all.dedup();
                all
            }
        };
        // Each location's status: its first failing step's, else its last
        // step's, in that order; the diagnosis reads it.
        let mut m = m.clone();
        for s in m.seen.values_mut() {
            let ordered = names.iter().filter_map(|n| s.steps.get(n));
            s.status = ordered
                .clone()
                .find(|(ok, _)| !ok)
                .or_else(|| ordered.clone().next_back())
                .and_then(|(_, code)| *code);
        }
        let m = &m;
        let one = m.representative(&self.locations);
        let state = m.state();
        let first_failed = names
            .iter()
            .position(|n| one.and_then(|s| s.steps.get(n)).is_some_and(|(ok, _)| !ok));
        let steps: Vec<StepView> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let step = configured.and_then(|f| f.steps.iter().find(|s| &s.name == name));
                let result = one.and_then(|s| s.steps.get(name));
                StepView {
                    name: name.clone(),
                    method: step.map_or_else(String::new, |s| s.request.method.to_string()),
                    url: step.map_or_else(String::new, |s| {
                        redactor.redact(&s.request.url).into_owned()
                    }),
                    auth: step.and_then(|s| view::auth_view(&s.request.auth)),
                    state: match result {
                        None => "pending",
                        Some((true, _)) => "passed",
                        // In config order, steps after the first failure
                        // did not run.
                        Some((false, _)) if configured.is_some() && first_failed < Some(i) => {
                            "skipped"
                        }
                        Some((false, _)) => "failed",
                    },
                    outcome: None,
                    status_code: result.and_then(|(_, code)| *code).filter(|&c| c > 0),
                    duration_seconds: None,
                    reason: None,
                    burst: Vec::new(),
                }
            })
            .collect();
        let total = configured.map_or_else(
            || one.and_then(|s| s.steps_total).unwrap_or(0.0) as usize,
            |f| f.steps.len(),
        );
        let passed = one.and_then(|s| s.steps_passed).map(|p| p as usize);
        FlowView {
            name: m.name.clone(),
            group: m.group.clone(),
            state,
            counting: None,
            schedule: configured.map_or_else(String::new, |f| f.schedule.describe()),
            timeout_seconds: configured.map_or(0.0, |f| f.timeout.as_secs_f64()),
            duration_seconds: one.and_then(|s| s.duration),
            outcome: match state {
                State::Passing => Some("success"),
                _ => None,
            },
            reason: m.diagnosis(&self.locations),
            last_run: m.last_run(),
            since: None,
            skipped_runs: 0,
            steps_passed: passed,
            steps_total: total,
            stage_score: passed.map(|p| p as f64 / total.max(1) as f64),
            failed_step: steps
                .iter()
                .find(|s| s.state == "failed")
                .map(|s| s.name.clone()),
            cleanup_failed: false,
            captured: Vec::new(),
            steps,
            cleanup: Vec::new(),
            uptime_24h: m.uptime_24h,
            uptime_7d: None,
            recent: Vec::new(),
            last_failure: None,
            link: "/api/v1/status".to_owned(),
            locations: m.location_results(&self.locations),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(ok: bool, status: u16) -> Seen {
        Seen {
            ok,
            status: Some(status),
            ..Seen::default()
        }
    }

    fn monitor(results: &[(&str, bool, u16)], quorum: Option<bool>) -> Monitor {
        Monitor {
            name: "mlflow-route".into(),
            group: "ml".into(),
            seen: results
                .iter()
                .map(|(l, ok, code)| ((*l).to_owned(), seen(*ok, *code)))
                .collect(),
            quorum_failing: quorum,
            ..Monitor::default()
        }
    }

    #[test]
    fn diagnosis_names_where_it_fails_and_passes() {
        let none = BTreeMap::new();
        let cases = [
            (vec![("edge", true, 200), ("internal", true, 200)], None),
            (
                vec![("edge", false, 404), ("internal", true, 200)],
                Some("fails from edge (404), passes from internal (200)"),
            ),
            (
                vec![("a", false, 502), ("b", false, 0), ("c", true, 200)],
                Some("fails from a (502), b (no answer), passes from c (200)"),
            ),
            (vec![("", false, 503)], Some("fails from here (503)")),
        ];
        for (results, want) in cases {
            let m = monitor(&results, Some(false));
            assert_eq!(m.diagnosis(&none).as_deref(), want, "{results:?}");
        }
        let places: BTreeMap<String, Place> = [(
            "b".to_owned(),
            Place {
                score: Some(0.0),
                down: true,
            },
        )]
        .into();
        let m = monitor(
            &[("a", false, 502), ("b", false, 0), ("c", true, 200)],
            None,
        );
        assert_eq!(
            m.diagnosis(&places).as_deref(),
            Some("fails from a (502), passes from c (200) (b down)")
        );
    }

    /// A flow's steps in the config's order: after the first failure they
    /// were skipped, and the flow's status is the failing step's.
    #[test]
    fn flow_steps_follow_the_config_order() {
        let config = crate::config::from_str(
            "[store]\npath = \":memory:\"\n[[flows]]\nname = \"reg\"\n\
             [[flows.steps]]\nname = \"create\"\nurl = \"http://127.0.0.1:9/\"\n\
             [[flows.steps]]\nname = \"attach\"\nurl = \"http://127.0.0.1:9/\"\n\
             [[flows.steps]]\nname = \"verify\"\nurl = \"http://127.0.0.1:9/\"\n",
            std::path::Path::new("t.toml"),
            &|_| None,
        )
        .unwrap();
        let steps: BTreeMap<String, (bool, Option<u16>)> = [
            ("create".to_owned(), (false, Some(500))),
            ("attach".to_owned(), (false, Some(0))),
            ("verify".to_owned(), (false, Some(0))),
        ]
        .into();
        let snapshot = Snapshot {
            flows: vec![Monitor {
                name: "reg".into(),
                group: "default".into(),
                seen: [(
                    "eu".to_owned(),
                    Seen {
                        ok: false,
                        steps,
                        steps_passed: Some(0.0),
                        steps_total: Some(3.0),
                        ..Seen::default()
                    },
                )]
                .into(),
                quorum_failing: Some(true),
                ..Monitor::default()
            }],
            ..Snapshot::default()
        };
        let view = snapshot.view(Some(&config));
        let flow = &view.flows[0];
        let states: Vec<(&str, &str)> = flow
            .steps
            .iter()
            .map(|s| (s.name.as_str(), s.state))
            .collect();
        assert_eq!(
            states,
            [
                ("create", "failed"),
                ("attach", "skipped"),
                ("verify", "skipped")
            ]
        );
        assert_eq!(flow.reason.as_deref(), Some("fails from eu (500)"));
        assert_eq!(flow.failed_step.as_deref(), Some("create"));
    }

    /// With the file, the fleet's view has the grids, and a route
    /// comparison judged by quorum names the route that breaks.
    #[test]
    fn the_fleet_view_has_grids_from_the_file() {
        let config = crate::config::from_str_with(
            "[store]\npath = \":memory:\"\n[[checks]]\nname = \"mlflow\"\ngroup = \"ml\"\n\
             url = \"/search\"\nroutes = { proxy = \"http://p.test/api\", internal = \"http://m.test\" }\n",
            std::path::Path::new("t.toml"),
            &|_| None,
            &crate::config::ClusterOverrides::whole_file(),
        )
        .unwrap();
        let route = |name: &str, ok: bool, status: u16| Monitor {
            name: format!("mlflow[route={name}]"),
            group: "ml".into(),
            // One location disagrees: its answer is not the cell's.
            seen: [
                ("a".to_owned(), seen(!ok, 503)),
                ("b".to_owned(), seen(ok, status)),
                ("c".to_owned(), seen(ok, status)),
            ]
            .into(),
            quorum_failing: Some(!ok),
            ..Monitor::default()
        };
        let snapshot = Snapshot {
            checks: vec![route("proxy", false, 404), route("internal", true, 200)],
            ..Snapshot::default()
        };
        let view = snapshot.view(Some(&config));
        assert_eq!(view.grids.len(), 1);
        assert_eq!(
            view.grids[0].rows[0].diagnosis.as_deref(),
            Some("fails via proxy (404), passes via internal (200): the proxy route is missing")
        );
        assert!(snapshot.view(None).grids.is_empty(), "no file, no entries");
    }

    #[test]
    fn state_and_scores_follow_the_quorum() {
        let snapshot = Snapshot {
            checks: (0..11)
                .map(|i| Monitor {
                    name: format!("c{i}"),
                    group: if i < 4 { "auth" } else { "infra" }.into(),
                    seen: [("".to_owned(), seen(i < 6, 200))].into(),
                    quorum_failing: Some(i >= 6),
                    ..Monitor::default()
                })
                .collect(),
            ..Snapshot::default()
        };
        let (overall, groups) = snapshot.scores();
        assert_eq!((overall.passing, overall.failing), (6, 5));
        assert_eq!(overall.percent(), "54.5%");
        assert_eq!(groups[0].name, "auth");
        assert_eq!(groups[0].score.percent(), "100.0%");
        assert_eq!(groups[1].score.percent(), "28.6%");
        assert_eq!(monitor(&[], Some(true)).state(), State::Pending);
        assert_eq!(monitor(&[("a", false, 1)], None).state(), State::Pending);
    }
}
