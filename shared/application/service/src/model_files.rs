//! Models read from disk: the file-system and settings side of the model loader, which
//! `ember-scoring` keeps out of the pure crate. A template body given as a file path
//! (`html: emails/welcome.hbs`) is read relative to the model's folder; a `${VAR}` reference is
//! the process environment's value, or the value a function reads from its secret.

use ember_scoring::{Model, ModelError, ModelErrors, ModelSources, Unreadable};
use std::path::{Path, PathBuf};

/// The model's folder and a lookup of settings.
struct Folder<'a> {
    dir: Option<&'a Path>,
    settings: &'a dyn Fn(&str) -> Option<String>,
}

impl ModelSources for Folder<'_> {
    fn file(&self, name: &str) -> Result<String, Unreadable> {
        let file = match self.dir {
            Some(d) => d.join(name),
            None => PathBuf::from(name),
        };
        std::fs::read_to_string(&file).map_err(|e| Unreadable { at: file.display().to_string(), reason: e.to_string() })
    }
    fn setting(&self, name: &str) -> Option<String> {
        (self.settings)(name)
    }
}

fn environment(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads and validates a model file; template files are read relative to its folder and
/// `${VAR}` references come from the process environment.
pub fn load_model(path: &Path) -> Result<Model, ModelErrors> {
    load_model_with(path, &environment)
}

/// As [`load_model`], with `${VAR}` references resolved by `settings` instead of the process
/// environment (a function reads them from its secret).
pub fn load_model_with(path: &Path, settings: &dyn Fn(&str) -> Option<String>) -> Result<Model, ModelErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ModelErrors(vec![ModelError { file: file.clone(), path: "(file)".into(), message: format!("cannot read: {e}") }])
    })?;
    Model::from_yaml_str_with(&text, &file, &Folder { dir: path.parent(), settings })
}

/// Validates model text that is not (yet) a file, such as a model being written: `file` names
/// it in messages, template files are read relative to `dir` (the working directory when
/// `None`) and `${VAR}` references come from the process environment.
pub fn model_from_text(text: &str, file: &str, dir: Option<&Path>) -> Result<Model, ModelErrors> {
    Model::from_yaml_str_with(text, file, &Folder { dir, settings: &environment })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_files_read_templates_beside_the_model_and_name_what_is_missing() {
        let dir = std::env::temp_dir().join(format!("ember-model-files-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("emails")).unwrap();
        std::fs::write(dir.join("emails/hello.html"), "<p>Hello {{first_name}}</p>").unwrap();
        let model = r#"name: t
scores: { engagement: { min: 0, max: 100 } }
stages: [{ id: mql, when: { engagement: { gte: 50 } } }]
handoff:
  stages: [mql]
  webhooks: [{ name: crm, url: "https://crm.example/${CRM_TENANT}/in" }]
email: { from: "a@b.example" }
templates:
  hello: { subject: Hi, html: emails/hello.html }
  gone: { subject: Bye, html: emails/missing.hbs }
"#;
        let path = dir.join("model.yaml");
        std::fs::write(&path, model).unwrap();
        let tenant = |name: &str| (name == "CRM_TENANT").then(|| "acme".to_string());
        let errs = load_model_with(&path, &tenant).unwrap_err().0;
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!((errs[0].file.as_str(), errs[0].path.as_str()), (path.display().to_string().as_str(), "templates.gone.html"));
        let missing = dir.join("emails/missing.hbs");
        assert!(errs[0].message.starts_with(&format!("template file {} cannot be read: ", missing.display())), "{}", errs[0].message);

        std::fs::write(&path, model.replace("  gone: { subject: Bye, html: emails/missing.hbs }\n", "")).unwrap();
        let m = load_model_with(&path, &tenant).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.templates["hello"].html, "<p>Hello {{first_name}}</p>");
        assert_eq!(m.handoff.as_ref().unwrap().webhooks[0].url.as_deref(), Some("https://crm.example/acme/in"));
        let text = std::fs::read_to_string(&path).unwrap();
        let m = model_from_text(&text, "written.yaml", Some(&dir)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.templates["hello"].html, "<p>Hello {{first_name}}</p>");
        let _ = std::fs::remove_dir_all(&dir);

        let gone = Path::new("/nonexistent/ember/model.yaml");
        let errs = load_model(gone).unwrap_err().0;
        assert_eq!((errs.len(), errs[0].path.as_str()), (1, "(file)"));
        assert!(errs[0].message.starts_with("cannot read: "), "{}", errs[0].message);
    }
}
