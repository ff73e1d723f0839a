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
