//! Inactivity decay: applied by the scheduled decay job to the leads that are due.

use super::{Change, Engine, Outcome};
use crate::lead::Lead;
use crate::model::DecayAmount;
use crate::Time;

impl Engine {
    /// Next time a decay entry applies, if any. A score already at or under its floor is not due
    /// (any change to the lead recomputes this).
    pub(crate) fn decay_due(&self, lead: &Lead) -> Option<Time> {
        let idle_since = lead.last_activity_at?;
        let mut due: Option<Time> = None;
        for (i, d) in self.model.decay.iter().enumerate() {
            let applied = lead.decay_applied.get(&i).copied().unwrap_or(0);
            if !d.repeat && applied >= 1 {
                continue;
            }
            if self.score(lead, d.score) <= d.floor {
                continue;
            }
            let at = idle_since + d.after.to_chrono() * (applied as i32 + 1);
            due = Some(due.map_or(at, |x| x.min(at)));
        }
        due
    }

    /// Applies every decay step that has come due by `now`, each at its own time, then runs the
    /// change pipeline (campaign exits, entries).
    pub fn decay(&self, lead: &mut Lead, now: Time) -> Outcome {
        let mut out = Outcome::default();
        let Some(idle_since) = lead.last_activity_at else { return out };
        lead.updated_at = lead.updated_at.max(now);
        // Collect due applications across entries and apply them in time order.
        let mut pending: Vec<(Time, usize)> = Vec::new();
        for (i, d) in self.model.decay.iter().enumerate() {
            let applied = lead.decay_applied.get(&i).copied().unwrap_or(0);
            let mut n = applied;
            loop {
                if !d.repeat && n >= 1 {
                    break;
                }
                let at = idle_since + d.after.to_chrono() * (n as i32 + 1);
                if at > now || n > 10_000 {
                    break;
                }
                pending.push((at, i));
                n += 1;
            }
        }
        if pending.is_empty() {
            return out;
        }
        pending.sort();
        for (_at, i) in pending {
            let d = &self.model.decay[i];
            *lead.decay_applied.entry(i).or_insert(0) += 1;
            let cur = self.score(lead, d.score);
            let name = self.model.scores[d.score].name.clone();
            if cur <= d.floor {
                continue;
            }
            let take = match d.amount {
                DecayAmount::Points(p) => p,
                DecayAmount::Percent(pct) => (((cur as f64) * pct / 100.0).round() as i64).max(0),
            };
            let target = (cur - take).max(d.floor);
            let given = self.add_points(lead, d.score, target - cur);
            out.push(Change::Points {
                source: format!("decay[{i}]").into(),
                group: name.into(),
                asked: -take,
                given,
                note: (given != -take).then(|| format!("floor {}", d.floor).into()),
            });
        }
        self.after_change(lead, None, now, false, &mut out);
        out
    }
}
