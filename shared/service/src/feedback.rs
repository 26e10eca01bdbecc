//! CRM feedback: accepted, rejected, recycled, opportunity, won, lost.

use crate::app::{Ember, ServiceError};
use crate::ports::Identity;
use ember_scoring::{CrmAction, Lead};
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
}
