//! Hello world on Lambda: answers every invocation with `{"hello": "world"}`. The floor that
//! Ember's functions' cold starts are compared with (scripts/coldstart).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_ev: LambdaEvent<Value>| async { Ok::<_, Error>(json!({"hello": "world"})) })).await
}
