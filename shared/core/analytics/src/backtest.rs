//! Backtest: replay history through a model with the real scoring engine, and measure how well
//! its MQL definition finds the leads that bought.
//!
//! ## Replay
//! Each lead's events ([`crate::calibrate::histories`]) go through [`Engine::ingest`] in time
//! order — the function the ingest service calls, so rules, caps, `once`, `count`, profile rules,
//! stages and tags are exactly what live tracking computes. Before each event, inactivity decay
//! that came due is applied with [`Engine::decay`] at its due time, as a decay job running at
//! that moment would. A lead that bought is replayed only up to its purchase (what happens
//! after a purchase is not a prediction).
//!
//! Not replayed: drip runs (campaign `points:` steps; emails and their opens and clicks are
//! whatever the history holds), CRM feedback, and the anonymous → identified merge itself (an
//! anonymous visitor's events are attributed to its email up front, which gives the same scores
//! as a merge when no cap window spans both profiles).
//!
//! ## Figures
//! A lead is *predicted* when it reached the MQL stage or any later one (the funnel rule of
//! SPEC §2) during the replay. Precision = predicted leads that bought / predicted leads; recall
//! = predicted leads that bought / leads that bought; lead time = purchase time − the time the
//! lead first reached the MQL stage or later, median over the predicted buyers.

use crate::calibrate::History;
use crate::rows::Outcomes;
use ember_scoring::{Engine, Lead, Time};
use serde::Serialize;

/// One lead after the replay.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// Email (or anonymous id).
    pub key: String,
    /// The lead's state at the end of the replay.
    pub lead: Lead,
    /// When it bought, if it did.
    pub bought: Option<Time>,
}

/// Replays every history (see the module docs); `progress` is called with the number of
/// events applied so far, about every thousand events.
pub fn replay(engine: &Engine, histories: &[History], outcomes: &Outcomes, progress: &mut dyn FnMut(u64)) -> Vec<Replayed> {
    let mut done = 0u64;
    let mut last_report = 0u64;
    let mut out = Vec::with_capacity(histories.len());
    for h in histories.iter().filter(|h| !h.events.is_empty()) {
        let bought = outcomes.get(&h.key).map(|o| o.purchased_at);
        let mut lead = engine.new_lead(format!("bt_{}", crate::rows::stable_id(&[&h.key])), h.events[0].at);
        for e in h.events.iter().filter(|e| bought.is_none_or(|b| e.at < b)) {
            // Decay that came due before this event, at its due time (bounded: each call
            // applies a step, which moves the due time on or clears it).
            for _ in 0..1000 {
                match engine.due(&lead).decay {
                    Some(due) if due <= e.at => {
                        engine.decay(&mut lead, due);
                    }
                    _ => break,
                }
            }
            engine.ingest(&mut lead, e);
            // Messages would go to the bus; nothing here consumes them.
            lead.outbox.clear();
            done += 1;
        }
        if done - last_report >= 1000 {
            last_report = done;
            progress(done);
        }
        out.push(Replayed { key: h.key.clone(), lead, bought });
    }
    progress(done);
    out
}

/// What `ember backtest` reports: how well the model's MQL stage predicted who bought.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// [`Model::name`](ember_scoring::Model::name) of the replayed model.
    pub model: String,
    /// Stage the MQL definition is read from.
    pub mql_stage: String,
    /// Leads whose history was replayed through the model.
    pub leads: u64,
    /// Of those, leads with a purchase in the outcomes.
    pub buyers: u64,
    /// Leads that reached the MQL stage or later.
    pub mqls: u64,
    /// MQLs that bought.
    pub true_positives: u64,
    /// true positives / MQLs.
    pub precision: f64,
    /// true positives / buyers.
    pub recall: f64,
    /// Median days from MQL to purchase over the MQLs that bought.
    pub median_lead_time_days: Option<f64>,
    /// Share of leads that became MQLs.
    pub mql_rate: f64,
}

/// When the lead first reached stage index `at_least` or a later one.
pub fn reached(engine: &Engine, lead: &Lead, at_least: usize) -> Option<Time> {
    let m = engine.model();
    lead.stage_history.iter().filter(|s| m.stage_index(&s.stage).is_some_and(|i| i >= at_least)).map(|s| s.at).min()
}

/// Precision, recall and lead time of the MQL stage `mql_stage` (see the module docs).
pub fn figures(engine: &Engine, replayed: &[Replayed], mql_stage: &str) -> Result<Figures, String> {
    let m = engine.model();
    let idx = m
        .stage_index(mql_stage)
        .filter(|i| *i > 0)
        .ok_or_else(|| format!("the model `{}` has no stage `{mql_stage}` (stages: {})", m.name, m.stages.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", ")))?;
    let mut mqls = 0;
    let mut tp = 0;
    let mut buyers = 0;
    let mut days = Vec::new();
    for r in replayed {
        let q = reached(engine, &r.lead, idx);
        buyers += r.bought.is_some() as u64;
        if let Some(q) = q {
            mqls += 1;
            if let Some(b) = r.bought {
                tp += 1;
                days.push((b - q).num_seconds() as f64 / 86_400.0);
            }
        }
    }
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Ok(Figures {
        model: m.name.clone(),
        mql_stage: mql_stage.to_string(),
        leads: replayed.len() as u64,
        buyers,
        mqls,
        true_positives: tp,
        precision: ratio(tp, mqls),
        recall: ratio(tp, buyers),
        median_lead_time_days: median(&mut days),
        mql_rate: ratio(mqls, replayed.len() as u64),
    })
}

/// Median (mean of the two middle values for an even count).
pub fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::histories;
    use crate::rows::Outcome;
    use serde_json::json;
    use std::sync::Arc;

    const MODEL: &str = r#"
name: t
scores: { engagement: { min: 0, max: 100 } }
rules:
  - { id: demo, on: demo_request, points: { engagement: 50 } }
  - { id: view, on: page_view, points: { engagement: 10 } }
decay:
  - { score: engagement, after: 10d, points: -20 }
stages:
  - { id: lead, when: { identified: true } }
  - { id: mql, when: { engagement: { gte: 50 } } }
"#;

    fn ev(kind: &str, email: &str, day: i64) -> ember_scoring::Event {
        let raw: ember_scoring::RawEvent = serde_json::from_value(json!({
            "event_id": format!("{kind}{day}{email}"), "type": kind, "email": email,
            "occurred_at": format!("2025-01-{:02}T00:00:00Z", day + 1) })).unwrap();
        raw.validate("2030-01-01T00:00:00Z".parse().unwrap(), || unreachable!()).unwrap()
    }

    #[test]
    fn precision_recall_lead_time_and_decay() {
        let model = Arc::new(ember_scoring::Model::from_yaml_str(MODEL, "t.yaml").unwrap());
        let engine = Engine::new(model);
        let mut events = vec![
            ev("demo_request", "a@x.example", 0), // MQL on day 0, buys day 4
            ev("demo_request", "b@x.example", 0), // MQL, never buys
            ev("demo_request", "c@x.example", 5), // buys on day 3: the demo came after, no MQL before
        ];
        // d: 40 points, then 20 days of silence (decay −20), then 10 more: 30, not an MQL.
        for day in 0..4 {
            events.push(ev("page_view", "d@x.example", day));
        }
        events.push(ev("page_view", "d@x.example", 24));
        let at = |d: u32| format!("2025-01-{d:02}T00:00:00Z").parse().unwrap();
        let mut outcomes = Outcomes::new();
        for (k, d) in [("a@x.example", 5), ("c@x.example", 4)] {
            outcomes.insert(k.into(), Outcome { lead: k.into(), purchased_at: at(d), amount: None });
        }
        let mut calls = 0;
        let r = replay(&engine, &histories(events), &outcomes, &mut |_| calls += 1);
        assert!(calls >= 1);
        let d = r.iter().find(|x| x.key == "d@x.example").unwrap();
        assert_eq!(d.lead.scores["engagement"], 30, "decay applied before the late event");
        let f = figures(&engine, &r, "mql").unwrap();
        assert_eq!((f.leads, f.buyers, f.mqls, f.true_positives), (4, 2, 2, 1));
        assert_eq!((f.precision, f.recall), (0.5, 0.5));
        assert_eq!(f.median_lead_time_days, Some(4.0));
        assert!(figures(&engine, &r, "sql").unwrap_err().contains("no stage `sql`"));
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
