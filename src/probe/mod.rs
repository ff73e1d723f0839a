//! Talking to targets. One module per kind of probe; each returns an
//! [`Observation`] (what was seen) and leaves the verdict to `judge`.

pub mod dns;
pub mod grpc;
pub mod handshake;
pub mod http;
pub mod icmp;
pub mod tcp;
pub mod tls;
pub mod trace;

pub use crate::model::Observation;
use crate::model::{BurstObservation, HttpRequest, Target, TlsSettings};
use crate::outcome::FailureKind;
use crate::secret::Redactor;
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

    /// An HTTP request sent as a burst ([`http::burst`]).
    pub async fn burst(
        &self,
        request: &HttpRequest,
        repeat: u32,
        redactor: &Redactor,
    ) -> BurstObservation {
        match self.profile(request.tls_profile) {
            Some(profile) => http::burst(request, profile, redactor, repeat).await,
            None => BurstObservation {
                answers: vec![Observation::failed(
                    FailureKind::Internal,
                    "no TLS profile for this check",
                )],
                repeat,
                took: std::time::Duration::ZERO,
            },
        }
    }

    /// Runs one probe of any kind: the one place that matches on the kind
    /// to pick its file. Each kind bounds itself by the target's timeout.
    pub async fn probe(&self, target: &Target, redactor: &Redactor) -> Observation {
        let profile = |i: usize| {
            self.profile(i).ok_or_else(|| {
                Box::new(Observation::failed(
                    FailureKind::Internal,
                    "no TLS profile for this check",
                ))
            })
        };
        let run = async {
            Ok(match target {
                Target::Http(r) => http::probe(r, profile(r.tls_profile)?, redactor).await,
                Target::Tcp(t) => {
                    let tls = t
                        .tls
                        .as_ref()
                        .map(|on| profile(on.tls_profile).map(|p| (on, p)));
                    tcp::probe(t, tls.transpose()?, redactor).await
                }
                Target::Tls(t) => tcp::probe_tls(t, profile(t.tls.tls_profile)?).await,
                Target::Dns(d) => dns::probe(d).await,
                Target::Grpc(g) => {
                    let tls = g
                        .tls
                        .as_ref()
                        .map(|on| profile(on.tls_profile).map(|p| (on, p)));
                    grpc::probe(g, tls.transpose()?).await
                }
                Target::Icmp(i) => icmp::probe(i).await,
            })
        };
        let mut obs = run.await.unwrap_or_else(|failed: Box<Observation>| *failed);
        // HTTP cleans its own reasons; the other kinds' may quote what the
        // target sent (a certificate's names, a gRPC peer's bytes).
        if !matches!(target, Target::Http(_))
            && let Some((_, reason)) = &mut obs.error
        {
            *reason = crate::secret::clean(reason, redactor);
        }
        obs
    }
}
