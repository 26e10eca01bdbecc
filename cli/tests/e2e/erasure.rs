//! Erasure (`DELETE /v1/leads/{id}`) on both stores: after it, no stored item — and, for the
//! embedded store, no byte of the database file — holds the person's email or name.
//!
//! The DynamoDB test needs moto (`EMBER_MOTO_ENDPOINT`, started by `scripts/test`).

use ember::local::ScenarioHarness;
use ember::scenario::Harness;
use ember_scoring::Model;
use ember_testing::service::{example_model, raw, start};
use ember_service::ports::Identity;
use ember_service::CrmFeedback;
use serde_json::json;
use std::sync::Arc;

const EMAIL: &str = "Zelda.Quintessa@erasure-test.example";
const FIRST: &str = "Zelda";
const LAST: &str = "Quintessa";
const COMPANY: &str = "Quintessential Widgets";

fn model() -> Arc<Model> {
    example_model("b2b-saas.yaml")
}

/// A full life: a newsletter sign-up, anonymous browsing, a form fill that merges it, a demo request (handoff),
/// CRM feedback and scheduled jobs — then the erasure. Another lead stays untouched.
async fn live_and_erase(h: &ScenarioHarness) -> String {
    let e = h.ember();
    let s = e.ingest.event(&raw(json!({"event_id": "er-sub", "type": "newsletter_subscribe", "email": EMAIL}))).await;
    assert!(s.is_accepted(), "{s:?}");
    for (i, path) in ["/blog/a", "/pricing"].iter().enumerate() {
        let s = e.ingest.event(&raw(json!({"event_id": format!("er-anon-{i}"), "type": "page_view", "anonymous_id": "cookie-erase",
            "properties": {"path": path}, "context": {"utm": {"source": "newsletter", "medium": "email"}}}))).await;
        assert!(s.is_accepted(), "{s:?}");
    }
    let s = e.ingest.event(&raw(json!({"event_id": "er-form", "type": "form_submit", "email": EMAIL, "anonymous_id": "cookie-erase",
        "properties": {"form_id": "contact-us"},
        "traits": {"first_name": FIRST, "last_name": LAST, "company": COMPANY, "job_title": "Head of Marketing",
                   "company_size": 600, "country": "FR", "newsletter_opt_in": true}}))).await;
    assert!(s.is_accepted(), "{s:?}");
    let s = e.ingest.event(&raw(json!({"event_id": "er-demo", "type": "demo_request", "email": EMAIL}))).await;
    assert!(s.is_accepted(), "{s:?}");
    e.feedback.crm(&CrmFeedback { lead_id: None, email: Some(EMAIL.into()), action: "accepted".into(), amount: None, reason: Some(format!("{FIRST} called back")) })
        .await
        .expect("CRM feedback");
    h.clock().set(start() + chrono::Duration::days(3));
    e.jobs.tick(start() + chrono::Duration::days(3), &|| true).await;
    let s = e.ingest.event(&raw(json!({"event_id": "er-other", "type": "page_view", "email": "someone.else@keep.example",
        "traits": {"first_name": "Keep"}}))).await;
    assert!(s.is_accepted(), "{s:?}");

    let lead = e.lead_by(&Identity::Email(EMAIL.to_lowercase())).await.unwrap().expect("the lead exists");
    assert!(!lead.merged_from.is_empty(), "the anonymous profile was merged in");
    assert!(e.erasure.erase(&lead.id).await.expect("erase"), "erase finds the lead");
    assert!(!e.erasure.erase(&lead.id).await.expect("erase again"), "a second erase finds nothing");
    assert!(e.lead_by(&Identity::Email(EMAIL.to_lowercase())).await.unwrap().is_none());
    assert!(e.lead_by(&Identity::Anonymous("cookie-erase".into())).await.unwrap().is_none());
    assert!(e.lead_by(&Identity::Email("someone.else@keep.example".into())).await.unwrap().is_some(), "other leads are kept");
    lead.id
}

fn assert_clean(what: &str, haystack: &str) {
    let lower = haystack.to_lowercase();
    for needle in [EMAIL, FIRST, LAST, COMPANY, "cookie-erase"] {
        assert!(!lower.contains(&needle.to_lowercase()), "{what} still holds `{needle}`");
    }
    assert!(lower.contains("keep.example"), "{what}: the scan sees stored data (the other lead is there)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_leaves_no_trace_in_the_embedded_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let h = ScenarioHarness::embedded(model(), dir.path(), start()).await.unwrap();
    live_and_erase(&h).await;
    // Every file of the store (database, WAL, shared memory), byte for byte.
    let mut bytes = Vec::new();
    let mut files = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if p.is_file() && name.starts_with("ember.db") {
            bytes.extend(std::fs::read(&p).unwrap());
            files += 1;
        }
    }
    assert!(files >= 1, "the database file is there");
    assert_clean("the database file", &String::from_utf8_lossy(&bytes));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto: run through scripts/test, or set EMBER_MOTO_ENDPOINT=$(scripts/moto)"]
async fn erasure_leaves_no_item_with_the_person_in_dynamodb() {
    let (client, table) = ember_testing::moto_table("ember-erasure").await;
    let store = Arc::new(ember_store_dynamodb::DynamoStore::new(client.clone(), table.clone()));
    let dir = tempfile::tempdir().unwrap();
    let h = ScenarioHarness::with_store(model(), store, dir.path(), start()).unwrap();
    live_and_erase(&h).await;
    // Every item of the table (a test may scan; the product never does).
    let mut items = String::new();
    let mut count = 0;
    let mut start_key = None;
    loop {
        let out = client.scan().table_name(&table).set_exclusive_start_key(start_key).send().await.expect("scan");
        for item in out.items() {
            items.push_str(&format!("{item:?}\n"));
            count += 1;
        }
        start_key = out.last_evaluated_key().cloned();
        if start_key.is_none() {
            break;
        }
    }
    assert!(count > 0, "the table holds items");
    assert_clean("the DynamoDB table", &items);
    client.delete_table().table_name(&table).send().await.ok();
}
