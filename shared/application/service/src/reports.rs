//! Reports: the counters of a period read from the store, built into reports by
//! `ember-reports` (the same functions for the API, the CLI and the dashboard).

use crate::core::ServiceError;
use crate::ports::{Clock, Store};
use ember_reports::{By, CampaignsReport, Costs, FunnelReport, Period, QualityReport, Tally};
use ember_scoring::Model;
use std::sync::Arc;

/// What a report request asks for (`from`, `to`, `by` as given in a query string or on the
/// command line).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ReportQuery {
    /// First day (`YYYY-MM-DD`) or month (`YYYY-MM`).
    #[serde(default)]
    pub from: Option<String>,
    /// Last day or month.
    #[serde(default)]
    pub to: Option<String>,
    /// `channel` (default) or `cohort`.
    #[serde(default)]
    pub by: Option<String>,
    /// Channel costs, `source/medium=amount` pairs separated by commas (quality report).
    #[serde(default)]
    pub costs: Option<String>,
}

impl ReportQuery {
    /// The grouping asked for.
    pub fn by(&self) -> Result<By, ServiceError> {
        self.by.as_deref().map_or(Ok(By::Channel), |b| b.parse().map_err(ServiceError::Invalid))
    }

    /// The costs given in the query.
    pub fn costs(&self) -> Result<Costs, ServiceError> {
        self.costs.as_deref().map_or(Ok(Costs::new()), |c| ember_reports::parse_costs(c).map_err(ServiceError::Invalid))
    }
}

/// The reports use case: it reads counters and needs nothing that sends (no mailer, no bus),
/// so the CLI builds it over a store alone.
#[derive(Clone)]
pub struct Reports {
    model: Arc<Model>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl Reports {
    /// The reports of `model`'s leads in `store`; `clock` says what "today" is.
    pub fn new(model: Arc<Model>, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Reports {
        Reports { model, store, clock }
    }

    /// The period of a query: defaults relative to today in the model's time zone.
    pub fn period(&self, q: &ReportQuery) -> Result<Period, ServiceError> {
        let today = ember_reports::facts::day_of(&self.model, self.clock.now());
        Period::parse(q.from.as_deref(), q.to.as_deref(), today).map_err(ServiceError::Invalid)
    }

    /// The report counters of a period.
    pub async fn tallies(&self, p: Period) -> Result<Vec<Tally>, ServiceError> {
        Ok(self.store.tallies(p.from, p.to).await?)
    }

    /// `GET /v1/reports/funnel`.
    pub async fn funnel(&self, q: &ReportQuery) -> Result<FunnelReport, ServiceError> {
        let (p, by) = (self.period(q)?, q.by()?);
        let t = self.tallies(p).await?;
        Ok(ember_reports::funnel(&self.model, &t, p.from, p.to, by))
    }

    /// `GET /v1/reports/campaigns`.
    pub async fn campaigns(&self, q: &ReportQuery) -> Result<CampaignsReport, ServiceError> {
        let p = self.period(q)?;
        let t = self.tallies(p).await?;
        Ok(ember_reports::campaigns(&self.model, &t, p.from, p.to))
    }

    /// `GET /v1/reports/quality`; `costs` adds to the costs of the query.
    pub async fn quality(&self, q: &ReportQuery, costs: &Costs) -> Result<QualityReport, ServiceError> {
        let p = self.period(q)?;
        let mut all = q.costs()?;
        for (k, v) in costs {
            *all.entry(k.clone()).or_default() += v;
        }
        let t = self.tallies(p).await?;
        Ok(ember_reports::quality(&self.model, &t, p.from, p.to, &all))
    }
}
