//! Counters: SDK round trips (an interceptor) and consumed / estimated capacity.

use crate::keys::Item;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::types::{AttributeValue, ConsumedCapacity};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Capacity units are kept in thousandths (DynamoDB reports multiples of 0.5).
const MILLI: f64 = 1000.0;

/// Shared counters of one store (and its clones).
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    calls: AtomicU64,
    by_operation: Mutex<BTreeMap<String, u64>>,
    read_milli: AtomicU64,
    write_milli: AtomicU64,
    estimated_write_milli: AtomicU64,
    counter_write_milli: AtomicU64,
}

fn to_milli(units: f64) -> u64 {
    if units.is_finite() && units > 0.0 { (units * MILLI).round() as u64 } else { 0 }
}

impl Metrics {
    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    pub(crate) fn calls_by_operation(&self) -> BTreeMap<String, u64> {
        self.by_operation.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub(crate) fn consumed(&self) -> (f64, f64) {
        (
            self.read_milli.load(Ordering::Relaxed) as f64 / MILLI,
            self.write_milli.load(Ordering::Relaxed) as f64 / MILLI,
        )
    }

    pub(crate) fn estimated_write_units(&self) -> f64 {
        self.estimated_write_milli.load(Ordering::Relaxed) as f64 / MILLI
    }

    /// Adds the capacity a read reported.
    pub(crate) fn read(&self, c: Option<&ConsumedCapacity>) {
        if let Some(u) = c.and_then(ConsumedCapacity::capacity_units) {
            self.read_milli.fetch_add(to_milli(u), Ordering::Relaxed);
        }
    }

    /// Adds the capacity a write reported.
    pub(crate) fn write(&self, c: Option<&ConsumedCapacity>) {
        if let Some(u) = c.and_then(ConsumedCapacity::capacity_units) {
            self.write_milli.fetch_add(to_milli(u), Ordering::Relaxed);
        }
    }

    pub(crate) fn estimated_counter_write_units(&self) -> f64 {
        self.counter_write_milli.load(Ordering::Relaxed) as f64 / MILLI
    }

    /// Adds estimated write units of report counter items (part of [`Self::estimate_write`]).
    pub(crate) fn estimate_counter_write(&self, units: u64) {
        self.counter_write_milli.fetch_add(units.saturating_mul(1000), Ordering::Relaxed);
    }

    /// Adds estimated write units (see [`write_units`]).
    pub(crate) fn estimate_write(&self, units: u64) {
        self.estimated_write_milli.fetch_add(units.saturating_mul(1000), Ordering::Relaxed);
    }

    fn count(&self, operation: &str) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        *self.by_operation.lock().unwrap_or_else(PoisonError::into_inner).entry(operation.to_string()).or_default() +=
            1;
    }
}

/// Counts every HTTP attempt the client sends (retries included): one round trip each.
#[derive(Debug)]
pub(crate) struct CountCalls(pub(crate) Arc<Metrics>);

impl Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "EmberCountCalls"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // DynamoDB's JSON protocol names the operation in `X-Amz-Target: DynamoDB_20120810.<Op>`.
        let op =
            context.request().headers().get("x-amz-target").and_then(|t| t.rsplit('.').next()).unwrap_or("unknown");
        self.0.count(op);
        Ok(())
    }
}

/// Approximate stored size of an attribute value, by DynamoDB's rules (names and values in
/// UTF-8 bytes, numbers ~1 byte per 2 digits + 1, small overheads for containers).
fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(v) => 3 + v.iter().map(|x| 1 + value_size(x)).sum::<usize>(),
        AttributeValue::M(m) => 3 + m.iter().map(|(k, x)| 1 + k.len() + value_size(x)).sum::<usize>(),
        _ => 0,
    }
}

/// Approximate stored size of an item in bytes.
pub(crate) fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// Write capacity units of writing an item of `bytes` (1 per started KB; ×2 in a transaction).
/// Secondary index updates are extra and not counted here.
pub(crate) fn write_units(bytes: usize, transactional: bool) -> u64 {
    let units = bytes.max(1).div_ceil(1024) as u64;
    if transactional { units * 2 } else { units }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_units() {
        let item: Item = [
            ("PK".to_string(), AttributeValue::S("LEAD#abc".into())),
            ("version".to_string(), AttributeValue::N("12".into())),
        ]
        .into();
        assert_eq!(item_size(&item), 2 + 8 + 7 + 2);
        assert_eq!(write_units(1, true), 2);
        assert_eq!(write_units(1024, false), 1);
        assert_eq!(write_units(1025, true), 4);
        let m = Metrics::default();
        m.write(Some(&ConsumedCapacity::builder().capacity_units(2.5).build()));
        m.read(Some(&ConsumedCapacity::builder().capacity_units(0.5).build()));
        m.read(None);
        assert_eq!(m.consumed(), (0.5, 2.5));
    }
}
