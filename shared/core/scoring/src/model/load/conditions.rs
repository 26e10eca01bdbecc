//! Conditions wherever the model file has them (`where`, `when`, `if`, triggers): event matchers and
//! lead predicates; checks operators, score groups, lists and stage, quadrant and temperature
//! names, and gives each `did` event and filter one shared tracker.

use super::*;

const QUADRANTS: &[&str] = &["engage_now", "nurture", "sales_check", "deprioritize"];

/// The operators of a matcher map.
const OPERATORS: &[&str] =
    &["eq", "ne", "in", "not_in", "in_list", "contains", "contains_any", "starts_with", "gt", "gte", "lt", "lte", "exists"];

impl Ctx<'_> {
    /// An event matcher (`where:`).
    pub(super) fn matcher(&mut self, v: &Value, path: &str) -> Cond {
        self.cond(v, path, false)
    }

    /// A lead predicate.
    pub(super) fn predicate(&mut self, v: &Value, path: &str) -> Cond {
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

#[cfg(test)]
mod tests {
    use super::*;
    use super::super::tests::{errors, field, lines, ok, s, HEAD};

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
}
