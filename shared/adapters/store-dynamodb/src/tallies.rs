//! Report counters on DynamoDB: written as extra items of the commit's transaction, read with
//! one `Query` per month and shard.
//!
//! | item | `PK` | `SK` | attributes |
//! |---|---|---|---|
//! | counter | `AGG#<yyyy-mm>#<shard>` | `<yyyy-mm-dd>#<key>` | `n` (N) |
//!
//! - A commit adds each increment with an `Update … ADD n :delta` item (no condition) inside the
//!   same `TransactWriteItems` as the lead, so the counters move exactly when the lead does —
//!   never twice for a retried event (the dedupe put fails the whole transaction), never for a
//!   failed one. A counter item is ~60 bytes: 1 write unit, 2 inside a transaction. Most events
//!   change no counter (a page view of a known lead moves none unless a score crosses a tenth of
//!   its range); a new lead changes about `2 + score groups`.
//! - **Shards** (`<shard>` = FNV-1a(lead id) mod [`COUNTER_SHARDS`]): the same counter of the same
//!   day is `COUNTER_SHARDS` items, so concurrent transactions of different leads rarely touch the
//!   same item (DynamoDB cancels concurrent transactions on one item), and a month's writes
//!   spread over that many partition keys.
//! - **Reads**: for each month of the period and each shard, a consistent `Query` on
//!   `PK = AGG#<month>#<shard> AND SK BETWEEN "<from>#" AND "<to>$"` (`$` sorts right after `#`),
//!   summed per (day, key). The cost follows the number of counters in the period, never the
//!   number of leads; there is no `Scan`.
//! - Counters are never deleted: erasure removes the person, not the anonymous counts.

use crate::keys::{self, Item, PK, SK, shard_of};
use crate::{DynamoStore, sdk_err};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, Update};
use chrono::NaiveDate;
use ember_service::ports::{StoreError, Tally};

/// Shards of the counter partitions (fixed: readers query every one).
pub const COUNTER_SHARDS: u32 = 4;
/// Name of the number attribute a counter item adds its increments to (`ADD #n :d`).
const N: &str = "n";

fn day_text(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// The key of a counter item.
pub(crate) fn counter_key(lead_id: &str, t: &Tally) -> Item {
    let pk = format!("AGG#{}#{}", t.day.format("%Y-%m"), shard_of(lead_id, COUNTER_SHARDS));
    keys::key(pk, format!("{}#{}", day_text(t.day), t.key))
}

/// The transaction item adding one increment, with its approximate size.
pub(crate) fn counter_update(table: &str, lead_id: &str, t: &Tally) -> Result<(Update, usize), StoreError> {
    let key = counter_key(lead_id, t);
    let bytes = crate::metrics::item_size(&key) + N.len() + 8;
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(key))
        .update_expression("ADD #n :d")
        .expression_attribute_names("#n", N)
        .expression_attribute_values(":d", keys::n(t.n))
        .build()
        .map_err(|e| StoreError::Other(format!("dynamodb: building a counter update: {e}")))?;
    Ok((update, bytes))
}

impl DynamoStore {
    pub(crate) async fn tallies_impl(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<Tally>, StoreError> {
        let period = ember_service::ember_reports::Period { from, to };
        let (lo, hi) = (format!("{}#", day_text(from)), format!("{}$", day_text(to)));
        let mut tasks = tokio::task::JoinSet::new();
        for month in period.months() {
            for shard in 0..COUNTER_SHARDS {
                let (client, table, metrics) = (self.client.clone(), self.table.clone(), self.metrics.clone());
                let (pk, lo, hi) = (format!("AGG#{month}#{shard}"), lo.clone(), hi.clone());
                tasks.spawn(async move {
                    let mut items = Vec::new();
                    let mut start: Option<Item> = None;
                    loop {
                        let out = client
                            .query()
                            .table_name(&table)
                            .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
                            .expression_attribute_names("#pk", PK)
                            .expression_attribute_names("#sk", SK)
                            .expression_attribute_names("#n", N)
                            .expression_attribute_values(":pk", keys::s(pk.clone()))
                            .expression_attribute_values(":lo", keys::s(lo.clone()))
                            .expression_attribute_values(":hi", keys::s(hi.clone()))
                            .projection_expression("#sk, #n")
                            .consistent_read(true)
                            .set_exclusive_start_key(start.take())
                            .return_consumed_capacity(ReturnConsumedCapacity::Total)
                            .send()
                            .await
                            .map_err(|e| sdk_err("Query", e))?;
                        metrics.read(out.consumed_capacity());
                        items.extend(out.items.unwrap_or_default());
                        match out.last_evaluated_key {
                            Some(k) if !k.is_empty() => start = Some(k),
                            _ => return Ok::<_, StoreError>(items),
                        }
                    }
                });
            }
        }
        let mut out = Vec::new();
        while let Some(r) = tasks.join_next().await {
            for item in r.map_err(|e| StoreError::Other(format!("counter query task: {e}")))?? {
                let sk = keys::get_s(&item, SK).unwrap_or_default();
                let Some((day, key)) = sk.split_once('#') else { continue };
                let Ok(day) = NaiveDate::parse_from_str(day, "%Y-%m-%d") else { continue };
                let n = match item.get(N) {
                    Some(AttributeValue::N(v)) => v.parse::<i64>().unwrap_or(0),
                    _ => 0,
                };
                out.push(Tally { day, key: key.to_string(), n });
            }
        }
        Ok(ember_service::ember_reports::facts::normalize(out))
    }
}
