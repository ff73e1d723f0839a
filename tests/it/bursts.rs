//! Bursts (`repeat`, `within`): the same request N times in a row, judged
//! as a sequence, against a rate-limited target of our own: 200 for the
//! first requests of a key, then 429 with `Retry-After: 1` and nginx's
//! HTML page.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use lookout::config::ConfigError;
use lookout::daemon::Daemon;
use lookout::outcome::{FailureKind, Outcome, StepRun};
use lookout::run::Runner;
use lookout::schedule::Tick;

use crate::support::{assert_table_passed, config, try_config};

/// nginx's own 429 page (`limit_req_status 429`).
const NGINX_429: &str = "<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n<center><h1>429 Too Many Requests</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

#[derive(Clone, Default)]
struct Limiter {
    /// Requests per key, and the peer port of each.
    seen: Arc<Mutex<HashMap<String, Vec<u16>>>>,
}

struct Limited {
    addr: SocketAddr,
    limiter: Limiter,
}

impl Limited {
    fn url(&self, key: &str, query: &str) -> String {
        format!("http://{}/limited/{key}?{query}", self.addr)
    }

    fn ports(&self, key: &str) -> Vec<u16> {
        self.limiter
            .seen
            .lock()
            .unwrap()
            .get(key)
            .cloned()
            .unwrap_or_default()
    }
}

/// `/limited/{key}?limit=5&delay=ms&hang_at=k`: the first `limit` requests
/// of a key (its window never ends within a test) get 200, the rest 429
/// with `Retry-After: 1`; each waits `delay` first, and request `hang_at`
/// never gets an answer.
async fn start_limited() -> Limited {
    async fn limited(
        State(limiter): State<Limiter>,
        ConnectInfo(peer): ConnectInfo<SocketAddr>,
        Path(key): Path<String>,
        Query(q): Query<HashMap<String, u64>>,
    ) -> Response {
        let n = {
            let mut seen = limiter.seen.lock().unwrap();
            let ports = seen.entry(key).or_default();
            ports.push(peer.port());
            ports.len() as u64
        };
        if q.get("hang_at") == Some(&n) {
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
        if let Some(ms) = q.get("delay") {
            tokio::time::sleep(Duration::from_millis(*ms)).await;
        }
        if n <= q.get("limit").copied().unwrap_or(5) {
            (StatusCode::OK, "ok").into_response()
        } else {
            (
                StatusCode::TOO_MANY_REQUESTS,
                [
                    (header::RETRY_AFTER, "1"),
                    (header::CONTENT_TYPE, "text/html"),
                ],
                NGINX_429,
            )
                .into_response()
        }
    }
    let limiter = Limiter::default();
    let app = Router::new()
        .route("/limited/{key}", get(limited))
        .with_state(limiter.clone());
    let addr = crate::support::serve(app).await;
    Limited { addr, limiter }
}

/// `expected` with `{ANY}` standing for any text (a measured duration).
fn matches(expected: &str, reason: &str) -> bool {
    let pattern = format!("^{}$", regex::escape(expected).replace(r"\{ANY\}", ".+"));
    regex::Regex::new(&pattern).unwrap().is_match(reason)
}

/// (case, query, the check's fields, the outcome: None passes, else the
/// kind and the reason)
type BurstCase = (
    &'static str,
    &'static str,
    String,
    Option<(FailureKind, &'static str)>,
);

const FIVE_THEN_429: &str = "[200, 200, 200, 200, 200, 429]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_judged_as_a_sequence() {
    let target = start_limited().await;
    // (case, query, the check's fields, the outcome: None passes, else
    // the kind and the reason ({ANY}: a measured time))
    let cases: Vec<BurstCase> = vec![
        (
            "sequence passes, Retry-After on the 429",
            "",
            format!("repeat = 6\nexpect = {{ sequence = {FIVE_THEN_429}, retry_after = {{}} }}"),
            None,
        ),
        (
            "sequence with the 429 expected one answer early",
            "",
            "repeat = 6\nexpect = { sequence = [200, 200, 200, 200, 429, 429] }".into(),
            Some((
                FailureKind::Status,
                "answer 5/6 is 200, expected 429 (answers: 200 200 200 200 200 429)",
            )),
        ),
        (
            "sequence of classes, lists and negations",
            "",
            r#"repeat = 6
expect = { sequence = ["2xx", "2xx", [200, 204], 200, "!429", "4xx"] }"#
                .into(),
            None,
        ),
        (
            "any_status passes",
            "",
            "repeat = 6\nexpect = { any_status = 429 }".into(),
            None,
        ),
        (
            "any_status fails when the limit never bites",
            "limit=10",
            "repeat = 6\nexpect = { any_status = 429 }".into(),
            Some((FailureKind::Status, "no answer was 429 (answers: 200 ×6)")),
        ),
        (
            "any_status with status: the other answers are 200",
            "",
            "repeat = 6\nexpect = { any_status = 429, status = [200] }".into(),
            None,
        ),
        (
            "any_status with status: an answer is neither",
            "",
            "repeat = 6\nexpect = { any_status = 429, status = [201] }".into(),
            Some((
                FailureKind::Status,
                "answer 1/6 is 200, expected 201 or any_status 429 (answers: 200 200 200 200 200 429)",
            )),
        ),
        (
            "without sequence every answer must pass expect.status",
            "",
            "repeat = 6".into(),
            Some((
                FailureKind::Status,
                "answer 6/6 is 429, expected 2xx (answers: 200 200 200 200 200 429): \"429 Too Many Requests\"",
            )),
        ),
        (
            "within holds",
            "",
            format!("repeat = 6\nwithin = \"10s\"\nexpect = {{ sequence = {FIVE_THEN_429} }}"),
            None,
        ),
        (
            "within too short for a slow target",
            "limit=10&delay=150",
            "repeat = 6\nwithin = \"300ms\"".into(),
            Some((
                FailureKind::Burst,
                "6 answers took {ANY}s, longer than within 300ms: the rate limit was not tested",
            )),
        ),
        (
            "retry_after is judged on the last answer",
            "",
            format!(
                "repeat = 6\nexpect = {{ sequence = {FIVE_THEN_429}, retry_after = {{ max = \"500ms\" }} }}"
            ),
            Some((
                FailureKind::Header,
                "answer 6/6: Retry-After asks for 1s, expected at most 500ms",
            )),
        ),
        (
            "retry_after missing on the last answer",
            "",
            "repeat = 5\nexpect = { retry_after = {} }".into(),
            Some((
                FailureKind::Header,
                "answer 5/5: no Retry-After header on the 200",
            )),
        ),
        (
            "max_latency applies to each answer",
            "limit=10&delay=150",
            "repeat = 3\nexpect = { max_latency = \"100ms\" }".into(),
            Some((FailureKind::Slow, "answer 1/3 took {ANY}, budget 100ms")),
        ),
        (
            "a transport failure ends the burst and names the answer",
            "hang_at=4",
            "repeat = 6\ntimeout = \"1s\"".into(),
            Some((
                FailureKind::Timeout,
                "answer 4/6: timed out after {ANY} (the timeout of 1s bounds the whole burst)",
            )),
        ),
        (
            "without sequence: every answer 2xx passes",
            "limit=10",
            "repeat = 3".into(),
            None,
        ),
        (
            "many answers are shown in runs",
            "limit=11",
            "repeat = 20\nexpect = { status = [200] }".into(),
            Some((
                FailureKind::Status,
                "answer 12/20 is 429, expected 200 (answers: 200 ×11, 429 ×9): \"429 Too Many Requests\"",
            )),
        ),
        (
            "the timeout bounds the whole burst, not each answer",
            "limit=10&delay=400",
            "repeat = 6\ntimeout = \"1s\"".into(),
            Some((
                FailureKind::Timeout,
                "answer {ANY}/6: timed out after {ANY} (the timeout of 1s bounds the whole burst)",
            )),
        ),
    ];
    let mut toml = String::new();
    for (i, (_, query, fields, _)) in cases.iter().enumerate() {
        toml.push_str(&format!(
            "[[checks]]\nname = \"c{i}\"\nurl = \"{}\"\n{fields}\n",
            target.url(&format!("k{i}"), query)
        ));
    }
    let cfg = config(&toml);
    let runner = Runner::new(&cfg).unwrap();
    let mut failures = Vec::new();
    let mut results = Vec::new();
    for (i, (case, _, _, expected)) in cases.iter().enumerate() {
        let result = runner.check(&cfg.checks[i], Tick::now()).await;
        let ok = match (expected, &result.outcome) {
            (None, Outcome::Success) => true,
            (Some((kind, reason)), Outcome::Failure { kind: k, reason: r }) => {
                kind == k && matches(reason, r)
            }
            _ => false,
        };
        if !ok {
            failures.push(format!("{case}: got {:?}", result.outcome));
        }
        if result.burst.len() != cfg.checks[i].burst.unwrap().repeat as usize {
            failures.push(format!("{case}: burst {:?}", result.burst));
        }
        results.push(result);
    }
    assert_table_passed(&failures, cases.len());

    // What the result keeps: every status, the last one as the status.
    let first = runner.check(&cfg.checks[0], Tick::now()).await;
    assert_eq!(
        first.burst,
        vec![Some(429); 6],
        "a second burst, all over the limit"
    );
    let fresh = config(&format!(
        "[[checks]]\nname = \"again\"\nurl = \"{}\"\nrepeat = 6\n\
         expect = {{ sequence = {FIVE_THEN_429} }}\n",
        target.url("fresh", "")
    ));
    let result = Runner::new(&fresh)
        .unwrap()
        .check(&fresh.checks[0], Tick::now())
        .await;
    assert!(result.outcome.is_success(), "{:?}", result.outcome);
    let mut expected = vec![Some(200); 5];
    expected.push(Some(429));
    assert_eq!(result.burst, expected);
    assert_eq!(result.status, Some(429));
    // One after another, each on a connection of its own.
    let mut ports = target.ports("fresh");
    assert_eq!(ports.len(), 6);
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 6, "six fresh connections");

    // The answer that failed and those after it never came.
    assert_eq!(
        results[13].burst,
        [Some(200), Some(200), Some(200), None, None, None]
    );
    assert_eq!(
        target.ports("k13").len(),
        4,
        "nothing sent after the failure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_step_sends_a_burst_and_captures_from_the_last_answer() {
    let target = start_limited().await;
    let cfg = config(&format!(
        r#"[[flows]]
name = "rate limit"
[[flows.steps]]
name = "burst"
url = "{}"
repeat = 6
within = "10s"
expect = {{ sequence = {FIVE_THEN_429}, retry_after = {{}} }}
capture = {{ wait = {{ header = "Retry-After" }} }}
[[flows.steps]]
name = "after"
url = "{}"
repeat = 2
expect = {{ sequence = [200, 200] }}
"#,
        target.url("flow", ""),
        target.url("after", "wait={{ wait }}"),
    ));
    let result = Runner::new(&cfg)
        .unwrap()
        .flow(&cfg.flows[0], Tick::now())
        .await;
    let step = &result.steps[0];
    assert!(step.passed(), "{:?}", step.run);
    let mut expected = vec![Some(200); 5];
    expected.push(Some(429));
    assert_eq!(step.burst, expected);
    assert_eq!(step.status, Some(429));
    assert_eq!(result.captured, [("wait".to_owned(), "1".to_owned())]);
    assert!(result.steps[1].passed(), "{:?}", result.steps[1].run);
    assert_eq!(result.steps[1].burst, [Some(200), Some(200)]);
    assert_eq!(target.ports("flow").len(), 6);

    // A second run: the limit bites at once, and the reason says where.
    let again = Runner::new(&cfg)
        .unwrap()
        .flow(&cfg.flows[0], Tick::now())
        .await;
    match &again.steps[0].run {
        StepRun::Ran(Outcome::Failure { kind, reason }) => {
            assert_eq!(*kind, FailureKind::Status);
            assert_eq!(
                reason,
                "answer 1/6 is 429, expected 200 (answers: 429 429 429 429 429 429): \"429 Too Many Requests\""
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn burst_config_errors_name_the_place_and_the_field() {
    let http = "url = \"http://127.0.0.1:1/\"";
    // (case, the check's (or flow's) TOML, line, column, field, message)
    let cases: Vec<(&str, String, usize, usize, &str, &str)> = vec![
        (
            "repeat 0",
            format!("[[checks]]\nname = \"a\"\n{http}\nrepeat = 0\n"),
            4,
            10,
            "checks[0].repeat",
            "repeat is 1 to 100 (1 sends one request, as without it), not 0",
        ),
        (
            "repeat 101",
            format!("[[checks]]\nname = \"a\"\n{http}\nrepeat = 101\n"),
            4,
            10,
            "checks[0].repeat",
            "repeat is 1 to 100 (1 sends one request, as without it), not 101",
        ),
        (
            "within without repeat",
            format!("[[checks]]\nname = \"a\"\n{http}\nwithin = \"1s\"\n"),
            4,
            10,
            "checks[0].within",
            "within bounds a burst: it needs repeat = 2 or more",
        ),
        (
            "within longer than the timeout",
            format!("[[checks]]\nname = \"a\"\n{http}\nrepeat = 2\ntimeout = \"1s\"\nwithin = \"2s\"\n"),
            6,
            10,
            "checks[0].within",
            "within 2s is longer than the timeout 1s, which ends the burst first",
        ),
        (
            "sequence shorter than repeat",
            format!("[[checks]]\nname = \"a\"\n{http}\nrepeat = 3\nexpect = {{ sequence = [200, 429] }}\n"),
            5,
            10,
            "checks[0].expect.sequence",
            "lists 2 statuses, and repeat is 3: one per answer",
        ),
        (
            "sequence without repeat",
            format!("[[checks]]\nname = \"a\"\n{http}\nexpect = {{ sequence = [200] }}\n"),
            4,
            10,
            "checks[0].expect.sequence",
            "a sequence judges a burst's answers: it needs repeat = 2 or more",
        ),
        (
            "any_status without repeat",
            format!("[[checks]]\nname = \"a\"\n{http}\nrepeat = 1\nexpect = {{ any_status = 429 }}\n"),
            5,
            10,
            "checks[0].expect.any_status",
            "any_status judges a burst's answers: it needs repeat = 2 or more",
        ),
        (
            "sequence with status",
            format!("[[checks]]\nname = \"a\"\n{http}\nrepeat = 2\nexpect = {{ sequence = [200, 429], status = [200] }}\n"),
            5,
            10,
            "checks[0].expect.status",
            "with expect.sequence every answer has its own pattern; drop expect.status (it would be ambiguous)",
        ),
        (
            "sequence with any_status",
            format!("[[checks]]\nname = \"a\"\n{http}\nrepeat = 2\nexpect = {{ sequence = [200, 429], any_status = 429 }}\n"),
            5,
            10,
            "checks[0].expect.any_status",
            "set expect.sequence or expect.any_status, not both",
        ),
        (
            "a bad pattern in a sequence",
            format!("[[checks]]\nname = \"a\"\n{http}\nrepeat = 2\nexpect = {{ sequence = [200, \"2x9\"] }}\n"),
            5,
            23,
            "checks[0].expect.sequence[1]",
            "invalid status pattern \"2x9\"",
        ),
        (
            "sequence in [defaults] expect",
            format!("[defaults]\nexpect = {{ sequence = [200, 429] }}\n[[checks]]\nname = \"a\"\n{http}\nrepeat = 2\n"),
            2,
            10,
            "defaults.expect.sequence",
            "expect.sequence is not a default: it belongs with a check's or step's repeat",
        ),
        (
            "repeat in [defaults]",
            format!("[defaults]\nrepeat = 6\n[[checks]]\nname = \"a\"\n{http}\n"),
            2,
            1,
            "defaults.repeat",
            "unknown field `repeat`",
        ),
        (
            "repeat on a tcp check",
            "[[checks]]\nname = \"a\"\nurl = \"tcp://127.0.0.1:1\"\nrepeat = 6\n".into(),
            3,
            7,
            "checks[0].repeat",
            "repeat applies to http checks; this is a tcp check (its URL's scheme)",
        ),
        (
            "sequence on a dns check",
            "[[checks]]\nname = \"a\"\nurl = \"dns://127.0.0.1:53\"\ndns = { name = \"x.example\" }\nexpect = { any_status = 429 }\n".into(),
            5,
            10,
            "checks[0].expect.any_status",
            "any_status judges a burst's answers: it needs repeat = 2 or more",
        ),
        (
            "a flow step's repeat",
            format!("[[flows]]\nname = \"f\"\n[[flows.steps]]\nname = \"s\"\n{http}\nrepeat = 0\n"),
            6,
            10,
            "flows[0].steps[0].repeat",
            "repeat is 1 to 100 (1 sends one request, as without it), not 0",
        ),
        (
            "a flow step's sequence length",
            format!("[[flows]]\nname = \"f\"\n[[flows.steps]]\nname = \"s\"\n{http}\nrepeat = 2\nexpect = {{ sequence = [429] }}\n"),
            7,
            10,
            "flows[0].steps[0].expect.sequence",
            "lists 1 statuses, and repeat is 2: one per answer",
        ),
    ];
    let mut failures = Vec::new();
    for (case, toml, line, column, field, message) in &cases {
        match try_config(toml) {
            Err(ConfigError::Invalid {
                location,
                field: f,
                message: m,
            }) => {
                if (location.line, location.column) != (*line, *column)
                    || f != *field
                    || !m.contains(message)
                {
                    failures.push(format!(
                        "{case}: got {}:{}: {f}: {m}",
                        location.line, location.column
                    ));
                }
            }
            other => failures.push(format!("{case}: got {:?}", other.map(|_| "a config"))),
        }
    }
    assert_table_passed(&failures, cases.len());

    // repeat = 1 is one request, no burst; a changed repeat is another check.
    let one = config(&format!("[[checks]]\nname = \"a\"\n{http}\nrepeat = 1\n"));
    assert!(one.checks[0].burst.is_none());
    let six = config(&format!("[[checks]]\nname = \"a\"\n{http}\nrepeat = 6\n"));
    let seven = config(&format!("[[checks]]\nname = \"a\"\n{http}\nrepeat = 7\n"));
    let within = config(&format!(
        "[[checks]]\nname = \"a\"\n{http}\nrepeat = 6\nwithin = \"1s\"\n"
    ));
    let tls = lookout::config::TlsSettings::default();
    assert!(six.checks[0].same_as(&tls, &six.checks[0], &tls));
    assert!(!six.checks[0].same_as(&tls, &seven.checks[0], &tls));
    assert!(!six.checks[0].same_as(&tls, &within.checks[0], &tls));
    assert!(!six.checks[0].same_as(&tls, &one.checks[0], &tls));
}

/// The API's check object and the detail page show the burst's statuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_and_the_detail_page_show_the_burst() {
    let target = start_limited().await;
    let cfg = config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\
         [[checks]]\nname = \"rate limit\"\nurl = \"{}\"\ninterval = \"1h\"\nrepeat = 6\n\
         expect = {{ sequence = {FIVE_THEN_429} }}\n\
         [[checks]]\nname = \"plain\"\nurl = \"{}\"\ninterval = \"1h\"\n\
         [[flows]]\nname = \"limited flow\"\ninterval = \"1h\"\n\
         [[flows.steps]]\nname = \"twice\"\nurl = \"{}\"\nrepeat = 2\n",
        target.url("api", ""),
        target.url("plain", "limit=100"),
        target.url("flow-api", ""),
    ));
    let daemon = Daemon::start(cfg).await.unwrap();
    let (_, status, _) = crate::daemon::once_judged(&daemon).await;
    let base = format!("http://{}", daemon.addr);
    let detail: serde_json::Value = reqwest::get(format!("{base}/api/v1/checks/rate%20limit"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let page = reqwest::get(format!("{base}/check/rate%20limit"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let flow_page = reqwest::get(format!("{base}/check/limited%20flow"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let status_page = reqwest::get(format!("{base}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    daemon.shutdown().await;
    assert!(
        status_page.contains(r#"<div class="muted burst">burst: 200 200 200 200 200 429</div>"#),
        "{status_page}"
    );

    let checks = status["checks"].as_array().unwrap();
    let check = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {status}"))
    };
    let burst = serde_json::json!([200, 200, 200, 200, 200, 429]);
    assert_eq!(check("rate limit")["burst"], burst, "{status}");
    assert_eq!(check("rate limit")["status_code"], 429);
    assert_eq!(check("rate limit")["outcome"], "success");
    assert!(check("plain").get("burst").is_none(), "{status}");
    assert_eq!(detail["check"]["burst"], burst, "{detail}");
    assert!(
        page.contains("burst of 6: <span class=\"burst\">200 200 200 200 200 429</span>"),
        "{page}"
    );
    let step = &status["flows"][0]["steps"][0];
    assert_eq!(step["burst"], serde_json::json!([200, 200]), "{status}");
    assert!(flow_page.contains("(burst: 200 200)"), "{flow_page}");
}
