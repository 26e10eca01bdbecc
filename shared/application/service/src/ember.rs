//! [`Ember`]: the use cases wired over one [`Core`] and its adapters. The composition roots
//! (`ember_lambda::AwsServices`, the CLI's local stack) build one per process and hand it to the
//! entry points (HTTP router, scheduled jobs, bus handlers).

use crate::compose::Composer;
use crate::core::{Core, ServiceError};
use crate::erasure::Erasure;
use crate::feedback::Feedback;
use crate::ingest::Ingest;
use crate::jobs::Jobs;
use crate::ports::{Bus, Clock, Identity, Mailer, PersonalCopies, Store};
use crate::reports::Reports;
use ember_scoring::{Engine, Lead};
use std::sync::Arc;

/// The use cases of one process. Cloning is cheap (shared handles).
#[derive(Clone)]
pub struct Ember {
    core: Arc<Core>,
    composer: Arc<Composer>,
    /// Events in: websites, apps, the email provider's events ([`Ingest`]).
    pub ingest: Ingest,
    /// Decay, SLA and drip over the leads that are due ([`Jobs`]).
    pub jobs: Jobs,
    /// CRM feedback, email events, unsubscribe links ([`Feedback`]).
    pub feedback: Feedback,
    /// The right to be forgotten ([`Erasure`]).
    pub erasure: Erasure,
    /// Funnel, campaigns and quality reports ([`Reports`]).
    pub reports: Reports,
}

impl Ember {
    /// Wires the use cases over one engine, store, mailer, bus, clock and composer.
    pub fn new(
        engine: Arc<Engine>,
        store: Arc<dyn Store>,
        mailer: Arc<dyn Mailer>,
        bus: Arc<dyn Bus>,
        clock: Arc<dyn Clock>,
        composer: Arc<Composer>,
    ) -> Ember {
        let reports = Reports::new(engine.model_arc().clone(), store.clone(), clock.clone());
        let core = Arc::new(Core { engine, store, bus, clock, identities: Default::default() });
        let ingest = Ingest { core: core.clone() };
        Ember {
            jobs: Jobs { core: core.clone(), mailer, composer: composer.clone() },
            feedback: Feedback { core: core.clone(), ingest: ingest.clone(), composer: composer.clone() },
            erasure: Erasure { core: core.clone(), copies: Vec::new() },
            ingest,
            reports,
            core,
            composer,
        }
    }

    /// The same use cases, with places outside the store that keep copies of sent data
    /// (outbox, recorded webhooks, dead letters): [`Erasure::erase`] erases the lead there too.
    pub fn with_copies(mut self, copies: Vec<Arc<dyn PersonalCopies>>) -> Ember {
        self.erasure.copies.extend(copies);
        self
    }

    /// The engine (the model and its lookup tables).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.core.engine
    }

    /// The store the services read and commit to (SQLite or DynamoDB).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.core.store
    }

    /// The email composer (templates, unsubscribe links).
    pub fn composer(&self) -> &Arc<Composer> {
        &self.composer
    }

    /// The clock every use case reads "now" from ([`ManualClock`](crate::ports::ManualClock) in tests and scenarios).
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.core.clock
    }

    /// A lead by id.
    pub async fn lead(&self, id: &str) -> Result<Option<Lead>, ServiceError> {
        self.core.lead(id).await
    }

    /// The lead an identity (email or anonymous id) points at.
    pub async fn lead_by(&self, identity: &Identity) -> Result<Option<Lead>, ServiceError> {
        self.core.lead_by(identity).await
    }
}
