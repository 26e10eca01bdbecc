//! The main loop of each function: build the stack once, then serve invocations.

use crate::{AwsServices, bus_events, edge, schedule, ses_events};
pub use lambda_runtime::Error;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use std::sync::Arc;

/// A function's `main`: prepares the process (before any thread starts: see
/// [`ember_aws::sdk::use_system_ca_bundle`]), then runs `serve` — one of [`http`],
/// [`scheduled`], [`feedback`], [`handoff`] — on a single-threaded runtime (one invocation at a
/// time per container).
pub fn main<F, Fut>(serve: F) -> Result<(), Error>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    // SAFETY: nothing but this thread exists yet; the runtime is built below.
    unsafe { ember_aws::sdk::use_system_ca_bundle() };
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(serve())
}

/// Builds the stack once per container (logging why, without secrets, when it cannot).
async fn services() -> Result<Arc<AwsServices>, Error> {
    crate::init_logs();
    match AwsServices::from_env().await {
        Ok(s) => Ok(Arc::new(s)),
        Err(e) => {
            tracing::error!(error = %e, "the function cannot start");
            Err(e.into())
        }
    }
}

/// `ingest` and `api`: the HTTP router behind API Gateway.
pub async fn http() -> Result<(), Error> {
    let services = services().await?;
    // `lambda_http::run`, with each event made safe for its translation first.
    let service = tower::ServiceBuilder::new()
        .map_request(|ev: LambdaEvent<lambda_http::request::LambdaRequest>| LambdaEvent { payload: crate::http::safe_request(ev.payload), context: ev.context })
        .service(lambda_http::Adapter::from(crate::http::router(&services)));
    lambda_runtime::run(service).await
}

/// `decay` and `drip`: Scheduler invocations.
pub async fn scheduled() -> Result<(), Error> {
    let services = services().await?;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<schedule::Invocation>| {
        let services = services.clone();
        async move {
            let deadline = schedule::deadline_from_millis(ev.context.deadline);
            let function = match ev.payload.job {
                schedule::Job::Decay => "decay",
                schedule::Job::Drip => "drip",
            };
            schedule::run(&services, &ev.payload, deadline).await.outcome().map_err(|e| edge::failed(function, e.retry(), &e))
        }
    }))
    .await
}

/// `feedback`: SES events from EventBridge.
pub async fn feedback() -> Result<(), Error> {
    let services = services().await?;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| {
        let services = services.clone();
        async move { ses_events::handle(&services, &ev.payload).await.map_err(|e| edge::failed("feedback", e.retry(), &e)) }
    }))
    .await
}

/// `handoff`: domain messages from the bus.
pub async fn handoff() -> Result<(), Error> {
    let services = services().await?;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| {
        let services = services.clone();
        async move { bus_events::handle(&services, &ev.payload).await.map_err(|e| edge::failed("handoff", e.retry(), &e)) }
    }))
    .await
}
