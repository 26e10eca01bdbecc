//! # ember-scoring — Ember's pure domain
//!
//! Everything Ember decides is here, as functions of (model, lead state, input, time): no I/O,
//! no clock reads, no async. The application services (`ember-service`) load and store leads and
//! carry out the effects these functions return (emails to send, messages to publish).
//!
//! - [`model`]: the model file, loaded and validated (every mistake reported at once).
//! - [`cond`]: matchers and lead predicates.
//! - [`event`]: incoming events and their validation.
//! - [`lead`]: the lead state.
//! - [`limits`]: the size limits of what a client may send.
//! - [`engine`]: scoring, stages, decay, campaigns, handoff, CRM feedback, merge.
//! - [`personal`]: what of a message identifies the person, left out where messages wait.

#![warn(missing_docs)]

pub mod cond;
pub mod engine;
pub mod event;
pub mod lead;
pub mod limits;
pub mod model;
pub mod personal;

pub use engine::{Change, CrmAction, Due, Engine, Outcome, SendIntent, SendOutcome};
pub use event::{Event, RawEvent};
pub use lead::Lead;
pub use model::{MemorySources, Model, ModelError, ModelErrors, ModelSources, NoSources, Span, Unreadable};

/// A point in time (UTC). The domain never reads a clock: every function takes the time.
pub type Time = chrono::DateTime<chrono::Utc>;
