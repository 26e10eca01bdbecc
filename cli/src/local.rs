//! Local wiring: the shared services over the embedded store, the outbox mailer, the
//! in-process bus and the handoff service. `ember dev`, `ember scenario run` and
//! `ember bench` all build their services here.

use crate::scenario::Harness;
use anyhow::{Context, Result};
use ember_delivery::{FileDeadLetters, HttpWebhookSender, LocalBus, MemoryWebhookRecorder, OutboxMailer};
use ember_scoring::{Engine, Model, Time};
use ember_service::compose::{ComposeSettings, Composer};
use ember_service::ports::{Clock, ManualClock, MessageHandler, Store, WebhookSender};
use ember_service::{Ember, Handoff};
use ember_store_sqlite::SqliteStore;
use std::path::Path;
use std::sync::Arc;

/// The local services and the adapters worth reaching directly.
pub struct LocalStack {
    /// The services.
    pub ember: Ember,
    /// The handoff service (webhooks to the CRM).
    pub handoff: Arc<Handoff>,
    /// The outbox mailer.
    pub outbox: Arc<OutboxMailer>,
}

/// What differs between local uses.
pub struct LocalOptions {
    /// Base URL for links in emails (unsubscribe).
    pub public_url: String,
    /// Key for unsubscribe tokens.
    pub unsubscribe_secret: Vec<u8>,
    /// Clock.
    pub clock: Arc<dyn Clock>,
    /// Webhook sender.
    pub webhooks: Arc<dyn WebhookSender>,
}

impl LocalStack {
    /// Wires the services over `store`, keeping mail and dead letters under `data_dir`.
    pub fn open(model: Arc<Model>, store: Arc<dyn Store>, data_dir: &Path, opts: LocalOptions) -> Result<LocalStack> {
        std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let engine = Arc::new(Engine::new(model.clone()));
        let composer = Composer::new(
            &model,
            ComposeSettings { public_url: opts.public_url, unsubscribe_secret: opts.unsubscribe_secret, unsubscribe_mailto: None },
        )
        .map_err(|errs| anyhow::anyhow!("templates do not compile:\n{}", errs.join("\n")))?;
        let outbox = Arc::new(OutboxMailer::new(data_dir.join("outbox")).context("opening the outbox")?);
        let dead = Arc::new(FileDeadLetters::new(data_dir.join("dead-letters.jsonl")));
        let clock = opts.clock.clone();
        let now_secs = Arc::new(move || clock.now().timestamp());
        let webhooks = model.handoff.as_ref().map(|h| h.webhooks.clone()).unwrap_or_default();
        let handoff = Arc::new(Handoff::new(webhooks, opts.webhooks, dead, now_secs));
        let handlers: Vec<Arc<dyn MessageHandler>> = vec![handoff.clone()];
        let bus = Arc::new(LocalBus::new(handlers));
        let ember = Ember::new(engine, store, outbox.clone(), bus, opts.clock, Arc::new(composer));
        Ok(LocalStack { ember, handoff, outbox })
    }
}

/// The scenario harness on local adapters.
pub struct ScenarioHarness {
    stack: LocalStack,
    clock: Arc<ManualClock>,
    recorder: Arc<MemoryWebhookRecorder>,
}

impl ScenarioHarness {
    /// On a fresh embedded store in `dir`.
    pub async fn embedded(model: Arc<Model>, dir: &Path, start: Time) -> Result<ScenarioHarness> {
        let store = Arc::new(SqliteStore::open(&dir.join("ember.db")).context("opening the store")?);
        Self::with_store(model, store, dir, start)
    }

    /// The services (for callers that drive them directly, like the benchmark).
    pub fn services(&self) -> &Ember {
        &self.stack.ember
    }

    /// On any store.
    pub fn with_store(model: Arc<Model>, store: Arc<dyn Store>, dir: &Path, start: Time) -> Result<ScenarioHarness> {
        let clock = Arc::new(ManualClock::at(start));
        let recorder = Arc::new(MemoryWebhookRecorder::new());
        let stack = LocalStack::open(
            model,
            store,
            dir,
            LocalOptions {
                public_url: "http://127.0.0.1:8080".into(),
                unsubscribe_secret: b"scenario-only-secret".to_vec(),
                clock: clock.clone(),
                webhooks: recorder.clone(),
            },
        )?;
        Ok(ScenarioHarness { stack, clock, recorder })
    }
}

#[async_trait::async_trait]
impl Harness for ScenarioHarness {
    fn ember(&self) -> &Ember {
        &self.stack.ember
    }
    fn clock(&self) -> &Arc<ManualClock> {
        &self.clock
    }
    async fn emails(&self) -> Result<Vec<(String, String)>> {
        Ok(self.stack.outbox.sent()?.into_iter().map(|e| (e.lead_id, e.template)).collect())
    }
    async fn webhooks(&self) -> Result<Vec<(String, String)>> {
        Ok(self.recorder.deliveries().into_iter().map(|d| (d.lead_id, d.kind)).collect())
    }
}

/// The default webhook sender for `ember dev`: HTTP with retries; unconfigured webhooks are
/// recorded in `data_dir/webhooks.jsonl`.
pub fn http_webhooks(data_dir: &Path) -> Arc<dyn WebhookSender> {
    Arc::new(HttpWebhookSender::local_default(data_dir.join("webhooks.jsonl")))
}
