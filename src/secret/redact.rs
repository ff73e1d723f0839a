//! The [`Redactor`]: finds a config's secrets in text a target sent back and
//! replaces them with `[redacted sha256:…]`.
//!
//! A target or a proxy hands a secret back in many forms: as it was sent,
//! JSON-escaped (`\/`, `\u002F`), as HTML character references, percent-
//! encoded in either case, form-encoded (space as `+`), as the base64 of
//! Basic auth's `user:password`, or cut short where someone truncated the
//! text. The redactor looks for each secret in the text as it is and in the
//! text with up to three layers of escapes decoded ([`super::decode`]), and it looks
//! for every run of [`PIECE_CHARS`] characters of a secret, not only the
//! whole: a secret cut at a truncation boundary, split over two lines or
//! escaped one character at a time still leaves no such run behind. A piece
//! that is found is cut out of the original text however it was escaped
//! there; pieces that touch or overlap become one marker.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

use super::Secret;
use super::decode::Decoded;

/// The shortest run of a secret's characters that is redacted wherever it
/// stands. A secret shorter than this is redacted whole only.
pub const PIECE_CHARS: usize = 8;

/// How many layers of escapes are taken off: an escape of an escape
/// (`%252F`, `&amp;#47;`) is how a value comes back after being put in a
/// URL that was itself put in a URL, as single sign-on `return_to`s are.
const LAYERS: usize = 3;

/// Replaces every known secret, in every form a target might echo it, with
/// `[redacted sha256:…]`.
#[derive(Clone, Default)]
pub struct Redactor {
    search: Search,
    /// Secrets learned at run time (fetched OAuth2 tokens), searched after
    /// the config's: read at each use, so a token fetched after this
    /// redactor was handed out is scrubbed too.
    learned: Option<Learned>,
}

/// Secrets that exist only at run time (OAuth2 access tokens a cache
/// holds), by slot: each owner sets and removes its own slot, so the set
/// stays as small as what the owners hold now.
#[derive(Clone, Default)]
pub struct Learned(Arc<RwLock<LearnedInner>>);

#[derive(Default)]
struct LearnedInner {
    secrets: BTreeMap<u64, Vec<Secret>>,
    search: Search,
}

impl Learned {
    /// A slot no other owner in this process uses.
    pub fn slot() -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    /// The secrets of `slot` are now `secrets` (none: the slot is freed).
    pub fn set(&self, slot: u64, secrets: Vec<Secret>) {
        let mut inner = self.0.write().unwrap_or_else(|p| p.into_inner());
        if secrets.is_empty() {
            if inner.secrets.remove(&slot).is_none() {
                return;
            }
        } else {
            inner.secrets.insert(slot, secrets);
        }
        inner.search = Redactor::new(inner.secrets.values().flatten(), []).search;
    }

    /// How many secrets are learned now.
    pub fn len(&self) -> usize {
        let inner = self.0.read().unwrap_or_else(|p| p.into_inner());
        inner.secrets.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn search(&self) -> Search {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .search
            .clone()
    }
}

#[derive(Clone, Default)]
enum Search {
    /// No secrets in the config.
    #[default]
    Nothing,
    Secrets(Arc<Inner>),
    /// The secrets were too many to build a search for (far past any real
    /// config): nothing a target sent is shown, and no URL is trusted.
    Everything,
}

struct Inner {
    /// Every run of `PIECE_CHARS` characters of every form (a shorter form
    /// whole), searched with overlaps so runs that chain cover a secret.
    pieces: AhoCorasick,
    /// For each piece, the secret (index into `markers`) it came from.
    owner: Vec<usize>,
    markers: Vec<String>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.search {
            Search::Nothing => f.write_str("Redactor(no secrets)"),
            Search::Secrets(inner) => write!(f, "Redactor({} secrets)", inner.markers.len()),
            Search::Everything => f.write_str("Redactor(everything)"),
        }
    }
}

/// `application/x-www-form-urlencoded`'s encoding of one value: what a
/// form body, and OAuth2's Basic client authentication, send.
pub fn form_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

impl Redactor {
    /// `secrets` are every secret in the config; `basic_pairs` are
    /// (username, password) pairs, whose base64 form is redacted too.
    pub fn new<'a>(
        secrets: impl IntoIterator<Item = &'a Secret>,
        basic_pairs: impl IntoIterator<Item = (&'a str, &'a Secret)>,
    ) -> Self {
        let mut markers: Vec<String> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut forms: Vec<(String, usize)> = Vec::new();
        let mut marker_of = |secret: &Secret| {
            let marker = format!("[redacted {}]", secret.fingerprint());
            *index.entry(marker.clone()).or_insert_with(|| {
                markers.push(marker);
                markers.len() - 1
            })
        };
        for secret in secrets {
            let owner = marker_of(secret);
            let plain = secret.expose();
            forms.push((plain.to_owned(), owner));
            // Form encoding writes a space as `+`.
            if plain.contains(' ') {
                forms.push((plain.replace(' ', "+"), owner));
            }
        }
        for (user, secret) in basic_pairs {
            let owner = marker_of(secret);
            // As written, and form-encoded first as OAuth2's client
            // authentication sends it (RFC 6749 §2.3.1).
            let pairs = [
                format!("{user}:{}", secret.expose()),
                format!("{}:{}", form_encode(user), form_encode(secret.expose())),
            ];
            for pair in pairs {
                for engine in [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
                    forms.push((engine.encode(pair.as_bytes()), owner));
                }
            }
            // A form body carries the secret form-encoded too.
            forms.push((form_encode(secret.expose()), owner));
        }
        forms.retain(|(form, _)| !form.is_empty());
        forms.sort();
        forms.dedup_by(|a, b| a.0 == b.0);
        if forms.is_empty() {
            return Redactor::default();
        }

        let mut pieces: HashMap<String, usize> = HashMap::new();
        for (form, owner) in &forms {
            for piece in pieces_of(form) {
                pieces.entry(piece.to_owned()).or_insert(*owner);
            }
        }
        let (pieces, owner): (Vec<String>, Vec<usize>) = pieces.into_iter().unzip();
        let pieces = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&pieces);
        let search = match pieces {
            Ok(pieces) => Search::Secrets(Arc::new(Inner {
                pieces,
                owner,
                markers,
            })),
            // Only a pattern set far past any config's size fails to build:
            // better a daemon that shows no target text than one that shows
            // it unredacted.
            Err(_) => Search::Everything,
        };
        Redactor {
            search,
            learned: None,
        }
    }

    /// This redactor, also scrubbing whatever `learned` holds at each use.
    pub fn learning(mut self, learned: &Learned) -> Redactor {
        self.learned = Some(learned.clone());
        self
    }

    /// `text` with every secret (and every run of `PIECE_CHARS` of its
    /// characters), in any form, replaced by a marker naming its fingerprint.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let first = self.search.redact(text);
        let Some(learned) = &self.learned else {
            return first;
        };
        let learned = learned.search();
        match first {
            Cow::Borrowed(text) => learned.redact(text),
            Cow::Owned(text) => Cow::Owned(learned.redact(&text).into_owned()),
        }
    }

    /// Whether `text` holds a secret, whole or any run of `PIECE_CHARS` of
    /// its characters, in any form (plain, escaped up to `LAYERS` times,
    /// base64 Basic): for deciding where a request may go, not what may be
    /// shown. A false alarm only keeps a request from leaving its origin.
    pub fn finds_secret(&self, text: &str) -> bool {
        self.search.finds_secret(text)
            || self
                .learned
                .as_ref()
                .is_some_and(|l| l.search().finds_secret(text))
    }
}

impl Search {
    fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let inner = match self {
            Search::Nothing => return Cow::Borrowed(text),
            Search::Everything => return Cow::Borrowed("[redacted]"),
            Search::Secrets(inner) => inner,
        };
        let mut hits = inner.pieces_in(text, |r| r);
        for decoded in Decoded::layers(text, LAYERS) {
            hits.extend(inner.pieces_in(&decoded.text, |r| decoded.original(r)));
        }
        if hits.is_empty() {
            return Cow::Borrowed(text);
        }
        hits.sort_by_key(|(r, _)| (r.start, std::cmp::Reverse(r.end)));
        let mut out = String::with_capacity(text.len());
        let mut written = 0;
        let mut hits = hits.into_iter().peekable();
        while let Some((first, owner)) = hits.next() {
            let mut end = first.end;
            while let Some((next, _)) = hits.next_if(|(next, _)| next.start <= end) {
                end = end.max(next.end);
            }
            out.push_str(&text[written..first.start]);
            out.push_str(&inner.markers[owner]);
            written = end;
        }
        out.push_str(&text[written..]);
        Cow::Owned(out)
    }

    fn finds_secret(&self, text: &str) -> bool {
        let inner = match self {
            Search::Nothing => return false,
            Search::Everything => return true,
            Search::Secrets(inner) => inner,
        };
        inner.pieces.is_match(text)
            || Decoded::layers(text, LAYERS)
                .iter()
                .any(|d| inner.pieces.is_match(&d.text))
    }
}

impl Inner {
    fn pieces_in(
        &self,
        text: &str,
        to_original: impl Fn(Range<usize>) -> Range<usize>,
    ) -> Vec<(Range<usize>, usize)> {
        self.pieces
            .find_overlapping_iter(text)
            .map(|m| (to_original(m.range()), self.owner[m.pattern().as_usize()]))
            .collect()
    }
}

/// Every run of `PIECE_CHARS` characters of `form`; a shorter form whole.
fn pieces_of(form: &str) -> Vec<&str> {
    let starts: Vec<usize> = form.char_indices().map(|(i, _)| i).collect();
    if starts.len() <= PIECE_CHARS {
        return vec![form];
    }
    (0..=starts.len() - PIECE_CHARS)
        .map(|i| {
            let end = starts.get(i + PIECE_CHARS).copied().unwrap_or(form.len());
            &form[starts[i]..end]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretOrigin;

    fn secret(v: &str) -> Secret {
        Secret::new(v.to_owned(), SecretOrigin::Named("k".into()))
    }

    #[test]
    fn redacts_plain_percent_encoded_and_basic_forms() {
        let key = secret("k3y/with+chars");
        let pw = secret("pa55");
        let r = Redactor::new([&key, &pw], [("alice", &pw)]);
        let basic = STANDARD.encode("alice:pa55");
        let text = format!("a k3y/with+chars b k3y%2Fwith%2Bchars c {basic} d");
        let out = r.redact(&text);
        assert!(!out.contains("k3y"), "{out}");
        assert!(!out.contains(&basic), "{out}");
        assert!(out.contains(key.fingerprint()), "{out}");
        assert!(
            out.starts_with("a [redacted") && out.ends_with(" d"),
            "{out}"
        );
    }

    /// Each form a target or proxy may hand the key back in; the text
    /// around it survives.
    #[test]
    fn redacts_every_escaped_form() {
        let key = secret("hk/Zq8+Xw3&V<b9\"N");
        let r = Redactor::new([&key], []);
        for form in [
            r#"hk\/Zq8+Xw3&V<b9\"N"#,
            r#"\u0068\u006B\u002F\u005a\u0071\u0038\u002b\u0058\u0077\u0033\u0026\u0056\u003c\u0062\u0039\u0022\u004e"#,
            "hk&#47;Zq8&#43;Xw3&amp;V&lt;b9&quot;N",
            "hk&#x2F;Zq8&plus;Xw3&#x26;V&#60;b9&#x22;N",
            "hk%2FZq8%2BXw3%26V%3Cb9%22N",
            "hk%2fZq8%2bXw3%26V%3cb9%22N",
            "%68%6B%2F%5A%71%38%2B%58%77%33%26%56%3C%62%39%22%4E",
            r"hk\/Zq8%2BXw3&amp;V\u003cb9&quot;N",
        ] {
            let text = format!("before {form} after");
            let out = r.redact(&text);
            assert_eq!(
                out,
                format!("before [redacted {}] after", key.fingerprint()),
                "{form}"
            );
        }
    }

    #[test]
    fn redacts_a_piece_of_a_secret_cut_or_split() {
        let key = secret("hk_test_Zq8Xw3Vb9Nc2Lm4Kp7Rt");
        let r = Redactor::new([&key], []);
        for text in [
            "cut here: hk_test_Zq8Xw3",
            "Lm4Kp7Rt was the end",
            "wrapped hk_test_Zq8Xw3Vb9\nNc2Lm4Kp7Rt lines",
            r"escaped and cut hk_test\u005fZq",
        ] {
            let out = r.redact(text);
            assert!(out.contains("[redacted "), "{text:?} -> {out:?}");
            let value = key.expose();
            let chars: Vec<char> = value.chars().collect();
            for piece in chars.windows(PIECE_CHARS) {
                let piece: String = piece.iter().collect();
                assert!(!out.contains(&piece), "{text:?} -> {out:?} keeps {piece}");
            }
        }
    }

    #[test]
    fn basic_auth_in_both_base64_alphabets_and_without_padding() {
        let pw = secret("p>?w~~~~");
        let r = Redactor::new([&pw], [("u", &pw)]);
        for engine in [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD] {
            let b64 = engine.encode("u:p>?w~~~~");
            let text = format!("Basic {b64}");
            let out = r.redact(&text);
            assert!(!out.contains(&b64), "{out}");
            assert!(r.finds_secret(&format!("http://x/?a={b64}")));
        }
    }

    #[test]
    fn finds_a_secret_or_a_piece_of_it_in_any_layer() {
        let key = secret("hk_test_Zq8+Xw3/Vb9=Nc2Lm4Kp7Rt");
        let r = Redactor::new([&key], []);
        for url in [
            "https://evil.example/x/hk_test_Zq8+Xw3/Vb9=Nc2Lm4Kp7Rt",
            "https://evil.example/#hk%5Ftest%5FZq8%2BXw3%2FVb9%3DNc2Lm4Kp7Rt",
            // A URL in a URL: single sign-on's return_to, encoded twice.
            "https://sso.example/login?return_to=https%3A%2F%2Fapi%2Fx%3Fkey%3Dhk_test_Zq8%252BXw3%252FVb9%253DNc2",
            "https://evil.example/?hint=hk_test_Zq8",
        ] {
            assert!(r.finds_secret(url), "{url}");
            assert!(r.redact(url).contains("[redacted"), "{url}");
        }
        assert!(!r.finds_secret("https://evil.example/x/hk_test"));
        assert!(!Redactor::default().finds_secret("anything"));
    }

    #[test]
    fn leaves_text_without_secrets_untouched() {
        let r = Redactor::new([&secret("zzz")], []);
        assert!(matches!(r.redact("hello"), Cow::Borrowed("hello")));
        assert!(matches!(r.redact("a%2Fb &amp; c"), Cow::Borrowed(_)));
        assert!(matches!(
            Redactor::default().redact("hello"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn short_secrets_are_redacted_whole_only() {
        let r = Redactor::new([&secret("pa55")], []);
        assert_eq!(r.redact("pa5 pa55").matches("[redacted").count(), 1);
    }

    /// A redactor handed out before a token was learned scrubs it once it
    /// is (a run takes its redactor before its token is fetched), in every
    /// form; a freed slot is forgotten.
    #[test]
    fn learned_secrets_are_scrubbed_by_redactors_handed_out_earlier() {
        let config_key = secret("hk_test_config_key_0123");
        let learned = Learned::default();
        let r = Redactor::new([&config_key], []).learning(&learned);
        let token = secret("eyJ0b2tlbi1mcm9tLWFuLWlkcA.c2ln");
        let text = format!(
            "key hk_test_config_key_0123 token {} and %22{}%22",
            token.expose(),
            token.expose()
        );
        assert!(r.redact(&text).contains(token.expose()));
        let slot = Learned::slot();
        learned.set(slot, vec![token.clone()]);
        let out = r.redact(&text);
        assert!(
            !out.contains("eyJ0b2tl") && !out.contains("hk_test"),
            "{out}"
        );
        assert_eq!(out.matches(token.fingerprint()).count(), 2, "{out}");
        assert!(r.finds_secret(&format!("https://elsewhere/?t={}", token.expose())));
        assert_eq!(learned.len(), 1);
        learned.set(slot, Vec::new());
        assert!(learned.is_empty());
        assert!(r.redact(&text).contains(token.expose()));
        assert!(!r.redact(&text).contains("hk_test"));
    }
}
