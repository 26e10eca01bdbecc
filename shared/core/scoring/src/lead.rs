//! The lead: everything Ember knows about one person, as stored between changes.
//!
//! The state is compact on purpose: rule counters keep only what their windows need, `did`
//! predicates read small per-tracker counters instead of the whole event history, and the email
//! log keeps only what the frequency cap needs. The full event history lives in the store (for
//! the timeline); scoring never needs to read it.

use crate::Time;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// A lead (or an anonymous visitor profile, at stage `visitor`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lead {
    /// `ld_` + a UUIDv7 in hex, assigned when the first event creates the lead; never changes.
    pub id: String,
    /// Normalized email (trimmed, lower-cased), once identified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Website cookie ids seen for this person.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anonymous_ids: Vec<String>,
    /// CRM id, when the CRM told us.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crm_id: Option<String>,
    /// Traits (first_name, company, job_title…).
    #[serde(default)]
    pub traits: Map<String, Value>,
    /// Current scores per group (clamped): what everyone reads.
    pub scores: BTreeMap<String, i64>,
    /// Behaviour part of each score: rule awards, decay, campaign points (see [`crate::engine`]).
    #[serde(default)]
    pub earned: BTreeMap<String, i64>,
    /// Profile part of each score: points of the profile rules that currently hold.
    #[serde(default)]
    pub profile: BTreeMap<String, i64>,
    /// Profile rules that currently hold (by rule id).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub profile_rules: BTreeSet<String>,
    /// Tags set by rules that fired and by CRM feedback (`disqualified`, `lost`); never removed.
    #[serde(default)]
    pub tags: BTreeSet<String>,
    /// Id of the stage the lead is in now: `visitor` or one of the model's stage ids.
    pub stage: String,
    /// Every stage entered, with its time, oldest first.
    #[serde(default)]
    pub stage_history: Vec<StageEntry>,
    /// Label of the temperature band the score falls in (`hot`…); `None` when the model has no
    /// `temperature` section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<String>,
    /// Fit × interest quadrant label; `None` when the model has no `quadrants` section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quadrant: Option<String>,
    /// When the lead opted in, unsubscribed, bounced or complained: decides whether email is sent.
    #[serde(default)]
    pub consent: Consent,
    /// First-touch acquisition channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_touch: Option<Touch>,
    /// Last-touch acquisition channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_touch: Option<Touch>,
    /// When the profile was created (earliest event).
    pub created_at: Time,
    /// Last event the lead sent itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity_at: Option<Time>,
    /// Latest time the engine has seen for this lead (events or jobs); time never goes back.
    pub updated_at: Time,
    /// Per-rule counters (by rule id).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rules: BTreeMap<String, RuleState>,
    /// Per-tracker counters for `did` predicates (by tracker key).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub did: BTreeMap<String, DidState>,
    /// Decay applications in the current stretch of inactivity, per decay entry index.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub decay_applied: BTreeMap<usize, u32>,
    /// Campaign enrollments (active and ended), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enrollments: Vec<Enrollment>,
    /// Campaigns whose entry condition held at the last evaluation (entry fires on crossing).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub segments: BTreeSet<String>,
    /// Recent email sends (what the frequency cap needs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sends: Vec<SendRecord>,
    /// Handoff and SLA state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<HandoffState>,
    /// CRM outcome facts kept for reports.
    #[serde(default)]
    pub crm: CrmFacts,
    /// Messages for the bus not yet confirmed published (transactional outbox).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbox: Vec<Message>,
    /// Ids of anonymous profiles merged into this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<String>,
    /// Events applied (all time).
    #[serde(default)]
    pub event_count: u64,
}

/// One entry of [`Lead::stage_history`]: a stage the lead entered, when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageEntry {
    /// Id of the stage entered.
    pub stage: String,
    /// Time of the event (or job run) that moved the lead, RFC 3339 when stored.
    pub at: Time,
    /// Why: `rules`, or a CRM action (`recycled`, `won`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// Email consent: the time of each consent event; `None` means it never happened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// Opted in (newsletter_subscribe or `email_opt_in: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opted_in_at: Option<Time>,
    /// Opted out: unsubscribed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsubscribed_at: Option<Time>,
    /// First `email_bounced` whose `bounce_type` is `permanent`, `hard` or absent; stops email for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounced_at: Option<Time>,
    /// First `email_complaint` (marked as spam); stops email for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complained_at: Option<Time>,
}

impl Consent {
    /// Opted in, and neither unsubscribed since, nor bounced, nor complained.
    pub fn subscribed(&self) -> bool {
        match self.opted_in_at {
            None => false,
            Some(optin) => {
                self.bounced_at.is_none()
                    && self.complained_at.is_none()
                    && self.unsubscribed_at.is_none_or(|u| u < optin)
            }
        }
    }
}

/// Acquisition channel, from an event's `context` (UTM parameters and referrer); recorded only
/// when one of them is present.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Touch {
    /// utm_source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// utm_medium.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<String>,
    /// utm_campaign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// `context.referrer`: the referring page URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    /// Time of the event that carried it.
    pub at: Time,
}

/// Counters of one behaviour rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    /// Times the rule fired (all time).
    #[serde(default)]
    pub fired: u64,
    /// First time it fired (for `once`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_at: Option<Time>,
    /// Last time it fired (for `count`: not again until `within` has passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_at: Option<Time>,
    /// Awards of a capped rule that can still matter, oldest first, one per distinct time:
    /// time and points per group (parallel to the rule's points). What is kept, and for how
    /// long, is described in the engine's `caps` module.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub awards: Vec<Award>,
    /// Every award after this time is in `awards` (set when an award that gave points was
    /// dropped): an event whose cap windows reach back to it earns nothing from the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awards_complete_after: Option<Time>,
    /// Matching event times of a `count` rule that can still matter, oldest first. What is
    /// kept, and for how long, is described in the engine's `counts` module.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hits: Vec<Time>,
    /// Every hit after this time is in `hits` (set when a hit was dropped): an event whose
    /// `count` window reaches back to it, and that the hits kept cannot settle, does not fire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hits_complete_after: Option<Time>,
    /// Times a `count` rule fired that can still matter, oldest first (kept like `hits`), so
    /// that "not again until `within` has passed" holds on both sides of a late event.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firings: Vec<Time>,
    /// Every firing after this time is in `firings` (set when a firing was dropped, or read
    /// from a state stored before firings were kept: its last firing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firings_complete_after: Option<Time>,
    /// Points this rule has given in all, per group.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub total: BTreeMap<String, i64>,
}

/// The firings of a capped rule at one moment: what they asked and what the cap let through.
/// Fully capped firings are kept too (while there is room), so a merge can re-apply the cap
/// over both profiles from what each asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Award {
    /// Time of the event the rule fired on (its `at`, not when it was received).
    pub at: Time,
    /// Points given per group, parallel to the rule's `points`.
    pub points: Vec<i64>,
    /// Points asked per group (the rule's points) when the cap cut them; empty when every
    /// point asked was given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub asked: Vec<i64>,
}

/// Counter behind `did` predicates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DidState {
    /// Matching events since the lead was created (not bounded by any window).
    pub count: u64,
    /// Most recent matching times (bounded by the tracker's needs), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent: Vec<Time>,
}

/// Where an enrollment stands; stored in snake case (`active`, `converted`…).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentStatus {
    /// Still walking its steps; the only status the drip job and triggers act on.
    Active,
    /// Ran past its last step (or moved on with `goto_campaign`).
    Completed,
    /// Its campaign's `goal` held while it was active.
    Converted,
    /// Left through `exit_when`, a timeout to `exit`, `exit: true` or CRM rejection.
    Exited,
}

impl EnrollmentStatus {
    /// Name as used in scenarios and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            EnrollmentStatus::Active => "active",
            EnrollmentStatus::Completed => "completed",
            EnrollmentStatus::Converted => "converted",
            EnrollmentStatus::Exited => "exited",
        }
    }
}

/// A lead's passage through a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    /// [`Campaign::id`](crate::model::Campaign::id) of the campaign, not its index.
    pub campaign: String,
    /// `active` until it ends; then how it ended (see `end_reason` for why).
    pub status: EnrollmentStatus,
    /// Current step index (== steps.len() when done).
    pub step: usize,
    /// When the current step began.
    pub step_started_at: Time,
    /// When the lead entered the campaign.
    pub entered_at: Time,
    /// When it stopped being active; `None` while active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Time>,
    /// Why it ended (`goal`, `exit_when`, `timeout`, `exit_step`, `rejected`, `merged`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
    /// Next time the drip job has something to do for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<Time>,
    /// A send claimed and not yet confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_send: Option<PendingSend>,
    /// Outcome of each step that sent (or skipped) an email, for reports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<StepLog>,
}

/// A claimed send (the claim is stored before the mailer is called).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSend {
    /// Idempotency key of this send (lead, campaign, enrollment, step).
    pub send_id: String,
    /// Template id from the `send` step.
    pub template: String,
    /// When the claim was taken; another run may take it over `SEND_LEASE_SECS` (15 min) later.
    pub claimed_at: Time,
    /// A token chosen by the run that claimed it (empty when none was given): a run whose
    /// claim commit lost its answer reads the lead again and, finding its own token, knows the
    /// claim is its own and sends, instead of leaving the step to be marked `unknown`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub claim: String,
}

/// What happened at one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepLog {
    /// Index of the step in the campaign's `steps`.
    pub step: usize,
    /// `sent`, `suppressed`, `rejected`, `unknown`, `postponed`.
    pub outcome: String,
    /// Template, for sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// When the drip run recorded the outcome.
    pub at: Time,
    /// The provider reported the email delivered (`email_delivered`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delivered: bool,
    /// A person opened it (`email_open`; machine opens do not count).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub opened: bool,
    /// A person clicked in it (`email_click`; machine clicks do not count).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clicked: bool,
}

impl StepLog {
    /// A step outcome with no provider feedback yet.
    pub fn new(step: usize, outcome: &str, template: Option<String>, at: Time) -> StepLog {
        StepLog { step, outcome: outcome.to_string(), template, at, delivered: false, opened: false, clicked: false }
    }
}

/// An email sent (kept for the frequency cap).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendRecord {
    /// When the drip run recorded it (outcome `sent`, or `unknown`, which counts as sent).
    pub at: Time,
    /// Template id that was sent.
    pub template: String,
    /// Id of the campaign whose step sent it.
    pub campaign: String,
}

/// Handoff and SLA state for the last handoff stage entered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffState {
    /// Id of the handoff stage (one of `handoff.stages`) the lead entered.
    pub stage: String,
    /// When it entered that stage; `lead.qualified` is published with this time.
    pub qualified_at: Time,
    /// SLA deadline, while the clock runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla_due_at: Option<Time>,
    /// When the CRM reported `accepted`; stops the SLA clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<Time>,
    /// SLA breach published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breached_at: Option<Time>,
}

/// CRM outcomes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CrmFacts {
    /// Times recycled back to marketing.
    #[serde(default)]
    pub recycled: u32,
    /// Times it qualified again after a recycle or a quiet stretch.
    #[serde(default)]
    pub reopened: u32,
    /// When the CRM last reported `rejected` (the lead is then tagged `disqualified`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_at: Option<Time>,
    /// `amount` of the last `won` feedback that gave one, in the CRM's currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub won_amount: Option<f64>,
    /// `amount` of the last `lost` feedback that gave one, in the CRM's currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_amount: Option<f64>,
    /// `reason` of the last CRM feedback that gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a domain message says happened: its `type` on the bus and in webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MessageKind {
    /// The lead reached a stage that hands it to sales (`lead.qualified`).
    #[serde(rename = "lead.qualified")]
    Qualified,
    /// Sales did not act on a handed-off lead within the stage's SLA (`lead.sla_breached`).
    #[serde(rename = "lead.sla_breached")]
    SlaBreached,
    /// The lead moved from one stage to another (`lead.stage_changed`).
    #[serde(rename = "lead.stage_changed")]
    StageChanged,
    /// The lead went back to nurturing: sent back by the CRM or by an SLA rule (`lead.recycled`).
    #[serde(rename = "lead.recycled")]
    Recycled,
}

impl MessageKind {
    /// Every kind, in declaration order.
    pub const ALL: [MessageKind; 4] = [MessageKind::Qualified, MessageKind::SlaBreached, MessageKind::StageChanged, MessageKind::Recycled];

    /// The `type` as written on the bus and in webhooks.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Qualified => "lead.qualified",
            MessageKind::SlaBreached => "lead.sla_breached",
            MessageKind::StageChanged => "lead.stage_changed",
            MessageKind::Recycled => "lead.recycled",
        }
    }
}

impl std::fmt::Display for MessageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A domain message for the bus (and the webhooks that listen to it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Stable id (the webhook id), derived from the lead and what happened.
    pub id: String,
    /// What happened; serialized as `type` (`lead.qualified`…).
    #[serde(rename = "type")]
    pub kind: MessageKind,
    /// The event or job time the change happened at (not the time it is delivered).
    pub at: Time,
    /// [`Lead::id`] of the lead it is about.
    pub lead_id: String,
    /// Kind-specific payload, e.g. `{"from", "to"}` for `lead.stage_changed`, a lead summary for the others.
    #[serde(default)]
    pub data: Value,
}

impl Lead {
    /// A new, empty profile created at `at`, at stage `visitor`, with every group at its initial value.
    pub fn new(id: impl Into<String>, model: &crate::Model, at: Time) -> Lead {
        let scores = model.scores.iter().map(|g| (g.name.clone(), g.initial)).collect();
        Lead {
            id: id.into(),
            email: None,
            anonymous_ids: Vec::new(),
            crm_id: None,
            traits: Map::new(),
            scores,
            earned: BTreeMap::new(),
            profile: BTreeMap::new(),
            profile_rules: BTreeSet::new(),
            tags: BTreeSet::new(),
            stage: crate::model::VISITOR.to_string(),
            stage_history: Vec::new(),
            temperature: None,
            quadrant: None,
            consent: Consent::default(),
            first_touch: None,
            last_touch: None,
            created_at: at,
            last_activity_at: None,
            updated_at: at,
            rules: BTreeMap::new(),
            did: BTreeMap::new(),
            decay_applied: BTreeMap::new(),
            enrollments: Vec::new(),
            segments: BTreeSet::new(),
            sends: Vec::new(),
            handoff: None,
            crm: CrmFacts::default(),
            outbox: Vec::new(),
            merged_from: Vec::new(),
            event_count: 0,
        }
    }

    /// The active enrollment in a campaign, if any.
    pub fn active_enrollment(&self, campaign: &str) -> Option<&Enrollment> {
        self.enrollments.iter().rev().find(|e| e.campaign == campaign && e.status == EnrollmentStatus::Active)
    }

    /// Latest enrollment in a campaign (any status).
    pub fn latest_enrollment(&self, campaign: &str) -> Option<&Enrollment> {
        self.enrollments.iter().rev().find(|e| e.campaign == campaign)
    }
}
