//! `ember report funnel | campaigns | quality`: the reports of the API, as tables (or JSON),
//! read from the local data folder (like `ember dev --data`) or from DynamoDB (`EMBER_TABLE`).

use crate::scenario_cmd::StoreKind;
use anyhow::{Context, Result};
use ember_service::ember_reports::{self as reports, Costs};
use ember_service::model_files;
use ember_service::ports::{Store, SystemClock};
use ember_service::{ReportQuery, Reports};
use std::path::PathBuf;
use std::sync::Arc;

/// The report `ember report` prints, named as on the command line (`funnel`, `campaigns`, `quality`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportKind {
    /// Leads per stage, conversion, time between stages, sales cycle; per channel or cohort.
    Funnel,
    /// Per campaign and step: enrolled, sent, delivered, opened, clicked… and where leads drop out.
    Campaigns,
    /// New leads, MQLs, reopened leads, score profile per month; cost per MQL and sale per channel.
    Quality,
}

/// `ember report` arguments.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Which report to print.
    #[arg(value_enum)]
    pub kind: ReportKind,
    /// Model file (stages, campaigns, score groups, time zone).
    #[arg(long, env = "EMBER_MODEL", default_value = "examples/b2b-saas.yaml")]
    pub model: PathBuf,
    /// Data folder of `ember dev` (embedded store).
    #[arg(long, env = "EMBER_DATA", default_value = ".ember")]
    pub data: PathBuf,
    /// Store to read: the embedded one in `--data`, or DynamoDB (table `EMBER_TABLE`).
    #[arg(long, value_enum, default_value_t = StoreKind::Embedded)]
    pub store: StoreKind,
    /// First day (YYYY-MM-DD) or month (YYYY-MM); default: eleven months before `--to`.
    #[arg(long)]
    pub from: Option<String>,
    /// Last day or month; default: today (model time zone).
    #[arg(long)]
    pub to: Option<String>,
    /// Funnel rows: `channel` or `cohort`.
    #[arg(long, default_value = "channel")]
    pub by: String,
    /// Print JSON (the API's shape) instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Channel costs for the period: CSV `source,medium,cost` (quality report).
    #[arg(long)]
    pub costs: Option<PathBuf>,
}

/// Reads the counters of the period from the chosen store and prints the report (a table, or JSON).
pub async fn run(args: ReportArgs) -> Result<()> {
    crate::init_logs_quiet();
    let model = model_files::load_model(&args.model)
        .map_err(|e| anyhow::anyhow!("{}: the model is invalid:\n{e}", args.model.display()))?;
    let costs: Costs = match &args.costs {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            reports::parse_costs(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None => Costs::new(),
    };
    let query = ReportQuery { from: args.from.clone(), to: args.to.clone(), by: Some(args.by.clone()), costs: None };
    // Checked before the store is opened: a mistyped option is named even without data.
    query.by()?;
    let store: Arc<dyn Store> = match args.store {
        StoreKind::Embedded => {
            let path = args.data.join("ember.db");
            anyhow::ensure!(path.exists(), "no data in {} (run `ember dev --data {}` first)", path.display(), args.data.display());
            Arc::new(ember_store_sqlite::SqliteStore::open(&path).context("opening the embedded store")?)
        }
        StoreKind::Dynamodb => Arc::new(ember_store_dynamodb::DynamoStore::from_env().await?),
    };
    let service = Reports::new(Arc::new(model), store, Arc::new(SystemClock));
    service.period(&query)?;
    let (json, text) = match args.kind {
        ReportKind::Funnel => {
            let r = service.funnel(&query).await?;
            (serde_json::to_string_pretty(&r)?, reports::table::funnel(&r))
        }
        ReportKind::Campaigns => {
            let r = service.campaigns(&query).await?;
            (serde_json::to_string_pretty(&r)?, reports::table::campaigns(&r))
        }
        ReportKind::Quality => {
            let r = service.quality(&query, &costs).await?;
            (serde_json::to_string_pretty(&r)?, reports::table::quality(&r))
        }
    };
    println!("{}", if args.json { json } else { text });
    Ok(())
}
