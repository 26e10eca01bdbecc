//! `handoff`: domain messages from the bus (an EventBridge rule on `source: ember`,
//! `detail-type` `lead.qualified` / `lead.sla_breached` / `lead.recycled`) → signed webhooks.
//!
//! The event's `detail` is the message as [`ember_aws::EventBridgeBus`] put it. The handoff
//! service retries each webhook with backoff and, when it keeps failing, puts it on the SQS
//! dead-letter queue; the invocation then succeeds (the failure is kept, not lost). Only a
//! malformed event fails the invocation (the rule's own retry policy and DLQ take it).

use crate::AwsStack;
use ember_scoring::lead::Message;
use ember_service::ports::MessageHandler;
use serde_json::Value;

/// Why an event could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum BusEventError {
    /// Not an Ember message.
    #[error("the event's detail is not an Ember message: {0}")]
    Shape(String),
    /// The handoff failed.
    #[error("handoff: {0}")]
    Handoff(String),
}

/// The Ember message an EventBridge event (the whole envelope) carries in its `detail`.
pub fn message(envelope: &Value) -> Result<Message, BusEventError> {
    let detail = envelope.get("detail").cloned().ok_or_else(|| BusEventError::Shape("no `detail`".into()))?;
    serde_json::from_value(detail).map_err(|e| BusEventError::Shape(e.to_string()))
}

/// Handles one EventBridge event (the whole envelope).
pub async fn handle(stack: &AwsStack, envelope: &Value) -> Result<String, BusEventError> {
    let message = message(envelope)?;
    tracing::info!(message_type = %message.kind, message_id = %message.id, "handoff");
    stack.handoff.handle(&message).await.map_err(|e| BusEventError::Handoff(e.to_string()))?;
    Ok(message.id)
}
