//! Talking to targets. One module per kind of probe; each returns an
//! [`Observation`] (what was seen) and leaves the verdict to `judge`.

pub mod dns;
pub mod grpc;
pub mod handshake;
pub mod http;
pub mod icmp;
pub mod oauth2;
pub mod tcp;
pub mod tls;
pub mod trace;

pub use crate::model::Observation;
use crate::model::{Auth, BurstObservation, HttpRequest, Target, TlsSettings};
use crate::outcome::{FailureKind, FetchedCredential};
use crate::secret::{Learned, Redactor};
use tls::{TlsProfile, TlsSetupError};

/// The TLS profiles of a config, built once, indexed like
/// `Config::tls_profiles`, and the OAuth2 tokens its checks send.
pub struct Prober {
    profiles: Vec<TlsProfile>,
    tokens: oauth2::Tokens,
}

impl Prober {
    /// `tls_profiles` as the config lists them (`Config::tls_profiles`).
    /// The OAuth2 tokens it fetches are known to no redactor: a daemon
    /// uses [`Prober::learning_into`].
    pub fn new(tls_profiles: &[TlsSettings]) -> Result<Prober, TlsSetupError> {
        Prober::learning_into(tls_profiles, &Learned::default())
    }

    /// A prober whose fetched tokens `learned` is told about (the
    /// `SharedRedactor`'s, so every redactor of the daemon scrubs them).
    pub fn learning_into(
        tls_profiles: &[TlsSettings],
        learned: &Learned,
    ) -> Result<Prober, TlsSetupError> {
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
        Ok(Prober {
            profiles,
            tokens: oauth2::Tokens::new(learned.clone()),
        })
    }

    /// One HTTP probe (a check's or a flow step's). With OAuth2, the token
    /// comes first (cached, or fetched within the request's timeout; the
    /// request gets what is left of it) and goes in `Authorization`; a
    /// failed fetch is a `token` failure and the target is not asked.
    pub async fn http(
        &self,
        req: &HttpRequest,
        profile: &TlsProfile,
        redactor: &Redactor,
    ) -> Observation {
        match self.authorized(req, profile, redactor).await {
            Ok((req, fetched)) => {
                let mut obs = http::probe(&req, profile, redactor).await;
                obs.fetched_credential = fetched;
                obs
            }
            Err(failed) => *failed,
        }
    }

    /// The request as it is sent: for an OAuth2 client, with its token (one
    /// fetch for a whole burst) in `Authorization` and the time the fetch
    /// took taken off its timeout; other credentials as configured.
    async fn authorized<'r>(
        &self,
        req: &'r HttpRequest,
        profile: &TlsProfile,
        redactor: &Redactor,
    ) -> Result<(std::borrow::Cow<'r, HttpRequest>, Option<FetchedCredential>), Box<Observation>>
    {
        let Auth::OAuth2(client) = &req.auth else {
            return Ok((std::borrow::Cow::Borrowed(req), None));
        };
        let started = std::time::Instant::now();
        let token = match self
            .tokens
            .token(client, profile, req.tls_profile, req.timeout)
            .await
        {
            Ok(token) => token,
            Err(reason) => {
                let mut obs = Observation::failed(
                    FailureKind::Token,
                    crate::secret::clean(&reason, redactor),
                );
                obs.duration = started.elapsed();
                return Err(Box::new(obs));
            }
        };
        let mut with_token = req.clone();
        with_token.auth = Auth::Header {
            name: reqwest::header::AUTHORIZATION,
            prefix: "Bearer ",
            secret: token.clone(),
        };
        with_token.timeout = req.timeout.saturating_sub(started.elapsed());
        // Named by the client (its secret's fingerprint), not the token:
        // one series per client however often its token is refreshed.
        let fetched = token.expiry().map(|e| FetchedCredential {
            fingerprint: client.client_secret.fingerprint().to_owned(),
            expires_at: e.at,
        });
        Ok((std::borrow::Cow::Owned(with_token), fetched))
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
            Some(profile) => match self.authorized(request, profile, redactor).await {
                Ok((request, fetched)) => {
                    let mut seen = http::burst(&request, profile, redactor, repeat).await;
                    if let Some(last) = seen.answers.last_mut() {
                        last.fetched_credential = fetched;
                    }
                    seen
                }
                Err(failed) => BurstObservation {
                    answers: vec![*failed],
                    repeat,
                    took: std::time::Duration::ZERO,
                },
            },
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
                Target::Http(r) => self.http(r, profile(r.tls_profile)?, redactor).await,
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
