//! `ember dev` as a user runs it: start the binary, send events over HTTP, read the lead back,
//! restart, and find the lead still there. Bad input is rejected per event with a reason; wrong
//! keys, foreign origins and oversized requests are refused; CRM feedback must be signed;
//! unsubscribe links work; erasure removes the lead.

use ember_testing::dev::{dev, free_port, get_json, post_events, Dev, Keys};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Keys of the test server (configured as hashes, like in production).
const WRITE_KEY: &str = "ek_w_dev-server-test-write-key";
const ADMIN_KEY: &str = "ek_a_dev-server-test-admin-key";
const CRM_SECRET: &str = "whsec_ZGV2LXNlcnZlci10ZXN0LWNybS1zZWNyZXQ=";
const UNSUBSCRIBE_SECRET: &str = "dev-server-test-unsubscribe-secret";
const SITE: &str = "https://www.example.com";

const KEYS: Keys = Keys { write: WRITE_KEY, origin: Some(SITE), admin: ADMIN_KEY, crm: Some(CRM_SECRET), unsubscribe: Some(UNSUBSCRIBE_SECRET) };

async fn start(data: &Path, port: u16) -> Dev {
    dev(crate::EMBER, data, port).keys(&KEYS).start().await
}

async fn post(base: &str, body: &str) -> (u16, Value) {
    post_events(base, WRITE_KEY, body).await
}

async fn get(url: &str) -> (u16, Value) {
    get_json(url, ADMIN_KEY).await
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
        let (status, body) = post(&dev.base(), &event.to_string()).await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["accepted"], 1);
        // The same event id again is a duplicate, not a second scoring.
        let (_, body) = post(&dev.base(), &event.to_string()).await;
        assert_eq!(body["duplicate"], 1, "{body}");
        let (_, body) = post(&dev.base(), &json!({"event_id": "evt-2", "type": "download", "email": "claire@bigbank.example",
            "properties": {"content_id": "roi-calculator"}}).to_string()).await;
        assert_eq!(body["accepted"], 1);
        let (status, lead) = get(&format!("{}/v1/leads?email=claire@bigbank.example", dev.base())).await;
        assert_eq!(status, 200, "{lead}");
        assert_eq!(lead["scores"], json!({"engagement": 25, "fit": 45}));
        assert_eq!(lead["stage"], "lead");
        assert_eq!(lead["temperature"], "warm");
        assert_eq!(lead["quadrant"], "nurture");
        assert_eq!(lead["score_breakdown"]["fit"]["profile"], 45);
        assert!(lead["tags"].as_array().unwrap().contains(&json!("high_intent")));
        lead_id = lead["id"].as_str().unwrap().to_string();
        let (status, tl) = get(&format!("{}/v1/leads/{lead_id}/timeline", dev.base())).await;
        assert_eq!(status, 200);
        assert_eq!(tl["events"].as_array().unwrap().len(), 2, "{tl}");
    }
    // Restart on the same data folder: the lead is still there.
    let dev = start(data.path(), free_port()).await;
    let (status, lead) = get(&format!("{}/v1/leads/{lead_id}", dev.base())).await;
    assert_eq!(status, 200, "{lead}");
    assert_eq!(lead["scores"]["engagement"], 25);
    assert_eq!(lead["email"], "claire@bigbank.example");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_per_event_and_good_events_are_kept() {
    let data = tempfile::tempdir().unwrap();
    let dev = start(data.path(), free_port()).await;

    let (status, body) = post(&dev.base(), "{\"type\": \"page_view\", ").await;
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
    let (status, body) = post(&dev.base(), &batch.to_string()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!((body["accepted"].as_u64(), body["rejected"].as_u64()), (Some(2), Some(3)), "{body}");
    let results = body["results"].as_array().unwrap();
    assert!(results[1]["reason"].as_str().unwrap().contains("naming rule"));
    assert!(results[2]["reason"].as_str().unwrap().contains("no identity"));
    assert!(results[3]["reason"].as_str().unwrap().contains("future"));
    let (_, lead) = get(&format!("{}/v1/leads?email=noah@example.net", dev.base())).await;
    assert_eq!(lead["scores"]["engagement"], 10, "the good event beside the bad ones was kept");
    let (status, _) = get(&format!("{}/v1/leads?anonymous_id=cookie-1", dev.base())).await;
    assert_eq!(status, 200);

    let big: Vec<Value> = (0..101).map(|i| json!({"event_id": format!("b{i}"), "type": "page_view", "anonymous_id": "x"})).collect();
    let (status, body) = post(&dev.base(), &json!({"batch": big}).to_string()).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "batch_too_large");

    let huge = json!({"type": "page_view", "anonymous_id": "x", "properties": {"blob": "x".repeat(300 * 1024)}});
    let (status, _) = post(&dev.base(), &huge.to_string()).await;
    assert_eq!(status, 413);

    let (status, body) = get(&format!("{}/v1/leads/nope", dev.base())).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
}

async fn send(req: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, String) {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

fn code(body: &str) -> String {
    serde_json::from_str::<Value>(body).map(|v| v["error"]["code"].as_str().unwrap_or("").to_string()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_origins_and_limits_are_enforced() {
    let data = tempfile::tempdir().unwrap();
    let dev = start(data.path(), free_port()).await;
    let c = reqwest::Client::new();
    let events = format!("{}/v1/events", dev.base());
    let one = json!({"event_id": "k-1", "type": "page_view", "anonymous_id": "cookie-k"}).to_string();

    // No key, a wrong key, an admin route with a write key.
    let (s, h, b) = send(c.post(&events).body(one.clone())).await;
    assert_eq!((s, code(&b).as_str()), (401, "unauthorized"), "{b}");
    assert_eq!(h.get("www-authenticate").map(|v| v.to_str().unwrap()), Some("Bearer"));
    let (s, _, b) = send(c.post(&events).bearer_auth("ek_w_wrong").body(one.clone())).await;
    assert_eq!(s, 401, "{b}");
    let (s, _, b) = send(c.get(format!("{}/v1/leads?anonymous_id=cookie-k", dev.base())).bearer_auth(WRITE_KEY)).await;
    assert_eq!(s, 401, "a write key reads nothing: {b}");
    let (s, _, _) = send(c.get(format!("{}/v1/leads?anonymous_id=cookie-k", dev.base()))).await;
    assert_eq!(s, 401);

    // A foreign origin: refused, and no CORS header for it.
    let (s, h, b) = send(c.post(&events).bearer_auth(WRITE_KEY).header("origin", "https://evil.example").body(one.clone())).await;
    assert_eq!((s, code(&b).as_str()), (403, "origin_not_allowed"), "{b}");
    assert!(h.get("access-control-allow-origin").is_none());
    let (s, _, _) = send(c.request(reqwest::Method::OPTIONS, &events).header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")).await;
    assert_eq!(s, 403);

    // The allowed origin: preflight, then a sendBeacon-style request (text/plain, key in the body).
    let (s, h, _) = send(c.request(reqwest::Method::OPTIONS, &events).header("origin", SITE)
        .header("access-control-request-method", "POST").header("access-control-request-headers", "content-type")).await;
    assert_eq!(s, 204);
    assert_eq!(h.get("access-control-allow-origin").unwrap(), SITE);
    assert!(h.get("access-control-allow-methods").unwrap().to_str().unwrap().contains("POST"));
    let beacon = json!({"write_key": WRITE_KEY, "batch": [{"event_id": "k-2", "type": "page_view", "anonymous_id": "cookie-k",
        "properties": {"path": "/pricing"}}]});
    let (s, h, b) = send(c.post(&events).header("origin", SITE).header("content-type", "text/plain;charset=UTF-8").body(beacon.to_string())).await;
    assert_eq!(s, 202, "{b}");
    assert_eq!(h.get("access-control-allow-origin").unwrap(), SITE);
    assert_eq!(serde_json::from_str::<Value>(&b).unwrap()["accepted"], 1, "{b}");
    let wrong_in_body = json!({"write_key": "ek_w_nope", "type": "page_view", "anonymous_id": "x"});
    let (s, _, _) = send(c.post(&events).header("content-type", "text/plain").body(wrong_in_body.to_string())).await;
    assert_eq!(s, 401);

    // Sizes: 300 KiB and 101 events are 413; a batch with one broken event keeps the others.
    let huge = json!({"type": "page_view", "anonymous_id": "x", "properties": {"blob": "x".repeat(300 * 1024)}});
    let (s, _, b) = send(c.post(&events).bearer_auth(WRITE_KEY).body(huge.to_string())).await;
    assert_eq!((s, code(&b).as_str()), (413, "too_large"), "{b}");
    let big: Vec<Value> = (0..101).map(|i| json!({"event_id": format!("b{i}"), "type": "page_view", "anonymous_id": "x"})).collect();
    let (s, _, b) = send(c.post(&events).bearer_auth(WRITE_KEY).body(json!({"batch": big}).to_string())).await;
    assert_eq!((s, code(&b).as_str()), (413, "batch_too_large"), "{b}");
    let mixed = json!({"batch": [
        {"event_id": "m-1", "type": "page_view", "anonymous_id": "cookie-m"},
        {"event_id": "m-2", "type": "page_view"},
        {"event_id": "m-3", "type": "download", "anonymous_id": "cookie-m", "properties": {"content_id": "guide"}},
    ]});
    let (s, _, b) = send(c.post(&events).bearer_auth(WRITE_KEY).body(mixed.to_string())).await;
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!((s, v["accepted"].as_u64(), v["rejected"].as_u64()), (202, Some(2), Some(1)), "{b}");
    let (s, lead) = get(&format!("{}/v1/leads?anonymous_id=cookie-m", dev.base())).await;
    assert_eq!(s, 200);
    assert_eq!(lead["event_count"], 2, "{lead}");

    // Malformed JSON names the problem; the OpenAPI file is served.
    let (s, _, b) = send(c.post(&events).bearer_auth(WRITE_KEY).body("{\"type\": ")).await;
    assert_eq!((s, code(&b).as_str()), (400, "malformed_json"), "{b}");
    assert!(b.contains("line 1"), "the error says where: {b}");
    let (s, _, b) = send(c.get(format!("{}/v1/openapi.yaml", dev.base()))).await;
    assert_eq!(s, 200);
    assert!(b.starts_with("openapi: 3.1"), "{b}");
}

fn signed(c: &reqwest::Client, url: &str, body: &str, at: i64) -> reqwest::RequestBuilder {
    let id = format!("msg_{at}");
    let sig = ember_service::signing::sign(CRM_SECRET, &id, at, body).unwrap();
    c.post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", at.to_string())
        .header("webhook-signature", sig)
        .body(body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_feedback_unsubscribe_and_erasure_over_http() {
    let data = tempfile::tempdir().unwrap();
    let dev = start(data.path(), free_port()).await;
    let c = reqwest::Client::new();
    let (s, b) = post(&dev.base(), &json!({"event_id": "c-0", "type": "newsletter_subscribe", "email": "ines@corp.example"}).to_string()).await;
    assert_eq!(s, 202, "{b}");
    let (s, b) = post(&dev.base(), &json!({"event_id": "c-1", "type": "demo_request", "email": "ines@corp.example",
        "traits": {"first_name": "Ines", "job_title": "CMO", "company_size": 800, "country": "FR", "newsletter_opt_in": true}}).to_string()).await;
    assert_eq!(s, 202, "{b}");
    let (_, lead) = get(&format!("{}/v1/leads?email=ines@corp.example", dev.base())).await;
    let id = lead["id"].as_str().unwrap().to_string();

    // CRM feedback: signed now → applied; unsigned, tampered or 10 minutes old → 401.
    let url = format!("{}/v1/crm/feedback", dev.base());
    let body = json!({"email": "ines@corp.example", "action": "accepted"}).to_string();
    let now = chrono::Utc::now().timestamp();
    let (s, _, b) = send(c.post(&url).header("content-type", "application/json").body(body.clone())).await;
    assert_eq!((s, code(&b).as_str()), (401, "bad_signature"), "{b}");
    let (s, _, b) = send(signed(&c, &url, &body, now - 600)).await;
    assert_eq!(s, 401, "a stale signature is a replay: {b}");
    let (s, _, b) = send(signed(&c, &url, &body, now).body(body.replace("accepted", "rejected"))).await;
    assert_eq!(s, 401, "a tampered body: {b}");
    let (s, _, b) = send(signed(&c, &url, &body, now)).await;
    assert_eq!(s, 200, "{b}");
    let v: Value = serde_json::from_str(&b).unwrap();
    assert!(v["handoff"]["accepted_at"].is_string(), "sales accepted the lead: {b}");

    // Unsubscribe: the GET page changes nothing; the one-click POST opts out; bad tokens are 400.
    let token = ember_service::signing::unsubscribe_token(UNSUBSCRIBE_SECRET.as_bytes(), &id);
    let unsub = format!("{}/v1/unsubscribe?token={token}", dev.base());
    let (_, before) = get(&format!("{}/v1/leads/{id}", dev.base())).await;
    assert_eq!(before["subscribed"], true, "{before}");
    let (s, _, page) = send(c.get(&unsub)).await;
    assert_eq!(s, 200);
    assert!(page.contains("<form method=\"post\""), "{page}");
    assert!(!page.contains("ines"), "the page reveals nothing about the person");
    let (_, still) = get(&format!("{}/v1/leads/{id}", dev.base())).await;
    assert_eq!(still["subscribed"], true, "a GET (link scanner) unsubscribes no one");
    let (s, _, _) = send(c.post(&unsub).header("content-type", "application/x-www-form-urlencoded").body("List-Unsubscribe=One-Click")).await;
    assert_eq!(s, 200);
    let (_, after) = get(&format!("{}/v1/leads/{id}", dev.base())).await;
    assert_eq!(after["subscribed"], false, "{after}");
    let (s, _, _) = send(c.post(format!("{}/v1/unsubscribe?token={}x", dev.base(), &token[..token.len() - 1]))).await;
    assert_eq!(s, 400);

    // Erasure: the lead and its identities are gone; a second DELETE is 404.
    let del = |u: String| c.delete(u).bearer_auth(ADMIN_KEY);
    let (s, _, b) = send(del(format!("{}/v1/leads/{id}", dev.base()))).await;
    assert_eq!(s, 200, "{b}");
    let (s, _) = get(&format!("{}/v1/leads?email=ines@corp.example", dev.base())).await;
    assert_eq!(s, 404);
    let (s, _, _) = send(del(format!("{}/v1/leads/{id}", dev.base()))).await;
    assert_eq!(s, 404);
    let (s, _, _) = send(c.delete(format!("{}/v1/leads/{id}", dev.base())).bearer_auth(WRITE_KEY)).await;
    assert_eq!(s, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_configured_keys_dev_prints_a_fresh_pair_once() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let run = |port: u16| {
        let mut dev = dev(crate::EMBER, data.path(), port);
        dev.command().stdout(Stdio::piped());
        let mut dev = dev.spawn();
        let mut out = std::io::BufReader::new(dev.child.stdout.take().unwrap());
        let mut text = String::new();
        // The keys are printed before the server listens.
        for _ in 0..6 {
            let mut line = String::new();
            if std::io::BufRead::read_line(&mut out, &mut line).unwrap_or(0) == 0 {
                break;
            }
            text.push_str(&line);
            if line.contains("ember keys new") || line.contains("delete that file") {
                break;
            }
        }
        (dev, text)
    };
    let (dev, first) = run(port);
    let key_after = |label: &str| -> String {
        let line = first.lines().find(|l| l.contains(label)).unwrap_or_else(|| panic!("no {label} in:\n{first}"));
        line.split_whitespace().last().unwrap().to_string()
    };
    let (write, admin) = (key_after("write key"), key_after("admin key"));
    assert!(write.starts_with("ek_w_") && admin.starts_with("ek_a_"), "{first}");
    let c = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.get(format!("{}/healthz", dev.base())).send().await.is_err() {
        assert!(Instant::now() < deadline, "ember dev did not answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ev = json!({"type": "page_view", "anonymous_id": "cookie-fresh"}).to_string();
    let (s, _, b) = send(c.post(format!("{}/v1/events", dev.base())).bearer_auth(&write).body(ev)).await;
    assert_eq!(s, 202, "{b}");
    let (s, _, b) = send(c.get(format!("{}/v1/leads?anonymous_id=cookie-fresh", dev.base())).bearer_auth(&admin)).await;
    assert_eq!(s, 200, "{b}");
    let saved = std::fs::read_to_string(data.path().join("keys.json")).unwrap();
    assert!(!saved.contains(&write) && !saved.contains(&admin), "only hashes are kept");
    drop(dev);
    // The second start reuses the saved hashes and prints no key.
    let (dev, second) = run(free_port());
    assert!(!second.contains(&write) && !second.contains("ek_a_"), "{second}");
    drop(dev);
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
            let (status, body) = post(&dev.base(), &e.to_string()).await;
            assert_eq!(status, 202, "{body}");
        }
        let (status, f) = get(&format!("{}/v1/reports/funnel?by=channel", dev.base())).await;
        assert_eq!(status, 200, "{f}");
        let groups: Vec<&str> = f["rows"].as_array().unwrap().iter().map(|r| r["group"].as_str().unwrap()).collect();
        assert_eq!(groups, ["(direct)/(none)", "google/cpc"]);
        let google = &f["rows"][1]["stages"];
        assert_eq!((google[0]["stage"].as_str(), google[0]["leads"].as_i64()), (Some("lead"), Some(2)));
        assert_eq!(google[3]["stage"], "sql");
        assert_eq!(google[3]["leads"], 1, "the demo request made Ada an SQL: {f}");
        assert_eq!(f["total"]["stages"][0]["leads"], 3);
        let (status, q) = get(&format!("{}/v1/reports/quality?costs=google/cpc=300", dev.base())).await;
        assert_eq!(status, 200, "{q}");
        let g = q["channels"].as_array().unwrap().iter().find(|c| c["channel"] == "google/cpc").unwrap().clone();
        assert_eq!((g["new_leads"].as_i64(), g["cost_per_mql"].as_f64()), (Some(2), Some(300.0)), "{q}");
        let (status, c) = get(&format!("{}/v1/reports/campaigns", dev.base())).await;
        assert_eq!(status, 200, "{c}");
        assert!(c["campaigns"].as_array().unwrap().iter().any(|c| c["campaign"] == "newsletter-nurture" && c["enrolled"] == 1), "{c}");
        let (status, body) = get(&format!("{}/v1/reports/funnel?by=stage", dev.base())).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid")));
        let page = reqwest::get(format!("{}/dashboard", dev.base())).await.unwrap();
        assert_eq!(page.status().as_u16(), 200);
        assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let html = page.text().await.unwrap();
        assert!(html.contains("/v1/reports/funnel"));
        assert!(!html.contains("Storage.setItem") && !html.contains("Storage.getItem"), "the admin key is kept in memory only");
        assert!(!html.contains("<script src") && !html.contains("<link"), "the page loads nothing from elsewhere");
        api_funnel = f;
    }
    // The CLI reads the same data folder and prints the same report.
    let out = crate::ember()
        .args(["report", "funnel", "--json", "--data"])
        .arg(data.path())
        .output()
        .expect("ember report runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(cli, api_funnel);
    let out = crate::ember()
        .args(["report", "funnel", "--data"])
        .arg(data.path())
        .output()
        .expect("ember report runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("google/cpc") && text.contains("total"), "{text}");
}

/// The headers of one response class, checked against what every response must carry.
fn assert_common_headers(what: &str, h: &reqwest::header::HeaderMap) {
    let get = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    assert!(get("strict-transport-security").starts_with("max-age="), "{what}: HSTS on every response: {h:?}");
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}: {h:?}");
    assert_eq!(get("x-frame-options"), "DENY", "{what}: {h:?}");
    assert!(get("content-security-policy").contains("frame-ancestors 'none'"), "{what}: {h:?}");
    assert!(!get("content-security-policy").contains("unsafe-inline"), "{what}: {h:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_class_carries_security_headers() {
    let data = tempfile::tempdir().unwrap();
    let dev = start(data.path(), free_port()).await;
    let c = reqwest::Client::new();
    let (s, b) = post(&dev.base(), &json!({"event_id": "h-1", "type": "newsletter_subscribe", "email": "hedy@corp.example"}).to_string()).await;
    assert_eq!(s, 202, "{b}");
    let (_, lead) = get(&format!("{}/v1/leads?email=hedy@corp.example", dev.base())).await;
    let id = lead["id"].as_str().unwrap().to_string();
    let base = &dev.base();

    // Admin JSON (answers, lists, reports, refusals): never cached anywhere.
    let admin = [
        format!("{base}/v1/leads?email=hedy@corp.example"),
        format!("{base}/v1/leads/{id}"),
        format!("{base}/v1/leads/{id}/timeline"),
        format!("{base}/v1/reports/funnel"),
        format!("{base}/v1/reports/campaigns"),
        format!("{base}/v1/reports/quality"),
    ];
    for url in &admin {
        let (s, h, b) = send(c.get(url).bearer_auth(ADMIN_KEY)).await;
        assert_eq!(s, 200, "{url}: {b}");
        assert_common_headers(url, &h);
        assert_eq!(h["cache-control"], "no-store", "{url}");
        let (s, h, _) = send(c.get(url)).await;
        assert_eq!(s, 401, "{url}");
        assert_common_headers(url, &h);
        assert_eq!(h["cache-control"], "no-store", "{url}: a refusal is not cached either");
    }
    let (s, h, _) = send(c.get(format!("{base}/v1/leads/nope")).bearer_auth(ADMIN_KEY)).await;
    assert_eq!((s, h["cache-control"].to_str().unwrap()), (404, "no-store"));

    // Admin routes answer no cross-origin preflight, even from the site's own origin.
    let (s, h, _) = send(c.request(reqwest::Method::OPTIONS, format!("{base}/v1/leads/{id}")).header("origin", SITE)
        .header("access-control-request-method", "DELETE").header("access-control-request-headers", "authorization")).await;
    assert!(s >= 400 && h.get("access-control-allow-origin").is_none(), "admin CORS: {s} {h:?}");
    assert_common_headers("admin preflight", &h);

    // Ingest and its preflight.
    let events = format!("{base}/v1/events");
    let (s, h, _) = send(c.post(&events).bearer_auth(WRITE_KEY).header("content-type", "application/json")
        .body(json!({"event_id": "h-2", "type": "page_view", "anonymous_id": "cookie-h"}).to_string())).await;
    assert_eq!(s, 202);
    assert_common_headers("ingest", &h);
    assert_eq!(h["cache-control"], "no-store");
    let (s, h, _) = send(c.request(reqwest::Method::OPTIONS, &events).header("origin", SITE)
        .header("access-control-request-method", "POST")).await;
    assert_eq!(s, 204);
    assert_common_headers("ingest preflight", &h);

    // The unsubscribe pages: never framed (clickjacking a one-click button).
    let token = ember_service::signing::unsubscribe_token(UNSUBSCRIBE_SECRET.as_bytes(), &id);
    for (what, req) in [
        ("unsubscribe page", c.get(format!("{base}/v1/unsubscribe?token={token}"))),
        ("invalid link page", c.get(format!("{base}/v1/unsubscribe?token=nope"))),
    ] {
        let (_, h, page) = send(req).await;
        assert_common_headers(what, &h);
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("style-src 'sha256-") && csp.contains("default-src 'none'"), "{what}: {csp}");
        assert!(page.contains("<style>"), "{page}");
    }

    // The dashboard: its inline script and style by hash, nothing else.
    let (s, h, _) = send(c.get(format!("{base}/dashboard"))).await;
    assert_eq!(s, 200);
    assert_common_headers("dashboard", &h);
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'sha256-") && csp.contains("style-src 'sha256-"), "{csp}");
    assert_eq!(h["cache-control"], "no-store");

    // Public files, health, unknown routes.
    for (path, status) in [("/v1/ember.js", 200), ("/v1/openapi.yaml", 200), ("/healthz", 200), ("/nowhere", 404)] {
        let (s, h, _) = send(c.get(format!("{base}{path}"))).await;
        assert_eq!(s, status, "{path}");
        assert_common_headers(path, &h);
    }
}
