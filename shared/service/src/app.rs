//! [`Ember`]: the services bundled with their adapters.

use crate::compose::Composer;
use crate::ports::{Bus, Clock, Identity, LeadRecord, Mailer, PersonalCopies, Store, StoreError};
use ember_scoring::lead::Message;
use ember_scoring::{Engine, Lead};
use std::sync::Arc;

/// Service failures.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such lead.
    #[error("lead not found")]
    NotFound,
    /// The input is wrong (the message says how).
    #[error("{0}")]
    Invalid(String),
    /// Too many concurrent changes to one lead.
    #[error("gave up after {0} conflicting attempts")]
    Contention(u32),
}

/// How many times a change is retried when another writer got there first.
pub const MAX_ATTEMPTS: u32 = 16;

/// The application: engine, store, mailer, bus and clock.
#[derive(Clone)]
pub struct Ember {
    pub(crate) engine: Arc<Engine>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) mailer: Arc<dyn Mailer>,
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) composer: Arc<Composer>,
    pub(crate) identities: Arc<crate::identity_cache::IdentityCache>,
    /// Copies of sent data outside the store, which erasure must also reach.
    pub(crate) copies: Vec<Arc<dyn PersonalCopies>>,
}

impl Ember {
    /// Wires the services.
    pub fn new(
        engine: Arc<Engine>,
        store: Arc<dyn Store>,
        mailer: Arc<dyn Mailer>,
        bus: Arc<dyn Bus>,
        clock: Arc<dyn Clock>,
        composer: Arc<Composer>,
    ) -> Ember {
        Ember { engine, store, mailer, bus, clock, composer, identities: Default::default(), copies: Vec::new() }
    }

    /// The same services, with places outside the store that keep copies of sent data (outbox,
    /// recorded webhooks, dead letters): [`Ember::erase`] erases the lead there too.
    pub fn with_copies(mut self, copies: Vec<Arc<dyn PersonalCopies>>) -> Ember {
        self.copies.extend(copies);
        self
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The email composer (templates, unsubscribe links).
    pub fn composer(&self) -> &Arc<Composer> {
        &self.composer
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// A lead by id.
    pub async fn lead(&self, id: &str) -> Result<Option<Lead>, ServiceError> {
        Ok(self.store.get(id).await?.map(|r| r.lead))
    }

    /// The lead an identity (email or anonymous id) points at.
    pub async fn lead_by(&self, identity: &Identity) -> Result<Option<Lead>, ServiceError> {
        let Some(id) = self.store.lookup(identity).await? else { return Ok(None) };
        self.lead(&id).await
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
            let commit = crate::ports::Commit {
                due: self.engine.due(&rec.lead),
                lead: rec.lead.clone(),
                expected_version: Some(rec.version),
                events: Vec::new(),
                claims: Vec::new(),
                retire: None,
                release: None,
                // Only the outbox changed: no report counter moves.
                tallies: Vec::new(),
            };
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
