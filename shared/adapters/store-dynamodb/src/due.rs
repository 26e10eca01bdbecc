//! `Store::due`: a k-way merge over the shards of one sparse due index.
//!
//! Each shard is a partition of the index (`<kind>_shard = <kind>#<n>`) sorted by
//! `<kind>_at = <due millis>#<lead id>`, queried with `<kind>_at < <now + 1 ms>` so only due
//! entries are ever read. A page merges the shards oldest first: it needs the next entry of
//! every shard, so it reads ahead. Entries read from a shard but not returned yet (the shard's
//! "heads") travel in the cursor with the shard's position, so no entry is read twice: a full
//! pass reads exactly the due entries, in `shards` queries for the first page and about one per
//! shard that runs dry after that.
//!
//! `DuePage::read` counts each entry read from the index once, on the page that returns it (or
//! drops it, when a later page asks with an earlier `now`): the entries DynamoDB returned to
//! this page's queries (`ScannedCount`), plus the read-ahead it took over from the cursor, minus
//! the read-ahead it passes on. Read-ahead still in a cursor the caller drops is not counted.

use crate::keys::{self, Item, PROFILE, due_bound, due_names, lead_pk, parse_due_key, s, shard_value};
use crate::{DynamoStore, sdk_err};
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ember_scoring::Time;
use ember_service::ports::{DueKind, DuePage, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

/// Where one shard stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Shard {
    /// Nothing more to read from it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    done: bool,
    /// Index key of the last entry read (the next query starts after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<String>,
    /// Entries read, not returned yet (index keys, in order).
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    heads: VecDeque<String>,
}

/// The due cursor: the kind it belongs to and every shard's state. Encoded as URL-safe
/// base64 of JSON (opaque to callers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Cursor {
    kind: DueKind,
    shards: Vec<Shard>,
}

impl Cursor {
    fn encode(&self) -> Result<String, StoreError> {
        let json = serde_json::to_vec(self).map_err(|e| StoreError::Other(format!("encoding a due cursor: {e}")))?;
        Ok(URL_SAFE_NO_PAD.encode(json))
    }

    fn decode(c: &str, kind: DueKind, shards: u32) -> Result<Cursor, StoreError> {
        let bad = |why: &str| StoreError::Other(format!("bad due cursor: {why}"));
        let bytes = URL_SAFE_NO_PAD.decode(c).map_err(|_| bad("not base64"))?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad("not a due cursor"))?;
        if cursor.kind != kind {
            return Err(bad("it belongs to another kind of work"));
        }
        if cursor.shards.len() != shards as usize {
            return Err(bad("the shard count changed"));
        }
        Ok(cursor)
    }
}

/// What one shard query brought.
struct Fetched {
    shard: usize,
    keys: Vec<String>,
    /// Position to continue from (`None`: the shard is exhausted).
    last_evaluated: Option<String>,
    scanned: u64,
}

impl DynamoStore {
    pub(crate) async fn due_impl(
        &self,
        kind: DueKind,
        now: Time,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<DuePage, StoreError> {
        if limit == 0 {
            return Ok(DuePage::default());
        }
        let bound = due_bound(now);
        let mut state = match cursor {
            Some(c) => Cursor::decode(&c, kind, self.shards)?,
            None => Cursor { kind, shards: vec![Shard::default(); self.shards as usize] },
        };
        let carried_in: usize = state.shards.iter().map(|s| s.heads.len()).sum();
        // Entries carried from a page read at another `now` may not be due at this one.
        for shard in &mut state.shards {
            shard.heads.retain(|k| *k < bound);
        }

        let mut items = Vec::with_capacity(limit);
        let mut fetched = 0u64;
        // First round: a fair share per shard (due work spreads evenly over the shards); a
        // shard that runs dry before the page is full is refilled with what is still missing.
        let mut per_shard = limit.min(limit.div_ceil(self.shards as usize) + 1);
        while items.len() < limit {
            let empty: Vec<usize> = (0..state.shards.len())
                .filter(|&i| !state.shards[i].done && state.shards[i].heads.is_empty())
                .collect();
            if !empty.is_empty() {
                for f in self.fetch(kind, &bound, &state, &empty, per_shard).await? {
                    fetched += f.scanned;
                    let shard = &mut state.shards[f.shard];
                    shard.heads.extend(f.keys);
                    match f.last_evaluated {
                        Some(k) => shard.after = Some(k),
                        None => {
                            shard.done = true;
                            shard.after = None;
                        }
                    }
                }
                per_shard = (limit - items.len()).max(1);
                continue;
            }
            // Every live shard has a head: the smallest one is next.
            let next = state
                .shards
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.heads.front().map(|k| (k, i)))
                .min()
                .map(|(_, i)| i);
            let Some(i) = next else { break };
            if let Some(k) = state.shards[i].heads.pop_front() {
                items.push(parse_due_key(&k)?);
            }
        }
        let carried_out: usize = state.shards.iter().map(|s| s.heads.len()).sum();
        let read = (fetched + carried_in as u64).saturating_sub(carried_out as u64);
        let finished = state.shards.iter().all(|s| s.done && s.heads.is_empty());
        let cursor = if finished { None } else { Some(state.encode()?) };
        Ok(DuePage { items, cursor, read })
    }

    /// Queries the given shards concurrently, `limit` entries each, from their positions.
    async fn fetch(
        &self,
        kind: DueKind,
        bound: &str,
        state: &Cursor,
        shards: &[usize],
        limit: usize,
    ) -> Result<Vec<Fetched>, StoreError> {
        let names = due_names(kind);
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let mut tasks = tokio::task::JoinSet::new();
        for &i in shards {
            let shard_val = shard_value(names, u32::try_from(i).unwrap_or(0));
            let start: Option<Item> = match &state.shards[i].after {
                Some(after) => {
                    let (lead_id, _) = parse_due_key(after)?;
                    let mut k = keys::key(lead_pk(&lead_id), PROFILE);
                    k.insert(names.shard.into(), s(shard_val.clone()));
                    k.insert(names.at.into(), s(after.clone()));
                    Some(k)
                }
                None => None,
            };
            let req = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(names.index)
                .key_condition_expression("#s = :s AND #a < :bound")
                .expression_attribute_names("#s", names.shard)
                .expression_attribute_names("#a", names.at)
                .expression_attribute_values(":s", s(shard_val))
                .expression_attribute_values(":bound", s(bound))
                .projection_expression("#a")
                .limit(limit)
                .set_exclusive_start_key(start)
                .return_consumed_capacity(ReturnConsumedCapacity::Total);
            let metrics = self.metrics.clone();
            let at = names.at;
            tasks.spawn(async move {
                let out = req.send().await.map_err(|e| sdk_err("Query", e))?;
                metrics.read(out.consumed_capacity());
                let keys: Vec<String> =
                    out.items().iter().filter_map(|it| keys::get_s(it, at).map(str::to_string)).collect();
                let last_evaluated: Option<String> = out
                    .last_evaluated_key()
                    .map(|k: &HashMap<String, _>| keys::get_s(k, at).map(str::to_string).ok_or(()))
                    .transpose()
                    .map_err(|()| StoreError::Other("dynamodb Query: LastEvaluatedKey without the index key".into()))?;
                let scanned = u64::try_from(out.scanned_count().max(out.count())).unwrap_or(0);
                Ok::<_, StoreError>(Fetched { shard: i, keys, last_evaluated, scanned })
            });
        }
        let mut fetched = Vec::with_capacity(shards.len());
        while let Some(r) = tasks.join_next().await {
            fetched.push(r.map_err(|e| StoreError::Other(format!("due query task: {e}")))??);
        }
        Ok(fetched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_is_checked() {
        let c = Cursor {
            kind: DueKind::Drip,
            shards: vec![
                Shard { done: true, after: None, heads: VecDeque::new() },
                Shard {
                    done: false,
                    after: Some("0000000000000005#a".into()),
                    heads: ["0000000000000005#a".into()].into(),
                },
            ],
        };
        let enc = c.encode().expect("encode");
        assert!(enc.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{enc}");
        assert_eq!(Cursor::decode(&enc, DueKind::Drip, 2).expect("decode"), c);
        assert!(Cursor::decode(&enc, DueKind::Sla, 2).is_err(), "another kind's cursor");
        assert!(Cursor::decode(&enc, DueKind::Drip, 8).is_err(), "another shard count");
        assert!(Cursor::decode("!!", DueKind::Drip, 2).is_err());
        assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode(b"{}"), DueKind::Drip, 2).is_err());
    }
}
