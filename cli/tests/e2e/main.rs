//! Ember end to end, one test binary with a module per area: the `ember` command as a user runs
//! it (`ember dev` over HTTP, the CLI's commands, their logs) and the services across crates on
//! both stores. The DynamoDB tests (moto) and the soak are `#[ignore]`d: `--include-ignored` with
//! `EMBER_MOTO_ENDPOINT=$(scripts/moto)` runs them, as `scripts/test` does.
//! The fixtures they share are in `ember_testing`; the scenario files run once per store,
//! through `ember scenario run` (`logs::scenario_logs_hold_no_email_or_name` on the embedded
//! store, `scripts/test` on DynamoDB).
//!
//! ```text
//! cargo test -p ember --test e2e                        # all but the ignored
//! cargo test -p ember --test e2e -- dev_server::        # one area
//! ```
//!
//! The crash tests are a target of their own, `kills`: they need the `failpoints` feature.

mod abuse;
mod analytics;
mod commands;
mod config_errors;
mod dev_server;
mod erasure;
mod erasure_copies;
mod feedback_replays;
mod identity;
mod logs;
mod replays;
mod services;
mod soak;
mod worst_case;

/// The binary under test, as Cargo built it for this package's tests.
const EMBER: &str = env!("CARGO_BIN_EXE_ember");

/// The `ember` command, run from the repository's root.
fn ember() -> std::process::Command {
    ember_testing::command(EMBER)
}
