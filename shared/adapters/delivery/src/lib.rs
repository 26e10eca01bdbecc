//! # ember-delivery — the webhook sender, and the local world's delivery adapters
//!
//! - [`HttpWebhookSender`], in both worlds (the handoff function on AWS, `ember dev` locally):
//!   Standard Webhooks deliveries over HTTP with retries ([`RetryPolicy`]); deliveries of
//!   webhooks without a URL go to a [`FileWebhookRecorder`]; [`MemoryWebhookRecorder`] keeps
//!   deliveries in memory (scenarios, tests).
//!
//! What `ember dev` and `ember scenario run` use where AWS would use SES, EventBridge and SQS:
//!
//! - [`OutboxMailer`]: every email as an `.eml` file in an outbox folder, plus an index;
//! - [`LocalBus`]: delivers domain messages in-process to handlers (the handoff service);
//! - [`FileDeadLetters`]: failed deliveries in a JSON-lines file, replayable.
//!
//! The three file adapters hold what was sent, personal data included: each implements
//! [`ember_service::ports::PersonalCopies`], so erasing a lead erases it there too.
//!
//! None of them logs bodies or addresses: logs carry ids, status codes and attempt counts.


mod bus;
mod dead_letters;
mod files;
mod outbox;
mod webhook;

pub use bus::LocalBus;
pub use dead_letters::FileDeadLetters;
pub use outbox::{IndexEntry, OutboxMailer, render_eml};
pub use webhook::{FileWebhookRecorder, HttpWebhookSender, MemoryWebhookRecorder, RetryPolicy, USER_AGENT};
