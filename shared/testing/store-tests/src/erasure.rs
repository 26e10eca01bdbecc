//! Checks of [`Store::erase`]: every item holding the person goes, merged profiles too, even with
//! writers racing the erasure.

use crate::*;
use ember_scoring::Due;
use ember_service::ports::{DueKind, Store, StoreError};
use std::sync::Arc;

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
