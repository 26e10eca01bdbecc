//! `ember bench`: throughput of the pure scoring step and of ingest end to end on the embedded
//! store, each beside a baseline measured in the same run on the same machine:
//!
//! - scoring is compared with decoding and validating the same events from JSON (work every
//!   request does anyway);
//! - embedded ingest is compared with bare SQLite inserts of the same event rows, one
//!   transaction each, with the same file settings.
//!
//! The figures are printed, never asserted: these shared machines are too noisy for timed tests.

pub mod dynamodb;
mod workload;

pub use workload::sample_event;

use anyhow::{Context, Result};
use ember_scoring::{Engine, Event, Lead, RawEvent, Time};
use ember_service::model_files;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// The flags of `ember bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Model to score with.
    #[arg(long, default_value = "examples/b2b-saas.yaml")]
    pub model: PathBuf,
    /// Events for the scoring benchmark.
    #[arg(long, default_value_t = 500_000)]
    pub events: usize,
    /// Events for the embedded ingest benchmark.
    #[arg(long, default_value_t = 20_000)]
    pub ingest_events: usize,
    /// Distinct leads the events are spread over (at most 200 with --dynamodb).
    #[arg(long, default_value_t = 1_000)]
    pub leads: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Only the pure scoring benchmark (for instruction counting under callgrind).
    #[arg(long)]
    pub scoring_only: bool,
    /// Instead: DynamoDB round trips and write units per ingested event, and what the decay and
    /// drip sweeps read against what is due (needs `AWS_ENDPOINT_URL`, e.g. a moto server).
    #[arg(long, conflicts_with = "scoring_only")]
    pub dynamodb: bool,
    /// With --dynamodb: table sizes for the sweep measurement (1 % of the leads due).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    pub sweep_leads: Vec<usize>,
}

/// Repetitions of each in-memory measurement (the best is reported).
const REPEAT: usize = 3;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

/// Runs both benchmarks and prints the figures.
pub async fn run(args: BenchArgs) -> Result<()> {
    let model = Arc::new(model_files::load_model(&args.model).map_err(|e| anyhow::anyhow!("{e}"))?);
    let engine = Engine::new(model.clone());
    let start: Time = "2026-03-02T09:00:00Z".parse()?;
    let leads = args.leads.max(1);
    if args.dynamodb {
        let o = dynamodb::Options { leads: leads.min(200), events_per_lead: 10, sweep_sizes: args.sweep_leads.clone() };
        let report = dynamodb::run(model, o).await?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }

    // --- Pure scoring -----------------------------------------------------------------
    let per_lead = args.events.div_ceil(leads);
    let mut texts = Vec::with_capacity(args.events);
    for n in 0..per_lead {
        for i in 0..leads {
            if texts.len() == args.events {
                break;
            }
            let at = start + chrono::Duration::minutes((n * 17 + i % 13) as i64);
            texts.push(sample_event(i, n, at).to_string());
        }
    }
    let now = start + chrono::Duration::days(3650);
    // Each measurement is repeated and the best run kept: the least disturbed by whatever
    // else the machine is doing.
    let mut decode_secs = f64::MAX;
    let mut events: Vec<Event> = Vec::new();
    for _ in 0..REPEAT {
        let t0 = Instant::now();
        let mut decoded = Vec::with_capacity(texts.len());
        for t in &texts {
            let raw: RawEvent = serde_json::from_str(t)?;
            decoded.push(raw.validate(now, || unreachable!("ids are given")).map_err(anyhow::Error::msg)?);
        }
        decode_secs = decode_secs.min(t0.elapsed().as_secs_f64());
        events = decoded;
    }
    let mut score_secs = f64::MAX;
    let mut changes = 0usize;
    for _ in 0..REPEAT {
        let mut states: Vec<Lead> = (0..leads).map(|i| engine.new_lead(format!("lead-{i}"), start)).collect();
        let t0 = Instant::now();
        for (k, e) in events.iter().enumerate() {
            let lead = &mut states[k % leads];
            changes += engine.ingest(lead, e).changes.len();
        }
        score_secs = score_secs.min(t0.elapsed().as_secs_f64());
    }
    std::hint::black_box(changes);
    let n = events.len() as f64;
    let scoring_rate = n / score_secs;
    let decode_rate = n / decode_secs;

    if args.scoring_only {
        println!(
            "scoring (pure, one core): {scoring_rate:.0} events/s   baseline JSON decode+validate: {decode_rate:.0} events/s   ratio {:.2}",
            scoring_rate / decode_rate
        );
        return Ok(());
    }

    // --- Embedded ingest end to end ----------------------------------------------------
    let dir = tempfile::tempdir()?;
    let services = crate::local::ScenarioHarness::embedded(model.clone(), dir.path(), now).await?;
    let ingest_n = args.ingest_events.min(texts.len());
    let raws: Vec<RawEvent> = texts[..ingest_n].iter().map(|t| serde_json::from_str(t)).collect::<Result<_, _>>()?;
    let mut lat = Vec::with_capacity(ingest_n);
    let t0 = Instant::now();
    for raw in &raws {
        let s = Instant::now();
        let status = services.services().ingest.event(raw).await;
        lat.push(s.elapsed().as_secs_f64() * 1e6);
        anyhow::ensure!(status.is_accepted(), "bench event not accepted: {status:?}");
    }
    let ingest_secs = t0.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.total_cmp(b));
    let ingest_rate = ingest_n as f64 / ingest_secs;

    // Baseline: bare SQLite inserts of the same rows, one transaction each.
    let base_path = dir.path().join("baseline.db");
    let conn = rusqlite::Connection::open(&base_path).context("opening the baseline database")?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
         CREATE TABLE events (event_id TEXT PRIMARY KEY, lead TEXT NOT NULL, body TEXT NOT NULL);",
    )?;
    let t0 = Instant::now();
    for (k, t) in texts[..ingest_n].iter().enumerate() {
        let tx = conn.unchecked_transaction()?;
        tx.prepare_cached("INSERT INTO events (event_id, lead, body) VALUES (?1, ?2, ?3)")?.execute(rusqlite::params![
            format!("b{k}"),
            format!("lead-{}", k % leads),
            t
        ])?;
        tx.commit()?;
    }
    let base_rate = ingest_n as f64 / t0.elapsed().as_secs_f64();

    let report = json!({
        "model": args.model.display().to_string(),
        "scoring": {"events": events.len(), "leads": leads, "events_per_sec": scoring_rate.round(),
                    "baseline_json_decode_validate_per_sec": decode_rate.round(),
                    "ratio_vs_baseline": (scoring_rate / decode_rate * 100.0).round() / 100.0},
        "embedded_ingest": {"events": ingest_n, "events_per_sec": ingest_rate.round(),
                    "p50_us": percentile(&lat, 0.50).round(), "p99_us": percentile(&lat, 0.99).round(),
                    "baseline_sqlite_insert_per_sec": base_rate.round(),
                    "ratio_vs_baseline": (ingest_rate / base_rate * 100.0).round() / 100.0},
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("model: {}", args.model.display());
        println!(
            "scoring (pure, one core): {:>12.0} events/s   baseline JSON decode+validate: {:>10.0} events/s   ratio {:.2}",
            scoring_rate,
            decode_rate,
            scoring_rate / decode_rate
        );
        println!(
            "embedded ingest (end to end): {:>8.0} events/s   p50 {:.0} µs   p99 {:.0} µs   baseline bare SQLite insert: {:.0} rows/s   ratio {:.2}",
            ingest_rate,
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            base_rate,
            ingest_rate / base_rate
        );
    }
    Ok(())
}
