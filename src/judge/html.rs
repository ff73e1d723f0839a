//! An HTML error page as the words a person sees on it: its `<title>`, or
//! else the text of the page with tags, scripts, styles and comments taken
//! away. html5ever's tokenizer reads the markup (character references
//! decoded, script and style contents recognised as such); nothing is
//! fetched and no script runs.
//!
//! Secrets: the markup is redacted as it arrived (the redactor knows a
//! secret's escaped forms), then the text is built, and whoever shows it
//! redacts it again (`quote`). But decoding `&#x73;` or dropping `<b>` can
//! put a secret's characters side by side that were apart in the markup
//! (and redacting the markup first would leave the short pieces standing),
//! so the text is also built from the markup as it is, without word
//! breaks for tags, and when that text holds a secret, it is what is
//! shown, redacted (see [`visible_text`]).

use std::cell::RefCell;

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{
    BufferQueue, CharacterTokens, EndTag, TagToken, Token, TokenSink, TokenSinkResult, Tokenizer,
    TokenizerOpts,
};

use crate::secret::Redactor;

/// How much markup is read: enough to get past a page's inline styles
/// and scripts to its words, while the redactor's cost, which grows with
/// what it reads, stays small.
const MAX_MARKUP: usize = 256 * 1024;
/// Dropped in front of that cut, so a piece of a secret too short for the
/// redactor to know it is not left standing at it (as `secret::clean`).
const CUT_MARGIN: usize = 1024;
/// How much text is kept: the reason shows 160 characters of it.
const MAX_TEXT: usize = 2048;

/// Whether an answer's body is an HTML page: its `Content-Type` says so,
/// or (with none, or a generic one) it starts with `<`.
pub(super) fn is_html(content_type: Option<&str>, body: &[u8]) -> bool {
    let ct = content_type.map(|c| c.trim().to_ascii_lowercase());
    match ct.as_deref() {
        Some(c) if c.starts_with("text/html") || c.starts_with("application/xhtml") => true,
        Some(c) if c.contains("json") => false,
        _ => {
            let start = body
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(body.len());
            let rest = &body[start..];
            let rest = rest.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(rest);
            rest.first() == Some(&b'<')
        }
    }
}

/// The page's title, or else its visible text, white space folded; `None`
/// when it has neither. Not cut to a reason's length (`quote` does that).
///
/// Read twice: from the markup redacted as it arrived (a secret written
/// with a `<` in it, or escaped, is gone before tags are taken away), and
/// from the markup as it is. When the second reading's text, tags taken
/// away, holds a secret (split by tags, or written with references), that
/// text is redacted and shown; otherwise the first reading's is.
pub(super) fn visible_text(markup: &str, redactor: &Redactor) -> Option<String> {
    let cut = markup.len() > MAX_MARKUP;
    let examined = &markup[..floor_boundary(markup, MAX_MARKUP)];
    let redacted = redactor.redact(examined);
    let end = |text: &str| {
        let end = match cut {
            true => text.len().saturating_sub(CUT_MARGIN),
            false => text.len(),
        };
        floor_boundary(text, end)
    };
    let arrived = read(&redacted[..end(&redacted)]);
    let plain = read(&examined[..end(examined)]);
    // A piece of a secret cut at the end of what was read is too short
    // for the redactor to know: the last characters go.
    let tail = |text: &str| match cut {
        true => text[..floor_boundary(text, text.len().saturating_sub(PIECE))].to_owned(),
        false => text.to_owned(),
    };
    let pick = |plain: &str, arrived: &str| {
        if redactor.finds_secret(plain) {
            fold(&redactor.redact(&tail(plain)))
        } else {
            fold(arrived)
        }
    };
    let title = pick(&plain.title, &arrived.title);
    if !title.is_empty() {
        return Some(title);
    }
    let shown = pick(&plain.joined, &arrived.spaced);
    (!shown.is_empty()).then_some(shown)
}

/// A secret's characters that the redactor finds anywhere
/// (`secret::redact::PIECE_CHARS`), in bytes at most 4 each.
const PIECE: usize = 8 * 4;

fn read(markup: &str) -> Page {
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(markup));
    let tokenizer = Tokenizer::new(Text::default(), TokenizerOpts::default());
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    tokenizer.sink.0.into_inner()
}

#[derive(Default)]
struct Text(RefCell<Page>);

#[derive(Default)]
struct Page {
    title: String,
    /// The visible text, a space for every tag that breaks words.
    spaced: String,
    /// The same without those spaces.
    joined: String,
    /// Inside an element whose text is not shown (script, style, …).
    hidden: Option<&'static str>,
    in_title: bool,
    /// Inside `<svg>` or `<math>`, whose `<title>` is not the page's.
    foreign: usize,
}

/// Elements whose content is not shown, and how the tokenizer reads it.
const HIDDEN: [(&str, RawKind); 6] = [
    ("script", RawKind::ScriptData),
    ("style", RawKind::Rawtext),
    ("template", RawKind::Rawtext),
    ("iframe", RawKind::Rawtext),
    ("noembed", RawKind::Rawtext),
    ("noframes", RawKind::Rawtext),
];

/// Elements that do not break a word: `<b>sec</b>ret` reads `secret`.
const INLINE: [&str; 24] = [
    "a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "dfn", "em", "font", "i", "kbd",
    "mark", "q", "s", "samp", "small", "span", "strong", "sub", "sup", "u", "var",
];

impl TokenSink for Text {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        let mut page = self.0.borrow_mut();
        match token {
            TagToken(tag) => {
                let name: &str = &tag.name;
                if let Some(hidden) = page.hidden {
                    if tag.kind == EndTag && name == hidden {
                        page.hidden = None;
                    }
                    return TokenSinkResult::Continue;
                }
                if tag.kind == EndTag {
                    if name == "title" {
                        page.in_title = false;
                    }
                    if matches!(name, "svg" | "math") {
                        page.foreign = page.foreign.saturating_sub(1);
                    }
                } else if !tag.self_closing {
                    if let Some((hidden, kind)) = HIDDEN.iter().find(|(h, _)| *h == name) {
                        page.hidden = Some(hidden);
                        return TokenSinkResult::RawData(*kind);
                    }
                    match name {
                        "svg" | "math" => page.foreign += 1,
                        "title" if page.foreign == 0 => {
                            page.in_title = true;
                            return TokenSinkResult::RawData(RawKind::Rcdata);
                        }
                        "textarea" => return TokenSinkResult::RawData(RawKind::Rcdata),
                        "xmp" => return TokenSinkResult::RawData(RawKind::Rawtext),
                        "plaintext" => return TokenSinkResult::Plaintext,
                        _ => {}
                    }
                }
                if !INLINE.contains(&name) {
                    page.push_break();
                }
            }
            CharacterTokens(chars) if page.hidden.is_none() => {
                if page.in_title {
                    push_capped(&mut page.title, &chars);
                } else {
                    push_capped(&mut page.spaced, &chars);
                    push_capped(&mut page.joined, &chars);
                }
            }
            _ => {}
        }
        TokenSinkResult::Continue
    }
}

impl Page {
    fn push_break(&mut self) {
        push_capped(&mut self.spaced, " ");
    }
}

/// Appends `text` with white space folded as it goes, so the cap counts
/// what is shown.
fn push_capped(into: &mut String, text: &str) {
    for c in text.chars() {
        if into.len() >= MAX_TEXT {
            return;
        }
        let c = if c.is_whitespace() || c.is_control() {
            ' '
        } else {
            c
        };
        if c == ' ' && (into.is_empty() || into.ends_with(' ')) {
            continue;
        }
        into.push(c);
    }
}

/// Runs of white space and control characters as one space, trimmed.
fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_TEXT));
    for word in text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
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
