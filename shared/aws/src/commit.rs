//! `Store::commit`: one `TransactWriteItems` (plus, for a merge too large for one transaction,
//! identity moves ahead of it), cancellation reasons mapped to `Duplicate` / `Conflict`; a
//! commit that changes only the lead is one conditional `UpdateItem` instead. A commit that
//! takes identities from another lead (`Commit::release`) updates that lead in the same
//! transaction, under its version. The
//! commit's report counter increments ride in the same transaction (see `tallies`).

use crate::keys::{
    self, BODY, EMAIL, ERASED, EXPIRES_AT, ID, IDENTITIES, Item, LEAD_ID, PK, VERSION, dedupe_pk, due_key, event_sk,
    get_ss, get_u64, lead_key, lead_pk, n, s, shard_of, shard_value,
};
use crate::metrics::{item_size, write_units};
use crate::{DynamoStore, sdk_err};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, KeysAndAttributes, Put, ReturnConsumedCapacity, TransactWriteItem, Update,
};
use ember_service::ports::{Commit, DueKind, Release, StoreError};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// DynamoDB's limit on items in one transaction.
pub(crate) const MAX_TRANSACTION_ITEMS: usize = 100;
/// DynamoDB's limit on the size of one transaction.
const MAX_TRANSACTION_BYTES: usize = 4 * 1024 * 1024;
/// DynamoDB's limit on the size of one item.
const MAX_ITEM_BYTES: usize = 400 * 1024;
/// Attempts at one transaction when DynamoDB throttles it or reports a transaction conflict.
const ATTEMPTS: u32 = 4;
/// Keys per `BatchGetItem`.
const BATCH_GET: usize = 100;

/// What an item of the transaction is, to map its cancellation reason.
#[derive(Debug, Clone)]
enum Role {
    /// The dedupe put of an event id.
    Dedupe(String),
    /// An event put.
    Event,
    /// An identity put (claim or re-point).
    Identity,
    /// The retired lead's delete, or a guard on it.
    Retire,
    /// The committed lead's update, or a guard on it.
    Lead,
    /// The update of the lead giving up identities (guarded by its version).
    Release,
    /// A report counter increment (unconditional).
    Counter,
}

/// One transaction item with its role and (approximate) size.
struct Planned {
    item: TransactWriteItem,
    role: Role,
    bytes: usize,
}

/// An identity to point at the committed lead.
struct IdentityWrite {
    key: String,
    /// `None`: must not exist; `Some(owner)`: must point at `owner`.
    expected: Option<String>,
}

fn build_err(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Other(format!("dynamodb: building a transaction item: {e}"))
}

fn names(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Approximate request size of a key plus expression values.
fn key_bytes(item: &Item) -> usize {
    item_size(item) + 64
}

impl DynamoStore {
    pub(crate) async fn commit_impl(&self, c: Commit) -> Result<u64, StoreError> {
        c.check_release()?;
        let id = c.lead.id.as_str();
        let new_version = match c.expected_version {
            None => 1,
            Some(v) => v.checked_add(1).ok_or_else(|| StoreError::Other(format!("lead {id}: version overflow")))?,
        };

        // Event ids must be new, also within the commit (DynamoDB refuses two operations on
        // one item in a transaction, so this is checked here).
        let mut event_ids = HashSet::new();
        for ev in &c.events {
            if !event_ids.insert(ev.event.id.as_str()) {
                return Err(StoreError::Duplicate(ev.event.id.clone()));
            }
        }

        // One write per identity. A second claim of the same identity sees it owned by this lead.
        let mut identities: Vec<IdentityWrite> = Vec::with_capacity(c.claims.len());
        let mut claimed = HashSet::new();
        for (i, claim) in c.claims.iter().enumerate() {
            let key = claim.identity.key();
            if claimed.contains(&key) {
                if claim.expected_owner.as_deref() == Some(id) {
                    continue;
                }
                return Err(StoreError::Conflict(format!(
                    "lead {id}: claim #{i} repeats an identity of the same commit"
                )));
            }
            claimed.insert(key.clone());
            identities.push(IdentityWrite { key, expected: claim.expected_owner.clone() });
        }

        // A merge: the retired lead must be at its version; identities still pointing at it
        // (beyond the explicit claims) follow the survivor.
        let mut retire: Option<(&str, u64)> = None;
        if let Some((rid, rv)) = &c.retire {
            if rid == id {
                return Err(StoreError::Conflict(format!("lead {id} cannot retire itself")));
            }
            let rec = self.profile_meta(rid).await?;
            match rec.as_ref().and_then(|r| get_u64(r, VERSION)) {
                Some(v) if v == *rv => {}
                Some(v) => {
                    return Err(StoreError::Conflict(format!("retired lead {rid} is at version {v}, expected {rv}")));
                }
                None => {
                    return Err(StoreError::Conflict(format!("retired lead {rid} does not exist")));
                }
            }
            let listed: Vec<String> = rec
                .as_ref()
                .map(|r| get_ss(r, IDENTITIES))
                .unwrap_or_default()
                .iter()
                .filter(|k| !claimed.contains(*k))
                .cloned()
                .collect();
            for key in self.owned_by(&listed, rid).await? {
                claimed.insert(key.clone());
                identities.push(IdentityWrite { key, expected: Some(rid.clone()) });
            }
            retire = Some((rid.as_str(), *rv));
        }

        // Every identity written here is recorded on the survivor (for merges and erasure).
        let mut all_keys: Vec<String> = identities.iter().map(|w| w.key.clone()).collect();
        all_keys.sort();

        // Too many items for one transaction: a merge moves part of the retired lead's
        // identities ahead of the main transaction (guarded by both leads' versions).
        let total = 2 * c.events.len()
            + identities.len()
            + usize::from(retire.is_some())
            + usize::from(c.release.is_some())
            + 1
            + c.tallies.len();
        if total > MAX_TRANSACTION_ITEMS {
            let excess = total - MAX_TRANSACTION_ITEMS;
            let movable = match (retire, c.expected_version) {
                (Some((rid, _)), Some(_)) => identities.iter().filter(|w| w.expected.as_deref() == Some(rid)).count(),
                _ => 0,
            };
            if movable < excess {
                return Err(StoreError::Other(format!(
                    "lead {id}: commit too large for one DynamoDB transaction: {total} items ({} events × 2, {} \
                     identities, {} counters, the lead{}) > {MAX_TRANSACTION_ITEMS}",
                    c.events.len(),
                    identities.len(),
                    c.tallies.len(),
                    if retire.is_some() { ", the retired lead" } else { "" },
                )));
            }
            if let (Some((rid, rv)), Some(ev)) = (retire, c.expected_version) {
                let mut moved = Vec::with_capacity(excess);
                let mut i = identities.len();
                while moved.len() < excess && i > 0 {
                    i -= 1;
                    if identities[i].expected.as_deref() == Some(rid) {
                        moved.push(identities.remove(i).key);
                    }
                }
                self.move_identities(id, ev, rid, rv, &moved).await?;
            }
        }

        let mut plan: Vec<Planned> = Vec::with_capacity(total.min(MAX_TRANSACTION_ITEMS));
        let expires_at = self.retention.map(|r| (chrono::Utc::now() + r).timestamp());
        for ev in &c.events {
            let item = keys::key(dedupe_pk(&ev.event.id), ID);
            let bytes = item_size(&item);
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(#pk)")
                .set_expression_attribute_names(Some(names(&[("#pk", PK)])))
                .build()
                .map_err(build_err)?;
            plan.push(Planned {
                item: TransactWriteItem::builder().put(put).build(),
                role: Role::Dedupe(ev.event.id.clone()),
                bytes,
            });

            let body =
                serde_json::to_string(ev).map_err(|e| StoreError::Other(format!("serializing an event: {e}")))?;
            let mut item = keys::key(lead_pk(&ev.lead_id), event_sk(ev.event.at, &ev.event.id));
            item.insert(BODY.into(), s(body));
            if let Some(t) = expires_at {
                item.insert(EXPIRES_AT.into(), n(t));
            }
            let bytes = item_size(&item);
            if bytes > MAX_ITEM_BYTES {
                return Err(StoreError::Other(format!(
                    "event {}: {bytes} bytes, over DynamoDB's {MAX_ITEM_BYTES}-byte item limit",
                    ev.event.id
                )));
            }
            let put = Put::builder().table_name(&self.table).set_item(Some(item)).build().map_err(build_err)?;
            plan.push(Planned { item: TransactWriteItem::builder().put(put).build(), role: Role::Event, bytes });
        }

        for w in &identities {
            let mut item = keys::key(w.key.clone(), ID);
            item.insert(LEAD_ID.into(), s(id));
            let bytes = item_size(&item);
            let put = Put::builder().table_name(&self.table).set_item(Some(item));
            let put = match &w.expected {
                None => put
                    .condition_expression("attribute_not_exists(#pk)")
                    .set_expression_attribute_names(Some(names(&[("#pk", PK)]))),
                Some(owner) => put
                    .condition_expression("#lead = :owner")
                    .set_expression_attribute_names(Some(names(&[("#lead", LEAD_ID)])))
                    .expression_attribute_values(":owner", s(owner)),
            };
            plan.push(Planned {
                item: TransactWriteItem::builder().put(put.build().map_err(build_err)?).build(),
                role: Role::Identity,
                bytes,
            });
        }

        if let Some((rid, rv)) = retire {
            let key = lead_key(rid);
            let bytes = key_bytes(&key);
            let del = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key))
                .condition_expression("#v = :rv AND attribute_not_exists(#erased)")
                .set_expression_attribute_names(Some(names(&[("#v", VERSION), ("#erased", ERASED)])))
                .expression_attribute_values(":rv", n(rv))
                .build()
                .map_err(build_err)?;
            plan.push(Planned { item: TransactWriteItem::builder().delete(del).build(), role: Role::Retire, bytes });
        }

        if let Some(r) = &c.release {
            plan.push(self.release_update(r)?);
        }

        for t in &c.tallies {
            let (update, bytes) = crate::tallies::counter_update(&self.table, id, t)?;
            plan.push(Planned { item: TransactWriteItem::builder().update(update).build(), role: Role::Counter, bytes });
        }

        plan.push(self.lead_update(&c, new_version, &all_keys)?);

        let bytes: usize = plan.iter().map(|p| p.bytes).sum();
        if bytes > MAX_TRANSACTION_BYTES {
            return Err(StoreError::Other(format!(
                "lead {id}: commit of about {bytes} bytes, over DynamoDB's {MAX_TRANSACTION_BYTES}-byte transaction limit"
            )));
        }
        if plan.len() == 1 && matches!(plan[0].role, Role::Lead) {
            // Only the lead changes (a scheduled job's commit, a seeded lead): one conditional
            // UpdateItem is as atomic as a one-item transaction, at half the write units.
            self.update_alone(plan.remove(0)).await?;
        } else {
            self.transact(plan).await?;
        }
        Ok(new_version)
    }

    /// The lead's update: body, version, email, due attributes; identities added to its set.
    fn lead_update(&self, c: &Commit, new_version: u64, identity_keys: &[String]) -> Result<Planned, StoreError> {
        let id = c.lead.id.as_str();
        let body = serde_json::to_string(&c.lead).map_err(|e| StoreError::Other(format!("serializing a lead: {e}")))?;
        let mut names: HashMap<String, String> = HashMap::new();
        let mut values: HashMap<String, AttributeValue> = HashMap::new();
        let mut set = vec!["#body = :body".to_string(), "#v = :nv".to_string()];
        let mut remove = Vec::new();
        names.insert("#body".into(), BODY.into());
        names.insert("#v".into(), VERSION.into());
        values.insert(":nv".into(), n(new_version));
        // Size of the item as written (the basis of the write's capacity units).
        let mut bytes = lead_pk(id).len() + keys::PROFILE.len() + 4 + BODY.len() + body.len() + VERSION.len() + 8;
        values.insert(":body".into(), s(body));

        names.insert("#email".into(), EMAIL.into());
        match &c.lead.email {
            Some(e) => {
                set.push("#email = :email".into());
                bytes += EMAIL.len() + e.len();
                values.insert(":email".into(), s(e));
            }
            None => remove.push("#email".to_string()),
        }

        for (kind, dn) in keys::ALL_DUE {
            let (ns, na) = (format!("#{}_s", dn.kind), format!("#{}_a", dn.kind));
            names.insert(ns.clone(), dn.shard.into());
            names.insert(na.clone(), dn.at.into());
            match DueKind::of(kind, &c.due) {
                Some(at) => {
                    let (vs, va) = (format!(":{}_s", dn.kind), format!(":{}_a", dn.kind));
                    let shard = shard_value(dn, shard_of(id, self.shards));
                    let at = due_key(at, id);
                    bytes += dn.shard.len() + shard.len() + dn.at.len() + at.len();
                    set.push(format!("{ns} = {vs}"));
                    set.push(format!("{na} = {va}"));
                    values.insert(vs, s(shard));
                    values.insert(va, s(at));
                }
                None => {
                    remove.push(ns);
                    remove.push(na);
                }
            }
        }

        let mut expr = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expr.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        if !identity_keys.is_empty() {
            names.insert("#ids".into(), IDENTITIES.into());
            bytes += IDENTITIES.len() + identity_keys.iter().map(String::len).sum::<usize>();
            values.insert(":ids".into(), AttributeValue::Ss(identity_keys.to_vec()));
            expr.push_str(" ADD #ids :ids");
        }
        let cond = match c.expected_version {
            None => {
                names.insert("#pk".into(), PK.into());
                "attribute_not_exists(#pk)".to_string()
            }
            Some(v) => {
                // A tombstone (an erasure under way) is at no version a commit may expect.
                names.insert("#erased".into(), ERASED.into());
                values.insert(":ev".into(), n(v));
                "#v = :ev AND attribute_not_exists(#erased)".to_string()
            }
        };
        if bytes > MAX_ITEM_BYTES {
            return Err(StoreError::Other(format!(
                "lead {id}: about {bytes} bytes, over DynamoDB's {MAX_ITEM_BYTES}-byte item limit"
            )));
        }
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(lead_key(id)))
            .update_expression(expr)
            .condition_expression(cond)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(build_err)?;
        Ok(Planned { item: TransactWriteItem::builder().update(update).build(), role: Role::Lead, bytes })
    }

    /// The update of a lead giving up identities: its body and version (`version = :expected`),
    /// the released keys taken out of its `identities` set; email and due attributes stay
    /// (only its identities change).
    fn release_update(&self, r: &Release) -> Result<Planned, StoreError> {
        let rid = r.lead.id.as_str();
        let body =
            serde_json::to_string(&r.lead).map_err(|e| StoreError::Other(format!("serializing a lead: {e}")))?;
        let next = r.expected_version.checked_add(1).ok_or_else(|| StoreError::Other(format!("lead {rid}: version overflow")))?;
        let released: Vec<String> = r.identities.iter().map(|i| i.key()).collect();
        let bytes = lead_pk(rid).len() + keys::PROFILE.len() + 4 + BODY.len() + body.len() + VERSION.len() + 8;
        if bytes > MAX_ITEM_BYTES {
            return Err(StoreError::Other(format!(
                "lead {rid}: about {bytes} bytes, over DynamoDB's {MAX_ITEM_BYTES}-byte item limit"
            )));
        }
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(lead_key(rid)))
            .condition_expression("#v = :ev AND attribute_not_exists(#erased)")
            .expression_attribute_names("#erased", ERASED)
            .expression_attribute_names("#body", BODY)
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_values(":body", s(body))
            .expression_attribute_values(":nv", n(next))
            .expression_attribute_values(":ev", n(r.expected_version));
        update = if released.is_empty() {
            update.update_expression("SET #body = :body, #v = :nv")
        } else {
            update
                .update_expression("SET #body = :body, #v = :nv DELETE #ids :ids")
                .expression_attribute_names("#ids", IDENTITIES)
                .expression_attribute_values(":ids", AttributeValue::Ss(released))
        };
        Ok(Planned {
            item: TransactWriteItem::builder().update(update.build().map_err(build_err)?).build(),
            role: Role::Release,
            bytes,
        })
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

    /// Points `keys` (owned by `rid`, or already by `id`) at `id`, in transactions of at most
    /// [`MAX_TRANSACTION_ITEMS`], each guarded by both leads' versions and recording the keys
    /// on the survivor. Used ahead of a merge's main transaction when it would be too large;
    /// not atomic with it: if the merge then fails, the moved identities already point at the
    /// survivor (which exists), and a retried merge accepts them there.
    async fn move_identities(&self, id: &str, ev: u64, rid: &str, rv: u64, keys: &[String]) -> Result<(), StoreError> {
        for chunk in keys.chunks(MAX_TRANSACTION_ITEMS - 2) {
            let mut plan = Vec::with_capacity(chunk.len() + 2);
            let key = lead_key(rid);
            let bytes = key_bytes(&key);
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(key))
                .condition_expression("#v = :rv AND attribute_not_exists(#erased)")
                .expression_attribute_names("#v", VERSION)
                .expression_attribute_names("#erased", ERASED)
                .expression_attribute_values(":rv", n(rv))
                .build()
                .map_err(build_err)?;
            plan.push(Planned {
                item: TransactWriteItem::builder().condition_check(check).build(),
                role: Role::Retire,
                bytes,
            });
            let key = lead_key(id);
            let bytes = key_bytes(&key) + chunk.iter().map(String::len).sum::<usize>();
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key))
                .update_expression("ADD #ids :ids")
                .condition_expression("#v = :ev AND attribute_not_exists(#erased)")
                .expression_attribute_names("#ids", IDENTITIES)
                .expression_attribute_names("#v", VERSION)
                .expression_attribute_names("#erased", ERASED)
                .expression_attribute_values(":ids", AttributeValue::Ss(chunk.to_vec()))
                .expression_attribute_values(":ev", n(ev))
                .build()
                .map_err(build_err)?;
            plan.push(Planned { item: TransactWriteItem::builder().update(update).build(), role: Role::Lead, bytes });
            for k in chunk {
                let mut item = keys::key(k.clone(), ID);
                item.insert(LEAD_ID.into(), s(id));
                let bytes = item_size(&item);
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression("#lead = :rid OR #lead = :id")
                    .expression_attribute_names("#lead", LEAD_ID)
                    .expression_attribute_values(":rid", s(rid))
                    .expression_attribute_values(":id", s(id))
                    .build()
                    .map_err(build_err)?;
                plan.push(Planned { item: TransactWriteItem::builder().put(put).build(), role: Role::Identity, bytes });
            }
            self.transact(plan).await?;
        }
        Ok(())
    }

    /// The lead's update on its own: the planned transaction item as a conditional `UpdateItem`,
    /// retried on transaction conflicts (the SDK retries throttling), never on a failed condition.
    async fn update_alone(&self, planned: Planned) -> Result<(), StoreError> {
        let units = write_units(planned.bytes, false);
        let Some(u) = planned.item.update else {
            return Err(StoreError::Other("dynamodb: a lead commit without its update".into()));
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .client
                .update_item()
                .table_name(u.table_name.clone())
                .set_key(Some(u.key.clone()))
                .update_expression(u.update_expression.clone())
                .set_condition_expression(u.condition_expression.clone())
                .set_expression_attribute_names(u.expression_attribute_names.clone())
                .set_expression_attribute_values(u.expression_attribute_values.clone())
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await;
            match result {
                Ok(out) => {
                    self.metrics.write(out.consumed_capacity());
                    self.metrics.estimate_write(units);
                    return Ok(());
                }
                Err(e) => match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(_)) => {
                        return Err(StoreError::Conflict("the lead changed (version check failed)".into()));
                    }
                    // The lead is inside another request's transaction: like a transaction
                    // conflict, retried after a pause.
                    Some(UpdateItemError::TransactionConflictException(_)) if attempt < ATTEMPTS => {
                        tracing::debug!(attempt, "dynamodb update met a transaction; retried");
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                    Some(UpdateItemError::TransactionConflictException(_)) => {
                        return Err(StoreError::Conflict(format!(
                            "the lead is being changed by other requests (transaction conflict, {attempt} attempts)"
                        )));
                    }
                    _ => return Err(sdk_err("UpdateItem", e)),
                },
            }
        }
    }

    /// Runs one transaction: retried on throttling and transaction conflicts (with backoff and
    /// a new request token: nothing was written), never on a failed condition.
    async fn transact(&self, plan: Vec<Planned>) -> Result<(), StoreError> {
        let units: u64 = plan.iter().map(|p| write_units(p.bytes, true)).sum();
        let counter_units: u64 =
            plan.iter().filter(|p| matches!(p.role, Role::Counter)).map(|p| write_units(p.bytes, true)).sum();
        let roles: Vec<Role> = plan.iter().map(|p| p.role.clone()).collect();
        let items: Vec<TransactWriteItem> = plan.into_iter().map(|p| p.item).collect();
        let mut attempt = 0;
        loop {
            attempt += 1;
            // The token makes the SDK's own retries (after a lost response) idempotent.
            let token = uuid::Uuid::new_v4().simple().to_string();
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .client_request_token(token)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await;
            match result {
                Ok(out) => {
                    for c in out.consumed_capacity() {
                        self.metrics.write(Some(c));
                    }
                    self.metrics.estimate_write(units);
                    self.metrics.estimate_counter_write(counter_units);
                    return Ok(());
                }
                Err(e) => match classify(e, &roles) {
                    Verdict::Fail(err) => return Err(err),
                    Verdict::Retry(err) => {
                        if attempt >= ATTEMPTS {
                            return Err(err);
                        }
                        tracing::debug!(attempt, error = %err, "dynamodb transaction retried");
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                },
            }
        }
    }
}

/// Exponential backoff with jitter: ~25 ms, 50 ms, 100 ms… (capped at 2 s).
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base = 25u64.saturating_mul(1 << attempt.min(6)).min(2000);
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) * base / 255;
    Duration::from_millis(base / 2 + jitter / 2)
}

enum Verdict {
    Fail(StoreError),
    Retry(StoreError),
}

/// Maps a failed transaction. With several failed conditions, the lead's own version wins
/// (as in the embedded store: it is checked first), then duplicates, then the rest.
fn classify<R: std::fmt::Debug>(e: SdkError<TransactWriteItemsError, R>, roles: &[Role]) -> Verdict {
    let service = match &e {
        SdkError::ServiceError(se) => se.err(),
        // Timeouts and connection failures the SDK already retried: the request token makes a
        // retry safe, but a definitive answer is better left to the caller.
        _ => return Verdict::Fail(sdk_err("TransactWriteItems", e)),
    };
    match service {
        TransactWriteItemsError::TransactionCanceledException(tc) => {
            let codes: Vec<&str> = tc.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None")).collect();
            let failed = |pred: &dyn Fn(&Role) -> bool| {
                codes
                    .iter()
                    .zip(roles)
                    .find(|(c, r)| **c == "ConditionalCheckFailed" && pred(r))
                    .map(|(_, r)| r.clone())
            };
            if failed(&|r| matches!(r, Role::Lead)).is_some() {
                return Verdict::Fail(StoreError::Conflict("the lead changed (version check failed)".into()));
            }
            if let Some(Role::Dedupe(id)) = failed(&|r| matches!(r, Role::Dedupe(_))) {
                return Verdict::Fail(StoreError::Duplicate(id));
            }
            if failed(&|r| matches!(r, Role::Retire)).is_some() {
                return Verdict::Fail(StoreError::Conflict("the retired lead changed (version check failed)".into()));
            }
            if failed(&|r| matches!(r, Role::Release)).is_some() {
                return Verdict::Fail(StoreError::Conflict(
                    "the lead giving up an identity changed (version check failed)".into(),
                ));
            }
            if failed(&|r| matches!(r, Role::Identity | Role::Event)).is_some() {
                return Verdict::Fail(StoreError::Conflict(
                    "an identity is owned by another lead (claim failed)".into(),
                ));
            }
            let summary = codes.iter().filter(|c| **c != "None").copied().collect::<Vec<_>>().join(", ");
            if codes.contains(&"TransactionConflict") {
                return Verdict::Retry(StoreError::Conflict(format!(
                    "concurrent transaction on the same items ({summary})"
                )));
            }
            if codes
                .iter()
                .any(|c| matches!(*c, "ThrottlingError" | "ProvisionedThroughputExceeded" | "RequestLimitExceeded"))
            {
                return Verdict::Retry(StoreError::Other(format!("dynamodb: transaction throttled ({summary})")));
            }
            Verdict::Fail(StoreError::Other(format!("dynamodb: transaction canceled ({summary})")))
        }
        TransactWriteItemsError::TransactionInProgressException(_)
        | TransactWriteItemsError::ProvisionedThroughputExceededException(_)
        | TransactWriteItemsError::RequestLimitExceeded(_)
        | TransactWriteItemsError::ThrottlingException(_)
        | TransactWriteItemsError::InternalServerError(_) => Verdict::Retry(StoreError::Other(format!(
            "dynamodb TransactWriteItems: {}",
            service.code().unwrap_or("error")
        ))),
        _ => Verdict::Fail(sdk_err("TransactWriteItems", e)),
    }
}
