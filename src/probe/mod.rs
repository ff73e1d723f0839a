//! Talking to targets. One module per kind of probe; each returns an
//! [`Observation`] (what was seen) and leaves the verdict to `judge`.

pub mod http;
pub mod tls;
pub mod trace;

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;

use crate::config::Config;
use crate::outcome::{FailureKind, Phases};
use tls::{TlsProfile, TlsSetupError};

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

/// The TLS profiles of a config, built once, indexed like `Config::tls_profiles`.
pub struct Prober {
    profiles: Vec<TlsProfile>,
}

impl Prober {
    pub fn new(config: &Config) -> Result<Prober, TlsSetupError> {
        let profiles = config
            .tls_profiles
            .iter()
            .map(|settings| {
                if settings.insecure_skip_verify {
                    tracing::warn!(
                        "a check uses tls.insecure_skip_verify: certificates are NOT verified for it"
                    );
                }
                TlsProfile::build(settings)
            })
            .collect::<Result<_, _>>()?;
        Ok(Prober { profiles })
    }

    pub fn profile(&self, index: usize) -> Option<&TlsProfile> {
        self.profiles.get(index)
    }
}
