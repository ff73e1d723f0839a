//! The ICMP probe on loopback (IPv4, IPv6, a name, a name that does not
//! resolve), the loss verdict on hand-made observations, and the probe run
//! without CAP_NET_RAW in a subprocess dropped to `nobody`.

use std::os::unix::fs::MetadataExt as _;
use std::process::Command;
use std::time::Duration;

use lookout::judge::judge_target;
use lookout::model::{Expectations, IcmpSeen, IcmpTarget, IpVersion, Observation, Seen, Target};
use lookout::outcome::{FailureKind, Outcome};
use lookout::probe::icmp;
use lookout::secret::Redactor;

use crate::support::{skip, tool};

fn target(host: &str) -> IcmpTarget {
    IcmpTarget {
        host: host.to_owned(),
        ip_version: None,
        count: 3,
        interval: Duration::from_millis(20),
        payload_bytes: 56,
        timeout: Duration::from_secs(5),
        max_loss: None,
    }
}

/// Probes `t` and judges what it saw.
async fn probe(t: IcmpTarget) -> (Observation, Outcome) {
    let obs = icmp::probe(&t).await;
    let outcome = judge(t, &obs);
    (obs, outcome)
}

fn judge(t: IcmpTarget, obs: &Observation) -> Outcome {
    judge_target(
        &Target::Icmp(t),
        &Expectations::default(),
        obs,
        &Redactor::default(),
    )
}

fn icmp_seen(obs: &Observation) -> IcmpSeen {
    match &obs.seen {
        Seen::Icmp(seen) => seen.clone(),
        other => panic!("not an ICMP observation: {other:?}"),
    }
}

/// The address family's loopback can be bound (`ip -6 addr show lo` has
/// `::1`).
fn has_ipv6_loopback() -> bool {
    std::net::UdpSocket::bind("[::1]:0").is_ok()
}

fn is_root() -> bool {
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

enum Want {
    /// Every request answered; whether the reply's TTL is known.
    Pass {
        hop_limit: bool,
    },
    Fail(FailureKind, &'static str),
}

#[tokio::test]
async fn loopback_echoes_pass_and_an_unknown_name_fails_dns() {
    let v4 = |host: &str| IcmpTarget {
        ip_version: Some(IpVersion::V4),
        ..target(host)
    };
    // A raw socket (root here) shows the IPv4 header, so the TTL; no
    // socket shows the IPv6 header.
    let cases: Vec<(&str, IcmpTarget, Want)> = vec![
        (
            "IPv4 literal",
            target("127.0.0.1"),
            Want::Pass { hop_limit: true },
        ),
        (
            "IPv6 literal",
            target("::1"),
            Want::Pass { hop_limit: false },
        ),
        (
            "bracketed IPv6 literal",
            target("[::1]"),
            Want::Pass { hop_limit: false },
        ),
        (
            "a name, IPv4 only",
            v4("localhost"),
            Want::Pass { hop_limit: true },
        ),
        (
            "a name that does not resolve",
            target("no-such-host.invalid"),
            Want::Fail(FailureKind::Dns, "could not resolve no-such-host.invalid: "),
        ),
    ];
    for (name, t, want) in cases {
        if t.host.contains("::1") && !has_ipv6_loopback() {
            skip(&format!("ICMP {name}"), "this machine has no IPv6 loopback");
            continue;
        }
        let (obs, outcome) = probe(t).await;
        if let Some((FailureKind::Permission, why)) = &obs.error
            && !is_root()
        {
            skip(&format!("ICMP {name}"), why);
            continue;
        }
        let seen = icmp_seen(&obs);
        match want {
            Want::Pass { hop_limit } => {
                assert_eq!(obs.error, None, "{name}");
                assert_eq!(outcome, Outcome::Success, "{name}");
                assert_eq!((seen.sent, seen.received), (3, 3), "{name}");
                assert_eq!(seen.rtts.len(), 3, "{name}");
                // Root opens a raw socket; only that shows the IPv4 TTL.
                assert_eq!(seen.hop_limit.is_some(), hop_limit && is_root(), "{name}");
            }
            Want::Fail(kind, starts) => {
                let Outcome::Failure { kind: got, reason } = &outcome else {
                    panic!("{name}: passed: {obs:?}");
                };
                assert_eq!(*got, kind, "{name}: {reason}");
                assert!(reason.starts_with(starts), "{name}: {reason}");
                assert_eq!((seen.sent, seen.received), (0, 0), "{name}");
            }
        }
    }
}

/// Requests whose turn comes after the timeout are not sent (nor lost):
/// with an hour between them, only the first goes out.
#[tokio::test]
async fn requests_due_after_the_timeout_are_not_sent() {
    let t = IcmpTarget {
        count: 3,
        interval: Duration::from_secs(3600),
        ..target("127.0.0.1")
    };
    let (obs, outcome) = probe(t).await;
    if matches!(obs.error, Some((FailureKind::Permission, _))) && !is_root() {
        skip("ICMP unsent requests", "no ICMP socket for this user");
        return;
    }
    assert_eq!(obs.error, None);
    let seen = icmp_seen(&obs);
    assert_eq!((seen.sent, seen.received), (1, 1));
    assert_eq!(outcome, Outcome::Success);
}

/// `max_loss` against sent and received, on observations made by hand.
#[test]
fn loss_is_judged_against_max_loss() {
    let obs = |sent: u32, received: u32| Observation {
        seen: Seen::Icmp(IcmpSeen {
            sent,
            received,
            rtts: vec![Duration::from_millis(2); received as usize],
            ..IcmpSeen::default()
        }),
        ..Observation::default()
    };
    let with = |max_loss: Option<f64>| IcmpTarget {
        max_loss,
        ..target("127.0.0.1")
    };
    // (sent, received, max_loss, the failure's reason; None: passes)
    let cases: Vec<(u32, u32, Option<f64>, Option<&str>)> = vec![
        (3, 3, None, None),
        (3, 1, None, None),
        (
            3,
            0,
            None,
            Some("0 of 3 echo replies arrived (100% loss, expected at least one reply)"),
        ),
        (
            0,
            0,
            None,
            Some("0 of 0 echo replies arrived (100% loss, expected at least one reply)"),
        ),
        (3, 3, Some(0.0), None),
        (3, 2, Some(0.34), None),
        (
            3,
            2,
            Some(0.0),
            Some(
                "2 of 3 echo replies arrived (33.3% loss, at most 0% allowed), mean round trip 2.0ms",
            ),
        ),
        (
            3,
            0,
            Some(0.5),
            Some("0 of 3 echo replies arrived (100% loss, at most 50% allowed)"),
        ),
        (4, 2, Some(0.5), None),
        (3, 0, Some(1.0), None),
    ];
    for (sent, received, max_loss, want) in cases {
        let got = judge(with(max_loss), &obs(sent, received));
        let want = match want {
            None => Outcome::Success,
            Some(reason) => Outcome::Failure {
                kind: FailureKind::Loss,
                reason: reason.to_owned(),
            },
        };
        assert_eq!(got, want, "{received}/{sent}, max_loss {max_loss:?}");
    }
}

/// An error the probe recorded is the verdict, whatever the counts.
#[test]
fn a_probe_error_is_the_verdict() {
    let reason = "ICMP needs the CAP_NET_RAW capability (or a ping_group_range that includes lookout's group): Operation not permitted (os error 1)";
    let obs = Observation {
        seen: Seen::Icmp(IcmpSeen::default()),
        ..Observation::failed(FailureKind::Permission, reason)
    };
    assert_eq!(
        judge(target("127.0.0.1"), &obs),
        Outcome::Failure {
            kind: FailureKind::Permission,
            reason: reason.to_owned()
        }
    );
}

const CHILD: &str = "LOOKOUT_ICMP_UNPRIVILEGED_CHILD";
const CHILD_TEST: &str = "probe_icmp::unprivileged_child_probes_loopback";
const NOBODY: u32 = 65534;

/// Run by [`without_cap_net_raw_the_probe_fails_permission_unless_ping_group_range_allows`]
/// in a subprocess dropped to `nobody`: one probe, its result on stdout.
#[tokio::test]
#[ignore = "a helper: run in a subprocess without privileges"]
async fn unprivileged_child_probes_loopback() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let obs = icmp::probe(&target("127.0.0.1")).await;
    let seen = icmp_seen(&obs);
    match &obs.error {
        None => println!("ICMP-CHILD pass {}/{}", seen.received, seen.sent),
        Some((kind, why)) => println!("ICMP-CHILD {} {why}", kind.as_str()),
    }
}

/// Whether `gid` may open a datagram ICMP socket, by the sysctl's
/// `low high` range (the default, `1 0`, admits nobody).
fn ping_group_range_admits(range: &str, gid: u32) -> bool {
    let mut bounds = range.split_whitespace().map(str::parse::<u32>);
    match (bounds.next(), bounds.next()) {
        (Some(Ok(low)), Some(Ok(high))) => low <= gid && gid <= high,
        _ => panic!("ping_group_range: {range:?}"),
    }
}

#[test]
fn ping_group_range_is_read_as_an_inclusive_range() {
    for (range, gid, admits) in [
        ("1\t0\n", NOBODY, false),
        ("1\t0\n", 0, false),
        ("0\t2147483647\n", NOBODY, true),
        ("65534 65534", NOBODY, true),
        ("100 200", NOBODY, false),
    ] {
        assert_eq!(ping_group_range_admits(range, gid), admits, "{range:?}");
    }
}

/// The probe as `nobody` with no capabilities: `permission`, naming
/// CAP_NET_RAW, when the sysctl `net.ipv4.ping_group_range` leaves out
/// its group; a pass over the unprivileged datagram socket when it admits
/// it. (The other case is the unit test of the error mapping in
/// `src/probe/icmp.rs`.)
#[test]
fn without_cap_net_raw_the_probe_fails_permission_unless_ping_group_range_allows() {
    let what = "ICMP without CAP_NET_RAW";
    if !is_root() {
        skip(what, "dropping to another user needs root");
        return;
    }
    let Some(setpriv) = tool("setpriv", what) else {
        return;
    };
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range")
        .expect("read /proc/sys/net/ipv4/ping_group_range");
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new(setpriv)
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ])
        .arg(exe)
        .args([
            "--exact",
            CHILD_TEST,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .expect("run setpriv");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let text = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    let line = stdout
        .lines()
        // libtest prints the test's name on the same line first.
        .find_map(|l| l.split_once("ICMP-CHILD ").map(|(_, result)| result))
        .unwrap_or_else(|| panic!("no result from the child: {text}"));
    if ping_group_range_admits(&range, NOBODY) {
        assert_eq!(line, "pass 3/3", "ping_group_range {range:?}");
    } else {
        assert!(
            line.starts_with(
                "permission ICMP needs the CAP_NET_RAW capability (or a ping_group_range that includes lookout's group): "
            ),
            "ping_group_range {range:?}: {line}"
        );
        // The OS's own sentence follows (EPERM for the raw socket).
        assert!(
            line.ends_with(" (os error 1)") || line.ends_with(" (os error 13)"),
            "{line}"
        );
    }
}
