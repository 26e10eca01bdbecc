//! `POST /v1/events` and its CORS preflight.
//!
//! Browsers send events with `navigator.sendBeacon`, which can set neither headers nor a JSON
//! content type, so the key may come in the body (`write_key`) and any `Content-Type` is read as
//! JSON. A request with an `Origin` header is answered with CORS headers only when a write key
//! allows that origin.

use crate::auth::WriteAccess;
use crate::{bearer, ApiConfig, ApiError, MAX_BODY};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ember_scoring::RawEvent;
use ember_service::{Ember, IngestStatus};
use serde_json::{json, Value};
use std::sync::Arc;

fn origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).filter(|o| !o.is_empty() && *o != "null")
}

/// Adds `Access-Control-Allow-Origin` when some write key allows the request's origin.
fn with_cors(mut resp: Response, origin: Option<&str>, config: &ApiConfig) -> Response {
    if let Some(o) = origin {
        if config.keys.origin_allowed(o) {
            if let Ok(v) = HeaderValue::from_str(o) {
                let h = resp.headers_mut();
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
                h.insert(header::VARY, HeaderValue::from_static("Origin"));
            }
        }
    }
    resp
}

/// `OPTIONS /v1/events`: the CORS preflight (it carries no key, so any write key's origins count).
pub(crate) async fn preflight(Extension(config): Extension<Arc<ApiConfig>>, headers: HeaderMap) -> Response {
    let Some(o) = origin(&headers) else {
        return (StatusCode::NO_CONTENT, [(header::ALLOW, "POST, OPTIONS")]).into_response();
    };
    if !config.keys.origin_allowed(o) {
        return ApiError::new(StatusCode::FORBIDDEN, "origin_not_allowed", "no write key allows this origin").into_response();
    }
    let resp = (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_METHODS, "POST, OPTIONS"),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, "authorization, content-type"),
            (header::ACCESS_CONTROL_MAX_AGE, "86400"),
        ],
    )
        .into_response();
    with_cors(resp, Some(o), &config)
}

/// `POST /v1/events`: one event or `{"batch": [...]}`.
pub(crate) async fn post(
    State(ember): State<Ember>,
    Extension(config): Extension<Arc<ApiConfig>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let origin = origin(&headers);
    let resp = match ingest(&ember, &config, &headers, origin, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    with_cors(resp, origin, &config)
}

async fn ingest(
    ember: &Ember,
    config: &ApiConfig,
    headers: &HeaderMap,
    origin: Option<&str>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("the body is larger than {} KiB", MAX_BODY / 1024))
        }
        _ => ApiError::new(StatusCode::BAD_REQUEST, "unreadable_body", e.body_text()),
    })?;
    let mut body: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", format!("the body is not valid JSON: {e}")))?;
    let body_key = match &mut body {
        Value::Object(o) => o.remove("write_key"),
        _ => None,
    };
    if body_key.as_ref().is_some_and(|k| !k.is_string()) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid", "`write_key` must be a string"));
    }
    let key = match (bearer(headers), &body_key) {
        (Some(k), _) => k,
        (None, Some(Value::String(k))) => k.as_str(),
        (None, _) => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send a write key: `Authorization: Bearer ek_w_…` or `\"write_key\"` in the body",
            ))
        }
    };
    match config.keys.check_write(key, origin) {
        WriteAccess::Granted => {}
        WriteAccess::Unknown => return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "unknown key")),
        WriteAccess::ForeignOrigin => {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "origin_not_allowed", "this key may not be used from this origin"))
        }
    }
    let (raws, batch): (Vec<Value>, bool) = match body {
        Value::Object(mut o) if o.contains_key("batch") => match o.remove("batch") {
            Some(Value::Array(items)) => (items, true),
            _ => return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid", "`batch` must be a list of events")),
        },
        v @ Value::Object(_) => (vec![v], false),
        _ => return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid", "send one event (an object) or {\"batch\": [...]}")),
    };
    let items = raws.into_iter().map(|v| serde_json::from_value::<RawEvent>(v).map_err(|e| format!("not an event object: {e}"))).collect();
    let results = ember.ingest.batch(items).await?;
    let count = |f: fn(&IngestStatus) -> bool| results.iter().filter(|s| f(s)).count();
    let accepted = count(|s| matches!(s, IngestStatus::Accepted { .. }));
    let duplicate = count(|s| matches!(s, IngestStatus::Duplicate { .. }));
    let rejected = count(|s| matches!(s, IngestStatus::Rejected { .. }));
    let status = if !batch && rejected == 1 { StatusCode::BAD_REQUEST } else { StatusCode::ACCEPTED };
    Ok((status, Json(json!({"accepted": accepted, "duplicate": duplicate, "rejected": rejected, "results": results})))
        .into_response())
}
