//! `kill -9` of `ember dev` (a real process on a real SQLite file) while clients send events
//! and retry with the same ids, and at named points of a drip run and of the publish path:
//!
//! - `drip-after-claim`: the step is claimed (committed), nothing sent yet;
//! - `drip-after-send`: the email is in the outbox, its outcome not recorded;
//! - `drip-after-commit`: the outcome is recorded, the next step not begun;
//! - `before-publish`: a commit queued domain messages (`lead.qualified`) that are not
//!   published yet.
//!
//! Each point is armed through `FAILPOINTS=<point>=return` (`before-publish=1*off->return`: at
//! the second publish, the qualifying commit's), which makes the process send
//! itself SIGKILL there (`ember_service::failpoints`). After every kill the server is restarted
//! on the same data folder and port, the clients' retries go on, and the test checks the
//! files and the API: every event applied once (scores equal an in-process fault-free run, each
//! event id once in the timeline), no step emailed twice (the outbox index and `.eml` files per
//! lead and step), every step sent or marked `unknown`, every qualification delivered to the
//! webhook log after the restart.
//!
//! A test target of its own, not a module of `e2e`: it needs the feature (a build with the
//! points compiled in), which the other end-to-end tests do not run under:
//!
//! ```text
//! cargo test -p ember --features failpoints --test kills -- --nocapture
//! ```

use ember_service::ports::Identity;
use ember_testing::dev::{Dev, RELIABILITY};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The crash tests' `ember dev` (`ember_testing::dev::reliability`) of this build.
async fn start(data: &Path, port: Option<u16>, env: &[(&str, &str)]) -> Dev {
    ember_testing::dev::reliability(env!("CARGO_BIN_EXE_ember"), data, port, env).await
}

/// Posts one event until it is stored (`accepted` or `duplicate`), retrying connection errors
/// and 5xx with the same event id; returns the number of requests made.
async fn post_until_stored(client: &reqwest::Client, base: &str, event: &Value) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut requests = 0;
    loop {
        requests += 1;
        let r = client
            .post(format!("{base}/v1/events"))
            .bearer_auth(RELIABILITY.write)
            .header("content-type", "application/json")
            .body(event.to_string())
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        if let Ok(r) = r {
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            if body["accepted"] == 1 || body["duplicate"] == 1 {
                return requests;
            }
            let reason = body["results"][0]["reason"].as_str().unwrap_or("");
            assert!(status >= 500 || reason.starts_with("not stored"), "event {} refused: {status} {body}", event["event_id"]);
        }
        assert!(Instant::now() < deadline, "event {} not stored within 60 s", event["event_id"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get(base: &str, path: &str) -> Value {
    let r = reqwest::Client::new().get(format!("{base}{path}")).bearer_auth(RELIABILITY.admin).send().await.expect("ember dev answers");
    r.json().await.unwrap_or(Value::Null)
}

/// The events of one run: buyers (a contact form and a demo request: one `lead.qualified`
/// each), then readers (newsletter subscribers: one campaign email each), at fixed times.
fn workload(tag: &str, readers: usize, buyers: usize) -> Vec<Value> {
    let at = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let mut out = Vec::new();
    for i in 0..buyers {
        let email = format!("{tag}-b{i}@bigbank.example");
        out.push(json!({"event_id": format!("{tag}-b{i}-form"), "type": "form_submit", "email": email, "occurred_at": at,
            "properties": {"form_id": "contact-us"},
            "traits": {"job_title": "Head of Marketing", "company_size": 6000, "industry": "software", "country": "FR"}}));
        out.push(json!({"event_id": format!("{tag}-b{i}-demo"), "type": "demo_request", "email": email, "occurred_at": at}));
    }
    for i in 0..readers {
        out.push(json!({"event_id": format!("{tag}-r{i}"), "type": "newsletter_subscribe", "email": format!("{tag}-r{i}@reader.example"), "occurred_at": at}));
    }
    out
}

/// The same events through the same services in-process, with no crash: the oracle.
async fn oracle(events: &[Value]) -> BTreeMap<String, Value> {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/b2b-saas.yaml");
    let model = Arc::new(ember_service::model_files::load_model(&root).expect("model"));
    let h = ember::local::ScenarioHarness::embedded(model, dir.path(), chrono::Utc::now()).await.expect("harness");
    let mut scores = BTreeMap::new();
    for e in events {
        let raw: ember_scoring::event::RawEvent = serde_json::from_value(e.clone()).unwrap();
        assert!(h.services().ingest.event(&raw).await.is_accepted(), "oracle: {e}");
    }
    for e in events {
        let email = e["email"].as_str().unwrap().to_string();
        let lead = h.services().lead_by(&Identity::Email(email.clone())).await.unwrap().expect("oracle lead");
        scores.insert(email, serde_json::to_value(&lead.scores).unwrap());
    }
    scores
}

/// What the data folder and the API say after a run.
#[derive(Debug, Default)]
struct Check {
    events: usize,
    claimed: usize,
    emails: usize,
    unknown: usize,
    webhooks: usize,
    duplicates: usize,
    lost: usize,
}

/// Waits until every reader's first step has an outcome and every buyer's qualification is in
/// the webhook log (or `within` passes), then checks everything.
async fn converge_and_check(dev: &mut Dev, events: &[Value], want: &BTreeMap<String, Value>, within: Duration) -> Check {
    let base = dev.base();
    let data = dev.data.clone();
    let emails: BTreeSet<String> = events.iter().map(|e| e["email"].as_str().unwrap().to_string()).collect();
    let deadline = Instant::now() + within;
    let mut leads: BTreeMap<String, Value> = BTreeMap::new();
    loop {
        leads.clear();
        for email in &emails {
            leads.insert(email.clone(), get(&base, &format!("/v1/leads?email={email}")).await);
        }
        // A step claimed by the killed process stays claimed until its lease (15 min) runs
        // out: never resent meanwhile, then marked unknown (below).
        let readers_done = leads.iter().filter(|(e, _)| e.contains("@reader.")).all(|(_, l)| {
            let c = &l["campaigns"][0];
            !c["pending_send"].is_null() || c["log"].as_array().is_some_and(|log| log.iter().any(|s| s["step"] == 0 && s["outcome"] != "retry"))
        });
        let hooks = webhook_log(&data);
        let buyers_done = leads
            .iter()
            .filter(|(e, _)| e.contains("@bigbank."))
            .all(|(_, l)| hooks.iter().any(|d| d["lead_id"] == l["id"] && d["kind"] == "lead.qualified"));
        if (readers_done && buyers_done) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut check = Check::default();
    check.claimed = leads.values().filter(|l| !l["campaigns"][0]["pending_send"].is_null()).count();
    if check.claimed > 0 {
        // Past the lease: one drip run over the same SQLite file with the clock 16 minutes on.
        leads = after_the_lease(dev, &emails).await;
    }
    let base = dev.base();
    // Events: each once in its lead's timeline, scores as without the crash.
    for (email, lead) in &leads {
        assert_eq!(&lead["scores"], &want[email], "{email}: scores differ from the run without a crash");
        let id = lead["id"].as_str().unwrap_or_else(|| panic!("{email}: no lead after the restart: {lead}"));
        let tl = get(&base, &format!("/v1/leads/{id}/timeline")).await;
        let ids: Vec<String> = tl["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["event"]["id"].as_str().map(String::from))
            .filter(|i| !i.starts_with("sys:"))
            .collect();
        let distinct: BTreeSet<&String> = ids.iter().collect();
        check.duplicates += ids.len() - distinct.len();
        let sent: Vec<&str> = events.iter().filter(|e| e["email"] == email.as_str()).map(|e| e["event_id"].as_str().unwrap()).collect();
        check.lost += sent.iter().filter(|s| !distinct.iter().any(|d| d.as_str() == **s)).count();
        check.events += sent.len();
    }
    // Emails: the outbox index and the .eml files, per lead and step.
    let index = std::fs::read_to_string(data.join("outbox/index.jsonl")).unwrap_or_default();
    let mut per_step: BTreeMap<(String, String, u64), usize> = BTreeMap::new();
    for line in index.lines() {
        let e: Value = serde_json::from_str(line).expect("an index line");
        *per_step.entry((e["lead_id"].as_str().unwrap().into(), e["campaign"].as_str().unwrap().into(), e["step"].as_u64().unwrap())).or_default() += 1;
    }
    let eml = std::fs::read_dir(data.join("outbox")).map(|d| d.filter_map(|e| e.ok()).filter(|e| e.path().extension().is_some_and(|x| x == "eml")).count()).unwrap_or(0);
    assert_eq!(eml, index.lines().count(), "one .eml file per index line");
    check.emails = eml;
    check.duplicates += per_step.values().map(|n| n - 1).sum::<usize>();
    for (email, lead) in leads.iter().filter(|(e, _)| e.contains("@reader.")) {
        let c = &lead["campaigns"][0];
        let last = c["log"].as_array().and_then(|log| log.iter().rev().find(|s| s["step"] == 0)).cloned().unwrap_or(Value::Null);
        let n = per_step.get(&(lead["id"].as_str().unwrap().to_string(), c["campaign"].as_str().unwrap_or("").to_string(), 0)).copied().unwrap_or(0);
        match last["outcome"].as_str() {
            Some("sent") if n == 1 => {}
            Some("unknown") => check.unknown += 1,
            other => {
                println!("{email}: step 0 ended {other:?} with {n} email(s); pending {}", c["pending_send"]);
                check.lost += 1;
            }
        }
    }
    // Webhooks: one lead.qualified id per buyer, none lost.
    let hooks = webhook_log(&data);
    let mut ids_per_lead: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for d in hooks.iter().filter(|d| d["kind"] == "lead.qualified") {
        ids_per_lead.entry(d["lead_id"].as_str().unwrap().into()).or_default().insert(d["id"].as_str().unwrap().into());
    }
    for (email, lead) in leads.iter().filter(|(e, _)| e.contains("@bigbank.")) {
        match ids_per_lead.get(lead["id"].as_str().unwrap()) {
            Some(ids) => check.duplicates += ids.len() - 1,
            None => {
                println!("{email}: no lead.qualified delivered");
                check.lost += 1;
            }
        }
    }
    check.webhooks = hooks.len();
    check
}

/// Stops `dev`, runs the scheduled jobs once in-process on its data folder (the same SQLite
/// file, outbox and webhook log) with the clock past the send lease, restarts it, and reads
/// the leads again.
async fn after_the_lease(dev: &mut Dev, emails: &BTreeSet<String>) -> BTreeMap<String, Value> {
    dev.kill9();
    let later = chrono::Utc::now() + chrono::Duration::minutes(16);
    {
        let model = Arc::new(ember_service::model_files::load_model(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/b2b-saas.yaml")).unwrap());
        let store = Arc::new(ember_store_sqlite::SqliteStore::open(&dev.data.join("ember.db")).expect("the same SQLite file"));
        let clock = Arc::new(ember_service::ports::ManualClock::at(later));
        let (webhooks, recorded) = ember::local::http_webhooks(&dev.data);
        let services = ember::local::LocalServices::open(
            model,
            store,
            &dev.data,
            ember::local::LocalOptions {
                public_url: "http://127.0.0.1".into(),
                unsubscribe_secret: b"reliability-test-unsubscribe-secret".to_vec(),
                clock,
                webhooks,
                mailer: None,
                copies: vec![recorded],
            },
        )
        .expect("local services");
        let r = services.ember.jobs.tick(later, &|| true).await;
        assert_eq!(r.failed, 0, "{r:?}");
    }
    let restarted = start(&dev.data, Some(dev.port), &[]).await;
    let mut leads = BTreeMap::new();
    for email in emails {
        leads.insert(email.clone(), get(&restarted.base(), &format!("/v1/leads?email={email}")).await);
    }
    *dev = restarted;
    leads
}

fn webhook_log(data: &Path) -> Vec<Value> {
    std::fs::read_to_string(data.join("webhooks.jsonl")).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// One crash at `point`: start armed, send everything, see it die there, restart unarmed,
/// let the retries and the jobs finish, check.
async fn crash_at(point: &str, actions: &str) -> Check {
    let data = tempfile::tempdir().unwrap();
    let tag = format!("{}-{}", point, uuid::Uuid::new_v4().simple());
    let events = workload(&tag, 6, 4);
    let want = oracle(&events).await;
    let armed = format!("{point}={actions}");
    let mut dev = start(data.path(), None, &[("FAILPOINTS", armed.as_str())]).await;
    let base = dev.base();
    let sender = {
        let events = events.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut requests = 0;
            for e in &events {
                requests += post_until_stored(&client, &base, e).await;
            }
            requests
        })
    };
    dev.wait_killed(Duration::from_secs(30), point).await;
    let port = dev.port;
    drop(dev);
    let dev = start(data.path(), Some(port), &[]).await;
    let requests = sender.await.expect("sender");
    let mut dev = dev;
    let check = converge_and_check(&mut dev, &events, &want, Duration::from_secs(20)).await;
    println!(
        "kill -9 at {point}: 1 kill, events {} ({requests} requests), emails {}, steps left claimed by the kill {} (marked unknown after the lease: {}), webhooks {}; duplicates {}, lost {}",
        check.events, check.emails, check.claimed, check.unknown, check.webhooks, check.duplicates, check.lost
    );
    check
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_the_drip_claim() {
    let c = crash_at("drip-after-claim", "return").await;
    assert_eq!((c.duplicates, c.lost), (0, 0), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_the_send() {
    let c = crash_at("drip-after-send", "return").await;
    assert_eq!((c.duplicates, c.lost), (0, 0), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_the_send_is_committed() {
    let c = crash_at("drip-after-commit", "return").await;
    assert_eq!((c.duplicates, c.lost), (0, 0), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_before_the_publish() {
    // The first publish is the first buyer's `lead.stage_changed` (to lead); the second, the
    // commit that qualified them: `lead.qualified` queued, not yet on the bus.
    let c = crash_at("before-publish", "1*off->return").await;
    assert_eq!((c.duplicates, c.lost), (0, 0), "{c:?}");
}

/// Plain `kill -9` at seeded random moments while four clients send (and retry) page views:
/// three kills, three restarts, then every event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_clients_send_loses_and_doubles_nothing() {
    use rand::{Rng, SeedableRng};
    let data = tempfile::tempdir().unwrap();
    let tag = format!("visits-{}", uuid::Uuid::new_v4().simple());
    let at = chrono::Utc::now() - chrono::Duration::hours(2);
    let mut events = Vec::new();
    for i in 0..200 {
        let path = if i % 3 == 0 { "/pricing" } else { "/blog/post" };
        events.push(json!({"event_id": format!("{tag}-{i}"), "type": "page_view", "email": format!("{tag}-{}@visits.example", i % 10),
            "occurred_at": (at + chrono::Duration::seconds(i)).to_rfc3339(), "properties": {"path": path}}));
    }
    let want = oracle(&events).await;
    let mut dev = start(data.path(), None, &[]).await;
    let (port, base) = (dev.port, dev.base());
    let mut clients = Vec::new();
    for c in 0..4 {
        // Each client owns the leads i % 10 ∈ {c, c+4, c+8}: per-lead order is kept.
        let mine: Vec<Value> = events.iter().enumerate().filter(|(i, _)| (i % 10) % 4 == c).map(|(_, e)| e.clone()).collect();
        let base = base.clone();
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut requests = 0;
            for e in &mine {
                requests += post_until_stored(&client, &base, e).await;
            }
            requests
        }));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut kills = 0;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(300..900))).await;
        dev.kill9();
        kills += 1;
        drop(dev);
        dev = start(data.path(), Some(port), &[]).await;
    }
    let mut requests = 0;
    for c in clients {
        requests += c.await.expect("client");
    }
    let mut duplicates = 0;
    let mut lost = 0;
    for (email, scores) in &want {
        let lead = get(&dev.base(), &format!("/v1/leads?email={email}")).await;
        assert_eq!(&lead["scores"], scores, "{email}: scores differ from the run without kills");
        let tl = get(&dev.base(), &format!("/v1/leads/{}/timeline", lead["id"].as_str().unwrap())).await;
        let ids: Vec<String> = tl["events"].as_array().unwrap().iter().filter_map(|e| e["event"]["id"].as_str().map(String::from)).collect();
        let distinct: BTreeSet<&String> = ids.iter().collect();
        duplicates += ids.len() - distinct.len();
        lost += events.iter().filter(|e| e["email"] == email.as_str() && !distinct.iter().any(|d| e["event_id"] == d.as_str())).count();
    }
    println!("kill -9 while sending: {kills} kills, events {} ({requests} requests), duplicates {duplicates}, lost {lost}", events.len());
    assert_eq!((duplicates, lost), (0, 0));
}
