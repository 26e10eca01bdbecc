//! The one place the services are put together. Each world (the Lambda functions, the local
//! runner) chooses its adapters and hands them to [`wire`]; what must hold in every world —
//! templates that compile, an unsubscribe key whenever an email can be sent, the handoff
//! reading people back from the same store, erasure reaching every copy — is checked here once.

use crate::compose::{ComposeSettings, Composer};
use crate::ports::{Bus, Clock, DeadLetters, Mailer, PersonalCopies, Store, WebhookSender};
use crate::{Ember, Handoff};
use ember_scoring::{Engine, Model};
use std::sync::Arc;

/// What stops the services from being built. Each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    /// The email templates do not compile (one line per template and part).
    #[error("the model's templates do not compile:\n{}", .0.join("\n"))]
    Templates(Vec<String>),
    /// The model has email templates but no key to sign their unsubscribe links.
    #[error(
        "EMBER_UNSUBSCRIBE_SECRET is not set (neither in the secret that EMBER_SECRETS_ARN names nor in the environment) \
         and the model has email templates: every unsubscribe link and one-click List-Unsubscribe header would be \
         unverifiable. Put a long random value under EMBER_UNSUBSCRIBE_SECRET in the secret (the stack generates one)."
    )]
    UnsubscribeSecret,
}

/// The adapters of one world.
pub struct Adapters {
    /// Leads, events, identities, due indexes, counters.
    pub store: Arc<dyn Store>,
    /// Sends campaign emails: SES in AWS, the outbox folder in local mode.
    pub mailer: Arc<dyn Mailer>,
    /// Builds the bus the services publish domain messages to, given the handoff service (an
    /// in-process bus delivers to it; EventBridge reaches the handoff function instead).
    pub bus: Box<dyn FnOnce(Arc<Handoff>) -> Arc<dyn Bus>>,
    /// Now; also the `webhook-timestamp` of the handoff's signatures.
    pub clock: Arc<dyn Clock>,
    /// Delivers signed webhooks to the CRM.
    pub webhooks: Arc<dyn WebhookSender>,
    /// Where deliveries that failed for good wait for a replay.
    pub dead_letters: Arc<dyn DeadLetters>,
    /// Places outside the store holding copies of sent personal data, for erasure to reach.
    pub copies: Vec<Arc<dyn PersonalCopies>>,
}

/// The wired services: what an entry point (HTTP router, Lambda handler, CLI) is given.
#[derive(Clone)]
pub struct Services {
    /// The use cases (ingest, jobs, feedback, erasure, reports) over one shared core.
    pub ember: Ember,
    /// Webhooks to the CRM.
    pub handoff: Arc<Handoff>,
}

/// Builds the services of `model` over `adapters`.
pub fn wire(model: Arc<Model>, compose: ComposeSettings, adapters: Adapters) -> Result<Services, WiringError> {
    if compose.unsubscribe_secret.is_empty() {
        // Without it every email Ember sends carries links nobody can use: refuse to start
        // rather than send them. A model without templates sends nothing and needs none.
        if !model.templates.is_empty() {
            return Err(WiringError::UnsubscribeSecret);
        }
        tracing::warn!("EMBER_UNSUBSCRIBE_SECRET is not set; the model has no email templates, so no link needs it");
    }
    let composer = Composer::new(&model, compose).map_err(WiringError::Templates)?;
    let Adapters { store, mailer, bus, clock, webhooks, dead_letters, copies } = adapters;
    let hooks = model.handoff.as_ref().map(|h| h.webhooks.clone()).unwrap_or_default();
    let now_secs = {
        let clock = clock.clone();
        Arc::new(move || clock.now().timestamp())
    };
    let handoff = Arc::new(Handoff::new(hooks, webhooks, dead_letters, store.clone(), now_secs));
    let bus = bus(handoff.clone());
    let engine = Arc::new(Engine::new(model));
    let ember = Ember::new(engine, store, mailer, bus, clock, Arc::new(composer)).with_copies(copies);
    Ok(Services { ember, handoff })
}
