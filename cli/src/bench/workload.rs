//! The events the benchmarks send: a fixed, realistic mix, the same in every run.

use ember_scoring::Time;
use serde_json::{json, Value};

/// A realistic mix of website and email events for lead `i`, event `n`.
pub fn sample_event(i: usize, n: usize, at: Time) -> Value {
    let kinds: [(&str, Value); 10] = [
        ("page_view", json!({"path": "/blog/scoring-in-practice"})),
        ("page_view", json!({"path": "/pricing"})),
        ("page_view", json!({"path": "/"})),
        ("page_view", json!({"path": "/product/features"})),
        ("email_open", json!({"template": "nl-welcome"})),
        ("email_click", json!({"template": "nl-welcome"})),
        ("download", json!({"content_id": "automation-strategy-guide"})),
        ("webinar_registered", json!({})),
        ("form_submit", json!({"form_id": "contact-us"})),
        ("page_view", json!({"path": "/careers"})),
    ];
    let (kind, props) = &kinds[(n * 7 + i) % kinds.len()];
    json!({
        "event_id": format!("bench-{i}-{n}"),
        "type": kind,
        "occurred_at": at.to_rfc3339(),
        "email": format!("lead{i}@company{}.example", i % 97),
        "properties": props,
        "traits": if n == 0 { json!({"job_title": "Head of Marketing", "company_size": 800 + i, "country": "FR"}) } else { json!({}) },
    })
}
