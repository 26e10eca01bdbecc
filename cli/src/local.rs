//! Local wiring: the shared services over the embedded store, the outbox mailer, the
//! in-process bus and the handoff service. `ember dev`, `ember scenario run` and
//! `ember bench` all build their services here.

use crate::scenario::Harness;
use anyhow::{Context, Result};
use ember_delivery::{FileDeadLetters, FileWebhookRecorder, HttpWebhookSender, LocalBus, MemoryWebhookRecorder, OutboxMailer, RetryPolicy};
use ember_scoring::{Model, Time};
use ember_service::compose::ComposeSettings;
use ember_service::ports::{Clock, Mailer, ManualClock, MessageHandler, OutgoingEmail, PersonalCopies, Store, WebhookSender};
use ember_service::wiring::{wire, Adapters, Services};
use ember_service::{Ember, Handoff};
use ember_store_sqlite::SqliteStore;
use std::path::Path;
use std::sync::Arc;

/// The local services and the adapters worth reaching directly.
pub struct LocalServices {
    /// The use cases, over the local store.
    pub ember: Ember,
    /// The handoff service (webhooks to the CRM).
    pub handoff: Arc<Handoff>,
    /// The outbox under the data folder, where local mode writes every email as an `.eml` file.
    pub outbox: Arc<OutboxMailer>,
}

/// What differs between local uses.
pub struct LocalOptions {
    /// Base URL for links in emails (unsubscribe).
    pub public_url: String,
    /// Key for unsubscribe tokens.
    pub unsubscribe_secret: Vec<u8>,
    /// The system clock for `ember dev` and imports, a manual one for scenarios.
    pub clock: Arc<dyn Clock>,
    /// Sends (or, for webhooks without a URL, records) CRM webhook deliveries.
    pub webhooks: Arc<dyn WebhookSender>,
    /// The mailer (default: the outbox under the data folder).
    pub mailer: Option<Arc<dyn Mailer>>,
    /// Files the webhook sender writes personal data to (recorded deliveries), for erasure to
    /// reach besides the outbox and the dead letters, which the stack adds itself.
    pub copies: Vec<Arc<dyn PersonalCopies>>,
}

impl LocalServices {
    /// Wires the services over `store`, keeping mail and dead letters under `data_dir`. Erasing a
    /// lead erases it from the outbox, the dead letters and `opts.copies` too.
    pub fn open(model: Arc<Model>, store: Arc<dyn Store>, data_dir: &Path, opts: LocalOptions) -> Result<LocalServices> {
        std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let compose = ComposeSettings { public_url: opts.public_url, unsubscribe_secret: opts.unsubscribe_secret, unsubscribe_mailto: None };
        let outbox = Arc::new(OutboxMailer::new(data_dir.join("outbox")).context("opening the outbox")?);
        let dead = Arc::new(FileDeadLetters::new(data_dir.join("dead-letters.jsonl")));
        let mut copies: Vec<Arc<dyn PersonalCopies>> = vec![outbox.clone(), dead.clone()];
        copies.extend(opts.copies);
        let adapters = Adapters {
            store,
            mailer: opts.mailer.unwrap_or_else(|| outbox.clone()),
            // One process: the bus hands each message to the handoff service directly.
            bus: Box::new(|handoff| {
                let handlers: Vec<Arc<dyn MessageHandler>> = vec![handoff];
                Arc::new(LocalBus::new(handlers))
            }),
            clock: opts.clock,
            webhooks: opts.webhooks,
            dead_letters: dead,
            copies,
        };
        let Services { ember, handoff } = wire(model, compose, adapters)?;
        Ok(LocalServices { ember, handoff, outbox })
    }
}

/// The scenario harness on local adapters.
pub struct ScenarioHarness {
    services: LocalServices,
    clock: Arc<ManualClock>,
    recorder: Arc<MemoryWebhookRecorder>,
    ses: Option<Arc<SesReadBack>>,
}

/// The SES mailer for scenarios on a local AWS stand-in (moto): sends through the SES v2 API,
/// remembers which lead and template each accepted message id was, and reads the messages the
/// endpoint really holds back from its `/moto-api/data.json`.
pub struct SesReadBack {
    inner: ember_aws::SesMailer,
    endpoint: String,
    sent: std::sync::Mutex<Vec<(String, String, String)>>,
}

impl SesReadBack {
    /// A mailer over `conf`'s SES endpoint; creates the sender's domain identity (the endpoint
    /// must be a moto server: its management API is read back).
    pub async fn new(conf: &aws_config::SdkConfig, endpoint: String, model: &Model) -> Result<SesReadBack> {
        let client = aws_sdk_sesv2::Client::new(conf);
        if let Some(email) = &model.email {
            let from = &email.from;
            let domain = from.rsplit('@').next().unwrap_or(from).trim_end_matches('>').to_string();
            // Already there from an earlier scenario: fine.
            client.create_email_identity().email_identity(&domain).send().await.ok();
        }
        Ok(SesReadBack { inner: ember_aws::SesMailer::new(client, None), endpoint, sent: Default::default() })
    }

    /// (lead, template) of every message the endpoint holds, in sending order.
    async fn read_back(&self) -> Result<Vec<(String, String)>> {
        let url = format!("{}/moto-api/data.json", self.endpoint.trim_end_matches('/'));
        let text = reqwest::get(&url).await.and_then(|r| r.error_for_status()).with_context(|| format!("GET {url}"))?.text().await?;
        let data: serde_json::Value = serde_json::from_str(&text).context("reading moto's data.json")?;
        let held: std::collections::HashSet<&str> = data["ses"]["Message"]
            .as_array()
            .map(|ms| ms.iter().filter_map(|m| m["id"].as_str()).collect())
            .unwrap_or_default();
        let sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        Ok(sent.iter().filter(|(id, _, _)| held.contains(id.as_str())).map(|(_, l, t)| (l.clone(), t.clone())).collect())
    }
}

#[async_trait::async_trait]
impl Mailer for SesReadBack {
    async fn send(&self, email: &OutgoingEmail) -> ember_scoring::SendOutcome {
        let outcome = self.inner.send(email).await;
        if let ember_scoring::SendOutcome::Sent { message_id } = &outcome {
            self.sent.lock().unwrap_or_else(|e| e.into_inner()).push((message_id.clone(), email.lead_id.clone(), email.template.clone()));
        }
        outcome
    }
}

impl ScenarioHarness {
    /// On a fresh embedded store in `dir`.
    pub async fn embedded(model: Arc<Model>, dir: &Path, start: Time) -> Result<ScenarioHarness> {
        let store = Arc::new(SqliteStore::open(&dir.join("ember.db")).context("opening the store")?);
        Self::with_store(model, store, dir, start)
    }

    /// The services (for callers that drive them directly, like the benchmark).
    pub fn services(&self) -> &Ember {
        &self.services.ember
    }

    /// On `store` (embedded or DynamoDB), with the outbox as mailer.
    pub fn with_store(model: Arc<Model>, store: Arc<dyn Store>, dir: &Path, start: Time) -> Result<ScenarioHarness> {
        Self::with_store_and_mailer(model, store, dir, start, None)
    }

    /// On any store, sending email through SES (read back from the endpoint) when given.
    pub fn with_store_and_mailer(
        model: Arc<Model>,
        store: Arc<dyn Store>,
        dir: &Path,
        start: Time,
        ses: Option<Arc<SesReadBack>>,
    ) -> Result<ScenarioHarness> {
        let clock = Arc::new(ManualClock::at(start));
        let recorder = Arc::new(MemoryWebhookRecorder::new());
        let services = LocalServices::open(
            model,
            store,
            dir,
            LocalOptions {
                public_url: "http://127.0.0.1:8080".into(),
                unsubscribe_secret: b"scenario-only-secret".to_vec(),
                clock: clock.clone(),
                webhooks: recorder.clone(),
                mailer: ses.clone().map(|m| m as Arc<dyn Mailer>),
                copies: Vec::new(),
            },
        )?;
        Ok(ScenarioHarness { services, clock, recorder, ses })
    }
}

#[async_trait::async_trait]
impl Harness for ScenarioHarness {
    fn ember(&self) -> &Ember {
        &self.services.ember
    }
    fn clock(&self) -> &Arc<ManualClock> {
        &self.clock
    }
    async fn emails(&self) -> Result<Vec<(String, String)>> {
        if let Some(ses) = &self.ses {
            return ses.read_back().await;
        }
        Ok(self.services.outbox.sent()?.into_iter().map(|e| (e.lead_id, e.template)).collect())
    }
    async fn webhooks(&self) -> Result<Vec<(String, String)>> {
        Ok(self.recorder.deliveries().into_iter().map(|d| (d.lead_id, d.kind.to_string())).collect())
    }
}

/// File of the deliveries `ember import` records instead of sending (in the data folder).
pub const IMPORT_WEBHOOKS: &str = "import-webhooks.jsonl";

/// The default webhook sender for `ember dev`: HTTP with retries; unconfigured webhooks are
/// recorded in `data_dir/webhooks.jsonl` by the recorder returned beside it (one lock for the
/// sender's appends and erasure's rewrites: put it in [`LocalOptions::copies`]).
pub fn http_webhooks(data_dir: &Path) -> (Arc<dyn WebhookSender>, Arc<FileWebhookRecorder>) {
    let recorder = Arc::new(FileWebhookRecorder::new(data_dir.join("webhooks.jsonl")));
    (Arc::new(HttpWebhookSender::with_recorder(RetryPolicy::default(), recorder.clone())), recorder)
}
