//! The secret sweep against a target that hands the key back in every form
//! a server or proxy may escape it in (JSON `\/` as PHP's `json_encode`
//! writes it, `\uXXXX`, HTML references, percent-encoding in either case,
//! Basic auth's base64, cut at a truncation boundary, split over lines):
//! no output of the real binary (logs at debug level, /metrics, the API,
//! the page, detail pages, badges, `report` and `check-config`) holds the
//! secret or any 8-character run of it, in any of those forms. The same
//! holds for an OAuth2 access token the target echoes (the sweep's server
//! is its token endpoint too, with the key as the client secret).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use axum::Router;
use axum::extract::Path as UrlPath;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;

use crate::support::eventually;

/// Every character a target may escape: `/` (JSON), `+` and space (form
/// encoding), `&`, `<` and `"` (HTML), `%` and `\`.
const KEY: &str = "hk/Zq8+Xw3&Vb9<Nc2\"Lm4 Kp7%Rt\\Yu5";
const USER: &str = "svc";
/// The access token the sweep's token endpoint issues: the same kind of
/// characters, another value.
const TOKEN: &str = "tk/Wq3+Ze8&Lm5<Pa7\"Rb2 Yc9%Nd\\Hx4";

/// The forms, by route name; each body quotes the key the check sent.
const FORMS: [&str; 11] = [
    "json-slash",
    "json-unicode",
    "html-named",
    "html-numeric",
    "percent-upper",
    "percent-lower",
    "percent-every-byte",
    "basic-base64",
    "cut-at-the-quote",
    "split-over-lines",
    "mixed",
];

fn json_slash(s: &str) -> String {
    // serde_json, then `/` escaped as PHP does.
    let quoted = serde_json::to_string(s).unwrap();
    quoted[1..quoted.len() - 1].replace('/', "\\/")
}

fn echoed(form: &str, key: &str, authorization: &str) -> String {
    let percent = |upper: bool, every: bool| -> String {
        key.bytes()
            .map(|b| {
                if !every && b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else if upper {
                    format!("%{b:02X}")
                } else {
                    format!("%{b:02x}")
                }
            })
            .collect()
    };
    match form {
        "json-slash" => format!("{{\"error\":\"key {} rejected\"}}", json_slash(key)),
        "json-unicode" => {
            let all: String = key
                .chars()
                .map(|c| format!("\\u{:04x}", c as u32))
                .collect();
            format!("{{\"error\":\"key {all} rejected\"}}")
        }
        "html-named" => format!(
            "<html><body><p>key {} rejected</p></body></html>",
            key.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('"', "&quot;")
                .replace('/', "&sol;")
                .replace('+', "&plus;")
                .replace('%', "&percnt;")
                .replace('\\', "&bsol;")
        ),
        "html-numeric" => {
            let all: String = key
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if i % 2 == 0 {
                        format!("&#{};", c as u32)
                    } else {
                        format!("&#x{:X};", c as u32)
                    }
                })
                .collect();
            format!("<p>key {all} rejected</p>")
        }
        "percent-upper" => format!("redirect=/login?key={}", percent(true, false)),
        "percent-lower" => format!("redirect=/login?key={}", percent(false, false)),
        "percent-every-byte" => format!("k={}", percent(true, true)),
        "basic-base64" => format!(
            "{{\"seen\":\"{}\"}}",
            json_slash(authorization.trim_start_matches("Basic "))
        ),
        // 150 characters and then the key: the reason's quote is cut
        // inside it.
        "cut-at-the-quote" => format!("{}{}", "x".repeat(150), json_slash(key)),
        "split-over-lines" => {
            let (a, b) = key.split_at(key.len() / 2);
            format!("key:\n{a}\n{b}\n")
        }
        "mixed" => format!(
            "{{\"k\":\"{}\"}}",
            json_slash(key)
                .replace('&', "&amp;")
                .replace('+', "%2B")
                .replace(' ', "\\u0020")
        ),
        _ => String::new(),
    }
}

async fn echo(UrlPath(form): UrlPath<String>, headers: HeaderMap) -> Response {
    // The key, or the OAuth2 checks' token.
    let key = headers
        .get("x-api-key")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .or_else(|| {
            let bearer = headers.get(header::AUTHORIZATION)?;
            String::from_utf8_lossy(bearer.as_bytes())
                .strip_prefix("Bearer ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let body = echoed(&form, &key, &authorization);
    let status = if form == "json-slash" {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    (status, body).into_response()
}

async fn token() -> Response {
    axum::Json(
        serde_json::json!({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600}),
    )
    .into_response()
}

/// The OAuth2 checks: every form but Basic's (the token is a Bearer).
fn oauth_forms() -> impl Iterator<Item = &'static str> {
    FORMS.into_iter().filter(|f| *f != "basic-base64")
}

async fn start_echo() -> SocketAddr {
    let app = Router::new()
        .route("/form/{form}", get(echo))
        .route("/token", post(token));
    crate::support::serve(app).await
}

fn config_text(addr: SocketAddr) -> String {
    let mut out = String::from(
        "[server]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \":memory:\"\n\
         [defaults]\ninterval = \"300ms\"\n[secrets]\nkey = { env = \"SWEEP_KEY\" }\n",
    );
    for form in FORMS {
        let auth = if form == "basic-base64" {
            format!("{{ scheme = \"basic\", username = \"{USER}\", secret = \"key\" }}")
        } else {
            "{ scheme = \"api_key\", secret = \"key\" }".to_owned()
        };
        // The body never matches, so the reason quotes the raw body; the
        // JSON form also answers 401, so the status reason quotes it too.
        let expect = if form == "json-slash" {
            "{ status = [200] }"
        } else {
            "{ body_regex = \"^never$\" }"
        };
        out.push_str(&format!(
            "[[checks]]\nname = \"{form}\"\ngroup = \"sweep\"\nurl = \"http://{addr}/form/{form}\"\n\
             auth = {auth}\nexpect = {expect}\n"
        ));
        if form != "basic-base64" {
            out.push_str(&format!(
                "[[checks]]\nname = \"oauth-{form}\"\ngroup = \"sweep\"\nurl = \"http://{addr}/form/{form}\"\n\
                 auth = {{ scheme = \"oauth2_client_credentials\", token_url = \"http://{addr}/token\", \
                 client_id = \"{USER}\", secret = \"key\" }}\nexpect = {expect}\n"
            ));
        }
    }
    out
}

/// The key, the Basic pair's base64, and every run of 8 characters of each.
fn needles() -> BTreeSet<String> {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{KEY}"));
    let mut out = BTreeSet::new();
    for value in [KEY.to_owned(), basic, TOKEN.to_owned()] {
        let chars: Vec<char> = value.chars().collect();
        for piece in chars.windows(lookout::secret::PIECE_CHARS) {
            out.insert(piece.iter().collect::<String>());
        }
    }
    out
}

/// `text` as a reader sees it, through each decoding a renderer applies:
/// as it is, HTML references decoded, JSON strings decoded, percent-decoded,
/// Markdown backslash escapes removed.
fn readings(text: &str) -> Vec<String> {
    fn strings(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
            serde_json::Value::Object(map) => map.iter().for_each(|(k, v)| {
                out.push_str(k);
                out.push('\n');
                strings(v, out);
            }),
            _ => {}
        }
    }
    let mut json = String::new();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        strings(&v, &mut json);
    }
    for line in text.lines() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
            strings(&v, &mut json);
        }
    }
    let mut markdown = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek().is_some_and(|n| n.is_ascii_punctuation()) {
            continue;
        }
        markdown.push(c);
    }
    vec![
        text.to_owned(),
        htmlize::unescape(text).into_owned(),
        json,
        percent_encoding::percent_decode_str(text)
            .decode_utf8_lossy()
            .into_owned(),
        markdown,
    ]
}

fn assert_clean(what: &str, text: &str, needles: &BTreeSet<String>) {
    for reading in readings(text) {
        for n in needles {
            assert!(
                !reading.contains(n.as_str()),
                "{what} holds {n:?} of the secret:\n{}",
                &reading[..reading.len().min(4000)]
            );
        }
    }
}

async fn fetch(url: &str) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

fn run_once(args: &[&str], config: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(args)
        .arg(config)
        .env("SWEEP_KEY", KEY)
        .env("LOOKOUT_LOG", "debug")
        .output()
        .unwrap();
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_output_holds_the_secret_in_any_form() {
    let addr = start_echo().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lookout.toml");
    std::fs::write(&path, config_text(addr)).unwrap();
    let needles = needles();

    let lookout =
        crate::support::Running::start(&path, &[("SWEEP_KEY", KEY), ("LOOKOUT_LOG", "debug")]);
    let listen = lookout.addr.clone();
    let base = format!("http://{listen}");
    let status = eventually(Duration::from_secs(15), async || {
        let text = fetch(&format!("{base}/api/v1/status")).await;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        (v["overall"]["failing"] == FORMS.len() + oauth_forms().count()).then_some(text)
    })
    .await;

    // Each check failed on the echoed key, and its reason shows the marker
    // where the key was: the sweep below is not vacuous.
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    for check in v["checks"].as_array().unwrap() {
        let reason = check["reason"].as_str().unwrap_or_default();
        // (The quote of the cut form ends inside the marker.)
        assert!(reason.contains("[redacted"), "{}: {reason}", check["name"]);
    }

    let mut outputs = vec![
        ("status API", status),
        ("metrics", fetch(&format!("{base}/metrics")).await),
        ("page", fetch(&format!("{base}/")).await),
        ("changes", fetch(&format!("{base}/api/v1/changes")).await),
        ("scores", fetch(&format!("{base}/api/v1/scores")).await),
        (
            "group badge",
            fetch(&format!("{base}/badge/group/sweep")).await,
        ),
    ];
    let oauth_names: Vec<String> = oauth_forms().map(|f| format!("oauth-{f}")).collect();
    for form in FORMS
        .iter()
        .copied()
        .chain(oauth_names.iter().map(String::as_str))
    {
        for (what, route) in [
            ("detail page", format!("/check/{form}")),
            ("detail API", format!("/api/v1/checks/{form}")),
            ("history API", format!("/api/v1/history/{form}")),
            ("badge", format!("/badge/check/{form}")),
        ] {
            outputs.push((what, fetch(&format!("{base}{route}")).await));
        }
    }
    let (exit, _, logs) = lookout.stop().await;
    assert!(exit.success());
    outputs.push(("logs", logs));
    outputs.push(("markdown report", run_once(&["report", "--config"], &path)));
    outputs.push((
        "JSON report",
        run_once(&["report", "--format", "json", "--config"], &path),
    ));
    outputs.push(("check-config", run_once(&["check-config"], &path)));

    for (what, text) in &outputs {
        assert_clean(what, text, &needles);
    }
    let report = &outputs[outputs.len() - 3].1;
    assert!(
        report.contains("redacted sha256:"),
        "the report ran the checks and shows the marker:\n{report}"
    );
}

/// The sweep's own test: each reading finds the key where a renderer put
/// it, so a leak in any of those forms would fail the sweep.
#[test]
fn the_sweep_sees_through_every_rendering() {
    let needles = needles();
    let piece: String = KEY.chars().skip(3).take(8).collect();
    for shown in [
        KEY.to_owned(),
        htmlize::escape_all_quotes(KEY).into_owned(),
        serde_json::to_string(KEY).unwrap(),
        percent_encoding::utf8_percent_encode(KEY, percent_encoding::NON_ALPHANUMERIC).to_string(),
        format!("| {} |", KEY.replace('\\', "\\\\").replace('<', "\\<")),
        format!("cut {piece}"),
    ] {
        let found = readings(&shown)
            .iter()
            .any(|r| needles.iter().any(|n| r.contains(n.as_str())));
        assert!(found, "{shown}");
    }
}
