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
//!
//! The event is read into typed structs ([`SesEnvelope`], [`SesRecord`], [`SesMail`] and the
//! object of each tracked type) that hold only what Ember reads. A malformed event, or one the
//! lead refuses, fails as not retryable; a store that fails, as retryable ([`crate::edge`]).

use crate::AwsServices;
use crate::edge::Retry;
use ember_scoring::RawEvent;
use ember_service::{IngestStatus, ServiceError};
use serde::de::{Deserialize, DeserializeOwned, Deserializer};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Why an event could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum SesEventError {
    /// Not an SES event Ember can read: what is missing.
    #[error("not a readable SES event: {0}")]
    Shape(&'static str),
    /// The lead refused the event (one of its limits): it always would.
    #[error("feedback: {0}")]
    Refused(String),
    /// The services failed (the store, contention on the lead, an event they find invalid).
    #[error("feedback: {0}")]
    Service(#[from] ServiceError),
}

impl SesEventError {
    /// Whether the same SES event could be handled later ([`crate::edge`]).
    pub fn retry(&self) -> Retry {
        match self {
            SesEventError::Shape(_) | SesEventError::Refused(_) => Retry::NotRetryable,
            SesEventError::Service(e) => Retry::of_service(e),
        }
    }
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

// What Ember reads of an SES event, as EventBridge delivers it (`source: aws.ses`). Every
// field is optional and a field of another JSON type than SES sends reads as absent, so that
// what is missing can be named ([`SesEventError::Shape`]) and a field Ember does not read never
// stops an event; fields not listed are ignored.

/// The EventBridge envelope of an SES event.
#[derive(Debug, Default, serde::Deserialize)]
pub struct SesEnvelope {
    /// EventBridge's id of the event: the lead event is `ses:<id>`, so a redelivery counts once.
    #[serde(default, deserialize_with = "string")]
    pub id: Option<String>,
    /// When EventBridge received it: the lead event's time when the SES record gives none.
    #[serde(default, deserialize_with = "string")]
    pub time: Option<String>,
    /// The SES record (present, even as `null`, or not).
    #[serde(default, deserialize_with = "present")]
    pub detail: Option<SesRecord>,
}

/// An SES event-publishing record (`eventType`) or notification (`notificationType`): the
/// message, and the object of the record's own type.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SesRecord {
    /// `Delivery`, `Open`, `Click`, `Bounce`, `Complaint`, or one Ember does not track (`Send`,
    /// `Reject`, `Rendering Failure`, `DeliveryDelay`, `Subscription`…).
    #[serde(default, deserialize_with = "string")]
    pub event_type: Option<String>,
    /// The same, in SES notifications (read when there is no `eventType`).
    #[serde(default, deserialize_with = "string")]
    pub notification_type: Option<String>,
    /// The message the event is about.
    #[serde(default, deserialize_with = "present")]
    pub mail: Option<SesMail>,
    /// For a `Delivery`.
    #[serde(default, deserialize_with = "object")]
    pub delivery: Option<SesDelivery>,
    /// For an `Open`.
    #[serde(default, deserialize_with = "object")]
    pub open: Option<SesOpen>,
    /// For a `Click`.
    #[serde(default, deserialize_with = "object")]
    pub click: Option<SesClick>,
    /// For a `Bounce`.
    #[serde(default, deserialize_with = "object")]
    pub bounce: Option<SesBounce>,
    /// For a `Complaint`.
    #[serde(default, deserialize_with = "object")]
    pub complaint: Option<SesComplaint>,
}

/// The message an SES event is about.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SesMail {
    /// When SES accepted it (RFC 3339): opens and clicks are timed from it.
    #[serde(default, deserialize_with = "string")]
    pub timestamp: Option<String>,
    /// SES's id of the message.
    #[serde(default, deserialize_with = "string")]
    pub message_id: Option<String>,
    /// Its recipients: Ember sends to one.
    #[serde(default)]
    pub destination: First<String>,
    /// The tags Ember sent it with (`send_id`, `lead_id`, `campaign`, `step`, `template`), each a
    /// list of which Ember reads the first value.
    #[serde(default, deserialize_with = "object")]
    pub tags: Option<BTreeMap<String, First<String>>>,
}

impl SesMail {
    /// The first value of tag `key`, when it is not empty.
    fn tag(&self, key: &str) -> Option<&str> {
        self.tags.as_ref()?.get(key)?.0.as_deref().filter(|v| !v.is_empty())
    }
}

/// A `Delivery`: the receiving server accepted the message.
#[derive(Debug, Default, serde::Deserialize)]
pub struct SesDelivery {
    /// When (RFC 3339).
    #[serde(default, deserialize_with = "string")]
    pub timestamp: Option<String>,
}

/// An `Open`: the tracking image was fetched.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SesOpen {
    /// When (RFC 3339).
    #[serde(default, deserialize_with = "string")]
    pub timestamp: Option<String>,
    /// Who fetched it: a mail client, an image proxy, a scanner.
    #[serde(default, deserialize_with = "string")]
    pub user_agent: Option<String>,
}

/// A `Click` on a tracked link.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SesClick {
    /// When (RFC 3339).
    #[serde(default, deserialize_with = "string")]
    pub timestamp: Option<String>,
    /// User agent of the click: a person's browser, or a scanner that follows links (machine traffic).
    #[serde(default, deserialize_with = "string")]
    pub user_agent: Option<String>,
    /// The link's target, as Ember wrote it in the email.
    #[serde(default, deserialize_with = "string")]
    pub link: Option<String>,
}

/// A `Bounce`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SesBounce {
    /// When (RFC 3339).
    #[serde(default, deserialize_with = "string")]
    pub timestamp: Option<String>,
    /// `Permanent` (the address is suppressed), `Transient` or `Undetermined`.
    #[serde(default, deserialize_with = "string")]
    pub bounce_type: Option<String>,
    /// SES's finer reason (`General`, `MailboxFull`…).
    #[serde(default, deserialize_with = "string")]
    pub bounce_sub_type: Option<String>,
    /// The addresses that bounced: Ember sends to one.
    #[serde(default)]
    pub bounced_recipients: First<SesRecipient>,
}

/// A `Complaint`: the recipient marked the message as spam.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SesComplaint {
    /// When (RFC 3339).
    #[serde(default, deserialize_with = "string")]
    pub timestamp: Option<String>,
    /// The feedback report's sender (`Yahoo!-Mail-Feedback/2.0`…).
    #[serde(default, deserialize_with = "string")]
    pub user_agent: Option<String>,
    /// The addresses that complained: Ember sends to one.
    #[serde(default)]
    pub complained_recipients: First<SesRecipient>,
}

/// One recipient of a bounce or a complaint.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SesRecipient {
    /// `emailAddress`: the address that bounced or complained, as SES reports it.
    #[serde(default, deserialize_with = "string")]
    pub email_address: Option<String>,
}

/// The first element of a JSON list, when it is a `T` (SES lists recipients and tag values).
#[derive(Debug)]
pub struct First<T>(pub Option<T>);

impl<T> Default for First<T> {
    fn default() -> Self {
        First(None)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for First<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let first = match Value::deserialize(d)? {
            Value::Array(items) => items.into_iter().next(),
            _ => None,
        };
        // A struct is read from an object only (serde would also read one from a list).
        Ok(First(first.filter(|v| !v.is_array()).and_then(|v| T::deserialize(v).ok())))
    }
}

/// A string, or absent.
fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

/// An object read as `T`, or absent.
fn object<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    Ok(match Value::deserialize(d)? {
        v @ Value::Object(_) => T::deserialize(v).ok(),
        _ => None,
    })
}

/// A field that is there, whatever its value: an object read as `T`, anything else as an empty
/// `T` (what is missing in it is then named).
fn present<'de, D: Deserializer<'de>, T: DeserializeOwned + Default>(d: D) -> Result<Option<T>, D::Error> {
    Ok(Some(object(d)?.unwrap_or_default()))
}

impl SesEnvelope {
    /// Reads an EventBridge event (anything but an object reads as an empty envelope).
    pub fn read(event: &Value) -> SesEnvelope {
        match event {
            Value::Object(_) => SesEnvelope::deserialize(event).unwrap_or_default(),
            _ => SesEnvelope::default(),
        }
    }
}

/// An SES event type Ember turns into a lead event, with its object.
enum Tracked {
    Delivery(SesDelivery),
    Open(SesOpen),
    Click(SesClick),
    Bounce(SesBounce),
    Complaint(SesComplaint),
}

impl Tracked {
    /// The event type's object (empty when the record has none).
    fn of(event_type: &str, record: SesRecord) -> Option<Tracked> {
        Some(match event_type {
            "Delivery" => Tracked::Delivery(record.delivery.unwrap_or_default()),
            "Open" => Tracked::Open(record.open.unwrap_or_default()),
            "Click" => Tracked::Click(record.click.unwrap_or_default()),
            "Bounce" => Tracked::Bounce(record.bounce.unwrap_or_default()),
            "Complaint" => Tracked::Complaint(record.complaint.unwrap_or_default()),
            _ => return None,
        })
    }

    /// The lead event type.
    fn kind(&self) -> &'static str {
        match self {
            Tracked::Delivery(_) => "email_delivered",
            Tracked::Open(_) => "email_open",
            Tracked::Click(_) => "email_click",
            Tracked::Bounce(_) => "email_bounced",
            Tracked::Complaint(_) => "email_complaint",
        }
    }

    fn timestamp(&self) -> Option<&str> {
        match self {
            Tracked::Delivery(d) => d.timestamp.as_deref(),
            Tracked::Open(o) => o.timestamp.as_deref(),
            Tracked::Click(c) => c.timestamp.as_deref(),
            Tracked::Bounce(b) => b.timestamp.as_deref(),
            Tracked::Complaint(c) => c.timestamp.as_deref(),
        }
    }

    fn user_agent(&self) -> Option<&str> {
        match self {
            Tracked::Open(o) => o.user_agent.as_deref(),
            Tracked::Click(c) => c.user_agent.as_deref(),
            Tracked::Complaint(c) => c.user_agent.as_deref(),
            Tracked::Delivery(_) | Tracked::Bounce(_) => None,
        }
    }

    /// The address a bounce or a complaint names.
    fn recipient(&self) -> Option<&str> {
        match self {
            Tracked::Bounce(b) => b.bounced_recipients.0.as_ref()?.email_address.as_deref(),
            Tracked::Complaint(c) => c.complained_recipients.0.as_ref()?.email_address.as_deref(),
            _ => None,
        }
    }
}

/// The lead event for an SES event (the whole EventBridge envelope), or why there is none (an
/// event type Ember does not track, or mail Ember did not send).
pub fn to_lead_event(envelope: &Value) -> Result<Result<RawEvent, Skip>, SesEventError> {
    lead_event(SesEnvelope::read(envelope))
}

/// [`to_lead_event`] of an envelope already read.
pub fn lead_event(envelope: SesEnvelope) -> Result<Result<RawEvent, Skip>, SesEventError> {
    let id = envelope.id.ok_or(SesEventError::Shape("no event `id`"))?;
    let mut record = envelope.detail.ok_or(SesEventError::Shape("no `detail`"))?;
    let event_type = record.event_type.take().or(record.notification_type.take()).ok_or(SesEventError::Shape("no `detail.eventType`"))?;
    let mail = record.mail.take().ok_or(SesEventError::Shape("no `detail.mail`"))?;
    let Some(tracked) = Tracked::of(&event_type, record) else {
        return Ok(Err(Skip::Untracked(event_type)));
    };
    if mail.tag("send_id").is_none() {
        return Ok(Err(Skip::NotEmber));
    }
    let kind = tracked.kind();
    let at = tracked.timestamp().map(str::to_string).or(envelope.time);
    let recipient = tracked
        .recipient()
        .or(mail.destination.0.as_deref())
        .ok_or(SesEventError::Shape("no recipient in `detail.mail.destination`"))?;

    let mut props = Map::new();
    for key in ["campaign", "step", "template", "send_id", "lead_id"] {
        if let Some(v) = mail.tag(key) {
            let value = if key == "step" { v.parse::<u64>().map(Value::from).unwrap_or_else(|_| v.into()) } else { v.into() };
            props.insert(key.into(), value);
        }
    }
    if let Some(m) = &mail.message_id {
        props.insert("message_id".into(), m.as_str().into());
    }
    if let Some(ua) = tracked.user_agent() {
        props.insert("user_agent".into(), ua.into());
    }
    let link = match &tracked {
        Tracked::Click(c) => c.link.as_deref(),
        _ => None,
    };
    if let Some(link) = link {
        props.insert("link".into(), link.into());
    }
    let machine_reason = match &tracked {
        Tracked::Open(o) if o.user_agent.as_deref().is_some_and(|ua| ua.trim() == APPLE_MPP_USER_AGENT) => Some("privacy_prefetch"),
        Tracked::Click(_) if link.is_some_and(is_unsubscribe_path) => Some("unsubscribe_link"),
        _ => None,
    };
    if let Some(reason) = machine_reason {
        props.insert("machine".into(), Value::Bool(true));
        props.insert("machine_reason".into(), reason.into());
    }
    if let Tracked::Bounce(b) = &tracked {
        if let Some(bt) = &b.bounce_type {
            props.insert("bounce_type".into(), bt.as_str().into());
        }
        if let Some(st) = &b.bounce_sub_type {
            props.insert("bounce_sub_type".into(), st.as_str().into());
        }
    }
    let time = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    if let (Some(sent), Some(at), Tracked::Open(_) | Tracked::Click(_)) = (mail.timestamp.as_deref().and_then(time), at.as_deref().and_then(time), &tracked) {
        props.insert("seconds_since_delivery".into(), json!((at - sent).num_seconds().max(0)));
    }
    Ok(Ok(RawEvent {
        event_id: Some(format!("ses:{id}").into()),
        kind: Some(kind.into()),
        occurred_at: at.map(Value::from),
        email: Some(recipient.into()),
        properties: Some(Value::Object(props)),
        ..RawEvent::default()
    }))
}

/// A click whose link carries one of this stack's unsubscribe tokens is an unsubscribe intent,
/// whatever its path (a custom domain, a redirect): machine traffic, no points.
fn flag_unsubscribe_token(services: &AwsServices, raw: &mut RawEvent) {
    if raw.kind.as_ref().and_then(Value::as_str) != Some("email_click") {
        return;
    }
    let Some(Value::Object(props)) = raw.properties.as_mut() else { return };
    if props.get("machine").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let ours = props.get("link").and_then(Value::as_str).and_then(token_of).is_some_and(|t| services.ember.composer().verify_unsubscribe(t).is_some());
    if ours {
        props.insert("machine".into(), Value::Bool(true));
        props.insert("machine_reason".into(), "unsubscribe_link".into());
    }
}

/// Handles one SES event from EventBridge.
pub async fn handle(services: &AwsServices, envelope: &Value) -> Result<Handled, SesEventError> {
    let envelope = SesEnvelope::read(envelope);
    let ses_event_id = envelope.id.clone().unwrap_or_default();
    let mut raw = match lead_event(envelope)? {
        Ok(raw) => raw,
        Err(Skip::Untracked(event_type)) => {
            tracing::info!(event_type = %event_type, "SES event type not tracked");
            return Ok(Handled::Ignored { event_type });
        }
        Err(Skip::NotEmber) => {
            tracing::info!(ses_event_id = %ses_event_id, "SES event for mail Ember did not send (no send_id tag); ignored");
            return Ok(Handled::NotEmber);
        }
    };
    flag_unsubscribe_token(services, &mut raw);
    let kind = raw.kind.as_ref().and_then(Value::as_str).unwrap_or("").to_string();
    match services.ember.feedback.email(&raw).await {
        Ok(Some(IngestStatus::Accepted { .. })) => Ok(Handled::Applied { kind, status: "accepted".into() }),
        Ok(Some(IngestStatus::Duplicate { .. })) => Ok(Handled::Applied { kind, status: "duplicate".into() }),
        Ok(Some(IngestStatus::Rejected { reason, .. })) => Err(SesEventError::Refused(reason)),
        Ok(None) => {
            tracing::info!(kind = %kind, "email event for an address with no lead; ignored");
            Ok(Handled::NoLead)
        }
        Err(e) => Err(e.into()),
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

    /// Every SES sample in `events/` decodes to the lead event (or the skip) it stands for.
    #[test]
    fn every_sample_decodes() {
        let sent = json!({"campaign": "nurture", "step": 0, "template": "nl-welcome", "send_id": "snd_sample", "message_id": "010201sample-ses-message-id"});
        let mac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15";
        let applied = |kind: &'static str, props: Value| Ok((kind, props));
        let table: Vec<(&str, Result<(&str, Value), Skip>)> = vec![
            ("ses-delivery.json", applied("email_delivered", json!({}))),
            ("ses-open.json", applied("email_open", json!({"user_agent": mac, "seconds_since_delivery": 4320}))),
            ("ses-open-apple-mpp.json", applied("email_open", json!({"user_agent": "Mozilla/5.0", "machine": true, "machine_reason": "privacy_prefetch"}))),
            ("ses-click.json", applied("email_click", json!({"user_agent": mac, "link": "https://www.example.com/pricing", "seconds_since_delivery": 4380}))),
            ("ses-click-scanner.json", applied("email_click", json!({"user_agent": "Mozilla/5.0 (compatible; Barracuda Sentinel)", "seconds_since_delivery": 3}))),
            ("ses-click-unsubscribe.json", applied("email_click", json!({"machine": true, "machine_reason": "unsubscribe_link"}))),
            ("ses-bounce.json", applied("email_bounced", json!({"bounce_type": "Permanent", "bounce_sub_type": "General"}))),
            ("ses-bounce-transient.json", applied("email_bounced", json!({"bounce_type": "Transient", "bounce_sub_type": "MailboxFull"}))),
            ("ses-bounce-undetermined.json", applied("email_bounced", json!({"bounce_type": "Undetermined", "bounce_sub_type": "Undetermined"}))),
            ("ses-complaint.json", applied("email_complaint", json!({"user_agent": "Yahoo!-Mail-Feedback/2.0"}))),
            ("ses-bounce-untagged.json", Err(Skip::NotEmber)),
            ("ses-click-untagged.json", Err(Skip::NotEmber)),
            ("ses-delivery-delay.json", Err(Skip::Untracked("DeliveryDelay".into()))),
            ("ses-reject.json", Err(Skip::Untracked("Reject".into()))),
            ("ses-rendering-failure.json", Err(Skip::Untracked("Rendering Failure".into()))),
            ("ses-subscription.json", Err(Skip::Untracked("Subscription".into()))),
        ];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../events");
        let mut samples: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|f| f.unwrap().file_name().into_string().unwrap()).filter(|n| n.starts_with("ses-")).collect();
        samples.sort();
        let mut listed: Vec<String> = table.iter().map(|(n, _)| n.to_string()).collect();
        listed.sort();
        assert_eq!(samples, listed, "every SES sample has a row");
        for (name, expected) in table {
            let envelope: Value = serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap();
            let got = to_lead_event(&envelope).unwrap_or_else(|e| panic!("{name}: {e}"));
            match (got, expected) {
                (Ok(raw), Ok((kind, props))) => {
                    assert_eq!(raw.kind, Some(json!(kind)), "{name}");
                    assert_eq!(raw.event_id, Some(json!(format!("ses:{}", envelope["id"].as_str().unwrap()))), "{name}");
                    assert_eq!(raw.email, Some(json!("sample.lead@example.com")), "{name}");
                    assert!(raw.occurred_at.is_some(), "{name}");
                    let got = raw.properties.clone().unwrap();
                    for (k, v) in sent.as_object().unwrap().iter().chain(props.as_object().unwrap()) {
                        assert_eq!(got.get(k), Some(v), "{name}: `{k}` in {got}");
                    }
                    let machine = props.get("machine").is_some();
                    assert_eq!(got.get("machine").is_some(), machine, "{name}: {got}");
                    // What the engine reads the lead from passes its validation.
                    raw.validate_from(ember_scoring::event::Source::Ember, "2026-03-04T00:00:00Z".parse().unwrap(), || "generated".into()).unwrap_or_else(|e| panic!("{name}: {e}"));
                }
                (got, expected) => assert_eq!(got.err(), expected.err(), "{name}"),
            }
        }
    }

    #[test]
    fn what_is_missing_is_named_and_not_retried() {
        let sample: Value = serde_json::from_str(include_str!("../../../../events/ses-bounce.json")).unwrap();
        let without = |pointer: &str| {
            let mut v = sample.clone();
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            v.pointer_mut(parent).unwrap().as_object_mut().unwrap().remove(key);
            to_lead_event(&v).err().map(|e| (e.to_string(), e.retry()))
        };
        let named = |what: &str| Some((format!("not a readable SES event: {what}"), Retry::NotRetryable));
        assert_eq!(without("/id"), named("no event `id`"));
        assert_eq!(without("/detail"), named("no `detail`"));
        assert_eq!(without("/detail/eventType"), named("no `detail.eventType`"));
        assert_eq!(without("/detail/mail"), named("no `detail.mail`"));
        // The recipient is read from the bounce, then from the message.
        assert_eq!(without("/detail/bounce/bouncedRecipients"), None);
        let mut nobody = sample.clone();
        nobody["detail"]["bounce"]["bouncedRecipients"] = json!([]);
        nobody["detail"]["mail"]["destination"] = json!("sample.lead@example.com");
        assert_eq!(to_lead_event(&nobody).err().map(|e| e.to_string()), named("no recipient in `detail.mail.destination`").map(|n| n.0));
        // A field of a type SES does not send reads as absent; fields Ember does not read are ignored.
        let mut odd = sample.clone();
        odd["detail"]["bounce"]["bounceSubType"] = json!(7);
        odd["detail"]["bounce"]["extra"] = json!({"any": ["thing"]});
        let raw = to_lead_event(&odd).unwrap().unwrap();
        assert!(raw.properties.unwrap().get("bounce_sub_type").is_none());
        // A notification (`notificationType`) reads like a published event.
        let mut notification = sample.clone();
        let t = notification["detail"].as_object_mut().unwrap().remove("eventType").unwrap();
        notification["detail"]["notificationType"] = t;
        assert_eq!(to_lead_event(&notification).unwrap().unwrap().kind, Some(json!("email_bounced")));
    }
}

