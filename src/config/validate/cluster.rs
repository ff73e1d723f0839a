//! `[cluster]` and `[view]`: where this instance stands among many, which
//! checks it runs, its share of the per-target limit, its history file.

use super::*;

pub(super) fn view_settings(
    ctx: &Ctx<'_>,
    raw: &super::raw::RawView,
) -> Result<ViewSettings, ConfigError> {
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
pub(super) const MAX_PLACE_NAME: usize = 63;

/// `[cluster]` with the command line over it. The shard comes from
/// `--shard`, else `shard`, else the pod's name (`POD_NAME`, else
/// `HOSTNAME`) with a shard count; none of those: the only shard.
pub(super) fn cluster(
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
pub(super) fn share(limit: usize, shard: Shard) -> usize {
    let (n, i) = (shard.count() as usize, shard.index() as usize);
    (limit / n + usize::from(i < limit % n)).max(1)
}

/// A location or replica name: it names files and Prometheus label values.
pub(super) fn place_name(s: &str) -> bool {
    s.len() <= MAX_PLACE_NAME
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Whether a check or flow with these `locations` runs on this instance:
/// everywhere when it names none; on an instance with no location, always
/// (one instance runs everything); otherwise where its list names this
/// instance's location.
pub(super) fn runs_here(
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

/// The history file of this instance: with a location, a shard of several
/// or a replica, each goes into the name, keyed (`lookout.db` becomes
/// `lookout-location=eu-west-shard=2of3-replica=b.db`), so instances that
/// share a config and a host never share a file: place names hold no `=`,
/// so no two placements give one name.
pub(super) fn per_instance(path: &Path, cluster: &Cluster) -> std::path::PathBuf {
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
