//! The HTTP API attacked with a public write key, as a real `ember dev` process on loopback:
//! types only Ember records, oversized traits, properties and batches, Unicode identity tricks,
//! times out of range, and forged or misplaced keys. Every refusal is a 4xx with a reason, never
//! a 500, and leaves the lead as it was.

use ember_testing::dev::{dev, free_port, get_json, post_events, Dev, Keys};
use serde_json::{json, Value};
use std::path::Path;

/// Keys of the test server (configured as hashes, like in production).
const WRITE_KEY: &str = "ek_w_abuse-test-write-key-0123456789";
const ADMIN_KEY: &str = "ek_a_abuse-test-admin-key-0123456789";
const CRM_SECRET: &str = "whsec_YWJ1c2UtdGVzdC1jcm0tc2VjcmV0LTAxMjM0NQ==";
const UNSUBSCRIBE_SECRET: &str = "abuse-test-unsubscribe-secret";
const SITE: &str = "https://www.example.com";

const KEYS: Keys = Keys { write: WRITE_KEY, origin: Some(SITE), admin: ADMIN_KEY, crm: Some(CRM_SECRET), unsubscribe: Some(UNSUBSCRIBE_SECRET) };

async fn start(data: &Path) -> Dev {
    dev(crate::EMBER, data, free_port()).keys(&KEYS).start().await
}

/// `POST /v1/events` with the write key: status and JSON body.
async fn post(base: &str, body: &Value) -> (u16, Value) {
    post_events(base, WRITE_KEY, &body.to_string()).await
}

/// An admin `GET`: status and JSON body.
async fn get(url: &str) -> (u16, Value) {
    get_json(url, ADMIN_KEY).await
}

async fn lead_by_email(base: &str, email: &str) -> Value {
    let url = reqwest::Url::parse_with_params(&format!("{base}/v1/leads"), [("email", email)]).unwrap();
    let (s, lead) = get(url.as_str()).await;
    assert_eq!(s, 200, "{email:?}: {lead}");
    lead
}

fn reasons(body: &Value) -> Vec<String> {
    body["results"].as_array().map(|r| r.iter().map(|x| x["reason"].as_str().unwrap_or("").to_string()).collect()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_types_are_refused_with_the_write_key() {
    let data = tempfile::tempdir().unwrap();
    let dev = start(data.path()).await;
    let (s, b) = post(&dev.base(), &json!({"event_id": "s-0", "type": "newsletter_subscribe", "email": "victim@corp.example"})).await;
    assert_eq!(s, 202, "{b}");
    let before = lead_by_email(&dev.base(), "victim@corp.example").await;
    assert_eq!(before["subscribed"], true, "{before}");

    // One forged bounce alone: 400 with the reason.
    let (s, b) = post(&dev.base(), &json!({"event_id": "s-1", "type": "email_bounced", "email": "victim@corp.example",
        "properties": {"bounce_type": "Permanent"}})).await;
    assert_eq!(s, 400, "{b}");
    assert!(reasons(&b)[0].contains("recorded only by Ember itself"), "{b}");

    // Every type only Ember records, in one batch beside a good event: each refused, the good one kept.
    let forged = ["email_bounced", "email_complaint", "email_delivered", "email_sent", "ember.crm.rejected", "ember.crm.won", "ember.decay"];
    let mut batch: Vec<Value> = forged
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"event_id": format!("f-{i}"), "type": t, "email": "victim@corp.example", "properties": {"bounce_type": "Permanent"}}))
        .collect();
    batch.push(json!({"event_id": "ok-1", "type": "page_view", "email": "victim@corp.example", "properties": {"path": "/pricing"}}));
    let (s, b) = post(&dev.base(), &json!({ "batch": batch })).await;
    assert_eq!(s, 202, "{b}");
    assert_eq!((b["accepted"].as_u64(), b["rejected"].as_u64()), (Some(1), Some(forged.len() as u64)), "{b}");
    for (t, r) in forged.iter().zip(reasons(&b)) {
        assert!(r.contains(&format!("`{t}`")) && r.contains("recorded only by Ember itself"), "{t}: {r}");
    }

    let after = lead_by_email(&dev.base(), "victim@corp.example").await;
    assert_eq!(after["subscribed"], true, "no forged event suppressed the lead: {after}");
    assert_eq!(after["consent"], before["consent"], "{after}");
    assert_eq!(after["event_count"], 2, "only the subscribe and the page view: {after}");
    assert!(!after["tags"].as_array().unwrap().contains(&json!("disqualified")), "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_traits_properties_and_batches_are_refused_and_the_lead_unchanged() {
    let data = tempfile::tempdir().unwrap();
    let dev = start(data.path()).await;
    let email = "big@corp.example";
    let (s, b) = post(&dev.base(), &json!({"event_id": "b-0", "type": "form_submit", "email": email, "traits": {"first_name": "Big"}})).await;
    assert_eq!(s, 202, "{b}");
    let before = lead_by_email(&dev.base(), email).await;

    let many: serde_json::Map<String, Value> = (0..101).map(|i| (format!("t{i}"), json!(i))).collect();
    let x = |n: usize| "x".repeat(n);
    let cases = [
        (json!({"traits": many}), "`traits` has 101 keys; at most 100"),
        (json!({"traits": {x(129): 1}}), "longer than 128 bytes"),
        (json!({"traits": {"bio": x(4097)}}), "`traits.bio` is 4097 bytes"),
        (json!({"properties": {"a": {"b": {"c": {"d": {"e": 1}}}}}}), "`properties.a.b.c.d` nests deeper than 4"),
        (json!({"properties": {"ids": vec![0; 101]}}), "`properties.ids` has 101 items"),
        (json!({"context": {"referrer": x(4097)}}), "`context.referrer` is 4097 bytes"),
        (json!({"traits": {"a": x(4000), "b": x(4000)}, "properties": {"c": x(4000), "d": x(4000), "e": x(4000)}}), "at most 16384 bytes"),
    ];
    for (i, (extra, want)) in cases.iter().enumerate() {
        let mut ev = json!({"event_id": format!("over-{i}"), "type": "page_view", "email": email});
        ev.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let (s, b) = post(&dev.base(), &ev).await;
        assert_eq!(s, 400, "{want}: {b}");
        assert!(reasons(&b)[0].contains(want), "expected `{want}` in {b}");
    }

    // Growing one lead event by event: each event is within its limits, but the lead's traits
    // may not pass 16 KiB. The event that would is refused; the lead keeps what it had.
    let mut accepted = 0;
    let mut refused = None;
    for i in 0..6 {
        let traits: serde_json::Map<String, Value> = (0..3).map(|k| (format!("grow_{i}_{k}"), json!(x(1500)))).collect();
        let (s, b) = post(&dev.base(), &json!({"event_id": format!("grow-{i}"), "type": "page_view", "email": email, "traits": traits})).await;
        if s == 202 {
            accepted += 1;
        } else {
            assert_eq!(s, 400, "{b}");
            refused = Some(reasons(&b)[0].clone());
            break;
        }
    }
    let refused = refused.expect("the lead's traits stop growing");
    assert!(refused.contains("a lead holds at most 16384 bytes of traits"), "{refused}");
    assert_eq!(accepted, 3, "three events of 4.5 KB fit, the fourth would pass 16 KiB");
    let grown = lead_by_email(&dev.base(), email).await;
    let size = serde_json::to_vec(&grown["traits"]).unwrap().len();
    assert!(size <= 16 * 1024, "lead traits {size} bytes");
    assert_eq!(grown["event_count"], before["event_count"].as_u64().unwrap() + 3, "{grown}");
    // A trait set to null makes room again; an event that adds nothing is still taken.
    let (s, b) = post(&dev.base(), &json!({"event_id": "shrink", "type": "page_view", "email": email, "traits": {"grow_0_0": null}})).await;
    assert_eq!(s, 202, "{b}");

    // A batch of 100 events that all add traits to the same lead: the lead stays bounded.
    let batch: Vec<Value> = (0..100)
        .map(|i| json!({"event_id": format!("flood-{i}"), "type": "page_view", "email": email, "traits": {format!("flood_{i}"): x(2000)}}))
        .collect();
    let (s, b) = post(&dev.base(), &json!({ "batch": batch })).await;
    assert_eq!(s, 202, "{}", b["accepted"]);
    assert!(b["rejected"].as_u64().unwrap() >= 95, "{}", b["rejected"]);
    let flooded = lead_by_email(&dev.base(), email).await;
    assert!(serde_json::to_vec(&flooded["traits"]).unwrap().len() <= 16 * 1024);

    // One cookie after another for the same person: at most 100 anonymous ids per lead.
    let cookies: Vec<Value> =
        (0..100).map(|i| json!({"event_id": format!("c-{i}"), "type": "page_view", "email": email, "anonymous_id": format!("cookie-{i}")})).collect();
    let (s, b) = post(&dev.base(), &json!({ "batch": cookies })).await;
    assert_eq!((s, b["accepted"].as_u64()), (202, Some(100)), "{}", b["rejected"]);
    let (s, b) = post(&dev.base(), &json!({"event_id": "c-100", "type": "page_view", "email": email, "anonymous_id": "cookie-100"})).await;
    assert_eq!(s, 400, "{b}");
    assert!(reasons(&b)[0].contains("a lead holds at most 100"), "{b}");
    let (s, b) = post(&dev.base(), &json!({"event_id": "c-again", "type": "page_view", "email": email, "anonymous_id": "cookie-7"})).await;
    assert_eq!(s, 202, "a cookie it already holds is fine: {b}");
    // A crafted 4 KB UTM value is not copied whole into the lead's touches.
    let (s, b) = post(&dev.base(), &json!({"event_id": "utm", "type": "page_view", "email": email,
        "context": {"utm": {"source": x(4000), "campaign": x(4000)}, "referrer": x(4000)}})).await;
    assert_eq!(s, 202, "{b}");
    let lead = lead_by_email(&dev.base(), email).await;
    assert_eq!(lead["last_touch"]["source"].as_str().map(str::len), Some(1024), "{}", lead["last_touch"]);
    assert_eq!(lead["last_touch"]["referrer"].as_str().map(str::len), Some(1024));

    // 101 events or more than 256 KiB: the whole request is refused and the lead unchanged.
    let lead_before = lead_by_email(&dev.base(), email).await;
    let big: Vec<Value> = (0..101).map(|i| json!({"event_id": format!("n-{i}"), "type": "page_view", "email": email})).collect();
    let (s, b) = post(&dev.base(), &json!({ "batch": big })).await;
    assert_eq!((s, b["error"]["code"].as_str()), (413, Some("batch_too_large")), "{b}");
    let heavy: Vec<Value> = (0..70)
        .map(|i| json!({"event_id": format!("h-{i}"), "type": "page_view", "email": email, "properties": {"p": x(4000)}}))
        .collect();
    let (s, b) = post(&dev.base(), &json!({ "batch": heavy })).await;
    assert_eq!((s, b["error"]["code"].as_str()), (413, Some("too_large")), "{b}");
    let lead_after = lead_by_email(&dev.base(), email).await;
    assert_eq!((&lead_after["event_count"], &lead_after["traits"]), (&lead_before["event_count"], &lead_before["traits"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unicode_identity_tricks_make_one_lead() {
    let data = tempfile::tempdir().unwrap();
    let dev = start(data.path()).await;
    let nfc = "h\u{e9}l\u{e8}ne@soci\u{e9}t\u{e9}.example";
    let variants = [
        nfc.to_string(),
        "he\u{301}le\u{300}ne@socie\u{301}te\u{301}.example".to_string(), // NFD
        format!("\u{200b}{nfc}"),                                           // zero-width space
        format!("\u{feff}{nfc}"),                                           // byte order mark
        "h\u{e9}l\u{e8}\u{ad}ne@soci\u{e9}t\u{e9}.example".to_string(),     // soft hyphen
        "h\u{e9}l\u{e8}ne\u{200d}@soci\u{e9}t\u{e9}.example\u{2069}".to_string(), // joiner, bidi isolate
        format!("  H\u{c9}L\u{c8}NE@SOCI\u{c9}T\u{c9}.EXAMPLE\t"),          // case and whitespace
    ];
    let mut leads = Vec::new();
    for (i, email) in variants.iter().enumerate() {
        let (s, b) = post(&dev.base(), &json!({"event_id": format!("u-{i}"), "type": "page_view", "email": email, "properties": {"path": "/"}})).await;
        assert_eq!(s, 202, "{email:?}: {b}");
        leads.push(b["results"][0]["lead_id"].as_str().unwrap().to_string());
    }
    assert!(leads.iter().all(|l| *l == leads[0]), "one lead for every spelling: {leads:?}");
    // Every lookup spelling finds it; the stored address is the NFC form.
    for email in &variants {
        let lead = lead_by_email(&dev.base(), email).await;
        assert_eq!(lead["id"], leads[0].as_str());
        assert_eq!(lead["email"], nfc);
        assert_eq!(lead["event_count"], variants.len());
    }
    // Only invisible characters: no address.
    let (s, b) = post(&dev.base(), &json!({"event_id": "u-x", "type": "page_view", "email": "\u{200b}\u{feff}"})).await;
    assert_eq!(s, 400, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn far_past_and_future_occurred_at_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let dev = start(data.path()).await;
    let now = chrono::Utc::now();
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let refused = [
        ("0001-01-01T00:00:00Z".to_string(), "before 2000-01-01T00:00:00Z"),
        ("1999-12-31T23:59:59Z".to_string(), "before 2000-01-01T00:00:00Z"),
        ("1970-01-01T00:00:00+02:00".to_string(), "before 2000-01-01T00:00:00Z"),
        (fmt(now + chrono::Duration::minutes(10)), "more than 5 minutes in the future"),
        ("9999-12-31T23:59:59Z".to_string(), "more than 5 minutes in the future"),
    ];
    for (i, (t, want)) in refused.iter().enumerate() {
        let (s, b) = post(&dev.base(), &json!({"event_id": format!("t-{i}"), "type": "page_view", "email": "time@corp.example", "occurred_at": t})).await;
        assert_eq!(s, 400, "{t}: {b}");
        assert!(reasons(&b)[0].contains(want), "{t}: {b}");
    }
    for (i, t) in ["2000-01-01T00:00:00Z".to_string(), fmt(now + chrono::Duration::minutes(4))].iter().enumerate() {
        let (s, b) = post(&dev.base(), &json!({"event_id": format!("ok-{i}"), "type": "page_view", "email": "time@corp.example", "occurred_at": t})).await;
        assert_eq!(s, 202, "{t}: {b}");
    }
    let lead = lead_by_email(&dev.base(), "time@corp.example").await;
    assert_eq!(lead["event_count"], 2);
    assert!(lead["created_at"].as_str().unwrap().starts_with("2000-01-01"), "{lead}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_misplaced_keys_never_get_in() {
    let data = tempfile::tempdir().unwrap();
    let dev = start(data.path()).await;
    let c = reqwest::Client::new();
    let (s, b) = post(&dev.base(), &json!({"event_id": "k-0", "type": "page_view", "email": "keys@corp.example"})).await;
    assert_eq!(s, 202, "{b}");
    let id = lead_by_email(&dev.base(), "keys@corp.example").await["id"].as_str().unwrap().to_string();
    let event = json!({"event_id": "k-1", "type": "page_view", "email": "keys@corp.example"}).to_string();

    let truncated = &WRITE_KEY[..WRITE_KEY.len() - 1];
    let altered = format!("{}X", &WRITE_KEY[..WRITE_KEY.len() - 1]);
    let admin_altered = format!("{}X", &ADMIN_KEY[..ADMIN_KEY.len() - 1]);
    let long = format!("ek_w_{}", "a".repeat(16 * 1024));
    let bad_keys: Vec<String> =
        vec![truncated.to_string(), altered, "ek_w_".into(), long, WRITE_KEY.to_uppercase(), format!("{WRITE_KEY}{WRITE_KEY}"), admin_altered.clone()];

    // Ingest with a key that is not a write key: 401, nothing stored.
    let ingest_with = |h: reqwest::header::HeaderValue| {
        let req = c.post(format!("{}/v1/events", dev.base())).header("authorization", h).body(event.clone());
        async move { req.send().await.unwrap().status().as_u16() }
    };
    for k in &bad_keys {
        let s = ingest_with(format!("Bearer {k}").parse().unwrap()).await;
        assert_eq!(s, 401, "ingest with {:?}…", &k.chars().take(24).collect::<String>());
    }
    // Malformed headers, bytes that are not UTF-8 (a multi-byte key sent raw) included.
    let raw_utf8 = reqwest::header::HeaderValue::from_bytes("Bearer ek_w_é🔥ü".as_bytes()).unwrap();
    let latin1 = reqwest::header::HeaderValue::from_bytes(b"Bearer ek_w_\xe9\xff").unwrap();
    for h in ["Basic ek_w_abuse".parse().unwrap(), "Bearer".parse().unwrap(), "Bearer ".parse().unwrap(), "bearer".parse().unwrap(),
        "Token ek_w_x".parse().unwrap(), raw_utf8, latin1]
    {
        assert_eq!(ingest_with(h.clone()).await, 401, "authorization {h:?}");
    }
    assert_eq!(lead_by_email(&dev.base(), "keys@corp.example").await["event_count"], 1, "nothing was stored");
    // The admin key may ingest from a server (no `Origin`), never from a browser, and even then
    // never a type only Ember records.
    let from_browser = c.post(format!("{}/v1/events", dev.base())).bearer_auth(ADMIN_KEY).header("origin", SITE).body(event.clone());
    assert_eq!(from_browser.send().await.unwrap().status().as_u16(), 403);
    let bounce = json!({"event_id": "k-3", "type": "email_bounced", "email": "keys@corp.example"}).to_string();
    let r = c.post(format!("{}/v1/events", dev.base())).bearer_auth(ADMIN_KEY).body(bounce).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("recorded only by Ember itself"));
    // Key in the body (sendBeacon): a wrong or non-string key is refused.
    for body_key in [json!("ek_w_nope"), json!(truncated), json!(admin_altered), json!("ek_w_é🔥ü\u{0}"), json!(42), json!({"k": WRITE_KEY})] {
        let body = json!({"write_key": body_key, "event_id": "k-2", "type": "page_view", "email": "keys@corp.example"});
        let s = c.post(format!("{}/v1/events", dev.base())).header("content-type", "text/plain").body(body.to_string()).send().await.unwrap();
        assert!(matches!(s.status().as_u16(), 400 | 401), "write_key {body_key}: {}", s.status());
    }

    // Admin routes with the write key, a forged admin key, or none: 401, never data, never 500.
    let admin_routes = [
        (reqwest::Method::GET, format!("/v1/leads/{id}")),
        (reqwest::Method::GET, "/v1/leads?email=keys@corp.example".to_string()),
        (reqwest::Method::GET, "/v1/leads?stage=lead".to_string()),
        (reqwest::Method::GET, format!("/v1/leads/{id}/timeline")),
        (reqwest::Method::DELETE, format!("/v1/leads/{id}")),
        (reqwest::Method::GET, "/v1/reports/funnel".to_string()),
        (reqwest::Method::GET, "/v1/reports/campaigns".to_string()),
    ];
    for (m, path) in &admin_routes {
        for key in [Some(WRITE_KEY), Some(admin_altered.as_str()), Some(&ADMIN_KEY[..ADMIN_KEY.len() - 1]), Some("ek_a_"), None] {
            let mut req = c.request(m.clone(), format!("{}{path}", dev.base()));
            if let Some(k) = key {
                req = req.bearer_auth(k);
            }
            let r = req.send().await.unwrap();
            let s = r.status().as_u16();
            let body = r.text().await.unwrap();
            assert!(matches!(s, 401 | 403), "{m} {path} with {key:?}: {s} {body}");
            assert!(!body.contains("keys@corp.example"), "{m} {path} leaks the lead: {body}");
        }
    }
    // Forged unsubscribe tokens: refused, never 500, and the lead is untouched.
    let token = ember_service::signing::unsubscribe_token(UNSUBSCRIBE_SECRET.as_bytes(), &id);
    let forged = ember_service::signing::unsubscribe_token(b"not-the-secret", &id);
    for t in [forged, token[..token.len() - 2].to_string(), format!("{token}x"), "%00".into(), "é".repeat(300)] {
        let url = reqwest::Url::parse_with_params(&format!("{}/v1/unsubscribe", dev.base()), [("token", t.as_str())]).unwrap();
        let s = c.post(url).header("content-type", "application/x-www-form-urlencoded").body("List-Unsubscribe=One-Click").send().await.unwrap();
        assert!(s.status().is_client_error(), "token {t:?}: {}", s.status());
    }
    // Still there: the DELETE attempts above did nothing.
    let (s, lead) = get(&format!("{}/v1/leads/{id}", dev.base())).await;
    assert_eq!(s, 200, "{lead}");
}
