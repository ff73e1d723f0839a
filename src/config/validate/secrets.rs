//! `[secrets]`: values read from the environment or from files.

use super::*;

pub(super) fn load_secrets(
    ctx: &Ctx<'_>,
    raw: &BTreeMap<String, Spanned<SecretSource>>,
    env: &dyn Fn(&str) -> Option<String>,
    read: bool,
) -> Result<BTreeMap<String, Secret>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, source) in raw {
        let field = format!("secrets.{name}");
        let raw = source.get_ref();
        let expires = match &raw.expires {
            None => None,
            Some(text) => Some(
                chrono::DateTime::parse_from_rfc3339(text.get_ref())
                    .map_err(|e| {
                        ctx.err(
                            text.span(),
                            format!("{field}.expires"),
                            format!(
                                "{:?} is not an RFC 3339 time such as \"2027-03-01T00:00:00Z\": {e}",
                                text.get_ref()
                            ),
                        )
                    })?
                    .timestamp(),
            ),
        };
        let value = match (&raw.env, &raw.file) {
            (None, None) | (Some(_), Some(_)) => {
                return Err(ctx.err(
                    source.span(),
                    &field,
                    "set exactly one of env = \"VAR\" or file = \"path\"",
                ));
            }
            _ if !read => {
                out.insert(name.clone(), Secret::unread(name));
                continue;
            }
            (Some(var), None) => env(var).ok_or_else(|| {
                ctx.err(
                    source.span(),
                    &field,
                    format!("environment variable {var} is not set"),
                )
            })?,
            (None, Some(relative)) => {
                let full = ctx.dir.join(relative);
                let text = file::read_to_string(&full, file::Kind::Secret).map_err(|e| {
                    ctx.err(
                        source.span(),
                        &field,
                        format!("cannot read secret file {}: {e}", full.display()),
                    )
                })?;
                // Files written by `echo` or editors end with a newline that
                // is not part of the key.
                text.trim_end_matches(['\n', '\r']).to_owned()
            }
        };
        if value.is_empty() {
            return Err(ctx.err(source.span(), &field, "the secret is empty"));
        }
        let secret = Secret::new(value, SecretOrigin::Named(name.clone()));
        out.insert(
            name.clone(),
            match expires {
                Some(at) => secret.declaring_expiry(at),
                None => secret,
            },
        );
    }
    Ok(out)
}
