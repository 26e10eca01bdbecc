//! The shared services on the embedded store: concurrency, retries, merges, CRM feedback,
//! emails — the guarantees of SPEC §6, tested rather than assumed.

use ember::local::ScenarioHarness;
use ember::scenario::Harness;
use ember_scoring::Model;
use ember_testing::service::{example_model, raw, start};
use ember_service::ports::Identity;
use ember_service::{CrmFeedback, IngestStatus};
use serde_json::json;
use std::sync::Arc;

fn model(name: &str) -> Arc<Model> {
    example_model(name)
}

async fn harness(dir: &std::path::Path, m: &str) -> ScenarioHarness {
    ScenarioHarness::embedded(model(m), dir, start()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_events_on_one_lead_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let h = Arc::new(harness(dir.path(), "b2b-saas.yaml").await);
    // 40 webinar registrations (10 points each, no cap) for one lead, 8 at a time.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            h.ember().ingest.event(&raw(json!({"event_id": format!("w{i}"), "type": "webinar_registered", "email": "ada@x.example"}))).await
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap().is_accepted());
    }
    let lead = h.ember().lead_by(&Identity::Email("ada@x.example".into())).await.unwrap().unwrap();
    assert_eq!(lead.scores["engagement"], 400);
    assert_eq!(lead.event_count, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retried_events_count_once_even_in_parallel() {
    let dir = tempfile::tempdir().unwrap();
    let h = Arc::new(harness(dir.path(), "b2b-saas.yaml").await);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            h.ember().ingest.event(&raw(json!({"event_id": "same", "type": "demo_request", "email": "bo@x.example"}))).await
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        match t.await.unwrap() {
            IngestStatus::Accepted { .. } => accepted += 1,
            IngestStatus::Duplicate { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(accepted, 1);
    let lead = h.ember().lead_by(&Identity::Email("bo@x.example".into())).await.unwrap().unwrap();
    assert_eq!(lead.scores["engagement"], 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_history_merges_into_the_lead_without_double_counting() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path(), "b2b-saas.yaml").await;
    let e = h.ember();
    // Known lead: a blog visit today (10, capped at 10 a day).
    e.ingest.event(&raw(json!({"event_id": "k1", "type": "page_view", "email": "zoe@acme.example", "properties": {"path": "/blog/a"}}))).await;
    // The same person browsing anonymously: another blog visit today (capped) and the pricing page.
    for (id, path) in [("a1", "/blog/b"), ("a2", "/pricing")] {
        let s = e.ingest.event(&raw(json!({"event_id": id, "type": "page_view", "anonymous_id": "cookie-9", "properties": {"path": path},
            "context": {"utm": {"source": "google", "medium": "cpc"}}}))).await;
        assert!(s.is_accepted());
    }
    let anon = e.lead_by(&Identity::Anonymous("cookie-9".into())).await.unwrap().unwrap();
    assert_eq!(anon.stage, "visitor");
    assert_eq!(anon.scores["engagement"], 20);
    // A form fill carries both identities: the anonymous profile merges into the known lead.
    e.ingest.event(&raw(json!({"event_id": "f1", "type": "form_submit", "email": "zoe@acme.example", "anonymous_id": "cookie-9",
        "properties": {"form_id": "contact-us"}}))).await;
    let lead = e.lead_by(&Identity::Email("zoe@acme.example".into())).await.unwrap().unwrap();
    assert_eq!(lead.scores["engagement"], 20, "blog 10 (one per day, not two) + pricing 10");
    assert_eq!(lead.first_touch.as_ref().and_then(|t| t.source.as_deref()), Some("google"));
    assert!(lead.merged_from.contains(&anon.id));
    assert_eq!(e.lead_by(&Identity::Anonymous("cookie-9".into())).await.unwrap().unwrap().id, lead.id, "the cookie now points at the lead");
    assert!(e.lead(&anon.id).await.unwrap().is_none(), "the anonymous profile is gone, not duplicated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_feedback_recycles_and_requalifies() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path(), "b2b-saas.yaml").await;
    let e = h.ember();
    let email = "max@bigbank.example";
    e.ingest.event(&raw(json!({"event_id": "d1", "type": "demo_request", "email": email, "traits": {"job_title": "CTO"}}))).await;
    let lead = e.lead_by(&Identity::Email(email.into())).await.unwrap().unwrap();
    assert_eq!(lead.stage, "sql");
    let fb = |action: &str| CrmFeedback { lead_id: None, email: Some(email.into()), action: action.into(), amount: None, reason: None };
    let lead = e.feedback.crm(&fb("recycled")).await.unwrap();
    assert_eq!(lead.stage, "lead", "recycled back to marketing");
    assert_eq!(lead.scores["engagement"], 0, "engagement reset");
    assert_eq!(lead.crm.recycled, 1);
    let lead = e.feedback.crm(&fb("opportunity")).await.unwrap();
    assert_eq!(lead.stage, "opportunity");
    let won = CrmFeedback { amount: Some(12_000.0), ..fb("won") };
    let lead = e.feedback.crm(&won).await.unwrap();
    assert_eq!(lead.stage, "customer");
    assert_eq!(lead.crm.won_amount, Some(12_000.0));
    let err = e.feedback.crm(&fb("promoted")).await.unwrap_err();
    assert!(err.to_string().contains("unknown CRM action `promoted`"));
    let hooks: Vec<String> = h.webhooks().await.unwrap().into_iter().map(|(_, k)| k).collect();
    assert_eq!(hooks, ["lead.qualified", "lead.recycled"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_drip_runs_send_each_step_once() {
    let dir = tempfile::tempdir().unwrap();
    let h = Arc::new(harness(dir.path(), "kitchen-shop.yaml").await);
    for i in 0..20 {
        h.ember()
            .ingest.event(&raw(json!({"event_id": format!("p{i}"), "type": "purchase", "email": format!("c{i}@x.example"),
                "properties": {"category": "saucepan"}, "traits": {"email_opt_in": true}})))
            .await;
    }
    let now = start() + chrono::Duration::minutes(10);
    h.clock().set(now);
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let h = h.clone();
            tokio::spawn(async move { h.ember().jobs.tick(now, &|| true).await })
        })
        .collect();
    for r in runs {
        r.await.unwrap();
    }
    let sent = h.emails().await.unwrap();
    assert_eq!(sent.len(), 20, "one pan-offer per customer, whatever the overlap: {sent:?}");
    // A run later sends nothing more.
    h.ember().jobs.tick(now + chrono::Duration::minutes(1), &|| true).await;
    assert_eq!(h.emails().await.unwrap().len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_run_leaves_the_rest_for_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path(), "kitchen-shop.yaml").await;
    for i in 0..30 {
        h.ember()
            .ingest.event(&raw(json!({"event_id": format!("p{i}"), "type": "purchase", "email": format!("c{i}@x.example"),
                "properties": {"category": "saucepan"}, "traits": {"email_opt_in": true}})))
            .await;
    }
    let now = start() + chrono::Duration::minutes(10);
    let budget = std::sync::atomic::AtomicUsize::new(0);
    let report = h.ember().jobs.run_kind(ember_service::ports::DueKind::Drip, now, &|| budget.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 10).await;
    assert!(report.incomplete);
    let first = h.emails().await.unwrap().len();
    assert!(first > 0 && first < 30, "{first}");
    let report = h.ember().jobs.run_kind(ember_service::ports::DueKind::Drip, now, &|| true).await;
    assert!(!report.incomplete);
    assert_eq!(h.emails().await.unwrap().len(), 30, "nothing lost, nothing doubled");
}

/// Two processes (two Lambda containers) on one store: the first remembers which lead a
/// cookie belonged to; the second merges that anonymous profile into a known lead. The first
/// one's next event for the cookie must go to the surviving lead, not resurrect the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_identity_hint_in_another_process_follows_the_merge() {
    let dir = tempfile::tempdir().unwrap();
    let a = harness(dir.path(), "b2b-saas.yaml").await;
    let b = harness(dir.path(), "b2b-saas.yaml").await;
    let pricing = |id: &str| raw(json!({"event_id": id, "type": "page_view", "anonymous_id": "cookie-1", "properties": {"path": "/pricing"}}));
    let IngestStatus::Accepted { lead_id: anonymous, .. } = a.ember().ingest.event(&pricing("p1")).await else { panic!() };
    let known = b.ember().ingest.event(&raw(json!({"event_id": "k1", "type": "demo_request", "email": "mia@acme.example"}))).await;
    let IngestStatus::Accepted { lead_id: known, .. } = known else { panic!("{known:?}") };
    let merged = b
        .ember()
        .ingest.event(&raw(json!({"event_id": "f1", "type": "form_submit", "email": "mia@acme.example", "anonymous_id": "cookie-1"})))
        .await;
    assert_eq!(merged, IngestStatus::Accepted { event_id: "f1".into(), lead_id: known.clone() });
    assert!(a.ember().lead(&anonymous).await.unwrap().is_none(), "the anonymous profile was merged away");

    // Process A still has the hint cookie-1 → the anonymous lead.
    let next = a.ember().ingest.event(&raw(json!({"event_id": "p2", "type": "page_view", "anonymous_id": "cookie-1", "properties": {"path": "/blog/x"}}))).await;
    assert_eq!(next, IngestStatus::Accepted { event_id: "p2".into(), lead_id: known.clone() });
    let lead = a.ember().lead(&known).await.unwrap().unwrap();
    assert_eq!(lead.event_count, 4, "demo request, merged pricing view, form, blog view");
    assert!(a.ember().lead(&anonymous).await.unwrap().is_none(), "nothing resurrected");
}

/// A write key may not send a bounce or a complaint (SPEC §3), but SES feedback — Ember's own
/// path — still suppresses the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_feedback_still_suppresses_when_clients_may_not() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path(), "b2b-saas.yaml").await;
    let e = h.ember();
    assert!(e.ingest.event(&raw(json!({"event_id": "n1", "type": "newsletter_subscribe", "email": "zoe@acme.example"}))).await.is_accepted());
    for kind in ["email_bounced", "email_complaint"] {
        let forged = raw(json!({"event_id": format!("forged-{kind}"), "type": kind, "email": "zoe@acme.example", "properties": {"bounce_type": "Permanent"}}));
        let IngestStatus::Rejected { reason, .. } = e.ingest.event(&forged).await else { panic!("{kind} accepted from a client") };
        assert!(reason.contains("recorded only by Ember itself"), "{reason}");
    }
    let lead = e.lead_by(&Identity::Email("zoe@acme.example".into())).await.unwrap().unwrap();
    assert!(lead.consent.subscribed(), "{:?}", lead.consent);
    let bounce = raw(json!({"event_id": "ses:b1", "type": "email_bounced", "email": "zoe@acme.example", "properties": {"bounce_type": "Permanent"}}));
    assert!(matches!(e.feedback.email(&bounce).await.unwrap(), Some(IngestStatus::Accepted { .. })));
    let complaint = raw(json!({"event_id": "ses:c1", "type": "email_complaint", "email": "zoe@acme.example"}));
    assert!(matches!(e.feedback.email(&complaint).await.unwrap(), Some(IngestStatus::Accepted { .. })));
    let lead = e.lead_by(&Identity::Email("zoe@acme.example".into())).await.unwrap().unwrap();
    assert!(lead.consent.bounced_at.is_some() && lead.consent.complained_at.is_some(), "{:?}", lead.consent);
    assert!(!lead.consent.subscribed());
}
