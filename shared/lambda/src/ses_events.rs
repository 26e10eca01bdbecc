//! `feedback`: SES events (delivered, opened, clicked, bounced, complained) delivered by
//! EventBridge (`source: aws.ses`), turned into lead events.
//!
//! | SES `eventType` | lead event | properties |
//! |---|---|---|
//! | `Delivery` | `email_delivered` | |
//! | `Open` | `email_open` | `user_agent`, `seconds_since_delivery` |
//! | `Click` | `email_click` | `link`, `user_agent`, `seconds_since_delivery` |
//! | `Bounce` | `email_bounced` | `bounce_type` (`Permanent` suppresses the address) |
//! | `Complaint` | `email_complaint` | (suppresses the address) |
//!
//! Every one also carries the message's tags (`campaign`, `step`, `template`, `send_id`) and
//! the SES message id. The event id is `ses:<EventBridge event id>`, so a redelivered event
//! counts once. Opens and clicks from scanners (known user agents, image proxies, or within a
//! few seconds of sending) are flagged as machine traffic by the engine: recorded, no points.
//! This handler flags two more kinds itself (`properties.machine: true`, with
//! `machine_reason`), because only the SES event shows them:
//!
//! - `privacy_prefetch`: an open whose user agent is the bare `Mozilla/5.0` — what Apple Mail
//!   Privacy Protection's proxy sends when it prefetches every image of a received message,
//!   whether or not anyone reads it;
//! - `unsubscribe_link`: a click on the email's own unsubscribe link (SES rewrites every link
//!   for click tracking, that one included): an intent to leave, never engagement. The link is
//!   recognised by its path (`…/v1/unsubscribe`) or by a `token` that is a valid unsubscribe
//!   token of this stack.
//!
//! Mail that Ember did not send — no `send_id` tag in `mail.tags`: another application on the
//! same SES account or configuration set — changes no lead ([`Handled::NotEmber`]), whatever its
//! type (a bounce of someone else's mail does not suppress a lead).
//!
//! Other SES event types (send, reject, rendering failure, delivery delay, subscription) are
//! acknowledged and ignored: a rejected or unrendered message never reached the person, a
//! delivery delay ends in a delivery or a bounce, which are reported, and subscription events
//! belong to SES-managed contact lists, which Ember does not use. Transient and undetermined
//! bounces are recorded (`bounce_type`) and suppress nothing. Events about an address with no
//! lead (erased) change nothing.

use crate::AwsStack;
use ember_scoring::RawEvent;
use ember_service::IngestStatus;
use serde_json::{Map, Value, json};

/// Why an event could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum SesEventError {
    /// Not an SES event we can read.
    #[error("not a readable SES event: {0}")]
    Shape(String),
    /// The services refused or failed.
    #[error("feedback: {0}")]
    Service(String),
}

/// What became of one SES event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum Handled {
    /// Applied to the lead (or a duplicate of one already applied).
    Applied {
        /// The lead event type.
        kind: String,
        /// `accepted` or `duplicate`.
        status: String,
    },
    /// An SES event type Ember does not track.
    Ignored {
        /// Its `eventType`.
        event_type: String,
    },
    /// No lead has this address (erased or never known).
    NoLead,
    /// The message was not sent by Ember (no `send_id` tag): no lead is touched.
    NotEmber,
}

/// Why an SES event becomes no lead event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// An SES event type Ember does not track (its `eventType`).
    Untracked(String),
    /// The message carries no Ember send tag: Ember did not send it.
    NotEmber,
}

/// The user agent Apple Mail Privacy Protection's proxy fetches images with.
pub const APPLE_MPP_USER_AGENT: &str = "Mozilla/5.0";

/// Whether `link` is an Ember unsubscribe link (by its path, whatever the host: the public URL
/// may be a custom domain).
pub fn is_unsubscribe_path(link: &str) -> bool {
    let rest = link.split_once("://").map_or(link, |(_, r)| r);
    let path = rest.split(['?', '#']).next().unwrap_or("");
    let path = path.split_once('/').map_or("", |(_, p)| p).trim_end_matches('/');
    path == "v1/unsubscribe" || path.ends_with("/v1/unsubscribe")
}

/// The value of the `token` query parameter of `link`, if any (not percent-decoded: tokens
/// are URL-safe).
fn token_of(link: &str) -> Option<&str> {
    let query = link.split('#').next()?.split_once('?')?.1;
    query.split('&').find_map(|kv| kv.strip_prefix("token=")).filter(|t| !t.is_empty())
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// The lead event for an SES event (the whole EventBridge envelope), or why there is none (an
/// event type Ember does not track, or mail Ember did not send).
pub fn to_lead_event(envelope: &Value) -> Result<Result<RawEvent, Skip>, SesEventError> {
    let id = s(envelope, &["id"]).ok_or_else(|| SesEventError::Shape("no event `id`".into()))?;
    let detail = envelope.get("detail").ok_or_else(|| SesEventError::Shape("no `detail`".into()))?;
    let event_type = s(detail, &["eventType"])
        .or_else(|| s(detail, &["notificationType"]))
        .ok_or_else(|| SesEventError::Shape("no `detail.eventType`".into()))?;
    let mail = detail.get("mail").ok_or_else(|| SesEventError::Shape("no `detail.mail`".into()))?;
    let sent_at = s(mail, &["timestamp"]).and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let (kind, section) = match event_type {
        "Delivery" => ("email_delivered", "delivery"),
        "Open" => ("email_open", "open"),
        "Click" => ("email_click", "click"),
        "Bounce" => ("email_bounced", "bounce"),
        "Complaint" => ("email_complaint", "complaint"),
        other => return Ok(Err(Skip::Untracked(other.to_string()))),
    };
    let tags = mail.get("tags").and_then(Value::as_object);
    let tag = |key: &str| tags.and_then(|t| t.get(key)?.as_array()?.first()?.as_str()).filter(|v| !v.is_empty());
    if tag("send_id").is_none() {
        return Ok(Err(Skip::NotEmber));
    }
    let part = detail.get(section).cloned().unwrap_or(Value::Null);
    let at = s(&part, &["timestamp"]).or_else(|| s(envelope, &["time"])).map(str::to_string);
    let recipient = match kind {
        "email_bounced" => part.get("bouncedRecipients").and_then(|r| r.as_array()?.first()?.get("emailAddress")?.as_str()),
        "email_complaint" => part.get("complainedRecipients").and_then(|r| r.as_array()?.first()?.get("emailAddress")?.as_str()),
        _ => None,
    }
    .or_else(|| mail.get("destination")?.as_array()?.first()?.as_str())
    .ok_or_else(|| SesEventError::Shape("no recipient in `detail.mail.destination`".into()))?;

    let mut props = Map::new();
    for key in ["campaign", "step", "template", "send_id", "lead_id"] {
        if let Some(v) = tag(key) {
            let value = if key == "step" { v.parse::<u64>().map(Value::from).unwrap_or_else(|_| v.into()) } else { v.into() };
            props.insert(key.into(), value);
        }
    }
    if let Some(m) = s(mail, &["messageId"]) {
        props.insert("message_id".into(), m.into());
    }
    if let Some(ua) = s(&part, &["userAgent"]) {
        props.insert("user_agent".into(), ua.into());
    }
    if let Some(link) = s(&part, &["link"]) {
        props.insert("link".into(), link.into());
    }
    let machine_reason = match kind {
        "email_open" if s(&part, &["userAgent"]).is_some_and(|ua| ua.trim() == APPLE_MPP_USER_AGENT) => Some("privacy_prefetch"),
        "email_click" if s(&part, &["link"]).is_some_and(is_unsubscribe_path) => Some("unsubscribe_link"),
        _ => None,
    };
    if let Some(reason) = machine_reason {
        props.insert("machine".into(), Value::Bool(true));
        props.insert("machine_reason".into(), reason.into());
    }
    if let Some(bt) = s(&part, &["bounceType"]) {
        props.insert("bounce_type".into(), bt.into());
    }
    if let Some(st) = s(&part, &["bounceSubType"]) {
        props.insert("bounce_sub_type".into(), st.into());
    }
    if let (Some(sent), Some(at)) = (sent_at, at.as_deref().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())) {
        if matches!(kind, "email_open" | "email_click") {
            props.insert("seconds_since_delivery".into(), json!((at - sent).num_seconds().max(0)));
        }
    }
    let raw = json!({
        "event_id": format!("ses:{id}"),
        "type": kind,
        "occurred_at": at,
        "email": recipient,
        "properties": props,
    });
    serde_json::from_value(raw).map(Ok).map_err(|e| SesEventError::Shape(e.to_string()))
}

/// A click whose link carries one of this stack's unsubscribe tokens is an unsubscribe intent,
/// whatever its path (a custom domain, a redirect): machine traffic, no points.
fn flag_unsubscribe_token(stack: &AwsStack, raw: &mut RawEvent) {
    if raw.kind.as_ref().and_then(Value::as_str) != Some("email_click") {
        return;
    }
    let Some(Value::Object(props)) = raw.properties.as_mut() else { return };
    if props.get("machine").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let ours = props.get("link").and_then(Value::as_str).and_then(token_of).is_some_and(|t| stack.ember.composer().verify_unsubscribe(t).is_some());
    if ours {
        props.insert("machine".into(), Value::Bool(true));
        props.insert("machine_reason".into(), "unsubscribe_link".into());
    }
}

/// Handles one SES event from EventBridge.
pub async fn handle(stack: &AwsStack, envelope: &Value) -> Result<Handled, SesEventError> {
    let mut raw = match to_lead_event(envelope)? {
        Ok(raw) => raw,
        Err(Skip::Untracked(event_type)) => {
            tracing::info!(event_type = %event_type, "SES event type not tracked");
            return Ok(Handled::Ignored { event_type });
        }
        Err(Skip::NotEmber) => {
            tracing::info!(ses_event_id = s(envelope, &["id"]).unwrap_or(""), "SES event for mail Ember did not send (no send_id tag); ignored");
            return Ok(Handled::NotEmber);
        }
    };
    flag_unsubscribe_token(stack, &mut raw);
    let kind = raw.kind.as_ref().and_then(Value::as_str).unwrap_or("").to_string();
    match stack.ember.feedback.email(&raw).await {
        Ok(Some(IngestStatus::Accepted { .. })) => Ok(Handled::Applied { kind, status: "accepted".into() }),
        Ok(Some(IngestStatus::Duplicate { .. })) => Ok(Handled::Applied { kind, status: "duplicate".into() }),
        Ok(Some(IngestStatus::Rejected { reason, .. })) => Err(SesEventError::Service(reason)),
        Ok(None) => {
            tracing::info!(kind = %kind, "email event for an address with no lead; ignored");
            Ok(Handled::NoLead)
        }
        Err(e) => Err(SesEventError::Service(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsubscribe_links_by_path() {
        assert!(is_unsubscribe_path("https://api.ember.example/v1/unsubscribe?token=abc"));
        assert!(is_unsubscribe_path("https://mail.shop.example/ember/v1/unsubscribe/?token=abc#x"));
        assert!(!is_unsubscribe_path("https://www.example.com/pricing?next=/v1/unsubscribe"));
        assert!(!is_unsubscribe_path("https://www.example.com/v1/unsubscribed"));
        assert_eq!(token_of("https://x.example/u?a=1&token=t.k-1#f"), Some("t.k-1"));
        assert_eq!(token_of("https://x.example/u?token="), None);
    }
}
