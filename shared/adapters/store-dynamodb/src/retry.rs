//! Waiting between attempts, for every DynamoDB request this crate retries itself (a
//! transaction DynamoDB cancelled for a conflict or throttling, an update that met a
//! transaction, batch items left unprocessed, an erasure's tombstone). The SDK's own retries
//! (throttled or failed HTTP attempts) come on top and are configured in `sdk`.

use std::time::Duration;

/// Exponential backoff with jitter: ~25 ms, 50 ms, 100 ms… (capped at 2 s).
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base = 25u64.saturating_mul(1 << attempt.min(6)).min(2000);
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) * base / 255;
    Duration::from_millis(base / 2 + jitter / 2)
}
