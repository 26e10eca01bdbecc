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
}
