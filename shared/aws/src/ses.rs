//! The SES v2 mailer: one `SendEmail` per message, with the configuration set, `EmailTags`
//! (lead, campaign, step, send id) and the `List-Unsubscribe` headers.
//!
//! # Outcomes
//!
//! The drip job has already *claimed* the step before calling [`Mailer::send`], so this mailer
//! never has to guess whether a resend is safe; it only reports what happened:
//!
//! - throttling (`TooManyRequestsException`, `LimitExceededException`, HTTP 429) is retried here
//!   with exponential backoff and jitter, a bounded number of times, then reported as
//!   [`SendOutcome::Retry`] (the claim is released, the next run tries again);
//! - a request that never left the machine (connection refused, DNS, building the request) is
//!   [`SendOutcome::Retry`] too: nothing was sent;
//! - a refusal of this message (`MessageRejected`, a bad address, `BadRequestException`) is
//!   [`SendOutcome::Rejected`]: recorded, never resent;
//! - an account-level refusal (`SendingPausedException`, `AccountSuspendedException`,
//!   `MailFromDomainNotVerifiedException`, `NotFoundException` for a missing configuration
//!   set) is [`SendOutcome::Retry`]: the message is fine, the account is not, and an operator
//!   alarm will fire on the errors;
//! - anything after the request was sent with no answer (timeouts, 5xx, unreadable answer) is
//!   [`SendOutcome::Unknown`]: SES may have sent it, so it is marked and not resent.
//!
//! The SDK's own retries are switched off for this client so that only throttling, which is
//! known to send nothing, is ever retried.

use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message, MessageHeader, MessageTag};
use ember_scoring::SendOutcome;
use ember_service::ports::{Mailer, OutgoingEmail};
use std::time::Duration;

/// Attempts made while SES answers "throttled".
pub const THROTTLE_ATTEMPTS: u32 = 5;

/// The SES v2 mailer.
#[derive(Debug, Clone)]
pub struct SesMailer {
    client: Client,
    configuration_set: Option<String>,
    first_backoff: Duration,
}

impl SesMailer {
    /// A mailer over `client` (its retries are turned off, see the module docs). Emails that
    /// name no configuration set get `configuration_set`.
    pub fn new(client: Client, configuration_set: Option<String>) -> SesMailer {
        let conf = client.config().to_builder().retry_config(aws_sdk_sesv2::config::retry::RetryConfig::disabled()).build();
        SesMailer { client: Client::from_conf(conf), configuration_set, first_backoff: Duration::from_millis(200) }
    }

    /// Sets the first throttling backoff (doubles each attempt; tests use a short one).
    pub fn with_first_backoff(mut self, d: Duration) -> SesMailer {
        self.first_backoff = d;
        self
    }

    fn request(&self, email: &OutgoingEmail) -> aws_sdk_sesv2::operation::send_email::builders::SendEmailFluentBuilder {
        let content = |s: &str| Content::builder().data(s).charset("UTF-8").build();
        let mut body = Body::builder();
        if !email.html.is_empty() {
            body = body.html(content(&email.html).expect("data is set"));
        }
        if !email.text.is_empty() {
            body = body.text(content(&email.text).expect("data is set"));
        }
        let headers: Vec<MessageHeader> = email
            .headers
            .iter()
            .filter_map(|(n, v)| MessageHeader::builder().name(n).value(v).build().ok())
            .collect();
        let message = Message::builder()
            .subject(content(&email.subject).expect("data is set"))
            .body(body.build())
            .set_headers(Some(headers))
            .build();
        let mut req = self
            .client
            .send_email()
            .from_email_address(&email.from)
            .destination(Destination::builder().to_addresses(&email.to).build())
            .content(EmailContent::builder().simple(message).build());
        if let Some(r) = &email.reply_to {
            req = req.reply_to_addresses(r);
        }
        if let Some(cs) = email.configuration_set.as_ref().or(self.configuration_set.as_ref()) {
            req = req.configuration_set_name(cs);
        }
        for (name, value) in tags(email) {
            if let Ok(tag) = MessageTag::builder().name(name).value(value).build() {
                req = req.email_tags(tag);
            }
        }
        req
    }
}

/// The tags SES copies into every event of the message (delivery, open, click, bounce…):
/// what the `feedback` function needs to find the lead and the step again. Values are reduced
/// to the characters SES accepts (`[A-Za-z0-9_.@-]`, at most 256).
pub fn tags(email: &OutgoingEmail) -> Vec<(&'static str, String)> {
    vec![
        ("lead_id", tag_value(&email.lead_id)),
        ("campaign", tag_value(&email.campaign)),
        ("step", email.step.to_string()),
        ("template", tag_value(&email.template)),
        ("send_id", tag_value(&email.send_id)),
    ]
}

fn tag_value(s: &str) -> String {
    let v: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || "_.@-".contains(c) { c } else { '_' }).take(256).collect();
    if v.is_empty() { "_".into() } else { v }
}

/// What one failed attempt means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Throttled: wait and try again.
    Throttled(String),
    /// Nothing was sent; a later run may try again.
    NotSent(String),
    /// This message is refused for good.
    Refused(String),
    /// It may or may not have been sent.
    Unknown(String),
}

/// Classifies an error code (and HTTP status) from SES.
pub(crate) fn classify(code: Option<&str>, status: Option<u16>) -> Failure {
    let c = code.unwrap_or("").to_string();
    match code {
        Some("TooManyRequestsException" | "LimitExceededException" | "Throttling" | "ThrottlingException") => {
            Failure::Throttled(c)
        }
        Some("MessageRejected" | "BadRequestException" | "InvalidParameterValue") => Failure::Refused(c),
        Some(
            "SendingPausedException"
            | "AccountSuspendedException"
            | "MailFromDomainNotVerifiedException"
            | "NotFoundException"
            | "AccessDeniedException",
        ) => Failure::NotSent(c),
        _ if status == Some(429) => Failure::Throttled(format!("HTTP 429 {c}")),
        _ if status.is_some_and(|s| (400..500).contains(&s)) => Failure::Refused(format!("HTTP {} {c}", status.unwrap_or(0))),
        _ => Failure::Unknown(if c.is_empty() { format!("HTTP {}", status.unwrap_or(0)) } else { c }),
    }
}

fn failure<E: ProvideErrorMetadata>(e: &SdkError<E, aws_sdk_sesv2::config::http::HttpResponse>) -> Failure {
    match e {
        SdkError::ConstructionFailure(_) => Failure::NotSent("the request could not be built".into()),
        SdkError::DispatchFailure(d) if d.is_io() || d.is_other() => {
            Failure::NotSent("the request could not be sent (connection)".into())
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => Failure::Unknown("no answer (timeout)".into()),
        SdkError::ResponseError(_) => Failure::Unknown("the answer could not be read".into()),
        SdkError::ServiceError(s) => classify(e.code(), Some(s.raw().status().as_u16())),
        _ => Failure::Unknown("unexpected SDK error".into()),
    }
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, email: &OutgoingEmail) -> SendOutcome {
        let mut backoff = self.first_backoff;
        for attempt in 1..=THROTTLE_ATTEMPTS {
            match self.request(email).send().await {
                Ok(out) => {
                    return SendOutcome::Sent { message_id: out.message_id.unwrap_or_else(|| email.send_id.clone()) };
                }
                Err(e) => match failure(&e) {
                    Failure::Throttled(why) if attempt < THROTTLE_ATTEMPTS => {
                        tracing::warn!(send_id = %email.send_id, attempt, reason = %why, "SES throttled; backing off");
                        tokio::time::sleep(jitter(backoff)).await;
                        backoff = backoff.saturating_mul(2);
                    }
                    Failure::Throttled(why) | Failure::NotSent(why) => {
                        tracing::warn!(send_id = %email.send_id, reason = %why, "email not sent; will be retried");
                        return SendOutcome::Retry { reason: why };
                    }
                    Failure::Refused(why) => {
                        tracing::warn!(send_id = %email.send_id, reason = %why, "email refused by SES");
                        return SendOutcome::Rejected { reason: why };
                    }
                    Failure::Unknown(why) => {
                        tracing::error!(send_id = %email.send_id, reason = %why, "email outcome unknown; not resent");
                        return SendOutcome::Unknown;
                    }
                },
            }
        }
        SendOutcome::Retry { reason: "throttled".into() }
    }
}

/// `d` ± 25 %, from the clock's sub-second noise (no RNG dependency needed for spreading).
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|t| t.subsec_nanos()).unwrap_or(0);
    let f = 0.75 + f64::from(nanos % 1000) / 2000.0;
    d.mul_f64(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert!(matches!(classify(Some("TooManyRequestsException"), Some(429)), Failure::Throttled(_)));
        assert!(matches!(classify(None, Some(429)), Failure::Throttled(_)));
        assert!(matches!(classify(Some("MessageRejected"), Some(400)), Failure::Refused(_)));
        assert!(matches!(classify(Some("SendingPausedException"), Some(400)), Failure::NotSent(_)));
        assert!(matches!(classify(Some("NotFoundException"), Some(404)), Failure::NotSent(_)));
        assert!(matches!(classify(Some("InternalFailure"), Some(500)), Failure::Unknown(_)));
        assert!(matches!(classify(None, Some(503)), Failure::Unknown(_)));
    }

    #[test]
    fn tag_values_are_what_ses_accepts() {
        assert_eq!(tag_value("ld_01H/x y"), "ld_01H_x_y");
        assert_eq!(tag_value(""), "_");
        assert_eq!(tag_value(&"a".repeat(300)).len(), 256);
    }
}
