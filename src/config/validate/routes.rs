//! A check's `routes`: one request sent through several ways to the same
//! service (`internal`, `proxy`, `public`), each its own check, and the
//! `Family` that keeps them (and a matrix's checks) together for grids.

use super::*;
use crate::model::{Family, ROUTE_KEY};

/// The most routes one check may compare.
pub(super) const MAX_ROUTES: usize = 16;

/// A check's routes in the order written: name and URL template.
pub(super) type Routes<'a> = Vec<(&'a str, &'a Spanned<String>)>;

/// The routes of a `[[checks]]` entry, in the order the file gives them
/// (the table is read sorted; the spans say where each was written).
pub(super) fn routes<'a>(
    ctx: &Ctx<'_>,
    field: &str,
    raw: &'a RawCheck,
    span: Range<usize>,
) -> Result<Routes<'a>, ConfigError> {
    if raw.routes.is_empty() {
        return Ok(Vec::new());
    }
    if raw.routes.len() > MAX_ROUTES {
        return Err(ctx.err(
            span,
            format!("{field}.routes"),
            format!("at most {MAX_ROUTES} routes"),
        ));
    }
    if raw.matrix.contains_key(ROUTE_KEY) || raw.vars.contains_key(ROUTE_KEY) {
        return Err(ctx.err(
            span,
            format!("{field}.routes"),
            format!("{ROUTE_KEY:?} names the route of a check with routes: rename the matrix key or variable"),
        ));
    }
    let mut out: Routes<'a> = raw.routes.iter().map(|(k, v)| (k.as_str(), v)).collect();
    out.sort_by_key(|(_, v)| v.span().start);
    for (name, value) in &out {
        let ok = !name.is_empty()
            && name.len() <= 32
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok {
            return Err(ctx.err(
                value.span(),
                format!("{field}.routes.{name}"),
                "a route name is 1 to 32 letters, digits, _ or -",
            ));
        }
    }
    Ok(out)
}

/// A route's URL with the check's path after it: `https://h/api/mlflow`
/// and `/api/2.0/x` make `https://h/api/mlflow/api/2.0/x`.
pub(super) fn join(
    ctx: &Ctx<'_>,
    field: &str,
    (route, base): (&str, &Spanned<String>),
    rendered_base: &str,
    (path, path_span): (&str, Range<usize>),
) -> Result<String, ConfigError> {
    if !path.starts_with('/') {
        return Err(ctx.err(
            path_span,
            format!("{field}.url"),
            format!("{path:?}: with routes, url is the path sent through every route (it starts with /), joined to each route's URL"),
        ));
    }
    let base_text = rendered_base.trim();
    let err = |message: String| ctx.err(base.span(), format!("{field}.routes.{route}"), message);
    if !(base_text.starts_with("http://") || base_text.starts_with("https://")) {
        return Err(err(format!(
            "{base_text:?}: a route is an http:// or https:// URL"
        )));
    }
    let parsed = Url::parse(base_text).map_err(|e| err(format!("invalid URL: {e}")))?;
    // Not quoted: it holds a password.
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(err(
            "the route carries a user or password: use the check's auth".to_owned(),
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(err(format!(
            "{base_text:?}: a route is where the path goes, without a ?query or #fragment (put them in url)"
        )));
    }
    let base_text = base_text.strip_suffix('/').unwrap_or(base_text);
    Ok(format!("{base_text}{path}"))
}

/// The family of an entry with a matrix or routes; `None` for a plain check.
pub(super) fn family(
    raw: &RawCheck,
    routes: &Routes<'_>,
    templater: &Templater,
    own: &Vars,
) -> Option<Arc<Family>> {
    if raw.matrix.is_empty() && routes.is_empty() {
        return None;
    }
    let written = raw.name.get_ref().trim();
    let title = templater
        .render(written, own)
        .map(|t| t.trim().to_owned())
        .unwrap_or_else(|_| written.to_owned());
    let mut keys: Vec<String> = raw.matrix.keys().cloned().collect();
    if !routes.is_empty() {
        keys.push(ROUTE_KEY.to_owned());
    }
    Some(Arc::new(Family {
        title,
        keys,
        routes: routes.iter().map(|(n, _)| (*n).to_owned()).collect(),
    }))
}
