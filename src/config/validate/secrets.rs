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
        if !read {
            out.insert(name.clone(), Secret::unread(name));
            continue;
        }
        let field = format!("secrets.{name}");
        let value = match source.get_ref() {
            SecretSource::Env(var) => env(var).ok_or_else(|| {
                ctx.err(
                    source.span(),
                    &field,
                    format!("environment variable {var} is not set"),
                )
            })?,
            SecretSource::File(relative) => {
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
        out.insert(
            name.clone(),
            Secret::new(value, SecretOrigin::Named(name.clone())),
        );
    }
    Ok(out)
}
