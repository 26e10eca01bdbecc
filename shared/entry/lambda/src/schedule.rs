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

use crate::AwsServices;
use crate::edge::Retry;
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
    /// `decay`, or `drip` (SLA breaches, then campaign steps), as the schedule's input names it.
    pub job: Job,
    /// The schedule's time for this run (RFC 3339).
    pub scheduled_time: Time,
}

/// What a run did, per due kind.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunReport {
    /// The invocation's job (`None` only in a default report).
    pub job: Option<Job>,
    /// The invocation's `scheduled_time`, used as "now" for every due query of the run.
    pub now: Option<Time>,
    /// The decay pass; `None` when the job has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decay: Option<JobReport>,
    /// The campaign-step pass; `None` when the job has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drip: Option<JobReport>,
    /// The SLA pass; `None` when the job has none.
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

    /// The invocation's result: the report, or [`Blocked`] when SES refused any send.
    pub fn outcome(self) -> Result<RunReport, Blocked> {
        match self.blocked() {
            0 => Ok(self),
            n => Err(Blocked(n)),
        }
    }
}

/// Everything due was handled, but SES refused this many sends for the account's
/// configuration, which only an operator can fix: the run fails so that the function's error
/// alarm fires ([`Retry::NotRetryable`]; a run that follows does the same until then).
#[derive(Debug, thiserror::Error)]
#[error("SES refused {0} send(s) for the account's configuration (see the `ses_configuration` errors); the steps are kept")]
pub struct Blocked(pub u64);

impl Blocked {
    /// Never: see [`Blocked`].
    pub fn retry(&self) -> Retry {
        Retry::NotRetryable
    }
}

/// Runs the job of `inv` until done or until `deadline - SAFETY_MARGIN`.
pub async fn run(services: &AwsServices, inv: &Invocation, deadline: Instant) -> RunReport {
    let stop_at = deadline.checked_sub(SAFETY_MARGIN).unwrap_or(deadline);
    let keep_going = move || Instant::now() < stop_at;
    let now = inv.scheduled_time;
    let mut report = RunReport { job: Some(inv.job), now: Some(now), ..RunReport::default() };
    for (kind, r) in services.ember.jobs.run(inv.job, now, &keep_going).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_ses_refused_to_send_for_fails_as_not_retryable() {
        let mut report = RunReport::default();
        assert!(report.clone().outcome().is_ok());
        report.drip = Some(JobReport { blocked: 2, ..JobReport::default() });
        let e = report.outcome().unwrap_err();
        assert_eq!(e.retry(), Retry::NotRetryable);
        assert!(e.to_string().starts_with("SES refused 2 send(s) for the account's configuration"), "{e}");
    }
}
