//! The richer assertions, from TOML to reason: JSON comparisons, regexes,
//! lengths, containment and types, header regexes and absence. Each failing
//! reason shows the value it found, like Gatus' `[STATUS] (404) == 200`.

use std::time::Duration;

use lookout::judge::judge;
use lookout::outcome::Outcome;
use lookout::probe::Observation;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::support::{config, try_config};

const BODY: &str = r#"{"service_id": "ml-platform", "count": 3, "ratio": 0.25,
  "items": ["a", "b"], "meta": {"ok": true}, "none": null}"#;

fn observation(headers: &[(&str, &str)]) -> Observation {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    Observation {
        status: Some(200),
        headers: map,
        body: BODY.as_bytes().to_vec(),
        duration: Duration::from_millis(5),
        ..Observation::default()
    }
}

fn outcome(expect: &str, headers: &[(&str, &str)]) -> Outcome {
    let cfg = config(&format!(
        "[[checks]]\nname = \"c\"\nurl = \"http://127.0.0.1:1/\"\nexpect = {{ {expect} }}\n"
    ));
    judge(&cfg.checks[0].expect, &observation(headers), &cfg.redactor)
}

#[test]
fn json_and_header_assertions_pass_and_fail_with_the_value_found() {
    let h = [
        ("www-authenticate", "Bearer realm=\"api\""),
        ("x-request-id", "r-123"),
    ];
    // (expect, None for a pass or the exact reason)
    let cases: [(&str, Option<&str>); 32] = [
        (
            r#"json = [{ pointer = "/service_id", not_equals = "platform" }]"#,
            None,
        ),
        (
            r#"json = [{ pointer = "/service_id", not_equals = "ml-platform" }]"#,
            Some(r#"/service_id is "ml-platform", expected anything else"#),
        ),
        (r#"json = [{ pointer = "/count", lt = 4 }]"#, None),
        (
            r#"json = [{ pointer = "/count", lt = 3 }]"#,
            Some("/count is 3, expected < 3"),
        ),
        (r#"json = [{ pointer = "/count", le = 3 }]"#, None),
        (
            r#"json = [{ pointer = "/count", gt = 3 }]"#,
            Some("/count is 3, expected > 3"),
        ),
        (r#"json = [{ pointer = "/ratio", ge = 0.25 }]"#, None),
        (
            r#"json = [{ pointer = "/ratio", ge = 0.5 }]"#,
            Some("/ratio is 0.25, expected >= 0.5"),
        ),
        (
            r#"json = [{ pointer = "/service_id", gt = 1 }]"#,
            Some("/service_id is string, not a number, expected > 1"),
        ),
        (
            r#"json = [{ pointer = "/missing", gt = 1 }]"#,
            Some("/missing missing, expected > 1"),
        ),
        (
            r#"json = [{ pointer = "/service_id", matches = "^ml-" }]"#,
            None,
        ),
        (
            r#"json = [{ pointer = "/service_id", matches = "^platform$" }]"#,
            Some(r#"/service_id is "ml-platform", expected to match /^platform$/"#),
        ),
        (
            r#"json = [{ pointer = "/count", matches = "3" }]"#,
            Some("/count is integer, not a string, expected to match /3/"),
        ),
        (r#"json = [{ pointer = "/items", length = 2 }]"#, None),
        (
            r#"json = [{ pointer = "/items", length = 3 }]"#,
            Some("/items has length 2, expected length 3"),
        ),
        (r#"json = [{ pointer = "/service_id", length = 11 }]"#, None),
        (r#"json = [{ pointer = "/meta", length = 1 }]"#, None),
        (
            r#"json = [{ pointer = "/count", length = 1 }]"#,
            Some("/count is integer, which has no length, expected length 1"),
        ),
        (r#"json = [{ pointer = "/items", contains = "b" }]"#, None),
        (
            r#"json = [{ pointer = "/items", contains = "z" }]"#,
            Some(r#"/items is ["a","b"], expected to contain "z""#),
        ),
        (
            r#"json = [{ pointer = "/service_id", contains = "platform" }]"#,
            None,
        ),
        (r#"json = [{ pointer = "/count", type = "integer" }]"#, None),
        (r#"json = [{ pointer = "/count", type = "number" }]"#, None),
        (
            r#"json = [{ pointer = "/ratio", type = "integer" }]"#,
            Some("/ratio is a number, expected an integer"),
        ),
        (r#"json = [{ pointer = "/none", type = "null" }]"#, None),
        (
            r#"json = [{ pointer = "/meta", type = "array" }]"#,
            Some("/meta is an object, expected an array"),
        ),
        (
            r#"json = [{ pointer = "/count", gt = 1 }, { pointer = "/count", lt = 10 }]"#,
            None,
        ),
        (
            r#"headers = [{ name = "www-authenticate", matches = "^Bearer realm=\"api\"$" }]"#,
            None,
        ),
        (
            r#"headers = [{ name = "www-authenticate", matches = "^Basic" }]"#,
            Some(
                r#"header www-authenticate is "Bearer realm="api"", expected it to match /^Basic/"#,
            ),
        ),
        (
            r#"headers = [{ name = "retry-after", matches = "^[0-9]+$" }]"#,
            Some("header retry-after missing, expected /^[0-9]+$/"),
        ),
        (r#"headers = [{ name = "server", exists = false }]"#, None),
        (
            r#"headers = [{ name = "x-request-id", exists = false }]"#,
            Some(r#"header x-request-id is present ("r-123"), expected absent"#),
        ),
    ];
    for (expect, want) in cases {
        let got = outcome(expect, &h);
        match want {
            None => assert_eq!(got, Outcome::Success, "{expect}"),
            Some(reason) => {
                let Outcome::Failure { reason: r, .. } = &got else {
                    panic!("{expect}: passed");
                };
                assert_eq!(r, reason, "{expect}");
                assert!(
                    matches!(got.label(), "json" | "header"),
                    "{expect}: {}",
                    got.label()
                );
            }
        }
    }
}

#[test]
fn each_assertion_takes_exactly_one_test_and_a_known_type() {
    for (expect, words) in [
        (
            r#"json = [{ pointer = "/a", lt = 1, gt = 0 }]"#,
            "set exactly one of equals, not_equals",
        ),
        (
            r#"json = [{ pointer = "/a" }]"#,
            "write two items for a range",
        ),
        (
            r#"json = [{ pointer = "/a", type = "float" }]"#,
            "unknown type \"float\"; use string, number, integer",
        ),
        (
            r#"headers = [{ name = "a", matches = "x", exists = true }]"#,
            "set exactly one of equals, contains, matches or exists",
        ),
        (
            r#"json = [{ pointer = "/a", matches = "(" }]"#,
            "invalid regex",
        ),
    ] {
        let err = try_config(&format!(
            "[[checks]]\nname = \"c\"\nurl = \"http://127.0.0.1:1/\"\nexpect = {{ {expect} }}\n"
        ))
        .expect_err(expect)
        .to_string();
        assert!(err.contains(words), "{expect}: {err}");
    }
}

/// The auth paths' named assertions: the challenge of a 401, the wait of a
/// 429.
#[test]
fn auth_path_assertions_read_the_challenge_and_the_wait() {
    let in_an_hour = (chrono::Utc::now() + chrono::Duration::hours(1))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    // (expect, response headers, None for a pass or how the reason starts)
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (
            r#"www_authenticate = { scheme = "Bearer" }"#,
            vec![(
                "www-authenticate",
                "Bearer realm=\"api\", error=\"invalid_token\"".into(),
            )],
            None,
        ),
        (
            r#"www_authenticate = { scheme = "bearer", realm = "api" }"#,
            vec![("www-authenticate", "Bearer realm=\"api\"".into())],
            None,
        ),
        (
            r#"www_authenticate = { scheme = "Bearer", realm = "api" }"#,
            vec![("www-authenticate", "Bearer error=\"x\", realm=api".into())],
            None,
        ),
        (
            r#"www_authenticate = { scheme = "Bearer", realm = "ml" }"#,
            vec![("www-authenticate", "Bearer realm=\"api\"".into())],
            Some(r#"WWW-Authenticate is "Bearer realm="api"", expected realm "ml""#),
        ),
        (
            r#"www_authenticate = { scheme = "Basic" }"#,
            vec![("www-authenticate", "Bearer".into())],
            Some(r#"WWW-Authenticate is "Bearer", expected a Basic challenge"#),
        ),
        (
            r#"www_authenticate = { scheme = "Bearer" }"#,
            vec![],
            Some("no WWW-Authenticate header, expected a Bearer challenge"),
        ),
        (
            r#"retry_after = {}"#,
            vec![("retry-after", "30".into())],
            None,
        ),
        (
            r#"retry_after = { max = "60s" }"#,
            vec![("retry-after", "30".into())],
            None,
        ),
        (
            r#"retry_after = { max = "10s" }"#,
            vec![("retry-after", "30".into())],
            Some("Retry-After asks for 30s, expected at most 10s"),
        ),
        (
            r#"retry_after = { max = "2h" }"#,
            vec![("retry-after", in_an_hour.clone())],
            None,
        ),
        (
            r#"retry_after = { max = "1m" }"#,
            vec![("retry-after", in_an_hour)],
            Some("Retry-After asks for"),
        ),
        (
            r#"retry_after = {}"#,
            vec![("retry-after", "soon".into())],
            Some(r#"Retry-After is "soon", neither seconds nor an HTTP date"#),
        ),
        (
            r#"retry_after = {}"#,
            vec![],
            Some("no Retry-After header on the 200"),
        ),
    ];
    for (expect, headers, want) in cases {
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let got = outcome(expect, &pairs);
        match want {
            None => assert_eq!(got, Outcome::Success, "{expect} {headers:?}"),
            Some(words) => {
                let Outcome::Failure { kind, reason } = &got else {
                    panic!("{expect}: passed");
                };
                assert_eq!(kind.as_str(), "header", "{expect}");
                assert!(reason.starts_with(words), "{expect}: {reason}");
            }
        }
    }
}
