//! Expectations, and the verdict on one observation.
//!
//! `judge` turns what the probe saw into an [`Outcome`]: success, or one
//! failure kind with one short reason a person can act on, such as
//! `status 401, expected 200: "API key does not have access to service 'ml-platform'"`.
//! Text taken from the target is cleaned, truncated and redacted here.

use std::fmt;
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Deserializer, de};

use crate::outcome::{FailureKind, Outcome};
use crate::probe::Observation;
use crate::secret::Redactor;

/// Longest piece of target text quoted in a reason.
const MAX_QUOTE: usize = 160;

/// How much of a target's text a reason looks at: the quote is far
/// shorter, and redaction costs time in proportion to what it reads.
const MAX_EXAMINED: usize = 64 * 1024;

/// What is dropped in front of that cut, so that a piece of a secret too
/// short for the redactor to know it (fewer than `PIECE_CHARS` characters)
/// cannot be left standing at it: each such character takes at most 40
/// bytes escaped (an HTML reference), so 7 take 280, and escaped again
/// more; 1 KiB of the 64 KiB read is never shown anyway.
const CUT_MARGIN: usize = 1024;

/// One item of `expect.status`: `200`, `"2xx"`, `"200-299"`, and any of
/// them negated with `!` or `not ` (`"!404"`: the route exists).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusPattern {
    negated: bool,
    low: u16,
    high: u16,
    text: String,
}

impl StatusPattern {
    pub fn parse(input: &str) -> Result<StatusPattern, String> {
        let trimmed = input.trim();
        let (negated, body) = if let Some(rest) = trimmed.strip_prefix('!') {
            (true, rest.trim())
        } else if let Some(rest) = trimmed.strip_prefix("not ") {
            (true, rest.trim())
        } else {
            (false, trimmed)
        };
        let bad = || {
            format!(
                "invalid status pattern {input:?}: use a code (200), a class (\"2xx\"), \
                 a range (\"200-299\"), or negate one with \"!\" (\"!404\")"
            )
        };
        let code = |s: &str| -> Result<u16, String> {
            match s.parse::<u16>() {
                Ok(c) if (100..=599).contains(&c) => Ok(c),
                _ => Err(bad()),
            }
        };
        // `get` rather than slicing: the input may be any UTF-8.
        let class_digit = body.get(..1).filter(|_| body.len() == 3);
        let is_class = body.get(1..).is_some_and(|x| x.eq_ignore_ascii_case("xx"));
        let (low, high) = if let (Some(digit), true) = (class_digit, is_class) {
            let class = digit.parse::<u16>().map_err(|_| bad())?;
            if !(1..=5).contains(&class) {
                return Err(bad());
            }
            (class * 100, class * 100 + 99)
        } else if let Some((a, b)) = body.split_once('-') {
            let (a, b) = (code(a.trim())?, code(b.trim())?);
            if a > b {
                return Err(bad());
            }
            (a, b)
        } else {
            let c = code(body)?;
            (c, c)
        };
        let text = if low == high {
            low.to_string()
        } else if high - low == 99 && low % 100 == 0 {
            format!("{}xx", low / 100)
        } else {
            format!("{low}-{high}")
        };
        Ok(StatusPattern {
            negated,
            low,
            high,
            text,
        })
    }

    fn covers(&self, code: u16) -> bool {
        (self.low..=self.high).contains(&code)
    }
}

impl<'de> Deserialize<'de> for StatusPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Code(i64),
            Text(String),
        }
        let raw = Raw::deserialize(d)
            .map_err(|_| de::Error::custom("a status pattern is a number or a string"))?;
        let text = match raw {
            Raw::Code(c) => c.to_string(),
            Raw::Text(t) => t,
        };
        StatusPattern::parse(&text).map_err(de::Error::custom)
    }
}

/// Passes when the code matches some positive pattern (or there are none)
/// and no negated one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusMatcher {
    patterns: Vec<StatusPattern>,
}

impl Default for StatusMatcher {
    /// Like blackbox_exporter: any 2xx.
    fn default() -> Self {
        StatusMatcher {
            patterns: vec![StatusPattern {
                negated: false,
                low: 200,
                high: 299,
                text: "2xx".into(),
            }],
        }
    }
}

impl StatusMatcher {
    pub fn new(patterns: Vec<StatusPattern>) -> Result<StatusMatcher, String> {
        if patterns.is_empty() {
            return Err("expect.status must list at least one pattern".into());
        }
        Ok(StatusMatcher { patterns })
    }

    pub fn matches(&self, code: u16) -> bool {
        let mut positives = self.patterns.iter().filter(|p| !p.negated).peekable();
        let allowed = positives.peek().is_none() || positives.any(|p| p.covers(code));
        allowed && !self.patterns.iter().any(|p| p.negated && p.covers(code))
    }
}

impl fmt::Display for StatusMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let positive: Vec<&str> = self
            .patterns
            .iter()
            .filter(|p| !p.negated)
            .map(|p| p.text.as_str())
            .collect();
        let negative: Vec<String> = self
            .patterns
            .iter()
            .filter(|p| p.negated)
            .map(|p| format!("not {}", p.text))
            .collect();
        let mut parts = Vec::new();
        if !positive.is_empty() {
            parts.push(positive.join(" or "));
        }
        if !negative.is_empty() {
            parts.push(negative.join(", "));
        }
        f.write_str(&parts.join(", "))
    }
}

#[derive(Clone, Debug)]
pub enum JsonCheck {
    Equals(serde_json::Value),
    Exists(bool),
}

#[derive(Clone, Debug)]
pub struct JsonExpect {
    pub pointer: String,
    pub check: JsonCheck,
}

#[derive(Clone, Debug)]
pub enum HeaderCheck {
    Equals(String),
    Contains(String),
    Exists(bool),
}

#[derive(Clone, Debug)]
pub struct HeaderExpect {
    pub name: reqwest::header::HeaderName,
    pub check: HeaderCheck,
}

#[derive(Clone, Debug, Default)]
pub struct Expectations {
    pub status: StatusMatcher,
    pub max_latency: Option<Duration>,
    pub body_contains: Vec<String>,
    pub body_not_contains: Vec<String>,
    pub body_regex: Option<Regex>,
    pub json: Vec<JsonExpect>,
    pub headers: Vec<HeaderExpect>,
}

/// The verdict on one observation. Checks run in a fixed order (transport,
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
        if let Some(detail) = error_detail(&obs.body) {
            reason.push_str(&format!(": {}", quote(&detail, redactor)));
        }
        return fail(FailureKind::Status, reason);
    }
    if let Some(outcome) = judge_headers(&expect.headers, obs, redactor) {
        return outcome;
    }
    if let Some(outcome) = judge_json(&expect.json, &obs.body, redactor) {
        return outcome;
    }
    if let Some(outcome) = judge_body(expect, &obs.body, redactor) {
        return outcome;
    }
    if let Some(budget) = expect.max_latency
        && obs.duration > budget
    {
        return fail(
            FailureKind::Slow,
            format!(
                "took {}, budget {}",
                format_ms(obs.duration),
                format_ms(budget)
            ),
        );
    }
    Outcome::Success
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
            _ => None,
        };
        if let Some(reason) = problem {
            return Some(fail(FailureKind::Header, reason));
        }
    }
    None
}

fn judge_json(expects: &[JsonExpect], body: &[u8], redactor: &Redactor) -> Option<Outcome> {
    if expects.is_empty() {
        return None;
    }
    let doc: serde_json::Value = match serde_json::from_slice(body) {
        Ok(doc) => doc,
        Err(e) => {
            return Some(fail(
                FailureKind::Json,
                format!("body is not JSON ({e}): {}", quote(&lossy(body), redactor)),
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
            _ => None,
        };
        if let Some(reason) = problem {
            return Some(fail(FailureKind::Json, reason));
        }
    }
    None
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
/// `error` or similar field when there is one, an HTML `<title>`, or the
/// first non-empty line of text.
pub fn error_detail(body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(found) = json_detail(&doc, 0) {
            return Some(found);
        }
    }
    let text = lossy(body);
    let lower = text.to_ascii_lowercase();
    if let (Some(start), Some(end)) = (lower.find("<title>"), lower.find("</title>"))
        && start + 7 <= end
    {
        let title = text[start + 7..end].trim();
        if !title.is_empty() {
            return Some(title.to_owned());
        }
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

/// Target text made safe to show: secrets redacted, control characters and
/// runs of white space folded, truncated, and put in double quotes.
pub fn quote(text: &str, redactor: &Redactor) -> String {
    format!("\"{}\"", clean(text, redactor))
}

pub fn clean(text: &str, redactor: &Redactor) -> String {
    // Redact before anything is cut or folded: the forms a secret comes
    // back in (escaped, split) are only whole in the text as it came.
    let cut = text.len() > MAX_EXAMINED;
    let examined = &text[..floor_boundary(text, MAX_EXAMINED)];
    let redacted = redactor.redact(examined);
    let redacted = if cut {
        &redacted[..floor_boundary(&redacted, redacted.len().saturating_sub(CUT_MARGIN))]
    } else {
        &redacted[..]
    };
    let mut out = String::with_capacity(redacted.len().min(MAX_QUOTE + 4));
    let mut last_space = false;
    let mut count = 0;
    for c in redacted.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' && (last_space || out.is_empty()) {
            continue;
        }
        last_space = c == ' ';
        if count >= MAX_QUOTE {
            out.push('…');
            return out;
        }
        count += 1;
        out.push(c);
    }
    let mut out = out.trim_end().to_owned();
    if cut {
        out.push('…');
    }
    out
}

/// The largest char boundary of `s` at or below `at`.
fn floor_boundary(s: &str, at: usize) -> usize {
    let mut at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

pub fn format_ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{ms:.0}ms")
    }
}
