//! # ember — the command-line tool
//!
//! `ember dev` (local server), `ember scenario run`, `ember validate`, `ember bench`, `ember plan`,
//! `ember import`, `ember calibrate`, `ember backtest`, `ember simulate`, `ember report`,
//! `ember keys`, `ember webhooks`. The commands wire the shared services to local adapters ([`local`]) — the same services the
//! Lambda functions run.

pub mod bench;
pub mod bench_dynamodb;
pub mod calibrate;
pub mod dev;
pub mod keys;
pub mod import;
pub mod local;
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
    use tracing_subscriber::EnvFilter;
    // Template rendering logs the data it renders (names, emails) at debug level: never shown.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive("handlebars=warn".parse().expect("a valid directive"));
    let json = std::env::var("EMBER_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

/// Logs for batch commands: warnings and errors only, unless `RUST_LOG` says otherwise.
pub fn init_logs_quiet() {
    if std::env::var_os("RUST_LOG").is_none() {
        let filter = tracing_subscriber::EnvFilter::new("warn");
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    } else {
        init_logs();
    }
}
