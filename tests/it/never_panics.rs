//! Property tests: the config parser, the template engine and the
//! expectation language give an answer (a value or an error) for any input,
//! and never panic.
//!
//! The README's test command runs a bounded number of cases (256 per
//! property, or `PROPTEST_CASES`); for a longer search:
//!
//!     PROPTEST_CASES=200000 cargo test --release --test it never_panics

use std::path::Path;

use lookout::judge::{Expectations, StatusMatcher, StatusPattern, error_detail, judge};
use lookout::outcome::Outcome;
use lookout::probe::Observation;
use lookout::secret::Redactor;
use lookout::template::{Templater, Vars};
use proptest::prelude::*;

fn cases() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        // No files written next to the tests: a failure prints its input.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Pieces of real configs, so that mutations reach deep into validation
/// rather than stopping at the TOML syntax.
const PIECES: &[&str] = &[
    "[server]\nlisten = \"127.0.0.1:0\"\n",
    "[defaults]\ninterval = \"30s\"\n",
    "[defaults]\nschedule = \"*/5 * * * *\"\ntimezone = \"Europe/Berlin\"\n",
    "[secrets]\nk = { env = \"K\" }\n",
    "[[checks]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/\"\n",
    "[[checks]]\nname = \"m{{ x }}\"\nurl = \"http://127.0.0.1:1/{{ x }}\"\nmatrix = { x = [\"1\", 2, true] }\n",
    "expect = { status = [\"2xx\", \"!204\", \"300-399\"], max_latency = \"1s\" }\n",
    "expect = { json = [{ pointer = \"/a\", equals = 1 }], headers = [{ name = \"x\", exists = true }] }\n",
    "auth = { scheme = \"api_key\", secret = \"k\" }\n",
    "auth = { scheme = \"basic\", username = \"u\", value = \"p\" }\n",
    "[[flows]]\nname = \"f\"\nvars = { base = \"http://127.0.0.1:1\" }\n",
    "[[flows.steps]]\nname = \"s1\"\nurl = \"{{ base }}/a\"\ncapture = { id = \"/id\" }\n",
    "[[flows.steps]]\nname = \"s2\"\nurl = \"{{ base }}/{{ id }}\"\njson = { a = \"{{ run_id }}\" }\n",
    "[[flows.cleanup]]\nname = \"c\"\nmethod = \"DELETE\"\nurl = \"{{ base }}/{{ id }}\"\n",
    "[store]\npath = \":memory:\"\n",
    "body_regex = \"(a|b\"\n",
    "schedule = \"0 9 1 * MON\"\n",
];

fn load(text: &str) {
    let _ = lookout::config::from_str(text, Path::new("p.toml"), &|name| {
        (name == "K").then(|| "secret-value".to_owned())
    });
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn config_from_any_text(text in ".{0,400}") {
        load(&text);
    }

    #[test]
    fn config_from_shuffled_real_pieces(
        picks in proptest::collection::vec(0..PIECES.len(), 0..12),
        cut in 0usize..2000,
        junk in "[\\[\\]{}=\",\\n a-z0-9.*/!-]{0,12}",
    ) {
        let mut text: String = picks.iter().map(|&i| PIECES[i]).collect();
        // Cut anywhere (on a char boundary) and splice in junk.
        let at = text.char_indices().map(|(i, _)| i).nth(cut % (text.len() + 1)).unwrap_or(text.len());
        text.insert_str(at, &junk);
        load(&text);
    }

    #[test]
    fn templates_from_any_text(source in ".{0,200}", value in ".{0,40}") {
        let t = Templater::default();
        let _ = t.variables(&source);
        let vars: Vars = [("x".to_owned(), value), ("run_id".to_owned(), "abc".to_owned())].into();
        let _ = t.render(&source, &vars);
        let _ = t.render_json(&serde_json::json!({ "a": source, "b": [source] }), &vars);
    }

    #[test]
    fn status_patterns_from_any_text(input in ".{0,20}", code in 0u16..1000) {
        if let Ok(p) = StatusPattern::parse(&input)
            && let Ok(m) = StatusMatcher::new(vec![p])
        {
            let _ = m.matches(code);
            let _ = m.to_string();
        }
    }

    #[test]
    fn judging_any_response(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        status in 100u16..600,
        header in "[ -~]{0,40}",
    ) {
        let mut obs = Observation {
            status: Some(status),
            body: body.clone(),
            ..Observation::default()
        };
        if let Ok(v) = reqwest::header::HeaderValue::from_str(&header) {
            obs.headers.insert("content-type", v);
        }
        let expect: Expectations = lookout::config::from_str(
            "[[checks]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/\"\nexpect = { status = [\"2xx\"], body_contains = [\"ok\"], body_regex = \"o+k\", json = [{ pointer = \"/a/0\", equals = 1 }], headers = [{ name = \"content-type\", contains = \"json\" }] }\n[store]\npath = \":memory:\"\n",
            Path::new("p.toml"),
            &|_| None,
        )
        .expect("a valid config")
        .checks[0]
        .expect
        .clone();
        let outcome = judge(&expect, &obs, &Redactor::default());
        if let Outcome::Failure { reason, .. } = outcome {
            // One short line, whatever the target sent.
            prop_assert!(!reason.contains('\n'));
            prop_assert!(reason.chars().count() < 600, "{}", reason);
        }
        let _ = error_detail(&body);
    }
}
