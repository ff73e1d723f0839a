//! An HTML error page becomes a readable reason: its `<title>`, or else
//! its visible text (no tags, scripts, styles or comments, white space
//! folded, cut to 160 characters), with secrets redacted however the page
//! splits or escapes them.

use std::time::Duration;

use lookout::judge::judge;
use lookout::outcome::Outcome;
use lookout::probe::Observation;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};

use crate::support::{TEST_SECRET, assert_table_passed, config};

const NGINX_404: &str = "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n</body>\r\n</html>\r\n";

fn answer(content_type: Option<&str>, body: &str) -> Observation {
    let mut headers = HeaderMap::new();
    if let Some(ct) = content_type {
        headers.insert(CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
    }
    Observation {
        status: Some(502),
        headers,
        body: body.as_bytes().to_vec(),
        duration: Duration::from_millis(5),
        ..Observation::default()
    }
}

#[test]
fn an_html_error_page_becomes_its_visible_text() {
    let cfg = config(
        "[secrets]\nkey = { env = \"PLATFORM_API_KEY\" }\n\
         [[checks]]\nname = \"status\"\nurl = \"http://127.0.0.1:1/\"\n\
         auth = { scheme = \"api_key\", secret = \"key\" }\nexpect = { status = [200] }\n\
         [[checks]]\nname = \"json\"\nurl = \"http://127.0.0.1:1/\"\n\
         expect = { status = [502], json = [{ pointer = \"/ok\", equals = true }] }\n",
    );
    let marker = cfg.redactor.redact(TEST_SECRET).into_owned();
    assert!(marker.starts_with("[redacted sha256:"), "{marker}");
    let words = "word ".repeat(40);
    let huge = format!(
        "<html><head><script>{}</script></head><body><p>{}</p></body></html>",
        "var x = 1;".repeat(2_000),
        "word ".repeat(200_000)
    );
    let html = Some("text/html; charset=utf-8");
    // (case, check, Content-Type, body, expected reason)
    let cases: Vec<(&str, usize, Option<&str>, String, String)> = vec![
        (
            "nginx's default 404: its title",
            0,
            html,
            NGINX_404.into(),
            "status 502, expected 200: \"404 Not Found\"".into(),
        ),
        (
            "no title: the body's text, no script, style or comment",
            0,
            html,
            "<!doctype html><html><head><style>body { color: red }</style>\
             <script>var a = \"<b>not text</b>\"; if (a < b) {}</script></head>\
             <body><h1>Service Unavailable</h1><p>The upstream   is\n down.</p>\
             <!-- a comment --></body></html>"
                .into(),
            "status 502, expected 200: \"Service Unavailable The upstream is down.\"".into(),
        ),
        (
            "entities decoded",
            0,
            html,
            "<body><p>Invalid key &amp; token &#8212; see &lt;docs&gt;</p></body>".into(),
            "status 502, expected 200: \"Invalid key & token — see <docs>\"".into(),
        ),
        (
            "inline tags do not break words",
            0,
            html,
            "<body><p>Access <b>den</b>ied for <code>ml-platform</code></p></body>".into(),
            "status 502, expected 200: \"Access denied for ml-platform\"".into(),
        ),
        (
            "a page without Content-Type that starts with <",
            0,
            None,
            "  <html><body><h2>Forbidden</h2></body></html>".into(),
            "status 502, expected 200: \"Forbidden\"".into(),
        ),
        (
            "a page with no words: no detail, never the tags",
            0,
            html,
            "<html><body><div></div></body></html>".into(),
            "status 502, expected 200".into(),
        ),
        (
            "plain text stays its first line",
            0,
            Some("text/plain"),
            "plain failure\nsecond line".into(),
            "status 502, expected 200: \"plain failure\"".into(),
        ),
        (
            "a huge page: cut to 160 characters",
            0,
            html,
            huge,
            format!("status 502, expected 200: \"{}…\"", &words[..160]),
        ),
        (
            "a secret split by inline tags",
            0,
            html,
            format!(
                "<body><p>key <b>{}</b>{} is not valid</p></body>",
                &TEST_SECRET[..5],
                &TEST_SECRET[5..]
            ),
            format!("status 502, expected 200: \"key {marker} is not valid\""),
        ),
        (
            "a secret split by block tags into short pieces",
            0,
            html,
            format!(
                "<body><div>{}</div><div>{}</div><div>{}</div><div>{}</div> rejected</body>",
                &TEST_SECRET[..6],
                &TEST_SECRET[6..12],
                &TEST_SECRET[12..18],
                &TEST_SECRET[18..]
            ),
            format!("status 502, expected 200: \"{marker} rejected\""),
        ),
        (
            "a secret written with character references",
            0,
            html,
            format!(
                "<body><p>{} denied</p></body>",
                TEST_SECRET
                    .chars()
                    .map(|c| format!("&#x{:x};", c as u32))
                    .collect::<String>()
            ),
            format!("status 502, expected 200: \"{marker} denied\""),
        ),
        (
            "a secret in the title, one character a reference",
            0,
            html,
            format!(
                "<html><head><title>bad key {}&#{};{}</title></head></html>",
                &TEST_SECRET[..3],
                TEST_SECRET.as_bytes()[3],
                &TEST_SECRET[4..]
            ),
            format!("status 502, expected 200: \"bad key {marker}\""),
        ),
        (
            "a proxy's page where JSON was due",
            1,
            html,
            NGINX_404.replace("404 Not Found", "502 Bad Gateway"),
            "body is not JSON (expected value at line 1 column 1): \"502 Bad Gateway\"".into(),
        ),
    ];
    let mut failures = Vec::new();
    for (case, check, content_type, body, expected) in &cases {
        let outcome = judge(
            &cfg.checks[*check].expect,
            &answer(*content_type, body),
            &cfg.redactor,
        );
        let reason = match &outcome {
            Outcome::Failure { reason, .. } => reason.clone(),
            Outcome::Success => String::new(),
        };
        if reason != *expected {
            failures.push(format!(
                "{case}:\n  got      {reason}\n  expected {expected}"
            ));
        }
        let leaked = (0..=TEST_SECRET.len() - 8).any(|i| reason.contains(&TEST_SECRET[i..i + 8]));
        if leaked {
            failures.push(format!("{case}: leaks a piece of the secret: {reason}"));
        }
    }
    assert_table_passed(&failures, cases.len());
}

/// Markup, entities and pieces of the secret in any order: the reason
/// never shows 8 characters of the secret side by side, however tags,
/// comments, scripts or references cut and join them.
mod any_page {
    use proptest::prelude::*;

    use super::*;

    const TOKENS: &[&str] = &[
        "<b>",
        "</b>",
        "<div>",
        "</div>",
        "<p>",
        "<br>",
        "<script>",
        "</script>",
        "<style>",
        "</style>",
        "<title>",
        "</title>",
        "<svg>",
        "</svg>",
        "<!-- ",
        " -->",
        "<textarea>",
        "</textarea>",
        "&amp;",
        "&#x68;",
        "&lt;",
        "<",
        ">",
        " ",
        "\n",
        "denied ",
        "key ",
        "hk_te",
        "st_Zq8",
        "Xw3Vb9",
        "Nc2Lm",
        "4Kp7Rt",
        "hk_test_Zq8Xw3Vb9Nc2Lm4Kp7Rt",
        "&#x68;&#x6b;_test_Zq8Xw3Vb9Nc2Lm4Kp7Rt",
        "%68k_test_Zq8Xw3Vb9Nc2Lm4Kp7Rt",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn never_shows_a_piece_of_the_secret(
            picks in proptest::collection::vec(0..TOKENS.len(), 0..40),
            typed in any::<bool>(),
        ) {
            let cfg = config(
                "[secrets]\nkey = { env = \"PLATFORM_API_KEY\" }\n\
                 [[checks]]\nname = \"c\"\nurl = \"http://127.0.0.1:1/\"\n\
                 auth = { scheme = \"api_key\", secret = \"key\" }\nexpect = { status = [200] }\n",
            );
            let body: String = picks.iter().map(|&i| TOKENS[i]).collect();
            let body = format!("<html>{body}");
            let content_type = typed.then_some("text/html");
            let outcome = judge(&cfg.checks[0].expect, &answer(content_type, &body), &cfg.redactor);
            let reason = outcome.reason().unwrap_or_default().to_owned();
            for i in 0..=TEST_SECRET.len() - 8 {
                prop_assert!(
                    !reason.contains(&TEST_SECRET[i..i + 8]),
                    "{reason:?} from {body:?}"
                );
            }
        }
    }
}
