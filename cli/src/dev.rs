//! `ember dev`: the whole product on one machine — HTTP API, scheduled jobs every minute,
//! emails into an outbox folder, webhooks to the model's URLs, data in one SQLite file that
//! survives restarts.

use crate::local::{http_webhooks, LocalOptions, LocalServices};
use anyhow::{Context, Result};
use ember_scoring::Span;
use ember_service::model_files;
use ember_service::ports::{Clock, SystemClock};
use ember_store_sqlite::SqliteStore;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The flags of `ember dev` (each also read from its `EMBER_*` variable where one is named).
#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Model file to score with (YAML, SPEC §2).
    #[arg(long, env = "EMBER_MODEL", default_value = "examples/b2b-saas.yaml")]
    pub model: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "EMBER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Data folder (database, outbox, dead letters).
    #[arg(long, env = "EMBER_DATA", default_value = ".ember")]
    pub data: PathBuf,
    /// How often the scheduled jobs run (decay, SLA, drip).
    #[arg(long, default_value = "1m", value_parser = parse_span)]
    pub tick_every: Span,
    /// Public base URL used in email links (default: http://LISTEN).
    #[arg(long, env = "EMBER_PUBLIC_URL")]
    pub public_url: Option<String>,
}

fn parse_span(s: &str) -> Result<Span, String> {
    Span::parse(s)
}

/// The unsubscribe key: `EMBER_UNSUBSCRIBE_SECRET`, else one made once and kept in the data
/// folder (never in the repository).
fn unsubscribe_secret(data: &Path) -> Result<Vec<u8>> {
    if let Ok(s) = std::env::var("EMBER_UNSUBSCRIBE_SECRET") {
        if !s.is_empty() {
            return Ok(s.into_bytes());
        }
    }
    let path = data.join("unsubscribe.key");
    if let Ok(k) = std::fs::read(&path) {
        if !k.is_empty() {
            return Ok(k);
        }
    }
    let key = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()).into_bytes();
    std::fs::write(&path, &key).with_context(|| format!("writing {}", path.display()))?;
    Ok(key)
}

/// Runs until Ctrl-C.
pub async fn run(args: DevArgs) -> Result<()> {
    crate::init_logs();
    let model = match model_files::load_model(&args.model) {
        Ok(m) => m,
        Err(e) => anyhow::bail!("{}: the model is invalid:\n{e}", args.model.display()),
    };
    for w in &model.warnings {
        tracing::warn!("{w}");
    }
    std::fs::create_dir_all(&args.data).with_context(|| format!("creating {}", args.data.display()))?;
    // Every setting is read before anything starts: a mistake is refused before a port opens.
    let api = crate::keys::dev_api_config(&args.data)?;
    let store = Arc::new(SqliteStore::open(&args.data.join("ember.db")).context("opening the embedded store")?);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let public_url = args.public_url.clone().unwrap_or_else(|| format!("http://{}", args.listen));
    let (webhooks, recorded) = http_webhooks(&args.data);
    // What `ember import` recorded in this data folder holds people too: erasure reaches it.
    let imported = Arc::new(ember_delivery::FileWebhookRecorder::new(args.data.join(crate::local::IMPORT_WEBHOOKS)));
    let services = LocalServices::open(
        Arc::new(model),
        store,
        &args.data,
        LocalOptions {
            public_url,
            unsubscribe_secret: unsubscribe_secret(&args.data)?,
            clock: clock.clone(),
            webhooks,
            mailer: None,
            copies: vec![recorded, imported],
        },
    )?;
    let ember = services.ember.clone();
    let every = std::time::Duration::from_secs(args.tick_every.secs().max(1) as u64);
    let ticker = {
        let ember = ember.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let r = ember.jobs.tick(ember.clock().now(), &|| true).await;
                if r.processed > 0 || r.failed > 0 {
                    tracing::info!(processed = r.processed, sent = r.sent, failed = r.failed, "scheduled jobs ran");
                }
            }
        })
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(
        listen = %args.listen,
        model = %args.model.display(),
        data = %args.data.display(),
        "ember dev is running: POST /v1/events, GET /v1/leads/{{id}}, GET /v1/leads?email="
    );
    axum::serve(listener, ember_http::router(ember, api))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    ticker.abort();
    Ok(())
}
