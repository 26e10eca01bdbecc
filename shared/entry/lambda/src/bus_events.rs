//! `handoff`: domain messages from the bus (an EventBridge rule on `source: ember`,
//! `detail-type` `lead.qualified` / `lead.sla_breached` / `lead.recycled`) → signed webhooks.
//!
//! The event's `detail` is the message as [`ember_aws::EventBridgeBus`] put it. The handoff
//! service retries each webhook with backoff and, when it keeps failing, puts it on the SQS
//! dead-letter queue; the invocation then succeeds (the failure is kept, not lost). A webhook
//! that neither the CRM nor the dead-letter queue took fails the invocation ([`Retry::Retryable`]),
//! and so does a malformed event ([`Retry::NotRetryable`]: Lambda's retries, then the
//! failed-events queue, keep it for a person; see [`crate::edge`]).

use crate::AwsServices;
use crate::edge::Retry;
use ember_scoring::lead::Message;
use ember_service::ports::{BusError, MessageHandler};
use serde::Deserialize;
use serde_json::Value;

/// Why an event could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum BusEventError {
    /// Not an Ember message.
    #[error("the event's detail is not an Ember message: {0}")]
    Shape(#[from] serde_json::Error),
    /// The handoff failed: a webhook was delivered nowhere and kept nowhere, or the lead could
    /// not be read.
    #[error("handoff: {0}")]
    Handoff(#[from] BusError),
}

impl BusEventError {
    /// Whether the same event could be handled later ([`crate::edge`]).
    pub fn retry(&self) -> Retry {
        match self {
            BusEventError::Shape(_) => Retry::NotRetryable,
            BusEventError::Handoff(_) => Retry::Retryable,
        }
    }
}

/// The EventBridge envelope of an Ember message (`source: ember`), as the handoff rule
/// delivers it; what else EventBridge puts in it is ignored.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct BusEvent {
    /// The message, as [`ember_aws::EventBridgeBus`] put it.
    pub detail: Message,
}

/// The Ember message an EventBridge event (the whole envelope) carries in its `detail`.
pub fn message(envelope: &Value) -> Result<Message, BusEventError> {
    // An envelope is an object (serde would also read a struct from a list).
    if !envelope.is_object() {
        return Err(BusEventError::Shape(serde::de::Error::custom("no `detail`")));
    }
    Ok(BusEvent::deserialize(envelope)?.detail)
}

/// Handles one EventBridge event (the whole envelope).
pub async fn handle(services: &AwsServices, envelope: &Value) -> Result<String, BusEventError> {
    let message = message(envelope)?;
    tracing::info!(message_type = %message.kind, message_id = %message.id, "handoff");
    services.handoff.handle(&message).await?;
    Ok(message.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_sample_decodes_and_a_malformed_event_is_not_retried() {
        let sample: Value = serde_json::from_str(include_str!("../../../../events/bus-lead-qualified.json")).unwrap();
        let m = message(&sample).unwrap();
        assert_eq!((m.id.as_str(), m.kind.as_str(), m.lead_id.as_str()), ("msg_sample_qualified", "lead.qualified", "ld_sample"));
        assert_eq!(m.data["stage"], "sql");
        // Only `detail` is read: an envelope without EventBridge's other fields decodes too.
        assert_eq!(message(&json!({"detail": sample["detail"]})).unwrap(), m);
        for bad in [json!({"detail": {"nope": 1}}), json!({"id": "x"}), json!({"detail": null}), json!([{"detail": sample["detail"]}]), json!("x")] {
            let e = message(&bad).unwrap_err();
            assert_eq!(e.retry(), Retry::NotRetryable, "{bad}");
            assert!(e.to_string().starts_with("the event's detail is not an Ember message: "), "{e}");
        }
        let down = BusEventError::from(BusError("no dead-letter queue configured (EMBER_DLQ_URL)".into()));
        assert_eq!((down.retry(), down.to_string().as_str()), (Retry::Retryable, "handoff: bus: no dead-letter queue configured (EMBER_DLQ_URL)"));
        assert!(std::error::Error::source(&down).is_some(), "the bus error is kept as the source");
    }
}
