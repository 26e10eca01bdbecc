//! Dead letters in an SQS queue: webhook deliveries that exhausted their retries wait there
//! (encrypted, 14 days by the stack's settings) until `ember webhooks replay` takes them out.
//!
//! Each message body is `{"delivery": …, "error": "…", "at": "…"}`. [`DeadLetters::take`]
//! receives up to `limit` messages and deletes them once they are parsed; a message that does
//! not parse is left in the queue (it becomes visible again, and the queue's own redrive policy
//! moves it aside) and reported in the logs by message id only.

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use ember_service::ports::{BusError, DeadLetters, WebhookDelivery};
use serde::{Deserialize, Serialize};

/// One dead letter.
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

    async fn take(&self, limit: usize) -> Result<Vec<WebhookDelivery>, BusError> {
        let mut taken = Vec::new();
        while taken.len() < limit {
            let want = (limit - taken.len()).min(10) as i32;
            let out = self
                .client
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(want)
                .visibility_timeout(120)
                .wait_time_seconds(0)
                .send()
                .await
                .map_err(|e| BusError(format!("SQS ReceiveMessage: {}", aws_sdk_sqs::error::DisplayErrorContext(&e))))?;
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            let mut delete = Vec::new();
            for (i, m) in messages.into_iter().enumerate() {
                match m.body().map(serde_json::from_str::<Letter>) {
                    Some(Ok(letter)) => {
                        taken.push(letter.delivery);
                        if let Some(h) = m.receipt_handle() {
                            delete.push(
                                DeleteMessageBatchRequestEntry::builder()
                                    .id(i.to_string())
                                    .receipt_handle(h)
                                    .build()
                                    .map_err(|e| BusError(e.to_string()))?,
                            );
                        }
                    }
                    _ => tracing::error!(message_id = m.message_id().unwrap_or(""), "unreadable dead letter left in the queue"),
                }
            }
            if !delete.is_empty() {
                let out = self
                    .client
                    .delete_message_batch()
                    .queue_url(&self.queue_url)
                    .set_entries(Some(delete))
                    .send()
                    .await
                    .map_err(|e| BusError(format!("SQS DeleteMessageBatch: {}", aws_sdk_sqs::error::DisplayErrorContext(&e))))?;
                if !out.failed().is_empty() {
                    // They will come back after the visibility timeout: replaying one twice
                    // resends the same webhook id, which receivers deduplicate.
                    tracing::warn!(failed = out.failed().len(), "some dead letters could not be deleted");
                }
            }
        }
        Ok(taken)
    }
}
