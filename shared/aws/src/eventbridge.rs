//! The EventBridge bus: domain messages (`lead.qualified`, `lead.stage_changed`,
//! `lead.sla_breached`, `email.sent`…) as events on a custom bus, `source` = [`SOURCE`],
//! `detail-type` = the message type, `detail` = the message as JSON.
//!
//! `PutEvents` takes at most 10 entries and can fail *partly*: the answer lists, entry by
//! entry, which ones were refused. Only those are sent again (with backoff); when some still
//! fail after [`PUT_ATTEMPTS`], [`Bus::publish`] returns an error naming how many, and the caller
//! (which has committed the change already) logs it. Message ids are stable, so a consumer that
//! receives one twice can tell.

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::{PutEventsRequestEntry, PutEventsResultEntry};
use ember_scoring::lead::Message;
use ember_service::ports::{Bus, BusError};
use std::time::Duration;

/// The `source` of every event Ember puts on its bus.
pub const SOURCE: &str = "ember";
/// Entries per `PutEvents` call (the service's limit).
pub const MAX_ENTRIES: usize = 10;
/// Attempts for entries that keep failing.
pub const PUT_ATTEMPTS: u32 = 4;

/// Domain messages on an EventBridge bus.
#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: Client,
    bus: String,
    first_backoff: Duration,
}

impl EventBridgeBus {
    /// Publishes to the bus named `bus` (name or ARN).
    pub fn new(client: Client, bus: impl Into<String>) -> EventBridgeBus {
        EventBridgeBus { client, bus: bus.into(), first_backoff: Duration::from_millis(100) }
    }

    /// Sets the first backoff between attempts (doubles each time).
    pub fn with_first_backoff(mut self, d: Duration) -> EventBridgeBus {
        self.first_backoff = d;
        self
    }

    fn entry(&self, m: &Message) -> Result<PutEventsRequestEntry, BusError> {
        let detail = serde_json::to_string(m).map_err(|e| BusError(format!("message {}: {e}", m.id)))?;
        Ok(PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(&m.kind)
            .detail(detail)
            .time(aws_sdk_eventbridge::primitives::DateTime::from_millis(m.at.timestamp_millis()))
            .build())
    }

    /// Sends one chunk (≤ 10), retrying the entries EventBridge refused.
    async fn put_chunk(&self, mut pending: Vec<PutEventsRequestEntry>) -> Result<(), BusError> {
        let mut backoff = self.first_backoff;
        let mut last_error = String::new();
        for attempt in 1..=PUT_ATTEMPTS {
            match self.client.put_events().set_entries(Some(pending.clone())).send().await {
                Ok(out) => {
                    if out.failed_entry_count == 0 {
                        return Ok(());
                    }
                    let (retry, why) = failed_entries(&pending, out.entries());
                    last_error = why;
                    tracing::warn!(failed = retry.len(), attempt, error = %last_error, "PutEvents refused some entries");
                    pending = retry;
                }
                Err(e) => {
                    last_error = aws_sdk_eventbridge::error::DisplayErrorContext(&e).to_string();
                    tracing::warn!(attempt, error = %last_error, "PutEvents failed");
                }
            }
            if attempt < PUT_ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
        }
        Err(BusError(format!("{} event(s) not published after {PUT_ATTEMPTS} attempts: {last_error}", pending.len())))
    }
}

/// The entries to send again: those whose result carries an error code (results are in the
/// order of the request), and the first error seen.
pub(crate) fn failed_entries(
    sent: &[PutEventsRequestEntry],
    results: &[PutEventsResultEntry],
) -> (Vec<PutEventsRequestEntry>, String) {
    let mut why = String::new();
    let mut again = Vec::new();
    for (i, entry) in sent.iter().enumerate() {
        match results.get(i) {
            Some(r) if r.error_code().is_none() => {}
            Some(r) => {
                if why.is_empty() {
                    why = format!("{}: {}", r.error_code().unwrap_or(""), r.error_message().unwrap_or(""));
                }
                again.push(entry.clone());
            }
            // No result for this entry: it cannot be known to be published.
            None => again.push(entry.clone()),
        }
    }
    (again, why)
}

#[async_trait]
impl Bus for EventBridgeBus {
    async fn publish(&self, messages: &[Message]) -> Result<(), BusError> {
        let entries = messages.iter().map(|m| self.entry(m)).collect::<Result<Vec<_>, _>>()?;
        let mut errors = Vec::new();
        for chunk in entries.chunks(MAX_ENTRIES) {
            if let Err(e) = self.put_chunk(chunk.to_vec()).await {
                errors.push(e.0);
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(BusError(errors.join("; "))) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refused_entries_are_sent_again() {
        let e = |d: &str| PutEventsRequestEntry::builder().detail_type(d).build();
        let sent = vec![e("a"), e("b"), e("c")];
        let ok = PutEventsResultEntry::builder().event_id("1").build();
        let bad = PutEventsResultEntry::builder().error_code("ThrottlingException").error_message("slow down").build();
        let (again, why) = failed_entries(&sent, &[ok.clone(), bad, ok]);
        assert_eq!(again.iter().map(|e| e.detail_type().unwrap()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(why, "ThrottlingException: slow down");
        // Missing results count as failed.
        let (again, _) = failed_entries(&sent, &[PutEventsResultEntry::builder().event_id("1").build()]);
        assert_eq!(again.len(), 2);
    }
}
