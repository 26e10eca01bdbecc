//! `stages`: the lifecycle after the built-in `visitor`; checks unique ids other than `visitor` and
//! that each stage has `when` or `manual: true`.

use super::*;

impl Ctx<'_> {
    pub(super) fn stages_list(&mut self, v: Option<&Value>) -> Vec<Stage> {
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
}
