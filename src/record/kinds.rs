//! The metric families each probe kind adds, named as blackbox_exporter
//! names them for the same meaning: the one place the metrics writer
//! matches on the kind. The per-check series (`series.rs`) write them with
//! the check's labels; `/probe` writes them bare, as blackbox does.

use std::time::Duration;

use super::exposition::{Exposition, Family, Kind, LabelSet};
use crate::model::{Check, Seen, ServingStatus, Target};
use crate::outcome::{CheckResult, PHASE_NAMES};

/// One sample of a kind's family: extra labels (besides the check's) and
/// the value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub family: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

/// Every family a kind may add: name, help, type. Written in this order.
pub const FAMILIES: &[(&str, &str, Kind)] = &[
    (
        "probe_tls_version_info",
        "The TLS version the last handshake negotiated (always 1).",
        Kind::Gauge,
    ),
    (
        "probe_ssl_last_chain_expiry_timestamp_seconds",
        "Unix time at which the earliest certificate of the last verified chain expires.",
        Kind::Gauge,
    ),
    (
        "probe_ssl_last_chain_info",
        "The leaf certificate of the last handshake (always 1).",
        Kind::Gauge,
    ),
    (
        "probe_failed_due_to_regex",
        "1 if the last TCP dialogue failed because an expect line never matched.",
        Kind::Gauge,
    ),
    (
        "probe_dns_duration_seconds",
        "Duration of each phase of the last DNS query.",
        Kind::Gauge,
    ),
    (
        "probe_dns_query_succeeded",
        "1 if the last DNS query got an answer (whatever its response code).",
        Kind::Gauge,
    ),
    (
        "probe_dns_answer_rrs",
        "Records in the answer section of the last DNS response.",
        Kind::Gauge,
    ),
    (
        "probe_dns_authority_rrs",
        "Records in the authority section of the last DNS response.",
        Kind::Gauge,
    ),
    (
        "probe_dns_additional_rrs",
        "Records in the additional section of the last DNS response.",
        Kind::Gauge,
    ),
    (
        "probe_grpc_healthcheck_response",
        "The serving status of the last gRPC health check (1 for the one answered).",
        Kind::Gauge,
    ),
    (
        "probe_grpc_duration_seconds",
        "Duration of each phase of the last gRPC health check (check: connecting and calling).",
        Kind::Gauge,
    ),
    (
        "probe_grpc_ssl",
        "1 if the last gRPC health check went over TLS.",
        Kind::Gauge,
    ),
    (
        "probe_grpc_status_code",
        "The gRPC status code of the last health check call.",
        Kind::Gauge,
    ),
    (
        "probe_icmp_duration_seconds",
        "Duration of each phase of the last ICMP probe (rtt: the mean round trip).",
        Kind::Gauge,
    ),
    (
        "probe_icmp_reply_hop_limit",
        "The hop limit (TTL) of the last echo reply.",
        Kind::Gauge,
    ),
    (
        "lookout_icmp_packets_sent",
        "Echo requests sent in the last ICMP probe.",
        Kind::Gauge,
    ),
    (
        "lookout_icmp_packets_received",
        "Echo replies received in the last ICMP probe.",
        Kind::Gauge,
    ),
];

/// The most of a certificate's text one label keeps: a certificate with
/// thousands of names must not make a label of tens of kilobytes.
const MAX_LABEL_BYTES: usize = 1024;

fn capped(text: &str) -> String {
    if text.len() <= MAX_LABEL_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_LABEL_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn one(out: &mut Vec<Sample>, family: &'static str, value: f64) {
    out.push(Sample {
        family,
        labels: Vec::new(),
        value,
    });
}

fn phase(out: &mut Vec<Sample>, family: &'static str, name: &str, d: Duration) {
    out.push(Sample {
        family,
        labels: vec![("phase", name.to_owned())],
        value: d.as_secs_f64(),
    });
}

/// The samples one result adds, in no particular order.
pub fn samples(result: &CheckResult) -> Vec<Sample> {
    let (seen, tls) = (&result.seen, result.tls.as_ref());
    let mut out = Vec::new();
    if let Some(tls) = tls {
        if let Some(v) = tls.version {
            out.push(Sample {
                family: "probe_tls_version_info",
                labels: vec![("version", v.as_str().to_owned())],
                value: 1.0,
            });
        }
        if let Some(t) = tls.chain_not_after {
            one(
                &mut out,
                "probe_ssl_last_chain_expiry_timestamp_seconds",
                t.timestamp() as f64,
            );
        }
        out.push(Sample {
            family: "probe_ssl_last_chain_info",
            labels: vec![
                ("fingerprint_sha256", tls.fingerprint_sha256.clone()),
                ("subject", capped(&tls.subject)),
                ("issuer", capped(&tls.issuer)),
                ("subjectalternative", capped(&tls.san.join(","))),
            ],
            value: 1.0,
        });
    }
    match seen {
        Seen::None => {}
        Seen::Tcp(t) => one(
            &mut out,
            "probe_failed_due_to_regex",
            f64::from(u8::from(t.unmatched.is_some())),
        ),
        Seen::Dns(d) => {
            let f = "probe_dns_duration_seconds";
            phase(&mut out, f, "resolve", Duration::ZERO);
            phase(&mut out, f, "connect", d.connect);
            phase(&mut out, f, "request", d.request);
            one(&mut out, "probe_dns_query_succeeded", 1.0);
            one(&mut out, "probe_dns_answer_rrs", d.answers.len() as f64);
            one(&mut out, "probe_dns_authority_rrs", d.authority as f64);
            one(&mut out, "probe_dns_additional_rrs", d.additional as f64);
        }
        Seen::Grpc(g) => {
            let f = "probe_grpc_duration_seconds";
            let resolve = result.phases.resolve;
            phase(&mut out, f, "resolve", resolve);
            phase(
                &mut out,
                f,
                "check",
                result.duration.saturating_sub(resolve),
            );
            one(
                &mut out,
                "probe_grpc_ssl",
                f64::from(u8::from(tls.is_some())),
            );
            for status in ServingStatus::ALL {
                out.push(Sample {
                    family: "probe_grpc_healthcheck_response",
                    labels: vec![("serving_status", status.as_str().to_owned())],
                    value: f64::from(u8::from(g.serving == Some(status))),
                });
            }
            one(&mut out, "probe_grpc_status_code", f64::from(g.status_code));
        }
        Seen::Icmp(i) => {
            let f = "probe_icmp_duration_seconds";
            phase(&mut out, f, "resolve", i.resolve);
            phase(&mut out, f, "setup", i.setup);
            phase(&mut out, f, "rtt", i.rtt().unwrap_or_default());
            if let Some(h) = i.hop_limit {
                one(&mut out, "probe_icmp_reply_hop_limit", f64::from(h));
            }
            one(&mut out, "lookout_icmp_packets_sent", f64::from(i.sent));
            one(
                &mut out,
                "lookout_icmp_packets_received",
                f64::from(i.received),
            );
        }
    }
    out
}

/// Writes the samples of `family` found among `each` (label set, samples).
pub(super) fn write_family<'a>(
    f: &mut Family<'_>,
    family: &str,
    each: impl Iterator<Item = (&'a LabelSet, &'a [Sample])>,
) {
    for (labels, samples) in each {
        for s in samples.iter().filter(|s| s.family == family) {
            let extra: Vec<(&str, &str)> = s.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            f.sample_labels(labels, &extra, s.value);
        }
    }
}

/// One `/probe` result in blackbox_exporter's format: the same family
/// names, no `check` or `group` label (the scrape's job and instance name
/// the target).
pub fn probe_exposition(check: &Check, result: &CheckResult) -> String {
    let none = LabelSet::new(&[]);
    let mut e = Exposition::with_capacity(2048);
    let gauge = |e: &mut Exposition, name: &str, help: &str, v: f64| {
        e.family(name, help, Kind::Gauge, |f| f.sample(&none, v));
    };
    let resolve = match &result.seen {
        Seen::Icmp(i) => i.resolve,
        _ => result.phases.resolve,
    };
    gauge(
        &mut e,
        "probe_dns_lookup_time_seconds",
        "Time spent resolving the target's host name.",
        resolve.as_secs_f64(),
    );
    if let Target::Http(r) = &check.probe {
        e.family(
            "probe_http_duration_seconds",
            "Duration of each phase of the HTTP exchange, summed over redirects.",
            Kind::Gauge,
            |f| {
                for (phase, d) in PHASE_NAMES.iter().zip(result.phases.by_name()) {
                    f.sample_with(&none, "phase", phase, d.1.as_secs_f64());
                }
            },
        );
        gauge(
            &mut e,
            "probe_http_redirects",
            "Redirects followed.",
            f64::from(result.redirects),
        );
        gauge(
            &mut e,
            "probe_http_ssl",
            "1 if the final request went over TLS.",
            f64::from(u8::from(
                r.url.scheme() == "https" && result.tls_not_after.is_some(),
            )),
        );
        gauge(
            &mut e,
            "probe_http_status_code",
            "Status code of the final response (0 when none arrived).",
            f64::from(result.status.unwrap_or(0)),
        );
    }
    if let Some(t) = result.tls_not_after {
        gauge(
            &mut e,
            "probe_ssl_earliest_cert_expiry",
            "Unix time at which the earliest-expiring certificate presented expires.",
            t.timestamp() as f64,
        );
    }
    let kind = samples(result);
    for &(name, help, k) in FAMILIES {
        e.family(name, help, k, |f| {
            write_family(f, name, std::iter::once((&none, kind.as_slice())));
        });
    }
    gauge(
        &mut e,
        "probe_duration_seconds",
        "How long the probe took.",
        result.duration.as_secs_f64(),
    );
    gauge(
        &mut e,
        "probe_success",
        "1 if the probe passed, else 0.",
        f64::from(u8::from(result.outcome.is_success())),
    );
    e.finish()
}
