//! Talking to targets. One module per kind of probe; each returns an
//! [`Observation`] (what was seen) and leaves the verdict to `judge`.

pub mod http;
pub mod tls;
pub mod trace;

pub use crate::model::Observation;
use crate::model::TlsSettings;
use tls::{TlsProfile, TlsSetupError};

/// The TLS profiles of a config, built once, indexed like `Config::tls_profiles`.
pub struct Prober {
    profiles: Vec<TlsProfile>,
}

impl Prober {
    /// `tls_profiles` as the config lists them (`Config::tls_profiles`).
    pub fn new(tls_profiles: &[TlsSettings]) -> Result<Prober, TlsSetupError> {
        let profiles = tls_profiles
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
