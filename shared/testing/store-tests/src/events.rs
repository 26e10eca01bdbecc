//! Checks of reading stored events and leads back: a lead's timeline, and the scan of every lead.

use crate::*;
use ember_service::ports::Store;
use std::collections::BTreeSet;
use std::sync::Arc;

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
