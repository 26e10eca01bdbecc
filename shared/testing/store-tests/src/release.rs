//! Checks of [`Commit::release`](ember_service::ports::Commit::release): an identity that moves
//! from one lead to another (a cookie following the person who just identified on a shared
//! browser) leaves the previous owner in the same atomic commit, guarded by its version.

use crate::{anon, claim, commit, email, event, expect_conflict, lead, t, version};
use ember_scoring::{Due, Lead};
use ember_service::ports::{Release, Store, StoreError};
use std::sync::Arc;

/// An identified lead `id` with `email` and the cookies `cookies`, created with their claims.
async fn owner(s: &dyn Store, id: &str, mail: &str, cookies: &[&str]) -> Lead {
    let mut l = lead(id);
    l.email = Some(mail.into());
    l.anonymous_ids = cookies.iter().map(|c| c.to_string()).collect();
    let mut c = commit(l.clone(), None);
    c.claims = std::iter::once(claim(email(mail), None)).chain(cookies.iter().map(|k| claim(anon(k), None))).collect();
    c.due = Due { decay: Some(t(50)), drip: None, sla: None };
    s.commit(c).await.unwrap_or_else(|e| panic!("creating {id}: {e}"));
    l
}

/// `lead` without the cookie `cookie`, released at `version`.
fn without(mut l: Lead, cookie: &str, version: u64) -> Release {
    l.anonymous_ids.retain(|a| a != cookie);
    Release { lead: l, expected_version: version, identities: vec![anon(cookie)] }
}

/// The previous owner loses the identity in the same commit that gives it to the new lead:
/// its body no longer lists it, its version moves, its other identities and due times stay.
pub async fn release_moves_an_identity_atomically(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let old = owner(s, "ld-old", "old@x.com", &["shared", "own"]).await;

    // A new lead takes the shared cookie (a form fill by someone else on that browser).
    let mut new = lead("ld-new");
    new.email = Some("new@x.com".into());
    new.anonymous_ids = vec!["shared".into()];
    let mut c = commit(new.clone(), None);
    c.claims = vec![claim(email("new@x.com"), None), claim(anon("shared"), Some("ld-old"))];
    c.events = vec![event("ev-form", "ld-new", t(2))];
    c.release = Some(without(old.clone(), "shared", 1));
    assert_eq!(s.commit(c).await.expect("move the cookie"), 1);

    assert_eq!(s.lookup(&anon("shared")).await.expect("lookup").as_deref(), Some("ld-new"));
    let rec = s.get("ld-old").await.expect("get").expect("the old owner stays");
    assert_eq!(rec.version, 2, "the release is a commit of the old owner");
    assert_eq!(rec.lead.anonymous_ids, ["own"], "the old owner no longer lists the cookie");
    assert_eq!(rec.lead.email.as_deref(), Some("old@x.com"));
    for (identity, owner) in [(anon("own"), "ld-old"), (email("old@x.com"), "ld-old"), (email("new@x.com"), "ld-new")] {
        assert_eq!(s.lookup(&identity).await.expect("lookup").as_deref(), Some(owner), "{identity:?}");
    }
    let due = crate::all_due(s, ember_service::ports::DueKind::Decay, t(100), 10).await.0;
    assert_eq!(due, [("ld-old".to_string(), t(50))], "the old owner keeps its due times");

    // The cookie moves back to the first person: the same, the other way round.
    let mut back = old.clone();
    back.anonymous_ids = vec!["own".into(), "shared".into()];
    let mut c = commit(back, Some(2));
    c.claims = vec![claim(anon("shared"), Some("ld-new"))];
    c.release = Some(without(new, "shared", 1));
    assert_eq!(s.commit(c).await.expect("move it back"), 3);
    assert_eq!(s.lookup(&anon("shared")).await.expect("lookup").as_deref(), Some("ld-old"));
    let rec = s.get("ld-new").await.expect("get").expect("new lead");
    assert_eq!((rec.version, rec.lead.anonymous_ids.len()), (2, 0));

    // Erasing the lead that gave the cookie up leaves the cookie with its owner.
    assert!(s.erase("ld-new").await.expect("erase"));
    assert_eq!(s.lookup(&anon("shared")).await.expect("lookup").as_deref(), Some("ld-old"));
}

/// A stale version of the previous owner makes the whole commit conflict: nothing is written,
/// not the claim, not the new lead, not its events.
pub async fn release_of_a_stale_owner_conflicts(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let old = owner(s, "ld-old", "old@x.com", &["shared"]).await;
    // Another writer changed the old owner meanwhile (an event of its own).
    let mut c = commit(old.clone(), Some(1));
    c.events = vec![event("ev-own", "ld-old", t(1))];
    assert_eq!(s.commit(c).await.expect("concurrent change of the old owner"), 2);

    let mut new = lead("ld-new");
    new.email = Some("new@x.com".into());
    new.anonymous_ids = vec!["shared".into()];
    let mut c = commit(new, None);
    c.claims = vec![claim(email("new@x.com"), None), claim(anon("shared"), Some("ld-old"))];
    c.events = vec![event("ev-form", "ld-new", t(2))];
    c.release = Some(without(old.clone(), "shared", 1));
    expect_conflict(s.commit(c).await, "releasing from a stale version of the old owner");
    assert!(s.get("ld-new").await.expect("get").is_none(), "the new lead rolls back");
    assert!(!s.seen("ev-form").await.expect("seen"), "its event rolls back");
    assert!(s.lookup(&email("new@x.com")).await.expect("lookup").is_none(), "its claims roll back");
    assert_eq!(s.lookup(&anon("shared")).await.expect("lookup").as_deref(), Some("ld-old"));
    let rec = s.get("ld-old").await.expect("get").expect("old owner");
    assert_eq!((rec.version, rec.lead.anonymous_ids.as_slice()), (2, ["shared".to_string()].as_slice()), "the old owner is untouched");

    // With the current version it goes through.
    let mut new = lead("ld-new");
    new.email = Some("new@x.com".into());
    let mut c = commit(new, None);
    c.claims = vec![claim(email("new@x.com"), None), claim(anon("shared"), Some("ld-old"))];
    c.release = Some(without(old, "shared", 2));
    s.commit(c).await.expect("release at the current version");
    assert_eq!(version(s, "ld-old").await, 3);
}

/// A release must match the commit's claims: an identity given up without being claimed from
/// that lead, or a release of the committed lead itself, is refused before anything is written.
pub async fn release_must_match_a_claim(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let old = owner(s, "ld-old", "old@x.com", &["shared"]).await;
    let mut c = commit(lead("ld-new"), None);
    c.claims = vec![claim(email("new@x.com"), None)];
    c.release = Some(without(old.clone(), "shared", 1));
    match s.commit(c).await {
        Err(StoreError::Other(m)) => assert!(m.contains("without claiming"), "{m}"),
        other => panic!("a release without its claim: expected an error naming it, got {other:?}"),
    }
    let mut c = commit(old.clone(), Some(1));
    c.release = Some(Release { lead: old, expected_version: 1, identities: vec![] });
    assert!(matches!(s.commit(c).await, Err(StoreError::Other(_))), "a lead cannot release to itself");
    assert!(s.get("ld-new").await.expect("get").is_none());
    assert_eq!(version(s, "ld-old").await, 1);
}
