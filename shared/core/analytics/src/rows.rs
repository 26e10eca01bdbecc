//! History rows: JSONL events, CSV lead exports and outcome files, parsed into the event shape
//! of SPEC §3 ([`RawEvent`]) — the same shape `POST /v1/events` and the ingest service take.
//!
//! Re-sending a row must be harmless, so every row gets a deterministic event id when it has
//! none: a 128-bit FNV-1a hash of the row's content (`jl_…` for JSONL lines, `csv_…` for CSV
//! rows). The same row always gets the same id; the ingest service reports it as a duplicate.

use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
use ember_scoring::event::normalize_email;
use ember_scoring::{Event, RawEvent, Time};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A row that could not be used: its line number (1-based, as an editor shows it) and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rejected {
    /// Line number in the input file.
    pub line: u64,
    /// What is wrong with the line, e.g. ``no `purchased_at` ``.
    pub reason: String,
}

/// 128-bit FNV-1a over the parts (separated so that `ab|c` and `a|bc` differ), as 32 hex digits.
pub fn stable_id(parts: &[&str]) -> String {
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013B;
    let mut h: u128 = 0x6C62_272E_07BB_0142_62B8_2175_6295_C58D;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0x1f;
            h = h.wrapping_mul(PRIME);
        }
        for b in p.as_bytes() {
            h ^= *b as u128;
            h = h.wrapping_mul(PRIME);
        }
    }
    format!("{h:032x}")
}

/// Parses one JSONL line into an event; a line without `event_id` gets `jl_<hash of the line>`.
pub fn parse_event_line(line: &str) -> Result<RawEvent, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    if !value.is_object() {
        return Err("not a JSON object".into());
    }
    let mut raw: RawEvent = serde_json::from_value(value).map_err(|e| format!("not an event: {e}"))?;
    if raw.event_id.as_ref().is_none_or(|v| v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty())) {
        raw.event_id = Some(Value::String(format!("jl_{}", stable_id(&[line.trim()]))));
    }
    Ok(raw)
}

/// Validates a history event: like the ingest service, but `occurred_at` is required (history
/// without times cannot be replayed) and `now` only bounds how far in the future it may be.
pub fn validate_history(raw: &RawEvent, now: Time) -> Result<Event, String> {
    if raw.occurred_at.as_ref().is_none_or(Value::is_null) {
        return Err("`occurred_at` is missing (history needs the time of each event)".into());
    }
    // `parse_event_line` always sets an id; for events built otherwise, the same content gets
    // the same id.
    raw.validate(now, || format!("jl_{}", stable_id(&[&serde_json::to_string(raw).unwrap_or_default()])))
}

/// Where a CSV column goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The lead's email.
    Email,
    /// The row's `anonymous_id` (a visitor id from the other tool).
    AnonymousId,
    /// The time the row's event happened (`created_at`).
    OccurredAt,
    /// A trait of that name.
    Trait(String),
    /// Not imported: unknown headers, and columns mapped to `-` with `--map`.
    Ignore,
}

/// Header normalization: lower case, every run of other characters than letters and digits
/// becomes `_` (`Job Title` → `job_title`, `Lifecycle Stage` → `lifecycle_stage`).
pub fn normalize_header(h: &str) -> String {
    let mut out = String::new();
    for c in h.trim().trim_start_matches('\u{feff}').chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

/// The columns known without `--map` (after [`normalize_header`]), including the names common
/// marketing tools export.
pub fn default_target(normalized: &str) -> Target {
    match normalized {
        "email" | "email_address" | "e_mail" | "work_email" => Target::Email,
        "anonymous_id" | "cookie_id" | "visitor_id" => Target::AnonymousId,
        "created_at" | "create_date" | "createdate" | "created" | "created_on" | "date_created" => Target::OccurredAt,
        "first_name" | "firstname" | "given_name" => Target::Trait("first_name".into()),
        "last_name" | "lastname" | "family_name" | "surname" => Target::Trait("last_name".into()),
        "company" | "company_name" | "organization" | "organisation" | "account_name" => Target::Trait("company".into()),
        "job_title" | "jobtitle" | "title" | "position" => Target::Trait("job_title".into()),
        "country" | "country_code" | "country_region" => Target::Trait("country".into()),
        "company_size" | "employees" | "number_of_employees" | "numberofemployees" | "headcount" => Target::Trait("company_size".into()),
        "industry" => Target::Trait("industry".into()),
        "phone" | "phone_number" => Target::Trait("phone".into()),
        "city" => Target::Trait("city".into()),
        "lifecycle_stage" | "lifecyclestage" | "lifecycle" | "stage" | "lead_status" => Target::Trait("lifecycle_stage".into()),
        "email_opt_in" | "opt_in" | "subscribed" | "marketing_consent" => Target::Trait("email_opt_in".into()),
        _ => Target::Ignore,
    }
}

/// Traits whose values are numbers when they look like one.
const NUMERIC_TRAITS: &[&str] = &["company_size"];
/// Traits whose values are booleans when they look like one.
const BOOLEAN_TRAITS: &[&str] = &["email_opt_in"];

/// Parses `--map col=trait` items; `col=email`, `col=anonymous_id`, `col=created_at` and
/// `col=-` (ignore) are special.
pub fn parse_maps(items: &[String]) -> Result<BTreeMap<String, Target>, String> {
    let mut out = BTreeMap::new();
    for item in items {
        let (col, to) = item.split_once('=').ok_or_else(|| format!("--map `{item}`: expected COLUMN=TRAIT"))?;
        let to = to.trim();
        let target = match to {
            "email" => Target::Email,
            "anonymous_id" => Target::AnonymousId,
            "created_at" | "occurred_at" => Target::OccurredAt,
            "-" | "" => Target::Ignore,
            t if t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => Target::Trait(t.to_string()),
            t => return Err(format!("--map `{item}`: trait name `{t}` may hold only letters, digits and `_`")),
        };
        out.insert(normalize_header(col), target);
    }
    Ok(out)
}

/// How the columns of one CSV file are imported.
#[derive(Debug, Clone)]
pub struct CsvLayout {
    /// Target per column, in file order.
    pub columns: Vec<Target>,
    /// Headers after [`normalize_header`] (`Job Title` → `job_title`), in file order.
    pub headers: Vec<String>,
    /// Event type of the rows (`lead_imported`).
    pub event_type: String,
}

/// Event type of imported CSV lead rows: no rule of the examples listens to it, so a row sets
/// traits (and with them profile rules and stages) without earning behaviour points.
pub const LEAD_ROW_TYPE: &str = "lead_imported";

impl CsvLayout {
    /// The layout for `headers`, with `maps` (from [`parse_maps`]) overriding the defaults.
    /// Fails when no column holds the email or an anonymous id.
    pub fn new(headers: &[String], maps: &BTreeMap<String, Target>) -> Result<CsvLayout, String> {
        let headers: Vec<String> = headers.iter().map(|h| normalize_header(h)).collect();
        let columns: Vec<Target> =
            headers.iter().map(|h| maps.get(h).cloned().unwrap_or_else(|| default_target(h))).collect();
        if !columns.iter().any(|t| matches!(t, Target::Email | Target::AnonymousId)) {
            return Err(format!(
                "no email column among {:?}: name it `email` or add --map COLUMN=email",
                headers
            ));
        }
        for col in maps.keys() {
            if !headers.contains(col) {
                return Err(format!("--map names column `{col}`, which is not in the file (columns: {headers:?})"));
            }
        }
        Ok(CsvLayout { columns, headers, event_type: LEAD_ROW_TYPE.into() })
    }

    /// Columns that are not imported (for the summary).
    pub fn ignored(&self) -> Vec<&str> {
        self.headers.iter().zip(&self.columns).filter(|(_, t)| **t == Target::Ignore).map(|(h, _)| h.as_str()).collect()
    }

    /// One CSV record as an event: traits from the mapped columns, `occurred_at` from
    /// `created_at` (RFC 3339, `YYYY-MM-DD HH:MM[:SS]` or `YYYY-MM-DD`, UTC), and a
    /// deterministic `csv_…` event id.
    pub fn row(&self, record: &[&str]) -> Result<RawEvent, String> {
        if record.len() != self.columns.len() {
            return Err(format!("{} fields, the header has {}", record.len(), self.columns.len()));
        }
        let mut raw = RawEvent { kind: Some(Value::String(self.event_type.clone())), ..Default::default() };
        let mut traits = Map::new();
        for ((target, value), header) in self.columns.iter().zip(record).zip(&self.headers) {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            match target {
                Target::Email => {
                    normalize_email(value).map_err(|e| format!("column `{header}`: {e}"))?;
                    raw.email = Some(Value::String(value.to_string()));
                }
                Target::AnonymousId => raw.anonymous_id = Some(Value::String(value.to_string())),
                Target::OccurredAt => {
                    let at = parse_time(value).ok_or_else(|| {
                        format!("column `{header}`: `{value}` is not a time (RFC 3339, YYYY-MM-DD HH:MM:SS or YYYY-MM-DD)")
                    })?;
                    raw.occurred_at = Some(Value::String(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
                }
                Target::Trait(name) => {
                    traits.insert(name.clone(), trait_value(name, value));
                }
                Target::Ignore => {}
            }
        }
        if raw.email.is_none() && raw.anonymous_id.is_none() {
            return Err("no email".into());
        }
        if !traits.is_empty() {
            raw.traits = Some(Value::Object(traits));
        }
        raw.event_id = Some(Value::String(format!("csv_{}", stable_id(record))));
        Ok(raw)
    }
}

fn trait_value(name: &str, value: &str) -> Value {
    if NUMERIC_TRAITS.contains(&name) {
        if let Ok(n) = value.replace([',', ' '], "").parse::<i64>() {
            return Value::from(n);
        }
    }
    if BOOLEAN_TRAITS.contains(&name) {
        match value.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" | "y" => return Value::Bool(true),
            "false" | "no" | "0" | "n" => return Value::Bool(false),
            _ => {}
        }
    }
    Value::String(value.to_string())
}

/// Parses the time formats exports use: RFC 3339, `YYYY-MM-DD HH:MM[:SS]` and `YYYY-MM-DD`
/// (both read as UTC).
pub fn parse_time(s: &str) -> Option<Time> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| Utc.from_utc_datetime(&t))
}

/// A lead that bought: who (normalized email, or anonymous id), when, and for how much.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    /// Normalized email (or anonymous id).
    pub lead: String,
    /// Time of the (earliest) purchase, from the outcomes file.
    pub purchased_at: Time,
    /// Amount, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<f64>,
}

/// Outcomes by lead: the earliest purchase of each.
pub type Outcomes = BTreeMap<String, Outcome>;

fn outcome_of(email: Option<&str>, anon: Option<&str>, at: Option<&str>, amount: Option<f64>) -> Result<Outcome, String> {
    let lead = match (email.filter(|s| !s.trim().is_empty()), anon.filter(|s| !s.trim().is_empty())) {
        (Some(e), _) => normalize_email(e)?,
        (None, Some(a)) => a.to_string(),
        (None, None) => return Err("no `email` (or `anonymous_id`)".into()),
    };
    let at = at.ok_or("no `purchased_at`")?;
    let purchased_at = parse_time(at).ok_or_else(|| format!("`purchased_at` `{at}` is not a time"))?;
    Ok(Outcome { lead, purchased_at, amount })
}

/// Reads outcomes from CSV (header with `email`, `purchased_at` — or `converted_at`,
/// `occurred_at`, `won_at` — and optionally `amount`) or JSONL (objects with the same keys).
/// The format is told by the first non-blank character: `{` is JSONL. Keeps each lead's
/// earliest purchase; bad rows come back in the second list.
pub fn parse_outcomes(text: &str) -> Result<(Outcomes, Vec<Rejected>), String> {
    let mut out = Outcomes::new();
    let mut rejected = Vec::new();
    let mut keep = |o: Outcome| {
        let e = out.entry(o.lead.clone()).or_insert_with(|| o.clone());
        if o.purchased_at < e.purchased_at {
            *e = o;
        }
    };
    const TIME_KEYS: &[&str] = &["purchased_at", "converted_at", "won_at", "occurred_at", "closed_at"];
    if text.trim_start().starts_with('{') {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let parsed = serde_json::from_str::<Map<String, Value>>(line).map_err(|e| format!("not a JSON object: {e}")).and_then(|m| {
                let s = |k: &str| m.get(k).and_then(Value::as_str);
                let at = TIME_KEYS.iter().find_map(|k| s(k));
                outcome_of(s("email"), s("anonymous_id"), at, m.get("amount").and_then(Value::as_f64))
            });
            match parsed {
                Ok(o) => keep(o),
                Err(reason) => rejected.push(Rejected { line: i as u64 + 1, reason }),
            }
        }
        return Ok((out, rejected));
    }
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let headers: Vec<String> = rdr.headers().map_err(|e| format!("outcomes: {e}"))?.iter().map(normalize_header).collect();
    let col = |names: &[&str]| headers.iter().position(|h| names.contains(&h.as_str()));
    let (email, anon, at, amount) = (col(&["email", "email_address"]), col(&["anonymous_id"]), col(TIME_KEYS), col(&["amount", "value"]));
    if at.is_none() {
        return Err(format!("outcomes: no `purchased_at` column among {headers:?}"));
    }
    for rec in rdr.records() {
        let line = rec.as_ref().ok().and_then(|r| r.position()).map_or(0, |p| p.line());
        let parsed = rec.map_err(|e| e.to_string()).and_then(|r| {
            let get = |i: Option<usize>| i.and_then(|i| r.get(i));
            let amount = get(amount).and_then(|a| a.trim().parse::<f64>().ok());
            outcome_of(get(email), get(anon), get(at), amount)
        });
        match parsed {
            Ok(o) => keep(o),
            Err(reason) => rejected.push(Rejected { line, reason }),
        }
    }
    Ok((out, rejected))
}

/// The key a lead is known by in history and outcomes: its normalized email, else its
/// anonymous id.
pub fn lead_key(e: &Event) -> Option<&str> {
    e.email.as_deref().or(e.anonymous_id.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jsonl_lines_get_stable_ids() {
        let line = r#"{"type":"page_view","email":"a@b.example","occurred_at":"2025-01-01T00:00:00Z"}"#;
        let a = parse_event_line(line).unwrap();
        let b = parse_event_line(line).unwrap();
        assert_eq!(a.event_id, b.event_id);
        assert!(a.event_id.unwrap().as_str().unwrap().starts_with("jl_"));
        let given = parse_event_line(r#"{"event_id":"x1","type":"page_view","email":"a@b.example"}"#).unwrap();
        assert_eq!(given.event_id, Some(json!("x1")));
        assert!(parse_event_line("[1]").unwrap_err().contains("object"));
        assert!(parse_event_line("{oops").unwrap_err().contains("not JSON"));
        let no_time = parse_event_line(r#"{"type":"page_view","email":"a@b.example"}"#).unwrap();
        assert!(validate_history(&no_time, Utc::now()).unwrap_err().contains("occurred_at"));
    }

    #[test]
    fn csv_rows_map_known_columns_and_overrides() {
        let headers: Vec<String> =
            ["Email Address", "First Name", "Job Title", "Number of Employees", "Create Date", "Lifecycle Stage", "Plan", "Notes"]
                .map(String::from)
                .to_vec();
        let maps = parse_maps(&["plan=plan_tier".into()]).unwrap();
        let layout = CsvLayout::new(&headers, &maps).unwrap();
        assert_eq!(layout.ignored(), ["notes"]);
        let row = ["Ann@Acme.example", "Ann", "CTO", "5,200", "2024-06-01 10:30", "Marketing Qualified Lead", "pro", "met at fair"];
        let raw = layout.row(&row).unwrap();
        let traits = raw.traits.clone().unwrap();
        assert_eq!(traits["company_size"], json!(5200));
        assert_eq!(traits["job_title"], json!("CTO"));
        assert_eq!(traits["plan_tier"], json!("pro"));
        assert_eq!(traits["lifecycle_stage"], json!("Marketing Qualified Lead"));
        assert_eq!(raw.occurred_at, Some(json!("2024-06-01T10:30:00Z")));
        assert_eq!(raw.event_id, layout.row(&row).unwrap().event_id, "deterministic ids");
        let e = raw.validate(Utc::now(), || unreachable!()).unwrap();
        assert_eq!(e.email.as_deref(), Some("ann@acme.example"));
        // Reasons.
        assert!(layout.row(&["nope", "", "", "", "", "", "", ""]).unwrap_err().contains("email"));
        assert!(layout.row(&["a@b.example", "", "", "", "last tuesday", "", "", ""]).unwrap_err().contains("not a time"));
        assert!(layout.row(&["a@b.example"]).unwrap_err().contains("fields"));
        assert!(CsvLayout::new(&["name".into()], &BTreeMap::new()).unwrap_err().contains("no email column"));
        assert!(CsvLayout::new(&headers, &parse_maps(&["nope=x".into()]).unwrap()).unwrap_err().contains("not in the file"));
    }

    #[test]
    fn outcomes_csv_and_jsonl_keep_the_earliest_purchase() {
        let csv = "email,purchased_at,amount\nA@x.example,2025-03-01,100\na@x.example,2025-02-01,50\n,2025-01-01,1\nb@x.example,soon,2\n";
        let (o, rej) = parse_outcomes(csv).unwrap();
        assert_eq!(o.len(), 1);
        assert_eq!(o["a@x.example"].amount, Some(50.0));
        assert_eq!(rej.iter().map(|r| r.line).collect::<Vec<_>>(), [4, 5]);
        let jsonl = "{\"email\":\"c@x.example\",\"purchased_at\":\"2025-01-02T00:00:00Z\"}\n\n{\"email\":\"d@x.example\"}\n";
        let (o, rej) = parse_outcomes(jsonl).unwrap();
        assert!(o.contains_key("c@x.example"));
        assert_eq!(rej, vec![Rejected { line: 3, reason: "no `purchased_at`".into() }]);
    }
}
