//! A fault-injecting HTTP/1.1 proxy on loopback, in front of moto: it forwards each request
//! on its own upstream connection (one request per connection, `Connection: close` both ways)
//! and, for the first request a rule picks, injects a fault instead.
//!
//! - [`Fault::Swallow`]: read the whole request, then close the connection without a word —
//!   the request reached "the service", the client learns nothing;
//! - [`Fault::LoseAnswer`]: forward the request, let the service apply it, then close the
//!   client's connection instead of passing the answer on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What to do to the request a rule picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Read it, answer nothing, close.
    Swallow,
    /// Forward it, drop the answer, close.
    LoseAnswer,
}

/// One request as read from the client.
pub struct Request {
    /// `POST /v2/email/outbound-emails HTTP/1.1`
    pub line: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

type Rule = dyn Fn(&Request) -> bool + Send + Sync;

/// A running proxy.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    injected: Arc<AtomicUsize>,
}

impl Proxy {
    /// Starts a proxy to `upstream` (`http://host:port`) that injects `fault` into the first
    /// request `rule` picks, and forwards everything else.
    pub async fn start(upstream: &str, fault: Fault, rule: impl Fn(&Request) -> bool + Send + Sync + 'static) -> Proxy {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let injected = Arc::new(AtomicUsize::new(0));
        let armed = Arc::new(AtomicBool::new(true));
        let rule: Arc<Rule> = Arc::new(rule);
        let counter = injected.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                let (upstream, rule, armed, counter) = (upstream.clone(), rule.clone(), armed.clone(), counter.clone());
                tokio::spawn(async move {
                    let _ = serve(client, &upstream, fault, &*rule, &armed, &counter).await;
                });
            }
        });
        Proxy { url, injected }
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> usize {
        self.injected.load(Ordering::SeqCst)
    }
}

/// A loopback address where nothing listens: connecting is refused.
pub async fn refusing_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

async fn serve(
    mut client: TcpStream,
    upstream: &str,
    fault: Fault,
    rule: &Rule,
    armed: &AtomicBool,
    injected: &AtomicUsize,
) -> std::io::Result<()> {
    let Some(req) = read_request(&mut client).await? else { return Ok(()) };
    let inject = rule(&req) && armed.swap(false, Ordering::SeqCst);
    if inject && fault == Fault::Swallow {
        injected.fetch_add(1, Ordering::SeqCst);
        return client.shutdown().await;
    }
    let mut up = TcpStream::connect(upstream).await?;
    let mut head = format!("{}\r\n", req.line);
    for (n, v) in req.headers.iter().filter(|(n, _)| n != "connection") {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("connection: close\r\n\r\n");
    up.write_all(head.as_bytes()).await?;
    up.write_all(&req.body).await?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer).await?;
    if inject {
        // The service applied the request; its answer never reaches the client.
        injected.fetch_add(1, Ordering::SeqCst);
        return client.shutdown().await;
    }
    client.write_all(&with_connection_close(answer)).await?;
    client.shutdown().await
}

/// Reads one request (head and `content-length` body); `None` when the client sent nothing.
async fn read_request(client: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(Request { line, headers, body }))
}

/// The upstream's answer with `connection: close` (the connection is not reused).
fn with_connection_close(answer: Vec<u8>) -> Vec<u8> {
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else { return answer };
    let head = String::from_utf8_lossy(&answer[..end]).into_owned();
    let mut out = String::new();
    for (i, l) in head.split("\r\n").enumerate() {
        if i > 0 && l.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("connection: close\r\n\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&answer[end + 4..]);
    bytes
}
