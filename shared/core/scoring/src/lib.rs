//! # ember-scoring — Ember's pure domain
//!
//! Everything Ember decides is here, as functions of (model, lead state, input, time): no I/O,
//! no clock reads, no environment, no async. The application services (`ember-service`) load and
//! store leads, read the model's files and settings, and carry out the effects these functions
//! return (emails to send, messages to publish). `tests/pure.rs` fails if a source file of this
//! crate reaches for the file system, the environment, the clock or a process.
//!
//! ## The main types
//!
//! - [`Model`]: a validated model file (score groups, rules, decay, stages, handoff, templates,
//!   campaigns). Built only by [`Model::from_yaml_str`] (the text alone) or
//!   [`Model::from_yaml_str_with`], which asks a [`ModelSources`] for what the text names but does
//!   not hold: template bodies kept in files and `${VAR}` settings. Every mistake is reported at
//!   once, in file order ([`ModelErrors`]). The loader lives in `src/model/load/`, one file per
//!   section of the model file (`scores.rs`, `rules.rs`, `campaigns.rs`…) over a shared
//!   context in `load/mod.rs`; `ember_service::model_files` reads a model from disk.
//! - [`RawEvent`] → [`Event`]: what a client sends, and the same event once validated
//!   ([`RawEvent::validate`] takes the time as an argument, never reads it).
//! - [`Lead`]: one person's state (identity, traits, scores, stage, consent, rule counters,
//!   campaign enrollments, sends, the messages waiting to be published).
//! - [`Engine`]: the rules over a model. [`Engine::ingest`] applies an event to a lead;
//!   `decay`, `check_sla`, `drip`, `send_done`, `crm_feedback` and `merge` are the other changes.
//!   Each mutates the lead it is given and returns an [`Outcome`] (what changed, what to publish,
//!   emails to send as [`SendIntent`]s); [`Engine::due`] says when the lead next has work ([`Due`]).
//!
//! ## Modules
//!
//! - [`model`]: the model file, loaded and validated (every mistake reported at once).
//! - [`cond`]: matchers and lead predicates.
//! - [`event`]: incoming events and their validation.
//! - [`lead`]: the lead state.
//! - [`limits`]: the size limits of what a client may send.
//! - [`engine`]: scoring, stages, decay, campaigns, handoff, CRM feedback, merge.
//! - [`personal`]: what of a message identifies the person, left out where messages wait.


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
