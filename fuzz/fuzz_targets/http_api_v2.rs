//! API Gateway HTTP API (payload format 2.0) events → the `http::Request` the router of the
//! `ingest` and `api` functions gets: `lambda_http`'s own deserialization, Ember's
//! [`safe_request`] and `lambda_http`'s translation, as `ember_lambda::serve::http` runs them
//! for each invocation. No input may panic.
#![no_main]

use ember_lambda::http::safe_request;
use lambda_http::request::LambdaRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = serde_json::from_slice::<LambdaRequest>(data) else { return };
    let req = lambda_http::Request::from(safe_request(event));
    // What the router reads: method, path and query, headers, body.
    let _ = (req.method(), req.uri().path(), req.uri().query());
    for (name, value) in req.headers() {
        let _ = (name.as_str(), value.to_str());
    }
    let _ = req.body().as_ref().len();
});
