//! Checks of [`Store::due`]: the due indexes, what a query reads, and times before 1970.

use crate::*;
use chrono::DateTime;
use ember_scoring::{Due, Time};
use ember_service::ports::{DueKind, Store};
use std::sync::Arc;

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
