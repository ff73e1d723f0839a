//! `judge`: one observation and the expectations in, one outcome label and
//! one short, clean, redacted reason out.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use lookout::judge::{
    Expectations, HeaderCheck, HeaderExpect, JsonCheck, JsonExpect, StatusMatcher, StatusPattern,
    judge,
};
use lookout::outcome::FailureKind;
use lookout::probe::Observation;
use lookout::secret::{Redactor, Secret, SecretOrigin};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::json;

const SECRET: &str = "s3cr3t-value";

fn secret() -> Secret {
    Secret::new(SECRET.to_owned(), SecretOrigin::Named("platform".into()))
}

fn redactor() -> Redactor {
    Redactor::new([&secret()], [])
}

/// What the reason must be.
enum Reason {
    /// Success: no reason.
    None,
    Contains(&'static str),
    Exact(&'static str),
}

struct Case {
    name: &'static str,
    expect: Expectations,
    obs: Observation,
    label: &'static str,
    reason: Reason,
}

fn status(patterns: &[&str]) -> Expectations {
    Expectations {
        status: StatusMatcher::new(
            patterns
                .iter()
                .map(|p| StatusPattern::parse(p).expect("a valid pattern"))
                .collect(),
        )
        .expect("at least one pattern"),
        ..Expectations::default()
    }
}

fn resp(code: u16, body: &str) -> Observation {
    Observation {
        status: Some(code),
        body: body.as_bytes().to_vec(),
        duration: Duration::from_millis(20),
        ..Observation::default()
    }
}

fn with_headers(mut obs: Observation, headers: &[(&'static str, &str)]) -> Observation {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(
            HeaderName::from_static(k),
            HeaderValue::from_str(v).expect("a header value"),
        );
    }
    obs.headers = map;
    obs
}

fn took(mut obs: Observation, ms: f64) -> Observation {
    obs.duration = Duration::from_secs_f64(ms / 1000.0);
    obs
}

fn json_expect(pointer: &str, check: JsonCheck) -> Expectations {
    Expectations {
        json: vec![JsonExpect {
            pointer: pointer.to_owned(),
            check,
        }],
        ..Expectations::default()
    }
}

fn header_expect(name: &'static str, check: HeaderCheck) -> Expectations {
    Expectations {
        headers: vec![HeaderExpect {
            name: HeaderName::from_static(name),
            check,
        }],
        ..Expectations::default()
    }
}

fn slow_budget(mut e: Expectations, ms: u64) -> Expectations {
    e.max_latency = Some(Duration::from_millis(ms));
    e
}

fn body_expect(contains: &[&str], not_contains: &[&str], regex: Option<&str>) -> Expectations {
    Expectations {
        body_contains: contains.iter().map(|s| s.to_string()).collect(),
        body_not_contains: not_contains.iter().map(|s| s.to_string()).collect(),
        body_regex: regex.map(|r| regex::Regex::new(r).expect("a valid regex")),
        ..Expectations::default()
    }
}

const LONG_DETAIL_LEN: usize = 300;

fn cases() -> Vec<Case> {
    use Reason::{Contains, Exact};
    let long_detail = "x".repeat(LONG_DETAIL_LEN);
    vec![
        // --- status ---
        Case {
            name: "code matches",
            expect: status(&["200"]),
            obs: resp(200, "ok"),
            label: "success",
            reason: Reason::None,
        },
        Case {
            name: "code mismatch, empty body",
            expect: status(&["200"]),
            obs: resp(500, ""),
            label: "status",
            reason: Exact("status 500, expected 200"),
        },
        Case {
            name: "default expects 2xx",
            expect: Expectations::default(),
            obs: resp(301, ""),
            label: "status",
            reason: Exact("status 301, expected 2xx"),
        },
        Case {
            name: "default passes 204",
            expect: Expectations::default(),
            obs: resp(204, ""),
            label: "success",
            reason: Reason::None,
        },
        Case {
            name: "class 2xx passes 299",
            expect: status(&["2xx"]),
            obs: resp(299, ""),
            label: "success",
            reason: Reason::None,
        },
        Case {
            name: "class 2xx fails 300",
            expect: status(&["2XX"]),
            obs: resp(300, ""),
            label: "status",
            reason: Exact("status 300, expected 2xx"),
        },
        Case {
            name: "range passes its upper end",
            expect: status(&["200-204"]),
            obs: resp(204, ""),
            label: "success",
            reason: Reason::None,
        },
        Case {
            name: "range fails just above",
            expect: status(&["200-204"]),
            obs: resp(205, ""),
            label: "status",
            reason: Exact("status 205, expected 200-204"),
        },
        Case {
            name: "several positives are listed with or",
            expect: status(&["200", "3xx"]),
            obs: resp(404, ""),
            label: "status",
            reason: Exact("status 404, expected 200 or 3xx"),
        },
        Case {
            name: "negation !404 passes 401",
            expect: status(&["!404"]),
            obs: resp(401, ""),
            label: "success",
            reason: Reason::None,
        },
        Case {
            name: "negation !404 passes 500 (only 404 is excluded)",
            expect: status(&["not 404"]),
            obs: resp(500, ""),
            label: "success",
            reason: Reason::None,
        },
        Case {
            name: "negation !404 fails 404",
            expect: status(&["!404"]),
            obs: resp(404, "Not Found"),
            label: "status",
            reason: Exact("status 404, expected not 404: \"Not Found\""),
        },
        Case {
            name: "mixed 2xx and !204 passes 200",
            expect: status(&["2xx", "!204"]),
            obs: resp(200, ""),
            label: "success",
            reason: Reason::None,
        },
        Case {
            name: "mixed 2xx and !204 fails 204",
            expect: status(&["2xx", "!204"]),
            obs: resp(204, ""),
            label: "status",
            reason: Exact("status 204, expected 2xx, not 204"),
        },
        Case {
            name: "mixed 2xx and !204 fails 500",
            expect: status(&["2xx", "!204"]),
            obs: resp(500, ""),
            label: "status",
            reason: Exact("status 500, expected 2xx, not 204"),
        },
        // --- the detail quoted from an error response ---
        Case {
            name: "detail from JSON detail",
            expect: status(&["200"]),
            obs: resp(
                401,
                r#"{"detail": "API key does not have access to service 'ml-platform'"}"#,
            ),
            label: "status",
            reason: Exact(
                "status 401, expected 200: \"API key does not have access to service 'ml-platform'\"",
            ),
        },
        Case {
            name: "detail from JSON message",
            expect: status(&["200"]),
            obs: resp(403, r#"{"code": 403, "message": "Forbidden"}"#),
            label: "status",
            reason: Exact("status 403, expected 200: \"Forbidden\""),
        },
        Case {
            name: "detail from JSON error string",
            expect: status(&["200"]),
            obs: resp(401, r#"{"error": "invalid_token"}"#),
            label: "status",
            reason: Exact("status 401, expected 200: \"invalid_token\""),
        },
        Case {
            name: "error_description wins over error (OAuth)",
            expect: status(&["200"]),
            obs: resp(
                400,
                r#"{"error": "invalid_grant", "error_description": "Token expired"}"#,
            ),
            label: "status",
            reason: Exact("status 400, expected 200: \"Token expired\""),
        },
        Case {
            name: "detail from nested error.message",
            expect: status(&["200"]),
            obs: resp(
                429,
                r#"{"error": {"code": 429, "message": "quota exceeded for project p1"}}"#,
            ),
            label: "status",
            reason: Exact("status 429, expected 200: \"quota exceeded for project p1\""),
        },
        Case {
            name: "detail from FastAPI validation list",
            expect: status(&["200"]),
            obs: resp(
                422,
                r#"{"detail": [{"loc": ["body", "service_id"], "msg": "field required", "type": "value_error.missing"}]}"#,
            ),
            label: "status",
            reason: Exact("status 422, expected 200: \"field required\""),
        },
        Case {
            name: "detail from HTML title",
            expect: status(&["2xx"]),
            obs: resp(
                502,
                "<!DOCTYPE html>\n<html><head><TITLE> 502 Bad Gateway </TITLE></head>\n<body><h1>502</h1></body></html>",
            ),
            label: "status",
            reason: Exact("status 502, expected 2xx: \"502 Bad Gateway\""),
        },
        Case {
            name: "detail from the first non-empty line of text",
            expect: status(&["2xx"]),
            obs: resp(
                503,
                "\n  \n  upstream connect error or disconnect/reset before headers\nreset reason: overflow\n",
            ),
            label: "status",
            reason: Exact(
                "status 503, expected 2xx: \"upstream connect error or disconnect/reset before headers\"",
            ),
        },
        Case {
            name: "JSON without a known field falls back to the text",
            expect: status(&["200"]),
            obs: resp(500, r#"{"status": "fail"}"#),
            label: "status",
            reason: Exact(r#"status 500, expected 200: "{"status": "fail"}""#),
        },
        Case {
            name: "long details are truncated with an ellipsis",
            expect: status(&["200"]),
            obs: resp(500, &format!(r#"{{"detail": "{long_detail}"}}"#)),
            label: "status",
            // Checked in full below; here: the quote ends with "…".
            reason: Contains("xxxxxxxxxx…\""),
        },
        Case {
            name: "control characters and newlines are folded",
            expect: status(&["200"]),
            obs: resp(
                400,
                r#"{"message": "bad\r\n\tinput\u0007 \u001b[31mhere\n\n"}"#,
            ),
            label: "status",
            reason: Exact("status 400, expected 200: \"bad input [31mhere\""),
        },
        Case {
            name: "a secret echoed in the body is redacted",
            expect: status(&["200"]),
            obs: resp(
                401,
                r#"{"detail": "invalid API key s3cr3t-value for service 'ml-platform'"}"#,
            ),
            label: "status",
            reason: Contains("status 401, expected 200: \"invalid API key [redacted sha256:"),
        },
        Case {
            name: "a percent-encoded secret echoed in the body is redacted",
            expect: status(&["200"]),
            obs: resp(400, "bad request: /v1?key=s3cr3t%2Dvalue"),
            label: "status",
            reason: Contains("bad request: /v1?key=[redacted sha256:"),
        },
        // --- latency ---
        Case {
            name: "over the latency budget is slow",
            expect: slow_budget(Expectations::default(), 500),
            obs: took(resp(200, "ok"), 1234.0),
            label: "slow",
            reason: Exact("took 1234ms, budget 500ms"),
        },
        Case {
            name: "sub-10ms durations keep a decimal",
            expect: slow_budget(Expectations::default(), 5),
            obs: took(resp(200, "ok"), 7.5),
            label: "slow",
            reason: Exact("took 7.5ms, budget 5.0ms"),
        },
        Case {
            name: "exactly the budget is not slow",
            expect: slow_budget(Expectations::default(), 500),
            obs: took(resp(200, "ok"), 500.0),
            label: "success",
            reason: Reason::None,
        },
        // --- body ---
        Case {
            name: "body_contains passes",
            expect: body_expect(&["ok", "ready"], &[], None),
            obs: resp(200, "status: ok, ready"),
            label: "success",
            reason: Reason::None,
        },
        Case {
            name: "body_contains fails",
            expect: body_expect(&["ok", "ready"], &[], None),
            obs: resp(200, "status: ok"),
            label: "body",
            reason: Exact("body does not contain \"ready\""),
        },
        Case {
            name: "body_not_contains fails",
            expect: body_expect(&[], &["error"], None),
            obs: resp(200, "partial error in shard 3"),
            label: "body",
            reason: Exact("body contains \"error\""),
        },
        Case {
            name: "body_not_contains passes",
            expect: body_expect(&[], &["error"], None),
            obs: resp(200, "all good"),
            label: "success",
            reason: Reason::None,
        },
        Case {
            name: "body_regex passes",
            expect: body_expect(&[], &[], Some(r#""version":\s*"\d+\.\d+""#)),
            obs: resp(200, r#"{"version": "1.42"}"#),
            label: "success",
            reason: Reason::None,
        },
        Case {
            name: "body_regex fails and quotes the body",
            expect: body_expect(&[], &[], Some(r#""version":\s*"\d+\.\d+""#)),
            obs: resp(200, "{\"version\":\n \"dev\"}"),
            label: "body",
            reason: Exact(r#"body does not match /"version":\s*"\d+\.\d+"/: "{"version": "dev"}""#),
        },
        // --- JSON ---
        Case {
            name: "json equals string passes",
            expect: json_expect("/status", JsonCheck::Equals(json!("ok"))),
            obs: resp(200, r#"{"status": "ok"}"#),
            label: "success",
            reason: Reason::None,
        },
        Case {
            name: "json equals string fails",
            expect: json_expect("/status", JsonCheck::Equals(json!("ok"))),
            obs: resp(200, r#"{"status": "down"}"#),
            label: "json",
            reason: Exact(r#"/status is "down", expected "ok""#),
        },
        Case {
            name: "json equals 1 matches 1.0",
            expect: json_expect("/replicas", JsonCheck::Equals(json!(1))),
            obs: resp(200, r#"{"replicas": 1.0}"#),
            label: "success",
            reason: Reason::None,
        },
        Case {
            name: "json equals number fails",
            expect: json_expect("/replicas", JsonCheck::Equals(json!(3))),
            obs: resp(200, r#"{"replicas": 2}"#),
            label: "json",
            reason: Exact("/replicas is 2, expected 3"),
        },
        Case {
            name: "json equals number does not match the string",
            expect: json_expect("/replicas", JsonCheck::Equals(json!(1))),
            obs: resp(200, r#"{"replicas": "1"}"#),
            label: "json",
            reason: Exact(r#"/replicas is "1", expected 1"#),
        },
        Case {
            name: "json equals bool fails",
            expect: json_expect("/ready", JsonCheck::Equals(json!(true))),
            obs: resp(200, r#"{"ready": false}"#),
            label: "json",
            reason: Exact("/ready is false, expected true"),
        },
        Case {
            name: "json equals nested pointer passes",
            expect: json_expect("/items/1/id", JsonCheck::Equals(json!("b"))),
            obs: resp(200, r#"{"items": [{"id": "a"}, {"id": "b"}]}"#),
            label: "success",
            reason: Reason::None,
        },
        Case {
            name: "json equals on a missing pointer",
            expect: json_expect("/status", JsonCheck::Equals(json!("ok"))),
            obs: resp(200, r#"{"state": "ok"}"#),
            label: "json",
            reason: Exact(r#"/status missing, expected "ok""#),
        },
        Case {
            name: "json exists true passes",
            expect: json_expect("/overall/total", JsonCheck::Exists(true)),
            obs: resp(200, r#"{"overall": {"total": 0}}"#),
            label: "success",
            reason: Reason::None,
        },
        Case {
            name: "json exists true on a missing pointer",
            expect: json_expect("/overall/total", JsonCheck::Exists(true)),
            obs: resp(200, r#"{"overall": {}}"#),
            label: "json",
            reason: Exact("/overall/total missing"),
        },
        Case {
            name: "json exists false passes",
            expect: json_expect("/error", JsonCheck::Exists(false)),
            obs: resp(200, r#"{"ok": true}"#),
            label: "success",
            reason: Reason::None,
        },
        Case {
            name: "json expectation on a body that is not JSON",
            expect: json_expect("/status", JsonCheck::Exists(true)),
            obs: resp(200, "<html>maintenance</html>"),
            label: "json",
            reason: Contains("body is not JSON ("),
        },
        Case {
            name: "not-JSON reason quotes the body, an HTML page as its text",
            expect: json_expect("/status", JsonCheck::Exists(true)),
            obs: resp(200, "<html>maintenance</html>"),
            label: "json",
            reason: Contains("): \"maintenance\""),
        },
        Case {
            name: "not-JSON reason quotes a plain body as it is",
            expect: json_expect("/status", JsonCheck::Exists(true)),
            obs: resp(200, "down for maintenance"),
            label: "json",
            reason: Contains("): \"down for maintenance\""),
        },
        // --- headers ---
        Case {
            name: "header equals passes",
            expect: header_expect(
                "content-type",
                HeaderCheck::Equals("application/json".into()),
            ),
            obs: with_headers(resp(200, "{}"), &[("content-type", "application/json")]),
            label: "success",
            reason: Reason::None,
        },
        Case {
            name: "header equals fails",
            expect: header_expect(
                "content-type",
                HeaderCheck::Equals("application/json".into()),
            ),
            obs: with_headers(resp(200, "{}"), &[("content-type", "text/html")]),
            label: "header",
            reason: Exact(r#"header content-type is "text/html", expected "application/json""#),
        },
        Case {
            name: "header equals on a missing header",
            expect: header_expect(
                "content-type",
                HeaderCheck::Equals("application/json".into()),
            ),
            obs: resp(200, "{}"),
            label: "header",
            reason: Exact(r#"header content-type missing, expected "application/json""#),
        },
        Case {
            name: "header contains passes",
            expect: header_expect("content-type", HeaderCheck::Contains("json".into())),
            obs: with_headers(
                resp(200, "{}"),
                &[("content-type", "application/json; charset=utf-8")],
            ),
            label: "success",
            reason: Reason::None,
        },
        Case {
            name: "header contains fails",
            expect: header_expect("content-type", HeaderCheck::Contains("json".into())),
            obs: with_headers(resp(200, "{}"), &[("content-type", "text/plain")]),
            label: "header",
            reason: Exact(r#"header content-type is "text/plain", expected it to contain "json""#),
        },
        Case {
            name: "header contains on a missing header",
            expect: header_expect("content-type", HeaderCheck::Contains("json".into())),
            obs: resp(200, "{}"),
            label: "header",
            reason: Exact(r#"header content-type missing, expected "json""#),
        },
        Case {
            name: "header exists true passes",
            expect: header_expect("x-request-id", HeaderCheck::Exists(true)),
            obs: with_headers(resp(200, ""), &[("x-request-id", "abc")]),
            label: "success",
            reason: Reason::None,
        },
        Case {
            name: "header exists true fails",
            expect: header_expect("x-request-id", HeaderCheck::Exists(true)),
            obs: resp(200, ""),
            label: "header",
            reason: Exact("header x-request-id missing"),
        },
        Case {
            name: "header exists false passes",
            expect: header_expect("server", HeaderCheck::Exists(false)),
            obs: resp(200, ""),
            label: "success",
            reason: Reason::None,
        },
        Case {
            name: "header exists false fails",
            expect: header_expect("server", HeaderCheck::Exists(false)),
            obs: with_headers(resp(200, ""), &[("server", "nginx/1.25")]),
            label: "header",
            reason: Exact(r#"header server is present ("nginx/1.25"), expected absent"#),
        },
        Case {
            name: "a secret echoed in a header is redacted",
            expect: header_expect("x-echo", HeaderCheck::Equals("nothing".into())),
            obs: with_headers(resp(200, ""), &[("x-echo", "key=s3cr3t-value")]),
            label: "header",
            reason: Contains(r#"header x-echo is "key=[redacted sha256:"#),
        },
        // --- transport errors ---
        Case {
            name: "a transport error passes through with its kind",
            expect: Expectations::default(),
            obs: Observation::failed(FailureKind::Dns, "dns: no such host api.invalid"),
            label: "dns",
            reason: Exact("dns: no such host api.invalid"),
        },
        Case {
            name: "a timeout passes through",
            expect: slow_budget(status(&["200"]), 100),
            obs: Observation::failed(FailureKind::Timeout, "no response within 10s"),
            label: "timeout",
            reason: Exact("no response within 10s"),
        },
        Case {
            name: "a transport error wins over a status",
            expect: status(&["200"]),
            obs: Observation {
                error: Some((FailureKind::BodyTooLarge, "body over 1048576 bytes".into())),
                ..resp(200, "")
            },
            label: "body_too_large",
            reason: Exact("body over 1048576 bytes"),
        },
        Case {
            name: "no status and no error is internal",
            expect: Expectations::default(),
            obs: Observation::default(),
            label: "internal",
            reason: Contains("no response and no error recorded"),
        },
        // --- which failure wins ---
        Case {
            name: "status failure wins over body failure",
            expect: Expectations {
                body_contains: vec!["ok".into()],
                ..status(&["200"])
            },
            obs: resp(503, "unavailable"),
            label: "status",
            reason: Exact("status 503, expected 200: \"unavailable\""),
        },
        Case {
            name: "status failure wins over slow",
            expect: slow_budget(status(&["200"]), 100),
            obs: took(resp(500, ""), 900.0),
            label: "status",
            reason: Exact("status 500, expected 200"),
        },
        Case {
            name: "header failure wins over json failure",
            expect: Expectations {
                json: vec![JsonExpect {
                    pointer: "/ok".into(),
                    check: JsonCheck::Equals(json!(true)),
                }],
                ..header_expect("x-version", HeaderCheck::Exists(true))
            },
            obs: resp(200, r#"{"ok": false}"#),
            label: "header",
            reason: Exact("header x-version missing"),
        },
        Case {
            name: "json failure wins over body failure",
            expect: Expectations {
                body_contains: vec!["healthy".into()],
                ..json_expect("/ok", JsonCheck::Equals(json!(true)))
            },
            obs: resp(200, r#"{"ok": false}"#),
            label: "json",
            reason: Exact("/ok is false, expected true"),
        },
        Case {
            name: "body failure wins over slow",
            expect: slow_budget(body_expect(&["healthy"], &[], None), 100),
            obs: took(resp(200, "degraded"), 900.0),
            label: "body",
            reason: Exact("body does not contain \"healthy\""),
        },
        Case {
            name: "everything passes but slow",
            expect: slow_budget(
                Expectations {
                    body_contains: vec!["ok".into()],
                    ..json_expect("/ok", JsonCheck::Exists(true))
                },
                100,
            ),
            obs: took(resp(200, r#"{"ok": "ok"}"#), 250.0),
            label: "slow",
            reason: Exact("took 250ms, budget 100ms"),
        },
    ]
}

/// Cases that document the correct behaviour where src/ is wrong today; they
/// pass once the bugs are fixed.
fn regression_cases() -> Vec<Case> {
    use Reason::Exact;
    vec![
        Case {
            // Same bug: the number is shown as if it were a string.
            name: "json exists false on a present number shows a number",
            expect: json_expect("/error", JsonCheck::Exists(false)),
            obs: resp(200, r#"{"error": 7}"#),
            label: "json",
            reason: Exact("/error is 7, expected absent"),
        },
        Case {
            // Regression (was a bug in src/judge.rs): `exists = false` quoted
            // the JSON value again, so strings got doubled quotes (`""boom""`)
            // and numbers looked like strings (`"7"`).
            name: "json exists false on a present string quotes it once",
            expect: json_expect("/error", JsonCheck::Exists(false)),
            obs: resp(200, r#"{"error": "boom"}"#),
            label: "json",
            reason: Exact(r#"/error is "boom", expected absent"#),
        },
    ]
}

#[test]
fn judge_table() {
    run_cases(&cases());
}

/// See `regression_cases`: `JsonCheck::Exists(false)` re-quotes JSON values
/// (src/judge.rs:310).
#[test]
fn regression_cases_judge() {
    run_cases(&regression_cases());
}

fn run_cases(cases: &[Case]) {
    let redactor = redactor();
    let mut failures = Vec::new();
    for case in cases {
        let outcome = match catch_unwind(AssertUnwindSafe(|| {
            judge(&case.expect, &case.obs, &redactor)
        })) {
            Ok(o) => o,
            Err(_) => {
                failures.push(format!("{}: panicked", case.name));
                continue;
            }
        };
        let reason = outcome.reason();
        let reason_ok = match (&case.reason, reason) {
            (Reason::None, None) => true,
            (Reason::Contains(want), Some(got)) => got.contains(want),
            (Reason::Exact(want), Some(got)) => got == *want,
            _ => false,
        };
        if outcome.label() != case.label || !reason_ok {
            let want = match case.reason {
                Reason::None => "no reason".to_owned(),
                Reason::Contains(s) => format!("reason containing {s:?}"),
                Reason::Exact(s) => format!("reason {s:?}"),
            };
            failures.push(format!(
                "{}:\n    expected {} with {want}\n    got      {} with {reason:?}",
                case.name,
                case.label,
                outcome.label()
            ));
        }
        if let Some(r) = reason {
            if r.contains(SECRET) || r.contains("s3cr3t%2Dvalue") {
                failures.push(format!("{}: the reason leaks the secret: {r}", case.name));
            }
            if r.chars().any(char::is_control) {
                failures.push(format!("{}: control characters in {r:?}", case.name));
            }
        }
    }
    crate::support::assert_table_passed(&failures, cases.len());
}

#[test]
fn long_details_keep_160_characters_then_an_ellipsis() {
    let detail = "x".repeat(LONG_DETAIL_LEN);
    let outcome = judge(
        &status(&["200"]),
        &resp(500, &format!(r#"{{"detail": "{detail}"}}"#)),
        &redactor(),
    );
    assert_eq!(
        outcome.reason(),
        Some(format!("status 500, expected 200: \"{}…\"", "x".repeat(160)).as_str())
    );
}

#[test]
fn redacted_reasons_name_the_fingerprint() {
    let outcome = judge(
        &status(&["200"]),
        &resp(401, &format!(r#"{{"detail": "bad key {SECRET}"}}"#)),
        &redactor(),
    );
    assert_eq!(
        outcome.reason(),
        Some(
            format!(
                "status 401, expected 200: \"bad key [redacted {}]\"",
                secret().fingerprint()
            )
            .as_str()
        )
    );
}

struct Valid {
    input: &'static str,
    /// How the pattern is shown in a reason.
    shown: &'static str,
    matches: &'static [u16],
    rejects: &'static [u16],
}

const VALID: &[Valid] = &[
    Valid {
        input: "200",
        shown: "200",
        matches: &[200],
        rejects: &[199, 201, 404],
    },
    Valid {
        input: " 404 ",
        shown: "404",
        matches: &[404],
        rejects: &[400, 405],
    },
    Valid {
        input: "100",
        shown: "100",
        matches: &[100],
        rejects: &[101],
    },
    Valid {
        input: "599",
        shown: "599",
        matches: &[599],
        rejects: &[598],
    },
    Valid {
        input: "2xx",
        shown: "2xx",
        matches: &[200, 250, 299],
        rejects: &[199, 300],
    },
    Valid {
        input: "5XX",
        shown: "5xx",
        matches: &[500, 503, 599],
        rejects: &[499],
    },
    Valid {
        input: "1xx",
        shown: "1xx",
        matches: &[100, 199],
        rejects: &[200],
    },
    Valid {
        input: "200-204",
        shown: "200-204",
        matches: &[200, 202, 204],
        rejects: &[199, 205],
    },
    Valid {
        input: "200 - 299",
        shown: "2xx",
        matches: &[200, 299],
        rejects: &[300],
    },
    Valid {
        input: "301-301",
        shown: "301",
        matches: &[301],
        rejects: &[302],
    },
    Valid {
        input: "!404",
        shown: "not 404",
        matches: &[200, 401, 500],
        rejects: &[404],
    },
    Valid {
        input: "! 404",
        shown: "not 404",
        matches: &[403],
        rejects: &[404],
    },
    Valid {
        input: "not 5xx",
        shown: "not 5xx",
        matches: &[200, 404],
        rejects: &[500, 599],
    },
    Valid {
        input: "!300-399",
        shown: "not 3xx",
        matches: &[200, 400],
        rejects: &[300, 302, 399],
    },
];

const INVALID: &[&str] = &[
    "", " ", "!", "not ", "6xx", "0xx", "xx", "2x", "2xxx", "99", "600", "0", "-1", "abc",
    "300-200", "200-", "-200", "200-600", "2xx-3xx", "200,201", "!!404", "20 0", "2€",
];

/// Regression (was a bug in src/judge.rs:53): `body[1..]` on a 3-byte input slices inside a
/// multi-byte character and panics instead of returning Err.
const NON_ASCII_INVALID: &[&str] = &["€", "é1", "!€"];

#[test]
fn status_pattern_parse_accepts() {
    for case in VALID {
        let pattern = StatusPattern::parse(case.input)
            .unwrap_or_else(|e| panic!("{:?} should parse: {e}", case.input));
        let matcher = StatusMatcher::new(vec![pattern]).expect("one pattern");
        assert_eq!(matcher.to_string(), case.shown, "{:?}", case.input);
        for &code in case.matches {
            assert!(
                matcher.matches(code),
                "{:?} should match {code}",
                case.input
            );
        }
        for &code in case.rejects {
            assert!(
                !matcher.matches(code),
                "{:?} should reject {code}",
                case.input
            );
        }
    }
}

#[test]
fn status_pattern_parse_rejects() {
    check_rejected(INVALID);
}

#[test]
fn regression_status_pattern_parse_rejects_non_ascii_without_panicking() {
    check_rejected(NON_ASCII_INVALID);
}

fn check_rejected(inputs: &[&str]) {
    let mut failures = Vec::new();
    for &input in inputs {
        match catch_unwind(|| StatusPattern::parse(input)) {
            Ok(Err(message)) => {
                if !message.starts_with(&format!("invalid status pattern {input:?}: use a code")) {
                    failures.push(format!("{input:?}: unexpected message {message:?}"));
                }
            }
            Ok(Ok(p)) => failures.push(format!("{input:?}: accepted as {p:?}")),
            Err(_) => failures.push(format!("{input:?}: panicked instead of returning Err")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} invalid patterns misbehaved:\n{}",
        failures.len(),
        inputs.len(),
        failures.join("\n")
    );
}

#[test]
fn status_matcher_needs_a_pattern() {
    assert_eq!(
        StatusMatcher::new(Vec::new()),
        Err("expect.status must list at least one pattern".to_owned())
    );
}
