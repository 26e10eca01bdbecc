//! Caps: `cap: {points, per}` holds in every trailing window `(t − per, t]` (SPEC §2), whatever
//! the order the events arrive in.
//!
//! ## The check
//! An award at `o` shares a window with the awards inside `(o − per, o + per)` only: the windows
//! that contain `o` are those ending at `t ∈ [o, o + per)`. It is allowed what the fullest of
//! them leaves, `points − max sum(t − per, t]` — the later windows included, so a late event
//! is capped by the awards around its own `occurred_at` and can never push a later window past
//! the cap, and is not cut by awards it shares no window with.
//!
//! ## What is kept (the lead item stays small)
//! A capped rule keeps its awards in [`RuleState::awards`], sorted by time, one entry per
//! distinct time (awards at the same moment are added up). They are kept while they can still
//! matter:
//! - every award within `per` + [`AWARD_RETENTION_DAYS`] of the latest one, so an event up to
//!   that late (or a merge with a profile that old) is still capped exactly;
//! - at most [`MAX_AWARDS`] of them: awards that gave nothing (kept only so that a merge can
//!   re-cap two profiles from what each firing asked) go first, oldest first; then older awards
//!   that gave points, but never one inside `per` of the latest — what on-time events need. A
//!   window holds at most `points` awards per group that gave something, so that part is bounded
//!   by the model itself.
//!
//! When an award that gave points is dropped, [`RuleState::awards_complete_after`] records its
//! time: every award after it is still kept. An event whose windows reach back to that time
//! (`o − per < awards_complete_after`) can no longer be checked exactly and earns nothing from
//! the rule (recorded with [`TOO_LATE_NOTE`]): the cap is never passed; at worst an event that
//! arrives months late goes unrewarded. A merge applies the same rule to the awards it re-caps.

use crate::lead::{Award, RuleState};
use crate::model::Cap;
use crate::Time;
use chrono::Duration;

/// How long, beyond one window, the awards of a capped rule are kept: how late an event (or an
/// anonymous profile merged into a lead) may be and still be capped exactly.
pub(crate) const AWARD_RETENTION_DAYS: i64 = 90;

/// Most awards kept per rule, except the ones inside the latest window (see the module doc).
pub(crate) const MAX_AWARDS: usize = 512;

/// Note on points withheld from an event too old for its windows to be checked.
pub(crate) const TOO_LATE_NOTE: &str = "cap: too late to check against the awards kept; no points";

/// Positive points of group `k` in an award.
fn pts(a: &Award, k: usize) -> i64 {
    a.points.get(k).copied().unwrap_or(0).max(0)
}

/// Whether an award gave points to some group (what a cap counts).
fn gave(a: &Award) -> bool {
    a.points.iter().any(|p| *p > 0)
}

/// Whether an award at `at` has a window reaching back to dropped awards.
fn too_late(complete_after: Option<Time>, at: Time, per: Duration) -> bool {
    complete_after.is_some_and(|h| at - per < h)
}

/// Points of group `k` the cap still allows at `at`, or `None` when the windows of `at` can no
/// longer be checked exactly.
pub(crate) fn left(state: &RuleState, k: usize, at: Time, cap: Cap) -> Option<i64> {
    let per = cap.per.to_chrono();
    if too_late(state.awards_complete_after, at, per) {
        return None;
    }
    Some((cap.points - fullest_window(&state.awards, k, at, per)).max(0))
}

/// Largest sum of group `k` over the windows `(t − per, t]` that contain `at` (`awards` sorted).
pub(crate) fn fullest_window(awards: &[Award], k: usize, at: Time, per: Duration) -> i64 {
    let from = awards.partition_point(|a| a.at <= at - per);
    let to = awards.partition_point(|a| a.at < at + per);
    let span = &awards[from..to.max(from)];
    // The sum changes only where an award enters (t = its time) or leaves: its maximum is at
    // t = `at` or at the time of an award after `at`.
    let (mut lo, mut hi, mut sum, mut best) = (0, 0, 0i64, 0i64);
    let ends = std::iter::once(at).chain(span.iter().map(|a| a.at).filter(|t| *t > at));
    for t in ends {
        while hi < span.len() && span[hi].at <= t {
            sum += pts(&span[hi], k);
            hi += 1;
        }
        while lo < hi && span[lo].at <= t - per {
            sum -= pts(&span[lo], k);
            lo += 1;
        }
        best = best.max(sum);
    }
    best
}

/// What a firing asked per group (`asked`, or `points` when nothing was cut).
fn asked(a: &Award) -> &[i64] {
    if a.asked.is_empty() { &a.points } else { &a.asked }
}

/// Adds `b` (same time) into `a`.
fn absorb(a: &mut Award, b: &Award) {
    let n = a.points.len().max(b.points.len());
    let get = |v: &[i64], k: usize| v.get(k).copied().unwrap_or(0);
    let ask: Vec<i64> = (0..n).map(|k| get(asked(a), k) + get(asked(b), k)).collect();
    a.points = (0..n).map(|k| get(&a.points, k) + get(&b.points, k)).collect();
    a.asked = if ask == a.points { Vec::new() } else { ask };
}

/// Inserts an award in time order, adding it to an award at the same time if there is one.
pub(crate) fn record(awards: &mut Vec<Award>, award: Award) {
    let pos = awards.partition_point(|a| a.at < award.at);
    match awards.get_mut(pos) {
        Some(same) if same.at == award.at => absorb(same, &award),
        _ => awards.insert(pos, award),
    }
}

/// Drops the awards that can no longer matter, then bounds their number (module doc);
/// `complete_after` moves to the latest award dropped that gave points.
pub(crate) fn prune(awards: &mut Vec<Award>, complete_after: &mut Option<Time>, per: Duration) {
    let Some(last) = awards.last().map(|a| a.at) else { return };
    let from = last - (per + Duration::days(AWARD_RETENTION_DAYS));
    let cut = awards.partition_point(|a| a.at <= from);
    for a in awards.drain(..cut) {
        dropped(&a, complete_after);
    }
    if awards.len() > MAX_AWARDS {
        let mut over = awards.len() - MAX_AWARDS;
        awards.retain(|a| {
            let go = over > 0 && !gave(a);
            over -= go as usize;
            !go
        });
    }
    if awards.len() > MAX_AWARDS {
        let older = awards.partition_point(|a| a.at <= last - per);
        let cut = (awards.len() - MAX_AWARDS).min(older);
        for a in awards.drain(..cut) {
            dropped(&a, complete_after);
        }
    }
}

/// Moves `complete_after` past a dropped award that gave points.
fn dropped(a: &Award, complete_after: &mut Option<Time>) {
    if gave(a) {
        *complete_after = Some(complete_after.map_or(a.at, |h| h.max(a.at)));
    }
}

/// Re-applies the cap, in time order, to what every firing of two profiles asked (a merge):
/// returns the united awards, where they are complete from, and per points entry what the two
/// profiles had given beyond what the cap allows over both (counted twice).
pub(crate) fn recap(all: Vec<Award>, complete_after: Option<Time>, cap: Cap, entries: usize) -> (Vec<Award>, Option<Time>, Vec<i64>) {
    let per = cap.per.to_chrono();
    let mut sorted = all;
    sorted.sort_by(|x, y| x.at.cmp(&y.at));
    let mut united: Vec<Award> = Vec::with_capacity(sorted.len());
    for a in sorted {
        match united.last_mut() {
            Some(last) if last.at == a.at => absorb(last, &a),
            _ => united.push(a),
        }
    }
    let mut excess = vec![0i64; entries];
    // In time order every award is decided after the ones before it, so the window ending at
    // it is the only one left to check.
    let mut sums = vec![0i64; entries];
    let mut lo = 0;
    for i in 0..united.len() {
        let at = united[i].at;
        while lo < i && united[lo].at <= at - per {
            for (k, s) in sums.iter_mut().enumerate() {
                *s -= pts(&united[lo], k);
            }
            lo += 1;
        }
        let late = too_late(complete_after, at, per);
        let ask = asked(&united[i]).to_vec();
        let mut points = united[i].points.clone();
        points.resize(ask.len().max(points.len()), 0);
        for (k, &want) in ask.iter().enumerate() {
            let now = if want <= 0 {
                want
            } else if late {
                0
            } else {
                want.min((cap.points - sums.get(k).copied().unwrap_or(0)).max(0))
            };
            if k < excess.len() {
                excess[k] += points[k] - now;
            }
            points[k] = now;
        }
        united[i].asked = if ask == points { Vec::new() } else { ask };
        united[i].points = points;
        for (k, s) in sums.iter_mut().enumerate() {
            *s += pts(&united[i], k);
        }
    }
    let mut complete_after = complete_after;
    prune(&mut united, &mut complete_after, per);
    (united, complete_after, excess)
}

#[cfg(test)]
mod tests {
    use crate::{Engine, Event, Lead, Model, RawEvent, Time};
    use chrono::Duration;
    use serde_json::json;
    use std::sync::Arc;

    /// `visit`: 10 points, at most 10 a day; `click`: 1 point, at most 600 a day (more awards
    /// in one window than the old limit of 512 kept); `cta`: 10 points, at most 20 a day.
    fn engine() -> Engine {
        let yaml = r#"
name: t
scores: { engagement: { min: 0, max: 1000000 } }
rules:
  - id: visit
    on: page_view
    points: { engagement: 10 }
    cap: { points: 10, per: 1d }
  - id: click
    on: email_click
    points: { engagement: 1 }
    cap: { points: 600, per: 1d }
  - id: cta
    on: cta_click
    points: { engagement: 10 }
    cap: { points: 20, per: 1d }
"#;
        Engine::new(Arc::new(Model::from_yaml_str(yaml, "t.yaml").unwrap_or_else(|e| panic!("{e}"))))
    }

    fn t0() -> Time {
        "2026-03-02T00:00:00Z".parse().unwrap()
    }

    fn event(n: usize, kind: &str, at: Time) -> Event {
        let raw: RawEvent = serde_json::from_value(json!({
            "event_id": format!("e{n}"), "type": kind, "occurred_at": at.to_rfc3339(), "email": "a@b.example"
        }))
        .unwrap();
        raw.validate(at + Duration::days(3650), || unreachable!()).unwrap()
    }

    /// Points given by `rule` to the lead for one event.
    fn given(eng: &Engine, lead: &mut Lead, e: &Event, rule: &str) -> i64 {
        eng.ingest(lead, e)
            .changes
            .into_iter()
            .filter_map(|c| match c {
                crate::Change::Points { source, given, .. } if &*source == rule => Some(given),
                _ => None,
            })
            .sum()
    }

    #[test]
    fn a_burst_of_capped_hits_does_not_reopen_the_window() {
        // 600 visits in one hour: the first gives 10, the 599 others nothing; the 601st, still
        // inside the same day, must give nothing either.
        let eng = engine();
        let mut lead = eng.new_lead("l", t0());
        let mut total = 0;
        for n in 0..601 {
            total += given(&eng, &mut lead, &event(n, "page_view", t0() + Duration::seconds(n as i64 * 5)), "visit");
        }
        assert_eq!(total, 10, "cap 10 a day");
    }

    #[test]
    fn more_awards_in_a_window_than_were_kept_still_hold_the_cap() {
        // 700 clicks of 1 point inside one day, cap 600 a day.
        let eng = engine();
        let mut lead = eng.new_lead("l", t0());
        let mut total = 0;
        for n in 0..700 {
            total += given(&eng, &mut lead, &event(n, "email_click", t0() + Duration::seconds(n as i64 * 60)), "click");
        }
        assert_eq!(total, 600, "cap 600 a day");
    }

    #[test]
    fn a_backdated_event_cannot_pass_the_cap_of_its_window() {
        // A visit on day 0 gives 10; then one every day from day 2 to day 120; then a second visit
        // of day 0 arrives late: its day already holds 10.
        let eng = engine();
        let mut lead = eng.new_lead("l", t0());
        assert_eq!(given(&eng, &mut lead, &event(0, "page_view", t0() + Duration::hours(12)), "visit"), 10);
        for d in 2..=120 {
            given(&eng, &mut lead, &event(d, "page_view", t0() + Duration::days(d as i64) + Duration::hours(12)), "visit");
        }
        let late = event(1000, "page_view", t0() + Duration::hours(13));
        assert_eq!(given(&eng, &mut lead, &late, "visit"), 0, "day 0 already had its 10 points");
        assert!(lead.rules["visit"].awards.len() <= super::MAX_AWARDS);
    }

    #[test]
    fn a_late_event_is_capped_by_its_own_windows_only() {
        // `cta` gives 10, at most 20 a day. Awards at 04:00 and at 44:00: a late event at
        // 24:00 shares a 1-day window with each of them but none with both, so the fullest of
        // its windows holds 10 and it earns 10 (not nothing, as if both shared one window).
        let eng = engine();
        let mut lead = eng.new_lead("l", t0());
        assert_eq!(given(&eng, &mut lead, &event(0, "cta_click", t0() + Duration::hours(4)), "cta"), 10);
        assert_eq!(given(&eng, &mut lead, &event(1, "cta_click", t0() + Duration::hours(44)), "cta"), 10);
        assert_eq!(given(&eng, &mut lead, &event(2, "cta_click", t0() + Duration::hours(24)), "cta"), 10);
        // A fourth, at 30:00, would put 30 in the window ending at 44:00.
        assert_eq!(given(&eng, &mut lead, &event(3, "cta_click", t0() + Duration::hours(30)), "cta"), 0);
    }

    #[test]
    fn a_late_event_cannot_push_a_later_window_past_its_cap() {
        // An award at 20:00; a late event at 06:00 is inside the window that ends at 20:00.
        let eng = engine();
        let mut lead = eng.new_lead("l", t0());
        assert_eq!(given(&eng, &mut lead, &event(0, "page_view", t0() + Duration::hours(20)), "visit"), 10);
        assert_eq!(given(&eng, &mut lead, &event(1, "page_view", t0() + Duration::hours(6)), "visit"), 0);
    }
}
