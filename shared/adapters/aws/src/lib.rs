//! # ember-aws — the AWS adapters besides the store
//!
//! - [`SesMailer`]: the [`ember_service::ports::Mailer`] on SES v2, and [`email_tags`], the
//!   message tags that let SES events find their lead again;
//! - [`EventBridgeBus`]: the [`ember_service::ports::Bus`] on an EventBridge bus;
//! - [`SqsDeadLetters`] and [`SqsFailedMessages`]: webhook dead letters and failed bus messages
//!   on SQS;
//! - [`Settings`]: secrets from Secrets Manager, then the environment;
//! - [`sdk`]: the one SDK configuration every AWS client is built from (HTTPS client,
//!   timeouts).
//!
//! The DynamoDB store is its own crate, `ember-store-dynamodb`.
//!
//! Nothing here logs message content, emails or identity keys.

mod eventbridge;
pub mod sdk;
mod ses;
mod settings;
mod sqs;

pub use eventbridge::{EventBridgeBus, SOURCE as BUS_SOURCE};
pub use sdk::{ATTEMPT_TIMEOUT, ATTEMPT_TIMEOUT_VAR, CONNECT_TIMEOUT, OPERATION_TIMEOUT, OPERATION_TIMEOUT_VAR, sdk_config, sdk_loader};
pub use ses::{SesMailer, tags as email_tags};
pub use settings::{SECRET_ARN_VARS, SECRETS_ARN_VAR, Settings, SettingsError};
pub use sqs::{SqsDeadLetters, SqsFailedMessages};
