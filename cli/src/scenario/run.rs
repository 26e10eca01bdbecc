//! Runs a scenario against the real services (the same code the Lambda functions run) with a
//! manual clock, and compares every expectation.

use super::format::{Action, Expect, Outcome, Scenario, Step};
use anyhow::{Context, Result};
use ember_scoring::{RawEvent, Time};
use ember_service::ports::{Identity, ManualClock};
use ember_service::{CrmFeedback, Ember, IngestStatus};
use std::collections::HashMap;
use std::sync::Arc;

/// What the runner needs from the environment a scenario runs in.
#[async_trait::async_trait]
pub trait Harness: Send + Sync {
    /// The use cases the steps drive (events, ticks, CRM feedback) and the expectations read.
    fn ember(&self) -> &Ember;
    /// The clock the services read.
    fn clock(&self) -> &Arc<ManualClock>;
    /// Every email sent so far, in order: (lead id, template).
    async fn emails(&self) -> Result<Vec<(String, String)>>;
    /// Every webhook delivered so far, in order: (lead id, message type).
    async fn webhooks(&self) -> Result<Vec<(String, String)>>;
}

/// One failed expectation or step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Step index in the file.
    pub step: usize,
    /// What was expected and what was found.
    pub message: String,
}

/// The result of one scenario.
#[derive(Debug, Clone)]
pub struct Report {
    /// [`Scenario::title`] of the scenario run.
    pub title: String,
    /// `expect:` steps checked (each may hold several expectations).
    pub checked: usize,
    /// Every failed expectation or step, in step order; the run goes on after one.
    pub failures: Vec<Failure>,
}

impl Report {
    /// Whether no expectation or step failed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Runs one scenario's steps on `h`, starting its clock at the scenario's `start`; an error is
/// a harness failure, not a failed expectation.
pub async fn run(scenario: &Scenario, h: &dyn Harness) -> Result<Report> {
    let mut report = Report { title: scenario.title.clone(), checked: 0, failures: Vec::new() };
    let mut now = scenario.start;
    h.clock().set(now);
    let mut email_seen: HashMap<String, usize> = HashMap::new();
    let mut hook_seen: HashMap<String, usize> = HashMap::new();
    let mut event_no = 0usize;
    for step in &scenario.steps {
        if let Some(at) = step.at {
            let t = scenario.start + at.to_chrono();
            if t < now {
                report.failures.push(Failure { step: step.index, message: format!("`at: {at}` goes back in time (the clock is at {now})") });
                continue;
            }
            now = t;
            h.clock().set(now);
        }
        match &step.action {
            Action::None => {}
            Action::Event(v, want) => {
                event_no += 1;
                let mut v = v.clone();
                if let Some(o) = v.as_object_mut() {
                    o.entry("event_id").or_insert_with(|| format!("scenario-{event_no}").into());
                }
                let raw: RawEvent = serde_json::from_value(v).with_context(|| format!("steps[{}].event", step.index))?;
                let status = h.ember().ingest.event(&raw).await;
                let got = match status {
                    IngestStatus::Accepted { .. } => Outcome::Accepted,
                    IngestStatus::Duplicate { .. } => Outcome::Duplicate,
                    IngestStatus::Rejected { .. } => Outcome::Rejected,
                };
                if got != *want {
                    report.failures.push(Failure {
                        step: step.index,
                        message: format!("event: expected outcome {}, got {}", want.as_str(), describe(&status)),
                    });
                }
            }
            Action::Tick => tick(h, now).await,
            Action::Ticks { every, until } => {
                let end = scenario.start + until.to_chrono();
                let mut t = now + every.to_chrono();
                while t <= end {
                    now = t;
                    h.clock().set(now);
                    tick(h, now).await;
                    t = now + every.to_chrono();
                }
            }
            Action::Crm(v) => {
                let fb: CrmFeedback = match serde_json::from_value(v.clone()) {
                    Ok(f) => f,
                    Err(e) => {
                        report.failures.push(Failure { step: step.index, message: format!("crm: {e}") });
                        continue;
                    }
                };
                if let Err(e) = h.ember().feedback.crm(&fb).await {
                    report.failures.push(Failure { step: step.index, message: format!("crm feedback failed: {e}") });
                }
            }
            Action::Expect(x) => {
                report.checked += 1;
                for message in check(h, step, x, &mut email_seen, &mut hook_seen).await? {
                    report.failures.push(Failure { step: step.index, message });
                }
            }
        }
    }
    Ok(report)
}

async fn tick(h: &dyn Harness, now: Time) {
    let r = h.ember().jobs.tick(now, &|| true).await;
    if r.failed > 0 {
        tracing::warn!(failed = r.failed, "tick had failures");
    }
}

fn describe(s: &IngestStatus) -> String {
    match s {
        IngestStatus::Accepted { .. } => "accepted".into(),
        IngestStatus::Duplicate { event_id } => format!("duplicate event id {event_id}"),
        IngestStatus::Rejected { reason, .. } => format!("rejected: {reason}"),
    }
}

fn list(v: &[String]) -> String {
    format!("[{}]", v.join(", "))
}

async fn check(
    h: &dyn Harness,
    step: &Step,
    x: &Expect,
    email_seen: &mut HashMap<String, usize>,
    hook_seen: &mut HashMap<String, usize>,
) -> Result<Vec<String>> {
    let ember = h.ember();
    let who = &x.lead;
    let mut lead = None;
    if who.contains('@') {
        if let Ok(email) = ember_scoring::event::normalize_email(who) {
            lead = ember.lead_by(&Identity::Email(email)).await?;
        }
    }
    if lead.is_none() {
        lead = ember.lead_by(&Identity::Anonymous(who.clone())).await?;
    }
    let Some(lead) = lead else {
        return Ok(vec![format!("lead {who}: not found")]);
    };
    let _ = step;
    let mut f = Vec::new();
    for (g, want) in &x.scores {
        match lead.scores.get(g) {
            Some(got) if got == want => {}
            Some(got) => f.push(format!("lead {who}: scores.{g}: expected {want}, got {got}")),
            None => f.push(format!("lead {who}: scores.{g}: no such score group")),
        }
    }
    if let Some(want) = &x.stage {
        if &lead.stage != want {
            f.push(format!("lead {who}: stage: expected {want}, got {}", lead.stage));
        }
    }
    for t in &x.tags {
        if !lead.tags.contains(t) {
            f.push(format!("lead {who}: tags: expected {t} among {}", list(&lead.tags.iter().cloned().collect::<Vec<_>>())));
        }
    }
    if let Some(want) = &x.temperature {
        let got = ember.engine().temperature_of(&lead).unwrap_or("none");
        if got != want {
            f.push(format!("lead {who}: temperature: expected {want}, got {got}"));
        }
    }
    if let Some(want) = &x.quadrant {
        let got = ember.engine().quadrant_of(&lead).unwrap_or("none");
        if got != want {
            f.push(format!("lead {who}: quadrant: expected {want}, got {got}"));
        }
    }
    for (c, want) in &x.campaigns {
        let got = lead.latest_enrollment(c).map(|e| e.status.as_str()).unwrap_or("none");
        if got != want {
            f.push(format!("lead {who}: campaigns.{c}: expected {want}, got {got}"));
        }
    }
    let ids: Vec<&str> = std::iter::once(lead.id.as_str()).chain(lead.merged_from.iter().map(String::as_str)).collect();
    if let Some(want) = &x.emails {
        since_last(who, "emails", want, h.emails().await?, &ids, email_seen, &mut f);
    }
    if let Some(want) = &x.webhooks {
        since_last(who, "webhooks", want, h.webhooks().await?, &ids, hook_seen, &mut f);
    }
    Ok(f)
}

/// Compares what happened to the lead since the last expectation that listed `what`.
fn since_last(
    who: &str,
    what: &str,
    want: &[String],
    all: Vec<(String, String)>,
    ids: &[&str],
    seen: &mut HashMap<String, usize>,
    failures: &mut Vec<String>,
) {
    let mine: Vec<String> = all.into_iter().filter(|(l, _)| ids.contains(&l.as_str())).map(|(_, t)| t).collect();
    let from = seen.entry(who.to_string()).or_insert(0);
    let got = mine[(*from).min(mine.len())..].to_vec();
    *from = mine.len();
    if got != want {
        failures.push(format!("lead {who}: {what}: expected {}, got {}", list(want), list(&got)));
    }
}
