//! `decay`: how a score falls after a quiet spell; checks the group, `after`, one of `points` or
//! `percent`, and that `floor` lies within the group's bounds.

use super::*;

impl Ctx<'_> {
    pub(super) fn decay(&mut self, v: Option<&Value>, scores: &[ScoreGroup]) -> Vec<Decay> {
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
}
