//! Feedback from outside: the CRM (accepted, rejected, recycled, opportunity, won, lost) and
//! the email provider (delivered, opened, clicked, bounced, complained).

use crate::app::{Ember, ServiceError, MAX_ATTEMPTS};
use crate::ingest::IngestStatus;
use crate::ports::{Commit, Identity, StoreError, StoredEvent};
use ember_scoring::{CrmAction, Lead, RawEvent, Time};
use serde::{Deserialize, Serialize};
use sha2::Digest;

/// A feedback request (`POST /v1/crm/feedback`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// Lead id.
    #[serde(default)]
    pub lead_id: Option<String>,
    /// Or its email.
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

/// What [`Ember::crm_feedback_once`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedbackOutcome {
    /// Applied now; the lead after it.
    Applied(Lead),
    /// This request was applied before: nothing changed; the lead as it is.
    Duplicate(Lead),
}

impl FeedbackOutcome {
    /// The lead.
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

impl Ember {
    /// Applies CRM feedback at the current time; returns the updated lead. Each call applies
    /// (no idempotency key): see [`Ember::crm_feedback_once`] for requests that may be replayed.
    pub async fn crm_feedback(&self, fb: &Feedback) -> Result<Lead, ServiceError> {
        let (action, lead_id) = self.feedback_target(fb).await?;
        let now = self.clock.now();
        let reason = fb.reason.clone();
        let rec = self
            .change_lead(&lead_id, now, &format!("crm.{}", action.name()), |e, l| e.crm_feedback(l, &action, reason.as_deref(), now))
            .await?
            .ok_or(ServiceError::NotFound)?;
        Ok(rec.lead)
    }

    /// Applies CRM feedback once per `idempotency_key` (a signed request's `webhook-id`): the
    /// change and its timeline entry ([`feedback_entry_id`]) are one atomic commit, so a
    /// replay — sequential or concurrent — is answered [`FeedbackOutcome::Duplicate`] and
    /// changes nothing (no second recycle, score reset or webhook). The entry is recorded even
    /// when the feedback changes nothing, so a later replay stays a duplicate.
    pub async fn crm_feedback_once(&self, fb: &Feedback, idempotency_key: &str) -> Result<FeedbackOutcome, ServiceError> {
        if idempotency_key.trim().is_empty() {
            return Err(ServiceError::Invalid("the feedback needs an idempotency key (`webhook-id`)".into()));
        }
        let entry_id = feedback_entry_id(idempotency_key);
        if self.store.seen(&entry_id).await? {
            return self.duplicate(fb).await;
        }
        let (action, lead_id) = self.feedback_target(fb).await?;
        let what = format!("crm.{}", action.name());
        for _ in 0..MAX_ATTEMPTS {
            let now = self.clock.now();
            let Some(rec) = self.store.get(&lead_id).await? else { return Err(ServiceError::NotFound) };
            let mut lead = rec.lead.clone();
            let outcome = self.engine.crm_feedback(&mut lead, &action, fb.reason.as_deref(), now);
            let tallies = ember_reports::tallies(self.engine.model(), Some(&rec.lead), &lead, None);
            let events = vec![feedback_entry(&entry_id, &lead.id, &what, now, outcome.changes, self.clock.now())];
            let commit = Commit { due: self.engine.due(&lead), lead, expected_version: Some(rec.version), events, claims: vec![], retire: None, release: None, tallies };
            let lead_after = commit.lead.clone();
            match self.store.commit(commit).await {
                Ok(v) => {
                    let rec = self.flush_outbox(crate::ports::LeadRecord { lead: lead_after, version: v }).await;
                    return Ok(FeedbackOutcome::Applied(rec.lead));
                }
                Err(StoreError::Duplicate(_)) => return Ok(FeedbackOutcome::Duplicate(self.lead(&lead_id).await?.ok_or(ServiceError::NotFound)?)),
                Err(StoreError::Conflict(_)) => {
                    // Another writer got there first — maybe the same request: check before trying again.
                    if self.store.seen(&entry_id).await? {
                        return self.duplicate(fb).await;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Contention(MAX_ATTEMPTS))
    }

    /// The answer to a request already applied: the lead as it is now.
    async fn duplicate(&self, fb: &Feedback) -> Result<FeedbackOutcome, ServiceError> {
        let (_, lead_id) = self.feedback_target(fb).await?;
        Ok(FeedbackOutcome::Duplicate(self.lead(&lead_id).await?.ok_or(ServiceError::NotFound)?))
    }

    /// The action of a request (amount checked) and the lead it names.
    async fn feedback_target(&self, fb: &Feedback) -> Result<(CrmAction, String), ServiceError> {
        let action = CrmAction::parse(&fb.action, fb.amount).map_err(ServiceError::Invalid)?;
        let lead_id = match (&fb.lead_id, &fb.email) {
            (Some(id), _) => id.clone(),
            (None, Some(email)) => {
                let email = ember_scoring::event::normalize_email(email).map_err(ServiceError::Invalid)?;
                self.store.lookup(&Identity::Email(email)).await?.ok_or(ServiceError::NotFound)?
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
    pub async fn email_feedback(&self, raw: &RawEvent) -> Result<Option<IngestStatus>, ServiceError> {
        // Ember's own path: the bounce and complaint types a write key may not send.
        let event = raw
            .validate_from(ember_scoring::event::Source::Ember, self.clock.now(), crate::ingest::new_event_id)
            .map_err(ServiceError::Invalid)?;
        let Some(email) = event.email.clone() else {
            return Err(ServiceError::Invalid("an email event needs the recipient's `email`".into()));
        };
        if self.store.lookup(&Identity::Email(email)).await?.is_none() {
            return Ok(None);
        }
        self.apply_event(&event).await.map(Some)
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
        let lead = self.lead(&lead_id).await?.ok_or(ServiceError::NotFound)?;
        let Some(email) = lead.email.clone() else { return Ok(lead) };
        let consent = &lead.consent;
        if consent.unsubscribed_at.is_some_and(|u| consent.opted_in_at.is_none_or(|o| u >= o)) {
            return Ok(lead);
        }
        let since = consent.opted_in_at.map_or(0, |t| t.timestamp_millis());
        let event = ember_scoring::Event {
            id: format!("sys:unsubscribe:{}:{since}", lead.id),
            kind: "unsubscribe".into(),
            at: self.clock.now(),
            email: Some(email.clone()),
            anonymous_id: None,
            traits: Default::default(),
            properties: [("via".to_string(), serde_json::json!("unsubscribe_link"))].into_iter().collect(),
            channel: None,
            machine: false,
        };
        self.apply_event(&event).await?;
        self.lead_by(&Identity::Email(email)).await?.ok_or(ServiceError::NotFound)
    }

    /// Erases a lead: every item holding the person's data is removed (see
    /// [`crate::ports::Store::erase`]), then every copy of what was sent about it or about the
    /// profiles merged into it (outbox, recorded webhooks, dead letters: see
    /// [`Ember::with_copies`]); aggregate counts are kept. `false`: no such lead in the store.
    /// The copies are erased even then, so a repeated request finishes an erasure whose copies
    /// failed the first time.
    pub async fn erase(&self, lead_id: &str) -> Result<bool, ServiceError> {
        let mut ids = vec![lead_id.to_string()];
        if !self.copies.is_empty() {
            if let Some(rec) = self.store.get(lead_id).await? {
                ids.extend(rec.lead.merged_from.iter().filter(|m| *m != lead_id).cloned());
            }
        }
        let existed = self.store.erase(lead_id).await?;
        for copies in &self.copies {
            let removed = copies.erase_leads(&ids).await?;
            if removed > 0 {
                tracing::info!(lead_id, removed, "erased copies outside the store");
            }
        }
        Ok(existed)
    }
}

/// The timeline entry of one feedback request (kind `ember.crm.ACTION`), under its fixed id.
fn feedback_entry(id: &str, lead_id: &str, what: &str, at: Time, changes: Vec<ember_scoring::Change>, received_at: Time) -> StoredEvent {
    let event = crate::jobs::system_event(id.to_string(), what, at);
    StoredEvent { event, lead_id: lead_id.to_string(), changes, received_at }
}
