//! Erasure (the right to be forgotten): the person's data leaves the store and every copy of
//! what was sent about them outside it; the report counters they contributed stay, anonymous.

use crate::core::{Core, ServiceError};
use crate::ports::{ErasureScope, PersonalCopies};
use std::sync::Arc;

/// The erasure use case.
#[derive(Clone)]
pub struct Erasure {
    pub(crate) core: Arc<Core>,
    /// Places outside the store that keep copies of sent data (outbox, recorded webhooks,
    /// dead letters).
    pub(crate) copies: Vec<Arc<dyn PersonalCopies>>,
}

impl Erasure {
    /// Erases a lead: every item holding the person's data is removed (see
    /// [`crate::ports::Store::erase`]), then every copy of what was sent about it or about the
    /// profiles merged into it (outbox, recorded webhooks, dead letters: see
    /// [`crate::Ember::with_copies`]); aggregate counts are kept. `false`: no such lead in the
    /// store. The copies are erased even then, so a repeated request finishes an erasure whose
    /// copies failed the first time.
    pub async fn erase(&self, lead_id: &str) -> Result<bool, ServiceError> {
        let store = &self.core.store;
        let mut ids = vec![lead_id.to_string()];
        if !self.copies.is_empty() {
            if let Some(rec) = store.get(lead_id).await? {
                ids = ErasureScope::of(&rec.lead).lead_ids;
            }
        }
        let existed = store.erase(lead_id).await?;
        for copies in &self.copies {
            let removed = copies.erase_leads(&ids).await?;
            if removed > 0 {
                tracing::info!(lead_id, removed, "erased copies outside the store");
            }
        }
        Ok(existed)
    }
}
