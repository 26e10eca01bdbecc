//! Handoff: turns `lead.qualified` and `lead.sla_breached` messages into signed webhook
//! deliveries (Standard Webhooks) to every CRM webhook of the model; what still fails after
//! the sender's retries goes to the dead-letter queue, from which it can be replayed.

use crate::ports::{BusError, DeadLetters, DeliveryResult, MessageHandler, WebhookDelivery, WebhookSender};
use async_trait::async_trait;
use ember_scoring::lead::Message;
use ember_scoring::model::Webhook;
use serde_json::json;
use std::sync::Arc;

/// Message types that go to the CRM.
pub const HANDOFF_TYPES: &[&str] = &["lead.qualified", "lead.sla_breached", "lead.recycled"];

/// The handoff service.
pub struct Handoff {
    webhooks: Vec<Webhook>,
    sender: Arc<dyn WebhookSender>,
    dead_letters: Arc<dyn DeadLetters>,
    now_secs: Arc<dyn Fn() -> i64 + Send + Sync>,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplayReport {
    /// Delivered now.
    pub delivered: u64,
    /// Failed again (back in the queue).
    pub failed: u64,
    /// Endpoints answered 410 (dropped).
    pub disabled: u64,
}

impl Handoff {
    /// A handoff service for the model's webhooks. `now_secs` gives `webhook-timestamp`.
    pub fn new(
        webhooks: Vec<Webhook>,
        sender: Arc<dyn WebhookSender>,
        dead_letters: Arc<dyn DeadLetters>,
        now_secs: Arc<dyn Fn() -> i64 + Send + Sync>,
    ) -> Handoff {
        Handoff { webhooks, sender, dead_letters, now_secs }
    }

    /// The signed deliveries for a message (one per webhook).
    pub fn deliveries(&self, message: &Message) -> Vec<WebhookDelivery> {
        let body = json!({
            "type": message.kind,
            "timestamp": message.at,
            "data": message.data,
        })
        .to_string();
        let timestamp = (self.now_secs)();
        self.webhooks
            .iter()
            .map(|hook| {
                let signature = hook
                    .secret
                    .as_deref()
                    .and_then(|s| crate::signing::sign(s, &message.id, timestamp, &body).ok())
                    .unwrap_or_default();
                WebhookDelivery {
                    hook: hook.name.clone(),
                    url: hook.url.clone(),
                    id: message.id.clone(),
                    timestamp,
                    signature,
                    kind: message.kind.clone(),
                    lead_id: message.lead_id.clone(),
                    body: body.clone(),
                }
            })
            .collect()
    }

    /// Delivers one prepared delivery; a failure goes to the dead-letter queue.
    async fn deliver(&self, d: &WebhookDelivery) -> DeliveryResult {
        let r = self.sender.deliver(d).await;
        match &r {
            DeliveryResult::Delivered { attempts } => tracing::info!(webhook_id = %d.id, hook = %d.hook, attempts, "webhook delivered"),
            DeliveryResult::Disabled => tracing::warn!(webhook_id = %d.id, hook = %d.hook, "webhook endpoint answered 410 Gone"),
            DeliveryResult::Failed { error, attempts } => {
                tracing::warn!(webhook_id = %d.id, hook = %d.hook, attempts, error = %error, "webhook failed; sent to the dead-letter queue");
                if let Err(e) = self.dead_letters.put(d, error).await {
                    tracing::error!(webhook_id = %d.id, error = %e, "dead-letter queue write failed");
                }
            }
        }
        r
    }

    /// Replays up to `limit` dead letters (same id; re-signed with a fresh timestamp, to the
    /// webhook's current URL).
    pub async fn replay(&self, limit: usize) -> Result<ReplayReport, BusError> {
        let mut report = ReplayReport::default();
        for mut d in self.dead_letters.take(limit).await? {
            d.timestamp = (self.now_secs)();
            // The webhook's current settings win: a URL fixed since the failure is used.
            if let Some(hook) = self.webhooks.iter().find(|h| h.name == d.hook) {
                if hook.url.is_some() {
                    d.url = hook.url.clone();
                }
                if let Some(secret) = hook.secret.as_deref() {
                    d.signature = crate::signing::sign(secret, &d.id, d.timestamp, &d.body).unwrap_or_default();
                }
            }
            match self.deliver(&d).await {
                DeliveryResult::Delivered { .. } => report.delivered += 1,
                DeliveryResult::Disabled => report.disabled += 1,
                DeliveryResult::Failed { .. } => report.failed += 1,
            }
        }
        Ok(report)
    }
}

#[async_trait]
impl MessageHandler for Handoff {
    async fn handle(&self, message: &Message) -> Result<(), BusError> {
        if !HANDOFF_TYPES.contains(&message.kind.as_str()) {
            return Ok(());
        }
        for d in self.deliveries(message) {
            self.deliver(&d).await;
        }
        Ok(())
    }
}
