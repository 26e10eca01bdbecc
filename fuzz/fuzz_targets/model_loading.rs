//! The model loader: YAML text → a validated [`Model`] or named errors, never a panic.
//! The text is loaded with no sources: `${VAR}` references resolve to nothing and template file
//! paths are unreadable, so the target reads no environment and no file.
#![no_main]

use ember_scoring::{Engine, Model};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Model::from_yaml_str(text, "fuzz.yaml") {
        Ok(model) => {
            // A model that loads builds an engine and a first lead.
            let eng = Engine::new(Arc::new(model));
            let lead = eng.new_lead("ld_fuzz", "2026-03-02T09:00:00Z".parse().unwrap());
            let _ = eng.due(&lead);
        }
        Err(errors) => assert!(!errors.0.is_empty(), "a refused model names at least one error"),
    }
});
