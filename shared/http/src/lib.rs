//! # ember-http — the HTTP API
//!
//! One [`axum::Router`] serves every route, so `ember dev` and the Lambda functions answer
//! identically. Errors have one stable shape: `{"error": {"code": "...", "message": "..."}}`.

#![warn(missing_docs)]

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ember_scoring::{Lead, RawEvent};
use ember_service::ports::Identity;
use ember_service::{Ember, IngestStatus, MAX_BATCH};
use serde::Deserialize;
use serde_json::{json, Value};

mod reports;

/// Largest request body.
pub const MAX_BODY: usize = 256 * 1024;

/// An API error with its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": {"code": self.code, "message": self.message}}))).into_response()
    }
}

impl From<ember_service::ServiceError> for ApiError {
    fn from(e: ember_service::ServiceError) -> ApiError {
        use ember_service::ServiceError as E;
        match e {
            E::NotFound => ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such lead"),
            E::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, "invalid", m),
            E::Contention(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()),
            E::Store(s) => {
                tracing::error!(error = %s, "store error");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "storage is unavailable; retry later")
            }
        }
    }
}

/// The router over the services.
pub fn router(ember: Ember) -> Router {
    Router::new()
        .route("/v1/events", post(post_events))
        .route("/v1/leads", get(find_lead))
        .route("/v1/leads/{id}", get(get_lead))
        .route("/v1/leads/{id}/timeline", get(timeline))
        .route("/healthz", get(|| async { Json(json!({"ok": true})) }))
        .merge(reports::routes())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(ember)
}

fn json_error(e: JsonRejection) -> ApiError {
    match e {
        JsonRejection::BytesRejection(_) => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("the body is larger than {} KiB", MAX_BODY / 1024))
        }
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "content_type", "send `Content-Type: application/json`")
        }
        other => ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", other.body_text()),
    }
}

async fn post_events(State(ember): State<Ember>, body: Result<Json<Value>, JsonRejection>) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(json_error)?;
    let (raws, batch): (Vec<Value>, bool) = match body {
        Value::Object(mut o) if o.contains_key("batch") => match o.remove("batch") {
            Some(Value::Array(items)) => (items, true),
            _ => return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid", "`batch` must be a list of events")),
        },
        v @ Value::Object(_) => (vec![v], false),
        _ => return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid", "send one event (an object) or {\"batch\": [...]}")),
    };
    if raws.len() > MAX_BATCH {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("a batch holds at most {MAX_BATCH} events; this one has {}", raws.len()),
        ));
    }
    let mut results = Vec::with_capacity(raws.len());
    for v in raws {
        let status = match serde_json::from_value::<RawEvent>(v) {
            Ok(raw) => ember.ingest(&raw).await,
            Err(e) => IngestStatus::Rejected { event_id: None, reason: format!("not an event object: {e}") },
        };
        results.push(status);
    }
    let count = |f: fn(&IngestStatus) -> bool| results.iter().filter(|s| f(s)).count();
    let accepted = count(|s| matches!(s, IngestStatus::Accepted { .. }));
    let duplicate = count(|s| matches!(s, IngestStatus::Duplicate { .. }));
    let rejected = count(|s| matches!(s, IngestStatus::Rejected { .. }));
    let status = if !batch && rejected == 1 { StatusCode::BAD_REQUEST } else { StatusCode::ACCEPTED };
    Ok((status, Json(json!({"accepted": accepted, "duplicate": duplicate, "rejected": rejected, "results": results})))
        .into_response())
}

/// The lead document: the stored lead plus its explanation fields.
pub fn lead_document(ember: &Ember, lead: &Lead) -> Value {
    let engine = ember.engine();
    let model = engine.model();
    let breakdown: Value = model
        .scores
        .iter()
        .map(|g| {
            let earned = lead.earned.get(&g.name).copied().unwrap_or(0);
            let profile = lead.profile.get(&g.name).copied().unwrap_or(0);
            let total = lead.scores.get(&g.name).copied().unwrap_or(g.initial);
            (
                g.name.clone(),
                json!({"initial": g.initial, "behaviour": earned, "profile": profile, "total": total, "min": g.min, "max": g.max}),
            )
        })
        .collect::<serde_json::Map<String, Value>>()
        .into();
    let due = engine.due(lead);
    json!({
        "id": lead.id,
        "email": lead.email,
        "anonymous_ids": lead.anonymous_ids,
        "stage": lead.stage,
        "scores": lead.scores,
        "score_breakdown": breakdown,
        "temperature": engine.temperature_of(lead),
        "quadrant": engine.quadrant_of(lead),
        "tags": lead.tags,
        "traits": lead.traits,
        "subscribed": lead.email.is_some() && lead.consent.subscribed(),
        "consent": lead.consent,
        "stage_history": lead.stage_history,
        "profile_rules": lead.profile_rules,
        "campaigns": lead.enrollments,
        "handoff": lead.handoff,
        "crm": lead.crm,
        "first_touch": lead.first_touch,
        "last_touch": lead.last_touch,
        "created_at": lead.created_at,
        "last_activity_at": lead.last_activity_at,
        "event_count": lead.event_count,
        "merged_from": lead.merged_from,
        "next_due": due,
    })
}

async fn get_lead(State(ember): State<Ember>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let lead = ember.lead(&id).await?.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such lead"))?;
    Ok(Json(lead_document(&ember, &lead)))
}

/// `GET /v1/leads?email=` or `?anonymous_id=`.
#[derive(Debug, Deserialize)]
struct FindLead {
    email: Option<String>,
    anonymous_id: Option<String>,
}

async fn find_lead(State(ember): State<Ember>, Query(q): Query<FindLead>) -> Result<Json<Value>, ApiError> {
    let identity = match (q.email, q.anonymous_id) {
        (Some(e), _) => Identity::Email(
            ember_scoring::event::normalize_email(&e).map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, "invalid", m))?,
        ),
        (None, Some(a)) => Identity::Anonymous(a),
        (None, None) => return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid", "give `email` or `anonymous_id`")),
    };
    let lead = ember.lead_by(&identity).await?.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such lead"))?;
    Ok(Json(lead_document(&ember, &lead)))
}

async fn timeline(State(ember): State<Ember>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let lead = ember.lead(&id).await?.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such lead"))?;
    // Anonymous profiles merged into this lead keep their events under their own ids.
    let mut events = Vec::new();
    for pid in std::iter::once(&lead.id).chain(lead.merged_from.iter()) {
        events.extend(ember.store().events(pid).await.map_err(ember_service::ServiceError::from)?);
    }
    events.sort_by(|a, b| (a.event.at, a.received_at).cmp(&(b.event.at, b.received_at)));
    Ok(Json(json!({"lead_id": lead.id, "scores": lead.scores, "events": events})))
}
