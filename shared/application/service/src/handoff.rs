//! Handoff: turns `lead.qualified` and `lead.sla_breached` messages into signed webhook
//! deliveries (Standard Webhooks) to every CRM webhook of the model; what still fails after
//! the sender's retries goes to the dead-letter queue, from which it can be replayed.
//!
//! Every handling has a time budget shared by all endpoints ([`HANDOFF_BUDGET`]: the handoff
//! function has 120 s): retries and `Retry-After` waits that would pass it are not waited for,
//! the delivery is dead-lettered instead, and the dead-letter writes still fit in the
//! invocation. A dead-letter write that fails makes the handling fail, so the bus (or Lambda)
//! delivers the message again rather than lose it.
//!
//! Messages reach the handoff without the person's data (the bus and its queues hold none:
//! [`ember_scoring::personal`]); the handoff restores it from the lead as stored before it
//! signs the webhook, and dead-letters the delivery without it again. A replay restores it
//! once more; a lead that no longer exists (erased) gets nothing, and its letters are dropped.

use crate::ports::{
    BusError, DeadLetter, DeadLetters, DeliveryResult, FailedMessages, MessageHandler, Store, WebhookDelivery, WebhookSender,
};
use async_trait::async_trait;
use ember_scoring::lead::{Message, MessageKind};
use ember_scoring::model::Webhook;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Message types that go to the CRM.
pub const HANDOFF_TYPES: &[MessageKind] = &[MessageKind::Qualified, MessageKind::SlaBreached, MessageKind::Recycled];

/// Time one message may take, all endpoints together: the handoff function's 120 s timeout
/// less 20 s kept for the dead-letter writes and the invocation's own overhead.
pub const HANDOFF_BUDGET: Duration = Duration::from_secs(100);

/// How much longer than its budget a replay keeps the letters it read hidden from other
/// readers (queues only), so a letter is never handed to two replays at once.
pub const LEASE_MARGIN: Duration = Duration::from_secs(60);

/// The handoff service: signs domain messages for the model's CRM webhooks, sends them, and
/// replays the dead letters of those that failed.
pub struct Handoff {
    webhooks: Vec<Webhook>,
    sender: Arc<dyn WebhookSender>,
    dead_letters: Arc<dyn DeadLetters>,
    leads: Arc<dyn Store>,
    now_secs: Arc<dyn Fn() -> i64 + Send + Sync>,
    budget: Duration,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplayReport {
    /// Delivered by this replay (removed from the queue).
    pub delivered: u64,
    /// Failed again (back in the queue).
    pub failed: u64,
    /// Endpoints answered 410 (dropped).
    pub disabled: u64,
    /// Not tried: the replay's budget ran out first (still in the queue).
    pub left: u64,
    /// About a lead that no longer exists (erased): dropped, nothing sent.
    pub erased: u64,
    /// Queued messages that are not handoff messages (left in the queue for a person to read).
    pub skipped: u64,
}

impl Handoff {
    /// A handoff service for the model's webhooks. `leads` is where it reads the person's data
    /// back (the messages and letters it gets hold none); `now_secs` gives `webhook-timestamp`.
    pub fn new(
        webhooks: Vec<Webhook>,
        sender: Arc<dyn WebhookSender>,
        dead_letters: Arc<dyn DeadLetters>,
        leads: Arc<dyn Store>,
        now_secs: Arc<dyn Fn() -> i64 + Send + Sync>,
    ) -> Handoff {
        Handoff { webhooks, sender, dead_letters, leads, now_secs, budget: HANDOFF_BUDGET }
    }

    /// The message whole: the person's data restored from the stored lead when it was left out.
    /// `Ok(None)`: the lead no longer exists (erased), so there is nothing to send.
    async fn whole(&self, message: &Message) -> Result<Option<Message>, BusError> {
        if !message.lacks_personal_data() {
            return Ok(Some(message.clone()));
        }
        match self.leads.get(&message.lead_id).await {
            Ok(Some(rec)) => Ok(Some(message.with_personal_data_of(&rec.lead))),
            Ok(None) => Ok(None),
            Err(e) => Err(BusError(format!("message {}: reading lead {}: {e}", message.id, message.lead_id))),
        }
    }

    /// A delivery's body whole again (see [`Handoff::whole`]); `Ok(None)`: its lead is gone.
    async fn whole_body(&self, d: &WebhookDelivery) -> Result<Option<String>, BusError> {
        let Ok(mut body) = serde_json::from_str::<Value>(&d.body) else { return Ok(Some(d.body.clone())) };
        if !body.get("data").is_some_and(ember_scoring::personal::is_stripped) {
            return Ok(Some(d.body.clone()));
        }
        match self.leads.get(&d.lead_id).await {
            Ok(Some(rec)) => {
                if let Some(data) = body.get_mut("data") {
                    ember_scoring::personal::restore(data, &rec.lead);
                }
                Ok(Some(body.to_string()))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(BusError(format!("webhook {}: reading lead {}: {e}", d.id, d.lead_id))),
        }
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
                    kind: message.kind,
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
                if let Err(e) = self.dead_letters.put(&without_personal_data(d), error).await {
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
            match self.whole_body(&d).await {
                Ok(Some(body)) => d.body = body,
                Ok(None) => {
                    tracing::info!(webhook_id = %d.id, hook = %d.hook, "the lead no longer exists (erased); dead letter dropped");
                    report.erased += 1;
                    self.remove(&letter).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(webhook_id = %d.id, hook = %d.hook, error = %e, "dead letter not replayed; it stays in the queue");
                    report.failed += 1;
                    continue;
                }
            }
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
        if !HANDOFF_TYPES.contains(&message.kind) {
            return Ok(());
        }
        let Some(message) = self.whole(message).await? else {
            tracing::info!(message_id = %message.id, message_type = %message.kind, "the lead no longer exists (erased); nothing to hand off");
            return Ok(());
        };
        let mut lost = Vec::new();
        for d in self.deliveries(&message) {
            if let Err(e) = self.deliver(&d, deadline).await {
                lost.push(e.0);
            }
        }
        if lost.is_empty() { Ok(()) } else { Err(BusError(lost.join("; "))) }
    }

    /// Replays up to `limit` bus messages that never reached the handoff (the queue of events
    /// the bus or the function could not deliver), within `budget`: each handoff message is
    /// handled as the bus would have (deliveries that fail again go to the dead-letter queue)
    /// and leaves the queue once handled; one whose handling fails stays. What is not a
    /// handoff message stays in the queue, counted as skipped.
    pub async fn replay_failed(&self, queue: &dyn FailedMessages, limit: usize, budget: Duration) -> Result<ReplayReport, BusError> {
        let deadline = Instant::now() + budget;
        let mut report = ReplayReport::default();
        for failed in queue.lease(limit, budget + LEASE_MARGIN).await? {
            let Some(message) = failed.message.as_ref().filter(|m| HANDOFF_TYPES.contains(&m.kind)) else {
                report.skipped += 1;
                continue;
            };
            if Instant::now() >= deadline {
                report.left += 1;
                continue;
            }
            let whole = match self.whole(message).await {
                Ok(Some(m)) => m,
                Ok(None) => {
                    tracing::info!(message_id = %message.id, "the lead no longer exists (erased); failed message dropped");
                    report.erased += 1;
                    self.remove_failed(queue, &failed.receipt, &message.id).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(message_id = %message.id, error = %e, "failed message not replayed; it stays in the queue");
                    report.failed += 1;
                    continue;
                }
            };
            let mut kept = true;
            for d in self.deliveries(&whole) {
                match self.deliver(&d, deadline).await {
                    Ok(DeliveryResult::Delivered { .. }) => report.delivered += 1,
                    Ok(DeliveryResult::Disabled) => report.disabled += 1,
                    // Dead-lettered: from now on `replay` takes it.
                    Ok(DeliveryResult::Failed { .. }) => report.failed += 1,
                    Err(_) => kept = false,
                }
            }
            if kept {
                self.remove_failed(queue, &failed.receipt, &message.id).await;
            }
        }
        Ok(report)
    }

    async fn remove_failed(&self, queue: &dyn FailedMessages, receipt: &str, id: &str) {
        if let Err(e) = queue.remove(receipt).await {
            tracing::error!(message_id = %id, error = %e, "handled failed message could not be removed; a later replay handles it again under the same webhook id");
        }
    }
}

/// A delivery as it may wait in a dead-letter queue: its body without the person's data
/// ([`ember_scoring::personal`]); the signature, made over the whole body, is dropped too
/// (a replay signs again).
pub fn without_personal_data(d: &WebhookDelivery) -> WebhookDelivery {
    let mut letter = d.clone();
    if let Ok(mut body) = serde_json::from_str::<Value>(&d.body) {
        if let Some(data) = body.get_mut("data") {
            ember_scoring::personal::strip(data);
        }
        letter.body = body.to_string();
        letter.signature = String::new();
    }
    letter
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
    use crate::ports::StoreError;
    use std::sync::Mutex;

    /// An endpoint that is always down.
    struct Down;

    #[async_trait]
    impl WebhookSender for Down {
        async fn deliver(&self, _: &WebhookDelivery, _: Instant) -> DeliveryResult {
            DeliveryResult::Failed { error: "HTTP 503".into(), attempts: 4 }
        }
    }

    /// A store that holds no lead: these tests hand off messages whole, which need none.
    struct NoLeads;

    #[async_trait]
    impl Store for NoLeads {
        async fn lookup(&self, _: &crate::ports::Identity) -> Result<Option<String>, StoreError> {
            Ok(None)
        }
        async fn get(&self, _: &str) -> Result<Option<crate::ports::LeadRecord>, StoreError> {
            Ok(None)
        }
        async fn seen(&self, _: &str) -> Result<bool, StoreError> {
            Ok(false)
        }
        async fn commit(&self, _: crate::ports::Commit) -> Result<u64, StoreError> {
            Err(StoreError::Other("read-only".into()))
        }
        async fn due(&self, _: crate::ports::DueKind, _: ember_scoring::Time, _: Option<String>, _: usize) -> Result<crate::ports::DuePage, StoreError> {
            Err(StoreError::Other("read-only".into()))
        }
        async fn events(&self, _: &str) -> Result<Vec<crate::ports::StoredEvent>, StoreError> {
            Ok(Vec::new())
        }
        async fn erase(&self, _: &str) -> Result<bool, StoreError> {
            Ok(false)
        }
        async fn tallies(&self, _: chrono::NaiveDate, _: chrono::NaiveDate) -> Result<Vec<crate::ports::Tally>, StoreError> {
            Ok(Vec::new())
        }
        async fn scan(&self, _: Option<String>, _: usize) -> Result<(Vec<ember_scoring::Lead>, Option<String>), StoreError> {
            Ok((Vec::new(), None))
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
        Message { id: "msg_1".into(), kind: ember_scoring::lead::MessageKind::Qualified, at: chrono::Utc::now(), lead_id: "ld".into(), data: json!({}) }
    }

    #[tokio::test]
    async fn a_dead_letter_write_that_fails_fails_the_handling() {
        let refusing = Arc::new(Letters { refuse: true, ..Letters::default() });
        let h = Handoff::new(hooks(), Arc::new(Down), refusing, Arc::new(NoLeads), Arc::new(|| 1));
        let err = h.handle(&qualified()).await.expect_err("nothing kept the failed deliveries: the bus must redeliver");
        assert!(err.0.contains("msg_1") && err.0.contains("`crm`") && err.0.contains("`slack`"), "{err}");
        // With a working queue both failures are kept and the handling succeeds.
        let letters = Arc::new(Letters::default());
        let h = Handoff::new(hooks(), Arc::new(Down), letters.clone(), Arc::new(NoLeads), Arc::new(|| 1));
        h.handle(&qualified()).await.expect("kept in the dead-letter queue");
        assert_eq!(letters.kept.lock().unwrap().iter().map(|d| d.hook.as_str()).collect::<Vec<_>>(), ["crm", "slack"]);
    }
}
