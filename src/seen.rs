//! What a probe saw beyond an HTTP response: the TLS handshake and each
//! kind's own observations. Filled in by `probe` (inside the model's
//! `Observation`), carried into the `CheckResult`, read by `judge`, the
//! metrics writer and the page. A leaf: it imports nothing of the crate,
//! so both the model and the verdict can hold it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum TlsVersion {
    #[serde(rename = "TLS 1.2")]
    Tls12,
    #[serde(rename = "TLS 1.3")]
    Tls13,
}

impl TlsVersion {
    /// blackbox_exporter's `probe_tls_version_info{version}` value.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLS 1.2",
            TlsVersion::Tls13 => "TLS 1.3",
        }
    }
}

/// A finished TLS handshake.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TlsSeen {
    pub version: Option<TlsVersion>,
    /// The leaf's subject and issuer, as distinguished names.
    pub subject: String,
    pub issuer: String,
    /// The leaf's DNS and IP subjectAltNames.
    pub san: Vec<String>,
    /// SHA-256 of the leaf's DER, lowercase hex.
    pub fingerprint_sha256: String,
    pub leaf_not_after: Option<DateTime<Utc>>,
    /// The earliest `notAfter` of the verified chain (blackbox's
    /// `probe_ssl_last_chain_expiry_timestamp_seconds`).
    pub chain_not_after: Option<DateTime<Utc>>,
}

/// Kind-specific observations. HTTP's live in [`Observation`]'s own fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Seen {
    #[default]
    None,
    Tcp(TcpSeen),
    Dns(DnsSeen),
    Grpc(GrpcSeen),
    Icmp(IcmpSeen),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TcpSeen {
    /// Query steps completed.
    pub steps_done: usize,
    /// The `expect` step that found no matching line before the
    /// connection closed or the read limit was reached.
    pub unmatched: Option<Unmatched>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Unmatched {
    /// 1-based position in `query`.
    pub step: usize,
    pub pattern: String,
    /// The last bytes read (as text, unredacted: judge quotes it).
    #[serde(skip)]
    pub read: String,
    /// The connection closed while waiting.
    pub closed: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DnsSeen {
    /// `NOERROR`, `NXDOMAIN`, …
    pub rcode: String,
    /// Answer records in zone-file form: `name TTL IN TYPE data`.
    pub answers: Vec<String>,
    pub authority: usize,
    pub additional: usize,
    /// blackbox's `probe_dns_duration_seconds{phase}`: `connect` and
    /// `request` (resolving the server's own name is not needed: it is
    /// an address).
    #[serde(with = "seconds")]
    pub connect: Duration,
    #[serde(with = "seconds")]
    pub request: Duration,
}

/// `grpc.health.v1.HealthCheckResponse.ServingStatus`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServingStatus {
    #[default]
    Unknown,
    Serving,
    NotServing,
    ServiceUnknown,
}

impl ServingStatus {
    pub const ALL: [ServingStatus; 4] = [
        ServingStatus::Unknown,
        ServingStatus::Serving,
        ServingStatus::NotServing,
        ServingStatus::ServiceUnknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ServingStatus::Unknown => "UNKNOWN",
            ServingStatus::Serving => "SERVING",
            ServingStatus::NotServing => "NOT_SERVING",
            ServingStatus::ServiceUnknown => "SERVICE_UNKNOWN",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GrpcSeen {
    /// The gRPC status code of the call (0 is OK).
    pub status_code: i32,
    /// Present when the call returned a response.
    pub serving: Option<ServingStatus>,
    /// The status message when the call failed (from the target; judge
    /// quotes it).
    #[serde(skip)]
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct IcmpSeen {
    pub sent: u32,
    pub received: u32,
    /// Round-trip time of each reply, in order.
    #[serde(skip)]
    pub rtts: Vec<Duration>,
    /// The hop limit (TTL) of the last reply.
    pub hop_limit: Option<u8>,
    /// Resolving the host's name.
    #[serde(with = "seconds")]
    pub resolve: Duration,
    /// Creating the socket (blackbox's `setup` phase).
    #[serde(with = "seconds")]
    pub setup: Duration,
}

impl IcmpSeen {
    pub fn loss(&self) -> f64 {
        if self.sent == 0 {
            1.0
        } else {
            1.0 - f64::from(self.received) / f64::from(self.sent)
        }
    }

    /// The mean round-trip time of the replies.
    pub fn rtt(&self) -> Option<Duration> {
        let n = u32::try_from(self.rtts.len()).ok().filter(|n| *n > 0)?;
        Some(self.rtts.iter().sum::<Duration>() / n)
    }
}

/// Durations as seconds in JSON.
pub mod seconds {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}
