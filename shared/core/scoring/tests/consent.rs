//! Consent (SPEC §2): what opts a lead in, and the only three things that opt it out.

use ember_scoring::{Engine, Event, Model, RawEvent, Time};
use serde_json::{json, Value};
use std::sync::Arc;

fn engine() -> Engine {
    let text = include_str!("../../../../examples/b2b-saas.yaml");
    Engine::new(Arc::new(Model::from_yaml_str(text, "b2b-saas.yaml").expect("example model is valid")))
}

fn at(minutes: i64) -> Time {
    "2026-03-02T09:00:00Z".parse::<Time>().unwrap() + chrono::Duration::minutes(minutes)
}

fn event(id: &str, minutes: i64, v: Value) -> Event {
    let mut v = v;
    let o = v.as_object_mut().unwrap();
    o.insert("event_id".into(), id.into());
    o.insert("occurred_at".into(), at(minutes).to_rfc3339().into());
    o.entry("email").or_insert("ada@acme.example".into());
    let raw: RawEvent = serde_json::from_value(v).unwrap();
    raw.validate_from(ember_scoring::event::Source::Ember, at(minutes), || unreachable!()).unwrap()
}

#[test]
fn an_unticked_opt_in_box_changes_no_consent() {
    let eng = engine();
    let mut lead = eng.new_lead("ld_1", at(0));
    eng.ingest(&mut lead, &event("e1", 0, json!({"type": "newsletter_subscribe"})));
    assert!(lead.consent.subscribed());
    // A later form sent with its opt-in box unticked: still subscribed.
    eng.ingest(&mut lead, &event("e2", 5, json!({"type": "form_submit", "traits": {"email_opt_in": false}})));
    assert!(lead.consent.subscribed(), "{:?}", lead.consent);
    assert_eq!(lead.consent.unsubscribed_at, None);
    // And it never opts in a lead that had not.
    let mut other = eng.new_lead("ld_2", at(0));
    eng.ingest(&mut other, &event("e3", 0, json!({"type": "form_submit", "email": "bo@acme.example", "traits": {"email_opt_in": false}})));
    assert!(!other.consent.subscribed());
    assert_eq!(other.consent, Default::default());
}

#[test]
fn unsubscribe_bounce_and_complaint_opt_out() {
    let eng = engine();
    for (kind, props) in [("unsubscribe", json!({})), ("email_bounced", json!({"bounce_type": "Permanent"})), ("email_complaint", json!({}))] {
        let mut lead = eng.new_lead("ld_1", at(0));
        eng.ingest(&mut lead, &event("e1", 0, json!({"type": "form_submit", "traits": {"email_opt_in": true}})));
        assert!(lead.consent.subscribed());
        eng.ingest(&mut lead, &event("e2", 5, json!({"type": kind, "properties": props})));
        assert!(!lead.consent.subscribed(), "{kind}");
    }
    // A transient bounce does not.
    let mut lead = eng.new_lead("ld_1", at(0));
    eng.ingest(&mut lead, &event("e1", 0, json!({"type": "newsletter_subscribe"})));
    eng.ingest(&mut lead, &event("e2", 5, json!({"type": "email_bounced", "properties": {"bounce_type": "Transient"}})));
    assert!(lead.consent.subscribed());
}
