//! Incoming events: the wire shape ([`RawEvent`]), validation into [`Event`], and the machine
//! traffic check for email opens and clicks.

use crate::{limits, Time};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Types the product knows by name; any other type must follow [`valid_type`].
pub const KNOWN_TYPES: &[&str] = &[
    "page_view",
    "form_submit",
    "download",
    "webinar_registered",
    "webinar_attended",
    "email_open",
    "email_click",
    "cta_click",
    "newsletter_subscribe",
    "unsubscribe",
    "demo_request",
    "contact_request",
    "purchase",
    "social_interaction",
];

/// Event types produced by Ember itself (email delivery feedback): recorded, but they are not
/// the lead's own activity and never re-arm decay.
pub const SYSTEM_TYPES: &[&str] = &["email_delivered", "email_bounced", "email_complaint", "email_sent"];

/// Prefix of the types of the changes Ember makes itself (`ember.crm.recycled`, `ember.decay`…).
pub const EMBER_PREFIX: &str = "ember.";

/// Whether only Ember itself may record this type: what SES feedback turns into (delivered,
/// bounced, complained, sent: a bounce or a complaint suppresses the address for good) and every
/// `ember.*` type (CRM feedback, decay, SLA, drip). A client (a write key) may never send one,
/// so a public key can never suppress or disqualify anyone.
///
/// `unsubscribe` is not among them: SPEC §3 lists it as a type a client sends (a site's own
/// preference page), and its opt-out is undone by the lead's next opt-in, whereas a bounce or a
/// complaint is final. The signed unsubscribe link records the same type through Ember's own path.
pub fn is_reserved_type(t: &str) -> bool {
    SYSTEM_TYPES.contains(&t) || t.starts_with(EMBER_PREFIX)
}

/// Who sent an event: decides which types it may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A client with a write key (`POST /v1/events`, the tracker, imports): no reserved type.
    Client,
    /// Ember itself (SES feedback, unsubscribe links): any valid type.
    Ember,
}

/// Longest event id and anonymous id.
pub const MAX_ID_LEN: usize = 128;

/// How far in the future `occurred_at` may be.
pub const MAX_FUTURE_SECS: i64 = 300;

/// Earliest `occurred_at` accepted (2000-01-01T00:00:00Z): older times are typing mistakes or
/// zero values (`0001-01-01`) that would pollute cohorts, decay and windows. A fixed floor
/// rather than a sliding one, so that importing years of history keeps working.
pub const EARLIEST_OCCURRED_AT: &str = "2000-01-01T00:00:00Z";

fn earliest_occurred_at() -> Time {
    chrono::DateTime::parse_from_rfc3339(EARLIEST_OCCURRED_AT).map(|t| t.with_timezone(&chrono::Utc)).unwrap_or_default()
}

/// An event as sent by a client (every field optional so that each problem can be named).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RawEvent {
    /// Client-generated unique id.
    #[serde(default)]
    pub event_id: Option<Value>,
    /// `type`, required: lower-case letter first, then letters, digits, `_ . : -` (≤ 64 chars).
    #[serde(default, rename = "type")]
    pub kind: Option<Value>,
    /// RFC 3339 time.
    #[serde(default)]
    pub occurred_at: Option<Value>,
    /// The browser's or app's id for a visitor not yet identified; this or `email` is required.
    #[serde(default)]
    pub anonymous_id: Option<Value>,
    /// The person's email address (normalized on validation); this or `anonymous_id` is required.
    #[serde(default)]
    pub email: Option<Value>,
    /// An object of facts about the person (`plan`, `company`…), merged into the lead; `null` removes one.
    #[serde(default)]
    pub traits: Option<Value>,
    /// An object describing this event (`url`, `plan`…), read by `where:` matchers.
    #[serde(default)]
    pub properties: Option<Value>,
    /// Context (utm, referrer).
    #[serde(default)]
    pub context: Option<Value>,
}

/// An event that passed [`RawEvent::validate`]: normalized, with an id and a time; what the timeline stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The client's `event_id`, or `ev_` + a UUIDv7 when it sent none; repeats are deduplicated on it.
    pub id: String,
    /// The event type, e.g. `page_view`; rules and triggers match on it.
    #[serde(rename = "type")]
    pub kind: String,
    /// `occurred_at`, or the time received when absent; never before 2000 nor over 5 minutes ahead.
    pub at: Time,
    /// Trimmed, lower-cased email; `None` for an anonymous event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The client's visitor id, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<String>,
    /// Facts about the person, merged into the lead's traits (`null` removes a key).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub traits: Map<String, Value>,
    /// Facts about this event, read by `where:` matchers.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub properties: Map<String, Value>,
    /// utm source / medium / campaign and referrer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// Mail scanner or privacy proxy traffic: recorded, earns nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub machine: bool,
}

/// Acquisition channel of an event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    /// utm source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// utm medium.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<String>,
    /// utm campaign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// `context.referrer`, cut to [`limits::MAX_TOUCH_BYTES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
}

impl Event {
    /// Whether the lead itself did this (re-arms decay, counts as activity).
    pub fn is_activity(&self) -> bool {
        !self.machine && !SYSTEM_TYPES.contains(&self.kind.as_str())
    }
}

/// Whether a type follows the naming rule `[a-z][a-z0-9_.:-]{0,63}`.
pub fn valid_type(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_lowercase()
        && b[1..].iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_.:-".contains(c))
}

/// Characters that render as nothing (or only steer the text direction) and so make two
/// emails that look the same differ: zero-width space, joiners and non-joiners, direction
/// marks, embeddings and isolates, word joiner and invisible operators, BOM, soft hyphen,
/// combining grapheme joiner, Mongolian vowel separator, Arabic letter mark, Hangul fillers,
/// variation selectors and tag characters.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}' | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{3164}'
        | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E007F}' | '\u{E0100}'..='\u{E01EF}')
}

/// Normalizes an email for comparison — invisible characters ([`is_invisible`]) removed,
/// trimmed, lower-cased, Unicode NFC (so a composed `é` and `e` + combining accent are one
/// address) — and checks its shape (`local@domain`, no spaces). Every place that compares
/// emails (ingest, lookups, CRM feedback, imports) goes through it.
pub fn normalize_email(raw: &str) -> Result<String, String> {
    use unicode_normalization::UnicodeNormalization;
    let visible: String = raw.chars().filter(|c| !is_invisible(*c)).collect();
    let e: String = visible.trim().to_lowercase().nfc().collect();
    let Some((local, domain)) = e.split_once('@') else {
        return Err("`email` is not an email address (no `@`)".into());
    };
    if local.is_empty() || domain.is_empty() || domain.contains('@') || e.chars().any(char::is_whitespace) {
        return Err("`email` is not a valid email address".into());
    }
    if e.len() > 254 {
        return Err("`email` is longer than 254 characters".into());
    }
    Ok(e)
}

fn opt_string(v: &Option<Value>, field: &str) -> Result<Option<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("`{field}` must be a string")),
    }
}

fn opt_object(v: &Option<Value>, field: &str) -> Result<Map<String, Value>, String> {
    match v {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(format!("`{field}` must be an object")),
    }
}

impl RawEvent {
    /// Validates and normalizes an event sent by a client (reserved types refused, see
    /// [`is_reserved_type`]). `now` is the time received; `new_id` makes an id when the client
    /// sent none.
    pub fn validate(&self, now: Time, new_id: impl FnOnce() -> String) -> Result<Event, String> {
        self.validate_from(Source::Client, now, new_id)
    }

    /// Validates and normalizes an event from `source`: only [`Source::Ember`] may carry a
    /// reserved type; every other rule is the same for both.
    pub fn validate_from(&self, source: Source, now: Time, new_id: impl FnOnce() -> String) -> Result<Event, String> {
        let kind = match &self.kind {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => return Err("`type` is missing".into()),
            Some(_) => return Err("`type` must be a string".into()),
        };
        if !valid_type(&kind) {
            return Err(format!(
                "`type` `{}` breaks the naming rule: lower-case letter first, then letters, digits, `_ . : -`, at most 64 characters",
                kind.chars().take(70).collect::<String>()
            ));
        }
        if source == Source::Client && is_reserved_type(&kind) {
            return Err(format!(
                "`type` `{kind}` is recorded only by Ember itself (email feedback, CRM feedback, unsubscribe links); a write key may not send it"
            ));
        }
        let id = match opt_string(&self.event_id, "event_id")? {
            Some(id) if id.len() > MAX_ID_LEN => return Err(format!("`event_id` is longer than {MAX_ID_LEN} characters")),
            Some(id) => id,
            None => new_id(),
        };
        let at = match &self.occurred_at {
            None | Some(Value::Null) => now,
            Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|_| format!("`occurred_at` `{s}` is not an RFC 3339 time (e.g. 2026-03-02T09:00:00Z)"))?
                .with_timezone(&chrono::Utc),
            Some(_) => return Err("`occurred_at` must be an RFC 3339 string".into()),
        };
        if (at - now).num_seconds() > MAX_FUTURE_SECS {
            return Err(format!("`occurred_at` is more than {} minutes in the future", MAX_FUTURE_SECS / 60));
        }
        if at < earliest_occurred_at() {
            return Err(format!("`occurred_at` is before {EARLIEST_OCCURRED_AT}, the earliest time Ember accepts"));
        }
        let email = opt_string(&self.email, "email")?.map(|e| normalize_email(&e)).transpose()?;
        let anonymous_id = opt_string(&self.anonymous_id, "anonymous_id")?;
        if anonymous_id.as_ref().is_some_and(|a| a.len() > MAX_ID_LEN) {
            return Err(format!("`anonymous_id` is longer than {MAX_ID_LEN} characters"));
        }
        if email.is_none() && anonymous_id.is_none() {
            return Err("no identity: give `email` or `anonymous_id`".into());
        }
        let traits = opt_object(&self.traits, "traits")?;
        let properties = opt_object(&self.properties, "properties")?;
        let context = opt_object(&self.context, "context")?;
        check_context(&context)?;
        limits::check_object("traits", &traits)?;
        limits::check_object("properties", &properties)?;
        limits::check_object("context", &context)?;
        let size = limits::json_size(&traits) + limits::json_size(&properties) + limits::json_size(&context);
        if size > limits::MAX_EVENT_BYTES {
            return Err(format!(
                "`traits`, `properties` and `context` together are {size} bytes; an event may carry at most {} bytes",
                limits::MAX_EVENT_BYTES
            ));
        }
        let channel = channel_of(&context);
        let machine = is_machine_traffic(&kind, &properties);
        Ok(Event { id, kind, at, email, anonymous_id, traits, properties, channel, machine })
    }
}

/// The fields of `context` Ember reads must have the right types (others are kept as sent).
fn check_context(context: &Map<String, Value>) -> Result<(), String> {
    let text = |v: Option<&Value>, name: &str| match v {
        None | Some(Value::Null) | Some(Value::String(_)) => Ok(()),
        Some(_) => Err(format!("`{name}` must be a string")),
    };
    text(context.get("referrer"), "context.referrer")?;
    match context.get("utm") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(utm)) => {
            for f in ["source", "medium", "campaign"] {
                text(utm.get(f), &format!("context.utm.{f}"))?;
            }
            Ok(())
        }
        Some(_) => Err("`context.utm` must be an object".into()),
    }
}

/// The acquisition channel of an event. Each field is cut to [`limits::MAX_TOUCH_BYTES`] (at a
/// character boundary): the lead keeps a first and a last touch, and a crafted 4 KB UTM value
/// must not be copied into it; the event itself keeps `context` as sent.
fn channel_of(context: &Map<String, Value>) -> Option<Channel> {
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(limits::cut).filter(|s| !s.is_empty());
    let utm = context.get("utm").and_then(Value::as_object);
    let c = Channel {
        source: s(utm.and_then(|u| u.get("source"))),
        medium: s(utm.and_then(|u| u.get("medium"))),
        campaign: s(utm.and_then(|u| u.get("campaign"))),
        referrer: s(context.get("referrer")),
    };
    (c != Channel::default()).then_some(c)
}

/// User-agent fragments of mail scanners and privacy proxies that fetch links and images
/// on the recipient's behalf.
pub const SCANNER_AGENTS: &[&str] = &[
    "googleimageproxy",
    "yahoomailproxy",
    "barracuda",
    "mimecast",
    "proofpoint",
    "symantec",
    "messagelabs",
    "trendmicro",
    "forcepoint",
    "safelinks",
    "microsoft office protocol discovery",
    "bingpreview",
    "python-requests",
    "curl/",
    "wget/",
    "headlesschrome",
];

/// A click this soon after delivery was made by a scanner, not a person.
pub const MACHINE_CLICK_SECONDS: f64 = 10.0;

/// Whether an email open or click was made by a machine: flagged by the feedback handler
/// (`properties.machine: true`), a known scanner user agent, a privacy-proxy prefetch
/// (`properties.prefetch: true`), or a click within [`MACHINE_CLICK_SECONDS`] of delivery
/// (`properties.seconds_since_delivery`).
pub fn is_machine_traffic(kind: &str, props: &Map<String, Value>) -> bool {
    if !matches!(kind, "email_open" | "email_click") {
        return false;
    }
    if props.get("machine").and_then(Value::as_bool) == Some(true) || props.get("prefetch").and_then(Value::as_bool) == Some(true) {
        return true;
    }
    if let Some(ua) = props.get("user_agent").and_then(Value::as_str) {
        let ua = ua.to_lowercase();
        if SCANNER_AGENTS.iter().any(|s| ua.contains(s)) {
            return true;
        }
    }
    kind == "email_click"
        && props
            .get("seconds_since_delivery")
            .and_then(Value::as_f64)
            .is_some_and(|s| s >= 0.0 && s < MACHINE_CLICK_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Time {
        "2026-03-02T09:00:00Z".parse().unwrap()
    }

    fn raw(v: Value) -> RawEvent {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn validates_and_normalizes() {
        let e = raw(json!({"type": "page_view", "email": "  Someone@Example.COM ", "properties": {"path": "/"},
            "context": {"utm": {"source": "google", "medium": "cpc"}}}))
        .validate(now(), || "gen".into())
        .unwrap();
        assert_eq!(e.email.as_deref(), Some("someone@example.com"));
        assert_eq!(e.id, "gen");
        assert_eq!(e.at, now());
        assert_eq!(e.channel.unwrap().source.as_deref(), Some("google"));
    }

    #[test]
    fn rejects_with_reasons() {
        let cases = [
            (json!({"type": "Page View", "email": "a@b.c"}), "naming rule"),
            (json!({"email": "a@b.c"}), "`type` is missing"),
            (json!({"type": "page_view"}), "no identity"),
            (json!({"type": "page_view", "email": "nope"}), "not an email"),
            (json!({"type": "page_view", "email": "a@b.c", "occurred_at": "2026-03-02T09:06:00Z"}), "future"),
            (json!({"type": "page_view", "email": "a@b.c", "occurred_at": "yesterday"}), "RFC 3339"),
            (json!({"type": "page_view", "email": "a@b.c", "traits": [1]}), "`traits` must be an object"),
            (json!({"type": "page_view", "email": "a@b.c", "event_id": "x".repeat(129)}), "longer than 128"),
        ];
        for (v, want) in cases {
            let err = raw(v.clone()).validate(now(), || "g".into()).unwrap_err();
            assert!(err.contains(want), "{v}: {err}");
        }
        // Four minutes ahead is tolerated (clock skew).
        assert!(raw(json!({"type": "x", "anonymous_id": "a", "occurred_at": "2026-03-02T09:04:00Z"})).validate(now(), || "g".into()).is_ok());
    }

    #[test]
    fn reserved_types_are_refused_from_clients_and_taken_from_ember() {
        for t in ["email_bounced", "email_complaint", "email_delivered", "email_sent", "ember.crm.rejected", "ember.decay"] {
            let r = raw(json!({"type": t, "email": "a@b.example", "properties": {"bounce_type": "Permanent"}}));
            let err = r.validate(now(), || "g".into()).unwrap_err();
            assert!(err.contains("recorded only by Ember itself"), "{t}: {err}");
            assert_eq!(r.validate_from(Source::Ember, now(), || "g".into()).unwrap().kind, t);
        }
        // Types a client sends are still taken, `unsubscribe` among them (SPEC §3's known types).
        for t in ["unsubscribe", "email_open", "email_click", "embers_lit", "newsletter_subscribe"] {
            assert!(raw(json!({"type": t, "email": "a@b.example"})).validate(now(), || "g".into()).is_ok(), "{t}");
        }
    }

    #[test]
    fn occurred_at_has_a_floor() {
        for t in ["0001-01-01T00:00:00Z", "1999-12-31T23:59:59Z", "1970-01-01T00:00:00Z"] {
            let err = raw(json!({"type": "page_view", "email": "a@b.example", "occurred_at": t})).validate(now(), || "g".into()).unwrap_err();
            assert!(err.contains("before 2000-01-01T00:00:00Z"), "{t}: {err}");
        }
        assert!(raw(json!({"type": "page_view", "email": "a@b.example", "occurred_at": EARLIEST_OCCURRED_AT})).validate(now(), || "g".into()).is_ok());
    }

    #[test]
    fn emails_are_one_address_whatever_their_unicode_form() {
        let nfc = "jos\u{e9}@caf\u{e9}.example";
        let nfd = "jose\u{301}@cafe\u{301}.example";
        let want = normalize_email(nfc).unwrap();
        assert_eq!(want, "jos\u{e9}@caf\u{e9}.example");
        for variant in [
            nfd.to_string(),
            format!("\u{200b}{nfc}"),
            "jos\u{e9}\u{200d}@caf\u{e9}.example".to_string(),
            format!("\u{feff}  JOS\u{c9}@CAFE\u{301}.EXAMPLE\u{a0}"),
            "jo\u{ad}s\u{e9}@caf\u{e9}\u{2066}.example\u{2069}".to_string(),
            "\u{202e}jos\u{e9}@caf\u{e9}.example\u{202c}".to_string(),
        ] {
            assert_eq!(normalize_email(&variant).unwrap(), want, "{variant:?}");
        }
        // Nothing but invisible characters around no address is still no address.
        assert!(normalize_email("\u{200b}\u{200b}").is_err());
        let e = raw(json!({"type": "page_view", "email": nfd})).validate(now(), || "g".into()).unwrap();
        assert_eq!(e.email.as_deref(), Some(want.as_str()));
    }

    #[test]
    fn traits_and_properties_are_bounded() {
        let many: Map<String, Value> = (0..101).map(|i| (format!("k{i}"), json!(i))).collect();
        let big = "x".repeat(4000);
        let cases = [
            (json!({"type": "page_view", "email": "a@b.c", "traits": many}), "`traits` has 101 keys"),
            (json!({"type": "page_view", "email": "a@b.c", "properties": {"url": "x".repeat(5000)}}), "`properties.url` is 5000 bytes"),
            (json!({"type": "page_view", "email": "a@b.c", "properties": {"a": {"b": {"c": {"d": {"e": 1}}}}}}), "nests deeper"),
            (json!({"type": "page_view", "email": "a@b.c", "context": {"k".repeat(200): 1}}), "`context` has a key longer"),
            (
                json!({"type": "page_view", "email": "a@b.c", "traits": {"a": big, "b": big}, "properties": {"c": big, "d": big, "e": big}}),
                "an event may carry at most 16384 bytes",
            ),
        ];
        for (v, want) in cases {
            let err = raw(v.clone()).validate(now(), || "g".into()).unwrap_err();
            assert!(err.contains(want), "{want}: {err}");
        }
    }

    #[test]
    fn touches_keep_at_most_a_kilobyte_per_field() {
        let long = "é".repeat(1000); // 2,000 bytes
        let e = raw(json!({"type": "page_view", "email": "a@b.c", "context": {"utm": {"source": long, "medium": "cpc"}, "referrer": "x".repeat(3000)}}))
            .validate(now(), || "g".into())
            .unwrap();
        let c = e.channel.unwrap();
        assert_eq!(c.source.as_deref().map(str::len), Some(1024));
        assert_eq!(c.referrer.as_deref().map(str::len), Some(1024));
        assert_eq!(c.medium.as_deref(), Some("cpc"));
    }

    #[test]
    fn machine_traffic() {
        let p = |v: Value| v.as_object().unwrap().clone();
        assert!(is_machine_traffic("email_click", &p(json!({"seconds_since_delivery": 2}))));
        assert!(!is_machine_traffic("email_click", &p(json!({"seconds_since_delivery": 200}))));
        assert!(is_machine_traffic("email_open", &p(json!({"user_agent": "Mozilla/5.0 (via ggpht.com GoogleImageProxy)"}))));
        assert!(!is_machine_traffic("email_open", &p(json!({"user_agent": "Mozilla/5.0 (Macintosh)"}))));
        assert!(!is_machine_traffic("page_view", &p(json!({"machine": true}))));
    }
}
