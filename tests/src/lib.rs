//! What Ember's end-to-end tests share. The tests themselves live in one target of the `ember`
//! package, `cli/tests/e2e/` (the crash tests, which need a build with failpoints, in
//! `cli/tests/kills.rs`); scenario files in `tests/scenarios/`.
//!
//! - [`dev`]: a spawned `ember dev` on a loopback port over a data folder, configured with
//!   hashed keys like in production, waited for until it answers, killed when dropped; its
//!   API called with a key;
//! - [`service`]: the example models, the start time and events of the in-process tests;
//! - [`moto_table`]: a fresh DynamoDB table on moto.
//!
//! The `ember` binary is the caller's to name (`env!("CARGO_BIN_EXE_ember")`, which Cargo gives
//! only to the tests of the package that owns it).

#![deny(missing_docs)]

pub mod dev;
pub mod service;

use std::path::{Path, PathBuf};

/// The repository's root: where `ember` finds `examples/` and `tests/scenarios/`.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `ember` command `bin`, run from the repository's root (where the tests' relative paths,
/// `examples/…` and `tests/scenarios/…`, point).
pub fn command(bin: &str) -> std::process::Command {
    let mut c = std::process::Command::new(bin);
    c.current_dir(root());
    c
}

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
