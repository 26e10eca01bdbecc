//! A message EventBridge can never take must not hold back the others, or make every later
//! run publish the whole outbox again. The peer is a local HTTP server speaking EventBridge's
//! `PutEvents` protocol (JSON 1.1) with the service's limits: a request over 256 KB in all is
//! refused as a whole (`ValidationException`), and an entry whose detail is malformed is
//! refused alone (`MalformedDetail`). moto takes any size, so it cannot stand in here.

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use ember_aws::EventBridgeBus;
use ember_scoring::lead::Message;
use ember_service::ports::Bus;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Message ids EventBridge accepted, and how many requests it got.
#[derive(Default)]
struct Seen {
    accepted: Vec<String>,
    requests: usize,
}

async fn eventbridge() -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    let app = axum::Router::new().fallback(axum::routing::post(move |headers: HeaderMap, body: String| {
        let s = s.clone();
        async move {
            assert_eq!(headers.get("x-amz-target").and_then(|v| v.to_str().ok()), Some("AWSEvents.PutEvents"));
            let req: Value = serde_json::from_str(&body).unwrap();
            let entries = req["Entries"].as_array().cloned().unwrap_or_default();
            let mut seen = s.lock().unwrap();
            seen.requests += 1;
            let str_len = |e: &Value, k: &str| e[k].as_str().map_or(0, str::len);
            let total: usize = entries
                .iter()
                .map(|e| if e.get("Time").is_some() { 14 } else { 0 } + str_len(e, "Source") + str_len(e, "DetailType") + str_len(e, "Detail"))
                .sum();
            let json11 = [("content-type", "application/x-amz-json-1.1")];
            if entries.len() > 10 || total > 256 * 1024 {
                let err = json!({"__type": "ValidationException", "message": "Total size of the entries in the request is over the limit."});
                return (StatusCode::BAD_REQUEST, json11, err.to_string()).into_response();
            }
            let mut failed = 0;
            let results: Vec<Value> = entries
                .iter()
                .map(|e| {
                    let detail: Value = serde_json::from_str(e["Detail"].as_str().unwrap_or("")).unwrap_or(Value::Null);
                    if detail["data"]["malformed"] == true {
                        failed += 1;
                        json!({"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."})
                    } else {
                        seen.accepted.push(detail["id"].as_str().unwrap_or("").to_string());
                        json!({"EventId": format!("ev-{}", seen.accepted.len())})
                    }
                })
                .collect();
            (StatusCode::OK, json11, json!({"FailedEntryCount": failed, "Entries": results}).to_string()).into_response()
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

fn bus(endpoint: &str) -> EventBridgeBus {
    let conf = aws_sdk_eventbridge::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_eventbridge::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_eventbridge::config::Credentials::new("test", "test", None, None, "static"))
        .http_client(ember_aws::sdk::http_client())
        .build();
    EventBridgeBus::new(aws_sdk_eventbridge::Client::from_conf(conf), "ember-test").with_first_backoff(Duration::from_millis(1))
}

fn message(id: &str, data: Value) -> Message {
    Message { id: id.into(), kind: ember_scoring::lead::MessageKind::StageChanged, at: chrono::Utc::now(), lead_id: "ld".into(), data }
}

#[tokio::test]
async fn a_message_eventbridge_can_never_take_does_not_block_the_others() {
    let (endpoint, seen) = eventbridge().await;
    let bus = bus(&endpoint);
    let big = "x".repeat(300 * 1024);
    let messages = vec![
        message("m-big", json!({"notes": big})),
        message("m-1", json!({})),
        message("m-bad", json!({"malformed": true})),
        message("m-2", json!({})),
    ];
    bus.publish(&messages).await.expect("what can be published is; what never can is dropped, not retried forever");
    assert_eq!(seen.lock().unwrap().accepted, ["m-1", "m-2"]);
    // Published again (as a retried run would), the good ones arrive again and nothing fails.
    bus.publish(&messages).await.expect("still no error");
}

#[tokio::test]
async fn requests_are_grouped_to_fit_256_kb() {
    let (endpoint, seen) = eventbridge().await;
    let bus = bus(&endpoint);
    // Six messages of 60 KB: each fits, the six together do not.
    let chunk = "y".repeat(60 * 1024);
    let messages: Vec<Message> = (0..6).map(|i| message(&format!("m-{i}"), json!({"notes": chunk}))).collect();
    bus.publish(&messages).await.expect("every message fits in some request");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.accepted, ["m-0", "m-1", "m-2", "m-3", "m-4", "m-5"]);
    assert!(seen.requests >= 2, "split into requests under the limit: {}", seen.requests);
}
