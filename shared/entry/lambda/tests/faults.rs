//! The drip job against a flaky network and a misconfigured account, through the real
//! handlers on moto: a fault-injecting proxy (`common::proxy`) in front of moto's SES and
//! DynamoDB, a port that refuses connections, an unverified sender, and a Scheduler retry that
//! arrives hours late.
//!
//! These tests need moto (see `handlers.rs`):
//!
//! ```text
//! export EMBER_MOTO_ENDPOINT=$(scripts/moto)
//! cargo test -p ember-lambda --test faults -- --include-ignored
//! ```

mod common;

use chrono::{Duration, Timelike, Utc};
use common::proxy::{Fault, Proxy, refusing_url};
use common::*;
use ember_lambda::schedule;
use ember_scoring::Lead;

/// The newsletter enrollment of a lead: (step, outcomes of its step log).
fn newsletter(lead: &Lead) -> (usize, Vec<String>) {
    let en = lead.enrollments.iter().find(|e| e.campaign == "newsletter-nurture").expect("enrolled in the newsletter");
    (en.step, en.log.iter().map(|l| l.outcome.clone()).collect())
}

/// A field of a job report, through its JSON form.
fn field(report: &Option<ember_service::JobReport>, name: &str) -> u64 {
    serde_json::to_value(report.as_ref().expect("the job ran")).unwrap()[name].as_u64().unwrap_or(0)
}

fn is_send_email(r: &common::proxy::Request) -> bool {
    r.line.starts_with("POST /v2/email/outbound-emails")
}

#[tokio::test]
#[ignore = "needs moto: run through scripts/test, or set EMBER_MOTO_ENDPOINT=$(scripts/moto)"]
async fn a_send_whose_connection_closes_after_the_request_left_is_unknown_and_never_resent() {
    let _ = MOTO_NEEDED;
    let fx = fixture(Options::default()).await;
    aws_sdk_sesv2::Client::new(&fx.conf).create_email_identity().email_identity("ember.example").send().await.ok();
    let now = Utc::now();
    let reader = fx.new_reader(now - Duration::minutes(1)).await;

    // SES receives the whole request, then the connection closes without an answer: SES may
    // well have sent the email.
    let proxy = Proxy::start(&endpoint(), Fault::Swallow, is_send_email).await;
    let flaky = fx.container(&conf_with_ses(&proxy.url).await);
    let report = schedule::run(&flaky, &drip_at(now), far()).await;
    assert_eq!(proxy.injected(), 1, "the request reached the proxy");
    assert_eq!(field(&report.drip, "sent"), 0, "{report:?}");
    let (step, log) = newsletter(&fx.lead_by_email(&reader).await);
    assert_eq!(log, ["unknown"], "marked unknown, not 'retry'");
    assert_eq!(step, 1, "the flow moved past the send");

    // Later runs, with SES answering again, never send that step again.
    for later in [2, 20] {
        let report = schedule::run(&fx.services, &drip_at(now + Duration::minutes(later)), far()).await;
        assert_eq!(field(&report.drip, "sent"), 0, "{report:?}");
    }
    assert!(ses_messages_to(&reader).await.is_empty(), "never resent");
}

#[tokio::test]
#[ignore = "needs moto: run through scripts/test, or set EMBER_MOTO_ENDPOINT=$(scripts/moto)"]
async fn a_send_that_never_connected_is_sent_by_a_later_run() {
    let fx = fixture(Options::default()).await;
    aws_sdk_sesv2::Client::new(&fx.conf).create_email_identity().email_identity("ember.example").send().await.ok();
    let now = Utc::now();
    let reader = fx.new_reader(now - Duration::minutes(1)).await;

    // Connection refused: the request never left, so nothing was sent.
    let down = fx.container(&conf_with_ses(&refusing_url().await).await);
    let report = schedule::run(&down, &drip_at(now), far()).await;
    assert_eq!(field(&report.drip, "sent"), 0, "{report:?}");
    let (step, log) = newsletter(&fx.lead_by_email(&reader).await);
    assert_eq!((step, log), (0, vec!["retry".to_string()]), "kept on the step");

    // The next run sends it, once.
    let report = schedule::run(&fx.services, &drip_at(now + Duration::minutes(2)), far()).await;
    assert_eq!(field(&report.drip, "sent"), 1, "{report:?}");
    assert_eq!(ses_messages_to(&reader).await, ["Welcome!"]);
    let report = schedule::run(&fx.services, &drip_at(now + Duration::minutes(3)), far()).await;
    assert_eq!(field(&report.drip, "sent"), 0, "{report:?}");
    assert_eq!(ses_messages_to(&reader).await.len(), 1);
}

#[tokio::test]
#[ignore = "needs moto: run through scripts/test, or set EMBER_MOTO_ENDPOINT=$(scripts/moto)"]
async fn a_lost_answer_to_the_drip_claim_still_sends_once() {
    let fx = fixture(Options::default()).await;
    aws_sdk_sesv2::Client::new(&fx.conf).create_email_identity().email_identity("ember.example").send().await.ok();
    let now = Utc::now();
    let reader = fx.new_reader(now - Duration::minutes(1)).await;

    // DynamoDB applies the claim, but its answer is lost; the SDK's retry of the same write
    // then fails its version condition (the first attempt did succeed).
    let proxy = Proxy::start(&endpoint(), Fault::LoseAnswer, |r| {
        let target = r.header("x-amz-target").unwrap_or("");
        (target.ends_with(".UpdateItem") || target.ends_with(".TransactWriteItems")) && r.body_text().contains("claimed_at")
    })
    .await;
    let container = fx.container(&conf_through(&proxy.url).await);
    let report = schedule::run(&container, &drip_at(now), far()).await;
    assert_eq!(proxy.injected(), 1, "the claim's answer was lost");
    assert_eq!(field(&report.drip, "sent"), 1, "the claim was this run's own: it sends — {report:?}");
    assert_eq!(ses_messages_to(&reader).await, ["Welcome!"]);
    let (step, log) = newsletter(&fx.lead_by_email(&reader).await);
    assert_eq!((step, log), (1, vec!["sent".to_string()]));

    // After the claim's lease, later runs send nothing more.
    let report = schedule::run(&fx.services, &drip_at(now + Duration::minutes(20)), far()).await;
    assert_eq!(field(&report.drip, "sent"), 0, "{report:?}");
    assert_eq!(ses_messages_to(&reader).await.len(), 1);
}

#[tokio::test]
#[ignore = "needs moto: run through scripts/test, or set EMBER_MOTO_ENDPOINT=$(scripts/moto)"]
async fn an_unverified_sender_keeps_the_step_and_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let domain = format!("{}.example", unique("unverified"));
    let model = model_variant(dir.path(), |m| m.replace("hello@ember.example", &format!("hello@{domain}")));
    let fx = fixture(Options { model: Some(model), ..Options::default() }).await;
    let now = Utc::now();
    let reader = fx.new_reader(now - Duration::minutes(1)).await;

    // SES answers `MessageRejected: Email address is not verified`: the account is not ready,
    // the message is fine. Nothing is sent, the step is kept, and the run says so.
    let report = schedule::run(&fx.services, &drip_at(now), far()).await;
    assert_eq!(field(&report.drip, "sent"), 0, "{report:?}");
    assert_eq!(field(&report.drip, "blocked"), 1, "{report:?}");
    let (step, log) = newsletter(&fx.lead_by_email(&reader).await);
    assert_eq!((step, log), (0, vec!["blocked".to_string()]), "kept on the step, not 'rejected'");
    // Runs while it stays unverified add nothing to the lead.
    schedule::run(&fx.services, &drip_at(now + Duration::minutes(6)), far()).await;
    assert_eq!(newsletter(&fx.lead_by_email(&reader).await).1.len(), 1);

    // Once the operator verifies the domain, a later run sends the email.
    aws_sdk_sesv2::Client::new(&fx.conf).create_email_identity().email_identity(&domain).send().await.expect("verify");
    let report = schedule::run(&fx.services, &drip_at(now + Duration::minutes(12)), far()).await;
    assert_eq!(field(&report.drip, "sent"), 1, "{report:?}");
    assert_eq!(field(&report.drip, "blocked"), 0, "{report:?}");
    assert_eq!(ses_messages_to(&reader).await, ["Welcome!"]);
}

#[tokio::test]
#[ignore = "needs moto: run through scripts/test, or set EMBER_MOTO_ENDPOINT=$(scripts/moto)"]
async fn a_late_retry_of_an_old_schedule_respects_quiet_hours_at_the_real_time() {
    // Quiet hours from an hour ago to two hours from now (the model's zone set to UTC).
    let now = Utc::now();
    let hm = |t: chrono::DateTime<Utc>| format!("{:02}:{:02}", t.hour(), t.minute());
    let (start, end) = (hm(now - Duration::hours(1)), hm(now + Duration::hours(2)));
    let dir = tempfile::tempdir().unwrap();
    let model = model_variant(dir.path(), |m| {
        m.replace("timezone: Europe/Paris", "timezone: UTC")
            .replace("  frequency_cap: { max: 3, per: 7d }", &format!("  frequency_cap: {{ max: 3, per: 7d }}\n  quiet_hours: {{ start: \"{start}\", end: \"{end}\" }}"))
    });
    let fx = fixture(Options { model: Some(model), ..Options::default() }).await;
    aws_sdk_sesv2::Client::new(&fx.conf).create_email_identity().email_identity("ember.example").send().await.ok();
    let reader = fx.new_reader(now - Duration::hours(4)).await;

    // The Scheduler retries a run scheduled three hours ago, before quiet hours began: the
    // email would leave now, inside them. It waits for their end.
    let report = schedule::run(&fx.services, &drip_at(now - Duration::hours(3)), far()).await;
    assert_eq!(field(&report.drip, "sent"), 0, "{report:?}");
    assert!(ses_messages_to(&reader).await.is_empty(), "nothing sent inside quiet hours");
    let lead = fx.lead_by_email(&reader).await;
    let en = lead.enrollments.iter().find(|e| e.campaign == "newsletter-nurture").unwrap();
    assert_eq!(en.step, 0);
    let due = en.due_at.expect("postponed, not dropped");
    assert!(due >= now + Duration::hours(2) - Duration::minutes(1) && due <= now + Duration::hours(2), "due at the end of quiet hours: {due}");

    // The run at the end of quiet hours sends it.
    let report = schedule::run(&fx.services, &drip_at(due), far()).await;
    assert_eq!(field(&report.drip, "sent"), 1, "{report:?}");
    assert_eq!(ses_messages_to(&reader).await, ["Welcome!"]);
}
