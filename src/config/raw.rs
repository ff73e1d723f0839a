//! The config file exactly as written: serde structs with spans.
//!
//! Nothing outside `config` sees these types; `config::validate` turns them
//! into the validated `Config`. Values that need no templating are parsed
//! here, during deserialization, so a bad one is reported with the span and
//! the field path that toml and serde_path_to_error track for us.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, de};
use toml::Spanned;

use crate::model::StatusPattern;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub scheduler: RawScheduler,
    #[serde(default)]
    pub defaults: RawDefaults,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub cluster: RawCluster,
    #[serde(default)]
    pub view: RawView,
    #[serde(default)]
    pub secrets: BTreeMap<String, Spanned<SecretSource>>,
    #[serde(default)]
    pub checks: Vec<Spanned<RawCheck>>,
    #[serde(default)]
    pub flows: Vec<Spanned<RawFlow>>,
    /// Values for templates, in every templated field of checks and flows;
    /// `--var name=value` and `LOOKOUT_VAR_name` override them.
    #[serde(default)]
    pub vars: BTreeMap<String, Spanned<MatrixValue>>,
    /// `/probe?module=`: probe settings without a target.
    #[serde(default)]
    pub modules: BTreeMap<String, Spanned<RawModule>>,
    /// A blackbox_exporter config whose modules `/probe` serves too
    /// (relative to this file).
    pub blackbox_config: Option<Spanned<PathBuf>>,
}

/// A `/probe` module: a check without a name, a target or a schedule; the
/// scrape names the target. It carries no credential, since the target is
/// the scraper's to choose.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModule {
    /// `http`, `tcp`, `tls`, `dns`, `grpc`, `grpcs` or `icmp`.
    pub prober: Spanned<String>,
    pub timeout: Option<Spanned<HumanDuration>>,
    pub method: Option<Spanned<String>>,
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    pub body: Option<Spanned<String>>,
    pub max_body_bytes: Option<u64>,
    pub max_redirects: Option<u32>,
    pub tls: Option<Spanned<RawTls>>,
    pub expect: Option<Spanned<RawExpect>>,
    pub tcp: Option<Spanned<RawTcp>>,
    pub dns: Option<Spanned<RawDns>>,
    pub grpc: Option<Spanned<RawGrpc>>,
    pub icmp: Option<Spanned<RawIcmp>>,
    /// Refused with a reason (a module carries no credential).
    pub auth: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<Spanned<String>>,
    /// As in Prometheus' exporter-toolkit web config.
    pub tls_server_config: Option<Spanned<RawTlsServer>>,
    /// User name → bcrypt hash, as in exporter-toolkit.
    #[serde(default)]
    pub basic_auth_users: BTreeMap<String, Spanned<String>>,
    pub read_header_timeout: Option<Spanned<HumanDuration>>,
    pub max_connections: Option<Spanned<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTlsServer {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: Option<PathBuf>,
    pub client_auth_type: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawScheduler {
    pub max_concurrent_probes: Option<Spanned<usize>>,
    pub max_concurrent_per_target: Option<Spanned<usize>>,
    pub shutdown_grace: Option<HumanDuration>,
}

/// This instance's place among many: `lookout run --shard`, `--location`
/// and `--replica` override these.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// `"i/n"`, counted from 0.
    pub shard: Option<Spanned<String>>,
    /// With no `shard`: the index comes from the pod's name (`lookout-2`).
    pub shard_count: Option<Spanned<u32>>,
    pub location: Option<Spanned<String>>,
    pub replica: Option<Spanned<String>>,
}

/// `lookout view`: the fleet's picture from Prometheus.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawView {
    /// The Prometheus (or Thanos Query, Mimir, …) HTTP API's base URL.
    pub prometheus: Option<Spanned<String>>,
    /// Where `lookout view` listens, instead of `[server] listen`.
    pub listen: Option<Spanned<String>>,
    pub refresh: Option<Spanned<HumanDuration>>,
    pub timeout: Option<Spanned<HumanDuration>>,
}

/// The history database.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// A file (relative to the config file) or `:memory:`.
    pub path: Option<Spanned<String>>,
    pub retention: Option<Spanned<HumanDuration>>,
    pub keep_results: Option<Spanned<usize>>,
}

/// Settings a check inherits unless it sets its own.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    pub schedule: Option<Spanned<CronText>>,
    pub interval: Option<Spanned<HumanDuration>>,
    pub timezone: Option<Spanned<String>>,
    pub timeout: Option<Spanned<HumanDuration>>,
    pub max_body_bytes: Option<u64>,
    pub max_redirects: Option<u32>,
    pub group: Option<String>,
    pub tls: Option<Spanned<RawTls>>,
    /// Joined to every check's and step's URL that starts with `/`.
    /// Templated with `[vars]`.
    pub base_url: Option<Spanned<String>>,
    /// For every HTTP check and flow step that sets none of its own.
    pub auth: Option<Spanned<RawAuth>>,
    /// Sent by every HTTP check and flow step; their own header of the
    /// same name wins. Templated.
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    /// For every check that sets no `expect` of its own (whole, not merged).
    pub expect: Option<Spanned<RawExpect>>,
    /// Run once when the daemon starts (or the check appears in a
    /// reload), staggered, then on the schedule.
    pub run_at_start: Option<bool>,
    /// Consecutive failing runs before a passing check turns failing.
    pub failure_threshold: Option<Spanned<u32>>,
    /// Consecutive passing runs before a failing check turns passing.
    pub success_threshold: Option<Spanned<u32>>,
}

/// `{ env = "VAR" }` or `{ file = "path" }`, and optionally
/// `expires = "RFC 3339"` for a key that is not a JWT.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    pub env: Option<String>,
    pub file: Option<PathBuf>,
    pub expires: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    pub name: Spanned<String>,
    pub group: Option<String>,
    pub url: Spanned<String>,
    pub method: Option<Spanned<String>>,
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    pub body: Option<Spanned<String>>,
    pub json: Option<Spanned<serde_json::Value>>,
    pub auth: Option<Spanned<RawAuth>>,
    pub schedule: Option<Spanned<CronText>>,
    pub interval: Option<Spanned<HumanDuration>>,
    pub timezone: Option<Spanned<String>>,
    pub timeout: Option<Spanned<HumanDuration>>,
    pub max_body_bytes: Option<u64>,
    pub max_redirects: Option<u32>,
    pub tls: Option<Spanned<RawTls>>,
    #[serde(default)]
    pub matrix: BTreeMap<String, Vec<MatrixValue>>,
    /// Several routes to one service, name → URL the check's path is
    /// joined to; compared in the order written (their spans keep it).
    #[serde(default)]
    pub routes: BTreeMap<String, Spanned<String>>,
    pub expect: Option<Spanned<RawExpect>>,
    /// The settings of the kinds beyond HTTP (the URL's scheme picks the kind).
    pub tcp: Option<Spanned<RawTcp>>,
    pub dns: Option<Spanned<RawDns>>,
    pub grpc: Option<Spanned<RawGrpc>>,
    pub icmp: Option<Spanned<RawIcmp>>,
    /// Run only from these locations (`[cluster] location`); everywhere when absent.
    pub locations: Option<Spanned<Vec<String>>>,
    /// Values for this check's templates, over `[vars]`.
    #[serde(default)]
    pub vars: BTreeMap<String, Spanned<MatrixValue>>,
    /// Run once when the daemon starts (or the check appears in a
    /// reload), staggered, then on the schedule.
    pub run_at_start: Option<bool>,
    /// Consecutive failing runs before a passing check turns failing.
    pub failure_threshold: Option<Spanned<u32>>,
    /// Consecutive passing runs before a failing check turns passing.
    pub success_threshold: Option<Spanned<u32>>,
    /// Send the request this many times in a row, as a burst (HTTP only).
    pub repeat: Option<Spanned<u32>>,
    /// The burst must take at most this long (needs `repeat`).
    pub within: Option<Spanned<HumanDuration>>,
}

/// A multi-step flow: steps run in order on one run's variables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlow {
    pub name: Spanned<String>,
    pub group: Option<String>,
    pub schedule: Option<Spanned<CronText>>,
    pub interval: Option<Spanned<HumanDuration>>,
    pub timezone: Option<Spanned<String>>,
    /// Bounds the main steps together; cleanup steps have only their own.
    pub timeout: Option<Spanned<HumanDuration>>,
    /// Defaults for every step.
    pub auth: Option<Spanned<RawAuth>>,
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    pub tls: Option<Spanned<RawTls>>,
    /// Fixed values for templates, known when the config loads.
    #[serde(default)]
    pub vars: BTreeMap<String, Spanned<MatrixValue>>,
    /// One flow per combination, named `name[key=value,…]`; the values are
    /// variables of its steps.
    #[serde(default)]
    pub matrix: BTreeMap<String, Vec<MatrixValue>>,
    pub steps: Spanned<Vec<Spanned<RawStep>>>,
    #[serde(default)]
    pub cleanup: Vec<Spanned<RawStep>>,
    /// Run only from these locations; everywhere when absent.
    pub locations: Option<Spanned<Vec<String>>>,
    /// Run once when the daemon starts (or the check appears in a
    /// reload), staggered, then on the schedule.
    pub run_at_start: Option<bool>,
    /// Consecutive failing runs before a passing check turns failing.
    pub failure_threshold: Option<Spanned<u32>>,
    /// Consecutive passing runs before a failing check turns passing.
    pub success_threshold: Option<Spanned<u32>>,
}

/// One request of a flow: a check without a schedule, plus captures.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub name: Spanned<String>,
    pub url: Spanned<String>,
    pub method: Option<Spanned<String>>,
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    pub body: Option<Spanned<String>>,
    pub json: Option<Spanned<serde_json::Value>>,
    pub auth: Option<Spanned<RawAuth>>,
    pub timeout: Option<Spanned<HumanDuration>>,
    pub max_body_bytes: Option<u64>,
    pub max_redirects: Option<u32>,
    pub expect: Option<Spanned<RawExpect>>,
    #[serde(default)]
    pub capture: BTreeMap<String, Spanned<RawCapture>>,
    /// As a check's: the step's request sent as a burst.
    pub repeat: Option<Spanned<u32>>,
    pub within: Option<Spanned<HumanDuration>>,
}

/// `"/json/pointer"`, `{ pointer = "/x" }` or `{ header = "Location" }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawCapture {
    Pointer(String),
    Table(RawCaptureTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCaptureTable {
    pub pointer: Option<String>,
    pub header: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    ApiKey,
    Bearer,
    Basic,
    Query,
    OAuth2ClientCredentials,
    None,
}

impl AuthScheme {
    pub const NAMES: [(&'static str, AuthScheme); 6] = [
        ("api_key", AuthScheme::ApiKey),
        ("bearer", AuthScheme::Bearer),
        ("basic", AuthScheme::Basic),
        ("query", AuthScheme::Query),
        (
            "oauth2_client_credentials",
            AuthScheme::OAuth2ClientCredentials,
        ),
        ("none", AuthScheme::None),
    ];

    pub fn parse(text: &str) -> Option<AuthScheme> {
        AuthScheme::NAMES
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, s)| *s)
    }
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// `api_key`, `bearer`, `basic`, `query` or `none`; in a check, a
    /// template (a matrix over the scheme).
    pub scheme: Spanned<String>,
    /// Header name for `api_key` (default `X-API-Key`).
    pub header: Option<String>,
    /// Query parameter name for `query` (default `api_key`).
    pub param: Option<String>,
    /// User name for `basic`.
    pub username: Option<String>,
    /// Name of an entry in `[secrets]`.
    pub secret: Option<String>,
    /// A literal credential, for deliberately wrong or expired keys.
    pub value: Option<String>,
    /// `oauth2_client_credentials`: the token endpoint.
    pub token_url: Option<Spanned<String>>,
    /// `oauth2_client_credentials`: the client's id (its secret is `secret`).
    pub client_id: Option<String>,
    /// `oauth2_client_credentials`: the scopes asked for.
    pub scopes: Option<Vec<String>>,
    /// `oauth2_client_credentials`: the `audience` form parameter.
    pub audience: Option<String>,
    /// `oauth2_client_credentials`: `basic` (default) or `body`.
    pub client_auth: Option<Spanned<String>>,
    /// Refused with a pointer to `secret` (the name the issue used).
    pub client_secret: Option<toml::Value>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// The name sent in SNI and verified (tcp, tls and grpcs checks; the
    /// URL's host when absent).
    pub server_name: Option<String>,
}

/// `tcp = { … }` on a `tcp://` check.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawTcp {
    /// TLS on top of the connection (`[tls]` settings apply).
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub query: Vec<Spanned<RawQueryStep>>,
    pub max_read_bytes: Option<usize>,
}

/// One step of a TCP dialogue: `{ send = "PING\r\n" }`, `{ expect = "^\\+PONG" }`,
/// or `{ send = "AUTH {secret}\r\n", secret = "redis" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueryStep {
    pub send: Option<String>,
    pub expect: Option<BodyRegex>,
    /// A `[secrets]` entry whose value replaces `{secret}` in `send`.
    pub secret: Option<String>,
}

/// `dns = { … }` on a `dns://` check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    pub name: Spanned<String>,
    #[serde(rename = "type")]
    pub record_type: Option<Spanned<String>>,
    pub transport: Option<Spanned<String>>,
    pub recursion: Option<bool>,
}

/// `grpc = { … }` on a `grpc://` or `grpcs://` check.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawGrpc {
    pub service: Option<String>,
}

/// `icmp = { … }` on an `icmp://` check.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawIcmp {
    pub count: Option<Spanned<u32>>,
    pub interval: Option<HumanDuration>,
    pub payload_bytes: Option<Spanned<usize>>,
    pub ip_version: Option<Spanned<u8>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    pub status: Option<Vec<StatusPattern>>,
    pub max_latency: Option<HumanDuration>,
    #[serde(default)]
    pub body_contains: Vec<String>,
    #[serde(default)]
    pub body_not_contains: Vec<String>,
    pub body_regex: Option<BodyRegex>,
    #[serde(default)]
    pub json: Vec<RawJsonExpect>,
    #[serde(default)]
    pub headers: Vec<RawHeaderExpect>,
    pub www_authenticate: Option<RawChallenge>,
    pub retry_after: Option<RawRetryAfter>,
    /// With `repeat`: one status pattern (or list) per answer, in order.
    pub sequence: Option<Vec<StatusList>>,
    /// With `repeat`: at least one answer matches.
    pub any_status: Option<StatusList>,
    // Certificates (https, tcp with tls, tls, grpcs).
    pub cert_valid_for: Option<HumanDuration>,
    pub min_tls_version: Option<String>,
    pub issuer: Option<BodyRegex>,
    #[serde(default)]
    pub san: Vec<String>,
    // DNS.
    pub rcode: Option<String>,
    #[serde(default)]
    pub answers: Vec<BodyRegex>,
    #[serde(default)]
    pub answers_not: Vec<BodyRegex>,
    pub min_answers: Option<usize>,
    // ICMP: `"20%"`.
    pub max_loss: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJsonExpect {
    pub pointer: String,
    pub equals: Option<serde_json::Value>,
    pub not_equals: Option<serde_json::Value>,
    pub exists: Option<bool>,
    pub lt: Option<f64>,
    pub le: Option<f64>,
    pub gt: Option<f64>,
    pub ge: Option<f64>,
    pub matches: Option<BodyRegex>,
    pub length: Option<usize>,
    pub contains: Option<serde_json::Value>,
    #[serde(rename = "type")]
    pub json_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChallenge {
    pub scheme: String,
    pub realm: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRetryAfter {
    pub max: Option<HumanDuration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaderExpect {
    pub name: String,
    pub equals: Option<String>,
    pub contains: Option<String>,
    pub exists: Option<bool>,
    pub matches: Option<BodyRegex>,
}

/// Status patterns as `expect.status` takes them, or one of them alone:
/// `429`, `"2xx"`, `[200, 204]`.
#[derive(Debug, Clone)]
pub struct StatusList(pub Vec<StatusPattern>);

impl<'de> Deserialize<'de> for StatusList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let pattern = |v: toml::Value| match v {
            toml::Value::Integer(c) => StatusPattern::parse(&c.to_string()),
            toml::Value::String(t) => StatusPattern::parse(&t),
            _ => Err("a status pattern is a number or a string".to_owned()),
        };
        let patterns = match toml::Value::deserialize(d)? {
            toml::Value::Array(items) => items.into_iter().map(pattern).collect(),
            one => pattern(one).map(|p| vec![p]),
        };
        patterns.map(StatusList).map_err(de::Error::custom)
    }
}

/// A matrix value: strings, integers and booleans are all templated as text.
#[derive(Debug, Clone)]
pub struct MatrixValue(pub String);

impl<'de> Deserialize<'de> for MatrixValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Scalar {
            S(String),
            I(i64),
            B(bool),
        }
        match Scalar::deserialize(d) {
            Ok(Scalar::S(s)) => Ok(MatrixValue(s)),
            Ok(Scalar::I(i)) => Ok(MatrixValue(i.to_string())),
            Ok(Scalar::B(b)) => Ok(MatrixValue(b.to_string())),
            Err(_) => Err(de::Error::custom(
                "matrix values must be strings, integers or booleans",
            )),
        }
    }
}

/// A duration such as `500ms`, `10s` or `1m 30s` (humantime syntax).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

/// The longest duration any setting takes.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match humantime::parse_duration(&text) {
            Ok(d) if d.is_zero() => Err(de::Error::custom(format!(
                "invalid duration {text:?}: must be greater than zero"
            ))),
            // Far beyond any sensible setting, and far from where adding it
            // to a clock or a timestamp overflows.
            Ok(d) if d > MAX_DURATION => Err(de::Error::custom(format!(
                "invalid duration {text:?}: must be at most 100 years"
            ))),
            Ok(d) => Ok(HumanDuration(d)),
            Err(e) => Err(de::Error::custom(format!(
                "invalid duration {text:?}: {e} (examples: \"500ms\", \"10s\", \"1m\")"
            ))),
        }
    }
}

/// A cron expression, checked when read; see `schedule::CronSpec`.
#[derive(Debug, Clone)]
pub struct CronText(pub crate::schedule::CronSpec);

impl<'de> Deserialize<'de> for CronText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        crate::schedule::CronSpec::parse(&text)
            .map(CronText)
            .map_err(de::Error::custom)
    }
}

/// A regular expression, compiled when read.
#[derive(Debug, Clone)]
pub struct BodyRegex(pub regex::Regex);

impl<'de> Deserialize<'de> for BodyRegex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        regex::RegexBuilder::new(&text)
            .size_limit(1 << 20)
            .build()
            .map(BodyRegex)
            .map_err(|e| de::Error::custom(format!("invalid regex: {e}")))
    }
}
