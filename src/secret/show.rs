//! Text from a target made safe to show: secrets redacted first, on the
//! text as it arrived, then control characters folded and the quote cut
//! short. Everything a target says reaches a reason, a log line or a page
//! through here.

use super::Redactor;

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
