//! The `handoff` function: domain messages from the bus to CRM webhooks (see `ember_lambda::bus_events`).

fn main() -> Result<(), ember_lambda::serve::Error> {
    ember_lambda::serve::main(ember_lambda::serve::handoff)
}
