//! `ember scenario run FILE...`

use crate::scenario::{self, Scenario};
use anyhow::{Context, Result};
use std::path::PathBuf;

/// Options.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Scenario files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Store to run against.
    #[arg(long, value_enum, default_value_t = StoreKind::Embedded)]
    pub store: StoreKind,
}

/// Which store the scenarios run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// The embedded SQLite store (a fresh file per scenario).
    Embedded,
    /// A DynamoDB endpoint (`AWS_ENDPOINT_URL`, e.g. moto server).
    Dynamodb,
}

/// Runs every file; prints a line per scenario and the failures. Returns whether all passed.
pub async fn run(args: RunArgs) -> Result<bool> {
    crate::init_logs_quiet();
    let mut passed = 0usize;
    let mut failed = 0usize;
    for file in &args.files {
        let outcome = run_file(file, args.store).await;
        match outcome {
            Ok(r) if r.passed() => {
                passed += 1;
                println!("PASS {} — {} ({} expectations)", file.display(), r.title, r.checked);
            }
            Ok(r) => {
                failed += 1;
                println!("FAIL {} — {}", file.display(), r.title);
                for f in &r.failures {
                    println!("  steps[{}]: {}", f.step, f.message);
                }
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {} — {e:#}", file.display());
            }
        }
    }
    println!("scenarios: {passed} passed, {failed} failed");
    Ok(failed == 0)
}

/// Runs one file on a fresh store.
pub async fn run_file(file: &std::path::Path, store: StoreKind) -> Result<scenario::Report> {
    let sc = Scenario::load(file)?;
    let model = ember_scoring::Model::load(&sc.model).map_err(|e| anyhow::anyhow!("{}: invalid model:\n{e}", sc.model.display()))?;
    let dir = tempfile::tempdir().context("creating a scratch folder")?;
    let harness = match store {
        StoreKind::Embedded => crate::local::ScenarioHarness::embedded(std::sync::Arc::new(model), dir.path(), sc.start).await?,
        StoreKind::Dynamodb => anyhow::bail!("--store dynamodb is not available in this build yet"),
    };
    scenario::run(&sc, &harness).await
}
