//! The scoring engine: every decision Ember makes about a lead, as pure functions.
//!
//! Each entry point takes the lead state, an input and the current time, changes the lead in
//! place and returns what changed ([`Outcome`]) — the explanation stored with the event for the
//! timeline. Side effects (emails, messages) come back as data: emails as [`SendIntent`]s from
//! [`Engine::drip`], messages in [`Lead::outbox`].
//!
//! ## Scores
//! A group's score is `clamp(initial + earned + profile)`. `earned` holds behaviour awards,
//! decay and campaign points; each is clamped as it is applied, so points beyond a bound are
//! not banked where nobody can see them. `profile` is recomputed from the profile rules that
//! currently hold.
//!
//! ## Order inside one change (SPEC §2)
//! score → stages → goals and exits of active enrollments → `wait_for` steps satisfied by the
//! event → entries.

mod campaigns;
mod caps;
mod counts;
mod decay;
mod merge;
mod rules;
mod stages;

pub use campaigns::{SendIntent, SendOutcome, BLOCKED_RETRY_SECS, SEND_LEASE_SECS};
pub use stages::CrmAction;

use crate::cond::{LeadFacts, Test, Val};
use crate::event::Event;
use crate::lead::{Lead, Message};
use crate::model::{Model, Span};
use crate::Time;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// The engine for one model: the model plus lookup tables built once.
#[derive(Debug, Clone)]
pub struct Engine {
    model: Arc<Model>,
    /// Behaviour rule indices by event type.
    rules_by_type: HashMap<String, Vec<usize>>,
    /// Tracker indices by event type.
    trackers_by_type: HashMap<String, Vec<usize>>,
    /// Profile rules whose predicate reads only traits.
    profile_static: Vec<bool>,
    /// Any profile rule reads more than traits (so it is re-evaluated on every change).
    profile_dynamic: bool,
    /// Shared names for explanations (no allocation per change): rule ids, group names, cap notes.
    pub(crate) rule_ids: Vec<Arc<str>>,
    pub(crate) group_names: Vec<Arc<str>>,
    pub(crate) cap_notes: Vec<Option<Arc<str>>>,
}

/// One thing a change did, kept with the event for the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// Points given (or withheld) by a rule, decay, step or CRM action.
    Points {
        /// Rule id, `decay[i]`, `campaign:<id>`, `profile:<rule>`, `crm:<action>`, `merge`.
        source: Arc<str>,
        /// Name of the score group, e.g. `engagement`.
        group: Arc<str>,
        /// Points the source asked for.
        asked: i64,
        /// Points actually applied, after caps and bounds (0 when all were withheld).
        given: i64,
        /// Why they differ (cap, once, bounds, machine traffic).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<Arc<str>>,
    },
    /// A rule matched but gave nothing.
    Skipped {
        /// [`Rule::id`](crate::model::Rule::id) of the rule that matched.
        source: Arc<str>,
        /// Human-readable reason for the timeline, e.g. `once: already given`.
        note: Arc<str>,
    },
    /// A tag the lead did not have was added (by a rule, or `disqualified` / `lost` from the CRM).
    Tagged {
        /// The tag as the rule (or CRM action) names it.
        tag: String,
    },
    /// The lead entered another stage (by its rules, a CRM action or a recycle).
    Stage {
        /// Id of the stage the lead left.
        from: String,
        /// Id of the stage it entered.
        to: String,
    },
    /// Enrollment started or ended.
    Campaign {
        /// [`Campaign::id`](crate::model::Campaign::id) from the model.
        campaign: String,
        /// `entered`, `completed`, `converted`, `exited`, `advanced`.
        what: String,
    },
    /// Consent changed (an opt-in, unsubscribe, hard bounce or complaint was recorded).
    Consent {
        /// `opted_in`, `unsubscribed`, `bounced`, `complained`.
        what: String,
    },
}

/// What a change did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Changes, in order.
    pub changes: Vec<Change>,
}

impl Outcome {
    pub(crate) fn push(&mut self, c: Change) {
        self.changes.push(c);
    }
    /// Net points per group in this outcome.
    pub fn net_points(&self) -> HashMap<String, i64> {
        let mut out = HashMap::new();
        for c in &self.changes {
            if let Change::Points { group, given, .. } = c {
                *out.entry(group.to_string()).or_insert(0) += given;
            }
        }
        out
    }
}

/// Note on points cut by a score's bounds.
pub(crate) const BOUNDS_NOTE: &str = "limited by the score's bounds";

/// When a lead next has scheduled work (the store indexes these).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Due {
    /// When the next decay entry applies; `None` when nothing can decay (no entries, every group at its floor, no activity yet).
    pub decay: Option<Time>,
    /// Next drip step (or an unpublished message).
    pub drip: Option<Time>,
    /// SLA deadline.
    pub sla: Option<Time>,
}

impl Engine {
    /// Builds the engine for a validated model.
    pub fn new(model: Arc<Model>) -> Engine {
        let mut rules_by_type: HashMap<String, Vec<usize>> = HashMap::new();
        let mut profile_static = Vec::new();
        let mut profile_dynamic = false;
        for (i, r) in model.rules.iter().enumerate() {
            match &r.kind {
                crate::model::RuleKind::Behaviour(b) => {
                    rules_by_type.entry(b.on.clone()).or_default().push(i);
                    profile_static.push(false);
                }
                crate::model::RuleKind::Profile { when } => {
                    let s = when.reads_only_traits();
                    profile_dynamic |= !s;
                    profile_static.push(s);
                }
            }
        }
        let mut trackers_by_type: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, t) in model.trackers.iter().enumerate() {
            trackers_by_type.entry(t.on.clone()).or_default().push(i);
        }
        let rule_ids = model.rules.iter().map(|r| Arc::from(r.id.as_str())).collect();
        let group_names = model.scores.iter().map(|g| Arc::from(g.name.as_str())).collect();
        let cap_notes = model
            .rules
            .iter()
            .map(|r| match &r.kind {
                crate::model::RuleKind::Behaviour(b) => b.cap.map(|c| Arc::from(format!("cap: {} points per {}", c.points, c.per))),
                crate::model::RuleKind::Profile { .. } => None,
            })
            .collect();
        Engine { model, rules_by_type, trackers_by_type, profile_static, profile_dynamic, rule_ids, group_names, cap_notes }
    }

    /// The validated model the engine was built from.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The shared model handle.
    pub fn model_arc(&self) -> &Arc<Model> {
        &self.model
    }

    /// A new profile for an event's identity, before the event is applied.
    pub fn new_lead(&self, id: impl Into<String>, at: Time) -> Lead {
        let mut lead = Lead::new(id, &self.model, at);
        self.refresh(&mut lead, at, true);
        lead
    }

    /// Applies one event (already deduplicated by the caller) to the lead.
    pub fn ingest(&self, lead: &mut Lead, event: &Event) -> Outcome {
        let mut out = Outcome::default();
        let at = event.at;
        lead.updated_at = lead.updated_at.max(at);
        lead.created_at = lead.created_at.min(at);
        lead.event_count += 1;
        let traits_changed = self.absorb_identity(lead, event, &mut out);
        if event.is_activity() {
            if lead.last_activity_at.is_none_or(|t| t < at) {
                lead.last_activity_at = Some(at);
            }
            lead.decay_applied.clear();
        }
        self.consent(lead, event, &mut out);
        self.track(lead, event);
        self.email_feedback(lead, event);
        self.behaviour(lead, event, &mut out);
        self.after_change(lead, Some(event), at, traits_changed, &mut out);
        out
    }

    /// The pipeline every change ends with: profile and scores → stages → goals and exits →
    /// `wait_for` → entries.
    pub(crate) fn after_change(&self, lead: &mut Lead, event: Option<&Event>, at: Time, traits_changed: bool, out: &mut Outcome) {
        self.profile(lead, traits_changed, out);
        self.refresh(lead, at, false);
        self.advance_stages(lead, at, out);
        self.goals_and_exits(lead, event, at, out);
        if let Some(e) = event {
            self.wait_for_satisfied(lead, e, out);
        }
        self.entries(lead, event, at, out);
    }

    /// Recomputes the derived fields: clamped scores, temperature, quadrant.
    pub(crate) fn refresh(&self, lead: &mut Lead, _at: Time, _new: bool) {
        for g in &self.model.scores {
            let earned = lead.earned.get(&g.name).copied().unwrap_or(0);
            let profile = lead.profile.get(&g.name).copied().unwrap_or(0);
            let v = (g.initial + earned + profile).clamp(g.min, g.max);
            match lead.scores.get_mut(&g.name) {
                Some(s) => *s = v,
                None => {
                    lead.scores.insert(g.name.clone(), v);
                }
            }
        }
        let t = self.temperature_of(lead);
        if lead.temperature.as_deref() != t {
            lead.temperature = t.map(str::to_string);
        }
        let q = self.quadrant_of(lead);
        if lead.quadrant.as_deref() != q {
            lead.quadrant = q.map(str::to_string);
        }
    }

    /// Score of a group by index.
    pub(crate) fn score(&self, lead: &Lead, group: usize) -> i64 {
        let g = &self.model.scores[group];
        lead.scores.get(&g.name).copied().unwrap_or(g.initial)
    }

    /// Adds points to a group, clamped to its bounds; returns what was applied.
    pub(crate) fn add_points(&self, lead: &mut Lead, group: usize, delta: i64) -> i64 {
        let g = &self.model.scores[group];
        let cur = self.score(lead, group);
        let new = (cur + delta).clamp(g.min, g.max);
        let given = new - cur;
        if given != 0 {
            *lead.earned.entry(g.name.clone()).or_insert(0) += given;
            lead.scores.insert(g.name.clone(), new);
        }
        given
    }

    /// Applies a list of points from `source`, recording each.
    pub(crate) fn apply_points(&self, lead: &mut Lead, points: &[(usize, i64)], source: &str, out: &mut Outcome) {
        for &(group, n) in points {
            let given = self.add_points(lead, group, n);
            out.push(Change::Points {
                source: source.into(),
                group: self.group_names[group].clone(),
                asked: n,
                given,
                note: (given != n).then(|| BOUNDS_NOTE.into()),
            });
        }
    }

    /// Temperature label for the current score.
    pub fn temperature_of(&self, lead: &Lead) -> Option<&str> {
        let t = self.model.temperature.as_ref()?;
        let s = self.score(lead, t.score);
        t.bands.iter().find(|b| b.below.is_none_or(|below| s < below)).map(|b| b.label.as_str())
    }

    /// Quadrant label for the current scores.
    pub fn quadrant_of(&self, lead: &Lead) -> Option<&'static str> {
        let q = self.model.quadrants.as_ref()?;
        let fits = self.score(lead, q.fit.0) >= q.fit.1;
        let interested = self.score(lead, q.interest.0) >= q.interest.1;
        Some(match (fits, interested) {
            (true, true) => "engage_now",
            (true, false) => "nurture",
            (false, true) => "sales_check",
            (false, false) => "deprioritize",
        })
    }

    /// Evaluation view of a lead at a time.
    pub(crate) fn facts<'a>(&'a self, lead: &'a Lead, now: Time) -> Facts<'a> {
        let stage = self.model.stage_index(&lead.stage).unwrap_or(0);
        Facts { engine: self, lead, now, stage }
    }

    /// When the lead next has scheduled work.
    pub fn due(&self, lead: &Lead) -> Due {
        Due { decay: self.decay_due(lead), drip: self.drip_due(lead), sla: self.sla_due(lead) }
    }

    /// Queues a message for the bus, with an id stable across retries.
    pub(crate) fn publish(&self, lead: &mut Lead, kind: crate::lead::MessageKind, at: Time, key: &str, data: serde_json::Value) {
        let id = format!("{}.{}.{}.{}", lead.id, kind.as_str(), key, at.timestamp_millis());
        if lead.outbox.iter().any(|m| m.id == id) {
            return;
        }
        lead.outbox.push(Message { id, kind, at, lead_id: lead.id.clone(), data });
    }
}

/// A lead as predicates see it.
pub(crate) struct Facts<'a> {
    engine: &'a Engine,
    lead: &'a Lead,
    now: Time,
    /// Index of the lead's stage (looked up once).
    stage: usize,
}

impl LeadFacts for Facts<'_> {
    fn field(&self, key: &str) -> Option<Val<'_>> {
        if key == "email" {
            return self.lead.email.as_deref().map(Val::Str);
        }
        crate::cond::lookup(&self.lead.traits, key).map(Val::Json)
    }
    fn identified(&self) -> bool {
        self.lead.email.is_some()
    }
    fn subscribed(&self) -> bool {
        self.lead.email.is_some() && self.lead.consent.subscribed()
    }
    fn score(&self, group: usize) -> i64 {
        self.engine.score(self.lead, group)
    }
    fn stage(&self) -> (&str, usize) {
        (&self.lead.stage, self.stage)
    }
    fn has_tag_matching(&self, test: &Test, lists: &std::collections::BTreeMap<String, Vec<String>>) -> bool {
        self.lead.tags.iter().any(|t| test.eval(Some(Val::Str(t)), lists))
    }
    fn email_domain(&self) -> Option<&str> {
        self.lead.email.as_deref().and_then(|e| e.rsplit_once('@')).map(|(_, d)| d)
    }
    fn quadrant(&self) -> Option<&str> {
        self.engine.quadrant_of(self.lead)
    }
    fn temperature(&self) -> Option<&str> {
        self.engine.temperature_of(self.lead)
    }
    fn did_count(&self, tracker: usize, within: Option<Span>) -> u64 {
        let key = &self.engine.model.trackers[tracker].key;
        let Some(state) = self.lead.did.get(key) else { return 0 };
        match within {
            None => state.count,
            Some(w) => {
                let from = self.now - w.to_chrono();
                state.recent.iter().filter(|t| **t > from && **t <= self.now).count() as u64
            }
        }
    }
}
