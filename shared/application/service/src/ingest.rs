//! Ingest: one event or a batch, each accepted, duplicate or rejected with a reason.
//!
//! One event is exactly-once: the event id is recorded in the same atomic commit as the lead
//! update (conditioned on the lead's version), and the whole read-decide-commit is retried when
//! another writer got there first. Identity resolution decides which lead the event belongs to,
//! creating it or merging an anonymous profile into an identified one (atomically, with the
//! identity claims in the same commit).

use crate::core::{Core, ServiceError, MAX_ATTEMPTS};
use crate::ports::{Claim, Identity, LeadRecord, Release, StoreError, StoredEvent};
use ember_scoring::{Event, Lead, RawEvent};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Most events one `POST /v1/events/batch` may carry; a larger batch is refused whole.
pub const MAX_BATCH: usize = 100;

/// What happened to one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum IngestStatus {
    /// Validated and applied: the lead and its timeline are stored.
    Accepted {
        /// The client's `event_id`, or the `ev_…` id Ember gave it.
        event_id: String,
        /// Lead it was applied to.
        lead_id: String,
    },
    /// Seen before: nothing changed.
    Duplicate {
        /// The `event_id` already stored.
        event_id: String,
    },
    /// Not applied: invalid, refused by a limit, or not stored (then the reason says to retry).
    Rejected {
        /// Event id, when there was a usable one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        /// What is wrong, naming the field (``no identity: give `email` or `anonymous_id` ``), or
        /// `not stored, retry later: …`.
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

/// The ingest use case: events from websites, apps and the email provider, applied to the
/// lead their identities resolve to.
#[derive(Clone)]
pub struct Ingest {
    pub(crate) core: Arc<Core>,
}

impl Ingest {
    /// Validates and applies one event as sent by a client (a write key): types that only
    /// Ember records are refused (see [`ember_scoring::event::is_reserved_type`]).
    pub async fn event(&self, raw: &RawEvent) -> IngestStatus {
        let now = self.core.clock.now();
        let event = match raw.validate(now, new_event_id) {
            Ok(e) => e,
            Err(reason) => {
                let event_id = raw.event_id.as_ref().and_then(|v| v.as_str()).map(str::to_string);
                return IngestStatus::Rejected { event_id, reason };
            }
        };
        // Ember's own entries (CRM feedback, unsubscribes, jobs) take `sys:` ids derived from
        // what they record; a client taking one first would make the real one a "duplicate".
        if event.id.starts_with("sys:") {
            return IngestStatus::Rejected {
                event_id: Some(event.id.clone()),
                reason: "`event_id` may not start with `sys:` (reserved for Ember's own entries)".into(),
            };
        }
        match self.apply(&event).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(event_id = %event.id, error = %e, "ingest failed");
                IngestStatus::Rejected { event_id: Some(event.id.clone()), reason: format!("not stored, retry later: {e}") }
            }
        }
    }

    /// Applies a batch (at most [`MAX_BATCH`]); one status per item, in order. An item that
    /// did not even read as an event (`Err`: why) is rejected for that reason; a bad event never
    /// sinks the good ones beside it.
    pub async fn batch(&self, items: Vec<Result<RawEvent, String>>) -> Result<Vec<IngestStatus>, ServiceError> {
        if items.len() > MAX_BATCH {
            return Err(ServiceError::BatchTooLarge(items.len()));
        }
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(match item {
                Ok(raw) => self.event(&raw).await,
                Err(reason) => IngestStatus::Rejected { event_id: None, reason },
            });
        }
        Ok(out)
    }

    /// Applies a validated event: resolve identity, apply, commit — retried on conflict.
    pub async fn apply(&self, event: &Event) -> Result<IngestStatus, ServiceError> {
        let core = &self.core;
        // A duplicate is found by the commit itself (the event id is written under an
        // `attribute_not_exists` condition in the same transaction), so the common case —
        // a new event — pays no read for it.
        let mut use_cache = true;
        for _ in 0..MAX_ATTEMPTS {
            let plan = match self.resolve(event, use_cache).await {
                Ok(p) => p,
                Err(Resolve::Stale) => {
                    use_cache = false;
                    continue;
                }
                Err(Resolve::Failed(e)) => return Err(e),
            };
            let Plan { mut lead, version, claims, merge, release } = plan;
            let model = core.engine.model();
            // Report counters: the facts the stored leads contribute now, taken away below
            // from the facts of the lead as committed.
            let mut before = std::collections::BTreeMap::new();
            if version.is_some() {
                ember_reports::facts::add_facts(model, &lead, -1, &mut before);
            }
            // What the lead's traits weigh before this event (the larger profile of a merge):
            // an event may not make them grow past the limit (SPEC §3).
            let traits_before = match &merge {
                Some(from) if ember_scoring::limits::json_size(&from.lead.traits) > ember_scoring::limits::json_size(&lead.traits) => {
                    from.lead.traits.clone()
                }
                _ => lead.traits.clone(),
            };
            let anonymous_before = lead.anonymous_ids.len().max(merge.as_ref().map_or(0, |m| m.lead.anonymous_ids.len()));
            let mut retire = None;
            let mut changes = Vec::new();
            if let Some(from) = merge {
                ember_reports::facts::add_facts(model, &from.lead, -1, &mut before);
                retire = Some((from.lead.id.clone(), from.version));
                changes.extend(core.engine.merge(&mut lead, from.lead, event.at).changes);
            }
            changes.extend(core.engine.ingest(&mut lead, event).changes);
            let bounded = ember_scoring::limits::check_lead_traits(&traits_before, &lead.traits)
                .and_then(|_| ember_scoring::limits::check_anonymous_ids(anonymous_before, lead.anonymous_ids.len()));
            if let Err(reason) = bounded {
                return Ok(IngestStatus::Rejected { event_id: Some(event.id.clone()), reason });
            }
            let received_at = core.clock.now();
            let entry = StoredEvent { event: event.clone(), lead_id: lead.id.clone(), changes, received_at };
            let mut commit = core.commit_from_facts(before, version, lead, vec![entry]);
            commit.claims = claims;
            commit.retire = retire;
            commit.release = release;
            let lead_id = commit.lead.id.clone();
            let lead_after = commit.lead.clone();
            let released = commit.release.as_ref().map(|r| r.identities.clone()).unwrap_or_default();
            match core.store.commit(commit).await {
                Ok(v) => {
                    for identity in &released {
                        core.identities.forget(identity);
                    }
                    core.identities.remember(&lead_after);
                    if !lead_after.outbox.is_empty() {
                        core.flush_outbox(LeadRecord { lead: lead_after, version: v }).await;
                    }
                    return Ok(IngestStatus::Accepted { event_id: event.id.clone(), lead_id });
                }
                Err(StoreError::Duplicate(_)) => return Ok(IngestStatus::Duplicate { event_id: event.id.clone() }),
                Err(StoreError::Conflict(_)) => {
                    // Someone else changed the lead (or re-pointed an identity): start again
                    // from the store's identity items.
                    use_cache = false;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Contention(MAX_ATTEMPTS))
    }

    /// The lead an identity points at: the cached hint when allowed, else the store's.
    async fn lookup(&self, identity: &Identity, use_cache: bool) -> Result<(Option<String>, bool), ServiceError> {
        if use_cache {
            if let Some(id) = self.core.identities.get(identity) {
                return Ok((Some(id), true));
            }
        }
        Ok((self.core.store.lookup(identity).await?, false))
    }

    /// Decides which lead the event goes to, what identities to claim, and what to merge.
    async fn resolve(&self, e: &Event, use_cache: bool) -> Result<Plan, Resolve> {
        let email = e.email.clone().map(Identity::Email);
        let anon = e.anonymous_id.clone().map(Identity::Anonymous);
        let (by_email, email_hint) = match &email {
            Some(m) => self.lookup(m, use_cache).await?,
            None => (None, false),
        };
        let (by_anon, anon_hint) = match &anon {
            Some(a) => self.lookup(a, use_cache).await?,
            None => (None, false),
        };
        // A lead found through an identity must still hold it. For a cached hint, a lead that
        // does not is a stale hint; for the store's identity item, the identity moved between
        // the look-up and the read (a cookie that followed another person): either way
        // resolution starts again from the store. Once the lead is read, its version guards
        // the commit: moving an identity away changes the previous owner's version.
        let found = [(email_hint, email.clone(), by_email.clone()), (anon_hint, anon.clone(), by_anon.clone())];
        let load = |id: String| {
            let found = &found;
            async move {
                let rec = self.core.store.get(&id).await.map_err(|e| Resolve::Failed(e.into()))?;
                for (hint, identity, target) in found.iter() {
                    let (Some(identity), Some(target)) = (identity, target) else { continue };
                    if *target != id || rec.as_ref().is_some_and(|r| crate::identity_cache::holds(&r.lead, identity)) {
                        continue;
                    }
                    if *hint {
                        self.core.identities.forget(identity);
                        return Err(Resolve::Stale);
                    }
                    // Read the identity again: if it still names this lead, the item is
                    // what counts (a lead whose document never listed it).
                    let now = self.core.store.lookup(identity).await.map_err(|e| Resolve::Failed(e.into()))?;
                    if now.as_deref() != Some(id.as_str()) {
                        return Err(Resolve::Stale);
                    }
                }
                rec.ok_or_else(|| Resolve::Failed(ServiceError::Store(StoreError::Conflict(format!("lead {id} vanished")))))
            }
        };
        let anon_claim = |owner: Option<String>| e.anonymous_id.clone().map(|a| Claim { identity: Identity::Anonymous(a), expected_owner: owner });
        match (by_email, by_anon) {
            (Some(a), Some(b)) if a == b => {
                let rec = load(a).await?;
                Ok(Plan { lead: rec.lead, version: Some(rec.version), claims: vec![], merge: None, release: None })
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
                    Ok(Plan { lead: target.lead, version: Some(target.version), claims, merge: Some(other), release: None })
                } else {
                    // A shared browser: the cookie now belongs to this person; nothing is
                    // merged, and the other person's lead gives the cookie up.
                    Ok(Plan {
                        lead: target.lead,
                        version: Some(target.version),
                        claims: anon_claim(Some(b)).into_iter().collect(),
                        merge: None,
                        release: release(other, anon.as_ref()),
                    })
                }
            }
            (Some(a), None) => {
                let rec = load(a).await?;
                Ok(Plan { lead: rec.lead, version: Some(rec.version), claims: anon_claim(None).into_iter().collect(), merge: None, release: None })
            }
            (None, Some(b)) => {
                let rec = load(b.clone()).await?;
                match (&e.email, &rec.lead.email) {
                    (Some(email), None) => {
                        // The anonymous profile is identified.
                        let claims = vec![Claim { identity: Identity::Email(email.clone()), expected_owner: None }];
                        Ok(Plan { lead: rec.lead, version: Some(rec.version), claims, merge: None, release: None })
                    }
                    (Some(email), Some(_)) => {
                        // Someone else on a browser known as another lead: a new lead, and the
                        // cookie follows the person who just identified (the other lead gives
                        // it up in the same commit).
                        let lead = self.core.engine.new_lead(new_lead_id(), e.at);
                        let mut claims = vec![Claim { identity: Identity::Email(email.clone()), expected_owner: None }];
                        claims.extend(anon_claim(Some(b)));
                        Ok(Plan { lead, version: None, claims, merge: None, release: release(rec, anon.as_ref()) })
                    }
                    (None, _) => Ok(Plan { lead: rec.lead, version: Some(rec.version), claims: vec![], merge: None, release: None }),
                }
            }
            (None, None) => {
                let lead = self.core.engine.new_lead(new_lead_id(), e.at);
                let mut claims: Vec<Claim> = Vec::new();
                if let Some(m) = &e.email {
                    claims.push(Claim { identity: Identity::Email(m.clone()), expected_owner: None });
                }
                claims.extend(anon_claim(None));
                Ok(Plan { lead, version: None, claims, merge: None, release: None })
            }
        }
    }
}

/// The previous owner of a cookie giving it up: its stored state without the cookie.
fn release(mut owner: LeadRecord, cookie: Option<&Identity>) -> Option<Release> {
    let identity = cookie?.clone();
    if let Identity::Anonymous(a) = &identity {
        owner.lead.anonymous_ids.retain(|x| x != a);
    }
    Some(Release { lead: owner.lead, expected_version: owner.version, identities: vec![identity] })
}

/// Why a resolution did not produce a plan.
enum Resolve {
    /// A cached hint was stale: resolve again from the store.
    Stale,
    /// The store failed: the event is not applied and the error goes to the caller.
    Failed(ServiceError),
}

impl From<ServiceError> for Resolve {
    fn from(e: ServiceError) -> Resolve {
        Resolve::Failed(e)
    }
}

struct Plan {
    lead: Lead,
    version: Option<u64>,
    claims: Vec<Claim>,
    merge: Option<LeadRecord>,
    release: Option<Release>,
}
