//! The `handoff` function: domain messages from the bus to CRM webhooks (see `ember_lambda::bus_events`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), ember_lambda::serve::Error> {
    ember_lambda::serve::handoff().await
}
