//! Size limits of what a client may send, so that no client can grow a lead beyond what the
//! store holds (a DynamoDB item is at most 400 KB, and every change of a lead rewrites it).
//!
//! | what | limit |
//! |---|---|
//! | keys in `traits`, in `properties`, in `context` (each object, nested ones included) | [`MAX_KEYS`] |
//! | items in one list | [`MAX_KEYS`] |
//! | length of a key | [`MAX_KEY_BYTES`] bytes |
//! | length of a string value | [`MAX_STRING_BYTES`] bytes |
//! | nesting of objects and lists inside `traits`, `properties` or `context` | [`MAX_DEPTH`] levels |
//! | `traits` + `properties` + `context` of one event, serialized as JSON | [`MAX_EVENT_BYTES`] bytes |
//! | a lead's traits, accumulated over all its events and merges, serialized | [`MAX_LEAD_TRAITS_BYTES`] bytes |
//! | anonymous ids of one lead (its own and those of profiles merged into it) | [`MAX_ANONYMOUS_IDS`] |
//!
//! The utm source, medium, campaign and referrer the lead keeps as its first and last touch are
//! cut to [`MAX_TOUCH_BYTES`] each (the event keeps `context` as sent).
//!
//! An event over a limit is rejected with a reason that names the field and the limit. The
//! lead's limit refuses only an event that would make a lead's traits *grow* past it, so a lead
//! stored before the limit existed still takes every event that adds nothing.

use serde_json::{Map, Value};

/// Most keys in one object (and items in one list) of `traits`, `properties` or `context`.
pub const MAX_KEYS: usize = 100;
/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 128;
/// Longest string value, in bytes (a long URL fits).
pub const MAX_STRING_BYTES: usize = 4096;
/// Deepest nesting: `{"a": {"b": {"c": {"d": 1}}}}` inside `traits` is 4 levels.
pub const MAX_DEPTH: usize = 4;
/// Largest `traits` + `properties` + `context` of one event, serialized as JSON.
pub const MAX_EVENT_BYTES: usize = 16 * 1024;
/// Largest serialized size of a lead's accumulated traits.
pub const MAX_LEAD_TRAITS_BYTES: usize = 16 * 1024;

/// Most anonymous ids (cookies) one lead holds; an event that would add one more is rejected.
pub const MAX_ANONYMOUS_IDS: usize = 100;
/// Longest utm field or referrer kept on a lead's first and last touch, in bytes.
pub const MAX_TOUCH_BYTES: usize = 1024;

/// `s` cut to at most [`MAX_TOUCH_BYTES`] bytes, at a character boundary.
pub fn cut(s: &str) -> String {
    let mut end = s.len().min(MAX_TOUCH_BYTES);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Checks a lead's anonymous ids after a change: `Err` when they grew (`before` → `after`)
/// past [`MAX_ANONYMOUS_IDS`].
pub fn check_anonymous_ids(before: usize, after: usize) -> Result<(), String> {
    if after > MAX_ANONYMOUS_IDS && after > before {
        return Err(format!(
            "the lead would hold {after} anonymous ids; a lead holds at most {MAX_ANONYMOUS_IDS} (its own and those of the profiles merged into it)"
        ));
    }
    Ok(())
}

/// Serialized JSON size of a map, in bytes.
pub fn json_size(map: &Map<String, Value>) -> usize {
    serde_json::to_vec(map).map(|v| v.len()).unwrap_or(usize::MAX)
}

/// Checks one top-level object of an event (`traits`, `properties` or `context`) against the
/// key, length and nesting limits; the error names the offending path.
pub fn check_object(field: &str, map: &Map<String, Value>) -> Result<(), String> {
    check_map(field, map, 1)
}

fn check_map(path: &str, map: &Map<String, Value>, depth: usize) -> Result<(), String> {
    if map.len() > MAX_KEYS {
        return Err(format!("`{path}` has {} keys; at most {MAX_KEYS} are allowed", map.len()));
    }
    for (k, v) in map {
        if k.len() > MAX_KEY_BYTES {
            let shown: String = k.chars().take(32).collect();
            return Err(format!("`{path}` has a key longer than {MAX_KEY_BYTES} bytes (`{shown}…`)"));
        }
        check_value(&format!("{path}.{k}"), v, depth)?;
    }
    Ok(())
}

fn check_value(path: &str, v: &Value, depth: usize) -> Result<(), String> {
    match v {
        Value::String(s) if s.len() > MAX_STRING_BYTES => {
            Err(format!("`{path}` is {} bytes long; a value may be at most {MAX_STRING_BYTES} bytes", s.len()))
        }
        Value::Object(_) | Value::Array(_) if depth >= MAX_DEPTH => Err(format!("`{path}` nests deeper than {MAX_DEPTH} levels")),
        Value::Object(m) => check_map(path, m, depth + 1),
        Value::Array(items) => {
            if items.len() > MAX_KEYS {
                return Err(format!("`{path}` has {} items; a list may hold at most {MAX_KEYS}", items.len()));
            }
            items.iter().enumerate().try_for_each(|(i, item)| check_value(&format!("{path}[{i}]"), item, depth + 1))
        }
        _ => Ok(()),
    }
}

/// Checks a lead's traits after a change: `Err` when they grew (`before` → `after` bytes) past
/// [`MAX_LEAD_TRAITS_BYTES`].
pub fn check_lead_traits(before: &Map<String, Value>, after: &Map<String, Value>) -> Result<(), String> {
    let (b, a) = (json_size(before), json_size(after));
    if a > MAX_LEAD_TRAITS_BYTES && a > b {
        return Err(format!(
            "the lead's traits would grow to {a} bytes; a lead holds at most {MAX_LEAD_TRAITS_BYTES} bytes of traits (remove some with `null`)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn object_limits_name_the_path_and_the_limit() {
        let many: Map<String, Value> = (0..=MAX_KEYS).map(|i| (format!("k{i}"), json!(1))).collect();
        assert!(check_object("traits", &many).unwrap_err().contains("at most 100"));
        let long_key = obj(json!({ "k".repeat(MAX_KEY_BYTES + 1): 1 }));
        assert!(check_object("traits", &long_key).unwrap_err().contains("longer than 128 bytes"));
        let long_value = obj(json!({"bio": "x".repeat(MAX_STRING_BYTES + 1)}));
        assert!(check_object("traits", &long_value).unwrap_err().contains("`traits.bio` is 4097 bytes"));
        let deep = obj(json!({"a": {"b": {"c": {"d": 1}}}}));
        assert!(check_object("properties", &deep).is_ok());
        let deeper = obj(json!({"a": {"b": {"c": {"d": {"e": 1}}}}}));
        assert!(check_object("properties", &deeper).unwrap_err().contains("`properties.a.b.c.d` nests deeper than 4"));
        let long_list = obj(json!({"ids": vec![1; MAX_KEYS + 1]}));
        assert!(check_object("properties", &long_list).unwrap_err().contains("`properties.ids` has 101 items"));
    }

    #[test]
    fn lead_traits_may_not_grow_past_the_limit() {
        let small = obj(json!({"a": "x"}));
        let big = obj(json!({"a": "x".repeat(MAX_LEAD_TRAITS_BYTES)}));
        assert!(check_lead_traits(&small, &big).unwrap_err().contains("at most 16384 bytes"));
        // A lead already over the limit (stored before it existed) still takes a change that
        // adds nothing, and one that shrinks it.
        assert!(check_lead_traits(&big, &big).is_ok());
        assert!(check_lead_traits(&big, &small).is_ok());
    }

    #[test]
    fn anonymous_ids_are_bounded_and_cuts_keep_characters_whole() {
        assert!(check_anonymous_ids(100, 100).is_ok());
        assert!(check_anonymous_ids(100, 101).unwrap_err().contains("at most 100"));
        assert!(check_anonymous_ids(150, 150).is_ok());
        assert_eq!(cut(&"é".repeat(600)).len(), 1024);
        assert_eq!(cut(&format!("a{}", "é".repeat(600))).len(), 1023);
        assert_eq!(cut("short"), "short");
    }
}
