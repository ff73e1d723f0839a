//! What a probe observed: filled in by a probe kind, read by judge.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;

use crate::outcome::{FailureKind, Phases};

/// What a probe saw. Transport failures are already classified; every text
/// in `error` is already redacted.
#[derive(Debug, Default)]
pub struct Observation {
    pub status: Option<u16>,
    pub headers: HeaderMap,
    /// At most `max_body_bytes` of the final response's body.
    pub body: Vec<u8>,
    pub duration: Duration,
    pub phases: Phases,
    pub redirects: u32,
    pub tls_not_after: Option<DateTime<Utc>>,
    pub error: Option<(FailureKind, String)>,
}

impl Observation {
    pub fn failed(kind: FailureKind, reason: impl Into<String>) -> Observation {
        Observation {
            error: Some((kind, reason.into())),
            ..Observation::default()
        }
    }
}
