//! `blackbox_config`: a Prometheus blackbox_exporter config (`blackbox.yml`)
//! read as lookout modules.
//!
//! [`modules`] reads the file's `modules:` map and translates each module,
//! in the file's order, into the TOML text of one lookout module
//! (`config::raw::RawModule`); `validate::module` parses and validates that
//! text like a `[modules.NAME]` table. The YAML is decoded by `serde_norway`
//! into structs of this file that deny unknown fields, and the TOML is built
//! as a `toml::Table`, so no user value is ever spliced into text.
//!
//! What is read (blackbox name → lookout name):
//! - every module: `prober` (`http`, `tcp`, `dns`, `grpc`, `icmp`) and
//!   `timeout` (a Go duration such as `1m30s` or `1.5s`, written back as
//!   humantime text; `0` or absent leaves lookout's default).
//! - `http`: `valid_status_codes` → `expect.status` (empty: 2xx, as in both),
//!   `method`, `headers`, `body`, `no_follow_redirects: true` or
//!   `follow_redirects: false` → `max_redirects = 0`,
//!   `fail_if_body_not_matches_regexp` with one regex → `expect.body_regex`,
//!   `tls_config` (`insecure_skip_verify`, `ca_file`) → `tls`.
//! - `tcp`: `query_response` → `tcp.query` (an entry's `expect` step comes
//!   before its `send` step, and `send` gets the `"\n"` blackbox writes after
//!   it), `tls` → `tcp.tls`, `tls_config` → `tls` (when `tls` is on).
//! - `dns`: `query_name` → `dns.name`, `query_type` → `dns.type` (required:
//!   blackbox's default is `ANY`, which lookout does not ask),
//!   `transport_protocol` → `dns.transport`, `recursion_desired` →
//!   `dns.recursion`, `valid_rcodes` with one code → `expect.rcode`,
//!   `validate_answer_rrs.fail_if_matches_regexp` → `expect.answers_not`,
//!   `validate_answer_rrs.fail_if_none_matches_regexp` → `expect.answers`
//!   (several regexes become one alternation: blackbox wants some record to
//!   match some regex).
//! - `grpc`: `prober = "grpc"`, or `"grpcs"` with `tls: true`; `service`;
//!   `tls_config` → `tls` (with TLS).
//! - `icmp`: `preferred_ip_protocol` → `icmp.ip_version` (lookout does not
//!   fall back to the other family), `payload_size` → `icmp.payload_bytes`.
//!
//! Choices:
//! - `preferred_ip_protocol` and `ip_protocol_fallback` of http, tcp, dns and
//!   grpc are accepted (`ip4` or `ip6`) and have no effect: lookout connects
//!   in the system resolver's order.
//! - The sections of other probers than the module's are ignored, as
//!   blackbox ignores them (they are still read strictly).
//! - Regexes are passed on as written (Go's RE2 syntax is, with few
//!   exceptions, the `regex` crate's); a DNS regex's `\t` and tab characters
//!   become `\s`, since blackbox matches records written with tabs and
//!   lookout writes them with spaces.
//! - `ca_file` is passed on as written: a relative path is relative to
//!   lookout's config file, not to `blackbox.yml`.
//!
//! What is refused, with a one-line message naming the module and the
//! field: other probers; any field not listed above (`http.compression is
//! not supported by lookout's reader`); settings lookout has no exact
//! equivalent for: `fail_if_body_matches_regexp` (lookout's
//! `body_not_contains` takes literal text), more than one
//! `fail_if_body_not_matches_regexp`, `fail_if_header_matches` and
//! `fail_if_header_not_matches`, `valid_http_versions`, `fail_if_ssl` and
//! `fail_if_not_ssl`, an http `tls_config.server_name`, `starttls`, a `send`
//! using the expect's capture groups (`${1}`), a DNS `query_type` left to
//! blackbox's `ANY`, more than one `valid_rcodes`,
//! `validate_answer_rrs.fail_if_not_matches_regexp` and
//! `fail_if_all_match_regexp` (every record must match: lookout's `answers`
//! asks only that one does), `validate_authority_rrs` and
//! `validate_additional_rrs`, a `query_class` other than `IN`, an ICMP `ttl`
//! other than 64 and `dont_fragment`; and text lookout would read as a
//! template (`{{`, `{%`, `{#` in headers, body or query name; `{secret}` in
//! a `send`).
//!
//! Bounds: the file was read with a size cap. YAML aliases could still
//! expand a small file into a huge value (a "billion laughs" document):
//! `serde_norway` caps alias replays at 100 per event, which bounds time
//! but not memory, so the document is first walked by a visitor that keeps
//! nothing and stops once the expanded document passes twice the file's
//! size (plus 64 KiB): an alias-free document never does. Only then is it
//! decoded for real.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use toml::{Table, Value};

/// Every module of `yaml`'s `modules:` map, in the file's order, as
/// `(name, TOML text of a lookout module)`.
pub(crate) fn modules(yaml: &str) -> Result<Vec<(String, String)>, String> {
    check_expansion(yaml)?;
    let file: File =
        serde_norway::from_str(yaml).map_err(|e| format!("not a blackbox config: {e}"))?;
    let mut out = Vec::new();
    for (key, value) in file.modules.unwrap_or_default() {
        let name = match key {
            serde_norway::Value::String(s) => s,
            other => {
                return Err(format!(
                    "module names must be strings, found {}",
                    yaml_kind(&other)
                ));
            }
        };
        let module = decode_module(&name, value)?;
        let table = translate(&name, module)?;
        let text = toml::to_string(&table)
            .map_err(|e| format!("module {name:?}: cannot be written as TOML: {e}"))?;
        out.push((name, text));
    }
    Ok(out)
}

fn yaml_kind(v: &serde_norway::Value) -> &'static str {
    use serde_norway::Value as Y;
    match v {
        Y::Null => "null",
        Y::Bool(_) => "a boolean",
        Y::Number(_) => "a number",
        Y::String(_) => "a string",
        Y::Sequence(_) => "a list",
        Y::Mapping(_) => "a map",
        Y::Tagged(_) => "a tagged value",
    }
}

// ---- Bounding alias expansion ----

/// Walks the whole document (aliases expanded, as serde sees it) keeping
/// nothing, and fails once it has seen more than the budget: one unit per
/// node plus one per byte of scalar text.
fn check_expansion(yaml: &str) -> Result<(), String> {
    let left = Cell::new(yaml.len().saturating_mul(2).saturating_add(64 << 10));
    let de = serde_norway::Deserializer::from_str(yaml);
    Budget(&left).deserialize(de).map_err(|e| {
        let text = e.to_string();
        if text.contains(EXPANSION) || text.contains("repetition limit exceeded") {
            format!("{EXPANSION} (YAML aliases repeat too much)")
        } else {
            format!("not a blackbox config: {text}")
        }
    })
}

const EXPANSION: &str = "the document expands to more than twice its size";

#[derive(Clone, Copy)]
struct Budget<'a>(&'a Cell<usize>);

impl Budget<'_> {
    fn spend<E: de::Error>(self, n: usize) -> Result<(), E> {
        let left = self.0.get();
        if n > left {
            return Err(E::custom(EXPANSION));
        }
        self.0.set(left - n);
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Budget<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Budget<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.spend(v.len().saturating_add(1))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<(), E> {
        self.spend(v.len().saturating_add(1))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.spend(1)?;
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.spend(1)?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.spend(1)?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

// ---- blackbox's structure ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    modules: Option<serde_norway::Mapping>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Module {
    prober: Option<String>,
    timeout: Option<String>,
    http: Option<Http>,
    tcp: Option<Tcp>,
    dns: Option<Dns>,
    grpc: Option<Grpc>,
    icmp: Option<Icmp>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Http {
    #[serde(default)]
    valid_status_codes: Vec<i64>,
    #[serde(default)]
    valid_http_versions: Vec<String>,
    preferred_ip_protocol: Option<String>,
    #[allow(dead_code)]
    ip_protocol_fallback: Option<bool>,
    no_follow_redirects: Option<bool>,
    follow_redirects: Option<bool>,
    #[serde(default)]
    fail_if_ssl: bool,
    #[serde(default)]
    fail_if_not_ssl: bool,
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    fail_if_body_matches_regexp: Vec<String>,
    #[serde(default)]
    fail_if_body_not_matches_regexp: Vec<String>,
    #[serde(default)]
    fail_if_header_matches: Vec<serde_norway::Value>,
    #[serde(default)]
    fail_if_header_not_matches: Vec<serde_norway::Value>,
    body: Option<String>,
    tls_config: Option<TlsConfig>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TlsConfig {
    insecure_skip_verify: Option<bool>,
    ca_file: Option<String>,
    server_name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Tcp {
    preferred_ip_protocol: Option<String>,
    #[allow(dead_code)]
    ip_protocol_fallback: Option<bool>,
    #[serde(default)]
    query_response: Vec<QueryResponse>,
    #[serde(default)]
    tls: bool,
    tls_config: Option<TlsConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryResponse {
    expect: Option<String>,
    send: Option<String>,
    #[serde(default)]
    starttls: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Dns {
    preferred_ip_protocol: Option<String>,
    #[allow(dead_code)]
    ip_protocol_fallback: Option<bool>,
    transport_protocol: Option<String>,
    query_class: Option<String>,
    query_name: Option<String>,
    query_type: Option<String>,
    recursion_desired: Option<bool>,
    #[serde(default)]
    valid_rcodes: Vec<String>,
    validate_answer_rrs: Option<RrValidator>,
    validate_authority_rrs: Option<serde_norway::Value>,
    validate_additional_rrs: Option<serde_norway::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RrValidator {
    #[serde(default)]
    fail_if_matches_regexp: Vec<String>,
    #[serde(default)]
    fail_if_all_match_regexp: Vec<String>,
    #[serde(default)]
    fail_if_not_matches_regexp: Vec<String>,
    #[serde(default)]
    fail_if_none_matches_regexp: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Grpc {
    service: Option<String>,
    #[serde(default)]
    tls: bool,
    tls_config: Option<TlsConfig>,
    preferred_ip_protocol: Option<String>,
    #[allow(dead_code)]
    ip_protocol_fallback: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Icmp {
    preferred_ip_protocol: Option<String>,
    #[allow(dead_code)]
    ip_protocol_fallback: Option<bool>,
    payload_size: Option<i64>,
    #[serde(default)]
    dont_fragment: bool,
    ttl: Option<i64>,
}

/// Decodes one module, naming the field a failure is about.
fn decode_module(name: &str, value: serde_norway::Value) -> Result<Module, String> {
    serde_path_to_error::deserialize::<_, Module>(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let top = path.is_empty() || path == ".";
        if let Some(rest) = inner.strip_prefix("unknown field `")
            && let Some((field, _)) = rest.split_once('`')
        {
            // The path ends with the unknown field already.
            let field = if top { field.to_owned() } else { path };
            format!("module {name:?}: {field} is not supported by lookout's reader")
        } else if top {
            format!("module {name:?}: {inner}")
        } else {
            format!("module {name:?}: {path}: {inner}")
        }
    })
}

// ---- Translation ----

/// A refusal: `module "x": field why`.
fn refuse(module: &str, field: &str, why: &str) -> String {
    format!("module {module:?}: {field} {why}")
}

fn translate(name: &str, m: Module) -> Result<Table, String> {
    let mut t = Table::new();
    let prober = m.prober.as_deref().unwrap_or("");
    if let Some(text) = &m.timeout {
        let d = go_duration(text).map_err(|e| refuse(name, "timeout", &e))?;
        if !d.is_zero() {
            t.insert(
                "timeout".into(),
                humantime::format_duration(d).to_string().into(),
            );
        }
    }
    match prober {
        "http" => http(name, m.http.unwrap_or_default(), &mut t)?,
        "tcp" => tcp(name, m.tcp.unwrap_or_default(), &mut t)?,
        "dns" => dns(name, m.dns.unwrap_or_default(), &mut t)?,
        "grpc" => grpc(name, m.grpc.unwrap_or_default(), &mut t)?,
        "icmp" => icmp(name, m.icmp.unwrap_or_default(), &mut t)?,
        "" => return Err(refuse(name, "prober", "is missing")),
        other => {
            return Err(refuse(
                name,
                "prober",
                &format!(
                    "{other:?} is not supported by lookout's reader (http, tcp, dns, grpc and icmp are)"
                ),
            ));
        }
    }
    Ok(t)
}

fn ip_protocol(module: &str, field: &str, v: Option<&str>) -> Result<Option<u8>, String> {
    match v.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => Ok(None),
        Some("ip4") => Ok(Some(4)),
        Some("ip6") => Ok(Some(6)),
        Some(other) => Err(refuse(
            module,
            field,
            &format!("{other:?} is not ip4 or ip6"),
        )),
    }
}

/// Text lookout would render as a template.
fn check_literal(module: &str, field: &str, text: &str) -> Result<(), String> {
    if text.contains("{{") || text.contains("{%") || text.contains("{#") {
        return Err(refuse(
            module,
            field,
            "holds {{, {% or {#, which lookout reads as a template; write a lookout module instead",
        ));
    }
    Ok(())
}

fn tls_table(module: &str, field: &str, c: TlsConfig, sni: bool) -> Result<Table, String> {
    let mut t = Table::new();
    if let Some(v) = c.insecure_skip_verify {
        t.insert("insecure_skip_verify".into(), v.into());
    }
    if let Some(v) = c.ca_file {
        t.insert("ca_file".into(), v.into());
    }
    if let Some(v) = c.server_name {
        if !sni {
            return Err(refuse(
                module,
                &format!("{field}.server_name"),
                "is not supported by lookout's reader: an http module verifies the target URL's host",
            ));
        }
        t.insert("server_name".into(), v.into());
    }
    Ok(t)
}

fn http(name: &str, h: Http, t: &mut Table) -> Result<(), String> {
    t.insert("prober".into(), "http".into());
    ip_protocol(
        name,
        "http.preferred_ip_protocol",
        h.preferred_ip_protocol.as_deref(),
    )?;
    let unsupported = |field: &str, why: &str| Err(refuse(name, &format!("http.{field}"), why));
    if !h.valid_http_versions.is_empty() {
        return unsupported(
            "valid_http_versions",
            "is not supported by lookout's reader (lookout does not check the HTTP version)",
        );
    }
    if h.fail_if_ssl {
        return unsupported("fail_if_ssl", "is not supported by lookout's reader");
    }
    if h.fail_if_not_ssl {
        return unsupported("fail_if_not_ssl", "is not supported by lookout's reader");
    }
    if !h.fail_if_body_matches_regexp.is_empty() {
        return unsupported(
            "fail_if_body_matches_regexp",
            "is not supported by lookout's reader: lookout's expect.body_not_contains takes literal text, not regexes",
        );
    }
    if !h.fail_if_header_matches.is_empty() {
        return unsupported(
            "fail_if_header_matches",
            "is not supported by lookout's reader",
        );
    }
    if !h.fail_if_header_not_matches.is_empty() {
        return unsupported(
            "fail_if_header_not_matches",
            "is not supported by lookout's reader",
        );
    }
    if let Some(method) = h.method {
        t.insert("method".into(), method.into());
    }
    if !h.headers.is_empty() {
        let mut headers = Table::new();
        for (k, v) in h.headers {
            check_literal(name, &format!("http.headers.{k}"), &v)?;
            headers.insert(k, v.into());
        }
        t.insert("headers".into(), headers.into());
    }
    if let Some(body) = h.body {
        check_literal(name, "http.body", &body)?;
        t.insert("body".into(), body.into());
    }
    if h.no_follow_redirects == Some(true) || h.follow_redirects == Some(false) {
        t.insert("max_redirects".into(), Value::Integer(0));
    }
    if let Some(c) = h.tls_config {
        let tls = tls_table(name, "http.tls_config", c, false)?;
        if !tls.is_empty() {
            t.insert("tls".into(), tls.into());
        }
    }
    let mut expect = Table::new();
    if !h.valid_status_codes.is_empty() {
        let codes = h
            .valid_status_codes
            .into_iter()
            .map(Value::Integer)
            .collect();
        expect.insert("status".into(), Value::Array(codes));
    }
    match h.fail_if_body_not_matches_regexp.as_slice() {
        [] => {}
        [one] => {
            expect.insert("body_regex".into(), one.clone().into());
        }
        _ => {
            return unsupported(
                "fail_if_body_not_matches_regexp",
                "lists more than one regex; lookout's expect.body_regex takes one",
            );
        }
    }
    if !expect.is_empty() {
        t.insert("expect".into(), expect.into());
    }
    Ok(())
}

/// blackbox expands `$1`, `${name}` in a `send` that follows an `expect`
/// (Go's `Regexp.Expand`); `$$` stands for `$`.
fn unescape_send(module: &str, field: &str, send: &str) -> Result<String, String> {
    let mut out = String::with_capacity(send.len());
    let mut chars = send.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
        } else if chars.peek() == Some(&'$') {
            chars.next();
            out.push('$');
        } else {
            return Err(refuse(
                module,
                field,
                "uses the expect's capture groups ($1, ${name}), which lookout does not substitute",
            ));
        }
    }
    Ok(out)
}

fn tcp(name: &str, c: Tcp, t: &mut Table) -> Result<(), String> {
    t.insert("prober".into(), "tcp".into());
    ip_protocol(
        name,
        "tcp.preferred_ip_protocol",
        c.preferred_ip_protocol.as_deref(),
    )?;
    let mut tcp = Table::new();
    let mut query = Vec::new();
    for (i, qr) in c.query_response.into_iter().enumerate() {
        let here = format!("tcp.query_response[{i}]");
        if qr.starttls {
            return Err(refuse(
                name,
                &format!("{here}.starttls"),
                "is not supported by lookout's reader (lookout has no STARTTLS)",
            ));
        }
        let has_expect = qr.expect.is_some();
        if let Some(re) = qr.expect {
            let mut step = Table::new();
            step.insert("expect".into(), re.into());
            query.push(Value::Table(step));
        }
        if let Some(send) = qr.send.filter(|s| !s.is_empty()) {
            let field = format!("{here}.send");
            let send = if has_expect {
                unescape_send(name, &field, &send)?
            } else {
                send
            };
            if send.contains("{secret}") {
                return Err(refuse(
                    name,
                    &field,
                    "holds {secret}, which lookout reads as a credential's place; write a lookout check instead",
                ));
            }
            let mut step = Table::new();
            // blackbox writes the line and a "\n".
            step.insert("send".into(), format!("{send}\n").into());
            query.push(Value::Table(step));
        }
    }
    if c.tls {
        tcp.insert("tls".into(), true.into());
        if let Some(cfg) = c.tls_config {
            let tls = tls_table(name, "tcp.tls_config", cfg, true)?;
            if !tls.is_empty() {
                t.insert("tls".into(), tls.into());
            }
        }
    }
    if !query.is_empty() {
        tcp.insert("query".into(), Value::Array(query));
    }
    if !tcp.is_empty() {
        t.insert("tcp".into(), tcp.into());
    }
    Ok(())
}

/// blackbox matches records as miekg/dns writes them, fields split by
/// tabs; lookout writes them with spaces. `\t` and tab characters become
/// `\s`, which matches either.
fn record_regex(re: &str) -> String {
    let mut out = String::with_capacity(re.len());
    let mut chars = re.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('t') => out.push_str("\\s"),
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push('\\'),
            },
            '\t' => out.push_str("\\s"),
            other => out.push(other),
        }
    }
    out
}

fn dns(name: &str, d: Dns, t: &mut Table) -> Result<(), String> {
    t.insert("prober".into(), "dns".into());
    ip_protocol(
        name,
        "dns.preferred_ip_protocol",
        d.preferred_ip_protocol.as_deref(),
    )?;
    if d.validate_authority_rrs.is_some() {
        return Err(refuse(
            name,
            "dns.validate_authority_rrs",
            "is not supported by lookout's reader",
        ));
    }
    if d.validate_additional_rrs.is_some() {
        return Err(refuse(
            name,
            "dns.validate_additional_rrs",
            "is not supported by lookout's reader",
        ));
    }
    if let Some(class) = &d.query_class
        && !class.is_empty()
        && !class.eq_ignore_ascii_case("IN")
    {
        return Err(refuse(
            name,
            "dns.query_class",
            &format!("{class:?} is not supported by lookout's reader (only IN is)"),
        ));
    }
    let mut dns = Table::new();
    let query_name = d
        .query_name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| refuse(name, "dns.query_name", "is missing"))?;
    check_literal(name, "dns.query_name", &query_name)?;
    dns.insert("name".into(), query_name.into());
    let query_type = d.query_type.filter(|n| !n.is_empty()).ok_or_else(|| {
        refuse(
            name,
            "dns.query_type",
            "is missing: blackbox asks ANY by default, which lookout does not; name the type (A, AAAA, MX, …)",
        )
    })?;
    dns.insert("type".into(), query_type.to_ascii_uppercase().into());
    if let Some(proto) = d.transport_protocol.filter(|p| !p.is_empty()) {
        let proto = proto.to_ascii_lowercase();
        if proto != "udp" && proto != "tcp" {
            return Err(refuse(
                name,
                "dns.transport_protocol",
                &format!("{proto:?} is not udp or tcp"),
            ));
        }
        dns.insert("transport".into(), proto.into());
    }
    if let Some(rd) = d.recursion_desired {
        dns.insert("recursion".into(), rd.into());
    }
    t.insert("dns".into(), dns.into());

    let mut expect = Table::new();
    match d.valid_rcodes.as_slice() {
        [] => {}
        [one] => {
            expect.insert("rcode".into(), one.to_ascii_uppercase().into());
        }
        _ => {
            return Err(refuse(
                name,
                "dns.valid_rcodes",
                "lists more than one code; lookout's expect.rcode takes one",
            ));
        }
    }
    if let Some(v) = d.validate_answer_rrs {
        let field = "dns.validate_answer_rrs";
        if !v.fail_if_not_matches_regexp.is_empty() {
            return Err(refuse(
                name,
                &format!("{field}.fail_if_not_matches_regexp"),
                "is not supported by lookout's reader: it asks every record to match, and lookout's expect.answers asks one to (that is fail_if_none_matches_regexp)",
            ));
        }
        if !v.fail_if_all_match_regexp.is_empty() {
            return Err(refuse(
                name,
                &format!("{field}.fail_if_all_match_regexp"),
                "is not supported by lookout's reader",
            ));
        }
        if !v.fail_if_matches_regexp.is_empty() {
            let not: Vec<Value> = v
                .fail_if_matches_regexp
                .iter()
                .map(|r| record_regex(r).into())
                .collect();
            expect.insert("answers_not".into(), Value::Array(not));
        }
        let any = match v.fail_if_none_matches_regexp.as_slice() {
            [] => None,
            [one] => Some(record_regex(one)),
            many => Some(
                many.iter()
                    .map(|r| format!("(?:{})", record_regex(r)))
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
        };
        if let Some(re) = any {
            expect.insert("answers".into(), Value::Array(vec![re.into()]));
        }
    }
    if !expect.is_empty() {
        t.insert("expect".into(), expect.into());
    }
    Ok(())
}

fn grpc(name: &str, g: Grpc, t: &mut Table) -> Result<(), String> {
    ip_protocol(
        name,
        "grpc.preferred_ip_protocol",
        g.preferred_ip_protocol.as_deref(),
    )?;
    t.insert("prober".into(), if g.tls { "grpcs" } else { "grpc" }.into());
    if g.tls
        && let Some(cfg) = g.tls_config
    {
        let tls = tls_table(name, "grpc.tls_config", cfg, true)?;
        if !tls.is_empty() {
            t.insert("tls".into(), tls.into());
        }
    }
    if let Some(service) = g.service.filter(|s| !s.is_empty()) {
        let mut grpc = Table::new();
        grpc.insert("service".into(), service.into());
        t.insert("grpc".into(), grpc.into());
    }
    Ok(())
}

fn icmp(name: &str, i: Icmp, t: &mut Table) -> Result<(), String> {
    t.insert("prober".into(), "icmp".into());
    if i.dont_fragment {
        return Err(refuse(
            name,
            "icmp.dont_fragment",
            "is not supported by lookout's reader",
        ));
    }
    if let Some(ttl) = i.ttl
        && ttl != 64
    {
        return Err(refuse(
            name,
            "icmp.ttl",
            "is not supported by lookout's reader (lookout sends with the system's TTL)",
        ));
    }
    let mut icmp = Table::new();
    if let Some(v) = ip_protocol(
        name,
        "icmp.preferred_ip_protocol",
        i.preferred_ip_protocol.as_deref(),
    )? {
        icmp.insert("ip_version".into(), Value::Integer(i64::from(v)));
    }
    match i.payload_size {
        None | Some(0) => {}
        Some(n) if n < 0 => {
            return Err(refuse(name, "icmp.payload_size", "must not be negative"));
        }
        Some(n) => {
            icmp.insert("payload_bytes".into(), Value::Integer(n));
        }
    }
    if !icmp.is_empty() {
        t.insert("icmp".into(), icmp.into());
    }
    Ok(())
}

/// A Go duration (`time.ParseDuration`): `300ms`, `1.5s`, `1m30s`, `2h`, `0`.
fn go_duration(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("{text:?} is not a Go duration: {why}");
    let mut s = text.trim();
    s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        return Err(bad("it is negative"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad("it is empty"));
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let int_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let int = &s[..int_end];
        s = &s[int_end..];
        let mut frac = "";
        if let Some(rest) = s.strip_prefix('.') {
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            frac = &rest[..end];
            s = &rest[end..];
        }
        if int.is_empty() && frac.is_empty() {
            return Err(bad("a number is missing"));
        }
        let unit_end = s
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(s.len());
        let unit = &s[..unit_end];
        s = &s[unit_end..];
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(bad("a unit is missing (ns, us, ms, s, m, h)")),
            other => return Err(bad(&format!("unknown unit {other:?}"))),
        };
        let whole: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad("too large"))?
        };
        let mut f: u128 = 0;
        let mut div: u128 = 1;
        for c in frac.chars().take(18) {
            f = f * 10 + u128::from(c.to_digit(10).unwrap_or(0));
            div *= 10;
        }
        total = whole
            .checked_mul(scale)
            .and_then(|w| w.checked_add(f * scale / div))
            .and_then(|w| w.checked_add(total))
            .filter(|&w| w <= u128::from(u64::MAX))
            .ok_or_else(|| bad("too large"))?;
    }
    let nanos = u64::try_from(total).map_err(|_| bad("too large"))?;
    Ok(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::RawModule;

    /// The one module of `yaml`, as TOML text checked to parse as a module.
    fn one(yaml: &str) -> toml::Table {
        let out = modules(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
        assert_eq!(out.len(), 1, "{yaml}");
        let text = &out[0].1;
        toml::from_str::<RawModule>(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        toml::from_str(text).unwrap()
    }

    /// The value at a dotted path of a table.
    fn at<'a>(t: &'a toml::Table, path: &str) -> Option<&'a Value> {
        let mut parts = path.split('.');
        let mut v = t.get(parts.next()?)?;
        for p in parts {
            v = v.as_table()?.get(p)?;
        }
        Some(v)
    }

    fn module(body: &str) -> String {
        format!(
            "modules:\n  m:\n{}",
            body.lines()
                .map(|l| format!("    {l}\n"))
                .collect::<String>()
        )
    }

    #[test]
    fn translates_each_supported_field() {
        let cases: &[(&str, &str, &str)] = &[
            ("prober: http", "prober", r#""http""#),
            ("prober: http\ntimeout: 5s", "timeout", r#""5s""#),
            ("prober: http\ntimeout: 1m30s", "timeout", r#""1m 30s""#),
            ("prober: http\ntimeout: 1.5s", "timeout", r#""1s 500ms""#),
            ("prober: http\ntimeout: 250ms", "timeout", r#""250ms""#),
            (
                "prober: http\nhttp:\n  valid_status_codes: [200, 301]",
                "expect.status",
                "[200, 301]",
            ),
            ("prober: http\nhttp:\n  method: POST", "method", r#""POST""#),
            (
                "prober: http\nhttp:\n  headers:\n    Accept: text/html",
                "headers.Accept",
                r#""text/html""#,
            ),
            (
                "prober: http\nhttp:\n  body: '{\"a\": 1}'",
                "body",
                r#""{\"a\": 1}""#,
            ),
            (
                "prober: http\nhttp:\n  no_follow_redirects: true",
                "max_redirects",
                "0",
            ),
            (
                "prober: http\nhttp:\n  follow_redirects: false",
                "max_redirects",
                "0",
            ),
            (
                "prober: http\nhttp:\n  fail_if_body_not_matches_regexp: ['ok\\s+']",
                "expect.body_regex",
                r#""ok\\s+""#,
            ),
            (
                "prober: http\nhttp:\n  tls_config:\n    insecure_skip_verify: true",
                "tls.insecure_skip_verify",
                "true",
            ),
            (
                "prober: http\nhttp:\n  tls_config:\n    ca_file: ca.pem",
                "tls.ca_file",
                r#""ca.pem""#,
            ),
            (
                "prober: http\nhttp:\n  preferred_ip_protocol: ip4\n  ip_protocol_fallback: false",
                "prober",
                r#""http""#,
            ),
            ("prober: tcp", "prober", r#""tcp""#),
            ("prober: tcp\ntcp:\n  tls: true", "tcp.tls", "true"),
            (
                "prober: tcp\ntcp:\n  tls: true\n  tls_config:\n    server_name: db.internal",
                "tls.server_name",
                r#""db.internal""#,
            ),
            (
                "prober: tcp\ntcp:\n  query_response:\n    - expect: '^\\+OK'\n    - send: PING",
                "tcp.query",
                r#"[{ expect = "^\\+OK" }, { send = "PING\n" }]"#,
            ),
            (
                "prober: tcp\ntcp:\n  query_response:\n    - expect: '^PING'\n      send: 'PONG $$'",
                "tcp.query",
                r#"[{ expect = "^PING" }, { send = "PONG $\n" }]"#,
            ),
            (
                "prober: tcp\ntcp:\n  query_response:\n    - send: 'cost $5'",
                "tcp.query",
                r#"[{ send = "cost $5\n" }]"#,
            ),
            (
                "prober: dns\ndns:\n  query_name: example.com\n  query_type: A",
                "dns.name",
                r#""example.com""#,
            ),
            (
                "prober: dns\ndns:\n  query_name: example.com\n  query_type: mx",
                "dns.type",
                r#""MX""#,
            ),
            (
                "prober: dns\ndns:\n  query_name: x.\n  query_type: A\n  transport_protocol: tcp",
                "dns.transport",
                r#""tcp""#,
            ),
            (
                "prober: dns\ndns:\n  query_name: x.\n  query_type: A\n  recursion_desired: false",
                "dns.recursion",
                "false",
            ),
            (
                "prober: dns\ndns:\n  query_name: x.\n  query_type: A\n  valid_rcodes: [NXDOMAIN]",
                "expect.rcode",
                r#""NXDOMAIN""#,
            ),
            (
                "prober: dns\ndns:\n  query_name: x.\n  query_type: A\n  validate_answer_rrs:\n    fail_if_matches_regexp: ['IN\\tA\\t10\\.']",
                "expect.answers_not",
                r#"["IN\\sA\\s10\\."]"#,
            ),
            (
                "prober: dns\ndns:\n  query_name: x.\n  query_type: A\n  validate_answer_rrs:\n    fail_if_none_matches_regexp: ['1\\.2']",
                "expect.answers",
                r#"["1\\.2"]"#,
            ),
            (
                "prober: dns\ndns:\n  query_name: x.\n  query_type: A\n  validate_answer_rrs:\n    fail_if_none_matches_regexp: [a, b]",
                "expect.answers",
                r#"["(?:a)|(?:b)"]"#,
            ),
            ("prober: grpc", "prober", r#""grpc""#),
            ("prober: grpc\ngrpc:\n  tls: true", "prober", r#""grpcs""#),
            (
                "prober: grpc\ngrpc:\n  service: models.v1",
                "grpc.service",
                r#""models.v1""#,
            ),
            (
                "prober: grpc\ngrpc:\n  tls: true\n  tls_config:\n    insecure_skip_verify: true",
                "tls.insecure_skip_verify",
                "true",
            ),
            ("prober: icmp", "prober", r#""icmp""#),
            (
                "prober: icmp\nicmp:\n  preferred_ip_protocol: ip4",
                "icmp.ip_version",
                "4",
            ),
            (
                "prober: icmp\nicmp:\n  preferred_ip_protocol: ip6",
                "icmp.ip_version",
                "6",
            ),
            (
                "prober: icmp\nicmp:\n  payload_size: 100",
                "icmp.payload_bytes",
                "100",
            ),
        ];
        for (body, path, want) in cases {
            let t = one(&module(body));
            let got = at(&t, path).unwrap_or_else(|| panic!("{body}: no {path} in {t}"));
            let want: Value =
                toml::from_str::<toml::Table>(&format!("v = {want}")).unwrap()["v"].clone();
            assert_eq!(got, &want, "{body}");
        }
    }

    #[test]
    fn defaults_add_nothing() {
        let t = one(&module("prober: http\nhttp:\n  valid_status_codes: []"));
        assert_eq!(t.len(), 1, "{t}");
        let t = one(&module(
            "prober: tcp\ntcp:\n  tls_config:\n    insecure_skip_verify: true",
        ));
        assert_eq!(
            t.len(),
            1,
            "tls_config without tls is ignored, as blackbox does: {t}"
        );
    }

    #[test]
    fn refusals_name_the_module_and_the_field() {
        let cases: &[(&str, &str)] = &[
            (
                "prober: http\nhttp:\n  compression: gzip",
                r#"module "m": http.compression is not supported by lookout's reader"#,
            ),
            (
                "prober: http\nbogus: 1",
                r#"module "m": bogus is not supported by lookout's reader"#,
            ),
            (
                "prober: http\nhttp:\n  tls_config:\n    cert_file: c.pem",
                r#"module "m": http.tls_config.cert_file is not supported"#,
            ),
            (
                "prober: unix",
                r#"module "m": prober "unix" is not supported"#,
            ),
            ("timeout: 5s", r#"module "m": prober is missing"#),
            (
                "prober: http\ntimeout: 5x",
                r#"module "m": timeout "5x" is not a Go duration"#,
            ),
            (
                "prober: http\nhttp:\n  fail_if_body_not_matches_regexp: [a, b]",
                "http.fail_if_body_not_matches_regexp lists more than one regex",
            ),
            (
                "prober: http\nhttp:\n  fail_if_body_matches_regexp: [a]",
                "http.fail_if_body_matches_regexp is not supported by lookout's reader: lookout's expect.body_not_contains takes literal text",
            ),
            (
                "prober: http\nhttp:\n  fail_if_header_not_matches:\n    - header: X\n      regexp: a",
                "http.fail_if_header_not_matches is not supported",
            ),
            (
                "prober: http\nhttp:\n  fail_if_header_matches:\n    - header: X\n      regexp: a",
                "http.fail_if_header_matches is not supported",
            ),
            (
                "prober: http\nhttp:\n  valid_http_versions: [HTTP/1.1]",
                "http.valid_http_versions is not supported",
            ),
            (
                "prober: http\nhttp:\n  fail_if_not_ssl: true",
                "http.fail_if_not_ssl is not supported",
            ),
            (
                "prober: http\nhttp:\n  tls_config:\n    server_name: x",
                "http.tls_config.server_name is not supported",
            ),
            (
                "prober: http\nhttp:\n  preferred_ip_protocol: ip5",
                r#"http.preferred_ip_protocol "ip5" is not ip4 or ip6"#,
            ),
            (
                "prober: http\nhttp:\n  headers:\n    X: '{{ x }}'",
                "http.headers.X holds {{",
            ),
            (
                "prober: tcp\ntcp:\n  query_response:\n    - starttls: true",
                "tcp.query_response[0].starttls is not supported",
            ),
            (
                "prober: tcp\ntcp:\n  query_response:\n    - expect: 'PING (.*)'\n      send: 'PONG ${1}'",
                "tcp.query_response[0].send uses the expect's capture groups",
            ),
            (
                "prober: tcp\ntcp:\n  query_response:\n    - send: 'AUTH {secret}'",
                "tcp.query_response[0].send holds {secret}",
            ),
            (
                "prober: tcp\ntcp:\n  query_response:\n    - expect_bytes: ab",
                "tcp.query_response[0].expect_bytes is not supported",
            ),
            (
                "prober: dns\ndns:\n  query_name: x.",
                "dns.query_type is missing: blackbox asks ANY by default",
            ),
            (
                "prober: dns\ndns:\n  query_type: A",
                "dns.query_name is missing",
            ),
            (
                "prober: dns\ndns:\n  query_name: x.\n  query_type: A\n  valid_rcodes: [NOERROR, NXDOMAIN]",
                "dns.valid_rcodes lists more than one code",
            ),
            (
                "prober: dns\ndns:\n  query_name: x.\n  query_type: A\n  validate_answer_rrs:\n    fail_if_not_matches_regexp: [a]",
                "dns.validate_answer_rrs.fail_if_not_matches_regexp is not supported",
            ),
            (
                "prober: dns\ndns:\n  query_name: x.\n  query_type: A\n  validate_answer_rrs:\n    fail_if_all_match_regexp: [a]",
                "dns.validate_answer_rrs.fail_if_all_match_regexp is not supported",
            ),
            (
                "prober: dns\ndns:\n  query_name: x.\n  query_type: A\n  validate_authority_rrs:\n    fail_if_matches_regexp: [a]",
                "dns.validate_authority_rrs is not supported",
            ),
            (
                "prober: dns\ndns:\n  query_name: x.\n  query_type: A\n  validate_additional_rrs: {}",
                "dns.validate_additional_rrs is not supported",
            ),
            (
                "prober: dns\ndns:\n  query_name: x.\n  query_type: A\n  transport_protocol: quic",
                r#"dns.transport_protocol "quic" is not udp or tcp"#,
            ),
            (
                "prober: dns\ndns:\n  query_name: x.\n  query_type: A\n  query_class: CH",
                r#"dns.query_class "CH" is not supported"#,
            ),
            (
                "prober: dns\ndns:\n  query_name: x.\n  query_type: A\n  dns_over_tls: true",
                "dns.dns_over_tls is not supported",
            ),
            (
                "prober: grpc\ngrpc:\n  metadata: {a: [b]}",
                "grpc.metadata is not supported",
            ),
            ("prober: icmp\nicmp:\n  ttl: 3", "icmp.ttl is not supported"),
            (
                "prober: icmp\nicmp:\n  dont_fragment: true",
                "icmp.dont_fragment is not supported",
            ),
            (
                "prober: icmp\nicmp:\n  source_ip_address: 10.0.0.1",
                "icmp.source_ip_address is not supported",
            ),
        ];
        for (body, want) in cases {
            let err = modules(&module(body)).expect_err(body);
            assert!(err.contains(want), "{body}:\n got {err}\nwant {want}");
            assert!(err.starts_with(r#"module "m": "#), "{err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn empty_modules() {
        assert!(modules("modules: {}\n").unwrap().is_empty());
        assert!(modules("modules:\n").unwrap().is_empty());
        assert!(modules("modules: []\n").is_err());
        assert!(
            modules("other: 1\n")
                .unwrap_err()
                .contains("unknown field `other`")
        );
    }

    #[test]
    fn keeps_the_file_order() {
        let yaml = "modules:\n  zeta:\n    prober: tcp\n  alpha:\n    prober: icmp\n  mid:\n    prober: http\n";
        let names: Vec<String> = modules(yaml).unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["zeta", "alpha", "mid"]);
    }

    #[test]
    fn aliases_are_bounded() {
        // Small aliases are fine.
        let yaml = "modules:\n  a: &m\n    prober: http\n  b: *m\n";
        assert_eq!(modules(yaml).unwrap().len(), 2);
        // A billion laughs.
        let mut yaml = String::from("x0: &x0 \"lol\"\n");
        for i in 1..=12 {
            let prev = format!("*x{}", i - 1);
            let list = vec![prev; 10].join(", ");
            yaml.push_str(&format!("x{i}: &x{i} [{list}]\n"));
        }
        yaml.push_str("modules:\n  m:\n    prober: tcp\n    tcp:\n      query_response: *x12\n");
        let err = modules(&yaml).unwrap_err();
        assert!(err.contains("expands"), "{err}");
        // One big string repeated.
        let big = "a".repeat(1 << 20);
        let mut yaml = format!(
            "modules:\n  m:\n    prober: tcp\n    tcp:\n      query_response:\n        - send: &s {big}\n"
        );
        for _ in 0..100 {
            yaml.push_str("        - send: *s\n");
        }
        let err = modules(&yaml).unwrap_err();
        assert!(err.contains("expands"), "{err}");
    }

    #[test]
    fn go_durations() {
        let ok = [
            ("0", 0),
            ("5s", 5_000),
            ("1m30s", 90_000),
            ("1.5s", 1_500),
            ("2h", 7_200_000),
            ("100ms", 100),
            ("1500us", 1),
        ];
        for (text, ms) in ok {
            assert_eq!(go_duration(text).unwrap().as_millis(), ms, "{text}");
        }
        for bad in ["", "5", "-1s", "1x", "s", "99999999999999999999h"] {
            assert!(go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loads_through_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("blackbox.yml"),
            "modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      valid_status_codes: [200]
      preferred_ip_protocol: ip4
  tcp_connect:
    prober: tcp
  dns_a:
    prober: dns
    dns:
      query_name: example.com
      query_type: A
      valid_rcodes: [NOERROR]
  icmp:
    prober: icmp
    icmp:
      preferred_ip_protocol: ip4
  grpc_plain:
    prober: grpc
    grpc:
      service: health
",
        )
        .unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "blackbox_config = \"blackbox.yml\"\n[store]\npath = \":memory:\"\n",
        )
        .unwrap();
        let config = crate::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        use crate::model::Kind;
        for (name, kind) in [
            ("http_2xx", Kind::Http),
            ("tcp_connect", Kind::Tcp),
            ("dns_a", Kind::Dns),
            ("icmp", Kind::Icmp),
            ("grpc_plain", Kind::Grpc),
        ] {
            let module = config
                .modules
                .get(name)
                .unwrap_or_else(|| panic!("no {name}"));
            assert_eq!(module.probe.kind(), kind, "{name}");
        }
    }
}
