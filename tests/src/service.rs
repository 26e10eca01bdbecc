//! Inputs of the in-process tests of the services: the example models, the scenarios' start
//! time, events from JSON.

use ember_scoring::{Model, RawEvent, Time};
use std::sync::Arc;

/// `examples/<file>`, loaded and checked (panics on a mistake: the examples are valid).
pub fn example_model(file: &str) -> Arc<Model> {
    Arc::new(ember_service::model_files::load_model(&crate::root().join("examples").join(file)).unwrap())
}

/// Monday 2 March 2026, 09:00 UTC: where the tests' clocks start.
pub fn start() -> Time {
    "2026-03-02T09:00:00Z".parse().unwrap()
}

/// An event as a client would send it.
pub fn raw(v: serde_json::Value) -> RawEvent {
    serde_json::from_value(v).unwrap()
}
