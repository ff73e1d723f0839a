//! `[[checks]]`: one entry expanded over its matrix into checks.

use super::kind;
use super::*;
use crate::config::raw::MatrixValue;
use crate::model::{Kind, Target};

/// The most checks one matrix may expand into.
pub(super) const MAX_MATRIX_EXPANSION: usize = 10_000;

/// What config-wide validation hands to one `[[checks]]` entry.
pub(super) struct CheckEnv<'a> {
    pub defaults: &'a RawDefaults,
    pub secrets: &'a BTreeMap<String, Secret>,
    pub templater: &'a Templater,
    pub globals: &'a Globals,
    /// Whether `[defaults] auth` and `headers` apply: not to a `/probe`
    /// module, whose target the scraper chooses.
    pub inherit_credentials: bool,
}

/// One `[[checks]]` entry, expanded over its matrix.
pub(super) fn expand_check(
    ctx: &Ctx<'_>,
    field: &str,
    spanned: &Spanned<RawCheck>,
    env: &CheckEnv<'_>,
    tls_profiles: &mut Vec<TlsSettings>,
) -> Result<Vec<Check>, ConfigError> {
    let (defaults, secrets, templater) = (env.defaults, env.secrets, env.templater);
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
    let own = own_vars(ctx, field, &raw.vars, env.globals)?;
    if let Some(key) = raw.matrix.keys().find(|k| own.contains_key(*k)) {
        return Err(ctx.err(
            spanned.span(),
            format!("{field}.matrix.{key}"),
            format!("{key:?} is a matrix key and a variable ([vars] or vars): rename one"),
        ));
    }
    let routes = super::routes::routes(ctx, field, raw, spanned.span())?;
    let route_key = crate::model::ROUTE_KEY.to_owned();
    let allowed: Vec<&String> = raw
        .matrix
        .keys()
        .chain(own.keys())
        .chain(Some(&route_key).filter(|_| !routes.is_empty()))
        .collect();
    // `[defaults] headers` first; the check's own header of a name wins.
    let mut headers: BTreeMap<String, (String, &String, &Spanned<String>)> = BTreeMap::new();
    for (key, value) in defaults.headers.iter().filter(|_| env.inherit_credentials) {
        headers.insert(
            key.to_ascii_lowercase(),
            (format!("defaults.headers.{key}"), key, value),
        );
    }
    for (key, value) in &raw.headers {
        headers.insert(
            key.to_ascii_lowercase(),
            (format!("{field}.headers.{key}"), key, value),
        );
    }

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
    for (where_, _, value) in headers.values() {
        templated.push((
            where_.clone(),
            value.span(),
            vars_of(templater, ctx, where_, value)?,
        ));
    }
    for (route, base) in &routes {
        let where_ = format!("{field}.routes.{route}");
        templated.push((
            where_.clone(),
            base.span(),
            vars_of(templater, ctx, &where_, base)?,
        ));
    }
    if let Some(body) = &raw.body {
        templated.push((
            format!("{field}.body"),
            body.span(),
            vars_of(templater, ctx, &format!("{field}.body"), body)?,
        ));
    }
    if let Some(dns) = &raw.dns {
        let name = &dns.get_ref().name;
        templated.push((
            format!("{field}.dns.name"),
            name.span(),
            vars_of(templater, ctx, &format!("{field}.dns.name"), name)?,
        ));
    }
    if let Some(a) = &raw.auth {
        for (key, text) in auth_texts(a.get_ref()) {
            let where_ = format!("{field}.auth.{key}");
            let spanned = Spanned::new(a.span(), text.to_owned());
            templated.push((
                where_.clone(),
                a.span(),
                vars_of(templater, ctx, &where_, &spanned)?,
            ));
        }
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
                "this check has no matrix and no vars".to_owned()
            } else {
                format!(
                    "matrix and vars define {}",
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

    let shared = SharedParts::build(
        ctx,
        field,
        raw,
        defaults,
        secrets,
        tls_profiles,
        env.inherit_credentials,
    )?;
    let headers: Vec<(String, &String, &Spanned<String>)> = headers.into_values().collect();
    let family = super::routes::family(raw, &routes, templater, &own);
    let ways: Vec<Option<(&str, &Spanned<String>)>> = if routes.is_empty() {
        vec![None]
    } else {
        routes.iter().copied().map(Some).collect()
    };
    if combos.len() * ways.len() > MAX_MATRIX_EXPANSION {
        return Err(ctx.err(
            spanned.span(),
            format!("{field}.routes"),
            format!("matrix and routes expand to more than {MAX_MATRIX_EXPANSION} checks"),
        ));
    }
    let mut out = Vec::with_capacity(combos.len() * ways.len());
    for combo in combos {
        for &route in &ways {
            let mut matrix = combo.clone();
            if let Some((name, _)) = route {
                matrix.insert(route_key.clone(), name.to_owned());
            }
            let mut vars = own.clone();
            vars.extend(matrix.iter().map(|(k, v)| (k.clone(), v.clone())));
            let one = One {
                matrix: &matrix,
                vars: &vars,
                headers: &headers,
                globals: env.globals,
                route,
            };
            let mut check = build_one(ctx, field, raw, &one, templater, &shared, secrets)?;
            check.family = family.clone();
            out.push(check);
        }
    }
    Ok(out)
}

pub(in crate::config) fn vars_of(
    templater: &Templater,
    ctx: &Ctx<'_>,
    field: &str,
    text: &Spanned<String>,
) -> Result<Vec<String>, ConfigError> {
    templater
        .variables(text.get_ref())
        .map_err(|e| ctx.err(text.span(), field, e))
}

pub(super) fn matrix_combinations(
    ctx: &Ctx<'_>,
    field: &str,
    spanned: &Spanned<RawCheck>,
) -> Result<Vec<Vars>, ConfigError> {
    combinations(ctx, field, spanned.span(), &spanned.get_ref().matrix)
}

/// Every combination of a matrix's values (a check's or a flow's), in key
/// order; at most [`MAX_MATRIX_EXPANSION`].
pub(in crate::config) fn combinations(
    ctx: &Ctx<'_>,
    field: &str,
    span: Range<usize>,
    matrix: &BTreeMap<String, Vec<MatrixValue>>,
) -> Result<Vec<Vars>, ConfigError> {
    let mut combos: Vec<Vars> = vec![Vars::new()];
    for (key, values) in matrix {
        if values.is_empty() {
            return Err(ctx.err(
                span.clone(),
                format!("{field}.matrix.{key}"),
                "a matrix list needs at least one value",
            ));
        }
        if combos.len() * values.len() > MAX_MATRIX_EXPANSION {
            return Err(ctx.err(
                span.clone(),
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
pub(super) struct SharedParts {
    group: String,
    method: Method,
    schedule: Schedule,
    auth: Auth,
    timeout: Duration,
    max_body_bytes: u64,
    max_redirects: u32,
    tls_profile: usize,
    expect: Expectations,
    run_at_start: bool,
    thresholds: Thresholds,
    burst: Option<crate::model::Burst>,
}

impl SharedParts {
    fn build(
        ctx: &Ctx<'_>,
        field: &str,
        raw: &RawCheck,
        defaults: &RawDefaults,
        secrets: &BTreeMap<String, Secret>,
        tls_profiles: &mut Vec<TlsSettings>,
        inherit_credentials: bool,
    ) -> Result<SharedParts, ConfigError> {
        let method = method(ctx, field, raw.method.as_ref())?;
        let tls_profile = tls_profile(ctx, field, raw.tls.as_ref(), defaults, tls_profiles)?;
        let (run_at_start, thresholds) = policy(
            ctx,
            field,
            OwnPolicy {
                run_at_start: raw.run_at_start,
                failure_threshold: raw.failure_threshold.as_ref(),
                success_threshold: raw.success_threshold.as_ref(),
            },
            defaults,
        )?;
        let (timeout, max_body_bytes, max_redirects) = request_limits(
            raw.timeout.as_ref(),
            raw.max_body_bytes,
            raw.max_redirects,
            defaults,
        );
        let expect = match (&raw.expect, &defaults.expect) {
            (Some(own), _) => expectations(ctx, field, Some(own))?,
            (None, inherited) => expectations(ctx, "defaults", inherited.as_ref())?,
        };
        let burst = super::burst(
            ctx,
            field,
            super::OwnBurst {
                repeat: raw.repeat.as_ref(),
                within: raw.within.as_ref(),
                expect_span: raw.expect.as_ref().map_or(raw.name.span(), |e| e.span()),
                timeout,
            },
            &expect,
        )?;
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
            auth: match (&raw.auth, &defaults.auth) {
                // Rendered and checked per matrix combination.
                (Some(own), _) if is_templated(own.get_ref()) => Auth::None,
                (Some(own), _) => auth(ctx, field, Some(own), secrets)?,
                (None, inherited) if inherit_credentials => {
                    auth(ctx, "defaults", inherited.as_ref(), secrets)?
                }
                (None, _) => Auth::None,
            },
            timeout,
            max_body_bytes,
            max_redirects,
            tls_profile,
            expect,
            run_at_start,
            thresholds,
            burst,
        })
    }
}

/// The templated strings of an `auth` table, by key.
fn auth_texts(a: &RawAuth) -> Vec<(&'static str, &str)> {
    let mut out = vec![("scheme", a.scheme.get_ref().as_str())];
    for (key, value) in [
        ("header", &a.header),
        ("param", &a.param),
        ("username", &a.username),
        ("secret", &a.secret),
    ] {
        if let Some(v) = value {
            out.push((key, v.as_str()));
        }
    }
    out
}

fn is_templated(a: &RawAuth) -> bool {
    auth_texts(a)
        .iter()
        .any(|(_, t)| crate::config::templated::marker(t).is_some())
}

/// An `auth` table with its templates rendered for one combination.
fn render_auth(
    ctx: &Ctx<'_>,
    field: &str,
    a: &Spanned<RawAuth>,
    templater: &Templater,
    vars: &Vars,
) -> Result<Spanned<RawAuth>, ConfigError> {
    let render = |key: &str, text: &str| {
        templater
            .render(text, vars)
            .map(|s| s.trim().to_owned())
            .map_err(|e| ctx.err(a.span(), format!("{field}.auth.{key}"), e))
    };
    let raw = a.get_ref();
    let opt = |key: &str, v: &Option<String>| v.as_deref().map(|t| render(key, t)).transpose();
    Ok(Spanned::new(
        a.span(),
        RawAuth {
            scheme: Spanned::new(raw.scheme.span(), render("scheme", raw.scheme.get_ref())?),
            header: opt("header", &raw.header)?,
            param: opt("param", &raw.param)?,
            username: opt("username", &raw.username)?,
            secret: opt("secret", &raw.secret)?,
            ..raw.clone()
        },
    ))
}

/// One matrix combination of a check: its values and what it renders with.
pub(super) struct One<'a> {
    /// The matrix values alone (the name's suffix, `Check::matrix`).
    pub matrix: &'a Vars,
    /// Everything a template may use: vars, then the matrix values.
    pub vars: &'a Vars,
    /// `[defaults] headers` and the check's own, merged: where each was
    /// written, its name, its template.
    pub headers: &'a [(String, &'a String, &'a Spanned<String>)],
    pub globals: &'a Globals,
    /// The route this combination is sent through, when the entry has
    /// `routes`: its name and URL template.
    pub route: Option<(&'a str, &'a Spanned<String>)>,
}

pub(super) fn build_one(
    ctx: &Ctx<'_>,
    field: &str,
    raw: &RawCheck,
    one: &One<'_>,
    templater: &Templater,
    shared: &SharedParts,
    secrets: &BTreeMap<String, Secret>,
) -> Result<Check, ConfigError> {
    let vars = one.vars;
    let render = |text: &Spanned<String>, what: &str| {
        templater
            .render(text.get_ref(), vars)
            .map_err(|e| ctx.err(text.span(), format!("{field}.{what}"), e))
    };
    let mut name = render(&raw.name, "name")?.trim().to_owned();
    if !one.matrix.is_empty() {
        let labels: Vec<String> = one.matrix.iter().map(|(k, v)| format!("{k}={v}")).collect();
        name = format!("{name}[{}]", labels.join(","));
    }

    let path = render(&raw.url, "url")?;
    let url_text = match one.route {
        Some((route, base)) => {
            let rendered = render(base, &format!("routes.{route}"))?;
            super::routes::join(
                ctx,
                field,
                (route, base),
                &rendered,
                (&path, raw.url.span()),
            )?
        }
        None => with_base(&path, one.globals),
    };
    // The phase comes from the expanded name, so matrix siblings spread out.
    let schedule = match &shared.schedule {
        Schedule::Interval { every, .. } => Schedule::interval(*every, &name),
        cron => cron.clone(),
    };
    let matrix = one
        .matrix
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let kind = match kind::kind_of(&url_text) {
        Some(kind) => kind,
        None if url_text.contains("://") => {
            return Err(ctx.err(
                raw.url.span(),
                format!("{field}.url"),
                format!(
                    "{url_text:?}: lookout probes http://, https://, tcp://, tls://, dns://, grpc://, grpcs:// and icmp:// URLs"
                ),
            ));
        }
        None => Kind::Http,
    };
    kind::refuse_foreign(
        ctx,
        field,
        raw,
        kind,
        kind::speaks_tls(kind, &url_text, raw),
    )?;
    if kind != Kind::Http {
        let dns_name = match &raw.dns {
            Some(dns) => Some(render(&dns.get_ref().name, "dns.name")?),
            None => None,
        };
        let input = kind::KindInput {
            field,
            raw,
            url: &url_text,
            url_span: raw.url.span(),
            dns_name,
            timeout: shared.timeout,
            tls_profile: shared.tls_profile,
            secrets,
        };
        return Ok(Check {
            id: 0,
            name,
            group: shared.group.clone(),
            schedule,
            probe: kind::target(ctx, kind, &input)?,
            expect: shared.expect.clone(),
            matrix,
            run_at_start: shared.run_at_start,
            thresholds: shared.thresholds,
            family: None,
            burst: shared.burst,
        });
    }
    let url = probe_url(ctx, field, raw.url.span(), &url_text)?;

    let mut headers = HeaderMap::new();
    for (where_, key, value) in one.headers {
        let name = header_name(ctx, where_, key, value.span())?;
        let text = templater
            .render(value.get_ref(), vars)
            .map_err(|e| ctx.err(value.span(), where_.as_str(), e))?;
        let value = HeaderValue::from_str(&text).map_err(|_| {
            ctx.err(
                value.span(),
                where_.as_str(),
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

    let credential = match &raw.auth {
        Some(a) if is_templated(a.get_ref()) => auth(
            ctx,
            field,
            Some(&render_auth(ctx, field, a, templater, vars)?),
            secrets,
        )?,
        _ => shared.auth.clone(),
    };
    Ok(Check {
        // Set to the check's position when the config is assembled.
        id: 0,
        name,
        group: shared.group.clone(),
        schedule,
        probe: Target::Http(HttpRequest {
            method: shared.method.clone(),
            url,
            headers,
            body,
            auth: credential,
            timeout: shared.timeout,
            max_body_bytes: shared.max_body_bytes,
            max_redirects: shared.max_redirects,
            tls_profile: shared.tls_profile,
        }),
        expect: shared.expect.clone(),
        matrix,
        run_at_start: shared.run_at_start,
        thresholds: shared.thresholds,
        family: None,
        burst: shared.burst,
    })
}
