//! Identity and traits, consent, `did` trackers, behaviour rules (once, cap, count) and profile rules.

use super::{caps, counts, Change, Engine, Outcome};
use crate::event::Event;
use crate::lead::{Award, DidState, Lead, RuleState, Touch};
use crate::model::RuleKind;
use crate::Time;
use serde_json::Value;

impl Engine {
    /// Takes the event's identity, traits and channel into the lead. Returns whether traits changed.
    pub(crate) fn absorb_identity(&self, lead: &mut Lead, e: &Event, out: &mut Outcome) -> bool {
        let mut changed = false;
        if let Some(email) = &e.email {
            if lead.email.is_none() {
                lead.email = Some(email.clone());
                changed = true;
            }
        }
        if let Some(a) = &e.anonymous_id {
            if !lead.anonymous_ids.iter().any(|x| x == a) {
                lead.anonymous_ids.push(a.clone());
            }
        }
        for (k, v) in &e.traits {
            if k == "email_opt_in" {
                continue;
            }
            match v {
                Value::Null => changed |= lead.traits.remove(k).is_some(),
                v => {
                    if lead.traits.get(k) != Some(v) {
                        lead.traits.insert(k.clone(), v.clone());
                        changed = true;
                    }
                }
            }
        }
        if let Some(c) = &e.channel {
            if c.source.is_some() || c.medium.is_some() || c.campaign.is_some() || c.referrer.is_some() {
                let t = Touch {
                    source: c.source.clone(),
                    medium: c.medium.clone(),
                    campaign: c.campaign.clone(),
                    referrer: c.referrer.clone(),
                    at: e.at,
                };
                if lead.first_touch.as_ref().is_none_or(|f| f.at > e.at) {
                    lead.first_touch = Some(t.clone());
                }
                if lead.last_touch.as_ref().is_none_or(|l| l.at <= e.at) {
                    lead.last_touch = Some(t);
                }
            }
        }
        let _ = out;
        changed
    }

    /// Consent from the event: `newsletter_subscribe` and `email_opt_in: true` opt in;
    /// `unsubscribe`, hard bounces and complaints opt out; nothing else changes it.
    pub(crate) fn consent(&self, lead: &mut Lead, e: &Event, out: &mut Outcome) {
        let opt_in_trait = e.traits.get("email_opt_in");
        let c = &mut lead.consent;
        let mut what = None;
        if e.kind == "newsletter_subscribe" || opt_in_trait.and_then(Value::as_bool) == Some(true) {
            if !c.subscribed() && c.bounced_at.is_none() && c.complained_at.is_none() {
                what = Some("opted_in");
            }
            if c.opted_in_at.is_none_or(|t| t < e.at) && c.unsubscribed_at.is_none_or(|u| u <= e.at) {
                c.opted_in_at = Some(e.at);
            }
        }
        // `email_opt_in: false` (a form sent with its box unticked) changes no consent: only
        // an unsubscribe, a hard bounce or a complaint opts out (SPEC §2 "Consent").
        if e.kind == "unsubscribe" {
            if c.unsubscribed_at.is_none_or(|u| u < e.at) {
                if c.subscribed() {
                    what = Some("unsubscribed");
                }
                c.unsubscribed_at = Some(e.at);
            }
        }
        if e.kind == "email_bounced" && e.properties.get("bounce_type").and_then(Value::as_str).is_none_or(|t| t.eq_ignore_ascii_case("permanent") || t.eq_ignore_ascii_case("hard")) {
            if c.bounced_at.is_none() {
                c.bounced_at = Some(e.at);
                what = Some("bounced");
            }
        }
        if e.kind == "email_complaint" && c.complained_at.is_none() {
            c.complained_at = Some(e.at);
            what = Some("complained");
        }
        if let Some(w) = what {
            out.push(Change::Consent { what: w.to_string() });
        }
    }

    /// Updates the counters behind `did` predicates.
    pub(crate) fn track(&self, lead: &mut Lead, e: &Event) {
        if e.machine {
            return;
        }
        let Some(idx) = self.trackers_by_type.get(&e.kind) else { return };
        for &i in idx {
            let t = &self.model.trackers[i];
            if t.filter.as_ref().is_some_and(|f| !f.matches_props(&e.properties, &self.model.lists)) {
                continue;
            }
            let st = match lead.did.get_mut(&t.key) {
                Some(s) => s,
                None => lead.did.entry(t.key.clone()).or_insert_with(DidState::default),
            };
            st.count += 1;
            let pos = st.recent.partition_point(|x| *x <= e.at);
            st.recent.insert(pos, e.at);
            prune_times(&mut st.recent, t.keep_for.map(|w| e.at - w.to_chrono()), t.keep_count as usize);
        }
    }

    /// Applies the behaviour rules that match the event.
    pub(crate) fn behaviour(&self, lead: &mut Lead, e: &Event, out: &mut Outcome) {
        let Some(idx) = self.rules_by_type.get(&e.kind) else { return };
        for &i in idx {
            let rule = &self.model.rules[i];
            let RuleKind::Behaviour(b) = &rule.kind else { continue };
            if b.filter.as_ref().is_some_and(|f| !f.matches_props(&e.properties, &self.model.lists)) {
                continue;
            }
            if e.machine {
                out.push(Change::Skipped { source: self.rule_ids[i].clone(), note: "machine traffic (mail scanner or proxy): recorded, no points".into() });
                continue;
            }
            // The rule's counters are taken out of the lead while the rule is applied (one map
            // lookup to take, one to put back) and always put back.
            let mut state = match lead.rules.get_mut(&rule.id) {
                Some(s) => std::mem::take(s),
                None => {
                    lead.rules.insert(rule.id.clone(), RuleState::default());
                    RuleState::default()
                }
            };
            let fired = self.fire(i, b, &mut state, lead, e, out);
            if let Some(slot) = lead.rules.get_mut(&rule.id) {
                *slot = state;
            }
            if !fired {
                continue;
            }
            for tag in &rule.tags {
                if lead.tags.insert(tag.clone()) {
                    out.push(Change::Tagged { tag: tag.clone() });
                }
            }
        }
    }

    /// Applies one matching behaviour rule to its counters and the lead's scores; returns
    /// whether it fired.
    fn fire(&self, i: usize, b: &crate::model::Behaviour, state: &mut RuleState, lead: &mut Lead, e: &Event, out: &mut Outcome) -> bool {
        let rule = &self.model.rules[i];
        if b.once && state.fired > 0 {
            out.push(Change::Skipped { source: self.rule_ids[i].clone(), note: "once: already given".into() });
            return false;
        }
        if let Some(c) = b.count {
            match counts::hit(state, e.at, c) {
                counts::Verdict::Fire => {}
                counts::Verdict::Hold => return false,
                counts::Verdict::TooLate => {
                    out.push(Change::Skipped { source: self.rule_ids[i].clone(), note: counts::TOO_LATE_NOTE.into() });
                    return false;
                }
            }
        }
        state.fired += 1;
        state.first_at = Some(state.first_at.map_or(e.at, |f| f.min(e.at)));
        state.last_at = Some(state.last_at.map_or(e.at, |l| l.max(e.at)));
        // Points, cut to what the cap leaves in every window that contains this moment.
        let mut award = if b.cap.is_some() { Vec::with_capacity(rule.points.len()) } else { Vec::new() };
        for (k, &(group, n)) in rule.points.iter().enumerate() {
            let mut allow = n;
            let mut note = None;
            if let (Some(cap), true) = (b.cap, n > 0) {
                match caps::left(state, k, e.at, cap) {
                    Some(left) if left >= n => {}
                    Some(left) => {
                        allow = left;
                        note = self.cap_notes[i].clone();
                    }
                    None => {
                        allow = 0;
                        note = Some(caps::TOO_LATE_NOTE.into());
                    }
                }
            }
            let given = self.add_points(lead, group, allow);
            let note = note.or_else(|| (given != allow).then(|| super::BOUNDS_NOTE.into()));
            if b.cap.is_some() {
                award.push(given);
            }
            let gname = &self.model.scores[group].name;
            match state.total.get_mut(gname) {
                Some(t) => *t += given,
                None => {
                    state.total.insert(gname.clone(), given);
                }
            }
            out.push(Change::Points { source: self.rule_ids[i].clone(), group: self.group_names[group].clone(), asked: n, given, note });
        }
        if let Some(cap) = b.cap {
            // `asked` is kept only when the cap cut something (empty means "as given").
            let cut = rule.points.iter().zip(&award).any(|((_, n), g)| n != g);
            let asked = if cut { rule.points.iter().map(|(_, n)| *n).collect() } else { Vec::new() };
            caps::record(&mut state.awards, Award { at: e.at, points: award, asked });
            caps::prune(&mut state.awards, &mut state.awards_complete_after, cap.per.to_chrono());
        }
        true
    }

    /// Recomputes profile contributions (only when traits changed, unless some profile rule
    /// reads more than traits).
    pub(crate) fn profile(&self, lead: &mut Lead, traits_changed: bool, out: &mut Outcome) {
        if !traits_changed && !self.profile_dynamic {
            return;
        }
        let mut holding = Vec::new();
        for (i, r) in self.model.rules.iter().enumerate() {
            let RuleKind::Profile { when } = &r.kind else { continue };
            if !traits_changed && self.profile_static[i] {
                if lead.profile_rules.contains(&r.id) {
                    holding.push(i);
                }
                continue;
            }
            let now = lead.updated_at;
            if when.holds(&self.facts(lead, now), &self.model.lists) {
                holding.push(i);
            }
        }
        let mut sums: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
        let mut ids = std::collections::BTreeSet::new();
        for &i in &holding {
            let r = &self.model.rules[i];
            for &(g, n) in &r.points {
                *sums.entry(self.model.scores[g].name.clone()).or_insert(0) += n;
            }
            ids.insert(r.id.clone());
            if !lead.profile_rules.contains(&r.id) {
                for (g, n) in r.points.iter().map(|(g, n)| (&self.model.scores[*g].name, *n)) {
                    out.push(Change::Points { source: r.id.as_str().into(), group: g.as_str().into(), asked: n, given: n, note: Some("profile rule now holds".into()) });
                }
                for tag in &r.tags {
                    if lead.tags.insert(tag.clone()) {
                        out.push(Change::Tagged { tag: tag.clone() });
                    }
                }
            }
        }
        for old in lead.profile_rules.difference(&ids) {
            if let Some(r) = self.model.rules.iter().find(|r| &r.id == old) {
                for (g, n) in r.points.iter().map(|(g, n)| (&self.model.scores[*g].name, *n)) {
                    out.push(Change::Points { source: r.id.as_str().into(), group: g.as_str().into(), asked: -n, given: -n, note: Some("profile rule no longer holds".into()) });
                }
            }
        }
        lead.profile_rules = ids;
        lead.profile = sums;
    }
}

/// Keeps times newer than `from` and at most `keep` of them (the newest).
pub(crate) fn prune_times(times: &mut Vec<Time>, from: Option<Time>, keep: usize) {
    if let Some(from) = from {
        times.retain(|t| *t > from);
    }
    let keep = keep.max(1);
    if times.len() > keep {
        let cut = times.len() - keep;
        times.drain(..cut);
    }
}

/// Whether a behaviour trigger (`on` + `where`) matches an event.
pub(crate) fn trigger_matches(engine: &Engine, on: &str, filter: Option<&crate::cond::FieldMatch>, e: &Event) -> bool {
    !e.machine && e.kind == on && filter.is_none_or(|f| f.matches_props(&e.properties, &engine.model.lists))
}
