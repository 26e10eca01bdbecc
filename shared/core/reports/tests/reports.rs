//! Report building from counters, and the counters a lead contributes.

use chrono::{DateTime, NaiveDate, Utc};
use ember_reports::facts::{duration_bucket, facts, score_bin, tallies};
use ember_reports::{By, Period, Tally};
use ember_scoring::{Engine, Model, RawEvent};
use serde_json::json;
use std::sync::Arc;

const MODEL: &str = r#"
name: t
timezone: America/New_York
scores:
  engagement: { min: 0, max: 100 }
  fit: { min: -50, max: 50 }
rules:
  - { id: form, on: form_submit, points: { engagement: 30 } }
  - { id: demo, on: demo_request, points: { engagement: 40 } }
stages:
  - { id: lead, when: { identified: true } }
  - { id: mql, when: { engagement: { gte: 50 } } }
  - { id: customer, when: { did: { on: purchase } } }
"#;

fn model() -> Arc<Model> {
    Arc::new(Model::from_yaml_str(MODEL, "t.yaml").expect("model"))
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("day")
}

fn ev(id: &str, kind: &str, when: &str, extra: serde_json::Value) -> ember_scoring::Event {
    let mut raw = json!({"event_id": id, "type": kind, "occurred_at": when, "email": "p@x.com"});
    raw.as_object_mut().expect("object").extend(extra.as_object().cloned().unwrap_or_default());
    let raw: RawEvent = serde_json::from_value(raw).expect("raw");
    raw.validate(at(when) + chrono::Duration::seconds(1), || unreachable!()).expect("valid")
}

#[test]
fn buckets_and_bins() {
    let h = chrono::Duration::hours;
    assert_eq!(duration_bucket(h(0)), 0);
    assert_eq!(duration_bucket(h(47)), 47);
    assert_eq!(duration_bucket(h(50)), 48);
    assert_eq!(duration_bucket(h(24 * 59 + 5)), 24 * 59);
    assert_eq!(duration_bucket(h(24 * 70)), 168 * 10);
    assert_eq!(duration_bucket(h(-5)), 0);
    assert_eq!((score_bin(0, 100, 0), score_bin(0, 100, 9), score_bin(0, 100, 10), score_bin(0, 100, 100)), (0, 0, 1, 9));
    assert_eq!((score_bin(-50, 50, -50), score_bin(-50, 50, 0), score_bin(-50, 50, 200)), (0, 5, 9));
    assert_eq!(score_bin(5, 5, 5), 0);
}

#[test]
fn a_lead_counts_on_its_cohort_day_in_the_model_time_zone() {
    let m = model();
    let engine = Engine::new(m.clone());
    // 02:00 UTC on March 2nd is still March 1st in New York.
    let mut lead = engine.new_lead("ld-1", at("2026-03-02T02:00:00Z"));
    engine.ingest(&mut lead, &ev("e1", "form_submit", "2026-03-02T02:00:00Z", json!({"context": {"utm": {"source": "goo|gle", "medium": "cpc"}}})));
    let f = facts(&m, &lead);
    assert!(f.iter().all(|t| t.day == day("2026-03-01")), "{f:?}");
    let keys: Vec<&str> = f.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(keys, ["R|lead|goo/gle|cpc", "S|engagement|3|goo/gle|cpc", "S|fit|5|goo/gle|cpc"]);

    // A demo request three days later: MQL, 72 hours after becoming a lead; the engagement
    // bin moves. The commit's increments are exactly that.
    let before = lead.clone();
    engine.ingest(&mut lead, &ev("e2", "demo_request", "2026-03-05T02:00:00Z", json!({})));
    let d = tallies(&m, Some(&before), &lead, None);
    let got: Vec<(String, i64)> = d.iter().map(|t| (t.key.clone(), t.n)).collect();
    assert_eq!(
        got,
        [
            ("R|mql|goo/gle|cpc".to_string(), 1),
            ("S|engagement|3|goo/gle|cpc".to_string(), -1),
            ("S|engagement|7|goo/gle|cpc".to_string(), 1),
            ("T|mql|72|goo/gle|cpc".to_string(), 1),
        ]
    );
    // Nothing a report shows changes: no increments.
    let before = lead.clone();
    engine.ingest(&mut lead, &ev("e3", "page_view", "2026-03-05T03:00:00Z", json!({})));
    assert!(tallies(&m, Some(&before), &lead, None).is_empty());
}

#[test]
fn funnel_conversion_medians_and_cohorts() {
    let m = model();
    let t = |d: &str, k: &str, n: i64| Tally { day: day(d), key: k.into(), n };
    let tallies = vec![
        t("2026-03-01", "R|lead|google|cpc", 4),
        t("2026-03-01", "R|mql|google|cpc", 2),
        t("2026-03-01", "T|mql|5|google|cpc", 1),
        t("2026-03-01", "T|mql|72|google|cpc", 1),
        t("2026-03-01", "R|customer|google|cpc", 1),
        t("2026-03-01", "T|customer|24|google|cpc", 1),
        t("2026-03-01", "C|96|google|cpc", 1),
        t("2026-04-10", "R|lead|(direct)|(none)", 1),
        t("2026-05-01", "R|lead|google|cpc", 100),
    ];
    let f = ember_reports::funnel(&m, &tallies, day("2026-03-01"), day("2026-04-30"), By::Channel);
    assert_eq!(f.rows.iter().map(|r| r.group.as_str()).collect::<Vec<_>>(), ["(direct)/(none)", "google/cpc"]);
    let g = &f.rows[1];
    assert_eq!(g.stages.iter().map(|c| c.leads).collect::<Vec<_>>(), [4, 2, 1]);
    assert_eq!(g.stages[1].conversion, Some(0.5));
    assert_eq!(g.stages[1].median_hours, Some(5), "lower median of {{5, 72}}");
    assert_eq!(g.lead_to_customer, Some(0.25));
    assert_eq!(g.sales_cycle_median_hours, Some(96));
    assert_eq!(f.total.stages[0].leads, 5);
    let c = ember_reports::funnel(&m, &tallies, day("2026-03-01"), day("2026-05-31"), By::Cohort);
    assert_eq!(c.rows.iter().map(|r| (r.group.as_str(), r.stages[0].leads)).collect::<Vec<_>>(), [("2026-03", 4), ("2026-04", 1), ("2026-05", 100)]);
    let text = ember_reports::table::funnel(&f);
    assert!(text.contains("google/cpc") && text.contains("50.0%") && text.contains("25.0%"), "{text}");
}

#[test]
fn quality_costs_and_score_bins() {
    let m = model();
    let t = |k: &str, n: i64| Tally { day: day("2026-03-03"), key: k.into(), n };
    let tallies = vec![
        t("R|lead|google|cpc", 10),
        t("R|mql|google|cpc", 4),
        t("R|customer|google|cpc", 2),
        t("O|google|cpc", 1),
        t("S|engagement|0|google|cpc", 7),
        t("S|engagement|9|google|cpc", 3),
    ];
    let costs = ember_reports::parse_costs("source,medium,cost\ngoogle,cpc,1000\nlinkedin,paid,50\n").expect("costs");
    let q = ember_reports::quality(&m, &tallies, day("2026-03-01"), day("2026-03-31"), &costs);
    assert_eq!(q.mql_stage.as_deref(), Some("mql"));
    let mo = &q.months[0];
    assert_eq!((mo.month.as_str(), mo.new_leads, mo.mqls, mo.customers, mo.reopened), ("2026-03", 10, 4, 2, 1));
    let bins = &mo.scores["engagement"];
    assert_eq!((bins[0].from, bins[0].to, bins[0].leads), (0, 9, 7));
    assert_eq!((bins[9].from, bins[9].to, bins[9].leads), (90, 100, 3));
    let fit = &mo.scores["fit"];
    assert_eq!((fit[5].from, fit[5].to), (0, 9));
    let g = q.channels.iter().find(|c| c.channel == "google/cpc").expect("google");
    assert_eq!((g.cost, g.cost_per_mql, g.cost_per_sale), (Some(1000.0), Some(250.0), Some(500.0)));
    let l = q.channels.iter().find(|c| c.channel == "linkedin/paid").expect("a channel with a cost and no lead is listed");
    assert_eq!((l.new_leads, l.cost_per_mql), (0, None));
    assert_eq!(ember_reports::parse_costs("google/cpc=10,x/y=2.5").expect("pairs").get("x/y"), Some(&2.5));
    assert!(ember_reports::parse_costs("google,cpc,-3").is_err());
    assert!(ember_reports::parse_costs("google,cpc").is_err());
}

#[test]
fn periods() {
    let today = day("2026-03-15");
    let p = Period::parse(None, None, today).expect("defaults");
    assert_eq!((p.from, p.to), (day("2025-04-01"), today));
    assert_eq!(p.months().len(), 12);
    let p = Period::parse(Some("2026-01"), Some("2026-02"), today).expect("months");
    assert_eq!((p.from, p.to), (day("2026-01-01"), day("2026-02-28")));
    assert!(Period::parse(Some("2026-03-02"), Some("2026-03-01"), today).is_err());
    assert!(Period::parse(Some("yesterday"), None, today).is_err());
}

/// SPEC §2: when an anonymous profile with an active enrollment merges into a lead with one
/// in the same campaign, the lead's own stays active and the other is dropped — not counted
/// as an exit by the nurture report's counters.
#[test]
fn a_merged_duplicate_enrollment_is_not_counted_as_an_exit() {
    let m = Arc::new(
        Model::from_yaml_str(
            r#"
name: t
timezone: UTC
scores:
  engagement: { min: 0, max: 100 }
rules:
  - { id: visit, on: page_view, points: { engagement: 1 } }
stages:
  - { id: lead, when: { identified: true } }
templates:
  hello: { subject: "Hi", html: "<p>Hi</p>" }
email:
  from: "a@x.com"
  frequency_cap: { max: 3, per: 7d }
campaigns:
  - id: welcome
    enter: { on: page_view }
    steps:
      - send: hello
      - wait: 7d
"#,
            "t.yaml",
        )
        .expect("model"),
    );
    let engine = Engine::new(m.clone());
    let mut known = engine.new_lead("known", at("2026-03-02T10:00:00Z"));
    engine.ingest(&mut known, &ev("k1", "page_view", "2026-03-02T10:00:00Z", json!({})));
    let raw: RawEvent = serde_json::from_value(
        json!({"event_id": "a1", "type": "page_view", "occurred_at": "2026-03-02T11:00:00Z", "anonymous_id": "c1"}),
    )
    .expect("raw");
    let anon_event = raw.validate(at("2026-03-02T11:00:01Z"), || unreachable!()).expect("valid");
    let mut anon = engine.new_lead("anon", at("2026-03-02T11:00:00Z"));
    engine.ingest(&mut anon, &anon_event);
    assert!(known.active_enrollment("welcome").is_some() && anon.active_enrollment("welcome").is_some());
    let mut merged = known.clone();
    engine.merge(&mut merged, anon.clone(), at("2026-03-02T12:00:00Z"));
    let active: Vec<_> = merged.enrollments.iter().filter(|e| e.campaign == "welcome").collect();
    assert_eq!(active.len(), 1, "one enrollment per campaign after the merge: {active:?}");
    assert_eq!(merged.latest_enrollment("welcome").map(|e| e.entered_at), Some(at("2026-03-02T10:00:00Z")), "the lead's own");
    let t = tallies(&m, Some(&known), &merged, Some(&anon));
    let exits: Vec<_> = t.iter().filter(|t| t.key.ends_with("|exited")).collect();
    assert!(exits.is_empty(), "a merge counts no exit: {exits:?}");
}
