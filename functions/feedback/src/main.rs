//! The `feedback` function: SES events from EventBridge (see `ember_lambda::ses_events`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), ember_lambda::serve::Error> {
    ember_lambda::serve::feedback().await
}
