//! Checks of [`Store::commit`]: versions, atomicity, identity claims, merges and duplicate events.

use crate::*;
use ember_scoring::Due;
use ember_service::ports::{DueKind, Store};
use std::sync::Arc;

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
