//! Scheduled jobs: decay, SLA and drip. Each reads only the leads that are due (through the
//! store's due indexes), page by page, and stops cleanly when the caller's budget runs out,
//! leaving the rest for the next run. Every lead is updated with the same optimistic
//! concurrency as ingest ([`Core::update_lead`]), so overlapping or retried runs are safe;
//! sends are claimed before the mailer is called and never sent twice.

use crate::compose::Composer;
use crate::core::{change_lead, system_entry, Core, Decision, Failure, ServiceError, Updated};
use crate::ports::{DueKind, LeadRecord, Mailer, StoreError};
use ember_scoring::{Lead, Time};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Leads read per page.
pub const PAGE: usize = 100;

/// A scheduled job: what one schedule (or one `ember dev` tick) runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Job {
    /// Decay of quiet leads.
    Decay,
    /// Sales SLA breaches, then the campaign steps that are due.
    Drip,
}

impl Job {
    /// Every job, in the order a tick runs them.
    pub const ALL: [Job; 2] = [Job::Decay, Job::Drip];

    /// The due indexes the job works through, in order. An SLA breach can recycle a lead and
    /// so change what its campaigns do next: it is judged before the drip steps.
    pub fn kinds(self) -> &'static [DueKind] {
        match self {
            Job::Decay => &[DueKind::Decay],
            Job::Drip => &[DueKind::Sla, DueKind::Drip],
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobReport {
    /// Leads due and processed.
    pub processed: u64,
    /// Due-index entries read, summed over pages (shows the run reads only what is due).
    pub read: u64,
    /// Emails the mailer accepted (outcome `sent`).
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

/// The scheduled jobs use case: decay, SLA checks and drip sends over the leads that are due.
#[derive(Clone)]
pub struct Jobs {
    pub(crate) core: Arc<Core>,
    pub(crate) mailer: Arc<dyn Mailer>,
    pub(crate) composer: Arc<Composer>,
}

impl Jobs {
    /// Runs every job ([`Job::ALL`]) at `now`: decay, then SLA, then drip.
    pub async fn tick(&self, now: Time, keep_going: &(dyn Fn() -> bool + Sync)) -> JobReport {
        let mut total = JobReport::default();
        for job in Job::ALL {
            for (_, r) in self.run(job, now, keep_going).await {
                total.add(&r);
            }
        }
        total
    }

    /// Runs one job at `now`, while `keep_going()` says so: a report per due kind, in order.
    pub async fn run(&self, job: Job, now: Time, keep_going: &(dyn Fn() -> bool + Sync)) -> Vec<(DueKind, JobReport)> {
        let mut reports = Vec::new();
        for &kind in job.kinds() {
            reports.push((kind, self.run_kind(kind, now, keep_going).await));
        }
        reports
    }

    /// Runs one job over every lead due at `now`, while `keep_going()` says so.
    pub async fn run_kind(&self, kind: DueKind, now: Time, keep_going: &(dyn Fn() -> bool + Sync)) -> JobReport {
        let mut report = JobReport::default();
        let mut cursor = None;
        loop {
            if !keep_going() {
                report.incomplete = true;
                return report;
            }
            let page = match self.core.store.due(kind, now, cursor.clone(), PAGE).await {
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
                    DueKind::Decay => change_lead(&self.core, lead_id, now, "decay", |e, l| e.decay(l, now)).await.map(|_| Sends::default()),
                    DueKind::Sla => change_lead(&self.core, lead_id, now, "sla", |e, l| e.check_sla(l, now)).await.map(|_| Sends::default()),
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
        let core = &self.core;
        let now = now.max(core.clock.now());
        let mut sends = Sends::default();
        // Publish anything left in the outbox by an earlier failure.
        if let Some(rec) = core.store.get(lead_id).await? {
            if !rec.lead.outbox.is_empty() {
                core.flush_outbox(rec).await;
            }
        }
        for _ in 0..64 {
            // 1. Run due steps; claim the sends they produce (each claim carries a fresh token).
            let decide = |rec: &LeadRecord| {
                let mut lead = rec.lead.clone();
                let (intents, outcome) = core.engine.drip(&mut lead, now);
                if lead == rec.lead {
                    return Decision::Keep((Vec::new(), String::new()));
                }
                let token = uuid::Uuid::now_v7().simple().to_string();
                mark_claims(&mut lead, &intents, &token);
                let events = system_entry(&lead, "drip", now, outcome.changes, core.clock.now());
                Decision::Write { lead, events, carry: (intents, token) }
            };
            // A claim commit that fails without a clear answer (its response lost, or a retry
            // of a write that had in fact succeeded reported as a conflict) may have gone
            // through: the lead read again tells (its own token there, or not).
            let on_failure = |e: StoreError, (intents, token): &(Vec<ember_scoring::SendIntent>, String)| {
                let (claimed, token) = (!intents.is_empty(), token.clone());
                async move {
                    if !claimed {
                        return Failure::of_conflict(e);
                    }
                    match e {
                        StoreError::Conflict(_) => Ok(self.own_claim(lead_id, &token).await?.map_or(Failure::Retry, Failure::Written)),
                        e => match self.own_claim(lead_id, &token).await {
                            Ok(Some(rec)) => Ok(Failure::Written(rec)),
                            _ => Err(e.into()),
                        },
                    }
                }
            };
            let (rec, intents) = match core.update_lead(lead_id, decide, on_failure).await? {
                None | Some(Updated::Kept(..)) => return Ok(sends),
                Some(Updated::Written(rec, (intents, _))) => (rec, intents),
                Some(Updated::Refused(e)) => return Err(e.into()),
            };
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
                change_lead(&self.core, lead_id, now, "send", |e, l| e.send_done(l, &send_id, &outcome, now)).await?;
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
        let Some(rec) = self.core.store.get(lead_id).await? else { return Ok(None) };
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
