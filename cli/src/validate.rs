//! `ember validate MODEL...`

use ember_service::model_files;
use std::path::PathBuf;

/// Validates each model; prints every error (and warning). Returns whether all are valid.
pub fn run(models: &[PathBuf]) -> bool {
    let mut ok = true;
    for path in models {
        match model_files::load_model(path) {
            Ok(m) => {
                for w in &m.warnings {
                    eprintln!("warning: {w}");
                }
                println!(
                    "{}: valid — model `{}`: {} score groups, {} rules, {} stages, {} campaigns, {} templates",
                    path.display(),
                    m.name,
                    m.scores.len(),
                    m.rules.len(),
                    m.stages.len(),
                    m.campaigns.len(),
                    m.templates.len()
                );
            }
            Err(errors) => {
                ok = false;
                for e in &errors.0 {
                    eprintln!("{e}");
                }
                eprintln!("{}: {} error{}", path.display(), errors.0.len(), if errors.0.len() == 1 { "" } else { "s" });
            }
        }
    }
    ok
}
