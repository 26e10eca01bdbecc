//! Feedback from outside: the CRM (accepted, rejected, recycled, opportunity, won, lost) and
//! the email provider (delivered, opened, clicked, bounced, complained).

use crate::compose::Composer;
use crate::core::{change_lead, Core, Decision, Failure, ServiceError, Updated};
use crate::ingest::{Ingest, IngestStatus};
use crate::ports::{Identity, StoreError, StoredEvent};
use ember_scoring::{CrmAction, Lead, RawEvent, Time};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::sync::Arc;

/// A CRM feedback request (`POST /v1/crm/feedback`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrmFeedback {
    /// The lead's Ember id (`ld_…`); wins over `email` when both are given.
    #[serde(default)]
    pub lead_id: Option<String>,
    /// The lead's email, looked up when `lead_id` is absent (one of the two is required).
    #[serde(default)]
    pub email: Option<String>,
    /// `accepted | rejected | recycled | opportunity | won | lost`.
    pub action: String,
    /// Deal amount (won, lost).
    #[serde(default)]
    pub amount: Option<f64>,
    /// Free-text reason.
    #[serde(default)]
    pub reason: Option<String>,
}

/// What [`Feedback::crm_once`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedbackOutcome {
    /// Applied now; the lead after it.
    Applied(Lead),
    /// This request was applied before: nothing changed; the lead as it is.
    Duplicate(Lead),
}

impl FeedbackOutcome {
    /// The lead as stored after the request, whether it applied now or earlier.
    pub fn lead(&self) -> &Lead {
        match self {
            FeedbackOutcome::Applied(l) | FeedbackOutcome::Duplicate(l) => l,
        }
    }
}

/// The id of the timeline entry that records a feedback request (`sys:crm:` and the first 128
/// bits of the SHA-256 of its idempotency key, in hex): written in the same atomic commit as
/// the lead change, under the store's "each event id once" rule, so the same request applies
/// once however often and however concurrently it arrives.
pub fn feedback_entry_id(idempotency_key: &str) -> String {
    let digest = sha2::Sha256::digest(idempotency_key.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("sys:crm:{hex}")
}

/// The feedback use case: what the CRM, the email provider and the recipient (unsubscribe
/// links) say about a lead.
#[derive(Clone)]
pub struct Feedback {
    pub(crate) core: Arc<Core>,
    pub(crate) ingest: Ingest,
    pub(crate) composer: Arc<Composer>,
}

impl Feedback {
    /// Applies CRM feedback at the current time; returns the updated lead. Each call applies
    /// (no idempotency key): see [`Feedback::crm_once`] for requests that may be replayed.
    pub async fn crm(&self, fb: &CrmFeedback) -> Result<Lead, ServiceError> {
        let (action, lead_id) = self.feedback_target(fb).await?;
        let now = self.core.clock.now();
        let reason = fb.reason.clone();
        let what = format!("crm.{}", action.name());
        let rec = change_lead(&self.core, &lead_id, now, &what, |e, l| e.crm_feedback(l, &action, reason.as_deref(), now))
            .await?
            .ok_or(ServiceError::NotFound)?;
        Ok(rec.lead)
    }

    /// Applies CRM feedback once per `idempotency_key` (a signed request's `webhook-id`): the
    /// change and its timeline entry ([`feedback_entry_id`]) are one atomic commit, so a
    /// replay — sequential or concurrent — is answered [`FeedbackOutcome::Duplicate`] and
    /// changes nothing (no second recycle, score reset or webhook). The entry is recorded even
    /// when the feedback changes nothing, so a later replay stays a duplicate.
    pub async fn crm_once(&self, fb: &CrmFeedback, idempotency_key: &str) -> Result<FeedbackOutcome, ServiceError> {
        if idempotency_key.trim().is_empty() {
            return Err(ServiceError::Invalid("the feedback needs an idempotency key (`webhook-id`)".into()));
        }
        let core = &self.core;
        let entry_id = feedback_entry_id(idempotency_key);
        if core.store.seen(&entry_id).await? {
            return self.duplicate(fb).await;
        }
        let (action, lead_id) = self.feedback_target(fb).await?;
        let what = format!("crm.{}", action.name());
        let decide = |rec: &crate::ports::LeadRecord| {
            let now = core.clock.now();
            let mut lead = rec.lead.clone();
            let outcome = core.engine.crm_feedback(&mut lead, &action, fb.reason.as_deref(), now);
            let events = vec![feedback_entry(&entry_id, &lead.id, &what, now, outcome.changes, core.clock.now())];
            Decision::Write { lead, events, carry: () }
        };
        // The entry already there means this request was applied: by an earlier call, or by the
        // concurrent one whose commit made this one conflict.
        let entry = &entry_id;
        let on_failure = |e: StoreError, _: &()| async move {
            match e {
                StoreError::Duplicate(_) => Ok(Failure::Stop(e)),
                StoreError::Conflict(_) if core.store.seen(entry).await? => Ok(Failure::Stop(e)),
                e => Failure::of_conflict(e),
            }
        };
        match core.update_lead(&lead_id, decide, on_failure).await? {
            None => Err(ServiceError::NotFound),
            Some(Updated::Written(rec, ()) | Updated::Kept(rec, ())) => Ok(FeedbackOutcome::Applied(rec.lead)),
            Some(Updated::Refused(_)) => Ok(FeedbackOutcome::Duplicate(self.core.lead(&lead_id).await?.ok_or(ServiceError::NotFound)?)),
        }
    }

    /// The answer to a request already applied: the lead as it is now.
    async fn duplicate(&self, fb: &CrmFeedback) -> Result<FeedbackOutcome, ServiceError> {
        let (_, lead_id) = self.feedback_target(fb).await?;
        Ok(FeedbackOutcome::Duplicate(self.core.lead(&lead_id).await?.ok_or(ServiceError::NotFound)?))
    }

    /// The action of a request (amount checked) and the lead it names.
    async fn feedback_target(&self, fb: &CrmFeedback) -> Result<(CrmAction, String), ServiceError> {
        let action = CrmAction::parse(&fb.action, fb.amount).map_err(ServiceError::Invalid)?;
        let lead_id = match (&fb.lead_id, &fb.email) {
            (Some(id), _) => id.clone(),
            (None, Some(email)) => {
                let email = ember_scoring::event::normalize_email(email).map_err(ServiceError::Invalid)?;
                self.core.store.lookup(&Identity::Email(email)).await?.ok_or(ServiceError::NotFound)?
            }
            (None, None) => return Err(ServiceError::Invalid("give `lead_id` or `email`".into())),
        };
        Ok((action, lead_id))
    }

    /// Applies an email event reported by the provider (`email_delivered`, `email_open`,
    /// `email_click`, `email_bounced`, `email_complaint`) to the lead it was sent to. Only a
    /// lead that exists is touched: an event about an erased or unknown address creates
    /// nothing (`Ok(None)`), so provider feedback can never bring an erased person back.
    /// Machine opens and clicks are recorded and earn nothing (the engine's rule).
    pub async fn email(&self, raw: &RawEvent) -> Result<Option<IngestStatus>, ServiceError> {
        // Ember's own path: the bounce and complaint types a write key may not send.
        let event = raw
            .validate_from(ember_scoring::event::Source::Ember, self.core.clock.now(), crate::ingest::new_event_id)
            .map_err(ServiceError::Invalid)?;
        let Some(email) = event.email.clone() else {
            return Err(ServiceError::Invalid("an email event needs the recipient's `email`".into()));
        };
        if self.core.store.lookup(&Identity::Email(email)).await?.is_none() {
            return Ok(None);
        }
        self.ingest.apply(&event).await.map(Some)
    }

    /// Unsubscribes the lead of a signed unsubscribe token (from an email's link or its
    /// one-click `List-Unsubscribe-Post`). Answers the lead, or `Invalid` for a token that is
    /// not ours and `NotFound` for a lead that no longer exists (erased). A repeated
    /// unsubscribe changes nothing (SPEC §3): a lead already unsubscribed since its last opt-in
    /// is answered as it is, and the `unsubscribe` event's id is derived from the lead and that
    /// opt-in, so concurrent clicks record (and score) one opt-out.
    pub async fn unsubscribe(&self, token: &str) -> Result<Lead, ServiceError> {
        let lead_id = self
            .composer
            .verify_unsubscribe(token)
            .ok_or_else(|| ServiceError::Invalid("this unsubscribe link is not valid".into()))?;
        let lead = self.core.lead(&lead_id).await?.ok_or(ServiceError::NotFound)?;
        let Some(email) = lead.email.clone() else { return Ok(lead) };
        let consent = &lead.consent;
        if consent.unsubscribed_at.is_some_and(|u| consent.opted_in_at.is_none_or(|o| u >= o)) {
            return Ok(lead);
        }
        let since = consent.opted_in_at.map_or(0, |t| t.timestamp_millis());
        let event = ember_scoring::Event {
            id: format!("sys:unsubscribe:{}:{since}", lead.id),
            kind: "unsubscribe".into(),
            at: self.core.clock.now(),
            email: Some(email.clone()),
            anonymous_id: None,
            traits: Default::default(),
            properties: [("via".to_string(), serde_json::json!("unsubscribe_link"))].into_iter().collect(),
            channel: None,
            machine: false,
        };
        self.ingest.apply(&event).await?;
        self.core.lead_by(&Identity::Email(email)).await?.ok_or(ServiceError::NotFound)
    }
}

/// The timeline entry of one feedback request (kind `ember.crm.ACTION`), under its fixed id.
fn feedback_entry(id: &str, lead_id: &str, what: &str, at: Time, changes: Vec<ember_scoring::Change>, received_at: Time) -> StoredEvent {
    let event = crate::core::system_event(id.to_string(), what, at);
    StoredEvent { event, lead_id: lead_id.to_string(), changes, received_at }
}
