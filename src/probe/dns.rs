//! The DNS probe: one query to one server over UDP or TCP, the answer read
//! into a [`DnsSeen`] for `judge`.
//!
//! hickory-proto builds the query and parses the answer (no DNS wire format
//! is written here); the sockets are tokio's own, so the probe sees what a
//! resolver library would hide from it. In particular hickory-net's client
//! retries over UDP, uses an unconnected socket (an ICMP port unreachable
//! never reaches it) and drops mismatched answers without a word; a probe
//! wants one query, one answer, and each failure told apart.
//!
//! - The whole probe is bounded by the target's timeout; the reason says
//!   whether the connection or the answer did not come.
//! - Over UDP the socket is connected to the server, so only datagrams from
//!   its address arrive, and a port unreachable comes back as a refused
//!   connection. A datagram whose ID, QR bit or question does not match the
//!   query is ignored, as every resolver ignores it (it may be forged or
//!   late); if nothing else arrives before the deadline the failure is
//!   `protocol`, naming the mismatch, rather than a plain timeout.
//! - Over TCP the connection is ours alone, so a mismatched answer is a
//!   `protocol` failure at once. A message is read whole: its two-byte
//!   length prefix (RFC 1035 4.2.2) bounds it at 65535 bytes.
//! - A UDP answer with the TC (truncated) bit is reported as a `protocol`
//!   failure, not retried over TCP: a check asks one question one way, and
//!   a server that must truncate its answer is worth knowing about. The
//!   reason says to use `transport = "tcp"`.
//! - A response code other than NOERROR is an answer, not an error: it
//!   lands in `DnsSeen::rcode` and `judge` compares it with `expect.rcode`.

use std::fmt::Write as _;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{self, Name, RData, Record};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::Observation;
use crate::model::{DnsSeen, DnsTarget, DnsTransport, RecordType, Seen};
use crate::outcome::FailureKind;

/// The UDP payload size we advertise in EDNS (the DNS flag day's value):
/// answers up to this size need no truncation.
const EDNS_PAYLOAD: u16 = 1232;

/// The largest DNS message: over TCP its length is a `u16`; a UDP datagram
/// cannot be larger either.
const MAX_MESSAGE: usize = 65535;

/// How many mismatched UDP datagrams are read before giving up on the
/// server's answer.
const MAX_IGNORED: usize = 16;

/// What the probe got to before a timeout cut it short.
#[derive(Default)]
struct Progress {
    /// Time to a connected socket, once there is one.
    connected: Mutex<Option<Duration>>,
    /// A UDP datagram that did not answer our query was ignored.
    mismatched: AtomicBool,
}

impl Progress {
    fn set_connected(&self, d: Duration) {
        if let Ok(mut c) = self.connected.lock() {
            *c = Some(d);
        }
    }

    fn connected(&self) -> Option<Duration> {
        self.connected.lock().ok().and_then(|c| *c)
    }
}

type Failure = (FailureKind, String);

pub async fn probe(t: &DnsTarget) -> Observation {
    let progress = Progress::default();
    let started = Instant::now();
    let result = tokio::time::timeout(t.timeout, exchange(t, &progress)).await;
    let duration = started.elapsed();
    let connect = progress.connected();
    let mut obs = match result {
        Ok(Ok(seen)) => Observation {
            seen: Seen::Dns(seen),
            ..Observation::default()
        },
        Ok(Err((kind, reason))) => Observation::failed(kind, reason),
        Err(_) => {
            let within = humantime::format_duration(t.timeout);
            let (server, transport) = (t.server, t.transport.as_str().to_uppercase());
            if connect.is_none() {
                Observation::failed(
                    FailureKind::Timeout,
                    format!("no {transport} connection to {server} within {within}"),
                )
            } else if progress.mismatched.load(Ordering::Relaxed) {
                Observation::failed(
                    FailureKind::Protocol,
                    format!(
                        "no matching answer from {server} within {within}; only responses \
                         with the wrong ID or question came back"
                    ),
                )
            } else {
                Observation::failed(
                    FailureKind::Timeout,
                    format!("no answer from {server} over {transport} within {within}"),
                )
            }
        }
    };
    obs.duration = duration;
    obs.phases.connect = connect.unwrap_or_default();
    obs
}

async fn exchange(t: &DnsTarget, progress: &Progress) -> Result<DnsSeen, Failure> {
    let query = query_for(t)?;
    let bytes = query.to_vec().map_err(|_| {
        (
            FailureKind::Internal,
            format!("could not encode the query for {:?}", t.name),
        )
    })?;
    let (answer, connect, request) = match t.transport {
        DnsTransport::Udp => udp(t.server, &query, &bytes, progress).await?,
        DnsTransport::Tcp => tcp(t.server, &query, &bytes, progress).await?,
    };
    Ok(DnsSeen {
        rcode: rcode_name(answer.metadata.response_code),
        answers: answer.answers.iter().map(zone_line).collect(),
        authority: answer.authorities.len(),
        additional: answer.additionals.len(),
        connect,
        request,
    })
}

/// The query: one question, a random ID, RD as configured, EDNS with our
/// payload size.
fn query_for(t: &DnsTarget) -> Result<Message, Failure> {
    let mut name = Name::from_utf8(&t.name).map_err(|_| {
        (
            FailureKind::Internal,
            format!("{:?} is not a valid DNS name", t.name),
        )
    })?;
    name.set_fqdn(true);
    let mut query = Message::query();
    query.metadata.recursion_desired = t.recursion_desired;
    query.add_query(Query::query(name, record_type(t.record_type)));
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    query.set_edns(edns);
    Ok(query)
}

/// Whether `answer` answers `query`: its ID, the QR bit and the question.
fn answers(query: &Message, answer: &Message) -> bool {
    answer.metadata.id == query.metadata.id
        && answer.metadata.message_type == MessageType::Response
        && answer.queries == query.queries
}

async fn udp(
    server: SocketAddr,
    query: &Message,
    bytes: &[u8],
    progress: &Progress,
) -> Result<(Message, Duration, Duration), Failure> {
    let start = Instant::now();
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await.map_err(|e| {
        (
            FailureKind::Internal,
            format!("could not open a UDP socket: {}", describe(&e)),
        )
    })?;
    socket
        .connect(server)
        .await
        .map_err(|e| connect_failed(server, "UDP", &e))?;
    let connect = start.elapsed();
    progress.set_connected(connect);

    let sent = Instant::now();
    socket
        .send(bytes)
        .await
        .map_err(|e| connect_failed(server, "UDP", &e))?;
    let mut buf = vec![0; MAX_MESSAGE];
    for _ in 0..MAX_IGNORED {
        let n = socket.recv(&mut buf).await.map_err(|e| {
            if e.kind() == io::ErrorKind::ConnectionRefused {
                (
                    FailureKind::Connect,
                    format!("{server} refused the query (port unreachable over UDP)"),
                )
            } else {
                connect_failed(server, "UDP", &e)
            }
        })?;
        let Some(answer) = buf.get(..n).and_then(|b| Message::from_vec(b).ok()) else {
            return Err(not_dns(server, "UDP"));
        };
        if answer.metadata.id != query.metadata.id
            || answer.metadata.message_type != MessageType::Response
        {
            progress.mismatched.store(true, Ordering::Relaxed);
            continue;
        }
        if answer.metadata.truncation {
            return Err((
                FailureKind::Protocol,
                format!("the answer from {server} was truncated (TC bit); use transport = \"tcp\""),
            ));
        }
        if !answers(query, &answer) {
            progress.mismatched.store(true, Ordering::Relaxed);
            continue;
        }
        return Ok((answer, connect, sent.elapsed()));
    }
    Err((
        FailureKind::Protocol,
        format!(
            "{server} sent {MAX_IGNORED} responses with the wrong ID or question and no answer"
        ),
    ))
}

async fn tcp(
    server: SocketAddr,
    query: &Message,
    bytes: &[u8],
    progress: &Progress,
) -> Result<(Message, Duration, Duration), Failure> {
    let start = Instant::now();
    let mut stream = TcpStream::connect(server)
        .await
        .map_err(|e| connect_failed(server, "TCP", &e))?;
    let connect = start.elapsed();
    progress.set_connected(connect);
    // Best effort: the query goes out in one write either way.
    let _ = stream.set_nodelay(true);

    let sent = Instant::now();
    let len = u16::try_from(bytes.len()).map_err(|_| {
        (
            FailureKind::Internal,
            "the query is longer than a DNS message may be".to_owned(),
        )
    })?;
    let mut frame = Vec::with_capacity(bytes.len() + 2);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(bytes);
    stream
        .write_all(&frame)
        .await
        .map_err(|e| broken(server, "while sending the query", &e))?;

    let mut prefix = [0u8; 2];
    stream
        .read_exact(&mut prefix)
        .await
        .map_err(|e| broken(server, "before answering", &e))?;
    let len = usize::from(u16::from_be_bytes(prefix));
    let mut buf = vec![0; len];
    stream
        .read_exact(&mut buf)
        .await
        .map_err(|e| broken(server, "in the middle of its answer", &e))?;
    let answer = Message::from_vec(&buf).map_err(|_| not_dns(server, "TCP"))?;
    if !answers(query, &answer) {
        return Err((
            FailureKind::Protocol,
            format!("the answer from {server} over TCP has the wrong ID or question"),
        ));
    }
    if answer.metadata.truncation {
        return Err((
            FailureKind::Protocol,
            format!("the answer from {server} was truncated (TC bit) even over TCP"),
        ));
    }
    Ok((answer, connect, sent.elapsed()))
}

fn connect_failed(server: SocketAddr, transport: &str, e: &io::Error) -> Failure {
    (
        FailureKind::Connect,
        format!("could not reach {server} over {transport}: {}", describe(e)),
    )
}

/// The TCP connection ended or failed after it was made.
fn broken(server: SocketAddr, when: &str, e: &io::Error) -> Failure {
    let what = if e.kind() == io::ErrorKind::UnexpectedEof {
        "closed the connection".to_owned()
    } else {
        format!("broke the connection ({})", describe(e))
    };
    (FailureKind::Protocol, format!("{server} {what} {when}"))
}

fn not_dns(server: SocketAddr, transport: &str) -> Failure {
    (
        FailureKind::Protocol,
        format!("the answer from {server} over {transport} is not a DNS message"),
    )
}

/// An I/O error in a few words, without the OS error number.
fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
        io::ErrorKind::ConnectionAborted => "connection aborted".to_owned(),
        io::ErrorKind::NetworkUnreachable => "network unreachable".to_owned(),
        io::ErrorKind::HostUnreachable => "host unreachable".to_owned(),
        io::ErrorKind::AddrNotAvailable => "address not available".to_owned(),
        io::ErrorKind::BrokenPipe => "broken pipe".to_owned(),
        _ => e.to_string(),
    }
}

fn record_type(t: RecordType) -> rr::RecordType {
    match t {
        RecordType::A => rr::RecordType::A,
        RecordType::Aaaa => rr::RecordType::AAAA,
        RecordType::Cname => rr::RecordType::CNAME,
        RecordType::Mx => rr::RecordType::MX,
        RecordType::Txt => rr::RecordType::TXT,
        RecordType::Srv => rr::RecordType::SRV,
        RecordType::Ns => rr::RecordType::NS,
        RecordType::Soa => rr::RecordType::SOA,
        RecordType::Ptr => rr::RecordType::PTR,
    }
}

/// The response code's mnemonic, as dig and `expect.rcode` write it;
/// `RCODE<n>` for a code without one.
pub fn rcode_name(code: ResponseCode) -> String {
    let name = match code {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::YXDomain => "YXDOMAIN",
        ResponseCode::YXRRSet => "YXRRSET",
        ResponseCode::NXRRSet => "NXRRSET",
        ResponseCode::NotAuth => "NOTAUTH",
        ResponseCode::NotZone => "NOTZONE",
        ResponseCode::BADVERS => "BADVERS",
        ResponseCode::BADSIG => "BADSIG",
        ResponseCode::BADKEY => "BADKEY",
        ResponseCode::BADTIME => "BADTIME",
        ResponseCode::BADMODE => "BADMODE",
        ResponseCode::BADNAME => "BADNAME",
        ResponseCode::BADALG => "BADALG",
        ResponseCode::BADTRUNC => "BADTRUNC",
        ResponseCode::BADCOOKIE => "BADCOOKIE",
        other => return format!("RCODE{}", u16::from(other)),
    };
    name.to_owned()
}

/// A record as a zone file writes it: `name TTL CLASS TYPE data`, names
/// fully qualified in ASCII (`xn--` labels for IDNs), TXT strings quoted.
pub fn zone_line(record: &Record) -> String {
    let data = match &record.data {
        RData::A(a) => a.to_string(),
        RData::AAAA(a) => a.to_string(),
        RData::CNAME(n) => n.0.to_ascii(),
        RData::NS(n) => n.0.to_ascii(),
        RData::PTR(n) => n.0.to_ascii(),
        RData::MX(mx) => format!("{} {}", mx.preference, mx.exchange.to_ascii()),
        RData::SRV(srv) => format!(
            "{} {} {} {}",
            srv.priority,
            srv.weight,
            srv.port,
            srv.target.to_ascii()
        ),
        RData::SOA(soa) => format!(
            "{} {} {} {} {} {} {}",
            soa.mname.to_ascii(),
            soa.rname.to_ascii(),
            soa.serial,
            soa.refresh,
            soa.retry,
            soa.expire,
            soa.minimum
        ),
        RData::TXT(txt) => {
            let mut out = String::new();
            for (i, s) in txt.txt_data.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                quote_into(&mut out, s);
            }
            out
        }
        other => other.to_string(),
    };
    format!(
        "{} {} {} {} {data}",
        record.name.to_ascii(),
        record.ttl,
        record.dns_class,
        record.record_type()
    )
}

/// A `<character-string>` in zone-file quotes: `"` and `\` escaped, bytes
/// outside printable ASCII as `\DDD`.
fn quote_into(out: &mut String, s: &[u8]) {
    out.push('"');
    for &b in s {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, PTR, SOA, SRV, TXT};

    use super::*;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).expect("a valid name")
    }

    fn line(owner: &str, data: RData) -> String {
        zone_line(&Record::from_rdata(name(owner), 300, data))
    }

    #[test]
    fn every_record_type_is_written_as_in_a_zone_file() {
        let cases = [
            (
                line("registry.example.", RData::A(A(Ipv4Addr::new(10, 0, 0, 7)))),
                "registry.example. 300 IN A 10.0.0.7",
            ),
            (
                line(
                    "registry.example.",
                    RData::AAAA(AAAA(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 7))),
                ),
                "registry.example. 300 IN AAAA fd00::7",
            ),
            (
                line(
                    "www.example.",
                    RData::CNAME(CNAME(name("registry.example."))),
                ),
                "www.example. 300 IN CNAME registry.example.",
            ),
            (
                line("example.", RData::MX(MX::new(10, name("mail.example.")))),
                "example. 300 IN MX 10 mail.example.",
            ),
            (
                line(
                    "example.",
                    RData::TXT(TXT::new(vec![
                        "v=spf1 -all".to_owned(),
                        "say \"hi\" \\ ok".to_owned(),
                    ])),
                ),
                r#"example. 300 IN TXT "v=spf1 -all" "say \"hi\" \\ ok""#,
            ),
            (
                line(
                    "example.",
                    RData::TXT(TXT::from_bytes(vec![b"tab\there\xff".as_slice()])),
                ),
                r#"example. 300 IN TXT "tab\009here\255""#,
            ),
            (
                line(
                    "_registry._tcp.example.",
                    RData::SRV(SRV::new(1, 5, 8443, name("registry.example."))),
                ),
                "_registry._tcp.example. 300 IN SRV 1 5 8443 registry.example.",
            ),
            (
                line("example.", RData::NS(NS(name("ns1.example.")))),
                "example. 300 IN NS ns1.example.",
            ),
            (
                line(
                    "example.",
                    RData::SOA(SOA::new(
                        name("ns1.example."),
                        name("hostmaster.example."),
                        2024010101,
                        7200,
                        900,
                        1209600,
                        300,
                    )),
                ),
                "example. 300 IN SOA ns1.example. hostmaster.example. 2024010101 7200 900 1209600 300",
            ),
            (
                line(
                    "7.0.0.10.in-addr.arpa.",
                    RData::PTR(PTR(name("registry.example."))),
                ),
                "7.0.0.10.in-addr.arpa. 300 IN PTR registry.example.",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn response_codes_are_mnemonics() {
        assert_eq!(rcode_name(ResponseCode::NoError), "NOERROR");
        assert_eq!(rcode_name(ResponseCode::NXDomain), "NXDOMAIN");
        assert_eq!(rcode_name(ResponseCode::ServFail), "SERVFAIL");
        assert_eq!(rcode_name(ResponseCode::Refused), "REFUSED");
        assert_eq!(rcode_name(ResponseCode::Unknown(3841)), "RCODE3841");
    }

    #[test]
    fn every_record_type_maps_to_its_own_qtype() {
        for t in RecordType::ALL {
            assert_eq!(record_type(t).to_string(), t.as_str());
        }
    }
}
