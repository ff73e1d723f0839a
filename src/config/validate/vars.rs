//! `[vars]`, a check's `vars`, `LOOKOUT_VAR_name` and `--var name=value`:
//! values for templates, known when the config loads. The command line
//! wins over the environment, which wins over a check's (or flow's) own
//! `vars`, which win over `[vars]`. The command line and the environment
//! may only set names `[vars]` declares, so a typo is an error, not a
//! silent no-op. `[defaults] base_url` is rendered here, with `[vars]`.

use super::*;
use crate::config::flow::is_identifier;
use crate::config::raw::MatrixValue;
use crate::model::BUILTIN_VARS;

/// What every check and flow may use.
pub(in crate::config) struct Globals {
    /// `[vars]`, with the environment's and the command line's values.
    pub vars: Vars,
    /// The environment's and the command line's values alone: over a
    /// check's own `vars` too.
    pub pinned: Vars,
    /// `[defaults] base_url`, rendered, without a trailing `/`.
    pub base_url: Option<String>,
}

fn name_ok(ctx: &Ctx<'_>, field: &str, key: &str, span: Range<usize>) -> Result<(), ConfigError> {
    if is_identifier(key) && !BUILTIN_VARS.contains(&key) {
        return Ok(());
    }
    Err(ctx.err(
        span,
        format!("{field}.{key}"),
        format!(
            "{key:?} cannot be a variable name (letters, digits and _, not one of {})",
            BUILTIN_VARS.join(", ")
        ),
    ))
}

pub(super) fn globals(
    ctx: &Ctx<'_>,
    raw: &RawConfig,
    env: &dyn Fn(&str) -> Option<String>,
    overrides: &ClusterOverrides,
    templater: &Templater,
) -> Result<Globals, ConfigError> {
    let mut vars = Vars::new();
    let mut pinned = Vars::new();
    for (key, value) in &raw.vars {
        name_ok(ctx, "vars", key, value.span())?;
        let from_env = env(&format!("LOOKOUT_VAR_{key}"));
        if let Some(v) = &from_env {
            pinned.insert(key.clone(), v.clone());
        }
        vars.insert(
            key.clone(),
            from_env.unwrap_or_else(|| value.get_ref().0.clone()),
        );
    }
    for (key, value) in &overrides.vars {
        if !vars.contains_key(key) {
            let known: Vec<&str> = vars.keys().map(String::as_str).collect();
            return Err(ctx.err(
                0..0,
                format!("--var {key}"),
                format!(
                    "no [vars] entry {key:?} to override; [vars] defines: {}",
                    if known.is_empty() {
                        "nothing".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
        vars.insert(key.clone(), value.clone());
        pinned.insert(key.clone(), value.clone());
    }
    let base_url = match &raw.defaults.base_url {
        None => None,
        Some(text) => {
            let field = "defaults.base_url";
            let used = templater
                .variables(text.get_ref())
                .map_err(|e| ctx.err(text.span(), field, e))?;
            if let Some(unknown) = used.iter().find(|v| !vars.contains_key(*v)) {
                return Err(ctx.err(
                    text.span(),
                    field,
                    format!("unknown template variable {unknown:?}: base_url can use [vars] only"),
                ));
            }
            let rendered = templater
                .render(text.get_ref(), &vars)
                .map_err(|e| ctx.err(text.span(), field, e))?;
            let url = Url::parse(&rendered).map_err(|e| {
                ctx.err(text.span(), field, format!("invalid URL {rendered:?}: {e}"))
            })?;
            if !url.username().is_empty() || url.password().is_some() {
                return Err(ctx.err(
                    text.span(),
                    field,
                    "the base URL carries a user or password: use [defaults] auth",
                ));
            }
            if !matches!(url.scheme(), "http" | "https")
                || url.host_str().is_none()
                || url.query().is_some()
                || url.fragment().is_some()
            {
                return Err(ctx.err(
                    text.span(),
                    field,
                    format!(
                        "{rendered:?} is not an http:// or https:// URL with a host (and no query or fragment)"
                    ),
                ));
            }
            Some(rendered.trim_end_matches('/').to_owned())
        }
    };
    Ok(Globals {
        vars,
        pinned,
        base_url,
    })
}

/// A check's or flow's values: `[vars]`, then its own `vars`, then what
/// the environment and the command line pinned.
pub(in crate::config) fn own_vars(
    ctx: &Ctx<'_>,
    field: &str,
    own: &BTreeMap<String, Spanned<MatrixValue>>,
    globals: &Globals,
) -> Result<Vars, ConfigError> {
    let mut out = globals.vars.clone();
    for (key, value) in own {
        name_ok(ctx, &format!("{field}.vars"), key, value.span())?;
        out.insert(key.clone(), value.get_ref().0.clone());
    }
    for (key, value) in &globals.pinned {
        out.insert(key.clone(), value.clone());
    }
    Ok(out)
}

/// A URL as written, joined to `base_url` when it starts with `/`.
pub(in crate::config) fn with_base(url: &str, globals: &Globals) -> String {
    match &globals.base_url {
        Some(base) if url.starts_with('/') => format!("{base}{url}"),
        _ => url.to_owned(),
    }
}
