//! What a check expects of the answer: the expectation language that
//! config builds and judge applies.

use std::fmt;
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Deserializer, de};

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
    NotEquals(serde_json::Value),
    Exists(bool),
    /// A number compared with a bound.
    Compare(Comparison, f64),
    /// A string matched by a regex.
    Matches(Regex),
    /// The length of an array, a string (in characters) or an object.
    Length(usize),
    /// An array holding an equal element, or a string holding a substring.
    Contains(serde_json::Value),
    Type(JsonType),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Comparison {
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
        }
    }

    pub fn holds(self, value: f64, bound: f64) -> bool {
        match self {
            Comparison::Lt => value < bound,
            Comparison::Le => value <= bound,
            Comparison::Gt => value > bound,
            Comparison::Ge => value >= bound,
        }
    }
}

/// JSON's types, as `type = "…"` names them (`integer` is a number
/// without a fraction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonType {
    String,
    Number,
    Integer,
    Boolean,
    Array,
    Object,
    Null,
}

impl JsonType {
    pub const ALL: [JsonType; 7] = [
        JsonType::String,
        JsonType::Number,
        JsonType::Integer,
        JsonType::Boolean,
        JsonType::Array,
        JsonType::Object,
        JsonType::Null,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JsonType::String => "string",
            JsonType::Number => "number",
            JsonType::Integer => "integer",
            JsonType::Boolean => "boolean",
            JsonType::Array => "array",
            JsonType::Object => "object",
            JsonType::Null => "null",
        }
    }

    pub fn of(value: &serde_json::Value) -> JsonType {
        use serde_json::Value as V;
        match value {
            V::String(_) => JsonType::String,
            V::Number(n) if n.is_i64() || n.is_u64() => JsonType::Integer,
            V::Number(_) => JsonType::Number,
            V::Bool(_) => JsonType::Boolean,
            V::Array(_) => JsonType::Array,
            V::Object(_) => JsonType::Object,
            V::Null => JsonType::Null,
        }
    }

    /// Whether `value` is of this type (an integer is a number too).
    pub fn admits(self, value: &serde_json::Value) -> bool {
        let actual = JsonType::of(value);
        actual == self || (self == JsonType::Number && actual == JsonType::Integer)
    }
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
    Matches(Regex),
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
    /// An auth path's challenge: `WWW-Authenticate` names this scheme (and
    /// realm).
    pub www_authenticate: Option<Challenge>,
    /// A rate limit's answer: `Retry-After` is there (and at most `max`).
    pub retry_after: Option<RetryAfter>,
    /// With `repeat`: how the burst's statuses are judged.
    pub burst_status: BurstStatus,
}

/// How a burst's answers are judged by status.
#[derive(Clone, Debug, Default)]
pub enum BurstStatus {
    /// `expect.status` (or its default) holds for every answer.
    #[default]
    Each,
    /// `expect.sequence`: answer k matches pattern k (as many as `repeat`).
    Sequence(Vec<StatusMatcher>),
    /// `expect.any_status`: at least one answer matches it; with an
    /// `expect.status` written out, every other answer matches that.
    Any {
        any: StatusMatcher,
        others: Option<StatusMatcher>,
    },
}

#[derive(Clone, Debug)]
pub struct Challenge {
    /// Compared without case (`Bearer`, `Basic`, …).
    pub scheme: String,
    pub realm: Option<String>,
}

#[derive(Clone, Debug)]
pub struct RetryAfter {
    pub max: Option<Duration>,
}
