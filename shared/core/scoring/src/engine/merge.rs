//! Anonymous → identified merge.
//!
//! When an event carries both an anonymous id and an email, the anonymous profile is merged into
//! the email's lead. The merge combines the two states without counting anything twice: rule
//! counters are united and re-checked (a `once` rule both sides fired keeps one award; awards
//! of a capped rule are re-capped over the united windows; the hits and firing times of a `count`
//! rule are united, so late events are judged on both profiles), `did` counters and tags are
//! united, the earliest first touch and creation time win, and the stage is the further one.
//! Profile rules are united (one held by both counts once) and re-evaluated on the merged
//! lead. Scores stay within their bounds: what the sum of the two profiles would put past
//! `min` or `max` is cut (a `merge` entry on the timeline), never banked. Combining is
//! symmetric in the anonymous profiles — merging A then B gives the same lead as B then A —
//! unless a bound cuts, which, as for events, applies in the order the merges happen.

use super::{caps, counts};
use super::rules::prune_times;
use super::{Change, Engine, Outcome, BOUNDS_NOTE};
use crate::lead::{EnrollmentStatus, Lead, RuleState};
use crate::model::RuleKind;
use crate::Time;

impl Engine {
    /// Merges the anonymous profile `from` into `into` (which keeps its id and email).
    pub fn merge(&self, into: &mut Lead, from: Lead, now: Time) -> Outcome {
        let mut out = Outcome::default();
        // Identity and traits: `into` wins, `from` fills the gaps.
        for a in &from.anonymous_ids {
            if !into.anonymous_ids.contains(a) {
                into.anonymous_ids.push(a.clone());
            }
        }
        into.anonymous_ids.sort();
        if into.email.is_none() {
            into.email = from.email.clone();
        }
        for (k, v) in &from.traits {
            into.traits.entry(k.clone()).or_insert_with(|| v.clone());
        }
        into.merged_from.push(from.id.clone());
        into.merged_from.extend(from.merged_from.iter().cloned());
        into.merged_from.sort();
        into.merged_from.dedup();
        into.created_at = into.created_at.min(from.created_at);
        into.updated_at = into.updated_at.max(from.updated_at).max(now);
        into.event_count += from.event_count;
        if from.first_touch.as_ref().is_some_and(|f| into.first_touch.as_ref().is_none_or(|i| (f.at, f) < (i.at, i))) {
            into.first_touch = from.first_touch.clone();
        }
        if from.last_touch.as_ref().is_some_and(|f| into.last_touch.as_ref().is_none_or(|i| (f.at, f) > (i.at, i))) {
            into.last_touch = from.last_touch.clone();
        }
        // Consent: the latest of each fact.
        let c = &mut into.consent;
        c.opted_in_at = max_opt(c.opted_in_at, from.consent.opted_in_at);
        c.unsubscribed_at = max_opt(c.unsubscribed_at, from.consent.unsubscribed_at);
        c.bounced_at = min_opt(c.bounced_at, from.consent.bounced_at);
        c.complained_at = min_opt(c.complained_at, from.consent.complained_at);
        for t in &from.tags {
            if into.tags.insert(t.clone()) {
                out.push(Change::Tagged { tag: t.clone() });
            }
        }
        // Behaviour points: sum, then take back what the united counters say was counted twice.
        for (g, v) in &from.earned {
            *into.earned.entry(g.clone()).or_insert(0) += v;
        }
        for rule in &self.model.rules {
            let RuleKind::Behaviour(b) = &rule.kind else { continue };
            let Some(theirs) = from.rules.get(&rule.id) else { continue };
            let mine = into.rules.remove(&rule.id).unwrap_or_default();
            let names: Vec<String> = rule.points.iter().map(|(g, _)| self.model.scores[*g].name.clone()).collect();
            let (united, excess) = unite_rule(&names, b, mine, theirs.clone());
            for (k, &(g, _)) in rule.points.iter().enumerate() {
                let e = excess.get(k).copied().unwrap_or(0);
                if e != 0 {
                    let name = self.model.scores[g].name.clone();
                    *into.earned.entry(name.clone()).or_insert(0) -= e;
                    out.push(Change::Points { source: rule.id.as_str().into(), group: name.into(), asked: -e, given: -e, note: Some("merge: counted on both profiles".into()) });
                }
            }
            into.rules.insert(rule.id.clone(), united);
        }
        for t in &self.model.trackers {
            let Some(theirs) = from.did.get(&t.key) else { continue };
            let st = into.did.entry(t.key.clone()).or_default();
            st.count += theirs.count;
            st.recent.extend(theirs.recent.iter().copied());
            st.recent.sort();
            let latest = st.recent.last().copied();
            prune_times(&mut st.recent, t.keep_for.zip(latest).map(|(w, l)| l - w.to_chrono()), t.keep_count as usize);
        }
        // Decay: the counters of the side with the later activity describe the current stretch.
        let before = into.last_activity_at;
        match from.last_activity_at.cmp(&before) {
            std::cmp::Ordering::Greater => into.decay_applied = from.decay_applied.clone(),
            std::cmp::Ordering::Equal => {
                for (k, v) in &from.decay_applied {
                    let e = into.decay_applied.entry(*k).or_insert(0);
                    *e = (*e).max(*v);
                }
            }
            std::cmp::Ordering::Less => {}
        }
        into.last_activity_at = max_opt(into.last_activity_at, from.last_activity_at);
        // Stage: the further one; history united.
        let mine = self.model.stage_index(&into.stage).unwrap_or(0);
        let theirs = self.model.stage_index(&from.stage).unwrap_or(0);
        if theirs > mine {
            into.stage = from.stage.clone();
        }
        into.stage_history.extend(from.stage_history.iter().cloned());
        into.stage_history.sort_by(|a, b| (a.at, &a.stage).cmp(&(b.at, &b.stage)));
        into.stage_history.dedup_by(|a, b| a.stage == b.stage && a.at == b.at);
        // Enrollments: keep both histories; one active enrollment per campaign. Where both
        // are active, the identified lead's stays and the anonymous one is dropped (SPEC §2:
        // not an exit, so neither the lead document nor the reports show one).
        for e in from.enrollments {
            if e.status == EnrollmentStatus::Active && into.active_enrollment(&e.campaign).is_some() {
                continue;
            }
            into.enrollments.push(e);
        }
        into.enrollments.sort_by(|a, b| (a.entered_at, &a.campaign).cmp(&(b.entered_at, &b.campaign)));
        into.segments.extend(from.segments);
        into.sends.extend(from.sends);
        into.sends.sort_by(|a, b| a.at.cmp(&b.at));
        if into.handoff.is_none() {
            into.handoff = from.handoff;
        }
        into.outbox.extend(from.outbox);
        // Profile rules: a rule both profiles held was counted on both timelines; the rules are
        // then re-evaluated on the merged lead (which records what stops or starts holding).
        self.unite_profile_rules(into, &from.profile_rules, &mut out);
        self.profile(into, true, &mut out);
        // Bounds (SPEC §2): the merged parts are kept within [min, max] like any change;
        // what would pass a bound is not banked, and the cut is recorded.
        for g in &self.model.scores {
            let earned = into.earned.get(&g.name).copied().unwrap_or(0);
            let total = g.initial + earned + into.profile.get(&g.name).copied().unwrap_or(0);
            let cut = total.clamp(g.min, g.max) - total;
            if cut != 0 {
                into.earned.insert(g.name.clone(), earned + cut);
                out.push(Change::Points { source: "merge".into(), group: g.name.as_str().into(), asked: cut, given: cut, note: Some(BOUNDS_NOTE.into()) });
            }
        }
        // Everything derived is recomputed from the united state.
        self.after_change(into, None, now, true, &mut out);
        out
    }

    /// Adds the profile rules `theirs` (the merged profile's) to `into`'s, with their points;
    /// a rule held by both is counted once, and the second count is taken back on the timeline.
    fn unite_profile_rules(&self, into: &mut Lead, theirs: &std::collections::BTreeSet<String>, out: &mut Outcome) {
        for r in &self.model.rules {
            if !theirs.contains(&r.id) {
                continue;
            }
            let both = !into.profile_rules.insert(r.id.clone());
            for &(g, n) in &r.points {
                let name = &self.model.scores[g].name;
                if both {
                    out.push(Change::Points { source: r.id.as_str().into(), group: name.as_str().into(), asked: -n, given: -n, note: Some("merge: counted on both profiles".into()) });
                } else {
                    *into.profile.entry(name.clone()).or_insert(0) += n;
                }
            }
        }
    }
}

fn max_opt(a: Option<Time>, b: Option<Time>) -> Option<Time> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

fn min_opt(a: Option<Time>, b: Option<Time>) -> Option<Time> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

/// Unites two counters of one rule (`names`: the group of each points entry); returns the
/// united state and, per points entry, the points that were counted twice.
fn unite_rule(names: &[String], b: &crate::model::Behaviour, mut a: RuleState, mut c: RuleState) -> (RuleState, Vec<i64>) {
    let mut excess = vec![0i64; names.len()];
    let mut u = RuleState {
        fired: a.fired + c.fired,
        first_at: min_opt(a.first_at, c.first_at),
        last_at: max_opt(a.last_at, c.last_at),
        awards: Vec::new(),
        awards_complete_after: None,
        hits: Vec::new(),
        hits_complete_after: None,
        firings: Vec::new(),
        firings_complete_after: None,
        total: a.total.clone(),
    };
    if let Some(cnt) = b.count {
        counts::unite(&mut u, &mut a, &mut c, cnt);
    }
    for (g, v) in &c.total {
        *u.total.entry(g.clone()).or_insert(0) += v;
    }
    if b.once && a.fired > 0 && c.fired > 0 {
        // The later award goes (on a tie, the smaller one, so the order of the profiles does not matter).
        let drop = match (a.first_at, c.first_at) {
            (Some(x), Some(y)) if x != y => if x < y { &c } else { &a },
            _ => if total_sum(&a) <= total_sum(&c) { &a } else { &c },
        };
        for (k, name) in names.iter().enumerate() {
            excess[k] = drop.total.get(name).copied().unwrap_or(0);
        }
        u.fired = 1;
    }
    if let Some(cap) = b.cap {
        // Re-apply the cap, in time order, to what every firing asked; the difference with
        // what both profiles had given is what was counted twice.
        let all: Vec<_> = a.awards.into_iter().chain(c.awards).collect();
        let complete_after = max_opt(a.awards_complete_after, c.awards_complete_after);
        let (awards, complete_after, over) = caps::recap(all, complete_after, cap, names.len());
        for (e, o) in excess.iter_mut().zip(over) {
            *e += o;
        }
        u.awards = awards;
        u.awards_complete_after = complete_after;
    }
    for (k, name) in names.iter().enumerate() {
        if excess[k] != 0 {
            if let Some(t) = u.total.get_mut(name) {
                *t -= excess[k];
            }
        }
    }
    (u, excess)
}

fn total_sum(s: &RuleState) -> i64 {
    s.total.values().sum()
}
