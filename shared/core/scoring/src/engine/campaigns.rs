//! Campaigns: entries, goals, exits, `wait_for`, and the drip run that walks the steps.

use super::rules::trigger_matches;
use super::{Change, Engine, Outcome};
use crate::event::Event;
use crate::lead::{Enrollment, EnrollmentStatus, Lead, PendingSend, SendRecord, StepLog};
use crate::model::{Jump, StepKind, Trigger};
use crate::Time;
use chrono::{Datelike, NaiveTime, TimeZone};
use serde::{Deserialize, Serialize};

/// How long a claimed send may stay unconfirmed before it is marked `unknown` (never resent).
pub const SEND_LEASE_SECS: i64 = 15 * 60;

/// Most steps one enrollment may take in one drip run (guards against `if` loops).
const MAX_STEPS_PER_RUN: usize = 256;

/// An email the drip run wants sent. The claim is already recorded in the lead
/// ([`crate::lead::Enrollment::pending_send`]); store the lead before sending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendIntent {
    /// Idempotency key: the same step of the same enrollment always has the same id.
    pub send_id: String,
    /// [`Lead::id`](crate::lead::Lead::id) of the recipient.
    pub lead_id: String,
    /// The lead's normalized email address at the time of the claim.
    pub to: String,
    /// Id of the campaign whose step sends it.
    pub campaign: String,
    /// Index of the `send` step in the campaign's steps.
    pub step: usize,
    /// Key into [`Model::templates`](crate::model::Model::templates).
    pub template: String,
}

/// What the mailer said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SendOutcome {
    /// Accepted by the provider.
    Sent {
        /// The provider's id for the message (SES `MessageId`).
        message_id: String,
    },
    /// Refused for good (bad address, suppressed): recorded, the flow goes on, never resent.
    Rejected {
        /// The provider's error, for the log.
        reason: String,
    },
    /// Not sent, worth trying again (throttled): the claim is released.
    Retry {
        /// The provider's error, for the log.
        reason: String,
    },
    /// Not sent because the sending account or identity is misconfigured (an unverified
    /// sender, the SES sandbox, sending paused): the claim is released and the step kept until
    /// an operator fixes it, tried again every [`BLOCKED_RETRY_SECS`], logged once per step.
    Blocked {
        /// The provider's error, for the operator who must fix the account.
        reason: String,
    },
    /// The outcome is unknown (crash or timeout after the call): marked, not resent.
    Unknown,
}

/// How long a step whose send was [`SendOutcome::Blocked`] waits before it is tried again.
pub const BLOCKED_RETRY_SECS: i64 = 5 * 60;

enum Flow {
    /// Continue at this step index.
    Goto(usize),
    /// Stop here until this time.
    WaitUntil(Option<Time>),
    /// End the enrollment with this status and `end_reason` (`exit_step`, `timeout`…).
    End(EnrollmentStatus, &'static str),
    /// Hand an email to the caller.
    Send(SendIntent),
}

impl Engine {
    fn trigger_holds(&self, t: &Trigger, lead: &Lead, event: Option<&Event>, at: Time) -> bool {
        if let Some(on) = &t.on {
            let Some(e) = event else { return false };
            if !trigger_matches(self, on, t.filter.as_ref(), e) {
                return false;
            }
        }
        t.when.as_ref().is_none_or(|w| w.holds(&self.facts(lead, at), &self.model.lists))
    }

    /// Ends active enrollments whose goal is reached (converted) or exit condition holds (exited).
    pub(crate) fn goals_and_exits(&self, lead: &mut Lead, event: Option<&Event>, at: Time, out: &mut Outcome) {
        for i in 0..lead.enrollments.len() {
            if lead.enrollments[i].status != EnrollmentStatus::Active {
                continue;
            }
            let Some(ci) = self.model.campaign(&lead.enrollments[i].campaign) else { continue };
            let c = &self.model.campaigns[ci];
            if c.goal.as_ref().is_some_and(|g| self.trigger_holds(g, lead, event, at)) {
                self.end(lead, i, EnrollmentStatus::Converted, "goal", at, out);
            } else if c.exit_when.as_ref().is_some_and(|x| self.trigger_holds(x, lead, event, at)) {
                self.end(lead, i, EnrollmentStatus::Exited, "exit_when", at, out);
            }
        }
    }

    /// Ends enrollment `i`; applies `exit_points` when it exits.
    fn end(&self, lead: &mut Lead, i: usize, status: EnrollmentStatus, reason: &str, at: Time, out: &mut Outcome) {
        let e = &mut lead.enrollments[i];
        e.status = status;
        e.ended_at = Some(at);
        e.end_reason = Some(reason.to_string());
        e.due_at = None;
        e.pending_send = None;
        let campaign = e.campaign.clone();
        out.push(Change::Campaign { campaign: campaign.clone(), what: status.as_str().to_string() });
        if status == EnrollmentStatus::Exited {
            if let Some(c) = self.model.campaign(&campaign).map(|ci| &self.model.campaigns[ci]) {
                if !c.exit_points.is_empty() {
                    self.apply_points(lead, &c.exit_points, &format!("campaign:{campaign}:exit"), out);
                    self.refresh(lead, at, false);
                    self.advance_stages(lead, at, out);
                }
            }
        }
    }

    /// Moves enrollments waiting for this event past their `wait_for` step.
    pub(crate) fn wait_for_satisfied(&self, lead: &mut Lead, e: &Event, out: &mut Outcome) {
        for en in lead.enrollments.iter_mut().filter(|en| en.status == EnrollmentStatus::Active) {
            let Some(ci) = self.model.campaign(&en.campaign) else { continue };
            let Some(step) = self.model.campaigns[ci].steps.get(en.step) else { continue };
            let StepKind::WaitFor { on, filter, within, .. } = &step.kind else { continue };
            if e.at < en.step_started_at || e.at >= en.step_started_at + within.to_chrono() {
                continue;
            }
            if trigger_matches(self, on, filter.as_ref(), e) {
                en.step += 1;
                en.step_started_at = e.at;
                en.due_at = Some(e.at);
                out.push(Change::Campaign { campaign: en.campaign.clone(), what: "advanced".into() });
            }
        }
    }

    /// Starts enrollments whose entry trigger fires. Segment entries (`when` without `on`) fire
    /// when the lead crosses into the segment, not on every change while it is in it.
    pub(crate) fn entries(&self, lead: &mut Lead, event: Option<&Event>, at: Time, out: &mut Outcome) {
        for c in &self.model.campaigns {
            let Some(enter) = &c.enter else { continue };
            let fires = if enter.on.is_some() {
                self.trigger_holds(enter, lead, event, at)
            } else {
                let holds = self.trigger_holds(enter, lead, None, at);
                let was = lead.segments.contains(&c.id);
                if holds && !was {
                    lead.segments.insert(c.id.clone());
                } else if !holds && was {
                    lead.segments.remove(&c.id);
                }
                holds && !was
            };
            if fires {
                self.enroll(lead, &c.id, at, out);
            }
        }
    }

    /// Enrolls the lead unless it is already active there, or has been and may not re-enter.
    fn enroll(&self, lead: &mut Lead, campaign: &str, at: Time, out: &mut Outcome) -> bool {
        let Some(ci) = self.model.campaign(campaign) else { return false };
        let c = &self.model.campaigns[ci];
        if lead.active_enrollment(campaign).is_some() || (!c.reenter && lead.latest_enrollment(campaign).is_some()) {
            return false;
        }
        if lead.tags.contains("disqualified") && lead.crm.rejected_at.is_some() {
            return false;
        }
        lead.enrollments.push(Enrollment {
            campaign: campaign.to_string(),
            status: EnrollmentStatus::Active,
            step: 0,
            step_started_at: at,
            entered_at: at,
            ended_at: None,
            end_reason: None,
            due_at: Some(at),
            pending_send: None,
            log: Vec::new(),
        });
        out.push(Change::Campaign { campaign: campaign.to_string(), what: "entered".into() });
        true
    }

    /// Next time the drip job has something to do for this lead.
    pub(crate) fn drip_due(&self, lead: &Lead) -> Option<Time> {
        let mut due = lead.outbox.first().map(|_| lead.updated_at);
        for e in lead.enrollments.iter().filter(|e| e.status == EnrollmentStatus::Active) {
            let d = match &e.pending_send {
                Some(p) => Some(p.claimed_at + chrono::Duration::seconds(SEND_LEASE_SECS)),
                None => e.due_at,
            };
            due = match (due, d) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        due
    }

    /// Runs every active enrollment's steps that are due at `now`. Returns the emails to send:
    /// each is claimed in the lead; store the lead, send, then report with [`Engine::send_done`]
    /// and call `drip` again to carry on.
    pub fn drip(&self, lead: &mut Lead, now: Time) -> (Vec<SendIntent>, Outcome) {
        let mut out = Outcome::default();
        let mut intents = Vec::new();
        lead.updated_at = lead.updated_at.max(now);
        // Goals and exits that depend on time (did … within, temperature) are checked first.
        self.goals_and_exits(lead, None, now, &mut out);
        let mut i = 0;
        while i < lead.enrollments.len() {
            if lead.enrollments[i].status == EnrollmentStatus::Active {
                if let Some(intent) = self.run_enrollment(lead, i, now, &mut out) {
                    intents.push(intent);
                }
            }
            i += 1;
        }
        (intents, out)
    }

    fn run_enrollment(&self, lead: &mut Lead, i: usize, now: Time, out: &mut Outcome) -> Option<SendIntent> {
        if let Some(p) = lead.enrollments[i].pending_send.clone() {
            if now < p.claimed_at + chrono::Duration::seconds(SEND_LEASE_SECS) {
                return None;
            }
            // The claim outlived its lease: the send may have happened. Never resend.
            self.finish_send(lead, i, &p.send_id, &SendOutcome::Unknown, now, out);
        }
        for _ in 0..MAX_STEPS_PER_RUN {
            if lead.enrollments[i].status != EnrollmentStatus::Active {
                return None;
            }
            let flow = self.step(lead, i, now, out);
            match flow {
                Flow::Goto(next) => {
                    let en = &mut lead.enrollments[i];
                    en.step = next;
                    en.due_at = Some(now);
                }
                Flow::WaitUntil(t) => {
                    lead.enrollments[i].due_at = t;
                    return None;
                }
                Flow::End(status, reason) => {
                    self.end(lead, i, status, reason, now, out);
                    self.after_change(lead, None, now, false, out);
                    return None;
                }
                Flow::Send(intent) => {
                    let en = &mut lead.enrollments[i];
                    en.pending_send = Some(PendingSend {
                        send_id: intent.send_id.clone(),
                        template: intent.template.clone(),
                        claimed_at: now,
                        claim: String::new(),
                    });
                    en.due_at = None;
                    return Some(intent);
                }
            }
        }
        lead.enrollments[i].due_at = Some(now + chrono::Duration::minutes(1));
        None
    }

    /// Executes the current step of enrollment `i` at `now`.
    fn step(&self, lead: &mut Lead, i: usize, now: Time, out: &mut Outcome) -> Flow {
        let en = &lead.enrollments[i];
        let Some(ci) = self.model.campaign(&en.campaign) else {
            return Flow::End(EnrollmentStatus::Exited, "campaign_removed");
        };
        let c = &self.model.campaigns[ci];
        let Some(step) = c.steps.get(en.step) else {
            return Flow::End(EnrollmentStatus::Completed, "completed");
        };
        let idx = en.step;
        let started = en.step_started_at;
        let jump = |j: &Jump| match j {
            Jump::Next => Flow::Goto(idx + 1),
            Jump::Exit => Flow::End(EnrollmentStatus::Exited, "exit"),
            Jump::To(t) => Flow::Goto(*t),
        };
        match &step.kind {
            StepKind::Wait(d) => {
                let due = started + d.to_chrono();
                if now >= due {
                    lead.enrollments[i].step_started_at = due;
                    Flow::Goto(idx + 1)
                } else {
                    Flow::WaitUntil(Some(due))
                }
            }
            StepKind::WaitFor { within, timeout, .. } => {
                let due = started + within.to_chrono();
                if now >= due {
                    lead.enrollments[i].step_started_at = due;
                    out.push(Change::Campaign { campaign: c.id.clone(), what: "timeout".into() });
                    match timeout {
                        Jump::Exit => Flow::End(EnrollmentStatus::Exited, "timeout"),
                        j => jump(j),
                    }
                } else {
                    Flow::WaitUntil(Some(due))
                }
            }
            StepKind::If { cond, then, otherwise } => {
                let holds = cond.holds(&self.facts(lead, now), &self.model.lists);
                lead.enrollments[i].step_started_at = now;
                jump(if holds { then } else { otherwise })
            }
            StepKind::Points(points) => {
                self.apply_points(lead, points, &format!("campaign:{}", c.id), out);
                lead.enrollments[i].step_started_at = now;
                self.after_change(lead, None, now, false, out);
                Flow::Goto(idx + 1)
            }
            StepKind::Exit => Flow::End(EnrollmentStatus::Exited, "exit_step"),
            StepKind::Goto(target) => {
                let target = self.model.campaigns[*target].id.clone();
                lead.enrollments[i].step = idx + 1;
                self.end(lead, i, EnrollmentStatus::Completed, "goto_campaign", now, out);
                self.enroll(lead, &target, now, out);
                Flow::WaitUntil(None)
            }
            StepKind::Send(template) => {
                let subscribed = lead.email.is_some() && lead.consent.subscribed();
                if !subscribed {
                    let en = &mut lead.enrollments[i];
                    en.log.push(StepLog::new(idx, "suppressed", Some(template.clone()), now));
                    en.step_started_at = now;
                    return Flow::Goto(idx + 1);
                }
                if let Some(later) = self.send_window(lead, now) {
                    return Flow::WaitUntil(Some(later));
                }
                let en = &lead.enrollments[i];
                let send_id = format!(
                    "{}.{}.{}.{}",
                    lead.id,
                    en.campaign,
                    en.entered_at.timestamp_millis(),
                    idx
                );
                Flow::Send(SendIntent {
                    send_id,
                    lead_id: lead.id.clone(),
                    to: lead.email.clone().unwrap_or_default(),
                    campaign: en.campaign.clone(),
                    step: idx,
                    template: template.clone(),
                })
            }
        }
    }

    /// `None` when an email may go out at `now`; otherwise the earliest time worth trying again
    /// (frequency cap and quiet hours postpone, never drop).
    pub fn send_window(&self, lead: &Lead, now: Time) -> Option<Time> {
        let email = self.model.email.as_ref()?;
        let mut later: Option<Time> = None;
        if let Some((max, per)) = email.frequency_cap {
            let from = now - per.to_chrono();
            let claimed = lead.enrollments.iter().filter_map(|e| e.pending_send.as_ref()).map(|p| p.claimed_at);
            let mut recent: Vec<Time> = lead.sends.iter().map(|s| s.at).chain(claimed).filter(|t| *t > from && *t <= now).collect();
            if recent.len() >= max as usize {
                recent.sort();
                let frees = recent[recent.len() - max as usize] + per.to_chrono();
                later = Some(frees.max(now + chrono::Duration::seconds(1)));
            }
        }
        if let Some((start, end)) = email.quiet_hours {
            let check = later.unwrap_or(now);
            if let Some(end_at) = quiet_until(self.model.timezone, start, end, check) {
                later = Some(end_at);
            }
        }
        later
    }

    /// Records a send's outcome and moves the flow on (or releases the claim on `Retry`).
    pub fn send_done(&self, lead: &mut Lead, send_id: &str, outcome: &SendOutcome, now: Time) -> Outcome {
        let mut out = Outcome::default();
        lead.updated_at = lead.updated_at.max(now);
        let Some(i) = lead.enrollments.iter().position(|e| e.pending_send.as_ref().is_some_and(|p| p.send_id == send_id)) else {
            return out;
        };
        self.finish_send(lead, i, send_id, outcome, now, &mut out);
        out
    }

    /// Records provider feedback on the send it is about (for the nurture report):
    /// `email_delivered`, `email_open` and `email_click` mark the step log of the send named by
    /// the event's `campaign` and `step` properties (the SES message tags), or, without them,
    /// the lead's latest send at or before the event. Machine opens and clicks mark nothing.
    pub(crate) fn email_feedback(&self, lead: &mut Lead, e: &Event) {
        let flag: fn(&mut StepLog) = match e.kind.as_str() {
            "email_delivered" => |l| l.delivered = true,
            "email_open" if !e.machine => |l| l.opened = true,
            "email_click" if !e.machine => |l| l.clicked = true,
            _ => return,
        };
        let campaign = e.properties.get("campaign").and_then(|v| v.as_str());
        let step = e.properties.get("step").and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()));
        let mut best: Option<(usize, usize)> = None;
        for (i, en) in lead.enrollments.iter().enumerate() {
            if campaign.is_some_and(|c| c != en.campaign) {
                continue;
            }
            for (j, l) in en.log.iter().enumerate() {
                let fits = l.outcome == "sent" && l.at <= e.at && step.is_none_or(|s| s as usize == l.step);
                if fits && best.is_none_or(|(bi, bj)| lead.enrollments[bi].log[bj].at <= l.at) {
                    best = Some((i, j));
                }
            }
        }
        if let Some((i, j)) = best {
            flag(&mut lead.enrollments[i].log[j]);
        }
    }

    fn finish_send(&self, lead: &mut Lead, i: usize, _send_id: &str, outcome: &SendOutcome, now: Time, out: &mut Outcome) {
        let Some(p) = lead.enrollments[i].pending_send.take() else { return };
        let en = &mut lead.enrollments[i];
        let step = en.step;
        let (label, advance) = match outcome {
            SendOutcome::Sent { .. } => ("sent", true),
            SendOutcome::Rejected { .. } => ("rejected", true),
            SendOutcome::Unknown => ("unknown", true),
            SendOutcome::Retry { .. } => ("retry", false),
            SendOutcome::Blocked { .. } => ("blocked", false),
        };
        // A blocked account is retried for as long as it stays blocked: one log entry per
        // step, not one per attempt, so the lead does not grow while an operator fixes it.
        let repeated = label == "blocked" && en.log.last().is_some_and(|l| l.step == step && l.outcome == label);
        if !repeated {
            en.log.push(StepLog::new(step, label, Some(p.template.clone()), now));
        }
        if !advance {
            let wait = if label == "blocked" { chrono::Duration::seconds(BLOCKED_RETRY_SECS) } else { chrono::Duration::minutes(1) };
            en.due_at = Some(now + wait);
            return;
        }
        en.step = step + 1;
        en.step_started_at = now;
        en.due_at = Some(now);
        let campaign = en.campaign.clone();
        if matches!(outcome, SendOutcome::Sent { .. } | SendOutcome::Unknown) {
            lead.sends.push(SendRecord { at: now, template: p.template.clone(), campaign });
            self.prune_sends(lead, now);
        }
        let _ = out;
    }

    fn prune_sends(&self, lead: &mut Lead, now: Time) {
        let keep = self.model.email.as_ref().and_then(|e| e.frequency_cap).map(|(_, per)| per.to_chrono()).unwrap_or_default();
        let from = now - keep;
        lead.sends.retain(|s| s.at > from);
    }
}

/// If `t` falls inside quiet hours (`start`–`end` local time, wrapping midnight), the end of them.
pub(crate) fn quiet_until(tz: chrono_tz::Tz, start: NaiveTime, end: NaiveTime, t: Time) -> Option<Time> {
    if start == end {
        return None;
    }
    let local = t.with_timezone(&tz);
    let tod = local.time();
    let quiet = if start < end { tod >= start && tod < end } else { tod >= start || tod < end };
    if !quiet {
        return None;
    }
    let mut date = local.date_naive();
    if start > end && tod >= start {
        date = date.succ_opt()?;
    }
    let naive = date.and_time(end);
    let resolved = tz
        .from_local_datetime(&naive)
        .earliest()
        .or_else(|| tz.from_local_datetime(&(naive + chrono::Duration::hours(1))).earliest())?;
    let _ = resolved.year();
    Some(resolved.with_timezone(&chrono::Utc))
}

#[cfg(test)]
mod tests {
    use super::quiet_until;
    use chrono::NaiveTime;

    #[test]
    fn quiet_hours_wrap_midnight() {
        let tz: chrono_tz::Tz = "Europe/Paris".parse().unwrap();
        let s = NaiveTime::from_hms_opt(21, 0, 0).unwrap();
        let e = NaiveTime::from_hms_opt(8, 0, 0).unwrap();
        // Saturday 22:10 Paris → Sunday 08:00 Paris (07:00Z).
        let t = "2027-01-16T21:10:00Z".parse().unwrap();
        assert_eq!(quiet_until(tz, s, e, t), Some("2027-01-17T07:00:00Z".parse().unwrap()));
        // 03:00 Paris → 08:00 the same day.
        let t = "2027-01-17T02:00:00Z".parse().unwrap();
        assert_eq!(quiet_until(tz, s, e, t), Some("2027-01-17T07:00:00Z".parse().unwrap()));
        // 08:00 exactly is not quiet.
        assert_eq!(quiet_until(tz, s, e, "2027-01-17T07:00:00Z".parse().unwrap()), None);
        // Summer time: 22:00 Paris (20:00Z) → 08:00 Paris (06:00Z).
        let t = "2027-07-01T20:00:00Z".parse().unwrap();
        assert_eq!(quiet_until(tz, s, e, t), Some("2027-07-02T06:00:00Z".parse().unwrap()));
    }
}
