//! End-to-end tests live in `tests/tests/`; scenario files in `tests/scenarios/`. This library
//! holds what several of them need.

/// A fresh DynamoDB table named `<prefix>-<random>` on moto (`EMBER_MOTO_ENDPOINT`, which
/// `scripts/test` starts), created with the schema the stack declares; its client and name.
pub async fn moto_table(prefix: &str) -> (aws_sdk_dynamodb::Client, String) {
    let endpoint = std::env::var("EMBER_MOTO_ENDPOINT").expect("EMBER_MOTO_ENDPOINT (scripts/moto)");
    let conf = ember_aws::sdk_loader()
        .region("us-east-1")
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "static"))
        .load()
        .await;
    let client = aws_sdk_dynamodb::Client::new(&conf);
    let table = format!("{prefix}-{}", uuid::Uuid::new_v4().simple());
    ember_store_dynamodb::create_table(&client, &table).await.expect("table");
    (client, table)
}
