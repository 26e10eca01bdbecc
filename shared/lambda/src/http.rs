//! `ingest` and `api`: the HTTP API behind API Gateway (HTTP API, payload format 2.0).
//!
//! Both serve the one router of `ember-http` — the same routes, answers and errors as `ember
//! dev`; API Gateway sends `POST /v1/events` to `ingest` and everything else to `api`, so each
//! function's role only holds the permissions its routes need.

use crate::AwsStack;

/// The router, over the stack's services.
pub fn router(stack: &AwsStack) -> axum::Router {
    ember_http::router(stack.ember.clone(), stack.api.clone())
}
