//! CRM feedback replayed — the same request again, and ten copies at once — applies once, on
//! both stores: the request's timeline entry is written in the same atomic commit as the lead
//! change, under the store's "each event id once" rule.
//!
//! The DynamoDB test needs moto (`EMBER_MOTO_ENDPOINT`, started by `scripts/test`).

use ember::local::ScenarioHarness;
use ember::scenario::Harness;
use ember_scoring::Model;
use ember_testing::service::{example_model, raw, start};
use ember_service::ports::{Identity, Store};
use ember_service::{CrmFeedback, FeedbackOutcome};
use serde_json::json;
use std::sync::Arc;

fn model() -> Arc<Model> {
    example_model("b2b-saas.yaml")
}

fn feedback(action: &str) -> CrmFeedback {
    CrmFeedback { lead_id: None, email: Some("dana@corp.example".into()), action: action.into(), amount: None, reason: None }
}

async fn replays_apply_once(h: Arc<ScenarioHarness>) {
    let e = h.ember();
    for (id, kind) in [("fr-sub", "newsletter_subscribe"), ("fr-demo", "demo_request")] {
        let s = e.ingest.event(&raw(json!({"event_id": id, "type": kind, "email": "dana@corp.example",
            "traits": {"job_title": "CMO", "company_size": 800, "country": "FR"}}))).await;
        assert!(s.is_accepted(), "{s:?}");
    }
    let lead = e.lead_by(&Identity::Email("dana@corp.example".into())).await.unwrap().unwrap();
    let webhooks_before = h.webhooks().await.unwrap().len();

    // Sequential replay: applied, then a duplicate that changes nothing.
    let first = e.feedback.crm_once(&feedback("recycled"), "msg_fb_1").await.unwrap();
    assert!(matches!(first, FeedbackOutcome::Applied(_)), "{first:?}");
    let after_first = e.lead(&lead.id).await.unwrap().unwrap();
    let again = e.feedback.crm_once(&feedback("recycled"), "msg_fb_1").await.unwrap();
    assert!(matches!(again, FeedbackOutcome::Duplicate(_)), "{again:?}");
    assert_eq!(e.lead(&lead.id).await.unwrap().unwrap(), after_first, "the duplicate changed nothing");
    assert_eq!(after_first.crm.recycled, 1, "recycled once");

    // Ten copies at once: one applies.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move { h.ember().feedback.crm_once(&feedback("rejected"), "msg_fb_2").await.unwrap() }));
    }
    let mut applied = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), FeedbackOutcome::Applied(_)) {
            applied += 1;
        }
    }
    assert_eq!(applied, 1, "exactly one of ten concurrent copies applies");
    let events = e.store().events(&lead.id).await.unwrap();
    let count = |kind: &str| events.iter().filter(|s| s.event.kind == kind).count();
    assert_eq!((count("ember.crm.recycled"), count("ember.crm.rejected")), (1, 1), "one timeline entry each");
    // A request that changes nothing is still recorded, so its replay stays a duplicate.
    let before = e.lead(&lead.id).await.unwrap().unwrap();
    let noop = e.feedback.crm_once(&feedback("rejected"), "msg_fb_3").await.unwrap();
    assert!(matches!(noop, FeedbackOutcome::Applied(_)), "{noop:?}");
    assert!(e.store().seen(&ember_service::feedback_entry_id("msg_fb_3")).await.unwrap());
    assert!(matches!(e.feedback.crm_once(&feedback("rejected"), "msg_fb_3").await.unwrap(), FeedbackOutcome::Duplicate(_)));
    assert_eq!(e.lead(&lead.id).await.unwrap().unwrap().crm, before.crm);
    let recycled_hooks = h.webhooks().await.unwrap()[webhooks_before..].iter().filter(|(_, k)| k == "lead.recycled").count();
    assert!(recycled_hooks <= 1, "at most one lead.recycled webhook");
    // A client may not take an id of Ember's own entries.
    let s = e.ingest.event(&raw(json!({"event_id": ember_service::feedback_entry_id("msg_fb_4"), "type": "page_view", "email": "dana@corp.example"}))).await;
    assert!(!s.is_accepted(), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crm_feedback_replays_apply_once_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let h = Arc::new(ScenarioHarness::embedded(model(), dir.path(), start()).await.unwrap());
    replays_apply_once(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs moto: run through scripts/test, or set EMBER_MOTO_ENDPOINT=$(scripts/moto)"]
async fn crm_feedback_replays_apply_once_on_dynamodb() {
    let (client, table) = ember_testing::moto_table("ember-feedback").await;
    let store: Arc<dyn Store> = Arc::new(ember_store_dynamodb::DynamoStore::new(client.clone(), table.clone()));
    let dir = tempfile::tempdir().unwrap();
    let h = Arc::new(ScenarioHarness::with_store(model(), store, dir.path(), start()).unwrap());
    replays_apply_once(h).await;
    client.delete_table().table_name(&table).send().await.ok();
}
