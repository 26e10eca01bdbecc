//! The commit's writes, planned without sending anything: which items the transaction holds,
//! under which conditions, with which expressions, and what each one is there for (its
//! [`Role`], to map a cancellation reason). Every limit DynamoDB would refuse (items, bytes)
//! is checked here, before a request goes out. Pure: the reads a commit needs (the retired
//! lead, identities still pointing at it) are done by the caller and passed in.

use crate::keys::{
    self, BODY, EMAIL, ERASED, EXPIRES_AT, ID, IDENTITIES, Item, LEAD_ID, PK, VERSION, dedupe_pk, due_key, event_sk,
    get_u64, lead_key, lead_pk, n, s, shard_of, shard_value,
};
use crate::metrics::item_size;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update};
use ember_service::ports::{Commit, DueKind, Release, StoreError};
use std::collections::{HashMap, HashSet};

/// DynamoDB's limit on items in one transaction.
pub(crate) const MAX_TRANSACTION_ITEMS: usize = 100;
/// DynamoDB's limit on the size of one transaction.
const MAX_TRANSACTION_BYTES: usize = 4 * 1024 * 1024;
/// DynamoDB's limit on the size of one item.
const MAX_ITEM_BYTES: usize = 400 * 1024;

/// What an item of the transaction is, to map its cancellation reason.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Role {
    /// The dedupe put of an event id.
    Dedupe(String),
    /// The put of a timeline event item under its lead (unconditional: the dedupe put guards it).
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
pub(super) struct Planned {
    pub(super) item: TransactWriteItem,
    pub(super) role: Role,
    pub(super) bytes: usize,
}

/// An identity to point at the committed lead.
pub(super) struct IdentityWrite {
    pub(super) key: String,
    /// `None`: must not exist; `Some(owner)`: must point at `owner`.
    pub(super) expected: Option<String>,
}

/// Where the writes go and the store settings they depend on.
pub(super) struct Target<'a> {
    pub(super) table: &'a str,
    /// Shards per due index ([`crate::DynamoStore::shards`]).
    pub(super) shards: u32,
    /// TTL of the events written (Unix seconds), `None`: kept forever.
    pub(super) expires_at: Option<i64>,
}

pub(super) fn build_err(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Other(format!("dynamodb: building a transaction item: {e}"))
}

fn names(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Approximate request size of a key plus expression values.
fn key_bytes(item: &Item) -> usize {
    item_size(item) + 64
}

/// The version the lead gets.
pub(super) fn new_version(c: &Commit) -> Result<u64, StoreError> {
    match c.expected_version {
        None => Ok(1),
        Some(v) => v.checked_add(1).ok_or_else(|| StoreError::Other(format!("lead {}: version overflow", c.lead.id))),
    }
}

/// Event ids must be new, also within the commit (DynamoDB refuses two operations on one item
/// in a transaction, so this is checked here).
pub(super) fn check_event_ids(c: &Commit) -> Result<(), StoreError> {
    let mut event_ids = HashSet::new();
    for ev in &c.events {
        if !event_ids.insert(ev.event.id.as_str()) {
            return Err(StoreError::Duplicate(ev.event.id.clone()));
        }
    }
    Ok(())
}

/// One write per claimed identity, and the set of keys claimed. A second claim of the same
/// identity sees it owned by this lead.
pub(super) fn claim_writes(c: &Commit) -> Result<(Vec<IdentityWrite>, HashSet<String>), StoreError> {
    let id = c.lead.id.as_str();
    let mut identities: Vec<IdentityWrite> = Vec::with_capacity(c.claims.len());
    let mut claimed = HashSet::new();
    for (i, claim) in c.claims.iter().enumerate() {
        let key = claim.identity.key();
        if claimed.contains(&key) {
            if claim.expected_owner.as_deref() == Some(id) {
                continue;
            }
            return Err(StoreError::Conflict(format!("lead {id}: claim #{i} repeats an identity of the same commit")));
        }
        claimed.insert(key.clone());
        identities.push(IdentityWrite { key, expected: claim.expected_owner.clone() });
    }
    Ok((identities, claimed))
}

/// A merge may go ahead only if the retired lead (`meta`: its item as read, `None` when absent
/// or a tombstone) is another lead, at the version the commit expects.
pub(super) fn check_retired(id: &str, rid: &str, rv: u64, meta: Option<&Item>) -> Result<(), StoreError> {
    if rid == id {
        return Err(StoreError::Conflict(format!("lead {id} cannot retire itself")));
    }
    match meta.and_then(|r| get_u64(r, VERSION)) {
        Some(v) if v == rv => Ok(()),
        Some(v) => Err(StoreError::Conflict(format!("retired lead {rid} is at version {v}, expected {rv}"))),
        None => Err(StoreError::Conflict(format!("retired lead {rid} does not exist"))),
    }
}

/// Merge overflow: when the commit has more items than one transaction takes, the identities
/// of the retired lead (`retire`) that go over the limit are taken out of `identities` and
/// returned, to be moved ahead of the main transaction ([`identity_move`]); only a merge
/// into an existing lead can do that. Any other commit over the limit is refused. Returns no
/// keys when the commit fits.
pub(super) fn overflow(
    c: &Commit,
    identities: &mut Vec<IdentityWrite>,
    retire: Option<(&str, u64)>,
) -> Result<Vec<String>, StoreError> {
    let total = item_count(c, identities.len(), retire.is_some());
    if total <= MAX_TRANSACTION_ITEMS {
        return Ok(Vec::new());
    }
    let excess = total - MAX_TRANSACTION_ITEMS;
    let movable = match (retire, c.expected_version) {
        (Some((rid, _)), Some(_)) => identities.iter().filter(|w| w.expected.as_deref() == Some(rid)).count(),
        _ => 0,
    };
    if movable < excess {
        return Err(StoreError::Other(format!(
            "lead {}: commit too large for one DynamoDB transaction: {total} items ({} events × 2, {} \
             identities, {} counters, the lead{}) > {MAX_TRANSACTION_ITEMS}",
            c.lead.id,
            c.events.len(),
            identities.len(),
            c.tallies.len(),
            if retire.is_some() { ", the retired lead" } else { "" },
        )));
    }
    let mut moved = Vec::with_capacity(excess);
    if let Some((rid, _)) = retire {
        let mut i = identities.len();
        while moved.len() < excess && i > 0 {
            i -= 1;
            if identities[i].expected.as_deref() == Some(rid) {
                moved.push(identities.remove(i).key);
            }
        }
    }
    Ok(moved)
}

/// Items of the main transaction: per event a dedupe put and the event, the identity puts,
/// the retired lead, the released lead, the lead, the counters.
fn item_count(c: &Commit, identities: usize, retire: bool) -> usize {
    2 * c.events.len() + identities + usize::from(retire) + usize::from(c.release.is_some()) + 1 + c.tallies.len()
}

/// The main transaction, in order: per event its dedupe put (`attribute_not_exists`) and its
/// put; the identity puts (absent, or pointing at the expected owner); the retired lead's
/// delete (`version = :rv`); the released lead's update; the counters; last, the lead's
/// update. `identity_keys`: every identity key written for the lead (added to its set).
pub(super) fn transaction(
    t: &Target<'_>,
    c: &Commit,
    new_version: u64,
    identities: &[IdentityWrite],
    retire: Option<(&str, u64)>,
    identity_keys: &[String],
) -> Result<Vec<Planned>, StoreError> {
    let id = c.lead.id.as_str();
    let total = item_count(c, identities.len(), retire.is_some());
    let mut plan: Vec<Planned> = Vec::with_capacity(total.min(MAX_TRANSACTION_ITEMS));
    for ev in &c.events {
        let item = keys::key(dedupe_pk(&ev.event.id), ID);
        let bytes = item_size(&item);
        let put = Put::builder()
            .table_name(t.table)
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

        let body = serde_json::to_string(ev).map_err(|e| StoreError::Other(format!("serializing an event: {e}")))?;
        let mut item = keys::key(lead_pk(&ev.lead_id), event_sk(ev.event.at, &ev.event.id));
        item.insert(BODY.into(), s(body));
        if let Some(at) = t.expires_at {
            item.insert(EXPIRES_AT.into(), n(at));
        }
        let bytes = item_size(&item);
        if bytes > MAX_ITEM_BYTES {
            return Err(StoreError::Other(format!(
                "event {}: {bytes} bytes, over DynamoDB's {MAX_ITEM_BYTES}-byte item limit",
                ev.event.id
            )));
        }
        let put = Put::builder().table_name(t.table).set_item(Some(item)).build().map_err(build_err)?;
        plan.push(Planned { item: TransactWriteItem::builder().put(put).build(), role: Role::Event, bytes });
    }

    for w in identities {
        let mut item = keys::key(w.key.clone(), ID);
        item.insert(LEAD_ID.into(), s(id));
        let bytes = item_size(&item);
        let put = Put::builder().table_name(t.table).set_item(Some(item));
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
            .table_name(t.table)
            .set_key(Some(key))
            .condition_expression("#v = :rv AND attribute_not_exists(#erased)")
            .set_expression_attribute_names(Some(names(&[("#v", VERSION), ("#erased", ERASED)])))
            .expression_attribute_values(":rv", n(rv))
            .build()
            .map_err(build_err)?;
        plan.push(Planned { item: TransactWriteItem::builder().delete(del).build(), role: Role::Retire, bytes });
    }

    if let Some(r) = &c.release {
        plan.push(release_update(t, r)?);
    }

    for tally in &c.tallies {
        let (update, bytes) = crate::tallies::counter_update(t.table, id, tally)?;
        plan.push(Planned { item: TransactWriteItem::builder().update(update).build(), role: Role::Counter, bytes });
    }

    plan.push(lead_update(t, c, new_version, identity_keys)?);

    let bytes: usize = plan.iter().map(|p| p.bytes).sum();
    if bytes > MAX_TRANSACTION_BYTES {
        return Err(StoreError::Other(format!(
            "lead {id}: commit of about {bytes} bytes, over DynamoDB's {MAX_TRANSACTION_BYTES}-byte transaction limit"
        )));
    }
    Ok(plan)
}

/// The transactions moving `keys` (owned by `rid`, or already by `id`) to `id` ahead of a merge
/// too large for one transaction: at most [`MAX_TRANSACTION_ITEMS`] items each, each guarded by
/// both leads' versions (`rv`, `ev`) and recording the keys on the survivor.
pub(super) fn identity_move(
    t: &Target<'_>,
    id: &str,
    ev: u64,
    rid: &str,
    rv: u64,
    keys: &[String],
) -> Result<Vec<Vec<Planned>>, StoreError> {
    let mut transactions = Vec::new();
    for chunk in keys.chunks(MAX_TRANSACTION_ITEMS - 2) {
        let mut plan = Vec::with_capacity(chunk.len() + 2);
        let key = lead_key(rid);
        let bytes = key_bytes(&key);
        let check = ConditionCheck::builder()
            .table_name(t.table)
            .set_key(Some(key))
            .condition_expression("#v = :rv AND attribute_not_exists(#erased)")
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_names("#erased", ERASED)
            .expression_attribute_values(":rv", n(rv))
            .build()
            .map_err(build_err)?;
        plan.push(Planned { item: TransactWriteItem::builder().condition_check(check).build(), role: Role::Retire, bytes });
        let key = lead_key(id);
        let bytes = key_bytes(&key) + chunk.iter().map(String::len).sum::<usize>();
        let update = Update::builder()
            .table_name(t.table)
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
                .table_name(t.table)
                .set_item(Some(item))
                .condition_expression("#lead = :rid OR #lead = :id")
                .expression_attribute_names("#lead", LEAD_ID)
                .expression_attribute_values(":rid", s(rid))
                .expression_attribute_values(":id", s(id))
                .build()
                .map_err(build_err)?;
            plan.push(Planned { item: TransactWriteItem::builder().put(put).build(), role: Role::Identity, bytes });
        }
        transactions.push(plan);
    }
    Ok(transactions)
}

/// The lead's update: body, version, email, due attributes; identities added to its set.
fn lead_update(t: &Target<'_>, c: &Commit, new_version: u64, identity_keys: &[String]) -> Result<Planned, StoreError> {
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
                let shard = shard_value(dn, shard_of(id, t.shards));
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
        .table_name(t.table)
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
fn release_update(t: &Target<'_>, r: &Release) -> Result<Planned, StoreError> {
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
        .table_name(t.table)
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

#[cfg(test)]
mod tests {
    use super::*;
    use ember_scoring::Due;
    use ember_service::ports::{Claim, Tally};
    use ember_store_tests::{anon, claim, commit, email, event, lead, t};

    const T: Target<'static> = Target { table: "ember", shards: 8, expires_at: Some(1_800_000_000) };

    /// Plans `c` as the store would once its reads are done (`retire` found at its version,
    /// `repointed`: the retired lead's identities still pointing at it).
    fn plan(c: &Commit, repointed: &[&str]) -> Result<Vec<Planned>, StoreError> {
        let (mut identities, _) = claim_writes(c)?;
        let retire = c.retire.as_ref().map(|(rid, rv)| (rid.as_str(), *rv));
        if let Some((rid, _)) = retire {
            identities.extend(repointed.iter().map(|k| IdentityWrite { key: k.to_string(), expected: Some(rid.into()) }));
        }
        let mut keys: Vec<String> = identities.iter().map(|w| w.key.clone()).collect();
        keys.sort();
        assert!(overflow(c, &mut identities, retire)?.is_empty(), "fits one transaction");
        transaction(&T, c, new_version(c)?, &identities, retire, &keys)
    }

    fn roles(p: &[Planned]) -> Vec<Role> {
        p.iter().map(|p| p.role.clone()).collect()
    }

    fn put(p: &Planned) -> &Put {
        p.item.put.as_ref().expect("a put")
    }

    fn update(p: &Planned) -> &Update {
        p.item.update.as_ref().expect("an update")
    }

    fn value<'a>(values: Option<&'a HashMap<String, AttributeValue>>, k: &str) -> &'a AttributeValue {
        values.and_then(|v| v.get(k)).unwrap_or_else(|| panic!("no value {k}"))
    }

    #[test]
    fn a_new_lead_is_created_with_its_events_identities_and_due_times() {
        let mut l = lead("ld-1");
        l.email = Some("a@x.com".into());
        let mut c = commit(l, None);
        c.events = vec![event("ev-1", "ld-1", t(1))];
        c.claims = vec![claim(email("a@x.com"), None), claim(anon("c1"), None)];
        c.due = Due { decay: Some(t(5)), drip: None, sla: None };
        let p = plan(&c, &[]).expect("plan");
        assert_eq!(roles(&p), [Role::Dedupe("ev-1".into()), Role::Event, Role::Identity, Role::Identity, Role::Lead]);

        let dedupe = put(&p[0]);
        assert_eq!(dedupe.condition_expression(), Some("attribute_not_exists(#pk)"));
        assert_eq!(dedupe.item().get(PK), Some(&s("EVTID#ev-1")));
        let ev = put(&p[1]);
        assert_eq!(ev.condition_expression(), None, "the dedupe put guards the event");
        assert_eq!(ev.item().get(EXPIRES_AT), Some(&n(1_800_000_000)));
        assert_eq!(ev.item().get("SK"), Some(&s(event_sk(t(1), "ev-1"))));
        let id = put(&p[2]);
        assert_eq!((id.condition_expression(), id.item().get(LEAD_ID)), (Some("attribute_not_exists(#pk)"), Some(&s("ld-1"))));

        let lead = update(&p[4]);
        assert_eq!(lead.condition_expression(), Some("attribute_not_exists(#pk)"));
        assert_eq!(
            lead.update_expression(),
            "SET #body = :body, #v = :nv, #email = :email, #decay_s = :decay_s, #decay_a = :decay_a \
             REMOVE #drip_s, #drip_a, #sla_s, #sla_a ADD #ids :ids"
        );
        let values = lead.expression_attribute_values();
        assert_eq!(value(values, ":nv"), &n(1));
        assert_eq!(value(values, ":decay_a"), &s(due_key(t(5), "ld-1")));
        assert_eq!(value(values, ":decay_s"), &s(format!("decay#{}", shard_of("ld-1", 8))));
        assert_eq!(value(values, ":ids"), &AttributeValue::Ss(vec!["ANON#c1".into(), "EMAIL#a@x.com".into()]));
    }

    #[test]
    fn an_update_is_guarded_by_the_version_and_the_tombstone() {
        let c = commit(lead("ld-1"), Some(3));
        let p = plan(&c, &[]).expect("plan");
        assert_eq!(roles(&p), [Role::Lead], "a commit of the lead alone: one update");
        let u = update(&p[0]);
        assert_eq!(u.condition_expression(), Some("#v = :ev AND attribute_not_exists(#erased)"));
        let values = u.expression_attribute_values();
        assert_eq!((value(values, ":ev"), value(values, ":nv")), (&n(3), &n(4)));
        assert_eq!(
            u.update_expression(),
            "SET #body = :body, #v = :nv REMOVE #email, #decay_s, #decay_a, #drip_s, #drip_a, #sla_s, #sla_a"
        );
        let mut c = commit(lead("ld-1"), Some(u64::MAX));
        c.events = vec![event("ev-1", "ld-1", t(1))];
        assert!(matches!(new_version(&c), Err(StoreError::Other(e)) if e == "lead ld-1: version overflow"));
    }

    #[test]
    fn claims_expect_their_owner_and_repeats_are_checked() {
        let mut c = commit(lead("ld-1"), Some(1));
        c.claims = vec![claim(anon("c1"), Some("ld-0")), claim(anon("c1"), Some("ld-1")), claim(anon("c2"), Some("ld-1"))];
        let p = plan(&c, &[]).expect("plan");
        assert_eq!(roles(&p), [Role::Identity, Role::Identity, Role::Lead], "the repeat owned by the lead is one write");
        let first = put(&p[0]);
        assert_eq!(first.condition_expression(), Some("#lead = :owner"));
        assert_eq!(value(first.expression_attribute_values(), ":owner"), &s("ld-0"));

        c.claims.push(Claim { identity: anon("c2"), expected_owner: None });
        let err = claim_writes(&c).err().expect("a repeat from another owner");
        assert_eq!(err.to_string(), "conflict: lead ld-1: claim #3 repeats an identity of the same commit");
        let mut c = commit(lead("ld-1"), None);
        c.events = vec![event("ev-1", "ld-1", t(1)), event("ev-1", "ld-1", t(2))];
        assert!(matches!(check_event_ids(&c), Err(StoreError::Duplicate(id)) if id == "ev-1"));
    }

    #[test]
    fn a_merge_retires_the_profile_under_its_version_and_repoints_its_identities() {
        let mut c = commit(lead("ld-1"), Some(2));
        c.retire = Some(("an-1".into(), 5));
        c.claims = vec![claim(anon("c1"), Some("an-1"))];
        let p = plan(&c, &["ANON#c2"]).expect("plan");
        assert_eq!(roles(&p), [Role::Identity, Role::Identity, Role::Retire, Role::Lead]);
        assert_eq!(value(put(&p[1]).expression_attribute_values(), ":owner"), &s("an-1"));
        let del = p[2].item.delete.as_ref().expect("a delete");
        assert_eq!(del.condition_expression(), Some("#v = :rv AND attribute_not_exists(#erased)"));
        assert_eq!(value(del.expression_attribute_values(), ":rv"), &n(5));
        assert_eq!(del.key().get(PK), Some(&s("LEAD#an-1")));
        assert_eq!(
            value(update(&p[3]).expression_attribute_values(), ":ids"),
            &AttributeValue::Ss(vec!["ANON#c1".into(), "ANON#c2".into()])
        );

        let meta = |v: u64| Item::from([(VERSION.to_string(), n(v))]);
        assert!(check_retired("ld-1", "an-1", 5, Some(&meta(5))).is_ok());
        let msg = |r: Result<(), StoreError>| r.err().expect("refused").to_string();
        assert_eq!(msg(check_retired("ld-1", "an-1", 5, Some(&meta(6)))), "conflict: retired lead an-1 is at version 6, expected 5");
        assert_eq!(msg(check_retired("ld-1", "an-1", 5, None)), "conflict: retired lead an-1 does not exist");
        assert_eq!(msg(check_retired("ld-1", "ld-1", 5, None)), "conflict: lead ld-1 cannot retire itself");
    }

    #[test]
    fn a_release_rewrites_the_previous_owner_under_its_version() {
        let mut c = commit(lead("ld-1"), Some(1));
        c.claims = vec![claim(anon("c1"), Some("ld-0"))];
        c.release = Some(Release { lead: lead("ld-0"), expected_version: 7, identities: vec![anon("c1")] });
        let p = plan(&c, &[]).expect("plan");
        assert_eq!(roles(&p), [Role::Identity, Role::Release, Role::Lead]);
        let u = update(&p[1]);
        assert_eq!(u.key().get(PK), Some(&s("LEAD#ld-0")));
        assert_eq!(u.update_expression(), "SET #body = :body, #v = :nv DELETE #ids :ids");
        assert_eq!(u.condition_expression(), Some("#v = :ev AND attribute_not_exists(#erased)"));
        let values = u.expression_attribute_values();
        assert_eq!((value(values, ":ev"), value(values, ":nv")), (&n(7), &n(8)));
        assert_eq!(value(values, ":ids"), &AttributeValue::Ss(vec!["ANON#c1".into()]));
    }

    #[test]
    fn counters_ride_in_the_transaction_unconditionally() {
        let mut c = commit(lead("ld-1"), Some(1));
        let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 2).expect("day");
        c.tallies = vec![Tally { day, key: "leads.new".into(), n: 1 }, Tally { day, key: "mql".into(), n: -1 }];
        let p = plan(&c, &[]).expect("plan");
        assert_eq!(roles(&p), [Role::Counter, Role::Counter, Role::Lead]);
        let u = update(&p[0]);
        assert_eq!((u.update_expression(), u.condition_expression()), ("ADD #n :d", None));
        assert_eq!(value(u.expression_attribute_values(), ":d"), &n(1));
        assert_eq!(value(update(&p[1]).expression_attribute_values(), ":d"), &n(-1));
    }

    #[test]
    fn a_merge_over_the_item_limit_moves_identities_ahead_and_anything_else_is_refused() {
        let mut c = commit(lead("ld-1"), Some(2));
        c.retire = Some(("an-1".into(), 5));
        let mut identities: Vec<IdentityWrite> = (0..120)
            .map(|i| IdentityWrite { key: format!("ANON#c{i:03}"), expected: Some("an-1".into()) })
            .collect();
        let moved = overflow(&c, &mut identities, Some(("an-1", 5))).expect("movable");
        // 120 identities + the retired lead + the lead = 122 items: 22 move ahead, the last ones.
        assert_eq!(moved.len(), 22);
        assert_eq!((identities.len(), moved[0].as_str()), (98, "ANON#c119"));
        let moves = identity_move(&T, "ld-1", 2, "an-1", 5, &moved).expect("moves");
        assert_eq!(moves.len(), 1);
        assert_eq!(roles(&moves[0])[..3], [Role::Retire, Role::Lead, Role::Identity]);
        assert_eq!(moves[0].len(), 24);
        let check = moves[0][0].item.condition_check.as_ref().expect("a guard on the retired lead");
        assert_eq!(check.condition_expression(), "#v = :rv AND attribute_not_exists(#erased)");
        assert_eq!(put(&moves[0][2]).condition_expression(), Some("#lead = :rid OR #lead = :id"));

        let mut c = commit(lead("ld-1"), Some(2));
        c.events = (0..50).map(|i| event(&format!("ev-{i}"), "ld-1", t(i))).collect();
        let err = overflow(&c, &mut Vec::new(), None).err().expect("too large");
        assert_eq!(
            err.to_string(),
            "store: lead ld-1: commit too large for one DynamoDB transaction: 101 items (50 events × 2, 0 \
             identities, 0 counters, the lead) > 100"
        );
    }

    #[test]
    fn items_over_dynamodb_limits_are_refused_before_sending() {
        let mut l = lead("ld-1");
        l.traits.insert("blob".into(), serde_json::Value::String("x".repeat(MAX_ITEM_BYTES)));
        let err = plan(&commit(l, None), &[]).err().expect("too large");
        assert!(err.to_string().contains("over DynamoDB's 409600-byte item limit"), "{err}");
    }
}
