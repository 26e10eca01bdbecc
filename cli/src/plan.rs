//! `ember plan`: how many leads, MQLs and SQLs a sales target needs.
//!
//! `--rates lead:mql=0.2,mql:sql=0.5,sql:customer=0.5` uses the given rates;
//! `--rates observed` measures them per acquisition channel (first touch) from the leads in the
//! local data folder. The math is [`ember_analytics::plan`].

use anyhow::{Context, Result};
use ember_analytics::plan::{self, FunnelCounts, Plan};
use ember_scoring::{Lead, Model};
use ember_service::model_files;
use ember_service::ports::Store;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The flags of `ember plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Sales target (customers to win).
    #[arg(long)]
    pub sales: u64,
    /// Conversion rates `FROM:TO=RATE,...` (0 < RATE <= 1, or a percentage like `20%`), or
    /// `observed` to measure them per channel from the leads in `--data`.
    #[arg(long)]
    pub rates: String,
    /// Stage the target counts (the last stage of the chain; with `--rates observed`, the last
    /// of `--stages`).
    #[arg(long, default_value = "customer")]
    pub target: String,
    /// With `--rates observed`: the stages to plan over, in funnel order.
    #[arg(long, default_value = "lead,mql,sql,customer", value_delimiter = ',')]
    pub stages: Vec<String>,
    /// With `--rates observed`: the data folder of `ember dev` / `ember import`.
    #[arg(long, env = "EMBER_DATA", default_value = ".ember")]
    pub data: PathBuf,
    /// With `--rates observed`: the model (for the order of its stages).
    #[arg(long, env = "EMBER_MODEL", default_value = "examples/b2b-saas.yaml")]
    pub model: PathBuf,
    /// Prints JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command; returns whether a plan could be made.
pub async fn run(args: PlanArgs) -> Result<bool> {
    if args.rates.trim() == "observed" {
        return observed(&args).await;
    }
    let rates = plan::parse_rates(&args.rates)?;
    let p = plan::plan(args.sales, &args.target, &rates)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&p)?);
    } else {
        print!("{}", table(&p));
    }
    Ok(true)
}

/// The plan as a table, with thousands separators.
pub fn table(p: &Plan) -> String {
    let mut out = String::new();
    if let Some(c) = &p.channel {
        out.push_str(&format!("{c}\n"));
    }
    for n in &p.stages {
        let rate = n.rate_to_next.map(|r| format!("  (→ next: {:.1} %)", r * 100.0)).unwrap_or_default();
        out.push_str(&format!("  {:<12} {:>12}{rate}\n", n.stage, thousands(n.count)));
    }
    out
}

/// `2000` → `2,000`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The channel a lead came from (first touch): `source / medium`, or `(direct)`.
fn channel(lead: &Lead) -> String {
    match &lead.first_touch {
        Some(t) if t.source.is_some() || t.medium.is_some() => {
            format!("{} / {}", t.source.as_deref().unwrap_or("(none)"), t.medium.as_deref().unwrap_or("(none)"))
        }
        Some(t) if t.referrer.is_some() => "referral".into(),
        _ => "(direct)".into(),
    }
}

/// Per channel, how many leads reached each stage (or a later one), read from the store.
pub async fn funnel_counts(store: &dyn Store, model: &Model, stages: &[String]) -> Result<Vec<FunnelCounts>> {
    let idx: Vec<usize> = stages
        .iter()
        .map(|s| model.stage_index(s).filter(|i| *i > 0).with_context(|| format!("the model has no stage `{s}`")))
        .collect::<Result<_>>()?;
    let mut by: BTreeMap<String, FunnelCounts> = BTreeMap::new();
    let mut cursor = None;
    loop {
        let (leads, next) = store.scan(cursor, 500).await?;
        for lead in leads {
            let Some(top) = lead.stage_history.iter().filter_map(|s| model.stage_index(&s.stage)).max() else { continue };
            let ch = channel(&lead);
            let c = by.entry(ch.clone()).or_insert_with(|| FunnelCounts { channel: ch, reached: BTreeMap::new() });
            for (s, i) in stages.iter().zip(&idx) {
                if top >= *i {
                    *c.reached.entry(s.clone()).or_insert(0) += 1;
                }
            }
        }
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    Ok(by.into_values().collect())
}

async fn observed(args: &PlanArgs) -> Result<bool> {
    let model = model_files::load_model(&args.model).map_err(|e| anyhow::anyhow!("{}: invalid model:\n{e}", args.model.display()))?;
    let db = args.data.join("ember.db");
    anyhow::ensure!(db.exists(), "no data in {} (run `ember dev` or `ember import` first, or give --data)", args.data.display());
    let store = ember_store_sqlite::SqliteStore::open(&db).context("opening the embedded store")?;
    let counts = funnel_counts(&store, &model, &args.stages).await?;
    anyhow::ensure!(!counts.is_empty(), "no leads in {}", args.data.display());
    let path: Vec<&str> = args.stages.iter().map(String::as_str).collect();
    let plans = plan::plan_observed(args.sales, &path, &counts);
    if args.json {
        let v: Vec<serde_json::Value> = plans
            .iter()
            .map(|(ch, p)| match p {
                Ok(p) => serde_json::to_value(p).unwrap_or_default(),
                Err(e) => serde_json::json!({"channel": ch, "error": e.to_string()}),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"counts": counts, "plans": v}))?);
    } else {
        for (ch, p) in &plans {
            match p {
                Ok(p) => print!("{}", table(p)),
                Err(e) => println!("{ch}\n  {e}"),
            }
        }
    }
    Ok(plans.first().is_some_and(|(_, p)| p.is_ok()))
}
