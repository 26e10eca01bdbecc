//! # ember-lambda — Ember on AWS Lambda
//!
//! Every function binary in `functions/` is a few lines: build the [`AwsServices`] once per
//! container (clients, model, secret), then hand each invocation to one of the handlers here,
//! which translate the Lambda event and call the shared services — the same services `ember
//! dev` calls with local adapters.
//!
//! | function | trigger | handler |
//! |---|---|---|
//! | `ingest` | HTTP API `POST /v1/events` | [`http::router`] |
//! | `api` | HTTP API, every other route | [`http::router`] |
//! | `decay` | EventBridge Scheduler, daily | [`schedule::run`] |
//! | `drip` | EventBridge Scheduler, every minute (SLA breaches, then due campaign steps) | [`schedule::run`] |
//! | `feedback` | SES events from EventBridge | [`ses_events::handle`] |
//! | `handoff` | `lead.qualified` / `lead.sla_breached` / `lead.recycled` from the bus | [`bus_events::handle`] |
//!
//! A failed invocation is marked retryable or not, in one place: [`edge`].
//!
//! Logs are JSON (`tracing`) and carry ids only, never emails or names.


pub mod bus_events;
pub mod edge;
pub mod http;
pub mod schedule;
pub mod serve;
pub mod ses_events;
mod services;

pub use services::{AwsServices, AwsConfig, StartError, lambda_retry_policy};

/// Sets up JSON logs for a function (level from `RUST_LOG`, default `info`), without ANSI
/// colours, timestamps left to CloudWatch.
pub fn init_logs() {
    ember_service::logs::init(ember_service::logs::LogStyle::Function);
}
