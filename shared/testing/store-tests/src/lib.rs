//! Conformance suite for [`ember_service::ports::Store`]: written once against `Arc<dyn Store>`,
//! run by every implementation (the embedded SQLite store, the DynamoDB store) so they behave
//! the same.
//!
//! Each check is a `pub async fn(Arc<dyn Store>)` that expects a *fresh, empty* store and panics
//! on failure. Three ways to run them:
//!
//! - [`conformance_tests!`]: one `#[tokio::test]` per check (the crate using it needs `tokio`
//!   with `macros` and `rt-multi-thread`):
//!
//!   ```text
//!   async fn fresh() -> (Arc<dyn Store>, tempfile::TempDir) { /* a new, empty store */ }
//!   ember_store_tests::conformance_tests!(fresh);
//!   ```
//!
//!   The second element of the pair is kept alive until the check ends (a temp dir, a table to
//!   drop…); use `()` when there is nothing to keep.
//! - [`run_all`]: every check in sequence, each on a store from `make` (e.g. from a CLI command
//!   checking a real DynamoDB endpoint).
//! - [`CHECKS`]: the list itself, to pick from.
//!
//! Checks use whole-second times (stores index due times in milliseconds) and build leads from
//! JSON, so they need no scoring model.

use chrono::{DateTime, Duration};
use ember_scoring::{Due, Lead, Time};
use ember_service::ports::{Claim, Commit, DueKind, Identity, Store, StoreError, StoredEvent, Tally};
use serde_json::json;
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

mod release;
pub use release::{release_moves_an_identity_atomically, release_must_match_a_claim, release_of_a_stale_owner_conflicts};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One conformance check.
#[derive(Clone, Copy)]
pub struct Check {
    /// The check's function name.
    pub name: &'static str,
    /// Runs it on a fresh, empty store (panics on failure).
    pub run: fn(Arc<dyn Store>) -> BoxFuture<'static, ()>,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check").field("name", &self.name).finish()
    }
}

fn boxed<F: Future<Output = ()> + Send + 'static>(f: F) -> BoxFuture<'static, ()> {
    Box::pin(f)
}

/// Defines [`CHECKS`] and [`conformance_tests!`] from one list, so they can't drift apart.
/// (`$d` is a literal `$`, for the inner macro's own variables.)
macro_rules! define_checks {
    ($d:tt $($name:ident),* $(,)?) => {
        /// Every check, in the order [`run_all`] runs them.
        pub const CHECKS: &[Check] = &[$(Check { name: stringify!($name), run: |s| boxed($name(s)) }),*];

        /// Generates one `#[tokio::test]` per conformance check. `$fresh` is an async fn (or a
        /// closure returning a future) giving `(Arc<dyn Store>, guard)` for a new, empty store;
        /// the guard lives until the check ends. Needs `tokio` (`macros`, `rt-multi-thread`).
        /// Attributes after the factory go on every test, e.g.
        /// `conformance_tests!(fresh, #[ignore = "needs a server"]);`.
        #[macro_export]
        macro_rules! conformance_tests {
            ($d fresh:expr $d(, $d(#[$d attr:meta])*)?) => {
                $(
                    #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    $d($d(#[$d attr])*)?
                    async fn $name() {
                        let (store, _guard) = ($d fresh)().await;
                        $d crate::$name(store).await;
                    }
                )*
            };
        }
    };
}

define_checks!($
    empty_store,
    create_then_conflicting_create,
    stale_update_conflicts,
    commit_is_atomic,
    claims,
    merge_retires_and_repoints,
    duplicate_event_ids,
    due_queries,
    due_reads_only_what_is_due,
    due_before_1970,
    events_oldest_first,
    erase,
    erase_covers_merged_profiles,
    erase_races_ingest,
    scan_pagination,
    concurrent_increments,
    concurrent_lead_only_increments,
    concurrent_claims,
    tallies_add_up,
    concurrent_tallies,
    reports_match_the_leads,
    release_moves_an_identity_atomically,
    release_of_a_stale_owner_conflicts,
    release_must_match_a_claim,
);

/// Runs every check in [`CHECKS`], each on a fresh store from `make`; the guard returned with
/// each store is dropped after its check. Panics (naming the check) on the first failure.
pub async fn run_all<F, Fut, G>(mut make: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = (Arc<dyn Store>, G)>,
{
    for check in CHECKS {
        let (store, guard) = make().await;
        eprintln!("store conformance: {}", check.name);
        (check.run)(store).await;
        drop(guard);
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers (public so implementation-specific tests can reuse them).

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
fn expect_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    match r {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

#[track_caller]
fn expect_duplicate<T: std::fmt::Debug>(r: Result<T, StoreError>, id: &str, what: &str) {
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

fn ids(items: &[(String, Time)]) -> Vec<&str> {
    items.iter().map(|(id, _)| id.as_str()).collect()
}

// ---------------------------------------------------------------------------------------------
// Checks.

/// An empty store answers "nothing" everywhere.
pub async fn empty_store(store: Arc<dyn Store>) {
    let s = store.as_ref();
    assert!(s.get("nope").await.expect("get").is_none());
    assert!(s.lookup(&email("a@b.c")).await.expect("lookup").is_none());
    assert!(!s.seen("ev-1").await.expect("seen"));
    assert!(s.events("nope").await.expect("events").is_empty());
    assert!(!s.erase("nope").await.expect("erase"));
    let (leads, cursor) = s.scan(None, 10).await.expect("scan");
    assert!(leads.is_empty() && cursor.is_none());
    for kind in DueKind::ALL {
        let page = s.due(kind, t(1_000_000), None, 10).await.expect("due");
        assert!(page.items.is_empty() && page.cursor.is_none(), "{kind:?}");
    }
}

/// Creating a lead twice: the second create conflicts and changes nothing; bodies round-trip.
pub async fn create_then_conflicting_create(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let original = rich_lead("ld-1");
    assert_eq!(s.commit(commit(original.clone(), None)).await.expect("create"), 1);
    let rec = s.get("ld-1").await.expect("get").expect("created lead");
    assert_eq!(rec.version, 1);
    assert_eq!(rec.lead, original, "the lead must round-trip exactly");

    let mut other = lead("ld-1");
    other.stage = "customer".into();
    expect_conflict(s.commit(commit(other, None)).await, "second create of the same id");
    let rec = s.get("ld-1").await.expect("get").expect("lead");
    assert_eq!((rec.version, &rec.lead), (1, &original), "a conflicting create must change nothing");
}

/// Updates need the current version; stale or invented versions conflict.
pub async fn stale_update_conflicts(store: Arc<dyn Store>) {
    let s = store.as_ref();
    create(s, lead("ld-1")).await;
    let mut l = lead("ld-1");
    l.event_count = 1;
    assert_eq!(s.commit(commit(l.clone(), Some(1))).await.expect("update"), 2);

    let mut stale = lead("ld-1");
    stale.event_count = 100;
    expect_conflict(s.commit(commit(stale.clone(), Some(1))).await, "update at a stale version");
    expect_conflict(s.commit(commit(stale.clone(), Some(3))).await, "update at a future version");
    let rec = s.get("ld-1").await.expect("get").expect("lead");
    assert_eq!((rec.version, rec.lead.event_count), (2, 1), "failed updates must change nothing");

    expect_conflict(s.commit(commit(lead("ghost"), Some(1))).await, "update of a lead that does not exist");
    assert!(s.get("ghost").await.expect("get").is_none(), "a failed update must not create the lead");

    l.event_count = 2;
    assert_eq!(s.commit(commit(l, Some(2))).await.expect("update"), 3, "versions go up by one");
}

/// A failing commit writes nothing: not the lead, not the events before the failure, not the
/// claims, not the due times, not the retirement.
pub async fn commit_is_atomic(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let mut c = commit(lead("ld-a"), None);
    c.events = vec![event("e1", "ld-a", t(1))];
    c.claims = vec![claim(email("a@x.com"), None)];
    c.due.decay = Some(t(10));
    assert_eq!(s.commit(c).await.expect("create"), 1);

    // A duplicate event id after a new one.
    let mut changed = lead("ld-a");
    changed.event_count = 99;
    let mut c = commit(changed.clone(), Some(1));
    c.events = vec![event("e2", "ld-a", t(2)), event("e1", "ld-a", t(1))];
    c.claims = vec![claim(anon("x"), None)];
    c.due = Due { decay: None, drip: Some(t(1)), sla: Some(t(1)) };
    expect_duplicate(s.commit(c).await, "e1", "commit with a recorded event id");
    let rec = s.get("ld-a").await.expect("get").expect("lead");
    assert_eq!((rec.version, rec.lead.event_count), (1, 0), "the lead update must roll back");
    assert!(!s.seen("e2").await.expect("seen"), "the new event must roll back");
    assert!(s.lookup(&anon("x")).await.expect("lookup").is_none(), "the claim must roll back");
    assert_eq!(ids(&all_due(s, DueKind::Decay, t(20), 10).await.0), ["ld-a"], "due times must roll back");
    assert!(all_due(s, DueKind::Drip, t(20), 10).await.0.is_empty(), "due times must roll back");
    assert!(all_due(s, DueKind::Sla, t(20), 10).await.0.is_empty(), "due times must roll back");

    // The same id twice in one commit.
    let mut c = commit(changed.clone(), Some(1));
    c.events = vec![event("e4", "ld-a", t(4)), event("e4", "ld-a", t(4))];
    expect_duplicate(s.commit(c).await, "e4", "commit with the same event id twice");
    assert!(!s.seen("e4").await.expect("seen"));

    // A claim conflict after new events and a good claim.
    let mut c = commit(changed.clone(), Some(1));
    c.events = vec![event("e3", "ld-a", t(3))];
    c.claims = vec![claim(email("b@x.com"), None), claim(email("a@x.com"), None)];
    expect_conflict(s.commit(c).await, "commit whose second claim fails");
    assert!(!s.seen("e3").await.expect("seen"), "events must roll back on a claim conflict");
    assert!(s.lookup(&email("b@x.com")).await.expect("lookup").is_none(), "earlier claims must roll back");
    assert_eq!(version(s, "ld-a").await, 1);

    // A good retirement with a failing claim.
    create(s, lead("ld-p")).await;
    let mut c = commit(changed.clone(), Some(1));
    c.retire = Some(("ld-p".into(), 1));
    c.claims = vec![claim(email("a@x.com"), None)];
    expect_conflict(s.commit(c).await, "merge whose claim fails");
    assert_eq!(version(s, "ld-p").await, 1, "the retired lead must survive a failed merge");

    // A duplicate event on a create: the lead is not created.
    let mut c = commit(lead("ld-b"), None);
    c.events = vec![event("e1", "ld-b", t(5))];
    c.claims = vec![claim(email("new@x.com"), None)];
    expect_duplicate(s.commit(c).await, "e1", "create with a recorded event id");
    assert!(s.get("ld-b").await.expect("get").is_none(), "the lead must not be created");
    assert!(s.lookup(&email("new@x.com")).await.expect("lookup").is_none());

    // And the store is still usable.
    let mut c = commit(changed, Some(1));
    c.events = vec![event("e2", "ld-a", t(2))];
    assert_eq!(s.commit(c).await.expect("good commit"), 2);
}

/// Identity claims: absent, re-pointed with the right expected owner, refused otherwise.
pub async fn claims(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let mut c = commit(lead("ld-a"), None);
    c.claims = vec![claim(email("a@x.com"), None)];
    s.commit(c).await.expect("create A claiming a@x.com");
    assert_eq!(s.lookup(&email("a@x.com")).await.expect("lookup").as_deref(), Some("ld-a"));
    assert!(s.lookup(&anon("a@x.com")).await.expect("lookup").is_none(), "kinds are separate key spaces");

    let mut c = commit(lead("ld-b"), None);
    c.claims = vec![claim(email("a@x.com"), None)];
    expect_conflict(s.commit(c).await, "claiming an owned identity as absent");
    assert!(s.get("ld-b").await.expect("get").is_none(), "the create must roll back");

    let mut c = commit(lead("ld-b"), None);
    c.claims = vec![claim(anon("cookie-b"), None)];
    s.commit(c).await.expect("create B claiming cookie-b");

    // Re-point with the right expected owner.
    let mut c = commit(lead("ld-a"), Some(1));
    c.claims = vec![claim(anon("cookie-b"), Some("ld-b"))];
    assert_eq!(s.commit(c).await.expect("re-point cookie-b to A"), 2);
    assert_eq!(s.lookup(&anon("cookie-b")).await.expect("lookup").as_deref(), Some("ld-a"));

    // Wrong owner.
    let mut c = commit(lead("ld-b"), Some(1));
    c.claims = vec![claim(email("a@x.com"), Some("ld-b"))];
    expect_conflict(s.commit(c).await, "claim with the wrong expected owner");
    assert_eq!(s.lookup(&email("a@x.com")).await.expect("lookup").as_deref(), Some("ld-a"));
    assert_eq!(version(s, "ld-b").await, 1);

    // Absent, but an owner was expected.
    let mut c = commit(lead("ld-a"), Some(2));
    c.claims = vec![claim(anon("nobody"), Some("ld-a"))];
    expect_conflict(s.commit(c).await, "claim expecting an owner for an absent identity");
    assert!(s.lookup(&anon("nobody")).await.expect("lookup").is_none());

    // Already ours: expecting ourselves is fine, expecting absence is not.
    let mut c = commit(lead("ld-a"), Some(2));
    c.claims = vec![claim(email("a@x.com"), Some("ld-a"))];
    assert_eq!(s.commit(c).await.expect("re-claim own identity"), 3);
    let mut c = commit(lead("ld-a"), Some(3));
    c.claims = vec![claim(email("a@x.com"), None)];
    expect_conflict(s.commit(c).await, "claiming an own identity as absent");
    assert_eq!(s.lookup(&email("a@x.com")).await.expect("lookup").as_deref(), Some("ld-a"));
}

/// A merge retires the anonymous profile and moves all its identities to the survivor, at once.
pub async fn merge_retires_and_repoints(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let mut c = commit(lead("anon-p"), None);
    c.claims = vec![claim(anon("p1"), None), claim(anon("p2"), None)];
    c.events = vec![event("p-e1", "anon-p", t(1))];
    c.due = Due { decay: Some(t(5)), drip: Some(t(5)), sla: Some(t(5)) };
    s.commit(c).await.expect("create the anonymous profile");
    let mut l = lead("lead-l");
    l.email = Some("l@x.com".into());
    let mut c = commit(l.clone(), None);
    c.claims = vec![claim(email("l@x.com"), None)];
    s.commit(c).await.expect("create the known lead");

    // Wrong version of the retired lead.
    let mut c = commit(l.clone(), Some(1));
    c.claims = vec![claim(anon("p1"), Some("anon-p"))];
    c.retire = Some(("anon-p".into(), 7));
    expect_conflict(s.commit(c).await, "retiring at the wrong version");
    assert_eq!(version(s, "anon-p").await, 1);
    assert_eq!(s.lookup(&anon("p1")).await.expect("lookup").as_deref(), Some("anon-p"));
    assert_eq!(version(s, "lead-l").await, 1);

    // Retiring a lead that does not exist.
    let mut c = commit(l.clone(), Some(1));
    c.retire = Some(("ghost".into(), 1));
    expect_conflict(s.commit(c).await, "retiring a lead that does not exist");
    assert_eq!(version(s, "lead-l").await, 1);

    // The merge: p1 claimed explicitly, p2 left for the store to re-point.
    l.merged_from = vec!["anon-p".into()];
    l.event_count = 2;
    let mut c = commit(l.clone(), Some(1));
    c.claims = vec![claim(anon("p1"), Some("anon-p"))];
    c.retire = Some(("anon-p".into(), 1));
    c.events = vec![event("l-e1", "lead-l", t(2))];
    assert_eq!(s.commit(c).await.expect("merge"), 2);
    assert!(s.get("anon-p").await.expect("get").is_none(), "the retired lead is gone");
    for id in [anon("p1"), anon("p2"), email("l@x.com")] {
        assert_eq!(s.lookup(&id).await.expect("lookup").as_deref(), Some("lead-l"), "{id:?} follows the survivor");
    }
    assert_eq!(s.get("lead-l").await.expect("get").expect("survivor").lead, l);
    for kind in DueKind::ALL {
        assert!(all_due(s, kind, t(100), 10).await.0.is_empty(), "{kind:?}: the retired lead is no longer due");
    }
    // The retired profile's history is not lost: it stays under its id (the survivor's
    // `merged_from` says where to find it).
    let history: Vec<String> = s.events("anon-p").await.expect("events").into_iter().map(|e| e.event.id).collect();
    assert_eq!(history, ["p-e1"]);
    assert!(s.seen("p-e1").await.expect("seen"));
}

/// Event ids are recorded once; a second commit with a known id is a `Duplicate`.
pub async fn duplicate_event_ids(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let mut c = commit(lead("ld-1"), None);
    c.events = vec![event("ev-1", "ld-1", t(1))];
    s.commit(c).await.expect("create with ev-1");
    assert!(s.seen("ev-1").await.expect("seen"));
    assert!(!s.seen("ev-2").await.expect("seen"));
    assert!(!s.seen("EV-1").await.expect("seen"), "event ids are case-sensitive");

    let mut c = commit(lead("ld-1"), Some(1));
    c.events = vec![event("ev-1", "ld-1", t(1))];
    expect_duplicate(s.commit(c).await, "ev-1", "replayed event on the same lead");

    create(s, lead("ld-2")).await;
    let mut c = commit(lead("ld-2"), Some(1));
    c.events = vec![event("ev-1", "ld-2", t(1))];
    expect_duplicate(s.commit(c).await, "ev-1", "replayed event on another lead");
    assert_eq!(version(s, "ld-2").await, 1);

    let mut c = commit(lead("ld-1"), Some(1));
    c.events = vec![event("ev-2", "ld-1", t(2)), event("sys:decay:ld-1:1", "ld-1", t(3))];
    assert_eq!(s.commit(c).await.expect("new ids"), 2);
    assert!(s.seen("sys:decay:ld-1:1").await.expect("seen"));
    assert_eq!(s.events("ld-1").await.expect("events").len(), 3);
}

/// Due queries, for each kind: exactly the leads due at `now` (inclusive), oldest due first
/// (ties by lead id), paginated; clearing or moving a due time takes the lead out.
pub async fn due_queries(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let leads: [(&str, Due); 7] = [
        ("d1", Due { decay: Some(t(10)), drip: Some(t(40)), sla: None }),
        ("d2", Due { decay: Some(t(5)), drip: None, sla: Some(t(50)) }),
        ("d3", Due { decay: Some(t(5)), drip: Some(t(30)), sla: Some(t(51)) }),
        ("d4", Due { decay: Some(t(100)), drip: Some(t(50)), sla: Some(t(1)) }),
        ("d5", Due::default()),
        ("d0", Due { decay: Some(t(50)), drip: None, sla: None }),
        ("d6", Due { decay: Some(t(-3600)), drip: Some(t(49)), sla: None }),
    ];
    for (id, due) in leads {
        let mut c = commit(lead(id), None);
        c.due = due;
        s.commit(c).await.expect("create");
    }
    let expected: [(DueKind, Vec<(&str, Time)>); 3] = [
        (DueKind::Decay, vec![("d6", t(-3600)), ("d2", t(5)), ("d3", t(5)), ("d1", t(10)), ("d0", t(50))]),
        (DueKind::Drip, vec![("d3", t(30)), ("d1", t(40)), ("d6", t(49)), ("d4", t(50))]),
        (DueKind::Sla, vec![("d4", t(1)), ("d2", t(50))]),
    ];
    for (kind, want) in &expected {
        let want: Vec<(String, Time)> = want.iter().map(|(id, at)| (id.to_string(), *at)).collect();
        for limit in [1, 2, 3, 100] {
            let (got, read, pages) = all_due(s, *kind, t(50), limit).await;
            assert_eq!(got, want, "{kind:?} due at t(50), limit {limit}");
            assert!(
                read <= want.len() as u64 + pages,
                "{kind:?}: read {read} entries for {} due leads in {pages} pages",
                want.len()
            );
        }
        let (early, _, _) = all_due(s, *kind, t(-7200), 10).await;
        assert!(early.is_empty(), "{kind:?}: nothing is due before the earliest due time");
    }

    // Clearing a due time removes the lead from that index only.
    let mut c = commit(lead("d2"), Some(1));
    c.due = Due { decay: None, drip: None, sla: Some(t(50)) };
    s.commit(c).await.expect("clear d2 decay");
    // Moving one later takes it out until then.
    let mut c = commit(lead("d1"), Some(1));
    c.due = Due { decay: Some(t(60)), drip: Some(t(40)), sla: None };
    s.commit(c).await.expect("move d1 decay");
    let (got, _, _) = all_due(s, DueKind::Decay, t(50), 2).await;
    assert_eq!(ids(&got), ["d6", "d3", "d0"]);
    let (got, _, _) = all_due(s, DueKind::Decay, t(60), 2).await;
    assert_eq!(ids(&got), ["d6", "d3", "d0", "d1"]);
    let (got, _, _) = all_due(s, DueKind::Sla, t(50), 2).await;
    assert_eq!(ids(&got), ["d4", "d2"], "other kinds are untouched");

    // Clearing everything empties every index.
    for id in ["d0", "d1", "d2", "d3", "d4", "d6"] {
        let v = version(s, id).await;
        s.commit(commit(lead(id), Some(v))).await.expect("clear all");
    }
    for kind in DueKind::ALL {
        assert!(all_due(s, kind, t(1_000_000), 3).await.0.is_empty(), "{kind:?} after clearing");
    }
}

/// A due query's cost follows the number of due leads, not the number of leads stored.
pub async fn due_reads_only_what_is_due(store: Arc<dyn Store>) {
    let s = store.as_ref();
    for i in 0..100 {
        let mut c = commit(lead(&format!("later-{i:03}")), None);
        c.due = Due { decay: Some(t(1000 + i)), drip: Some(t(1000 + i)), sla: Some(t(1000 + i)) };
        s.commit(c).await.expect("create a lead due later");
    }
    for i in 0..20 {
        s.commit(commit(lead(&format!("idle-{i:03}")), None)).await.expect("create a lead with nothing due");
    }
    for i in 0..3 {
        let mut c = commit(lead(&format!("now-{i}")), None);
        c.due = Due { decay: Some(t(i)), drip: Some(t(i)), sla: Some(t(i)) };
        s.commit(c).await.expect("create a due lead");
    }
    for kind in DueKind::ALL {
        let page = s.due(kind, t(10), None, 50).await.expect("due");
        assert_eq!(ids(&page.items), ["now-0", "now-1", "now-2"], "{kind:?}");
        assert!(page.cursor.is_none(), "{kind:?}: one page holds everything due");
        assert!(page.read <= 4, "{kind:?}: read {} entries for 3 due leads out of 123", page.read);
    }
}

/// Due times before 1970 are times like any other: rounded up to the millisecond, reported
/// as stored, due exactly when `now` (rounded down) reaches them, and ahead of later ones.
pub async fn due_before_1970(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let at = |secs: i64, nanos: u32| DateTime::from_timestamp(secs, nanos).expect("time");
    let leads = [
        ("old", Due { decay: Some(at(-10, 500_000)), drip: None, sla: None }),
        ("new", Due { decay: Some(at(5, 0)), drip: None, sla: None }),
        ("ancient", Due { decay: None, drip: Some(at(-2_208_988_800, 0)), sla: None }),
    ];
    for (id, due) in leads {
        let mut c = commit(lead(id), None);
        c.due = due;
        s.commit(c).await.expect("create");
    }
    let old = ("old".to_string(), at(-10, 1_000_000));
    let cases: [(DueKind, Time, Vec<(String, Time)>); 6] = [
        (DueKind::Decay, at(-11, 0), vec![]),
        (DueKind::Decay, at(-10, 999_999), vec![]),
        (DueKind::Decay, at(-10, 1_000_000), vec![old.clone()]),
        (DueKind::Decay, at(-5, 0), vec![old.clone()]),
        (DueKind::Decay, t(0), vec![old.clone(), ("new".to_string(), at(5, 0))]),
        (DueKind::Drip, at(-1, 0), vec![("ancient".to_string(), at(-2_208_988_800, 0))]),
    ];
    for (kind, now, want) in &cases {
        for limit in [1, 10] {
            let (got, _, _) = all_due(s, *kind, *now, limit).await;
            assert_eq!(&got, want, "{kind:?} due at {now}, limit {limit}");
        }
    }
}

/// A lead's events come back oldest first (by event time), whatever order they were recorded.
pub async fn events_oldest_first(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let mut c = commit(lead("ld-1"), None);
    c.events = vec![event("b", "ld-1", t(20))];
    s.commit(c).await.expect("create");
    let mut c = commit(lead("ld-1"), Some(1));
    c.events = vec![event("c", "ld-1", t(30)), event("a", "ld-1", t(10))];
    s.commit(c).await.expect("update");
    let mut c = commit(lead("ld-1"), Some(2));
    c.events = vec![event("d", "ld-1", t(15))];
    s.commit(c).await.expect("update");
    let mut c = commit(lead("ld-2"), None);
    c.events = vec![event("other", "ld-2", t(12))];
    s.commit(c).await.expect("other lead");

    let got = s.events("ld-1").await.expect("events");
    let order: Vec<&str> = got.iter().map(|e| e.event.id.as_str()).collect();
    assert_eq!(order, ["a", "d", "b", "c"]);
    assert_eq!(got[0], event("a", "ld-1", t(10)), "stored events round-trip exactly");
    assert_eq!(s.events("ld-2").await.expect("events").len(), 1);
}

/// Erasure removes the lead, its identities, its due entries and its events' content; the event
/// ids stay known, so a replay is still a duplicate.
pub async fn erase(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let mut c = commit(rich_lead("ld-x"), None);
    c.claims = vec![claim(email("ada@example.com"), None), claim(anon("cookie-1"), None)];
    c.events = vec![event("x-1", "ld-x", t(1)), event("x-2", "ld-x", t(2))];
    c.due = Due { decay: Some(t(1)), drip: Some(t(1)), sla: Some(t(1)) };
    s.commit(c).await.expect("create");
    let mut c = commit(lead("ld-keep"), None);
    c.claims = vec![claim(email("keep@example.com"), None)];
    c.events = vec![event("k-1", "ld-keep", t(1))];
    c.due.decay = Some(t(1));
    s.commit(c).await.expect("create the other lead");

    assert!(s.erase("ld-x").await.expect("erase"), "erase reports an existing lead");
    assert!(s.get("ld-x").await.expect("get").is_none());
    assert!(s.lookup(&email("ada@example.com")).await.expect("lookup").is_none());
    assert!(s.lookup(&anon("cookie-1")).await.expect("lookup").is_none());
    assert!(s.events("ld-x").await.expect("events").is_empty());
    assert!(s.seen("x-1").await.expect("seen") && s.seen("x-2").await.expect("seen"), "event ids stay known");
    for kind in DueKind::ALL {
        let (got, _, _) = all_due(s, kind, t(100), 10).await;
        assert!(!ids(&got).contains(&"ld-x"), "{kind:?}: an erased lead is not due");
    }
    let (all, _) = s.scan(None, 100).await.expect("scan");
    assert_eq!(all.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), ["ld-keep"]);

    // A replayed event does not bring the person back.
    let mut c = commit(lead("ld-x"), None);
    c.events = vec![event("x-1", "ld-x", t(1))];
    expect_duplicate(s.commit(c).await, "x-1", "replay after erasure");
    assert!(s.get("ld-x").await.expect("get").is_none());

    assert!(!s.erase("ld-x").await.expect("erase again"), "a second erase reports nothing to erase");

    // The other lead is untouched.
    assert_eq!(version(s, "ld-keep").await, 1);
    assert_eq!(s.lookup(&email("keep@example.com")).await.expect("lookup").as_deref(), Some("ld-keep"));
    assert_eq!(s.events("ld-keep").await.expect("events").len(), 1);
    assert_eq!(ids(&all_due(s, DueKind::Decay, t(100), 10).await.0), ["ld-keep"]);

    // The identities are free again.
    let mut c = commit(lead("ld-new"), None);
    c.claims = vec![claim(email("ada@example.com"), None)];
    s.commit(c).await.expect("a new lead can claim the erased email");
}

/// Erasing a lead also erases the events of the anonymous profiles merged into it (kept under
/// their own ids, listed in `merged_from`): no part of the person's history survives.
pub async fn erase_covers_merged_profiles(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let mut c = commit(lead("anon-p"), None);
    c.claims = vec![claim(anon("p1"), None)];
    c.events = vec![event("p-e1", "anon-p", t(1))];
    s.commit(c).await.expect("create the anonymous profile");
    s.commit(commit(lead("lead-l"), None)).await.expect("create the lead");
    let mut l = lead("lead-l");
    l.merged_from = vec!["anon-p".into()];
    let mut c = commit(l, Some(1));
    c.retire = Some(("anon-p".into(), 1));
    c.events = vec![event("l-e1", "lead-l", t(2))];
    s.commit(c).await.expect("merge");

    assert!(s.erase("lead-l").await.expect("erase"));
    assert!(s.events("anon-p").await.expect("events").is_empty(), "the merged profile's events are erased");
    assert!(s.events("lead-l").await.expect("events").is_empty());
    assert!(s.lookup(&anon("p1")).await.expect("lookup").is_none(), "re-pointed identities are erased");
    assert!(s.seen("p-e1").await.expect("seen") && s.seen("l-e1").await.expect("seen"));
}

/// Erasure racing ingest: writers keep recording new events on one lead — each resolving it
/// like ingest does (half through the email's identity item, half by id), reading it, and
/// committing at that version an event and a new cookie claim, again on a conflict — while
/// the lead is erased. Afterwards nothing of the lead is left: no lead, no event, no identity
/// pointing at a lead that does not exist; and the email ingests again as a new lead. Several
/// rounds, so that commits land between the steps of a store that erases in several.
pub async fn erase_races_ingest(store: Arc<dyn Store>) {
    const ROUNDS: usize = 6;
    const WRITERS: usize = 8;
    for round in 0..ROUNDS {
        erase_race_round(store.clone(), round, WRITERS).await;
    }
}

/// One round of [`erase_races_ingest`] on lead `race-<round>`.
async fn erase_race_round(store: Arc<dyn Store>, round: usize, writers: usize) {
    /// Attempts per writer before it gives up on ever seeing the lead erased.
    const MAX_ATTEMPTS: usize = 100_000;
    let id = format!("race-{round}");
    let mail = format!("race-{round}@x.com");
    let mut l = lead(&id);
    l.email = Some(mail.clone());
    let mut c = commit(l, None);
    c.claims = vec![claim(email(&mail), None)];
    c.events = vec![event(&format!("{id}-first"), &id, t(0))];
    store.commit(c).await.expect("create the lead to erase");

    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let (store, id, mail) = (store.clone(), id.clone(), mail.clone());
        tasks.spawn(async move {
            // Every cookie this writer tried to claim (committed or not).
            let mut cookies = Vec::new();
            for n in 0..MAX_ATTEMPTS {
                let target = if w % 2 == 0 {
                    match store.lookup(&email(&mail)).await.expect("lookup") {
                        Some(target) => target,
                        None => return cookies,
                    }
                } else {
                    id.clone()
                };
                assert_eq!(target, id, "writer {w}: the email resolves to another lead");
                let Some(rec) = store.get(&target).await.expect("get") else { return cookies };
                let cookie = format!("{id}-w{w}-{n}");
                let mut l = rec.lead;
                l.event_count += 1;
                l.anonymous_ids.push(cookie.clone());
                // Let the erasure (and other writers) in between the read and the commit.
                tokio::task::yield_now().await;
                let mut c = commit(l, Some(rec.version));
                c.events = vec![event(&cookie, &id, t(n as i64 + 1))];
                c.claims = vec![claim(anon(&cookie), None)];
                cookies.push(cookie);
                match store.commit(c).await {
                    Ok(_) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => panic!("writer {w} on {id}: {e}"),
                }
            }
            panic!("writer {w}: {id} still there after {MAX_ATTEMPTS} attempts");
        });
    }

    // Erase once the writers are well under way.
    for wait in 0.. {
        assert!(wait < 100_000, "{id}: the writers make no progress");
        if store.get(&id).await.expect("get").is_some_and(|r| r.version > writers as u64 / 2) {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(store.erase(&id).await.expect("erase"), "{id}: erase reports an existing lead");
    let mut cookies = Vec::new();
    while let Some(r) = tasks.join_next().await {
        cookies.extend(r.expect("writer panicked"));
    }

    let s = store.as_ref();
    assert!(s.get(&id).await.expect("get").is_none(), "{id}: the erased lead is back");
    let left: Vec<String> = s.events(&id).await.expect("events").into_iter().map(|e| e.event.id).collect();
    assert!(left.is_empty(), "{id}: {} event(s) of the erased lead left behind: {left:?}", left.len());
    let mut identities = vec![email(&mail)];
    identities.extend(cookies.iter().map(|c| anon(c)));
    for identity in &identities {
        if let Some(owner) = s.lookup(identity).await.expect("lookup") {
            assert!(
                s.get(&owner).await.expect("get").is_some(),
                "{id}: {} identities checked; {identity:?} points at {owner}, which does not exist",
                identities.len()
            );
        }
    }
    let (all, _) = s.scan(None, 1000).await.expect("scan");
    assert!(!all.iter().any(|l| l.id == id), "{id}: scan lists the erased lead");
    assert!(!s.erase(&id).await.expect("erase again"), "{id}: a second erase reports nothing to erase");

    // The person comes back: like ingest, the email resolves to nothing, so a new lead claims
    // it, and later events find that lead.
    let fresh = format!("{id}-again");
    assert_eq!(s.lookup(&email(&mail)).await.expect("lookup"), None, "{id}: the erased email is free");
    let mut l = lead(&fresh);
    l.email = Some(mail.clone());
    let mut c = commit(l, None);
    c.claims = vec![claim(email(&mail), None)];
    c.events = vec![event(&format!("{fresh}-1"), &fresh, t(1))];
    s.commit(c).await.unwrap_or_else(|e| panic!("{id}: a new lead for the erased email: {e}"));
    let owner = s.lookup(&email(&mail)).await.expect("lookup").expect("the email resolves");
    assert_eq!(owner, fresh);
    let rec = s.get(&owner).await.expect("get").expect("the new lead");
    let mut c = commit(rec.lead, Some(rec.version));
    c.events = vec![event(&format!("{fresh}-2"), &fresh, t(2))];
    assert_eq!(s.commit(c).await.expect("a second event on the new lead"), 2);
    assert_eq!(s.events(&fresh).await.expect("events").len(), 2);
}

/// `scan` returns every lead exactly once, in pages of at most `limit`.
pub async fn scan_pagination(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let mut want = BTreeSet::new();
    for id in ["s-05", "s-01", "s-07", "s-03", "s-02", "s-06", "s-04"] {
        let mut c = commit(lead(id), None);
        c.claims = vec![claim(email(&format!("{id}@x.com")), None)];
        c.events = vec![event(&format!("{id}-e"), id, t(1))];
        s.commit(c).await.expect("create");
        want.insert(id.to_string());
    }
    create(s, lead("s-gone")).await;
    assert!(s.erase("s-gone").await.expect("erase"));

    for limit in [1, 3, 7, 100] {
        let mut seen = Vec::new();
        let mut cursor = None;
        for page_no in 0.. {
            assert!(page_no < 100, "scan pagination does not end");
            let (page, next) = s.scan(cursor.take(), limit).await.expect("scan");
            assert!(page.len() <= limit, "page of {} for limit {limit}", page.len());
            seen.extend(page.into_iter().map(|l| l.id));
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let unique: BTreeSet<String> = seen.iter().cloned().collect();
        assert_eq!(unique.len(), seen.len(), "limit {limit}: a lead came twice: {seen:?}");
        assert_eq!(unique, want, "limit {limit}");
    }
}

/// Many writers on one lead, each read-modify-commit with retry on conflict: no lost update.
pub async fn concurrent_increments(store: Arc<dyn Store>) {
    increments(store, |_| true).await;
}

/// The same with half the writers committing the lead alone (no event: a scheduled job's
/// commit, which a store may write differently) — still no lost update.
pub async fn concurrent_lead_only_increments(store: Arc<dyn Store>) {
    increments(store, |i| i % 2 == 0).await;
}

/// `N` writers increment one lead's event count; writer `i` records an event when
/// `with_event(i)`.
async fn increments(store: Arc<dyn Store>, with_event: fn(usize) -> bool) {
    const N: usize = 50;
    create(store.as_ref(), lead("hot")).await;
    let mut tasks = Vec::with_capacity(N);
    for i in 0..N {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for attempt in 0..10_000 {
                let rec = store.get("hot").await.expect("get").expect("hot lead");
                let mut l = rec.lead;
                l.event_count += 1;
                // Let other writers in between the read and the commit.
                tokio::task::yield_now().await;
                let mut c = commit(l, Some(rec.version));
                if with_event(i) {
                    c.events = vec![event(&format!("inc-{i}"), "hot", t(i as i64))];
                }
                match store.commit(c).await {
                    Ok(_) => return attempt,
                    Err(StoreError::Conflict(_)) => tokio::task::yield_now().await,
                    Err(e) => panic!("task {i}: {e}"),
                }
            }
            panic!("task {i}: no success after 10000 attempts");
        }));
    }
    for task in tasks {
        task.await.expect("task panicked");
    }
    let rec = store.get("hot").await.expect("get").expect("hot lead");
    assert_eq!(rec.lead.event_count, N as u64, "every increment counted exactly once");
    assert_eq!(rec.version, N as u64 + 1);
    assert_eq!(store.events("hot").await.expect("events").len(), (0..N).filter(|i| with_event(*i)).count());
}

/// Many creates racing for one email: exactly one wins; the losers leave nothing behind.
pub async fn concurrent_claims(store: Arc<dyn Store>) {
    const N: usize = 20;
    let mut tasks = Vec::with_capacity(N);
    for i in 0..N {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = commit(lead(&format!("racer-{i}")), None);
            c.claims = vec![claim(email("race@x.com"), None)];
            match store.commit(c).await {
                Ok(_) => Some(format!("racer-{i}")),
                Err(StoreError::Conflict(_)) => None,
                Err(e) => panic!("racer {i}: {e}"),
            }
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        winners.extend(task.await.expect("task panicked"));
    }
    assert_eq!(winners.len(), 1, "exactly one create wins: {winners:?}");
    assert_eq!(s_lookup(store.as_ref(), "race@x.com").await.as_deref(), Some(winners[0].as_str()));
    let (all, _) = store.scan(None, 100).await.expect("scan");
    assert_eq!(all.len(), 1, "losing creates must not leave leads behind");
}

async fn s_lookup(s: &dyn Store, e: &str) -> Option<String> {
    s.lookup(&email(e)).await.expect("lookup")
}

// ---------------------------------------------------------------------------------------------
// Report counters.

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
