//! The HTTP probe.
//!
//! Each probe builds its own client around a fresh [`Trace`], so it opens
//! its own connection (nothing pooled from another probe) and every phase is
//! timed as a new client sees it. Redirects are followed here, not by
//! reqwest: reqwest forwards custom headers such as `X-API-Key` and query
//! strings to other origins, and our rule is that credentials go only to the
//! origin configured.

use std::sync::Arc;
use std::time::Instant;

use reqwest::header::{HeaderValue, LOCATION};
use reqwest::{Method, StatusCode};
use rustls::client::{Resumption, Tls12Resumption};
use url::Url;

use super::Observation;
use super::tls::{self, TlsProfile};
use super::trace::{Stage, Trace, TraceLayer, TraceResolver, TraceStore, TraceVerifier};
use crate::model::BurstObservation;
use crate::model::{Auth, HttpRequest};
use crate::outcome::FailureKind;
use crate::secret::Redactor;
use crate::secret::clean;

pub(super) const USER_AGENT: &str = concat!("lookout/", env!("CARGO_PKG_VERSION"));

pub async fn probe(req: &HttpRequest, profile: &TlsProfile, redactor: &Redactor) -> Observation {
    let trace = Arc::new(Trace::default());
    let started = Instant::now();
    let result = tokio::time::timeout(req.timeout, exchange(req, profile, &trace, redactor)).await;
    let duration = started.elapsed();
    let mut obs = result.unwrap_or_else(|_| {
        let mut obs = Observation::failed(
            FailureKind::Timeout,
            format!(
                "timed out after {} {}",
                humantime::format_duration(req.timeout),
                trace.stage().describe()
            ),
        );
        obs.status = trace.status();
        obs
    });
    obs.duration = duration;
    // From the trace, so it is right however the probe ended (a timeout or a
    // failure on a later hop included).
    obs.redirects = trace.redirects();
    obs.phases = trace.phases();
    obs.tls_not_after = trace.cert_not_after();
    // Only a handshake that got as far as the server proving its key.
    obs.tls = trace.tls_seen().filter(|t| t.version.is_some());
    obs
}

/// A burst (`repeat`): the same request `repeat` times, one after another,
/// each on a fresh connection like any probe. `req.timeout` bounds the
/// whole burst: each request gets what is left. A transport failure ends
/// it, the failing answer last.
pub async fn burst(
    req: &HttpRequest,
    profile: &TlsProfile,
    redactor: &Redactor,
    repeat: u32,
) -> BurstObservation {
    let started = Instant::now();
    let deadline = started + req.timeout;
    let mut answers: Vec<Observation> = Vec::with_capacity(repeat as usize);
    let bounds = |reason: &mut String| {
        reason.push_str(&format!(
            " (the timeout of {} bounds the whole burst)",
            humantime::format_duration(req.timeout)
        ));
    };
    for _ in 0..repeat {
        // Whole milliseconds, so a reason reads "timed out after 412ms".
        let left = deadline.saturating_duration_since(Instant::now());
        let left = std::time::Duration::from_millis(left.as_millis() as u64);
        let obs = if left.is_zero() {
            let mut reason = "no time was left to send it".to_owned();
            bounds(&mut reason);
            Observation::failed(FailureKind::Timeout, reason)
        } else {
            let mut this = req.clone();
            this.timeout = left;
            let mut obs = probe(&this, profile, redactor).await;
            if let Some((FailureKind::Timeout, reason)) = &mut obs.error {
                bounds(reason);
            }
            obs
        };
        let failed = obs.error.is_some();
        // Only the last answer is judged whole: the others keep their
        // status, timing, Content-Type and the start of their body (for
        // the reason's quote).
        if let Some(previous) = answers.last_mut() {
            let content_type = previous.headers.remove(reqwest::header::CONTENT_TYPE);
            previous.headers.clear();
            if let Some(ct) = content_type {
                previous.headers.insert(reqwest::header::CONTENT_TYPE, ct);
            }
            if previous.body.len() > BurstObservation::KEPT_BODY {
                previous.body = kept_part(&previous.body, redactor);
            }
        }
        answers.push(obs);
        if failed {
            break;
        }
    }
    BurstObservation {
        answers,
        repeat,
        took: started.elapsed(),
    }
}

/// The start of an earlier burst answer's body, kept for a reason's quote:
/// its first `KEPT_BODY` bytes redacted, then cut with a margin, as
/// `secret::clean` does, so no piece of a secret too short to know is left
/// at the cut; at most `KEPT_BODY` bytes (markers can be longer than what
/// they replace).
fn kept_part(body: &[u8], redactor: &Redactor) -> Vec<u8> {
    const MARGIN: usize = 1024;
    let head = String::from_utf8_lossy(&body[..BurstObservation::KEPT_BODY.min(body.len())]);
    let redacted = redactor.redact(&head);
    let mut end = redacted
        .len()
        .saturating_sub(MARGIN)
        .min(BurstObservation::KEPT_BODY);
    while !redacted.is_char_boundary(end) {
        end -= 1;
    }
    redacted.as_bytes()[..end].to_vec()
}

fn client_for(profile: &TlsProfile, trace: &Arc<Trace>) -> reqwest::Result<reqwest::Client> {
    let mut tls = profile.base.clone();
    tls.resumption = Resumption::store(Arc::new(TraceStore(trace.clone())))
        .tls12_resumption(Tls12Resumption::Disabled);
    tls.dangerous()
        .set_certificate_verifier(Arc::new(TraceVerifier {
            inner: profile.verifier.clone(),
            trace: trace.clone(),
        }));
    client_builder(tls)
        .dns_resolver(Arc::new(TraceResolver(trace.clone())))
        .connector_layer(TraceLayer(trace.clone()))
        .build()
}

/// What every client lookout sends with has: no proxy from the
/// environment, lookout's User-Agent, no redirects followed by reqwest
/// (lookout follows them itself, or not at all), a fresh connection per
/// request, and `tls` as its TLS.
pub(super) fn client_builder(tls: rustls::ClientConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .tls_backend_preconfigured(tls)
}

async fn exchange(
    req: &HttpRequest,
    profile: &TlsProfile,
    trace: &Arc<Trace>,
    redactor: &Redactor,
) -> Observation {
    let client = match client_for(profile, trace) {
        Ok(c) => c,
        Err(e) => {
            return Observation::failed(
                FailureKind::Internal,
                format!("could not build the HTTP client: {}", root_cause(&e)),
            );
        }
    };
    let origin = req.url.origin();
    let mut url = req.url.clone();
    let mut method = req.method.clone();
    let mut body = req.body.clone();
    // Cleared for good once a redirect leaves the configured origin.
    let mut send_credentials = true;
    let mut redirects = 0;
    loop {
        trace.start_hop();
        let request =
            match build_request(&client, &method, &url, req, body.clone(), send_credentials) {
                Ok(r) => r,
                Err(reason) => return Observation::failed(FailureKind::Internal, reason),
            };
        let hop_start = Instant::now();
        let response = match client.execute(request).await {
            Ok(r) => r,
            Err(e) => {
                let (kind, reason) = transport_failure(&e, trace, &url);
                return Observation::failed(kind, clean(&reason, redactor));
            }
        };
        let headers_at = Instant::now();
        trace.add_processing(
            headers_at.saturating_duration_since(trace.connected_at().unwrap_or(hop_start)),
        );
        let status = response.status();
        trace.set_status(status.as_u16());

        if status.is_redirection() && req.max_redirects > 0 {
            if let Some(location) = response.headers().get(LOCATION) {
                let shown = clean(&String::from_utf8_lossy(location.as_bytes()), redactor);
                if redirects >= req.max_redirects {
                    let mut obs = Observation::failed(
                        FailureKind::Redirect,
                        format!(
                            "more than {} redirects (last to \"{shown}\")",
                            req.max_redirects
                        ),
                    );
                    obs.status = Some(status.as_u16());
                    return obs;
                }
                let next = location
                    .to_str()
                    .ok()
                    .and_then(|l| url.join(l).ok())
                    .filter(|u| matches!(u.scheme(), "http" | "https"));
                let Some(next) = next else {
                    let mut obs = Observation::failed(
                        FailureKind::Redirect,
                        format!("status {status} with an unusable Location \"{shown}\""),
                    );
                    obs.status = Some(status.as_u16());
                    return obs;
                };
                redirects += 1;
                if next.origin() != origin {
                    // A secret in the URL would go along with the request,
                    // wherever in the URL it stands and however encoded.
                    let raw = String::from_utf8_lossy(location.as_bytes());
                    if redactor.finds_secret(&raw) || redactor.finds_secret(next.as_str()) {
                        let mut obs = Observation::failed(
                            FailureKind::Redirect,
                            format!(
                                "status {status} redirects to another origin ({}) with a \
                                 credential in its URL; not followed",
                                clean(&next.origin().ascii_serialization(), redactor)
                            ),
                        );
                        obs.status = Some(status.as_u16());
                        return obs;
                    }
                    // 307 and 308 keep the method and the body, and a body
                    // may hold a credential written in the config.
                    if body.is_some() && !redirect_becomes_get(status, &method) {
                        let mut obs = Observation::failed(
                            FailureKind::Redirect,
                            format!(
                                "status {status} would send the request body to another \
                                 origin ({}); not followed",
                                clean(&next.origin().ascii_serialization(), redactor)
                            ),
                        );
                        obs.status = Some(status.as_u16());
                        return obs;
                    }
                    send_credentials = false;
                }
                if redirect_becomes_get(status, &method) {
                    method = Method::GET;
                    body = None;
                }
                url = if send_credentials {
                    next
                } else {
                    without_credentials(next, &req.auth)
                };
                continue;
            }
        }

        trace.set_stage(Stage::ReadingBody);
        let headers = response.headers().clone();
        let (body, error) = read_capped(response, req.max_body_bytes).await;
        trace.add_transfer(headers_at.elapsed());
        return Observation {
            status: Some(status.as_u16()),
            headers,
            body,
            error: error.map(|(kind, reason)| (kind, clean(&reason, redactor))),
            ..Observation::default()
        };
    }
}

/// Like browsers and curl: 303 always, and 301/302 after a POST, become GET.
fn redirect_becomes_get(status: StatusCode, method: &Method) -> bool {
    match status {
        StatusCode::SEE_OTHER => *method != Method::HEAD,
        StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND => *method == Method::POST,
        _ => false,
    }
}

fn build_request(
    client: &reqwest::Client,
    method: &Method,
    url: &Url,
    req: &HttpRequest,
    body: Option<bytes::Bytes>,
    send_credentials: bool,
) -> Result<reqwest::Request, String> {
    let mut url = url.clone();
    if send_credentials && let Auth::Query { param, secret } = &req.auth {
        retain_query_pairs(&mut url, |k, _| k != param);
        url.query_pairs_mut().append_pair(param, secret.expose());
    }
    let mut builder = client.request(method.clone(), url);
    builder = if send_credentials {
        builder.headers(req.headers.clone())
    } else {
        // Another origin gets none of the configured headers but those that
        // describe the body: a credential written in `headers` instead of
        // `auth` must not follow a redirect either.
        let mut kept = reqwest::header::HeaderMap::new();
        for name in [reqwest::header::CONTENT_TYPE, reqwest::header::ACCEPT] {
            if let Some(v) = req.headers.get(&name) {
                kept.insert(name, v.clone());
            }
        }
        builder.headers(kept)
    };
    if let Some(body) = body {
        builder = builder.body(body);
    }
    if send_credentials {
        match &req.auth {
            Auth::Header {
                name,
                prefix,
                secret,
            } => {
                let mut value = HeaderValue::try_from(format!("{prefix}{}", secret.expose()))
                    .map_err(|_| {
                        format!(
                            "the credential {} is not a valid header value",
                            secret.fingerprint()
                        )
                    })?;
                value.set_sensitive(true);
                builder = builder.header(name, value);
            }
            Auth::Basic { username, password } => {
                builder = builder.basic_auth(username, Some(password.expose()));
            }
            // `Prober::http` puts the fetched token in a `Header`; an
            // OAuth2 auth that reaches here sends nothing.
            Auth::Query { .. } | Auth::None | Auth::OAuth2(_) => {}
        }
    }
    builder
        .build()
        .map_err(|e| format!("invalid request: {}", root_cause(&e)))
}

/// A URL for another origin: our query credential's parameter is dropped,
/// whatever the target put in it. (A URL holding a secret's value is not
/// followed at all.)
fn without_credentials(mut url: Url, auth: &Auth) -> Url {
    if let Auth::Query { param, .. } = auth {
        retain_query_pairs(&mut url, |k, _| k != param);
    }
    url
}

/// Keeps the query pairs `keep` accepts; no `?` is left when none remain.
fn retain_query_pairs(url: &mut Url, keep: impl Fn(&str, &str) -> bool) {
    if url.query().is_none() {
        return;
    }
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, v)| keep(k, v))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
}

/// Reads the body, counting bytes as they arrive: `Content-Length` can lie.
async fn read_capped(
    mut response: reqwest::Response,
    cap: u64,
) -> (Vec<u8>, Option<(FailureKind, String)>) {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = (cap as usize).saturating_sub(body.len());
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    return (
                        body,
                        Some((
                            FailureKind::BodyTooLarge,
                            format!("response body larger than max_body_bytes ({cap} bytes)"),
                        )),
                    );
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return (body, None),
            Err(e) => {
                return (
                    body,
                    Some((
                        FailureKind::Protocol,
                        format!(
                            "connection failed while reading the body: {}",
                            root_cause(&e)
                        ),
                    )),
                );
            }
        }
    }
}

/// Names a failed request by the phase it failed in, which the trace knows
/// better than reqwest's error text.
fn transport_failure(err: &reqwest::Error, trace: &Trace, url: &Url) -> (FailureKind, String) {
    let host = url.host_str().unwrap_or("?");
    let port = url.port_or_known_default().unwrap_or(0);
    if let Some(dns) = trace.dns_error() {
        return (FailureKind::Dns, format!("could not resolve {host}: {dns}"));
    }
    if let Some(tls) = tls_error(err) {
        let what = tls::describe(tls, host, trace.leaf().as_ref());
        let during = match trace.stage() {
            Stage::TlsHandshake => "TLS handshake with",
            _ => "TLS with",
        };
        return (
            FailureKind::Tls,
            format!("{during} {host}:{port} failed: {what}"),
        );
    }
    let cause = root_cause(err);
    match trace.stage() {
        Stage::Resolving => (
            FailureKind::Dns,
            format!("could not resolve {host}: {cause}"),
        ),
        Stage::Connecting => (
            FailureKind::Connect,
            format!("connect to {host}:{port} failed: {cause}"),
        ),
        Stage::TlsHandshake => (
            FailureKind::Tls,
            format!("TLS handshake with {host}:{port} failed: {cause}"),
        ),
        Stage::WaitingForHeaders | Stage::ReadingBody => (
            FailureKind::Protocol,
            format!("{host}:{port} did not send a valid response: {cause}"),
        ),
    }
}

/// The TLS error in `err`'s chain, if any.
pub(super) fn tls_error<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = as_rustls(e) {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// `e` as a rustls error, looking inside `io::Error`s, which hide the error
/// they wrap from `source()` (the connector wraps it in two).
fn as_rustls<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(found) = e.downcast_ref::<rustls::Error>() {
        return Some(found);
    }
    let inner = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    as_rustls(inner)
}

/// The innermost error message: the one that says what actually happened
/// ("Connection refused", "invalid peer certificate: Expired"). The outer
/// reqwest message carries the URL, which may hold a query credential.
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{Secret, SecretOrigin};

    /// An earlier burst answer cut where a secret stands keeps no piece of
    /// it, however short: redacted whole first, then cut with a margin.
    /// A secret longer than the margin, cut at `KEPT_BODY`: only the
    /// redactor's 8-character pieces catch what is left of it; and short
    /// secrets whose markers are longer never make the part grow.
    #[test]
    fn a_kept_part_redacts_a_long_secret_at_the_cut_and_stays_bounded() {
        let long: String = (0..3000)
            .map(|i| (b'a' + (i * 7 % 26) as u8) as char)
            .collect();
        let secret = Secret::new(long.clone(), SecretOrigin::Literal);
        let short = Secret::new("pa5".into(), SecretOrigin::Literal);
        let redactor = Redactor::new([&secret, &short], []);
        let mut body = vec![b'x'; BurstObservation::KEPT_BODY - 1500];
        body.extend_from_slice(long.as_bytes());
        let text = String::from_utf8(kept_part(&body, &redactor)).unwrap();
        let piece = &long[..8];
        assert!(!text.contains(piece), "a piece of the long secret survived");
        let body: Vec<u8> = "pa5 ".repeat(BurstObservation::KEPT_BODY).into_bytes();
        let kept = kept_part(&body, &redactor);
        assert!(kept.len() <= BurstObservation::KEPT_BODY, "{}", kept.len());
        assert!(!String::from_utf8(kept).unwrap().contains("pa5"));
    }

    #[test]
    fn a_kept_part_leaves_no_piece_of_a_secret_at_the_cut() {
        let secret = Secret::new("hk_live_Zq8Xw3Vb9N".into(), SecretOrigin::Literal);
        let redactor = Redactor::new([&secret], []);
        for at in 1..secret.expose().len() {
            let mut body = vec![b'x'; BurstObservation::KEPT_BODY - at];
            body.extend_from_slice(secret.expose().as_bytes());
            body.extend_from_slice(&[b'y'; 100]);
            let kept = kept_part(&body, &redactor);
            let text = String::from_utf8(kept).unwrap();
            assert!(text.len() < BurstObservation::KEPT_BODY, "{at}");
            assert!(
                !text.contains("hk_") && text.bytes().all(|b| b == b'x'),
                "{at}: {}",
                &text[text.len().saturating_sub(40)..]
            );
        }
    }
}
