//! In-process bus.

use async_trait::async_trait;
use ember_scoring::lead::Message;
use ember_service::ports::{Bus, BusError, MessageHandler};
use std::sync::{Arc, Mutex};

/// Delivers every published message to every handler, message by message and handler by
/// handler, awaiting each, before `publish` returns (so messages are handled before the next
/// scenario step runs). A failing handler does not stop the others; `publish` then reports
/// every failure (message ids only) and the caller re-publishes (ids make that safe).
///
/// With [`LocalBus::with_log`] it also keeps every published message in memory ([`LocalBus::published`]).
pub struct LocalBus {
    handlers: Vec<Arc<dyn MessageHandler>>,
    log: Option<Mutex<Vec<Message>>>,
}

impl std::fmt::Debug for LocalBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBus").field("handlers", &self.handlers.len()).field("log", &self.log.is_some()).finish()
    }
}

impl LocalBus {
    /// A bus with these handlers (no log).
    pub fn new(handlers: Vec<Arc<dyn MessageHandler>>) -> LocalBus {
        LocalBus { handlers, log: None }
    }

    /// Keeps a log of published messages (tests, scenarios).
    pub fn with_log(mut self) -> LocalBus {
        self.log = Some(Mutex::new(Vec::new()));
        self
    }

    /// Every message published so far, in order (empty without [`LocalBus::with_log`]).
    /// Messages whose handling failed are listed too: they were published.
    pub fn published(&self) -> Vec<Message> {
        self.log.as_ref().map(|l| l.lock().unwrap_or_else(|e| e.into_inner()).clone()).unwrap_or_default()
    }
}

#[async_trait]
impl Bus for LocalBus {
    async fn publish(&self, messages: &[Message]) -> Result<(), BusError> {
        let mut failed = Vec::new();
        for m in messages {
            if let Some(log) = &self.log {
                log.lock().unwrap_or_else(|e| e.into_inner()).push(m.clone());
            }
            for h in &self.handlers {
                if let Err(e) = h.handle(m).await {
                    tracing::warn!(message_id = %m.id, kind = %m.kind, "bus handler failed");
                    failed.push(format!("{} ({}): {e}", m.id, m.kind));
                }
            }
        }
        if failed.is_empty() { Ok(()) } else { Err(BusError(failed.join("; "))) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what it saw under its name into a shared journal; fails on a given message id.
    struct Handler {
        name: &'static str,
        fail_on: Option<&'static str>,
        journal: Arc<Mutex<Vec<String>>>,
    }

    #[async_trait]
    impl MessageHandler for Handler {
        async fn handle(&self, m: &Message) -> Result<(), BusError> {
            tokio::task::yield_now().await;
            self.journal.lock().unwrap().push(format!("{}:{}", self.name, m.id));
            if self.fail_on == Some(m.id.as_str()) { Err(BusError("nope".into())) } else { Ok(()) }
        }
    }

    fn msg(id: &str) -> Message {
        Message {
            id: id.into(),
            kind: ember_scoring::lead::MessageKind::Qualified,
            at: chrono::Utc::now(),
            lead_id: "ld".into(),
            data: serde_json::Value::Null,
        }
    }

    #[tokio::test]
    async fn every_handler_sees_every_message_in_order() {
        let journal = Arc::new(Mutex::new(Vec::new()));
        let h =
            |name, fail_on| Arc::new(Handler { name, fail_on, journal: journal.clone() }) as Arc<dyn MessageHandler>;
        let bus = LocalBus::new(vec![h("a", None), h("b", None)]).with_log();
        bus.publish(&[msg("1"), msg("2")]).await.unwrap();
        assert_eq!(*journal.lock().unwrap(), ["a:1", "b:1", "a:2", "b:2"]);
        assert_eq!(bus.published().iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["1", "2"]);
        assert!(LocalBus::new(vec![]).published().is_empty());
    }

    #[tokio::test]
    async fn a_failing_handler_does_not_stop_the_others() {
        let journal = Arc::new(Mutex::new(Vec::new()));
        let h =
            |name, fail_on| Arc::new(Handler { name, fail_on, journal: journal.clone() }) as Arc<dyn MessageHandler>;
        let bus = LocalBus::new(vec![h("a", Some("1")), h("b", None)]);
        let err = bus.publish(&[msg("1"), msg("2")]).await.unwrap_err();
        assert!(err.0.contains("1 (lead.qualified)"), "{err}");
        assert_eq!(*journal.lock().unwrap(), ["a:1", "b:1", "a:2", "b:2"]);
    }
}
