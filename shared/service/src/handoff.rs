//! Handoff: turns `lead.qualified` and `lead.sla_breached` messages into signed webhook
//! deliveries (Standard Webhooks) to every CRM webhook of the model; what still fails after
//! the sender's retries goes to the dead-letter queue, from which it can be replayed.
//!
//! Every handling has a time budget shared by all endpoints ([`HANDOFF_BUDGET`]: the handoff
//! function has 120 s): retries and `Retry-After` waits that would pass it are not waited for,
//! the delivery is dead-lettered instead, and the dead-letter writes still fit in the
//! invocation. A dead-letter write that fails makes the handling fail, so the bus (or Lambda)
//! delivers the message again rather than lose it.

use crate::ports::{BusError, DeadLetter, DeadLetters, DeliveryResult, MessageHandler, WebhookDelivery, WebhookSender};
use async_trait::async_trait;
use ember_scoring::lead::Message;
use ember_scoring::model::Webhook;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Message types that go to the CRM.
pub const HANDOFF_TYPES: &[&str] = &["lead.qualified", "lead.sla_breached", "lead.recycled"];

/// Time one message may take, all endpoints together: the handoff function's 120 s timeout
/// less 20 s kept for the dead-letter writes and the invocation's own overhead.
pub const HANDOFF_BUDGET: Duration = Duration::from_secs(100);

/// How much longer than its budget a replay keeps the letters it read hidden from other
/// readers (queues only), so a letter is never handed to two replays at once.
pub const LEASE_MARGIN: Duration = Duration::from_secs(60);

/// The handoff service.
pub struct Handoff {
    webhooks: Vec<Webhook>,
    sender: Arc<dyn WebhookSender>,
    dead_letters: Arc<dyn DeadLetters>,
    now_secs: Arc<dyn Fn() -> i64 + Send + Sync>,
    budget: Duration,
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
    /// Not tried: the replay's budget ran out first (still in the queue).
    pub left: u64,
}

impl Handoff {
    /// A handoff service for the model's webhooks. `now_secs` gives `webhook-timestamp`.
    pub fn new(
        webhooks: Vec<Webhook>,
        sender: Arc<dyn WebhookSender>,
        dead_letters: Arc<dyn DeadLetters>,
        now_secs: Arc<dyn Fn() -> i64 + Send + Sync>,
    ) -> Handoff {
        Handoff { webhooks, sender, dead_letters, now_secs, budget: HANDOFF_BUDGET }
    }

    /// Sets the time budget of one message, shared by all its endpoints (default
    /// [`HANDOFF_BUDGET`]).
    pub fn with_budget(mut self, budget: Duration) -> Handoff {
        self.budget = budget;
        self
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

    /// Delivers one prepared delivery before `deadline`; a failure goes to the dead-letter
    /// queue. `Err`: it failed and the dead-letter write failed too (nothing kept it).
    async fn deliver(&self, d: &WebhookDelivery, deadline: Instant) -> Result<DeliveryResult, BusError> {
        let r = self.sender.deliver(d, deadline).await;
        match &r {
            DeliveryResult::Delivered { attempts } => tracing::info!(webhook_id = %d.id, hook = %d.hook, attempts, "webhook delivered"),
            DeliveryResult::Disabled => tracing::warn!(webhook_id = %d.id, hook = %d.hook, "webhook endpoint answered 410 Gone"),
            DeliveryResult::Failed { error, attempts } => {
                tracing::warn!(webhook_id = %d.id, hook = %d.hook, attempts, error = %error, "webhook failed; sent to the dead-letter queue");
                if let Err(e) = self.dead_letters.put(d, error).await {
                    tracing::error!(webhook_id = %d.id, hook = %d.hook, error = %e, "dead-letter queue write failed");
                    return Err(BusError(format!("webhook {} to `{}` failed ({error}) and could not be dead-lettered: {}", d.id, d.hook, e.0)));
                }
            }
        }
        Ok(r)
    }

    /// Replays up to `limit` dead letters within `budget` (same id; re-signed with a fresh
    /// timestamp, to the webhook's current URL). A letter leaves the queue only once it is
    /// delivered (or its endpoint answered 410); one that fails again, or that the budget
    /// leaves no time for, stays where it is — a replay killed mid-way loses nothing.
    pub async fn replay(&self, limit: usize, budget: Duration) -> Result<ReplayReport, BusError> {
        let deadline = Instant::now() + budget;
        let mut report = ReplayReport::default();
        for letter in self.dead_letters.lease(limit, budget + LEASE_MARGIN).await? {
            if Instant::now() >= deadline {
                report.left += 1;
                continue;
            }
            let mut d = letter.delivery.clone();
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
            match self.sender.deliver(&d, deadline).await {
                r @ (DeliveryResult::Delivered { .. } | DeliveryResult::Disabled) => {
                    if matches!(r, DeliveryResult::Delivered { .. }) {
                        tracing::info!(webhook_id = %d.id, hook = %d.hook, "dead letter delivered");
                        report.delivered += 1;
                    } else {
                        tracing::warn!(webhook_id = %d.id, hook = %d.hook, "webhook endpoint answered 410 Gone; dead letter dropped");
                        report.disabled += 1;
                    }
                    self.remove(&letter).await;
                }
                DeliveryResult::Failed { error, attempts } => {
                    tracing::warn!(webhook_id = %d.id, hook = %d.hook, attempts, error = %error, "dead letter failed again; it stays in the queue");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }

    /// Removes a replayed letter; when that fails it stays queued and a later replay sends it
    /// again under the same `webhook-id` (receivers deduplicate by it).
    async fn remove(&self, letter: &DeadLetter) {
        if let Err(e) = self.dead_letters.remove(letter).await {
            tracing::error!(webhook_id = %letter.delivery.id, hook = %letter.delivery.hook, error = %e, "delivered dead letter could not be removed");
        }
    }

    /// Handles one message before `deadline`, all endpoints together. Every endpoint is tried;
    /// `Err` when some delivery failed and could not be dead-lettered.
    pub async fn handle_until(&self, message: &Message, deadline: Instant) -> Result<(), BusError> {
        if !HANDOFF_TYPES.contains(&message.kind.as_str()) {
            return Ok(());
        }
        let mut lost = Vec::new();
        for d in self.deliveries(message) {
            if let Err(e) = self.deliver(&d, deadline).await {
                lost.push(e.0);
            }
        }
        if lost.is_empty() { Ok(()) } else { Err(BusError(lost.join("; "))) }
    }
}

#[async_trait]
impl MessageHandler for Handoff {
    /// [`Handoff::handle_until`] within the handoff's budget.
    async fn handle(&self, message: &Message) -> Result<(), BusError> {
        self.handle_until(message, Instant::now() + self.budget).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// An endpoint that is always down.
    struct Down;

    #[async_trait]
    impl WebhookSender for Down {
        async fn deliver(&self, _: &WebhookDelivery, _: Instant) -> DeliveryResult {
            DeliveryResult::Failed { error: "HTTP 503".into(), attempts: 4 }
        }
    }

    /// A dead-letter queue that keeps letters in memory, or refuses every write.
    #[derive(Default)]
    struct Letters {
        refuse: bool,
        kept: Mutex<Vec<WebhookDelivery>>,
    }

    #[async_trait]
    impl DeadLetters for Letters {
        async fn put(&self, d: &WebhookDelivery, _: &str) -> Result<(), BusError> {
            if self.refuse {
                return Err(BusError("SQS SendMessage: access denied".into()));
            }
            self.kept.lock().unwrap().push(d.clone());
            Ok(())
        }
        async fn lease(&self, _: usize, _: Duration) -> Result<Vec<DeadLetter>, BusError> {
            Ok(Vec::new())
        }
        async fn remove(&self, _: &DeadLetter) -> Result<(), BusError> {
            Ok(())
        }
    }

    fn hooks() -> Vec<Webhook> {
        ["crm", "slack"]
            .iter()
            .map(|n| Webhook { name: n.to_string(), url: Some(format!("http://127.0.0.1:1/{n}")), secret: None, url_source: String::new() })
            .collect()
    }

    fn qualified() -> Message {
        Message { id: "msg_1".into(), kind: "lead.qualified".into(), at: chrono::Utc::now(), lead_id: "ld".into(), data: json!({}) }
    }

    #[tokio::test]
    async fn a_dead_letter_write_that_fails_fails_the_handling() {
        let refusing = Arc::new(Letters { refuse: true, ..Letters::default() });
        let h = Handoff::new(hooks(), Arc::new(Down), refusing, Arc::new(|| 1));
        let err = h.handle(&qualified()).await.expect_err("nothing kept the failed deliveries: the bus must redeliver");
        assert!(err.0.contains("msg_1") && err.0.contains("`crm`") && err.0.contains("`slack`"), "{err}");
        // With a working queue both failures are kept and the handling succeeds.
        let letters = Arc::new(Letters::default());
        let h = Handoff::new(hooks(), Arc::new(Down), letters.clone(), Arc::new(|| 1));
        h.handle(&qualified()).await.expect("kept in the dead-letter queue");
        assert_eq!(letters.kept.lock().unwrap().iter().map(|d| d.hook.as_str()).collect::<Vec<_>>(), ["crm", "slack"]);
    }
}
