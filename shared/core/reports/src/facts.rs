//! Counters: what one lead contributes to the reports, and what a commit changes.
//!
//! Every report number is a sum of small integer counters, one per (day, key). A lead's
//! contribution is a pure function of its state ([`facts`]); a commit that takes a lead from
//! `before` to `after` (and, on a merge, deletes `retired`) adds `facts(after) - facts(before)
//! - facts(retired)` ([`tallies`]). Because the store writes these increments in the same
//! atomic write as the lead (conditioned on the lead's version), the counters always equal
//! the sum of the facts of the leads as committed — exactly once, whatever retries happen.
//! Erasure deletes the lead but not the counters: an erased person keeps counting,
//! anonymously (no key carries a lead id, an email or a name).
//!
//! # Keys
//!
//! Lead facts are dated by the lead's **cohort day**: the day (in the model's time zone) it
//! first reached the model's first stage (became a lead). Only leads that did so count in the
//! funnel and quality reports. `<ch>` is the first-touch channel, `source|medium`
//! (`(direct)` / `(none)` when absent).
//!
//! | key | value |
//! |---|---|
//! | `R\|<stage>\|<ch>` | 1: the lead reached `<stage>` or a later stage |
//! | `T\|<stage>\|<hours>\|<ch>` | 1: hours from reaching the previous stage to `<stage>`, bucketed ([`duration_bucket`]) |
//! | `C\|<hours>\|<ch>` | 1: sales cycle, from becoming a lead to reaching the customer stage, bucketed |
//! | `O\|<ch>` | times the lead re-qualified after a recycle (reopened) |
//! | `S\|<group>\|<bin>\|<ch>` | 1: the lead's current score of `<group>` falls in bin `<bin>` (0–9, tenths of the group's range) |
//!
//! Campaign facts are dated by the day the enrollment began (any lead, identified or not):
//!
//! | key | value |
//! |---|---|
//! | `E\|<campaign>` | 1 per enrollment |
//! | `X\|<campaign>\|<step>\|<status>` | 1: the enrollment is `active` at step `<step>`, or ended (`completed`, `converted`, `exited`) there |
//! | `L\|<campaign>\|<step>\|<outcome>` | step outcomes: `sent`, `suppressed`, `rejected`, `unknown`; provider feedback on sends: `delivered`, `opened`, `clicked` (people, not machines); `unsubscribed` and `bounced`, each given to the lead's last send before it happened |
//!
//! Key parts never contain `|` (replaced by `/`).
//!
//! # Why these choices
//!
//! - **Cohort dating** puts every fact of a lead on one day, so a commit usually changes one
//!   or two counters, and a report over `[from, to]` reads only the days of that range. It is
//!   also what conversion needs: a funnel over a period compares the same leads at each stage.
//! - **Durations as buckets**: whole hours up to 48 h, whole days up to 60 days, whole weeks
//!   beyond. The median of a bucketed distribution is exact to that resolution and needs
//!   no per-lead reads.
//! - **Current scores, binned**: "the score profile of March's new leads" is their scores now;
//!   a counter moves only when a score crosses a tenth of its group's range.

use chrono::NaiveDate;
use ember_scoring::lead::Lead;
use ember_scoring::{Model, Time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One counter increment (or, read back from a store, one counter's value).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Tally {
    /// Day the fact is dated by (model time zone).
    pub day: NaiveDate,
    /// Counter key (see the module docs).
    pub key: String,
    /// Increment (may be negative) or value.
    pub n: i64,
}

/// Separator of key parts.
pub const SEP: char = '|';

/// A key part with the separator replaced.
fn part(s: &str) -> String {
    s.replace(SEP, "/")
}

/// The first-touch channel as two key parts (`source`, `medium`).
pub fn channel(lead: &Lead) -> (String, String) {
    let t = lead.first_touch.as_ref();
    let src = t.and_then(|t| t.source.as_deref()).filter(|s| !s.is_empty()).unwrap_or("(direct)");
    let med = t.and_then(|t| t.medium.as_deref()).filter(|s| !s.is_empty()).unwrap_or("(none)");
    (part(src), part(med))
}

/// The day of `at` in the model's time zone.
pub fn day_of(model: &Model, at: Time) -> NaiveDate {
    at.with_timezone(&model.timezone).date_naive()
}

/// Bucket of a duration, in hours (its lower bound): whole hours below 48 h, whole days
/// below 60 days, whole weeks beyond. Negative durations count as 0.
pub fn duration_bucket(d: chrono::Duration) -> u64 {
    let h = u64::try_from(d.num_hours()).unwrap_or(0);
    if h < 48 {
        h
    } else if h < 60 * 24 {
        h / 24 * 24
    } else {
        h / 168 * 168
    }
}

/// Bin (0–9) of a score in its group's range.
pub fn score_bin(min: i64, max: i64, v: i64) -> u32 {
    if max <= min {
        return 0;
    }
    let pos = (v.clamp(min, max) - min) as i128 * 10 / (max - min) as i128;
    pos.clamp(0, 9) as u32
}

/// Index (into `model.stages`, 0-based) of the customer stage: the stage `customer`, else the last.
pub fn customer_stage(model: &Model) -> Option<usize> {
    model.stages.iter().position(|s| s.id == "customer").or_else(|| model.stages.len().checked_sub(1))
}

/// Index (0-based) of the MQL stage: the first handoff stage, else the stage `mql`.
pub fn mql_stage(model: &Model) -> Option<usize> {
    model
        .handoff
        .as_ref()
        .and_then(|h| h.stages.iter().min().and_then(|j| j.checked_sub(1)))
        .or_else(|| model.stages.iter().position(|s| s.id == "mql"))
}

/// When the lead first reached each model stage or a later one (`None`: not reached), by
/// 0-based index into `model.stages`.
pub fn reached(model: &Model, lead: &Lead) -> Vec<Option<Time>> {
    let n = model.stages.len();
    let mut first: Vec<Option<Time>> = vec![None; n];
    for e in &lead.stage_history {
        let Some(j) = model.stage_index(&e.stage).filter(|j| *j >= 1) else { continue };
        let i = j - 1;
        if first[i].is_none_or(|t| e.at < t) {
            first[i] = Some(e.at);
        }
    }
    // The current stage counts even if the history lost its entry (older data).
    if let Some(j) = model.stage_index(&lead.stage).filter(|j| *j >= 1) {
        if first[j - 1].is_none() {
            first[j - 1] = Some(lead.created_at);
        }
    }
    // Reaching a stage counts as reaching every earlier one, at the earliest later time.
    let mut out = vec![None; n];
    let mut acc: Option<Time> = None;
    for i in (0..n).rev() {
        acc = match (acc, first[i]) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        out[i] = acc;
    }
    out
}

/// Adds the facts of `lead` times `sign` to `acc`.
pub fn add_facts(model: &Model, lead: &Lead, sign: i64, acc: &mut BTreeMap<(NaiveDate, String), i64>) {
    let mut add = |day: NaiveDate, key: String, n: i64| {
        if n != 0 {
            *acc.entry((day, key)).or_insert(0) += sign * n;
        }
    };
    let reach = reached(model, lead);
    if let Some(Some(became)) = reach.first().copied() {
        let day = day_of(model, became);
        let (src, med) = channel(lead);
        let ch = format!("{src}{SEP}{med}");
        for (i, at) in reach.iter().enumerate() {
            let Some(at) = at else { continue };
            let stage = part(&model.stages[i].id);
            add(day, format!("R{SEP}{stage}{SEP}{ch}"), 1);
            if i > 0 {
                if let Some(prev) = reach[i - 1] {
                    add(day, format!("T{SEP}{stage}{SEP}{}{SEP}{ch}", duration_bucket(*at - prev)), 1);
                }
            }
        }
        if let Some(Some(won)) = customer_stage(model).and_then(|c| reach.get(c)) {
            add(day, format!("C{SEP}{}{SEP}{ch}", duration_bucket(*won - became)), 1);
        }
        add(day, format!("O{SEP}{ch}"), i64::from(lead.crm.reopened));
        for g in &model.scores {
            let v = lead.scores.get(&g.name).copied().unwrap_or(g.initial);
            add(day, format!("S{SEP}{}{SEP}{}{SEP}{ch}", part(&g.name), score_bin(g.min, g.max, v)), 1);
        }
    }

    // The last send at or before a time (for unsubscribes and bounces).
    let last_send_before = |t: Time| {
        let mut best: Option<(usize, usize, Time)> = None;
        for (i, en) in lead.enrollments.iter().enumerate() {
            for l in en.log.iter().filter(|l| l.outcome == "sent" && l.at <= t) {
                if best.is_none_or(|(_, _, at)| at <= l.at) {
                    best = Some((i, l.step, l.at));
                }
            }
        }
        best.map(|(i, step, _)| (i, step))
    };
    let mut blame: Vec<((usize, usize), &str)> = Vec::new();
    if let Some(x) = lead.consent.unsubscribed_at.and_then(last_send_before) {
        blame.push((x, "unsubscribed"));
    }
    if let Some(x) = lead.consent.bounced_at.and_then(last_send_before) {
        blame.push((x, "bounced"));
    }
    for (i, en) in lead.enrollments.iter().enumerate() {
        let day = day_of(model, en.entered_at);
        let c = part(&en.campaign);
        add(day, format!("E{SEP}{c}"), 1);
        add(day, format!("X{SEP}{c}{SEP}{}{SEP}{}", en.step, en.status.as_str()), 1);
        for l in &en.log {
            if matches!(l.outcome.as_str(), "sent" | "suppressed" | "rejected" | "unknown") {
                add(day, format!("L{SEP}{c}{SEP}{}{SEP}{}", l.step, part(&l.outcome)), 1);
            }
            for (on, what) in [(l.delivered, "delivered"), (l.opened, "opened"), (l.clicked, "clicked")] {
                if on {
                    add(day, format!("L{SEP}{c}{SEP}{}{SEP}{what}", l.step), 1);
                }
            }
        }
        for ((bi, step), what) in &blame {
            if *bi == i {
                add(day, format!("L{SEP}{c}{SEP}{step}{SEP}{what}"), 1);
            }
        }
    }
}

/// The facts of one lead (every counter it contributes to, with its contribution).
pub fn facts(model: &Model, lead: &Lead) -> Vec<Tally> {
    let mut acc = BTreeMap::new();
    add_facts(model, lead, 1, &mut acc);
    collect(acc)
}

/// The counter increments of a commit taking a lead from `before` (`None`: new) to `after`,
/// deleting `retired` (a merged profile). Empty when nothing a report shows changed.
pub fn tallies(model: &Model, before: Option<&Lead>, after: &Lead, retired: Option<&Lead>) -> Vec<Tally> {
    let mut acc = BTreeMap::new();
    for gone in [before, retired].into_iter().flatten() {
        add_facts(model, gone, -1, &mut acc);
    }
    tallies_from(model, acc, after)
}

/// The counter increments of a commit, given the (negated) facts of the stored leads it
/// replaces, already added to `acc` with [`add_facts`] and sign `-1`, and the lead as committed.
pub fn tallies_from(model: &Model, mut acc: BTreeMap<(NaiveDate, String), i64>, after: &Lead) -> Vec<Tally> {
    add_facts(model, after, 1, &mut acc);
    collect(acc)
}

fn collect(acc: BTreeMap<(NaiveDate, String), i64>) -> Vec<Tally> {
    acc.into_iter().filter(|(_, n)| *n != 0).map(|((day, key), n)| Tally { day, key, n }).collect()
}

/// Sums tallies per (day, key), dropping zeros, sorted: the canonical form of a store's counters.
pub fn normalize(tallies: impl IntoIterator<Item = Tally>) -> Vec<Tally> {
    let mut acc = BTreeMap::new();
    for t in tallies {
        *acc.entry((t.day, t.key)).or_insert(0) += t.n;
    }
    collect(acc)
}
