//! Stages, handoff (`lead.qualified`), the sales SLA and CRM feedback.

use super::{Change, Engine, Outcome};
use crate::lead::{EnrollmentStatus, HandoffState, Lead, StageEntry};
use crate::Time;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// What the CRM tells Ember about a lead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum CrmAction {
    /// Sales accepted the lead (stops the SLA clock).
    Accepted,
    /// Sales rejected it: tagged `disqualified`, campaigns ended.
    Rejected,
    /// Back to marketing: stage `recycle_to`, `recycle_reset` scores back to initial.
    Recycled,
    /// An opportunity was opened.
    Opportunity,
    /// Deal won: the lead moves forward to `customer` when the model has that stage above the current one.
    Won {
        /// Deal value in the CRM's currency, 0 to 10¹²; `None` keeps the last one given.
        #[serde(default)]
        amount: Option<f64>,
    },
    /// Deal lost: the lead is tagged `lost`.
    Lost {
        /// Deal value in the CRM's currency, 0 to 10¹²; `None` keeps the last one given.
        #[serde(default)]
        amount: Option<f64>,
    },
}

/// Largest deal amount CRM feedback may carry (a trillion, in the CRM's currency): amounts are
/// summed into reports, so one absurd value must not swamp them.
pub const MAX_DEAL_AMOUNT: f64 = 1e12;

impl CrmAction {
    /// Parses an action name and optional amount. An amount must be a finite number from 0 to
    /// `MAX_DEAL_AMOUNT` (10¹²); the error names the field.
    pub fn parse(action: &str, amount: Option<f64>) -> Result<CrmAction, String> {
        if let Some(a) = amount {
            if !a.is_finite() || !(0.0..=MAX_DEAL_AMOUNT).contains(&a) {
                return Err(format!("`amount` must be a finite number from 0 to {MAX_DEAL_AMOUNT:.0} (got {a})"));
            }
        }
        Ok(match action {
            "accepted" => CrmAction::Accepted,
            "rejected" => CrmAction::Rejected,
            "recycled" => CrmAction::Recycled,
            "opportunity" => CrmAction::Opportunity,
            "won" => CrmAction::Won { amount },
            "lost" => CrmAction::Lost { amount },
            other => {
                return Err(format!(
                    "unknown CRM action `{other}` (expected accepted, rejected, recycled, opportunity, won or lost)"
                ))
            }
        })
    }

    /// The action as written in CRM feedback (`accepted`, `won`…), the inverse of [`CrmAction::parse`].
    pub fn name(&self) -> &'static str {
        match self {
            CrmAction::Accepted => "accepted",
            CrmAction::Rejected => "rejected",
            CrmAction::Recycled => "recycled",
            CrmAction::Opportunity => "opportunity",
            CrmAction::Won { .. } => "won",
            CrmAction::Lost { .. } => "lost",
        }
    }
}

impl Engine {
    /// Moves the lead to the highest stage above its current one whose condition holds, and
    /// repeats until none does.
    pub(crate) fn advance_stages(&self, lead: &mut Lead, at: Time, out: &mut Outcome) {
        let n = self.model.stages.len();
        loop {
            let cur = self.model.stage_index(&lead.stage).unwrap_or(0);
            let mut next = None;
            for j in (cur + 1..=n).rev() {
                let Some(when) = &self.model.stages[j - 1].when else { continue };
                if when.holds(&self.facts(lead, at), &self.model.lists) {
                    next = Some(j);
                    break;
                }
            }
            let Some(j) = next else { break };
            self.enter_stage(lead, j, at, None, out);
        }
    }

    /// Records a stage entry and what follows from it (handoff, SLA).
    pub(crate) fn enter_stage(&self, lead: &mut Lead, j: usize, at: Time, by: Option<&str>, out: &mut Outcome) {
        let from = std::mem::replace(&mut lead.stage, self.model.stage_id(j).to_string());
        lead.stage_history.push(StageEntry { stage: lead.stage.clone(), at, by: by.map(str::to_string) });
        out.push(Change::Stage { from: from.clone(), to: lead.stage.clone() });
        let to = lead.stage.clone();
        self.publish(lead, crate::lead::MessageKind::StageChanged, at, &to, json!({"from": from, "to": to}));
        let Some(h) = &self.model.handoff else { return };
        if h.stages.contains(&j) {
            let reopened = lead.crm.recycled > 0 && lead.handoff.is_none();
            if reopened {
                lead.crm.reopened += 1;
            }
            lead.handoff = Some(HandoffState {
                stage: to.clone(),
                qualified_at: at,
                sla_due_at: h.sla.map(|s| at + s.to_chrono()),
                accepted_at: None,
                breached_at: None,
            });
            let data = self.lead_summary(lead, json!({"stage": to, "reopened": reopened}));
            self.publish(lead, crate::lead::MessageKind::Qualified, at, &to, data);
        } else if h.stages.iter().max().is_some_and(|last| j > *last) {
            if let Some(hs) = &mut lead.handoff {
                hs.sla_due_at = None;
            }
        }
    }

    /// What webhooks carry about the lead (the CRM needs the identity).
    pub(crate) fn lead_summary(&self, lead: &Lead, extra: serde_json::Value) -> serde_json::Value {
        let mut v = json!({
            "lead_id": lead.id,
            "email": lead.email,
            "stage": lead.stage,
            "scores": lead.scores,
            "tags": lead.tags,
            "traits": lead.traits,
            "temperature": self.temperature_of(lead),
            "quadrant": self.quadrant_of(lead),
            "first_touch": lead.first_touch,
        });
        if let (Some(obj), serde_json::Value::Object(more)) = (v.as_object_mut(), extra) {
            obj.extend(more);
        }
        v
    }

    /// SLA deadline, while the clock runs.
    pub(crate) fn sla_due(&self, lead: &Lead) -> Option<Time> {
        let h = lead.handoff.as_ref()?;
        if h.accepted_at.is_some() || h.breached_at.is_some() {
            return None;
        }
        h.sla_due_at
    }

    /// Publishes `lead.sla_breached` once when the deadline has passed with no CRM feedback.
    pub fn check_sla(&self, lead: &mut Lead, now: Time) -> Outcome {
        let out = Outcome::default();
        lead.updated_at = lead.updated_at.max(now);
        let Some(due) = self.sla_due(lead) else { return out };
        if now < due {
            return out;
        }
        let stage = lead.handoff.as_ref().map(|h| h.stage.clone()).unwrap_or_default();
        if let Some(h) = &mut lead.handoff {
            h.breached_at = Some(now);
        }
        let data = self.lead_summary(lead, json!({"stage": stage, "sla_due_at": due}));
        self.publish(lead, crate::lead::MessageKind::SlaBreached, due, &stage, data);
        out
    }

    /// Applies CRM feedback.
    pub fn crm_feedback(&self, lead: &mut Lead, action: &CrmAction, reason: Option<&str>, now: Time) -> Outcome {
        let mut out = Outcome::default();
        lead.updated_at = lead.updated_at.max(now);
        if let Some(h) = &mut lead.handoff {
            h.sla_due_at = None;
        }
        if reason.is_some() {
            lead.crm.reason = reason.map(str::to_string);
        }
        let by = action.name();
        match action {
            CrmAction::Accepted => {
                if let Some(h) = &mut lead.handoff {
                    h.accepted_at = Some(now);
                }
            }
            CrmAction::Rejected => {
                lead.crm.rejected_at = Some(now);
                if lead.tags.insert("disqualified".into()) {
                    out.push(Change::Tagged { tag: "disqualified".into() });
                }
                for e in lead.enrollments.iter_mut().filter(|e| e.status == EnrollmentStatus::Active) {
                    e.status = EnrollmentStatus::Exited;
                    e.ended_at = Some(now);
                    e.end_reason = Some("rejected".into());
                    e.due_at = None;
                    e.pending_send = None;
                    out.push(Change::Campaign { campaign: e.campaign.clone(), what: "exited".into() });
                }
            }
            CrmAction::Recycled => {
                lead.crm.recycled += 1;
                lead.handoff = None;
                if let Some(h) = &self.model.handoff {
                    for &g in &h.recycle_reset {
                        let name = self.model.scores[g].name.clone();
                        let before = self.score(lead, g);
                        lead.earned.insert(name.clone(), 0);
                        self.refresh(lead, now, false);
                        let after = self.score(lead, g);
                        out.push(Change::Points { source: "crm:recycled".into(), group: name.into(), asked: after - before, given: after - before, note: Some("recycle_reset".into()) });
                    }
                    if let Some(to) = h.recycle_to {
                        if self.model.stage_index(&lead.stage) != Some(to) {
                            self.enter_stage(lead, to, now, Some(by), &mut out);
                        }
                    }
                }
                let data = self.lead_summary(lead, json!({}));
                self.publish(lead, crate::lead::MessageKind::Recycled, now, "recycle", data);
                self.refresh(lead, now, false);
                return out;
            }
            CrmAction::Opportunity => self.move_forward(lead, "opportunity", now, by, &mut out),
            CrmAction::Won { amount } => {
                lead.crm.won_amount = amount.or(lead.crm.won_amount);
                self.move_forward(lead, "customer", now, by, &mut out);
            }
            CrmAction::Lost { amount } => {
                lead.crm.lost_amount = amount.or(lead.crm.lost_amount);
                if lead.tags.insert("lost".into()) {
                    out.push(Change::Tagged { tag: "lost".into() });
                }
            }
        }
        self.after_change(lead, None, now, false, &mut out);
        out
    }

    fn move_forward(&self, lead: &mut Lead, stage: &str, now: Time, by: &str, out: &mut Outcome) {
        let Some(j) = self.model.stage_index(stage) else { return };
        let cur = self.model.stage_index(&lead.stage).unwrap_or(0);
        if j > cur {
            self.enter_stage(lead, j, now, Some(by), out);
        }
    }
}
