//! The ICMP probe: `count` echo requests, `interval` apart, and the replies
//! that come back before the timeout.
//!
//! Packets are built, sent and matched by surge-ping (never by hand): one
//! `Client` (one socket and its receiving task) per probe, one `Pinger`
//! per request. A reply is matched to its request by (host, identifier,
//! sequence) in surge-ping's table of waiters, so a reply to a sequence we
//! did not send, one that arrives after its request gave up, and a duplicate
//! (the waiter is gone once the first copy arrived) find no waiter and are
//! not counted. An ICMP error about one of our requests (unreachable, time
//! exceeded) is delivered to its waiter too; it counts as a lost packet.
//!
//! **The socket.** surge-ping is asked for a raw socket first
//! (`sock_type_hint(Type::RAW)`) and falls back by itself to the other
//! type, an unprivileged datagram ICMP socket (`SOCK_DGRAM` with
//! `IPPROTO_ICMP`/`IPPROTO_ICMPV6`). Raw first, because a raw socket is
//! what works wherever lookout has `CAP_NET_RAW` (root, or the capability
//! granted to the binary or the container), and it shows the IPv4 header,
//! so the reply's TTL is known. "Unprivileged" means that Linux lets any
//! process whose group is within `net.ipv4.ping_group_range` open a
//! datagram ICMP socket without any capability; the kernel then picks the
//! identifier and fills the checksum, and the IP header (so the TTL) is
//! not seen. The default range (`1 0`) is empty, so on most hosts only the
//! raw socket works. When neither can be opened for lack of permission
//! the probe fails with `permission` and names the capability; any other
//! socket error is `internal`. IPv6 raw sockets never show the IPv6
//! header, so `hop_limit` stays empty for IPv6.
//!
//! **Timing.** The whole probe (resolving, the socket, every request) is
//! bounded by the target's timeout. Requests are sent on their schedule
//! whatever the replies do; a request still unanswered when the timeout
//! strikes is lost, and a request whose turn comes after it is not sent.
//! A request the kernel refuses to send counts as sent and lost; if none
//! could be sent, the probe fails with the OS's reason instead.

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use socket2::Type;
use surge_ping::{Client, Config, ICMP, IcmpPacket, PingIdentifier, PingSequence, SurgeError};
use tokio::time::Instant;

use super::Observation;
use crate::model::{IcmpSeen, IcmpTarget, IpVersion, Seen};
use crate::outcome::FailureKind;

/// Sequence numbers are 16 bits: a probe sends at most this many requests.
const MAX_COUNT: u32 = 1 << 16;

/// A far deadline for a timeout too large to add to an instant.
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

type Failure = (FailureKind, String);

pub async fn probe(t: &IcmpTarget) -> Observation {
    let started = Instant::now();
    let deadline = started
        .checked_add(t.timeout)
        .unwrap_or_else(|| started + FAR);
    let mut seen = IcmpSeen::default();
    let result = run(t, deadline, &mut seen).await;
    let mut obs = Observation {
        duration: started.elapsed(),
        ..Observation::default()
    };
    obs.phases.resolve = seen.resolve;
    obs.seen = Seen::Icmp(seen);
    obs.error = result.err();
    obs
}

async fn run(t: &IcmpTarget, deadline: Instant, seen: &mut IcmpSeen) -> Result<(), Failure> {
    let at = Instant::now();
    let ip = tokio::time::timeout_at(deadline, resolve(&t.host, t.ip_version))
        .await
        .map_err(|_| {
            (
                FailureKind::Timeout,
                format!(
                    "timed out after {} resolving {}",
                    humantime::format_duration(t.timeout),
                    t.host
                ),
            )
        })??;
    seen.resolve = at.elapsed();

    let at = Instant::now();
    let client = open(ip).map_err(|e| socket_error(&e))?;
    seen.setup = at.elapsed();

    let echoes = echo(&client, ip, t, deadline).await;
    let mut refused = None;
    let mut went_out = 0u32;
    for e in echoes {
        match e {
            Echo::Unsent => {}
            Echo::Lost => {
                seen.sent += 1;
                went_out += 1;
            }
            Echo::Refused(why) => {
                seen.sent += 1;
                refused.get_or_insert(why);
            }
            Echo::Reply { rtt, hop_limit } => {
                seen.sent += 1;
                went_out += 1;
                seen.received += 1;
                seen.rtts.push(rtt);
                if hop_limit.is_some() {
                    seen.hop_limit = hop_limit;
                }
            }
        }
    }
    if seen.sent == 0 && t.count > 0 {
        return Err((
            FailureKind::Timeout,
            format!(
                "timed out after {} before the first echo request to {ip} was sent",
                humantime::format_duration(t.timeout)
            ),
        ));
    }
    if let Some(why) = refused
        && went_out == 0
    {
        // Every request was refused: the OS's reason says more than
        // "100% loss".
        return Err((
            FailureKind::Internal,
            format!("could not send an echo request to {ip}: {why}"),
        ));
    }
    Ok(())
}

/// The address to ping: the host as an IP literal, or its name resolved
/// (the first address of the family asked for).
async fn resolve(host: &str, version: Option<IpVersion>) -> Result<IpAddr, Failure> {
    let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    if let Ok(ip) = literal.unwrap_or(host).parse::<IpAddr>() {
        return match version {
            Some(v) if !family_is(ip, v) => Err((
                FailureKind::Internal,
                format!("{ip} is not an {} address", family_name(v)),
            )),
            _ => Ok(ip),
        };
    }
    let addrs = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| (FailureKind::Dns, format!("could not resolve {host}: {e}")))?;
    let mut any = false;
    for addr in addrs {
        any = true;
        if version.is_none_or(|v| family_is(addr.ip(), v)) {
            return Ok(addr.ip());
        }
    }
    Err((
        FailureKind::Dns,
        match (version, any) {
            (Some(v), true) => format!("{host} has no {} address", family_name(v)),
            _ => format!("could not resolve {host}: no addresses"),
        },
    ))
}

fn family_is(ip: IpAddr, v: IpVersion) -> bool {
    matches!(
        (ip, v),
        (IpAddr::V4(_), IpVersion::V4) | (IpAddr::V6(_), IpVersion::V6)
    )
}

fn family_name(v: IpVersion) -> &'static str {
    match v {
        IpVersion::V4 => "IPv4",
        IpVersion::V6 => "IPv6",
    }
}

/// A raw socket, or (surge-ping's own fallback) a datagram ICMP socket.
fn open(ip: IpAddr) -> io::Result<Client> {
    let kind = match ip {
        IpAddr::V4(_) => ICMP::V4,
        IpAddr::V6(_) => ICMP::V6,
    };
    let config = Config::builder()
        .kind(kind)
        .sock_type_hint(Type::RAW)
        .build();
    Client::new(&config)
}

/// What a socket that could not be opened means for the check.
fn socket_error(e: &io::Error) -> Failure {
    if e.kind() == io::ErrorKind::PermissionDenied {
        (
            FailureKind::Permission,
            format!(
                "ICMP needs the CAP_NET_RAW capability (or a ping_group_range that includes lookout's group): {e}"
            ),
        )
    } else {
        (
            FailureKind::Internal,
            format!("could not open an ICMP socket: {e}"),
        )
    }
}

/// What became of one echo request.
#[derive(Debug, PartialEq)]
enum Echo {
    /// Its turn came after the timeout.
    Unsent,
    /// Sent; no echo reply before the timeout (or an ICMP error instead).
    Lost,
    /// The kernel refused to send it.
    Refused(String),
    Reply {
        rtt: Duration,
        hop_limit: Option<u8>,
    },
}

/// Sends every request on its schedule, each waiting for its reply until
/// the deadline; the results in sequence order.
async fn echo(client: &Client, ip: IpAddr, t: &IcmpTarget, deadline: Instant) -> Vec<Echo> {
    let ident = identifier();
    let payload = vec![0u8; t.payload_bytes];
    let first = Instant::now();
    let count = t.count.min(MAX_COUNT);
    let one = |n: u32| {
        let payload = &payload;
        async move {
            let Some(send_at) = t
                .interval
                .checked_mul(n)
                .and_then(|after| first.checked_add(after))
                .filter(|at| *at < deadline)
            else {
                return Echo::Unsent;
            };
            tokio::time::sleep_until(send_at).await;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Echo::Unsent;
            }
            let Ok(seq) = u16::try_from(n) else {
                return Echo::Unsent;
            };
            let mut pinger = client.pinger(ip, ident).await;
            pinger.timeout(left);
            // The pinger's own timeout covers the wait for the reply; this
            // one covers a send that blocks on a full socket buffer.
            match tokio::time::timeout_at(deadline, pinger.ping(PingSequence(seq), payload)).await {
                Err(_) => Echo::Lost,
                Ok(result) => classify(result),
            }
        }
    };
    join_all((0..count).map(one)).await
}

fn classify(result: Result<(IcmpPacket, Duration), SurgeError>) -> Echo {
    match result {
        Ok((packet, rtt)) if is_echo_reply(&packet) => Echo::Reply {
            rtt,
            hop_limit: hop_limit(&packet),
        },
        // An ICMP error about this request: it did not reach, or not back.
        Ok(_) => Echo::Lost,
        Err(SurgeError::Timeout { .. }) => Echo::Lost,
        Err(SurgeError::IOError(e)) => Echo::Refused(e.to_string()),
        Err(other) => Echo::Refused(other.to_string()),
    }
}

fn is_echo_reply(packet: &IcmpPacket) -> bool {
    match packet {
        // ICMPv4 type 0 and ICMPv6 type 129: echo reply.
        IcmpPacket::V4(p) => p.get_icmp_type().0 == 0,
        IcmpPacket::V6(p) => p.get_icmpv6_type().0 == 129,
    }
}

/// The reply's TTL, when the socket shows the IP header (IPv4, raw);
/// surge-ping reports 0 for IPv6, where no socket shows it.
fn hop_limit(packet: &IcmpPacket) -> Option<u8> {
    match packet {
        IcmpPacket::V4(p) => p.get_ttl(),
        IcmpPacket::V6(p) => Some(p.get_max_hop_limit()).filter(|h| *h != 0),
    }
}

/// An identifier for one probe's requests, different for probes running
/// at once in this process and unlikely to equal another process's (a raw
/// socket sees every echo reply on the host; the identifier tells ours
/// apart). A datagram socket ignores it: the kernel picks one.
fn identifier() -> PingIdentifier {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // The low 16 bits of the process id, as ping(8) does.
    let pid = std::process::id() as u16;
    PingIdentifier(pid ^ NEXT.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9e37))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_errors_map_permission_to_the_capability_and_the_rest_to_internal() {
        let cases = [
            (
                io::Error::from_raw_os_error(1),
                FailureKind::Permission,
                "ICMP needs the CAP_NET_RAW capability (or a ping_group_range that includes lookout's group): Operation not permitted (os error 1)",
            ),
            (
                io::Error::from_raw_os_error(13),
                FailureKind::Permission,
                "ICMP needs the CAP_NET_RAW capability (or a ping_group_range that includes lookout's group): Permission denied (os error 13)",
            ),
            (
                io::Error::new(io::ErrorKind::PermissionDenied, "synthetic"),
                FailureKind::Permission,
                "ICMP needs the CAP_NET_RAW capability (or a ping_group_range that includes lookout's group): synthetic",
            ),
            (
                io::Error::from_raw_os_error(97),
                FailureKind::Internal,
                "could not open an ICMP socket: Address family not supported by protocol (os error 97)",
            ),
        ];
        for (err, kind, text) in cases {
            assert_eq!(socket_error(&err), (kind, text.to_owned()), "{err:?}");
        }
    }

    #[test]
    fn a_timed_out_request_is_lost_and_a_refused_one_says_why() {
        assert_eq!(
            classify(Err(SurgeError::Timeout {
                seq: PingSequence(2)
            })),
            Echo::Lost
        );
        assert_eq!(
            classify(Err(SurgeError::IOError(io::Error::from_raw_os_error(101)))),
            Echo::Refused("Network is unreachable (os error 101)".to_owned())
        );
    }

    #[tokio::test]
    async fn a_literal_of_the_other_family_is_refused_without_a_lookup() {
        assert_eq!(
            resolve("127.0.0.1", Some(IpVersion::V6)).await,
            Err((
                FailureKind::Internal,
                "127.0.0.1 is not an IPv6 address".to_owned()
            ))
        );
        assert_eq!(
            resolve("[::1]", Some(IpVersion::V6)).await,
            Ok("::1".parse().unwrap())
        );
        assert_eq!(resolve("::1", None).await, Ok("::1".parse().unwrap()));
    }
}
