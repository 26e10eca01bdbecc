//! Replays, as an attacker or a flaky network would send them, against the real binary: CRM
//! feedback sent twice byte for byte (and ten copies at once) applies once; a repeated one-click
//! unsubscribe changes nothing; a `won` amount out of bounds is refused naming the field; and
//! `ember webhooks replay` killed (`kill -9`) while it waits on a `Retry-After` loses no letter.

use ember_testing::dev::{dev, free_port, Dev, Keys};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WRITE_KEY: &str = "ek_w_replays-test-write-key";
const ADMIN_KEY: &str = "ek_a_replays-test-admin-key";
const CRM_SECRET: &str = "whsec_cmVwbGF5cy10ZXN0LWNybS1zZWNyZXQ=";
const UNSUBSCRIBE_SECRET: &str = "replays-test-unsubscribe-secret";
const HOOK_SECRET: &str = "whsec_cmVwbGF5LXRlc3Qtc2VjcmV0LTEyMzQ1Njc4";

const KEYS: Keys = Keys { write: WRITE_KEY, origin: None, admin: ADMIN_KEY, crm: Some(CRM_SECRET), unsubscribe: Some(UNSUBSCRIBE_SECRET) };

async fn start(data: &Path) -> Dev {
    start_with(data, &[]).await
}

/// `ember dev` on `data` with more environment (`CRM_WEBHOOK_URL`…).
async fn start_with(data: &Path, env: &[(&str, &str)]) -> Dev {
    let mut dev = dev(crate::EMBER, data, free_port()).keys(&KEYS);
    dev.command().envs(env.iter().copied());
    dev.start().await
}

async fn ingest(base: &str, event: Value) {
    let r = reqwest::Client::new().post(format!("{base}/v1/events")).bearer_auth(WRITE_KEY).json(&event).send().await.unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!((status, &body["accepted"]), (202, &json!(1)), "{body}");
}

async fn admin_get(url: &str) -> Value {
    let r = reqwest::Client::new().get(url).bearer_auth(ADMIN_KEY).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

/// Timeline entries of `kind` for a lead.
async fn timeline_count(base: &str, lead_id: &str, kind: &str) -> usize {
    let tl = admin_get(&format!("{base}/v1/leads/{lead_id}/timeline")).await;
    tl["events"].as_array().unwrap().iter().filter(|e| e["event"]["type"] == kind).count()
}

/// A CRM request signed now with `id`, as the same bytes every time.
fn crm_request(c: &reqwest::Client, base: &str, id: &str, at: i64, body: &str) -> reqwest::RequestBuilder {
    let sig = ember_service::signing::sign(CRM_SECRET, id, at, body).unwrap();
    c.post(format!("{base}/v1/crm/feedback"))
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", at.to_string())
        .header("webhook-signature", sig)
        .body(body.to_string())
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// A qualified lead (a demo request takes it to MQL and hands it off); returns its id.
async fn qualified_lead(base: &str, email: &str) -> String {
    ingest(base, json!({"event_id": format!("{email}-sub"), "type": "newsletter_subscribe", "email": email})).await;
    ingest(base, json!({"event_id": format!("{email}-demo"), "type": "demo_request", "email": email,
        "traits": {"first_name": "Ines", "job_title": "CMO", "company_size": 800, "country": "FR"}})).await;
    let lead = admin_get(&format!("{base}/v1/leads?email={email}")).await;
    lead["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crm_feedback_replayed_byte_for_byte_applies_once() {
    let data = tempfile::tempdir().unwrap();
    let dev = start(data.path()).await;
    let c = reqwest::Client::new();
    let id = qualified_lead(&dev.base(), "ines@corp.example").await;
    let before = admin_get(&format!("{}/v1/leads/{id}", dev.base())).await;
    assert_ne!(before["stage"], "lead", "the demo request qualified the lead: {before}");

    // The same signed request twice: applied, then answered as a duplicate.
    let body = json!({"lead_id": id, "action": "recycled", "reason": "not now"}).to_string();
    let now = chrono::Utc::now().timestamp();
    let (s, first) = send(crm_request(&c, &dev.base(), "msg_recycle_1", now, &body)).await;
    assert_eq!(s, 200, "{first}");
    let (s, second) = send(crm_request(&c, &dev.base(), "msg_recycle_1", now, &body)).await;
    assert_eq!(s, 200, "{second}");
    assert_eq!(timeline_count(&dev.base(), &id, "ember.crm.recycled").await, 1, "recycled once");
    assert_eq!(first["feedback"], "applied", "{first}");
    assert_eq!(second["feedback"], "duplicate", "{second}");

    // Ten copies of another request at once: exactly one applies, nine are duplicates.
    let body = json!({"lead_id": id, "action": "rejected"}).to_string();
    let now = chrono::Utc::now().timestamp();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (c, base, body) = (c.clone(), dev.base().clone(), body.clone());
        tasks.push(tokio::spawn(async move { send(crm_request(&c, &base, "msg_reject_1", now, &body)).await }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        let (s, v) = t.await.unwrap();
        assert_eq!(s, 200, "{v}");
        outcomes.push(v["feedback"].as_str().unwrap_or("?").to_string());
    }
    assert_eq!(timeline_count(&dev.base(), &id, "ember.crm.rejected").await, 1, "rejected once");
    outcomes.sort();
    assert_eq!(outcomes.iter().filter(|o| *o == "applied").count(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| *o == "duplicate").count(), 9, "{outcomes:?}");
    assert_eq!(timeline_count(&dev.base(), &id, "ember.crm.recycled").await, 1, "the first feedback is still applied once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_feedback_amounts_are_bounded_and_the_error_names_the_field() {
    let data = tempfile::tempdir().unwrap();
    let dev = start(data.path()).await;
    let c = reqwest::Client::new();
    let id = qualified_lead(&dev.base(), "bob@corp.example").await;
    let now = chrono::Utc::now().timestamp();
    for (n, amount) in ["-1e308", "-0.01", "1e300", "1000000000000.5"].iter().enumerate() {
        let body = format!(r#"{{"lead_id": "{id}", "action": "won", "amount": {amount}}}"#);
        let (s, v) = send(crm_request(&c, &dev.base(), &format!("msg_amount_{n}"), now, &body)).await;
        assert_eq!(s, 400, "amount {amount}: {v}");
        assert!(v["error"]["message"].as_str().unwrap_or("").contains("`amount`"), "the error names the field: {v}");
    }
    let lead = admin_get(&format!("{}/v1/leads/{id}", dev.base())).await;
    assert_ne!(lead["stage"], "customer", "no refused feedback was applied: {lead}");
    let body = json!({"lead_id": id, "action": "won", "amount": 12500.5}).to_string();
    let (s, v) = send(crm_request(&c, &dev.base(), "msg_amount_ok", now, &body)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["stage"], "customer", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_one_click_unsubscribes_change_nothing() {
    let data = tempfile::tempdir().unwrap();
    let dev = start(data.path()).await;
    let c = reqwest::Client::new();
    let id = qualified_lead(&dev.base(), "carol@corp.example").await;
    let token = ember_service::signing::unsubscribe_token(UNSUBSCRIBE_SECRET.as_bytes(), &id);
    let url = format!("{}/v1/unsubscribe?token={token}", dev.base());
    let one_click = || c.post(&url).header("content-type", "application/x-www-form-urlencoded").body("List-Unsubscribe=One-Click");
    let (s, _) = send(one_click()).await;
    assert_eq!(s, 200);
    let after_first = admin_get(&format!("{}/v1/leads/{id}", dev.base())).await;
    assert_eq!(after_first["subscribed"], false, "{after_first}");
    assert_eq!(timeline_count(&dev.base(), &id, "unsubscribe").await, 1);
    // Again by POST (a mail client retrying), by the page's GET, and five at once.
    let (s, _) = send(one_click()).await;
    assert_eq!(s, 200);
    let (s, _) = send(c.get(&url)).await;
    assert_eq!(s, 200);
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let req = one_click();
        tasks.push(tokio::spawn(async move { send(req).await.0 }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let after = admin_get(&format!("{}/v1/leads/{id}", dev.base())).await;
    assert_eq!(after["scores"], after_first["scores"], "a repeated unsubscribe takes no points");
    assert_eq!(timeline_count(&dev.base(), &id, "unsubscribe").await, 1, "and adds no timeline entry");
}

/// A webhook receiver on loopback answering `status` (with `Retry-After` when given); keeps
/// the `webhook-id` of every request it gets.
async fn receiver(status: u16, retry_after: Option<&'static str>) -> (String, Arc<Mutex<Vec<String>>>, Arc<AtomicU32>) {
    let ids = Arc::new(Mutex::new(Vec::new()));
    let hits = Arc::new(AtomicU32::new(0));
    let (i, h) = (ids.clone(), hits.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let (i, h) = (i.clone(), h.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                i.lock().unwrap().push(id);
                let mut resp = axum::response::IntoResponse::into_response(axum::http::StatusCode::from_u16(status).unwrap());
                if let Some(r) = retry_after {
                    resp.headers_mut().insert("retry-after", r.parse().unwrap());
                }
                resp
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), ids, hits)
}

fn letters(dir: &Path, ids: &[&str]) {
    let mut text = String::new();
    for id in ids {
        let letter = json!({
            "delivery": {"hook": "crm", "url": null, "id": id, "timestamp": 1, "signature": "", "kind": "lead.qualified",
                         "lead_id": "ld_1", "body": "{\"type\":\"lead.qualified\",\"data\":{}}"},
            "error": "HTTP 503", "at": "2026-03-02T09:00:00Z"});
        text.push_str(&format!("{letter}\n"));
    }
    std::fs::write(dir.join("dead-letters.jsonl"), text).unwrap();
}

fn replay_command(dir: &Path, url: &str) -> Command {
    let mut cmd = crate::ember();
    cmd.args(["webhooks", "replay", "--model", "examples/b2b-saas.yaml", "--data"])
        .arg(dir)
        .env("CRM_WEBHOOK_URL", url)
        .env("CRM_WEBHOOK_SECRET", HOOK_SECRET)
        .env_remove("EMBER_DLQ_URL")
        .env_remove("EMBER_REPLAY_BUDGET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Waits for the child to exit within `limit`; kills it and fails otherwise.
fn wait_within(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("`ember webhooks replay` still ran after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_killed_while_waiting_on_retry_after_loses_no_letter() {
    let dir = tempfile::tempdir().unwrap();
    let ids = ["msg_dead_1", "msg_dead_2", "msg_dead_3"];
    letters(dir.path(), &ids);
    let (busy, _, hits) = receiver(429, Some("3600")).await;

    // With a budget long enough to honour the hour, the replay sleeps: kill -9 it mid-way.
    let mut child = replay_command(dir.path(), &busy).env("EMBER_REPLAY_BUDGET", "2h").spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while hits.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the receiver was asked once and answered 429");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(child.try_wait().unwrap().is_none(), "the replay waits on Retry-After");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let left = std::fs::read_to_string(dir.path().join("dead-letters.jsonl")).unwrap();
    for id in ids {
        assert!(left.contains(id), "{id} is still queued after the kill: {left}");
    }

    // With the default budget an hour's Retry-After does not fit: it gives up at once, keeps
    // every letter and says so (exit status non-zero).
    let mut child = replay_command(dir.path(), &busy).spawn().unwrap();
    let status = wait_within(&mut child, Duration::from_secs(60));
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(!status.success(), "{out}");
    assert!(out.contains("0 delivered"), "{out}");
    let left = std::fs::read_to_string(dir.path().join("dead-letters.jsonl")).unwrap();
    for id in ids {
        assert!(left.contains(id), "{id} is still queued: {left}");
    }

    // A healthy receiver later: each letter delivered exactly once, with its webhook id.
    let (healthy, got, _) = receiver(204, None).await;
    let mut child = replay_command(dir.path(), &healthy).spawn().unwrap();
    let status = wait_within(&mut child, Duration::from_secs(60));
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(status.success(), "{out}");
    assert!(out.contains("3 delivered"), "{out}");
    let mut got_ids = got.lock().unwrap().clone();
    got_ids.sort();
    assert_eq!(got_ids, ids, "each letter exactly once");
    // Nothing is left: a second replay delivers nothing.
    let mut child = replay_command(dir.path(), &healthy).spawn().unwrap();
    assert!(wait_within(&mut child, Duration::from_secs(60)).success());
    assert_eq!(got.lock().unwrap().len(), 3, "no letter twice");
}

/// One request a [`recording_receiver`] got: its `webhook-id`, `webhook-timestamp`,
/// `webhook-signature` and raw body.
type Got = Arc<Mutex<Vec<(String, String, String, String)>>>;

/// A webhook receiver on loopback answering `status`, keeping every request's headers and body.
async fn recording_receiver(status: u16) -> (String, Got) {
    let got: Got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let g = g.clone();
            async move {
                let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                g.lock().unwrap().push((h("webhook-id"), h("webhook-timestamp"), h("webhook-signature"), body));
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letters_hold_no_personal_data_and_a_replay_restores_it_from_the_lead() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The CRM is down while the lead qualifies: the webhook is dead-lettered.
    let (down, tried) = recording_receiver(503).await;
    let dev = start_with(&data, &[("CRM_WEBHOOK_URL", &down), ("CRM_WEBHOOK_SECRET", HOOK_SECRET)]).await;
    let email = "ines.personal@bigcorp.example";
    let lead_id = qualified_lead(&dev.base(), email).await;
    let file = data.join("dead-letters.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&file).is_ok_and(|t| t.contains(&lead_id)) {
        assert!(Instant::now() < deadline, "the failed webhook was not dead-lettered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(dev);
    assert!(!tried.lock().unwrap().is_empty(), "the CRM was tried first");
    // What the CRM was sent while it was down carried the person; the letter does not.
    let sent = tried.lock().unwrap()[0].3.clone();
    assert!(sent.contains(email) && sent.contains("CMO"), "{sent}");
    let letter = std::fs::read_to_string(&file).unwrap();
    for personal in [email, "Ines", "CMO", "bigcorp"] {
        assert!(!letter.contains(personal), "`{personal}` is in the dead letter: {letter}");
    }

    // A letter about a lead that has since been erased (no such lead in the store).
    let gone = json!({
        "delivery": {"hook": "crm", "url": null, "id": "msg_erased_lead", "timestamp": 1, "signature": "", "kind": "lead.qualified",
                     "lead_id": "ld_erased", "body": "{\"type\":\"lead.qualified\",\"data\":{\"lead_id\":\"ld_erased\",\"personal_data_left_out\":[\"email\",\"traits\"]}}"},
        "error": "HTTP 503", "at": "2026-03-02T09:00:00Z"});
    std::fs::write(&file, format!("{letter}{gone}\n")).unwrap();

    // The CRM is back: the replay sends the lead's data as stored now, signed over that body.
    let (healthy, got) = recording_receiver(204).await;
    let mut replay = replay_command(&data, &healthy).spawn().unwrap();
    let status = wait_within(&mut replay, Duration::from_secs(60));
    let mut out = String::new();
    std::io::Read::read_to_string(replay.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(status.success(), "{out}");
    assert!(out.contains("1 delivered") && out.contains("1 about erased leads (dropped)"), "{out}");
    let received = got.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "only the existing lead's webhook is sent: {received:?}");
    let (id, ts, sig, body) = &received[0];
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["data"]["email"], email, "{body}");
    assert_eq!(v["data"]["traits"]["job_title"], "CMO", "{body}");
    assert!(v["data"].get("personal_data_left_out").is_none(), "{body}");
    ember_service::signing::verify(HOOK_SECRET, id, ts, sig, body, chrono::Utc::now().timestamp(), 300)
        .expect("the replayed body is the one signed");
    // Both letters left the queue: a second replay finds nothing.
    let mut again = replay_command(&data, &healthy).spawn().unwrap();
    let status = wait_within(&mut again, Duration::from_secs(60));
    let mut out = String::new();
    std::io::Read::read_to_string(again.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(status.success() && out.contains("0 delivered") && out.contains("0 about erased leads"), "{out}");
    assert_eq!(got.lock().unwrap().len(), 1, "nothing sent twice");
}
