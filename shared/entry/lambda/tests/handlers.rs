//! Every function's sample event (`events/`) through its real handler, against moto (DynamoDB,
//! SES v2, EventBridge, SQS), with the example model.
//!
//! These tests need moto: `scripts/test` starts it and runs ignored tests with
//! `EMBER_MOTO_ENDPOINT` set. By hand:
//!
//! ```text
//! export EMBER_MOTO_ENDPOINT=$(scripts/moto)
//! cargo test -p ember-lambda -- --include-ignored
//! ```
//!
//! Without `EMBER_MOTO_ENDPOINT` they fail; they never pass silently.

mod common;

use aws_config::SdkConfig;
use common::*;
use ember_aws::SqsDeadLetters;
use ember_lambda::schedule::{self, Invocation};
use ember_lambda::ses_events::{self, Handled};
use ember_lambda::bus_events;
use ember_scoring::Lead;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[tokio::test]
#[ignore = "needs moto: run through scripts/test, or set EMBER_MOTO_ENDPOINT=$(scripts/moto)"]
async fn http_samples_run_through_the_router() {
    let _ = MOTO_NEEDED;
    let fx = fixture(Options::default()).await;
    let (status, body) = fx.http(&sample("http-post-events.json")).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 2, "{body}");
    // A retried request is accepted once.
    let (_, again) = fx.http(&sample("http-post-events.json")).await;
    assert_eq!(again["duplicate"], 2, "{again}");

    // The same request with a foreign origin or a wrong key is refused by the function too.
    let foreign = sample("http-post-events.json").replace("https://www.example.com", "https://evil.example");
    assert_eq!(fx.http(&foreign).await.0, 403);
    let wrong = sample("http-post-events.json").replace("sample-write-key", "guessed-write-key");
    assert_eq!(fx.http(&wrong).await.0, 401);
    let as_admin = sample("http-get-lead.json").replace("ek_a_sample-admin-key", "ek_w_sample-write-key");
    assert_eq!(fx.http(&as_admin).await.0, 401, "a write key reads no lead");

    let (status, lead) = fx.http(&sample("http-get-lead.json")).await;
    assert_eq!(status, 200, "{lead}");
    assert_eq!(lead["email"], "sample.lead@example.com");
    // Head of Marketing in France (fit 20), then a demo request: a hand-raiser goes to SQL.
    assert_eq!(lead["stage"], "sql", "{lead}");
    assert_eq!(lead["scores"]["engagement"], 30, "{lead}");
}

#[tokio::test]
#[ignore = "needs moto: run through scripts/test, or set EMBER_MOTO_ENDPOINT=$(scripts/moto)"]
async fn decay_sample_decays_quiet_leads_and_stops_at_the_deadline() {
    let fx = fixture(Options::default()).await;
    assert_eq!(fx.http(&sample("http-post-events.json")).await.0, 202);
    let inv: Invocation = serde_json::from_str(&sample("scheduler-decay.json")).expect("a Scheduler input");

    // An invocation already past its deadline does nothing and says so.
    let report = schedule::run(&fx.services, &inv, Instant::now()).await;
    let decay = report.decay.expect("decay ran");
    assert!(decay.incomplete && decay.processed == 0, "{decay:?}");
    assert_eq!(fx.lead_by_email("sample.lead@example.com").await.scores["engagement"], 30);

    // On time: the lead, quiet since March 2 (> 90 days), loses 10 points, once.
    let report = schedule::run(&fx.services, &inv, far()).await;
    let decay = report.decay.expect("decay ran");
    assert_eq!((decay.processed, decay.incomplete), (1, false), "{decay:?}");
    assert_eq!(fx.lead_by_email("sample.lead@example.com").await.scores["engagement"], 20);
    let again = schedule::run(&fx.services, &inv, far()).await.decay.expect("decay ran");
    assert_eq!(again.processed, 0, "a retried run finds nothing due: {again:?}");
    assert_eq!(fx.lead_by_email("sample.lead@example.com").await.scores["engagement"], 20);
}

#[tokio::test]
#[ignore = "needs moto: run through scripts/test, or set EMBER_MOTO_ENDPOINT=$(scripts/moto)"]
async fn drip_sample_sends_through_ses_once() {
    let fx = fixture(Options::default()).await;
    aws_sdk_sesv2::Client::new(&fx.conf).create_email_identity().email_identity("ember.example").send().await.ok();
    let reader = format!("{}@example.com", unique("reader"));
    let raw = serde_json::from_value(json!({
        "event_id": unique("nl"), "type": "newsletter_subscribe", "occurred_at": "2026-03-19T10:00:00Z", "email": reader,
    }))
    .unwrap();
    assert!(fx.services.ember.ingest.event(&raw).await.is_accepted());
    let inv: Invocation = serde_json::from_str(&sample("scheduler-drip.json")).expect("a Scheduler input");
    let report = schedule::run(&fx.services, &inv, far()).await;
    assert_eq!(report.drip.as_ref().map(|r| r.sent), Some(1), "{report:?}");
    assert!(report.sla.is_some(), "drip also raises SLA breaches");
    let to_reader = |ms: Vec<(String, String)>| ms.into_iter().filter(|(to, _)| *to == reader).collect::<Vec<_>>();
    let sent = to_reader(ses_messages().await);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].1, "Welcome!");
    // The same invocation again (Scheduler retries): nothing is sent twice.
    let report = schedule::run(&fx.services, &inv, far()).await;
    assert_eq!(report.drip.as_ref().map(|r| r.sent), Some(0), "{report:?}");
    assert_eq!(to_reader(ses_messages().await).len(), 1);
}

#[tokio::test]
#[ignore = "needs moto: run through scripts/test, or set EMBER_MOTO_ENDPOINT=$(scripts/moto)"]
async fn ses_samples_become_lead_events() {
    let fx = fixture(Options::default()).await;
    assert_eq!(fx.http(&sample("http-post-events.json")).await.0, 202);
    let engagement = |l: &Lead| l.scores["engagement"];
    let before = engagement(&fx.lead_by_email("sample.lead@example.com").await);

    let handle = |name: &'static str| {
        let services = fx.services.clone();
        async move { ses_events::handle(&services, &sample_json(name)).await.expect(name) }
    };
    assert_eq!(handle("ses-delivery.json").await, Handled::Applied { kind: "email_delivered".into(), status: "accepted".into() });
    assert_eq!(handle("ses-open.json").await, Handled::Applied { kind: "email_open".into(), status: "accepted".into() });
    assert_eq!(handle("ses-click.json").await, Handled::Applied { kind: "email_click".into(), status: "accepted".into() });
    // A person's open (+2) and click (+10) count.
    assert_eq!(engagement(&fx.lead_by_email("sample.lead@example.com").await), before + 12);
    // EventBridge redelivers: counted once.
    assert_eq!(handle("ses-click.json").await, Handled::Applied { kind: "email_click".into(), status: "duplicate".into() });
    // A link scanner's click, 3 s after sending: recorded, no points.
    assert_eq!(handle("ses-click-scanner.json").await, Handled::Applied { kind: "email_click".into(), status: "accepted".into() });
    let lead = fx.lead_by_email("sample.lead@example.com").await;
    assert_eq!(engagement(&lead), before + 12);
    let timeline = fx.services.ember.store().events(&lead.id).await.expect("timeline");
    let scanner = timeline.iter().find(|e| e.event.id.ends_with("000000000006")).expect("the scanner click is in the timeline");
    assert!(scanner.event.machine, "flagged as machine traffic");

    // A hard bounce and a complaint suppress the address.
    assert!(matches!(handle("ses-bounce.json").await, Handled::Applied { .. }));
    assert!(matches!(handle("ses-complaint.json").await, Handled::Applied { .. }));
    let lead = fx.lead_by_email("sample.lead@example.com").await;
    assert!(lead.consent.bounced_at.is_some() && lead.consent.complained_at.is_some(), "{:?}", lead.consent);

    // Types Ember does not track are acknowledged; unknown addresses create nothing.
    let mut send = sample_json("ses-delivery.json");
    send["detail"]["eventType"] = json!("Send");
    assert_eq!(ses_events::handle(&fx.services, &send).await.unwrap(), Handled::Ignored { event_type: "Send".into() });
    let mut stranger = sample_json("ses-open.json");
    stranger["id"] = json!(unique("ev"));
    stranger["detail"]["mail"]["destination"] = json!(["nobody-here@example.com"]);
    assert_eq!(ses_events::handle(&fx.services, &stranger).await.unwrap(), Handled::NoLead);
    let nobody = ember_service::ports::Identity::Email("nobody-here@example.com".into());
    assert!(fx.services.ember.lead_by(&nobody).await.unwrap().is_none());
    // Not an SES event: a clear error.
    let err = ses_events::handle(&fx.services, &json!({"id": "x", "detail": {}})).await.unwrap_err().to_string();
    assert!(err.contains("eventType"), "{err}");
}

/// A webhook receiver on loopback: records (headers, body) and answers `status`.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>,
    status: Arc<std::sync::atomic::AtomicU16>,
}

impl Receiver {
    async fn start() -> (Receiver, String) {
        let r = Receiver::default();
        r.status.store(200, std::sync::atomic::Ordering::SeqCst);
        let state = r.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    state.got.lock().unwrap().push((headers, body));
                    axum::http::StatusCode::from_u16(state.status.load(std::sync::atomic::Ordering::SeqCst)).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (r, url)
    }
    fn set_status(&self, s: u16) {
        self.status.store(s, std::sync::atomic::Ordering::SeqCst);
    }
    fn take(&self) -> Vec<(axum::http::HeaderMap, String)> {
        std::mem::take(&mut *self.got.lock().unwrap())
    }
}

async fn queue(conf: &SdkConfig) -> (String, String) {
    let sqs = aws_sdk_sqs::Client::new(conf);
    let url = sqs.create_queue().queue_name(unique("ember-test")).send().await.expect("queue").queue_url.unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    (url, arn)
}

#[tokio::test]
#[ignore = "needs moto: run through scripts/test, or set EMBER_MOTO_ENDPOINT=$(scripts/moto)"]
async fn handoff_sample_signs_webhooks_and_keeps_failures_for_replay() {
    let (receiver, url) = Receiver::start().await;
    let conf = conf().await;
    let (dlq, _) = queue(&conf).await;
    let secret = "whsec_dGVzdC13ZWJob29rLXNlY3JldC0xMjM0NTY3OA==";
    let fx = fixture(Options {
        dead_letter_queue: Some(dlq.clone()),
        secret: Some(json!({"CRM_WEBHOOK_URL": url, "CRM_WEBHOOK_SECRET": secret})),
        ..Options::default()
    })
    .await;
    // The bus carries no personal data: the handoff reads it from the lead the message is about.
    assert_eq!(fx.http(&sample("http-post-events.json")).await.0, 202);
    let lead = fx.lead_by_email("sample.lead@example.com").await;
    let mut event = sample_json("bus-lead-qualified.json");
    event["detail"]["lead_id"] = json!(lead.id);
    event["detail"]["data"]["lead_id"] = json!(lead.id);
    assert_eq!(bus_events::handle(&fx.services, &event).await.unwrap(), "msg_sample_qualified");
    let got = receiver.take();
    assert_eq!(got.len(), 1);
    let (h, body) = &got[0];
    let sent: Value = serde_json::from_str(body).unwrap();
    assert_eq!(sent["data"]["email"], "sample.lead@example.com", "{body}");
    assert!(sent["data"]["traits"].is_object() && sent["data"].get("personal_data_left_out").is_none(), "{body}");
    let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert_eq!(header("webhook-id"), "msg_sample_qualified");
    let now = chrono::Utc::now().timestamp();
    ember_service::signing::verify(secret, &header("webhook-id"), &header("webhook-timestamp"), &header("webhook-signature"), body, now, 300)
        .expect("a valid Standard Webhooks signature");
    assert_eq!(serde_json::from_str::<Value>(body).unwrap()["type"], "lead.qualified");

    // The CRM is down: three attempts, then the dead-letter queue; the invocation succeeds.
    receiver.set_status(503);
    let mut failing = event.clone();
    failing["detail"]["id"] = json!("msg_sample_failing");
    assert!(bus_events::handle(&fx.services, &failing).await.is_ok());
    assert_eq!(receiver.take().len(), 3);
    let letters = SqsDeadLetters::new(aws_sdk_sqs::Client::new(&conf), dlq.clone());
    assert_eq!(letters.len().await.unwrap(), 1);

    // Back up: the replay delivers it (same id, fresh signature) and empties the queue.
    receiver.set_status(200);
    let report = fx.services.handoff.replay(10, std::time::Duration::from_secs(60)).await.unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");
    let got = receiver.take();
    assert_eq!(got[0].0.get("webhook-id").unwrap(), "msg_sample_failing");
    assert_eq!(letters.len().await.unwrap(), 0);

    // What the dead-letter queue holds names the lead but not the person.
    receiver.set_status(503);
    failing["detail"]["id"] = json!("msg_sample_failing_again");
    assert!(bus_events::handle(&fx.services, &failing).await.is_ok());
    receiver.take();
    let raw = aws_sdk_sqs::Client::new(&conf).receive_message().queue_url(&dlq).visibility_timeout(0).send().await.unwrap();
    let text: String = raw.messages().iter().filter_map(|m| m.body()).collect();
    assert!(text.contains(lead.id.as_str()) && !text.contains("sample.lead@example.com"), "{text}");
    receiver.set_status(200);

    // About a lead that no longer exists (erased): nothing is sent, and the invocation succeeds.
    let mut erased = event.clone();
    erased["detail"]["id"] = json!("msg_sample_erased");
    erased["detail"]["lead_id"] = json!("ld_erased_since");
    assert!(bus_events::handle(&fx.services, &erased).await.is_ok());
    assert!(receiver.take().is_empty(), "nothing is sent about an erased lead");

    // Not an Ember message: the invocation fails (the rule's retries and DLQ take it).
    assert!(bus_events::handle(&fx.services, &json!({"detail": {"nope": 1}})).await.is_err());
}

#[tokio::test]
#[ignore = "needs moto: run through scripts/test, or set EMBER_MOTO_ENDPOINT=$(scripts/moto)"]
async fn failed_bus_messages_are_replayed_through_the_handoff() {
    let (receiver, url) = Receiver::start().await;
    let conf = conf().await;
    let (dlq, _) = queue(&conf).await;
    let (failed, _) = queue(&conf).await;
    let fx = fixture(Options {
        dead_letter_queue: Some(dlq.clone()),
        secret: Some(json!({"CRM_WEBHOOK_URL": url, "CRM_WEBHOOK_SECRET": "whsec_dGVzdC13ZWJob29rLXNlY3JldC0xMjM0NTY3OA=="})),
        ..Options::default()
    })
    .await;
    assert_eq!(fx.http(&sample("http-post-events.json")).await.0, 202);
    let lead = fx.lead_by_email("sample.lead@example.com").await;
    // What EventBridge (or Lambda) put in the queue: the event as the rule matched it; a
    // message about a lead erased since; a scheduled invocation that failed.
    let mut qualified = sample_json("bus-lead-qualified.json");
    qualified["detail"]["lead_id"] = json!(lead.id);
    let mut erased = sample_json("bus-lead-qualified.json");
    erased["detail"]["id"] = json!("msg_sample_erased");
    erased["detail"]["lead_id"] = json!("ld_erased_since");
    let sqs = aws_sdk_sqs::Client::new(&conf);
    for body in [qualified.to_string(), erased.to_string(), sample("scheduler-drip.json")] {
        sqs.send_message().queue_url(&failed).message_body(body).send().await.unwrap();
    }
    let queue = ember_aws::SqsFailedMessages::new(sqs.clone(), failed.clone());
    let report = fx.services.handoff.replay_failed(&queue, 10, std::time::Duration::from_secs(60)).await.unwrap();
    assert_eq!((report.delivered, report.erased, report.skipped, report.failed), (1, 1, 1, 0), "{report:?}");
    let got = receiver.take();
    assert_eq!(got.len(), 1, "one webhook, for the lead that exists");
    assert_eq!(got[0].0.get("webhook-id").unwrap(), "msg_sample_qualified");
    assert_eq!(serde_json::from_str::<Value>(&got[0].1).unwrap()["data"]["email"], "sample.lead@example.com");
    // Only the scheduled invocation is left (leased by this replay, so not visible yet), for a
    // person to read; nothing was dead-lettered.
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&failed)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let count = |a: aws_sdk_sqs::types::QueueAttributeName| -> u64 {
        attrs.attributes().and_then(|m| m.get(&a)).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    let left = count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        + count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
    let letters = SqsDeadLetters::new(sqs, dlq).len().await.unwrap();
    assert_eq!((left, letters), (1, 0));
}

#[tokio::test]
#[ignore = "needs moto: run through scripts/test, or set EMBER_MOTO_ENDPOINT=$(scripts/moto)"]
async fn domain_messages_reach_eventbridge_rules() {
    let conf = conf().await;
    let bus = unique("ember-bus");
    let eb = aws_sdk_eventbridge::Client::new(&conf);
    eb.create_event_bus().name(&bus).send().await.expect("bus");
    let (queue_url, queue_arn) = queue(&conf).await;
    eb.put_rule()
        .name("handoff")
        .event_bus_name(&bus)
        .event_pattern(json!({"source": ["ember"], "detail-type": ["lead.qualified"]}).to_string())
        .send()
        .await
        .expect("rule");
    eb.put_targets()
        .rule("handoff")
        .event_bus_name(&bus)
        .targets(aws_sdk_eventbridge::types::Target::builder().id("q").arn(&queue_arn).build().unwrap())
        .send()
        .await
        .expect("target");
    let fx = fixture(Options { bus: Some(bus), ..Options::default() }).await;
    assert_eq!(fx.http(&sample("http-post-events.json")).await.0, 202);

    let sqs = aws_sdk_sqs::Client::new(&conf);
    let out = sqs.receive_message().queue_url(&queue_url).max_number_of_messages(10).send().await.unwrap();
    let events: Vec<Value> = out.messages().iter().filter_map(|m| serde_json::from_str(m.body()?).ok()).collect();
    assert_eq!(events.len(), 1, "exactly the lead.qualified message: {events:?}");
    assert_eq!(events[0]["detail-type"], "lead.qualified");
    assert_eq!(events[0]["source"], "ember");
    let lead = fx.lead_by_email("sample.lead@example.com").await;
    assert_eq!(events[0]["detail"]["lead_id"], lead.id.as_str());
    assert_eq!(events[0]["detail"]["data"]["stage"], "sql");
    // The bus (and the queue behind this rule) never sees the person.
    let text = serde_json::to_string(&events[0]).unwrap();
    assert!(!text.contains("sample.lead@example.com"), "{text}");
    assert_eq!(events[0]["detail"]["data"]["personal_data_left_out"], json!(["email", "traits", "first_touch"]));
}

#[tokio::test]
#[ignore = "needs moto: run through scripts/test, or set EMBER_MOTO_ENDPOINT=$(scripts/moto)"]
async fn api_samples_on_the_default_route_base64_and_the_trackers_beacon() {
    let fx = fixture(Options::default()).await;
    assert_eq!(fx.http(&sample("http-post-events.json")).await.0, 202);

    // The api function behind the HTTP API's `$default` route (no route key of ours, no path
    // parameters): the router reads the raw path and query.
    let (status, lead) = fx.http(&sample("http-api-default-route.json")).await;
    assert_eq!(status, 200, "{lead}");
    assert_eq!(lead["email"], "sample.lead@example.com", "{lead}");

    // API Gateway hands a binary-looking body over base64-encoded.
    let (status, body) = fx.http(&sample("http-post-events-base64.json")).await;
    assert_eq!((status, body["accepted"].as_u64()), (202, Some(1)), "{body}");
    assert_eq!(fx.lead_by_email("b64.lead@example.com").await.scores["engagement"], 10, "webinar registration");

    // The tracker's sendBeacon: `text/plain`, no `authorization`, the write key in the body.
    let (status, body) = fx.http(&sample("http-beacon-events.json")).await;
    assert_eq!((status, body["accepted"].as_u64()), (202, Some(1)), "{body}");
    let anon = ember_service::ports::Identity::Anonymous("anon-beacon-1".into());
    let visitor = fx.services.ember.lead_by(&anon).await.unwrap().expect("the beacon's visitor");
    assert_eq!(visitor.scores["engagement"], 10, "the pricing page");
    let (_, again) = fx.http(&sample("http-beacon-events.json")).await;
    assert_eq!(again["duplicate"], 1, "a beacon sent twice counts once: {again}");
    // The same beacon from another site, or with a guessed key, is refused.
    let foreign = sample("http-beacon-events.json").replace("https://www.example.com\"", "https://evil.example\"");
    assert_eq!(fx.http(&foreign).await.0, 403);
    let guessed = sample("http-beacon-events.json").replace("sample-write-key", "guessed-write-key");
    assert_eq!(fx.http(&guessed).await.0, 401);
}

/// The handler's result as its JSON `result` tag.
fn result_of(h: &Handled) -> String {
    serde_json::to_value(h).unwrap()["result"].as_str().unwrap_or("").to_string()
}

#[tokio::test]
#[ignore = "needs moto: run through scripts/test, or set EMBER_MOTO_ENDPOINT=$(scripts/moto)"]
async fn ses_feedback_that_is_not_engagement_scores_nothing() {
    let fx = fixture(Options::default()).await;
    assert_eq!(fx.http(&sample("http-post-events.json")).await.0, 202);
    let lead = fx.lead_by_email("sample.lead@example.com").await;
    let before = lead.scores["engagement"];
    let handle = |event: Value| {
        let services = fx.services.clone();
        async move { ses_events::handle(&services, &event).await.expect("handled") }
    };
    let timeline_entry = |id: &'static str| {
        let fx = &fx;
        let lead_id = lead.id.clone();
        async move {
            let events = fx.services.ember.store().events(&lead_id).await.expect("timeline");
            events.into_iter().find(|e| e.event.id == format!("ses:{id}"))
        }
    };

    // Apple Mail Privacy Protection prefetches every image of a received message: recorded as
    // machine traffic, no points.
    let mpp = sample_json("ses-open-apple-mpp.json");
    assert_eq!(result_of(&handle(mpp.clone()).await), "applied");
    let entry = timeline_entry("5a1d0001-0000-4000-8000-000000000013").await.expect("the prefetch is recorded");
    assert!(entry.event.machine, "{:?}", entry.event);
    assert_eq!(fx.lead_by_email("sample.lead@example.com").await.scores["engagement"], before, "a prefetch earns nothing");

    // A click on the email's own unsubscribe link (SES tracks it like any link): an intent to
    // leave, never engagement.
    assert_eq!(result_of(&handle(sample_json("ses-click-unsubscribe.json")).await), "applied");
    let entry = timeline_entry("5a1d0001-0000-4000-8000-000000000014").await.expect("the click is recorded");
    assert!(entry.event.machine, "{:?}", entry.event);
    assert_eq!(fx.lead_by_email("sample.lead@example.com").await.scores["engagement"], before, "no points for leaving");
    // The same on a custom link domain: recognised by its valid unsubscribe token.
    let url = fx.services.ember.composer().unsubscribe_url(&lead.id);
    let token = url.split("token=").nth(1).expect("a token");
    let mut custom = sample_json("ses-click-unsubscribe.json");
    custom["id"] = json!("5a1d0001-0000-4000-8000-000000000017");
    custom["detail"]["click"]["link"] = json!(format!("https://links.shop.example/leave?token={token}"));
    assert_eq!(result_of(&handle(custom).await), "applied");
    assert!(timeline_entry("5a1d0001-0000-4000-8000-000000000017").await.expect("recorded").event.machine);
    assert_eq!(fx.lead_by_email("sample.lead@example.com").await.scores["engagement"], before);

    // Mail Ember did not send (no send tag): no lead changes — a bounce of it suppresses no
    // one, a click in it scores nothing.
    assert_eq!(result_of(&handle(sample_json("ses-bounce-untagged.json")).await), "not_ember");
    assert_eq!(result_of(&handle(sample_json("ses-click-untagged.json")).await), "not_ember");
    let after = fx.lead_by_email("sample.lead@example.com").await;
    assert!(after.consent.bounced_at.is_none(), "{:?}", after.consent);
    assert_eq!(after.scores["engagement"], before);
    assert!(timeline_entry("5a1d0001-0000-4000-8000-000000000015").await.is_none());
    assert!(timeline_entry("5a1d0001-0000-4000-8000-000000000016").await.is_none());

    // A person's open still counts.
    assert_eq!(result_of(&handle(sample_json("ses-open.json")).await), "applied");
    assert_eq!(fx.lead_by_email("sample.lead@example.com").await.scores["engagement"], before + 2);
}

#[tokio::test]
#[ignore = "needs moto: run through scripts/test, or set EMBER_MOTO_ENDPOINT=$(scripts/moto)"]
async fn ses_bounce_kinds_and_untracked_types_in_their_real_shapes() {
    let fx = fixture(Options::default()).await;
    assert_eq!(fx.http(&sample("http-post-events.json")).await.0, 202);
    let before = fx.lead_by_email("sample.lead@example.com").await;

    // Soft bounces are recorded with their kind, and suppress nothing.
    for (name, kind) in [("ses-bounce-transient.json", "Transient"), ("ses-bounce-undetermined.json", "Undetermined")] {
        let handled = ses_events::handle(&fx.services, &sample_json(name)).await.expect(name);
        assert_eq!(handled, Handled::Applied { kind: "email_bounced".into(), status: "accepted".into() }, "{name}");
        let lead = fx.lead_by_email("sample.lead@example.com").await;
        assert!(lead.consent.bounced_at.is_none() && lead.consent.subscribed() == before.consent.subscribed(), "{name}: {:?}", lead.consent);
        let events = fx.services.ember.store().events(&lead.id).await.unwrap();
        let e = events.iter().find(|e| e.event.kind == "email_bounced" && e.event.properties["bounce_type"] == kind).expect(name);
        assert!(e.event.properties.contains_key("bounce_sub_type"), "{name}: {:?}", e.event.properties);
    }
    // Delivery delays, rendering failures, rejects and subscription events are acknowledged and
    // change nothing.
    for (name, event_type) in [
        ("ses-delivery-delay.json", "DeliveryDelay"),
        ("ses-rendering-failure.json", "Rendering Failure"),
        ("ses-reject.json", "Reject"),
        ("ses-subscription.json", "Subscription"),
    ] {
        let handled = ses_events::handle(&fx.services, &sample_json(name)).await.expect(name);
        assert_eq!(handled, Handled::Ignored { event_type: event_type.into() }, "{name}");
    }
    let after = fx.lead_by_email("sample.lead@example.com").await;
    assert_eq!(after.scores, before.scores);
    assert_eq!(after.consent.unsubscribed_at, before.consent.unsubscribed_at);
}

#[tokio::test]
#[ignore = "needs moto: run through scripts/test, or set EMBER_MOTO_ENDPOINT=$(scripts/moto)"]
async fn the_stack_refuses_to_start_without_the_unsubscribe_secret() {
    // The example model has templates: without the key, every link it sends would be broken.
    for missing in [json!({"EMBER_UNSUBSCRIBE_SECRET": ""}), json!({"EMBER_UNSUBSCRIBE_SECRET": "   "})] {
        let err = match try_fixture(Options { secret: Some(missing), ..Options::default() }).await {
            Ok(_) => panic!("the services started without EMBER_UNSUBSCRIBE_SECRET"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("EMBER_UNSUBSCRIBE_SECRET") && err.contains("templates"), "{err}");
    }
    // A model that sends no email needs no key.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("no-email.yaml");
    std::fs::write(
        &model,
        "name: no-email\ntimezone: UTC\nscores:\n  engagement: { min: 0, max: 100 }\nrules:\n  - { id: demo, on: demo_request, points: { engagement: 40 } }\nstages:\n  - { id: lead, when: { identified: true } }\n",
    )
    .unwrap();
    let fx = try_fixture(Options { secret: Some(json!({"EMBER_UNSUBSCRIBE_SECRET": ""})), model: Some(model), ..Options::default() }).await;
    assert!(fx.is_ok(), "a model without templates starts without the key");
}
