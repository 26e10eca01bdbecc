//! A synthetic population with a known ground truth, for testing calibration and backtests.
//!
//! ## The generating model
//! Every lead has a hidden propensity `z ~ N(0, 1)`.
//!
//! - Activity `a` (for example `page_view /pricing`) is done `Poisson(λₐ · exp(wₐ·z − wₐ²/2))`
//!   times: `λₐ` is the average count over the population, `wₐ` how strongly the activity goes
//!   with propensity (0: done by buyers and non-buyers alike; negative: done by non-buyers).
//! - The lead buys with probability `σ(α + β·z)`.
//!
//! So buying and activities are linked only through `z`, and the true lift of an activity
//! (P(buy | did it) / P(buy)) follows from the model by integrating over `z`; it is written to
//! `truth.json` ([`Truth`]). Fit traits (job title, company size, country) are drawn independently
//! of `z`: they carry no signal.
//!
//! ## Timeline
//! Leads arrive uniformly over [`Spec::start`] + 270 days; each first submits the `signup` form
//! (with its traits and acquisition channel), then does its activities at uniform times within
//! the next 60 days. A buyer buys 60 to 120 days after arriving, after all its activities.

use crate::rng::Rng;
use crate::rows::Outcome;
use chrono::{Duration, TimeZone, Utc};
use ember_scoring::Time;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One activity of the generating model.
#[derive(Debug, Clone, Copy)]
pub struct Activity {
    /// Calibration key ([`crate::calibrate::activity_key`]) of its events.
    pub key: &'static str,
    /// SPEC §3 `type` of the generated events, e.g. `page_view`.
    pub kind: &'static str,
    /// Property name and values (one is picked per event); empty for none.
    pub prop: (&'static str, &'static [&'static str]),
    /// Average count per lead.
    pub mean: f64,
    /// How the count follows the lead's buying propensity `z`: the mean is scaled by
    /// `exp(weight·z − weight²/2)`; 0 = unrelated, negative = goes with not buying.
    pub weight: f64,
    /// At most once per lead.
    pub once: bool,
}

const fn act(key: &'static str, kind: &'static str, prop: (&'static str, &'static [&'static str]), mean: f64, weight: f64) -> Activity {
    Activity { key, kind, prop, mean, weight, once: false }
}

/// The activities of the simulated B2B software vendor. Their events match the rules of
/// `examples/b2b-saas.yaml`, whose points do not follow these weights: it rewards blog reading,
/// the introductory white paper and email clicks, which here go with *not* buying (students and
/// researchers read a lot) or say nothing about it.
pub const ACTIVITIES: &[Activity] = &[
    act("page_view /", "page_view", ("path", &["/"]), 2.0, 0.0),
    act("page_view /blog/*", "page_view", ("path", &["/blog/what-is-lead-scoring", "/blog/nurture-flows", "/blog/utm-guide", "/blog/ops-team"]), 2.5, -0.4),
    act("page_view /pricing", "page_view", ("path", &["/pricing"]), 0.6, 1.1),
    act("page_view /careers", "page_view", ("path", &["/careers"]), 0.2, -1.0),
    act("page_view /docs/*", "page_view", ("path", &["/docs/getting-started", "/docs/api", "/docs/integrations"]), 0.5, 0.7),
    act("email_open", "email_open", ("", &[]), 3.0, 0.05),
    act("email_click", "email_click", ("", &[]), 1.0, 0.0),
    act("download what-is-marketing-automation", "download", ("content_id", &["what-is-marketing-automation"]), 0.4, -0.2),
    act("download automation-strategy-guide", "download", ("content_id", &["automation-strategy-guide"]), 0.25, 0.8),
    act("download roi-calculator", "download", ("content_id", &["roi-calculator"]), 0.15, 1.4),
    act("webinar_registered", "webinar_registered", ("", &[]), 0.3, 0.3),
    act("webinar_attended", "webinar_attended", ("", &[]), 0.2, 0.6),
    act("demo_request", "demo_request", ("", &[]), 0.06, 1.9),
    act("form_submit needs-survey", "form_submit", ("form_id", &["needs-survey"]), 0.2, 0.5),
    Activity { once: true, ..act("newsletter_subscribe", "newsletter_subscribe", ("", &[]), 0.4, 0.0) },
];

/// Buying: `σ(α + β·z)`.
pub const ALPHA: f64 = -4.6;
/// See [`ALPHA`].
pub const BETA: f64 = 2.5;

/// What to generate (`ember simulate`): how many leads, from which seed, from when.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Leads in the population (each gets its own email and events).
    pub leads: u64,
    /// Seed: the same seed gives the same population.
    pub seed: u64,
    /// Arrival time of the first lead (2025-01-01T00:00:00Z with [`Spec::new`]).
    pub start: Time,
}

impl Spec {
    /// `leads` leads from `seed`, arriving from 2025-01-01.
    pub fn new(leads: u64, seed: u64) -> Spec {
        Spec { leads, seed, start: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).single().unwrap_or_default() }
    }
}

/// The ground truth of one activity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrueActivity {
    /// [`Activity::key`], the same key `ember calibrate` reports the activity under.
    pub activity: String,
    /// Average count per lead.
    pub mean_count: f64,
    /// [`Activity::weight`] the events were generated with.
    pub weight: f64,
    /// Share of leads that do it at least once.
    pub share: f64,
    /// P(buy | did it) / P(buy), from the generating model.
    pub true_lift: f64,
}

/// `truth.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    /// [`Spec::leads`] of the run.
    pub leads: u64,
    /// [`Spec::seed`] of the run: generating again with it gives the same files.
    pub seed: u64,
    /// Buying: `σ(alpha + beta·z)`.
    pub alpha: f64,
    /// See `alpha`.
    pub beta: f64,
    /// P(buy) in the generating model.
    pub buy_rate: f64,
    /// Buyers in this population.
    pub buyers: u64,
    /// Activities, highest true lift first.
    pub activities: Vec<TrueActivity>,
}

/// A generated population.
#[derive(Debug, Clone)]
pub struct Population {
    /// Events in SPEC §3 shape, in time order.
    pub events: Vec<Value>,
    /// One purchase per buyer (`outcomes.csv`), for `ember calibrate` and `ember backtest`.
    pub outcomes: Vec<Outcome>,
    /// What the generator knows and a calibration should recover (`truth.json`).
    pub truth: Truth,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn rate_at(a: &Activity, z: f64) -> f64 {
    a.mean * (a.weight * z - a.weight * a.weight / 2.0).exp()
}

/// True lifts by integrating over `z` (trapezoid rule on [-8, 8]).
pub fn truth_of(spec: &Spec, buyers: u64) -> Truth {
    let steps = 3200;
    let (lo, hi) = (-8.0f64, 8.0f64);
    let h = (hi - lo) / steps as f64;
    let phi = |z: f64| (-z * z / 2.0).exp() / (std::f64::consts::TAU).sqrt();
    let integrate = |f: &dyn Fn(f64) -> f64| (0..=steps).map(|i| {
        let z = lo + i as f64 * h;
        let w = if i == 0 || i == steps { 0.5 } else { 1.0 };
        w * phi(z) * f(z)
    }).sum::<f64>() * h;
    let buy = |z: f64| sigmoid(ALPHA + BETA * z);
    let buy_rate = integrate(&buy);
    let mut activities: Vec<TrueActivity> = ACTIVITIES
        .iter()
        .map(|a| {
            let did = |z: f64| 1.0 - (-rate_at(a, z)).exp();
            let share = integrate(&did);
            let both = integrate(&|z| did(z) * buy(z));
            TrueActivity { activity: a.key.into(), mean_count: a.mean, weight: a.weight, share, true_lift: both / share / buy_rate }
        })
        .collect();
    activities.sort_by(|a, b| b.true_lift.total_cmp(&a.true_lift));
    Truth { leads: spec.leads, seed: spec.seed, alpha: ALPHA, beta: BETA, buy_rate, buyers, activities }
}

const TITLES: &[&str] = &["Marketing Manager", "Head of Growth", "CMO", "Marketing Ops Specialist", "VP Marketing", "Content Writer", "Student", "Director of Demand Generation", "Sales Rep", "CEO"];
const COUNTRIES: &[&str] = &["FR", "FR", "FR", "BE", "CH", "CA", "LU", "FR", "BE", "DE"];
const INDUSTRIES: &[&str] = &["software", "financial_services", "retail", "manufacturing", "education", "healthcare"];
const CHANNELS: &[(&str, &str)] = &[("google", "cpc"), ("linkedin", "paid_social"), ("newsletter", "email"), ("", "")];

/// Generates the population (deterministic for a seed).
pub fn generate(spec: &Spec) -> Population {
    let mut rng = Rng::new(spec.seed);
    let mut events = Vec::new();
    let mut outcomes = Vec::new();
    let fmt = |t: Time| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for i in 0..spec.leads {
        let z = rng.normal();
        let email = format!("lead{i:06}@company{}.example", rng.below(spec.leads.max(1) * 3 / 4 + 1));
        let arrived = spec.start + Duration::seconds(rng.below(270 * 86_400) as i64);
        let (source, medium) = *rng.pick(CHANNELS);
        let size = [12, 40, 150, 800, 2500, 7000, 20000][rng.below(7) as usize];
        let mut signup = json!({
            "event_id": format!("sim-{}-{i}-signup", spec.seed),
            "type": "form_submit", "occurred_at": fmt(arrived), "email": email,
            "traits": {"job_title": rng.pick(TITLES), "company_size": size, "country": rng.pick(COUNTRIES), "industry": rng.pick(INDUSTRIES)},
            "properties": {"form_id": "signup", "path": "/signup"},
        });
        if !source.is_empty() {
            signup["context"] = json!({"utm": {"source": source, "medium": medium, "campaign": "sim"}});
        }
        events.push(signup);
        for (ai, a) in ACTIVITIES.iter().enumerate() {
            let mut n = rng.poisson(rate_at(a, z));
            if a.once {
                n = n.min(1);
            }
            for k in 0..n {
                let at = arrived + Duration::seconds(60 + rng.below(60 * 86_400) as i64);
                let mut props = serde_json::Map::new();
                if !a.prop.0.is_empty() {
                    props.insert(a.prop.0.into(), Value::String(rng.pick(a.prop.1).to_string()));
                }
                if a.kind == "email_click" || a.kind == "email_open" {
                    // People, not scanners: well after delivery, a browser's user agent.
                    props.insert("seconds_since_delivery".into(), json!(600 + rng.below(86_400)));
                    props.insert("user_agent".into(), json!("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0)"));
                }
                events.push(json!({
                    "event_id": format!("sim-{}-{i}-{ai}-{k}", spec.seed),
                    "type": a.kind, "occurred_at": fmt(at), "email": email, "properties": props,
                }));
            }
        }
        if rng.chance(sigmoid(ALPHA + BETA * z)) {
            let at = arrived + Duration::seconds((60 * 86_400 + rng.below(60 * 86_400)) as i64);
            let amount = (2_000 + rng.below(20_000)) as f64;
            outcomes.push(Outcome { lead: email.clone(), purchased_at: at, amount: Some(amount) });
        }
    }
    events.sort_by(|a, b| a["occurred_at"].as_str().cmp(&b["occurred_at"].as_str()));
    let truth = truth_of(spec, outcomes.len() as u64);
    Population { events, outcomes, truth }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_with_a_plausible_truth() {
        let spec = Spec::new(300, 9);
        let a = generate(&spec);
        let b = generate(&spec);
        assert_eq!(a.events, b.events);
        assert_eq!(a.outcomes, b.outcomes);
        let t = &a.truth;
        assert!(t.buy_rate > 0.04 && t.buy_rate < 0.2, "{}", t.buy_rate);
        assert_eq!(t.activities[0].activity, "demo_request");
        let home = t.activities.iter().find(|x| x.activity == "page_view /").unwrap();
        assert!((home.true_lift - 1.0).abs() < 1e-6, "weight 0 means no lift: {}", home.true_lift);
        let careers = t.activities.iter().find(|x| x.activity == "page_view /careers").unwrap();
        assert!(careers.true_lift < 1.0);
        // Every generated event is a valid event, and times are sorted.
        for e in &a.events {
            let raw: ember_scoring::RawEvent = serde_json::from_value(e.clone()).unwrap();
            raw.validate("2030-01-01T00:00:00Z".parse().unwrap(), || unreachable!()).unwrap();
        }
        assert!(a.events.windows(2).all(|w| w[0]["occurred_at"].as_str() <= w[1]["occurred_at"].as_str()));
    }
}
