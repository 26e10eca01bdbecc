//! Calibration: which activities go with buying, by how much, and how many points they are worth.
//!
//! ## Statistics
//! For every lead in the history (known by its email; anonymous events are attributed to the
//! email their anonymous id was seen with, see [`histories`]):
//!
//! - *converted*: the lead is in the outcomes file;
//! - an activity counts for a lead only if it happened **before** the lead's purchase (what a
//!   lead does after buying predicts nothing).
//!
//! Per activity: `leads` that did it at least once, `converted` among them, `rate =
//! converted / leads`, and `lift = rate / base rate` (base rate: converted leads / all leads).
//! The lift used for points is smoothed towards 1 by adding [`Options::prior_leads`] imaginary
//! leads converting at the base rate: `smoothed = (converted + m × base) / (leads + m) / base`, so
//! that an activity done by a handful of leads does not get extreme points.
//!
//! ## Suggested points
//! `points = round(K × ln(smoothed lift))`: an activity that doubles the odds of buying earns as
//! much more than a neutral one as one that halves them loses; a neutral activity (lift 1) earns
//! 0. `K` scales the log-lifts to the model's range: the activity (or rule) with the largest
//! |ln lift| gets the largest |points| the base model gives in that score group (25 in
//! `examples/b2b-saas.yaml`), or [`Options::max_points`] without a base model. Activities done
//! by fewer than [`Options::min_support`] leads get no suggestion.
//!
//! ## Activities
//! [`activity_key`]: the event type, refined where the property says what was done — page views
//! by path group (`/pricing`, `/blog/*`), downloads by `content_id`, form submissions by
//! `form_id`, CTA clicks by `cta_id`, webinars by `webinar_id` when present.
//!
//! ## Rules and the calibrated model
//! With a base model, each of its behaviour rules is calibrated the same way, where "did it"
//! means "the rule fired" when the history is replayed through the real engine
//! ([`crate::backtest::replay`]) — so `where`, `once`, `count` and caps are the engine's. The
//! calibrated model ([`write_model`]) is the base model with those rules' points replaced and
//! everything else untouched.

use crate::backtest::{figures, replay, Replayed};
use ember_scoring::Engine;
use std::sync::Arc;
use crate::rows::Outcomes;
use ember_scoring::model::RuleKind;
use ember_scoring::{Event, Model, Time};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Calibration settings; the defaults are 30 leads of support, 10 prior leads, 25 points at most.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Fewest leads an activity needs before points are suggested.
    pub min_support: u64,
    /// Imaginary leads at the base rate added to each activity (smoothing).
    pub prior_leads: f64,
    /// Largest |points| when there is no base model to take the range from.
    pub max_points: i64,
}

impl Default for Options {
    fn default() -> Options {
        Options { min_support: 30, prior_leads: 10.0, max_points: 25 }
    }
}

/// One lead's history: its key (normalized email or anonymous id) and events, oldest first.
#[derive(Debug, Clone)]
pub struct History {
    /// Email (or anonymous id, for a visitor never identified).
    pub key: String,
    /// Events, oldest first.
    pub events: Vec<Event>,
}

/// Groups events per lead. An event with only an anonymous id belongs to the email that
/// anonymous id was seen with anywhere in the history (the identity the ingest service would
/// merge it into); otherwise to the anonymous visitor itself. An event id seen before is
/// skipped (exactly once, as in the ingest service). Events are sorted by time (ties keep file
/// order); leads come out sorted by key.
pub fn histories(events: Vec<Event>) -> Vec<History> {
    let mut owner: HashMap<String, String> = HashMap::new();
    for e in &events {
        if let (Some(a), Some(m)) = (&e.anonymous_id, &e.email) {
            owner.entry(a.clone()).or_insert_with(|| m.clone());
        }
    }
    let mut by: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    for e in events {
        // The same event id twice counts once, as in the ingest service.
        if !seen.insert(e.id.clone()) {
            continue;
        }
        let key = match (&e.email, &e.anonymous_id) {
            (Some(m), _) => m.clone(),
            (None, Some(a)) => owner.get(a).cloned().unwrap_or_else(|| a.clone()),
            (None, None) => continue,
        };
        by.entry(key).or_default().push(e);
    }
    by.into_iter()
        .map(|(key, mut events)| {
            events.sort_by_key(|e| e.at);
            History { key, events }
        })
        .collect()
}

/// Path group of a page: `/` stays `/`; `/pricing` and `/pricing/` are `/pricing`; deeper
/// paths keep their first segment: `/blog/why-x` → `/blog/*`. Query and fragment are dropped.
pub fn path_group(path: &str) -> String {
    let p = path.split(['?', '#']).next().unwrap_or("").to_lowercase();
    let mut segs = p.split('/').filter(|s| !s.is_empty());
    match (segs.next(), segs.next()) {
        (None, _) => "/".into(),
        (Some(first), None) => format!("/{first}"),
        (Some(first), Some(_)) => format!("/{first}/*"),
    }
}

/// The activity an event stands for (see the module docs).
pub fn activity_key(e: &Event) -> String {
    let prop = |k: &str| e.properties.get(k).and_then(|v| v.as_str()).filter(|s| !s.is_empty());
    let detail = match e.kind.as_str() {
        "page_view" => prop("path").map(path_group),
        "download" => prop("content_id").map(str::to_string),
        "form_submit" => prop("form_id").map(str::to_string),
        "cta_click" => prop("cta_id").map(str::to_string),
        "webinar_registered" | "webinar_attended" => prop("webinar_id").map(str::to_string),
        _ => None,
    };
    match detail {
        Some(d) => format!("{} {d}", e.kind),
        None => e.kind.clone(),
    }
}

/// One activity's (or rule's) figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Activity key or rule id.
    pub name: String,
    /// Leads that did it (before buying).
    pub leads: u64,
    /// Of those, leads with a purchase in the outcomes.
    pub converted: u64,
    /// converted / leads.
    pub rate: f64,
    /// rate / base rate.
    pub lift: f64,
    /// Lift smoothed towards 1 (used for points).
    pub smoothed_lift: f64,
    /// Suggested points (none below the minimum support).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points: Option<i64>,
    /// Suggested points before rounding, at scale 1 (`K × ln smoothed lift`).
    #[serde(skip)]
    pub unrounded: Option<f64>,
    /// Score group the points go to (rules only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Points the base model gives now (rules only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<i64>,
}

/// A calibration table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    /// Leads in the history.
    pub leads: u64,
    /// Of those, leads with a purchase in the outcomes.
    pub converted: u64,
    /// converted / leads.
    pub base_rate: f64,
    /// Rows, highest lift first.
    pub rows: Vec<Row>,
}

/// The figures of one set of leads ("did it") against the base rate.
fn row(name: String, did: &[bool], bought: &[bool], base: f64, opts: &Options) -> Row {
    let leads = did.iter().filter(|d| **d).count() as u64;
    let converted = did.iter().zip(bought).filter(|(d, b)| **d && **b).count() as u64;
    let rate = if leads == 0 { 0.0 } else { converted as f64 / leads as f64 };
    let lift = if base > 0.0 { rate / base } else { 0.0 };
    let smoothed_lift = if base > 0.0 { (converted as f64 + opts.prior_leads * base) / (leads as f64 + opts.prior_leads) / base } else { 1.0 };
    Row { name, leads, converted, rate, lift, smoothed_lift, points: None, unrounded: None, group: None, current: None }
}

/// Suggested points for rows with support: `round(K × ln smoothed lift)`, with `K` making the
/// largest |ln lift| worth `max_points`.
fn assign_points(rows: &mut [&mut Row], max_points: i64, opts: &Options) {
    let max_ln = rows.iter().filter(|r| r.leads >= opts.min_support).map(|r| r.smoothed_lift.ln().abs()).fold(0.0, f64::max);
    let k = if max_ln > 0.0 { max_points as f64 / max_ln } else { 0.0 };
    for r in rows.iter_mut() {
        if r.leads >= opts.min_support {
            let p = k * r.smoothed_lift.ln();
            r.unrounded = Some(p);
            r.points = Some(p.round() as i64);
        }
    }
}

fn sort_rows(rows: &mut [Row]) {
    rows.sort_by(|a, b| b.lift.total_cmp(&a.lift).then(b.leads.cmp(&a.leads)).then(a.name.cmp(&b.name)));
}

/// Whether an event counts for a lead that bought at `bought` (only what came before).
fn before(e: &Event, bought: Option<Time>) -> bool {
    bought.is_none_or(|b| e.at < b)
}

/// Per activity figures (see the module docs). `max_points`: the base model's range, else
/// [`Options::max_points`].
pub fn activities(histories: &[History], outcomes: &Outcomes, max_points: Option<i64>, opts: &Options) -> Table {
    let bought: Vec<bool> = histories.iter().map(|h| outcomes.contains_key(&h.key)).collect();
    let mut did: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for (i, h) in histories.iter().enumerate() {
        let when = outcomes.get(&h.key).map(|o| o.purchased_at);
        let seen: BTreeSet<String> = h.events.iter().filter(|e| e.is_activity() && before(e, when)).map(activity_key).collect();
        for a in seen {
            did.entry(a).or_insert_with(|| vec![false; histories.len()])[i] = true;
        }
    }
    table(histories.len() as u64, &bought, did.into_iter().map(|(k, v)| (k, v, None, None)).collect(), max_points.unwrap_or(opts.max_points), opts)
}

type Candidate = (String, Vec<bool>, Option<String>, Option<i64>);

fn table(leads: u64, bought: &[bool], cands: Vec<Candidate>, max_points: i64, opts: &Options) -> Table {
    let converted = bought.iter().filter(|b| **b).count() as u64;
    let base = if leads == 0 { 0.0 } else { converted as f64 / leads as f64 };
    let mut rows: Vec<Row> = cands
        .into_iter()
        .map(|(name, did, group, current)| Row { group, current, ..row(name, &did, bought, base, opts) })
        .collect();
    assign_points(&mut rows.iter_mut().collect::<Vec<_>>(), max_points, opts);
    sort_rows(&mut rows);
    Table { leads, converted, base_rate: base, rows }
}

/// Per behaviour rule of the base model: "did it" means the rule fired while the history (up
/// to the purchase) was replayed through the engine. Each rule is calibrated in the score group
/// it gives most points to; `K` is set per group from the base model's largest |points| there.
pub fn rules(model: &Model, replayed: &[Replayed], opts: &Options) -> Table {
    let bought: Vec<bool> = replayed.iter().map(|r| r.bought.is_some()).collect();
    let leads = replayed.len() as u64;
    let mut groups: BTreeMap<usize, Vec<Candidate>> = BTreeMap::new();
    for r in &model.rules {
        let RuleKind::Behaviour(_) = &r.kind else { continue };
        let Some(&(g, n)) = r.points.iter().max_by_key(|(_, n)| n.abs()) else { continue };
        let did: Vec<bool> = replayed.iter().map(|x| x.lead.rules.get(&r.id).is_some_and(|s| s.fired > 0)).collect();
        groups.entry(g).or_default().push((r.id.clone(), did, Some(model.scores[g].name.clone()), Some(n)));
    }
    let mut rows = Vec::new();
    let mut first: Option<Table> = None;
    for (g, cands) in groups {
        let max_points = model
            .rules
            .iter()
            .filter(|r| matches!(r.kind, RuleKind::Behaviour(_)))
            .flat_map(|r| r.points.iter())
            .filter(|(gg, _)| *gg == g)
            .map(|(_, n)| n.abs())
            .max()
            .unwrap_or(opts.max_points);
        let t = table(leads, &bought, cands, max_points, opts);
        rows.extend(t.rows.iter().cloned());
        first.get_or_insert(t);
    }
    sort_rows(&mut rows);
    let (converted, base_rate) = first.map_or_else(
        || {
            let c = bought.iter().filter(|b| **b).count() as u64;
            (c, if leads == 0 { 0.0 } else { c as f64 / leads as f64 })
        },
        |t| (t.converted, t.base_rate),
    );
    Table { leads, converted, base_rate, rows }
}

impl Table {
    /// The same table with every suggestion multiplied by `factor` (then rounded).
    pub fn rescaled(&self, factor: f64) -> Table {
        let mut t = self.clone();
        for r in &mut t.rows {
            r.points = r.unrounded.map(|p| (p * factor).round() as i64);
        }
        t
    }
}

/// Errors writing a calibrated model.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The base model's YAML could not be read or written.
    #[error("model YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    /// The base model has no `rules` list.
    #[error("the base model has no `rules` list")]
    NoRules,
    /// The calibrated model does not load (a bug, or a base model that did not either).
    #[error("the calibrated model does not load:\n{0}")]
    Invalid(String),
}

/// The base model's YAML with the suggested points of `table` (from [`rules`]) written into
/// the matching behaviour rules (`rules[i].points.<group>`); a rule's `cap.points` is scaled by
/// the same ratio, so that a cap still allows as many awards per window; every other key is
/// kept as it was (comments are not: the YAML is re-serialised). Rules without a suggestion keep their points.
/// Returns the new YAML and how many rules changed.
pub fn write_model(base_yaml: &str, model: &Model, table: &Table, header: &str) -> Result<(String, usize), WriteError> {
    let mut doc: serde_norway::Value = serde_norway::from_str(base_yaml)?;
    let rules = doc.get_mut("rules").and_then(|r| r.as_sequence_mut()).ok_or(WriteError::NoRules)?;
    let mut changed = 0;
    for (i, r) in model.rules.iter().enumerate() {
        let Some(row) = table.rows.iter().find(|x| x.name == r.id) else { continue };
        let (Some(points), Some(group)) = (row.points, &row.group) else { continue };
        let Some(map) = rules.get_mut(i).and_then(|x| x.get_mut("points")).and_then(|p| p.as_mapping_mut()) else { continue };
        let key = serde_norway::Value::String(group.clone());
        let before = map.get(&key).and_then(|v| v.as_i64());
        if before == Some(points) {
            continue;
        }
        map.insert(key, serde_norway::Value::Number(points.into()));
        changed += 1;
        // A cap keeps its meaning (how many awards fit in the window): its points scale with
        // the rule's.
        if let (Some(old), true) = (before.filter(|o| *o > 0), points > 0) {
            if let Some(cap) = rules.get_mut(i).and_then(|x| x.get_mut("cap")).and_then(|c| c.get_mut("points")) {
                if let Some(c) = cap.as_i64() {
                    let scaled = ((c as f64) * points as f64 / old as f64).round().max(points as f64) as i64;
                    *cap = serde_norway::Value::Number(scaled.into());
                }
            }
        }
    }
    let body = serde_norway::to_string(&doc)?;
    let header: String = header.lines().map(|l| format!("# {l}\n")).collect();
    Ok((format!("{header}{body}"), changed))
}

/// How the scale of the suggested points was chosen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scaling {
    /// Factor applied to the range-based scale.
    pub factor: f64,
    /// Leads the base model qualifies (on the leads used for matching).
    pub base_mqls: u64,
    /// Leads the calibrated model qualifies at that factor.
    pub calibrated_mqls: u64,
    /// Leads used for matching.
    pub sample: u64,
}

/// Tunes the scale of the suggested points so that, replaying the history through the engine,
/// the calibrated model qualifies (reaches `mql_stage` or later) about as many leads as the base
/// model: the same volume for sales, so a better ranking shows as both higher precision and
/// higher recall. The factor is searched by bisection over [1/4, 16] in log space (the MQL count
/// grows with the factor); above 5,000 leads every `n/2500`-th lead is used. `load` builds a
/// model from YAML (the caller knows the base directory and the environment).
#[allow(clippy::too_many_arguments)]
pub fn match_volume(
    base_yaml: &str,
    base: &Arc<Model>,
    table: &Table,
    histories: &[History],
    outcomes: &Outcomes,
    mql_stage: &str,
    load: &dyn Fn(&str) -> Result<Model, String>,
    progress: &mut dyn FnMut(u64),
) -> Result<(Table, Scaling), WriteError> {
    let step = (histories.len() / 2500).max(1);
    let sample: Vec<History> = histories.iter().step_by(step).cloned().collect();
    let count = |model: Arc<Model>| -> Result<u64, WriteError> {
        let engine = Engine::new(model);
        let replayed = replay(&engine, &sample, outcomes, &mut |_| {});
        figures(&engine, &replayed, mql_stage).map(|f| f.mqls).map_err(WriteError::Invalid)
    };
    let target = count(base.clone())?;
    let mut at = |factor: f64| -> Result<u64, WriteError> {
        let (yaml, _) = write_model(base_yaml, base, &table.rescaled(factor), "")?;
        let n = count(Arc::new(load(&yaml).map_err(WriteError::Invalid)?))?;
        progress(1);
        Ok(n)
    };
    let (mut lo, mut hi) = (0.25f64.ln(), 16f64.ln());
    let mut best = (1.0, at(1.0)?);
    for _ in 0..12 {
        let mid = (lo + hi) / 2.0;
        let n = at(mid.exp())?;
        if n.abs_diff(target) < best.1.abs_diff(target) {
            best = (mid.exp(), n);
        }
        if n.abs_diff(target) * 50 <= target {
            break; // within 2 %
        }
        if n < target { lo = mid } else { hi = mid }
    }
    let scaling = Scaling { factor: best.0, base_mqls: target, calibrated_mqls: best.1, sample: sample.len() as u64 };
    Ok((table.rescaled(best.0), scaling))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(kind: &str, email: Option<&str>, anon: Option<&str>, day: i64, props: serde_json::Value) -> Event {
        let raw: ember_scoring::RawEvent = serde_json::from_value(json!({
            "event_id": format!("{kind}{day}{email:?}{anon:?}"), "type": kind, "email": email, "anonymous_id": anon,
            "occurred_at": (chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z").unwrap() + chrono::Duration::days(day)).to_rfc3339(),
            "properties": props }))
        .unwrap();
        raw.validate("2030-01-01T00:00:00Z".parse().unwrap(), || unreachable!()).unwrap()
    }

    #[test]
    fn keys_and_groups() {
        assert_eq!(path_group("/"), "/");
        assert_eq!(path_group("/Pricing/?x=1"), "/pricing");
        assert_eq!(path_group("/blog/a/b"), "/blog/*");
        assert_eq!(activity_key(&ev("page_view", Some("a@x.example"), None, 0, json!({"path": "/blog/x"}))), "page_view /blog/*");
        assert_eq!(activity_key(&ev("download", Some("a@x.example"), None, 0, json!({"content_id": "roi"}))), "download roi");
        assert_eq!(activity_key(&ev("demo_request", Some("a@x.example"), None, 0, json!({}))), "demo_request");
    }

    #[test]
    fn anonymous_events_follow_their_email() {
        let h = histories(vec![
            ev("page_view", None, Some("c1"), 0, json!({})),
            ev("form_submit", Some("a@x.example"), Some("c1"), 1, json!({})),
            ev("page_view", None, Some("c2"), 2, json!({})),
            ev("page_view", None, Some("c2"), 2, json!({})), // the same event id again
        ]);
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].key, "a@x.example");
        assert_eq!(h[0].events.len(), 2);
        assert_eq!(h[1].key, "c2");
        assert_eq!(h[1].events.len(), 1, "a repeated event id counts once");
    }

    #[test]
    fn lift_rates_and_points() {
        // 10 leads, 2 buyers. Both buyers and 1 other did `demo_request`; everyone did page views;
        // one buyer requested its demo only after buying (does not count).
        let mut events = Vec::new();
        let mut outcomes = Outcomes::new();
        for i in 0..10 {
            let m = format!("l{i}@x.example");
            events.push(ev("page_view", Some(&m), None, 1, json!({"path": "/"})));
            if i < 2 {
                let at = chrono::DateTime::parse_from_rfc3339("2025-01-05T00:00:00Z").unwrap().with_timezone(&chrono::Utc);
                outcomes.insert(m.clone(), crate::rows::Outcome { lead: m.clone(), purchased_at: at, amount: None });
            }
        }
        events.push(ev("demo_request", Some("l0@x.example"), None, 2, json!({})));
        events.push(ev("demo_request", Some("l1@x.example"), None, 9, json!({})));
        events.push(ev("demo_request", Some("l5@x.example"), None, 2, json!({})));
        let opts = Options { min_support: 1, prior_leads: 0.0, max_points: 20 };
        let t = activities(&histories(events), &outcomes, None, &opts);
        assert_eq!((t.leads, t.converted), (10, 2));
        let demo = t.rows.iter().find(|r| r.name == "demo_request").unwrap();
        assert_eq!((demo.leads, demo.converted), (2, 1));
        assert!((demo.lift - 2.5).abs() < 1e-9, "{}", demo.lift);
        assert_eq!(demo.points, Some(20));
        let home = t.rows.iter().find(|r| r.name == "page_view /").unwrap();
        assert_eq!(home.points, Some(0));
        assert_eq!(t.rows[0].name, "demo_request", "highest lift first");
        // Smoothing pulls small activities towards 1.
        let s = activities(&histories(vec![ev("x", Some("l0@x.example"), None, 1, json!({}))]), &outcomes, None, &Options::default());
        assert_eq!(s.rows[0].points, None, "below the minimum support");
    }

    #[test]
    fn write_model_changes_only_points_and_caps() {
        let base = "name: t\nscores: { engagement: { min: 0, max: 100 }, fit: { min: -50, max: 50 } }\nrules:\n  - { id: a, on: page_view, points: { engagement: 10 }, cap: { points: 20, per: 1d } }\n  - { id: b, on: download, points: { engagement: 5 }, tags: [x] }\n  - { id: c, when: { country: FR }, points: { fit: 10 } }\nstages:\n  - { id: lead, when: { identified: true } }\n  - { id: mql, when: { engagement: { gte: 50 } } }\n";
        let model = ember_scoring::Model::from_yaml_str(base, "t.yaml").unwrap();
        let row = |name: &str, points: Option<i64>| Row {
            name: name.into(), leads: 100, converted: 10, rate: 0.1, lift: 1.0, smoothed_lift: 1.0,
            points, unrounded: None, group: Some("engagement".into()), current: None,
        };
        let table = Table { leads: 100, converted: 10, base_rate: 0.1, rows: vec![row("a", Some(30)), row("b", None)] };
        let (yaml, changed) = write_model(base, &model, &table, "from a test").unwrap();
        assert_eq!(changed, 1);
        assert!(yaml.starts_with("# from a test\n"));
        let out: serde_norway::Value = serde_norway::from_str(&yaml).unwrap();
        let mut want: serde_norway::Value = serde_norway::from_str(base).unwrap();
        want["rules"][0]["points"]["engagement"] = 30.into();
        want["rules"][0]["cap"]["points"] = 60.into(); // two awards a day, as before
        assert_eq!(out, want);
    }
}
