//! `templates`: email subjects and bodies; checks `subject` and `html` are there and asks the
//! model's sources for a body given as a file path.

use super::*;

impl Ctx<'_> {
    fn body(&mut self, raw: String, path: &str) -> String {
        let looks_like_file = !raw.contains('<')
            && !raw.contains("{{")
            && !raw.contains('\n')
            && [".html", ".hbs", ".txt", ".md", ".htm"].iter().any(|x| raw.trim().ends_with(x));
        if !looks_like_file {
            return raw;
        }
        match self.sources.unwrap_or(&NoSources).file(raw.trim()) {
            Ok(s) => s,
            Err(e) => {
                self.err(path, format!("template file {} cannot be read: {}", e.at, e.reason));
                String::new()
            }
        }
    }

    pub(super) fn templates_map(&mut self, v: Option<&Value>) -> BTreeMap<String, Template> {
        let mut out = BTreeMap::new();
        let Some(v) = v else { return out };
        let Value::Mapping(m) = v else {
            self.err("templates", format!("expected a map of templates, found {}", kind_of(v)));
            return out;
        };
        for (k, t) in m {
            let id = key_str(k);
            let p = join("templates", &id);
            let Some(tm) = self.map(t, &p, &["subject", "html", "text"]) else { continue };
            let subject = match tm.get(Value::String("subject".into())) {
                Some(x) => self.string(x, &join(&p, "subject")).unwrap_or_default(),
                None => {
                    self.err(&join(&p, "subject"), "is missing");
                    String::new()
                }
            };
            let html = match tm.get(Value::String("html".into())) {
                Some(x) => {
                    let raw = self.string(x, &join(&p, "html")).unwrap_or_default();
                    self.body(raw, &join(&p, "html"))
                }
                None => {
                    self.err(&join(&p, "html"), "is missing");
                    String::new()
                }
            };
            let text = tm.get(Value::String("text".into())).and_then(|x| self.string(x, &join(&p, "text"))).map(|raw| self.body(raw, &join(&p, "text")));
            out.insert(id, Template { subject, html, text });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use super::super::tests::{lines, HEAD};

    #[test]
    fn templates_read_the_files_they_name_from_the_sources() {
        let sources = MemorySources {
            files: [("emails/hello.html".to_string(), "<p>Hello {{first_name}}</p>".to_string())].into(),
            ..MemorySources::default()
        };
        let model = format!(
            r#"{HEAD}
email: {{ from: "a@b.example" }}
templates:
  hello: {{ subject: Hi, html: " emails/hello.html ", text: "Hello {{{{first_name}}}}" }}
  gone: {{ subject: Bye, html: emails/missing.hbs }}
"#
        );
        let errs = Model::from_yaml_str_with(&model, "model.yaml", &sources).unwrap_err().0;
        assert_eq!(lines(&errs), ["templates.gone.html: template file emails/missing.hbs cannot be read: no such file"]);
        let model = model.replace("  gone: { subject: Bye, html: emails/missing.hbs }\n", "");
        let m = Model::from_yaml_str_with(&model, "model.yaml", &sources).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.templates["hello"].html, "<p>Hello {{first_name}}</p>");
        assert_eq!(m.templates["hello"].text.as_deref(), Some("Hello {{first_name}}"));
        // Given as text alone, a model has no files to read.
        let errs = Model::from_yaml_str(&model, "model.yaml").unwrap_err().0;
        assert_eq!(
            lines(&errs),
            ["templates.hello.html: template file emails/hello.html cannot be read: the model was given as text, with no folder to read files from"]
        );
    }
}
