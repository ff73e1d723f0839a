//! `[modules.NAME]` and `blackbox_config`: the settings `/probe` serves.
//! A module is validated as a check of its kind whose target is
//! [`MODULE_HOST`], so it takes the same fields, defaults and errors; the
//! scrape's `target` replaces the address when it runs
//! ([`Target::retarget`]). A module carries no credential: its target is
//! the scraper's to choose, and a credential goes only to the origin the
//! config names.

use super::*;
use crate::config::blackbox;
use crate::config::raw::RawModule;
use crate::model::MODULE_HOST;

/// The placeholder URL a module of `prober` is validated with.
fn placeholder(prober: &str) -> Option<String> {
    Some(match prober {
        "http" => format!("http://{MODULE_HOST}/"),
        "tcp" | "tls" | "grpc" | "grpcs" => format!("{prober}://{MODULE_HOST}:1"),
        "dns" => "dns://127.0.0.1:53".to_owned(),
        "icmp" => format!("icmp://{MODULE_HOST}"),
        _ => return None,
    })
}

pub(super) struct ModuleEnv<'a> {
    pub defaults: &'a RawDefaults,
    pub secrets: &'a BTreeMap<String, Secret>,
    pub templater: &'a Templater,
    pub globals: &'a Globals,
}

/// Every module of the file and of `blackbox_config`, by name.
pub(super) fn modules(
    ctx: &Ctx<'_>,
    own: BTreeMap<String, Spanned<RawModule>>,
    blackbox_config: Option<&Spanned<std::path::PathBuf>>,
    env: &ModuleEnv<'_>,
    tls_profiles: &mut Vec<TlsSettings>,
) -> Result<BTreeMap<String, Arc<Check>>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, raw) in own {
        let check = module(
            ctx,
            &format!("modules.{name}"),
            &name,
            raw,
            env,
            tls_profiles,
        )?;
        out.insert(name, Arc::new(check));
    }
    let Some(path) = blackbox_config else {
        return Ok(out);
    };
    let full = ctx.dir.join(path.get_ref());
    let err = |msg: String| ctx.err(path.span(), "blackbox_config", msg);
    let bytes = file::read(&full, file::Kind::Config)
        .map_err(|e| err(format!("cannot read {}: {e}", full.display())))?;
    let text =
        String::from_utf8(bytes).map_err(|_| err(format!("{} is not UTF-8", full.display())))?;
    let translated =
        blackbox::modules(&text).map_err(|e| err(format!("{}: {e}", full.display())))?;
    for (name, toml_text) in translated {
        if out.contains_key(&name) {
            return Err(err(format!(
                "{}: module {name:?} is also defined in [modules]",
                full.display()
            )));
        }
        // Validated in a context of its own: an error names the module in
        // blackbox.yml, not a line of the text it was translated to.
        let inner = Ctx {
            file: format!("{} (module {name})", full.display()),
            source: &toml_text,
            lines: LineIndex::new(&toml_text),
            dir: ctx.dir,
        };
        let raw: Spanned<RawModule> = toml::from_str::<RawModule>(&toml_text)
            .map(|m| Spanned::new(0..toml_text.len(), m))
            .map_err(|e| {
                err(format!(
                    "{}: module {name:?}: {}",
                    full.display(),
                    e.message()
                ))
            })?;
        let check = module(&inner, &name, &name, raw, env, tls_profiles)?;
        out.insert(name, Arc::new(check));
    }
    Ok(out)
}

/// A header name that carries credentials by its name.
fn credential_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "authorization" | "proxy-authorization" | "cookie"
    ) || ["auth", "token", "key", "secret", "password", "session"]
        .iter()
        .any(|word| n.contains(word))
}

fn module(
    ctx: &Ctx<'_>,
    field: &str,
    name: &str,
    spanned: Spanned<RawModule>,
    env: &ModuleEnv<'_>,
    tls_profiles: &mut Vec<TlsSettings>,
) -> Result<Check, ConfigError> {
    let span = spanned.span();
    let raw = spanned.into_inner();
    if let Some(auth) = &raw.auth {
        return Err(ctx.err(
            auth.span(),
            format!("{field}.auth"),
            "a module carries no credential: /probe's target is the scraper's to choose, and a credential goes only to the origin the config names; write a check instead",
        ));
    }
    if let Some(tcp) = &raw.tcp
        && let Some(i) = tcp
            .get_ref()
            .query
            .iter()
            .position(|q| q.get_ref().secret.is_some())
    {
        return Err(ctx.err(
            tcp.span(),
            format!("{field}.tcp.query[{i}].secret"),
            "a module carries no credential; write a check instead",
        ));
    }
    if let Some((key, value)) = raw.headers.iter().find(|(k, _)| credential_header(k)) {
        return Err(ctx.err(
            value.span(),
            format!("{field}.headers.{key}"),
            format!(
                "a module carries no credential, and {key} looks like one: /probe's target is the scraper's to choose; write a check instead"
            ),
        ));
    }
    let prober = raw.prober.get_ref().to_ascii_lowercase();
    let url = placeholder(&prober).ok_or_else(|| {
        ctx.err(
            raw.prober.span(),
            format!("{field}.prober"),
            format!(
                "unknown prober {:?}: use http, tcp, tls, dns, grpc, grpcs or icmp",
                raw.prober.get_ref()
            ),
        )
    })?;
    let check = RawCheck {
        run_at_start: None,
        failure_threshold: None,
        success_threshold: None,
        name: Spanned::new(span.clone(), name.to_owned()),
        group: None,
        url: Spanned::new(raw.prober.span(), url),
        method: raw.method,
        headers: raw.headers,
        body: raw.body,
        json: None,
        auth: None,
        schedule: None,
        interval: None,
        timezone: None,
        timeout: raw.timeout,
        max_body_bytes: raw.max_body_bytes,
        max_redirects: raw.max_redirects,
        tls: raw.tls,
        matrix: BTreeMap::new(),
        routes: BTreeMap::new(),
        expect: raw.expect,
        tcp: raw.tcp,
        dns: raw.dns,
        grpc: raw.grpc,
        icmp: raw.icmp,
        locations: None,
        vars: BTreeMap::new(),
        repeat: None,
        within: None,
    };
    let spanned = Spanned::new(span, check);
    let mut built = expand_check(
        ctx,
        field,
        &spanned,
        &super::check::CheckEnv {
            defaults: env.defaults,
            secrets: env.secrets,
            templater: env.templater,
            globals: env.globals,
            inherit_credentials: false,
        },
        tls_profiles,
    )?;
    let one = built.pop().ok_or_else(|| {
        ctx.err(
            spanned.span(),
            field,
            "a module expands to no check (a bug in lookout)",
        )
    })?;
    // What reaches the target is the scraper's choice: nothing secret.
    if !one.probe.secrets().is_empty() {
        return Err(ctx.err(
            spanned.span(),
            field,
            "a module carries no credential (a bug in lookout let one through)",
        ));
    }
    Ok(one)
}
