//! Helpers for the checks (public so implementation-specific tests can reuse them): times,
//! leads, events, commits and claims built without a scoring model.

use chrono::{DateTime, Duration};
use ember_scoring::{Due, Lead, Time};
use ember_service::ports::{Claim, Commit, DueKind, Identity, Store, StoreError, StoredEvent};
use serde_json::json;

/// `2026-01-01T00:00:00Z` plus `secs` seconds.
pub fn t(secs: i64) -> Time {
    DateTime::from_timestamp(1_767_225_600, 0).expect("base time") + Duration::seconds(secs)
}

/// A minimal anonymous lead (stage `visitor`, no scores) with id `id`.
pub fn lead(id: &str) -> Lead {
    serde_json::from_value(json!({
        "id": id,
        "scores": {},
        "stage": "visitor",
        "created_at": t(0),
        "updated_at": t(0),
    }))
    .expect("minimal lead")
}

/// A lead with most fields set, to check that bodies round-trip.
pub fn rich_lead(id: &str) -> Lead {
    serde_json::from_value(json!({
        "id": id,
        "email": "ada@example.com",
        "anonymous_ids": ["cookie-1", "cookie-2"],
        "crm_id": "crm-42",
        "traits": {"first_name": "Ada", "company_size": 250, "nested": {"a": [1, 2, 3]}},
        "scores": {"engagement": 35, "fit": -5},
        "earned": {"engagement": 35},
        "profile": {"fit": -5},
        "profile_rules": ["small_company"],
        "tags": ["pricing", "ünïcödé"],
        "stage": "mql",
        "stage_history": [{"stage": "lead", "at": t(1)}, {"stage": "mql", "at": t(2), "by": "rules"}],
        "temperature": "warm",
        "consent": {"opted_in_at": t(1)},
        "created_at": t(0),
        "last_activity_at": t(2),
        "updated_at": t(3),
        "decay_applied": {"0": 2},
        "crm": {"recycled": 1, "won_amount": 1234.5},
        "merged_from": ["anon-old"],
        "event_count": 7,
    }))
    .expect("rich lead")
}

/// A stored event `id` for `lead_id` at `at`, with a couple of changes.
pub fn event(id: &str, lead_id: &str, at: Time) -> StoredEvent {
    serde_json::from_value(json!({
        "event": {"id": id, "type": "page_view", "at": at, "anonymous_id": "cookie-1",
                  "properties": {"url": "https://example.com/pricing"}},
        "lead_id": lead_id,
        "changes": [
            {"kind": "points", "source": "pricing_page", "group": "engagement", "asked": 10, "given": 10},
            {"kind": "tagged", "tag": "pricing"},
        ],
        "received_at": at + Duration::seconds(1),
    }))
    .expect("stored event")
}

/// A commit of `lead` expecting `expected_version`, with nothing else.
pub fn commit(lead: Lead, expected_version: Option<u64>) -> Commit {
    Commit { lead, expected_version, due: Due::default(), events: vec![], claims: vec![], retire: None, release: None, tallies: vec![] }
}

/// A claim.
pub fn claim(identity: Identity, expected_owner: Option<&str>) -> Claim {
    Claim { identity, expected_owner: expected_owner.map(str::to_string) }
}

/// `Identity::Email`.
pub fn email(e: &str) -> Identity {
    Identity::Email(e.to_string())
}

/// `Identity::Anonymous`.
pub fn anon(a: &str) -> Identity {
    Identity::Anonymous(a.to_string())
}

/// Creates `lead` (expected: absent), panicking unless the store answers version 1.
pub async fn create(store: &dyn Store, lead: Lead) {
    let id = lead.id.clone();
    let v = store.commit(commit(lead, None)).await.unwrap_or_else(|e| panic!("creating {id}: {e}"));
    assert_eq!(v, 1, "a new lead starts at version 1");
}

/// Current version of a lead that must exist.
pub async fn version(store: &dyn Store, id: &str) -> u64 {
    store.get(id).await.expect("get").unwrap_or_else(|| panic!("lead {id} should exist")).version
}

#[track_caller]
pub(crate) fn expect_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    match r {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

#[track_caller]
pub(crate) fn expect_duplicate<T: std::fmt::Debug>(r: Result<T, StoreError>, id: &str, what: &str) {
    match r {
        Err(StoreError::Duplicate(got)) => assert_eq!(got, id, "{what}: Duplicate should name the event id"),
        other => panic!("{what}: expected Duplicate({id}), got {other:?}"),
    }
}

/// Every page of a due query at `now`, with `limit` per page; checks page invariants.
/// Returns (items, total entries read, pages).
pub async fn all_due(store: &dyn Store, kind: DueKind, now: Time, limit: usize) -> (Vec<(String, Time)>, u64, u64) {
    let mut items = Vec::new();
    let mut cursor = None;
    let (mut read, mut pages) = (0, 0);
    loop {
        let page = store.due(kind, now, cursor.take(), limit).await.expect("due");
        pages += 1;
        assert!(page.items.len() <= limit, "{kind:?}: page of {} for limit {limit}", page.items.len());
        assert!(page.read >= page.items.len() as u64, "{kind:?}: read {} < items {}", page.read, page.items.len());
        read += page.read;
        items.extend(page.items);
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 1000, "{kind:?}: due pagination does not end");
    }
    (items, read, pages)
}

pub(crate) fn ids(items: &[(String, Time)]) -> Vec<&str> {
    items.iter().map(|(id, _)| id.as_str()).collect()
}

// ---------------------------------------------------------------------------------------------
// Checks.
