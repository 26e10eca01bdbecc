//! # ember-store-dynamodb — the store on AWS
//!
//! [`DynamoStore`]: the [`Store`] port on one DynamoDB table, described below, and
//! [`create_table`], which creates that table (the same one `infra/template.yaml` declares: a
//! unit test holds them equal). The other AWS adapters (SES, EventBridge, SQS, Secrets
//! Manager) are in `ember-aws`.
//!
//! # Table design (single table)
//!
//! | item | `PK` | `SK` | attributes |
//! |---|---|---|---|
//! | lead | `LEAD#<id>` | `PROFILE` | `body`, `version`, `email`, `identities`, due attributes, `erased` |
//! | identity | `EMAIL#<email>` / `ANON#<id>` | `ID` | `lead_id` |
//! | event | `LEAD#<lead id>` | `EVT#<16-digit at millis>#<event id>` | `body`, `expires_at` (TTL) |
//! | dedupe | `EVTID#<event id>` | `ID` | — |
//!
//! - **Bodies are JSON strings** (`body`): the lead is `ember_scoring::Lead` and the event the
//!   whole `StoredEvent`, serialized with `serde_json`. One attribute round-trips exactly (free
//!   JSON traits, floats, times with nanoseconds), costs no more bytes than a map, and keeps the
//!   stored shape owned by the domain types rather than by a second mapping. What the table
//!   itself must see is copied next to it: `version` (N), `email` (S, for ad-hoc look-ups),
//!   `identities` (SS) and the due attributes.
//! - **`identities`**: every identity key a commit wrote for the lead (claims, and a merge's
//!   re-pointed identities). It is a superset (an identity claimed away by another lead stays
//!   listed), so it is checked against the identity items before use. A merge re-points the
//!   retired lead's identities from it, and erasure deletes them from it, without an index on
//!   identity items.
//! - **Events** sort by event time (milliseconds; ties by event id) under their lead, so the
//!   timeline is one `Query`. They expire `retention` after they are written (TTL on
//!   `expires_at`, default [`DEFAULT_RETENTION_DAYS`]; DynamoDB deletes within days after that).
//!   The retired lead of a merge keeps its events under its own id (the survivor lists it in
//!   `merged_from`).
//! - **Dedupe** items make "event id already recorded" a `GetItem` ([`Store::seen`]) and a
//!   duplicate a failed `attribute_not_exists` condition inside the commit's transaction. They
//!   carry no content and no TTL: they outlive erasure, so a replayed event cannot bring an
//!   erased person back.
//!
//! ## Due work: three sparse, sharded GSIs
//!
//! `decay_due`, `drip_due`, `sla_due` (keys only). A lead with work of a kind carries
//! `<kind>_shard = "<kind>#<n>"` (n = FNV-1a(lead id) mod [`DynamoStore::shards`], default
//! [`DEFAULT_SHARDS`]) and `<kind>_at = "<16-digit due millis>#<lead id>"`; a commit `REMOVE`s
//! both when nothing of that kind is due, so the index holds only leads with work. The sort key
//! is a string so that the index order is exactly (due time, lead id) — ties are ordered, and a
//! position in a shard is unique. [`Store::due`] queries every shard with
//! `<kind>_at < "<now + 1 ms>"` and merges them oldest first (see the `due` module): only due
//! entries are read, and shards spread the sweep's reads and the writes over partitions
//! instead of one hot key. Shards may be added later (more shards still find every lead
//! indexed under fewer); removing shards needs every due lead re-committed. Due times are
//! rounded up to the millisecond and `now` down ([`ember_service::ports::due_millis`]); before
//! 1970 the 16 digits follow a `-` and count up from -10^16, so they still sort by time. GSIs
//! are eventually consistent: a lead just rescheduled may still be listed once; the jobs
//! re-read the lead before acting.
//!
//! ## Commit: one `TransactWriteItems`
//!
//! Per event a dedupe put (`attribute_not_exists(PK)`) and the event put; per claim an identity
//! put (`attribute_not_exists(PK)`, or `lead_id = :expected`); a merge adds an identity put per
//! identity still pointing at the retired lead (`lead_id = :retired`) and the retired lead's
//! delete (`version = :v`); a commit taking identities from another lead (a cookie that
//! follows the person who just identified on a shared browser) adds that lead's update: its
//! body without them, `version = :v`, the keys `DELETE`d from its `identities`; last, the
//! lead's update (`version = :expected`, or `attribute_not_exists(PK)` for a create) — an
//! `UpdateItem` so `ADD identities` keeps the set.
//! Cancellation reasons map to [`StoreError::Conflict`] (the lead's version, the retired lead,
//! a claim) or [`StoreError::Duplicate`] (a dedupe put); throttling and transaction conflicts
//! are retried with backoff ([`StoreError::Other`] / `Conflict` after that). A simple commit is
//! three items (dedupe, event, lead): one round trip. A commit of the lead alone (a scheduled
//! job's, when no report counter moves) is a conditional `UpdateItem`: as atomic, half the write
//! units of a one-item transaction.
//!
//! Limits: 100 items per transaction — a merge whose identities don't fit moves the excess
//! ahead of the main transaction in guarded transactions (both leads' versions checked; not
//! atomic with the merge, see the `commit` module); any other commit over the limit (≈ 49
//! events) is refused with a clear [`StoreError::Other`]. Items over 400 KB and transactions
//! over 4 MB are refused before sending.
//!
//! ## Report counters
//!
//! | counter | `AGG#<yyyy-mm>#<shard>` | `<yyyy-mm-dd>#<key>` | `n` |
//!
//! A commit's counter increments are `Update … ADD n` items of its transaction; a report reads
//! a period with one `Query` per month and shard — see the `tallies` module.
//!
//! ## Reads
//!
//! `get`, `lookup`, `seen` and `events` use strongly consistent reads (a commit is visible to
//! the next call); `scan` is a consistent `Scan` filtered on `SK = PROFILE` (reports and
//! exports only: it reads the whole table). A lead item marked `erased` (a tombstone, below)
//! is absent to every read.
//!
//! ## Erasure
//!
//! Several requests, made safe against commits racing them by a tombstone first:
//!
//! 0. one conditional `UpdateItem` of the lead (`attribute_exists(PK)`): `erased` set (Unix
//!    seconds of the first attempt), `version` bumped, its email copy and due attributes
//!    removed. Every commit that read the lead before fails its version guard, and every
//!    version guard also requires `attribute_not_exists(erased)`, so from here on nothing
//!    changes the lead, claims an identity for it, merges into or out of it, or records an
//!    event on it. The updated item says what to delete: its `identities`, and the
//!    [`ember_service::ports::ErasureScope`] of its body;
//! 1. the identities still pointing at the lead (conditional deletes);
//! 2. every event of the lead and of the profiles merged into it;
//! 3. the lead item.
//!
//! An interrupted erasure leaves a tombstone (invisible to reads; its identities still point
//! at it, so ingest for them is refused as a conflict until erasure is run again) and is
//! finished by running it again: the tombstone, even without a body, is re-marked and
//! removed. Dedupe items stay.
//!
//! ## Measuring
//!
//! Every HTTP attempt is counted by an interceptor ([`DynamoStore::calls`],
//! [`DynamoStore::calls_by_operation`]); every request asks for `ReturnConsumedCapacity=TOTAL`
//! and the units reported are summed ([`DynamoStore::consumed`]). Local emulators often report
//! nothing for transactions, so [`DynamoStore::estimated_write_units`] also sums the write
//! units implied by item sizes (2 per started KB per transactional item; index writes extra).
//!
//! Nothing here logs lead content, emails or identity keys; errors name lead and event ids only.

mod commit;
mod due;
mod keys;
mod metrics;
mod retry;
mod table;
mod tallies;

pub use table::create_table;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{DeleteRequest, ReturnConsumedCapacity, ReturnValue, WriteRequest};
use ember_scoring::{Lead, Time};
use ember_service::ports::{
    Commit, DueKind, DuePage, ErasureScope, Identity, LeadRecord, Store, StoreError, StoredEvent, Tally,
};
use keys::{
    BODY, EMAIL, ERASED, EVT, ID, IDENTITIES, Item, LEAD_ID, PK, PROFILE, SK, VERSION, get_s, get_ss, get_u64,
    lead_key, lead_pk,
};
use metrics::{CountCalls, Metrics, item_size, write_units};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Default number of shards per due index.
pub const DEFAULT_SHARDS: u32 = 8;
/// Default event retention (TTL), in days.
pub const DEFAULT_RETENTION_DAYS: u32 = 400;
/// Delete requests per `BatchWriteItem`.
const BATCH_WRITE: usize = 25;
/// Attempts at an erasure's tombstone while transactions on the lead make it conflict.
const TOMBSTONE_ATTEMPTS: u32 = 8;

/// The DynamoDB store. Cheap to clone (clones share the client and the counters).
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    shards: u32,
    retention: Option<chrono::Duration>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore")
            .field("table", &self.table)
            .field("shards", &self.shards)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl DynamoStore {
    /// A store on `table` through `client` (its region, endpoint and credentials), with
    /// [`DEFAULT_SHARDS`] and [`DEFAULT_RETENTION_DAYS`]. Adds a call-counting interceptor to
    /// (a copy of) the client. The table must exist (see [`create_table`]).
    pub fn new(client: Client, table: impl Into<String>) -> DynamoStore {
        let metrics = Arc::new(Metrics::default());
        let conf = client.config().to_builder().interceptor(CountCalls(metrics.clone())).build();
        DynamoStore {
            client: Client::from_conf(conf),
            table: table.into(),
            shards: DEFAULT_SHARDS,
            retention: Some(chrono::Duration::days(i64::from(DEFAULT_RETENTION_DAYS))),
            metrics,
        }
    }

    /// A store configured by the environment: the table from `EMBER_TABLE` (required), the
    /// AWS SDK's standard settings (`AWS_REGION`, `AWS_ENDPOINT_URL`, credentials chain),
    /// optional `EMBER_DUE_SHARDS` (≥ 1) and `EMBER_EVENT_RETENTION_DAYS` (0: events never
    /// expire).
    pub async fn from_env() -> Result<DynamoStore, StoreError> {
        let table = std::env::var("EMBER_TABLE")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| StoreError::Other("EMBER_TABLE is not set (the DynamoDB table name)".into()))?;
        let conf = ember_aws::sdk_config().await;
        let mut store = DynamoStore::new(Client::new(&conf), table);
        if let Ok(v) = std::env::var("EMBER_DUE_SHARDS") {
            match v.trim().parse::<u32>() {
                Ok(n) if n >= 1 => store = store.with_shards(n),
                _ => {
                    return Err(StoreError::Other(format!("EMBER_DUE_SHARDS must be a whole number ≥ 1, not {v:?}")));
                }
            }
        }
        if let Ok(v) = std::env::var("EMBER_EVENT_RETENTION_DAYS") {
            match v.trim().parse::<u32>() {
                Ok(0) => store = store.with_retention(None),
                Ok(d) => store = store.with_retention(Some(chrono::Duration::days(i64::from(d)))),
                Err(_) => {
                    return Err(StoreError::Other(format!(
                        "EMBER_EVENT_RETENTION_DAYS must be a whole number, not {v:?}"
                    )));
                }
            }
        }
        Ok(store)
    }

    /// Sets the number of shards per due index (at least 1). Every process writing or sweeping
    /// the table must use the same number (or, while growing it, the larger one to sweep).
    pub fn with_shards(mut self, shards: u32) -> DynamoStore {
        self.shards = shards.max(1);
        self
    }

    /// Sets how long events are kept (`None`: no TTL attribute, kept forever).
    pub fn with_retention(mut self, retention: Option<chrono::Duration>) -> DynamoStore {
        self.retention = retention;
        self
    }

    /// Name of the DynamoDB table (from `EMBER_TABLE` when built from the environment).
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Shards per due index.
    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The client (with the counting interceptor).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// DynamoDB requests sent so far by this store and its clones (every HTTP attempt,
    /// retries included: round trips).
    pub fn calls(&self) -> u64 {
        self.metrics.calls()
    }

    /// [`DynamoDB requests`](Self::calls) by operation name (`GetItem`, `TransactWriteItems`…).
    pub fn calls_by_operation(&self) -> BTreeMap<String, u64> {
        self.metrics.calls_by_operation()
    }

    /// The part of [`Self::estimated_write_units`] spent on report counter items.
    pub fn estimated_counter_write_units(&self) -> f64 {
        self.metrics.estimated_counter_write_units()
    }

    /// Capacity units DynamoDB reported as consumed: (read, write).
    pub fn consumed(&self) -> (f64, f64) {
        self.metrics.consumed()
    }

    /// Write capacity units implied by the sizes of the items written by successful commits
    /// (table only: index writes are extra) — for endpoints that report no consumed capacity.
    pub fn estimated_write_units(&self) -> f64 {
        self.metrics.estimated_write_units()
    }

    /// One item by key (consistent read), with a projection of `attrs`.
    async fn get_item(&self, key: Item, attrs: &[&str]) -> Result<Option<Item>, StoreError> {
        let mut req = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        let mut projection = Vec::with_capacity(attrs.len());
        for (i, a) in attrs.iter().enumerate() {
            req = req.expression_attribute_names(format!("#a{i}"), *a);
            projection.push(format!("#a{i}"));
        }
        let out = req.projection_expression(projection.join(", ")).send().await.map_err(|e| sdk_err("GetItem", e))?;
        self.metrics.read(out.consumed_capacity());
        Ok(out.item)
    }

    /// Every item of a lead partition whose sort key starts with `prefix`, in order.
    async fn query_prefix(&self, pk: &str, prefix: &str, attrs: &[&str]) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut req = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", keys::s(pk))
                .expression_attribute_values(":prefix", keys::s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .return_consumed_capacity(ReturnConsumedCapacity::Total);
            let mut projection = Vec::with_capacity(attrs.len());
            for (i, a) in attrs.iter().enumerate() {
                req = req.expression_attribute_names(format!("#a{i}"), *a);
                projection.push(format!("#a{i}"));
            }
            let out = req.projection_expression(projection.join(", ")).send().await.map_err(|e| sdk_err("Query", e))?;
            self.metrics.read(out.consumed_capacity());
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// Deletes items by key, 25 per `BatchWriteItem`, retrying unprocessed ones.
    async fn delete_all(&self, keys: Vec<Item>) -> Result<(), StoreError> {
        for chunk in keys.chunks(BATCH_WRITE) {
            let mut pending: Vec<WriteRequest> = chunk
                .iter()
                .map(|k| {
                    DeleteRequest::builder()
                        .set_key(Some(k.clone()))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(|e| StoreError::Other(format!("dynamodb: building a delete: {e}")))
                })
                .collect::<Result<_, _>>()?;
            let mut attempt = 0;
            while !pending.is_empty() {
                let n = pending.len() as u64;
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, std::mem::take(&mut pending))
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(|e| sdk_err("BatchWriteItem", e))?;
                for c in out.consumed_capacity() {
                    self.metrics.write(Some(c));
                }
                if let Some(rest) = out.unprocessed_items.and_then(|mut u| u.remove(&self.table)) {
                    pending = rest;
                }
                self.metrics.estimate_write(n - pending.len() as u64);
                if !pending.is_empty() {
                    attempt += 1;
                    if attempt >= 8 {
                        return Err(StoreError::Other(
                            "dynamodb BatchWriteItem: deletes left unprocessed after retries".into(),
                        ));
                    }
                    tokio::time::sleep(retry::backoff(attempt)).await;
                }
            }
        }
        Ok(())
    }

    /// Step 0 of an erasure (see the crate docs): marks the lead item `erased`, bumps its
    /// version and removes its email copy and due attributes, in one `UpdateItem` conditioned
    /// on the item existing (a tombstone already there is marked again). Returns the item as
    /// updated, `None` when there is no lead item. Retried while transactions on the lead
    /// make it conflict.
    async fn tombstone(&self, lead_id: &str) -> Result<Option<Item>, StoreError> {
        let mut remove = vec!["#email".to_string()];
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(lead_key(lead_id)))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#erased", ERASED)
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_names("#email", EMAIL)
            .expression_attribute_values(":now", keys::n(chrono::Utc::now().timestamp()))
            .expression_attribute_values(":one", keys::n(1))
            .return_values(ReturnValue::AllNew)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        for (_, dn) in keys::ALL_DUE {
            let (ns, na) = (format!("#{}_s", dn.kind), format!("#{}_a", dn.kind));
            req = req.expression_attribute_names(&ns, dn.shard).expression_attribute_names(&na, dn.at);
            remove.push(ns);
            remove.push(na);
        }
        let req = req.update_expression(format!(
            "SET #erased = if_not_exists(#erased, :now) ADD #v :one REMOVE {}",
            remove.join(", ")
        ));
        let mut attempt = 0;
        loop {
            attempt += 1;
            match req.clone().send().await {
                Ok(out) => {
                    self.metrics.write(out.consumed_capacity());
                    let item = out.attributes.unwrap_or_default();
                    self.metrics.estimate_write(write_units(item_size(&item), false));
                    return Ok(Some(item));
                }
                Err(e) => match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(_)) => return Ok(None),
                    Some(UpdateItemError::TransactionConflictException(_)) if attempt < TOMBSTONE_ATTEMPTS => {
                        tracing::debug!(lead_id, attempt, "erasure met a transaction on the lead; retried");
                        tokio::time::sleep(retry::backoff(attempt)).await;
                    }
                    Some(UpdateItemError::TransactionConflictException(_)) => {
                        return Err(StoreError::Conflict(format!(
                            "lead {lead_id}: being changed by other requests, not erased (transaction conflict, \
                             {attempt} attempts)"
                        )));
                    }
                    _ => return Err(sdk_err("UpdateItem", e)),
                },
            }
        }
    }

    /// Erasure (see the crate docs): the tombstone, then identities, events, the lead item.
    /// Returns whether there was a lead item (a tombstone left by an interrupted erasure
    /// counts: this call finished it).
    async fn erase_impl(&self, lead_id: &str) -> Result<bool, StoreError> {
        // 0. The tombstone: commits racing the erasure fail from here on, so the identities
        //    and events read below are all there will be.
        let item = self.tombstone(lead_id).await?;
        let existed = item.is_some();
        let mut identity_keys: BTreeSet<String> = BTreeSet::new();
        let scope = match &item {
            Some(item) => {
                identity_keys.extend(get_ss(item, IDENTITIES).iter().cloned());
                match get_s(item, BODY) {
                    Some(body) => ErasureScope::of_body(lead_id, body),
                    None => {
                        tracing::warn!(lead_id, "erasing a lead without a body");
                        ErasureScope::of_id(lead_id)
                    }
                }
            }
            None => ErasureScope::of_id(lead_id),
        };
        identity_keys.extend(scope.identities.iter().map(Identity::key));

        // 1. Identities still pointing at the lead.
        let keys: Vec<String> = identity_keys.into_iter().collect();
        for key in self.owned_by(&keys, lead_id).await? {
            let out = self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(keys::key(key, ID)))
                .condition_expression("#lead = :id")
                .expression_attribute_names("#lead", LEAD_ID)
                .expression_attribute_values(":id", keys::s(lead_id))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await;
            match out {
                Ok(o) => {
                    self.metrics.write(o.consumed_capacity());
                    self.metrics.estimate_write(1);
                }
                // Claimed by another lead in the meantime: not ours to delete.
                Err(e) if e.code() == Some("ConditionalCheckFailedException") => {}
                Err(e) => return Err(sdk_err("DeleteItem", e)),
            }
        }

        // 2. Events of the lead and of the profiles merged into it.
        for owner in &scope.lead_ids {
            let events = self.query_prefix(&lead_pk(owner), EVT, &[PK, SK]).await?;
            let keys: Vec<Item> = events
                .into_iter()
                .filter_map(|it| Some(keys::key(get_s(&it, PK)?.to_string(), get_s(&it, SK)?.to_string())))
                .collect();
            self.delete_all(keys).await?;
        }

        // 3. The lead (with its due index entries). Last, so an interrupted erasure can run again.
        if existed {
            let out = self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(lead_key(lead_id)))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| sdk_err("DeleteItem", e))?;
            self.metrics.write(out.consumed_capacity());
            self.metrics.estimate_write(1);
        }
        Ok(existed)
    }

    async fn scan_impl(&self, cursor: Option<String>, limit: usize) -> Result<(Vec<Lead>, Option<String>), StoreError> {
        if limit == 0 {
            return Ok((Vec::new(), None));
        }
        let mut start = cursor.map(|id| lead_key(&id));
        let mut leads = Vec::with_capacity(limit.min(1000));
        let mut last: Option<String> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("#sk = :profile AND attribute_not_exists(#erased)")
                .projection_expression("#pk, #body")
                .expression_attribute_names("#sk", SK)
                .expression_attribute_names("#erased", ERASED)
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#body", BODY)
                .expression_attribute_values(":profile", keys::s(PROFILE))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| sdk_err("Scan", e))?;
            self.metrics.read(out.consumed_capacity());
            for item in out.items() {
                if leads.len() == limit {
                    // A further lead exists: the page ends at the last one returned.
                    return Ok((leads, last));
                }
                let lead = parse_lead(item)?;
                last = Some(lead.id.clone());
                leads.push(lead);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => {
                    if leads.len() == limit {
                        return Ok((leads, last));
                    }
                    start = Some(k);
                }
                _ => return Ok((leads, None)),
            }
        }
    }
}

fn parse_lead(item: &Item) -> Result<Lead, StoreError> {
    let id = get_s(item, PK).and_then(|pk| pk.strip_prefix("LEAD#")).unwrap_or("?");
    let body = get_s(item, BODY).ok_or_else(|| StoreError::Other(format!("lead {id}: item without a body")))?;
    serde_json::from_str(body).map_err(|e| StoreError::Other(format!("lead {id}: corrupt body: {e}")))
}

/// Maps an SDK error to [`StoreError::Other`], naming the operation and DynamoDB's error code
/// and message (never request contents).
pub(crate) fn sdk_err<E, R>(op: &str, e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            StoreError::Other(format!(
                "dynamodb {op}: {}: {}",
                err.code().unwrap_or("error"),
                err.message().unwrap_or("(no message)")
            ))
        }
        _ => StoreError::Other(format!("dynamodb {op}: {}", DisplayErrorContext(&e))),
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn lookup(&self, identity: &Identity) -> Result<Option<String>, StoreError> {
        let item = self.get_item(keys::key(identity.key(), ID), &[LEAD_ID]).await?;
        Ok(item.as_ref().and_then(|i| get_s(i, LEAD_ID)).map(str::to_string))
    }

    async fn get(&self, lead_id: &str) -> Result<Option<LeadRecord>, StoreError> {
        let Some(item) = self.get_item(lead_key(lead_id), &[PK, BODY, VERSION, ERASED]).await? else {
            return Ok(None);
        };
        if item.contains_key(ERASED) {
            // A tombstone: the lead is being erased.
            return Ok(None);
        }
        let version = get_u64(&item, VERSION)
            .ok_or_else(|| StoreError::Other(format!("lead {lead_id}: item without a version")))?;
        Ok(Some(LeadRecord { lead: parse_lead(&item)?, version }))
    }

    async fn seen(&self, event_id: &str) -> Result<bool, StoreError> {
        Ok(self.get_item(keys::key(keys::dedupe_pk(event_id), ID), &[PK]).await?.is_some())
    }

    async fn commit(&self, commit: Commit) -> Result<u64, StoreError> {
        self.commit_impl(commit).await
    }

    async fn due(&self, kind: DueKind, now: Time, cursor: Option<String>, limit: usize) -> Result<DuePage, StoreError> {
        self.due_impl(kind, now, cursor, limit).await
    }

    async fn events(&self, lead_id: &str) -> Result<Vec<StoredEvent>, StoreError> {
        self.query_prefix(&lead_pk(lead_id), EVT, &[BODY])
            .await?
            .iter()
            .map(|item| {
                let body = get_s(item, BODY)
                    .ok_or_else(|| StoreError::Other(format!("lead {lead_id}: event without a body")))?;
                serde_json::from_str(body).map_err(|e| StoreError::Other(format!("lead {lead_id}: corrupt event: {e}")))
            })
            .collect()
    }

    async fn erase(&self, lead_id: &str) -> Result<bool, StoreError> {
        self.erase_impl(lead_id).await
    }

    async fn tallies(&self, from: chrono::NaiveDate, to: chrono::NaiveDate) -> Result<Vec<Tally>, StoreError> {
        self.tallies_impl(from, to).await
    }

    async fn scan(&self, cursor: Option<String>, limit: usize) -> Result<(Vec<Lead>, Option<String>), StoreError> {
        self.scan_impl(cursor, limit).await
    }
}
