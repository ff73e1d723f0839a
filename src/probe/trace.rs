//! Phase timing for one probe, from hooks into the client it builds.
//!
//! Each probe builds its own `reqwest::Client` (cheap, since the TLS settings
//! are prebuilt: see BENCHMARKS.md) around these
//! hooks, so every event belongs to exactly one probe:
//! - [`TraceResolver`] times name resolution (the `resolve` phase);
//! - [`TraceLayer`] wraps the connector: connection start and ready;
//! - [`TraceStore`], the rustls session store, is asked for a key-share hint
//!   when the ClientHello is built, which is the moment TCP is connected and
//!   the TLS handshake starts; it also refuses resumption, so each probe sees
//!   a full handshake as a new client would;
//! - [`TraceVerifier`] sees the server's certificates (expiry) and delegates
//!   the verdict to the real verifier.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, NamedGroup, SignatureScheme};

use super::tls::Leaf;
use crate::outcome::Phases;

/// Where a probe is, for naming the phase a timeout or error happened in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Resolving,
    Connecting,
    TlsHandshake,
    WaitingForHeaders,
    ReadingBody,
}

impl Stage {
    pub fn describe(self) -> &'static str {
        match self {
            Stage::Resolving => "resolving the host name",
            Stage::Connecting => "connecting",
            Stage::TlsHandshake => "in the TLS handshake",
            Stage::WaitingForHeaders => "waiting for response headers",
            Stage::ReadingBody => "reading the body",
        }
    }
}

#[derive(Debug)]
struct State {
    stage: Stage,
    dns_start: Option<Instant>,
    dns_end: Option<Instant>,
    dns_error: Option<String>,
    connect_start: Option<Instant>,
    tls_start: Option<Instant>,
    connected_at: Option<Instant>,
    phases: Phases,
    cert_not_after: Option<DateTime<Utc>>,
    /// The server's certificate, as last seen by the verifier.
    leaf: Option<Leaf>,
    /// The last handshake's certificate and version.
    tls_seen: Option<crate::model::TlsSeen>,
    /// The status of the current hop's response, once its headers arrived.
    status: Option<u16>,
    /// Requests sent so far (hops), so the redirects followed are known
    /// even when the probe is cut short.
    hops: u32,
}

#[derive(Debug)]
pub struct Trace {
    state: Mutex<State>,
}

impl Default for Trace {
    fn default() -> Self {
        Trace {
            state: Mutex::new(State {
                stage: Stage::Connecting,
                dns_start: None,
                dns_end: None,
                dns_error: None,
                connect_start: None,
                tls_start: None,
                connected_at: None,
                phases: Phases::default(),
                cert_not_after: None,
                leaf: None,
                tls_seen: None,
                status: None,
                hops: 0,
            }),
        }
    }
}

impl Trace {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another hook panicked mid-update; the
        // timings are still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn stage(&self) -> Stage {
        self.lock().stage
    }

    pub fn set_stage(&self, stage: Stage) {
        self.lock().stage = stage;
    }

    pub fn phases(&self) -> Phases {
        self.lock().phases
    }

    pub fn add_processing(&self, d: Duration) {
        self.lock().phases.processing += d;
    }

    pub fn add_transfer(&self, d: Duration) {
        self.lock().phases.transfer += d;
    }

    pub fn set_status(&self, status: u16) {
        self.lock().status = Some(status);
    }

    /// The status of the response the probe was on: `None` before the
    /// current hop's headers arrived (a redirect followed is not an answer).
    pub fn status(&self) -> Option<u16> {
        self.lock().status
    }

    /// Redirects followed so far: every hop but the first.
    pub fn redirects(&self) -> u32 {
        self.lock().hops.saturating_sub(1)
    }

    pub fn dns_error(&self) -> Option<String> {
        self.lock().dns_error.clone()
    }

    pub fn cert_not_after(&self) -> Option<DateTime<Utc>> {
        self.lock().cert_not_after
    }

    /// The server's own certificate, when one was seen: for reasons.
    /// The last handshake: what its certificate said and, once the server
    /// proved its key, the TLS version.
    pub fn tls_seen(&self) -> Option<crate::model::TlsSeen> {
        self.lock().tls_seen.clone()
    }

    fn saw_version(&self, version: crate::model::TlsVersion) {
        if let Some(seen) = &mut self.lock().tls_seen {
            seen.version = Some(version);
        }
    }

    pub fn leaf(&self) -> Option<Leaf> {
        self.lock().leaf.clone()
    }

    /// When the current hop's connection became ready, if it has.
    pub fn connected_at(&self) -> Option<Instant> {
        self.lock().connected_at
    }

    /// Called before each request of a probe (each redirect hop).
    pub fn start_hop(&self) {
        let mut s = self.lock();
        s.dns_start = None;
        s.dns_end = None;
        s.connect_start = None;
        s.tls_start = None;
        s.connected_at = None;
        s.status = None;
        s.hops += 1;
        s.stage = Stage::WaitingForHeaders;
    }

    fn connect_started(&self) {
        let mut s = self.lock();
        s.connect_start = Some(Instant::now());
        s.stage = Stage::Connecting;
    }

    fn connect_finished(&self, ok: bool) {
        let now = Instant::now();
        let mut s = self.lock();
        if !ok {
            return;
        }
        let Some(start) = s.connect_start else { return };
        let resolve = match (s.dns_start, s.dns_end) {
            (Some(a), Some(b)) => b.saturating_duration_since(a),
            _ => Duration::ZERO,
        };
        let tcp_from = s.dns_end.unwrap_or(start);
        let tcp_to = s.tls_start.unwrap_or(now);
        s.phases.resolve += resolve;
        s.phases.connect += tcp_to.saturating_duration_since(tcp_from);
        if let Some(tls) = s.tls_start {
            s.phases.tls += now.saturating_duration_since(tls);
        }
        s.connected_at = Some(now);
        s.stage = Stage::WaitingForHeaders;
    }

    fn dns_started(&self) {
        let mut s = self.lock();
        s.dns_start = Some(Instant::now());
        s.stage = Stage::Resolving;
    }

    fn dns_finished(&self, error: Option<String>) {
        let mut s = self.lock();
        s.dns_end = Some(Instant::now());
        s.dns_error = error;
        s.stage = Stage::Connecting;
    }

    fn tls_started(&self) {
        let mut s = self.lock();
        if s.tls_start.is_none() {
            s.tls_start = Some(Instant::now());
            s.stage = Stage::TlsHandshake;
        }
    }

    fn saw_certificates(&self, leaf: Option<Leaf>, not_after: Option<DateTime<Utc>>) {
        let mut s = self.lock();
        s.leaf = leaf;
        s.cert_not_after = match (s.cert_not_after, not_after) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Resolves with the system resolver and times it.
pub struct TraceResolver(pub Arc<Trace>);

impl reqwest::dns::Resolve for TraceResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let trace = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            trace.dns_started();
            let found = tokio::net::lookup_host((host.as_str(), 0)).await;
            match found {
                Ok(addrs) => {
                    let addrs: Vec<SocketAddr> = addrs.collect();
                    if addrs.is_empty() {
                        let msg = format!("{host} has no addresses");
                        trace.dns_finished(Some(msg.clone()));
                        return Err(msg.into());
                    }
                    trace.dns_finished(None);
                    Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
                }
                Err(e) => {
                    trace.dns_finished(Some(e.to_string()));
                    Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
                }
            }
        })
    }
}

/// A tower layer around reqwest's connector: connection start and ready.
#[derive(Clone)]
pub struct TraceLayer(pub Arc<Trace>);

impl<S> tower::Layer<S> for TraceLayer {
    type Service = TraceConnect<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceConnect {
            inner,
            trace: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct TraceConnect<S> {
    inner: S,
    trace: Arc<Trace>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, R> tower::Service<R> for TraceConnect<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        self.trace.connect_started();
        let fut = self.inner.call(req);
        let trace = self.trace.clone();
        Box::pin(async move {
            let result = fut.await;
            trace.connect_finished(result.is_ok());
            result
        })
    }
}

/// The rustls session store: marks the start of the handshake and never
/// offers a session to resume.
#[derive(Debug)]
pub struct TraceStore(pub Arc<Trace>);

impl ClientSessionStore for TraceStore {
    fn set_kx_hint(&self, _: ServerName<'static>, _: NamedGroup) {}

    fn kx_hint(&self, _: &ServerName<'_>) -> Option<NamedGroup> {
        self.0.tls_started();
        None
    }

    fn set_tls12_session(&self, _: ServerName<'static>, _: Tls12ClientSessionValue) {}

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.0.tls_started();
        None
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {}

    fn insert_tls13_ticket(&self, _: ServerName<'static>, _: Tls13ClientSessionValue) {}

    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.0.tls_started();
        None
    }
}

/// Records the certificates' expiry, then lets the real verifier decide.
#[derive(Debug)]
pub struct TraceVerifier {
    pub inner: Arc<dyn ServerCertVerifier>,
    pub trace: Arc<Trace>,
}

impl ServerCertVerifier for TraceVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let leaf = Leaf::parse(end_entity);
        let earliest = leaf
            .as_ref()
            .and_then(|l| l.not_after)
            .into_iter()
            .chain(
                intermediates
                    .iter()
                    .filter_map(|c| Leaf::parse(c).and_then(|l| l.not_after)),
            )
            .min();
        self.trace.saw_certificates(leaf, earliest);
        self.trace.lock().tls_seen = Some(super::tls::certificate_seen(Some(end_entity), earliest));
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let valid = self.inner.verify_tls12_signature(message, cert, dss)?;
        self.trace.saw_version(crate::model::TlsVersion::Tls12);
        Ok(valid)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let valid = self.inner.verify_tls13_signature(message, cert, dss)?;
        self.trace.saw_version(crate::model::TlsVersion::Tls13);
        Ok(valid)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
