//! The verdict for the kinds beyond HTTP: what each kind's own
//! observation must show. `judge::judge_target` picks one by the kind.

use chrono::Utc;

use super::{fail, format_ms};
use crate::model::{
    CertExpect, DnsExpect, GrpcTarget, IcmpTarget, Observation, Seen, ServingStatus, TcpTarget,
};
use crate::outcome::{FailureKind, Outcome};
use crate::secret::{Redactor, clean, quote};

/// A TCP dialogue: every `expect` step found its line, then the
/// certificate (when TLS was on).
pub(super) fn tcp(t: &TcpTarget, obs: &Observation, redactor: &Redactor) -> Outcome {
    if let Seen::Tcp(seen) = &obs.seen
        && let Some(u) = &seen.unmatched
    {
        let how = if u.closed {
            "the connection closed"
        } else {
            "the read limit was reached"
        };
        let read = if u.read.is_empty() {
            "nothing".to_owned()
        } else {
            quote(&u.read, redactor)
        };
        return fail(
            FailureKind::Query,
            format!(
                "query step {}: no line matched /{}/ before {how}; last read {read}",
                u.step, u.pattern
            ),
        );
    }
    cert(&t.expect_cert, obs, redactor)
}

/// At most three of a certificate's names, cleaned, then how many more.
fn some_names(names: &[String], redactor: &Redactor) -> String {
    let shown: Vec<String> = names.iter().take(3).map(|n| clean(n, redactor)).collect();
    match names.len().saturating_sub(3) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

/// A certificate expectation, for every kind that speaks TLS.
pub(super) fn cert(expect: &CertExpect, obs: &Observation, redactor: &Redactor) -> Outcome {
    if expect.is_empty() {
        return Outcome::Success;
    }
    let Some(tls) = &obs.tls else {
        return fail(FailureKind::Certificate, "no TLS handshake was recorded");
    };
    if let Some(min) = expect.min_version {
        match tls.version {
            Some(v) if v >= min => {}
            Some(v) => {
                return fail(
                    FailureKind::Certificate,
                    format!(
                        "negotiated {}, expected at least {}",
                        v.as_str(),
                        min.as_str()
                    ),
                );
            }
            None => return fail(FailureKind::Certificate, "the TLS version is unknown"),
        }
    }
    if let Some(valid_for) = expect.valid_for {
        let earliest = [tls.leaf_not_after, tls.chain_not_after, obs.tls_not_after]
            .into_iter()
            .flatten()
            .min();
        if let Some(at) = earliest {
            let left = at.signed_duration_since(Utc::now());
            let want = chrono::Duration::from_std(valid_for).unwrap_or(chrono::Duration::MAX);
            if left < want {
                return fail(
                    FailureKind::Certificate,
                    format!(
                        "a certificate expires {} ({} days left), expected at least {}",
                        at.format("%Y-%m-%d %H:%M UTC"),
                        left.num_days(),
                        humantime::format_duration(valid_for)
                    ),
                );
            }
        }
    }
    if let Some(re) = &expect.issuer
        && !re.is_match(&tls.issuer)
    {
        return fail(
            FailureKind::Certificate,
            format!(
                "issuer {} does not match /{}/",
                quote(&tls.issuer, redactor),
                re.as_str()
            ),
        );
    }
    for name in &expect.san {
        if !tls.san.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            return fail(
                FailureKind::Certificate,
                format!(
                    "the certificate is not for {name:?} (it names {})",
                    if tls.san.is_empty() {
                        "no subjectAltName".to_owned()
                    } else {
                        some_names(&tls.san, redactor)
                    }
                ),
            );
        }
    }
    Outcome::Success
}

/// A DNS answer: the response code, then the records.
pub(super) fn dns(expect: &DnsExpect, obs: &Observation, redactor: &Redactor) -> Outcome {
    let Seen::Dns(seen) = &obs.seen else {
        return fail(FailureKind::Internal, "no DNS answer and no error recorded");
    };
    let want = expect.rcode.as_deref().unwrap_or("NOERROR");
    if !seen.rcode.eq_ignore_ascii_case(want) {
        return fail(
            FailureKind::Answer,
            format!("response code {}, expected {want}", seen.rcode),
        );
    }
    let show = |record: &str| quote(record, redactor);
    if let Some(min) = expect.min_answers
        && seen.answers.len() < min
    {
        return fail(
            FailureKind::Answer,
            format!(
                "{} answer record{}, expected at least {min}",
                seen.answers.len(),
                if seen.answers.len() == 1 { "" } else { "s" }
            ),
        );
    }
    for re in &expect.answers_match {
        if !seen.answers.iter().any(|a| re.is_match(a)) {
            let first = seen.answers.first().map_or_else(
                || "no answers".to_owned(),
                |a| format!("first answer {}", show(a)),
            );
            return fail(
                FailureKind::Answer,
                format!("no answer matches /{}/ ({first})", re.as_str()),
            );
        }
    }
    for re in &expect.answers_not_match {
        if let Some(a) = seen.answers.iter().find(|a| re.is_match(a)) {
            return fail(
                FailureKind::Answer,
                format!("answer {} matches /{}/", show(a), re.as_str()),
            );
        }
    }
    Outcome::Success
}

/// A gRPC health check: the call succeeded and the service is SERVING.
pub(super) fn grpc(g: &GrpcTarget, obs: &Observation, redactor: &Redactor) -> Outcome {
    let Seen::Grpc(seen) = &obs.seen else {
        return fail(
            FailureKind::Internal,
            "no gRPC answer and no error recorded",
        );
    };
    let service = if g.service.is_empty() {
        "the server".to_owned()
    } else {
        format!("service {:?}", g.service)
    };
    match seen.serving {
        Some(ServingStatus::Serving) => cert(&g.expect_cert, obs, redactor),
        Some(other) => fail(
            FailureKind::NotServing,
            format!("{service} is {}, expected SERVING", other.as_str()),
        ),
        None => {
            let message = if seen.message.is_empty() {
                String::new()
            } else {
                format!(": {}", quote(&seen.message, redactor))
            };
            fail(
                FailureKind::NotServing,
                format!(
                    "health check of {service} failed with gRPC status {} ({}){message}",
                    seen.status_code,
                    grpc_code_name(seen.status_code)
                ),
            )
        }
    }
}

/// The names of gRPC's status codes.
pub fn grpc_code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "unknown code",
    }
}

/// ICMP: the share of lost packets.
pub(super) fn icmp(i: &IcmpTarget, obs: &Observation) -> Outcome {
    let Seen::Icmp(seen) = &obs.seen else {
        return fail(
            FailureKind::Internal,
            "no ICMP replies and no error recorded",
        );
    };
    let loss = seen.loss();
    let too_many = match i.max_loss {
        Some(max) => loss > max + f64::EPSILON,
        None => seen.received == 0,
    };
    if too_many {
        let rtt = seen
            .rtt()
            .map(|d| format!(", mean round trip {}", format_ms(d)))
            .unwrap_or_default();
        let allowed = match i.max_loss {
            Some(max) => format!("at most {}% allowed", percent(max)),
            None => "expected at least one reply".to_owned(),
        };
        return fail(
            FailureKind::Loss,
            format!(
                "{} of {} echo replies arrived ({}% loss, {allowed}){rtt}",
                seen.received,
                seen.sent,
                percent(loss)
            ),
        );
    }
    Outcome::Success
}

fn percent(share: f64) -> String {
    let p = share * 100.0;
    if (p - p.round()).abs() < 0.05 {
        format!("{p:.0}")
    } else {
        format!("{p:.1}")
    }
}
