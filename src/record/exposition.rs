//! Writing the Prometheus text exposition format straight into one buffer.
//!
//! The per-check families are written from lookout's own state instead of
//! going through `Registry::gather`, which copies every label pair into
//! protobuf structs and sorts each family before encoding: at 10,000 checks
//! that copying was most of a 400 ms scrape (see BENCHMARKS.md).

use std::fmt::Write as _;

/// A label set written once, ready to go between the braces of every
/// sample of one series: `check="a",group="b"`.
#[derive(Clone, Debug)]
pub struct LabelSet(String);

impl LabelSet {
    pub fn new(pairs: &[(&str, &str)]) -> LabelSet {
        let mut s = String::new();
        for (i, (name, value)) in pairs.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(name);
            s.push_str("=\"");
            push_escaped(&mut s, value);
            s.push('"');
        }
        LabelSet(s)
    }
}

/// Label values escape backslash, double quote and line feed.
fn push_escaped(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Gauge,
    Counter,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        }
    }
}

/// A sample value; integers are written without a decimal point.
#[derive(Clone, Copy, Debug)]
pub enum Value {
    F(f64),
    U(u64),
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::F(v)
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::U(v)
    }
}

pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn with_capacity(bytes: usize) -> Exposition {
        Exposition {
            out: String::with_capacity(bytes),
        }
    }

    /// Writes one family: its HELP and TYPE lines, then whatever `samples`
    /// writes. A family that ends up with no samples is left out entirely,
    /// as the prometheus crate does for a vector nobody has touched.
    pub fn family(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        samples: impl FnOnce(&mut Family<'_>),
    ) {
        let start = self.out.len();
        // HELP text is ours (constants), so it needs no escaping.
        let _ = write!(
            self.out,
            "# HELP {name} {help}\n# TYPE {name} {}\n",
            kind.as_str()
        );
        let header = self.out.len();
        samples(&mut Family {
            out: &mut self.out,
            name,
        });
        if self.out.len() == header {
            self.out.truncate(start);
        }
    }

    /// Text already in the exposition format (from the prometheus crate's encoder).
    pub fn push_raw(&mut self, text: &str) {
        self.out.push_str(text);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

pub struct Family<'a> {
    out: &'a mut String,
    name: &'a str,
}

impl Family<'_> {
    /// `name{labels} value`.
    pub fn sample(&mut self, labels: &LabelSet, value: impl Into<Value>) {
        self.line("", labels, &[], value.into());
    }

    /// `name{labels,key="value"} value`, for one extra label such as a phase.
    pub fn sample_with(
        &mut self,
        labels: &LabelSet,
        key: &str,
        label_value: &str,
        value: impl Into<Value>,
    ) {
        self.line("", labels, &[(key, label_value)], value.into());
    }

    /// `name{labels,k1="v1",k2="v2"} value`.
    pub fn sample_labels(
        &mut self,
        labels: &LabelSet,
        extra: &[(&str, &str)],
        value: impl Into<Value>,
    ) {
        self.line("", labels, extra, value.into());
    }

    /// A histogram's `_bucket` lines, `_sum` and `_count`. `counts` are per
    /// bucket (not cumulative), one per bound plus the `+Inf` bucket last.
    pub fn histogram(&mut self, labels: &LabelSet, bounds: &[&str], counts: &[u64], sum: f64) {
        let mut cumulative = 0u64;
        for (i, count) in counts.iter().enumerate() {
            cumulative += count;
            let le = bounds.get(i).copied().unwrap_or("+Inf");
            self.line("_bucket", labels, &[("le", le)], Value::U(cumulative));
        }
        self.line("_sum", labels, &[], Value::F(sum));
        self.line("_count", labels, &[], Value::U(cumulative));
    }

    fn line(&mut self, suffix: &str, labels: &LabelSet, extra: &[(&str, &str)], v: Value) {
        let out = &mut *self.out;
        out.push_str(self.name);
        out.push_str(suffix);
        let bare = labels.0.is_empty() && extra.is_empty();
        if !bare {
            out.push('{');
        }
        out.push_str(&labels.0);
        for (i, (key, value)) in extra.iter().enumerate() {
            if i > 0 || !labels.0.is_empty() {
                out.push(',');
            }
            out.push_str(key);
            out.push_str("=\"");
            push_escaped(out, value);
            out.push('"');
        }
        out.push_str(if bare { " " } else { "} " });
        match v {
            Value::U(n) => {
                let _ = write!(out, "{n}");
            }
            Value::F(x) if x.is_nan() => out.push_str("NaN"),
            Value::F(x) if x.is_infinite() => out.push_str(if x > 0.0 { "+Inf" } else { "-Inf" }),
            Value::F(x) => {
                let _ = write!(out, "{x}");
            }
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values_and_drops_empty_families() {
        let labels = LabelSet::new(&[("check", "a\"b\\c\nd"), ("group", "g")]);
        let mut e = Exposition::with_capacity(0);
        e.family("x_total", "Things.", Kind::Counter, |f| {
            f.sample(&labels, 3u64)
        });
        e.family("empty", "Nothing.", Kind::Gauge, |_| {});
        e.family("h_seconds", "Times.", Kind::Histogram, |f| {
            f.histogram(&labels, &["0.1", "1"], &[1, 0, 2], 5.5)
        });
        insta::assert_snapshot!(e.finish(), @r#"
        # HELP x_total Things.
        # TYPE x_total counter
        x_total{check="a\"b\\c\nd",group="g"} 3
        # HELP h_seconds Times.
        # TYPE h_seconds histogram
        h_seconds_bucket{check="a\"b\\c\nd",group="g",le="0.1"} 1
        h_seconds_bucket{check="a\"b\\c\nd",group="g",le="1"} 1
        h_seconds_bucket{check="a\"b\\c\nd",group="g",le="+Inf"} 3
        h_seconds_sum{check="a\"b\\c\nd",group="g"} 5.5
        h_seconds_count{check="a\"b\\c\nd",group="g"} 3
        "#);
    }
}
