//! # ember-service — application services and ports
//!
//! The services are written once, against the [`ports`] traits; the Lambda functions and the
//! local runner (`ember dev`, `ember scenario run`) call the same services with different
//! adapters.
//!
//! - [`ports`]: store, mailer, bus, clock, webhook sender, dead letters.
//! - [`signing`]: Standard Webhooks signatures and unsubscribe tokens.
//! - [`Ember`]: ingest (one event or a batch), scheduled jobs (`tick`: decay, SLA, drip), CRM
//!   feedback; [`Handoff`]: webhooks to the CRM.
//! - Reports ([`ReportQuery`]): counters kept by every commit, read per period and built by
//!   [`ember_reports`].
//! - [`compose`]: renders campaign emails (Handlebars, HTML-escaped, unsubscribe link and headers).

#![warn(missing_docs)]

mod app;
pub mod compose;
#[cfg(feature = "failpoints")]
pub mod failpoints;
mod feedback;
pub mod handoff;
mod identity_cache;
mod ingest;
mod jobs;
pub mod ports;
mod reports;
pub mod signing;

pub use app::{Ember, ServiceError, MAX_ATTEMPTS};
pub use feedback::{feedback_entry_id, Feedback, FeedbackOutcome};
pub use handoff::{Handoff, ReplayReport};
pub use ingest::{IngestStatus, MAX_BATCH};
pub use jobs::{JobReport, PAGE};
pub use reports::ReportQuery;
pub use ember_reports;
