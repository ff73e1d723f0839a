//! `tcp://` and `tls://` probes: connect (timing resolve and connect),
//! optionally a TLS handshake on top, then a dialogue of `send` and
//! `expect` steps like blackbox_exporter's `query_response`: an expect step
//! reads lines until one matches its regex, up to `max_read_bytes`. A TLS
//! check is the handshake alone, with what the certificate says.
//!
//! The dialogue is the one place a probe matches target text itself (each
//! step waits on the previous one's answer); what did not match is recorded
//! in [`TcpSeen::unmatched`] for `judge` to word, never as an error here.

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::Observation;
use super::handshake;
use super::tls::TlsProfile;
use crate::model::{Endpoint, QueryStep, Seen, TcpSeen, TcpTarget, TlsOn, TlsTarget, Unmatched};
use crate::outcome::FailureKind;
use crate::secret::{Redactor, quote};

/// The most addresses of one name tried in turn.
const MAX_ADDRESSES: usize = 8;
/// How much of the last line read a reason keeps.
const SHOWN_BYTES: usize = 512;

/// Where a probe is, for the reason when its time runs out.
struct Progress {
    stage: String,
    /// The last line an expect step read and did not take, for the reason
    /// when time runs out while it waits for the next.
    last_line: String,
    obs: Observation,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            stage: "resolving the host name".to_owned(),
            last_line: String::new(),
            obs: Observation::default(),
        }
    }
}

type Failure = (FailureKind, String);

pub async fn probe(
    t: &TcpTarget,
    tls: Option<(&TlsOn, &TlsProfile)>,
    redactor: &Redactor,
) -> Observation {
    let started = Instant::now();
    let mut progress = Progress::new();
    let run = async {
        let tcp = dial(&t.endpoint, &mut progress).await?;
        match tls {
            None => {
                let mut tcp = tcp;
                dialogue(&mut tcp, t, &mut progress).await
            }
            Some((on, profile)) => {
                let mut stream = secure(tcp, on, profile, &t.endpoint, &mut progress).await?;
                let result = dialogue(&mut stream, t, &mut progress).await;
                // close_notify, as a polite client does; bounded by the probe's timeout.
                let _ = stream.shutdown().await;
                result
            }
        }
    };
    let result = tokio::time::timeout(t.timeout, run).await;
    finish(progress, result, t.timeout, started, redactor)
}

/// A TLS check: connect, handshake, close.
pub async fn probe_tls(t: &TlsTarget, profile: &TlsProfile) -> Observation {
    let started = Instant::now();
    let mut progress = Progress::new();
    let run = async {
        let tcp = dial(&t.endpoint, &mut progress).await?;
        let mut stream = secure(tcp, &t.tls, profile, &t.endpoint, &mut progress).await?;
        let _ = stream.shutdown().await;
        Ok(())
    };
    let result = tokio::time::timeout(t.timeout, run).await;
    finish(progress, result, t.timeout, started, &Redactor::default())
}

fn finish(
    progress: Progress,
    result: Result<Result<(), Failure>, tokio::time::error::Elapsed>,
    timeout: Duration,
    started: Instant,
    redactor: &Redactor,
) -> Observation {
    let Progress {
        stage,
        last_line,
        mut obs,
    } = progress;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(failure)) => obs.error = Some(failure),
        Err(_) => {
            let read = if last_line.is_empty() {
                String::new()
            } else {
                format!("; last read {}", quote(&last_line, redactor))
            };
            obs.error = Some((
                FailureKind::Timeout,
                format!(
                    "timed out after {} {stage}{read}",
                    humantime::format_duration(timeout)
                ),
            ));
        }
    }
    obs.duration = started.elapsed();
    obs
}

/// Resolves and connects, trying each address in turn.
async fn dial(endpoint: &Endpoint, progress: &mut Progress) -> Result<TcpStream, Failure> {
    let t0 = Instant::now();
    let addrs: Vec<std::net::SocketAddr> =
        match tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port)).await {
            Ok(found) => found.take(MAX_ADDRESSES).collect(),
            Err(e) => {
                return Err((
                    FailureKind::Dns,
                    format!("could not resolve {}: {e}", endpoint.host),
                ));
            }
        };
    progress.obs.phases.resolve = t0.elapsed();
    if addrs.is_empty() {
        return Err((
            FailureKind::Dns,
            format!("{} resolved to no addresses", endpoint.host),
        ));
    }
    progress.stage = format!("connecting to {endpoint}");
    let t1 = Instant::now();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                progress.obs.phases.connect = t1.elapsed();
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = Some((addr, e)),
        }
    }
    let (addr, e) = last.map_or_else(
        || ("?".to_owned(), "no address".to_owned()),
        |(a, e)| (a.to_string(), e.to_string()),
    );
    Err((
        FailureKind::Connect,
        format!("connect to {endpoint} ({addr}) failed: {e}"),
    ))
}

async fn secure(
    tcp: TcpStream,
    on: &TlsOn,
    profile: &TlsProfile,
    endpoint: &Endpoint,
    progress: &mut Progress,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Failure> {
    progress.stage = format!("in the TLS handshake with {endpoint}");
    let t0 = Instant::now();
    let shown = endpoint.to_string();
    match handshake::connect(tcp, &on.server_name, profile, &[], &shown).await {
        Ok(done) => {
            progress.obs.phases.tls = t0.elapsed();
            progress.obs.tls_not_after = [done.seen.leaf_not_after, done.seen.chain_not_after]
                .into_iter()
                .flatten()
                .min();
            progress.obs.tls = Some(done.seen);
            Ok(done.stream)
        }
        Err(failed) => {
            progress.obs.tls_not_after = failed.not_after;
            Err(failed.reason)
        }
    }
}

/// Runs the query steps. An expect step that finds no line is recorded in
/// the observation (judge words it); only transport failures are errors.
async fn dialogue<S>(stream: &mut S, t: &TcpTarget, progress: &mut Progress) -> Result<(), Failure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut seen = TcpSeen::default();
    // Bytes read but not yet consumed as lines, carried to the next expect.
    let mut pending: Vec<u8> = Vec::new();
    let peer = t.endpoint.to_string();
    let total = t.query.len();
    for (i, step) in t.query.iter().enumerate() {
        let n = i + 1;
        match step {
            QueryStep::Send(text) => {
                progress.stage = format!("sending query step {n}/{total} to {peer}");
                send(stream, text.as_bytes(), n, &peer).await?;
            }
            QueryStep::SendSecret {
                before,
                secret,
                after,
            } => {
                progress.stage = format!("sending query step {n}/{total} to {peer}");
                let mut line =
                    Vec::with_capacity(before.len() + secret.expose().len() + after.len());
                line.extend_from_slice(before.as_bytes());
                line.extend_from_slice(secret.expose().as_bytes());
                line.extend_from_slice(after.as_bytes());
                let sent = send(stream, &line, n, &peer).await;
                line.fill(0);
                sent?;
            }
            QueryStep::Expect(re) => {
                progress.stage = format!(
                    "waiting for a line matching /{}/ (query step {n}/{total}) from {peer}",
                    re.as_str()
                );
                progress.last_line.clear();
                let read = Read {
                    pending: &mut pending,
                    last_line: &mut progress.last_line,
                    max: t.max_read_bytes,
                };
                match expect(stream, re, read, n, &peer).await? {
                    None => {}
                    Some(unmatched) => {
                        seen.unmatched = Some(unmatched);
                        progress.obs.seen = Seen::Tcp(seen);
                        return Ok(());
                    }
                }
            }
        }
        seen.steps_done = n;
        progress.obs.seen = Seen::Tcp(seen.clone());
    }
    progress.obs.seen = Seen::Tcp(seen);
    Ok(())
}

async fn send<S>(stream: &mut S, bytes: &[u8], step: usize, peer: &str) -> Result<(), Failure>
where
    S: AsyncWrite + Unpin,
{
    let written = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    written.await.map_err(|e| {
        (
            FailureKind::Protocol,
            format!("sending query step {step} to {peer} failed: {e}"),
        )
    })
}

/// An expect step's reading state.
struct Read<'a> {
    /// Bytes read but not yet taken as lines, carried from step to step.
    pending: &'a mut Vec<u8>,
    /// The last non-empty line that did not match.
    last_line: &'a mut String,
    /// The most this step reads.
    max: usize,
}

/// Reads lines until one matches `re`: `None` when one did, the miss
/// otherwise. At most `read.max` bytes are read for this step.
async fn expect<S>(
    stream: &mut S,
    re: &regex::Regex,
    read: Read<'_>,
    step: usize,
    peer: &str,
) -> Result<Option<Unmatched>, Failure>
where
    S: AsyncRead + Unpin,
{
    let Read {
        pending,
        last_line,
        max: max_read,
    } = read;
    let mut read_here = 0usize;
    let mut chunk = vec![0u8; 4096];
    loop {
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let text = line_text(&line);
            if re.is_match(&text) {
                return Ok(None);
            }
            if !text.is_empty() {
                *last_line = text;
            }
        }
        let room = max_read.saturating_sub(read_here).min(chunk.len());
        if room == 0 {
            return Ok(Some(miss(step, re, pending, last_line.clone(), false)));
        }
        let n = match stream.read(&mut chunk[..room]).await {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => {
                return Err((
                    FailureKind::Protocol,
                    format!("reading query step {step} from {peer} failed: {e}"),
                ));
            }
        };
        if n == 0 {
            // The connection closed: a last line without its newline counts.
            let tail = line_text(pending);
            if !tail.is_empty() && re.is_match(&tail) {
                pending.clear();
                return Ok(None);
            }
            return Ok(Some(miss(step, re, pending, last_line.clone(), true)));
        }
        read_here += n;
        pending.extend_from_slice(&chunk[..n]);
    }
}

fn miss(
    step: usize,
    re: &regex::Regex,
    pending: &[u8],
    last_line: String,
    closed: bool,
) -> Unmatched {
    let tail = line_text(pending);
    let mut read = if tail.is_empty() { last_line } else { tail };
    if read.len() > SHOWN_BYTES {
        let mut cut = SHOWN_BYTES;
        while !read.is_char_boundary(cut) {
            cut -= 1;
        }
        read.truncate(cut);
    }
    Unmatched {
        step,
        pattern: re.as_str().to_owned(),
        read,
        closed,
    }
}

/// A line as text, without its line ending.
fn line_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end_matches(['\r', '\n'])
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_text_drops_the_line_ending_only() {
        assert_eq!(line_text(b"+PONG\r\n"), "+PONG");
        assert_eq!(line_text(b" a b \n"), " a b ");
        assert_eq!(line_text(b"\xff\n"), "\u{fffd}");
    }

    #[test]
    fn a_miss_keeps_a_bounded_tail_on_a_char_boundary() {
        let re = regex::Regex::new("x").unwrap();
        let long = "é".repeat(SHOWN_BYTES);
        let m = miss(2, &re, long.as_bytes(), String::new(), true);
        assert!(m.read.len() <= SHOWN_BYTES);
        assert!(m.read.chars().all(|c| c == 'é'));
        assert_eq!((m.step, m.closed), (2, true));
    }
}
