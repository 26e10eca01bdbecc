//! Personal data in domain messages. A message's `data` carries what the CRM needs to know about
//! the person (the lead summary: email, traits, first touch). Inside the lead's own record that
//! is fine — erasure deletes the record. Everywhere a message travels or waits outside it (the
//! event bus, the queues of events the bus could not deliver, webhook dead letters) it goes
//! *without* those fields: erasure cannot reach into a queue, so the copies there must hold
//! nothing personal. Whoever finally delivers the message restores the fields from the lead as
//! stored then; a lead that no longer exists (erased) gets nothing delivered.

use crate::lead::{Lead, Message};
use serde_json::Value;

/// The fields of a message's `data` that identify the person, as the engine's lead summary
/// copies them from the lead.
pub const PERSONAL_FIELDS: &[&str] = &["email", "traits", "first_touch"];

/// The key under which a message without personal data lists the fields it left out.
pub const LEFT_OUT: &str = "personal_data_left_out";

/// Removes the personal fields from `data` (an object) and lists the names it removed under
/// [`LEFT_OUT`]; data without personal fields is left as it is.
pub fn strip(data: &mut Value) {
    let Value::Object(obj) = data else { return };
    let mut removed: Vec<Value> = match obj.remove(LEFT_OUT) {
        Some(Value::Array(names)) => names,
        _ => Vec::new(),
    };
    for &field in PERSONAL_FIELDS {
        if obj.remove(field).is_some() && !removed.iter().any(|n| n == field) {
            removed.push(Value::String(field.to_string()));
        }
    }
    if !removed.is_empty() {
        obj.insert(LEFT_OUT.to_string(), Value::Array(removed));
    }
}

/// Whether `data` had personal fields removed by [`strip`] (and so needs the lead to be whole).
pub fn is_stripped(data: &Value) -> bool {
    data.get(LEFT_OUT).is_some()
}

/// Puts back the fields [`strip`] removed, from the lead as it is now.
pub fn restore(data: &mut Value, lead: &Lead) {
    let Value::Object(obj) = data else { return };
    let Some(Value::Array(names)) = obj.remove(LEFT_OUT) else { return };
    for name in names.iter().filter_map(Value::as_str) {
        let value = match name {
            "email" => lead.email.as_deref().map_or(Value::Null, |e| Value::String(e.to_string())),
            "traits" => Value::Object(lead.traits.clone()),
            "first_touch" => serde_json::to_value(&lead.first_touch).unwrap_or(Value::Null),
            // A name this version does not know (a newer writer): nothing to restore it from.
            _ => continue,
        };
        obj.insert(name.to_string(), value);
    }
}

impl Message {
    /// The message as it may travel and wait outside the lead's record: see the module docs.
    pub fn without_personal_data(&self) -> Message {
        let mut m = self.clone();
        strip(&mut m.data);
        m
    }

    /// Whether [`Message::without_personal_data`] left fields out.
    pub fn lacks_personal_data(&self) -> bool {
        is_stripped(&self.data)
    }

    /// The message with the fields it left out restored from `lead` (the lead it is about).
    pub fn with_personal_data_of(&self, lead: &Lead) -> Message {
        let mut m = self.clone();
        restore(&mut m.data, lead);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Model;
    use crate::engine::Engine;
    use crate::lead::Touch;
    use serde_json::json;
    use std::sync::Arc;

    fn engine() -> Engine {
        let text = include_str!("../../../../examples/b2b-saas.yaml");
        Engine::new(Arc::new(Model::from_yaml_str(text, "b2b-saas.yaml").unwrap_or_else(|e| panic!("{e}"))))
    }

    fn at() -> crate::Time {
        "2026-03-02T09:00:00Z".parse().unwrap()
    }

    fn person(engine: &Engine) -> Lead {
        let mut lead = Lead::new("ld_1", engine.model(), at());
        lead.email = Some("léna@café.example".into());
        lead.traits.insert("first_name".into(), json!("Léna"));
        lead.traits.insert("phone".into(), json!("+33 6 12 34 56 78"));
        lead.first_touch = Some(Touch {
            source: Some("newsletter".into()),
            medium: None,
            campaign: None,
            referrer: Some("https://mail.example/?u=lena".into()),
            at: lead.created_at,
        });
        lead
    }

    fn summary_message(engine: &Engine, lead: &Lead) -> Message {
        let data = engine.lead_summary(lead, json!({"stage": "sql", "reopened": false}));
        Message { id: "ld_1.lead.qualified.sql.1".into(), kind: crate::lead::MessageKind::Qualified, at: lead.created_at, lead_id: lead.id.clone(), data }
    }

    #[test]
    fn a_message_without_personal_data_holds_nothing_of_the_person() {
        let e = engine();
        let lead = person(&e);
        let stripped = summary_message(&e, &lead).without_personal_data();
        let text = serde_json::to_string(&stripped).unwrap();
        for secret in ["léna", "Léna", "+33", "mail.example", "newsletter"] {
            assert!(!text.contains(secret), "`{secret}` is still in {text}");
        }
        assert!(stripped.lacks_personal_data());
        // What the CRM routes on stays.
        assert_eq!(stripped.data["lead_id"], "ld_1");
        assert_eq!(stripped.data["stage"], "sql");
    }

    #[test]
    fn restoring_from_the_same_lead_gives_the_message_back_exactly() {
        let e = engine();
        let lead = person(&e);
        let whole = summary_message(&e, &lead);
        let back = whole.without_personal_data().with_personal_data_of(&lead);
        assert_eq!(back, whole);
        assert!(!back.lacks_personal_data());
        // Stripping twice is stripping once.
        let twice = whole.without_personal_data().without_personal_data();
        assert_eq!(twice, whole.without_personal_data());
    }

    #[test]
    fn every_personal_field_of_the_summary_is_listed() {
        let e = engine();
        let lead = person(&e);
        let data = summary_message(&e, &lead).without_personal_data().data;
        let listed: Vec<&str> = data[LEFT_OUT].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert_eq!(listed, PERSONAL_FIELDS);
    }

    #[test]
    fn data_without_personal_fields_is_left_alone() {
        let m = Message { id: "x".into(), kind: crate::lead::MessageKind::StageChanged, at: at(), lead_id: "ld".into(), data: json!({"from": "lead", "to": "mql"}) };
        assert_eq!(m.without_personal_data(), m);
        assert!(!m.without_personal_data().lacks_personal_data());
        let mut not_object = json!(["a"]);
        strip(&mut not_object);
        assert_eq!(not_object, json!(["a"]));
    }
}
