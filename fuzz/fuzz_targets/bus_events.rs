//! Domain messages from the bus: the EventBridge envelope JSON → the Ember message `handoff`
//! delivers. No input may panic; a message read back from its JSON is the same message.
#![no_main]

use ember_lambda::bus_events::message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(envelope) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    if let Ok(m) = message(&envelope) {
        let again: ember_scoring::lead::Message = serde_json::from_value(serde_json::to_value(&m).unwrap()).expect("a message reads back");
        assert_eq!(again, m);
    }
});
