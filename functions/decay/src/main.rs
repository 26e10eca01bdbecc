//! The `decay` function: EventBridge Scheduler runs (see `ember_lambda::schedule`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), ember_lambda::serve::Error> {
    ember_lambda::serve::scheduled().await
}
