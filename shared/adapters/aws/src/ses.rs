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
//! - a request that provably never left the machine is [`SendOutcome::Retry`] too: the request
//!   could not be built (`ConstructionFailure`), or the connection was never made (DNS,
//!   connection refused, TLS handshake, connect timeout: the HTTP client's *connect* errors);
//! - a refusal of this message (`MessageRejected` for its content or address, a bad address,
//!   `BadRequestException`) is [`SendOutcome::Rejected`]: recorded, never resent;
//! - an account-level refusal (`MessageRejected` "Email address is not verified" — an unverified
//!   sender, or a recipient while the account is in the SES sandbox —, `SendingPausedException`,
//!   `AccountSuspendedException`, `MailFromDomainNotVerifiedException`, `NotFoundException` for a
//!   missing configuration set, `AccessDeniedException`) is [`SendOutcome::Blocked`]: the message
//!   is fine, the account is not; the step is kept, logged as an error with
//!   `alarm = "ses_configuration"`, and the drip run reports it so that its invocation fails
//!   (the function's error alarm fires);
//! - anything else is [`SendOutcome::Unknown`]: the request may have reached SES (the connection
//!   closed or reset after it was written, an incomplete answer, a timeout, a 5xx, an unreadable
//!   answer), so SES may have sent it: it is marked and never resent.
//!
//! The SDK's own retries are switched off for this client so that only throttling, which is
//! known to send nothing, is ever retried.

use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message, MessageHeader, MessageTag};
use aws_smithy_runtime_api::client::dns::ResolveDnsError;
use aws_smithy_runtime_api::client::result::ConnectorError;
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
    /// The sending account or identity is misconfigured: nothing was sent, an operator must act.
    Configuration(String),
    /// This message is refused for good.
    Refused(String),
    /// It may or may not have been sent.
    Unknown(String),
}

/// Classifies an error code (and HTTP status, and message) from SES.
pub(crate) fn classify(code: Option<&str>, status: Option<u16>, message: Option<&str>) -> Failure {
    let c = code.unwrap_or("").to_string();
    match code {
        Some("TooManyRequestsException" | "LimitExceededException" | "Throttling" | "ThrottlingException") => {
            Failure::Throttled(c)
        }
        // SES answers an unverified sender, and (in the sandbox) an unverified recipient, with
        // `MessageRejected`: "Email address is not verified. The following identities failed
        // the check in region …". The message is fine; the account is not ready to send.
        Some("MessageRejected") if message.is_some_and(|m| m.to_ascii_lowercase().contains("not verified")) => {
            Failure::Configuration(format!("{c}: an identity is not verified (unverified sender, or the SES sandbox)"))
        }
        Some("MessageRejected" | "BadRequestException" | "InvalidParameterValue") => Failure::Refused(c),
        Some(
            "SendingPausedException"
            | "AccountSuspendedException"
            | "MailFromDomainNotVerifiedException"
            | "NotFoundException"
            | "AccessDeniedException",
        ) => Failure::Configuration(c),
        _ if status == Some(429) => Failure::Throttled(format!("HTTP 429 {c}")),
        _ if status.is_some_and(|s| (400..500).contains(&s)) => Failure::Refused(format!("HTTP {} {c}", status.unwrap_or(0))),
        _ => Failure::Unknown(if c.is_empty() { format!("HTTP {}", status.unwrap_or(0)) } else { c }),
    }
}

/// Whether a dispatch failure proves that no byte of the request reached SES: the HTTP
/// client could not open the connection (DNS, refused, TLS handshake, connect timeout). A
/// connection that closed, reset or timed out once the request was being written or answered
/// proves nothing: SES may have received the whole request.
pub(crate) fn never_left(e: &ConnectorError) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if err.downcast_ref::<hyper_util::client::legacy::Error>().is_some_and(|h| h.is_connect())
            || err.is::<ResolveDnsError>()
        {
            return true;
        }
        next = err.source();
    }
    false
}

fn failure<E: ProvideErrorMetadata>(e: &SdkError<E, aws_sdk_sesv2::config::http::HttpResponse>) -> Failure {
    match e {
        SdkError::ConstructionFailure(_) => Failure::NotSent("the request could not be built".into()),
        SdkError::DispatchFailure(d) if d.as_connector_error().is_some_and(never_left) => {
            Failure::NotSent("no connection to SES could be made".into())
        }
        SdkError::DispatchFailure(d) => Failure::Unknown(format!(
            "the request may have reached SES ({})",
            if d.is_timeout() { "timeout" } else if d.is_io() { "connection closed or reset" } else { "no complete answer" }
        )),
        SdkError::TimeoutError(_) => Failure::Unknown("no answer (timeout)".into()),
        SdkError::ResponseError(_) => Failure::Unknown("the answer could not be read".into()),
        SdkError::ServiceError(s) => classify(e.code(), Some(s.raw().status().as_u16()), e.message()),
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
                    Failure::Configuration(why) => {
                        tracing::error!(
                            alarm = "ses_configuration",
                            send_id = %email.send_id,
                            reason = %why,
                            "SES refuses to send for this account or identity; the step is kept until it is fixed"
                        );
                        return SendOutcome::Blocked { reason: why };
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
        assert!(matches!(classify(Some("TooManyRequestsException"), Some(429), None), Failure::Throttled(_)));
        assert!(matches!(classify(None, Some(429), None), Failure::Throttled(_)));
        assert!(matches!(classify(Some("MessageRejected"), Some(400), Some("Illegal header")), Failure::Refused(_)));
        assert!(matches!(classify(Some("SendingPausedException"), Some(400), None), Failure::Configuration(_)));
        assert!(matches!(classify(Some("NotFoundException"), Some(404), None), Failure::Configuration(_)));
        assert!(matches!(classify(Some("InternalFailure"), Some(500), None), Failure::Unknown(_)));
        assert!(matches!(classify(None, Some(503), None), Failure::Unknown(_)));
    }

    #[test]
    fn an_unverified_identity_is_a_configuration_failure_not_a_refusal() {
        // SES's own words, for an unverified sender and for a sandbox account's recipient.
        let real = "Email address is not verified. The following identities failed the check in region EU-WEST-1: hello@ember.example";
        assert!(matches!(classify(Some("MessageRejected"), Some(400), Some(real)), Failure::Configuration(_)));
        // moto's wording.
        let moto = "Email address not verified hello@ember.example";
        assert!(matches!(classify(Some("MessageRejected"), Some(400), Some(moto)), Failure::Configuration(_)));
    }

    #[test]
    fn tag_values_are_what_ses_accepts() {
        assert_eq!(tag_value("ld_01H/x y"), "ld_01H_x_y");
        assert_eq!(tag_value(""), "_");
        assert_eq!(tag_value(&"a".repeat(300)).len(), 256);
    }
}
