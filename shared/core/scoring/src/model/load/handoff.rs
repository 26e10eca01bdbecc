//! `handoff`: the stages that hand a lead to sales, the SLA, recycling and webhooks; checks stage and
//! group names, resolves `${VAR}` in webhook URLs and secrets, checks URL schemes and `whsec_` secrets.

use super::*;

impl Ctx<'_> {
    /// Replaces every `${VAR}` with the value of that setting (the environment, or a function's
    /// secret). An unset (or empty) variable is a warning, not an error: the field is left `None`
    /// and deliveries are recorded, not sent.
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
            match self.sources.and_then(|s| s.setting(var)) {
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

    pub(super) fn handoff(&mut self, v: &Value) -> Option<Handoff> {
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
    use super::super::tests::HEAD;

    #[test]
    fn webhooks_read_their_settings() {
        let yaml = format!(
            r#"{HEAD}
stages: [{{ id: mql, when: {{ engagement: {{ gte: 50 }} }} }}]
handoff:
  stages: [mql]
  webhooks:
    - {{ name: a, url: "https://crm.example/${{CRM_TENANT}}/in", secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw }}
    - {{ name: b, url: "${{EMBER_TEST_SURELY_UNSET_1}}", secret: "${{EMBER_TEST_SURELY_UNSET_2}}" }}
"#
        );
        let sources = MemorySources { settings: [("CRM_TENANT".to_string(), "ember-scoring".to_string())].into(), ..MemorySources::default() };
        let m = Model::from_yaml_str_with(&yaml, "t.yaml", &sources).unwrap_or_else(|e| panic!("{e}"));
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
}
