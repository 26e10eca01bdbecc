//! # ember — the command-line tool
//!
//! `ember dev` (local server), `ember scenario run`, `ember validate`, `ember bench`, `ember plan`,
//! `ember import`, `ember calibrate`, `ember backtest`, `ember simulate`, `ember report`,
//! `ember keys`, `ember webhooks`. The commands wire the shared services to local adapters ([`local`]) — the same services the
//! Lambda functions run.

pub mod bench;
pub mod calibrate;
pub mod dev;
pub mod import;
pub mod keys;
pub mod local;
pub mod model_cmd;
pub mod plan;
pub mod report;
pub mod scenario;
pub mod scenario_cmd;
pub mod simulate;
pub mod validate;
pub mod webhooks;

/// A multi-threaded Tokio runtime for the commands.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// Structured logs on stderr: JSON when `EMBER_LOG_FORMAT=json`, else human-readable.
/// The level comes from `RUST_LOG` (default `info`).
pub fn init_logs() {
    ember_service::logs::init(ember_service::logs::LogStyle::Terminal);
}

/// Logs for batch commands: warnings and errors only, unless `RUST_LOG` says otherwise.
pub fn init_logs_quiet() {
    ember_service::logs::init(ember_service::logs::LogStyle::Quiet);
}
