//! Feedback from outside: the CRM (accepted, rejected, recycled, opportunity, won, lost) and
//! the email provider (delivered, opened, clicked, bounced, complained).

use crate::app::{Ember, ServiceError};
use crate::ingest::IngestStatus;
use crate::ports::Identity;
use ember_scoring::{CrmAction, Lead, RawEvent};
use serde::{Deserialize, Serialize};

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

impl Ember {
    /// Applies CRM feedback at the current time; returns the updated lead.
    pub async fn crm_feedback(&self, fb: &Feedback) -> Result<Lead, ServiceError> {
        let action = CrmAction::parse(&fb.action, fb.amount).map_err(ServiceError::Invalid)?;
        let lead_id = match (&fb.lead_id, &fb.email) {
            (Some(id), _) => id.clone(),
            (None, Some(email)) => {
                let email = ember_scoring::event::normalize_email(email).map_err(ServiceError::Invalid)?;
                self.store.lookup(&Identity::Email(email)).await?.ok_or(ServiceError::NotFound)?
            }
            (None, None) => return Err(ServiceError::Invalid("give `lead_id` or `email`".into())),
        };
        let now = self.clock.now();
        let reason = fb.reason.clone();
        let rec = self
            .change_lead(&lead_id, now, &format!("crm.{}", action.name()), |e, l| e.crm_feedback(l, &action, reason.as_deref(), now))
            .await?
            .ok_or(ServiceError::NotFound)?;
        Ok(rec.lead)
    }

    /// Applies an email event reported by the provider (`email_delivered`, `email_open`,
    /// `email_click`, `email_bounced`, `email_complaint`) to the lead it was sent to. Only a
    /// lead that exists is touched: an event about an erased or unknown address creates
    /// nothing (`Ok(None)`), so provider feedback can never bring an erased person back.
    /// Machine opens and clicks are recorded and earn nothing (the engine's rule).
    pub async fn email_feedback(&self, raw: &RawEvent) -> Result<Option<IngestStatus>, ServiceError> {
        let event = raw.validate(self.clock.now(), crate::ingest::new_event_id).map_err(ServiceError::Invalid)?;
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
    /// not ours and `NotFound` for a lead that no longer exists (erased). Repeating it is
    /// harmless: the engine keeps the first opt-out.
    pub async fn unsubscribe(&self, token: &str) -> Result<Lead, ServiceError> {
        let lead_id = self
            .composer
            .verify_unsubscribe(token)
            .ok_or_else(|| ServiceError::Invalid("this unsubscribe link is not valid".into()))?;
        let lead = self.lead(&lead_id).await?.ok_or(ServiceError::NotFound)?;
        let Some(email) = lead.email.clone() else { return Ok(lead) };
        let event = ember_scoring::Event {
            id: crate::ingest::new_event_id(),
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
