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
        let mut checks: Vec<JsonCheck> = Vec::new();
        checks.extend(j.equals.clone().map(JsonCheck::Equals));
        checks.extend(j.not_equals.clone().map(JsonCheck::NotEquals));
        checks.extend(j.exists.map(JsonCheck::Exists));
        for (bound, op) in [
            (j.lt, Comparison::Lt),
            (j.le, Comparison::Le),
            (j.gt, Comparison::Gt),
            (j.ge, Comparison::Ge),
        ] {
            checks.extend(bound.map(|b| JsonCheck::Compare(op, b)));
        }
        checks.extend(j.matches.as_ref().map(|r| JsonCheck::Matches(r.0.clone())));
        checks.extend(j.length.map(JsonCheck::Length));
        checks.extend(j.contains.clone().map(JsonCheck::Contains));
        if let Some(name) = &j.json_type {
            let t = JsonType::ALL
                .into_iter()
                .find(|t| t.as_str() == name)
                .ok_or_else(|| {
                    err(
                        &format!("json[{i}].type"),
                        format!(
                            "unknown type {name:?}; use {}",
                            JsonType::ALL.map(|t| t.as_str()).join(", ")
                        ),
                    )
                })?;
            checks.push(JsonCheck::Type(t));
        }
        if checks.len() != 1 {
            return Err(err(
                &format!("json[{i}]"),
                "set exactly one of equals, not_equals, exists, lt, le, gt, ge, matches, length, contains or type (write two items for a range)".into(),
            ));
        }
        let check = checks.remove(0);
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
        let check = match (&h.equals, &h.contains, h.exists, &h.matches) {
            (Some(v), None, None, None) => HeaderCheck::Equals(v.clone()),
            (None, Some(v), None, None) => HeaderCheck::Contains(v.clone()),
            (None, None, Some(b), None) => HeaderCheck::Exists(b),
            (None, None, None, Some(r)) => HeaderCheck::Matches(r.0.clone()),
            _ => {
                return Err(err(
                    &format!("headers[{i}]"),
                    "set exactly one of equals, contains, matches or exists".into(),
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
        www_authenticate: match &e.www_authenticate {
            None => None,
            Some(c) if c.scheme.trim().is_empty() || c.scheme.contains(char::is_whitespace) => {
                return Err(err(
                    "www_authenticate.scheme",
                    format!(
                        "{:?} is not an auth scheme (one token: \"Bearer\", \"Basic\")",
                        c.scheme
                    ),
                ));
            }
            Some(c) => Some(crate::model::Challenge {
                scheme: c.scheme.clone(),
                realm: c.realm.clone(),
            }),
        },
        retry_after: e.retry_after.as_ref().map(|r| crate::model::RetryAfter {
            max: r.max.map(|d| d.0),
        }),
    })
}
