//! `campaigns`: the `enter`, `exit_when` and `goal` triggers and the steps; checks unique campaign and
//! step ids, one kind per step, jumps to known step ids, and known templates and campaigns.

use super::*;

impl Ctx<'_> {
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

    pub(super) fn campaigns_list(&mut self, v: Option<&Value>) -> Vec<Campaign> {
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
}

#[cfg(test)]
mod tests {
    use super::super::tests::{errors, lines, HEAD};

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
}
