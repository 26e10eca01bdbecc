//! The store conformance suite against the SQLite store (a fresh temp file per check), plus
//! what only a file-backed store can show: data survives closing and reopening.

use ember_service::ports::{Claim, Commit, DueKind, Identity, Store};
use ember_store_sqlite::SqliteStore;
use ember_store_tests::{commit, event, lead, rich_lead, t};
use std::sync::Arc;
use tempfile::TempDir;

/// A new store in its own temp dir (the dir lives as long as the returned guard).
async fn fresh() -> (Arc<dyn Store>, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("ember.db")).expect("open store");
    (Arc::new(store), dir)
}

ember_store_tests::conformance_tests!(fresh);

#[tokio::test]
async fn suite_runs_in_memory_too() {
    ember_store_tests::run_all(|| async {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().expect("open in memory"));
        (store, ())
    })
    .await;
}

#[tokio::test]
async fn data_survives_reopening() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ember.db");
    let original = rich_lead("ld-1");
    {
        let store = SqliteStore::open(&path).expect("open");
        let mut c: Commit = commit(original.clone(), None);
        c.claims = vec![Claim { identity: Identity::Email("ada@example.com".into()), expected_owner: None }];
        c.events = vec![event("ev-1", "ld-1", t(1))];
        c.due.drip = Some(t(5));
        store.commit(c).await.expect("create");
        let mut c = commit(original.clone(), Some(1));
        c.events = vec![event("ev-2", "ld-1", t(2))];
        c.due.drip = Some(t(6));
        assert_eq!(store.commit(c).await.expect("update"), 2);
        store.commit(commit(lead("ld-2"), None)).await.expect("create another");
        assert!(store.erase("ld-2").await.expect("erase"));
        let mut c = commit(lead("ld-3"), None);
        c.events = vec![event("ev-3", "ld-3", t(3))];
        store.commit(c).await.expect("create a third");
        assert!(store.erase("ld-3").await.expect("erase"));
    }
    let store = SqliteStore::open(&path).expect("reopen");
    let rec = store.get("ld-1").await.expect("get").expect("lead after reopening");
    assert_eq!((rec.version, &rec.lead), (2, &original));
    assert_eq!(
        store.lookup(&Identity::Email("ada@example.com".into())).await.expect("lookup").as_deref(),
        Some("ld-1")
    );
    let ids: Vec<String> = store.events("ld-1").await.expect("events").into_iter().map(|e| e.event.id).collect();
    assert_eq!(ids, ["ev-1", "ev-2"]);
    let due = store.due(DueKind::Drip, t(10), None, 10).await.expect("due");
    assert_eq!(due.items, [("ld-1".to_string(), t(6))]);
    assert!(store.get("ld-2").await.expect("get").is_none());
    assert!(store.seen("ev-3").await.expect("seen"), "erased event ids stay known after reopening");
    // Reopening an existing file again (schema already current) is fine, with two handles open.
    let second = SqliteStore::open(&path).expect("second handle");
    assert_eq!(second.get("ld-1").await.expect("get").map(|r| r.version), Some(2));
    let mut c = commit(original, Some(2));
    c.events = vec![event("ev-4", "ld-1", t(4))];
    assert_eq!(second.commit(c).await.expect("commit through the second handle"), 3);
    assert_eq!(store.get("ld-1").await.expect("get").map(|r| r.version), Some(3), "both handles see the same file");
}
