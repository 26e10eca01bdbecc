//! `Store::commit`: one `TransactWriteItems` (plus, for a merge too large for one transaction,
//! identity moves ahead of it), cancellation reasons mapped to `Duplicate` / `Conflict`; a
//! commit that changes only the lead is one conditional `UpdateItem` instead. A commit that
//! takes identities from another lead (`Commit::release`) updates that lead in the same
//! transaction, under its version. The commit's report counter increments ride in the same
//! transaction (see `tallies`).
//!
//! In three steps: the reads a merge needs (the retired lead's version and the identities
//! still pointing at it), here; the writes, planned without I/O ([`plan`]: items, conditions,
//! expressions, limits); sending them ([`execute`]).

mod execute;
mod plan;

use crate::keys::{self, ERASED, ID, IDENTITIES, Item, LEAD_ID, PK, VERSION, get_ss, lead_key};
use crate::retry::backoff;
use crate::{DynamoStore, sdk_err};
use aws_sdk_dynamodb::types::{KeysAndAttributes, ReturnConsumedCapacity};
use ember_service::ports::{Commit, StoreError};
use plan::{IdentityWrite, Target, build_err};

/// Keys per `BatchGetItem`.
const BATCH_GET: usize = 100;

impl DynamoStore {
    pub(crate) async fn commit_impl(&self, c: Commit) -> Result<u64, StoreError> {
        c.check_release()?;
        let id = c.lead.id.as_str();
        let new_version = plan::new_version(&c)?;
        plan::check_event_ids(&c)?;
        let (mut identities, claimed) = plan::claim_writes(&c)?;

        // A merge: the retired lead must be at its version; identities still pointing at it
        // (beyond the explicit claims) follow the survivor.
        let mut retire: Option<(&str, u64)> = None;
        if let Some((rid, rv)) = &c.retire {
            // (A lead retiring itself is refused without a read.)
            let rec = if rid == id { None } else { self.profile_meta(rid).await? };
            plan::check_retired(id, rid, *rv, rec.as_ref())?;
            let listed: Vec<String> = rec
                .as_ref()
                .map(|r| get_ss(r, IDENTITIES))
                .unwrap_or_default()
                .iter()
                .filter(|k| !claimed.contains(*k))
                .cloned()
                .collect();
            for key in self.owned_by(&listed, rid).await? {
                identities.push(IdentityWrite { key, expected: Some(rid.clone()) });
            }
            retire = Some((rid.as_str(), *rv));
        }

        // Every identity written here is recorded on the survivor (for merges and erasure).
        let mut all_keys: Vec<String> = identities.iter().map(|w| w.key.clone()).collect();
        all_keys.sort();

        let target = Target {
            table: &self.table,
            shards: self.shards,
            expires_at: self.retention.map(|r| (chrono::Utc::now() + r).timestamp()),
        };
        // Too many items for one transaction: a merge moves part of the retired lead's
        // identities ahead of the main transaction (guarded by both leads' versions).
        let moved = plan::overflow(&c, &mut identities, retire)?;
        if let (false, Some(retired), Some(ev)) = (moved.is_empty(), retire, c.expected_version) {
            self.move_identities(&target, (id, ev), retired, &moved).await?;
        }

        let plan = plan::transaction(&target, &c, new_version, &identities, retire, &all_keys)?;
        self.execute(plan).await?;
        Ok(new_version)
    }

    /// Version and identity set of a lead (consistent read), `None` when absent or erased
    /// (a tombstone).
    async fn profile_meta(&self, lead_id: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(lead_key(lead_id)))
            .consistent_read(true)
            .projection_expression("#v, #ids, #erased")
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_names("#ids", IDENTITIES)
            .expression_attribute_names("#erased", ERASED)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_err("GetItem", e))?;
        self.metrics.read(out.consumed_capacity());
        Ok(out.item.filter(|item| !item.contains_key(ERASED)))
    }

    /// Which of the identity `keys` point at `owner` now (consistent reads).
    pub(crate) async fn owned_by(&self, keys: &[String], owner: &str) -> Result<Vec<String>, StoreError> {
        let mut owned = Vec::new();
        for chunk in keys.chunks(BATCH_GET) {
            let mut pending: Vec<Item> = chunk.iter().map(|k| keys::key(k.clone(), ID)).collect();
            let mut attempt = 0u32;
            while !pending.is_empty() {
                let ka = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .projection_expression("#pk, #lead")
                    .expression_attribute_names("#pk", PK)
                    .expression_attribute_names("#lead", LEAD_ID)
                    .build()
                    .map_err(build_err)?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, ka)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(|e| sdk_err("BatchGetItem", e))?;
                for c in out.consumed_capacity() {
                    self.metrics.read(Some(c));
                }
                for item in out.responses.as_ref().and_then(|r| r.get(&self.table)).into_iter().flatten() {
                    if let (Some(o), Some(k)) = (keys::get_s(item, LEAD_ID), keys::get_s(item, PK))
                        && o == owner
                    {
                        owned.push(k.to_string());
                    }
                }
                if let Some(rest) = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                    pending = rest.keys;
                    attempt += 1;
                    if attempt >= 8 {
                        return Err(StoreError::Other(
                            "dynamodb BatchGetItem: keys left unprocessed after retries".into(),
                        ));
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        }
        Ok(owned)
    }
}
