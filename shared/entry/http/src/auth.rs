//! API keys: *write keys* (ingest only, each with the browser origins it may be used from) and
//! *admin keys* (every other route).
//!
//! Keys are configured — and kept — only as SHA-256 hashes:
//!
//! ```text
//! EMBER_WRITE_KEYS="sha256:<hex>@https://www.example.com,https://example.com;sha256:<hex>@*;sha256:<hex>"
//! EMBER_ADMIN_KEYS="sha256:<hex>;sha256:<hex>"
//! ```
//!
//! Entries are separated by `;` or new lines. A write key's origins follow `@`, separated by
//! commas; `@*` allows any origin, and a key without `@` is for servers only (a request carrying
//! an `Origin` header is refused). `ember keys new` makes a key and prints its entry.
//!
//! A presented key is hashed and compared with every configured hash in constant time, without
//! stopping at the first match, so timing tells nothing about which keys exist.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix of write keys.
pub const WRITE_PREFIX: &str = "ek_w_";
/// Prefix of admin keys.
pub const ADMIN_PREFIX: &str = "ek_a_";

/// A mistake in a key configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// An entry is not `sha256:<64 hex digits>[@origins]`.
    #[error("{var}, entry {index}: {problem}")]
    Entry {
        /// The setting's name.
        var: &'static str,
        /// 1-based position of the entry.
        index: usize,
        /// What is wrong with the entry, e.g. not 64 hex digits after `sha256:`.
        problem: String,
    },
    /// `EMBER_CRM_SECRET` is set but is not a Standard Webhooks secret.
    #[error("EMBER_CRM_SECRET must be a Standard Webhooks secret: `whsec_` followed by base64 (the value is not shown)")]
    CrmSecret,
}

/// Which origins may use a write key from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origins {
    /// Any origin (`@*`).
    Any,
    /// These origins (`scheme://host[:port]`, lower case); empty: servers only.
    List(Vec<String>),
}

impl Origins {
    fn allows(&self, origin: &str) -> bool {
        match self {
            Origins::Any => true,
            Origins::List(list) => {
                let o = normalize_origin(origin);
                list.iter().any(|x| *x == o)
            }
        }
    }
}

#[derive(Debug, Clone)]
struct WriteKey {
    hash: [u8; 32],
    origins: Origins,
}

/// The key hashes from `EMBER_WRITE_KEYS` and `EMBER_ADMIN_KEYS` (only SHA-256 hashes are kept, never keys).
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    write: Vec<WriteKey>,
    admin: Vec<[u8; 32]>,
}

/// What a write-key check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteAccess {
    /// A write (or admin) key, usable from this origin.
    Granted,
    /// A valid write key, but not from this origin.
    ForeignOrigin,
    /// Missing, or matching no configured hash (the API answers 401).
    Unknown,
}

impl ApiKeys {
    /// Parses `EMBER_WRITE_KEYS` and `EMBER_ADMIN_KEYS` values (either may be empty).
    pub fn parse(write: &str, admin: &str) -> Result<ApiKeys, KeyError> {
        let mut keys = ApiKeys::default();
        for (i, entry) in entries(write) {
            let (hash, origins) = match entry.split_once('@') {
                Some((h, o)) => (h, Some(o)),
                None => (entry, None),
            };
            let hash = parse_hash(hash).map_err(|problem| KeyError::Entry { var: "EMBER_WRITE_KEYS", index: i, problem })?;
            let origins = match origins.map(str::trim) {
                None => Origins::List(Vec::new()),
                Some("*") => Origins::Any,
                Some(list) => {
                    let mut out = Vec::new();
                    for o in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
                        check_origin(o).map_err(|problem| KeyError::Entry { var: "EMBER_WRITE_KEYS", index: i, problem })?;
                        out.push(normalize_origin(o));
                    }
                    Origins::List(out)
                }
            };
            keys.write.push(WriteKey { hash, origins });
        }
        for (i, entry) in entries(admin) {
            if entry.contains('@') {
                return Err(KeyError::Entry {
                    var: "EMBER_ADMIN_KEYS",
                    index: i,
                    problem: "admin keys take no origins (they are for servers and the dashboard, not websites)".into(),
                });
            }
            let hash = parse_hash(entry).map_err(|problem| KeyError::Entry { var: "EMBER_ADMIN_KEYS", index: i, problem })?;
            keys.admin.push(hash);
        }
        Ok(keys)
    }

    /// Adds a write key (by its hash entry); used by `ember dev` for the keys it makes.
    pub fn with(mut self, other: ApiKeys) -> ApiKeys {
        self.write.extend(other.write);
        self.admin.extend(other.admin);
        self
    }

    /// No key at all is configured.
    pub fn is_empty(&self) -> bool {
        self.write.is_empty() && self.admin.is_empty()
    }

    /// How many write and admin keys are configured.
    pub fn counts(&self) -> (usize, usize) {
        (self.write.len(), self.admin.len())
    }

    /// Whether `key` is an admin key.
    pub fn is_admin(&self, key: &str) -> bool {
        let h = digest(key);
        let mut found = subtle::Choice::from(0);
        for a in &self.admin {
            found |= a.ct_eq(&h);
        }
        found.into()
    }

    /// Checks a key for ingest, from `origin` (the request's `Origin` header, if any). Admin
    /// keys may ingest too, from servers (never from a browser origin).
    pub fn check_write(&self, key: &str, origin: Option<&str>) -> WriteAccess {
        let h = digest(key);
        let mut matched: Option<&WriteKey> = None;
        for w in &self.write {
            if bool::from(w.hash.ct_eq(&h)) && matched.is_none() {
                matched = Some(w);
            }
        }
        let admin = self.is_admin(key);
        match (matched, origin) {
            (Some(_), None) => WriteAccess::Granted,
            (Some(w), Some(o)) if w.origins.allows(o) => WriteAccess::Granted,
            (Some(_), Some(_)) => WriteAccess::ForeignOrigin,
            (None, None) if admin => WriteAccess::Granted,
            (None, Some(_)) if admin => WriteAccess::ForeignOrigin,
            (None, _) => WriteAccess::Unknown,
        }
    }

    /// Whether some write key may be used from `origin` (CORS preflight, which carries no key).
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.write.iter().any(|w| w.origins.allows(origin))
    }
}

fn entries(s: &str) -> impl Iterator<Item = (usize, &str)> {
    s.split([';', '\n']).map(str::trim).filter(|e| !e.is_empty()).enumerate().map(|(i, e)| (i + 1, e))
}

fn parse_hash(s: &str) -> Result<[u8; 32], String> {
    let s = s.trim();
    let Some(hex) = s.strip_prefix("sha256:") else {
        if s.starts_with(WRITE_PREFIX) || s.starts_with(ADMIN_PREFIX) {
            return Err("this looks like a key itself: configure its hash (`ember keys hash KEY` prints it)".into());
        }
        return Err("expected `sha256:<64 hex digits>`".into());
    };
    // Read as characters, never sliced by bytes: the text is whatever the configuration holds,
    // and a multi-byte character must be named, not cut through.
    let digits: Vec<u8> = hex
        .chars()
        .map(|c| c.to_digit(16).map(|d| d as u8))
        .collect::<Option<_>>()
        .ok_or_else(|| "the hash holds a character that is not a hex digit".to_string())?;
    if digits.len() != 64 {
        return Err(format!("a SHA-256 hash has 64 hex digits, this one has {}", digits.len()));
    }
    let mut out = [0u8; 32];
    for (b, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *b = pair[0] << 4 | pair[1];
    }
    Ok(out)
}

fn check_origin(o: &str) -> Result<(), String> {
    let rest = o.strip_prefix("https://").or_else(|| o.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.trim_end_matches('/').contains('/') => Ok(()),
        _ => Err(format!("`{o}` is not an origin (`https://host[:port]`, no path)")),
    }
}

fn normalize_origin(o: &str) -> String {
    o.trim().trim_end_matches('/').to_ascii_lowercase()
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The configuration entry of a key: `sha256:<hex>`.
pub fn hash_entry(key: &str) -> String {
    let mut s = String::from("sha256:");
    for b in digest(key) {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Which kind of key to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `ek_w_…`: may only send events, from the origins its entry allows.
    Write,
    /// `ek_a_…`: may call every route, the admin and report routes included.
    Admin,
}

/// A fresh random key (`ek_w_…` or `ek_a_…`, 32 random bytes, URL-safe base64).
pub fn new_key(kind: KeyKind) -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    let prefix = match kind {
        KeyKind::Write => WRITE_PREFIX,
        KeyKind::Admin => ADMIN_PREFIX,
    };
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_by_hash_and_origin() {
        let w = new_key(KeyKind::Write);
        let server = new_key(KeyKind::Write);
        let a = new_key(KeyKind::Admin);
        let keys = ApiKeys::parse(
            &format!("{}@https://www.example.com, https://Shop.example.com/ ;\n{}", hash_entry(&w), hash_entry(&server)),
            &hash_entry(&a),
        )
        .unwrap();
        assert_eq!(keys.counts(), (2, 1));
        assert_eq!(keys.check_write(&w, Some("https://www.example.com")), WriteAccess::Granted);
        assert_eq!(keys.check_write(&w, Some("https://shop.example.com")), WriteAccess::Granted);
        assert_eq!(keys.check_write(&w, None), WriteAccess::Granted);
        assert_eq!(keys.check_write(&w, Some("https://evil.example")), WriteAccess::ForeignOrigin);
        assert_eq!(keys.check_write(&server, Some("https://www.example.com")), WriteAccess::ForeignOrigin);
        assert_eq!(keys.check_write(&server, None), WriteAccess::Granted);
        assert_eq!(keys.check_write("ek_w_guess", None), WriteAccess::Unknown);
        assert_eq!(keys.check_write(&a, None), WriteAccess::Granted);
        assert!(keys.is_admin(&a));
        assert!(!keys.is_admin(&w));
        assert!(keys.origin_allowed("https://www.example.com"));
        assert!(!keys.origin_allowed("https://evil.example"));
    }

    #[test]
    fn any_origin() {
        let w = new_key(KeyKind::Write);
        let keys = ApiKeys::parse(&format!("{}@*", hash_entry(&w)), "").unwrap();
        assert_eq!(keys.check_write(&w, Some("http://localhost:3000")), WriteAccess::Granted);
        assert!(keys.origin_allowed("http://anything.example"));
    }

    #[test]
    fn mistakes_are_named() {
        let e = ApiKeys::parse("sha256:abc", "").unwrap_err().to_string();
        assert!(e.contains("EMBER_WRITE_KEYS, entry 1") && e.contains("64 hex digits"), "{e}");
        let raw = new_key(KeyKind::Admin);
        let e = ApiKeys::parse("", &format!("{};{raw}", hash_entry("x"))).unwrap_err().to_string();
        assert!(e.contains("EMBER_ADMIN_KEYS, entry 2") && e.contains("looks like a key itself"), "{e}");
        assert!(!e.contains(&raw), "the error never repeats a secret: {e}");
        let e = ApiKeys::parse(&format!("{}@www.example.com", hash_entry("x")), "").unwrap_err().to_string();
        assert!(e.contains("is not an origin"), "{e}");
        let e = ApiKeys::parse(&format!("{}zz", &hash_entry("x")[..69]), "").unwrap_err().to_string();
        assert!(e.contains("not a hex digit"), "{e}");
    }

    #[test]
    fn a_multi_byte_character_in_a_hash_is_a_named_error() {
        // 64 bytes, but `é` is two of them: slicing by bytes would cut it in half.
        let hash = format!("sha256:{}é{}", "a".repeat(31), "b".repeat(31));
        assert_eq!(hash.len() - "sha256:".len(), 64);
        let e = ApiKeys::parse(&hash, "").unwrap_err().to_string();
        assert!(e.contains("EMBER_WRITE_KEYS, entry 1") && e.contains("not a hex digit"), "{e}");
        let e = ApiKeys::parse("", &format!("{hash}\n{}", hash_entry("x"))).unwrap_err().to_string();
        assert!(e.contains("EMBER_ADMIN_KEYS, entry 1") && e.contains("not a hex digit"), "{e}");
        let e = ApiKeys::parse(&format!("sha256:{}", "é".repeat(40)), "").unwrap_err().to_string();
        assert!(e.contains("not a hex digit"), "{e}");
        let e = ApiKeys::parse(&format!("sha256:{}", "a".repeat(63)), "").unwrap_err().to_string();
        assert!(e.contains("this one has 63"), "{e}");
    }

    proptest::proptest! {
        /// Whatever the configuration holds, parsing answers: keys or a named error, never a panic.
        #[test]
        fn the_key_parser_never_panics(write in "\\PC{0,200}", admin in "\\PC{0,200}") {
            let _ = ApiKeys::parse(&write, &admin);
        }

        /// The same, for entries of 64 bytes with a multi-byte character anywhere in them,
        /// where a parser slicing by bytes breaks; and with origins after them.
        #[test]
        fn entry_shaped_input_never_panics(head in "[0-9a-f]{0,61}", wide in "[éß€\u{10348}]", origins in "(@[^;]{0,40})?") {
            let mut hex = format!("{head}{wide}");
            while hex.len() < 64 {
                hex.push('a');
            }
            let write = format!("sha256:{hex}{origins}");
            let admin = format!("sha256:{hex}");
            proptest::prop_assert!(ApiKeys::parse(&write, "").is_err());
            proptest::prop_assert!(ApiKeys::parse("", &admin).is_err());
        }
    }

    #[test]
    fn fresh_keys_differ_and_hash_stably() {
        let a = new_key(KeyKind::Admin);
        assert!(a.starts_with(ADMIN_PREFIX) && a.len() > 40);
        assert_ne!(a, new_key(KeyKind::Admin));
        assert_eq!(hash_entry("abc"), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
