//! Hostile targets: whatever the target does, a probe ends within its
//! timeout plus a small bound, holds at most `max_body_bytes` of body, and
//! gives exactly one failed result with a precise kind and a short, clean
//! reason.
//!
//! The targets are raw `tokio::net::TcpListener`s on 127.0.0.1:0 that speak
//! whatever each case needs (one behaviour per path, or per listener). Every
//! server is bounded: it accepts at most `MAX_CONNS` connections, each lives
//! at most `CONN_LIFETIME`, and dropping the [`Hostile`] aborts the accept
//! loop, whose `JoinSet` aborts the connections still open.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lookout::config::Config;
use lookout::daemon::Daemon;
use lookout::outcome::{FailureKind, Outcome};
use prometheus_parse::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::daemon::{gauge, parse};
use crate::support::{TEST_SECRET, assert_table_passed, config, probe};

/// The longest any one connection of a hostile server lives.
const CONN_LIFETIME: Duration = Duration::from_secs(20);
/// The most connections one hostile server accepts.
const MAX_CONNS: usize = 2000;
/// The timeout of every probe in the tables.
const TIMEOUT: Duration = Duration::from_secs(1);
/// How long after its timeout a probe may end.
const SLACK: Duration = Duration::from_secs(1);
/// How many zero bytes the gzip bomb expands to: 1 + 258 × this.
const BOMB_COPIES: usize = 16_384;

/// A hostile server. Dropping it stops it and every connection it holds.
struct Hostile {
    addr: SocketAddr,
    /// The request heads it was sent (at most `MAX_CONNS`).
    heads: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Hostile {
    /// The plain-HTTP server: one behaviour per path (see [`behave`]).
    async fn start() -> Hostile {
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        Hostile::with(heads, move |tcp| behave(tcp, seen.clone())).await
    }

    /// A server whose every connection is handled by `handle`.
    async fn with<F, Fut>(heads: Arc<Mutex<Vec<String>>>, handle: F) -> Hostile
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            for _ in 0..MAX_CONNS {
                let Ok((tcp, _)) = listener.accept().await else {
                    break;
                };
                let conn = handle(tcp);
                conns.spawn(async move {
                    let _ = tokio::time::timeout(CONN_LIFETIME, conn).await;
                });
                while conns.try_join_next().is_some() {}
            }
            while conns.join_next().await.is_some() {}
        });
        Hostile { addr, heads, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// Reads a request head (up to the blank line, at most 64 KiB).
async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        if got.len() > 64 * 1024 {
            return None;
        }
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    Some(String::from_utf8_lossy(&got).into_owned())
}

/// Holds the connection, reading and discarding, until the client closes it.
async fn until_closed<S: AsyncRead + Unpin>(s: &mut S) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

/// Sends what was written so far, then resets the connection (RST, not FIN).
async fn reset(tcp: TcpStream) {
    let _ = tcp.set_nodelay(true);
    // Let the bytes written so far reach the client first: SO_LINGER 0
    // discards whatever is still in the send buffer.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = tcp.set_zero_linger();
    drop(tcp);
}

fn head(status: &str, headers: &[&str]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// The plain-HTTP behaviours, one per path.
async fn behave(mut tcp: TcpStream, heads: Arc<Mutex<Vec<String>>>) {
    let Some(request) = read_head(&mut tcp).await else {
        return;
    };
    let target = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
    heads.lock().unwrap().push(request);
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let w = &mut tcp;
    match path {
        "/ok" => {
            let _ = w
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
            until_closed(w).await;
        }
        // Closes without a byte of response.
        "/empty" => {}
        "/reset-headers" => {
            let _ = w
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/pl")
                .await;
            reset(tcp).await;
        }
        "/reset-body" => {
            let _ = w
                .write_all(&head("200 OK", &["content-length: 1000000"]))
                .await;
            let _ = w.write_all(&[b'x'; 16 * 1024]).await;
            reset(tcp).await;
        }
        // Content-Length promises more than is sent, then a clean close (FIN).
        "/short-body" => {
            let _ = w
                .write_all(&head("200 OK", &["content-length: 1000000"]))
                .await;
            let _ = w.write_all(&[b'x'; 16 * 1024]).await;
            let _ = w.shutdown().await;
        }
        // Content-Length promises less than is sent: the rest is not read.
        "/long-body" => {
            let _ = w.write_all(&head("200 OK", &["content-length: 5"])).await;
            let _ = w.write_all(b"hello").await;
            for _ in 0..64 {
                if w.write_all(&[b'y'; 16 * 1024]).await.is_err() {
                    return;
                }
            }
            until_closed(w).await;
        }
        "/silent" => until_closed(w).await,
        // A valid response, one byte every 200 ms.
        "/drip" => {
            let response = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
            for byte in response {
                if w.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            until_closed(w).await;
        }
        // Headers, then never the body they announce.
        "/stall-body" => {
            let _ = w.write_all(&head("200 OK", &["content-length: 100"])).await;
            until_closed(w).await;
        }
        // A chunked body that never ends: 16 KiB every 10 ms (1.6 MB/s).
        "/endless" => {
            let _ = w
                .write_all(&head("200 OK", &["transfer-encoding: chunked"]))
                .await;
            let mut chunk = b"4000\r\n".to_vec();
            chunk.extend_from_slice(&[b'z'; 0x4000]);
            chunk.extend_from_slice(b"\r\n");
            for _ in 0..3000 {
                if w.write_all(&chunk).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        // One-byte chunks, as fast as the socket takes them.
        "/tiny-chunks" => {
            let _ = w
                .write_all(&head("200 OK", &["transfer-encoding: chunked"]))
                .await;
            let batch = b"1\r\nz\r\n".repeat(10_000);
            let until = Instant::now() + Duration::from_secs(5);
            while Instant::now() < until {
                if w.write_all(&batch).await.is_err() {
                    return;
                }
            }
        }
        // The same as fast as the socket takes it.
        "/flood" => {
            let _ = w
                .write_all(&head("200 OK", &["transfer-encoding: chunked"]))
                .await;
            let mut chunk = b"4000\r\n".to_vec();
            chunk.extend_from_slice(&[b'z'; 0x4000]);
            chunk.extend_from_slice(b"\r\n");
            for _ in 0..100_000 {
                if w.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        }
        "/gzip-bomb" => {
            let bomb = gzip_bomb(BOMB_COPIES);
            let len = format!("content-length: {}", bomb.len());
            let _ = w
                .write_all(&head(
                    "200 OK",
                    &[
                        "content-type: text/plain",
                        "content-encoding: gzip",
                        &len,
                        "connection: close",
                    ],
                ))
                .await;
            let _ = w.write_all(&bomb).await;
            until_closed(w).await;
        }
        "/ssh" => {
            let _ = w.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n").await;
            until_closed(w).await;
        }
        // What an HTTP/2-only (h2c prior knowledge) server answers to an
        // HTTP/1.1 request: its SETTINGS, then GOAWAY(PROTOCOL_ERROR).
        "/h2c" => {
            let mut frames = h2_frame(4, 0, 0, &[]);
            frames.extend(h2_frame(7, 0, 0, &[0, 0, 0, 0, 0, 0, 0, 1]));
            let _ = w.write_all(&frames).await;
        }
        "/loop" => {
            let _ = w
                .write_all(&head(
                    "302 Found",
                    &["location: /loop", "content-length: 0"],
                ))
                .await;
            until_closed(w).await;
        }
        // `?to=URL`: a redirect to wherever the test says.
        "/away" => {
            let to = query.strip_prefix("to=").unwrap_or("/ok");
            let location = format!("location: {to}");
            let _ = w
                .write_all(&head("302 Found", &[&location, "content-length: 0"]))
                .await;
            until_closed(w).await;
        }
        "/bad-location" => {
            let _ = w
                .write_all(
                    b"HTTP/1.1 302 Found\r\nlocation: /\xff\xfe\x80\r\ncontent-length: 0\r\n\r\n",
                )
                .await;
            until_closed(w).await;
        }
        "/bad-utf8-body" => {
            let body: &[u8] = b"\xff\xfe\xfd\x00 not \x80 text \xc3\x28 at \x1b[31m all\n";
            let len = format!("content-length: {}", body.len());
            let _ = w
                .write_all(&head("500 Internal Server Error", &[&len]))
                .await;
            let _ = w.write_all(body).await;
            until_closed(w).await;
        }
        // A JSON error whose detail has invalid UTF-8 and goes on for 20 KB.
        "/bad-utf8-json" => {
            let mut body = b"{\"detail\": \"quota \xff\xfe exceeded \xc3\x28 ".to_vec();
            body.extend_from_slice(&[b'q'; 20_000]);
            body.extend_from_slice(b"\"}");
            let len = format!("content-length: {}", body.len());
            let _ = w
                .write_all(&head(
                    "500 Internal Server Error",
                    &["content-type: application/json", &len],
                ))
                .await;
            let _ = w.write_all(&body).await;
            until_closed(w).await;
        }
        "/bad-utf8-reason" => {
            let _ = w
                .write_all(b"HTTP/1.1 500 Kaputt \xff\xfe\x80\r\ncontent-length: 0\r\n\r\n")
                .await;
            until_closed(w).await;
        }
        // One header line of 1 MiB.
        "/huge-header" => {
            let _ = w.write_all(b"HTTP/1.1 200 OK\r\nx-big: ").await;
            if w.write_all(&vec![b'a'; 1024 * 1024]).await.is_err() {
                return;
            }
            let _ = w.write_all(b"\r\ncontent-length: 0\r\n\r\n").await;
            until_closed(w).await;
        }
        // Header lines that never end, as fast as the socket takes them.
        "/endless-headers" => {
            let _ = w.write_all(b"HTTP/1.1 200 OK\r\n").await;
            let batch: String = (0..100).map(|i| format!("x-h-{i}: v\r\n")).collect();
            for _ in 0..100_000 {
                if w.write_all(batch.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
        // Header lines that never end, one every 50 ms.
        "/slow-headers" => {
            let _ = w.write_all(b"HTTP/1.1 200 OK\r\n").await;
            for i in 0..600 {
                if w.write_all(format!("x-h-{i}: v\r\n").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        // Informational responses, endlessly, and never the final one.
        "/continue-flood" => {
            let until = Instant::now() + Duration::from_secs(5);
            while Instant::now() < until {
                if w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
                    return;
                }
            }
        }
        // An upgrade nobody asked for, then bytes of another protocol.
        "/switching" => {
            let _ = w
                .write_all(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n\x81\x05hello")
                .await;
            until_closed(w).await;
        }
        "/bad-status" => {
            let _ = w
                .write_all(b"HTTP/1.1 2000 OK\r\ncontent-length: 0\r\n\r\n")
                .await;
            until_closed(w).await;
        }
        "/two-lengths" => {
            let _ = w
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 7\r\n\r\nhello..",
                )
                .await;
            until_closed(w).await;
        }
        "/bad-chunk" => {
            let _ = w
                .write_all(&head("200 OK", &["transfer-encoding: chunked"]))
                .await;
            let _ = w.write_all(b"zzzz\r\nnot a chunk\r\n").await;
            until_closed(w).await;
        }
        // HTTP/1.0: no Content-Length, the body ends when the server closes.
        "/http10" => {
            let _ = w
                .write_all(b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nhello from 1996\n")
                .await;
            let _ = w.shutdown().await;
        }
        _ => {
            let _ = w
                .write_all(&head("404 Not Found", &["content-length: 0"]))
                .await;
        }
    }
}

/// One HTTP/2 frame.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The stream of the first HEADERS frame after the client preface, if it
/// has arrived.
fn h2_request_stream(buf: &[u8]) -> Option<u32> {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut at = PREFACE.len();
    if buf.len() < at || &buf[..at] != PREFACE {
        return None;
    }
    while buf.len() >= at + 9 {
        let len = u32::from_be_bytes([0, buf[at], buf[at + 1], buf[at + 2]]) as usize;
        let stream = u32::from_be_bytes(buf[at + 5..at + 9].try_into().unwrap()) & 0x7fff_ffff;
        if buf[at + 3] == 1 {
            return Some(stream);
        }
        at += 9 + len;
    }
    None
}

/// A minimal HTTP/2 server for one request, answering as `serve` says.
async fn serve_h2<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, serve: TlsServe) {
    if s.write_all(&h2_frame(4, 0, 0, &[])).await.is_err() {
        return;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let stream = loop {
        if let Some(stream) = h2_request_stream(&got) {
            break stream;
        }
        if got.len() > 64 * 1024 {
            return;
        }
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    };
    let mut out = h2_frame(4, 1, 0, &[]); // SETTINGS ack
    match serve {
        TlsServe::H2Mute => {}
        TlsServe::H2Reset => out.extend(h2_frame(3, 0, stream, &[0, 0, 0, 2])), // RST_STREAM INTERNAL_ERROR
        TlsServe::H2Continuation => {
            // HEADERS without END_HEADERS, then CONTINUATION frames forever,
            // each a block of new literal header fields.
            out.extend(h2_frame(1, 0, stream, &[0x88]));
            let field = [&[0x00, 0x03][..], b"x-a", &[0x0a], b"0123456789"].concat();
            let block: Vec<u8> = field
                .iter()
                .copied()
                .cycle()
                .take(field.len() * 1000)
                .collect();
            let continuation = h2_frame(9, 0, stream, &block);
            if s.write_all(&out).await.is_err() {
                return;
            }
            for _ in 0..100_000 {
                if s.write_all(&continuation).await.is_err() {
                    return;
                }
            }
            return;
        }
        TlsServe::H2Endless => {
            out.extend(h2_frame(1, 0x4, stream, &[0x88]));
            let data = h2_frame(0, 0, stream, &[b'z'; 16 * 1024]);
            if s.write_all(&out).await.is_err() {
                return;
            }
            for _ in 0..100_000 {
                if s.write_all(&data).await.is_err() {
                    return;
                }
            }
            return;
        }
        TlsServe::Http | TlsServe::H2Only => {
            out.extend(h2_frame(1, 0x4, stream, &[0x88])); // HEADERS :status 200, END_HEADERS
            out.extend(h2_frame(0, 0x1, stream, b"h2 ok")); // DATA, END_STREAM
        }
    }
    if s.write_all(&out).await.is_ok() {
        until_closed(s).await;
    }
}

/// A gzip stream (one fixed-Huffman deflate block: a literal zero, then
/// `copies` copies of 258 bytes at distance 1) that expands to
/// `1 + 258 × copies` zero bytes: about 160 times its size.
fn gzip_bomb(copies: usize) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u8,
        n: u8,
    }
    impl Bits {
        /// `len` bits of `value`, least significant first.
        fn put(&mut self, value: u32, len: u32) {
            for i in 0..len {
                self.acc |= (((value >> i) & 1) as u8) << self.n;
                self.n += 1;
                if self.n == 8 {
                    self.out.push(self.acc);
                    (self.acc, self.n) = (0, 0);
                }
            }
        }
        /// A Huffman code: most significant bit first.
        fn code(&mut self, code: u32, len: u32) {
            for i in (0..len).rev() {
                self.put((code >> i) & 1, 1);
            }
        }
    }
    let mut bits = Bits {
        out: vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff],
        acc: 0,
        n: 0,
    };
    bits.put(1, 1); // BFINAL
    bits.put(1, 2); // BTYPE 01: fixed Huffman codes
    bits.code(0x30, 8); // literal 0
    for _ in 0..copies {
        bits.code(0xc5, 8); // length 258 (symbol 285)
        bits.code(0, 5); // distance 1
    }
    bits.code(0, 7); // end of block
    if bits.n > 0 {
        bits.out.push(bits.acc);
    }
    let size = 1 + 258 * copies;
    let mut table = [0u32; 256];
    for (i, entry) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *entry = c;
    }
    let mut crc = !0u32;
    for _ in 0..size {
        crc = table[(crc & 0xff) as usize] ^ (crc >> 8);
    }
    let mut out = bits.out;
    out.extend_from_slice(&(!crc).to_le_bytes());
    out.extend_from_slice(&(size as u32).to_le_bytes());
    out
}

/// What an HTTPS listener does with each connection.
#[derive(Clone, Copy)]
enum TlsServe {
    /// HTTP/1.1 `200 tls ok` (or HTTP/2 when ALPN picks h2).
    Http,
    /// Only "h2" is offered in ALPN, and only HTTP/2 is spoken.
    H2Only,
    /// HTTP/2, and no answer to the request.
    H2Mute,
    /// HTTP/2: the request stream is reset.
    H2Reset,
    /// HTTP/2: a header block that never ends (CONTINUATION flood).
    H2Continuation,
    /// HTTP/2: a body that never ends, as fast as the socket takes it.
    H2Endless,
}

/// An HTTPS server with a self-signed certificate for `names`, valid until
/// `not_after` (year, month, day). Returns the server and the certificate.
async fn tls_target(
    names: &[&str],
    not_after: (i32, u8, u8),
    serve: TlsServe,
) -> (Hostile, String) {
    tls_target_valid(names, (2020, 1, 1), not_after, serve).await
}

/// The same, valid from `not_before`.
async fn tls_target_valid(
    names: &[&str],
    not_before: (i32, u8, u8),
    not_after: (i32, u8, u8),
    serve: TlsServe,
) -> (Hostile, String) {
    let (mut server_config, cert_pem) =
        crate::support::self_signed_server(names, not_before, not_after);
    server_config.alpn_protocols = match serve {
        TlsServe::Http => vec![b"http/1.1".to_vec()],
        _ => vec![b"h2".to_vec()],
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let server = Hostile::with(Arc::default(), move |tcp| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                serve_h2(&mut tls, serve).await;
                return;
            }
            if read_head(&mut tls).await.is_none() {
                return;
            }
            let _ = tls
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\ntls ok",
                )
                .await;
            until_closed(&mut tls).await;
        }
    })
    .await;
    (server, cert_pem)
}

struct Case {
    name: &'static str,
    url: String,
    /// More TOML for the check.
    extra: String,
    /// The failure kind and a piece of its reason; `None`: success.
    want: Option<(FailureKind, &'static str)>,
    /// The exact body the observation must hold, when it matters.
    body: Option<Vec<u8>>,
    /// The status the observation must report, when it matters.
    status: Option<Option<u16>>,
    /// The redirects it must report, when they matter.
    redirects: Option<u32>,
}

fn case(
    name: &'static str,
    url: String,
    extra: &str,
    want: Option<(FailureKind, &'static str)>,
) -> Case {
    Case {
        name,
        url,
        extra: extra.to_owned(),
        want,
        body: None,
        status: None,
        redirects: None,
    }
}

fn check_toml(url: &str, extra: &str) -> String {
    format!(
        "[secrets]\nkey = {{ env = \"PLATFORM_API_KEY\" }}\n\
         [[checks]]\nname = \"c\"\nurl = \"{url}\"\ntimeout = \"{}\"\n{extra}\n",
        humantime::format_duration(TIMEOUT)
    )
}

/// Runs every case and returns what went wrong, all at once. Each case's
/// result and wall time are printed (`--nocapture` shows them).
async fn run_cases(cases: Vec<Case>) -> Vec<String> {
    let mut failures = Vec::new();
    for c in cases {
        let cfg: Config = config(&check_toml(&c.url, &c.extra));
        let cap = cfg.checks[0]
            .probe
            .http()
            .expect("an HTTP check")
            .max_body_bytes;
        let started = Instant::now();
        let (obs, outcome) = probe(&cfg, "c").await;
        let took = started.elapsed();
        let mut problems = Vec::new();
        let shown = match &outcome {
            Outcome::Success => "success".to_owned(),
            Outcome::Failure { kind, reason } => format!("{kind}: {reason}"),
        };
        eprintln!(
            "{:<40} {:>6.0?}ms  {shown}",
            c.name,
            took.as_secs_f64() * 1000.0
        );
        match (&c.want, &outcome) {
            (None, Outcome::Success) => {}
            (Some((kind, needle)), Outcome::Failure { kind: k, reason }) => {
                if k != kind {
                    problems.push(format!("kind {k}, expected {kind}"));
                }
                if !reason.contains(needle) {
                    problems.push(format!("reason should contain {needle:?}"));
                }
            }
            (want, _) => problems.push(format!("expected {want:?}")),
        }
        if let Outcome::Failure { reason, .. } = &outcome {
            if reason.chars().count() > 240 {
                problems.push(format!("reason is {} characters", reason.chars().count()));
            }
            if reason.chars().any(char::is_control) {
                problems.push("reason holds control characters".into());
            }
        }
        if took >= TIMEOUT + SLACK {
            problems.push(format!("took {took:?}, timeout {TIMEOUT:?}"));
        }
        if obs.duration > took {
            problems.push(format!("duration {:?} > wall time", obs.duration));
        }
        if obs.body.len() as u64 > cap {
            problems.push(format!("holds {} bytes of body, cap {cap}", obs.body.len()));
        }
        if let Some(body) = &c.body
            && &obs.body != body
        {
            problems.push(format!(
                "body is {} bytes, expected exactly the {} raw bytes sent",
                obs.body.len(),
                body.len()
            ));
        }
        if let Some(status) = c.status
            && obs.status != status
        {
            problems.push(format!("status {:?}, expected {status:?}", obs.status));
        }
        if let Some(redirects) = c.redirects
            && obs.redirects != redirects
        {
            problems.push(format!("{} redirects, expected {redirects}", obs.redirects));
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {shown}\n  {}", c.name, problems.join("\n  ")));
        }
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_http_targets_end_in_time_with_one_precise_failure() {
    let h = Hostile::start().await;
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    // A listener whose accept queue is full: the kernel drops further SYNs,
    // so connecting never completes.
    let full = {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        socket.listen(0).unwrap()
    };
    let full_addr = full.local_addr().unwrap();
    let mut queued = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(full_addr)).await
        {
            Ok(Ok(s)) => queued.push(s),
            _ => break,
        }
    }
    use FailureKind::*;
    let big_cap = "max_body_bytes = 67108864";
    let bomb = gzip_bomb(BOMB_COPIES);
    let cases = vec![
        case(
            "connection refused",
            format!("http://{refused}/"),
            "",
            Some((Connect, "connect to 127.0.0.1")),
        ),
        case(
            "host name does not resolve",
            "http://lookout-test.invalid/".into(),
            "",
            Some((Dns, "could not resolve lookout-test.invalid")),
        ),
        case(
            "accept queue full, SYN dropped",
            format!("http://{full_addr}/"),
            "",
            Some((Timeout, "timed out after 1s connecting")),
        ),
        case(
            "closed without a response",
            h.url("/empty"),
            "",
            Some((Protocol, "did not send a valid response")),
        ),
        case(
            "reset while sending headers",
            h.url("/reset-headers"),
            "",
            Some((Protocol, "did not send a valid response")),
        ),
        case(
            "reset while sending the body",
            h.url("/reset-body"),
            "",
            Some((Protocol, "while reading the body")),
        ),
        case(
            "closed before Content-Length was sent",
            h.url("/short-body"),
            "",
            Some((Protocol, "while reading the body")),
        ),
        Case {
            body: Some(b"hello".to_vec()),
            ..case(
                "more body than Content-Length",
                h.url("/long-body"),
                "",
                None,
            )
        },
        case(
            "accepts and never answers",
            h.url("/silent"),
            "",
            Some((Timeout, "timed out after 1s waiting for response headers")),
        ),
        case(
            "a byte every 200 ms",
            h.url("/drip"),
            "",
            Some((Timeout, "timed out after 1s waiting for response headers")),
        ),
        Case {
            status: Some(Some(200)),
            ..case(
                "headers, then no body",
                h.url("/stall-body"),
                "",
                Some((Timeout, "timed out after 1s reading the body")),
            )
        },
        Case {
            // The 302 was not the answer: no status is reported.
            status: Some(None),
            redirects: Some(1),
            ..case(
                "redirect, then never answers",
                h.url("/away?to=/silent"),
                "",
                Some((Timeout, "timed out after 1s waiting for response headers")),
            )
        },
        case(
            "endless 100 Continue",
            h.url("/continue-flood"),
            "",
            Some((Timeout, "timed out after 1s waiting for response headers")),
        ),
        case(
            "unasked-for 101 Switching Protocols",
            h.url("/switching"),
            "",
            Some((Status, "status 101, expected 2xx")),
        ),
        case(
            "status code 2000",
            h.url("/bad-status"),
            "",
            Some((Protocol, "did not send a valid response")),
        ),
        case(
            "two different Content-Lengths",
            h.url("/two-lengths"),
            "",
            Some((Protocol, "did not send a valid response")),
        ),
        case(
            "endless chunked body, small cap",
            h.url("/endless"),
            "max_body_bytes = 65536",
            Some((BodyTooLarge, "larger than max_body_bytes (65536 bytes)")),
        ),
        case(
            "endless chunked body, large cap",
            h.url("/endless"),
            big_cap,
            Some((Timeout, "timed out after 1s reading the body")),
        ),
        case(
            "one-byte chunks as fast as possible, large cap",
            h.url("/tiny-chunks"),
            big_cap,
            Some((Timeout, "timed out after 1s reading the body")),
        ),
        case(
            "body flood, default cap",
            h.url("/flood"),
            "",
            Some((BodyTooLarge, "larger than max_body_bytes (1048576 bytes)")),
        ),
        Case {
            // Judged on the raw bytes: the bomb fits under the cap, what it
            // expands to (4 MiB) would not.
            body: Some(bomb.clone()),
            ..case(
                "gzip bomb, not decompressed",
                h.url("/gzip-bomb"),
                &format!("max_body_bytes = {}", 64 * 1024),
                None,
            )
        },
        case(
            "gzip bomb, judged on the raw bytes",
            h.url("/gzip-bomb"),
            r#"expect = { body_not_contains = ["\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000"] }"#,
            None,
        ),
        case(
            "not HTTP at all (SSH banner)",
            h.url("/ssh"),
            "",
            Some((Protocol, "did not send a valid response")),
        ),
        case(
            "HTTP/2-only server, plain TCP (h2c)",
            h.url("/h2c"),
            "",
            Some((Protocol, "did not send a valid response")),
        ),
        Case {
            status: Some(Some(302)),
            redirects: Some(3),
            ..case(
                "redirect loop",
                h.url("/loop"),
                "max_redirects = 3",
                Some((Redirect, "more than 3 redirects (last to \"/loop\")")),
            )
        },
        Case {
            redirects: Some(1),
            ..case(
                "redirect, then refused",
                h.url(&format!("/away?to=http://{refused}/")),
                "",
                Some((Connect, "connect to 127.0.0.1")),
            )
        },
        case(
            "redirect with a non-UTF-8 Location",
            h.url("/bad-location"),
            "",
            Some((Redirect, "unusable Location")),
        ),
        case(
            "redirect to a non-HTTP scheme",
            h.url("/away?to=file:///etc/passwd"),
            "",
            Some((Redirect, "unusable Location \"file:///etc/passwd\"")),
        ),
        case(
            "invalid UTF-8 body",
            h.url("/bad-utf8-body"),
            "",
            Some((Status, "status 500, expected 2xx: \"")),
        ),
        case(
            "invalid UTF-8 in a long JSON detail",
            h.url("/bad-utf8-json"),
            "",
            Some((Status, "status 500, expected 2xx: \"")),
        ),
        case(
            "invalid UTF-8 reason phrase",
            h.url("/bad-utf8-reason"),
            "",
            Some((Status, "status 500, expected 2xx")),
        ),
        case(
            "a 1 MiB header line",
            h.url("/huge-header"),
            "",
            Some((Protocol, "did not send a valid response")),
        ),
        case(
            "endless header lines, fast",
            h.url("/endless-headers"),
            "",
            Some((Protocol, "did not send a valid response")),
        ),
        case(
            "endless header lines, slow",
            h.url("/slow-headers"),
            "",
            Some((Timeout, "timed out after 1s waiting for response headers")),
        ),
        case(
            "invalid chunk size",
            h.url("/bad-chunk"),
            "",
            Some((Protocol, "while reading the body")),
        ),
        Case {
            body: Some(b"hello from 1996\n".to_vec()),
            ..case("HTTP/1.0, body ends at close", h.url("/http10"), "", None)
        },
    ];
    let n = cases.len();
    let failures = run_cases(cases).await;
    drop(queued);
    assert_table_passed(&failures, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_tls_targets_end_in_time_with_one_precise_failure() {
    use FailureKind::*;
    let dir = tempfile::tempdir().unwrap();
    let ca = |name: &str, pem: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        format!("tls = {{ ca_file = \"{}\" }}", path.display())
    };
    let (self_signed, _) = tls_target(&["localhost"], (2031, 6, 30), TlsServe::Http).await;
    let (expired, expired_pem) = tls_target(&["localhost"], (2021, 1, 1), TlsServe::Http).await;
    let (elsewhere, elsewhere_pem) =
        tls_target(&["other.example"], (2031, 6, 30), TlsServe::Http).await;
    let (future, future_pem) =
        tls_target_valid(&["localhost"], (2099, 1, 1), (2100, 1, 1), TlsServe::Http).await;
    let many = [
        "a.example",
        "b.example",
        "c.example",
        "d.example",
        "e.example",
    ];
    let (many_names, many_pem) = tls_target(&many, (2031, 6, 30), TlsServe::Http).await;
    let (h2_only, h2_pem) = tls_target(&["localhost"], (2031, 6, 30), TlsServe::H2Only).await;
    let (h2_mute, h2_mute_pem) = tls_target(&["localhost"], (2031, 6, 30), TlsServe::H2Mute).await;
    let (h2_reset, h2_reset_pem) =
        tls_target(&["localhost"], (2031, 6, 30), TlsServe::H2Reset).await;
    let (h2_flood, h2_flood_pem) =
        tls_target(&["localhost"], (2031, 6, 30), TlsServe::H2Continuation).await;
    let (h2_endless, h2_endless_pem) =
        tls_target(&["localhost"], (2031, 6, 30), TlsServe::H2Endless).await;
    // Accepts TCP and never says a word of TLS.
    let mute = Hostile::with(Arc::default(), |mut tcp| async move {
        until_closed(&mut tcp).await;
    })
    .await;
    // Plain HTTP on the port the check expects TLS on.
    let plain = Hostile::with(Arc::default(), |mut tcp| async move {
        let _ = tcp
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await;
        until_closed(&mut tcp).await;
    })
    .await;
    let https = |h: &Hostile| format!("https://localhost:{}/", h.addr.port());
    let cases = vec![
        case(
            "self-signed certificate",
            https(&self_signed),
            "",
            Some((Tls, "self-signed certificate, not trusted")),
        ),
        case(
            "expired certificate",
            https(&expired),
            &ca("expired.pem", &expired_pem),
            Some((Tls, "certificate expired at 2021-01-01 00:00:00 UTC")),
        ),
        case(
            "certificate not valid yet",
            https(&future),
            &ca("future.pem", &future_pem),
            Some((Tls, "certificate not valid before 2099-01-01 00:00:00 UTC")),
        ),
        case(
            "certificate for another host name",
            https(&elsewhere),
            &ca("elsewhere.pem", &elsewhere_pem),
            Some((
                Tls,
                "certificate not valid for \"localhost\" (it is for other.example)",
            )),
        ),
        case(
            "certificate for five other host names",
            https(&many_names),
            &ca("many.pem", &many_pem),
            Some((Tls, "(it is for a.example, b.example, c.example, 2 more)")),
        ),
        case(
            "TCP accepted, no TLS ever",
            https(&mute),
            "",
            Some((Timeout, "timed out after 1s in the TLS handshake")),
        ),
        case(
            "plain HTTP where TLS was expected",
            https(&plain),
            "",
            Some((Tls, "TLS handshake with localhost")),
        ),
        Case {
            body: Some(b"h2 ok".to_vec()),
            ..case(
                "HTTP/2-only server (TLS ALPN h2)",
                https(&h2_only),
                &ca("h2.pem", &h2_pem),
                None,
            )
        },
        case(
            "HTTP/2, request never answered",
            https(&h2_mute),
            &ca("h2-mute.pem", &h2_mute_pem),
            Some((Timeout, "timed out after 1s waiting for response headers")),
        ),
        case(
            "HTTP/2, stream reset",
            https(&h2_reset),
            &ca("h2-reset.pem", &h2_reset_pem),
            Some((Protocol, "did not send a valid response")),
        ),
        case(
            "HTTP/2, CONTINUATION flood",
            https(&h2_flood),
            &ca("h2-flood.pem", &h2_flood_pem),
            Some((Protocol, "did not send a valid response")),
        ),
        case(
            "HTTP/2, endless body",
            https(&h2_endless),
            &format!(
                "{}\nmax_body_bytes = 65536",
                ca("h2-endless.pem", &h2_endless_pem)
            ),
            Some((BodyTooLarge, "larger than max_body_bytes (65536 bytes)")),
        ),
    ];
    let n = cases.len();
    let failures = run_cases(cases).await;
    assert_table_passed(&failures, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_redirect_to_another_origin_gets_no_credential() {
    let first = Hostile::start().await;
    let other = Hostile::start().await;
    let url = first.url(&format!("/away?to={}", other.url("/ok")));
    let cfg = config(&check_toml(
        &url,
        r#"auth = { scheme = "api_key", header = "X-API-Key", secret = "key" }"#,
    ));
    let started = Instant::now();
    let (obs, outcome) = probe(&cfg, "c").await;
    assert!(started.elapsed() < TIMEOUT + SLACK);
    assert_eq!(outcome, Outcome::Success, "{obs:?}");
    assert_eq!(obs.redirects, 1);
    let sent = first.heads();
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].to_ascii_lowercase().contains("x-api-key") && sent[0].contains(TEST_SECRET),
        "the configured origin gets the key:\n{}",
        sent[0]
    );
    let forwarded = other.heads();
    assert_eq!(forwarded.len(), 1);
    assert!(
        !forwarded[0].to_ascii_lowercase().contains("x-api-key")
            && !forwarded[0].contains(TEST_SECRET),
        "leaked to another origin:\n{}",
        forwarded[0]
    );
}

/// Twenty hostile checks beside one healthy one: the healthy check keeps its
/// schedule, runs start on time, and /metrics answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_targets_never_delay_other_checks() {
    let h = Hostile::start().await;
    let mut toml = String::from(
        "[server]\nlisten = \"127.0.0.1:0\"\n\
         [defaults]\ninterval = \"200ms\"\ntimeout = \"1s\"\n",
    );
    for (kind, count, path, extra) in [
        ("silent", 7, "/silent", ""),
        ("drip", 7, "/drip", ""),
        ("endless", 6, "/endless", "max_body_bytes = 67108864\n"),
    ] {
        for i in 0..count {
            toml.push_str(&format!(
                "[[checks]]\nname = \"{kind}-{i}\"\nurl = \"{}\"\n{extra}",
                h.url(path)
            ));
        }
    }
    toml.push_str(&format!(
        "[[checks]]\nname = \"healthy\"\nurl = \"{}\"\n",
        h.url("/ok")
    ));
    let cfg = config(&toml);
    let healthy = cfg.checks.iter().find(|c| c.name == "healthy").unwrap();
    let schedule = healthy.schedule.clone();
    let daemon = Daemon::start(cfg).await.unwrap();
    let from = chrono::Utc::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let until = chrono::Utc::now();
    let asked = Instant::now();
    let response = reqwest::get(format!("http://{}/metrics", daemon.addr))
        .await
        .unwrap();
    let status = response.status();
    let metrics = response.text().await.unwrap();
    let metrics_took = asked.elapsed();
    let stopping = Instant::now();
    daemon.shutdown().await;
    let shutdown_took = stopping.elapsed();

    assert_eq!(status, 200);
    let scrape = parse(&metrics);
    let expected = schedule.ticks_between(from, until, 1000) as f64;
    let runs = gauge(
        &scrape,
        "lookout_check_runs_total",
        &[("check", "healthy"), ("outcome", "success")],
    )
    .unwrap_or(0.0);
    let lag = scrape
        .samples
        .iter()
        .find(|s| s.metric == "lookout_schedule_lag_seconds")
        .expect("lag histogram");
    let Value::Histogram(buckets) = &lag.value else {
        panic!("histogram")
    };
    let total = buckets.last().unwrap().count;
    let p99 = buckets
        .iter()
        .find(|b| b.count >= 0.99 * total)
        .map_or(f64::INFINITY, |b| b.less_than);
    let hostile_runs = |kind: &str, outcome: &str| -> f64 {
        (0..7)
            .filter_map(|i| {
                gauge(
                    &scrape,
                    "lookout_check_runs_total",
                    &[("check", &format!("{kind}-{i}")), ("outcome", outcome)],
                )
            })
            .sum()
    };
    let (silent, drip, endless) = (
        hostile_runs("silent", "timeout"),
        hostile_runs("drip", "timeout"),
        hostile_runs("endless", "timeout"),
    );
    eprintln!(
        "healthy runs {runs} of {expected} ticks; lag p99 <= {p99}s over {total} runs; \
         hostile timeouts: silent {silent}, drip {drip}, endless {endless}; \
         /metrics in {metrics_took:?}; shutdown in {shutdown_took:?}"
    );
    assert!(
        runs >= 0.8 * expected,
        "healthy ran {runs} times of {expected} ticks"
    );
    assert!(p99 <= 0.1, "schedule lag p99 {p99}s: {buckets:?}");
    assert!(
        silent >= 7.0 && drip >= 7.0 && endless >= 6.0,
        "every hostile check timed out at least once"
    );
    assert!(metrics_took < Duration::from_secs(1), "{metrics_took:?}");
}
