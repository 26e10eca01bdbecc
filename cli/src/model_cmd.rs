//! `ember model diff OLD NEW`: what a new version of the model file changes, section by section
//! and item by item (rules, stages, campaigns, templates, decay, temperature bands, handoff…),
//! with old → new values, as a table or as JSON.

use anyhow::{Context, Result};
use ember_scoring::model::diff::{diff, FieldChange, ModelDiff};
use ember_scoring::Model;
use ember_service::model_files;
use std::path::{Path, PathBuf};

/// The arguments of `ember model diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The model as deployed now.
    pub old: PathBuf,
    /// The candidate model.
    pub new: PathBuf,
    /// Print JSON (`{"sections": [{"section", "added", "removed", "changed"}]}`) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A model file and its text; an invalid one is an error listing every mistake.
fn load(path: &Path) -> Result<(String, Model)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let model = model_files::load_model(path).map_err(|e| anyhow::anyhow!("{}: the model is invalid:\n{e}", path.display()))?;
    Ok((text, model))
}

/// Prints the differences.
pub fn run_diff(args: &DiffArgs) -> Result<()> {
    let (old_text, old) = load(&args.old)?;
    let (new_text, new) = load(&args.new)?;
    let d = diff(&old_text, &old, &new_text, &new);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print!("{}", text(&d, &args.old, &args.new));
    }
    Ok(())
}

/// The diff as text: `+ id` added, `- id` removed, `~ id` changed with one line per key.
pub fn text(d: &ModelDiff, old: &Path, new: &Path) -> String {
    let mut out = format!("{} → {}\n", old.display(), new.display());
    if d.is_empty() {
        out.push_str("no difference: both files define the same model\n");
        return out;
    }
    for s in &d.sections {
        out.push_str(&format!("\n{}\n", s.section));
        for id in &s.added {
            out.push_str(&format!("  + {id}\n"));
        }
        for id in &s.removed {
            out.push_str(&format!("  - {id}\n"));
        }
        for c in &s.changed {
            out.push_str(&format!("  ~ {}\n", c.id));
            for f in &c.fields {
                out.push_str(&format!("      {}\n", field(f)));
            }
        }
    }
    let (added, removed, changed) = d.sections.iter().fold((0, 0, 0), |(a, r, c), s| (a + s.added.len(), r + s.removed.len(), c + s.changed.len()));
    out.push_str(&format!("\n{added} added, {removed} removed, {changed} changed\n"));
    out
}

fn field(f: &FieldChange) -> String {
    let show = |v: &Option<serde_json::Value>| match v {
        None => "(none)".to_string(),
        Some(serde_json::Value::String(s)) if s.len() > 60 || s.contains('\n') => format!("{} characters", s.chars().count()),
        Some(v) => v.to_string(),
    };
    let path = if f.path.is_empty() { String::new() } else { format!("{}: ", f.path) };
    format!("{path}{} → {}", show(&f.old), show(&f.new))
}
