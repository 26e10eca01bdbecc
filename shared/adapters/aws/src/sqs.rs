//! Dead letters in an SQS queue: webhook deliveries that exhausted their retries wait there
//! (encrypted, 14 days by the stack's settings) until `ember webhooks replay` takes them out.
//!
//! Each message body is `{"delivery": …, "error": "…", "at": "…"}`. [`DeadLetters::lease`]
//! receives up to `limit` messages and hides them for the replay's lease without deleting
//! them; [`DeadLetters::remove`] deletes one once it is delivered. A replay that dies mid-way
//! loses nothing: what it did not remove is visible again when the lease ends. A message that
//! does not parse is left in the queue and reported in the logs by message id only.

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use ember_service::ports::{BusError, DeadLetter, DeadLetters, FailedMessage, FailedMessages, WebhookDelivery};
use serde::{Deserialize, Serialize};

/// The JSON body of one dead-letter SQS message: the delivery as it failed, why, and when.
#[derive(Debug, Serialize, Deserialize)]
struct Letter {
    delivery: WebhookDelivery,
    error: String,
    at: chrono::DateTime<chrono::Utc>,
}

/// Dead letters in an SQS queue.
#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    client: Client,
    queue_url: String,
}

impl SqsDeadLetters {
    /// The queue at `queue_url`.
    pub fn new(client: Client, queue_url: impl Into<String>) -> SqsDeadLetters {
        SqsDeadLetters { client, queue_url: queue_url.into() }
    }

    /// Messages waiting (approximate, as SQS reports it).
    pub async fn len(&self) -> Result<u64, BusError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(|e| BusError(format!("SQS GetQueueAttributes: {}", aws_sdk_sqs::error::DisplayErrorContext(&e))))?;
        Ok(out
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }
}

#[async_trait]
impl DeadLetters for SqsDeadLetters {
    async fn put(&self, delivery: &WebhookDelivery, error: &str) -> Result<(), BusError> {
        let body = serde_json::to_string(&Letter { delivery: delivery.clone(), error: error.into(), at: chrono::Utc::now() })
            .map_err(|e| BusError(e.to_string()))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| BusError(format!("SQS SendMessage: {}", aws_sdk_sqs::error::DisplayErrorContext(&e))))?;
        Ok(())
    }

    /// Receives up to `limit` letters, hidden from other readers for `lease` (at most SQS's
    /// 12 hours); none is deleted here. A message that does not parse is left alone and
    /// reported by message id.
    async fn lease(&self, limit: usize, lease: std::time::Duration) -> Result<Vec<DeadLetter>, BusError> {
        let mut taken = Vec::new();
        for m in receive(&self.client, &self.queue_url, limit, lease).await? {
            match (m.body().map(serde_json::from_str::<Letter>), m.receipt_handle()) {
                (Some(Ok(letter)), Some(receipt)) => taken.push(DeadLetter { delivery: letter.delivery, receipt: receipt.to_string() }),
                _ => tracing::error!(message_id = m.message_id().unwrap_or(""), "unreadable dead letter left in the queue"),
            }
        }
        Ok(taken)
    }

    /// Deletes the message. When that fails it comes back after its lease: replaying it again
    /// resends the same webhook id, which receivers deduplicate.
    async fn remove(&self, letter: &DeadLetter) -> Result<(), BusError> {
        delete(&self.client, &self.queue_url, &letter.receipt).await
    }
}

/// The stack's queue of bus messages that never reached the handoff function
/// (`FailedEventsQueue`): EventBridge puts an event there when it cannot invoke the function,
/// Lambda when the function failed every retry. Either way the SQS message body is the
/// EventBridge event, whose `detail` is the Ember message (without personal data). Entries of
/// another shape (a scheduled invocation that failed) are read with no message.
#[derive(Debug, Clone)]
pub struct SqsFailedMessages {
    client: Client,
    queue_url: String,
}

impl SqsFailedMessages {
    /// The queue at `queue_url`.
    pub fn new(client: Client, queue_url: impl Into<String>) -> SqsFailedMessages {
        SqsFailedMessages { client, queue_url: queue_url.into() }
    }
}

/// The Ember message an EventBridge event (as text) carries in its `detail`, if it is one.
pub fn message_of_event(body: &str) -> Option<ember_scoring::lead::Message> {
    let event: serde_json::Value = serde_json::from_str(body).ok()?;
    serde_json::from_value(event.get("detail")?.clone()).ok()
}

#[async_trait]
impl FailedMessages for SqsFailedMessages {
    /// Receives up to `limit` entries, hidden from other readers for `lease` (at most 12 hours).
    async fn lease(&self, limit: usize, lease: std::time::Duration) -> Result<Vec<FailedMessage>, BusError> {
        let mut taken = Vec::new();
        for m in receive(&self.client, &self.queue_url, limit, lease).await? {
            let Some(receipt) = m.receipt_handle() else { continue };
            let message = m.body().and_then(message_of_event);
            if message.is_none() {
                tracing::warn!(message_id = m.message_id().unwrap_or(""), "failed-events entry that is not an Ember bus message; left in the queue");
            }
            taken.push(FailedMessage { message, receipt: receipt.to_string() });
        }
        Ok(taken)
    }

    async fn remove(&self, receipt: &str) -> Result<(), BusError> {
        delete(&self.client, &self.queue_url, receipt).await
    }
}

/// Receives up to `limit` messages from the queue, hidden from other readers for `lease` (at
/// most SQS's 12 hours); none is deleted.
async fn receive(client: &Client, queue_url: &str, limit: usize, lease: std::time::Duration) -> Result<Vec<aws_sdk_sqs::types::Message>, BusError> {
    let visibility = lease.as_secs().clamp(1, 12 * 3600) as i32;
    let mut taken = Vec::new();
    while taken.len() < limit {
        let want = (limit - taken.len()).min(10) as i32;
        let out = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(want)
            .visibility_timeout(visibility)
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(|e| BusError(format!("SQS ReceiveMessage: {}", aws_sdk_sqs::error::DisplayErrorContext(&e))))?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        taken.extend(messages);
    }
    Ok(taken)
}

/// Deletes a received message.
async fn delete(client: &Client, queue_url: &str, receipt: &str) -> Result<(), BusError> {
    client
        .delete_message()
        .queue_url(queue_url)
        .receipt_handle(receipt)
        .send()
        .await
        .map_err(|e| BusError(format!("SQS DeleteMessage: {}", aws_sdk_sqs::error::DisplayErrorContext(&e))))?;
    Ok(())
}
