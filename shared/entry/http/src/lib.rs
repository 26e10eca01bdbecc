//! # ember-http — the HTTP API
//!
//! One [`axum::Router`] serves every route, so `ember dev` and the Lambda functions answer
//! identically. Errors have one stable shape: `{"error": {"code": "...", "message": "..."}}`.
//!
//! | Route | Who may call it |
//! |---|---|
//! | `POST /v1/events` (and its CORS preflight) | a write key (header or `write_key` in the body), from its allowed origins |
//! | `GET /v1/leads…`, `DELETE /v1/leads/{id}`, reports | an admin key |
//! | `POST /v1/crm/feedback` | the CRM, signed with `EMBER_CRM_SECRET` (Standard Webhooks headers) |
//! | `GET`/`POST /v1/unsubscribe?token=` | anyone holding a signed token from an email |
//! | `GET /v1/openapi.yaml`, `GET /v1/ember.js` (the tracker), `GET /healthz` | anyone |
//!
//! Every response carries `Strict-Transport-Security`, `X-Content-Type-Options: nosniff`,
//! `X-Frame-Options: DENY` and, unless its route sets its own, `Cache-Control: no-store` (admin
//! JSON holds personal data: no browser or proxy may keep it) and [`PAGE_CSP`] (no framing, no
//! script; the unsubscribe pages' style by hash). CORS is answered here for ingest only: the
//! admin routes answer no cross-origin request, on every platform.


pub mod auth;
mod events;
mod feedback;
mod leads;

pub use auth::{ApiKeys, KeyError, KeyKind, WriteAccess};
pub use leads::lead_document;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use ember_service::Ember;
use serde_json::json;
use std::sync::{Arc, LazyLock};

mod reports;

/// Largest request body any route accepts, in bytes (256 KiB); a larger one gets 413.
pub const MAX_BODY: usize = 256 * 1024;

/// The OpenAPI 3.1 description of this API (`docs/openapi.yaml`), served at `/v1/openapi.yaml`.
pub const OPENAPI: &str = include_str!("../../../../docs/openapi.yaml");

/// The website tracker (`tracker/ember.js`), served at `/v1/ember.js`.
pub const TRACKER: &str = include_str!("../../../../tracker/ember.js");

/// `Strict-Transport-Security` of every response: HTTPS only for two years, subdomains included.
pub const HSTS: &str = "max-age=63072000; includeSubDomains";

/// The Content-Security-Policy of every response whose route sets none (JSON, errors, the
/// unsubscribe pages): nothing may load, run or frame it; only the pages' own style applies.
pub static PAGE_CSP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; style-src '{}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        csp_hash(feedback::PAGE_STYLE)
    )
});

/// A CSP source for an inline element: `sha256-` and the base64 SHA-256 of its exact text.
pub fn csp_hash(text: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    format!("sha256-{}", base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(text.as_bytes())))
}

/// Adds the headers every response carries (see the crate documentation).
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        if let Ok(v) = HeaderValue::from_str(&PAGE_CSP) {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    resp
}

/// What the router needs besides the services: keys and the CRM's signing secret.
#[derive(Debug, Clone, Default)]
pub struct ApiConfig {
    /// Write and admin keys (hashes).
    pub keys: ApiKeys,
    /// The CRM's feedback signing secret (`whsec_…`); without it CRM feedback is refused.
    pub crm_secret: Option<String>,
}

impl ApiConfig {
    /// Reads `EMBER_WRITE_KEYS`, `EMBER_ADMIN_KEYS` and `EMBER_CRM_SECRET` through `get` (the
    /// environment, or a secret on AWS). A CRM secret that is set must be a valid `whsec_…`
    /// secret: a bad one is refused here, at start, not at the first feedback.
    pub fn from_settings(get: impl Fn(&str) -> Option<String>) -> Result<ApiConfig, KeyError> {
        let keys = ApiKeys::parse(&get("EMBER_WRITE_KEYS").unwrap_or_default(), &get("EMBER_ADMIN_KEYS").unwrap_or_default())?;
        let crm_secret = get("EMBER_CRM_SECRET").map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        if let Some(s) = &crm_secret {
            ember_service::signing::secret_key(s).map_err(|_| KeyError::CrmSecret)?;
        }
        Ok(ApiConfig { keys, crm_secret })
    }
}

/// An API error with its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// An error answered as `status` with `{"error": {"code", "message"}}`; `code` is the stable, machine-readable part.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }

    /// 404 for a lead.
    pub(crate) fn no_lead() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such lead")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(json!({"error": {"code": self.code, "message": self.message}}))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<ember_service::ServiceError> for ApiError {
    fn from(e: ember_service::ServiceError) -> ApiError {
        use ember_service::ServiceError as E;
        match e {
            E::NotFound => ApiError::no_lead(),
            E::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, "invalid", m),
            E::BatchTooLarge(_) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large", e.to_string()),
            E::Contention(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()),
            E::Store(s) => {
                tracing::error!(error = %s, "store error");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "storage is unavailable; retry later")
            }
        }
    }
}

impl From<ember_service::ports::StoreError> for ApiError {
    fn from(e: ember_service::ports::StoreError) -> ApiError {
        ApiError::from(ember_service::ServiceError::from(e))
    }
}

/// A query string, or a 400 in the API's error shape naming what is wrong with it.
pub(crate) fn query<T>(q: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>) -> Result<T, ApiError> {
    q.map(|axum::extract::Query(v)| v).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid", e.body_text()))
}

/// The bearer token of a request, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

async fn require_admin(State(config): State<Arc<ApiConfig>>, req: Request, next: Next) -> Response {
    match bearer(req.headers()) {
        Some(key) if config.keys.is_admin(key) => next.run(req).await,
        Some(_) => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "this key is not an admin key").into_response(),
        None => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "send an admin key: `Authorization: Bearer ek_a_…`")
            .into_response(),
    }
}

/// Routes that take an admin key, for another module to add to (their state is [`Ember`]).
pub fn admin_routes() -> Router<Ember> {
    Router::new()
        .route("/v1/leads", get(leads::find))
        .route("/v1/leads/{id}", get(leads::get).delete(leads::erase))
        .route("/v1/leads/{id}/timeline", get(leads::timeline))
        .merge(reports::routes())
}

/// The router over the services.
pub fn router(ember: Ember, config: ApiConfig) -> Router {
    let config = Arc::new(config);
    let admin = admin_routes().route_layer(middleware::from_fn_with_state(config.clone(), require_admin));
    let public = Router::new()
        .route("/v1/events", post(events::post).options(events::preflight))
        .route("/v1/crm/feedback", post(feedback::crm))
        .route("/v1/unsubscribe", get(feedback::unsubscribe_page).post(feedback::unsubscribe))
        .route("/v1/openapi.yaml", get(|| async { ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI) }))
        .route(
            "/v1/ember.js",
            get(|| async {
                ([(header::CONTENT_TYPE, "application/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], TRACKER)
            }),
        )
        .route("/dashboard", get(reports::dashboard))
        .route("/healthz", get(|| async { Json(json!({"ok": true})) }));
    admin
        .merge(public)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
        })
        .layer(Extension(config))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(security_headers))
        .with_state(ember)
}
