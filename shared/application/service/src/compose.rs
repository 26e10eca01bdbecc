//! Renders campaign emails: Handlebars templates from the model, the HTML part escaped, the
//! subject and text parts not, a per-lead signed unsubscribe link, and the `List-Unsubscribe` /
//! `List-Unsubscribe-Post: List-Unsubscribe=One-Click` headers (RFC 8058).

use crate::ports::OutgoingEmail;
use ember_scoring::{Lead, Model, SendIntent};
use handlebars::Handlebars;
use serde_json::{Value, json};

/// What the composer needs besides the model.
#[derive(Debug, Clone)]
pub struct ComposeSettings {
    /// Base URL of the API (for the unsubscribe link), e.g. `https://api.example.com`.
    pub public_url: String,
    /// Key of unsubscribe tokens.
    pub unsubscribe_secret: Vec<u8>,
    /// Optional `mailto:` address added to `List-Unsubscribe`.
    pub unsubscribe_mailto: Option<String>,
}

/// Templates compiled once per model.
pub struct Composer {
    html: Handlebars<'static>,
    plain: Handlebars<'static>,
    from: String,
    reply_to: Option<String>,
    configuration_set: Option<String>,
    settings: ComposeSettings,
    has_text: std::collections::BTreeSet<String>,
}

impl std::fmt::Debug for Composer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Composer").field("from", &self.from).finish_non_exhaustive()
    }
}

impl Composer {
    /// Compiles every template; errors name the template and the part.
    pub fn new(model: &Model, settings: ComposeSettings) -> Result<Composer, Vec<String>> {
        let mut html = Handlebars::new();
        let mut plain = Handlebars::new();
        plain.register_escape_fn(handlebars::no_escape);
        let mut errors = Vec::new();
        let mut has_text = std::collections::BTreeSet::new();
        for (id, t) in &model.templates {
            if let Err(e) = html.register_template_string(&format!("{id}/html"), &t.html) {
                errors.push(format!("templates.{id}.html: {e}"));
            }
            if let Err(e) = plain.register_template_string(&format!("{id}/subject"), &t.subject) {
                errors.push(format!("templates.{id}.subject: {e}"));
            }
            if let Some(text) = &t.text {
                has_text.insert(id.clone());
                if let Err(e) = plain.register_template_string(&format!("{id}/text"), text) {
                    errors.push(format!("templates.{id}.text: {e}"));
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let email = model.email.clone();
        Ok(Composer {
            html,
            plain,
            from: email.as_ref().map(|e| e.from.clone()).unwrap_or_default(),
            reply_to: email.as_ref().and_then(|e| e.reply_to.clone()),
            configuration_set: email.as_ref().and_then(|e| e.configuration_set.clone()),
            settings,
            has_text,
        })
    }

    /// The lead id of a valid unsubscribe token (none when no unsubscribe secret is set).
    pub fn verify_unsubscribe(&self, token: &str) -> Option<String> {
        if self.settings.unsubscribe_secret.is_empty() {
            return None;
        }
        crate::signing::verify_unsubscribe_token(&self.settings.unsubscribe_secret, token).ok()
    }

    /// The unsubscribe URL of a lead.
    pub fn unsubscribe_url(&self, lead_id: &str) -> String {
        let token = crate::signing::unsubscribe_token(&self.settings.unsubscribe_secret, lead_id);
        format!("{}/v1/unsubscribe?token={token}", self.settings.public_url.trim_end_matches('/'))
    }

    /// Renders one email for a send the drip run claimed.
    pub fn compose(&self, intent: &SendIntent, lead: &Lead) -> Result<OutgoingEmail, String> {
        let unsubscribe_url = self.unsubscribe_url(&lead.id);
        let mut data = serde_json::Map::new();
        for (k, v) in &lead.traits {
            data.insert(k.clone(), v.clone());
        }
        data.insert("email".into(), json!(lead.email));
        data.insert("lead_id".into(), json!(lead.id));
        data.insert("scores".into(), json!(lead.scores));
        data.insert("stage".into(), json!(lead.stage));
        data.insert("campaign".into(), json!(intent.campaign));
        data.insert("unsubscribe_url".into(), json!(unsubscribe_url));
        let data = Value::Object(data);
        let id = &intent.template;
        let render = |reg: &Handlebars<'static>, part: &str| {
            reg.render(&format!("{id}/{part}"), &data).map_err(|e| format!("template {id} ({part}): {e}"))
        };
        let html = render(&self.html, "html")?;
        let subject = render(&self.plain, "subject")?.replace(['\r', '\n'], " ");
        let text = if self.has_text.contains(id) { render(&self.plain, "text")? } else { html_to_text(&html) };
        let mut list = format!("<{unsubscribe_url}>");
        if let Some(m) = &self.settings.unsubscribe_mailto {
            list.push_str(&format!(", <mailto:{m}?subject=unsubscribe>"));
        }
        Ok(OutgoingEmail {
            send_id: intent.send_id.clone(),
            lead_id: lead.id.clone(),
            campaign: intent.campaign.clone(),
            step: intent.step,
            template: id.clone(),
            from: self.from.clone(),
            reply_to: self.reply_to.clone(),
            to: intent.to.clone(),
            subject,
            html,
            text,
            headers: vec![
                ("List-Unsubscribe".into(), list),
                ("List-Unsubscribe-Post".into(), "List-Unsubscribe=One-Click".into()),
            ],
            configuration_set: self.configuration_set.clone(),
        })
    }
}

/// A plain-text version of an HTML body: tags dropped, links kept as `text (url)`, entities decoded.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    let mut href: Option<String> = None;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        let Some(gt) = rest[lt..].find('>') else {
            out.push_str(&rest[lt..]);
            rest = "";
            break;
        };
        let tag = &rest[lt + 1..lt + gt];
        let lower = tag.to_ascii_lowercase();
        if lower.starts_with("a ") {
            href = tag.split("href=\"").nth(1).and_then(|h| h.split('"').next()).map(str::to_string);
        } else if lower == "/a" {
            if let Some(h) = href.take() {
                out.push_str(&format!(" ({h})"));
            }
        } else if lower == "/p"
            || lower.starts_with("br")
            || lower == "/div"
            || lower == "/li"
            || lower.starts_with("/h")
        {
            out.push('\n');
        }
        rest = &rest[lt + gt + 1..];
    }
    out.push_str(rest);
    let decoded = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&#x3D;", "=")
        .replace("&amp;", "&");
    decoded.lines().map(str::trim).collect::<Vec<_>>().join("\n").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(extra: &str) -> Model {
        let yaml = format!(
            r#"
name: t
scores: {{ engagement: {{ min: 0, max: 10 }} }}
email: {{ from: "Shop <hi@shop.example>", configuration_set: cs }}
templates:
  hello:
    subject: "Hi {{{{first_name}}}}"
    html: "<p>Hello {{{{first_name}}}}</p><p><a href=\"{{{{unsubscribe_url}}}}\">Unsubscribe</a></p>"
{extra}"#
        );
        Model::from_yaml_str(&yaml, "t.yaml").unwrap()
    }

    fn settings() -> ComposeSettings {
        ComposeSettings {
            public_url: "https://api.example".into(),
            unsubscribe_secret: b"k".to_vec(),
            unsubscribe_mailto: None,
        }
    }

    #[test]
    fn escapes_html_signs_the_link_and_sets_headers() {
        let m = model("");
        let c = Composer::new(&m, settings()).unwrap();
        let mut lead = Lead::new("ld_1", &m, "2026-01-01T00:00:00Z".parse().unwrap());
        lead.traits.insert("first_name".into(), json!("<script>x</script>"));
        lead.email = Some("a@b.example".into());
        let intent = SendIntent {
            send_id: "s".into(),
            lead_id: "ld_1".into(),
            to: "a@b.example".into(),
            campaign: "c".into(),
            step: 0,
            template: "hello".into(),
        };
        let e = c.compose(&intent, &lead).unwrap();
        assert!(e.html.contains("&lt;script&gt;"), "{}", e.html);
        assert!(!e.html.contains("<script>"));
        assert_eq!(e.subject, "Hi <script>x</script>", "the subject is plain text, not HTML");
        // Handlebars writes `=` as `&#x3D;` inside HTML; browsers decode it in attributes.
        let html = e.html.replace("&#x3D;", "=");
        let token = html.split("token=").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(crate::signing::verify_unsubscribe_token(b"k", token).unwrap(), "ld_1");
        assert!(e.headers.iter().any(|(k, v)| k == "List-Unsubscribe" && v.contains("/v1/unsubscribe?token=")));
        assert!(e.headers.contains(&("List-Unsubscribe-Post".into(), "List-Unsubscribe=One-Click".into())));
        assert_eq!(e.configuration_set.as_deref(), Some("cs"));
        assert!(e.text.contains("Hello <script>x</script>"));
        assert!(e.text.contains("(https://api.example/v1/unsubscribe?token="));
    }

    #[test]
    fn missing_traits_render_empty_and_text_templates_are_not_escaped() {
        let m = model(
            "  plain:\n    subject: \"{{#if first_name}}Hi {{first_name}}{{else}}Hello{{/if}} & welcome\"\n    html: \"<p>{{company}}</p>\"\n    text: \"Dear {{first_name}}, {{company}} ({{scores.engagement}}, {{stage}}, {{campaign}}) {{unsubscribe_url}}\"\n",
        );
        let mut s = settings();
        s.unsubscribe_mailto = Some("unsubscribe@shop.example".into());
        let c = Composer::new(&m, s).unwrap();
        let mut lead = Lead::new("ld_2", &m, "2026-01-01T00:00:00Z".parse().unwrap());
        lead.traits.insert("company".into(), json!("A & B <Ltd>"));
        let intent = SendIntent {
            send_id: "s2".into(),
            lead_id: "ld_2".into(),
            to: "x@y.example".into(),
            campaign: "nurture".into(),
            step: 1,
            template: "plain".into(),
        };
        let e = c.compose(&intent, &lead).unwrap();
        assert_eq!(e.subject, "Hello & welcome");
        assert_eq!(e.html, "<p>A &amp; B &lt;Ltd&gt;</p>");
        assert!(
            e.text.starts_with("Dear , A & B <Ltd> (0, visitor, nurture) https://api.example/v1/unsubscribe?token="),
            "{}",
            e.text
        );
        let list = &e.headers.iter().find(|(k, _)| k == "List-Unsubscribe").unwrap().1;
        assert!(
            list.starts_with("<https://api.example/v1/unsubscribe?token=")
                && list.contains(", <mailto:unsubscribe@shop.example"),
            "{list}"
        );
        assert_eq!((e.from.as_str(), e.step, e.template.as_str()), ("Shop <hi@shop.example>", 1, "plain"));
    }

    #[test]
    fn reports_compile_errors_by_template() {
        let m = model("  broken:\n    subject: \"{{#if x}}\"\n    html: \"<p>ok</p>\"\n");
        let errs = Composer::new(&m, settings()).unwrap_err();
        assert!(errs.iter().any(|e| e.starts_with("templates.broken.subject")), "{errs:?}");
    }
}
