//! What changed between two versions of a model file (`ember model diff OLD NEW`), section by
//! section and item by item: each rule, stage, campaign, template, decay entry, temperature band,
//! score group and list by its id, and the single-valued sections (handoff, email, quadrants, the
//! model's name and time zone) as one item each; a changed item lists every key that differs with
//! its old and new value, as the model file writes them.
//!
//! The files are compared as written (after YAML merge keys are resolved), so the diff speaks the
//! author's own keys; templates are compared by their loaded bodies, so a change inside a template
//! file given by path is seen too. Both models must have loaded: the diff of an invalid model is
//! its errors.

use super::Model;
use serde::Serialize;
use serde_json::{Map, Value};
use serde_norway::Value as Yaml;

/// Every section that differs, in the model file's order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ModelDiff {
    /// Only the sections with at least one difference.
    pub sections: Vec<SectionDiff>,
}

/// The differences of one section.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SectionDiff {
    /// The model file's key: `rules`, `stages`, `campaigns`, `templates`, `decay`, `temperature`…
    pub section: String,
    /// Ids in the new model only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<String>,
    /// Ids in the old model only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    /// Ids in both whose definitions differ, with what differs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<ItemChange>,
}

/// One item present in both models, defined differently.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemChange {
    /// The item's id (a rule's `id`, a template's key, a decay entry's `score`…).
    pub id: String,
    /// Every key that differs, deepest first where a whole sub-map was added or removed.
    pub fields: Vec<FieldChange>,
}

/// One key whose value differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// Dotted path inside the item (`points.engagement`, `when.all[1].did.on`); empty for an
    /// item that is a single value.
    pub path: String,
    /// The old value; `None`: the key is new.
    pub old: Option<Value>,
    /// The new value; `None`: the key is gone.
    pub new: Option<Value>,
}

impl ModelDiff {
    /// Whether the two models are defined the same.
    pub fn is_empty(&self) -> bool {
        self.sections.is_empty()
    }
}

/// How a section's items are named.
enum Keyed {
    /// A list of maps, each named by this key (the position when it is missing or repeated).
    List(&'static str),
    /// A map from id to definition.
    Map,
    /// One item, named after the section.
    Whole,
}

/// The sections compared from the file, in the order the model file writes them.
const SECTIONS: &[(&str, Keyed)] = &[
    ("name", Keyed::Whole),
    ("timezone", Keyed::Whole),
    ("scores", Keyed::Map),
    ("lists", Keyed::Map),
    ("rules", Keyed::List("id")),
    ("decay", Keyed::List("score")),
    ("temperature", Keyed::Whole),
    ("quadrants", Keyed::Whole),
    ("stages", Keyed::List("id")),
    ("handoff", Keyed::Whole),
    ("email", Keyed::Whole),
    ("campaigns", Keyed::List("id")),
];

/// The differences from the model file `old_text` (loaded as `old`) to `new_text` (`new`).
pub fn diff(old_text: &str, old: &Model, new_text: &str, new: &Model) -> ModelDiff {
    let (old_root, new_root) = (root(old_text), root(new_text));
    let mut out = ModelDiff::default();
    for (name, keyed) in SECTIONS {
        let items = |root: &Value| -> Vec<(String, Value)> { section_items(root.get(*name), name, keyed) };
        push(&mut out, name, &items(&old_root), &items(&new_root));
        if *name == "email" {
            // Templates by their loaded bodies: a template file's change is a change.
            push(&mut out, "templates", &templates(old), &templates(new));
        }
        if *name == "temperature" {
            let bands = |root: &Value| section_items(root.get("temperature").and_then(|t| t.get("bands")), "bands", &Keyed::List("label"));
            push(&mut out, "temperature.bands", &bands(&old_root), &bands(&new_root));
        }
    }
    out
}

/// The file as JSON (merge keys resolved, every map key a string); `Null` when it does not parse
/// (the callers have loaded both models, so it always does).
fn root(text: &str) -> Value {
    let Ok(mut yaml) = serde_norway::from_str::<Yaml>(text) else { return Value::Null };
    if yaml.apply_merge().is_err() {
        return Value::Null;
    }
    json(&yaml)
}

fn json(y: &Yaml) -> Value {
    match y {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(*b),
        Yaml::Number(n) => serde_json::to_value(n).unwrap_or(Value::Null),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Sequence(items) => Value::Array(items.iter().map(json).collect()),
        Yaml::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match json(k) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.insert(key, json(v));
            }
            Value::Object(out)
        }
        Yaml::Tagged(t) => json(&t.value),
    }
}

/// The items of a section, named.
fn section_items(section: Option<&Value>, name: &str, keyed: &Keyed) -> Vec<(String, Value)> {
    let Some(section) = section else { return Vec::new() };
    match keyed {
        Keyed::Whole => {
            // The temperature bands are their own section.
            let mut v = section.clone();
            if name == "temperature" {
                if let Some(o) = v.as_object_mut() {
                    o.remove("bands");
                }
            }
            vec![(name.to_string(), v)]
        }
        Keyed::Map => section.as_object().map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default(),
        Keyed::List(key) => {
            let mut seen = std::collections::BTreeSet::new();
            let items = section.as_array().cloned().unwrap_or_default();
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    let named = item.get(*key).and_then(Value::as_str).map(str::to_string);
                    let id = match named {
                        Some(id) if seen.insert(id.clone()) => id,
                        Some(id) => format!("{id}#{}", i + 1),
                        None => format!("#{}", i + 1),
                    };
                    (id, item)
                })
                .collect()
        }
    }
}

/// The templates of a loaded model: subject, HTML and text bodies.
fn templates(m: &Model) -> Vec<(String, Value)> {
    m.templates
        .iter()
        .map(|(id, t)| (id.clone(), serde_json::json!({"subject": t.subject, "html": t.html, "text": t.text})))
        .collect()
}

/// Adds the section's differences to `out`, if it has any.
fn push(out: &mut ModelDiff, section: &str, old: &[(String, Value)], new: &[(String, Value)]) {
    let find = |items: &[(String, Value)], id: &str| items.iter().find(|(k, _)| k == id).map(|(_, v)| v.clone());
    let mut s = SectionDiff { section: section.to_string(), ..SectionDiff::default() };
    for (id, before) in old {
        match find(new, id) {
            None => s.removed.push(id.clone()),
            Some(after) if after != *before => {
                let mut fields = Vec::new();
                changes("", Some(before), Some(&after), &mut fields);
                s.changed.push(ItemChange { id: id.clone(), fields });
            }
            Some(_) => {}
        }
    }
    s.added = new.iter().filter(|(id, _)| find(old, id).is_none()).map(|(id, _)| id.clone()).collect();
    if !(s.added.is_empty() && s.removed.is_empty() && s.changed.is_empty()) {
        out.sections.push(s);
    }
}

/// Every path under `path` where `old` and `new` differ: maps are compared key by key, lists of
/// the same length item by item; anything else that differs is one change.
fn changes(path: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<FieldChange>) {
    let join = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            for (k, v) in a {
                changes(&join(k), Some(v), b.get(k), out);
            }
            for (k, v) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                changes(&join(k), None, Some(v), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                changes(&format!("{path}[{i}]"), Some(x), Some(y), out);
            }
        }
        (a, b) if a != b => out.push(FieldChange { path: path.to_string(), old: a.cloned(), new: b.cloned() }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = r#"
name: t
timezone: Europe/Paris
scores: { engagement: { min: 0, max: 100 } }
rules:
  - { id: visit, on: page_view, points: { engagement: 5 } }
  - { id: demo, on: demo_request, points: { engagement: 40 } }
decay:
  - { score: engagement, after: 30d, points: -10 }
temperature:
  score: engagement
  bands:
    - { label: cold, below: 25 }
    - { label: hot }
stages:
  - { id: lead, when: { identified: true } }
  - { id: mql, when: { engagement: { gte: 50 } } }
templates:
  hi: { subject: "Hi", html: "<p>Hi</p>" }
"#;

    fn load(text: &str) -> Model {
        Model::from_yaml_str(text, "m.yaml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn section<'a>(d: &'a ModelDiff, name: &str) -> &'a SectionDiff {
        d.sections.iter().find(|s| s.section == name).unwrap_or_else(|| panic!("no {name} in {d:?}"))
    }

    #[test]
    fn the_same_model_has_no_difference_whatever_its_layout() {
        let relaid = OLD.replace("{ id: visit, on: page_view, points: { engagement: 5 } }", "{ points: { engagement: 5 }, on: page_view, id: visit }");
        let d = diff(OLD, &load(OLD), &relaid, &load(&relaid));
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn additions_removals_and_changes_are_named_by_id_with_old_and_new_values() {
        let new = OLD
            .replace("points: { engagement: 5 }", "points: { engagement: 8 }")
            .replace("  - { id: demo, on: demo_request, points: { engagement: 40 } }\n", "  - { id: trial, on: trial_started, points: { engagement: 30 } }\n")
            .replace("after: 30d", "after: 45d")
            .replace("{ label: cold, below: 25 }", "{ label: cold, below: 20 }\n    - { label: warm, below: 60 }")
            .replace("{ gte: 50 }", "{ gte: 60 }")
            .replace("html: \"<p>Hi</p>\"", "html: \"<p>Hello</p>\"");
        let d = diff(OLD, &load(OLD), &new, &load(&new));
        let rules = section(&d, "rules");
        assert_eq!((rules.added.as_slice(), rules.removed.as_slice()), (&["trial".to_string()][..], &["demo".to_string()][..]));
        assert_eq!(rules.changed, vec![ItemChange {
            id: "visit".into(),
            fields: vec![FieldChange { path: "points.engagement".into(), old: Some(5.into()), new: Some(8.into()) }],
        }]);
        assert_eq!(section(&d, "decay").changed[0].fields[0].path, "after");
        let bands = section(&d, "temperature.bands");
        assert_eq!((bands.added.as_slice(), bands.changed[0].id.as_str()), (&["warm".to_string()][..], "cold"));
        let mql = &section(&d, "stages").changed[0];
        assert_eq!((mql.id.as_str(), mql.fields[0].path.as_str()), ("mql", "when.engagement.gte"));
        let hi = &section(&d, "templates").changed[0];
        assert_eq!((hi.id.as_str(), hi.fields[0].path.as_str()), ("hi", "html"));
        assert_eq!(d.sections.iter().map(|s| s.section.as_str()).collect::<Vec<_>>(), ["rules", "decay", "temperature.bands", "stages", "templates"]);
    }

    #[test]
    fn a_removed_key_and_a_whole_new_section_are_changes_too() {
        let new = format!("{}handoff:\n  stages: [mql]\n", OLD.replace("decay:\n  - { score: engagement, after: 30d, points: -10 }\n", ""));
        let d = diff(OLD, &load(OLD), &new, &load(&new));
        assert_eq!(section(&d, "decay").removed, ["engagement"]);
        assert_eq!(section(&d, "handoff").added, ["handoff"]);
    }
}
