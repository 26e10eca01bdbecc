//! Reports built from counters: a pure function of the model and the counters of a day range
//! (as read from any store), used by the HTTP API, the CLI and the dashboard alike.

use crate::facts::{customer_stage, mql_stage, Tally, SEP};
use chrono::NaiveDate;
use ember_scoring::model::StepKind;
use ember_scoring::Model;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How funnel rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    /// First-touch channel (`source/medium`).
    #[default]
    Channel,
    /// Cohort month (the month the lead became a lead).
    Cohort,
}

impl std::str::FromStr for By {
    type Err = String;
    fn from_str(s: &str) -> Result<By, String> {
        match s {
            "channel" => Ok(By::Channel),
            "cohort" => Ok(By::Cohort),
            other => Err(format!("`by` is `channel` or `cohort`, not `{other}`")),
        }
    }
}

/// One stage of a funnel row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageCell {
    /// Id of a model stage (`visitor` is never a cell), in model order.
    pub stage: String,
    /// Leads that reached this stage or a later one.
    pub leads: i64,
    /// `leads / leads of the previous stage` (`None` for the first stage or an empty one).
    pub conversion: Option<f64>,
    /// Median time from reaching the previous stage to reaching this one, in hours (lower bound
    /// of its bucket: exact to the hour below 48 h, to the day below 60 days, to the week beyond).
    pub median_hours: Option<u64>,
}

/// One funnel row (a channel, a cohort month, or the total).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelRow {
    /// Channel (`source/medium`), cohort month (`2026-03`), or `total`.
    pub group: String,
    /// Per stage, in model order.
    pub stages: Vec<StageCell>,
    /// Customers / leads (first stage).
    pub lead_to_customer: Option<f64>,
    /// Median sales cycle (becoming a lead → customer), in hours (bucketed as above).
    pub sales_cycle_median_hours: Option<u64>,
}

/// The funnel report (`GET /v1/reports/funnel`, `ember report funnel`): how far each cohort got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelReport {
    /// First cohort day (leads that became leads from this day).
    pub from: NaiveDate,
    /// Last cohort day, inclusive, in the model's time zone.
    pub to: NaiveDate,
    /// Grouping of `rows`.
    pub by: By,
    /// Stage ids, in order.
    pub stages: Vec<String>,
    /// The customer stage (for `lead_to_customer` and the sales cycle).
    pub customer_stage: Option<String>,
    /// One row per group, sorted by group.
    pub rows: Vec<FunnelRow>,
    /// All leads of the period.
    pub total: FunnelRow,
}

/// What happened at one step of a campaign to the enrollments begun in the period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Step index (0-based; the index after the last step stands for "finished").
    pub step: usize,
    /// Step id, when the model names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What the step does (`send nl-welcome`, `wait 2d`…).
    pub kind: String,
    /// Enrollments that got this far.
    pub reached: i64,
    /// Enrollments waiting at this step now.
    pub active: i64,
    /// Emails sent at this step.
    pub sent: i64,
    /// Sends skipped (lead not subscribed).
    pub suppressed: i64,
    /// Sends refused by the provider or the template.
    pub rejected: i64,
    /// Sends whose outcome is unknown (never resent).
    pub unknown: i64,
    /// Sends the provider reported delivered (`email_delivered`).
    pub delivered: i64,
    /// Sends opened by a person (machine opens excluded).
    pub opened: i64,
    /// Sends clicked by a person (machine clicks excluded).
    pub clicked: i64,
    /// Unsubscribes after this step's email (the lead's last email before unsubscribing).
    pub unsubscribed: i64,
    /// Hard bounces of this step's email.
    pub bounced: i64,
    /// Enrollments that reached the goal while at this step.
    pub converted: i64,
    /// Enrollments that exited at this step (the drop-out).
    pub exited: i64,
    /// Enrollments that completed here (after the last step, or a `goto_campaign`).
    pub completed: i64,
}

/// One campaign's enrollments begun in the period, and where they stand now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CampaignReport {
    /// The model's campaign id (or the id of a campaign since removed from the model).
    pub campaign: String,
    /// Enrollments begun in the period.
    pub enrolled: i64,
    /// Of those, enrollments still walking the steps.
    pub active: i64,
    /// Of those, enrollments that ran past the last step (or moved on with `goto_campaign`).
    pub completed: i64,
    /// Converted (goal reached).
    pub converted: i64,
    /// Of those, enrollments ended by `exit_when`, an `exit` step, a timeout or CRM rejection.
    pub exited: i64,
    /// Emails sent, all steps.
    pub sent: i64,
    /// One entry per step index seen, 0 first; the index after the last step stands for "finished".
    pub steps: Vec<StepReport>,
}

/// The nurture report (`GET /v1/reports/campaigns`, `ember report campaigns`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignsReport {
    /// First day enrollments are counted from, in the model's time zone.
    pub from: NaiveDate,
    /// Last day enrollments are counted to, inclusive.
    pub to: NaiveDate,
    /// Campaigns in model order (then campaigns no longer in the model).
    pub campaigns: Vec<CampaignReport>,
}

/// Channel costs for the period (`source/medium` → amount).
pub type Costs = BTreeMap<String, f64>;

/// One bar of a score histogram: how many new leads currently score within `from..=to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreBin {
    /// Lowest score of the bin.
    pub from: i64,
    /// Highest score of the bin.
    pub to: i64,
    /// New leads whose current score is in the bin.
    pub leads: i64,
}

/// One month of lead quality.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonthQuality {
    /// `2026-03`.
    pub month: String,
    /// Leads that became leads that month.
    pub new_leads: i64,
    /// Of those, leads that reached the MQL stage (or later).
    pub mqls: i64,
    /// Of those, customers.
    pub customers: i64,
    /// Times those leads re-qualified after a recycle.
    pub reopened: i64,
    /// Current score profile of the month's new leads, per score group.
    pub scores: BTreeMap<String, Vec<ScoreBin>>,
}

/// One channel of lead quality.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelQuality {
    /// `source/medium`.
    pub channel: String,
    /// Leads in the period whose first touch came from this channel.
    pub new_leads: i64,
    /// MQLs among them.
    pub mqls: i64,
    /// Of those, leads that reached the customer stage.
    pub customers: i64,
    /// Cost of the channel for the period, when given.
    pub cost: Option<f64>,
    /// Cost per MQL.
    pub cost_per_mql: Option<f64>,
    /// Cost per sale (customer).
    pub cost_per_sale: Option<f64>,
}

/// The lead quality report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityReport {
    /// First cohort day (leads that became leads from this day).
    pub from: NaiveDate,
    /// Last cohort day, inclusive, in the model's time zone.
    pub to: NaiveDate,
    /// The stage counted as MQL.
    pub mql_stage: Option<String>,
    /// The stage counted as a sale.
    pub customer_stage: Option<String>,
    /// One entry per cohort month (`2026-03`) in the period, oldest first.
    pub months: Vec<MonthQuality>,
    /// Per first-touch channel.
    pub channels: Vec<ChannelQuality>,
}

/// `ceil(x / 10)` for `x >= 0`.
fn ceil10(x: i128) -> i128 {
    (x + 9) / 10
}

fn ratio(a: i64, b: i64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Lower median of a bucketed distribution.
fn median(hist: &BTreeMap<u64, i64>) -> Option<u64> {
    let total: i64 = hist.values().sum();
    if total <= 0 {
        return None;
    }
    let mid = (total + 1) / 2;
    let mut seen = 0;
    for (b, n) in hist {
        seen += n;
        if seen >= mid {
            return Some(*b);
        }
    }
    None
}

/// Counters of one funnel group.
#[derive(Default)]
struct Acc {
    reached: BTreeMap<String, i64>,
    gaps: BTreeMap<String, BTreeMap<u64, i64>>,
    cycle: BTreeMap<u64, i64>,
    reopened: i64,
    scores: BTreeMap<(String, u32), i64>,
}

/// Splits a key into its parts.
fn parts(key: &str) -> Vec<&str> {
    key.split(SEP).collect()
}

/// Adds one lead counter to a group's accumulator; returns the channel of the key.
fn absorb(acc: &mut Acc, p: &[&str], n: i64) {
    match p {
        ["R", stage, ..] => *acc.reached.entry(stage.to_string()).or_default() += n,
        ["T", stage, hours, ..] => {
            if let Ok(h) = hours.parse() {
                *acc.gaps.entry(stage.to_string()).or_default().entry(h).or_default() += n;
            }
        }
        ["C", hours, ..] => {
            if let Ok(h) = hours.parse() {
                *acc.cycle.entry(h).or_default() += n;
            }
        }
        ["O", ..] => acc.reopened += n,
        ["S", group, bin, ..] => {
            if let Ok(b) = bin.parse() {
                *acc.scores.entry((group.to_string(), b)).or_default() += n;
            }
        }
        _ => {}
    }
}

/// The channel label of a lead key (its last two parts).
fn channel_of(p: &[&str]) -> Option<String> {
    let kind_len = match p.first()? {
        &"R" | &"C" => 2,
        &"T" | &"S" => 3,
        &"O" => 1,
        _ => return None,
    };
    (p.len() == kind_len + 2).then(|| format!("{}/{}", p[kind_len], p[kind_len + 1]))
}

fn in_range(t: &Tally, from: NaiveDate, to: NaiveDate) -> bool {
    t.day >= from && t.day <= to
}

/// Lead counters of the period grouped by `group(tally, channel)`.
fn grouped(tallies: &[Tally], from: NaiveDate, to: NaiveDate, group: impl Fn(&Tally, &str) -> String) -> BTreeMap<String, Acc> {
    let mut out: BTreeMap<String, Acc> = BTreeMap::new();
    for t in tallies.iter().filter(|t| in_range(t, from, to)) {
        let p = parts(&t.key);
        let Some(ch) = channel_of(&p) else { continue };
        absorb(out.entry(group(t, &ch)).or_default(), &p, t.n);
    }
    out
}

fn month(d: NaiveDate) -> String {
    d.format("%Y-%m").to_string()
}

fn funnel_row(model: &Model, group: String, acc: &Acc) -> FunnelRow {
    let mut stages = Vec::with_capacity(model.stages.len());
    let mut prev: Option<i64> = None;
    for s in &model.stages {
        let leads = acc.reached.get(&s.id).copied().unwrap_or(0);
        stages.push(StageCell {
            stage: s.id.clone(),
            leads,
            conversion: prev.and_then(|p| ratio(leads, p)),
            median_hours: acc.gaps.get(&s.id).and_then(median),
        });
        prev = Some(leads);
    }
    let first = stages.first().map_or(0, |c| c.leads);
    let customers = customer_stage(model).and_then(|i| stages.get(i)).map_or(0, |c| c.leads);
    FunnelRow { group, stages, lead_to_customer: ratio(customers, first), sales_cycle_median_hours: median(&acc.cycle) }
}

fn merge_into(total: &mut Acc, a: &Acc) {
    for (k, v) in &a.reached {
        *total.reached.entry(k.clone()).or_default() += v;
    }
    for (k, h) in &a.gaps {
        let t = total.gaps.entry(k.clone()).or_default();
        for (b, n) in h {
            *t.entry(*b).or_default() += n;
        }
    }
    for (b, n) in &a.cycle {
        *total.cycle.entry(*b).or_default() += n;
    }
    total.reopened += a.reopened;
    for (k, v) in &a.scores {
        *total.scores.entry(k.clone()).or_default() += v;
    }
}

/// The funnel of the leads that became leads between `from` and `to` (inclusive).
pub fn funnel(model: &Model, tallies: &[Tally], from: NaiveDate, to: NaiveDate, by: By) -> FunnelReport {
    let groups = grouped(tallies, from, to, |t, ch| match by {
        By::Channel => ch.to_string(),
        By::Cohort => month(t.day),
    });
    let mut total = Acc::default();
    let mut rows = Vec::new();
    for (g, acc) in &groups {
        merge_into(&mut total, acc);
        rows.push(funnel_row(model, g.clone(), acc));
    }
    FunnelReport {
        from,
        to,
        by,
        stages: model.stages.iter().map(|s| s.id.clone()).collect(),
        customer_stage: customer_stage(model).map(|i| model.stages[i].id.clone()),
        rows,
        total: funnel_row(model, "total".into(), &total),
    }
}

fn step_kind(kind: &StepKind, model: &Model) -> String {
    match kind {
        StepKind::Send(t) => format!("send {t}"),
        StepKind::Wait(s) => format!("wait {s}"),
        StepKind::WaitFor { on, within, .. } => format!("wait_for {on} {within}"),
        StepKind::If { .. } => "if".into(),
        StepKind::Points(_) => "points".into(),
        StepKind::Goto(i) => format!("goto_campaign {}", model.campaigns.get(*i).map_or("?", |c| c.id.as_str())),
        StepKind::Exit => "exit".into(),
    }
}

/// The nurture report of the enrollments begun between `from` and `to` (inclusive).
pub fn campaigns(model: &Model, tallies: &[Tally], from: NaiveDate, to: NaiveDate) -> CampaignsReport {
    let mut by_id: BTreeMap<String, CampaignReport> = BTreeMap::new();
    fn step<'a>(c: &'a mut CampaignReport, i: usize) -> &'a mut StepReport {
        while c.steps.len() <= i {
            let n = c.steps.len();
            c.steps.push(StepReport { step: n, ..Default::default() });
        }
        &mut c.steps[i]
    }
    for t in tallies.iter().filter(|t| in_range(t, from, to)) {
        let p = parts(&t.key);
        let n = t.n;
        let (camp, rest) = match p.as_slice() {
            [k @ ("E" | "X" | "L"), c, rest @ ..] => (c.to_string(), (k.to_string(), rest.to_vec())),
            _ => continue,
        };
        let c = by_id.entry(camp.clone()).or_insert_with(|| CampaignReport { campaign: camp.clone(), ..Default::default() });
        match (rest.0.as_str(), rest.1.as_slice()) {
            ("E", []) => c.enrolled += n,
            ("X", [s, status]) => {
                let Ok(i) = s.parse::<usize>() else { continue };
                let st = step(c, i);
                match *status {
                    "active" => st.active += n,
                    "completed" => st.completed += n,
                    "converted" => st.converted += n,
                    "exited" => st.exited += n,
                    _ => {}
                }
                match *status {
                    "active" => c.active += n,
                    "completed" => c.completed += n,
                    "converted" => c.converted += n,
                    "exited" => c.exited += n,
                    _ => {}
                }
            }
            ("L", [s, what]) => {
                let Ok(i) = s.parse::<usize>() else { continue };
                let st = step(c, i);
                let field = match *what {
                    "sent" => &mut st.sent,
                    "suppressed" => &mut st.suppressed,
                    "rejected" => &mut st.rejected,
                    "unknown" => &mut st.unknown,
                    "delivered" => &mut st.delivered,
                    "opened" => &mut st.opened,
                    "clicked" => &mut st.clicked,
                    "unsubscribed" => &mut st.unsubscribed,
                    "bounced" => &mut st.bounced,
                    _ => continue,
                };
                *field += n;
                if *what == "sent" {
                    c.sent += n;
                }
            }
            _ => {}
        }
    }
    // Steps of the model (and the "finished" position), reached counts, descriptions.
    let mut out = Vec::new();
    let mut order: Vec<String> = model.campaigns.iter().map(|c| c.id.clone()).filter(|id| by_id.contains_key(id)).collect();
    order.extend(by_id.keys().filter(|k| model.campaign(k).is_none()).cloned());
    for id in order {
        let Some(mut c) = by_id.remove(&id) else { continue };
        if let Some(mc) = model.campaign(&id).map(|i| &model.campaigns[i]) {
            step(&mut c, mc.steps.len());
            for (i, s) in mc.steps.iter().enumerate() {
                let st = &mut c.steps[i];
                st.id = s.id.clone();
                st.kind = step_kind(&s.kind, model);
            }
            c.steps[mc.steps.len()].kind = "finished".into();
        }
        // An enrollment that ended or waits at step k went through every step before it.
        let mut reached = 0;
        for st in c.steps.iter_mut().rev() {
            reached += st.active + st.completed + st.converted + st.exited;
            st.reached = reached;
        }
        out.push(c);
    }
    CampaignsReport { from, to, campaigns: out }
}

/// The lead quality report of the leads that became leads between `from` and `to`.
pub fn quality(model: &Model, tallies: &[Tally], from: NaiveDate, to: NaiveDate, costs: &Costs) -> QualityReport {
    let mql = mql_stage(model).map(|i| model.stages[i].id.clone());
    let cust = customer_stage(model).map(|i| model.stages[i].id.clone());
    let first = model.stages.first().map(|s| s.id.clone());
    let count = |acc: &Acc, s: &Option<String>| s.as_ref().and_then(|s| acc.reached.get(s)).copied().unwrap_or(0);
    let months = grouped(tallies, from, to, |t, _| month(t.day))
        .into_iter()
        .map(|(m, acc)| {
            let scores = model
                .scores
                .iter()
                .map(|g| {
                    let bins = (0..10u32)
                        .map(|b| {
                            let span = (g.max - g.min) as i128;
                            let lo = g.min + ceil10(span * b as i128) as i64;
                            let hi = if b == 9 { g.max } else { g.min + ceil10(span * (b as i128 + 1)) as i64 - 1 };
                            ScoreBin { from: lo, to: hi.max(lo), leads: acc.scores.get(&(g.name.clone(), b)).copied().unwrap_or(0) }
                        })
                        .collect();
                    (g.name.clone(), bins)
                })
                .collect();
            MonthQuality { month: m, new_leads: count(&acc, &first), mqls: count(&acc, &mql), customers: count(&acc, &cust), reopened: acc.reopened, scores }
        })
        .collect();
    let mut by_channel = grouped(tallies, from, to, |_, ch| ch.to_string());
    for ch in costs.keys() {
        by_channel.entry(ch.clone()).or_default();
    }
    let channels = by_channel
        .into_iter()
        .map(|(ch, acc)| {
            let cost = costs.get(&ch).copied();
            let (mqls, customers) = (count(&acc, &mql), count(&acc, &cust));
            ChannelQuality {
                new_leads: count(&acc, &first),
                mqls,
                customers,
                cost,
                cost_per_mql: cost.and_then(|c| (mqls > 0).then(|| c / mqls as f64)),
                cost_per_sale: cost.and_then(|c| (customers > 0).then(|| c / customers as f64)),
                channel: ch,
            }
        })
        .collect();
    QualityReport { from, to, mql_stage: mql, customer_stage: cust, months, channels }
}

/// Reads channel costs: CSV lines `source,medium,cost` (a header line and `#` comments are
/// skipped), or `source/medium=cost` pairs separated by commas or new lines.
pub fn parse_costs(text: &str) -> Result<Costs, String> {
    let mut out = Costs::new();
    let items: Vec<&str> = if text.contains('=') { text.split([',', '\n']).collect() } else { text.lines().collect() };
    for (i, raw) in items.iter().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (channel, cost) = if let Some((k, v)) = line.split_once('=') {
            (k.trim().to_string(), v.trim())
        } else {
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            if f.len() != 3 {
                return Err(format!("costs line {}: expected `source,medium,cost`", i + 1));
            }
            if i == 0 && f[2].parse::<f64>().is_err() {
                continue; // header
            }
            (format!("{}/{}", f[0], f[1]), f[2])
        };
        let cost: f64 = cost.parse().map_err(|_| format!("costs line {}: `{cost}` is not a number", i + 1))?;
        if !cost.is_finite() || cost < 0.0 {
            return Err(format!("costs line {}: a cost is a positive number", i + 1));
        }
        *out.entry(channel).or_default() += cost;
    }
    Ok(out)
}
