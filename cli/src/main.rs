//! The `ember` command.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc: scoring and ingest allocate many small, short-lived values.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Ember: lead scoring and nurturing.
#[derive(Debug, Parser)]
#[command(name = "ember", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs Ember on this machine: HTTP API, scheduled jobs, local outbox, embedded store.
    Dev(ember::dev::DevArgs),
    /// Acceptance scenarios: events, clock moves and expectations in YAML (SPEC §5).
    Scenario {
        #[command(subcommand)]
        command: ScenarioCommand,
    },
    /// Checks model files; prints every mistake with its file and path.
    Validate {
        /// Model files (YAML); the template files and `${VAR}`s they name are checked too.
        #[arg(required = true)]
        models: Vec<PathBuf>,
    },
    /// Model versions: what a new model file changes (`ember model diff OLD NEW`).
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Measures scoring and ingest throughput.
    Bench(ember::bench::BenchArgs),
    /// API keys: make one, or print the configuration entry of one.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Leads, MQLs and SQLs needed for a sales target.
    Plan(ember::plan::PlanArgs),
    /// Imports history (events JSONL, leads CSV) through the ingest service; resumable.
    Import(ember::import::ImportArgs),
    /// Activity lifts, suggested points, calibrated models, from history and outcomes.
    Calibrate(ember::calibrate::CalibrateArgs),
    /// A model's MQL precision, recall and lead time on history and outcomes.
    Backtest(ember::calibrate::BacktestArgs),
    /// Writes a synthetic population with a known ground truth.
    Simulate(ember::simulate::SimulateArgs),
    /// Prints a report (funnel, campaigns, quality) from the local data folder or DynamoDB.
    Report(ember::report::ReportArgs),
    /// Webhooks to the CRM.
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ModelCommand {
    /// Rules, stages, campaigns, templates, decay, temperature bands and handoff settings
    /// added, removed or changed between two model files, by id, with old → new values.
    Diff(ember::model_cmd::DiffArgs),
}

#[derive(Debug, Subcommand)]
enum WebhooksCommand {
    /// Sends the dead-letter queue's deliveries again (SQS with --queue-url, else the local data folder).
    Replay(ember::webhooks::ReplayArgs),
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Makes a write key (or an admin key) and prints it with its configuration entry.
    New(ember::keys::NewArgs),
    /// Prints the configuration entry (`sha256:<hex>`) of an existing key.
    Hash {
        /// A key as issued (`ek_w_…` or `ek_a_…`).
        key: String,
    },
}

#[derive(Debug, Subcommand)]
enum ScenarioCommand {
    /// Runs scenario files; exits non-zero when an expectation fails.
    Run(ember::scenario_cmd::RunArgs),
}

fn main() -> ExitCode {
    // Crash-test builds only (feature `failpoints`): arms the points named in `FAILPOINTS`.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let cli = Cli::parse();
    let result: Result<bool> = match cli.command {
        Command::Dev(args) => ember::runtime().and_then(|rt| rt.block_on(ember::dev::run(args))).map(|_| true),
        Command::Scenario { command: ScenarioCommand::Run(args) } => {
            ember::runtime().and_then(|rt| rt.block_on(ember::scenario_cmd::run(args)))
        }
        Command::Validate { models } => Ok(ember::validate::run(&models)),
        Command::Model { command: ModelCommand::Diff(args) } => ember::model_cmd::run_diff(&args).map(|_| true),
        Command::Keys { command: KeysCommand::New(args) } => ember::keys::new(&args).map(|_| true),
        Command::Keys { command: KeysCommand::Hash { key } } => {
            ember::keys::hash(&key);
            Ok(true)
        }
        Command::Webhooks { command: WebhooksCommand::Replay(args) } => {
            ember::runtime().and_then(|rt| rt.block_on(ember::webhooks::replay(args)))
        }
        Command::Plan(args) => ember::runtime().and_then(|rt| rt.block_on(ember::plan::run(args))),
        Command::Import(args) => ember::runtime().and_then(|rt| rt.block_on(ember::import::run(args))),
        Command::Calibrate(args) => ember::calibrate::run_calibrate(args),
        Command::Backtest(args) => ember::calibrate::run_backtest(args),
        Command::Simulate(args) => ember::simulate::run(args).map(|_| true),
        Command::Report(args) => ember::runtime().and_then(|rt| rt.block_on(ember::report::run(args))).map(|_| true),
        Command::Bench(args) => ember::runtime().and_then(|rt| rt.block_on(ember::bench::run(args))).map(|_| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
