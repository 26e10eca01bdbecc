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
//! Other SES event types (send, reject, rendering failure, delivery delay, subscription) are
//! acknowledged and ignored. Events about an address with no lead (erased) change nothing.

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
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// The lead event for an SES event (the whole EventBridge envelope), or `None` for event types
/// Ember does not track (with that type).
pub fn to_lead_event(envelope: &Value) -> Result<Result<RawEvent, String>, SesEventError> {
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
        other => return Ok(Err(other.to_string())),
    };
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
    if let Some(tags) = mail.get("tags").and_then(Value::as_object) {
        for key in ["campaign", "step", "template", "send_id", "lead_id"] {
            if let Some(v) = tags.get(key).and_then(|v| v.as_array()?.first()?.as_str()) {
                let value = if key == "step" { v.parse::<u64>().map(Value::from).unwrap_or_else(|_| v.into()) } else { v.into() };
                props.insert(key.into(), value);
            }
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

/// Handles one SES event from EventBridge.
pub async fn handle(stack: &AwsStack, envelope: &Value) -> Result<Handled, SesEventError> {
    let raw = match to_lead_event(envelope)? {
        Ok(raw) => raw,
        Err(event_type) => {
            tracing::info!(event_type = %event_type, "SES event type not tracked");
            return Ok(Handled::Ignored { event_type });
        }
    };
    let kind = raw.kind.as_ref().and_then(Value::as_str).unwrap_or("").to_string();
    match stack.ember.email_feedback(&raw).await {
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
