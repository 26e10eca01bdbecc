//! Which lead an identity pointed at, remembered by this process so that a known visitor's
//! next event skips the identity look-ups (on DynamoDB: one `GetItem` per identity).
//!
//! The cache is only a hint. Ingest loads the lead it names and uses it only if that lead
//! still holds the identity (its email, or the anonymous id among its cookies); a lead that
//! is gone (merged away, erased) or no longer holds it sends ingest back to the store's
//! identity items. Identities are re-pointed by merges and erasure, which remove the old
//! lead, and by a cookie moving to another person, which takes the cookie out of the old
//! lead's document in the same commit (under its version): a stale entry is always detected
//! when the lead is read, and the commit's version guard covers a move made after that read.
//! Bounded: when full, it starts again empty.

use crate::ports::Identity;
use ember_scoring::Lead;
use std::collections::HashMap;
use std::sync::Mutex;

/// Entries kept before the cache starts again.
pub const CAPACITY: usize = 100_000;

/// Identity → lead id hints.
#[derive(Debug, Default)]
pub(crate) struct IdentityCache {
    map: Mutex<HashMap<Identity, String>>,
}

impl IdentityCache {
    pub(crate) fn get(&self, identity: &Identity) -> Option<String> {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).get(identity).cloned()
    }

    /// Remembers every identity the lead holds.
    pub(crate) fn remember(&self, lead: &Lead) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() + 1 + lead.anonymous_ids.len() > CAPACITY {
            map.clear();
        }
        if let Some(e) = &lead.email {
            map.insert(Identity::Email(e.clone()), lead.id.clone());
        }
        for a in &lead.anonymous_ids {
            map.insert(Identity::Anonymous(a.clone()), lead.id.clone());
        }
    }

    pub(crate) fn forget(&self, identity: &Identity) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).remove(identity);
    }
}

/// Whether `lead` holds `identity`.
pub(crate) fn holds(lead: &Lead, identity: &Identity) -> bool {
    match identity {
        Identity::Email(e) => lead.email.as_deref() == Some(e.as_str()),
        Identity::Anonymous(a) => lead.anonymous_ids.iter().any(|x| x == a),
    }
}
