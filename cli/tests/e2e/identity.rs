//! A cookie that moves to another person, seen from two processes (two Lambda containers,
//! each with its own identity cache) on one store: the embedded store's file, and DynamoDB on
//! moto (`EMBER_MOTO_ENDPOINT`, started by `scripts/test`).
//!
//! The defect this guards against: a form fill by someone else on a browser known as another
//! lead moved the cookie to a new lead, but the old lead kept it in its document, so the
//! other process's cached hint (cookie → old lead) still looked valid and routed the cookie's
//! next anonymous `demo_request` to the old lead — which qualified and went to sales as the
//! wrong person.

use async_trait::async_trait;
use ember::local::ScenarioHarness;
use ember::scenario::Harness;
use ember_scoring::{Lead, Model, Time};
use ember_testing::service::{example_model, raw, start};
use ember_service::ports::{Commit, DueKind, DuePage, Identity, LeadRecord, Store, StoreError, StoredEvent, Tally};
use ember_service::IngestStatus;
use serde_json::json;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

fn model() -> Arc<Model> {
    example_model("b2b-saas.yaml")
}

fn accepted(s: IngestStatus) -> String {
    match s {
        IngestStatus::Accepted { lead_id, .. } => lead_id,
        other => panic!("expected accepted, got {other:?}"),
    }
}

/// Where the two processes' stores come from: each call opens a new handle on the same data.
type Open = Arc<dyn Fn() -> Arc<dyn Store> + Send + Sync>;

fn sqlite(dir: &std::path::Path) -> Open {
    let path = dir.join("ember.db");
    Arc::new(move || Arc::new(ember_store_sqlite::SqliteStore::open(&path).unwrap()) as Arc<dyn Store>)
}

async fn moto() -> (Open, String, aws_sdk_dynamodb::Client) {
    let (client, table) = ember_testing::moto_table("ember-identity").await;
    let (c, t) = (client.clone(), table.clone());
    (Arc::new(move || Arc::new(ember_store_dynamodb::DynamoStore::new(c.clone(), t.clone())) as Arc<dyn Store>), table, client)
}

fn process(open: &Open, dir: &std::path::Path) -> ScenarioHarness {
    ScenarioHarness::with_store(model(), open(), dir, start()).unwrap()
}

/// Process A knows the cookie as Ola's; process B sees Noé fill a form on that browser (the
/// cookie moves to Noé's new lead); A then gets the cookie's anonymous demo request.
async fn the_cookie_follows_the_person_who_identified(open: Open, dir: &std::path::Path) {
    let a = process(&open, dir);
    let b = process(&open, dir);
    let ola = accepted(
        a.ember()
            .ingest.event(&raw(json!({"event_id": "o1", "type": "page_view", "email": "ola@acme.example", "anonymous_id": "shared-pc",
                "properties": {"path": "/blog/a"}})))
            .await,
    );
    // A's cache now says shared-pc → Ola (a second event proves A routes by it).
    assert_eq!(
        accepted(a.ember().ingest.event(&raw(json!({"event_id": "o2", "type": "page_view", "anonymous_id": "shared-pc", "properties": {"path": "/"}}))).await),
        ola
    );
    let noe = accepted(
        b.ember()
            .ingest.event(&raw(json!({"event_id": "n1", "type": "form_submit", "email": "noe@acme.example", "anonymous_id": "shared-pc",
                "properties": {"form_id": "contact-us"}})))
            .await,
    );
    assert_ne!(noe, ola, "someone else on that browser is a new lead");
    let old = b.ember().lead(&ola).await.unwrap().unwrap();
    assert!(!old.anonymous_ids.contains(&"shared-pc".to_string()), "Ola's lead gave the cookie up: {:?}", old.anonymous_ids);

    // The cookie's next anonymous event reaches process A, whose cache still says Ola.
    let demo = a.ember().ingest.event(&raw(json!({"event_id": "d1", "type": "demo_request", "anonymous_id": "shared-pc"}))).await;
    assert_eq!(accepted(demo), noe, "the demo request is Noé's");
    let ola_now = a.ember().lead(&ola).await.unwrap().unwrap();
    assert_eq!(ola_now.stage, "lead", "Ola did not ask for a demo");
    assert!(!ola_now.tags.contains("hand_raise"));
    let noe_now = a.ember().lead(&noe).await.unwrap().unwrap();
    assert_eq!(noe_now.stage, "sql");
    let handed: Vec<(String, String)> = a.webhooks().await.unwrap().into_iter().filter(|(_, k)| k == "lead.qualified").collect();
    assert_eq!(handed, [(noe.clone(), "lead.qualified".to_string())], "sales gets Noé, not Ola");
    assert_eq!(a.ember().store().lookup(&Identity::Anonymous("shared-pc".into())).await.unwrap().as_deref(), Some(noe.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_cookie_is_not_routed_to_its_old_lead_by_another_process() {
    let dir = tempfile::tempdir().unwrap();
    the_cookie_follows_the_person_who_identified(sqlite(dir.path()), dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto: run through scripts/test, or set EMBER_MOTO_ENDPOINT=$(scripts/moto)"]
async fn a_moved_cookie_is_not_routed_to_its_old_lead_by_another_process_on_dynamodb() {
    let dir = tempfile::tempdir().unwrap();
    let (open, table, client) = moto().await;
    the_cookie_follows_the_person_who_identified(open, dir.path()).await;
    client.delete_table().table_name(&table).send().await.ok();
}

/// Two known leads on one browser: Ola's cookie moves to Pia (already a lead) when Pia fills
/// a form there; A's stale hint must not send the cookie's next event to Ola.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_moving_between_two_known_leads_leaves_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let open = sqlite(dir.path());
    let a = process(&open, dir.path());
    let b = process(&open, dir.path());
    let ola = accepted(a.ember().ingest.event(&raw(json!({"event_id": "o1", "type": "page_view", "email": "ola@acme.example", "anonymous_id": "shared-pc"}))).await);
    let pia = accepted(b.ember().ingest.event(&raw(json!({"event_id": "p1", "type": "page_view", "email": "pia@acme.example"}))).await);
    let moved = b
        .ember()
        .ingest.event(&raw(json!({"event_id": "p2", "type": "form_submit", "email": "pia@acme.example", "anonymous_id": "shared-pc",
            "properties": {"form_id": "contact-us"}})))
        .await;
    assert_eq!(accepted(moved), pia);
    assert!(!b.ember().lead(&ola).await.unwrap().unwrap().anonymous_ids.contains(&"shared-pc".to_string()), "Ola's lead gave the cookie up");
    let demo = a.ember().ingest.event(&raw(json!({"event_id": "d1", "type": "demo_request", "anonymous_id": "shared-pc"}))).await;
    assert_eq!(accepted(demo), pia);
    assert_eq!(a.ember().lead(&ola).await.unwrap().unwrap().stage, "lead");
}

type Hook = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A store that runs a hook just before its first commit is sent: another process's change
/// lands between this process's read and its write. Everything else goes to the real store.
struct BeforeFirstCommit {
    inner: Arc<dyn Store>,
    hook: Mutex<Option<Hook>>,
}

#[async_trait]
impl Store for BeforeFirstCommit {
    async fn lookup(&self, identity: &Identity) -> Result<Option<String>, StoreError> {
        self.inner.lookup(identity).await
    }
    async fn get(&self, lead_id: &str) -> Result<Option<LeadRecord>, StoreError> {
        self.inner.get(lead_id).await
    }
    async fn seen(&self, event_id: &str) -> Result<bool, StoreError> {
        self.inner.seen(event_id).await
    }
    async fn commit(&self, commit: Commit) -> Result<u64, StoreError> {
        let hook = self.hook.lock().unwrap().take();
        if let Some(h) = hook {
            h().await;
        }
        self.inner.commit(commit).await
    }
    async fn due(&self, kind: DueKind, now: Time, cursor: Option<String>, limit: usize) -> Result<DuePage, StoreError> {
        self.inner.due(kind, now, cursor, limit).await
    }
    async fn events(&self, lead_id: &str) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.events(lead_id).await
    }
    async fn erase(&self, lead_id: &str) -> Result<bool, StoreError> {
        self.inner.erase(lead_id).await
    }
    async fn tallies(&self, from: chrono::NaiveDate, to: chrono::NaiveDate) -> Result<Vec<Tally>, StoreError> {
        self.inner.tallies(from, to).await
    }
    async fn scan(&self, cursor: Option<String>, limit: usize) -> Result<(Vec<Lead>, Option<String>), StoreError> {
        self.inner.scan(cursor, limit).await
    }
}

/// The move lands after process A has read Ola's lead (still holding the cookie) for the
/// cookie's demo request and before A commits: Ola's version guard makes A's commit conflict,
/// and A's retry finds the cookie with Noé.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_between_read_and_commit_makes_the_stale_commit_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let open = sqlite(dir.path());
    let b = Arc::new(process(&open, dir.path()));
    let seed = process(&open, dir.path());
    let ola = accepted(seed.ember().ingest.event(&raw(json!({"event_id": "o1", "type": "page_view", "email": "ola@acme.example", "anonymous_id": "shared-pc"}))).await);

    let noe = Arc::new(Mutex::new(None::<String>));
    let (b2, noe2) = (b.clone(), noe.clone());
    let hook: Hook = Box::new(move || {
        Box::pin(async move {
            let s = b2
                .ember()
                .ingest.event(&raw(json!({"event_id": "n1", "type": "form_submit", "email": "noe@acme.example", "anonymous_id": "shared-pc",
                    "properties": {"form_id": "contact-us"}})))
                .await;
            *noe2.lock().unwrap() = Some(accepted(s));
        })
    });
    let store: Arc<dyn Store> = Arc::new(BeforeFirstCommit { inner: open(), hook: Mutex::new(Some(hook)) });
    let a = ScenarioHarness::with_store(model(), store, dir.path(), start()).unwrap();
    let demo = accepted(a.ember().ingest.event(&raw(json!({"event_id": "d1", "type": "demo_request", "anonymous_id": "shared-pc"}))).await);
    let noe = noe.lock().unwrap().clone().expect("the move ran before A's commit");
    assert_eq!(demo, noe, "A's first plan (Ola) conflicted; the retry found Noé");
    let ola_now = a.ember().lead(&ola).await.unwrap().unwrap();
    assert_eq!((ola_now.stage.as_str(), ola_now.event_count), ("lead", 1), "nothing of the demo request reached Ola");
}
