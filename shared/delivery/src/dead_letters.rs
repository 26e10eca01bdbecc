//! Dead letters in a JSON-lines file.

use async_trait::async_trait;
use ember_service::ports::{BusError, DeadLetters, PersonalCopies, StoreError, WebhookDelivery};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One line of the file: the delivery as it failed, why, and when.
#[derive(Serialize, Deserialize)]
struct Entry {
    delivery: WebhookDelivery,
    error: String,
    at: chrono::DateTime<chrono::Utc>,
}

/// Failed webhook deliveries, one JSON line each (delivery, error, time), oldest first. `take`
/// removes what it returns by rewriting the rest into a temporary file renamed over the original
/// (atomic: a crash leaves the old or the new list, never half of one). One instance may be
/// shared between tasks; two processes must not share a file.
#[derive(Debug)]
pub struct FileDeadLetters {
    path: PathBuf,
    lock: Mutex<()>,
}

impl FileDeadLetters {
    /// Dead letters kept in `path` (created on first use).
    pub fn new(path: impl Into<PathBuf>) -> FileDeadLetters {
        FileDeadLetters { path: path.into(), lock: Mutex::new(()) }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many deliveries wait.
    pub fn len(&self) -> Result<usize, BusError> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        Ok(self.read()?.len())
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> Result<bool, BusError> {
        Ok(self.len()? == 0)
    }

    /// Writes `text` to a temporary file beside the original, syncs it and renames it over.
    fn replace(&self, text: &str) -> std::io::Result<()> {
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &self.path)
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
        let line = serde_json::to_string(&Entry {
            delivery: delivery.clone(),
            error: error.to_string(),
            at: chrono::Utc::now(),
        })
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
        if n > 0 {
            let mut text = String::new();
            for e in &rest {
                text.push_str(&serde_json::to_string(e).map_err(|e| BusError(e.to_string()))?);
                text.push('\n');
            }
            self.replace(&text).map_err(|e| BusError(format!("writing dead letters: {e}")))?;
        }
        Ok(all.into_iter().map(|e| e.delivery).collect())
    }
}

#[async_trait]
impl PersonalCopies for FileDeadLetters {
    /// Rewrites the file (atomically) without the letters about these leads: an erased person's
    /// webhook is never replayed.
    async fn erase_leads(&self, lead_ids: &[String]) -> Result<usize, StoreError> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        crate::files::erase_lines(&self.path, lead_ids, |v| v.get("delivery")?.get("lead_id")?.as_str())
            .map_err(|e| StoreError::Other(format!("erasing dead letters: {e}")))
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
        assert!(q.take(0).await.unwrap().is_empty());
        assert_eq!(q.len().unwrap(), 3);
        let first = q.take(2).await.unwrap();
        assert_eq!(first[0], d("a"), "the delivery comes back as it was put");
        assert_eq!(first.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        // Another instance on the same file sees what is left; the error is kept beside it.
        let text = std::fs::read_to_string(dir.path().join("dl.jsonl")).unwrap();
        assert!(text.contains("\"error\":\"boom\"") && text.lines().count() == 1, "{text}");
        assert_eq!(FileDeadLetters::new(dir.path().join("dl.jsonl")).len().unwrap(), 1);
        assert!(!dir.path().join("dl.jsonl.tmp").exists());
        let rest: Vec<String> = q.take(10).await.unwrap().into_iter().map(|x| x.id).collect();
        assert_eq!(rest, ["c"]);
        assert!(q.take(10).await.unwrap().is_empty());
        assert!(q.is_empty().unwrap());
        assert!(FileDeadLetters::new(dir.path().join("missing.jsonl")).take(5).await.unwrap().is_empty());
    }
}
