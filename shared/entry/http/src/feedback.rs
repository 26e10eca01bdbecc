//! Routes called from outside Ember's users' code: CRM feedback (signed like our webhooks) and
//! the unsubscribe link of every email.

use crate::{ApiConfig, ApiError};
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json};
use ember_service::signing::{self, SigningError};
use ember_service::{CrmFeedback, Ember, FeedbackOutcome, ServiceError};
use serde::Deserialize;
use std::sync::Arc;

/// How far a CRM request's timestamp may be from now.
pub const CRM_TOLERANCE_SECS: i64 = 300;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// `POST /v1/crm/feedback`, signed with `EMBER_CRM_SECRET` (Standard Webhooks: `webhook-id`,
/// `webhook-timestamp`, `webhook-signature` over the raw body; 5 minutes of tolerance).
/// Applied once per `webhook-id`: the answer is the lead document with `"feedback": "applied"`,
/// or `"duplicate"` for a request already applied (which changes nothing).
pub(crate) async fn crm(
    State(ember): State<Ember>,
    Extension(config): Extension<Arc<ApiConfig>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(secret) = &config.crm_secret else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_configured",
            "CRM feedback is not configured: set EMBER_CRM_SECRET",
        ));
    };
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid", "the body is not UTF-8"))?;
    let now = ember.clock().now().timestamp();
    signing::verify(
        secret,
        header(&headers, "webhook-id"),
        header(&headers, "webhook-timestamp"),
        header(&headers, "webhook-signature"),
        text,
        now,
        CRM_TOLERANCE_SECS,
    )
    .map_err(|e| match e {
        SigningError::BadSecret => {
            tracing::error!("EMBER_CRM_SECRET is not a valid signing secret");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_configured", "the CRM secret is misconfigured")
        }
        other => ApiError::new(StatusCode::UNAUTHORIZED, "bad_signature", other.to_string()),
    })?;
    let fb: CrmFeedback = serde_json::from_str(text)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", format!("not a feedback object: {e}")))?;
    // The signature covers the `webhook-id`: it is the request's idempotency key (SPEC §3).
    let outcome = ember.feedback.crm_once(&fb, header(&headers, "webhook-id")).await?;
    let (lead, verdict) = match &outcome {
        FeedbackOutcome::Applied(lead) => {
            tracing::info!(lead_id = %lead.id, action = %fb.action, "CRM feedback applied");
            (lead, "applied")
        }
        FeedbackOutcome::Duplicate(lead) => {
            tracing::info!(lead_id = %lead.id, action = %fb.action, "CRM feedback already applied (same webhook-id): nothing changed");
            (lead, "duplicate")
        }
    };
    let mut doc = crate::lead_document(&ember, lead);
    if let Some(map) = doc.as_object_mut() {
        map.insert("feedback".into(), verdict.into());
    }
    Ok(Json(doc).into_response())
}

/// The `token` query parameter.
#[derive(Debug, Deserialize)]
pub(crate) struct Token {
    #[serde(default)]
    token: Option<String>,
}

/// The inline style of the unsubscribe pages (allowed by its hash in [`crate::PAGE_CSP`]).
pub(crate) const PAGE_STYLE: &str =
    "body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}button{font:inherit;padding:.5rem 1.25rem}";

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title>\
         <style>{PAGE_STYLE}</style></head><body><h1>{title}</h1>{body}</body></html>"
    );
    (status, Html(html)).into_response()
}

fn invalid_link() -> Response {
    page(StatusCode::BAD_REQUEST, "This link is not valid", "<p>It may have been cut short by your email program. Open the link from the email again.</p>")
}

/// `GET /v1/unsubscribe?token=`: a confirmation page. It changes nothing, so link scanners that
/// fetch every URL in an email never unsubscribe anyone.
pub(crate) async fn unsubscribe_page(State(ember): State<Ember>, q: Result<Query<Token>, QueryRejection>) -> Response {
    let Some(token) = q.ok().and_then(|Query(q)| q.token).filter(|t| !t.is_empty()) else { return invalid_link() };
    if ember.composer().verify_unsubscribe(&token).is_none() {
        return invalid_link();
    }
    let token = html_escape(&token);
    page(
        StatusCode::OK,
        "Unsubscribe",
        &format!(
            "<p>Stop receiving these emails?</p><form method=\"post\" action=\"?token={token}\">\
             <input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\"><button type=\"submit\">Unsubscribe</button></form>"
        ),
    )
}

/// `POST /v1/unsubscribe?token=`: RFC 8058 one-click unsubscribe (and the page's button).
pub(crate) async fn unsubscribe(State(ember): State<Ember>, q: Result<Query<Token>, QueryRejection>) -> Response {
    let Some(token) = q.ok().and_then(|Query(q)| q.token).filter(|t| !t.is_empty()) else { return invalid_link() };
    match ember.feedback.unsubscribe(&token).await {
        Ok(lead) => {
            tracing::info!(lead_id = %lead.id, "unsubscribed by link");
            done()
        }
        // Erased since the email was sent: nothing will be sent to it anyway.
        Err(ServiceError::NotFound) => done(),
        Err(ServiceError::Invalid(_)) => invalid_link(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

fn done() -> Response {
    page(StatusCode::OK, "You are unsubscribed", "<p>You will not receive these emails any more.</p>")
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}
