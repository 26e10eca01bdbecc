//! `ember scenario run FILE...`

use crate::scenario::{self, Scenario};
use anyhow::{Context, Result};
use ember_service::model_files;
use std::path::PathBuf;

/// The flags of `ember scenario run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Scenario files (YAML, SPEC §5); each runs on a fresh store.
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
    /// DynamoDB and SES v2 at the endpoint of the standard AWS environment
    /// (`AWS_ENDPOINT_URL` — a moto server —, `AWS_REGION`, credentials): a fresh table per
    /// scenario; emails are sent through SES and read back from the endpoint.
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
    let model = model_files::load_model(&sc.model).map_err(|e| anyhow::anyhow!("{}: invalid model:\n{e}", sc.model.display()))?;
    let dir = tempfile::tempdir().context("creating a scratch folder")?;
    let model = std::sync::Arc::new(model);
    match store {
        StoreKind::Embedded => {
            let harness = crate::local::ScenarioHarness::embedded(model, dir.path(), sc.start).await?;
            scenario::run(&sc, &harness).await
        }
        StoreKind::Dynamodb => {
            // A fresh table per scenario on the endpoint of the standard AWS environment
            // (`AWS_ENDPOINT_URL`, `AWS_REGION`, credentials), deleted afterwards.
            let conf = ember_aws::sdk_config().await;
            let client = aws_sdk_dynamodb::Client::new(&conf);
            let table = format!("ember-scenario-{}", uuid::Uuid::new_v4().simple());
            ember_store_dynamodb::create_table(&client, &table).await.map_err(|e| anyhow::anyhow!("creating table {table}: {e}"))?;
            let store = std::sync::Arc::new(ember_store_dynamodb::DynamoStore::new(client.clone(), table.clone()));
            // Emails go through the SES v2 API of the same endpoint and are read back from it.
            let endpoint = std::env::var("AWS_ENDPOINT_URL").ok().filter(|e| !e.is_empty()).context(
                "--store dynamodb runs against a local AWS stand-in: set AWS_ENDPOINT_URL to a moto server (scripts/moto)",
            )?;
            let ses = crate::local::SesReadBack::new(&conf, endpoint, &model).await?;
            let harness =
                crate::local::ScenarioHarness::with_store_and_mailer(model, store, dir.path(), sc.start, Some(std::sync::Arc::new(ses)))?;
            let report = scenario::run(&sc, &harness).await;
            if let Err(e) = client.delete_table().table_name(&table).send().await {
                tracing::warn!(table = %table, error = %e, "could not delete the scenario table");
            }
            report
        }
    }
}
