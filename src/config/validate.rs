//! Raw config → validated `Config`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use toml::Spanned;
use url::Url;

use super::error::LineIndex;
use super::raw::{
    AuthScheme, RawAuth, RawCheck, RawConfig, RawDefaults, RawExpect, RawTls, SecretSource,
};
use super::*;
use crate::file;
use crate::model::{HeaderCheck, HeaderExpect, JsonCheck, JsonExpect, StatusMatcher};
use crate::schedule::Schedule;
use crate::secret::{Redactor, Secret, SecretOrigin};
use crate::template::{Templater, Vars};

/// The most checks one matrix may expand into.
const MAX_MATRIX_EXPANSION: usize = 10_000;
/// The longest check, flow or step name, in characters (not bytes: a name
/// in Greek or Japanese gets as many letters as one in English).
pub(super) const MAX_NAME_LEN: usize = 200;

/// Whether `name` (trimmed) is a usable check, flow or step name.
pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().count() <= MAX_NAME_LEN && !name.chars().any(char::is_control)
}

pub(super) struct Ctx<'a> {
    file: String,
    source: &'a str,
    /// Built once per load: placing an offset must not scan the file.
    lines: LineIndex<'a>,
    dir: &'a Path,
}

impl Ctx<'_> {
    pub(super) fn err(
        &self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            location: self.lines.location(&self.file, span.start),
            field: field.into(),
            message: message.into(),
        }
    }

    /// The 1-based line of a byte offset.
    fn line(&self, offset: usize) -> usize {
        self.lines.line(offset)
    }
}

pub(super) fn validate(
    source: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    overrides: &ClusterOverrides,
) -> Result<Config, ConfigError> {
    let ctx = Ctx {
        file: path.display().to_string(),
        source,
        lines: LineIndex::new(source),
        dir: path.parent().unwrap_or(Path::new(".")),
    };
    let raw = parse(&ctx)?;

    let listen = match &raw.server.listen {
        None => DEFAULT_LISTEN
            .parse()
            .expect("the default listen address parses"),
        Some(l) => SocketAddr::from_str(l.get_ref()).map_err(|e| {
            ctx.err(
                l.span(),
                "server.listen",
                format!(
                    "invalid address {:?}: {e} (expected host:port, e.g. \"127.0.0.1:9898\")",
                    l.get_ref()
                ),
            )
        })?,
    };
    let max_concurrent_probes = limit(
        &ctx,
        raw.scheduler.max_concurrent_probes.as_ref(),
        "scheduler.max_concurrent_probes",
        DEFAULT_MAX_CONCURRENT_PROBES,
    )?;
    let max_concurrent_per_target = limit(
        &ctx,
        raw.scheduler.max_concurrent_per_target.as_ref(),
        "scheduler.max_concurrent_per_target",
        DEFAULT_MAX_CONCURRENT_PER_TARGET,
    )?;
    let shutdown_grace = raw
        .scheduler
        .shutdown_grace
        .map_or(DEFAULT_SHUTDOWN_GRACE, |d| d.0);

    let cluster = cluster(&ctx, &raw.cluster, overrides, env)?;
    let view = view_settings(&ctx, &raw.view)?;
    let max_concurrent_per_target = share(max_concurrent_per_target, cluster.shard);
    let store = store_settings(&ctx, &raw.store, &cluster)?;
    let server = server_settings(&ctx, &raw.server)?;
    let secrets = load_secrets(&ctx, &raw.secrets, env)?;
    let templater = Templater::default();
    let mut tls_profiles: Vec<TlsSettings> = Vec::new();
    let mut checks: Vec<Arc<Check>> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut redactable = Redactable::default();
    let mut total = Totals::default();

    for (index, raw_check) in raw.checks.iter().enumerate() {
        let field = format!("checks[{index}]");
        let expanded = expand_check(
            &ctx,
            &field,
            raw_check,
            &raw.defaults,
            &secrets,
            &templater,
            &mut tls_profiles,
        )?;
        let here = runs_here(
            &ctx,
            &field,
            raw_check.get_ref().locations.as_ref(),
            &cluster,
        )?;
        for mut check in expanded {
            total.checks += 1;
            check.id = checks.len();
            if let Some(first) = seen.get(&check.name) {
                return Err(ctx.err(
                    raw_check.get_ref().name.span(),
                    format!("{field}.name"),
                    format!(
                        "duplicate check name {:?} (first defined at line {first})",
                        check.name
                    ),
                ));
            }
            let line = ctx.line(raw_check.get_ref().name.span().start);
            seen.insert(check.name.clone(), line);
            redactable.note(&check.request.auth);
            // Every check is validated, whichever instance runs it.
            if here
                && cluster
                    .shard
                    .owns(&crate::cluster::check_identity(&check.name))
            {
                checks.push(Arc::new(check));
            }
        }
    }

    let mut flows: Vec<Arc<Flow>> = Vec::new();
    let flow_env = super::flow::FlowEnv {
        defaults: &raw.defaults,
        secrets: &secrets,
        templater: &templater,
    };
    for (index, spanned) in raw.flows.iter().enumerate() {
        let field = format!("flows[{index}]");
        let raw_flow = spanned.get_ref();
        let mut flow = super::flow::flow(&ctx, &field, raw_flow, &flow_env, &mut tls_profiles)?;
        if let Some(first) = seen.get(&flow.name) {
            return Err(ctx.err(
                raw_flow.name.span(),
                format!("{field}.name"),
                format!(
                    "duplicate name {:?} (first defined at line {first}); checks and flows share one name space",
                    flow.name
                ),
            ));
        }
        let line = ctx.line(raw_flow.name.span().start);
        seen.insert(flow.name.clone(), line);
        for step in flow.steps.iter().chain(&flow.cleanup) {
            redactable.note(&step.request.auth);
        }
        total.flows += 1;
        let here = runs_here(&ctx, &field, raw_flow.locations.as_ref(), &cluster)?;
        if here
            && cluster
                .shard
                .owns(&crate::cluster::flow_identity(&flow.name))
        {
            flow.id = flows.len();
            flows.push(Arc::new(flow));
        }
    }

    let redactor = Redactor::new(
        secrets.values().chain(redactable.literal_secrets.iter()),
        redactable.basic_pairs.iter().map(|(u, s)| (u.as_str(), s)),
    );
    Ok(Config {
        source: path.to_path_buf(),
        listen,
        server,
        max_concurrent_probes,
        max_concurrent_per_target,
        shutdown_grace,
        checks,
        flows,
        tls_profiles,
        redactor,
        store,
        cluster,
        total,
        overrides: overrides.clone(),
        view,
    })
}

fn view_settings(ctx: &Ctx<'_>, raw: &super::raw::RawView) -> Result<ViewSettings, ConfigError> {
    let prometheus = match &raw.prometheus {
        None => None,
        Some(text) => Some(
            prometheus_url(text.get_ref())
                .map_err(|why| ctx.err(text.span(), "view.prometheus", why))?,
        ),
    };
    let listen = match &raw.listen {
        None => None,
        Some(l) => Some(SocketAddr::from_str(l.get_ref()).map_err(|e| {
            ctx.err(
                l.span(),
                "view.listen",
                format!("invalid address {:?}: {e}", l.get_ref()),
            )
        })?),
    };
    let within = |d: &Option<toml::Spanned<super::raw::HumanDuration>>,
                  field: &str,
                  default: Duration|
     -> Result<Duration, ConfigError> {
        match d {
            None => Ok(default),
            Some(d)
                if !(Duration::from_secs(1)..=Duration::from_secs(3600))
                    .contains(&d.get_ref().0) =>
            {
                Err(ctx.err(d.span(), field, "must be between 1s and 1h"))
            }
            Some(d) => Ok(d.get_ref().0),
        }
    };
    Ok(ViewSettings {
        prometheus,
        listen,
        refresh: within(&raw.refresh, "view.refresh", DEFAULT_VIEW_REFRESH)?,
        timeout: within(&raw.timeout, "view.timeout", DEFAULT_VIEW_TIMEOUT)?,
    })
}

/// A Prometheus HTTP API base URL: http or https, a host, no credentials
/// in it (they would show in errors and on the page).
pub fn prometheus_url(text: &str) -> Result<Url, String> {
    // Quoted without what may be a password: `https://u:…@host`.
    let shown = match (text.find("://"), text.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}…{}", &text[..scheme + 3], &text[at..])
        }
        _ => text.to_owned(),
    };
    let url = Url::parse(text).map_err(|e| format!("invalid URL {shown:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "{shown:?} is not an http:// or https:// URL with a host"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL must not hold credentials".to_owned());
    }
    Ok(url)
}

/// The longest location or replica name.
const MAX_PLACE_NAME: usize = 63;

/// `[cluster]` with the command line over it. The shard comes from
/// `--shard`, else `shard`, else the pod's name (`POD_NAME`, else
/// `HOSTNAME`) with a shard count; none of those: the only shard.
fn cluster(
    ctx: &Ctx<'_>,
    raw: &super::raw::RawCluster,
    overrides: &ClusterOverrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Cluster, ConfigError> {
    // Where a bad value came from: the file (file:line:col and the field)
    // or the command line (the option).
    let bad =
        |at: Option<std::ops::Range<usize>>, field: &str, option: &str, message: String| match at {
            Some(span) => ctx.err(span, field, message),
            None => ConfigError::Option {
                option: option.to_owned(),
                message,
            },
        };
    let from_pod = |count: u32, at: Option<std::ops::Range<usize>>| {
        let name = env("POD_NAME")
            .or_else(|| env("HOSTNAME"))
            .unwrap_or_default();
        Shard::from_pod_name(&name, count)
            .map_err(|e| bad(at, "cluster.shard_count", "--shard-count", e.to_string()))
    };
    let shard = match (overrides.shard, overrides.shard_count) {
        (Some(shard), _) => shard,
        (None, Some(count)) => from_pod(count, None)?,
        (None, None) => match (&raw.shard, &raw.shard_count) {
            (Some(text), _) => text
                .get_ref()
                .parse::<Shard>()
                .map_err(|e| ctx.err(text.span(), "cluster.shard", e.to_string()))?,
            (None, Some(count)) => from_pod(*count.get_ref(), Some(count.span()))?,
            (None, None) => Shard::ALL,
        },
    };
    let place = |given: &Option<String>,
                 raw: &Option<toml::Spanned<String>>,
                 field: &str|
     -> Result<Option<String>, ConfigError> {
        let (value, at) = match (given, raw) {
            (Some(v), _) => (v.clone(), None),
            (None, Some(v)) => (v.get_ref().clone(), Some(v.span())),
            (None, None) => return Ok(None),
        };
        let what = field.trim_start_matches("cluster.");
        if !place_name(&value) {
            return Err(bad(
                at,
                field,
                &format!("--{what}"),
                format!(
                    "{value:?} is not a {what} name: 1 to {MAX_PLACE_NAME} letters, digits, \
                     '-', '_' or '.', starting with a letter or digit"
                ),
            ));
        }
        Ok(Some(value))
    };
    let location = place(&overrides.location, &raw.location, "cluster.location")?;
    let replica = place(&overrides.replica, &raw.replica, "cluster.replica")?;
    if overrides.whole_file {
        return Ok(Cluster::default());
    }
    Ok(Cluster {
        shard,
        location,
        replica,
    })
}

/// Shard `i`'s part of a limit that the `n` shards of one location share:
/// `limit / n`, plus one for the first `limit % n` shards, so the parts add
/// up to the limit; at least one, so when the limit is below `n` the
/// shards together may use `n`.
fn share(limit: usize, shard: Shard) -> usize {
    let (n, i) = (shard.count() as usize, shard.index() as usize);
    (limit / n + usize::from(i < limit % n)).max(1)
}

/// A location or replica name: it names files and Prometheus label values.
fn place_name(s: &str) -> bool {
    s.len() <= MAX_PLACE_NAME
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Whether a check or flow with these `locations` runs on this instance:
/// everywhere when it names none; on an instance with no location, always
/// (one instance runs everything); otherwise where its list names this
/// instance's location.
fn runs_here(
    ctx: &Ctx<'_>,
    field: &str,
    locations: Option<&toml::Spanned<Vec<String>>>,
    cluster: &Cluster,
) -> Result<bool, ConfigError> {
    let Some(list) = locations else {
        return Ok(true);
    };
    let everywhere = cluster.location.is_none();
    if list.get_ref().is_empty() {
        return Err(ctx.err(
            list.span(),
            format!("{field}.locations"),
            "an empty list runs nowhere: leave `locations` out to run everywhere",
        ));
    }
    if let Some(bad) = list.get_ref().iter().find(|l| !place_name(l)) {
        return Err(ctx.err(
            list.span(),
            format!("{field}.locations"),
            format!("{bad:?} is not a location name: letters, digits, '-', '_' or '.'"),
        ));
    }
    Ok(everywhere
        || cluster
            .location
            .as_ref()
            .is_some_and(|here| list.get_ref().contains(here)))
}

/// A limit counted in connections or probes: at least 1, and at most
/// [`MAX_LIMIT`] (a semaphore takes no more than `usize::MAX >> 3`, and
/// no machine runs a million probes at once).
fn limit(
    ctx: &Ctx<'_>,
    raw: Option<&Spanned<usize>>,
    field: &str,
    default: usize,
) -> Result<usize, ConfigError> {
    match raw {
        None => Ok(default),
        Some(n) if !(1..=MAX_LIMIT).contains(n.get_ref()) => Err(ctx.err(
            n.span(),
            field,
            format!("must be between 1 and {MAX_LIMIT}"),
        )),
        Some(n) => Ok(*n.get_ref()),
    }
}

const MAX_LIMIT: usize = 1_000_000;
/// The costs the bcrypt crate hashes and verifies with.
const BCRYPT_COSTS: std::ops::RangeInclusive<u32> = 4..=31;
const MIN_READ_HEADER_TIMEOUT: Duration = Duration::from_millis(100);
const MAX_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(3600);

fn server_settings(
    ctx: &Ctx<'_>,
    raw: &super::raw::RawServer,
) -> Result<ServerSettings, ConfigError> {
    let mut users = BTreeMap::new();
    for (user, hash) in &raw.basic_auth_users {
        let field = format!("server.basic_auth_users.{user}");
        match hash.get_ref().parse::<bcrypt::HashParts>() {
            Err(_) => {
                return Err(ctx.err(
                    hash.span(),
                    field,
                    "not a bcrypt hash (make one with `lookout hash-password`)",
                ));
            }
            // The parser takes any cost, bcrypt itself only these: a hash
            // outside them could never match.
            Ok(parts) if !BCRYPT_COSTS.contains(&parts.get_cost()) => {
                return Err(ctx.err(
                    hash.span(),
                    field,
                    format!(
                        "bcrypt cost {} is outside {}..={}",
                        parts.get_cost(),
                        BCRYPT_COSTS.start(),
                        BCRYPT_COSTS.end()
                    ),
                ));
            }
            Ok(_) => {}
        }
        users.insert(user.clone(), hash.get_ref().clone());
    }
    let tls = match &raw.tls_server_config {
        None => None,
        Some(t) => Some(Arc::new(server_tls(ctx, t)?)),
    };
    let read_header_timeout = match &raw.read_header_timeout {
        None => DEFAULT_READ_HEADER_TIMEOUT,
        Some(t)
            if !(MIN_READ_HEADER_TIMEOUT..=MAX_READ_HEADER_TIMEOUT).contains(&t.get_ref().0) =>
        {
            return Err(ctx.err(
                t.span(),
                "server.read_header_timeout",
                "must be between 100ms and 1h",
            ));
        }
        Some(t) => t.get_ref().0,
    };
    let max_connections = limit(
        ctx,
        raw.max_connections.as_ref(),
        "server.max_connections",
        DEFAULT_MAX_CONNECTIONS,
    )?;
    Ok(ServerSettings {
        tls,
        basic_auth_users: users,
        read_header_timeout,
        max_connections,
    })
}

/// exporter-toolkit's `tls_server_config`: a certificate and key, and for
/// mTLS a client CA with `client_auth_type`.
fn server_tls(
    ctx: &Ctx<'_>,
    spanned: &Spanned<super::raw::RawTlsServer>,
) -> Result<rustls::ServerConfig, ConfigError> {
    use rustls::pki_types::PrivateKeyDer;
    let t = spanned.get_ref();
    let err = |what: &str, msg: String| {
        ctx.err(
            spanned.span(),
            format!("server.tls_server_config.{what}"),
            msg,
        )
    };
    let certs: Vec<CertificateDer<'static>> = {
        let path = ctx.dir.join(&t.cert_file);
        let pem = file::read(&path, file::Kind::Pem)
            .map_err(|e| err("cert_file", format!("cannot read {}: {e}", path.display())))?;
        CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| {
                err(
                    "cert_file",
                    format!("{} is not valid PEM: {e}", path.display()),
                )
            })?
    };
    if certs.is_empty() {
        return Err(err("cert_file", "holds no certificate".into()));
    }
    let key = {
        let path = ctx.dir.join(&t.key_file);
        let pem = file::read(&path, file::Kind::Pem)
            .map_err(|e| err("key_file", format!("cannot read {}: {e}", path.display())))?;
        PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
            err(
                "key_file",
                format!("cannot read a private key from {}: {e}", path.display()),
            )
        })?
    };
    let auth_type = t
        .client_auth_type
        .as_deref()
        .unwrap_or(match t.client_ca_file {
            Some(_) => "RequireAndVerifyClientCert",
            None => "NoClientCert",
        });
    // The provider named, not the process default: nothing installs one.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| err("cert_file", format!("TLS setup failed: {e}")))?;
    let builder = match (auth_type, &t.client_ca_file) {
        ("NoClientCert", _) => builder.with_no_client_auth(),
        (kind @ ("RequireAndVerifyClientCert" | "VerifyClientCertIfGiven"), Some(ca)) => {
            let path = ctx.dir.join(ca);
            let mut roots = rustls::RootCertStore::empty();
            let pem = file::read(&path, file::Kind::Pem).map_err(|e| {
                err(
                    "client_ca_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    err(
                        "client_ca_file",
                        format!("{} is not valid PEM: {e}", path.display()),
                    )
                })?;
                roots
                    .add(cert)
                    .map_err(|e| err("client_ca_file", format!("bad CA certificate: {e}")))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let verifier = if kind == "VerifyClientCertIfGiven" {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| {
                err(
                    "client_ca_file",
                    format!("cannot verify clients with it: {e}"),
                )
            })?)
        }
        ("RequireAndVerifyClientCert" | "VerifyClientCertIfGiven", None) => {
            return Err(err(
                "client_auth_type",
                format!("{auth_type:?} needs client_ca_file"),
            ));
        }
        (other, _) => {
            return Err(err(
                "client_auth_type",
                format!(
                    "{other:?} is not supported (use NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert)"
                ),
            ));
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        err(
            "key_file",
            format!("the key does not fit the certificate: {e}"),
        )
    })?;
    // The listener speaks HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn store_settings(
    ctx: &Ctx<'_>,
    raw: &super::raw::RawStore,
    cluster: &Cluster,
) -> Result<crate::store::StoreSettings, ConfigError> {
    use crate::store::{StorePath, StoreSettings};
    let path = match &raw.path {
        None => StorePath::File(per_instance(&ctx.dir.join(DEFAULT_STORE_PATH), cluster)),
        Some(p) if p.get_ref() == ":memory:" => StorePath::Memory,
        Some(p) if p.get_ref().trim().is_empty() => {
            return Err(ctx.err(
                p.span(),
                "store.path",
                "the path is empty (use \":memory:\" to keep no history on disk)",
            ));
        }
        Some(p) => StorePath::File(per_instance(&ctx.dir.join(p.get_ref()), cluster)),
    };
    let retention = match &raw.retention {
        None => DEFAULT_RETENTION,
        Some(r) if r.get_ref().0 < Duration::from_secs(3600) => {
            return Err(ctx.err(r.span(), "store.retention", "must be at least 1h"));
        }
        Some(r) => r.get_ref().0,
    };
    let keep_results = match &raw.keep_results {
        None => DEFAULT_KEEP_RESULTS,
        Some(k) if !(1..=MAX_KEEP_RESULTS).contains(k.get_ref()) => {
            return Err(ctx.err(
                k.span(),
                "store.keep_results",
                format!("must be between 1 and {MAX_KEEP_RESULTS}"),
            ));
        }
        Some(k) => *k.get_ref(),
    };
    Ok(StoreSettings {
        path,
        retention,
        keep_results,
    })
}

/// The history file of this instance: with a location, a shard of several
/// or a replica, each goes into the name, keyed (`lookout.db` becomes
/// `lookout-location=eu-west-shard=2of3-replica=b.db`), so instances that
/// share a config and a host never share a file: place names hold no `=`,
/// so no two placements give one name.
fn per_instance(path: &Path, cluster: &Cluster) -> std::path::PathBuf {
    let mut tag = String::new();
    if let Some(location) = &cluster.location {
        tag.push_str(&format!("-location={location}"));
    }
    if cluster.shard.is_sharded() {
        tag.push_str(&format!(
            "-shard={}of{}",
            cluster.shard.index(),
            cluster.shard.count()
        ));
    }
    if let Some(replica) = &cluster.replica {
        tag.push_str(&format!("-replica={replica}"));
    }
    if tag.is_empty() {
        return path.to_path_buf();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}{tag}.{}", ext.to_string_lossy()),
        None => format!("{stem}{tag}"),
    };
    path.with_file_name(name)
}

/// Credentials written into the config itself, which the redactor must
/// know besides the `[secrets]`.
#[derive(Default)]
struct Redactable {
    literal_secrets: Vec<Secret>,
    basic_pairs: Vec<(String, Secret)>,
}

impl Redactable {
    fn note(&mut self, auth: &Auth) {
        if let Some(secret) = auth.secret()
            && *secret.origin() == SecretOrigin::Literal
        {
            self.literal_secrets.push(secret.clone());
        }
        if let Auth::Basic { username, password } = auth {
            self.basic_pairs.push((username.clone(), password.clone()));
        }
    }
}

fn parse(ctx: &Ctx<'_>) -> Result<RawConfig, ConfigError> {
    let root = toml::de::DeTable::parse(ctx.source).map_err(|e| toml_error(ctx, &e, ""))?;
    // Looked for before the document is consumed, reported after: an
    // unknown or mistyped field is the better message.
    let misplaced = super::templated::misplaced(root.get_ref());
    let raw = serde_path_to_error::deserialize(toml::Deserializer::from(root))
        .map_err(|e| toml_error(ctx, e.inner(), &field_path(e.path())))?;
    match misplaced {
        Some(m) => Err(m.into_error(ctx)),
        None => Ok(raw),
    }
}

/// The path as users write it: `flows[0].steps[1].method`. Built from the
/// segments, not from the path's text: every `Spanned` value adds a segment
/// of its own (`$__serde_spanned_private_value`) that users never wrote,
/// and in the text an index is glued to the segment before it, so dropping
/// that segment from the text dropped the index with it.
fn field_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path {
        let name = match segment {
            Segment::Seq { index } => {
                out.push_str(&format!("[{index}]"));
                continue;
            }
            Segment::Map { key } | Segment::Enum { variant: key } if key.starts_with("$__") => {
                continue;
            }
            Segment::Map { key } | Segment::Enum { variant: key } => key.as_str(),
            Segment::Unknown => "?",
        };
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(name);
    }
    out
}

fn toml_error(ctx: &Ctx<'_>, e: &toml::de::Error, path: &str) -> ConfigError {
    let offset = e.span().map_or(0, |s| s.start);
    let field = if path.is_empty() { "(file)" } else { path };
    ConfigError::Invalid {
        location: ctx.lines.location(&ctx.file, offset),
        field: field.to_owned(),
        message: e.message().trim().replace('\n', "; "),
    }
}

fn load_secrets(
    ctx: &Ctx<'_>,
    raw: &BTreeMap<String, Spanned<SecretSource>>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, Secret>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, source) in raw {
        let field = format!("secrets.{name}");
        let value = match source.get_ref() {
            SecretSource::Env(var) => env(var).ok_or_else(|| {
                ctx.err(
                    source.span(),
                    &field,
                    format!("environment variable {var} is not set"),
                )
            })?,
            SecretSource::File(relative) => {
                let full = ctx.dir.join(relative);
                let text = file::read_to_string(&full, file::Kind::Secret).map_err(|e| {
                    ctx.err(
                        source.span(),
                        &field,
                        format!("cannot read secret file {}: {e}", full.display()),
                    )
                })?;
                // Files written by `echo` or editors end with a newline that
                // is not part of the key.
                text.trim_end_matches(['\n', '\r']).to_owned()
            }
        };
        if value.is_empty() {
            return Err(ctx.err(source.span(), &field, "the secret is empty"));
        }
        out.insert(
            name.clone(),
            Secret::new(value, SecretOrigin::Named(name.clone())),
        );
    }
    Ok(out)
}

/// One `[[checks]]` entry, expanded over its matrix.
fn expand_check(
    ctx: &Ctx<'_>,
    field: &str,
    spanned: &Spanned<RawCheck>,
    defaults: &RawDefaults,
    secrets: &BTreeMap<String, Secret>,
    templater: &Templater,
    tls_profiles: &mut Vec<TlsSettings>,
) -> Result<Vec<Check>, ConfigError> {
    let raw = spanned.get_ref();
    let name = raw.name.get_ref().trim();
    if !valid_name(name) {
        return Err(ctx.err(
            raw.name.span(),
            format!("{field}.name"),
            format!(
                "a check name must be 1 to {MAX_NAME_LEN} characters without control characters"
            ),
        ));
    }
    let combos = matrix_combinations(ctx, field, spanned)?;
    let allowed: Vec<&String> = raw.matrix.keys().collect();

    // Every template must only use matrix variables.
    let mut templated: Vec<(String, Range<usize>, Vec<String>)> = vec![
        (
            format!("{field}.name"),
            raw.name.span(),
            vars_of(templater, ctx, &format!("{field}.name"), &raw.name)?,
        ),
        (
            format!("{field}.url"),
            raw.url.span(),
            vars_of(templater, ctx, &format!("{field}.url"), &raw.url)?,
        ),
    ];
    for (header, value) in &raw.headers {
        templated.push((
            format!("{field}.headers.{header}"),
            value.span(),
            vars_of(templater, ctx, &format!("{field}.headers.{header}"), value)?,
        ));
    }
    if let Some(body) = &raw.body {
        templated.push((
            format!("{field}.body"),
            body.span(),
            vars_of(templater, ctx, &format!("{field}.body"), body)?,
        ));
    }
    if let Some(json) = &raw.json {
        let used = templater
            .json_variables(json.get_ref())
            .map_err(|e| ctx.err(json.span(), format!("{field}.json"), e))?;
        templated.push((format!("{field}.json"), json.span(), used));
    }
    for (where_, span, used) in &templated {
        if let Some(unknown) = used.iter().find(|v| !allowed.contains(v)) {
            let known = if allowed.is_empty() {
                "this check has no matrix".to_owned()
            } else {
                format!(
                    "matrix defines {}",
                    allowed
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            return Err(ctx.err(
                span.clone(),
                where_,
                format!("unknown template variable {unknown:?}: {known}"),
            ));
        }
    }

    let shared = SharedParts::build(ctx, field, raw, defaults, secrets, tls_profiles)?;
    let mut out = Vec::with_capacity(combos.len());
    for vars in combos {
        out.push(build_one(ctx, field, raw, &vars, templater, &shared)?);
    }
    Ok(out)
}

pub(super) fn vars_of(
    templater: &Templater,
    ctx: &Ctx<'_>,
    field: &str,
    text: &Spanned<String>,
) -> Result<Vec<String>, ConfigError> {
    templater
        .variables(text.get_ref())
        .map_err(|e| ctx.err(text.span(), field, e))
}

fn matrix_combinations(
    ctx: &Ctx<'_>,
    field: &str,
    spanned: &Spanned<RawCheck>,
) -> Result<Vec<Vars>, ConfigError> {
    let mut combos: Vec<Vars> = vec![Vars::new()];
    for (key, values) in &spanned.get_ref().matrix {
        if values.is_empty() {
            return Err(ctx.err(
                spanned.span(),
                format!("{field}.matrix.{key}"),
                "a matrix list needs at least one value",
            ));
        }
        if combos.len() * values.len() > MAX_MATRIX_EXPANSION {
            return Err(ctx.err(
                spanned.span(),
                format!("{field}.matrix"),
                format!("expands to more than {MAX_MATRIX_EXPANSION} checks"),
            ));
        }
        combos = combos
            .into_iter()
            .flat_map(|base| {
                values.iter().map(move |v| {
                    let mut next = base.clone();
                    next.insert(key.clone(), v.0.clone());
                    next
                })
            })
            .collect();
    }
    Ok(combos)
}

/// The parts of a check that do not depend on matrix values.
struct SharedParts {
    group: String,
    method: Method,
    schedule: Schedule,
    auth: Auth,
    timeout: Duration,
    max_body_bytes: u64,
    max_redirects: u32,
    tls_profile: usize,
    expect: Expectations,
}

impl SharedParts {
    fn build(
        ctx: &Ctx<'_>,
        field: &str,
        raw: &RawCheck,
        defaults: &RawDefaults,
        secrets: &BTreeMap<String, Secret>,
        tls_profiles: &mut Vec<TlsSettings>,
    ) -> Result<SharedParts, ConfigError> {
        let method = method(ctx, field, raw.method.as_ref())?;
        let tls_profile = tls_profile(ctx, field, raw.tls.as_ref(), defaults, tls_profiles)?;
        let (timeout, max_body_bytes, max_redirects) = request_limits(
            raw.timeout.as_ref(),
            raw.max_body_bytes,
            raw.max_redirects,
            defaults,
        );
        Ok(SharedParts {
            group: raw
                .group
                .clone()
                .or_else(|| defaults.group.clone())
                .unwrap_or_else(|| DEFAULT_GROUP.to_owned()),
            method,
            schedule: schedule(
                ctx,
                field,
                OwnSchedule {
                    schedule: raw.schedule.as_ref(),
                    interval: raw.interval.as_ref(),
                    timezone: raw.timezone.as_ref(),
                    name_span: raw.name.span(),
                },
                defaults,
            )?,
            auth: auth(ctx, field, raw.auth.as_ref(), secrets)?,
            timeout,
            max_body_bytes,
            max_redirects,
            tls_profile,
            expect: expectations(ctx, field, raw.expect.as_ref())?,
        })
    }
}

/// A request's timeout, body cap and redirect limit: its own setting, else
/// `[defaults]`, else lookout's default.
pub(super) fn request_limits(
    timeout: Option<&Spanned<super::raw::HumanDuration>>,
    max_body_bytes: Option<u64>,
    max_redirects: Option<u32>,
    defaults: &RawDefaults,
) -> (Duration, u64, u32) {
    (
        timeout
            .or(defaults.timeout.as_ref())
            .map_or(DEFAULT_TIMEOUT, |t| t.get_ref().0),
        max_body_bytes
            .or(defaults.max_body_bytes)
            .unwrap_or(DEFAULT_MAX_BODY_BYTES),
        max_redirects
            .or(defaults.max_redirects)
            .unwrap_or(DEFAULT_MAX_REDIRECTS),
    )
}

pub(super) fn method(
    ctx: &Ctx<'_>,
    field: &str,
    raw: Option<&Spanned<String>>,
) -> Result<Method, ConfigError> {
    match raw {
        None => Ok(Method::GET),
        Some(m) => Method::from_bytes(m.get_ref().to_ascii_uppercase().as_bytes()).map_err(|_| {
            ctx.err(
                m.span(),
                format!("{field}.method"),
                format!("invalid HTTP method {:?}", m.get_ref()),
            )
        }),
    }
}

/// The index of these TLS settings in `profiles`, adding them if new.
pub(super) fn tls_profile(
    ctx: &Ctx<'_>,
    field: &str,
    own: Option<&Spanned<RawTls>>,
    defaults: &RawDefaults,
    profiles: &mut Vec<TlsSettings>,
) -> Result<usize, ConfigError> {
    let settings = match (own, &defaults.tls) {
        (Some(tls), _) => tls_settings(ctx, &format!("{field}.tls"), Some(tls))?,
        (None, tls) => tls_settings(ctx, "defaults.tls", tls.as_ref())?,
    };
    Ok(match profiles.iter().position(|p| *p == settings) {
        Some(i) => i,
        None => {
            profiles.push(settings);
            profiles.len() - 1
        }
    })
}

/// A URL lookout may probe: http or https, with a host.
pub(super) fn probe_url(
    ctx: &Ctx<'_>,
    field: &str,
    span: Range<usize>,
    text: &str,
) -> Result<Url, ConfigError> {
    let url = Url::parse(text).map_err(|e| {
        ctx.err(
            span.clone(),
            format!("{field}.url"),
            format!("invalid URL {text:?}: {e}"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ctx.err(
            span,
            format!("{field}.url"),
            format!("{text:?} is not an http:// or https:// URL with a host"),
        ));
    }
    Ok(url)
}

pub(super) fn header_name(
    ctx: &Ctx<'_>,
    where_: &str,
    key: &str,
    span: Range<usize>,
) -> Result<HeaderName, ConfigError> {
    HeaderName::from_bytes(key.as_bytes())
        .map_err(|_| ctx.err(span, where_, format!("invalid header name {key:?}")))
}

fn build_one(
    ctx: &Ctx<'_>,
    field: &str,
    raw: &RawCheck,
    vars: &Vars,
    templater: &Templater,
    shared: &SharedParts,
) -> Result<Check, ConfigError> {
    let render = |text: &Spanned<String>, what: &str| {
        templater
            .render(text.get_ref(), vars)
            .map_err(|e| ctx.err(text.span(), format!("{field}.{what}"), e))
    };
    let mut name = render(&raw.name, "name")?.trim().to_owned();
    if !vars.is_empty() {
        let labels: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
        name = format!("{name}[{}]", labels.join(","));
    }

    let url_text = render(&raw.url, "url")?;
    let url = probe_url(ctx, field, raw.url.span(), &url_text)?;

    let mut headers = HeaderMap::new();
    for (key, value) in &raw.headers {
        let where_ = format!("{field}.headers.{key}");
        let name = header_name(ctx, &where_, key, value.span())?;
        let text = render(value, &format!("headers.{key}"))?;
        let value = HeaderValue::from_str(&text).map_err(|_| {
            ctx.err(
                value.span(),
                &where_,
                "invalid header value (control characters?)",
            )
        })?;
        headers.append(name, value);
    }

    let body = match (&raw.body, &raw.json) {
        (Some(_), Some(json)) => {
            return Err(ctx.err(
                json.span(),
                format!("{field}.json"),
                "set either body or json, not both",
            ));
        }
        (Some(body), None) => Some(bytes::Bytes::from(render(body, "body")?)),
        (None, Some(json)) => {
            let value = templater
                .render_json(json.get_ref(), vars)
                .map_err(|e| ctx.err(json.span(), format!("{field}.json"), e))?;
            if !headers.contains_key(CONTENT_TYPE) {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            Some(bytes::Bytes::from(value.to_string()))
        }
        (None, None) => None,
    };

    // The phase comes from the expanded name, so matrix siblings spread out.
    let schedule = match &shared.schedule {
        Schedule::Interval { every, .. } => Schedule::interval(*every, &name),
        cron => cron.clone(),
    };
    Ok(Check {
        // Set to the check's position when the config is assembled.
        id: 0,
        name,
        group: shared.group.clone(),
        schedule,
        request: HttpRequest {
            method: shared.method.clone(),
            url,
            headers,
            body,
            auth: shared.auth.clone(),
            timeout: shared.timeout,
            max_body_bytes: shared.max_body_bytes,
            max_redirects: shared.max_redirects,
            tls_profile: shared.tls_profile,
        },
        expect: shared.expect.clone(),
        matrix: vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    })
}

/// The schedule settings a check or flow writes itself.
pub(super) struct OwnSchedule<'a> {
    pub schedule: Option<&'a Spanned<super::raw::CronText>>,
    pub interval: Option<&'a Spanned<super::raw::HumanDuration>>,
    pub timezone: Option<&'a Spanned<String>>,
    /// Where to point when the default interval is the problem.
    pub name_span: Range<usize>,
}

pub(super) fn schedule(
    ctx: &Ctx<'_>,
    field: &str,
    raw: OwnSchedule<'_>,
    defaults: &RawDefaults,
) -> Result<Schedule, ConfigError> {
    if let (Some(_), Some(interval)) = (raw.schedule, raw.interval) {
        return Err(ctx.err(
            interval.span(),
            format!("{field}.interval"),
            "set either schedule (cron) or interval, not both",
        ));
    }
    if let (Some(_), Some(interval)) = (&defaults.schedule, &defaults.interval) {
        return Err(ctx.err(
            interval.span(),
            "defaults.interval",
            "set either schedule (cron) or interval, not both",
        ));
    }
    let tz_field = if raw.timezone.is_some() {
        format!("{field}.timezone")
    } else {
        "defaults.timezone".to_owned()
    };
    let tz = match raw.timezone.or(defaults.timezone.as_ref()) {
        None => chrono_tz::UTC,
        Some(tz) => tz.get_ref().parse::<chrono_tz::Tz>().map_err(|_| {
            ctx.err(
                tz.span(),
                tz_field,
                format!(
                    "unknown time zone {:?} (use an IANA name such as \"Europe/Berlin\")",
                    tz.get_ref()
                ),
            )
        })?,
    };
    // The check's own setting wins over either kind of default.
    let cron = raw.schedule.map(|c| c.get_ref().0.clone());
    let every = raw.interval.map(|i| i.get_ref().0);
    let every_min = Duration::from_millis(10);
    let pick = match (cron, every) {
        (Some(spec), _) => Ok(spec),
        (None, Some(every)) => Err(every),
        (None, None) => match (&defaults.schedule, &defaults.interval) {
            (Some(c), _) => Ok(c.get_ref().0.clone()),
            (None, Some(i)) => Err(i.get_ref().0),
            (None, None) => Err(DEFAULT_INTERVAL),
        },
    };
    match pick {
        Ok(spec) => Ok(Schedule::Cron { spec, tz }),
        Err(every) if every < every_min => {
            let (span, where_) = match (raw.interval, &defaults.interval) {
                (Some(i), _) => (i.span(), format!("{field}.interval")),
                (None, Some(i)) => (i.span(), "defaults.interval".to_owned()),
                (None, None) => (raw.name_span, format!("{field}.interval")),
            };
            Err(ctx.err(span, where_, "an interval must be at least 10ms"))
        }
        // The real phase is set per expanded check in `build_one`.
        Err(every) => Ok(Schedule::Interval {
            every,
            phase: Duration::ZERO,
        }),
    }
}

pub(super) fn auth(
    ctx: &Ctx<'_>,
    field: &str,
    raw: Option<&Spanned<RawAuth>>,
    secrets: &BTreeMap<String, Secret>,
) -> Result<Auth, ConfigError> {
    let Some(spanned) = raw else {
        return Ok(Auth::None);
    };
    let a = spanned.get_ref();
    let where_ = format!("{field}.auth");
    let err = |msg: String| ctx.err(spanned.span(), &where_, msg);
    let scheme_name = format!("{:?}", a.scheme).to_lowercase();
    if a.header.is_some() && a.scheme != AuthScheme::ApiKey {
        return Err(err(format!(
            "header is only for scheme \"api_key\", not {scheme_name:?}"
        )));
    }
    if a.param.is_some() && a.scheme != AuthScheme::Query {
        return Err(err("param is only for scheme \"query\"".into()));
    }
    if a.username.is_some() != (a.scheme == AuthScheme::Basic) {
        return Err(err(
            "username is required for scheme \"basic\" and only allowed there".into(),
        ));
    }
    if a.scheme == AuthScheme::None {
        if a.secret.is_some() || a.value.is_some() {
            return Err(err("scheme \"none\" takes no secret or value".into()));
        }
        return Ok(Auth::None);
    }
    let secret = match (&a.secret, &a.value) {
        (Some(_), Some(_)) => return Err(err("set either secret or value, not both".into())),
        (None, None) => {
            return Err(err(
                "needs secret = \"<name in [secrets]>\" or a literal value = \"...\"".into(),
            ));
        }
        (Some(name), None) => secrets.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = secrets.keys().map(String::as_str).collect();
            err(format!(
                "unknown secret {name:?}; [secrets] defines: {}",
                if known.is_empty() {
                    "nothing".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        })?,
        (None, Some(value)) if value.is_empty() => return Err(err("value is empty".into())),
        (None, Some(value)) => Secret::new(value.clone(), SecretOrigin::Literal),
    };
    let in_header = |name: HeaderName, prefix: &'static str| {
        HeaderValue::try_from(format!("{prefix}{}", secret.expose()))
            .map_err(|_| {
                err(format!(
                    "the credential {} cannot be sent in a header",
                    secret.fingerprint()
                ))
            })
            .map(|_| Auth::Header {
                name,
                prefix,
                secret: secret.clone(),
            })
    };
    Ok(match a.scheme {
        AuthScheme::ApiKey => {
            let header = a.header.as_deref().unwrap_or("X-API-Key");
            let name = HeaderName::from_bytes(header.as_bytes())
                .map_err(|_| err(format!("invalid header name {header:?}")))?;
            in_header(name, "")?
        }
        AuthScheme::Bearer => in_header(AUTHORIZATION, "Bearer ")?,
        AuthScheme::Basic => Auth::Basic {
            username: a.username.clone().unwrap_or_default(),
            password: secret,
        },
        AuthScheme::Query => {
            let param = a.param.clone().unwrap_or_else(|| "api_key".to_owned());
            if param.is_empty() {
                return Err(err("param is empty".into()));
            }
            Auth::Query { param, secret }
        }
        AuthScheme::None => Auth::None,
    })
}

fn tls_settings(
    ctx: &Ctx<'_>,
    field: &str,
    spanned: Option<&Spanned<RawTls>>,
) -> Result<TlsSettings, ConfigError> {
    let Some(spanned) = spanned else {
        return Ok(TlsSettings::default());
    };
    let raw = spanned.get_ref();
    let ca_file = match &raw.ca_file {
        None => None,
        Some(path) => {
            let full = ctx.dir.join(path);
            let err = |msg: String| ctx.err(spanned.span(), format!("{field}.ca_file"), msg);
            let pem = file::read(&full, file::Kind::Pem)
                .map_err(|e| err(format!("cannot read {}: {e}", full.display())))?;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| err(format!("{} is not valid PEM: {e}", full.display())))?;
            if certs.is_empty() {
                return Err(err(format!("{} holds no certificates", full.display())));
            }
            Some(CaFile {
                path: full,
                certs: certs.into(),
            })
        }
    };
    Ok(TlsSettings {
        ca_file,
        insecure_skip_verify: raw.insecure_skip_verify,
    })
}

pub(super) fn expectations(
    ctx: &Ctx<'_>,
    field: &str,
    raw: Option<&Spanned<RawExpect>>,
) -> Result<Expectations, ConfigError> {
    let Some(spanned) = raw else {
        return Ok(Expectations::default());
    };
    let e: &RawExpect = spanned.get_ref();
    let span = spanned.span();
    let err =
        |what: &str, msg: String| ctx.err(span.clone(), format!("{field}.expect.{what}"), msg);
    let status = match &e.status {
        None => StatusMatcher::default(),
        Some(list) => StatusMatcher::new(list.clone()).map_err(|m| err("status", m))?,
    };
    let mut json = Vec::new();
    for (i, j) in e.json.iter().enumerate() {
        if !(j.pointer.is_empty() || j.pointer.starts_with('/')) {
            return Err(err(
                &format!("json[{i}].pointer"),
                format!(
                    "{:?} is not a JSON pointer (it starts with \"/\", e.g. \"/service_id\")",
                    j.pointer
                ),
            ));
        }
        let check = match (&j.equals, j.exists) {
            (Some(v), None) => JsonCheck::Equals(v.clone()),
            (None, Some(b)) => JsonCheck::Exists(b),
            _ => {
                return Err(err(
                    &format!("json[{i}]"),
                    "set exactly one of equals or exists".into(),
                ));
            }
        };
        json.push(JsonExpect {
            pointer: j.pointer.clone(),
            check,
        });
    }
    let mut headers = Vec::new();
    for (i, h) in e.headers.iter().enumerate() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| {
            err(
                &format!("headers[{i}].name"),
                format!("invalid header name {:?}", h.name),
            )
        })?;
        let check = match (&h.equals, &h.contains, h.exists) {
            (Some(v), None, None) => HeaderCheck::Equals(v.clone()),
            (None, Some(v), None) => HeaderCheck::Contains(v.clone()),
            (None, None, Some(b)) => HeaderCheck::Exists(b),
            _ => {
                return Err(err(
                    &format!("headers[{i}]"),
                    "set exactly one of equals, contains or exists".into(),
                ));
            }
        };
        headers.push(HeaderExpect { name, check });
    }
    Ok(Expectations {
        status,
        max_latency: e.max_latency.map(|d| d.0),
        body_contains: e.body_contains.clone(),
        body_not_contains: e.body_not_contains.clone(),
        body_regex: e.body_regex.as_ref().map(|r| r.0.clone()),
        json,
        headers,
    })
}
