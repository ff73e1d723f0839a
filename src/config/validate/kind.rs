//! The probe kinds beyond HTTP: a check's URL scheme picks the kind
//! (`tcp://`, `tls://`, `dns://`, `grpc://`, `grpcs://`, `icmp://`), its
//! kind table (`tcp`, `dns`, `grpc`, `icmp`) and `expect` keys say the
//! rest. A field of another kind is refused, naming the kind it belongs to.

use super::*;
use crate::model::{
    CertExpect, DnsExpect, DnsTarget, DnsTransport, Endpoint, GrpcTarget, IcmpTarget, IpVersion,
    Kind, QueryStep, RecordType, Target, TcpTarget, TlsOn, TlsTarget, TlsVersion,
};

/// The most a TCP `expect` step reads by default while looking for its line.
const DEFAULT_MAX_READ_BYTES: usize = 64 * 1024;
/// The most it may be set to.
const MAX_READ_BYTES: usize = 16 * 1024 * 1024;
const MAX_QUERY_STEPS: usize = 64;
const MAX_ICMP_COUNT: u32 = 100;
const MAX_ICMP_PAYLOAD: usize = 65_000;
const DEFAULT_DNS_PORT: u16 = 53;

/// The kind a URL's scheme names; `None` for a scheme lookout does not probe.
pub(super) fn kind_of(url: &str) -> Option<Kind> {
    let scheme = url.split_once("://")?.0.to_ascii_lowercase();
    Some(match scheme.as_str() {
        "http" | "https" => Kind::Http,
        "tcp" => Kind::Tcp,
        "tls" => Kind::Tls,
        "dns" => Kind::Dns,
        "grpc" | "grpcs" => Kind::Grpc,
        "icmp" => Kind::Icmp,
        _ => return None,
    })
}

/// Everything a non-HTTP target is built from, rendered for one matrix
/// combination.
pub(super) struct KindInput<'a> {
    pub field: &'a str,
    pub raw: &'a RawCheck,
    pub url: &'a str,
    pub url_span: Range<usize>,
    /// `dns.name`, rendered.
    pub dns_name: Option<String>,
    pub timeout: Duration,
    pub tls_profile: usize,
    pub secrets: &'a BTreeMap<String, Secret>,
}

/// Refuses what belongs to other kinds, before anything is built: the
/// HTTP request fields and `expect` keys on a non-HTTP check, another
/// kind's table, certificate keys where no TLS is spoken.
pub(super) fn refuse_foreign(
    ctx: &Ctx<'_>,
    field: &str,
    raw: &RawCheck,
    kind: Kind,
    speaks_tls: bool,
) -> Result<(), ConfigError> {
    let span = raw.url.span();
    let wrong = |key: &str, owner: &str| {
        ctx.err(
            span.clone(),
            format!("{field}.{key}"),
            format!("{key} applies to {owner} checks; this is a {kind} check (its URL's scheme)"),
        )
    };
    if kind != Kind::Http {
        let http_fields = [
            ("method", raw.method.is_some()),
            ("headers", !raw.headers.is_empty()),
            ("body", raw.body.is_some()),
            ("json", raw.json.is_some()),
            ("auth", raw.auth.is_some()),
            ("max_body_bytes", raw.max_body_bytes.is_some()),
            ("max_redirects", raw.max_redirects.is_some()),
            ("repeat", raw.repeat.is_some()),
            ("within", raw.within.is_some()),
        ];
        if let Some((key, _)) = http_fields.iter().find(|(_, set)| *set) {
            return Err(wrong(key, "http"));
        }
    }
    let tables = [
        ("tcp", raw.tcp.is_some(), Kind::Tcp),
        ("dns", raw.dns.is_some(), Kind::Dns),
        ("grpc", raw.grpc.is_some(), Kind::Grpc),
        ("icmp", raw.icmp.is_some(), Kind::Icmp),
    ];
    if let Some((key, _, owner)) = tables.iter().find(|(_, set, k)| *set && *k != kind) {
        return Err(wrong(key, owner.as_str()));
    }
    if raw.tls.is_some() && !speaks_tls && kind != Kind::Http {
        return Err(ctx.err(
            span.clone(),
            format!("{field}.tls"),
            format!("this {kind} check speaks no TLS, so tls settings do not apply"),
        ));
    }
    if kind == Kind::Http
        && let Some(tls) = &raw.tls
        && tls.get_ref().server_name.is_some()
    {
        return Err(ctx.err(
            tls.span(),
            format!("{field}.tls.server_name"),
            "server_name applies to tcp, tls and grpcs checks; an http check uses its URL's host",
        ));
    }
    let Some(expect) = &raw.expect else {
        return Ok(());
    };
    let e = expect.get_ref();
    let wrong_expect = |key: &str, owner: &str| {
        ctx.err(
            expect.span(),
            format!("{field}.expect.{key}"),
            format!("expect.{key} applies to {owner} checks; this is a {kind} check"),
        )
    };
    if kind != Kind::Http {
        let http_keys = [
            ("status", e.status.is_some()),
            ("body_contains", !e.body_contains.is_empty()),
            ("body_not_contains", !e.body_not_contains.is_empty()),
            ("body_regex", e.body_regex.is_some()),
            ("json", !e.json.is_empty()),
            ("headers", !e.headers.is_empty()),
            ("www_authenticate", e.www_authenticate.is_some()),
            ("retry_after", e.retry_after.is_some()),
            ("sequence", e.sequence.is_some()),
            ("any_status", e.any_status.is_some()),
        ];
        if let Some((key, _)) = http_keys.iter().find(|(_, set)| *set) {
            return Err(wrong_expect(key, "http"));
        }
    }
    let cert_keys = [
        ("cert_valid_for", e.cert_valid_for.is_some()),
        ("min_tls_version", e.min_tls_version.is_some()),
        ("issuer", e.issuer.is_some()),
        ("san", !e.san.is_empty()),
    ];
    if let Some((key, _)) = cert_keys.iter().find(|(_, set)| *set)
        && !(speaks_tls && kind != Kind::Http)
    {
        return Err(wrong_expect(
            key,
            "tls, grpcs and tcp (with tcp.tls = true); for an https endpoint add a tls:// check of its host and port",
        ));
    }
    let dns_keys = [
        ("rcode", e.rcode.is_some()),
        ("answers", !e.answers.is_empty()),
        ("answers_not", !e.answers_not.is_empty()),
        ("min_answers", e.min_answers.is_some()),
    ];
    if let Some((key, _)) = dns_keys.iter().find(|(_, set)| *set)
        && kind != Kind::Dns
    {
        return Err(wrong_expect(key, "dns"));
    }
    if e.max_loss.is_some() && kind != Kind::Icmp {
        return Err(wrong_expect("max_loss", "icmp"));
    }
    Ok(())
}

/// Whether a check of this URL speaks TLS.
pub(super) fn speaks_tls(kind: Kind, url: &str, raw: &RawCheck) -> bool {
    match kind {
        Kind::Http => url
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://")),
        Kind::Tls => true,
        Kind::Tcp => raw.tcp.as_ref().is_some_and(|t| t.get_ref().tls),
        Kind::Grpc => url
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("grpcs://")),
        Kind::Dns | Kind::Icmp => false,
    }
}

pub(super) fn target(
    ctx: &Ctx<'_>,
    kind: Kind,
    input: &KindInput<'_>,
) -> Result<Target, ConfigError> {
    let field = input.field;
    let url_err = |msg: String| ctx.err(input.url_span.clone(), format!("{field}.url"), msg);
    let url =
        Url::parse(input.url).map_err(|e| url_err(format!("invalid URL {:?}: {e}", input.url)))?;
    let host = match url.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(h) => h.to_string(),
        None => return Err(url_err(format!("{:?} has no host", input.url))),
    };
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(url_err(format!(
            "a {kind} URL is scheme://host{}, with no path, query or fragment",
            if kind == Kind::Icmp { "" } else { ":port" }
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(url_err(format!(
            "a {kind} URL takes no user or password; put credentials in [secrets]"
        )));
    }
    let port = |default: Option<u16>| {
        url.port().or(default).ok_or_else(|| {
            url_err(format!(
                "a {kind} URL needs a port: {}://{}:PORT",
                url.scheme(),
                url.host_str().unwrap_or_default()
            ))
        })
    };
    let expect = input.raw.expect.as_ref();
    let tls_on = || TlsOn {
        server_name: input
            .raw
            .tls
            .as_ref()
            .and_then(|t| t.get_ref().server_name.clone())
            .unwrap_or_else(|| host.clone()),
        tls_profile: input.tls_profile,
    };
    let cert = || cert_expect(ctx, field, expect);
    Ok(match kind {
        Kind::Http => unreachable_http(ctx, field, input)?,
        Kind::Tcp => {
            let raw = input.raw.tcp.as_ref();
            let settings = raw.map(|t| t.get_ref());
            let max_read_bytes = match settings.and_then(|t| t.max_read_bytes) {
                None => DEFAULT_MAX_READ_BYTES,
                Some(n) if (1..=MAX_READ_BYTES).contains(&n) => n,
                Some(_) => {
                    return Err(ctx.err(
                        raw.map_or(input.url_span.clone(), |t| t.span()),
                        format!("{field}.tcp.max_read_bytes"),
                        format!("must be 1 to {MAX_READ_BYTES}"),
                    ));
                }
            };
            Target::Tcp(TcpTarget {
                endpoint: Endpoint {
                    host: host.clone(),
                    port: port(None)?,
                },
                tls: settings.is_some_and(|t| t.tls).then(tls_on),
                query: match settings {
                    Some(t) => query(ctx, field, &t.query, input.secrets)?,
                    None => Vec::new(),
                },
                timeout: input.timeout,
                max_read_bytes,
                expect_cert: cert()?,
            })
        }
        Kind::Tls => Target::Tls(TlsTarget {
            endpoint: Endpoint {
                host: host.clone(),
                port: port(Some(443))?,
            },
            tls: tls_on(),
            timeout: input.timeout,
            expect: cert()?,
        }),
        Kind::Dns => dns(ctx, input, &url, &host, port(Some(DEFAULT_DNS_PORT))?)?,
        Kind::Grpc => {
            let tls = url.scheme().eq_ignore_ascii_case("grpcs");
            Target::Grpc(GrpcTarget {
                endpoint: Endpoint {
                    host: host.clone(),
                    port: port(None)?,
                },
                tls: tls.then(tls_on),
                service: input
                    .raw
                    .grpc
                    .as_ref()
                    .and_then(|g| g.get_ref().service.clone())
                    .unwrap_or_default(),
                timeout: input.timeout,
                expect_cert: cert()?,
            })
        }
        Kind::Icmp => {
            if url.port().is_some() {
                return Err(url_err("an icmp URL has no port: icmp://host".into()));
            }
            icmp(ctx, input, host.clone())?
        }
    })
}

fn unreachable_http(
    ctx: &Ctx<'_>,
    field: &str,
    input: &KindInput<'_>,
) -> Result<Target, ConfigError> {
    Err(ctx.err(
        input.url_span.clone(),
        format!("{field}.url"),
        "an http check is built as a request, not here (a bug in lookout)",
    ))
}

fn query(
    ctx: &Ctx<'_>,
    field: &str,
    steps: &[Spanned<RawQueryStep>],
    secrets: &BTreeMap<String, Secret>,
) -> Result<Vec<QueryStep>, ConfigError> {
    if steps.len() > MAX_QUERY_STEPS {
        return Err(ctx.err(
            steps[MAX_QUERY_STEPS].span(),
            format!("{field}.tcp.query"),
            format!("at most {MAX_QUERY_STEPS} steps"),
        ));
    }
    let mut out = Vec::with_capacity(steps.len());
    for (i, spanned) in steps.iter().enumerate() {
        let step = spanned.get_ref();
        let here = format!("{field}.tcp.query[{i}]");
        let err = |msg: String| ctx.err(spanned.span(), &here, msg);
        out.push(match (&step.send, &step.expect, &step.secret) {
            (Some(text), None, None) => {
                if text.contains("{secret}") {
                    return Err(err(
                        "{secret} in send needs secret = \"<name in [secrets]>\"".into(),
                    ));
                }
                QueryStep::Send(text.clone())
            }
            (Some(text), None, Some(name)) => {
                let Some((before, after)) = text.split_once("{secret}") else {
                    return Err(err(
                        "with secret set, send must hold {secret} where the value goes".into(),
                    ));
                };
                if after.contains("{secret}") {
                    return Err(err("send may hold {secret} only once".into()));
                }
                let secret = secrets.get(name).cloned().ok_or_else(|| {
                    let known: Vec<&str> = secrets.keys().map(String::as_str).collect();
                    err(format!(
                        "unknown secret {name:?}; [secrets] defines: {}",
                        if known.is_empty() {
                            "nothing".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ))
                })?;
                QueryStep::SendSecret {
                    before: before.to_owned(),
                    secret,
                    after: after.to_owned(),
                }
            }
            (None, Some(re), None) => QueryStep::Expect(re.0.clone()),
            _ => {
                return Err(err(
                    "each step is { send = \"...\" } (with an optional secret) or { expect = \"regex\" }"
                        .into(),
                ));
            }
        });
    }
    Ok(out)
}

fn cert_expect(
    ctx: &Ctx<'_>,
    field: &str,
    expect: Option<&Spanned<RawExpect>>,
) -> Result<CertExpect, ConfigError> {
    let Some(spanned) = expect else {
        return Ok(CertExpect::default());
    };
    let e = spanned.get_ref();
    let min_version = match e.min_tls_version.as_deref() {
        None => None,
        Some("1.2") => Some(TlsVersion::Tls12),
        Some("1.3") => Some(TlsVersion::Tls13),
        Some(other) => {
            return Err(ctx.err(
                spanned.span(),
                format!("{field}.expect.min_tls_version"),
                format!("{other:?}: lookout speaks TLS \"1.2\" and \"1.3\""),
            ));
        }
    };
    Ok(CertExpect {
        valid_for: e.cert_valid_for.map(|d| d.0),
        min_version,
        issuer: e.issuer.as_ref().map(|r| r.0.clone()),
        san: e.san.clone(),
    })
}

fn dns(
    ctx: &Ctx<'_>,
    input: &KindInput<'_>,
    url: &Url,
    host: &str,
    port: u16,
) -> Result<Target, ConfigError> {
    let field = input.field;
    let Some(raw) = &input.raw.dns else {
        return Err(ctx.err(
            input.url_span.clone(),
            format!("{field}.dns"),
            "a dns check needs dns = { name = \"…\", type = \"A\" }: what to ask the server",
        ));
    };
    let span = raw.span();
    let raw = raw.get_ref();
    let ip: std::net::IpAddr = host.parse().map_err(|_| {
        ctx.err(
            input.url_span.clone(),
            format!("{field}.url"),
            format!(
                "a dns URL names the server by address (dns://127.0.0.1:53), not {:?}: resolving the resolver would need a resolver",
                url.host_str().unwrap_or_default()
            ),
        )
    })?;
    let record_type = match &raw.record_type {
        None => RecordType::A,
        Some(t) => RecordType::parse(t.get_ref()).ok_or_else(|| {
            ctx.err(
                t.span(),
                format!("{field}.dns.type"),
                format!(
                    "unknown record type {:?}; lookout asks for {}",
                    t.get_ref(),
                    RecordType::ALL.map(|t| t.as_str()).join(", ")
                ),
            )
        })?,
    };
    let transport = match raw
        .transport
        .as_ref()
        .map(|t| (t.get_ref().as_str(), t.span()))
    {
        None | Some(("udp", _)) => DnsTransport::Udp,
        Some(("tcp", _)) => DnsTransport::Tcp,
        Some((other, span)) => {
            return Err(ctx.err(
                span,
                format!("{field}.dns.transport"),
                format!("{other:?}: use \"udp\" or \"tcp\""),
            ));
        }
    };
    let name = input.dns_name.clone().unwrap_or_default();
    if name.is_empty()
        || name.len() > 253
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ctx.err(
            raw.name.span(),
            format!("{field}.dns.name"),
            "a DNS name is 1 to 253 characters without spaces",
        ));
    }
    let expect = match &input.raw.expect {
        None => DnsExpect::default(),
        Some(e) => {
            let e = e.get_ref();
            DnsExpect {
                rcode: e.rcode.as_ref().map(|r| r.to_ascii_uppercase()),
                answers_match: e.answers.iter().map(|r| r.0.clone()).collect(),
                answers_not_match: e.answers_not.iter().map(|r| r.0.clone()).collect(),
                min_answers: e.min_answers,
            }
        }
    };
    let _ = span;
    Ok(Target::Dns(DnsTarget {
        server: std::net::SocketAddr::new(ip, port),
        transport,
        name,
        record_type,
        recursion_desired: raw.recursion.unwrap_or(true),
        timeout: input.timeout,
        expect,
    }))
}

fn icmp(ctx: &Ctx<'_>, input: &KindInput<'_>, host: String) -> Result<Target, ConfigError> {
    let field = input.field;
    let raw = input.raw.icmp.as_ref().map(|i| i.get_ref());
    let count = match raw.and_then(|i| i.count.as_ref()) {
        None => 1,
        Some(c) if (1..=MAX_ICMP_COUNT).contains(c.get_ref()) => *c.get_ref(),
        Some(c) => {
            return Err(ctx.err(
                c.span(),
                format!("{field}.icmp.count"),
                format!("must be 1 to {MAX_ICMP_COUNT}"),
            ));
        }
    };
    let payload_bytes = match raw.and_then(|i| i.payload_bytes.as_ref()) {
        None => 56,
        Some(p) if *p.get_ref() <= MAX_ICMP_PAYLOAD => *p.get_ref(),
        Some(p) => {
            return Err(ctx.err(
                p.span(),
                format!("{field}.icmp.payload_bytes"),
                format!("must be at most {MAX_ICMP_PAYLOAD}"),
            ));
        }
    };
    let ip_version = match raw.and_then(|i| i.ip_version.as_ref()) {
        None => None,
        Some(v) if *v.get_ref() == 4 => Some(IpVersion::V4),
        Some(v) if *v.get_ref() == 6 => Some(IpVersion::V6),
        Some(v) => {
            return Err(ctx.err(
                v.span(),
                format!("{field}.icmp.ip_version"),
                "must be 4 or 6",
            ));
        }
    };
    let literal: Option<std::net::IpAddr> = host.parse().ok();
    if let (Some(ip), Some(v)) = (literal, ip_version)
        && ip.is_ipv4() != (v == IpVersion::V4)
    {
        return Err(ctx.err(
            input.url_span.clone(),
            format!("{field}.icmp.ip_version"),
            format!(
                "{host} is not an IPv{} address",
                if v == IpVersion::V4 { 4 } else { 6 }
            ),
        ));
    }
    let interval = raw
        .and_then(|i| i.interval)
        .map_or(Duration::from_secs(1), |d| d.0);
    let sending = interval.saturating_mul(count - 1);
    if sending >= input.timeout {
        return Err(ctx.err(
            input.url_span.clone(),
            format!("{field}.timeout"),
            format!(
                "{count} packets {} apart take {}, longer than the timeout ({}): raise the timeout or lower icmp.count or icmp.interval",
                humantime::format_duration(interval),
                humantime::format_duration(sending),
                humantime::format_duration(input.timeout)
            ),
        ));
    }
    let max_loss = match input
        .raw
        .expect
        .as_ref()
        .and_then(|e| e.get_ref().max_loss.as_ref().map(|m| (m.clone(), e.span())))
    {
        None => None,
        Some((text, span)) => Some(percent(&text).ok_or_else(|| {
            ctx.err(
                span,
                format!("{field}.expect.max_loss"),
                format!("{text:?}: write a percentage from \"0%\" to \"100%\""),
            )
        })?),
    };
    Ok(Target::Icmp(IcmpTarget {
        host,
        ip_version,
        count,
        interval,
        payload_bytes,
        timeout: input.timeout,
        max_loss,
    }))
}

/// `"20%"` → 0.2.
fn percent(text: &str) -> Option<f64> {
    let n: f64 = text.trim().strip_suffix('%')?.trim().parse().ok()?;
    (0.0..=100.0).contains(&n).then_some(n / 100.0)
}
