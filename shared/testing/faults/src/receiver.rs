//! A webhook receiver on loopback: answers every `POST` with 200 and records the delivery by
//! its `webhook-id`, so a test can count deliveries per id and per lead.

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use std::sync::{Arc, Mutex};

/// One delivery as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// `webhook-id`.
    pub webhook_id: String,
    /// `type` of the body (`lead.qualified`…).
    pub kind: String,
    /// `data.lead_id` of the body, else `data.id`.
    pub lead_id: String,
    /// `webhook-signature`.
    pub signature: String,
}

/// A running receiver (stops when dropped).
pub struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Starts on a loopback port of the harness range.
    pub async fn start() -> std::io::Result<Receiver> {
        let std_listener = crate::ports::listen()?;
        std_listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let url = format!("http://{}/hooks/crm", listener.local_addr()?);
        let got: Arc<Mutex<Vec<Received>>> = Default::default();
        let g = got.clone();
        let app = axum::Router::new().route(
            "/{*path}",
            post(move |headers: HeaderMap, body: Bytes| {
                let g = g.clone();
                async move {
                    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    let lead_id = v["data"]["lead_id"].as_str().or(v["data"]["id"].as_str()).unwrap_or("").to_string();
                    let r = Received {
                        webhook_id: h("webhook-id"),
                        kind: v["type"].as_str().unwrap_or("").to_string(),
                        lead_id,
                        signature: h("webhook-signature"),
                    };
                    g.lock().unwrap_or_else(|e| e.into_inner()).push(r);
                    "ok"
                }
            }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver { url, got, task })
    }

    /// The URL to configure as the webhook.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Everything received, in order.
    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
