//! What a check probes: one variant per probe kind. A kind is one variant
//! here, one file under `src/probe/` that fills an [`Observation`], one arm
//! in `judge` and one in `record::kinds`; nothing else names a kind.
//!
//! [`Observation`]: super::Observation

use std::fmt;
use std::time::Duration;

use regex::Regex;
use serde::Serialize;

use super::{Auth, HttpRequest};
use crate::secret::Secret;
pub use crate::seen::TlsVersion;

#[derive(Clone, Debug)]
pub enum Target {
    Http(HttpRequest),
    Tcp(TcpTarget),
    Tls(TlsTarget),
    Dns(DnsTarget),
    Grpc(GrpcTarget),
    Icmp(IcmpTarget),
}

/// The probe kinds, as written in a URL's scheme and in the `kind` field
/// of the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Http,
    Tcp,
    Tls,
    Dns,
    Grpc,
    Icmp,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Http,
        Kind::Tcp,
        Kind::Tls,
        Kind::Dns,
        Kind::Grpc,
        Kind::Icmp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Tcp => "tcp",
            Kind::Tls => "tls",
            Kind::Dns => "dns",
            Kind::Grpc => "grpc",
            Kind::Icmp => "icmp",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Target {
    pub fn kind(&self) -> Kind {
        match self {
            Target::Http(_) => Kind::Http,
            Target::Tcp(_) => Kind::Tcp,
            Target::Tls(_) => Kind::Tls,
            Target::Dns(_) => Kind::Dns,
            Target::Grpc(_) => Kind::Grpc,
            Target::Icmp(_) => Kind::Icmp,
        }
    }

    /// What the page and `check-config` show before the address: the HTTP
    /// method, or the kind (`DNS A`, `TCP`, …).
    pub fn verb(&self) -> String {
        match self {
            Target::Http(r) => r.method.to_string(),
            Target::Dns(d) => format!("DNS {}", d.record_type),
            Target::Grpc(_) => "gRPC".to_owned(),
            other => other.kind().as_str().to_uppercase(),
        }
    }

    /// Where the probe goes, as the config wrote it (for HTTP the URL; a
    /// secret in it is the caller's to redact).
    pub fn address(&self) -> String {
        match self {
            Target::Http(r) => r.url.to_string(),
            Target::Tcp(t) => format!("tcp://{}", t.endpoint),
            Target::Tls(t) => format!("tls://{}", t.endpoint),
            Target::Dns(d) => format!("dns://{} {}", d.server, d.name),
            Target::Grpc(g) => {
                let scheme = if g.tls.is_some() { "grpcs" } else { "grpc" };
                match &g.service {
                    s if s.is_empty() => format!("{scheme}://{}", g.endpoint),
                    s => format!("{scheme}://{} service {s}", g.endpoint),
                }
            }
            Target::Icmp(i) => format!("icmp://{}", i.host),
        }
    }

    /// The key of the per-target concurrency limit: an HTTP origin, or the
    /// kind's host and port.
    pub fn limit_key(&self) -> String {
        match self {
            Target::Http(r) => r.url.origin().ascii_serialization(),
            Target::Tcp(t) => format!("tcp://{}", t.endpoint),
            Target::Tls(t) => format!("tls://{}", t.endpoint),
            Target::Dns(d) => format!("dns://{}", d.server),
            Target::Grpc(g) => format!("grpc://{}", g.endpoint),
            Target::Icmp(i) => format!("icmp://{}", i.host),
        }
    }

    /// The check's credential, if it sends one.
    pub fn auth(&self) -> Option<&Auth> {
        match self {
            Target::Http(r) => Some(&r.auth),
            _ => None,
        }
    }

    /// Every secret the probe may send, for the redactor.
    pub fn secrets(&self) -> Vec<&Secret> {
        match self {
            Target::Http(r) => r.auth.secret().into_iter().collect(),
            Target::Tcp(t) => t
                .query
                .iter()
                .filter_map(|q| match q {
                    QueryStep::SendSecret { secret, .. } => Some(secret),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The whole probe's time budget.
    pub fn timeout(&self) -> Duration {
        match self {
            Target::Http(r) => r.timeout,
            Target::Tcp(t) => t.timeout,
            Target::Tls(t) => t.timeout,
            Target::Dns(d) => d.timeout,
            Target::Grpc(g) => g.timeout,
            Target::Icmp(i) => i.timeout,
        }
    }

    /// Shortens (or sets) the whole probe's time budget: `/probe` keeps to
    /// the scrape's deadline.
    pub fn set_timeout(&mut self, timeout: Duration) {
        match self {
            Target::Http(r) => r.timeout = timeout,
            Target::Tcp(t) => t.timeout = timeout,
            Target::Tls(t) => t.timeout = timeout,
            Target::Dns(d) => d.timeout = timeout,
            Target::Grpc(g) => g.timeout = timeout,
            Target::Icmp(i) => i.timeout = timeout,
        }
    }

    /// The index into `Config::tls_profiles` the probe verifies with, when
    /// it speaks TLS.
    pub fn tls_profile(&self) -> Option<usize> {
        match self {
            Target::Http(r) => Some(r.tls_profile),
            Target::Tcp(t) => t.tls.as_ref().map(|t| t.tls_profile),
            Target::Tls(t) => Some(t.tls.tls_profile),
            Target::Grpc(g) => g.tls.as_ref().map(|t| t.tls_profile),
            Target::Dns(_) | Target::Icmp(_) => None,
        }
    }

    /// For HTTP checks, the request.
    pub fn http(&self) -> Option<&HttpRequest> {
        match self {
            Target::Http(r) => Some(r),
            _ => None,
        }
    }
}

/// A host (name or address) and a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// TLS on top of a TCP connection (a TCP check with `tls = true`, a TLS
/// check, a `grpcs://` check).
#[derive(Clone)]
pub struct TlsOn {
    /// The name sent in SNI and verified against the certificate.
    pub server_name: String,
    pub tls_profile: usize,
}

/// Without the profile's index, which differs between loads of the same
/// file: identity compares the settings themselves.
impl fmt::Debug for TlsOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOn")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// What a certificate must satisfy, for any kind that speaks TLS.
#[derive(Clone, Debug, Default)]
pub struct CertExpect {
    /// Fail when the leaf (or any certificate in the chain) expires sooner.
    pub valid_for: Option<Duration>,
    pub min_version: Option<TlsVersion>,
    /// Matched against the leaf issuer's distinguished name.
    pub issuer: Option<Regex>,
    /// Names the leaf's subjectAltName must include.
    pub san: Vec<String>,
}

impl CertExpect {
    pub fn is_empty(&self) -> bool {
        self.valid_for.is_none()
            && self.min_version.is_none()
            && self.issuer.is_none()
            && self.san.is_empty()
    }
}

#[derive(Clone, Debug)]
pub struct TcpTarget {
    pub endpoint: Endpoint,
    pub tls: Option<TlsOn>,
    pub query: Vec<QueryStep>,
    pub timeout: Duration,
    /// The most an `expect` step reads while waiting for its line.
    pub max_read_bytes: usize,
    pub expect_cert: CertExpect,
}

/// One step of a TCP dialogue, like blackbox_exporter's `query_response`.
#[derive(Clone, Debug)]
pub enum QueryStep {
    Send(String),
    /// `before`, the secret's value, then `after`: a credential in a line
    /// (`AUTH {secret}\r\n`).
    SendSecret {
        before: String,
        secret: Secret,
        after: String,
    },
    /// Read lines until one matches.
    Expect(Regex),
}

#[derive(Clone, Debug)]
pub struct TlsTarget {
    pub endpoint: Endpoint,
    pub tls: TlsOn,
    pub timeout: Duration,
    pub expect: CertExpect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsTransport {
    Udp,
    Tcp,
}

impl DnsTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            DnsTransport::Udp => "udp",
            DnsTransport::Tcp => "tcp",
        }
    }
}

/// The record types a DNS check may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordType {
    A,
    Aaaa,
    Cname,
    Mx,
    Txt,
    Srv,
    Ns,
    Soa,
    Ptr,
}

impl RecordType {
    pub const ALL: [RecordType; 9] = [
        RecordType::A,
        RecordType::Aaaa,
        RecordType::Cname,
        RecordType::Mx,
        RecordType::Txt,
        RecordType::Srv,
        RecordType::Ns,
        RecordType::Soa,
        RecordType::Ptr,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
            RecordType::Cname => "CNAME",
            RecordType::Mx => "MX",
            RecordType::Txt => "TXT",
            RecordType::Srv => "SRV",
            RecordType::Ns => "NS",
            RecordType::Soa => "SOA",
            RecordType::Ptr => "PTR",
        }
    }

    pub fn parse(text: &str) -> Option<RecordType> {
        RecordType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(text))
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug)]
pub struct DnsTarget {
    /// The resolver asked, as `ip:port`.
    pub server: std::net::SocketAddr,
    pub transport: DnsTransport,
    pub name: String,
    pub record_type: RecordType,
    pub recursion_desired: bool,
    pub timeout: Duration,
    pub expect: DnsExpect,
}

#[derive(Clone, Debug, Default)]
pub struct DnsExpect {
    /// The response code's mnemonic (`NOERROR`, `NXDOMAIN`, …); NOERROR
    /// when not set.
    pub rcode: Option<String>,
    /// Each must match at least one answer record, written as in a zone
    /// file (`name TTL IN TYPE data`).
    pub answers_match: Vec<Regex>,
    /// None may match any answer record.
    pub answers_not_match: Vec<Regex>,
    pub min_answers: Option<usize>,
}

#[derive(Clone, Debug)]
pub struct GrpcTarget {
    pub endpoint: Endpoint,
    /// `grpcs://`: TLS (ALPN h2) with these settings.
    pub tls: Option<TlsOn>,
    /// The service name asked about; empty for the server as a whole.
    pub service: String,
    pub timeout: Duration,
    pub expect_cert: CertExpect,
}

#[derive(Clone, Debug)]
pub struct IcmpTarget {
    pub host: String,
    /// Which address family to resolve the host to; any when `None`.
    pub ip_version: Option<IpVersion>,
    pub count: u32,
    pub interval: Duration,
    pub payload_bytes: usize,
    pub timeout: Duration,
    /// The largest share of lost packets (0 to 1) that still passes;
    /// `None`: pass while any reply came back.
    pub max_loss: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpVersion {
    V4,
    V6,
}

/// The host a module's target stands in for until `/probe?target=` names
/// one (a reserved name: it never resolves).
pub const MODULE_HOST: &str = "module.invalid";

impl Target {
    /// This target, from a `/probe` module, sent to the address the scrape
    /// names: an http(s) URL (a bare `host:port` means `http://`), a
    /// `host:port` for TCP, TLS (443 by default) and gRPC, an `ip[:port]`
    /// for DNS (53 by default), a host for ICMP. A TLS name the module did
    /// not set becomes the target's host.
    pub fn retarget(&self, target: &str) -> Result<Target, String> {
        let target = target.trim();
        if target.is_empty() || target.len() > 2048 || target.chars().any(char::is_control) {
            return Err(
                "the target must be 1 to 2048 characters without control characters".into(),
            );
        }
        let mut out = self.clone();
        let name_for = |tls: &mut TlsOn, host: &str| {
            if tls.server_name == MODULE_HOST {
                tls.server_name = host.to_owned();
            }
        };
        match &mut out {
            Target::Http(r) => {
                let text = if target.contains("://") {
                    target.to_owned()
                } else {
                    format!("http://{target}")
                };
                let url =
                    url::Url::parse(&text).map_err(|e| format!("invalid URL {text:?}: {e}"))?;
                if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                    return Err(format!(
                        "{text:?} is not an http:// or https:// URL with a host"
                    ));
                }
                if !url.username().is_empty() || url.password().is_some() {
                    return Err("the target URL takes no user or password".into());
                }
                r.url = url;
            }
            Target::Tcp(t) => {
                t.endpoint = endpoint(target, None)?;
                if let Some(tls) = &mut t.tls {
                    name_for(tls, &t.endpoint.host);
                }
            }
            Target::Tls(t) => {
                t.endpoint = endpoint(target, Some(443))?;
                name_for(&mut t.tls, &t.endpoint.host);
            }
            Target::Grpc(g) => {
                g.endpoint = endpoint(target, None)?;
                if let Some(tls) = &mut g.tls {
                    name_for(tls, &g.endpoint.host);
                }
            }
            Target::Dns(d) => {
                let e = endpoint(target, Some(53))?;
                let ip: std::net::IpAddr = e.host.parse().map_err(|_| {
                    format!(
                        "a DNS target is the server's address (127.0.0.1 or [::1]:53), not {:?}",
                        e.host
                    )
                })?;
                d.server = std::net::SocketAddr::new(ip, e.port);
            }
            Target::Icmp(i) => {
                let host = target.trim_start_matches('[').trim_end_matches(']');
                check_host(host)?;
                if host.contains(':') && host.parse::<std::net::Ipv6Addr>().is_err() {
                    return Err(format!(
                        "an ICMP target is a host, without a port: {target:?}"
                    ));
                }
                i.host = host.to_owned();
            }
        }
        Ok(out)
    }
}

/// `host:port`, `[v6]:port`, or a host alone when there is a default port.
fn endpoint(text: &str, default_port: Option<u16>) -> Result<Endpoint, String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{text:?}: an IPv6 address in brackets lacks its ]"))?;
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(format!("{text:?} is not host:port")),
        }
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return Err(format!("{text:?}: write an IPv6 address as [addr]:port")),
            None => (text, None),
        }
    };
    check_host(host)?;
    let port = match (port, default_port) {
        (Some(p), _) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{text:?}: the port must be 1 to 65535"))?,
        (None, Some(d)) => d,
        (None, None) => return Err(format!("{text:?} needs a port: host:port")),
    };
    Ok(Endpoint {
        host: host.to_owned(),
        port,
    })
}

fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty()
        || host.len() > 253
        || host
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '/' | '@' | '?' | '#' | '[' | ']' | '\\'))
    {
        return Err(format!("{host:?} is not a host name or address"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_with_and_without_ports() {
        let e = |t, d| endpoint(t, d).map(|e| e.to_string());
        assert_eq!(e("db:5432", None).unwrap(), "db:5432");
        assert_eq!(e("[::1]:53", None).unwrap(), "[::1]:53");
        assert_eq!(e("[::1]", Some(53)).unwrap(), "[::1]:53");
        assert_eq!(e("host", Some(443)).unwrap(), "host:443");
        for bad in [
            "host", "::1:53", "h:0", "h:99999", "a b:1", "u@h:1", "h/x:1", ":80", "[::1",
        ] {
            assert!(endpoint(bad, None).is_err(), "{bad}");
        }
    }
}
