//! The model file: typed form of everything SPEC §2 allows, plus the loader that validates it.
//!
//! A [`Model`] is only ever built by [`Model::from_yaml_str`] / [`Model::from_yaml_str_with`], which
//! report every mistake at once (see [`ModelErrors`]); nothing runs on an invalid model. What the
//! file names but does not hold (template files, `${VAR}` settings) comes from the caller's
//! [`ModelSources`].

mod duration;
mod load;

pub use duration::Span;
pub use load::{MemorySources, ModelError, ModelErrors, ModelSources, NoSources, Unreadable};

use crate::cond::{Cond, FieldMatch};
use chrono::NaiveTime;
use std::collections::BTreeMap;

/// A validated model.
#[derive(Debug, Clone)]
pub struct Model {
    /// Model name.
    pub name: String,
    /// IANA time zone, for quiet hours and calendar reports.
    pub timezone: chrono_tz::Tz,
    /// Score groups, in file order.
    pub scores: Vec<ScoreGroup>,
    /// Named value lists for `in_list`, values lower-cased.
    pub lists: BTreeMap<String, Vec<String>>,
    /// Scoring rules, in file order.
    pub rules: Vec<Rule>,
    /// Inactivity decay.
    pub decay: Vec<Decay>,
    /// Temperature bands.
    pub temperature: Option<Temperature>,
    /// Fit × interest matrix.
    pub quadrants: Option<Quadrants>,
    /// Ordered lifecycle stages (the implicit `visitor` stage comes before them).
    pub stages: Vec<Stage>,
    /// Handoff to the CRM.
    pub handoff: Option<Handoff>,
    /// Email settings.
    pub email: Option<EmailSettings>,
    /// Templates by id.
    pub templates: BTreeMap<String, Template>,
    /// Campaigns, in file order.
    pub campaigns: Vec<Campaign>,
    /// Event-history counters needed by `did` predicates (built by the loader).
    pub trackers: Vec<Tracker>,
    /// Things worth telling the user that do not stop the model from running (for example a
    /// webhook whose `${VAR}` is not set: its deliveries are recorded, not sent).
    pub warnings: Vec<ModelError>,
}

/// The stage every anonymous profile starts in.
pub const VISITOR: &str = "visitor";

/// A named score with its bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreGroup {
    /// Group name (`engagement`, `fit`…).
    pub name: String,
    /// Lowest value.
    pub min: i64,
    /// Highest value.
    pub max: i64,
    /// Starting value (default 0).
    pub initial: i64,
}

/// Points a rule or step gives, per score group (index into [`Model::scores`]).
pub type Points = Vec<(usize, i64)>;

/// A scoring rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Stable id (from the file, or `rules[N]` when absent).
    pub id: String,
    /// Points per group.
    pub points: Points,
    /// Tags set when the rule fires.
    pub tags: Vec<String>,
    /// Behaviour or profile.
    pub kind: RuleKind,
}

/// What makes a rule fire.
#[derive(Debug, Clone)]
pub enum RuleKind {
    /// Fires on an event.
    Behaviour(Behaviour),
    /// Counts while a lead predicate holds.
    Profile {
        /// The predicate.
        when: Cond,
    },
}

/// A behaviour rule's trigger and limits.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Event type.
    pub on: String,
    /// Matchers over the event's properties.
    pub filter: Option<FieldMatch>,
    /// At most once per lead.
    pub once: bool,
    /// Points cap over a trailing window.
    pub cap: Option<Cap>,
    /// Frequency condition.
    pub count: Option<Count>,
}

/// `cap: {points, per}`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cap {
    /// Most points inside any trailing window (per group).
    pub points: i64,
    /// Window length.
    pub per: Span,
}

/// `count: {at_least, within}`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Count {
    /// Fires on the `at_least`-th matching event inside the window.
    pub at_least: u32,
    /// Window length.
    pub within: Span,
}

/// One decay entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Decay {
    /// Score group index.
    pub score: usize,
    /// Inactivity before it applies.
    pub after: Span,
    /// How much it takes away.
    pub amount: DecayAmount,
    /// Applies again every further `after`.
    pub repeat: bool,
    /// Never below this (default: the group's min).
    pub floor: i64,
}

/// `points` or `percent`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DecayAmount {
    /// Fixed points taken away (stored as a positive magnitude).
    Points(i64),
    /// Percentage of the current score taken away.
    Percent(f64),
}

/// Temperature bands over one score.
#[derive(Debug, Clone, PartialEq)]
pub struct Temperature {
    /// Score group index.
    pub score: usize,
    /// Bands: every band but the last has `below`.
    pub bands: Vec<Band>,
}

/// One temperature band.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    /// Label (`cold`, `warm`, `hot`).
    pub label: String,
    /// Upper bound (exclusive); `None` on the last band.
    pub below: Option<i64>,
}

/// `quadrants: {fit: {score, at_least}, interest: {score, at_least}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Quadrants {
    /// Fit axis: score group index and threshold.
    pub fit: (usize, i64),
    /// Interest axis.
    pub interest: (usize, i64),
}

/// A lifecycle stage.
#[derive(Debug, Clone)]
pub struct Stage {
    /// Stage id.
    pub id: String,
    /// Entry predicate; `None` for manual stages.
    pub when: Option<Cond>,
}

/// Handoff settings.
#[derive(Debug, Clone)]
pub struct Handoff {
    /// Stage indices (into [`Model::stage_ids`]) that publish `lead.qualified`.
    pub stages: Vec<usize>,
    /// Sales follow-up SLA.
    pub sla: Option<Span>,
    /// Stage index a recycled lead goes back to.
    pub recycle_to: Option<usize>,
    /// Score groups reset on recycle.
    pub recycle_reset: Vec<usize>,
    /// CRM webhooks.
    pub webhooks: Vec<Webhook>,
}

/// A webhook endpoint. `url` and `secret` are resolved from `${VAR}` at load time; an unset
/// variable leaves the field `None` (the delivery is then recorded locally, not sent).
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    /// Name.
    pub name: String,
    /// Target URL.
    pub url: Option<String>,
    /// Standard Webhooks secret (`whsec_…`).
    pub secret: Option<String>,
    /// The text of `url` as written, for messages.
    pub url_source: String,
}

/// Email settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailSettings {
    /// Sender.
    pub from: String,
    /// Reply-to address.
    pub reply_to: Option<String>,
    /// SES configuration set.
    pub configuration_set: Option<String>,
    /// At most `max` sends inside any trailing `per`, across campaigns.
    pub frequency_cap: Option<(u32, Span)>,
    /// No sends between start and end (local time; wraps midnight).
    pub quiet_hours: Option<(NaiveTime, NaiveTime)>,
}

/// An email template (Handlebars).
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// Subject.
    pub subject: String,
    /// HTML body (file contents when the model gave a path).
    pub html: String,
    /// Plain text body.
    pub text: Option<String>,
}

/// A nurture campaign.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// Id.
    pub id: String,
    /// Entry trigger; `None` = reached only through `goto_campaign`.
    pub enter: Option<Trigger>,
    /// May a lead enter again after an earlier enrollment ended.
    pub reenter: bool,
    /// Exit condition.
    pub exit_when: Option<Trigger>,
    /// Goal.
    pub goal: Option<Trigger>,
    /// Points applied when the enrollment exits.
    pub exit_points: Points,
    /// Steps.
    pub steps: Vec<Step>,
}

/// `{on?, where?, when?}`: an event trigger, a segment condition, or both.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// Event type.
    pub on: Option<String>,
    /// Matchers over event properties.
    pub filter: Option<FieldMatch>,
    /// Lead predicate.
    pub when: Option<Cond>,
}

/// A campaign step.
#[derive(Debug, Clone)]
pub struct Step {
    /// Optional id (jump target).
    pub id: Option<String>,
    /// What it does.
    pub kind: StepKind,
}

/// Where a branch or timeout goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Jump {
    /// The following step.
    Next,
    /// End the enrollment as exited.
    Exit,
    /// Step index.
    To(usize),
}

/// Step kinds.
#[derive(Debug, Clone)]
pub enum StepKind {
    /// Queue an email.
    Send(String),
    /// Wait.
    Wait(Span),
    /// Wait for an event.
    WaitFor {
        /// Event type.
        on: String,
        /// Property matchers.
        filter: Option<FieldMatch>,
        /// How long to wait.
        within: Span,
        /// What to do when it does not come.
        timeout: Jump,
    },
    /// Branch.
    If {
        /// Predicate.
        cond: Cond,
        /// When it holds.
        then: Jump,
        /// When it does not.
        otherwise: Jump,
    },
    /// Adjust points.
    Points(Points),
    /// Move to another campaign (index).
    Goto(usize),
    /// End as exited.
    Exit,
}

/// Event-history counter behind `did` predicates: matching events of one kind.
#[derive(Debug, Clone)]
pub struct Tracker {
    /// Stable key (event type and filter), used in lead state.
    pub key: String,
    /// Event type.
    pub on: String,
    /// Property matchers.
    pub filter: Option<FieldMatch>,
    /// Longest `within` among the predicates using it (`None`: some use all history).
    pub keep_for: Option<Span>,
    /// Largest `at_least` among them: how many timestamps are worth keeping.
    pub keep_count: u32,
}

impl Model {
    /// Index of a score group by name.
    pub fn group(&self, name: &str) -> Option<usize> {
        self.scores.iter().position(|g| g.name == name)
    }

    /// Index of a stage, where 0 is `visitor` and model stages follow.
    pub fn stage_index(&self, id: &str) -> Option<usize> {
        if id == VISITOR {
            return Some(0);
        }
        self.stages.iter().position(|s| s.id == id).map(|i| i + 1)
    }

    /// Stage id by index (0 is `visitor`).
    pub fn stage_id(&self, index: usize) -> &str {
        if index == 0 { VISITOR } else { &self.stages[index - 1].id }
    }

    /// Campaign index by id.
    pub fn campaign(&self, id: &str) -> Option<usize> {
        self.campaigns.iter().position(|c| c.id == id)
    }
}
