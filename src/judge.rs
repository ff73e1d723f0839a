//! The verdict on one observation, against the expectations of
//! [`crate::model::expect`].
//!
//! `judge` turns what the probe saw into an [`Outcome`]: success, or one
//! failure kind with one short reason a person can act on, such as
//! `status 401, expected 200: "API key does not have access to service 'ml-platform'"`.
//! Text taken from the target is cleaned, truncated and redacted here.

use std::time::Duration;

mod html;
mod kinds;

pub use kinds::grpc_code_name;

use crate::model::{Burst, BurstObservation, BurstStatus, Observation, Target};
pub use crate::model::{
    Expectations, HeaderCheck, HeaderExpect, JsonCheck, JsonExpect, JsonType, StatusMatcher,
    StatusPattern,
};
use crate::outcome::{FailureKind, Outcome};
use crate::secret::Redactor;
pub use crate::secret::{clean, quote};

/// The verdict on one check's observation, whatever its kind: the one
/// place that matches on the kind. HTTP has its own order (below); every
/// other kind checks the transport, then its own observation, then the
/// latency budget.
pub fn judge_target(
    target: &Target,
    expect: &Expectations,
    obs: &Observation,
    redactor: &Redactor,
) -> Outcome {
    if let Some((kind, reason)) = &obs.error {
        return fail(*kind, reason.clone());
    }
    let outcome = match target {
        // HTTP has its own order, latency included.
        Target::Http(_) => return judge(expect, obs, redactor),
        Target::Tcp(t) => kinds::tcp(t, obs, redactor),
        Target::Tls(t) => kinds::cert(&t.expect, obs, redactor),
        Target::Dns(d) => kinds::dns(&d.expect, obs, redactor),
        Target::Grpc(g) => kinds::grpc(g, obs, redactor),
        Target::Icmp(i) => kinds::icmp(i, obs),
    };
    if !outcome.is_success() {
        return outcome;
    }
    latency(expect, obs).unwrap_or(Outcome::Success)
}

fn latency(expect: &Expectations, obs: &Observation) -> Option<Outcome> {
    let budget = expect.max_latency?;
    (obs.duration > budget).then(|| {
        fail(
            FailureKind::Slow,
            format!(
                "took {}, budget {}",
                format_ms(obs.duration),
                format_ms(budget)
            ),
        )
    })
}

/// The verdict on one HTTP observation. Checks run in a fixed order (transport,
/// status, headers, JSON, body, latency) and the first failure is the reason.
pub fn judge(expect: &Expectations, obs: &Observation, redactor: &Redactor) -> Outcome {
    if let Some((kind, reason)) = &obs.error {
        return fail(*kind, reason.clone());
    }
    let Some(status) = obs.status else {
        return fail(FailureKind::Internal, "no response and no error recorded");
    };
    if !expect.status.matches(status) {
        let mut reason = format!("status {status}, expected {}", expect.status);
        if let Some(detail) = answer_detail(obs, redactor) {
            reason.push_str(&format!(": {}", quote(&detail, redactor)));
        }
        return fail(FailureKind::Status, reason);
    }
    if let Some(outcome) = judge_answer(expect, obs, redactor) {
        return outcome;
    }
    latency(expect, obs).unwrap_or(Outcome::Success)
}

/// Everything of HTTP's expectations past the status and before the
/// latency: headers, the auth path's, JSON, body.
fn judge_answer(expect: &Expectations, obs: &Observation, redactor: &Redactor) -> Option<Outcome> {
    judge_headers(&expect.headers, obs, redactor)
        .or_else(|| judge_auth_path(expect, obs, redactor))
        .or_else(|| judge_json(&expect.json, obs, redactor))
        .or_else(|| judge_body(expect, &obs.body, redactor))
}

/// The verdict on a burst (`repeat`): a transport failure (naming the
/// answer), `within`, the statuses (`sequence`, `any_status`, or
/// `status` for every answer), the last answer's other expectations
/// (headers, JSON, body: the rate limit's answer is the one that matters),
/// then each answer's latency. The first failure is the reason, which
/// names the answer and shows them all:
/// `answer 6/6 is 200, expected 429 (answers: 200 200 200 200 200 200)`.
pub fn judge_burst(
    expect: &Expectations,
    burst: Burst,
    seen: &BurstObservation,
    redactor: &Redactor,
) -> Outcome {
    let n = burst.repeat as usize;
    for (i, answer) in seen.answers.iter().enumerate() {
        if let Some((kind, reason)) = &answer.error {
            return fail(*kind, format!("answer {}/{n}: {reason}", i + 1));
        }
    }
    let statuses: Vec<u16> = seen.answers.iter().filter_map(|a| a.status).collect();
    let Some(last) = seen.answers.last().filter(|_| statuses.len() == n) else {
        return fail(
            FailureKind::Internal,
            format!(
                "the burst ended after {} of {n} answers with no failure recorded",
                statuses.len()
            ),
        );
    };
    if let Some(within) = burst.within
        && seen.took > within
    {
        return fail(
            FailureKind::Burst,
            format!(
                "{n} answers took {:.2}s, longer than within {}: the rate limit was not tested",
                seen.took.as_secs_f64(),
                humantime::format_duration(within)
            ),
        );
    }
    let wrong = |i: usize, expected: String| {
        let mut reason = format!(
            "answer {}/{n} is {}, expected {expected} (answers: {})",
            i + 1,
            statuses[i],
            answers_text(&statuses, false)
        );
        // An error answer's own explanation; a 200 where a 429 was due
        // says nothing a person needs.
        if statuses[i] >= 400
            && let Some(detail) = answer_detail(&seen.answers[i], redactor)
        {
            reason.push_str(&format!(": {}", quote(&detail, redactor)));
        }
        fail(FailureKind::Status, reason)
    };
    match &expect.burst_status {
        BurstStatus::Each => {
            if let Some(i) = statuses.iter().position(|s| !expect.status.matches(*s)) {
                return wrong(i, expect.status.to_string());
            }
        }
        BurstStatus::Sequence(patterns) => {
            let off = statuses
                .iter()
                .zip(patterns)
                .position(|(s, p)| !p.matches(*s));
            if let Some(i) = off {
                return wrong(i, patterns[i].to_string());
            }
        }
        BurstStatus::Any { any, others } => {
            if !statuses.iter().any(|s| any.matches(*s)) {
                return fail(
                    FailureKind::Status,
                    format!(
                        "no answer was {any} (answers: {})",
                        answers_text(&statuses, true)
                    ),
                );
            }
            if let Some(others) = others
                && let Some(i) = statuses
                    .iter()
                    .position(|s| !any.matches(*s) && !others.matches(*s))
            {
                return wrong(i, format!("{others} or any_status {any}"));
            }
        }
    }
    if let Some(Outcome::Failure { kind, reason }) = judge_answer(expect, last, redactor) {
        return fail(kind, format!("answer {n}/{n}: {reason}"));
    }
    if let Some(budget) = expect.max_latency
        && let Some((i, slow)) = seen
            .answers
            .iter()
            .enumerate()
            .find(|(_, a)| a.duration > budget)
    {
        return fail(
            FailureKind::Slow,
            format!(
                "answer {}/{n} took {}, budget {}",
                i + 1,
                format_ms(slow.duration),
                format_ms(budget)
            ),
        );
    }
    Outcome::Success
}

/// The most answers a reason lists; the rest are `…`.
const ANSWERS_SHOWN: usize = 20;

/// A burst's statuses for a reason: each in order (`200 200 429`), or in
/// runs (`200 ×5, 429`) when `runs` or when there are many.
fn answers_text(statuses: &[u16], runs: bool) -> String {
    let mut items: Vec<String> = if runs || statuses.len() > 12 {
        let mut out: Vec<(u16, usize)> = Vec::new();
        for s in statuses {
            match out.last_mut() {
                Some((last, count)) if last == s => *count += 1,
                _ => out.push((*s, 1)),
            }
        }
        out.into_iter()
            .map(|(s, count)| match count {
                1 => s.to_string(),
                _ => format!("{s} ×{count}"),
            })
            .collect()
    } else {
        statuses.iter().map(u16::to_string).collect()
    };
    let cut = items.len() > ANSWERS_SHOWN;
    items.truncate(ANSWERS_SHOWN);
    if cut {
        items.push("…".to_owned());
    }
    items.join(if runs || statuses.len() > 12 {
        ", "
    } else {
        " "
    })
}

fn fail(kind: FailureKind, reason: impl Into<String>) -> Outcome {
    Outcome::Failure {
        kind,
        reason: reason.into(),
    }
}

fn judge_headers(
    expects: &[HeaderExpect],
    obs: &Observation,
    redactor: &Redactor,
) -> Option<Outcome> {
    for e in expects {
        let value = obs
            .headers
            .get(&e.name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let problem = match (&e.check, &value) {
            (HeaderCheck::Exists(true), None) => Some(format!("header {} missing", e.name)),
            (HeaderCheck::Exists(false), Some(v)) => Some(format!(
                "header {} is present ({}), expected absent",
                e.name,
                quote(v, redactor)
            )),
            (HeaderCheck::Equals(want) | HeaderCheck::Contains(want), None) => {
                Some(format!("header {} missing, expected {want:?}", e.name))
            }
            (HeaderCheck::Equals(want), Some(v)) if v != want => Some(format!(
                "header {} is {}, expected {want:?}",
                e.name,
                quote(v, redactor)
            )),
            (HeaderCheck::Contains(want), Some(v)) if !v.contains(want.as_str()) => Some(format!(
                "header {} is {}, expected it to contain {want:?}",
                e.name,
                quote(v, redactor)
            )),
            (HeaderCheck::Matches(re), None) => Some(format!(
                "header {} missing, expected /{}/",
                e.name,
                re.as_str()
            )),
            (HeaderCheck::Matches(re), Some(v)) if !re.is_match(v) => Some(format!(
                "header {} is {}, expected it to match /{}/",
                e.name,
                quote(v, redactor),
                re.as_str()
            )),
            _ => None,
        };
        if let Some(reason) = problem {
            return Some(fail(FailureKind::Header, reason));
        }
    }
    None
}

fn judge_json(expects: &[JsonExpect], obs: &Observation, redactor: &Redactor) -> Option<Outcome> {
    if expects.is_empty() {
        return None;
    }
    let body = &obs.body;
    let doc: serde_json::Value = match serde_json::from_slice(body) {
        Ok(doc) => doc,
        Err(e) => {
            // A proxy's HTML error page where JSON was due: its words.
            let shown = match html::is_html(content_type(obs), body) {
                true => html::visible_text(&lossy(body), redactor).unwrap_or_default(),
                false => lossy(body),
            };
            return Some(fail(
                FailureKind::Json,
                format!("body is not JSON ({e}): {}", quote(&shown, redactor)),
            ));
        }
    };
    for e in expects {
        let found = doc.pointer(&e.pointer);
        let problem = match (&e.check, found) {
            (JsonCheck::Exists(true), None) => Some(format!("{} missing", e.pointer)),
            (JsonCheck::Exists(false), Some(v)) => Some(format!(
                "{} is {}, expected absent",
                e.pointer,
                clean(&v.to_string(), redactor)
            )),
            (JsonCheck::Equals(want), None) => {
                Some(format!("{} missing, expected {want}", e.pointer))
            }
            (JsonCheck::Equals(want), Some(v)) if !json_equal(v, want) => Some(format!(
                "{} is {}, expected {want}",
                e.pointer,
                clean(&v.to_string(), redactor)
            )),
            (JsonCheck::Equals(_), Some(_)) | (JsonCheck::Exists(_), _) => None,
            (JsonCheck::NotEquals(_), None) => None,
            (JsonCheck::NotEquals(not), Some(v)) => json_equal(v, not)
                .then(|| format!("{} is {not}, expected anything else", e.pointer)),
            (other, None) => Some(format!("{} missing, expected {}", e.pointer, wanted(other))),
            (check, Some(v)) => json_problem(check, v).map(|got| {
                format!(
                    "{} {}, expected {}",
                    e.pointer,
                    clean(&got, redactor),
                    wanted(check)
                )
            }),
        };
        if let Some(reason) = problem {
            return Some(fail(FailureKind::Json, reason));
        }
    }
    None
}

/// The named assertions of auth paths: the challenge a 401 carries, the
/// wait a 429 asks for.
fn judge_auth_path(
    expect: &Expectations,
    obs: &Observation,
    redactor: &Redactor,
) -> Option<Outcome> {
    let header = |name: &str| {
        obs.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    if let Some(want) = &expect.www_authenticate {
        let Some(value) = header("www-authenticate") else {
            return Some(fail(
                FailureKind::Header,
                format!(
                    "no WWW-Authenticate header, expected a {} challenge",
                    want.scheme
                ),
            ));
        };
        let scheme = value.split_whitespace().next().unwrap_or_default();
        if !scheme.eq_ignore_ascii_case(&want.scheme) {
            return Some(fail(
                FailureKind::Header,
                format!(
                    "WWW-Authenticate is {}, expected a {} challenge",
                    quote(&value, redactor),
                    want.scheme
                ),
            ));
        }
        if let Some(realm) = &want.realm {
            let found = realm_of(&value);
            if found.as_deref() != Some(realm.as_str()) {
                return Some(fail(
                    FailureKind::Header,
                    format!(
                        "WWW-Authenticate is {}, expected realm {realm:?}",
                        quote(&value, redactor)
                    ),
                ));
            }
        }
    }
    if let Some(want) = &expect.retry_after {
        let Some(value) = header("retry-after") else {
            return Some(fail(
                FailureKind::Header,
                format!(
                    "no Retry-After header{}",
                    obs.status
                        .map(|s| format!(" on the {s}"))
                        .unwrap_or_default()
                ),
            ));
        };
        let Some(wait) = retry_after_seconds(&value) else {
            return Some(fail(
                FailureKind::Header,
                format!(
                    "Retry-After is {}, neither seconds nor an HTTP date",
                    quote(&value, redactor)
                ),
            ));
        };
        if let Some(max) = want.max
            && wait > max.as_secs_f64()
        {
            return Some(fail(
                FailureKind::Header,
                format!(
                    "Retry-After asks for {wait:.0}s, expected at most {}",
                    humantime::format_duration(max)
                ),
            ));
        }
    }
    None
}

/// The `realm` parameter of a challenge, quoted or as a token.
fn realm_of(challenge: &str) -> Option<String> {
    static REALM: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#"(?i)(?:^|[\s,])realm\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))"#)
            .expect("a valid pattern")
    });
    let caps = REALM.captures(challenge)?;
    caps.get(1)
        .map(|m| m.as_str().replace("\\\"", "\"").replace("\\\\", "\\"))
        .or_else(|| caps.get(2).map(|m| m.as_str().to_owned()))
}

/// `Retry-After` in seconds from now: delay-seconds, or an HTTP date.
fn retry_after_seconds(value: &str) -> Option<f64> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs as f64);
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let left = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some((left.num_milliseconds() as f64 / 1000.0).max(0.0))
}

/// What a check asks for, in a reason: `< 2`, `to match /x/`.
fn wanted(check: &JsonCheck) -> String {
    match check {
        JsonCheck::Equals(v) => v.to_string(),
        JsonCheck::NotEquals(v) => format!("anything but {v}"),
        JsonCheck::Exists(true) => "present".into(),
        JsonCheck::Exists(false) => "absent".into(),
        JsonCheck::Compare(op, bound) => format!("{} {bound}", op.symbol()),
        JsonCheck::Matches(re) => format!("to match /{}/", re.as_str()),
        JsonCheck::Length(n) => format!("length {n}"),
        JsonCheck::Contains(v) => format!("to contain {v}"),
        JsonCheck::Type(t) => a_type(*t),
    }
}

/// `a string`, `an integer`.
fn a_type(t: JsonType) -> String {
    let name = t.as_str();
    let article = if name.starts_with(['a', 'i', 'o']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {name}")
}

/// What is wrong with `v` under one of the value checks, as the found
/// value's description (`is 3`, `has length 2`), or `None` when it holds.
fn json_problem(check: &JsonCheck, v: &serde_json::Value) -> Option<String> {
    use serde_json::Value as V;
    let is = || format!("is {v}");
    match check {
        JsonCheck::Compare(op, bound) => match v.as_f64() {
            Some(n) if op.holds(n, *bound) => None,
            Some(_) => Some(is()),
            None => Some(format!("is {}, not a number", JsonType::of(v).as_str())),
        },
        JsonCheck::Matches(re) => match v {
            V::String(s) if re.is_match(s) => None,
            V::String(_) => Some(is()),
            _ => Some(format!("is {}, not a string", JsonType::of(v).as_str())),
        },
        JsonCheck::Length(n) => {
            let len = match v {
                V::String(s) => s.chars().count(),
                V::Array(a) => a.len(),
                V::Object(o) => o.len(),
                _ => {
                    return Some(format!(
                        "is {}, which has no length",
                        JsonType::of(v).as_str()
                    ));
                }
            };
            (len != *n).then(|| format!("has length {len}"))
        }
        JsonCheck::Contains(want) => {
            let holds = match (v, want) {
                (V::Array(items), _) => items.iter().any(|i| json_equal(i, want)),
                (V::String(s), V::String(needle)) => s.contains(needle.as_str()),
                _ => {
                    return Some(format!(
                        "is {}, which contains nothing",
                        JsonType::of(v).as_str()
                    ));
                }
            };
            (!holds).then(is)
        }
        JsonCheck::Type(t) => (!t.admits(v)).then(|| format!("is {}", a_type(JsonType::of(v)))),
        JsonCheck::Equals(_) | JsonCheck::NotEquals(_) | JsonCheck::Exists(_) => None,
    }
}

/// Equality where `1` and `1.0` are the same number.
fn json_equal(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a, b) {
        (serde_json::Value::Number(x), serde_json::Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn judge_body(expect: &Expectations, body: &[u8], redactor: &Redactor) -> Option<Outcome> {
    if expect.body_contains.is_empty()
        && expect.body_not_contains.is_empty()
        && expect.body_regex.is_none()
    {
        return None;
    }
    let text = lossy(body);
    for needle in &expect.body_contains {
        if !text.contains(needle.as_str()) {
            return Some(fail(
                FailureKind::Body,
                format!("body does not contain {needle:?}"),
            ));
        }
    }
    for needle in &expect.body_not_contains {
        if text.contains(needle.as_str()) {
            return Some(fail(FailureKind::Body, format!("body contains {needle:?}")));
        }
    }
    if let Some(re) = &expect.body_regex
        && !re.is_match(&text)
    {
        let first = quote(&text, redactor);
        return Some(fail(
            FailureKind::Body,
            format!("body does not match /{}/: {first}", re.as_str()),
        ));
    }
    None
}

/// The most useful line of an error response: a JSON `detail`, `message`,
/// `error` or similar field when there is one; for an HTML page, its
/// `<title>` or else its visible text; or the first non-empty line of text.
/// Not redacted yet: quote it (`quote`) before showing it.
pub fn error_detail(body: &[u8]) -> Option<String> {
    detail(None, body, &Redactor::default())
}

/// [`error_detail`] of an answer, its `Content-Type` heeded and its markup
/// redacted as it arrived (the text is redacted again when quoted).
pub fn answer_detail(obs: &Observation, redactor: &Redactor) -> Option<String> {
    detail(content_type(obs), &obs.body, redactor)
}

fn content_type(obs: &Observation) -> Option<&str> {
    obs.headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

fn detail(content_type: Option<&str>, body: &[u8], redactor: &Redactor) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(found) = json_detail(&doc, 0) {
            return Some(found);
        }
    }
    let text = lossy(body);
    if html::is_html(content_type, body) {
        // Never the raw tags: a page with no words has no detail.
        return html::visible_text(&text, redactor);
    }
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned)
}

fn json_detail(v: &serde_json::Value, depth: u8) -> Option<String> {
    const FIELDS: [&str; 7] = [
        "detail",
        "message",
        "error_description",
        "error",
        "msg",
        "title",
        "reason",
    ];
    if depth > 3 {
        return None;
    }
    match v {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        serde_json::Value::Object(map) => FIELDS
            .iter()
            .filter_map(|f| map.get(*f))
            .find_map(|inner| json_detail(inner, depth + 1)),
        serde_json::Value::Array(items) => items.iter().find_map(|i| json_detail(i, depth + 1)),
        _ => None,
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn format_ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{ms:.0}ms")
    }
}
