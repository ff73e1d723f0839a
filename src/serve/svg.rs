//! Small inline SVGs: latency sparklines, score trends and badges.
//!
//! Charts are made of numbers and fixed colours only, so the page can embed
//! them as they are. Badges carry names from the config, which are escaped.

use std::fmt::Write as _;

use crate::record::board::Spark;

const GOOD: &str = "#1a7f37";
const BAD: &str = "#cf222e";
const WARN: &str = "#9a6700";
const GREY: &str = "#6e7781";

/// Durations of the last runs as a line, with failed runs as red dots.
pub fn sparkline(runs: &[Spark]) -> String {
    let (w, h) = (120.0, 24.0);
    if runs.is_empty() {
        return String::new();
    }
    let max = runs
        .iter()
        .map(|r| r.duration_seconds)
        .fold(0.0f64, f64::max)
        .max(1e-6);
    let step = if runs.len() > 1 {
        w / (runs.len() - 1) as f64
    } else {
        0.0
    };
    let point = |i: usize, r: &Spark| {
        (
            i as f64 * step,
            h - 2.0 - (r.duration_seconds / max) * (h - 4.0),
        )
    };
    let mut line = String::new();
    for (i, r) in runs.iter().enumerate() {
        let (x, y) = point(i, r);
        let _ = write!(line, "{}{x:.1},{y:.1}", if i == 0 { "" } else { " " });
    }
    let mut out = format!(
        r#"<svg class="spark" viewBox="-2 0 {vw} {h}" width="{vw}" height="{h}" role="img" aria-label="latency of the last {n} runs"><polyline fill="none" stroke="{GREY}" stroke-width="1.2" points="{line}"/>"#,
        vw = w + 4.0,
        n = runs.len()
    );
    for (i, r) in runs.iter().enumerate().filter(|(_, r)| !r.ok) {
        let (x, y) = point(i, r);
        let _ = write!(
            out,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="2" fill="{BAD}"/>"#
        );
    }
    out.push_str("</svg>");
    out
}

/// A score (0..1) over a window as a step line; `points` are (ms, score),
/// the first possibly before `from_ms` (the value the window starts with).
pub fn trend(points: &[(i64, Option<f64>)], from_ms: i64, to_ms: i64) -> String {
    let (w, h) = (160.0, 36.0);
    let span = (to_ms - from_ms).max(1) as f64;
    let x = |ms: i64| ((ms.max(from_ms) - from_ms) as f64 / span * w).min(w);
    let y = |s: f64| h - 2.0 - s.clamp(0.0, 1.0) * (h - 4.0);
    let mut path = String::new();
    let mut last: Option<f64> = None;
    for &(ms, score) in points {
        // An unknown score (nothing judged yet) leaves the line where it was.
        if let Some(s) = score {
            let cmd = if last.is_some() { " H" } else { " M" };
            let sep = if last.is_some() { " V" } else { "," };
            let _ = write!(path, "{cmd}{:.1}{sep}{:.1}", x(ms), y(s));
            last = Some(s);
        }
    }
    if last.is_some() {
        let _ = write!(path, " H{w:.1}");
    }
    if path.is_empty() {
        return String::new();
    }
    let colour = match last {
        Some(s) if s >= 0.999 => GOOD,
        Some(s) if s >= 0.5 => WARN,
        _ => BAD,
    };
    format!(
        r#"<svg class="trend" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="score over time"><line x1="0" y1="{top:.1}" x2="{w}" y2="{top:.1}" stroke="{GREY}" stroke-opacity=".3" stroke-dasharray="2 3"/><path fill="none" stroke="{colour}" stroke-width="1.5" d="{path}"/></svg>"#,
        top = y(1.0),
        path = path.trim_start()
    )
}

/// Text for XML: `&`, `<`, `>`, `"` and `'` escaped, control characters dropped.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    Good,
    Warn,
    Bad,
    Unknown,
}

impl Tone {
    fn colour(self) -> &'static str {
        match self {
            Tone::Good => GOOD,
            Tone::Warn => WARN,
            Tone::Bad => BAD,
            Tone::Unknown => GREY,
        }
    }
}

/// A shields-style badge: `label | value`.
pub fn badge(label: &str, value: &str, tone: Tone) -> String {
    // Widths from character counts: close enough for 11px sans-serif.
    let width = |s: &str| 10 + 7 * s.chars().count().min(60);
    let (lw, vw) = (width(label), width(value));
    let (label, value) = (xml(label), xml(value));
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" aria-label="{label}: {value}"><title>{label}: {value}</title><rect width="{lw}" height="20" fill="#555"/><rect x="{lw}" width="{vw}" height="20" fill="{colour}"/><g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" text-anchor="middle"><text x="{lx}" y="14">{label}</text><text x="{vx}" y="14">{value}</text></g></svg>"##,
        total = lw + vw,
        colour = tone.colour(),
        lx = lw / 2,
        vx = lw + vw / 2,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badges_escape_names() {
        let b = badge("<script>&\"x'", "up", Tone::Good);
        assert!(b.contains("&lt;script&gt;&amp;&quot;x&#39;"), "{b}");
        assert!(!b.contains("<script>"));
    }

    #[test]
    fn trend_steps_and_ends_at_the_right_edge() {
        let t = trend(&[(0, Some(0.5)), (50, Some(1.0))], 0, 100);
        assert!(t.contains(r#"d="M0.0,18.0 H80.0 V2.0 H160.0""#), "{t}");
        assert_eq!(trend(&[], 0, 100), "");
    }

    #[test]
    fn sparkline_marks_failures() {
        let runs = [
            Spark {
                at_ms: 0,
                ok: true,
                duration_seconds: 0.1,
            },
            Spark {
                at_ms: 1,
                ok: false,
                duration_seconds: 0.2,
            },
        ];
        let s = sparkline(&runs);
        assert!(s.contains(r#"points="0.0,12.0 120.0,2.0""#), "{s}");
        assert_eq!(s.matches("<circle").count(), 1);
    }
}
