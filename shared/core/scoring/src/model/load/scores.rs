//! `scores`, `temperature` and `quadrants`: the score groups and their bounds, then the temperature
//! bands and the fit/interest axes built on them (known groups, unique labels, rising thresholds).

use super::*;

impl Ctx<'_> {
    pub(super) fn scores(&mut self, v: Option<&Value>) -> Vec<ScoreGroup> {
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

    pub(super) fn temperature(&mut self, v: &Value) -> Option<Temperature> {
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

    pub(super) fn quadrants(&mut self, v: &Value) -> Option<Quadrants> {
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
}
