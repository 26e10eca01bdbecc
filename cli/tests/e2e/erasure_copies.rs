//! Erasure reaches every copy: a lead that got an email (the outbox), a webhook recorded
//! because its URL is not configured (`webhooks.jsonl`) and a webhook refused by its endpoint
//! (the dead letters, which name the lead but hold nothing personal) is erased over the HTTP
//! API of a real `ember dev`; afterwards no file under the data folder holds the person's
//! email, name or lead id.

use ember_testing::dev::{dev, Dev, Keys};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const WRITE_KEY: &str = "ek_w_erasure-copies-test-write-key";
const ADMIN_KEY: &str = "ek_a_erasure-copies-test-admin-key";
const DEV_PORT: u16 = 18620;
const RECEIVER_PORT: u16 = 18621;

const EMAIL: &str = "ottilie.vandermeer@erasure-copies.example";
const FIRST: &str = "Ottilie";
const LAST: &str = "Vandermeer";
const COMPANY: &str = "Vandermeer Looms";
const KEPT: &str = "kept.person@keep-copies.example";

const KEYS: Keys = Keys { write: WRITE_KEY, origin: None, admin: ADMIN_KEY, crm: None, unsubscribe: Some("erasure-copies-test-secret") };

/// The example model, with two CRM webhooks: one without a URL (recorded) and one whose
/// endpoint refuses every delivery for good (dead-lettered at once).
fn model(dir: &Path) -> PathBuf {
    let root = ember_testing::root();
    let text = std::fs::read_to_string(root.join("examples/b2b-saas.yaml")).unwrap();
    let hooks = "  webhooks:\n    - name: crm\n      url: ${CRM_WEBHOOK_URL}\n      secret: ${CRM_WEBHOOK_SECRET}\n";
    assert!(text.contains(hooks), "the example's webhooks are where this test expects them");
    let ours = format!(
        "  webhooks:\n    - name: crm\n      url: ${{ERASURE_COPIES_UNSET_URL}}\n    - name: refusing\n      url: http://127.0.0.1:{RECEIVER_PORT}/hook\n"
    );
    let path = dir.join("model.yaml");
    std::fs::write(&path, text.replace(hooks, &ours)).unwrap();
    path
}

/// A webhook endpoint answering 400 to everything (a permanent refusal: no retries).
async fn refusing_receiver() -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", RECEIVER_PORT)).await.expect("receiver port");
    let app = axum::Router::new().fallback(|| async { (axum::http::StatusCode::BAD_REQUEST, "no") });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

async fn start(data: &Path, model: &Path) -> Dev {
    let mut dev = dev(crate::EMBER, data, DEV_PORT).keys(&KEYS);
    dev.command()
        .args(["--tick-every", "1s", "--model"])
        .arg(model)
        .env_remove("ERASURE_COPIES_UNSET_URL")
        .env_remove("CRM_WEBHOOK_SECRET");
    dev.start().await
}

async fn ingest(event: Value) {
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{DEV_PORT}/v1/events"))
        .bearer_auth(WRITE_KEY)
        .json(&event)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!((status, &body["accepted"]), (202, &json!(1)), "{body}");
}

/// Every file under `dir` (recursively), lower-cased, with its path.
fn files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.push((p, String::from_utf8_lossy(&bytes).to_lowercase()));
        }
    }
    out
}

/// The files under `dir` that hold one of `needles`, with the needle found.
fn holding(dir: &Path, needles: &[&str]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (p, text) in files(dir) {
        for n in needles {
            if text.contains(&n.to_lowercase()) {
                found.push((p.strip_prefix(dir).unwrap().display().to_string(), n.to_string()));
            }
        }
    }
    found
}

/// Waits until the files holding the person's email satisfy `done`.
async fn wait_for(data: &Path, done: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found: Vec<String> = holding(data, &[EMAIL]).into_iter().map(|(p, _)| p).collect();
        if done(&found) {
            return;
        }
        assert!(Instant::now() < deadline, "the email and the webhook were not all written: {found:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_over_http_leaves_the_person_in_no_file_of_the_data_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let model = model(tmp.path());
    let _receiver = refusing_receiver().await;
    let _dev = start(&data, &model).await;

    // The welcome email first (sent by the scheduled jobs while the lead is still cold)…
    ingest(json!({"event_id": "ec-sub", "type": "newsletter_subscribe", "email": EMAIL,
        "traits": {"first_name": FIRST, "last_name": LAST}}))
    .await;
    ingest(json!({"event_id": "ec-kept", "type": "newsletter_subscribe", "email": KEPT})).await;
    wait_for(&data, |found| found.iter().filter(|p| p.starts_with("outbox")).count() >= 2).await;
    // …then the handoff: one webhook recorded (no URL), one refused for good (dead letter).
    ingest(json!({"event_id": "ec-form", "type": "form_submit", "email": EMAIL, "properties": {"form_id": "contact-us"},
        "traits": {"first_name": FIRST, "last_name": LAST, "company": COMPANY, "job_title": "Head of Marketing",
                   "company_size": 600, "country": "FR"}}))
    .await;
    ingest(json!({"event_id": "ec-demo", "type": "demo_request", "email": EMAIL})).await;
    wait_for(&data, |found| found.iter().any(|p| p == "webhooks.jsonl")).await;

    let admin = reqwest::Client::new();
    let lead: Value = admin
        .get(format!("http://127.0.0.1:{DEV_PORT}/v1/leads?email={EMAIL}"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = lead["id"].as_str().unwrap_or_else(|| panic!("{lead}")).to_string();
    // The dead letter names the lead but holds nothing personal (the replay reads that back).
    let letters = data.join("dead-letters.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&letters).is_ok_and(|t| t.contains(&id)) {
        assert!(Instant::now() < deadline, "the refused webhook was not dead-lettered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let letter = std::fs::read_to_string(&letters).unwrap().to_lowercase();
    for personal in [EMAIL, FIRST, LAST, COMPANY] {
        assert!(!letter.contains(&personal.to_lowercase()), "`{personal}` is in the dead letter: {letter}");
    }
    let r = admin.delete(format!("http://127.0.0.1:{DEV_PORT}/v1/leads/{id}")).bearer_auth(ADMIN_KEY).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap_or_default());

    let left = holding(&data, &[EMAIL, FIRST, LAST, COMPANY, &id]);
    assert!(left.is_empty(), "files under the data folder still hold the erased person: {left:?}");
    // The scan reads real data: the other lead's email is still in the outbox.
    assert!(holding(&data, &[KEPT]).iter().any(|(p, _)| p.starts_with("outbox")), "the other lead's email is kept");
    // Erasing again finds nothing and changes nothing.
    let r = admin.delete(format!("http://127.0.0.1:{DEV_PORT}/v1/leads/{id}")).bearer_auth(ADMIN_KEY).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
}
