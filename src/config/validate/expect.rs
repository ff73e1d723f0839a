//! `expect`: the expectation language, from the file into the model.

use super::*;

pub(in crate::config) fn expectations(
    ctx: &Ctx<'_>,
    field: &str,
    raw: Option<&Spanned<RawExpect>>,
) -> Result<Expectations, ConfigError> {
    let Some(spanned) = raw else {
        return Ok(Expectations::default());
    };
    let e: &RawExpect = spanned.get_ref();
    let span = spanned.span();
    let err =
        |what: &str, msg: String| ctx.err(span.clone(), format!("{field}.expect.{what}"), msg);
    let status = match &e.status {
        None => StatusMatcher::default(),
        Some(list) => StatusMatcher::new(list.clone()).map_err(|m| err("status", m))?,
    };
    let mut json = Vec::new();
    for (i, j) in e.json.iter().enumerate() {
        if !(j.pointer.is_empty() || j.pointer.starts_with('/')) {
            return Err(err(
                &format!("json[{i}].pointer"),
                format!(
                    "{:?} is not a JSON pointer (it starts with \"/\", e.g. \"/service_id\")",
                    j.pointer
                ),
            ));
        }
        let check = match (&j.equals, j.exists) {
            (Some(v), None) => JsonCheck::Equals(v.clone()),
            (None, Some(b)) => JsonCheck::Exists(b),
            _ => {
                return Err(err(
                    &format!("json[{i}]"),
                    "set exactly one of equals or exists".into(),
                ));
            }
        };
        json.push(JsonExpect {
            pointer: j.pointer.clone(),
            check,
        });
    }
    let mut headers = Vec::new();
    for (i, h) in e.headers.iter().enumerate() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| {
            err(
                &format!("headers[{i}].name"),
                format!("invalid header name {:?}", h.name),
            )
        })?;
        let check = match (&h.equals, &h.contains, h.exists) {
            (Some(v), None, None) => HeaderCheck::Equals(v.clone()),
            (None, Some(v), None) => HeaderCheck::Contains(v.clone()),
            (None, None, Some(b)) => HeaderCheck::Exists(b),
            _ => {
                return Err(err(
                    &format!("headers[{i}]"),
                    "set exactly one of equals, contains or exists".into(),
                ));
            }
        };
        headers.push(HeaderExpect { name, check });
    }
    Ok(Expectations {
        status,
        max_latency: e.max_latency.map(|d| d.0),
        body_contains: e.body_contains.clone(),
        body_not_contains: e.body_not_contains.clone(),
        body_regex: e.body_regex.as_ref().map(|r| r.0.clone()),
        json,
        headers,
    })
}
