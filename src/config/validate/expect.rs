//! `expect`: the expectation language, from the file into the model.

use super::*;
use crate::config::raw::{HumanDuration, StatusList};
use crate::model::{Burst, BurstStatus};

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
    let burst_status = burst_status(field, e, &status, &err)?;
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
        burst_status,
    })
}

/// `expect.sequence` / `expect.any_status`: how a burst's statuses are
/// judged. Whether the check is a burst at all is [`burst`]'s to check.
fn burst_status(
    field: &str,
    e: &RawExpect,
    status: &StatusMatcher,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<BurstStatus, ConfigError> {
    if field == "defaults" {
        for (key, set) in [
            ("sequence", e.sequence.is_some()),
            ("any_status", e.any_status.is_some()),
        ] {
            if set {
                return Err(err(
                    key,
                    format!(
                        "expect.{key} is not a default: it belongs with a check's or step's repeat"
                    ),
                ));
            }
        }
    }
    let matcher = |key: &str, list: &StatusList| {
        StatusMatcher::new(list.0.clone())
            .map_err(|_| err(key, "a status list must not be empty".to_owned()))
    };
    match (&e.sequence, &e.any_status) {
        (None, None) => Ok(BurstStatus::Each),
        (Some(_), Some(_)) => Err(err(
            "any_status",
            "set expect.sequence or expect.any_status, not both".to_owned(),
        )),
        (Some(_), None) if e.status.is_some() => Err(err(
            "status",
            "with expect.sequence every answer has its own pattern; drop expect.status (it would be ambiguous)".to_owned(),
        )),
        (Some(list), None) => list
            .iter()
            .enumerate()
            .map(|(i, one)| matcher(&format!("sequence[{i}]"), one))
            .collect::<Result<Vec<_>, _>>()
            .map(BurstStatus::Sequence),
        (None, Some(any)) => Ok(BurstStatus::Any {
            any: matcher("any_status", any)?,
            others: e.status.is_some().then(|| status.clone()),
        }),
    }
}

/// A check's or step's `repeat` and `within`, against its expectations.
pub(in crate::config) struct OwnBurst<'a> {
    pub repeat: Option<&'a Spanned<u32>>,
    pub within: Option<&'a Spanned<HumanDuration>>,
    /// Where the `expect` table is (for the errors about its keys).
    pub expect_span: Range<usize>,
    pub timeout: Duration,
}

/// The most answers one burst asks for.
pub(in crate::config) const MAX_REPEAT: u32 = 100;

pub(in crate::config) fn burst(
    ctx: &Ctx<'_>,
    field: &str,
    own: OwnBurst<'_>,
    expect: &Expectations,
) -> Result<Option<Burst>, ConfigError> {
    let repeat = match own.repeat {
        None => 1,
        Some(r) => {
            let n = *r.get_ref();
            if !(1..=MAX_REPEAT).contains(&n) {
                return Err(ctx.err(
                    r.span(),
                    format!("{field}.repeat"),
                    format!(
                        "repeat is 1 to {MAX_REPEAT} (1 sends one request, as without it), not {n}"
                    ),
                ));
            }
            n
        }
    };
    let expect_err = |key: &str, msg: String| {
        ctx.err(
            own.expect_span.clone(),
            format!("{field}.expect.{key}"),
            msg,
        )
    };
    if repeat < 2 {
        if let Some(w) = own.within {
            return Err(ctx.err(
                w.span(),
                format!("{field}.within"),
                "within bounds a burst: it needs repeat = 2 or more",
            ));
        }
        return match &expect.burst_status {
            BurstStatus::Each => Ok(None),
            BurstStatus::Sequence(_) => Err(expect_err(
                "sequence",
                "a sequence judges a burst's answers: it needs repeat = 2 or more".into(),
            )),
            BurstStatus::Any { .. } => Err(expect_err(
                "any_status",
                "any_status judges a burst's answers: it needs repeat = 2 or more".into(),
            )),
        };
    }
    if let BurstStatus::Sequence(list) = &expect.burst_status
        && list.len() != repeat as usize
    {
        return Err(expect_err(
            "sequence",
            format!(
                "lists {} statuses, and repeat is {repeat}: one per answer",
                list.len()
            ),
        ));
    }
    let within = match own.within {
        Some(w) if w.get_ref().0 > own.timeout => {
            return Err(ctx.err(
                w.span(),
                format!("{field}.within"),
                format!(
                    "within {} is longer than the timeout {}, which ends the burst first",
                    humantime::format_duration(w.get_ref().0),
                    humantime::format_duration(own.timeout)
                ),
            ));
        }
        w => w.map(|w| w.get_ref().0),
    };
    Ok(Some(Burst { repeat, within }))
}
