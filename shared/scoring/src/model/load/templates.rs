//! `templates`: email subjects and bodies; checks `subject` and `html` are there and reads a body
//! given as a file path from the model's folder.

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
        let file = match &self.base {
            Some(b) => b.join(raw.trim()),
            None => PathBuf::from(raw.trim()),
        };
        match std::fs::read_to_string(&file) {
            Ok(s) => s,
            Err(e) => {
                self.err(path, format!("template file {} cannot be read: {e}", file.display()));
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
    fn templates_read_files_next_to_the_model() {
        let dir = std::env::temp_dir().join(format!("ember-load-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("emails")).unwrap();
        std::fs::write(dir.join("emails/hello.html"), "<p>Hello {{first_name}}</p>").unwrap();
        let model = format!(
            r#"{HEAD}
email: {{ from: "a@b.example" }}
templates:
  hello: {{ subject: Hi, html: emails/hello.html, text: "Hello {{{{first_name}}}}" }}
  gone: {{ subject: Bye, html: emails/missing.hbs }}
"#
        );
        std::fs::write(dir.join("model.yaml"), &model).unwrap();
        let errs = Model::load(&dir.join("model.yaml")).unwrap_err().0;
        assert_eq!(errs.len(), 1, "{:#?}", lines(&errs));
        assert_eq!(errs[0].path, "templates.gone.html");
        assert!(errs[0].message.contains("missing.hbs"), "{}", errs[0].message);
        std::fs::write(dir.join("model.yaml"), model.replace("  gone: { subject: Bye, html: emails/missing.hbs }\n", "")).unwrap();
        let m = Model::load(&dir.join("model.yaml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.templates["hello"].html, "<p>Hello {{first_name}}</p>");
        assert_eq!(m.templates["hello"].text.as_deref(), Some("Hello {{first_name}}"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
