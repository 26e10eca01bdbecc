//! Webhook deliveries (Standard Webhooks) over HTTP, with retries; and a recorder.

use async_trait::async_trait;
use ember_service::ports::{DeliveryResult, WebhookDelivery, WebhookSender};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// Delays before each retry (the first attempt is immediate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Waits before attempts 2, 3, …
    pub delays: Vec<Duration>,
    /// Longest `Retry-After` honoured.
    pub max_retry_after: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    /// Immediately, then 5 s, 5 min, 30 min (what a long-running process can afford; the
    /// dead-letter queue takes over after that).
    fn default() -> Self {
        RetryPolicy {
            delays: vec![Duration::from_secs(5), Duration::from_secs(300), Duration::from_secs(1800)],
            max_retry_after: Duration::from_secs(3600),
            timeout: Duration::from_secs(15),
        }
    }
}

/// POSTs deliveries; retries 5xx, 408, 429 and network errors; stops at 410 (disable) and other
/// 4xx (permanent). Deliveries whose URL is not configured are appended to a JSON-lines file.
pub struct HttpWebhookSender {
    client: reqwest::Client,
    policy: RetryPolicy,
    unconfigured: Option<PathBuf>,
    lock: Mutex<()>,
}

impl HttpWebhookSender {
    /// A sender with this policy; `unconfigured` records deliveries that have no URL.
    pub fn new(policy: RetryPolicy, unconfigured: Option<PathBuf>) -> HttpWebhookSender {
        let client = reqwest::Client::builder()
            .timeout(policy.timeout)
            .user_agent(concat!("Ember-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds with static settings");
        HttpWebhookSender { client, policy, unconfigured, lock: Mutex::new(()) }
    }

    /// The local default: the default policy, unconfigured deliveries kept in `path`.
    pub fn local_default(path: impl Into<PathBuf>) -> HttpWebhookSender {
        HttpWebhookSender::new(RetryPolicy::default(), Some(path.into()))
    }

    fn record(&self, d: &WebhookDelivery) -> DeliveryResult {
        let Some(path) = &self.unconfigured else {
            return DeliveryResult::Failed { error: format!("webhook `{}` has no URL", d.hook), attempts: 0 };
        };
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let r = std::fs::OpenOptions::new().create(true).append(true).open(path).and_then(|mut f| {
            writeln!(f, "{}", serde_json::to_string(d).map_err(std::io::Error::other)?)
        });
        match r {
            Ok(()) => {
                tracing::info!(webhook_id = %d.id, hook = %d.hook, "webhook not configured; delivery recorded");
                DeliveryResult::Delivered { attempts: 0 }
            }
            Err(e) => DeliveryResult::Failed { error: format!("recording failed: {e}"), attempts: 0 },
        }
    }
}

#[async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn deliver(&self, d: &WebhookDelivery) -> DeliveryResult {
        let Some(url) = &d.url else { return self.record(d) };
        let mut attempts = 0u32;
        let mut last_error;
        let mut wait = Duration::ZERO;
        loop {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            attempts += 1;
            let mut req = self
                .client
                .post(url)
                .header("content-type", "application/json")
                .header("webhook-id", &d.id)
                .header("webhook-timestamp", d.timestamp.to_string());
            if !d.signature.is_empty() {
                req = req.header("webhook-signature", &d.signature);
            }
            match req.body(d.body.clone()).send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    tracing::info!(webhook_id = %d.id, hook = %d.hook, status, attempts, "webhook attempt");
                    if (200..300).contains(&status) {
                        return DeliveryResult::Delivered { attempts };
                    }
                    if status == 410 {
                        return DeliveryResult::Disabled;
                    }
                    last_error = format!("HTTP {status}");
                    if (400..500).contains(&status) && status != 408 && status != 429 {
                        return DeliveryResult::Failed { error: last_error, attempts };
                    }
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s).min(self.policy.max_retry_after));
                    match self.policy.delays.get(attempts as usize - 1) {
                        Some(d) => wait = retry_after.map_or(*d, |r| r.max(*d)),
                        None => return DeliveryResult::Failed { error: last_error, attempts },
                    }
                }
                Err(e) => {
                    last_error = if e.is_timeout() { "timed out".to_string() } else { "connection failed".to_string() };
                    tracing::info!(webhook_id = %d.id, hook = %d.hook, attempts, error = %last_error, "webhook attempt");
                    match self.policy.delays.get(attempts as usize - 1) {
                        Some(d) => wait = *d,
                        None => return DeliveryResult::Failed { error: last_error, attempts },
                    }
                }
            }
        }
    }
}

/// Keeps every delivery in memory (scenarios and tests).
#[derive(Default)]
pub struct MemoryWebhookRecorder {
    deliveries: Mutex<Vec<WebhookDelivery>>,
}

impl MemoryWebhookRecorder {
    /// An empty recorder.
    pub fn new() -> MemoryWebhookRecorder {
        MemoryWebhookRecorder::default()
    }
    /// Every delivery so far.
    pub fn deliveries(&self) -> Vec<WebhookDelivery> {
        self.deliveries.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[async_trait]
impl WebhookSender for MemoryWebhookRecorder {
    async fn deliver(&self, d: &WebhookDelivery) -> DeliveryResult {
        self.deliveries.lock().unwrap_or_else(|e| e.into_inner()).push(d.clone());
        DeliveryResult::Delivered { attempts: 1 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    /// A receiver that verifies signatures and answers from a script of statuses.
    async fn receiver(script: Vec<(u16, Option<&'static str>)>) -> (String, Arc<AtomicU32>, Arc<AtomicU32>) {
        let hits = Arc::new(AtomicU32::new(0));
        let verified = Arc::new(AtomicU32::new(0));
        let (h, v) = (hits.clone(), verified.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let (h, v, script) = (h.clone(), v.clone(), script.clone());
                async move {
                    let n = h.fetch_add(1, Ordering::SeqCst) as usize;
                    let get = |k: &str| headers.get(k).and_then(|x| x.to_str().ok()).unwrap_or("").to_string();
                    let now = chrono::Utc::now().timestamp();
                    if ember_service::signing::verify(SECRET, &get("webhook-id"), &get("webhook-timestamp"), &get("webhook-signature"), &body, now, 300).is_ok() {
                        v.fetch_add(1, Ordering::SeqCst);
                    }
                    let (status, retry_after) = script.get(n).copied().unwrap_or((200, None));
                    let mut resp = StatusCode::from_u16(status).unwrap().into_response();
                    if let Some(r) = retry_after {
                        resp.headers_mut().insert("retry-after", r.parse().unwrap());
                    }
                    resp
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}/hook"), hits, verified)
    }

    fn delivery(url: &str) -> WebhookDelivery {
        let ts = chrono::Utc::now().timestamp();
        let body = r#"{"type":"lead.qualified"}"#.to_string();
        WebhookDelivery {
            hook: "crm".into(),
            url: Some(url.into()),
            id: "msg_1".into(),
            timestamp: ts,
            signature: ember_service::signing::sign(SECRET, "msg_1", ts, &body).unwrap(),
            kind: "lead.qualified".into(),
            lead_id: "ld".into(),
            body,
        }
    }

    fn fast() -> RetryPolicy {
        RetryPolicy { delays: vec![Duration::from_millis(10); 3], max_retry_after: Duration::from_secs(2), timeout: Duration::from_secs(5) }
    }

    #[tokio::test]
    async fn retries_server_errors_then_delivers_signed() {
        let (url, hits, verified) = receiver(vec![(500, None), (503, None), (200, None)]).await;
        let r = HttpWebhookSender::new(fast(), None).deliver(&delivery(&url)).await;
        assert_eq!(r, DeliveryResult::Delivered { attempts: 3 });
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        assert_eq!(verified.load(Ordering::SeqCst), 3, "every attempt carries a valid signature");
    }

    #[tokio::test]
    async fn gone_disables_and_client_errors_fail_at_once() {
        let (url, _, _) = receiver(vec![(410, None)]).await;
        assert_eq!(HttpWebhookSender::new(fast(), None).deliver(&delivery(&url)).await, DeliveryResult::Disabled);
        let (url, hits, _) = receiver(vec![(400, None)]).await;
        let r = HttpWebhookSender::new(fast(), None).deliver(&delivery(&url)).await;
        assert!(matches!(r, DeliveryResult::Failed { attempts: 1, .. }), "{r:?}");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn honours_retry_after_and_gives_up() {
        let (url, _, _) = receiver(vec![(429, Some("1")), (200, None)]).await;
        let t = std::time::Instant::now();
        let r = HttpWebhookSender::new(fast(), None).deliver(&delivery(&url)).await;
        assert_eq!(r, DeliveryResult::Delivered { attempts: 2 });
        assert!(t.elapsed() >= Duration::from_millis(900), "waited for Retry-After");
        let (url, hits, _) = receiver(vec![(500, None); 10]).await;
        let r = HttpWebhookSender::new(fast(), None).deliver(&delivery(&url)).await;
        assert!(matches!(r, DeliveryResult::Failed { attempts: 4, .. }), "{r:?}");
        assert_eq!(hits.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn unconfigured_hooks_are_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("webhooks.jsonl");
        let mut d = delivery("http://unused");
        d.url = None;
        let r = HttpWebhookSender::new(fast(), Some(path.clone())).deliver(&d).await;
        assert_eq!(r, DeliveryResult::Delivered { attempts: 0 });
        assert!(std::fs::read_to_string(path).unwrap().contains("msg_1"));
    }
}
