//! Report routes and the dashboard.
//!
//! - `GET /v1/reports/funnel`, `/v1/reports/campaigns`, `/v1/reports/quality`: JSON reports
//!   (`ember_reports` structs) for `from` / `to` (`YYYY-MM-DD` or `YYYY-MM`; default: the last
//!   twelve months up to today in the model's time zone), `by=channel|cohort` (funnel), and
//!   `costs=source/medium=amount,…` (quality). Admin routes, like every `/v1` route but ingest.
//! - `GET /dashboard`: one self-contained page (HTML, JS and inline SVG charts; nothing loaded
//!   from elsewhere). It asks for the admin key, keeps it in a variable only (never in
//!   `sessionStorage` or `localStorage`, which browsers write to disk and copy into new tabs; a
//!   reload asks again), and fetches the three JSON reports with `Authorization: Bearer <key>`;
//!   every number it draws is carried in `data-*` attributes and text labels, so a browser test
//!   can compare it with the JSON. Its Content-Security-Policy allows exactly its own inline
//!   script and style, by their SHA-256 hashes (no `'unsafe-inline'`).

use crate::ApiError;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use ember_service::{Ember, ReportQuery};
use std::sync::LazyLock;

/// The page served at `GET /dashboard` (`dashboard.html`, built in): it draws the reports from the JSON API.
pub const DASHBOARD_HTML: &str = include_str!("dashboard.html");

/// The dashboard's Content-Security-Policy: its inline `<script>` and `<style>` by hash, requests
/// to this origin only, no framing.
pub static DASHBOARD_CSP: LazyLock<String> = LazyLock::new(|| {
    let script = crate::csp_hash(inline(DASHBOARD_HTML, "script"));
    let style = crate::csp_hash(inline(DASHBOARD_HTML, "style"));
    format!(
        "default-src 'none'; script-src '{script}'; style-src '{style}'; img-src data:; connect-src 'self'; \
         form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    )
});

/// The text of the page's one `<tag>…</tag>` element (exactly what the browser hashes).
fn inline<'a>(html: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = html.find(&open).map(|i| i + open.len()).unwrap_or_else(|| panic!("dashboard.html has no <{tag}>"));
    let len = html[start..].find(&format!("</{tag}>")).unwrap_or_else(|| panic!("dashboard.html has no </{tag}>"));
    &html[start..start + len]
}

/// The report routes (admin; the dashboard page itself is public and asks for the key).
pub fn routes() -> Router<Ember> {
    Router::new()
        .route("/v1/reports/funnel", get(funnel))
        .route("/v1/reports/campaigns", get(campaigns))
        .route("/v1/reports/quality", get(quality))
}

async fn funnel(State(ember): State<Ember>, q: Result<Query<ReportQuery>, QueryRejection>) -> Result<impl IntoResponse, ApiError> {
    let q = crate::query(q)?;
    Ok(Json(ember.reports.funnel(&q).await?))
}

async fn campaigns(State(ember): State<Ember>, q: Result<Query<ReportQuery>, QueryRejection>) -> Result<impl IntoResponse, ApiError> {
    let q = crate::query(q)?;
    Ok(Json(ember.reports.campaigns(&q).await?))
}

async fn quality(State(ember): State<Ember>, q: Result<Query<ReportQuery>, QueryRejection>) -> Result<impl IntoResponse, ApiError> {
    let q = crate::query(q)?;
    Ok(Json(ember.reports.quality(&q, &Default::default()).await?))
}

pub(crate) async fn dashboard() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            // Everything is inline (allowed by hash); the page talks only to this origin.
            (header::CONTENT_SECURITY_POLICY, DASHBOARD_CSP.as_str()),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        DASHBOARD_HTML,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csp_allows_the_inline_script_and_style_by_hash_only() {
        let csp = DASHBOARD_CSP.as_str();
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(csp.matches("'sha256-").count(), 2, "{csp}");
        assert!(inline(DASHBOARD_HTML, "script").contains("adminKey"));
        assert!(inline(DASHBOARD_HTML, "style").contains(":root"));
        assert_eq!(DASHBOARD_HTML.matches("<script").count(), 1, "one inline script: the hash covers it");
        assert_eq!(DASHBOARD_HTML.matches("<style").count(), 1, "one inline style: the hash covers it");
    }
}
