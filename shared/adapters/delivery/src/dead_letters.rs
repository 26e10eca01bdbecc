//! Dead letters in a JSON-lines file.

use async_trait::async_trait;
use ember_service::ports::{BusError, DeadLetter, DeadLetters, PersonalCopies, StoreError, WebhookDelivery};
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

/// A line recording that the letters before it with this key were delivered (or dropped).
#[derive(Serialize, Deserialize)]
struct Removed {
    removed: String,
}

/// A line of the file.
#[derive(Deserialize)]
#[serde(untagged)]
enum Line {
    Entry(Entry),
    Removed(Removed),
}

/// The key of a letter: its webhook and `webhook-id` (one delivery of it is enough).
fn key(d: &WebhookDelivery) -> String {
    format!("{}/{}", d.hook, d.id)
}

/// Failed webhook deliveries, one JSON line each (delivery, error, time), oldest first.
/// [`DeadLetters::lease`] reads without removing; [`DeadLetters::remove`] appends a `removed`
/// line (synced to disk) for a letter once it is delivered, so a replay killed at any point
/// leaves every letter it did not deliver. Lines of removed letters are dropped when the next
/// lease rewrites the file (into a temporary file renamed over the original: a crash leaves
/// the old or the new list, never half of one). One instance may be shared between tasks; two
/// processes must not share a file.
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

    /// The JSON-lines file the letters are kept in (as given to [`FileDeadLetters::new`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many deliveries wait.
    pub fn len(&self) -> Result<usize, BusError> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        Ok(self.read()?.0.len())
    }

    /// Whether no letter is waiting to be replayed (reads the file, as [`FileDeadLetters::len`] does).
    pub fn is_empty(&self) -> Result<bool, BusError> {
        Ok(self.len()? == 0)
    }

    /// Writes `text` to a temporary file beside the original, syncs it and renames it over.
    fn replace(&self, text: &str) -> std::io::Result<()> {
        crate::files::replace(&self.path, text)
    }

    /// The letters still waiting, oldest first (a `removed` line removes the letters before it
    /// with its key), and whether the file holds lines a rewrite would drop.
    fn read(&self) -> Result<(Vec<Entry>, bool), BusError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), false)),
            Err(e) => return Err(BusError(format!("reading dead letters: {e}"))),
        };
        let mut live: Vec<Entry> = Vec::new();
        let mut stale = false;
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str(l).map_err(|e| BusError(format!("dead-letter file is corrupt: {e}")))? {
                Line::Entry(e) => live.push(e),
                Line::Removed(r) => {
                    live.retain(|e| key(&e.delivery) != r.removed);
                    stale = true;
                }
            }
        }
        Ok((live, stale))
    }

    fn append(&self, line: &str) -> Result<(), BusError> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| BusError(format!("opening dead letters: {e}")))?;
        writeln!(f, "{line}").map_err(|e| BusError(format!("writing dead letters: {e}")))?;
        f.sync_data().map_err(|e| BusError(format!("writing dead letters: {e}")))
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
        self.append(&line)
    }

    /// The first `limit` letters (one per webhook and `webhook-id`), left in the file; the
    /// file is compacted first when removed letters still have lines in it.
    async fn lease(&self, limit: usize, _lease: std::time::Duration) -> Result<Vec<DeadLetter>, BusError> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let (live, stale) = self.read()?;
        if stale {
            let mut text = String::new();
            for e in &live {
                text.push_str(&serde_json::to_string(e).map_err(|e| BusError(e.to_string()))?);
                text.push('\n');
            }
            self.replace(&text).map_err(|e| BusError(format!("writing dead letters: {e}")))?;
        }
        let mut seen = std::collections::HashSet::new();
        Ok(live
            .into_iter()
            .filter(|e| seen.insert(key(&e.delivery)))
            .take(limit)
            .map(|e| DeadLetter { receipt: key(&e.delivery), delivery: e.delivery })
            .collect())
    }

    async fn remove(&self, letter: &DeadLetter) -> Result<(), BusError> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let line = serde_json::to_string(&Removed { removed: letter.receipt.clone() }).map_err(|e| BusError(e.to_string()))?;
        self.append(&line)
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
            kind: ember_scoring::lead::MessageKind::Qualified,
            lead_id: "ld".into(),
            body: "{}".into(),
        }
    }

    #[tokio::test]
    async fn lease_reads_without_removing_and_remove_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dl.jsonl");
        let q = FileDeadLetters::new(&path);
        for id in ["a", "b", "c", "a"] {
            q.put(&d(id), "boom").await.unwrap();
        }
        let lease = std::time::Duration::from_secs(60);
        assert!(q.lease(0, lease).await.unwrap().is_empty());
        let first = q.lease(2, lease).await.unwrap();
        assert_eq!(first[0].delivery, d("a"), "the delivery comes back as it was put");
        assert_eq!(first.iter().map(|x| x.delivery.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        // Reading removed nothing: another instance on the same file sees all four lines.
        assert_eq!(FileDeadLetters::new(&path).len().unwrap(), 4);
        let all: Vec<String> = q.lease(10, lease).await.unwrap().into_iter().map(|x| x.delivery.id).collect();
        assert_eq!(all, ["a", "b", "c"], "one letter per webhook id");
        // Removing `a` (both copies) is on disk at once; the next lease compacts the file.
        q.remove(&first[0]).await.unwrap();
        assert_eq!(FileDeadLetters::new(&path).len().unwrap(), 2);
        let rest: Vec<String> = q.lease(10, lease).await.unwrap().into_iter().map(|x| x.delivery.id).collect();
        assert_eq!(rest, ["b", "c"]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.lines().count() == 2 && text.contains("\"error\":\"boom\""), "{text}");
        assert!(!dir.path().join("dl.jsonl.tmp").exists());
        // A letter put again after its removal waits again.
        q.remove(&first[1]).await.unwrap();
        q.put(&d("b"), "again").await.unwrap();
        let rest: Vec<String> = q.lease(10, lease).await.unwrap().into_iter().map(|x| x.delivery.id).collect();
        assert_eq!(rest, ["c", "b"]);
        assert!(FileDeadLetters::new(dir.path().join("missing.jsonl")).lease(5, lease).await.unwrap().is_empty());
    }
}
