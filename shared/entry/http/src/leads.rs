//! Lead routes: the lead document, look-up by identity, the timeline and erasure.

use crate::ApiError;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ember_scoring::Lead;
use ember_service::ports::Identity;
use ember_service::Ember;
use serde::Deserialize;
use serde_json::{json, Value};

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

/// `GET /v1/leads/{id}`.
pub(crate) async fn get(State(ember): State<Ember>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let lead = ember.lead(&id).await?.ok_or_else(ApiError::no_lead)?;
    Ok(Json(lead_document(&ember, &lead)))
}

/// `GET /v1/leads?email=` or `?anonymous_id=`.
#[derive(Debug, Deserialize)]
pub(crate) struct FindLead {
    email: Option<String>,
    anonymous_id: Option<String>,
}

pub(crate) async fn find(
    State(ember): State<Ember>,
    q: Result<Query<FindLead>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = crate::query(q)?;
    let identity = match (q.email, q.anonymous_id) {
        (Some(e), _) => Identity::Email(
            ember_scoring::event::normalize_email(&e).map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, "invalid", m))?,
        ),
        (None, Some(a)) => Identity::Anonymous(a),
        (None, None) => return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid", "give `email` or `anonymous_id`")),
    };
    let lead = ember.lead_by(&identity).await?.ok_or_else(ApiError::no_lead)?;
    Ok(Json(lead_document(&ember, &lead)))
}

/// `GET /v1/leads/{id}/timeline`: every event with what it changed, so the score adds up.
pub(crate) async fn timeline(State(ember): State<Ember>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let lead = ember.lead(&id).await?.ok_or_else(ApiError::no_lead)?;
    // Anonymous profiles merged into this lead keep their events under their own ids.
    let mut events = Vec::new();
    for pid in std::iter::once(&lead.id).chain(lead.merged_from.iter()) {
        events.extend(ember.store().events(pid).await?);
    }
    events.sort_by(|a, b| (a.event.at, a.received_at).cmp(&(b.event.at, b.received_at)));
    Ok(Json(json!({"lead_id": lead.id, "scores": lead.scores, "events": events})))
}

/// `DELETE /v1/leads/{id}`: erasure. Every item holding the person's data — the lead, its
/// identities, its events and those of the profiles merged into it — is removed; aggregate
/// counts are kept. Idempotent: erasing an erased lead answers 404.
pub(crate) async fn erase(State(ember): State<Ember>, Path(id): Path<String>) -> Result<Response, ApiError> {
    if ember.erasure.erase(&id).await? {
        tracing::info!(lead_id = %id, "lead erased");
        Ok((StatusCode::OK, Json(json!({"erased": true, "lead_id": id}))).into_response())
    } else {
        Err(ApiError::no_lead())
    }
}
