//! What every check and step sends: method, URL, headers, auth, TLS,
//! limits.

use super::*;

/// A request's timeout, body cap and redirect limit: its own setting, else
/// `[defaults]`, else lookout's default.
pub(in crate::config) fn request_limits(
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

pub(in crate::config) fn method(
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
pub(in crate::config) fn tls_profile(
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
pub(in crate::config) fn probe_url(
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
    // Not quoted: the URL holds a password. A URL is shown everywhere; a
    // credential belongs in `auth`, which is redacted and kept to its origin.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ctx.err(
            span,
            format!("{field}.url"),
            "the URL carries a user or password: use auth = { scheme = \"basic\", username = \"…\", secret = \"…\" }",
        ));
    }
    Ok(url)
}

pub(in crate::config) fn header_name(
    ctx: &Ctx<'_>,
    where_: &str,
    key: &str,
    span: Range<usize>,
) -> Result<HeaderName, ConfigError> {
    HeaderName::from_bytes(key.as_bytes())
        .map_err(|_| ctx.err(span, where_, format!("invalid header name {key:?}")))
}

pub(in crate::config) fn auth(
    ctx: &Ctx<'_>,
    field: &str,
    raw: Option<&Spanned<RawAuth>>,
    secrets: &BTreeMap<String, Secret>,
) -> Result<Auth, ConfigError> {
    let Some(spanned) = raw else {
        return Ok(Auth::None);
    };
    let raw_auth = spanned.get_ref();
    let where_ = format!("{field}.auth");
    let err = |msg: String| ctx.err(spanned.span(), &where_, msg);
    let Some(scheme) = AuthScheme::parse(raw_auth.scheme.get_ref()) else {
        return Err(ctx.err(
            raw_auth.scheme.span(),
            format!("{field}.auth.scheme"),
            format!(
                "unknown auth scheme {:?}; use {}",
                raw_auth.scheme.get_ref(),
                AuthScheme::NAMES.map(|(n, _)| n).join(", ")
            ),
        ));
    };
    let a = Parsed {
        scheme,
        raw: raw_auth,
    };
    let scheme_name = raw_auth.scheme.get_ref().clone();
    if a.header.is_some() && a.scheme != AuthScheme::ApiKey {
        return Err(err(format!(
            "header is only for scheme \"api_key\", not {scheme_name:?}"
        )));
    }
    if a.param.is_some() && a.scheme != AuthScheme::Query {
        return Err(err("param is only for scheme \"query\"".into()));
    }
    if a.client_secret.is_some() {
        return Err(err(
            "client_secret is not a field here: name the client secret's [secrets] entry \
             with secret = \"<name>\" (or a literal value = \"...\")"
                .into(),
        ));
    }
    if a.scheme != AuthScheme::OAuth2ClientCredentials {
        for (key, set) in [
            ("token_url", a.token_url.is_some()),
            ("client_id", a.client_id.is_some()),
            ("scopes", a.scopes.is_some()),
            ("audience", a.audience.is_some()),
            ("client_auth", a.client_auth.is_some()),
        ] {
            if set {
                return Err(err(format!(
                    "{key} is only for scheme \"oauth2_client_credentials\", not {scheme_name:?}"
                )));
            }
        }
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
        AuthScheme::OAuth2ClientCredentials => oauth2(ctx, &where_, &a, secret)?,
        AuthScheme::None => Auth::None,
    })
}

/// The loopback hosts a `token_url` may name over plain http (tests, a
/// sidecar); anywhere else the client secret would cross a network in clear.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn oauth2(
    ctx: &Ctx<'_>,
    where_: &str,
    a: &Parsed<'_>,
    client_secret: Secret,
) -> Result<Auth, ConfigError> {
    let Some(token_url) = &a.token_url else {
        return Err(ctx.err(
            a.scheme_span(),
            where_,
            "scheme \"oauth2_client_credentials\" needs token_url = \"https://…\"",
        ));
    };
    let url_err = |msg: String| ctx.err(token_url.span(), format!("{where_}.token_url"), msg);
    let text = token_url.get_ref();
    let url = Url::parse(text).map_err(|e| url_err(format!("invalid URL {text:?}: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(url_err(format!(
                "{text:?} is plain http: the client secret would cross the network in clear; \
                 use https (http is allowed only to 127.0.0.1, ::1 or localhost)"
            )));
        }
        _ => return Err(url_err(format!("{text:?} is not an https:// URL"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(url_err(format!("{text:?} has no host")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(url_err(
            "credentials in the URL: use client_id and secret instead".into(),
        ));
    }
    let client_id = match a.client_id.as_deref() {
        None => {
            return Err(ctx.err(
                a.scheme_span(),
                where_,
                "scheme \"oauth2_client_credentials\" needs client_id = \"…\"",
            ));
        }
        Some("") => {
            return Err(ctx.err(a.scheme_span(), format!("{where_}.client_id"), "is empty"));
        }
        Some(id) => id.to_owned(),
    };
    let scopes = a.scopes.clone().unwrap_or_default();
    if let Some(bad) = scopes.iter().find(|s| {
        s.is_empty()
            || s.chars()
                .any(|c| c.is_whitespace() || c == '"' || c == '\\')
    }) {
        return Err(ctx.err(
            a.scheme_span(),
            format!("{where_}.scopes"),
            format!("{bad:?} is not one scope (no spaces, quotes or backslashes; list each scope on its own)"),
        ));
    }
    let client_auth = match a.client_auth.as_ref().map(|c| (c, c.get_ref().as_str())) {
        None | Some((_, "basic")) => ClientAuth::Basic,
        Some((_, "body")) => ClientAuth::Body,
        Some((c, other)) => {
            return Err(ctx.err(
                c.span(),
                format!("{where_}.client_auth"),
                format!("unknown client_auth {other:?}; use \"basic\" (HTTP Basic) or \"body\" (in the form)"),
            ));
        }
    };
    Ok(Auth::OAuth2(std::sync::Arc::new(OAuth2 {
        token_url: url,
        client_id,
        client_secret,
        scopes,
        audience: a.audience.clone().filter(|s| !s.is_empty()),
        client_auth,
    })))
}

pub(super) fn tls_settings(
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

/// A `RawAuth` whose scheme is known.
struct Parsed<'a> {
    scheme: AuthScheme,
    raw: &'a RawAuth,
}

impl Parsed<'_> {
    fn scheme_span(&self) -> Range<usize> {
        self.raw.scheme.span()
    }
}

impl std::ops::Deref for Parsed<'_> {
    type Target = RawAuth;
    fn deref(&self) -> &RawAuth {
        self.raw
    }
}
