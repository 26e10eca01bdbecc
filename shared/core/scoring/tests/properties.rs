//! Property tests of the scoring engine: bounds, caps, idempotence, stage monotonicity and
//! merge order.

use chrono::Duration;
use ember_scoring::{Engine, Event, Lead, Model, RawEvent, Time};
use proptest::prelude::*;
use serde_json::json;
use std::sync::Arc;

fn engine() -> Engine {
    let text = include_str!("../../../../examples/b2b-saas.yaml");
    Engine::new(Arc::new(Model::from_yaml_str(text, "b2b-saas.yaml").expect("example model is valid")))
}

fn start() -> Time {
    "2026-03-02T09:00:00Z".parse().unwrap()
}

/// Event kinds with properties that hit every kind of rule of the example model.
fn kind(i: u8) -> (&'static str, serde_json::Value) {
    match i % 12 {
        0 => ("page_view", json!({"path": "/blog/a"})),
        1 => ("page_view", json!({"path": "/pricing"})),
        2 => ("page_view", json!({"path": "/"})),
        3 => ("page_view", json!({"path": "/careers"})),
        4 => ("email_open", json!({})),
        5 => ("email_click", json!({})),
        6 => ("download", json!({"content_id": "roi-calculator"})),
        7 => ("newsletter_subscribe", json!({})),
        8 => ("unsubscribe", json!({})),
        9 => ("demo_request", json!({})),
        10 => ("webinar_attended", json!({})),
        _ => ("form_submit", json!({"form_id": "needs-survey"})),
    }
}

fn event(n: usize, k: u8, minutes: i64, email: Option<&str>, anon: Option<&str>) -> Event {
    let (t, props) = kind(k);
    let at = start() + Duration::minutes(minutes);
    let raw: RawEvent = serde_json::from_value(json!({
        "event_id": format!("e{n}"), "type": t, "occurred_at": at.to_rfc3339(),
        "email": email, "anonymous_id": anon, "properties": props,
        "traits": if k % 5 == 0 { json!({"job_title": "VP Marketing", "country": "FR"}) } else { json!({}) }
    }))
    .unwrap();
    raw.validate(at + Duration::days(3650), || unreachable!()).unwrap()
}

/// A sorted list of (kind, minute offset).
fn history() -> impl Strategy<Value = Vec<(u8, i64)>> {
    prop::collection::vec((any::<u8>(), 0i64..(60 * 24 * 20)), 1..80).prop_map(|mut v| {
        v.sort_by_key(|(_, m)| *m);
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn scores_stay_within_bounds(h in history()) {
        let eng = engine();
        let mut lead = eng.new_lead("l", start());
        for (n, (k, m)) in h.iter().enumerate() {
            eng.ingest(&mut lead, &event(n, *k, *m, Some("a@b.example"), None));
            for g in &eng.model().scores {
                let s = lead.scores[&g.name];
                prop_assert!(s >= g.min && s <= g.max, "{} = {s} outside [{}, {}]", g.name, g.min, g.max);
            }
        }
        // Decay keeps them in bounds too.
        eng.decay(&mut lead, start() + Duration::days(400));
        for g in &eng.model().scores {
            let s = lead.scores[&g.name];
            prop_assert!(s >= g.min && s <= g.max);
        }
    }

    #[test]
    fn caps_hold_in_every_window(h in history()) {
        let eng = engine();
        let mut lead = eng.new_lead("l", start());
        let mut given: Vec<(String, Time, i64)> = Vec::new();
        for (n, (k, m)) in h.iter().enumerate() {
            let e = event(n, *k, *m, Some("a@b.example"), None);
            for c in eng.ingest(&mut lead, &e).changes {
                if let ember_scoring::Change::Points { source, given: g, .. } = c {
                    given.push((source.to_string(), e.at, g));
                }
            }
        }
        for rule in &eng.model().rules {
            let ember_scoring::model::RuleKind::Behaviour(b) = &rule.kind else { continue };
            let Some(cap) = b.cap else { continue };
            let per = cap.per.to_chrono();
            for (_, t_end, _) in given.iter().filter(|(s, _, _)| s == &rule.id) {
                let sum: i64 = given.iter().filter(|(s, t, _)| s == &rule.id && *t > *t_end - per && *t <= *t_end).map(|(_, _, g)| *g).sum();
                prop_assert!(sum <= cap.points, "rule {} gave {sum} > {} within {}", rule.id, cap.points, cap.per);
            }
        }
    }

    #[test]
    fn stages_never_move_back_without_crm(h in history()) {
        let eng = engine();
        let mut lead = eng.new_lead("l", start());
        let mut last = 0;
        for (n, (k, m)) in h.iter().enumerate() {
            eng.ingest(&mut lead, &event(n, *k, *m, Some("a@b.example"), None));
            if n % 7 == 0 {
                eng.decay(&mut lead, start() + Duration::minutes(*m) + Duration::days(91));
            }
            let idx = eng.model().stage_index(&lead.stage).unwrap();
            prop_assert!(idx >= last, "stage went back from {last} to {idx}");
            last = idx;
        }
    }

    #[test]
    fn merge_order_does_not_change_the_result(a in history(), b in history(), c in history()) {
        let eng = engine();
        let build = |h: &[(u8, i64)], id: &str, anon: Option<&str>, email: Option<&str>, base: usize| {
            let mut lead: Lead = eng.new_lead(id, start());
            for (n, (k, m)) in h.iter().enumerate() {
                eng.ingest(&mut lead, &event(base + n, *k, *m, email, anon));
            }
            lead
        };
        let known = build(&a, "known", None, Some("x@y.example"), 0);
        let anon1 = build(&b, "anon1", Some("c1"), None, 1000);
        let anon2 = build(&c, "anon2", Some("c2"), None, 2000);
        let at = start() + Duration::days(30);
        let mut one = known.clone();
        let mut bounded = bounds_cut(&eng.merge(&mut one, anon1.clone(), at));
        bounded |= bounds_cut(&eng.merge(&mut one, anon2.clone(), at));
        let mut two = known.clone();
        bounded |= bounds_cut(&eng.merge(&mut two, anon2, at));
        bounded |= bounds_cut(&eng.merge(&mut two, anon1, at));
        prop_assert_eq!(&one.rules, &two.rules);
        prop_assert_eq!(&one.did, &two.did);
        prop_assert_eq!(one.event_count, two.event_count);
        // Bounds apply as each merge is applied (like events, in order): when a merge was cut
        // by a bound, the order of the merges may change the scores, so only then they differ.
        if !bounded {
            prop_assert_eq!(&one.scores, &two.scores);
            prop_assert_eq!(&one.earned, &two.earned);
            prop_assert_eq!(&one.tags, &two.tags);
            prop_assert_eq!(&one.stage, &two.stage);
        }
    }

    #[test]
    fn merges_stay_within_bounds_and_add_up(a in history(), b in history(), c in history()) {
        let eng = engine();
        // Each profile with its timeline (the changes of its events).
        let build = |h: &[(u8, i64)], id: &str, anon: Option<&str>, email: Option<&str>, base: usize| {
            let mut lead: Lead = eng.new_lead(id, start());
            let mut timeline = Vec::new();
            for (n, (k, m)) in h.iter().enumerate() {
                timeline.extend(eng.ingest(&mut lead, &event(base + n, *k, *m, email, anon)).changes);
            }
            (lead, timeline)
        };
        let (mut lead, mut timeline) = build(&a, "known", None, Some("x@y.example"), 0);
        let (anon1, t1) = build(&b, "anon1", Some("c1"), None, 1000);
        let (anon2, t2) = build(&c, "anon2", Some("c2"), None, 2000);
        let at = start() + Duration::days(30);
        timeline.extend(t1);
        timeline.extend(eng.merge(&mut lead, anon1, at).changes);
        check_bounds_and_sums(&eng, &lead, &timeline)?;
        timeline.extend(t2);
        timeline.extend(eng.merge(&mut lead, anon2, at).changes);
        check_bounds_and_sums(&eng, &lead, &timeline)?;
        // Decay after the merge starts from the score as shown, and keeps it adding up.
        timeline.extend(eng.decay(&mut lead, at + Duration::days(400)).changes);
        check_bounds_and_sums(&eng, &lead, &timeline)?;
    }
}

/// Whether a merge's outcome cut points at a score's bounds.
fn bounds_cut(out: &ember_scoring::Outcome) -> bool {
    out.changes.iter().any(|c| matches!(c, ember_scoring::Change::Points { source, .. } if &**source == "merge"))
}

/// Every score within its bounds; its parts (initial + behaviour + profile, the lead
/// document's breakdown) add up to it, and so do the points of the timeline.
fn check_bounds_and_sums(eng: &Engine, lead: &Lead, timeline: &[ember_scoring::Change]) -> Result<(), TestCaseError> {
    for g in &eng.model().scores {
        let s = lead.scores[&g.name];
        prop_assert!(s >= g.min && s <= g.max, "{} = {s} outside [{}, {}]", g.name, g.min, g.max);
        let earned = lead.earned.get(&g.name).copied().unwrap_or(0);
        let profile = lead.profile.get(&g.name).copied().unwrap_or(0);
        prop_assert_eq!(g.initial + earned + profile, s, "{}: initial {} + behaviour {} + profile {} != score {}", g.name, g.initial, earned, profile, s);
        let given: i64 = timeline
            .iter()
            .filter_map(|c| match c {
                ember_scoring::Change::Points { group, given, .. } if **group == *g.name => Some(*given),
                _ => None,
            })
            .sum();
        prop_assert_eq!(g.initial + given, s, "{}: the timeline gives {} points, the score is {}", g.name, given, s);
    }
    Ok(())
}

#[test]
fn merge_counts_a_once_rule_once() {
    let eng = engine();
    let mut known = eng.new_lead("known", start());
    eng.ingest(&mut known, &event(1, 7, 10, Some("x@y.example"), None)); // newsletter_subscribe: +5 once
    let mut anon = eng.new_lead("anon", start());
    eng.ingest(&mut anon, &event(2, 7, 5, None, Some("c1")));
    eng.ingest(&mut anon, &event(3, 0, 6, None, Some("c1"))); // blog +10
    assert_eq!(known.scores["engagement"], 5);
    assert_eq!(anon.scores["engagement"], 15);
    eng.merge(&mut known, anon, start() + Duration::hours(1));
    assert_eq!(known.scores["engagement"], 15, "newsletter once (5) + blog (10), not 20");
    assert_eq!(known.rules["newsletter-signup"].fired, 1);
}

#[test]
fn merge_recaps_a_capped_rule() {
    let eng = engine();
    let mut known = eng.new_lead("known", start());
    eng.ingest(&mut known, &event(1, 0, 10, Some("x@y.example"), None)); // blog +10 (cap 10/day)
    let mut anon = eng.new_lead("anon", start());
    eng.ingest(&mut anon, &event(2, 0, 20, None, Some("c1"))); // blog +10 on the anonymous side, same day
    eng.merge(&mut known, anon, start() + Duration::hours(1));
    assert_eq!(known.scores["engagement"], 10, "two blog visits on one day: the 10/day cap holds after merge");
}

/// A model of capped rules only, with bounds wide enough never to cut: `click` lets more awards
/// into one window (600 of 1 point a day) than a lead used to keep; `visit` fills its window
/// at once; `download` caps two groups over a short window.
fn capped_engine() -> Engine {
    let yaml = r#"
name: caps
scores: { engagement: { min: 0, max: 100000000 }, fit: { min: 0, max: 100000000 } }
rules:
  - id: click
    on: email_click
    points: { engagement: 1 }
    cap: { points: 600, per: 1d }
  - id: visit
    on: page_view
    points: { engagement: 10 }
    cap: { points: 10, per: 1d }
  - id: download
    on: download
    points: { engagement: 3, fit: 2 }
    cap: { points: 7, per: 2h }
"#;
    Engine::new(Arc::new(Model::from_yaml_str(yaml, "caps.yaml").expect("the caps model is valid")))
}

fn capped_event(n: usize, k: u8, at: Time) -> Event {
    let kind = match k % 4 {
        0 | 1 => "email_click",
        2 => "page_view",
        _ => "download",
    };
    let raw: RawEvent = serde_json::from_value(json!({
        "event_id": format!("e{n}"), "type": kind, "occurred_at": at.to_rfc3339(), "email": "a@b.example"
    }))
    .unwrap();
    raw.validate(at + Duration::days(3650), || unreachable!()).unwrap()
}

/// Points given, per (rule, group), with the time of the event that earned them.
type Given = std::collections::BTreeMap<(String, String), Vec<(Time, i64)>>;

fn ingest_all(eng: &Engine, lead: &mut Lead, events: &[(u8, i64)]) -> Given {
    let mut given = Given::new();
    for (n, (k, secs)) in events.iter().enumerate() {
        let e = capped_event(n, *k, start() + Duration::seconds(*secs));
        for c in eng.ingest(lead, &e).changes {
            if let ember_scoring::Change::Points { source, group, given: g, .. } = c {
                given.entry((source.to_string(), group.to_string())).or_default().push((e.at, g));
            }
        }
    }
    given
}

/// The fullest trailing window `(t - per, t]` of a list of awards.
fn fullest(awards: &[(Time, i64)], per: Duration) -> i64 {
    let mut v: Vec<(Time, i64)> = awards.iter().filter(|(_, g)| *g > 0).copied().collect();
    v.sort();
    let (mut lo, mut sum, mut best) = (0, 0, 0);
    for hi in 0..v.len() {
        sum += v[hi].1;
        while v[lo].0 <= v[hi].0 - per {
            sum -= v[lo].1;
            lo += 1;
        }
        best = best.max(sum);
    }
    best
}

/// Checks every capped rule's windows and the size of its counters.
fn check_caps(eng: &Engine, lead: &Lead, given: &Given) -> Result<(), TestCaseError> {
    for rule in &eng.model().rules {
        let ember_scoring::model::RuleKind::Behaviour(b) = &rule.kind else { continue };
        let Some(cap) = b.cap else { continue };
        for (g, _) in &rule.points {
            let group = &eng.model().scores[*g].name;
            let awards = given.get(&(rule.id.clone(), group.clone())).map(Vec::as_slice).unwrap_or(&[]);
            let most = fullest(awards, cap.per.to_chrono());
            prop_assert!(most <= cap.points, "rule {} gave {most} {group} inside one {} window (cap {})", rule.id, cap.per, cap.points);
        }
        if let Some(state) = lead.rules.get(&rule.id) {
            // At most 512 older awards, plus the ones that gave inside the latest window.
            let bound = 512 + cap.points as usize * rule.points.len();
            prop_assert!(state.awards.len() <= bound, "rule {} keeps {} awards (bound {bound})", rule.id, state.awards.len());
            prop_assert!(state.awards.windows(2).all(|w| w[0].at < w[1].at), "awards sorted, one per time");
        }
    }
    Ok(())
}

/// Event times in seconds from the start: most inside one busy day (many at the same second),
/// some spread over 200 days, some backdated up to 400 days; in any order.
fn unordered_times() -> impl Strategy<Value = i64> {
    prop_oneof![
        6 => 0i64..(24 * 3600),
        1 => (0i64..3600).prop_map(|s| s * 10),
        2 => 0i64..(200 * 24 * 3600),
        1 => -(400 * 24 * 3600)..0i64,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn caps_hold_in_every_window_whatever_the_order(events in prop::collection::vec((any::<u8>(), unordered_times()), 600..1100)) {
        let eng = capped_engine();
        let mut lead = eng.new_lead("l", start());
        let given = ingest_all(&eng, &mut lead, &events);
        check_caps(&eng, &lead, &given)?;
        let size = serde_json::to_vec(&lead.rules).unwrap().len();
        prop_assert!(size < 128 * 1024, "rule counters take {size} bytes");
    }

    #[test]
    fn on_time_events_get_exactly_what_the_cap_leaves(mut events in prop::collection::vec((any::<u8>(), 0i64..(3 * 24 * 3600)), 600..1100)) {
        // Events in time order: each award is what its trailing window leaves, no less.
        events.sort_by_key(|(_, s)| *s);
        let eng = capped_engine();
        let mut lead = eng.new_lead("l", start());
        let given = ingest_all(&eng, &mut lead, &events);
        check_caps(&eng, &lead, &given)?;
        for rule in &eng.model().rules {
            let ember_scoring::model::RuleKind::Behaviour(b) = &rule.kind else { continue };
            let cap = b.cap.unwrap();
            let per = cap.per.to_chrono();
            for (g, n) in &rule.points {
                let group = &eng.model().scores[*g].name;
                let Some(awards) = given.get(&(rule.id.clone(), group.clone())) else { continue };
                let mut expected: Vec<(Time, i64)> = Vec::new();
                for (at, got) in awards {
                    let used: i64 = expected.iter().filter(|(t, _)| *t > *at - per).map(|(_, x)| x).sum();
                    let want = (*n).min(cap.points - used).max(0);
                    prop_assert_eq!(*got, want, "rule {} at {}", rule.id, at);
                    expected.push((*at, want));
                }
            }
        }
    }

    #[test]
    fn late_events_get_what_their_windows_leave(events in prop::collection::vec((any::<u8>(), -(3 * 24 * 3600)..(3 * 24 * 3600i64)), 1..200)) {
        // Within the lateness horizon, out of order: each award is what the fullest window
        // containing it leaves (windows ending from its time to one window later).
        let eng = capped_engine();
        let mut lead = eng.new_lead("l", start());
        let given = ingest_all(&eng, &mut lead, &events);
        check_caps(&eng, &lead, &given)?;
        for rule in &eng.model().rules {
            let ember_scoring::model::RuleKind::Behaviour(b) = &rule.kind else { continue };
            let cap = b.cap.unwrap();
            let per = cap.per.to_chrono();
            for (g, n) in &rule.points {
                let group = &eng.model().scores[*g].name;
                let Some(awards) = given.get(&(rule.id.clone(), group.clone())) else { continue };
                let mut before: Vec<(Time, i64)> = Vec::new();
                for (at, got) in awards {
                    let ends = std::iter::once(*at).chain(before.iter().map(|(t, _)| *t).filter(|t| *t > *at && *t < *at + per));
                    let most = ends.map(|end| before.iter().filter(|(t, _)| *t > end - per && *t <= end).map(|(_, x)| x).sum::<i64>()).max().unwrap_or(0);
                    let want = (*n).min(cap.points - most).max(0);
                    prop_assert_eq!(*got, want, "rule {} at {}", rule.id, at);
                    before.push((*at, want));
                }
            }
        }
    }
}

#[test]
fn merge_banks_no_points_beyond_max() {
    let eng = engine();
    // Two profiles of 400 engagement each (20 demo requests of 20 points, uncapped).
    let profile = |id: &str, email: Option<&str>, anon: Option<&str>, base: usize| {
        let mut lead = eng.new_lead(id, start());
        for n in 0..20 {
            eng.ingest(&mut lead, &event(base + n, 9, n as i64, email, anon));
        }
        lead
    };
    let mut known = profile("known", Some("x@y.example"), None, 0);
    let anon = profile("anon", None, Some("c1"), 100);
    assert_eq!((known.scores["engagement"], anon.scores["engagement"]), (400, 400));
    let out = eng.merge(&mut known, anon, start() + Duration::hours(1));
    assert_eq!(known.scores["engagement"], 500, "max 500");
    assert_eq!(known.earned["engagement"], 500, "behaviour part within the bounds too, not 800");
    let cut: i64 = out
        .changes
        .iter()
        .filter_map(|c| match c {
            ember_scoring::Change::Points { source, group, given, .. } if &**source == "merge" && &**group == "engagement" => Some(*given),
            _ => None,
        })
        .sum();
    assert_eq!(cut, -300, "the merge records what the bound cut, so the timeline adds up");
    // 90 days of inactivity: the decay (-10) shows at once, not after 300 banked points.
    eng.decay(&mut known, start() + Duration::days(91));
    assert_eq!(known.scores["engagement"], 490);
}


/// A model of count rules only: `burst` fires on the 3rd visit inside an hour, `steady` on the
/// 2nd click inside a day, `many` on the 100th download inside a day.
fn counted_engine() -> Engine {
    let yaml = r#"
name: counts
scores: { engagement: { min: 0, max: 100000000 } }
rules:
  - id: burst
    on: page_view
    points: { engagement: 5 }
    count: { at_least: 3, within: 1h }
  - id: steady
    on: email_click
    points: { engagement: 2 }
    count: { at_least: 2, within: 1d }
  - id: many
    on: download
    points: { engagement: 1 }
    count: { at_least: 100, within: 1d }
"#;
    Engine::new(Arc::new(Model::from_yaml_str(yaml, "counts.yaml").expect("the counts model is valid")))
}

/// What happened to one matching event of a count rule, in arrival order.
struct Hit {
    rule: &'static str,
    at: Time,
    fired: bool,
    too_late: bool,
}

fn ingest_counted(eng: &Engine, lead: &mut Lead, events: &[(u8, i64)]) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (n, (k, secs)) in events.iter().enumerate() {
        let (kind, rule) = match k % 4 {
            0 | 1 => ("page_view", "burst"),
            2 => ("email_click", "steady"),
            _ => ("download", "many"),
        };
        let at = start() + Duration::seconds(*secs);
        let raw: RawEvent = serde_json::from_value(json!({
            "event_id": format!("e{n}"), "type": kind, "occurred_at": at.to_rfc3339(), "email": "a@b.example"
        }))
        .unwrap();
        let e = raw.validate(at + Duration::days(3650), || unreachable!()).unwrap();
        let out = eng.ingest(lead, &e);
        let fired = out.changes.iter().any(|c| matches!(c, ember_scoring::Change::Points { source, .. } if &**source == rule));
        let too_late = out.changes.iter().any(|c| matches!(c, ember_scoring::Change::Skipped { source, note } if &**source == rule && note.contains("too late")));
        hits.push(Hit { rule, at, fired, too_late });
    }
    hits
}

/// Every count rule: never two firings within `within` (by `occurred_at`), every firing with at
/// least `at_least` hits in its window among the events that had arrived; counters bounded.
fn check_counts(eng: &Engine, lead: &Lead, hits: &[Hit]) -> Result<(), TestCaseError> {
    for rule in &eng.model().rules {
        let ember_scoring::model::RuleKind::Behaviour(b) = &rule.kind else { continue };
        let Some(c) = b.count else { continue };
        let within = c.within.to_chrono();
        let mine: Vec<&Hit> = hits.iter().filter(|h| h.rule == rule.id).collect();
        let mut fired: Vec<Time> = Vec::new();
        for (i, h) in mine.iter().enumerate().filter(|(_, h)| h.fired) {
            let seen = mine[..=i].iter().filter(|x| x.at > h.at - within && x.at <= h.at).count();
            prop_assert!(seen >= c.at_least as usize, "rule {} fired at {} with {seen} hits in its window", rule.id, h.at);
            fired.push(h.at);
        }
        fired.sort();
        for w in fired.windows(2) {
            prop_assert!(w[1] - w[0] >= within, "rule {} fired at {} and {}, within {}", rule.id, w[0], w[1], c.within);
        }
        if let Some(state) = lead.rules.get(&rule.id) {
            prop_assert!(state.hits.len() <= 256usize.max(c.at_least as usize), "rule {} keeps {} hits", rule.id, state.hits.len());
            prop_assert!(state.firings.len() <= 64, "rule {} keeps {} firings", rule.id, state.firings.len());
            prop_assert!(state.hits.windows(2).all(|w| w[0] <= w[1]) && state.firings.windows(2).all(|w| w[0] < w[1]), "sorted");
        }
    }
    Ok(())
}

/// Event times in seconds from the start for count rules: most inside one busy day, some
/// spread over 60 days, some backdated up to 400 days (past the lateness horizon).
fn unordered_count_times() -> impl Strategy<Value = i64> {
    prop_oneof![
        6 => 0i64..(24 * 3600),
        1 => (0i64..3600).prop_map(|s| s * 10),
        2 => 0i64..(60 * 24 * 3600),
        1 => -(400 * 24 * 3600)..0i64,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn counts_never_fire_twice_within_their_window_whatever_the_order(events in prop::collection::vec((any::<u8>(), unordered_count_times()), 600..1100)) {
        let eng = counted_engine();
        let mut lead = eng.new_lead("l", start());
        let hits = ingest_counted(&eng, &mut lead, &events);
        check_counts(&eng, &lead, &hits)?;
        let size = serde_json::to_vec(&lead.rules).unwrap().len();
        prop_assert!(size < 64 * 1024, "rule counters take {size} bytes");
    }

    #[test]
    fn late_counts_fire_exactly_when_their_window_says(events in prop::collection::vec((any::<u8>(), -(3 * 24 * 3600)..(3 * 24 * 3600i64)), 1..200)) {
        // Within the lateness horizon, out of order: an event fires exactly when its window
        // holds `at_least` hits among those arrived and no earlier firing is within `within`.
        let eng = counted_engine();
        let mut lead = eng.new_lead("l", start());
        let hits = ingest_counted(&eng, &mut lead, &events);
        check_counts(&eng, &lead, &hits)?;
        for rule in &eng.model().rules {
            let ember_scoring::model::RuleKind::Behaviour(b) = &rule.kind else { continue };
            let c = b.count.unwrap();
            let within = c.within.to_chrono();
            let mine: Vec<&Hit> = hits.iter().filter(|h| h.rule == rule.id).collect();
            let mut fired: Vec<Time> = Vec::new();
            for (i, h) in mine.iter().enumerate() {
                let seen = mine[..=i].iter().filter(|x| x.at > h.at - within && x.at <= h.at).count();
                let want = seen >= c.at_least as usize && fired.iter().all(|f| (h.at - *f).abs() >= within);
                prop_assert!(!h.too_late, "rule {} at {}: nothing was dropped", rule.id, h.at);
                prop_assert_eq!(h.fired, want, "rule {} at {}", rule.id, h.at);
                if want {
                    fired.push(h.at);
                }
            }
        }
    }

    #[test]
    fn on_time_counts_fire_as_they_always_did(mut events in prop::collection::vec((any::<u8>(), 0i64..(3 * 24 * 3600)), 600..1100)) {
        // Events in time order: the `at_least`-th of the window, a `within` after the last firing.
        events.sort_by_key(|(_, s)| *s);
        let eng = counted_engine();
        let mut lead = eng.new_lead("l", start());
        let hits = ingest_counted(&eng, &mut lead, &events);
        for rule in &eng.model().rules {
            let ember_scoring::model::RuleKind::Behaviour(b) = &rule.kind else { continue };
            let c = b.count.unwrap();
            let within = c.within.to_chrono();
            let mine: Vec<&Hit> = hits.iter().filter(|h| h.rule == rule.id).collect();
            let mut last: Option<Time> = None;
            for (i, h) in mine.iter().enumerate() {
                let seen = mine[..=i].iter().filter(|x| x.at > h.at - within).count();
                let want = seen >= c.at_least as usize && last.is_none_or(|l| h.at - l >= within);
                prop_assert_eq!(h.fired, want, "rule {} at {}", rule.id, h.at);
                if want {
                    last = Some(h.at);
                }
            }
        }
    }
}
