//! On a simulated population of 10,000 leads with a known ground truth: calibration recovers the
//! true ordering of activities by lift, and the calibrated model backtests at a higher MQL
//! precision than the example model at comparable recall. Figures are printed (run with
//! `--nocapture`) and recorded in docs/calibration.md.

use ember_analytics::backtest::{figures, replay, Figures};
use ember_analytics::calibrate::{self, histories, History, Options};
use ember_analytics::rows::Outcomes;
use ember_analytics::simulate::{generate, Population, Spec};
use ember_scoring::{Engine, Event, Model, RawEvent};
use std::path::Path;
use std::sync::Arc;

const LEADS: u64 = 10_000;
const SEED: u64 = 42;

fn population() -> (Population, Vec<History>, Outcomes) {
    let pop = generate(&Spec::new(LEADS, SEED));
    let now = "2030-01-01T00:00:00Z".parse().unwrap();
    let events: Vec<Event> = pop
        .events
        .iter()
        .map(|v| serde_json::from_value::<RawEvent>(v.clone()).unwrap().validate(now, || unreachable!()).unwrap())
        .collect();
    let outcomes: Outcomes = pop.outcomes.iter().map(|o| (o.lead.clone(), o.clone())).collect();
    (pop.clone(), histories(events), outcomes)
}

fn example() -> (String, Arc<Model>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../examples/b2b-saas.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let model = Arc::new(Model::from_yaml_str(&text, "b2b-saas.yaml").unwrap());
    (text, model)
}

fn backtest(model: Arc<Model>, h: &[History], o: &Outcomes) -> Figures {
    let engine = Engine::new(model);
    figures(&engine, &replay(&engine, h, o, &mut |_| {}), "mql").unwrap()
}

#[test]
fn calibration_recovers_the_true_order_and_beats_the_example_model() {
    let t0 = std::time::Instant::now();
    let (pop, h, o) = population();
    println!("population: {} leads, {} events, {} buyers ({:.1?})", h.len(), pop.events.len(), o.len(), t0.elapsed());

    // 1. Activity lifts against the truth.
    let table = calibrate::activities(&h, &o, None, &Options::default());
    println!("{:<42} {:>7} {:>8} {:>9} {:>7}", "activity", "leads", "lift", "true lift", "points");
    let mut pairs = Vec::new();
    for t in &pop.truth.activities {
        let row = table.rows.iter().find(|r| r.name == t.activity).unwrap_or_else(|| panic!("{} not measured", t.activity));
        println!("{:<42} {:>7} {:>8.2} {:>9.2} {:>7?}", t.activity, row.leads, row.lift, t.true_lift, row.points);
        pairs.push((t.true_lift, row.lift, t.activity.clone()));
    }
    // Every pair of activities whose true lifts differ by more than 15 % is ordered correctly.
    let mut checked = 0;
    for a in &pairs {
        for b in &pairs {
            if a.0 > b.0 * 1.15 {
                checked += 1;
                assert!(a.1 > b.1, "{} (true {:.2}, measured {:.2}) should rank above {} (true {:.2}, measured {:.2})", a.2, a.0, a.1, b.2, b.0, b.1);
            }
        }
    }
    println!("ordered pairs checked: {checked} ({:.1?})", t0.elapsed());

    // 2. Calibrated model vs the example.
    let (yaml, base) = example();
    let engine = Engine::new(base.clone());
    let replayed = replay(&engine, &h, &o, &mut |_| {});
    let before = figures(&engine, &replayed, "mql").unwrap();
    let rules = calibrate::rules(&base, &replayed, &Options::default());
    for r in &rules.rows {
        println!("rule {:<24} leads {:>6} lift {:>5.2} points {:?} (was {:?})", r.name, r.leads, r.lift, r.points, r.current);
    }
    let load = |y: &str| Model::from_yaml_str(y, "calibrated.yaml").map_err(|e| e.to_string());
    let (rules, scaling) = calibrate::match_volume(&yaml, &base, &rules, &h, &o, "mql", &load, &mut |_| {}).unwrap();
    println!("scaling: {scaling:?} ({:.1?})", t0.elapsed());
    let (calibrated_yaml, changed) = calibrate::write_model(&yaml, &base, &rules, "calibrated").unwrap();
    let calibrated = Arc::new(load(&calibrated_yaml).unwrap());
    let after = backtest(calibrated, &h, &o);
    println!("example:    {before:?}\ncalibrated: {after:?}\nrules changed: {changed} ({:.1?})", t0.elapsed());
    // Higher precision: by a tenth at least (0.120 → 0.142 with seed 42).
    assert!(after.precision > before.precision * 1.1, "precision {:.3} vs {:.3}", after.precision, before.precision);
    // Comparable recall: within 5 points of the example's, or better.
    assert!(after.recall > before.recall - 0.05, "recall {:.3} vs {:.3}", after.recall, before.recall);
}
