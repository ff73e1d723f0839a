//! Which config fields are templates, and template syntax anywhere else.
//!
//! Only a check's `name`, `url`, header values, `body` and `json` strings, `dns.name` and `routes`,
//! and a flow step's `url`, header values (the flow's own headers too),
//! `body` and `json` strings are rendered by [`crate::template`]. Anywhere
//! else `{{ … }}` would be used exactly as written, a group called
//! `{{ env }}` or an expected body that can never match, so it is refused
//! when the config loads. The walk is over the document as parsed, so every
//! string field is covered, including ones added later, unless this table
//! says it is a template.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::ConfigError;
use super::validate::Ctx;

/// One step of a field path: a table key or a list index.
#[derive(Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Whether the string at `path` is rendered as a template. `json` bodies
/// are templates all the way down.
fn is_templated(path: &[Seg<'_>]) -> bool {
    use Seg::{Index, Key};
    match path {
        [Key("checks"), Index(_), rest @ ..] => request_template(rest, true),
        [Key("defaults"), Key("base_url")] | [Key("defaults"), Key("headers"), Key(_)] => true,
        [Key("flows"), Index(_), Key("headers"), Key(_)] => true,
        [
            Key("flows"),
            Index(_),
            Key("steps" | "cleanup"),
            Index(_),
            rest @ ..,
        ] => request_template(rest, false),
        _ => false,
    }
}

/// The templated fields of a check (`with_name`) or of a flow step.
fn request_template(rest: &[Seg<'_>], with_name: bool) -> bool {
    use Seg::Key;
    match rest {
        [Key("name")] | [Key("dns"), Key("name")] | [Key("routes"), Key(_)] => with_name,
        // A check's auth, but its literal value (never shown, so never
        // rendered) and a flow's.
        [
            Key("auth"),
            Key("scheme" | "header" | "param" | "username" | "secret"),
        ] => with_name,
        [Key("url" | "body")] | [Key("headers"), Key(_)] | [Key("json"), ..] => true,
        _ => false,
    }
}

/// What to tell someone who wrote a template at `path`.
fn where_templates_work(path: &[Seg<'_>]) -> &'static str {
    match path.first() {
        Some(Seg::Key("checks")) => {
            "templates are expanded only in a check's name, url, headers, body, json, dns.name, routes and auth's scheme, header, param, username and secret"
        }
        Some(Seg::Key("flows")) => {
            "templates are expanded only in a flow's headers and in its steps' url, headers, body and json"
        }
        _ => {
            "templates are expanded only in a check's name, url, headers, body, json, dns.name, routes and auth's scheme, header, param, username and secret, \
             and in a flow's headers and its steps' url, headers, body and json"
        }
    }
}

/// The first template syntax in `text` (what the templater would take for
/// a template), by its opening mark.
pub(super) fn marker(text: &str) -> Option<&'static str> {
    ["{{", "{%", "{#"]
        .into_iter()
        .filter_map(|open| text.find(open).map(|at| (at, open)))
        .min_by_key(|&(at, _)| at)
        .map(|(_, open)| open)
}

/// A string outside the templated fields that holds template syntax.
pub(super) struct Misplaced {
    field: String,
    span: Range<usize>,
    message: String,
}

impl Misplaced {
    pub(super) fn into_error(self, ctx: &Ctx<'_>) -> ConfigError {
        ctx.err(self.span, self.field, self.message)
    }
}

/// The first string (in document order) outside the templated fields that
/// holds template syntax. The value is never quoted: it may be a credential.
pub(super) fn misplaced(root: &DeTable<'_>) -> Option<Misplaced> {
    let mut path = Vec::new();
    walk_table(root, &mut path)
}

fn walk_table<'a>(table: &'a DeTable<'_>, path: &mut Vec<Seg<'a>>) -> Option<Misplaced> {
    let mut found: Option<Misplaced> = None;
    for (key, value) in table {
        path.push(Seg::Key(key.get_ref()));
        let here = walk(value, path);
        path.pop();
        // Tables are sorted by key, not by place: keep the earliest.
        if let Some(h) = here
            && found.as_ref().is_none_or(|f| h.span.start < f.span.start)
        {
            found = Some(h);
        }
    }
    found
}

fn walk<'a>(value: &'a Spanned<DeValue<'_>>, path: &mut Vec<Seg<'a>>) -> Option<Misplaced> {
    match value.get_ref() {
        DeValue::String(text) => {
            let shown = marker(text)?;
            if is_templated(path) {
                return None;
            }
            let field = field(path);
            let last = path
                .iter()
                .rev()
                .find_map(|s| match s {
                    Seg::Key(k) => Some(*k),
                    Seg::Index(_) => None,
                })
                .unwrap_or("this field");
            Some(Misplaced {
                message: format!(
                    "{last} is not a template, so {shown:?} here would be used exactly as written; {}",
                    where_templates_work(path)
                ),
                field,
                span: value.span(),
            })
        }
        DeValue::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            path.push(Seg::Index(i));
            let found = walk(item, path);
            path.pop();
            found
        }),
        DeValue::Table(table) => walk_table(table, path),
        DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) | DeValue::Datetime(_) => {
            None
        }
    }
}

/// `checks[0].expect.body_contains[1]`, as the other config errors write it.
fn field(path: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Seg::{Index, Key};
    use super::*;

    #[test]
    fn the_templated_fields_are_the_ones_validation_renders() {
        let yes: &[&[Seg<'_>]] = &[
            &[Key("checks"), Index(0), Key("name")],
            &[Key("checks"), Index(3), Key("url")],
            &[Key("checks"), Index(0), Key("headers"), Key("X-A")],
            &[Key("checks"), Index(0), Key("body")],
            &[Key("checks"), Index(0), Key("json"), Key("a"), Index(2)],
            &[Key("flows"), Index(0), Key("headers"), Key("X-A")],
            &[Key("flows"), Index(1), Key("steps"), Index(2), Key("url")],
            &[
                Key("flows"),
                Index(0),
                Key("cleanup"),
                Index(0),
                Key("json"),
            ],
        ];
        let no: &[&[Seg<'_>]] = &[
            &[Key("checks"), Index(0), Key("group")],
            &[Key("checks"), Index(0), Key("auth"), Key("value")],
            &[
                Key("checks"),
                Index(0),
                Key("expect"),
                Key("body_contains"),
                Index(0),
            ],
            &[Key("checks"), Index(0), Key("matrix"), Key("v"), Index(0)],
            &[Key("flows"), Index(0), Key("name")],
            &[Key("flows"), Index(0), Key("vars"), Key("x")],
            &[Key("flows"), Index(0), Key("steps"), Index(0), Key("name")],
            &[
                Key("flows"),
                Index(0),
                Key("steps"),
                Index(0),
                Key("capture"),
                Key("x"),
            ],
            &[Key("defaults"), Key("group")],
            &[Key("secrets"), Key("k"), Key("file")],
        ];
        for p in yes {
            assert!(is_templated(p), "{}", field(p));
        }
        for p in no {
            assert!(!is_templated(p), "{}", field(p));
        }
    }

    #[test]
    fn the_marker_is_the_first_template_syntax() {
        assert_eq!(marker("a {% if %} {{ b }}"), Some("{%"));
        assert_eq!(marker("{{ b }} {# c #}"), Some("{{"));
        assert_eq!(marker("{ not } a template }}"), None);
    }
}
