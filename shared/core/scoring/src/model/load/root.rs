//! The top level of the model file: a map of sections with `name` and `timezone`; reads every section
//! in turn, then checks across them (`email` needed to send, campaigns no lead can enter).

use super::*;

/// Path of errors about the file as a whole.
const ROOT: &str = "(root)";

impl Ctx<'_> {
    pub(super) fn model(&mut self, root: &Value) -> Option<Model> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use super::super::tests::{errors, lines, ok, HEAD};

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
    fn merge_keys_and_timezone() {
        let m = ok("name: m\ntimezone: America/New_York\nscores:\n  e: &b { min: 0, max: 10 }\n  f: { <<: *b, initial: 3 }\n");
        assert_eq!(m.timezone, chrono_tz::America::New_York);
        assert_eq!(m.scores[1], ScoreGroup { name: "f".into(), min: 0, max: 10, initial: 3 });
    }
}
