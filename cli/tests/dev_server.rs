//! `ember dev` as a user runs it: start the binary, send events over HTTP, read the lead back,
//! restart, and find the lead still there. Bad input is rejected per event with a reason.

use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Dev {
    child: Child,
    base: String,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start(data: &Path, port: u16) -> Dev {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let child = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["dev", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(data)
        .current_dir(&root)
        .env("RUST_LOG", "warn")
        .env_remove("CRM_WEBHOOK_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ember dev starts");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = reqwest::Client::new();
    while Instant::now() < deadline {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            return Dev { child, base };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("ember dev did not answer within 30 s");
}

async fn post(base: &str, body: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/events"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_server_scores_and_keeps_leads_across_restarts() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let lead_id;
    {
        let dev = start(data.path(), port).await;
        let event = json!({
            "event_id": "evt-1", "type": "form_submit", "email": "Claire@BigBank.example",
            "properties": {"form_id": "contact-us"},
            "traits": {"first_name": "Claire", "job_title": "Head of Marketing", "company_size": 6000, "industry": "software", "country": "FR"}
        });
        let (status, body) = post(&dev.base, &event.to_string()).await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["accepted"], 1);
        // The same event id again is a duplicate, not a second scoring.
        let (_, body) = post(&dev.base, &event.to_string()).await;
        assert_eq!(body["duplicate"], 1, "{body}");
        let (_, body) = post(&dev.base, &json!({"event_id": "evt-2", "type": "download", "email": "claire@bigbank.example",
            "properties": {"content_id": "roi-calculator"}}).to_string()).await;
        assert_eq!(body["accepted"], 1);
        let (status, lead) = get(&format!("{}/v1/leads?email=claire@bigbank.example", dev.base)).await;
        assert_eq!(status, 200, "{lead}");
        assert_eq!(lead["scores"], json!({"engagement": 25, "fit": 45}));
        assert_eq!(lead["stage"], "lead");
        assert_eq!(lead["temperature"], "warm");
        assert_eq!(lead["quadrant"], "nurture");
        assert_eq!(lead["score_breakdown"]["fit"]["profile"], 45);
        assert!(lead["tags"].as_array().unwrap().contains(&json!("high_intent")));
        lead_id = lead["id"].as_str().unwrap().to_string();
        let (status, tl) = get(&format!("{}/v1/leads/{lead_id}/timeline", dev.base)).await;
        assert_eq!(status, 200);
        assert_eq!(tl["events"].as_array().unwrap().len(), 2, "{tl}");
    }
    // Restart on the same data folder: the lead is still there.
    let dev = start(data.path(), free_port()).await;
    let (status, lead) = get(&format!("{}/v1/leads/{lead_id}", dev.base)).await;
    assert_eq!(status, 200, "{lead}");
    assert_eq!(lead["scores"]["engagement"], 25);
    assert_eq!(lead["email"], "claire@bigbank.example");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_per_event_and_good_events_are_kept() {
    let data = tempfile::tempdir().unwrap();
    let dev = start(data.path(), free_port()).await;

    let (status, body) = post(&dev.base, "{\"type\": \"page_view\", ").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "malformed_json", "{body}");

    let future = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let batch = json!({"batch": [
        {"event_id": "ok-1", "type": "page_view", "email": "noah@example.net", "properties": {"path": "/pricing"}},
        {"event_id": "bad-type", "type": "Page View", "email": "noah@example.net"},
        {"event_id": "no-identity", "type": "page_view"},
        {"event_id": "future", "type": "page_view", "email": "noah@example.net", "occurred_at": future},
        {"event_id": "ok-2", "type": "page_view", "anonymous_id": "cookie-1", "properties": {"path": "/"}},
    ]});
    let (status, body) = post(&dev.base, &batch.to_string()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!((body["accepted"].as_u64(), body["rejected"].as_u64()), (Some(2), Some(3)), "{body}");
    let results = body["results"].as_array().unwrap();
    assert!(results[1]["reason"].as_str().unwrap().contains("naming rule"));
    assert!(results[2]["reason"].as_str().unwrap().contains("no identity"));
    assert!(results[3]["reason"].as_str().unwrap().contains("future"));
    let (_, lead) = get(&format!("{}/v1/leads?email=noah@example.net", dev.base)).await;
    assert_eq!(lead["scores"]["engagement"], 10, "the good event beside the bad ones was kept");
    let (status, _) = get(&format!("{}/v1/leads?anonymous_id=cookie-1", dev.base)).await;
    assert_eq!(status, 200);

    let big: Vec<Value> = (0..101).map(|i| json!({"event_id": format!("b{i}"), "type": "page_view", "anonymous_id": "x"})).collect();
    let (status, body) = post(&dev.base, &json!({"batch": big}).to_string()).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "batch_too_large");

    let huge = json!({"type": "page_view", "anonymous_id": "x", "properties": {"blob": "x".repeat(300 * 1024)}});
    let (status, _) = post(&dev.base, &huge.to_string()).await;
    assert_eq!(status, 413);

    let (status, body) = get(&format!("{}/v1/leads/nope", dev.base)).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_over_http_match_ember_report_on_the_same_data() {
    let data = tempfile::tempdir().unwrap();
    let api_funnel;
    {
        let dev = start(data.path(), free_port()).await;
        let utm = |s: &str, m: &str| json!({"utm": {"source": s, "medium": m}});
        for e in [
            json!({"type": "form_submit", "email": "ada@acme.example", "context": utm("google", "cpc")}),
            json!({"type": "demo_request", "email": "ada@acme.example"}),
            json!({"type": "form_submit", "email": "bob@acme.example", "context": utm("google", "cpc")}),
            json!({"type": "newsletter_subscribe", "email": "cy@shop.example"}),
        ] {
            let (status, body) = post(&dev.base, &e.to_string()).await;
            assert_eq!(status, 202, "{body}");
        }
        let (status, f) = get(&format!("{}/v1/reports/funnel?by=channel", dev.base)).await;
        assert_eq!(status, 200, "{f}");
        let groups: Vec<&str> = f["rows"].as_array().unwrap().iter().map(|r| r["group"].as_str().unwrap()).collect();
        assert_eq!(groups, ["(direct)/(none)", "google/cpc"]);
        let google = &f["rows"][1]["stages"];
        assert_eq!((google[0]["stage"].as_str(), google[0]["leads"].as_i64()), (Some("lead"), Some(2)));
        assert_eq!(google[3]["stage"], "sql");
        assert_eq!(google[3]["leads"], 1, "the demo request made Ada an SQL: {f}");
        assert_eq!(f["total"]["stages"][0]["leads"], 3);
        let (status, q) = get(&format!("{}/v1/reports/quality?costs=google/cpc=300", dev.base)).await;
        assert_eq!(status, 200, "{q}");
        let g = q["channels"].as_array().unwrap().iter().find(|c| c["channel"] == "google/cpc").unwrap().clone();
        assert_eq!((g["new_leads"].as_i64(), g["cost_per_mql"].as_f64()), (Some(2), Some(300.0)), "{q}");
        let (status, c) = get(&format!("{}/v1/reports/campaigns", dev.base)).await;
        assert_eq!(status, 200, "{c}");
        assert!(c["campaigns"].as_array().unwrap().iter().any(|c| c["campaign"] == "newsletter-nurture" && c["enrolled"] == 1), "{c}");
        let (status, body) = get(&format!("{}/v1/reports/funnel?by=stage", dev.base)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid")));
        let page = reqwest::get(format!("{}/dashboard", dev.base)).await.unwrap();
        assert_eq!(page.status().as_u16(), 200);
        assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let html = page.text().await.unwrap();
        assert!(html.contains("/v1/reports/funnel") && html.contains("sessionStorage"));
        assert!(!html.contains("<script src") && !html.contains("<link"), "the page loads nothing from elsewhere");
        api_funnel = f;
    }
    // The CLI reads the same data folder and prints the same report.
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["report", "funnel", "--json", "--data"])
        .arg(data.path())
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .output()
        .expect("ember report runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(cli, api_funnel);
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["report", "funnel", "--data"])
        .arg(data.path())
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .output()
        .expect("ember report runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("google/cpc") && text.contains("total"), "{text}");
}
