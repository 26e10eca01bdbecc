//! Ingest: one event or a batch, each accepted, duplicate or rejected with a reason.
//!
//! One event is exactly-once: the event id is recorded in the same atomic commit as the lead
//! update (conditioned on the lead's version), and the whole read-decide-commit is retried when
//! another writer got there first. Identity resolution decides which lead the event belongs to,
//! creating it or merging an anonymous profile into an identified one (atomically, with the
//! identity claims in the same commit).

use crate::app::{Ember, ServiceError, MAX_ATTEMPTS};
use crate::ports::{Claim, Commit, Identity, LeadRecord, StoreError, StoredEvent};
use ember_scoring::{Event, Lead, RawEvent};
use serde::{Deserialize, Serialize};

/// Largest batch.
pub const MAX_BATCH: usize = 100;

/// What happened to one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum IngestStatus {
    /// Applied.
    Accepted {
        /// Event id.
        event_id: String,
        /// Lead it was applied to.
        lead_id: String,
    },
    /// Seen before: nothing changed.
    Duplicate {
        /// Event id.
        event_id: String,
    },
    /// Not applied.
    Rejected {
        /// Event id, when there was a usable one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        /// Why.
        reason: String,
    },
}

impl IngestStatus {
    /// Whether it was accepted.
    pub fn is_accepted(&self) -> bool {
        matches!(self, IngestStatus::Accepted { .. })
    }
}

fn new_lead_id() -> String {
    format!("ld_{}", uuid::Uuid::now_v7().simple())
}

pub(crate) fn new_event_id() -> String {
    format!("ev_{}", uuid::Uuid::now_v7().simple())
}

impl Ember {
    /// Validates and applies one event as sent by a client.
    pub async fn ingest(&self, raw: &RawEvent) -> IngestStatus {
        let now = self.clock.now();
        let event = match raw.validate(now, new_event_id) {
            Ok(e) => e,
            Err(reason) => {
                let event_id = raw.event_id.as_ref().and_then(|v| v.as_str()).map(str::to_string);
                return IngestStatus::Rejected { event_id, reason };
            }
        };
        match self.apply_event(&event).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(event_id = %event.id, error = %e, "ingest failed");
                IngestStatus::Rejected { event_id: Some(event.id.clone()), reason: format!("not stored, retry later: {e}") }
            }
        }
    }

    /// Applies a batch (at most [`MAX_BATCH`]); one status per event, in order. A bad event
    /// never sinks the good ones beside it.
    pub async fn ingest_batch(&self, raws: &[RawEvent]) -> Result<Vec<IngestStatus>, ServiceError> {
        if raws.len() > MAX_BATCH {
            return Err(ServiceError::Invalid(format!("a batch holds at most {MAX_BATCH} events; this one has {}", raws.len())));
        }
        let mut out = Vec::with_capacity(raws.len());
        for raw in raws {
            out.push(self.ingest(raw).await);
        }
        Ok(out)
    }

    /// Applies a validated event: resolve identity, apply, commit — retried on conflict.
    pub async fn apply_event(&self, event: &Event) -> Result<IngestStatus, ServiceError> {
        for _ in 0..MAX_ATTEMPTS {
            if self.store.seen(&event.id).await? {
                return Ok(IngestStatus::Duplicate { event_id: event.id.clone() });
            }
            let plan = self.resolve(event).await?;
            let Plan { mut lead, version, claims, merge } = plan;
            let mut retire = None;
            let mut changes = Vec::new();
            if let Some(from) = merge {
                retire = Some((from.lead.id.clone(), from.version));
                changes.extend(self.engine.merge(&mut lead, from.lead, event.at).changes);
            }
            changes.extend(self.engine.ingest(&mut lead, event).changes);
            let received_at = self.clock.now();
            let commit = Commit {
                due: self.engine.due(&lead),
                events: vec![StoredEvent { event: event.clone(), lead_id: lead.id.clone(), changes, received_at }],
                lead,
                expected_version: version,
                claims,
                retire,
            };
            let lead_id = commit.lead.id.clone();
            let lead_after = commit.lead.clone();
            match self.store.commit(commit).await {
                Ok(v) => {
                    if !lead_after.outbox.is_empty() {
                        self.flush_outbox(LeadRecord { lead: lead_after, version: v }).await;
                    }
                    return Ok(IngestStatus::Accepted { event_id: event.id.clone(), lead_id });
                }
                Err(StoreError::Duplicate(_)) => return Ok(IngestStatus::Duplicate { event_id: event.id.clone() }),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Contention(MAX_ATTEMPTS))
    }

    /// Decides which lead the event goes to, what identities to claim, and what to merge.
    async fn resolve(&self, e: &Event) -> Result<Plan, ServiceError> {
        let by_email = match &e.email {
            Some(m) => self.store.lookup(&Identity::Email(m.clone())).await?,
            None => None,
        };
        let by_anon = match &e.anonymous_id {
            Some(a) => self.store.lookup(&Identity::Anonymous(a.clone())).await?,
            None => None,
        };
        let load = |id: String| async move {
            self.store.get(&id).await?.ok_or_else(|| ServiceError::Store(StoreError::Conflict(format!("lead {id} vanished"))))
        };
        let anon_claim = |owner: Option<String>| e.anonymous_id.clone().map(|a| Claim { identity: Identity::Anonymous(a), expected_owner: owner });
        match (by_email, by_anon) {
            (Some(a), Some(b)) if a == b => {
                let rec = load(a).await?;
                Ok(Plan { lead: rec.lead, version: Some(rec.version), claims: vec![], merge: None })
            }
            (Some(a), Some(b)) => {
                let target = load(a.clone()).await?;
                let other = load(b.clone()).await?;
                if other.lead.email.is_none() {
                    // The cookie's anonymous profile becomes part of the known lead.
                    let claims = other
                        .lead
                        .anonymous_ids
                        .iter()
                        .map(|x| Claim { identity: Identity::Anonymous(x.clone()), expected_owner: Some(b.clone()) })
                        .collect();
                    Ok(Plan { lead: target.lead, version: Some(target.version), claims, merge: Some(other) })
                } else {
                    // A shared browser: the cookie now belongs to this person; nothing is merged.
                    Ok(Plan { lead: target.lead, version: Some(target.version), claims: anon_claim(Some(b)).into_iter().collect(), merge: None })
                }
            }
            (Some(a), None) => {
                let rec = load(a).await?;
                Ok(Plan { lead: rec.lead, version: Some(rec.version), claims: anon_claim(None).into_iter().collect(), merge: None })
            }
            (None, Some(b)) => {
                let rec = load(b.clone()).await?;
                match (&e.email, &rec.lead.email) {
                    (Some(email), None) => {
                        // The anonymous profile is identified.
                        let claims = vec![Claim { identity: Identity::Email(email.clone()), expected_owner: None }];
                        Ok(Plan { lead: rec.lead, version: Some(rec.version), claims, merge: None })
                    }
                    (Some(email), Some(_)) => {
                        // Someone else on a browser known as another lead: a new lead, and the
                        // cookie follows the person who just identified.
                        let lead = self.engine.new_lead(new_lead_id(), e.at);
                        let claims = vec![
                            Claim { identity: Identity::Email(email.clone()), expected_owner: None },
                            Claim { identity: Identity::Anonymous(e.anonymous_id.clone().unwrap_or_default()), expected_owner: Some(b) },
                        ];
                        Ok(Plan { lead, version: None, claims, merge: None })
                    }
                    (None, _) => Ok(Plan { lead: rec.lead, version: Some(rec.version), claims: vec![], merge: None }),
                }
            }
            (None, None) => {
                let lead = self.engine.new_lead(new_lead_id(), e.at);
                let mut claims: Vec<Claim> = Vec::new();
                if let Some(m) = &e.email {
                    claims.push(Claim { identity: Identity::Email(m.clone()), expected_owner: None });
                }
                claims.extend(anon_claim(None));
                Ok(Plan { lead, version: None, claims, merge: None })
            }
        }
    }
}

struct Plan {
    lead: Lead,
    version: Option<u64>,
    claims: Vec<Claim>,
    merge: Option<LeadRecord>,
}
