//! The fault-injecting proxy. Every request is read whole, its peer recognised from the
//! request itself (`X-Amz-Target` for DynamoDB, EventBridge and SQS's JSON protocol, the
//! `/v2/email/` path for SES v2; anything else is the proxy's default peer), and then, by a
//! seeded draw against the [`FaultPlan`], either forwarded untouched or hit by one [`Fault`]:
//!
//! | fault | what the client sees | did the peer apply it? |
//! |---|---|---|
//! | `Throttle` | the peer's own throttling error (DynamoDB `ProvisionedThroughputExceededException`, SES `TooManyRequestsException` 429, EventBridge and SQS `ThrottlingException`, a webhook 429 `Retry-After: 1`) | no |
//! | `ServerError` | a 500 (`InternalServerError`, SES `InternalFailure`; a webhook 503) | no |
//! | `Timeout` | nothing: the request is held, then the connection closed | no |
//! | `ResetAfterForward` | a connection reset (RST) after the peer answered | **yes** |
//! | `Slow` | the peer's answer, late | yes |
//!
//! Requests to moto's management API (`/moto-api/…`) are never faulted. [`FaultProxy::calm`]
//! stops injecting (to let state converge), [`FaultProxy::injected`] counts what was done, and
//! [`FaultProxy::applied`] lists every request the peer itself answered with a 2xx — faulted
//! or not, so also those whose answer the client never heard: what the peer really applied.

use crate::http1::{read_message, Head};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// Which protocol peer a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Peer {
    /// DynamoDB (`X-Amz-Target: DynamoDB_20120810.*`).
    DynamoDb,
    /// SES v2 (`/v2/email/…`).
    Ses,
    /// EventBridge (`X-Amz-Target: AWSEvents.*`).
    EventBridge,
    /// SQS, JSON protocol (`X-Amz-Target: AmazonSQS.*`).
    Sqs,
    /// A webhook receiver.
    Webhook,
    /// Anything else (moto's management API, other services): always forwarded.
    Other,
}

impl Peer {
    fn of(head: &Head, default: Peer) -> Peer {
        if head.path.starts_with("/moto-api") {
            return Peer::Other;
        }
        let target = head.header("x-amz-target").unwrap_or("");
        if target.starts_with("DynamoDB_") {
            Peer::DynamoDb
        } else if target.starts_with("AWSEvents.") {
            Peer::EventBridge
        } else if target.starts_with("AmazonSQS.") {
            Peer::Sqs
        } else if head.path.starts_with("/v2/email/") {
            Peer::Ses
        } else {
            default
        }
    }

    /// Lower-case name, for reports.
    pub fn name(self) -> &'static str {
        match self {
            Peer::DynamoDb => "dynamodb",
            Peer::Ses => "ses",
            Peer::EventBridge => "eventbridge",
            Peer::Sqs => "sqs",
            Peer::Webhook => "webhook",
            Peer::Other => "other",
        }
    }
}

/// What can be done to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// The peer's throttling error, not forwarded.
    Throttle,
    /// A 5xx, not forwarded.
    ServerError,
    /// Held without an answer, then closed, not forwarded.
    Timeout,
    /// Forwarded and answered by the peer, then the client connection is reset.
    ResetAfterForward,
    /// Forwarded; the answer is delayed.
    Slow,
}

impl Fault {
    /// Lower-case name, for reports.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Throttle => "throttle",
            Fault::ServerError => "5xx",
            Fault::Timeout => "timeout",
            Fault::ResetAfterForward => "reset_after_forward",
            Fault::Slow => "slow",
        }
    }
}

/// Fault rates per peer, the seed of the draws, and the timings.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    /// Seed of the RNG (the same seed gives the same sequence of draws).
    pub seed: u64,
    /// (peer, fault, probability per request).
    pub rates: Vec<(Peer, Fault, f64)>,
    /// How long a `Timeout` holds the request before closing.
    pub hold: Duration,
    /// How late a `Slow` answer is.
    pub delay: Duration,
}

impl FaultPlan {
    /// No faults yet; hold 3 s, delay 300 ms.
    pub fn new(seed: u64) -> FaultPlan {
        FaultPlan { seed, rates: Vec::new(), hold: Duration::from_secs(3), delay: Duration::from_millis(300) }
    }

    /// Adds `fault` to `peer`'s requests with probability `p`.
    pub fn with(mut self, peer: Peer, fault: Fault, p: f64) -> FaultPlan {
        self.rates.push((peer, fault, p));
        self
    }

    /// Every fault on `peer`, each with probability `p`.
    pub fn all(mut self, peer: Peer, p: f64) -> FaultPlan {
        for f in [Fault::Throttle, Fault::ServerError, Fault::Timeout, Fault::ResetAfterForward, Fault::Slow] {
            self = self.with(peer, f, p);
        }
        self
    }

    /// Sets how long a timeout holds.
    pub fn hold(mut self, d: Duration) -> FaultPlan {
        self.hold = d;
        self
    }
}

struct Shared {
    upstream: SocketAddr,
    default_peer: Peer,
    plan: FaultPlan,
    rng: Mutex<StdRng>,
    calm: AtomicBool,
    counts: Mutex<BTreeMap<(Peer, Option<Fault>), u64>>,
    applied: Mutex<Vec<Applied>>,
}

/// A request the peer answered with a 2xx.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The AWS service the request went to, told from its `X-Amz-Target` or path.
    pub peer: Peer,
    /// Request target as sent, e.g. `/` or `/v2/email/outbound-emails`.
    pub path: String,
    /// Request body as forwarded (the API call's JSON).
    pub body: Vec<u8>,
    /// The peer's status.
    pub status: u16,
    /// What the client got instead of the answer, if anything.
    pub fault: Option<Fault>,
}

impl Shared {
    fn draw(&self, peer: Peer) -> Option<Fault> {
        if peer == Peer::Other || self.calm.load(Ordering::SeqCst) {
            return None;
        }
        let u: f64 = self.rng.lock().unwrap_or_else(|e| e.into_inner()).r#gen();
        let mut acc = 0.0;
        for (p, f, rate) in &self.plan.rates {
            if *p == peer {
                acc += rate;
                if u < acc {
                    return Some(*f);
                }
            }
        }
        None
    }

    fn count(&self, peer: Peer, fault: Option<Fault>) {
        *self.counts.lock().unwrap_or_else(|e| e.into_inner()).entry((peer, fault)).or_default() += 1;
    }
}

/// A running proxy (stops when dropped).
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (a `http://host:port` URL or `host:port`) on a loopback
    /// port of the harness range. Requests no rule recognises belong to `default_peer`.
    pub async fn start(upstream: &str, default_peer: Peer, plan: FaultPlan) -> std::io::Result<FaultProxy> {
        let hostport = upstream.trim_start_matches("http://").trim_end_matches('/');
        let upstream: SocketAddr = tokio::net::lookup_host(hostport)
            .await?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("{hostport}: no address")))?;
        let std_listener = crate::ports::listen()?;
        std_listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(std_listener)?;
        let addr = listener.local_addr()?;
        let rng = Mutex::new(StdRng::seed_from_u64(plan.seed));
        let shared = Arc::new(Shared { upstream, default_peer, plan, rng, calm: AtomicBool::new(false), counts: Default::default(), applied: Default::default() });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else { continue };
                let _ = conn.set_nodelay(true);
                tokio::spawn(serve(conn, s.clone()));
            }
        });
        Ok(FaultProxy { addr, shared, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops injecting faults: everything is forwarded from now on.
    pub fn calm(&self) {
        self.shared.calm.store(true, Ordering::SeqCst);
    }

    /// Faults injected so far, by peer and fault.
    pub fn injected(&self) -> BTreeMap<(Peer, Fault), u64> {
        let counts = self.shared.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.iter().filter_map(|((p, f), n)| f.map(|f| ((*p, f), *n))).collect()
    }

    /// Requests seen so far per peer (faulted or not).
    pub fn requests(&self) -> BTreeMap<Peer, u64> {
        let counts = self.shared.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = BTreeMap::new();
        for ((p, _), n) in counts.iter() {
            *out.entry(*p).or_default() += n;
        }
        out
    }

    /// Every request of `peer` that the peer answered with a 2xx, in order.
    pub fn applied(&self, peer: Peer) -> Vec<Applied> {
        self.shared.applied.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|a| a.peer == peer).cloned().collect()
    }

    /// Faults injected so far, summed over every peer and kind (see [`FaultProxy::injected`]).
    pub fn total_injected(&self) -> u64 {
        self.injected().values().sum()
    }

    /// One line: `dynamodb: 812 requests, throttle 40, 5xx 41, …`.
    pub fn summary(&self) -> String {
        let injected = self.injected();
        self.requests()
            .iter()
            .filter(|(p, _)| **p != Peer::Other)
            .map(|(p, n)| {
                let faults: Vec<String> =
                    injected.iter().filter(|((q, _), _)| q == p).map(|((_, f), k)| format!("{} {k}", f.name())).collect();
                format!("{}: {n} requests, {}", p.name(), if faults.is_empty() { "no faults".into() } else { faults.join(", ") })
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The peer's own error for a fault the proxy answers itself.
fn canned(peer: Peer, fault: Fault) -> Vec<u8> {
    let (status, reason, mut headers, body): (u16, &str, Vec<(&str, &str)>, String) = match (peer, fault) {
        (Peer::DynamoDb, Fault::Throttle) => (
            400,
            "Bad Request",
            vec![("content-type", "application/x-amz-json-1.0")],
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded (injected)"}"#.into(),
        ),
        (Peer::DynamoDb, _) => (
            500,
            "Internal Server Error",
            vec![("content-type", "application/x-amz-json-1.0")],
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error (injected)"}"#.into(),
        ),
        (Peer::EventBridge | Peer::Sqs, Fault::Throttle) => (
            400,
            "Bad Request",
            vec![("content-type", "application/x-amz-json-1.1"), ("x-amzn-query-error", "ThrottlingException;Sender")],
            r#"{"__type":"ThrottlingException","message":"Rate exceeded (injected)"}"#.into(),
        ),
        (Peer::EventBridge | Peer::Sqs, _) => (
            500,
            "Internal Server Error",
            vec![("content-type", "application/x-amz-json-1.1"), ("x-amzn-query-error", "InternalFailure;Receiver")],
            r#"{"__type":"InternalFailure","message":"Internal failure (injected)"}"#.into(),
        ),
        (Peer::Ses, Fault::Throttle) => (
            429,
            "Too Many Requests",
            vec![("content-type", "application/json"), ("x-amzn-errortype", "TooManyRequestsException")],
            r#"{"message":"Maximum sending rate exceeded (injected)"}"#.into(),
        ),
        (Peer::Ses, _) => (
            500,
            "Internal Server Error",
            vec![("content-type", "application/json"), ("x-amzn-errortype", "InternalFailure")],
            r#"{"message":"Internal failure (injected)"}"#.into(),
        ),
        (_, Fault::Throttle) => (429, "Too Many Requests", vec![("retry-after", "1")], "slow down (injected)".into()),
        _ => (503, "Service Unavailable", vec![], "unavailable (injected)".into()),
    };
    let length = body.len().to_string();
    headers.push(("content-length", &length));
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&body);
    out.into_bytes()
}

/// Forwards one request on a fresh upstream connection and reads the whole answer.
async fn forward(upstream: SocketAddr, raw: &[u8]) -> std::io::Result<crate::http1::Message> {
    let mut up = TcpStream::connect(upstream).await?;
    up.set_nodelay(true)?;
    up.write_all(raw).await?;
    let mut buf = Vec::new();
    loop {
        let m = read_message(&mut up, &mut buf, false).await?.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        // 100 Continue and other interim answers: the final one follows.
        if m.head.status >= 200 {
            return Ok(m);
        }
    }
}

async fn serve(mut conn: TcpStream, s: Arc<Shared>) {
    let mut buf = Vec::new();
    loop {
        let req = match read_message(&mut conn, &mut buf, true).await {
            Ok(Some(r)) => r,
            _ => return,
        };
        let peer = Peer::of(&req.head, s.default_peer);
        let fault = s.draw(peer);
        s.count(peer, fault);
        match fault {
            Some(f @ (Fault::Throttle | Fault::ServerError)) => {
                if conn.write_all(&canned(peer, f)).await.is_err() || req.head.closes() {
                    return;
                }
                continue;
            }
            Some(Fault::Timeout) => {
                tokio::time::sleep(s.plan.hold).await;
                return;
            }
            _ => {}
        }
        let resp = match forward(s.upstream, &req.raw).await {
            Ok(r) => r,
            Err(_) => {
                let _ = conn.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                return;
            }
        };
        if (200..300).contains(&resp.head.status) && peer != Peer::Other {
            let a = Applied { peer, path: req.head.path.clone(), body: req.body().to_vec(), status: resp.head.status, fault };
            s.applied.lock().unwrap_or_else(|e| e.into_inner()).push(a);
        }
        match fault {
            Some(Fault::ResetAfterForward) => {
                // SO_LINGER 0: closing sends RST, the client sees "connection reset". (The
                // deprecation is about a non-zero linger blocking on drop; zero never blocks.)
                #[allow(deprecated)]
                let _ = conn.set_linger(Some(Duration::ZERO));
                drop(conn);
                return;
            }
            Some(Fault::Slow) => tokio::time::sleep(s.plan.delay).await,
            _ => {}
        }
        if conn.write_all(&resp.raw).await.is_err() || resp.ended_by_close || resp.head.closes() || req.head.closes() {
            return;
        }
    }
}
