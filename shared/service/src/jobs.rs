//! Scheduled jobs: decay, SLA and drip. Each reads only the leads that are due (through the
//! store's due indexes), page by page, and stops cleanly when the caller's budget runs out,
//! leaving the rest for the next run. Every lead is updated with the same optimistic
//! concurrency as ingest, so overlapping or retried runs are safe; sends are claimed before
//! the mailer is called and never sent twice.

use crate::app::{Ember, ServiceError, MAX_ATTEMPTS};
use crate::ports::{Commit, DueKind, LeadRecord, StoreError, StoredEvent};
use ember_scoring::engine::Change;
use ember_scoring::{Event, Lead, Outcome, Time};
use serde::{Deserialize, Serialize};

/// Leads read per page.
pub const PAGE: usize = 100;

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobReport {
    /// Leads due and processed.
    pub processed: u64,
    /// Index entries read.
    pub read: u64,
    /// Emails sent.
    pub sent: u64,
    /// Leads that failed (left due for the next run).
    pub failed: u64,
    /// Stopped early because the budget ran out (more is due).
    pub incomplete: bool,
}

impl JobReport {
    fn add(&mut self, o: &JobReport) {
        self.processed += o.processed;
        self.read += o.read;
        self.sent += o.sent;
        self.failed += o.failed;
        self.incomplete |= o.incomplete;
    }
}

impl Ember {
    /// Runs decay, then SLA, then drip, at `now`.
    pub async fn tick(&self, now: Time, keep_going: &(dyn Fn() -> bool + Sync)) -> JobReport {
        let mut total = JobReport::default();
        for kind in DueKind::ALL {
            total.add(&self.run_job(kind, now, keep_going).await);
        }
        total
    }

    /// Runs one job over every lead due at `now`, while `keep_going()` says so.
    pub async fn run_job(&self, kind: DueKind, now: Time, keep_going: &(dyn Fn() -> bool + Sync)) -> JobReport {
        let mut report = JobReport::default();
        let mut cursor = None;
        loop {
            if !keep_going() {
                report.incomplete = true;
                return report;
            }
            let page = match self.store.due(kind, now, cursor.clone(), PAGE).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(job = ?kind, error = %e, "due query failed");
                    report.failed += 1;
                    report.incomplete = true;
                    return report;
                }
            };
            report.read += page.read;
            for (lead_id, _) in &page.items {
                if !keep_going() {
                    report.incomplete = true;
                    return report;
                }
                let r = match kind {
                    DueKind::Decay => self.change_lead(lead_id, now, "decay", |e, l| e.decay(l, now)).await.map(|_| 0),
                    DueKind::Sla => self.change_lead(lead_id, now, "sla", |e, l| e.check_sla(l, now)).await.map(|_| 0),
                    DueKind::Drip => self.drip_lead(lead_id, now).await,
                };
                match r {
                    Ok(sent) => {
                        report.processed += 1;
                        report.sent += sent;
                    }
                    Err(e) => {
                        tracing::error!(job = ?kind, lead_id = %lead_id, error = %e, "job failed for lead");
                        report.failed += 1;
                    }
                }
            }
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => return report,
            }
        }
    }

    /// Applies a pure change to one lead and commits it (with a timeline entry when it did
    /// something), retrying on conflict; publishes what it queued.
    pub(crate) async fn change_lead(
        &self,
        lead_id: &str,
        now: Time,
        what: &str,
        f: impl Fn(&ember_scoring::Engine, &mut Lead) -> Outcome,
    ) -> Result<Option<LeadRecord>, ServiceError> {
        for _ in 0..MAX_ATTEMPTS {
            let Some(rec) = self.store.get(lead_id).await? else { return Ok(None) };
            let mut lead = rec.lead.clone();
            let outcome = f(&self.engine, &mut lead);
            if lead == rec.lead {
                return Ok(Some(rec));
            }
            let events = system_entry(&lead, what, now, outcome.changes, self.clock.now());
            let tallies = ember_reports::tallies(self.engine.model(), Some(&rec.lead), &lead, None);
            let commit = Commit { due: self.engine.due(&lead), lead, expected_version: Some(rec.version), events, claims: vec![], retire: None, release: None, tallies };
            let lead_after = commit.lead.clone();
            match self.store.commit(commit).await {
                Ok(v) => return Ok(Some(self.flush_outbox(LeadRecord { lead: lead_after, version: v }).await)),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Contention(MAX_ATTEMPTS))
    }

    /// Runs the drip steps of one lead: claim (commit), send, record the outcome (commit),
    /// and carry on while steps are due. Returns emails sent.
    async fn drip_lead(&self, lead_id: &str, now: Time) -> Result<u64, ServiceError> {
        let mut sent = 0;
        // Publish anything left in the outbox by an earlier failure.
        if let Some(rec) = self.store.get(lead_id).await? {
            if !rec.lead.outbox.is_empty() {
                self.flush_outbox(rec).await;
            }
        }
        for _ in 0..64 {
            // 1. Run due steps; claim the sends they produce.
            let mut claimed = None;
            for _ in 0..MAX_ATTEMPTS {
                let Some(rec) = self.store.get(lead_id).await? else { return Ok(sent) };
                let mut lead = rec.lead.clone();
                let (intents, outcome) = self.engine.drip(&mut lead, now);
                if lead == rec.lead {
                    return Ok(sent);
                }
                let events = system_entry(&lead, "drip", now, outcome.changes, self.clock.now());
                let tallies = ember_reports::tallies(self.engine.model(), Some(&rec.lead), &lead, None);
                let commit = Commit { due: self.engine.due(&lead), lead, expected_version: Some(rec.version), events, claims: vec![], retire: None, release: None, tallies };
                let lead_after = commit.lead.clone();
                match self.store.commit(commit).await {
                    Ok(v) => {
                        claimed = Some((self.flush_outbox(LeadRecord { lead: lead_after, version: v }).await, intents));
                        break;
                    }
                    Err(StoreError::Conflict(_)) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            let Some((rec, intents)) = claimed else { return Err(ServiceError::Contention(MAX_ATTEMPTS)) };
            if intents.is_empty() {
                return Ok(sent);
            }
            // 2. Send what was claimed, then record each outcome.
            for intent in intents {
                let outcome = match self.composer.compose(&intent, &rec.lead) {
                    Ok(email) => self.mailer.send(&email).await,
                    Err(reason) => ember_scoring::SendOutcome::Rejected { reason },
                };
                if matches!(outcome, ember_scoring::SendOutcome::Sent { .. }) {
                    sent += 1;
                }
                let send_id = intent.send_id.clone();
                self.change_lead(lead_id, now, "send", |e, l| e.send_done(l, &send_id, &outcome, now)).await?;
            }
        }
        Ok(sent)
    }
}

/// A timeline entry for a change Ember made itself (decay, SLA, drip, CRM feedback).
pub(crate) fn system_entry(lead: &Lead, what: &str, at: Time, changes: Vec<Change>, received_at: Time) -> Vec<StoredEvent> {
    if changes.is_empty() {
        return Vec::new();
    }
    let event = Event {
        id: format!("sys:{}:{}:{}:{}", lead.id, what, at.timestamp_millis(), uuid::Uuid::now_v7().simple()),
        kind: format!("ember.{what}"),
        at,
        email: None,
        anonymous_id: None,
        traits: Default::default(),
        properties: Default::default(),
        channel: None,
        machine: false,
    };
    vec![StoredEvent { event, lead_id: lead.id.clone(), changes, received_at }]
}
