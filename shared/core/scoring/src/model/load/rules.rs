//! `rules`: behaviour rules (`on`, `where`, `once`, `cap`, `count`) and profile rules (`when`); checks
//! unique ids, `points` or `tags`, one kind per rule and the keys that belong to each kind.

use super::*;

impl Ctx<'_> {
    pub(super) fn rules(&mut self, v: Option<&Value>) -> Vec<Rule> {
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
}
