//! The store conformance suite against [`DynamoStore`] on a moto server (a fresh table per
//! check), plus what is specific to DynamoDB: round trips and write units per commit, merges
//! over the 100-item transaction limit, due cursors across a sweep that reschedules leads.
//!
//! These tests need moto: `scripts/test` starts it (`scripts/moto`) and runs ignored tests
//! with `EMBER_MOTO_ENDPOINT` set. By hand:
//!
//! ```text
//! export EMBER_MOTO_ENDPOINT=$(scripts/moto)
//! cargo test -p ember-aws -- --include-ignored
//! ```
//!
//! Run without `EMBER_MOTO_ENDPOINT`, they fail (they never pass silently).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::AttributeValue;
use ember_store_dynamodb::{DynamoStore, create_table};
use ember_scoring::Due;
use ember_service::ports::{Claim, DueKind, Identity, Release, Store, StoreError};
use ember_store_tests::{claim, commit, event, lead, t, version};
use std::sync::Arc;

fn endpoint() -> String {
    match std::env::var("EMBER_MOTO_ENDPOINT") {
        Ok(e) if !e.trim().is_empty() => e,
        _ => panic!(
            "EMBER_MOTO_ENDPOINT is not set: the DynamoDB tests need a moto server. Start one and point \
             the tests at it with `export EMBER_MOTO_ENDPOINT=$(scripts/moto)` (scripts/test does this)."
        ),
    }
}

/// A client for the moto endpoint (static test credentials, us-east-1).
fn client() -> Client {
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(ember_aws::sdk::http_client())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint())
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .build();
    Client::from_conf(conf)
}

/// Deletes the test's table when the test ends.
struct DropTable(String);

impl Drop for DropTable {
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.0);
        // Drop can't await: a short-lived runtime on its own thread, with its own client.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                // Best effort: moto forgets everything when it stops anyway.
                let _ = client().delete_table().table_name(name).send().await;
            });
        })
        .join();
    }
}

/// A store on a new, uniquely named table.
async fn fresh_store() -> (DynamoStore, DropTable) {
    let client = client();
    let name = format!("ember-test-{}", uuid::Uuid::new_v4().simple());
    let created =
        create_table(&client, &name).await.unwrap_or_else(|e| panic!("creating table {name} on {}: {e}", endpoint()));
    assert!(created, "a new table name is created");
    (DynamoStore::new(client, name.clone()), DropTable(name))
}

async fn fresh() -> (Arc<dyn Store>, DropTable) {
    let (store, guard) = fresh_store().await;
    (Arc::new(store), guard)
}

ember_store_tests::conformance_tests!(fresh, #[ignore = "needs moto server: scripts/test starts it and runs ignored tests"]);

#[tokio::test]
#[ignore = "needs moto server: scripts/test starts it and runs ignored tests"]
async fn create_table_is_idempotent() {
    let (store, _guard) = fresh_store().await;
    assert!(!create_table(&client(), store.table()).await.expect("again"), "an existing table is fine");
}

/// The figures behind "≤ 2 round trips per event": a commit is one request.
#[tokio::test]
#[ignore = "needs moto server: scripts/test starts it and runs ignored tests"]
async fn a_simple_commit_is_one_round_trip() {
    let (store, _guard) = fresh_store().await;
    let mut c = commit(lead("ld-1"), None);
    c.events = vec![event("e-1", "ld-1", t(1))];
    c.claims = vec![Claim { identity: Identity::Anonymous("cookie".into()), expected_owner: None }];
    c.due.decay = Some(t(100));
    store.commit(c).await.expect("create");
    assert_eq!(store.calls(), 1, "a create with an event and a claim is one TransactWriteItems");
    let create_units = store.estimated_write_units();

    let before = (store.calls(), store.estimated_write_units());
    let mut c = commit(lead("ld-1"), Some(1));
    c.events = vec![event("e-2", "ld-1", t(2))];
    c.due.decay = Some(t(200));
    store.commit(c).await.expect("update");
    let calls = store.calls() - before.0;
    let units = store.estimated_write_units() - before.1;
    eprintln!(
        "simple commit (lead + 1 event): {calls} call(s), ~{units} WCU estimated (table items, transactional); \
         create with a claim: ~{create_units} WCU; reported consumed (read, write): {:?}; by operation: {:?}",
        store.consumed(),
        store.calls_by_operation()
    );
    assert_eq!(calls, 1);
    assert_eq!(units, 6.0, "dedupe + event + lead, each under 1 KB, ×2 in a transaction");

    let before = store.calls();
    assert!(store.get("ld-1").await.expect("get").is_some());
    assert!(store.seen("e-2").await.expect("seen"));
    assert_eq!(store.calls() - before, 2, "reads are one request each");
    assert_eq!(store.calls_by_operation().get("TransactWriteItems"), Some(&2));
}

/// A merge whose identities don't fit in one transaction still moves every identity.
#[tokio::test]
#[ignore = "needs moto server: scripts/test starts it and runs ignored tests"]
async fn merge_over_the_transaction_limit() {
    let (store, _guard) = fresh_store().await;
    let anon_ids: Vec<String> = (0..130).map(|i| format!("cookie-{i:03}")).collect();
    let mut anon = lead("anon-p");
    anon.anonymous_ids = anon_ids.clone();
    let mut c = commit(anon.clone(), None);
    c.claims = anon_ids[..90]
        .iter()
        .map(|a| Claim { identity: Identity::Anonymous(a.clone()), expected_owner: None })
        .collect();
    store.commit(c).await.expect("create with 90 identities");
    let mut c = commit(anon.clone(), Some(1));
    c.claims = anon_ids[90..]
        .iter()
        .map(|a| Claim { identity: Identity::Anonymous(a.clone()), expected_owner: None })
        .collect();
    c.due.drip = Some(t(5));
    store.commit(c).await.expect("40 more");

    let mut l = lead("lead-l");
    l.email = Some("l@x.com".into());
    let mut c = commit(l.clone(), None);
    c.claims = vec![Claim { identity: Identity::Email("l@x.com".into()), expected_owner: None }];
    store.commit(c).await.expect("create the known lead");

    // Too many events is refused, and writes nothing.
    let mut c = commit(l.clone(), Some(1));
    c.events = (0..60).map(|i| event(&format!("big-{i}"), "lead-l", t(i))).collect();
    match store.commit(c).await {
        Err(StoreError::Other(m)) => assert!(m.contains("too large"), "{m}"),
        other => panic!("expected a clear refusal, got {other:?}"),
    }
    assert!(!store.seen("big-0").await.expect("seen"));

    // The merge claims 100 identities explicitly; the store finds the other 30.
    l.merged_from = vec!["anon-p".into()];
    let mut c = commit(l.clone(), Some(1));
    c.claims = anon_ids[..100]
        .iter()
        .map(|a| Claim { identity: Identity::Anonymous(a.clone()), expected_owner: Some("anon-p".into()) })
        .collect();
    c.retire = Some(("anon-p".into(), 2));
    c.events = vec![event("merge-e", "lead-l", t(10))];
    assert_eq!(store.commit(c).await.expect("merge"), 2);
    assert!(store.get("anon-p").await.expect("get").is_none());
    for a in &anon_ids {
        let owner = store.lookup(&Identity::Anonymous(a.clone())).await.expect("lookup");
        assert_eq!(owner.as_deref(), Some("lead-l"), "{a} follows the survivor");
    }
    assert!(store.due(DueKind::Drip, t(100), None, 10).await.expect("due").items.is_empty());

    // Erasing the survivor erases every identity it gathered.
    assert!(store.erase("lead-l").await.expect("erase"));
    for a in &anon_ids {
        assert!(store.lookup(&Identity::Anonymous(a.clone())).await.expect("lookup").is_none(), "{a} erased");
    }
    assert!(store.lookup(&Identity::Email("l@x.com".into())).await.expect("lookup").is_none());
}

/// A sweep reschedules the leads of each page before asking for the next one: the cursor must
/// still list every due lead exactly once, in order, reading each entry once.
#[tokio::test]
#[ignore = "needs moto server: scripts/test starts it and runs ignored tests"]
async fn due_cursor_survives_a_sweep() {
    let (store, _guard) = fresh_store().await;
    let mut want = Vec::new();
    for i in 0..40 {
        let id = format!("lead-{i:02}");
        let mut c = commit(lead(&id), None);
        // Some ties, all due by t(100).
        c.due = Due { decay: None, drip: Some(t(i / 3)), sla: None };
        store.commit(c).await.expect("create");
        want.push((id, t(i / 3)));
    }
    let mut later = commit(lead("later"), None);
    later.due.drip = Some(t(1000));
    store.commit(later).await.expect("create a lead due later");

    let mut got = Vec::new();
    let mut cursor = None;
    let mut read = 0;
    loop {
        let page = store.due(DueKind::Drip, t(100), cursor.take(), 7).await.expect("due");
        read += page.read;
        for (id, _) in &page.items {
            // What the drip job does: the lead moves out of the index (or later).
            let v = store.get(id).await.expect("get").expect("lead").version;
            let mut c = commit(lead(id), Some(v));
            c.due.drip = if id.ends_with('0') { Some(t(5000)) } else { None };
            store.commit(c).await.expect("reschedule");
        }
        got.extend(page.items);
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(got, want, "every due lead once, oldest first, ties by id");
    assert_eq!(read, 40, "every due entry read once");
    assert!(store.due(DueKind::Drip, t(100), None, 100).await.expect("due").items.is_empty());
    assert_eq!(store.due(DueKind::Drip, t(5000), None, 100).await.expect("due").items.len(), 4 + 1);
}

/// What an erasure leaves when it stops right after its tombstone (step 0 of the crate docs):
/// the lead item marked `erased` and at a new version, everything else still there. `extra`
/// is added to the update expression (e.g. ` REMOVE #body`).
async fn leave_a_tombstone(store: &DynamoStore, lead_id: &str, extra: &str) {
    let mut req = store
        .client()
        .update_item()
        .table_name(store.table())
        .key("PK", AttributeValue::S(format!("LEAD#{lead_id}")))
        .key("SK", AttributeValue::S("PROFILE".into()))
        .update_expression(format!("SET #erased = :now ADD #v :one{extra}"))
        .condition_expression("attribute_exists(PK)")
        .expression_attribute_names("#erased", "erased")
        .expression_attribute_names("#v", "version")
        .expression_attribute_values(":now", AttributeValue::N("1767225600".into()))
        .expression_attribute_values(":one", AttributeValue::N("1".into()));
    if extra.contains("#body") {
        req = req.expression_attribute_names("#body", "body");
    }
    req.send().await.expect("writing a tombstone");
}

/// Whether the lead item (tombstone or not) is in the table.
async fn lead_item_exists(store: &DynamoStore, lead_id: &str) -> bool {
    store
        .client()
        .get_item()
        .table_name(store.table())
        .key("PK", AttributeValue::S(format!("LEAD#{lead_id}")))
        .key("SK", AttributeValue::S("PROFILE".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item
        .is_some()
}

#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{what}: expected Conflict, got {r:?}");
}

/// A lead whose erasure stopped after its tombstone: invisible to reads, refused by every
/// version guard (the version read before, the tombstone's own, a merge or release of it, a
/// create of its id), and erased completely by erasing it again; the erasure's writes are
/// counted.
#[tokio::test]
#[ignore = "needs moto server: scripts/test starts it and runs ignored tests"]
async fn an_interrupted_erasure_is_finished_by_erasing_again() {
    let (store, _guard) = fresh_store().await;
    let mail = Identity::Email("t@x.com".into());
    let cookie = Identity::Anonymous("cookie-t".into());
    let mut l = lead("ld-t");
    l.email = Some("t@x.com".into());
    l.anonymous_ids = vec!["cookie-t".into()];
    let mut c = commit(l.clone(), None);
    c.claims = vec![claim(mail.clone(), None), claim(cookie.clone(), None)];
    c.events = vec![event("t-1", "ld-t", t(1)), event("t-2", "ld-t", t(2))];
    c.due = Due { decay: Some(t(5)), drip: Some(t(5)), sla: None };
    store.commit(c).await.expect("create the lead");
    let mut other = lead("ld-o");
    other.email = Some("o@x.com".into());
    let mut c = commit(other.clone(), None);
    c.claims = vec![claim(Identity::Email("o@x.com".into()), None)];
    store.commit(c).await.expect("create another lead");

    leave_a_tombstone(&store, "ld-t", "").await;
    assert!(store.get("ld-t").await.expect("get").is_none(), "a tombstone is no lead");
    let (all, _) = store.scan(None, 10).await.expect("scan");
    assert_eq!(all.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), ["ld-o"], "scan skips a tombstone");
    for (v, what) in [(1, "the version read before the erasure"), (2, "the tombstone's version")] {
        let mut c = commit(l.clone(), Some(v));
        c.events = vec![event(&format!("late-{v}"), "ld-t", t(3))];
        assert_conflict(store.commit(c).await, what);
        let mut c = commit(l.clone(), Some(v));
        c.claims = vec![claim(Identity::Anonymous(format!("late-cookie-{v}")), None)];
        assert_conflict(store.commit(c).await, &format!("{what}, with a claim"));
        let mut c = commit(other.clone(), Some(1));
        c.retire = Some(("ld-t".into(), v));
        assert_conflict(store.commit(c).await, &format!("merging the tombstone at {what}"));
        let mut c = commit(other.clone(), Some(1));
        c.claims = vec![Claim { identity: cookie.clone(), expected_owner: Some("ld-t".into()) }];
        c.release = Some(Release { lead: l.clone(), expected_version: v, identities: vec![cookie.clone()] });
        assert_conflict(store.commit(c).await, &format!("taking a cookie from the tombstone at {what}"));
    }
    assert_conflict(store.commit(commit(l.clone(), None)).await, "creating the tombstone's id");
    assert!(!store.seen("late-1").await.expect("seen") && !store.seen("late-2").await.expect("seen"));
    assert_eq!(version(&store, "ld-o").await, 1, "the refused commits changed nothing");

    let before = (store.estimated_write_units(), store.calls_by_operation());
    assert!(store.erase("ld-t").await.expect("erase again"), "erasing a tombstone finishes the erasure");
    let units = store.estimated_write_units() - before.0;
    let updates = |m: &std::collections::BTreeMap<String, u64>| m.get("UpdateItem").copied().unwrap_or(0);
    assert_eq!(updates(&store.calls_by_operation()) - updates(&before.1), 1, "one tombstone write");
    assert_eq!(units, 6.0, "tombstone + 2 identities + 2 events + the lead, each under 1 KB");
    assert!(!lead_item_exists(&store, "ld-t").await, "the tombstone is removed");
    assert!(store.lookup(&mail).await.expect("lookup").is_none());
    assert!(store.lookup(&cookie).await.expect("lookup").is_none());
    assert!(store.events("ld-t").await.expect("events").is_empty());
    assert!(store.due(DueKind::Decay, t(100), None, 10).await.expect("due").items.is_empty());
    assert!(!store.erase("ld-t").await.expect("erase a third time"), "nothing left to erase");
    assert_eq!(store.lookup(&Identity::Email("o@x.com".into())).await.expect("lookup").as_deref(), Some("ld-o"));
}

/// A tombstone without a body (nothing to read the merged profiles or identities from but its
/// `identities` set): erasing it still removes it, its identities and its events.
#[tokio::test]
#[ignore = "needs moto server: scripts/test starts it and runs ignored tests"]
async fn a_tombstone_without_a_body_is_erased() {
    let (store, _guard) = fresh_store().await;
    let mail = Identity::Email("b@x.com".into());
    let mut l = lead("ld-b");
    l.email = Some("b@x.com".into());
    let mut c = commit(l, None);
    c.claims = vec![claim(mail.clone(), None)];
    c.events = vec![event("b-1", "ld-b", t(1))];
    store.commit(c).await.expect("create the lead");

    leave_a_tombstone(&store, "ld-b", " REMOVE #body").await;
    assert!(store.get("ld-b").await.expect("get").is_none());
    assert!(store.erase("ld-b").await.expect("erase"), "the tombstone is something to erase");
    assert!(!lead_item_exists(&store, "ld-b").await, "the tombstone is removed");
    assert!(store.lookup(&mail).await.expect("lookup").is_none(), "its identity is erased");
    assert!(store.events("ld-b").await.expect("events").is_empty(), "its events are erased");
    assert!(!store.erase("ld-b").await.expect("erase again"));

    // The email is free for a new lead.
    let mut c = commit(lead("ld-b2"), None);
    c.claims = vec![claim(mail.clone(), None)];
    store.commit(c).await.expect("a new lead claims the email");
}
