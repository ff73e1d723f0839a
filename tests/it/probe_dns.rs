//! The DNS probe against servers of our own on 127.0.0.1: an authoritative
//! hickory-server with an in-memory zone (UDP and TCP on one port), then
//! hostile ones (silent, closing, resetting, garbage, truncated, wrong ID).
//! Each case is probed and judged as the daemon would, and the outcome's
//! label and reason are what is pinned.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::proto::op::Message;
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, MX, SOA, SRV, TXT};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use lookout::judge::{Expectations, judge_target};
use lookout::model::{DnsExpect, DnsTarget, DnsTransport, Observation, RecordType, Seen, Target};
use lookout::outcome::Outcome;
use lookout::secret::Redactor;
use regex::Regex;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UdpSocket};

/// Every probe here must end well before this; a hang fails the test.
const DEADLINE: Duration = Duration::from_secs(10);

/// The probe's own budget in the cases that wait for an answer that never
/// comes.
const SHORT: Duration = Duration::from_millis(400);

fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("a valid name")
}

fn record(owner: &str, data: RData) -> Record {
    Record::from_rdata(name(owner), 300, data)
}

/// The zone the tests ask about.
fn zone() -> InMemoryZoneHandler {
    let origin = name("example.");
    let mut zone: InMemoryZoneHandler =
        InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
    let soa = SOA::new(
        name("ns1.example."),
        name("hostmaster.example."),
        1,
        7200,
        900,
        1209600,
        60,
    );
    let records = [
        record("example.", RData::SOA(soa)),
        record("registry.example.", RData::A(A::new(10, 0, 0, 7))),
        record(
            "registry.example.",
            RData::AAAA(AAAA::new(0xfd00, 0, 0, 0, 0, 0, 0, 7)),
        ),
        record(
            "www.example.",
            RData::CNAME(CNAME(name("registry.example."))),
        ),
        record("example.", RData::MX(MX::new(10, name("mail.example.")))),
        record(
            "example.",
            RData::TXT(TXT::new(vec!["v=spf1 -all".to_owned()])),
        ),
        record(
            "_registry._tcp.example.",
            RData::SRV(SRV::new(1, 5, 8443, name("registry.example."))),
        ),
        record("pool.example.", RData::A(A::new(10, 0, 1, 1))),
        record("pool.example.", RData::A(A::new(10, 0, 1, 2))),
    ];
    for r in records {
        assert!(zone.upsert_mut(r, 1), "the test zone takes its records");
    }
    zone
}

/// An authoritative server for [`zone`], on UDP and TCP at one address.
/// Stops when dropped.
pub struct DnsServer {
    pub addr: SocketAddr,
    _server: Server<Catalog>,
}

pub async fn start_dns() -> DnsServer {
    let mut catalog = Catalog::new();
    let handler: Arc<dyn ZoneHandler> = Arc::new(zone());
    catalog.upsert(LowerName::new(&name("example.")), vec![handler]);
    let mut server = Server::new(catalog);
    // The TCP port first, then the same port for UDP (another test may
    // hold it over UDP already: then take another).
    for _ in 0..20 {
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("a TCP port");
        let addr = tcp.local_addr().expect("its address");
        let Ok(udp) = UdpSocket::bind(addr).await else {
            continue;
        };
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 64 * 1024);
        return DnsServer {
            addr,
            _server: server,
        };
    }
    panic!("no port free for both UDP and TCP");
}

fn target(
    server: SocketAddr,
    transport: DnsTransport,
    qname: &str,
    record_type: RecordType,
    expect: DnsExpect,
) -> DnsTarget {
    DnsTarget {
        server,
        transport,
        name: qname.to_owned(),
        record_type,
        recursion_desired: true,
        timeout: Duration::from_secs(3),
        expect,
    }
}

/// Probes and judges, under [`DEADLINE`].
async fn run(t: DnsTarget) -> (Observation, Outcome) {
    let obs = tokio::time::timeout(DEADLINE, lookout::probe::dns::probe(&t))
        .await
        .expect("the probe ends within its deadline");
    let outcome = judge_target(
        &Target::Dns(t),
        &Expectations::default(),
        &obs,
        &Redactor::default(),
    );
    (obs, outcome)
}

fn re(s: &str) -> Regex {
    Regex::new(s).expect("a valid regex")
}

/// What the reason must be.
enum Reason {
    None,
    Exact(String),
    Contains(&'static str),
}

impl Reason {
    /// Whether the reason is the one a deadline gives.
    fn waits(&self) -> bool {
        matches!(self, Reason::Exact(r) if r.contains("within 400ms"))
    }
}

fn check_outcome(case: &str, outcome: &Outcome, label: &str, reason: &Reason) {
    assert_eq!(outcome.label(), label, "{case}: {outcome:?}");
    let got = match outcome {
        Outcome::Success => None,
        Outcome::Failure { reason, .. } => Some(reason.as_str()),
    };
    match reason {
        Reason::None => assert_eq!(got, None, "{case}"),
        Reason::Exact(want) => assert_eq!(got, Some(want.as_str()), "{case}"),
        Reason::Contains(part) => {
            let got = got.unwrap_or_default();
            assert!(got.contains(part), "{case}: {got:?} lacks {part:?}");
        }
    }
}

struct Case {
    name: &'static str,
    qname: &'static str,
    record_type: RecordType,
    expect: DnsExpect,
    /// The answer section as the probe must write it; `None`: not compared.
    answers: Option<&'static [&'static str]>,
    rcode: &'static str,
    label: &'static str,
    reason: Reason,
}

fn cases() -> Vec<Case> {
    let ok = |name, qname, record_type, answers| Case {
        name,
        qname,
        record_type,
        expect: DnsExpect::default(),
        answers: Some(answers),
        rcode: "NOERROR",
        label: "success",
        reason: Reason::None,
    };
    vec![
        ok(
            "A",
            "registry.example",
            RecordType::A,
            &["registry.example. 300 IN A 10.0.0.7"],
        ),
        ok(
            "AAAA",
            "registry.example.",
            RecordType::Aaaa,
            &["registry.example. 300 IN AAAA fd00::7"],
        ),
        ok(
            "CNAME",
            "www.example",
            RecordType::Cname,
            &["www.example. 300 IN CNAME registry.example."],
        ),
        ok(
            "MX",
            "example",
            RecordType::Mx,
            &["example. 300 IN MX 10 mail.example."],
        ),
        ok(
            "TXT",
            "example",
            RecordType::Txt,
            &[r#"example. 300 IN TXT "v=spf1 -all""#],
        ),
        ok(
            "SRV",
            "_registry._tcp.example",
            RecordType::Srv,
            &["_registry._tcp.example. 300 IN SRV 1 5 8443 registry.example."],
        ),
        Case {
            name: "NXDOMAIN, expected",
            qname: "missing.example",
            record_type: RecordType::A,
            expect: DnsExpect {
                rcode: Some("NXDOMAIN".into()),
                ..DnsExpect::default()
            },
            answers: Some(&[]),
            rcode: "NXDOMAIN",
            label: "success",
            reason: Reason::None,
        },
        Case {
            name: "NXDOMAIN, NOERROR expected by default",
            qname: "missing.example",
            record_type: RecordType::A,
            expect: DnsExpect::default(),
            answers: Some(&[]),
            rcode: "NXDOMAIN",
            label: "answer",
            reason: Reason::Exact("response code NXDOMAIN, expected NOERROR".into()),
        },
        Case {
            name: "NOERROR where NXDOMAIN is expected",
            qname: "registry.example",
            record_type: RecordType::A,
            expect: DnsExpect {
                rcode: Some("NXDOMAIN".into()),
                ..DnsExpect::default()
            },
            answers: None,
            rcode: "NOERROR",
            label: "answer",
            reason: Reason::Exact("response code NOERROR, expected NXDOMAIN".into()),
        },
        Case {
            name: "answers_match passes",
            qname: "registry.example",
            record_type: RecordType::A,
            expect: DnsExpect {
                answers_match: vec![re(r"^registry\.example\. \d+ IN A 10\.0\.0\.7$")],
                ..DnsExpect::default()
            },
            answers: None,
            rcode: "NOERROR",
            label: "success",
            reason: Reason::None,
        },
        Case {
            name: "answers_match fails",
            qname: "registry.example",
            record_type: RecordType::A,
            expect: DnsExpect {
                answers_match: vec![re(r"IN A 10\.9\.9\.9$")],
                ..DnsExpect::default()
            },
            answers: None,
            rcode: "NOERROR",
            label: "answer",
            reason: Reason::Exact(
                r#"no answer matches /IN A 10\.9\.9\.9$/ (first answer "registry.example. 300 IN A 10.0.0.7")"#
                    .into(),
            ),
        },
        Case {
            name: "answers_match of an empty answer",
            qname: "missing.example",
            record_type: RecordType::A,
            expect: DnsExpect {
                rcode: Some("NXDOMAIN".into()),
                answers_match: vec![re("IN A")],
                ..DnsExpect::default()
            },
            answers: Some(&[]),
            rcode: "NXDOMAIN",
            label: "answer",
            reason: Reason::Exact("no answer matches /IN A/ (no answers)".into()),
        },
        Case {
            name: "answers_not_match passes",
            qname: "pool.example",
            record_type: RecordType::A,
            expect: DnsExpect {
                answers_not_match: vec![re(r"IN A 10\.0\.1\.3$")],
                ..DnsExpect::default()
            },
            answers: None,
            rcode: "NOERROR",
            label: "success",
            reason: Reason::None,
        },
        Case {
            name: "answers_not_match fails",
            qname: "pool.example",
            record_type: RecordType::A,
            expect: DnsExpect {
                answers_not_match: vec![re(r"IN A 10\.0\.1\.2$")],
                ..DnsExpect::default()
            },
            answers: None,
            rcode: "NOERROR",
            label: "answer",
            reason: Reason::Exact(
                r#"answer "pool.example. 300 IN A 10.0.1.2" matches /IN A 10\.0\.1\.2$/"#.into(),
            ),
        },
        Case {
            name: "min_answers met",
            qname: "pool.example",
            record_type: RecordType::A,
            expect: DnsExpect {
                min_answers: Some(2),
                ..DnsExpect::default()
            },
            answers: None,
            rcode: "NOERROR",
            label: "success",
            reason: Reason::None,
        },
        Case {
            name: "min_answers not met",
            qname: "registry.example",
            record_type: RecordType::A,
            expect: DnsExpect {
                min_answers: Some(2),
                ..DnsExpect::default()
            },
            answers: None,
            rcode: "NOERROR",
            label: "answer",
            reason: Reason::Exact("1 answer record, expected at least 2".into()),
        },
    ]
}

#[tokio::test]
async fn answers_are_read_and_judged_over_udp_and_tcp() {
    let server = start_dns().await;
    for transport in [DnsTransport::Udp, DnsTransport::Tcp] {
        for case in cases() {
            let label = format!("{} over {}", case.name, transport.as_str());
            let t = target(
                server.addr,
                transport,
                case.qname,
                case.record_type,
                case.expect,
            );
            let (obs, outcome) = run(t).await;
            assert_eq!(obs.error, None, "{label}");
            let Seen::Dns(seen) = &obs.seen else {
                panic!("{label}: no DNS answer recorded");
            };
            assert_eq!(seen.rcode, case.rcode, "{label}");
            if let Some(want) = case.answers {
                assert_eq!(seen.answers, want, "{label}");
            }
            check_outcome(&label, &outcome, case.label, &case.reason);
        }
    }
}

#[tokio::test]
async fn the_sections_are_counted_and_nxdomain_carries_the_soa() {
    let server = start_dns().await;
    let t = target(
        server.addr,
        DnsTransport::Udp,
        "missing.example",
        RecordType::A,
        DnsExpect::default(),
    );
    let (obs, _) = run(t).await;
    let Seen::Dns(seen) = &obs.seen else {
        panic!("no DNS answer recorded: {:?}", obs.error);
    };
    assert_eq!(seen.answers.len(), 0);
    assert_eq!(seen.authority, 1, "the zone's SOA in the authority section");
    assert_eq!(seen.additional, 0, "the OPT record is not counted");
}

/// What a hostile UDP server sends back for each query it reads.
#[derive(Clone, Copy)]
enum Reply {
    Garbage,
    Truncated,
    WrongId,
}

/// A UDP server that answers at most a few queries, each with `reply`, and
/// stops after [`DEADLINE`].
async fn hostile_udp(reply: Reply) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("a UDP port");
    let addr = socket.local_addr().expect("its address");
    tokio::spawn(async move {
        let serve = async {
            let mut buf = vec![0u8; 4096];
            for _ in 0..8 {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let bytes = match reply {
                    Reply::Garbage => b"\xde\xad\xbe\xef this is not DNS".to_vec(),
                    Reply::Truncated | Reply::WrongId => {
                        let Ok(query) = Message::from_vec(&buf[..n]) else {
                            continue;
                        };
                        let mut answer =
                            Message::response(query.metadata.id, query.metadata.op_code);
                        answer.add_queries(query.queries.clone());
                        match reply {
                            Reply::Truncated => answer.metadata.truncation = true,
                            _ => answer.metadata.id = query.metadata.id.wrapping_add(1),
                        }
                        answer.to_vec().expect("an encodable answer")
                    }
                };
                let _ = socket.send_to(&bytes, from).await;
            }
        };
        let _ = tokio::time::timeout(DEADLINE, serve).await;
    });
    addr
}

/// How a hostile TCP server treats each connection.
#[derive(Clone, Copy)]
enum Conn {
    /// Reads and never answers.
    Hold,
    /// Reads the query and closes (FIN).
    Close,
    /// Resets at once (RST: zero linger).
    Reset,
    /// Answers with a length prefix and garbage.
    Garbage,
    /// Answers with a well-formed response whose ID is off by one.
    WrongId,
}

async fn hostile_tcp(conn: Conn) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a TCP port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        let serve = async {
            let mut held = Vec::new();
            for _ in 0..8 {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                match conn {
                    Conn::Hold => held.push(stream),
                    Conn::Close => {
                        // Read the query first: closing with unread data
                        // would be a reset, not a close.
                        let mut prefix = [0u8; 2];
                        if stream.read_exact(&mut prefix).await.is_ok() {
                            let mut query = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
                            let _ = stream.read_exact(&mut query).await;
                        }
                        drop(stream);
                    }
                    Conn::Reset => {
                        let _ = stream.set_zero_linger();
                        drop(stream);
                    }
                    Conn::Garbage | Conn::WrongId => {
                        use tokio::io::AsyncWriteExt;
                        let mut prefix = [0u8; 2];
                        if stream.read_exact(&mut prefix).await.is_err() {
                            continue;
                        }
                        let mut query = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
                        if stream.read_exact(&mut query).await.is_err() {
                            continue;
                        }
                        let body = match conn {
                            Conn::Garbage => b"\xde\xad\xbe\xef not DNS".to_vec(),
                            _ => {
                                let Ok(query) = Message::from_vec(&query) else {
                                    continue;
                                };
                                let mut answer = Message::response(
                                    query.metadata.id.wrapping_add(1),
                                    query.metadata.op_code,
                                );
                                answer.add_queries(query.queries.clone());
                                answer.to_vec().expect("an encodable answer")
                            }
                        };
                        let len = u16::try_from(body.len()).expect("a short answer");
                        let _ = stream.write_all(&len.to_be_bytes()).await;
                        let _ = stream.write_all(&body).await;
                        held.push(stream);
                    }
                }
            }
            // Keep what we hold open until the deadline.
            std::future::pending::<()>().await;
        };
        let _ = tokio::time::timeout(DEADLINE, serve).await;
    });
    addr
}

/// A port nothing listens on (bound, then closed).
async fn closed_tcp_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a TCP port");
    listener.local_addr().expect("its address")
}

async fn closed_udp_port() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("a UDP port");
    socket.local_addr().expect("its address")
}

#[tokio::test]
async fn hostile_servers_fail_with_the_right_kind_and_reason() {
    let silent_udp = UdpSocket::bind("127.0.0.1:0").await.expect("a UDP port");
    let silent = silent_udp.local_addr().expect("its address");
    let hold = hostile_tcp(Conn::Hold).await;
    let close = hostile_tcp(Conn::Close).await;
    let reset = hostile_tcp(Conn::Reset).await;
    let tcp_garbage = hostile_tcp(Conn::Garbage).await;
    let tcp_wrong_id = hostile_tcp(Conn::WrongId).await;
    let udp_garbage = hostile_udp(Reply::Garbage).await;
    let truncated = hostile_udp(Reply::Truncated).await;
    let udp_wrong_id = hostile_udp(Reply::WrongId).await;
    let refused_tcp = closed_tcp_port().await;
    let refused_udp = closed_udp_port().await;

    use DnsTransport::{Tcp, Udp};
    let cases: Vec<(&str, SocketAddr, DnsTransport, &str, Reason)> = vec![
        (
            "a UDP server that never answers",
            silent,
            Udp,
            "timeout",
            Reason::Exact(format!("no answer from {silent} over UDP within 400ms")),
        ),
        (
            "a TCP server that accepts and never answers",
            hold,
            Tcp,
            "timeout",
            Reason::Exact(format!("no answer from {hold} over TCP within 400ms")),
        ),
        (
            "a TCP server that closes without answering",
            close,
            Tcp,
            "protocol",
            Reason::Exact(format!("{close} closed the connection before answering")),
        ),
        (
            "a TCP server that resets at once",
            reset,
            Tcp,
            "protocol",
            Reason::Contains("broke the connection"),
        ),
        (
            "nothing listens on the TCP port",
            refused_tcp,
            Tcp,
            "connect",
            Reason::Exact(format!(
                "could not reach {refused_tcp} over TCP: connection refused"
            )),
        ),
        (
            "nothing listens on the UDP port (ICMP port unreachable)",
            refused_udp,
            Udp,
            "connect",
            Reason::Exact(format!(
                "{refused_udp} refused the query (port unreachable over UDP)"
            )),
        ),
        (
            "a UDP server answering garbage",
            udp_garbage,
            Udp,
            "protocol",
            Reason::Exact(format!(
                "the answer from {udp_garbage} over UDP is not a DNS message"
            )),
        ),
        (
            "a TCP server answering garbage",
            tcp_garbage,
            Tcp,
            "protocol",
            Reason::Exact(format!(
                "the answer from {tcp_garbage} over TCP is not a DNS message"
            )),
        ),
        (
            "a UDP answer with the TC bit",
            truncated,
            Udp,
            "protocol",
            Reason::Exact(format!(
                "the answer from {truncated} was truncated (TC bit); use transport = \"tcp\""
            )),
        ),
        (
            // Ignored, as a forged or late datagram would be; the deadline
            // then says what came instead of an answer.
            "a UDP answer with the wrong ID",
            udp_wrong_id,
            Udp,
            "protocol",
            Reason::Exact(format!(
                "no matching answer from {udp_wrong_id} within 400ms; only responses with \
                 the wrong ID or question came back"
            )),
        ),
        (
            // The connection is ours alone: no waiting for a better one.
            "a TCP answer with the wrong ID",
            tcp_wrong_id,
            Tcp,
            "protocol",
            Reason::Exact(format!(
                "the answer from {tcp_wrong_id} over TCP has the wrong ID or question"
            )),
        ),
    ];
    for (case, addr, transport, label, reason) in cases {
        let mut t = target(
            addr,
            transport,
            "registry.example",
            RecordType::A,
            DnsExpect::default(),
        );
        // Only the cases that wait for the deadline get the short one; the
        // others must fail on what came back, long before theirs.
        if reason.waits() {
            t.timeout = SHORT;
        }
        let (obs, outcome) = run(t).await;
        assert!(
            matches!(obs.seen, Seen::None),
            "{case}: a failed probe records no answer"
        );
        check_outcome(case, &outcome, label, &reason);
    }
    drop(silent_udp);
}
