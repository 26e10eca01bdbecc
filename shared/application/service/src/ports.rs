//! Ports: what the services need from the outside world. Adapters live in other crates
//! (`ember-store-sqlite`, `ember-delivery`, `ember-aws`).

use async_trait::async_trait;
use ember_scoring::engine::Change;
use ember_scoring::lead::Message;
use ember_scoring::{Due, Event, Lead, Time};
use serde::{Deserialize, Serialize};

pub use ember_reports::Tally;

/// An identity that points at a lead.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Identity {
    /// Trimmed, lower-cased email (see [`ember_scoring::event::normalize_email`]).
    Email(String),
    /// An event's `anonymous_id`, as sent (a cookie or device id).
    Anonymous(String),
}

impl Identity {
    /// The store key (`EMAIL#…`, `ANON#…`).
    pub fn key(&self) -> String {
        match self {
            Identity::Email(e) => format!("EMAIL#{e}"),
            Identity::Anonymous(a) => format!("ANON#{a}"),
        }
    }
}

/// A lead as stored, with its version for optimistic concurrency.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadRecord {
    /// The lead state as last committed.
    pub lead: Lead,
    /// Version: 1 on creation, +1 on every commit.
    pub version: u64,
}

/// An event as stored: the event, the lead it was applied to, and what it did (the timeline).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// The event. Ids starting with `sys:` are Ember's own entries (decay, CRM feedback,
    /// campaign steps), kept so the timeline adds up to the score.
    pub event: Event,
    /// Lead it was applied to.
    pub lead_id: String,
    /// What applying it changed (points, stages, campaigns…), shown on the timeline.
    pub changes: Vec<Change>,
    /// When Ember received it.
    pub received_at: Time,
}

/// One identity to point at the committed lead. `expected_owner` is the lead it must point at
/// now (`None`: it must not exist yet). A merge re-points the anonymous profile's identities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The email or anonymous id to point at the committed lead.
    pub identity: Identity,
    /// Current owner required for the claim to succeed.
    pub expected_owner: Option<String>,
}

/// A lead that gives up identities in a commit: a cookie moving to the person who just
/// identified on a browser known as another lead. Its new state (without the identities) is
/// written in the same atomic commit, guarded by its version, so no later event can find the
/// identity on both leads.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    /// The previous owner's new state: as stored, minus the released identities.
    pub lead: Lead,
    /// Version it must have now (the commit conflicts otherwise); it gets `+1`.
    pub expected_version: u64,
    /// Identities it gives up. Each must be claimed by this commit with the previous owner as
    /// its `expected_owner`.
    pub identities: Vec<Identity>,
}

/// Everything one change writes, atomically: all of it or none of it.
#[derive(Debug, Clone)]
pub struct Commit {
    /// The lead state to store; its `id` is the key written.
    pub lead: Lead,
    /// Version the lead must have now (`None`: it must not exist).
    pub expected_version: Option<u64>,
    /// Due times to index (from [`ember_scoring::Engine::due`]).
    pub due: Due,
    /// Events to record; each event id must be new (else [`StoreError::Duplicate`]).
    pub events: Vec<StoredEvent>,
    /// Identities to point at this lead.
    pub claims: Vec<Claim>,
    /// A lead merged into this one, to delete (id and the version it must have).
    pub retire: Option<(String, u64)>,
    /// Another lead losing identities claimed here (it keeps its due times: only its
    /// identities change).
    pub release: Option<Release>,
    /// Report counter increments caused by this change ([`ember_reports::tallies`]), applied
    /// in the same atomic write (never to be applied when the commit fails).
    pub tallies: Vec<Tally>,
}

impl Commit {
    /// Checks the shape of [`Commit::release`] (stores run it before writing anything): the
    /// released lead is neither the committed nor the retired one, and every identity it gives
    /// up is claimed by this commit from it.
    pub fn check_release(&self) -> Result<(), StoreError> {
        let Some(r) = &self.release else { return Ok(()) };
        let rid = r.lead.id.as_str();
        if rid == self.lead.id || self.retire.as_ref().is_some_and(|(x, _)| x == rid) {
            return Err(StoreError::Other(format!(
                "lead {}: a commit cannot release identities of lead {rid}, which it also writes or retires",
                self.lead.id
            )));
        }
        for identity in &r.identities {
            if !self.claims.iter().any(|c| c.identity == *identity && c.expected_owner.as_deref() == Some(rid)) {
                return Err(StoreError::Other(format!(
                    "lead {}: releases an identity of lead {rid} without claiming it from that lead",
                    self.lead.id
                )));
            }
        }
        Ok(())
    }
}

/// Scheduled work kinds, each with its own index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DueKind {
    /// Inactivity decay ([`Due::decay`](ember_scoring::Due::decay)).
    Decay,
    /// Campaign steps (and unpublished messages).
    Drip,
    /// Sales SLA deadlines.
    Sla,
}

impl DueKind {
    /// All kinds, in the order a tick runs them.
    pub const ALL: [DueKind; 3] = [DueKind::Decay, DueKind::Sla, DueKind::Drip];

    /// The due time of this kind.
    pub fn of(self, due: &Due) -> Option<Time> {
        match self {
            DueKind::Decay => due.decay,
            DueKind::Drip => due.drip,
            DueKind::Sla => due.sla,
        }
    }
}

/// A due time as the stores index it: whole Unix milliseconds, negative before 1970, rounded
/// *up* (a lead is never reported due before it is; one due 0.4 ms past a millisecond is
/// reported at the next one). Pair it with [`now_millis`]: a lead is due at `now` when
/// `due_millis(at) <= now_millis(now)`, and the due time a store reports ([`DuePage::items`])
/// is this rounded one.
pub fn due_millis(at: Time) -> i64 {
    let ms = at.timestamp_millis();
    if chrono::DateTime::from_timestamp_millis(ms) == Some(at) { ms } else { ms.saturating_add(1) }
}

/// `now` for a due query, in the unit of [`due_millis`]: whole Unix milliseconds, rounded
/// *down* (negative before 1970).
pub fn now_millis(now: Time) -> i64 {
    now.timestamp_millis()
}

/// What erasing a lead covers, decided from the lead: the leads whose events go (the lead and
/// every profile merged into it — a merged profile keeps its events under its own id) and the
/// identities that may still point at it (its email and its cookies). A store erases at least
/// this; it may find more identities in its own indexes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErasureScope {
    /// The erased lead first, then the profiles merged into it, each once.
    pub lead_ids: Vec<String>,
    /// Its email, then its cookies, each once.
    pub identities: Vec<Identity>,
}

/// The fields of a stored lead body that an erasure needs, named as in [`Lead`], read when the
/// whole body does not parse (an erasure must not stop at a body it can't fully read).
#[derive(Deserialize)]
struct ScopeFields {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    anonymous_ids: Vec<String>,
    #[serde(default)]
    merged_from: Vec<String>,
}

impl ErasureScope {
    /// The scope of erasing `lead`.
    pub fn of(lead: &Lead) -> ErasureScope {
        Self::from_fields(&lead.id, lead.email.as_deref(), &lead.anonymous_ids, &lead.merged_from)
    }

    /// A lead known by its id alone (its stored body is missing): its own events, no identities.
    pub fn of_id(lead_id: &str) -> ErasureScope {
        Self::from_fields(lead_id, None, &[], &[])
    }

    /// The scope read from a stored lead body (the JSON of a [`Lead`]) under `lead_id`. A body
    /// that is not a whole `Lead` still gives the fields it has (logged); one that is not even
    /// that gives [`ErasureScope::of_id`].
    pub fn of_body(lead_id: &str, body: &str) -> ErasureScope {
        match serde_json::from_str::<Lead>(body) {
            Ok(lead) => Self::from_fields(lead_id, lead.email.as_deref(), &lead.anonymous_ids, &lead.merged_from),
            Err(e) => {
                tracing::warn!(lead_id, error = %e, "erasing a lead whose body does not parse");
                match serde_json::from_str::<ScopeFields>(body) {
                    Ok(f) => Self::from_fields(lead_id, f.email.as_deref(), &f.anonymous_ids, &f.merged_from),
                    Err(_) => Self::of_id(lead_id),
                }
            }
        }
    }

    fn from_fields(lead_id: &str, email: Option<&str>, anonymous: &[String], merged: &[String]) -> ErasureScope {
        let mut lead_ids = vec![lead_id.to_string()];
        for m in merged {
            if !lead_ids.contains(m) {
                lead_ids.push(m.clone());
            }
        }
        let mut identities: Vec<Identity> = email.map(|e| Identity::Email(e.to_string())).into_iter().collect();
        for a in anonymous {
            let a = Identity::Anonymous(a.clone());
            if !identities.contains(&a) {
                identities.push(a);
            }
        }
        ErasureScope { lead_ids, identities }
    }
}

/// One page of due leads, oldest due first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DuePage {
    /// Lead ids with their due time.
    pub items: Vec<(String, Time)>,
    /// Pass back to get the next page; `None` when done.
    pub cursor: Option<String>,
    /// Index entries read to produce this page (for the "reads only what is due" measurement).
    pub read: u64,
}

/// Why a store call failed: a conflict or duplicate the use case handles, or anything else.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The lead changed since it was read, or an identity was claimed meanwhile: read again and retry.
    #[error("conflict: {0}")]
    Conflict(String),
    /// This event id was already recorded.
    #[error("duplicate event id {0}")]
    Duplicate(String),
    /// Something else went wrong (I/O, throttling after retries, corrupt item).
    #[error("store: {0}")]
    Other(String),
}

/// Where leads, identities and events live. Implementations guarantee: a commit is atomic;
/// it fails with `Conflict` when `expected_version`, a claim's `expected_owner` or the
/// released lead's version does not hold, and with `Duplicate` when an event id exists; due
/// queries read only what is due.
#[async_trait]
pub trait Store: Send + Sync {
    /// The lead an identity points at.
    async fn lookup(&self, identity: &Identity) -> Result<Option<String>, StoreError>;
    /// A lead by id.
    async fn get(&self, lead_id: &str) -> Result<Option<LeadRecord>, StoreError>;
    /// Whether an event id has been recorded.
    async fn seen(&self, event_id: &str) -> Result<bool, StoreError>;
    /// Writes a change atomically; returns the new version.
    async fn commit(&self, commit: Commit) -> Result<u64, StoreError>;
    /// Leads whose `kind` work is due at or before `now`, oldest first, at most `limit`.
    async fn due(&self, kind: DueKind, now: Time, cursor: Option<String>, limit: usize) -> Result<DuePage, StoreError>;
    /// A lead's events, oldest first (the timeline).
    async fn events(&self, lead_id: &str) -> Result<Vec<StoredEvent>, StoreError>;
    /// Erases a lead: the lead, its identities and its events. Event ids stay known (without
    /// content) so a replayed event does not bring the person back. Returns whether it existed.
    async fn erase(&self, lead_id: &str) -> Result<bool, StoreError>;
    /// Report counters dated `from..=to` (days in the model's time zone), summed per (day, key)
    /// — zeros may be left out. Reads only those days' counters, never every lead.
    async fn tallies(&self, from: chrono::NaiveDate, to: chrono::NaiveDate) -> Result<Vec<Tally>, StoreError>;
    /// Every lead, in pages (reports and exports; not used on hot paths).
    async fn scan(&self, cursor: Option<String>, limit: usize) -> Result<(Vec<Lead>, Option<String>), StoreError>;
}

/// An email ready to send (rendered).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutgoingEmail {
    /// Idempotency key of the send.
    pub send_id: String,
    /// Id of the recipient lead (`ld_…`).
    pub lead_id: String,
    /// Id of the campaign whose step sends it.
    pub campaign: String,
    /// Index of the `send` step in the campaign.
    pub step: usize,
    /// The model's template id (sent as the SES `template` tag and the outbox's `X-Ember-Template`).
    pub template: String,
    /// The model's `email.from`, as written (`Name <address>` allowed).
    pub from: String,
    /// Reply-to.
    pub reply_to: Option<String>,
    /// The lead's normalized email address.
    pub to: String,
    /// Rendered subject, on one line (line breaks become spaces).
    pub subject: String,
    /// HTML body.
    pub html: String,
    /// Text part: the template's `text`, or one derived from the HTML when it has none.
    pub text: String,
    /// Extra headers (`List-Unsubscribe`, `List-Unsubscribe-Post`).
    pub headers: Vec<(String, String)>,
    /// SES configuration set.
    pub configuration_set: Option<String>,
}

/// Sends email. Implementations retry throttling themselves and report the final outcome.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends one email; never fails as a call: every failure is a [`SendOutcome`](ember_scoring::SendOutcome).
    async fn send(&self, email: &OutgoingEmail) -> ember_scoring::SendOutcome;
}

/// A publish or a message handling failed; the text says what failed and for which message.
#[derive(Debug, thiserror::Error)]
#[error("bus: {0}")]
pub struct BusError(pub String);

/// Publishes domain messages (`lead.qualified`, `lead.sla_breached`, `lead.stage_changed`…).
#[async_trait]
pub trait Bus: Send + Sync {
    /// Publishes messages; on error none is considered published (ids make re-publishing safe).
    async fn publish(&self, messages: &[Message]) -> Result<(), BusError>;
}

/// Where use cases read the current time, so scenarios and tests can set it.
pub trait Clock: Send + Sync {
    /// The current time, in UTC.
    fn now(&self) -> Time;
}

/// The machine's UTC clock (`chrono::Utc::now`), for production.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Time {
        chrono::Utc::now()
    }
}

/// A clock set by hand (scenarios, tests).
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::Mutex<Option<Time>>);

impl ManualClock {
    /// A clock at `t`.
    pub fn at(t: Time) -> ManualClock {
        ManualClock(std::sync::Mutex::new(Some(t)))
    }
    /// Sets the time every later `now` returns (forward or back).
    pub fn set(&self, t: Time) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(t);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Time {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).unwrap_or_else(chrono::Utc::now)
    }
}

/// A signed webhook delivery (Standard Webhooks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    /// Webhook name in the model.
    pub hook: String,
    /// Target URL (`None`: not configured; the delivery is recorded, not sent).
    pub url: Option<String>,
    /// `webhook-id` (the message id: stable across retries).
    pub id: String,
    /// `webhook-timestamp` (Unix seconds).
    pub timestamp: i64,
    /// `webhook-signature` (`v1,<base64>`); empty when no secret is configured.
    pub signature: String,
    /// What the message says happened.
    pub kind: ember_scoring::lead::MessageKind,
    /// Id of the lead the message is about (`ld_…`); the handoff reads the lead to fill in its data.
    pub lead_id: String,
    /// JSON body, exactly as signed.
    pub body: String,
}

/// Result of one delivery attempt sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum DeliveryResult {
    /// 2xx.
    Delivered {
        /// HTTP requests made, the successful one included (0 when only recorded locally).
        attempts: u32,
    },
    /// The endpoint answered 410 Gone: disable it.
    Disabled,
    /// Retries exhausted (or a permanent error): goes to the dead-letter queue.
    Failed {
        /// Why the last attempt failed, e.g. `HTTP 400` or `no time left for an attempt`.
        error: String,
        /// HTTP requests made before giving up (0 when none could be made).
        attempts: u32,
    },
}

/// Delivers webhooks (HTTP with retries, or a recorder in tests and scenarios).
#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// Delivers one webhook, retrying as its policy says, but never past `deadline`: a retry
    /// (or a `Retry-After`) that would end after it is not waited for, and the delivery is
    /// `Failed` at once, for the caller to dead-letter while it still has time.
    async fn deliver(&self, delivery: &WebhookDelivery, deadline: std::time::Instant) -> DeliveryResult;
}

/// A dead letter read back for replay: the delivery and the store's handle on it (a queue's
/// receipt handle, a file's key), to pass to [`DeadLetters::remove`].
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The delivery as it failed.
    pub delivery: WebhookDelivery,
    /// The store's handle on this letter.
    pub receipt: String,
}

/// Where failed webhook deliveries wait to be replayed. A letter leaves the store only when
/// [`DeadLetters::remove`] is called for it — after it was delivered (or its endpoint is
/// gone) — so a replay that crashes or is killed mid-way loses nothing.
#[async_trait]
pub trait DeadLetters: Send + Sync {
    /// Stores a failed delivery.
    async fn put(&self, delivery: &WebhookDelivery, error: &str) -> Result<(), BusError>;
    /// Reads up to `limit` letters for replay, oldest first, without removing them. A queue
    /// hides them from other readers for `lease` (they come back after it unless removed).
    async fn lease(&self, limit: usize, lease: std::time::Duration) -> Result<Vec<DeadLetter>, BusError>;
    /// Removes a letter read by [`DeadLetters::lease`].
    async fn remove(&self, letter: &DeadLetter) -> Result<(), BusError>;
}

/// A bus message that never reached its handler, read back from where the bus put it (the
/// queue of events EventBridge or the function could not deliver).
#[derive(Debug, Clone, PartialEq)]
pub struct FailedMessage {
    /// The message, when the queued entry is one (`None`: something else failed there, such as
    /// a scheduled invocation; it is left for a person to read).
    pub message: Option<Message>,
    /// The queue's handle on this entry, to pass to [`FailedMessages::remove`].
    pub receipt: String,
}

/// Where bus messages that never reached their handler wait. Like [`DeadLetters`], an entry
/// leaves only when [`FailedMessages::remove`] is called for it.
#[async_trait]
pub trait FailedMessages: Send + Sync {
    /// Reads up to `limit` entries without removing them, hidden from other readers for `lease`.
    async fn lease(&self, limit: usize, lease: std::time::Duration) -> Result<Vec<FailedMessage>, BusError>;
    /// Removes an entry read by [`FailedMessages::lease`].
    async fn remove(&self, receipt: &str) -> Result<(), BusError>;
}

/// A place outside the store that keeps copies of what was sent about a lead — the local
/// outbox, recorded webhooks, local dead letters — and so holds the person's data. Erasure
/// ([`crate::Erasure::erase`]) reaches every one of them; adapters whose copies hold no personal
/// data (the bus and the SQS queues: messages travel without it, see
/// [`ember_scoring::personal`]) need none.
#[async_trait]
pub trait PersonalCopies: Send + Sync {
    /// Removes every copy about these leads (ids), atomically per file; how many it removed.
    /// Idempotent: a second call removes nothing.
    async fn erase_leads(&self, lead_ids: &[String]) -> Result<usize, StoreError>;
}

/// Something that consumes bus messages (the handoff service, reports' counters…). The local
/// bus calls handlers in-process; on AWS, EventBridge rules invoke the `handoff` function.
#[async_trait]
pub trait MessageHandler: Send + Sync {
    /// Handles one message. Errors are retried by the bus that delivered it.
    async fn handle(&self, message: &Message) -> Result<(), BusError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_round_up_now_rounds_down_before_1970_too() {
        let t = chrono::DateTime::from_timestamp(10, 1_500_000).expect("time");
        assert_eq!((due_millis(t), now_millis(t)), (10_002, 10_001));
        let whole = chrono::DateTime::from_timestamp(10, 1_000_000).expect("time");
        assert_eq!((due_millis(whole), now_millis(whole)), (10_001, 10_001));
        let before_1970 = chrono::DateTime::from_timestamp(-10, 500_000).expect("time");
        assert_eq!((due_millis(before_1970), now_millis(before_1970)), (-9_999, -10_000));
    }

    #[test]
    fn erasure_covers_the_lead_its_merged_profiles_and_identities() {
        let body = r#"{"id":"ld-1","email":"a@x.com","anonymous_ids":["c1","c2"],"scores":{},"stage":"s",
            "created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z","merged_from":["an-1","ld-1","an-2"]}"#;
        let lead: Lead = serde_json::from_str(body).expect("a lead");
        let scope = ErasureScope::of(&lead);
        assert_eq!(scope.lead_ids, ["ld-1", "an-1", "an-2"]);
        let c = |a: &str| Identity::Anonymous(a.into());
        assert_eq!(scope.identities, [Identity::Email("a@x.com".into()), c("c1"), c("c2")]);
        assert_eq!(ErasureScope::of_body("ld-1", body), scope);
        // A body that is no whole lead still gives what it names; one that is not JSON, the id.
        let partial = ErasureScope::of_body("ld-1", r#"{"merged_from":["an-1"],"scores":7}"#);
        assert_eq!(partial.lead_ids, ["ld-1", "an-1"]);
        assert!(partial.identities.is_empty());
        assert_eq!(ErasureScope::of_body("ld-1", "not json"), ErasureScope::of_id("ld-1"));
        assert_eq!(ErasureScope::of_id("ld-1").lead_ids, ["ld-1"]);
    }
}
