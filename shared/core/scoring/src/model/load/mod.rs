//! The model loader: YAML → validated [`Model`], every mistake reported at once with the file,
//! the path inside it (`rules[3].cap.per`) and what is wrong.
//!
//! One file per section of the model file (`scores.rs`, `rules.rs`, `campaigns.rs`…), `root.rs` for the
//! top level and `conditions.rs` for the conditions they share, `sources.rs` for what the file names
//! but does not hold (template files, `${VAR}` settings), passed in by the caller; this one holds the
//! entry points, the context that collects errors and warnings (sorted in file order) and the
//! helpers every section uses.

use super::*;
use crate::cond::{Cond, Op, Scalar, Test};
use serde_norway::{Mapping, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

mod campaigns;
mod conditions;
mod decay;
mod email;
mod handoff;
mod lists;
mod root;
mod rules;
mod scores;
mod sources;
mod stages;
mod templates;

pub use sources::{MemorySources, ModelSources, NoSources, Unreadable};

/// One problem in a model file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: {path}: {message}")]
pub struct ModelError {
    /// The file name the caller passed to the loader, e.g. `model.yaml`.
    pub file: String,
    /// Path inside the file (`rules[3].cap.per`).
    pub path: String,
    /// What is wrong, phrased for the person editing the file (often with the fix).
    pub message: String,
}

/// Every problem found, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelErrors(pub Vec<ModelError>);

impl fmt::Display for ModelErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ModelErrors {}

impl Model {
    /// Validates YAML text; `file` names it in messages. Nothing outside the text is read: a
    /// template body given as a file path is reported unreadable and `${VAR}` references are unset
    /// (use [`Model::from_yaml_str_with`] to supply them).
    pub fn from_yaml_str(text: &str, file: &str) -> Result<Model, ModelErrors> {
        Model::from_yaml_str_with(text, file, &NoSources)
    }

    /// As [`Model::from_yaml_str`], with template files and `${VAR}` settings answered by `sources`.
    pub fn from_yaml_str_with(text: &str, file: &str, sources: &dyn ModelSources) -> Result<Model, ModelErrors> {
        let syntax = |e: serde_norway::Error| {
            let msg = e.to_string();
            let at = match e.location() {
                Some(l) if !msg.contains("line") => format!(" (line {}, column {})", l.line(), l.column()),
                _ => String::new(),
            };
            ModelErrors(vec![ModelError { file: file.into(), path: "(syntax)".into(), message: format!("{msg}{at}") }])
        };
        let mut root: Value = serde_norway::from_str(text).map_err(syntax)?;
        // `<<: *anchor` merge keys are a YAML 1.1 habit; resolve them rather than call them unknown.
        root.apply_merge().map_err(syntax)?;
        let mut cx = Ctx { file: file.into(), sources: Some(sources), ..Ctx::default() };
        let model = cx.model(&root);
        sort_in_file_order(&mut cx.errors, &root);
        sort_in_file_order(&mut cx.warnings, &root);
        match model {
            Some(mut m) if cx.errors.is_empty() => {
                m.warnings = cx.warnings;
                Ok(m)
            }
            _ => Err(ModelErrors(cx.errors)),
        }
    }
}

#[derive(Default)]
struct Ctx<'v> {
    file: String,
    sources: Option<&'v dyn ModelSources>,
    errors: Vec<ModelError>,
    warnings: Vec<ModelError>,
    scores: Vec<String>,
    stages: Vec<String>,
    lists: BTreeSet<String>,
    templates: BTreeSet<String>,
    campaigns: Vec<String>,
    bands: Vec<String>,
    trackers: Vec<Tracker>,
}

fn key_str(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => "?".into(),
    }
}

/// Names for a "(known: …)" hint, each once, in the given order.
fn known<S: AsRef<str>>(names: &[S]) -> String {
    let mut seen = BTreeSet::new();
    let unique: Vec<&str> = names.iter().map(AsRef::as_ref).filter(|n| seen.insert(*n)).collect();
    if unique.is_empty() { "none declared".to_string() } else { unique.join(", ") }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a map",
        Value::Tagged(_) => "a tagged value",
    }
}

impl Ctx<'_> {
    fn err(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(ModelError { file: self.file.clone(), path: path.to_string(), message: message.into() });
    }
    fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(ModelError { file: self.file.clone(), path: path.to_string(), message: message.into() });
    }

    /// A map whose keys are all allowed; reports unknown keys.
    fn map<'v>(&mut self, v: &'v Value, path: &str, allowed: &[&str]) -> Option<&'v Mapping> {
        let Value::Mapping(m) = v else {
            self.err(path, format!("expected a map, found {}", kind_of(v)));
            return None;
        };
        for k in m.keys() {
            let k = key_str(k);
            if !allowed.contains(&k.as_str()) {
                self.err(&join(path, &k), format!("unknown key `{k}` (expected one of: {})", allowed.join(", ")));
            }
        }
        Some(m)
    }

    fn string(&mut self, v: &Value, path: &str) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => {
                self.err(path, format!("expected a string, found {}", kind_of(other)));
                None
            }
        }
    }

    fn int(&mut self, v: &Value, path: &str) -> Option<i64> {
        match v.as_i64() {
            Some(n) => Some(n),
            None => {
                self.err(path, format!("expected a whole number, found {}", describe(v)));
                None
            }
        }
    }

    /// A whole number from 1 to `u32::MAX` (counts and limits).
    fn positive_u32(&mut self, v: &Value, path: &str) -> Option<u32> {
        let n = self.int(v, path)?;
        if n < 1 {
            self.err(path, format!("must be at least 1, found {n}"));
            return None;
        }
        match u32::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                self.err(path, format!("{n} is too large"));
                None
            }
        }
    }

    fn boolean(&mut self, v: &Value, path: &str) -> Option<bool> {
        match v {
            Value::Bool(b) => Some(*b),
            other => {
                self.err(path, format!("expected true or false, found {}", describe(other)));
                None
            }
        }
    }

    fn span(&mut self, v: &Value, path: &str, positive: bool) -> Option<Span> {
        let s = self.string(v, path)?;
        match Span::parse(&s) {
            Ok(sp) if positive && sp.secs() == 0 => {
                self.err(path, "must be longer than 0s");
                None
            }
            Ok(sp) => Some(sp),
            Err(e) => {
                self.err(path, e);
                None
            }
        }
    }

    fn group(&mut self, name: &str, path: &str) -> Option<usize> {
        match self.scores.iter().position(|g| g == name) {
            Some(i) => Some(i),
            None => {
                let known = known(&self.scores);
                self.err(path, format!("`{name}` is not a score group (known: {known})"));
                None
            }
        }
    }

    fn stage_ref(&mut self, name: &str, path: &str) -> Option<usize> {
        if name == VISITOR {
            return Some(0);
        }
        match self.stages.iter().position(|s| s == name) {
            Some(i) => Some(i + 1),
            None => {
                let known = self.known_stages();
                self.err(path, format!("`{name}` is not a stage (known: {known})"));
                None
            }
        }
    }

    /// `visitor` and the model's stage ids, for messages.
    fn known_stages(&self) -> String {
        known(&std::iter::once(VISITOR).chain(self.stages.iter().map(String::as_str)).collect::<Vec<_>>())
    }

    fn points(&mut self, v: &Value, path: &str) -> Points {
        let mut out = Vec::new();
        let Value::Mapping(m) = v else {
            self.err(path, format!("expected a map of score group → points, found {}", kind_of(v)));
            return out;
        };
        for (k, n) in m {
            let g = key_str(k);
            let p = join(path, &g);
            let gi = self.group(&g, &p);
            let n = self.int(n, &p);
            if let (Some(gi), Some(n)) = (gi, n) {
                out.push((gi, n));
            }
        }
        out
    }

    fn event_type(&mut self, v: &Value, path: &str) -> Option<String> {
        let t = self.string(v, path)?;
        if !crate::event::valid_type(&t) {
            self.err(path, format!("`{t}` is not a valid event type (lower-case letter first, then letters, digits, `_ . : -`, at most 64 characters)"));
            return None;
        }
        Some(t)
    }

    fn string_list(&mut self, v: &Value, path: &str) -> Vec<String> {
        match v {
            Value::Sequence(items) => items.iter().enumerate().filter_map(|(i, x)| self.string(x, &format!("{path}[{i}]"))).collect(),
            other => {
                self.err(path, format!("expected a list, found {}", kind_of(other)));
                Vec::new()
            }
        }
    }
}

/// The text of a scalar (as `Ctx::string` reads it), without reporting anything.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("`{s}`"),
        Value::Number(n) => format!("`{n}`"),
        Value::Bool(b) => format!("`{b}`"),
        other => kind_of(other).to_string(),
    }
}

/// Orders problems as they appear in the file (stable: problems at the same place keep the order
/// they were found in; a problem about a whole map comes before those inside it).
fn sort_in_file_order(errors: &mut [ModelError], root: &Value) {
    errors.sort_by_cached_key(|e| position(root, &e.path));
}

/// Where a path (`rules[3].cap.per`) points in the document: at each level, the index of the key
/// in its map or of the item in its list. Stops at the first part that is not in the file (a
/// missing key), so the result is the position of the nearest existing ancestor.
fn position(root: &Value, path: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut cur = root;
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else { break };
            let (Ok(i), Value::Sequence(items)) = (r[..end].parse::<usize>(), cur) else { break };
            let Some(item) = items.get(i) else { break };
            out.push(i);
            cur = item;
            rest = &r[end + 1..];
        } else {
            let Value::Mapping(m) = cur else { break };
            // Keys may contain dots (`properties.path`): take the longest key that fits.
            let found = m
                .iter()
                .enumerate()
                .filter_map(|(i, (k, v))| {
                    let k = key_str(k);
                    let tail = rest.strip_prefix(k.as_str())?;
                    (tail.is_empty() || tail.starts_with('.') || tail.starts_with('[')).then_some((k.len(), i, v, tail))
                })
                .max_by_key(|f| f.0);
            let Some((_, i, v, tail)) = found else { break };
            out.push(i);
            cur = v;
            rest = tail;
        }
        rest = rest.strip_prefix('.').unwrap_or(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example models, built into the test binary (no template of theirs names a file).
    pub(super) fn example(name: &str) -> Model {
        let text = match name {
            "b2b-saas.yaml" => include_str!("../../../../../../examples/b2b-saas.yaml"),
            "kitchen-shop.yaml" => include_str!("../../../../../../examples/kitchen-shop.yaml"),
            "saas-trial.yaml" => include_str!("../../../../../../examples/saas-trial.yaml"),
            other => panic!("no example {other}"),
        };
        Model::from_yaml_str(text, name).unwrap_or_else(|e| panic!("{name}:\n{e}"))
    }

    pub(super) fn errors(yaml: &str) -> Vec<ModelError> {
        match Model::from_yaml_str(yaml, "t.yaml") {
            Ok(_) => panic!("expected errors"),
            Err(e) => e.0,
        }
    }

    pub(super) fn ok(yaml: &str) -> Model {
        Model::from_yaml_str(yaml, "t.yaml").unwrap_or_else(|e| panic!("{e}"))
    }

    /// `path: message` lines, for assertion messages.
    pub(super) fn lines(errs: &[ModelError]) -> Vec<String> {
        errs.iter().map(|e| format!("{}: {}", e.path, e.message)).collect()
    }

    pub(super) fn s(x: &str) -> Scalar {
        Scalar::Str(x.into())
    }

    pub(super) fn field(key: &str, test: Test) -> Cond {
        Cond::Field { key: key.into(), test }
    }

    pub(super) const HEAD: &str = "name: t\nscores: { engagement: { min: 0, max: 100 }, fit: { min: -50, max: 50 } }\n";

    #[test]
    fn examples_load() {
        let b = example("b2b-saas.yaml");
        assert!(b.warnings.iter().all(|w| w.path.starts_with("handoff.webhooks")), "{:?}", b.warnings);
        assert_eq!(b.timezone, chrono_tz::Europe::Paris);
        assert_eq!(b.rules.len(), 22);
        let fv = b.rules.iter().find(|r| r.id == "frequent-visitor").unwrap();
        match &fv.kind {
            RuleKind::Behaviour(beh) => assert_eq!(beh.count.unwrap(), Count { at_least: 15, within: Span::from_secs(30 * 86_400) }),
            _ => panic!("behaviour rule expected"),
        }
        let open = b.rules.iter().find(|r| r.id == "email-open").unwrap();
        let RuleKind::Behaviour(beh) = &open.kind else { panic!() };
        assert_eq!(beh.cap, Some(Cap { points: 10, per: Span::from_secs(7 * 86_400) }));
        assert_eq!(b.stage_index("hmql"), Some(3));
        assert_eq!(b.decay[0].amount, DecayAmount::Points(10));
        assert_eq!(b.decay[0].floor, -100, "default floor is the group's min");
        let h = b.handoff.as_ref().unwrap();
        assert_eq!(h.stages, vec![2, 4]);
        assert_eq!(h.recycle_to, Some(1));
        assert_eq!(h.webhooks[0].url_source, "${CRM_WEBHOOK_URL}");
        assert_eq!(b.temperature.as_ref().unwrap().bands.last().unwrap().below, None);
        assert_eq!(b.quadrants, Some(Quadrants { fit: (1, 20), interest: (0, 50) }));
        assert_eq!(b.lists["competitors"], vec!["rival-automation.example", "othertool.example"]);
        assert_eq!(b.trackers.len(), 1, "one `did` tracker (purchase)");
        assert_eq!(b.trackers[0].keep_for, None);
        // A bare predicate is accepted as a trigger's `when`.
        let exit = b.campaigns[0].exit_when.as_ref().unwrap();
        assert!(exit.on.is_none() && matches!(exit.when, Some(Cond::Score { group: 0, .. })));

        let k = example("kitchen-shop.yaml");
        assert_eq!(k.trackers.len(), 1, "`did purchase` twice shares one tracker");
        assert_eq!(k.trackers[0].keep_count, 2);
        assert!(k.warnings.is_empty(), "{:?}", k.warnings);
        let enter = k.campaigns[0].enter.as_ref().unwrap();
        assert_eq!(enter.on.as_deref(), Some("purchase"));
        assert_eq!(enter.filter, Some(field("category", Test::Eq(s("saucepan")))));

        let t = example("saas-trial.yaml");
        assert_eq!(t.trackers.len(), 2, "purchase and feature_used");
        assert_eq!(t.decay[0].amount, DecayAmount::Percent(50.0));
        assert_eq!(t.decay[0].floor, 5);
        let onboarding = &t.campaigns[0];
        let advanced = onboarding.steps.iter().position(|s| s.id.as_deref() == Some("advanced")).unwrap();
        assert_eq!(advanced, 7);
        match &onboarding.steps[2].kind {
            StepKind::If { then, otherwise, cond } => {
                assert_eq!(then, &Jump::To(advanced));
                assert_eq!(otherwise, &Jump::Next);
                let Cond::Did { tracker, at_least: 3, within: None } = cond else { panic!("{cond:?}") };
                assert_eq!(t.trackers[*tracker].on, "feature_used");
            }
            _ => panic!("if step expected"),
        }
        assert!(matches!(onboarding.steps[10].kind, StepKind::WaitFor { timeout: Jump::Exit, .. }));
        assert!(matches!(onboarding.steps.last().unwrap().kind, StepKind::Goto(1)));
        let email = t.email.as_ref().unwrap();
        assert_eq!(email.frequency_cap, Some((2, Span::from_secs(3 * 86_400))));
        let at = |h, m| chrono::NaiveTime::from_hms_opt(h, m, 0).unwrap();
        assert_eq!(email.quiet_hours, Some((at(21, 0), at(8, 0))));
        // `upgrade` has no `enter` but is reached through `goto_campaign`: no warning about it.
        assert!(t.warnings.iter().all(|w| !w.path.starts_with("campaigns")), "{:?}", t.warnings);
    }

    #[test]
    fn five_mistakes_five_errors_in_file_order() {
        let yaml = r#"
name: broken
colour: blue
scores:
  engagement: { min: 0, max: 100 }
rules:
  - id: a
    on: page_view
    points: { engagemnt: 5 }
  - id: b
    on: email_open
    points: { engagement: 2 }
    cap: { points: 10, per: 3mo }
email: { from: "a@b.example" }
templates:
  hello: { subject: Hi, html: "<p>hi</p>" }
campaigns:
  - id: c
    enter: { on: page_view }
    steps:
      - send: helo
      - if: { engagement: { gte: 5 } }
        then: advancd
"#;
        let errs = Model::from_yaml_str(yaml, "broken.yaml").unwrap_err().0;
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["colour", "rules[0].points.engagemnt", "rules[1].cap.per", "campaigns[0].steps[0].send", "campaigns[0].steps[1].then"],
            "{:#?}",
            lines(&errs)
        );
        assert!(errs.iter().all(|e| e.file == "broken.yaml"));
        let msg = |i: usize| errs[i].message.as_str();
        assert!(msg(0).starts_with("unknown key `colour` (expected one of: name, timezone, scores,"), "{}", msg(0));
        assert_eq!(msg(1), "`engagemnt` is not a score group (known: engagement)");
        assert!(msg(2).starts_with("`3mo` is not a duration: "), "{}", msg(2));
        assert_eq!(msg(3), "unknown template `helo` (known: hello)");
        assert!(msg(4).starts_with("`then` jumps to unknown step id `advancd`"), "{}", msg(4));
        let shown = ModelErrors(errs.clone()).to_string();
        assert_eq!(shown.lines().count(), 5);
        assert!(shown.starts_with("broken.yaml: colour: unknown key `colour`"));
    }

    #[test]
    fn whole_file_problems() {
        let syntax = errors("name: [unclosed");
        assert_eq!(syntax.len(), 1);
        assert_eq!(syntax[0].path, "(syntax)");
        assert!(syntax[0].message.contains("line 2 column 1"), "{}", syntax[0].message);
        let dup = errors("name: a\nname: b\n");
        assert_eq!((dup.len(), dup[0].path.as_str()), (1, "(syntax)"));
        assert_eq!(lines(&errors("")), ["(root): the file is empty: a model needs at least `name` and `scores`"]);
        assert_eq!(lines(&errors("[1, 2]"))[0], "(root): a model file is a map of keys (name, scores, rules…), found a list");
        assert_eq!(lines(&errors("timezone: UTC")), ["name: is missing", "scores: is missing: declare at least one score group, e.g. `engagement: { min: 0, max: 100 }`"]);
    }

    #[test]
    fn yaml_is_read_as_yaml_1_2() {
        // YAML 1.1 would read `on`, `no`, `yes` and `off` as booleans: a key `on:` of a wait
        // step, or a value `no`, must stay the plain strings they are written as.
        let root: Value = serde_norway::from_str("on: form_submit\nno: yes\nlist: [off, y, n]\n").unwrap();
        let map = root.as_mapping().unwrap();
        assert_eq!(map.get("on").and_then(Value::as_str), Some("form_submit"));
        assert_eq!(map.get("no").and_then(Value::as_str), Some("yes"));
        let list: Vec<&str> = map.get("list").and_then(Value::as_sequence).unwrap().iter().filter_map(Value::as_str).collect();
        assert_eq!(list, ["off", "y", "n"]);
        // Syntax errors keep their line and column.
        let e = Model::from_yaml_str("name: m\nscores: [a\n", "bad.yaml").unwrap_err().to_string();
        assert!(e.contains("bad.yaml") && e.contains("line"), "{e}");
    }

    #[test]
    fn positions_follow_the_file() {
        let root: Value = serde_norway::from_str("b: 1\na:\n  - x: 1\n    p.q: { r: 2 }\n").unwrap();
        assert_eq!(position(&root, "a"), vec![1]);
        assert_eq!(position(&root, "a[0].p.q.r"), vec![1, 0, 1, 0]);
        assert_eq!(position(&root, "a[0].missing.deeper"), vec![1, 0]);
        assert_eq!(position(&root, "(root)"), Vec::<usize>::new());
    }
}
