//! Count rules: `count: {at_least, within}` fires when the matching event is the `at_least`-th
//! inside the trailing window `(t − within, t]`, then not again until `within` has passed since
//! it fired (SPEC §2) — judged at the event's own `occurred_at`, whatever the order the events
//! arrive in.
//!
//! ## The check
//! An event at `t` fires when
//! - its window `(t − within, t]` holds at least `at_least` hits, itself included, and
//! - no firing of the rule lies within `within` of `t`, before or after: a late event does not
//!   fire next to a later firing, and a late firing holds later events back like any other.
//!
//! In time order this is exactly "the `at_least`-th hit of the window, a `within` after the
//! last firing" ([`RuleState::last_at`]).
//!
//! ## What is kept (the lead item stays small)
//! A count rule keeps its hits in [`RuleState::hits`] and the times it fired in
//! [`RuleState::firings`], both sorted, as the caps module keeps awards:
//! - every one within `within` + [`AWARD_RETENTION_DAYS`] of the latest hit, so an event up to
//!   that late (or a merge with a profile that old) is judged exactly;
//! - at most [`MAX_HITS`] hits (or `at_least`, if more: the newest `at_least` hits are what an
//!   on-time event needs) and [`MAX_FIRINGS`] firings, the oldest dropped first. An on-time
//!   event reads only the newest hits and [`RuleState::last_at`], so it is never affected.
//!
//! When a hit (a firing) is dropped, [`RuleState::hits_complete_after`]
//! ([`RuleState::firings_complete_after`]) records its time: every one after it is still kept.
//! An event whose window reaches back to that time, and that the times kept cannot settle
//! (too few hits kept in its window; no firing kept near it), does not fire, and says so
//! ([`TOO_LATE_NOTE`]): the rule never fires twice within `within`, nor on a window it cannot
//! count; at worst an event that arrives months late goes unrewarded. A state stored before the
//! firings were kept (fired, no firing times) knows only its last firing: it is read as
//! "firings complete after the last one" (see [`settle`]).

use super::caps::AWARD_RETENTION_DAYS;
use crate::lead::RuleState;
use crate::model::Count;
use crate::Time;
use chrono::Duration;

/// Most hits kept per rule, unless the rule counts more (`at_least`).
pub(crate) const MAX_HITS: usize = 256;

/// Most firing times kept per rule.
pub(crate) const MAX_FIRINGS: usize = 64;

/// Note on an event too old for its window (or the firings around it) to be checked.
pub(crate) const TOO_LATE_NOTE: &str = "count: too late to check against the hits and firings kept; not counted";

/// What a count rule does with one matching event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It fires (the firing is already recorded).
    Fire,
    /// It does not: too few hits in the window, or a firing within `within`.
    Hold,
    /// It does not: what is kept cannot tell (see the module doc).
    TooLate,
}

/// A condition known to hold, known not to, or that cannot be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Yes,
    No,
    Unknown,
}

/// Records a matching event at `at`, decides whether the rule fires (recording the firing
/// when it does), then drops what can no longer matter.
pub(crate) fn hit(state: &mut RuleState, at: Time, c: Count) -> Verdict {
    settle(state);
    let within = c.within.to_chrono();
    let pos = state.hits.partition_point(|x| *x <= at);
    state.hits.insert(pos, at);
    let verdict = match (enough(state, at, c.at_least as usize, within), rested(state, at, within)) {
        (Known::No, _) | (_, Known::No) => Verdict::Hold,
        (Known::Unknown, _) | (_, Known::Unknown) => Verdict::TooLate,
        (Known::Yes, Known::Yes) => Verdict::Fire,
    };
    if verdict == Verdict::Fire {
        let pos = state.firings.partition_point(|x| *x <= at);
        state.firings.insert(pos, at);
    }
    prune(state, c);
    verdict
}

/// Reads a state stored before the firing times were kept: it fired, but only its last firing
/// is known, so firings are complete only after that one.
pub(crate) fn settle(state: &mut RuleState) {
    let Some(last) = state.last_at else { return };
    if state.fired > 0 && state.firings.is_empty() {
        state.firings_complete_after = Some(state.firings_complete_after.map_or(last, |h| h.max(last)));
    }
}

/// Start of the window ending at `at` (exclusive); `None` when it reaches past the first time.
fn window_start(at: Time, within: Duration) -> Option<Time> {
    at.checked_sub_signed(within)
}

/// Index of the first time after `from` (all of them when `from` is `None`).
fn first_after(times: &[Time], from: Option<Time>) -> usize {
    from.map_or(0, |f| times.partition_point(|t| *t <= f))
}

/// Whether a window starting (exclusive) at `from` reaches back to dropped times.
fn reaches(complete_after: Option<Time>, from: Option<Time>) -> bool {
    complete_after.is_some_and(|h| from.is_none_or(|f| f < h))
}

/// Whether the window `(at − within, at]` holds at least `at_least` hits.
fn enough(state: &RuleState, at: Time, at_least: usize, within: Duration) -> Known {
    let from = window_start(at, within);
    let n = state.hits.partition_point(|t| *t <= at).saturating_sub(first_after(&state.hits, from));
    if n >= at_least {
        // The hits kept are real hits: more may have been dropped, never fewer.
        Known::Yes
    } else if reaches(state.hits_complete_after, from) {
        Known::Unknown
    } else {
        Known::No
    }
}

/// Whether no firing lies within `within` of `at`, before or after it.
fn rested(state: &RuleState, at: Time, within: Duration) -> Known {
    let near = |f: Time| at.signed_duration_since(f).abs() < within;
    if state.last_at.is_some_and(near) {
        return Known::No;
    }
    let from = window_start(at, within);
    let lo = first_after(&state.firings, from);
    let hi = at.checked_add_signed(within).map_or(state.firings.len(), |to| state.firings.partition_point(|f| *f < to));
    if hi > lo {
        return Known::No;
    }
    if state.last_at.is_none_or(|l| l <= at) {
        // Every firing is at or before the last one, which is a `within` or more ago.
        return Known::Yes;
    }
    if reaches(state.firings_complete_after, from) {
        Known::Unknown
    } else {
        Known::Yes
    }
}

/// Drops the hits and firings that can no longer matter, then bounds their number (module
/// doc); the `…_complete_after` times move to the latest one dropped.
pub(crate) fn prune(state: &mut RuleState, c: Count) {
    let Some(latest) = state.hits.last().or(state.firings.last()).copied() else { return };
    let keep_for = c.within.to_chrono().checked_add(&Duration::days(AWARD_RETENTION_DAYS));
    let from = keep_for.and_then(|k| latest.checked_sub_signed(k));
    drop_old(&mut state.hits, &mut state.hits_complete_after, from, MAX_HITS.max(c.at_least as usize));
    drop_old(&mut state.firings, &mut state.firings_complete_after, from, MAX_FIRINGS);
}

/// Drops the times at or before `from`, then the oldest beyond `keep`; moves `complete_after`
/// to the latest time dropped.
fn drop_old(times: &mut Vec<Time>, complete_after: &mut Option<Time>, from: Option<Time>, keep: usize) {
    let cut = first_after(times, from).max(times.len().saturating_sub(keep.max(1)));
    if cut == 0 {
        return;
    }
    let last = times[cut - 1];
    *complete_after = Some(complete_after.map_or(last, |h| h.max(last)));
    times.drain(..cut);
}

/// Unites the hits and firings of two states of one count rule (a merge) into `into`: hits of
/// both (distinct events), firings of both (one per time), complete from the later of the two
/// times, bounded like any state.
/// (The hits and firings are taken out of `a` and `b`.)
pub(crate) fn unite(into: &mut RuleState, a: &mut RuleState, b: &mut RuleState, c: Count) {
    settle(a);
    settle(b);
    into.hits = merged(std::mem::take(&mut a.hits), std::mem::take(&mut b.hits));
    into.firings = merged(std::mem::take(&mut a.firings), std::mem::take(&mut b.firings));
    into.firings.dedup();
    into.hits_complete_after = a.hits_complete_after.max(b.hits_complete_after);
    into.firings_complete_after = a.firings_complete_after.max(b.firings_complete_after);
    prune(into, c);
}

/// Two sorted lists of times, merged in order.
fn merged(a: Vec<Time>, b: Vec<Time>) -> Vec<Time> {
    let mut all: Vec<Time> = a.into_iter().chain(b).collect();
    all.sort();
    all
}

#[cfg(test)]
mod tests {
    use crate::{Change, Engine, Event, Lead, Model, RawEvent, Time};
    use chrono::Duration;
    use serde_json::json;
    use std::sync::Arc;

    /// `burst`: 5 points on the 3rd page view inside one day, then not again for a day.
    fn engine() -> Engine {
        let yaml = r#"
name: t
scores: { engagement: { min: 0, max: 1000000 } }
rules:
  - id: burst
    on: page_view
    points: { engagement: 5 }
    count: { at_least: 3, within: 1d }
"#;
        Engine::new(Arc::new(Model::from_yaml_str(yaml, "t.yaml").unwrap_or_else(|e| panic!("{e}"))))
    }

    fn t0() -> Time {
        "2026-03-02T00:00:00Z".parse().unwrap()
    }

    fn h(hours: i64) -> Time {
        t0() + Duration::hours(hours)
    }

    fn event(n: usize, at: Time, email: Option<&str>, anon: Option<&str>) -> Event {
        let raw: RawEvent = serde_json::from_value(json!({
            "event_id": format!("e{n}"), "type": "page_view", "occurred_at": at.to_rfc3339(),
            "email": email, "anonymous_id": anon
        }))
        .unwrap();
        raw.validate(at + Duration::days(3650), || unreachable!()).unwrap()
    }

    /// Whether `burst` fired for the event, and the notes it left.
    fn ingest(eng: &Engine, lead: &mut Lead, n: usize, at: Time) -> (bool, Vec<String>) {
        let out = eng.ingest(lead, &event(n, at, Some("a@b.example"), None));
        let fired = out.changes.iter().any(|c| matches!(c, Change::Points { source, given: 5, .. } if &**source == "burst"));
        let notes = out
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::Skipped { source, note } if &**source == "burst" => Some(note.to_string()),
                _ => None,
            })
            .collect();
        (fired, notes)
    }

    /// The hours (from t0) at which `burst` fired, for events ingested in the order given.
    fn firings(hours: &[i64]) -> Vec<i64> {
        let eng = engine();
        let mut lead = eng.new_lead("l", t0());
        hours.iter().enumerate().filter(|(n, x)| ingest(&eng, &mut lead, *n, h(**x)).0).map(|(_, x)| *x).collect()
    }

    #[test]
    fn in_order_events_fire_as_before() {
        // Fires on the 3rd inside a day (hour 2), rests a day (hours 3..25 do not fire, though
        // their windows hold 3), fires again at hour 26 (the window (2, 26] holds 24 hits);
        // 61 is only the 2nd of its day; 115 is too soon after 92, 116 is not.
        let hours: Vec<i64> = (0..=26).chain([60, 61, 90, 91, 92, 92, 93, 115, 116, 117]).collect();
        assert_eq!(firings(&hours), vec![2, 26, 92, 116]);
        // Three events at the same moment: the third fires, a fourth at that moment does not;
        // 29 is rested but only the 2nd of its day.
        assert_eq!(firings(&[5, 5, 5, 5, 28, 29, 30]), vec![5, 30]);
    }

    #[test]
    fn a_late_event_completing_an_old_window_fires() {
        // Two visits at hours 1 and 3, two more at hour 120 (no firing anywhere): a late
        // visit at hour 5 is the 3rd of its day.
        assert_eq!(firings(&[1, 3, 120, 121, 5]), vec![5]);
        // The same after the rule fired later (hours 240..242): that firing is far away.
        assert_eq!(firings(&[1, 3, 240, 241, 242, 5]), vec![242, 5]);
    }

    #[test]
    fn a_late_event_fires_only_away_from_every_firing() {
        // Firings at hours 2 and 100. A late window completed at hour 50 is a day from both;
        // one completed at hour 80 is inside a day of the firing at 100; one at hour 20 is
        // inside a day of the firing at 2 (the earlier firing, not the last one).
        assert_eq!(firings(&[0, 1, 2, 98, 99, 100, 48, 49, 50]), vec![2, 100, 50]);
        assert_eq!(firings(&[0, 1, 2, 98, 99, 100, 78, 79, 80]), vec![2, 100]);
        assert_eq!(firings(&[0, 1, 2, 98, 99, 100, 18, 19, 20]), vec![2, 100]);
        // A late firing holds later on-time events back too: firings at 2 and (late) 50; an
        // on-time window at 200 fires, and a late one at 60 (inside a day of 50) does not.
        assert_eq!(firings(&[0, 1, 2, 198, 48, 49, 50, 199, 200, 58, 59, 60]), vec![2, 50, 200]);
    }

    #[test]
    fn a_very_late_event_past_what_is_kept_does_not_fire_and_says_why() {
        // Visits at hours 1 and 3, then one every 10 days for 200 days (never 3 in a day):
        // the visits of the first day are no longer kept when a late visit at hour 5 arrives.
        let eng = engine();
        let mut lead = eng.new_lead("l", t0());
        ingest(&eng, &mut lead, 0, h(1));
        ingest(&eng, &mut lead, 1, h(3));
        for d in 1..=20 {
            assert!(!ingest(&eng, &mut lead, 1 + d, h(d as i64 * 240)).0);
        }
        let (fired, notes) = ingest(&eng, &mut lead, 100, h(5));
        assert!(!fired, "its window can no longer be checked: no firing");
        assert_eq!(notes.len(), 1, "one note: {notes:?}");
        assert!(notes[0].contains("too late"), "the note says why: {}", notes[0]);
        // An on-time event is not affected.
        assert!(!ingest(&eng, &mut lead, 101, h(4801)).0);
        assert!(ingest(&eng, &mut lead, 102, h(4802)).0, "3 in the day of hour 4800");
    }

    #[test]
    fn a_burst_keeps_the_rule_small_and_exact_on_time() {
        // 3000 visits a minute apart: fires every 24 hours exactly, whatever was dropped.
        let eng = engine();
        let mut lead = eng.new_lead("l", t0());
        let mut fired = Vec::new();
        for n in 0..3000 {
            let at = t0() + Duration::minutes(n as i64);
            if ingest(&eng, &mut lead, n, at).0 {
                fired.push(n);
            }
        }
        assert_eq!(fired, vec![2, 1442, 2882]);
        let size = serde_json::to_vec(&lead.rules["burst"]).unwrap().len();
        assert!(size < 32 * 1024, "the rule's counters take {size} bytes");
    }

    #[test]
    fn merged_hits_and_firings_judge_late_events() {
        let eng = engine();
        let known = |events: &[i64]| {
            let mut lead = eng.new_lead("known", t0());
            for (n, x) in events.iter().enumerate() {
                eng.ingest(&mut lead, &event(n, h(*x), Some("x@y.example"), None));
            }
            lead
        };
        let anon = |events: &[i64]| {
            let mut lead = eng.new_lead("anon", t0());
            for (n, x) in events.iter().enumerate() {
                eng.ingest(&mut lead, &event(1000 + n, h(*x), None, Some("c1")));
            }
            lead
        };
        // Hours 1 (known) and 3 (anonymous): a late visit at hour 5 after the merge is the
        // 3rd of its day, though the known lead has since fired at hour 240.
        let mut lead = known(&[1, 240, 241, 242]);
        eng.merge(&mut lead, anon(&[3]), h(300));
        let late = eng.ingest(&mut lead, &event(50, h(5), Some("x@y.example"), None));
        assert!(late.changes.iter().any(|c| matches!(c, Change::Points { source, given: 5, .. } if &**source == "burst")), "{late:?}");
        // The anonymous profile fired at hour 50: after the merge, a late window completed at
        // hour 60 is inside a day of it and does not fire; one at hour 100 does.
        let mut lead = known(&[0, 1, 2, 240, 241, 242, 58, 59, 98, 99]);
        eng.merge(&mut lead, anon(&[48, 49, 50]), h(300));
        for (n, x) in [(60, 60), (61, 100)] {
            let out = eng.ingest(&mut lead, &event(n, h(x), Some("x@y.example"), None));
            let fired = out.changes.iter().any(|c| matches!(c, Change::Points { source, given: 5, .. } if &**source == "burst"));
            assert_eq!(fired, x == 100, "late event at hour {x}");
        }
    }

    #[test]
    fn a_stored_lead_from_before_keeps_loading_and_never_over_fires() {
        // A rule state stored before the firing times were kept: it fired at hours 2 and 100
        // (only the last is known), and keeps only the newest hits of its last window.
        let eng = engine();
        let mut lead = eng.new_lead("l", t0());
        for (n, x) in [0, 1, 2, 98, 99, 100].into_iter().enumerate() {
            ingest(&eng, &mut lead, n, h(x));
        }
        let old = json!({"fired": 2, "first_at": h(2), "last_at": h(100), "hits": [h(98), h(99), h(100)], "total": {"engagement": 10}});
        lead.rules.insert("burst".into(), serde_json::from_value(old).unwrap());
        // A late window completed at hour 20 may be inside a day of a firing no longer
        // known (hour 2): it does not fire.
        ingest(&eng, &mut lead, 10, h(18));
        ingest(&eng, &mut lead, 11, h(19));
        let (fired, notes) = ingest(&eng, &mut lead, 12, h(20));
        assert!(!fired && notes.iter().any(|n| n.contains("too late")), "{notes:?}");
        // On time, it goes on as before.
        assert!(!ingest(&eng, &mut lead, 13, h(110)).0);
        assert!(!ingest(&eng, &mut lead, 14, h(111)).0);
        assert!(ingest(&eng, &mut lead, 15, h(124)).0, "a day after hour 100, 3 in the window");
    }
}
