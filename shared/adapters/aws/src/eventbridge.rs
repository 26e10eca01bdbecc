//! The EventBridge bus: domain messages (`lead.qualified`, `lead.stage_changed`,
//! `lead.sla_breached`, `email.sent`…) as events on a custom bus, `source` = [`SOURCE`],
//! `detail-type` = the message type, `detail` = the message as JSON.
//!
//! `PutEvents` takes at most 10 entries and 256 KB in all, and can fail *partly*: the answer
//! lists, entry by entry, which ones were refused. Entries are grouped so each request fits;
//! only refused entries are sent again (with backoff); when some still fail after
//! [`PUT_ATTEMPTS`], [`Bus::publish`] returns an error naming how many, and the caller (which
//! has committed the change already) keeps them to publish on a later run. Message ids are
//! stable, so a consumer that receives one twice can tell.
//!
//! An entry EventBridge can never take — over its 256 KB entry limit, or refused as malformed —
//! is not retried: it is dropped with an error log (`alarm = "bus_entry_refused"`, message id
//! and type only) and does not count as a failure, so one such message cannot hold back the
//! others, or make every later run publish the whole outbox again.

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
/// EventBridge's limit for one entry, and for all entries of one request (bytes, as it counts
/// them: 14 for the time, then source, detail type, detail and resources in UTF-8).
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;
/// Per-entry error codes that no retry can fix.
const PERMANENT: &[&str] = &["MalformedDetail", "InvalidArgument", "ValidationException"];

/// The size EventBridge counts for an entry.
pub fn entry_size(e: &PutEventsRequestEntry) -> usize {
    let len = |s: Option<&str>| s.map_or(0, str::len);
    (if e.time().is_some() { 14 } else { 0 })
        + len(e.source())
        + len(e.detail_type())
        + len(e.detail())
        + e.resources().iter().map(|r| r.len()).sum::<usize>()
}

/// Groups entries into requests of at most [`MAX_ENTRIES`] entries and [`MAX_ENTRY_BYTES`]
/// in all, in order; entries over the limit alone come back apart (they can never be put).
pub(crate) fn plan(entries: Vec<PutEventsRequestEntry>) -> (Vec<Vec<PutEventsRequestEntry>>, Vec<PutEventsRequestEntry>) {
    let mut chunks: Vec<Vec<PutEventsRequestEntry>> = Vec::new();
    let mut oversized = Vec::new();
    let mut bytes = 0;
    for e in entries {
        let size = entry_size(&e);
        if size > MAX_ENTRY_BYTES {
            oversized.push(e);
            continue;
        }
        match chunks.last_mut() {
            Some(c) if c.len() < MAX_ENTRIES && bytes + size <= MAX_ENTRY_BYTES => {
                c.push(e);
                bytes += size;
            }
            _ => {
                chunks.push(vec![e]);
                bytes = size;
            }
        }
    }
    (chunks, oversized)
}

/// Logs an entry dropped for good (message id and type only: the detail holds personal data).
fn refused(e: &PutEventsRequestEntry, why: &str) {
    let id = e.detail().and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok()).and_then(|v| v["id"].as_str().map(str::to_string));
    tracing::error!(
        alarm = "bus_entry_refused",
        message_id = id.as_deref().unwrap_or(""),
        message_type = e.detail_type().unwrap_or(""),
        bytes = entry_size(e),
        why,
        "EventBridge can never take this message: dropped"
    );
}

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
            .detail_type(m.kind.as_str())
            .detail(detail)
            .time(aws_sdk_eventbridge::primitives::DateTime::from_millis(m.at.timestamp_millis()))
            .build())
    }

    /// Sends one chunk (≤ 10 entries, ≤ 256 KB), retrying the entries EventBridge refused for
    /// a reason that may pass; entries refused for good are dropped (logged).
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
                    if pending.is_empty() {
                        return Ok(());
                    }
                }
                Err(e) if pending.len() == 1 && is_validation(&e) => {
                    refused(&pending[0], &aws_sdk_eventbridge::error::DisplayErrorContext(&e).to_string());
                    return Ok(());
                }
                Err(e) if pending.len() > 1 && is_validation(&e) => {
                    // The request as a whole is refused: send each entry on its own, so the
                    // one at fault is found and the others go through.
                    let mut errors = Vec::new();
                    for entry in pending {
                        if let Err(e) = Box::pin(self.put_chunk(vec![entry])).await {
                            errors.push(e.0);
                        }
                    }
                    return if errors.is_empty() { Ok(()) } else { Err(BusError(errors.join("; "))) };
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

/// Whether a whole request was refused as invalid (no retry fixes that).
fn is_validation(e: &aws_sdk_eventbridge::error::SdkError<aws_sdk_eventbridge::operation::put_events::PutEventsError>) -> bool {
    use aws_sdk_eventbridge::error::ProvideErrorMetadata;
    e.as_service_error().and_then(|se| se.code()).is_some_and(|c| PERMANENT.contains(&c))
}

/// The entries to send again: those whose result carries an error code that a retry may fix
/// (results are in the order of the request), and the first error seen. Entries refused for
/// good ([`PERMANENT`] codes) are logged and left out.
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
                let text = format!("{}: {}", r.error_code().unwrap_or(""), r.error_message().unwrap_or(""));
                if r.error_code().is_some_and(|c| PERMANENT.contains(&c)) {
                    refused(entry, &text);
                    continue;
                }
                if why.is_empty() {
                    why = text;
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
        let (chunks, oversized) = plan(entries);
        for e in &oversized {
            refused(e, &format!("{} bytes, over EventBridge's {MAX_ENTRY_BYTES}-byte entry limit", entry_size(e)));
        }
        let mut errors = Vec::new();
        for chunk in chunks {
            if let Err(e) = self.put_chunk(chunk).await {
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
