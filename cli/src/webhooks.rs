//! `ember webhooks replay`: sends the dead-letter queue's webhook deliveries again (same
//! webhook id, fresh timestamp and signature), from the SQS queue of a deployed stack or the
//! local `ember dev` data folder. A letter leaves the queue only once it is delivered (or its
//! endpoint answered 410): what fails again, or what the time budget leaves no time for, stays
//! — killing the replay at any point loses nothing.
//!
//! Letters and queued bus messages hold no personal data; the replay reads the person's data
//! back from the store (`EMBER_TABLE`, or the data folder's `ember.db`) and drops the letters of
//! leads that no longer exist (erased). `--failed-events-url` also replays the stack's queue of
//! bus messages that never reached the handoff function (`FailedEventsQueue`).

use anyhow::{Context, Result};
use ember_delivery::{FileDeadLetters, HttpWebhookSender, RetryPolicy};
use ember_service::Handoff;
use ember_service::model_files;
use ember_service::ports::{DeadLetters, FailedMessages, Store};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The flags of `ember webhooks replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The model (its `handoff.webhooks` give the URLs and secrets, `${VAR}` from the
    /// environment, or from the secret named by `EMBER_SECRETS_ARN`).
    #[arg(long, env = "EMBER_MODEL", default_value = "examples/b2b-saas.yaml")]
    pub model: PathBuf,
    /// The SQS dead-letter queue of a deployed stack (its URL; the standard AWS environment
    /// gives region and credentials).
    #[arg(long, env = "EMBER_DLQ_URL", conflicts_with = "data")]
    pub queue_url: Option<String>,
    /// The stack's queue of bus messages that never reached the handoff function
    /// (`FailedEventsQueue`; its URL): replayed first, so what fails again joins the letters.
    #[arg(long, env = "EMBER_FAILED_EVENTS_URL", requires = "queue_url")]
    pub failed_events_url: Option<String>,
    /// The local data folder of `ember dev` (its `dead-letters.jsonl` and `ember.db`).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// At most this many deliveries.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// Time the whole replay may take (`30s`, `10m`, `2h`): retries and `Retry-After` waits
    /// that would pass it are not waited for; those letters stay queued for the next replay.
    #[arg(long, env = "EMBER_REPLAY_BUDGET", default_value = "10m", value_parser = parse_budget)]
    pub budget: Duration,
}

/// A positive duration in the model's notation.
fn parse_budget(text: &str) -> Result<Duration, String> {
    let span = ember_scoring::Span::parse(text)?;
    if span.secs() <= 0 {
        return Err(format!("the budget must be longer than 0 s (got `{text}`)"));
    }
    Ok(Duration::from_secs(span.secs() as u64))
}

/// Replays; prints what happened. Returns whether nothing failed again.
pub async fn replay(args: ReplayArgs) -> Result<bool> {
    crate::init_logs_quiet();
    let mut failed: Option<Arc<dyn FailedMessages>> = None;
    let (dead, leads, settings): (Arc<dyn DeadLetters>, Arc<dyn Store>, ember_aws::Settings) = match (&args.queue_url, &args.data) {
        (Some(url), _) => {
            let conf = ember_aws::sdk_config().await;
            let settings = ember_aws::Settings::load(&conf).await?;
            let store = ember_store_dynamodb::DynamoStore::from_env().await.context("the store the letters' leads are read from")?;
            if let Some(failed_url) = &args.failed_events_url {
                failed = Some(Arc::new(ember_aws::SqsFailedMessages::new(aws_sdk_sqs::Client::new(&conf), failed_url.clone())));
            }
            (Arc::new(ember_aws::SqsDeadLetters::new(aws_sdk_sqs::Client::new(&conf), url.clone())), Arc::new(store), settings)
        }
        (None, data) => {
            let dir = data.clone().unwrap_or_else(|| PathBuf::from(".ember"));
            let store = ember_store_sqlite::SqliteStore::open(dir.join("ember.db")).context("opening the embedded store")?;
            (Arc::new(FileDeadLetters::new(dir.join("dead-letters.jsonl"))), Arc::new(store), ember_aws::Settings::from_env())
        }
    };
    let model = model_files::load_model_with(&args.model, &|name| settings.get(name))
        .map_err(|e| anyhow::anyhow!("{}: the model is invalid:\n{e}", args.model.display()))?;
    let hooks = model.handoff.as_ref().map(|h| h.webhooks.clone()).unwrap_or_default();
    anyhow::ensure!(!hooks.is_empty(), "{}: the model has no handoff webhooks", args.model.display());
    let sender = HttpWebhookSender::new(RetryPolicy::new(vec![Duration::from_secs(1), Duration::from_secs(5)]), None);
    let handoff = Handoff::new(hooks, Arc::new(sender), dead, leads, Arc::new(|| chrono::Utc::now().timestamp()));
    let started = std::time::Instant::now();
    let mut ok = true;
    if let Some(queue) = &failed {
        let report = handoff.replay_failed(queue.as_ref(), args.limit, args.budget).await.context("reading the failed-events queue")?;
        println!(
            "failed events: {} webhooks delivered, {} disabled (410 Gone), {} failed again (now dead letters), {} not tried within the budget and {} not handoff messages (still in the queue), {} about erased leads (dropped)",
            report.delivered, report.disabled, report.failed, report.left, report.skipped, report.erased
        );
        ok &= report.left == 0 && report.failed == 0;
    }
    let budget = args.budget.saturating_sub(started.elapsed());
    let report = handoff.replay(args.limit, budget).await.context("reading the dead-letter queue")?;
    println!(
        "replayed: {} delivered, {} disabled (410 Gone), {} failed again (still in the queue), {} not tried within the budget (still in the queue), {} about erased leads (dropped)",
        report.delivered, report.disabled, report.failed, report.left, report.erased
    );
    Ok(ok && report.failed == 0 && report.left == 0)
}
