//! The planner: from a sales target and stage-to-stage conversion rates, how many leads reach
//! each earlier stage of the funnel.
//!
//! Rates form a chain ending at the target stage (`customer` by default): `lead:mql=0.2,
//! mql:sql=0.5, sql:customer=0.5` needs, for 100 customers, ⌈100 / 0.5⌉ = 200 SQLs, ⌈200 / 0.5⌉ =
//! 400 MQLs and ⌈400 / 0.2⌉ = 2,000 leads. Each count is rounded up before the next division
//! (you cannot have 0.4 of a lead). A chain may skip stages (`lead:customer=0.05`): the stages it
//! skips are simply not in the plan.
//!
//! Observed rates come from funnel counts ([`FunnelCounts`]: per channel, how many leads reached
//! each stage — a lead that reached a later stage counts as having reached every earlier one).

use serde::Serialize;
use std::collections::BTreeMap;

/// Planner errors (the message is meant for the user).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// A `--rates` item is malformed.
    #[error("rate `{item}`: {why} (expected FROM:TO=RATE, e.g. lead:mql=0.2)")]
    Syntax {
        /// The comma-separated item as written, e.g. `lead:mql`.
        item: String,
        /// What is wrong with it, e.g. ``no `=` ``.
        why: String,
    },
    /// A rate is not in (0, 1].
    #[error("rate {from}:{to}={rate} is out of range: a conversion rate must be greater than 0 and at most 1")]
    OutOfRange {
        /// Stage id before the `:`.
        from: String,
        /// Stage id after the `:`.
        to: String,
        /// The rate as parsed (0 or less, above 1, or not finite).
        rate: f64,
    },
    /// Two rates lead into the same stage, or out of the same stage.
    #[error("two rates {0}: give each stage one rate in and one rate out")]
    Ambiguous(String),
    /// No chain reaches the target.
    #[error("no rate ends at `{0}`: give e.g. sql:{0}=0.5")]
    NoTarget(String),
    /// A rate is not part of the chain ending at the target.
    #[error("rate {from}:{to} is not connected to `{target}` (the rates must form one chain ending at `{target}`)")]
    Disconnected {
        /// Stage id before the `:` of the stray rate.
        from: String,
        /// Stage id after the `:` of the stray rate.
        to: String,
        /// The stage the plan counts toward (`customer` by default).
        target: String,
    },
    /// The chain loops; the stage named is one the loop passes through.
    #[error("the rates form a loop through `{0}`")]
    Loop(String),
    /// The target is zero or negative.
    #[error("the sales target must be at least 1")]
    NoSales,
    /// Observed counts do not give a rate between two stages.
    #[error("no observed conversion from `{from}` to `{to}`{channel}: {why}")]
    NotObserved {
        /// Stage id the conversion starts from.
        from: String,
        /// Stage id it leads to.
        to: String,
        /// ` in channel X`, or empty.
        channel: String,
        /// What the counts lack, e.g. no lead reached `from`.
        why: String,
    },
}

/// One conversion rate between two stages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rate {
    /// Stage id the leads start at (`lead` in `lead:mql=0.2`).
    pub from: String,
    /// Stage id a share of them reaches (`mql` in `lead:mql=0.2`).
    pub to: String,
    /// Share of `from` that reaches `to`, in (0, 1].
    pub rate: f64,
}

/// How many need to reach one stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Need {
    /// Stage id; a plan lists its needs from the start of the chain to the target.
    pub stage: String,
    /// Leads that must reach this stage, rounded up.
    pub count: u64,
    /// Rate from this stage to the next one in the plan (none on the target).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_to_next: Option<f64>,
}

/// A plan: stages from the top of the funnel down to the target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Channel the rates came from (`None` for given rates or all channels together).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Stages, top of the funnel first, target last.
    pub stages: Vec<Need>,
}

impl Plan {
    /// The count needed at a stage.
    pub fn count(&self, stage: &str) -> Option<u64> {
        self.stages.iter().find(|n| n.stage == stage).map(|n| n.count)
    }
}

/// A [`Rate`] when `rate` is in (0, 1], else [`PlanError::OutOfRange`].
pub fn check_rate(from: &str, to: &str, rate: f64) -> Result<Rate, PlanError> {
    if !(rate > 0.0 && rate <= 1.0) || !rate.is_finite() {
        return Err(PlanError::OutOfRange { from: from.into(), to: to.into(), rate });
    }
    Ok(Rate { from: from.into(), to: to.into(), rate })
}

/// Parses `lead:mql=0.2,mql:sql=0.5,sql:customer=0.5` (a rate may also be written `20%`).
pub fn parse_rates(text: &str) -> Result<Vec<Rate>, PlanError> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let syntax = |why: &str| PlanError::Syntax { item: item.to_string(), why: why.to_string() };
        let (stages, value) = item.split_once('=').ok_or_else(|| syntax("no `=`"))?;
        let (from, to) = stages.split_once(':').ok_or_else(|| syntax("no `:` between the two stages"))?;
        let (from, to, value) = (from.trim(), to.trim(), value.trim());
        if from.is_empty() || to.is_empty() {
            return Err(syntax("a stage name is empty"));
        }
        if from == to {
            return Err(syntax("from and to are the same stage"));
        }
        let rate = match value.strip_suffix('%') {
            Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
            None => value.parse::<f64>(),
        }
        .map_err(|_| syntax("the rate is not a number"))?;
        out.push(check_rate(from, to, rate)?);
    }
    if out.is_empty() {
        return Err(PlanError::Syntax { item: text.to_string(), why: "no rates given".into() });
    }
    Ok(out)
}

/// Rounds up, forgiving the last bits of floating-point noise (400 / 0.2 is 2,000, not 2,001).
fn ceil_count(x: f64) -> u64 {
    let r = x.round();
    if (x - r).abs() < 1e-9 * r.max(1.0) { r as u64 } else { x.ceil() as u64 }
}

/// The plan for `sales` at `target` (usually `customer`) from a chain of rates.
pub fn plan(sales: u64, target: &str, rates: &[Rate]) -> Result<Plan, PlanError> {
    if sales == 0 {
        return Err(PlanError::NoSales);
    }
    for r in rates {
        check_rate(&r.from, &r.to, r.rate)?;
    }
    let mut into: BTreeMap<&str, &Rate> = BTreeMap::new();
    let mut out_of: BTreeMap<&str, &Rate> = BTreeMap::new();
    for r in rates {
        if into.insert(&r.to, r).is_some() {
            return Err(PlanError::Ambiguous(format!("into `{}`", r.to)));
        }
        if out_of.insert(&r.from, r).is_some() {
            return Err(PlanError::Ambiguous(format!("out of `{}`", r.from)));
        }
    }
    if !into.contains_key(target) {
        return Err(PlanError::NoTarget(target.to_string()));
    }
    // Walk up from the target.
    let mut stages = vec![Need { stage: target.to_string(), count: sales, rate_to_next: None }];
    let mut used = 0;
    let mut cur = target;
    while let Some(r) = into.get(cur) {
        used += 1;
        if used > rates.len() || stages.iter().any(|n| n.stage == r.from) {
            return Err(PlanError::Loop(r.from.clone()));
        }
        let count = ceil_count(stages.last().map_or(0, |n| n.count) as f64 / r.rate);
        stages.push(Need { stage: r.from.clone(), count, rate_to_next: Some(r.rate) });
        cur = &r.from;
    }
    if let Some(r) = rates.iter().find(|r| !stages.iter().any(|n| n.stage == r.to)) {
        return Err(PlanError::Disconnected { from: r.from.clone(), to: r.to.clone(), target: target.to_string() });
    }
    stages.reverse();
    Ok(Plan { channel: None, stages })
}

/// Funnel counts of one acquisition channel: how many leads reached each stage (or a later one).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FunnelCounts {
    /// Channel label (`google / cpc`, `(none)`…).
    pub channel: String,
    /// Leads that reached each stage, by stage id.
    pub reached: BTreeMap<String, u64>,
}

/// Rates between consecutive stages of `path` (e.g. `[lead, mql, sql, customer]`) from counts.
/// A stage nobody reached, or a step with no conversions, is an error naming it.
pub fn observed_rates(counts: &FunnelCounts, path: &[&str], channel_label: bool) -> Result<Vec<Rate>, PlanError> {
    let channel = if channel_label { format!(" in channel `{}`", counts.channel) } else { String::new() };
    path.windows(2)
        .map(|w| {
            let (from, to) = (w[0], w[1]);
            let a = counts.reached.get(from).copied().unwrap_or(0);
            let b = counts.reached.get(to).copied().unwrap_or(0);
            let err = |why: String| PlanError::NotObserved { from: from.into(), to: to.into(), channel: channel.clone(), why };
            if a == 0 {
                return Err(err(format!("no lead reached `{from}`")));
            }
            if b == 0 {
                return Err(err(format!("none of {a} leads at `{from}` reached `{to}`")));
            }
            check_rate(from, to, (b as f64 / a as f64).min(1.0))
        })
        .collect()
}

/// Adds per-channel counts into one all-channels count.
pub fn total(counts: &[FunnelCounts]) -> FunnelCounts {
    let mut t = FunnelCounts { channel: "all channels".into(), reached: BTreeMap::new() };
    for c in counts {
        for (stage, n) in &c.reached {
            *t.reached.entry(stage.clone()).or_insert(0) += n;
        }
    }
    t
}

/// One plan per channel (and one for all channels first), each from that channel's observed
/// rates; a channel whose rates cannot be observed gets its error instead of a plan.
pub fn plan_observed(sales: u64, path: &[&str], counts: &[FunnelCounts]) -> Vec<(String, Result<Plan, PlanError>)> {
    let target = path.last().copied().unwrap_or("customer");
    let all = total(counts);
    std::iter::once((&all, false))
        .chain(counts.iter().map(|c| (c, true)))
        .map(|(c, label)| {
            let p = observed_rates(c, path, label).and_then(|rates| plan(sales, target, &rates)).map(|mut p| {
                p.channel = Some(c.channel.clone());
                p
            });
            (c.channel.clone(), p)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_example() {
        let rates = parse_rates("lead:mql=0.2,mql:sql=0.5,sql:customer=0.5").unwrap();
        let p = plan(100, "customer", &rates).unwrap();
        let got: Vec<(&str, u64)> = p.stages.iter().map(|n| (n.stage.as_str(), n.count)).collect();
        assert_eq!(got, [("lead", 2000), ("mql", 400), ("sql", 200), ("customer", 100)]);
    }

    #[test]
    fn rounds_up_each_stage_and_skips_missing_stages() {
        // 7 / 0.3 = 23.33 → 24 SQLs; 24 / 0.15 = 160 leads.
        let p = plan(7, "customer", &parse_rates("sql:customer=30%, lead:sql=0.15").unwrap()).unwrap();
        assert_eq!(p.count("sql"), Some(24));
        assert_eq!(p.count("lead"), Some(160));
        assert_eq!(p.count("mql"), None);
        // Direct lead → customer, the SPEC's example: 5 % of leads buy.
        assert_eq!(plan(100, "customer", &parse_rates("lead:customer=0.05").unwrap()).unwrap().count("lead"), Some(2000));
    }

    #[test]
    fn clear_errors() {
        let e = |s: &str| parse_rates(s).and_then(|r| plan(100, "customer", &r)).unwrap_err().to_string();
        assert!(e("lead:mql=0").contains("greater than 0 and at most 1"), "{}", e("lead:mql=0"));
        assert!(e("lead:mql=1.5").contains("out of range"));
        assert!(e("lead:mql=-0.1").contains("out of range"));
        assert!(e("lead:mql=abc").contains("not a number"));
        assert!(e("leadmql=0.2").contains("no `:`"));
        assert!(e("lead:mql=0.2").contains("no rate ends at `customer`"));
        assert!(e("lead:mql=0.2,sql:customer=0.5").contains("not connected"));
        assert!(e("lead:sql=0.2,mql:sql=0.5,sql:customer=0.5").contains("into `sql`"));
        assert!(e("customer:lead=0.5,lead:customer=0.5").contains("out of `customer`") || e("customer:lead=0.5,lead:customer=0.5").contains("loop"));
        assert_eq!(plan(0, "customer", &parse_rates("lead:customer=0.1").unwrap()).unwrap_err(), PlanError::NoSales);
    }

    #[test]
    fn observed_per_channel() {
        let c = |ch: &str, l, m, s, cu| FunnelCounts {
            channel: ch.into(),
            reached: [("lead", l), ("mql", m), ("sql", s), ("customer", cu)].into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        };
        let counts = vec![c("google / cpc", 1000, 200, 100, 50), c("newsletter", 100, 10, 0, 0)];
        let plans = plan_observed(100, &["lead", "mql", "sql", "customer"], &counts);
        assert_eq!(plans.len(), 3);
        let all = plans[0].1.as_ref().unwrap();
        // 1100 → 210 → 100 → 50: 100 customers need 200 SQLs, 420 MQLs, 2,200 leads.
        assert_eq!((all.count("sql"), all.count("mql"), all.count("lead")), (Some(200), Some(420), Some(2200)));
        let g = plans[1].1.as_ref().unwrap();
        assert_eq!(g.count("lead"), Some(2000));
        let n = plans[2].1.as_ref().unwrap_err().to_string();
        assert!(n.contains("newsletter") && n.contains("reached `sql`"), "{n}");
    }
}
