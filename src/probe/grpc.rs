//! The gRPC health-check probe: one `grpc.health.v1.Health/Check` call on a
//! fresh connection, in plaintext HTTP/2 (h2c) or in TLS with ALPN `h2`.
//!
//! The connection is built here (tokio `TcpStream`, then the TLS handshake
//! of [`handshake::connect`] with the profile's config and ALPN `h2`, then
//! hyper's HTTP/2 client) rather than by tonic's
//! transport: so each phase is timed and named, the certificates are seen
//! by our verifier, and no second TLS stack comes with tonic. tonic-health's
//! generated client makes the call over it.
//!
//! A gRPC status from the server (NOT_FOUND for an unknown service,
//! UNIMPLEMENTED without a health service) is an answer, not an error: it
//! goes in [`GrpcSeen`] for `judge`. Only a call that never got a gRPC
//! answer (refused, TLS, not HTTP/2, timeout) sets `Observation::error`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use super::Observation;
use super::handshake;
use super::http::root_cause;
use super::tls::TlsProfile;
use crate::model::{GrpcSeen, GrpcTarget, Seen, ServingStatus, TlsOn, TlsSeen};
use crate::outcome::{FailureKind, Phases};

/// Where the probe is, for naming the phase a timeout happened in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Resolving,
    Connecting,
    TlsHandshake,
    Calling,
}

impl Stage {
    fn describe(self) -> &'static str {
        match self {
            Stage::Resolving => "resolving the host name",
            Stage::Connecting => "connecting",
            Stage::TlsHandshake => "in the TLS handshake",
            Stage::Calling => "waiting for the health check's answer",
        }
    }
}

/// What the probe got to, kept outside the timed future so a timeout
/// still knows the phase and the times so far.
struct Progress {
    stage: Stage,
    phases: Phases,
    /// When the call was sent, for the `processing` phase.
    calling_since: Option<Instant>,
    /// The finished TLS handshake, kept when the call then fails.
    tls: Option<TlsSeen>,
    /// The certificates' earliest expiry from a failed handshake.
    tls_not_after: Option<DateTime<Utc>>,
}

pub async fn probe(t: &GrpcTarget, tls: Option<(&TlsOn, &TlsProfile)>) -> Observation {
    let mut progress = Progress {
        stage: Stage::Resolving,
        phases: Phases::default(),
        calling_since: None,
        tls: None,
        tls_not_after: None,
    };
    let started = Instant::now();
    let deadline = tokio::time::Instant::from_std(started) + t.timeout;
    let result = tokio::time::timeout_at(deadline, exchange(t, tls, &mut progress, deadline)).await;
    let duration = started.elapsed();
    let mut obs = result.unwrap_or_else(|_| {
        Observation::failed(
            FailureKind::Timeout,
            format!(
                "timed out after {} {}",
                humantime::format_duration(t.timeout),
                progress.stage.describe()
            ),
        )
    });
    obs.duration = duration;
    obs.phases = progress.phases;
    if let Some(since) = progress.calling_since {
        obs.phases.processing = since.elapsed();
    }
    if let Some(seen) = progress.tls {
        obs.tls_not_after = seen.chain_not_after;
        obs.tls = Some(seen);
    } else {
        // Known even when verification failed: that is when it matters.
        obs.tls_not_after = progress.tls_not_after;
    }
    obs
}

async fn exchange(
    t: &GrpcTarget,
    tls: Option<(&TlsOn, &TlsProfile)>,
    progress: &mut Progress,
    deadline: tokio::time::Instant,
) -> Observation {
    let host = &t.endpoint.host;
    let at = t.endpoint.to_string();

    let resolving = Instant::now();
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host.as_str(), t.endpoint.port))
        .await
    {
        // Bounded like the TCP probe: a name with many addresses is tried
        // on its first few.
        Ok(found) => found.take(8).collect(),
        Err(e) => {
            return Observation::failed(FailureKind::Dns, format!("could not resolve {host}: {e}"));
        }
    };
    progress.phases.resolve = resolving.elapsed();
    if addrs.is_empty() {
        return Observation::failed(
            FailureKind::Dns,
            format!("could not resolve {host}: it has no addresses"),
        );
    }

    progress.stage = Stage::Connecting;
    let connecting = Instant::now();
    let tcp = match connect(&addrs).await {
        Ok(tcp) => tcp,
        Err(e) => {
            return Observation::failed(
                FailureKind::Connect,
                format!("connect to {at} failed: {e}"),
            );
        }
    };
    progress.phases.connect = connecting.elapsed();
    // A health check is one small request: send it at once.
    let _ = tcp.set_nodelay(true);

    let first_bytes = FirstBytes::default();
    let (send, origin) = if let Some((on, profile)) = tls {
        progress.stage = Stage::TlsHandshake;
        let shaking = Instant::now();
        // gRPC is HTTP/2 only.
        let stream = match handshake::connect(tcp, &on.server_name, profile, &[b"h2"], &at).await {
            Ok(done) => {
                progress.tls = Some(done.seen);
                done.stream
            }
            Err(failed) => {
                progress.tls_not_after = failed.not_after;
                let (kind, reason) = failed.reason;
                return Observation::failed(kind, reason);
            }
        };
        progress.phases.tls = shaking.elapsed();
        let origin = format!("https://{}", authority(&on.server_name, t.endpoint.port));
        (
            h2_handshake(Recorded::new(stream, &first_bytes)).await,
            origin,
        )
    } else {
        let origin = format!("http://{at}");
        (h2_handshake(Recorded::new(tcp, &first_bytes)).await, origin)
    };

    progress.stage = Stage::Calling;
    progress.calling_since = Some(Instant::now());
    let (send, mut ended) = match send {
        Ok(pair) => pair,
        Err(e) => return transport_failure(&e, &at, &first_bytes),
    };
    let calling = call(send, &origin, t, deadline, &at, &first_bytes);
    tokio::pin!(calling);
    // A connection that breaks before the call resolves (the peer closes
    // or resets it while the request is on its way) is the answer: the
    // call is given a moment to report it itself, then it is reported
    // from the connection's own error, so it never waits out the timeout.
    tokio::select! {
        obs = &mut calling => obs,
        Ok(Err(e)) = &mut ended => {
            match tokio::time::timeout(CALL_GRACE, &mut calling).await {
                Ok(obs) => obs,
                Err(_) => transport_failure(&e, &at, &first_bytes),
            }
        }
    }
}

/// How long a call may still take to resolve once its connection broke.
const CALL_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// The first address that accepts; the last error when none does.
async fn connect(addrs: &[SocketAddr]) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::AddrNotAvailable, "no address to connect to");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = e,
        }
    }
    Err(last)
}

type Sender = http2::SendRequest<tonic::body::Body>;

/// The connection's end, as its task saw it.
type Ended = tokio::sync::oneshot::Receiver<Result<(), hyper::Error>>;

async fn h2_handshake<S>(io: Recorded<S>) -> Result<(Sender, Ended), hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // hyper runs the connection in a task of its own, which ends when the
    // sender is dropped (at the end of the probe, or on a timeout).
    let (send, connection) = http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(io))
        .await?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ = tx.send(connection.await);
    });
    Ok((send, rx))
}

async fn call(
    send: Sender,
    origin: &str,
    t: &GrpcTarget,
    deadline: tokio::time::Instant,
    at: &str,
    first_bytes: &FirstBytes,
) -> Observation {
    let Ok(origin) = origin.parse() else {
        return Observation::failed(
            FailureKind::Internal,
            format!("{at} does not make a valid URI authority"),
        );
    };
    let mut client = HealthClient::with_origin(H2 { send, broken: None }, origin);
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: t.service.clone(),
    });
    // The server learns the deadline (grpc-timeout) and may give up with
    // DEADLINE_EXCEEDED instead of answering late.
    request.set_timeout(deadline.saturating_duration_since(tokio::time::Instant::now()));
    match client.check(request).await {
        Ok(response) => Observation {
            seen: Seen::Grpc(GrpcSeen {
                status_code: 0,
                serving: Some(serving_status(response.get_ref().status)),
                message: String::new(),
            }),
            ..Observation::default()
        },
        Err(status) => match transport_error(&status) {
            Some(e) => transport_failure(e, at, first_bytes),
            None => Observation {
                seen: Seen::Grpc(GrpcSeen {
                    status_code: status.code() as i32,
                    serving: None,
                    message: status.message().to_owned(),
                }),
                ..Observation::default()
            },
        },
    }
}

fn serving_status(value: i32) -> ServingStatus {
    use tonic_health::pb::health_check_response::ServingStatus as Pb;
    match Pb::try_from(value) {
        Ok(Pb::Serving) => ServingStatus::Serving,
        Ok(Pb::NotServing) => ServingStatus::NotServing,
        Ok(Pb::ServiceUnknown) => ServingStatus::ServiceUnknown,
        Ok(Pb::Unknown) | Err(_) => ServingStatus::Unknown,
    }
}

/// The connection's own error inside a `Status` tonic made of it, if the
/// status came from the connection rather than from the server.
fn transport_error(status: &tonic::Status) -> Option<&hyper::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = current {
        if let Some(Transport(inner)) = e.downcast_ref::<Transport>() {
            return Some(inner);
        }
        current = e.source();
    }
    None
}

/// A call that got no gRPC answer: the connection closed, or the peer
/// does not speak HTTP/2.
fn transport_failure(err: &hyper::Error, at: &str, first_bytes: &FirstBytes) -> Observation {
    let first = first_bytes.get();
    let reason = if first.starts_with(b"HTTP/") {
        format!("{at} answered in HTTP/1, not HTTP/2 (gRPC needs HTTP/2)")
    } else if first.is_empty() && is_closed_hyper(err) {
        format!("{at} closed the connection without answering")
    } else if first.len() >= 4 && first[3] != SETTINGS {
        format!(
            "{at} does not speak HTTP/2: it sent {} where a SETTINGS frame belongs",
            show_bytes(&first)
        )
    } else {
        format!("{at} broke the HTTP/2 connection: {}", root_cause(err))
    };
    Observation::failed(FailureKind::Protocol, reason)
}

fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

fn is_closed_hyper(err: &hyper::Error) -> bool {
    if err.is_incomplete_message() || err.is_closed() || err.is_canceled() {
        return true;
    }
    let mut current: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && is_closed(io)
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// The first bytes a peer sent, for the reason: printable ASCII as it is,
/// anything else as `\xNN`.
fn show_bytes(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.push('"');
    out
}

/// `host:port` for a URI, with IPv6 addresses in brackets.
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// hyper's HTTP/2 sender as the tower service tonic's client calls. Its
/// errors are wrapped in [`Transport`], so a `Status` made of one can be
/// told from a status the server sent.
///
/// tonic turns a `poll_ready` error into a status of its own text and
/// drops the error, so a connection that is already gone (the peer closed
/// at once) is reported ready here and its error returned by `call`.
struct H2 {
    send: Sender,
    broken: Option<hyper::Error>,
}

impl Clone for H2 {
    fn clone(&self) -> H2 {
        H2 {
            send: self.send.clone(),
            broken: None,
        }
    }
}

/// A connection error (hyper's), as tonic carries it in a `Status`.
#[derive(Debug)]
struct Transport(hyper::Error);

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Transport {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

type Body = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, Transport>;

impl tower::Service<hyper::Request<tonic::body::Body>> for H2 {
    type Response = hyper::Response<Body>;
    type Error = Transport;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Transport>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Transport>> {
        if self.broken.is_some() {
            return Poll::Ready(Ok(()));
        }
        match self.send.poll_ready(cx) {
            Poll::Ready(Err(e)) => {
                self.broken = Some(e);
                Poll::Ready(Ok(()))
            }
            other => other.map_err(Transport),
        }
    }

    fn call(&mut self, req: hyper::Request<tonic::body::Body>) -> Self::Future {
        if let Some(e) = self.broken.take() {
            return Box::pin(std::future::ready(Err(Transport(e))));
        }
        let sent = self.send.send_request(req);
        Box::pin(async move {
            let response = sent.await.map_err(Transport)?;
            Ok(response.map(|body| body.map_err(Transport).boxed_unsync()))
        })
    }
}

/// The first bytes the peer sent on the connection (after TLS), to tell
/// an HTTP/1 answer or garbage from a broken HTTP/2 connection.
#[derive(Clone, Default)]
struct FirstBytes(Arc<Mutex<Vec<u8>>>);

const FIRST_BYTES: usize = 16;

/// The type of an HTTP/2 SETTINGS frame.
const SETTINGS: u8 = 0x4;

impl FirstBytes {
    fn get(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn record(&self, read: &[u8]) {
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let room = FIRST_BYTES.saturating_sub(kept.len());
        kept.extend_from_slice(&read[..room.min(read.len())]);
    }
}

/// A stream that records the first bytes read from it.
struct Recorded<S> {
    inner: S,
    first: FirstBytes,
    full: bool,
}

impl<S> Recorded<S> {
    fn new(inner: S, first: &FirstBytes) -> Recorded<S> {
        Recorded {
            inner,
            first: first.clone(),
            full: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Recorded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if !self.full && buf.filled().len() > before {
            self.first.record(&buf.filled()[before..]);
            let first = self.first.get();
            self.full = first.len() >= FIRST_BYTES;
            // The server's preface is a SETTINGS frame (RFC 9113 3.4): its
            // type is the fourth byte. Anything else is not HTTP/2, and h2
            // might wait for the rest of a "frame" that never comes.
            if first.len() >= 4 && first[3] != SETTINGS {
                self.full = true;
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the server's first frame is not HTTP/2 SETTINGS",
                )));
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
