//! The history as the API, the pages and the badges show it.

use std::time::Duration;

use lookout::daemon::Daemon;
use serde_json::Value;

use crate::support::{config, eventually, start_target};

async fn get(url: &str) -> (u16, String, String) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, ctype, r.text().await.unwrap())
}

async fn json(url: &str) -> Value {
    let (status, _, body) = get(url).await;
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_pages_and_badges_show_the_history() {
    let target = start_target().await;
    let cfg = config(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
[defaults]
interval = "100ms"
group = "g"
[[checks]]
name = "up"
url = "{ok}"
[[checks]]
name = "route[path=/a b]"
url = "{ok}"
[[checks]]
name = "down <script>x</script>"
url = "{bad}"
"#,
        ok = target.url("/echo"),
        bad = target.url("/status/503?detail=%3Cscript%3Ealert(1)%3C/script%3E"),
    ));
    let daemon = Daemon::start(cfg).await.unwrap();
    let base = format!("http://{}", daemon.addr);

    // Until every check has a few runs in the history.
    let b = base.clone();
    eventually(Duration::from_secs(10), async || {
        let v: Value =
            serde_json::from_str(&get(&format!("{b}/api/v1/history/up?limit=3")).await.2).ok()?;
        (v.as_array()?.len() == 3).then_some(())
    })
    .await;
    // The page's uptime is cached for 30 s; this is its first read.
    let status = json(&format!("{base}/api/v1/status")).await;
    let check = |name: &str| {
        status["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(check("up")["uptime_24h"], 1.0);
    assert_eq!(check("up")["uptime_7d"], 1.0);
    assert_eq!(check("down <script>x</script>")["uptime_24h"], 0.0);
    assert!(check("up")["recent"].as_array().unwrap().len() >= 3);
    let trend = status["overall"]["trend_24h"].as_array().unwrap();
    assert!(!trend.is_empty(), "score changes are in the trend");
    assert!(
        (status["overall"]["score"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9,
        "{status}"
    );
    let changes = status["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 3, "one first result per check");
    assert!(changes.iter().all(|c| c["from"] == "pending"));

    // A name with a slash and a space: the link encodes it, the route takes it.
    let link = check("route[path=/a b]")["link"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(link, "/check/route%5Bpath%3D%2Fa%20b%5D");
    let detail = json(&format!("{base}/api/v1/checks/route%5Bpath%3D%2Fa%20b%5D")).await;
    assert_eq!(detail["kind"], "check");
    assert_eq!(detail["check"]["name"], "route[path=/a b]");
    assert_eq!(detail["uptime"]["last_24h"]["uptime"], 1.0);
    assert!(
        detail["uptime"]["last_24h"]["latency_p50_seconds"]
            .as_f64()
            .is_some()
    );
    assert!(!detail["results"].as_array().unwrap().is_empty());
    assert_eq!(detail["changes"][0]["to"], "passing");
    let (code, _, _) = get(&format!("{base}/api/v1/checks/nope")).await;
    assert_eq!(code, 404);

    let one = json(&format!("{base}/api/v1/changes?limit=1")).await;
    assert_eq!(one.as_array().unwrap().len(), 1);
    let scores = json(&format!("{base}/api/v1/scores?scope=group:g&window=1h")).await;
    assert_eq!(scores["scope"], "group:g");
    assert!(!scores["points"].as_array().unwrap().is_empty());
    let overall = json(&format!("{base}/api/v1/scores")).await;
    assert_eq!(overall["scope"], "overall");
    // A scope that is not kept is an error that says which ones are, not
    // an empty series.
    for bad in ["bogus", "group:nope", "group:", "OVERALL"] {
        let (code, ctype, body) = get(&format!("{base}/api/v1/scores?scope={bad}")).await;
        assert_eq!(
            (code, ctype.as_str()),
            (400, "application/json"),
            "{bad}: {body}"
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v["accepted"],
            serde_json::json!(["overall", "group:g"]),
            "{body}"
        );
        let error = v["error"].as_str().unwrap();
        assert!(
            error.contains(&format!("{bad:?}")) && error.contains("overall, group:g"),
            "{error}"
        );
    }
    let (code, _, body) = get(&format!("{base}/api/v1/scores?window=soon")).await;
    assert_eq!(code, 400, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["error"].as_str().unwrap().starts_with("bad window"),
        "{body}"
    );

    // The pages escape what the config and the target wrote.
    let (code, _, page) = get(&format!("{base}{link}")).await;
    assert_eq!(code, 200);
    assert!(page.contains("route[path=/a b]"));
    let (_, _, page) = get(&format!("{base}/check/down%20%3Cscript%3Ex%3C%2Fscript%3E")).await;
    assert!(
        page.contains("down &#60;script&#62;x&#60;/script&#62;"),
        "{page}"
    );
    assert!(
        page.contains("&#60;script&#62;alert(1)"),
        "the target body is text"
    );
    assert!(!page.contains("<script>"), "{page}");
    let (_, _, main) = get(&format!("{base}/")).await;
    assert!(main.contains("Recent changes") && main.contains("first result"));
    assert!(
        main.contains(r#"<svg class="spark""#),
        "sparklines are drawn"
    );
    assert!(!main.contains("<script>"));

    // Badges.
    let (code, ctype, svg) = get(&format!("{base}/badge/check/up")).await;
    assert_eq!(
        (code, ctype.as_str()),
        (200, "image/svg+xml; charset=utf-8")
    );
    assert!(svg.contains(">passing</text>"), "{svg}");
    let (_, _, svg) = get(&format!("{base}/badge/check/up?show=uptime_24h")).await;
    assert!(svg.contains(">100.00%</text>"), "{svg}");
    let (_, _, svg) = get(&format!(
        "{base}/badge/check/down%20%3Cscript%3Ex%3C%2Fscript%3E"
    ))
    .await;
    assert!(
        svg.contains("down &lt;script&gt;") && svg.contains(">failing</text>"),
        "{svg}"
    );
    let (_, _, svg) = get(&format!("{base}/badge/group/g")).await;
    assert!(svg.contains(">66.7%</text>"), "{svg}");
    let (_, _, svg) = get(&format!("{base}/badge/group/g?show=uptime_24h")).await;
    assert!(
        svg.contains(">66.67%</text>"),
        "mean of 100, 100 and 0: {svg}"
    );
    let (_, _, svg) = get(&format!("{base}/badge/group/overall")).await;
    assert!(svg.contains(">66.7%</text>"), "{svg}");
    let (code, _, _) = get(&format!("{base}/badge/check/nope")).await;
    assert_eq!(code, 404);
    let (code, _, _) = get(&format!("{base}/badge/check/up?show=bogus")).await;
    assert_eq!(code, 400);
    daemon.shutdown().await;
}
