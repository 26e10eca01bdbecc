//! # ember-service — the use cases, over ports
//!
//! The application layer: written once against the [`ports`] traits, called by the Lambda
//! functions and by the local runner (`ember dev`, `ember scenario run`) with different
//! adapters. Its main types:
//!
//! - [`Ember`]: the use cases of one process, wired over one shared core (engine, store,
//!   bus, clock), each in its own module:
//!   - [`Ingest`]: one event or a batch — identity resolution, scoring, one atomic commit;
//!   - [`Jobs`]: the scheduled [`Job`]s — decay, SLA checks and drip sends over the due leads;
//!   - [`Feedback`]: CRM feedback (idempotent per request), email events, unsubscribe links;
//!   - [`Erasure`]: the person's data out of the store and every copy outside it;
//!   - [`Reports`]: funnel, campaigns and quality, from counters every commit keeps (needs a
//!     store and a clock only).
//! - [`wiring::wire`]: the one composition root — each world passes its adapters, the
//!   services come back checked and connected.
//! - [`Handoff`]: turns domain messages into signed webhooks to the CRM, with dead letters.
//! - [`logs`]: the one log setup, which keeps rendered templates (people's data) out of the logs.
//! - [`ports`]: store, mailer, bus, clock, webhook sender, dead letters.
//! - [`compose`]: campaign emails (Handlebars, HTML-escaped, unsubscribe link and headers);
//!   [`signing`]: Standard Webhooks signatures and unsubscribe tokens.
//!
//! Every lead change goes through one read → decide → commit → retry-on-conflict loop
//! (`core::Core::update_lead`): the engine decides, the store commits atomically under the
//! version that was read.


pub mod compose;
mod core;
mod ember;
mod erasure;
#[cfg(feature = "failpoints")]
pub mod failpoints;
mod feedback;
pub mod handoff;
mod identity_cache;
mod ingest;
mod jobs;
pub mod logs;
pub mod model_files;
pub mod ports;
mod reports;
pub mod signing;
pub mod wiring;

pub use crate::core::{ServiceError, MAX_ATTEMPTS};
pub use ember::Ember;
pub use erasure::Erasure;
pub use feedback::{feedback_entry_id, CrmFeedback, Feedback, FeedbackOutcome};
pub use handoff::{Handoff, ReplayReport};
pub use ingest::{Ingest, IngestStatus, MAX_BATCH};
pub use jobs::{Job, JobReport, Jobs, PAGE};
pub use reports::{ReportQuery, Reports};
pub use ember_reports;
