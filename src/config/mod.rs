//! The config: parsed once, validated completely, then immutable.
//!
//! `raw` is the file as written (serde, with spans); `validate` turns it into
//! the types below, in which every URL, header, duration, schedule, secret
//! reference and expectation is already known to be good. Matrix checks are
//! expanded here, so the rest of lookout only ever sees single checks.
//! Every error names the file, line and column, and the field.

mod blackbox;
pub mod diff;
mod error;
mod flow;
mod raw;
mod templated;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use url::Url;

pub use error::{ConfigError, Location};

pub use crate::cluster::{Cluster, Shard};
use crate::model::Expectations;
pub use crate::model::{
    Auth, BUILTIN_VARS, BodyTemplate, Burst, CaFile, Capture, CaptureFrom, Check, Flow,
    HttpRequest, RequestTemplate, Step, TlsSettings,
};
use crate::schedule::Schedule;
use crate::secret::Redactor;
pub use validate::prometheus_url;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9898";
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
pub const DEFAULT_MAX_REDIRECTS: u32 = 10;
pub const DEFAULT_MAX_CONCURRENT_PROBES: usize = 256;
pub const DEFAULT_MAX_CONCURRENT_PER_TARGET: usize = 32;
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(15);
pub const DEFAULT_GROUP: &str = "default";
pub const DEFAULT_STORE_PATH: &str = "lookout.db";
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
pub const DEFAULT_KEEP_RESULTS: usize = 200;
const MAX_KEEP_RESULTS: usize = 100_000;

#[derive(Debug)]
pub struct Config {
    pub source: PathBuf,
    pub listen: SocketAddr,
    /// TLS, basic auth and connection limits of lookout's own listener.
    pub server: ServerSettings,
    pub max_concurrent_probes: usize,
    /// Runs against one origin (scheme, host, port) at once: a target that
    /// hangs can hold this many slots, never the whole limit. With `n`
    /// shards, this shard's part of the configured value (the parts add up
    /// to it; each is at least 1).
    pub max_concurrent_per_target: usize,
    pub shutdown_grace: Duration,
    pub checks: Vec<Arc<Check>>,
    pub flows: Vec<Arc<Flow>>,
    /// Distinct TLS settings; `HttpRequest::tls_profile` indexes this.
    pub tls_profiles: Vec<TlsSettings>,
    /// Knows every secret, to scrub them from anything a target sends back.
    pub redactor: Redactor,
    pub store: crate::store::StoreSettings,
    /// This instance's shard, location and replica: `checks` and `flows`
    /// hold only what it runs.
    pub cluster: Cluster,
    /// Checks and flows in the file, before placement.
    pub total: Totals,
    /// What the command line set over `[cluster]`; a reload keeps it.
    pub overrides: ClusterOverrides,
    /// `[view]`, for `lookout view`.
    pub view: ViewSettings,
    /// `/probe`'s modules by name (`[modules]` and `blackbox_config`),
    /// each a check aimed at `model::MODULE_HOST` until a scrape names
    /// the target.
    pub modules: std::collections::BTreeMap<String, Arc<Check>>,
    /// `[secrets]` entries no check or step uses (check-config warns).
    pub unused_secrets: Vec<String>,
}

pub const DEFAULT_VIEW_REFRESH: Duration = Duration::from_secs(15);
pub const DEFAULT_VIEW_TIMEOUT: Duration = Duration::from_secs(10);

/// Where `lookout view` reads the fleet's results, and how often.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewSettings {
    pub prometheus: Option<Url>,
    pub listen: Option<SocketAddr>,
    /// How often the picture is read again.
    pub refresh: Duration,
    /// How long one read may take, all queries together.
    pub timeout: Duration,
}

impl Default for ViewSettings {
    fn default() -> Self {
        ViewSettings {
            prometheus: None,
            listen: None,
            refresh: DEFAULT_VIEW_REFRESH,
            timeout: DEFAULT_VIEW_TIMEOUT,
        }
    }
}

/// How many checks and flows the file defines, whoever runs them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub checks: usize,
    pub flows: usize,
}

/// `lookout run --shard/--shard-count/--location/--replica`: each, when
/// given, wins over the same setting in `[cluster]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterOverrides {
    pub shard: Option<Shard>,
    /// With no shard: take the index from the pod's name.
    pub shard_count: Option<u32>,
    pub location: Option<String>,
    pub replica: Option<String>,
    /// Keep every check and flow, whatever `[cluster]` and `locations`
    /// say: `lookout view` shows the whole file.
    pub whole_file: bool,
    /// `--var name=value`: over `LOOKOUT_VAR_name`, a check's `vars` and
    /// `[vars]`; each must name a `[vars]` entry.
    pub vars: Vec<(String, String)>,
}

impl ClusterOverrides {
    /// Every check and flow of the file, placed nowhere.
    pub fn whole_file() -> ClusterOverrides {
        ClusterOverrides {
            shard: Some(Shard::ALL),
            whole_file: true,
            ..ClusterOverrides::default()
        }
    }
}

pub const DEFAULT_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

#[derive(Clone)]
pub struct ServerSettings {
    /// Built and checked when the config loads (certificate and key match).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// User name → bcrypt hash; empty: no authentication.
    pub basic_auth_users: std::collections::BTreeMap<String, String>,
    /// A client must send its request headers (and finish the TLS
    /// handshake) within this.
    pub read_header_timeout: Duration,
    /// Connections beyond this are closed as they arrive.
    pub max_connections: usize,
}

impl std::fmt::Debug for ServerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hashes are not secrets, but they do not belong in logs either.
        f.debug_struct("ServerSettings")
            .field("tls", &self.tls.is_some())
            .field(
                "basic_auth_users",
                &self.basic_auth_users.keys().collect::<Vec<_>>(),
            )
            .field("read_header_timeout", &self.read_header_timeout)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// A multi-step flow. Its steps' requests are templates, rendered at run
/// time with the run's variables: `vars`, the built-ins and what earlier
/// steps captured. Every variable a step uses is known to be produced by
/// then (checked at load time), and no template can change a step's origin.
impl Config {
    /// The TLS settings a check's requests use.
    pub fn tls_of_check(&self, c: &Check) -> TlsSettings {
        self.tls_profiles
            .get(c.probe.tls_profile().unwrap_or(0))
            .cloned()
            .unwrap_or_default()
    }

    /// The TLS settings a flow's steps use (one `tls` per flow).
    pub fn tls_of_flow(&self, f: &Flow) -> TlsSettings {
        f.steps
            .first()
            .and_then(|s| self.tls_profiles.get(s.request.tls_profile))
            .cloned()
            .unwrap_or_default()
    }
}

/// Reads and validates a config file. Secrets come from the process
/// environment and from files named in `[secrets]`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with(path, &ClusterOverrides::default())
}

/// `load`, with the command line's settings over `[cluster]`.
pub fn load_with(path: &Path, overrides: &ClusterOverrides) -> Result<Config, ConfigError> {
    let source = read(path)?;
    from_str_with(&source, path, &|name| std::env::var(name).ok(), overrides)
}

fn read(path: &Path) -> Result<String, ConfigError> {
    crate::file::read_to_string(path, crate::file::Kind::Config).map_err(|e| ConfigError::Read {
        file: path.display().to_string(),
        source: e,
    })
}

/// Validates config text. `env` looks up environment variables, so tests can
/// supply secrets without touching the process environment.
pub fn from_str(
    source: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    from_str_with(source, path, env, &ClusterOverrides::default())
}

/// `from_str`, with the command line's settings over `[cluster]`.
pub fn from_str_with(
    source: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    overrides: &ClusterOverrides,
) -> Result<Config, ConfigError> {
    validate::validate(source, path, env, overrides, true)
}

/// Validates a config file without reading its secrets' values (for CI
/// jobs that never see them): every `[secrets]` entry is still declared and
/// checked where it is used, but its environment variable or file is not
/// read, and its fingerprint says so. Never for running checks.
pub fn lint(path: &Path, overrides: &ClusterOverrides) -> Result<Config, ConfigError> {
    let source = read(path)?;
    // The environment still gives LOOKOUT_VAR_* and STATE_DIRECTORY;
    // only the secrets are not read.
    validate::validate(
        &source,
        path,
        &|name| std::env::var(name).ok(),
        overrides,
        false,
    )
}
