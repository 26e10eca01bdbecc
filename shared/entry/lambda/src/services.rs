//! The services on AWS adapters, built once per container.

use aws_config::SdkConfig;
use ember_aws::{EventBridgeBus, SesMailer, Settings, SettingsError, SqsDeadLetters};
use ember_store_dynamodb::DynamoStore;
use ember_delivery::{HttpWebhookSender, RetryPolicy};
use std::time::Duration;
use ember_service::compose::ComposeSettings;
use ember_service::model_files;
use ember_service::ports::{Bus, BusError, DeadLetter, DeadLetters, SystemClock, WebhookDelivery};
use ember_service::wiring::{wire, Adapters, Services, WiringError};
use ember_service::{Ember, Handoff};
use std::path::PathBuf;
use std::sync::Arc;

/// What can stop a container from starting. Each names the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A required environment variable is missing.
    #[error("{0} is not set")]
    Missing(&'static str),
    /// The model does not load.
    #[error("the model {path} is invalid:\n{errors}")]
    Model {
        /// The model file (`EMBER_MODEL`).
        path: String,
        /// Every error found, each with the key at fault.
        #[source]
        errors: ember_scoring::ModelErrors,
    },
    /// The secret could not be read.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The services cannot be built from this model and these settings (templates that do
    /// not compile, no unsubscribe key).
    #[error(transparent)]
    Wiring(#[from] WiringError),
    /// `EMBER_WRITE_KEYS` or `EMBER_ADMIN_KEYS` is malformed.
    #[error("API keys: {0}")]
    Keys(#[source] ember_http::KeyError),
    /// An AWS timeout setting is malformed.
    #[error("AWS timeouts: {0}")]
    Timeouts(String),
}

/// Where everything is. [`AwsConfig::from_env`] reads the function's environment.
#[derive(Debug, Clone)]
pub struct AwsConfig {
    /// Model file (`EMBER_MODEL`, in the stack's layer: `/opt/ember/model.yaml`).
    pub model: PathBuf,
    /// DynamoDB table (`EMBER_TABLE`).
    pub table: String,
    /// Custom EventBridge bus (`EMBER_BUS`); none: domain messages are only logged.
    pub bus: Option<String>,
    /// SES configuration set (`EMBER_SES_CONFIGURATION_SET`).
    pub configuration_set: Option<String>,
    /// Base URL of the API, for unsubscribe links (`EMBER_PUBLIC_URL`).
    pub public_url: String,
    /// SQS queue for webhook deliveries that failed for good (`EMBER_DLQ_URL`).
    pub dead_letter_queue: Option<String>,
    /// Webhook retries within one invocation ([`lambda_retry_policy`]).
    pub webhook_retry: RetryPolicy,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl AwsConfig {
    /// Reads the function's environment (the variables named on each field); a missing
    /// `EMBER_TABLE` or a malformed timeout stops the container with a named error.
    pub fn from_env() -> Result<AwsConfig, StartError> {
        ember_aws::sdk::timeouts(var).map_err(StartError::Timeouts)?;
        Ok(AwsConfig {
            model: var("EMBER_MODEL").unwrap_or_else(|| "/opt/ember/model.yaml".into()).into(),
            table: var("EMBER_TABLE").ok_or(StartError::Missing("EMBER_TABLE"))?,
            bus: var("EMBER_BUS"),
            configuration_set: var("EMBER_SES_CONFIGURATION_SET"),
            public_url: var("EMBER_PUBLIC_URL").unwrap_or_default(),
            dead_letter_queue: var("EMBER_DLQ_URL"),
            webhook_retry: lambda_retry_policy(),
        })
    }
}

/// The services and adapters of one container.
#[derive(Clone)]
pub struct AwsServices {
    /// The use cases, over the DynamoDB store, SES and EventBridge.
    pub ember: Ember,
    /// Webhooks to the CRM.
    pub handoff: Arc<Handoff>,
    /// The store (for its counters).
    pub store: DynamoStore,
    /// Settings (secret, then environment): API keys and the like.
    pub settings: Settings,
    /// API keys and the CRM secret (`EMBER_WRITE_KEYS`, `EMBER_ADMIN_KEYS`, `EMBER_CRM_SECRET`).
    pub api: ember_http::ApiConfig,
}

/// A bus for functions that publish nothing anyone listens to (or tests without a bus):
/// messages are logged by type and id.
struct LogBus;

#[async_trait::async_trait]
impl Bus for LogBus {
    async fn publish(&self, messages: &[ember_scoring::lead::Message]) -> Result<(), BusError> {
        for m in messages {
            tracing::info!(message_type = %m.kind, message_id = %m.id, "domain message (no bus configured)");
        }
        Ok(())
    }
}

/// Dead letters when no queue is configured: the failure is logged (ids only) and kept nowhere.
struct LogDeadLetters;

#[async_trait::async_trait]
impl DeadLetters for LogDeadLetters {
    async fn put(&self, delivery: &WebhookDelivery, error: &str) -> Result<(), BusError> {
        tracing::error!(webhook_id = %delivery.id, hook = %delivery.hook, error, "webhook failed and no dead-letter queue is configured");
        Err(BusError("no dead-letter queue configured (EMBER_DLQ_URL)".into()))
    }
    async fn lease(&self, _limit: usize, _lease: Duration) -> Result<Vec<DeadLetter>, BusError> {
        Ok(Vec::new())
    }
    async fn remove(&self, _letter: &DeadLetter) -> Result<(), BusError> {
        Ok(())
    }
}

/// Webhook retries within one invocation: 1 s, 4 s, 16 s (exponential), then the dead-letter
/// queue, from which `ember webhooks replay` sends them again.
pub fn lambda_retry_policy() -> RetryPolicy {
    RetryPolicy::new(vec![Duration::from_secs(1), Duration::from_secs(4), Duration::from_secs(16)])
}

impl AwsServices {
    /// Reads the environment and the secret, then builds everything.
    pub async fn from_env() -> Result<AwsServices, StartError> {
        let started = std::time::Instant::now();
        let conf = ember_aws::sdk_config().await;
        let config_done = started.elapsed();
        let settings = Settings::load(&conf).await?;
        let settings_done = started.elapsed();
        let services = AwsServices::build(&conf, &AwsConfig::from_env()?, settings)?;
        let done = started.elapsed();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        tracing::info!(
            init_ms = ms(done),
            aws_config_ms = ms(config_done),
            secret_ms = ms(settings_done - config_done),
            services_ms = ms(done - settings_done),
            "container ready"
        );
        Ok(services)
    }

    /// Builds the services over the AWS clients of `conf`.
    pub fn build(conf: &SdkConfig, cfg: &AwsConfig, settings: Settings) -> Result<AwsServices, StartError> {
        let model = model_files::load_model_with(&cfg.model, &|name| settings.get(name))
            .map_err(|errors| StartError::Model { path: cfg.model.display().to_string(), errors })?;
        for w in &model.warnings {
            tracing::warn!(warning = %w, "model");
        }
        let unsubscribe_secret = settings.get("EMBER_UNSUBSCRIBE_SECRET").filter(|s| !s.trim().is_empty()).unwrap_or_default().into_bytes();
        let compose = ComposeSettings { public_url: cfg.public_url.clone(), unsubscribe_secret, unsubscribe_mailto: None };
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(conf), cfg.table.clone());
        // The handoff is its own function, reached through EventBridge: the bus does not call it.
        let bus: Arc<dyn Bus> = match &cfg.bus {
            Some(name) => Arc::new(EventBridgeBus::new(aws_sdk_eventbridge::Client::new(conf), name.clone())),
            None => Arc::new(LogBus),
        };
        let dead_letters: Arc<dyn DeadLetters> = match &cfg.dead_letter_queue {
            Some(url) => Arc::new(SqsDeadLetters::new(aws_sdk_sqs::Client::new(conf), url.clone())),
            None => Arc::new(LogDeadLetters),
        };
        let adapters = Adapters {
            store: Arc::new(store.clone()),
            mailer: Arc::new(SesMailer::new(aws_sdk_sesv2::Client::new(conf), cfg.configuration_set.clone())),
            bus: Box::new(move |_| bus),
            clock: Arc::new(SystemClock),
            webhooks: Arc::new(HttpWebhookSender::new(cfg.webhook_retry.clone(), None)),
            dead_letters,
            copies: Vec::new(),
        };
        let api = ember_http::ApiConfig::from_settings(|n| settings.get(n)).map_err(StartError::Keys)?;
        let Services { ember, handoff } = wire(Arc::new(model), compose, adapters)?;
        Ok(AwsServices { ember, handoff, store, settings, api })
    }
}
