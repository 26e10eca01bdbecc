//! The `api` function: the HTTP API behind API Gateway (see `ember_lambda::http`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), ember_lambda::serve::Error> {
    ember_lambda::serve::http().await
}
