//! `POST /v1/events` bodies: JSON → [`RawEvent`] (one event or a batch) → validation → the
//! engine of the example model. No input may panic; an accepted event is never more than
//! five minutes in the future, and scores stay within their bounds after it is applied.
#![no_main]

use ember_scoring::{Engine, Model, RawEvent, Time};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, LazyLock};

static ENGINE: LazyLock<Engine> = LazyLock::new(|| {
    let text = include_str!("../../examples/b2b-saas.yaml");
    Engine::new(Arc::new(Model::from_yaml_str(text, "b2b-saas.yaml").expect("the example model is valid")))
});

fn now() -> Time {
    "2026-03-02T09:00:00Z".parse().unwrap()
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let items = match value.get("batch").and_then(|b| b.as_array()) {
        Some(batch) => batch.clone(),
        None => vec![value],
    };
    let eng = &*ENGINE;
    let mut lead = eng.new_lead("ld_fuzz", now());
    for item in items.into_iter().take(100) {
        let Ok(raw) = serde_json::from_value::<RawEvent>(item) else { continue };
        let Ok(event) = raw.validate(now(), || "generated".into()) else { continue };
        assert!(event.at <= now() + chrono::Duration::minutes(5), "accepted an event from the future");
        eng.ingest(&mut lead, &event);
        for g in &eng.model().scores {
            let s = lead.scores[&g.name];
            assert!(s >= g.min && s <= g.max, "{} = {s} outside its bounds", g.name);
        }
    }
    let _ = serde_json::to_vec(&lead).expect("a lead serializes");
});
