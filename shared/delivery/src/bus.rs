//! In-process bus.

use async_trait::async_trait;
use ember_scoring::lead::Message;
use ember_service::ports::{Bus, BusError, MessageHandler};
use std::sync::{Arc, Mutex};

/// Delivers every published message to every handler, in order, before `publish` returns.
pub struct LocalBus {
    handlers: Vec<Arc<dyn MessageHandler>>,
    log: Mutex<Vec<Message>>,
}

impl LocalBus {
    /// A bus with these handlers.
    pub fn new(handlers: Vec<Arc<dyn MessageHandler>>) -> LocalBus {
        LocalBus { handlers, log: Mutex::new(Vec::new()) }
    }

    /// Every message published so far.
    pub fn published(&self) -> Vec<Message> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[async_trait]
impl Bus for LocalBus {
    async fn publish(&self, messages: &[Message]) -> Result<(), BusError> {
        let mut failed = Vec::new();
        for m in messages {
            for h in &self.handlers {
                if let Err(e) = h.handle(m).await {
                    failed.push(format!("{}: {e}", m.id));
                }
            }
            self.log.lock().unwrap_or_else(|e| e.into_inner()).push(m.clone());
        }
        if failed.is_empty() { Ok(()) } else { Err(BusError(failed.join("; "))) }
    }
}
