//! Webhook deliveries (Standard Webhooks) over HTTP, with retries; and a recorder.

use async_trait::async_trait;
use ember_service::ports::{DeliveryResult, PersonalCopies, StoreError, WebhookDelivery, WebhookSender};
use std::sync::Arc;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Retry schedule of [`HttpWebhookSender`]: the first attempt is immediate, then one retry
/// after each delay; a `Retry-After` answer lengthens the next delay (up to `max_retry_after`).
/// The caller's deadline bounds it all: a wait that would end past the deadline is not waited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Waits before attempts 2, 3, …
    pub delays: Vec<Duration>,
    /// Longest `Retry-After` honoured (longer values are cut to this).
    pub max_retry_after: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl RetryPolicy {
    /// This schedule, with the default `Retry-After` cap and timeout (Lambda and tests pass
    /// short schedules; the dead-letter queue takes over after them).
    pub fn new(delays: Vec<Duration>) -> RetryPolicy {
        RetryPolicy { delays, ..RetryPolicy::default() }
    }
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

/// Appends deliveries to a JSON-lines file instead of sending them: what happens to webhooks
/// whose URL is not configured (`${VAR}` unset), so `ember dev` still shows what would be sent.
/// The file holds the bodies (personal data): it stays in the local data folder.
#[derive(Debug)]
pub struct FileWebhookRecorder {
    path: PathBuf,
    lock: Mutex<()>,
}

impl FileWebhookRecorder {
    /// A recorder appending to `path` (created on first use).
    pub fn new(path: impl Into<PathBuf>) -> FileWebhookRecorder {
        FileWebhookRecorder { path: path.into(), lock: Mutex::new(()) }
    }

    /// The JSON-lines file deliveries are appended to (as given to [`FileWebhookRecorder::new`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every delivery recorded so far, oldest first (unreadable lines are skipped).
    pub fn recorded(&self) -> std::io::Result<Vec<WebhookDelivery>> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        match std::fs::read_to_string(&self.path) {
            Ok(text) => Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    fn append(&self, d: &WebhookDelivery) -> std::io::Result<()> {
        let line = serde_json::to_string(d).map_err(std::io::Error::other)?;
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        writeln!(f, "{line}")
    }
}

#[async_trait]
impl PersonalCopies for FileWebhookRecorder {
    /// Rewrites the file (atomically) without the deliveries about these leads.
    async fn erase_leads(&self, lead_ids: &[String]) -> Result<usize, StoreError> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        crate::files::erase_lines(&self.path, lead_ids, |v| v.get("lead_id")?.as_str())
            .map_err(|e| StoreError::Other(format!("erasing recorded webhooks: {e}")))
    }
}

#[async_trait]
impl WebhookSender for FileWebhookRecorder {
    /// Records the delivery: `Delivered { attempts: 0 }` (nothing went over the network).
    async fn deliver(&self, d: &WebhookDelivery, _deadline: Instant) -> DeliveryResult {
        match self.append(d) {
            Ok(()) => {
                tracing::info!(webhook_id = %d.id, hook = %d.hook, "webhook not configured; delivery recorded");
                DeliveryResult::Delivered { attempts: 0 }
            }
            Err(e) => DeliveryResult::Failed { error: format!("recording the delivery failed: {e}"), attempts: 0 },
        }
    }
}

/// POSTs deliveries (Standard Webhooks headers); retries 5xx, 408, 429 and network errors on the
/// [`RetryPolicy`] schedule, honouring `Retry-After` (seconds, capped), within the caller's
/// deadline (each request's timeout is cut to the time left; a wait that does not fit ends the
/// delivery as `Failed` at once, so the caller can dead-letter it in time); stops at 410 (→
/// [`DeliveryResult::Disabled`]) and at other 3xx/4xx (permanent → `Failed` at once). Redirects
/// are not followed. Deliveries without a URL go to the optional [`FileWebhookRecorder`] (without
/// one they fail). Logs carry ids, status codes and attempt counts, never bodies.
pub struct HttpWebhookSender {
    client: reqwest::Client,
    policy: RetryPolicy,
    unconfigured: Option<Arc<FileWebhookRecorder>>,
}

impl std::fmt::Debug for HttpWebhookSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpWebhookSender")
            .field("policy", &self.policy)
            .field("unconfigured", &self.unconfigured)
            .finish()
    }
}

/// `User-Agent` of deliveries.
pub const USER_AGENT: &str = concat!("Ember-Webhooks/", env!("CARGO_PKG_VERSION"));

impl HttpWebhookSender {
    /// A sender with this policy; `unconfigured` (a JSON-lines path) records deliveries that
    /// have no URL.
    pub fn new(policy: RetryPolicy, unconfigured: Option<PathBuf>) -> HttpWebhookSender {
        let client = reqwest::Client::builder()
            .timeout(policy.timeout)
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the HTTP client builds with static settings");
        HttpWebhookSender { client, policy, unconfigured: unconfigured.map(|p| Arc::new(FileWebhookRecorder::new(p))) }
    }

    /// A sender with this policy whose deliveries without a URL go to `recorder`, shared with
    /// whoever else writes that file (erasure: one lock for appends and rewrites).
    pub fn with_recorder(policy: RetryPolicy, recorder: Arc<FileWebhookRecorder>) -> HttpWebhookSender {
        let mut sender = HttpWebhookSender::new(policy, None);
        sender.unconfigured = Some(recorder);
        sender
    }

    /// The local default: the default policy, unconfigured deliveries kept in `path`.
    pub fn local_default(path: impl Into<PathBuf>) -> HttpWebhookSender {
        HttpWebhookSender::new(RetryPolicy::default(), Some(path.into()))
    }

    /// The recorder of unconfigured deliveries, if any.
    pub fn recorder(&self) -> Option<&FileWebhookRecorder> {
        self.unconfigured.as_deref()
    }

    /// The wait before attempt `attempts + 1`, or `None` when the schedule is exhausted.
    fn next_wait(&self, attempts: u32, retry_after: Option<Duration>) -> Option<Duration> {
        let planned = *self.policy.delays.get(attempts as usize - 1)?;
        Some(retry_after.map_or(planned, |r| r.min(self.policy.max_retry_after).max(planned)))
    }
}

#[async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn deliver(&self, d: &WebhookDelivery, deadline: Instant) -> DeliveryResult {
        let Some(url) = &d.url else {
            return match &self.unconfigured {
                Some(r) => r.deliver(d, deadline).await,
                None => DeliveryResult::Failed { error: format!("webhook `{}` has no URL", d.hook), attempts: 0 },
            };
        };
        let mut attempts = 0u32;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::info!(webhook_id = %d.id, hook = %d.hook, attempts, "no time left for a webhook attempt");
                return DeliveryResult::Failed { error: "no time left for an attempt".into(), attempts };
            }
            attempts += 1;
            let mut req = self
                .client
                .post(url)
                .timeout(self.policy.timeout.min(left))
                .header("content-type", "application/json")
                .header("webhook-id", &d.id)
                .header("webhook-timestamp", d.timestamp.to_string());
            if !d.signature.is_empty() {
                req = req.header("webhook-signature", &d.signature);
            }
            let (error, retry_after) = match req.body(d.body.clone()).send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    tracing::info!(webhook_id = %d.id, hook = %d.hook, status, attempts, "webhook attempt");
                    match status {
                        200..=299 => return DeliveryResult::Delivered { attempts },
                        410 => return DeliveryResult::Disabled,
                        408 | 429 | 500..=599 => {}
                        _ => return DeliveryResult::Failed { error: format!("HTTP {status}"), attempts },
                    }
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    (format!("HTTP {status}"), retry_after)
                }
                Err(e) if e.is_builder() => {
                    tracing::warn!(webhook_id = %d.id, hook = %d.hook, "webhook URL is invalid");
                    return DeliveryResult::Failed { error: "invalid URL".into(), attempts };
                }
                Err(e) => {
                    // The error text may hold the URL (and whatever secret it carries): keep the kind only.
                    let error = if e.is_timeout() {
                        "timed out"
                    } else if e.is_connect() {
                        "connection failed"
                    } else {
                        "request failed"
                    };
                    tracing::info!(webhook_id = %d.id, hook = %d.hook, attempts, error, "webhook attempt");
                    (error.to_string(), None)
                }
            };
            match self.next_wait(attempts, retry_after) {
                Some(wait) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if wait >= left {
                        tracing::info!(webhook_id = %d.id, hook = %d.hook, attempts, wait_secs = wait.as_secs(), left_secs = left.as_secs(), "the next webhook attempt would pass the deadline");
                        let error = format!("{error}; the next attempt (in {} s) would pass the {} s left", wait.as_secs(), left.as_secs());
                        return DeliveryResult::Failed { error, attempts };
                    }
                    tokio::time::sleep(wait).await
                }
                None => return DeliveryResult::Failed { error, attempts },
            }
        }
    }
}

/// Keeps every delivery in memory (scenarios and tests); always answers `Delivered { attempts: 1 }`.
#[derive(Debug, Default)]
pub struct MemoryWebhookRecorder {
    deliveries: Mutex<Vec<WebhookDelivery>>,
}

impl MemoryWebhookRecorder {
    /// A recorder holding no delivery yet (the same as `Default`).
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
    async fn deliver(&self, d: &WebhookDelivery, _deadline: Instant) -> DeliveryResult {
        self.deliveries.lock().unwrap_or_else(|e| e.into_inner()).push(d.clone());
        DeliveryResult::Delivered { attempts: 1 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    /// A receiver that verifies signatures and answers from a script of statuses.
    /// Counts hits and attempts that carry a valid signature and the expected content type and
    /// user agent.
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
                    let signed = ember_service::signing::verify(
                        SECRET,
                        &get("webhook-id"),
                        &get("webhook-timestamp"),
                        &get("webhook-signature"),
                        &body,
                        now,
                        300,
                    );
                    if signed.is_ok()
                        && get("content-type") == "application/json"
                        && get("user-agent") == USER_AGENT
                        && get("webhook-id") == "msg_1"
                    {
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
            kind: ember_scoring::lead::MessageKind::Qualified,
            lead_id: "ld".into(),
            body,
        }
    }

    /// A deadline no test reaches.
    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            delays: vec![Duration::from_millis(10); 3],
            max_retry_after: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn retries_server_errors_then_delivers_signed() {
        let (url, hits, verified) = receiver(vec![(500, None), (503, None), (200, None)]).await;
        let r = HttpWebhookSender::new(fast(), None).deliver(&delivery(&url), later()).await;
        assert_eq!(r, DeliveryResult::Delivered { attempts: 3 });
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        assert_eq!(verified.load(Ordering::SeqCst), 3, "every attempt carries a valid signature");
    }

    #[tokio::test]
    async fn gone_disables_and_client_errors_fail_at_once() {
        let (url, _, _) = receiver(vec![(410, None)]).await;
        assert_eq!(HttpWebhookSender::new(fast(), None).deliver(&delivery(&url), later()).await, DeliveryResult::Disabled);
        let (url, hits, _) = receiver(vec![(400, None)]).await;
        let r = HttpWebhookSender::new(fast(), None).deliver(&delivery(&url), later()).await;
        assert_eq!(r, DeliveryResult::Failed { error: "HTTP 400".into(), attempts: 1 });
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn honours_retry_after_and_gives_up() {
        let (url, _, _) = receiver(vec![(429, Some("1")), (200, None)]).await;
        let t = std::time::Instant::now();
        let r = HttpWebhookSender::new(fast(), None).deliver(&delivery(&url), later()).await;
        assert_eq!(r, DeliveryResult::Delivered { attempts: 2 });
        assert!(t.elapsed() >= Duration::from_millis(900), "waited for Retry-After");
        let (url, hits, _) = receiver(vec![(500, None); 10]).await;
        let r = HttpWebhookSender::new(fast(), None).deliver(&delivery(&url), later()).await;
        assert!(matches!(r, DeliveryResult::Failed { attempts: 4, .. }), "{r:?}");
        assert_eq!(hits.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn redirects_are_permanent_and_timeouts_are_retried() {
        let (url, hits, _) = receiver(vec![(302, None)]).await;
        let r = HttpWebhookSender::new(fast(), None).deliver(&delivery(&url), later()).await;
        assert_eq!(r, DeliveryResult::Failed { error: "HTTP 302".into(), attempts: 1 });
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let (url, hits, verified) = receiver(vec![(408, None), (429, None), (200, None)]).await;
        assert_eq!(
            HttpWebhookSender::new(fast(), None).deliver(&delivery(&url), later()).await,
            DeliveryResult::Delivered { attempts: 3 }
        );
        assert_eq!((hits.load(Ordering::SeqCst), verified.load(Ordering::SeqCst)), (3, 3));
    }

    #[tokio::test]
    async fn network_errors_are_retried_then_fail() {
        // A port nothing listens on: bind, note the address, close.
        let addr = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let r = HttpWebhookSender::new(fast(), None).deliver(&delivery(&format!("http://{addr}/hook")), later()).await;
        assert_eq!(r, DeliveryResult::Failed { error: "connection failed".into(), attempts: 4 });
        let r = HttpWebhookSender::new(fast(), None).deliver(&delivery("not a url"), later()).await;
        assert_eq!(r, DeliveryResult::Failed { error: "invalid URL".into(), attempts: 1 });
    }

    #[tokio::test]
    async fn retry_after_is_capped() {
        let (url, _, _) = receiver(vec![(503, Some("3600")), (200, None)]).await;
        let policy = RetryPolicy { max_retry_after: Duration::from_millis(50), ..fast() };
        let t = std::time::Instant::now();
        assert_eq!(
            HttpWebhookSender::new(policy, None).deliver(&delivery(&url), later()).await,
            DeliveryResult::Delivered { attempts: 2 }
        );
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_retry_after_past_the_deadline_is_not_waited_for() {
        let (url, hits, _) = receiver(vec![(429, Some("3600")); 4]).await;
        let policy = RetryPolicy { max_retry_after: Duration::from_secs(3600), ..fast() };
        let t = Instant::now();
        let r = HttpWebhookSender::new(policy, None).deliver(&delivery(&url), t + Duration::from_secs(5)).await;
        assert!(t.elapsed() < Duration::from_secs(2), "gave up at once: {:?}", t.elapsed());
        let DeliveryResult::Failed { error, attempts: 1 } = r else { panic!("{r:?}") };
        assert!(error.starts_with("HTTP 429; the next attempt (in 3600 s) would pass"), "{error}");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        // A deadline already passed: no attempt at all.
        let r = HttpWebhookSender::new(fast(), None).deliver(&delivery(&url), Instant::now()).await;
        assert!(matches!(r, DeliveryResult::Failed { attempts: 0, .. }), "{r:?}");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    /// Two endpoints that are down, each with a retry schedule that alone nearly fills the
    /// handoff's budget: the budget is shared, so handling the message ends within it and both
    /// deliveries are in the dead-letter queue (on Lambda: 2 × (1 + 4 + 16 s of waits + 4 ×
    /// 15 s timeouts) = 162 s against a 120 s function timeout).
    #[tokio::test]
    async fn handoff_to_two_endpoints_fits_one_budget() {
        use ember_service::ports::{DeadLetters, MessageHandler};
        let (a, hits_a, _) = receiver(vec![(503, None); 10]).await;
        let (b, hits_b, _) = receiver(vec![(503, None); 10]).await;
        let hook = |name: &str, url: String| ember_scoring::model::Webhook {
            name: name.into(),
            url: Some(url),
            secret: Some(SECRET.into()),
            url_source: String::new(),
        };
        let dir = tempfile::tempdir().unwrap();
        let dead = std::sync::Arc::new(crate::FileDeadLetters::new(dir.path().join("dl.jsonl")));
        let policy = RetryPolicy { delays: vec![Duration::from_millis(300); 3], ..fast() };
        let handoff = ember_service::Handoff::new(
            vec![hook("crm", a), hook("slack", b)],
            Arc::new(HttpWebhookSender::new(policy, None)),
            dead.clone(),
            Arc::new(ember_store_sqlite::SqliteStore::open_in_memory().unwrap()),
            Arc::new(|| chrono::Utc::now().timestamp()),
        )
        .with_budget(Duration::from_millis(1000));
        let message = ember_scoring::lead::Message {
            id: "msg_1".into(),
            kind: ember_scoring::lead::MessageKind::Qualified,
            at: chrono::Utc::now(),
            lead_id: "ld".into(),
            data: serde_json::Value::Null,
        };
        let t = Instant::now();
        handoff.handle(&message).await.expect("both failures are kept");
        assert!(t.elapsed() < Duration::from_millis(1300), "within the budget: {:?}", t.elapsed());
        let letters = dead.lease(10, Duration::from_secs(1)).await.unwrap();
        assert_eq!(letters.iter().map(|l| l.delivery.hook.as_str()).collect::<Vec<_>>(), ["crm", "slack"]);
        assert!(hits_a.load(Ordering::SeqCst) >= 2, "the first endpoint was retried");
        assert!(hits_b.load(Ordering::SeqCst) >= 1, "the second endpoint was tried");
    }

    #[tokio::test]
    async fn unconfigured_hooks_are_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("webhooks.jsonl");
        let mut d = delivery("http://unused");
        d.url = None;
        let sender = HttpWebhookSender::new(fast(), Some(path.clone()));
        assert_eq!(sender.deliver(&d, later()).await, DeliveryResult::Delivered { attempts: 0 });
        assert_eq!(sender.recorder().unwrap().recorded().unwrap(), vec![d.clone()]);
        let r = HttpWebhookSender::new(fast(), None).deliver(&d, later()).await;
        assert!(matches!(r, DeliveryResult::Failed { attempts: 0, .. }), "{r:?}");
    }

    #[tokio::test]
    async fn memory_recorder_keeps_everything() {
        let m = MemoryWebhookRecorder::new();
        let d = delivery("http://unused");
        assert_eq!(m.deliver(&d, later()).await, DeliveryResult::Delivered { attempts: 1 });
        assert_eq!(m.deliveries(), vec![d]);
    }
}
