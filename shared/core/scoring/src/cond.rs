//! Matchers and lead predicates (SPEC §2 "Matchers" and "Lead predicates").
//!
//! One tree type, [`Cond`], serves both: event `where:` filters use only [`Cond::Field`],
//! [`Cond::All`], [`Cond::Any`] and [`Cond::Not`], evaluated over the event's properties; lead
//! predicates (`when:`, `if:`, stage conditions) may also use the lead-specific variants.

use crate::model::Span;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A matcher or lead predicate as parsed from the model file (see the module docs for which variants each may use).
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// Every one holds (an empty list holds).
    All(Vec<Cond>),
    /// At least one holds.
    Any(Vec<Cond>),
    /// `not:`: holds when the inner condition does not.
    Not(Box<Cond>),
    /// A property (events) or trait (leads) tested against a [`Test`]; dotted keys walk objects.
    Field {
        /// Key as written in the file, e.g. `plan` or `company.size`.
        key: String,
        /// What the value at `key` must satisfy.
        test: Test,
    },
    /// `identified: true|false` — the lead has an email.
    Identified(bool),
    /// `subscribed: true|false` — opted in and not opted out.
    Subscribed(bool),
    /// A score group compared numerically.
    Score {
        /// Index into [`crate::model::Model::scores`].
        group: usize,
        /// Operators over the current (clamped) score.
        test: Test,
    },
    /// `stage:` — current stage id.
    Stage(Test),
    /// `stage_at_least:` — stage index at or beyond.
    StageAtLeast(usize),
    /// `tagged:` — some tag passes the test.
    Tagged(Test),
    /// `email_domain:` — domain part of the email.
    EmailDomain(Test),
    /// `quadrant:`.
    Quadrant(Test),
    /// `temperature:`.
    Temperature(Test),
    /// `did: {on, where?, at_least, within?}` over the event history.
    Did {
        /// Index into [`crate::model::Model::trackers`].
        tracker: usize,
        /// How many matching events must be in the window (`at_least`, default 1).
        at_least: u32,
        /// Trailing window, or all history.
        within: Option<Span>,
    },
}

/// The filter type of event matchers (`where:`).
pub type FieldMatch = Cond;

/// How one value is tested.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// Scalar equality (strings ignore case; numbers compare numerically, also as strings).
    Eq(Scalar),
    /// Glob with `*` (lower-cased pattern).
    Glob(String),
    /// A list in the file: any of these.
    AnyOf(Vec<Test>),
    /// A map of operators, all must hold.
    Ops(Vec<Op>),
}

/// A scalar from the model file. Strings are stored lower-cased.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// String (lower-cased).
    Str(String),
    /// A number, compared numerically (a string holding the same number also matches).
    Num(f64),
    /// `true` / `false`; also matches the strings `"true"` / `"false"` in any case.
    Bool(bool),
    /// `null`: matches only a JSON null.
    Null,
}

/// An operator of a matcher map.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `eq`.
    Eq(Scalar),
    /// `ne`.
    Ne(Scalar),
    /// `in`.
    In(Vec<Scalar>),
    /// `not_in`.
    NotIn(Vec<Scalar>),
    /// `in_list`: a named list of the model.
    InList(String),
    /// `contains`: substring of a string, or element of a list.
    Contains(Scalar),
    /// `contains_any`.
    ContainsAny(Vec<Scalar>),
    /// `starts_with`.
    StartsWith(String),
    /// `gt`.
    Gt(f64),
    /// `gte`.
    Gte(f64),
    /// `lt`.
    Lt(f64),
    /// `lte`.
    Lte(f64),
    /// `exists`.
    Exists(bool),
}

/// A value being tested, borrowed from an event, a lead, or computed.
#[derive(Debug, Clone, Copy)]
pub enum Val<'a> {
    /// A string as found (not lower-cased: comparisons ignore case).
    Str(&'a str),
    /// A number: a score, or one unwrapped from a JSON value.
    Num(f64),
    /// A boolean unwrapped from a JSON value.
    Bool(bool),
    /// Any JSON value (arrays are tested element-wise for `contains`).
    Json(&'a Value),
}

impl<'a> Val<'a> {
    fn scalar(self) -> Option<Val<'a>> {
        match self {
            Val::Json(Value::String(s)) => Some(Val::Str(s)),
            Val::Json(Value::Number(n)) => n.as_f64().map(Val::Num),
            Val::Json(Value::Bool(b)) => Some(Val::Bool(*b)),
            Val::Json(_) => None,
            other => Some(other),
        }
    }

    fn as_num(self) -> Option<f64> {
        match self.scalar()? {
            Val::Num(n) => Some(n),
            Val::Str(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
            _ => None,
        }
    }

    fn as_text(self) -> Option<String> {
        match self.scalar()? {
            Val::Str(s) => Some(s.to_lowercase()),
            Val::Num(n) => Some(fmt_num(n)),
            Val::Bool(b) => Some(b.to_string()),
            Val::Json(_) => None,
        }
    }

    fn is_null(self) -> bool {
        matches!(self, Val::Json(Value::Null))
    }
}

fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 { format!("{}", n as i64) } else { n.to_string() }
}

/// Case-insensitive glob: `*` matches any run of characters, `/` included. The pattern is
/// already lower-cased; the text is lower-cased only when it needs to be.
pub fn glob_match(pattern_lower: &str, text: &str) -> bool {
    if text.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
        return glob_lower(pattern_lower, &text.to_lowercase());
    }
    glob_lower(pattern_lower, text)
}

fn glob_lower(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let mut last: Option<&str> = None;
    for part in parts {
        if let Some(prev) = last.replace(part) {
            match rest.find(prev) {
                Some(i) => rest = &rest[i + prev.len()..],
                None => return false,
            }
        }
    }
    match last {
        None => rest.is_empty(),
        Some(tail) => rest.len() >= tail.len() && rest.ends_with(tail),
    }
}

fn scalar_eq(want: &Scalar, have: Val<'_>) -> bool {
    match want {
        Scalar::Null => have.is_null(),
        Scalar::Bool(b) => match have.scalar() {
            Some(Val::Bool(h)) => h == *b,
            Some(Val::Str(s)) => s.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
            _ => false,
        },
        Scalar::Num(n) => have.as_num().is_some_and(|h| h == *n),
        Scalar::Str(s) => match have.scalar() {
            Some(Val::Str(h)) => h.eq_ignore_ascii_case(s) || h.to_lowercase() == *s,
            Some(Val::Num(h)) => s.parse::<f64>().is_ok_and(|w| w == h),
            Some(Val::Bool(h)) => s == if h { "true" } else { "false" },
            _ => false,
        },
    }
}

fn scalar_text(s: &Scalar) -> Option<String> {
    match s {
        Scalar::Str(s) => Some(s.clone()),
        Scalar::Num(n) => Some(fmt_num(*n)),
        Scalar::Bool(b) => Some(b.to_string()),
        Scalar::Null => None,
    }
}

fn contains(have: Val<'_>, needle: &Scalar) -> bool {
    match have {
        Val::Json(Value::Array(items)) => items.iter().any(|i| scalar_eq(needle, Val::Json(i))),
        other => match (other.as_text(), scalar_text(needle)) {
            (Some(h), Some(n)) => h.contains(&n),
            _ => false,
        },
    }
}

impl Test {
    /// Tests a value (`None` when the key is absent). `lists` holds the model's named lists.
    pub fn eval(&self, have: Option<Val<'_>>, lists: &BTreeMap<String, Vec<String>>) -> bool {
        match self {
            Test::Eq(want) => have.is_some_and(|h| scalar_eq(want, h) || list_has(h, |x| scalar_eq(want, x))),
            Test::Glob(p) => have.is_some_and(|h| match h.scalar() {
                Some(Val::Str(t)) => glob_match(p, t),
                _ => h.as_text().is_some_and(|t| glob_match(p, &t)),
            }),
            Test::AnyOf(items) => items.iter().any(|t| t.eval(have, lists)),
            Test::Ops(ops) => ops.iter().all(|op| op_eval(op, have, lists)),
        }
    }
}

fn list_has(h: Val<'_>, f: impl Fn(Val<'_>) -> bool) -> bool {
    match h {
        Val::Json(Value::Array(items)) => items.iter().any(|i| f(Val::Json(i))),
        _ => false,
    }
}

fn op_eval(op: &Op, have: Option<Val<'_>>, lists: &BTreeMap<String, Vec<String>>) -> bool {
    let present = have.filter(|h| !h.is_null());
    match op {
        Op::Exists(want) => present.is_some() == *want,
        Op::Ne(s) => !present.is_some_and(|h| scalar_eq(s, h)),
        Op::NotIn(items) => !present.is_some_and(|h| items.iter().any(|s| scalar_eq(s, h))),
        _ => {
            let Some(h) = present else { return false };
            match op {
                Op::Eq(s) => scalar_eq(s, h),
                Op::In(items) => items.iter().any(|s| scalar_eq(s, h)),
                Op::InList(name) => {
                    let Some(values) = lists.get(name) else { return false };
                    h.as_text().is_some_and(|t| values.iter().any(|v| *v == t))
                }
                Op::Contains(s) => contains(h, s),
                Op::ContainsAny(items) => items.iter().any(|s| contains(h, s)),
                Op::StartsWith(p) => h.as_text().is_some_and(|t| t.starts_with(p.as_str())),
                Op::Gt(n) => h.as_num().is_some_and(|v| v > *n),
                Op::Gte(n) => h.as_num().is_some_and(|v| v >= *n),
                Op::Lt(n) => h.as_num().is_some_and(|v| v < *n),
                Op::Lte(n) => h.as_num().is_some_and(|v| v <= *n),
                Op::Exists(_) | Op::Ne(_) | Op::NotIn(_) => unreachable!("handled above"),
            }
        }
    }
}

/// Looks up a possibly dotted key in a JSON object.
pub fn lookup<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    if let Some(v) = map.get(key) {
        return Some(v);
    }
    let mut parts = key.split('.');
    let mut cur = map.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

/// What a lead predicate can ask about the lead it is evaluated on.
pub trait LeadFacts {
    /// A trait (or other lead field) by key.
    fn field(&self, key: &str) -> Option<Val<'_>>;
    /// The lead has an email (anonymous profiles have only `anonymous_id`s).
    fn identified(&self) -> bool;
    /// Opted in and not opted out.
    fn subscribed(&self) -> bool;
    /// Current score of a group.
    fn score(&self, group: usize) -> i64;
    /// Current stage id and index.
    fn stage(&self) -> (&str, usize);
    /// Whether any of the lead's tags satisfies `test` (`in_list` names resolve in `lists`).
    fn has_tag_matching(&self, test: &Test, lists: &BTreeMap<String, Vec<String>>) -> bool;
    /// Email domain (lower-case).
    fn email_domain(&self) -> Option<&str>;
    /// Current quadrant label; `None` when the model has no `quadrants`.
    fn quadrant(&self) -> Option<&str>;
    /// Current temperature label; `None` when the model has no `temperature`.
    fn temperature(&self) -> Option<&str>;
    /// Matching events in the tracker inside the window (or ever).
    fn did_count(&self, tracker: usize, within: Option<Span>) -> u64;
}

impl Cond {
    /// Evaluates an event matcher over properties.
    pub fn matches_props(&self, props: &Map<String, Value>, lists: &BTreeMap<String, Vec<String>>) -> bool {
        match self {
            Cond::All(items) => items.iter().all(|c| c.matches_props(props, lists)),
            Cond::Any(items) => items.iter().any(|c| c.matches_props(props, lists)),
            Cond::Not(inner) => !inner.matches_props(props, lists),
            Cond::Field { key, test } => test.eval(lookup(props, key).map(Val::Json), lists),
            // Lead-only variants are rejected by the loader in event matchers.
            _ => false,
        }
    }

    /// Evaluates a lead predicate.
    pub fn holds(&self, lead: &dyn LeadFacts, lists: &BTreeMap<String, Vec<String>>) -> bool {
        match self {
            Cond::All(items) => items.iter().all(|c| c.holds(lead, lists)),
            Cond::Any(items) => items.iter().any(|c| c.holds(lead, lists)),
            Cond::Not(inner) => !inner.holds(lead, lists),
            Cond::Field { key, test } => test.eval(lead.field(key), lists),
            Cond::Identified(b) => lead.identified() == *b,
            Cond::Subscribed(b) => lead.subscribed() == *b,
            Cond::Score { group, test } => test.eval(Some(Val::Num(lead.score(*group) as f64)), lists),
            Cond::Stage(test) => test.eval(Some(Val::Str(lead.stage().0)), lists),
            Cond::StageAtLeast(idx) => lead.stage().1 >= *idx,
            Cond::Tagged(test) => lead.has_tag_matching(test, lists),
            Cond::EmailDomain(test) => test.eval(lead.email_domain().map(Val::Str), lists),
            Cond::Quadrant(test) => test.eval(lead.quadrant().map(Val::Str), lists),
            Cond::Temperature(test) => test.eval(lead.temperature().map(Val::Str), lists),
            Cond::Did { tracker, at_least, within } => lead.did_count(*tracker, *within) >= u64::from(*at_least),
        }
    }

    /// True when the predicate reads only traits (so it needs re-evaluating only when traits change).
    pub fn reads_only_traits(&self) -> bool {
        match self {
            Cond::All(items) | Cond::Any(items) => items.iter().all(Cond::reads_only_traits),
            Cond::Not(inner) => inner.reads_only_traits(),
            Cond::Field { .. } | Cond::Identified(_) | Cond::EmailDomain(_) => true,
            _ => false,
        }
    }

    /// Visits every `did` tracker index used in this condition.
    pub fn trackers(&self, out: &mut Vec<usize>) {
        match self {
            Cond::All(items) | Cond::Any(items) => items.iter().for_each(|c| c.trackers(out)),
            Cond::Not(inner) => inner.trackers(out),
            Cond::Did { tracker, .. } => out.push(*tracker),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn globs() {
        assert!(glob_match("/blog/*", "/blog/a"));
        assert!(glob_match("/blog/*", "/BLOG/a/b"));
        assert!(!glob_match("/blog/*", "/blo"));
        assert!(glob_match("/pricing*", "/pricing"));
        assert!(glob_match("/pricing*", "/pricing/enterprise"));
        assert!(glob_match("*.pdf", "guide.PDF"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(!glob_match("/", "/blog"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn scalar_list_and_ops() {
        let lists = BTreeMap::from([("c".to_string(), vec!["rival.example".to_string()])]);
        let p = props(json!({"form_id": "Needs-Survey", "size": "6000", "tags": ["a", "B"], "country": "US"}));
        let f = |key: &str, test: Test| Cond::Field { key: key.into(), test };
        assert!(f("form_id", Test::Eq(Scalar::Str("needs-survey".into()))).matches_props(&p, &lists));
        assert!(f("size", Test::Ops(vec![Op::Gte(5000.0)])).matches_props(&p, &lists));
        assert!(f("size", Test::Eq(Scalar::Num(6000.0))).matches_props(&p, &lists));
        assert!(f("tags", Test::Ops(vec![Op::Contains(Scalar::Str("b".into()))])).matches_props(&p, &lists));
        assert!(f("country", Test::Ops(vec![Op::Exists(true), Op::NotIn(vec![Scalar::Str("fr".into())])])).matches_props(&p, &lists));
        assert!(!f("missing", Test::Ops(vec![Op::Exists(true)])).matches_props(&p, &lists));
        assert!(f("missing", Test::Ops(vec![Op::Ne(Scalar::Str("x".into()))])).matches_props(&p, &lists));
        assert!(!f("missing", Test::Ops(vec![Op::Lt(3.0)])).matches_props(&p, &lists));
        assert!(Cond::Not(Box::new(f("form_id", Test::Eq(Scalar::Str("x".into()))))).matches_props(&p, &lists));
    }
}
