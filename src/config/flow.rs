//! `[[flows]]`: validating a flow and rendering its steps' requests.
//!
//! A step's URL, header values and body are templates over three kinds of
//! variables: the flow's fixed `vars`, the built-ins every run has
//! (`run_id`, `now_ms`, `uuid`), and values captured by earlier steps. Which
//! variables a step may use is decided here, when the config loads, so a
//! typo or a step that uses a value before it is captured is a config error
//! at the template's line and column, never a surprise at 3 a.m.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use toml::Spanned;
use url::Url;

use super::raw::{RawCapture, RawDefaults, RawFlow, RawStep};
use super::validate::{
    Ctx, MAX_NAME_LEN, OwnSchedule, auth, expectations, header_name, method, probe_url,
    request_limits, schedule, tls_profile, valid_name, vars_of,
};
use super::*;
use crate::template::{Templater, Vars};

const MAX_STEPS: usize = 50;
/// Stand-ins for run-time values when templates are tried at load time.
const SENTINELS: [&str; 2] = ["lookout-sentinel-a", "lookout-sentinel-b"];

/// What the config-wide validation hands to one flow.
pub(super) struct FlowEnv<'a> {
    pub defaults: &'a RawDefaults,
    pub secrets: &'a BTreeMap<String, crate::secret::Secret>,
    pub templater: &'a Templater,
    pub globals: &'a super::validate::Globals,
}

pub(super) fn flow(
    ctx: &Ctx<'_>,
    field: &str,
    raw: &RawFlow,
    matrix: &Vars,
    env: &FlowEnv<'_>,
    tls_profiles: &mut Vec<TlsSettings>,
) -> Result<Flow, ConfigError> {
    let mut name = raw.name.get_ref().trim().to_owned();
    if !valid_name(&name) {
        return Err(ctx.err(
            raw.name.span(),
            format!("{field}.name"),
            format!(
                "a flow name must be 1 to {MAX_NAME_LEN} characters without control characters"
            ),
        ));
    }
    let steps = raw.steps.get_ref();
    if steps.is_empty() || steps.len() > MAX_STEPS {
        return Err(ctx.err(
            raw.steps.span(),
            format!("{field}.steps"),
            format!("a flow needs 1 to {MAX_STEPS} steps"),
        ));
    }
    if raw.cleanup.len() > MAX_STEPS {
        return Err(ctx.err(
            raw.name.span(),
            format!("{field}.cleanup"),
            format!("a flow has at most {MAX_STEPS} cleanup steps"),
        ));
    }

    // `[vars]`, the flow's own over them, the command line over both;
    // then this combination's matrix values.
    let mut vars: Vars = super::validate::own_vars(ctx, field, &raw.vars, env.globals)?;
    if let Some(key) = matrix.keys().find(|k| vars.contains_key(*k)) {
        return Err(ctx.err(
            raw.name.span(),
            format!("{field}.matrix.{key}"),
            format!("{key:?} is a matrix key and a variable ([vars] or vars): rename one"),
        ));
    }
    if let Some(key) = matrix
        .keys()
        .find(|k| !is_identifier(k) || BUILTIN_VARS.contains(&k.as_str()))
    {
        return Err(ctx.err(
            raw.name.span(),
            format!("{field}.matrix.{key}"),
            format!("{key:?} cannot be a variable name (letters, digits and _, not a built-in)"),
        ));
    }
    vars.extend(matrix.iter().map(|(k, v)| (k.clone(), v.clone())));
    if !matrix.is_empty() {
        let labels: Vec<String> = matrix.iter().map(|(k, v)| format!("{k}={v}")).collect();
        name = format!("{name}[{}]", labels.join(","));
    }

    let tls = tls_profile(ctx, field, raw.tls.as_ref(), env.defaults, tls_profiles)?;
    let shared = Shared {
        field,
        flow: raw,
        vars: &vars,
        tls,
    };
    // Every capture, in run order, to say where a misplaced variable comes from.
    let all_steps: Vec<(String, &Spanned<RawStep>)> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("{field}.steps[{i}]"), s))
        .chain(
            raw.cleanup
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("{field}.cleanup[{i}]"), s)),
        )
        .collect();

    let mut names = HashSet::new();
    let mut captured: Vec<String> = Vec::new();
    let mut built = Vec::with_capacity(all_steps.len());
    for (position, (step_field, spanned)) in all_steps.iter().enumerate() {
        let s = spanned.get_ref();
        let step_name = s.name.get_ref().trim().to_owned();
        if !valid_name(&step_name) {
            return Err(ctx.err(
                s.name.span(),
                format!("{step_field}.name"),
                format!(
                    "a step name must be 1 to {MAX_NAME_LEN} characters without control characters"
                ),
            ));
        }
        if !names.insert(step_name.clone()) {
            return Err(ctx.err(
                s.name.span(),
                format!("{step_field}.name"),
                format!("duplicate step name {step_name:?} in this flow"),
            ));
        }
        let later = |var: &str| {
            all_steps[position..].iter().find_map(|(f, later)| {
                later
                    .get_ref()
                    .capture
                    .contains_key(var)
                    .then(|| format!("{f} ({:?})", later.get_ref().name.get_ref()))
            })
        };
        let step = step(
            ctx, step_field, step_name, s, &shared, env, &captured, &later,
        )?;
        for c in &step.captures {
            captured.push(c.var.clone());
        }
        built.push(step);
    }
    let cleanup = built.split_off(steps.len());

    let timeout = match &raw.timeout {
        Some(t) => t.get_ref().0,
        // By default only the steps' own timeouts bound the flow.
        None => built.iter().map(|s| s.request.timeout).sum(),
    };
    let schedule = match schedule(
        ctx,
        field,
        OwnSchedule {
            schedule: raw.schedule.as_ref(),
            interval: raw.interval.as_ref(),
            timezone: raw.timezone.as_ref(),
            name_span: raw.name.span(),
        },
        env.defaults,
    )? {
        Schedule::Interval { every, .. } => Schedule::interval(every, &name),
        cron => cron,
    };
    let (run_at_start, thresholds) = super::validate::policy(
        ctx,
        field,
        super::validate::OwnPolicy {
            run_at_start: raw.run_at_start,
            failure_threshold: raw.failure_threshold.as_ref(),
            success_threshold: raw.success_threshold.as_ref(),
        },
        env.defaults,
    )?;
    Ok(Flow {
        // Set to the flow's position when the config is assembled.
        id: 0,
        run_at_start,
        thresholds,
        name,
        group: raw
            .group
            .clone()
            .or_else(|| env.defaults.group.clone())
            .unwrap_or_else(|| DEFAULT_GROUP.to_owned()),
        schedule,
        timeout,
        vars,
        steps: built,
        cleanup,
    })
}

/// What every step of one flow shares.
struct Shared<'a> {
    field: &'a str,
    flow: &'a RawFlow,
    vars: &'a Vars,
    tls: usize,
}

#[allow(clippy::too_many_arguments)]
fn step(
    ctx: &Ctx<'_>,
    field: &str,
    name: String,
    s: &RawStep,
    shared: &Shared<'_>,
    env: &FlowEnv<'_>,
    captured: &[String],
    captured_later: &dyn Fn(&str) -> Option<String>,
) -> Result<Step, ConfigError> {
    let templater = env.templater;
    // A URL that starts with `/` is joined to `[defaults] base_url`.
    let joined = Spanned::new(
        s.url.span(),
        super::validate::with_base(s.url.get_ref(), env.globals),
    );
    let s_url = &joined;
    // `[defaults]` headers, then the flow's; a step's own header of the
    // same name wins.
    let mut header_sources: BTreeMap<String, (String, &str, &Spanned<String>)> = BTreeMap::new();
    for (key, value) in &env.defaults.headers {
        header_sources.insert(
            key.to_ascii_lowercase(),
            (format!("defaults.headers.{key}"), key, value),
        );
    }
    for (key, value) in &shared.flow.headers {
        let where_ = format!("{}.headers.{key}", shared.field);
        header_sources.insert(key.to_ascii_lowercase(), (where_, key, value));
    }
    for (key, value) in &s.headers {
        header_sources.insert(
            key.to_ascii_lowercase(),
            (format!("{field}.headers.{key}"), key, value),
        );
    }

    // Templates and where they were written.
    let mut templates: Vec<(String, Range<usize>, Vec<String>)> = vec![(
        format!("{field}.url"),
        s_url.span(),
        vars_of(templater, ctx, &format!("{field}.url"), s_url)?,
    )];
    for (where_, _, value) in header_sources.values() {
        templates.push((
            where_.clone(),
            value.span(),
            vars_of(templater, ctx, where_, value)?,
        ));
    }
    if let Some(body) = &s.body {
        let where_ = format!("{field}.body");
        templates.push((
            where_.clone(),
            body.span(),
            vars_of(templater, ctx, &where_, body)?,
        ));
    }
    if let Some(json) = &s.json {
        let used = templater
            .json_variables(json.get_ref())
            .map_err(|e| ctx.err(json.span(), format!("{field}.json"), e))?;
        templates.push((format!("{field}.json"), json.span(), used));
    }

    let mut uses: Vec<String> = Vec::new();
    for (where_, span, used) in &templates {
        for var in used {
            if shared.vars.contains_key(var) || BUILTIN_VARS.contains(&var.as_str()) {
                continue;
            }
            if captured.contains(var) {
                uses.push(var.clone());
                continue;
            }
            let message = match captured_later(var) {
                Some(step) => format!(
                    "{var:?} is captured by {step}; a step can only use values captured by the steps before it"
                ),
                None => {
                    let mut known: Vec<&str> = BUILTIN_VARS.to_vec();
                    known.extend(shared.vars.keys().map(String::as_str));
                    known.extend(captured.iter().map(String::as_str));
                    format!(
                        "unknown template variable {var:?}: this step can use {}",
                        known.join(", ")
                    )
                }
            };
            return Err(ctx.err(span.clone(), where_, message));
        }
    }
    uses.sort();
    uses.dedup();

    let mut headers = Vec::new();
    for (where_, key, value) in header_sources.values() {
        headers.push((
            header_name(ctx, where_, key, value.span())?,
            value.get_ref().clone(),
        ));
    }
    let body = match (&s.body, &s.json) {
        (Some(_), Some(json)) => {
            return Err(ctx.err(
                json.span(),
                format!("{field}.json"),
                "set either body or json, not both",
            ));
        }
        (Some(body), None) => BodyTemplate::Text(body.get_ref().clone()),
        (None, Some(json)) => BodyTemplate::Json(json.get_ref().clone()),
        (None, None) => BodyTemplate::None,
    };
    let auth = match (&s.auth, &shared.flow.auth, &env.defaults.auth) {
        (Some(a), _, _) => auth(ctx, field, Some(a), env.secrets)?,
        (None, Some(a), _) => auth(ctx, shared.field, Some(a), env.secrets)?,
        (None, None, a) => auth(ctx, "defaults", a.as_ref(), env.secrets)?,
    };

    let mut captures = Vec::new();
    for (var, spec) in &s.capture {
        let where_ = format!("{field}.capture.{var}");
        if !is_identifier(var)
            || BUILTIN_VARS.contains(&var.as_str())
            || shared.vars.contains_key(var)
        {
            return Err(ctx.err(
                spec.span(),
                where_,
                format!(
                    "{var:?} cannot be captured into: it must be letters, digits and _, and not a built-in or a name in vars"
                ),
            ));
        }
        if captured.contains(var) {
            return Err(ctx.err(
                spec.span(),
                where_,
                format!("{var:?} is already captured by an earlier step"),
            ));
        }
        let from = match spec.get_ref() {
            RawCapture::Pointer(p) => pointer(ctx, &where_, spec.span(), p)?,
            RawCapture::Table(t) => match (&t.pointer, &t.header) {
                (Some(p), None) => pointer(ctx, &where_, spec.span(), p)?,
                (None, Some(h)) => CaptureFrom::Header(header_name(ctx, &where_, h, spec.span())?),
                _ => {
                    return Err(ctx.err(
                        spec.span(),
                        where_,
                        "set exactly one of pointer or header",
                    ));
                }
            },
        };
        captures.push(Capture {
            var: var.clone(),
            from,
        });
    }

    let (timeout, max_body_bytes, max_redirects) = request_limits(
        s.timeout.as_ref(),
        s.max_body_bytes,
        s.max_redirects,
        env.defaults,
    );
    let url_text = s_url.get_ref().clone();
    let mut request = RequestTemplate {
        method: method(ctx, field, s.method.as_ref())?,
        // Replaced below, once the URL is known to render.
        origin: url::Origin::new_opaque(),
        url: url_text,
        headers,
        body,
        auth,
        timeout,
        max_body_bytes,
        max_redirects,
        tls_profile: shared.tls,
    };
    request.origin = fixed_origin(ctx, field, s, &request, shared.vars, &uses, templater)?;
    let expect = expectations(ctx, field, s.expect.as_ref())?;
    let burst = super::validate::burst(
        ctx,
        field,
        super::validate::OwnBurst {
            repeat: s.repeat.as_ref(),
            within: s.within.as_ref(),
            expect_span: s.expect.as_ref().map_or(s.name.span(), |e| e.span()),
            timeout,
        },
        &expect,
    )?;
    Ok(Step {
        name,
        request,
        expect,
        captures,
        uses,
        burst,
    })
}

/// Renders the step with stand-ins for the captured values it uses, twice
/// with different stand-ins: the URL must parse, every header must be a
/// valid header, and the origin must be the same both times, that is, it
/// must not depend on anything a target sends back.
fn fixed_origin(
    ctx: &Ctx<'_>,
    field: &str,
    s: &RawStep,
    request: &RequestTemplate,
    vars: &Vars,
    uses: &[String],
    templater: &Templater,
) -> Result<url::Origin, ConfigError> {
    let mut origins = Vec::new();
    for sentinel in SENTINELS {
        let mut trial = vars.clone();
        for var in uses.iter().map(String::as_str).chain(BUILTIN_VARS) {
            trial.insert(var.to_owned(), sentinel.to_owned());
        }
        let url_text = templater
            .render(&request.url, &trial)
            .map_err(|e| ctx.err(s.url.span(), format!("{field}.url"), e))?;
        let url = probe_url(ctx, field, s.url.span(), &url_text).map_err(|e| {
            let credentials = Url::parse(&url_text)
                .is_ok_and(|u| !u.username().is_empty() || u.password().is_some());
            if credentials
                || (uses.is_empty() && !BUILTIN_VARS.iter().any(|b| request.url.contains(b)))
            {
                return e;
            }
            ctx.err(
                s.url.span(),
                format!("{field}.url"),
                format!(
                    "the URL must be valid whatever the run-time values are; with {sentinel:?} \
                     standing in for them it is {url_text:?}, which is not (put a \"/\" between \
                     a fixed part and a captured one)"
                ),
            )
        })?;
        request
            .render_for(templater, &trial, &url.origin())
            .map_err(|e| ctx.err(s.name.span(), field, e))?;
        origins.push(url.origin());
    }
    if origins[0] != origins[1] {
        return Err(ctx.err(
            s.url.span(),
            format!("{field}.url"),
            "the scheme, host and port must not come from a captured or built-in value \
             (only the path and query may): credentials go only to the origin in the config",
        ));
    }
    Ok(origins.swap_remove(0))
}

fn pointer(
    ctx: &Ctx<'_>,
    where_: &str,
    span: Range<usize>,
    p: &str,
) -> Result<CaptureFrom, ConfigError> {
    if !(p.is_empty() || p.starts_with('/')) {
        return Err(ctx.err(
            span,
            where_,
            format!(
                "{p:?} is not a JSON pointer (it starts with \"/\", e.g. \"/experiment_id\"); for a header write {{ header = \"Location\" }}"
            ),
        ));
    }
    Ok(CaptureFrom::Json(p.to_owned()))
}

pub(super) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl RequestTemplate {
    /// The request for one run. Errors are for the step's failure reason:
    /// they may quote rendered text, which the caller redacts.
    pub fn render(&self, templater: &Templater, vars: &Vars) -> Result<HttpRequest, String> {
        self.render_for(templater, vars, &self.origin)
    }

    fn render_for(
        &self,
        templater: &Templater,
        vars: &Vars,
        origin: &url::Origin,
    ) -> Result<HttpRequest, String> {
        let url_text = templater.render(&self.url, vars)?;
        let url =
            Url::parse(&url_text).map_err(|e| format!("the URL {url_text:?} is invalid: {e}"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("the URL carries a user or password; not sent".to_owned());
        }
        if url.origin() != *origin {
            return Err(format!(
                "the URL {url_text:?} has another origin than the configured {}; not sent",
                origin.ascii_serialization()
            ));
        }
        let mut headers = HeaderMap::new();
        for (name, template) in &self.headers {
            let text = templater.render(template, vars)?;
            let value = HeaderValue::from_str(&text)
                .map_err(|_| format!("header {name}: the value is not valid in a header"))?;
            headers.append(name.clone(), value);
        }
        let body = match &self.body {
            BodyTemplate::None => None,
            BodyTemplate::Text(t) => Some(bytes::Bytes::from(templater.render(t, vars)?)),
            BodyTemplate::Json(v) => {
                if !headers.contains_key(CONTENT_TYPE) {
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
                Some(bytes::Bytes::from(
                    templater.render_json(v, vars)?.to_string(),
                ))
            }
        };
        Ok(HttpRequest {
            method: self.method.clone(),
            url,
            headers,
            body,
            auth: self.auth.clone(),
            timeout: self.timeout,
            max_body_bytes: self.max_body_bytes,
            max_redirects: self.max_redirects,
            tls_profile: self.tls_profile,
        })
    }
}
