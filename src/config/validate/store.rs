//! `[store]`: the history database.

use super::*;

/// Where the history goes when `[store] path` is not set: never next to
/// the config unasked (it may be a read-only `/etc` or a repository).
/// systemd's `STATE_DIRECTORY` (its first entry) when set, else
/// `$XDG_STATE_HOME/lookout`, else `$HOME/.local/state/lookout`, else the
/// working directory.
fn default_store_dir(env: &dyn Fn(&str) -> Option<String>) -> std::path::PathBuf {
    let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    if let Some(dirs) = set("STATE_DIRECTORY")
        && let Some(first) = dirs.split(':').find(|d| !d.is_empty())
    {
        return std::path::PathBuf::from(first);
    }
    // The XDG spec ignores a relative XDG_STATE_HOME.
    if let Some(xdg) = set("XDG_STATE_HOME").filter(|x| Path::new(x).is_absolute()) {
        return Path::new(&xdg).join("lookout");
    }
    if let Some(home) = set("HOME") {
        return Path::new(&home).join(".local/state/lookout");
    }
    std::path::PathBuf::from(".")
}

pub(super) fn store_settings(
    ctx: &Ctx<'_>,
    raw: &super::raw::RawStore,
    cluster: &Cluster,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<crate::store::StoreSettings, ConfigError> {
    use crate::store::{StorePath, StoreSettings};
    let path = match &raw.path {
        None => StorePath::File(per_instance(
            &default_store_dir(env).join(DEFAULT_STORE_PATH),
            cluster,
        )),
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
