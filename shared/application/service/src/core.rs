//! The core every use case shares: the engine, the store, the bus, the clock and the identity
//! hints, and the one way a lead changes — read it, let the engine decide, commit the result
//! under the version that was read, and start again when another writer got there first
//! ([`Core::update_lead`]). Every commit is built by [`Core::commit`], so the due times and the
//! report counters of a change are derived in one place.

use crate::identity_cache::IdentityCache;
use crate::ports::{Bus, Clock, Commit, LeadRecord, Store, StoreError, StoredEvent};
use ember_scoring::engine::Change;
use ember_scoring::lead::Message;
use ember_scoring::{Engine, Event, Lead, Outcome, Time};
use std::sync::Arc;

/// Why a use case failed; the HTTP layer maps `NotFound` to 404 and `Invalid` to 400.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The store failed or is unreachable (the HTTP API answers 503: retry later).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The lead named by id or email does not exist (never created, or erased).
    #[error("lead not found")]
    NotFound,
    /// The input is wrong (the message says how).
    #[error("{0}")]
    Invalid(String),
    /// A batch holds more events than [`crate::MAX_BATCH`] (how many it holds).
    #[error("a batch holds at most {max} events; this one has {0}", max = crate::MAX_BATCH)]
    BatchTooLarge(usize),
    /// Too many concurrent changes to one lead.
    #[error("gave up after {0} conflicting attempts")]
    Contention(u32),
}

impl ServiceError {
    /// Whether trying the same request again later may succeed: the store failing or too many
    /// writers on one lead may pass; an invalid request, a lead that does not exist or a batch
    /// too large will not (the HTTP API answers them `503` and `4xx`).
    pub fn is_retryable(&self) -> bool {
        match self {
            ServiceError::Store(StoreError::Other(_) | StoreError::Conflict(_)) | ServiceError::Contention(_) => true,
            ServiceError::Store(StoreError::Duplicate(_)) | ServiceError::Invalid(_) | ServiceError::NotFound | ServiceError::BatchTooLarge(_) => false,
        }
    }
}

/// How many times a change is retried when another writer got there first.
pub const MAX_ATTEMPTS: u32 = 16;

/// What the use cases share.
pub(crate) struct Core {
    pub(crate) engine: Arc<Engine>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) identities: IdentityCache,
}

/// What a use case decided for the lead as read.
pub(crate) enum Decision<T> {
    /// Write `lead` with these timeline entries; `carry` comes back with the record.
    Write { lead: Lead, events: Vec<StoredEvent>, carry: T },
    /// The decision changes nothing: no commit, `carry` comes back with the lead as read.
    Keep(T),
}

/// What a commit that failed means, as the use case judges it.
pub(crate) enum Failure {
    /// Read the lead again and decide again.
    Retry,
    /// The write went through after all (its answer was lost): this is the lead as stored.
    Written(LeadRecord),
    /// Stop: the change is not made, for the reason the store gave.
    Stop(StoreError),
}

impl Failure {
    /// The usual judgement: a conflict (another writer got there first) is retried, any other
    /// store error is the caller's error.
    pub(crate) fn of_conflict(e: StoreError) -> Result<Failure, ServiceError> {
        match e {
            StoreError::Conflict(_) => Ok(Failure::Retry),
            e => Err(e.into()),
        }
    }
}

/// How an update ended.
pub(crate) enum Updated<T> {
    /// Committed (its outbox published); the lead as committed.
    Written(LeadRecord, T),
    /// Nothing to write; the lead as read.
    Kept(LeadRecord, T),
    /// The store refused the change ([`Failure::Stop`]).
    Refused(StoreError),
}

impl Core {
    /// A lead by id, as stored.
    pub(crate) async fn lead(&self, id: &str) -> Result<Option<Lead>, ServiceError> {
        Ok(self.store.get(id).await?.map(|r| r.lead))
    }

    /// The lead an identity (email or anonymous id) points at.
    pub(crate) async fn lead_by(&self, identity: &crate::ports::Identity) -> Result<Option<Lead>, ServiceError> {
        let Some(id) = self.store.lookup(identity).await? else { return Ok(None) };
        self.lead(&id).await
    }

    /// The lead `lead_id` after one read → decide → commit, retried (read again, decide again)
    /// as long as `on_failure` answers [`Failure::Retry`] — for a conflict, usually
    /// ([`Failure::of_conflict`]); `None` when there is no such lead. `on_failure` sees what
    /// the failed attempt decided.
    pub(crate) async fn update_lead<T, Judged>(
        &self,
        lead_id: &str,
        mut decide: impl FnMut(&LeadRecord) -> Decision<T>,
        mut on_failure: impl FnMut(StoreError, &T) -> Judged,
    ) -> Result<Option<Updated<T>>, ServiceError>
    where
        Judged: std::future::Future<Output = Result<Failure, ServiceError>>,
    {
        for _ in 0..MAX_ATTEMPTS {
            let Some(rec) = self.store.get(lead_id).await? else { return Ok(None) };
            let (lead, events, carry) = match decide(&rec) {
                Decision::Keep(carry) => return Ok(Some(Updated::Kept(rec, carry))),
                Decision::Write { lead, events, carry } => (lead, events, carry),
            };
            let commit = self.commit(&[&rec.lead], Some(rec.version), lead, events);
            let lead_after = commit.lead.clone();
            let failure = match self.store.commit(commit).await {
                Ok(v) => {
                    let rec = self.flush_outbox(LeadRecord { lead: lead_after, version: v }).await;
                    return Ok(Some(Updated::Written(rec, carry)));
                }
                Err(e) => on_failure(e, &carry).await?,
            };
            match failure {
                Failure::Retry => continue,
                Failure::Written(rec) => return Ok(Some(Updated::Written(self.flush_outbox(rec).await, carry))),
                Failure::Stop(e) => return Ok(Some(Updated::Refused(e))),
            }
        }
        Err(ServiceError::Contention(MAX_ATTEMPTS))
    }

    /// A commit of `lead`, replacing the stored leads `replaced` (the one read, and a profile
    /// merged into it): the due times come from the engine, and the report counters move from
    /// the facts of `replaced` to the facts of `lead`, in the same atomic write.
    pub(crate) fn commit(&self, replaced: &[&Lead], expected_version: Option<u64>, lead: Lead, events: Vec<StoredEvent>) -> Commit {
        let model = self.engine.model();
        let mut before = std::collections::BTreeMap::new();
        for gone in replaced {
            ember_reports::facts::add_facts(model, gone, -1, &mut before);
        }
        self.commit_from_facts(before, expected_version, lead, events)
    }

    /// [`Core::commit`] with the facts of the replaced leads already taken (negated) — for a
    /// change that consumes the leads it replaces before the commit is built.
    pub(crate) fn commit_from_facts(
        &self,
        before: std::collections::BTreeMap<(chrono::NaiveDate, String), i64>,
        expected_version: Option<u64>,
        lead: Lead,
        events: Vec<StoredEvent>,
    ) -> Commit {
        let tallies = ember_reports::facts::tallies_from(self.engine.model(), before, &lead);
        self.commit_with(tallies, expected_version, lead, events)
    }

    fn commit_with(&self, tallies: Vec<ember_reports::Tally>, expected_version: Option<u64>, lead: Lead, events: Vec<StoredEvent>) -> Commit {
        Commit { due: self.engine.due(&lead), tallies, lead, expected_version, events, claims: Vec::new(), retire: None, release: None }
    }

    /// Publishes the lead's outbox and clears it (best effort: what is not cleared is
    /// published again by the next drip run; message ids make that safe).
    pub(crate) async fn flush_outbox(&self, mut rec: LeadRecord) -> LeadRecord {
        if rec.lead.outbox.is_empty() {
            return rec;
        }
        fail::fail_point!("before-publish", |_| crate::failpoints::kill_self());
        // The bus and its queues never hold the person's data: the handoff reads it back.
        let outgoing: Vec<Message> = rec.lead.outbox.iter().map(Message::without_personal_data).collect();
        if let Err(e) = self.bus.publish(&outgoing).await {
            tracing::warn!(lead_id = %rec.lead.id, error = %e, "publishing failed; the next drip run retries");
            return rec;
        }
        let published: Vec<String> = rec.lead.outbox.iter().map(|m| m.id.clone()).collect();
        for _ in 0..MAX_ATTEMPTS {
            rec.lead.outbox.retain(|m| !published.contains(&m.id));
            // Only the outbox changed: no report counter moves.
            let commit = self.commit_with(Vec::new(), Some(rec.version), rec.lead.clone(), Vec::new());
            match self.store.commit(commit).await {
                Ok(v) => {
                    rec.version = v;
                    return rec;
                }
                Err(StoreError::Conflict(_)) => match self.store.get(&rec.lead.id).await {
                    Ok(Some(fresh)) => rec = fresh,
                    _ => return rec,
                },
                Err(e) => {
                    tracing::warn!(lead_id = %rec.lead.id, error = %e, "could not clear the outbox");
                    return rec;
                }
            }
        }
        rec
    }
}

/// Applies a pure change to one lead and commits it (with a timeline entry when it did
/// something), retrying on conflict; publishes what it queued. `None`: no such lead.
pub(crate) async fn change_lead(
    core: &Core,
    lead_id: &str,
    now: Time,
    what: &str,
    f: impl Fn(&ember_scoring::Engine, &mut Lead) -> Outcome,
) -> Result<Option<LeadRecord>, ServiceError> {
    let decide = |rec: &LeadRecord| {
        let mut lead = rec.lead.clone();
        let outcome = f(&core.engine, &mut lead);
        if lead == rec.lead {
            return Decision::Keep(());
        }
        let events = system_entry(&lead, what, now, outcome.changes, core.clock.now());
        Decision::Write { lead, events, carry: () }
    };
    match core.update_lead(lead_id, decide, |e, _: &()| std::future::ready(Failure::of_conflict(e))).await? {
        None => Ok(None),
        Some(Updated::Written(rec, ()) | Updated::Kept(rec, ())) => Ok(Some(rec)),
        Some(Updated::Refused(e)) => Err(e.into()),
    }
}

/// A timeline entry for a change Ember made itself (decay, SLA, drip, CRM feedback): none when
/// the change did nothing.
pub(crate) fn system_entry(lead: &Lead, what: &str, at: Time, changes: Vec<Change>, received_at: Time) -> Vec<StoredEvent> {
    if changes.is_empty() {
        return Vec::new();
    }
    let id = format!("sys:{}:{}:{}:{}", lead.id, what, at.timestamp_millis(), uuid::Uuid::now_v7().simple());
    vec![StoredEvent { event: system_event(id, what, at), lead_id: lead.id.clone(), changes, received_at }]
}

/// The event of a timeline entry Ember records itself (kind `ember.WHAT`), under `id`.
pub(crate) fn system_event(id: String, what: &str, at: Time) -> Event {
    Event {
        id,
        kind: format!("ember.{what}"),
        at,
        email: None,
        anonymous_id: None,
        traits: Default::default(),
        properties: Default::default(),
        channel: None,
        machine: false,
    }
}
