//! Raw config → validated `Config`, one file per part of the file:
//! [`cluster`], [`server`], [`store`], [`secrets`], [`check`] (matrix
//! expansion), [`request`] (what checks and steps send), [`timing`]
//! (schedules), [`expect`]. This file parses and puts them together.

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

use crate::model::{Target, Thresholds};

mod check;
mod cluster;
mod expect;
mod kind;
mod module;
mod request;
mod routes;
mod secrets;
mod server;
mod store;
mod timing;
mod vars;

use check::expand_check;
pub(super) use check::vars_of;
pub use cluster::prometheus_url;
use cluster::*;
pub(super) use expect::{OwnBurst, burst, expectations};
pub(super) use request::{auth, header_name, method, probe_url, request_limits, tls_profile};
use secrets::*;
use server::*;
use store::*;
pub(super) use timing::{OwnPolicy, OwnSchedule, policy, schedule};
pub(in crate::config) use vars::{Globals, own_vars, with_base};

use super::error::LineIndex;
use super::raw::{
    AuthScheme, RawAuth, RawCheck, RawConfig, RawDefaults, RawExpect, RawQueryStep, RawTls,
    SecretSource,
};
use super::*;
use crate::file;
use crate::model::{
    ClientAuth, Comparison, HeaderCheck, HeaderExpect, JsonCheck, JsonExpect, JsonType, OAuth2,
    StatusMatcher,
};
use crate::schedule::Schedule;
use crate::secret::{Redactor, Secret, SecretOrigin};
use crate::template::{Templater, Vars};

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
            message: super::error::without_userinfo(message.into()),
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
    read_secrets: bool,
) -> Result<Config, ConfigError> {
    let ctx = Ctx {
        file: path.display().to_string(),
        source,
        lines: LineIndex::new(source),
        dir: path.parent().unwrap_or(Path::new(".")),
    };
    let mut raw = parse(&ctx)?;

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
    let store = store_settings(&ctx, &raw.store, &cluster, env)?;
    let server = server_settings(&ctx, &raw.server)?;
    let secrets = load_secrets(&ctx, &raw.secrets, env, read_secrets)?;
    let templater = Templater::default();
    let globals = vars::globals(&ctx, &raw, env, overrides, &templater)?;
    let mut tls_profiles: Vec<TlsSettings> = Vec::new();
    let mut checks: Vec<Arc<Check>> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut redactable = Redactable::default();
    // Which `[secrets]` entries some check or step sends.
    let mut used_secrets: std::collections::BTreeSet<String> = Default::default();
    let named = |s: &Secret| match s.origin() {
        SecretOrigin::Named(n) => Some(n.clone()),
        SecretOrigin::Literal => None,
    };
    let mut total = Totals::default();

    for (index, raw_check) in raw.checks.iter().enumerate() {
        let field = format!("checks[{index}]");
        let expanded = expand_check(
            &ctx,
            &field,
            raw_check,
            &check::CheckEnv {
                defaults: &raw.defaults,
                secrets: &secrets,
                templater: &templater,
                globals: &globals,
                inherit_credentials: true,
            },
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
            used_secrets.extend(check.probe.secrets().into_iter().filter_map(named));
            match &check.probe {
                Target::Http(r) => redactable.note(&r.auth),
                other => other
                    .secrets()
                    .into_iter()
                    .for_each(|s| redactable.note_secret(s)),
            }
            // Every check is validated, whichever instance runs it.
            let identity = match (&check.family, check.route()) {
                (Some(family), Some(_)) => {
                    let others: Vec<(String, String)> = check
                        .matrix
                        .iter()
                        .filter(|(k, _)| k != crate::model::ROUTE_KEY)
                        .cloned()
                        .collect();
                    crate::cluster::routes_identity(&family.title, &others)
                }
                _ => crate::cluster::check_identity(&check.name),
            };
            if here && cluster.shard.owns(&identity) {
                checks.push(Arc::new(check));
            }
        }
    }

    let mut flows: Vec<Arc<Flow>> = Vec::new();
    let flow_env = super::flow::FlowEnv {
        defaults: &raw.defaults,
        secrets: &secrets,
        templater: &templater,
        globals: &globals,
    };
    for (index, spanned) in raw.flows.iter().enumerate() {
        let field = format!("flows[{index}]");
        let raw_flow = spanned.get_ref();
        for matrix in check::combinations(&ctx, &field, spanned.span(), &raw_flow.matrix)? {
            let mut flow = super::flow::flow(
                &ctx,
                &field,
                raw_flow,
                &matrix,
                &flow_env,
                &mut tls_profiles,
            )?;
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
                used_secrets.extend(step.request.auth.secret().and_then(named));
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
    }

    let unused_secrets: Vec<String> = secrets
        .keys()
        .filter(|name| !used_secrets.contains(*name))
        .cloned()
        .collect();
    let modules = module::modules(
        &ctx,
        std::mem::take(&mut raw.modules),
        raw.blackbox_config.as_ref(),
        &module::ModuleEnv {
            defaults: &raw.defaults,
            secrets: &secrets,
            templater: &templater,
            globals: &globals,
        },
        &mut tls_profiles,
    )?;

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
        modules,
        unused_secrets,
    })
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

/// Credentials written into the config itself, which the redactor must
/// know besides the `[secrets]`.
#[derive(Default)]
struct Redactable {
    literal_secrets: Vec<Secret>,
    basic_pairs: Vec<(String, Secret)>,
}

impl Redactable {
    fn note_secret(&mut self, secret: &Secret) {
        if *secret.origin() == SecretOrigin::Literal {
            self.literal_secrets.push(secret.clone());
        }
    }

    fn note(&mut self, auth: &Auth) {
        if let Some(secret) = auth.secret() {
            self.note_secret(secret);
        }
        if let Auth::Basic { username, password } = auth {
            self.basic_pairs.push((username.clone(), password.clone()));
        }
        // A token endpoint that echoes the Basic header it got.
        if let Auth::OAuth2(o) = auth {
            self.basic_pairs
                .push((o.client_id.clone(), o.client_secret.clone()));
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
        message: super::error::without_userinfo(e.message().trim().replace('\n', "; ")),
    }
}
