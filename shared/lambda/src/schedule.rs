//! `decay` and `drip`: EventBridge Scheduler invocations.
//!
//! The schedule's target input is `{"job": "decay" | "drip", "scheduled_time":
//! "<aws.scheduler.scheduled-time>"}`; the scheduled time is the job's "now", so a delayed or
//! retried invocation computes exactly what it would have on time — except for what happens
//! at the moment it happens: an email leaves when the drip run sends it, so the drip job judges
//! each send (quiet hours, frequency cap) at the later of the scheduled time and the real time,
//! and a retry hours later never sends inside quiet hours. Work is read from the due
//! indexes page by page; the run stops before the invocation's deadline (minus
//! [`SAFETY_MARGIN`]) and leaves the rest due for the next run — a backlog is drained over
//! several runs, never lost or half-applied (each lead's change is one atomic commit).

use crate::AwsStack;
use ember_scoring::Time;
pub use ember_service::Job;
use ember_service::JobReport;
use ember_service::ports::DueKind;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Time kept free before the deadline: the lead in hand finishes, no new one starts.
pub const SAFETY_MARGIN: Duration = Duration::from_secs(10);

/// The Scheduler's input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invocation {
    /// Which job.
    pub job: Job,
    /// The schedule's time for this run (RFC 3339).
    pub scheduled_time: Time,
}

/// What a run did, per due kind.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunReport {
    /// Which job.
    pub job: Option<Job>,
    /// Its "now".
    pub now: Option<Time>,
    /// Decay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decay: Option<JobReport>,
    /// Drip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drip: Option<JobReport>,
    /// SLA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sla: Option<JobReport>,
}

impl RunReport {
    /// Sends the provider refused for the sending account's configuration (unverified sender,
    /// sandbox, sending paused): the steps are kept, and the invocation reports an error so
    /// that the function's error alarm tells an operator.
    pub fn blocked(&self) -> u64 {
        [&self.decay, &self.drip, &self.sla].into_iter().flatten().map(|r| r.blocked).sum()
    }
}

/// Runs the job of `inv` until done or until `deadline - SAFETY_MARGIN`.
pub async fn run(stack: &AwsStack, inv: &Invocation, deadline: Instant) -> RunReport {
    let stop_at = deadline.checked_sub(SAFETY_MARGIN).unwrap_or(deadline);
    let keep_going = move || Instant::now() < stop_at;
    let now = inv.scheduled_time;
    let mut report = RunReport { job: Some(inv.job), now: Some(now), ..RunReport::default() };
    for (kind, r) in stack.ember.jobs.run(inv.job, now, &keep_going).await {
        match kind {
            DueKind::Decay => report.decay = Some(r),
            DueKind::Drip => report.drip = Some(r),
            DueKind::Sla => report.sla = Some(r),
        }
    }
    for (kind, r) in [("decay", &report.decay), ("drip", &report.drip), ("sla", &report.sla)] {
        if let Some(r) = r {
            tracing::info!(job = kind, processed = r.processed, read = r.read, sent = r.sent, failed = r.failed, blocked = r.blocked, incomplete = r.incomplete, "job run");
        }
    }
    report
}

/// The deadline of a Lambda invocation (`Context::deadline`, Unix milliseconds) as an instant.
pub fn deadline_from_millis(deadline_ms: u64) -> Instant {
    let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}
