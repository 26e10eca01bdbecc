//! Checks under concurrent writers: no lost update, no identity claimed twice.

use crate::*;
use ember_service::ports::{Store, StoreError};
use std::sync::Arc;

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
