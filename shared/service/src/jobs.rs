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
    /// Sends the provider refused for the sending account's configuration (an unverified
    /// sender, the SES sandbox, sending paused): each step is kept and tried again later; an
    /// operator must act, so the scheduled function reports the run as failed.
    #[serde(default)]
    pub blocked: u64,
    /// Stopped early because the budget ran out (more is due).
    pub incomplete: bool,
}

impl JobReport {
    fn add(&mut self, o: &JobReport) {
        self.processed += o.processed;
        self.read += o.read;
        self.sent += o.sent;
        self.failed += o.failed;
        self.blocked += o.blocked;
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
                    DueKind::Decay => self.change_lead(lead_id, now, "decay", |e, l| e.decay(l, now)).await.map(|_| Sends::default()),
                    DueKind::Sla => self.change_lead(lead_id, now, "sla", |e, l| e.check_sla(l, now)).await.map(|_| Sends::default()),
                    DueKind::Drip => self.drip_lead(lead_id, now).await,
                };
                match r {
                    Ok(sends) => {
                        report.processed += 1;
                        report.sent += sends.sent;
                        report.blocked += sends.blocked;
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
    /// and carry on while steps are due.
    ///
    /// Sends happen now, so the steps are judged at the real time — the later of `now` (a
    /// schedule's time, which a retried or delayed invocation carries unchanged) and the
    /// clock: quiet hours and the frequency cap hold for the moment the email really leaves.
    ///
    /// Each claim carries a fresh token. When the claim commit fails without a clear answer
    /// (its response lost, or a retry of a write that had in fact succeeded reported as a
    /// conflict), the lead is read again: finding its own token, the run knows the claim is
    /// its own and sends; finding none, it did not claim and sends nothing.
    async fn drip_lead(&self, lead_id: &str, now: Time) -> Result<Sends, ServiceError> {
        let now = now.max(self.clock.now());
        let mut sends = Sends::default();
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
                let Some(rec) = self.store.get(lead_id).await? else { return Ok(sends) };
                let mut lead = rec.lead.clone();
                let (intents, outcome) = self.engine.drip(&mut lead, now);
                if lead == rec.lead {
                    return Ok(sends);
                }
                let token = uuid::Uuid::now_v7().simple().to_string();
                mark_claims(&mut lead, &intents, &token);
                let events = system_entry(&lead, "drip", now, outcome.changes, self.clock.now());
                let tallies = ember_reports::tallies(self.engine.model(), Some(&rec.lead), &lead, None);
                let commit = Commit { due: self.engine.due(&lead), lead, expected_version: Some(rec.version), events, claims: vec![], retire: None, release: None, tallies };
                let lead_after = commit.lead.clone();
                let written = match self.store.commit(commit).await {
                    Ok(v) => Some(LeadRecord { lead: lead_after, version: v }),
                    Err(StoreError::Conflict(_)) if intents.is_empty() => None,
                    Err(StoreError::Conflict(_)) => self.own_claim(lead_id, &token).await?,
                    Err(e) if intents.is_empty() => return Err(e.into()),
                    Err(e) => match self.own_claim(lead_id, &token).await {
                        Ok(Some(rec)) => Some(rec),
                        _ => return Err(e.into()),
                    },
                };
                if let Some(rec) = written {
                    claimed = Some((self.flush_outbox(rec).await, intents));
                    break;
                }
            }
            let Some((rec, intents)) = claimed else { return Err(ServiceError::Contention(MAX_ATTEMPTS)) };
            if intents.is_empty() {
                return Ok(sends);
            }
            fail::fail_point!("drip-after-claim", |_| crate::failpoints::kill_self());
            // 2. Send what was claimed, then record each outcome.
            let mut not_sent = false;
            for intent in intents {
                let outcome = match self.composer.compose(&intent, &rec.lead) {
                    Ok(email) => self.mailer.send(&email).await,
                    Err(reason) => ember_scoring::SendOutcome::Rejected { reason },
                };
                fail::fail_point!("drip-after-send", |_| crate::failpoints::kill_self());
                match outcome {
                    ember_scoring::SendOutcome::Sent { .. } => sends.sent += 1,
                    ember_scoring::SendOutcome::Blocked { .. } => sends.blocked += 1,
                    _ => {}
                }
                not_sent |= matches!(outcome, ember_scoring::SendOutcome::Retry { .. } | ember_scoring::SendOutcome::Blocked { .. });
                let send_id = intent.send_id.clone();
                self.change_lead(lead_id, now, "send", |e, l| e.send_done(l, &send_id, &outcome, now)).await?;
                fail::fail_point!("drip-after-commit", |_| crate::failpoints::kill_self());
            }
            if not_sent {
                // A send to try again later (throttled, unreachable, account blocked) waits for
                // a later run: trying it again in this pass would call the provider again at
                // once, and again, up to the pass limit.
                return Ok(sends);
            }
        }
        Ok(sends)
    }

    /// The lead as stored, when it holds a claim made with `token` (the claim commit went
    /// through even though its answer did not come back).
    async fn own_claim(&self, lead_id: &str, token: &str) -> Result<Option<LeadRecord>, ServiceError> {
        let Some(rec) = self.store.get(lead_id).await? else { return Ok(None) };
        let ours = rec.lead.enrollments.iter().filter_map(|e| e.pending_send.as_ref()).any(|p| p.claim == token);
        if ours {
            tracing::info!(lead_id = %lead_id, "the claim commit's answer was lost, but the claim is ours: sending");
        }
        Ok(ours.then_some(rec))
    }
}

/// Emails one drip pass sent, and sends refused for the account's configuration.
#[derive(Debug, Clone, Copy, Default)]
struct Sends {
    sent: u64,
    blocked: u64,
}

/// Writes the claiming run's `token` into the claims of `intents`.
fn mark_claims(lead: &mut Lead, intents: &[ember_scoring::SendIntent], token: &str) {
    for p in lead.enrollments.iter_mut().filter_map(|e| e.pending_send.as_mut()) {
        if intents.iter().any(|i| i.send_id == p.send_id) {
            p.claim = token.to_string();
        }
    }
}

/// A timeline entry for a change Ember made itself (decay, SLA, drip, CRM feedback).
pub(crate) fn system_entry(lead: &Lead, what: &str, at: Time, changes: Vec<Change>, received_at: Time) -> Vec<StoredEvent> {
    if changes.is_empty() {
        return Vec::new();
    }
    let id = format!("sys:{}:{}:{}:{}", lead.id, what, at.timestamp_millis(), uuid::Uuid::now_v7().simple());
    vec![StoredEvent { event: system_event(id, what, at), lead_id: lead.id.clone(), changes, received_at }]
}

/// The event of a timeline entry Ember records itself (kind `ember.WHAT`), under `id`.
pub(crate) fn system_event(id: String, what: &str, at: Time) -> Event {
    Event {
        id,
        kind: format!("ember.{what}"),
        at,
        email: None,
        anonymous_id: None,
        traits: Default::default(),
        properties: Default::default(),
        channel: None,
        machine: false,
    }
}
