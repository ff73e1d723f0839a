//! What a probe observed: filled in by a probe kind, read by judge.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;

use crate::outcome::{FailureKind, FetchedCredential, Phases};
pub use crate::seen::{Seen, TlsSeen};

/// What a probe saw. Transport failures are already classified; every text
/// in `error` is already redacted.
#[derive(Debug, Default)]
pub struct Observation {
    /// HTTP: the final response's status.
    pub status: Option<u16>,
    pub headers: HeaderMap,
    /// HTTP: at most `max_body_bytes` of the final response's body.
    pub body: Vec<u8>,
    pub duration: Duration,
    /// HTTP's phases; `resolve` and `connect` for every kind that has them.
    pub phases: Phases,
    pub redirects: u32,
    /// `notAfter` of the earliest-expiring certificate presented.
    pub tls_not_after: Option<DateTime<Utc>>,
    /// The handshake, for every kind that did one.
    pub tls: Option<TlsSeen>,
    /// What only one kind sees.
    pub seen: Seen,
    pub error: Option<(FailureKind, String)>,
    /// HTTP with OAuth2: the fetched token sent, when it is a JWT with an `exp`.
    pub fetched_credential: Option<FetchedCredential>,
}

impl Observation {
    pub fn failed(kind: FailureKind, reason: impl Into<String>) -> Observation {
        Observation {
            error: Some((kind, reason.into())),
            ..Observation::default()
        }
    }
}

/// What a burst (`repeat`) saw: its answers in order, the last one whole
/// (headers and body, for the expectations judged on it), the others with
/// their status, timing, `Content-Type` and at most
/// [`BurstObservation::KEPT_BODY`] bytes of body (for the reason's quote). A transport failure ends the burst:
/// then the last answer holds the failure and fewer than `repeat` came.
#[derive(Debug, Default)]
pub struct BurstObservation {
    pub answers: Vec<Observation>,
    /// How many were to be sent.
    pub repeat: u32,
    /// From the first send to the last answer read.
    pub took: Duration,
}

impl BurstObservation {
    /// The body kept of every answer but the last.
    pub const KEPT_BODY: usize = 16 * 1024;

    /// Every answer's status, `None` for one that never came (a transport
    /// failure and the answers not sent after it), `repeat` long.
    pub fn statuses(&self) -> Vec<Option<u16>> {
        let mut out: Vec<Option<u16>> = self.answers.iter().map(|a| a.status).collect();
        out.resize(self.repeat as usize, None);
        out
    }

    /// The last answer (its duration made the whole burst's) and every
    /// answer's status: what a result keeps.
    pub fn into_last(mut self) -> (Observation, Vec<Option<u16>>) {
        let statuses = self.statuses();
        let mut last = self.answers.pop().unwrap_or_default();
        last.duration = self.took;
        (last, statuses)
    }
}
