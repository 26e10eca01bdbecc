//! Key and attribute formats of the table (see the crate docs for the design).

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::DateTime;
use ember_scoring::Time;
use ember_service::ports::{DueKind, StoreError, due_millis, now_millis};
use std::collections::HashMap;

/// A DynamoDB item (or key).
pub(crate) type Item = HashMap<String, AttributeValue>;

/// Name of the partition key attribute (a string, e.g. `LEAD#<id>`).
pub(crate) const PK: &str = "PK";
/// Name of the sort key attribute (a string, e.g. [`PROFILE`]).
pub(crate) const SK: &str = "SK";
/// Sort key of a lead item.
pub(crate) const PROFILE: &str = "PROFILE";
/// Sort key of identity and dedupe items.
pub(crate) const ID: &str = "ID";
/// Sort key prefix of event items.
pub(crate) const EVT: &str = "EVT#";

/// Lead and event body: JSON string.
pub(crate) const BODY: &str = "body";
/// Lead version (N).
pub(crate) const VERSION: &str = "version";
/// Copy of the lead's email (S), absent when it has none.
pub(crate) const EMAIL: &str = "email";
/// Identity keys ever claimed by (or re-pointed to) the lead (SS): a superset of the identities
/// pointing at it (an identity re-pointed elsewhere stays listed); checked before use.
pub(crate) const IDENTITIES: &str = "identities";
/// Identity item: the lead it points at (S).
pub(crate) const LEAD_ID: &str = "lead_id";
/// Lead item: erasure under way (N, Unix seconds of its start). A lead item carrying it is
/// a tombstone: absent to reads, refused by every version guard, removed by the erasure.
pub(crate) const ERASED: &str = "erased";
/// Event item: TTL (N, Unix seconds).
pub(crate) const EXPIRES_AT: &str = "expires_at";

/// Attribute and index names of one due kind.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DueNames {
    /// `decay`, `drip`, `sla`.
    pub kind: &'static str,
    /// GSI partition key attribute (`<kind>_shard`, value `<kind>#<n>`).
    pub shard: &'static str,
    /// GSI sort key attribute (`<kind>_at`, value `<16-digit due millis>#<lead id>`).
    pub at: &'static str,
    /// GSI name (`<kind>_due`).
    pub index: &'static str,
}

/// Every kind's names, in a fixed order.
pub(crate) const ALL_DUE: [(DueKind, DueNames); 3] = [
    (DueKind::Decay, DueNames { kind: "decay", shard: "decay_shard", at: "decay_at", index: "decay_due" }),
    (DueKind::Drip, DueNames { kind: "drip", shard: "drip_shard", at: "drip_at", index: "drip_due" }),
    (DueKind::Sla, DueNames { kind: "sla", shard: "sla_shard", at: "sla_at", index: "sla_due" }),
];

/// The names of `kind`.
pub(crate) fn due_names(kind: DueKind) -> DueNames {
    ALL_DUE.iter().find(|(k, _)| *k == kind).map(|(_, n)| *n).unwrap_or(ALL_DUE[0].1)
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// `PK=LEAD#<id>`.
pub(crate) fn lead_pk(id: &str) -> String {
    format!("LEAD#{id}")
}

/// `PK=EVTID#<event id>`.
pub(crate) fn dedupe_pk(event_id: &str) -> String {
    format!("EVTID#{event_id}")
}

/// An item holding only the `PK` and `SK` attributes: a key for `GetItem`/`DeleteItem`, or the start of an item.
pub(crate) fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([(PK.to_string(), s(pk)), (SK.to_string(), s(sk))])
}

/// The lead item's key.
pub(crate) fn lead_key(id: &str) -> Item {
    key(lead_pk(id), PROFILE)
}

/// Floor milliseconds (for event times), clamped at 0 (events before 1970 sort first).
pub(crate) fn millis(t: Time) -> i64 {
    t.timestamp_millis().max(0)
}

/// 16 digits hold every millisecond time chrono can represent (year 262143 is < 10^16 ms).
pub(crate) fn pad(ms: i64) -> String {
    format!("{:016}", ms.max(0))
}

/// 10^16: chrono's earliest time is above `-TEN_16` ms, so `TEN_16 + ms` has 16 digits.
const TEN_16: i64 = 10_000_000_000_000_000;

/// Milliseconds as a string that sorts like the number: [`pad`] from 1970 on, and before it
/// `-` (which sorts before every digit) then the 16 digits of `10^16 + ms` (so earlier sorts
/// first). Keys written before pre-1970 times were kept (as `0`) still read the same.
fn sortable(ms: i64) -> String {
    if ms >= 0 { pad(ms) } else { format!("-{:016}", TEN_16.saturating_add(ms).max(0)) }
}

/// Event sort key: `EVT#<16-digit at millis>#<event id>` (oldest first, ties by event id).
pub(crate) fn event_sk(at: Time, event_id: &str) -> String {
    format!("{EVT}{}#{event_id}", pad(millis(at)))
}

/// Due index sort key: `<16-digit due millis>#<lead id>` (the due time rounded by
/// [`due_millis`]; before 1970, `-<16 digits>`: see [`sortable`]). Lexicographic order is
/// (due, lead id), so ties come back in lead-id order and every index entry has a unique
/// position.
pub(crate) fn due_key(due: Time, lead_id: &str) -> String {
    format!("{}#{lead_id}", sortable(due_millis(due)))
}

/// Exclusive upper bound of the keys due at `now`: everything `< "<now + 1 ms>"`.
pub(crate) fn due_bound(now: Time) -> String {
    sortable(now_millis(now).saturating_add(1))
}

/// Splits a due key into (lead id, due time).
pub(crate) fn parse_due_key(k: &str) -> Result<(String, Time), StoreError> {
    let bad = || StoreError::Other(format!("bad due index key {k:?}"));
    let (ms, id) = match k.strip_prefix('-') {
        Some(rest) => {
            let (digits, id) = rest.split_at_checked(16).ok_or_else(bad)?;
            let n: i64 = digits.parse().map_err(|_| bad())?;
            (n - TEN_16, id)
        }
        None => {
            let (digits, id) = k.split_at_checked(16).ok_or_else(bad)?;
            (digits.parse().map_err(|_| bad())?, id)
        }
    };
    let id = id.strip_prefix('#').ok_or_else(bad)?;
    let t = DateTime::from_timestamp_millis(ms).ok_or_else(bad)?;
    Ok((id.to_string(), t))
}

/// Shard of a lead: FNV-1a 64 of its id, modulo `shards` — stable across builds and platforms
/// (unlike `std`'s hasher), because it is stored.
pub(crate) fn shard_of(lead_id: &str, shards: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in lead_id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    u32::try_from(h % u64::from(shards.max(1))).unwrap_or(0)
}

/// Shard attribute value: `<kind>#<n>`.
pub(crate) fn shard_value(names: DueNames, shard: u32) -> String {
    format!("{}#{shard}", names.kind)
}

/// A string attribute of an item.
pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

/// A number attribute of an item, as u64.
pub(crate) fn get_u64(item: &Item, name: &str) -> Option<u64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

/// A string-set attribute of an item (empty when absent).
pub(crate) fn get_ss<'a>(item: &'a Item, name: &str) -> &'a [String] {
    item.get(name).and_then(|v| v.as_ss().ok()).map(Vec::as_slice).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_keys_order_by_time_then_id_and_round_trip() {
        let t0 = DateTime::from_timestamp(1_767_225_600, 0).expect("time");
        let later = t0 + chrono::Duration::milliseconds(1);
        let mut keys = [due_key(later, "a"), due_key(t0, "b"), due_key(t0, "ab"), due_key(t0, "a")];
        keys.sort();
        let ids: Vec<String> = keys.iter().map(|k| parse_due_key(k).expect("parse").0).collect();
        assert_eq!(ids, ["a", "ab", "b", "a"]);
        assert_eq!(parse_due_key(&due_key(t0, "x#y")).expect("parse"), ("x#y".to_string(), t0));
        // Everything due at `now` (inclusive) is below the bound; 1 ms later is not.
        assert!(due_key(t0, "zzzz") < due_bound(t0));
        assert!(due_key(later, "") > due_bound(t0));
        assert!(parse_due_key("12#x").is_err());
        assert!(parse_due_key("000000000000000x#a").is_err());
    }

    #[test]
    fn sub_millisecond_due_times_round_up() {
        let t = DateTime::from_timestamp(10, 1_500_000).expect("time");
        assert_eq!(due_key(t, "a"), "0000000000010002#a");
        assert_eq!(event_sk(t, "e"), "EVT#0000000000010001#e");
    }

    #[test]
    fn due_keys_before_1970_sort_before_1970_and_round_trip() {
        let at = |ms: i64| DateTime::from_timestamp_millis(ms).expect("time");
        let before_1970 = DateTime::from_timestamp(-10, 500_000).expect("time");
        assert_eq!(due_key(before_1970, "a"), "-9999999999990001#a", "rounded up to -9 999 ms");
        assert_eq!(parse_due_key(&due_key(before_1970, "a")).expect("parse"), ("a".to_string(), at(-9_999)));
        let ms = [-20_000, -9_999, -1, 0, 1, 5_000];
        let keys: Vec<String> = ms.iter().map(|&m| due_key(at(m), "x")).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, keys, "keys sort like their times");
        // Due at `now` exactly when the key is below `now`'s bound, on both sides of 1970.
        for &due in &ms {
            for &now in &ms {
                assert_eq!(due_key(at(due), "zz") < due_bound(at(now)), due <= now, "due {due}, now {now}");
            }
        }
        let earliest = DateTime::<chrono::Utc>::MIN_UTC;
        assert_eq!(parse_due_key(&due_key(earliest, "a")).expect("parse").1, at(due_millis(earliest)));
        assert!(parse_due_key("-12#x").is_err());
    }

    #[test]
    fn shards_are_stable_and_spread() {
        // Stored values: these must never change.
        assert_eq!(shard_of("", 8), 5);
        assert_eq!(shard_of("ld-1", 8), shard_of("ld-1", 8));
        let mut counts = [0u32; 8];
        for i in 0..8000 {
            counts[shard_of(&format!("lead-{i}"), 8) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
        assert_eq!(shard_of("x", 0), 0, "zero shards is treated as one");
    }
}
