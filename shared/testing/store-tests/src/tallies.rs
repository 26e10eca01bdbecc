//! Checks of the report counters a commit carries: they add up, under concurrency too, and match
//! what the stored leads say.

use crate::*;
use chrono::Duration;
use ember_scoring::{Lead, Time};
use ember_service::ports::{Store, Tally};
use serde_json::json;
use std::sync::Arc;

fn day(s: &str) -> chrono::NaiveDate {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("day")
}

fn tally(d: &str, key: &str, n: i64) -> Tally {
    Tally { day: day(d), key: key.into(), n }
}

/// Counters: increments of committed changes add up per (day, key) across leads, days and
/// months; a range read returns only its days; zero sums may be left out; a failed commit adds
/// nothing; erasure keeps the counts.
pub async fn tallies_add_up(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let mut c = commit(lead("ld-1"), None);
    c.events = vec![event("t-1", "ld-1", t(1))];
    c.tallies = vec![tally("2026-01-31", "R|lead|g|cpc", 1), tally("2026-02-01", "R|lead|g|cpc", 1), tally("2026-02-01", "E|welcome", 1)];
    s.commit(c).await.expect("create with counters");
    let mut c = commit(lead("ld-2"), None);
    c.tallies = vec![tally("2026-02-01", "R|lead|g|cpc", 2), tally("2026-03-15", "S|fit|3|g|cpc", 1)];
    s.commit(c).await.expect("another lead, same counter");
    let mut c = commit(lead("ld-2"), Some(1));
    c.tallies = vec![tally("2026-03-15", "S|fit|3|g|cpc", -1), tally("2026-03-15", "S|fit|4|g|cpc", 1)];
    s.commit(c).await.expect("a counter moves");

    // Failed commits add nothing.
    let mut c = commit(lead("ld-1"), Some(1));
    c.events = vec![event("t-1", "ld-1", t(1))];
    c.tallies = vec![tally("2026-02-01", "R|lead|g|cpc", 100)];
    expect_duplicate(s.commit(c).await, "t-1", "replayed event with counters");
    let mut c = commit(lead("ld-1"), Some(7));
    c.tallies = vec![tally("2026-02-01", "R|lead|g|cpc", 100)];
    expect_conflict(s.commit(c).await, "stale commit with counters");
    let mut c = commit(lead("ld-3"), None);
    c.claims = vec![claim(email("x@x.com"), None), claim(email("x@x.com"), Some("nobody"))];
    c.tallies = vec![tally("2026-02-01", "R|lead|g|cpc", 100)];
    assert!(s.commit(c).await.is_err(), "a commit with a failing claim fails");

    assert!(s.erase("ld-1").await.expect("erase"));
    let all = ember_service::ember_reports::facts::normalize(s.tallies(day("2026-01-01"), day("2026-12-31")).await.expect("tallies"));
    assert_eq!(
        all,
        vec![
            tally("2026-01-31", "R|lead|g|cpc", 1),
            tally("2026-02-01", "E|welcome", 1),
            tally("2026-02-01", "R|lead|g|cpc", 3),
            tally("2026-03-15", "S|fit|4|g|cpc", 1),
        ],
        "counters add up (and outlive erasure)"
    );
    let feb = ember_service::ember_reports::facts::normalize(s.tallies(day("2026-02-01"), day("2026-02-28")).await.expect("tallies"));
    assert_eq!(feb, vec![tally("2026-02-01", "E|welcome", 1), tally("2026-02-01", "R|lead|g|cpc", 3)], "only the range's days");
    assert!(s.tallies(day("2025-01-01"), day("2025-12-31")).await.expect("tallies").is_empty());
}

/// Concurrent commits of different leads adding to the same counters lose nothing.
pub async fn concurrent_tallies(store: Arc<dyn Store>) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.spawn(async move {
            let mut c = commit(lead(&format!("ld-{i}")), None);
            c.tallies = vec![tally("2026-02-01", "R|lead|g|cpc", 1), tally("2026-02-02", "R|mql|g|cpc", i)];
            store.commit(c).await.expect("commit");
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task");
    }
    let all = ember_service::ember_reports::facts::normalize(store.tallies(day("2026-02-01"), day("2026-02-02")).await.expect("tallies"));
    assert_eq!(all, vec![tally("2026-02-01", "R|lead|g|cpc", 8), tally("2026-02-02", "R|mql|g|cpc", 28)]);
}

/// A small model for [`reports_match_the_leads`].
const REPORT_MODEL: &str = r#"
name: reports
timezone: Europe/Paris
scores:
  engagement: { min: 0, max: 100 }
rules:
  - { id: form, on: form_submit, points: { engagement: 30 } }
  - { id: demo, on: demo_request, points: { engagement: 40 } }
stages:
  - { id: lead, when: { identified: true } }
  - { id: mql, when: { engagement: { gte: 50 } } }
  - { id: customer, when: { did: { on: purchase } } }
email:
  from: "Shop <hello@shop.example>"
templates:
  welcome: { subject: "Welcome", html: "<p>Hi</p>" }
campaigns:
  - id: welcome
    enter: { on: form_submit }
    steps:
      - send: welcome
      - wait: 2d
"#;

/// Reports from the store's counters equal reports from the leads' own facts, through
/// creation, stage changes, a campaign send with feedback, a merge and an erasure: every store
/// gives the same reports (they are a pure function of the counters).
pub async fn reports_match_the_leads(store: Arc<dyn Store>) {
    use ember_service::ember_reports::{self as reports, facts};
    let s = store.as_ref();
    let model = Arc::new(ember_scoring::Model::from_yaml_str(REPORT_MODEL, "reports.yaml").expect("model"));
    let engine = ember_scoring::Engine::new(model.clone());
    let ev = |id: &str, kind: &str, at: Time, extra: serde_json::Value| -> ember_scoring::Event {
        let mut raw = json!({"event_id": id, "type": kind, "occurred_at": at});
        if let (Some(o), serde_json::Value::Object(x)) = (raw.as_object_mut(), extra) {
            o.extend(x);
        }
        let raw: ember_scoring::RawEvent = serde_json::from_value(raw).expect("raw event");
        // Ember's own source: the counters below include email feedback (`email_delivered`).
        raw.validate_from(ember_scoring::event::Source::Ember, at + Duration::seconds(1), || unreachable!()).expect("valid event")
    };
    // Commits a change of `lead` from `before` (version `v`), with its counters.
    let save = |before: Option<(Lead, u64)>, after: Lead, retired: Option<(Lead, u64)>| {
        let tallies = reports::tallies(&model, before.as_ref().map(|b| &b.0), &after, retired.as_ref().map(|r| &r.0));
        let mut c = commit(after, before.map(|b| b.1));
        c.retire = retired.map(|(l, v)| (l.id, v));
        c.tallies = tallies;
        async move { s.commit(c).await.expect("commit") }
    };
    let day0 = t(0);
    let at = |d: i64| day0 + Duration::days(d);

    // A: a form (Google ads), then a demo request: lead and MQL; the welcome email is sent,
    // delivered and opened by a person, then by a scanner.
    let mut a = engine.new_lead("ld-a", at(1));
    engine.ingest(&mut a, &ev("a1", "form_submit", at(1), json!({"email": "a@x.com", "traits": {"email_opt_in": true}, "context": {"utm": {"source": "google", "medium": "cpc"}}})));
    let v = save(None, a.clone(), None).await;
    let mut a2 = a.clone();
    engine.ingest(&mut a2, &ev("a2", "demo_request", at(3), json!({"email": "a@x.com"})));
    let (intents, _) = engine.drip(&mut a2, at(3));
    assert_eq!(intents.len(), 1, "the welcome email is claimed");
    engine.send_done(&mut a2, &intents[0].send_id, &ember_scoring::SendOutcome::Sent { message_id: "m-1".into() }, at(3));
    engine.ingest(&mut a2, &ev("a3", "email_delivered", at(3), json!({"email": "a@x.com", "properties": {"campaign": "welcome", "step": 0}})));
    engine.ingest(&mut a2, &ev("a4", "email_open", at(4), json!({"email": "a@x.com", "properties": {"campaign": "welcome", "step": 0}})));
    engine.ingest(&mut a2, &ev("a5", "email_click", at(4), json!({"email": "a@x.com", "properties": {"campaign": "welcome", "step": 0, "machine": true}})));
    let v = save(Some((a, v)), a2.clone(), None).await;
    let a = a2;

    // B: an anonymous visitor, then identified in the next month by a newsletter link; C: an
    // anonymous profile merged into B.
    let mut b = engine.new_lead("ld-b", at(2));
    engine.ingest(&mut b, &ev("b1", "page_view", at(2), json!({"anonymous_id": "c-b"})));
    let bv = save(None, b.clone(), None).await;
    let mut c = engine.new_lead("ld-c", at(5));
    engine.ingest(&mut c, &ev("c1", "page_view", at(5), json!({"anonymous_id": "c-c"})));
    let cv = save(None, c.clone(), None).await;
    let mut b2 = b.clone();
    engine.ingest(&mut b2, &ev("b2", "form_submit", at(40), json!({"email": "b@x.com", "anonymous_id": "c-b", "context": {"utm": {"source": "newsletter", "medium": "email"}}})));
    engine.merge(&mut b2, c.clone(), at(41));
    engine.ingest(&mut b2, &ev("b3", "purchase", at(45), json!({"email": "b@x.com"})));
    save(Some((b, bv)), b2.clone(), Some((c, cv))).await;
    let b = b2;

    let period = |from: &str, to: &str| (day(from), day(to));
    let expected = facts::normalize([a.clone(), b.clone()].iter().flat_map(|l| facts::facts(&model, l)));
    assert!(expected.iter().any(|t| t.key.starts_with("L|welcome|0|opened")), "the person's open counts: {expected:?}");
    assert!(!expected.iter().any(|t| t.key.starts_with("L|welcome|0|clicked")), "the scanner's click does not");
    for (from, to) in [period("2026-01-01", "2026-12-31"), period("2026-01-01", "2026-01-31"), period("2026-02-01", "2026-02-28")] {
        let stored = facts::normalize(s.tallies(from, to).await.expect("tallies"));
        let want: Vec<Tally> = expected.iter().filter(|t| t.day >= from && t.day <= to).cloned().collect();
        assert_eq!(stored, want, "{from}..{to}: stored counters = the leads' facts");
        for by in [reports::By::Channel, reports::By::Cohort] {
            assert_eq!(reports::funnel(&model, &stored, from, to, by), reports::funnel(&model, &want, from, to, by));
        }
    }
    let stored = s.tallies(day("2026-01-01"), day("2026-12-31")).await.expect("tallies");
    let funnel = reports::funnel(&model, &stored, day("2026-01-01"), day("2026-12-31"), reports::By::Channel);
    let leads: Vec<i64> = funnel.total.stages.iter().map(|c| c.leads).collect();
    assert_eq!(leads, [2, 2, 1], "lead, mql (A, and B through its purchase), customer (B)");
    let camp = reports::campaigns(&model, &stored, day("2026-01-01"), day("2026-12-31"));
    let w = &camp.campaigns[0];
    assert_eq!((w.enrolled, w.sent, w.steps[0].delivered, w.steps[0].opened, w.steps[0].clicked), (2, 1, 1, 1, 0));

    // Erasure: the counts stay.
    assert!(s.erase("ld-a").await.expect("erase"));
    let _ = v;
    let after = facts::normalize(s.tallies(day("2026-01-01"), day("2026-12-31")).await.expect("tallies"));
    assert_eq!(after, expected, "an erased lead keeps counting");
}
