//! The model file: typed form of everything SPEC §2 allows, plus the loader that validates it.
//!
//! A [`Model`] is only ever built by [`Model::from_yaml_str`] / [`Model::from_yaml_str_with`], which
//! report every mistake at once (see [`ModelErrors`]); nothing runs on an invalid model. What the
//! file names but does not hold (template files, `${VAR}` settings) comes from the caller's
//! [`ModelSources`].

pub mod diff;
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
    /// The file's required `name` key, e.g. `b2b-saas`.
    pub name: String,
    /// IANA time zone, for quiet hours and calendar reports.
    pub timezone: chrono_tz::Tz,
    /// Score groups, in file order.
    pub scores: Vec<ScoreGroup>,
    /// Named value lists for `in_list`, values lower-cased.
    pub lists: BTreeMap<String, Vec<String>>,
    /// Scoring rules, in file order.
    pub rules: Vec<Rule>,
    /// `decay` entries, in file order (empty: scores never decay).
    pub decay: Vec<Decay>,
    /// `temperature` section; `None` leaves every lead without a temperature label.
    pub temperature: Option<Temperature>,
    /// Fit × interest matrix.
    pub quadrants: Option<Quadrants>,
    /// Ordered lifecycle stages (the implicit `visitor` stage comes before them).
    pub stages: Vec<Stage>,
    /// Handoff to the CRM.
    pub handoff: Option<Handoff>,
    /// `email` section; `None` when the model sends no email.
    pub email: Option<EmailSettings>,
    /// `templates`, keyed by the id that `send` steps name.
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
    /// Required `min`: the score is clamped so it never goes below it.
    pub min: i64,
    /// Required `max`: the score is clamped so it never goes above it.
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
    /// `points`: what one firing adds (negative takes away), per score group.
    pub points: Points,
    /// Tags set when the rule fires.
    pub tags: Vec<String>,
    /// `on:` makes a behaviour rule, `when:` a profile rule.
    pub kind: RuleKind,
}

/// What makes a rule fire.
#[derive(Debug, Clone)]
pub enum RuleKind {
    /// Fires on an event.
    Behaviour(Behaviour),
    /// Counts while a lead predicate holds.
    Profile {
        /// The rule's `when`: its points count for as long as this lead predicate holds.
        when: Cond,
    },
}

/// A behaviour rule's trigger and limits.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// `on`: the event type that fires it, e.g. `page_view`.
    pub on: String,
    /// Matchers over the event's properties.
    pub filter: Option<FieldMatch>,
    /// At most once per lead.
    pub once: bool,
    /// Points cap over a trailing window.
    pub cap: Option<Cap>,
    /// `count`: fire only on the `at_least`-th matching event inside `within` (`None`: every one).
    pub count: Option<Count>,
}

/// `cap: {points, per}`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cap {
    /// Most points inside any trailing window (per group).
    pub points: i64,
    /// Length of the trailing window, e.g. `1d`.
    pub per: Span,
}

/// `count: {at_least, within}`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Count {
    /// Fires on the `at_least`-th matching event inside the window.
    pub at_least: u32,
    /// Length of the trailing window the events are counted in, e.g. `7d`.
    pub within: Span,
}

/// One `decay` entry: what inactivity takes from one score group.
#[derive(Debug, Clone, PartialEq)]
pub struct Decay {
    /// Index into [`Model::scores`] of the group it lowers.
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
    /// Index into [`Model::scores`] of the group the bands read.
    pub score: usize,
    /// Bands: every band but the last has `below`.
    pub bands: Vec<Band>,
}

/// One temperature band: a lead whose score is under `below` (and not under an earlier band's)
/// gets `label`.
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
    /// Interest axis: score group index and threshold.
    pub interest: (usize, i64),
}

/// A lifecycle stage.
#[derive(Debug, Clone)]
pub struct Stage {
    /// `id` from the file, e.g. `mql`; unique, and never `visitor`.
    pub id: String,
    /// Entry predicate; `None` for manual stages.
    pub when: Option<Cond>,
}

/// The `handoff` section: when a lead goes to sales, how long sales has, and where it is recycled to.
#[derive(Debug, Clone)]
pub struct Handoff {
    /// Stage indices (as [`Model::stage_index`] counts them: 0 is `visitor`) that publish `lead.qualified`.
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
    /// `name` from the file; deliveries and dead letters are recorded under it.
    pub name: String,
    /// Target URL.
    pub url: Option<String>,
    /// Standard Webhooks secret (`whsec_…`).
    pub secret: Option<String>,
    /// The text of `url` as written, for messages.
    pub url_source: String,
}

/// The `email` section: sender, SES configuration set, frequency cap and quiet hours.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailSettings {
    /// `from`: the sender as SES takes it, e.g. `Acme <news@acme.test>` (must contain `@`).
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
    /// Subject line, itself a Handlebars template.
    pub subject: String,
    /// HTML body (file contents when the model gave a path).
    pub html: String,
    /// Plain text body; `None` sends HTML only.
    pub text: Option<String>,
}

/// A nurture campaign.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// `id` from the file, unique; enrollments and `goto_campaign` refer to it.
    pub id: String,
    /// Entry trigger; `None` = reached only through `goto_campaign`.
    pub enter: Option<Trigger>,
    /// May a lead enter again after an earlier enrollment ended.
    pub reenter: bool,
    /// `exit_when`: ends an active enrollment as exited when it holds.
    pub exit_when: Option<Trigger>,
    /// `goal`: ends an active enrollment as converted when it holds (checked before `exit_when`).
    pub goal: Option<Trigger>,
    /// Points applied when the enrollment exits.
    pub exit_points: Points,
    /// Steps, in file order; [`Jump::To`] indexes into them.
    pub steps: Vec<Step>,
}

/// `{on?, where?, when?}`: an event trigger, a segment condition, or both.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// `on`: the event type; `None` for a pure segment condition.
    pub on: Option<String>,
    /// `where`: matchers over the event's properties (only with `on`).
    pub filter: Option<FieldMatch>,
    /// `when`: a predicate over the lead; `None` when the event alone triggers.
    pub when: Option<Cond>,
}

/// A campaign step.
#[derive(Debug, Clone)]
pub struct Step {
    /// Optional id (jump target).
    pub id: Option<String>,
    /// The step's single action key (`send`, `wait`, `if`…).
    pub kind: StepKind,
}

/// Where a branch or timeout goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Jump {
    /// `next`: the step after this one.
    Next,
    /// End the enrollment as exited.
    Exit,
    /// Index into [`Campaign::steps`] of the step whose `id` was named.
    To(usize),
}

/// What a campaign step does, one variant per step key.
#[derive(Debug, Clone)]
pub enum StepKind {
    /// `send: TEMPLATE_ID`: queue that template for the lead (skipped when not subscribed).
    Send(String),
    /// `wait: 3d`: the next step runs this long after this one started.
    Wait(Span),
    /// Wait for an event.
    WaitFor {
        /// Event type that ends the wait, e.g. `email_clicked`.
        on: String,
        /// `where`: matchers the event's properties must satisfy.
        filter: Option<FieldMatch>,
        /// How long to wait.
        within: Span,
        /// What to do when it does not come.
        timeout: Jump,
    },
    /// `if`: go to `then` or `otherwise` by a lead predicate evaluated when the step runs.
    If {
        /// Lead predicate of the `if`.
        cond: Cond,
        /// Where to go when it holds.
        then: Jump,
        /// When it does not.
        otherwise: Jump,
    },
    /// `points`: add (or take away) points per score group, clamped to the group bounds.
    Points(Points),
    /// `goto_campaign`: complete this enrollment and enter the campaign at this index.
    Goto(usize),
    /// `exit`: end the enrollment as exited.
    Exit,
}

/// Event-history counter behind `did` predicates: matching events of one kind.
#[derive(Debug, Clone)]
pub struct Tracker {
    /// Stable key (event type and filter), used in lead state.
    pub key: String,
    /// Event type it counts, from the `did` predicate.
    pub on: String,
    /// The `did` predicate's `where` matchers; `None` counts every event of the type.
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
