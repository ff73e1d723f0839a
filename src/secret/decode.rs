//! Text as a target or a proxy may have escaped it, decoded one layer so a
//! secret can be found in it whatever form it came back in: JSON string
//! escapes (`\/`, `\u002F`, surrogate pairs), HTML character references
//! (`&#47;`, `&#x2f;`, `&sol;`), and percent-encoding in either case
//! (`%2F`, `%2f`, UTF-8 sequences). Each escape is decoded on its own, so a
//! text may mix them. Every decoded byte remembers the range of the original
//! text it came from, so a match in the decoded text can be cut out of the
//! original.

use std::ops::Range;

/// The longest character reference we try to decode (`&CounterClockwiseContourIntegral;` is 33 bytes).
const MAX_REFERENCE: usize = 40;

/// `text` with one layer of escapes decoded, and where each of its bytes came from.
pub(super) struct Decoded {
    pub text: String,
    /// For each byte of `text`, the range of the original it was decoded from.
    origin: Vec<Range<usize>>,
}

impl Decoded {
    /// `None` when `text` holds nothing that decodes: searching it again
    /// would find nothing new.
    pub fn new(original: &str) -> Option<Decoded> {
        if !original.bytes().any(|b| matches!(b, b'\\' | b'&' | b'%')) {
            return None;
        }
        let mut out = Decoded {
            text: String::with_capacity(original.len()),
            origin: Vec::with_capacity(original.len()),
        };
        let mut changed = false;
        let mut i = 0;
        while i < original.len() {
            let rest = &original[i..];
            let unit = match rest.as_bytes()[0] {
                b'\\' => json_escape(rest),
                b'&' => character_reference(rest),
                b'%' => percent_run(rest),
                _ => None,
            };
            match unit {
                Some((decoded, used)) => {
                    changed = true;
                    match decoded {
                        Unit::Text(s) => out.push(&s, i..i + used),
                        Unit::Spans(spans) => {
                            for (s, span) in spans {
                                out.push(&s, i + span.start..i + span.end);
                            }
                        }
                    }
                    i += used;
                }
                None => {
                    let c = rest.chars().next().unwrap_or('\u{fffd}');
                    let len = c.len_utf8();
                    out.push(&rest[..len], i..i + len);
                    i += len;
                }
            }
        }
        changed.then_some(out)
    }

    /// Up to `depth` layers: `text` decoded once, the result decoded again
    /// (`%252F` → `%2F` → `/`), and so on while anything changes; each
    /// layer maps back to the original text.
    pub fn layers(original: &str, depth: usize) -> Vec<Decoded> {
        let mut out: Vec<Decoded> = Vec::new();
        while out.len() < depth {
            let next = match out.last() {
                None => Decoded::new(original),
                Some(last) => Decoded::new(&last.text).map(|d| d.through(last)),
            };
            match next {
                Some(d) => out.push(d),
                None => break,
            }
        }
        out
    }

    /// This layer's map, made to point through `below` to the original.
    fn through(mut self, below: &Decoded) -> Decoded {
        for r in &mut self.origin {
            *r = below.original(r.clone());
        }
        self
    }

    fn push(&mut self, s: &str, from: Range<usize>) {
        self.text.push_str(s);
        self.origin.extend(std::iter::repeat_n(from, s.len()));
    }

    /// The original range that the decoded bytes `range` came from.
    pub fn original(&self, range: Range<usize>) -> Range<usize> {
        let start = self.origin[range.start].start;
        let end = self.origin[range.end - 1].end;
        start..end
    }
}

enum Unit {
    /// The whole escape decodes to this text.
    Text(String),
    /// A run of escapes, each piece of text with the part of the run it came from.
    Spans(Vec<(String, Range<usize>)>),
}

/// `\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`, `\uXXXX` and UTF-16
/// surrogate pairs `\uD83D\uDE00`, as JSON strings escape them.
fn json_escape(s: &str) -> Option<(Unit, usize)> {
    let simple = match s.as_bytes().get(1)? {
        b'"' => Some('"'),
        b'\\' => Some('\\'),
        b'/' => Some('/'),
        b'b' => Some('\u{8}'),
        b'f' => Some('\u{c}'),
        b'n' => Some('\n'),
        b'r' => Some('\r'),
        b't' => Some('\t'),
        b'u' => None,
        _ => return None,
    };
    if let Some(c) = simple {
        return Some((Unit::Text(c.to_string()), 2));
    }
    let first = utf16_unit(s)?;
    let (units, used) = match utf16_unit(&s[6..]) {
        Some(second) if (0xD800..0xDC00).contains(&first) => (vec![first, second], 12),
        _ => (vec![first], 6),
    };
    let decoded: String = char::decode_utf16(units).collect::<Result<_, _>>().ok()?;
    Some((Unit::Text(decoded), used))
}

/// The code unit of a `\uXXXX` at the start of `s`.
fn utf16_unit(s: &str) -> Option<u16> {
    let digits = s.strip_prefix("\\u")?.get(..4)?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(digits, 16).ok()
}

/// `&#47;`, `&#x2F;` and the named references of HTML (`&sol;`, `&amp;`),
/// each ended by `;`, decoded by htmlize's table of the HTML standard.
fn character_reference(s: &str) -> Option<(Unit, usize)> {
    let end = s
        .as_bytes()
        .iter()
        .take(MAX_REFERENCE)
        .position(|&b| b == b';')?;
    let candidate = &s[..=end];
    if !candidate[1..end]
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'#')
    {
        return None;
    }
    let decoded = htmlize::unescape(candidate);
    if decoded == candidate {
        return None;
    }
    Some((Unit::Text(decoded.into_owned()), end + 1))
}

/// A run of `%HH` escapes, decoded as UTF-8 where the bytes make
/// characters; a byte that does not stays as it was written.
fn percent_run(s: &str) -> Option<(Unit, usize)> {
    let bytes = s.as_bytes();
    let mut decoded = Vec::new();
    let mut i = 0;
    while bytes.get(i) == Some(&b'%')
        && let Some(hex) = s.get(i + 1..i + 3)
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        decoded.push(u8::from_str_radix(hex, 16).ok()?);
        i += 3;
    }
    if decoded.is_empty() {
        return None;
    }
    let mut spans = Vec::new();
    let mut at = 0;
    for chunk in decoded.utf8_chunks() {
        for c in chunk.valid().chars() {
            let len = 3 * c.len_utf8();
            spans.push((c.to_string(), at..at + len));
            at += len;
        }
        for _ in chunk.invalid() {
            spans.push((s[at..at + 3].to_owned(), at..at + 3));
            at += 3;
        }
    }
    Some((Unit::Spans(spans), i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_form_and_maps_back() {
        for (escaped, plain) in [
            (r"a\/b", "a/b"),
            (r"a\u002Fb", "a/b"),
            (r"a\u002fb", "a/b"),
            (r"\ud83d\ude00!", "😀!"),
            (r#"\"q\"\\"#, "\"q\"\\"),
            ("a&#47;b&#x2F;c&#x2f;d&sol;e&amp;f", "a/b/c/d/e&f"),
            ("a%2Fb%2fc%41", "a/b/cA"),
            ("%C3%A9t%C3%A9", "été"),
            ("100% sure &nope; \\x %zz", "100% sure &nope; \\x %zz"),
            ("%FF%2F", "%FF/"),
        ] {
            let Some(d) = Decoded::new(escaped) else {
                assert_eq!(escaped, plain, "nothing decoded in {escaped:?}");
                continue;
            };
            assert_eq!(d.text, plain, "{escaped:?}");
            assert_eq!(d.origin.len(), d.text.len());
            // The whole decoded text maps back to the whole original.
            assert_eq!(d.original(0..d.text.len()), 0..escaped.len(), "{escaped:?}");
        }
    }

    #[test]
    fn a_match_maps_to_the_escaped_bytes() {
        let text = r#"{"k":"x\/y"}"#;
        let d = Decoded::new(text).unwrap();
        let at = d.text.find("x/y").unwrap();
        assert_eq!(&text[d.original(at..at + 3)], r"x\/y");
    }

    #[test]
    fn layers_decode_an_escape_of_an_escape() {
        let text = "k=a%252Fb&amp;#47;c";
        let layers = Decoded::layers(text, 3);
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0].text, "k=a%2Fb&#47;c");
        assert_eq!(layers[1].text, "k=a/b/c");
        let at = layers[1].text.find("a/b/c").unwrap();
        assert_eq!(&text[layers[1].original(at..at + 5)], "a%252Fb&amp;#47;c");
        assert!(Decoded::layers("plain", 3).is_empty());
    }

    #[test]
    fn plain_text_is_not_decoded() {
        assert!(Decoded::new("nothing to see here").is_none());
        assert!(Decoded::new("50% & more").is_none());
    }
}
