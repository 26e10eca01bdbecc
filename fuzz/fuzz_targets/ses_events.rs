//! SES events from EventBridge: the envelope JSON → the lead event `feedback` ingests →
//! validation. No input may panic.
#![no_main]

use ember_lambda::ses_events::to_lead_event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(envelope) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    if let Ok(Ok(raw)) = to_lead_event(&envelope) {
        let now = "2026-03-02T09:00:00Z".parse().unwrap();
        let _ = raw.validate(now, || "generated".into());
    }
});
