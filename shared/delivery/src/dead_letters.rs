//! Dead letters in a JSON-lines file.

use async_trait::async_trait;
use ember_service::ports::{BusError, DeadLetters, WebhookDelivery};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

#[derive(Serialize, Deserialize)]
struct Entry {
    delivery: WebhookDelivery,
    error: String,
    at: chrono::DateTime<chrono::Utc>,
}

/// Failed webhook deliveries, one JSON line each; `take` removes what it returns.
pub struct FileDeadLetters {
    path: PathBuf,
    lock: Mutex<()>,
}

impl FileDeadLetters {
    /// Dead letters kept in `path` (created on first use).
    pub fn new(path: impl Into<PathBuf>) -> FileDeadLetters {
        FileDeadLetters { path: path.into(), lock: Mutex::new(()) }
    }

    fn read(&self) -> Result<Vec<Entry>, BusError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).map_err(|e| BusError(format!("dead-letter file is corrupt: {e}"))))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(BusError(format!("reading dead letters: {e}"))),
        }
    }
}

#[async_trait]
impl DeadLetters for FileDeadLetters {
    async fn put(&self, delivery: &WebhookDelivery, error: &str) -> Result<(), BusError> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let line = serde_json::to_string(&Entry { delivery: delivery.clone(), error: error.to_string(), at: chrono::Utc::now() })
            .map_err(|e| BusError(e.to_string()))?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| BusError(format!("opening dead letters: {e}")))?;
        writeln!(f, "{line}").map_err(|e| BusError(format!("writing dead letters: {e}")))
    }

    async fn take(&self, limit: usize) -> Result<Vec<WebhookDelivery>, BusError> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut all = self.read()?;
        let n = limit.min(all.len());
        let rest = all.split_off(n);
        let tmp = self.path.with_extension("tmp");
        let mut text = String::new();
        for e in &rest {
            text.push_str(&serde_json::to_string(e).map_err(|e| BusError(e.to_string()))?);
            text.push('\n');
        }
        if n > 0 {
            std::fs::write(&tmp, text).map_err(|e| BusError(format!("writing dead letters: {e}")))?;
            std::fs::rename(&tmp, &self.path).map_err(|e| BusError(format!("writing dead letters: {e}")))?;
        }
        Ok(all.into_iter().map(|e| e.delivery).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(id: &str) -> WebhookDelivery {
        WebhookDelivery {
            hook: "crm".into(),
            url: Some("http://127.0.0.1:1/".into()),
            id: id.into(),
            timestamp: 1,
            signature: String::new(),
            kind: "lead.qualified".into(),
            lead_id: "ld".into(),
            body: "{}".into(),
        }
    }

    #[tokio::test]
    async fn put_then_take_in_order_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let q = FileDeadLetters::new(dir.path().join("dl.jsonl"));
        for id in ["a", "b", "c"] {
            q.put(&d(id), "boom").await.unwrap();
        }
        let first: Vec<String> = q.take(2).await.unwrap().into_iter().map(|x| x.id).collect();
        assert_eq!(first, ["a", "b"]);
        let rest: Vec<String> = q.take(10).await.unwrap().into_iter().map(|x| x.id).collect();
        assert_eq!(rest, ["c"]);
        assert!(q.take(10).await.unwrap().is_empty());
    }
}
