//! The model loader: YAML → validated [`Model`], every mistake reported at once with the file,
//! the path inside it (`rules[3].cap.per`) and what is wrong.

use super::*;
use crate::cond::{Cond, Op, Scalar, Test};
use serde_norway::{Mapping, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a model file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: {path}: {message}")]
pub struct ModelError {
    /// File name.
    pub file: String,
    /// Path inside the file (`rules[3].cap.per`).
    pub path: String,
    /// What is wrong.
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

const QUADRANTS: &[&str] = &["engage_now", "nurture", "sales_check", "deprioritize"];

/// Path of errors about the file as a whole.
const ROOT: &str = "(root)";

/// The operators of a matcher map.
const OPERATORS: &[&str] =
    &["eq", "ne", "in", "not_in", "in_list", "contains", "contains_any", "starts_with", "gt", "gte", "lt", "lte", "exists"];

impl Model {
    /// Reads and validates a model file; template bodies given as file paths are read relative
    /// to the model's folder.
    pub fn load(path: &Path) -> Result<Model, ModelErrors> {
        Model::load_with(path, &|var| std::env::var(var).ok())
    }

    /// As [`Model::load`], with `${VAR}` references resolved by `vars` instead of the process
    /// environment (a function reads them from its secret).
    pub fn load_with(path: &Path, vars: &dyn Fn(&str) -> Option<String>) -> Result<Model, ModelErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ModelErrors(vec![ModelError { file: file.clone(), path: "(file)".into(), message: format!("cannot read: {e}") }])
        })?;
        Model::from_yaml_str_with(&text, &file, path.parent(), vars)
    }

    /// Validates YAML text; `file` names it in messages; `base_dir` resolves template paths;
    /// `${VAR}` references come from the process environment.
    pub fn from_yaml_str(text: &str, file: &str, base_dir: Option<&Path>) -> Result<Model, ModelErrors> {
        Model::from_yaml_str_with(text, file, base_dir, &|var| std::env::var(var).ok())
    }

    /// As [`Model::from_yaml_str`], with `${VAR}` references resolved by `vars`.
    pub fn from_yaml_str_with(
        text: &str,
        file: &str,
        base_dir: Option<&Path>,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Model, ModelErrors> {
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
        let mut cx = Ctx { file: file.into(), base: base_dir.map(Path::to_path_buf), vars: Some(vars), ..Ctx::default() };
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
    vars: Option<&'v dyn Fn(&str) -> Option<String>>,
    base: Option<PathBuf>,
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

    // --- the model ------------------------------------------------------------------------

    fn model(&mut self, root: &Value) -> Option<Model> {
        let top = [
            "name", "timezone", "scores", "lists", "rules", "decay", "temperature", "quadrants", "stages", "handoff", "email",
            "templates", "campaigns",
        ];
        let m = match root {
            Value::Mapping(_) => self.map(root, "", &top)?,
            Value::Null => {
                self.err(ROOT, "the file is empty: a model needs at least `name` and `scores`");
                return None;
            }
            other => {
                self.err(ROOT, format!("a model file is a map of keys (name, scores, rules…), found {}", kind_of(other)));
                return None;
            }
        };
        let get = |k: &str| m.get(Value::String(k.into()));
        // Names first, so every reference can be checked whatever the order in the file.
        let name = match get("name") {
            Some(v) => self.string(v, "name").unwrap_or_default(),
            None => {
                self.err("name", "is missing");
                String::new()
            }
        };
        let timezone = match get("timezone") {
            None => chrono_tz::UTC,
            Some(v) => {
                let s = self.string(v, "timezone").unwrap_or_default();
                match s.parse::<chrono_tz::Tz>() {
                    Ok(tz) => tz,
                    Err(_) => {
                        self.err("timezone", format!("`{s}` is not an IANA time zone (e.g. Europe/Paris)"));
                        chrono_tz::UTC
                    }
                }
            }
        };
        // Every declared group name counts as known, even one whose bounds are wrong, so that one
        // mistake in `scores` does not echo through every rule that uses the group.
        if let Some(Value::Mapping(sm)) = get("scores") {
            self.scores = sm.keys().map(key_str).collect();
        }
        let scores = self.scores(get("scores"));
        if let Some(Value::Mapping(lm)) = get("lists") {
            self.lists = lm.keys().map(key_str).collect();
        }
        let lists = self.lists(get("lists"));
        if let Some(Value::Sequence(st)) = get("stages") {
            self.stages = st.iter().filter_map(|s| s.get("id").and_then(scalar_text)).collect();
        }
        if let Some(Value::Mapping(t)) = get("templates") {
            self.templates = t.keys().map(key_str).collect();
        }
        if let Some(Value::Sequence(cs)) = get("campaigns") {
            self.campaigns = cs.iter().filter_map(|c| c.get("id").and_then(scalar_text)).collect();
        }
        let temperature = get("temperature").and_then(|v| self.temperature(v));
        let quadrants = get("quadrants").and_then(|v| self.quadrants(v));
        let rules = self.rules(get("rules"));
        let decay = self.decay(get("decay"), &scores);
        let stages = self.stages_list(get("stages"));
        let handoff = get("handoff").and_then(|v| self.handoff(v));
        let email = get("email").and_then(|v| self.email(v));
        let templates = self.templates_map(get("templates"));
        let campaigns = self.campaigns_list(get("campaigns"));
        if email.is_none() && campaigns.iter().any(|c| c.steps.iter().any(|s| matches!(s.kind, StepKind::Send(_)))) {
            self.err("email", "is missing: campaigns send email, so `email.from` is needed");
        }
        for c in &campaigns {
            let reached = campaigns.iter().any(|o| o.steps.iter().any(|s| matches!(&s.kind, StepKind::Goto(t) if self.campaigns.get(*t) == Some(&c.id))));
            if c.enter.is_none() && !reached {
                let i = self.campaigns.iter().position(|x| x == &c.id).unwrap_or(0);
                self.warn(&format!("campaigns[{i}]"), format!("campaign `{}` has no `enter` and no `goto_campaign` leads to it: no lead will ever enter it", c.id));
            }
        }
        if !self.errors.is_empty() {
            return None;
        }
        Some(Model {
            name,
            timezone,
            scores,
            lists,
            rules,
            decay,
            temperature,
            quadrants,
            stages,
            handoff,
            email,
            templates,
            campaigns,
            trackers: std::mem::take(&mut self.trackers),
            warnings: Vec::new(),
        })
    }

    fn scores(&mut self, v: Option<&Value>) -> Vec<ScoreGroup> {
        let Some(v) = v else {
            self.err("scores", "is missing: declare at least one score group, e.g. `engagement: { min: 0, max: 100 }`");
            return Vec::new();
        };
        let Value::Mapping(m) = v else {
            self.err("scores", format!("expected a map of score groups, found {}", kind_of(v)));
            return Vec::new();
        };
        if m.is_empty() {
            self.err("scores", "declare at least one score group");
        }
        let mut out = Vec::new();
        for (k, g) in m {
            let name = key_str(k);
            let p = join("scores", &name);
            let Some(gm) = self.map(g, &p, &["min", "max", "initial"]) else {
                out.push(ScoreGroup { name, min: i64::MIN, max: i64::MAX, initial: 0 });
                continue;
            };
            let field = |cx: &mut Ctx, key: &str| match gm.get(Value::String(key.into())) {
                Some(v) => cx.int(v, &join(&p, key)),
                None => None,
            };
            let min = field(self, "min");
            let max = field(self, "max");
            let initial = field(self, "initial").unwrap_or(0);
            if gm.get(Value::String("min".into())).is_none() {
                self.err(&join(&p, "min"), "is missing");
            }
            if gm.get(Value::String("max".into())).is_none() {
                self.err(&join(&p, "max"), "is missing");
            }
            if let (Some(min), Some(max)) = (min, max) {
                if min >= max {
                    self.err(&p, format!("`min` ({min}) must be below `max` ({max})"));
                } else if initial < min || initial > max {
                    self.err(&join(&p, "initial"), format!("{initial} is outside [{min}, {max}]"));
                }
            }
            // One entry per declared group, so indices match `self.scores`; a missing bound was
            // reported above (the model is not built) and is replaced by a placeholder that
            // triggers no further bound checks.
            out.push(ScoreGroup { name, min: min.unwrap_or(i64::MIN), max: max.unwrap_or(i64::MAX), initial });
        }
        out
    }

    fn lists(&mut self, v: Option<&Value>) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        let Some(v) = v else { return out };
        let Value::Mapping(m) = v else {
            self.err("lists", format!("expected a map of named lists, found {}", kind_of(v)));
            return out;
        };
        for (k, l) in m {
            let name = key_str(k);
            let p = join("lists", &name);
            let Value::Sequence(items) = l else {
                self.err(&p, format!("expected a list, found {}", kind_of(l)));
                continue;
            };
            let vals = items.iter().enumerate().filter_map(|(i, x)| self.string(x, &format!("{p}[{i}]")).map(|s| s.to_lowercase())).collect();
            out.insert(name, vals);
        }
        out
    }

    fn temperature(&mut self, v: &Value) -> Option<Temperature> {
        let m = self.map(v, "temperature", &["score", "bands"])?;
        let score = match m.get(Value::String("score".into())) {
            Some(s) => self.string(s, "temperature.score").and_then(|s| self.group(&s, "temperature.score")),
            None => {
                self.err("temperature.score", "is missing");
                None
            }
        };
        let bs = match m.get(Value::String("bands".into())) {
            Some(Value::Sequence(bs)) if !bs.is_empty() => bs,
            Some(Value::Sequence(_)) => {
                self.err("temperature.bands", "is empty: list `{label, below}` bands ending with `{label}`");
                return None;
            }
            Some(other) => {
                self.err("temperature.bands", format!("expected a list of `{{label, below}}` ending with `{{label}}`, found {}", kind_of(other)));
                return None;
            }
            None => {
                self.err("temperature.bands", "is missing (a list of `{label, below}` ending with `{label}`)");
                return None;
            }
        };
        let mut bands = Vec::new();
        let mut last_below: Option<i64> = None;
        for (i, b) in bs.iter().enumerate() {
            let p = format!("temperature.bands[{i}]");
            let Some(bm) = self.map(b, &p, &["label", "below"]) else { continue };
            let label = match bm.get(Value::String("label".into())) {
                Some(l) => self.string(l, &join(&p, "label")).unwrap_or_default(),
                None => {
                    self.err(&join(&p, "label"), "is missing");
                    String::new()
                }
            };
            if !label.is_empty() && self.bands.iter().any(|b| b.eq_ignore_ascii_case(&label)) {
                self.err(&join(&p, "label"), format!("`{label}` is used by another band"));
            }
            let below = bm.get(Value::String("below".into())).and_then(|x| self.int(x, &join(&p, "below")));
            let is_last = i + 1 == bs.len();
            if is_last && bm.contains_key(Value::String("below".into())) {
                self.err(&join(&p, "below"), "the last band takes every score above the others: remove `below`");
            }
            if !is_last && !bm.contains_key(Value::String("below".into())) {
                self.err(&join(&p, "below"), "is missing (only the last band has no `below`)");
            }
            if let (Some(prev), Some(b), false) = (last_below, below, is_last)
                && b <= prev
            {
                self.err(&join(&p, "below"), format!("{b} must be above the previous band's {prev}"));
            }
            if !is_last {
                last_below = below.or(last_below);
            }
            if !label.is_empty() {
                self.bands.push(label.clone());
            }
            bands.push(Band { label, below: if is_last { None } else { below } });
        }
        Some(Temperature { score: score?, bands })
    }

    fn quadrants(&mut self, v: &Value) -> Option<Quadrants> {
        let m = self.map(v, "quadrants", &["fit", "interest"])?;
        let axis = |cx: &mut Ctx, k: &str| -> Option<(usize, i64)> {
            let p = join("quadrants", k);
            let Some(a) = m.get(Value::String(k.into())) else {
                cx.err(&p, "is missing");
                return None;
            };
            let am = cx.map(a, &p, &["score", "at_least"])?;
            let s = am.get(Value::String("score".into())).and_then(|s| cx.string(s, &join(&p, "score")));
            let g = s.and_then(|s| cx.group(&s, &join(&p, "score")));
            let t = match am.get(Value::String("at_least".into())) {
                Some(x) => cx.int(x, &join(&p, "at_least")),
                None => {
                    cx.err(&join(&p, "at_least"), "is missing");
                    None
                }
            };
            Some((g?, t?))
        };
        let fit = axis(self, "fit");
        let interest = axis(self, "interest");
        Some(Quadrants { fit: fit?, interest: interest? })
    }

    fn rules(&mut self, v: Option<&Value>) -> Vec<Rule> {
        let mut out = Vec::new();
        let Some(v) = v else { return out };
        let Value::Sequence(items) = v else {
            self.err("rules", format!("expected a list of rules, found {}", kind_of(v)));
            return out;
        };
        let mut ids = BTreeSet::new();
        for (i, r) in items.iter().enumerate() {
            let p = format!("rules[{i}]");
            let Some(m) = self.map(r, &p, &["id", "on", "where", "when", "points", "once", "cap", "count", "tags"]) else { continue };
            let g = |k: &str| m.get(Value::String(k.into()));
            let id = g("id").and_then(|x| self.string(x, &join(&p, "id"))).unwrap_or_else(|| p.clone());
            if !ids.insert(id.clone()) {
                self.err(&join(&p, "id"), format!("`{id}` is used by another rule"));
            }
            let points = g("points").map(|x| self.points(x, &join(&p, "points"))).unwrap_or_default();
            let tags = g("tags").map(|x| self.string_list(x, &join(&p, "tags"))).unwrap_or_default();
            if g("points").is_none() && g("tags").is_none() {
                self.err(&p, "a rule needs `points` or `tags`");
            }
            let kind = match (g("on"), g("when")) {
                (Some(_), Some(_)) => {
                    self.err(&p, "has both `on` (behaviour) and `when` (profile): choose one");
                    continue;
                }
                (None, None) => {
                    self.err(&p, "needs `on: EVENT_TYPE` (behaviour rule) or `when: CONDITION` (profile rule)");
                    continue;
                }
                (Some(on), None) => {
                    let Some(on) = self.event_type(on, &join(&p, "on")) else { continue };
                    let filter = g("where").map(|w| self.matcher(w, &join(&p, "where")));
                    let once = g("once").and_then(|x| self.boolean(x, &join(&p, "once"))).unwrap_or(false);
                    let cap = g("cap").and_then(|c| self.cap(c, &join(&p, "cap")));
                    let count = g("count").and_then(|c| self.count(c, &join(&p, "count")));
                    RuleKind::Behaviour(Behaviour { on, filter, once, cap, count })
                }
                (None, Some(when)) => {
                    for k in ["where", "once", "cap", "count"] {
                        if g(k).is_some() {
                            self.err(&join(&p, k), format!("`{k}` belongs to behaviour rules (with `on`), not profile rules"));
                        }
                    }
                    RuleKind::Profile { when: self.predicate(when, &join(&p, "when")) }
                }
            };
            out.push(Rule { id, points, tags, kind });
        }
        out
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

    fn cap(&mut self, v: &Value, path: &str) -> Option<Cap> {
        let m = self.map(v, path, &["points", "per"])?;
        let points = match m.get(Value::String("points".into())) {
            Some(x) => self.int(x, &join(path, "points")),
            None => {
                self.err(&join(path, "points"), "is missing");
                None
            }
        };
        if points.is_some_and(|p| p <= 0) {
            self.err(&join(path, "points"), "must be above 0");
        }
        let per = match m.get(Value::String("per".into())) {
            Some(x) => self.span(x, &join(path, "per"), true),
            None => {
                self.err(&join(path, "per"), "is missing");
                None
            }
        };
        Some(Cap { points: points?, per: per? })
    }

    fn count(&mut self, v: &Value, path: &str) -> Option<Count> {
        let m = self.map(v, path, &["at_least", "within"])?;
        let at_least = match m.get(Value::String("at_least".into())) {
            Some(x) => self.positive_u32(x, &join(path, "at_least")),
            None => {
                self.err(&join(path, "at_least"), "is missing");
                None
            }
        };
        let within = match m.get(Value::String("within".into())) {
            Some(x) => self.span(x, &join(path, "within"), true),
            None => {
                self.err(&join(path, "within"), "is missing");
                None
            }
        };
        Some(Count { at_least: at_least?, within: within? })
    }

    fn decay(&mut self, v: Option<&Value>, scores: &[ScoreGroup]) -> Vec<Decay> {
        let mut out = Vec::new();
        let Some(v) = v else { return out };
        let Value::Sequence(items) = v else {
            self.err("decay", format!("expected a list, found {}", kind_of(v)));
            return out;
        };
        for (i, d) in items.iter().enumerate() {
            let p = format!("decay[{i}]");
            let Some(m) = self.map(d, &p, &["score", "after", "points", "percent", "repeat", "floor"]) else { continue };
            let g = |k: &str| m.get(Value::String(k.into()));
            let score = match g("score") {
                Some(s) => self.string(s, &join(&p, "score")).and_then(|s| self.group(&s, &join(&p, "score"))),
                None => {
                    self.err(&join(&p, "score"), "is missing");
                    None
                }
            };
            let after = match g("after") {
                Some(a) => self.span(a, &join(&p, "after"), true),
                None => {
                    self.err(&join(&p, "after"), "is missing");
                    None
                }
            };
            let amount = match (g("points"), g("percent")) {
                (Some(_), Some(_)) => {
                    self.err(&p, "give `points` or `percent`, not both");
                    None
                }
                (None, None) => {
                    self.err(&p, "needs `points` (e.g. -10) or `percent` (e.g. 50)");
                    None
                }
                // Written as a loss (`points: -10`) or a magnitude; stored as the magnitude.
                (Some(x), None) => match self.int(x, &join(&p, "points")) {
                    Some(0) => {
                        self.err(&join(&p, "points"), "a decay of 0 points does nothing");
                        None
                    }
                    n => n.map(|n| DecayAmount::Points(n.saturating_abs())),
                },
                (None, Some(x)) => match x.as_f64() {
                    Some(pc) if pc > 0.0 && pc <= 100.0 => Some(DecayAmount::Percent(pc)),
                    _ => {
                        self.err(&join(&p, "percent"), format!("expected a number above 0 and at most 100, found {}", describe(x)));
                        None
                    }
                },
            };
            let repeat = g("repeat").and_then(|x| self.boolean(x, &join(&p, "repeat"))).unwrap_or(false);
            let floor = g("floor").and_then(|x| self.int(x, &join(&p, "floor")));
            let group = score.and_then(|i| scores.get(i));
            if let (Some(f), Some(grp)) = (floor, group)
                && (f < grp.min || f > grp.max)
            {
                self.err(&join(&p, "floor"), format!("{f} is outside the bounds of `{}` [{}, {}]", grp.name, grp.min, grp.max));
            }
            if let (Some(score), Some(after), Some(amount), Some(grp)) = (score, after, amount, group) {
                out.push(Decay { score, after, amount, repeat, floor: floor.unwrap_or(grp.min) });
            }
        }
        out
    }

    fn stages_list(&mut self, v: Option<&Value>) -> Vec<Stage> {
        let mut out = Vec::new();
        let Some(v) = v else { return out };
        let Value::Sequence(items) = v else {
            self.err("stages", format!("expected a list, found {}", kind_of(v)));
            return out;
        };
        let mut seen = BTreeSet::new();
        for (i, s) in items.iter().enumerate() {
            let p = format!("stages[{i}]");
            let Some(m) = self.map(s, &p, &["id", "when", "manual"]) else { continue };
            let Some(id) = m.get(Value::String("id".into())).and_then(|x| self.string(x, &join(&p, "id"))) else {
                self.err(&join(&p, "id"), "is missing");
                continue;
            };
            if id == VISITOR {
                self.err(&join(&p, "id"), "`visitor` is built in (anonymous profiles); use another id");
            }
            if !seen.insert(id.clone()) {
                self.err(&join(&p, "id"), format!("`{id}` is used by another stage"));
            }
            let manual = m.get(Value::String("manual".into())).and_then(|x| self.boolean(x, &join(&p, "manual"))).unwrap_or(false);
            let when = m.get(Value::String("when".into()));
            let when = match (when, manual) {
                (Some(_), true) => {
                    self.err(&p, "a stage has `when` or `manual: true`, not both");
                    None
                }
                (None, false) => {
                    self.err(&p, "needs `when: CONDITION` or `manual: true`");
                    None
                }
                (Some(w), false) => Some(self.predicate(w, &join(&p, "when"))),
                (None, true) => None,
            };
            out.push(Stage { id, when });
        }
        out
    }

    /// Replaces every `${VAR}` with the environment's value. An unset (or empty) variable is a
    /// warning, not an error: the field is left `None` and deliveries are recorded, not sent.
    fn env(&mut self, raw: &str, path: &str) -> Option<String> {
        let mut out = String::new();
        let mut rest = raw.trim();
        let mut unset = Vec::new();
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                self.err(path, "`${` has no closing `}` (write `${VARIABLE_NAME}`)");
                return None;
            };
            let var = &after[..end];
            if var.is_empty() || !var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                self.err(path, format!("`${{{var}}}` is not an environment variable reference (letters, digits and `_` only)"));
                return None;
            }
            match self.vars.and_then(|f| f(var)) {
                Some(v) if !v.is_empty() => out.push_str(&v),
                _ => unset.push(var.to_string()),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        if unset.is_empty() {
            return Some(out);
        }
        let vars = unset.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", ");
        let verb = if unset.len() == 1 { "is" } else { "are" };
        self.warn(path, format!("environment variable {vars} {verb} not set: deliveries to this webhook are recorded, not sent"));
        None
    }

    fn handoff(&mut self, v: &Value) -> Option<Handoff> {
        let m = self.map(v, "handoff", &["stages", "sla", "recycle_to", "recycle_reset", "webhooks"])?;
        let g = |k: &str| m.get(Value::String(k.into()));
        let mut stages = Vec::new();
        if let Some(s) = g("stages") {
            for (i, name) in self.string_list(s, "handoff.stages").iter().enumerate() {
                if let Some(j) = self.stage_ref(name, &format!("handoff.stages[{i}]")) {
                    stages.push(j);
                }
            }
        } else {
            self.err("handoff.stages", "is missing (the stages that hand a lead to sales, e.g. [mql, sql])");
        }
        let sla = g("sla").and_then(|x| self.span(x, "handoff.sla", true));
        let recycle_to = g("recycle_to").and_then(|x| self.string(x, "handoff.recycle_to")).and_then(|s| self.stage_ref(&s, "handoff.recycle_to"));
        let mut recycle_reset = Vec::new();
        if let Some(r) = g("recycle_reset") {
            for (i, name) in self.string_list(r, "handoff.recycle_reset").iter().enumerate() {
                if let Some(gi) = self.group(name, &format!("handoff.recycle_reset[{i}]")) {
                    recycle_reset.push(gi);
                }
            }
        }
        let mut webhooks = Vec::new();
        if let Some(w) = g("webhooks") {
            let Value::Sequence(items) = w else {
                self.err("handoff.webhooks", "expected a list of `{name, url, secret}`");
                return None;
            };
            for (i, h) in items.iter().enumerate() {
                let p = format!("handoff.webhooks[{i}]");
                let Some(hm) = self.map(h, &p, &["name", "url", "secret"]) else { continue };
                let name = hm.get(Value::String("name".into())).and_then(|x| self.string(x, &join(&p, "name"))).unwrap_or_else(|| format!("webhook{i}"));
                let url_source = match hm.get(Value::String("url".into())) {
                    Some(x) => self.string(x, &join(&p, "url")).unwrap_or_default(),
                    None => {
                        self.err(&join(&p, "url"), "is missing");
                        String::new()
                    }
                };
                let url = self.env(&url_source, &join(&p, "url"));
                if let Some(u) = &url
                    && !(u.starts_with("https://") || u.starts_with("http://"))
                {
                    self.err(&join(&p, "url"), "must be an http:// or https:// URL");
                }
                let secret = match hm.get(Value::String("secret".into())) {
                    Some(x) => self.string(x, &join(&p, "secret")).and_then(|s| self.env(&s, &join(&p, "secret"))),
                    None => None,
                };
                if let Some(s) = &secret
                    && !valid_whsec(s)
                {
                    self.err(&join(&p, "secret"), "must be a Standard Webhooks secret: `whsec_` followed by base64 (the value is not shown)");
                }
                webhooks.push(Webhook { name, url, secret, url_source });
            }
        }
        Some(Handoff { stages, sla, recycle_to, recycle_reset, webhooks })
    }

    fn email(&mut self, v: &Value) -> Option<EmailSettings> {
        let m = self.map(v, "email", &["from", "reply_to", "configuration_set", "frequency_cap", "quiet_hours"])?;
        let g = |k: &str| m.get(Value::String(k.into()));
        let from = match g("from") {
            Some(x) => self.string(x, "email.from").unwrap_or_default(),
            None => {
                self.err("email.from", "is missing");
                String::new()
            }
        };
        if !from.is_empty() && !from.contains('@') {
            self.err("email.from", format!("`{from}` has no email address"));
        }
        let reply_to = g("reply_to").and_then(|x| self.string(x, "email.reply_to"));
        let configuration_set = g("configuration_set").and_then(|x| self.string(x, "email.configuration_set"));
        let frequency_cap = g("frequency_cap").and_then(|f| {
            let fm = self.map(f, "email.frequency_cap", &["max", "per"])?;
            let max = fm.get(Value::String("max".into())).and_then(|x| self.positive_u32(x, "email.frequency_cap.max"));
            let per = fm.get(Value::String("per".into())).and_then(|x| self.span(x, "email.frequency_cap.per", true));
            if fm.get(Value::String("max".into())).is_none() {
                self.err("email.frequency_cap.max", "is missing");
            }
            if fm.get(Value::String("per".into())).is_none() {
                self.err("email.frequency_cap.per", "is missing");
            }
            Some((max?, per?))
        });
        let quiet_hours = g("quiet_hours").and_then(|q| {
            let qm = self.map(q, "email.quiet_hours", &["start", "end"])?;
            let t = |cx: &mut Ctx, k: &str| {
                let p = join("email.quiet_hours", k);
                let Some(x) = qm.get(Value::String(k.into())) else {
                    cx.err(&p, "is missing (HH:MM)");
                    return None;
                };
                let s = match x {
                    Value::Number(n) => {
                        // YAML 1.1 readers turn 21:00 into a sexagesimal number; accept it.
                        let mins = n.as_i64().unwrap_or(-1);
                        format!("{:02}:{:02}", mins / 60, mins % 60)
                    }
                    other => cx.string(other, &p)?,
                };
                match chrono::NaiveTime::parse_from_str(&s, "%H:%M") {
                    Ok(t) => Some(t),
                    Err(_) => {
                        cx.err(&p, format!("`{s}` is not a time of day (HH:MM)"));
                        None
                    }
                }
            };
            let s = t(self, "start");
            let e = t(self, "end");
            Some((s?, e?))
        });
        Some(EmailSettings { from, reply_to, configuration_set, frequency_cap, quiet_hours })
    }

    fn body(&mut self, raw: String, path: &str) -> String {
        let looks_like_file = !raw.contains('<')
            && !raw.contains("{{")
            && !raw.contains('\n')
            && [".html", ".hbs", ".txt", ".md", ".htm"].iter().any(|x| raw.trim().ends_with(x));
        if !looks_like_file {
            return raw;
        }
        let file = match &self.base {
            Some(b) => b.join(raw.trim()),
            None => PathBuf::from(raw.trim()),
        };
        match std::fs::read_to_string(&file) {
            Ok(s) => s,
            Err(e) => {
                self.err(path, format!("template file {} cannot be read: {e}", file.display()));
                String::new()
            }
        }
    }

    fn templates_map(&mut self, v: Option<&Value>) -> BTreeMap<String, Template> {
        let mut out = BTreeMap::new();
        let Some(v) = v else { return out };
        let Value::Mapping(m) = v else {
            self.err("templates", format!("expected a map of templates, found {}", kind_of(v)));
            return out;
        };
        for (k, t) in m {
            let id = key_str(k);
            let p = join("templates", &id);
            let Some(tm) = self.map(t, &p, &["subject", "html", "text"]) else { continue };
            let subject = match tm.get(Value::String("subject".into())) {
                Some(x) => self.string(x, &join(&p, "subject")).unwrap_or_default(),
                None => {
                    self.err(&join(&p, "subject"), "is missing");
                    String::new()
                }
            };
            let html = match tm.get(Value::String("html".into())) {
                Some(x) => {
                    let raw = self.string(x, &join(&p, "html")).unwrap_or_default();
                    self.body(raw, &join(&p, "html"))
                }
                None => {
                    self.err(&join(&p, "html"), "is missing");
                    String::new()
                }
            };
            let text = tm.get(Value::String("text".into())).and_then(|x| self.string(x, &join(&p, "text"))).map(|raw| self.body(raw, &join(&p, "text")));
            out.insert(id, Template { subject, html, text });
        }
        out
    }

    /// `{on?, where?, when?}`, or a bare lead predicate (`exit_when: { engagement: { lt: 0 } }`).
    fn trigger(&mut self, v: &Value, path: &str) -> Option<Trigger> {
        if let Value::Mapping(m) = v {
            let is_trigger_key = |k: &Value| ["on", "where", "when"].contains(&key_str(k).as_str());
            if !m.is_empty() && !m.keys().any(is_trigger_key) {
                return Some(Trigger { on: None, filter: None, when: Some(self.predicate(v, path)) });
            }
        }
        let m = self.map(v, path, &["on", "where", "when"])?;
        let on = m.get(Value::String("on".into())).and_then(|x| self.event_type(x, &join(path, "on")));
        let filter = m.get(Value::String("where".into())).map(|w| self.matcher(w, &join(path, "where")));
        let when = m.get(Value::String("when".into())).map(|w| self.predicate(w, &join(path, "when")));
        if m.get(Value::String("on".into())).is_none() && when.is_none() {
            self.err(path, "needs `on: EVENT_TYPE`, `when: CONDITION`, or both");
        }
        if filter.is_some() && m.get(Value::String("on".into())).is_none() {
            self.err(&join(path, "where"), "`where` filters the event of `on`: add `on`");
        }
        Some(Trigger { on, filter, when })
    }

    fn campaigns_list(&mut self, v: Option<&Value>) -> Vec<Campaign> {
        let mut out = Vec::new();
        let Some(v) = v else { return out };
        let Value::Sequence(items) = v else {
            self.err("campaigns", format!("expected a list, found {}", kind_of(v)));
            return out;
        };
        let mut ids = BTreeSet::new();
        for (i, c) in items.iter().enumerate() {
            let p = format!("campaigns[{i}]");
            let Some(m) = self.map(c, &p, &["id", "enter", "reenter", "exit_when", "goal", "exit_points", "steps"]) else { continue };
            let g = |k: &str| m.get(Value::String(k.into()));
            let Some(id) = g("id").and_then(|x| self.string(x, &join(&p, "id"))) else {
                self.err(&join(&p, "id"), "is missing");
                continue;
            };
            if !ids.insert(id.clone()) {
                self.err(&join(&p, "id"), format!("`{id}` is used by another campaign"));
            }
            let enter = g("enter").and_then(|x| self.trigger(x, &join(&p, "enter")));
            let reenter = g("reenter").and_then(|x| self.boolean(x, &join(&p, "reenter"))).unwrap_or(false);
            let exit_when = g("exit_when").and_then(|x| self.trigger(x, &join(&p, "exit_when")));
            let goal = g("goal").and_then(|x| self.trigger(x, &join(&p, "goal")));
            let exit_points = g("exit_points").map(|x| self.points(x, &join(&p, "exit_points"))).unwrap_or_default();
            let steps = match g("steps") {
                Some(s) => self.steps(s, &join(&p, "steps")),
                None => {
                    self.err(&join(&p, "steps"), "is missing");
                    Vec::new()
                }
            };
            out.push(Campaign { id, enter, reenter, exit_when, goal, exit_points, steps });
        }
        out
    }

    fn steps(&mut self, v: &Value, path: &str) -> Vec<Step> {
        let Value::Sequence(items) = v else {
            self.err(path, format!("expected a list of steps, found {}", kind_of(v)));
            return Vec::new();
        };
        if items.is_empty() {
            self.err(path, "a campaign needs at least one step");
        }
        // Step ids first, so jumps can point forward.
        let mut ids: BTreeMap<String, usize> = BTreeMap::new();
        for (i, s) in items.iter().enumerate() {
            if let Some(id) = s.get("id").and_then(scalar_text)
                && ids.insert(id.clone(), i).is_some()
            {
                self.err(&format!("{path}[{i}].id"), format!("`{id}` is used by another step of this campaign"));
            }
        }
        let kinds = ["send", "wait", "wait_for", "if", "points", "goto_campaign", "exit"];
        let mut out = Vec::new();
        for (i, s) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let allowed = ["id", "send", "wait", "wait_for", "timeout", "if", "then", "else", "points", "goto_campaign", "exit"];
            let Some(m) = self.map(s, &p, &allowed) else { continue };
            let g = |k: &str| m.get(Value::String(k.into()));
            let present: Vec<&str> = kinds.iter().copied().filter(|k| g(k).is_some()).collect();
            if present.len() != 1 {
                if present.is_empty() {
                    self.err(&p, format!("a step needs one of: {}", kinds.join(", ")));
                } else {
                    self.err(&p, format!("one kind per step; this one has {}", present.join(" and ")));
                }
                continue;
            }
            let id = g("id").and_then(|x| self.string(x, &join(&p, "id")));
            let jump = |cx: &mut Ctx, key: &str, default: Jump| -> Jump {
                let Some(x) = g(key) else { return default };
                let Some(t) = cx.string(x, &join(&p, key)) else { return default };
                match t.as_str() {
                    "next" => Jump::Next,
                    "exit" => Jump::Exit,
                    other => match ids.get(other) {
                        Some(j) => Jump::To(*j),
                        None => {
                            let known: Vec<&str> = ids.keys().map(String::as_str).collect();
                            let known = if known.is_empty() { "none has an `id`".to_string() } else { known.join(", ") };
                            cx.err(&join(&p, key), format!("`{key}` jumps to unknown step id `{other}` (use next, exit or a step id of this campaign: {known})"));
                            default
                        }
                    },
                }
            };
            for k in ["timeout"] {
                if g(k).is_some() && present[0] != "wait_for" {
                    self.err(&join(&p, k), "`timeout` goes with `wait_for`");
                }
            }
            for k in ["then", "else"] {
                if g(k).is_some() && present[0] != "if" {
                    self.err(&join(&p, k), format!("`{k}` goes with `if`"));
                }
            }
            let kind = match present[0] {
                "send" => {
                    let Some(t) = g("send").and_then(|x| self.string(x, &join(&p, "send"))) else { continue };
                    if !self.templates.contains(&t) {
                        let names: Vec<&str> = self.templates.iter().map(String::as_str).collect();
                        self.err(&join(&p, "send"), format!("unknown template `{t}` (known: {})", known(&names)));
                    }
                    StepKind::Send(t)
                }
                "wait" => match g("wait").and_then(|x| self.span(x, &join(&p, "wait"), true)) {
                    Some(d) => StepKind::Wait(d),
                    None => continue,
                },
                "wait_for" => {
                    let wp = join(&p, "wait_for");
                    let Some(wm) = g("wait_for").and_then(|x| self.map(x, &wp, &["on", "where", "within"])) else { continue };
                    let on = match wm.get(Value::String("on".into())) {
                        Some(x) => self.event_type(x, &join(&wp, "on")),
                        None => {
                            self.err(&join(&wp, "on"), "is missing");
                            None
                        }
                    };
                    let filter = wm.get(Value::String("where".into())).map(|w| self.matcher(w, &join(&wp, "where")));
                    let within = match wm.get(Value::String("within".into())) {
                        Some(x) => self.span(x, &join(&wp, "within"), true),
                        None => {
                            self.err(&join(&wp, "within"), "is missing");
                            None
                        }
                    };
                    let timeout = jump(self, "timeout", Jump::Exit);
                    match (on, within) {
                        (Some(on), Some(within)) => StepKind::WaitFor { on, filter, within, timeout },
                        _ => continue,
                    }
                }
                "if" => {
                    let cond = g("if").map(|x| self.predicate(x, &join(&p, "if"))).unwrap_or(Cond::All(vec![]));
                    let then = jump(self, "then", Jump::Next);
                    let otherwise = jump(self, "else", Jump::Next);
                    StepKind::If { cond, then, otherwise }
                }
                "points" => StepKind::Points(g("points").map(|x| self.points(x, &join(&p, "points"))).unwrap_or_default()),
                "goto_campaign" => {
                    let Some(t) = g("goto_campaign").and_then(|x| self.string(x, &join(&p, "goto_campaign"))) else { continue };
                    match self.campaigns.iter().position(|c| c == &t) {
                        Some(ci) => StepKind::Goto(ci),
                        None => {
                            self.err(&join(&p, "goto_campaign"), format!("unknown campaign `{t}` (known: {})", known(&self.campaigns)));
                            continue;
                        }
                    }
                }
                _ => {
                    match g("exit") {
                        Some(Value::Bool(true)) => {}
                        Some(other) => self.err(&join(&p, "exit"), format!("write `exit: true`, found {}", describe(other))),
                        None => {}
                    }
                    StepKind::Exit
                }
            };
            out.push(Step { id, kind });
        }
        out
    }

    // --- conditions -----------------------------------------------------------------------

    /// An event matcher (`where:`).
    fn matcher(&mut self, v: &Value, path: &str) -> Cond {
        self.cond(v, path, false)
    }

    /// A lead predicate.
    fn predicate(&mut self, v: &Value, path: &str) -> Cond {
        self.cond(v, path, true)
    }

    fn cond(&mut self, v: &Value, path: &str, lead: bool) -> Cond {
        let Value::Mapping(m) = v else {
            self.err(path, format!("expected a map of conditions, found {}", kind_of(v)));
            return Cond::All(vec![]);
        };
        let mut parts = Vec::new();
        for (k, val) in m {
            let key = key_str(k);
            let p = join(path, &key);
            let c = match key.as_str() {
                "any" => {
                    let Value::Sequence(items) = val else {
                        self.err(&p, "`any` takes a list of conditions");
                        continue;
                    };
                    Cond::Any(items.iter().enumerate().map(|(i, x)| self.cond(x, &format!("{p}[{i}]"), lead)).collect())
                }
                "not" => Cond::Not(Box::new(self.cond(val, &p, lead))),
                "identified" if lead => Cond::Identified(self.boolean(val, &p).unwrap_or(true)),
                "subscribed" if lead => Cond::Subscribed(self.boolean(val, &p).unwrap_or(true)),
                "stage" if lead => {
                    let t = self.test(val, &p);
                    self.check_names(&t, &p, "stage");
                    Cond::Stage(t)
                }
                "stage_at_least" if lead => match self.string(val, &p).and_then(|s| self.stage_ref(&s, &p)) {
                    Some(i) => Cond::StageAtLeast(i),
                    None => continue,
                },
                "tagged" if lead => Cond::Tagged(self.test(val, &p)),
                "email_domain" if lead => Cond::EmailDomain(self.test(val, &p)),
                "quadrant" if lead => {
                    let t = self.test(val, &p);
                    self.check_names(&t, &p, "quadrant");
                    Cond::Quadrant(t)
                }
                "temperature" if lead => {
                    let t = self.test(val, &p);
                    self.check_names(&t, &p, "temperature");
                    Cond::Temperature(t)
                }
                "did" if lead => match self.did(val, &p) {
                    Some(c) => c,
                    None => continue,
                },
                g if lead && self.scores.iter().any(|s| s == g) => {
                    let group = self.scores.iter().position(|s| s == g).unwrap_or(0);
                    let t = self.test(val, &p);
                    if !numeric(&t) {
                        self.err(&p, format!("a score is compared with numbers (e.g. `{{ gte: 50 }}`), found {}", describe(val)));
                    }
                    Cond::Score { group, test: t }
                }
                _ => Cond::Field { key, test: self.test(val, &p) },
            };
            parts.push(c);
        }
        if parts.len() == 1 { parts.pop().unwrap_or(Cond::All(vec![])) } else { Cond::All(parts) }
    }

    fn did(&mut self, v: &Value, path: &str) -> Option<Cond> {
        let m = self.map(v, path, &["on", "where", "at_least", "within"])?;
        let on = match m.get(Value::String("on".into())) {
            Some(x) => self.event_type(x, &join(path, "on")),
            None => {
                self.err(&join(path, "on"), "is missing");
                None
            }
        };
        let filter_src = m.get(Value::String("where".into()));
        let filter = filter_src.map(|w| self.matcher(w, &join(path, "where")));
        let at_least = match m.get(Value::String("at_least".into())) {
            Some(x) => self.positive_u32(x, &join(path, "at_least")).unwrap_or(1),
            None => 1,
        };
        let within = m.get(Value::String("within".into())).and_then(|x| self.span(x, &join(path, "within"), true));
        let on = on?;
        let key = format!("{on}|{}", filter_src.map(canonical).unwrap_or_default());
        let idx = match self.trackers.iter().position(|t| t.key == key) {
            Some(i) => {
                let t = &mut self.trackers[i];
                t.keep_count = t.keep_count.max(at_least);
                t.keep_for = match (t.keep_for, within) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
                i
            }
            None => {
                self.trackers.push(Tracker { key, on, filter, keep_for: within, keep_count: at_least });
                self.trackers.len() - 1
            }
        };
        Some(Cond::Did { tracker: idx, at_least, within })
    }

    fn scalar(&mut self, v: &Value, path: &str) -> Option<Scalar> {
        match v {
            Value::String(s) => Some(Scalar::Str(s.to_lowercase())),
            Value::Number(n) => n.as_f64().map(Scalar::Num),
            Value::Bool(b) => Some(Scalar::Bool(*b)),
            Value::Null => Some(Scalar::Null),
            other => {
                self.err(path, format!("expected a single value, found {}", kind_of(other)));
                None
            }
        }
    }

    fn scalar_test(&mut self, v: &Value, path: &str) -> Option<Test> {
        match v {
            Value::String(s) if s.contains('*') => Some(Test::Glob(s.to_lowercase())),
            other => self.scalar(other, path).map(Test::Eq),
        }
    }

    /// A list of scalars; a lone scalar counts as a one-element list.
    fn scalars(&mut self, v: &Value, path: &str) -> Vec<Scalar> {
        match v {
            Value::Sequence(items) if items.is_empty() => {
                self.err(path, "expected at least one value");
                Vec::new()
            }
            Value::Sequence(items) => items.iter().enumerate().filter_map(|(i, x)| self.scalar(x, &format!("{path}[{i}]"))).collect(),
            other => self.scalar(other, path).into_iter().collect(),
        }
    }

    fn number(&mut self, v: &Value, path: &str) -> Option<f64> {
        match v.as_f64() {
            Some(n) => Some(n),
            None => {
                self.err(path, format!("expected a number, found {}", describe(v)));
                None
            }
        }
    }

    fn test(&mut self, v: &Value, path: &str) -> Test {
        match v {
            Value::Sequence(items) => {
                if items.is_empty() {
                    self.err(path, "an empty list matches nothing: list the accepted values");
                }
                Test::AnyOf(items.iter().enumerate().filter_map(|(i, x)| self.scalar_test(x, &format!("{path}[{i}]"))).collect())
            }
            Value::Mapping(m) => {
                if m.is_empty() {
                    self.err(path, format!("an empty operator map tests nothing (operators: {})", OPERATORS.join(", ")));
                }
                let mut out = Vec::new();
                for (k, x) in m {
                    let op = key_str(k);
                    let p = join(path, &op);
                    let parsed = match op.as_str() {
                        "eq" => self.scalar(x, &p).map(Op::Eq),
                        "ne" => self.scalar(x, &p).map(Op::Ne),
                        "in" => Some(Op::In(self.scalars(x, &p))),
                        "not_in" => Some(Op::NotIn(self.scalars(x, &p))),
                        "in_list" => self.string(x, &p).and_then(|name| {
                            if self.lists.contains(&name) {
                                Some(Op::InList(name))
                            } else {
                                let known: Vec<&str> = self.lists.iter().map(String::as_str).collect();
                                let known = if known.is_empty() { "none; declare it under `lists`".to_string() } else { known.join(", ") };
                                self.err(&p, format!("unknown list `{name}` (known: {known})"));
                                None
                            }
                        }),
                        "contains" => self.scalar(x, &p).map(Op::Contains),
                        "contains_any" => Some(Op::ContainsAny(self.scalars(x, &p))),
                        "starts_with" => self.string(x, &p).map(|s| Op::StartsWith(s.to_lowercase())),
                        "gt" => self.number(x, &p).map(Op::Gt),
                        "gte" => self.number(x, &p).map(Op::Gte),
                        "lt" => self.number(x, &p).map(Op::Lt),
                        "lte" => self.number(x, &p).map(Op::Lte),
                        "exists" => self.boolean(x, &p).map(Op::Exists),
                        other => {
                            self.err(&p, format!("unknown operator `{other}` (expected one of: {})", OPERATORS.join(", ")));
                            None
                        }
                    };
                    out.extend(parsed);
                }
                Test::Ops(out)
            }
            other => self.scalar_test(other, path).unwrap_or(Test::Ops(vec![])),
        }
    }

    /// Checks that stage / quadrant / temperature names in a test exist.
    fn check_names(&mut self, t: &Test, path: &str, what: &str) {
        let mut names = Vec::new();
        collect_strings(t, &mut names);
        for n in names {
            let ok = match what {
                "stage" => n == VISITOR || self.stages.iter().any(|s| s.to_lowercase() == n),
                "quadrant" => QUADRANTS.contains(&n.as_str()),
                _ => self.bands.iter().any(|b| b.to_lowercase() == n),
            };
            if !ok {
                let known = match what {
                    "stage" => self.known_stages(),
                    "quadrant" => QUADRANTS.join(", "),
                    _ if self.bands.is_empty() => "none: the model has no `temperature` bands".to_string(),
                    _ => self.bands.join(", "),
                };
                self.err(path, format!("`{n}` is not a {what} (known: {known})"));
            }
        }
    }
}

fn collect_strings(t: &Test, out: &mut Vec<String>) {
    let mut push = |s: &Scalar| {
        if let Scalar::Str(x) = s {
            out.push(x.clone());
        }
    };
    match t {
        Test::Eq(s) => push(s),
        Test::Glob(_) => {}
        Test::AnyOf(items) => items.iter().for_each(|i| collect_strings(i, out)),
        Test::Ops(ops) => {
            for op in ops {
                match op {
                    Op::Eq(s) | Op::Ne(s) => push(s),
                    Op::In(v) | Op::NotIn(v) => v.iter().for_each(&mut push),
                    _ => {}
                }
            }
        }
    }
}

fn numeric(t: &Test) -> bool {
    match t {
        Test::Eq(Scalar::Num(_)) => true,
        Test::AnyOf(items) => items.iter().all(numeric),
        Test::Ops(ops) => ops.iter().all(|o| match o {
            Op::Gt(_) | Op::Gte(_) | Op::Lt(_) | Op::Lte(_) | Op::Exists(_) => true,
            Op::Eq(s) | Op::Ne(s) => matches!(s, Scalar::Num(_)),
            Op::In(v) | Op::NotIn(v) => v.iter().all(|s| matches!(s, Scalar::Num(_))),
            _ => false,
        }),
        _ => false,
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

/// A canonical text of a YAML value (sorted keys), for tracker keys.
fn canonical(v: &Value) -> String {
    match v {
        Value::Mapping(m) => {
            let mut items: Vec<(String, String)> = m.iter().map(|(k, x)| (key_str(k), canonical(x))).collect();
            items.sort();
            format!("{{{}}}", items.into_iter().map(|(k, x)| format!("{k}:{x}")).collect::<Vec<_>>().join(","))
        }
        Value::Sequence(s) => format!("[{}]", s.iter().map(canonical).collect::<Vec<_>>().join(",")),
        Value::String(s) => format!("{s:?}").to_lowercase(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        Value::Tagged(t) => canonical(&t.value),
    }
}

/// `whsec_` followed by non-empty, padded, standard-alphabet base64.
fn valid_whsec(s: &str) -> bool {
    let Some(b64) = s.strip_prefix("whsec_") else { return false };
    let body = b64.trim_end_matches('=');
    let padding = b64.len() - body.len();
    !body.is_empty()
        && b64.len() % 4 == 0
        && padding <= 2
        && body.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> Model {
        let p = format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"));
        Model::load(Path::new(&p)).unwrap_or_else(|e| panic!("{name}:\n{e}"))
    }

    fn errors(yaml: &str) -> Vec<ModelError> {
        match Model::from_yaml_str(yaml, "t.yaml", None) {
            Ok(_) => panic!("expected errors"),
            Err(e) => e.0,
        }
    }

    fn ok(yaml: &str) -> Model {
        Model::from_yaml_str(yaml, "t.yaml", None).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `path: message` lines, for assertion messages.
    fn lines(errs: &[ModelError]) -> Vec<String> {
        errs.iter().map(|e| format!("{}: {}", e.path, e.message)).collect()
    }

    fn s(x: &str) -> Scalar {
        Scalar::Str(x.into())
    }

    fn field(key: &str, test: Test) -> Cond {
        Cond::Field { key: key.into(), test }
    }

    const HEAD: &str = "name: t\nscores: { engagement: { min: 0, max: 100 }, fit: { min: -50, max: 50 } }\n";

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
        let errs = Model::from_yaml_str(yaml, "broken.yaml", None).unwrap_err().0;
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
    fn special_keys_parse_to_lead_conditions() {
        let yaml = format!(
            r#"{HEAD}
temperature: {{ score: engagement, bands: [{{ label: cold, below: 10 }}, {{ label: hot }}] }}
stages:
  - {{ id: lead, when: {{ identified: true }} }}
  - {{ id: mql, when: {{ stage_at_least: lead }} }}
  - {{ id: sql, manual: true }}
rules:
  - {{ when: {{ identified: false }}, points: {{ fit: 1 }} }}
  - {{ when: {{ subscribed: true }}, points: {{ fit: 1 }} }}
  - {{ when: {{ engagement: {{ gte: 50, lt: 80 }} }}, points: {{ fit: 1 }} }}
  - {{ when: {{ fit: 10 }}, points: {{ fit: 1 }} }}
  - {{ when: {{ stage: [Lead, sql] }}, points: {{ fit: 1 }} }}
  - {{ when: {{ stage_at_least: sql }}, points: {{ fit: 1 }} }}
  - {{ when: {{ stage_at_least: visitor }}, points: {{ fit: 1 }} }}
  - {{ when: {{ tagged: "vip*" }}, points: {{ fit: 1 }} }}
  - {{ when: {{ email_domain: Acme.Example }}, points: {{ fit: 1 }} }}
  - {{ when: {{ quadrant: {{ ne: deprioritize }} }}, points: {{ fit: 1 }} }}
  - {{ when: {{ temperature: hot }}, points: {{ fit: 1 }} }}
  - {{ when: {{ did: {{ on: purchase, where: {{ sku: A1 }}, at_least: 2, within: 30d }} }}, points: {{ fit: 1 }} }}
  - {{ when: {{ did: {{ on: purchase, where: {{ sku: a1 }}, within: 7d }} }}, points: {{ fit: 1 }} }}
  - {{ when: {{ did: {{ on: purchase }} }}, points: {{ fit: 1 }} }}
  - {{ when: {{ any: [{{ identified: true }}, {{ not: {{ job_title: intern }} }}] }}, points: {{ fit: 1 }} }}
  - {{ when: {{ identified: true, country: FR }}, points: {{ fit: 1 }} }}
"#
        );
        let m = ok(&yaml);
        let when: Vec<&Cond> = m
            .rules
            .iter()
            .map(|r| match &r.kind {
                RuleKind::Profile { when } => when,
                RuleKind::Behaviour(_) => panic!("profile rule expected"),
            })
            .collect();
        assert_eq!(m.rules[0].id, "rules[0]");
        assert_eq!(when[0], &Cond::Identified(false));
        assert_eq!(when[1], &Cond::Subscribed(true));
        assert_eq!(when[2], &Cond::Score { group: 0, test: Test::Ops(vec![Op::Gte(50.0), Op::Lt(80.0)]) });
        assert_eq!(when[3], &Cond::Score { group: 1, test: Test::Eq(Scalar::Num(10.0)) });
        assert_eq!(when[4], &Cond::Stage(Test::AnyOf(vec![Test::Eq(s("lead")), Test::Eq(s("sql"))])));
        assert_eq!(when[5], &Cond::StageAtLeast(3));
        assert_eq!(when[6], &Cond::StageAtLeast(0));
        assert_eq!(when[7], &Cond::Tagged(Test::Glob("vip*".into())));
        assert_eq!(when[8], &Cond::EmailDomain(Test::Eq(s("acme.example"))));
        assert_eq!(when[9], &Cond::Quadrant(Test::Ops(vec![Op::Ne(s("deprioritize"))])));
        assert_eq!(when[10], &Cond::Temperature(Test::Eq(s("hot"))));
        let month = Span::from_secs(30 * 86_400);
        assert_eq!(when[11], &Cond::Did { tracker: 0, at_least: 2, within: Some(month) });
        // Same event and filter (matching ignores case): same tracker.
        assert_eq!(when[12], &Cond::Did { tracker: 0, at_least: 1, within: Some(Span::from_secs(7 * 86_400)) });
        assert_eq!(when[13], &Cond::Did { tracker: 1, at_least: 1, within: None });
        assert_eq!(m.trackers.len(), 2);
        assert_eq!((m.trackers[0].keep_for, m.trackers[0].keep_count), (Some(month), 2));
        assert_eq!(m.trackers[0].filter, Some(field("sku", Test::Eq(s("a1")))));
        assert_eq!((m.trackers[1].keep_for, m.trackers[1].keep_count), (None, 1));
        assert_eq!(
            when[14],
            &Cond::Any(vec![Cond::Identified(true), Cond::Not(Box::new(field("job_title", Test::Eq(s("intern")))))])
        );
        assert_eq!(when[15], &Cond::All(vec![Cond::Identified(true), field("country", Test::Eq(s("fr")))]));
        assert_eq!(m.stages[0].when, Some(Cond::Identified(true)));
        assert_eq!(m.stages[1].when, Some(Cond::StageAtLeast(1)));
        assert_eq!(m.stages[2].when, None);
    }

    #[test]
    fn every_operator_parses() {
        let yaml = format!(
            r#"{HEAD}
lists: {{ domains: [Gmail.com, 42] }}
rules:
  - on: page_view
    points: {{ engagement: 1 }}
    where:
      a: {{ eq: X }}
      b: {{ ne: 3 }}
      c: {{ in: [A, 2, true] }}
      d: {{ in: solo }}
      e: {{ not_in: [FR] }}
      f: {{ in_list: domains }}
      g: {{ contains: Pro }}
      h: {{ contains_any: [Vp, Head] }}
      i: {{ starts_with: /Blog }}
      j: {{ gt: 1, gte: 2.5, lt: 10, lte: 9 }}
      k: {{ exists: false }}
      l: "/docs/*"
      m: [x, "y*", 3]
      n: null
      identified: true
"#
        );
        let m = ok(&yaml);
        assert_eq!(m.lists["domains"], vec!["gmail.com", "42"]);
        let RuleKind::Behaviour(b) = &m.rules[0].kind else { panic!() };
        let Some(Cond::All(parts)) = &b.filter else { panic!("{:?}", b.filter) };
        let ops = |k: &str, ops: Vec<Op>| field(k, Test::Ops(ops));
        let want = vec![
            ops("a", vec![Op::Eq(s("x"))]),
            ops("b", vec![Op::Ne(Scalar::Num(3.0))]),
            ops("c", vec![Op::In(vec![s("a"), Scalar::Num(2.0), Scalar::Bool(true)])]),
            ops("d", vec![Op::In(vec![s("solo")])]),
            ops("e", vec![Op::NotIn(vec![s("fr")])]),
            ops("f", vec![Op::InList("domains".into())]),
            ops("g", vec![Op::Contains(s("pro"))]),
            ops("h", vec![Op::ContainsAny(vec![s("vp"), s("head")])]),
            ops("i", vec![Op::StartsWith("/blog".into())]),
            ops("j", vec![Op::Gt(1.0), Op::Gte(2.5), Op::Lt(10.0), Op::Lte(9.0)]),
            ops("k", vec![Op::Exists(false)]),
            field("l", Test::Glob("/docs/*".into())),
            field("m", Test::AnyOf(vec![Test::Eq(s("x")), Test::Glob("y*".into()), Test::Eq(Scalar::Num(3.0))])),
            field("n", Test::Eq(Scalar::Null)),
            // In an event matcher, lead keys are plain property names.
            field("identified", Test::Eq(Scalar::Bool(true))),
        ];
        assert_eq!(parts, &want);
    }

    #[test]
    fn operator_and_predicate_mistakes() {
        let yaml = format!(
            r#"{HEAD}
stages:
  - {{ id: lead, when: {{ stage: nope, quadrant: hot, email_domain: {{ in_list: missing }}, engagement: {{ bogus: 1 }} }} }}
  - {{ id: mql, when: {{ fit: {{ contains: x }}, temperature: warm, stage_at_least: sqll }} }}
  - {{ id: sql, when: {{ a: {{ gt: ten }}, b: {{ exists: yes }}, c: {{}}, d: [], e: {{ in: [] }}, did: {{ on: Bad Type, at_least: 0 }} }} }}
"#
        );
        let errs = errors(&yaml);
        let got = lines(&errs);
        let want = [
            "stages[0].when.stage: `nope` is not a stage (known: visitor, lead, mql, sql)",
            "stages[0].when.quadrant: `hot` is not a quadrant (known: engage_now, nurture, sales_check, deprioritize)",
            "stages[0].when.email_domain.in_list: unknown list `missing` (known: none; declare it under `lists`)",
            "stages[0].when.engagement.bogus: unknown operator `bogus` (expected one of: eq, ne, in, not_in, in_list, contains, contains_any, starts_with, gt, gte, lt, lte, exists)",
            "stages[1].when.fit: a score is compared with numbers",
            "stages[1].when.temperature: `warm` is not a temperature (known: none: the model has no `temperature` bands)",
            "stages[1].when.stage_at_least: `sqll` is not a stage (known: visitor, lead, mql, sql)",
            "stages[2].when.a.gt: expected a number, found `ten`",
            "stages[2].when.b.exists: expected true or false, found `yes`",
            "stages[2].when.c: an empty operator map tests nothing",
            "stages[2].when.d: an empty list matches nothing",
            "stages[2].when.e.in: expected at least one value",
            "stages[2].when.did.on: `Bad Type` is not a valid event type",
            "stages[2].when.did.at_least: must be at least 1, found 0",
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (g, w) in got.iter().zip(want) {
            assert!(g.starts_with(w), "got {g}\nwant {w}…");
        }
    }

    #[test]
    fn structure_mistakes() {
        let yaml = r#"
name: s
timezone: Mars/Olympus
scores:
  engagement: { min: 10, max: 5 }
  fit: { max: 5 }
  extra: { min: 0, max: 9, initial: 20 }
rules:
  - { id: x, on: page_view, when: { identified: true }, points: { fit: 1 } }
  - { id: x, on: page_view, points: { engagement: 1 }, count: { at_least: 0, within: 0s } }
  - { when: { identified: true }, where: { a: 1 }, once: true, points: { engagement: 1 } }
  - { on: Page View, points: { engagement: 1 } }
decay:
  - { score: engagement, after: 1d, points: 1, percent: 5 }
  - { score: fit, after: 1d, percent: 150 }
  - { score: extra, after: 1d, points: -1, floor: 100 }
temperature: { score: engagement, bands: [{ label: cold }, { label: cold, below: 3 }] }
stages:
  - { id: visitor, manual: true }
  - { id: a, manual: true, when: { identified: true } }
  - { id: a }
handoff: { stages: [b], sla: soon, recycle_reset: [nope], webhooks: [{ name: crm, url: ftp://x, secret: whsec_not*base64 }] }
email: { from: nobody, frequency_cap: { max: 0, per: 1d }, quiet_hours: { start: "25:00", end: "08:00" } }
"#;
        let got = lines(&errors(yaml));
        let want = [
            "timezone: `Mars/Olympus` is not an IANA time zone",
            "scores.engagement: `min` (10) must be below `max` (5)",
            "scores.fit.min: is missing",
            "scores.extra.initial: 20 is outside [0, 9]",
            "rules[0]: has both `on` (behaviour) and `when` (profile)",
            "rules[1].id: `x` is used by another rule",
            "rules[1].count.at_least: must be at least 1, found 0",
            "rules[1].count.within: must be longer than 0s",
            "rules[2].where: `where` belongs to behaviour rules",
            "rules[2].once: `once` belongs to behaviour rules",
            "rules[3].on: `Page View` is not a valid event type",
            "decay[0]: give `points` or `percent`, not both",
            "decay[1].percent: expected a number above 0 and at most 100, found `150`",
            "decay[2].floor: 100 is outside the bounds of `extra` [0, 9]",
            "temperature.bands[0].below: is missing",
            "temperature.bands[1].label: `cold` is used by another band",
            "temperature.bands[1].below: the last band takes every score above the others",
            "stages[0].id: `visitor` is built in",
            "stages[1]: a stage has `when` or `manual: true`, not both",
            "stages[2]: needs `when: CONDITION` or `manual: true`",
            "stages[2].id: `a` is used by another stage",
            "handoff.stages[0]: `b` is not a stage",
            "handoff.sla: `soon` is not a duration",
            "handoff.recycle_reset[0]: `nope` is not a score group",
            "handoff.webhooks[0].url: must be an http:// or https:// URL",
            "handoff.webhooks[0].secret: must be a Standard Webhooks secret",
            "email.from: `nobody` has no email address",
            "email.frequency_cap.max: must be at least 1, found 0",
            "email.quiet_hours.start: `25:00` is not a time of day (HH:MM)",
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (g, w) in got.iter().zip(want) {
            assert!(g.starts_with(w), "got {g}\nwant {w}…\nall: {got:#?}");
        }
        assert!(!got.iter().any(|l| l.contains("not*base64")), "a secret is never shown");
    }

    #[test]
    fn campaign_mistakes() {
        let yaml = format!(
            r#"{HEAD}
templates:
  t: {{ subject: S, html: "<p>x</p>" }}
campaigns:
  - id: a
    enter: {{}}
    exit_when: {{ where: {{ x: 1 }} }}
    goal: {{ on: purchase, wen: {{ identified: true }} }}
    steps:
      - {{ send: t, wait: 1d }}
      - {{ id: s, wait_for: {{ on: click }} }}
      - {{ id: s, if: {{ identified: true }}, then: nowhere, timeout: next }}
      - {{ goto_campaign: zz }}
      - {{ exit: false }}
      - {{ points: {{ fun: 3 }} }}
      - {{ send: t }}
  - id: a
    steps: []
"#
        );
        let got = lines(&errors(&yaml));
        let want = [
            "campaigns[0].enter: needs `on: EVENT_TYPE`, `when: CONDITION`, or both",
            "campaigns[0].exit_when: needs `on: EVENT_TYPE`, `when: CONDITION`, or both",
            "campaigns[0].exit_when.where: `where` filters the event of `on`: add `on`",
            "campaigns[0].goal.wen: unknown key `wen` (expected one of: on, where, when)",
            "campaigns[0].steps[0]: one kind per step; this one has send and wait",
            "campaigns[0].steps[1].wait_for.within: is missing",
            "campaigns[0].steps[2].id: `s` is used by another step of this campaign",
            "campaigns[0].steps[2].then: `then` jumps to unknown step id `nowhere` (use next, exit or a step id of this campaign: s)",
            "campaigns[0].steps[2].timeout: `timeout` goes with `wait_for`",
            "campaigns[0].steps[3].goto_campaign: unknown campaign `zz` (known: a)",
            "campaigns[0].steps[4].exit: write `exit: true`, found `false`",
            "campaigns[0].steps[5].points.fun: `fun` is not a score group",
            "campaigns[1].id: `a` is used by another campaign",
            "campaigns[1].steps: a campaign needs at least one step",
            "email: is missing: campaigns send email",
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        let mut got_sorted = got.clone();
        // `email` is missing, so it has no place in the file: it comes first.
        got_sorted.rotate_left(1);
        for (g, w) in got_sorted.iter().zip(want) {
            assert!(g.starts_with(w), "got {g}\nwant {w}…\nall: {got:#?}");
        }
    }

    #[test]
    fn webhooks_read_the_environment() {
        let yaml = format!(
            r#"{HEAD}
stages: [{{ id: mql, when: {{ engagement: {{ gte: 50 }} }} }}]
handoff:
  stages: [mql]
  webhooks:
    - {{ name: a, url: "https://crm.example/${{CARGO_PKG_NAME}}/in", secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw }}
    - {{ name: b, url: "${{EMBER_TEST_SURELY_UNSET_1}}", secret: "${{EMBER_TEST_SURELY_UNSET_2}}" }}
"#
        );
        let m = ok(&yaml);
        let hooks = &m.handoff.as_ref().unwrap().webhooks;
        assert_eq!(hooks[0].url.as_deref(), Some("https://crm.example/ember-scoring/in"));
        assert_eq!(hooks[0].secret.as_deref(), Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        assert_eq!((hooks[1].url.as_deref(), hooks[1].secret.as_deref()), (None, None));
        assert_eq!(hooks[1].url_source, "${EMBER_TEST_SURELY_UNSET_1}");
        let warned: Vec<&str> = m.warnings.iter().map(|w| w.path.as_str()).collect();
        assert_eq!(warned, ["handoff.webhooks[1].url", "handoff.webhooks[1].secret"]);
        assert!(m.warnings[0].message.contains("`EMBER_TEST_SURELY_UNSET_1` is not set"));

        assert!(valid_whsec("whsec_dGVzdA=="));
        for bad in ["whsec_", "dGVzdA==", "whsec_dGVzdA", "whsec_dG=zdA==", "whsec_dGVzdA===", "whsec_dGV*dA=="] {
            assert!(!valid_whsec(bad), "{bad}");
        }
    }

    #[test]
    fn templates_read_files_next_to_the_model() {
        let dir = std::env::temp_dir().join(format!("ember-load-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("emails")).unwrap();
        std::fs::write(dir.join("emails/hello.html"), "<p>Hello {{first_name}}</p>").unwrap();
        let model = format!(
            r#"{HEAD}
email: {{ from: "a@b.example" }}
templates:
  hello: {{ subject: Hi, html: emails/hello.html, text: "Hello {{{{first_name}}}}" }}
  gone: {{ subject: Bye, html: emails/missing.hbs }}
"#
        );
        std::fs::write(dir.join("model.yaml"), &model).unwrap();
        let errs = Model::load(&dir.join("model.yaml")).unwrap_err().0;
        assert_eq!(errs.len(), 1, "{:#?}", lines(&errs));
        assert_eq!(errs[0].path, "templates.gone.html");
        assert!(errs[0].message.contains("missing.hbs"), "{}", errs[0].message);
        std::fs::write(dir.join("model.yaml"), model.replace("  gone: { subject: Bye, html: emails/missing.hbs }\n", "")).unwrap();
        let m = Model::load(&dir.join("model.yaml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.templates["hello"].html, "<p>Hello {{first_name}}</p>");
        assert_eq!(m.templates["hello"].text.as_deref(), Some("Hello {{first_name}}"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unreachable_campaign_is_a_warning() {
        let yaml = format!(
            r#"{HEAD}
campaigns:
  - {{ id: orphan, steps: [{{ wait: 1d }}] }}
  - {{ id: first, enter: {{ on: signup }}, steps: [{{ goto_campaign: second }}] }}
  - {{ id: second, steps: [{{ points: {{ engagement: 5 }} }}] }}
"#
        );
        let m = ok(&yaml);
        assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
        assert_eq!(m.warnings[0].path, "campaigns[0]");
        assert!(m.warnings[0].message.contains("`orphan`"));
        assert!(matches!(m.campaigns[1].steps[0].kind, StepKind::Goto(2)));
        assert!(m.email.is_none(), "no email needed when nothing is sent");
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
        let missing = Model::load(Path::new("/nonexistent/ember/model.yaml")).unwrap_err().0;
        assert_eq!(missing[0].path, "(file)");
    }

    #[test]
    fn merge_keys_and_timezone() {
        let m = ok("name: m\ntimezone: America/New_York\nscores:\n  e: &b { min: 0, max: 10 }\n  f: { <<: *b, initial: 3 }\n");
        assert_eq!(m.timezone, chrono_tz::America::New_York);
        assert_eq!(m.scores[1], ScoreGroup { name: "f".into(), min: 0, max: 10, initial: 3 });
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
        let e = Model::from_yaml_str("name: m\nscores: [a\n", "bad.yaml", None).unwrap_err().to_string();
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
