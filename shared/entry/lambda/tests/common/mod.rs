//! What the function tests share: moto's endpoint, a stack on a fresh table, the sample events
//! of `events/`, and a fault-injecting proxy ([`proxy`]).
//!
//! These tests need moto: `scripts/test` starts it and runs ignored tests with
//! `EMBER_MOTO_ENDPOINT` set. Without it they fail; they never pass silently.

#![allow(dead_code)]

pub mod proxy;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::config::Credentials;
use axum::body::Body;
use ember_aws::Settings;
use ember_delivery::RetryPolicy;
use ember_lambda::{AwsServices, AwsConfig, StartError, http};
use ember_scoring::Lead;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tower::ServiceExt;

pub const MOTO_NEEDED: &str = "needs moto: run through scripts/test, or set EMBER_MOTO_ENDPOINT=$(scripts/moto)";

pub fn endpoint() -> String {
    match std::env::var("EMBER_MOTO_ENDPOINT") {
        Ok(e) if !e.trim().is_empty() => e,
        _ => panic!("EMBER_MOTO_ENDPOINT is not set: these tests need a moto server (`export EMBER_MOTO_ENDPOINT=$(scripts/moto)`)."),
    }
}

/// Every client on moto.
pub async fn conf() -> SdkConfig {
    ember_aws::sdk_loader()
        .region("us-east-1")
        .endpoint_url(endpoint())
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .load()
        .await
}

/// Every client on moto, except SES v2 on `ses` (the SDK's per-service endpoint setting, as
/// `AWS_ENDPOINT_URL_SESV2` would give it).
pub async fn conf_with_ses(ses: &str) -> SdkConfig {
    #[derive(Debug)]
    struct Endpoints {
        moto: String,
        ses: String,
    }
    impl aws_types::service_config::LoadServiceConfig for Endpoints {
        fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
            if key.profile() != "endpoint_url" {
                return None;
            }
            Some(if key.service_id() == "SESv2" { self.ses.clone() } else { self.moto.clone() })
        }
    }
    ember_aws::sdk_loader()
        .region("us-east-1")
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .load()
        .await
        .to_builder()
        .service_config(Endpoints { moto: endpoint(), ses: ses.to_string() })
        .build()
}

/// Every client through `url` (a proxy in front of moto).
pub async fn conf_through(url: &str) -> SdkConfig {
    ember_aws::sdk_loader()
        .region("us-east-1")
        .endpoint_url(url)
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .load()
        .await
}

pub fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..").join(path)
}

pub fn sample(name: &str) -> String {
    std::fs::read_to_string(repo(&format!("events/{name}"))).unwrap_or_else(|e| panic!("events/{name}: {e}"))
}

pub fn sample_json(name: &str) -> Value {
    serde_json::from_str(&sample(name)).unwrap_or_else(|e| panic!("events/{name} is not JSON: {e}"))
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// The example model with `edit` applied to its text, written under `dir`.
pub fn model_variant(dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(repo("examples/b2b-saas.yaml")).expect("the example model");
    let path = dir.join("model.yaml");
    std::fs::write(&path, edit(text)).expect("write the model");
    path
}

/// The stack of one test: a fresh table (and whatever else the test asks for) on moto.
pub struct Fixture {
    pub conf: SdkConfig,
    pub services: AwsServices,
    pub cfg: AwsConfig,
    pub settings: Settings,
}

#[derive(Default)]
pub struct Options {
    pub bus: Option<String>,
    pub dead_letter_queue: Option<String>,
    pub secret: Option<Value>,
    /// Another model than `examples/b2b-saas.yaml`.
    pub model: Option<PathBuf>,
}

pub async fn fixture(opts: Options) -> Fixture {
    try_fixture(opts).await.expect("services")
}

/// [`fixture`], answering why the stack does not start when it does not.
pub async fn try_fixture(opts: Options) -> Result<Fixture, StartError> {
    let conf = conf().await;
    let table = unique("ember-fn-test");
    ember_store_dynamodb::create_table(&aws_sdk_dynamodb::Client::new(&conf), &table).await.expect("create table");
    let cfg = AwsConfig {
        model: opts.model.unwrap_or_else(|| repo("examples/b2b-saas.yaml")),
        table,
        bus: opts.bus,
        configuration_set: None,
        public_url: "https://api.ember.example".into(),
        dead_letter_queue: opts.dead_letter_queue,
        webhook_retry: RetryPolicy::new(vec![Duration::from_millis(10), Duration::from_millis(20)]),
    };
    // The sample requests' keys (events/http-*.json), configured as hashes like in production.
    let mut secret = json!({
        "EMBER_UNSUBSCRIBE_SECRET": "test-unsubscribe-secret",
        "EMBER_WRITE_KEYS": format!("{}@https://www.example.com", ember_http::auth::hash_entry("ek_w_sample-write-key-for-tests-only")),
        "EMBER_ADMIN_KEYS": ember_http::auth::hash_entry("ek_a_sample-admin-key-for-tests-only"),
    });
    if let Some(Value::Object(extra)) = opts.secret {
        secret.as_object_mut().unwrap().extend(extra);
    }
    let settings = Settings::parse("test-secret", &secret.to_string()).expect("settings");
    let services = AwsServices::build(&conf, &cfg, settings.clone())?;
    Ok(Fixture { conf, services, cfg, settings })
}

impl Fixture {
    /// Another container of the same stack (same table, model and secret) whose clients use
    /// `conf`: a proxy in front of moto, or SES somewhere else.
    pub fn container(&self, conf: &SdkConfig) -> AwsServices {
        AwsServices::build(conf, &self.cfg, self.settings.clone()).expect("services")
    }

    /// Sends an HTTP API (payload 2.0) event through the router, as `lambda_http` would.
    pub async fn http(&self, event: &str) -> (u16, Value) {
        let req = lambda_http::request::from_str(event).expect("an API Gateway HTTP API event");
        let (parts, body) = req.into_parts();
        let req = axum::http::Request::from_parts(parts, Body::from(body.to_vec()));
        let resp = http::router(&self.services).oneshot(req).await.expect("router answers");
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    pub async fn lead_by_email(&self, email: &str) -> Lead {
        let id = ember_service::ports::Identity::Email(email.into());
        self.services.ember.lead_by(&id).await.expect("store").expect("the lead exists")
    }

    /// Subscribes a new reader (the newsletter campaign's first step is due at `at`).
    pub async fn new_reader(&self, at: chrono::DateTime<chrono::Utc>) -> String {
        let reader = format!("{}@example.com", unique("reader"));
        let raw = serde_json::from_value(json!({
            "event_id": unique("nl"), "type": "newsletter_subscribe", "occurred_at": at.to_rfc3339(), "email": reader,
        }))
        .unwrap();
        assert!(self.services.ember.ingest.event(&raw).await.is_accepted());
        reader
    }
}

pub fn far() -> Instant {
    Instant::now() + Duration::from_secs(600)
}

/// Messages moto's SES received, as (recipient, subject).
pub async fn ses_messages() -> Vec<(String, String)> {
    let data: Value = reqwest::get(format!("{}/moto-api/data.json", endpoint())).await.expect("moto").json().await.expect("json");
    data["ses"]["Message"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    (
                        m["destinations"]["ToAddresses"][0].as_str().unwrap_or("").to_string(),
                        m["subject"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Messages moto's SES received for `to`.
pub async fn ses_messages_to(to: &str) -> Vec<String> {
    ses_messages().await.into_iter().filter(|(t, _)| t == to).map(|(_, s)| s).collect()
}

/// A drip invocation as the Scheduler sends it, for `scheduled_time`.
pub fn drip_at(t: chrono::DateTime<chrono::Utc>) -> ember_lambda::schedule::Invocation {
    serde_json::from_value(json!({"job": "drip", "scheduled_time": t.to_rfc3339()})).expect("a Scheduler input")
}
