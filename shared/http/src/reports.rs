//! Report routes and the dashboard.
//!
//! - `GET /v1/reports/funnel`, `/v1/reports/campaigns`, `/v1/reports/quality`: JSON reports
//!   (`ember_reports` structs) for `from` / `to` (`YYYY-MM-DD` or `YYYY-MM`; default: the last
//!   twelve months up to today in the model's time zone), `by=channel|cohort` (funnel), and
//!   `costs=source/medium=amount,…` (quality). Admin routes, like every `/v1` route but ingest.
//! - `GET /dashboard`: one self-contained page (HTML, JS and inline SVG charts; nothing loaded
//!   from elsewhere). It asks for the admin key, keeps it in `sessionStorage`, and fetches the
//!   three JSON reports with `Authorization: Bearer <key>`; every number it draws is carried in
//!   `data-*` attributes and text labels, so a browser test can compare it with the JSON.

use crate::ApiError;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use ember_service::{Ember, ReportQuery};

/// The dashboard page.
pub const DASHBOARD_HTML: &str = include_str!("dashboard.html");

/// The report routes (admin; the dashboard page itself is public and asks for the key).
pub fn routes() -> Router<Ember> {
    Router::new()
        .route("/v1/reports/funnel", get(funnel))
        .route("/v1/reports/campaigns", get(campaigns))
        .route("/v1/reports/quality", get(quality))
}

async fn funnel(State(ember): State<Ember>, q: Result<Query<ReportQuery>, QueryRejection>) -> Result<impl IntoResponse, ApiError> {
    let q = crate::query(q)?;
    Ok(Json(ember.funnel_report(&q).await?))
}

async fn campaigns(State(ember): State<Ember>, q: Result<Query<ReportQuery>, QueryRejection>) -> Result<impl IntoResponse, ApiError> {
    let q = crate::query(q)?;
    Ok(Json(ember.campaigns_report(&q).await?))
}

async fn quality(State(ember): State<Ember>, q: Result<Query<ReportQuery>, QueryRejection>) -> Result<impl IntoResponse, ApiError> {
    let q = crate::query(q)?;
    Ok(Json(ember.quality_report(&q, &Default::default()).await?))
}

pub(crate) async fn dashboard() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            // Everything is inline; the page talks only to this origin.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        DASHBOARD_HTML,
    )
}
