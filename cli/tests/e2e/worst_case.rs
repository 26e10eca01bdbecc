//! The most a hostile client holding the public write key can make one lead cost on DynamoDB
//! (moto, `EMBER_MOTO_ENDPOINT`, started by `scripts/test`).
//!
//! The lead is grown as far as the limits let a client grow it (README "Limits"): traits at
//! their 16 KiB, 100 anonymous ids of the longest length, and the award history of every capped
//! rule of the example model full (520 hits each, at distinct times, through the engine — what
//! 2,600 requests would build, without making moto store 2,600 versions of a large item). It is
//! stored once; then one request of 100 events (the largest batch), all on that lead and each
//! hitting a capped rule, goes through the ingest service on DynamoDB, and the test prints the
//! lead item's size and the write units the request cost. It asserts what must hold whatever
//! the figures: the lead stays storable (under DynamoDB's 400 KB item limit) and every event of
//! the request is applied, none lost.
//!
//! ```text
//! EMBER_MOTO_ENDPOINT=$(scripts/moto) cargo test -p ember --test e2e -- worst_case:: --include-ignored --nocapture
//! ```

use ember::local::ScenarioHarness;
use ember::scenario::Harness;
use ember_scoring::{Engine, Lead, Model, Time};
use ember_testing::service::{example_model, raw};
use ember_service::IngestStatus;
use ember_service::ports::{Claim, Commit, Identity, Store};
use serde_json::{Value, json};
use std::sync::Arc;

fn model() -> Arc<Model> {
    example_model("b2b-saas.yaml")
}

const EMAIL: &str = "heavy@worst-case.example";

/// One hit of each capped rule of the example model, at `at`.
fn capped_hits(n: usize, at: Time) -> Vec<Value> {
    let t = at.to_rfc3339();
    vec![
        json!({"event_id": format!("open-{n}"), "type": "email_open", "email": EMAIL, "occurred_at": t}),
        json!({"event_id": format!("click-{n}"), "type": "email_click", "email": EMAIL, "occurred_at": t}),
        json!({"event_id": format!("blog-{n}"), "type": "page_view", "email": EMAIL, "occurred_at": t, "properties": {"path": "/blog/a"}}),
        json!({"event_id": format!("pricing-{n}"), "type": "page_view", "email": EMAIL, "occurred_at": t, "properties": {"path": "/pricing"}}),
        json!({"event_id": format!("home-{n}"), "type": "page_view", "email": EMAIL, "occurred_at": t, "properties": {"path": "/"}}),
    ]
}

/// The heaviest lead the limits allow, built by the engine.
fn heaviest(model: &Arc<Model>, start: Time, now: Time) -> Lead {
    let engine = Engine::new(model.clone());
    let mut lead = Lead::new("ld_worst_case", model, start);
    lead.email = Some(EMAIL.into());
    // Traits at the lead's limit (16 KiB serialized).
    for i in 0..4 {
        lead.traits.insert(format!("notes_{i}"), json!("x".repeat(4000)));
    }
    let traits = serde_json::to_string(&lead.traits).unwrap().len();
    assert!(traits <= ember_scoring::limits::MAX_LEAD_TRAITS_BYTES, "{traits}");
    // The most anonymous ids a lead keeps, each of the longest length.
    lead.anonymous_ids = (0..ember_scoring::limits::MAX_ANONYMOUS_IDS).map(|i| format!("{i:03}{}", "a".repeat(125))).collect();
    // Every capped rule's award history: 520 hits each, one minute apart.
    for n in 0..520 {
        for v in capped_hits(n, start + chrono::Duration::minutes(n as i64)) {
            let e = raw(v).validate(now, || unreachable!("every hit has an id")).unwrap();
            engine.ingest(&mut lead, &e);
        }
    }
    lead
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto: run through scripts/test, or set EMBER_MOTO_ENDPOINT=$(scripts/moto)"]
async fn a_write_key_cannot_make_a_lead_unstorable_and_the_worst_request_cost_is_printed() {
    let (client, table) = ember_testing::moto_table("ember-worst").await;
    let store = ember_store_dynamodb::DynamoStore::new(client.clone(), table.clone());
    let start: Time = "2026-03-02T09:00:00Z".parse().unwrap();
    // The clock sits after every hit, so each one is on time or late, never in the future.
    let now = start + chrono::Duration::days(30);
    let model = model();
    let lead = heaviest(&model, start, now);
    let lead_id = lead.id.clone();
    let engine = Engine::new(model.clone());
    // Stored with its identities: the email, then the anonymous ids 50 per commit (a
    // transaction holds at most 100 items).
    let mut version = store
        .commit(Commit {
            due: engine.due(&lead),
            lead: lead.clone(),
            expected_version: None,
            events: Vec::new(),
            claims: vec![Claim { identity: Identity::Email(EMAIL.into()), expected_owner: None }],
            retire: None,
            release: None,
            tallies: Vec::new(),
        })
        .await
        .expect("the heaviest lead is storable");
    for chunk in lead.anonymous_ids.chunks(50) {
        version = store
            .commit(Commit {
                due: engine.due(&lead),
                lead: lead.clone(),
                expected_version: Some(version),
                events: Vec::new(),
                claims: chunk.iter().map(|a| Claim { identity: Identity::Anonymous(a.clone()), expected_owner: None }).collect(),
                retire: None,
                release: None,
                tallies: Vec::new(),
            })
            .await
            .expect("its anonymous ids are claimed");
    }
    assert_eq!(version, 3, "created, then two commits of claims");
    let dir = tempfile::tempdir().unwrap();
    let h = ScenarioHarness::with_store(model, Arc::new(store.clone()), dir.path(), now).unwrap();
    let ember = h.ember();
    let send = |v: Value| {
        let e = raw(v);
        async move { ember.ingest.event(&e).await }
    };
    let item = client
        .get_item()
        .table_name(&table)
        .key("PK", aws_sdk_dynamodb::types::AttributeValue::S(format!("LEAD#{lead_id}")))
        .key("SK", aws_sdk_dynamodb::types::AttributeValue::S("PROFILE".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    // DynamoDB's item size: attribute names and values.
    let item_bytes: usize = item
        .item()
        .expect("the lead item")
        .iter()
        .map(|(name, v)| {
            name.len()
                + match v {
                    aws_sdk_dynamodb::types::AttributeValue::S(s) | aws_sdk_dynamodb::types::AttributeValue::N(s) => s.len(),
                    aws_sdk_dynamodb::types::AttributeValue::Ss(ss) => ss.iter().map(String::len).sum(),
                    _ => 8,
                }
        })
        .sum();

    // The hostile request: 100 events (the largest batch), all on that lead, each hitting a capped rule.
    let before = store.estimated_write_units();
    let batch: Vec<Value> = (0..20).flat_map(|n| capped_hits(10_000 + n, start + chrono::Duration::minutes(600 + n as i64))).collect();
    assert_eq!(batch.len(), ember_service::MAX_BATCH);
    let mut accepted = 0;
    for v in batch {
        match send(v).await {
            IngestStatus::Accepted { .. } => accepted += 1,
            other => panic!("a valid event of the request was not applied: {other:?}"),
        }
    }
    let units = store.estimated_write_units() - before;
    println!(
        "worst case: lead item {item_bytes} B ({:.0} % of DynamoDB's 400 KB); one request of 100 events cost ~{units:.0} WCU (~{:.1} per event)",
        item_bytes as f64 / 4096.0,
        units / 100.0
    );
    assert_eq!(accepted, 100, "every event of the request was applied");
    assert!(item_bytes < 400 * 1024, "the lead is still storable");
    // Still storable after the request, and still taking events.
    match send(json!({"event_id": "after", "type": "page_view", "email": EMAIL, "properties": {"path": "/docs"}})).await {
        IngestStatus::Accepted { .. } => {}
        other => panic!("the lead stopped taking events: {other:?}"),
    }
    assert!(store.get(&lead_id).await.unwrap().is_some());
}
